//! Delay math only: exponential backoff with jitter. Pure functions returning `Duration`;
//! randomness comes in through [`Rng`]. The server's own wait (Retry-After) is read at the
//! edge (`providers::headers`) and weighed against this in `retry/`.

use std::time::Duration;

use super::rng::Rng;

/// How a computed backoff is spread out so that many clients do not retry in lock-step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Uniform in `[0, exponential]` (AWS's "full jitter").
    Full,
    /// Uniform in `[base, 3 * previous]`, capped (AWS's "decorrelated jitter").
    Decorrelated,
    /// The plain exponential value.
    None,
}

/// Exponential backoff settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    jitter: Jitter,
}

impl Backoff {
    /// Validated settings: `base` must be positive and at most `max`.
    pub fn new(base: Duration, max: Duration, jitter: Jitter) -> Result<Self, String> {
        if base.is_zero() {
            return Err("backoff base must be positive".into());
        }
        if max < base {
            return Err(format!(
                "backoff max ({} ms) must be at least base ({} ms)",
                max.as_millis() as u64,
                base.as_millis() as u64
            ));
        }
        Ok(Backoff { base, max, jitter })
    }

    /// The delay before retry number `retry` (1 for the first retry). `previous` is the last
    /// delay this item waited, which decorrelated jitter builds on.
    pub fn delay(&self, retry: u32, previous: Option<Duration>, rng: &mut dyn Rng) -> Duration {
        match self.jitter {
            Jitter::None => exponential(self.base, self.max, retry),
            Jitter::Full => scale(exponential(self.base, self.max, retry), rng.next_f64()),
            Jitter::Decorrelated => {
                let prev = previous.unwrap_or(self.base).max(self.base);
                let hi = (prev * 3).min(self.max);
                let span = hi.saturating_sub(self.base);
                (self.base + scale(span, rng.next_f64())).min(self.max)
            }
        }
    }
}

/// `base * 2^(retry-1)`, capped at `max`, without overflow for any `retry`.
pub fn exponential(base: Duration, max: Duration, retry: u32) -> Duration {
    let shift = retry.saturating_sub(1);
    if shift > 31 {
        return max;
    }
    base.checked_mul(1u32 << shift).map_or(max, |d| d.min(max))
}

/// `d * factor` for a factor in `[0, 1]`, without `Duration::mul_f64`'s panicking paths.
fn scale(d: Duration, factor: f64) -> Duration {
    from_ms(d.as_secs_f64() * 1000.0 * factor.clamp(0.0, 1.0))
}

/// Milliseconds (finite, non-negative, checked by the caller) as a `Duration`.
fn from_ms(ms: f64) -> Duration {
    Duration::from_nanos((ms * 1e6) as u64)
}

#[cfg(test)]
mod tests {
    use super::super::rng::SplitMix64;
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// Always the same number: delays become exact.
    struct Fixed(f64);

    impl Rng for Fixed {
        fn next_f64(&mut self) -> f64 {
            self.0
        }
    }

    #[test]
    fn exponential_doubles_then_caps() {
        let table = [
            (1, 500),
            (2, 1000),
            (3, 2000),
            (4, 4000),
            (7, 30_000),
            (200, 30_000),
        ];
        for (retry, want) in table {
            assert_eq!(
                exponential(MS(500), MS(30_000), retry),
                MS(want),
                "retry {retry}"
            );
        }
        assert_eq!(exponential(MS(500), MS(30_000), 0), MS(500));
    }

    #[test]
    fn exponential_at_the_largest_shift() {
        // The largest shift still computed: 2^31 times a 1 ns base is 2.1 s, under the cap.
        let (ns, hour) = (Duration::from_nanos(1), Duration::from_secs(3600));
        assert_eq!(exponential(ns, hour, 32), Duration::from_nanos(1 << 31));
        assert_eq!(exponential(ns, hour, 33), hour);
    }

    #[test]
    fn jittered_delays_stay_in_bounds() {
        let mut rng = SplitMix64::new(7);
        let full = Backoff::new(MS(100), MS(5000), Jitter::Full).unwrap();
        let deco = Backoff::new(MS(100), MS(5000), Jitter::Decorrelated).unwrap();
        let mut prev = None;
        for i in 0..2000u32 {
            let retry = i % 12 + 1;
            let d = full.delay(retry, None, &mut rng);
            assert!(d <= exponential(MS(100), MS(5000), retry), "full {d:?}");
            let e = deco.delay(retry, prev, &mut rng);
            assert!(e >= MS(100) && e <= MS(5000), "decorrelated {e:?}");
            assert!(e <= prev.unwrap_or(MS(100)).max(MS(100)) * 3);
            prev = Some(e);
        }
    }

    #[test]
    fn full_jitter_spreads_over_the_range() {
        let mut rng = SplitMix64::new(1);
        let b = Backoff::new(MS(1000), MS(1000), Jitter::Full).unwrap();
        let ds: Vec<u128> = (0..1000)
            .map(|_| b.delay(1, None, &mut rng).as_millis())
            .collect();
        assert!(ds.iter().any(|&d| d < 100) && ds.iter().any(|&d| d > 900));
    }

    #[test]
    fn decorrelated_jitter_spans_base_to_three_times_the_previous_delay() {
        let b = Backoff::new(MS(100), MS(10_000), Jitter::Decorrelated).unwrap();
        // (previous, random, delay): base + random * (min(3 * previous, max) - base), where
        // the previous delay is never taken below base.
        let table = [
            (None, 0.5, 200),
            (Some(10), 0.5, 200),
            (Some(1000), 0.5, 1550),
            (Some(1000), 0.0, 100),
            (Some(5000), 0.5, 5050),
            (Some(9000), 1.0, 10_000),
        ];
        for (previous, random, want) in table {
            assert_eq!(
                b.delay(1, previous.map(MS), &mut Fixed(random)),
                MS(want),
                "{previous:?} {random}"
            );
        }
    }

    #[test]
    fn invalid_backoff_is_rejected() {
        assert!(Backoff::new(MS(0), MS(10), Jitter::Full).is_err());
        assert!(Backoff::new(MS(100), MS(10), Jitter::Full)
            .unwrap_err()
            .contains("at least"));
    }
}
