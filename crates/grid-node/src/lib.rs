//! `grid-node`: a volunteer's machine on the grid. It registers with a
//! master, fetches modules by hash, caches them compiled, and runs each job
//! in wasmtime (a core module with WASI preview 1, a component with WASI
//! preview 2) under fuel, memory and time limits.
//!
//! The binary is a thin wrapper over [`Node::run`], so tests and the
//! embedded grid of `grid-cli` run this very code in-process.

pub mod cache;
pub mod config;
pub mod ctx;
pub mod disk;
pub mod engine;
pub mod error;
pub mod executor;
pub mod identity;
pub mod ledger;
pub mod limits;
pub mod linker;
pub mod lru;
pub mod output;
mod rpc;
mod state;

pub use config::{NodeConfig, default_name};

use dashmap::DashMap;
use state::NodeShared;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Removes scratch directories left by node processes that no longer run.
fn clear_stale_scratch(jobs_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(jobs_dir) else { return };
    for entry in entries.flatten() {
        let alive = entry
            .file_name()
            .to_str()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| pid != std::process::id() && std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A node: its engine, its cache, and its session with the master.
pub struct Node {
    shared: Arc<NodeShared>,
    _ticker: engine::EpochTicker,
}

impl Node {
    /// Sets up the engine and opens the cache directory.
    pub fn new(config: NodeConfig) -> anyhow::Result<Self> {
        let engine = engine::new_engine(&config.capacity)?;
        let cache = cache::ModuleCache::open(&engine, &config.cache_dir.join("modules"), config.cache_size)?;
        let jobs_dir = config.cache_dir.join("jobs");
        clear_stale_scratch(&jobs_dir);
        // Each node process has its own scratch root, so several nodes (or
        // embedded grids) can share one cache dir.
        let scratch_root = jobs_dir.join(std::process::id().to_string());
        std::fs::create_dir_all(&scratch_root)
            .map_err(|e| anyhow::anyhow!("failed to create scratch dir `{}`: {e}", scratch_root.display()))?;
        let identity = identity::load_or_create(&config.cache_dir)?;
        let shared = NodeShared {
            identity,
            ledger: ledger::Ledger::new(config.capacity.clone()),
            config,
            cache,
            scratch_root,
            running: DashMap::new(),
        };
        Ok(Self { _ticker: engine::EpochTicker::start(&engine), shared: Arc::new(shared) })
    }

    /// Serves the master until `shutdown` resolves, reconnecting with
    /// backoff whenever the master goes away. On shutdown the node takes no
    /// new jobs, lets running ones finish for up to the grace period, hands
    /// the rest back to the master, and returns. Fails if the master refuses
    /// its first registration because another connected node has its name.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_tx, stop) = watch::channel(false);
        let summary = tokio::spawn(summarize(self.shared.clone()));
        let serve = self.reconnect_loop(stop);
        tokio::pin!(serve);
        let served = tokio::select! {
            served = &mut serve => served,
            _ = shutdown => {
                tracing::info!(grace = ?self.shared.config.grace, "shutting down: no new jobs");
                let _ = stop_tx.send(true);
                serve.await
            }
        };
        summary.abort();
        served?;
        tracing::info!("node stopped");
        Ok(())
    }

    async fn reconnect_loop(&self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        const MIN: Duration = Duration::from_millis(100);
        const MAX: Duration = Duration::from_secs(5);
        let mut backoff = MIN;
        // Whether any session of this process has registered: a name taken
        // at the first registration is the volunteer's to fix, and ends the
        // node; later, it is a stale session of ours the master drops soon.
        let mut ever_registered = false;
        loop {
            let mut registered = false;
            let outcome = match rpc::connect(&self.shared.config.master).await {
                Ok(client) => rpc::session(&self.shared, client, || registered = true, stop.clone()).await,
                Err(e) => Err(rpc::Ended::Lost(e)),
            };
            if registered {
                backoff = MIN;
                ever_registered = true;
            }
            match &outcome {
                Err(rpc::Ended::NameTaken(why)) if !ever_registered => return Err(anyhow::anyhow!("{why}")),
                Err(rpc::Ended::NameTaken(why)) => tracing::warn!(retry_in = ?backoff, "refused: {why}"),
                Err(rpc::Ended::Lost(why)) => tracing::warn!(retry_in = ?backoff, "{why}"),
                Ok(()) => {}
            }
            // Jobs of the lost session were cancelled; let them wind down so
            // the next session starts with every slot free.
            while !self.shared.running.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if *stop.borrow() {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return Ok(()),
            }
            backoff = (backoff * 2).min(MAX);
        }
    }
}

/// Logs what the node has given, once a period.
async fn summarize(node: Arc<NodeShared>) {
    let mut tick = tokio::time::interval(node.config.summary_every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = node.ledger.snapshot();
        let c = node.ledger.capacity();
        tracing::info!(
            "summary: {} jobs run, {} fuel burned, {}/{} slots busy, {} fuel left of {}/h",
            s.jobs_run,
            grid_core::format_fuel(s.fuel_burned),
            s.running,
            c.slots,
            grid_core::format_fuel(s.fuel_available),
            grid_core::format_fuel(c.fuel_quota.rate_per_hour)
        );
    }
}
