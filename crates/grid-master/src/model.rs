//! The records the master's parts share: ids, what happens to a job, what
//! nodes declare and report, and how jobs and nodes are shown. Plain data,
//! no behaviour beyond conversions.

use grid_core::{
    Attempt, AttemptEnd, Capacity, JobReport, JobSpec, JobState, ModuleHash, NodeState, Outcome, OutputStream, Verdict,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// The session ends, refused for this reason (the node's credential
    /// was revoked).
    End(String),
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
    /// The node's lasting identity (a random id kept in its data dir):
    /// the same name and identity is the same node reconnecting.
    pub identity: String,
    /// The tenant whose jobs alone the node runs (a private node, from its
    /// credential); `None` for a public node.
    pub owner: Option<String>,
    /// How long the master lets the node compile a job's module (see
    /// [`crate::compiling`]).
    pub compile_allowance: Duration,
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

/// What a tenant has run, as the record keeps it across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantUse {
    pub name: String,
    /// Jobs that ran on a node to their end.
    pub jobs_run: u64,
    /// Fuel those jobs burned.
    pub fuel_burned: u64,
}

/// A node's history, by name, as the record keeps it across sessions and
/// master restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// The name it registered with.
    pub name: String,
    /// The identity it registered with last.
    pub identity: String,
    /// Where it stands; a node recorded as connected that is not is `gone`.
    pub state: NodeState,
    /// Jobs it ran to their end.
    pub jobs_run: u64,
    /// Fuel its jobs burned.
    pub fuel_burned: u64,
    /// Jobs lost on it that then ran to their end elsewhere.
    pub lost_jobs: u64,
    /// When a node of this name first registered, in ms since the epoch.
    pub first_seen_ms: u64,
    /// When it was last seen connected, in ms since the epoch.
    pub last_seen_ms: u64,
    /// How far the grid trusts its results, and what they earned it.
    pub standing: Standing,
}

/// How far the grid trusts a node's results (see `trust`), and the credit
/// they earned it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// Results in a row that agreed with other replicas; a disagreement or
    /// an overdue job sets it back to zero.
    pub streak: u32,
    /// Disagreements and overdue jobs since it was last cleared.
    pub strikes: u32,
    /// It gets no jobs until an admin clears it.
    pub quarantined: bool,
    /// Fuel of its results that the grid accepted: validated by a quorum
    /// (the fuel the quorum agreed on) or taken on trust.
    pub credit: u64,
}

impl NodeRecord {
    /// A node of this name seen for the first time at `now_ms`.
    pub fn new(name: &str, identity: &str, now_ms: u64) -> Self {
        NodeRecord {
            name: name.to_owned(),
            identity: identity.to_owned(),
            state: NodeState::Ready,
            jobs_run: 0,
            fuel_burned: 0,
            lost_jobs: 0,
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            standing: Standing::default(),
        }
    }
}

/// A node as `grid-cli nodes` shows it. A node not connected has only its
/// history: no address, capacity or cache.
#[derive(Debug, Clone)]
pub struct NodeSummary {
    /// Its session's id; 0 for a node not connected.
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
    pub state: NodeState,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// Its standing, by name.
    pub standing: Standing,
    /// Whether the master's policy takes its results without a second
    /// replica now (never while it is quarantined).
    pub trusted: bool,
}

impl NodeSummary {
    /// A node not connected, as its history shows it (not trusted until a
    /// policy says so).
    pub fn from_record(r: NodeRecord) -> Self {
        let state = if r.state.is_connected() { NodeState::Gone } else { r.state };
        NodeSummary {
            id: 0,
            name: r.name,
            address: String::new(),
            slots_total: 0,
            slots_used: 0,
            memory_total: 0,
            memory_used: 0,
            fuel_per_hour: 0,
            fuel_available: 0,
            cached_modules: 0,
            jobs_run: r.jobs_run,
            fuel_burned: r.fuel_burned,
            lost_jobs: r.lost_jobs,
            state,
            first_seen_ms: r.first_seen_ms,
            last_seen_ms: r.last_seen_ms,
            standing: r.standing,
            trusted: false,
        }
    }
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
    /// Replicas that must agree on its result; 0 for a job run once,
    /// unverified.
    pub quorum: u32,
    /// A verified job's replicas as memory knows them (the record may not
    /// have the latest yet): merged into `history` by `with_history`.
    pub replicas: Vec<Attempt>,
}

impl JobSummary {
    /// The job with its attempts: those the record holds, completed from
    /// what memory knows of a live job. Attempts are written behind, so the
    /// record may not have the last one yet, or not its end; reading it
    /// this way needs no flush, so a status call never makes the record
    /// commit (a flood of them cannot slow every submission).
    pub fn with_history(mut self, mut recorded: Vec<Attempt>) -> Self {
        if !self.replicas.is_empty() {
            for live in std::mem::take(&mut self.replicas) {
                match recorded.iter_mut().find(|a| a.number == live.number) {
                    Some(a) => {
                        a.ended_ms = a.ended_ms.or(live.ended_ms);
                        a.end = a.end.or(live.end);
                        a.digest = a.digest.take().or(live.digest);
                        a.verdict = a.verdict.or(live.verdict);
                    }
                    None => recorded.push(live),
                }
            }
            recorded.sort_by_key(|a| a.number);
        }
        let last = recorded.last().map_or(0, |a| a.number);
        if self.attempts > last
            && !self.node.is_empty()
            && let Some(started_ms) = self.started_ms
        {
            recorded.push(Attempt {
                digest: None,
                verdict: None,
                number: self.attempts,
                node: self.node.clone(),
                started_ms,
                ended_ms: None,
                end: None,
            });
        }
        if let (Some(result), Some(ended_ms)) = (&self.result, self.finished_ms)
            && let Some(final_attempt) = recorded.last_mut().filter(|a| a.number == self.attempts && a.end.is_none())
        {
            final_attempt.ended_ms = Some(ended_ms);
            final_attempt.end =
                Some(if result.outcome == Outcome::Cancelled { AttemptEnd::Cancelled } else { AttemptEnd::Finished });
        }
        if self.quorum == 0 {
            // A verified job the record alone knows: its quorum is how
            // many agreed.
            self.quorum = recorded.iter().filter(|a| a.verdict == Some(Verdict::Agreed)).count() as u32;
        }
        self.history = recorded;
        self
    }
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
            quorum: 0,
            replicas: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(state: JobState, attempts: u32, node: &str) -> JobSummary {
        JobSummary {
            id: "j".into(),
            state,
            tenant: String::new(),
            priority: 0,
            waiting: None,
            node: node.into(),
            attempts,
            submitted_ms: 1,
            started_ms: Some(10),
            finished_ms: None,
            module: ModuleHash::of(b""),
            args: Vec::new(),
            result: None,
            history: Vec::new(),
            quorum: 0,
            replicas: Vec::new(),
        }
    }

    fn attempt(number: u32, node: &str, end: Option<AttemptEnd>) -> Attempt {
        Attempt { digest: None, verdict: None, number, node: node.into(), started_ms: 5, ended_ms: end.map(|_| 8), end }
    }

    #[test]
    fn a_live_job_completes_the_attempts_the_record_has_not_written_yet() {
        // The record has the first attempt, lost; memory knows the second runs.
        let running =
            summary(JobState::Running, 2, "beta").with_history(vec![attempt(1, "alpha", Some(AttemptEnd::Lost))]);
        assert_eq!(
            running.history,
            vec![
                attempt(1, "alpha", Some(AttemptEnd::Lost)),
                Attempt {
                    digest: None,
                    verdict: None,
                    number: 2,
                    node: "beta".into(),
                    started_ms: 10,
                    ended_ms: None,
                    end: None
                }
            ]
        );

        // The job ended; the record has its attempt but not yet its end.
        let mut ended = summary(JobState::Cancelled, 1, "alpha");
        ended.finished_ms = Some(20);
        ended.result = Some(JobReport::before_start(Outcome::Cancelled, "alpha", &grid_core::Limits::default()));
        let ended = ended.with_history(vec![attempt(1, "alpha", None)]);
        assert_eq!(ended.history[0].end, Some(AttemptEnd::Cancelled));
        assert_eq!(ended.history[0].ended_ms, Some(20));

        // What the record has whole stays as it is; a queued job adds nothing.
        let whole = vec![attempt(1, "alpha", Some(AttemptEnd::Lost))];
        assert_eq!(summary(JobState::Queued, 1, "").with_history(whole.clone()).history, whole);
    }
}
