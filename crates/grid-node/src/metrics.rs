//! The node's Prometheus metrics, which `grid-node --metrics ADDR` serves
//! at `/metrics`. The cache's counters are fed where it serves; the rest
//! is read from the ledger when scraped.

use crate::cache::CacheStats;
use crate::ledger::Snapshot;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The content type of what [`NodeMetrics::render`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A counter whose value is kept elsewhere (the ledger) and copied in at
/// each scrape.
#[derive(Debug, Clone, Default)]
struct Copied(Arc<AtomicU64>);

impl EncodeMetric for Copied {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&self.0.load(Ordering::Relaxed), None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// The node's metrics.
#[derive(Debug)]
pub struct NodeMetrics {
    registry: Registry,
    running: Gauge,
    memory: Gauge,
    fuel: Copied,
    jobs_run: Copied,
}

impl NodeMetrics {
    /// The node's metrics, with the cache's counters from `cache`.
    pub fn new(cache: &CacheStats) -> Self {
        let mut registry = Registry::default();
        let running = Gauge::default();
        registry.register("grid_node_jobs_running", "Jobs running on this node", running.clone());
        let memory = Gauge::default();
        registry.register_with_unit(
            "grid_node_memory_in_use",
            "Linear memory held for the jobs running (the memory limits they reserved)",
            Unit::Bytes,
            memory.clone(),
        );
        let fuel = Copied::default();
        registry.register("grid_node_fuel_burned", "Fuel burned by the jobs this node ran", fuel.clone());
        let jobs_run = Copied::default();
        registry.register("grid_node_jobs_run", "Jobs this node ran to their end", jobs_run.clone());
        registry.register_with_unit(
            "grid_node_compile",
            "Time compiling each module no cache held",
            Unit::Seconds,
            cache.compile.clone(),
        );
        registry.register(
            "grid_node_module_cache_hits",
            "Jobs whose code was found compiled, in memory or on disk",
            cache.hits.clone(),
        );
        registry.register("grid_node_module_cache_misses", "Jobs whose code had to be compiled", cache.misses.clone());
        Self { registry, running, memory, fuel, jobs_run }
    }

    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]), the
    /// ledger's as of `ledger`.
    pub fn render(&self, ledger: &Snapshot) -> String {
        self.running.set(i64::from(ledger.running));
        self.memory.set(ledger.memory.try_into().unwrap_or(i64::MAX));
        self.fuel.0.store(ledger.fuel_burned, Ordering::Relaxed);
        self.jobs_run.0.store(ledger.jobs_run, Ordering::Relaxed);
        let mut out = String::with_capacity(4 << 10);
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_core::{Capacity, Ceilings, FuelQuota, Limits};
    use std::time::Duration;

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no `{series}` in:\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn the_ledger_and_the_cache_show_in_the_metrics() {
        let capacity = Capacity {
            slots: 2,
            memory: 1000,
            disk: 100,
            fuel_quota: FuelQuota { rate_per_hour: 0, burst: 500 },
            per_job: Ceilings { fuel: 300, memory: 600, timeout: Duration::from_secs(60), disk: 100 },
        };
        let ledger = crate::ledger::Ledger::new(capacity);
        let limits = |memory| Limits { fuel: 100, memory, timeout: Duration::from_secs(1), output: 1, disk: 10 };
        ledger.reserve(&limits(300)).unwrap();
        ledger.reserve(&limits(200)).unwrap();
        ledger.release(&limits(300), 42);
        let stats = CacheStats::default();
        stats.hits.inc();
        stats.misses.inc_by(2);
        stats.compile.observe(0.2);
        let metrics = NodeMetrics::new(&stats);
        let text = metrics.render(&ledger.snapshot());
        assert_eq!(value(&text, "grid_node_jobs_running"), 1.0);
        assert_eq!(value(&text, "grid_node_memory_in_use_bytes"), 200.0);
        assert_eq!(value(&text, "grid_node_fuel_burned_total"), 42.0);
        assert_eq!(value(&text, "grid_node_jobs_run_total"), 1.0);
        assert_eq!(value(&text, "grid_node_module_cache_hits_total"), 1.0);
        assert_eq!(value(&text, "grid_node_module_cache_misses_total"), 2.0);
        assert_eq!(value(&text, "grid_node_compile_seconds_count"), 1.0);
        assert!(text.ends_with("# EOF\n"));
    }
}
