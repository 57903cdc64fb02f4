//! Misbehaving parties for the abuse tests: a [`RogueNode`] and a
//! [`RogueClient`] that speak `grid.proto` directly and do what no honest
//! `grid-node` or `grid-cli` would. Each is a blocking facade over one
//! shared tokio runtime, so the tests stay plain functions.

use grid_core::connect::{Bearer, Conn, Trust};
use grid_proto as pb;
use grid_proto::master_client::MasterClient;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

pub use tonic::Code;

/// The runtime every rogue party runs on.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
});

fn block_on<F: Future>(f: F) -> F::Output {
    RUNTIME.block_on(f)
}

/// How a rogue reaches the master: its URL, the CA to trust, and the
/// bearer token to call with (or none).
#[derive(Debug, Clone)]
pub struct Access {
    pub url: String,
    pub ca_pem: Option<Vec<u8>>,
    pub token: Option<String>,
}

impl Access {
    /// The same, calling with `token` instead (or none).
    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self { token: token.map(str::to_owned), ..self.clone() }
    }
}

/// A client of the master with no limit on message sizes either way: the
/// rogue sends and reads whatever the master lets through.
async fn connect(access: &Access) -> MasterClient<Conn> {
    let trust = Trust { ca_pem: access.ca_pem.clone(), ca_pin: None };
    let channel = grid_core::connect::channel(&access.url, &trust)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", access.url));
    let bearer = Bearer::new(access.token.as_deref()).expect("a token of header characters");
    MasterClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

/// `JoinGrid` with `access`'s token (a join token, or whatever a test
/// tries) as node `name`: the node credential the master gives.
pub fn join(access: &Access, name: &str) -> Result<String, Status> {
    block_on(async {
        let mut client = connect(access).await;
        let req = pb::JoinGridRequest { name: name.to_owned(), identity: format!("rogue-join-{name}") };
        Ok(client.join_grid(req).await?.into_inner().node_token)
    })
}

/// The lowercase hex sha256 of `bytes`: a module's hash.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `n` well-formed module hashes no module has, distinct for each `seed`.
pub fn fake_hashes(n: usize, seed: u64) -> Vec<String> {
    (0..n as u128).map(|i| format!("{:064x}", (u128::from(seed) << 64) | i)).collect()
}

/// A submission of `module` with small limits, ready to be made hostile.
pub fn job(module: &str) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        spec: Some(pb::JobSpec {
            deterministic: false,
            replicas: 0,
            module_hash: module.to_owned(),
            args: vec!["rogue".into()],
            env: vec![],
            stdin: vec![],
            dirs: vec![],
            limits: Some(pb::Limits {
                fuel: 1_000_000_000,
                memory_bytes: 16 << 20,
                timeout_ms: 10_000,
                output_bytes: 1 << 20,
                disk_bytes: 1 << 20,
            }),
        }),
        idempotency_key: String::new(),
        tenant: "rogue".into(),
        priority: 0,
    }
}

/// A client that calls the master's client-facing RPCs with hostile
/// arguments.
pub struct RogueClient {
    client: MasterClient<Conn>,
}

impl RogueClient {
    /// Connects to the master as `access` says.
    pub fn connect(access: &Access) -> Self {
        Self { client: block_on(connect(access)) }
    }

    /// `GetJob`: the job's state, as the master answers this caller.
    pub fn job_state(&self, id: &str) -> Result<String, Status> {
        let mut client = self.client.clone();
        Ok(block_on(client.get_job(pb::GetJobRequest { job_id: id.to_owned() }))?.into_inner().state)
    }

    /// `CancelJob`: whether the master says it cancelled the job.
    pub fn cancel(&self, id: &str) -> Result<bool, Status> {
        let mut client = self.client.clone();
        Ok(block_on(client.cancel_job(pb::CancelJobRequest { job_id: id.to_owned() }))?.into_inner().cancelled)
    }

    /// `ListJobs` with `tenant` as the filter: the ids listed.
    pub fn list_jobs(&self, tenant: &str) -> Result<Vec<String>, Status> {
        let mut client = self.client.clone();
        let req = pb::ListJobsRequest { tenant: tenant.to_owned(), limit: 1000, ..Default::default() };
        Ok(block_on(client.list_jobs(req))?.into_inner().jobs.into_iter().map(|j| j.id).collect())
    }

    /// `WatchJob` in snapshot mode: every event so far, or the refusal.
    pub fn watch_snapshot(&self, id: &str) -> Result<Vec<pb::job_event::Event>, Status> {
        let mut client = self.client.clone();
        block_on(async move {
            let req = pb::WatchJobRequest { job_id: id.to_owned(), snapshot: true };
            let mut events = client.watch_job(req).await?.into_inner();
            let mut all = Vec::new();
            while let Some(e) = events.message().await? {
                all.extend(e.event);
            }
            Ok(all)
        })
    }

    /// `ListNodes`: the names listed.
    pub fn node_names(&self) -> Result<Vec<String>, Status> {
        let mut client = self.client.clone();
        let nodes = block_on(client.list_nodes(pb::ListNodesRequest { all: false }))?.into_inner().nodes;
        Ok(nodes.into_iter().map(|n| n.name).collect())
    }

    /// Uploads `bytes` as a module in one chunk; returns its hash.
    pub fn upload(&self, bytes: &[u8]) -> Result<String, Status> {
        let chunk = pb::UploadChunk { hash: sha256_hex(bytes), total_size: bytes.len() as u64, data: bytes.to_vec() };
        let mut client = self.client.clone();
        let response = block_on(client.upload_module(tokio_stream::iter(vec![chunk])))?;
        Ok(response.into_inner().hash)
    }

    /// `MissingModules` with these hashes.
    pub fn missing_modules(&self, hashes: Vec<String>) -> Result<Vec<String>, Status> {
        let mut client = self.client.clone();
        Ok(block_on(client.missing_modules(pb::MissingModulesRequest { hashes }))?.into_inner().missing)
    }

    /// `SubmitJob`; returns the job's id.
    pub fn submit(&self, request: pb::SubmitJobRequest) -> Result<String, Status> {
        let mut client = self.client.clone();
        Ok(block_on(client.submit_job(request))?.into_inner().job_id)
    }

    /// `FetchModule`: the first chunk of the module, if the master streams it.
    pub fn fetch_first_chunk(&self, hash: &str) -> Result<Vec<u8>, Status> {
        fetch_first_chunk(&self.client, hash)
    }

    /// Starts an upload of a module claiming to be `hash` and `total_size`
    /// bytes long, sends `send` bytes of it in its first message, and then
    /// sends nothing more while keeping the stream open.
    pub fn stalled_upload(&self, hash: &str, total_size: u64, send: usize) -> StalledUpload {
        let (tx, rx) = mpsc::channel::<pb::UploadChunk>(1);
        let mut client = self.client.clone();
        let call = RUNTIME.spawn(async move { client.upload_module(ReceiverStream::new(rx)).await.map(|_| ()) });
        let first = pb::UploadChunk { hash: hash.to_owned(), total_size, data: vec![0x61; send] };
        // The master may have refused the upload already: its answer says.
        let _ = block_on(tx.send(first));
        StalledUpload { _tx: tx, call: Some(call) }
    }

    /// Follows job `id` with `WatchJob`, reads its first event, and then
    /// reads nothing more while keeping the stream open.
    pub fn stalled_watch(&self, id: &str) -> StalledWatch {
        let (first_tx, first_rx) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let mut client = self.client.clone();
        let req = pb::WatchJobRequest { job_id: id.to_owned(), snapshot: false };
        let task = RUNTIME.spawn(async move {
            let mut events = match client.watch_job(req).await {
                Ok(r) => r.into_inner(),
                Err(status) => {
                    let _ = first_tx.send(Err(status));
                    return;
                }
            };
            let _ = first_tx.send(events.message().await.map(|e| e.and_then(|e| e.event)));
            // Hold the stream, unread, until told to stop.
            let _ = stopped.await;
            drop(events);
        });
        let first = block_on(async { tokio::time::timeout(crate::READY_TIMEOUT, first_rx).await })
            .expect("the watcher's first event did not come")
            .expect("watcher task");
        StalledWatch { first, _stop: stop, _task: task }
    }
}

/// An upload that sent part of a module and then stalled.
pub struct StalledUpload {
    _tx: mpsc::Sender<pb::UploadChunk>,
    call: Option<JoinHandle<Result<(), Status>>>,
}

impl StalledUpload {
    /// The master's answer to the upload, once it gives one (it should
    /// refuse it); fails the test if none has come after `limit`.
    pub fn answer_within(&mut self, limit: Duration) -> Result<(), Status> {
        let call = self.call.take().expect("asked once");
        block_on(async { tokio::time::timeout(limit, call).await })
            .unwrap_or_else(|_| panic!("the master did not answer a stalled upload within {limit:?}"))
            .expect("upload task")
    }
}

impl Drop for StalledUpload {
    fn drop(&mut self) {
        if let Some(call) = &self.call {
            call.abort();
        }
    }
}

/// A watcher that read one event and stopped reading; the stream closes
/// when it is dropped.
pub struct StalledWatch {
    /// The first event it read: `Ok(None)` if the stream ended at once.
    pub first: Result<Option<pb::job_event::Event>, Status>,
    _stop: oneshot::Sender<()>,
    _task: JoinHandle<()>,
}

fn fetch_first_chunk(client: &MasterClient<Conn>, hash: &str) -> Result<Vec<u8>, Status> {
    let mut client = client.clone();
    block_on(async move {
        let mut chunks = client.fetch_module(pb::FetchModuleRequest { hash: hash.to_owned() }).await?.into_inner();
        Ok(chunks.message().await?.map(|c| c.data).unwrap_or_default())
    })
}

/// What a [`RogueNode`] does with each job it is assigned.
#[derive(Debug, Clone)]
pub enum OnAssign {
    /// Takes the job and never answers (but keeps heartbeating).
    Hold,
    /// Sends `bytes` of stdout in 1 MiB chunks, whatever the job's output
    /// limit, then reports that the job exited 0.
    Flood { bytes: u64 },
    /// Sends a line of output, then hands the job back with `reason`.
    OutputThenReject { reason: String },
    /// Hands the job back at once with `reason`.
    Reject { reason: String },
    /// Reports the job finished with this result.
    Finish(pb::JobResult),
    /// Forges a result without running anything: sends `stdout`, then
    /// reports that the job exited 0 having burned `fuel`. Two forgers
    /// with the same `stdout` and `fuel` agree with each other.
    Forge { stdout: Vec<u8>, fuel: u64 },
}

/// What a forger prints unless told otherwise.
pub const FORGED: &str = "forged\n";

/// The fuel a forger claims each job burned.
pub const FORGED_FUEL: u64 = 12_345;

impl OnAssign {
    /// A forger: answers every job with [`FORGED`] on stdout, exit 0 and
    /// [`FORGED_FUEL`].
    pub fn forge() -> Self {
        Self::forge_text(FORGED)
    }

    /// A forger answering every job with `stdout`, exit 0 and
    /// [`FORGED_FUEL`]: forgers with the same text agree, others do not.
    pub fn forge_text(stdout: &str) -> Self {
        Self::Forge { stdout: stdout.as_bytes().to_vec(), fuel: FORGED_FUEL }
    }
}

/// What the master told a rogue node.
#[derive(Debug, Default)]
struct Orders {
    assigned: Vec<String>,
    cancelled: Vec<String>,
}

/// A node that registers with whatever name, capacity and cache it likes,
/// heartbeats on time (with the fuel it claims), and does [`OnAssign`] with
/// its jobs. It disconnects when dropped.
pub struct RogueNode {
    /// The id the master gave it.
    pub node_id: String,
    tx: mpsc::Sender<pb::NodeMessage>,
    /// The fuel level its regular heartbeats report.
    fuel: Arc<AtomicU64>,
    orders: Arc<Mutex<Orders>>,
    /// How the master ended the session, once it has.
    ended: Arc<Mutex<Option<Status>>>,
    client: MasterClient<Conn>,
    tasks: Vec<JoinHandle<()>>,
}

/// A registration claiming one slot, 10^15 fuel, and generous per-job
/// ceilings, with an identity no other registration has.
pub fn registration(name: &str, cached: Vec<String>) -> pb::Register {
    let fuel = 1_000_000_000_000_000;
    pb::Register {
        name: name.to_owned(),
        capacity: Some(pb::NodeCapacity {
            slots: 1,
            memory_bytes: 64 << 30,
            fuel_per_hour: fuel,
            fuel_burst: fuel,
            disk_bytes: 64 << 30,
            max_job_fuel: fuel,
            max_job_memory: 64 << 30,
            max_job_timeout_ms: 24 * 3600 * 1000,
            max_job_disk: 64 << 30,
            fuel_available: fuel,
        }),
        cached_hashes: cached,
        identity: format!("rogue-{:x}", NEXT_IDENTITY.fetch_add(1, Ordering::Relaxed)),
        held: vec![],
        compile_timeout_ms: 0,
    }
}

/// A registration as [`registration`]'s, claiming far more than any
/// machine has: 64 slots, 1000T fuel an hour and 1 TiB of memory. Routing
/// that believed it would send such a node every job.
pub fn greedy_registration(name: &str, cached: Vec<String>) -> pb::Register {
    let mut register = registration(name, cached);
    let capacity = register.capacity.as_mut().expect("a capacity");
    capacity.slots = 64;
    capacity.memory_bytes = 1 << 40;
    capacity.max_job_memory = 1 << 40;
    register
}

/// Each registration a rogue identity of its own.
static NEXT_IDENTITY: AtomicU64 = AtomicU64::new(0);

fn msg(m: pb::node_message::Msg) -> pb::NodeMessage {
    pb::NodeMessage { msg: Some(m) }
}

impl RogueNode {
    /// Registers with the master as `access` says and starts heartbeating
    /// and answering assignments with `on_assign`.
    #[track_caller]
    pub fn connect(access: &Access, register: pb::Register, on_assign: OnAssign) -> Self {
        Self::try_connect(access, register, on_assign).unwrap_or_else(|s| panic!("node session refused: {s:?}"))
    }

    /// As [`RogueNode::connect`], or the master's refusal of the session.
    pub fn try_connect(access: &Access, register: pb::Register, on_assign: OnAssign) -> Result<Self, Status> {
        let fuel = Arc::new(AtomicU64::new(register.capacity.as_ref().map_or(0, |c| c.fuel_available)));
        block_on(async move {
            let client = connect(access).await;
            let (tx, rx) = mpsc::channel(16);
            tx.send(msg(pb::node_message::Msg::Register(register))).await.expect("queue register");
            let mut inbound = client.clone().node_session(ReceiverStream::new(rx)).await?.into_inner();
            let registered = match inbound.message().await?.and_then(|m| m.msg) {
                Some(pb::master_message::Msg::Registered(r)) => r,
                other => panic!("expected `registered`, got {other:?}"),
            };
            let every = Duration::from_millis(registered.heartbeat_ms.max(20) / 2);
            let (beat, level) = (tx.clone(), fuel.clone());
            let heartbeats = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let hb = pb::Heartbeat { fuel_available: level.load(Ordering::Relaxed), ..Default::default() };
                    if beat.send(msg(pb::node_message::Msg::Heartbeat(hb))).await.is_err() {
                        return;
                    }
                }
            });
            let orders = Arc::new(Mutex::new(Orders::default()));
            let (seen, answer) = (orders.clone(), tx.clone());
            let ended = Arc::new(Mutex::new(None));
            let end = ended.clone();
            let reader = tokio::spawn(async move {
                let mut actions = tokio::task::JoinSet::new();
                loop {
                    let m = match inbound.message().await {
                        Ok(Some(m)) => m,
                        Ok(None) => {
                            *end.lock().unwrap() = Some(Status::ok("the session ended"));
                            break;
                        }
                        Err(status) => {
                            *end.lock().unwrap() = Some(status);
                            break;
                        }
                    };
                    match m.msg {
                        Some(pb::master_message::Msg::Assign(a)) => {
                            seen.lock().unwrap().assigned.push(a.job_id.clone());
                            actions.spawn(act(on_assign.clone(), a.job_id, answer.clone()));
                        }
                        Some(pb::master_message::Msg::Cancel(c)) => seen.lock().unwrap().cancelled.push(c.job_id),
                        _ => {}
                    }
                }
            });
            Ok(RogueNode {
                node_id: registered.node_id,
                tx,
                fuel,
                orders,
                ended,
                client,
                tasks: vec![heartbeats, reader],
            })
        })
    }

    /// Sends one heartbeat of the test's choosing; the regular ones report
    /// its fuel level from then on.
    pub fn heartbeat(&self, hb: pb::Heartbeat) {
        self.fuel.store(hb.fuel_available, Ordering::Relaxed);
        block_on(self.tx.send(msg(pb::node_message::Msg::Heartbeat(hb)))).expect("the node session closed");
    }

    /// Says it compiles job `job_id`'s module (`done` false), or has
    /// compiled it (`done` true), whether or not it does.
    pub fn compiling(&self, job_id: &str, done: bool) {
        let notice = pb::JobCompiling { job_id: job_id.to_owned(), done };
        block_on(self.tx.send(msg(pb::node_message::Msg::Compiling(notice)))).expect("the node session closed");
    }

    /// The jobs the master assigned it so far.
    pub fn assigned(&self) -> Vec<String> {
        self.orders.lock().unwrap().assigned.clone()
    }

    /// The jobs the master told it to cancel so far.
    pub fn cancelled(&self) -> Vec<String> {
        self.orders.lock().unwrap().cancelled.clone()
    }

    /// Waits until the master has assigned it a job; returns that job's id.
    pub fn wait_assigned(&self) -> String {
        let start = std::time::Instant::now();
        loop {
            if let Some(id) = self.assigned().first() {
                return id.clone();
            }
            assert!(start.elapsed() < crate::READY_TIMEOUT, "the rogue node was assigned no job");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `FetchModule` on this node's own connection.
    pub fn fetch_first_chunk(&self, hash: &str) -> Result<Vec<u8>, Status> {
        fetch_first_chunk(&self.client, hash)
    }

    /// Waits until the master ends the session; returns how it ended (a
    /// status of `Ok` if the stream just closed).
    #[track_caller]
    pub fn wait_ended(&self) -> Status {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.ended.lock().unwrap().clone() {
                return status;
            }
            assert!(start.elapsed() < crate::READY_TIMEOUT, "the master did not end the rogue node's session");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RogueNode {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Answers one assignment as `on_assign` says.
async fn act(on_assign: OnAssign, job_id: String, tx: mpsc::Sender<pb::NodeMessage>) {
    use pb::node_message::Msg;
    let output = |data: Vec<u8>| {
        msg(Msg::Output(pb::JobOutput { job_id: job_id.clone(), stream: pb::OutputStream::Stdout as i32, data }))
    };
    let finished =
        |result: pb::JobResult| msg(Msg::Finished(pb::JobFinished { job_id: job_id.clone(), result: Some(result) }));
    let rejected = |reason: String| msg(Msg::Rejected(pb::JobRejected { job_id: job_id.clone(), reason }));
    let sent = match on_assign {
        OnAssign::Hold => Ok(()),
        OnAssign::Flood { bytes } => {
            async {
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(1 << 20);
                    tx.send(output(vec![b'x'; n as usize])).await?;
                    left -= n;
                }
                let result = pb::JobResult { kind: pb::OutcomeKind::Exited as i32, ..Default::default() };
                tx.send(finished(result)).await
            }
            .await
        }
        OnAssign::OutputThenReject { reason } => {
            async {
                tx.send(output(b"some output\n".to_vec())).await?;
                tx.send(rejected(reason)).await
            }
            .await
        }
        OnAssign::Reject { reason } => tx.send(rejected(reason)).await,
        OnAssign::Finish(result) => tx.send(finished(result)).await,
        OnAssign::Forge { stdout, fuel } => {
            async {
                tx.send(output(stdout)).await?;
                let result = pb::JobResult {
                    kind: pb::OutcomeKind::Exited as i32,
                    exit_code: 0,
                    fuel_used: fuel,
                    wall_us: 1_000,
                    ..Default::default()
                };
                tx.send(finished(result)).await
            }
            .await
        }
    };
    // A closed session ends the rogue's part; the test looks at the master.
    let _ = sent;
}
