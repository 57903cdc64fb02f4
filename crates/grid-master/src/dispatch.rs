//! Deciding where queued jobs go, apart from doing it: `plan` reads the
//! queue, the jobs and the nodes and returns the assignments to make, as if
//! each earlier one were already placed, and the jobs to park. It changes
//! nothing, so a caller can apply the plan, or apply only the part a store
//! lets it claim.
//!
//! A plan costs what changed, not the length of the queue. A job that no
//! connected node could ever take (over every node's ceilings, or its
//! slots, memory or disk in all) is parked, out of the order, and looked at
//! again only when a node comes or stops draining (`unpark_for`). And a plan
//! looks at no more than `LOOKAHEAD` jobs it cannot place now before it
//! stops, as Slurm's `bf_max_job_test` does: a job behind that many waits
//! until some of them go.
//!
//! Tenants' quotas hold too: a tenant at its most running jobs, or whose
//! fuel bucket lacks its next job's fuel limit, is skipped as a whole for
//! the rest of the plan, so however many jobs it has waiting they cost
//! nothing. A node private to a tenant is offered that tenant's jobs only.

use crate::jobs::Job;
use crate::model::{JobId, NodeId};
use crate::nodes::{Node, Room};
use crate::queue::{JobQueue, Running};
use crate::scheduler::{self, NodeView};
use crate::tenants::Tenants;
use grid_core::{Limits, ModuleHash};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// The most jobs one plan looks at and cannot place before it stops.
pub const LOOKAHEAD: usize = 1_000;

/// One queued job to send to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub job: JobId,
    pub node: NodeId,
}

/// What one dispatch is to do.
#[derive(Debug, Default)]
pub struct Plan {
    /// Jobs to send, in queue order.
    pub assignments: Vec<Assignment>,
    /// Jobs no connected node could ever take: to park.
    pub park: Vec<JobId>,
    /// Jobs looked at, placed or not: the plan's cost.
    pub examined: usize,
    /// Whether a tenant with jobs waiting was skipped because its fuel
    /// bucket lacked its next job's fuel: the bucket refills with time, so
    /// another plan is worth making later even if nothing else changes.
    pub fuel_held: bool,
}

/// The nodes that run jobs of `job`'s tenant: the public ones and those
/// private to it.
fn serving<'a>(nodes: &'a HashMap<NodeId, Node>, job: &'a Job) -> impl Iterator<Item = (&'a NodeId, &'a Node)> + 'a {
    nodes.iter().filter(|(_, n)| n.serves(job.tenant()))
}

/// The nodes that may run `job` at all: those serving its tenant, less, for
/// a verified job, those that would not be independent of its replicas
/// (the same node, or the same owner).
fn open<'a>(nodes: &'a HashMap<NodeId, Node>, job: &'a Job) -> impl Iterator<Item = (&'a NodeId, &'a Node)> + 'a {
    serving(nodes, job).filter(|(_, n)| !job.conflicts(&n.reg.name, n.reg.owner.as_deref()))
}

/// How many independent connected nodes could run a replica of `job`
/// (with nothing else running): those that serve its tenant, take jobs
/// (not draining, not quarantined), admit it and did not lose it, less
/// those of its replicas' names or owners; private nodes of one owner count
/// once.
pub fn independent(nodes: &HashMap<NodeId, Node>, job: &Job) -> usize {
    let mut owners = HashSet::new();
    nodes
        .iter()
        .filter(|(id, n)| could_take(**id, n, job))
        .filter(|(_, n)| n.reg.owner.as_deref().is_none_or(|owner| owners.insert(owner)))
        .count()
}

/// Whether `job` is verified, has no replica started, and too few
/// independent nodes are connected to make its quorum: it does not start,
/// so that no result of it waits in the master for nodes that may never
/// come.
pub fn short_of_quorum(nodes: &HashMap<NodeId, Node>, job: &Job) -> bool {
    job.verify.as_deref().is_some_and(|v| v.replicas.is_empty() && (independent(nodes, job) as u32) < v.quorum)
}

/// The nodes as the scheduler sees them for `job`, each with its `room`,
/// leaving out those that refused the job and have not sent a heartbeat
/// since, those that lost it, and those private to other tenants.
fn views<'a>(
    nodes: &'a HashMap<NodeId, Node>,
    job: &'a Job,
    room: impl Fn(NodeId, &Node) -> (Room, bool) + 'a,
) -> impl Iterator<Item = NodeView<NodeId>> + 'a {
    open(nodes, job).filter(|(id, n)| !job.refused_now(**id, n.beats)).map(move |(id, n)| {
        let (room, placed_module) = room(*id, n);
        n.view(*id, &job.spec, &room, placed_module)
    })
}

/// The nodes as they would be for `job` with nothing running on them,
/// leaving out those that lost it and those private to other tenants.
fn idle_views<'a>(nodes: &'a HashMap<NodeId, Node>, job: &'a Job) -> impl Iterator<Item = NodeView<NodeId>> + 'a {
    open(nodes, job).filter(|(id, _)| !job.avoids(**id)).map(|(id, n)| n.view(*id, &job.spec, &n.idle_room(), false))
}

/// Whether node `id` could take `job` with nothing running on it.
fn could_take(id: NodeId, node: &Node, job: &Job) -> bool {
    node.serves(job.tenant())
        && !job.conflicts(&node.reg.name, node.reg.owner.as_deref())
        && !job.avoids(id)
        && node.view(id, &job.spec, &node.idle_room(), false).misfit(&job.demand()).is_none()
}

/// Every offered job that fits somewhere, in queue order, each to its best
/// node, given how many jobs each tenant has running and what `tenants`'
/// quotas allow as of `now`; jobs that fit nowhere keep their place, and
/// those no node could ever take are to be parked. Stops once no node has
/// a free slot, or after `LOOKAHEAD` jobs that do not fit.
pub fn plan(
    queue: &JobQueue<JobId>,
    jobs: &HashMap<JobId, Job>,
    nodes: &HashMap<NodeId, Node>,
    running: &Running,
    tenants: &Tenants,
    now: Instant,
) -> Plan {
    let mut plan = Plan::default();
    if queue.is_empty() {
        return plan;
    }
    let mut room: HashMap<NodeId, Room> = nodes.iter().map(|(id, n)| (*id, n.room())).collect();
    let free = |room: &HashMap<NodeId, Room>| room.values().any(|r| r.slots > 0);
    if !free(&room) {
        return plan;
    }
    // Modules a node will cache because of an assignment in this plan.
    let mut placed: HashSet<(NodeId, &ModuleHash)> = HashSet::new();
    let mut order = queue.in_order(running);
    // Per tenant: jobs and fuel this plan starts.
    let mut started: HashMap<&str, (usize, u64)> = HashMap::new();
    // Jobs looked at and not placed on a node.
    let mut misses = 0;
    while let Some(id) = order.next() {
        if misses == LOOKAHEAD {
            break;
        }
        let job = &jobs[id];
        let tenant = job.tenant();
        let (starts, fuel) = started.get(tenant).copied().unwrap_or_default();
        if tenants.held(tenant, running.of(tenant) + starts).is_some() {
            // A tenant, not a job: skipped once, whatever it has waiting.
            order.skip_tenant(tenant);
            continue;
        }
        plan.examined += 1;
        let demand = job.demand();
        if tenants.lacks_fuel(tenant, demand.fuel, fuel, now).is_some() {
            // Its jobs go in arrival order: none overtakes the one that waits.
            order.skip_tenant(tenant);
            plan.fuel_held = true;
            continue;
        }
        if short_of_quorum(nodes, job) {
            misses += 1;
            if !nodes.iter().any(|(nid, n)| could_take(*nid, n, job)) {
                plan.park.push(id.clone());
            }
            continue;
        }
        let candidates: Vec<_> =
            views(nodes, job, |nid, _| (room[&nid], placed.contains(&(nid, &job.spec.module)))).collect();
        let Some(node) = scheduler::choose(&demand, &candidates) else {
            misses += 1;
            if !nodes.iter().any(|(nid, n)| could_take(*nid, n, job)) {
                plan.park.push(id.clone());
            }
            continue;
        };
        room.get_mut(&node).expect("chosen node has room").take(&demand);
        placed.insert((node, &job.spec.module));
        plan.assignments.push(Assignment { job: id.clone(), node });
        started.insert(tenant, (starts + 1, fuel.saturating_add(demand.fuel)));
        if !free(&room) {
            break;
        }
    }
    plan
}

/// Puts back in their places the parked jobs that node `id` could take.
/// Called when a node comes or stops draining, the only changes that can
/// let a parked job run. Returns how many came back.
pub fn unpark_for(queue: &mut JobQueue<JobId>, jobs: &HashMap<JobId, Job>, id: NodeId, node: &Node) -> usize {
    queue.unpark(|job| could_take(id, node, &jobs[job]))
}

/// Why no node of `nodes` would ever take a job with `limits`, naming every
/// limit over what the node that comes closest (the fewest limits over)
/// gives one job; `None` when some node would, or none is connected.
pub fn refusal<'a>(nodes: impl IntoIterator<Item = &'a Node>, limits: &Limits) -> Option<String> {
    let mut closest: Option<(Vec<grid_core::capacity::Over>, &str)> = None;
    let mut count = 0;
    for node in nodes {
        count += 1;
        let over = node.reg.capacity.over(limits);
        if over.is_empty() {
            return None;
        }
        let name = node.reg.name.as_str();
        if closest.as_ref().is_none_or(|(best, best_name)| (over.len(), name) < (best.len(), *best_name)) {
            closest = Some((over, name));
        }
    }
    let (over, name) = closest?;
    let why = grid_core::capacity::describe(&over)?;
    Some(if count > 1 { format!("{why}; node `{name}` comes closest") } else { why })
}

/// Why a queued job waits as of `now`, given how many jobs each tenant has
/// running and what `tenants`' quotas allow.
pub fn waiting_reason(
    nodes: &HashMap<NodeId, Node>,
    job: &Job,
    running: &Running,
    tenants: &Tenants,
    now: Instant,
) -> String {
    let demand = job.demand();
    let tenant = job.tenant();
    if let Some(held) = tenants.waiting(tenant, running.of(tenant), demand.fuel, now) {
        return held.reason(tenant);
    }
    if nodes.is_empty() {
        return scheduler::NO_NODE.into();
    }
    let served_by = serving(nodes, job).count();
    if served_by == 0 {
        return format!(
            "waiting: no connected node takes it: every connected node is private to another tenant than `{tenant}`"
        );
    }
    if let Some(v) = &job.verify {
        let independent = independent(nodes, job);
        if v.replicas.is_empty() && (independent as u32) < v.quorum {
            let can =
                if independent == 1 { "1 connected node".to_owned() } else { format!("{independent} connected nodes") };
            return format!(
                "waiting: {} replicas on distinct nodes must agree on its result, and {can} can run one; \
                 it starts when {} can",
                v.quorum, v.quorum
            );
        }
        if open(nodes, job).count() == 0 {
            let more = if v.wanted == 1 { "another replica".to_owned() } else { format!("{} more replicas", v.wanted) };
            return format!(
                "waiting: needs {more} on a distinct node ({} must agree), and every connected node that takes it \
                 has run one; it waits for another node",
                v.quorum
            );
        }
    }
    let takers = open(nodes, job).filter(|(id, _)| !job.avoids(**id)).map(|(_, n)| n);
    if let Some(why) = refusal(takers, &job.spec.limits) {
        return format!("waiting: no connected node takes it: {why}");
    }
    let idle: Vec<_> = idle_views(nodes, job).collect();
    let avoided = open(nodes, job).count() - idle.len();
    if let Some(reason) = scheduler::why_parked(&demand, &idle, avoided) {
        return reason;
    }
    let candidates: Vec<_> = views(nodes, job, |_, n| (n.room(), false)).collect();
    scheduler::why_waiting(&demand, &candidates, open(nodes, job).count() - candidates.len())
}
