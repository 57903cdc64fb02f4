//! A job store in memory: nothing survives the process. For tests and for
//! a grid that needs no record.

use super::{Filter, Inserted, JobStore, NewJob, OutputChunk, OutputExtent, Page, SCANNED, Unfinished};
use crate::error::Result;
use crate::model::{JobId, NodeRecord, StoredJob, TenantUse, now_ms};
use futures::future::BoxFuture;
use grid_core::{Attempt, AttemptEnd, JobReport, JobState, OutputStream, Verdict};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
struct Jobs {
    /// By insertion order.
    jobs: BTreeMap<u64, StoredJob>,
    seq: HashMap<JobId, u64>,
    keys: HashMap<String, JobId>,
    output: HashMap<JobId, BTreeMap<u64, (OutputStream, Vec<u8>)>>,
    attempts: HashMap<JobId, Vec<Attempt>>,
    next: u64,
    /// Nodes' histories by name.
    nodes: HashMap<String, NodeRecord>,
    /// What each tenant has run, by name.
    tenant_use: BTreeMap<String, TenantUse>,
}

impl Jobs {
    fn get_mut(&mut self, id: &str) -> Option<&mut StoredJob> {
        let seq = self.seq.get(id)?;
        self.jobs.get_mut(seq)
    }

    /// `runs` more runs and `fuel` more fuel for `tenant`, saturating.
    fn count_use(&mut self, tenant: &str, runs: u64, fuel: u64) {
        let used = self
            .tenant_use
            .entry(tenant.to_owned())
            .or_insert_with(|| TenantUse { name: tenant.to_owned(), ..Default::default() });
        used.jobs_run = used.jobs_run.saturating_add(runs);
        used.fuel_burned = used.fuel_burned.saturating_add(fuel);
    }

    /// Ends job `id`'s running attempt, if it has one.
    fn end_attempt(&mut self, id: &str, end: AttemptEnd, at_ms: u64) {
        let running = self.attempts.get_mut(id).and_then(|a| a.last_mut()).filter(|a| a.end.is_none());
        if let Some(attempt) = running {
            attempt.ended_ms = Some(at_ms);
            attempt.end = Some(end);
        }
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
            let fingerprint = inner.seq.get(existing).and_then(|seq| inner.jobs[seq].fingerprint.clone());
            let existing = Inserted::Existing(existing.clone(), fingerprint);
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
            started_ms: None,
            finished_ms: None,
            fingerprint: job.fingerprint.map(str::to_owned),
            result: None,
        };
        inner.jobs.insert(seq, stored);
        Box::pin(async { Ok(Inserted::New) })
    }

    fn flush(&self) -> BoxFuture<'static, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn running(&self, id: &str, node: &str, attempts: u32) {
        let mut inner = self.lock();
        let now = now_ms();
        let Some(job) = inner.get_mut(id) else { return };
        job.state = JobState::Running;
        job.node = node.to_owned();
        job.attempts = attempts;
        job.started_ms = Some(now);
        let attempt = Attempt {
            digest: None,
            verdict: None,
            number: attempts,
            node: node.to_owned(),
            started_ms: now,
            ended_ms: None,
            end: None,
        };
        let all = inner.attempts.entry(id.to_owned()).or_default();
        all.retain(|a| a.number != attempts);
        all.push(attempt);
    }

    fn requeued(&self, id: &str, attempts: u32, end: AttemptEnd) {
        let mut inner = self.lock();
        if let Some(job) = inner.get_mut(id) {
            job.state = JobState::Queued;
            job.node = String::new();
            job.attempts = attempts;
        }
        inner.output.remove(id);
        inner.end_attempt(id, end, now_ms());
    }

    fn replica(&self, id: &str, number: u32, end: Option<AttemptEnd>, digest: Option<&str>, verdict: Option<Verdict>) {
        let mut inner = self.lock();
        let now = now_ms();
        let Some(a) = inner.attempts.get_mut(id).and_then(|all| all.iter_mut().find(|a| a.number == number)) else {
            return;
        };
        if let Some(end) = end {
            a.ended_ms = a.ended_ms.or(Some(now));
            a.end = a.end.or(Some(end));
        }
        if let Some(digest) = digest {
            a.digest = Some(digest.to_owned());
        }
        a.verdict = verdict.or(a.verdict);
    }

    fn billed(&self, tenant: &str, runs: u64, fuel: u64) {
        self.lock().count_use(tenant, runs, fuel);
    }

    fn output(&self, id: &str, seq: u64, stream: OutputStream, data: Vec<u8>) {
        self.lock().output.entry(id.to_owned()).or_default().insert(seq, (stream, data));
    }

    fn finished(&self, id: &str, report: &JobReport, drop_input: bool, end: AttemptEnd, ran: Option<&str>) {
        let mut inner = self.lock();
        let now = now_ms();
        inner.end_attempt(id, end, now);
        if let Some(tenant) = ran {
            inner.count_use(tenant, 1, report.fuel_used);
        }
        if let Some(job) = inner.get_mut(id) {
            job.finished_ms = Some(now);
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

    fn job_with_key(&self, key: &str) -> Result<Option<(JobId, Option<String>)>> {
        let inner = self.lock();
        let Some(id) = inner.keys.get(key) else { return Ok(None) };
        let fingerprint = inner.seq.get(id).and_then(|seq| inner.jobs[seq].fingerprint.clone());
        Ok(Some((id.clone(), fingerprint)))
    }

    fn attempts(&self, id: &str) -> Result<Vec<Attempt>> {
        Ok(self.lock().attempts.get(id).cloned().unwrap_or_default())
    }

    fn position(&self, id: &str) -> Result<Option<u64>> {
        Ok(self.lock().seq.get(id).copied())
    }

    fn list(&self, filter: &Filter, before: Option<u64>, limit: usize) -> Result<Page> {
        let inner = self.lock();
        let older = inner.jobs.range(..before.unwrap_or(u64::MAX)).rev();
        if filter.scans() {
            // As SQLite's: a bounded window, whatever matches in it.
            let window: Vec<_> = older.take(SCANNED).collect();
            let mut jobs = Vec::new();
            for (seq, j) in &window {
                if filter.admits(j) {
                    jobs.push(crate::listing::stored((*j).clone()));
                    if jobs.len() == limit {
                        return Ok(Page { jobs, next: Some(**seq) });
                    }
                }
            }
            let next = if window.len() == SCANNED { window.last().map(|(seq, _)| **seq) } else { None };
            return Ok(Page { jobs, next });
        }
        let mut rows = older.filter(|(_, j)| filter.admits(j));
        let jobs: Vec<_> =
            rows.by_ref().take(limit).map(|(seq, j)| (*seq, crate::listing::stored(j.clone()))).collect();
        let next = if rows.next().is_some() { jobs.last().map(|(seq, _)| *seq) } else { None };
        Ok(Page { jobs: jobs.into_iter().map(|(_, j)| j).collect(), next })
    }

    fn output_extent(&self, id: &str) -> Result<OutputExtent> {
        let inner = self.lock();
        let Some(chunks) = inner.output.get(id) else { return Ok(OutputExtent::default()) };
        Ok(OutputExtent {
            next_seq: chunks.keys().next_back().map_or(0, |last| last + 1),
            chunks: chunks.len() as u64,
            bytes: chunks.values().map(|(_, d)| d.len() as u64).sum(),
        })
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

    fn prune(&self, finished_before_ms: u64) -> BoxFuture<'static, Result<usize>> {
        let mut inner = self.lock();
        let old: Vec<(u64, JobId)> = inner
            .jobs
            .iter()
            .filter(|(_, j)| j.finished_ms.is_some_and(|ms| ms < finished_before_ms))
            .map(|(seq, j)| (*seq, j.id.clone()))
            .collect();
        let pruned = old.len();
        for (seq, id) in old {
            if let Some(job) = inner.jobs.remove(&seq)
                && let Some(key) = job.key
            {
                inner.keys.remove(&key);
            }
            inner.seq.remove(&id);
            inner.output.remove(&id);
            inner.attempts.remove(&id);
        }
        Box::pin(std::future::ready(Ok(pruned)))
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

    fn tenant_use(&self) -> Result<Vec<TenantUse>> {
        Ok(self.lock().tenant_use.values().cloned().collect())
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
