//! The queue of jobs waiting for a node, kept in the order they are offered:
//! higher priority first; within a priority, tenants take turns, those with
//! fewer jobs running first; within a tenant, arrival order.
//!
//! The order is produced lazily, so handing out the next few jobs costs a
//! few heap operations, not a sort of the whole queue. No I/O, no clock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// Where a queued job sits.
#[derive(Debug, Clone)]
struct Place {
    priority: i32,
    tenant: String,
    seq: i64,
}

/// The jobs waiting, by priority, then tenant, then arrival.
#[derive(Debug, Default)]
pub struct JobQueue<Id> {
    bands: BTreeMap<Reverse<i32>, HashMap<String, BTreeMap<i64, Id>>>,
    places: HashMap<Id, Place>,
    /// Arrival numbers for the back of the queue count up, for the front
    /// down, so a job put back in front goes before every other.
    back: i64,
    front: i64,
}

impl<Id: Clone + Eq + std::hash::Hash> JobQueue<Id> {
    /// An empty queue.
    pub fn new() -> Self {
        Self { bands: BTreeMap::new(), places: HashMap::new(), back: 0, front: 0 }
    }

    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.places.len()
    }

    /// Whether no job waits.
    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    /// Queues `id` behind the jobs of its tenant and priority.
    pub fn push_back(&mut self, id: Id, priority: i32, tenant: &str) {
        self.back += 1;
        self.insert(id, priority, tenant, self.back);
    }

    /// Queues `id` ahead of every job of its tenant and priority (a job
    /// that was started and came back).
    pub fn push_front(&mut self, id: Id, priority: i32, tenant: &str) {
        self.front -= 1;
        self.insert(id, priority, tenant, self.front);
    }

    fn insert(&mut self, id: Id, priority: i32, tenant: &str, seq: i64) {
        self.remove(&id);
        let band = self.bands.entry(Reverse(priority)).or_default();
        band.entry(tenant.to_owned()).or_default().insert(seq, id.clone());
        self.places.insert(id, Place { priority, tenant: tenant.to_owned(), seq });
    }

    /// Takes `id` out of the queue. Returns whether it was there.
    pub fn remove<Q>(&mut self, id: &Q) -> bool
    where
        Id: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let Some(place) = self.places.remove(id) else { return false };
        let key = Reverse(place.priority);
        let band = self.bands.get_mut(&key).expect("a queued job's band exists");
        let jobs = band.get_mut(&place.tenant).expect("a queued job's tenant exists");
        jobs.remove(&place.seq);
        if jobs.is_empty() {
            band.remove(&place.tenant);
            if band.is_empty() {
                self.bands.remove(&key);
            }
        }
        true
    }

    /// Every queued job, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Id> {
        self.places.keys()
    }

    /// The queued jobs in the order to offer them to the nodes, given how
    /// many jobs each tenant has running.
    pub fn in_order<'a>(&'a self, running: &'a HashMap<&str, usize>) -> impl Iterator<Item = &'a Id> + 'a {
        self.bands.values().flat_map(move |band| Turns::new(band, running))
    }
}

/// One priority band in turn order: the k-th waiting job of a tenant with r
/// jobs running has turn r + k; lower turns go first, and ties go to the
/// earlier arrival.
struct Turns<'a, Id> {
    tenants: Vec<std::iter::Peekable<std::collections::btree_map::Iter<'a, i64, Id>>>,
    heap: BinaryHeap<Reverse<(usize, i64, usize)>>,
}

impl<'a, Id> Turns<'a, Id> {
    fn new(band: &'a HashMap<String, BTreeMap<i64, Id>>, running: &HashMap<&str, usize>) -> Self {
        let mut tenants = Vec::with_capacity(band.len());
        let mut heap = BinaryHeap::with_capacity(band.len());
        for (tenant, jobs) in band {
            let mut it = jobs.iter().peekable();
            if let Some(&(&seq, _)) = it.peek() {
                let turn = running.get(tenant.as_str()).copied().unwrap_or(0);
                heap.push(Reverse((turn, seq, tenants.len())));
            }
            tenants.push(it);
        }
        Self { tenants, heap }
    }
}

impl<'a, Id> Iterator for Turns<'a, Id> {
    type Item = &'a Id;

    fn next(&mut self) -> Option<&'a Id> {
        let Reverse((turn, _, t)) = self.heap.pop()?;
        let (_, id) = self.tenants[t].next().expect("a tenant in the heap has a job");
        if let Some(&(&seq, _)) = self.tenants[t].peek() {
            self.heap.push(Reverse((turn + 1, seq, t)));
        }
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(q: &JobQueue<u32>, running: &[(&str, usize)]) -> Vec<u32> {
        let running: HashMap<&str, usize> = running.iter().copied().collect();
        q.in_order(&running).copied().collect()
    }

    #[test]
    fn priority_first_then_tenants_take_turns() {
        let mut q = JobQueue::new();
        // Arrival order: four of alice's, one of bob's, one urgent, one of busy's.
        for (id, priority, tenant) in
            [(0, 0, "alice"), (1, 0, "alice"), (2, 0, "alice"), (3, 0, "alice"), (4, 0, "bob"), (5, 5, "carol")]
        {
            q.push_back(id, priority, tenant);
        }
        q.push_back(6, 0, "busy");
        // The urgent job goes first; then alice and bob take turns; busy,
        // with two running, counts as if it had had two turns already.
        assert_eq!(order(&q, &[("busy", 2)]), vec![5, 0, 4, 1, 2, 6, 3]);
        assert_eq!(q.len(), 7);
    }

    #[test]
    fn a_job_put_back_goes_first_and_removal_keeps_the_rest() {
        let mut q = JobQueue::new();
        for id in 0..4 {
            q.push_back(id, 0, "t");
        }
        assert!(q.remove(&1));
        assert!(!q.remove(&1), "already gone");
        q.push_front(9, 0, "t");
        assert_eq!(order(&q, &[]), vec![9, 0, 2, 3]);
        // Queuing a job again moves it rather than doubling it.
        q.push_back(0, 0, "t");
        assert_eq!(order(&q, &[]), vec![9, 2, 3, 0]);
        for id in [9, 2, 3, 0] {
            q.remove(&id);
        }
        assert!(q.is_empty());
        assert!(q.bands.is_empty(), "empty bands are dropped");
    }

    #[test]
    fn one_tenant_is_plain_arrival_order() {
        let mut q = JobQueue::new();
        for id in 0..1000 {
            q.push_back(id, 0, "");
        }
        assert_eq!(order(&q, &[("", 7)]), (0..1000).collect::<Vec<_>>());
    }
}
