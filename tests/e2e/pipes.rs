//! A closed pipe downstream (`grid-cli status ID | head -1` after `head`
//! has gone) is a quiet, successful exit in every verb, as in ripgrep.

use grid_tests::{GridSandbox, Run, example};
use std::process::Stdio;

/// `grid-cli ARGS` with its stdout a pipe whose reading end is already
/// closed, so that its first write fails with a broken pipe.
fn into_closed_pipe(grid: &GridSandbox, args: &[&str]) -> Run {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = grid.cli(args).stdout(Stdio::from(writer)).stderr(Stdio::piped()).output().expect("run grid-cli");
    Run::from(out)
}

#[test]
fn every_verb_exits_quietly_into_a_closed_pipe() {
    let grid = GridSandbox::start(1);
    let hello = example("hello");
    let id = grid.submit(&[hello.to_str().unwrap()]);
    grid.wait_finished(&id);
    for args in [
        vec!["status", &id],
        vec!["status", "--json", &id],
        vec!["jobs"],
        vec!["jobs", "--json"],
        vec!["nodes"],
        vec!["nodes", "--json"],
        vec!["logs", &id],
        vec!["submit", hello.to_str().unwrap()],
        vec!["run", hello.to_str().unwrap()],
        vec!["cancel", &id],
    ] {
        let run = into_closed_pipe(&grid, &args);
        assert_eq!(run.code, Some(0), "`grid-cli {}` into a closed pipe: {run:#?}", args.join(" "));
        assert!(!run.stderr.contains("panicked"), "`grid-cli {}` panicked: {run:#?}", args.join(" "));
        assert!(run.grid_lines().is_empty(), "`grid-cli {}` complained: {run:#?}", args.join(" "));
    }
}

#[test]
fn a_closed_stderr_leaves_run_its_stdout_and_its_job() {
    let grid = GridSandbox::start(1);
    // stderr first, then (a moment later) stdout, then exit 3.
    let body = "(call $eprint (i32.const 200) (i32.const 6)) (call $sleep (i64.const 200000000)) \
                (call $print (i32.const 220) (i32.const 7)) (call $exit (i32.const 3))";
    let module = grid.wat("both", &crate::guests::guest(body));
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = grid
        .cli(&["run", module.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(writer))
        .output()
        .expect("run grid-cli");
    assert_eq!(out.status.code(), Some(3), "{out:#?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "second\n");
}
