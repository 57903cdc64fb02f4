//! The change feed: which jobs and nodes changed, in order, in a bounded
//! ring that readers (the HTTP `/api/v1/events`) follow and resume from by
//! sequence number. It is fed by [`Feeding`], a wrapper of the job record
//! that notes every job write and node update on its way to the record, so
//! no path of the live state needs to know about it.

use crate::error::Result;
use crate::model::{JobId, NodeRecord, StoredJob, TenantUse};
use crate::record::{Filter, Inserted, JobStore, NewJob, Page, Unfinished};
use futures::future::BoxFuture;
use grid_core::{Attempt, AttemptEnd, JobReport, OutputStream, Verdict};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Changes the ring keeps; a reader further behind starts over.
pub const FEED_KEPT: usize = 4096;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A job: queued, started, requeued, a replica's news, finished.
    Job(String),
    /// A node: connected, its state changed, or it left.
    Node(String),
}

/// What a reader gets after a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// The changes after it, oldest first, each with its sequence number.
    Changes(Vec<(u64, Change)>),
    /// It is older than the ring: the reader starts over from `latest`.
    Reset { latest: u64 },
}

/// The ring of changes.
#[derive(Debug)]
pub struct Feed {
    ring: Mutex<Ring>,
    latest: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Ring {
    /// The number of this feed's first change ever.
    origin: u64,
    /// The sequence number of `items[0]`.
    first: u64,
    items: VecDeque<Change>,
}

impl Default for Feed {
    /// An empty feed whose numbers start from the clock (a thousand for
    /// each millisecond since the epoch), so a master's numbers lie above
    /// every number its previous lives gave: a reader resuming with one of
    /// those is started over, never resumed in the wrong count.
    fn default() -> Self {
        Self::starting_at(crate::model::now_ms().saturating_mul(1000).max(1))
    }
}

impl Feed {
    /// An empty feed whose numbers start from the clock.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// An empty feed whose first change is number `first` (above zero).
    pub fn starting_at(first: u64) -> Self {
        let first = first.max(1);
        Self {
            ring: Mutex::new(Ring { origin: first, first, items: VecDeque::new() }),
            latest: tokio::sync::watch::channel(first - 1).0,
        }
    }

    /// Notes a change. A change to the job or node of the last one is noted
    /// again all the same: a reader may have read the last one before its
    /// job or node changed again.
    pub fn push(&self, change: Change) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.items.push_back(change);
        if ring.items.len() > FEED_KEPT {
            ring.items.pop_front();
            ring.first += 1;
        }
        let latest = ring.first + ring.items.len() as u64 - 1;
        drop(ring);
        self.latest.send_replace(latest);
    }

    /// The sequence number of the latest change (one below the first
    /// before any).
    pub fn latest(&self) -> u64 {
        *self.latest.borrow()
    }

    /// Wakes when a change after the one seen is noted.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// At most `max` changes after number `after`, each job or node once
    /// (at its latest number); `after` 0 reads from this feed's first
    /// change. A number from before the ring (a previous master's, or one
    /// the ring has dropped since), or past the latest (a made-up place),
    /// starts the reader over.
    pub fn since(&self, after: u64, max: usize) -> Since {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let latest = ring.first + ring.items.len() as u64 - 1;
        let after = if after == 0 { ring.origin - 1 } else { after };
        if after.saturating_add(1) < ring.first || after > latest {
            return Since::Reset { latest };
        }
        let skip = (after + 1 - ring.first) as usize;
        let mut changes: Vec<(u64, Change)> = Vec::new();
        for (i, c) in ring.items.iter().enumerate().skip(skip).take(max) {
            changes.retain(|(_, seen)| seen != c);
            changes.push((ring.first + i as u64, c.clone()));
        }
        Since::Changes(changes)
    }
}

/// A job record that notes in `feed` what its writes change.
pub struct Feeding {
    inner: Arc<dyn JobStore>,
    feed: Arc<Feed>,
}

impl Feeding {
    /// `inner`, its changes noted in `feed`.
    pub fn new(inner: Arc<dyn JobStore>, feed: Arc<Feed>) -> Self {
        Self { inner, feed }
    }

    /// Notes that job `id` changed.
    fn noted(&self, id: &str) {
        self.feed.push(Change::Job(id.to_owned()));
    }
}

impl JobStore for Feeding {
    fn insert(&self, job: NewJob<'_>) -> BoxFuture<'static, Result<Inserted>> {
        let (id, feed) = (job.id.to_owned(), self.feed.clone());
        let inserted = self.inner.insert(job);
        // Noted once durable, when readers can find it.
        Box::pin(async move {
            let inserted = inserted.await;
            if let Ok(Inserted::New) = inserted {
                feed.push(Change::Job(id));
            }
            inserted
        })
    }

    fn flush(&self) -> BoxFuture<'static, Result<()>> {
        self.inner.flush()
    }

    fn running(&self, id: &str, node: &str, attempts: u32) {
        self.inner.running(id, node, attempts);
        self.noted(id);
    }

    fn requeued(&self, id: &str, attempts: u32, end: AttemptEnd) {
        self.inner.requeued(id, attempts, end);
        self.noted(id);
    }

    fn replica(&self, id: &str, number: u32, end: Option<AttemptEnd>, digest: Option<&str>, verdict: Option<Verdict>) {
        self.inner.replica(id, number, end, digest, verdict);
        self.noted(id);
    }

    fn billed(&self, tenant: &str, runs: u64, fuel: u64) {
        self.inner.billed(tenant, runs, fuel);
    }

    fn output(&self, id: &str, seq: u64, stream: OutputStream, data: Vec<u8>) {
        self.inner.output(id, seq, stream, data);
    }

    fn backlog(&self) -> Option<Arc<crate::record::Backlog>> {
        self.inner.backlog()
    }

    fn output_extent(&self, id: &str) -> Result<crate::record::OutputExtent> {
        self.inner.output_extent(id)
    }

    fn finished(&self, id: &str, report: &JobReport, drop_input: bool, end: AttemptEnd, ran: Option<&str>) {
        self.inner.finished(id, report, drop_input, end, ran);
        self.noted(id);
    }

    fn tenant_use(&self) -> Result<Vec<TenantUse>> {
        self.inner.tenant_use()
    }

    fn job(&self, id: &str) -> Result<Option<StoredJob>> {
        self.inner.job(id)
    }

    fn job_with_key(&self, key: &str) -> Result<Option<(JobId, Option<String>)>> {
        self.inner.job_with_key(key)
    }

    fn attempts(&self, id: &str) -> Result<Vec<Attempt>> {
        self.inner.attempts(id)
    }

    fn position(&self, id: &str) -> Result<Option<u64>> {
        self.inner.position(id)
    }

    fn list(&self, filter: &Filter, before: Option<u64>, limit: usize) -> Result<Page> {
        self.inner.list(filter, before, limit)
    }

    fn output_page(&self, id: &str, from_seq: u64, max_bytes: usize) -> Result<Vec<crate::record::OutputChunk>> {
        self.inner.output_page(id, from_seq, max_bytes)
    }

    fn unfinished(&self) -> Result<Vec<Unfinished>> {
        self.inner.unfinished()
    }

    fn newest_id(&self) -> Result<Option<JobId>> {
        self.inner.newest_id()
    }

    fn prune(&self, finished_before_ms: u64) -> BoxFuture<'static, Result<usize>> {
        self.inner.prune(finished_before_ms)
    }

    fn nodes_seen(&self, nodes: Vec<NodeRecord>) {
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        self.inner.nodes_seen(nodes);
        for name in names {
            self.feed.push(Change::Node(name));
        }
    }

    fn node(&self, name: &str) -> Result<Option<NodeRecord>> {
        self.inner.node(name)
    }

    fn nodes(&self, limit: usize) -> Result<Vec<NodeRecord>> {
        self.inner.nodes(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> Change {
        Change::Job(id.into())
    }

    #[test]
    fn readers_resume_after_a_number_and_start_over_past_the_ring() {
        let feed = Feed::starting_at(1);
        assert_eq!(feed.since(0, 10), Since::Changes(vec![]));
        feed.push(job("a"));
        feed.push(job("a"));
        feed.push(Change::Node("n".into()));
        feed.push(job("b"));
        feed.push(job("a"));
        assert_eq!(feed.latest(), 5);
        // Each job once, at its latest number.
        assert_eq!(
            feed.since(0, 10),
            Since::Changes(vec![(3, Change::Node("n".into())), (4, job("b")), (5, job("a"))])
        );
        // A reader that read `a` at 1 sees it change again at 2.
        assert_eq!(feed.since(1, 1), Since::Changes(vec![(2, job("a"))]));
        assert_eq!(feed.since(4, 10), Since::Changes(vec![(5, job("a"))]));
        assert_eq!(feed.since(5, 10), Since::Changes(vec![]));
        assert_eq!(feed.since(0, 1), Since::Changes(vec![(1, job("a"))]));
        // A place past the latest, or the largest number there is, starts over.
        assert_eq!(feed.since(6, 10), Since::Reset { latest: 5 });
        assert_eq!(feed.since(u64::MAX, 10), Since::Reset { latest: 5 });
        // A later master's feed: 0 reads it from its start; a number of
        // an earlier life starts the reader over.
        let later = Feed::starting_at(1_000);
        later.push(job("c"));
        assert_eq!(later.since(0, 10), Since::Changes(vec![(1_000, job("c"))]));
        assert_eq!(later.since(5, 10), Since::Reset { latest: 1_000 });
        assert!(Feed::new().latest() > 1_000_000, "numbered from the clock");
        for i in 0..FEED_KEPT {
            feed.push(job(&i.to_string()));
        }
        assert_eq!(feed.since(2, 10), Since::Reset { latest: feed.latest() });
        let Since::Changes(kept) = feed.since(5, 1) else { panic!("the ring holds 5 on") };
        assert_eq!(kept[0].0, 6);
    }
}
