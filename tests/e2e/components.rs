//! WASI preview 2 components (their word counters are in `languages`):
//! args, env, files and exit codes pass as for core modules, every limit (open files too) ends a component with its
//! named reason, the node compiles a component once, and what is not a
//! runnable command gets a clear error.

use crate::guests::still_serves;
use grid_tests::{GridSandbox, wasip2_example};

/// The probe component's path.
fn probe() -> String {
    wasip2_example("probe-p2").to_str().unwrap().to_owned()
}

#[test]
fn args_env_and_files() {
    let grid = GridSandbox::start(1);
    let run = grid.run(&["run", "--env", "GREETING=hi there", &probe(), "--", "echo", "a b", "c"]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "arg echo\narg a b\narg c\nenv GREETING=hi there\n");

    let data = grid.dir().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in.txt"), "shout\n").unwrap();
    let dir = format!("{}::/data", data.display());
    let run = grid.run(&["run", "--dir", &dir, &probe(), "--", "copy", "/data/in.txt", "/data/out.txt"]);
    run.assert_clean_success();
    assert_eq!(std::fs::read_to_string(data.join("out.txt")).unwrap(), "SHOUT\n");

    // Outside its mapped directories a component sees nothing.
    let run = grid.run(&["run", &probe(), "--", "copy", "/etc/hostname", "/tmp/x"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.starts_with("error: failed to read `/etc/hostname`"), "{run:#?}");
}

#[test]
fn disk_limit() {
    let mut grid = GridSandbox::start(1);
    let data = grid.dir().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let dir = format!("{}::/data", data.display());
    let run = grid.run(&["run", "--disk-limit", "1MiB", "--dir", &dir, &probe(), "--", "fill", "/data/big"]);
    run.assert_grid_failure(127, "grid: disk limit");
    assert!(!data.join("big").exists(), "a job over its disk limit wrote back");
    still_serves(&mut grid);
}

#[test]
fn many_open_files_hit_the_per_job_cap() {
    let mut grid = GridSandbox::start(1);
    let data = grid.dir().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in.txt"), "x").unwrap();
    let dir = format!("{}::/data", data.display());
    let run = grid.run(&["run", "--dir", &dir, &probe(), "--", "hold", "/data/in.txt"]);
    // The node's cap of 256 descriptors, the preopened directory included,
    // long before the node itself runs out.
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.starts_with("error: refused after 255 open files"), "{run:#?}");
    still_serves(&mut grid);
}

/// A command component whose `run` is the core function `body`, which
/// returns `run`'s result (0 ok, 1 error); `$exit` is
/// `wasi:cli/exit.exit-with-code`.
fn command(body: &str) -> String {
    format!(
        r#"(component
  (import "wasi:cli/exit@0.2.12" (instance $exit (export "exit-with-code" (func (param "status-code" u8)))))
  (core func $exit_with_code (canon lower (func $exit "exit-with-code")))
  (core module $m
    (import "wasi" "exit-with-code" (func $exit (param i32)))
    (memory 1)
    (func (export "run") (result i32) {body}))
  (core instance $i (instantiate $m (with "wasi" (instance (export "exit-with-code" (func $exit_with_code))))))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $run (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run)))"#
    )
}

#[test]
fn exit_codes_pass_through() {
    let grid = GridSandbox::start(1);
    for (name, body, code) in [
        ("ok", "(i32.const 0)", 0),
        ("err", "(i32.const 1)", 1),
        ("seven", "(call $exit (i32.const 7)) (i32.const 0)", 7),
    ] {
        let path = grid.wat(name, &command(body));
        let run = grid.run(&["run", path.to_str().unwrap()]);
        assert_eq!(run.code, Some(code), "{name}: {run:#?}");
        assert!(run.grid_lines().is_empty(), "{name}: {run:#?}");
    }
    // Rust's std on `wasm32-wasip2` reports failure as 1, whatever the code.
    let run = grid.run(&["run", &probe(), "--", "exit", "3"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.grid_lines().is_empty(), "{run:#?}");
}

/// Runs the probe in `mode` under `limits` and asserts the named failure,
/// then that the grid still serves modules and components.
#[track_caller]
fn limited(limits: &[&str], mode: &[&str], code: i32, reason: &str) -> grid_tests::Run {
    let mut grid = GridSandbox::start(1);
    let mut args = vec!["run"];
    args.extend_from_slice(limits);
    let probe = probe();
    args.extend_from_slice(&[&probe, "--"]);
    args.extend_from_slice(mode);
    let run = grid.run(&args);
    run.assert_grid_failure(code, reason);
    still_serves(&mut grid);
    let ok = grid.run(&["run", &probe, "--", "echo"]);
    ok.assert_clean_success();
    run
}

#[test]
fn out_of_fuel() {
    limited(&["--fuel", "1M"], &["spin"], 123, "grid: out of fuel after 1000000 units");
}

#[test]
fn timeout_of_a_busy_component() {
    limited(&["--fuel", "100G", "--timeout", "1s"], &["spin"], 124, "grid: timeout after 1.0s");
}

#[test]
fn timeout_of_a_component_asleep_in_a_host_call() {
    let started = std::time::Instant::now();
    limited(&["--timeout", "1s"], &["sleep", "60"], 124, "grid: timeout after 1.0s");
    assert!(started.elapsed().as_secs() < 30, "took {:?}", started.elapsed());
}

#[test]
fn memory_limit() {
    limited(&["--memory", "16MiB"], &["grow"], 122, "grid: memory limit");
}

#[test]
fn output_limit() {
    let run = limited(&["--output-limit", "64KiB"], &["flood"], 121, "grid: output limit");
    assert!(run.stdout.len() <= 64 << 10, "more than the limit came through: {}", run.stdout.len());
    assert!(run.stdout.starts_with("flood\nflood\n"), "{run:#?}");
}

#[test]
fn trap() {
    let grid = GridSandbox::start(1);
    let path = grid.wat("trap", &command("unreachable"));
    let run = grid.run(&["run", path.to_str().unwrap()]);
    run.assert_grid_failure(134, "grid: trap: wasm `unreachable` instruction executed");
}

/// Two core modules with a memory each; `run` grows the first by `pages`
/// then has the second grow its own by as many.
fn two_memories(pages: u32) -> String {
    format!(
        r#"(component
  (core module $b
    (memory 1)
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
  (core instance $bi (instantiate $b))
  (core module $a
    (import "b" "grow" (func $grow_b (param i32) (result i32)))
    (memory 1)
    (func (export "run") (result i32)
      (if (i32.lt_s (memory.grow (i32.const {pages})) (i32.const 0)) (then (return (i32.const 1))))
      (if (i32.lt_s (call $grow_b (i32.const {pages})) (i32.const 0)) (then (return (i32.const 1))))
      (i32.const 0)))
  (core instance $ai (instantiate $a (with "b" (instance $bi))))
  (func $run (result (result)) (canon lift (core func $ai "run")))
  (instance $run (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run)))"#
    )
}

#[test]
fn memories_of_a_component_share_the_job_limit() {
    let grid = GridSandbox::start(1);
    // 80 pages is 5 MiB: each memory alone fits in 8 MiB, both together do not.
    let path = grid.wat("two-memories", &two_memories(80));
    let run = grid.run(&["run", "--memory", "8MiB", path.to_str().unwrap()]);
    run.assert_grid_failure(122, "grid: memory limit");
    // Under a roomier limit it runs, and its peak is the sum of both.
    let run = grid.run(&["run", "--memory", "16MiB", "--stats", path.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stderr.contains("peak memory 10.1 MiB"), "{run:#?}");
}

#[test]
fn hoarding_host_resources_is_a_memory_limit() {
    let mut grid = GridSandbox::start(1);
    // Asks for a new stdout stream forever and never drops one.
    let path = grid.wat(
        "hoard",
        r#"(component
  (import "wasi:io/streams@0.2.0" (instance $streams (export "output-stream" (type (sub resource)))))
  (alias export $streams "output-stream" (type $output-stream))
  (import "wasi:cli/stdout@0.2.0" (instance $stdout
    (alias outer 1 $output-stream (type $os))
    (export "get-stdout" (func (result (own $os))))))
  (core func $get (canon lower (func $stdout "get-stdout")))
  (core module $m
    (import "cli" "get-stdout" (func $get (result i32)))
    (func (export "run") (result i32) (loop $l (drop (call $get)) (br $l)) (i32.const 0)))
  (core instance $i (instantiate $m (with "cli" (instance (export "get-stdout" (func $get))))))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $run (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run)))"#,
    );
    grid.run(&["run", path.to_str().unwrap()]).assert_grid_failure(122, "grid: memory limit");
    still_serves(&mut grid);
}

#[test]
fn compiled_once_per_node_across_restarts() {
    let mut grid = GridSandbox::start(1);
    let path = wasip2_example("wordfreq-p2");
    let run = grid.run_with_stdin(&["run", path.to_str().unwrap()], b"b a b");
    run.assert_clean_success();
    assert_eq!(run.stdout, "2 b\n1 a\n");
    let compiled = |grid: &GridSandbox| grid.node_log("node-0").matches("module compiled").count();
    assert_eq!(compiled(&grid), 1, "{}", grid.node_log("node-0"));
    let log = grid.node_log("node-0");
    assert!(log.lines().any(|l| l.contains("module compiled") && l.contains("component")), "{log}");
    grid.run_with_stdin(&["run", path.to_str().unwrap()], b"b a b").assert_clean_success();
    grid.kill_node("node-0");
    grid.restart_node("node-0", &[]);
    let run = grid.run_with_stdin(&["run", path.to_str().unwrap()], b"b a b");
    run.assert_clean_success();
    assert_eq!(run.stdout, "2 b\n1 a\n");
    // Three runs, one restart, one compile.
    assert_eq!(compiled(&grid), 1, "{}", grid.node_log("node-0"));
}

#[test]
fn not_a_command() {
    let grid = GridSandbox::start(1);
    let path = grid.wat(
        "library",
        r#"(component
  (core module $m (func (export "f") (result i32) (i32.const 7)))
  (core instance $i (instantiate $m))
  (func $f (result u32) (canon lift (core func $i "f")))
  (export "answer" (func $f)))"#,
    );
    let run = grid.run(&["run", path.to_str().unwrap()]);
    run.assert_grid_failure(126, "grid: invalid module: the component exports no `wasi:cli/run`: it is not a command");
}

#[test]
fn an_import_the_grid_lacks_is_a_link_error() {
    let grid = GridSandbox::start(1);
    let text = command("(i32.const 0)").replacen(
        "(component",
        r#"(component (import "example:nope/launch@1.0.0" (instance (export "launch" (func))))"#,
        1,
    );
    let path = grid.wat("unknown-import", &text);
    let run = grid.run(&["run", path.to_str().unwrap()]);
    run.assert_grid_failure(126, "grid: link error: example:nope/launch@1.0.0");
}
