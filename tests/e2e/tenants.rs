//! Tenants: each sees and manages only its own jobs, is held to its quotas,
//! and may bring private nodes that run its jobs alone.

use crate::guests::{self, guest};
use grid_tests::rogue::{Code, RogueClient};
use grid_tests::{GridSandbox, Run, Spawned, number};

/// `grid-cli status --json ID` as `token`.
fn status_as(grid: &GridSandbox, token: &str, id: &str) -> serde_json::Value {
    grid.run_as(token, &["status", "--json", id]).json()
}

/// The stderr of `run` with every `id` replaced, to compare two refusals.
fn without(run: &Run, id: &str) -> String {
    run.stderr.replace(id, "ID")
}

#[test]
fn a_tenant_sees_and_manages_only_its_own_jobs() {
    let grid = GridSandbox::start(1);
    let alice = grid.tenant("alice", &[]);
    let bob = grid.tenant("bob", &[]);
    let sleeper = grid.wat("sleeper", &guest(guests::SLEEP_MINUTE));
    let run = grid.run_as(&alice, &["submit", sleeper.to_str().unwrap()]);
    run.assert_clean_success();
    let id = run.stdout.trim().to_owned();
    assert_eq!(status_as(&grid, &alice, &id)["tenant"], "alice");
    // To bob, alice's job answers exactly as a job that does not exist.
    let missing = "01JAAAAAAAAAAAAAAAAAAAAAAA";
    for verb in [&["status"][..], &["logs"], &["wait"], &["cancel"], &["result", "--output-dir", "o"]] {
        let mine = grid.run_as(&bob, &[verb, &[id.as_str()]].concat());
        let none = grid.run_as(&bob, &[verb, &[missing]].concat());
        assert_eq!(mine.code, none.code, "{verb:?}: {mine:#?}");
        assert_ne!(mine.code, Some(0), "{verb:?}: {mine:#?}");
        assert_eq!(without(&mine, &id), without(&none, missing), "{verb:?}");
    }
    // Bob's listing does not show it, whatever he asks for.
    for args in [&["jobs", "--json"][..], &["jobs", "--json", "--tenant", "alice"]] {
        let jobs = grid.run_as(&bob, args).json();
        assert!(jobs.as_array().unwrap().is_empty(), "{args:?}: {jobs:#}");
    }
    let client = RogueClient::connect(&grid.access(Some(&bob)));
    assert_eq!(client.job_state(&id).unwrap_err().code(), Code::NotFound);
    assert_eq!(client.cancel(&id).unwrap_err().code(), Code::NotFound);
    assert_eq!(client.watch_snapshot(&id).unwrap_err().code(), Code::NotFound);
    assert!(client.list_jobs("alice").unwrap().is_empty());
    // A tenant submits only as itself.
    let run = grid.run_as(&bob, &["submit", "--tenant", "alice", sleeper.to_str().unwrap()]);
    run.assert_grid_failure(125, "permission denied");
    // The job still runs, and alice and the admin see and cancel it.
    assert_eq!(status_as(&grid, &alice, &id)["state"], "running");
    assert_eq!(grid.jobs().len(), 1);
    grid.run_as(&alice, &["cancel", &id]).assert_clean_success();
    assert_eq!(grid.wait_finished(&id)["state"], "cancelled");
}

#[test]
fn idempotency_keys_belong_to_their_tenant() {
    let grid = GridSandbox::start(1);
    let alice = grid.tenant("alice", &[]);
    let bob = grid.tenant("bob", &[]);
    let module = grid.wat("hello", &guests::hello());
    let submit = |token: &str| {
        let run = grid.run_as(token, &["submit", "--idempotency-key", "k1", module.to_str().unwrap()]);
        run.assert_clean_success();
        run.stdout.trim().to_owned()
    };
    let (a, b) = (submit(&alice), submit(&bob));
    assert_ne!(a, b, "bob got alice's job by her key");
    assert_eq!(submit(&alice), a);
    assert_eq!(status_as(&grid, &bob, &b)["tenant"], "bob");
}

#[test]
fn per_job_maxima_refuse_the_submission_with_the_reason() {
    let grid = GridSandbox::start(1);
    let alice =
        grid.tenant("alice", &["--max-job-fuel", "1G", "--max-job-memory", "64MiB", "--max-job-timeout", "10s"]);
    let module = grid.wat("hello", &guests::hello());
    let m = module.to_str().unwrap();
    let run = grid.run_as(&alice, &["run", "--fuel", "2G", "--memory", "128MiB", "--timeout", "1m", m]);
    assert_eq!(run.code, Some(125), "{run:#?}");
    let line = run.grid_lines().concat();
    for part in ["2G fuel (at most 1G)", "128MiB of memory (at most 64MiB)", "a timeout of 1m (at most 10s)", "alice"] {
        assert!(line.contains(part), "`{part}` not in `{line}`");
    }
    assert!(grid.jobs().is_empty(), "a refused job was recorded");
    let run = grid.run_as(&alice, &["run", "--fuel", "1G", "--memory", "64MiB", "--timeout", "10s", m]);
    run.assert_clean_success();
}

#[test]
fn max_running_makes_jobs_wait_and_max_queued_refuses() {
    let grid = GridSandbox::builder(1).node_args(&["--slots", "4"]).start();
    let alice = grid.tenant("alice", &["--max-running", "1", "--max-queued", "1"]);
    let sleeper = grid.wat("sleeper", &guest(guests::SLEEP_MINUTE));
    let s = sleeper.to_str().unwrap();
    let submit = |token: &str| grid.run_as(token, &["submit", s]);
    let first = submit(&alice).stdout.trim().to_owned();
    grid.wait_until("the first runs", |g| (g.status(&first)["state"] == "running").then_some(()));
    let second = submit(&alice).stdout.trim().to_owned();
    let job = grid.wait_until("the second waits for its tenant", |g| {
        let job = g.status(&second);
        job["waiting"].as_str().is_some_and(|w| w.contains("tenant `alice` is at its 1 running job")).then_some(job)
    });
    assert_eq!(job["state"], "queued", "{job:#}");
    // One queued is the most.
    let third = submit(&alice);
    assert_eq!(third.code, Some(125), "{third:#?}");
    assert!(third.grid_lines().concat().contains("queued"), "{third:#?}");
    // Another tenant is not held back by alice's quota.
    let bob = grid.tenant("bob", &[]);
    let bobs = submit(&bob).stdout.trim().to_owned();
    grid.wait_until("bob's job runs", |g| (g.status(&bobs)["state"] == "running").then_some(()));
    // When alice's first ends, her second starts.
    grid.run(&["cancel", &first]).assert_clean_success();
    grid.wait_until("the second runs", |g| (g.status(&second)["state"] == "running").then_some(()));
    let tenants = grid.run(&["admin", "tenants", "--json"]).json();
    let row = tenants.as_array().unwrap().iter().find(|t| t["name"] == "alice").cloned().expect("alice listed");
    assert_eq!(number(&row["running"]), 1, "{row:#}");
    assert_eq!(number(&row["queued"]), 0, "{row:#}");
    for id in [&second, &bobs] {
        grid.run(&["cancel", id]).assert_clean_success();
    }
}

#[test]
fn the_fuel_rate_bills_what_was_burned_and_makes_jobs_wait() {
    let grid = GridSandbox::start(1);
    let alice = grid.tenant("alice", &["--fuel-per-hour", "1G/h"]);
    let spin = grid.wat("spin", &guest(guests::SPIN));
    // The spinner burns its whole 600M, leaving about 400M in the bucket.
    let run = grid.run_as(&alice, &["run", "--fuel", "600M", spin.to_str().unwrap()]);
    assert_ne!(run.code, Some(0), "{run:#?}");
    let run = grid.run_as(&alice, &["submit", "--fuel", "600M", spin.to_str().unwrap()]);
    run.assert_clean_success();
    let id = run.stdout.trim().to_owned();
    let job = grid.wait_until("the job waits for fuel", |g| {
        let job = g.status(&id);
        job["waiting"].as_str().is_some_and(|w| w.contains("tenant `alice`'s fuel quota")).then_some(job)
    });
    assert_eq!(job["state"], "queued", "{job:#}");
    let tenants = grid.run(&["admin", "tenants", "--json"]).json();
    let row = tenants.as_array().unwrap().iter().find(|t| t["name"] == "alice").cloned().expect("alice listed");
    assert!(number(&row["fuel_burned"]) >= 600_000_000, "{row:#}");
    assert_eq!(number(&row["jobs_run"]), 1, "{row:#}");
    // Over the whole quota is refused at once: it would wait for ever.
    let run = grid.run_as(&alice, &["submit", "--fuel", "2G", spin.to_str().unwrap()]);
    assert_eq!(run.code, Some(125), "{run:#?}");
    grid.run(&["cancel", &id]).assert_clean_success();
}

#[test]
fn a_private_node_runs_only_its_owner_s_jobs() {
    let mut grid = GridSandbox::start(0);
    let alice = grid.tenant("alice", &[]);
    let bob = grid.tenant("bob", &[]);
    let join = grid.join_token(&["--owner", "alice"]);
    let private = Spawned::start(grid.bare_node_command("alices", "alices").args(["--join", &join]));
    grid.wait_until("alice's node joined", |g| g.nodes().iter().any(|n| n["name"] == "alices").then_some(()));
    assert_eq!(grid.node("alices")["owner"], "alice");
    let module = grid.wat("hello", &guests::hello());
    let m = module.to_str().unwrap();
    let bobs = grid.run_as(&bob, &["submit", m]).stdout.trim().to_owned();
    let run = grid.run_as(&alice, &["run", m]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "first\n");
    // Bob's job waits, though alice's node is idle.
    let job = grid.status(&bobs);
    assert_eq!(job["state"], "queued", "{job:#}");
    // Bob does not even see alice's node.
    let names = RogueClient::connect(&grid.access(Some(&bob))).node_names().unwrap();
    assert!(names.is_empty(), "{names:?}");
    // A public node takes it.
    grid.add_node("public", &[]);
    let job = grid.wait_finished(&bobs);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["node"], "public", "{job:#}");
    private.signal("KILL");
}
