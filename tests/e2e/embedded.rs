//! The embedded grid, as a newcomer meets it: `grid-cli` with no master
//! named. A job is recorded finished before `run` exits, a command that
//! only reads starts no node and runs nothing, a job whose `run` died is
//! ended (never run again), two `run`s at once keep to their own jobs, and
//! `prune` forgets old finished jobs.

use crate::guests::{self, guest};
use grid_tests::{Run, Spawned, array, example};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A user's home of their own: the embedded grid's state lives in its
/// cache dir.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    /// `grid-cli ARGS` with no master named, in this home.
    fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = grid_tests::bare_cli();
        cmd.args(args)
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `grid-cli ARGS` to its end; no command of the embedded grid
    /// may panic.
    #[track_caller]
    fn run(&self, args: &[&str]) -> Run {
        let run = Run::from(self.cli(args).output().unwrap());
        assert!(!run.stderr.contains("panicked"), "`grid-cli {}` panicked: {run:#?}", args.join(" "));
        run
    }

    #[track_caller]
    fn jobs(&self) -> Vec<Value> {
        array(self.run(&["jobs", "--json"]).json())
    }

    #[track_caller]
    fn status(&self, id: &str) -> Value {
        self.run(&["status", "--json", id]).json()
    }

    /// Polls `jobs` until the newest job is running; returns its id. Fails
    /// at once if `run`, which is to run it, has ended.
    #[track_caller]
    fn wait_running(&self, run: &mut Spawned) -> String {
        let start = std::time::Instant::now();
        loop {
            if let Some(job) = self.jobs().first().filter(|j| j["state"] == "running") {
                return job["id"].as_str().unwrap().to_owned();
            }
            run.assert_alive("its job was to start running");
            assert!(start.elapsed() < grid_tests::READY_TIMEOUT, "no job started running: {:#?}", self.jobs());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Writes a text module into this home and returns its path.
    fn wat(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.wat"));
        std::fs::write(&path, text).unwrap();
        path
    }
}

#[test]
fn every_run_is_recorded_finished_before_it_exits_and_never_runs_again() {
    let home = Home::new();
    let primes = example("primes");
    let mut ids = Vec::new();
    for i in 0..20 {
        let run = home.run(&["run", primes.to_str().unwrap(), "--", "20000"]);
        run.assert_clean_success();
        assert!(run.stdout.starts_with("primes below 20000: 2262,"), "run {i}: {run:#?}");
        let newest = array(home.run(&["jobs", "--limit", "1", "--json"]).json());
        let job = &newest[0];
        assert_eq!(
            (&job["state"], &job["exit_code"]),
            (&Value::from("succeeded"), &Value::from(0)),
            "run {i}: {job:#}"
        );
        let id = job["id"].as_str().unwrap().to_owned();
        assert!(!ids.contains(&id), "run {i} shows an earlier job: {job:#}");
        let status = home.status(&id);
        assert_eq!(status["state"], "succeeded", "run {i}: {status:#}");
        ids.push(id);
    }
    let jobs = home.jobs();
    assert_eq!(jobs.len(), 20, "{jobs:#?}");
    assert!(jobs.iter().all(|j| j["state"] == "succeeded" && j["attempts"] == 1), "a job ran twice: {jobs:#?}");
}

#[test]
fn a_killed_run_leaves_its_job_to_be_ended_never_run_again() {
    let home = Home::new();
    let sleeper = home.wat("sleeper", &guest(guests::SLEEP_MINUTE));
    let mut run = Spawned::start(&mut home.cli(&["run", sleeper.to_str().unwrap()]));
    let id = home.wait_running(&mut run);

    // While its run lives, reading the record starts no node and changes
    // nothing, and nobody else follows or cancels the job.
    let job = home.status(&id);
    assert_eq!((&job["state"], &job["attempts"]), (&Value::from("running"), &Value::from(1)), "{job:#}");
    assert_eq!(array(home.run(&["nodes", "--json"]).json()), Vec::<Value>::new(), "a read started a node");
    let wait = home.run(&["wait", &id]);
    assert_eq!(wait.code, Some(125), "{wait:#?}");
    let cancel = home.run(&["cancel", &id]);
    assert_eq!(cancel.code, Some(125), "{cancel:#?}");

    run.signal("KILL");
    assert_eq!(run.finish().code, None, "killed by the signal");

    // With its run gone, the first look at the record ends the job with the
    // reason; it never runs again, and a read starts no node.
    for _ in 0..3 {
        let job = home.status(&id);
        assert_eq!((&job["state"], &job["attempts"]), (&Value::from("failed"), &Value::from(1)), "{job:#}");
        let reason = job["reason"].as_str().unwrap();
        assert!(reason.contains("the grid-cli that ran it exited before it finished"), "{reason}");
        let logs = home.run(&["logs", &id]);
        assert_eq!(logs.code, Some(0), "{logs:#?}");
        assert_eq!(array(home.run(&["nodes", "--json"]).json()), Vec::<Value>::new(), "a read started a node");
    }

    // The next run runs its own job only.
    let hello = example("hello");
    home.run(&["run", hello.to_str().unwrap()]).assert_clean_success();
    let job = home.status(&id);
    assert_eq!((&job["state"], &job["attempts"]), (&Value::from("failed"), &Value::from(1)), "{job:#}");
}

#[test]
fn sigterm_to_an_embedded_run_cancels_its_job() {
    let home = Home::new();
    let sleeper = home.wat("sleeper", &guest(guests::SLEEP_MINUTE));
    let mut run = Spawned::start(&mut home.cli(&["run", sleeper.to_str().unwrap()]));
    let id = home.wait_running(&mut run);
    run.signal("TERM");
    let run = run.finish();
    run.assert_grid_failure(143, "grid: cancelled (terminated)");
    assert_eq!(home.status(&id)["state"], "cancelled");
}

#[test]
fn two_runs_at_once_each_keep_their_own_job() {
    let home = Home::new();
    let nap =
        home.wat("nap", &guest("(call $sleep (i64.const 2000000000)) (call $print (i32.const 200) (i32.const 6))"));
    let mut first = Spawned::start(&mut home.cli(&["run", nap.to_str().unwrap()]));
    let first_id = home.wait_running(&mut first);
    // The second waits for the first's grid, and says so with -v.
    let hello = home.wat("hello", &guests::hello());
    let mut second = Spawned::start(&mut home.cli(&["-v", "run", hello.to_str().unwrap()]));
    second.wait_line(|l| l.contains("waiting for another `grid-cli run`"));
    let first = first.finish();
    first.assert_clean_success();
    assert_eq!(first.stdout, "first\n");
    let second = second.finish();
    assert_eq!(second.code, Some(0), "{second:#?}");
    assert_eq!(second.stdout, "first\n");
    let jobs = home.jobs();
    assert_eq!(jobs.len(), 2, "{jobs:#?}");
    assert!(jobs.iter().all(|j| j["state"] == "succeeded" && j["attempts"] == 1), "{jobs:#?}");
    assert_eq!(home.status(&first_id)["exit_code"], 0);
}

#[test]
fn prune_forgets_old_finished_jobs_of_the_embedded_grid_only() {
    let home = Home::new();
    let hello = example("hello");
    for _ in 0..2 {
        home.run(&["run", hello.to_str().unwrap()]).assert_clean_success();
    }
    let kept = home.run(&["prune", "--older-than", "1d"]);
    assert_eq!(kept.code, Some(0), "{kept:#?}");
    assert!(kept.stdout.starts_with("pruned 0 finished jobs older than 1day"), "{kept:#?}");
    assert_eq!(home.jobs().len(), 2);
    let pruned = home.run(&["prune", "--older-than", "0s"]);
    assert!(pruned.stdout.starts_with("pruned 2 finished jobs"), "{pruned:#?}");
    assert_eq!(home.jobs(), Vec::<Value>::new());

    let named = home.run(&["--master", "http://127.0.0.1:1", "prune"]);
    named.assert_grid_failure(125, "grid-master --keep-finished");
}

/// The inodes of the TCP sockets listening on this machine.
fn listening_inodes() -> Vec<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // `st` 0A is LISTEN.
            if fields.get(3) == Some(&"0A") {
                inodes.extend(fields.get(9).map(|s| s.to_string()));
            }
        }
    }
    inodes
}

/// The inodes of the sockets process `pid` holds open.
fn socket_inodes(pid: u32) -> Vec<String> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect()
}

#[test]
fn the_embedded_grid_opens_no_port() {
    let home = Home::new();
    let sleeper = home.wat("sleeper", &guest(guests::SLEEP_MINUTE));
    let mut run = Spawned::start(&mut home.cli(&["run", sleeper.to_str().unwrap()]));
    let id = home.wait_running(&mut run);
    let listening = listening_inodes();
    let held = socket_inodes(run.pid());
    assert!(!held.is_empty(), "the embedded grid holds no socket at all");
    assert!(held.iter().all(|inode| !listening.contains(inode)), "grid-cli run listens on a TCP port");
    // Its socket is in a directory only its user may enter.
    let state = home.dir.path().join("cache/wasm-grid/embedded");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", state.display());
    run.signal("INT");
    let ended = run.finish();
    assert_eq!(ended.code, Some(130), "{ended:#?}");
    assert_eq!(home.status(&id)["state"], "cancelled");
}
