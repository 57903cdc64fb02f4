//! The job verbs: submit, status, wait, logs, cancel, jobs; idempotent
//! submission; and a batch of many jobs.

use crate::guests::{self, guest};
use grid_tests::{GridSandbox, array, example};
use serde_json::json;

#[test]
fn submit_then_status_wait_and_logs() {
    let grid = GridSandbox::start(2);
    let hello = example("hello");
    let id = grid.submit(&[hello.to_str().unwrap(), "--", "verbs"]);
    let wait = grid.run(&["wait", &id]);
    wait.assert_clean_success();
    assert_eq!(wait.stdout, "", "wait prints no output");

    let status = grid.status(&id);
    for (field, want) in [("state", json!("succeeded")), ("exit_code", json!(0)), ("attempts", json!(1))] {
        assert_eq!(status[field], want, "`{field}`: {status:#}");
    }
    for field in ["fuel_used", "wall_ms"] {
        assert!(status.get(field).is_some(), "`{field}` missing: {status:#}");
    }
    let text = grid.run(&["status", &id]);
    assert!(text.stdout.contains("state     succeeded") && text.stdout.contains("exit code 0"), "{text:#?}");

    let logs = grid.run(&["logs", &id]);
    assert_eq!(logs.stdout, "Hello, verbs!\narg 1: verbs\n");
    let follow = grid.run(&["logs", "--follow", &id]);
    assert_eq!(follow.stdout, logs.stdout);
}

#[test]
fn wait_exits_as_run_would() {
    let grid = GridSandbox::start(1);
    let exit7 = grid.wat("exit7", &guest("(call $exit (i32.const 7))"));
    let id = grid.submit(&[exit7.to_str().unwrap()]);
    let wait = grid.run(&["wait", &id]);
    assert_eq!(wait.code, Some(7));
    let spin = grid.wat("spin", &guest(guests::SPIN));
    let id = grid.submit(&["--fuel", "1M", spin.to_str().unwrap()]);
    grid.run(&["wait", &id]).assert_grid_failure(123, "grid: out of fuel after 1000000 units");
    let status = grid.status(&id);
    assert_eq!(status["reason"], "out of fuel after 1000000 units", "{status:#}");
}

#[test]
fn cancel_a_running_job_and_list_jobs_by_state() {
    let grid = GridSandbox::start(1);
    let sleeper = grid.wat("sleeper", &guest(guests::SLEEP_MINUTE));
    let long = grid.submit(&[sleeper.to_str().unwrap()]);
    let ok = grid.submit(&[grid.wat("ok", &guests::hello()).to_str().unwrap()]);
    grid.run(&["wait", &ok]).assert_clean_success();
    grid.wait_until("the sleeper runs", |g| g.run(&["status", &long]).stdout.contains("running").then_some(()));
    let cancel = grid.run(&["cancel", &long]);
    assert_eq!(cancel.code, Some(0), "{cancel:#?}");
    grid.run(&["wait", &long]).assert_grid_failure(130, "grid: cancelled");
    assert!(grid.run(&["cancel", &long]).stdout.contains("already ended"));

    let cancelled = grid.run(&["jobs", "--state", "cancelled"]);
    assert!(cancelled.stdout.contains(&long) && !cancelled.stdout.contains(&ok), "{cancelled:#?}");
    let all = grid.jobs();
    let listed = |id: &str| all.iter().any(|j| j["id"] == id);
    assert!(listed(&long) && listed(&ok), "{all:#?}");
    let one = array(grid.run(&["jobs", "--limit", "1", "--json"]).json());
    assert_eq!(one.len(), 1, "{one:#?}");
    let bad = grid.run(&["jobs", "--state", "sleeping"]);
    assert_eq!(bad.code, Some(2));
}

#[test]
fn a_huge_arg_is_cut_in_listings_and_whole_in_status() {
    let grid = GridSandbox::start(1);
    // Over 65,535 chars (the most `format!` pads to), under the OS's
    // limit on one argument.
    let long = "é".repeat(10) + &"n".repeat(70_000);
    let hello = example("hello");
    let id = grid.submit(&[hello.to_str().unwrap(), "--", &long]);
    grid.run(&["wait", &id]).assert_clean_success();

    let table = grid.run(&["jobs"]);
    table.assert_clean_success();
    assert!(table.stdout.contains(&id), "{table:#?}");
    assert!(table.stdout.lines().all(|l| l.chars().count() < 400), "{table:#?}");

    let listed = grid.jobs();
    let job = listed.iter().find(|j| j["id"] == id.as_str()).expect("listed");
    let args: Vec<&str> = job["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(args.iter().map(|a| a.len()).sum::<usize>() <= 1024, "{args:?}");
    assert!(args.last().unwrap().ends_with('…'), "{args:?}");

    let status = grid.status(&id);
    assert_eq!(status["args"].as_array().unwrap().last().unwrap(), &json!(long));
}

#[test]
fn unknown_job_ids_get_one_clear_line() {
    let grid = GridSandbox::start(1);
    for verb in ["status", "wait", "logs", "cancel"] {
        grid.run(&[verb, "0000000000000000"]).assert_grid_failure(125, "no job `0000000000000000`");
    }
}

#[test]
fn the_same_idempotency_key_yields_one_job() {
    let grid = GridSandbox::start(1);
    let module = grid.wat("ok", &guests::hello());
    let first = grid.submit(&["--idempotency-key", "nightly-42", module.to_str().unwrap()]);
    let again = grid.submit(&["--idempotency-key", "nightly-42", module.to_str().unwrap()]);
    assert_eq!(first, again);
    let other = grid.submit(&["--idempotency-key", "nightly-43", module.to_str().unwrap()]);
    assert_ne!(first, other);
    grid.run(&["wait", &first]).assert_clean_success();
    let all = grid.jobs();
    assert_eq!(all.len(), 2, "{all:#?}");
}

#[test]
fn submit_needs_a_master() {
    let out = grid_tests::bare_cli().args(["submit", "x.wasm"]).output().unwrap();
    grid_tests::Run::from(out).assert_grid_failure(125, "`submit` needs a master");
}

#[test]
fn a_batch_of_500_jobs_all_give_the_right_answer() {
    let grid = GridSandbox::builder(2).node_args(&["--slots", "4"]).start();
    let primes = example("primes");
    let ids: Vec<(u32, String)> =
        (0..500).map(|i| (1000 + i, grid.submit(&[primes.to_str().unwrap(), "--", &(1000 + i).to_string()]))).collect();
    for (n, id) in ids {
        grid.run(&["wait", &id]).assert_clean_success();
        let logs = grid.run(&["logs", &id]);
        let count = (0..n as u64).filter(|&k| is_prime(k)).count();
        assert!(logs.stdout.starts_with(&format!("primes below {n}: {count},")), "job {id}: {}", logs.stdout);
    }
}

fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d))
}

#[test]
fn run_each_runs_one_job_per_input_and_saves_outputs() {
    let grid = GridSandbox::start(2);
    let inputs = grid.dir().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    for i in 0..30 {
        std::fs::write(inputs.join(format!("in{i:02}.txt")), "word ".repeat(i) + "\n").unwrap();
    }
    std::fs::write(inputs.join("skip.dat"), "not matched").unwrap();
    let out = grid.dir().join("out");
    let pattern = format!("{}/*.txt", inputs.display());
    let wc = example("wc");
    let run = grid.run(&["run", "--each", &pattern, "--output-dir", out.to_str().unwrap(), wc.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.grid_lines(), vec![format!("grid: 30 jobs: 30 succeeded, 0 failed; output in `{}`", out.display())]);
    for i in 0..30usize {
        let got = std::fs::read_to_string(out.join(format!("in{i:02}.txt.out"))).unwrap();
        assert_eq!(got, format!("1 {i} {}\n", 5 * i + 1), "input {i}");
    }
    assert!(!out.join("skip.dat.out").exists());

    // One failing input does not stop the others, and the exit says so.
    let picky = grid.wat(
        "picky",
        r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    ;; read up to 100 bytes of stdin; exit 3 if it starts with `x`
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 100))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (i32.eq (i32.load8_u (i32.const 100)) (i32.const 120)) (then (call $exit (i32.const 3))))))"#,
    );
    std::fs::write(inputs.join("in05.txt"), "x marks the spot").unwrap();
    let run = grid.run(&["run", "--each", &pattern, "--output-dir", out.to_str().unwrap(), picky.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("in05.txt: exited with code 3"), "{run:#?}");
    assert!(run.stderr.contains("30 jobs: 29 succeeded, 1 failed"), "{run:#?}");
}
