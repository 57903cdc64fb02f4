;; Creates empty files `f00000000`, `f00000001`, ... in its first mapped
;; directory without end: ends by its disk limit. Run with `--dir DIR::/data`.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "0123456789abcdef")
  (func $name (param $n i32)
    (local $i i32)
    (i32.store8 (i32.const 0) (i32.const 102)) ;; 'f'
    (loop $digits
      (i32.store8 (i32.sub (i32.const 8) (local.get $i))
        (i32.load8_u (i32.add (i32.const 100)
          (i32.and (i32.shr_u (local.get $n) (i32.mul (local.get $i) (i32.const 4))) (i32.const 15)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $digits (i32.lt_u (local.get $i) (i32.const 8)))))
  (func (export "_start")
    (local $n i32)
    (loop $l
      (call $name (local.get $n))
      (if (i32.eqz (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 9)
            (i32.const 1) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 16)))
        (then (drop (call $close (i32.load (i32.const 16))))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $l))))
