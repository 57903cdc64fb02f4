//! The gRPC face of the master: the one module of this crate that sees
//! prost types. It converts them to domain types and calls into `state`.

use crate::auth::{Caller, Tokens};
use crate::ceilings::SubmitCeilings;
use crate::error::MasterError;
use crate::gates::{Gate, Permit};
use crate::listing;
use crate::model::{JobEvent, JobId, JobSummary, NodeRegistration, StoredJob, ToNode};
use crate::modules::ModuleStore;
use crate::nodes::MAX_CACHED_PER_NODE;
use crate::record::{Filter, JobStore};
use crate::state::{LiveState, blocking};
use crate::trust::VerifyMode;
use crate::watch::{EventLog, JobWatch};
use futures::Stream as FutStream;
use grid_core::{JobReport, JobSpec, JobState, ModuleHash};
use grid_proto as pb;
use grid_proto::master_server::Master;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

type BoxStream<T> = Pin<Box<dyn FutStream<Item = Result<T, Status>> + Send>>;
type Result<T, E = Status> = std::result::Result<T, E>;

/// Chunk size for module transfers.
const CHUNK: usize = 1 << 20;
/// The longest job id a node may name among the jobs it holds (the
/// master's ids are 26 characters).
const MAX_JOB_ID: usize = 64;
/// The most hashes one `MissingModules` call may ask about.
pub const MAX_HASHES_ASKED: usize = 1_000;
/// The longest node name kept; longer ones are cut.
pub const MAX_NODE_NAME: usize = 64;

/// The tonic service.
pub struct MasterService {
    pub(crate) live: Arc<LiveState>,
    pub(crate) store: Arc<ModuleStore>,
    pub(crate) heartbeat: Duration,
    pub(crate) ceilings: SubmitCeilings,
    /// How long an upload may go without sending data.
    pub(crate) upload_idle: Duration,
    pub(crate) uploads: Arc<Gate>,
    pub(crate) watchers: Arc<Gate>,
    /// Turns true when the master shuts down: every stream then ends.
    pub(crate) closing: tokio::sync::watch::Receiver<bool>,
    /// The token registry, for enrolling nodes and naming their owners.
    pub(crate) tokens: Option<Arc<Tokens>>,
}

impl MasterService {
    /// The service over `live` and `store`, with the master's bounds.
    pub(crate) fn new(
        live: Arc<LiveState>,
        store: Arc<ModuleStore>,
        heartbeat: Duration,
        ceilings: SubmitCeilings,
        upload_idle: Duration,
    ) -> Self {
        Self {
            live,
            store,
            heartbeat,
            ceilings,
            upload_idle,
            uploads: Gate::new("uploads", crate::UPLOADS_PER_CONNECTION, crate::UPLOADS_IN_ALL),
            watchers: Gate::new("jobs followed", crate::WATCHERS_PER_CONNECTION, usize::MAX),
            closing: tokio::sync::watch::channel(false).1,
            tokens: None,
        }
    }

    /// The same service, enrolling nodes with `tokens`.
    pub(crate) fn with_tokens(self, tokens: Arc<Tokens>) -> Self {
        Self { tokens: Some(tokens), ..self }
    }

    /// The same service, its streams ending when `closing` turns true.
    pub(crate) fn closing_on(self, closing: tokio::sync::watch::Receiver<bool>) -> Self {
        Self { closing, ..self }
    }
}

/// Resolves once `closing` turns true (never, if its sender is gone before).
async fn closed(mut closing: tokio::sync::watch::Receiver<bool>) {
    if closing.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `stream` until the master shuts down; then it ends with `unavailable`,
/// which tells a node to reconnect and a follower to follow again, both to
/// the next master.
fn until_shutdown<T: Send + 'static>(
    stream: BoxStream<T>,
    closing: tokio::sync::watch::Receiver<bool>,
) -> BoxStream<T> {
    let ending = Box::pin(closed(closing));
    Box::pin(futures::stream::unfold(Some((stream, ending)), |state| async move {
        let (mut stream, mut ending) = state?;
        tokio::select! {
            biased;
            _ = &mut ending => Some((Err(Status::from(MasterError::ShuttingDown)), None)),
            item = stream.next() => item.map(|item| (item, Some((stream, ending)))),
        }
    }))
}

/// The connection a request came on, as gates count it.
fn connection<T>(req: &Request<T>) -> String {
    req.remote_addr().map(|a| a.to_string()).unwrap_or_default()
}

/// A stream that holds `permit` for as long as it lives.
fn holding<T: Send + 'static>(stream: BoxStream<T>, permit: Permit) -> BoxStream<T> {
    Box::pin(stream.map(move |item| {
        let _held = &permit;
        item
    }))
}

/// The tenant a submission by `caller` naming tenant `named` (empty for
/// none) runs as: a tenant's own; the admin's choice, `default` if none.
fn submitting_tenant(caller: &Caller, named: &str) -> Result<String, MasterError> {
    match caller {
        Caller::Admin if named.is_empty() => Ok(crate::auth::DEFAULT_TENANT.to_owned()),
        Caller::Admin => {
            crate::auth::tokens::check_name("tenant", named)?;
            Ok(named.to_owned())
        }
        Caller::Tenant(t) if named.is_empty() || named == t => Ok(t.clone()),
        Caller::Tenant(t) => Err(MasterError::Refused(format!(
            "a token of tenant `{t}` submits only as `{t}`, not as `{}`",
            grid_core::text::cut(named, 64)
        ))),
        Caller::Node { .. } | Caller::Join { .. } => {
            Err(MasterError::Refused("only the admin or a tenant may submit jobs".into()))
        }
    }
}

/// The tenant whose jobs alone `caller` may see; `None` for all.
fn only_tenant(caller: &Caller) -> Result<Option<&str>, MasterError> {
    match caller {
        Caller::Admin => Ok(None),
        Caller::Tenant(t) => Ok(Some(t)),
        Caller::Node { .. } | Caller::Join { .. } => {
            Err(MasterError::Refused("only the admin or a tenant may look at jobs".into()))
        }
    }
}

fn hash(s: &str) -> Result<ModuleHash, MasterError> {
    Ok(ModuleHash::parse(s)?)
}

fn event_to_pb(e: JobEvent) -> pb::JobEvent {
    use pb::job_event::Event;
    let event = match e {
        JobEvent::Assigned(node) => Event::AssignedNode(node),
        JobEvent::Output(s, data) => Event::Output(pb::OutputChunk { stream: pb::OutputStream::from(s) as i32, data }),
        JobEvent::Retry(attempt) => Event::Retry(attempt),
        JobEvent::Finished(report) => Event::Finished(Arc::unwrap_or_clone(report).into()),
    };
    pb::JobEvent { event: Some(event) }
}

fn info_to_pb(j: JobSummary) -> pb::JobInfo {
    pb::JobInfo {
        quorum: j.quorum,
        id: j.id,
        state: j.state.as_str().to_owned(),
        tenant: j.tenant,
        priority: j.priority,
        waiting: j.waiting.unwrap_or_default(),
        node: j.node,
        attempts: j.attempts,
        submitted_ms: j.submitted_ms,
        started_ms: j.started_ms.unwrap_or(0),
        finished_ms: j.finished_ms.unwrap_or(0),
        module_hash: j.module.to_string(),
        args: j.args,
        result: j.result.map(Into::into),
        attempt_list: j.history.into_iter().map(Into::into).collect(),
    }
}

impl MasterService {
    /// A blocking read of the job record, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn JobStore) -> crate::Result<T> + Send + 'static,
    ) -> Result<T, MasterError> {
        let store = self.live.store();
        blocking(move || f(&*store)).await
    }

    async fn stored(&self, id: &str) -> Result<Option<StoredJob>, MasterError> {
        let id = id.to_owned();
        self.read(move |store| store.job(&id)).await
    }

    /// A watcher of a recorded job's events: its node, its output (read
    /// from the record page by page as the watcher is pulled), its end.
    async fn replay(&self, id: &str) -> Result<JobWatch, MasterError> {
        let job = self.stored(id).await?.ok_or_else(|| MasterError::JobNotFound(id.to_owned()))?;
        // The directories are read again when the end is sent, not held meanwhile.
        let dirs_in_record = job.result.as_ref().is_some_and(|r| !r.dirs.is_empty());
        let report = job.result.map(|r| Arc::new(JobReport { dirs: Vec::new(), ..r }));
        Ok(Arc::new(EventLog::ended(&job.node, report, dirs_in_record)).watch(id, self.live.store()))
    }

    /// Whether `caller` may see job `id`: a tenant sees only its own, and
    /// another's is answered as a job that does not exist.
    async fn visible(&self, caller: &Caller, id: &str) -> Result<(), MasterError> {
        let Some(mine) = only_tenant(caller)? else { return Ok(()) };
        let tenant = match self.live.tenant_of(id) {
            Some(t) => Some(t),
            None => self.stored(id).await?.map(|j| j.tenant),
        };
        match tenant {
            Some(t) if t == mine => Ok(()),
            _ => Err(MasterError::JobNotFound(id.to_owned())),
        }
    }

    /// Checks a submission by `caller` and hands it to the live state;
    /// returns its id (an earlier job's, for a known idempotency key of
    /// the same tenant).
    async fn submit(&self, caller: &Caller, mut req: pb::SubmitJobRequest) -> Result<String, MasterError> {
        if req.spec.is_none() {
            return Err(MasterError::InvalidArgument("missing job spec".into()));
        }
        req.tenant = submitting_tenant(caller, &req.tenant)?;
        let (spec, mut submission) = grid_core::wire::from_submit_request(req)?;
        self.ceilings.check(&spec, &submission)?;
        submission.key = submission.key.map(|k| crate::auth::scoped_key(&submission.tenant, &k));
        if !self.store.contains(&spec.module) {
            return Err(MasterError::ModuleNotFound(spec.module));
        }
        if spec.limits.fuel == 0 || spec.limits.memory == 0 || spec.limits.timeout.is_zero() {
            return Err(MasterError::InvalidArgument("fuel, memory and timeout limits must be above zero".into()));
        }
        let job_id = self.live.submit(spec, submission).await?;
        tracing::debug!(job = %job_id, "job queued");
        Ok(job_id)
    }

    /// A job's events from its start: as they come until it ends, or with
    /// `snapshot` only those so far. A job no longer in memory replays its
    /// record. Each batch is bounded, and the next is read only when the
    /// stream is pulled, so a slow client is paced by flow control.
    async fn events(&self, job_id: &str, snapshot: bool) -> Result<BoxStream<pb::JobEvent>, MasterError> {
        let watch = match self.live.watch(job_id) {
            Ok(watch) => watch,
            Err(MasterError::JobNotFound(_)) => self.replay(job_id).await?,
            Err(e) => return Err(e),
        };
        use futures::StreamExt as _;
        let events = futures::stream::unfold(Some(watch), move |watch| async move {
            let mut watch = watch?;
            let batch = if snapshot { watch.next_now().await } else { watch.next().await };
            match batch {
                Ok(Some(batch)) => Some((
                    futures::stream::iter(batch.into_iter().map(|e| Ok(event_to_pb(e)))).left_stream(),
                    Some(watch),
                )),
                Ok(None) => None,
                Err(e) => Some((futures::stream::iter([Err(Status::from(e))]).right_stream(), None)),
            }
        });
        Ok(Box::pin(events.flatten()))
    }
}

/// Whether a listed job (its node cut as listings cut it) still ran on
/// `node` once the live state's view is laid over the record's.
fn listed_on(j: &JobSummary, node: &str) -> bool {
    j.node == listing::cut_chars(node.to_owned(), listing::NAME_LISTED)
}

/// Job `id`'s spec as the record holds it, with all its inputs.
async fn full_spec(live: &LiveState, id: &str) -> Result<JobSpec, MasterError> {
    let (store, owned) = (live.store(), id.to_owned());
    let stored = blocking(move || store.job(&owned)).await?;
    stored.map(|j| j.spec).ok_or_else(|| MasterError::JobNotFound(id.to_owned()))
}

#[tonic::async_trait]
impl Master for MasterService {
    async fn missing_modules(
        &self,
        req: Request<pb::MissingModulesRequest>,
    ) -> Result<Response<pb::MissingModulesResponse>, Status> {
        let hashes = req.into_inner().hashes;
        if hashes.len() > MAX_HASHES_ASKED {
            let n = hashes.len();
            return Err(MasterError::InvalidArgument(format!(
                "too many hashes in one call: {n}, over the limit of {MAX_HASHES_ASKED}"
            ))
            .into());
        }
        let mut missing = Vec::new();
        for h in hashes {
            if !self.store.contains(&hash(&h)?) {
                missing.push(h);
            }
        }
        Ok(Response::new(pb::MissingModulesResponse { missing }))
    }

    async fn upload_module(
        &self,
        req: Request<Streaming<pb::UploadChunk>>,
    ) -> Result<Response<pb::UploadModuleResponse>, Status> {
        let _permit = self.uploads.enter(&connection(&req))?;
        let mut chunks = req.into_inner();
        let idle = self.upload_idle;
        // An upload that stops sending is dropped, with its partial file.
        let mut next = async || match tokio::time::timeout(idle, chunks.message()).await {
            Ok(chunk) => chunk,
            Err(_) => Err(MasterError::upload_stalled(idle).into()),
        };
        let first = next().await?.ok_or_else(|| MasterError::InvalidArgument("empty upload".into()))?;
        let expected = hash(&first.hash)?;
        let mut upload = self.store.begin(expected, first.total_size)?;
        upload.write(&first.data)?;
        while let Some(chunk) = next().await? {
            upload.write(&chunk.data)?;
        }
        let (hash, size) = upload.finish()?;
        tracing::info!(module = %hash.short(), size, "module stored");
        Ok(Response::new(pb::UploadModuleResponse { hash: hash.to_string(), size }))
    }

    async fn submit_job(&self, req: Request<pb::SubmitJobRequest>) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let caller = Caller::of(&req)?.clone();
        let job_id = self.submit(&caller, req.into_inner()).await?;
        Ok(Response::new(pb::SubmitJobResponse { job_id }))
    }

    type WatchJobStream = BoxStream<pb::JobEvent>;

    async fn watch_job(&self, req: Request<pb::WatchJobRequest>) -> Result<Response<Self::WatchJobStream>, Status> {
        let caller = Caller::of(&req)?.clone();
        let permit = self.watchers.enter(&connection(&req))?;
        let req = req.into_inner();
        self.visible(&caller, &req.job_id).await?;
        let events = self.events(&req.job_id, req.snapshot).await?;
        Ok(Response::new(holding(until_shutdown(events, self.closing.clone()), permit)))
    }

    type RunJobStream = BoxStream<pb::JobEvent>;

    async fn run_job(&self, req: Request<pb::SubmitJobRequest>) -> Result<Response<Self::RunJobStream>, Status> {
        let caller = Caller::of(&req)?.clone();
        let permit = self.watchers.enter(&connection(&req))?;
        let job_id = self.submit(&caller, req.into_inner()).await?;
        let events = self.events(&job_id, false).await?;
        let submitted = pb::JobEvent { event: Some(pb::job_event::Event::Submitted(job_id)) };
        let stream: BoxStream<pb::JobEvent> = Box::pin(futures::stream::once(async { Ok(submitted) }).chain(events));
        Ok(Response::new(holding(until_shutdown(stream, self.closing.clone()), permit)))
    }

    async fn cancel_job(&self, req: Request<pb::CancelJobRequest>) -> Result<Response<pb::CancelJobResponse>, Status> {
        let caller = Caller::of(&req)?.clone();
        let id = req.into_inner().job_id;
        self.visible(&caller, &id).await?;
        let cancelled = self.live.cancel(&id)?;
        Ok(Response::new(pb::CancelJobResponse { cancelled }))
    }

    async fn get_job(&self, req: Request<pb::GetJobRequest>) -> Result<Response<pb::JobInfo>, Status> {
        let caller = Caller::of(&req)?.clone();
        let id = req.into_inner().job_id;
        self.visible(&caller, &id).await?;
        let in_memory = self.live.summary(&id);
        let live = in_memory.is_some();
        let summary = match in_memory {
            // Memory may hold a job's args cut (the whole spec is in the
            // record); one job's status shows them whole.
            Some(mut s) if s.args.iter().map(String::len).sum::<usize>() >= crate::record::INPUT_KEPT / 2 => {
                if let Some(stored) = self.stored(&id).await? {
                    s.args = stored.spec.args;
                }
                s
            }
            Some(s) => s,
            None => self.stored(&id).await?.map(JobSummary::from).ok_or(MasterError::JobNotFound(id.clone()))?,
        };
        let recorded = self.read(move |store| store.attempts(&id)).await;
        let recorded = match recorded {
            Ok(recorded) => recorded,
            // A live job is shown from memory when its history cannot be read.
            Err(e) if live => {
                tracing::warn!("failed to read a job's attempts: {e}");
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Response::new(info_to_pb(summary.with_history(recorded))))
    }

    async fn list_jobs(&self, req: Request<pb::ListJobsRequest>) -> Result<Response<pb::ListJobsResponse>, Status> {
        let caller = Caller::of(&req)?.clone();
        let mut req = req.into_inner();
        filters_within_bounds(&req)?;
        // A tenant lists its own jobs, whatever it asks for.
        if let Some(mine) = only_tenant(&caller)? {
            req.tenant = mine.to_owned();
            if !req.after.is_empty() {
                self.visible(&caller, &listing::cut_chars(req.after.clone(), 64)).await?;
            }
        }
        let limit = listing::page_size(req.limit);
        let state = Some(req.state).filter(|s| !s.is_empty()).map(|s| s.parse::<JobState>()).transpose();
        let state = state.map_err(MasterError::from)?;
        let given = |s: String| Some(s).filter(|s| !s.is_empty());
        let filter = Filter {
            state,
            tenant: given(req.tenant),
            node: given(req.node),
            module_prefix: given(req.module_prefix.to_ascii_lowercase()),
        };
        let before = match (req.page_token.as_str(), req.after) {
            ("", after) if after.is_empty() => None,
            ("", after) => {
                let known = self.read({
                    let after = after.clone();
                    move |store| store.position(&after)
                });
                Some(known.await?.ok_or_else(|| MasterError::JobNotFound(listing::cut_chars(after, 64)))?)
            }
            (token, _) => Some(token.parse::<u64>().map_err(|_| {
                let token = listing::cut_chars(token.to_owned(), 64);
                MasterError::InvalidArgument(format!("page token `{token}` is not one this master gave"))
            })?),
        };
        // A page of the record, then what the live state knows of those
        // jobs still in memory; the state filter holds after the overlay.
        let page = self
            .read({
                let filter = filter.clone();
                move |store| store.list(&filter, before, limit)
            })
            .await?;
        let ids: Vec<_> = page.jobs.iter().map(|j| j.id.clone()).collect();
        let live = self.live.summaries(&ids);
        let jobs = page
            .jobs
            .into_iter()
            .zip(live)
            .map(|(stored, live)| live.unwrap_or_else(|| JobSummary::from(stored)))
            .filter(|j| state.is_none_or(|s| s == j.state) && filter.node.as_ref().is_none_or(|n| listed_on(j, n)))
            .map(info_to_pb)
            .collect();
        let next_page_token = page.next.map(|seq| seq.to_string()).unwrap_or_default();
        Ok(Response::new(pb::ListJobsResponse { jobs, next_page_token }))
    }

    async fn list_nodes(&self, req: Request<pb::ListNodesRequest>) -> Result<Response<pb::ListNodesResponse>, Status> {
        let caller = Caller::of(&req)?.clone();
        let nodes = if req.into_inner().all {
            let recorded = self.read(|store| store.nodes(crate::history::NODES_LISTED)).await?;
            self.live.all_nodes(recorded)
        } else {
            self.live.nodes()
        };
        let owners = self.tokens.as_ref().map(|t| t.node_owners()).unwrap_or_default();
        let owner_of = |name: &str| owners.get(name).cloned();
        let mine = only_tenant(&caller)?;
        let nodes = nodes
            .into_iter()
            .map(|n| (owner_of(&n.name), n))
            // A tenant sees the public nodes and its own private ones.
            .filter(|(owner, _)| mine.is_none() || owner.is_none() || owner.as_deref() == mine)
            .map(|(owner, n)| pb::NodeInfo {
                credit: n.standing.credit,
                trust: n.standing.streak,
                trusted: n.trusted,
                quarantined: n.standing.quarantined,
                strikes: n.standing.strikes,
                id: n.id.to_string(),
                name: listing::cut_chars(n.name, listing::NAME_LISTED),
                // Where a volunteer's machine is on the network is the
                // admin's to know, not every tenant's.
                address: if mine.is_none() {
                    listing::cut_chars(n.address, listing::NAME_LISTED)
                } else {
                    String::new()
                },
                slots_total: n.slots_total,
                slots_used: n.slots_used,
                memory_total: n.memory_total,
                memory_used: n.memory_used,
                fuel_per_hour: n.fuel_per_hour,
                fuel_available: n.fuel_available,
                cached_modules: n.cached_modules,
                jobs_run: n.jobs_run,
                fuel_burned: n.fuel_burned,
                lost_jobs: n.lost_jobs,
                state: n.state.as_str().to_owned(),
                first_seen_ms: n.first_seen_ms,
                last_seen_ms: n.last_seen_ms,
                owner: owner.unwrap_or_default(),
            })
            .collect();
        let policy = self.live.policy();
        let trust_after = if policy.mode == VerifyMode::Adaptive { policy.trust_after } else { 0 };
        Ok(Response::new(pb::ListNodesResponse { nodes, trust_after }))
    }

    type NodeSessionStream = BoxStream<pb::MasterMessage>;

    async fn node_session(
        &self,
        req: Request<Streaming<pb::NodeMessage>>,
    ) -> Result<Response<Self::NodeSessionStream>, Status> {
        let Caller::Node { token_id, name, owner } = Caller::of(&req)?.clone() else {
            return Err(MasterError::Refused("only a node credential may serve as a node".into()).into());
        };
        let address = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let mut inbound = req.into_inner();
        // A credential holds no idle stream: `register` comes within three
        // heartbeats, as every message after it does.
        let wait = self.heartbeat * 3;
        let first = tokio::time::timeout(wait, inbound.message()).await.map_err(|_| {
            Status::deadline_exceeded(format!("no `register` within {}ms of opening the session", wait.as_millis()))
        })?;
        let first = first?.and_then(|m| m.msg);
        let Some(pb::node_message::Msg::Register(reg)) = first else {
            return Err(MasterError::Protocol("the first message of a node session must be `register`".into()).into());
        };
        let (capacity, fuel_available) = grid_core::wire::capacity_from_pb(&reg.capacity.unwrap_or_default());
        let cached =
            reg.cached_hashes.iter().take(MAX_CACHED_PER_NODE).filter_map(|h| ModuleHash::parse(h).ok()).collect();
        // A node is the name its credential gives it.
        if reg.name != name {
            let asked = grid_core::text::cut(&reg.name, MAX_NODE_NAME);
            tracing::debug!(node = %name, asked = %asked, "a node registered under another name than its credential's");
        }
        let identity = grid_core::text::cut(&reg.identity, MAX_NODE_NAME).into_owned();
        // What the record holds of this node, so that its counts go on.
        let known = name.clone();
        if let Some(recorded) = self.read(move |store| store.node(&known)).await? {
            self.live.recall_node(recorded);
        }
        let compile_allowance = crate::compiling::allowance(Duration::from_millis(reg.compile_timeout_ms));
        let registration = NodeRegistration {
            name: name.clone(),
            address,
            capacity,
            fuel_available,
            cached,
            identity,
            owner,
            compile_allowance,
        };
        // Jobs it held from an earlier session: a bounded number, each with
        // an id of a sane length (no job has a longer one).
        let held: Vec<(JobId, u64)> = reg
            .held
            .into_iter()
            .take(crate::state::MAX_HELD)
            .filter(|h| h.job_id.len() <= MAX_JOB_ID)
            .map(|h| (h.job_id, h.output_bytes))
            .collect();
        let crate::state::Registered { id: node_id, orders, resumed } =
            self.live.register_node_holding(registration, &held)?;
        // A credential revoked while the node took its time to register:
        // revocation marks the token first and then ends the sessions of
        // that name, so one of the two sees this session.
        if self.tokens.as_ref().is_some_and(|t| !t.is_live(&token_id)) {
            self.live.drop_node_named(&name, crate::admin::REVOKED_NODE);
        }

        let registered = pb::MasterMessage {
            msg: Some(pb::master_message::Msg::Registered(pb::Registered {
                node_id: node_id.to_string(),
                heartbeat_ms: self.heartbeat.as_millis() as u64,
                resume: resumed.into_iter().map(|(job_id, from_byte)| pb::ResumeJob { job_id, from_byte }).collect(),
            })),
        };
        // One order at a time, in order: an assignment whose inputs are
        // only in the record waits for them to be read, and so does what
        // follows it.
        let live = self.live.clone();
        let orders = futures::StreamExt::then(
            tokio_stream::wrappers::UnboundedReceiverStream::new(orders),
            move |order| {
                let live = live.clone();
                async move {
                    let msg = match order {
                        ToNode::Assign(job_id, spec) => {
                            let spec = if live.spec_in_record(&job_id) {
                                match full_spec(&live, &job_id).await {
                                    // Whether it runs deterministically is the
                                    // master's to decide, not the record's.
                                    Ok(full) => JobSpec { deterministic: spec.deterministic, ..full },
                                    Err(e) => {
                                        let reason = format!("cannot read the job's spec from the record: {e}");
                                        tracing::error!(job = %job_id, error = %e, "cannot read the job's spec from the record");
                                        live.job_rejected(node_id, &job_id, &reason);
                                        return None;
                                    }
                                }
                            } else {
                                (*spec).clone()
                            };
                            pb::master_message::Msg::Assign(pb::Assign { job_id, spec: Some(spec.into()) })
                        }
                        ToNode::Cancel(job_id) => pb::master_message::Msg::Cancel(pb::Cancel { job_id }),
                        ToNode::End(why) => return Some(Err(Status::permission_denied(why))),
                    };
                    Some(Ok(pb::MasterMessage { msg: Some(msg) }))
                }
            },
        );
        let outbound: BoxStream<pb::MasterMessage> =
            Box::pin(tokio_stream::once(Ok(registered)).chain(orders.filter_map(|order| order)));
        let outbound = until_shutdown(outbound, self.closing.clone());
        let closing = self.closing.clone();

        let live = self.live.clone();
        // A node that is silent for three heartbeats is gone.
        let silence = self.heartbeat * 3;
        tokio::spawn(async move { crate::session::read_node(&live, node_id, inbound, silence, closed(closing)).await });
        Ok(Response::new(Box::pin(outbound)))
    }

    type FetchModuleStream = BoxStream<pb::ModuleChunk>;

    async fn join_grid(&self, req: Request<pb::JoinGridRequest>) -> Result<Response<pb::JoinGridResponse>> {
        let Caller::Join { token_id } = Caller::of(&req)?.clone() else {
            return Err(MasterError::Refused("only a join token may join the grid".into()).into());
        };
        let Some(tokens) = self.tokens.clone() else {
            return Err(Status::unimplemented("this master enrols no nodes"));
        };
        let req = req.into_inner();
        let name = if req.name.is_empty() { req.identity } else { req.name };
        let (info, token) = blocking(move || tokens.join(&token_id, &name)).await?;
        tracing::info!(node = %info.subject, owner = info.owner.as_deref().unwrap_or(""), "node enrolled");
        Ok(Response::new(pb::JoinGridResponse {
            node_token: token.to_string(),
            name: info.subject,
            owner: info.owner.unwrap_or_default(),
        }))
    }

    async fn fetch_module(
        &self,
        req: Request<pb::FetchModuleRequest>,
    ) -> Result<Response<Self::FetchModuleStream>, Status> {
        let Caller::Node { name, .. } = Caller::of(&req)?.clone() else {
            return Err(MasterError::Refused("only a node credential may fetch modules".into()).into());
        };
        let h = hash(&req.into_inner().hash)?;
        if !self.live.may_fetch(&name, &h) {
            return Err(MasterError::Refused(format!(
                "fetch refused: module `{}` is fetched only by a connected node running a job of it",
                h.short()
            ))
            .into());
        }
        let file = self.store.open_module(&h).await?;
        // Read as the node pulls: a stalled fetch holds one chunk, not the module.
        let chunks = futures::stream::try_unfold(file, |mut file| async move {
            use tokio::io::AsyncReadExt;
            let mut data = Vec::with_capacity(CHUNK);
            while data.len() < CHUNK {
                if (&mut file).take((CHUNK - data.len()) as u64).read_to_end(&mut data).await? == 0 {
                    break;
                }
            }
            Ok::<_, std::io::Error>((!data.is_empty()).then_some((pb::ModuleChunk { data }, file)))
        });
        let chunks = chunks.map(|c| c.map_err(|e| Status::internal(format!("reading a module: {e}"))));
        Ok(Response::new(Box::pin(chunks)))
    }
}

/// Refuses a listing filter longer than anything it could match: a tenant
/// over [`crate::ceilings::MAX_TENANT`] bytes, a node name over the 64
/// characters a node's name is cut to, a module prefix over a hash's 64 hex
/// digits (or not hex), a job id over 64 characters.
fn filters_within_bounds(req: &pb::ListJobsRequest) -> Result<(), MasterError> {
    let over = |what: &str, value: &str, most: usize| {
        (value.len() > most)
            .then(|| format!("the {what} filter is {} bytes, longer than any {what} ({most})", value.len()))
    };
    let why = over("tenant", &req.tenant, crate::ceilings::MAX_TENANT)
        .or_else(|| over("node", &req.node, 64 * 4))
        .or_else(|| over("module", &req.module_prefix, 64))
        .or_else(|| over("job id", &req.after, 64))
        .or_else(|| {
            (!req.module_prefix.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| "the module filter is not a hash prefix (hex digits)".to_owned())
        });
    why.map_or(Ok(()), |why| Err(MasterError::InvalidArgument(why)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Master, MasterConfig};
    use grid_core::{Capacity, Ceilings, FuelQuota, Limits, Submission};
    use tokio::net::TcpListener;

    #[test]
    fn listing_filters_longer_than_anything_they_could_match_are_refused() {
        let req = |f: fn(&mut pb::ListJobsRequest)| {
            let mut r =
                pb::ListJobsRequest { module_prefix: "ab12".into(), tenant: "alice".into(), ..Default::default() };
            f(&mut r);
            filters_within_bounds(&r).map_err(|e| e.to_string())
        };
        assert!(req(|_| {}).is_ok());
        assert!(req(|r| r.tenant = "t".repeat(10_000)).unwrap_err().contains("tenant filter is 10000 bytes"));
        assert!(req(|r| r.node = "n".repeat(300)).unwrap_err().contains("node filter"));
        assert!(req(|r| r.module_prefix = "a".repeat(65)).unwrap_err().contains("module filter"));
        assert!(req(|r| r.module_prefix = "xyz".into()).unwrap_err().contains("not a hash prefix"));
        assert!(req(|r| r.after = "j".repeat(65)).unwrap_err().contains("job id filter"));
    }

    fn capacity() -> pb::NodeCapacity {
        let big = 1 << 40;
        let capacity = Capacity {
            slots: 1,
            memory: 1 << 30,
            disk: 1 << 30,
            fuel_quota: FuelQuota { rate_per_hour: big, burst: big },
            per_job: Ceilings { fuel: big, memory: 1 << 30, timeout: Duration::from_secs(3600), disk: 1 << 30 },
        };
        grid_core::wire::capacity_to_pb(&capacity, big)
    }

    #[tokio::test]
    async fn a_queued_job_s_stdin_reaches_its_node_intact_from_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = MasterConfig::new(dir.path());
        config.fsync = false;
        config.tls = crate::TlsSetup::Off;
        config.verify = crate::trust::VerifyPolicy::off();
        let master = Master::open(config).unwrap();
        let live = master.live();
        let (admin, node) = (master.admin_token(), master.node_credential("a").unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(master.serve(listener, async {
            let _ = stopped.await;
        }));
        let channel = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
        let mut client = grid_core::connect::master(channel.clone(), Some(&admin)).unwrap();
        let wasm = grid_core::wasm::MAGIC.iter().copied().chain([1, 0, 0, 0]).collect::<Vec<u8>>();
        let module = ModuleHash::of(&wasm);
        let chunk = pb::UploadChunk { hash: module.to_string(), total_size: wasm.len() as u64, data: wasm };
        client.upload_module(tokio_stream::iter([chunk])).await.unwrap();

        let stdin: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let spec = JobSpec {
            deterministic: false,
            replicas: 0,
            module,
            args: vec!["app".into(), "x".repeat(2000)],
            env: vec![("K".into(), "V".into())],
            stdin,
            dirs: vec![],
            limits: Limits::default(),
        };
        let req = grid_core::wire::submit_request(spec.clone(), Submission::default());
        let id = client.submit_job(req).await.unwrap().into_inner().job_id;
        assert!(live.spec_in_record(&id), "the queued job holds its inputs in memory");

        let register = pb::Register {
            name: "a".into(),
            capacity: Some(capacity()),
            cached_hashes: vec![],
            identity: "a".into(),
            held: vec![],
            compile_timeout_ms: 0,
        };
        let hello = pb::NodeMessage { msg: Some(pb::node_message::Msg::Register(register)) };
        let (_keep, rx) = tokio::sync::mpsc::channel(1);
        let first = tokio_stream::once(hello).chain(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut as_node = grid_core::connect::master(channel, Some(&node)).unwrap();
        let mut orders = as_node.node_session(first).await.unwrap().into_inner();
        let mut assigned = None;
        while let Some(msg) = orders.message().await.unwrap() {
            if let Some(pb::master_message::Msg::Assign(a)) = msg.msg {
                assigned = Some(a);
                break;
            }
        }
        let assigned = assigned.expect("the job was not sent");
        assert_eq!(assigned.job_id, id);
        let sent = JobSpec::try_from(assigned.spec.unwrap()).unwrap();
        assert!(sent == spec, "the node got another spec than the one submitted");
        let _ = stop.send(());
        drop(orders);
        drop(_keep);
        let _ = server.await;
    }
}

#[cfg(test)]
mod listing_tests {
    use super::*;
    use crate::record::{MemoryStore, NewJob};
    use grid_core::{JobSpec, Limits, Submission};

    /// The bytes of a job's strings in a listing: most of what it weighs.
    fn weight(j: &pb::JobInfo) -> usize {
        let strings = [&j.id, &j.state, &j.node, &j.module_hash, &j.tenant, &j.waiting];
        strings.iter().map(|s| s.len()).sum::<usize>() + j.args.iter().map(String::len).sum::<usize>()
    }

    fn as_admin<T>(msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        req.extensions_mut().insert(Caller::Admin);
        req
    }

    fn service(dir: &std::path::Path) -> MasterService {
        let live = Arc::new(LiveState::new(Arc::new(MemoryStore::new()), 3));
        let store = Arc::new(ModuleStore::open(dir, 1 << 20).unwrap());
        MasterService::new(live, store, Duration::from_secs(1), SubmitCeilings::default(), Duration::from_secs(30))
    }

    fn spec(args: Vec<String>) -> JobSpec {
        JobSpec {
            deterministic: false,
            replicas: 0,
            module: ModuleHash::of(b"m"),
            args,
            env: vec![],
            stdin: vec![],
            dirs: vec![],
            limits: Limits::default(),
        }
    }

    #[tokio::test]
    async fn a_tenant_sees_no_node_s_address_and_the_admin_does() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let mut reg = crate::fixtures::node("a");
        reg.address = "192.0.2.7:5000".into();
        let (_id, _orders) = svc.live.register_node(reg).unwrap();
        let addresses = async |caller: Caller| {
            let mut req = Request::new(pb::ListNodesRequest::default());
            req.extensions_mut().insert(caller);
            let nodes = svc.list_nodes(req).await.unwrap().into_inner().nodes;
            nodes.into_iter().map(|n| (n.name, n.address)).collect::<Vec<_>>()
        };
        assert_eq!(addresses(Caller::Admin).await, [("a".to_owned(), "192.0.2.7:5000".to_owned())]);
        assert_eq!(addresses(Caller::Tenant("t".into())).await, [("a".to_owned(), String::new())]);
    }

    async fn list(svc: &MasterService, state: &str, limit: u32, page_token: String) -> pb::ListJobsResponse {
        let req = pb::ListJobsRequest { state: state.into(), limit, page_token, ..Default::default() };
        svc.list_jobs(as_admin(req)).await.unwrap().into_inner()
    }

    #[tokio::test]
    async fn a_listing_of_jobs_with_huge_args_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        // Jobs in memory, with args near any sane ceiling...
        for _ in 0..10 {
            let args = vec!["a".repeat(300 << 10), "b".repeat(300 << 10), "c".into()];
            svc.live.submit(spec(args), Submission::default()).await.unwrap();
        }
        // ...and jobs only in the record, with a tenant and args of any size.
        let record = svc.live.store();
        let tenant = Submission { key: None, tenant: "t".repeat(70_000), priority: 0 };
        for i in 0..10 {
            let spec = spec(vec!["ü".repeat(4 << 20)]);
            let id = format!("recorded-{i}");
            record
                .insert(NewJob { id: &id, submission: &tenant, spec: &spec, submitted_ms: 1, fingerprint: None })
                .await
                .unwrap();
        }
        let page = list(&svc, "", 1000, String::new()).await;
        assert_eq!(page.jobs.len(), 20);
        assert!(page.next_page_token.is_empty());
        // Each job: 1 KiB of args, a tenant of 128 chars, and little else.
        let total: usize = page.jobs.iter().map(weight).sum();
        assert!(total < 20 * 2048, "a listing of {total} bytes");
        for job in &page.jobs {
            assert!(job.args.iter().map(String::len).sum::<usize>() <= listing::ARGS_LISTED);
            assert!(job.tenant.chars().count() <= listing::NAME_LISTED);
        }
        // Jobs in memory show their live state and why they wait.
        let live = page.jobs.iter().find(|j| !j.id.starts_with("recorded-")).unwrap();
        assert_eq!(live.state, "queued");
        assert!(!live.waiting.is_empty(), "{live:?}");
        // The record keeps them whole, for the node; memory keeps a cut.
        let whole = svc.live.store().job(&live.id).unwrap().unwrap();
        assert_eq!(whole.spec.args[0].len(), 300 << 10);
    }

    #[tokio::test]
    async fn pages_follow_their_tokens_to_every_job_once() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let mut submitted = Vec::new();
        for _ in 0..25 {
            submitted.push(svc.live.submit(spec(vec!["x".into()]), Submission::default()).await.unwrap());
        }
        svc.live.cancel(&submitted[3]).unwrap();
        for state in ["", "queued"] {
            let (mut seen, mut token) = (Vec::new(), String::new());
            loop {
                let page = list(&svc, state, 7, token).await;
                assert!(page.jobs.len() <= 7);
                seen.extend(page.jobs.into_iter().map(|j| j.id));
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            let mut expected: Vec<_> = submitted.iter().rev().cloned().collect();
            if state == "queued" {
                expected.retain(|id| *id != submitted[3]);
            }
            assert_eq!(seen, expected, "state {state:?}");
        }
        let bad = pb::ListJobsRequest { page_token: "nope".into(), ..Default::default() };
        let err = svc.list_jobs(as_admin(bad)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    }
}
