//! The single-threaded bounded-concurrency executor: one batch, one result per item.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::abortable;
use futures::stream::{FuturesUnordered, StreamExt};

use std::cell::RefCell;

use super::backoff::{server_delay, Rng};
use super::budget::AttemptBudget;
use super::cancel::CancelToken;
use super::clock::{Clock, Sleep};
use super::limits::{Cost, Feedback};
use super::pacer::{Admission, Pacer, PacingConfig, Ticket};
pub use super::report::{Config, Event, ItemResult, Observer, Progress};
use super::retry::is_retryable;
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
}

type AttemptFuture<V> = Pin<Box<dyn Future<Output = (usize, Result<V, Failure>)>>>;
type WaitFuture = Pin<Box<dyn Future<Output = usize>>>;

/// How a batch is paced: the processor's [`Pacer`], what each item costs, and what a
/// successful value tells the pacer (usage, rate-limit headers).
pub struct Pacing<'a, V> {
    /// Shared by every batch of one processor.
    pub pacer: &'a RefCell<Pacer>,
    /// The expected cost of item `index`, asked once before its first attempt; an `Err`
    /// (the item cannot be read, or can never be sent) fails it at once as `invalid`, with
    /// no attempt made.
    pub cost: &'a dyn Fn(usize) -> Result<Cost, String>,
    /// What a success reports.
    pub feedback: &'a dyn Fn(&V) -> Feedback,
}

/// Runs `total` items through `task(index, attempt)` and returns one result per item, in
/// input order. Never more than `config.concurrency` attempts run at once; new items start in
/// input order, retries (once their backoff is over) go first. Dropping an attempt's future
/// must abort it: that is how timeouts, deadlines and cancellation stop real requests. Once
/// `config.max_attempts` attempts have started, nothing more starts: the items still queued
/// or waiting fail at once (see [`AttemptBudget`]).
///
/// ```
/// use edgebatch::core::{clock::VirtualClock, executor::*, backoff::SplitMix64};
/// use edgebatch::core::cancel::CancelToken;
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
/// let mut rng = SplitMix64::new(1);
/// let results = clock.block_on(run_batch(&config, &clock, 5, task, &CancelToken::new(),
///     &mut rng, &mut ()));
/// assert_eq!(results.iter().map(|r| *r.outcome.as_ref().unwrap()).collect::<Vec<_>>(),
///     vec![0, 2, 4, 6, 8]);
/// assert_eq!(clock.now(), Duration::from_millis(300)); // 5 items, 2 at a time, 100 ms each
/// ```
pub async fn run_batch<V, C, F, Fut, O>(
    config: &Config,
    clock: &C,
    total: usize,
    task: F,
    cancel: &CancelToken,
    rng: &mut dyn Rng,
    observer: &mut O,
) -> Vec<ItemResult<V>>
where
    V: 'static,
    C: Clock + ?Sized,
    F: Fn(usize, u32) -> Fut,
    Fut: Future<Output = Result<V, Failure>> + 'static,
    O: Observer<V> + ?Sized,
{
    let pacer = RefCell::new(Pacer::new(
        &PacingConfig::off(),
        config.concurrency,
        clock.now(),
    ));
    let pacing = Pacing {
        pacer: &pacer,
        cost: &|_| Ok(Cost::default()),
        feedback: &|_| Feedback::default(),
    };
    run_paced(config, clock, total, task, pacing, cancel, rng, observer).await
}

/// [`run_batch`] with pacing: before each attempt the pacer admits it (rate budgets, the
/// pause after a 429, adaptive concurrency, the breaker) or says how long to wait; the item
/// waits at the head of the queue, holding its place. An item no budget can ever hold fails at
/// once as `invalid`.
#[allow(clippy::too_many_arguments)]
pub async fn run_paced<V, C, F, Fut, O>(
    config: &Config,
    clock: &C,
    total: usize,
    task: F,
    pacing: Pacing<'_, V>,
    cancel: &CancelToken,
    rng: &mut dyn Rng,
    observer: &mut O,
) -> Vec<ItemResult<V>>
where
    V: 'static,
    C: Clock + ?Sized,
    F: Fn(usize, u32) -> Fut,
    Fut: Future<Output = Result<V, Failure>> + 'static,
    O: Observer<V> + ?Sized,
{
    let start = clock.now();
    let mut batch = Batch {
        config,
        clock,
        task,
        pacing,
        gate: None,
        cancel,
        rng,
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
            })
            .collect(),
        results: (0..total).map(|_| None).collect(),
        next_new: 0,
        retry_queue: VecDeque::new(),
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

/// An item's final error with what its last attempt said (status, type, message).
fn with_last_failure(mut error: ItemError, last: Option<Failure>) -> ItemError {
    if let Some(last) = last {
        error.status = last.status;
        error.error_type = last.error_type;
        error.message = format!("{}; last error: {}", error.message, last.message);
    }
    error
}

struct Batch<'a, V, C: ?Sized + Clock, F, O: ?Sized> {
    config: &'a Config,
    clock: &'a C,
    task: F,
    pacing: Pacing<'a, V>,
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
    next_new: usize,
    retry_queue: VecDeque<usize>,
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
impl<V, C: ?Sized + Clock, F, O: ?Sized> Drop for Batch<'_, V, C, F, O> {
    fn drop(&mut self) {
        let now = self.clock.now();
        for state in &self.items {
            if matches!(state.phase, Phase::Running { .. }) {
                let cost = state.cost.unwrap_or_default();
                let pacer = &mut self.pacing.pacer.borrow_mut();
                pacer.on_abandoned(&cost, &state.ticket, now);
            }
        }
    }
}

impl<V, C, F, Fut, O> Batch<'_, V, C, F, O>
where
    V: 'static,
    C: Clock + ?Sized,
    F: Fn(usize, u32) -> Fut,
    Fut: Future<Output = Result<V, Failure>> + 'static,
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
                self.retry_queue.push_back(index);
                progressed = true;
            }
            progressed |= self.dispatch(cx);
            if !progressed {
                return Poll::Pending;
            }
            self.emit_progress();
        }
    }

    fn peek_ready(&self) -> Option<usize> {
        self.retry_queue
            .front()
            .copied()
            .or((self.next_new < self.items.len()).then_some(self.next_new))
    }

    fn pop_ready(&mut self) {
        if self.retry_queue.pop_front().is_none() {
            self.next_new += 1;
        }
    }

    /// Starts what the concurrency limit and the pacer allow; arms the gate timer when the
    /// pacer says "wait until".
    fn dispatch(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        loop {
            let Some(index) = self.peek_ready() else {
                self.gate = None;
                return progressed;
            };
            // The slots are the processor's: another call's attempts count too.
            if self.pacing.pacer.borrow().in_flight() >= self.limit() {
                self.pacing.pacer.borrow_mut().wait_for_slot(cx.waker());
                self.gate = None;
                return progressed;
            }
            let cost = match self.items[index].cost {
                Some(cost) => cost,
                None => match (self.pacing.cost)(index) {
                    Ok(cost) => *self.items[index].cost.insert(cost),
                    Err(message) => {
                        self.pop_ready();
                        self.finalize(index, Err(ItemError::bare(ErrorKind::Invalid, message)));
                        progressed = true;
                        continue;
                    }
                },
            };
            let now = self.clock.now();
            let admission = self.pacing.pacer.borrow_mut().admit(&cost, now);
            match admission {
                // Waiting for the probe (maybe another call's); with nothing in flight there
                // is no probe to wait for.
                Admission::Blocked if self.pacing.pacer.borrow().in_flight() > 0 => {
                    self.pacing.pacer.borrow_mut().wait_for_slot(cx.waker());
                    self.gate = None;
                    return progressed;
                }
                Admission::Go | Admission::Blocked => {
                    self.pop_ready();
                    self.items[index].ticket = self.pacing.pacer.borrow_mut().start(&cost, now);
                    self.start_attempt(index);
                }
                Admission::Never(message) => {
                    self.pop_ready();
                    self.finalize(index, Err(ItemError::bare(ErrorKind::Invalid, message)));
                }
                Admission::Until(at) if self.deadline_at.is_some_and(|d| at >= d) => {
                    self.pop_ready();
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
            .min(self.pacing.pacer.borrow().concurrency())
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
        self.retry_queue.clear();
        self.next_new = self.items.len();
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
        let cost = self.items[index].cost.unwrap_or_default();
        let ticket = self.items[index].ticket;
        let failure = match outcome {
            Ok(value) => {
                let feedback = (self.pacing.feedback)(&value);
                let mut pacer = self.pacing.pacer.borrow_mut();
                pacer.on_success(&cost, &feedback, &ticket, now);
                drop(pacer);
                return self.finalize(index, Ok(value));
            }
            Err(failure) => failure,
        };
        let retryable = is_retryable(&failure);
        let delay = if retryable {
            self.retry_delay(index, attempt, &failure)
        } else {
            Duration::ZERO
        };
        // A wait that passes the deadline fails this item now (below); as a processor-wide
        // pause it would only hold back the healthy items, and the next call, for nothing.
        let usable = self.deadline_at.is_none_or(|d| now + delay < d);
        let pause = if usable { delay } else { Duration::ZERO };
        self.pacing
            .pacer
            .borrow_mut()
            .on_failure(&cost, &failure, pause, &ticket, now);
        if !retryable || attempt > self.config.max_retries {
            return self.finalize(index, Err(ItemError::from_failure(failure, retryable)));
        }
        if self.budget.is_spent() {
            return self.finalize(index, Err(self.budget.refused(failure)));
        }
        if let Some(deadline_at) = self.deadline_at {
            if now + delay >= deadline_at {
                let mut error = ItemError::from_failure(failure, true);
                error.kind = ErrorKind::Deadline;
                error.message = format!(
                    "retry would wait {} ms, past the deadline; last error: {}",
                    delay.as_millis() as u64,
                    error.message
                );
                error.retry_after_ms = Some(delay.as_millis() as u64);
                return self.finalize(index, Err(error));
            }
        }
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
            self.retry_queue.push_back(index);
        } else {
            let sleep = self.clock.sleep(delay);
            self.waiting.push(Box::pin(async move {
                sleep.await;
                index
            }));
        }
    }

    /// The server's wait when it gave one, else the backoff.
    fn retry_delay(&mut self, index: usize, attempt: u32, failure: &Failure) -> Duration {
        server_delay(
            failure.retry_after_ms.as_deref(),
            failure.retry_after.as_deref(),
            self.clock.unix_ms(),
            self.config.max_retry_after,
        )
        .unwrap_or_else(|| {
            let previous = self.items[index].last_delay;
            self.config.backoff.delay(attempt, previous, self.rng)
        })
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
                    let ticket = state.ticket;
                    self.pacing
                        .pacer
                        .borrow_mut()
                        .on_abandoned(&cost, &ticket, now);
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
            queued: self.retry_queue.len() + (self.items.len() - self.next_new),
            waiting: self.waiting.len(),
            retries: self.retries,
            limit: self.limit(),
            limit_reason: self.pacing.pacer.borrow().concurrency_reason().as_str(),
            elapsed: self.since_start(self.clock.now()),
        };
        self.observer.progress(&progress);
    }
}
