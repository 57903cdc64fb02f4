//! Deciding where queued jobs go, apart from doing it: `plan` reads the
//! queue, the jobs and the nodes and returns the assignments to make, as if
//! each earlier one were already placed. It changes nothing, so a caller
//! can apply the plan, or apply only the part a store lets it claim.

use crate::jobs::Job;
use crate::model::{JobId, NodeId};
use crate::nodes::{Node, Room};
use crate::queue::JobQueue;
use crate::scheduler::{self, NodeView};
use grid_core::ModuleHash;
use std::collections::{HashMap, HashSet};

/// One queued job to send to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub job: JobId,
    pub node: NodeId,
}

/// The nodes as the scheduler sees them for `job`, each with its `room`,
/// leaving out those that refused the job.
fn views<'a>(
    nodes: &'a HashMap<NodeId, Node>,
    job: &'a Job,
    room: impl Fn(NodeId, &Node) -> (Room, bool) + 'a,
) -> impl Iterator<Item = NodeView<NodeId>> + 'a {
    nodes.iter().filter(|(id, _)| !job.refused_by.contains(id)).map(move |(id, n)| {
        let (room, placed_module) = room(*id, n);
        n.view(*id, &job.spec, &room, placed_module)
    })
}

/// Every queued job that fits somewhere, in queue order, each to its best
/// node; jobs that fit nowhere keep their place. Stops once no node has a
/// free slot.
pub fn plan(queue: &JobQueue<JobId>, jobs: &HashMap<JobId, Job>, nodes: &HashMap<NodeId, Node>) -> Vec<Assignment> {
    let mut out = Vec::new();
    if queue.is_empty() {
        return out;
    }
    let mut room: HashMap<NodeId, Room> = nodes.iter().map(|(id, n)| (*id, n.room())).collect();
    let free = |room: &HashMap<NodeId, Room>| room.values().any(|r| r.slots > 0);
    if !free(&room) {
        return out;
    }
    let mut running: HashMap<&str, usize> = HashMap::new();
    for id in nodes.values().flat_map(|n| n.running.iter()) {
        *running.entry(jobs[id].tenant()).or_default() += 1;
    }
    // Modules a node will cache because of an assignment in this plan.
    let mut placed: HashSet<(NodeId, &ModuleHash)> = HashSet::new();
    for id in queue.in_order(&running) {
        let job = &jobs[id];
        let demand = job.demand();
        let candidates: Vec<_> =
            views(nodes, job, |nid, _| (room[&nid], placed.contains(&(nid, &job.spec.module)))).collect();
        let Some(node) = scheduler::choose(&demand, &candidates) else {
            continue;
        };
        room.get_mut(&node).expect("chosen node has room").take(&demand);
        placed.insert((node, &job.spec.module));
        out.push(Assignment { job: id.clone(), node });
        if !free(&room) {
            break;
        }
    }
    out
}

/// Why a queued job waits, as of now.
pub fn waiting_reason(nodes: &HashMap<NodeId, Node>, job: &Job) -> String {
    let candidates: Vec<_> = views(nodes, job, |_, n| (n.room(), false)).collect();
    scheduler::why_waiting(&job.demand(), &candidates, job.refused_by.len())
}
