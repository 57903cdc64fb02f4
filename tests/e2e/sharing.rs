//! Sharing one node fairly: long jobs do not starve short ones or the
//! node's heartbeats; Ctrl-C cancels on the grid; a node shutting down
//! finishes or hands back its jobs.

use crate::guests::{self, guest};
use grid_tests::{GridSandbox, Run, hostile};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn cpu_burners_do_not_starve_a_short_job_or_heartbeats() {
    let grid = GridSandbox::builder(1).node_args(&["--slots", "3"]).start();
    let spin = hostile("infinite-loop.wat");
    let burners: Vec<_> = (0..2)
        .map(|_| {
            grid.cli(&["run", "--fuel", "100G", "--timeout", "6s", spin.to_str().unwrap()])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    grid.wait_until("both burners run", |g| (g.slots("node-0") == (2, 3)).then_some(()));
    let started = Instant::now();
    let short = grid.run(&["run", grid.wat("short", &guests::hello()).to_str().unwrap()]);
    short.assert_clean_success();
    assert!(started.elapsed() < Duration::from_secs(4), "the short job took {:?}", started.elapsed());
    for burner in burners {
        // Ended by their own timeout, not by the node being dropped for
        // missed heartbeats (a node error).
        Run::from(burner.wait_with_output().unwrap()).assert_grid_failure(124, "grid: timeout");
    }
}

#[test]
fn ctrl_c_cancels_the_job_on_the_grid() {
    let grid = GridSandbox::builder(1).node_args(&["--slots", "1"]).start();
    let sleeper = hostile("sleep.wat");
    let cli = grid.cli(&["run", "--timeout", "10m", sleeper.to_str().unwrap()]).stderr(Stdio::piped()).spawn().unwrap();
    grid.wait_until("the job runs", |g| (g.slots("node-0") == (1, 1)).then_some(()));
    let status = std::process::Command::new("kill").args(["-INT", &cli.id().to_string()]).status().unwrap();
    assert!(status.success());
    Run::from(cli.wait_with_output().unwrap()).assert_grid_failure(130, "grid: cancelled");
    grid.wait_until("the slot is free again", |g| (g.slots("node-0") == (0, 1)).then_some(()));
}

/// A guest that never leaves wasm (no host call to end it in) still stops
/// at once when cancelled, long before its fuel or its timeout would end it.
#[test]
fn cancel_stops_a_spinning_job_promptly() {
    let grid = GridSandbox::builder(1).node_args(&["--slots", "1"]).start();
    let spin = hostile("infinite-loop.wat");
    let id = grid.submit(&["--fuel", "100G", "--timeout", "10m", spin.to_str().unwrap()]);
    grid.wait_until("the job runs", |g| (g.slots("node-0") == (1, 1)).then_some(()));
    let started = Instant::now();
    assert_eq!(grid.run(&["cancel", &id]).code, Some(0));
    grid.run(&["wait", &id]).assert_grid_failure(130, "grid: cancelled");
    assert!(started.elapsed() < Duration::from_secs(5), "cancelling took {:?}", started.elapsed());
    grid.wait_until("the slot is free again", |g| (g.slots("node-0") == (0, 1)).then_some(()));
}

#[test]
fn sigterm_lets_running_jobs_finish() {
    let mut grid = GridSandbox::builder(1).node_args(&["--grace", "30s"]).start();
    let nap =
        grid.wat("nap", &guest("(call $sleep (i64.const 1000000000)) (call $print (i32.const 200) (i32.const 6))"));
    let cli = grid.cli(&["run", nap.to_str().unwrap()]).stdout(Stdio::piped()).spawn().unwrap();
    grid.wait_until("the job runs", |g| (g.slots("node-0") == (1, 2)).then_some(()));
    grid.signal_node("node-0", "TERM");
    let out = cli.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "first\n");
    assert!(grid.wait_node_exit("node-0"), "the node did not exit cleanly");
}

#[test]
fn sigterm_hands_back_jobs_past_the_grace_period() {
    let mut grid = GridSandbox::builder(1).node_args(&["--grace", "300ms", "--slots", "1"]).start();
    let nap =
        grid.wat("nap", &guest("(call $sleep (i64.const 2000000000)) (call $print (i32.const 200) (i32.const 6))"));
    let cli =
        grid.cli(&["-v", "run", nap.to_str().unwrap()]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    grid.wait_until("the job runs", |g| (g.slots("node-0") == (1, 1)).then_some(()));
    grid.add_node("node-1", &["--slots", "1"]);
    grid.signal_node("node-0", "TERM");
    assert!(grid.wait_node_exit("node-0"), "the node did not exit cleanly");
    let out = Run::from(cli.wait_with_output().unwrap());
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(out.stdout, "first\n", "the job did not finish elsewhere exactly once");
    assert!(out.stderr.contains("running on node `node-1`"), "{out:#?}");
}
