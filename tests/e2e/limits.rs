//! Limits: each ends its job with a named reason and exit code, never the
//! node.

use crate::guests::{self, guest};
use grid_tests::GridSandbox;

use crate::guests::still_serves;

#[test]
fn out_of_fuel() {
    let mut grid = GridSandbox::start(2);
    let path = grid.wat("spin", &guest(guests::SPIN));
    let run = grid.run(&["run", "--fuel", "1000000", path.to_str().unwrap()]);
    run.assert_grid_failure(123, "grid: out of fuel after 1000000 units");
    still_serves(&mut grid);
}

#[test]
fn memory_limit() {
    let mut grid = GridSandbox::start(2);
    let path = grid.wat("bomb", &guest(guests::MEMORY_BOMB));
    let run = grid.run(&["run", "--memory", "8MiB", path.to_str().unwrap()]);
    run.assert_grid_failure(122, "grid: memory limit");
    still_serves(&mut grid);
}

#[test]
fn memory_declared_over_the_limit() {
    let grid = GridSandbox::start(1);
    let path = grid.wat("big", r#"(module (memory (export "memory") 1000) (func (export "_start")))"#);
    grid.run(&["run", "--memory", "1MiB", path.to_str().unwrap()]).assert_grid_failure(122, "grid: memory limit");
}

#[test]
fn timeout_of_a_busy_guest() {
    let mut grid = GridSandbox::start(2);
    let path = grid.wat("spin", &guest(guests::SPIN));
    let run = grid.run(&["run", "--fuel", "100G", "--timeout", "1s", path.to_str().unwrap()]);
    run.assert_grid_failure(124, "grid: timeout");
    still_serves(&mut grid);
}

#[test]
fn timeout_of_a_guest_asleep_in_a_host_call() {
    let mut grid = GridSandbox::start(2);
    let path = grid.wat("sleep", &guest(guests::SLEEP_MINUTE));
    let started = std::time::Instant::now();
    let run = grid.run(&["run", "--timeout", "1s", path.to_str().unwrap()]);
    run.assert_grid_failure(124, "grid: timeout");
    // Far below the minute the guest asked for.
    assert!(started.elapsed().as_secs() < 30, "took {:?}", started.elapsed());
    still_serves(&mut grid);
}

#[test]
fn output_flood() {
    let mut grid = GridSandbox::start(2);
    let path = grid.wat("flood", &guest(guests::FLOOD));
    let run = grid.run(&["run", "--output-limit", "64KiB", path.to_str().unwrap()]);
    run.assert_grid_failure(121, "grid: output limit");
    assert!(run.stdout.len() <= 64 << 10, "more than the limit came through: {}", run.stdout.len());
    assert!(run.stdout.starts_with("first\nfirst\n"));
    still_serves(&mut grid);
}

#[test]
fn stats_report_fuel_memory_and_node() {
    let grid = GridSandbox::start(1);
    let path = grid.wat("hello", &guests::hello());
    let run = grid.run(&["run", "--stats", path.to_str().unwrap()]);
    assert_eq!(run.code, Some(0));
    let line = run.grid_lines().into_iter().next().unwrap_or_else(|| panic!("no stats line: {run:#?}"));
    assert!(
        line.contains("node `node-0`") && line.contains("fuel ") && line.contains("peak memory 64.0 KiB"),
        "{line}"
    );
}
