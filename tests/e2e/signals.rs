//! Signals on a named master: `run` owns its jobs and cancels them on
//! Ctrl-C, SIGTERM or SIGHUP; `wait` and `logs --follow` only watch, and
//! stop watching. A `run` whose job waits says why with `-v`.

use crate::guests::{self, guest};
use grid_tests::{GridSandbox, Spawned};

/// Prints `first`, sleeps five seconds, prints `second`.
fn slow(grid: &GridSandbox) -> String {
    let body = "(call $print (i32.const 200) (i32.const 6)) (call $sleep (i64.const 5000000000)) \
                (call $print (i32.const 220) (i32.const 7))";
    grid.wat("slow", &guest(body)).to_str().unwrap().to_owned()
}

#[test]
fn ctrl_c_on_wait_or_logs_follow_stops_watching_and_leaves_the_job() {
    let grid = GridSandbox::start(1);
    let id = grid.submit(&[&slow(&grid)]);
    // `logs -f` is following once it has printed the job's first line;
    // `wait -v` once it says where the job runs.
    let mut logs = Spawned::start(&mut grid.cli(&["logs", "--follow", &id]));
    logs.wait_line(|l| l == "first");
    let mut wait = Spawned::start(&mut grid.cli(&["-v", "wait", &id]));
    wait.wait_line(|l| l.contains("running on node"));
    for watcher in [logs, wait] {
        watcher.signal("INT");
        let run = watcher.finish();
        assert_eq!(run.code, Some(130), "{run:#?}");
        let last = run.grid_lines().last().copied().unwrap_or_default();
        assert!(last.contains(&format!("stopped watching job {id}; it goes on")), "{run:#?}");
    }
    let job = grid.wait_finished(&id);
    assert_eq!((&job["state"], &job["exit_code"]), (&"succeeded".into(), &0.into()), "{job:#}");
    assert_eq!(grid.run(&["logs", &id]).stdout, "first\nsecond\n");
}

#[test]
fn a_closed_stdout_on_logs_follow_leaves_the_job() {
    let grid = GridSandbox::start(1);
    // Writes again a second after its first line, while it still has long to run.
    let body = "(call $print (i32.const 200) (i32.const 6)) (call $sleep (i64.const 1000000000)) \
                (call $print (i32.const 220) (i32.const 7)) (call $sleep (i64.const 4000000000)) \
                (call $print (i32.const 220) (i32.const 7))";
    let id = grid.submit(&[grid.wat("chatty", &guest(body)).to_str().unwrap()]);
    // `head -1` reads the first line and goes: the next write finds no reader.
    let logs = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{} --master {} logs --follow {id} | head -1", grid_tests::bin("grid-cli").display(), grid.url()))
        .env("GRID_TOKEN", grid.admin_token())
        .env("GRID_CA", grid.ca().unwrap())
        .output()
        .unwrap();
    assert!(logs.status.success(), "{logs:#?}");
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "first\n");
    let job = grid.wait_finished(&id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
}

#[test]
fn sigterm_and_sighup_to_run_cancel_its_job() {
    let grid = GridSandbox::start(1);
    let sleeper = grid.wat("sleeper", &guest(guests::SLEEP_MINUTE));
    for (signal, code, said) in [("TERM", 143, "terminated"), ("HUP", 129, "hung up"), ("INT", 130, "interrupted")] {
        let mut run = Spawned::start(&mut grid.cli(&["-v", "run", sleeper.to_str().unwrap()]));
        let line = run.wait_line(|l| l.contains("running on node"));
        let id = line.split_whitespace().nth(2).unwrap().to_owned();
        run.signal(signal);
        let run = run.finish();
        assert_eq!(run.code, Some(code), "{signal}: {run:#?}");
        let last = run.grid_lines().last().copied().unwrap_or_default();
        assert!(last.contains(&format!("grid: cancelled ({said})")), "{signal}: {run:#?}");
        assert_eq!(grid.status(&id)["state"], "cancelled", "{signal}");
    }
}

#[test]
fn sigterm_to_run_each_cancels_every_job() {
    let grid = GridSandbox::start(1);
    let sleeper = grid.wat("sleeper", &guest(guests::SLEEP_MINUTE));
    let inputs = grid.dir().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    for name in ["a.txt", "b.txt"] {
        std::fs::write(inputs.join(name), "x").unwrap();
    }
    let pattern = format!("{}/*.txt", inputs.display());
    let out = grid.dir().join("out");
    let run = Spawned::start(&mut grid.cli(&[
        "run",
        "--each",
        &pattern,
        "--output-dir",
        out.to_str().unwrap(),
        sleeper.to_str().unwrap(),
    ]));
    grid.wait_until("both jobs are recorded", |g| (g.jobs().len() == 2).then_some(()));
    run.signal("TERM");
    let run = run.finish();
    assert_eq!(run.code, Some(143), "{run:#?}");
    for id in grid.jobs().iter().map(|j| j["id"].as_str().unwrap().to_owned()) {
        let job = grid.wait_finished(&id);
        assert_eq!(job["state"], "cancelled", "{job:#}");
    }
}

#[test]
fn a_run_that_waits_says_why_with_v_and_nothing_without() {
    let mut grid = GridSandbox::start(0);
    let hello = grid.wat("hello", &guests::hello());
    let mut run = Spawned::start(&mut grid.cli(&["-v", "run", hello.to_str().unwrap()]));
    let line = run.wait_line(|l| l.contains("waits:"));
    assert!(line.starts_with("grid: job ") && line.contains("node"), "{line}");
    let mut quiet = Spawned::start(&mut grid.cli(&["run", hello.to_str().unwrap()]));
    grid.wait_until("both jobs are queued", |g| (g.jobs().len() == 2).then_some(()));
    grid.add_node("late", &[]);
    let run = run.finish();
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), "first\n"), "{run:#?}");
    // The reason is said once, however long the job waits.
    assert_eq!(run.stderr.matches("waits:").count(), 1, "{run:#?}");
    quiet.wait_line(|l| l == "first");
    quiet.finish().assert_clean_success();
}
