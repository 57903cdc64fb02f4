//! Times and durations as `jobs` and `status` show them: moments in UTC
//! (only the time of day for today's), and spans as people say them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last moment RFC 3339 can write, `9999-12-31T23:59:59Z`, in ms.
const LAST_MS: u64 = 253_402_300_799_000;

/// A moment, in ms since the Unix epoch, as RFC 3339 in UTC to the second:
/// `2026-12-03T06:40:00Z`. A time past the year 9999 (a master's nonsense)
/// is shown as the last moment there is.
pub fn moment(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms.min(LAST_MS))).to_string()
}

/// A moment as a listing shows it, given the time `now_ms`: `06:40:00` if
/// it fell on the same UTC day, else `2026-12-02 06:40`.
pub fn short(ms: u64, now_ms: u64) -> String {
    let (at, now) = (moment(ms), moment(now_ms));
    // `YYYY-MM-DDTHH:MM:SSZ`
    let (date, time) = (&at[..10], &at[11..19]);
    if date == &now[..10] { time.to_owned() } else { format!("{date} {}", &time[..5]) }
}

/// A span of `ms` milliseconds: `250ms`, `1.2s`, `3m 4s`, `2h 5m`.
pub fn span(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h {}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_utc_and_short_for_today() {
        // 2026-12-03T06:40:00Z
        let at = 1_796_280_000_000;
        assert_eq!(moment(at), "2026-12-03T06:40:00Z");
        assert_eq!(short(at, at + 3_600_000), "06:40:00");
        assert_eq!(short(at, at + 86_400_000), "2026-12-03 06:40");
    }

    #[test]
    fn a_moment_past_the_year_9999_does_not_panic() {
        assert_eq!(moment(u64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(short(u64::MAX, 0), "9999-12-31 23:59");
    }

    #[test]
    fn spans_read_as_people_say_them() {
        for (ms, want) in [(250, "250ms"), (1_234, "1.2s"), (184_000, "3m 4s"), (7_500_000, "2h 5m")] {
            assert_eq!(span(ms), want);
        }
    }
}
