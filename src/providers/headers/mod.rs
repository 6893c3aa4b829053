//! Header values and the dates in them, parsed once at the edge into typed values: the
//! retry headers (`retry-after-ms`, `retry-after` as seconds or an HTTP date,
//! `x-should-retry`), RFC 3339 timestamps and Go-style durations of the rate-limit headers,
//! and the civil-date arithmetic under both. Pure; no float parser (see [`parse_decimal`]).

use std::time::Duration;

use crate::text::{parse_i64, parse_u32, split, split_once};

/// Milliseconds (finite, non-negative, checked by the caller) as a `Duration`.
fn from_ms(ms: f64) -> Duration {
    Duration::from_nanos((ms * 1e6) as u64)
}

/// A plain decimal: digits with an optional fraction (`12`, `1.5`, `.5`), nothing else: no
/// sign, exponent or `NaN`. Header values are this simple, and the wasm build stays free of a
/// full float parser.
pub fn parse_decimal(value: &str) -> Option<f64> {
    let (int, frac) = split_once(value, b'.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.len() + frac.len() == 0 || int.len() > 15 || !digits(int) || !digits(frac) {
        return None;
    }
    let whole = int.bytes().fold(0.0, |n, b| n * 10.0 + f64::from(b - b'0'));
    let (fraction, _) = frac.bytes().take(9).fold((0.0, 0.1), |(n, unit), b| {
        (n + f64::from(b - b'0') * unit, unit / 10.0)
    });
    Some(whole + fraction)
}

/// Parses `retry-after-ms`: a non-negative number of milliseconds (fractions allowed).
pub fn parse_retry_after_ms(value: &str) -> Option<Duration> {
    parse_decimal(value.trim())
        .filter(|ms| *ms < 1e12)
        .map(from_ms)
}

/// Parses `retry-after`: delay-seconds, or an HTTP date measured from `now_unix_ms`.
/// A date in the past means "now".
pub fn parse_retry_after(value: &str, now_unix_ms: f64) -> Option<Duration> {
    let v = value.trim();
    if v.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'.')
    {
        return parse_decimal(v)
            .filter(|s| *s < 1e9)
            .map(|s| from_ms(s * 1000.0));
    }
    let at = parse_http_date(v)?;
    Some(from_ms((at - now_unix_ms).max(0.0)))
}

/// The wait the server asked for, if it asked: `retry-after-ms` first, then `retry-after`
/// (measured from `now_unix_ms` when it is a date). Garbage in either header is ignored.
pub fn server_wait(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now_unix_ms: f64,
) -> Option<Duration> {
    retry_after_ms
        .and_then(parse_retry_after_ms)
        .or_else(|| retry_after.and_then(|v| parse_retry_after(v, now_unix_ms)))
}

/// [`server_wait`], capped at `cap`.
pub fn server_delay(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now_unix_ms: f64,
    cap: Duration,
) -> Option<Duration> {
    server_wait(retry_after_ms, retry_after, now_unix_ms).map(|d| d.min(cap))
}

/// Reads `x-should-retry`: the server's explicit verdict, which beats the status table.
pub fn parse_should_retry(value: &str) -> Option<bool> {
    match value.trim() {
        v if v.eq_ignore_ascii_case("true") => Some(true),
        v if v.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parses an HTTP date (RFC 9110: IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete
/// RFC 850 form `Sunday, 06-Nov-94 08:49:37 GMT` and asctime `Sun Nov  6 08:49:37 1994`)
/// into Unix milliseconds.
pub fn parse_http_date(value: &str) -> Option<f64> {
    let words: Vec<&str> = split(value, b" ,-").filter(|w| !w.is_empty()).collect();
    let (day, month, year, time) = match words.as_slice() {
        [_, d, m, y, t, "GMT"] if d.bytes().all(|b| b.is_ascii_digit()) => (*d, *m, *y, *t),
        [_, m, d, t, y] => (*d, *m, *y, *t),
        _ => return None,
    };
    let day = parse_u32(day)?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u32 + 1;
    let mut year = parse_i64(year)?;
    if year < 100 {
        year += if year < 70 { 2000 } else { 1900 };
    }
    // `h:mi:s`; a fourth part leaves a `:` in `s`, which then is no number.
    let (h, rest) = split_once(time, b':')?;
    let (mi, s) = split_once(rest, b':')?;
    let [h, mi, s] = [parse_u32(h)?, parse_u32(mi)?, parse_u32(s)?];
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + i64::from(h * 3600 + mi * 60 + s)) * 1000) as f64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| parse_u32(s))?
}

/// Parses an RFC 3339 timestamp (`2026-11-24T12:00:30Z`, fractions, `+01:00` offsets) into
/// Unix milliseconds.
pub fn parse_rfc3339(value: &str) -> Option<f64> {
    let v = value.trim();
    let (date, rest) = v.split_at_checked(10)?;
    let (year, md) = split_once(date, b'-')?;
    let (month, day) = split_once(md, b'-')?;
    let (year, month, day) = (digits(year, 4)?, digits(month, 2)?, digits(day, 2)?);
    // Byte tests, not `char` patterns (their searchers are wasm weight): the same answers.
    let rest = rest
        .get(1..)
        .filter(|_| matches!(rest.bytes().next(), Some(b'T' | b't' | b' ')))?;
    let zulu = matches!(rest.bytes().last(), Some(b'Z' | b'z'));
    let (clock, offset_min) = if zulu {
        (rest.get(..rest.len() - 1)?, 0i64)
    } else {
        let at = rest.bytes().rposition(|b| b == b'+' || b == b'-')?;
        let (c, off) = rest.split_at_checked(at)?;
        let (sign, hm) = off.split_at_checked(1)?;
        let (h, m) = split_once(hm, b':')?;
        let minutes = i64::from(digits(h, 2)? * 60 + digits(m, 2)?);
        (c, if sign == "-" { -minutes } else { minutes })
    };
    let (hms, fraction) = split_once(clock, b'.').unwrap_or((clock, ""));
    // A fourth part leaves a `:` in `s`, which then is not two digits.
    let (h, rest) = split_once(hms, b':')?;
    let (mi, s) = split_once(rest, b':')?;
    let (h, mi, s) = (digits(h, 2)?, digits(mi, 2)?, digits(s, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let frac_ms = if fraction.is_empty() {
        0.0
    } else {
        parse_decimal(&format!("0.{fraction}"))? * 1000.0
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + s) - offset_min * 60;
    Some(secs as f64 * 1000.0 + frac_ms)
}

/// Parses a Go-style duration as OpenAI sends it: `1h2m3s`, `6m0s`, `1m30.5s`, `20ms`, `0s`.
pub fn parse_duration(value: &str) -> Option<Duration> {
    let mut rest = value.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total_ms = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .bytes()
            .position(|b| !(b.is_ascii_digit() || b == b'.'))?;
        let (number, tail) = rest.split_at_checked(number_end)?;
        let number = parse_decimal(number)?;
        rest = tail;
        let unit_end = rest
            .bytes()
            .position(|b| b.is_ascii_digit() || b == b'.')
            .unwrap_or(rest.len());
        let (unit, tail) = rest.split_at_checked(unit_end)?;
        let scale = match unit {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        total_ms += number * scale;
        rest = tail;
    }
    Some(Duration::from_nanos((total_ms * 1e6) as u64))
}

#[cfg(test)]
mod tests;
