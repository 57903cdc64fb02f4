//! A job store in memory: nothing survives the process. For tests and for
//! a grid that needs no record.

use super::{Inserted, JobStore, NewJob, OutputChunk, Page, Unfinished};
use crate::error::Result;
use crate::model::{JobId, NodeRecord, StoredJob};
use futures::future::BoxFuture;
use grid_core::{JobReport, JobState, OutputStream};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
struct Jobs {
    /// By insertion order.
    jobs: BTreeMap<u64, StoredJob>,
    seq: HashMap<JobId, u64>,
    keys: HashMap<String, JobId>,
    output: HashMap<JobId, BTreeMap<u64, (OutputStream, Vec<u8>)>>,
    /// When each finished job finished, in ms since the epoch.
    finished_ms: HashMap<JobId, u64>,
    next: u64,
    /// Nodes' histories by name.
    nodes: HashMap<String, NodeRecord>,
}

impl Jobs {
    fn get_mut(&mut self, id: &str) -> Option<&mut StoredJob> {
        let seq = self.seq.get(id)?;
        self.jobs.get_mut(seq)
    }
}

/// The job record in memory.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Jobs>,
}

impl MemoryStore {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Jobs> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl JobStore for MemoryStore {
    fn insert(&self, job: NewJob<'_>) -> BoxFuture<'static, Result<Inserted>> {
        let mut inner = self.lock();
        let sub = job.submission;
        if let Some(existing) = sub.key.as_ref().and_then(|k| inner.keys.get(k)) {
            let existing = Inserted::Existing(existing.clone());
            return Box::pin(async move { Ok(existing) });
        }
        let seq = inner.next;
        inner.next += 1;
        if let Some(key) = &sub.key {
            inner.keys.insert(key.clone(), job.id.to_owned());
        }
        inner.seq.insert(job.id.to_owned(), seq);
        let stored = StoredJob {
            id: job.id.to_owned(),
            key: sub.key.clone(),
            tenant: sub.tenant.clone(),
            priority: sub.priority,
            spec: job.spec.clone(),
            state: JobState::Queued,
            node: String::new(),
            attempts: 0,
            submitted_ms: job.submitted_ms,
            result: None,
        };
        inner.jobs.insert(seq, stored);
        Box::pin(async { Ok(Inserted::New) })
    }

    fn flush(&self) -> BoxFuture<'static, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn running(&self, id: &str, node: &str, attempts: u32) {
        if let Some(job) = self.lock().get_mut(id) {
            job.state = JobState::Running;
            job.node = node.to_owned();
            job.attempts = attempts;
        }
    }

    fn requeued(&self, id: &str, attempts: u32) {
        let mut inner = self.lock();
        if let Some(job) = inner.get_mut(id) {
            job.state = JobState::Queued;
            job.attempts = attempts;
        }
        inner.output.remove(id);
    }

    fn output(&self, id: &str, seq: u64, stream: OutputStream, data: Vec<u8>) {
        self.lock().output.entry(id.to_owned()).or_default().insert(seq, (stream, data));
    }

    fn finished(&self, id: &str, report: &JobReport, drop_input: bool) {
        let mut inner = self.lock();
        inner.finished_ms.insert(id.to_owned(), crate::model::now_ms());
        if let Some(job) = inner.get_mut(id) {
            job.state = JobState::finished(report);
            if drop_input {
                job.spec.stdin = Vec::new();
                job.spec.dirs = Vec::new();
            }
            job.result = Some(report.clone());
        }
    }

    fn job(&self, id: &str) -> Result<Option<StoredJob>> {
        let inner = self.lock();
        Ok(inner.seq.get(id).and_then(|seq| inner.jobs.get(seq)).cloned())
    }

    fn job_with_key(&self, key: &str) -> Result<Option<JobId>> {
        Ok(self.lock().keys.get(key).cloned())
    }

    fn list(&self, state: Option<JobState>, before: Option<u64>, limit: usize) -> Result<Page> {
        let inner = self.lock();
        let wanted = |(_, j): &(&u64, &StoredJob)| state.is_none_or(|s| j.state == s);
        let mut rows = inner.jobs.range(..before.unwrap_or(u64::MAX)).rev().filter(wanted);
        let jobs: Vec<_> =
            rows.by_ref().take(limit).map(|(seq, j)| (*seq, crate::listing::stored(j.clone()))).collect();
        let next = if rows.next().is_some() { jobs.last().map(|(seq, _)| *seq) } else { None };
        Ok(Page { jobs: jobs.into_iter().map(|(_, j)| j).collect(), next })
    }

    fn output_page(&self, id: &str, from_seq: u64, max_bytes: usize) -> Result<Vec<OutputChunk>> {
        let inner = self.lock();
        let Some(chunks) = inner.output.get(id) else { return Ok(Vec::new()) };
        let mut page = Vec::new();
        let mut bytes = 0;
        for (seq, (stream, data)) in chunks.range(from_seq..) {
            if !page.is_empty() && bytes + data.len() > max_bytes {
                break;
            }
            bytes += data.len();
            page.push((*seq, *stream, data.clone()));
        }
        Ok(page)
    }

    fn unfinished(&self) -> Result<Vec<Unfinished>> {
        let inner = self.lock();
        Ok(inner.jobs.values().filter(|j| !j.state.is_final()).map(|j| Unfinished::new(j.clone())).collect())
    }

    fn newest_id(&self) -> Result<Option<JobId>> {
        Ok(self.lock().jobs.values().next_back().map(|j| j.id.clone()))
    }

    fn prune(&self, finished_before_ms: u64) {
        let mut inner = self.lock();
        let old: Vec<(u64, JobId)> = inner
            .jobs
            .iter()
            .filter(|(_, j)| inner.finished_ms.get(&j.id).is_some_and(|ms| *ms < finished_before_ms))
            .map(|(seq, j)| (*seq, j.id.clone()))
            .collect();
        for (seq, id) in old {
            if let Some(job) = inner.jobs.remove(&seq)
                && let Some(key) = job.key
            {
                inner.keys.remove(&key);
            }
            inner.seq.remove(&id);
            inner.output.remove(&id);
            inner.finished_ms.remove(&id);
        }
    }

    fn nodes_seen(&self, nodes: Vec<NodeRecord>) {
        let mut inner = self.lock();
        for node in nodes {
            inner.nodes.insert(node.name.clone(), node);
        }
    }

    fn node(&self, name: &str) -> Result<Option<NodeRecord>> {
        Ok(self.lock().nodes.get(name).cloned())
    }

    fn nodes(&self, limit: usize) -> Result<Vec<NodeRecord>> {
        let mut all: Vec<NodeRecord> = self.lock().nodes.values().cloned().collect();
        all.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then_with(|| a.name.cmp(&b.name)));
        all.truncate(limit);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    job_store_contract!(|_: &Path| MemoryStore::new());
}
