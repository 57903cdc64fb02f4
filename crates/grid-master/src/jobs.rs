//! A job in the live state and its transitions: made once, sent to a node,
//! put back in the queue, ended. Each transition appends what watchers see.
//!
//! Memory holds little of a job: a queued job's large inputs stay in the
//! record ([`light_spec`](crate::record::light_spec)), a running job's output is a bounded window, and
//! an ended job keeps only what its summary shows.

use crate::compiling::Compiling;
use crate::model::{JobEvent, JobId, JobSummary, NodeId, now_ms};
use crate::record::{JobStore, OutputExtent};
use crate::scheduler::Demand;
use crate::spool::Spool;
use crate::watch::{EventLog, JobWatch};
use grid_core::{Attempt, AttemptEnd, JobReport, JobSpec, JobState, Submission, Verdict};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a live job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a node.
    Queued,
    /// Sent to this node.
    Running(NodeId),
    /// Running on its node (`node_name`) when its master stopped: waits for
    /// that node to come back to this master with it.
    Awaiting,
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

/// One run of a verified job on one node.
pub struct Replica {
    pub node: NodeId,
    pub name: String,
    /// The tenant whose node it is, for a private node.
    pub owner: Option<String>,
    /// Its attempt's number.
    pub number: u32,
    pub assigned_at: Instant,
    /// What its node said of compiling the module.
    pub compiling: Compiling,
    pub started_ms: u64,
    /// Its output, kept aside until the quorum decides.
    pub spool: Spool,
    /// Once it finished: its digest and its report (checked as every
    /// node's report is).
    pub done: Option<(String, JobReport)>,
    /// Whether it agreed with the quorum, once decided.
    pub verdict: Option<Verdict>,
    /// When it ended, and how, once it has.
    pub ended: Option<(u64, AttemptEnd)>,
}

impl Replica {
    /// Whether it is still running.
    pub fn running(&self) -> bool {
        self.ended.is_none()
    }

    /// As `status` shows it.
    pub fn attempt(&self) -> Attempt {
        Attempt {
            number: self.number,
            node: self.name.clone(),
            started_ms: self.started_ms,
            ended_ms: self.ended.map(|e| e.0),
            end: self.ended.map(|e| e.1),
            digest: self.done.as_ref().map(|d| d.0.clone()),
            verdict: self.verdict,
        }
    }
}

/// A job that runs on several distinct nodes until `quorum` of them agree
/// on its result.
pub struct Verification {
    pub quorum: u32,
    /// Every replica started that was not void (lost, handed back, taken
    /// back overdue): running, finished or stopped.
    pub replicas: Vec<Replica>,
    /// Replicas that went void.
    pub void: Vec<Attempt>,
    /// Replicas still to start.
    pub wanted: u32,
}

impl Verification {
    /// A verification needing `quorum` agreeing replicas, none started.
    pub fn new(quorum: u32) -> Self {
        Self { quorum, replicas: Vec::new(), void: Vec::new(), wanted: quorum }
    }

    /// The replica running on `node`.
    pub fn running_on(&mut self, node: NodeId) -> Option<&mut Replica> {
        self.replicas.iter_mut().find(|r| r.node == node && r.running())
    }

    /// The replica running on `node`, to read.
    pub fn replica_on(&self, node: NodeId) -> Option<&Replica> {
        self.replicas.iter().find(|r| r.node == node && r.running())
    }

    /// Replicas running now.
    pub fn running(&self) -> u32 {
        self.replicas.iter().filter(|r| r.running()).count() as u32
    }

    /// Whether a replica on a node named `name` with `owner` would not be
    /// independent of those already run: the same node, or the same owner.
    pub fn conflicts(&self, name: &str, owner: Option<&str>) -> bool {
        self.replicas
            .iter()
            .any(|r| r.name == name || matches!((owner, r.owner.as_deref()), (Some(a), Some(b)) if a == b))
    }

    /// Every replica, void ones included, as `status` shows them.
    pub fn attempts(&self) -> Vec<Attempt> {
        let mut all: Vec<Attempt> =
            self.void.iter().cloned().chain(self.replicas.iter().map(Replica::attempt)).collect();
        all.sort_by_key(|a| a.number);
        all
    }
}

/// A job the master holds in memory.
pub struct Job {
    /// What memory keeps of the spec (see [`light_spec`](crate::record::light_spec)); once the job has
    /// ended, only its module, args and limits.
    pub spec: Arc<JobSpec>,
    /// Whether the full spec is only in the record.
    pub spec_in_record: bool,
    pub phase: Phase,
    pub submission: Submission,
    /// A keyed submission's fingerprint, to tell a retry from a clash.
    pub fingerprint: Option<Box<str>>,
    pub submitted_ms: u64,
    /// When the current or last attempt started, and when the job ended
    /// (ms since the Unix epoch; 0 if not yet).
    pub started_ms: u64,
    pub finished_ms: u64,
    /// Attempts started so far.
    pub attempts: u32,
    /// The node of the current attempt, or of the last one once the job
    /// has ended; empty while it waits.
    pub node_name: String,
    /// Output recorded for this attempt: chunks and bytes.
    pub recorded: (u64, usize),
    /// Nodes that refused or lost this job, and until when.
    pub refused_by: HashMap<NodeId, Refusal>,
    /// Names of the nodes lost while running this job.
    pub lost_on: Vec<String>,
    pub cancel_requested: bool,
    /// What watchers see while the job is live; `None` once it has ended
    /// (watchers that follow it still hold it).
    pub log: Option<Arc<EventLog>>,
    /// How it ended, without written-back directories.
    pub result: Option<Arc<JobReport>>,
    /// Whether its end wrote back directories, which only the record holds.
    pub dirs_in_record: bool,
    /// When the current attempt was sent to its node (or its node said it
    /// had compiled the module and started it).
    pub assigned_at: Option<Instant>,
    /// What the current attempt's node said of compiling the module.
    pub compiling: Compiling,
    /// A job that runs on several nodes until a quorum agrees; `None` for
    /// one that runs once.
    pub verify: Option<Box<Verification>>,
    /// A verified job's replicas once it has ended, for `status`.
    pub replica_history: Vec<Attempt>,
}

impl Job {
    /// A queued job: new, or taken back from the record after `attempts`
    /// attempts, the last on `node_name`. `spec` is light (see
    /// [`light_spec`](crate::record::light_spec)); `spec_in_record` says whether it was made so.
    pub fn new(
        spec: JobSpec,
        spec_in_record: bool,
        submission: Submission,
        submitted_ms: u64,
        attempts: u32,
        node_name: String,
    ) -> Self {
        Job {
            spec: Arc::new(spec),
            spec_in_record,
            phase: Phase::Queued,
            submission,
            fingerprint: None,
            submitted_ms,
            started_ms: 0,
            finished_ms: 0,
            attempts,
            node_name,
            recorded: (0, 0),
            refused_by: HashMap::new(),
            lost_on: Vec::new(),
            cancel_requested: false,
            log: Some(Arc::default()),
            result: None,
            dirs_in_record: false,
            assigned_at: None,
            compiling: Compiling::default(),
            verify: None,
            replica_history: Vec::new(),
        }
    }

    /// From now on the job runs on distinct nodes until `quorum` of them
    /// agree, deterministically so that honest ones do.
    pub fn verify(&mut self, quorum: u32) {
        if !self.spec.deterministic {
            let mut spec = (*self.spec).clone();
            spec.deterministic = true;
            self.spec = Arc::new(spec);
        }
        self.verify = Some(Box::new(Verification::new(quorum)));
    }

    /// Whether node `name` (with `owner`) may not run a replica of it.
    pub fn conflicts(&self, name: &str, owner: Option<&str>) -> bool {
        self.verify.as_ref().is_some_and(|v| v.conflicts(name, owner))
    }

    /// A replica started on `node` (named `name`, with `owner`) as the next
    /// attempt. Returns its number.
    /// Its output goes to `spool`.
    pub fn add_replica(&mut self, node: NodeId, name: &str, owner: Option<&str>, spool: Spool) -> u32 {
        let first = self.verify.as_ref().is_some_and(|v| v.replicas.is_empty() && v.void.is_empty());
        self.attempts += 1;
        self.started_ms = now_ms();
        self.node_name = name.to_owned();
        let number = self.attempts;
        let v = self.verify.as_mut().expect("a verified job");
        v.wanted = v.wanted.saturating_sub(1);
        v.replicas.push(Replica {
            node,
            name: name.to_owned(),
            owner: owner.map(str::to_owned),
            number,
            assigned_at: Instant::now(),
            compiling: Compiling::default(),
            started_ms: self.started_ms,
            spool,
            done: None,
            verdict: None,
            ended: None,
        });
        self.phase = if v.wanted == 0 { Phase::Running(node) } else { Phase::Queued };
        if first {
            self.push(JobEvent::Assigned(name.to_owned()));
        }
        number
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

    /// Its node (or a replica's) said it compiles the module, and has not
    /// said it finished.
    pub fn compiling_now(&self) -> bool {
        match &self.verify {
            Some(v) => v.replicas.iter().any(|r| r.running() && r.compiling.now()),
            None => matches!(self.phase, Phase::Running(_)) && self.compiling.now(),
        }
    }

    /// Node `node`, which runs it and may compile for `allowance`, said it
    /// compiles its module (`done` false) or has compiled it (`done`
    /// true), at `now`. Returns whether it was believed.
    pub fn told_compiling(&mut self, node: NodeId, done: bool, now: Instant, allowance: Duration) -> bool {
        match self.verify.as_mut() {
            Some(v) => v.running_on(node).is_some_and(|r| r.compiling.told(done, now, &mut r.assigned_at, allowance)),
            None if self.phase == Phase::Running(node) => {
                let mut at = self.assigned_at.unwrap_or(now);
                let told = self.compiling.told(done, now, &mut at, allowance);
                self.assigned_at = Some(at);
                told
            }
            None => false,
        }
    }

    /// When its attempt on `node` (which may compile for `allowance`) is
    /// overdue, `grace` past its deadline; `None` if it runs on no such
    /// attempt.
    pub fn deadline_on(&self, node: NodeId, grace: Duration, allowance: Duration) -> Option<Instant> {
        let timeout = self.spec.limits.timeout;
        match &self.verify {
            Some(v) => v.replica_on(node).map(|r| r.compiling.deadline(r.assigned_at, timeout, grace, allowance)),
            None => self.assigned_at.map(|at| self.compiling.deadline(at, timeout, grace, allowance)),
        }
    }

    /// Whether `node` runs it now (a replica of it, for a verified job).
    pub fn runs_on(&self, node: NodeId) -> bool {
        match &self.verify {
            Some(v) => v.replica_on(node).is_some(),
            None => self.phase == Phase::Running(node),
        }
    }

    /// A watcher of its events from the first, reading what memory does
    /// not hold from `store`.
    pub fn watch(&self, id: &str, store: Arc<dyn JobStore>) -> JobWatch {
        match (&self.log, &self.result) {
            (Some(log), _) => log.watch(id, store),
            (None, result) => {
                Arc::new(EventLog::ended(&self.node_name, result.clone(), self.dirs_in_record)).watch(id, store)
            }
        }
    }

    /// Appends what watchers see.
    fn push(&self, event: JobEvent) {
        if let Some(log) = &self.log {
            log.push(event);
        }
    }

    /// A chunk of output of the current attempt: counted, and added to the
    /// window. Returns its number.
    pub fn output(&mut self, stream: grid_core::OutputStream, data: Vec<u8>) -> u64 {
        self.recorded.0 += 1;
        self.recorded.1 += data.len();
        self.log.as_ref().map_or(0, |log| log.output(stream, data))
    }

    /// Sent to `node` (named `name`) as a new attempt.
    pub fn assign(&mut self, node: NodeId, name: &str) {
        self.phase = Phase::Running(node);
        self.assigned_at = Some(Instant::now());
        self.compiling = Compiling::default();
        self.started_ms = now_ms();
        self.attempts += 1;
        self.node_name = name.to_owned();
        self.recorded = (0, 0);
        self.push(JobEvent::Assigned(name.to_owned()));
    }

    /// Its session ended (its master stopped, or its node's connection
    /// broke) while it ran on `node_name`: it waits for that node to come
    /// back with it. Taken back from the record, it also learns the output
    /// the record holds (`recorded`); otherwise memory knows it.
    pub fn await_node(&mut self, recorded: Option<OutputExtent>) {
        self.phase = Phase::Awaiting;
        if let Some(e) = recorded {
            self.recorded = (e.chunks, usize::try_from(e.bytes).unwrap_or(usize::MAX));
            self.log = Some(Arc::new(EventLog::resumed(&self.node_name, e.next_seq)));
        }
    }

    /// Its node came back with it as node `node`: it runs on there. Its
    /// deadline is as this master knew it; taken back from the record, it
    /// counts from when the attempt started, and the node says again if
    /// it still compiles.
    pub fn resume_on(&mut self, node: NodeId) {
        self.phase = Phase::Running(node);
        if self.assigned_at.is_none() {
            self.compiling = Compiling::default();
            let ran = Duration::from_millis(now_ms().saturating_sub(self.started_ms));
            self.assigned_at = Some(Instant::now().checked_sub(ran).unwrap_or_else(Instant::now));
        }
    }

    /// Back in the queue, on no node; a started attempt's output is void,
    /// so watchers are told another attempt comes.
    pub fn requeue(&mut self, announce_retry: bool) {
        self.phase = Phase::Queued;
        self.node_name.clear();
        self.recorded = (0, 0);
        if announce_retry {
            self.push(JobEvent::Retry(self.attempts + 1));
        }
    }

    /// Ended with `report`: watchers are told, and the job keeps only what
    /// its summary shows (no input, no output, no written-back
    /// directories). Returns whether the record's spec still holds input
    /// to drop.
    pub fn finish(&mut self, report: Arc<JobReport>) -> bool {
        self.phase = Phase::Finished;
        self.finished_ms = now_ms();
        let has_input = self.spec_in_record || !self.spec.stdin.is_empty() || !self.spec.dirs.is_empty();
        if !self.spec.env.is_empty() || has_input {
            let spec = &self.spec;
            self.spec = Arc::new(JobSpec {
                deterministic: spec.deterministic,
                replicas: spec.replicas,
                module: spec.module.clone(),
                args: spec.args.clone(),
                env: Vec::new(),
                stdin: Vec::new(),
                dirs: Vec::new(),
                limits: spec.limits,
            });
        }
        self.spec_in_record = false;
        self.refused_by = Default::default();
        if let Some(v) = self.verify.take() {
            self.replica_history = v.attempts();
        }
        self.dirs_in_record = !report.dirs.is_empty();
        let report =
            if self.dirs_in_record { Arc::new(JobReport { dirs: Vec::new(), ..(*report).clone() }) } else { report };
        if let Some(log) = self.log.take() {
            log.finish(report.clone(), self.dirs_in_record);
        }
        self.result = Some(report);
        has_input
    }

    /// As `grid-cli status` shows it; `waiting` is why a queued job waits.
    pub fn summary(&self, id: &JobId, waiting: impl FnOnce() -> String) -> JobSummary {
        let result = self.result.as_deref().cloned();
        let replicas_running = self.verify.as_ref().is_some_and(|v| v.running() > 0);
        let state = match (self.phase, &result) {
            (Phase::Queued, _) if replicas_running => JobState::Running,
            (Phase::Queued, _) => JobState::Queued,
            (Phase::Running(_) | Phase::Awaiting, _) => JobState::Running,
            (Phase::Finished, Some(r)) => JobState::finished(r),
            (Phase::Finished, None) => JobState::Failed,
        };
        JobSummary {
            id: id.clone(),
            state,
            tenant: self.submission.tenant.clone(),
            priority: self.submission.priority,
            waiting: match self.compiling_now() {
                true => Some(grid_core::COMPILING.to_owned()),
                false => (self.phase == Phase::Queued).then(waiting),
            },
            node: self.node_name.clone(),
            attempts: self.attempts,
            submitted_ms: self.submitted_ms,
            started_ms: (self.started_ms > 0).then_some(self.started_ms),
            finished_ms: (self.finished_ms > 0).then_some(self.finished_ms),
            module: self.spec.module.clone(),
            args: self.spec.args.clone(),
            result,
            history: Vec::new(),
            quorum: self.verify.as_ref().map_or(
                self.replica_history.iter().filter(|a| a.verdict == Some(grid_core::Verdict::Agreed)).count() as u32,
                |v| v.quorum,
            ),
            replicas: match &self.verify {
                Some(v) => v.attempts(),
                None => self.replica_history.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{node, output};
    use crate::model::ToNode;
    use crate::record::MemoryStore;
    use crate::state::LiveState;
    use grid_core::{Limits, MappedDir, Outcome, OutputStream};
    use tokio::sync::mpsc;

    fn spec(output: u64) -> JobSpec {
        JobSpec { limits: Limits { output, ..Limits::default() }, ..crate::fixtures::spec(&["app"]) }
    }

    fn live() -> (Arc<LiveState>, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        (Arc::new(LiveState::new(store.clone(), 3)), store)
    }

    fn assigned(rx: &mut mpsc::UnboundedReceiver<ToNode>) -> (JobId, Arc<JobSpec>) {
        match rx.try_recv() {
            Ok(ToNode::Assign(id, spec)) => (id, spec),
            other => panic!("expected an assignment, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn output_past_the_limit_ends_the_job_and_keeps_only_the_limit() {
        let (live, store) = live();
        let (a, mut rx) = live.register_node(node("a")).unwrap();
        let id = live.submit(spec(1000), Submission::default()).await.unwrap();
        assigned(&mut rx);
        live.job_output(a, &id, OutputStream::Stdout, vec![b'x'; 600]);
        live.job_output(a, &id, OutputStream::Stderr, vec![b'y'; 600]);
        assert!(matches!(rx.try_recv(), Ok(ToNode::Cancel(j)) if j == id), "the node was not told to stop");
        // What the node sends later is not the job's any more.
        live.job_output(a, &id, OutputStream::Stdout, vec![b'z'; 10]);
        live.job_finished(a, &id, JobReport::before_start(Outcome::Exited(0), "a", &Limits::default()));
        let summary = live.summary(&id).unwrap();
        assert_eq!(summary.state, JobState::Failed);
        assert_eq!(summary.result.unwrap().outcome, Outcome::OutputLimit);
        let kept: usize = store.output_of(&id).unwrap().iter().map(|(_, d)| d.len()).sum();
        assert_eq!(kept, 1000);
        let events = crate::fixtures::events(&live, &id).await;
        assert_eq!(output(&events), [vec![b'x'; 600], vec![b'y'; 400]].concat());
        assert!(matches!(events.last(), Some(JobEvent::Finished(r)) if r.outcome == Outcome::OutputLimit));
        assert_eq!(live.nodes()[0].slots_used, 0, "the node's slot was not released");
        // The freed slot takes the next job.
        let next = live.submit(spec(1000), Submission::default()).await.unwrap();
        assert_eq!(assigned(&mut rx).0, next);
    }

    #[tokio::test]
    async fn a_watcher_behind_the_window_gets_every_byte_in_order() {
        let (live, _store) = live();
        let (a, mut rx) = live.register_node(node("a")).unwrap();
        let id = live.submit(spec(64 << 20), Submission::default()).await.unwrap();
        assigned(&mut rx);
        let mut watch = live.watch(&id).unwrap();
        let mut sent = Vec::new();
        // 3 MiB in chunks of several sizes, one larger than a chunk kept.
        for i in 0..48u32 {
            let len = if i == 7 { 300 << 10 } else { 60 << 10 };
            let chunk: Vec<u8> = (0..len as u32).map(|b| (b.wrapping_mul(7) ^ i) as u8).collect();
            live.job_output(a, &id, OutputStream::Stdout, chunk.clone());
            sent.extend(chunk);
        }
        live.job_finished(a, &id, JobReport::before_start(Outcome::Exited(0), "a", &Limits::default()));
        let mut got = Vec::new();
        while let Some(batch) = watch.next().await.unwrap() {
            assert!(output(&batch).len() <= crate::watch::PAGE);
            got.extend(batch);
        }
        assert!(output(&got) == sent, "{} bytes of {} came, or out of order", output(&got).len(), sent.len());
        assert!(matches!(got.first(), Some(JobEvent::Assigned(_))));
        assert!(matches!(got.last(), Some(JobEvent::Finished(_))));
        // A new watcher of the ended job reads it all from the record.
        assert!(output(&crate::fixtures::events(&live, &id).await) == sent);
    }

    #[tokio::test]
    async fn a_finished_job_holds_no_output_input_or_dirs() {
        let (live, store) = live();
        let (a, mut rx) = live.register_node(node("a")).unwrap();
        let id = live.submit(spec(64 << 20), Submission::default()).await.unwrap();
        assigned(&mut rx);
        live.job_output(a, &id, OutputStream::Stdout, vec![1; 200 << 10]);
        let dirs = vec![MappedDir { guest_path: "/out".into(), archive: vec![9; 4096] }];
        let report =
            JobReport { dirs: dirs.clone(), ..JobReport::before_start(Outcome::Exited(0), "a", &Limits::default()) };
        live.job_finished(a, &id, report);
        let job = live.job_for_test(&id, |j| {
            assert!(j.log.is_none(), "the finished job still holds its event log");
            assert!(j.result.as_ref().unwrap().dirs.is_empty(), "the finished job holds its dirs");
            assert!(j.spec.stdin.is_empty() && j.spec.env.is_empty());
        });
        assert!(job);
        assert!(live.summary(&id).unwrap().result.unwrap().dirs.is_empty());
        // Watchers get the output and the dirs from the record.
        let events = crate::fixtures::events(&live, &id).await;
        assert_eq!(output(&events).len(), 200 << 10);
        assert!(matches!(events.last(), Some(JobEvent::Finished(r)) if r.dirs == dirs));
        assert_eq!(store.job(&id).unwrap().unwrap().result.unwrap().dirs, dirs);
    }

    #[tokio::test]
    async fn a_queued_job_s_stdin_stays_in_the_record() {
        let (live, store) = live();
        let stdin: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let big = JobSpec { stdin: stdin.clone(), env: vec![("K".into(), "V".into())], ..spec(1 << 20) };
        let id = live.submit(big.clone(), Submission::default()).await.unwrap();
        live.job_for_test(&id, |j| {
            assert!(j.spec_in_record && j.spec.stdin.is_empty(), "a queued job holds its stdin");
            assert_eq!(j.spec.env, big.env, "small args and env stay");
        });
        assert!(live.spec_in_record(&id));
        assert_eq!(store.job(&id).unwrap().unwrap().spec, big);
        // A tiny job stays whole, so sending it reads nothing.
        let tiny =
            live.submit(JobSpec { stdin: b"hi".to_vec(), ..spec(1 << 20) }, Submission::default()).await.unwrap();
        assert!(!live.spec_in_record(&tiny));
    }

    /// A store that counts its reads and output writes.
    #[derive(Default)]
    struct Counting {
        inner: MemoryStore,
        reads: std::sync::atomic::AtomicUsize,
        outputs: std::sync::atomic::AtomicUsize,
    }

    impl Counting {
        fn read(&self) {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    impl JobStore for Counting {
        fn insert(
            &self,
            job: crate::record::NewJob<'_>,
        ) -> futures::future::BoxFuture<'static, crate::Result<crate::record::Inserted>> {
            self.inner.insert(job)
        }
        fn flush(&self) -> futures::future::BoxFuture<'static, crate::Result<()>> {
            self.read();
            self.inner.flush()
        }
        fn output_extent(&self, id: &str) -> crate::Result<crate::record::OutputExtent> {
            self.read();
            self.inner.output_extent(id)
        }
        fn running(&self, id: &str, node: &str, attempts: u32) {
            self.inner.running(id, node, attempts)
        }
        fn requeued(&self, id: &str, attempts: u32, end: grid_core::AttemptEnd) {
            self.inner.requeued(id, attempts, end)
        }
        fn replica(
            &self,
            id: &str,
            number: u32,
            end: Option<grid_core::AttemptEnd>,
            digest: Option<&str>,
            verdict: Option<Verdict>,
        ) {
            self.inner.replica(id, number, end, digest, verdict)
        }
        fn billed(&self, tenant: &str, runs: u64, fuel: u64) {
            self.inner.billed(tenant, runs, fuel)
        }
        fn output(&self, id: &str, seq: u64, stream: OutputStream, data: Vec<u8>) {
            self.outputs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.output(id, seq, stream, data)
        }
        fn finished(
            &self,
            id: &str,
            report: &JobReport,
            drop_input: bool,
            end: grid_core::AttemptEnd,
            ran: Option<&str>,
        ) {
            self.inner.finished(id, report, drop_input, end, ran)
        }
        fn tenant_use(&self) -> crate::Result<Vec<crate::model::TenantUse>> {
            self.inner.tenant_use()
        }
        fn job(&self, id: &str) -> crate::Result<Option<crate::model::StoredJob>> {
            self.read();
            self.inner.job(id)
        }
        fn job_with_key(&self, key: &str) -> crate::Result<Option<(JobId, Option<String>)>> {
            self.inner.job_with_key(key)
        }
        fn attempts(&self, id: &str) -> crate::Result<Vec<grid_core::Attempt>> {
            self.inner.attempts(id)
        }
        fn position(&self, id: &str) -> crate::Result<Option<u64>> {
            self.inner.position(id)
        }
        fn list(
            &self,
            filter: &crate::record::Filter,
            before: Option<u64>,
            limit: usize,
        ) -> crate::Result<crate::record::Page> {
            self.inner.list(filter, before, limit)
        }
        fn output_page(&self, id: &str, from: u64, max: usize) -> crate::Result<Vec<crate::record::OutputChunk>> {
            self.read();
            self.inner.output_page(id, from, max)
        }
        fn unfinished(&self) -> crate::Result<Vec<crate::record::Unfinished>> {
            self.inner.unfinished()
        }
        fn newest_id(&self) -> crate::Result<Option<JobId>> {
            self.inner.newest_id()
        }
        fn prune(&self, finished_before_ms: u64) -> futures::future::BoxFuture<'static, crate::Result<usize>> {
            self.inner.prune(finished_before_ms)
        }
        fn nodes_seen(&self, nodes: Vec<crate::model::NodeRecord>) {
            self.inner.nodes_seen(nodes)
        }
        fn node(&self, name: &str) -> crate::Result<Option<crate::model::NodeRecord>> {
            self.inner.node(name)
        }
        fn nodes(&self, limit: usize) -> crate::Result<Vec<crate::model::NodeRecord>> {
            self.inner.nodes(limit)
        }
    }

    #[tokio::test]
    async fn a_tiny_job_is_watched_from_memory_with_one_output_row() {
        let store = Arc::new(Counting::default());
        let live = Arc::new(LiveState::new(store.clone(), 3));
        let (a, mut rx) = live.register_node(node("a")).unwrap();
        let id = live.submit(spec(1 << 20), Submission::default()).await.unwrap();
        let mut watch = live.watch(&id).unwrap();
        assigned(&mut rx);
        live.job_output(a, &id, OutputStream::Stdout, b"hello\n".to_vec());
        live.job_finished(a, &id, JobReport::before_start(Outcome::Exited(0), "a", &Limits::default()));
        let mut all = Vec::new();
        while let Some(batch) = watch.next().await.unwrap() {
            all.extend(batch);
        }
        assert_eq!(output(&all), b"hello\n");
        assert_eq!(store.reads.load(std::sync::atomic::Ordering::Relaxed), 0, "the record was read");
        assert_eq!(store.outputs.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
