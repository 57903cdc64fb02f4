//! WebAssembly proposals: every one `wasmtime run` takes by default runs on
//! the grid, with the same output as under `wasmtime run` of the version
//! the grid embeds, and under the grid's fuel, memory and time limits; what
//! the grid refuses by design is refused with one `invalid module:` line.

use crate::guests::{guest, guest_with, still_serves};
use grid_tests::{GridSandbox, wasmtime_cli};
use std::path::Path;
use std::process::{Command, Stdio};

/// Exceptions: a tag thrown, caught with its exception reference, thrown
/// again with `throw_ref`, and caught by an outer handler with its payload.
const EXCEPTIONS: (&str, &str) = (
    r#"(tag $oops (param i64))
  (func $throws (param i64) (throw $oops (local.get 0)))
  (func $rethrown (result i64)
    (block $outer (result i64)
      (try_table (catch $oops $outer)
        (block $caught (result i64 exnref)
          (try_table (catch_ref $oops $caught)
            (call $throws (i64.const 7)))
          (unreachable))
        (throw_ref))
      (unreachable)))"#,
    "(call $number (call $rethrown))",
);

/// GC: a linked list of structs and an array, built and summed.
const GC: (&str, &str) = (
    r#"(type $cell (struct (field i64) (field (ref null $cell))))
  (type $row (array (mut i64)))
  (func $list_sum (result i64)
    (local $list (ref null $cell)) (local $i i64) (local $sum i64)
    (loop $build
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (local.set $list (struct.new $cell (local.get $i) (local.get $list)))
      (br_if $build (i64.lt_u (local.get $i) (i64.const 10))))
    (loop $walk
      (if (ref.is_null (local.get $list)) (then (return (local.get $sum))))
      (local.set $sum (i64.add (local.get $sum) (struct.get $cell 0 (local.get $list))))
      (local.set $list (struct.get $cell 1 (local.get $list)))
      (br $walk))
    (unreachable))
  (func $array_len (result i64)
    (local $row (ref $row))
    (local.set $row (array.new $row (i64.const 3) (i32.const 100)))
    (array.set $row (local.get $row) (i32.const 99) (i64.const 4))
    (i64.add (i64.extend_i32_u (array.len (local.get $row))) (array.get $row (local.get $row) (i32.const 99))))"#,
    "(call $number (call $list_sum)) (call $number (call $array_len))",
);

/// Tail calls: a million-deep recursion that only fits in the stack as
/// tail calls.
const TAIL_CALLS: (&str, &str) = (
    r#"(func $count (param $n i64) (param $acc i64) (result i64)
    (if (result i64) (i64.eqz (local.get $n))
      (then (local.get $acc))
      (else (return_call $count (i64.sub (local.get $n) (i64.const 1)) (i64.add (local.get $acc) (i64.const 2))))))"#,
    "(call $number (call $count (i64.const 1000000) (i64.const 0)))",
);

/// Typed function references: a function passed by typed reference and
/// called with `call_ref`, and a null one told apart with `br_on_null`.
const FUNCTION_REFERENCES: (&str, &str) = (
    r#"(type $unary (func (param i64) (result i64)))
  (func $double (type $unary) (i64.mul (local.get 0) (i64.const 2)))
  (elem declare func $double)
  (func $apply (param $f (ref null $unary)) (param $x i64) (result i64)
    (block $null
      (return (call_ref $unary (local.get $x) (br_on_null $null (local.get $f)))))
    (i64.const 0))"#,
    "(call $number (call $apply (ref.func $double) (i64.const 21))) \
     (call $number (call $apply (ref.null $unary) (i64.const 21)))",
);

/// Multi-memory: bytes from a second memory copied into the first and printed.
const MULTI_MEMORY: (&str, &str) = (
    r#"(memory $second 1)
  (data (memory $second) (i32.const 4000) "from the second memory\n")"#,
    "(memory.copy 0 $second (i32.const 1000) (i32.const 4000) (i32.const 23)) \
     (call $print (i32.const 1000) (i32.const 23))",
);

/// Memory64: a 64-bit memory grown past its first page, written and read
/// back at a 64-bit address, and copied into the first memory.
const MEMORY64: (&str, &str) = (
    r#"(memory $wide i64 1)
  (data (memory $wide) (i64.const 60000) "memory64\n")"#,
    "(drop (memory.grow $wide (i64.const 2))) \
     (i64.store $wide (i64.const 131072) (i64.const 6400)) \
     (call $number (i64.add (i64.load $wide (i64.const 131072)) (memory.size $wide))) \
     (memory.copy 0 $wide (i32.const 1000) (i64.const 60000) (i32.const 9)) \
     (call $print (i32.const 1000) (i32.const 9))",
);

/// Extended constant expressions: a global and a data segment's offset
/// computed with `add` and `mul`.
const EXTENDED_CONST: (&str, &str) = (
    r#"(global $answer i64 (i64.add (i64.const 40) (i64.mul (i64.const 1) (i64.const 2))))
  (data (i32.add (i32.const 1000) (i32.mul (i32.const 4) (i32.const 6))) "extended const\n")"#,
    "(call $number (global.get $answer)) (call $print (i32.const 1024) (i32.const 15))",
);

/// Relaxed SIMD: a fused multiply-add and a swizzle on values where every
/// CPU gives the same answer.
const RELAXED_SIMD: (&str, &str) = (
    "",
    "(call $number (i64.trunc_f32_s (f32x4.extract_lane 2 \
       (f32x4.relaxed_madd (f32x4.splat (f32.const 2)) (f32x4.splat (f32.const 3)) (f32x4.splat (f32.const 4)))))) \
     (call $number (i64.extend_i32_u (i8x16.extract_lane_u 0 \
       (i8x16.relaxed_swizzle (v128.const i8x16 9 8 7 6 5 4 3 2 1 0 1 2 3 4 5 6) (v128.const i8x16 3 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0)))))",
);

/// Each proposal's guest and the output it must print.
const PROPOSALS: &[(&str, (&str, &str), &str)] = &[
    ("exceptions", EXCEPTIONS, "7\n"),
    ("gc", GC, "55\n104\n"),
    ("tail-calls", TAIL_CALLS, "2000000\n"),
    ("function-references", FUNCTION_REFERENCES, "42\n0\n"),
    ("multi-memory", MULTI_MEMORY, "from the second memory\n"),
    ("memory64", MEMORY64, "6403\nmemory64\n"),
    ("extended-const", EXTENDED_CONST, "42\nextended const\n"),
    ("relaxed-simd", RELAXED_SIMD, "10\n6\n"),
];

/// What `wasmtime run` prints on stdout for `module`, which must succeed.
fn under_wasmtime(module: &Path) -> String {
    let out = Command::new(wasmtime_cli()).arg("run").arg(module).stdin(Stdio::null()).output().expect("run wasmtime");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "`wasmtime run {}` failed: {stderr}", module.display());
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

#[test]
fn every_proposal_wasmtime_run_takes_runs_with_the_same_output() {
    let grid = GridSandbox::start(1);
    for (name, (fields, body), want) in PROPOSALS {
        let module = grid.wat(name, &guest_with(fields, body));
        let reference = under_wasmtime(&module);
        assert_eq!(reference, *want, "`wasmtime run` of the {name} guest");
        let run = grid.run(&["run", module.to_str().unwrap()]);
        run.assert_clean_success();
        assert_eq!(run.stdout, reference, "the {name} guest on the grid");
    }
}

#[test]
fn every_proposal_runs_deterministically_with_the_same_output() {
    let grid = GridSandbox::start(1);
    for (name, (fields, body), want) in PROPOSALS {
        let module = grid.wat(name, &guest_with(fields, body));
        let run = grid.run(&["run", "--deterministic", module.to_str().unwrap()]);
        run.assert_clean_success();
        assert_eq!(run.stdout, *want, "the {name} guest, deterministic");
    }
}

/// Allocates 64 KiB arrays into a list it keeps, for ever.
const GC_BOMB: (&str, &str) = (
    r#"(type $block (array (mut i64)))
  (type $link (struct (field (ref $block)) (field (ref null $link))))"#,
    "(local $kept (ref null $link)) \
     (loop $more \
       (local.set $kept (struct.new $link (array.new_default $block (i32.const 8192)) (local.get $kept))) \
       (br $more))",
);

#[test]
fn gc_allocations_end_at_the_memory_limit() {
    let mut grid = GridSandbox::start(1);
    let module = grid.wat("gc-bomb", &guest_with(GC_BOMB.0, GC_BOMB.1));
    let run = grid.run(&["run", "--memory", "16MiB", "--fuel", "100G", module.to_str().unwrap()]);
    run.assert_grid_failure(122, "grid: memory limit");
    still_serves(&mut grid);
}

#[test]
fn wide_and_second_memories_count_against_the_memory_limit() {
    let mut grid = GridSandbox::start(1);
    // A 64-bit memory grown 1 MiB at a time, for ever.
    let wide = guest_with("(memory $wide i64 1)", "(loop $l (drop (memory.grow $wide (i64.const 16))) (br $l))");
    // A second memory grown while the first holds its page: the two are summed.
    let second = guest_with("(memory $second 1)", "(loop $l (drop (memory.grow $second (i32.const 16))) (br $l))");
    for (name, module) in [("memory64-bomb", wide), ("second-memory-bomb", second)] {
        let module = grid.wat(name, &module);
        let run = grid.run(&["run", "--memory", "8MiB", module.to_str().unwrap()]);
        run.assert_grid_failure(122, "grid: memory limit");
    }
    still_serves(&mut grid);
}

#[test]
fn proposals_run_under_fuel_and_time_limits() {
    let mut grid = GridSandbox::start(1);
    // A tail call to itself for ever: ends by its fuel.
    let spin = guest_with("(func $again (return_call $again))", "(call $again)");
    let module = grid.wat("tail-spin", &spin);
    grid.run(&["run", "--fuel", "1000000", module.to_str().unwrap()])
        .assert_grid_failure(123, "grid: out of fuel after 1000000 units");
    // Throwing and catching for ever: ends by its time.
    let juggle = guest_with(
        "(tag $ball)",
        "(loop $again (block $caught (try_table (catch $ball $caught) (throw $ball))) (br $again))",
    );
    let module = grid.wat("exception-spin", &juggle);
    grid.run(&["run", "--fuel", "100G", "--timeout", "1s", module.to_str().unwrap()])
        .assert_grid_failure(124, "grid: timeout");
    still_serves(&mut grid);
}

#[test]
fn threads_are_refused_with_the_reason() {
    let mut grid = GridSandbox::start(1);
    let shared = grid
        .wat("shared", &guest("").replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 1 1 shared)"));
    let run = grid.run(&["run", shared.to_str().unwrap()]);
    run.assert_grid_failure(126, "grid: invalid module:");
    assert!(run.stderr.contains("threads"), "names threads: {run:#?}");
    let atomics = grid.wat("atomics", &guest("(drop (i32.atomic.load (i32.const 0)))"));
    let run = grid.run(&["run", atomics.to_str().unwrap()]);
    run.assert_grid_failure(126, "grid: invalid module:");
    assert!(run.stderr.contains("threads"), "names threads: {run:#?}");
    still_serves(&mut grid);
}
