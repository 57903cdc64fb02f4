//! `grid-cli new`: the project it makes, in each language, builds with its
//! own build command and runs on the grid on the first try.

use grid_tests::{GridSandbox, Run, bin};
use std::process::Command;

/// Scaffolds a `lang` project named `name` in the sandbox, runs the `build`
/// commands in it, and checks that the `.wasm` at `wasm` (relative to the
/// project) greets its argument, counts words, and fails cleanly on empty
/// stdin.
#[track_caller]
fn check(grid: &GridSandbox, lang: &str, name: &str, build: &[&[&str]], wasm: &str) {
    let project = grid.dir().join(name);
    let made = Run::from(Command::new(bin("grid-cli")).args(["new", "--lang", lang]).arg(&project).output().unwrap());
    assert_eq!(made.code, Some(0), "{lang}: {made:#?}");
    for step in build {
        let program = match step[0] {
            "cargo" => std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            other => other.to_owned(),
        };
        let out = Command::new(&program)
            .args(&step[1..])
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", project.join("target"))
            .output()
            .unwrap_or_else(|e| panic!("{lang}: cannot run `{program}`: {e}"));
        assert!(out.status.success(), "{lang}: `{}` failed: {}", step.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    let wasm = project.join(wasm);
    let run = grid.run_with_stdin(&["run", wasm.to_str().unwrap(), "--", "tester"], b"three little words");
    run.assert_clean_success();
    assert_eq!(run.stdout, "hello, tester: 3 words\n", "{lang}");
    // Its error path: a message on stderr and exit code 1.
    let empty = grid.run_with_stdin(&["run", wasm.to_str().unwrap()], b"");
    assert_eq!(empty.code, Some(1), "{lang}: {empty:#?}");
    assert!(empty.stderr.starts_with("error: nothing on stdin"), "{lang}: {empty:#?}");
}

#[test]
fn a_new_rust_guest_builds_offline_and_runs_on_the_grid() {
    let grid = GridSandbox::start(1);
    let build: &[&[&str]] = &[&["cargo", "build", "--release", "--offline", "--quiet"]];
    check(&grid, "rust", "my-guest", build, "target/wasm32-wasip1/release/my-guest.wasm");
}

#[test]
fn a_new_c_guest_builds_with_make_and_runs_on_the_grid() {
    let grid = GridSandbox::start(1);
    check(&grid, "c", "my-c-guest", &[&["make", "--silent"]], "my-c-guest.wasm");
}

/// `npm install` reaches the registry only for what the npm cache lacks:
/// `scripts/setup` filled it with the same versions for the AssemblyScript
/// example.
#[test]
fn a_new_assemblyscript_guest_builds_with_npm_and_runs_on_the_grid() {
    let grid = GridSandbox::start(1);
    let install = ["npm", "install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"];
    let build: &[&[&str]] = &[&install, &["npm", "run", "--silent", "build"]];
    check(&grid, "assemblyscript", "My-AS-guest", build, "build/My-AS-guest.wasm");
}

#[test]
fn new_refuses_bad_names_and_existing_dirs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    for (path, why) in [(dir.path().join("9lives"), "not a package name"), (dir.path().join("taken"), "already exists")]
    {
        let run = Run::from(Command::new(bin("grid-cli")).arg("new").arg(&path).output().unwrap());
        run.assert_grid_failure(2, why);
    }
}
