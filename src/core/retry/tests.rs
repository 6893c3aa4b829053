//! The retry table, one row per rule of the design's retry table, then the classification
//! the pacer shares and the verdicts' order.

use super::*;
use crate::core::backoff::Jitter;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// Always the same number: backoff delays become exact.
struct Fixed(f64);

impl Rng for Fixed {
    fn next_f64(&mut self) -> f64 {
        self.0
    }
}

fn http(status: u16) -> Failure {
    Failure::http(status, "x")
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        // No jitter: the backoff of retry n is 100 ms * 2^(n-1).
        backoff: Backoff::new(MS(100), MS(10_000), Jitter::None).unwrap(),
        max_server_wait: MS(60_000),
        fallbacks: Fallbacks::default(),
    }
}

fn first(now: u64) -> AttemptState {
    AttemptState {
        attempt: 1,
        now: MS(now),
        ..AttemptState::default()
    }
}

fn retry(ms: u64) -> Action {
    Action::Retry(MS(ms))
}

const NEVER: Action = Action::Fail(Refusal::Final { retryable: false });
const RAN_OUT: Action = Action::Fail(Refusal::Final { retryable: true });

/// Every row of DESIGN.md's "Retry rules": (rule, failure, where the attempt stands, action).
#[test]
fn the_retry_table() {
    let with_wait = |f: Failure, ms: u64| Failure {
        server_wait: Some(MS(ms)),
        ..f
    };
    let spend_cap = Failure {
        spend_cap: true,
        error_type: Some("rate_limit_error".into()),
        ..http(429)
    };
    let should = |f: Failure, verdict: bool| Failure {
        should_retry: Some(verdict),
        ..f
    };
    let third = AttemptState {
        attempt: 3,
        previous_delay: Some(MS(200)),
        ..first(0)
    };
    let last = AttemptState {
        attempt: 4,
        ..first(0)
    };
    let deadline = |at: u64| AttemptState {
        deadline: Some(MS(at)),
        ..first(1000)
    };
    let spent = AttemptState {
        budget_spent: true,
        ..first(0)
    };
    let rows: Vec<(&str, Failure, AttemptState, Action)> = vec![
        ("408 retries", http(408), first(0), retry(100)),
        ("409 retries", http(409), first(0), retry(100)),
        ("429 retries", http(429), first(0), retry(100)),
        ("500 retries", http(500), first(0), retry(100)),
        ("502 retries", http(502), first(0), retry(100)),
        ("503 retries", http(503), first(0), retry(100)),
        ("504 retries", http(504), first(0), retry(100)),
        ("529 retries", http(529), first(0), retry(100)),
        (
            "network errors retry",
            Failure::network("reset"),
            first(0),
            retry(100),
        ),
        (
            "attempt timeouts retry",
            Failure::timeout(MS(5)),
            first(0),
            retry(100),
        ),
        ("other 4xx never: 400", http(400), first(0), NEVER),
        ("other 4xx never: 401", http(401), first(0), NEVER),
        ("other 4xx never: 404", http(404), first(0), NEVER),
        ("other 4xx never: 422", http(422), first(0), NEVER),
        (
            "a caller abort never",
            Failure::new(ErrorKind::Aborted, "x"),
            first(0),
            NEVER,
        ),
        ("a spend-cap 429 never", spend_cap, first(0), NEVER),
        (
            "x-should-retry: true beats the table",
            should(http(400), true),
            first(0),
            retry(100),
        ),
        (
            "x-should-retry: false beats the table",
            should(http(503), false),
            first(0),
            NEVER,
        ),
        (
            "retry-after (ms or s, read at the edge) beats the backoff",
            with_wait(http(429), 1500),
            first(0),
            retry(1500),
        ),
        (
            "a server wait is capped",
            with_wait(http(503), 3_600_000),
            first(0),
            retry(60_000),
        ),
        ("else exponential backoff", http(503), third, retry(400)),
        ("no retry left", http(503), last, RAN_OUT),
        (
            "a spent budget refuses the retry",
            http(503),
            spent,
            Action::Fail(Refusal::Budget),
        ),
        (
            "a wait past the deadline fails now",
            with_wait(http(429), 5000),
            deadline(6000),
            Action::Fail(Refusal::PastDeadline { wait: MS(5000) }),
        ),
        (
            "a wait that ends before the deadline retries",
            with_wait(http(429), 4999),
            deadline(6000),
            retry(4999),
        ),
    ];
    for (rule, failure, state, want) in rows {
        let decision = policy().decide(&failure, &state, &mut Fixed(0.5));
        assert_eq!(decision.action, want, "{rule}");
    }
}

#[test]
fn past_the_deadline_there_is_no_pause() {
    let f = Failure {
        server_wait: Some(MS(5000)),
        ..http(429)
    };
    let state = AttemptState {
        deadline: Some(MS(5000)),
        ..first(0)
    };
    let d = policy().decide(&f, &state, &mut Fixed(0.5));
    assert_eq!((d.class, d.pause), (FailureClass::RateLimited, MS(0)));
    let d = policy().decide(&f, &first(0), &mut Fixed(0.5));
    assert_eq!(d.pause, MS(5000), "the pause is the retry's wait");
    let d = policy().decide(&http(400), &first(0), &mut Fixed(0.5));
    assert_eq!(d.pause, MS(0), "no wait for a failure that does not retry");
}

#[test]
fn refusals_become_errors_that_say_why() {
    let budget = AttemptBudget::new(Some(2));
    let f = || Failure {
        error_type: Some("overloaded_error".into()),
        ..Failure::http(529, "busy")
    };
    let e = Refusal::Final { retryable: true }.error(f(), &budget);
    assert_eq!(
        (e.kind, e.status, e.retryable, e.message.as_str()),
        (ErrorKind::Http, Some(529), true, "busy")
    );
    let e = Refusal::PastDeadline { wait: MS(2500) }.error(f(), &budget);
    assert_eq!(
        (e.kind, e.status, e.retryable, e.retry_after_ms),
        (ErrorKind::Deadline, Some(529), true, Some(2500))
    );
    assert_eq!(
        e.message,
        "retry would wait 2500 ms, past the deadline; last error: busy"
    );
    assert_eq!(e.error_type.as_deref(), Some("overloaded_error"));
    let e = Refusal::Budget.error(f(), &budget);
    assert_eq!((e.kind, e.retryable), (ErrorKind::Http, true));
    assert!(e
        .message
        .starts_with("retry refused, attempt budget exhausted"));
}

#[test]
fn the_backoff_draws_only_for_a_retryable_failure_without_a_server_wait() {
    struct Counting(u32);
    impl Rng for Counting {
        fn next_f64(&mut self) -> f64 {
            self.0 += 1;
            0.5
        }
    }
    let p = RetryPolicy {
        backoff: Backoff::new(MS(100), MS(10_000), Jitter::Full).unwrap(),
        ..policy()
    };
    let mut rng = Counting(0);
    let _ = p.decide(&http(400), &first(0), &mut rng);
    let waited = Failure {
        server_wait: Some(MS(1)),
        ..http(429)
    };
    let _ = p.decide(&waited, &first(0), &mut rng);
    assert_eq!(rng.0, 0);
    let out_of_retries = AttemptState {
        attempt: 9,
        ..first(0)
    };
    let d = p.decide(&http(503), &out_of_retries, &mut rng);
    assert_eq!(
        (d.action, rng.0),
        (RAN_OUT, 1),
        "drawn, as before the decision moved"
    );
}

#[test]
fn classes_the_pacer_matches_on() {
    let capped = Failure {
        spend_cap: true,
        ..http(429)
    };
    let table = [
        (http(429), FailureClass::RateLimited),
        (capped, FailureClass::SpendCap),
        (http(500), FailureClass::Overloaded),
        (http(529), FailureClass::Overloaded),
        (http(408), FailureClass::Transient),
        (http(409), FailureClass::Transient),
        (http(400), FailureClass::Rejected),
        (http(501), FailureClass::Rejected),
        (Failure::timeout(MS(1)), FailureClass::Timeout),
        (Failure::network("x"), FailureClass::Network),
        (Failure::new(ErrorKind::Aborted, "x"), FailureClass::Aborted),
        (
            Failure::new(ErrorKind::Deadline, "x"),
            FailureClass::Deadline,
        ),
        (Failure::new(ErrorKind::Invalid, "x"), FailureClass::Invalid),
        (Failure::new(ErrorKind::Budget, "x"), FailureClass::Budget),
        (Failure::new(ErrorKind::Task, "x"), FailureClass::Other),
        (Failure::default(), FailureClass::Other),
        (
            Failure {
                status: None,
                ..http(500)
            },
            FailureClass::Other,
        ),
    ];
    for (failure, want) in table {
        assert_eq!(FailureClass::of(&failure), want, "{failure:?}");
    }
}

#[test]
fn status_table() {
    let retry = [408, 409, 429, 500, 502, 503, 504, 529];
    let never = [200, 301, 400, 401, 403, 404, 405, 413, 422, 501, 505, 599];
    for s in retry {
        assert!(is_retryable(&http(s)), "{s} should retry");
        assert!(retryable_status(s), "{s}");
    }
    for s in never {
        assert!(!is_retryable(&http(s)), "{s} should not retry");
        assert!(!retryable_status(s), "{s}");
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
        (400, Some(true), true),
        (429, Some(false), false),
        (503, Some(false), false),
        (404, Some(true), true),
        // An unreadable header is no verdict (`providers::headers::parse_should_retry`).
        (503, None, true),
        (400, None, false),
    ];
    for (status, header, want) in cases {
        let f = Failure {
            should_retry: header,
            ..http(status)
        };
        assert_eq!(is_retryable(&f), want, "{status} x-should-retry={header:?}");
    }
    let capped = Failure {
        spend_cap: true,
        should_retry: Some(true),
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
    let both = Failure {
        retryable: Some(false),
        should_retry: Some(true),
        ..http(503)
    };
    assert!(
        !is_retryable(&both),
        "the task's verdict beats the server's"
    );
    let a = Failure {
        retryable: Some(true),
        ..Failure::new(ErrorKind::Aborted, "x")
    };
    assert!(!is_retryable(&a));
}

#[test]
fn a_shed_of_our_own_load_is_requeued_without_a_retry_up_to_max_retries_times() {
    let p = policy();
    let at = first(0);
    let deadline = Action::Fail(Refusal::PastDeadline { wait: MS(100) });
    // What a requeue changes: the wait, and a retry spent (or run out).
    for action in [retry(100), RAN_OUT, deadline] {
        assert!(p.requeues_shed(&action, &at, 0), "{action:?}");
        assert!(p.requeues_shed(&action, &at, 2), "{action:?}");
        assert!(
            !p.requeues_shed(&action, &at, 3),
            "{action:?}: max_retries 3 used"
        );
    }
    // What it does not: a failure not to retry, a spent budget.
    assert!(!p.requeues_shed(&NEVER, &at, 0));
    assert!(!p.requeues_shed(&Action::Fail(Refusal::Budget), &at, 0));
    let spent = AttemptState {
        budget_spent: true,
        ..at
    };
    assert!(!p.requeues_shed(&retry(100), &spent, 0));
}
