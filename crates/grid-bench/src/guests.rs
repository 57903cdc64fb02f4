//! The guests the benchmarks run, and a plain wasmtime embedding to run
//! them directly for comparison.

use std::time::{Duration, Instant};
use wasmtime::{Config, Engine, Linker, Module, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

/// Writes `hello` to stdout.
pub const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 6))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Sleeps two seconds in `poll_oneoff`.
pub const SLEEP_2S: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 2000000000))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"#;

/// [`HELLO`], but a module of its own for each `n`.
pub fn unique_hello(n: usize) -> String {
    HELLO.replace(
        "(data (i32.const 16) \"hello\\n\")",
        &format!("(data (i32.const 16) \"hello\\n\") (data (i32.const 64) \"{n}-{}\")", std::process::id()),
    )
}

/// Counts the primes below `n` by trial division; stores the count at 0.
pub fn primes(n: u64) -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (func (export "_start")
    (local $n i64) (local $d i64) (local $count i64) (local $prime i32)
    (local.set $n (i64.const 2))
    (loop $outer
      (local.set $prime (i32.const 1))
      (local.set $d (i64.const 2))
      (block $done
        (loop $inner
          (br_if $done (i64.gt_u (i64.mul (local.get $d) (local.get $d)) (local.get $n)))
          (if (i64.eqz (i64.rem_u (local.get $n) (local.get $d)))
            (then (local.set $prime (i32.const 0)) (br $done)))
          (local.set $d (i64.add (local.get $d) (i64.const 1)))
          (br $inner)))
      (local.set $count (i64.add (local.get $count) (i64.extend_i32_u (local.get $prime))))
      (local.set $n (i64.add (local.get $n) (i64.const 1)))
      (br_if $outer (i64.lt_u (local.get $n) (i64.const {n}))))
    (i64.store (i32.const 0) (local.get $count))))"#
    )
}

/// The node's engine settings, but without fuel.
pub fn engine_without_fuel() -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.max_wasm_stack(1 << 20);
    Engine::new(&config).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs `module` to its end in a fresh store, as a plain embedding would.
pub async fn run_direct(engine: &Engine, module: &Module, fuel: bool) -> anyhow::Result<Duration> {
    let mut linker: Linker<WasiP1Ctx> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |c| c).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pre = linker.instantiate_pre(module).map_err(|e| anyhow::anyhow!("{e}"))?;
    let t = Instant::now();
    let mut store = Store::new(engine, WasiCtxBuilder::new().build_p1());
    if fuel {
        store.set_fuel(u64::MAX / 2).map_err(|e| anyhow::anyhow!("{e}"))?;
        store
            .fuel_async_yield_interval(Some(grid_node::executor::FUEL_YIELD_INTERVAL))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    store.set_epoch_deadline(u64::MAX / 2);
    let instance = pre.instantiate_async(&mut store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let start = instance.get_typed_func::<(), ()>(&mut store, "_start").map_err(|e| anyhow::anyhow!("{e}"))?;
    start.call_async(&mut store, ()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(t.elapsed())
}

/// A `wasmtime` CLI to compare against: `$WASMTIME`, else one on `PATH`,
/// else the one `scripts/bench` installs under `target/bench-tools`.
pub fn wasmtime_cli() -> Option<std::path::PathBuf> {
    if let Some(w) = std::env::var_os("WASMTIME") {
        return Some(w.into());
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("wasmtime")).find(|w| w.is_file()));
    on_path.or_else(|| {
        let exe = std::env::current_exe().ok()?;
        let w = exe.parent()?.join("../bench-tools/wasmtime_cli/wasmtime");
        w.is_file().then_some(w)
    })
}
