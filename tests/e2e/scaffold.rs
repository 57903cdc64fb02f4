//! `grid-cli new`: the project it makes builds offline and runs on the grid
//! on the first try.

use grid_tests::{GridSandbox, Run, bin};
use std::process::Command;

#[test]
fn a_new_guest_builds_and_runs_on_the_grid() {
    let grid = GridSandbox::start(1);
    let project = grid.dir().join("my-guest");
    let made = Run::from(Command::new(bin("grid-cli")).arg("new").arg(&project).output().unwrap());
    assert_eq!(made.code, Some(0), "{made:#?}");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(cargo)
        .args(["build", "--release", "--offline", "--quiet"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", project.join("target"))
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", String::from_utf8_lossy(&build.stderr));
    let wasm = project.join("target/wasm32-wasip1/release/my-guest.wasm");
    let run = grid.run_with_stdin(&["run", wasm.to_str().unwrap(), "--", "tester"], b"three little words");
    run.assert_clean_success();
    assert_eq!(run.stdout, "hello, tester: 3 words\n");
    // Its error path: a message on stderr and exit code 1.
    let empty = grid.run_with_stdin(&["run", wasm.to_str().unwrap()], b"");
    assert_eq!(empty.code, Some(1));
    assert!(empty.stderr.starts_with("error: nothing on stdin"), "{empty:#?}");
}

#[test]
fn new_refuses_bad_names_and_existing_dirs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    for (path, why) in [(dir.path().join("9lives"), "not a package name"), (dir.path().join("taken"), "already exists")]
    {
        let run = Run::from(Command::new(bin("grid-cli")).arg("new").arg(&path).output().unwrap());
        run.assert_grid_failure(125, why);
    }
}
