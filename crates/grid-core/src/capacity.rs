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
    /// Why `limits` exceed these ceilings, if they do.
    pub fn refuse(&self, limits: &Limits) -> Option<String> {
        let over = |what: &str, asked: String, most: String| {
            Some(format!("job asks for {asked} of {what}, the most is {most}"))
        };
        if limits.fuel > self.fuel {
            return over("fuel", crate::format_fuel(limits.fuel), crate::format_fuel(self.fuel));
        }
        if limits.memory > self.memory {
            let (asked, most) = sizes(limits.memory, self.memory);
            return over("memory", asked, most);
        }
        if limits.timeout > self.timeout {
            return over("time", format!("{:?}", limits.timeout), format!("{:?}", self.timeout));
        }
        if limits.disk > self.disk {
            let (asked, most) = sizes(limits.disk, self.disk);
            return over("disk", asked, most);
        }
        None
    }

    /// Whether `limits` fit under these ceilings.
    pub fn admit(&self, limits: &Limits) -> bool {
        self.refuse(limits).is_none()
    }
}

/// Two sizes as people read them (`100.0 GiB`), or in bytes when rounding
/// would make them look the same.
fn sizes(asked: u64, most: u64) -> (String, String) {
    let iec = |n: u64| bytesize::ByteSize(n).display().iec().to_string();
    match (iec(asked), iec(most)) {
        (a, m) if a != m => (a, m),
        _ => (format!("{asked} bytes"), format!("{most} bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_name_what_is_over() {
        let c = Ceilings { fuel: 100, memory: 1000, timeout: Duration::from_secs(10), disk: 50 };
        let ok = Limits { fuel: 100, memory: 1000, timeout: Duration::from_secs(10), output: 1, disk: 50 };
        assert!(c.admit(&ok));
        assert!(c.refuse(&Limits { fuel: 101, ..ok }).unwrap().contains("fuel"));
        assert!(c.refuse(&Limits { memory: 1001, ..ok }).unwrap().contains("memory"));
        assert!(c.refuse(&Limits { timeout: Duration::from_secs(11), ..ok }).unwrap().contains("time"));
        assert!(c.refuse(&Limits { disk: 51, ..ok }).unwrap().contains("disk"));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        let c = Ceilings { fuel: 100, memory: 1 << 30, timeout: Duration::from_secs(10), disk: 256 << 20 };
        let ok = Limits { fuel: 100, memory: 1 << 30, timeout: Duration::from_secs(10), output: 1, disk: 256 << 20 };
        let refuse = |limits| c.refuse(&limits).unwrap();
        assert_eq!(refuse(Limits { memory: 100 << 30, ..ok }), "job asks for 100.0 GiB of memory, the most is 1.0 GiB");
        assert_eq!(refuse(Limits { disk: 1 << 30, ..ok }), "job asks for 1.0 GiB of disk, the most is 256.0 MiB");
        // Too close to tell apart once rounded: in bytes.
        assert_eq!(
            refuse(Limits { memory: (1 << 30) + 1, ..ok }),
            "job asks for 1073741825 bytes of memory, the most is 1073741824 bytes"
        );
    }
}
