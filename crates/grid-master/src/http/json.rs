//! The API's JSON shapes, made from the messages the shared services
//! answer with: a job, a node, and a volunteer's cut of a job.

use grid_core::{JobReport, Outcome};
use grid_proto as pb;
use serde::Serialize;

/// A job, as `GET /api/v1/jobs/{id}` and the rows of a listing show it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: String,
    pub tenant: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// How it ended (`exited`, `out_of_fuel`, `timeout`, ...), or null.
    pub outcome: Option<String>,
    pub exit_code: Option<i32>,
    /// Why it did not succeed, in words; null for a success.
    pub reason: Option<String>,
    pub module: String,
    pub args: Vec<String>,
    pub node: Option<String>,
    pub submitted_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    pub wall_ms: Option<u64>,
    pub fuel_used: Option<u64>,
    pub attempts: u32,
    /// Why a queued job waits, else null.
    pub waiting: Option<String>,
    pub quorum: u32,
    /// The spec's fields: null in listings, set by `GET /api/v1/jobs/{id}`.
    pub replicas: Option<u32>,
    pub deterministic: Option<bool>,
    pub limits: Option<Limits>,
    pub priority: i32,
    pub history: Vec<Attempt>,
}

/// A job's limits.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    pub fuel: u64,
    pub memory: u64,
    pub timeout_ms: u64,
    pub output: u64,
}

/// One attempt at a job.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub node: String,
    pub started_at_ms: u64,
    pub ended_at_ms: Option<u64>,
    pub end: Option<String>,
    pub digest: Option<String>,
    pub verdict: Option<String>,
}

/// What a node's volunteer sees of a job that ran on the node: never its
/// args, env, stdin or output.
#[derive(Debug, Clone, Serialize)]
pub struct VolunteerJob {
    pub id: String,
    pub state: String,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub fuel_used: Option<u64>,
    pub submitted_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    pub wall_ms: Option<u64>,
}

/// A node.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub name: String,
    /// `ready`, `draining`, `gone`, ...
    pub state: String,
    /// Where it connects from: the admin's to know alone.
    pub address: Option<String>,
    pub owner: Option<String>,
    pub slots: u32,
    pub slots_used: u32,
    pub memory: u64,
    pub memory_used: u64,
    /// Fuel it offers per hour.
    pub fuel_quota: u64,
    /// Fuel its jobs burned.
    pub fuel_used: u64,
    pub fuel_available: u64,
    pub jobs_run: u64,
    pub jobs_lost: u64,
    pub credit: u64,
    pub trust: u32,
    pub trusted: bool,
    pub quarantined: bool,
    pub strikes: u32,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// The node's software version, when it told.
    pub version: Option<String>,
}

fn some(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

fn nonzero(n: u64) -> Option<u64> {
    Some(n).filter(|n| *n > 0)
}

/// The word for an outcome: `exited`, `out_of_fuel`, `no_quorum`, ...
pub fn outcome_word(kind: i32) -> Option<String> {
    let kind = pb::OutcomeKind::try_from(kind).ok()?;
    let name = kind.as_str_name().strip_prefix("OUTCOME_KIND_")?;
    (kind != pb::OutcomeKind::Unspecified).then(|| name.to_ascii_lowercase())
}

impl Job {
    /// The job `info` describes; its spec's fields come from `spec`, when given.
    pub fn from_pb(info: pb::JobInfo, spec: Option<&grid_core::JobSpec>) -> Self {
        let result = info.result.clone();
        let report = result.clone().map(JobReport::from);
        let reason = report.as_ref().and_then(|r| match &r.outcome {
            Outcome::Exited(0) => None,
            o => Some(o.to_string()),
        });
        Job {
            id: info.id,
            tenant: info.tenant,
            state: info.state,
            outcome: result.as_ref().and_then(|r| outcome_word(r.kind)),
            exit_code: report.as_ref().and_then(|r| r.outcome.exit_code()),
            reason,
            module: info.module_hash,
            args: info.args,
            node: some(info.node),
            submitted_at_ms: info.submitted_ms,
            started_at_ms: nonzero(info.started_ms),
            finished_at_ms: nonzero(info.finished_ms),
            wall_ms: result.as_ref().map(|r| r.wall_us / 1000),
            fuel_used: result.as_ref().map(|r| r.fuel_used),
            attempts: info.attempts,
            waiting: some(info.waiting),
            quorum: info.quorum,
            replicas: spec.map(|s| s.replicas),
            deterministic: spec.map(|s| s.deterministic),
            limits: spec.map(|s| Limits {
                fuel: s.limits.fuel,
                memory: s.limits.memory,
                timeout_ms: s.limits.timeout.as_millis() as u64,
                output: s.limits.output,
            }),
            priority: info.priority,
            history: info
                .attempt_list
                .into_iter()
                .map(|a| Attempt {
                    node: a.node,
                    started_at_ms: a.started_ms,
                    ended_at_ms: nonzero(a.ended_ms),
                    end: some(a.end),
                    digest: some(a.digest),
                    verdict: some(a.verdict),
                })
                .collect(),
        }
    }

    /// Whether the job finished.
    pub fn finished(&self) -> bool {
        !matches!(self.state.as_str(), "queued" | "running")
    }

    /// Whether `node` ran (or runs) the job.
    pub fn ran_on(&self, node: &str) -> bool {
        self.node.as_deref() == Some(node) || self.history.iter().any(|a| a.node == node)
    }

    /// A volunteer's cut of the job.
    pub fn for_volunteer(self) -> VolunteerJob {
        VolunteerJob {
            id: self.id,
            state: self.state,
            outcome: self.outcome,
            reason: self.reason,
            fuel_used: self.fuel_used,
            submitted_at_ms: self.submitted_at_ms,
            started_at_ms: self.started_at_ms,
            finished_at_ms: self.finished_at_ms,
            wall_ms: self.wall_ms,
        }
    }
}

impl Node {
    /// The node `info` describes.
    pub fn from_pb(n: pb::NodeInfo) -> Self {
        Node {
            name: n.name,
            state: n.state,
            address: some(n.address),
            owner: some(n.owner),
            slots: n.slots_total,
            slots_used: n.slots_used,
            memory: n.memory_total,
            memory_used: n.memory_used,
            fuel_quota: n.fuel_per_hour,
            fuel_used: n.fuel_burned,
            fuel_available: n.fuel_available,
            jobs_run: n.jobs_run,
            jobs_lost: n.lost_jobs,
            credit: n.credit,
            trust: n.trust,
            trusted: n.trusted,
            quarantined: n.quarantined,
            strikes: n.strikes,
            first_seen_ms: n.first_seen_ms,
            last_seen_ms: n.last_seen_ms,
            version: None,
        }
    }
}
