//! The single-threaded bounded-concurrency executor, as a value: built from a [`Config`] and a
//! clock, optionally a shared [`Pacer`], a cancel token and a random source, then run over a
//! batch. It carries out what the rules decide: the pacer admits attempts, the queue orders
//! them, the retry rule (`retry/`) says what follows a failure (the batch's state machine
//! is in `batch/`; what the pacer asks of the items, in `pacing.rs`).

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use super::batch::{Batch, Setup};
use super::cache_groups::CacheGroups;
use super::cancel::CancelToken;
use super::clock::Clock;
use super::pacer::Pacer;
use super::permit_source::Permits;
// `Pacing` is its own module (`pacing.rs`); re-exported here, where callers of `run` look.
pub use super::pacing::Pacing;
pub use super::report::{Config, Event, ItemResult, Observer, Progress};
use super::rng::{Rng, SplitMix64};
use crate::error::Failure;

/// Runs batches: see the module docs and [`Executor::run`].
///
/// ```
/// use edgebatch::core::{clock::VirtualClock, executor::*, pacer::Pacer};
/// use edgebatch::Clock;
/// use std::time::Duration;
///
/// let clock = VirtualClock::new();
/// let c = clock.clone();
/// let task = move |i: usize, _attempt: u32| {
///     let sleep = c.sleep(Duration::from_millis(100));
///     async move { sleep.await; Ok::<_, edgebatch::Failure>(i * 2) }
/// };
/// let config = Config { concurrency: 2, ..Config::default() };
/// let pacer = Pacer::unpaced(config.concurrency);
/// let results = clock.block_on(Executor::new(&config, &clock, &pacer).run(5, task, &(), &mut ()));
/// assert_eq!(results.iter().map(|r| *r.outcome.as_ref().unwrap()).collect::<Vec<_>>(),
///     vec![0, 2, 4, 6, 8]);
/// assert_eq!(clock.now(), Duration::from_millis(300)); // 5 items, 2 at a time, 100 ms each
/// ```
#[must_use = "an executor does nothing until it runs"]
pub struct Executor<'a, C: Clock + ?Sized> {
    config: &'a Config,
    clock: &'a C,
    pacer: &'a RefCell<Pacer>,
    fallbacks: &'a [&'a RefCell<Pacer>],
    fallback_after: Option<Duration>,
    cancel: Option<&'a CancelToken>,
    permits: Option<&'a dyn Permits>,
    groups: Option<&'a CacheGroups<'a>>,
    rng: Option<&'a mut dyn Rng>,
    seed: u64,
}

impl<'a, C: Clock + ?Sized> Executor<'a, C> {
    /// An executor of `config` on `clock`, paced by `pacer` (shared by every batch of one
    /// processor; [`Pacer::unpaced`] for none beyond `config.concurrency`): before each
    /// attempt the pacer admits it (rate budgets, the pause after a 429, adaptive
    /// concurrency, the breaker) or says how long to wait, and the item waits at the head of
    /// the queue, holding its place. Its slots are shared too: one processor's `concurrency`
    /// bounds all its batches together.
    ///
    /// # Default
    /// Never cancelled; no permit source; no fallbacks; jitter from `SplitMix64::new(0)`.
    pub fn new(config: &'a Config, clock: &'a C, pacer: &'a RefCell<Pacer>) -> Self {
        Executor {
            config,
            clock,
            pacer,
            fallbacks: &[],
            fallback_after: None,
            cancel: None,
            permits: None,
            groups: None,
            rng: None,
            seed: 0,
        }
    }

    /// Stops the batch when `token` is cancelled: attempts in flight are dropped (aborted)
    /// and every unfinished item fails as `aborted`.
    pub fn cancel_on(mut self, token: &'a CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Asks `permits` before every attempt, once the slot and the pacer admit it, and tells it
    /// how each granted attempt ended (see [`Permits`]; each ask names its alternative). The
    /// wait holds the slot but runs no attempt timeout; a refusal fails the item; a deferral
    /// moves the item to the next alternative whose source has not deferred, and once every
    /// one has (at once without fallbacks) stops the batch from starting anything more:
    /// attempts in flight finish, every other item ends `deferred`.
    pub fn permits(mut self, permits: &'a dyn Permits) -> Self {
        self.permits = Some(permits);
        self
    }

    /// Prompt-cache-aware starts (`cache_groups.rs`): items with the same key wait, taking
    /// no slot, until one of them (the primer) has its response begun; other items start as
    /// usual.
    pub fn cache_groups(mut self, groups: &'a CacheGroups<'a>) -> Self {
        self.groups = Some(groups);
        self
    }

    /// Alternatives after the first choice (the model or upstream of `pacer`), each paced by
    /// its own pacer (its budgets, its pause after a 429, its breaker), in the order they are
    /// tried. The retry rule moves an item on an overload, or on a rate limit whose wait
    /// passes the deadline or `after`; a queued item skips an alternative whose breaker is open
    /// and goes back to its own once it recovers (see `retry::Fallbacks`). One attempt budget,
    /// one retry count and one deadline per item across them all; `config.concurrency` bounds
    /// them together. The task learns the alternative of each attempt ([`Executor::run_routed`]).
    pub fn fallbacks(mut self, pacers: &'a [&'a RefCell<Pacer>], after: Option<Duration>) -> Self {
        self.fallbacks = pacers;
        self.fallback_after = after;
        self
    }

    /// Jitter from `SplitMix64::new(seed)`: a seed replays the same delays.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Jitter from `rng` instead (it wins over [`Executor::seed`]).
    pub fn rng(mut self, rng: &'a mut dyn Rng) -> Self {
        self.rng = Some(rng);
        self
    }

    /// Runs `total` items through `task(index, attempt)` and returns one result per item, in
    /// input order. Never more than `config.concurrency` attempts run at once; new items
    /// start in input order, retries (once their backoff is over) go first. Dropping an
    /// attempt's future must abort it: that is how timeouts, deadlines and cancellation stop
    /// real requests. Once `config.max_attempts` attempts have started, nothing more starts:
    /// the items still queued or waiting fail at once (see
    /// [`AttemptBudget`](super::budget::AttemptBudget)). An item no budget can ever hold
    /// fails at once as `invalid`.
    pub async fn run<V, F, Fut, P, O>(
        self,
        total: usize,
        task: F,
        pacing: &P,
        observer: &mut O,
    ) -> Vec<ItemResult<V>>
    where
        V: 'static,
        F: Fn(usize, u32) -> Fut,
        Fut: Future<Output = Result<V, Failure>> + 'static,
        P: Pacing<V> + ?Sized,
        O: Observer<V> + ?Sized,
    {
        let task = move |index, attempt, _alternative| task(index, attempt);
        self.run_routed(total, task, pacing, observer).await
    }

    /// [`Executor::run`] with `task(index, attempt, alternative)`: the alternative each
    /// attempt goes to (0: the first choice; see [`Executor::fallbacks`]).
    pub async fn run_routed<V, F, Fut, P, O>(
        self,
        total: usize,
        task: F,
        pacing: &P,
        observer: &mut O,
    ) -> Vec<ItemResult<V>>
    where
        V: 'static,
        F: Fn(usize, u32, usize) -> Fut,
        Fut: Future<Output = Result<V, Failure>> + 'static,
        P: Pacing<V> + ?Sized,
        O: Observer<V> + ?Sized,
    {
        let mut own_rng = SplitMix64::new(self.seed);
        let rng: &mut dyn Rng = match self.rng {
            Some(rng) => rng,
            None => &mut own_rng,
        };
        let setup = Setup {
            config: self.config,
            clock: self.clock,
            pacer: self.pacer,
            fallbacks: (self.fallbacks, self.fallback_after),
            pacing,
            cancel: self.cancel,
            permits: self.permits,
            groups: self.groups,
            rng,
            observer,
        };
        Batch::new(setup, task, total).run().await
    }
}
