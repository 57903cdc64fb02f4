//! A batch of changes to the PostgreSQL record, as its writer applies them
//! in one transaction: laid out by [`pg_columns`](super::pg_columns) (new
//! jobs, output and tenants' use a multi-row statement each; other changes
//! a prepared statement each, a job's changes merged into one statement
//! where they touch several tables), all sent on the writer's connection
//! before any answer is awaited (pipelined), so a batch costs one round
//! trip and one commit, however many changes it holds.

use super::Inserted;
use super::change::Op;
use super::pg_columns::{Chunks, Merge, lay_out};
use crate::error::{MasterError, Result};
use futures::future::{BoxFuture, MaybeDone, maybe_done};
use grid_core::wire::{decode_spec, encode_spec};
use grid_core::{AttemptEnd, Verdict};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio_postgres::types::ToSql;

/// A signed column from an unsigned count, saturating.
pub(super) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

// The writer's statements.

/// New jobs, a column each, in the order they came (so their `seq` too).
const INSERT_JOBS: &str = "INSERT INTO jobs (id, idem_key, tenant, priority, spec, state, submitted_ms, fingerprint)
    SELECT id, idem_key, tenant, priority, spec, 'queued', submitted_ms, fingerprint
    FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::INTEGER[], $5::BYTEA[], $6::BIGINT[], $7::TEXT[])
        WITH ORDINALITY AS new (id, idem_key, tenant, priority, spec, submitted_ms, fingerprint, n)
    ORDER BY n
    ON CONFLICT DO NOTHING";
/// After a batch's insert recorded fewer jobs than it sent: the rows that
/// bear their ids (a commit whose answer was lost with the connection,
/// tried again) or hold their keys.
const INSERTED_BEFORE: &str = "SELECT id, fingerprint, idem_key FROM jobs WHERE id = ANY($1) OR idem_key = ANY($2)";
const RUNNING: &str = "WITH job AS (
        UPDATE jobs SET state = 'running', node = $2, attempts = $3, started_ms = $4 WHERE id = $1
    )
    INSERT INTO attempts (job_id, number, node, started_ms) VALUES ($1, $3, $2, $4)
    ON CONFLICT (job_id, number) DO UPDATE SET node = excluded.node, started_ms = excluded.started_ms,
        ended_ms = NULL, ending = NULL, digest = NULL, verdict = NULL";
/// Back in the queue: its node is the previous attempt's now, not its
/// own; its output so far is dropped; its attempt ends.
const REQUEUED: &str = "WITH job AS (
        UPDATE jobs SET state = 'queued', node = '', attempts = $2 WHERE id = $1
    ), gone AS (
        DELETE FROM output WHERE job_id = $1
    )
    UPDATE attempts SET ended_ms = $3, ending = $4 WHERE job_id = $1 AND ended_ms IS NULL";
const REPLICA: &str = "UPDATE attempts SET
        ended_ms = CASE WHEN $3::TEXT IS NULL THEN ended_ms ELSE COALESCE(ended_ms, $6) END,
        ending = COALESCE(ending, $3::TEXT),
        digest = COALESCE($4::TEXT, digest),
        verdict = COALESCE($5::TEXT, verdict)
    WHERE job_id = $1 AND number = $2";
/// More jobs run and fuel burned by tenants, a column each (`$1` the
/// names, each once), saturating.
const ADD_TENANT_USE: &str = "INSERT INTO tenant_use (name, jobs_run, fuel_burned)
    SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[])
    ON CONFLICT (name) DO UPDATE SET
        jobs_run = CASE WHEN tenant_use.jobs_run > 9223372036854775807 - excluded.jobs_run
                   THEN 9223372036854775807 ELSE tenant_use.jobs_run + excluded.jobs_run END,
        fuel_burned = CASE WHEN tenant_use.fuel_burned > 9223372036854775807 - excluded.fuel_burned
                      THEN 9223372036854775807 ELSE tenant_use.fuel_burned + excluded.fuel_burned END";
/// Output chunks, a column each (no chunk twice).
const OUTPUT: &str = "INSERT INTO output (job_id, seq, stream, data)
    SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::SMALLINT[], $4::BYTEA[])
    ON CONFLICT (job_id, seq) DO UPDATE SET stream = excluded.stream, data = excluded.data";
/// The job's end, and its running attempt's.
const FINISHED: &str = "WITH job AS (
        UPDATE jobs SET state = $2, result = $3, finished_ms = $4 WHERE id = $1
    )
    UPDATE attempts SET ended_ms = $4, ending = $5 WHERE job_id = $1 AND ended_ms IS NULL";
/// A job's start and end at once (both fell in one batch), with `$others`
/// between its row's update and its attempt's: attempt `$4` is recorded
/// whole.
macro_rules! ran {
    ($others:literal) => {
        concat!(
            "WITH job AS (
        UPDATE jobs SET state = $2, node = $3, attempts = $4, started_ms = $5, result = $6, finished_ms = $7
        WHERE id = $1
    )",
            $others,
            "
    INSERT INTO attempts (job_id, number, node, started_ms, ended_ms, ending) VALUES ($1, $4, $3, $5, $7, $8)
    ON CONFLICT (job_id, number) DO UPDATE SET node = excluded.node, started_ms = excluded.started_ms,
        ended_ms = excluded.ended_ms, ending = excluded.ending, digest = NULL, verdict = NULL"
        )
    };
}
/// [`RAN`] for a job's first attempt, where no other can be open.
const RAN_FIRST: &str = ran!("");
/// [`ran!`], and any other attempt of the job still open ends.
const RAN: &str = ran!(
    ", others AS (
        UPDATE attempts SET ended_ms = $7, ending = $8 WHERE job_id = $1 AND number <> $4 AND ended_ms IS NULL
    )"
);
const SPECS: &str = "SELECT id, spec FROM jobs WHERE id = ANY($1)";
const SET_SPEC: &str = "UPDATE jobs SET spec = $2 WHERE id = $1";
const UPSERT_NODE: &str = "INSERT INTO nodes
    (name, identity, state, jobs_run, fuel_burned, lost_jobs, first_seen_ms, last_seen_ms,
     streak, strikes, quarantined, credit)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (name) DO UPDATE SET identity = excluded.identity, state = excluded.state,
        jobs_run = excluded.jobs_run, fuel_burned = excluded.fuel_burned, lost_jobs = excluded.lost_jobs,
        first_seen_ms = excluded.first_seen_ms, last_seen_ms = excluded.last_seen_ms,
        streak = excluded.streak, strikes = excluded.strikes, quarantined = excluded.quarantined,
        credit = excluded.credit";
/// The writer's statements, prepared on its connection.
pub(super) struct Statements {
    insert: tokio_postgres::Statement,
    running: tokio_postgres::Statement,
    requeued: tokio_postgres::Statement,
    replica: tokio_postgres::Statement,
    tenant_use: tokio_postgres::Statement,
    output: tokio_postgres::Statement,
    finished: tokio_postgres::Statement,
    ran: tokio_postgres::Statement,
    ran_first: tokio_postgres::Statement,
    node: tokio_postgres::Statement,
    specs: tokio_postgres::Statement,
    set_spec: tokio_postgres::Statement,
}

impl Statements {
    pub(super) async fn prepare(c: &deadpool_postgres::Object) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            insert: c.prepare_cached(INSERT_JOBS).await?,
            running: c.prepare_cached(RUNNING).await?,
            requeued: c.prepare_cached(REQUEUED).await?,
            replica: c.prepare_cached(REPLICA).await?,
            tenant_use: c.prepare_cached(ADD_TENANT_USE).await?,
            output: c.prepare_cached(OUTPUT).await?,
            finished: c.prepare_cached(FINISHED).await?,
            ran: c.prepare_cached(RAN).await?,
            ran_first: c.prepare_cached(RAN_FIRST).await?,
            node: c.prepare_cached(UPSERT_NODE).await?,
            specs: c.prepare_cached(SPECS).await?,
            set_spec: c.prepare_cached(SET_SPEC).await?,
        })
    }
}

/// Why a batch did not commit.
pub(super) enum Failure {
    /// This master no longer holds the lease: nothing it writes commits.
    Fenced(MasterError),
    /// The database went away (or refused for now): the batch is tried again.
    Gone(String),
    /// A statement failed: the batch is dropped.
    Failed(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        // Connection exceptions (08), operator intervention (57: a server
        // shutting down), insufficient resources (53), and transaction
        // rollbacks (40: serialization failures, deadlocks) pass.
        let passes = match e.code() {
            Some(code) => ["08", "57", "53", "40"].iter().any(|class| code.code().starts_with(class)),
            None => true,
        };
        if passes { Failure::Gone(e.to_string()) } else { Failure::Failed(e.to_string()) }
    }
}

/// What a committed batch answers, by the index of the change that waits.
pub(super) enum Answer {
    Inserted(Result<Inserted>),
    Pruned(usize),
}

/// A statement's future, as a batch sends it.
type Sent<'a> = BoxFuture<'a, Result<u64, tokio_postgres::Error>>;

/// Runs `statements` pipelined on their connection: each is sent, in
/// order, before any answer is awaited; then the answers are taken in
/// order. The first failure is the batch's.
async fn pipelined(statements: Vec<Sent<'_>>) -> Result<Vec<u64>, tokio_postgres::Error> {
    let mut pending: Vec<MaybeDone<Sent<'_>>> = statements.into_iter().map(maybe_done).collect();
    // A statement is written to the connection when its future is first
    // polled; polling them here, in order, sends them in order.
    {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        for statement in &mut pending {
            let _: Poll<()> = Pin::new(statement).poll(&mut cx);
        }
    }
    let mut rows = Vec::with_capacity(pending.len());
    for mut statement in pending {
        (&mut statement).await;
        match Pin::new(&mut statement).take_output() {
            Some(done) => rows.push(done?),
            None => unreachable!("a statement awaited to its end has an output"),
        }
    }
    Ok(rows)
}

/// Applies `ops` (the batch's from index `first` on) in `tx`, pipelined;
/// notes inserts that found their key taken in `answers`.
pub(super) async fn apply(
    tx: &deadpool_postgres::Transaction<'_>,
    st: &Statements,
    ops: &[Op],
    first: usize,
    answers: &mut Vec<(usize, Answer)>,
) -> Result<(), Failure> {
    if ops.is_empty() {
        return Ok(());
    }
    let tx: &tokio_postgres::Transaction<'_> = tx;
    // Before `sent`, whose statements borrow it.
    let layout = lay_out(ops);
    let mut sent: Vec<Sent<'_>> = Vec::with_capacity(ops.len() + 4);
    let mut drop_input = Vec::new();
    let jobs = &layout.jobs;
    if !jobs.ids.is_empty() {
        sent.push(Box::pin(async move {
            let p: [&(dyn ToSql + Sync); 7] = [
                &jobs.ids,
                &jobs.keys,
                &jobs.tenants,
                &jobs.priorities,
                &jobs.specs,
                &jobs.submitted,
                &jobs.fingerprints,
            ];
            tx.execute(&st.insert, &p).await
        }));
    }
    let mut chunks = layout.chunks.iter().peekable();
    let merge = &layout.merge;
    for (i, op) in ops.iter().enumerate() {
        while let Some((_, group)) = chunks.next_if(|(at, _)| *at == i) {
            sent.push(write_chunks(tx, st, group));
        }
        match op {
            Op::Running { .. } if merge[i] == Merge::Later => {}
            Op::Running { id, node, attempts, at_ms } => {
                let (n, at) = (i32::try_from(*attempts).unwrap_or(i32::MAX), int(*at_ms));
                sent.push(Box::pin(async move {
                    let p: [&(dyn ToSql + Sync); 4] = [id, node, &n, &at];
                    tx.execute(&st.running, &p).await
                }));
            }
            Op::Requeued { id, attempts, end, at_ms } => {
                let (n, at, end) = (i32::try_from(*attempts).unwrap_or(i32::MAX), int(*at_ms), end.as_str());
                sent.push(Box::pin(async move {
                    let p: [&(dyn ToSql + Sync); 4] = [id, &n, &at, &end];
                    tx.execute(&st.requeued, &p).await
                }));
            }
            Op::Replica { id, number, end, digest, verdict, at_ms } => {
                let n = i32::try_from(*number).unwrap_or(i32::MAX);
                let (end, verdict, at) = (end.map(AttemptEnd::as_str), verdict.map(Verdict::as_str), int(*at_ms));
                sent.push(Box::pin(async move {
                    let p: [&(dyn ToSql + Sync); 6] = [id, &n, &end, digest, &verdict, &at];
                    tx.execute(&st.replica, &p).await
                }));
            }
            Op::Finished { id, state, result, drop_input: drop, end, at_ms, .. } => {
                let (state, at, end) = (state.as_str(), int(*at_ms), end.as_str());
                if let Merge::With(start) = merge[i] {
                    let Op::Running { node, attempts, at_ms: started, .. } = &ops[start] else {
                        unreachable!("an end merges with a start")
                    };
                    let (n, started) = (i32::try_from(*attempts).unwrap_or(i32::MAX), int(*started));
                    // A first attempt that starts and ends in one batch has
                    // no other beside it: a replica's start comes after
                    // the first's, and a replica's end before the job's.
                    let ran = if n == 1 { &st.ran_first } else { &st.ran };
                    sent.push(Box::pin(async move {
                        let p: [&(dyn ToSql + Sync); 8] = [id, &state, node, &n, &started, result, &at, &end];
                        tx.execute(ran, &p).await
                    }));
                } else {
                    sent.push(Box::pin(async move {
                        let p: [&(dyn ToSql + Sync); 5] = [id, &state, result, &at, &end];
                        tx.execute(&st.finished, &p).await
                    }));
                }
                if *drop {
                    drop_input.push(id.as_str());
                }
            }
            Op::Nodes(nodes) => {
                for n in nodes {
                    let state = n.state.as_str();
                    let counts = [n.jobs_run, n.fuel_burned, n.lost_jobs, n.first_seen_ms, n.last_seen_ms];
                    let [jobs_run, fuel, lost, first_seen, last_seen] = counts.map(int);
                    let s = n.standing;
                    let streak = i32::try_from(s.streak).unwrap_or(i32::MAX);
                    let strikes = i32::try_from(s.strikes).unwrap_or(i32::MAX);
                    let credit = int(s.credit);
                    sent.push(Box::pin(async move {
                        let p: [&(dyn ToSql + Sync); 12] = [
                            &n.name,
                            &n.identity,
                            &state,
                            &jobs_run,
                            &fuel,
                            &lost,
                            &first_seen,
                            &last_seen,
                            &streak,
                            &strikes,
                            &s.quarantined,
                            &credit,
                        ];
                        tx.execute(&st.node, &p).await
                    }));
                }
            }
            Op::Insert { .. } | Op::Output { .. } | Op::Billed { .. } | Op::Flush { .. } | Op::Prune { .. } => {}
        }
    }
    for (_, group) in chunks {
        sent.push(write_chunks(tx, st, group));
    }
    let used = &layout.used;
    if !used.tenants.is_empty() {
        sent.push(Box::pin(async move {
            let p: [&(dyn ToSql + Sync); 3] = [&used.tenants, &used.runs, &used.fuel];
            tx.execute(&st.tenant_use, &p).await
        }));
    }
    let rows = pipelined(sent).await?;
    // Each new job is recorded, unless the statement recorded fewer: then
    // one read finds, for each, its own row (recorded now, or by this very
    // batch committed before the connection that carried it was lost), or
    // the job that holds its key.
    if !jobs.ids.is_empty() && rows[0] < jobs.ids.len() as u64 {
        let keys: Vec<&str> = jobs.keys.iter().flatten().copied().collect();
        let found = tx.query(INSERTED_BEFORE, &[&jobs.ids, &keys]).await?;
        let mut by_id = std::collections::HashSet::new();
        let mut by_key = std::collections::HashMap::new();
        for row in &found {
            by_id.insert(row.get::<_, &str>(0));
            if let Some(key) = row.get::<_, Option<&str>>(2) {
                by_key.insert(key, (row.get::<_, String>(0), row.get::<_, Option<String>>(1)));
            }
        }
        for (n, &at) in jobs.at.iter().enumerate() {
            let id = jobs.ids[n];
            if by_id.contains(id) {
                continue;
            }
            let answer = match jobs.keys[n].and_then(|key| by_key.get(key)) {
                Some((holder, fingerprint)) => Ok(Inserted::Existing(holder.clone(), fingerprint.clone())),
                None => Err(MasterError::Db(format!("job `{id}` was not recorded"))),
            };
            answers.push((first + at, Answer::Inserted(answer)));
        }
    }
    answers.sort_by_key(|(at, _)| *at);
    drop_job_input(tx, st, &drop_input).await
}

/// The statement that writes a group of output chunks.
fn write_chunks<'s>(tx: &'s tokio_postgres::Transaction<'_>, st: &'s Statements, chunks: &'s Chunks<'_>) -> Sent<'s> {
    Box::pin(async move {
        let p: [&(dyn ToSql + Sync); 4] = [&chunks.ids, &chunks.seqs, &chunks.streams, &chunks.data];
        tx.execute(&st.output, &p).await
    })
}

/// Rewrites the recorded specs of jobs `ids` without their stdin and
/// directories (only those that have some).
async fn drop_job_input(tx: &tokio_postgres::Transaction<'_>, st: &Statements, ids: &[&str]) -> Result<(), Failure> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut lighter = Vec::new();
    for row in tx.query(&st.specs, &[&ids]).await? {
        // A spec that does not decode is left as it is: it is not this write's to lose.
        if let Ok(mut spec) = decode_spec(row.get::<_, &[u8]>(1))
            && (!spec.stdin.is_empty() || !spec.dirs.is_empty())
        {
            spec.stdin = Vec::new();
            spec.dirs = Vec::new();
            lighter.push((row.get::<_, String>(0), encode_spec(&spec)));
        }
    }
    let sent: Vec<Sent<'_>> = lighter
        .iter()
        .map(|(id, spec)| -> Sent<'_> { Box::pin(async move { tx.execute(&st.set_spec, &[id, spec]).await }) })
        .collect();
    pipelined(sent).await?;
    Ok(())
}
