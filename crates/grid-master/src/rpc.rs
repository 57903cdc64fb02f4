//! The gRPC face of the master: the one module of this crate that sees
//! prost types. It converts them to domain types and calls into `state`.

use crate::error::MasterError;
use crate::listing;
use crate::model::{Heartbeat, JobEvent, JobSummary, NodeRegistration, StoredJob, ToNode};
use crate::modules::ModuleStore;
use crate::record::JobStore;
use crate::state::{LiveState, blocking};
use futures::Stream as FutStream;
use grid_core::{JobState, ModuleHash};
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

/// The tonic service.
pub struct MasterService {
    pub(crate) live: Arc<LiveState>,
    pub(crate) store: Arc<ModuleStore>,
    pub(crate) heartbeat: Duration,
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
        JobEvent::Finished(report) => Event::Finished((*report).clone().into()),
    };
    pb::JobEvent { event: Some(event) }
}

fn info_to_pb(j: JobSummary) -> pb::JobInfo {
    pb::JobInfo {
        id: j.id,
        state: j.state.as_str().to_owned(),
        tenant: j.tenant,
        priority: j.priority,
        waiting: j.waiting.unwrap_or_default(),
        node: j.node,
        attempts: j.attempts,
        submitted_ms: j.submitted_ms,
        module_hash: j.module.to_string(),
        args: j.args,
        result: j.result.map(Into::into),
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

    /// A recorded job's events: its node, its kept output, its end.
    async fn replay(&self, id: &str) -> Result<Vec<Result<pb::JobEvent>>, MasterError> {
        let job = self.stored(id).await?.ok_or_else(|| MasterError::JobNotFound(id.to_owned()))?;
        let mut events = Vec::new();
        if !job.node.is_empty() {
            events.push(JobEvent::Assigned(job.node.clone()));
        }
        let owned = id.to_owned();
        let output = self.read(move |store| store.output_of(&owned)).await?;
        events.extend(output.into_iter().map(|(s, d)| JobEvent::Output(s, d)));
        if let Some(result) = job.result {
            events.push(JobEvent::Finished(Arc::new(result)));
        }
        Ok(events.into_iter().map(|e| Ok(event_to_pb(e))).collect())
    }

    /// Checks a submission and hands it to the live state; returns its id
    /// (an earlier job's, for a known idempotency key).
    async fn submit(&self, req: pb::SubmitJobRequest) -> Result<String, MasterError> {
        if req.spec.is_none() {
            return Err(MasterError::InvalidArgument("missing job spec".into()));
        }
        let (spec, submission) = grid_core::wire::from_submit_request(req)?;
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
    /// record.
    async fn events(&self, job_id: &str, snapshot: bool) -> Result<BoxStream<pb::JobEvent>, MasterError> {
        let watch = match self.live.watch(job_id) {
            Ok(watch) => watch,
            Err(MasterError::JobNotFound(_)) => return Ok(Box::pin(tokio_stream::iter(self.replay(job_id).await?))),
            Err(e) => return Err(e),
        };
        if snapshot {
            let mut watch = watch;
            let events: Vec<_> = watch.now().into_iter().map(|e| Ok(event_to_pb(e))).collect();
            return Ok(Box::pin(tokio_stream::iter(events)));
        }
        let events = futures::stream::unfold(watch, move |mut watch| async move {
            let batch = watch.next().await?;
            Some((futures::stream::iter(batch.into_iter().map(|e| Ok(event_to_pb(e)))), watch))
        });
        Ok(Box::pin(futures::StreamExt::flatten(events)))
    }
}

#[tonic::async_trait]
impl Master for MasterService {
    async fn missing_modules(
        &self,
        req: Request<pb::MissingModulesRequest>,
    ) -> Result<Response<pb::MissingModulesResponse>, Status> {
        let mut missing = Vec::new();
        for h in req.into_inner().hashes {
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
        let mut chunks = req.into_inner();
        let first = chunks.message().await?.ok_or_else(|| MasterError::InvalidArgument("empty upload".into()))?;
        let expected = hash(&first.hash)?;
        let mut upload = self.store.begin(expected, first.total_size)?;
        upload.write(&first.data)?;
        while let Some(chunk) = chunks.message().await? {
            upload.write(&chunk.data)?;
        }
        let (hash, size) = upload.finish()?;
        tracing::info!(module = %hash.short(), size, "module stored");
        Ok(Response::new(pb::UploadModuleResponse { hash: hash.to_string(), size }))
    }

    async fn submit_job(&self, req: Request<pb::SubmitJobRequest>) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let job_id = self.submit(req.into_inner()).await?;
        Ok(Response::new(pb::SubmitJobResponse { job_id }))
    }

    type WatchJobStream = BoxStream<pb::JobEvent>;

    async fn watch_job(&self, req: Request<pb::WatchJobRequest>) -> Result<Response<Self::WatchJobStream>, Status> {
        let req = req.into_inner();
        Ok(Response::new(self.events(&req.job_id, req.snapshot).await?))
    }

    type RunJobStream = BoxStream<pb::JobEvent>;

    async fn run_job(&self, req: Request<pb::SubmitJobRequest>) -> Result<Response<Self::RunJobStream>, Status> {
        let job_id = self.submit(req.into_inner()).await?;
        let events = self.events(&job_id, false).await?;
        let submitted = pb::JobEvent { event: Some(pb::job_event::Event::Submitted(job_id)) };
        Ok(Response::new(Box::pin(futures::stream::once(async { Ok(submitted) }).chain(events))))
    }

    async fn cancel_job(&self, req: Request<pb::CancelJobRequest>) -> Result<Response<pb::CancelJobResponse>, Status> {
        let cancelled = self.live.cancel(&req.into_inner().job_id)?;
        Ok(Response::new(pb::CancelJobResponse { cancelled }))
    }

    async fn get_job(&self, req: Request<pb::GetJobRequest>) -> Result<Response<pb::JobInfo>, Status> {
        let id = req.into_inner().job_id;
        let summary = match self.live.summary(&id) {
            Some(s) => s,
            None => self.stored(&id).await?.map(JobSummary::from).ok_or(MasterError::JobNotFound(id))?,
        };
        Ok(Response::new(info_to_pb(summary)))
    }

    async fn list_jobs(&self, req: Request<pb::ListJobsRequest>) -> Result<Response<pb::ListJobsResponse>, Status> {
        let req = req.into_inner();
        let limit = listing::page_size(req.limit);
        let state = Some(req.state).filter(|s| !s.is_empty()).map(|s| s.parse::<JobState>()).transpose();
        let state = state.map_err(MasterError::from)?;
        let before = match req.page_token.as_str() {
            "" => None,
            token => Some(token.parse::<u64>().map_err(|_| {
                let token = listing::cut_chars(token.to_owned(), 64);
                MasterError::InvalidArgument(format!("page token `{token}` is not one this master gave"))
            })?),
        };
        // A page of the record, then what the live state knows of those
        // jobs still in memory; the state filter holds after the overlay.
        let page = self.read(move |store| store.list(state, before, limit)).await?;
        let ids: Vec<_> = page.jobs.iter().map(|j| j.id.clone()).collect();
        let live = self.live.summaries(&ids);
        let jobs = page
            .jobs
            .into_iter()
            .zip(live)
            .map(|(stored, live)| live.unwrap_or_else(|| JobSummary::from(stored)))
            .filter(|j| state.is_none_or(|s| s == j.state))
            .map(info_to_pb)
            .collect();
        let next_page_token = page.next.map(|seq| seq.to_string()).unwrap_or_default();
        Ok(Response::new(pb::ListJobsResponse { jobs, next_page_token }))
    }

    async fn list_nodes(&self, _req: Request<pb::ListNodesRequest>) -> Result<Response<pb::ListNodesResponse>, Status> {
        let nodes = self
            .live
            .nodes()
            .into_iter()
            .map(|n| pb::NodeInfo {
                id: n.id.to_string(),
                name: listing::cut_chars(n.name, listing::NAME_LISTED),
                address: listing::cut_chars(n.address, listing::NAME_LISTED),
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
            })
            .collect();
        Ok(Response::new(pb::ListNodesResponse { nodes }))
    }

    type NodeSessionStream = BoxStream<pb::MasterMessage>;

    async fn node_session(
        &self,
        req: Request<Streaming<pb::NodeMessage>>,
    ) -> Result<Response<Self::NodeSessionStream>, Status> {
        let address = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let mut inbound = req.into_inner();
        let first = inbound.message().await?.and_then(|m| m.msg);
        let Some(pb::node_message::Msg::Register(reg)) = first else {
            return Err(MasterError::Protocol("the first message of a node session must be `register`".into()).into());
        };
        let (capacity, fuel_available) = grid_core::wire::capacity_from_pb(&reg.capacity.unwrap_or_default());
        let cached = reg.cached_hashes.iter().filter_map(|h| ModuleHash::parse(h).ok()).collect();
        let registration = NodeRegistration { name: reg.name, address, capacity, fuel_available, cached };
        let (node_id, orders) = self.live.register_node(registration);

        let registered = pb::MasterMessage {
            msg: Some(pb::master_message::Msg::Registered(pb::Registered {
                node_id: node_id.to_string(),
                heartbeat_ms: self.heartbeat.as_millis() as u64,
            })),
        };
        let outbound = tokio_stream::once(Ok(registered)).chain(
            tokio_stream::wrappers::UnboundedReceiverStream::new(orders).map(|order| {
                let msg = match order {
                    ToNode::Assign(job_id, spec) => {
                        pb::master_message::Msg::Assign(pb::Assign { job_id, spec: Some((*spec).clone().into()) })
                    }
                    ToNode::Cancel(job_id) => pb::master_message::Msg::Cancel(pb::Cancel { job_id }),
                };
                Ok(pb::MasterMessage { msg: Some(msg) })
            }),
        );

        let live = self.live.clone();
        // A node that is silent for three heartbeats is gone.
        let silence = self.heartbeat * 3;
        tokio::spawn(async move {
            let why = loop {
                let msg = match tokio::time::timeout(silence, inbound.message()).await {
                    Err(_) => break "missed heartbeats".to_string(),
                    Ok(Err(status)) => break format!("stream broke: {}", status.message()),
                    Ok(Ok(None)) => break "stream closed".to_string(),
                    Ok(Ok(Some(pb::NodeMessage { msg: None }))) => continue,
                    Ok(Ok(Some(pb::NodeMessage { msg: Some(m) }))) => m,
                };
                use pb::node_message::Msg;
                match msg {
                    Msg::Register(_) => break "registered twice".to_string(),
                    Msg::Heartbeat(hb) => {
                        let parse = |v: Vec<String>| v.iter().filter_map(|h| ModuleHash::parse(h).ok()).collect();
                        let beat = Heartbeat {
                            cached_added: parse(hb.cached_added),
                            cached_removed: parse(hb.cached_removed),
                            fuel_available: hb.fuel_available,
                            draining: hb.draining,
                        };
                        live.heartbeat(node_id, beat);
                    }
                    Msg::Output(out) => {
                        let stream = grid_core::wire::output_stream(out.stream);
                        live.job_output(node_id, &out.job_id, stream, out.data);
                    }
                    Msg::Finished(f) => {
                        let report = f.result.unwrap_or_default().into();
                        live.job_finished(node_id, &f.job_id, report);
                    }
                    Msg::Rejected(r) => live.job_rejected(node_id, &r.job_id, &r.reason),
                }
            };
            live.node_gone(node_id, &why);
        });
        Ok(Response::new(Box::pin(outbound)))
    }

    type FetchModuleStream = BoxStream<pb::ModuleChunk>;

    async fn fetch_module(
        &self,
        req: Request<pb::FetchModuleRequest>,
    ) -> Result<Response<Self::FetchModuleStream>, Status> {
        let h = hash(&req.into_inner().hash)?;
        let bytes = self.store.read(&h).await?;
        let chunks: Vec<_> = bytes.chunks(CHUNK).map(|c| Ok(pb::ModuleChunk { data: c.to_vec() })).collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{MemoryStore, NewJob};
    use grid_core::{JobSpec, Limits, Submission};

    /// The bytes of a job's strings in a listing: most of what it weighs.
    fn weight(j: &pb::JobInfo) -> usize {
        let strings = [&j.id, &j.state, &j.node, &j.module_hash, &j.tenant, &j.waiting];
        strings.iter().map(|s| s.len()).sum::<usize>() + j.args.iter().map(String::len).sum::<usize>()
    }

    fn service(dir: &std::path::Path) -> MasterService {
        let live = Arc::new(LiveState::new(Arc::new(MemoryStore::new()), 3));
        let store = Arc::new(ModuleStore::open(dir, 1 << 20).unwrap());
        MasterService { live, store, heartbeat: Duration::from_secs(1) }
    }

    fn spec(args: Vec<String>) -> JobSpec {
        JobSpec {
            module: ModuleHash::of(b"m"),
            args,
            env: vec![],
            stdin: vec![],
            dirs: vec![],
            limits: Limits::default(),
        }
    }

    async fn list(svc: &MasterService, state: &str, limit: u32, page_token: String) -> pb::ListJobsResponse {
        let req = pb::ListJobsRequest { state: state.into(), limit, page_token };
        svc.list_jobs(Request::new(req)).await.unwrap().into_inner()
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
            record.insert(NewJob { id: &id, submission: &tenant, spec: &spec, submitted_ms: 1 }).await.unwrap();
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
        // One job alone comes whole.
        let whole = svc.get_job(Request::new(pb::GetJobRequest { job_id: live.id.clone() })).await.unwrap();
        assert_eq!(whole.into_inner().args[0].len(), 300 << 10);
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
        let err = svc.list_jobs(Request::new(bad)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    }
}
