//! Reading a generic HTTP error reply: the JSON error body Anthropic and OpenAI both use
//! (`{"error": {"type", "message", "details"?}}`) and the retry headers.

use super::headers::{parse_should_retry, server_wait};
use crate::error::Failure;
use crate::text::has_byte;

/// The spend-cap marker in an Anthropic 429 body: waiting will not help.
pub const SPEND_CAP_CODE: &str = "enforced_spend_limit_reached";

/// What an error body says, when it is JSON of a known shape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorBody {
    /// `error.type`, e.g. `rate_limit_error`, `overloaded_error`, `invalid_request_error`.
    pub error_type: Option<String>,
    /// `error.message`.
    pub message: Option<String>,
    /// `error.details.error_code` is the spend-cap code.
    pub spend_cap: bool,
}

/// A read-only view of parsed JSON. The wasm edge implements it over JS values from the host's
/// own `JSON.parse` (no JSON parser in the wasm binary); native tests over `serde_json`.
pub trait Json: Sized {
    /// `self[key]` when `self` is an object that has it (and it is not null).
    fn field(&self, key: &str) -> Option<Self>;
    /// The value when it is a string.
    fn text(&self) -> Option<String>;
    /// Whether the value is a string, without reading it out (the wasm edge keeps long
    /// strings in JS).
    fn is_text(&self) -> bool {
        self.text().is_some()
    }
    /// The value when it is a number.
    fn number(&self) -> Option<f64>;
    /// The value when it is a boolean.
    fn boolean(&self) -> Option<bool>;
    /// The elements when it is an array (empty otherwise).
    fn items(&self) -> Vec<Self>;
}

/// Reads an error body of a known shape leniently: anything else yields nothing.
pub fn parse_error_body<J: Json>(json: &J) -> ErrorBody {
    let inner = json.field("error");
    let error = inner
        .as_ref()
        .filter(|e| e.field("type").is_some() || e.field("message").is_some());
    let error = error.unwrap_or(json);
    let is_cap = |v: &J| {
        v.field("details")
            .and_then(|d| d.field("error_code"))
            .and_then(|c| c.text())
            .as_deref()
            == Some(SPEND_CAP_CODE)
    };
    ErrorBody {
        error_type: error
            .field("type")
            .and_then(|t| t.text())
            .filter(|t| t != "error"),
        message: error.field("message").and_then(|m| m.text()),
        spend_cap: is_cap(error) || is_cap(json),
    }
}

/// The failure for a non-2xx reply: status, the body's type and message, the retry headers
/// (a date in `retry-after` is measured from `now_unix_ms`, when the reply arrived).
/// `header` looks a response header up by its lower-case name.
pub fn failure_from_reply<J: Json>(
    status: u16,
    status_text: &str,
    body: Option<&J>,
    header: impl Fn(&str) -> Option<String>,
    now_unix_ms: f64,
) -> Failure {
    Failure {
        server_wait: server_wait(
            header("retry-after-ms").as_deref(),
            header("retry-after").as_deref(),
            now_unix_ms,
        ),
        should_retry: header("x-should-retry")
            .as_deref()
            .and_then(parse_should_retry),
        ..failure_from_body(status, status_text, body)
    }
}

/// The failure a reply's status and body describe, without its headers.
fn failure_from_body<J: Json>(status: u16, status_text: &str, body: Option<&J>) -> Failure {
    let parsed = body.map(parse_error_body).unwrap_or_default();
    let message = parsed
        .message
        // `trim`, which is `trim_end` here (the text starts with "HTTP"): one trimmer in the
        // wasm, not two.
        .unwrap_or_else(|| format!("HTTP {status} {status_text}").trim().to_owned());
    Failure {
        error_type: parsed.error_type,
        spend_cap: parsed.spend_cap,
        ..Failure::http(status, message)
    }
}

/// A 2xx reply whose body is an error object — `{"type":"error","error":{...}}`, or
/// `{"error":{...}}` with no result beside it — as its error type classifies it
/// (`overloaded_error` retries like a 529): the status alone would call it a success.
pub fn error_in_success<J: Json>(status: u16, json: &J) -> Option<Failure> {
    let typed = json.field("type").and_then(|t| t.text()).as_deref() == Some("error");
    let bare = json.field("error").is_some()
        && json.field("content").is_none()
        && json.field("choices").is_none();
    if !typed && !bare {
        return None;
    }
    let mut failure = failure_from_body(status, "", Some(json));
    failure.retryable = failure
        .error_type
        .as_deref()
        .and_then(crate::core::retry::retryable_error_type);
    Some(failure)
}

/// The failure for a 3xx reply, which edgebatch never follows on its own: a provider's key
/// would go along to wherever `Location` points. Never retried (the same request gets the
/// same redirect). The message names only the target's host: the full URL may carry a token.
/// `status` is `None` for a browser's opaque redirect, which hides status and target alike.
pub fn redirect_failure(status: Option<u16>, location: Option<&str>) -> Failure {
    let target = match location.map(location_host) {
        Some(Some(host)) => format!("to host {host}"),
        Some(None) => "to a path on the same host".to_owned(),
        None => "(the target is not visible here)".to_owned(),
    };
    let code = status.map_or_else(|| "a redirect".to_owned(), |s| format!("HTTP {s}"));
    Failure {
        status,
        retryable: Some(false),
        ..Failure::new(
            crate::error::ErrorKind::Http,
            format!("redirect not followed: {code} {target} (requests are sent with redirect: \"manual\")"),
        )
    }
}

/// The host (and port) of an absolute or scheme-relative `Location`, without any user info;
/// `None` for a relative one. Byte scans, not `str` patterns: those bring a string searcher
/// (kilobytes of wasm) along.
fn location_host(location: &str) -> Option<String> {
    let location = location.trim();
    let b = location.as_bytes();
    let slashes = b.windows(2).position(|w| w == b"//")?;
    let scheme = &b[..slashes];
    if !(scheme.is_empty() || scheme.last() == Some(&b':') && !has_byte(scheme, b'/')) {
        return None;
    }
    let authority = slashes + 2;
    let end = b[authority..]
        .iter()
        .position(|c| matches!(c, b'/' | b'?' | b'#' | b'\\'))
        .map_or(b.len(), |n| authority + n);
    let start = b[authority..end]
        .iter()
        .rposition(|&c| c == b'@')
        .map_or(authority, |at| authority + at + 1);
    // At most 100 bytes; a character cut there shows as U+FFFD (as `from_utf8_lossy` showed
    // it, which brought 1 KB of wasm along). `get`, never `[..]`: a str's slicing panic
    // brings the Debug formatting of strings along (4 KB).
    let cut = end.min(start + 100);
    let mut whole = cut;
    while !location.is_char_boundary(whole) {
        whole -= 1;
    }
    let mut host = location
        .get(start..whole)
        .unwrap_or_default()
        .to_ascii_lowercase();
    if whole < cut {
        host.push('\u{fffd}');
    }
    Some(if host.is_empty() {
        "(none)".to_owned()
    } else {
        host
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::providers::test_json::parsed;
    use std::time::Duration;

    #[test]
    fn error_bodies() {
        let anthropic = r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"}}"#;
        let capped = r#"{"type":"error","error":{"type":"rate_limit_error","message":"cap","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
        let openai = r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        let table: [(&str, Option<&str>, Option<&str>, bool); 8] = [
            (
                anthropic,
                Some("rate_limit_error"),
                Some("Number of requests has exceeded your rate limit"),
                false,
            ),
            (capped, Some("rate_limit_error"), Some("cap"), true),
            (openai, Some("requests"), Some("Rate limit reached"), false),
            ("<html>502 Bad Gateway</html>", None, None, false),
            ("", None, None, false),
            (r#"{"error":"flat string"}"#, None, None, false),
            // An error object with a message and no type, or a type and no message.
            (r#"{"error":{"message":"boom"}}"#, None, Some("boom"), false),
            (
                r#"{"error":{"type":"overloaded_error"}}"#,
                Some("overloaded_error"),
                None,
                false,
            ),
        ];
        for (body, ty, msg, cap) in table {
            let p = parsed(body)
                .map(|j| parse_error_body(&j))
                .unwrap_or_default();
            assert_eq!(
                (p.error_type.as_deref(), p.message.as_deref(), p.spend_cap),
                (ty, msg, cap),
                "{body}"
            );
        }
    }

    #[test]
    fn failure_keeps_status_body_and_headers() {
        let body = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let f = failure_from_reply(
            529,
            "",
            parsed(body).as_ref(),
            |h| (h == "retry-after").then(|| "3".to_owned()),
            0.0,
        );
        assert_eq!(f.status, Some(529));
        assert_eq!(f.error_type.as_deref(), Some("overloaded_error"));
        assert_eq!(f.message, "Overloaded");
        assert_eq!(f.server_wait, Some(Duration::from_secs(3)));
        assert_eq!(f.should_retry, None);
        let g = failure_from_reply(
            503,
            "Service Unavailable",
            parsed("oops").as_ref(),
            |_| None,
            0.0,
        );
        assert_eq!(g.message, "HTTP 503 Service Unavailable");
        assert!(!f.spend_cap && !g.spend_cap);
        // A spend cap in the body is kept: such a 429 is never retried.
        let capped = r#"{"error":{"type":"rate_limit_error","message":"cap","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
        let h = failure_from_reply(429, "", parsed(capped).as_ref(), |_| None, 0.0);
        assert!(h.spend_cap);
    }

    #[test]
    fn failure_carries_every_retry_header() {
        let headers = [
            ("retry-after-ms", "1500"),
            ("retry-after", "2"),
            ("x-should-retry", "false"),
        ];
        fn header<'a>(pairs: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
            move |h| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == h)
                    .map(|(_, v)| v.to_string())
            }
        }
        let f = failure_from_reply(500, "", None::<&serde_json::Value>, header(&headers), 0.0);
        // `retry-after-ms` wins over `retry-after`.
        assert_eq!(
            (f.server_wait, f.should_retry),
            (Some(Duration::from_millis(1500)), Some(false))
        );
        assert_eq!(f.message, "HTTP 500");
        // An HTTP date counts from when the reply arrived; garbage is no verdict.
        let dated = [
            ("retry-after", "Thu, 01 Jan 1970 00:00:10 GMT"),
            ("x-should-retry", "perhaps"),
        ];
        let f = failure_from_reply(503, "", None::<&serde_json::Value>, header(&dated), 4000.0);
        assert_eq!(
            (f.server_wait, f.should_retry),
            (Some(Duration::from_secs(6)), None)
        );
    }

    #[test]
    fn a_redirect_names_the_host_only() {
        let f = redirect_failure(
            Some(302),
            Some("https://user:sk-secret@Evil.example:8443/steal?key=sk-secret#x"),
        );
        assert_eq!(f.status, Some(302));
        assert_eq!(f.retryable, Some(false));
        assert!(
            f.message.contains("HTTP 302 to host evil.example:8443"),
            "{}",
            f.message
        );
        assert!(
            !f.message.contains("secret") && !f.message.contains("steal"),
            "{}",
            f.message
        );
        let relative = redirect_failure(Some(307), Some("/v2/messages?token=t0k"));
        assert!(
            relative.message.contains("to a path on the same host"),
            "{}",
            relative.message
        );
        assert!(!relative.message.contains("t0k"));
        // A path whose query holds a URL is still a path.
        let nested = redirect_failure(Some(302), Some("/go?to=https://evil.example/"));
        assert!(
            nested.message.contains("to a path on the same host"),
            "{}",
            nested.message
        );
        assert!(redirect_failure(Some(301), Some("//cdn.example/x"))
            .message
            .contains("to host cdn.example"));
        // At most 100 bytes of the host; a character cut there shows as U+FFFD.
        let long = format!("https://{}\u{e9}.example/x", "A".repeat(99));
        let cut = redirect_failure(Some(302), Some(&long));
        let shown = format!("to host {}\u{fffd} (requests", "a".repeat(99));
        assert!(cut.message.contains(&shown), "{}", cut.message);
        assert!(
            redirect_failure(Some(302), Some("https://B\u{fc}cher.example/"))
                .message
                .contains("to host b\u{fc}cher.example (requests")
        );
        let opaque = redirect_failure(None, None);
        assert_eq!(opaque.status, None);
        assert!(
            opaque
                .message
                .starts_with("redirect not followed: a redirect"),
            "{}",
            opaque.message
        );
    }

    #[test]
    fn error_objects_in_a_2xx_reply() {
        let overloaded =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let f = error_in_success(200, &parsed(overloaded).unwrap()).unwrap();
        assert_eq!(f.status, Some(200));
        assert_eq!(f.error_type.as_deref(), Some("overloaded_error"));
        assert_eq!(
            (f.message.as_str(), f.retryable),
            ("Overloaded", Some(true))
        );
        assert!(crate::core::retry::is_retryable(&f));
        let bad = r#"{"error":{"type":"invalid_request_error","message":"no"}}"#;
        let f = error_in_success(200, &parsed(bad).unwrap()).unwrap();
        assert!(!crate::core::retry::is_retryable(&f));
        let ok = r#"{"type":"message","content":[],"error":null}"#;
        assert_eq!(error_in_success(200, &parsed(ok).unwrap()), None);
        let openai = r#"{"choices":[],"error":{"message":"partial"}}"#;
        assert_eq!(error_in_success(200, &parsed(openai).unwrap()), None);
    }
}

/// Error bodies on arbitrary JSON: never a panic, the status always kept.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use super::*;
    use crate::core::retry::is_retryable;
    use proptest::prelude::*;
    use serde_json::Value;

    /// Arbitrary JSON, biased towards the shapes error bodies have.
    fn json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("type".to_owned()),
            Just("error".to_owned()),
            Just("message".to_owned()),
            Just("details".to_owned()),
            Just("error_code".to_owned()),
            Just("content".to_owned()),
            "[a-z_]{0,8}",
        ];
        let text = prop_oneof![
            Just("error".to_owned()),
            Just("overloaded_error".to_owned()),
            Just(SPEND_CAP_CODE.to_owned()),
            any::<String>(),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>()
                .prop_map(|n| serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)),
            text.prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn error_bodies_never_panic(body in json(), status in 100u16..600) {
            let _ = parse_error_body(&body);
            let f = failure_from_reply(status, "x", Some(&body), |_| None, 0.0);
            prop_assert_eq!(f.status, Some(status));
            let _ = is_retryable(&f);
            if let Some(f) = error_in_success(200, &body) {
                prop_assert_eq!(f.status, Some(200));
                let _ = is_retryable(&f);
            }
        }
    }
}
