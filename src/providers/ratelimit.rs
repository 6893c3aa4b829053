//! The rate-limit headers APIs send on every reply, read into one typed snapshot.
//! Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`
//! with reset as RFC 3339. OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` with
//! reset as a duration like `6m0s` or `1m30.5s`. Malformed values are dropped, never guessed.

use std::time::Duration;

use crate::core::backoff::{days_from_civil, parse_decimal};

pub use crate::core::limits::{Limit, RateLimits};

fn integer(value: Option<String>) -> Option<u64> {
    value?.trim().parse().ok()
}

/// Reads Anthropic's headers; resets become durations from `now_unix_ms`.
pub fn anthropic(header: &dyn Fn(&str) -> Option<String>, now_unix_ms: f64) -> RateLimits {
    let read = |kind: &str| {
        let h = |part: &str| header(&format!("anthropic-ratelimit-{kind}-{part}"));
        Limit {
            limit: integer(h("limit")),
            remaining: integer(h("remaining")),
            reset_in: h("reset")
                .and_then(|v| parse_rfc3339(&v))
                .map(|at| Duration::from_millis((at - now_unix_ms).max(0.0) as u64)),
        }
    };
    // `anthropic-ratelimit-tokens-*` is whichever of the input and output limits has less
    // left, not a budget of input + output: the two specific headers say it exactly.
    RateLimits {
        requests: read("requests"),
        input_tokens: read("input-tokens"),
        output_tokens: read("output-tokens"),
        ..RateLimits::default()
    }
}

/// Reads OpenAI's headers.
pub fn openai(header: &dyn Fn(&str) -> Option<String>) -> RateLimits {
    let read = |kind: &str| Limit {
        limit: integer(header(&format!("x-ratelimit-limit-{kind}"))),
        remaining: integer(header(&format!("x-ratelimit-remaining-{kind}"))),
        reset_in: header(&format!("x-ratelimit-reset-{kind}")).and_then(|v| parse_duration(&v)),
    };
    RateLimits {
        requests: read("requests"),
        tokens: read("tokens"),
        ..RateLimits::default()
    }
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

/// Parses an RFC 3339 timestamp (`2026-11-24T12:00:30Z`, fractions, `+01:00` offsets) into
/// Unix milliseconds.
pub fn parse_rfc3339(value: &str) -> Option<f64> {
    let v = value.trim();
    let (date, rest) = v.split_at_checked(10)?;
    let mut d = date.split('-');
    let (year, month, day) = (
        digits(d.next()?, 4)?,
        digits(d.next()?, 2)?,
        digits(d.next()?, 2)?,
    );
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, offset_min) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0i64)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (c, off) = rest.split_at_checked(at)?;
        let (sign, hm) = off.split_at_checked(1)?;
        let (h, m) = hm.split_once(':')?;
        let minutes = i64::from(digits(h, 2)? * 60 + digits(m, 2)?);
        (c, if sign == "-" { -minutes } else { minutes })
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut t = hms.split(':');
    let (h, mi, s) = (
        digits(t.next()?, 2)?,
        digits(t.next()?, 2)?,
        digits(t.next()?, 2)?,
    );
    if t.next().is_some()
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || h > 23
        || mi > 59
        || s > 60
    {
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
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, tail) = rest.split_at_checked(number_end)?;
        let number = parse_decimal(number)?;
        rest = tail;
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
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
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn rfc3339() {
        let base = 1_767_225_600_000.0; // 2026-01-01T00:00:00Z
        let table: [(&str, Option<f64>); 10] = [
            ("2026-01-01T00:00:00Z", Some(base)),
            ("2026-01-01T00:00:30.250Z", Some(base + 30_250.0)),
            ("2026-01-01t00:00:01z", Some(base + 1000.0)),
            ("2026-01-01T01:00:00+01:00", Some(base)),
            ("2025-12-31T23:00:00-01:00", Some(base)),
            ("2026-01-01", None),
            ("2026-13-01T00:00:00Z", None),
            ("2026-01-01T24:00:00Z", None),
            ("2026-01-01T00:00Z", None),
            ("yesterday", None),
        ];
        for (v, want) in table {
            assert_eq!(parse_rfc3339(v), want, "{v:?}");
        }
    }

    #[test]
    fn durations() {
        let table: [(&str, Option<Duration>); 11] = [
            ("6m0s", Some(MS(360_000))),
            ("1m30.5s", Some(MS(90_500))),
            ("20ms", Some(MS(20))),
            ("0s", Some(MS(0))),
            ("1h2m3s", Some(MS(3_723_000))),
            ("1.5s", Some(MS(1500))),
            ("500us", Some(Duration::from_micros(500))),
            ("", None),
            ("10", None),
            ("5x", None),
            ("-1s", None),
        ];
        for (v, want) in table {
            assert_eq!(parse_duration(v), want, "{v:?}");
        }
    }

    fn headers(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn anthropic_snapshot() {
        let h = headers(&[
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "49"),
            (
                "anthropic-ratelimit-requests-reset",
                "2026-01-01T00:00:01.2Z",
            ),
            ("anthropic-ratelimit-input-tokens-limit", "40000"),
            ("anthropic-ratelimit-input-tokens-remaining", "garbage"),
            ("anthropic-ratelimit-input-tokens-reset", "not a date"),
            ("anthropic-ratelimit-output-tokens-remaining", "8000"),
            (
                "anthropic-ratelimit-output-tokens-reset",
                "2025-12-31T23:59:00Z",
            ),
        ]);
        let s = anthropic(&h, 1_767_225_600_000.0);
        assert_eq!(
            s.requests,
            Limit {
                limit: Some(50),
                remaining: Some(49),
                reset_in: Some(MS(1200))
            }
        );
        assert_eq!(
            s.input_tokens,
            Limit {
                limit: Some(40000),
                remaining: None,
                reset_in: None
            }
        );
        assert_eq!(
            s.output_tokens,
            Limit {
                limit: None,
                remaining: Some(8000),
                reset_in: Some(MS(0))
            }
        );
        assert!(!s.tokens.is_known());
        assert!(!s.is_empty());
        assert!(anthropic(&headers(&[]), 0.0).is_empty());
    }

    #[test]
    fn openai_snapshot() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("x-ratelimit-remaining-tokens", "149984"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        let s = openai(&h);
        assert_eq!(
            s.requests,
            Limit {
                limit: Some(60),
                remaining: Some(59),
                reset_in: Some(MS(1000))
            }
        );
        assert_eq!(
            s.tokens,
            Limit {
                limit: Some(150_000),
                remaining: Some(149_984),
                reset_in: Some(MS(360_000))
            }
        );
        assert!(!s.input_tokens.is_known());
    }

    #[test]
    fn rfc3339_minutes_count_in_the_time_and_in_the_offset() {
        let base = 1_767_225_600_000.0; // 2026-01-01T00:00:00Z
        let table: [(&str, Option<f64>); 7] = [
            ("2026-01-01T00:59:30Z", Some(base + 3_570_000.0)),
            ("2026-01-01T23:59:59Z", Some(base + 86_399_000.0)),
            ("2026-01-01T05:45:00+05:45", Some(base)),
            ("2025-12-31T23:30:00-00:30", Some(base)),
            ("2026-01-01T00:00:60Z", Some(base + 60_000.0)),
            ("2026-01-01T00:60:00Z", None),
            ("2026-01-01T00:00:61Z", None),
        ];
        for (v, want) in table {
            assert_eq!(parse_rfc3339(v), want, "{v:?}");
        }
    }

    #[test]
    fn go_durations_in_the_small_units_and_fields_that_only_look_numeric() {
        assert_eq!(parse_duration("1500ns"), Some(Duration::from_nanos(1500)));
        assert_eq!(parse_duration("2µs"), Some(Duration::from_micros(2)));
        // `u32::from_str` alone would take "+1" as an hour; a field is exactly its digits.
        assert_eq!(parse_rfc3339("2026-01-01T+1:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-01-01T01:00:00+1:00"), None);
    }
}
