//! The rate-limit headers APIs send on every reply, read into one typed snapshot.
//! Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`
//! with reset as RFC 3339. OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` with
//! reset as a duration like `6m0s` or `1m30.5s`. Malformed values are dropped, never guessed.

use std::time::Duration;

use super::headers::{parse_duration, parse_rfc3339};
use crate::text::parse_u64;

pub use crate::core::limits::{Limit, RateLimits};

fn integer(value: Option<String>) -> Option<u64> {
    parse_u64(value?.trim())
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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

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
}
