//! Volunteer quotas hold: per-job ceilings, the fuel bucket, total memory,
//! scratch space and the module cache, each pushed past its limit.

use crate::guests::{self, guest};
use grid_tests::{GridSandbox, hostile, number};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

#[test]
fn jobs_over_every_node_s_ceilings_are_refused_at_once() {
    let grid = GridSandbox::builder(2).node_args(&["--max-job-fuel", "1G", "--max-job-memory", "64MiB"]).start();
    let module = grid.wat("ok", &guests::hello());
    let m = module.to_str().unwrap();
    grid.run(&["run", "--fuel", "2G", m]).assert_grid_failure(125, "job asks for 2G of fuel (the most is 1G)");
    grid.run(&["run", "--fuel", "1G", "--memory", "65MiB", m]).assert_grid_failure(125, "memory");
    grid.run(&["run", "--fuel", "1G", "--memory", "64MiB", m]).assert_clean_success();
}

#[test]
fn the_fuel_quota_is_a_bucket_billed_by_what_jobs_burn() {
    // 3G an hour: a refill of under a million a second, nothing in a test's time.
    let grid = GridSandbox::builder(1).node_args(&["--fuel-quota", "3G/h", "--summary-every", "200ms"]).start();
    let burn = hostile("fuel-burn.wat");
    grid.run(&["run", "--fuel", "2G", burn.to_str().unwrap()]).assert_grid_failure(123, "out of fuel");
    let node = grid.node("node-0");
    assert_eq!(node["jobs_run"], 1, "{node:#}");
    assert!(number(&node["fuel_burned"]) >= 2_000_000_000, "{node:#}");
    let left = number(&node["fuel_available"]);
    assert!((1_000_000_000..1_100_000_000).contains(&left), "{node:#}");

    // A job that reserves more than is left waits; one that fits runs.
    let mut waiting =
        grid.cli(&["-v", "run", "--fuel", "2G", burn.to_str().unwrap()]).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(waiting.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("queued"), "{line}");
    let small = grid.wat("small", &guests::hello());
    grid.run(&["run", "--fuel", "500M", small.to_str().unwrap()]).assert_clean_success();
    assert!(waiting.try_wait().unwrap().is_none(), "a job ran past the node's fuel quota");
    let node = grid.node("node-0");
    assert_eq!(node["slots_used"], 0, "{node:#}");
    waiting.kill().unwrap();
    let _ = waiting.wait();

    // The volunteer sees what was given in the node's own log too.
    grid.wait_until("a summary line", |g| g.node_log("node-0").contains("summary: 2 jobs run").then_some(()));
}

#[test]
fn total_memory_is_shared_not_oversold() {
    let grid = GridSandbox::builder(1).node_args(&["--slots", "4", "--memory", "128MiB"]).start();
    let nap =
        grid.wat("nap", &guest("(call $sleep (i64.const 1500000000)) (call $print (i32.const 200) (i32.const 6))"));
    let nap = nap.to_str().unwrap();
    let first = grid.cli(&["run", "--memory", "100MiB", nap]).stdout(Stdio::piped()).spawn().unwrap();
    grid.wait_until("the first job runs", |g| (g.node("node-0")["slots_used"] == 1).then_some(()));
    let mut second = grid
        .cli(&["-v", "run", "--memory", "100MiB", nap])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(second.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("queued"), "{line}");
    // Submitted, but 100 + 100 MiB does not fit in 128 MiB: it waits.
    let node = grid.node("node-0");
    assert_eq!(node["slots_used"], 1, "two 100 MiB jobs on a 128 MiB node: {node:#}");
    assert!(first.wait_with_output().unwrap().status.success());
    let out = second.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "first\n");
}

#[test]
fn scratch_space_is_bounded_per_node() {
    let grid = GridSandbox::builder(1).node_args(&["--disk", "2MiB"]).start();
    let data = grid.dir().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let module = grid.wat("ok", &guests::hello());
    let dir_arg = format!("{}::/data", data.display());
    grid.run(&["run", "--dir", &dir_arg, module.to_str().unwrap()]).assert_grid_failure(125, "disk");
    grid.run(&["run", "--disk-limit", "1MiB", "--dir", &dir_arg, module.to_str().unwrap()]).assert_clean_success();
    // Writing past it ends the job.
    let run = grid.run(&["run", "--disk-limit", "1MiB", "--dir", &dir_arg, hostile("huge-file.wat").to_str().unwrap()]);
    run.assert_grid_failure(127, "grid: disk limit");
}

#[test]
fn the_module_cache_evicts_least_recently_used() {
    // Room for one small module only.
    let grid = GridSandbox::builder(1).node_args(&["--cache-size", "1KiB"]).start();
    let a = grid.wat("a", &guests::hello());
    let b = grid.wat("b", &guest("(call $print (i32.const 220) (i32.const 7))"));
    grid.run(&["run", a.to_str().unwrap()]).assert_clean_success();
    grid.run(&["run", b.to_str().unwrap()]).assert_clean_success();
    let artifacts = std::fs::read_dir(grid.dir().join("node-0/modules"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "cwasm"))
        .count();
    assert_eq!(artifacts, 1, "the cache holds more than its size");
    grid.wait_until("the master hears of the eviction", |g| (g.node("node-0")["cached_modules"] == 1).then_some(()));
    // An evicted module still runs: it is fetched and compiled again.
    let run = grid.run(&["run", a.to_str().unwrap()]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "first\n");
}
