//! The CLI's tools around the grid: shell completions, `top`, and `up`, the
//! one command that starts a local grid with its dashboard.

use crate::guests;
use grid_tests::{GridSandbox, Run, Spawned, bare_cli};
use std::process::Stdio;

#[test]
fn completions_are_written_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let run = Run::from(bare_cli().args(["completions", shell]).output().unwrap());
        run.assert_clean_success();
        // Every verb and its flags: `run` and its `--fuel`, say.
        for word in ["grid-cli", "run", "fuel", "completions"] {
            assert!(run.stdout.contains(word), "{shell}: no `{word}` in the script");
        }
    }
    Run::from(bare_cli().args(["completions", "tcsh"]).output().unwrap())
        .assert_grid_failure(2, "invalid value `tcsh` for `<SHELL>` (one of `bash`, `zsh`, `fish`)");
}

#[test]
fn top_once_shows_a_finished_job_and_the_node() {
    let grid = GridSandbox::start(1);
    let module = grid.wat("hello", &guests::hello());
    let run = grid.run(&["run", module.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let id = grid.jobs()[0]["id"].as_str().unwrap().to_owned();
    let node = grid.nodes()[0]["name"].as_str().unwrap().to_owned();

    // `--once`, and the same plain snapshot when stdout is not a terminal.
    for args in [&["top", "--once"][..], &["top"]] {
        let top = grid.run(args);
        top.assert_clean_success();
        let job = top.stdout.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("no job row: {top:#?}"));
        assert!(job.contains("✓ succeeded") && job.contains(&node), "{job}");
        let node_row = top.stdout.lines().find(|l| l.starts_with(&node)).unwrap_or_else(|| panic!("no node: {top:#?}"));
        assert!(node_row.contains("ready"), "{node_row}");
        assert!(top.stdout.contains("jobs: 0 running, 0 queued"), "{top:#?}");
    }
}

/// `grid-cli up` in a home of its own, its data under `dir`.
fn up(dir: &std::path::Path, http: &str) -> Spawned {
    let mut cmd = bare_cli();
    cmd.args(["up", "--listen", "127.0.0.1:0", "--http", http, "--nodes", "2", "--data-dir"])
        .arg(dir.join("local"))
        .env("HOME", dir)
        .stdin(Stdio::null());
    Spawned::start(&mut cmd)
}

/// The value of the `  NAME: value` line `up` printed.
fn field(up: &mut Spawned, name: &str) -> String {
    let prefix = format!("  {name}:");
    up.wait_line(|l| l.starts_with(&prefix)).trim_start_matches(&prefix).trim().to_owned()
}

#[test]
fn up_starts_a_grid_that_runs_jobs_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut grid = up(dir.path(), "127.0.0.1:0");
    let master = field(&mut grid, "master");
    let dashboard = field(&mut grid, "dashboard");
    let api = field(&mut grid, "api");
    let login = field(&mut grid, "cli");
    let ca = field(&mut grid, "ca");
    let token = field(&mut grid, "token");
    assert!(master.starts_with("https://127.0.0.1:"), "{master}");
    assert!(
        dashboard.starts_with("http://127.0.0.1:") && dashboard.ends_with(&format!("/#token={token}")),
        "{dashboard}"
    );
    assert!(api.starts_with(&format!("curl -H 'Authorization: Bearer {token}' http://127.0.0.1:")), "{api}");
    assert_eq!(login, format!("grid-cli login {master} --token {token} --ca {ca}"));

    let module = dir.path().join("hello.wat");
    std::fs::write(&module, guests::hello()).unwrap();
    let remote = ["--master", &master, "--token", &token, "--ca", &ca];
    let run = Run::from(bare_cli().args(remote).args(["run", module.to_str().unwrap()]).output().unwrap());
    run.assert_clean_success();
    let nodes = Run::from(bare_cli().args(remote).args(["nodes", "--json"]).output().unwrap()).json();
    let mut names: Vec<&str> = nodes.as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["local-1", "local-2"]);
    // The dashboard and the API answer on the printed address.
    let base = dashboard.split("/#").next().unwrap().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (page, jobs) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let page = client.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
        let jobs: serde_json::Value =
            client.get(format!("{base}/api/v1/jobs")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        (page, jobs)
    });
    assert!(page.contains("<html"), "{page}");
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1), "{jobs}");
    assert_eq!(jobs["jobs"][0]["state"], "succeeded", "{jobs}");

    grid.signal("TERM");
    let ended = grid.finish();
    assert_eq!(ended.code, Some(0), "{ended:#?}");
    assert!(dir.path().join("local/master/grid.db").is_file());
}

#[test]
fn up_refuses_to_serve_the_dashboard_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let refused = up(dir.path(), "0.0.0.0:0").finish();
    refused.assert_grid_failure(2, "--http `0.0.0.0:0` is not a loopback address");
}

#[test]
fn top_once_reads_the_embedded_grid_too() {
    let home = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let mut cmd = bare_cli();
        cmd.args(args)
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_CACHE_HOME", home.path().join("cache"));
        Run::from(cmd.output().unwrap())
    };
    let module = home.path().join("hello.wat");
    std::fs::write(&module, guests::hello()).unwrap();
    cli(&["run", module.to_str().unwrap()]).assert_clean_success();
    let top = cli(&["top", "--once"]);
    top.assert_clean_success();
    assert!(top.stdout.lines().any(|l| l.contains("✓ succeeded") && l.contains("embedded")), "{top:#?}");
}
