//! Routing: which node runs a job. Pure functions of their inputs, no I/O,
//! no clock of their own.

use std::time::Duration;

/// What a queued job needs from a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// Linear memory the job may use.
    pub memory: u64,
    /// Fuel the job reserves.
    pub fuel: u64,
}

/// A node as the scheduler sees it at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView<K> {
    /// The node's key.
    pub key: K,
    /// Slots not running a job.
    pub free_slots: u32,
    /// Memory not promised to running jobs.
    pub free_memory: u64,
    /// Fuel in the node's bucket not reserved by running jobs.
    pub spare_fuel: u64,
    /// Whether the node already caches the job's module.
    pub has_module: bool,
}

impl<K> NodeView<K> {
    fn fits(&self, d: &Demand) -> bool {
        self.free_slots > 0 && self.free_memory >= d.memory && self.spare_fuel >= d.fuel
    }
}

/// The node for a job: among the nodes with a free slot, enough free memory
/// and enough spare fuel, one that caches the module if any does, and of
/// those the one with the most spare fuel. `None` when nothing fits.
pub fn choose<K: Ord + Clone>(demand: &Demand, nodes: &[NodeView<K>]) -> Option<K> {
    nodes
        .iter()
        .filter(|n| n.fits(demand))
        // Ties on fuel go to the smallest key, so the choice is deterministic.
        .max_by(|a, b| (a.has_module, a.spare_fuel, &b.key).cmp(&(b.has_module, b.spare_fuel, &a.key)))
        .map(|n| n.key.clone())
}

/// A fuel quota as a token bucket: `rate_per_hour` flows in continuously, up
/// to `burst`; jobs are billed what they burned.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate_per_hour: u64,
    burst: u64,
    tokens: f64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_hour: u64, burst: u64) -> Self {
        Self { rate_per_hour, burst, tokens: burst as f64 }
    }

    /// Adds what flowed in during `elapsed`.
    pub fn refill(&mut self, elapsed: Duration) {
        let added = self.rate_per_hour as f64 * elapsed.as_secs_f64() / 3600.0;
        self.tokens = (self.tokens + added).min(self.burst as f64);
    }

    /// Takes `fuel` out of the bucket (never below empty).
    pub fn charge(&mut self, fuel: u64) {
        self.tokens = (self.tokens - fuel as f64).max(0.0);
    }

    /// Whole tokens in the bucket.
    pub fn available(&self) -> u64 {
        self.tokens as u64
    }

    /// Fuel per hour.
    pub fn rate_per_hour(&self) -> u64 {
        self.rate_per_hour
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        key: &'static str,
        free_slots: u32,
        free_memory: u64,
        spare_fuel: u64,
        has_module: bool,
    ) -> NodeView<&'static str> {
        NodeView { key, free_slots, free_memory, spare_fuel, has_module }
    }

    fn check(demand: Demand, nodes: &[NodeView<&'static str>], expected: Option<&str>) {
        assert_eq!(choose(&demand, nodes), expected, "demand {demand:?} over {nodes:#?}");
    }

    const SMALL: Demand = Demand { memory: 100, fuel: 1000 };

    #[test]
    fn most_spare_fuel_wins() {
        check(SMALL, &[node("a", 1, 1000, 5000, false), node("b", 1, 1000, 9000, false)], Some("b"));
    }

    #[test]
    fn cache_affinity_beats_spare_fuel() {
        check(SMALL, &[node("a", 1, 1000, 5000, true), node("b", 1, 1000, 9000, false)], Some("a"));
    }

    #[test]
    fn cached_node_that_cannot_fit_is_skipped() {
        check(SMALL, &[node("a", 0, 1000, 9000, true), node("b", 1, 1000, 2000, false)], Some("b"));
        check(SMALL, &[node("a", 1, 50, 9000, true), node("b", 1, 1000, 2000, false)], Some("b"));
        check(SMALL, &[node("a", 1, 1000, 999, true), node("b", 1, 1000, 2000, false)], Some("b"));
    }

    #[test]
    fn nothing_fits_means_wait() {
        check(SMALL, &[], None);
        check(
            SMALL,
            &[node("a", 0, 1000, 9000, false), node("b", 1, 99, 9000, false), node("c", 1, 1000, 10, false)],
            None,
        );
    }

    #[test]
    fn ties_are_deterministic() {
        check(SMALL, &[node("b", 1, 1000, 5000, false), node("a", 1, 1000, 5000, false)], Some("a"));
    }

    #[test]
    fn bucket_refills_up_to_burst_and_bills() {
        let mut b = TokenBucket::new(3600, 100);
        assert_eq!(b.available(), 100);
        b.charge(80);
        assert_eq!(b.available(), 20);
        b.refill(Duration::from_secs(30));
        assert_eq!(b.available(), 50);
        b.refill(Duration::from_secs(3600));
        assert_eq!(b.available(), 100);
        b.charge(1000);
        assert_eq!(b.available(), 0);
    }
}
