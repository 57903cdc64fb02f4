//! The grid recovers by itself: nodes reconnect to a restarted master, and
//! a restarted node runs cached modules without compiling them again.

use crate::guests;
use grid_tests::GridSandbox;

#[test]
fn nodes_reconnect_to_a_restarted_master() {
    let mut grid = GridSandbox::start(2);
    let module = grid.wat("hello", &guests::hello());
    grid.run(&["run", module.to_str().unwrap()]).assert_clean_success();
    grid.restart_master();
    // The new master knows no nodes until they come back by themselves.
    grid.wait_for_nodes();
    let run = grid.run(&["run", module.to_str().unwrap()]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "first\n");
}

#[test]
fn a_restarted_node_keeps_its_compiled_modules() {
    let mut grid = GridSandbox::start(1);
    let module = grid.wat("hello", &guests::hello());
    grid.run(&["run", module.to_str().unwrap()]).assert_clean_success();
    let modules = grid.dir().join("node-0/modules");
    let artifact = std::fs::read_dir(&modules)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("a compiled artifact on disk");
    let compiled_at = std::fs::metadata(&artifact).unwrap().modified().unwrap();

    grid.kill_node("node-0");
    grid.restart_node("node-0", &[]);
    let node = grid.node("node-0");
    assert_eq!(node["cached_modules"], 1, "the node forgot its cache: {node:#}");
    grid.run(&["run", module.to_str().unwrap()]).assert_clean_success();
    assert_eq!(std::fs::metadata(&artifact).unwrap().modified().unwrap(), compiled_at, "the module was compiled again");
}

#[test]
fn jobs_wait_in_the_queue_until_a_slot_frees() {
    let grid = GridSandbox::builder(1).node_args(&["--slots", "1"]).start();
    let module = grid
        .wat("nap", &guests::guest("(call $sleep (i64.const 300000000)) (call $print (i32.const 200) (i32.const 6))"));
    let children: Vec<_> = (0..4)
        .map(|_| grid.cli(&["run", module.to_str().unwrap()]).stdout(std::process::Stdio::piped()).spawn().unwrap())
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "first\n");
    }
}

#[test]
fn a_module_over_the_master_size_limit_is_refused() {
    let mut grid = GridSandbox::builder(1).master_args(&["--max-module-size", "1KiB"]).start();
    let big = grid.wat("big", &guests::guest(&"(nop)".repeat(2000)));
    let run = grid.run(&["run", big.to_str().unwrap()]);
    run.assert_grid_failure(125, "over the master's limit of 1024 bytes");
    assert!(grid.all_alive());
    grid.run(&["run", grid.wat("ok", &guests::hello()).to_str().unwrap()]).assert_clean_success();
}

/// A guest that sleeps `secs` seconds, then prints `first`.
fn napper(grid: &GridSandbox, secs: u64) -> std::path::PathBuf {
    grid.wat(
        &format!("nap{secs}"),
        &guests::guest(&format!(
            "(call $sleep (i64.const {})) (call $print (i32.const 200) (i32.const 6))",
            secs * 1_000_000_000
        )),
    )
}

#[test]
fn a_job_whose_node_is_killed_finishes_on_another_once() {
    let mut grid = GridSandbox::builder(2).node_args(&["--slots", "1"]).start();
    let nap = napper(&grid, 2);
    let id = grid.submit(&[nap.to_str().unwrap()]);
    let node = grid.wait_until("the job runs", |g| {
        let status = g.status(&id);
        (status["state"] == "running").then(|| status["node"].as_str().unwrap().to_owned())
    });
    grid.kill_node(&node);
    grid.run(&["wait", &id]).assert_clean_success();
    let status = grid.status(&id);
    assert_eq!(status["attempts"], 2, "{status:#}");
    assert_ne!(status["node"], node.as_str(), "{status:#}");
    assert_eq!(grid.run(&["logs", &id]).stdout, "first\n", "output of one attempt only");
    assert_eq!(grid.jobs().len(), 1);
    // The operator sees which node lost it, once it is back.
    grid.restart_node(&node, &["--slots", "1"]);
    let lost_on = grid.node(&node);
    assert_eq!(lost_on["lost_jobs"], 1, "{lost_on:#}");
}

#[test]
fn killing_the_master_loses_no_job() {
    let mut grid = GridSandbox::builder(1).node_args(&["--slots", "1"]).start();
    let nap = napper(&grid, 1);
    let ids: Vec<String> = (0..4).map(|_| grid.submit(&[nap.to_str().unwrap()])).collect();
    grid.wait_until("one job runs", |g| (g.status(&ids[0])["state"] == "running").then_some(()));
    grid.restart_master();
    grid.wait_for_nodes();
    for id in &ids {
        grid.run(&["wait", id]).assert_clean_success();
        assert_eq!(grid.run(&["logs", id]).stdout, "first\n");
    }
    let all = grid.jobs();
    assert_eq!(all.len(), 4, "jobs lost or duplicated: {all:#?}");
    assert_eq!(all.iter().filter(|j| j["state"] == "succeeded").count(), 4, "{all:#?}");
    // The one running when the master died ran on, on its node: once.
    assert!(all.iter().all(|j| j["attempts"] == 1), "a job ran again: {all:#?}");
    // Finished jobs outlive another restart, output and all.
    grid.restart_master();
    assert_eq!(grid.run(&["logs", &ids[3]]).stdout, "first\n");
    assert_eq!(grid.status(&ids[3])["state"], "succeeded");
}

#[test]
fn run_follows_its_job_across_a_master_restart() {
    let mut grid = GridSandbox::start(1);
    let nap = napper(&grid, 2);
    let cli = grid
        .cli(&["run", nap.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    grid.wait_until("the job runs", |g| g.jobs().iter().any(|j| j["state"] == "running").then_some(()));
    grid.restart_master();
    let out = grid_tests::Run::from(cli.wait_with_output().unwrap());
    out.assert_clean_success();
    assert_eq!(out.stdout, "first\n");
    let all = grid.jobs();
    assert_eq!(all.len(), 1, "the job was submitted twice: {all:#?}");
    assert_eq!(all[0]["attempts"], 1, "the job ran again: {all:#?}");
}
