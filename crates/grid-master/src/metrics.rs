//! The master's Prometheus metrics, rendered at `/metrics`.

use crate::state::LiveState;

/// The master's counters and histograms; gauges are read from the live
/// state when scraped.
#[derive(Debug, Default)]
pub struct Metrics {}

impl Metrics {
    /// The metrics, all zero.
    pub fn new() -> Self {
        Self {}
    }

    /// Every metric in the Prometheus text format, gauges read from `live`.
    pub fn render(&self, _live: &LiveState) -> String {
        String::new()
    }
}
