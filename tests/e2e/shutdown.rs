//! The master's clean shutdown and what nodes are to it: a master stopped by
//! SIGTERM or Ctrl-C exits promptly with nodes and watchers connected, and
//! the next master on its data dir gets the nodes back and runs the jobs it
//! handed back; nodes are told apart by name and identity, and `nodes`
//! remembers them across sessions and restarts.

use crate::guests;
use grid_tests::rogue::{self, RogueClient};
use grid_tests::{GridSandbox, Run, number};
use serde_json::Value;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A generous bound on a clean shutdown: the master waits 5 s at most.
const EXIT_WITHIN: Duration = Duration::from_secs(20);

/// Prints `first`, sleeps `secs` seconds, prints `second`, exits 3.
fn napper(grid: &GridSandbox, secs: u64) -> String {
    let body = format!(
        "(call $print (i32.const 200) (i32.const 6)) (call $sleep (i64.const {})) \
         (call $print (i32.const 220) (i32.const 7)) (call $exit (i32.const 3))",
        secs * 1_000_000_000
    );
    grid.wat(&format!("nap{secs}"), &guests::guest(&body)).to_str().unwrap().to_owned()
}

/// `grid-cli ARGS`, running in the background with its output piped.
fn spawn(grid: &GridSandbox, args: &[&str]) -> Child {
    grid.cli(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn grid-cli")
}

/// The one job the master lists once it runs: its id.
fn running_job(grid: &GridSandbox) -> String {
    grid.wait_until("the job runs", |g| {
        let jobs = g.jobs();
        let job = jobs.iter().find(|j| j["state"] == "running")?;
        Some(job["id"].as_str().unwrap().to_owned())
    })
}

/// Node `name` as `nodes --all --json` lists it.
#[track_caller]
fn listed(grid: &GridSandbox, name: &str) -> Value {
    let all = grid.all_nodes();
    all.iter().find(|n| n["name"] == name).cloned().unwrap_or_else(|| panic!("no node `{name}` in {all:#?}"))
}

/// Stops the master with `signal` while a `run` follows a job on one of two
/// nodes; the next master on the same data dir gets both nodes back, runs
/// the job again (its first attempt not counted against it), and the `run`
/// ends with the job's output and exit code.
fn check_clean_shutdown(signal: &str) {
    let mut grid = GridSandbox::builder(2).node_args(&["--slots", "1"]).start();
    let nap = napper(&grid, 3);
    let run = spawn(&grid, &["run", &nap]);
    let id = running_job(&grid);
    let ran_on = grid.status(&id)["node"].as_str().unwrap().to_owned();

    grid.signal_master(signal);
    let started = Instant::now();
    let code = grid.wait_master_exit(EXIT_WITHIN);
    assert_eq!(code, Some(0), "SIG{signal}: the master did not exit cleanly:\n{}", grid.master_log());
    let log = grid.master_log();
    assert!(log.contains("job record flushed"), "{log}");
    eprintln!("SIG{signal}: the master exited after {:?}", started.elapsed());

    grid.restart_master();
    grid.wait_for_nodes();
    let names: Vec<Value> = grid.nodes().iter().map(|n| n["name"].clone()).collect();
    assert_eq!(names, ["node-0", "node-1"], "the nodes did not both rejoin");
    // The node was told why its session ended, and stopped the job.
    let node_log = grid.node_log(&ran_on);
    assert!(node_log.contains("the master is shutting down"), "{node_log}\n{}", grid.master_log());

    let out = Run::from(run.wait_with_output().unwrap());
    assert_eq!(out.code, Some(3), "{out:#?}");
    assert_eq!(out.stdout, "first\nsecond\n", "{out:#?}");
    assert!(out.grid_lines().is_empty(), "{out:#?}");
    let job = grid.status(&id);
    assert_eq!((job["state"].as_str(), number(&job["attempts"])), (Some("failed"), 1), "{job:#}");
    assert_eq!(grid.jobs().len(), 1, "the job was submitted twice");
}

#[test]
fn sigterm_stops_the_master_cleanly_and_the_next_one_runs_its_job() {
    check_clean_shutdown("TERM");
}

#[test]
fn ctrl_c_stops_the_master_cleanly_and_the_next_one_runs_its_job() {
    check_clean_shutdown("INT");
}

#[test]
fn a_master_whose_watcher_and_uploader_stop_still_exits() {
    let mut grid = GridSandbox::start(1);
    let flood = grid.wat("flood", guests::FLOOD_64K);
    let id = grid.submit(&["--output-limit", "16MiB", flood.to_str().unwrap()]);
    grid.wait_finished(&id);
    // It reads the first event of 16 MiB and then nothing.
    let watcher = RogueClient::connect(&grid.admin()).stalled_watch(&id);
    assert!(matches!(watcher.first, Ok(Some(_))), "{:?}", watcher.first);
    // And an upload that sends part of a module and then nothing, which
    // only the master's upload timeout (30 s) would end.
    let upload = RogueClient::connect(&grid.admin()).stalled_upload(&rogue::fake_hashes(1, 1)[0], 1 << 20, 1024);
    grid.signal_master("TERM");
    assert_eq!(grid.wait_master_exit(EXIT_WITHIN), Some(0), "{}", grid.master_log());
    drop((watcher, upload));
}

#[test]
fn a_second_node_with_an_enrolled_node_s_name_is_refused() {
    let mut grid = GridSandbox::start(1);
    let mut twin = grid.node_command("node-0", "twin").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = twin.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < EXIT_WITHIN, "the second `node-0` was not refused");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut twin.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    // Its name is taken when it joins: it gets no credential at all.
    let refusal =
        "grid-node: a node named `node-0` is already enrolled: pick another --name, or revoke that node first";
    assert_eq!(stderr.lines().filter(|l| l.starts_with("grid-node:")).collect::<Vec<_>>(), [refusal], "{stderr}");
    let nodes = grid.nodes();
    assert_eq!(nodes.len(), 1, "{nodes:#?}");
    guests::still_serves(&mut grid);
}

#[test]
fn node_counts_survive_a_master_restart() {
    let mut grid = GridSandbox::start(1);
    let hello = grid.wat("hello", &guests::hello());
    for _ in 0..2 {
        grid.run(&["run", hello.to_str().unwrap()]).assert_clean_success();
    }
    let before = grid.node("node-0");
    assert_eq!(before["jobs_run"], 2, "{before:#}");
    assert_eq!(before["state"], "ready", "{before:#}");
    grid.signal_master("TERM");
    grid.wait_master_exit(EXIT_WITHIN);
    grid.restart_master();
    grid.wait_for_nodes();
    let after = grid.node("node-0");
    assert_eq!((&after["jobs_run"], &after["fuel_burned"]), (&before["jobs_run"], &before["fuel_burned"]), "{after:#}");
    assert_eq!(after["first_seen_ms"], before["first_seen_ms"], "{after:#}");
    grid.run(&["run", hello.to_str().unwrap()]).assert_clean_success();
    assert_eq!(grid.node("node-0")["jobs_run"], 3);
}

#[test]
fn a_draining_node_shows_as_draining_and_once_it_has_left_as_gone() {
    let mut grid = GridSandbox::builder(2).node_args(&["--slots", "1"]).start();
    let nap = napper(&grid, 3);
    let id = grid.submit(&[&nap]);
    let node = grid.wait_until("the job runs", |g| {
        let job = g.status(&id);
        (job["state"] == "running").then(|| job["node"].as_str().unwrap().to_owned())
    });
    grid.signal_node(&node, "TERM");
    grid.wait_until("the node drains", |g| (g.node(&node)["state"] == "draining").then_some(()));
    let others: Vec<Value> = grid.nodes().into_iter().filter(|n| n["name"] != node.as_str()).collect();
    assert_eq!(others[0]["state"], "ready", "{others:#?}");
    assert!(grid.wait_node_exit(&node), "the draining node did not exit cleanly");
    grid.wait_node_gone(&node);
    assert_eq!(grid.status(&id)["state"], "failed", "the job did not run to its end (exit 3)");
    let gone = listed(&grid, &node);
    assert_eq!((gone["state"].as_str(), number(&gone["jobs_run"])), (Some("gone"), 1), "{gone:#}");
    assert!(number(&gone["last_seen_ms"]) >= number(&gone["first_seen_ms"]), "{gone:#}");
    // The listing without --all shows only the connected node.
    assert_eq!(grid.nodes().len(), 1);
    // Under --all, connected nodes come first.
    assert_eq!(grid.all_nodes()[0]["state"], "ready");
}
