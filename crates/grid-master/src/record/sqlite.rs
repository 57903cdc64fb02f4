//! The master's durable record: jobs, their results and bounded output, in
//! SQLite (WAL) under the data dir. One writer thread applies changes in
//! batches, one transaction per batch; a submission is acknowledged only
//! once its transaction has committed.

use crate::error::{MasterError, Result};
use crate::state::{JobId, Stream, Submission};
use grid_core::wire::{decode_report, decode_spec, encode_report, encode_spec};
use grid_core::{JobReport, JobSpec};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// Output kept per job in the record; the rest still streams live.
pub const OUTPUT_KEPT: usize = 4 << 20;

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
    result BLOB
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS output (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    stream INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, seq)
);
";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A job as the record holds it.
#[derive(Debug, Clone)]
pub struct StoredJob {
    /// The job's id.
    pub id: JobId,
    /// The submission's idempotency key, if it had one.
    pub key: Option<String>,
    /// Whose job it is.
    pub tenant: String,
    /// Higher runs first.
    pub priority: i32,
    /// What to run.
    pub spec: JobSpec,
    /// `queued`, `running` or a final state (see [`final_state`]).
    pub state: String,
    /// The node of the last attempt.
    pub node: String,
    /// Attempts started.
    pub attempts: u32,
    /// When it was submitted.
    pub submitted_ms: u64,
    /// How it ended.
    pub result: Option<JobReport>,
}

/// The state name a finished job is recorded with.
pub fn final_state(report: &JobReport) -> &'static str {
    match report.outcome {
        grid_core::Outcome::Exited(0) => "succeeded",
        grid_core::Outcome::Cancelled => "cancelled",
        _ => "failed",
    }
}

/// A change to the record.
enum Op {
    Insert { id: JobId, meta: Submission, spec: Vec<u8>, submitted_ms: u64, done: oneshot::Sender<Result<()>> },
    Running { id: JobId, node: String, attempts: u32 },
    Requeued { id: JobId, attempts: u32 },
    Output { id: JobId, seq: u64, stream: Stream, data: Vec<u8> },
    Finished { id: JobId, spec: Vec<u8>, state: &'static str, result: Vec<u8> },
}

/// The record: a writer thread and a connection for reads.
pub struct Db {
    writer: Mutex<mpsc::Sender<Op>>,
    reader: Mutex<Connection>,
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> MasterError + '_ {
    move |e| MasterError::Db(format!("`{}`: {e}", path.display()))
}

fn open_conn(path: &Path, fsync: bool) -> Result<Connection> {
    let conn = Connection::open(path).map_err(db_err(path))?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(db_err(path))?;
    // FULL: every commit reaches the disk before it returns. NORMAL (in WAL
    // mode): a commit reaches the OS, so it survives the master's crash but
    // not a power cut or a kernel crash.
    conn.pragma_update(None, "synchronous", if fsync { "FULL" } else { "NORMAL" }).map_err(db_err(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db_err(path))?;
    Ok(conn)
}

impl Db {
    /// Opens (creating it if needed) the record at `path`; with `fsync`,
    /// each commit waits until it is on the disk.
    pub fn open(path: &Path, fsync: bool) -> Result<Self> {
        let writer = open_conn(path, fsync)?;
        writer.execute_batch(SCHEMA).map_err(db_err(path))?;
        // Records made before tenants and priorities existed.
        for column in ["tenant TEXT NOT NULL DEFAULT ''", "priority INTEGER NOT NULL DEFAULT 0"] {
            let _ = writer.execute(&format!("ALTER TABLE jobs ADD COLUMN {column}"), []);
        }
        let reader = open_conn(path, fsync)?;
        let (tx, rx) = mpsc::channel();
        let path: PathBuf = path.to_owned();
        std::thread::Builder::new()
            .name("grid-db".into())
            .spawn(move || write_loop(writer, rx, path))
            .map_err(|e| MasterError::Db(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { writer: Mutex::new(tx), reader: Mutex::new(reader) })
    }

    fn send(&self, op: Op) {
        let tx = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if tx.send(op).is_err() {
            tracing::error!("the record's writer is gone; a change was not recorded");
        }
    }

    /// Records a new job; resolves once it is committed.
    pub async fn insert(&self, id: &str, meta: &Submission, spec: &JobSpec) -> Result<()> {
        let (done, committed) = oneshot::channel();
        let op =
            Op::Insert { id: id.to_owned(), meta: meta.clone(), spec: encode_spec(spec), submitted_ms: now_ms(), done };
        self.send(op);
        committed.await.map_err(|_| MasterError::Db("the record's writer stopped".into()))?
    }

    /// Records that a job went to `node`, as attempt number `attempts`.
    pub fn running(&self, id: &str, node: &str, attempts: u32) {
        self.send(Op::Running { id: id.to_owned(), node: node.to_owned(), attempts });
    }

    /// Records that a job is back in the queue after `attempts` attempts;
    /// its output so far is dropped.
    pub fn requeued(&self, id: &str, attempts: u32) {
        self.send(Op::Requeued { id: id.to_owned(), attempts });
    }

    /// Records a chunk of output (the caller keeps it within [`OUTPUT_KEPT`]).
    pub fn output(&self, id: &str, seq: u64, stream: Stream, data: Vec<u8>) {
        self.send(Op::Output { id: id.to_owned(), seq, stream, data });
    }

    /// Records how a job ended; `spec` is what is kept of it from now on.
    pub fn finished(&self, id: &str, spec: &JobSpec, report: &JobReport) {
        let op = Op::Finished {
            id: id.to_owned(),
            spec: encode_spec(spec),
            state: final_state(report),
            result: encode_report(report),
        };
        self.send(op);
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|e| MasterError::Db(e.to_string()))
    }

    /// Jobs not finished yet, oldest first.
    pub fn unfinished(&self) -> Result<Vec<StoredJob>> {
        self.query("WHERE state IN ('queued', 'running') ORDER BY seq ASC", params![])
    }

    /// One job.
    pub fn job(&self, id: &str) -> Result<Option<StoredJob>> {
        Ok(self.query("WHERE id = ?1", params![id])?.into_iter().next())
    }

    /// The job submitted with idempotency key `key`.
    pub fn job_with_key(&self, key: &str) -> Result<Option<JobId>> {
        self.read(|c| c.query_row("SELECT id FROM jobs WHERE idem_key = ?1", params![key], |r| r.get(0)).optional())
    }

    /// The newest jobs, optionally only those in `state`.
    pub fn list(&self, state: Option<&str>, limit: usize) -> Result<Vec<StoredJob>> {
        match state {
            Some(s) => self.query("WHERE state = ?1 ORDER BY seq DESC LIMIT ?2", params![s, limit as i64]),
            None => self.query("ORDER BY seq DESC LIMIT ?1", params![limit as i64]),
        }
    }

    /// A job's recorded output, in order.
    pub fn output_of(&self, id: &str) -> Result<Vec<(Stream, Vec<u8>)>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT stream, data FROM output WHERE job_id = ?1 ORDER BY seq")?;
            let rows = stmt.query_map(params![id], |r| {
                let stream: i64 = r.get(0)?;
                Ok((if stream == 2 { Stream::Stderr } else { Stream::Stdout }, r.get::<_, Vec<u8>>(1)?))
            })?;
            rows.collect()
        })
    }

    fn query(&self, tail: &str, args: impl rusqlite::Params) -> Result<Vec<StoredJob>> {
        let sql = format!(
            "SELECT id, idem_key, spec, state, node, attempts, submitted_ms, result, tenant, priority FROM jobs {tail}"
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
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        raw.into_iter()
            .map(|(id, key, spec, state, node, attempts, submitted_ms, result, tenant, priority)| {
                let bad = |e: grid_core::wire::WireError| MasterError::Db(format!("job `{id}`: {e}"));
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
                })
            })
            .collect()
    }
}

const INSERT_JOB: &str = "INSERT INTO jobs (id, idem_key, tenant, priority, spec, state, submitted_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)";

/// Applies changes in batches: everything waiting goes in one transaction.
fn write_loop(mut conn: Connection, rx: mpsc::Receiver<Op>, path: PathBuf) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(op) = rx.try_recv() {
            batch.push(op);
            if batch.len() >= 1024 {
                break;
            }
        }
        let mut acks = Vec::new();
        // Refusals are answered only after the commit, so that whoever was
        // refused (a duplicate idempotency key) can read the winner.
        let mut refusals = Vec::new();
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            for op in batch {
                match op {
                    Op::Insert { id, meta, spec, submitted_ms, done } => {
                        let r = tx.prepare_cached(INSERT_JOB)?.execute(params![
                            id,
                            meta.key,
                            meta.tenant,
                            meta.priority,
                            spec,
                            submitted_ms as i64
                        ]);
                        match r {
                            Ok(_) => acks.push(done),
                            Err(e) => refusals.push((done, e.to_string())),
                        }
                    }
                    Op::Running { id, node, attempts } => {
                        tx.prepare_cached("UPDATE jobs SET state = 'running', node = ?2, attempts = ?3 WHERE id = ?1")?
                            .execute(params![id, node, attempts as i64])?;
                    }
                    Op::Requeued { id, attempts } => {
                        tx.prepare_cached("UPDATE jobs SET state = 'queued', attempts = ?2 WHERE id = ?1")?
                            .execute(params![id, attempts as i64])?;
                        tx.prepare_cached("DELETE FROM output WHERE job_id = ?1")?.execute(params![id])?;
                    }
                    Op::Output { id, seq, stream, data } => {
                        let stream = if stream == Stream::Stderr { 2 } else { 1 };
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO output (job_id, seq, stream, data) VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![id, seq as i64, stream, data])?;
                    }
                    Op::Finished { id, spec, state, result } => {
                        tx.prepare_cached(
                            "UPDATE jobs SET state = ?2, spec = ?3, result = ?4, finished_ms = ?5 WHERE id = ?1",
                        )?
                        .execute(params![id, state, spec, result, now_ms() as i64])?;
                    }
                }
            }
            tx.commit()
        })();
        for (done, e) in refusals {
            let _ = done.send(Err(MasterError::Db(e)));
        }
        match result {
            Ok(()) => acks.into_iter().for_each(|done| drop(done.send(Ok(())))),
            Err(e) => {
                tracing::error!(db = %path.display(), error = %e, "failed to record changes");
                for done in acks {
                    let _ = done.send(Err(MasterError::Db(e.to_string())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_core::{Limits, ModuleHash, Outcome};

    fn spec() -> JobSpec {
        JobSpec {
            module: ModuleHash::of(b"m"),
            args: vec!["a".into()],
            env: vec![],
            stdin: b"in".to_vec(),
            dirs: vec![],
            limits: Limits::default(),
        }
    }

    fn keyed(key: &str) -> Submission {
        Submission { key: Some(key.into()), tenant: "t".into(), priority: 3 }
    }

    #[tokio::test]
    async fn a_job_survives_reopening_with_its_result_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.db");
        {
            let db = Db::open(&path, true).unwrap();
            db.insert("j1", &keyed("key-1"), &spec()).await.unwrap();
            db.insert("j2", &Submission::default(), &spec()).await.unwrap();
            assert!(db.insert("j3", &keyed("key-1"), &spec()).await.is_err(), "a key is used once");
            db.running("j1", "node-a", 1);
            db.output("j1", 0, Stream::Stdout, b"hello ".to_vec());
            db.output("j1", 1, Stream::Stderr, b"oops".to_vec());
            let report = JobReport::before_start(Outcome::Exited(0), "node-a", &Limits::default());
            db.finished("j1", &spec(), &report);
            db.running("j2", "node-a", 1);
            // A barrier: the next insert commits after everything above.
            db.insert("j4", &Submission::default(), &spec()).await.unwrap();
        }
        let db = Db::open(&path, true).unwrap();
        let j1 = db.job("j1").unwrap().unwrap();
        assert_eq!((j1.state.as_str(), j1.node.as_str(), j1.attempts), ("succeeded", "node-a", 1));
        assert_eq!((j1.tenant.as_str(), j1.priority), ("t", 3));
        assert_eq!(j1.result.unwrap().outcome, Outcome::Exited(0));
        assert_eq!(
            db.output_of("j1").unwrap(),
            vec![(Stream::Stdout, b"hello ".to_vec()), (Stream::Stderr, b"oops".to_vec())]
        );
        assert_eq!(db.job_with_key("key-1").unwrap().as_deref(), Some("j1"));
        let unfinished: Vec<_> = db.unfinished().unwrap().into_iter().map(|j| (j.id, j.state)).collect();
        assert_eq!(unfinished, vec![("j2".into(), "running".into()), ("j4".into(), "queued".into())]);
        assert_eq!(db.list(Some("succeeded"), 10).unwrap().len(), 1);
        assert_eq!(db.list(None, 2).unwrap().iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), vec!["j4", "j2"]);
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
