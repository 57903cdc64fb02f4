//! The master's live state: jobs, the queue, connected nodes, and the
//! dispatch loop that joins them. Everything here is plain Rust; the `rpc`
//! module turns it into gRPC.

use crate::db::{Db, OUTPUT_KEPT, StoredJob};
use crate::error::{MasterError, Result};
use crate::queue::JobQueue;
use crate::scheduler::{self, Demand, NodeView};
use grid_core::{Capacity, TokenBucket};
use grid_core::{JobReport, JobSpec, ModuleHash, Outcome};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

/// A job's id: 16 hex digits, unique across master restarts.
pub type JobId = String;
/// A connected node's id, fresh for every session.
pub type NodeId = u64;

/// Which output stream a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
}

/// One thing that happened to a job, in the order watchers see it.
#[derive(Debug, Clone)]
pub enum JobEvent {
    /// The job went to this node.
    Assigned(String),
    /// The guest wrote output.
    Output(Stream, Vec<u8>),
    /// The node running the job was lost; the job runs again, and this is
    /// the number of the attempt to come. Output before it is void.
    Retry(u32),
    /// The job ended.
    Finished(Arc<JobReport>),
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a node.
    Queued,
    /// Sent to a node.
    Running(NodeId),
    /// Ended.
    Finished,
}

/// What the master tells a node.
#[derive(Debug, Clone)]
pub enum ToNode {
    /// Run this job.
    Assign(JobId, Arc<JobSpec>),
    /// Stop this job.
    Cancel(JobId),
}

/// What a node declares when it registers.
#[derive(Debug, Clone)]
pub struct NodeRegistration {
    /// The volunteer's name for the node.
    pub name: String,
    /// Where the node connected from.
    pub address: String,
    /// What the node gives.
    pub capacity: Capacity,
    /// The node's fuel bucket's level now.
    pub fuel_available: u64,
    /// Modules the node has cached.
    pub cached: Vec<ModuleHash>,
}

/// What a node reports with each heartbeat.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// Modules newly cached.
    pub cached_added: Vec<ModuleHash>,
    /// Modules evicted from the cache.
    pub cached_removed: Vec<ModuleHash>,
    /// The fuel bucket's level.
    pub fuel_available: u64,
    /// Shutting down.
    pub draining: bool,
}

/// A node as `grid-cli nodes` shows it.
#[derive(Debug, Clone)]
pub struct NodeSummary {
    pub id: NodeId,
    pub name: String,
    pub address: String,
    pub slots_total: u32,
    pub slots_used: u32,
    pub memory_total: u64,
    pub memory_used: u64,
    pub fuel_per_hour: u64,
    pub fuel_available: u64,
    pub cached_modules: u32,
    pub jobs_run: u64,
    pub fuel_burned: u64,
    /// Jobs lost on this node (by name) that ran to their end elsewhere.
    pub lost_jobs: u64,
}

struct Job {
    spec: Arc<JobSpec>,
    state: JobState,
    key: Option<String>,
    tenant: String,
    priority: i32,
    submitted_ms: u64,
    /// Attempts started so far.
    attempts: u32,
    /// The node of the current or last attempt.
    node_name: String,
    /// Output recorded in the database for this attempt: chunks and bytes.
    recorded: (u64, usize),
    /// Nodes that refused this job since their last heartbeat.
    refused_by: HashSet<NodeId>,
    /// Names of the nodes lost while running this job.
    lost_on: Vec<String>,
    cancel_requested: bool,
    events: Vec<JobEvent>,
    /// Bumped with every event, so watchers wake.
    changed: watch::Sender<usize>,
}

struct Node {
    reg: NodeRegistration,
    tx: mpsc::UnboundedSender<ToNode>,
    running: HashSet<JobId>,
    memory_used: u64,
    disk_used: u64,
    fuel_reserved: u64,
    /// Shutting down: takes no new jobs.
    draining: bool,
    bucket: TokenBucket,
    refilled_at: Instant,
    cached: HashSet<ModuleHash>,
    jobs_run: u64,
    fuel_burned: u64,
}

impl Node {
    fn refill(&mut self, now: Instant) {
        self.bucket.refill(now.saturating_duration_since(self.refilled_at));
        self.refilled_at = now;
    }

    fn free_slots(&self) -> u32 {
        if self.draining { 0 } else { self.reg.capacity.slots.saturating_sub(self.running.len() as u32) }
    }

    fn view(&self, id: NodeId, spec: &JobSpec) -> NodeView<NodeId> {
        let module = &spec.module;
        NodeView {
            key: id,
            admits: self.reg.capacity.per_job.admit(&spec.limits),
            free_slots: self.free_slots(),
            free_memory: self.reg.capacity.memory.saturating_sub(self.memory_used),
            free_disk: self.reg.capacity.disk.saturating_sub(self.disk_used),
            spare_fuel: self.bucket.available().saturating_sub(self.fuel_reserved),
            has_module: self.cached.contains(module),
        }
    }
}

/// Finished jobs kept in memory; older ones are served from the record.
pub const FINISHED_KEPT: usize = 2_000;

#[derive(Default)]
struct Inner {
    jobs: HashMap<JobId, Job>,
    keys: HashMap<String, JobId>,
    /// Per node name: jobs lost on that node that then ran to their end on
    /// another. A node that keeps losing jobs shows here.
    lost_jobs: HashMap<String, u64>,
    queue: JobQueue<JobId>,
    finished: VecDeque<JobId>,
    nodes: HashMap<NodeId, Node>,
    next_node: NodeId,
}

/// The master's state, shared by every connection.
pub struct Grid {
    inner: Mutex<Inner>,
    id_counter: AtomicU64,
    id_prefix: u64,
    db: Option<Arc<Db>>,
    max_attempts: u32,
}

/// Who submitted a job and how it asked to be treated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Submission {
    /// The idempotency key, if any.
    pub key: Option<String>,
    /// Whose job it is, for fair sharing.
    pub tenant: String,
    /// Higher runs first.
    pub priority: i32,
}

/// A job as `grid-cli status` shows it.
#[derive(Debug, Clone)]
pub struct JobSummary {
    pub id: JobId,
    pub state: String,
    pub tenant: String,
    pub priority: i32,
    /// Why a queued job waits.
    pub waiting: Option<String>,
    pub node: String,
    pub attempts: u32,
    pub submitted_ms: u64,
    pub module: ModuleHash,
    pub args: Vec<String>,
    pub result: Option<JobReport>,
}

impl JobSummary {
    /// A summary of a job from the database.
    pub fn from_stored(j: StoredJob) -> Self {
        JobSummary {
            id: j.id,
            state: j.state,
            tenant: j.tenant,
            priority: j.priority,
            waiting: None,
            node: j.node,
            attempts: j.attempts,
            submitted_ms: j.submitted_ms,
            module: j.spec.module.clone(),
            args: j.spec.args.clone(),
            result: j.result,
        }
    }
}

/// A watcher's handle on a job's events.
pub struct JobWatch {
    grid: Arc<Grid>,
    id: JobId,
    seen: usize,
    changed: watch::Receiver<usize>,
}

impl Default for Grid {
    fn default() -> Self {
        Self::new(None, 3)
    }
}

impl Grid {
    /// A grid recording to `db` (if any), running a job at most
    /// `max_attempts` times when nodes are lost under it.
    pub fn new(db: Option<Arc<Db>>, max_attempts: u32) -> Self {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Self {
            inner: Mutex::default(),
            id_counter: AtomicU64::new(0),
            id_prefix: millis,
            db,
            max_attempts: max_attempts.max(1),
        }
    }

    /// Takes back the jobs the database holds unfinished: queued ones wait
    /// again, and ones that were running start another attempt (or end, if
    /// that was their last).
    pub fn recover(&self, jobs: Vec<StoredJob>) -> usize {
        let mut inner = self.lock();
        let n = jobs.len();
        for stored in jobs {
            let id = stored.id.clone();
            let (changed, _) = watch::channel(0);
            let job = Job {
                spec: Arc::new(stored.spec),
                state: JobState::Queued,
                key: stored.key.clone(),
                tenant: stored.tenant.clone(),
                priority: stored.priority,
                submitted_ms: stored.submitted_ms,
                attempts: stored.attempts,
                node_name: stored.node,
                recorded: (0, 0),
                refused_by: HashSet::new(),
                lost_on: Vec::new(),
                cancel_requested: false,
                events: Vec::new(),
                changed,
            };
            if let Some(key) = stored.key {
                inner.keys.insert(key, id.clone());
            }
            let out_of_attempts = stored.state == "running" && job.attempts >= self.max_attempts;
            let limits = job.spec.limits;
            inner.jobs.insert(id.clone(), job);
            if out_of_attempts {
                let why = "the master restarted during its last attempt".to_owned();
                self.finish(&mut inner, &id, JobReport::before_start(Outcome::NodeError(why), "", &limits));
            } else {
                if stored.state == "running" {
                    self.record(|db| db.requeued(&id, stored.attempts));
                    let job = inner.jobs.get_mut(&id).expect("just inserted");
                    push_event(job, JobEvent::Retry(job.attempts + 1));
                }
                let job = &inner.jobs[&id];
                let (priority, tenant) = (job.priority, job.tenant.clone());
                inner.queue.push_back(id, priority, &tenant);
            }
        }
        self.dispatch(&mut inner);
        n
    }

    fn record(&self, f: impl FnOnce(&Db)) {
        if let Some(db) = &self.db {
            f(db);
        }
    }

    /// The job already submitted with idempotency key `key`, if any.
    pub fn job_with_key(&self, key: &str) -> Option<JobId> {
        self.lock().keys.get(key).cloned()
    }

    /// Refuses a job that no connected node would ever take (with no node
    /// connected, every job may wait).
    pub fn admissible(&self, spec: &JobSpec) -> Result<()> {
        let inner = self.lock();
        let refusals: Vec<String> =
            inner.nodes.values().filter_map(|n| n.reg.capacity.per_job.refuse(&spec.limits)).collect();
        if !inner.nodes.is_empty() && refusals.len() == inner.nodes.len() {
            return Err(MasterError::NoNodeTakes(refusals[0].clone()));
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh job id.
    pub fn next_id(&self) -> JobId {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        format!("{:011x}{:05x}", self.id_prefix & 0xfff_ffff_ffff, n & 0xf_ffff)
    }

    /// Queues a job already recorded (or, with no database, just made) as
    /// `id`.
    pub fn enqueue(&self, id: JobId, spec: JobSpec, meta: Submission) {
        let Submission { key, tenant, priority } = meta;
        let mut inner = self.lock();
        let (changed, _) = watch::channel(0);
        let job = Job {
            spec: Arc::new(spec),
            state: JobState::Queued,
            key: key.clone(),
            tenant,
            priority,
            submitted_ms: crate::db::now_ms(),
            attempts: 0,
            node_name: String::new(),
            recorded: (0, 0),
            refused_by: HashSet::new(),
            lost_on: Vec::new(),
            cancel_requested: false,
            events: Vec::new(),
            changed,
        };
        if let Some(key) = key {
            inner.keys.insert(key, id.clone());
        }
        inner.queue.push_back(id.clone(), job.priority, &job.tenant);
        inner.jobs.insert(id, job);
        self.dispatch(&mut inner);
    }

    /// Queues a job and returns its id, refusing one that no connected node
    /// would take (no database: for tests and embedding).
    pub fn submit(&self, spec: JobSpec) -> Result<JobId> {
        self.admissible(&spec)?;
        let id = self.next_id();
        self.enqueue(id.clone(), spec, Submission::default());
        Ok(id)
    }

    /// A job in memory, as `grid-cli status` shows it.
    pub fn summary(&self, id: &str) -> Option<JobSummary> {
        let inner = self.lock();
        let job = inner.jobs.get(id)?;
        Some(summarize(&inner, id, job))
    }

    /// The jobs in memory, newest first.
    pub fn summaries(&self) -> Vec<JobSummary> {
        let inner = self.lock();
        let mut all: Vec<_> = inner.jobs.iter().map(|(id, j)| summarize(&inner, id, j)).collect();
        all.sort_by(|a, b| b.submitted_ms.cmp(&a.submitted_ms).then(b.id.cmp(&a.id)));
        all
    }

    /// Follows a job's events from the first.
    pub fn watch(self: &Arc<Self>, id: &str) -> Result<JobWatch> {
        let inner = self.lock();
        let job = inner.jobs.get(id).ok_or_else(|| MasterError::JobNotFound(id.to_owned()))?;
        Ok(JobWatch { grid: self.clone(), id: id.to_owned(), seen: 0, changed: job.changed.subscribe() })
    }

    /// Cancels a job that has not finished. Returns whether it was still
    /// running or queued.
    pub fn cancel(&self, id: &str) -> Result<bool> {
        let mut inner = self.lock();
        let job = inner.jobs.get(id).ok_or_else(|| MasterError::JobNotFound(id.to_owned()))?;
        let limits = job.spec.limits;
        match job.state.clone() {
            JobState::Finished => Ok(false),
            JobState::Queued => {
                inner.queue.remove(id);
                self.finish(&mut inner, id, JobReport::before_start(Outcome::Cancelled, "", &limits));
                Ok(true)
            }
            JobState::Running(node) => {
                if let Some(job) = inner.jobs.get_mut(id) {
                    job.cancel_requested = true;
                }
                if let Some(n) = inner.nodes.get(&node) {
                    let _ = n.tx.send(ToNode::Cancel(id.to_owned()));
                }
                Ok(true)
            }
        }
    }

    /// A node connected. Returns its id and the receiver of its orders.
    pub fn register_node(&self, reg: NodeRegistration) -> (NodeId, mpsc::UnboundedReceiver<ToNode>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        inner.next_node += 1;
        let id = inner.next_node;
        tracing::info!(node = %reg.name, address = %reg.address, slots = reg.capacity.slots, "node registered");
        let quota = reg.capacity.fuel_quota;
        let mut bucket = TokenBucket::new(quota.rate_per_hour, quota.burst);
        bucket.set_available(reg.fuel_available);
        let node = Node {
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
            jobs_run: 0,
            fuel_burned: 0,
        };
        inner.nodes.insert(id, node);
        self.dispatch(&mut inner);
        (id, rx)
    }

    /// A node sent a heartbeat: changes to its cache, its bucket's level, and
    /// whether it is shutting down.
    pub fn heartbeat(&self, node: NodeId, beat: Heartbeat) {
        let mut inner = self.lock();
        if let Some(n) = inner.nodes.get_mut(&node) {
            n.cached.extend(beat.cached_added);
            for h in &beat.cached_removed {
                n.cached.remove(h);
            }
            n.refill(Instant::now());
            n.bucket.set_available(beat.fuel_available);
            n.draining = beat.draining;
        }
        // A node that refused jobs may have room for them now.
        let Inner { queue, jobs, .. } = &mut *inner;
        for id in queue.iter() {
            if let Some(job) = jobs.get_mut(id) {
                job.refused_by.remove(&node);
            }
        }
        // Time passes between heartbeats: the bucket may now hold enough.
        self.dispatch(&mut inner);
    }

    /// A node sent output for one of its jobs.
    pub fn job_output(&self, node: NodeId, job: &str, stream: Stream, data: Vec<u8>) {
        let mut inner = self.lock();
        if let Some(j) = inner.jobs.get_mut(job).filter(|j| j.state == JobState::Running(node)) {
            // The record keeps the first OUTPUT_KEPT bytes; watchers get all.
            let (seq, bytes) = j.recorded;
            let room = OUTPUT_KEPT.saturating_sub(bytes).min(data.len());
            if room > 0 {
                j.recorded = (seq + 1, bytes + room);
                self.record(|db| db.output(job, seq, stream, data[..room].to_vec()));
            }
            push_event(j, JobEvent::Output(stream, data));
        }
    }

    /// A node finished one of its jobs.
    pub fn job_finished(&self, node: NodeId, job: &str, report: JobReport) {
        let mut inner = self.lock();
        if inner.jobs.get(job).is_none_or(|j| j.state != JobState::Running(node)) {
            return;
        }
        release(&mut inner, node, job, Some(report.fuel_used));
        if let Some(n) = inner.nodes.get_mut(&node) {
            n.jobs_run += 1;
        }
        self.finish(&mut inner, job, report);
        self.dispatch(&mut inner);
    }

    /// A node refused a job: it goes back to the front of the queue.
    pub fn job_rejected(&self, node: NodeId, job: &str, reason: &str) {
        let mut inner = self.lock();
        if inner.jobs.get(job).is_none_or(|j| j.state != JobState::Running(node)) {
            return;
        }
        tracing::warn!(job, node, reason, "node refused job; requeued");
        release(&mut inner, node, job, None);
        let j = inner.jobs.get_mut(job).expect("checked above");
        if j.cancel_requested {
            let limits = j.spec.limits;
            self.finish(&mut inner, job, JobReport::before_start(Outcome::Cancelled, "", &limits));
            self.dispatch(&mut inner);
            return;
        }
        j.state = JobState::Queued;
        j.refused_by.insert(node);
        if j.recorded.0 > 0 {
            // It ran for a while (a node handing jobs back as it shuts down):
            // what it wrote belongs to a void attempt.
            push_event(j, JobEvent::Retry(j.attempts + 1));
        } else {
            // Refused before it started: not an attempt.
            j.attempts = j.attempts.saturating_sub(1);
        }
        j.recorded = (0, 0);
        let (attempts, priority, tenant) = (j.attempts, j.priority, j.tenant.clone());
        self.record(|db| db.requeued(job, attempts));
        inner.queue.push_front(job.to_owned(), priority, &tenant);
        self.dispatch(&mut inner);
    }

    /// A node went away: each of its running jobs runs again elsewhere, up
    /// to the grid's attempts, or ends with a node error.
    pub fn node_gone(&self, node: NodeId, why: &str) {
        let mut inner = self.lock();
        let Some(n) = inner.nodes.remove(&node) else { return };
        tracing::warn!(node = %n.reg.name, why, "node disconnected");
        for id in n.running {
            let job = inner.jobs.get_mut(&id).expect("running job exists");
            let limits = job.spec.limits;
            if job.cancel_requested {
                self.finish(&mut inner, &id, JobReport::before_start(Outcome::Cancelled, &n.reg.name, &limits));
            } else if job.attempts < self.max_attempts {
                tracing::info!(job = %id, attempt = job.attempts + 1, "node lost; running the job again");
                job.state = JobState::Queued;
                job.recorded = (0, 0);
                job.lost_on.push(n.reg.name.clone());
                push_event(job, JobEvent::Retry(job.attempts + 1));
                let (attempts, priority, tenant) = (job.attempts, job.priority, job.tenant.clone());
                self.record(|db| db.requeued(&id, attempts));
                inner.queue.push_front(id, priority, &tenant);
            } else {
                let msg = format!(
                    "node `{}` disconnected: {why} (attempt {} of {})",
                    n.reg.name, job.attempts, self.max_attempts
                );
                self.finish(&mut inner, &id, JobReport::before_start(Outcome::NodeError(msg), &n.reg.name, &limits));
            }
        }
        self.dispatch(&mut inner);
    }

    /// The nodes connected now.
    pub fn nodes(&self) -> Vec<NodeSummary> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let now = Instant::now();
        let lost = &inner.lost_jobs;
        let mut out: Vec<_> = inner
            .nodes
            .iter_mut()
            .map(|(id, n)| {
                let lost_jobs = lost.get(&n.reg.name).copied().unwrap_or(0);
                n.refill(now);
                NodeSummary {
                    id: *id,
                    name: n.reg.name.clone(),
                    address: n.reg.address.clone(),
                    slots_total: n.reg.capacity.slots,
                    slots_used: n.running.len() as u32,
                    memory_total: n.reg.capacity.memory,
                    memory_used: n.memory_used,
                    fuel_per_hour: n.bucket.rate_per_hour(),
                    fuel_available: n.bucket.available().saturating_sub(n.fuel_reserved),
                    cached_modules: n.cached.len() as u32,
                    jobs_run: n.jobs_run,
                    fuel_burned: n.fuel_burned,
                    lost_jobs,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        out
    }

    /// The number of jobs waiting for a node.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }
}

impl Grid {
    fn finish(&self, inner: &mut Inner, id: &str, report: JobReport) {
        let Some(job) = inner.jobs.get_mut(id) else { return };
        tracing::info!(job = id, outcome = %report.outcome, fuel = report.fuel_used, "job finished");
        job.state = JobState::Finished;
        // The job's input is not needed any more; keep what describes it.
        if !job.spec.stdin.is_empty() || !job.spec.dirs.is_empty() {
            let spec = &job.spec;
            job.spec = Arc::new(JobSpec {
                module: spec.module.clone(),
                args: spec.args.clone(),
                env: spec.env.clone(),
                stdin: Vec::new(),
                dirs: Vec::new(),
                limits: spec.limits,
            });
        }
        if report.outcome.exit_code().is_some() {
            for name in std::mem::take(&mut job.lost_on) {
                tracing::warn!(node = %name, job = id, "a job lost on this node ran to its end elsewhere");
                *inner.lost_jobs.entry(name).or_default() += 1;
            }
        }
        let Some(job) = inner.jobs.get_mut(id) else { return };
        self.record(|db| db.finished(id, &job.spec, &report));
        push_event(job, JobEvent::Finished(Arc::new(report)));
        inner.finished.push_back(id.to_owned());
        while inner.finished.len() > FINISHED_KEPT {
            if let Some(old) = inner.finished.pop_front()
                && let Some(job) = inner.jobs.remove(&old)
                && let Some(key) = job.key
            {
                inner.keys.remove(&key);
            }
        }
    }

    /// Sends every queued job that fits somewhere to its best node, in queue
    /// order; jobs that fit nowhere keep their place.
    fn dispatch(&self, inner: &mut Inner) {
        let now = Instant::now();
        for n in inner.nodes.values_mut() {
            n.refill(now);
        }
        let free_slots = |nodes: &HashMap<NodeId, Node>| nodes.values().any(|n| n.free_slots() > 0);
        if inner.queue.is_empty() || !free_slots(&inner.nodes) {
            // Nothing can start (a job's status works out why on its own).
            return;
        }
        let Inner { queue, jobs, nodes, .. } = &mut *inner;
        let mut running: HashMap<&str, usize> = HashMap::new();
        for id in nodes.values().flat_map(|n| n.running.iter()) {
            *running.entry(jobs[id].tenant.as_str()).or_default() += 1;
        }
        let mut sent = Vec::new();
        for id in queue.in_order(&running) {
            let job = &jobs[id];
            let spec = &job.spec;
            let demand = Demand { memory: spec.limits.memory, fuel: spec.limits.fuel, disk: spec.limits.disk };
            let views: Vec<_> = nodes
                .iter()
                .filter(|(nid, _)| !job.refused_by.contains(nid))
                .map(|(nid, n)| n.view(*nid, spec))
                .collect();
            let Some(node_id) = scheduler::choose(&demand, &views) else {
                continue;
            };
            let node = nodes.get_mut(&node_id).expect("chosen node exists");
            if node.tx.send(ToNode::Assign(id.clone(), spec.clone())).is_err() {
                // The session is closing; node_gone will follow. Keep the job.
                continue;
            }
            node.running.insert(id.clone());
            node.memory_used += demand.memory;
            node.disk_used += demand.disk;
            node.fuel_reserved += demand.fuel;
            // The node will cache the module once it has fetched it.
            if !node.cached.contains(&spec.module) {
                node.cached.insert(spec.module.clone());
            }
            sent.push((id.clone(), node_id, node.reg.name.clone()));
            if !free_slots(nodes) {
                break;
            }
        }
        for (id, node_id, name) in sent {
            queue.remove(&id);
            let job = jobs.get_mut(&id).expect("queued job exists");
            job.state = JobState::Running(node_id);
            job.attempts += 1;
            job.node_name = name.clone();
            job.recorded = (0, 0);
            self.record(|db| db.running(&id, &name, job.attempts));
            push_event(job, JobEvent::Assigned(name));
        }
    }
}

impl JobWatch {
    /// The events not yet returned, without waiting.
    pub fn now(&mut self) -> Option<Vec<JobEvent>> {
        let inner = self.grid.lock();
        let job = inner.jobs.get(&self.id)?;
        let batch = job.events[self.seen..].to_vec();
        self.seen = job.events.len();
        Some(batch)
    }

    /// The next events, waiting for at least one. `None` after the job's
    /// `Finished` event has been returned.
    pub async fn next(&mut self) -> Option<Vec<JobEvent>> {
        loop {
            {
                let inner = self.grid.lock();
                let job = inner.jobs.get(&self.id)?;
                if self.seen > 0 && matches!(job.events.get(self.seen - 1), Some(JobEvent::Finished(_))) {
                    return None;
                }
                if job.events.len() > self.seen {
                    let batch = job.events[self.seen..].to_vec();
                    self.seen = job.events.len();
                    return Some(batch);
                }
            }
            if self.changed.changed().await.is_err() {
                return None;
            }
        }
    }
}

/// Why a queued job waits, as of now.
fn waiting_reason(inner: &Inner, job: &Job) -> String {
    let spec = &job.spec;
    let demand = Demand { memory: spec.limits.memory, fuel: spec.limits.fuel, disk: spec.limits.disk };
    let views: Vec<_> = inner
        .nodes
        .iter()
        .filter(|(nid, _)| !job.refused_by.contains(nid))
        .map(|(nid, n)| n.view(*nid, spec))
        .collect();
    match scheduler::choose(&demand, &views) {
        Some(_) => "waiting: its turn has not come yet".to_owned(),
        None => scheduler::why_waiting(&demand, &views, job.refused_by.len()),
    }
}

fn summarize(inner: &Inner, id: &str, job: &Job) -> JobSummary {
    let result = job.events.iter().rev().find_map(|e| match e {
        // Without the directories: a summary does not carry them.
        JobEvent::Finished(r) => Some(JobReport { dirs: Vec::new(), ..(**r).clone() }),
        _ => None,
    });
    let state = match (&job.state, &result) {
        (JobState::Queued, _) => "queued".to_owned(),
        (JobState::Running(_), _) => "running".to_owned(),
        (JobState::Finished, Some(r)) => crate::db::final_state(r).to_owned(),
        (JobState::Finished, None) => "failed".to_owned(),
    };
    JobSummary {
        id: id.to_owned(),
        state,
        tenant: job.tenant.clone(),
        priority: job.priority,
        waiting: (job.state == JobState::Queued).then(|| waiting_reason(inner, job)),
        node: job.node_name.clone(),
        attempts: job.attempts,
        submitted_ms: job.submitted_ms,
        module: job.spec.module.clone(),
        args: job.spec.args.clone(),
        result,
    }
}

fn push_event(job: &mut Job, event: JobEvent) {
    job.events.push(event);
    job.changed.send_replace(job.events.len());
}

/// Frees what a job held on its node, billing `burned` fuel if it ran.
fn release(inner: &mut Inner, node: NodeId, job: &str, burned: Option<u64>) {
    let limits = inner.jobs[job].spec.limits;
    if let Some(n) = inner.nodes.get_mut(&node) {
        if n.running.remove(job) {
            n.memory_used = n.memory_used.saturating_sub(limits.memory);
            n.disk_used = n.disk_used.saturating_sub(limits.disk);
            n.fuel_reserved = n.fuel_reserved.saturating_sub(limits.fuel);
        }
        if let Some(burned) = burned {
            n.refill(Instant::now());
            n.bucket.charge(burned);
            n.fuel_burned += burned;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_core::Limits;

    fn node(name: &str) -> NodeRegistration {
        NodeRegistration {
            name: name.into(),
            address: String::new(),
            capacity: Capacity {
                slots: 1,
                memory: 1 << 30,
                disk: 1 << 30,
                fuel_quota: grid_core::FuelQuota { rate_per_hour: 1 << 40, burst: 1 << 40 },
                per_job: grid_core::Ceilings {
                    fuel: 1 << 40,
                    memory: 1 << 30,
                    timeout: std::time::Duration::from_secs(3600),
                    disk: 1 << 30,
                },
            },
            fuel_available: 1 << 40,
            cached: Vec::new(),
        }
    }

    fn spec() -> JobSpec {
        JobSpec {
            module: ModuleHash::of(b"m"),
            args: vec![],
            env: vec![],
            stdin: vec![],
            dirs: vec![],
            limits: Limits::default(),
        }
    }

    fn assigned(rx: &mut mpsc::UnboundedReceiver<ToNode>) -> Option<JobId> {
        match rx.try_recv() {
            Ok(ToNode::Assign(id, _)) => Some(id),
            _ => None,
        }
    }

    #[test]
    fn a_job_no_node_would_take_is_refused_at_once() {
        let grid = Grid::default();
        let huge = JobSpec { limits: Limits { fuel: 1 << 50, ..Limits::default() }, ..spec() };
        // With no node yet, it waits for one.
        grid.submit(huge.clone()).unwrap();
        let (_a, _rx) = grid.register_node(node("a"));
        let err = grid.submit(huge).unwrap_err().to_string();
        assert!(err.contains("no connected node takes this job") && err.contains("fuel"), "{err}");
    }

    #[test]
    fn queued_jobs_wait_for_a_free_slot() {
        let grid = Grid::default();
        let (a, mut rx) = grid.register_node(node("a"));
        let first = grid.submit(spec()).unwrap();
        let second = grid.submit(spec()).unwrap();
        assert_eq!(assigned(&mut rx), Some(first.clone()));
        assert_eq!(assigned(&mut rx), None, "a one-slot node got two jobs");
        assert_eq!(grid.queued(), 1);
        grid.job_finished(a, &first, JobReport::before_start(Outcome::Exited(0), "a", &Limits::default()));
        assert_eq!(assigned(&mut rx), Some(second));
    }

    #[test]
    fn a_refused_job_waits_for_the_refusing_node_s_next_heartbeat() {
        let grid = Grid::default();
        let (a, mut rx) = grid.register_node(node("a"));
        let job = grid.submit(spec()).unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        grid.job_rejected(a, &job, "busy");
        assert_eq!(assigned(&mut rx), None, "sent straight back to the node that refused it");
        grid.heartbeat(a, Heartbeat { fuel_available: 1 << 40, ..Heartbeat::default() });
        assert_eq!(assigned(&mut rx), Some(job));
    }

    #[test]
    fn a_cancelled_job_that_comes_back_is_not_run_again() {
        let grid = Arc::new(Grid::default());
        let (a, mut rx) = grid.register_node(node("a"));
        let job = grid.submit(spec()).unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        assert!(grid.cancel(&job).unwrap());
        assert!(matches!(rx.try_recv(), Ok(ToNode::Cancel(id)) if id == job));
        grid.job_rejected(a, &job, "shutting down");
        grid.heartbeat(a, Heartbeat { fuel_available: 1 << 40, ..Heartbeat::default() });
        assert_eq!(assigned(&mut rx), None);
        let inner = grid.lock();
        assert!(
            matches!(inner.jobs[&job].events.last(), Some(JobEvent::Finished(r)) if r.outcome == Outcome::Cancelled)
        );
    }

    #[test]
    fn a_lost_node_s_job_runs_again_elsewhere_and_finishes_once() {
        let grid = Grid::new(None, 2);
        let (a, mut rx_a) = grid.register_node(node("a"));
        let job = grid.submit(spec()).unwrap();
        assert_eq!(assigned(&mut rx_a), Some(job.clone()));
        grid.node_gone(a, "stream closed");
        let (b, mut rx_b) = grid.register_node(node("b"));
        assert_eq!(assigned(&mut rx_b), Some(job.clone()), "the job did not run again");
        // The lost node's late report is ignored; the new node's counts.
        grid.job_finished(a, &job, JobReport::before_start(Outcome::Exited(1), "a", &Limits::default()));
        grid.job_finished(b, &job, JobReport::before_start(Outcome::Exited(0), "b", &Limits::default()));
        let summary = grid.summary(&job).unwrap();
        assert_eq!((summary.state.as_str(), summary.attempts, summary.node.as_str()), ("succeeded", 2, "b"));
        let inner = grid.lock();
        let finished = inner.jobs[&job].events.iter().filter(|e| matches!(e, JobEvent::Finished(_))).count();
        assert_eq!(finished, 1);
    }

    #[test]
    fn a_job_ends_when_its_attempts_run_out() {
        let grid = Grid::new(None, 1);
        let (a, mut rx) = grid.register_node(node("a"));
        let job = grid.submit(spec()).unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        grid.node_gone(a, "missed heartbeats");
        let summary = grid.summary(&job).unwrap();
        assert_eq!(summary.state, "failed");
        assert!(summary.result.unwrap().reason().contains("attempt 1 of 1"));
    }
}
