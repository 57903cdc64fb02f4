//! The node's session with its master: register, heartbeat, take
//! assignments, stream output and results back. The one module of this
//! crate that sees prost types.

use crate::executor::{self, Run};
use crate::outbox::{self, Outbox};
use crate::output::Chunk;
use crate::state::{NodeShared, RunningJob};
use futures::FutureExt;
use grid_core::connect::{Conn, Trust};
use grid_core::wire::capacity_to_pb;
use grid_core::{JobReport, JobSpec, ModuleHash, Outcome};
use grid_proto as pb;
use grid_proto::master_client::MasterClient;
use pb::node_message::Msg as Up;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

/// The largest module a node fetches.
const MAX_FETCH: usize = 1 << 30;

/// A client of the master: the channel carries the node's bearer token.
pub(crate) type Client = MasterClient<Conn>;

/// Connects to the master at `url`, trusting `trust`, calling with `token`.
pub(crate) async fn connect(url: &str, trust: &Trust, token: &str) -> Result<Client, String> {
    let channel = grid_core::connect::channel(url, trust).await?;
    grid_core::connect::master(channel, Some(token))
}

/// What the master answered a join with.
pub(crate) struct Joined {
    /// The node's own credential.
    pub(crate) token: String,
    /// The name the credential gives the node.
    pub(crate) name: String,
    /// The tenant whose jobs alone the node runs, if any.
    pub(crate) owner: Option<String>,
}

/// Trades the join token `join` for a node credential named `name`.
pub(crate) async fn join(url: &str, trust: &Trust, join: &str, name: &str, identity: &str) -> Result<Joined, Ended> {
    let mut client = connect(url, trust, join).await?;
    let req = pb::JoinGridRequest { name: name.to_owned(), identity: identity.to_owned() };
    let reply = client.join_grid(req).await.map_err(|s| refused(s, "the master refused to let the node join"))?;
    let reply = reply.into_inner();
    if reply.node_token.trim().is_empty() {
        return Err(Ended::Lost("the master answered the join without a credential".into()));
    }
    Ok(Joined {
        token: reply.node_token,
        name: if reply.name.is_empty() { name.to_owned() } else { reply.name },
        owner: Some(reply.owner).filter(|o| !o.is_empty()),
    })
}

/// A refusal of the node's credentials ends the node; any other failure is
/// one to retry.
fn refused(s: tonic::Status, what: &str) -> Ended {
    if let Some(standby) = grid_core::masters::standby_of(&s) {
        return Ended::Standby(format!("{what}: {}", s.message()), standby);
    }
    match s.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => Ended::Refused(s.message().to_owned()),
        tonic::Code::AlreadyExists => Ended::NameTaken(s.message().to_owned()),
        _ => Ended::Lost(format!("{what}: {}", s.message())),
    }
}

fn up(msg: Up) -> pb::NodeMessage {
    pb::NodeMessage { msg: Some(msg) }
}

fn heartbeat(node: &NodeShared) -> pb::NodeMessage {
    let (added, removed) = node.cache.take_changes();
    let snap = node.ledger.snapshot();
    up(Up::Heartbeat(pb::Heartbeat {
        cached_added: added.iter().map(|h| h.to_string()).collect(),
        cached_removed: removed.iter().map(|h| h.to_string()).collect(),
        fuel_available: snap.fuel_available,
        draining: snap.draining,
    }))
}

/// Why a session ended other than by a stop.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The master went away or the stream broke: connect again.
    Lost(String),
    /// The master is a standby: connect again, to the leader it names if
    /// any, else to the next master.
    Standby(String, grid_core::masters::Standby),
    /// The master refused the registration: a connected node has this name.
    NameTaken(String),
    /// The master refused the node's credentials (a revoked credential, a
    /// used-up join token, a token of another kind): retrying cannot help.
    Refused(String),
    /// The master is not the one the join token's pin names: retrying
    /// cannot help either.
    Untrusted(String),
}

impl From<String> for Ended {
    fn from(why: String) -> Self {
        Ended::Lost(why)
    }
}

impl From<&str> for Ended {
    fn from(why: &str) -> Self {
        Ended::Lost(why.to_owned())
    }
}

/// One session: returns when the stream ends, with the reason, or `Ok` once
/// a stop (see [`crate::Node::run`]) has been carried out. Jobs still
/// running when the stream is lost run on, their messages kept: the next
/// session (with whichever master leads) names them, and goes on with
/// those the master takes back.
pub(crate) async fn session(
    node: &Arc<NodeShared>,
    mut client: Client,
    registered: impl FnOnce(),
    mut stop: watch::Receiver<bool>,
) -> Result<(), Ended> {
    let (tx, rx) = mpsc::channel::<pb::NodeMessage>(1024);
    let cfg = &node.config;
    // Changes before this session are all in the full list below.
    let _ = node.cache.take_changes();
    // Jobs from an earlier session: running, or ended and not yet known
    // to be recorded.
    let held: Vec<Arc<Outbox>> =
        node.outboxes.iter().map(|o| o.value().clone()).filter(|o| !o.is_abandoned()).collect();
    let delivered = node.delivered.list();
    let register = pb::Register {
        name: cfg.name.clone(),
        capacity: Some(capacity_to_pb(&cfg.capacity, node.ledger.snapshot().fuel_available)),
        cached_hashes: node.cache.cached().iter().map(|h| h.to_string()).collect(),
        identity: node.identity.clone(),
        compile_timeout_ms: u64::try_from(cfg.compile.time.as_millis()).unwrap_or(u64::MAX),
        held: held
            .iter()
            .chain(&delivered)
            .map(|o| pb::HeldJob { job_id: o.job_id().to_owned(), output_bytes: o.output_bytes() })
            .collect(),
    };
    tx.send(up(Up::Register(register))).await.map_err(|_| "session closed")?;
    let mut inbound = match client.node_session(ReceiverStream::new(rx)).await {
        Ok(response) => response.into_inner(),
        Err(s) => return Err(refused(s, "master refused the session")),
    };
    let (period, resume) = match inbound.message().await {
        Ok(Some(pb::MasterMessage { msg: Some(pb::master_message::Msg::Registered(r)) })) => {
            (Duration::from_millis(r.heartbeat_ms.max(100)), r.resume)
        }
        Ok(_) => return Err("master did not acknowledge registration".into()),
        Err(s) => return Err(refused(s, "registration failed")),
    };
    registered();
    take_back(node, &tx, held, delivered, resume).await;
    tracing::info!(master = %cfg.master, name = %cfg.name, "registered with master");

    let beats = tx.clone();
    let beat_node = node.clone();
    let heartbeats = tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            if beats.send(heartbeat(&beat_node)).await.is_err() {
                return;
            }
        }
    });

    let mut stopping: Option<tokio::time::Instant> = None;
    let result = loop {
        tokio::select! {
            msg = inbound.message() => {
                let msg = match msg {
                    Ok(Some(m)) => m.msg,
                    Ok(None) => break Err(Ended::from("master closed the session")),
                    Err(s) => break Err(refused(s, "lost the master")),
                };
                match msg {
                    Some(pb::master_message::Msg::Assign(a)) => accept(node, &client, &tx, a).await,
                    Some(pb::master_message::Msg::Cancel(c)) => {
                        if let Some(job) = node.running.get(&c.job_id) {
                            job.stop.notify_one();
                        }
                    }
                    Some(pb::master_message::Msg::Registered(_)) | None => {}
                }
            }
            _ = stop.changed(), if stopping.is_none() => {
                node.ledger.drain();
                let _ = tx.send(heartbeat(node)).await;
                stopping = Some(tokio::time::Instant::now() + cfg.grace);
            }
            _ = tokio::time::sleep(Duration::from_millis(20)), if stopping.is_some() => {
                if node.running.is_empty() {
                    break Ok(());
                }
                if stopping.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
                    hand_back_all(node);
                }
            }
        }
    };
    heartbeats.abort();
    if result.is_ok() {
        // Close our side and read until the master has seen everything.
        drop(tx);
        let _ =
            tokio::time::timeout(Duration::from_secs(5), async { while let Ok(Some(_)) = inbound.message().await {} })
                .await;
    } else {
        // The jobs run on: the next session (with this master or another)
        // may take them back.
        for outbox in node.outboxes.iter() {
            outbox.detach();
        }
    }
    result
}

/// Goes on with the jobs of an earlier session that the master takes back
/// (`resume`), each from the output it recorded; stops and drops the
/// others.
async fn take_back(
    node: &Arc<NodeShared>,
    tx: &mpsc::Sender<pb::NodeMessage>,
    held: Vec<Arc<Outbox>>,
    delivered: Vec<Arc<Outbox>>,
    resume: Vec<pb::ResumeJob>,
) {
    let resume: std::collections::HashMap<&str, u64> =
        resume.iter().map(|r| (r.job_id.as_str(), r.from_byte)).collect();
    let mut dropped = Vec::new();
    for (outbox, ended) in held.into_iter().map(|o| (o, false)).chain(delivered.into_iter().map(|o| (o, true))) {
        let id = outbox.job_id().to_owned();
        if ended {
            node.delivered.forget(&outbox);
        }
        let taken = resume.get(id.as_str()).map(|&from| (from, outbox.resume(tx.clone(), from)));
        match taken {
            Some((_, true)) => {
                tracing::info!(job = %id, "the master took the job back; it goes on");
                outbox.resay_compiling().await;
                if ended {
                    // Its end goes up again, as a held job's.
                    node.outboxes.insert(id.clone(), outbox.clone());
                    let node = node.clone();
                    tokio::spawn(async move {
                        outbox::deliver(outbox.clone(), None, &node.delivered).await;
                        node.outboxes.remove_if(&id, |_, o| Arc::ptr_eq(o, &outbox));
                    });
                }
            }
            Some((from, false)) => {
                // The master counts on output this node no longer holds.
                tracing::warn!(job = %id, from, "cannot go on with the job: its output from there is gone");
                drop_held(node, &outbox);
                dropped.push(outbox.clone());
                let reason = format!("the node no longer holds the job's output from byte {from}");
                let _ = tx.send(up(Up::Rejected(pb::JobRejected { job_id: id, reason }))).await;
            }
            None => {
                if !ended {
                    tracing::info!(job = %id, "the master did not take the job back; stopped");
                }
                drop_held(node, &outbox);
                dropped.push(outbox);
            }
        }
    }
    // What the stopped jobs hold is freed before new jobs are taken (the
    // master's next orders wait in the stream meanwhile), within reason.
    let deadline = tokio::time::Instant::now() + STOPPING_WITHIN;
    while dropped.iter().any(|o| node.running.get(o.job_id()).is_some_and(|j| Arc::ptr_eq(&j.outbox, o)))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long a new session waits for the held jobs it stopped to end.
const STOPPING_WITHIN: Duration = Duration::from_secs(5);

/// Stops a held job no master takes, and drops what it holds.
pub(crate) fn drop_held(node: &NodeShared, outbox: &Arc<Outbox>) {
    outbox.abandon();
    if let Some(job) = node.running.get(outbox.job_id()).filter(|j| Arc::ptr_eq(&j.outbox, outbox)) {
        job.stop.notify_one();
    }
}

/// Stops every running job so that it goes back to the master's queue.
fn hand_back_all(node: &NodeShared) {
    for job in node.running.iter() {
        if !job.handed_back.swap(true, Ordering::Relaxed) {
            tracing::info!(job = %job.key(), "grace period over: handing the job back");
            job.stop.notify_one();
        }
    }
}

/// Takes an assignment: checks it fits, then runs it in its own task.
async fn accept(node: &Arc<NodeShared>, client: &Client, tx: &mpsc::Sender<pb::NodeMessage>, a: pb::Assign) {
    let received = std::time::Instant::now();
    let job_id = a.job_id;
    let reject = |reason: String| up(Up::Rejected(pb::JobRejected { job_id: job_id.clone(), reason }));
    let spec = match a.spec.map(JobSpec::try_from) {
        Some(Ok(spec)) => spec,
        Some(Err(e)) => return drop(tx.send(reject(format!("invalid job spec: {e}"))).await),
        None => return drop(tx.send(reject("missing job spec".into())).await),
    };
    if let Err(reason) = node.ledger.reserve(&spec.limits) {
        tracing::info!(job = %job_id, "refused: {reason}");
        return drop(tx.send(reject(reason)).await);
    }
    let outbox = Outbox::new(&job_id, tx.clone());
    if let Some(earlier) = node.outboxes.insert(job_id.clone(), outbox.clone()) {
        // Sent again while an earlier run of it was held: that one is over.
        drop_held(node, &earlier);
    }
    let job = Arc::new(RunningJob {
        stop: Notify::new(),
        handed_back: AtomicBool::new(false),
        lost_master: AtomicBool::new(false),
        outbox: outbox.clone(),
    });
    node.running.insert(job_id.clone(), job.clone());
    let (out_tx, out_rx) = mpsc::channel(64);
    let sending = {
        let (node, outbox, job_id) = (node.clone(), outbox.clone(), job_id.clone());
        async move {
            outbox::deliver(outbox.clone(), Some(out_rx), &node.delivered).await;
            node.outboxes.remove_if(&job_id, |_, o| Arc::ptr_eq(o, &outbox));
        }
    };
    tokio::spawn(sending);
    let (node, client) = (node.clone(), client.clone());
    tokio::spawn(settle(async move {
        let run = AssertUnwindSafe(run_job(&node, client, out_tx, &spec, &job, received)).catch_unwind().await;
        let report = run.unwrap_or_else(|_| {
            tracing::error!(job = %job_id, "job task panicked");
            JobReport::before_start(
                Outcome::NodeError("the node failed while running the job".into()),
                &node.config.name,
                &spec.limits,
            )
        });
        node.ledger.release(&spec.limits, report.fuel_used);
        node.running.remove_if(&job_id, |_, j| Arc::ptr_eq(j, &job));
        let msg = if job.handed_back.load(Ordering::Relaxed) {
            let reason = match job.lost_master.load(Ordering::Relaxed) {
                true => "the node lost its master while it fetched the job's module",
                false => "the node is shutting down",
            };
            up(Up::Rejected(pb::JobRejected { job_id, reason: reason.into() }))
        } else {
            tracing::debug!(job = %job_id, outcome = %report.outcome, fuel = report.fuel_used, wall = ?report.wall, "job finished");
            up(Up::Finished(pb::JobFinished { job_id, result: Some(report.into()) }))
        };
        // Sent once its output has gone up.
        job.outbox.finish(msg);
    }));
}

/// Times a job may wait (a guest yields once per [`crate::executor::FUEL_YIELD_INTERVAL`]
/// fuel) before it moves to a thread of its own.
const SETTLE_AFTER: u32 = 16;

/// Runs a job: on the runtime's workers while it is short, so a tiny job
/// costs no thread hand-off; once it has waited [`SETTLE_AFTER`] times, on
/// a thread of its own from tokio's blocking pool, so a long guest resumes
/// on the same core after every fuel yield rather than hopping between
/// workers (which costs a CPU-bound guest several percent).
async fn settle(job: impl Future<Output = ()> + Send + 'static) {
    let mut job = Box::pin(job);
    let mut waits = 0;
    let finished = std::future::poll_fn(|cx| match job.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(true),
        Poll::Pending if waits >= SETTLE_AFTER => Poll::Ready(false),
        Poll::Pending => {
            waits += 1;
            Poll::Pending
        }
    })
    .await;
    if !finished {
        let runtime = tokio::runtime::Handle::current();
        let _ = tokio::task::spawn_blocking(move || runtime.block_on(job)).await;
    }
}

async fn run_job(
    node: &NodeShared,
    client: Client,
    output: mpsc::Sender<Chunk>,
    spec: &JobSpec,
    job: &RunningJob,
    received: std::time::Instant,
) -> JobReport {
    let name = &node.config.name;
    // While the module compiles (here, or for another job) the job shows as
    // `compiling`, and its clock on the master starts once it is compiled.
    let compiling = || job.outbox.say_compiling();
    let pre = tokio::select! {
        pre = node.cache.get(&spec.module, || fetch(client, spec.module.clone()), compiling) => pre,
        _ = job.stop.notified() => return JobReport::before_start(Outcome::Cancelled, name, &spec.limits),
    };
    if pre.is_ok() {
        job.outbox.say_compiled().await;
    }
    let pre = match pre {
        Ok(pre) => pre,
        Err(e) => {
            if job.outbox.detached_for(std::time::Instant::now()).is_some() {
                // The module came from a master that is gone: the job goes
                // back to whichever leads now, not failed for it.
                job.lost_master.store(true, Ordering::Relaxed);
                job.handed_back.store(true, Ordering::Relaxed);
            }
            return JobReport::before_start(e.outcome(), name, &spec.limits);
        }
    };
    // Scratch space holds mapped directories; a job with none needs none.
    let scratch = match spec.dirs.is_empty() {
        true => None,
        false => Some(tempfile::tempdir_in(&node.scratch_root)),
    };
    let scratch = match scratch.transpose() {
        Ok(dir) => dir,
        Err(e) => {
            return JobReport::before_start(
                Outcome::NodeError(format!("failed to make scratch dir: {e}")),
                name,
                &spec.limits,
            );
        }
    };
    executor::run(Run {
        spec,
        pre,
        output,
        cancelled: Box::pin(job.stop.notified()),
        scratch: scratch.as_ref().map(|d| d.path()),
        node: name,
        received,
    })
    .await
}

async fn fetch(mut client: Client, hash: ModuleHash) -> Result<Vec<u8>, String> {
    let mut stream = client
        .fetch_module(pb::FetchModuleRequest { hash: hash.to_string() })
        .await
        .map_err(|s| format!("module `{}`: {}", hash.short(), s.message()))?
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.map_err(|s| format!("module `{}`: {}", hash.short(), s.message()))? {
        bytes.extend_from_slice(&chunk.data);
        if bytes.len() > MAX_FETCH {
            return Err(format!("module `{}` is larger than {MAX_FETCH} bytes", hash.short()));
        }
    }
    Ok(bytes)
}
