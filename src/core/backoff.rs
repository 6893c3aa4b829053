//! Delay math: exponential backoff with jitter, and the server's own Retry-After.
//! Pure functions returning `Duration`; randomness comes in through [`Rng`].

use std::time::Duration;

/// A source of uniform random numbers in `[0, 1)`, injected so tests are repeatable.
pub trait Rng {
    /// The next number in `[0, 1)`.
    fn next_f64(&mut self) -> f64;
}

/// A small, fast, seedable generator (SplitMix64). Not for cryptography.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
}

impl Rng for SplitMix64 {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How a computed backoff is spread out so that many clients do not retry in lock-step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Uniform in `[0, exponential]` (AWS's "full jitter").
    Full,
    /// Uniform in `[base, 3 * previous]`, capped (AWS's "decorrelated jitter").
    Decorrelated,
    /// The plain exponential value.
    None,
}

/// Exponential backoff settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    jitter: Jitter,
}

impl Backoff {
    /// Validated settings: `base` must be positive and at most `max`.
    pub fn new(base: Duration, max: Duration, jitter: Jitter) -> Result<Self, String> {
        if base.is_zero() {
            return Err("backoff base must be positive".into());
        }
        if max < base {
            return Err(format!(
                "backoff max ({} ms) must be at least base ({} ms)",
                max.as_millis() as u64,
                base.as_millis() as u64
            ));
        }
        Ok(Backoff { base, max, jitter })
    }

    /// The delay before retry number `retry` (1 for the first retry). `previous` is the last
    /// delay this item waited, which decorrelated jitter builds on.
    pub fn delay(&self, retry: u32, previous: Option<Duration>, rng: &mut dyn Rng) -> Duration {
        match self.jitter {
            Jitter::None => exponential(self.base, self.max, retry),
            Jitter::Full => scale(exponential(self.base, self.max, retry), rng.next_f64()),
            Jitter::Decorrelated => {
                let prev = previous.unwrap_or(self.base).max(self.base);
                let hi = (prev * 3).min(self.max);
                let span = hi.saturating_sub(self.base);
                (self.base + scale(span, rng.next_f64())).min(self.max)
            }
        }
    }
}

/// `base * 2^(retry-1)`, capped at `max`, without overflow for any `retry`.
pub fn exponential(base: Duration, max: Duration, retry: u32) -> Duration {
    let shift = retry.saturating_sub(1);
    if shift > 31 {
        return max;
    }
    base.checked_mul(1u32 << shift).map_or(max, |d| d.min(max))
}

/// `d * factor` for a factor in `[0, 1]`, without `Duration::mul_f64`'s panicking paths.
fn scale(d: Duration, factor: f64) -> Duration {
    from_ms(d.as_secs_f64() * 1000.0 * factor.clamp(0.0, 1.0))
}

/// Milliseconds (finite, non-negative, checked by the caller) as a `Duration`.
fn from_ms(ms: f64) -> Duration {
    Duration::from_nanos((ms * 1e6) as u64)
}

/// A plain decimal: digits with an optional fraction (`12`, `1.5`, `.5`), nothing else: no
/// sign, exponent or `NaN`. Header values are this simple, and the wasm build stays free of a
/// full float parser.
pub fn parse_decimal(value: &str) -> Option<f64> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
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

/// The wait the server asked for, if it asked: `retry-after-ms` first, then `retry-after`;
/// capped at `cap`. Garbage in either header is ignored.
pub fn server_delay(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now_unix_ms: f64,
    cap: Duration,
) -> Option<Duration> {
    retry_after_ms
        .and_then(parse_retry_after_ms)
        .or_else(|| retry_after.and_then(|v| parse_retry_after(v, now_unix_ms)))
        .map(|d| d.min(cap))
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parses an HTTP date (RFC 9110: IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete
/// RFC 850 form `Sunday, 06-Nov-94 08:49:37 GMT` and asctime `Sun Nov  6 08:49:37 1994`)
/// into Unix milliseconds.
pub fn parse_http_date(value: &str) -> Option<f64> {
    let words: Vec<&str> = value
        .split([' ', ',', '-'])
        .filter(|w| !w.is_empty())
        .collect();
    let (day, month, year, time) = match words.as_slice() {
        [_, d, m, y, t, "GMT"] if d.bytes().all(|b| b.is_ascii_digit()) => (*d, *m, *y, *t),
        [_, m, d, t, y] => (*d, *m, *y, *t),
        _ => return None,
    };
    let day: u32 = day.parse().ok()?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u32 + 1;
    let mut year: i64 = year.parse().ok()?;
    if year < 100 {
        year += if year < 70 { 2000 } else { 1900 };
    }
    let hms: Vec<u32> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, s] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *mi > 59 || *s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + i64::from(*h * 3600 + *mi * 60 + *s)) * 1000) as f64)
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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn exponential_doubles_then_caps() {
        let table = [
            (1, 500),
            (2, 1000),
            (3, 2000),
            (4, 4000),
            (7, 30_000),
            (200, 30_000),
        ];
        for (retry, want) in table {
            assert_eq!(
                exponential(MS(500), MS(30_000), retry),
                MS(want),
                "retry {retry}"
            );
        }
        assert_eq!(exponential(MS(500), MS(30_000), 0), MS(500));
    }

    #[test]
    fn jittered_delays_stay_in_bounds() {
        let mut rng = SplitMix64::new(7);
        let full = Backoff::new(MS(100), MS(5000), Jitter::Full).unwrap();
        let deco = Backoff::new(MS(100), MS(5000), Jitter::Decorrelated).unwrap();
        let mut prev = None;
        for i in 0..2000u32 {
            let retry = i % 12 + 1;
            let d = full.delay(retry, None, &mut rng);
            assert!(d <= exponential(MS(100), MS(5000), retry), "full {d:?}");
            let e = deco.delay(retry, prev, &mut rng);
            assert!(e >= MS(100) && e <= MS(5000), "decorrelated {e:?}");
            assert!(e <= prev.unwrap_or(MS(100)).max(MS(100)) * 3);
            prev = Some(e);
        }
    }

    #[test]
    fn full_jitter_spreads_over_the_range() {
        let mut rng = SplitMix64::new(1);
        let b = Backoff::new(MS(1000), MS(1000), Jitter::Full).unwrap();
        let ds: Vec<u128> = (0..1000)
            .map(|_| b.delay(1, None, &mut rng).as_millis())
            .collect();
        assert!(ds.iter().any(|&d| d < 100) && ds.iter().any(|&d| d > 900));
    }

    #[test]
    fn invalid_backoff_is_rejected() {
        assert!(Backoff::new(MS(0), MS(10), Jitter::Full).is_err());
        assert!(Backoff::new(MS(100), MS(10), Jitter::Full)
            .unwrap_err()
            .contains("at least"));
    }

    #[test]
    fn retry_after_values() {
        let now = 784_111_777_000.0; // Sun, 06 Nov 1994 08:49:37 GMT
        let table: [(&str, Option<u64>); 12] = [
            ("2", Some(2000)),
            (" 1.5 ", Some(1500)),
            ("0", Some(0)),
            ("-1", None),
            ("abc", None),
            ("", None),
            ("1e400", None),
            ("Sun, 06 Nov 1994 08:49:47 GMT", Some(10_000)),
            ("Sunday, 06-Nov-94 08:49:57 GMT", Some(20_000)),
            ("Sun Nov  6 08:50:37 1994", Some(60_000)),
            ("Sun, 06 Nov 1994 08:40:00 GMT", Some(0)),
            ("Sun, 06 Foo 1994 08:49:47 GMT", None),
        ];
        for (v, want) in table {
            assert_eq!(parse_retry_after(v, now), want.map(MS), "{v:?}");
        }
    }

    #[test]
    fn decimals() {
        let table = [
            ("12", Some(12.0)),
            ("1.5", Some(1.5)),
            (".25", Some(0.25)),
            ("3.", Some(3.0)),
            ("", None),
            (".", None),
            ("-1", None),
            ("+1", None),
            ("1e3", None),
            ("1.2.3", None),
            ("NaN", None),
            ("1234567890123456", None),
        ];
        for (v, want) in table {
            assert_eq!(parse_decimal(v), want, "{v:?}");
        }
    }

    #[test]
    fn retry_after_ms_values() {
        let table = [
            ("250", Some(250)),
            ("0.5", Some(0)),
            ("-5", None),
            ("NaN", None),
            ("x", None),
        ];
        for (v, want) in table {
            assert_eq!(
                parse_retry_after_ms(v).map(|d| d.as_millis() as u64),
                want,
                "{v:?}"
            );
        }
    }

    #[test]
    fn server_delay_prefers_ms_and_caps() {
        let cap = MS(60_000);
        assert_eq!(
            server_delay(Some("300"), Some("9"), 0.0, cap),
            Some(MS(300))
        );
        assert_eq!(
            server_delay(Some("junk"), Some("9"), 0.0, cap),
            Some(MS(9000))
        );
        assert_eq!(server_delay(None, Some("3600"), 0.0, cap), Some(cap));
        assert_eq!(server_delay(None, Some("soon"), 0.0, cap), None);
        assert_eq!(server_delay(None, None, 0.0, cap), None);
    }

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0.0));
        assert_eq!(
            parse_http_date("Wed, 01 Jan 2026 00:00:00 GMT"),
            Some(1_767_225_600_000.0)
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}

#[cfg(test)]
#[path = "backoff_tests.rs"]
mod edge_tests;
