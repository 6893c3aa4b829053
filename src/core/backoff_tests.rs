//! Backoff and header-parsing edges, each pinned by a test: decorrelated jitter's exact
//! span, SplitMix64's reference sequence, each HTTP-date field at its limits, and the plain
//! parsers' caps. Mutation testing found each of these unpinned.

use super::*;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// Always the same number: delays become exact.
struct Fixed(f64);

impl Rng for Fixed {
    fn next_f64(&mut self) -> f64 {
        self.0
    }
}

#[test]
fn decorrelated_jitter_spans_base_to_three_times_the_previous_delay() {
    let b = Backoff::new(MS(100), MS(10_000), Jitter::Decorrelated).unwrap();
    // (previous, random, delay): base + random * (min(3 * previous, max) - base), where
    // the previous delay is never taken below base.
    let table = [
        (None, 0.5, 200),
        (Some(10), 0.5, 200),
        (Some(1000), 0.5, 1550),
        (Some(1000), 0.0, 100),
        (Some(5000), 0.5, 5050),
        (Some(9000), 1.0, 10_000),
    ];
    for (previous, random, want) in table {
        assert_eq!(
            b.delay(1, previous.map(MS), &mut Fixed(random)),
            MS(want),
            "{previous:?} {random}"
        );
    }
}

#[test]
fn splitmix64_matches_the_reference_sequence() {
    // The reference SplitMix64 from seed 0 yields 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4,
    // 0x06c45d188009454f; each number is its top 53 bits over 2^53.
    let mut rng = SplitMix64::new(0);
    let want = [
        0xe220a8397b1dcdafu64,
        0x6e789e6aa1b965f4,
        0x06c45d188009454f,
    ];
    for w in want {
        assert_eq!(rng.next_f64(), (w >> 11) as f64 / (1u64 << 53) as f64);
    }
}

#[test]
fn http_dates_at_the_edges_of_each_field() {
    let day = 1_767_225_600_000.0; // 2026-01-01T00:00:00Z
    let table = [
        ("Thu, 01 Jan 2026 23:59:59 GMT", Some(day + 86_399_000.0)),
        ("Thu, 01 Jan 2026 00:59:00 GMT", Some(day + 3_540_000.0)),
        ("Thu, 01 Jan 2026 00:00:60 GMT", Some(day + 60_000.0)),
        ("Thursday, 01-Jan-26 00:59:00 GMT", Some(day + 3_540_000.0)),
        (
            "Wednesday, 06-Nov-69 08:59:00 GMT",
            Some(3_150_953_940_000.0),
        ),
        ("Friday, 06-Nov-70 08:59:00 GMT", Some(26_729_940_000.0)),
        ("Thu Jan  1 00:59:00 2026", Some(day + 3_540_000.0)),
        (
            "Sat, 31 Jan 2026 00:00:00 GMT",
            Some(day + 30.0 * 86_400_000.0),
        ),
        ("Thu, 01 Jan 2026 00:60:00 GMT", None),
        ("Thu, 01 Jan 2026 00:00:61 GMT", None),
        ("Thu, 00 Jan 2026 00:00:00 GMT", None),
        ("Thu, 32 Jan 2026 00:00:00 GMT", None),
        ("Thu, 01 Jan 2026 00:00 GMT", None),
    ];
    for (v, want) in table {
        assert_eq!(parse_http_date(v), want, "{v:?}");
    }
}

#[test]
fn limits_of_the_plain_parsers() {
    // The largest shift still computed: 2^31 times a 1 ns base is 2.1 s, under the cap.
    let (ns, hour) = (Duration::from_nanos(1), Duration::from_secs(3600));
    assert_eq!(exponential(ns, hour, 32), Duration::from_nanos(1 << 31));
    assert_eq!(exponential(ns, hour, 33), hour);
    assert_eq!(
        parse_decimal("123456789012345"),
        Some(123_456_789_012_345.0)
    );
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis());
    assert_eq!(
        ms(parse_retry_after_ms("999999999999")),
        Some(999_999_999_999)
    );
    assert_eq!(parse_retry_after_ms("1000000000000"), None);
    assert_eq!(
        ms(parse_retry_after("999999999", 0.0)),
        Some(999_999_999_000)
    );
    assert_eq!(parse_retry_after("1000000000", 0.0), None);
    // Only years below 100 get a century: a longer one is taken as written.
    assert_eq!(
        parse_http_date("Fri, 01 Jan 0100 00:00:00 GMT"),
        Some(-59_011_459_200_000.0)
    );
    // A day must be digits (`u32::from_str` alone would take "+6").
    assert_eq!(parse_http_date("Sun, +6 Nov 1994 08:49:37 GMT"), None);
}
