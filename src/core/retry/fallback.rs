//! Fallbacks, part of the retry rule: when a failed attempt moves its item to another
//! alternative (the next model or upstream of the `fallbacks` list) instead of retrying where
//! it is, and which alternative a queued item is sent to.
//!
//! An item moves on an overload (503, 529, `overloaded_error`) or on a rate limit whose wait
//! passes the deadline or `fallbackAfterMs`: the first failure says so, so the move comes at
//! once, not after the retries are spent. Never on a failure about the request itself (those
//! are not retried anywhere). A queued item skips an alternative whose breaker is open (or
//! whose probe is out) or whose pacer holds everything past `fallbackAfterMs` or the deadline,
//! and goes back to its own as soon as that one takes requests again: one overload does not
//! move the whole batch for good.

use std::time::Duration;

use super::FailureClass;
use crate::error::Failure;

/// The alternatives of a batch: the first choice and its fallbacks.
///
/// # Default
/// One alternative (no fallbacks), no `fallbackAfterMs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fallbacks {
    /// How many alternatives, the first choice included (1: no fallbacks).
    pub alternatives: usize,
    /// A rate-limit wait longer than this moves the item (`fallbackAfterMs`).
    pub after: Option<Duration>,
}

impl Default for Fallbacks {
    fn default() -> Self {
        Fallbacks {
            alternatives: 1,
            after: None,
        }
    }
}

/// How an alternative stands for a queued item, as its pacer answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// It takes the request now.
    Go,
    /// Its budgets or its pause after a 429 hold every request until then.
    Until(Duration),
    /// Its breaker is open (or its probe is out), or the request never fits its budgets.
    Down,
}

/// Whether a failure says the upstream is overloaded: 503, 529 or an `overloaded_error` body.
#[must_use]
pub fn is_overload(failure: &Failure) -> bool {
    matches!(failure.status, Some(503 | 529))
        || failure.error_type.as_deref() == Some("overloaded_error")
}

impl Fallbacks {
    /// Whether a retryable failure of class `class` on any alternative moves the item, given the
    /// retry's `delay` and where the deadline stands.
    #[must_use]
    pub fn moves(
        &self,
        failure: &Failure,
        class: FailureClass,
        delay: Duration,
        now: Duration,
        deadline: Option<Duration>,
    ) -> bool {
        self.alternatives > 1
            && (is_overload(failure)
                || class == FailureClass::RateLimited
                    && (self.after.is_some_and(|after| delay > after)
                        || deadline.is_some_and(|d| now + delay >= d)))
    }

    /// The alternative after `from`, wrapping to the first choice.
    #[must_use]
    pub fn next(&self, from: usize) -> usize {
        (from + 1) % self.alternatives.max(1)
    }

    /// Whether an alternative that holds requests until `until` takes one soon enough: before
    /// the deadline, and within `fallbackAfterMs` when it is set.
    fn soon(&self, until: Duration, now: Duration, deadline: Option<Duration>) -> bool {
        let wait = until.saturating_sub(now);
        deadline.is_none_or(|d| until < d) && self.after.is_none_or(|after| wait <= after)
    }

    /// Which alternative a queued item is sent to: its own (`from`) when that one takes it
    /// soon ([`Standing`]), else the first that does, in order after it (wrapping round, so an
    /// item moved away returns to the first choice once it recovers); when none does, its own
    /// (where it waits, paced like any request).
    pub fn pick(
        &self,
        from: usize,
        now: Duration,
        deadline: Option<Duration>,
        mut standing: impl FnMut(usize) -> Standing,
    ) -> usize {
        let n = self.alternatives.max(1);
        (0..n)
            .map(|k| (from + k) % n)
            .find(|&k| match standing(k) {
                Standing::Go => true,
                Standing::Until(until) => self.soon(until, now, deadline),
                Standing::Down => false,
            })
            .unwrap_or(from)
    }
}
