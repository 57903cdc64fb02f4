//! Deterministic jobs through the executor: the same spec sees the same
//! clocks and random bytes run after run, another spec other bytes, and a
//! plain job the host's clock.

use crate::cache::ModuleCache;
use crate::config::NodeConfig;
use crate::engine::new_engine;
use crate::executor::{self, Run};
use grid_core::{JobSpec, Limits, ModuleHash, Outcome};
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

/// What the observer saw: wall clock (ns since the epoch), monotonic clock,
/// random bytes; and the fuel it burned.
async fn observe(args: &[&str], deterministic: bool) -> (u64, u64, Vec<u8>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut capacity = NodeConfig::new("http://unused", dir.path()).capacity;
    capacity.slots = 1;
    capacity.per_job.memory = 64 << 20;
    let engine = new_engine(&capacity).unwrap();
    let cache = ModuleCache::open(&engine, dir.path(), 1 << 30).unwrap();
    let bytes = wat::parse_str(OBSERVER).unwrap();
    let hash = ModuleHash::of(&bytes);
    let pre = cache.get(&hash, || async move { Ok(bytes) }).await.unwrap();
    let spec = spec(hash, args, deterministic);
    let (tx, mut rx) = mpsc::channel(16);
    let report = executor::run(Run {
        spec: &spec,
        pre,
        output: tx,
        cancelled: Box::pin(std::future::pending()),
        scratch: None,
        node: "test",
        received: Instant::now(),
    })
    .await;
    assert_eq!(report.outcome, Outcome::Exited(0), "{report:?}");
    let mut out = Vec::new();
    while let Some(chunk) = rx.recv().await {
        out.extend_from_slice(&chunk.data);
    }
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
