//! Guest modules written in WAT for the tests: each is a `_start` body
//! wrapped with WASI imports and two helpers, `$print` and `$sleep`.

/// A module whose `_start` runs `body`. Bytes at 200 are `first\n`, at 220
/// `second\n`; `(call $print PTR LEN)` writes to stdout, `(call $eprint PTR
/// LEN)` to stderr, `(call $sleep NANOS)` sleeps in `poll_oneoff`.
pub fn guest(body: &str) -> String {
    guest_with("", body)
}

/// [`guest`] with more module fields (types, memories, globals, tags,
/// functions) beside the helpers. `(call $number N)` prints an `i64` in
/// decimal and a newline.
pub fn guest_with(fields: &str, body: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "first\n")
  (data (i32.const 220) "second\n")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 300) (local.get $ptr))
    (i32.store (i32.const 304) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 300) (i32.const 1) (i32.const 308))))
  (func $print (param $ptr i32) (param $len i32) (call $write (i32.const 1) (local.get $ptr) (local.get $len)))
  (func $eprint (param $ptr i32) (param $len i32) (call $write (i32.const 2) (local.get $ptr) (local.get $len)))
  (func $sleep (param $ns i64)
    (i64.store (i32.const 0) (i64.const 0))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (local.get $ns))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128))))
  (func $number (param $n i64)
    (local $at i32)
    (local.set $at (i32.const 599))
    (i32.store8 (i32.const 599) (i32.const 10))
    (loop $digit
      (local.set $at (i32.sub (local.get $at) (i32.const 1)))
      (i64.store8 (local.get $at) (i64.add (i64.const 48) (i64.rem_u (local.get $n) (i64.const 10))))
      (local.set $n (i64.div_u (local.get $n) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $n) (i64.const 0))))
    (call $print (local.get $at) (i32.sub (i32.const 600) (local.get $at))))
  {fields}
  (func (export "_start")
    {body}))"#
    )
}

/// Prints `first` and exits 0.
pub fn hello() -> String {
    guest("(call $print (i32.const 200) (i32.const 6))")
}

/// Never stops computing.
pub const SPIN: &str = "(loop $l (br $l))";

/// Grows memory by 1 MiB at a time, forever.
pub const MEMORY_BOMB: &str = "(loop $l (drop (memory.grow (i32.const 16))) (br $l))";

/// Sleeps a minute inside a host call.
pub const SLEEP_MINUTE: &str = "(call $sleep (i64.const 60000000000))";

/// Writes `first` to stdout forever.
pub const FLOOD: &str = "(loop $l (call $print (i32.const 200) (i32.const 6)) (br $l))";

/// Asserts every server process is alive and the grid still runs a good job.
pub fn still_serves(grid: &mut grid_tests::GridSandbox) {
    assert!(grid.all_alive(), "a server process died");
    let module = grid.wat("still-ok", &hello());
    let run = grid.run(&["run", module.to_str().unwrap()]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "first\n");
}

/// A whole module that writes 64 KiB to stdout at a time, for ever: it
/// ends by its output limit.
pub const FLOOD_64K: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (memory.fill (i32.const 1024) (i32.const 120) (i32.const 65536))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 65536))
    (loop $l
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (br $l))))"#;
