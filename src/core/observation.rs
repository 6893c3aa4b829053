//! What the end of one attempt tells whatever adapts to it (the pacer: its budgets, the pause
//! after a 429, AIMD, the breaker). One struct, so a new signal is a new field, not a new
//! argument on every path from the executor (or the permit pool) to the pacer.

use std::time::Duration;

use super::limits::{Cost, Feedback};
use super::retry::FailureClass;
use crate::error::Failure;

/// How much had been sent, per budget (requests, tokens, input tokens, output tokens), up to
/// and including one request. A reply's headers cannot count what was sent after its request:
/// syncing subtracts that.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ticket(pub(super) [f64; 4]);

/// How an attempt ended.
#[derive(Clone, Copy, Debug)]
pub enum Observed<'a> {
    /// A value: its usage and the reply's rate-limit headers.
    Success(&'a Feedback),
    /// A failure, classified once by the retry rule.
    Failure {
        /// The failure (its rate-limit headers, its server wait).
        failure: &'a Failure,
        /// Its class (`retry::FailureClass::of`).
        class: FailureClass,
        /// How long a rate-limited failure pauses every dispatch (the retry's delay; zero when
        /// that delay passes the deadline).
        pause: Duration,
    },
}

/// One attempt's end, as the executor (or the permit pool) saw it.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// The cost reserved for it.
    pub cost: &'a Cost,
    /// The pacer's ticket from when it was sent.
    pub ticket: &'a Ticket,
    /// When it was sent.
    pub started: Duration,
    /// When it ended.
    pub ended: Duration,
    /// Attempts in flight when it was sent, itself included.
    pub in_flight_at_start: usize,
    /// How it ended.
    pub outcome: Observed<'a>,
}
