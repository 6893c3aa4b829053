//! Which failures are worth another attempt. Pure functions over [`Failure`], table-tested.

use crate::error::{ErrorKind, Failure};

/// HTTP statuses that mean "try again": timeout, conflict, rate limit, server trouble and
/// Anthropic's 529 overloaded.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529)
}

/// The verdict of an API error type, for an error whose status says nothing (a 2xx whose
/// body is an error object): overloaded, server and rate-limit errors retry like 529, 500
/// and 429; errors about the request itself do not. Unknown types: no verdict.
pub fn retryable_error_type(error_type: &str) -> Option<bool> {
    match error_type {
        "overloaded_error" | "api_error" | "rate_limit_error" | "timeout_error" => Some(true),
        "invalid_request_error"
        | "authentication_error"
        | "permission_error"
        | "not_found_error"
        | "request_too_large"
        | "billing_error" => Some(false),
        _ => None,
    }
}

/// Reads `x-should-retry`: the server's explicit verdict, which beats the status table.
pub fn parse_should_retry(value: &str) -> Option<bool> {
    match value.trim() {
        v if v.eq_ignore_ascii_case("true") => Some(true),
        v if v.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Whether a failed attempt may be retried (given retries are left).
///
/// Order: a caller abort, a deadline, an invalid item or a spent budget never retry; then the task's own
/// verdict; then the server's `x-should-retry`; a spend cap never; then the kind and the
/// status table.
pub fn is_retryable(failure: &Failure) -> bool {
    let kind = failure.kind();
    if matches!(
        kind,
        ErrorKind::Aborted | ErrorKind::Deadline | ErrorKind::Invalid | ErrorKind::Budget
    ) {
        return false;
    }
    if let Some(verdict) = failure.retryable {
        return verdict;
    }
    if let Some(verdict) = failure.should_retry.as_deref().and_then(parse_should_retry) {
        return verdict;
    }
    if failure.spend_cap {
        return false;
    }
    match kind {
        ErrorKind::Timeout | ErrorKind::Network => true,
        ErrorKind::Http => failure.status.is_some_and(retryable_status),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16) -> Failure {
        Failure::http(status, "x")
    }

    #[test]
    fn status_table() {
        let retry = [408, 409, 429, 500, 502, 503, 504, 529];
        let never = [200, 301, 400, 401, 403, 404, 405, 413, 422, 501, 505, 599];
        for s in retry {
            assert!(is_retryable(&http(s)), "{s} should retry");
        }
        for s in never {
            assert!(!is_retryable(&http(s)), "{s} should not retry");
        }
    }

    #[test]
    fn error_types() {
        assert_eq!(retryable_error_type("overloaded_error"), Some(true));
        assert_eq!(retryable_error_type("rate_limit_error"), Some(true));
        assert_eq!(retryable_error_type("invalid_request_error"), Some(false));
        assert_eq!(retryable_error_type("something_new"), None);
    }

    #[test]
    fn kinds() {
        let table = [
            (ErrorKind::Timeout, true),
            (ErrorKind::Network, true),
            (ErrorKind::Task, false),
            (ErrorKind::Aborted, false),
            (ErrorKind::Deadline, false),
            (ErrorKind::Invalid, false),
            (ErrorKind::Budget, false),
        ];
        for (kind, want) in table {
            assert_eq!(is_retryable(&Failure::new(kind, "x")), want, "{kind}");
        }
        assert!(!is_retryable(&Failure {
            kind: None,
            ..Failure::default()
        }));
    }

    #[test]
    fn spend_cap_429_is_final() {
        let f = Failure {
            spend_cap: true,
            ..http(429)
        };
        assert!(!is_retryable(&f));
    }

    #[test]
    fn x_should_retry_overrides_the_table() {
        let cases = [
            (400, "true", true),
            (429, "false", false),
            (503, "FALSE", false),
            (404, " True ", true),
            (503, "maybe", true),
            (400, "", false),
        ];
        for (status, header, want) in cases {
            let f = Failure {
                should_retry: Some(header.into()),
                ..http(status)
            };
            assert_eq!(is_retryable(&f), want, "{status} x-should-retry={header:?}");
        }
        let capped = Failure {
            spend_cap: true,
            should_retry: Some("true".into()),
            ..http(429)
        };
        assert!(is_retryable(&capped), "the server's explicit verdict wins");
    }

    #[test]
    fn task_verdict_wins_but_never_over_abort() {
        let t = Failure {
            retryable: Some(true),
            ..Failure::new(ErrorKind::Task, "x")
        };
        assert!(is_retryable(&t));
        let h = Failure {
            retryable: Some(false),
            ..http(503)
        };
        assert!(!is_retryable(&h));
        let a = Failure {
            retryable: Some(true),
            ..Failure::new(ErrorKind::Aborted, "x")
        };
        assert!(!is_retryable(&a));
    }
}
