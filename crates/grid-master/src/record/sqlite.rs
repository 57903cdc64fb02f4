//! The job record in SQLite (WAL) under the data dir. One writer thread
//! applies changes in batches, one transaction per batch; an insert is
//! acknowledged only once its transaction has committed.

use super::change::Op;
use super::{Backlog, Filter, Inserted, JobStore, NewJob, OutputChunk, OutputExtent, Page, SCANNED, Unfinished};
use crate::error::{MasterError, Result};
use crate::model::{JobId, NodeRecord, Standing, StoredJob, TenantUse, now_ms};
use futures::future::BoxFuture;
use grid_core::wire::{decode_report, decode_spec, encode_report, encode_spec};
use grid_core::{Attempt, AttemptEnd, JobReport, JobState, NodeState, OutputStream, Verdict};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    idem_key TEXT UNIQUE,
    tenant TEXT NOT NULL DEFAULT '',
    priority INTEGER NOT NULL DEFAULT 0,
    spec BLOB NOT NULL,
    state TEXT NOT NULL,
    node TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    submitted_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    result BLOB,
    started_ms INTEGER,
    fingerprint TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS attempts (
    job_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    node TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    ending TEXT,
    digest TEXT,
    verdict TEXT,
    PRIMARY KEY (job_id, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS output (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    stream INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS nodes (
    name TEXT PRIMARY KEY,
    identity TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    jobs_run INTEGER NOT NULL DEFAULT 0,
    fuel_burned INTEGER NOT NULL DEFAULT 0,
    lost_jobs INTEGER NOT NULL DEFAULT 0,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    streak INTEGER NOT NULL DEFAULT 0,
    strikes INTEGER NOT NULL DEFAULT 0,
    quarantined INTEGER NOT NULL DEFAULT 0,
    credit INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS nodes_last_seen ON nodes(last_seen_ms);
CREATE TABLE IF NOT EXISTS tenant_use (
    name TEXT PRIMARY KEY,
    jobs_run INTEGER NOT NULL DEFAULT 0,
    fuel_burned INTEGER NOT NULL DEFAULT 0
);
";

/// The record in SQLite: a writer thread and a connection for reads.
pub struct SqliteStore {
    writer: Mutex<mpsc::Sender<Op>>,
    reader: Mutex<Connection>,
    /// Output handed to the writer and not yet committed.
    backlog: Arc<Backlog>,
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> MasterError + '_ {
    move |e| MasterError::Db(format!("`{}`: {e}", path.display()))
}

/// Adds `column` (its definition) to `table`, unless the table has it.
fn add_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<()> {
    match conn.execute(&format!("ALTER TABLE {table} ADD COLUMN {column}"), []) {
        Err(e) if !e.to_string().contains("duplicate column name") => Err(e),
        _ => Ok(()),
    }
}

/// How long an opening of the record waits for another process's lock.
const OPEN_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

fn open_conn(path: &Path, fsync: bool) -> Result<Connection> {
    let conn = Connection::open(path).map_err(db_err(path))?;
    // First of all: another process's master (an embedded `run` beside a
    // reading `status`) may hold the record for a moment, and even setting
    // the journal mode must wait for it rather than fail at once.
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db_err(path))?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(db_err(path))?;
    // FULL: every commit reaches the disk before it returns. NORMAL (in WAL
    // mode): a commit reaches the OS, so it survives the master's crash but
    // not a power cut or a kernel crash.
    conn.pragma_update(None, "synchronous", if fsync { "FULL" } else { "NORMAL" }).map_err(db_err(path))?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating it if needed) the record at `path`; with `fsync`,
    /// each commit waits until it is on the disk.
    pub fn open(path: &Path, fsync: bool) -> Result<Self> {
        // Another process closing the record (its last connection
        // checkpoints and drops the WAL under an exclusive lock) can refuse
        // an opening at once, past any busy timeout: try again a while.
        let deadline = std::time::Instant::now() + OPEN_WITHIN;
        loop {
            match Self::open_once(path, fsync) {
                Err(MasterError::Db(e)) if e.contains("database is locked") && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                opened => return opened,
            }
        }
    }

    fn open_once(path: &Path, fsync: bool) -> Result<Self> {
        let writer = open_conn(path, fsync)?;
        writer.execute_batch(SCHEMA).map_err(db_err(path))?;
        // Records made before tenants and priorities, start times and
        // fingerprints existed.
        for column in [
            "tenant TEXT NOT NULL DEFAULT ''",
            "priority INTEGER NOT NULL DEFAULT 0",
            "started_ms INTEGER",
            "fingerprint TEXT",
        ] {
            add_column(&writer, "jobs", column).map_err(db_err(path))?;
        }
        // Records made before nodes had a standing.
        for column in [
            "streak INTEGER NOT NULL DEFAULT 0",
            "strikes INTEGER NOT NULL DEFAULT 0",
            "quarantined INTEGER NOT NULL DEFAULT 0",
            "credit INTEGER NOT NULL DEFAULT 0",
        ] {
            add_column(&writer, "nodes", column).map_err(db_err(path))?;
        }
        // Records made before replicas were verified.
        for column in ["digest TEXT", "verdict TEXT"] {
            match writer.execute(&format!("ALTER TABLE attempts ADD COLUMN {column}"), []) {
                Err(e) if !e.to_string().contains("duplicate column name") => return Err(db_err(path)(e)),
                _ => {}
            }
        }
        let reader = open_conn(path, fsync)?;
        let (tx, rx) = mpsc::channel();
        let backlog = Arc::new(Backlog::default());
        let path: PathBuf = path.to_owned();
        std::thread::Builder::new()
            .name("grid-db".into())
            .spawn({
                let backlog = backlog.clone();
                move || write_loop(writer, rx, path, &backlog)
            })
            .map_err(|e| MasterError::Db(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { writer: Mutex::new(tx), reader: Mutex::new(reader), backlog })
    }

    fn send(&self, op: Op) {
        let tx = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if tx.send(op).is_err() {
            tracing::error!("the record's writer is gone; a change was not recorded");
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|e| MasterError::Db(e.to_string()))
    }

    fn query(&self, tail: &str, args: impl rusqlite::Params) -> Result<Vec<StoredJob>> {
        let sql = format!(
            "SELECT id, idem_key, spec, state, node, attempts, submitted_ms, result, tenant, priority,
                started_ms, finished_ms, fingerprint FROM jobs {tail}"
        );
        let raw = self.read(|c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(args, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, Option<Vec<u8>>>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, i64>(9)?,
                    (r.get::<_, Option<i64>>(10)?, r.get::<_, Option<i64>>(11)?, r.get::<_, Option<String>>(12)?),
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        raw.into_iter()
            .map(
                |(
                    id,
                    key,
                    spec,
                    state,
                    node,
                    attempts,
                    submitted_ms,
                    result,
                    tenant,
                    priority,
                    (started, finished, fp),
                )| {
                    let bad = |e: grid_core::wire::WireError| MasterError::Db(format!("job `{id}`: {e}"));
                    let state = state.parse::<JobState>().map_err(|e| MasterError::Db(format!("job `{id}`: {e}")))?;
                    Ok(StoredJob {
                        spec: decode_spec(&spec).map_err(bad)?,
                        result: result.map(|r| decode_report(&r)).transpose().map_err(bad)?,
                        id,
                        key,
                        tenant,
                        priority: priority as i32,
                        state,
                        node,
                        attempts: attempts as u32,
                        submitted_ms: submitted_ms as u64,
                        started_ms: started.map(|ms| ms as u64),
                        finished_ms: finished.map(|ms| ms as u64),
                        fingerprint: fp,
                    })
                },
            )
            .collect()
    }
}

/// What a listing reads of each job, in the order `list`'s rows decode it.
const LISTED: &str = "SELECT seq, id, idem_key, spec, state, node, attempts, submitted_ms, result, tenant,
    priority, started_ms, finished_ms FROM jobs";

/// A listed row, decoded: its position and the job, or why it does not decode.
type ListedRow = fn(&rusqlite::Row<'_>) -> rusqlite::Result<(i64, Result<StoredJob>)>;

impl SqliteStore {
    /// A page of a listing filtered by tenant, node or module: of the (at
    /// most [`SCANNED`]) jobs older than `before`, newest first, those
    /// `filter` admits, at most `limit`. Tenant, node and state are
    /// matched by SQLite, the module on the decoded spec; no index is kept
    /// for them, so the scan is what bounds the page's cost.
    fn scan(&self, filter: &Filter, before: i64, limit: usize, listed: ListedRow) -> Result<Page> {
        let sql = format!(
            "{LISTED} WHERE seq IN (SELECT seq FROM jobs WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2)
             AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR tenant = ?4) AND (?5 IS NULL OR node = ?5)
             ORDER BY seq DESC"
        );
        let window = SCANNED as i64;
        let state = filter.state.map(JobState::as_str);
        let ((scanned, lowest), rows) = self.read(|c| {
            // One snapshot for both reads: a job recorded between them
            // would shift the window, and the page's next position would
            // skip a row.
            let c = c.unchecked_transaction()?;
            let bounds: (i64, Option<i64>) = c
                .prepare_cached(
                    "SELECT COUNT(*), MIN(seq) FROM (SELECT seq FROM jobs WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2)",
                )?
                .query_row(params![before, window], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let params = params![before, window, state, filter.tenant.as_deref(), filter.node.as_deref()];
            let rows: Vec<(i64, Result<StoredJob>)> =
                c.prepare_cached(&sql)?.query_map(params, listed)?.collect::<rusqlite::Result<_>>()?;
            Ok((bounds, rows))
        })?;
        let mut jobs = Vec::new();
        for (seq, job) in rows {
            let job = job?;
            if filter.module_prefix.as_ref().is_some_and(|p| !job.spec.module.as_str().starts_with(p.as_str())) {
                continue;
            }
            jobs.push(job);
            if jobs.len() == limit {
                return Ok(Page { jobs, next: Some(seq as u64) });
            }
        }
        // The window was full: older jobs may match too.
        let next = if scanned >= window { lowest.map(|s| s as u64) } else { None };
        Ok(Page { jobs, next })
    }
}

/// A oneshot answer from the writer, as a future.
fn answer<T: Send + 'static>(rx: oneshot::Receiver<Result<T>>) -> BoxFuture<'static, Result<T>> {
    Box::pin(async move { rx.await.map_err(|_| MasterError::Db("the record's writer stopped".into()))? })
}

impl JobStore for SqliteStore {
    fn insert(&self, job: NewJob<'_>) -> BoxFuture<'static, Result<Inserted>> {
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
        let op = Op::Finished {
            id: id.to_owned(),
            state: JobState::finished(report),
            result: encode_report(report),
            drop_input,
            end,
            at_ms: now_ms(),
            ran: ran.map(|tenant| (tenant.to_owned(), report.fuel_used)),
        };
        self.send(op);
    }

    fn job(&self, id: &str) -> Result<Option<StoredJob>> {
        Ok(self.query("WHERE id = ?1", params![id])?.into_iter().next())
    }

    fn job_with_key(&self, key: &str) -> Result<Option<(JobId, Option<String>)>> {
        self.read(|c| {
            c.prepare_cached("SELECT id, fingerprint FROM jobs WHERE idem_key = ?1")?
                .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
    }

    fn attempts(&self, id: &str) -> Result<Vec<Attempt>> {
        let rows = self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT number, node, started_ms, ended_ms, ending, digest, verdict FROM attempts
                 WHERE job_id = ?1 ORDER BY number",
            )?;
            let rows = stmt.query_map(params![id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(number, node, started, ended, ending, digest, verdict)| {
                let end = ending.map(|e| e.parse::<AttemptEnd>()).transpose();
                Ok(Attempt {
                    digest,
                    verdict: verdict.and_then(|v| v.parse::<Verdict>().ok()),
                    number: number as u32,
                    node,
                    started_ms: started as u64,
                    ended_ms: ended.map(|ms| ms as u64),
                    end: end.map_err(|e| MasterError::Db(format!("job `{id}`: {e}")))?,
                })
            })
            .collect()
    }

    fn position(&self, id: &str) -> Result<Option<u64>> {
        let seq: Option<i64> = self.read(|c| {
            c.prepare_cached("SELECT seq FROM jobs WHERE id = ?1")?.query_row(params![id], |r| r.get(0)).optional()
        })?;
        Ok(seq.map(|s| s as u64))
    }

    fn list(&self, filter: &Filter, before: Option<u64>, limit: usize) -> Result<Page> {
        /// A row of the listing, decoded (and cut) as it is read, so that a
        /// page never holds more than one job's full spec at once.
        fn listed(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Result<StoredJob>)> {
            let id: String = r.get(1)?;
            let (key, state, node): (Option<String>, String, String) = (r.get(2)?, r.get(4)?, r.get(5)?);
            let (attempts, submitted_ms, tenant, priority): (i64, i64, String, i64) =
                (r.get(6)?, r.get(7)?, r.get(9)?, r.get(10)?);
            let (started_ms, finished_ms): (Option<i64>, Option<i64>) = (r.get(11)?, r.get(12)?);
            let (spec, result) = (r.get_ref(3)?.as_blob()?, r.get_ref(8)?.as_blob_or_null()?);
            let bad = |e: &dyn std::fmt::Display| MasterError::Db(format!("job `{id}`: {e}"));
            let job = (|| -> Result<StoredJob> {
                Ok(crate::listing::stored(StoredJob {
                    spec: decode_spec(spec).map_err(|e| bad(&e))?,
                    result: result.map(decode_report).transpose().map_err(|e| bad(&e))?,
                    state: state.parse::<JobState>().map_err(|e| bad(&e))?,
                    id: id.clone(),
                    key,
                    tenant,
                    priority: priority as i32,
                    node,
                    attempts: attempts as u32,
                    submitted_ms: submitted_ms as u64,
                    started_ms: started_ms.map(|ms| ms as u64),
                    finished_ms: finished_ms.map(|ms| ms as u64),
                    fingerprint: None,
                }))
            })();
            Ok((r.get(0)?, job))
        }
        const COLUMNS: &str = LISTED;
        let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        if filter.scans() {
            return self.scan(filter, before, limit, listed);
        }
        // One more than asked for: whether there is a next page.
        let take = limit as i64 + 1;
        let rows = self.read(|c| match filter.state {
            Some(s) => {
                let sql = format!("{COLUMNS} WHERE state = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3");
                c.prepare_cached(&sql)?.query_map(params![s.as_str(), before, take], listed)?.collect()
            }
            None => {
                let sql = format!("{COLUMNS} WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2");
                c.prepare_cached(&sql)?.query_map(params![before, take], listed)?.collect()
            }
        });
        let mut rows: Vec<(i64, Result<StoredJob>)> = rows?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more { rows.last().map(|(seq, _)| *seq as u64) } else { None };
        let jobs = rows.into_iter().map(|(_, job)| job).collect::<Result<_>>()?;
        Ok(Page { jobs, next })
    }

    fn output_page(&self, id: &str, from_seq: u64, max_bytes: usize) -> Result<Vec<OutputChunk>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT seq, stream, data FROM output WHERE job_id = ?1 AND seq >= ?2 ORDER BY seq")?;
            let mut rows = stmt.query(params![id, from_seq.min(i64::MAX as u64) as i64])?;
            let mut page = Vec::new();
            let mut bytes = 0;
            while let Some(r) = rows.next()? {
                // The size first, so that a chunk that does not fit is not read.
                let len = r.get_ref(2)?.as_blob()?.len();
                if !page.is_empty() && bytes + len > max_bytes {
                    break;
                }
                bytes += len;
                let stream = if r.get::<_, i64>(1)? == 2 { OutputStream::Stderr } else { OutputStream::Stdout };
                page.push((r.get::<_, i64>(0)? as u64, stream, r.get::<_, Vec<u8>>(2)?));
            }
            Ok(page)
        })
    }

    fn output_extent(&self, id: &str) -> Result<OutputExtent> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT COALESCE(MAX(seq) + 1, 0), COUNT(*), COALESCE(SUM(length(data)), 0) FROM output WHERE job_id = ?1",
            )?
            .query_row(params![id], |r| {
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
                Ok(OutputExtent { next_seq: n(0)?, chunks: n(1)?, bytes: n(2)? })
            })
        })
    }

    fn unfinished(&self) -> Result<Vec<Unfinished>> {
        // Each row's spec is made light as it is read: the inputs of all the
        // unfinished jobs are never in memory at once.
        let sql = "SELECT id, idem_key, spec, state, node, attempts, submitted_ms, tenant, priority, started_ms,
            fingerprint FROM jobs WHERE state IN ('queued', 'running') ORDER BY seq ASC";
        let rows = self.read(|c| {
            let mut stmt = c.prepare(sql)?;
            let rows = stmt.query_map([], |r| {
                let id: String = r.get(0)?;
                let bad = |e: String| format!("job `{id}`: {e}");
                let spec = decode_spec(r.get_ref(2)?.as_blob()?).map_err(|e| bad(e.to_string()));
                let state = r.get::<_, String>(3)?.parse::<JobState>().map_err(|e| bad(e.to_string()));
                let (key, node, attempts, submitted_ms) =
                    (r.get(1)?, r.get(4)?, r.get::<_, i64>(5)?, r.get::<_, i64>(6)?);
                let (tenant, priority) = (r.get(7)?, r.get::<_, i64>(8)?);
                let (started_ms, fingerprint) = (r.get::<_, Option<i64>>(9)?, r.get(10)?);
                Ok(spec.and_then(|spec| {
                    Ok(Unfinished::new(StoredJob {
                        key,
                        tenant,
                        priority: priority as i32,
                        state: state?,
                        node,
                        attempts: attempts as u32,
                        submitted_ms: submitted_ms as u64,
                        started_ms: started_ms.map(|ms| ms as u64),
                        finished_ms: None,
                        fingerprint,
                        result: None,
                        spec,
                        id,
                    }))
                }))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(|r| r.map_err(MasterError::Db)).collect()
    }

    fn newest_id(&self) -> Result<Option<JobId>> {
        self.read(|c| c.query_row("SELECT id FROM jobs ORDER BY seq DESC LIMIT 1", [], |r| r.get(0)).optional())
    }

    fn prune(&self, finished_before_ms: u64) -> BoxFuture<'static, Result<usize>> {
        let (done, committed) = oneshot::channel();
        self.send(Op::Prune { finished_before_ms, done });
        answer(committed)
    }

    fn nodes_seen(&self, nodes: Vec<NodeRecord>) {
        self.send(Op::Nodes(nodes));
    }

    fn tenant_use(&self) -> Result<Vec<TenantUse>> {
        let sql = "SELECT name, jobs_run, fuel_burned FROM tenant_use ORDER BY name";
        self.read(|c| {
            c.prepare_cached(sql)?
                .query_map([], |r| {
                    Ok(TenantUse { name: r.get(0)?, jobs_run: counter(r, 1)?, fuel_burned: counter(r, 2)? })
                })?
                .collect()
        })
    }

    fn node(&self, name: &str) -> Result<Option<NodeRecord>> {
        let sql = format!("{NODE_COLUMNS} WHERE name = ?1");
        let row = self.read(|c| c.prepare_cached(&sql)?.query_row(params![name], node_row).optional())?;
        row.transpose()
    }

    fn nodes(&self, limit: usize) -> Result<Vec<NodeRecord>> {
        let sql = format!("{NODE_COLUMNS} ORDER BY last_seen_ms DESC, name LIMIT ?1");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.read(|c| c.prepare_cached(&sql)?.query_map(params![limit], node_row)?.collect());
        let rows: Vec<Result<NodeRecord>> = rows?;
        rows.into_iter().collect()
    }
}

const NODE_COLUMNS: &str = "SELECT name, identity, state, jobs_run, fuel_burned, lost_jobs, first_seen_ms,
    last_seen_ms, streak, strikes, quarantined, credit FROM nodes";

/// A node's history from a row of [`NODE_COLUMNS`].
fn node_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<NodeRecord>> {
    let name: String = r.get(0)?;
    let state = r.get::<_, String>(2)?.parse::<NodeState>();
    let count = |i| counter(r, i);
    let (jobs_run, fuel_burned, lost_jobs, first_seen_ms, last_seen_ms) =
        (count(3)?, count(4)?, count(5)?, count(6)?, count(7)?);
    let identity = r.get(1)?;
    let small = |i| count(i).map(|v| u32::try_from(v).unwrap_or(u32::MAX));
    let standing = Standing { streak: small(8)?, strikes: small(9)?, quarantined: count(10)? != 0, credit: count(11)? };
    Ok(state.map_err(|e| MasterError::Db(format!("node `{name}`: {e}"))).map(|state| NodeRecord {
        name,
        identity,
        state,
        jobs_run,
        fuel_burned,
        lost_jobs,
        first_seen_ms,
        last_seen_ms,
        standing,
    }))
}

const UPSERT_NODE: &str = "INSERT OR REPLACE INTO nodes
    (name, identity, state, jobs_run, fuel_burned, lost_jobs, first_seen_ms, last_seen_ms,
     streak, strikes, quarantined, credit)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// `?3` more jobs run, and `?2` more fuel burned, for tenant `?1`.
const ADD_TENANT_USE: &str = "INSERT INTO tenant_use (name, jobs_run, fuel_burned) VALUES (?1, ?3, ?2)
    ON CONFLICT (name) DO UPDATE SET
        jobs_run = CASE WHEN jobs_run > 9223372036854775807 - excluded.jobs_run THEN 9223372036854775807
                   ELSE jobs_run + excluded.jobs_run END,
        fuel_burned = CASE WHEN fuel_burned > 9223372036854775807 - excluded.fuel_burned THEN 9223372036854775807
                      ELSE fuel_burned + excluded.fuel_burned END";

/// A counter from column `i` of a row: a sum that ever passed into a real
/// (a record written before sums saturated) reads as the most it can be,
/// and anything else that is not a count as 0, so that one odd row never
/// hides the rest.
fn counter(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    use rusqlite::types::ValueRef;
    Ok(match r.get_ref(i)? {
        ValueRef::Integer(v) => v.max(0) as u64,
        ValueRef::Real(v) if v >= i64::MAX as f64 => i64::MAX as u64,
        ValueRef::Real(v) => v.max(0.0) as u64,
        _ => 0,
    })
}

const INSERT_JOB: &str = "INSERT INTO jobs (id, idem_key, tenant, priority, spec, state, submitted_ms, fingerprint)
    VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7)";

/// Who waits for a batch to commit.
enum Ack {
    Inserted(oneshot::Sender<Result<Inserted>>),
    Flushed(oneshot::Sender<Result<()>>),
    Pruned(oneshot::Sender<Result<usize>>, usize),
}

impl Ack {
    /// Answers with the batch's outcome: `failed` is why it did not commit.
    fn send(self, failed: Option<&str>) {
        let err = || MasterError::Db(failed.unwrap_or_default().to_owned());
        match self {
            Ack::Inserted(done) => drop(done.send(if failed.is_some() { Err(err()) } else { Ok(Inserted::New) })),
            Ack::Flushed(done) => drop(done.send(if failed.is_some() { Err(err()) } else { Ok(()) })),
            Ack::Pruned(done, n) => drop(done.send(if failed.is_some() { Err(err()) } else { Ok(n) })),
        }
    }
}

/// Rewrites job `id`'s recorded spec without its stdin and directories.
fn drop_job_input(tx: &rusqlite::Transaction<'_>, id: &str) -> rusqlite::Result<()> {
    let spec: Option<Vec<u8>> =
        tx.prepare_cached("SELECT spec FROM jobs WHERE id = ?1")?.query_row(params![id], |r| r.get(0)).optional()?;
    // A spec that does not decode is left as it is: it is not this write's to lose.
    if let Some(Ok(mut spec)) = spec.map(|s| decode_spec(&s)) {
        spec.stdin = Vec::new();
        spec.dirs = Vec::new();
        tx.prepare_cached("UPDATE jobs SET spec = ?2 WHERE id = ?1")?.execute(params![id, encode_spec(&spec)])?;
    }
    Ok(())
}

/// Ends job `id`'s running attempt, if it has one, as `end` at `at_ms`.
fn end_attempt(tx: &rusqlite::Transaction<'_>, id: &str, end: AttemptEnd, at_ms: u64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE attempts SET ended_ms = ?2, ending = ?3 WHERE job_id = ?1 AND ended_ms IS NULL")?
        .execute(params![id, at_ms as i64, end.as_str()])?;
    Ok(())
}

/// The most jobs one prune forgets, so that it never holds the writer for
/// long; the next prune takes the rest.
const PRUNED_AT_ONCE: usize = 10_000;

/// Forgets jobs that finished before `before` (ms), oldest first; returns
/// how many. Walks the jobs in the order they came and stops at the first
/// submitted after `before` (it cannot have finished before it), so no
/// index on the finish time is kept up on every job's end.
fn prune(tx: &rusqlite::Transaction<'_>, before: i64) -> rusqlite::Result<usize> {
    let old: Vec<String> = {
        let mut stmt = tx.prepare_cached("SELECT id, submitted_ms, finished_ms FROM jobs ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        let mut old = Vec::new();
        while let Some(row) = rows.next()? {
            if row.get::<_, i64>(1)? >= before || old.len() >= PRUNED_AT_ONCE {
                break;
            }
            if row.get::<_, Option<i64>>(2)?.is_some_and(|finished| finished < before) {
                old.push(row.get(0)?);
            }
        }
        old
    };
    for id in &old {
        tx.prepare_cached("DELETE FROM output WHERE job_id = ?1")?.execute(params![id])?;
        tx.prepare_cached("DELETE FROM attempts WHERE job_id = ?1")?.execute(params![id])?;
        tx.prepare_cached("DELETE FROM jobs WHERE id = ?1")?.execute(params![id])?;
    }
    Ok(old.len())
}

/// Applies changes in batches: everything waiting goes in one transaction.
fn write_loop(mut conn: Connection, rx: mpsc::Receiver<Op>, path: PathBuf, backlog: &Backlog) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(op) = rx.try_recv() {
            batch.push(op);
            if batch.len() >= 1024 {
                break;
            }
        }
        let output: usize = batch.iter().map(Op::output_bytes).sum();
        let mut acks = Vec::new();
        // Refusals are answered only after the commit, so that whoever was
        // refused (a duplicate idempotency key) can read the winner.
        let mut refusals = Vec::new();
        let result = (|| -> rusqlite::Result<()> {
            // Immediate: a batch that reads before it writes (a prune) must
            // not fail halfway on another process's commit (`grid-cli prune`
            // beside an embedded `run`); it waits for the busy timeout.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for op in batch {
                match op {
                    Op::Insert { id, meta, spec, submitted_ms, fingerprint, done } => {
                        let r = tx.prepare_cached(INSERT_JOB)?.execute(params![
                            id,
                            meta.key,
                            meta.tenant,
                            meta.priority,
                            spec,
                            submitted_ms as i64,
                            fingerprint
                        ]);
                        match r {
                            Ok(_) => acks.push(Ack::Inserted(done)),
                            Err(e) => {
                                // A key recorded before: answer with its job, once committed.
                                let existing = match &meta.key {
                                    Some(key) => tx
                                        .prepare_cached("SELECT id, fingerprint FROM jobs WHERE idem_key = ?1")?
                                        .query_row(params![key], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))
                                        .optional()?,
                                    None => None,
                                };
                                match existing {
                                    Some((id, fp)) => refusals.push((done, Ok(Inserted::Existing(id, fp)))),
                                    None => refusals.push((done, Err(MasterError::Db(e.to_string())))),
                                }
                            }
                        }
                    }
                    Op::Running { id, node, attempts, at_ms } => {
                        tx.prepare_cached(
                            "UPDATE jobs SET state = 'running', node = ?2, attempts = ?3, started_ms = ?4 WHERE id = ?1",
                        )?
                        .execute(params![id, node, attempts as i64, at_ms as i64])?;
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO attempts (job_id, number, node, started_ms) VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![id, attempts as i64, node, at_ms as i64])?;
                    }
                    Op::Requeued { id, attempts, end, at_ms } => {
                        // Its node is the previous attempt's now, not its own.
                        tx.prepare_cached("UPDATE jobs SET state = 'queued', node = '', attempts = ?2 WHERE id = ?1")?
                            .execute(params![id, attempts as i64])?;
                        tx.prepare_cached("DELETE FROM output WHERE job_id = ?1")?.execute(params![id])?;
                        end_attempt(&tx, &id, end, at_ms)?;
                    }
                    Op::Replica { id, number, end, digest, verdict, at_ms } => {
                        tx.prepare_cached(
                            "UPDATE attempts SET
                                ended_ms = CASE WHEN ?3 IS NULL THEN ended_ms ELSE COALESCE(ended_ms, ?6) END,
                                ending = COALESCE(ending, ?3),
                                digest = COALESCE(?4, digest),
                                verdict = COALESCE(?5, verdict)
                             WHERE job_id = ?1 AND number = ?2",
                        )?
                        .execute(params![
                            id,
                            number as i64,
                            end.map(AttemptEnd::as_str),
                            digest,
                            verdict.map(Verdict::as_str),
                            at_ms as i64
                        ])?;
                    }
                    Op::Billed { tenant, runs, fuel } => {
                        tx.prepare_cached(ADD_TENANT_USE)?.execute(params![
                            tenant,
                            i64::try_from(fuel).unwrap_or(i64::MAX),
                            i64::try_from(runs).unwrap_or(i64::MAX)
                        ])?;
                    }
                    Op::Output { id, seq, stream, data } => {
                        let stream = if stream == OutputStream::Stderr { 2 } else { 1 };
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO output (job_id, seq, stream, data) VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![id, seq as i64, stream, data])?;
                    }
                    Op::Finished { id, state, result, drop_input, end, at_ms, ran } => {
                        tx.prepare_cached("UPDATE jobs SET state = ?2, result = ?3, finished_ms = ?4 WHERE id = ?1")?
                            .execute(params![id, state.as_str(), result, at_ms as i64])?;
                        if let Some((tenant, fuel)) = ran {
                            tx.prepare_cached(ADD_TENANT_USE)?.execute(params![
                                tenant,
                                i64::try_from(fuel).unwrap_or(i64::MAX),
                                1
                            ])?;
                        }
                        end_attempt(&tx, &id, end, at_ms)?;
                        if drop_input {
                            drop_job_input(&tx, &id)?;
                        }
                    }
                    Op::Flush { done } => acks.push(Ack::Flushed(done)),
                    Op::Prune { finished_before_ms, done } => {
                        acks.push(Ack::Pruned(done, prune(&tx, finished_before_ms as i64)?));
                    }
                    Op::Nodes(nodes) => {
                        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                        for n in nodes {
                            tx.prepare_cached(UPSERT_NODE)?.execute(params![
                                n.name,
                                n.identity,
                                n.state.as_str(),
                                int(n.jobs_run),
                                int(n.fuel_burned),
                                int(n.lost_jobs),
                                int(n.first_seen_ms),
                                int(n.last_seen_ms),
                                n.standing.streak,
                                n.standing.strikes,
                                n.standing.quarantined,
                                int(n.standing.credit)
                            ])?;
                        }
                    }
                }
            }
            tx.commit()
        })();
        for (done, answer) in refusals {
            let _ = done.send(answer);
        }
        let failed = result.err().map(|e| {
            tracing::error!(db = %path.display(), error = %e, "failed to record changes");
            e.to_string()
        });
        for ack in acks {
            ack.send(failed.as_deref());
        }
        backlog.written(output);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::contract::spec;
    use grid_core::Submission;
    use grid_core::{Limits, Outcome};

    job_store_contract!(|dir: &Path| SqliteStore::open(&dir.join("grid.db"), false).unwrap());

    #[tokio::test]
    async fn a_job_survives_reopening_with_its_result_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.db");
        let keyed = Submission { key: Some("key-1".into()), tenant: "t".into(), priority: 3 };
        {
            let db = SqliteStore::open(&path, true).unwrap();
            let new = NewJob { id: "j1", submission: &keyed, spec: &spec(), submitted_ms: 1, fingerprint: Some("f1") };
            assert_eq!(db.insert(new).await.unwrap(), Inserted::New);
            db.running("j1", "node-a", 1);
            db.output("j1", 0, OutputStream::Stdout, b"hello ".to_vec());
            let report = JobReport::before_start(Outcome::Exited(0), "node-a", &Limits::default());
            db.finished("j1", &report, true, AttemptEnd::Finished, Some("t"));
            db.flush().await.unwrap();
        }
        let db = SqliteStore::open(&path, true).unwrap();
        let used = crate::model::TenantUse { name: "t".into(), jobs_run: 1, fuel_burned: 0 };
        assert_eq!(db.tenant_use().unwrap(), [used], "a tenant's count was lost on reopening");
        let j1 = db.job("j1").unwrap().unwrap();
        assert_eq!((j1.state, j1.node.as_str(), j1.attempts), (JobState::Succeeded, "node-a", 1));
        assert_eq!((j1.tenant.as_str(), j1.priority), ("t", 3));
        assert_eq!(db.output_page("j1", 0, 1 << 20).unwrap(), vec![(0, OutputStream::Stdout, b"hello ".to_vec())]);
        assert_eq!(db.job_with_key("key-1").unwrap(), Some(("j1".into(), Some("f1".into()))));
        let attempts = db.attempts("j1").unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!((attempts[0].node.as_str(), attempts[0].end), ("node-a", Some(AttemptEnd::Finished)));
    }

    #[tokio::test]
    async fn a_tenant_s_fuel_saturates_and_a_sum_once_gone_real_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.db");
        let sub = Submission { key: None, tenant: "t".into(), priority: 0 };
        {
            let db = SqliteStore::open(&path, false).unwrap();
            for id in ["j1", "j2"] {
                let new = NewJob { id, submission: &sub, spec: &spec(), submitted_ms: 1, fingerprint: None };
                db.insert(new).await.unwrap();
                db.running(id, "node-a", 1);
                let mut report = JobReport::before_start(Outcome::Exited(0), "node-a", &Limits::default());
                report.fuel_used = u64::MAX;
                db.finished(id, &report, true, AttemptEnd::Finished, Some("t"));
            }
            db.flush().await.unwrap();
            let used = crate::model::TenantUse { name: "t".into(), jobs_run: 2, fuel_burned: i64::MAX as u64 };
            assert_eq!(db.tenant_use().unwrap(), [used]);
        }
        let conn = rusqlite::Connection::open(&path).unwrap();
        let kept: String =
            conn.query_row("SELECT typeof(fuel_burned) FROM tenant_use WHERE name = 't'", [], |r| r.get(0)).unwrap();
        assert_eq!(kept, "integer", "the sum passed into a real");
        // A sum an earlier master let pass into a real.
        conn.execute("INSERT INTO tenant_use (name, jobs_run, fuel_burned) VALUES ('u', 1, 1.8e19)", []).unwrap();
        drop(conn);
        let db = SqliteStore::open(&path, false).unwrap();
        let read: Vec<_> = db.tenant_use().unwrap().into_iter().map(|u| (u.name, u.fuel_burned)).collect();
        assert_eq!(read, [("t".to_owned(), i64::MAX as u64), ("u".to_owned(), i64::MAX as u64)]);
    }

    #[tokio::test]
    async fn a_record_made_before_attempts_and_fingerprints_opens_and_gains_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE jobs (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, idem_key TEXT UNIQUE,
                    tenant TEXT NOT NULL DEFAULT '', priority INTEGER NOT NULL DEFAULT 0, spec BLOB NOT NULL,
                    state TEXT NOT NULL, node TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
                    submitted_ms INTEGER NOT NULL, finished_ms INTEGER, result BLOB);",
            )
            .unwrap();
            old.execute(
                "INSERT INTO jobs (id, idem_key, spec, state, submitted_ms) VALUES ('old', 'k-old', ?1, 'queued', 1)",
                params![encode_spec(&spec())],
            )
            .unwrap();
        }
        let db = SqliteStore::open(&path, false).unwrap();
        let old = db.job("old").unwrap().unwrap();
        assert_eq!((old.started_ms, old.fingerprint), (None, None));
        // A key recorded without a fingerprint is taken as the same request.
        assert_eq!(db.job_with_key("k-old").unwrap(), Some(("old".into(), None)));
        db.running("old", "node-a", 1);
        db.flush().await.unwrap();
        assert_eq!(db.attempts("old").unwrap()[0].node, "node-a");
        assert!(db.job("old").unwrap().unwrap().started_ms.is_some());
    }

    #[tokio::test]
    async fn a_record_made_before_node_standings_opens_and_keeps_them_from_then_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE nodes (
                    name TEXT PRIMARY KEY, identity TEXT NOT NULL DEFAULT '', state TEXT NOT NULL,
                    jobs_run INTEGER NOT NULL DEFAULT 0, fuel_burned INTEGER NOT NULL DEFAULT 0,
                    lost_jobs INTEGER NOT NULL DEFAULT 0, first_seen_ms INTEGER NOT NULL,
                    last_seen_ms INTEGER NOT NULL);
                INSERT INTO nodes (name, identity, state, jobs_run, first_seen_ms, last_seen_ms)
                    VALUES ('old', 'id-old', 'gone', 4, 1, 2);",
            )
            .unwrap();
        }
        let db = SqliteStore::open(&path, false).unwrap();
        let mut old = db.node("old").unwrap().unwrap();
        assert_eq!((old.jobs_run, old.standing), (4, Standing::default()));
        old.standing = Standing { streak: 3, strikes: 1, quarantined: false, credit: 99 };
        db.nodes_seen(vec![old.clone()]);
        db.flush().await.unwrap();
        drop(db);
        let db = SqliteStore::open(&path, false).unwrap();
        assert_eq!(db.node("old").unwrap(), Some(old));
    }

    #[test]
    fn fsync_decides_whether_a_commit_waits_for_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        // SQLite's `synchronous` levels: 2 is FULL, 1 is NORMAL.
        for (fsync, level) in [(true, 2), (false, 1)] {
            let conn = open_conn(&dir.path().join("grid.db"), fsync).unwrap();
            let got: i64 = conn.pragma_query_value(None, "synchronous", |row| row.get(0)).unwrap();
            assert_eq!(got, level, "fsync {fsync}");
            let mode: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
            assert_eq!(mode, "wal");
        }
    }
}
