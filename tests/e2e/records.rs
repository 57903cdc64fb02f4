//! What the master records of jobs and shows back: a reused idempotency
//! key, waiting reasons, refusals that name every limit, every attempt, and
//! listings with times, filters and paging.

use crate::guests::{self, guest};
use grid_tests::{GridSandbox, array, number};
use serde_json::Value;

/// A module that sleeps `secs` seconds, then prints `first`.
fn napper(grid: &GridSandbox, secs: u64) -> String {
    let body =
        format!("(call $sleep (i64.const {})) (call $print (i32.const 200) (i32.const 6))", secs * 1_000_000_000);
    grid.wat(&format!("nap{secs}"), &guest(&body)).to_str().unwrap().to_owned()
}

/// The ids of `grid-cli jobs --json ARGS`, newest first.
#[track_caller]
fn listed(grid: &GridSandbox, args: &[&str]) -> Vec<String> {
    let mut all = vec!["jobs", "--json"];
    all.extend_from_slice(args);
    array(grid.run(&all).json()).iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect()
}

/// A job's attempts as `status --json` shows them: number, node and end.
#[track_caller]
fn attempts(job: &Value) -> Vec<(u64, String, String)> {
    array(job["history"].clone())
        .iter()
        .map(|a| (number(&a["number"]), a["node"].as_str().unwrap().to_owned(), a["end"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn a_reused_idempotency_key_with_another_request_is_a_conflict() {
    let grid = GridSandbox::start(1);
    let m = grid.wat("hello", &guests::hello());
    let m = m.to_str().unwrap();
    let id = grid.submit(&["--idempotency-key", "k1", m]);
    // The same request again: the same job.
    assert_eq!(grid.submit(&["--idempotency-key", "k1", m]), id);
    let conflict = format!(
        "idempotency key `k1` was used for job {id} with a different request; use a new key to submit another job"
    );
    grid.run(&["submit", "--idempotency-key", "k1", m, "--", "other"]).assert_grid_failure(125, &conflict);
    // `run` with the key is refused the same way.
    grid.run(&["run", "--idempotency-key", "k1", "--fuel", "1G", m]).assert_grid_failure(125, &conflict);
    grid.wait_finished(&id);
    assert_eq!(listed(&grid, &[]), [id.as_str()], "a conflicting submission was recorded");
    // A new key is a new job, and so is the same key of another tenant.
    assert_ne!(grid.submit(&["--idempotency-key", "k2", m, "--", "other"]), id);
    assert_ne!(grid.submit(&["--idempotency-key", "k1", "--tenant", "eve", m]), id);
}

#[test]
fn a_requeued_job_names_no_node_and_says_no_node_is_connected() {
    let mut grid = GridSandbox::builder(1).node_args(&["--slots", "1"]).start();
    let nap = napper(&grid, 2);
    let id = grid.submit(&[&nap]);
    grid.wait_until("the job runs", |g| (g.status(&id)["state"] == "running").then_some(()));
    grid.kill_node("node-0");
    let job = grid.wait_until("the job is queued again", |g| {
        let job = g.status(&id);
        (job["state"] == "queued").then_some(job)
    });
    assert_eq!(job["node"], "", "a queued job still names the node it lost: {job:#}");
    assert_eq!(job["waiting"], "waiting: no node is connected", "{job:#}");
    let text = grid.run(&["status", &id]);
    assert!(!text.stdout.contains("node      node-0"), "{text:#?}");
    assert!(text.stdout.contains("1. node-0 from") && text.stdout.contains(": node lost"), "{text:#?}");
    let row = grid.jobs().into_iter().find(|j| j["id"] == id.as_str()).unwrap();
    assert_eq!((row["node"].as_str(), row["waiting"].as_str()), (Some(""), Some("waiting: no node is connected")));
    grid.restart_node("node-0", &["--slots", "1"]);
    grid.run(&["wait", &id]).assert_clean_success();
}

#[test]
fn a_job_whose_node_is_killed_shows_both_attempts() {
    let mut grid = GridSandbox::builder(2).node_args(&["--slots", "1"]).start();
    let nap = napper(&grid, 2);
    let id = grid.submit(&[&nap]);
    let lost = grid.wait_until("the job runs", |g| {
        let job = g.status(&id);
        (job["state"] == "running").then(|| job["node"].as_str().unwrap().to_owned())
    });
    grid.kill_node(&lost);
    grid.run(&["wait", &id]).assert_clean_success();
    let job = grid.status(&id);
    let other = job["node"].as_str().unwrap().to_owned();
    assert_ne!(other, lost);
    assert_eq!(attempts(&job), [(1, lost.clone(), "node lost".into()), (2, other, "finished".into())], "{job:#}");
    for attempt in array(job["history"].clone()) {
        assert!(number(&attempt["ended_ms"]) >= number(&attempt["started_ms"]), "{attempt:#}");
    }
    let text = grid.run(&["status", &id]).stdout;
    assert!(text.contains(&format!("1. {lost} from")) && text.contains(": node lost"), "{text}");
}

#[test]
fn a_refusal_names_every_limit_that_does_not_fit() {
    let grid = GridSandbox::builder(1).node_args(&["--max-job-memory", "64MiB", "--max-job-timeout", "5m"]).start();
    let m = grid.wat("hello", &guests::hello());
    let m = m.to_str().unwrap();
    let over = ["run", "--memory", "1GiB", "--timeout", "10m", "--disk-limit", "1GiB", m];
    grid.run(&over).assert_grid_failure(
        125,
        "no connected node takes this job: job asks for 1GiB of memory (the most is 64MiB), \
         10m of time (the most is 5m) and 1GiB of disk (the most is 256MiB)",
    );
    grid.run(&["run", "--memory", "64MiB", "--timeout", "5m", m]).assert_clean_success();
}

#[test]
fn listings_show_times_filter_by_tenant_node_and_module_and_page_after_a_job() {
    let grid = GridSandbox::start(1);
    let hello = grid.wat("hello", &guests::hello());
    let other = grid.wat("other", &guest("(call $print (i32.const 220) (i32.const 7))"));
    let (hello, other) = (hello.to_str().unwrap(), other.to_str().unwrap());
    let first = grid.submit(&["--tenant", "alice", hello]);
    let second = grid.submit(&["--tenant", "bob", hello]);
    let third = grid.submit(&["--tenant", "alice", other]);
    for id in [&first, &second, &third] {
        grid.wait_finished(id);
    }
    assert_eq!(listed(&grid, &["--tenant", "alice"]), [third.as_str(), first.as_str()]);
    assert_eq!(listed(&grid, &["--node", "node-0"]), [third.as_str(), second.as_str(), first.as_str()]);
    assert!(listed(&grid, &["--node", "nowhere"]).is_empty());
    assert_eq!(listed(&grid, &["--module", other]), [third.as_str()]);
    let hash = grid.status(&first)["module"].as_str().unwrap().to_owned();
    assert_eq!(listed(&grid, &["--module", &hash[..10]]), [second.as_str(), first.as_str()]);
    assert_eq!(listed(&grid, &["--tenant", "alice", "--module", hello]), [first.as_str()]);
    // Paging: the newest, then those after it.
    assert_eq!(listed(&grid, &["--limit", "1"]), [third.as_str()]);
    assert_eq!(listed(&grid, &["--after", &third]), [second.as_str(), first.as_str()]);
    assert_eq!(listed(&grid, &["--after", &second, "--limit", "5"]), [first.as_str()]);
    grid.run(&["jobs", "--after", "01nosuchjob"]).assert_grid_failure(125, "no job `01nosuchjob`");
    assert_eq!(grid.run(&["jobs", "--module", "not-a-hash"]).code, Some(2), "a bad --module is not a usage error");

    for job in array(grid.run(&["jobs", "--json"]).json()) {
        let (submitted, started, ended) =
            (number(&job["submitted_ms"]), number(&job["started_ms"]), number(&job["finished_ms"]));
        assert!(submitted <= started && started <= ended, "{job:#}");
        assert_eq!(number(&job["duration_ms"]), ended - started, "{job:#}");
    }
    let table = grid.run(&["jobs"]).stdout;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "STATE", "TENANT", "NODE", "MODULE", "SUBMITTED", "STARTED", "ENDED", "DURATION", "RESULT"]
    );
    let status = grid.run(&["status", &first]).stdout;
    for line in ["submitted ", "started   ", "ended     "] {
        assert!(status.lines().any(|l| l.starts_with(line)), "no `{line}` in {status}");
    }
}
