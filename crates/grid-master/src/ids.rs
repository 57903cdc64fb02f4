//! Job ids: ULIDs (26 characters of Crockford base32, lower case), which
//! sort by the time they were made. A generator never repeats itself: each
//! id is above the last one it made, whatever the clock does, and above the
//! newest id in the record, so a restart with the clock set back cannot
//! collide either. 80 bits below the millisecond leave room for any number
//! of ids per millisecond.

use crate::model::JobId;
use std::sync::Mutex;
use ulid::Ulid;

/// The 80 bits of an id below its millisecond.
const LOW: u128 = (1 << 80) - 1;

/// Makes job ids, each above the last.
#[derive(Debug)]
pub struct IdGenerator {
    last: Mutex<u128>,
}

impl IdGenerator {
    /// A generator whose ids come after `newest`, the newest id recorded
    /// (ids of an older format are ignored).
    pub fn after(newest: Option<&str>) -> Self {
        let last = newest.filter(|id| id.len() == 26).and_then(|id| Ulid::from_string(id).ok()).map_or(0, |u| u.0);
        Self { last: Mutex::new(last) }
    }

    /// A fresh id.
    pub fn next(&self) -> JobId {
        self.next_at(crate::model::now_ms())
    }

    /// A fresh id, as if the clock said `ms`.
    pub fn next_at(&self, ms: u64) -> JobId {
        let fresh = (u128::from(ms) << 80) | (fastrand::u128(..) & LOW);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        // Past the last id even if the clock went back or this millisecond
        // is crowded; `wrapping_add` only matters in the year 10889.
        let id = if fresh > *last { fresh } else { last.wrapping_add(1) };
        *last = id;
        Ulid(id).to_string().to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_never_repeat_in_one_millisecond_or_when_the_clock_goes_back() {
        let ids = IdGenerator::after(None);
        let mut seen = HashSet::new();
        let mut previous = String::new();
        // Far past the 2^20 ids per start that the old format allowed, all
        // in one millisecond, then with the clock stepping back.
        for i in 0..1_200_000u64 {
            let ms = if i < 1_100_000 { 1_000_000 } else { 1_000_000 - (i - 1_100_000) };
            let id = ids.next_at(ms);
            assert!(id > previous, "{id} after {previous}");
            assert!(seen.insert(id.clone()));
            previous = id;
        }
        assert_eq!(previous.len(), 26);
    }

    #[test]
    fn a_restarted_generator_continues_past_the_newest_recorded_id_even_with_the_clock_behind() {
        let first = IdGenerator::after(None);
        let newest = (0..1000).map(|_| first.next_at(5_000_000)).last().unwrap();
        // The master restarts with its clock an hour behind.
        let again = IdGenerator::after(Some(&newest));
        let next = again.next_at(5_000_000 - 3_600_000);
        assert!(next > newest, "{next} after {newest}");
        // An old-format id in the record does not confuse it.
        assert_eq!(IdGenerator::after(Some("19ab34cd56ef00001")).next_at(7).len(), 26);
    }

    #[test]
    fn ids_sort_by_time() {
        let ids = IdGenerator::after(None);
        let early = ids.next_at(1_000);
        let late = IdGenerator::after(None).next_at(2_000);
        assert!(early < late);
        assert!(early.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
    }
}
