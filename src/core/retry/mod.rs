//! THE retry rule. A failure is classified once ([`FailureClass`]); the retry decision and the
//! pacer both match on that class. [`RetryPolicy::decide`] is the one pure decision, from the
//! failure, the attempt, the retries left, the attempt budget, the deadline, the server's wait
//! and the backoff: retry after `D`, move to alternative `k` (a fallback, `fallback.rs`), or
//! fail with `E`. The executor only carries it out. Every row of the design's retry table is
//! a row of the table test in `retry/tests.rs`.

use std::time::Duration;

use super::backoff::Backoff;
use super::budget::AttemptBudget;
use super::rng::Rng;
use crate::error::{ErrorKind, Failure, ItemError};

mod fallback;
pub use fallback::{is_overload, Fallbacks, Standing};

/// What a failure is, for every rule that reacts to one: whether to retry it, and what the
/// pacer learns from it (pause, cut concurrency, count towards the breaker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// 429 without a spend cap: over the account's rate limit; waiting helps.
    RateLimited,
    /// An HTTP error whose body says the spend/quota cap is reached: waiting will not help.
    SpendCap,
    /// 500, 502, 503, 504 or Anthropic's 529: the service is struggling.
    Overloaded,
    /// 408 (request timeout) or 409 (conflict): the server asks to try again, and is not down.
    Transient,
    /// Any other status: an answer about the request itself (a client error, mostly).
    Rejected,
    /// The attempt ran past its timeout and was aborted.
    Timeout,
    /// No answer at all: DNS, a reset or refused connection, CORS.
    Network,
    /// The caller cancelled.
    Aborted,
    /// The batch deadline passed.
    Deadline,
    /// The item is malformed.
    Invalid,
    /// The call's attempt budget is spent.
    Budget,
    /// Nothing the table knows: the task's own error, or an HTTP error without a status.
    Other,
}

impl FailureClass {
    /// Classifies a failure by its kind, status and spend-cap flag.
    #[must_use]
    pub fn of(failure: &Failure) -> Self {
        match failure.kind() {
            ErrorKind::Timeout => FailureClass::Timeout,
            ErrorKind::Network => FailureClass::Network,
            ErrorKind::Aborted => FailureClass::Aborted,
            ErrorKind::Deadline => FailureClass::Deadline,
            ErrorKind::Invalid => FailureClass::Invalid,
            ErrorKind::Budget => FailureClass::Budget,
            // `process` is the post-processing stage's (core/post.rs), `deferred` and
            // `cost_cap` the batch's (a permit source's, `maxCostUsd`): never an attempt's.
            ErrorKind::Task | ErrorKind::Process | ErrorKind::Deferred | ErrorKind::CostCap => {
                FailureClass::Other
            }
            ErrorKind::Http => match failure.status {
                _ if failure.spend_cap => FailureClass::SpendCap,
                Some(429) => FailureClass::RateLimited,
                Some(500 | 502 | 503 | 504 | 529) => FailureClass::Overloaded,
                Some(408 | 409) => FailureClass::Transient,
                Some(_) => FailureClass::Rejected,
                None => FailureClass::Other,
            },
        }
    }

    /// Failures no verdict can make retryable: the caller, the deadline, the item or the
    /// budget said stop.
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(
            self,
            FailureClass::Aborted
                | FailureClass::Deadline
                | FailureClass::Invalid
                | FailureClass::Budget
        )
    }

    /// The table's verdict, when neither the task nor the server gave one.
    #[must_use]
    pub fn retries_by_default(self) -> bool {
        matches!(
            self,
            FailureClass::RateLimited
                | FailureClass::Overloaded
                | FailureClass::Transient
                | FailureClass::Timeout
                | FailureClass::Network
        )
    }
}

/// HTTP statuses that mean "try again": timeout, conflict, rate limit, server trouble and
/// Anthropic's 529 overloaded.
#[must_use]
pub fn retryable_status(status: u16) -> bool {
    FailureClass::of(&Failure::http(status, "")).retries_by_default()
}

/// The verdict of an API error type, for an error whose status says nothing (a 2xx whose
/// body is an error object): overloaded, server and rate-limit errors retry like 529, 500
/// and 429; errors about the request itself do not. Unknown types: no verdict.
#[must_use]
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

/// Whether a failure of this class may be retried (given retries are left).
///
/// Order: a final class never; then the task's own verdict; then the server's
/// `x-should-retry`; then the class's default (a spend cap never).
#[must_use]
#[inline]
pub fn is_retryable_as(failure: &Failure, class: FailureClass) -> bool {
    if class.is_final() {
        return false;
    }
    failure
        .retryable
        .or(failure.should_retry)
        .unwrap_or_else(|| class.retries_by_default())
}

/// [`is_retryable_as`] with the failure's own class.
#[must_use]
pub fn is_retryable(failure: &Failure) -> bool {
    is_retryable_as(failure, FailureClass::of(failure))
}

/// The retry settings of one batch.
///
/// # Default
/// 4 retries, the default [`Backoff`] (500 ms doubling to 30 s, full jitter), a server's
/// wait capped at 60 s (see `report::Config`), no fallbacks. The retries and the deadline are
/// the item's across all its alternatives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The delay when the server gives none.
    pub backoff: Backoff,
    /// The longest server wait (Retry-After) honoured; longer ones are cut to this.
    pub max_server_wait: Duration,
    /// The alternatives an item may move to.
    pub fallbacks: Fallbacks,
}

/// Where a failed attempt stands, as the executor knows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttemptState {
    /// The attempt that failed, from 1, not counting the item's requeued sheds
    /// ([`RetryPolicy::requeues_shed`]): the retries it used, plus one.
    pub attempt: u32,
    /// Now, on the batch's clock.
    pub now: Duration,
    /// When the batch's deadline passes, if it has one.
    pub deadline: Option<Duration>,
    /// The delay this item waited before this attempt (decorrelated jitter builds on it).
    pub previous_delay: Option<Duration>,
    /// No attempt is left in the call's budget.
    pub budget_spent: bool,
    /// The alternative the attempt went to (0: the first choice).
    pub route: usize,
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start the next attempt after this delay, on the same alternative.
    Retry(Duration),
    /// Start the next attempt on alternative `to` after `delay`: now when it comes later in
    /// the list, after the backoff when the move wraps round to the first choice (every
    /// alternative failed in turn). It uses a retry, like [`Action::Retry`].
    Move {
        /// The alternative.
        to: usize,
        /// How long the item waits first.
        delay: Duration,
    },
    /// The item fails (see [`Refusal::error`]).
    Fail(Refusal),
}

/// Why a failed attempt is not retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not retryable, or no retry left; `retryable` says which the failure was.
    Final {
        /// Whether the failure itself was retryable (the retries ran out).
        retryable: bool,
    },
    /// The call's attempt budget is spent.
    Budget,
    /// The retry would wait `wait`, past the deadline: fail now, saying the wait.
    PastDeadline {
        /// The wait the retry needed.
        wait: Duration,
    },
}

impl Refusal {
    /// The item's final error, from its last failure.
    #[must_use]
    pub fn error(self, failure: Failure, budget: &AttemptBudget) -> ItemError {
        match self {
            Refusal::Final { retryable } => ItemError::from_failure(failure, retryable),
            Refusal::Budget => budget.refused(failure),
            Refusal::PastDeadline { wait } => {
                let ms = wait.as_millis() as u64;
                let mut error = ItemError::from_failure(failure, true);
                error.kind = ErrorKind::Deadline;
                error.after_head(format!("retry would wait {ms} ms, past the deadline"));
                error.retry_after_ms = Some(ms);
                error
            }
        }
    }
}

/// The decision about one failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The failure's class, for the pacer.
    pub class: FailureClass,
    /// How long a rate-limited failure pauses every dispatch: the retry's delay, or zero when
    /// that delay passes the deadline (a pause past it would only hold back healthy items).
    pub pause: Duration,
    /// Retry or fail.
    pub action: Action,
}

impl RetryPolicy {
    /// The delay before the retry of `state.attempt`: the server's wait when it gave one
    /// (capped), else the backoff.
    fn delay(&self, failure: &Failure, state: &AttemptState, rng: &mut dyn Rng) -> Duration {
        failure.server_wait.map_or_else(
            || self.backoff.delay(state.attempt, state.previous_delay, rng),
            |wait| wait.min(self.max_server_wait),
        )
    }

    /// Decides what follows a failed attempt. The backoff draws from `rng` only for a
    /// retryable failure without a server wait, whether or not a retry is left, and for a
    /// move that wraps round to the first choice.
    #[must_use]
    pub fn decide(&self, failure: &Failure, state: &AttemptState, rng: &mut dyn Rng) -> Decision {
        let class = FailureClass::of(failure);
        let retryable = is_retryable_as(failure, class);
        let delay = if retryable {
            self.delay(failure, state, rng)
        } else {
            Duration::ZERO
        };
        let passes = |wait: Duration| matches!(state.deadline, Some(d) if state.now + wait >= d);
        let past_deadline = passes(delay);
        let pause = if past_deadline { Duration::ZERO } else { delay };
        let moves = retryable
            && self
                .fallbacks
                .moves(failure, class, delay, state.now, state.deadline);
        let action = if !retryable || state.attempt > self.max_retries {
            Action::Fail(Refusal::Final { retryable })
        } else if state.budget_spent {
            Action::Fail(Refusal::Budget)
        } else if moves {
            let to = self.fallbacks.next(state.route);
            let wait = if to > state.route {
                Duration::ZERO
            } else {
                self.backoff.delay(state.attempt, state.previous_delay, rng)
            };
            if passes(wait) {
                Action::Fail(Refusal::PastDeadline { wait })
            } else {
                Action::Move { to, delay: wait }
            }
        } else if past_deadline {
            Action::Fail(Refusal::PastDeadline { wait: delay })
        } else {
            Action::Retry(delay)
        };
        Decision {
            class,
            pause,
            action,
        }
    }

    /// A failed attempt that the concurrency controller blames on our own load (a shed of
    /// an attempt sent past the server's capacity, see `Controller::blames_our_load`) is not
    /// the item's failure: the item goes back to the head of the queue at once, without a
    /// backoff and without using a retry, where the held slot or the lowered limit, not a
    /// timer, decides when it goes again. `sheds` such requeues of the item so far: at most
    /// `max_retries` per item, after which a shed is an ordinary failure (so an item makes at
    /// most `2 × max_retries + 1` attempts). Never when `action` fails the item for a reason
    /// a requeue does not change: a failure that is not retryable, or a spent attempt budget;
    /// nor when it moves the item to another alternative (the move is the remedy).
    #[must_use]
    pub fn requeues_shed(&self, action: &Action, state: &AttemptState, sheds: u32) -> bool {
        sheds < self.max_retries
            && !state.budget_spent
            && matches!(
                action,
                Action::Retry(_)
                    | Action::Fail(Refusal::Final { retryable: true })
                    | Action::Fail(Refusal::PastDeadline { .. })
            )
    }
}

#[cfg(test)]
mod tests;
