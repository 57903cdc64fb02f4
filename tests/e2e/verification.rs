//! Results one can believe from nodes one does not control: replicas and
//! their quorum, adaptive trust, quarantine, deterministic runs and credit,
//! with forging, holding and greedy nodes from `grid_tests::rogue` mixed
//! among honest `grid-node`s.
//!
//! Each test that needs a rogue to run a replica makes sure it does: with
//! as many nodes connected as the job has replicas, every node runs one,
//! and the node that outvotes the rogue joins only after that.

use crate::guests;
use grid_tests::rogue::{FORGED_FUEL, OnAssign, RogueNode, greedy_registration, registration};
use grid_tests::{GridSandbox, Spawned, number};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// What [`guests::hello`] prints.
const HELLO: &str = "first\n";

/// The sandbox's master verifies as `flags` say (they include `--verify`,
/// which replaces the sandbox's `--verify off`); no node yet.
fn grid(flags: &[&str]) -> GridSandbox {
    GridSandbox::builder(0).master_args(flags).start()
}

/// The WAT hello guest, written to the sandbox dir.
fn hello(grid: &GridSandbox) -> String {
    grid.wat("hello", &guests::hello()).to_str().unwrap().to_owned()
}

/// A rogue node joined as `name` (claiming one slot and the most fuel of
/// any node, so routing favours it), doing `on_assign` with its jobs.
fn rogue(grid: &GridSandbox, name: &str, on_assign: OnAssign) -> RogueNode {
    RogueNode::connect(&grid.node_access(name), registration(name, vec![]), on_assign)
}

/// The job's replicas (its attempts) as `status --json` lists them.
fn replicas(job: &Value) -> Vec<Value> {
    job["history"].as_array().cloned().unwrap_or_default()
}

/// The replicas of `job` that ran on node `name`.
fn on(job: &Value, name: &str) -> Vec<Value> {
    replicas(job).into_iter().filter(|r| r["node"] == name).collect()
}

/// The replicas of `job` whose verdict is `verdict`.
fn with_verdict(job: &Value, verdict: &str) -> Vec<Value> {
    replicas(job).into_iter().filter(|r| r["verdict"] == verdict).collect()
}

/// A replica's digest: full lowercase hex sha256.
#[track_caller]
fn digest(replica: &Value) -> String {
    let d = replica["digest"].as_str().unwrap_or_else(|| panic!("no digest: {replica:#}"));
    assert!(d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{d}");
    d.to_owned()
}

/// The job's `quorum`: the replicas that had to agree, 0 for a job that
/// ran alone.
#[track_caller]
fn quorum(job: &Value) -> u64 {
    number(&job["quorum"])
}

/// Asserts `job` succeeded on `n` replicas that all agreed, on distinct
/// nodes, with one digest; returns their nodes.
#[track_caller]
fn assert_agreed(job: &Value, n: usize) -> BTreeSet<String> {
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let agreed = with_verdict(job, "agreed");
    assert_eq!(agreed.len(), n, "{job:#}");
    let digests: BTreeSet<String> = agreed.iter().map(digest).collect();
    assert_eq!(digests.len(), 1, "agreeing replicas with different digests: {job:#}");
    let nodes: BTreeSet<String> = agreed.iter().map(|r| r["node"].as_str().unwrap().to_owned()).collect();
    assert_eq!(nodes.len(), n, "replicas on the same node: {job:#}");
    nodes
}

/// Node `name`'s standing as `grid-cli nodes --json` lists it.
#[derive(Debug)]
struct Standing {
    /// Agreeing results in a row.
    trust: u64,
    trusted: bool,
    quarantined: bool,
    strikes: u64,
    credit: u64,
}

#[track_caller]
fn standing(grid: &GridSandbox, name: &str) -> Standing {
    let node = grid.node(name);
    let flag = |key: &str| node[key].as_bool().unwrap_or_else(|| panic!("no `{key}` in {node:#}"));
    Standing {
        trust: number(&node["trust"]),
        trusted: flag("trusted"),
        quarantined: flag("quarantined"),
        strikes: number(&node["strikes"]),
        credit: number(&node["credit"]),
    }
}

/// `grid-cli logs ID`: the job's accepted stdout.
#[track_caller]
fn logs(grid: &GridSandbox, id: &str) -> String {
    let run = grid.run(&["logs", id]);
    run.assert_clean_success();
    run.stdout
}

/// The id of the newest job.
#[track_caller]
fn newest(grid: &GridSandbox) -> String {
    grid.jobs()[0]["id"].as_str().expect("a job id").to_owned()
}

#[test]
fn a_forger_among_honest_nodes_is_outvoted_and_loses_trust() {
    let mut grid = grid(&["--verify", "adaptive"]);
    let forger = rogue(&grid, "forger", OnAssign::forge());
    grid.add_node("node-0", &[]);
    let module = hello(&grid);
    // Two nodes for two replicas: the forger runs one.
    let run = Spawned::start(&mut grid.cli(&["run", "--replicas", "2", &module]));
    let id = forger.wait_assigned();
    // Outvoting it takes a third replica, on a third node.
    grid.add_node("node-1", &[]);
    let run = run.finish();
    run.assert_clean_success();
    assert_eq!(run.stdout, HELLO, "{run:#?}");
    let job = grid.status(&id);
    assert_eq!(quorum(&job), 2, "{job:#}");
    let honest = assert_agreed(&job, 2);
    assert_eq!(honest, BTreeSet::from(["node-0".to_owned(), "node-1".to_owned()]), "{job:#}");
    let forged = on(&job, "forger");
    assert_eq!(forged.len(), 1, "{job:#}");
    assert_eq!(forged[0]["verdict"], "disagreed", "{job:#}");
    assert_ne!(digest(&forged[0]), digest(&with_verdict(&job, "agreed")[0]));
    assert_ne!(number(&job["fuel_used"]), FORGED_FUEL, "{job:#}");
    assert_eq!(logs(&grid, &id), HELLO);
    let s = standing(&grid, "forger");
    assert!(s.trust == 0 && s.strikes >= 1 && !s.trusted && s.credit == 0, "{s:?}");
}

#[test]
fn two_forgers_that_agree_get_no_quorum_and_print_nothing() {
    let mut grid = grid(&["--verify", "adaptive", "--max-replicas", "3"]);
    let _a = rogue(&grid, "forger-a", OnAssign::forge());
    let _b = rogue(&grid, "forger-b", OnAssign::forge());
    grid.add_node("node-0", &[]);
    let module = hello(&grid);
    // Three replicas on the three nodes: two forged answers agree, one
    // honest one does not, and the bound allows no fourth.
    let run = grid.run(&["run", "--replicas", "3", &module]);
    run.assert_grid_failure(125, "grid: no quorum: ");
    // No replica's output was accepted, so none is printed (an assumption
    // beyond "never a rejected one": the honest output was not accepted
    // either).
    assert!(!run.stdout.contains("forged"), "{run:#?}");
    assert_eq!(run.stdout, "", "{run:#?}");
    let job = grid.status(&newest(&grid));
    assert_eq!(job["state"], "failed", "{job:#}");
    assert!(job["reason"].as_str().unwrap_or_default().contains("no quorum"), "{job:#}");
    assert_eq!(replicas(&job).len(), 3, "{job:#}");
    assert!(with_verdict(&job, "agreed").is_empty(), "nothing was agreed: {job:#}");
    let (a, b, honest) = (on(&job, "forger-a"), on(&job, "forger-b"), on(&job, "node-0"));
    assert_eq!(digest(&a[0]), digest(&b[0]), "{job:#}");
    assert_ne!(digest(&a[0]), digest(&honest[0]), "{job:#}");
    assert!(!logs(&grid, job["id"].as_str().unwrap()).contains("forged"));
    // No work was validated: nobody earned credit.
    for name in ["forger-a", "forger-b", "node-0"] {
        assert_eq!(standing(&grid, name).credit, 0, "{name}");
    }
}

#[test]
fn a_node_that_holds_a_replica_loses_it_at_the_deadline_and_takes_a_strike() {
    let mut grid = grid(&["--verify", "adaptive", "--grace", "1s"]);
    let holder = RogueNode::connect(&grid.node_access("holder"), greedy_registration("holder", vec![]), OnAssign::Hold);
    grid.add_node("node-0", &[]);
    let module = hello(&grid);
    // A new node's job is checked by a second replica: with two nodes, the
    // holder runs one of them.
    let id = grid.submit(&["--timeout", "2s", &module]);
    assert_eq!(holder.wait_assigned(), id);
    // Past the deadline (2 s and the grace of 1 s) it loses the job, and
    // that counts against it.
    grid.wait_until("the holder took a strike", |s| (standing(s, "holder").strikes >= 1).then_some(()));
    grid.wait_until("the holder was told to cancel", |_| holder.cancelled().contains(&id).then_some(()));
    // The job finishes with a replica elsewhere.
    grid.add_node("node-1", &[]);
    let job = grid.wait_finished(&id);
    assert_eq!(quorum(&job), 2, "{job:#}");
    assert_agreed(&job, 2);
    let held = on(&job, "holder");
    assert_eq!(held.len(), 1, "{job:#}");
    assert_eq!(held[0]["end"], "overdue", "{job:#}");
    assert_eq!(logs(&grid, &id), HELLO);
    // As before verification: a node that held a job is not offered it again.
    assert_eq!(holder.assigned(), std::slice::from_ref(&id));
    let s = standing(&grid, "holder");
    assert!(s.strikes >= 1 && s.trust == 0 && s.credit == 0, "{s:?}");
}

#[test]
fn a_new_node_is_checked_and_a_trusted_one_mostly_runs_alone() {
    let grid = GridSandbox::builder(2).master_args(&["--verify", "adaptive", "--trust-after", "2"]).start();
    let module = hello(&grid);
    let run_one = || {
        let run = grid.run(&["run", &module]);
        run.assert_clean_success();
        assert_eq!(run.stdout, HELLO);
        grid.status(&newest(&grid))
    };
    // New nodes: each job runs on both, and both agree.
    for _ in 0..2 {
        let job = run_one();
        assert_eq!(quorum(&job), 2, "{job:#}");
        assert_agreed(&job, 2);
        assert_eq!(replicas(&job).len(), 2, "{job:#}");
    }
    for name in ["node-0", "node-1"] {
        let s = standing(&grid, name);
        assert!(s.trusted && s.trust == 2 && s.strikes == 0, "{name}: {s:?}");
    }
    // Trusted, a node's job is still checked with probability 2/streak:
    // that every one of 20 jobs is checked has odds of 2^20/21! (2e-14).
    let mut alone = 0;
    for _ in 0..20 {
        let job = run_one();
        match quorum(&job) {
            0 => {
                alone += 1;
                let ran = replicas(&job);
                assert_eq!(ran.len(), 1, "{job:#}");
                assert!(ran[0]["verdict"].is_null(), "{job:#}");
            }
            2 => {
                assert_agreed(&job, 2);
            }
            q => panic!("a quorum of {q}: {job:#}"),
        }
    }
    assert!(alone >= 1, "every job was replicated after both nodes were trusted");
    for name in ["node-0", "node-1"] {
        let s = standing(&grid, name);
        assert!(s.trusted && s.strikes == 0 && !s.quarantined, "{name}: {s:?}");
    }
}

#[test]
fn a_quarantined_node_gets_no_jobs_until_an_admin_clears_it() {
    let mut grid = grid(&["--verify", "adaptive", "--quarantine-after", "1"]);
    let forger = rogue(&grid, "forger", OnAssign::forge());
    grid.add_node("node-0", &[]);
    let module = hello(&grid);
    let id = grid.submit(&["--replicas", "2", &module]);
    assert_eq!(forger.wait_assigned(), id);
    grid.add_node("node-1", &[]);
    let job = grid.wait_finished(&id);
    assert_agreed(&job, 2);
    assert_eq!(on(&job, "forger")[0]["verdict"], "disagreed", "{job:#}");
    let s = standing(&grid, "forger");
    assert!(s.quarantined && s.strikes == 1, "{s:?}");
    assert!(grid.run(&["nodes"]).stdout.contains("quarantined"));
    // It still claims the most fuel of any node, and gets nothing.
    for args in [&["run"][..], &["run", "--replicas", "2"], &["run"], &["run", "--replicas", "2"]] {
        let run = grid.run(&[args, &[module.as_str()]].concat());
        run.assert_clean_success();
        assert_eq!(run.stdout, HELLO);
    }
    assert_eq!(forger.assigned(), std::slice::from_ref(&id), "a quarantined node was given jobs");
    let cleared = grid.run(&["admin", "nodes", "unquarantine", "forger"]);
    cleared.assert_clean_success();
    assert!(cleared.stdout.contains("node `forger` may run jobs again"), "{cleared:#?}");
    let s = standing(&grid, "forger");
    assert!(!s.quarantined && s.trust == 0, "{s:?}");
    let again = grid.run(&["admin", "nodes", "unquarantine", "forger"]);
    again.assert_clean_success();
    assert!(again.stdout.contains("node `forger` was not quarantined"), "{again:#?}");
    // An unknown node is NOT_FOUND: one line naming it.
    grid.run(&["admin", "nodes", "unquarantine", "nobody"]).assert_grid_failure(125, "nobody");
}

/// Prints, in hex, the wall clock and the monotonic clock (8 bytes each,
/// little-endian nanoseconds) and 32 random bytes, then a newline.
const CLOCKS_AND_RANDOM: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "0123456789abcdef")
  (func (export "_start")
    (local $i i32)
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 1024)))
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 1032)))
    (drop (call $random (i32.const 1040) (i32.const 32)))
    (loop $l
      (i32.store8 (i32.add (i32.const 2048) (i32.shl (local.get $i) (i32.const 1)))
        (i32.load8_u (i32.shr_u (i32.load8_u (i32.add (i32.const 1024) (local.get $i))) (i32.const 4))))
      (i32.store8 (i32.add (i32.const 2049) (i32.shl (local.get $i) (i32.const 1)))
        (i32.load8_u (i32.and (i32.load8_u (i32.add (i32.const 1024) (local.get $i))) (i32.const 15))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 48))))
    (i32.store8 (i32.const 2144) (i32.const 10))
    (i32.store (i32.const 512) (i32.const 2048))
    (i32.store (i32.const 516) (i32.const 97))
    (drop (call $fd_write (i32.const 1) (i32.const 512) (i32.const 1) (i32.const 520)))))"#;

/// The little-endian u64 in the 16 hex digits at `at` of `hex`.
fn le_u64(hex: &str, at: usize) -> u64 {
    let bytes = hex::decode(&hex[at..at + 16]).unwrap();
    u64::from_le_bytes(bytes.try_into().unwrap())
}

#[test]
fn replicas_of_a_job_reading_clocks_and_random_bytes_agree_across_nodes() {
    // Verification off (the sandbox's default): a job asking for replicas
    // still gets them (`trust::VerifyMode::Off`).
    let grid = GridSandbox::start(2);
    let module = grid.wat("clocks", CLOCKS_AND_RANDOM);
    let module = module.to_str().unwrap();
    let run = grid.run(&["run", "--replicas", "2", module]);
    run.assert_clean_success();
    let job = grid.status(&newest(&grid));
    assert_eq!(quorum(&job), 2, "{job:#}");
    assert_agreed(&job, 2);
    let out = run.stdout.trim_end();
    assert_eq!(out.len(), 96, "{run:#?}");
    // The virtual clocks: 2000-01-01T00:00:00Z and 0, advanced by 1 ns per
    // unit of fuel, which this guest burns far less than a second's worth of.
    let second = 1_000_000_000;
    let wall = le_u64(out, 0);
    assert!((946_684_800 * second..946_684_801 * second).contains(&wall), "wall clock {wall}");
    assert!(le_u64(out, 16) < second, "monotonic clock {}", le_u64(out, 16));
    assert_ne!(&out[32..], "0".repeat(64), "no random bytes");
    // The same job again gives the same bytes, and so does a deterministic
    // run on one node: the seed is the spec's, replicas left out (assumes
    // the master's only change to a replicated spec is `deterministic`).
    let again = grid.run(&["run", "--replicas", "2", module]);
    again.assert_clean_success();
    assert_eq!(again.stdout, run.stdout);
    let alone = grid.run(&["run", "--deterministic", module]);
    alone.assert_clean_success();
    assert_eq!(alone.stdout, run.stdout);
}

#[test]
fn credit_is_earned_only_for_validated_work() {
    let mut grid = grid(&["--verify", "adaptive"]);
    let forger = rogue(&grid, "forger", OnAssign::forge());
    grid.add_node("node-0", &[]);
    let module = hello(&grid);
    // The first job: the forger runs a replica and is outvoted.
    let first = grid.submit(&["--replicas", "2", &module]);
    assert_eq!(forger.wait_assigned(), first);
    grid.add_node("node-1", &[]);
    let mut ids = vec![first];
    grid.wait_finished(&ids[0]);
    // Two more, wherever they run.
    for _ in 0..2 {
        let run = grid.run(&["run", "--replicas", "2", &module]);
        run.assert_clean_success();
        ids.push(newest(&grid));
    }
    // Each honest node earned the accepted fuel of each job it agreed on;
    // the forger, whose results never agreed, earned nothing.
    let jobs: Vec<Value> = ids.iter().map(|id| grid.status(id)).collect();
    for name in ["node-0", "node-1"] {
        let earned: u64 = jobs
            .iter()
            .filter(|job| on(job, name).iter().any(|r| r["verdict"] == "agreed"))
            .map(|job| number(&job["fuel_used"]))
            .sum();
        assert!(earned > 0, "{name} agreed on nothing: {jobs:#?}");
        assert_eq!(standing(&grid, name).credit, earned, "{name}: {jobs:#?}");
    }
    assert_eq!(standing(&grid, "forger").credit, 0);
}

#[test]
fn a_greedy_new_node_gets_a_bounded_share_whatever_it_claims() {
    // The default policy, said out loud over the sandbox's `--verify off`.
    let grid = GridSandbox::builder(1).master_args(&["--verify", "adaptive"]).start();
    let greedy = RogueNode::connect(&grid.node_access("greedy"), greedy_registration("greedy", vec![]), OnAssign::Hold);
    let module = hello(&grid);
    for _ in 0..20 {
        grid.submit(&[&module]);
    }
    grid.wait_until("the greedy node has jobs", |_| (greedy.assigned().len() >= 2).then_some(()));
    // Four heartbeats, each a chance to dispatch: a master that believed
    // its 64 slots would have sent it more by now.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(greedy.assigned().len(), 2, "{:?}", greedy.assigned());
    assert_eq!(grid.slots("greedy"), (2, 64));
    let unfinished = grid.jobs().iter().filter(|j| j["state"] != "succeeded").count();
    assert!(unfinished >= 18, "{unfinished} jobs unfinished");
}

#[test]
fn a_job_needing_more_nodes_than_are_connected_waits_and_says_why() {
    // Verification off (the sandbox's default): replicas asked for still run.
    let mut grid = GridSandbox::start(2);
    let module = hello(&grid);
    let id = grid.submit(&["--replicas", "3", &module]);
    let why = grid.wait_until("the job waits for a third node, saying so", |s| {
        let job = s.status(&id);
        let why = job["waiting"].as_str().unwrap_or_default().to_owned();
        why.contains("node").then_some(why)
    });
    assert!(why.starts_with("waiting: "), "{why}");
    assert_ne!(grid.status(&id)["state"], "succeeded");
    grid.add_node("node-2", &[]);
    let job = grid.wait_finished(&id);
    assert_eq!(quorum(&job), 3, "{job:#}");
    assert_agreed(&job, 3);
    assert_eq!(logs(&grid, &id), HELLO);
}

#[test]
fn more_replicas_than_the_master_allows_are_refused() {
    let grid = GridSandbox::builder(1).master_args(&["--verify", "adaptive", "--max-replicas", "5"]).start();
    let module = hello(&grid);
    for verb in ["run", "submit"] {
        let run = grid.run(&[verb, "--replicas", "9", &module]);
        run.assert_grid_failure(125, "replicas");
        let line = run.grid_lines()[0];
        assert!(line.contains('9') && line.contains('5'), "the line should name both: {line}");
    }
    assert!(grid.jobs().is_empty());
}
