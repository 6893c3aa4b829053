//! Rate budgets: what a request costs, what the API says is left, and token buckets that turn
//! both into "send now" or "wait until". Continuous refill, like the APIs' own limiters.

use std::time::Duration;

/// Usage of one reply, in tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
}

/// One limit as a reply reported it: its size, what is left, when it is full again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    /// The limit per window.
    pub limit: Option<u64>,
    /// What is left now.
    pub remaining: Option<u64>,
    /// Time until the limit is replenished.
    pub reset_in: Option<Duration>,
}

impl Limit {
    /// Whether the reply said anything about this limit.
    pub fn is_known(&self) -> bool {
        self.limit.is_some() || self.remaining.is_some() || self.reset_in.is_some()
    }
}

/// Every limit a reply reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per window.
    pub requests: Limit,
    /// All tokens (OpenAI's `tokens`; Anthropic's combined `tokens`).
    pub tokens: Limit,
    /// Input tokens (Anthropic).
    pub input_tokens: Limit,
    /// Output tokens (Anthropic).
    pub output_tokens: Limit,
}

impl RateLimits {
    /// Whether the reply carried no rate-limit header at all.
    pub fn is_empty(&self) -> bool {
        ![
            self.requests,
            self.tokens,
            self.input_tokens,
            self.output_tokens,
        ]
        .iter()
        .any(Limit::is_known)
    }
}

/// What one request is expected to use: reserved before sending, corrected after the reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Estimated (or caller-given) input tokens.
    pub input_tokens: u64,
    /// The most output it may produce (`max_tokens`).
    pub output_tokens: u64,
}

impl Cost {
    /// Nothing: what an item costs when no estimate is given.
    pub const NONE: Cost = Cost {
        input_tokens: 0,
        output_tokens: 0,
    };
}

/// What a successful attempt tells the pacer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Feedback {
    /// Actual usage, when the reply said.
    pub usage: Option<Usage>,
    /// The reply's rate-limit headers.
    pub limits: Option<RateLimits>,
}

/// Whether a request fits a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// It fits now.
    Now,
    /// It fits after this long.
    After(Duration),
    /// It can never fit: larger than the whole capacity.
    Never,
}

const MINUTE_MS: f64 = 60_000.0;

/// The share of a header-derived refill rate the bucket trusts.
pub const RATE_MARGIN: f64 = 0.97;

/// A token bucket with continuous refill. Without a known capacity (no configured budget and
/// no header seen yet) it admits everything.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBucket {
    capacity: Option<f64>,
    tokens: f64,
    per_ms: f64,
    updated: Duration,
}

impl TokenBucket {
    /// A bucket that knows nothing yet.
    pub fn unknown() -> Self {
        TokenBucket {
            capacity: None,
            tokens: 0.0,
            per_ms: 0.0,
            updated: Duration::ZERO,
        }
    }

    /// A configured budget of `limit` per minute, full at `now`.
    pub fn per_minute(limit: u64, now: Duration) -> Self {
        TokenBucket {
            capacity: Some(limit as f64),
            tokens: limit as f64,
            per_ms: limit as f64 / MINUTE_MS,
            updated: now,
        }
    }

    /// The capacity, once known.
    pub fn capacity(&self) -> Option<f64> {
        self.capacity
    }

    /// Tokens available at `now` (may be negative after an under-estimate).
    pub fn available(&mut self, now: Duration) -> f64 {
        self.refill(now);
        self.tokens
    }

    fn refill(&mut self, now: Duration) {
        if let Some(cap) = self.capacity {
            let ms = now.saturating_sub(self.updated).as_secs_f64() * 1000.0;
            self.tokens = (self.tokens + ms * self.per_ms).min(cap);
        }
        self.updated = self.updated.max(now);
    }

    /// Whether `n` tokens fit, and if not, when.
    pub fn fit(&mut self, n: f64, now: Duration) -> Fit {
        let Some(cap) = self.capacity else {
            return Fit::Now;
        };
        if n > cap {
            return Fit::Never;
        }
        self.refill(now);
        if self.tokens >= n {
            return Fit::Now;
        }
        if self.per_ms <= 0.0 {
            // A capacity from headers without a refill rate yet: assume a per-minute window.
            self.per_ms = cap / MINUTE_MS;
        }
        let ms = (n - self.tokens) / self.per_ms;
        Fit::After(Duration::from_nanos((ms * 1e6).ceil() as u64))
    }

    /// Takes `n` tokens (the balance may go negative: a debt refilled before the next fit).
    pub fn take(&mut self, n: f64, now: Duration) {
        self.refill(now);
        if self.capacity.is_some() {
            self.tokens -= n;
        }
    }

    /// Gives `n` tokens back (an over-estimate, or a request the server did not count).
    pub fn give_back(&mut self, n: f64, now: Duration) {
        self.refill(now);
        if let Some(cap) = self.capacity {
            self.tokens = (self.tokens + n).min(cap);
        }
    }

    /// Syncs with what the API reported. `unseen` tokens were taken by requests sent after the
    /// one this report answers: the server's `remaining` does not hold them yet. The refill
    /// rate follows from how long the server says it needs to refill what is used.
    pub fn observe(&mut self, report: &Limit, now: Duration, unseen: f64) {
        self.refill(now);
        let first = self.capacity.is_none();
        if let Some(limit) = report.limit {
            self.capacity = Some(limit as f64);
        }
        let Some(cap) = self.capacity else { return };
        if let (Some(remaining), Some(reset)) = (report.remaining, report.reset_in) {
            // `remaining` is rounded down, so up to one more token than reported is in use:
            // counting one less keeps the rate from being over-estimated (that would mean 429s).
            let used = cap - remaining as f64 - 1.0;
            let ms = reset.as_secs_f64() * 1000.0;
            if used >= 1.0 && ms > 0.0 {
                // A little under the estimate: clocks differ and resets are rounded.
                self.per_ms = RATE_MARGIN * used / ms;
            }
        }
        if self.per_ms <= 0.0 {
            self.per_ms = cap / MINUTE_MS;
        }
        if let Some(remaining) = report.remaining {
            let remaining = remaining as f64;
            // The server's count at that request, less what was sent since: trusted up and
            // down (a local over-charge would otherwise never heal). Refill since then is not
            // added, which errs on the safe side.
            self.tokens = remaining - unseen;
        } else if first {
            self.tokens = cap;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// A wait of `ms`, give or take a microsecond of float rounding.
    pub(crate) fn assert_near(fit: Fit, ms: f64) {
        match fit {
            Fit::After(d) => assert!(
                (d.as_secs_f64() * 1000.0 - ms).abs() < 1e-3,
                "{d:?} vs {ms} ms"
            ),
            other => panic!("{other:?} vs a wait of {ms} ms"),
        }
    }

    #[test]
    fn reserve_refill_and_wait() {
        let mut b = TokenBucket::per_minute(60, MS(0)); // one token per second
        assert_eq!(b.fit(60.0, MS(0)), Fit::Now);
        b.take(60.0, MS(0));
        assert_eq!(b.fit(1.0, MS(0)), Fit::After(MS(1000)));
        assert_eq!(b.fit(1.0, MS(500)), Fit::After(MS(500)));
        assert_eq!(b.fit(1.0, MS(1000)), Fit::Now);
        assert_eq!(b.fit(61.0, MS(0)), Fit::Never);
        assert_eq!(b.available(MS(600_000)), 60.0, "refill stops at capacity");
    }

    #[test]
    fn refunds_and_debts() {
        let mut b = TokenBucket::per_minute(1000, MS(0));
        b.take(800.0, MS(0));
        b.give_back(500.0, MS(0)); // used 300, reserved 800
        assert_eq!(b.available(MS(0)), 700.0);
        b.take(900.0, MS(0)); // a request used more than reserved
        assert_eq!(b.available(MS(0)), -200.0);
        assert_eq!(b.fit(100.0, MS(0)), Fit::After(MS(18_000)));
        b.give_back(5000.0, MS(0));
        assert_eq!(b.available(MS(0)), 1000.0, "never above capacity");
    }

    #[test]
    fn unknown_admits_until_headers_arrive() {
        let mut b = TokenBucket::unknown();
        assert_eq!(b.fit(1e12, MS(0)), Fit::Now);
        b.take(5.0, MS(0));
        // 50 per window, 47 left (rounded down), full again in 3.6 s: at least 2 used refill
        // in 3.6 s => one token per 1.8 s at most.
        b.observe(
            &Limit {
                limit: Some(50),
                remaining: Some(47),
                reset_in: Some(MS(3600)),
            },
            MS(10),
            0.0,
        );
        assert_eq!(b.capacity(), Some(50.0));
        assert_eq!(b.available(MS(10)), 47.0);
        b.take(47.0, MS(10));
        assert_near(b.fit(1.0, MS(10)), 1800.0 / RATE_MARGIN);
    }

    #[test]
    fn headers_set_the_balance_and_the_rate() {
        let mut b = TokenBucket::per_minute(100, MS(0));
        b.take(10.0, MS(0));
        b.observe(
            &Limit {
                limit: Some(100),
                remaining: Some(95),
                reset_in: Some(MS(3000)),
            },
            MS(0),
            0.0,
        );
        assert_eq!(
            b.available(MS(0)),
            95.0,
            "the server's count wins, up or down"
        );
        b.observe(
            &Limit {
                limit: Some(100),
                remaining: Some(50),
                reset_in: Some(MS(49_000)),
            },
            MS(0),
            0.0,
        );
        assert_eq!(b.available(MS(0)), 50.0);
        // The configured 100/min was only a guess: the server refills 49+ in 49 s, 1/s.
        assert_near(b.fit(60.0, MS(0)), 10_000.0 / RATE_MARGIN);
        b.observe(
            &Limit {
                limit: Some(40),
                remaining: None,
                reset_in: None,
            },
            MS(0),
            0.0,
        );
        assert_eq!(b.capacity(), Some(40.0));
        assert_eq!(b.fit(41.0, MS(0)), Fit::Never);
    }

    #[test]
    fn limits_emptiness() {
        assert!(RateLimits::default().is_empty());
        let r = RateLimits {
            output_tokens: Limit {
                remaining: Some(1),
                ..Limit::default()
            },
            ..RateLimits::default()
        };
        assert!(!r.is_empty());
    }

    fn report(limit: u64, remaining: Option<u64>, reset_ms: Option<u64>) -> Limit {
        Limit {
            limit: Some(limit),
            remaining,
            reset_in: reset_ms.map(MS),
        }
    }

    #[test]
    fn reports_that_say_nothing_about_the_rate_keep_the_learned_one() {
        let mut b = TokenBucket::unknown();
        // 100 per window, 50 left, full in 49 s: 49 used refill at 1 per second.
        b.observe(&report(100, Some(50), Some(49_000)), MS(0), 0.0);
        // A reset of 0 would be an infinite rate; with 99 or 100 left nothing is known used.
        for (remaining, reset) in [(50, 0), (99, 1000), (100, 1000)] {
            b.observe(&report(100, Some(remaining), Some(reset)), MS(0), 0.0);
        }
        assert_eq!(b.available(MS(0)), 100.0);
        b.take(100.0, MS(0));
        assert_near(b.fit(1.0, MS(0)), 1000.0 / RATE_MARGIN);
    }

    #[test]
    fn one_token_used_is_enough_to_learn_the_rate() {
        let mut b = TokenBucket::per_minute(100, MS(0));
        // 98 left (rounded down): at least 1 used, full again in 2 s.
        b.observe(&report(100, Some(98), Some(2000)), MS(0), 0.0);
        b.take(98.0, MS(0));
        assert_near(b.fit(1.0, MS(0)), 2000.0 / RATE_MARGIN);
    }

    #[test]
    fn a_capacity_without_a_reset_refills_over_a_minute() {
        let mut b = TokenBucket::unknown();
        b.observe(&report(40, None, None), MS(0), 0.0);
        assert_eq!(
            b.available(MS(0)),
            40.0,
            "a first report without a count: full"
        );
        let mut b = TokenBucket::unknown();
        b.observe(&report(60, Some(0), None), MS(0), 0.0);
        assert_eq!(b.available(MS(0)), 0.0);
        assert_eq!(b.fit(1.0, MS(500)), Fit::After(MS(500)));
        assert_eq!(
            b.fit(1.0, MS(1000)),
            Fit::Now,
            "60 per minute: 1 in a second"
        );
    }
}
