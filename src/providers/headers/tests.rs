//! The header parsers' tables: retry headers, HTTP dates at the limits of each field, RFC 3339
//! and Go-style durations, and the plain parsers' caps (mutation testing found each of these
//! unpinned).

use super::*;

const MS: fn(u64) -> Duration = Duration::from_millis;

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
    // A date in February: the algorithm counts years from March.
    assert_eq!(days_from_civil(2024, 2, 29), 19_782);
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

#[test]
fn x_should_retry_values() {
    let table = [
        ("true", Some(true)),
        ("TRUE", Some(true)),
        (" True ", Some(true)),
        ("false", Some(false)),
        ("FALSE", Some(false)),
        ("maybe", None),
        ("", None),
    ];
    for (v, want) in table {
        assert_eq!(parse_should_retry(v), want, "{v:?}");
    }
}

#[test]
fn server_wait_is_uncapped() {
    assert_eq!(
        server_wait(None, Some("3600"), 0.0),
        Some(Duration::from_secs(3600))
    );
    assert_eq!(server_wait(Some("7"), Some("3600"), 0.0), Some(MS(7)));
    assert_eq!(server_wait(None, None, 0.0), None);
}
