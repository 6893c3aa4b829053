//! Reading a generic HTTP error reply: the JSON error body Anthropic and OpenAI both use
//! (`{"error": {"type", "message", "details"?}}`) and the retry headers.

use crate::error::Failure;

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

/// Parses an error body leniently: anything that is not the expected JSON yields nothing.
pub fn parse_error_body(text: &str) -> ErrorBody {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
        return ErrorBody::default();
    };
    let error = json.get("error").filter(|e| e.is_object()).unwrap_or(&json);
    let string = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
    let code = |v: &serde_json::Value| {
        v.get("details")
            .and_then(|d| d.get("error_code"))
            .and_then(|c| c.as_str())
            == Some(SPEND_CAP_CODE)
    };
    ErrorBody {
        error_type: string(error.get("type")).filter(|t| t != "error"),
        message: string(error.get("message")),
        spend_cap: code(error) || code(&json),
    }
}

/// The failure for a non-2xx reply: status, the body's type and message, the retry headers.
/// `header` looks a response header up by its lower-case name.
pub fn failure_from_reply(
    status: u16,
    status_text: &str,
    body: &str,
    header: impl Fn(&str) -> Option<String>,
) -> Failure {
    let parsed = parse_error_body(body);
    let message = parsed
        .message
        .unwrap_or_else(|| format!("HTTP {status} {status_text}").trim_end().to_owned());
    Failure {
        error_type: parsed.error_type,
        spend_cap: parsed.spend_cap,
        retry_after_ms: header("retry-after-ms"),
        retry_after: header("retry-after"),
        should_retry: header("x-should-retry"),
        ..Failure::http(status, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        let anthropic = r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"}}"#;
        let capped = r#"{"type":"error","error":{"type":"rate_limit_error","message":"cap","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
        let openai = r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        let table: [(&str, Option<&str>, Option<&str>, bool); 6] = [
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
        ];
        for (body, ty, msg, cap) in table {
            let p = parse_error_body(body);
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
        let f = failure_from_reply(529, "", body, |h| {
            (h == "retry-after").then(|| "3".to_owned())
        });
        assert_eq!(f.status, Some(529));
        assert_eq!(f.error_type.as_deref(), Some("overloaded_error"));
        assert_eq!(f.message, "Overloaded");
        assert_eq!(f.retry_after.as_deref(), Some("3"));
        assert_eq!(f.retry_after_ms, None);
        let g = failure_from_reply(503, "Service Unavailable", "oops", |_| None);
        assert_eq!(g.message, "HTTP 503 Service Unavailable");
    }
}
