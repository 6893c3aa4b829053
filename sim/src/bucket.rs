//! A token bucket that refills continuously over a "minute", in exact integer arithmetic.
//!
//! Levels are kept in units where one token is `minute_us` units and the bucket gains `limit`
//! units per microsecond: a full refill takes exactly one minute and the wait for `n` tokens
//! is an exact ceiling division, so "retry after the wait I told you" always fits. Bounds
//! (limit <= 1e9, minute <= 1 h) keep every product below `u64::MAX`.

/// Largest per-minute limit a bucket accepts.
pub const MAX_LIMIT: u64 = 1_000_000_000;
/// Longest "minute" in milliseconds.
pub const MAX_MINUTE_MS: u64 = 3_600_000;

/// One limit: requests, input tokens or output tokens per minute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    limit: u64,
    minute_us: u64,
    level: u64,
    last_us: u64,
}

/// Whether `n` tokens can be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Now.
    Now,
    /// After this many microseconds, if nothing else takes tokens meanwhile.
    After(u64),
    /// Never: `n` is more than the whole limit.
    Never,
}

impl TokenBucket {
    /// A full bucket of `limit` tokens per `minute_ms`; both are clamped to the bounds above.
    pub fn new(limit: u64, minute_ms: u64) -> TokenBucket {
        let limit = limit.clamp(1, MAX_LIMIT);
        let minute_us = minute_ms.clamp(1, MAX_MINUTE_MS) * 1000;
        TokenBucket {
            limit,
            minute_us,
            level: limit * minute_us,
            last_us: 0,
        }
    }

    /// The limit per minute.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn capacity(&self) -> u64 {
        self.limit * self.minute_us
    }

    /// Adds what flowed in since the last call. Time that runs backwards adds nothing.
    pub fn refill(&mut self, now_us: u64) {
        let elapsed = now_us.saturating_sub(self.last_us).min(self.minute_us);
        self.level = (self.level + elapsed * self.limit).min(self.capacity());
        self.last_us = self.last_us.max(now_us);
    }

    /// Whether `n` tokens fit at `now_us` (after a refill).
    pub fn fit(&mut self, now_us: u64, n: u64) -> Fit {
        self.refill(now_us);
        if n > self.limit {
            return Fit::Never;
        }
        let need = n * self.minute_us;
        if need <= self.level {
            Fit::Now
        } else {
            Fit::After((need - self.level).div_ceil(self.limit))
        }
    }

    /// Takes `n` tokens; the caller checked [`TokenBucket::fit`] at the same `now_us`.
    pub fn take(&mut self, now_us: u64, n: u64) {
        self.refill(now_us);
        self.level = self
            .level
            .saturating_sub(n.min(self.limit) * self.minute_us);
    }

    /// Whole tokens left (as of the last refill).
    pub fn remaining(&self) -> u64 {
        self.level / self.minute_us
    }

    /// Microseconds until the bucket is full again (as of the last refill).
    pub fn reset_us(&self) -> u64 {
        (self.capacity() - self.level).div_ceil(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1000;

    #[test]
    fn starts_full_and_rejects_exactly_when_empty() {
        let mut b = TokenBucket::new(3, 60_000);
        for _ in 0..3 {
            assert_eq!(b.fit(0, 1), Fit::Now);
            b.take(0, 1);
        }
        assert_eq!(b.remaining(), 0);
        // One request per 20 s flows back in.
        assert_eq!(b.fit(0, 1), Fit::After(20_000 * MS));
        assert_eq!(b.fit(20_000 * MS - 1, 1), Fit::After(1));
        assert_eq!(b.fit(20_000 * MS, 1), Fit::Now);
        assert_eq!(b.reset_us(), 40_000 * MS);
    }

    #[test]
    fn refill_is_continuous_and_capped() {
        let mut b = TokenBucket::new(600, 60_000); // 10 per second
        b.take(0, 600);
        let table = [
            (100, 1),
            (1_000, 10),
            (30_000, 300),
            (60_000, 600),
            (600_000, 600),
        ];
        for (at_ms, want) in table {
            b.refill(at_ms * MS);
            assert_eq!(b.remaining(), want, "at {at_ms} ms");
        }
        assert_eq!(b.reset_us(), 0);
    }

    #[test]
    fn waiting_the_reported_time_always_fits() {
        // Odd limits and minutes, so the divisions do not come out even.
        for (limit, minute_ms) in [(7, 1000), (13, 997), (50, 60_000), (999_983, 61_111)] {
            let mut b = TokenBucket::new(limit, minute_ms);
            let mut now = 0;
            let mut seed = limit;
            for _ in 0..500 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let n = 1 + (seed >> 33) % limit;
                match b.fit(now, n) {
                    Fit::Now => b.take(now, n),
                    Fit::After(wait) => {
                        assert_eq!(b.fit(now + wait - 1, n), Fit::After(1), "{limit}/{n}");
                        assert_eq!(b.fit(now + wait, n), Fit::Now);
                        now += wait;
                        b.take(now, n);
                    }
                    Fit::Never => unreachable!(),
                }
                now += (seed >> 40) % (minute_ms * MS / 10);
            }
        }
    }

    #[test]
    fn too_big_never_fits_and_time_going_back_adds_nothing() {
        let mut b = TokenBucket::new(10, 1000);
        assert_eq!(b.fit(0, 11), Fit::Never);
        b.take(5_000 * MS, 10);
        b.refill(0);
        assert_eq!(b.remaining(), 0);
        b.refill(5_100 * MS);
        assert_eq!(b.remaining(), 1);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut b = TokenBucket::new(u64::MAX, u64::MAX);
        assert_eq!(b.limit(), MAX_LIMIT);
        b.take(0, MAX_LIMIT);
        b.refill(u64::MAX);
        assert_eq!(b.remaining(), MAX_LIMIT);
    }
}
