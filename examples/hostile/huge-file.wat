;; Writes one file in its first mapped directory without end: ends by its
;; disk limit. Run with `--dir DIR::/data`.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "big")
  (func (export "_start")
    (local $fd i32)
    ;; fd 3 is the first preopen; oflags 9 = create | truncate
    (drop (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 3)
      (i32.const 9) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 16)))
    (local.set $fd (i32.load (i32.const 16)))
    (i32.store (i32.const 32) (i32.const 65536))
    (i32.store (i32.const 36) (i32.const 65536))
    (loop $l
      (drop (call $fd_write (local.get $fd) (i32.const 32) (i32.const 1) (i32.const 40)))
      (br $l))))
