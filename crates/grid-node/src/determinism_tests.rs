//! Deterministic jobs through the executor: the same spec sees the same
//! clocks and random bytes run after run, another spec other bytes, and a
//! plain job the host's clock.

use crate::cache::ModuleCache;
use crate::config::NodeConfig;
use crate::engine::new_engine;
use crate::executor::{self, Run};
use grid_core::archive::{self, Escape};
use grid_core::{JobSpec, Limits, MappedDir, ModuleHash, Outcome};
use std::time::Instant;
use tokio::sync::mpsc;

/// Writes the wall clock, the monotonic clock (after some work) and 16
/// random bytes, each as 8 raw little-endian bytes, to stdout.
const OBSERVER: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (local $n i32)
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 64)))
    (local.set $n (i32.const 1000))
    (loop $l
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 72)))
    (drop (call $random (i32.const 80) (i32.const 16)))
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 32))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

fn spec(module: ModuleHash, args: &[&str], deterministic: bool) -> JobSpec {
    JobSpec {
        module,
        args: args.iter().map(|a| a.to_string()).collect(),
        env: vec![],
        stdin: vec![],
        dirs: vec![],
        limits: Limits { fuel: 1_000_000, ..Limits::default() },
        deterministic,
        replicas: 0,
    }
}

/// A command component whose `run` succeeds if the wall clock says
/// 2000-01-01T00:00:00 (to the second), and fails otherwise.
const IN_2000: &str = r#"(component
  (import "wasi:clocks/wall-clock@0.2.0" (instance $wall
    (type $datetime (record (field "seconds" u64) (field "nanoseconds" u32)))
    (export "datetime" (type $dt (eq $datetime)))
    (export "now" (func (result $dt)))))
  (core module $memory (memory (export "memory") 1))
  (core instance $memory (instantiate $memory))
  (alias export $wall "now" (func $wall-now))
  (alias core export $memory "memory" (core memory $mem))
  (core func $now (canon lower (func $wall-now) (memory $mem)))
  (core instance $host (export "now" (func $now)) (export "memory" (memory $mem)))
  (core module $m
    (import "host" "now" (func $now (param i32)))
    (import "host" "memory" (memory 1))
    (func (export "run") (result i32)
      (call $now (i32.const 0))
      (i64.ne (i64.load (i32.const 0)) (i64.const 946684800))))
  (core instance $i (instantiate $m (with "host" (instance $host))))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $run (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run)))"#;

/// Runs the guest `text` with `args` to its end: its report and stdout.
async fn run(text: &str, args: &[&str], deterministic: bool) -> (grid_core::JobReport, Vec<u8>) {
    run_with_dirs(text, args, deterministic, vec![]).await
}

/// Runs the guest `text` with `args` and directories `dirs` to its end.
async fn run_with_dirs(
    text: &str,
    args: &[&str],
    deterministic: bool,
    dirs: Vec<MappedDir>,
) -> (grid_core::JobReport, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let mut capacity = NodeConfig::new("http://unused", dir.path()).capacity;
    capacity.slots = 1;
    capacity.per_job.memory = 64 << 20;
    let engine = new_engine(&capacity).unwrap();
    let cache = ModuleCache::open(&engine, dir.path(), 1 << 30, crate::compile::CompileLimits::default()).unwrap();
    let bytes = wat::parse_str(text).unwrap();
    let hash = ModuleHash::of(&bytes);
    let pre = cache.get(&hash, || async move { Ok(bytes) }, || async {}).await.unwrap();
    let spec = JobSpec { dirs, ..spec(hash, args, deterministic) };
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let report = executor::run(Run {
        spec: &spec,
        pre,
        output: tx,
        cancelled: Box::pin(std::future::pending()),
        scratch: Some(&scratch),
        node: "test",
        received: Instant::now(),
    })
    .await;
    let mut out = Vec::new();
    while let Some(chunk) = rx.recv().await {
        out.extend_from_slice(&chunk.data);
    }
    (report, out)
}

/// What the observer saw: wall clock (ns since the epoch), monotonic clock,
/// random bytes; and the fuel it burned.
async fn observe(args: &[&str], deterministic: bool) -> (u64, u64, Vec<u8>, u64) {
    let (report, out) = run(OBSERVER, args, deterministic).await;
    assert_eq!(report.outcome, Outcome::Exited(0), "{report:?}");
    assert_eq!(out.len(), 32);
    let word = |i: usize| u64::from_le_bytes(out[i..i + 8].try_into().unwrap());
    (word(0), word(8), out[16..].to_vec(), report.fuel_used)
}

#[tokio::test]
async fn the_same_deterministic_job_sees_the_same_clocks_and_bytes() {
    let first = observe(&["app"], true).await;
    let second = observe(&["app"], true).await;
    assert_eq!(first, second);
    let (wall, mono, _, fuel) = first;
    // The wall clock starts at 2000-01-01T00:00:00Z, the monotonic one at 0,
    // and both count the fuel burned so far, in nanoseconds.
    let start = crate::determinism::WALL_CLOCK_START.as_nanos() as u64;
    assert!(wall > start && wall - start < 100, "{wall}");
    assert!(mono > wall - start + 1000 && mono < fuel, "{mono} {fuel}");
}

#[tokio::test]
async fn other_args_draw_other_bytes() {
    let (_, _, bytes, _) = observe(&["app"], true).await;
    let (_, _, other, _) = observe(&["app", "x"], true).await;
    assert_ne!(bytes, other);
}

#[tokio::test]
async fn a_plain_job_sees_the_host() {
    let (wall, _, bytes, _) = observe(&["app"], false).await;
    let (_, _, again, _) = observe(&["app"], false).await;
    assert_ne!(bytes, again);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    assert!(wall > now - 60_000_000_000, "{wall}");
}

#[tokio::test]
async fn a_deterministic_component_lives_in_2000() {
    let (report, _) = run(IN_2000, &["app"], true).await;
    assert_eq!(report.outcome, Outcome::Exited(0), "{report:?}");
    let (report, _) = run(IN_2000, &["app"], false).await;
    assert_eq!(report.outcome, Outcome::Exited(1), "{report:?}");
}

/// Lists its directory (preopened as fd 3) with `fd_readdir` and writes the
/// raw listing, then the raw `filestat` of its file `b`.
const LISTER: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $readdir (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get" (func $stat (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 600) "b")
  (func $write (param $at i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $at))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (drop (call $readdir (i32.const 3) (i32.const 1024) (i32.const 4096) (i64.const 0) (i32.const 16)))
    (call $write (i32.const 1024) (i32.load (i32.const 16)))
    (if (call $stat (i32.const 3) (i32.const 0) (i32.const 600) (i32.const 1) (i32.const 512)) (then unreachable))
    (call $write (i32.const 512) (i32.const 64))))"#;

#[tokio::test]
async fn a_deterministic_job_lists_its_files_by_name_and_sees_no_host_times() {
    let tree = tempfile::tempdir().unwrap();
    for name in ["c", "a", "b", "e", "d"] {
        std::fs::write(tree.path().join(name), name).unwrap();
    }
    let dirs = vec![MappedDir { guest_path: "/d".into(), archive: archive::pack(tree.path(), Escape::Fail).unwrap() }];
    let (report, out) = run_with_dirs(LISTER, &["app"], true, dirs).await;
    assert_eq!(report.outcome, Outcome::Exited(0), "{report:?}");
    let (listing, stat) = out.split_at(out.len() - 64);
    let (mut names, mut at) = (Vec::new(), 0);
    while at < listing.len() {
        let word = |i: usize| u64::from_le_bytes(listing[at + i..at + i + 8].try_into().unwrap());
        assert_eq!(word(0), names.len() as u64 + 1, "entries are numbered in order");
        assert_eq!(word(8), 0, "an inode");
        let len = u32::from_le_bytes(listing[at + 16..at + 20].try_into().unwrap()) as usize;
        names.push(String::from_utf8(listing[at + 24..at + 24 + len].to_vec()).unwrap());
        at += 24 + len;
    }
    assert_eq!(names, [".", "..", "a", "b", "c", "d", "e"]);
    let word = |i: usize| u64::from_le_bytes(stat[i..i + 8].try_into().unwrap());
    let start = crate::determinism::WALL_CLOCK_START.as_nanos() as u64;
    assert_eq!((word(0), word(8), word(32)), (0, 0, 1), "device, inode, size");
    assert_eq!((word(40), word(48), word(56)), (start, start, start), "times");
}

/// Lists its directory (preopened as fd 3) twice, each time from cookie 0
/// through a 40-byte buffer, one entry a call, and then writes each name it
/// was given on a line of its own.
const SMALL_LISTER: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $readdir (param i32 i32 i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (local $round i32) (local $cookie i64) (local $used i32) (local $at i32) (local $len i32) (local $out i32)
    (local.set $out (i32.const 8192))
    (loop $rounds
      (local.set $cookie (i64.const 0))
      (loop $calls
        (if (call $readdir (i32.const 3) (i32.const 1024) (i32.const 40) (local.get $cookie) (i32.const 16))
          (then unreachable))
        (local.set $used (i32.load (i32.const 16)))
        (local.set $at (i32.const 0))
        (block $done
          (loop $entries
            (br_if $done (i32.gt_u (i32.add (local.get $at) (i32.const 24)) (local.get $used)))
            (local.set $len (i32.load (i32.add (i32.const 1040) (local.get $at))))
            (br_if $done (i32.gt_u (i32.add (i32.add (local.get $at) (i32.const 24)) (local.get $len)) (local.get $used)))
            (memory.copy (local.get $out) (i32.add (i32.const 1048) (local.get $at)) (local.get $len))
            (i32.store8 (i32.add (local.get $out) (local.get $len)) (i32.const 10))
            (local.set $out (i32.add (i32.add (local.get $out) (local.get $len)) (i32.const 1)))
            (local.set $cookie (i64.load (i32.add (i32.const 1024) (local.get $at))))
            (local.set $at (i32.add (i32.add (local.get $at) (i32.const 24)) (local.get $len)))
            (br $entries)))
        (br_if $calls (i32.eq (local.get $used) (i32.const 40))))
      (local.set $round (i32.add (local.get $round) (i32.const 1)))
      (br_if $rounds (i32.lt_u (local.get $round) (i32.const 2))))
    (i32.store (i32.const 0) (i32.const 8192))
    (i32.store (i32.const 4) (i32.sub (local.get $out) (i32.const 8192)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 20)))))"#;

#[tokio::test]
async fn a_deterministic_job_lists_a_large_directory_a_few_entries_a_call() {
    let tree = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..300).map(|i| format!("f{i:03}")).collect();
    for name in names.iter().rev() {
        std::fs::write(tree.path().join(name), name).unwrap();
    }
    let dirs = vec![MappedDir { guest_path: "/d".into(), archive: archive::pack(tree.path(), Escape::Fail).unwrap() }];
    let (report, out) = run_with_dirs(SMALL_LISTER, &["app"], true, dirs).await;
    assert_eq!(report.outcome, Outcome::Exited(0));
    let listing: Vec<&str> = [".", ".."].into_iter().chain(names.iter().map(String::as_str)).collect();
    let expected: Vec<&str> = listing.iter().chain(listing.iter()).copied().collect();
    let seen: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().collect();
    assert_eq!(seen, expected, "every name once a listing, in order, from cookie 0 each time");
}
