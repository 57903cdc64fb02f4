//! A tenant's quotas: what the master holds each tenant to. Per-job maxima
//! refuse a submission; running and queued bounds and the fuel rate make
//! jobs wait or refuse them, as the master decides.

use crate::job::Limits;
use crate::units::{FuelQuota, format_duration, format_fuel, format_size};
use std::time::Duration;

/// A tenant's quotas; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantQuota {
    /// Jobs running at once; more wait.
    pub max_running: Option<u32>,
    /// Jobs waiting at once; more are refused.
    pub max_queued: Option<u32>,
    /// Fuel per period, as a token bucket billed what jobs burned; a job
    /// waits until the bucket holds its fuel limit.
    pub fuel: Option<FuelQuota>,
    /// The most fuel one job may ask for.
    pub max_job_fuel: Option<u64>,
    /// The most linear memory one job may ask for.
    pub max_job_memory: Option<u64>,
    /// The longest timeout one job may ask for.
    pub max_job_timeout: Option<Duration>,
}

impl TenantQuota {
    /// Why tenant `name` may not submit a job with `limits`, naming every
    /// per-job maximum it is over; `None` if it may.
    pub fn refuse(&self, name: &str, limits: &Limits) -> Option<String> {
        let mut over = Vec::new();
        if let Some(max) = self.max_job_fuel
            && limits.fuel > max
        {
            over.push(format!("{} fuel (at most {})", format_fuel(limits.fuel), format_fuel(max)));
        }
        if let Some(max) = self.max_job_memory
            && limits.memory > max
        {
            over.push(format!("{} of memory (at most {})", format_size(limits.memory), format_size(max)));
        }
        if let Some(max) = self.max_job_timeout
            && limits.timeout > max
        {
            over.push(format!("a timeout of {} (at most {})", format_duration(limits.timeout), format_duration(max)));
        }
        // A job that needs more fuel than the bucket ever holds would wait
        // for ever.
        if let Some(fuel) = self.fuel
            && limits.fuel > fuel.burst
        {
            over.push(format!(
                "{} fuel, more than the tenant's fuel quota ever holds ({})",
                format_fuel(limits.fuel),
                format_fuel(fuel.burst)
            ));
        }
        if over.is_empty() {
            return None;
        }
        Some(format!("the job asks for {}: over tenant `{name}`'s per-job quota", over.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_quota_refuses_nothing() {
        assert_eq!(TenantQuota::default().refuse("alice", &Limits::default()), None);
    }

    #[test]
    fn every_maximum_passed_is_named() {
        let q = TenantQuota {
            max_job_fuel: Some(1_000),
            max_job_memory: Some(1 << 20),
            max_job_timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let why = q.refuse("alice", &Limits::default()).unwrap();
        assert!(why.contains("10G fuel (at most 1k)"), "{why}");
        assert!(why.contains("512MiB of memory (at most 1MiB)"), "{why}");
        assert!(why.contains("a timeout of 5m (at most 1s)"), "{why}");
        assert!(why.contains("tenant `alice`"), "{why}");
        let within = Limits { fuel: 1_000, memory: 1 << 20, timeout: Duration::from_secs(1), ..Limits::default() };
        assert_eq!(q.refuse("alice", &within), None);
    }

    #[test]
    fn a_job_larger_than_the_fuel_bucket_is_refused() {
        let q = TenantQuota { fuel: Some(FuelQuota { rate_per_hour: 100, burst: 100 }), ..Default::default() };
        assert!(q.refuse("bob", &Limits { fuel: 101, ..Limits::default() }).is_some());
        assert_eq!(q.refuse("bob", &Limits { fuel: 100, ..Limits::default() }), None);
    }
}
