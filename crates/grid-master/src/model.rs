//! The records the master's parts share: ids, what happens to a job, what
//! nodes declare and report, and how jobs and nodes are shown. Plain data,
//! no behaviour beyond conversions.

use grid_core::{Attempt, Capacity, JobReport, JobSpec, JobState, ModuleHash, OutputStream};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A job's id: a ULID in lower case, unique across master restarts.
pub type JobId = String;
/// A connected node's id, fresh for every session.
pub type NodeId = u64;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One thing that happened to a job, in the order watchers see it.
#[derive(Debug, Clone)]
pub enum JobEvent {
    /// The job went to this node.
    Assigned(String),
    /// The guest wrote output.
    Output(OutputStream, Vec<u8>),
    /// The node running the job was lost; the job runs again, and this is
    /// the number of the attempt to come. Output before it is void.
    Retry(u32),
    /// The job ended.
    Finished(Arc<JobReport>),
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

/// A job as the record holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJob {
    /// The job's id.
    pub id: JobId,
    /// The submission's idempotency key, if it had one.
    pub key: Option<String>,
    /// Whose job it is.
    pub tenant: String,
    /// Higher runs first.
    pub priority: i32,
    /// What to run.
    pub spec: JobSpec,
    /// Where it stands.
    pub state: JobState,
    /// The node of the last attempt.
    pub node: String,
    /// Attempts started.
    pub attempts: u32,
    /// When it was submitted.
    pub submitted_ms: u64,
    /// When its last attempt started.
    pub started_ms: Option<u64>,
    /// When it ended.
    pub finished_ms: Option<u64>,
    /// A keyed submission's fingerprint (see `Submission::fingerprint`).
    pub fingerprint: Option<String>,
    /// How it ended.
    pub result: Option<JobReport>,
}

/// A job as `grid-cli status` shows it.
#[derive(Debug, Clone)]
pub struct JobSummary {
    pub id: JobId,
    pub state: JobState,
    pub tenant: String,
    pub priority: i32,
    /// Why a queued job waits.
    pub waiting: Option<String>,
    pub node: String,
    pub attempts: u32,
    pub submitted_ms: u64,
    /// When the last attempt started.
    pub started_ms: Option<u64>,
    /// When the job ended.
    pub finished_ms: Option<u64>,
    pub module: ModuleHash,
    pub args: Vec<String>,
    pub result: Option<JobReport>,
    /// Every attempt, oldest first: filled in only for one job's status.
    pub history: Vec<Attempt>,
}

impl From<StoredJob> for JobSummary {
    fn from(j: StoredJob) -> Self {
        JobSummary {
            id: j.id,
            state: j.state,
            tenant: j.tenant,
            priority: j.priority,
            waiting: None,
            node: j.node,
            attempts: j.attempts,
            submitted_ms: j.submitted_ms,
            started_ms: j.started_ms,
            finished_ms: j.finished_ms,
            module: j.spec.module,
            args: j.spec.args,
            result: j.result,
            history: Vec::new(),
        }
    }
}
