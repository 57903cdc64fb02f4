//! What a node says of compiling a job's module, and the deadline that
//! follows from it: compiling is not charged against the job's timeout, but
//! a node may not hold a job for ever by saying it compiles.

use std::time::{Duration, Instant};

/// The longest the master lets a node compile a job's module before it
/// takes the job back: the node's own default `--compile-timeout`. Past it
/// (plus the grace) the job is overdue, whatever the node says.
pub const COMPILE_ALLOWANCE: Duration = Duration::from_secs(600);

/// Where an attempt's node is with compiling the job's module, as it said.
/// Each step is believed once: a node cannot restart the clock by saying
/// it compiles again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compiling {
    /// It has said nothing: the job's clock runs from its assignment.
    #[default]
    Unsaid,
    /// Compiling since then.
    Since(Instant),
    /// Compiled: the job's clock was restarted when it said so.
    Done,
}

impl Compiling {
    /// The node said it compiles (`done` false) or has compiled (`done`
    /// true), at `now`; a compile that ends restarts the attempt's clock
    /// (`assigned_at`). Returns whether anything changed.
    pub fn told(&mut self, done: bool, now: Instant, assigned_at: &mut Instant) -> bool {
        match (*self, done) {
            (Compiling::Unsaid, false) => *self = Compiling::Since(now),
            (Compiling::Since(_), true) => {
                *self = Compiling::Done;
                *assigned_at = now;
            }
            _ => return false,
        }
        true
    }

    /// Whether the node compiles now.
    pub fn now(self) -> bool {
        matches!(self, Compiling::Since(_))
    }

    /// When an attempt sent at `assigned_at` with `timeout` is overdue,
    /// `grace` past its end: while it compiles, the later of that and the
    /// compile allowance from the compile's start.
    pub fn deadline(self, assigned_at: Instant, timeout: Duration, grace: Duration) -> Instant {
        let ran = assigned_at + timeout + grace;
        match self {
            Compiling::Since(at) => ran.max(at + COMPILE_ALLOWANCE + grace),
            _ => ran,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compile_defers_the_deadline_and_its_end_restarts_the_clock_once() {
        let (timeout, grace) = (Duration::from_secs(1), Duration::from_secs(2));
        let t0 = Instant::now();
        let mut assigned = t0;
        let mut c = Compiling::default();
        assert_eq!(c.deadline(assigned, timeout, grace), t0 + Duration::from_secs(3));
        let later = t0 + Duration::from_secs(1);
        assert!(c.told(false, later, &mut assigned));
        assert!(c.now());
        assert_eq!(c.deadline(assigned, timeout, grace), later + COMPILE_ALLOWANCE + grace);
        // Said again, it is not believed again.
        assert!(!c.told(false, later + Duration::from_secs(100), &mut assigned));
        let done = t0 + Duration::from_secs(60);
        assert!(c.told(true, done, &mut assigned));
        assert!(!c.now());
        assert_eq!(assigned, done);
        assert_eq!(c.deadline(assigned, timeout, grace), done + Duration::from_secs(3));
        // Neither a second compile nor a second end moves it.
        assert!(!c.told(false, done + Duration::from_secs(1), &mut assigned));
        assert!(!c.told(true, done + Duration::from_secs(2), &mut assigned));
        assert_eq!(c.deadline(assigned, timeout, grace), done + Duration::from_secs(3));
    }

    #[test]
    fn an_end_never_started_is_not_believed() {
        let t0 = Instant::now();
        let mut assigned = t0;
        let mut c = Compiling::default();
        assert!(!c.told(true, t0 + Duration::from_secs(5), &mut assigned));
        assert_eq!(assigned, t0);
        assert_eq!(c, Compiling::Unsaid);
    }
}
