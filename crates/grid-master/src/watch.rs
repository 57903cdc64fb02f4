//! A job's events as watchers see them. Memory holds the events that are
//! not output (assigned, retry, finished) and a bounded window of the
//! current attempt's most recent output; the record holds all of it. A
//! watcher behind the window reads the record in bounded pages, then goes
//! on from memory. A watcher holds the log, not the master's state, so
//! following a job never takes the state's lock.
//!
//! Output chunks are numbered (`seq`) once per job, across attempts. Each
//! other event is stamped with the seq of the first chunk after it, so a
//! watcher that knows the next chunk it wants knows which events come
//! first, and a chunk missing from the record (a void attempt's) is skipped.

use crate::error::Result;
use crate::model::{JobEvent, JobId};
use crate::record::JobStore;
use grid_core::{JobReport, OutputStream};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// Output bytes a running job keeps in memory: its most recent ones.
pub const WINDOW: usize = 256 << 10;
/// The most output bytes one batch to a watcher carries (a single larger
/// chunk goes alone).
pub const PAGE: usize = 1 << 20;
/// The largest chunk of output kept as one: larger ones are split.
pub const CHUNK: usize = 64 << 10;

#[derive(Default)]
struct Log {
    /// Events other than output, each with the seq of the first chunk after it.
    marks: Vec<(u64, JobEvent)>,
    /// The current attempt's most recent chunks, by seq.
    window: VecDeque<(u64, OutputStream, Vec<u8>)>,
    window_bytes: usize,
    /// The seq of the next chunk.
    next_seq: u64,
    /// Whether the report of the end wrote back directories, which the
    /// record holds (the `Finished` event here has none).
    dirs_in_record: bool,
    /// Nothing more comes: the log was made from the record.
    closed: bool,
}

impl Log {
    /// The seq of the oldest chunk memory holds.
    fn window_start(&self) -> u64 {
        self.window.front().map_or(self.next_seq, |c| c.0)
    }
}

/// The events of one job, in order.
pub struct EventLog {
    log: Mutex<Log>,
    /// Bumped with every event, so watchers wake.
    changed: watch::Sender<u64>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self { log: Mutex::default(), changed: watch::channel(0).0 }
    }
}

impl EventLog {
    /// The log of a job that has ended, as the record or a summary knows
    /// it: the node of its last attempt (if any), every chunk the record
    /// holds, and its end (if known; the report without its directories).
    pub fn ended(node: &str, report: Option<Arc<JobReport>>, dirs_in_record: bool) -> Self {
        let mut marks = Vec::with_capacity(2);
        if !node.is_empty() {
            marks.push((0, JobEvent::Assigned(node.to_owned())));
        }
        marks.extend(report.map(|r| (u64::MAX, JobEvent::Finished(r))));
        let log = Log { marks, next_seq: u64::MAX, dirs_in_record, closed: true, ..Log::default() };
        Self { log: Mutex::new(log), changed: watch::channel(0).0 }
    }

    /// The log of a job taken back while it runs on `node`, the record
    /// holding its output before chunk `next_seq`.
    pub fn resumed(node: &str, next_seq: u64) -> Self {
        let log = Log { marks: vec![(0, JobEvent::Assigned(node.to_owned()))], next_seq, ..Log::default() };
        Self { log: Mutex::new(log), changed: watch::channel(0).0 }
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Appends an event other than output and wakes the watchers. A retry
    /// voids the window: that attempt's output is no longer the job's.
    pub fn push(&self, event: JobEvent) {
        {
            let mut log = self.lock();
            if matches!(event, JobEvent::Retry(_)) {
                log.window.clear();
                log.window_bytes = 0;
            }
            let at = log.next_seq;
            log.marks.push((at, event));
        }
        self.wake();
    }

    /// Appends a chunk of output to the window, dropping the oldest chunks
    /// past [`WINDOW`], and wakes the watchers. Returns the chunk's seq.
    pub fn output(&self, stream: OutputStream, data: Vec<u8>) -> u64 {
        let seq = {
            let mut log = self.lock();
            let seq = log.next_seq;
            log.next_seq += 1;
            log.window_bytes += data.len();
            log.window.push_back((seq, stream, data));
            while log.window_bytes > WINDOW && log.window.len() > 1 {
                let (_, _, old) = log.window.pop_front().expect("more than one chunk");
                log.window_bytes -= old.len();
            }
            seq
        };
        self.wake();
        seq
    }

    /// The job ended with `report` (without written-back directories;
    /// `dirs_in_record` says whether the record has some).
    pub fn finish(&self, report: Arc<JobReport>, dirs_in_record: bool) {
        self.lock().dirs_in_record = dirs_in_record;
        self.push(JobEvent::Finished(report));
    }

    /// A watcher from the first event, reading what memory no longer holds
    /// from job `id`'s record in `store`.
    pub fn watch(self: &Arc<Self>, id: &str, store: Arc<dyn JobStore>) -> JobWatch {
        JobWatch { log: self.clone(), id: id.to_owned(), store, mark: 0, seq: 0, changed: self.changed.subscribe() }
    }

    /// The output bytes memory holds.
    pub fn window_bytes(&self) -> usize {
        self.lock().window_bytes
    }
}

/// A watcher's handle on a job's events.
pub struct JobWatch {
    log: Arc<EventLog>,
    id: JobId,
    store: Arc<dyn JobStore>,
    /// The next event other than output to return.
    mark: usize,
    /// The seq of the next chunk to return.
    seq: u64,
    changed: watch::Receiver<u64>,
}

/// What a watcher does next.
enum Step {
    /// Returns these events.
    Batch(Vec<JobEvent>),
    /// Reads chunks from `seq` on from the record: those before `limit`
    /// come before the next event; none below `skip_to` is in memory.
    Record { limit: u64, skip_to: u64 },
    /// Waits for more.
    Wait,
    /// The end has been returned.
    Done,
}

impl JobWatch {
    /// The events not yet returned that memory holds, without waiting;
    /// output only the record holds is skipped.
    #[cfg(test)]
    pub fn now(&mut self) -> Vec<JobEvent> {
        let mut all = Vec::new();
        loop {
            match self.step() {
                Step::Batch(batch) => all.extend(batch),
                Step::Record { skip_to, .. } => self.seq = skip_to,
                Step::Wait | Step::Done => return all,
            }
        }
    }

    /// The next events, waiting for at least one. `None` after the job's
    /// `Finished` event has been returned. A batch carries at most
    /// [`PAGE`] bytes of output.
    pub async fn next(&mut self) -> Result<Option<Vec<JobEvent>>> {
        self.advance(true).await
    }

    /// The next events there are now, without waiting for more; `None`
    /// once the watcher has caught up.
    pub async fn next_now(&mut self) -> Result<Option<Vec<JobEvent>>> {
        self.advance(false).await
    }

    async fn advance(&mut self, wait: bool) -> Result<Option<Vec<JobEvent>>> {
        loop {
            self.changed.borrow_and_update();
            match self.step() {
                Step::Batch(batch) => return self.with_dirs(batch).await.map(Some),
                Step::Record { limit, skip_to } => {
                    let batch = self.read_record(limit, skip_to).await?;
                    if !batch.is_empty() {
                        return Ok(Some(batch));
                    }
                }
                Step::Done => return Ok(None),
                Step::Wait if !wait => return Ok(None),
                Step::Wait => {
                    if self.changed.changed().await.is_err() {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// What memory can give now, under the log's lock.
    fn step(&mut self) -> Step {
        let log = self.log.lock();
        let mut batch = Vec::new();
        let mut bytes = 0;
        loop {
            while let Some((at, event)) = log.marks.get(self.mark)
                && *at <= self.seq
            {
                batch.push(event.clone());
                self.mark += 1;
            }
            let limit = log.marks.get(self.mark).map_or(log.next_seq, |m| m.0);
            if self.seq >= limit || bytes >= PAGE {
                break;
            }
            let start = log.window_start();
            if self.seq < start {
                if batch.is_empty() {
                    return Step::Record { limit, skip_to: start.min(limit) };
                }
                break;
            }
            let from = log.window.partition_point(|c| c.0 < self.seq);
            let mut took = false;
            for (seq, stream, data) in log.window.range(from..) {
                if *seq >= limit || (took && bytes + data.len() > PAGE) {
                    break;
                }
                batch.push(JobEvent::Output(*stream, data.clone()));
                bytes += data.len();
                self.seq = seq + 1;
                took = true;
            }
            if !took {
                // Nothing memory holds comes before the next event.
                self.seq = limit;
            }
        }
        if !batch.is_empty() {
            Step::Batch(batch)
        } else if log.closed && self.mark == log.marks.len()
            || self.mark > 0 && matches!(log.marks.get(self.mark - 1), Some((_, JobEvent::Finished(_))))
        {
            Step::Done
        } else {
            Step::Wait
        }
    }

    /// One page of chunks from the record, from `self.seq` and before
    /// `limit`; with none there, skips to `skip_to` (a void attempt's
    /// chunks are gone from the record).
    async fn read_record(&mut self, limit: u64, skip_to: u64) -> Result<Vec<JobEvent>> {
        // Writes are write-behind: what memory dropped may not be there yet.
        self.store.flush().await?;
        let (store, id, from) = (self.store.clone(), self.id.clone(), self.seq);
        let page = blocking(move || store.output_page(&id, from, PAGE)).await?;
        let mut batch = Vec::with_capacity(page.len());
        for (seq, stream, data) in page {
            if seq >= limit {
                break;
            }
            batch.push(JobEvent::Output(stream, data));
            self.seq = seq + 1;
        }
        if batch.is_empty() {
            self.seq = self.seq.max(skip_to);
        }
        Ok(batch)
    }

    /// `batch` with the directories the job's end wrote back, read from
    /// the record if it has some.
    async fn with_dirs(&self, mut batch: Vec<JobEvent>) -> Result<Vec<JobEvent>> {
        let Some(JobEvent::Finished(report)) = batch.last_mut() else { return Ok(batch) };
        if !self.log.lock().dirs_in_record {
            return Ok(batch);
        }
        self.store.flush().await?;
        let (store, id) = (self.store.clone(), self.id.clone());
        if let Some(result) = blocking(move || store.job(&id)).await?.and_then(|j| j.result) {
            *report = Arc::new(JobReport { dirs: result.dirs, ..(**report).clone() });
        }
        Ok(batch)
    }
}

/// Runs a blocking read of the record off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let failed = |e: tokio::task::JoinError| crate::MasterError::Internal(format!("record read failed: {e}"));
    tokio::task::spawn_blocking(f).await.map_err(failed)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::output;
    use crate::record::{JobStore, MemoryStore};
    use grid_core::{Limits, Outcome};

    fn store() -> Arc<dyn JobStore> {
        Arc::new(MemoryStore::new())
    }

    #[tokio::test]
    async fn a_watcher_sees_every_event_once_and_stops_after_the_end() {
        let log = Arc::new(EventLog::default());
        log.push(JobEvent::Assigned("a".into()));
        let mut w = log.watch("j", store());
        assert_eq!(w.next().await.unwrap().unwrap().len(), 1);
        log.output(OutputStream::Stdout, b"x".to_vec());
        let report = JobReport::before_start(Outcome::Exited(0), "a", &Limits::default());
        log.finish(Arc::new(report), false);
        assert_eq!(w.next().await.unwrap().unwrap().len(), 2);
        assert!(w.next().await.unwrap().is_none());
        assert!(w.now().is_empty());
        assert_eq!(log.watch("j", store()).now().len(), 3, "a new watcher starts from the first event");
    }

    #[tokio::test]
    async fn the_window_keeps_only_the_most_recent_output_and_a_retry_voids_it() {
        let log = EventLog::default();
        for _ in 0..100 {
            log.output(OutputStream::Stdout, vec![0; 16 << 10]);
        }
        assert!(log.window_bytes() <= WINDOW, "{} bytes in memory", log.window_bytes());
        log.push(JobEvent::Retry(2));
        assert_eq!(log.window_bytes(), 0);
    }

    #[tokio::test]
    async fn a_watcher_behind_the_window_reads_every_byte_in_order_from_the_record() {
        let store = store();
        let log = Arc::new(EventLog::default());
        log.push(JobEvent::Assigned("a".into()));
        let mut w = log.watch("j", store.clone());
        let mut sent = Vec::new();
        for i in 0..200u32 {
            let chunk: Vec<u8> = (0..16 << 10).map(|b: u32| (b.wrapping_mul(31) ^ i) as u8).collect();
            let seq = log.output(OutputStream::Stdout, chunk.clone());
            store.output("j", seq, OutputStream::Stdout, chunk.clone());
            sent.extend(chunk);
        }
        let report = JobReport::before_start(Outcome::Exited(0), "a", &Limits::default());
        log.finish(Arc::new(report), false);
        let mut got = Vec::new();
        let mut batches = 0;
        while let Some(batch) = w.next().await.unwrap() {
            assert!(output(&batch).len() <= PAGE, "a batch of {} bytes", output(&batch).len());
            got.extend(batch);
            batches += 1;
        }
        assert!(batches > 3, "{batches} batches");
        assert!(matches!(got.first(), Some(JobEvent::Assigned(_))));
        assert!(matches!(got.last(), Some(JobEvent::Finished(_))));
        assert_eq!(output(&got).len(), sent.len());
        assert!(output(&got) == sent, "output out of order");
    }

    #[tokio::test]
    async fn a_lagging_watcher_skips_a_void_attempt_but_sees_its_retry() {
        let store = store();
        let log = Arc::new(EventLog::default());
        let mut w = log.watch("j", store.clone());
        log.push(JobEvent::Assigned("a".into()));
        for _ in 0..40 {
            let seq = log.output(OutputStream::Stdout, vec![1; 16 << 10]);
            store.output("j", seq, OutputStream::Stdout, vec![1; 16 << 10]);
        }
        // The node is lost: its attempt's rows go, and another starts.
        store.requeued("j", 1, grid_core::AttemptEnd::Lost);
        log.push(JobEvent::Retry(2));
        log.push(JobEvent::Assigned("b".into()));
        let seq = log.output(OutputStream::Stdout, b"fresh".to_vec());
        store.output("j", seq, OutputStream::Stdout, b"fresh".to_vec());
        log.finish(Arc::new(JobReport::before_start(Outcome::Exited(0), "b", &Limits::default())), false);
        let mut got = Vec::new();
        while let Some(batch) = w.next().await.unwrap() {
            got.extend(batch);
        }
        let kinds: Vec<_> = got
            .iter()
            .map(|e| match e {
                JobEvent::Assigned(n) => format!("assigned {n}"),
                JobEvent::Retry(n) => format!("retry {n}"),
                JobEvent::Output(_, d) => String::from_utf8_lossy(d).into_owned(),
                JobEvent::Finished(_) => "finished".into(),
            })
            .collect();
        assert_eq!(kinds, ["assigned a", "retry 2", "assigned b", "fresh", "finished"]);
    }

    #[tokio::test]
    async fn an_ended_job_s_log_replays_its_record_and_its_dirs() {
        let store = store();
        let spec = grid_core::JobSpec {
            deterministic: false,
            replicas: 0,
            module: grid_core::ModuleHash::of(b"m"),
            args: vec![],
            env: vec![],
            stdin: vec![],
            dirs: vec![],
            limits: Limits::default(),
        };
        let sub = grid_core::Submission::default();
        store
            .insert(crate::record::NewJob {
                id: "j",
                submission: &sub,
                spec: &spec,
                submitted_ms: 1,
                fingerprint: None,
            })
            .await
            .unwrap();
        store.output("j", 0, OutputStream::Stdout, b"out".to_vec());
        let dirs = vec![grid_core::MappedDir { guest_path: "/d".into(), archive: b"tar".to_vec() }];
        let full =
            JobReport { dirs: dirs.clone(), ..JobReport::before_start(Outcome::Exited(0), "a", &Limits::default()) };
        store.finished("j", &full, false, grid_core::AttemptEnd::Finished, None);
        let light = Arc::new(JobReport { dirs: Vec::new(), ..full });
        let log = Arc::new(EventLog::ended("a", Some(light), true));
        let first = log.watch("j", store.clone()).next_now().await.unwrap().unwrap();
        assert!(matches!(&first[..], [JobEvent::Assigned(_)]), "{first:?}");
        let mut w = log.watch("j", store.clone());
        let mut all = Vec::new();
        while let Some(batch) = w.next().await.unwrap() {
            all.extend(batch);
        }
        assert_eq!(output(&all), b"out");
        match all.last() {
            Some(JobEvent::Finished(r)) => assert_eq!(r.dirs, dirs),
            other => panic!("ended with {other:?}"),
        }
    }
}
