//! A connected node as the master keeps it: what it declared, what its
//! running jobs hold on it, its fuel bucket, and its channel of orders.

use crate::model::{JobId, NodeId, NodeRecord, NodeRegistration, NodeSummary, ToNode};
use crate::scheduler::{Demand, NodeView};
use grid_core::{JobSpec, ModuleHash, NodeState, TokenBucket};
use std::collections::HashSet;
use std::time::Instant;
use tokio::sync::mpsc;

/// The most module hashes a node may report as cached; the rest are not
/// remembered.
pub const MAX_CACHED_PER_NODE: usize = 10_000;

/// What a node has free: slots, memory, scratch space, and fuel in its
/// bucket not reserved by running jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    pub slots: u32,
    pub memory: u64,
    pub disk: u64,
    pub fuel: u64,
}

impl Room {
    /// What is left once a job with `demand` is placed.
    pub fn take(&mut self, demand: &Demand) {
        self.slots = self.slots.saturating_sub(1);
        self.memory = self.memory.saturating_sub(demand.memory);
        self.disk = self.disk.saturating_sub(demand.disk);
        self.fuel = self.fuel.saturating_sub(demand.fuel);
    }
}

/// A connected node.
pub struct Node {
    pub reg: NodeRegistration,
    pub tx: mpsc::UnboundedSender<ToNode>,
    pub running: HashSet<JobId>,
    memory_used: u64,
    disk_used: u64,
    fuel_reserved: u64,
    /// Shutting down: takes no new jobs.
    pub draining: bool,
    /// Drained by the admin (forgotten when the master restarts): takes no
    /// new jobs either.
    pub held: bool,
    /// Quarantined for results that disagreed: takes no new jobs.
    pub quarantined: bool,
    /// The most slots it may fill while it earns trust, whatever it
    /// declared; `None` for what it declared.
    pub slot_cap: Option<u32>,
    /// Heartbeats received. A job a node refused is offered to it again
    /// once this moves on.
    pub beats: u64,
    bucket: TokenBucket,
    refilled_at: Instant,
    pub cached: HashSet<ModuleHash>,
    /// Dropped with the node: its session's readers learn that it ended
    /// without waiting for the node to read its orders.
    alive: tokio::sync::watch::Sender<()>,
}

impl Node {
    /// A node that just registered, with the channel its orders go to.
    pub fn new(reg: NodeRegistration, tx: mpsc::UnboundedSender<ToNode>) -> Self {
        let quota = reg.capacity.fuel_quota;
        let mut bucket = TokenBucket::new(quota.rate_per_hour, quota.burst);
        bucket.set_available(reg.fuel_available);
        Node {
            bucket,
            refilled_at: Instant::now(),
            cached: reg.cached.iter().cloned().collect(),
            reg,
            tx,
            running: HashSet::new(),
            memory_used: 0,
            disk_used: 0,
            fuel_reserved: 0,
            draining: false,
            held: false,
            quarantined: false,
            slot_cap: None,
            beats: 0,
            alive: tokio::sync::watch::channel(()).0,
        }
    }

    /// Resolves once this node is dropped from the live state.
    pub fn ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut alive = self.alive.subscribe();
        async move { while alive.changed().await.is_ok() {} }
    }

    /// Whether it runs jobs of `tenant`: a private node runs only its
    /// owner's, a public one everyone's.
    pub fn serves(&self, tenant: &str) -> bool {
        self.reg.owner.as_deref().is_none_or(|owner| owner == tenant)
    }

    /// Adds the fuel its quota earned since the last refill.
    pub fn refill(&mut self, now: Instant) {
        self.bucket.refill(now.saturating_duration_since(self.refilled_at));
        self.refilled_at = now;
    }

    /// Sets its bucket's level to what the node reports.
    pub fn set_fuel(&mut self, available: u64) {
        self.refill(Instant::now());
        self.bucket.set_available(available);
    }

    /// The slots it may fill: what it declared, within its cap; none while
    /// it drains or is quarantined.
    fn slots(&self) -> u32 {
        if self.draining || self.held || self.quarantined {
            return 0;
        }
        self.slot_cap.map_or(self.reg.capacity.slots, |cap| cap.min(self.reg.capacity.slots))
    }

    /// What it has free now; a draining or quarantined node has no slot.
    pub fn room(&self) -> Room {
        let slots = self.slots().saturating_sub(self.running.len() as u32);
        Room {
            slots,
            memory: self.reg.capacity.memory.saturating_sub(self.memory_used),
            disk: self.reg.capacity.disk.saturating_sub(self.disk_used),
            fuel: self.bucket.available().saturating_sub(self.fuel_reserved),
        }
    }

    /// What it would have free with no job running: every slot (none if it
    /// is draining), all its memory and disk, and fuel without bound, since
    /// the bucket refills. A job that does not fit this never runs here
    /// while the node stays as it is.
    pub fn idle_room(&self) -> Room {
        Room { slots: self.slots(), memory: self.reg.capacity.memory, disk: self.reg.capacity.disk, fuel: u64::MAX }
    }

    /// The node as the scheduler sees it for `spec`, given `room`.
    pub fn view(&self, id: NodeId, spec: &JobSpec, room: &Room, has_module: bool) -> NodeView<NodeId> {
        NodeView {
            key: id,
            admits: self.reg.capacity.per_job.admit(&spec.limits),
            free_slots: room.slots,
            free_memory: room.memory,
            free_disk: room.disk,
            spare_fuel: room.fuel,
            has_module: has_module || self.cached.contains(&spec.module),
        }
    }

    /// Holds a slot and the job's memory, disk and fuel limits for `job`.
    /// The node will cache the module once it has fetched it.
    pub fn reserve(&mut self, job: &JobId, spec: &JobSpec) {
        self.running.insert(job.clone());
        self.memory_used += spec.limits.memory;
        self.disk_used += spec.limits.disk;
        self.fuel_reserved += spec.limits.fuel;
        if !self.cached.contains(&spec.module) {
            self.cached.insert(spec.module.clone());
        }
    }

    /// Frees what `job` held, billing `burned` fuel if it ran.
    pub fn release(&mut self, job: &str, spec: &JobSpec, burned: Option<u64>) {
        if self.running.remove(job) {
            self.memory_used = self.memory_used.saturating_sub(spec.limits.memory);
            self.disk_used = self.disk_used.saturating_sub(spec.limits.disk);
            self.fuel_reserved = self.fuel_reserved.saturating_sub(spec.limits.fuel);
        }
        if let Some(burned) = burned {
            self.refill(Instant::now());
            self.bucket.charge(burned);
        }
    }

    /// Where it stands: `ready`, or `draining` once it shuts down.
    pub fn state(&self) -> NodeState {
        if self.draining || self.held { NodeState::Draining } else { NodeState::Ready }
    }

    /// As `grid-cli nodes` shows it, with what its `history` (by name) has
    /// counted, seen at `now_ms` (not trusted until a policy says so).
    pub fn summary(&self, id: NodeId, history: &NodeRecord, now_ms: u64) -> NodeSummary {
        NodeSummary {
            id,
            name: self.reg.name.clone(),
            address: self.reg.address.clone(),
            slots_total: self.reg.capacity.slots,
            slots_used: self.running.len() as u32,
            memory_total: self.reg.capacity.memory,
            memory_used: self.memory_used,
            fuel_per_hour: self.bucket.rate_per_hour(),
            fuel_available: self.bucket.available().saturating_sub(self.fuel_reserved),
            cached_modules: self.cached.len() as u32,
            jobs_run: history.jobs_run,
            fuel_burned: history.fuel_burned,
            lost_jobs: history.lost_jobs,
            state: self.state(),
            first_seen_ms: history.first_seen_ms,
            last_seen_ms: now_ms,
            standing: history.standing,
            trusted: false,
        }
    }
}
