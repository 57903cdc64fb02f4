//! The master's live state: jobs, the queue and connected nodes behind one
//! lock, and the transitions that events from clients and nodes cause.
//! Every change is written through the job store; `dispatch` plans from
//! memory and then applies the plan. The `rpc` module turns this into gRPC.

use crate::dispatch::{self, Assignment};
use crate::error::{MasterError, Result};
use crate::jobs::{Job, Phase};
use crate::model::{Heartbeat, JobId, JobSummary, NodeId, NodeRegistration, NodeSummary, StoredJob, ToNode, now_ms};
use crate::nodes::Node;
use crate::queue::JobQueue;
use crate::record::{Inserted, JobStore, MemoryStore, NewJob, OUTPUT_KEPT};
use crate::watch::JobWatch;
use grid_core::{JobReport, JobSpec, JobState, Outcome, OutputStream, Submission};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

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

/// The master's live state, shared by every connection.
pub struct LiveState {
    inner: Mutex<Inner>,
    id_counter: AtomicU64,
    id_prefix: u64,
    store: Arc<dyn JobStore>,
    max_attempts: u32,
}

impl Default for LiveState {
    fn default() -> Self {
        Self::new(Arc::new(MemoryStore::new()), 3)
    }
}

impl LiveState {
    /// A live state recording to `store`, running a job at most
    /// `max_attempts` times when nodes are lost under it.
    pub fn new(store: Arc<dyn JobStore>, max_attempts: u32) -> Self {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Self {
            inner: Mutex::default(),
            id_counter: AtomicU64::new(0),
            id_prefix: millis,
            store,
            max_attempts: max_attempts.max(1),
        }
    }

    /// The job record this state writes through.
    pub fn store(&self) -> Arc<dyn JobStore> {
        self.store.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes back the jobs the record holds unfinished: queued ones wait
    /// again, and ones that were running start another attempt (or end, if
    /// that was their last).
    pub fn recover(&self, jobs: Vec<StoredJob>) -> usize {
        let mut inner = self.lock();
        let n = jobs.len();
        for stored in jobs {
            let id = stored.id.clone();
            let was_running = stored.state == JobState::Running;
            let submission = Submission { key: stored.key, tenant: stored.tenant, priority: stored.priority };
            let job = Job::new(stored.spec, submission, stored.submitted_ms, stored.attempts, stored.node);
            if let Some(key) = &job.submission.key {
                inner.keys.insert(key.clone(), id.clone());
            }
            let out_of_attempts = was_running && job.attempts >= self.max_attempts;
            let limits = job.spec.limits;
            inner.jobs.insert(id.clone(), job);
            if out_of_attempts {
                let why = "the master restarted during its last attempt".to_owned();
                self.finish(&mut inner, &id, JobReport::before_start(Outcome::NodeError(why), "", &limits));
                continue;
            }
            let job = inner.jobs.get_mut(&id).expect("just inserted");
            if was_running {
                self.store.requeued(&id, job.attempts);
                job.requeue(true);
            }
            let (priority, tenant) = (job.submission.priority, job.submission.tenant.clone());
            inner.queue.push_back(id, priority, &tenant);
        }
        self.dispatch(&mut inner);
        n
    }

    /// The job already submitted with idempotency key `key`, if memory has it.
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

    /// A fresh job id.
    pub fn next_id(&self) -> JobId {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        format!("{:011x}{:05x}", self.id_prefix & 0xfff_ffff_ffff, n & 0xf_ffff)
    }

    /// Records a job and queues it; returns its id, or the id of the job
    /// that already holds its idempotency key. Refuses a job that no
    /// connected node would take. Once the record has the job it is queued,
    /// even if the caller goes away meanwhile.
    pub async fn submit(self: &Arc<Self>, spec: JobSpec, submission: Submission) -> Result<JobId> {
        if let Some(key) = &submission.key {
            if let Some(id) = self.job_with_key(key) {
                return Ok(id);
            }
            let (store, key) = (self.store.clone(), key.clone());
            if let Some(id) = blocking(move || store.job_with_key(&key)).await? {
                return Ok(id);
            }
        }
        self.admissible(&spec)?;
        let id = self.next_id();
        let submitted_ms = now_ms();
        let recorded = self.store.insert(NewJob { id: &id, submission: &submission, spec: &spec, submitted_ms });
        let this = self.clone();
        let queued = tokio::spawn(async move {
            match recorded.await? {
                Inserted::New => {
                    this.enqueue(id.clone(), spec, submission, submitted_ms);
                    Ok(id)
                }
                Inserted::Existing(id) => Ok(id),
            }
        });
        queued.await.map_err(|e| MasterError::Internal(format!("submission task failed: {e}")))?
    }

    /// Queues a job already recorded as `id`.
    fn enqueue(&self, id: JobId, spec: JobSpec, submission: Submission, submitted_ms: u64) {
        let mut inner = self.lock();
        let job = Job::new(spec, submission, submitted_ms, 0, String::new());
        if let Some(key) = &job.submission.key {
            inner.keys.insert(key.clone(), id.clone());
        }
        inner.queue.push_back(id.clone(), job.submission.priority, job.tenant());
        inner.jobs.insert(id, job);
        self.dispatch(&mut inner);
    }

    /// A job in memory, as `grid-cli status` shows it.
    pub fn summary(&self, id: &str) -> Option<JobSummary> {
        let inner = self.lock();
        let (id, job) = inner.jobs.get_key_value(id)?;
        Some(job.summary(id, || dispatch::waiting_reason(&inner.nodes, job)))
    }

    /// Of the jobs `ids`, those still in memory, each as a listing shows it
    /// ([`crate::listing::summary`]), in the order of `ids`: one lookup per
    /// id, never a walk over every job.
    pub fn summaries(&self, ids: &[JobId]) -> Vec<Option<JobSummary>> {
        let inner = self.lock();
        let live = |id: &JobId| {
            let job = inner.jobs.get(id)?;
            Some(crate::listing::summary(job.summary(id, || dispatch::waiting_reason(&inner.nodes, job))))
        };
        ids.iter().map(live).collect()
    }

    /// Follows a job's events from the first.
    pub fn watch(&self, id: &str) -> Result<JobWatch> {
        let inner = self.lock();
        let job = inner.jobs.get(id).ok_or_else(|| MasterError::JobNotFound(id.to_owned()))?;
        Ok(job.watch())
    }

    /// Cancels a job that has not finished. Returns whether it was still
    /// running or queued.
    pub fn cancel(&self, id: &str) -> Result<bool> {
        let mut inner = self.lock();
        let job = inner.jobs.get_mut(id).ok_or_else(|| MasterError::JobNotFound(id.to_owned()))?;
        let limits = job.spec.limits;
        match job.phase {
            Phase::Finished => Ok(false),
            Phase::Queued => {
                inner.queue.remove(id);
                self.finish(&mut inner, id, JobReport::before_start(Outcome::Cancelled, "", &limits));
                Ok(true)
            }
            Phase::Running(node) => {
                job.cancel_requested = true;
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
        inner.nodes.insert(id, Node::new(reg, tx));
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
            n.set_fuel(beat.fuel_available);
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
    pub fn job_output(&self, node: NodeId, job: &str, stream: OutputStream, data: Vec<u8>) {
        let mut inner = self.lock();
        if let Some(j) = inner.jobs.get_mut(job).filter(|j| j.runs_on(node)) {
            // The record keeps the first OUTPUT_KEPT bytes; watchers get all.
            let (seq, bytes) = j.recorded;
            let room = OUTPUT_KEPT.saturating_sub(bytes).min(data.len());
            if room > 0 {
                j.recorded = (seq + 1, bytes + room);
                self.store.output(job, seq, stream, data[..room].to_vec());
            }
            j.log.push(crate::model::JobEvent::Output(stream, data));
        }
    }

    /// A node finished one of its jobs.
    pub fn job_finished(&self, node: NodeId, job: &str, report: JobReport) {
        let mut inner = self.lock();
        let Some(j) = inner.jobs.get(job).filter(|j| j.runs_on(node)) else { return };
        let spec = j.spec.clone();
        if let Some(n) = inner.nodes.get_mut(&node) {
            n.release(job, &spec, Some(report.fuel_used));
            n.jobs_run += 1;
        }
        self.finish(&mut inner, job, report);
        self.dispatch(&mut inner);
    }

    /// A node refused a job: it goes back to the front of the queue.
    pub fn job_rejected(&self, node: NodeId, job: &str, reason: &str) {
        let mut inner = self.lock();
        let Some(j) = inner.jobs.get(job).filter(|j| j.runs_on(node)) else { return };
        tracing::warn!(job, node, reason, "node refused job; requeued");
        let spec = j.spec.clone();
        if let Some(n) = inner.nodes.get_mut(&node) {
            n.release(job, &spec, None);
        }
        let j = inner.jobs.get_mut(job).expect("checked above");
        if j.cancel_requested {
            self.finish(&mut inner, job, JobReport::before_start(Outcome::Cancelled, "", &spec.limits));
            self.dispatch(&mut inner);
            return;
        }
        j.refused_by.insert(node);
        // One that ran for a while (a node handing jobs back as it shuts
        // down) wrote output that belongs to a void attempt; one refused
        // before it started was not an attempt.
        let started = j.recorded.0 > 0;
        if !started {
            j.attempts = j.attempts.saturating_sub(1);
        }
        j.requeue(started);
        let (attempts, priority, tenant) = (j.attempts, j.submission.priority, j.tenant().to_owned());
        self.store.requeued(job, attempts);
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
                job.lost_on.push(n.reg.name.clone());
                job.requeue(true);
                let (attempts, priority, tenant) = (job.attempts, job.submission.priority, job.tenant().to_owned());
                self.store.requeued(&id, attempts);
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
        let mut out: Vec<_> = inner
            .nodes
            .iter_mut()
            .map(|(id, n)| {
                n.refill(now);
                n.summary(*id, inner.lost_jobs.get(&n.reg.name).copied().unwrap_or(0))
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        out
    }

    /// The number of jobs waiting for a node.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Ends a job: records it, tells its watchers, and counts the nodes it
    /// was lost on if it then ran to its end.
    fn finish(&self, inner: &mut Inner, id: &str, report: JobReport) {
        let Some(job) = inner.jobs.get_mut(id) else { return };
        tracing::info!(job = id, outcome = %report.outcome, fuel = report.fuel_used, "job finished");
        if report.outcome.exit_code().is_some() {
            for name in std::mem::take(&mut job.lost_on) {
                tracing::warn!(node = %name, job = id, "a job lost on this node ran to its end elsewhere");
                *inner.lost_jobs.entry(name).or_default() += 1;
            }
        }
        let job = inner.jobs.get_mut(id).expect("checked above");
        let report = Arc::new(report);
        job.finish(report.clone());
        self.store.finished(id, &job.spec, &report);
        inner.finished.push_back(id.to_owned());
        while inner.finished.len() > FINISHED_KEPT {
            if let Some(old) = inner.finished.pop_front()
                && let Some(job) = inner.jobs.remove(&old)
                && let Some(key) = job.submission.key
            {
                inner.keys.remove(&key);
            }
        }
    }

    /// Sends every queued job that fits somewhere to its best node: plans
    /// from memory, then applies the plan.
    fn dispatch(&self, inner: &mut Inner) {
        let now = Instant::now();
        for n in inner.nodes.values_mut() {
            n.refill(now);
        }
        let plan = dispatch::plan(&inner.queue, &inner.jobs, &inner.nodes);
        for Assignment { job: id, node: node_id } in plan {
            let job = inner.jobs.get_mut(&id).expect("planned job exists");
            let node = inner.nodes.get_mut(&node_id).expect("planned node exists");
            if node.tx.send(ToNode::Assign(id.clone(), job.spec.clone())).is_err() {
                // The session is closing; node_gone will follow. Keep the job.
                continue;
            }
            node.reserve(&id, &job.spec);
            job.assign(node_id, &node.reg.name);
            self.store.running(&id, &node.reg.name, job.attempts);
            inner.queue.remove(&id);
        }
    }
}

/// Runs a blocking read of the record off the async threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| MasterError::Internal(format!("record read failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JobEvent;
    use grid_core::{Capacity, Ceilings, FuelQuota, Limits, ModuleHash};

    fn node(name: &str) -> NodeRegistration {
        NodeRegistration {
            name: name.into(),
            address: String::new(),
            capacity: Capacity {
                slots: 1,
                memory: 1 << 30,
                disk: 1 << 30,
                fuel_quota: FuelQuota { rate_per_hour: 1 << 40, burst: 1 << 40 },
                per_job: Ceilings {
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

    fn live(max_attempts: u32) -> Arc<LiveState> {
        Arc::new(LiveState::new(Arc::new(MemoryStore::new()), max_attempts))
    }

    async fn submit(live: &Arc<LiveState>, spec: JobSpec) -> Result<JobId> {
        live.submit(spec, Submission::default()).await
    }

    fn assigned(rx: &mut mpsc::UnboundedReceiver<ToNode>) -> Option<JobId> {
        match rx.try_recv() {
            Ok(ToNode::Assign(id, _)) => Some(id),
            _ => None,
        }
    }

    fn finished_events(live: &LiveState, job: &str) -> Vec<Outcome> {
        live.watch(job)
            .unwrap()
            .now()
            .into_iter()
            .filter_map(|e| match e {
                JobEvent::Finished(r) => Some(r.outcome.clone()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_job_no_node_would_take_is_refused_at_once() {
        let live = live(3);
        let huge = JobSpec { limits: Limits { fuel: 1 << 50, ..Limits::default() }, ..spec() };
        // With no node yet, it waits for one.
        submit(&live, huge.clone()).await.unwrap();
        let (_a, _rx) = live.register_node(node("a"));
        let err = submit(&live, huge).await.unwrap_err().to_string();
        assert!(err.contains("no connected node takes this job") && err.contains("fuel"), "{err}");
    }

    #[tokio::test]
    async fn queued_jobs_wait_for_a_free_slot() {
        let live = live(3);
        let (a, mut rx) = live.register_node(node("a"));
        let first = submit(&live, spec()).await.unwrap();
        let second = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(first.clone()));
        assert_eq!(assigned(&mut rx), None, "a one-slot node got two jobs");
        assert_eq!(live.queued(), 1);
        assert_eq!(live.summary(&second).unwrap().waiting.as_deref(), Some("waiting: every slot is busy"));
        live.job_finished(a, &first, JobReport::before_start(Outcome::Exited(0), "a", &Limits::default()));
        assert_eq!(assigned(&mut rx), Some(second));
    }

    #[tokio::test]
    async fn a_refused_job_waits_for_the_refusing_node_s_next_heartbeat() {
        let live = live(3);
        let (a, mut rx) = live.register_node(node("a"));
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        live.job_rejected(a, &job, "busy");
        assert_eq!(assigned(&mut rx), None, "sent straight back to the node that refused it");
        live.heartbeat(a, Heartbeat { fuel_available: 1 << 40, ..Heartbeat::default() });
        assert_eq!(assigned(&mut rx), Some(job));
    }

    #[tokio::test]
    async fn a_cancelled_job_that_comes_back_is_not_run_again() {
        let live = live(3);
        let (a, mut rx) = live.register_node(node("a"));
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        assert!(live.cancel(&job).unwrap());
        assert!(matches!(rx.try_recv(), Ok(ToNode::Cancel(id)) if id == job));
        live.job_rejected(a, &job, "shutting down");
        live.heartbeat(a, Heartbeat { fuel_available: 1 << 40, ..Heartbeat::default() });
        assert_eq!(assigned(&mut rx), None);
        assert_eq!(finished_events(&live, &job), [Outcome::Cancelled]);
    }

    #[tokio::test]
    async fn a_lost_node_s_job_runs_again_elsewhere_and_finishes_once() {
        let live = live(2);
        let (a, mut rx_a) = live.register_node(node("a"));
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx_a), Some(job.clone()));
        live.node_gone(a, "stream closed");
        let (b, mut rx_b) = live.register_node(node("b"));
        assert_eq!(assigned(&mut rx_b), Some(job.clone()), "the job did not run again");
        // The lost node's late report is ignored; the new node's counts.
        live.job_finished(a, &job, JobReport::before_start(Outcome::Exited(1), "a", &Limits::default()));
        live.job_finished(b, &job, JobReport::before_start(Outcome::Exited(0), "b", &Limits::default()));
        let summary = live.summary(&job).unwrap();
        assert_eq!((summary.state, summary.attempts, summary.node.as_str()), (JobState::Succeeded, 2, "b"));
        assert_eq!(finished_events(&live, &job), [Outcome::Exited(0)]);
        assert_eq!(live.nodes()[0].jobs_run, 1);
    }

    #[tokio::test]
    async fn a_job_ends_when_its_attempts_run_out() {
        let live = live(1);
        let (a, mut rx) = live.register_node(node("a"));
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        live.node_gone(a, "missed heartbeats");
        let summary = live.summary(&job).unwrap();
        assert_eq!(summary.state, JobState::Failed);
        assert!(summary.result.unwrap().reason().contains("attempt 1 of 1"));
    }

    #[tokio::test]
    async fn every_transition_is_written_through_the_store() {
        let store = Arc::new(MemoryStore::new());
        let live = Arc::new(LiveState::new(store.clone(), 3));
        let (a, mut rx) = live.register_node(node("a"));
        let keyed = Submission { key: Some("k".into()), tenant: "t".into(), priority: 1 };
        let job = live.submit(spec(), keyed.clone()).await.unwrap();
        assert_eq!(live.submit(spec(), keyed).await.unwrap(), job, "a known key yields its job");
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        assert_eq!(store.job(&job).unwrap().unwrap().state, JobState::Running);
        live.job_output(a, &job, OutputStream::Stdout, b"hi".to_vec());
        live.job_finished(a, &job, JobReport::before_start(Outcome::Exited(0), "a", &Limits::default()));
        let stored = store.job(&job).unwrap().unwrap();
        assert_eq!((stored.state, stored.attempts, stored.node.as_str()), (JobState::Succeeded, 1, "a"));
        assert_eq!(store.output_of(&job).unwrap(), [(OutputStream::Stdout, b"hi".to_vec())]);
    }

    #[tokio::test]
    async fn recovery_runs_interrupted_jobs_again_and_ends_those_out_of_attempts() {
        let store = Arc::new(MemoryStore::new());
        let before = Arc::new(LiveState::new(store.clone(), 2));
        let (_a, _rx) = before.register_node(node("a"));
        let running = submit(&before, spec()).await.unwrap();
        let queued = submit(&before, spec()).await.unwrap();
        let after = LiveState::new(store.clone(), 2);
        assert_eq!(after.recover(store.unfinished().unwrap()), 2);
        let (_b, mut rx) = after.register_node(node("b"));
        assert_eq!(assigned(&mut rx), Some(running.clone()), "the interrupted job runs first");
        assert_eq!(after.summary(&running).unwrap().attempts, 2);
        assert_eq!(after.summary(&queued).unwrap().state, JobState::Queued);
        // A master that restarts during the last attempt ends the job.
        let again = LiveState::new(store.clone(), 2);
        again.recover(store.unfinished().unwrap());
        let ended = again.summary(&running).unwrap();
        assert_eq!(ended.state, JobState::Failed);
        assert!(ended.result.unwrap().reason().contains("restarted during its last attempt"));
    }
}
