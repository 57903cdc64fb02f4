//! Sizes, durations and fuel amounts as people write them (`64MiB`, `1G`,
//! `30s`, `500ms`, `10G` fuel, `50G/h` fuel quotas): read, and written back.

use std::time::Duration;

/// Parses a size such as `64MiB`, `1G`, `512k` or `1048576` into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    t.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| format!("`{s}` is not a size: write it like `64MiB`, `1G` or `4096`"))
}

/// Formats a size the way [`parse_size`] reads it, exactly: in the largest
/// binary unit that divides it (`512MiB`, `1536KiB`), else in bytes.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u32, &str); 4] = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, unit) in UNITS {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Parses a duration such as `30s`, `500ms` or `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}): write it like `30s`, `500ms` or `2m`"))
}

/// Formats a duration the way [`parse_duration`] reads it, exactly: `5m`,
/// `30s`, `1m 30s`, `500ms`.
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// Parses a fuel amount: a count with an optional SI suffix (`k`, `M`, `G`,
/// `T`, each ×1000, in either case), decimals allowed as in sizes: `10G`,
/// `1.5G`, `2500000`. The result must be a whole number of units.
pub fn parse_fuel(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let err = || format!("`{s}` is not a fuel amount: write it like `10G`, `1.5G` or `1000000`");
    let (number, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult: u64 = match c.to_ascii_uppercase() {
                'K' => 1_000,
                'M' => 1_000_000,
                'G' => 1_000_000_000,
                'T' => 1_000_000_000_000,
                _ => return Err(err()),
            };
            (&t[..i], mult)
        }
        _ => (t, 1),
    };
    let number = number.trim_end().replace('_', "");
    let (whole, fraction) = number.split_once('.').unwrap_or((&number, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) || fraction.len() > 12 {
        return Err(err());
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| err())? };
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| err())? };
    let fraction = fraction * u128::from(mult);
    if !fraction.is_multiple_of(scale) {
        return Err(format!("`{s}` is not a whole number of fuel units"));
    }
    whole.checked_mul(mult).and_then(|n| n.checked_add(u64::try_from(fraction / scale).ok()?)).ok_or_else(err)
}

/// A job's fuel limit: a fuel amount ([`parse_fuel`]) above zero.
pub fn parse_fuel_limit(s: &str) -> Result<u64, String> {
    match parse_fuel(s)? {
        0 => Err(format!("`{s}` is no fuel: a job needs some to run, e.g. `10G`")),
        n => Ok(n),
    }
}

/// The smallest memory limit a job may have: one wasm page.
pub const WASM_PAGE: u64 = 64 << 10;

/// A job's memory limit: a size ([`parse_size`]) written with its unit, of
/// at least one wasm page (64KiB). A bare number is refused, since `64`
/// would mean 64 bytes.
pub fn parse_memory_limit(s: &str) -> Result<u64, String> {
    if !s.trim().ends_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!("`{s}` has no unit: write it like `64MiB` or `1GiB`"));
    }
    let bytes = parse_size(s)?;
    if bytes < WASM_PAGE {
        return Err(format!("`{s}` is under one wasm page (64KiB): write it like `64MiB`"));
    }
    Ok(bytes)
}

/// A job's timeout: a duration ([`parse_duration`]) above zero.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let duration = parse_duration(s)?;
    if duration.is_zero() {
        return Err(format!("`{s}` is no time: a job needs some to run, e.g. `30s`"));
    }
    Ok(duration)
}

/// Formats a fuel amount the way [`parse_fuel`] reads it, rounded to three
/// significant digits: `1.5G`, `250M`, `999`.
pub fn format_fuel(fuel: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(1_000_000_000_000, "T"), (1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")];
    for (scale, suffix) in UNITS {
        if fuel >= scale {
            let v = fuel as f64 / scale as f64;
            let digits = if v >= 100.0 {
                0
            } else if v >= 10.0 {
                1
            } else {
                2
            };
            let s = format!("{v:.digits$}");
            let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s };
            return format!("{s}{suffix}");
        }
    }
    fuel.to_string()
}

/// Formats a fuel amount the way [`parse_fuel`] reads it, exactly: in the
/// largest SI suffix that divides it (`10G`, `1500M`, `1234567`).
pub fn format_fuel_exact(fuel: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(1_000_000_000_000, "T"), (1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")];
    for (scale, suffix) in UNITS {
        if fuel != 0 && fuel.is_multiple_of(scale) {
            return format!("{}{suffix}", fuel / scale);
        }
    }
    fuel.to_string()
}

/// A volunteer's fuel quota, as a token bucket: `rate_per_hour` units flow in
/// each hour, and at most `burst` may be saved up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuelQuota {
    /// Fuel units granted per hour.
    pub rate_per_hour: u64,
    /// The most fuel the bucket holds.
    pub burst: u64,
}

impl FuelQuota {
    /// Parses `AMOUNT/PERIOD`, e.g. `50G/h`, `1T/day`, `500M/10m`. The burst
    /// is one period's amount.
    pub fn parse(s: &str) -> Result<Self, String> {
        let err = |why: String| format!("`{s}` is not a fuel quota ({why}): write it like `50G/h`");
        let (amount, period) = s.split_once('/').ok_or_else(|| err("missing `/PERIOD`".into()))?;
        let amount = parse_fuel(amount).map_err(err)?;
        let period = match period.trim() {
            "s" | "sec" => Duration::from_secs(1),
            "m" | "min" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other => parse_duration(other).map_err(err)?,
        };
        if period.is_zero() {
            return Err(err("the period is zero".into()));
        }
        let per_hour = (amount as u128 * 3_600_000_000_000 / period.as_nanos()).min(u64::MAX as u128) as u64;
        Ok(Self { rate_per_hour: per_hour, burst: amount })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (input, want) in [("64MiB", 64 << 20), ("1GiB", 1 << 30), ("4096", 4096), ("1 KiB", 1024)] {
            assert_eq!(parse_size(input), Ok(want), "{input}");
        }
        assert!(parse_size("lots").unwrap_err().contains("`lots` is not a size"));
    }

    #[test]
    fn sizes_format_exactly_and_parse_back() {
        for (bytes, want) in [
            (512 << 20, "512MiB"),
            (1 << 30, "1GiB"),
            (1536 << 10, "1536KiB"),
            (3 << 40, "3TiB"),
            (1000, "1000"),
            (0, "0"),
        ] {
            assert_eq!(format_size(bytes), want);
            assert_eq!(parse_size(want), Ok(bytes), "{want}");
        }
    }

    #[test]
    fn durations_format_exactly_and_parse_back() {
        for (duration, want) in [
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(90), "1m 30s"),
            (Duration::from_millis(500), "500ms"),
        ] {
            assert_eq!(format_duration(duration), want);
            assert_eq!(parse_duration(want), Ok(duration), "{want}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn fuel() {
        for (input, want) in [
            ("10G", 10_000_000_000),
            ("500M", 500_000_000),
            ("7", 7),
            ("2k", 2000),
            ("2K", 2000),
            ("1_000", 1000),
            ("1.5G", 1_500_000_000),
            ("0.25k", 250),
            (".5M", 500_000),
            ("2.g", 2_000_000_000),
            ("0", 0),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_fuel(input), Ok(want), "{input}");
        }
        for bad in ["", "G", ".", "1X", "-5", "1e9", "1.2.3G", "99999999999T", "18446744073709551616", "1.5"] {
            assert!(parse_fuel(bad).is_err(), "{bad}");
        }
        assert!(parse_fuel("1.0005k").unwrap_err().contains("not a whole number of fuel units"));
    }

    #[test]
    fn job_limits_refuse_zero_and_a_memory_without_unit() {
        assert_eq!(parse_fuel_limit("1.5G"), Ok(1_500_000_000));
        assert!(parse_fuel_limit("0").unwrap_err().contains("`0` is no fuel"));
        assert!(parse_fuel_limit("0G").is_err());
        assert_eq!(parse_memory_limit("64KiB"), Ok(WASM_PAGE));
        assert_eq!(parse_memory_limit("1.5G"), Ok(1_500_000_000));
        assert!(parse_memory_limit("64").unwrap_err().contains("`64` has no unit"));
        assert!(parse_memory_limit("0").unwrap_err().contains("has no unit"));
        assert!(parse_memory_limit("0MiB").unwrap_err().contains("under one wasm page"));
        assert!(parse_memory_limit("1KiB").unwrap_err().contains("under one wasm page"));
        assert!(parse_memory_limit("lots").unwrap_err().contains("is not a size"));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_timeout("0s").unwrap_err().contains("`0s` is no time"));
        assert!(parse_timeout("0ms").is_err());
    }

    #[test]
    fn fuel_formatting() {
        for (fuel, want) in
            [(999, "999"), (1500, "1.5k"), (250_000_000, "250M"), (1_000_000_000_000, "1T"), (12_345_678_901, "12.3G")]
        {
            assert_eq!(format_fuel(fuel), want);
        }
    }

    #[test]
    fn exact_fuel_formats_parse_back() {
        for (fuel, want) in
            [(10_000_000_000, "10G"), (1_500_000_000, "1500M"), (1_234_567, "1234567"), (2_000, "2k"), (0, "0")]
        {
            assert_eq!(format_fuel_exact(fuel), want);
            assert_eq!(parse_fuel(want), Ok(fuel), "{want}");
        }
    }

    #[test]
    fn quotas() {
        assert_eq!(FuelQuota::parse("50G/h"), Ok(FuelQuota { rate_per_hour: 50_000_000_000, burst: 50_000_000_000 }));
        assert_eq!(FuelQuota::parse("1G/min").unwrap().rate_per_hour, 60_000_000_000);
        assert_eq!(FuelQuota::parse("24G/day").unwrap().rate_per_hour, 1_000_000_000);
        assert!(FuelQuota::parse("50G").is_err());
        assert!(FuelQuota::parse("50G/0s").is_err());
    }
}
