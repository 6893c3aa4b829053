//! The circuit breaker: stops sending during an outage, and only then. A short storm of
//! failures must not become a long stall, so it opens only when failures have come without a
//! single success for a while ([`OUTAGE`]), not merely `threshold` in a row (at concurrency
//! 10, five 529s in a row are routine under a 40% random failure rate); its cool-down starts
//! short and doubles per failed probe, up to [`MAX_COOLDOWN`].

use std::time::Duration;

/// Failures must have come for this long with no success in between to open the breaker.
pub const OUTAGE: Duration = Duration::from_secs(2);

/// The cool-down never grows past this (unless the configured one is longer).
pub const MAX_COOLDOWN: Duration = Duration::from_secs(30);

/// Circuit breaker states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Sending; counts consecutive failures since `since` (the first of them).
    Closed {
        /// Failures in a row.
        failures: u32,
        /// When the first of them was sent.
        since: Duration,
    },
    /// Not sending until `until`.
    Open {
        /// When to probe.
        until: Duration,
    },
    /// One probe allowed; `probing` while it is out.
    HalfOpen {
        /// A probe is in flight.
        probing: bool,
    },
}

/// Opens after at least `threshold` consecutive outage failures (5xx, 529, network, timeout)
/// spanning [`OUTAGE`] with no success, waits its cool-down, then lets one probe through:
/// success closes it (and resets the cool-down), failure opens it again for twice as long.
#[derive(Clone, Debug, PartialEq)]
pub struct Breaker {
    state: BreakerState,
    threshold: u32,
    base: Duration,
    cooldown: Duration,
}

/// What the breaker allows now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Send.
    Pass,
    /// Send this one as the probe.
    Probe,
    /// Wait until then.
    Until(Duration),
    /// Wait for the probe to finish.
    Blocked,
}

const CLOSED: BreakerState = BreakerState::Closed {
    failures: 0,
    since: Duration::ZERO,
};

impl Breaker {
    /// A closed breaker; `threshold` 0 disables it.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            state: CLOSED,
            threshold,
            base: cooldown,
            cooldown,
        }
    }

    /// The state, for progress and tests.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// May a request go now?
    pub fn gate(&mut self, now: Duration) -> Gate {
        match self.state {
            BreakerState::Closed { .. } => Gate::Pass,
            BreakerState::Open { until } if now < until => Gate::Until(until),
            BreakerState::Open { .. } | BreakerState::HalfOpen { probing: false } => Gate::Probe,
            BreakerState::HalfOpen { probing: true } => Gate::Blocked,
        }
    }

    /// A request was sent after [`Gate::Probe`].
    pub fn probe_sent(&mut self) {
        self.state = BreakerState::HalfOpen { probing: true };
    }

    /// The service answered (any reply that is not an outage): close.
    pub fn on_success(&mut self) {
        self.state = CLOSED;
        self.cooldown = self.base;
    }

    /// An attempt ended without saying anything about an outage (the task's own error, an
    /// invalid item, a cancel): a probe it was is over, and the next request may probe again.
    pub fn on_neutral(&mut self) {
        if self.state == (BreakerState::HalfOpen { probing: true }) {
            self.state = BreakerState::HalfOpen { probing: false };
        }
    }

    /// An outage failure of an attempt sent at `started`, at `now`.
    pub fn on_failure(&mut self, started: Duration, now: Duration) {
        if self.threshold == 0 {
            return;
        }
        let open = |b: &mut Breaker| BreakerState::Open {
            until: now + b.cooldown,
        };
        self.state = match self.state {
            BreakerState::Closed { failures, since } => {
                let since = if failures == 0 { started } else { since };
                if failures + 1 >= self.threshold && now.saturating_sub(since) >= OUTAGE {
                    open(self)
                } else {
                    BreakerState::Closed {
                        failures: failures + 1,
                        since,
                    }
                }
            }
            // A failed probe: the outage goes on; wait longer this time.
            BreakerState::HalfOpen { .. } => {
                self.cooldown = (self.cooldown * 2).min(MAX_COOLDOWN.max(self.base));
                open(self)
            }
            // Attempts sent before it opened, still coming back.
            state @ BreakerState::Open { .. } => state,
        };
    }
}
