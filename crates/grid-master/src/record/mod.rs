//! The job record: a port the live state writes through, with one
//! implementation per engine. Writes are write-behind (they return at once
//! and are applied in order); only an insert, and a flush, wait for the
//! record. Reads are blocking calls, for a blocking thread.

// First, so that the stores' tests can run its macro.
#[cfg(test)]
#[macro_use]
mod contract;

pub mod backlog;
mod change;
pub mod memory;
mod pg_batch;
mod pg_columns;
pub mod postgres;
pub mod sqlite;

pub use backlog::Backlog;
pub use memory::MemoryStore;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::error::Result;
use crate::model::{JobId, NodeRecord, StoredJob, TenantUse};
use futures::future::BoxFuture;
use grid_core::{Attempt, AttemptEnd, JobReport, JobSpec, JobState, OutputStream, Submission, Verdict};

/// Inputs (stdin, directories, args and env) a queued job keeps in memory
/// when they are this small together; args and env are kept up to this
/// size. Larger inputs are read from the record when the job is sent.
pub const INPUT_KEPT: usize = 1 << 10;

/// What memory keeps of a job's spec, and whether the rest is only in the
/// record. Small inputs stay: reading them back would cost more than they
/// take. Otherwise stdin and directories go, and args and env too when
/// they are over [`INPUT_KEPT`] (args are then cut to it, for listings).
pub fn light_spec(spec: JobSpec) -> (JobSpec, bool) {
    let args_env: usize = spec.args.iter().map(String::len).sum::<usize>()
        + spec.env.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    let dirs: usize = spec.dirs.iter().map(|d| d.guest_path.len() + d.archive.len()).sum();
    if args_env + dirs + spec.stdin.len() <= INPUT_KEPT {
        return (spec, false);
    }
    let (args, env) = if args_env <= INPUT_KEPT { (spec.args, spec.env) } else { (cut_args(spec.args), Vec::new()) };
    let light = JobSpec {
        deterministic: spec.deterministic,
        replicas: spec.replicas,
        module: spec.module,
        args,
        env,
        stdin: Vec::new(),
        dirs: Vec::new(),
        limits: spec.limits,
    };
    (light, true)
}

/// `args` cut to [`INPUT_KEPT`] bytes in all, on char boundaries; the cut
/// arg ends in `…`, as listings show it.
fn cut_args(args: Vec<String>) -> Vec<String> {
    const MARK: &str = "…";
    let mut room = INPUT_KEPT;
    let mut kept = Vec::new();
    for mut arg in args {
        if arg.len() > room {
            let mut end = room.saturating_sub(MARK.len());
            while !arg.is_char_boundary(end) {
                end -= 1;
            }
            arg.truncate(end);
            arg.push_str(MARK);
            kept.push(arg);
            break;
        }
        room -= arg.len();
        kept.push(arg);
    }
    kept
}

/// What an insert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The job is recorded.
    New,
    /// A job with the same idempotency key was recorded before: this one,
    /// with the fingerprint of its request (`None` if it was recorded
    /// without one).
    Existing(JobId, Option<String>),
}

/// A new job as it is recorded.
#[derive(Debug, Clone, Copy)]
pub struct NewJob<'a> {
    pub id: &'a str,
    pub submission: &'a Submission,
    pub spec: &'a JobSpec,
    pub submitted_ms: u64,
    /// For a keyed submission, its request's fingerprint
    /// ([`Submission::fingerprint`]).
    pub fingerprint: Option<&'a str>,
}

/// Which jobs a listing shows. A filter on tenant, node or module makes a
/// page look at no more than [`SCANNED`] jobs, matching or not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only this tenant's jobs.
    pub tenant: Option<String>,
    /// Only jobs whose last attempt ran on this node.
    pub node: Option<String>,
    /// Only jobs of modules whose hash starts with this.
    pub module_prefix: Option<String>,
}

/// The most jobs one page of a listing filtered by tenant, node or module
/// looks at: such a page may hold fewer jobs than asked for, and still
/// have a next one.
pub const SCANNED: usize = 1000;

impl Filter {
    /// Every job in `state`, or every job.
    pub fn state(state: Option<JobState>) -> Self {
        Filter { state, ..Filter::default() }
    }

    /// Whether a page is a bounded scan of the record rather than an
    /// index lookup.
    pub fn scans(&self) -> bool {
        self.tenant.is_some() || self.node.is_some() || self.module_prefix.is_some()
    }

    /// Whether `job` passes the filter.
    pub fn admits(&self, job: &StoredJob) -> bool {
        self.state.is_none_or(|s| job.state == s)
            && self.tenant.as_ref().is_none_or(|t| &job.tenant == t)
            && self.node.as_ref().is_none_or(|n| &job.node == n)
            && self.module_prefix.as_ref().is_none_or(|p| job.spec.module.as_str().starts_with(p.as_str()))
    }
}

/// One page of a listing of the record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The jobs, newest first.
    pub jobs: Vec<StoredJob>,
    /// Where the next page starts (an opaque position in the record), or
    /// `None` after the last page.
    pub next: Option<u64>,
}

/// How much output the record holds of a job's current attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputExtent {
    /// The number of the next chunk (one past the highest recorded).
    pub next_seq: u64,
    /// Chunks recorded.
    pub chunks: u64,
    /// Bytes recorded.
    pub bytes: u64,
}

/// Where jobs, their attempts, results and kept output are recorded.
pub trait JobStore: Send + Sync + 'static {
    /// Records a new job queued; resolves once it is durable, or with the
    /// job that already holds its idempotency key.
    fn insert(&self, job: NewJob<'_>) -> BoxFuture<'static, Result<Inserted>>;

    /// Resolves once every change made before it is durable.
    fn flush(&self) -> BoxFuture<'static, Result<()>>;

    /// The job went to `node`, as attempt number `attempts`, which starts
    /// now.
    fn running(&self, id: &str, node: &str, attempts: u32);

    /// The job is back in the queue after `attempts` attempts, the last of
    /// which ended as `end`; its output so far is dropped.
    fn requeued(&self, id: &str, attempts: u32, end: AttemptEnd);

    /// Replica `number` of a verified job: it ended as `end`, its result's
    /// digest is `digest`, and it `verdict` against the quorum; each given
    /// part is set, the others are left as they are. The job's own state
    /// does not change.
    fn replica(&self, id: &str, number: u32, end: Option<AttemptEnd>, digest: Option<&str>, verdict: Option<Verdict>);

    /// A job of `tenant` used `runs` more runs and `fuel` more fuel than its
    /// end counts: the other replicas of a verified job.
    fn billed(&self, tenant: &str, runs: u64, fuel: u64);

    /// A chunk of output, number `seq` of the job (numbers are not reused
    /// across attempts; the caller keeps a job's chunks within its output
    /// limit).
    fn output(&self, id: &str, seq: u64, stream: OutputStream, data: Vec<u8>);

    /// The output this store's writer was handed and has not yet written,
    /// when it can fall behind: node sessions wait while it is full.
    fn backlog(&self) -> Option<std::sync::Arc<Backlog>> {
        None
    }

    /// How the job ended, and how its running attempt (if any) ended. With
    /// `drop_input`, the recorded spec loses its stdin and mapped
    /// directories (they are not needed any more). With `ran` (its node ran
    /// it to this end: the job's tenant), that tenant's use counts one more
    /// job and the report's fuel, in the same change.
    fn finished(&self, id: &str, report: &JobReport, drop_input: bool, end: AttemptEnd, ran: Option<&str>);

    /// What each tenant has run, by name.
    fn tenant_use(&self) -> Result<Vec<TenantUse>>;

    /// One job.
    fn job(&self, id: &str) -> Result<Option<StoredJob>>;

    /// The job submitted with idempotency key `key`, with its request's
    /// fingerprint if it was recorded with one.
    fn job_with_key(&self, key: &str) -> Result<Option<(JobId, Option<String>)>>;

    /// A job's attempts, oldest first.
    fn attempts(&self, id: &str) -> Result<Vec<Attempt>>;

    /// Where job `id` stands in the record, as a position `list` takes
    /// for `before` (so that a listing goes on with the jobs older than
    /// it); `None` for an unknown job.
    fn position(&self, id: &str) -> Result<Option<u64>>;

    /// A page of jobs, newest first, those `filter` admits: at most
    /// `limit`, and only jobs older than `before` (the `next` of the page
    /// before) when it is given. A filter that [`Filter::scans`] looks at
    /// no more than [`SCANNED`] jobs. Each job is as
    /// [`crate::listing::stored`] cuts it, whatever its size in the record.
    fn list(&self, filter: &Filter, before: Option<u64>, limit: usize) -> Result<Page>;

    /// A page of a job's output: its chunks from number `from_seq` on, in
    /// order, as many as fit in `max_bytes` (at least one, if there is
    /// one), each with its number.
    fn output_page(&self, id: &str, from_seq: u64, max_bytes: usize) -> Result<Vec<OutputChunk>>;

    /// How much output the record holds of job `id`.
    fn output_extent(&self, id: &str) -> Result<OutputExtent>;

    /// A job's whole output, in order (for tests: it may be large).
    #[cfg(test)]
    fn output_of(&self, id: &str) -> Result<Vec<(OutputStream, Vec<u8>)>> {
        let mut all = Vec::new();
        let mut from = 0;
        loop {
            let page = self.output_page(id, from, 1 << 20)?;
            let Some(last) = page.last() else { return Ok(all) };
            from = last.0 + 1;
            all.extend(page.into_iter().map(|(_, stream, data)| (stream, data)));
        }
    }

    /// Jobs not finished yet (queued or running), oldest first: what a
    /// master takes back when it starts. Their specs are light (see
    /// [`light_spec`]), made as each is read, so that their inputs are
    /// never all in memory at once.
    fn unfinished(&self) -> Result<Vec<Unfinished>>;

    /// The id of the newest job recorded, so that new ids come after it.
    fn newest_id(&self) -> Result<Option<JobId>>;

    /// Forgets the jobs that finished before `finished_before_ms`, with
    /// their output, oldest first and a bounded number at once (the next
    /// prune takes the rest). Write-behind like the other changes: the
    /// change is made whether or not the answer, how many jobs it forgot
    /// once that is durable, is awaited.
    fn prune(&self, finished_before_ms: u64) -> BoxFuture<'static, Result<usize>>;

    /// Nodes' histories as they stand now, each replacing what the record
    /// held of that name (write-behind, like the other changes).
    fn nodes_seen(&self, nodes: Vec<NodeRecord>);

    /// The history of the node named `name`.
    fn node(&self, name: &str) -> Result<Option<NodeRecord>>;

    /// The histories of at most `limit` nodes, the most recently seen
    /// first.
    fn nodes(&self, limit: usize) -> Result<Vec<NodeRecord>>;
}

/// A chunk of output as the record holds it: its number, stream and bytes.
pub type OutputChunk = (u64, OutputStream, Vec<u8>);

/// A job not finished yet, as a master takes it back.
#[derive(Debug, Clone, PartialEq)]
pub struct Unfinished {
    /// The job, with a light spec.
    pub job: StoredJob,
    /// Whether its full spec is only in the record.
    pub spec_in_record: bool,
}

impl Unfinished {
    /// `job` taken back, its spec made light.
    pub fn new(job: StoredJob) -> Self {
        let (spec, spec_in_record) = light_spec(job.spec);
        Self { job: StoredJob { spec, ..job }, spec_in_record }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn light_specs_keep_small_inputs_and_cut_long_args() {
        let small = JobSpec { stdin: vec![1; 100], ..contract::spec() };
        assert_eq!(light_spec(small.clone()), (small, false));
        let long_args = JobSpec {
            args: vec!["é".repeat(600), "b".into()],
            env: vec![("K".into(), "V".into())],
            ..contract::spec()
        };
        let (light, in_record) = light_spec(long_args);
        assert!(in_record && light.env.is_empty());
        assert_eq!(light.args.len(), 1);
        assert!(light.args[0].len() <= INPUT_KEPT && light.args[0].starts_with('é'));
    }
}
