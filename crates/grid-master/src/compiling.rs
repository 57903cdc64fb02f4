//! What a node says of compiling a job's module, and the deadline that
//! follows from it: compiling is not charged against the job's timeout, but
//! a node may not hold a job for ever by saying it compiles.
//!
//! The compile is counted from the attempt's assignment, whenever the node
//! says it started, and may take at most the node's compile allowance (its
//! `--compile-timeout` as it registered it, at most [`MAX_ALLOWANCE`]). Once
//! the node says it compiled, the job's timeout runs from then, but never
//! from later than the allowance's end. So a node holds an attempt at most
//! allowance + timeout + grace after its assignment, whatever it says.

use std::time::{Duration, Instant};

/// The compile allowance of a node that registered none: the node's own
/// default `--compile-timeout`.
pub const DEFAULT_ALLOWANCE: Duration = Duration::from_secs(600);

/// The longest compile allowance the master believes of any node.
pub const MAX_ALLOWANCE: Duration = Duration::from_secs(3600);

/// The allowance of a node that registered `compile_timeout` (zero for
/// none).
pub fn allowance(compile_timeout: Duration) -> Duration {
    match compile_timeout.is_zero() {
        true => DEFAULT_ALLOWANCE,
        false => compile_timeout.min(MAX_ALLOWANCE),
    }
}

/// Where an attempt's node is with compiling the job's module, as it said.
/// Each step is believed once: a node cannot restart the clock by saying
/// it compiles again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compiling {
    /// It has said nothing: the job's clock runs from its assignment.
    #[default]
    Unsaid,
    /// It compiles (since its assignment, for the deadline).
    Now,
    /// It compiled: the job's clock was restarted when it said so.
    Done,
}

impl Compiling {
    /// The node said it compiles (`done` false) or has compiled (`done`
    /// true), at `now`; a compile that ends restarts the attempt's clock
    /// (`assigned_at`), at the latest at the end of `allowance` from it.
    /// Returns whether anything changed.
    pub fn told(&mut self, done: bool, now: Instant, assigned_at: &mut Instant, allowance: Duration) -> bool {
        match (*self, done) {
            (Compiling::Unsaid, false) => *self = Compiling::Now,
            (Compiling::Now, true) => {
                *self = Compiling::Done;
                *assigned_at = now.min(*assigned_at + allowance);
            }
            _ => return false,
        }
        true
    }

    /// Whether the node compiles now.
    pub fn now(self) -> bool {
        self == Compiling::Now
    }

    /// When an attempt sent at `assigned_at` with `timeout` is overdue,
    /// `grace` past its end: while it compiles, the later of that and the
    /// end of the node's compile `allowance`.
    pub fn deadline(self, assigned_at: Instant, timeout: Duration, grace: Duration, allowance: Duration) -> Instant {
        let ran = assigned_at + timeout + grace;
        match self {
            Compiling::Now => ran.max(assigned_at + allowance + grace),
            _ => ran,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(1);
    const GRACE: Duration = Duration::from_secs(2);
    const ALLOWANCE: Duration = Duration::from_secs(600);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_compile_defers_the_deadline_and_its_end_restarts_the_clock_once() {
        let t0 = Instant::now();
        let mut assigned = t0;
        let mut c = Compiling::default();
        assert_eq!(c.deadline(assigned, TIMEOUT, GRACE, ALLOWANCE), t0 + secs(3));
        assert!(c.told(false, t0 + secs(1), &mut assigned, ALLOWANCE));
        assert!(c.now());
        assert_eq!(c.deadline(assigned, TIMEOUT, GRACE, ALLOWANCE), t0 + ALLOWANCE + GRACE);
        // Said again, it is not believed again.
        assert!(!c.told(false, t0 + secs(100), &mut assigned, ALLOWANCE));
        let done = t0 + secs(60);
        assert!(c.told(true, done, &mut assigned, ALLOWANCE));
        assert!(!c.now());
        assert_eq!(assigned, done);
        assert_eq!(c.deadline(assigned, TIMEOUT, GRACE, ALLOWANCE), done + secs(3));
        // Neither a second compile nor a second end moves it.
        assert!(!c.told(false, done + secs(1), &mut assigned, ALLOWANCE));
        assert!(!c.told(true, done + secs(2), &mut assigned, ALLOWANCE));
        assert_eq!(c.deadline(assigned, TIMEOUT, GRACE, ALLOWANCE), done + secs(3));
    }

    #[test]
    fn a_compile_said_late_gains_no_more_than_the_allowance_from_assignment() {
        let t0 = Instant::now();
        let mut assigned = t0;
        let mut c = Compiling::default();
        // Just before its deadline the node says it compiles ...
        assert!(c.told(false, t0 + secs(2), &mut assigned, ALLOWANCE));
        assert_eq!(c.deadline(assigned, TIMEOUT, GRACE, ALLOWANCE), t0 + ALLOWANCE + GRACE);
        // ... and that it compiled, long past the allowance: its clock
        // restarts at the allowance's end, not later.
        assert!(c.told(true, t0 + ALLOWANCE + secs(1), &mut assigned, ALLOWANCE));
        assert_eq!(c.deadline(assigned, TIMEOUT, GRACE, ALLOWANCE), t0 + ALLOWANCE + TIMEOUT + GRACE);
    }

    #[test]
    fn an_end_never_started_is_not_believed() {
        let t0 = Instant::now();
        let mut assigned = t0;
        let mut c = Compiling::default();
        assert!(!c.told(true, t0 + secs(5), &mut assigned, ALLOWANCE));
        assert_eq!(assigned, t0);
        assert_eq!(c, Compiling::Unsaid);
    }

    #[test]
    fn a_node_s_allowance_is_its_compile_timeout_within_the_master_s_bound() {
        assert_eq!(allowance(Duration::ZERO), DEFAULT_ALLOWANCE);
        assert_eq!(allowance(secs(30)), secs(30));
        assert_eq!(allowance(secs(100_000)), MAX_ALLOWANCE);
    }
}
