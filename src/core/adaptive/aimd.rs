//! The former controller: additive-increase, multiplicative-decrease on every congestion
//! signal. Kept for the Worker's shared limiter until it moves to [`super::Controller`].

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
    fn an_attempt_started_at_the_instant_of_a_decrease_saw_the_new_limit() {
        // The executor handles every outcome of an instant before it starts new attempts: one
        // that started at the decrease's instant was admitted under the lowered limit.
        let mut a = Aimd::new(8, true);
        a.on_signal(Signal::Overloaded, MS(0), MS(100));
        a.on_signal(Signal::Overloaded, MS(100), MS(300));
        assert_eq!(a.limit(), 2, "8 * 0.5 * 0.5");
    }
}
