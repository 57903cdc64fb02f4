//! Jobs that run to their end: output, args, env, stdin, exit codes, mapped
//! directories, text modules, streaming, routing across nodes.

use crate::guests::{self, guest};
use grid_tests::{GridSandbox, example};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

#[test]
fn hello_prints_args_and_env_and_nothing_else() {
    let grid = GridSandbox::start(2);
    let hello = example("hello");
    let run = grid.run(&["run", "--env", "GREETING=Hi", hello.to_str().unwrap(), "--", "grid", "--flag"]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "Hi, grid --flag!\narg 1: grid\narg 2: --flag\n");
    assert_eq!(run.stderr, "");
}

#[test]
fn stdin_reaches_the_guest() {
    let grid = GridSandbox::start(2);
    let wc = example("wc");
    let run = grid.run_with_stdin(&["run", wc.to_str().unwrap()], b"one two three\nfour five\n");
    run.assert_clean_success();
    assert_eq!(run.stdout.trim(), "2 5 24");
}

#[test]
fn exit_codes_pass_through() {
    let grid = GridSandbox::start(2);
    // WASI preview 1 exit codes run from 0 to 125.
    for code in [0, 1, 42, 125] {
        let module = grid.wat(&format!("exit{code}"), &guest(&format!("(call $exit (i32.const {code}))")));
        let run = grid.run(&["run", module.to_str().unwrap()]);
        assert_eq!(run.code, Some(code), "{run:#?}");
        assert!(run.grid_lines().is_empty(), "{run:#?}");
    }
    let module = grid.wat("exit200", &guest("(call $exit (i32.const 200))"));
    grid.run(&["run", module.to_str().unwrap()]).assert_grid_failure(134, "grid: trap: exit with invalid exit status");
}

#[test]
fn text_modules_run_and_stderr_streams_separately() {
    let grid = GridSandbox::start(2);
    let module = grid.wat(
        "both",
        &guest("(call $print (i32.const 200) (i32.const 6)) (call $eprint (i32.const 220) (i32.const 7))"),
    );
    let run = grid.run(&["run", module.to_str().unwrap()]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "first\n");
    assert_eq!(run.stderr, "second\n");
}

#[test]
fn mapped_dir_is_written_back() {
    let grid = GridSandbox::start(2);
    let data = grid.dir().join("data");
    std::fs::create_dir_all(data.join("nested")).unwrap();
    std::fs::write(data.join("a.txt"), "alpha").unwrap();
    std::fs::write(data.join("b.txt"), "beta").unwrap();
    std::fs::write(data.join("scratch.tmp"), "junk").unwrap();
    std::fs::write(data.join("nested/keep.bin"), [0u8, 1, 2]).unwrap();
    std::os::unix::fs::symlink("a.txt", data.join("link.txt")).unwrap();
    let files = example("files");
    let dir_arg = format!("{}::/data", data.display());
    let run = grid.run(&["run", "--dir", &dir_arg, files.to_str().unwrap()]);
    run.assert_clean_success();
    assert_eq!(std::fs::read_to_string(data.join("upper/a.txt")).unwrap(), "ALPHA");
    assert_eq!(std::fs::read_to_string(data.join("upper/b.txt")).unwrap(), "BETA");
    assert_eq!(std::fs::read_to_string(data.join("summary.txt")).unwrap(), "2 files, 9 bytes\n");
    assert!(!data.join("scratch.tmp").exists(), "deleted file came back");
    assert_eq!(std::fs::read(data.join("nested/keep.bin")).unwrap(), [0, 1, 2]);
    assert_eq!(std::fs::read_link(data.join("link.txt")).unwrap().to_str(), Some("a.txt"));
}

/// Scratch space on the node is for mapped directories: a job without any
/// runs without a scratch directory, one with them gets one.
#[test]
fn only_a_job_that_maps_directories_gets_scratch_space() {
    let grid = GridSandbox::start(1);
    let jobs = grid.dir().join("node-0/jobs");
    // Scratch directories under the node's per-process scratch roots.
    let scratch_dirs = || -> usize {
        std::fs::read_dir(&jobs).unwrap().map(|root| std::fs::read_dir(root.unwrap().path()).unwrap().count()).sum()
    };
    let nap =
        grid.wat("nap", &guest("(call $print (i32.const 200) (i32.const 6)) (call $sleep (i64.const 3000000000))"));
    let data = grid.dir().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let dir_arg = format!("{}::/data", data.display());
    for (dirs, expected) in [(&[][..], 0), (&["--dir", dir_arg.as_str()][..], 1)] {
        let mut args = dirs.to_vec();
        args.push(nap.to_str().unwrap());
        let id = grid.submit(&args);
        // Once the guest has printed, it runs: its scratch space is made by then.
        grid.wait_until("the job to print", |g| (g.run(&["logs", &id]).stdout == "first\n").then_some(()));
        assert_eq!(scratch_dirs(), expected, "with {dirs:?}");
        grid.run(&["wait", &id]).assert_clean_success();
        assert_eq!(scratch_dirs(), 0, "a scratch directory outlived its job");
    }
}

#[test]
fn output_streams_while_the_job_runs() {
    let grid = GridSandbox::start(1);
    let module = grid.wat("slow", &guest("(call $print (i32.const 200) (i32.const 6)) (call $sleep (i64.const 3000000000)) (call $print (i32.const 220) (i32.const 7))"));
    let mut child =
        grid.cli(&["run", module.to_str().unwrap()]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    assert!(child.try_wait().unwrap().is_none(), "first line arrived only after the job ended");
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "second\n");
    assert!(child.wait().unwrap().success());
}

#[test]
fn cpu_bound_example_gives_the_known_answer() {
    let grid = GridSandbox::start(2);
    let primes = example("primes");
    let run = grid.run(&["run", primes.to_str().unwrap(), "--", "100000"]);
    run.assert_clean_success();
    assert!(run.stdout.starts_with("primes below 100000: 9592,"), "{run:#?}");
}

#[test]
fn nodes_lists_every_node_with_its_capacity() {
    let grid =
        GridSandbox::builder(2).node_args(&["--slots", "3", "--memory", "1GiB", "--fuel-quota", "50G/h"]).start();
    let run = grid.run(&["nodes"]);
    run.assert_clean_success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{run:#?}");
    for name in ["node-0", "node-1"] {
        let row = lines.iter().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing: {run:#?}"));
        assert!(row.contains("0/3") && row.contains("1.0 GiB") && row.contains("50G"), "{row}");
        assert_eq!(grid.node(name)["slots_total"], 3, "{name}");
    }
}

/// The node each job ran on, as `grid-cli jobs --json` lists them.
fn nodes_jobs_ran_on(grid: &GridSandbox) -> Vec<String> {
    grid.jobs().iter().map(|j| j["node"].as_str().unwrap_or_else(|| panic!("no node in {j}")).to_owned()).collect()
}

#[test]
fn jobs_spread_over_nodes_and_modules_run_warm_from_cache() {
    let grid = GridSandbox::builder(2).node_args(&["--slots", "1"]).start();
    // A job holds one node's only slot; the next must go to the other node.
    let sleeper = grid.wat(
        "sleeper",
        &guest(&format!("{} (call $print (i32.const 200) (i32.const 6))", "(call $sleep (i64.const 2000000000))")),
    );
    let first = grid.cli(&["run", sleeper.to_str().unwrap()]).stdout(Stdio::piped()).spawn().unwrap();
    grid.wait_until("the first job is running", |g| g.nodes().iter().any(|n| n["slots_used"] == 1).then_some(()));
    let second = grid.run(&["run", sleeper.to_str().unwrap()]);
    assert_eq!(second.code, Some(0), "{second:#?}");
    first.wait_with_output().unwrap();
    let nodes = nodes_jobs_ran_on(&grid);
    assert!(
        nodes.len() == 2 && nodes.iter().all(|n| !n.is_empty()) && nodes[0] != nodes[1],
        "both jobs on one node: {nodes:?}"
    );
}

#[test]
fn a_rerun_goes_to_the_node_that_caches_the_module() {
    let grid = GridSandbox::start(2);
    let module = grid.wat("hello", &guests::hello());
    // After the first run, the first node has burned fuel, so the other has
    // more to spare; the cached module still wins, three times over.
    for _ in 0..4 {
        let run = grid.run(&["run", module.to_str().unwrap()]);
        assert_eq!(run.code, Some(0), "{run:#?}");
    }
    let nodes = nodes_jobs_ran_on(&grid);
    assert!(nodes.len() == 4 && !nodes[0].is_empty() && nodes.iter().all(|n| *n == nodes[0]), "{nodes:?}");
}

#[test]
fn embedded_grid_runs_without_a_master() {
    let home = tempfile::tempdir().unwrap();
    let hello = example("hello");
    let out = grid_tests::bare_cli()
        .args(["run", hello.to_str().unwrap(), "--", "newcomer"])
        .env("XDG_CACHE_HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = grid_tests::Run::from(out);
    run.assert_clean_success();
    assert_eq!(run.stdout, "Hello, newcomer!\narg 1: newcomer\n");
    assert_eq!(run.stderr, "");
    assert!(home.path().join("wasm-grid/embedded/master/modules").is_dir());
}
