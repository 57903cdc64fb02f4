//! A job in the live state and its transitions: made once, sent to a node,
//! put back in the queue, ended. Each transition appends what watchers see.

use crate::model::{JobEvent, JobId, JobSummary, NodeId};
use crate::scheduler::Demand;
use crate::watch::{EventLog, JobWatch};
use grid_core::{JobReport, JobSpec, JobState, Submission};
use std::collections::HashMap;
use std::sync::Arc;

/// Where a live job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a node.
    Queued,
    /// Sent to this node.
    Running(NodeId),
    /// Ended.
    Finished,
}

/// Why a node is not offered a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The node handed it back when it had sent this many heartbeats; the
    /// refusal lapses with its next one.
    AtBeat(u64),
    /// The node lost it (it missed the job's deadline): never again.
    ForEver,
}

/// A job the master holds in memory.
pub struct Job {
    pub spec: Arc<JobSpec>,
    pub phase: Phase,
    pub submission: Submission,
    pub submitted_ms: u64,
    /// Attempts started so far.
    pub attempts: u32,
    /// The node of the current or last attempt.
    pub node_name: String,
    /// Output recorded for this attempt: chunks and bytes.
    pub recorded: (u64, usize),
    /// Nodes that refused or lost this job, and until when.
    pub refused_by: HashMap<NodeId, Refusal>,
    /// Names of the nodes lost while running this job.
    pub lost_on: Vec<String>,
    pub cancel_requested: bool,
    pub log: Arc<EventLog>,
}

impl Job {
    /// A queued job: new, or taken back from the record after `attempts`
    /// attempts, the last on `node_name`.
    pub fn new(spec: JobSpec, submission: Submission, submitted_ms: u64, attempts: u32, node_name: String) -> Self {
        Job {
            spec: Arc::new(spec),
            phase: Phase::Queued,
            submission,
            submitted_ms,
            attempts,
            node_name,
            recorded: (0, 0),
            refused_by: HashMap::new(),
            lost_on: Vec::new(),
            cancel_requested: false,
            log: Arc::default(),
        }
    }

    /// What the job asks of a node.
    pub fn demand(&self) -> Demand {
        let l = &self.spec.limits;
        Demand { memory: l.memory, fuel: l.fuel, disk: l.disk }
    }

    /// Whose job it is.
    pub fn tenant(&self) -> &str {
        &self.submission.tenant
    }

    /// `node` handed it back when it had sent `beats` heartbeats: it is not
    /// offered the job again before its next one.
    pub fn refuse(&mut self, node: NodeId, beats: u64) {
        let refusal = self.refused_by.entry(node).or_insert(Refusal::AtBeat(beats));
        if let Refusal::AtBeat(at) = refusal {
            *at = beats;
        }
    }

    /// `node` lost it: the job is never offered to that node again.
    pub fn avoid(&mut self, node: NodeId) {
        self.refused_by.insert(node, Refusal::ForEver);
    }

    /// Whether `node`, which has sent `beats` heartbeats, is not to be
    /// offered the job now.
    pub fn refused_now(&self, node: NodeId, beats: u64) -> bool {
        match self.refused_by.get(&node) {
            Some(Refusal::AtBeat(at)) => *at == beats,
            Some(Refusal::ForEver) => true,
            None => false,
        }
    }

    /// Whether `node` is never to be offered the job.
    pub fn avoids(&self, node: NodeId) -> bool {
        self.refused_by.get(&node) == Some(&Refusal::ForEver)
    }

    /// Whether `node` runs it now.
    pub fn runs_on(&self, node: NodeId) -> bool {
        self.phase == Phase::Running(node)
    }

    /// A watcher of its events from the first.
    pub fn watch(&self) -> JobWatch {
        self.log.watch()
    }

    /// Sent to `node` (named `name`) as a new attempt.
    pub fn assign(&mut self, node: NodeId, name: &str) {
        self.phase = Phase::Running(node);
        self.attempts += 1;
        self.node_name = name.to_owned();
        self.recorded = (0, 0);
        self.log.push(JobEvent::Assigned(name.to_owned()));
    }

    /// Back in the queue; a started attempt's output is void, so watchers
    /// are told another attempt comes.
    pub fn requeue(&mut self, announce_retry: bool) {
        self.phase = Phase::Queued;
        self.recorded = (0, 0);
        if announce_retry {
            self.log.push(JobEvent::Retry(self.attempts + 1));
        }
    }

    /// Ended with `report`. The job's input is not needed any more; what
    /// describes it is kept.
    pub fn finish(&mut self, report: Arc<JobReport>) {
        self.phase = Phase::Finished;
        if !self.spec.stdin.is_empty() || !self.spec.dirs.is_empty() {
            let spec = &self.spec;
            self.spec = Arc::new(JobSpec {
                module: spec.module.clone(),
                args: spec.args.clone(),
                env: spec.env.clone(),
                stdin: Vec::new(),
                dirs: Vec::new(),
                limits: spec.limits,
            });
        }
        self.log.push(JobEvent::Finished(report));
    }

    /// As `grid-cli status` shows it; `waiting` is why a queued job waits.
    pub fn summary(&self, id: &JobId, waiting: impl FnOnce() -> String) -> JobSummary {
        // Without the directories: a summary does not carry them.
        let result = self.log.result().map(|r| JobReport { dirs: Vec::new(), ..(*r).clone() });
        let state = match (self.phase, &result) {
            (Phase::Queued, _) => JobState::Queued,
            (Phase::Running(_), _) => JobState::Running,
            (Phase::Finished, Some(r)) => JobState::finished(r),
            (Phase::Finished, None) => JobState::Failed,
        };
        JobSummary {
            id: id.clone(),
            state,
            tenant: self.submission.tenant.clone(),
            priority: self.submission.priority,
            waiting: (self.phase == Phase::Queued).then(waiting),
            node: self.node_name.clone(),
            attempts: self.attempts,
            submitted_ms: self.submitted_ms,
            module: self.spec.module.clone(),
            args: self.spec.args.clone(),
            result,
        }
    }
}
