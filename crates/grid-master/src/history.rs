//! `NodeHistory`: what the master remembers of each node by name (jobs
//! run, fuel burned, lost jobs, first and last seen), kept in memory for
//! the nodes of this master's life and written to the record in batches.

use crate::model::{NodeRecord, Standing, now_ms};
use grid_core::NodeState;
use std::collections::{HashMap, HashSet};

/// The most nodes a listing with `--all` shows, and the most histories
/// of nodes not connected that memory keeps (older ones are in the record).
pub const NODES_LISTED: usize = 1_000;

/// Per-node history by name, with the names changed since it was last
/// written to the record.
#[derive(Default)]
pub struct NodeHistory {
    nodes: HashMap<String, NodeRecord>,
    dirty: HashSet<String>,
}

impl NodeHistory {
    /// `recorded` is what the record holds of a node about to register:
    /// memory takes it unless it knows the node already (memory is newer).
    pub fn recall(&mut self, recorded: NodeRecord) {
        self.nodes.entry(recorded.name.clone()).or_insert(recorded);
    }

    /// A node named `name` with `identity` connected: its history goes on,
    /// or starts now.
    pub fn connected(&mut self, name: &str, identity: &str) {
        let now = now_ms();
        let record = self.nodes.entry(name.to_owned()).or_insert_with(|| NodeRecord::new(name, identity, now));
        record.identity = identity.to_owned();
        record.state = NodeState::Ready;
        record.last_seen_ms = now;
        self.dirty.insert(name.to_owned());
    }

    /// A connected node now stands at `state` (ready or draining).
    pub fn set_state(&mut self, name: &str, state: NodeState) {
        if let Some(r) = self.nodes.get_mut(name)
            && r.state != state
        {
            r.state = state;
            self.dirty.insert(name.to_owned());
        }
    }

    /// A connected node was seen now (as the master shuts down, say).
    pub fn seen(&mut self, name: &str) {
        if let Some(r) = self.nodes.get_mut(name) {
            r.last_seen_ms = now_ms();
            self.dirty.insert(name.to_owned());
        }
    }

    /// A node ended a job it ran, burning `fuel`.
    pub fn ran(&mut self, name: &str, fuel: u64) {
        if let Some(r) = self.nodes.get_mut(name) {
            r.jobs_run = r.jobs_run.saturating_add(1);
            r.fuel_burned = r.fuel_burned.saturating_add(fuel);
            self.dirty.insert(name.to_owned());
        }
    }

    /// A job lost on node `name` ran to its end elsewhere, or was taken
    /// back from it past its deadline.
    pub fn lost_one(&mut self, name: &str) {
        if let Some(r) = self.nodes.get_mut(name) {
            r.lost_jobs = r.lost_jobs.saturating_add(1);
            self.dirty.insert(name.to_owned());
        }
    }

    /// A node is no longer connected: it is `state` (gone or lost) since
    /// now. Past [`NODES_LISTED`] histories of nodes not connected, the
    /// oldest is forgotten (the record keeps it); returns it if it was not
    /// written yet.
    pub fn disconnected(&mut self, name: &str, state: NodeState) -> Option<NodeRecord> {
        if let Some(r) = self.nodes.get_mut(name) {
            r.state = state;
            r.last_seen_ms = now_ms();
            self.dirty.insert(name.to_owned());
        }
        let gone = self.nodes.values().filter(|r| !r.state.is_connected());
        if gone.clone().count() <= NODES_LISTED {
            return None;
        }
        let oldest = gone.min_by_key(|r| r.last_seen_ms)?.name.clone();
        let forgotten = self.nodes.remove(&oldest)?;
        self.dirty.remove(&oldest).then_some(forgotten)
    }

    /// Node `name`'s standing; a node not known stands at zero.
    pub fn standing(&self, name: &str) -> Standing {
        self.nodes.get(name).map(|r| r.standing).unwrap_or_default()
    }

    /// Changes node `name`'s standing with `f`, if the node is known.
    pub fn update_standing<T: Default>(&mut self, name: &str, f: impl FnOnce(&mut Standing) -> T) -> T {
        match self.nodes.get_mut(name) {
            Some(r) => {
                self.dirty.insert(name.to_owned());
                f(&mut r.standing)
            }
            None => T::default(),
        }
    }

    /// Node `name`'s history.
    pub fn get(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.get(name)
    }

    /// The histories changed since the last call, to be written.
    pub fn take_changed(&mut self) -> Vec<NodeRecord> {
        self.dirty.drain().filter_map(|name| self.nodes.get(&name).cloned()).collect()
    }

    /// Every history memory holds, connected nodes included.
    pub fn all(&self) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_on_across_sessions_and_changes_are_written_once() {
        let mut h = NodeHistory::default();
        let mut recorded = NodeRecord::new("a", "id-a", 1);
        recorded.jobs_run = 5;
        h.recall(recorded);
        h.connected("a", "id-a");
        h.ran("a", 100);
        h.lost_one("a");
        let changed = h.take_changed();
        assert_eq!(changed.len(), 1);
        assert_eq!((changed[0].jobs_run, changed[0].fuel_burned, changed[0].lost_jobs), (6, 100, 1));
        assert_eq!(changed[0].first_seen_ms, 1);
        assert!(h.take_changed().is_empty(), "written twice");
        // Memory knows better than a stale record.
        h.recall(NodeRecord::new("a", "id-a", 1));
        assert_eq!(h.get("a").unwrap().jobs_run, 6);
        h.disconnected("a", NodeState::Lost);
        assert_eq!(h.take_changed()[0].state, NodeState::Lost);
    }

    #[test]
    fn memory_keeps_a_bounded_number_of_nodes_not_connected() {
        let mut h = NodeHistory::default();
        for i in 0..NODES_LISTED + 10 {
            let name = format!("n{i}");
            h.connected(&name, "x");
            h.take_changed();
            h.disconnected(&name, NodeState::Gone);
        }
        assert_eq!(h.all().count(), NODES_LISTED);
    }
}
