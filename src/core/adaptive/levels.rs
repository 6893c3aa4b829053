//! Failure rate by load: for each number of attempts in flight when an attempt was sent (its
//! level), how many were sent and how many failed, with old observations fading. The knee is
//! the highest level below which failures are markedly rarer than above it: what a server
//! that sheds past its capacity shows, and what random failures never show (their rate is the
//! same at every level).

/// Each new observation weighs this much more than the one before it: an exponential fade
/// with a memory of about 100 observations, long enough for a steady test, short enough that
/// evidence above a lowered limit fades and the controller probes again.
const GROWTH: f64 = 1.0 / 0.99;

/// Weights are rescaled past this, so they never overflow.
const RESCALE: f64 = 1e12;

/// Evidence needed on each side of a knee, in (faded) observations: about 3 recent ones.
pub const MIN_SIDE: f64 = 2.5;

/// The failure rate above a knee must exceed the rate below it by at least this much...
pub const MIN_GAP: f64 = 0.25;

/// ... and by this many standard errors (a two-proportion z-test). 3.3 is about one false
/// knee in 2,000 tests of a given split under random failures.
pub const MIN_Z: f64 = 3.3;

/// One level: faded counts of attempts sent and failed, and attempts in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Level {
    sent: f64,
    failed: f64,
    pending: u32,
}

/// Sent and failed weights per level (index `n - 1` holds level `n`).
#[derive(Clone, Debug, PartialEq)]
pub struct Levels {
    levels: Vec<Level>,
    weight: f64,
}

impl Levels {
    /// Levels `1..=max`; an attempt sent above `max` (a limit lowered since) counts as `max`.
    pub fn new(max: usize) -> Self {
        Levels {
            levels: (0..max.max(1)).map(|_| Level::default()).collect(),
            weight: 1.0,
        }
    }

    fn at(&mut self, level: usize) -> &mut Level {
        let last = self.levels.len() - 1;
        &mut self.levels[level.saturating_sub(1).min(last)]
    }

    /// An attempt was sent at `level` (itself included): in flight until [`Levels::settle`].
    pub fn send(&mut self, level: usize) {
        self.at(level).pending += 1;
    }

    /// An attempt sent at `level` is over (whatever the outcome).
    pub fn settle(&mut self, level: usize) {
        let l = self.at(level);
        l.pending = l.pending.saturating_sub(1);
    }

    /// Attempts in flight.
    pub fn in_flight(&self) -> u32 {
        self.levels.iter().map(|l| l.pending).sum()
    }

    /// One attempt sent at `level` (itself included) that failed or not.
    pub fn record(&mut self, level: usize, failed: bool) {
        let w = self.weight;
        let l = self.at(level);
        l.sent += w;
        l.failed += if failed { w } else { 0.0 };
        self.weight *= GROWTH;
        if self.weight > RESCALE {
            for l in &mut self.levels {
                l.sent /= self.weight;
                l.failed /= self.weight;
            }
            self.weight = 1.0;
        }
    }

    /// The failure rate at `level`, with one failure and one success assumed on top (so an
    /// unknown level reads 0.5).
    pub fn rate(&mut self, level: usize) -> f64 {
        let w = self.weight;
        let l = self.at(level);
        (l.failed / w + 1.0) / (l.sent / w + 2.0)
    }

    /// Faded observations above `level`, and how many of those failed.
    pub fn above(&self, level: usize) -> (f64, f64) {
        let (mut sent, mut failed) = (0.0, 0.0);
        for l in self.levels.iter().skip(level) {
            sent += l.sent / self.weight;
            failed += l.failed / self.weight;
        }
        (sent, failed)
    }

    /// The knee: the level `k` that best splits "sent at most `k` in flight" from "sent at more"
    /// such that failures above are much more frequent (see [`MIN_GAP`], [`MIN_Z`]), with at
    /// least `above` failures above it, or `None` when the failure rate does not depend on the
    /// load. Attempts still in flight count as not failed (yet): a shed comes back at once,
    /// while the attempts the server does serve are still running.
    pub fn knee(&self, above: f64) -> Option<usize> {
        let (total, total_failed) = self.above(0);
        let total = total + f64::from(self.in_flight());
        let p = total_failed / total;
        let (mut a, mut fa, mut best) = (0.0, 0.0, None);
        let mut best_z = MIN_Z;
        let below_top = self.levels.len() - 1;
        for (k, l) in self.levels.iter().take(below_top).enumerate() {
            a += l.sent / self.weight + f64::from(l.pending);
            fa += l.failed / self.weight;
            let (b, fb) = (total - a, total_failed - fa);
            if a < MIN_SIDE || b < MIN_SIDE || fb < above {
                continue;
            }
            let gap = fb / b - fa / a;
            let z = gap / (p * (1.0 - p) * (1.0 / a + 1.0 / b)).sqrt();
            // The most significant split; ties go to the higher level.
            if gap >= MIN_GAP && z >= best_z {
                best_z = z;
                best = Some(k + 1);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_sheds_past_its_capacity_has_a_knee_there() {
        let mut l = Levels::new(32);
        for level in 1..=32 {
            l.record(level, level > 12);
        }
        assert_eq!(l.knee(0.0), Some(12));
        let mut shed_only = Levels::new(32);
        for level in 13..=32 {
            shed_only.record(level, true);
        }
        assert_eq!(shed_only.knee(0.0), None, "nothing known below");
        for level in 1..=12 {
            shed_only.send(level);
        }
        assert_eq!(shed_only.in_flight(), 12);
        assert_eq!(
            shed_only.knee(0.0),
            Some(12),
            "the 12 still in flight were not shed"
        );
        shed_only.settle(1);
        shed_only.settle(40);
        assert_eq!(
            shed_only.in_flight(),
            11,
            "level 40 is 32's, where none is in flight"
        );
        let (sent, failed) = l.above(12);
        assert!(
            (sent - failed).abs() < 1e-9 && sent > 15.0,
            "{sent} {failed}"
        );
    }

    #[test]
    fn random_failures_have_no_knee() {
        // The same rate at every level: 2 of every 5 fail, wherever they were sent.
        let mut l = Levels::new(10);
        for i in 0..400 {
            l.record(1 + i % 10, i % 5 < 2);
        }
        assert_eq!(l.knee(0.0), None);
    }

    #[test]
    fn too_little_evidence_is_no_knee() {
        let mut l = Levels::new(14);
        for level in 1..=10 {
            l.record(level, false);
        }
        l.record(11, true);
        l.record(12, true);
        assert_eq!(l.knee(0.0), None, "two failures above are not enough");
        l.record(13, true);
        assert_eq!(l.knee(0.0), Some(10));
    }

    #[test]
    fn evidence_fades_and_weights_stay_finite() {
        let mut l = Levels::new(4);
        l.record(4, true);
        l.record(9, true);
        let (sent, failed) = l.above(3);
        let want = 0.99 * 0.99 + 0.99;
        assert!(
            (sent - want).abs() < 1e-12 && (failed - want).abs() < 1e-12,
            "{sent}"
        );
        // Past RESCALE (about 2,750 records) and far past where an unscaled weight would
        // overflow (about 70,000).
        for _ in 0..100_000 {
            l.record(1, false);
        }
        let (sent, failed) = l.above(3);
        assert!(sent < 1e-10 && failed < 1e-10, "faded: {sent}");
        let (all, _) = l.above(0);
        assert!(
            (all - 100.0).abs() < 1.5,
            "about 100 observations' worth: {all}"
        );
    }

    #[test]
    fn a_levels_failure_rate_counts_one_failure_and_one_success_on_top() {
        let mut l = Levels::new(3);
        assert_eq!(l.rate(2), 0.5, "unknown");
        l.record(2, true);
        // The weights have grown by one step (1 / 0.99) since: the failure reads 0.99.
        assert!((l.rate(2) - 1.99 / 2.99).abs() < 1e-12, "{}", l.rate(2));
        l.record(2, false);
        // The failure was recorded a step before the success.
        let (f, s) = (0.99, 0.99 + 1.0);
        let want = (f * 0.99 + 1.0) / (s * 0.99 + 2.0);
        assert!((l.rate(2) - want).abs() < 1e-12, "{} {want}", l.rate(2));
        for _ in 0..50 {
            l.record(3, false);
        }
        // Rates are the same whatever the weights have grown to.
        let faded = 0.99f64.powi(50);
        let want = (f * 0.99 * faded + 1.0) / (s * 0.99 * faded + 2.0);
        assert!((l.rate(2) - want).abs() < 1e-12, "{} {want}", l.rate(2));
        assert!(l.rate(3) < 0.05, "{}", l.rate(3));
    }

    #[test]
    fn failures_below_a_split_count_against_it() {
        // Half fail at 1..=10, all above: a knee at 10, the gap being 0.5.
        let mut l = Levels::new(20);
        for round in 0..40 {
            for level in 1..=20 {
                l.record(level, level > 10 || (round + level) % 2 == 0);
            }
        }
        assert_eq!(l.knee(0.0), Some(10));
        // Two thirds fail below: the gap is 1/3 and the evidence (faded to about 100
        // observations) is still significant; at four in five (a gap of 0.2) it is not.
        for (below, want) in [(3, Some(10)), (5, None)] {
            let mut l = Levels::new(20);
            for round in 0..40 {
                for level in 1..=20 {
                    l.record(level, level > 10 || (round + level) % below != 0);
                }
            }
            assert_eq!(l.knee(0.0), want, "{below}");
        }
    }

    #[test]
    fn a_side_of_fewer_than_min_side_observations_is_no_knee() {
        // 2 in flight at 1 and 2, every attempt above failed: too few below to compare.
        let mut l = Levels::new(8);
        l.send(1);
        l.send(2);
        for _ in 0..2 {
            for level in 3..=8 {
                l.record(level, true);
            }
        }
        assert_eq!(l.knee(0.0), None);
        l.send(2);
        assert_eq!(l.knee(0.0), Some(2), "3 are enough");
    }

    #[test]
    fn a_significant_split_still_needs_the_gap_and_ties_go_to_the_higher_level() {
        // 1,000 still in flight at level 1 make any gap significant: 20% failing above is
        // still no knee (under MIN_GAP), 30% is.
        for (failing, want) in [(2, None), (3, Some(1))] {
            let mut l = Levels::new(4);
            for _ in 0..1000 {
                l.send(1);
            }
            for i in 0..60 {
                l.record(2 + i % 3, i % 10 < failing);
            }
            assert_eq!(l.knee(0.0), want, "{failing} in 10");
        }
        // Nothing known at 4: splitting at 3 or 4 is the same split, and 4 wins.
        let mut l = Levels::new(8);
        for _ in 0..3 {
            for level in 1..=3 {
                l.record(level, false);
            }
            for level in 5..=8 {
                l.record(level, true);
            }
        }
        assert_eq!(l.knee(0.0), Some(4));
    }
}
