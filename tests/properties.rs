//! Property tests of every parser of outside input: Retry-After and the HTTP date forms, the
//! rate-limit headers of both providers, options, the secret scrubber (error bodies: in
//! src/providers/http.rs, over the crate's own JSON view). On
//! arbitrary strings they never panic; on generated valid input they read what was written.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashMap;
use std::time::Duration;

use edgebatch::options::{Raw, RawBackoff, RawOptions, RawRateLimit};
use edgebatch::providers::headers::{
    days_from_civil, parse_decimal, parse_duration, parse_http_date, parse_retry_after,
    parse_retry_after_ms, parse_rfc3339, parse_should_retry, server_delay,
};
use edgebatch::providers::ratelimit::{anthropic, openai};
use edgebatch::redact::Secrets;
use proptest::prelude::*;

/// Header values: garbage, numbers, dates and durations in and out of form.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{0,25}(\\.[0-9]{0,5})?",
        "-?[0-9]{1,4}(ms|s|m|h)?([0-9]{1,3}(ms|s|m))?",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})",
        "(Mon|Sun|Tuesday), [0-9]{1,2}[ -](Jan|Nov|xyz)[ -][0-9]{2,4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn retry_headers_never_panic(v in header_value(), now in 0.0f64..4.0e12, cap in 0u64..3_600_000) {
        let _ = parse_decimal(&v);
        let _ = parse_http_date(&v);
        let _ = parse_should_retry(&v);
        let _ = parse_retry_after_ms(&v);
        let _ = parse_retry_after(&v, now);
        let cap = Duration::from_millis(cap);
        for d in [server_delay(Some(&v), None, now, cap), server_delay(None, Some(&v), now, cap)] {
            prop_assert!(d.is_none_or(|d| d <= cap), "{d:?} over the cap {cap:?}");
        }
    }

    #[test]
    fn retry_after_seconds_and_ms_read_back(secs in 0u32..1_000_000, ms in 0u32..100_000_000) {
        prop_assert_eq!(parse_retry_after(&secs.to_string(), 0.0), Some(Duration::from_secs(secs.into())));
        prop_assert_eq!(parse_retry_after_ms(&ms.to_string()), Some(Duration::from_millis(ms.into())));
    }

    #[test]
    fn imf_dates_read_back(y in 1970i64..2200, mo in 1u32..=12, d in 1u32..=28, h in 0u32..24, mi in 0u32..60, s in 0u32..60) {
        const M: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let want = ((days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s)) * 1000) as f64;
        let imf = format!("Sun, {d:02} {} {y} {h:02}:{mi:02}:{s:02} GMT", M[mo as usize - 1]);
        prop_assert_eq!(parse_http_date(&imf), Some(want), "{}", imf);
        let rfc = format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z");
        prop_assert_eq!(parse_rfc3339(&rfc), Some(want), "{}", rfc);
    }

    #[test]
    fn rate_limit_headers_never_panic(values in prop::collection::vec(header_value(), 12), now in 0.0f64..4.0e12) {
        let names = [
            "anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset", "anthropic-ratelimit-input-tokens-limit",
            "anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset",
            "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
            "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
        ];
        let headers: HashMap<&str, String> = names.into_iter().zip(values.iter().cloned()).collect();
        let header = |h: &str| headers.get(h).cloned();
        let _ = anthropic(&header, now);
        let _ = openai(&header);
        for v in &values {
            let _ = parse_rfc3339(v);
            let _ = parse_duration(v);
        }
    }

    #[test]
    fn options_never_panic_and_errors_name_the_option(n in any::<f64>(), s in any::<String>(), b in any::<bool>(), which in 0usize..6) {
        let raw = [Raw::Number(n), Raw::Text(s), Raw::Bool(b), Raw::Other("object".into()), Raw::Missing, Raw::Number(n.trunc())][which].clone();
        let cases = [
            ("concurrency", RawOptions { concurrency: raw.clone(), ..Default::default() }),
            ("maxResponseBytes", RawOptions { max_response_bytes: raw.clone(), ..Default::default() }),
            ("backoff.jitter", RawOptions { backoff: Some(RawBackoff { jitter: raw.clone(), ..Default::default() }), ..Default::default() }),
            ("deadlineMs", RawOptions { deadline_ms: raw.clone(), ..Default::default() }),
            ("rateLimit.requestsPerMinute", RawOptions { rate_limit: Some(RawRateLimit { requests_per_minute: raw.clone(), ..Default::default() }), ..Default::default() }),
        ];
        for (name, options) in cases {
            if let Err(e) = options.validate() {
                prop_assert!(e.message.starts_with(name), "{} does not name {}", e.message, name);
            }
        }
    }

    #[test]
    fn a_secret_never_survives_scrubbing(
        key in "[A-Za-z0-9_-]{6,60}",
        before in any::<String>(),
        after in any::<String>(),
        cut in 0usize..60,
    ) {
        let mut secrets = Secrets::default();
        secrets.add(&key);
        let piece: String = key.chars().skip(cut.min(key.len().saturating_sub(8))).take(8).collect();
        let text = format!("{before}{key}{after} and {piece}");
        let out = secrets.scrub(&text);
        prop_assert!(!out.contains(&key), "{out}");
        if key.len() >= 8 {
            prop_assert!(!out.contains(&piece), "{piece} in {out}");
        }
        // Idempotent: scrubbing what was scrubbed changes nothing more.
        prop_assert_eq!(secrets.scrub(&out), out.clone());
    }

    #[test]
    fn scrubbing_arbitrary_text_never_panics(key in any::<String>(), text in any::<String>()) {
        let mut secrets = Secrets::default();
        secrets.add(&key);
        let _ = secrets.scrub(&text);
    }
}
