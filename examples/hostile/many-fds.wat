;; Opens files in its first mapped directory and never closes them; exits
;; with the errno of the first open that fails (33, `EMFILE`, once the
;; node's per-job cap is reached). Run with `--dir DIR::/data`.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "held")
  (func (export "_start")
    (local $errno i32)
    (loop $l
      (local.set $errno (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 4)
        (i32.const 1) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 16)))
      (br_if $l (i32.eqz (local.get $errno))))
    (call $exit (local.get $errno))))
