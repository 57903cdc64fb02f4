//! Short time series the dashboard draws: the grid's and each node's
//! recent samples, taken once a second and kept in bounded rings.

use serde::Serialize;

/// One sample of the whole grid.
#[derive(Debug, Clone, Serialize)]
pub struct GridSample {
    /// When it was taken, in ms since the epoch.
    pub at_ms: u64,
    /// Jobs submitted since the master started (a counter).
    pub submitted: u64,
    /// Jobs finished since the master started (a counter).
    pub finished: u64,
    /// Jobs waiting for a node.
    pub queued: u64,
    /// Jobs running.
    pub running: u64,
    /// Fuel burned since the master started (a counter).
    pub fuel: u64,
}

/// One sample of one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSample {
    /// When it was taken, in ms since the epoch.
    pub at_ms: u64,
    /// Slots in use, and declared.
    pub slots_used: u32,
    pub slots: u32,
    /// Memory in use by its jobs, in bytes (as it reports).
    pub memory_used: u64,
    /// Fuel its jobs burned since the master started (a counter).
    pub fuel: u64,
}

/// The rings of samples.
#[derive(Debug, Default)]
pub struct Series {}

impl Series {
    /// The grid's samples, oldest first.
    pub fn grid(&self) -> Vec<GridSample> {
        Vec::new()
    }

    /// Node `name`'s samples, oldest first (empty for a node not seen lately).
    pub fn node(&self, _name: &str) -> Vec<NodeSample> {
        Vec::new()
    }
}
