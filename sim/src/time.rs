//! The two clock formats the rate-limit headers use: RFC 3339 UTC timestamps (Anthropic's
//! `*-reset`) and Go-style durations (OpenAI's `x-ratelimit-reset-*`, e.g. `1m30.5s`).
//! Formatting is integer-only, so the wasm build carries no float formatter.

/// `2026-01-01T00:00:07Z` for a Unix time in whole seconds.
pub fn rfc3339(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `rfc3339` with milliseconds (`2026-01-01T00:00:01.250Z`): resets of a shortened "minute"
/// need sub-second precision for a client to read a refill rate from them.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let whole = rfc3339(unix_ms / 1000);
    format!("{}.{:03}Z", whole.trim_end_matches('Z'), unix_ms % 1000)
}

/// The date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A duration as Go prints it (and OpenAI sends it), at millisecond precision: `0s`, `6ms`,
/// `59.5s`, `1m30.5s`, `6m0s`, `2h0m0s`.
pub fn go_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let seconds = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:03}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

/// Small, strict readers of both formats, to prove the writers round-trip. (Clients have
/// their own readers in `providers`; these check the sim against its own spec.)
#[cfg(test)]
pub mod parse {
    /// Days since 1970-01-01 of a date: the inverse of `civil_from_days`, by brute force
    /// over the years (a test reader, so plain beats clever).
    fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let year_days: i64 = (1970..year).map(|y| if leap(y) { 366 } else { 365 }).sum();
        let month_days = [
            31,
            if leap(year) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let before: i64 = month_days[..month as usize - 1].iter().sum();
        year_days + before + i64::from(day) - 1
    }

    /// `12`, `0.5`: digits with at most one point, nothing else (no sign, no exponent).
    fn parse_decimal(value: &str) -> Option<f64> {
        let (int, frac) = value.split_once('.').unwrap_or((value, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        (!int.is_empty() && digits(int) && digits(frac)).then(|| value.parse().ok())?
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fff]Z` to Unix milliseconds.
    pub fn rfc3339(v: &str) -> Option<u64> {
        let b = v.as_bytes();
        let shape = b.len() >= 20
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && v.ends_with('Z');
        if !shape {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u64> {
            let s = &v[r];
            s.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| s.parse().ok())?
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let frac = &v[19..v.len() - 1];
        let frac_ms = match frac.strip_prefix('.') {
            None if frac.is_empty() => 0,
            Some(f) if !f.is_empty() => (parse_decimal(&format!("0.{f}"))? * 1000.0) as u64,
            _ => return None,
        };
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
            return None;
        }
        let days = u64::try_from(days_from_civil(y as i64, mo as u32, d as u32)).ok()?;
        Some((days * 86_400 + h * 3600 + mi * 60 + s) * 1000 + frac_ms)
    }

    /// `1h2m3.5s`, `6ms`, `0s` to milliseconds.
    pub fn go_duration(v: &str) -> Option<f64> {
        let mut rest = v;
        let mut total = 0.0;
        if rest.is_empty() {
            return None;
        }
        while !rest.is_empty() {
            let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
            let n = parse_decimal(&rest[..n_end])?;
            rest = &rest[n_end..];
            let u_end = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            total += n * match &rest[..u_end] {
                "h" => 3_600_000.0,
                "m" => 60_000.0,
                "s" => 1000.0,
                "ms" => 1.0,
                _ => return None,
            };
            rest = &rest[u_end..];
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        let table = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_767_225_599, "2025-12-31T23:59:59Z"),
            (1_767_225_600, "2026-01-01T00:00:00Z"),
            (1_772_323_200, "2026-03-01T00:00:00Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
        ];
        for (secs, want) in table {
            assert_eq!(rfc3339(secs), want);
            assert_eq!(parse::rfc3339(want), Some(secs * 1000), "{want}");
        }
    }

    #[test]
    fn rfc3339_round_trips_every_few_hours_for_centuries() {
        let mut secs = 0u64;
        while secs < 7_000_000_000 {
            assert_eq!(parse::rfc3339(&rfc3339(secs)), Some(secs * 1000));
            assert_eq!(
                parse::rfc3339(&rfc3339_ms(secs * 1000 + 7)),
                Some(secs * 1000 + 7)
            );
            secs += 3 * 3600 + 7 * 60 + 11;
        }
    }

    #[test]
    fn rfc3339_parser_is_strict() {
        for bad in [
            "",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01 00:00:00Z",
            "2026-01-0aT00:00:00Z",
        ] {
            assert_eq!(parse::rfc3339(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse::rfc3339("1970-01-01T00:00:01.250Z"),
            Some(1250),
            "fractions"
        );
    }

    #[test]
    fn go_durations() {
        let table = [
            (0, "0s"),
            (1, "1ms"),
            (6, "6ms"),
            (999, "999ms"),
            (1000, "1s"),
            (1001, "1.001s"),
            (59_500, "59.5s"),
            (60_000, "1m0s"),
            (90_500, "1m30.5s"),
            (360_000, "6m0s"),
            (3_600_000, "1h0m0s"),
            (7_384_250, "2h3m4.25s"),
        ];
        for (ms, want) in table {
            assert_eq!(go_duration(ms), want);
            let back = parse::go_duration(want).unwrap();
            assert!((back - ms as f64).abs() < 1e-6, "{want}: {back}");
        }
        for ms in (0..200_000u64).step_by(37) {
            let back = parse::go_duration(&go_duration(ms)).unwrap();
            assert!((back - ms as f64).abs() < 1e-6, "{ms}");
        }
        for bad in ["", "s", "5", "5x", "1m30", "-1s"] {
            assert_eq!(parse::go_duration(bad), None, "{bad:?}");
        }
    }
}
