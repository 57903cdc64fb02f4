//! The node's live state, shared by its session with the master and the
//! jobs it runs: its config, module cache, ledger and running jobs.

use crate::cache::ModuleCache;
use crate::config::NodeConfig;
use crate::ledger::Ledger;
use crate::outbox::{Delivered, Outbox};
use dashmap::DashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::sync::Notify;

/// A job running on this node.
pub(crate) struct RunningJob {
    /// Wakes the job to stop it.
    pub(crate) stop: Notify,
    /// The job is being stopped to go back to the master, not cancelled.
    pub(crate) handed_back: AtomicBool,
    /// It goes back because its module's master was lost mid-fetch.
    pub(crate) lost_master: AtomicBool,
    /// What it has to tell the master.
    pub(crate) outbox: Arc<Outbox>,
}

/// State shared by the node's session and its running jobs.
pub(crate) struct NodeShared {
    pub(crate) config: NodeConfig,
    /// The node's lasting identity, sent when it registers.
    pub(crate) identity: String,
    pub(crate) cache: ModuleCache,
    pub(crate) scratch_root: PathBuf,
    pub(crate) running: DashMap<String, Arc<RunningJob>>,
    /// Jobs whose messages have not all gone up (running, or ended with
    /// their end not yet sent), by id.
    pub(crate) outboxes: DashMap<String, Arc<Outbox>>,
    /// Jobs whose end went up lately.
    pub(crate) delivered: Delivered,
    pub(crate) ledger: Ledger,
    /// What `--metrics` serves.
    pub(crate) metrics: crate::metrics::NodeMetrics,
}
