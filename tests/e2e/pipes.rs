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
