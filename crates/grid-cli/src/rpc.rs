//! The CLI's connection to a grid: a named master, or an embedded one
//! started in-process. The one module of this crate (with its `admin`
//! part) that sees prost types.

pub mod admin;

use crate::embedded::{self, Mode};
use crate::login::Remote;
use crate::module::{CHUNK, Module};
use anyhow::{Context, Result, anyhow};
use futures::Stream;
use grid_core::connect::{Conn, Trust};
use grid_core::{Attempt, JobReport, JobSpec, JobState, ModuleHash, OutputStream, Submission};
use grid_proto as pb;
use grid_proto::master_client::MasterClient;
use indicatif::ProgressBar;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `$client.call(retry, ..)` of the master's method `$method` with `$req`,
/// cloned for each attempt.
macro_rules! call {
    ($client:ident, $retry:expr, $method:ident($req:expr)) => {{
        let req = $req;
        $client
            .call($retry, move |mut master| {
                let req = req.clone();
                async move { master.$method(req).await }
            })
            .await
    }};
}

/// The most jobs a master returns in one page of a listing.
const PAGE_MAX: u32 = 1000;

/// What happens to a job, as the CLI shows it.
#[derive(Debug)]
pub enum Event {
    /// The job went to a node.
    Assigned(String),
    /// Bytes the guest wrote to one of its output streams.
    Output(OutputStream, Vec<u8>),
    /// The node was lost and the job runs again as this attempt.
    Retry(u32),
    /// The job ended.
    Finished(JobReport),
}

/// A node as `grid-cli nodes` shows it.
#[derive(Debug, serde::Serialize)]
pub struct NodeRow {
    pub name: String,
    /// `ready` or `draining` while connected, `gone` or `lost` after.
    pub state: String,
    pub address: String,
    pub slots_used: u32,
    pub slots_total: u32,
    pub memory_used: u64,
    pub memory_total: u64,
    pub fuel_per_hour: u64,
    pub fuel_available: u64,
    pub cached_modules: u32,
    pub jobs_run: u64,
    pub fuel_burned: u64,
    pub lost_jobs: u64,
    /// When a node of this name first registered (ms since the epoch).
    pub first_seen_ms: u64,
    /// When it was last seen connected (ms since the epoch).
    pub last_seen_ms: u64,
    /// The tenant whose jobs alone it runs; empty for a public node.
    pub owner: String,
    /// Fuel of its results the grid accepted: what it earned.
    pub credit: u64,
    /// Results in a row that agreed with other replicas.
    pub trust: u32,
    /// Whether the master takes its results without a second replica now.
    pub trusted: bool,
    /// It gets no jobs until an admin clears it.
    pub quarantined: bool,
    /// Disagreements and overdue jobs since it was last cleared.
    pub strikes: u32,
    /// The streak past which the master trusts a node; 0 when no streak
    /// decides it.
    #[serde(skip)]
    pub trust_after: u32,
}

/// A job as `status` and `jobs` show it.
#[derive(Debug)]
pub struct JobRow {
    pub id: String,
    pub state: JobState,
    pub tenant: String,
    pub priority: i32,
    pub waiting: String,
    pub node: String,
    pub attempts: u32,
    pub submitted_ms: u64,
    /// When the last attempt started, and when the job ended (ms since the
    /// Unix epoch).
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    pub module: String,
    pub args: Vec<String>,
    pub result: Option<JobReport>,
    /// Every attempt, oldest first (for one job; listings leave it empty).
    pub history: Vec<Attempt>,
    /// Replicas that must agree on its result; 0 for a job run once.
    pub quorum: u32,
}

/// Which jobs `jobs` lists; the master does the filtering.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only this tenant's jobs.
    pub tenant: Option<String>,
    /// Only jobs whose last attempt ran on this node.
    pub node: Option<String>,
    /// Only jobs of modules whose hash starts with this.
    pub module_prefix: Option<String>,
    /// Only jobs older than this one.
    pub after: Option<String>,
}

impl TryFrom<pb::JobInfo> for JobRow {
    type Error = anyhow::Error;

    /// Fails on a state this CLI does not know, say from a newer master.
    fn try_from(j: pb::JobInfo) -> Result<Self> {
        let Ok(state) = j.state.parse() else {
            return Err(anyhow!("the master says job {} is `{}`, a state this grid-cli does not know", j.id, j.state));
        };
        Ok(JobRow {
            id: j.id,
            state,
            tenant: j.tenant,
            priority: j.priority,
            waiting: j.waiting,
            node: j.node,
            attempts: j.attempts,
            submitted_ms: j.submitted_ms,
            started_ms: (j.started_ms > 0).then_some(j.started_ms),
            finished_ms: (j.finished_ms > 0).then_some(j.finished_ms),
            module: j.module_hash,
            args: j.args,
            result: j.result.map(Into::into),
            history: j.attempt_list.into_iter().map(Into::into).collect(),
            quorum: j.quorum,
        })
    }
}

/// A connection to a grid's master, named or embedded. Clones share the
/// connection. An embedded grid lives until [`crate::embedded::stop`].
/// Calls go to whichever named master leads (see [`Reach`]).
#[derive(Clone)]
pub struct Client {
    master: MasterClient<Conn>,
    /// How to reach the named masters again; `None` for an embedded grid.
    reach: Option<Reach>,
}

/// Whether a call may be made again after the master's `UNAVAILABLE`,
/// which may come after it acted on the call. A standby's refusal is always
/// safe to retry: a standby acts on nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// The call changes nothing, or the same again changes nothing more
    /// (a read, a cancel, a submission with an idempotency key).
    Safe,
    /// Made twice, it might act twice.
    Once,
}

/// How long calls keep looking for a leader among masters that answer as
/// standbys (a change of leader takes seconds).
const LEADER_WAIT: Duration = Duration::from_secs(20);

/// The named masters, whom to trust and the token to call with: how a
/// client connects again, to the leader.
#[derive(Clone)]
pub(crate) struct Reach {
    masters: grid_core::Masters,
    trust: Trust,
    token: Option<String>,
}

impl Reach {
    /// How to reach `remote`'s masters; reads its CA.
    pub(crate) fn of(remote: &Remote) -> Result<Self> {
        let masters = grid_core::Masters::parse(&remote.url).map_err(|why| anyhow!(why))?;
        let ca_pem = remote
            .ca
            .as_deref()
            .map(|path| {
                std::fs::read(path).with_context(|| format!("cannot read the CA certificate `{}`", path.display()))
            })
            .transpose()?;
        Ok(Self { masters, trust: Trust { ca_pem, ca_pin: None }, token: remote.token.clone() })
    }

    /// The token calls carry.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A channel to the first master that answers, from the current one on.
    pub(crate) async fn channel(&mut self) -> Result<tonic::transport::Channel> {
        self.masters.connect(&self.trust).await.map_err(|e| anyhow!(e))
    }

    /// After `failed`, the `tries`-th failure of a call that began at
    /// `began`: whether to call again, once connected to where the failure
    /// points (the leader a standby named, else the next master). A
    /// master's refusal other than `UNAVAILABLE` is its answer; so is an
    /// `UNAVAILABLE` from the one master there is, as it always was.
    pub(crate) async fn again(
        &mut self,
        failed: &tonic::Status,
        retry: Retry,
        began: std::time::Instant,
        tries: u32,
    ) -> Option<tonic::transport::Channel> {
        let from_standby = self.masters.redirect(failed);
        let lost = failed.code() == tonic::Code::Unavailable && retry == Retry::Safe && self.masters.urls().len() > 1;
        if !from_standby && !lost {
            return None;
        }
        if !from_standby {
            self.masters.next();
        }
        // Every master once at once; then, while masters answer as
        // standbys, with growing pauses until a leader shows.
        let pause = match tries as usize <= self.masters.urls().len() {
            true => Duration::ZERO,
            false => Duration::from_millis(100 << tries.min(4)),
        };
        if began.elapsed() + pause > LEADER_WAIT {
            return None;
        }
        tokio::time::sleep(pause).await;
        tracing::info!(master = %self.masters.current(), "calling again: {}", failed.message());
        self.channel().await.ok()
    }
}

/// The master refused the caller's credentials: `main` prints this line
/// alone, whatever context it was given.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

/// The refusal of the credentials anywhere in `e`'s chain, if any.
pub fn refusal(e: &anyhow::Error) -> Option<&Refused> {
    e.chain().find_map(|c| c.downcast_ref::<Refused>())
}

/// A master's refusal as the CLI shows it.
pub(crate) fn status(e: tonic::Status) -> anyhow::Error {
    // A status with no message (a master without the service, say) still
    // says what happened.
    let message = match e.message().trim() {
        "" => format!("the master answered: {}", e.code().description().to_lowercase()),
        message => message.to_owned(),
    };
    match e.code() {
        tonic::Code::Unauthenticated => Refused(format!("the master refused the credentials: {message}")).into(),
        tonic::Code::PermissionDenied => Refused(format!("permission denied: {message}")).into(),
        _ => anyhow!("{message}"),
    }
}

impl Client {
    /// Connects to `master`, or with `None` to an embedded grid that only
    /// reads the record: it starts no node, and runs or ends no job.
    pub async fn connect(master: Option<&Remote>) -> Result<Self> {
        Self::connect_as(master, Mode::Read).await
    }

    /// Connects to `master`, or with `None` to an embedded grid with a node
    /// to run jobs on.
    pub async fn connect_to_run(master: Option<&Remote>) -> Result<Self> {
        Self::connect_as(master, Mode::Run).await
    }

    async fn connect_as(master: Option<&Remote>, mode: Mode) -> Result<Self> {
        let Some(remote) = master else {
            let (url, token) = embedded::start(mode).await.context("failed to start the embedded grid")?;
            let channel = channel(&url, None).await?;
            let master = grid_core::connect::master(channel, Some(&token)).map_err(|e| anyhow!(e))?;
            let mut client = Self { master, reach: None };
            if mode == Mode::Run {
                // The embedded node registers within milliseconds; wait for
                // it so that the first job already has a node.
                for _ in 0..500 {
                    if !client.nodes(false).await?.is_empty() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            return Ok(client);
        };
        let mut reach = Reach::of(remote)?;
        let channel = reach.channel().await?;
        let master = grid_core::connect::master(channel, remote.token.as_deref()).map_err(|e| anyhow!(e))?;
        Ok(Self { master, reach: Some(reach) })
    }

    /// Connects again to the named masters, from the one called last (which
    /// led, if any did); an embedded grid is not connected again.
    pub async fn reconnect(&mut self) -> Result<()> {
        let Some(reach) = &mut self.reach else { return Err(anyhow!("the embedded grid is gone")) };
        let channel = reach.channel().await?;
        self.master = grid_core::connect::master(channel, reach.token.as_deref()).map_err(|e| anyhow!(e))?;
        Ok(())
    }

    /// Makes the call `call` on the master, and again on the leader after a
    /// standby's refusal, or (with [`Retry::Safe`]) after any master's
    /// `UNAVAILABLE` when there are several: see [`Reach::again`].
    async fn call<T, F, Fut>(&mut self, retry: Retry, call: F) -> Result<T, tonic::Status>
    where
        F: Fn(MasterClient<Conn>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let began = std::time::Instant::now();
        let mut tries = 0;
        loop {
            let failed = match call(self.master.clone()).await {
                Err(failed) => failed,
                answer => return answer,
            };
            let Some(reach) = &mut self.reach else { return Err(failed) };
            tries += 1;
            let Some(channel) = reach.again(&failed, retry, began, tries).await else { return Err(failed) };
            match grid_core::connect::master(channel, reach.token.as_deref()) {
                Ok(master) => self.master = master,
                Err(_) => return Err(failed),
            }
        }
    }

    /// Checks that the master takes the credentials, with the cheapest call
    /// a tenant's or the admin's token may make.
    pub async fn check(&mut self) -> Result<()> {
        let req = pb::ListJobsRequest { limit: 1, ..Default::default() };
        call!(self, Retry::Safe, list_jobs(req)).map_err(status)?;
        Ok(())
    }

    /// Makes sure the master has `module`, uploading it only if it lacks
    /// it: read from its file as it goes, never whole, with a progress bar
    /// on a terminal for a large one.
    pub async fn ensure_module(&mut self, module: &Module) -> Result<ModuleHash> {
        let (hash, size) = {
            let module = module.clone();
            tokio::task::spawn_blocking(move || module.measure()).await.context("hash task failed")??
        };
        let req = pb::MissingModulesRequest { hashes: vec![hash.to_string()] };
        let missing = call!(self, Retry::Safe, missing_modules(req)).map_err(status)?.into_inner().missing;
        if missing.is_empty() {
            return Ok(hash);
        }
        let bar = upload_bar(size);
        let unread = Arc::new(Mutex::new(None));
        // The module is known by its hash: uploading it again changes nothing.
        let upload =
            Upload { module: module.clone(), hash: hash.clone(), size, bar: bar.clone(), unread: unread.clone() };
        let sent = self
            .call(Retry::Safe, move |mut m| {
                let chunks = upload.chunks();
                async move { m.upload_module(chunks).await }
            })
            .await;
        bar.finish_and_clear();
        // A file that failed to read midway is the reason, not what the
        // master made of the short upload.
        if let Some(why) = unread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(anyhow!("failed to read the module as it was sent: {why}"));
        }
        sent.map_err(status)?;
        Ok(hash)
    }

    /// Queues a job; returns its id. The same key again yields the same job.
    pub async fn submit(&mut self, spec: JobSpec, submission: Submission) -> Result<String> {
        let retry = if submission.key.is_some() { Retry::Safe } else { Retry::Once };
        let req = grid_core::wire::submit_request(spec, submission);
        let reply = call!(self, retry, submit_job(req)).map_err(status).context("failed to submit the job")?;
        Ok(reply.into_inner().job_id)
    }

    /// Submits `spec` and follows it in one call: the job's id, and its
    /// events from the start as they come.
    pub async fn run(&mut self, spec: JobSpec, submission: Submission) -> Result<(String, Watch)> {
        let retry = if submission.key.is_some() { Retry::Safe } else { Retry::Once };
        let req = grid_core::wire::submit_request(spec, submission);
        let started = async {
            let mut stream = call!(self, retry, run_job(req)).map_err(status)?.into_inner();
            match stream.message().await.map_err(status)? {
                Some(pb::JobEvent { event: Some(pb::job_event::Event::Submitted(job_id)) }) => {
                    Ok((job_id, Watch { stream }))
                }
                _ => Err(anyhow!("the master did not say which job it recorded")),
            }
        };
        started.await.context("failed to submit the job")
    }

    /// A job's events from the start: all of them as they come, or with
    /// `snapshot` only those so far.
    pub async fn watch(&mut self, job_id: &str, snapshot: bool) -> Result<Watch> {
        let req = pb::WatchJobRequest { job_id: job_id.to_owned(), snapshot };
        let stream = call!(self, Retry::Safe, watch_job(req)).map_err(status)?.into_inner();
        Ok(Watch { stream })
    }

    /// Cancels a job; returns whether it had not finished yet.
    pub async fn cancel(&mut self, job_id: &str) -> Result<bool> {
        let req = pb::CancelJobRequest { job_id: job_id.to_owned() };
        Ok(call!(self, Retry::Safe, cancel_job(req)).map_err(status)?.into_inner().cancelled)
    }

    /// One job.
    pub async fn job(&mut self, job_id: &str) -> Result<JobRow> {
        let req = pb::GetJobRequest { job_id: job_id.to_owned() };
        let info = call!(self, Retry::Safe, get_job(req)).map_err(status)?;
        JobRow::try_from(info.into_inner())
    }

    /// The newest `limit` jobs that `query` admits, following the
    /// master's pages until there are that many or no more.
    pub async fn jobs(&mut self, query: &JobQuery, limit: usize) -> Result<Vec<JobRow>> {
        let state = query.state.map(JobState::as_str).unwrap_or_default().to_owned();
        let mut jobs = Vec::new();
        let mut page_token = String::new();
        while jobs.len() < limit {
            let left = u32::try_from(limit - jobs.len()).unwrap_or(u32::MAX).min(PAGE_MAX);
            let req_token = page_token.clone();
            let req = pb::ListJobsRequest {
                state: state.clone(),
                limit: left,
                page_token,
                tenant: query.tenant.clone().unwrap_or_default(),
                node: query.node.clone().unwrap_or_default(),
                module_prefix: query.module_prefix.clone().unwrap_or_default(),
                after: query.after.clone().unwrap_or_default(),
            };
            let page = call!(self, Retry::Safe, list_jobs(req)).map_err(status)?.into_inner();
            for job in page.jobs.into_iter().take(limit - jobs.len()) {
                jobs.push(JobRow::try_from(job)?);
            }
            // No more, or a master that does not move on.
            if page.next_page_token.is_empty() || page.next_page_token == req_token {
                break;
            }
            page_token = page.next_page_token;
        }
        Ok(jobs)
    }

    /// The nodes connected to the master; with `all`, also those that left
    /// or were lost, the most recently seen first.
    pub async fn nodes(&mut self, all: bool) -> Result<Vec<NodeRow>> {
        let req = pb::ListNodesRequest { all };
        let list = call!(self, Retry::Safe, list_nodes(req)).map_err(status)?.into_inner();
        let trust_after = list.trust_after;
        Ok(list
            .nodes
            .into_iter()
            .map(|n| NodeRow {
                name: n.name,
                state: n.state,
                address: n.address,
                slots_used: n.slots_used,
                slots_total: n.slots_total,
                memory_used: n.memory_used,
                memory_total: n.memory_total,
                fuel_per_hour: n.fuel_per_hour,
                fuel_available: n.fuel_available,
                cached_modules: n.cached_modules,
                jobs_run: n.jobs_run,
                fuel_burned: n.fuel_burned,
                lost_jobs: n.lost_jobs,
                first_seen_ms: n.first_seen_ms,
                last_seen_ms: n.last_seen_ms,
                owner: n.owner,
                credit: n.credit,
                trust: n.trust,
                trusted: n.trusted,
                quarantined: n.quarantined,
                strikes: n.strikes,
                trust_after,
            })
            .collect())
    }
}

/// A job's event stream.
pub struct Watch {
    stream: tonic::Streaming<pb::JobEvent>,
}

impl Watch {
    /// The next event; `None` when the stream ends.
    pub async fn next(&mut self) -> Result<Option<Event>> {
        use pb::job_event::Event as E;
        loop {
            let Some(ev) =
                self.stream.message().await.map_err(|s| anyhow!("lost the job's event stream: {}", s.message()))?
            else {
                return Ok(None);
            };
            let event = match ev.event {
                Some(E::AssignedNode(node)) => Event::Assigned(node),
                Some(E::Output(chunk)) => Event::Output(grid_core::wire::output_stream(chunk.stream), chunk.data),
                Some(E::Finished(result)) => Event::Finished(result.into()),
                Some(E::Retry(attempt)) => Event::Retry(attempt),
                Some(E::Submitted(_)) | None => continue,
            };
            return Ok(Some(event));
        }
    }
}

/// A channel to the master at `url`, trusting the CA in `ca` if given.
pub(crate) async fn channel(url: &str, ca: Option<&std::path::Path>) -> Result<tonic::transport::Channel> {
    let ca_pem = ca
        .map(|path| std::fs::read(path).with_context(|| format!("cannot read the CA certificate `{}`", path.display())))
        .transpose()?;
    let trust = Trust { ca_pem, ca_pin: None };
    grid_core::connect::channel(url, &trust).await.map_err(|e| anyhow!(e))
}

/// Modules at least this large show a progress bar while they upload.
const BAR_FROM: u64 = 8 << 20;

/// A progress bar in bytes on a terminal's stderr; hidden elsewhere, and
/// for a small module.
fn upload_bar(size: u64) -> ProgressBar {
    if size < BAR_FROM {
        return ProgressBar::hidden();
    }
    crate::bar::on_terminal(size, "uploading {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)")
}

/// One upload of a module: what to send, and where a read that failed
/// says why.
#[derive(Clone)]
struct Upload {
    module: Module,
    hash: ModuleHash,
    /// The size it was hashed at: what is declared and sent, no more.
    size: u64,
    bar: ProgressBar,
    unread: Arc<Mutex<Option<String>>>,
}

impl Upload {
    /// The chunks, read from the module as the master takes them; the
    /// first carries the hash and the size. A file that fails to read, or
    /// ends before its size, ends the stream short and leaves the reason
    /// in `unread`.
    fn chunks(&self) -> impl Stream<Item = pb::UploadChunk> + Send + use<> {
        use tokio::io::AsyncReadExt;
        let up = self.clone();
        up.bar.set_position(0);
        let state = (None::<tokio::fs::File>, 0u64, true);
        futures::stream::unfold(state, move |(mut file, sent, first)| {
            let up = up.clone();
            async move {
                if sent >= up.size && !first {
                    return None;
                }
                let want = usize::try_from((up.size - sent).min(CHUNK as u64)).unwrap_or(CHUNK);
                let data = match &up.module {
                    Module::Bytes(bytes) => {
                        let start = usize::try_from(sent).ok()?;
                        bytes[start..start + want].to_vec()
                    }
                    Module::File { path, .. } => {
                        let failed = |why: String| {
                            *up.unread.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                        };
                        if file.is_none() {
                            match tokio::fs::File::open(path).await {
                                Ok(f) => file = Some(f),
                                Err(e) => {
                                    failed(format!("`{}`: {e}", path.display()));
                                    return None;
                                }
                            }
                        }
                        let mut data = vec![0; want];
                        if let Err(e) = file.as_mut()?.read_exact(&mut data).await {
                            let why = match e.kind() {
                                std::io::ErrorKind::UnexpectedEof => "it is shorter than when it was hashed".to_owned(),
                                _ => e.to_string(),
                            };
                            failed(format!("`{}`: {why}", path.display()));
                            return None;
                        }
                        data
                    }
                };
                up.bar.inc(data.len() as u64);
                let chunk = match first {
                    true => pb::UploadChunk { hash: up.hash.to_string(), total_size: up.size, data },
                    false => pb::UploadChunk { hash: String::new(), total_size: 0, data },
                };
                Some((chunk, (file, sent + want as u64, false)))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(s: tonic::Status) -> String {
        let e = status(s).context("failed to submit the job");
        match refusal(&e) {
            Some(refused) => format!("grid: {refused}"),
            None => format!("grid: {e:#}"),
        }
    }

    #[test]
    fn refused_credentials_read_as_one_line_whatever_the_context() {
        assert_eq!(
            shown(tonic::Status::unauthenticated("the token is revoked")),
            "grid: the master refused the credentials: the token is revoked"
        );
        assert_eq!(
            shown(tonic::Status::permission_denied("a node token cannot submit")),
            "grid: permission denied: a node token cannot submit"
        );
        assert_eq!(shown(tonic::Status::not_found("no job x")), "grid: failed to submit the job: no job x");
        assert_eq!(
            shown(tonic::Status::unimplemented("")),
            "grid: failed to submit the job: the master answered: operation is not implemented or not supported"
        );
    }
}
