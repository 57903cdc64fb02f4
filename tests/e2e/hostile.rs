//! Hostile guests from `examples/hostile/`, each run beside a well-behaved
//! job on the same node: the hostile one ends with its named reason, the
//! good one finishes correctly and promptly, and the node keeps serving.

use grid_tests::{GridSandbox, Run, example, hostile};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Limits every hostile job runs under, small enough to hit quickly; the
/// fuel limit is each test's own.
const LIMITS: &[&str] = &["--memory", "64MiB", "--timeout", "5s", "--output-limit", "64KiB", "--disk-limit", "1MiB"];

fn contained(file: &str, fuel: &str, code: i32, reason: &str) {
    let mut grid = GridSandbox::builder(1).node_args(&["--slots", "2"]).start();
    let data = grid.dir().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let dir_arg = format!("{}::/data", data.display());
    let path = hostile(file);
    let mut args = vec!["run", "--fuel", fuel];
    args.extend_from_slice(LIMITS);
    args.extend_from_slice(&["--dir", &dir_arg, path.to_str().unwrap()]);
    let bad = grid.cli(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();

    // The well-behaved job, on the same node's other slot.
    let good_started = Instant::now();
    let good = grid.run(&["run", example("primes").to_str().unwrap(), "--", "20000"]);
    let good_took = good_started.elapsed();
    good.assert_clean_success();
    assert!(good.stdout.starts_with("primes below 20000: 2262,"), "{good:#?}");
    // Far above what it needs alone (milliseconds), far below the hostile
    // job's limits: it was not held up.
    assert!(good_took < Duration::from_secs(4), "the good job took {good_took:?}");

    let bad = Run::from(bad.wait_with_output().unwrap());
    bad.assert_grid_failure(code, reason);
    assert!(bad.stdout.len() <= 64 << 10, "more output than the limit came through");
    assert!(grid.all_alive(), "a server died");

    // The node's scratch space is gone with the job.
    let scratch = grid.dir().join("node-0/jobs");
    let left: Vec<_> = walk(&scratch).into_iter().filter(|p| p.is_file()).collect();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
    // The grid still serves.
    grid.run(&["run", example("hello").to_str().unwrap()]).assert_clean_success();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

macro_rules! hostile_tests {
    ($($name:ident: $file:literal, $fuel:literal => $code:literal, $reason:literal;)*) => {
        $(
            #[test]
            fn $name() {
                contained($file, $fuel, $code, $reason);
            }
        )*
    };
}

hostile_tests! {
    infinite_loop: "infinite-loop.wat", "100G" => 124, "grid: timeout after 5";
    fuel_burn: "fuel-burn.wat", "2G" => 123, "grid: out of fuel after 2000000000 units";
    memory_growth: "memory-growth.wat", "20G" => 122, "grid: memory limit";
    huge_alloc: "huge-alloc.wat", "20G" => 122, "grid: memory limit";
    deep_recursion: "deep-recursion.wat", "20G" => 134, "grid: stack overflow";
    unreachable: "unreachable.wat", "20G" => 134, "grid: trap: wasm `unreachable` instruction executed";
    stdout_flood: "stdout-flood.wat", "20G" => 121, "grid: output limit";
    stderr_flood: "stderr-flood.wat", "20G" => 121, "grid: output limit";
    huge_file: "huge-file.wat", "20G" => 127, "grid: disk limit";
    many_files: "many-files.wat", "20G" => 127, "grid: disk limit";
    sleep_past_timeout: "sleep.wat", "20G" => 124, "grid: timeout";
    unknown_import: "unknown-import.wat", "20G" => 126, "grid: link error: env::launch_missiles";
    not_wasm: "not-wasm.wasm", "20G" => 126, "invalid module";
    giant_data_segment: "giant-data-segment.wat", "20G" => 122, "grid: memory limit";
    giant_table: "giant-table.wat", "20G" => 122, "grid: memory limit";
}

#[test]
fn many_open_files_hit_the_per_job_cap() {
    let grid = GridSandbox::start(1);
    let data = grid.dir().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let dir_arg = format!("{}::/data", data.display());
    let run = grid.run(&["run", "--dir", &dir_arg, hostile("many-fds.wat").to_str().unwrap()]);
    // The guest exits with the errno it got: EMFILE, from the node's cap,
    // long before the node itself runs out of descriptors.
    assert_eq!(run.code, Some(33), "{run:#?}");
    grid.run(&["run", example("hello").to_str().unwrap()]).assert_clean_success();
}

#[test]
fn a_guest_cannot_follow_a_symlink_out_of_its_directory() {
    let grid = GridSandbox::start(1);
    let data = grid.dir().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let secret = grid.dir().join("secret.txt");
    std::fs::write(&secret, "do not read").unwrap();
    // The guest makes `/data/escape -> <abs path of secret>` and tries to open it.
    let target = secret.to_str().unwrap();
    let wat = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "path_symlink" (func $symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "escape")
  (data (i32.const 100) "{target}")
  (func (export "_start")
    (drop (call $symlink (i32.const 100) (i32.const {len}) (i32.const 3) (i32.const 0) (i32.const 6)))
    ;; follow symlinks (lookup flag 1) and open for reading
    (call $exit (call $open (i32.const 3) (i32.const 1) (i32.const 0) (i32.const 6)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 200)))))"#,
        len = target.len()
    );
    let module = grid.wat("escape", &wat);
    let dir_arg = format!("{}::/data", data.display());
    let run = grid.run(&["run", "--dir", &dir_arg, module.to_str().unwrap()]);
    assert_ne!(run.code, Some(0), "the guest opened a file outside its directory: {run:#?}");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "do not read");
    // Nothing that leads outside comes back either.
    if let Ok(link) = std::fs::read_link(data.join("escape")) {
        panic!("an escaping symlink was written back: {}", link.display());
    }
}
