//! Adapting to overload: AIMD concurrency and a circuit breaker. Pure state machines driven
//! by attempt outcomes and the clock; no latency-gradient methods (LLM latency grows with
//! output length, so it says nothing about load).

use std::time::Duration;

/// Why the limit goes down. An account's rate limit is not server overload: each has its own
/// factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// 429: we are over the account's limit.
    RateLimited,
    /// 529/503/5xx: the service is struggling.
    Overloaded,
    /// An attempt timed out.
    Timeout,
}

/// Additive-increase, multiplicative-decrease concurrency between 1 and `max`.
#[derive(Clone, Debug, PartialEq)]
pub struct Aimd {
    limit: f64,
    max: f64,
    enabled: bool,
    last_decrease: Option<Duration>,
}

impl Aimd {
    /// Starts at `max`; a disabled one always answers `max`.
    pub fn new(max: usize, enabled: bool) -> Self {
        Aimd {
            limit: max as f64,
            max: max as f64,
            enabled,
            last_decrease: None,
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        if self.enabled {
            self.limit.floor().max(1.0) as usize
        } else {
            self.max as usize
        }
    }

    /// The multiplicative factor for each signal.
    pub fn factor(signal: Signal) -> f64 {
        match signal {
            Signal::RateLimited => 0.7,
            Signal::Overloaded => 0.5,
            Signal::Timeout => 0.5,
        }
    }

    /// A success: +1 per window of `limit` successes, but only while the limit is in use
    /// (in flight at least half of it); an idle limit proves nothing.
    pub fn on_success(&mut self, in_flight: usize) {
        if in_flight as f64 * 2.0 >= self.limit {
            self.limit = (self.limit + 1.0 / self.limit).min(self.max);
        }
    }

    /// A congestion signal from an attempt that started at `started`. Attempts that were
    /// already in flight when the limit last went down saw the old limit: they do not cut it
    /// again, so one burst of failures is one decrease.
    pub fn on_signal(&mut self, signal: Signal, started: Duration, now: Duration) {
        if self.last_decrease.is_some_and(|at| started < at) {
            return;
        }
        self.limit = (self.limit * Aimd::factor(signal)).max(1.0);
        self.last_decrease = Some(now);
    }
}

/// Circuit breaker states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Sending; counts consecutive failures.
    Closed {
        /// Failures in a row.
        failures: u32,
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

/// Stops sending after `threshold` consecutive outage failures (5xx, 529, network, timeout),
/// waits `cooldown`, then lets one probe through: success closes it, failure opens it again.
#[derive(Clone, Debug, PartialEq)]
pub struct Breaker {
    state: BreakerState,
    threshold: u32,
    cooldown: Duration,
}

/// What the breaker allows now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Send. (Not "open": an open breaker stops sends; see [`BreakerState::Open`].)
    Pass,
    /// Send this one as the probe.
    Probe,
    /// Wait until then.
    Until(Duration),
    /// Wait for the probe to finish.
    Blocked,
}

impl Breaker {
    /// A closed breaker; `threshold` 0 disables it.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            state: BreakerState::Closed { failures: 0 },
            threshold,
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
        self.state = BreakerState::Closed { failures: 0 };
    }

    /// An attempt ended without saying anything about an outage (the task's own error, an
    /// invalid item, a cancel): a probe it was is over, and the next request may probe again.
    pub fn on_neutral(&mut self) {
        if self.state == (BreakerState::HalfOpen { probing: true }) {
            self.state = BreakerState::HalfOpen { probing: false };
        }
    }

    /// An outage failure.
    pub fn on_failure(&mut self, now: Duration) {
        if self.threshold == 0 {
            return;
        }
        self.state = match self.state {
            BreakerState::Closed { failures } if failures + 1 < self.threshold => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            _ => BreakerState::Open {
                until: now + self.cooldown,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn aimd_moves() {
        let mut a = Aimd::new(8, true);
        a.on_signal(Signal::RateLimited, MS(0), MS(10));
        assert_eq!(a.limit(), 5, "8 * 0.7 = 5.6");
        a.on_signal(Signal::RateLimited, MS(5), MS(20));
        assert_eq!(a.limit(), 5, "started before the last decrease: ignored");
        a.on_signal(Signal::Overloaded, MS(15), MS(30));
        assert_eq!(a.limit(), 2, "5.6 * 0.5 = 2.8");
        a.on_signal(Signal::Timeout, MS(40), MS(50));
        a.on_signal(Signal::Timeout, MS(60), MS(70));
        assert_eq!(a.limit(), 1, "never below 1");
        for _ in 0..3 {
            a.on_success(0);
        }
        assert_eq!(a.limit(), 1, "idle successes do not raise the limit");
        let mut steps = 0;
        // Bounded, so that a broken increase fails here instead of hanging.
        while a.limit() < 8 && steps < 1000 {
            a.on_success(a.limit());
            steps += 1;
        }
        assert!(
            steps > 8 && steps < 40,
            "additive: about one per window, took {steps}"
        );
        for _ in 0..100 {
            a.on_success(8);
        }
        assert_eq!(a.limit(), 8, "capped at max");
        let mut off = Aimd::new(6, false);
        off.on_signal(Signal::Overloaded, MS(0), MS(1));
        assert_eq!(off.limit(), 6);
    }

    #[test]
    fn breaker_states() {
        let mut b = Breaker::new(3, MS(1000));
        b.on_failure(MS(0));
        b.on_failure(MS(1));
        assert_eq!(b.gate(MS(2)), Gate::Pass);
        b.on_success();
        b.on_failure(MS(3));
        b.on_failure(MS(4));
        assert_eq!(
            b.gate(MS(5)),
            Gate::Pass,
            "a success in between resets the count"
        );
        b.on_failure(MS(5));
        assert_eq!(b.state(), BreakerState::Open { until: MS(1005) });
        assert_eq!(b.gate(MS(500)), Gate::Until(MS(1005)));
        assert_eq!(b.gate(MS(1005)), Gate::Probe);
        b.probe_sent();
        assert_eq!(b.gate(MS(1006)), Gate::Blocked);
        b.on_failure(MS(1100));
        assert_eq!(
            b.gate(MS(1200)),
            Gate::Until(MS(2100)),
            "a failed probe opens it again"
        );
        assert_eq!(b.gate(MS(2100)), Gate::Probe);
        b.probe_sent();
        b.on_neutral();
        assert_eq!(
            b.gate(MS(2101)),
            Gate::Probe,
            "a probe that ended neutrally frees the next"
        );
        b.probe_sent();
        b.on_success();
        assert_eq!(b.gate(MS(2101)), Gate::Pass);
        let mut off = Breaker::new(0, MS(1000));
        for i in 0..10 {
            off.on_failure(MS(i));
        }
        assert_eq!(off.gate(MS(10)), Gate::Pass);
    }

    #[test]
    fn an_attempt_started_at_the_instant_of_a_decrease_saw_the_new_limit() {
        // The executor handles every outcome of an instant before it starts new attempts: one
        // that started at the decrease's instant was admitted under the lowered limit.
        let mut a = Aimd::new(8, true);
        a.on_signal(Signal::Overloaded, MS(0), MS(100));
        a.on_signal(Signal::Overloaded, MS(100), MS(300));
        assert_eq!(a.limit(), 2, "8 * 0.5 * 0.5");
    }
}
