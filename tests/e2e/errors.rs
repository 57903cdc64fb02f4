//! Bad input: each gets one `grid:` line and its exit code, and the grid
//! keeps serving afterwards.

use crate::guests::{self, guest};
use grid_tests::GridSandbox;

use crate::guests::still_serves;

#[test]
fn bytes_that_are_not_wasm() {
    let mut grid = GridSandbox::start(2);
    let path = grid.dir().join("junk.wasm");
    std::fs::write(&path, [0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 0xff]).unwrap();
    grid.run(&["run", path.to_str().unwrap()]).assert_grid_failure(126, "invalid module `");
    still_serves(&mut grid);
}

#[test]
fn a_binary_with_a_broken_body_is_refused_by_the_node() {
    let mut grid = GridSandbox::start(2);
    let path = grid.dir().join("broken.wasm");
    // Valid header, then a section whose length runs past the end.
    std::fs::write(&path, b"\0asm\x01\0\0\0\x01\x7f\x00").unwrap();
    grid.run(&["run", path.to_str().unwrap()]).assert_grid_failure(126, "grid: invalid module: ");
    still_serves(&mut grid);
}

#[test]
fn malformed_text_module() {
    let mut grid = GridSandbox::start(2);
    let path = grid.wat("bad", "(module (func $f (i32.add)))) oops");
    grid.run(&["run", path.to_str().unwrap()]).assert_grid_failure(126, "invalid module `");
    still_serves(&mut grid);
}

#[test]
fn unknown_import_is_a_link_error() {
    let mut grid = GridSandbox::start(2);
    let path = grid.wat(
        "import",
        r#"(module (import "env" "nope" (func)) (memory (export "memory") 1) (func (export "_start")))"#,
    );
    grid.run(&["run", path.to_str().unwrap()]).assert_grid_failure(126, "grid: link error: env::nope");
    still_serves(&mut grid);
}

#[test]
fn module_without_start() {
    let mut grid = GridSandbox::start(2);
    let path = grid.wat("nostart", "(module (func (export \"main\")))");
    grid.run(&["run", path.to_str().unwrap()]).assert_grid_failure(126, "no `_start`");
    still_serves(&mut grid);
}

#[test]
fn missing_module_file() {
    let grid = GridSandbox::start(1);
    grid.run(&["run", "/no/such/app.wasm"]).assert_grid_failure(2, "failed to read module `/no/such/app.wasm`");
}

#[test]
fn unreachable_master() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("x.wat");
    std::fs::write(&module, guests::hello()).unwrap();
    let cli = |module: &str| {
        let out = grid_tests::bare_cli().args(["--master", &url, "run", module]).output().unwrap();
        grid_tests::Run::from(out)
    };
    cli(module.to_str().unwrap()).assert_grid_failure(125, &format!("grid: cannot reach master `{url}`"));
    // A missing module file is reported before any connection is tried.
    cli("/no/such/app.wasm").assert_grid_failure(2, "failed to read module");
}

#[test]
fn bad_flags_are_usage_errors() {
    let grid = GridSandbox::start(1);
    let module = grid.wat("ok", &guests::hello());
    for (flag, value) in [("--memory", "lots"), ("--timeout", "soon"), ("--fuel", "1X"), ("--dir", "::")] {
        let run = grid.run(&["run", flag, value, module.to_str().unwrap()]);
        assert_eq!(run.code, Some(2), "{flag} {value}: {run:#?}");
        assert!(run.stderr.contains(&format!("`{value}`")), "{flag} {value}: {run:#?}");
    }
    let run = grid.run(&["run", "--no-such-flag", module.to_str().unwrap()]);
    assert_eq!(run.code, Some(2));
}

#[test]
fn trap_is_reported_with_its_message() {
    let mut grid = GridSandbox::start(2);
    let path = grid.wat("trap", &guest("(call $print (i32.const 200) (i32.const 6)) unreachable"));
    let run = grid.run(&["run", path.to_str().unwrap()]);
    run.assert_grid_failure(134, "grid: trap: ");
    assert_eq!(run.stdout, "first\n", "output before the trap is kept");
    still_serves(&mut grid);
}

#[test]
fn unknown_job_and_node_errors_do_not_crash_the_master() {
    let mut grid = GridSandbox::start(1);
    // A limit of zero is refused before it reaches the master.
    let run = grid.run(&["run", "--timeout", "0s", grid.wat("z", &guests::hello()).to_str().unwrap()]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains("`0s` is no time"), "{run:#?}");
    still_serves(&mut grid);
}

#[test]
fn server_logs_in_files_are_plain_text() {
    let grid = GridSandbox::start(1);
    grid.run(&["run", grid_tests::example("hello").to_str().unwrap()]).assert_clean_success();
    for (who, log) in [("master", grid.master_log()), ("node", grid.node_log("node-0"))] {
        assert!(!log.is_empty(), "the {who} logged nothing");
        assert!(!log.contains('\x1b'), "the {who}'s log file has colour codes:\n{log}");
    }
}
