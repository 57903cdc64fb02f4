//! The CLI's flags and usage errors: each malformed invocation exits 2 with
//! one clear line before anything reaches the grid, and the well-formed
//! neighbours of each still work.

use crate::guests;
use grid_tests::{GridSandbox, Run, bin, example};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `command` to its end, failing the test if it has not ended within
/// 20 s (a process that would retry for ever is killed, not waited for).
fn finish(mut command: Command) -> Run {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("{command:?} did not end within 20 s: {:#?}", Run::from(child.wait_with_output().unwrap()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::from(child.wait_with_output().unwrap())
}

#[test]
fn a_master_url_speaks_https_or_http_and_any_other_scheme_is_refused() {
    let module = tempfile::tempdir().unwrap();
    let module = module.path().join("x.wat");
    std::fs::write(&module, guests::hello()).unwrap();
    let cli = |args: &[&str], env: Option<&str>| {
        let mut cmd = grid_tests::bare_cli();
        cmd.args(args).arg(&module);
        if let Some(url) = env {
            cmd.env("GRID_MASTER", url);
        }
        finish(cmd)
    };
    // `https://` (and a bare `HOST:PORT`) is spoken: nobody listens there.
    let unreachable = "grid: cannot reach master `https://127.0.0.1:1`";
    cli(&["--master", "https://127.0.0.1:1", "run"], None).assert_grid_failure(125, unreachable);
    cli(&["run", "--master", "https://127.0.0.1:1"], None).assert_grid_failure(125, unreachable);
    cli(&["run"], Some("https://127.0.0.1:1")).assert_grid_failure(125, unreachable);
    cli(&["run"], Some("127.0.0.1:1")).assert_grid_failure(125, "grid: cannot reach master `127.0.0.1:1`");
    let ftp = "`ftp://127.0.0.1:1` is not a master URL: `ftp://` is not spoken";
    cli(&["--master", "ftp://127.0.0.1:1", "run"], None).assert_grid_failure(2, ftp);
    cli(&["run"], Some("ftp://127.0.0.1:1")).assert_grid_failure(2, ftp);
    // `new` talks to no master, whatever `$GRID_MASTER` says.
    let made = finish({
        let mut cmd = grid_tests::bare_cli();
        cmd.arg("new").arg(module.with_file_name("made")).env("GRID_MASTER", "ftp://127.0.0.1:1");
        cmd
    });
    assert_eq!(made.code, Some(0), "{made:#?}");

    let node = finish({
        let mut cmd = Command::new(bin("grid-node"));
        cmd.args(["--master", "ftp://127.0.0.1:1", "--cache-dir"]).arg(module.with_file_name("node"));
        cmd
    });
    assert_eq!(node.code, Some(2), "{node:#?}");
    assert_eq!(node.stderr.lines().count(), 1, "{node:#?}");
    assert!(node.stderr.starts_with(&format!("grid-node: {ftp}")), "{node:#?}");
}

#[test]
fn an_each_pattern_the_shell_expanded_is_refused_and_a_quoted_one_runs() {
    let grid = GridSandbox::start(1);
    let inputs = grid.dir().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    for i in 1..=3 {
        std::fs::write(inputs.join(format!("f{i}.txt")), "word ".repeat(i) + "\n").unwrap();
    }
    let (wc, out) = (example("wc"), grid.dir().join("o"));
    let (wc, out) = (wc.to_str().unwrap(), out.to_str().unwrap());
    let file = |i: u32| format!("{}/f{i}.txt", inputs.display());

    // What a shell makes of `--each inputs/f*.txt --output-dir o wc.wasm`.
    let run = grid.run(&["run", "--each", &file(1), &file(2), &file(3), "--output-dir", out, wc]);
    run.assert_grid_failure(
        2,
        &format!(
            "grid: --each got one file, `{}`, and more words follow: quote the pattern so that the shell does not \
             expand it: --each '{}/f*.txt'",
            file(1),
            inputs.display()
        ),
    );
    assert!(grid.jobs().is_empty(), "a refused --each submitted jobs: {:#?}", grid.jobs());

    // Quoted, with arguments for the guest after `--`; and one file alone.
    let pattern = format!("{}/f*.txt", inputs.display());
    let run = grid.run(&["run", "--each", &pattern, "--output-dir", out, wc, "--", "-l"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stderr.contains("3 jobs: 3 succeeded, 0 failed"), "{run:#?}");
    let run = grid.run(&["run", "--each", &file(2), "--output-dir", out, wc, "--", "-l"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stderr.contains("1 jobs: 1 succeeded, 0 failed"), "{run:#?}");
}

#[test]
fn limits_are_parsed_alike_and_nonsense_limits_are_usage_errors() {
    let grid = GridSandbox::start(1);
    let module = grid.wat("ok", &guests::hello());
    let module = module.to_str().unwrap();
    for (flag, value, why) in [
        ("--fuel", "0", "is no fuel"),
        ("--memory", "0", "has no unit"),
        ("--memory", "64", "has no unit"),
        ("--memory", "1KiB", "is under one wasm page"),
        ("--timeout", "0s", "is no time"),
    ] {
        for verb in ["run", "submit"] {
            let run = grid.run(&[verb, flag, value, module]);
            assert_eq!(run.code, Some(2), "{verb} {flag} {value}: {run:#?}");
            assert!(run.stderr.contains(&format!("`{value}` {why}")), "{verb} {flag} {value}: {run:#?}");
        }
    }
    assert!(grid.jobs().is_empty(), "a refused limit reached the master: {:#?}", grid.jobs());
    // Decimals, as sizes take them, in fuel too.
    let run = grid.run(&["run", "--stats", "--fuel", "1.5G", "--memory", "0.5G", module]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stderr.contains("of 1.5G"), "{run:#?}");
}

#[test]
fn usage_errors_exit_2_and_help_and_typos_help() {
    let grid = GridSandbox::start(1);
    grid.run(&["run", "/no/such/app.wasm"]).assert_grid_failure(2, "failed to read module `/no/such/app.wasm`");
    grid.run(&["submit", "/no/such/app.wasm"]).assert_grid_failure(2, "failed to read module `/no/such/app.wasm`");
    let bad = grid.dir().join("9lives");
    grid.run(&["new", bad.to_str().unwrap()]).assert_grid_failure(2, "`9lives` is not a package name");
    assert!(!bad.exists());

    // `new` talks to no master: its help does not offer one, and one given
    // before the verb (as `$GRID_MASTER` may be) does no harm.
    let help = grid.run(&["new", "--help"]);
    assert_eq!(help.code, Some(0), "{help:#?}");
    assert!(!help.stdout.contains("--master"), "{}", help.stdout);
    assert!(grid.run(&["run", "--help"]).stdout.contains("--master"));
    let made = grid.dir().join("fine");
    let run = grid.run(&["new", made.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(made.join("Cargo.toml").is_file());

    grid.run(&["rnu", "x.wasm"])
        .assert_grid_failure(2, "unknown command `rnu`; did you mean `run`? (see `grid-cli --help`)");
}

#[test]
fn a_wrong_flag_on_any_binary_is_one_grid_line_with_a_hint_and_help_still_helps() {
    for (binary, args, line) in [
        (
            "grid-cli",
            &["run", "--verbse", "x.wasm"][..],
            "unexpected flag `--verbse`; did you mean `--verbose`? (see `grid-cli run --help`)",
        ),
        ("grid-cli", &["run", "--bogus", "x.wasm"], "unexpected flag `--bogus` (see `grid-cli run --help`)"),
        (
            "grid-cli",
            &["admin", "nodse"],
            "unknown command `nodse`; did you mean `nodes`? (see `grid-cli admin --help`)",
        ),
        (
            "grid-master",
            &["--insecur"],
            "unexpected flag `--insecur`; did you mean `--insecure`? (see `grid-master --help`)",
        ),
        (
            "grid-master",
            &["--verify", "sometimes"],
            "invalid value `sometimes` for `--verify <MODE>` (one of `off`, `adaptive`, `always`)",
        ),
        ("grid-node", &["--slot", "3"], "unexpected flag `--slot`; did you mean `--slots`? (see `grid-node --help`)"),
        ("grid-bench", &["--quik"], "unexpected flag `--quik`; did you mean `--quick`? (see `grid-bench --help`)"),
    ] {
        let mut cmd = if binary == "grid-cli" { grid_tests::bare_cli() } else { Command::new(bin(binary)) };
        let run = finish({
            cmd.args(args);
            cmd
        });
        run.assert_grid_failure(2, line);
        assert_eq!(run.stderr.lines().count(), 1, "{binary} {args:?}: {run:#?}");
    }
    for binary in ["grid-cli", "grid-master", "grid-node", "grid-bench"] {
        for (flag, shows) in [("--help", "Usage:"), ("--version", binary)] {
            let run = finish({
                let mut cmd = Command::new(bin(binary));
                cmd.arg(flag);
                cmd
            });
            assert_eq!(run.code, Some(0), "{binary} {flag}: {run:#?}");
            assert!(run.stdout.contains(shows), "{binary} {flag}: {run:#?}");
        }
    }
}
