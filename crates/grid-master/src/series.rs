//! Short time series the dashboard draws: the grid's and each node's
//! recent samples, taken once a second and kept in bounded rings.

use crate::state::LiveState;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Grid samples kept: ten minutes at one a second.
pub const GRID_SAMPLES: usize = 600;
/// Samples kept per node: six minutes at one a second.
pub const NODE_SAMPLES: usize = 360;
/// The most nodes with samples kept: a ring is dropped once its node has
/// not been sampled for [`NODE_SAMPLES`] seconds, and past this many no
/// ring is started for a new node.
pub const NODES_SAMPLED: usize = 1_000;

/// One sample of the whole grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridSample {
    /// When it was taken, in ms since the epoch.
    pub at_ms: u64,
    /// Jobs submitted since the master started (a counter).
    pub submitted: u64,
    /// Jobs finished since the master started (a counter).
    pub finished: u64,
    /// Jobs waiting for a node.
    pub queued: u64,
    /// Jobs running (each replica of a verified job counts).
    pub running: u64,
    /// Fuel burned since the master started (a counter).
    pub fuel: u64,
}

/// One sample of one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSample {
    /// When it was taken, in ms since the epoch.
    pub at_ms: u64,
    /// Slots in use, and declared.
    pub slots_used: u32,
    pub slots: u32,
    /// Memory reserved by its running jobs, in bytes.
    pub memory_used: u64,
    /// Fuel its jobs burned, in all the grid has recorded (a counter).
    pub fuel: u64,
}

/// The rings of samples.
#[derive(Debug, Default)]
pub struct Series {
    rings: Mutex<Rings>,
}

#[derive(Debug, Default)]
struct Rings {
    grid: VecDeque<GridSample>,
    nodes: HashMap<String, VecDeque<NodeSample>>,
}

/// Appends `sample` to `ring`, dropping the oldest past `bound`.
fn push<T>(ring: &mut VecDeque<T>, sample: T, bound: usize) {
    if ring.len() == bound {
        ring.pop_front();
    }
    ring.push_back(sample);
}

impl Series {
    /// Takes one sample of the grid and of each connected node from `live`.
    pub fn sample(&self, live: &LiveState) {
        let census = live.census(false);
        let m = live.metrics();
        let grid = GridSample {
            at_ms: crate::model::now_ms(),
            submitted: m.submitted_total(),
            finished: m.finished_total(),
            queued: census.queued,
            running: census.running,
            fuel: m.fuel_total(),
        };
        self.record(grid, census.connected);
    }

    /// Keeps `grid` and each of `nodes`, by node name; forgets the nodes
    /// sampled last before the oldest sample a ring keeps.
    pub fn record(&self, grid: GridSample, nodes: Vec<(String, NodeSample)>) {
        let mut rings = self.rings.lock().unwrap_or_else(|p| p.into_inner());
        let horizon = grid.at_ms.saturating_sub(NODE_SAMPLES as u64 * 1000);
        push(&mut rings.grid, grid, GRID_SAMPLES);
        for (name, sample) in nodes {
            let full = rings.nodes.len() >= NODES_SAMPLED;
            match rings.nodes.get_mut(&name) {
                Some(ring) => push(ring, sample, NODE_SAMPLES),
                None if full => {}
                None => {
                    rings.nodes.insert(name, VecDeque::from([sample]));
                }
            }
        }
        rings.nodes.retain(|_, ring| ring.back().is_some_and(|s| s.at_ms > horizon));
    }

    /// The grid's samples, oldest first.
    pub fn grid(&self) -> Vec<GridSample> {
        self.rings.lock().unwrap_or_else(|p| p.into_inner()).grid.iter().cloned().collect()
    }

    /// Node `name`'s samples, oldest first (empty for a node not seen lately).
    pub fn node(&self, name: &str) -> Vec<NodeSample> {
        let rings = self.rings.lock().unwrap_or_else(|p| p.into_inner());
        rings.nodes.get(name).map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(at_ms: u64) -> GridSample {
        GridSample { at_ms, submitted: at_ms, finished: 0, queued: 0, running: 0, fuel: 0 }
    }

    fn node(at_ms: u64) -> NodeSample {
        NodeSample { at_ms, slots_used: 1, slots: 2, memory_used: 0, fuel: at_ms }
    }

    #[test]
    fn rings_keep_the_newest_samples_up_to_their_bounds() {
        let series = Series::default();
        for s in 1..=(GRID_SAMPLES as u64 + 50) {
            series.record(grid(s * 1000), vec![("a".into(), node(s * 1000))]);
        }
        let kept = series.grid();
        assert_eq!(kept.len(), GRID_SAMPLES);
        assert_eq!((kept[0].at_ms, kept.last().unwrap().at_ms), (51_000, (GRID_SAMPLES as u64 + 50) * 1000));
        let a = series.node("a");
        assert_eq!(a.len(), NODE_SAMPLES);
        assert!(a.windows(2).all(|w| w[0].at_ms < w[1].at_ms), "oldest first");
        assert_eq!(series.node("b"), []);
    }

    #[test]
    fn a_node_no_longer_sampled_is_forgotten_and_new_rings_are_bounded() {
        let series = Series::default();
        series.record(grid(1000), vec![("gone".into(), node(1000))]);
        series.record(grid(2000), vec![("stays".into(), node(2000))]);
        assert_eq!(series.node("gone").len(), 1, "kept while within the window");
        let later = 1000 + NODE_SAMPLES as u64 * 1000 + 1;
        series.record(grid(later), vec![("stays".into(), node(later))]);
        assert_eq!(series.node("gone"), []);
        assert_eq!(series.node("stays").len(), 2);
        let many: Vec<_> = (0..NODES_SAMPLED + 10).map(|i| (format!("n{i}"), node(later + 1000))).collect();
        series.record(grid(later + 1000), many);
        let kept = series.rings.lock().unwrap().nodes.len();
        assert_eq!(kept, NODES_SAMPLED, "no ring past the bound");
    }
}
