//! `grid-node`: a volunteer's machine on the grid. It registers with a
//! master, fetches modules by hash, caches them compiled, and runs each job
//! in wasmtime with WASI preview 1 under fuel, memory and time limits.
//!
//! The binary is a thin wrapper over [`Node::run`], so tests and the
//! embedded grid of `grid-cli` run this very code in-process.

pub mod disk;
pub mod engine;
pub mod error;
pub mod executor;
pub mod files;
pub mod limits;
pub mod output;
mod rpc;

use dashmap::DashMap;
use grid_core::{FuelQuota, JobSpec};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// What a volunteer gives, and where the node keeps its files.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The master's URL, e.g. `http://127.0.0.1:7070`.
    pub master: String,
    /// The node's name as the master lists it.
    pub name: String,
    /// Jobs run at once.
    pub slots: u32,
    /// Linear memory for all running jobs together.
    pub memory: u64,
    /// The fuel quota.
    pub fuel_quota: FuelQuota,
    /// Compiled modules and job scratch space.
    pub cache_dir: PathBuf,
}

impl NodeConfig {
    /// Defaults: one slot per core, 2 GiB of memory, `1T/h` of fuel.
    pub fn new(master: impl Into<String>, cache_dir: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        Self {
            master: master.into(),
            name: default_name(),
            slots: cores,
            memory: 2 << 30,
            fuel_quota: FuelQuota { rate_per_hour: 1_000_000_000_000, burst: 1_000_000_000_000 },
            cache_dir: cache_dir.into(),
        }
    }
}

/// `HOSTNAME-PID`: distinct for every node process on one machine.
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let host = if host.is_empty() { "node".to_owned() } else { host };
    format!("{host}-{}", std::process::id())
}

/// State shared by the node's session and its running jobs.
pub(crate) struct NodeShared {
    config: NodeConfig,
    cache: engine::ModuleCache,
    scratch_root: PathBuf,
    /// Running jobs and the handle that cancels each.
    running: DashMap<String, Arc<Notify>>,
    memory_reserved: AtomicU64,
    jobs_run: AtomicU64,
    fuel_burned: AtomicU64,
    reserve_lock: std::sync::Mutex<()>,
}

impl NodeShared {
    /// Claims a slot and the job's memory, or says why not.
    fn reserve(&self, spec: &JobSpec) -> Result<(), String> {
        let _guard = self.reserve_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.running.len() as u32 >= self.config.slots {
            return Err(format!("all {} slots busy", self.config.slots));
        }
        let reserved = self.memory_reserved.load(Ordering::Relaxed);
        if reserved + spec.limits.memory > self.config.memory {
            return Err(format!(
                "job needs {} bytes of memory, {} free",
                spec.limits.memory,
                self.config.memory - reserved
            ));
        }
        self.memory_reserved.fetch_add(spec.limits.memory, Ordering::Relaxed);
        Ok(())
    }

    fn release(&self, spec: &JobSpec) {
        self.memory_reserved.fetch_sub(spec.limits.memory, Ordering::Relaxed);
    }
}

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
        let engine = engine::new_engine()?;
        let cache = engine::ModuleCache::open(&engine, &config.cache_dir.join("modules"))?;
        let jobs_dir = config.cache_dir.join("jobs");
        clear_stale_scratch(&jobs_dir);
        // Each node process has its own scratch root, so several nodes (or
        // embedded grids) can share one cache dir.
        let scratch_root = jobs_dir.join(std::process::id().to_string());
        std::fs::create_dir_all(&scratch_root)
            .map_err(|e| anyhow::anyhow!("failed to create scratch dir `{}`: {e}", scratch_root.display()))?;
        let shared = NodeShared {
            config,
            cache,
            scratch_root,
            running: DashMap::new(),
            memory_reserved: AtomicU64::new(0),
            jobs_run: AtomicU64::new(0),
            fuel_burned: AtomicU64::new(0),
            reserve_lock: std::sync::Mutex::new(()),
        };
        Ok(Self { _ticker: engine::EpochTicker::start(&engine), shared: Arc::new(shared) })
    }

    /// Serves the master until `shutdown` resolves, reconnecting with
    /// backoff whenever the master goes away.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::select! {
            _ = self.reconnect_loop() => Ok(()),
            _ = shutdown => {
                tracing::info!("node shutting down");
                Ok(())
            }
        }
    }

    async fn reconnect_loop(&self) {
        const MIN: Duration = Duration::from_millis(100);
        const MAX: Duration = Duration::from_secs(5);
        let mut backoff = MIN;
        loop {
            let mut registered = false;
            let outcome = match rpc::connect(&self.shared.config.master).await {
                Ok(client) => rpc::session(&self.shared, client, || registered = true).await,
                Err(e) => Err(e),
            };
            if registered {
                backoff = MIN;
            }
            if let Err(why) = outcome {
                tracing::warn!(retry_in = ?backoff, "{why}");
            }
            // Jobs of the lost session were cancelled; let them wind down so
            // the next session starts with every slot free.
            while !self.shared.running.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX);
        }
    }
}
