//! Scheduling seen from outside: every queued job says why it waits, a
//! higher priority goes first, and tenants take turns.

use crate::guests::{self, guest};
use grid_tests::GridSandbox;

#[test]
fn queued_jobs_say_why_and_priority_goes_first() {
    let grid = GridSandbox::builder(1).node_args(&["--slots", "1", "--memory", "256MiB"]).start();
    let sleeper = grid.wat("sleeper", &guest(guests::SLEEP_MINUTE));
    // Each takes a third of a second, so the order they ran in shows.
    let hello =
        grid.wat("nap", &guest("(call $sleep (i64.const 300000000)) (call $print (i32.const 200) (i32.const 6))"));
    let blocker = grid.submit(&["--memory", "64MiB", sleeper.to_str().unwrap()]);
    grid.wait_until("the blocker runs", |g| (g.status(&blocker)["state"] == "running").then_some(()));

    let low = grid.submit(&["--memory", "64MiB", "--tenant", "alice", hello.to_str().unwrap()]);
    let high = grid.submit(&["--memory", "64MiB", "--tenant", "bob", "--priority", "5", hello.to_str().unwrap()]);
    let status = grid.run(&["status", &low]);
    assert!(status.stdout.contains("waiting: every slot is busy"), "{status:#?}");
    let listing = grid.run(&["jobs", "--state", "queued"]);
    assert!(listing.stdout.contains("waiting: every slot is busy") && listing.stdout.contains("alice"), "{listing:#?}");

    grid.run(&["cancel", &blocker]);
    grid.run(&["wait", &low]).assert_clean_success();
    // One slot: the high-priority job, submitted last, ran (and ended) first.
    let high_status = grid.status(&high);
    assert_eq!(high_status["state"], "succeeded", "{high_status:#}");
    assert_eq!(high_status["priority"], 5, "{high_status:#}");
}

#[test]
fn a_job_waiting_for_memory_says_so() {
    let grid = GridSandbox::builder(1).node_args(&["--slots", "4", "--memory", "128MiB"]).start();
    let sleeper = grid.wat("sleeper", &guest(guests::SLEEP_MINUTE));
    let big = grid.submit(&["--memory", "100MiB", sleeper.to_str().unwrap()]);
    grid.wait_until("the big job runs", |g| (g.status(&big)["state"] == "running").then_some(()));
    let second = grid.submit(&["--memory", "100MiB", grid.wat("hello", &guests::hello()).to_str().unwrap()]);
    let status = grid.run(&["status", &second]);
    assert!(status.stdout.contains("waiting: no node with 100MiB of memory free"), "{status:#?}");
    grid.run(&["cancel", &big]);
    grid.run(&["wait", &second]).assert_clean_success();
}
