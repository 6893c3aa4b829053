//! The concurrency controller: holds the configured concurrency unless the failure rate
//! depends on our own load, then settles at the highest load the evidence allows and probes
//! above it now and then. See `docs/API.md` ("Adaptive concurrency") for the signals and why.

use std::time::Duration;

use super::levels::Levels;

/// What an attempt said about the server's capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server did the work (any answer that is not an outage: 2xx, 4xx other than 429).
    Success,
    /// 5xx, 529, a network error or a timeout: a failure that may be overload.
    Failure,
    /// Nothing about capacity: a 429 (the pacer's job), the task's own error, a cancel.
    Neutral,
}

/// One finished attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Attempts in flight when it was sent, itself included (what [`Controller::sent`] got).
    pub level: usize,
    /// When it was sent.
    pub started: Duration,
    /// When it ended.
    pub ended: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

/// Why the limit is what it is (for progress events and the demo's chart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The configured concurrency: nothing says our load causes the failures.
    Configured,
    /// Failures are much more frequent when more than `knee` attempts are in flight: the
    /// limit is the knee. `shedding` when those failures came back fast (a server turning
    /// requests away at the door).
    Overload {
        /// The highest load with few failures.
        knee: usize,
        /// Fast rejections.
        shedding: bool,
    },
    /// The evidence above the knee has faded: trying more again.
    Probe,
    /// Fast rejections: the slots they freed are not refilled until a success (never below
    /// 1), so that the next attempts go out at lower levels.
    Held,
}

/// Failures (faded) above a knee before the controller believes in it: a handful of random
/// fast failures can happen to fall on the top levels, a shedding server fills them.
const MIN_FAILED: f64 = 8.0;

impl Reason {
    /// Its name in progress events: `configured`, `overload`, `shedding`, `probe`, `held`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Configured => "configured",
            Reason::Overload {
                shedding: false, ..
            } => "overload",
            Reason::Overload { .. } => "shedding",
            Reason::Probe => "probe",
            Reason::Held => "held",
        }
    }
}

/// Successes a limit must see (times the limit) before a probe above a knee.
const PROBE_ROUNDS: usize = 4;

/// A failure faster than this share of the typical success is a fast rejection.
const FAST_SHARE: f64 = 0.25;

/// See the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct Controller {
    max: usize,
    enabled: bool,
    limit: usize,
    knee: Option<usize>,
    reason: Reason,
    /// Slots freed by fast rejections and not refilled since.
    held: usize,
    levels: Levels,
    /// Successes since the limit last moved.
    successes: usize,
    /// Successes before the next probe, in multiples of the limit; doubles per failed probe.
    rounds: usize,
    /// The next probe's increase; doubles per successful probe.
    step: usize,
    /// Moving average of successful attempts' durations, in ms (0: none yet).
    ok_ms: f64,
}

impl Controller {
    /// Starts at `max`; a disabled one always answers `max` (and records nothing).
    pub fn new(max: usize, enabled: bool) -> Self {
        let max = max.max(1);
        Controller {
            max,
            enabled,
            limit: max,
            knee: None,
            reason: Reason::Configured,
            held: 0,
            levels: Levels::new(if enabled { max } else { 1 }),
            successes: 0,
            rounds: PROBE_ROUNDS,
            step: 1,
            ok_ms: 0.0,
        }
    }

    /// Attempts allowed in flight now.
    pub fn limit(&self) -> usize {
        self.limit.saturating_sub(self.held).max(1)
    }

    /// Why [`Controller::limit`] is what it is.
    pub fn reason(&self) -> Reason {
        if self.held > 0 && self.limit() < self.limit {
            Reason::Held
        } else {
            self.reason
        }
    }

    /// An attempt was sent with `level` attempts in flight, itself included.
    pub fn sent(&mut self, level: usize) {
        if self.enabled {
            self.levels.send(level);
        }
    }

    /// A fast rejection: much faster than successes take or, before any success, back while
    /// others are still running.
    fn fast(&self, o: &Observation) -> bool {
        let ms = o.ended.saturating_sub(o.started).as_secs_f64() * 1000.0;
        if self.ok_ms > 0.0 {
            ms < self.ok_ms * FAST_SHARE
        } else {
            self.levels.in_flight() > 0
        }
    }

    fn set(&mut self, limit: usize, reason: Reason) {
        self.limit = limit.min(self.max).max(1);
        self.reason = if self.limit == self.max && reason == Reason::Probe {
            Reason::Configured
        } else {
            reason
        };
        self.successes = 0;
        self.held = 0;
    }

    /// Before any success, most of the evidence below a knee is attempts still in flight:
    /// the knee then needs a quarter of the levels above it to have failed, too.
    /// The knee found already only needs confirming when a probe above it sheds: a few
    /// failures suffice there (and a knee that random failures faked is not confirmed);
    /// a new or lower knee needs [`MIN_FAILED`].
    fn knee(&self, early: bool) -> Option<usize> {
        if let (false, Some(known)) = (early, self.knee) {
            if let Some(k) = self.levels.knee(0.0).filter(|k| *k >= known) {
                return Some(k);
            }
        }
        let above = if early {
            MIN_FAILED.max(self.max as f64 / 4.0)
        } else {
            MIN_FAILED
        };
        // Below a known knee, one level at a time: sends all go at the limit, so the levels
        // under it hold little fresh evidence, and a jump down would rest on old data.
        let knee = self.levels.knee(above)?;
        Some(self.knee.map_or(knee, |known| knee.max(known - 1)))
    }

    /// An attempt sent through [`Controller::sent`] is over.
    pub fn observe(&mut self, o: &Observation) {
        if !self.enabled {
            return;
        }
        self.levels.settle(o.level);
        match o.outcome {
            Outcome::Neutral => {}
            Outcome::Failure => self.on_failure(o),
            Outcome::Success => self.on_success(o),
        }
    }

    /// After [`Controller::observe`] of `o`: whether the controller blames that failure on our
    /// own load. A fast rejection sent above the knee found (a probe's), or at a level the
    /// limit no longer allows (it was lowered, or the slot the failure freed is held): a
    /// server that sheds what we send past its capacity. Never before a knee is known (a storm
    /// that fails every level alike has none), nor for a failure that took as long as a
    /// success.
    pub fn blames_our_load(&self, o: &Observation) -> bool {
        // (A disabled controller never finds a knee.)
        o.outcome == Outcome::Failure
            && self.knee.is_some_and(|k| o.level > k.min(self.limit()))
            && self.fast(o)
    }

    fn on_failure(&mut self, o: &Observation) {
        self.levels.record(o.level, true);
        let fast = self.fast(o);
        if self.lower(fast, self.ok_ms == 0.0) {
            return;
        }
        // A shed slot is held until the next success: against a full server, refilling it
        // at once would only be shed again (a second burst before the evidence comes back),
        // and while slots are held the next attempts go out at lower levels, which is what
        // shows the knee: with every attempt sent at the limit, there is nothing to compare
        // the limit's failure rate with. Only where most attempts fail (this one included),
        // or at or above a knee already found: there a shed is the server's capacity (random
        // failures free some of its places, so the level just above the knee fails only now
        // and then, and refilling at once makes it a shed per few successes); below it, at a
        // level where most succeed, the server had room and the failure was random. An
        // attempt sent under a higher limit since lowered has no slot to hold.
        let at_knee = self.knee.is_some_and(|k| o.level >= k);
        if fast && o.level <= self.limit && (at_knee || self.levels.rate(o.level) > 0.5) {
            self.held = (self.held + 1).min(self.limit - 1);
        }
    }

    /// Lowers the limit to the knee, if there is one below it.
    fn lower(&mut self, shedding: bool, early: bool) -> bool {
        match self.knee(early) {
            Some(knee) if knee < self.limit => {
                // A probe above the last knee failed: wait twice as long for the next.
                if self.knee.is_some_and(|k| k < self.limit) {
                    self.rounds *= 2;
                }
                self.knee = Some(knee);
                self.step = 1;
                self.set(knee, Reason::Overload { knee, shedding });
                true
            }
            _ => false,
        }
    }

    fn on_success(&mut self, o: &Observation) {
        self.levels.record(o.level, false);
        let ms = o.ended.saturating_sub(o.started).as_secs_f64() * 1000.0;
        let early = self.ok_ms == 0.0;
        self.ok_ms = if early {
            ms
        } else {
            self.ok_ms * 0.9 + ms * 0.1
        };
        // Fast rejections were waiting for this: were they our load?
        let held = std::mem::take(&mut self.held);
        if held > 0 && self.lower(true, early) {
            return;
        }
        self.successes += 1;
        let in_use = o.level >= self.limit;
        if self.limit < self.max
            && in_use
            && self.successes >= self.rounds * self.limit
            && self.knee(false).is_none_or(|k| k > self.limit)
        {
            // This limit held up for a whole window: a failed probe comes back here.
            let to = self.limit + self.step;
            self.knee = self.knee.map(|_| self.limit).filter(|_| to < self.max);
            self.step *= 2;
            self.set(to, Reason::Probe);
        }
    }
}
