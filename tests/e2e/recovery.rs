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

    grid.kill_node(0);
    grid.restart_node(0, &[]);
    let nodes = grid.run(&["nodes", "--json"]);
    assert!(nodes.stdout.contains("\"cached_modules\": 1"), "the node forgot its cache: {nodes:#?}");
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
