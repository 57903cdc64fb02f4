//! Several masters on one PostgreSQL: the leader's death, pause, or cut
//! connections cost seconds and no job; a deposed leader writes
//! nothing and stands by; a restart of every master, or of PostgreSQL
//! itself, loses nothing that was acknowledged.

use crate::guests;
use grid_tests::cluster::Cluster;
use grid_tests::{Spawned, number};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A guest that prints `first`, sleeps `secs` seconds, then prints `second`.
fn slow(cluster: &Cluster, secs: u64) -> PathBuf {
    let text = guests::guest(&format!(
        "(call $print (i32.const 200) (i32.const 6)) (call $sleep (i64.const {})) (call $print (i32.const 220) (i32.const 7))",
        secs * 1_000_000_000
    ));
    let path = cluster.dir().join(format!("slow{secs}.wasm"));
    std::fs::write(&path, wat::parse_str(&text).unwrap()).unwrap();
    path
}

fn hello(cluster: &Cluster) -> PathBuf {
    let path = cluster.dir().join("hello.wasm");
    std::fs::write(&path, wat::parse_str(guests::hello()).unwrap()).unwrap();
    path
}

#[track_caller]
fn submit(cluster: &Cluster, module: &std::path::Path) -> String {
    let run = cluster.run(&["submit", module.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    run.stdout.trim().to_owned()
}

/// Asserts job `id` succeeded, ended once, with `output` as its whole
/// output. (A job that was running under a leader that died runs on under
/// the next, on its node; one whose node did not come back in time runs
/// again: its earlier attempt ends `master restarted`.)
#[track_caller]
fn ran_once(cluster: &Cluster, id: &str, output: &str) {
    let job = cluster.wait_finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let history = job["history"].as_array().expect("history");
    let finished = history.iter().filter(|a| a["end"] == "finished").count();
    assert_eq!(finished, 1, "the job ended more than once: {job:#}");
    assert!(number(&job["attempts"]) <= 2, "{job:#}");
    let logs = cluster.run(&["logs", id]);
    assert_eq!(logs.stdout, output, "job {id}'s output: {logs:#?}");
}

#[test]
fn killing_the_leader_costs_seconds_and_no_job() {
    let mut cluster = Cluster::start(2, 2);
    let (slow, quick) = (slow(&cluster, 3), hello(&cluster));
    // A run that follows its job across the change of master.
    let mut run = Spawned::start(&mut cluster.cli(&["run", slow.to_str().unwrap()]));
    run.wait_line(|l| l == "first");
    let slow_ids: Vec<String> = (0..3).map(|_| submit(&cluster, &slow)).collect();
    let quick_ids: Vec<String> = (0..10).map(|_| submit(&cluster, &quick)).collect();

    let killed = Instant::now();
    cluster.kill_master(0);
    let (leader, _) = cluster.wait_leader_other_than("m0");
    let took = killed.elapsed();
    assert_eq!(leader, "m1");
    assert!(took < Duration::from_secs(10), "the standby led only after {took:?}");

    let out = run.finish();
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(out.stdout, "first\nsecond\n", "the following run printed: {out:#?}");
    for id in &slow_ids {
        ran_once(&cluster, id, "first\nsecond\n");
    }
    for id in &quick_ids {
        ran_once(&cluster, id, "first\n");
    }
    // The nodes followed the leader by themselves.
    assert_eq!(cluster.ready_nodes(), 2);
    let masters = cluster.run(&["admin", "masters"]);
    assert!(masters.stdout.contains("leader"), "{masters:#?}");
}

#[test]
fn a_job_running_when_the_leader_dies_runs_on_on_its_node_once() {
    let mut cluster = Cluster::start(2, 1);
    let slow = slow(&cluster, 4);
    let id = submit(&cluster, &slow);
    cluster.wait_until("the job printed its first line", |c| (c.run(&["logs", &id]).stdout == "first\n").then_some(()));
    let node = cluster.status(&id)["node"].as_str().unwrap().to_owned();

    cluster.kill_master(0);
    cluster.wait_leader_other_than("m0");
    let job = cluster.wait_finished(&id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(number(&job["attempts"]), 1, "the job ran again: {job:#}");
    assert_eq!(job["node"].as_str(), Some(node.as_str()), "{job:#}");
    let history = job["history"].as_array().expect("history");
    assert_eq!(history.len(), 1, "{job:#}");
    let logs = cluster.run(&["logs", &id]);
    assert_eq!(logs.stdout, "first\nsecond\n", "its output, recorded once: {logs:#?}");
}

#[test]
fn a_paused_leader_writes_nothing_once_resumed_and_stands_by() {
    let cluster = Cluster::start(2, 1);
    let quick = hello(&cluster);
    let before = submit(&cluster, &quick);
    ran_once(&cluster, &before, "first\n");

    cluster.signal_master(0, "STOP");
    let (leader, _) = cluster.wait_leader_other_than("m0");
    assert_eq!(leader, "m1");
    let during = submit(&cluster, &quick);
    ran_once(&cluster, &during, "first\n");
    let epoch = cluster.pg.psql("grid", "SELECT epoch FROM grid_lease").unwrap();

    cluster.signal_master(0, "CONT");
    cluster.wait_log(0, "stepped down");
    // It answers as a standby, naming the leader.
    let asked = cluster.cli_at(0, &["status", &during]).output().unwrap();
    let stderr = String::from_utf8_lossy(&asked.stderr);
    assert!(stderr.contains("standby") || asked.status.success(), "the deposed leader answered: {stderr}");
    // The lease stayed with the new leader; the record is whole.
    assert_eq!(cluster.pg.psql("grid", "SELECT holder FROM grid_lease").unwrap(), "m1");
    assert_eq!(cluster.pg.psql("grid", "SELECT epoch FROM grid_lease").unwrap(), epoch);
    ran_once(&cluster, &before, "first\n");
    ran_once(&cluster, &during, "first\n");
    let after = submit(&cluster, &quick);
    ran_once(&cluster, &after, "first\n");
}

#[test]
fn a_leader_whose_database_connections_are_cut_loses_nothing() {
    let cluster = Cluster::start(2, 1);
    let quick = hello(&cluster);
    let before = submit(&cluster, &quick);
    ran_once(&cluster, &before, "first\n");
    let cut = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'grid-master m0'";
    let cut: u64 = cluster.pg.psql("grid", cut).unwrap().parse().unwrap();
    assert!(cut > 0, "m0 had no connection to cut");
    // Whichever master leads now, the grid serves and the record is whole.
    let after: Vec<String> = (0..5).map(|_| submit(&cluster, &quick)).collect();
    for id in std::iter::once(&before).chain(&after) {
        ran_once(&cluster, id, "first\n");
    }
    let leader = cluster.wait_until("a master leads", |c| c.leader());
    assert_eq!(cluster.pg.psql("grid", "SELECT holder FROM grid_lease").unwrap(), leader);
}

#[test]
fn every_master_restarted_at_once_keeps_the_record() {
    let mut cluster = Cluster::start(2, 1);
    let quick = hello(&cluster);
    let done: Vec<String> = (0..5).map(|_| submit(&cluster, &quick)).collect();
    for id in &done {
        ran_once(&cluster, id, "first\n");
    }
    cluster.kill_master(0);
    cluster.kill_master(1);
    cluster.start_master(0);
    cluster.start_master(1);
    cluster.wait_until("a master leads again", |c| c.leader());
    for id in &done {
        ran_once(&cluster, id, "first\n");
    }
    let id = submit(&cluster, &quick);
    ran_once(&cluster, &id, "first\n");
}

#[test]
fn postgres_killed_and_restarted_loses_nothing_acknowledged() {
    let cluster = Cluster::start(2, 1);
    let quick = hello(&cluster);
    let before: Vec<String> = (0..5).map(|_| submit(&cluster, &quick)).collect();
    cluster.pg.kill();
    // Submissions while the database is down are refused or wait: none is
    // acknowledged and then lost.
    let mut during = Vec::new();
    let mut cli = cluster.cli(&["submit", quick.to_str().unwrap()]);
    let waiting = cli.stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    cluster.pg.restart().unwrap();
    let out = waiting.wait_with_output().unwrap();
    if out.status.success() {
        during.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    cluster.wait_until("a master leads again", |c| c.leader());
    for id in before.iter().chain(&during) {
        ran_once(&cluster, id, "first\n");
    }
    let id = submit(&cluster, &quick);
    ran_once(&cluster, &id, "first\n");
}
