//! Adaptive trust, as BOINC's adaptive replication does it: a node's
//! results are checked against other replicas until enough of them in a
//! row agreed; past that, a job placed on it runs alone with a probability
//! that grows with its streak, so verification costs less and less on an
//! honest grid. A disagreement (or a job held past its deadline) sets the
//! streak back to zero and counts a strike; enough strikes quarantine the
//! node until an admin clears it. A node still earning trust gets a bounded
//! share of the work, whatever capacity it claims.
//!
//! Pure functions of a [`VerifyPolicy`] and a node's [`Standing`]; the live
//! state keeps the standings (in the node histories) and calls these.

use crate::model::Standing;

/// How the master verifies nodes' results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// Every result is taken as the node reports it (a grid of one's own
    /// machines). Jobs asking for replicas still get them.
    Off,
    /// New nodes' results are checked by a second replica; trusted nodes'
    /// are checked now and then.
    Adaptive,
    /// Every job on a public node runs on two nodes at least.
    Always,
}

/// The operator's verification policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyPolicy {
    pub mode: VerifyMode,
    /// Agreeing results in a row past which a node may run jobs alone.
    pub trust_after: u32,
    /// The most replicas one job runs, those that disagreed included.
    pub max_replicas: u32,
    /// Strikes (disagreements, overdue jobs) that quarantine a node.
    pub quarantine_after: u32,
    /// Slots a node with no streak may fill, whatever it claims; each
    /// agreeing result in its streak adds one, until it is trusted.
    pub untrusted_slots: u32,
}

impl VerifyPolicy {
    pub const DEFAULT_TRUST_AFTER: u32 = 10;
    pub const DEFAULT_MAX_REPLICAS: u32 = 5;
    pub const DEFAULT_QUARANTINE_AFTER: u32 = 3;
    pub const DEFAULT_UNTRUSTED_SLOTS: u32 = 2;

    /// No verification: every node is taken at its word (the embedded
    /// grid, a grid of one's own machines).
    pub fn off() -> Self {
        Self { mode: VerifyMode::Off, ..Self::default() }
    }

    /// Whether node results are verified at all.
    pub fn verifies(&self) -> bool {
        self.mode != VerifyMode::Off
    }

    /// Whether a node standing at `s` is past the threshold (or the
    /// policy trusts everyone).
    pub fn trusted(&self, s: &Standing) -> bool {
        match self.mode {
            VerifyMode::Off => true,
            VerifyMode::Adaptive => s.streak >= self.trust_after,
            VerifyMode::Always => false,
        }
    }

    /// Whether a job placed on a node standing at `s` runs there alone,
    /// unverified; `roll` is a uniformly random number. A trusted node's
    /// job is still checked with probability `trust_after / streak`.
    pub fn runs_alone(&self, s: &Standing, roll: u64) -> bool {
        match self.mode {
            VerifyMode::Off => true,
            VerifyMode::Always => false,
            VerifyMode::Adaptive => {
                s.streak >= self.trust_after && roll % u64::from(s.streak.max(1)) >= u64::from(self.trust_after)
            }
        }
    }

    /// The most slots a node standing at `s` may fill now; `None` for no
    /// cap beyond what it declared.
    pub fn slot_cap(&self, s: &Standing) -> Option<u32> {
        (!self.trusted(s)).then(|| self.untrusted_slots.max(1).saturating_add(s.streak))
    }

    /// One of the node's results agreed with the quorum, which accepted
    /// `fuel`: its streak grows and it earns the fuel.
    pub fn agreed(s: &mut Standing, fuel: u64) {
        s.streak = s.streak.saturating_add(1);
        s.credit = s.credit.saturating_add(fuel);
    }

    /// A result accepted on trust (run alone on a trusted node, or with
    /// verification off) earns its fuel.
    pub fn accepted(s: &mut Standing, fuel: u64) {
        s.credit = s.credit.saturating_add(fuel);
    }

    /// The node disagreed with the quorum, or held a job past its deadline:
    /// its streak is gone and it takes a strike. Returns whether this
    /// strike quarantined it.
    pub fn struck(&self, s: &mut Standing) -> bool {
        s.streak = 0;
        s.strikes = s.strikes.saturating_add(1);
        let now = self.verifies() && s.strikes >= self.quarantine_after.max(1) && !s.quarantined;
        s.quarantined |= now;
        now
    }

    /// An admin cleared the node: it runs jobs again, its trust from zero.
    /// Returns whether it was quarantined.
    pub fn clear(s: &mut Standing) -> bool {
        let was = s.quarantined;
        *s = Standing { credit: s.credit, ..Standing::default() };
        was
    }
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        Self {
            mode: VerifyMode::Adaptive,
            trust_after: Self::DEFAULT_TRUST_AFTER,
            max_replicas: Self::DEFAULT_MAX_REPLICAS,
            quarantine_after: Self::DEFAULT_QUARANTINE_AFTER,
            untrusted_slots: Self::DEFAULT_UNTRUSTED_SLOTS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streak(n: u32) -> Standing {
        Standing { streak: n, ..Standing::default() }
    }

    #[test]
    fn a_new_node_is_always_checked_and_a_long_streak_rarely() {
        let p = VerifyPolicy::default();
        assert!((0..1000).all(|roll| !p.runs_alone(&streak(0), roll)));
        assert!((0..1000).all(|roll| !p.runs_alone(&streak(9), roll)));
        let alone = |n| (0..10_000u64).filter(|r| p.runs_alone(&streak(n), *r)).count();
        assert_eq!(alone(10), 0, "at the threshold every job is still checked");
        assert_eq!(alone(20), 5_000);
        assert_eq!(alone(1000), 9_900);
    }

    #[test]
    fn strikes_quarantine_and_a_clear_starts_over() {
        let p = VerifyPolicy::default();
        let mut s = streak(50);
        assert!(!p.struck(&mut s));
        assert_eq!(s.streak, 0);
        assert!(!p.struck(&mut s));
        assert!(p.struck(&mut s), "the third strike quarantines");
        assert!(!p.struck(&mut s), "a quarantined node is not quarantined again");
        VerifyPolicy::agreed(&mut s, 7);
        assert!(VerifyPolicy::clear(&mut s));
        assert_eq!(s, Standing { credit: 7, ..Standing::default() });
    }

    #[test]
    fn an_untrusted_node_gets_a_share_that_grows_with_its_streak() {
        let p = VerifyPolicy::default();
        assert_eq!(p.slot_cap(&streak(0)), Some(2));
        assert_eq!(p.slot_cap(&streak(5)), Some(7));
        assert_eq!(p.slot_cap(&streak(10)), None);
        assert_eq!(VerifyPolicy::off().slot_cap(&streak(0)), None);
    }
}
