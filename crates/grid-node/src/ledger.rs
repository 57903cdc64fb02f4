//! The node's own account of what it has given: slots, memory, scratch
//! space and fuel reserved by running jobs, the fuel bucket, and totals. The
//! node refuses a job that does not fit, whatever the master thought.

use grid_core::{Capacity, Limits, TokenBucket};
use std::sync::Mutex;
use std::time::Instant;

/// What the ledger holds at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Jobs running.
    pub running: u32,
    /// Memory reserved by running jobs.
    pub memory: u64,
    /// Scratch space reserved by running jobs.
    pub disk: u64,
    /// Fuel in the bucket.
    pub fuel_available: u64,
    /// Jobs run since start.
    pub jobs_run: u64,
    /// Fuel burned since start.
    pub fuel_burned: u64,
    /// Shutting down.
    pub draining: bool,
}

#[derive(Debug)]
struct State {
    bucket: TokenBucket,
    refilled_at: Instant,
    running: u32,
    memory: u64,
    disk: u64,
    fuel: u64,
    jobs_run: u64,
    fuel_burned: u64,
    draining: bool,
}

/// The node's ledger.
#[derive(Debug)]
pub struct Ledger {
    capacity: Capacity,
    state: Mutex<State>,
}

impl Ledger {
    /// A ledger for `capacity`, with a full fuel bucket.
    pub fn new(capacity: Capacity) -> Self {
        let quota = capacity.fuel_quota;
        let state = State {
            bucket: TokenBucket::new(quota.rate_per_hour, quota.burst),
            refilled_at: Instant::now(),
            running: 0,
            memory: 0,
            disk: 0,
            fuel: 0,
            jobs_run: 0,
            fuel_burned: 0,
            draining: false,
        };
        Self { capacity, state: Mutex::new(state) }
    }

    /// What the node gives.
    pub fn capacity(&self) -> &Capacity {
        &self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(s.refilled_at);
        s.bucket.refill(elapsed);
        s.refilled_at = now;
        s
    }

    /// Claims what a job may use, or says why it does not fit.
    pub fn reserve(&self, limits: &Limits) -> Result<(), String> {
        let c = &self.capacity;
        if let Some(why) = c.per_job.refuse(limits) {
            return Err(why);
        }
        let mut s = self.lock();
        if s.draining {
            return Err("the node is shutting down".into());
        }
        if s.running >= c.slots {
            return Err(format!("all {} slots busy", c.slots));
        }
        if s.memory + limits.memory > c.memory {
            return Err(format!("job needs {} bytes of memory, {} free", limits.memory, c.memory - s.memory));
        }
        if s.disk + limits.disk > c.disk {
            return Err(format!("job needs {} bytes of disk, {} free", limits.disk, c.disk - s.disk));
        }
        let spare = s.bucket.available().saturating_sub(s.fuel);
        if limits.fuel > spare {
            return Err(format!("job needs {} fuel, the quota has {} left", limits.fuel, spare));
        }
        s.running += 1;
        s.memory += limits.memory;
        s.disk += limits.disk;
        s.fuel += limits.fuel;
        Ok(())
    }

    /// Frees a job's reservation and bills the fuel it burned.
    pub fn release(&self, limits: &Limits, burned: u64) {
        let mut s = self.lock();
        s.running -= 1;
        s.memory -= limits.memory;
        s.disk -= limits.disk;
        s.fuel -= limits.fuel;
        s.bucket.charge(burned);
        s.jobs_run += 1;
        s.fuel_burned += burned;
    }

    /// Stops taking jobs.
    pub fn drain(&self) {
        self.lock().draining = true;
    }

    /// The ledger now.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.lock();
        Snapshot {
            running: s.running,
            memory: s.memory,
            disk: s.disk,
            fuel_available: s.bucket.available(),
            jobs_run: s.jobs_run,
            fuel_burned: s.fuel_burned,
            draining: s.draining,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_core::{Ceilings, FuelQuota};
    use std::time::Duration;

    fn capacity() -> Capacity {
        Capacity {
            slots: 2,
            memory: 1000,
            disk: 100,
            fuel_quota: FuelQuota { rate_per_hour: 0, burst: 500 },
            per_job: Ceilings { fuel: 300, memory: 600, timeout: Duration::from_secs(60), disk: 100 },
        }
    }

    fn limits(fuel: u64, memory: u64) -> Limits {
        Limits { fuel, memory, timeout: Duration::from_secs(1), output: 1, disk: 10 }
    }

    #[test]
    fn each_quota_holds() {
        let ledger = Ledger::new(capacity());
        assert!(ledger.reserve(&limits(301, 1)).unwrap_err().contains("fuel"), "per-job fuel ceiling");
        assert!(ledger.reserve(&limits(1, 601)).unwrap_err().contains("memory"), "per-job memory ceiling");
        ledger.reserve(&limits(300, 600)).unwrap();
        assert!(ledger.reserve(&limits(10, 500)).unwrap_err().contains("memory"), "total memory");
        ledger.reserve(&limits(200, 100)).unwrap();
        assert!(ledger.reserve(&limits(1, 1)).unwrap_err().contains("slots"), "slots");
        // Billed what they burned, not what they reserved.
        ledger.release(&limits(300, 600), 100);
        ledger.release(&limits(200, 100), 50);
        let snap = ledger.snapshot();
        assert_eq!(
            (snap.running, snap.memory, snap.fuel_available, snap.jobs_run, snap.fuel_burned),
            (0, 0, 350, 2, 150)
        );
        // The bucket (no refill here) now holds 350: a 300 job fits once.
        ledger.reserve(&limits(300, 1)).unwrap();
        assert!(ledger.reserve(&limits(100, 1)).unwrap_err().contains("quota"), "fuel quota");
        ledger.drain();
        ledger.release(&limits(300, 1), 0);
        assert!(ledger.reserve(&limits(1, 1)).unwrap_err().contains("shutting down"));
    }
}
