//! Deterministic runs: the same job gives the same output and burns the same
//! fuel on two different nodes, clocks, random bytes and NaNs included; a
//! job run without `--deterministic` gets fresh random bytes each time.

use grid_tests::{GridSandbox, number};

/// Prints four lines: the wall and monotonic clocks, read twice around some
/// work; 16 random bytes; the bits of NaNs made by float work (0/0 in f32
/// and f64, sqrt(-1), arithmetic on signalling NaNs with payloads); and the
/// clocks' resolutions.
const OBSERVER: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_res_get" (func $res (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $pos (mut i32) (i32.const 1024))
  (func $digit (param $d i32) (result i32)
    (select (i32.add (local.get $d) (i32.const 48)) (i32.add (local.get $d) (i32.const 87))
      (i32.lt_u (local.get $d) (i32.const 10))))
  (func $hex (param $v i64)
    (local $i i32)
    (loop $l
      (i32.store8 (i32.add (global.get $pos) (local.get $i))
        (call $digit (i32.wrap_i64 (i64.and (i64.const 15)
          (i64.shr_u (local.get $v) (i64.extend_i32_u (i32.sub (i32.const 60) (i32.shl (local.get $i) (i32.const 2)))))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 16))))
    (i32.store8 (i32.add (global.get $pos) (i32.const 16)) (i32.const 32))
    (global.set $pos (i32.add (global.get $pos) (i32.const 17))))
  (func $newline
    (i32.store8 (global.get $pos) (i32.const 10))
    (global.set $pos (i32.add (global.get $pos) (i32.const 1))))
  (func $now (param $id i32) (result i64)
    (drop (call $clock (local.get $id) (i64.const 1) (i32.const 16)))
    (i64.load (i32.const 16)))
  (func $resolution (param $id i32) (result i64)
    (drop (call $res (local.get $id) (i32.const 16)))
    (i64.load (i32.const 16)))
  (func $spin (param $n i32)
    (loop $l
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n))))
  ;; Zeros and NaNs come from memory, so no compiler folds them away.
  (func $f32zero (result f32) (f32.load (i32.const 48)))
  (func $f64zero (result f64) (f64.load (i32.const 48)))
  (func (export "_start")
    (call $hex (call $now (i32.const 0)))
    (call $hex (call $now (i32.const 1)))
    (call $spin (i32.const 100000))
    (call $hex (call $now (i32.const 0)))
    (call $hex (call $now (i32.const 1)))
    (call $newline)
    (drop (call $random (i32.const 32) (i32.const 16)))
    (call $hex (i64.load (i32.const 32)))
    (call $hex (i64.load (i32.const 40)))
    (call $newline)
    (i64.store (i32.const 64) (i64.const 0x7ff4000000000001))
    (i32.store (i32.const 72) (i32.const 0x7fa00001))
    (call $hex (i64.extend_i32_u (i32.reinterpret_f32 (f32.div (call $f32zero) (call $f32zero)))))
    (call $hex (i64.reinterpret_f64 (f64.div (call $f64zero) (call $f64zero))))
    (call $hex (i64.reinterpret_f64 (f64.sqrt (f64.sub (call $f64zero) (f64.const 1)))))
    (call $hex (i64.reinterpret_f64 (f64.add (f64.load (i32.const 64)) (f64.const 1))))
    (call $hex (i64.extend_i32_u (i32.reinterpret_f32 (f32.mul (f32.load (i32.const 72)) (f32.const 2)))))
    (call $hex (i64.reinterpret_f64 (f64.promote_f32 (f32.load (i32.const 72)))))
    (call $newline)
    (call $hex (call $resolution (i32.const 0)))
    (call $hex (call $resolution (i32.const 1)))
    (call $newline)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.sub (global.get $pos) (i32.const 1024)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"#;

/// Runs `module` to its end on `grid` with `flags`; returns its stdout and
/// the fuel it burned.
fn observe(grid: &GridSandbox, module: &std::path::Path, flags: &[&str]) -> (String, u64) {
    let mut args = vec!["submit"];
    args.extend_from_slice(flags);
    args.push(module.to_str().unwrap());
    let submitted = grid.run(&args);
    assert_eq!(submitted.code, Some(0), "{submitted:#?}");
    let id = submitted.stdout.trim().to_owned();
    let job = grid.wait_finished(&id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let logs = grid.run(&["logs", &id]);
    assert_eq!(logs.code, Some(0), "{logs:#?}");
    (logs.stdout, number(&job["fuel_used"]))
}

fn field(line: &str, i: usize) -> u64 {
    u64::from_str_radix(line.split_whitespace().nth(i).unwrap(), 16).unwrap()
}

#[test]
fn a_deterministic_job_agrees_with_itself_across_nodes() {
    // Two grids of one node each: other processes, other caches, other times.
    let (a, b) = (GridSandbox::start(1), GridSandbox::start(1));
    // One module path: it is the guest's `argv[0]`, part of the job's seed.
    let module = a.wat("observer", OBSERVER);
    let (out_a, fuel_a) = observe(&a, &module, &["--deterministic"]);
    let (out_b, fuel_b) = observe(&b, &module, &["--deterministic"]);
    assert_eq!(out_a, out_b, "two nodes saw different things");
    assert_eq!(fuel_a, fuel_b, "two nodes burned different fuel");

    let lines: Vec<&str> = out_a.lines().collect();
    assert_eq!(lines.len(), 4, "{out_a}");
    // The wall clock starts at 2000-01-01T00:00:00Z and the monotonic one at
    // zero; both advance one nanosecond per unit of fuel burned.
    let start = 946_684_800 * 1_000_000_000u64;
    let (wall, mono, wall_later, mono_later) =
        (field(lines[0], 0), field(lines[0], 1), field(lines[0], 2), field(lines[0], 3));
    // Read in that order, with a loop of 100000 turns between the pairs.
    assert!(wall >= start, "{}", lines[0]);
    let times = [wall - start, mono, wall_later - start, mono_later];
    assert!(times.is_sorted() && times[3] < fuel_a, "{}", lines[0]);
    assert!(times[2] - times[1] > 100_000, "{}", lines[0]);
    // Every NaN has the one canonical bit pattern.
    assert_eq!(
        lines[2],
        "000000007fc00000 7ff8000000000000 7ff8000000000000 7ff8000000000000 000000007fc00000 7ff8000000000000 ",
        "{out_a}"
    );
    // Both clocks tick in nanoseconds.
    assert_eq!(lines[3], "0000000000000001 0000000000000001 ", "{out_a}");

    // Other arguments seed other random bytes.
    let other = a.run(&["run", "--deterministic", module.to_str().unwrap(), "--", "other"]);
    other.assert_clean_success();
    assert_ne!(other.stdout.lines().nth(1), Some(lines[1]), "other args, same random bytes");
}

#[test]
fn a_job_run_without_deterministic_gets_fresh_random_bytes() {
    let grid = GridSandbox::start(1);
    let module = grid.wat("observer", OBSERVER);
    let (first, _) = observe(&grid, &module, &[]);
    let (second, _) = observe(&grid, &module, &[]);
    let random = |out: &str| out.lines().nth(1).unwrap().to_owned();
    assert_ne!(random(&first), random(&second), "two plain runs drew the same random bytes");
    // The host's clock, not the year 2000.
    let wall = field(first.lines().next().unwrap(), 0);
    assert!(wall > 1_600_000_000 * 1_000_000_000u64, "{first}");
}

#[test]
fn a_deterministic_component_reads_writes_and_sleeps() {
    let grid = GridSandbox::start(1);
    let probe = grid_tests::wasip2_example("probe-p2");
    let data = grid.dir().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in.txt"), "shout\n").unwrap();
    let dir = format!("{}::/data", data.display());
    let probe = probe.to_str().unwrap();
    let run =
        grid.run(&["run", "--deterministic", "--dir", &dir, probe, "--", "copy", "/data/in.txt", "/data/out.txt"]);
    run.assert_clean_success();
    assert_eq!(std::fs::read_to_string(data.join("out.txt")).unwrap(), "SHOUT\n");
    grid.run(&["run", "--deterministic", probe, "--", "sleep", "1"]).assert_clean_success();
}
