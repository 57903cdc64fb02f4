//! A batch of changes to the PostgreSQL record, as few statements as it
//! can be: the changes of each kind go in one multi-row statement (arrays
//! `UNNEST`ed into rows), and the statements are pipelined on the writer's
//! connection. A job's changes keep their order: the kinds are applied in
//! the order a job goes through them (queued, running, output, replicas,
//! requeued, finished, billed), and a change that would go back in that
//! order (a job requeued and running again in one batch) starts a new run
//! of statements.

use super::Inserted;
use super::change::Op;
use crate::error::{MasterError, Result};
use crate::model::NodeRecord;
use futures::future::{BoxFuture, MaybeDone, maybe_done};
use grid_core::wire::{decode_spec, encode_spec};
use grid_core::{AttemptEnd, OutputStream, Verdict};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// A signed column from an unsigned count, saturating.
pub(super) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn int32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

// The writer's statements: each takes arrays, one element per change.

const INSERT_JOBS: &str = "INSERT INTO jobs (id, idem_key, tenant, priority, spec, state, submitted_ms, fingerprint)
    SELECT id, idem_key, tenant, priority, spec, 'queued', submitted_ms, fingerprint
    FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::INTEGER[], $5::BYTEA[], $6::BIGINT[], $7::TEXT[])
        WITH ORDINALITY AS u(id, idem_key, tenant, priority, spec, submitted_ms, fingerprint, n)
    ORDER BY n
    ON CONFLICT DO NOTHING RETURNING id";
/// After an insert that recorded nothing: its own row (a commit whose
/// answer was lost with the connection, tried again), or the job that
/// holds its key.
const INSERTED_BEFORE: &str = "SELECT id, fingerprint FROM jobs WHERE id = $1 OR idem_key = $2
    ORDER BY (id = $1) DESC LIMIT 1";
const RUNNING: &str = "WITH u AS (
        SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::INTEGER[], $4::BIGINT[]) AS u(id, node, attempts, at)
    ), job AS (
        UPDATE jobs j SET state = 'running', node = u.node, attempts = u.attempts, started_ms = u.at
        FROM u WHERE j.id = u.id
    )
    INSERT INTO attempts (job_id, number, node, started_ms) SELECT id, attempts, node, at FROM u
    ON CONFLICT (job_id, number) DO UPDATE SET node = excluded.node, started_ms = excluded.started_ms,
        ended_ms = NULL, ending = NULL, digest = NULL, verdict = NULL";
const OUTPUT: &str = "INSERT INTO output (job_id, seq, stream, data)
    SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::SMALLINT[], $4::BYTEA[])
    ON CONFLICT (job_id, seq) DO UPDATE SET stream = excluded.stream, data = excluded.data";
const REPLICAS: &str = "UPDATE attempts a SET
        ended_ms = CASE WHEN u.ending IS NULL THEN a.ended_ms ELSE COALESCE(a.ended_ms, u.at) END,
        ending = COALESCE(a.ending, u.ending),
        digest = COALESCE(u.digest, a.digest),
        verdict = COALESCE(u.verdict, a.verdict)
    FROM UNNEST($1::TEXT[], $2::INTEGER[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[])
        AS u(id, number, ending, digest, verdict, at)
    WHERE a.job_id = u.id AND a.number = u.number";
/// Back in the queue: its node is the previous attempt's now, not its
/// own; its output so far is dropped; its attempt ends.
const REQUEUED: &str = "WITH u AS (
        SELECT * FROM UNNEST($1::TEXT[], $2::INTEGER[], $3::BIGINT[], $4::TEXT[]) AS u(id, attempts, at, ending)
    ), job AS (
        UPDATE jobs j SET state = 'queued', node = '', attempts = u.attempts FROM u WHERE j.id = u.id
    ), gone AS (
        DELETE FROM output o USING u WHERE o.job_id = u.id
    )
    UPDATE attempts a SET ended_ms = u.at, ending = u.ending FROM u WHERE a.job_id = u.id AND a.ended_ms IS NULL";
/// The jobs' ends, and their running attempts'.
const FINISHED: &str = "WITH u AS (
        SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BYTEA[], $4::BIGINT[], $5::TEXT[])
            AS u(id, state, result, at, ending)
    ), job AS (
        UPDATE jobs j SET state = u.state, result = u.result, finished_ms = u.at FROM u WHERE j.id = u.id
    )
    UPDATE attempts a SET ended_ms = u.at, ending = u.ending FROM u WHERE a.job_id = u.id AND a.ended_ms IS NULL";
/// More jobs run and fuel burned for the tenants of the jobs given, added
/// up by tenant, saturating.
const ADD_TENANT_USE: &str = "INSERT INTO tenant_use (name, jobs_run, fuel_burned)
    SELECT j.tenant, LEAST(SUM(u.runs), 9223372036854775807)::BIGINT, LEAST(SUM(u.fuel), 9223372036854775807)::BIGINT
    FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) AS u(id, fuel, runs) JOIN jobs j ON j.id = u.id
    GROUP BY j.tenant
    ON CONFLICT (name) DO UPDATE SET
        jobs_run = CASE WHEN tenant_use.jobs_run > 9223372036854775807 - excluded.jobs_run
                   THEN 9223372036854775807 ELSE tenant_use.jobs_run + excluded.jobs_run END,
        fuel_burned = CASE WHEN tenant_use.fuel_burned > 9223372036854775807 - excluded.fuel_burned
                      THEN 9223372036854775807 ELSE tenant_use.fuel_burned + excluded.fuel_burned END";
const UPSERT_NODES: &str = "INSERT INTO nodes
    (name, identity, state, jobs_run, fuel_burned, lost_jobs, first_seen_ms, last_seen_ms,
     streak, strikes, quarantined, credit)
    SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[],
        $7::BIGINT[], $8::BIGINT[], $9::INTEGER[], $10::INTEGER[], $11::BOOLEAN[], $12::BIGINT[])
    ON CONFLICT (name) DO UPDATE SET identity = excluded.identity, state = excluded.state,
        jobs_run = excluded.jobs_run, fuel_burned = excluded.fuel_burned, lost_jobs = excluded.lost_jobs,
        first_seen_ms = excluded.first_seen_ms, last_seen_ms = excluded.last_seen_ms,
        streak = excluded.streak, strikes = excluded.strikes, quarantined = excluded.quarantined,
        credit = excluded.credit";
const SPECS: &str = "SELECT id, spec FROM jobs WHERE id = ANY($1)";
const SET_SPEC: &str = "UPDATE jobs SET spec = $2 WHERE id = $1";

/// The writer's statements, prepared on its connection.
pub(super) struct Statements {
    insert: tokio_postgres::Statement,
    running: tokio_postgres::Statement,
    output: tokio_postgres::Statement,
    replicas: tokio_postgres::Statement,
    requeued: tokio_postgres::Statement,
    finished: tokio_postgres::Statement,
    tenant_use: tokio_postgres::Statement,
    nodes: tokio_postgres::Statement,
    specs: tokio_postgres::Statement,
    set_spec: tokio_postgres::Statement,
}

impl Statements {
    pub(super) async fn prepare(c: &deadpool_postgres::Object) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            insert: c.prepare_cached(INSERT_JOBS).await?,
            running: c.prepare_cached(RUNNING).await?,
            output: c.prepare_cached(OUTPUT).await?,
            replicas: c.prepare_cached(REPLICAS).await?,
            requeued: c.prepare_cached(REQUEUED).await?,
            finished: c.prepare_cached(FINISHED).await?,
            tenant_use: c.prepare_cached(ADD_TENANT_USE).await?,
            nodes: c.prepare_cached(UPSERT_NODES).await?,
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

/// A statement's future, as a batch sends it: the rows it returned.
type Sent<'a> = BoxFuture<'a, Result<Vec<Row>, tokio_postgres::Error>>;

/// Runs `statements` pipelined on their connection: each is sent, in
/// order, before any answer is awaited; then the answers are taken in
/// order. The first failure is the batch's.
async fn pipelined(statements: Vec<Sent<'_>>) -> Result<Vec<Vec<Row>>, tokio_postgres::Error> {
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

/// Sends `sql` with `params` as one of a pipeline's statements.
fn send<'a, const N: usize>(
    tx: &'a tokio_postgres::Transaction<'_>,
    sql: &'a tokio_postgres::Statement,
    params: [&'a (dyn ToSql + Sync); N],
) -> Sent<'a> {
    Box::pin(async move { tx.query(sql, &params).await })
}

/// Applies `ops` (the batch's from index `first` on) in `tx`: in runs of
/// multi-row statements, each run as long as the jobs' order allows. Notes
/// inserts that found their key taken in `answers`.
pub(super) async fn apply(
    tx: &deadpool_postgres::Transaction<'_>,
    st: &Statements,
    ops: &[Op],
    first: usize,
    answers: &mut Vec<(usize, Answer)>,
) -> Result<(), Failure> {
    let tx: &tokio_postgres::Transaction<'_> = tx;
    let mut start = 0;
    while start < ops.len() {
        let mut rows = Rows::default();
        let mut end = start;
        while end < ops.len() && rows.admit(first + end, &ops[end]) {
            end += 1;
        }
        rows.apply(tx, st, answers).await?;
        start = end;
    }
    answers.sort_by_key(|(at, _)| *at);
    Ok(())
}

/// Where a job's changes in a run stand: the kind of the last (in the
/// order a job goes through them) and its last output chunk's number.
struct Mark {
    rank: u8,
    seq: Option<u64>,
}

/// The changes of one run, as the columns of its statements: each tuple
/// holds one statement's arrays, `$1` first.
#[derive(Default)]
#[allow(clippy::type_complexity)]
struct Rows<'a> {
    marks: HashMap<&'a str, Mark>,
    inserts: Vec<(usize, &'a str, Option<&'a str>)>,
    insert: (Vec<&'a str>, Vec<Option<&'a str>>, Vec<&'a str>, Vec<i32>, Vec<&'a [u8]>, Vec<i64>, Vec<Option<&'a str>>),
    running: (Vec<&'a str>, Vec<&'a str>, Vec<i32>, Vec<i64>),
    output: (Vec<&'a str>, Vec<i64>, Vec<i16>, Vec<&'a [u8]>),
    replicas:
        (Vec<&'a str>, Vec<i32>, Vec<Option<&'static str>>, Vec<Option<&'a str>>, Vec<Option<&'static str>>, Vec<i64>),
    requeued: (Vec<&'a str>, Vec<i32>, Vec<i64>, Vec<&'static str>),
    finished: (Vec<&'a str>, Vec<&'static str>, Vec<&'a [u8]>, Vec<i64>, Vec<&'static str>),
    tenant_use: (Vec<&'a str>, Vec<i64>, Vec<i64>),
    drop_input: Vec<&'a str>,
    /// Each node's newest record (a later one replaces it).
    nodes: HashMap<&'a str, &'a NodeRecord>,
}

impl<'a> Rows<'a> {
    /// Takes change `op` (number `at` of the batch) into this run, unless
    /// it would come before a change of its job the run already holds.
    fn admit(&mut self, at: usize, op: &'a Op) -> bool {
        let (id, rank, seq) = match op {
            Op::Insert { id, .. } => (id, 0, None),
            Op::Running { id, .. } => (id, 1, None),
            Op::Output { id, seq, .. } => (id, 2, Some(*seq)),
            Op::Replica { id, .. } => (id, 3, None),
            Op::Requeued { id, .. } => (id, 4, None),
            Op::Finished { id, .. } => (id, 5, None),
            Op::Billed { id, .. } => (id, 6, None),
            Op::Nodes(nodes) => {
                for n in nodes {
                    self.nodes.insert(&n.name, n);
                }
                return true;
            }
            Op::Flush { .. } | Op::Prune { .. } => return true,
        };
        if let Some(mark) = self.marks.get(id.as_str()) {
            // Output chunks of a job go in together, in order; any other
            // kind once per job and run.
            let repeated = mark.rank == rank && (seq.is_none() || mark.seq >= seq);
            if mark.rank > rank || repeated {
                return false;
            }
        }
        self.marks.insert(id.as_str(), Mark { rank, seq });
        self.push(at, op);
        true
    }

    fn push(&mut self, at: usize, op: &'a Op) {
        match op {
            Op::Insert { id, meta, spec, submitted_ms, fingerprint, .. } => {
                self.inserts.push((at, id, meta.key.as_deref()));
                let c = &mut self.insert;
                c.0.push(id);
                c.1.push(meta.key.as_deref());
                c.2.push(&meta.tenant);
                c.3.push(meta.priority);
                c.4.push(spec);
                c.5.push(int(*submitted_ms));
                c.6.push(fingerprint.as_deref());
            }
            Op::Running { id, node, attempts, at_ms } => {
                let c = &mut self.running;
                c.0.push(id);
                c.1.push(node);
                c.2.push(int32(*attempts));
                c.3.push(int(*at_ms));
            }
            Op::Output { id, seq, stream, data } => {
                let c = &mut self.output;
                c.0.push(id);
                c.1.push(int(*seq));
                c.2.push(if *stream == OutputStream::Stderr { 2 } else { 1 });
                c.3.push(data);
            }
            Op::Replica { id, number, end, digest, verdict, at_ms } => {
                let c = &mut self.replicas;
                c.0.push(id);
                c.1.push(int32(*number));
                c.2.push(end.map(AttemptEnd::as_str));
                c.3.push(digest.as_deref());
                c.4.push(verdict.map(Verdict::as_str));
                c.5.push(int(*at_ms));
            }
            Op::Requeued { id, attempts, end, at_ms } => {
                let c = &mut self.requeued;
                c.0.push(id);
                c.1.push(int32(*attempts));
                c.2.push(int(*at_ms));
                c.3.push(end.as_str());
            }
            Op::Finished { id, state, result, drop_input, end, at_ms, ran } => {
                let c = &mut self.finished;
                c.0.push(id);
                c.1.push(state.as_str());
                c.2.push(result);
                c.3.push(int(*at_ms));
                c.4.push(end.as_str());
                if let Some(fuel) = ran {
                    self.tenant_use.0.push(id);
                    self.tenant_use.1.push(int(*fuel));
                    self.tenant_use.2.push(1);
                }
                if *drop_input {
                    self.drop_input.push(id);
                }
            }
            Op::Billed { id, runs, fuel } => {
                self.tenant_use.0.push(id);
                self.tenant_use.1.push(int(*fuel));
                self.tenant_use.2.push(int(*runs));
            }
            Op::Nodes(_) | Op::Flush { .. } | Op::Prune { .. } => {}
        }
    }

    /// Applies this run's changes in `tx`, pipelined, in the order a job
    /// goes through them.
    async fn apply(
        self,
        tx: &tokio_postgres::Transaction<'_>,
        st: &Statements,
        answers: &mut Vec<(usize, Answer)>,
    ) -> Result<(), Failure> {
        let nodes = NodeColumns::of(self.nodes.values().copied());
        let mut sent: Vec<Sent<'_>> = Vec::with_capacity(8);
        let c = &self.insert;
        if !c.0.is_empty() {
            sent.push(send(tx, &st.insert, [&c.0, &c.1, &c.2, &c.3, &c.4, &c.5, &c.6]));
        }
        let c = &self.running;
        if !c.0.is_empty() {
            sent.push(send(tx, &st.running, [&c.0, &c.1, &c.2, &c.3]));
        }
        let c = &self.output;
        if !c.0.is_empty() {
            sent.push(send(tx, &st.output, [&c.0, &c.1, &c.2, &c.3]));
        }
        let c = &self.replicas;
        if !c.0.is_empty() {
            sent.push(send(tx, &st.replicas, [&c.0, &c.1, &c.2, &c.3, &c.4, &c.5]));
        }
        let c = &self.requeued;
        if !c.0.is_empty() {
            sent.push(send(tx, &st.requeued, [&c.0, &c.1, &c.2, &c.3]));
        }
        let c = &self.finished;
        if !c.0.is_empty() {
            sent.push(send(tx, &st.finished, [&c.0, &c.1, &c.2, &c.3, &c.4]));
        }
        let c = &self.tenant_use;
        if !c.0.is_empty() {
            sent.push(send(tx, &st.tenant_use, [&c.0, &c.1, &c.2]));
        }
        if !nodes.0.is_empty() {
            let c = &nodes;
            sent.push(send(tx, &st.nodes, [&c.0, &c.1, &c.2, &c.3, &c.4, &c.5, &c.6, &c.7, &c.8, &c.9, &c.10, &c.11]));
        }
        let done = pipelined(sent).await?;
        if !self.inserts.is_empty() {
            let recorded: std::collections::HashSet<&str> = done[0].iter().map(|r| r.get::<_, &str>(0)).collect();
            for &(at, id, key) in &self.inserts {
                if recorded.contains(id) {
                    continue;
                }
                // Nothing recorded: the key is another job's (or this very
                // insert committed before the connection that carried it
                // was lost).
                let holder = tx.query_opt(INSERTED_BEFORE, &[&id, &key]).await?;
                let answer = match holder {
                    Some(row) if row.get::<_, &str>(0) == id => Ok(Inserted::New),
                    Some(row) => Ok(Inserted::Existing(row.get(0), row.get(1))),
                    None => Err(MasterError::Db(format!("job `{id}` was not recorded"))),
                };
                answers.push((at, Answer::Inserted(answer)));
            }
        }
        drop_job_input(tx, st, &self.drop_input).await
    }
}

/// The columns of nodes' records.
#[allow(clippy::type_complexity)]
struct NodeColumns<'a>(
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<&'static str>,
    Vec<i64>,
    Vec<i64>,
    Vec<i64>,
    Vec<i64>,
    Vec<i64>,
    Vec<i32>,
    Vec<i32>,
    Vec<bool>,
    Vec<i64>,
);

impl<'a> NodeColumns<'a> {
    fn of(nodes: impl Iterator<Item = &'a NodeRecord>) -> Self {
        let mut c =
            NodeColumns(vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for n in nodes {
            c.0.push(&n.name);
            c.1.push(&n.identity);
            c.2.push(n.state.as_str());
            c.3.push(int(n.jobs_run));
            c.4.push(int(n.fuel_burned));
            c.5.push(int(n.lost_jobs));
            c.6.push(int(n.first_seen_ms));
            c.7.push(int(n.last_seen_ms));
            c.8.push(int32(n.standing.streak));
            c.9.push(int32(n.standing.strikes));
            c.10.push(n.standing.quarantined);
            c.11.push(int(n.standing.credit));
        }
        c
    }
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
    let sent: Vec<Sent<'_>> = lighter.iter().map(|(id, spec)| send(tx, &st.set_spec, [id, spec])).collect();
    pipelined(sent).await?;
    Ok(())
}
