//! Each tenant's standing against its quota as the master keeps it live:
//! its quota, its fuel bucket and the fuel its running jobs reserve, and
//! what it has run so far. Dispatch asks it whether a tenant may start
//! another job; the record keeps the counts across restarts. No I/O.

use crate::model::TenantUse;
use crate::queue::{JobQueue, Running};
use grid_core::units::format_fuel;
use grid_core::{TenantQuota, TokenBucket};
use std::collections::HashMap;
use std::time::Instant;

/// One tenant as `grid-cli admin tenants` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantUsage {
    pub name: String,
    /// Jobs running now.
    pub running: u32,
    /// Jobs waiting now.
    pub queued: u32,
    /// Fuel its bucket holds now, less what its running jobs reserve;
    /// `None` with no fuel quota.
    pub fuel_available: Option<u64>,
    /// Jobs that ran on a node to their end, ever.
    pub jobs_run: u64,
    /// Fuel those jobs burned, ever.
    pub fuel_burned: u64,
}

/// Why a tenant may start no job now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// At its most running jobs.
    Running(u32),
    /// Its bucket holds `available`, less than the job's fuel limit `needs`;
    /// `rate` flows in per hour, up to `burst`.
    Fuel { available: u64, needs: u64, rate: u64, burst: u64 },
}

impl Held {
    /// The reason a job of `tenant` waits, as `grid-cli status` shows it.
    pub fn reason(&self, tenant: &str) -> String {
        match self {
            Held::Running(1) => format!("waiting: tenant `{tenant}` is at its 1 running job"),
            Held::Running(n) => format!("waiting: tenant `{tenant}` is at its {n} running jobs"),
            Held::Fuel { needs, burst, .. } if needs > burst => format!(
                "waiting: the job needs {} fuel, more than tenant `{tenant}`'s fuel quota ever holds ({}); \
                 it runs only if the quota is raised",
                format_fuel(*needs),
                format_fuel(*burst)
            ),
            Held::Fuel { available, needs, rate, .. } => format!(
                "waiting: tenant `{tenant}`'s fuel quota holds {} now; the job needs {} ({}/h flows in)",
                format_fuel(*available),
                format_fuel(*needs),
                format_fuel(*rate)
            ),
        }
    }
}

#[derive(Debug)]
struct Tenant {
    quota: TenantQuota,
    bucket: Option<TokenBucket>,
    refilled_at: Instant,
    /// The fuel limits of its running jobs, reserved from its bucket.
    reserved: u64,
    jobs_run: u64,
    fuel_burned: u64,
}

impl Tenant {
    fn new(now: Instant) -> Self {
        Tenant {
            quota: TenantQuota::default(),
            bucket: None,
            refilled_at: now,
            reserved: 0,
            jobs_run: 0,
            fuel_burned: 0,
        }
    }

    /// Fuel free in its bucket as of `now`, less what is reserved; `None`
    /// with no fuel quota.
    fn fuel_free(&self, now: Instant) -> Option<u64> {
        let mut bucket = self.bucket.clone()?;
        bucket.refill(now.saturating_duration_since(self.refilled_at));
        Some(bucket.available().saturating_sub(self.reserved))
    }
}

/// Every tenant the master knows of: those with a quota, and those that
/// have run jobs.
#[derive(Debug, Default)]
pub struct Tenants {
    map: HashMap<String, Tenant>,
}

impl Tenants {
    /// Takes back what the record counted.
    pub fn recall(&mut self, used: Vec<TenantUse>) {
        let now = Instant::now();
        for u in used {
            let t = self.map.entry(u.name).or_insert_with(|| Tenant::new(now));
            t.jobs_run = u.jobs_run;
            t.fuel_burned = u.fuel_burned;
        }
    }

    /// Sets `name`'s quota. A new fuel quota starts with a full bucket; a
    /// changed one keeps its level, up to the new burst.
    pub fn set_quota(&mut self, name: &str, quota: TenantQuota, now: Instant) {
        let t = self.entry(name, now);
        t.quota = quota;
        t.bucket = quota.fuel.map(|fuel| {
            let mut bucket = TokenBucket::new(fuel.rate_per_hour, fuel.burst);
            if let Some(old) = &mut t.bucket {
                old.refill(now.saturating_duration_since(t.refilled_at));
                bucket.set_available(old.available());
            }
            bucket
        });
        t.refilled_at = t.refilled_at.max(now);
    }

    /// `name`'s quota, if it has one.
    pub fn quota(&self, name: &str) -> Option<&TenantQuota> {
        self.map.get(name).map(|t| &t.quota)
    }

    fn entry(&mut self, name: &str, now: Instant) -> &mut Tenant {
        if !self.map.contains_key(name) {
            self.map.insert(name.to_owned(), Tenant::new(now));
        }
        self.map.get_mut(name).expect("just inserted")
    }

    /// Adds to every bucket what flowed in until `now`.
    pub fn refill(&mut self, now: Instant) {
        for t in self.map.values_mut() {
            if let Some(bucket) = &mut t.bucket {
                bucket.refill(now.saturating_duration_since(t.refilled_at));
            }
            t.refilled_at = t.refilled_at.max(now);
        }
    }

    /// A job of `name` with a fuel limit of `fuel` started: its fuel is
    /// reserved.
    pub fn started(&mut self, name: &str, fuel: u64, now: Instant) {
        let t = self.entry(name, now);
        t.reserved = t.reserved.saturating_add(fuel);
    }

    /// A job of `name` with a fuel limit of `fuel` stopped running: its
    /// reservation is released, and with `burned` (it ran to its end on
    /// its node) its bucket is billed that and the job is counted.
    pub fn stopped(&mut self, name: &str, fuel: u64, burned: Option<u64>, now: Instant) {
        let t = self.entry(name, now);
        t.reserved = t.reserved.saturating_sub(fuel);
        if let Some(burned) = burned {
            t.jobs_run = t.jobs_run.saturating_add(1);
            t.fuel_burned = t.fuel_burned.saturating_add(burned);
            self.bill(name, burned, now);
        }
    }

    /// Takes `fuel` out of `name`'s bucket, if it has one.
    pub fn bill(&mut self, name: &str, fuel: u64, now: Instant) {
        let Some(t) = self.map.get_mut(name) else { return };
        if let Some(bucket) = &mut t.bucket {
            bucket.refill(now.saturating_duration_since(t.refilled_at));
            bucket.charge(fuel);
        }
        t.refilled_at = t.refilled_at.max(now);
    }

    /// Every tenant known and the fuel its running jobs reserve.
    pub fn reserved(&self) -> impl Iterator<Item = (&str, u64)> {
        self.map.iter().map(|(name, t)| (name.as_str(), t.reserved))
    }

    /// Why tenant `name`, with `running` jobs running, may start no job
    /// at all now; `None` if it may start some.
    pub fn held(&self, name: &str, running: usize) -> Option<Held> {
        let max = self.map.get(name)?.quota.max_running?;
        (running >= max as usize).then_some(Held::Running(max))
    }

    /// Why tenant `name` may not start a job needing `fuel` now, given
    /// `planned` fuel already promised in this dispatch; `None` if its
    /// bucket holds enough (or it has no fuel quota).
    pub fn lacks_fuel(&self, name: &str, fuel: u64, planned: u64, now: Instant) -> Option<Held> {
        let t = self.map.get(name)?;
        let free = t.fuel_free(now)?.saturating_sub(planned);
        let (rate, burst) = t.quota.fuel.map_or((0, 0), |q| (q.rate_per_hour, q.burst));
        (free < fuel).then_some(Held::Fuel { available: free, needs: fuel, rate, burst })
    }

    /// Why a job of `name` needing `fuel` waits because of its tenant's
    /// quota; `None` if the quota lets it start.
    pub fn waiting(&self, name: &str, running: usize, fuel: u64, now: Instant) -> Option<Held> {
        self.held(name, running).or_else(|| self.lacks_fuel(name, fuel, 0, now))
    }

    /// Every tenant with a quota, jobs waiting or running, or jobs run, by
    /// name.
    pub fn usage<Id: Clone + Eq + std::hash::Hash>(
        &self,
        queue: &JobQueue<Id>,
        running: &Running,
        now: Instant,
    ) -> Vec<TenantUsage> {
        let mut names: Vec<&str> = self.map.keys().map(String::as_str).collect();
        names.extend(queue.tenants().map(|(t, _)| t));
        names.extend(running.tenants());
        names.sort_unstable();
        names.dedup();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        names
            .into_iter()
            .map(|name| {
                let t = self.map.get(name);
                TenantUsage {
                    name: name.to_owned(),
                    running: count(running.of(name)),
                    queued: count(queue.len_of(name)),
                    fuel_available: t.and_then(|t| t.fuel_free(now)),
                    jobs_run: t.map_or(0, |t| t.jobs_run),
                    fuel_burned: t.map_or(0, |t| t.fuel_burned),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TenantUse;
    use grid_core::FuelQuota;
    use std::time::Duration;

    #[test]
    fn a_fuel_bucket_reserves_while_jobs_run_and_bills_what_they_burned() {
        let now = Instant::now();
        let mut tenants = Tenants::default();
        let fuel = FuelQuota { rate_per_hour: 3600, burst: 100 };
        tenants.set_quota("alice", TenantQuota { fuel: Some(fuel), ..Default::default() }, now);
        assert_eq!(tenants.lacks_fuel("alice", 100, 0, now), None);
        tenants.started("alice", 80, now);
        assert_eq!(
            tenants.lacks_fuel("alice", 30, 0, now),
            Some(Held::Fuel { available: 20, needs: 30, rate: 3600, burst: 100 })
        );
        assert_eq!(tenants.lacks_fuel("alice", 20, 0, now), None);
        assert!(tenants.lacks_fuel("alice", 20, 1, now).is_some(), "fuel planned in this dispatch counts");
        // It burned 50 of its 80: 50 left, and 10 flow in over ten seconds.
        tenants.stopped("alice", 80, Some(50), now);
        assert_eq!(
            tenants.lacks_fuel("alice", 51, 0, now).map(|h| h.reason("alice")).as_deref(),
            Some("waiting: tenant `alice`'s fuel quota holds 50 now; the job needs 51 (3.6k/h flows in)")
        );
        assert_eq!(tenants.lacks_fuel("alice", 60, 0, now + Duration::from_secs(10)), None);
        // A job lost or handed back is not billed.
        tenants.started("alice", 60, now);
        tenants.stopped("alice", 60, None, now);
        let usage = tenants.usage(&JobQueue::<u32>::new(), &Running::default(), now);
        assert_eq!(
            usage,
            [TenantUsage {
                name: "alice".into(),
                fuel_available: Some(50),
                jobs_run: 1,
                fuel_burned: 50,
                ..Default::default()
            }]
        );
        // Tenants without a fuel quota are never held for fuel.
        assert_eq!(tenants.lacks_fuel("bob", u64::MAX, 0, now), None);
    }

    #[test]
    fn a_changed_fuel_quota_keeps_the_bucket_s_level() {
        let now = Instant::now();
        let mut tenants = Tenants::default();
        let quota = |burst| TenantQuota { fuel: Some(FuelQuota { rate_per_hour: 1, burst }), ..Default::default() };
        tenants.set_quota("a", quota(100), now);
        tenants.started("a", 0, now);
        tenants.stopped("a", 0, Some(70), now);
        tenants.set_quota("a", quota(1000), now);
        assert!(tenants.lacks_fuel("a", 31, 0, now).is_some(), "a raised quota refilled the bucket");
        tenants.set_quota("a", quota(10), now);
        assert_eq!(tenants.lacks_fuel("a", 10, 0, now), None);
        // A job asked for more before the quota was lowered: it says why it
        // may wait for ever.
        assert_eq!(
            tenants.lacks_fuel("a", 11, 0, now).map(|h| h.reason("a")).as_deref(),
            Some(
                "waiting: the job needs 11 fuel, more than tenant `a`'s fuel quota ever holds (10); it runs only if \
                 the quota is raised"
            )
        );
    }

    #[test]
    fn usage_lists_every_tenant_known_with_its_counts() {
        let now = Instant::now();
        let mut tenants = Tenants::default();
        tenants.recall(vec![TenantUse { name: "old".into(), jobs_run: 7, fuel_burned: 9 }]);
        tenants.set_quota("q", TenantQuota { max_running: Some(2), ..Default::default() }, now);
        let mut queue = JobQueue::new();
        queue.push_back(1, 0, "waiting");
        queue.push_back(2, 0, "waiting");
        let running = Running::count(["busy", "q", "q"]);
        let shown: Vec<_> = tenants
            .usage(&queue, &running, now)
            .into_iter()
            .map(|u| (u.name, u.running, u.queued, u.jobs_run, u.fuel_burned))
            .collect();
        assert_eq!(
            shown,
            [
                ("busy".into(), 1, 0, 0, 0),
                ("old".into(), 0, 0, 7, 9),
                ("q".into(), 2, 0, 0, 0),
                ("waiting".into(), 0, 2, 0, 0)
            ]
        );
        assert_eq!(tenants.held("q", 2), Some(Held::Running(2)));
        assert_eq!(tenants.held("q", 1), None);
        assert_eq!(Held::Running(2).reason("q"), "waiting: tenant `q` is at its 2 running jobs");
    }
}
