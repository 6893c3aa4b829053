//! One batch in flight: the state machine the executor polls. Each poll stops what the
//! cancel token or the deadline stopped, expires attempt timeouts, takes finished attempts,
//! ended waits and permit answers, then starts what the concurrency limit and the pacer allow
//! (through the permit source, when there is one: `permit_wait.rs`). With fallbacks, each
//! alternative has its own pacer: a queued item goes to the alternative the retry rule picks
//! (`retry::Fallbacks::pick`), paced there like any request. How one attempt starts
//! and ends is in `batch/attempt.rs`; items that end early, without another attempt, end in
//! `batch/stops.rs`.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};

use super::budget::AttemptBudget;
use super::cache_groups::{CacheGroups, Grouping};
use super::cancel::CancelToken;
use super::clock::{Clock, Sleep};
use super::cost::{CostCap, Pico};
use super::limits::Cost;
use super::pacer::{Admission, Pacer, Ticket};
use super::pacing::Pacing;
use super::permit_source::{Outcome, Permit, Permits};
use super::permit_wait::PermitWaits;
use super::queue::ReadyQueue;
use super::report::Event;
use super::report::{Config, ItemResult, Observer, Progress};
use super::retry::{Fallbacks, RetryPolicy, Standing};
use super::rng::Rng;
use super::stop::{held_past_deadline, refused_by_limiter};
use super::timeouts::AttemptTimeouts;
use crate::error::{ErrorKind, Failure, ItemError};

mod attempt;
mod stops;
use stops::give_back;

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Queued,
    Running {
        attempt: u32,
        started: Duration,
    },
    /// Admitted (its slot and pacer reservation taken), waiting for the permit source.
    Permit,
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
    /// Failed attempts requeued as sheds of our own load (`RetryPolicy::requeues_shed`):
    /// they use no retry.
    sheds: u32,
    /// The permit its attempt in flight holds (`Executor::permits`), until released.
    permit: Option<u64>,
    /// The alternative its next (or current) attempt goes to: 0, the first choice, unless
    /// the retry rule moved it.
    route: usize,
    /// What its attempt in flight (or waiting for a permit) may cost, held against the cap.
    held: Pico,
}

type AttemptFuture<V> = Pin<Box<dyn Future<Output = (usize, Result<V, Failure>)>>>;
/// A backoff (ends with its item), or an ask for a permit (ends with its item and the answer).
type WaitFuture<'a> = Pin<Box<dyn Future<Output = (usize, Option<Permit>)> + 'a>>;

/// What a batch runs with, handed over by the executor.
pub(super) struct Setup<'a, C: ?Sized, P: ?Sized, O: ?Sized> {
    pub config: &'a Config,
    pub clock: &'a C,
    pub pacer: &'a RefCell<Pacer>,
    /// The fallbacks' pacers, in order (alternatives 1..), and `fallbackAfterMs`.
    pub fallbacks: (&'a [&'a RefCell<Pacer>], Option<Duration>),
    pub pacing: &'a P,
    pub cancel: Option<&'a CancelToken>,
    pub permits: Option<&'a dyn Permits>,
    pub groups: Option<&'a CacheGroups<'a>>,
    pub rng: &'a mut dyn Rng,
    pub observer: &'a mut O,
}

pub(super) struct Batch<'a, V, C: ?Sized + Clock, F, P: ?Sized, O: ?Sized> {
    config: &'a Config,
    policy: RetryPolicy,
    clock: &'a C,
    task: F,
    /// One pacer per alternative: the first choice's, then the fallbacks'.
    pacers: Vec<&'a RefCell<Pacer>>,
    pacing: &'a P,
    /// Wakes the dispatcher when the pacer's wait is over.
    gate: Option<(Duration, Sleep)>,
    cancel: Option<&'a CancelToken>,
    rng: &'a mut dyn Rng,
    observer: &'a mut O,
    start: Duration,
    deadline_at: Option<Duration>,
    deadline: Option<Sleep>,
    items: Vec<ItemState>,
    results: Vec<Option<ItemResult<V>>>,
    ready: ReadyQueue,
    running: FuturesUnordered<AttemptFuture<V>>,
    waiting: FuturesUnordered<WaitFuture<'a>>,
    permits: PermitWaits<'a>,
    /// Items held back until their cache group's primer began (`Executor::cache_groups`).
    groups: Option<Grouping<'a>>,
    timeouts: AttemptTimeouts,
    budget: AttemptBudget,
    /// `maxCostUsd`: what the batch spent, and what its attempts in flight hold.
    cap: CostCap,
    done: usize,
    ok: usize,
    retries: u64,
    /// Items sent to another alternative than their own, so far.
    moves: u64,
}

/// A batch dropped before its end (its future dropped mid-way) gives the processor back the
/// slots and reservations of its attempts in flight and of its items waiting for a permit,
/// and its permits to their source.
impl<V, C: ?Sized + Clock, F, P: ?Sized, O: ?Sized> Drop for Batch<'_, V, C, F, P, O> {
    fn drop(&mut self) {
        let now = self.clock.now();
        for state in &mut self.items {
            if matches!(state.phase, Phase::Running { .. } | Phase::Permit) {
                give_back(self.pacers[state.route], state, now);
            }
            self.permits
                .release(state.permit.take(), Outcome::Abandoned);
        }
    }
}

impl<'a, V, C, F, Fut, P, O> Batch<'a, V, C, F, P, O>
where
    V: 'static,
    C: Clock + ?Sized,
    F: Fn(usize, u32, usize) -> Fut,
    Fut: Future<Output = Result<V, Failure>> + 'static,
    P: Pacing<V> + ?Sized,
    O: Observer<V> + ?Sized,
{
    pub(super) fn new(setup: Setup<'a, C, P, O>, task: F, total: usize) -> Self {
        let Setup {
            config,
            clock,
            pacer,
            fallbacks: (others, fallback_after),
            pacing,
            cancel,
            permits,
            groups,
            rng,
            observer,
        } = setup;
        let mut pacers = vec![pacer];
        pacers.extend_from_slice(others);
        let start = clock.now();
        Batch {
            config,
            policy: RetryPolicy {
                max_retries: config.max_retries,
                backoff: config.backoff,
                max_server_wait: config.max_retry_after,
                fallbacks: Fallbacks {
                    alternatives: pacers.len(),
                    after: fallback_after,
                },
            },
            clock,
            task,
            pacers,
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
                    sheds: 0,
                    permit: None,
                    route: 0,
                    held: 0,
                })
                .collect(),
            results: (0..total).map(|_| None).collect(),
            ready: ReadyQueue::new(total),
            running: FuturesUnordered::new(),
            waiting: FuturesUnordered::new(),
            permits: PermitWaits::new(permits, 1 + others.len()),
            groups: groups
                .filter(|_| config.cache_aware)
                .map(|g| Grouping::new(g, total)),
            timeouts: AttemptTimeouts::default(),
            budget: AttemptBudget::new(config.max_attempts),
            cap: CostCap::new(config.max_cost),
            done: 0,
            ok: 0,
            retries: 0,
            moves: 0,
        }
    }

    /// Runs the batch to its end: one result per item, in input order.
    pub(super) async fn run(mut self) -> Vec<ItemResult<V>> {
        poll_fn(|cx| self.poll(cx)).await;
        std::mem::take(&mut self.results)
            .into_iter()
            .map(|r| r.expect("every item has exactly one result"))
            .collect()
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.done == self.items.len() {
                return Poll::Ready(());
            }
            if let Some(Poll::Ready(())) = self.cancel.map(|c| c.poll_cancelled(cx)) {
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
            while let Poll::Ready(Some((index, answer))) = self.waiting.poll_next_unpin(cx) {
                match answer {
                    Some(permit) => self.answered(index, permit),
                    None => {
                        self.items[index].phase = Phase::Queued;
                        self.ready.push_retry(index);
                    }
                }
                progressed = true;
            }
            if let Some(groups) = self.groups.as_mut() {
                progressed |= groups.arrivals(&mut self.ready);
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
            // Held for its cache group's primer (it takes no slot, the next item may go), or
            // released by a group just before a stop ended it.
            let held = |g: &mut Grouping| !g.admit(index);
            if self.items[index].phase == Phase::Done || self.groups.as_mut().is_some_and(held) {
                self.ready.pop();
                progressed = true;
                continue;
            }
            // The slots are the processor's: another call's attempts count too, on every
            // alternative.
            if self.in_flight() >= self.config.concurrency {
                self.wait_for_slot(cx);
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
            let route = self.route(index, &cost, now);
            let pacer = self.pacers[route];
            if pacer.borrow().in_flight() >= pacer.borrow().concurrency() {
                self.wait_for_slot(cx);
                return progressed;
            }
            // The cost cap first: a refused attempt takes no pacer reservation. While attempts
            // are in flight the item waits for them (they may cost less than they hold; each
            // wakes this batch when it ends); with none, nothing will change: the batch closes.
            let estimate = self.pacing.max_spend(index, &cost, route);
            if !self.cap.admits(estimate) {
                self.gate = None;
                if self.cap.open() == 0 {
                    self.cap.close(estimate);
                    self.close_waiting();
                    return true;
                }
                return progressed;
            }
            let admission = pacer.borrow_mut().admit(&cost, now);
            match admission {
                // Waiting for the probe (maybe another call's); with nothing in flight there
                // is no probe to wait for.
                Admission::Blocked if pacer.borrow().in_flight() > 0 => {
                    self.wait_for_slot(cx);
                    return progressed;
                }
                Admission::Go | Admission::Blocked => {
                    self.ready.pop();
                    let mut paced = pacer.borrow_mut();
                    self.items[index].ticket = paced.start(&cost, now);
                    self.items[index].in_flight_at_start = paced.in_flight();
                    drop(paced);
                    self.cap.hold(estimate);
                    self.items[index].held = estimate;
                    // The wait for a permit holds the slot, but no timeout runs and no
                    // attempt counts.
                    match self.permits.ask(index, route, &cost) {
                        Some(ask) => {
                            self.items[index].phase = Phase::Permit;
                            self.waiting.push(Box::pin(ask));
                        }
                        None => self.start_attempt(index),
                    }
                }
                Admission::Never(message) => {
                    self.ready.pop();
                    self.finalize(index, Err(ItemError::bare(ErrorKind::Invalid, message)));
                }
                Admission::Until(at) if self.deadline_at.is_some_and(|d| at >= d) => {
                    self.ready.pop();
                    let last = self.items[index].last_failure.take();
                    self.finalize(index, Err(held_past_deadline(at - now, last)));
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

    /// The alternative item `index` goes to now (the retry rule's pick, from its own); a
    /// change is a fallback, counted and reported.
    fn route(&mut self, index: usize, cost: &Cost, now: Duration) -> usize {
        let from = self.items[index].route;
        if self.pacers.len() < 2 {
            return from;
        }
        let (pacers, permits) = (&self.pacers, &self.permits);
        let to = self
            .policy
            .fallbacks
            .pick(from, now, self.deadline_at, |k| match permits.refused(k) {
                true => Standing::Down,
                false => pacers[k].borrow_mut().standing(cost, now),
            });
        // One whose permit source deferred is not asked again, even when none takes it soon.
        let to = permits.open(to).unwrap_or(to);
        if to != from {
            self.moved(index, from, to, Duration::ZERO);
        }
        to
    }

    /// Item `index` goes to alternative `to` after `delay`: counted, and told as an event.
    pub(super) fn moved(&mut self, index: usize, from: usize, to: usize, delay: Duration) {
        let at = self.since_start(self.clock.now());
        let state = &mut self.items[index];
        state.route = to;
        self.moves += 1;
        self.observer.event(&Event::Fallback {
            index,
            attempt: state.attempts,
            at,
            from,
            to,
            delay,
        });
    }

    /// Attempts in flight, on every alternative, in every call sharing the pacers.
    fn in_flight(&self) -> usize {
        self.pacers.iter().map(|p| p.borrow().in_flight()).sum()
    }

    /// Wakes this batch when an attempt ends on any alternative.
    fn wait_for_slot(&mut self, cx: &Context<'_>) {
        for pacer in &self.pacers {
            pacer.borrow_mut().wait_for_slot(cx.waker());
        }
        self.gate = None;
    }

    /// The permit source answered item `index`.
    fn answered(&mut self, index: usize, permit: Permit) {
        match permit {
            Permit::Granted(id) => {
                self.items[index].permit = Some(id);
                self.start_attempt(index);
            }
            Permit::Never(why) => {
                self.settle_cost(index, 0);
                let state = &self.items[index];
                give_back(self.pacers[state.route], state, self.clock.now());
                self.finalize(index, Err(refused_by_limiter(&why)));
            }
            // Once every alternative's source has deferred, nothing more starts; until then
            // the item is queued again and `route` sends it to one that has not, at once (a
            // fallback like any other).
            Permit::Defer { wait, reason } => {
                let (now, from) = (self.clock.now(), self.items[index].route);
                if !self.permits.defer(from, now + wait, reason) {
                    return self.close_waiting();
                }
                self.settle_cost(index, 0);
                give_back(self.pacers[from], &self.items[index], now);
                self.items[index].phase = Phase::Queued;
                self.ready.push_retry(index);
            }
        }
    }

    /// Item `index`'s attempt (or its wait for a permit) ended having cost `cost`: what it held
    /// against the cap is let go.
    fn settle_cost(&mut self, index: usize, cost: Pico) {
        let held = std::mem::take(&mut self.items[index].held);
        self.cap.settle(held, cost);
    }

    fn limit(&self) -> usize {
        self.config
            .concurrency
            .min(self.pacers[0].borrow().concurrency())
    }

    fn since_start(&self, now: Duration) -> Duration {
        now.saturating_sub(self.start)
    }

    fn finalize(&mut self, index: usize, outcome: Result<V, ItemError>) {
        if let Some(groups) = self.groups.as_mut() {
            groups.ended(index, false, &mut self.ready);
        }
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

    fn emit_progress(&mut self) {
        let progress = Progress {
            total: self.items.len(),
            done: self.done,
            ok: self.ok,
            failed: self.done - self.ok,
            in_flight: self.running.len(),
            queued: self.ready.len() + self.groups.as_ref().map_or(0, Grouping::held),
            waiting: self.waiting.len(),
            retries: self.retries,
            fallbacks: self.moves,
            processing: 0,
            limit: self.limit(),
            limit_reason: self.pacers[0].borrow().concurrency_reason().as_str(),
            elapsed: self.since_start(self.clock.now()),
        };
        self.observer.progress(&progress);
    }
}
