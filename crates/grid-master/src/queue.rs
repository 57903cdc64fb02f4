//! The queue of jobs waiting for a node, kept in the order they are offered:
//! higher priority first; within a priority, tenants take turns, those with
//! fewer jobs running first; within a tenant, arrival order.
//!
//! The order is produced lazily, so handing out the next few jobs costs a
//! few heap operations, not a sort of the whole queue. A job that no
//! connected node could ever take is parked: it keeps its place but is left
//! out of the order until a node that might take it comes, so jobs that
//! cannot run cost nothing while they wait. A tenant held back by its
//! quota is skipped as a whole, so its waiting jobs are never looked at one
//! by one. No I/O, no clock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

/// How many jobs each tenant has running, kept as jobs start and stop
/// rather than counted at each dispatch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Running(HashMap<String, usize>);

impl Running {
    /// Counts `tenants`, one entry per running job.
    pub fn count<'a>(tenants: impl IntoIterator<Item = &'a str>) -> Self {
        let mut running = Self::default();
        for tenant in tenants {
            running.started(tenant);
        }
        running
    }

    /// A job of `tenant` started running.
    pub fn started(&mut self, tenant: &str) {
        match self.0.get_mut(tenant) {
            Some(n) => *n += 1,
            None => {
                self.0.insert(tenant.to_owned(), 1);
            }
        }
    }

    /// A job of `tenant` stopped running.
    pub fn stopped(&mut self, tenant: &str) {
        if let Some(n) = self.0.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(tenant);
            }
        }
    }

    /// Jobs of `tenant` running.
    pub fn of(&self, tenant: &str) -> usize {
        self.0.get(tenant).copied().unwrap_or(0)
    }

    /// The tenants with jobs running.
    pub fn tenants(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

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
    /// The jobs offered, in their places.
    bands: BTreeMap<Reverse<i32>, HashMap<String, BTreeMap<i64, Id>>>,
    /// Every job waiting, offered or parked, and its place.
    places: HashMap<Id, Place>,
    /// Jobs left out of the order until a node that might take them comes.
    parked: HashSet<Id>,
    /// Jobs waiting per tenant, offered or parked.
    tenants: HashMap<String, usize>,
    /// Arrival numbers for the back of the queue count up, for the front
    /// down, so a job put back in front goes before every other.
    back: i64,
    front: i64,
}

impl<Id: Clone + Eq + std::hash::Hash> JobQueue<Id> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            bands: BTreeMap::new(),
            places: HashMap::new(),
            parked: HashSet::new(),
            tenants: HashMap::new(),
            back: 0,
            front: 0,
        }
    }

    /// Jobs of `tenant` waiting, parked ones included.
    pub fn len_of(&self, tenant: &str) -> usize {
        self.tenants.get(tenant).copied().unwrap_or(0)
    }

    /// The tenants with jobs waiting, and how many each.
    pub fn tenants(&self) -> impl Iterator<Item = (&str, usize)> {
        self.tenants.iter().map(|(t, n)| (t.as_str(), *n))
    }

    /// Jobs waiting, parked ones included.
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
        let place = Place { priority, tenant: tenant.to_owned(), seq };
        offer(&mut self.bands, id.clone(), &place);
        match self.tenants.get_mut(tenant) {
            Some(n) => *n += 1,
            None => {
                self.tenants.insert(tenant.to_owned(), 1);
            }
        }
        self.places.insert(id, place);
    }

    /// Takes `id` out of the queue. Returns whether it was there.
    pub fn remove<Q>(&mut self, id: &Q) -> bool
    where
        Id: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let Some(place) = self.places.remove(id) else { return false };
        if !self.parked.remove(id) {
            withdraw(&mut self.bands, &place);
        }
        if let Some(n) = self.tenants.get_mut(&place.tenant) {
            *n -= 1;
            if *n == 0 {
                self.tenants.remove(&place.tenant);
            }
        }
        true
    }

    /// Leaves `id` out of the order, keeping its place, until `unpark`
    /// puts it back. Returns whether it was offered before.
    pub fn park(&mut self, id: &Id) -> bool {
        let Some(place) = self.places.get(id) else { return false };
        if !self.parked.insert(id.clone()) {
            return false;
        }
        withdraw(&mut self.bands, place);
        true
    }

    /// Puts the parked jobs for which `wanted` holds back in their places.
    /// Returns how many came back.
    pub fn unpark(&mut self, mut wanted: impl FnMut(&Id) -> bool) -> usize {
        let Self { bands, places, parked, .. } = self;
        let before = parked.len();
        parked.retain(|id| {
            if !wanted(id) {
                return true;
            }
            offer(bands, id.clone(), &places[id]);
            false
        });
        before - parked.len()
    }

    /// Whether `id` is parked.
    pub fn is_parked(&self, id: &Id) -> bool {
        self.parked.contains(id)
    }

    /// Jobs parked.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// The jobs offered to the nodes (the parked ones left out) in the
    /// order to offer them, given how many jobs each tenant has running.
    /// A tenant passed to [`Order::skip_tenant`] is left out from then on.
    pub fn in_order<'a>(&'a self, running: &'a Running) -> Order<'a, Id> {
        Order { bands: self.bands.values(), turns: None, running, skipped: HashSet::new() }
    }
}

/// The jobs offered, in order, leaving out the tenants skipped: a skipped
/// tenant costs nothing however many jobs it has waiting.
pub struct Order<'a, Id> {
    bands: std::collections::btree_map::Values<'a, Reverse<i32>, HashMap<String, BTreeMap<i64, Id>>>,
    turns: Option<Turns<'a, Id>>,
    running: &'a Running,
    skipped: HashSet<String>,
}

impl<Id> Order<'_, Id> {
    /// Leaves `tenant`'s jobs out of the rest of the order.
    pub fn skip_tenant(&mut self, tenant: &str) {
        if !self.skipped.contains(tenant) {
            self.skipped.insert(tenant.to_owned());
        }
    }
}

impl<'a, Id> Iterator for Order<'a, Id> {
    type Item = &'a Id;

    fn next(&mut self) -> Option<&'a Id> {
        loop {
            if let Some(turns) = &mut self.turns
                && let Some(id) = turns.next(&self.skipped)
            {
                return Some(id);
            }
            let band = self.bands.next()?;
            self.turns = Some(Turns::new(band, self.running, &self.skipped));
        }
    }
}

/// Puts `id` in its place among the jobs offered.
fn offer<Id>(bands: &mut BTreeMap<Reverse<i32>, HashMap<String, BTreeMap<i64, Id>>>, id: Id, place: &Place) {
    let band = bands.entry(Reverse(place.priority)).or_default();
    match band.get_mut(&place.tenant) {
        Some(jobs) => jobs.insert(place.seq, id),
        None => band.entry(place.tenant.clone()).or_default().insert(place.seq, id),
    };
}

/// Takes the job at `place` out of the jobs offered, dropping what empties.
fn withdraw<Id>(bands: &mut BTreeMap<Reverse<i32>, HashMap<String, BTreeMap<i64, Id>>>, place: &Place) {
    let key = Reverse(place.priority);
    let band = bands.get_mut(&key).expect("an offered job's band exists");
    let jobs = band.get_mut(&place.tenant).expect("an offered job's tenant exists");
    jobs.remove(&place.seq);
    if jobs.is_empty() {
        band.remove(&place.tenant);
        if band.is_empty() {
            bands.remove(&key);
        }
    }
}

/// One priority band in turn order: the k-th waiting job of a tenant with r
/// jobs running has turn r + k; lower turns go first, and ties go to the
/// earlier arrival.
struct Turns<'a, Id> {
    tenants: Vec<(&'a str, std::iter::Peekable<std::collections::btree_map::Iter<'a, i64, Id>>)>,
    heap: BinaryHeap<Reverse<(usize, i64, usize)>>,
}

impl<'a, Id> Turns<'a, Id> {
    fn new(band: &'a HashMap<String, BTreeMap<i64, Id>>, running: &Running, skipped: &HashSet<String>) -> Self {
        let mut tenants = Vec::with_capacity(band.len());
        let mut heap = BinaryHeap::with_capacity(band.len());
        for (tenant, jobs) in band.iter().filter(|(t, _)| !skipped.contains(*t)) {
            let mut it = jobs.iter().peekable();
            if let Some(&(&seq, _)) = it.peek() {
                let turn = running.of(tenant);
                heap.push(Reverse((turn, seq, tenants.len())));
            }
            tenants.push((tenant.as_str(), it));
        }
        Self { tenants, heap }
    }

    /// The next job in turn, dropping the tenants in `skipped`.
    fn next(&mut self, skipped: &HashSet<String>) -> Option<&'a Id> {
        loop {
            let Reverse((turn, _, t)) = self.heap.pop()?;
            let (tenant, jobs) = &mut self.tenants[t];
            if skipped.contains(*tenant) {
                continue;
            }
            let (_, id) = jobs.next().expect("a tenant in the heap has a job");
            if let Some(&(&seq, _)) = jobs.peek() {
                self.heap.push(Reverse((turn + 1, seq, t)));
            }
            return Some(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(q: &JobQueue<u32>, running: &[(&str, usize)]) -> Vec<u32> {
        let running = Running::count(running.iter().flat_map(|&(t, n)| std::iter::repeat_n(t, n)));
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

    #[test]
    fn a_parked_job_keeps_its_place_and_comes_back_to_it() {
        let mut q = JobQueue::new();
        for id in 0..5 {
            q.push_back(id, 0, "t");
        }
        assert!(q.park(&1) && q.park(&3));
        assert!(!q.park(&3), "already parked");
        assert_eq!(order(&q, &[]), vec![0, 2, 4]);
        assert_eq!((q.len(), q.parked()), (5, 2), "parked jobs still wait");
        assert!(q.is_parked(&1));
        // Only the jobs asked for come back, each to its own place.
        assert_eq!(q.unpark(|id| *id == 3), 1);
        assert_eq!(order(&q, &[]), vec![0, 2, 3, 4]);
        // A parked job can be removed, or put back in front like any other.
        assert!(q.remove(&1));
        assert_eq!(q.parked(), 0);
        q.push_back(5, 0, "t");
        q.park(&5);
        q.push_front(5, 0, "t");
        assert!(!q.is_parked(&5));
        assert_eq!(order(&q, &[]), vec![5, 0, 2, 3, 4]);
    }

    #[test]
    fn a_skipped_tenant_is_left_out_of_the_rest_of_the_order_and_counts_are_kept() {
        let mut q = JobQueue::new();
        for (id, priority, tenant) in [(0, 0, "a"), (1, 0, "a"), (2, 0, "b"), (3, 0, "b"), (4, 1, "a"), (5, 1, "c")] {
            q.push_back(id, priority, tenant);
        }
        let running = Running::default();
        let mut order = q.in_order(&running);
        assert_eq!(order.next(), Some(&4));
        order.skip_tenant("a");
        assert_eq!(order.collect::<Vec<_>>(), vec![&5, &2, &3], "a's jobs in the next band were skipped too");
        assert_eq!((q.len_of("a"), q.len_of("b"), q.len_of("d")), (3, 2, 0));
        q.park(&0);
        assert_eq!(q.len_of("a"), 3, "a parked job still waits");
        q.remove(&0);
        q.remove(&1);
        q.remove(&4);
        assert_eq!(q.len_of("a"), 0);
        assert_eq!(q.tenants().count(), 2);
    }

    #[test]
    fn running_counts_drop_tenants_with_none() {
        let mut running = Running::default();
        running.started("a");
        running.started("a");
        running.stopped("a");
        assert_eq!(running.of("a"), 1);
        running.stopped("a");
        running.stopped("b");
        assert_eq!(running, Running::default());
    }
}
