//! The errors of items a batch stops without a retry decision: cancelled or past the
//! deadline (before their start, while waiting to retry, during an attempt), or held back by
//! the pacer past the deadline, deferred or refused by a permit source. Each keeps what its
//! last attempt said.

use std::time::Duration;

use crate::error::{ErrorKind, Failure, ItemError};

/// Where an item was when its batch stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// It never started.
    BeforeStart,
    /// It was waiting out a backoff, or queued for its retry.
    WaitingToRetry,
    /// Its attempt was in flight (and is dropped, which aborts it).
    During(u32),
}

/// An item's final error with what its last attempt said (status, type, message).
fn with_last_failure(mut error: ItemError, last: Option<Failure>) -> ItemError {
    if let Some(last) = last {
        let head = std::mem::replace(&mut error.message, last.message);
        error.status = last.status;
        error.error_type = last.error_type;
        error.after_head(head);
    }
    error
}

/// The error of an item stopped by cancellation (`kind` [`ErrorKind::Aborted`]) or by the
/// deadline (any other kind: [`ErrorKind::Deadline`]).
#[must_use]
pub fn stopped(kind: ErrorKind, at: Stopped, last: Option<Failure>) -> ItemError {
    let what = if kind == ErrorKind::Aborted {
        "cancelled"
    } else {
        "deadline reached"
    };
    let message = match at {
        Stopped::BeforeStart => format!("{what} before the item started"),
        Stopped::WaitingToRetry => format!("{what} while waiting to retry"),
        Stopped::During(attempt) => format!("{what} during attempt {attempt}"),
    };
    with_last_failure(ItemError::bare(kind, message), last)
}

/// The pacer holds an item back (a 429's pause, a budget, the breaker) for `wait`, past the
/// deadline: it fails now, saying the wait, rather than idle until the deadline.
#[must_use]
pub fn held_past_deadline(wait: Duration, last: Option<Failure>) -> ItemError {
    let ms = wait.as_millis() as u64;
    let message =
        format!("the processor's pacing holds new attempts for {ms} ms, past the deadline");
    retryable_after(ErrorKind::Deadline, message, ms, last)
}

/// An error retryable after `ms`, with what the last attempt said.
fn retryable_after(kind: ErrorKind, message: String, ms: u64, last: Option<Failure>) -> ItemError {
    let mut error = with_last_failure(ItemError::bare(kind, message), last);
    error.retryable = true;
    error.retry_after_ms = Some(ms);
    error
}

/// A permit source deferred the batch: the item ends without (another) attempt, retryable
/// once what is left of the deferral (`left`) has passed.
#[must_use]
pub fn deferred(left: Duration, reason: &str, last: Option<Failure>) -> ItemError {
    let ms = left.as_millis() as u64;
    let message = format!("deferred by the rate limiter for {ms} ms: {reason}");
    retryable_after(ErrorKind::Deferred, message, ms, last)
}

/// A permit source says this item can never be sent.
#[must_use]
pub fn refused_by_limiter(why: &str) -> ItemError {
    ItemError::bare(
        ErrorKind::Invalid,
        format!("refused by the rate limiter: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stop_says_when_it_came() {
        let table = [
            (
                ErrorKind::Aborted,
                Stopped::BeforeStart,
                "cancelled before the item started",
            ),
            (
                ErrorKind::Aborted,
                Stopped::During(2),
                "cancelled during attempt 2",
            ),
            (
                ErrorKind::Deadline,
                Stopped::WaitingToRetry,
                "deadline reached while waiting to retry",
            ),
            (
                ErrorKind::Deadline,
                Stopped::During(1),
                "deadline reached during attempt 1",
            ),
        ];
        for (kind, at, want) in table {
            let e = stopped(kind, at, None);
            assert_eq!(
                (e.kind, e.message.as_str(), e.retryable),
                (kind, want, false)
            );
        }
    }

    #[test]
    fn the_last_failure_is_kept() {
        let last = Failure {
            error_type: Some("overloaded_error".into()),
            ..Failure::http(529, "busy")
        };
        let e = stopped(
            ErrorKind::Deadline,
            Stopped::WaitingToRetry,
            Some(last.clone()),
        );
        assert_eq!(
            (e.status, e.error_type.as_deref(), e.message.as_str()),
            (
                Some(529),
                Some("overloaded_error"),
                "deadline reached while waiting to retry; last error: busy"
            )
        );
        let e = held_past_deadline(Duration::from_millis(1500), Some(last));
        assert_eq!(
            (e.kind, e.retryable, e.retry_after_ms, e.status),
            (ErrorKind::Deadline, true, Some(1500), Some(529))
        );
        assert_eq!(
            e.message,
            "the processor's pacing holds new attempts for 1500 ms, past the deadline; \
             last error: busy"
        );
        let bare = held_past_deadline(Duration::from_millis(7), None);
        assert_eq!(bare.status, None);
    }
}
