//! The master's live state: jobs, the queue and connected nodes behind one
//! lock, and the transitions that events from clients and nodes cause.
//! Every change is written through the job store; `dispatch` plans from
//! memory and then applies the plan. The `rpc` module turns this into gRPC.

use crate::dispatch::{self, Assignment};
use crate::error::{MasterError, Result};
use crate::history::{NODES_LISTED, NodeHistory};
use crate::ids::IdGenerator;
use crate::jobs::{Job, Phase};
use crate::model::{Heartbeat, JobId, JobSummary, NodeId, NodeRecord, NodeRegistration, NodeSummary, ToNode, now_ms};
use crate::nodes::Node;
use crate::queue::{JobQueue, Running};
use crate::record::{Inserted, JobStore, MemoryStore, NewJob, Unfinished, light_spec};
use crate::tenants::{TenantUsage, Tenants};
use crate::trust::VerifyPolicy;
use crate::watch::{CHUNK, JobWatch};
use grid_core::text::cut;
use grid_core::{AttemptEnd, JobReport, JobSpec, JobState, NodeState, Outcome, OutputStream, Submission, TenantQuota};
use std::collections::{HashMap, VecDeque};

mod reattach;
mod replicas;
pub use reattach::{MAX_HELD, REATTACH_WINDOW};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Finished jobs kept in memory; older ones are served from the record.
pub const FINISHED_KEPT: usize = 2_000;
/// The longest reason or message from a node that is kept or logged.
pub const MAX_REASON: usize = 256;
/// The longest message of a job's outcome that is kept.
pub const MAX_MESSAGE: usize = 4096;
/// The default time a running job gets past its timeout before its node
/// loses it.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// Inputs (stdin and directories) up to this size are fingerprinted on the
/// async thread that takes the submission; larger ones on a blocking one.
const HASHED_INLINE: usize = 1 << 20;
/// The most plans one dispatch makes: each places a verified job's
/// replica at most once, so one needing N replicas takes N plans.
const MAX_PLANS: usize = 8;
/// The default bound on jobs waiting for a node.
pub const DEFAULT_MAX_QUEUED: usize = 1_000_000;

#[derive(Default)]
struct Inner {
    jobs: HashMap<JobId, Job>,
    keys: HashMap<String, JobId>,
    /// Per node name: jobs run, fuel burned, jobs lost (a node that keeps
    /// losing jobs shows here), first and last seen.
    history: NodeHistory,
    /// The master is shutting down: nothing is dispatched any more.
    closing: bool,
    queue: JobQueue<JobId>,
    finished: VecDeque<JobId>,
    nodes: HashMap<NodeId, Node>,
    next_node: NodeId,
    /// Jobs running per tenant, for the queue's turns: counted as jobs
    /// start and stop, never by walking the running jobs.
    running: Running,
    /// Jobs looked at by every dispatch so far: what dispatching costs.
    examined: u64,
    /// Tenants' quotas, fuel buckets and counts.
    tenants: Tenants,
    /// Per tenant, submissions let in and not yet queued: they count
    /// against its most queued jobs.
    admitted: HashMap<String, usize>,
    /// The last dispatch skipped a tenant for want of fuel: time alone may
    /// let it start a job.
    fuel_held: bool,
    /// Jobs waiting for their node to come back with them: until when, and
    /// how their attempt ends if it does not.
    awaiting: HashMap<JobId, (Instant, AttemptEnd)>,
}

impl Inner {
    /// Job `id` stopped running on its node: finished (its node reported
    /// `burned` fuel), handed back or lost.
    fn stopped_running(&mut self, id: &str, burned: Option<u64>) {
        if let Some(job) = self.jobs.get(id) {
            self.running.stopped(job.tenant());
            self.tenants.stopped(job.tenant(), job.spec.limits.fuel, burned, Instant::now());
        }
    }

    /// The master takes job `id` back from `node`: the node is told to stop
    /// it, what it held there is freed, and it no longer counts as running.
    fn stop_on(&mut self, node: NodeId, id: &str) {
        let Some(spec) = self.jobs.get(id).map(|j| j.spec.clone()) else { return };
        if let Some(n) = self.nodes.get_mut(&node) {
            let _ = n.tx.send(ToNode::Cancel(id.to_owned()));
            n.release(id, &spec, None);
        }
        self.stopped_running(id, None);
    }

    /// Job `id` (or a replica of it) on `node` wrote past its output limit:
    /// it is stopped there, and since what it burned is unknown and it was
    /// the job's own doing, its tenant's bucket pays its whole fuel limit,
    /// so that output past the limit is no way to burn fuel unbilled.
    fn stop_over_output(&mut self, node: NodeId, id: &str) {
        self.stop_on(node, id);
        if let Some(job) = self.jobs.get(id) {
            let (tenant, fuel) = (job.tenant().to_owned(), job.spec.limits.fuel);
            self.tenants.bill(&tenant, fuel, Instant::now());
        }
    }

    /// Why queued `job` waits, as of now.
    fn waiting_reason(&self, job: &Job) -> String {
        dispatch::waiting_reason(&self.nodes, job, &self.running, &self.tenants, Instant::now())
    }

    /// A submission of `tenant` let in is queued or came to nothing.
    fn unadmit(&mut self, tenant: &str) {
        if let Some(n) = self.admitted.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                self.admitted.remove(tenant);
            }
        }
    }
}

/// A node's session, just registered.
pub struct Registered {
    /// The session's id.
    pub id: NodeId,
    /// What the master tells the node.
    pub orders: mpsc::UnboundedReceiver<ToNode>,
    /// The jobs the node held that run on with it, each with the output
    /// bytes the record holds of it.
    pub resumed: Vec<(JobId, u64)>,
}

/// The master's live state, shared by every connection.
pub struct LiveState {
    inner: Mutex<Inner>,
    ids: IdGenerator,
    store: Arc<dyn JobStore>,
    max_attempts: u32,
    /// How long past its timeout a running job may take before its node
    /// loses it.
    grace: Duration,
    /// The most jobs that may wait for a node.
    max_queued: usize,
    /// How nodes' results are verified.
    policy: VerifyPolicy,
    /// Where replicas' output is kept aside until a quorum decides.
    spool_dir: Option<Arc<std::path::Path>>,
    /// Counters and histograms for `/metrics`.
    metrics: Arc<crate::metrics::Metrics>,
    /// Recent samples for the dashboard's charts.
    series: Arc<crate::series::Series>,
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
        let newest = store.newest_id().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the newest job id; new ids start from the clock");
            None
        });
        let mut inner = Inner::default();
        match store.tenant_use() {
            Ok(used) => inner.tenants.recall(used),
            Err(e) => tracing::warn!(error = %e, "cannot read what tenants have run; their counts start from zero"),
        }
        Self {
            inner: Mutex::new(inner),
            ids: IdGenerator::after(newest.as_deref()),
            store,
            max_attempts: max_attempts.max(1),
            grace: DEFAULT_GRACE,
            max_queued: DEFAULT_MAX_QUEUED,
            policy: VerifyPolicy::off(),
            spool_dir: None,
            metrics: Arc::default(),
            series: Arc::default(),
        }
    }

    /// The master's metrics.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The recent samples the dashboard draws.
    pub fn series(&self) -> &Arc<crate::series::Series> {
        &self.series
    }

    /// The same state with a running job's `grace` past its timeout, and at
    /// most `max_queued` jobs waiting.
    pub fn with_bounds(self, grace: Duration, max_queued: usize) -> Self {
        Self { grace, max_queued, ..self }
    }

    /// The same state verifying nodes' results as `policy` says.
    pub fn with_policy(self, policy: VerifyPolicy) -> Self {
        Self { policy, ..self }
    }

    /// The same state keeping replicas' output aside in files in `dir`
    /// (the system's temporary dir otherwise).
    pub fn with_spool_dir(self, dir: &std::path::Path) -> Self {
        Self { spool_dir: Some(dir.into()), ..self }
    }

    /// The same state serving the lease's metrics with its own.
    pub fn with_lease_metrics(mut self, lease: &crate::pg::lease_metrics::LeaseMetrics) -> Self {
        Arc::get_mut(&mut self.metrics).expect("the metrics are not shared yet").register_lease(lease);
        self
    }

    /// How nodes' results are verified.
    pub fn policy(&self) -> VerifyPolicy {
        self.policy
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
    pub fn recover(&self, jobs: Vec<Unfinished>) -> usize {
        // A job that ran on a node (once) waits for that node to come back
        // with it, from the output the record holds.
        let mut extents = HashMap::new();
        for Unfinished { job, .. } in &jobs {
            if job.state == JobState::Running && job.spec.replicas < 2 && !job.node.is_empty() {
                match self.store.output_extent(&job.id) {
                    Ok(extent) => {
                        extents.insert(job.id.clone(), extent);
                    }
                    Err(e) => tracing::warn!(job = %job.id, error = %e, "cannot read the job's output; it runs again"),
                }
            }
        }
        let mut inner = self.lock();
        let n = jobs.len();
        for Unfinished { job: stored, spec_in_record } in jobs {
            let id = stored.id.clone();
            let was_running = stored.state == JobState::Running;
            let submission = Submission { key: stored.key, tenant: stored.tenant, priority: stored.priority };
            let (spec, attempts, ms) = (stored.spec, stored.attempts, stored.submitted_ms);
            let mut job = Job::new(spec, spec_in_record, submission, ms, attempts, stored.node);
            job.fingerprint = stored.fingerprint.map(String::into_boxed_str);
            job.started_ms = stored.started_ms.unwrap_or(0);
            if let Some(key) = &job.submission.key {
                inner.keys.insert(key.clone(), id.clone());
            }
            // Each replica of a job run on several nodes is an attempt of its
            // own: it may have run as many as its replicas times the bound.
            let bound = if job.spec.replicas >= 2 {
                self.max_attempts.saturating_mul(job.spec.replicas)
            } else {
                self.max_attempts
            };
            let out_of_attempts = was_running && job.attempts >= bound;
            let limits = job.spec.limits;
            inner.jobs.insert(id.clone(), job);
            if let Some(extent) = extents.remove(&id) {
                self.await_recovered(&mut inner, &id, extent);
                continue;
            }
            if out_of_attempts {
                let why = "the master restarted during its last attempt".to_owned();
                self.finish(
                    &mut inner,
                    &id,
                    JobReport::before_start(Outcome::NodeError(why), "", &limits),
                    AttemptEnd::Restarted,
                );
                continue;
            }
            let job = inner.jobs.get_mut(&id).expect("just inserted");
            if was_running {
                self.store.requeued(&id, job.attempts, AttemptEnd::Restarted);
                job.requeue(true);
            }
            if job.spec.replicas >= 2 {
                // Its replicas start over: what they had sent is gone.
                job.verify(job.spec.replicas);
            }
            let (priority, tenant) = (job.submission.priority, job.submission.tenant.clone());
            inner.queue.push_back(id, priority, &tenant);
        }
        self.dispatch(&mut inner);
        n
    }

    /// Ends the jobs the record holds unfinished, each as failed with `why`,
    /// running none of them. Returns how many it ended.
    pub fn abandon(&self, jobs: Vec<Unfinished>, why: &str) -> usize {
        let mut inner = self.lock();
        let n = jobs.len();
        for Unfinished { job: stored, spec_in_record } in jobs {
            let submission = Submission { key: stored.key, tenant: stored.tenant, priority: stored.priority };
            let (spec, attempts, ms) = (stored.spec, stored.attempts, stored.submitted_ms);
            let mut job = Job::new(spec, spec_in_record, submission, ms, attempts, stored.node);
            job.fingerprint = stored.fingerprint.map(String::into_boxed_str);
            if let Some(key) = &job.submission.key {
                inner.keys.insert(key.clone(), stored.id.clone());
            }
            let limits = job.spec.limits;
            inner.jobs.insert(stored.id.clone(), job);
            let report = JobReport::before_start(Outcome::NodeError(why.to_owned()), "", &limits);
            self.finish(&mut inner, &stored.id, report, AttemptEnd::Restarted);
        }
        n
    }

    /// The job already submitted with idempotency key `key`, with its
    /// request's fingerprint, if memory has it.
    pub fn job_with_key(&self, key: &str) -> Option<(JobId, Option<Box<str>>)> {
        let inner = self.lock();
        let id = inner.keys.get(key)?;
        Some((id.clone(), inner.jobs.get(id).and_then(|j| j.fingerprint.clone())))
    }

    /// Refuses a job when the queue is full, when it is over a per-job
    /// maximum of its tenant's quota or its tenant has its most jobs
    /// waiting, or when no connected node that serves its tenant would ever
    /// take it (with none connected, every job may wait).
    pub fn admissible(&self, spec: &JobSpec, tenant: &str) -> Result<()> {
        self.check(&self.lock(), spec, tenant)
    }

    fn check(&self, inner: &Inner, spec: &JobSpec, tenant: &str) -> Result<()> {
        let most = self.policy.max_replicas;
        if spec.replicas > most {
            return Err(MasterError::InvalidArgument(format!(
                "{} replicas asked for, over the master's most of {most} (--max-replicas)",
                spec.replicas
            )));
        }
        let queued = inner.queue.len();
        if queued >= self.max_queued {
            return Err(MasterError::Busy(format!(
                "the master's queue is full ({queued} jobs waiting); try again later"
            )));
        }
        if let Some(quota) = inner.tenants.quota(tenant) {
            if let Some(why) = quota.refuse(tenant, &spec.limits) {
                return Err(MasterError::OverQuota(why));
            }
            let waiting = inner.queue.len_of(tenant) + inner.admitted.get(tenant).copied().unwrap_or(0);
            if let Some(max) = quota.max_queued
                && waiting >= max as usize
            {
                return Err(MasterError::TenantFull(format!(
                    "tenant `{}` has {waiting} jobs queued, its most; try again when some have started",
                    cut(tenant, 64)
                )));
            }
        }
        match dispatch::refusal(inner.nodes.values().filter(|n| n.serves(tenant)), &spec.limits) {
            Some(why) => Err(MasterError::NoNodeTakes(why)),
            None => Ok(()),
        }
    }

    /// Sets tenant `tenant`'s quota, or changes it. Jobs it already has
    /// waiting stay; whatever the new quota lets start starts.
    pub fn set_quota(&self, tenant: &str, quota: TenantQuota) {
        let mut inner = self.lock();
        inner.tenants.set_quota(tenant, quota, Instant::now());
        self.dispatch(&mut inner);
    }

    /// Every tenant with a quota, jobs waiting or running, or jobs run (as
    /// the record counts them), by name.
    pub fn tenant_usage(&self) -> Vec<TenantUsage> {
        let inner = self.lock();
        inner.tenants.usage(&inner.queue, &inner.running, Instant::now())
    }

    /// Dispatches again, as of `now`, if the last dispatch left a tenant
    /// waiting for its fuel bucket to refill, which time alone does; costs
    /// nothing otherwise. The master calls it every second.
    pub fn refuel(&self, now: Instant) {
        let mut inner = self.lock();
        if inner.fuel_held {
            self.dispatch_at(&mut inner, now);
        }
    }

    /// A fresh job id.
    pub fn next_id(&self) -> JobId {
        self.ids.next()
    }

    /// Records a job and queues it; returns its id, or the id of the job
    /// that already holds its idempotency key if it was submitted with the
    /// same request (a different request with the same key is refused as a
    /// conflict). Refuses a job that no connected node would take. Once the
    /// record has the job it is queued, even if the caller goes away
    /// meanwhile.
    pub async fn submit(self: &Arc<Self>, spec: JobSpec, submission: Submission) -> Result<JobId> {
        // Only a keyed submission pays for its fingerprint; one with large
        // inputs hashes them off the async threads.
        let (spec, submission, fingerprint) = match &submission.key {
            None => (spec, submission, None),
            Some(_) if spec.stdin.len() + spec.dirs.iter().map(|d| d.archive.len()).sum::<usize>() < HASHED_INLINE => {
                let fp = submission.fingerprint(&spec);
                (spec, submission, Some(fp))
            }
            Some(_) => {
                blocking(move || {
                    let fp = submission.fingerprint(&spec);
                    Ok((spec, submission, Some(fp)))
                })
                .await?
            }
        };
        if let (Some(key), Some(fp)) = (&submission.key, &fingerprint) {
            if let Some((id, held)) = self.job_with_key(key) {
                return same_request(key, id, held.as_deref(), fp);
            }
            let (store, owned) = (self.store.clone(), key.clone());
            if let Some((id, held)) = blocking(move || store.job_with_key(&owned)).await? {
                return same_request(key, id, held.as_deref(), fp);
            }
        }
        {
            let mut inner = self.lock();
            if inner.closing {
                return Err(MasterError::ShuttingDown);
            }
            self.check(&inner, &spec, &submission.tenant)?;
            *inner.admitted.entry(submission.tenant.clone()).or_default() += 1;
        }
        let admitted = Admitted { live: self.clone(), tenant: Some(submission.tenant.clone()) };
        let id = self.next_id();
        let submitted_ms = now_ms();
        let new =
            NewJob { id: &id, submission: &submission, spec: &spec, submitted_ms, fingerprint: fingerprint.as_deref() };
        let recorded = self.store.insert(new);
        let this = self.clone();
        let queued = tokio::spawn(async move {
            let mut admitted = admitted;
            match recorded.await? {
                Inserted::New => {
                    // Queued and no longer counted as let in, in one step.
                    admitted.queued();
                    this.enqueue(id.clone(), spec, submission, submitted_ms, fingerprint);
                    Ok(id)
                }
                Inserted::Existing(id, held) => match (&submission.key, &fingerprint) {
                    (Some(key), Some(fp)) => same_request(key, id, held.as_deref(), fp),
                    _ => Ok(id),
                },
            }
        });
        queued.await.map_err(|e| MasterError::Internal(format!("submission task failed: {e}")))?
    }

    /// Queues a job already recorded as `id`; memory keeps a light spec.
    fn enqueue(&self, id: JobId, spec: JobSpec, submission: Submission, submitted_ms: u64, fp: Option<String>) {
        let (spec, spec_in_record) = light_spec(spec);
        let mut inner = self.lock();
        let mut job = Job::new(spec, spec_in_record, submission, submitted_ms, 0, String::new());
        job.fingerprint = fp.map(String::into_boxed_str);
        if job.spec.replicas >= 2 {
            job.verify(job.spec.replicas);
        }
        if let Some(key) = &job.submission.key {
            inner.keys.insert(key.clone(), id.clone());
        }
        inner.unadmit(job.tenant());
        inner.queue.push_back(id.clone(), job.submission.priority, job.tenant());
        inner.jobs.insert(id, job);
        self.metrics.submitted();
        self.dispatch(&mut inner);
    }

    /// A job in memory, as `grid-cli status` shows it.
    pub fn summary(&self, id: &str) -> Option<JobSummary> {
        let inner = self.lock();
        let (id, job) = inner.jobs.get_key_value(id)?;
        Some(job.summary(id, || inner.waiting_reason(job)))
    }

    /// The tenant of job `id`, if the job is in memory: a lookup, with no
    /// summary built.
    pub fn tenant_of(&self, id: &str) -> Option<String> {
        self.lock().jobs.get(id).map(|j| j.submission.tenant.clone())
    }

    /// Of the jobs `ids`, those still in memory, each as a listing shows it
    /// ([`crate::listing::summary`]), in the order of `ids`: one lookup per
    /// id, never a walk over every job.
    pub fn summaries(&self, ids: &[JobId]) -> Vec<Option<JobSummary>> {
        let inner = self.lock();
        let live = |id: &JobId| {
            let job = inner.jobs.get(id)?;
            Some(crate::listing::summary(job.summary(id, || inner.waiting_reason(job))))
        };
        ids.iter().map(live).collect()
    }

    /// Follows a job's events from the first: from memory while they are
    /// there, from the record otherwise.
    pub fn watch(&self, id: &str) -> Result<JobWatch> {
        let inner = self.lock();
        let job = inner.jobs.get(id).ok_or_else(|| MasterError::JobNotFound(id.to_owned()))?;
        Ok(job.watch(id, self.store.clone()))
    }

    /// Whether job `id`'s full spec is only in the record, so that what is
    /// sent to its node must be read from there.
    pub fn spec_in_record(&self, id: &str) -> bool {
        self.lock().jobs.get(id).is_some_and(|j| j.spec_in_record)
    }

    /// Job `id`'s limits, replicas and whether it is deterministic, if
    /// memory holds it (its spec there is light: inputs are cut).
    pub fn terms_of(&self, id: &str) -> Option<(grid_core::Limits, u32, bool)> {
        self.lock().jobs.get(id).map(|j| (j.spec.limits, j.spec.replicas, j.spec.deterministic))
    }

    /// Runs `f` on job `id` as memory holds it; whether memory has it.
    #[cfg(test)]
    pub fn job_for_test(&self, id: &str, f: impl FnOnce(&Job)) -> bool {
        self.lock().jobs.get(id).map(f).is_some()
    }

    /// Cancels a job that has not finished. Returns whether it was still
    /// running or queued.
    pub fn cancel(&self, id: &str) -> Result<bool> {
        let mut inner = self.lock();
        let job = inner.jobs.get_mut(id).ok_or_else(|| MasterError::JobNotFound(id.to_owned()))?;
        let limits = job.spec.limits;
        if job.verify.is_some() && job.phase != Phase::Finished {
            // Its replicas stop at once; no result of theirs is kept.
            self.end_verified(&mut inner, id, JobReport::before_start(Outcome::Cancelled, "", &limits), None);
            self.dispatch(&mut inner);
            return Ok(true);
        }
        match job.phase {
            Phase::Finished => Ok(false),
            Phase::Queued => {
                inner.queue.remove(id);
                self.finish(
                    &mut inner,
                    id,
                    JobReport::before_start(Outcome::Cancelled, "", &limits),
                    AttemptEnd::Cancelled,
                );
                Ok(true)
            }
            Phase::Running(node) => {
                job.cancel_requested = true;
                if let Some(n) = inner.nodes.get(&node) {
                    let _ = n.tx.send(ToNode::Cancel(id.to_owned()));
                }
                Ok(true)
            }
            Phase::Awaiting => {
                self.cancel_awaiting(&mut inner, id);
                Ok(true)
            }
        }
    }

    /// A node connected. Returns its id and the receiver of its orders.
    /// A node with the name of a connected one is that node reconnecting
    /// if its identity is the same (the old session ends, and its jobs are
    /// lost the usual way), and is refused otherwise.
    pub fn register_node(&self, reg: NodeRegistration) -> Result<(NodeId, mpsc::UnboundedReceiver<ToNode>)> {
        self.register_node_holding(reg, &[]).map(|r| (r.id, r.orders))
    }

    /// As [`Self::register_node`], for a node that holds jobs `held` from
    /// an earlier session (each with the output bytes it has of it). Also
    /// returns those that run on with it, each with the output bytes the
    /// record holds (the node goes on from there); it stops the others.
    pub fn register_node_holding(&self, reg: NodeRegistration, held: &[(JobId, u64)]) -> Result<Registered> {
        let mut inner = self.lock();
        if inner.closing {
            return Err(MasterError::ShuttingDown);
        }
        let same_name =
            inner.nodes.iter().find(|(_, n)| n.reg.name == reg.name).map(|(id, n)| (*id, n.reg.identity.clone()));
        if let Some((old, identity)) = same_name {
            if identity.is_empty() || identity != reg.identity {
                tracing::warn!(node = %reg.name, address = %reg.address, "refused a node with the name of a connected one");
                return Err(MasterError::NameTaken(reg.name));
            }
            self.keep_held(&mut inner, old, held);
            self.drop_node(&mut inner, old, "it connected again", None);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        inner.next_node += 1;
        let id = inner.next_node;
        tracing::info!(node = %reg.name, address = %reg.address, slots = reg.capacity.slots, "node registered");
        inner.history.connected(&reg.name, &reg.identity);
        let name = reg.name.clone();
        inner.nodes.insert(id, Node::new(reg, tx));
        self.restand(&mut inner, &name);
        let resumed = self.resume_held(&mut inner, id, held);
        let Inner { queue, jobs, nodes, .. } = &mut *inner;
        dispatch::unpark_for(queue, jobs, id, &nodes[&id]);
        self.dispatch(&mut inner);
        Ok(Registered { id, orders: rx, resumed })
    }

    /// What the record holds of a node about to register, so that its
    /// counts go on; memory's own history of it wins.
    pub fn recall_node(&self, recorded: NodeRecord) {
        self.lock().history.recall(recorded);
    }

    /// An admin clears node `name`'s quarantine: it may run jobs again, its
    /// trust from zero, its credit kept. `recorded` is what the record
    /// holds of it, for a node memory does not know. Returns whether it
    /// was quarantined; a name neither knows is not found. A connected
    /// node of that name may take jobs at once.
    pub fn clear_quarantine(&self, name: &str, recorded: Option<NodeRecord>) -> Result<bool> {
        let mut inner = self.lock();
        if inner.history.get(name).is_none() {
            let Some(recorded) = recorded.filter(|r| r.name == name) else {
                let shown = cut(name, crate::auth::tokens::MAX_NAME);
                return Err(MasterError::NotFound(format!("no node `{shown}` has been seen")));
            };
            inner.history.recall(recorded);
        }
        let was = inner.history.update_standing(name, VerifyPolicy::clear);
        if was {
            tracing::info!(node = %name, "node's quarantine cleared; it may run jobs again");
            // Its sessions take jobs again, and parked ones come back.
            self.restand(&mut inner, name);
            self.dispatch(&mut inner);
        }
        drop(inner);
        self.record_nodes();
        Ok(was)
    }

    /// Writes the node histories changed since the last call to the record
    /// (write-behind, in its batches).
    pub fn record_nodes(&self) {
        let changed = self.lock().history.take_changed();
        if !changed.is_empty() {
            self.store.nodes_seen(changed);
        }
    }

    /// A node sent a heartbeat: changes to its cache, its bucket's level, and
    /// whether it is shutting down. Jobs it refused before are offered to it
    /// again, and a node that stops draining may take parked jobs.
    pub fn heartbeat(&self, node: NodeId, beat: Heartbeat) {
        let mut inner = self.lock();
        let Inner { queue, jobs, nodes, .. } = &mut *inner;
        if let Some(n) = nodes.get_mut(&node) {
            let room = crate::nodes::MAX_CACHED_PER_NODE.saturating_sub(n.cached.len());
            n.cached.extend(beat.cached_added.into_iter().take(room));
            for h in &beat.cached_removed {
                n.cached.remove(h);
            }
            n.set_fuel(beat.fuel_available);
            n.beats += 1;
            if std::mem::replace(&mut n.draining, beat.draining) && !beat.draining {
                dispatch::unpark_for(queue, jobs, node, n);
            }
            let (name, state) = (n.reg.name.clone(), n.state());
            inner.history.set_state(&name, state);
        }
        // Time passes between heartbeats: the bucket may now hold enough.
        self.dispatch(&mut inner);
    }

    /// A node sent output for one of its jobs. The record gets it all, up
    /// to the job's output limit; output past the limit ends the job as
    /// `output limit` and the node is told to stop.
    pub fn job_output(&self, node: NodeId, job: &str, stream: OutputStream, mut data: Vec<u8>) {
        let mut inner = self.lock();
        let Some(j) = inner.jobs.get_mut(job).filter(|j| j.runs_on(node)) else { return };
        if j.verify.is_some() {
            self.replica_output(&mut inner, node, job, stream, &data);
            return;
        }
        let limit = j.spec.limits.output;
        let room = limit.saturating_sub(j.recorded.1 as u64);
        let over = data.len() as u64 > room;
        if over {
            data.truncate(room as usize);
        }
        if data.len() <= CHUNK {
            if !data.is_empty() {
                let seq = j.output(stream, data.clone());
                self.store.output(job, seq, stream, data);
            }
        } else {
            for piece in data.chunks(CHUNK) {
                let seq = j.output(stream, piece.to_vec());
                self.store.output(job, seq, stream, piece.to_vec());
            }
        }
        if over {
            let (spec, name) = (j.spec.clone(), j.node_name.clone());
            tracing::warn!(job, node = %name, limit, "node sent output past the job's output limit; job ended");
            inner.stop_over_output(node, job);
            self.finish(
                &mut inner,
                job,
                JobReport::before_start(Outcome::OutputLimit, &name, &spec.limits),
                AttemptEnd::Finished,
            );
            self.dispatch(&mut inner);
        }
    }

    /// A node finished one of its jobs.
    /// What the node claims is not taken on trust: fuel and memory are cut
    /// to the job's limits, messages to a sane length, and the node's name
    /// is the one it registered with.
    pub fn job_finished(&self, node: NodeId, job: &str, report: JobReport) {
        let mut inner = self.lock();
        let Some(j) = inner.jobs.get(job).filter(|j| j.runs_on(node)) else { return };
        let spec = j.spec.clone();
        let verified = j.verify.is_some();
        let mut report = report;
        let limits = &spec.limits;
        report.fuel_limit = limits.fuel;
        report.fuel_used = report.fuel_used.min(limits.fuel);
        report.peak_memory = report.peak_memory.min(limits.memory);
        report.wall = report.wall.min(limits.timeout + self.grace);
        cut_message(&mut report.outcome);
        if let Some(n) = inner.nodes.get_mut(&node) {
            report.node.clone_from(&n.reg.name);
            n.release(job, &spec, Some(report.fuel_used));
            inner.history.ran(&report.node, report.fuel_used);
        }
        self.metrics.burned(report.fuel_used);
        inner.stopped_running(job, Some(report.fuel_used));
        if verified {
            self.replica_ended(&mut inner, node, job, report);
        } else {
            if replicas::is_result(&report.outcome) {
                // A result taken as the node reports it earns its fuel.
                inner.history.update_standing(&report.node, |s| VerifyPolicy::accepted(s, report.fuel_used));
            }
            let end = AttemptEnd::of(&report.outcome);
            self.finish_ran(&mut inner, job, report, end, true);
        }
        self.dispatch(&mut inner);
    }

    /// Node `node` says it compiles job `job`'s module (`done` false) or
    /// has compiled it and starts the job (`done` true). Believed once each
    /// per attempt, and only from the node that runs it.
    pub fn job_compiling(&self, node: NodeId, job: &str, done: bool) {
        let mut inner = self.lock();
        let Some(allowance) = inner.nodes.get(&node).map(|n| n.reg.compile_allowance) else { return };
        let Some(j) = inner.jobs.get_mut(job) else { return };
        if j.told_compiling(node, done, Instant::now(), allowance) {
            match done {
                false => tracing::info!(job, "the job's node compiles its module"),
                true => tracing::info!(job, "the job's node compiled its module; the job starts"),
            }
        }
    }

    /// A node refused or handed back a job: it goes back to the front of
    /// the queue. Each hand-back counts as an attempt, so a node cannot
    /// bounce a job for ever; with none left the job fails.
    pub fn job_rejected(&self, node: NodeId, job: &str, reason: &str) {
        let mut inner = self.lock();
        let Some(j) = inner.jobs.get(job).filter(|j| j.runs_on(node)) else { return };
        let reason = cut(reason, MAX_REASON);
        let spec = j.spec.clone();
        let name = inner.nodes.get(&node).map(|n| n.reg.name.clone()).unwrap_or_default();
        tracing::warn!(job, node = %name, reason = %reason, "node handed a job back");
        if let Some(n) = inner.nodes.get_mut(&node) {
            n.release(job, &spec, None);
        }
        inner.stopped_running(job, None);
        let beats = inner.nodes.get(&node).map_or(0, |n| n.beats);
        let j = inner.jobs.get_mut(job).expect("checked above");
        if j.verify.is_some() {
            j.refuse(node, beats);
            self.void_replica(&mut inner, node, job, AttemptEnd::HandedBack, &format!("handed back: {reason}"));
            self.dispatch(&mut inner);
            return;
        }
        if j.cancel_requested {
            self.finish(
                &mut inner,
                job,
                JobReport::before_start(Outcome::Cancelled, "", &spec.limits),
                AttemptEnd::Cancelled,
            );
            self.dispatch(&mut inner);
            return;
        }
        if j.attempts >= self.max_attempts {
            let msg =
                format!("handed back by node `{name}`: {reason} (attempt {} of {})", j.attempts, self.max_attempts);
            self.finish(
                &mut inner,
                job,
                JobReport::before_start(Outcome::NodeError(msg), &name, &spec.limits),
                AttemptEnd::HandedBack,
            );
            self.dispatch(&mut inner);
            return;
        }
        j.refuse(node, beats);
        // One that ran for a while (a node handing jobs back as it shuts
        // down) wrote output that belongs to a void attempt.
        let started = j.recorded.0 > 0;
        j.requeue(started);
        let (attempts, priority, tenant) = (j.attempts, j.submission.priority, j.tenant().to_owned());
        self.store.requeued(job, attempts, AttemptEnd::HandedBack);
        inner.queue.push_front(job.to_owned(), priority, &tenant);
        self.dispatch(&mut inner);
    }

    /// A node went away, and is now `state` (gone or lost): each of its
    /// running jobs runs again elsewhere, up to the grid's attempts, or
    /// ends with a node error.
    pub fn node_gone(&self, node: NodeId, why: &str, state: NodeState) {
        let mut inner = self.lock();
        // A node that leaves as the master shuts down has not gone anywhere,
        // and runs nothing (its jobs were handed back). Its orders channel
        // stays open, so its session ends with the shutdown's status only.
        if inner.closing {
            return;
        }
        self.drop_node(&mut inner, node, why, Some(state));
        self.dispatch(&mut inner);
    }

    /// Resolves once node `node` is no longer in the live state (revoked,
    /// lost, replaced or gone); at once if it is not there now.
    pub fn session_ended(&self, node: NodeId) -> futures::future::BoxFuture<'static, ()> {
        use futures::FutureExt as _;
        match self.lock().nodes.get(&node) {
            Some(n) => n.ended().boxed(),
            None => futures::future::ready(()).boxed(),
        }
    }

    /// Drains the connected node named `name` on the admin's word (`held`),
    /// or lets it take jobs again: no new job goes to a drained node, and
    /// its running jobs finish. Returns whether such a node was connected.
    pub fn hold_node(&self, name: &str, held: bool) -> bool {
        let mut inner = self.lock();
        let Inner { queue, jobs, nodes, history, .. } = &mut *inner;
        let mut found = false;
        for (id, n) in nodes.iter_mut().filter(|(_, n)| n.reg.name == name) {
            found = true;
            if std::mem::replace(&mut n.held, held) && !held {
                dispatch::unpark_for(queue, jobs, *id, n);
            }
            history.set_state(name, n.state());
        }
        if found {
            self.dispatch(&mut inner);
        }
        found
    }

    /// Ends the session of the connected node named `name` at once, as a
    /// lost node's (its jobs run again elsewhere); its stream ends refused
    /// with `why`. Returns whether such a node was connected.
    pub fn drop_node_named(&self, name: &str, why: &str) -> bool {
        let mut inner = self.lock();
        let ids: Vec<NodeId> = inner.nodes.iter().filter(|(_, n)| n.reg.name == name).map(|(id, _)| *id).collect();
        for id in &ids {
            if let Some(n) = inner.nodes.get(id) {
                let _ = n.tx.send(ToNode::End(why.to_owned()));
            }
            // A master shutting down hands jobs back itself.
            if !inner.closing {
                self.drop_node(&mut inner, *id, why, Some(NodeState::Lost));
            }
        }
        if !ids.is_empty() && !inner.closing {
            self.dispatch(&mut inner);
        }
        !ids.is_empty()
    }

    /// Removes a node's session; its history is now `state`, if given.
    fn drop_node(&self, inner: &mut Inner, node: NodeId, why: &str, state: Option<NodeState>) {
        let Some(n) = inner.nodes.remove(&node) else { return };
        tracing::warn!(node = %n.reg.name, why, "node disconnected");
        if let Some(state) = state
            && let Some(forgotten) = inner.history.disconnected(&n.reg.name, state)
        {
            self.store.nodes_seen(vec![forgotten]);
        }
        for id in n.running {
            inner.stopped_running(&id, None);
            let job = inner.jobs.get_mut(&id).expect("running job exists");
            let limits = job.spec.limits;
            if job.verify.is_some() {
                job.lost_on.push(n.reg.name.clone());
                self.void_replica(inner, node, &id, AttemptEnd::Lost, &format!("node disconnected: {why}"));
                continue;
            }
            if job.cancel_requested {
                self.finish(
                    inner,
                    &id,
                    JobReport::before_start(Outcome::Cancelled, &n.reg.name, &limits),
                    AttemptEnd::Cancelled,
                );
            } else if job.attempts < self.max_attempts {
                tracing::info!(job = %id, attempt = job.attempts + 1, "node lost; running the job again");
                job.lost_on.push(n.reg.name.clone());
                job.requeue(true);
                let (attempts, priority, tenant) = (job.attempts, job.submission.priority, job.tenant().to_owned());
                self.store.requeued(&id, attempts, AttemptEnd::Lost);
                inner.queue.push_front(id, priority, &tenant);
            } else {
                let msg = format!(
                    "node `{}` disconnected: {why} (attempt {} of {})",
                    n.reg.name, job.attempts, self.max_attempts
                );
                self.finish(
                    inner,
                    &id,
                    JobReport::before_start(Outcome::NodeError(msg), &n.reg.name, &limits),
                    AttemptEnd::Lost,
                );
            }
        }
    }

    /// The master is shutting down: nothing is dispatched any more. A
    /// running job stays running in the record: its node runs on, and the
    /// next master on this record takes it back when the node comes back
    /// with it (a verified job's replicas start over). Returns how many
    /// jobs were running.
    pub fn shut_down(&self) -> usize {
        let mut inner = self.lock();
        inner.closing = true;
        let Inner { nodes, history, .. } = &mut *inner;
        for n in nodes.values() {
            history.seen(&n.reg.name);
        }
        let running: Vec<(NodeId, JobId)> =
            inner.nodes.iter().flat_map(|(node, n)| n.running.iter().map(|id| (*node, id.clone()))).collect();
        for (node, id) in &running {
            let spec = inner.jobs[id].spec.clone();
            if let Some(n) = inner.nodes.get_mut(node) {
                n.release(id, &spec, None);
            }
            inner.stopped_running(id, None);
            let job = inner.jobs.get_mut(id).expect("a running job exists");
            if let Some(v) = job.verify.as_mut() {
                // Its replicas start over under the next master.
                if let Some(r) = v.running_on(*node) {
                    r.ended = Some((now_ms(), AttemptEnd::Restarted));
                    self.store.replica(id, r.number, Some(AttemptEnd::Restarted), None, None);
                }
                if v.running() == 0 {
                    self.store.requeued(id, job.attempts, AttemptEnd::Restarted);
                }
                continue;
            }
            if job.cancel_requested {
                self.finish(
                    &mut inner,
                    id,
                    JobReport::before_start(Outcome::Cancelled, "", &spec.limits),
                    AttemptEnd::Cancelled,
                );
                continue;
            }
            // The record keeps it running on its node: the node runs on,
            // and the next master on this record takes it back from it.
            job.await_node(None);
        }
        drop(inner);
        self.record_nodes();
        running.len()
    }

    /// Takes running jobs away from nodes that have held them past their
    /// deadline (timeout plus grace, from assignment): the node is told to
    /// stop, its lost jobs count goes up, and the job runs elsewhere (never
    /// on that node again) or, with no attempts left, fails. Returns how
    /// many jobs were taken back.
    pub fn expire_overdue(&self, now: Instant) -> usize {
        let mut inner = self.lock();
        let mut overdue = Vec::new();
        for (node_id, n) in &inner.nodes {
            for id in &n.running {
                let deadline = inner.jobs[id].deadline_on(*node_id, self.grace, n.reg.compile_allowance);
                if deadline.is_some_and(|deadline| now >= deadline) {
                    overdue.push((*node_id, id.clone()));
                }
            }
        }
        for (node_id, id) in &overdue {
            self.overdue(&mut inner, *node_id, id);
        }
        if !overdue.is_empty() {
            self.dispatch(&mut inner);
        }
        overdue.len()
    }

    /// One job its node held past the deadline.
    fn overdue(&self, inner: &mut Inner, node_id: NodeId, id: &str) {
        let spec = inner.jobs.get(id).expect("a running job exists").spec.clone();
        let name = inner.nodes.get(&node_id).expect("the job's node exists").reg.name.clone();
        inner.stop_on(node_id, id);
        inner.history.lost_one(&name);
        // Holding a job past its deadline is no way to earn trust.
        if inner.history.update_standing(&name, |s| self.policy.struck(s)) {
            tracing::warn!(node = %name, "node quarantined: it held jobs past their deadlines too often");
        }
        self.restand(inner, &name);
        let (timeout, grace) =
            (grid_core::units::format_duration(spec.limits.timeout), grid_core::units::format_duration(self.grace));
        tracing::warn!(job = id, node = %name, "node did not finish the job within its timeout and grace; taken back");
        let job = inner.jobs.get_mut(id).expect("a running job exists");
        job.avoid(node_id);
        if job.verify.is_some() {
            let why =
                format!("it did not finish within the job's timeout of {timeout} and the master's grace of {grace}");
            self.void_replica(inner, node_id, id, AttemptEnd::Overdue, &why);
            return;
        }
        if job.cancel_requested {
            self.finish(
                inner,
                id,
                JobReport::before_start(Outcome::Cancelled, &name, &spec.limits),
                AttemptEnd::Cancelled,
            );
        } else if job.attempts < self.max_attempts {
            job.requeue(true);
            let (attempts, priority, tenant) = (job.attempts, job.submission.priority, job.tenant().to_owned());
            self.store.requeued(id, attempts, AttemptEnd::Overdue);
            inner.queue.push_front(id.to_owned(), priority, &tenant);
        } else {
            let msg = format!(
                "node `{name}` did not finish within the job's timeout of {timeout} and the master's grace of {grace} (attempt {} of {})",
                job.attempts, self.max_attempts
            );
            self.finish(
                inner,
                id,
                JobReport::before_start(Outcome::NodeError(msg), &name, &spec.limits),
                AttemptEnd::Overdue,
            );
        }
    }

    /// Whether the connected node named `name` (its credential's name) may
    /// fetch `module`: only a node running a job of that module may.
    pub fn may_fetch(&self, name: &str, module: &grid_core::ModuleHash) -> bool {
        let inner = self.lock();
        inner
            .nodes
            .values()
            .filter(|n| n.reg.name == name)
            .any(|n| n.running.iter().any(|id| inner.jobs.get(id).is_some_and(|j| &j.spec.module == module)))
    }

    /// The nodes connected now, by name.
    pub fn nodes(&self) -> Vec<NodeSummary> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let (now, ms) = (Instant::now(), now_ms());
        let mut out: Vec<_> = inner
            .nodes
            .iter_mut()
            .map(|(id, n)| {
                n.refill(now);
                let fresh = NodeRecord::new(&n.reg.name, &n.reg.identity, ms);
                n.summary(*id, inner.history.get(&n.reg.name).unwrap_or(&fresh), ms)
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        self.judge(&mut out);
        out
    }

    /// Applies the policy to each node listed: whether it is trusted now.
    fn judge(&self, nodes: &mut [NodeSummary]) {
        for n in nodes {
            n.trusted = !n.standing.quarantined && self.policy.trusted(&n.standing);
        }
    }

    /// The nodes connected now (by name), then those that are not, most
    /// recently seen first: those memory knows, and of `recorded` (the
    /// record's histories) those it does not. At most [`NODES_LISTED`].
    pub fn all_nodes(&self, recorded: Vec<NodeRecord>) -> Vec<NodeSummary> {
        let mut out = self.nodes();
        let inner = self.lock();
        let mut others: Vec<NodeSummary> = inner
            .history
            .all()
            .filter(|r| !out.iter().any(|n| n.name == r.name))
            .cloned()
            .chain(recorded.into_iter().filter(|r| inner.history.get(&r.name).is_none()))
            .map(NodeSummary::from_record)
            .collect();
        drop(inner);
        others.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then_with(|| a.name.cmp(&b.name)));
        self.judge(&mut others);
        out.extend(others);
        out.truncate(NODES_LISTED);
        out
    }

    /// The number of jobs waiting for a node.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// What the gauges and the series read, under the lock once; with
    /// `oldest`, also when the oldest queued job was submitted (a walk over
    /// the jobs in memory, for scrapes, not for every second).
    pub fn census(&self, oldest: bool) -> Census {
        let inner = self.lock();
        let at_ms = now_ms();
        let mut census = Census { queued: inner.queue.len() as u64, ..Census::default() };
        for n in inner.nodes.values() {
            census.running += n.running.len() as u64;
            census.count_node(n.state());
            let fuel = inner.history.get(&n.reg.name).map_or(0, |h| h.fuel_burned);
            let sample = crate::series::NodeSample {
                at_ms,
                slots_used: n.running.len() as u32,
                slots: n.reg.capacity.slots,
                memory_used: n.memory_used(),
                fuel,
            };
            census.connected.push((n.reg.name.clone(), sample));
        }
        for r in inner.history.all().filter(|r| !r.state.is_connected()) {
            census.count_node(r.state);
        }
        if oldest {
            census.oldest_queued_ms =
                inner.jobs.values().filter(|j| matches!(j.phase, Phase::Queued)).map(|j| j.submitted_ms).min();
        }
        census
    }

    /// Jobs looked at by every dispatch so far.
    #[cfg(test)]
    fn examined(&self) -> u64 {
        self.lock().examined
    }

    /// Ends a job: records it, tells its watchers, and counts the nodes it
    /// was lost on if it then ran to its end.
    fn finish(&self, inner: &mut Inner, id: &str, report: JobReport, end: AttemptEnd) {
        self.finish_ran(inner, id, report, end, false)
    }

    /// Ends a job as `finish` does; with `ran`, its node ran it to this end
    /// and its tenant's counts in the record go up in the same change.
    fn finish_ran(&self, inner: &mut Inner, id: &str, report: JobReport, end: AttemptEnd, ran: bool) {
        let Some(job) = inner.jobs.get_mut(id) else { return };
        tracing::debug!(job = id, outcome = %report.outcome, fuel = report.fuel_used, "job finished");
        if report.outcome.exit_code().is_some() {
            for name in std::mem::take(&mut job.lost_on) {
                tracing::warn!(node = %name, job = id, "a job lost on this node ran to its end elsewhere");
                inner.history.lost_one(&name);
            }
        }
        let job = inner.jobs.get_mut(id).expect("checked above");
        let took = (job.started_ms > 0).then(|| Duration::from_millis(now_ms().saturating_sub(job.started_ms)));
        self.metrics.finished(&report.outcome, took);
        let report = Arc::new(report);
        let drop_input = job.finish(report.clone());
        self.store.finished(id, &report, drop_input, end, ran.then_some(job.submission.tenant.as_str()));
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
        self.dispatch_at(inner, Instant::now())
    }

    /// Dispatches as of `now`.
    fn dispatch_at(&self, inner: &mut Inner, now: Instant) {
        if inner.closing {
            return;
        }
        for n in inner.nodes.values_mut() {
            n.refill(now);
        }
        inner.tenants.refill(now);
        debug_assert_eq!(
            inner.running,
            Running::count(inner.nodes.values().flat_map(|n| &n.running).map(|id| inner.jobs[id].tenant())),
            "running counts drifted: a job stopped running without `stopped_running`"
        );
        #[cfg(debug_assertions)]
        {
            let mut reserved: HashMap<&str, u64> = HashMap::new();
            for job in inner.nodes.values().flat_map(|n| &n.running).map(|id| &inner.jobs[id]) {
                *reserved.entry(job.tenant()).or_default() += job.spec.limits.fuel;
            }
            for (tenant, fuel) in inner.tenants.reserved() {
                assert_eq!(
                    reserved.get(tenant).copied().unwrap_or(0),
                    fuel,
                    "tenant `{tenant}`'s fuel reservation drifted"
                );
            }
        }
        // A plan places each job once; a verified job that wants more
        // replicas gets another plan, its nodes so far left out of it.
        for _ in 0..MAX_PLANS {
            let plan = dispatch::plan(&inner.queue, &inner.jobs, &inner.nodes, &inner.running, &inner.tenants, now);
            inner.examined += plan.examined as u64;
            inner.fuel_held = plan.fuel_held;
            for id in &plan.park {
                inner.queue.park(id);
            }
            let mut again = false;
            for Assignment { job: id, node: node_id } in plan.assignments {
                let verify = self.wants_verifying(inner, &inner.jobs[&id], &inner.nodes[&node_id]);
                let job = inner.jobs.get_mut(&id).expect("planned job exists");
                if verify {
                    job.verify(2);
                }
                // A job just made verified starts only once enough
                // independent nodes are connected to make its quorum (the
                // plan leaves out those already verified): until then no
                // replica runs and holds its result in the master, waiting.
                // Another plan gives its node's slot to another job.
                if dispatch::short_of_quorum(&inner.nodes, job) {
                    again = true;
                    continue;
                }
                let node = inner.nodes.get_mut(&node_id).expect("planned node exists");
                if node.tx.send(ToNode::Assign(id.clone(), job.spec.clone())).is_err() {
                    // The session is closing; node_gone will follow. Keep the job.
                    continue;
                }
                node.reserve(&id, &job.spec);
                if job.verify.is_some() {
                    let spool = crate::spool::Spool::in_dir(self.spool_dir.clone());
                    let number = job.add_replica(node_id, &node.reg.name, node.reg.owner.as_deref(), spool);
                    if number == 1 {
                        self.metrics.started(Duration::from_millis(job.started_ms.saturating_sub(job.submitted_ms)));
                    }
                    self.store.running(&id, &node.reg.name, number);
                    if job.verify.as_ref().is_some_and(|v| v.wanted > 0) {
                        again = true;
                    } else {
                        inner.queue.remove(&id);
                    }
                } else {
                    job.assign(node_id, &node.reg.name);
                    match job.attempts {
                        1 => {
                            self.metrics.started(Duration::from_millis(job.started_ms.saturating_sub(job.submitted_ms)))
                        }
                        _ => self.metrics.retried(),
                    }
                    self.store.running(&id, &node.reg.name, job.attempts);
                    inner.queue.remove(&id);
                }
                inner.running.started(job.tenant());
                inner.tenants.started(job.tenant(), job.spec.limits.fuel, now);
            }
            if !again {
                break;
            }
        }
    }
}

/// The live state counted at one instant: what `/metrics` gauges and the
/// series sample.
#[derive(Debug, Default)]
pub struct Census {
    /// Jobs waiting for a node.
    pub queued: u64,
    /// Attempts running on nodes (each replica of a verified job counts).
    pub running: u64,
    /// When the oldest job waiting was submitted, in ms since the epoch
    /// (asked for only).
    pub oldest_queued_ms: Option<u64>,
    /// Nodes in memory by state, in the order of [`NodeState::ALL`].
    pub nodes: [u64; NodeState::ALL.len()],
    /// Each connected node's name and load now.
    pub connected: Vec<(String, crate::series::NodeSample)>,
}

impl Census {
    fn count_node(&mut self, state: NodeState) {
        if let Some(i) = NodeState::ALL.iter().position(|s| *s == state) {
            self.nodes[i] += 1;
        }
    }
}

/// A submission let in past its tenant's bound on queued jobs and not yet
/// queued: counted against the bound until it is queued (`enqueue` takes
/// it off) or comes to nothing (dropped with `tenant` still set).
struct Admitted {
    live: Arc<LiveState>,
    tenant: Option<String>,
}

impl Admitted {
    /// It is being queued: `enqueue` stops counting it.
    fn queued(&mut self) {
        self.tenant = None;
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(tenant) = &self.tenant {
            self.live.lock().unadmit(tenant);
        }
    }
}

/// The job `id` that holds idempotency key `key` if it was submitted with
/// the request whose fingerprint is `fingerprint` (or with none recorded,
/// as before fingerprints existed); a conflict otherwise.
fn same_request(key: &str, id: JobId, held: Option<&str>, fingerprint: &str) -> Result<JobId> {
    match held {
        Some(held) if held != fingerprint => Err(MasterError::Conflict(format!(
            "idempotency key `{}` was used for job {id} with a different request; use a new key to submit another job",
            cut(crate::auth::shown_key(key), 64)
        ))),
        _ => Ok(id),
    }
}

/// Cuts the message an outcome carries (a trap's, a node's) to
/// [`MAX_MESSAGE`].
fn cut_message(outcome: &mut Outcome) {
    match outcome {
        Outcome::Trap(m) | Outcome::InvalidModule(m) | Outcome::LinkError(m) | Outcome::NodeError(m) => {
            grid_core::text::cut_owned(m, MAX_MESSAGE)
        }
        _ => {}
    }
}

/// Runs a blocking read of the record off the async threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| MasterError::Internal(format!("record read failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::node;
    use crate::model::JobEvent;
    use grid_core::{Ceilings, FuelQuota, Limits, ModuleHash};

    fn spec() -> JobSpec {
        crate::fixtures::spec(&[])
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
        let (_a, _rx) = live.register_node(node("a")).unwrap();
        let err = submit(&live, huge).await.unwrap_err().to_string();
        assert!(err.contains("no connected node takes this job") && err.contains("fuel"), "{err}");
    }

    #[tokio::test]
    async fn a_refusal_names_every_limit_over_on_the_node_that_comes_closest() {
        let live = live(3);
        let mut tiny = node("tiny");
        tiny.capacity.per_job =
            Ceilings { memory: 64 << 20, timeout: Duration::from_secs(300), ..tiny.capacity.per_job };
        tiny.capacity.disk = 16 << 20;
        let mut small = node("small");
        small.capacity.per_job.memory = 128 << 20;
        let (_t, _rx_t) = live.register_node(tiny).unwrap();
        let (_s, _rx_s) = live.register_node(small).unwrap();
        let limits = Limits { memory: 1 << 30, timeout: Duration::from_secs(600), disk: 2 << 30, ..Limits::default() };
        let err = submit(&live, JobSpec { limits, ..spec() }).await.unwrap_err().to_string();
        assert_eq!(
            err,
            "no connected node takes this job: job asks for 1GiB of memory (the most is 128MiB) and 2GiB of disk \
             (the most is 1GiB); node `small` comes closest"
        );
    }

    #[tokio::test]
    async fn a_key_reused_with_another_request_is_a_conflict_from_memory_and_from_the_record() {
        let store = Arc::new(MemoryStore::new());
        let live = Arc::new(LiveState::new(store.clone(), 3));
        let keyed = Submission { key: Some("k1".into()), tenant: "t".into(), priority: 0 };
        let id = live.submit(spec(), keyed.clone()).await.unwrap();
        assert_eq!(live.submit(spec(), keyed.clone()).await.unwrap(), id);
        let other = JobSpec { args: vec!["x".into()], ..spec() };
        let conflict = |err: MasterError| {
            assert!(matches!(err, MasterError::Conflict(_)), "{err:?}");
            assert_eq!(
                err.to_string(),
                format!(
                    "idempotency key `k1` was used for job {id} with a different request; use a new key to submit \
                     another job"
                )
            );
        };
        conflict(live.submit(other.clone(), keyed.clone()).await.unwrap_err());
        // A master that knows the job only from its record answers alike.
        let restarted = Arc::new(LiveState::new(store.clone(), 3));
        assert_eq!(restarted.submit(spec(), keyed.clone()).await.unwrap(), id);
        conflict(restarted.submit(other, keyed).await.unwrap_err());
    }

    #[tokio::test]
    async fn a_job_waiting_with_no_node_connected_says_so_then_names_what_the_node_that_came_lacks() {
        let live = live(3);
        let big = JobSpec { limits: Limits { memory: 2 << 30, ..Limits::default() }, ..spec() };
        let job = submit(&live, big).await.unwrap();
        assert_eq!(live.summary(&job).unwrap().waiting.as_deref(), Some("waiting: no node is connected"));
        let (_a, _rx) = live.register_node(node("a")).unwrap();
        assert_eq!(
            live.summary(&job).unwrap().waiting.as_deref(),
            Some("waiting: no connected node takes it: job asks for 2GiB of memory (the most is 1GiB)")
        );
    }

    #[tokio::test]
    async fn queued_jobs_wait_for_a_free_slot() {
        let live = live(3);
        let (a, mut rx) = live.register_node(node("a")).unwrap();
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
        let (a, mut rx) = live.register_node(node("a")).unwrap();
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
        let (a, mut rx) = live.register_node(node("a")).unwrap();
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
        let (a, mut rx_a) = live.register_node(node("a")).unwrap();
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx_a), Some(job.clone()));
        live.node_gone(a, "stream closed", NodeState::Lost);
        let (b, mut rx_b) = live.register_node(node("b")).unwrap();
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
        let (a, mut rx) = live.register_node(node("a")).unwrap();
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        live.node_gone(a, "missed heartbeats", NodeState::Lost);
        let summary = live.summary(&job).unwrap();
        assert_eq!(summary.state, JobState::Failed);
        assert!(summary.result.unwrap().reason().contains("attempt 1 of 1"));
    }

    #[tokio::test]
    async fn a_node_that_holds_a_job_past_its_deadline_loses_it_to_another() {
        let live = Arc::new(LiveState::new(Arc::new(MemoryStore::new()), 3).with_bounds(Duration::from_secs(1), 10));
        let (a, mut rx_a) = live.register_node(node("a")).unwrap();
        let short = JobSpec { limits: Limits { timeout: Duration::from_secs(2), ..Limits::default() }, ..spec() };
        let job = submit(&live, short).await.unwrap();
        assert_eq!(assigned(&mut rx_a), Some(job.clone()));
        let (b, mut rx_b) = live.register_node(node("b")).unwrap();
        let assigned_at = Instant::now();
        assert_eq!(live.expire_overdue(assigned_at + Duration::from_millis(2500)), 0, "taken back before its deadline");
        assert_eq!(live.expire_overdue(assigned_at + Duration::from_secs(4)), 1);
        assert!(matches!(rx_a.try_recv(), Ok(ToNode::Cancel(id)) if id == job), "the node was not told to stop");
        assert_eq!(assigned(&mut rx_b), Some(job.clone()), "the job did not run elsewhere");
        let lost: Vec<_> = live.nodes().iter().map(|n| (n.name.clone(), n.lost_jobs)).collect();
        assert_eq!(lost, [("a".to_string(), 1), ("b".to_string(), 0)]);
        // The node that held it is not offered it again, even after a heartbeat.
        live.node_gone(b, "gone", NodeState::Lost);
        live.heartbeat(a, Heartbeat { fuel_available: 1 << 40, ..Heartbeat::default() });
        assert_eq!(assigned(&mut rx_a), None);
        // Its late answer is ignored.
        live.job_finished(a, &job, JobReport::before_start(Outcome::Exited(0), "a", &Limits::default()));
        assert_eq!(live.summary(&job).unwrap().state, JobState::Queued);
    }

    #[tokio::test]
    async fn a_job_held_past_its_deadline_with_no_attempts_left_fails_naming_the_node() {
        let live = Arc::new(LiveState::new(Arc::new(MemoryStore::new()), 1).with_bounds(Duration::from_secs(1), 10));
        let (_a, mut rx) = live.register_node(node("a")).unwrap();
        let short = JobSpec { limits: Limits { timeout: Duration::from_secs(2), ..Limits::default() }, ..spec() };
        let job = submit(&live, short).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        live.expire_overdue(Instant::now() + Duration::from_secs(10));
        let summary = live.summary(&job).unwrap();
        assert_eq!(summary.state, JobState::Failed);
        let reason = summary.result.unwrap().reason();
        assert!(reason.contains("node `a` did not finish within the job's timeout of 2s"), "{reason}");
        assert!(reason.contains("(attempt 1 of 1)"), "{reason}");
    }

    #[tokio::test]
    async fn hand_backs_count_against_the_attempts() {
        let live = live(3);
        let (a, mut rx) = live.register_node(node("a")).unwrap();
        let job = submit(&live, spec()).await.unwrap();
        let long = "why ".repeat(2500);
        for attempt in 1..=3 {
            assert_eq!(assigned(&mut rx), Some(job.clone()), "attempt {attempt}");
            live.job_output(a, &job, OutputStream::Stdout, b"x".to_vec());
            live.job_rejected(a, &job, &long);
            live.heartbeat(a, Heartbeat { fuel_available: 1 << 40, ..Heartbeat::default() });
        }
        assert_eq!(assigned(&mut rx), None, "a job bounced past its attempts");
        let summary = live.summary(&job).unwrap();
        assert_eq!((summary.state, summary.attempts), (JobState::Failed, 3));
        let reason = summary.result.unwrap().reason();
        assert!(reason.starts_with("node error: handed back by node `a`: why why"), "{reason}");
        assert!(reason.len() < 400, "the node's reason was kept whole: {} bytes", reason.len());
    }

    #[tokio::test]
    async fn what_a_node_reports_is_cut_to_the_job_s_limits() {
        let live = live(3);
        let (a, mut rx) = live.register_node(node("a")).unwrap();
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        let mut report = JobReport::before_start(Outcome::Trap("t".repeat(100_000)), "liar", &Limits::default());
        report.fuel_used = u64::MAX;
        report.peak_memory = u64::MAX;
        live.job_finished(a, &job, report);
        let result = live.summary(&job).unwrap().result.unwrap();
        assert_eq!(result.fuel_used, Limits::DEFAULT_FUEL);
        assert_eq!(result.peak_memory, Limits::DEFAULT_MEMORY);
        assert_eq!(result.node, "a", "the node's own name for itself was believed");
        assert!(result.reason().len() <= MAX_MESSAGE + 16);
        assert_eq!(live.nodes()[0].fuel_burned, Limits::DEFAULT_FUEL);
    }

    #[tokio::test]
    async fn submissions_past_the_queue_bound_are_refused_and_ids_never_repeat() {
        let live = Arc::new(LiveState::new(Arc::new(MemoryStore::new()), 3).with_bounds(DEFAULT_GRACE, 2));
        let first = submit(&live, spec()).await.unwrap();
        let second = submit(&live, spec()).await.unwrap();
        assert!(second > first, "ids go up: {first} then {second}");
        let err = submit(&live, spec()).await.unwrap_err().to_string();
        assert_eq!(err, "the master's queue is full (2 jobs waiting); try again later");
        // Once one leaves the queue, another may come.
        live.cancel(&first).unwrap();
        submit(&live, spec()).await.unwrap();
    }

    #[tokio::test]
    async fn a_job_s_tenant_is_read_without_its_summary() {
        let live = live(3);
        let sub = Submission { key: None, tenant: "alice".into(), priority: 0 };
        let id = live.submit(spec(), sub).await.unwrap();
        assert_eq!(live.tenant_of(&id).as_deref(), Some("alice"));
        assert_eq!(live.tenant_of("01NOSUCHJOB"), None);
    }

    #[tokio::test]
    async fn only_a_node_running_a_job_of_a_module_may_fetch_it() {
        let live = live(3);
        // On a Unix socket every node's address is the same.
        let (_a, mut rx) = live.register_node(node("a")).unwrap();
        let (_b, _rx_b) = live.register_node(node("b")).unwrap();
        let module = spec().module;
        assert!(!live.may_fetch("a", &module));
        submit(&live, spec()).await.unwrap();
        let on_a = assigned(&mut rx).is_some();
        let (runs, idle) = if on_a { ("a", "b") } else { ("b", "a") };
        assert!(live.may_fetch(runs, &module));
        assert!(!live.may_fetch(idle, &module), "a node running nothing of it fetched a module");
        assert!(!live.may_fetch("stranger", &module));
        assert!(!live.may_fetch(runs, &ModuleHash::of(b"other")));
    }

    #[tokio::test]
    async fn every_transition_is_written_through_the_store() {
        let store = Arc::new(MemoryStore::new());
        let live = Arc::new(LiveState::new(store.clone(), 3));
        let (a, mut rx) = live.register_node(node("a")).unwrap();
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
    async fn recovery_runs_interrupted_jobs_again_once_their_node_stays_away_and_ends_those_out_of_attempts() {
        let store = Arc::new(MemoryStore::new());
        let before = Arc::new(LiveState::new(store.clone(), 2));
        let (_a, _rx) = before.register_node(node("a")).unwrap();
        let running = submit(&before, spec()).await.unwrap();
        let queued = submit(&before, spec()).await.unwrap();
        store.flush().await.unwrap();
        let after = LiveState::new(store.clone(), 2);
        assert_eq!(after.recover(store.unfinished().unwrap()), 2);
        assert_eq!(after.summary(&running).unwrap().state, JobState::Running, "it waits for its node");
        assert_eq!(after.expire_awaiting(Instant::now() + REATTACH_WINDOW), 1);
        let (_b, mut rx) = after.register_node(node("b")).unwrap();
        assert_eq!(assigned(&mut rx), Some(running.clone()), "the interrupted job runs first");
        assert_eq!(after.summary(&running).unwrap().attempts, 2);
        assert_eq!(after.summary(&queued).unwrap().state, JobState::Queued);
        store.flush().await.unwrap();
        // A master that restarts during the last attempt waits for its
        // node, then ends the job.
        let again = LiveState::new(store.clone(), 2);
        again.recover(store.unfinished().unwrap());
        assert_eq!(again.summary(&running).unwrap().state, JobState::Running);
        again.expire_awaiting(Instant::now() + REATTACH_WINDOW);
        let ended = again.summary(&running).unwrap();
        assert_eq!(ended.state, JobState::Failed);
        assert!(
            ended.result.unwrap().reason().contains("did not come back with the job (attempt 2 of 2)"),
            "{:?}",
            again.summary(&running)
        );
    }

    #[tokio::test]
    async fn abandoning_ends_every_unfinished_job_with_the_reason_and_runs_none() {
        let store = Arc::new(MemoryStore::new());
        let before = Arc::new(LiveState::new(store.clone(), 3));
        let (_a, _rx) = before.register_node(node("a")).unwrap();
        let running = submit(&before, spec()).await.unwrap();
        let queued = submit(&before, spec()).await.unwrap();
        let after = LiveState::new(store.clone(), 3);
        assert_eq!(after.abandon(store.unfinished().unwrap(), "its waiter left"), 2);
        let (_b, mut rx) = after.register_node(node("b")).unwrap();
        assert_eq!(assigned(&mut rx), None, "an abandoned job ran again");
        for id in [&running, &queued] {
            let ended = after.summary(id).unwrap();
            assert_eq!(ended.state, JobState::Failed);
            assert!(ended.result.unwrap().reason().contains("its waiter left"));
        }
        store.flush().await.unwrap();
        assert!(store.unfinished().unwrap().is_empty(), "the record still holds them unfinished");
    }

    fn beat(fuel_available: u64, draining: bool) -> Heartbeat {
        Heartbeat { fuel_available, draining, ..Heartbeat::default() }
    }

    /// A spec only a node with ceilings of 4 GiB of memory admits.
    fn big() -> JobSpec {
        JobSpec { limits: Limits { memory: 2 << 30, ..Limits::default() }, ..spec() }
    }

    /// A node whose ceilings admit `big` jobs, with `slots` slots.
    fn big_node(name: &str, slots: u32) -> NodeRegistration {
        let mut reg = node(name);
        reg.capacity.slots = slots;
        reg.capacity.memory = 4 << 30;
        reg.capacity.per_job.memory = 4 << 30;
        reg
    }

    #[tokio::test]
    async fn a_refusal_lapses_only_with_the_refusing_node_s_own_heartbeat() {
        let live = live(3);
        let (a, mut rx_a) = live.register_node(node("a")).unwrap();
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx_a), Some(job.clone()));
        // A busy node b's heartbeat does not end a's refusal.
        let (b, mut rx_b) = live.register_node(node("b")).unwrap();
        let other = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx_b), Some(other));
        live.job_rejected(a, &job, "busy");
        live.heartbeat(b, beat(1 << 40, false));
        assert_eq!(assigned(&mut rx_a), None, "b's heartbeat ended a's refusal");
        // a is left out; b, the one node left, is busy.
        assert_eq!(live.summary(&job).unwrap().waiting.as_deref(), Some("waiting: every slot is busy"));
        live.heartbeat(a, beat(1 << 40, false));
        assert_eq!(assigned(&mut rx_a), Some(job));
    }

    #[tokio::test]
    async fn a_job_lost_on_a_node_is_never_offered_to_it_again() {
        let live = live(3);
        let (a, mut rx_a) = live.register_node(node("a")).unwrap();
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx_a), Some(job.clone()));
        live.lock().jobs.get_mut(&job).unwrap().avoid(a);
        live.job_rejected(a, &job, "late");
        for _ in 0..3 {
            live.heartbeat(a, beat(1 << 40, false));
        }
        assert_eq!(assigned(&mut rx_a), None, "offered again to the node that lost it");
        assert!(live.lock().queue.is_parked(&job), "no node could take it: it is parked");
        assert_eq!(
            live.summary(&job).unwrap().waiting.as_deref(),
            Some("waiting: lost by every connected node; it waits for another")
        );
        let (_b, mut rx_b) = live.register_node(node("b")).unwrap();
        assert_eq!(assigned(&mut rx_b), Some(job));
    }

    /// Finding 10: jobs that only a zero-slot node would take, waiting
    /// behind the work of a working node, are not looked at on every event.
    #[tokio::test]
    async fn jobs_no_node_can_run_are_parked_and_cost_nothing_while_they_wait() {
        const STUCK: usize = 11_000;
        let live = live(3);
        let (_zero, _rx_zero) = live.register_node(big_node("zero", 0)).unwrap();
        let (a, mut rx_a) = live.register_node(node("a")).unwrap();
        let mut stuck = Vec::new();
        for _ in 0..STUCK {
            stuck.push(submit(&live, big()).await.unwrap());
        }
        assert_eq!((live.queued(), live.lock().queue.parked()), (STUCK, STUCK));
        assert_eq!(
            live.summary(&stuck[0]).unwrap().waiting.as_deref(),
            Some("waiting: no node that admits it takes jobs (no slots, draining or quarantined)")
        );
        // Each later job, and each end of one, looks at the job it places
        // and nothing else: not the 11,000.
        let before = live.examined();
        for _ in 0..100 {
            let job = submit(&live, spec()).await.unwrap();
            assert_eq!(assigned(&mut rx_a), Some(job.clone()));
            live.job_finished(a, &job, JobReport::before_start(Outcome::Exited(0), "a", &Limits::default()));
            live.heartbeat(a, beat(1 << 40, false));
        }
        let examined = live.examined() - before;
        assert!(examined <= 100, "300 dispatches looked at {examined} jobs");
        // A node that can take them comes: they run, first come first.
        let (_big, mut rx_big) = live.register_node(big_node("big", 2)).unwrap();
        assert_eq!((assigned(&mut rx_big), assigned(&mut rx_big)), (Some(stuck[0].clone()), Some(stuck[1].clone())));
        assert_eq!(live.queued(), STUCK - 2);
    }

    #[tokio::test]
    async fn a_node_that_stops_draining_takes_the_jobs_parked_for_it() {
        let live = live(3);
        let (a, mut rx) = live.register_node(big_node("a", 1)).unwrap();
        live.heartbeat(a, beat(1 << 40, true));
        // b has a free slot, but its ceilings do not admit the job.
        let (_b, mut rx_b) = live.register_node(node("b")).unwrap();
        let job = submit(&live, big()).await.unwrap();
        assert_eq!((assigned(&mut rx), assigned(&mut rx_b)), (None, None));
        assert!(live.lock().queue.is_parked(&job));
        assert_eq!(
            live.summary(&job).unwrap().waiting.as_deref(),
            Some("waiting: no node that admits it takes jobs (no slots, draining or quarantined)")
        );
        live.heartbeat(a, beat(1 << 40, false));
        assert_eq!(assigned(&mut rx), Some(job));
    }

    #[tokio::test]
    async fn a_dispatch_looks_at_a_bounded_number_of_jobs_that_do_not_fit() {
        let live = live(3);
        let mut reg = node("a");
        reg.capacity.fuel_quota = FuelQuota { rate_per_hour: 1, burst: 1 << 40 };
        reg.fuel_available = 0;
        let (a, mut rx) = live.register_node(reg).unwrap();
        // Out of fuel for now: the jobs wait, but are not parked, since the
        // bucket refills.
        let jobs: Vec<_> = submit_many(&live, 1_500).await;
        assert_eq!(live.lock().queue.parked(), 0);
        let before = live.examined();
        live.heartbeat(a, beat(0, false));
        assert_eq!(live.examined() - before, dispatch::LOOKAHEAD as u64);
        live.heartbeat(a, beat(1 << 40, false));
        assert_eq!(assigned(&mut rx), Some(jobs[0].clone()));
    }

    async fn submit_many(live: &Arc<LiveState>, n: usize) -> Vec<JobId> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(submit(live, spec()).await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn tenants_take_turns_by_the_jobs_they_have_running() {
        let live = live(3);
        let mut reg = node("a");
        reg.capacity.slots = 2;
        let (a, mut rx) = live.register_node(reg).unwrap();
        let as_tenant = |t: &str| Submission { tenant: t.into(), ..Submission::default() };
        // alice takes both slots; then bob, with none running, goes first.
        let a1 = live.submit(spec(), as_tenant("alice")).await.unwrap();
        let a2 = live.submit(spec(), as_tenant("alice")).await.unwrap();
        let a3 = live.submit(spec(), as_tenant("alice")).await.unwrap();
        let b1 = live.submit(spec(), as_tenant("bob")).await.unwrap();
        assert_eq!((assigned(&mut rx), assigned(&mut rx)), (Some(a1.clone()), Some(a2)));
        live.job_finished(a, &a1, JobReport::before_start(Outcome::Exited(0), "a", &Limits::default()));
        assert_eq!(assigned(&mut rx), Some(b1.clone()));
        live.job_rejected(a, &b1, "busy");
        assert_eq!(assigned(&mut rx), Some(a3), "the slot b1 left goes to alice's next");
    }

    #[tokio::test]
    async fn a_node_with_a_connected_node_s_name_is_that_node_again_or_refused() {
        let live = live(3);
        let (a, mut rx) = live.register_node(node("a")).unwrap();
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        let stranger = NodeRegistration { identity: "someone else".into(), ..node("a") };
        let err = live.register_node(stranger).unwrap_err().to_string();
        assert_eq!(err, "a node named `a` is already connected; give this node another --name");
        // The same node reconnecting replaces its old session, whose job is
        // lost the usual way and runs again on the new one.
        let (again, mut rx_again) = live.register_node(node("a")).unwrap();
        assert_ne!(again, a);
        assert!(rx.try_recv().is_err() && rx.is_closed(), "the old session goes on");
        assert_eq!(assigned(&mut rx_again), Some(job.clone()));
        assert_eq!(live.nodes().len(), 1);
        // The old session's late end changes nothing.
        live.node_gone(a, "stream closed", NodeState::Gone);
        assert_eq!(live.nodes()[0].state, NodeState::Ready);
    }

    #[tokio::test]
    async fn a_shutdown_leaves_running_jobs_to_their_node_and_the_next_master_takes_them_back() {
        let store = Arc::new(MemoryStore::new());
        let live = Arc::new(LiveState::new(store.clone(), 1));
        let (a, mut rx) = live.register_node(node("a")).unwrap();
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        live.job_output(a, &job, OutputStream::Stdout, b"hello ".to_vec());
        assert_eq!(live.shut_down(), 1);
        store.flush().await.unwrap();
        let stored = store.job(&job).unwrap().unwrap();
        assert_eq!((stored.state, stored.attempts), (JobState::Running, 1));
        // Nothing more is sent or taken, and the node's end loses nothing.
        let err = submit(&live, spec()).await.unwrap_err().to_string();
        assert_eq!(err, "the master is shutting down");
        live.node_gone(a, "the master is shutting down", NodeState::Gone);
        assert_eq!(live.summary(&job).unwrap().state, JobState::Running);
        // The next master gives it to no other node: it waits for `a`.
        let next = Arc::new(LiveState::new(store.clone(), 1));
        next.recover(store.unfinished().unwrap());
        let (_b, mut rx_b) = next.register_node(node("b")).unwrap();
        assert_eq!(assigned(&mut rx_b), None, "a job that runs on its node was sent to another");
        assert_eq!(next.summary(&job).unwrap().state, JobState::Running);
        // Another node that names it is not given it.
        let other = next.register_node_holding(node("c"), &[(job.clone(), 10)]).unwrap();
        assert!(other.resumed.is_empty(), "a node took back another's job");
        // `a` comes back with it, and with a job this master does not
        // give it: the job goes on from the 6 bytes recorded.
        let held = [(job.clone(), 10), ("j-unknown".to_owned(), 0)];
        let back = next.register_node_holding(node("a"), &held).unwrap();
        assert_eq!(back.resumed, vec![(job.clone(), 6)]);
        let a2 = back.id;
        next.job_output(a2, &job, OutputStream::Stdout, b"done".to_vec());
        next.job_finished(a2, &job, JobReport::before_start(Outcome::Exited(0), "a", &Limits::default()));
        store.flush().await.unwrap();
        let stored = store.job(&job).unwrap().unwrap();
        assert_eq!((stored.state, stored.attempts), (JobState::Succeeded, 1), "{stored:?}");
        assert_eq!(
            store.output_of(&job).unwrap(),
            [(OutputStream::Stdout, b"hello ".to_vec()), (OutputStream::Stdout, b"done".to_vec())]
        );
    }

    #[tokio::test]
    async fn a_job_whose_node_does_not_come_back_runs_again_on_another() {
        let store = Arc::new(MemoryStore::new());
        let live = Arc::new(LiveState::new(store.clone(), 3));
        let (a, mut rx) = live.register_node(node("a")).unwrap();
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        live.job_output(a, &job, OutputStream::Stdout, b"void".to_vec());
        live.shut_down();
        store.flush().await.unwrap();
        let next = Arc::new(LiveState::new(store.clone(), 3));
        next.recover(store.unfinished().unwrap());
        let (_b, mut rx_b) = next.register_node(node("b")).unwrap();
        assert_eq!(assigned(&mut rx_b), None);
        assert_eq!(next.expire_awaiting(Instant::now()), 0, "expired before its window");
        assert_eq!(next.expire_awaiting(Instant::now() + REATTACH_WINDOW), 1);
        assert_eq!(assigned(&mut rx_b), Some(job.clone()));
        assert_eq!(next.summary(&job).unwrap().attempts, 2);
        store.flush().await.unwrap();
        assert!(store.output_of(&job).unwrap().is_empty(), "the void attempt's output was kept");
        // `a` comes back too late: it is not given the job.
        let late = next.register_node_holding(node("a"), &[(job.clone(), 4)]).unwrap();
        assert!(late.resumed.is_empty());
    }

    #[tokio::test]
    async fn a_node_not_trusted_that_comes_back_with_a_job_does_not_finish_it_unchecked() {
        let store = Arc::new(MemoryStore::new());
        let live = Arc::new(LiveState::new(store.clone(), 3));
        let (_a, mut rx) = live.register_node(node("a")).unwrap();
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        live.shut_down();
        store.flush().await.unwrap();
        // The next master verifies new nodes' results.
        let next = Arc::new(LiveState::new(store.clone(), 3).with_policy(VerifyPolicy::default()));
        next.recover(store.unfinished().unwrap());
        let back = next.register_node_holding(node("a"), &[(job.clone(), 0)]).unwrap();
        assert!(back.resumed.is_empty(), "a node not trusted went on with its job");
        // It runs again at once, verified: here it waits for a second node.
        let summary = next.summary(&job).unwrap();
        assert_eq!(summary.state, JobState::Queued, "{summary:?}");
        assert!(summary.waiting.as_deref().is_some_and(|w| w.contains("replicas")), "{summary:?}");
    }

    #[tokio::test]
    async fn a_node_back_before_its_old_session_ended_keeps_its_jobs() {
        let store = Arc::new(MemoryStore::new());
        let live = Arc::new(LiveState::new(store.clone(), 3));
        let (a, mut rx) = live.register_node(node("a")).unwrap();
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        live.job_output(a, &job, OutputStream::Stdout, b"12345".to_vec());
        let back = live.register_node_holding(node("a"), &[(job.clone(), 5)]).unwrap();
        assert_eq!(back.resumed, vec![(job.clone(), 5)]);
        let a2 = back.id;
        assert_eq!(live.summary(&job).unwrap().attempts, 1);
        // The old session's output counts no more; the new one's does.
        live.job_output(a, &job, OutputStream::Stdout, b"stale".to_vec());
        live.job_output(a2, &job, OutputStream::Stdout, b"6".to_vec());
        live.job_finished(a2, &job, JobReport::before_start(Outcome::Exited(0), "a", &Limits::default()));
        store.flush().await.unwrap();
        let out: Vec<u8> = store.output_of(&job).unwrap().into_iter().flat_map(|(_, d)| d).collect();
        assert_eq!(out, b"123456");
    }

    #[tokio::test]
    async fn node_counts_go_on_by_name_and_nodes_that_left_are_listed_after() {
        let store = Arc::new(MemoryStore::new());
        let live = Arc::new(LiveState::new(store.clone(), 3));
        let (a, mut rx) = live.register_node(node("a")).unwrap();
        let job = submit(&live, spec()).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        let mut report = JobReport::before_start(Outcome::Exited(0), "a", &Limits::default());
        report.fuel_used = 42;
        live.job_finished(a, &job, report);
        live.heartbeat(a, beat(1 << 40, true));
        assert_eq!(live.nodes()[0].state, NodeState::Draining);
        live.node_gone(a, "stream closed", NodeState::Gone);
        live.record_nodes();
        // Another master on the same record: the node's counts go on.
        let next = LiveState::new(store.clone(), 3);
        let (_b, _rx_b) = next.register_node(node("b")).unwrap();
        let listed = next.all_nodes(store.nodes(10).unwrap());
        let shown: Vec<_> = listed.iter().map(|n| (n.name.as_str(), n.state, n.jobs_run, n.fuel_burned)).collect();
        assert_eq!(shown, [("b", NodeState::Ready, 0, 0), ("a", NodeState::Gone, 1, 42)]);
        next.recall_node(store.node("a").unwrap().unwrap());
        next.register_node(node("a")).unwrap();
        let a_again = next.nodes().into_iter().find(|n| n.name == "a").unwrap();
        assert_eq!((a_again.state, a_again.jobs_run, a_again.fuel_burned), (NodeState::Ready, 1, 42));
    }

    /// Node `name`'s standing as the live state lists it (all nodes).
    fn listed(live: &LiveState, store: &MemoryStore, name: &str) -> NodeSummary {
        live.all_nodes(store.nodes(10).unwrap()).into_iter().find(|n| n.name == name).unwrap()
    }

    #[tokio::test]
    async fn a_node_standing_survives_a_restart_and_its_trust_follows_the_policy() {
        use crate::model::Standing;
        use crate::trust::VerifyMode;
        let store = Arc::new(MemoryStore::new());
        let live = LiveState::new(store.clone(), 3).with_policy(VerifyPolicy::default());
        let (a, _rx) = live.register_node(node("a")).unwrap();
        assert!(!live.nodes()[0].trusted, "a new node is trusted under the default policy");
        let earned = Standing { streak: 12, strikes: 1, quarantined: false, credit: 500 };
        live.lock().history.update_standing("a", |s| *s = earned);
        assert!(live.nodes()[0].trusted);
        live.node_gone(a, "stream closed", NodeState::Gone);
        live.record_nodes();
        // The next master reads it back, and applies its own policy.
        let strict = VerifyPolicy { mode: VerifyMode::Always, ..VerifyPolicy::default() };
        let next = LiveState::new(store.clone(), 3).with_policy(strict);
        let gone = listed(&next, &store, "a");
        assert_eq!((gone.standing, gone.trusted), (earned, false));
        next.recall_node(store.node("a").unwrap().unwrap());
        next.register_node(node("a")).unwrap();
        assert_eq!(next.nodes()[0].standing, earned);
        let lenient = LiveState::new(store.clone(), 3).with_policy(VerifyPolicy::off());
        assert!(listed(&lenient, &store, "a").trusted);
        // A quarantined node is trusted by no policy.
        let mut held = store.node("a").unwrap().unwrap();
        held.standing.quarantined = true;
        store.nodes_seen(vec![held]);
        assert!(!listed(&lenient, &store, "a").trusted);
    }

    #[tokio::test]
    async fn clearing_a_quarantine_starts_a_connected_node_over_and_is_recorded() {
        let store = Arc::new(MemoryStore::new());
        let live = LiveState::new(store.clone(), 3).with_policy(VerifyPolicy::default());
        let (_a, _rx) = live.register_node(node("a")).unwrap();
        let policy = live.policy();
        for _ in 0..policy.quarantine_after {
            live.lock().history.update_standing("a", |s| {
                VerifyPolicy::agreed(s, 10);
                policy.struck(s)
            });
        }
        assert!(live.nodes()[0].standing.quarantined);
        assert!(live.clear_quarantine("a", None).unwrap());
        let a = &live.nodes()[0];
        assert_eq!((a.standing.quarantined, a.standing.strikes, a.standing.streak), (false, 0, 0));
        assert_eq!(a.standing.credit, 10 * u64::from(policy.quarantine_after), "clearing took its credit");
        // Written at once: a restart keeps the clear.
        assert!(!store.node("a").unwrap().unwrap().standing.quarantined);
        assert!(!live.clear_quarantine("a", None).unwrap(), "cleared twice");
    }

    #[tokio::test]
    async fn a_node_only_the_record_knows_is_cleared_and_an_unknown_one_is_not_found() {
        use crate::model::Standing;
        let store = Arc::new(MemoryStore::new());
        let mut recorded = NodeRecord::new("old", "id-old", 1);
        recorded.state = NodeState::Gone;
        recorded.standing = Standing { streak: 0, strikes: 3, quarantined: true, credit: 77 };
        store.nodes_seen(vec![recorded.clone()]);
        let live = LiveState::new(store.clone(), 3);
        assert!(live.clear_quarantine("old", Some(recorded)).unwrap());
        assert_eq!(store.node("old").unwrap().unwrap().standing, Standing { credit: 77, ..Standing::default() });
        assert_eq!(listed(&live, &store, "old").state, NodeState::Gone);
        let err = live.clear_quarantine("nobody", None).unwrap_err();
        assert!(matches!(err, MasterError::NotFound(_)), "{err:?}");
        assert_eq!(err.to_string(), "no node `nobody` has been seen");
        // A record's answer for another name is not taken for this one.
        let other = NodeRecord::new("someone", "id", 1);
        assert!(matches!(live.clear_quarantine("nobody", Some(other)), Err(MasterError::NotFound(_))));
    }

    /// A node with `slots` slots and room for as many jobs.
    fn roomy(name: &str, slots: u32) -> NodeRegistration {
        let mut reg = node(name);
        reg.capacity.slots = slots;
        reg.capacity.memory = 1 << 40;
        reg.capacity.disk = 1 << 40;
        reg
    }

    fn of(tenant: &str) -> Submission {
        Submission { tenant: tenant.into(), ..Submission::default() }
    }

    fn ran(live: &LiveState, node: NodeId, job: &str, fuel: u64) {
        let mut report = JobReport::before_start(Outcome::Exited(0), "", &Limits::default());
        report.fuel_used = fuel;
        live.job_finished(node, job, report);
    }

    #[tokio::test]
    async fn a_job_over_a_per_job_maximum_of_its_tenant_is_refused_with_the_reason() {
        let live = live(3);
        live.set_quota("alice", TenantQuota { max_job_fuel: Some(1_000), ..TenantQuota::default() });
        let err = live.submit(spec(), of("alice")).await.unwrap_err();
        assert!(matches!(err, MasterError::OverQuota(_)), "{err:?}");
        assert_eq!(err.to_string(), "the job asks for 10G fuel (at most 1k): over tenant `alice`'s per-job quota");
        assert_eq!(tonic::Status::from(err).code(), tonic::Code::FailedPrecondition);
        let small = JobSpec { limits: Limits { fuel: 1_000, ..Limits::default() }, ..spec() };
        live.submit(small, of("alice")).await.unwrap();
        live.submit(spec(), of("bob")).await.unwrap();
    }

    #[tokio::test]
    async fn a_tenant_at_its_most_queued_jobs_is_refused_but_a_retry_of_one_of_them_is_not() {
        let live = live(3);
        live.set_quota("alice", TenantQuota { max_queued: Some(2), ..TenantQuota::default() });
        let keyed = Submission { key: Some("k".into()), ..of("alice") };
        let first = live.submit(spec(), keyed.clone()).await.unwrap();
        live.submit(spec(), of("alice")).await.unwrap();
        let err = live.submit(spec(), of("alice")).await.unwrap_err();
        assert_eq!(err.to_string(), "tenant `alice` has 2 jobs queued, its most; try again when some have started");
        assert_eq!(tonic::Status::from(err).code(), tonic::Code::ResourceExhausted);
        assert_eq!(live.submit(spec(), keyed).await.unwrap(), first, "a retry was refused");
        live.submit(spec(), of("bob")).await.unwrap();
        // Once one starts, another may come.
        let (_a, mut rx) = live.register_node(node("a")).unwrap();
        assert_eq!(assigned(&mut rx), Some(first));
        live.submit(spec(), of("alice")).await.unwrap();
        let usage: Vec<_> = live.tenant_usage().into_iter().map(|u| (u.name, u.running, u.queued)).collect();
        assert_eq!(usage, [("alice".into(), 1, 2), ("bob".into(), 0, 1)]);
    }

    #[tokio::test]
    async fn submissions_at_once_count_against_the_most_queued_before_they_are_queued() {
        let live = live(3);
        live.set_quota("alice", TenantQuota { max_queued: Some(5), ..TenantQuota::default() });
        let all = futures::future::join_all((0..20).map(|_| live.submit(spec(), of("alice")))).await;
        assert_eq!(all.iter().filter(|r| r.is_ok()).count(), 5);
        assert_eq!(live.queued(), 5);
        // Refused ones leave no count behind.
        assert_eq!(live.lock().admitted.len(), 0);
    }

    #[tokio::test]
    async fn a_tenant_at_its_most_running_jobs_waits_with_the_reason_and_others_go_by() {
        let live = live(3);
        live.set_quota("alice", TenantQuota { max_running: Some(1), ..TenantQuota::default() });
        let (a, mut rx) = live.register_node(roomy("a", 4)).unwrap();
        let a1 = live.submit(spec(), of("alice")).await.unwrap();
        let a2 = live.submit(spec(), of("alice")).await.unwrap();
        let b1 = live.submit(spec(), of("bob")).await.unwrap();
        assert_eq!((assigned(&mut rx), assigned(&mut rx), assigned(&mut rx)), (Some(a1.clone()), Some(b1), None));
        assert_eq!(
            live.summary(&a2).unwrap().waiting.as_deref(),
            Some("waiting: tenant `alice` is at its 1 running job")
        );
        ran(&live, a, &a1, 10);
        assert_eq!(assigned(&mut rx), Some(a2));
        // Raising the bound starts what it lets start, within one dispatch.
        let more: Vec<_> =
            [live.submit(spec(), of("alice")).await.unwrap(), live.submit(spec(), of("alice")).await.unwrap()].into();
        assert_eq!(assigned(&mut rx), None);
        live.set_quota("alice", TenantQuota { max_running: Some(3), ..TenantQuota::default() });
        assert_eq!((assigned(&mut rx), assigned(&mut rx)), (Some(more[0].clone()), Some(more[1].clone())));
    }

    #[tokio::test]
    async fn a_tenant_s_job_waits_until_its_fuel_bucket_refills_and_is_billed_what_it_burned() {
        let live = live(3);
        // 1 fuel a second, up to 100.
        let fuel = FuelQuota { rate_per_hour: 3_600, burst: 100 };
        live.set_quota("alice", TenantQuota { fuel: Some(fuel), ..TenantQuota::default() });
        let (a, mut rx) = live.register_node(roomy("a", 4)).unwrap();
        let sixty = JobSpec { limits: Limits { fuel: 60, ..Limits::default() }, ..spec() };
        let j1 = live.submit(sixty.clone(), of("alice")).await.unwrap();
        let j2 = live.submit(sixty.clone(), of("alice")).await.unwrap();
        let other = live.submit(spec(), of("bob")).await.unwrap();
        assert_eq!((assigned(&mut rx), assigned(&mut rx), assigned(&mut rx)), (Some(j1.clone()), Some(other), None));
        // 60 of the 100 are reserved while j1 runs.
        assert_eq!(
            live.summary(&j2).unwrap().waiting.as_deref(),
            Some("waiting: tenant `alice`'s fuel quota holds 40 now; the job needs 60 (3.6k/h flows in)")
        );
        // It burned 55: 45 left.
        ran(&live, a, &j1, 55);
        assert_eq!(assigned(&mut rx), None);
        let start = Instant::now();
        live.refuel(start + Duration::from_secs(5));
        assert_eq!(assigned(&mut rx), None, "started with 50 fuel of the 60 it needs");
        live.refuel(start + Duration::from_secs(20));
        assert_eq!(assigned(&mut rx), Some(j2.clone()));
        let alice = live.tenant_usage().into_iter().find(|u| u.name == "alice").unwrap();
        assert_eq!((alice.running, alice.jobs_run, alice.fuel_burned), (1, 1, 55));
        // A job handed back is not billed: its reservation comes back whole.
        live.job_rejected(a, &j2, "busy");
        let alice = live.tenant_usage().into_iter().find(|u| u.name == "alice").unwrap();
        assert_eq!((alice.running, alice.queued, alice.jobs_run), (0, 1, 1));
        assert!(alice.fuel_available.unwrap() >= 60, "{alice:?}");
    }

    #[tokio::test]
    async fn a_job_ended_for_output_past_its_limit_costs_its_tenant_its_whole_fuel_limit() {
        let live = live(3);
        let fuel = FuelQuota { rate_per_hour: 1, burst: 100 };
        live.set_quota("alice", TenantQuota { fuel: Some(fuel), ..TenantQuota::default() });
        let (a, mut rx) = live.register_node(node("a")).unwrap();
        let chatty = JobSpec { limits: Limits { fuel: 60, output: 4, ..Limits::default() }, ..spec() };
        let job = live.submit(chatty, of("alice")).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        live.job_output(a, &job, OutputStream::Stdout, b"too much".to_vec());
        let alice = live.tenant_usage().into_iter().next().unwrap();
        assert_eq!((alice.running, alice.fuel_available), (0, Some(40)));
    }

    #[tokio::test]
    async fn a_private_node_runs_only_its_owner_s_jobs() {
        let live = live(3);
        let mut private = roomy("p", 4);
        private.owner = Some("alice".into());
        let (_p, mut rx_p) = live.register_node(private).unwrap();
        // Bob's job, even one the private node could not take, waits.
        let bob = live.submit(spec(), of("bob")).await.unwrap();
        let huge = JobSpec { limits: Limits { memory: 1 << 40, ..Limits::default() }, ..spec() };
        live.submit(huge.clone(), of("bob")).await.unwrap();
        assert!(live.submit(huge, of("alice")).await.is_err(), "alice's own node does not count for her");
        let alice = live.submit(spec(), of("alice")).await.unwrap();
        assert_eq!((assigned(&mut rx_p), assigned(&mut rx_p)), (Some(alice), None));
        assert_eq!(
            live.summary(&bob).unwrap().waiting.as_deref(),
            Some("waiting: no connected node takes it: every connected node is private to another tenant than `bob`")
        );
        assert!(live.lock().queue.is_parked(&bob), "no connected node could take it: it is parked");
        // A public node serves everyone.
        let (_a, mut rx_a) = live.register_node(node("a")).unwrap();
        assert_eq!(assigned(&mut rx_a), Some(bob));
        assert_eq!(assigned(&mut rx_p), None);
    }

    /// A tenant held back by its quota costs nothing however many jobs it
    /// has waiting, and does not use up the lookahead.
    #[tokio::test]
    async fn a_tenant_held_back_with_many_jobs_waiting_costs_each_dispatch_nothing() {
        const HELD: usize = 5_000;
        let live = live(3);
        let fuel = FuelQuota { rate_per_hour: 1, burst: Limits::DEFAULT_FUEL };
        live.set_quota("alice", TenantQuota { max_running: Some(1), ..TenantQuota::default() });
        live.set_quota("carol", TenantQuota { fuel: Some(fuel), ..TenantQuota::default() });
        let (a, mut rx) = live.register_node(roomy("a", 3)).unwrap();
        for _ in 0..HELD {
            live.submit(spec(), of("alice")).await.unwrap();
            live.submit(spec(), of("carol")).await.unwrap();
        }
        // One of each runs; carol's bucket is now empty, alice is at her bound.
        assert!(assigned(&mut rx).is_some() && assigned(&mut rx).is_some());
        assert_eq!(assigned(&mut rx), None);
        let before = live.examined();
        for _ in 0..100 {
            let job = live.submit(spec(), of("bob")).await.unwrap();
            assert_eq!(assigned(&mut rx), Some(job.clone()));
            ran(&live, a, &job, 1);
            live.heartbeat(a, beat(1 << 40, false));
            live.refuel(Instant::now());
        }
        let examined = live.examined() - before;
        // Each of the 400 dispatches looks at most at bob's job and carol's next one,
        // never at the 10,000 waiting.
        assert!(examined <= 500, "400 dispatches looked at {examined} jobs");
        assert_eq!(live.queued(), 2 * HELD - 2);
    }

    #[tokio::test]
    async fn tenants_held_back_ahead_in_the_queue_do_not_use_up_the_lookahead() {
        let live = live(3);
        let paused = TenantQuota { max_running: Some(0), ..TenantQuota::default() };
        let held = dispatch::LOOKAHEAD + 500;
        for t in 0..held {
            let tenant = format!("t{t}");
            live.set_quota(&tenant, paused);
            live.submit(spec(), of(&tenant)).await.unwrap();
        }
        let bob = live.submit(spec(), of("bob")).await.unwrap();
        let (_a, mut rx) = live.register_node(node("a")).unwrap();
        assert_eq!(assigned(&mut rx), Some(bob), "the job behind the held tenants waited");
        assert_eq!(live.examined(), 1, "held tenants' jobs were looked at");
    }

    #[tokio::test]
    async fn what_tenants_ran_is_counted_and_lasts_across_restarts() {
        let store = Arc::new(MemoryStore::new());
        let live = Arc::new(LiveState::new(store.clone(), 3));
        let (a, mut rx) = live.register_node(node("a")).unwrap();
        let job = live.submit(spec(), of("alice")).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(job.clone()));
        ran(&live, a, &job, 42);
        let lost = live.submit(spec(), of("alice")).await.unwrap();
        assert_eq!(assigned(&mut rx), Some(lost));
        live.node_gone(a, "gone", NodeState::Lost);
        let expect =
            TenantUsage { name: "alice".into(), queued: 1, jobs_run: 1, fuel_burned: 42, ..Default::default() };
        assert_eq!(live.tenant_usage(), [expect]);
        store.flush().await.unwrap();
        let next = LiveState::new(store.clone(), 3);
        let expect = TenantUsage { name: "alice".into(), jobs_run: 1, fuel_burned: 42, ..Default::default() };
        assert_eq!(next.tenant_usage(), [expect]);
    }
}
