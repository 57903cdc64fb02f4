//! Compiling a module: bounded by the node's own limits (`--compile-timeout`,
//! `--compile-memory`), never charged against the job's.

use crate::guests::{guest_with, hello};
use grid_tests::GridSandbox;

/// A module of `n` functions, each a small loop, whose `_start` calls the
/// last and prints `first`: big enough to take the compiler seconds in a
/// debug build, and instants to run.
fn many_functions(n: usize) -> String {
    let mut fields = String::new();
    for i in 0..n {
        fields.push_str(&format!(
            "(func $f{i} (param $x i64) (result i64) (local $i i64)
               (loop $l (local.set $x (i64.add (i64.mul (local.get $x) (i64.const {i})) (i64.const 7)))
                 (local.set $i (i64.add (local.get $i) (i64.const 1)))
                 (br_if $l (i64.lt_u (local.get $i) (i64.const 3))))
               (i64.xor (local.get $x) (i64.const {i})))\n"
        ));
    }
    guest_with(&fields, &format!("(drop (call $f{} (i64.const 1))) (call $print (i32.const 200) (i32.const 6))", n - 1))
}

/// Runs `module` on a node started with `node_args`: its job fails with
/// `reason`, and the node serves on.
fn fails_to_compile(node_args: &[&str], module: &str, reason: &str) {
    let mut grid = GridSandbox::builder(1).node_args(node_args).start();
    let module = grid.wat("module", module);
    grid.run(&["run", module.to_str().unwrap()]).assert_grid_failure(126, reason);
    assert!(grid.all_alive(), "a server process died");
    assert_eq!(grid.nodes().len(), 1, "the node still serves");
}

#[test]
fn a_compile_past_the_node_s_time_limit_fails_the_job_as_an_invalid_module() {
    let reason = "grid: invalid module: compile took longer than 10ms";
    fails_to_compile(&["--compile-timeout", "10ms"], &many_functions(3000), reason);
}

#[test]
fn a_compile_past_the_node_s_memory_limit_fails_the_job_as_an_invalid_module() {
    let reason = "grid: invalid module: compile needed more than 32MiB of memory";
    fails_to_compile(&["--compile-memory", "32MiB"], &hello(), reason);
}

#[test]
fn compiling_is_not_charged_against_the_job_s_timeout() {
    let grid = GridSandbox::start(1);
    // The compile takes far longer than the job may run; the run itself
    // takes far less.
    let module = grid.wat("many", &many_functions(3000));
    let run = grid.run(&["run", "--timeout", "50ms", module.to_str().unwrap()]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "first\n");
    // The node told the master, which started the job's clock after it.
    let log = grid.master_log();
    assert!(log.contains("the job's node compiles its module"), "{log}");
    assert!(log.contains("the job's node compiled its module; the job starts"), "{log}");
}

#[test]
fn many_jobs_of_one_new_module_compile_it_once() {
    let grid = GridSandbox::start(1);
    let module = grid.wat("many", &many_functions(500));
    let ids: Vec<String> = (0..6).map(|_| grid.submit(&[module.to_str().unwrap()])).collect();
    for id in &ids {
        grid.run(&["wait", id]).assert_clean_success();
    }
    let compiled = grid.node_log("node-0").matches("module compiled").count();
    assert_eq!(compiled, 1, "one compile for six jobs: {}", grid.node_log("node-0"));
}
