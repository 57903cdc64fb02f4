//! The job record in PostgreSQL, shared by the masters of one grid (the
//! leader writes it). One writer task applies changes in batches, one
//! transaction per batch, its statements pipelined on one connection; the
//! transaction's first statement checks the leader's fence. An insert is
//! acknowledged only once its transaction has committed. A database that
//! goes away costs time, not changes: the writer keeps its batch and tries
//! again until it commits.

use super::change::Op;
use super::pg_batch::{Answer, Failure, Statements, apply, int};
use super::pg_columns::hold_back;
use super::{Backlog, Filter, Inserted, JobStore, NewJob, OutputChunk, OutputExtent, Page, SCANNED, Unfinished};
use crate::error::{MasterError, Result};
use crate::model::{JobId, NodeRecord, Standing, StoredJob, TenantUse, now_ms};
use crate::pg::{Fence, Pool};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use grid_core::wire::{decode_report, decode_spec, encode_report, encode_spec};
use grid_core::{Attempt, AttemptEnd, JobReport, JobState, NodeState, OutputStream, Verdict};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// The most changes one transaction applies.
const BATCH: usize = 1024;
/// The output bytes past which a transaction takes no more changes.
const BATCH_OUTPUT: usize = 1 << 20;
/// The first wait before a batch is tried again on a database that went
/// away; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Changes waiting at once past which the writer is busy, and gathers
/// more for [`GATHER`] before it commits.
const BUSY: usize = 8;
const GATHER: Duration = Duration::from_millis(1);
/// The longest a job's start waits for its end's batch.
const HOLD: Duration = Duration::from_millis(10);

/// The record in PostgreSQL: a writer task, and the pool for reads.
pub struct PgStore {
    writer: mpsc::UnboundedSender<Op>,
    /// Output handed to the writer and not yet committed.
    backlog: Arc<Backlog>,
    pool: Pool,
    /// The runtime reads run their queries on.
    handle: tokio::runtime::Handle,
}

/// An unsigned count from a signed column (a negative one reads as 0).
fn count(v: i64) -> u64 {
    v.max(0) as u64
}

/// A failed read, as the master reports it.
fn read_err(e: impl std::fmt::Display) -> MasterError {
    MasterError::Db(e.to_string())
}

impl PgStore {
    /// The record in the database `pool` reaches (migrated already), its
    /// writes fenced by `fence`. Starts the writer on the current tokio
    /// runtime, which reads use too.
    pub fn open(pool: Pool, fence: Arc<Fence>) -> Result<Self> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| MasterError::Internal("the PostgreSQL record opened outside a tokio runtime".into()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog::default());
        let writer = Writer { pool: pool.clone(), fence, client: None, refusing: false, backlog: backlog.clone() };
        handle.spawn(writer.run(rx));
        Ok(Self { writer: tx, backlog, pool, handle })
    }

    fn send(&self, op: Op) {
        if self.writer.send(op).is_err() {
            tracing::error!("the record's writer is gone; a change was not recorded");
        }
    }

    /// Runs a read to its end on this thread (a blocking one: see
    /// [`crate::state::blocking`]); on a runtime's worker thread it first
    /// hands that thread's other tasks to another.
    fn block<T>(&self, read: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::task::block_in_place(|| self.handle.block_on(read))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| MasterError::Db(format!("cannot reach the database: {e}")))
    }

    /// Rows of `sql`, prepared once per connection.
    async fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(read_err)?;
        client.query(&stmt, params).await.map_err(read_err)
    }

    /// Jobs of `sql` (selecting [`JOB_COLUMNS`]), each decoded, and cut
    /// for a listing with `listed`, as it arrives.
    async fn jobs(&self, sql: &str, params: &[&(dyn ToSql + Sync)], listed: bool) -> Result<Vec<(i64, StoredJob)>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(read_err)?;
        let rows = client.query_raw(&stmt, params.iter().copied()).await.map_err(read_err)?;
        rows.map_err(read_err)
            .and_then(|row| async move {
                let (seq, job) = job_row(&row)?;
                Ok((seq, if listed { crate::listing::stored(StoredJob { fingerprint: None, ..job }) } else { job }))
            })
            .try_collect()
            .await
    }

    /// A page of a listing filtered by tenant, node or module: of the (at
    /// most [`SCANNED`]) jobs older than `before`, newest first, those
    /// `filter` admits, at most `limit`. Tenant, node and state are
    /// matched by PostgreSQL, the module on the decoded spec.
    async fn scan(&self, filter: &Filter, before: i64, limit: usize) -> Result<Page> {
        let window = SCANNED as i64;
        let state = filter.state.map(JobState::as_str);
        let mut client = self.client().await?;
        // One snapshot for both reads: a job recorded between them would
        // shift the window, and the page's next position would skip a row.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(read_err)?;
        let bounds = tx
            .query_one(
                "SELECT COUNT(*), MIN(seq) FROM (SELECT seq FROM jobs WHERE seq < $1 ORDER BY seq DESC LIMIT $2) w",
                &[&before, &window],
            )
            .await
            .map_err(read_err)?;
        let (scanned, lowest): (i64, Option<i64>) = (bounds.get(0), bounds.get(1));
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE seq IN (SELECT seq FROM jobs WHERE seq < $1 ORDER BY seq DESC LIMIT $2)
             AND ($3::TEXT IS NULL OR state = $3) AND ($4::TEXT IS NULL OR tenant = $4)
             AND ($5::TEXT IS NULL OR node = $5)
             ORDER BY seq DESC"
        );
        let params: [&(dyn ToSql + Sync); 5] = [&before, &window, &state, &filter.tenant, &filter.node];
        let mut rows = std::pin::pin!(tx.query_raw(sql.as_str(), params).await.map_err(read_err)?);
        let mut jobs = Vec::new();
        while let Some(row) = rows.next().await {
            let (seq, job) = job_row(&row.map_err(read_err)?)?;
            if filter.module_prefix.as_ref().is_some_and(|p| !job.spec.module.as_str().starts_with(p.as_str())) {
                continue;
            }
            jobs.push(crate::listing::stored(StoredJob { fingerprint: None, ..job }));
            if jobs.len() == limit {
                return Ok(Page { jobs, next: Some(seq as u64) });
            }
        }
        // The window was full: older jobs may match too.
        let next = if scanned >= window { lowest.map(|s| s as u64) } else { None };
        Ok(Page { jobs, next })
    }
}

/// What a job's row holds, in the order [`job_row`] decodes it.
const JOB_COLUMNS: &str = "seq, id, idem_key, spec, state, node, attempts, submitted_ms, result, tenant, priority,
    started_ms, finished_ms, fingerprint";

/// A job's position and the job, from a row of [`JOB_COLUMNS`].
fn job_row(r: &Row) -> Result<(i64, StoredJob)> {
    let id: String = r.try_get(1).map_err(read_err)?;
    let bad = |e: &dyn std::fmt::Display| MasterError::Db(format!("job `{id}`: {e}"));
    let spec: &[u8] = r.try_get(3).map_err(|e| bad(&e))?;
    let result: Option<&[u8]> = r.try_get(8).map_err(|e| bad(&e))?;
    let state: &str = r.try_get(4).map_err(|e| bad(&e))?;
    let job = StoredJob {
        spec: decode_spec(spec).map_err(|e| bad(&e))?,
        result: result.map(decode_report).transpose().map_err(|e| bad(&e))?,
        state: state.parse::<JobState>().map_err(|e| bad(&e))?,
        key: r.try_get(2).map_err(|e| bad(&e))?,
        node: r.try_get(5).map_err(|e| bad(&e))?,
        attempts: r.try_get::<_, i32>(6).map_err(|e| bad(&e))?.max(0) as u32,
        submitted_ms: count(r.try_get(7).map_err(|e| bad(&e))?),
        tenant: r.try_get(9).map_err(|e| bad(&e))?,
        priority: r.try_get(10).map_err(|e| bad(&e))?,
        started_ms: r.try_get::<_, Option<i64>>(11).map_err(|e| bad(&e))?.map(count),
        finished_ms: r.try_get::<_, Option<i64>>(12).map_err(|e| bad(&e))?.map(count),
        fingerprint: r.try_get(13).map_err(|e| bad(&e))?,
        id: id.clone(),
    };
    Ok((r.try_get(0).map_err(|e| bad(&e))?, job))
}

const NODE_COLUMNS: &str = "SELECT name, identity, state, jobs_run, fuel_burned, lost_jobs, first_seen_ms,
    last_seen_ms, streak, strikes, quarantined, credit FROM nodes";

/// A node's history from a row of [`NODE_COLUMNS`].
fn node_row(r: &Row) -> Result<NodeRecord> {
    let name: String = r.try_get(0).map_err(read_err)?;
    let bad = |e: &dyn std::fmt::Display| MasterError::Db(format!("node `{name}`: {e}"));
    let state: &str = r.try_get(2).map_err(|e| bad(&e))?;
    let n = |i: usize| r.try_get::<_, i64>(i).map(count).map_err(|e| bad(&e));
    let small = |i: usize| r.try_get::<_, i32>(i).map(|v| v.max(0) as u32).map_err(|e| bad(&e));
    Ok(NodeRecord {
        identity: r.try_get(1).map_err(|e| bad(&e))?,
        state: state.parse::<NodeState>().map_err(|e| bad(&e))?,
        jobs_run: n(3)?,
        fuel_burned: n(4)?,
        lost_jobs: n(5)?,
        first_seen_ms: n(6)?,
        last_seen_ms: n(7)?,
        standing: Standing {
            streak: small(8)?,
            strikes: small(9)?,
            quarantined: r.try_get(10).map_err(|e| bad(&e))?,
            credit: n(11)?,
        },
        name: name.clone(),
    })
}

/// A oneshot answer from the writer, as a future.
fn answer<T: Send + 'static>(rx: oneshot::Receiver<Result<T>>) -> BoxFuture<'static, Result<T>> {
    Box::pin(async move { rx.await.map_err(|_| MasterError::Db("the record's writer stopped".into()))? })
}

impl JobStore for PgStore {
    fn insert(&self, job: NewJob<'_>) -> BoxFuture<'static, Result<Inserted>> {
        // PostgreSQL's text holds no NUL: refused here, it cannot fail the
        // batch it would have gone in.
        if job.submission.key.as_deref().is_some_and(|k| k.contains('\0')) {
            let refused = MasterError::InvalidArgument("the idempotency key holds a NUL character".into());
            return Box::pin(async move { Err(refused) });
        }
        let (done, committed) = oneshot::channel();
        self.send(Op::Insert {
            id: job.id.to_owned(),
            meta: job.submission.clone(),
            spec: encode_spec(job.spec),
            submitted_ms: job.submitted_ms,
            fingerprint: job.fingerprint.map(str::to_owned),
            done,
        });
        answer(committed)
    }

    fn flush(&self) -> BoxFuture<'static, Result<()>> {
        let (done, committed) = oneshot::channel();
        self.send(Op::Flush { done });
        answer(committed)
    }

    fn running(&self, id: &str, node: &str, attempts: u32) {
        self.send(Op::Running { id: id.to_owned(), node: node.to_owned(), attempts, at_ms: now_ms() });
    }

    fn requeued(&self, id: &str, attempts: u32, end: AttemptEnd) {
        self.send(Op::Requeued { id: id.to_owned(), attempts, end, at_ms: now_ms() });
    }

    fn replica(&self, id: &str, number: u32, end: Option<AttemptEnd>, digest: Option<&str>, verdict: Option<Verdict>) {
        self.send(Op::Replica {
            id: id.to_owned(),
            number,
            end,
            digest: digest.map(str::to_owned),
            verdict,
            at_ms: now_ms(),
        });
    }

    fn billed(&self, tenant: &str, runs: u64, fuel: u64) {
        self.send(Op::Billed { tenant: tenant.to_owned(), runs, fuel });
    }

    fn output(&self, id: &str, seq: u64, stream: OutputStream, data: Vec<u8>) {
        self.backlog.queued(data.len());
        self.send(Op::Output { id: id.to_owned(), seq, stream, data });
    }

    fn backlog(&self) -> Option<Arc<Backlog>> {
        Some(self.backlog.clone())
    }

    fn finished(&self, id: &str, report: &JobReport, drop_input: bool, end: AttemptEnd, ran: Option<&str>) {
        self.send(Op::Finished {
            id: id.to_owned(),
            state: JobState::finished(report),
            result: encode_report(report),
            drop_input,
            end,
            at_ms: now_ms(),
            ran: ran.map(|tenant| (tenant.to_owned(), report.fuel_used)),
        });
    }

    fn tenant_use(&self) -> Result<Vec<TenantUse>> {
        self.block(async {
            let rows = self
                .rows("SELECT name, jobs_run, fuel_burned FROM tenant_use ORDER BY name COLLATE \"C\"", &[])
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(TenantUse {
                        name: r.try_get(0).map_err(read_err)?,
                        jobs_run: count(r.try_get(1).map_err(read_err)?),
                        fuel_burned: count(r.try_get(2).map_err(read_err)?),
                    })
                })
                .collect()
        })
    }

    fn job(&self, id: &str) -> Result<Option<StoredJob>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        self.block(async { Ok(self.jobs(&sql, &[&id], false).await?.pop().map(|(_, job)| job)) })
    }

    fn job_with_key(&self, key: &str) -> Result<Option<(JobId, Option<String>)>> {
        self.block(async {
            let rows = self.rows("SELECT id, fingerprint FROM jobs WHERE idem_key = $1", &[&key]).await?;
            rows.first().map(|r| Ok((r.try_get(0).map_err(read_err)?, r.try_get(1).map_err(read_err)?))).transpose()
        })
    }

    fn attempts(&self, id: &str) -> Result<Vec<Attempt>> {
        let sql = "SELECT number, node, started_ms, ended_ms, ending, digest, verdict FROM attempts
                   WHERE job_id = $1 ORDER BY number";
        self.block(async {
            let rows = self.rows(sql, &[&id]).await?;
            rows.iter()
                .map(|r| {
                    let bad = |e: &dyn std::fmt::Display| MasterError::Db(format!("job `{id}`: {e}"));
                    let ending: Option<&str> = r.try_get(4).map_err(|e| bad(&e))?;
                    let verdict: Option<&str> = r.try_get(6).map_err(|e| bad(&e))?;
                    Ok(Attempt {
                        number: r.try_get::<_, i32>(0).map_err(|e| bad(&e))?.max(0) as u32,
                        node: r.try_get(1).map_err(|e| bad(&e))?,
                        started_ms: count(r.try_get(2).map_err(|e| bad(&e))?),
                        ended_ms: r.try_get::<_, Option<i64>>(3).map_err(|e| bad(&e))?.map(count),
                        end: ending.map(str::parse::<AttemptEnd>).transpose().map_err(|e| bad(&e))?,
                        digest: r.try_get(5).map_err(|e| bad(&e))?,
                        verdict: verdict.and_then(|v| v.parse::<Verdict>().ok()),
                    })
                })
                .collect()
        })
    }

    fn position(&self, id: &str) -> Result<Option<u64>> {
        self.block(async {
            let rows = self.rows("SELECT seq FROM jobs WHERE id = $1", &[&id]).await?;
            rows.first().map(|r| r.try_get::<_, i64>(0).map(count).map_err(read_err)).transpose()
        })
    }

    fn list(&self, filter: &Filter, before: Option<u64>, limit: usize) -> Result<Page> {
        let before = before.map_or(i64::MAX, int);
        if filter.scans() {
            return self.block(self.scan(filter, before, limit));
        }
        // One more than asked for: whether there is a next page.
        let take = int(limit as u64).saturating_add(1);
        let state = filter.state.map(JobState::as_str);
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1::TEXT IS NULL OR state = $1) AND seq < $2
             ORDER BY seq DESC LIMIT $3"
        );
        let mut rows = self.block(self.jobs(&sql, &[&state, &before, &take], true))?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more { rows.last().map(|(seq, _)| *seq as u64) } else { None };
        Ok(Page { jobs: rows.into_iter().map(|(_, job)| job).collect(), next })
    }

    fn output_page(&self, id: &str, from_seq: u64, max_bytes: usize) -> Result<Vec<OutputChunk>> {
        let from = int(from_seq);
        self.block(async {
            let client = self.client().await?;
            // The sizes first, so that a chunk that does not fit is not read.
            let sizes = client
                .prepare_cached(
                    "SELECT seq, octet_length(data)::BIGINT FROM output WHERE job_id = $1 AND seq >= $2 ORDER BY seq",
                )
                .await
                .map_err(read_err)?;
            let (mut last, mut bytes, mut n) = (None, 0usize, 0usize);
            {
                // Dropped before the next query: a stream left unread holds up the connection.
                let params: [&(dyn ToSql + Sync); 2] = [&id, &from];
                let mut rows = std::pin::pin!(client.query_raw(&sizes, params).await.map_err(read_err)?);
                while let Some(row) = rows.next().await {
                    let row = row.map_err(read_err)?;
                    let len = count(row.try_get(1).map_err(read_err)?) as usize;
                    if n > 0 && bytes.saturating_add(len) > max_bytes {
                        break;
                    }
                    bytes = bytes.saturating_add(len);
                    n += 1;
                    last = Some(row.try_get::<_, i64>(0).map_err(read_err)?);
                }
            }
            let Some(last) = last else { return Ok(Vec::new()) };
            let chunks = client
                .prepare_cached(
                    "SELECT seq, stream, data FROM output WHERE job_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq",
                )
                .await
                .map_err(read_err)?;
            let rows = client.query(&chunks, &[&id, &from, &last]).await.map_err(read_err)?;
            rows.into_iter()
                .map(|r| {
                    let stream = if r.try_get::<_, i16>(1).map_err(read_err)? == 2 {
                        OutputStream::Stderr
                    } else {
                        OutputStream::Stdout
                    };
                    Ok((count(r.try_get(0).map_err(read_err)?), stream, r.try_get(2).map_err(read_err)?))
                })
                .collect()
        })
    }

    fn output_extent(&self, id: &str) -> Result<OutputExtent> {
        self.block(async {
            let sql = "SELECT COALESCE(MAX(seq) + 1, 0), COUNT(*), COALESCE(SUM(octet_length(data)), 0)::BIGINT
                FROM output WHERE job_id = $1";
            let rows = self.rows(sql, &[&id]).await?;
            let r = rows.first().ok_or_else(|| MasterError::Db("no output extent".into()))?;
            Ok(OutputExtent {
                next_seq: count(r.try_get(0).map_err(read_err)?),
                chunks: count(r.try_get(1).map_err(read_err)?),
                bytes: count(r.try_get(2).map_err(read_err)?),
            })
        })
    }

    fn unfinished(&self) -> Result<Vec<Unfinished>> {
        // Each row's spec is made light as it is read: the inputs of all the
        // unfinished jobs are never in memory at once.
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('queued', 'running') ORDER BY seq");
        self.block(async {
            let client = self.client().await?;
            let rows = client.query_raw(sql.as_str(), std::iter::empty::<&str>()).await.map_err(read_err)?;
            rows.map_err(read_err)
                .and_then(|row| async move {
                    let (_, job) = job_row(&row)?;
                    Ok(Unfinished::new(StoredJob { result: None, finished_ms: None, ..job }))
                })
                .try_collect()
                .await
        })
    }

    fn newest_id(&self) -> Result<Option<JobId>> {
        self.block(async {
            let rows = self.rows("SELECT id FROM jobs ORDER BY seq DESC LIMIT 1", &[]).await?;
            rows.first().map(|r| r.try_get(0).map_err(read_err)).transpose()
        })
    }

    fn prune(&self, finished_before_ms: u64) -> BoxFuture<'static, Result<usize>> {
        let (done, committed) = oneshot::channel();
        self.send(Op::Prune { finished_before_ms, done });
        answer(committed)
    }

    fn nodes_seen(&self, nodes: Vec<NodeRecord>) {
        self.send(Op::Nodes(nodes));
    }

    fn node(&self, name: &str) -> Result<Option<NodeRecord>> {
        let sql = format!("{NODE_COLUMNS} WHERE name = $1");
        self.block(async { self.rows(&sql, &[&name]).await?.first().map(node_row).transpose() })
    }

    fn nodes(&self, limit: usize) -> Result<Vec<NodeRecord>> {
        let sql = format!("{NODE_COLUMNS} ORDER BY last_seen_ms DESC, name COLLATE \"C\" LIMIT $1");
        let limit = int(limit as u64);
        self.block(async { self.rows(&sql, &[&limit]).await?.iter().map(node_row).collect() })
    }
}

const PRUNE_WALK: &str = "SELECT id, submitted_ms, finished_ms FROM jobs ORDER BY seq";
const PRUNE_OUTPUT: &str = "DELETE FROM output WHERE job_id = ANY($1)";
const PRUNE_ATTEMPTS: &str = "DELETE FROM attempts WHERE job_id = ANY($1)";
const PRUNE_JOBS: &str = "DELETE FROM jobs WHERE id = ANY($1)";

/// The most jobs one prune forgets, so that it never holds the writer for
/// long; the next prune takes the rest.
const PRUNED_AT_ONCE: usize = 10_000;

/// The record's writer: one connection, one transaction per batch.
struct Writer {
    pool: Pool,
    fence: Arc<Fence>,
    client: Option<deadpool_postgres::Object>,
    /// The fence refused a batch: every change from then on is refused.
    refusing: bool,
    /// Output handed to this writer and not yet committed.
    backlog: Arc<Backlog>,
}

impl Writer {
    /// Applies changes in batches: everything waiting, up to [`BATCH`], in
    /// one transaction (when busy, what comes within [`GATHER`] too). A
    /// job's start with nothing after it in its batch waits for the next
    /// batch (once, and at most [`HOLD`]), where its end usually is: the two
    /// are then written as one change.
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Op>) {
        let mut held: Vec<Op> = Vec::new();
        loop {
            let first = if held.is_empty() {
                rx.recv().await
            } else {
                match tokio::time::timeout(HOLD, rx.recv()).await {
                    Ok(first) => first,
                    Err(_) => {
                        self.commit(std::mem::take(&mut held)).await;
                        continue;
                    }
                }
            };
            let Some(first) = first else { break };
            let mut output = first.output_bytes();
            let mut batch = std::mem::take(&mut held);
            let again = batch.len();
            batch.reserve(BATCH);
            batch.push(first);
            gather(&mut rx, &mut batch, &mut output);
            // Busy: what comes within a moment goes in this transaction
            // too. Each commit costs the database a round of work however
            // little it carries; an idle grid's changes never wait.
            if batch.len() - again >= BUSY {
                tokio::time::sleep(GATHER).await;
                gather(&mut rx, &mut batch, &mut output);
            }
            held = hold_back(&mut batch, again);
            if !batch.is_empty() {
                self.commit(batch).await;
            }
            self.backlog.written(output);
        }
        if !held.is_empty() {
            self.commit(held).await;
        }
    }

    /// Commits `batch`, however long the database takes to come back, and
    /// answers those who wait for it.
    async fn commit(&mut self, batch: Vec<Op>) {
        if self.refusing {
            return answer_all(batch, || Err(self.fence.refused()), Vec::new());
        }
        let mut wait = RETRY_FIRST;
        let mut outage = false;
        loop {
            match self.try_commit(&batch).await {
                Ok(answers) => {
                    if outage {
                        tracing::info!("the database is back; the record's changes are committed again");
                    }
                    return answer_all(batch, || Ok(()), answers);
                }
                Err(Failure::Fenced(e)) => {
                    tracing::error!(error = %e, "the record's writes are refused from now on");
                    self.refusing = true;
                    let why = e.to_string();
                    return answer_all(batch, || Err(MasterError::NotLeader(why.clone())), Vec::new());
                }
                Err(Failure::Failed(e)) => {
                    tracing::error!(error = %e, changes = batch.len(), "failed to record changes");
                    return answer_all(batch, || Err(MasterError::Db(e.clone())), Vec::new());
                }
                Err(Failure::Gone(e)) => {
                    if !outage {
                        tracing::warn!(error = %e, "the database is gone; the record's changes wait for it");
                        outage = true;
                    }
                    self.client = None;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// One try at committing `batch`: its answers, by index, or why not.
    async fn try_commit(&mut self, batch: &[Op]) -> Result<Vec<(usize, Answer)>, Failure> {
        let client = match self.client.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.pool.get().await.map_err(|e| Failure::Gone(e.to_string()))?,
        };
        let client = self.client.insert(client);
        let statements = Statements::prepare(client).await?;
        let tx = client.transaction().await?;
        self.fence.check(&tx).await.map_err(|e| match e {
            MasterError::NotLeader(_) => Failure::Fenced(e),
            e => Failure::Gone(e.to_string()),
        })?;
        let mut answers = Vec::new();
        // Changes go in runs between prunes (a prune reads what the
        // changes before it wrote).
        let mut start = 0;
        for (i, op) in batch.iter().enumerate() {
            if let Op::Prune { finished_before_ms, .. } = op {
                apply(&tx, &statements, &batch[start..i], start, &mut answers).await?;
                answers.push((i, Answer::Pruned(prune(&tx, int(*finished_before_ms)).await?)));
                start = i + 1;
            }
        }
        apply(&tx, &statements, &batch[start..], start, &mut answers).await?;
        tx.commit().await?;
        Ok(answers)
    }
}

/// Adds to `batch` the changes waiting in `rx`, up to so many changes and
/// so much output (`output` counts it): a batch's statements are encoded
/// whole before they are sent.
fn gather(rx: &mut mpsc::UnboundedReceiver<Op>, batch: &mut Vec<Op>, output: &mut usize) {
    while batch.len() < BATCH && *output < BATCH_OUTPUT {
        let Ok(op) = rx.try_recv() else { break };
        *output += op.output_bytes();
        batch.push(op);
    }
}

/// Answers each change of a batch that waits: inserts and prunes by their
/// `answers` (when it committed), all by `outcome`.
fn answer_all(batch: Vec<Op>, outcome: impl Fn() -> Result<()>, answers: Vec<(usize, Answer)>) {
    let mut answers = answers.into_iter().peekable();
    for (i, op) in batch.into_iter().enumerate() {
        let answer = answers.next_if(|(at, _)| *at == i).map(|(_, a)| a);
        match op {
            Op::Insert { done, .. } => {
                let inserted = match answer {
                    Some(Answer::Inserted(r)) => r,
                    _ => Ok(Inserted::New),
                };
                let _ = done.send(outcome().and(inserted));
            }
            Op::Flush { done } => {
                let _ = done.send(outcome());
            }
            Op::Prune { done, .. } => {
                let _ = done.send(outcome().map(|()| match answer {
                    Some(Answer::Pruned(n)) => n,
                    _ => 0,
                }));
            }
            _ => {}
        }
    }
}

/// Forgets jobs that finished before `before` (ms), oldest first; returns
/// how many. Walks the jobs in the order they came and stops at the first
/// submitted after `before` (it cannot have finished before it), so no
/// index on the finish time is kept up on every job's end.
async fn prune(tx: &tokio_postgres::Transaction<'_>, before: i64) -> Result<usize, Failure> {
    let mut old: Vec<String> = Vec::new();
    {
        let mut rows = std::pin::pin!(tx.query_raw(PRUNE_WALK, std::iter::empty::<&str>()).await?);
        while let Some(row) = rows.next().await {
            let row = row?;
            if row.get::<_, i64>(1) >= before || old.len() >= PRUNED_AT_ONCE {
                break;
            }
            if row.get::<_, Option<i64>>(2).is_some_and(|finished| finished < before) {
                old.push(row.get(0));
            }
        }
    }
    if !old.is_empty() {
        for sql in [PRUNE_OUTPUT, PRUNE_ATTEMPTS, PRUNE_JOBS] {
            tx.execute(sql, &[&old]).await?;
        }
    }
    Ok(old.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::contract::spec;
    use grid_core::Submission;

    /// Makes `fence` hold the lease of the database `pool` reaches.
    async fn lead(pool: &Pool, fence: &Fence) {
        let lease = "UPDATE grid_lease SET holder = $1, epoch = 1, expires_at = now() + interval '1 hour' WHERE id = 1";
        pool.get().await.unwrap().execute(lease, &[&fence.master()]).await.unwrap();
        fence.hold(1);
    }

    /// A migrated database at `url`, its pool, and the fence of its leader.
    async fn leading(url: &str) -> (Pool, Arc<Fence>) {
        let pool = crate::pg::connect(url).await.unwrap();
        crate::pg::migrate(&pool).await.unwrap();
        let fence = Fence::new("master-a");
        lead(&pool, &fence).await;
        (pool, fence)
    }

    /// A store on a fresh database of the shared test server, from a
    /// blocking context on a multi-thread runtime (the contract's fixture).
    fn fresh() -> PgStore {
        tokio::task::block_in_place(|| {
            let url = grid_testpg::shared().fresh_database().unwrap();
            tokio::runtime::Handle::current().block_on(async {
                let (pool, fence) = leading(&url).await;
                PgStore::open(pool, fence).unwrap()
            })
        })
    }

    job_store_contract!(|_dir: &Path| fresh());

    fn job(id: &str) -> NewJob<'_> {
        static SUB: std::sync::LazyLock<Submission> = std::sync::LazyLock::new(Submission::default);
        static SPEC: std::sync::LazyLock<grid_core::JobSpec> = std::sync::LazyLock::new(spec);
        NewJob { id, submission: &SUB, spec: &SPEC, submitted_ms: 1, fingerprint: None }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_start_held_for_its_end_is_written_on_its_own_when_no_end_comes() {
        let db = Arc::new(tokio::task::spawn_blocking(fresh).await.unwrap());
        assert_eq!(db.insert(job("j1")).await.unwrap(), Inserted::New);
        // Nothing follows the start and nobody flushes: it is written anyway.
        db.running("j1", "node-a", 1);
        let read = db.clone();
        let started = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let job = read.job("j1").unwrap().unwrap();
                if job.state == JobState::Running || std::time::Instant::now() > deadline {
                    return job;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .await
        .unwrap();
        assert_eq!((started.state, started.node.as_str()), (JobState::Running, "node-a"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_jobs_started_and_ended_at_once_are_each_recorded_whole() {
        use grid_core::{JobReport, Outcome};
        let db = Arc::new(tokio::task::spawn_blocking(fresh).await.unwrap());
        let ids: Vec<String> = (0..200).map(|i| format!("j{i}")).collect();
        for id in &ids {
            assert_eq!(db.insert(job(id)).await.unwrap(), Inserted::New);
        }
        // Starts, output and ends of many jobs, sent at once: a busy batch.
        let ended = JobReport::before_start(Outcome::Exited(0), "node-a", &grid_core::Limits::default());
        let report = JobReport { fuel_used: 3, ..ended };
        for id in &ids {
            db.running(id, "node-a", 1);
            db.output(id, 0, OutputStream::Stdout, id.as_bytes().to_vec());
            db.finished(id, &report, false, AttemptEnd::Finished, Some(""));
        }
        db.flush().await.unwrap();
        let read = db.clone();
        tokio::task::spawn_blocking(move || {
            for id in &ids {
                let job = read.job(id).unwrap().unwrap();
                assert_eq!((job.state, job.node.as_str(), job.attempts), (JobState::Succeeded, "node-a", 1), "{id}");
                let attempts = read.attempts(id).unwrap();
                assert_eq!(attempts.len(), 1, "{id}");
                assert_eq!((attempts[0].node.as_str(), attempts[0].end), ("node-a", Some(AttemptEnd::Finished)));
                assert_eq!(read.output_of(id).unwrap(), [(OutputStream::Stdout, id.as_bytes().to_vec())]);
            }
            let used = read.tenant_use().unwrap();
            assert_eq!((used.len(), used[0].jobs_run, used[0].fuel_burned), (1, 200, 600));
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inserts_of_one_key_in_one_batch_yield_the_first_and_the_rest_are_recorded() {
        let db = tokio::task::spawn_blocking(fresh).await.unwrap();
        let sub = Submission { key: Some("k".into()), tenant: "t".into(), priority: 0 };
        let spec = spec();
        let keyed = |id| NewJob { id, submission: &sub, spec: &spec, submitted_ms: 1, fingerprint: Some("f") };
        // Sent before any is awaited: one batch, with keyless jobs around them.
        let all = [db.insert(job("a")), db.insert(keyed("k1")), db.insert(keyed("k2")), db.insert(job("b"))];
        let answers = futures::future::join_all(all).await;
        let answers: Vec<Inserted> = answers.into_iter().map(Result::unwrap).collect();
        let existing = Inserted::Existing("k1".into(), Some("f".into()));
        assert_eq!(answers, [Inserted::New, Inserted::New, existing.clone(), Inserted::New]);
        // And later, from the record.
        assert_eq!(db.insert(keyed("k3")).await.unwrap(), existing);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_master_whose_lease_moved_on_writes_nothing_and_knows_it() {
        let url = tokio::task::spawn_blocking(|| grid_testpg::shared().fresh_database().unwrap()).await.unwrap();
        let (pool, fence) = leading(&url).await;
        let db = PgStore::open(pool.clone(), fence.clone()).unwrap();
        assert_eq!(db.insert(job("before")).await.unwrap(), Inserted::New);
        // Another master takes the lease.
        let take = "UPDATE grid_lease SET holder = 'other', epoch = epoch + 1 WHERE id = 1";
        pool.get().await.unwrap().execute(take, &[]).await.unwrap();
        let refused = db.insert(job("after")).await.unwrap_err();
        assert!(matches!(refused, MasterError::NotLeader(_)), "{refused}");
        assert!(fence.is_lost());
        // Every later change is refused too, even with the lease held again.
        db.running("before", "node-a", 1);
        assert!(matches!(db.flush().await.unwrap_err(), MasterError::NotLeader(_)));
        lead(&pool, &fence).await;
        assert!(matches!(db.insert(job("later")).await.unwrap_err(), MasterError::NotLeader(_)));
        let db = Arc::new(db);
        let read = db.clone();
        let (after, later, before) = tokio::task::spawn_blocking(move || {
            (read.job("after").unwrap(), read.job("later").unwrap(), read.job("before").unwrap().unwrap())
        })
        .await
        .unwrap();
        assert!(after.is_none() && later.is_none(), "a fenced master's insert was recorded");
        assert_eq!(before.state, JobState::Queued, "a fenced master's change was recorded");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inserts_wait_out_a_database_restart_and_none_acknowledged_is_lost() {
        let server = Arc::new(tokio::task::spawn_blocking(|| grid_testpg::PgServer::start().unwrap()).await.unwrap());
        let url = server.fresh_database().unwrap();
        let (pool, fence) = leading(&url).await;
        let db = Arc::new(PgStore::open(pool, fence).unwrap());
        // Inserts one after another, each waiting for its commit, while the
        // server is killed and started again.
        let writer = db.clone();
        let inserts = tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..200 {
                let id = format!("j{i:03}");
                let new = NewJob { id: &id, ..job("") };
                assert_eq!(writer.insert(new).await.unwrap(), Inserted::New);
                writer.output(&id, 0, OutputStream::Stdout, id.as_bytes().to_vec());
                acked.push(id);
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            writer.flush().await.unwrap();
            acked
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let chaos = server.clone();
        tokio::task::spawn_blocking(move || {
            chaos.kill();
            std::thread::sleep(Duration::from_millis(500));
            chaos.restart().unwrap();
        })
        .await
        .unwrap();
        let acked = inserts.await.unwrap();
        assert_eq!(acked.len(), 200);
        let read = db.clone();
        tokio::task::spawn_blocking(move || {
            for id in &acked {
                assert!(read.job(id).unwrap().is_some(), "acknowledged job `{id}` was lost");
                assert_eq!(read.output_of(id).unwrap(), [(OutputStream::Stdout, id.as_bytes().to_vec())]);
            }
        })
        .await
        .unwrap();
    }
}
