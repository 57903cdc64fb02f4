//! What the lease does, as metrics: whether this master leads, its epoch,
//! how often it took and lost the lease, and how long renewals take. A
//! standby serves these alone on `/metrics`; a leader serves them with the
//! rest (registered into its [`crate::metrics::Metrics`]).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

/// The lease's metrics (clones share their values).
#[derive(Clone)]
pub struct LeaseMetrics {
    leader: Gauge,
    epoch: Gauge,
    taken: Counter,
    lost: Counter,
    renewal: Histogram,
    renewal_failures: Counter,
}

impl Default for LeaseMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Renewal latencies' buckets, in seconds: a millisecond to the lease.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

impl LeaseMetrics {
    /// Every metric at zero.
    pub fn new() -> Self {
        Self {
            leader: Gauge::default(),
            epoch: Gauge::default(),
            taken: Counter::default(),
            lost: Counter::default(),
            renewal: Histogram::new(BUCKETS),
            renewal_failures: Counter::default(),
        }
    }

    /// Registers every metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "grid_master_leader",
            "1 while this master holds the lease and leads, else 0",
            self.leader.clone(),
        );
        registry.register(
            "grid_lease_epoch",
            "The epoch of the lease this master holds (0 for a standby)",
            self.epoch.clone(),
        );
        registry.register(
            "grid_lease_taken",
            "Times this master took the lease and became the leader",
            self.taken.clone(),
        );
        registry.register("grid_lease_lost", "Times this master lost the lease and stepped down", self.lost.clone());
        registry.register_with_unit(
            "grid_lease_renewal",
            "How long each renewal of the lease took",
            Unit::Seconds,
            self.renewal.clone(),
        );
        registry.register(
            "grid_lease_renewal_failures",
            "Renewals that failed (the database out of reach, or the lease taken)",
            self.renewal_failures.clone(),
        );
    }

    /// The standby's `/metrics`: these alone.
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }

    /// This master took the lease at `epoch`.
    pub fn took(&self, epoch: u64) {
        self.leader.set(1);
        self.epoch.set(i64::try_from(epoch).unwrap_or(i64::MAX));
        self.taken.inc();
    }

    /// This master lost the lease, or gave it up.
    pub fn stepped_down(&self, lost: bool) {
        self.leader.set(0);
        self.epoch.set(0);
        if lost {
            self.lost.inc();
        }
    }

    /// A renewal took `took`; `ok` if it renewed the lease.
    pub fn renewed(&self, took: Duration, ok: bool) {
        self.renewal.observe(took.as_secs_f64());
        if !ok {
            self.renewal_failures.inc();
        }
    }

    /// Whether this master leads, as the gauge says.
    pub fn leading(&self) -> bool {
        self.leader.get() == 1
    }

    /// Times this master lost the lease.
    pub fn lost_total(&self) -> u64 {
        self.lost.get()
    }
}
