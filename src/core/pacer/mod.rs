//! The pacer: one place that decides whether the next request may go now — rate budgets,
//! the global pause after a 429, adaptive concurrency and the circuit breaker — and learns
//! from every outcome. One pacer per processor, so what it learns outlives a single batch.

use std::cell::RefCell;
use std::task::Waker;
use std::time::Duration;

use super::adaptive::{self, Breaker, Controller, Gate, Outcome, Reason};
use super::limits::{Cost, Feedback, Fit, RateLimits, TokenBucket};
pub use super::observation::Ticket;
use super::observation::{Observation, Observed};
use super::retry::{FailureClass, Standing};
use crate::error::Failure;

/// Pacing settings (JS: `rateLimit`, `adaptive`, `breaker`).
#[derive(Clone, Debug, PartialEq)]
pub struct PacingConfig {
    /// Requests per minute budget, a starting guess the headers correct.
    pub requests_per_minute: Option<u64>,
    /// Input tokens per minute.
    pub input_tokens_per_minute: Option<u64>,
    /// Output tokens per minute.
    pub output_tokens_per_minute: Option<u64>,
    /// Lower the concurrency when failures follow our own load (see [`Controller`]).
    pub adaptive: bool,
    /// A 429 pauses every dispatch until its wait is over, not just its own item.
    pub pause_on_rate_limit: bool,
    /// Replies' rate-limit headers update the budgets (and create them when none is set).
    pub follow_headers: bool,
    /// Consecutive outage failures that open the breaker (0: never).
    pub breaker_failures: u32,
    /// How long an open breaker waits before its probe.
    pub breaker_cooldown: Duration,
}

impl Default for PacingConfig {
    fn default() -> Self {
        PacingConfig {
            requests_per_minute: None,
            input_tokens_per_minute: None,
            output_tokens_per_minute: None,
            adaptive: true,
            pause_on_rate_limit: true,
            follow_headers: true,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_millis(500),
        }
    }
}

impl PacingConfig {
    /// No budgets, no adaptation, no breaker: a plain bounded-concurrency executor.
    pub fn off() -> Self {
        PacingConfig {
            adaptive: false,
            pause_on_rate_limit: false,
            follow_headers: false,
            breaker_failures: 0,
            ..PacingConfig::default()
        }
    }
}

/// The pacer's answer for the next request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Send it now.
    Go,
    /// Nothing may be sent before then; the request keeps its place.
    Until(Duration),
    /// Wait for an attempt in flight to finish (the breaker's probe).
    Blocked,
    /// This request can never fit a budget.
    Never(String),
}

/// How many rate-limited requests the pacer remembers for its syncs.
const MAX_REJECTED: usize = 1024;

/// See the module docs.
#[derive(Clone, Debug)]
pub struct Pacer {
    /// Sent so far: requests, tokens, input tokens, output tokens.
    sent: [f64; 4],
    /// The request counts of recent tickets whose request was rate limited (not counted by
    /// the server), to leave them out of "sent since". A `Vec`, not a `VecDeque`: the oldest
    /// leaves only once there are `MAX_REJECTED`, and a `VecDeque` of its own was 0.1 KB of wasm.
    rejected: Vec<f64>,
    requests: TokenBucket,
    tokens: TokenBucket,
    input: TokenBucket,
    output: TokenBucket,
    paused_until: Option<Duration>,
    pause_on_rate_limit: bool,
    follow_headers: bool,
    controller: Controller,
    breaker: Breaker,
    /// Attempts in flight, across every call that shares this pacer (one processor's
    /// `concurrency` bounds all its calls together), in the order sent: each one's request
    /// count (its ticket's) and cost per budget.
    pending: Vec<(f64, [f64; 4])>,
    /// Calls waiting for a slot that another call holds, woken when one is released.
    slot_waiters: Vec<Waker>,
}

fn bucket(per_minute: Option<u64>, now: Duration) -> TokenBucket {
    per_minute.map_or_else(TokenBucket::unknown, |n| TokenBucket::per_minute(n, now))
}

impl Pacer {
    /// A pacer for at most `max_concurrency` attempts at once.
    pub fn new(config: &PacingConfig, max_concurrency: usize, now: Duration) -> Self {
        Pacer {
            sent: [0.0; 4],
            rejected: Vec::new(),
            requests: bucket(config.requests_per_minute, now),
            tokens: TokenBucket::unknown(),
            input: bucket(config.input_tokens_per_minute, now),
            output: bucket(config.output_tokens_per_minute, now),
            paused_until: None,
            pause_on_rate_limit: config.pause_on_rate_limit,
            follow_headers: config.follow_headers,
            controller: Controller::new(max_concurrency, config.adaptive),
            breaker: Breaker::new(config.breaker_failures, config.breaker_cooldown),
            pending: Vec::new(),
            slot_waiters: Vec::new(),
        }
    }

    /// A pacer that only shares its `max_concurrency` slots: no budgets, no adaptation, no
    /// breaker ([`PacingConfig::off`]).
    #[must_use]
    pub fn unpaced(max_concurrency: usize) -> RefCell<Pacer> {
        RefCell::new(Pacer::new(
            &PacingConfig::off(),
            max_concurrency,
            Duration::ZERO,
        ))
    }

    /// Attempts allowed in flight now.
    pub fn concurrency(&self) -> usize {
        self.controller.limit()
    }

    /// Why [`Pacer::concurrency`] is what it is.
    pub fn concurrency_reason(&self) -> Reason {
        self.controller.reason()
    }

    /// Tells the controller how an attempt sent with `level` in flight ended; true when it
    /// blames the failure on our own load.
    fn learn(&mut self, o: &Observation<'_>, outcome: Outcome) -> bool {
        let seen = adaptive::Observation {
            level: o.in_flight_at_start,
            started: o.started,
            ended: o.ended,
            outcome,
        };
        self.controller.observe(&seen);
        self.controller.blames_our_load(&seen)
    }

    /// Attempts in flight now, in every call sharing this pacer.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Wakes `waker` when an attempt ends (a call waiting for a slot another call holds).
    pub fn wait_for_slot(&mut self, waker: &Waker) {
        if !self.slot_waiters.iter().any(|w| w.will_wake(waker)) {
            self.slot_waiters.push(waker.clone());
        }
    }

    /// The attempt of `ticket` is over, whatever its outcome: its slot is free for every call.
    fn release(&mut self, ticket: &Ticket) {
        if let Some(i) = self.pending.iter().position(|(n, _)| *n == ticket.0[0]) {
            self.pending.remove(i);
        }
        for waker in self.slot_waiters.drain(..) {
            waker.wake();
        }
    }

    /// Until when dispatch is paused after a 429, if it is.
    pub fn paused_until(&self, now: Duration) -> Option<Duration> {
        self.paused_until.filter(|until| *until > now)
    }

    fn buckets(&mut self, cost: &Cost) -> [(&mut TokenBucket, f64, &'static str); 4] {
        let (i, o) = (cost.input_tokens as f64, cost.output_tokens as f64);
        [
            (&mut self.requests, 1.0, "requests"),
            (&mut self.tokens, i + o, "tokens"),
            (&mut self.input, i, "input tokens"),
            (&mut self.output, o, "output tokens"),
        ]
    }

    /// May a request of this cost go now?
    pub fn admit(&mut self, cost: &Cost, now: Duration) -> Admission {
        let mut wait = Duration::ZERO;
        for (b, n, name) in self.buckets(cost) {
            match b.fit(n, now) {
                Fit::Now => {}
                Fit::After(d) => wait = wait.max(d),
                Fit::Never => {
                    let cap = b.capacity().unwrap_or_default() as u64;
                    return Admission::Never(format!(
                        "the request needs {} {name}, more than the whole budget of {cap} per minute",
                        n as u64
                    ));
                }
            }
        }
        if let Some(until) = self.paused_until(now) {
            return Admission::Until(until);
        }
        match self.breaker.gate(now) {
            Gate::Until(until) => return Admission::Until(until),
            Gate::Blocked => return Admission::Blocked,
            Gate::Pass | Gate::Probe => {}
        }
        if wait > Duration::ZERO {
            return Admission::Until(now + wait);
        }
        Admission::Go
    }

    /// How this upstream stands for a request of `cost`, for an item that may go to another
    /// alternative instead (`retry::Fallbacks::pick`): an open breaker or an out probe is
    /// [`Standing::Down`], as is a cost that never fits; budgets and the pause hold it
    /// [`Standing::Until`] a time.
    pub fn standing(&mut self, cost: &Cost, now: Duration) -> Standing {
        let admission = self.admit(cost, now);
        let open = matches!(self.breaker.gate(now), Gate::Until(_) | Gate::Blocked);
        match admission {
            Admission::Go => Standing::Go,
            Admission::Until(until) if !open => Standing::Until(until),
            Admission::Until(_) | Admission::Blocked | Admission::Never(_) => Standing::Down,
        }
    }

    /// The request was admitted and sent: reserve its cost. Keep the ticket for its outcome.
    pub fn start(&mut self, cost: &Cost, now: Duration) -> Ticket {
        if self.breaker.gate(now) == Gate::Probe {
            self.breaker.probe_sent();
        }
        let (mut sent, mut own) = (self.sent, [0.0; 4]);
        for (k, (b, n, _)) in self.buckets(cost).into_iter().enumerate() {
            b.take(n, now);
            sent[k] += n;
            own[k] = n;
        }
        self.sent = sent;
        self.pending.push((sent[0], own));
        self.controller.sent(self.pending.len());
        Ticket(sent)
    }

    /// Syncs every budget with a reply's headers, less what they cannot have counted: what
    /// was sent after its request, and what was sent before it and is still in flight (over
    /// many connections, an earlier request can reach the server after a later one).
    fn sync_headers(&mut self, limits: &RateLimits, ticket: &Ticket, now: Duration) {
        if !self.follow_headers {
            return;
        }
        let mut unseen = [0.0; 4];
        for (k, u) in unseen.iter_mut().enumerate() {
            *u = self.sent[k] - ticket.0[k];
        }
        for (_, own) in self.pending.iter().filter(|(n, _)| *n < ticket.0[0]) {
            for (u, n) in unseen.iter_mut().zip(own) {
                *u += n;
            }
        }
        unseen[0] -= self.rejected.iter().filter(|r| **r > ticket.0[0]).count() as f64;
        self.requests.observe(&limits.requests, now, unseen[0]);
        self.tokens.observe(&limits.tokens, now, unseen[1]);
        self.input.observe(&limits.input_tokens, now, unseen[2]);
        self.output.observe(&limits.output_tokens, now, unseen[3]);
    }

    /// Learns from an attempt's end: settles its reservation, syncs with the reply's headers,
    /// tells the concurrency controller and the breaker, and frees its slot. True when the
    /// controller blames the failure on our own load (`Controller::blames_our_load`).
    pub fn observe(&mut self, o: &Observation<'_>) -> bool {
        match o.outcome {
            Observed::Success(feedback) => {
                self.learn(o, Outcome::Success);
                self.on_success(o.cost, feedback, o.ticket, o.ended);
                false
            }
            Observed::Failure {
                failure,
                class,
                pause,
            } => self.failed(o, failure, class, pause),
        }
    }

    /// A success: settle the reservation with the actual usage, sync with the headers, and
    /// tell the breaker.
    fn on_success(&mut self, cost: &Cost, feedback: &Feedback, ticket: &Ticket, now: Duration) {
        if let Some(u) = feedback.usage {
            let settle = |b: &mut TokenBucket, reserved: u64, used: u64| {
                if used > reserved {
                    b.take((used - reserved) as f64, now);
                } else {
                    b.give_back((reserved - used) as f64, now);
                }
            };
            let (ci, co) = (cost.input_tokens, cost.output_tokens);
            settle(&mut self.input, ci, u.input_tokens);
            settle(&mut self.output, co, u.output_tokens);
            settle(&mut self.tokens, ci + co, u.input_tokens + u.output_tokens);
        }
        if let Some(limits) = &feedback.limits {
            self.sync_headers(limits, ticket, now);
        }
        self.breaker.on_success();
        self.release(ticket);
    }

    /// [`Pacer::observe`] of a failure classified here (tests).
    #[cfg(test)]
    fn on_failure(
        &mut self,
        cost: &Cost,
        failure: &Failure,
        wait: Duration,
        started: Duration,
        ticket: &Ticket,
        now: Duration,
    ) {
        self.observe(&Observation {
            cost,
            ticket,
            started,
            ended: now,
            in_flight_at_start: 0,
            outcome: Observed::Failure {
                failure,
                class: FailureClass::of(failure),
                pause: wait,
            },
        });
    }

    /// A failed attempt; `wait` is the delay before its retry (the server's Retry-After when
    /// it gave one). A 429 pauses all dispatch for that long.
    fn failed(
        &mut self,
        o: &Observation<'_>,
        failure: &Failure,
        class: FailureClass,
        wait: Duration,
    ) -> bool {
        let (cost, ticket, started, now) = (&o.cost, &o.ticket, o.started, o.ended);
        // Nothing was generated: the reserved tokens come back. The request stays counted
        // unless it was rate limited (below): a failed request was still served.
        self.refund_tokens(cost, now);
        self.release(ticket);
        if let Some(limits) = &failure.limits {
            self.sync_headers(limits, ticket, now);
        }
        match class {
            FailureClass::RateLimited => {
                // A rejected request was not served, and rate limiters do not count it: nor
                // does the local budget (nor later syncs' count of what was sent).
                if failure.limits.is_none() {
                    // Headers, when the reply had them, already said so.
                    self.requests.give_back(1.0, now);
                }
                if self.rejected.len() == MAX_REJECTED {
                    self.rejected.remove(0);
                }
                self.rejected.push(ticket.0[0]);
                // The budgets' and the pause's business, never the concurrency's.
                self.learn(o, Outcome::Neutral);
                if self.pause_on_rate_limit {
                    let until = now + wait;
                    self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
                }
                self.breaker.on_success();
            }
            FailureClass::Overloaded | FailureClass::Timeout | FailureClass::Network => {
                let ours = self.learn(o, Outcome::Failure);
                self.breaker.on_failure(started, now);
                return ours;
            }
            // An answer, not an outage: the server had room to answer.
            FailureClass::SpendCap | FailureClass::Transient | FailureClass::Rejected => {
                self.learn(o, Outcome::Success);
                self.breaker.on_success();
            }
            FailureClass::Aborted
            | FailureClass::Deadline
            | FailureClass::Invalid
            | FailureClass::Budget
            | FailureClass::Other => {
                self.learn(o, Outcome::Neutral);
                self.breaker.on_neutral();
            }
        }
        false
    }

    /// The attempt of `ticket`, sent with `in_flight_at_start` in flight, dropped without an
    /// outcome (cancel, deadline): its reservation comes back and, if it was the breaker's
    /// probe, the next request may probe.
    pub fn on_abandoned(
        &mut self,
        cost: &Cost,
        ticket: &Ticket,
        in_flight_at_start: usize,
        now: Duration,
    ) {
        self.refund_tokens(cost, now);
        self.release(ticket);
        self.controller.observe(&adaptive::Observation {
            level: in_flight_at_start,
            started: now,
            ended: now,
            outcome: Outcome::Neutral,
        });
        self.breaker.on_neutral();
    }

    /// Gives back the tokens reserved for a request that produced nothing.
    fn refund_tokens(&mut self, cost: &Cost, now: Duration) {
        let (i, o) = (cost.input_tokens as f64, cost.output_tokens as f64);
        self.tokens.give_back(i + o, now);
        self.input.give_back(i, now);
        self.output.give_back(o, now);
    }
}

#[cfg(test)]
mod tests;
