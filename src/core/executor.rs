//! The single-threaded bounded-concurrency executor, as a value: built from a [`Config`] and a
//! clock, optionally a shared [`Pacer`], a cancel token and a random source, then run over a
//! batch. It carries out what the rules decide: the pacer admits attempts, the queue orders
//! them, the retry rule ([`RetryPolicy`]) says what follows a failure.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::abortable;
use futures::stream::{FuturesUnordered, StreamExt};

use super::budget::AttemptBudget;
use super::cancel::CancelToken;
use super::clock::{Clock, Sleep};
use super::limits::{Cost, Feedback};
use super::observation::{Observation, Observed};
use super::pacer::{Admission, Pacer, PacingConfig, Ticket};
use super::queue::ReadyQueue;
pub use super::report::{Config, Event, ItemResult, Observer, Progress};
use super::retry::{Action, AttemptState, RetryPolicy};
use super::rng::{Rng, SplitMix64};
use super::timeouts::AttemptTimeouts;
use crate::error::{ErrorKind, Failure, ItemError};

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Queued,
    Running { attempt: u32, started: Duration },
    Waiting,
    Done,
}

struct ItemState {
    phase: Phase,
    attempts: u32,
    first_start: Option<Duration>,
    last_delay: Option<Duration>,
    last_failure: Option<Failure>,
    cost: Option<Cost>,
    ticket: Ticket,
    /// Attempts in flight (every call's) once its current attempt was sent.
    in_flight_at_start: usize,
}

type AttemptFuture<V> = Pin<Box<dyn Future<Output = (usize, Result<V, Failure>)>>>;
type WaitFuture = Pin<Box<dyn Future<Output = usize>>>;

/// What the pacer needs to know about a batch's items: what each costs, and what a
/// successful value reports (usage, rate-limit headers). `()` is "costs nothing, says
/// nothing"; a pair of closures `(cost, feedback)` is a quick implementation.
pub trait Pacing<V> {
    /// The expected cost of item `index`, asked once before its first attempt; an `Err`
    /// (the item cannot be read, or can never be sent) fails it at once as `invalid`, with
    /// no attempt made.
    fn cost(&self, _index: usize) -> Result<Cost, String> {
        Ok(Cost::default())
    }

    /// What a success reports.
    fn feedback(&self, _value: &V) -> Feedback {
        Feedback::default()
    }
}

impl<V> Pacing<V> for () {}

impl<V, C, F> Pacing<V> for (C, F)
where
    C: Fn(usize) -> Result<Cost, String>,
    F: Fn(&V) -> Feedback,
{
    fn cost(&self, index: usize) -> Result<Cost, String> {
        (self.0)(index)
    }

    fn feedback(&self, value: &V) -> Feedback {
        (self.1)(value)
    }
}

/// Runs batches: see the module docs and [`Executor::run`].
///
/// ```
/// use edgebatch::core::{clock::VirtualClock, executor::*};
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
/// let results = clock.block_on(Executor::new(&config, &clock).run(5, task, &(), &mut ()));
/// assert_eq!(results.iter().map(|r| *r.outcome.as_ref().unwrap()).collect::<Vec<_>>(),
///     vec![0, 2, 4, 6, 8]);
/// assert_eq!(clock.now(), Duration::from_millis(300)); // 5 items, 2 at a time, 100 ms each
/// ```
#[must_use = "an executor does nothing until it runs"]
pub struct Executor<'a, C: Clock + ?Sized> {
    config: &'a Config,
    clock: &'a C,
    pacer: Option<&'a RefCell<Pacer>>,
    cancel: Option<&'a CancelToken>,
    rng: Box<dyn Rng + 'a>,
}

impl<'a, C: Clock + ?Sized> Executor<'a, C> {
    /// An executor of `config` on `clock`.
    ///
    /// # Default
    /// No pacing beyond `config.concurrency` (a pacer of its own with
    /// [`PacingConfig::off`]), never cancelled, jitter from `SplitMix64::new(0)`.
    pub fn new(config: &'a Config, clock: &'a C) -> Self {
        Executor {
            config,
            clock,
            pacer: None,
            cancel: None,
            rng: Box::new(SplitMix64::new(0)),
        }
    }

    /// Paces every attempt through `pacer` (shared by every batch of one processor): before
    /// each attempt it admits it (rate budgets, the pause after a 429, adaptive concurrency,
    /// the breaker) or says how long to wait, and the item waits at the head of the queue,
    /// holding its place. Its slots are shared too: one processor's `concurrency` bounds all
    /// its batches together.
    pub fn pacer(mut self, pacer: &'a RefCell<Pacer>) -> Self {
        self.pacer = Some(pacer);
        self
    }

    /// Stops the batch when `token` is cancelled: attempts in flight are dropped (aborted)
    /// and every unfinished item fails as `aborted`.
    pub fn cancel_on(mut self, token: &'a CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// The random source of the backoff's jitter.
    pub fn rng(mut self, rng: impl Rng + 'a) -> Self {
        self.rng = Box::new(rng);
        self
    }

    /// Runs `total` items through `task(index, attempt)` and returns one result per item, in
    /// input order. Never more than `config.concurrency` attempts run at once; new items
    /// start in input order, retries (once their backoff is over) go first. Dropping an
    /// attempt's future must abort it: that is how timeouts, deadlines and cancellation stop
    /// real requests. Once `config.max_attempts` attempts have started, nothing more starts:
    /// the items still queued or waiting fail at once (see [`AttemptBudget`]). An item no
    /// budget can ever hold fails at once as `invalid`.
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
        let Executor {
            config,
            clock,
            pacer,
            cancel,
            mut rng,
        } = self;
        let own_pacer;
        let pacer = match pacer {
            Some(pacer) => pacer,
            None => {
                own_pacer = RefCell::new(Pacer::new(
                    &PacingConfig::off(),
                    config.concurrency,
                    clock.now(),
                ));
                &own_pacer
            }
        };
        let own_cancel;
        let cancel = match cancel {
            Some(cancel) => cancel,
            None => {
                own_cancel = CancelToken::new();
                &own_cancel
            }
        };
        let start = clock.now();
        let mut batch = Batch {
            config,
            policy: RetryPolicy {
                max_retries: config.max_retries,
                backoff: config.backoff,
                max_server_wait: config.max_retry_after,
            },
            clock,
            task,
            pacer,
            pacing,
            gate: None,
            cancel,
            rng: &mut *rng,
            observer,
            start,
            deadline_at: config.deadline.map(|d| start + d),
            deadline: config.deadline.map(|d| clock.sleep(d)),
            items: (0..total)
                .map(|_| ItemState {
                    phase: Phase::Queued,
                    attempts: 0,
                    first_start: None,
                    last_delay: None,
                    last_failure: None,
                    cost: None,
                    ticket: Ticket::default(),
                    in_flight_at_start: 0,
                })
                .collect(),
            results: (0..total).map(|_| None).collect(),
            ready: ReadyQueue::new(total),
            running: FuturesUnordered::new(),
            waiting: FuturesUnordered::new(),
            timeouts: AttemptTimeouts::default(),
            budget: AttemptBudget::new(config.max_attempts),
            done: 0,
            ok: 0,
            retries: 0,
        };
        poll_fn(|cx| batch.poll(cx)).await;
        std::mem::take(&mut batch.results)
            .into_iter()
            .map(|r| r.expect("every item has exactly one result"))
            .collect()
    }
}

/// An item's final error with what its last attempt said (status, type, message).
fn with_last_failure(mut error: ItemError, last: Option<Failure>) -> ItemError {
    if let Some(last) = last {
        error.status = last.status;
        error.error_type = last.error_type;
        error.message = format!("{}; last error: {}", error.message, last.message);
    }
    error
}

struct Batch<'a, V, C: ?Sized + Clock, F, P: ?Sized, O: ?Sized> {
    config: &'a Config,
    policy: RetryPolicy,
    clock: &'a C,
    task: F,
    pacer: &'a RefCell<Pacer>,
    pacing: &'a P,
    /// Wakes the dispatcher when the pacer's wait is over.
    gate: Option<(Duration, Sleep)>,
    cancel: &'a CancelToken,
    rng: &'a mut dyn Rng,
    observer: &'a mut O,
    start: Duration,
    deadline_at: Option<Duration>,
    deadline: Option<Sleep>,
    items: Vec<ItemState>,
    results: Vec<Option<ItemResult<V>>>,
    ready: ReadyQueue,
    running: FuturesUnordered<AttemptFuture<V>>,
    waiting: FuturesUnordered<WaitFuture>,
    timeouts: AttemptTimeouts,
    budget: AttemptBudget,
    done: usize,
    ok: usize,
    retries: u64,
}

/// A batch dropped before its end (its future dropped mid-way) gives the processor back the
/// slots and reservations of its attempts in flight.
impl<V, C: ?Sized + Clock, F, P: ?Sized, O: ?Sized> Drop for Batch<'_, V, C, F, P, O> {
    fn drop(&mut self) {
        let now = self.clock.now();
        for state in &self.items {
            if matches!(state.phase, Phase::Running { .. }) {
                let cost = state.cost.unwrap_or_default();
                self.pacer.borrow_mut().on_abandoned(&cost, now);
            }
        }
    }
}

impl<V, C, F, Fut, P, O> Batch<'_, V, C, F, P, O>
where
    V: 'static,
    C: Clock + ?Sized,
    F: Fn(usize, u32) -> Fut,
    Fut: Future<Output = Result<V, Failure>> + 'static,
    P: Pacing<V> + ?Sized,
    O: Observer<V> + ?Sized,
{
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.done == self.items.len() {
                return Poll::Ready(());
            }
            if self.cancel.poll_cancelled(cx).is_ready() {
                self.stop_all(ErrorKind::Aborted);
                return Poll::Ready(());
            }
            if let Some(deadline) = self.deadline.as_mut() {
                if deadline.as_mut().poll(cx).is_ready() {
                    self.stop_all(ErrorKind::Deadline);
                    return Poll::Ready(());
                }
            }
            let items = &self.items;
            self.timeouts.expire(cx, self.clock, |index, attempt| {
                matches!(items[index].phase, Phase::Running { attempt: a, .. } if a == attempt)
            });
            let mut progressed = false;
            while let Poll::Ready(Some((index, outcome))) = self.running.poll_next_unpin(cx) {
                self.finish_attempt(index, outcome);
                progressed = true;
            }
            while let Poll::Ready(Some(index)) = self.waiting.poll_next_unpin(cx) {
                self.items[index].phase = Phase::Queued;
                self.ready.push_retry(index);
                progressed = true;
            }
            progressed |= self.dispatch(cx);
            if !progressed {
                return Poll::Pending;
            }
            self.emit_progress();
        }
    }

    /// Starts what the concurrency limit and the pacer allow; arms the gate timer when the
    /// pacer says "wait until".
    fn dispatch(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        loop {
            let Some(index) = self.ready.peek() else {
                self.gate = None;
                return progressed;
            };
            // The slots are the processor's: another call's attempts count too.
            if self.pacer.borrow().in_flight() >= self.limit() {
                self.pacer.borrow_mut().wait_for_slot(cx.waker());
                self.gate = None;
                return progressed;
            }
            let cost = match self.items[index].cost {
                Some(cost) => cost,
                None => match self.pacing.cost(index) {
                    Ok(cost) => *self.items[index].cost.insert(cost),
                    Err(message) => {
                        self.ready.pop();
                        self.finalize(index, Err(ItemError::bare(ErrorKind::Invalid, message)));
                        progressed = true;
                        continue;
                    }
                },
            };
            let now = self.clock.now();
            let admission = self.pacer.borrow_mut().admit(&cost, now);
            match admission {
                // Waiting for the probe (maybe another call's); with nothing in flight there
                // is no probe to wait for.
                Admission::Blocked if self.pacer.borrow().in_flight() > 0 => {
                    self.pacer.borrow_mut().wait_for_slot(cx.waker());
                    self.gate = None;
                    return progressed;
                }
                Admission::Go | Admission::Blocked => {
                    self.ready.pop();
                    let mut pacer = self.pacer.borrow_mut();
                    self.items[index].ticket = pacer.start(&cost, now);
                    self.items[index].in_flight_at_start = pacer.in_flight();
                    drop(pacer);
                    self.start_attempt(index);
                }
                Admission::Never(message) => {
                    self.ready.pop();
                    self.finalize(index, Err(ItemError::bare(ErrorKind::Invalid, message)));
                }
                Admission::Until(at) if self.deadline_at.is_some_and(|d| at >= d) => {
                    self.ready.pop();
                    self.fail_past_deadline(index, at - now);
                }
                Admission::Until(at) => {
                    if self.gate.as_ref().is_none_or(|(armed, _)| *armed != at) {
                        self.gate = Some((at, self.clock.sleep(at.saturating_sub(now))));
                    }
                    let (_, sleep) = self.gate.as_mut().expect("armed above");
                    if sleep.as_mut().poll(cx).is_pending() {
                        return progressed;
                    }
                    self.gate = None;
                    continue;
                }
            }
            progressed = true;
        }
    }

    /// The pacer holds `index` back (a 429's pause, a budget, the breaker) for `wait`, past
    /// the deadline: it fails now, saying the wait, rather than idle until the deadline.
    fn fail_past_deadline(&mut self, index: usize, wait: Duration) {
        let ms = wait.as_millis() as u64;
        let mut error = ItemError::bare(
            ErrorKind::Deadline,
            format!("the processor's pacing holds new attempts for {ms} ms, past the deadline"),
        );
        error = with_last_failure(error, self.items[index].last_failure.take());
        error.retryable = true;
        error.retry_after_ms = Some(ms);
        self.finalize(index, Err(error));
    }

    fn limit(&self) -> usize {
        self.config
            .concurrency
            .min(self.pacer.borrow().concurrency())
    }

    fn since_start(&self, now: Duration) -> Duration {
        now.saturating_sub(self.start)
    }

    fn start_attempt(&mut self, index: usize) {
        let now = self.clock.now();
        self.budget.take();
        let state = &mut self.items[index];
        state.attempts += 1;
        let attempt = state.attempts;
        state.first_start.get_or_insert(now);
        state.phase = Phase::Running {
            attempt,
            started: now,
        };
        self.observer.event(&Event::Start {
            index,
            attempt,
            at: self.since_start(now),
        });
        let work = (self.task)(index, attempt);
        if self.budget.is_spent() {
            self.refuse_waiting();
        }
        let Some(after) = self.config.timeout else {
            self.running
                .push(Box::pin(async move { (index, work.await) }));
            return;
        };
        let (work, handle) = abortable(work);
        self.timeouts.push(now + after, index, attempt, handle);
        self.running.push(Box::pin(async move {
            let outcome = match work.await {
                Ok(outcome) => outcome,
                Err(_aborted) => Err(Failure::timeout(after)),
            };
            (index, outcome)
        }));
    }

    /// The budget is spent: no item that is queued or waiting out a backoff can ever start
    /// again, so each fails now rather than after its wait. Attempts in flight run on.
    fn refuse_waiting(&mut self) {
        self.waiting.clear();
        self.ready.close();
        self.gate = None;
        for index in 0..self.items.len() {
            let state = &mut self.items[index];
            if !matches!(state.phase, Phase::Queued | Phase::Waiting) {
                continue;
            }
            let error = match state.last_failure.take() {
                Some(last) => self.budget.refused(last),
                None => self.budget.unstarted(),
            };
            self.finalize(index, Err(error));
        }
    }

    fn finish_attempt(&mut self, index: usize, outcome: Result<V, Failure>) {
        let now = self.clock.now();
        let Phase::Running { attempt, started } = self.items[index].phase else {
            unreachable!("only running items finish attempts")
        };
        let (kind, status) = match &outcome {
            Ok(_) => (None, None),
            Err(f) => (Some(f.kind()), f.status),
        };
        self.observer.event(&Event::End {
            index,
            attempt,
            at: self.since_start(now),
            latency: now.saturating_sub(started),
            outcome: kind,
            status,
        });
        let state = &self.items[index];
        let observation = |outcome| Observation {
            cost: state.cost.unwrap_or_default(),
            ticket: state.ticket,
            started,
            ended: now,
            in_flight_at_start: state.in_flight_at_start,
            // Counting this attempt: it was in flight until now.
            in_flight: self.running.len() + 1,
            outcome,
        };
        let failure = match outcome {
            Ok(value) => {
                let feedback = self.pacing.feedback(&value);
                let seen = observation(Observed::Success(&feedback));
                self.pacer.borrow_mut().observe(&seen);
                return self.finalize(index, Ok(value));
            }
            Err(failure) => failure,
        };
        let attempt_state = AttemptState {
            attempt,
            now,
            deadline: self.deadline_at,
            previous_delay: state.last_delay,
            budget_spent: self.budget.is_spent(),
        };
        let decision = self.policy.decide(&failure, &attempt_state, self.rng);
        let seen = observation(Observed::Failure {
            failure: &failure,
            class: decision.class,
            pause: decision.pause,
        });
        self.pacer.borrow_mut().observe(&seen);
        let delay = match decision.action {
            Action::Retry(delay) => delay,
            Action::Fail(refusal) => {
                let error = refusal.error(failure, &self.budget);
                return self.finalize(index, Err(error));
            }
        };
        self.retries += 1;
        let state = &mut self.items[index];
        state.last_delay = Some(delay);
        state.last_failure = Some(failure);
        state.phase = Phase::Waiting;
        self.observer.event(&Event::Backoff {
            index,
            attempt,
            at: self.since_start(now),
            delay,
        });
        if delay.is_zero() {
            self.items[index].phase = Phase::Queued;
            self.ready.push_retry(index);
        } else {
            let sleep = self.clock.sleep(delay);
            self.waiting.push(Box::pin(async move {
                sleep.await;
                index
            }));
        }
    }

    fn finalize(&mut self, index: usize, outcome: Result<V, ItemError>) {
        let now = self.clock.now();
        let state = &mut self.items[index];
        state.phase = Phase::Done;
        self.done += 1;
        if outcome.is_ok() {
            self.ok += 1;
        }
        let result = ItemResult {
            index,
            outcome,
            attempts: state.attempts,
            elapsed: state
                .first_start
                .map_or(Duration::ZERO, |s| now.saturating_sub(s)),
        };
        self.observer.result(&result);
        self.results[index] = Some(result);
    }

    /// Cancellation or deadline: every attempt in flight is dropped (which aborts it) and
    /// every unfinished item gets its result now.
    fn stop_all(&mut self, kind: ErrorKind) {
        self.running.clear();
        self.waiting.clear();
        self.timeouts.clear();
        self.gate = None;
        let now = self.clock.now();
        let what = if kind == ErrorKind::Aborted {
            "cancelled"
        } else {
            "deadline reached"
        };
        for index in 0..self.items.len() {
            let state = &self.items[index];
            let message = match state.phase {
                Phase::Done => continue,
                Phase::Queued if state.attempts == 0 => format!("{what} before the item started"),
                Phase::Queued | Phase::Waiting => format!("{what} while waiting to retry"),
                Phase::Running { attempt, started } => {
                    let cost = state.cost.unwrap_or_default();
                    self.pacer.borrow_mut().on_abandoned(&cost, now);
                    self.observer.event(&Event::End {
                        index,
                        attempt,
                        at: self.since_start(now),
                        latency: now.saturating_sub(started),
                        outcome: Some(kind),
                        status: None,
                    });
                    format!("{what} during attempt {attempt}")
                }
            };
            let last = self.items[index].last_failure.take();
            let error = with_last_failure(ItemError::bare(kind, message), last);
            self.finalize(index, Err(error));
        }
        self.emit_progress();
    }

    fn emit_progress(&mut self) {
        let progress = Progress {
            total: self.items.len(),
            done: self.done,
            ok: self.ok,
            failed: self.done - self.ok,
            in_flight: self.running.len(),
            queued: self.ready.len(),
            waiting: self.waiting.len(),
            retries: self.retries,
            limit: self.limit(),
            elapsed: self.since_start(self.clock.now()),
        };
        self.observer.progress(&progress);
    }
}
