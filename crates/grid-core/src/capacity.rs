//! What a volunteer's node gives the grid, and the most it gives one job.

use crate::{FuelQuota, Limits};
use std::time::Duration;

/// A node's capacity as it registers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// Jobs run at once.
    pub slots: u32,
    /// Linear memory for all running jobs together.
    pub memory: u64,
    /// Scratch space for all running jobs together.
    pub disk: u64,
    /// The fuel quota.
    pub fuel_quota: FuelQuota,
    /// The most any one job may ask for.
    pub per_job: Ceilings,
}

/// The most one job may ask of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ceilings {
    /// Fuel.
    pub fuel: u64,
    /// Linear memory.
    pub memory: u64,
    /// Wall-clock time.
    pub timeout: Duration,
    /// Scratch space.
    pub disk: u64,
}

impl Ceilings {
    /// Every limit in `limits` over these ceilings, in the order fuel,
    /// memory, time, disk.
    pub fn over(&self, limits: &Limits) -> Vec<Over> {
        let mut over = Vec::new();
        if limits.fuel > self.fuel {
            over.push(Over::fuel(limits.fuel, self.fuel));
        }
        if limits.memory > self.memory {
            over.push(Over::size("memory", limits.memory, self.memory));
        }
        if limits.timeout > self.timeout {
            over.push(Over::time(limits.timeout, self.timeout));
        }
        if limits.disk > self.disk {
            over.push(Over::size("disk", limits.disk, self.disk));
        }
        over
    }

    /// Why `limits` exceed these ceilings, naming every limit over, if
    /// they do.
    pub fn refuse(&self, limits: &Limits) -> Option<String> {
        describe(&self.over(limits))
    }

    /// Whether `limits` fit under these ceilings.
    pub fn admit(&self, limits: &Limits) -> bool {
        self.over(limits).is_empty()
    }
}

impl Capacity {
    /// Every limit in `limits` that one job may never have on this node:
    /// over its per-job ceilings, or over all the memory or scratch space
    /// it gives.
    pub fn over(&self, limits: &Limits) -> Vec<Over> {
        let most = Ceilings {
            memory: self.per_job.memory.min(self.memory),
            disk: self.per_job.disk.min(self.disk),
            ..self.per_job
        };
        most.over(limits)
    }
}

/// One limit a job asks for over what a node gives one job, both written
/// as people write them (`64MiB`, `5m`, `1.5G`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Over {
    /// `fuel`, `memory`, `time` or `disk`.
    pub what: &'static str,
    /// What the job asks for.
    pub asked: String,
    /// The most the node gives.
    pub most: String,
}

impl Over {
    fn fuel(asked: u64, most: u64) -> Self {
        let (a, m) = (crate::format_fuel(asked), crate::format_fuel(most));
        // Rounded alike: exact, then.
        let (asked, most) = if a == m {
            (crate::units::format_fuel_exact(asked), crate::units::format_fuel_exact(most))
        } else {
            (a, m)
        };
        Over { what: "fuel", asked, most }
    }

    fn size(what: &'static str, asked: u64, most: u64) -> Self {
        Over { what, asked: crate::units::format_size(asked), most: crate::units::format_size(most) }
    }

    fn time(asked: Duration, most: Duration) -> Self {
        let f = crate::units::format_duration;
        Over { what: "time", asked: f(asked), most: f(most) }
    }
}

/// `job asks for 1GiB of memory (the most is 64MiB) and 10m of time (the
/// most is 5m)`; `None` when nothing is over.
pub fn describe(over: &[Over]) -> Option<String> {
    let parts: Vec<String> =
        over.iter().map(|o| format!("{} of {} (the most is {})", o.asked, o.what, o.most)).collect();
    let list = match parts.as_slice() {
        [] => return None,
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    };
    Some(format!("job asks for {list}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Ceilings = Ceilings { fuel: 100, memory: 1000, timeout: Duration::from_secs(10), disk: 50 };
    const OK: Limits = Limits { fuel: 100, memory: 1000, timeout: Duration::from_secs(10), output: 1, disk: 50 };

    #[test]
    fn ceilings_name_what_is_over() {
        assert!(C.admit(&OK));
        assert_eq!(C.refuse(&OK), None);
        assert!(C.refuse(&Limits { fuel: 101, ..OK }).unwrap().contains("fuel"));
        assert!(C.refuse(&Limits { memory: 1001, ..OK }).unwrap().contains("memory"));
        assert!(C.refuse(&Limits { timeout: Duration::from_secs(11), ..OK }).unwrap().contains("time"));
        assert!(C.refuse(&Limits { disk: 51, ..OK }).unwrap().contains("disk"));
    }

    #[test]
    fn a_refusal_names_every_limit_over_in_the_units_people_write() {
        let c = Ceilings { fuel: 1_000_000_000, memory: 64 << 20, timeout: Duration::from_secs(300), disk: 256 << 20 };
        let ok = Limits { fuel: 1_000, memory: 1 << 20, timeout: Duration::from_secs(1), output: 1, disk: 1 };
        let refuse = |limits| c.refuse(&limits).unwrap();
        assert_eq!(refuse(Limits { fuel: 1_500_000_000, ..ok }), "job asks for 1.5G of fuel (the most is 1G)");
        assert_eq!(
            refuse(Limits { memory: 1 << 30, timeout: Duration::from_secs(600), disk: 1 << 30, ..ok }),
            "job asks for 1GiB of memory (the most is 64MiB), 10m of time (the most is 5m) \
             and 1GiB of disk (the most is 256MiB)"
        );
        assert_eq!(
            refuse(Limits { memory: 65 << 20, timeout: Duration::from_secs(301), ..ok }),
            "job asks for 65MiB of memory (the most is 64MiB) and 5m 1s of time (the most is 5m)"
        );
        // Too close to tell apart once rounded: exact.
        assert_eq!(refuse(Limits { fuel: 1_000_000_001, ..ok }), "job asks for 1000000001 of fuel (the most is 1G)");
    }

    #[test]
    fn what_a_node_gives_in_all_bounds_one_job_too() {
        let cap = Capacity {
            slots: 1,
            memory: 32 << 20,
            disk: 1 << 40,
            fuel_quota: crate::FuelQuota { rate_per_hour: 1, burst: 1 },
            per_job: Ceilings { memory: 64 << 20, ..C },
        };
        let over = cap.over(&Limits { memory: 48 << 20, ..OK });
        assert_eq!(over, [Over { what: "memory", asked: "48MiB".into(), most: "32MiB".into() }]);
        assert!(cap.over(&OK).is_empty());
    }
}
