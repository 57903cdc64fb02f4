//! Medians, percentiles, min and max of repeated measurements.

use std::time::Duration;

/// Repeated measurements of one quantity.
#[derive(Default)]
pub struct Samples(Vec<f64>);

impl Samples {
    /// Adds a duration (kept in microseconds).
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1e6);
    }

    /// Adds a rate.
    pub fn push_rate(&mut self, r: f64) {
        self.0.push(r);
    }

    /// Adds a ratio.
    pub fn push_ratio(&mut self, r: f64) {
        self.0.push(r);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    fn at(v: &[f64], p: f64) -> f64 {
        v[((v.len() - 1) as f64 * p).round() as usize]
    }

    /// `median X (min Y, max Z, n runs)` of durations.
    pub fn summary(&self) -> String {
        let v = self.sorted();
        format!("median {} (min {}, max {}, {} runs)", us(Self::at(&v, 0.5)), us(v[0]), us(v[v.len() - 1]), v.len())
    }

    /// `p50 X, p99 Y, max Z` of durations.
    pub fn percentiles(&self) -> String {
        let v = self.sorted();
        format!(
            "p50 {}, p99 {}, max {} ({} runs)",
            us(Self::at(&v, 0.5)),
            us(Self::at(&v, 0.99)),
            us(v[v.len() - 1]),
            v.len()
        )
    }

    /// Median, min and max of rates.
    pub fn rate_summary(&self, unit: &str) -> String {
        let v = self.sorted();
        format!("median {:.0} {unit} (min {:.0}, max {:.0}, {} runs)", Self::at(&v, 0.5), v[0], v[v.len() - 1], v.len())
    }

    /// Median, min and max of ratios.
    pub fn ratio_summary(&self) -> String {
        let v = self.sorted();
        format!("median {:.3}x (min {:.3}x, max {:.3}x, {} pairs)", Self::at(&v, 0.5), v[0], v[v.len() - 1], v.len())
    }
}

fn us(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.3} s", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.2} ms", x / 1e3)
    } else {
        format!("{x:.0} µs")
    }
}
