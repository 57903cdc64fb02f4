//! The job record: a port the live state writes through, with one
//! implementation per engine. Writes are write-behind (they return at once
//! and are applied in order); only an insert, and a flush, wait for the
//! record. Reads are blocking calls, for a blocking thread.

// First, so that the stores' tests can run its macro.
#[cfg(test)]
#[macro_use]
mod contract;

pub mod memory;
pub mod sqlite;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

use crate::error::Result;
use crate::model::{JobId, StoredJob};
use futures::future::BoxFuture;
use grid_core::{JobReport, JobSpec, JobState, OutputStream, Submission};

/// Output kept per job in the record; the rest still streams live.
pub const OUTPUT_KEPT: usize = 4 << 20;

/// What an insert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The job is recorded.
    New,
    /// A job with the same idempotency key was recorded before: this one.
    Existing(JobId),
}

/// A new job as it is recorded.
#[derive(Debug, Clone, Copy)]
pub struct NewJob<'a> {
    pub id: &'a str,
    pub submission: &'a Submission,
    pub spec: &'a JobSpec,
    pub submitted_ms: u64,
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

/// Where jobs, their attempts, results and kept output are recorded.
pub trait JobStore: Send + Sync + 'static {
    /// Records a new job queued; resolves once it is durable, or with the
    /// job that already holds its idempotency key.
    fn insert(&self, job: NewJob<'_>) -> BoxFuture<'static, Result<Inserted>>;

    /// Resolves once every change made before it is durable.
    fn flush(&self) -> BoxFuture<'static, Result<()>>;

    /// The job went to `node`, as attempt number `attempts`.
    fn running(&self, id: &str, node: &str, attempts: u32);

    /// The job is back in the queue after `attempts` attempts; its output
    /// so far is dropped.
    fn requeued(&self, id: &str, attempts: u32);

    /// A chunk of output, number `seq` of this attempt (the caller keeps a
    /// job's chunks within [`OUTPUT_KEPT`]).
    fn output(&self, id: &str, seq: u64, stream: OutputStream, data: Vec<u8>);

    /// How the job ended; `spec` is what is kept of it from now on.
    fn finished(&self, id: &str, spec: &JobSpec, report: &JobReport);

    /// One job.
    fn job(&self, id: &str) -> Result<Option<StoredJob>>;

    /// The job submitted with idempotency key `key`.
    fn job_with_key(&self, key: &str) -> Result<Option<JobId>>;

    /// A page of jobs, newest first, optionally only those in `state`: at
    /// most `limit`, and only jobs older than `before` (the `next` of the
    /// page before) when it is given. Each job is as
    /// [`crate::listing::stored`] cuts it, whatever its size in the record.
    fn list(&self, state: Option<JobState>, before: Option<u64>, limit: usize) -> Result<Page>;

    /// A job's kept output, in order.
    fn output_of(&self, id: &str) -> Result<Vec<(OutputStream, Vec<u8>)>>;

    /// Jobs not finished yet (queued or running), oldest first: what a
    /// master takes back when it starts.
    fn unfinished(&self) -> Result<Vec<StoredJob>>;
}
