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

/// Sent and failed weights per level (index `n - 1` holds level `n`).
#[derive(Clone, Debug, PartialEq)]
pub struct Levels {
    sent: Vec<f64>,
    failed: Vec<f64>,
    weight: f64,
}

impl Levels {
    /// Levels `1..=max`; an attempt sent above `max` (a limit lowered since) counts as `max`.
    pub fn new(max: usize) -> Self {
        Levels {
            sent: vec![0.0; max.max(1)],
            failed: vec![0.0; max.max(1)],
            weight: 1.0,
        }
    }

    /// One attempt sent at `level` (itself included) that failed or not.
    pub fn record(&mut self, level: usize, failed: bool) {
        let i = level.clamp(1, self.sent.len()) - 1;
        self.sent[i] += self.weight;
        if failed {
            self.failed[i] += self.weight;
        }
        self.weight *= GROWTH;
        if self.weight > RESCALE {
            for v in self.sent.iter_mut().chain(self.failed.iter_mut()) {
                *v /= self.weight;
            }
            self.weight = 1.0;
        }
    }

    /// Faded observations above `level`, and how many of those failed.
    pub fn above(&self, level: usize) -> (f64, f64) {
        let from = level.min(self.sent.len());
        let sum = |v: &[f64]| v[from..].iter().sum::<f64>() / self.weight;
        (sum(&self.sent), sum(&self.failed))
    }

    /// The knee: the level `k` that best splits "sent at most `k` in flight" from "sent at more"
    /// such that failures above are much more frequent (see [`MIN_GAP`], [`MIN_Z`]), or
    /// `None` when the failure rate does not depend on the load. `pending` are the levels of
    /// attempts still in flight, counted as not failed (yet): a shed comes back at once, while
    /// the attempts the server does serve are still running.
    /// `above`: failures needed above the knee (beside [`MIN_SIDE`] observations).
    pub fn knee(&self, pending: impl Iterator<Item = usize>, above: f64) -> Option<usize> {
        let w = self.weight;
        let mut sent: Vec<f64> = self.sent.iter().map(|s| s / w).collect();
        for level in pending {
            sent[level.clamp(1, self.sent.len()) - 1] += 1.0;
        }
        let total: f64 = sent.iter().sum();
        let total_failed: f64 = self.failed.iter().sum::<f64>() / w;
        let p = total_failed / total;
        let (mut a, mut fa, mut best) = (0.0, 0.0, None);
        let mut best_fit = f64::NEG_INFINITY;
        for k in 1..sent.len() {
            a += sent[k - 1];
            fa += self.failed[k - 1] / w;
            let (b, fb) = (total - a, total_failed - fa);
            if a < MIN_SIDE || b < MIN_SIDE || fb < above {
                continue;
            }
            let gap = fb / b - fa / a;
            let z = gap / (p * (1.0 - p) * (1.0 / a + 1.0 / b)).sqrt();
            // Among the significant splits, the one that best explains the data as two
            // failure rates (a binomial likelihood); ties go to the higher level.
            let fit = a * entropy(fa / a) + b * entropy(fb / b);
            if gap >= MIN_GAP && z >= MIN_Z && fit >= best_fit {
                best_fit = fit;
                best = Some(k);
            }
        }
        best
    }
}

/// `r ln r + (1 - r) ln(1 - r)`: the log-likelihood per observation of a failure rate `r`.
fn entropy(r: f64) -> f64 {
    let term = |x: f64| if x > 0.0 { x * x.ln() } else { 0.0 };
    term(r) + term(1.0 - r)
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
        assert_eq!(l.knee(None.into_iter(), 0.0), Some(12));
        let mut shed_only = Levels::new(32);
        for level in 13..=32 {
            shed_only.record(level, true);
        }
        assert_eq!(
            shed_only.knee(None.into_iter(), 0.0),
            None,
            "nothing known below"
        );
        assert_eq!(
            shed_only.knee(1..=12, 0.0),
            Some(12),
            "the 12 still in flight were not shed"
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
        assert_eq!(l.knee(None.into_iter(), 0.0), None);
    }

    #[test]
    fn too_little_evidence_is_no_knee() {
        let mut l = Levels::new(14);
        for level in 1..=10 {
            l.record(level, false);
        }
        l.record(11, true);
        l.record(12, true);
        assert_eq!(
            l.knee(None.into_iter(), 0.0),
            None,
            "two failures above are not enough"
        );
        l.record(13, true);
        assert_eq!(l.knee(None.into_iter(), 0.0), Some(10));
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
        for _ in 0..5000 {
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
}
