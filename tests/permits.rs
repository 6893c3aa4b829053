//! The executor with an asynchronous permit source (`Executor::permits`), on a virtual clock:
//! the wait holds the slot but no timeout, a refusal fails one item, a deferral lets attempts
//! in flight finish and ends the rest `deferred`, and every granted permit is released once.
//! With fallbacks, each ask names its alternative, and a deferral of one moves the item to the
//! next; only when every alternative deferred is the batch deferred.
#![cfg(not(target_arch = "wasm32"))]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use edgebatch::core::backoff::{Backoff, Jitter};
use edgebatch::core::cancel::CancelToken;
use edgebatch::core::clock::{Clock, VirtualClock};
use edgebatch::core::executor::{Config, Event, Executor, ItemResult};
use edgebatch::core::limits::{Cost, Feedback, Usage};
use edgebatch::core::pacer::Pacer;
use edgebatch::core::permit_source::{Outcome, Permit, Permits};
use edgebatch::{ErrorKind, Failure};

mod support;
use support::Recorder;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// What the source answers to one ask, after how long.
#[derive(Clone)]
enum Answer {
    Grant,
    Never,
    Defer(u64),
}

type Script = Box<dyn Fn(usize, usize, usize) -> (u64, Answer)>;

/// A permit source on the virtual clock: `script(index, alternative, nth ask)` says when and
/// what it answers. It logs asks, grants and releases, and counts slots held (asks waiting plus
/// attempts running, which the task adds).
struct Source {
    clock: VirtualClock,
    script: Script,
    asks: Cell<usize>,
    /// `(index, alternative, when, cost)` of every ask.
    asked: RefCell<Vec<(usize, usize, Duration, Cost)>>,
    granted: RefCell<Vec<u64>>,
    released: RefCell<Vec<(u64, Seen)>>,
    held: Rc<Cell<usize>>,
    max_held: Rc<Cell<usize>>,
}

impl Source {
    fn new(
        clock: &VirtualClock,
        script: impl Fn(usize, usize, usize) -> (u64, Answer) + 'static,
    ) -> Self {
        Source {
            clock: clock.clone(),
            script: Box::new(script),
            asks: Cell::new(0),
            asked: RefCell::default(),
            granted: RefCell::default(),
            released: RefCell::default(),
            held: Rc::default(),
            max_held: Rc::default(),
        }
    }

    fn hold(&self, by: isize) {
        self.held
            .set(self.held.get().checked_add_signed(by).unwrap());
        self.max_held.set(self.max_held.get().max(self.held.get()));
    }

    /// Each granted id released exactly once; the outcomes' names by id order.
    fn releases(&self) -> Vec<&'static str> {
        let released = self.released.borrow();
        let mut ids: Vec<u64> = released.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        assert_eq!(ids, *self.granted.borrow(), "each granted id released once");
        let mut by_id: Vec<&(u64, Seen)> = released.iter().collect();
        by_id.sort_by_key(|(id, _)| *id);
        by_id.iter().map(|(_, o)| o.name).collect()
    }
}

/// What a release said: the outcome's name, a failure's status, a success's output tokens.
#[derive(Clone, Copy, Debug)]
struct Seen {
    name: &'static str,
    status: Option<u16>,
    output_tokens: Option<u64>,
}

fn seen(outcome: Outcome<'_>) -> Seen {
    let (name, status, output_tokens) = match outcome {
        Outcome::Success(f) => ("success", None, f.usage.map(|u| u.output_tokens)),
        Outcome::Failure { failure, .. } => (failure.kind().as_str(), failure.status, None),
        Outcome::Abandoned => ("abandoned", None, None),
    };
    Seen {
        name,
        status,
        output_tokens,
    }
}

impl Permits for Source {
    fn acquire(
        &self,
        index: usize,
        alternative: usize,
        cost: &Cost,
    ) -> Pin<Box<dyn Future<Output = Permit> + '_>> {
        let nth = self.asks.get();
        self.asks.set(nth + 1);
        self.asked
            .borrow_mut()
            .push((index, alternative, self.clock.now(), *cost));
        self.hold(1);
        let (after, answer) = (self.script)(index, alternative, nth);
        let sleep = self.clock.sleep(MS(after));
        // Dropped before its answer: nothing was granted, the slot count goes back.
        let guard = Guard(self);
        Box::pin(async move {
            sleep.await;
            std::mem::forget(guard);
            self.hold(-1);
            match answer {
                Answer::Grant => {
                    let id = self.granted.borrow().len() as u64 + 1;
                    self.granted.borrow_mut().push(id);
                    Permit::Granted(id)
                }
                Answer::Never => Permit::Never("larger than the budget".into()),
                Answer::Defer(ms) => Permit::Defer {
                    wait: MS(ms),
                    reason: "the limiter is saturated".into(),
                },
            }
        })
    }

    fn release(&self, id: u64, outcome: Outcome<'_>) {
        self.released.borrow_mut().push((id, seen(outcome)));
    }
}

struct Guard<'a>(&'a Source);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.hold(-1);
    }
}

type Boxed = Pin<Box<dyn Future<Output = Result<usize, Failure>>>>;

/// Attempts that take `script(index, attempt)`'s time and end with its result (`None`:
/// never end), counted in the source's slots while they run.
fn task(
    clock: &VirtualClock,
    source: &Source,
    script: impl Fn(usize, u32) -> (u64, Option<Result<(), Failure>>) + 'static,
) -> impl Fn(usize, u32) -> Boxed {
    let (clock, held, max) = (clock.clone(), source.held.clone(), source.max_held.clone());
    move |index, attempt| {
        let (ms, end) = script(index, attempt);
        held.set(held.get() + 1);
        max.set(max.get().max(held.get()));
        let running = Running(held.clone());
        let sleep = clock.sleep(MS(ms));
        Box::pin(async move {
            let _running = running;
            sleep.await;
            match end {
                Some(end) => end.map(|()| index),
                None => futures::future::pending().await,
            }
        })
    }
}

struct Running(Rc<Cell<usize>>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

fn config(concurrency: usize) -> Config {
    Config {
        concurrency,
        max_retries: 2,
        timeout: Some(MS(2000)),
        backoff: Backoff::new(MS(500), MS(500), Jitter::None).unwrap(),
        ..Config::default()
    }
}

/// Usage 7/9 per success; item `i` costs `i` input tokens.
fn pacing() -> (
    impl Fn(usize) -> Result<Cost, String>,
    impl Fn(&usize) -> Feedback,
) {
    let cost = |i: usize| {
        Ok(Cost {
            input_tokens: i as u64,
            output_tokens: 0,
        })
    };
    let feedback = |_: &usize| Feedback {
        usage: Some(Usage {
            input_tokens: 7,
            output_tokens: 9,
        }),
        limits: None,
    };
    (cost, feedback)
}

fn run_with(
    clock: &VirtualClock,
    config: &Config,
    n: usize,
    task: impl Fn(usize, u32) -> Boxed,
    source: Option<&Source>,
    cancel: &CancelToken,
    rec: &mut Recorder,
) -> Vec<ItemResult<usize>> {
    let pacer = Pacer::unpaced(config.concurrency);
    let mut executor = Executor::new(config, clock, &pacer).cancel_on(cancel);
    if let Some(source) = source {
        executor = executor.permits(source);
    }
    let results = clock.block_on(executor.run(n, task, &pacing(), rec));
    assert_eq!(pacer.borrow().in_flight(), 0, "every slot given back");
    results
}

fn kind(r: &ItemResult<usize>) -> Result<usize, ErrorKind> {
    r.outcome.clone().map_err(|e| e.kind)
}

#[test]
fn the_wait_for_a_permit_holds_no_timeout_and_counts_no_attempt() {
    let clock = VirtualClock::new();
    let source = Source::new(&clock, |_, _, _| (5000, Answer::Grant));
    let work = task(&clock, &source, |_, _| (1000, Some(Ok(()))));
    let r = run_with(
        &clock,
        &config(1),
        1,
        work,
        Some(&source),
        &CancelToken::new(),
        &mut Recorder::default(),
    );
    // Granted after 5 s, then a 1 s attempt under a 2 s timeout: it succeeds at once.
    assert_eq!(
        (kind(&r[0]), r[0].attempts, r[0].elapsed),
        (Ok(0), 1, MS(1000))
    );
    assert_eq!(clock.now(), MS(6000));
    assert_eq!(source.releases(), ["success"]);
    assert_eq!(
        source.released.borrow()[0].1.output_tokens,
        Some(9),
        "the success's feedback"
    );
}

#[test]
fn a_refusal_fails_that_item_only_and_takes_no_attempt() {
    let clock = VirtualClock::new();
    let source = Source::new(&clock, |i, _, _| {
        (10, if i == 1 { Answer::Never } else { Answer::Grant })
    });
    let work = task(&clock, &source, |_, _| (100, Some(Ok(()))));
    let r = run_with(
        &clock,
        &config(2),
        3,
        work,
        Some(&source),
        &CancelToken::new(),
        &mut Recorder::default(),
    );
    assert_eq!(
        r.iter().map(kind).collect::<Vec<_>>(),
        [Ok(0), Err(ErrorKind::Invalid), Ok(2)]
    );
    let e = r[1].outcome.as_ref().unwrap_err();
    assert_eq!(
        (e.retryable, e.message.as_str(), r[1].attempts),
        (
            false,
            "refused by the rate limiter: larger than the budget",
            0
        )
    );
    // Each ask carried the item's cost.
    let costs: Vec<(usize, u64)> = source
        .asked
        .borrow()
        .iter()
        .map(|(i, _, _, c)| (*i, c.input_tokens))
        .collect();
    assert_eq!(costs, [(0, 0), (1, 1), (2, 2)]);
    assert_eq!(source.releases(), ["success", "success"]);
}

#[test]
fn a_deferral_lets_attempts_in_flight_finish_and_ends_the_rest_deferred() {
    // Concurrency 4. Items 0-2 are granted at once: 0 succeeds at 1 s; 1 fails at 50 ms and
    // waits out its backoff; 2 fails at 300 ms. Item 3 is asked at 0 and deferred for 10 s at
    // 100 ms; item 4, asked at 50 ms, would be granted at 250 ms; item 5 is never asked.
    let clock = VirtualClock::new();
    let source = Source::new(&clock, |i, _, _| match i {
        0..=2 => (0, Answer::Grant),
        3 => (100, Answer::Defer(10_000)),
        _ => (200, Answer::Grant),
    });
    let busy = || Some(Err(Failure::http(503, "busy")));
    let work = task(&clock, &source, move |i, _| match i {
        0 => (1000, Some(Ok(()))),
        1 => (50, busy()),
        _ => (300, busy()),
    });
    let mut rec = Recorder::default();
    let r = run_with(
        &clock,
        &config(4),
        6,
        work,
        Some(&source),
        &CancelToken::new(),
        &mut rec,
    );

    let deferred = Err(ErrorKind::Deferred);
    assert_eq!(
        r.iter().map(kind).collect::<Vec<_>>(),
        [Ok(0), deferred, deferred, deferred, deferred, deferred]
    );
    let got: Vec<(u32, Option<u16>, Option<u64>, bool)> = r[1..]
        .iter()
        .map(|r| {
            let e = r.outcome.as_ref().unwrap_err();
            (r.attempts, e.status, e.retry_after_ms, e.retryable)
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, Some(503), Some(10_000), true), // in its backoff at 100 ms
            (1, Some(503), Some(9_800), true),  // its attempt ended at 300 ms, a retry refused
            (0, None, Some(10_000), true),      // its ask was deferred
            (0, None, Some(10_000), true),      // waiting for its permit
            (0, None, Some(10_000), true),      // queued
        ]
    );
    let e = r[2].outcome.as_ref().unwrap_err();
    assert_eq!(
        e.message,
        "deferred by the rate limiter for 9800 ms: the limiter is saturated; last error: busy"
    );
    assert_eq!(
        source.asked.borrow().len(),
        5,
        "nothing asked after the deferral"
    );
    let starts = rec
        .events
        .iter()
        .filter(|e| matches!(e, Event::Start { .. }))
        .count();
    assert_eq!(
        (starts, clock.now()),
        (3, MS(1000)),
        "the attempt in flight finished"
    );
    assert_eq!(source.releases(), ["success", "http", "http"]);
    let released = source.released.borrow();
    let failure = released.iter().find(|(id, _)| *id == 2).unwrap().1;
    assert_eq!(
        failure.status,
        Some(503),
        "a failure is released with its classification"
    );
}

#[test]
fn timeouts_and_cancellation_release_each_permit_once() {
    // Item 0 hangs: each attempt times out after 2 s (3 attempts, 3 permits). Item 1's permit
    // comes only after 10 s: the cancel at 5 s drops its ask, and the attempt of item 0 in
    // flight then is abandoned.
    let clock = VirtualClock::new();
    let source = Source::new(&clock, |i, _, _| {
        (if i == 0 { 0 } else { 10_000 }, Answer::Grant)
    });
    let work = task(&clock, &source, |_, _| (0, None));
    let cancel = CancelToken::new();
    let stop = {
        let (clock, cancel) = (clock.clone(), cancel.clone());
        async move {
            clock.sleep(MS(5000)).await;
            cancel.cancel();
        }
    };
    let mut config = config(2);
    config.backoff = Backoff::new(MS(1), MS(1), Jitter::None).unwrap();
    let pacer = Pacer::unpaced(2);
    let executor = Executor::new(&config, &clock, &pacer)
        .cancel_on(&cancel)
        .permits(&source);
    let (pacing, mut rec) = (pacing(), Recorder::default());
    let run = executor.run(2, work, &pacing, &mut rec);
    let (r, ()) = clock.block_on(futures::future::join(run, stop));
    assert_eq!(pacer.borrow().in_flight(), 0, "every slot given back");

    assert_eq!(
        r.iter().map(kind).collect::<Vec<_>>(),
        [Err(ErrorKind::Aborted); 2]
    );
    assert_eq!((r[0].attempts, r[1].attempts), (3, 0));
    assert_eq!(
        r[1].outcome.as_ref().unwrap_err().message,
        "cancelled before the item started"
    );
    assert_eq!(source.releases(), ["timeout", "timeout", "abandoned"]);
    assert_eq!(source.held.get(), 0, "the dropped ask holds nothing");
}

#[test]
fn the_concurrency_bounds_permit_waits_and_attempts_together() {
    let clock = VirtualClock::new();
    let source = Source::new(&clock, |i, _, _| (100 * (i as u64 % 3 + 1), Answer::Grant));
    let work = task(&clock, &source, |i, _| {
        (50 * (i as u64 % 4 + 1), Some(Ok(())))
    });
    let r = run_with(
        &clock,
        &config(3),
        20,
        work,
        Some(&source),
        &CancelToken::new(),
        &mut Recorder::default(),
    );
    assert!(r.iter().all(|r| r.outcome.is_ok()));
    assert_eq!(
        source.max_held.get(),
        3,
        "asks waiting + attempts running, at most 3"
    );
    assert_eq!(source.releases().len(), 20);
}

#[test]
fn an_instant_source_changes_nothing_and_hears_every_attempt() {
    // Retries, a timeout, a final failure: the same results and events with a source that
    // grants at once as without one, and one release per attempt.
    let script = |i: usize, a: u32| match (i % 4, a) {
        (0, _) => (100, Some(Ok(()))),
        (1, 1) => (30, Some(Err(Failure::http(429, "slow down")))),
        (1, _) => (60, Some(Ok(()))),
        (2, 1) => (0, None),
        (2, _) => (10, Some(Ok(()))),
        _ => (20, Some(Err(Failure::http(400, "bad")))),
    };
    let mut outs = Vec::new();
    for with_source in [false, true] {
        let clock = VirtualClock::new();
        let source = Source::new(&clock, |_, _, _| (0, Answer::Grant));
        let work = task(&clock, &source, script);
        let mut rec = Recorder::default();
        let used = with_source.then_some(&source);
        let r = run_with(
            &clock,
            &config(3),
            8,
            work,
            used,
            &CancelToken::new(),
            &mut rec,
        );
        let attempts: u32 = r.iter().map(|r| r.attempts).sum();
        let released = source.releases();
        assert_eq!(
            released.len(),
            if with_source { attempts as usize } else { 0 }
        );
        if with_source {
            let count = |k| released.iter().filter(|r| **r == k).count();
            assert_eq!((count("http"), count("timeout")), (4, 2), "{released:?}");
        }
        outs.push((r, rec.events, rec.completion_order, clock.now()));
    }
    assert!(
        outs[0] == outs[1],
        "a source that grants at once changes nothing"
    );
}

/// `n` items through `source` with one fallback (each alternative unpaced, concurrency 2),
/// attempts of 100 ms that succeed; returns the results and the alternative of every attempt.
fn run_with_fallback(
    clock: &VirtualClock,
    source: &Source,
    n: usize,
    rec: &mut Recorder,
) -> (Vec<ItemResult<usize>>, Vec<usize>) {
    let (first, second) = (Pacer::unpaced(2), Pacer::unpaced(2));
    let others = [&second];
    let config = config(2);
    let sent = RefCell::new(Vec::new());
    let work = |index, _, alternative| {
        sent.borrow_mut().push(alternative);
        let sleep = clock.sleep(MS(100));
        Box::pin(async move {
            sleep.await;
            Ok(index)
        }) as Boxed
    };
    let executor = Executor::new(&config, clock, &first)
        .fallbacks(&others, None)
        .permits(source);
    let r = clock.block_on(executor.run_routed(n, work, &pacing(), rec));
    assert_eq!(first.borrow().in_flight() + second.borrow().in_flight(), 0);
    (r, sent.into_inner())
}

#[test]
fn a_deferral_of_one_alternative_moves_its_items_to_the_next_at_once() {
    // The first choice's source defers for 30 s (after 10 ms); the second's grants at once.
    let clock = VirtualClock::new();
    let source = Source::new(&clock, |_, alternative, _| match alternative {
        0 => (10, Answer::Defer(30_000)),
        _ => (0, Answer::Grant),
    });
    let mut rec = Recorder::default();
    let (r, sent) = run_with_fallback(&clock, &source, 6, &mut rec);
    assert!(
        r.iter().all(|r| r.outcome.is_ok() && r.attempts == 1),
        "{r:?}"
    );
    assert_eq!(sent, [1; 6], "every attempt went to the second choice");
    // The two asked first met the deferral; every other ask went to the second choice only:
    // the deferred source is not asked again in the batch.
    let asks: Vec<(usize, usize)> = source.asked.borrow().iter().map(|a| (a.0, a.1)).collect();
    assert_eq!(
        asks,
        [
            (0, 0),
            (1, 0),
            (0, 1),
            (1, 1),
            (2, 1),
            (3, 1),
            (4, 1),
            (5, 1)
        ]
    );
    // At once: the first attempts started when the deferral came (10 ms), not 30 s later.
    assert_eq!(clock.now(), MS(10 + 3 * 100));
    // Each move is a fallback, told and counted like one.
    let moves = rec
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Fallback {
                    from: 0,
                    to: 1,
                    attempt: 0,
                    ..
                }
            )
        })
        .count();
    assert_eq!((moves, rec.progress.last().unwrap().fallbacks), (6, 6));
    assert_eq!(source.releases(), ["success"; 6]);
}

#[test]
fn the_batch_is_deferred_only_when_every_alternative_deferred() {
    // The first choice defers for 30 s, the second for 5 s: nothing starts, and every item
    // ends deferred until the earliest of the two.
    let clock = VirtualClock::new();
    let source = Source::new(&clock, |_, alternative, _| {
        (
            10,
            Answer::Defer(if alternative == 0 { 30_000 } else { 5_000 }),
        )
    });
    let mut rec = Recorder::default();
    let (r, sent) = run_with_fallback(&clock, &source, 6, &mut rec);
    assert!(sent.is_empty(), "no attempt started");
    for r in &r {
        let e = r.outcome.as_ref().unwrap_err();
        assert_eq!(
            (e.kind, e.retry_after_ms, r.attempts),
            (ErrorKind::Deferred, Some(5_000), 0)
        );
    }
    let asks: Vec<(usize, usize)> = source.asked.borrow().iter().map(|a| (a.0, a.1)).collect();
    assert_eq!(asks, [(0, 0), (1, 0), (0, 1), (1, 1)]);
    assert_eq!(clock.now(), MS(20));
}
