//! `NodeConfig`: what a volunteer gives, and where the node keeps its files.

use crate::compile::CompileLimits;
use grid_core::connect::Trust;
use grid_core::{Capacity, Ceilings, FuelQuota};
use std::path::PathBuf;
use std::time::Duration;

/// What a volunteer gives, and where the node keeps its files.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The master's URL, e.g. `https://127.0.0.1:7070`; or the URLs of
    /// several masters of one grid, separated by commas, of which the node
    /// serves whichever leads (see [`grid_core::Masters`]).
    pub master: String,
    /// Whom the node trusts to be the master (`--ca`); a join token's pin
    /// adds to it when there is no CA.
    pub trust: Trust,
    /// A join token (`--join`), traded for a node credential when the node
    /// has none yet.
    pub join: Option<String>,
    /// A node credential given directly (the embedded grid's); without it,
    /// the one saved in the cache dir, or one got with `join`.
    pub token: Option<String>,
    /// The node's name as the master lists it.
    pub name: String,
    /// What the node gives, in all and to any one job.
    pub capacity: Capacity,
    /// Compiled modules and job scratch space.
    pub cache_dir: PathBuf,
    /// The most the compiled-module cache holds on disk.
    pub cache_size: u64,
    /// How long and how much memory compiling one module may take.
    pub compile: CompileLimits,
    /// How long running jobs may go on after a shutdown signal before they
    /// are handed back to the master.
    pub grace: Duration,
    /// How often the node logs a one-line summary of what it has given.
    pub summary_every: Duration,
}

impl NodeConfig {
    /// Defaults: one slot per core, 2 GiB of memory, 4 GiB of scratch space,
    /// `1T/h` of fuel; per job at most 100G fuel, 1 GiB memory, an hour and
    /// 256 MiB of scratch space.
    pub fn new(master: impl Into<String>, cache_dir: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        Self {
            master: master.into(),
            trust: Trust::default(),
            join: None,
            token: None,
            name: default_name(),
            capacity: Capacity {
                slots: cores,
                memory: 2 << 30,
                disk: 4 << 30,
                fuel_quota: FuelQuota { rate_per_hour: 1_000_000_000_000, burst: 1_000_000_000_000 },
                per_job: Ceilings {
                    fuel: 100_000_000_000,
                    memory: 1 << 30,
                    timeout: Duration::from_secs(3600),
                    disk: 256 << 20,
                },
            },
            cache_dir: cache_dir.into(),
            cache_size: 1 << 30,
            compile: CompileLimits::default(),
            grace: Duration::from_secs(30),
            summary_every: Duration::from_secs(60),
        }
    }
}

/// `HOSTNAME-PID`: distinct for every node process on one machine.
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let host = if host.is_empty() { "node".to_owned() } else { host };
    format!("{host}-{}", std::process::id())
}
