//! The executor on a virtual clock: properties over random latencies and failures, and the
//! exact timing rules (backoff holds no slot, queued time is not attempt time, deadline,
//! cancellation). Deterministic: every run sees the same times.
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
use edgebatch::core::pacer::Pacer;
use edgebatch::core::rng::{Rng, SplitMix64};
use edgebatch::providers::headers::server_wait;
use edgebatch::{ErrorKind, Failure};

const MS: fn(u64) -> Duration = Duration::from_millis;

type Boxed<V> = Pin<Box<dyn Future<Output = Result<V, Failure>>>>;

/// Counts attempts in flight; a guard per attempt keeps the count right even when the
/// executor drops the attempt (timeout, deadline, cancel).
#[derive(Clone, Default)]
struct Meter {
    now: Rc<Cell<usize>>,
    max: Rc<Cell<usize>>,
    dropped_unfinished: Rc<Cell<usize>>,
}

struct InFlight {
    meter: Meter,
    finished: bool,
}

impl Meter {
    fn enter(&self) -> InFlight {
        self.now.set(self.now.get() + 1);
        self.max.set(self.max.get().max(self.now.get()));
        InFlight {
            meter: self.clone(),
            finished: false,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.meter.now.set(self.meter.now.get() - 1);
        if !self.finished {
            self.meter
                .dropped_unfinished
                .set(self.meter.dropped_unfinished.get() + 1);
        }
    }
}

mod support;
use support::Recorder;

/// What one attempt does in the scripted tasks.
#[derive(Clone, Debug)]
enum Step {
    Ok(u64),
    Fail(u64, Failure),
    Hang,
}

fn scripted(
    clock: &VirtualClock,
    meter: &Meter,
    script: impl Fn(usize, u32) -> Step + 'static,
) -> impl Fn(usize, u32) -> Boxed<usize> {
    let (clock, meter) = (clock.clone(), meter.clone());
    move |index, attempt| {
        let guard = meter.enter();
        let step = script(index, attempt);
        let clock = clock.clone();
        Box::pin(async move {
            let mut guard = guard; // the whole guard, so dropping the future drops it
            let out = match step {
                Step::Ok(ms) => {
                    clock.sleep(MS(ms)).await;
                    Ok(index)
                }
                Step::Fail(ms, f) => {
                    clock.sleep(MS(ms)).await;
                    Err(f)
                }
                Step::Hang => futures::future::pending().await,
            };
            guard.finished = true;
            out
        })
    }
}

fn run<V: 'static, F, Fut>(
    clock: &VirtualClock,
    config: &Config,
    n: usize,
    task: F,
    cancel: &CancelToken,
    rec: &mut Recorder,
) -> Vec<ItemResult<V>>
where
    F: Fn(usize, u32) -> Fut,
    Fut: Future<Output = Result<V, Failure>> + 'static,
{
    let pacer = Pacer::unpaced(config.concurrency);
    let executor = Executor::new(config, clock, &pacer)
        .cancel_on(cancel)
        .seed(99);
    clock.block_on(executor.run(n, task, &(), rec))
}

fn no_jitter(base: u64, max: u64) -> Backoff {
    Backoff::new(MS(base), MS(max), Jitter::None).unwrap()
}

fn http(status: u16) -> Failure {
    Failure::http(status, format!("status {status}"))
}

/// Random but reproducible behaviour of attempt `attempt` of item `index` under `seed`.
fn random_step(seed: u64, index: usize, attempt: u32) -> Step {
    let mut r = SplitMix64::new(seed ^ ((index as u64) << 20) ^ u64::from(attempt));
    let latency = 1 + (r.next_f64() * 400.0) as u64;
    match (r.next_f64() * 10.0) as u32 {
        0 => Step::Fail(latency, http(429)),
        1 => Step::Fail(latency, http(503)),
        2 => Step::Fail(latency, http(400)),
        3 => Step::Fail(latency, Failure::new(ErrorKind::Network, "reset")),
        4 => Step::Hang,
        _ => Step::Ok(latency),
    }
}

/// What the rules say the item's result must be, from its scripted attempts.
fn expected(seed: u64, index: usize, max_retries: u32) -> (Result<(), ErrorKind>, u32) {
    for attempt in 1..=max_retries + 1 {
        let (kind, retryable) = match random_step(seed, index, attempt) {
            Step::Ok(_) => return (Ok(()), attempt),
            Step::Hang => (ErrorKind::Timeout, true),
            Step::Fail(_, f) => (f.kind(), f.status != Some(400)),
        };
        if !retryable || attempt == max_retries + 1 {
            return (Err(kind), attempt);
        }
    }
    unreachable!()
}

#[test]
fn property_random_latencies_and_failures() {
    for seed in 0..150u64 {
        let mut r = SplitMix64::new(seed);
        let n = (r.next_f64() * 40.0) as usize;
        let config = Config {
            concurrency: 1 + (r.next_f64() * 8.0) as usize,
            max_retries: (r.next_f64() * 4.0) as u32,
            timeout: Some(MS(450)),
            backoff: Backoff::new(MS(50), MS(2000), Jitter::Full).unwrap(),
            ..Config::default()
        };
        let clock = VirtualClock::new();
        let meter = Meter::default();
        let starts = Rc::new(RefCell::new(Vec::new()));
        let s = starts.clone();
        let inner = scripted(&clock, &meter, move |i, a| random_step(seed, i, a));
        let task = move |i, a| {
            if a == 1 {
                s.borrow_mut().push(i);
            }
            inner(i, a)
        };
        let mut rec = Recorder::default();
        let results = run(&clock, &config, n, task, &CancelToken::new(), &mut rec);

        assert_eq!(results.len(), n, "seed {seed}: one result per item");
        assert!(
            meter.max.get() <= config.concurrency,
            "seed {seed}: bound exceeded"
        );
        assert_eq!(meter.now.get(), 0, "seed {seed}: nothing left in flight");
        assert_eq!(
            *starts.borrow(),
            (0..n).collect::<Vec<_>>(),
            "seed {seed}: input order"
        );
        let mut order = rec.completion_order.clone();
        order.sort_unstable();
        assert_eq!(
            order,
            (0..n).collect::<Vec<_>>(),
            "seed {seed}: each result once"
        );
        for (i, res) in results.iter().enumerate() {
            assert_eq!(res.index, i);
            let (want, attempts) = expected(seed, i, config.max_retries);
            let got = res.outcome.as_ref().map(|_| ()).map_err(|e| e.kind);
            assert_eq!(
                (got, res.attempts),
                (want, attempts),
                "seed {seed} item {i}"
            );
        }
        let last = rec.progress.last().copied().unwrap_or_default();
        if n > 0 {
            assert_eq!(
                (last.done, last.in_flight, last.queued, last.waiting),
                (n, 0, 0, 0)
            );
            assert_eq!(
                last.ok,
                results.iter().filter(|r| r.outcome.is_ok()).count()
            );
        }
        let starts_seen = rec
            .events
            .iter()
            .filter(|e| matches!(e, Event::Start { .. }))
            .count();
        let ends_seen = rec
            .events
            .iter()
            .filter(|e| matches!(e, Event::End { .. }))
            .count();
        let attempts: u32 = results.iter().map(|r| r.attempts).sum();
        assert_eq!(
            (starts_seen, ends_seen),
            (attempts as usize, attempts as usize)
        );
    }
}

#[test]
fn concurrency_bound_is_reached_and_timing_is_exact() {
    let clock = VirtualClock::new();
    let meter = Meter::default();
    let task = scripted(&clock, &meter, |_, _| Step::Ok(100));
    let config = Config {
        concurrency: 4,
        ..Config::default()
    };
    let results = run(
        &clock,
        &config,
        10,
        task,
        &CancelToken::new(),
        &mut Recorder::default(),
    );
    assert!(results.iter().all(|r| r.outcome.is_ok() && r.attempts == 1));
    assert_eq!(meter.max.get(), 4);
    assert_eq!(clock.now(), MS(300), "10 items, 4 at a time, 100 ms each");
}

#[test]
fn queued_time_does_not_count_against_the_attempt_timeout() {
    // The seed's Python version loses 3 of these 4 items: they time out while queued.
    let clock = VirtualClock::new();
    let task = scripted(&clock, &Meter::default(), |_, _| Step::Ok(1500));
    let config = Config {
        concurrency: 1,
        timeout: Some(MS(2000)),
        ..Config::default()
    };
    let results = run(
        &clock,
        &config,
        4,
        task,
        &CancelToken::new(),
        &mut Recorder::default(),
    );
    assert!(results.iter().all(|r| r.outcome.is_ok() && r.attempts == 1));
    assert_eq!(clock.now(), MS(6000));
    assert!(
        results.iter().all(|r| r.elapsed == MS(1500)),
        "elapsed counts from the start"
    );
}

#[test]
fn an_item_waiting_out_a_backoff_holds_no_slot() {
    let clock = VirtualClock::new();
    let task = scripted(&clock, &Meter::default(), |i, a| match (i, a) {
        (0, 1) => Step::Fail(
            10,
            Failure {
                server_wait: Some(Duration::from_secs(10)),
                ..http(429)
            },
        ),
        _ => Step::Ok(1000),
    });
    let config = Config {
        concurrency: 1,
        ..Config::default()
    };
    let mut rec = Recorder::default();
    let results = run(&clock, &config, 3, task, &CancelToken::new(), &mut rec);
    assert!(results.iter().all(|r| r.outcome.is_ok()));
    // Items 1 and 2 ran during item 0's 10 s wait; item 0 went again at 10.01 s.
    assert_eq!(rec.completion_order, vec![1, 2, 0]);
    assert_eq!(clock.now(), MS(11_010));
    let backoff = rec.events.iter().find_map(|e| match e {
        Event::Backoff {
            index: 0,
            delay,
            at,
            ..
        } => Some((*delay, *at)),
        _ => None,
    });
    assert_eq!(backoff, Some((MS(10_000), MS(10))));
}

#[test]
fn retries_go_before_new_items() {
    let clock = VirtualClock::new();
    let task = scripted(&clock, &Meter::default(), |i, a| match (i, a) {
        (0, 1) => Step::Fail(
            10,
            Failure {
                server_wait: Some(MS(5)),
                ..http(503)
            },
        ),
        _ => Step::Ok(100),
    });
    let config = Config {
        concurrency: 1,
        ..Config::default()
    };
    let mut rec = Recorder::default();
    run(&clock, &config, 3, task, &CancelToken::new(), &mut rec);
    let starts: Vec<(usize, u32)> = rec
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Start { index, attempt, .. } => Some((*index, *attempt)),
            _ => None,
        })
        .collect();
    // Item 1 took the free slot at 10 ms; item 0's retry (ready at 15 ms) goes before item 2.
    assert_eq!(starts, vec![(0, 1), (1, 1), (0, 2), (2, 1)]);
}

#[test]
fn exponential_backoff_without_jitter_is_exact() {
    let clock = VirtualClock::new();
    let task = scripted(&clock, &Meter::default(), |_, a| {
        if a < 4 {
            Step::Fail(0, http(500))
        } else {
            Step::Ok(0)
        }
    });
    let config = Config {
        concurrency: 1,
        backoff: no_jitter(100, 250),
        ..Config::default()
    };
    let mut rec = Recorder::default();
    let results = run(&clock, &config, 1, task, &CancelToken::new(), &mut rec);
    assert_eq!(results[0].attempts, 4);
    let delays: Vec<Duration> = rec
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Backoff { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    assert_eq!(delays, vec![MS(100), MS(200), MS(250)]);
    assert_eq!(clock.now(), MS(550));
}

#[test]
fn retry_after_http_date_and_cap() {
    let clock = VirtualClock::new();
    // The virtual wall clock starts at 2026-01-01T00:00:00Z.
    let date = "Thu, 01 Jan 2026 00:00:07 GMT";
    let wall = clock.clone();
    let task = scripted(&clock, &Meter::default(), move |i, a| match (i, a) {
        (0, 1) => Step::Fail(
            0,
            Failure {
                // Read as the edge reads it, when the reply arrives.
                server_wait: server_wait(None, Some(date), wall.unix_ms()),
                ..http(429)
            },
        ),
        (1, 1) => Step::Fail(
            0,
            Failure {
                server_wait: Some(Duration::from_secs(3600)),
                ..http(429)
            },
        ),
        _ => Step::Ok(0),
    });
    let config = Config {
        max_retry_after: MS(20_000),
        ..Config::default()
    };
    let mut rec = Recorder::default();
    run(&clock, &config, 2, task, &CancelToken::new(), &mut rec);
    let delays: Vec<(usize, Duration)> = rec
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Backoff { index, delay, .. } => Some((*index, *delay)),
            _ => None,
        })
        .collect();
    assert_eq!(delays, vec![(0, MS(7000)), (1, MS(20_000))]);
}

#[test]
fn retry_rules_through_the_executor() {
    let cases: Vec<(Failure, u32)> = vec![
        (http(429), 3),
        (http(529), 3),
        (http(408), 3),
        (http(400), 1),
        (http(404), 1),
        (
            Failure {
                spend_cap: true,
                ..http(429)
            },
            1,
        ),
        (
            Failure {
                should_retry: Some(false),
                ..http(503)
            },
            1,
        ),
        (
            Failure {
                should_retry: Some(true),
                ..http(400)
            },
            3,
        ),
        (Failure::new(ErrorKind::Network, "reset"), 3),
        (Failure::new(ErrorKind::Task, "bug"), 1),
        (
            Failure {
                retryable: Some(true),
                ..Failure::new(ErrorKind::Task, "flaky")
            },
            3,
        ),
        (Failure::new(ErrorKind::Invalid, "bad item"), 1),
    ];
    for (failure, attempts) in cases {
        let clock = VirtualClock::new();
        let f = failure.clone();
        let task = scripted(&clock, &Meter::default(), move |_, _| {
            Step::Fail(1, f.clone())
        });
        let config = Config {
            max_retries: 2,
            ..Config::default()
        };
        let results = run(
            &clock,
            &config,
            1,
            task,
            &CancelToken::new(),
            &mut Recorder::default(),
        );
        let err = results[0].outcome.as_ref().unwrap_err();
        assert_eq!(results[0].attempts, attempts, "{failure:?}");
        assert_eq!(err.kind, failure.kind());
        assert_eq!(err.retryable, attempts > 1, "{failure:?}");
    }
}

#[test]
fn hung_attempts_time_out_and_are_dropped() {
    let clock = VirtualClock::new();
    let meter = Meter::default();
    let task = scripted(&clock, &meter, |_, _| Step::Hang);
    let config = Config {
        max_retries: 2,
        timeout: Some(MS(1000)),
        backoff: no_jitter(100, 100),
        ..Config::default()
    };
    let results = run(
        &clock,
        &config,
        2,
        task,
        &CancelToken::new(),
        &mut Recorder::default(),
    );
    for r in &results {
        let e = r.outcome.as_ref().unwrap_err();
        assert_eq!(
            (e.kind, r.attempts, e.retryable),
            (ErrorKind::Timeout, 3, true)
        );
        assert_eq!(e.message, "attempt timed out after 1000 ms");
    }
    assert_eq!(
        meter.dropped_unfinished.get(),
        6,
        "every hung attempt was dropped (aborted)"
    );
    assert_eq!(clock.now(), MS(3200));
}

#[test]
fn deadline_fails_a_wait_that_would_pass_it_at_once() {
    let clock = VirtualClock::new();
    let task = scripted(&clock, &Meter::default(), |i, _| match i {
        0 => Step::Fail(
            100,
            Failure {
                server_wait: Some(MS(5000)),
                ..http(429)
            },
        ),
        _ => Step::Ok(300),
    });
    let config = Config {
        deadline: Some(MS(2000)),
        ..Config::default()
    };
    let mut rec = Recorder::default();
    let results = run(&clock, &config, 2, task, &CancelToken::new(), &mut rec);
    let e = results[0].outcome.as_ref().unwrap_err();
    assert_eq!(
        (e.kind, e.retry_after_ms, e.status, e.retryable),
        (ErrorKind::Deadline, Some(5000), Some(429), true)
    );
    assert_eq!(
        results[0].elapsed,
        MS(100),
        "failed at once, no sleeping toward the deadline"
    );
    assert!(results[1].outcome.is_ok());
    assert_eq!(clock.now(), MS(300));
}

#[test]
fn deadline_stops_running_waiting_and_queued_items() {
    let clock = VirtualClock::new();
    let meter = Meter::default();
    let task = scripted(&clock, &meter, |i, _| match i {
        0 => Step::Ok(50),
        1 => Step::Fail(10, http(503)),
        _ => Step::Hang,
    });
    let config = Config {
        concurrency: 2,
        deadline: Some(MS(500)),
        backoff: no_jitter(200, 200),
        ..Config::default()
    };
    let results = run(
        &clock,
        &config,
        5,
        task,
        &CancelToken::new(),
        &mut Recorder::default(),
    );
    assert!(results[0].outcome.is_ok());
    let kinds: Vec<(ErrorKind, u32)> = results[1..]
        .iter()
        .map(|r| (r.outcome.as_ref().unwrap_err().kind, r.attempts))
        .collect();
    // Item 1 failed at 10 ms and its retry was due at 210 ms, but by then items 2 (from
    // 10 ms) and 3 (from 50 ms) hung in both slots; item 4 never got a slot.
    assert_eq!(
        kinds,
        vec![
            (ErrorKind::Deadline, 1),
            (ErrorKind::Deadline, 1),
            (ErrorKind::Deadline, 1),
            (ErrorKind::Deadline, 0)
        ]
    );
    let waiting = results[1].outcome.as_ref().unwrap_err();
    assert_eq!(waiting.status, Some(503), "the last failure is kept");
    assert!(
        waiting.message.contains("while waiting to retry"),
        "{}",
        waiting.message
    );
    assert_eq!(clock.now(), MS(500));
    assert_eq!(meter.now.get(), 0);
}

#[test]
fn cancel_aborts_in_flight_and_accounts_for_every_item() {
    let clock = VirtualClock::new();
    let meter = Meter::default();
    let task = scripted(&clock, &meter, |i, _| {
        if i < 2 {
            Step::Ok(100)
        } else {
            Step::Ok(10_000)
        }
    });
    let config = Config {
        concurrency: 3,
        ..Config::default()
    };
    let cancel = CancelToken::new();
    let (c, token) = (clock.clone(), cancel.clone());
    let canceller = async move {
        c.sleep(MS(250)).await;
        token.cancel();
    };
    let mut rec = Recorder::default();
    let pacer = Pacer::unpaced(config.concurrency);
    let executor = Executor::new(&config, &clock, &pacer)
        .cancel_on(&cancel)
        .seed(1);
    let (results, ()) = clock.block_on(futures::future::join(
        executor.run(6, task, &(), &mut rec),
        canceller,
    ));
    assert_eq!(
        clock.now(),
        MS(250),
        "the batch ended at the cancel, not at 10 s"
    );
    assert!(results[0].outcome.is_ok() && results[1].outcome.is_ok());
    for r in &results[2..] {
        let e = r.outcome.as_ref().unwrap_err();
        assert_eq!((e.kind, e.retryable), (ErrorKind::Aborted, false));
    }
    // Items 2, 3, 4 were running (3 slots); item 5 never started.
    assert_eq!(
        results.iter().map(|r| r.attempts).collect::<Vec<_>>(),
        vec![1, 1, 1, 1, 1, 0]
    );
    assert_eq!(meter.dropped_unfinished.get(), 3);
    assert_eq!(rec.progress.last().unwrap().done, 6);
}

#[test]
fn an_already_cancelled_token_starts_nothing() {
    let clock = VirtualClock::new();
    let meter = Meter::default();
    let task = scripted(&clock, &meter, |_, _| Step::Ok(10));
    let cancel = CancelToken::new();
    cancel.cancel();
    let results = run(
        &clock,
        &Config::default(),
        3,
        task,
        &cancel,
        &mut Recorder::default(),
    );
    assert!(results
        .iter()
        .all(|r| r.attempts == 0 && r.outcome.as_ref().unwrap_err().kind == ErrorKind::Aborted));
    assert_eq!(meter.max.get(), 0);
}

#[test]
fn empty_batch_finishes_at_once() {
    let clock = VirtualClock::new();
    let task = scripted(&clock, &Meter::default(), |_, _| Step::Ok(1));
    let results = run(
        &clock,
        &Config::default(),
        0,
        task,
        &CancelToken::new(),
        &mut Recorder::default(),
    );
    assert!(results.is_empty());
    assert_eq!(clock.now(), MS(0));
}

#[test]
fn progress_counts_are_consistent_at_every_step() {
    let clock = VirtualClock::new();
    let task = scripted(&clock, &Meter::default(), |i, a| match (i % 3, a) {
        (0, 1) => Step::Fail(30, http(429)),
        (1, _) => Step::Fail(20, http(400)),
        _ => Step::Ok(40),
    });
    let config = Config {
        concurrency: 2,
        backoff: no_jitter(100, 100),
        ..Config::default()
    };
    let mut rec = Recorder::default();
    run(&clock, &config, 9, task, &CancelToken::new(), &mut rec);
    for p in &rec.progress {
        assert_eq!(p.total, 9);
        assert_eq!(p.ok + p.failed, p.done);
        assert!(p.in_flight <= 2);
        assert_eq!(p.done + p.in_flight + p.queued + p.waiting, 9, "{p:?}");
    }
    let last = rec.progress.last().unwrap();
    assert_eq!(
        (last.done, last.ok, last.failed, last.retries),
        (9, 6, 3, 3)
    );
    assert!(rec
        .progress
        .windows(2)
        .all(|w| w[0].done <= w[1].done && w[0].elapsed <= w[1].elapsed));
}

const SPENT: &str = "attempt budget exhausted: all 3 attempts of this call are used";

/// `(kind, status, attempts, message)` of one result, for table assertions.
type Outline = (Option<ErrorKind>, Option<u16>, u32, String);

fn outline(results: &[ItemResult<usize>]) -> Vec<Outline> {
    results
        .iter()
        .map(|r| match &r.outcome {
            Ok(_) => (None, None, r.attempts, String::new()),
            Err(e) => (Some(e.kind), e.status, r.attempts, e.message.clone()),
        })
        .collect()
}

/// Item 0 fails with `status` after 10 ms, every attempt; the others succeed after `ok_ms`.
fn first_fails(status: u16, ok_ms: u64) -> Box<dyn Fn(usize, u32) -> Step> {
    Box::new(move |i, _| match i {
        0 => Step::Fail(10, http(status)),
        _ => Step::Ok(ok_ms),
    })
}

/// A batch of `items` under a budget of 3 attempts, and how it must end.
struct BudgetCase {
    name: &'static str,
    items: usize,
    concurrency: usize,
    script: Box<dyn Fn(usize, u32) -> Step>,
    want: Vec<Outline>,
    end_ms: u64,
}

#[test]
fn attempt_budget_table() {
    let ok = || (None, None, 1, String::new());
    let spent = || (Some(ErrorKind::Budget), None, 0, SPENT.to_owned());
    let refused = |status: u16, attempts: u32| {
        let message = format!("retry refused, {SPENT}; last error: status {status}");
        (Some(ErrorKind::Http), Some(status), attempts, message)
    };
    let cases = vec![
        BudgetCase {
            name: "items that never start fail as budget; those that started finish",
            items: 5,
            concurrency: 2,
            script: Box::new(|_, _| Step::Ok(100)),
            want: vec![ok(), ok(), ok(), spent(), spent()],
            end_ms: 200,
        },
        BudgetCase {
            name: "a refused retry keeps the 429 and does not wait out its backoff",
            items: 1,
            concurrency: 1,
            script: first_fails(429, 0),
            want: vec![refused(429, 3)],
            end_ms: 2030,
        },
        BudgetCase {
            // Item 0 fails at 10 and would retry at 1010; items 1 and 2 take the free slot at
            // 10 and 110, the last attempt: item 0 fails then, without waiting until 1010.
            name: "an item waiting out a backoff fails as soon as the last attempt starts",
            items: 3,
            concurrency: 1,
            script: first_fails(503, 100),
            want: vec![refused(503, 1), ok(), ok()],
            end_ms: 210,
        },
        BudgetCase {
            name: "a final failure is not a refusal, and a budget not used up changes nothing",
            items: 2,
            concurrency: 2,
            script: first_fails(400, 10),
            want: vec![
                (Some(ErrorKind::Http), Some(400), 1, "status 400".to_owned()),
                ok(),
            ],
            end_ms: 10,
        },
    ];
    for case in cases {
        let name = case.name;
        let clock = VirtualClock::new();
        let meter = Meter::default();
        let task = scripted(&clock, &meter, case.script);
        let config = Config {
            concurrency: case.concurrency,
            max_attempts: Some(3),
            backoff: no_jitter(1000, 1000),
            ..Config::default()
        };
        let mut rec = Recorder::default();
        let results = run(
            &clock,
            &config,
            case.items,
            task,
            &CancelToken::new(),
            &mut rec,
        );
        assert_eq!(outline(&results), case.want, "{name}");
        assert_eq!(clock.now(), MS(case.end_ms), "{name}");
        assert_eq!(meter.now.get(), 0, "{name}");
        for e in results.iter().filter_map(|r| r.outcome.as_ref().err()) {
            let refusal = e.message.starts_with("retry refused");
            assert_eq!(
                e.retryable, refusal,
                "{name}: only a refused retry is retryable"
            );
        }
        let last = rec.progress.last().unwrap();
        assert_eq!(
            (last.done, last.queued, last.waiting),
            (case.items, 0, 0),
            "{name}"
        );
    }
}

#[test]
fn property_attempt_budget_is_exactly_respected() {
    for seed in 0..200u64 {
        let mut r = SplitMix64::new(seed ^ 0xb0d6e7);
        let n = 1 + (r.next_f64() * 30.0) as usize;
        let budget = 1 + (r.next_f64() * 2.5 * n as f64) as u64;
        let config = Config {
            concurrency: 1 + (r.next_f64() * 8.0) as usize,
            max_retries: (r.next_f64() * 4.0) as u32,
            timeout: Some(MS(450)),
            backoff: Backoff::new(MS(50), MS(2000), Jitter::Full).unwrap(),
            max_attempts: Some(budget),
            ..Config::default()
        };
        let clock = VirtualClock::new();
        let meter = Meter::default();
        let calls = Rc::new(Cell::new(0u64));
        let c = calls.clone();
        let inner = scripted(&clock, &meter, move |i, a| random_step(seed, i, a));
        let task = move |i, a| {
            c.set(c.get() + 1);
            inner(i, a)
        };
        let mut rec = Recorder::default();
        let results = run(&clock, &config, n, task, &CancelToken::new(), &mut rec);
        let ctx = format!("seed {seed} n {n} budget {budget} {config:?}");

        assert_eq!(results.len(), n, "{ctx}: one result per item");
        assert!(
            results.iter().enumerate().all(|(i, r)| r.index == i),
            "{ctx}"
        );
        let mut order = rec.completion_order.clone();
        order.sort_unstable();
        assert_eq!(order, (0..n).collect::<Vec<_>>(), "{ctx}: each result once");
        assert_eq!(meter.now.get(), 0, "{ctx}: nothing left in flight");
        assert!(meter.max.get() <= config.concurrency, "{ctx}");

        let started = calls.get();
        let attempts: u64 = results.iter().map(|r| u64::from(r.attempts)).sum();
        let start_events = rec
            .events
            .iter()
            .filter(|e| matches!(e, Event::Start { .. }))
            .count() as u64;
        assert!(started <= budget, "{ctx}: {started} attempts started");
        assert_eq!((attempts, start_events), (started, started), "{ctx}");

        // Without the budget each item would end as `expected` says; with it, an item ends
        // the same or is cut short: never started (budget) or its retry refused (last error).
        let mut cut = 0;
        for (i, res) in results.iter().enumerate() {
            let (want, want_attempts) = expected(seed, i, config.max_retries);
            let got = res.outcome.as_ref().map(|_| ()).map_err(|e| e.kind);
            if res.attempts == want_attempts {
                assert_eq!(got, want, "{ctx} item {i}");
                continue;
            }
            cut += 1;
            let e = res.outcome.as_ref().unwrap_err();
            assert!(res.attempts < want_attempts, "{ctx} item {i}");
            if res.attempts == 0 {
                assert_eq!((e.kind, e.retryable), (ErrorKind::Budget, false), "{ctx}");
                assert!(
                    e.message.starts_with("attempt budget exhausted: all "),
                    "{ctx}"
                );
            } else {
                let (last_kind, _) = expected(seed, i, res.attempts - 1);
                assert_eq!(
                    (Err(e.kind), e.retryable),
                    (last_kind, true),
                    "{ctx} item {i}"
                );
                assert!(
                    e.message.starts_with("retry refused, attempt budget"),
                    "{ctx}"
                );
            }
        }
        if cut > 0 {
            assert_eq!(
                started, budget,
                "{ctx}: items were cut short, so all was used"
            );
        }
    }
}

#[test]
fn stop_messages_say_why_and_where_each_item_was() {
    for cancelled in [false, true] {
        let clock = VirtualClock::new();
        // Item 0 fails at 10 ms and is ready again at 110 ms, but items 1 and 2 hang in both
        // slots; item 3 never gets one. The stop comes at 500 ms.
        let task = scripted(&clock, &Meter::default(), |i, _| match i {
            0 => Step::Fail(
                10,
                Failure {
                    server_wait: Some(MS(100)),
                    ..http(503)
                },
            ),
            _ => Step::Hang,
        });
        let config = Config {
            concurrency: 2,
            timeout: None,
            deadline: (!cancelled).then_some(MS(500)),
            ..Config::default()
        };
        let cancel = CancelToken::new();
        let (c, token) = (clock.clone(), cancel.clone());
        let canceller = async move {
            c.sleep(MS(500)).await;
            token.cancel();
        };
        let mut rec = Recorder::default();
        let pacer = Pacer::unpaced(config.concurrency);
        let batch = Executor::new(&config, &clock, &pacer)
            .cancel_on(&cancel)
            .seed(1)
            .run(4, task, &(), &mut rec);
        let results = if cancelled {
            clock.block_on(futures::future::join(batch, canceller)).0
        } else {
            clock.block_on(batch)
        };
        let (kind, what) = if cancelled {
            (ErrorKind::Aborted, "cancelled")
        } else {
            (ErrorKind::Deadline, "deadline reached")
        };
        let errors: Vec<(ErrorKind, String)> = results
            .iter()
            .map(|r| {
                let e = r.outcome.as_ref().unwrap_err();
                (e.kind, e.message.clone())
            })
            .collect();
        assert_eq!(
            errors,
            vec![
                (
                    kind,
                    format!("{what} while waiting to retry; last error: status 503")
                ),
                (kind, format!("{what} during attempt 1")),
                (kind, format!("{what} during attempt 1")),
                (kind, format!("{what} before the item started")),
            ]
        );
        assert_eq!(clock.now(), MS(500));
    }
}

/// Always the same number: jittered delays become exact.
struct Fixed(f64);

impl Rng for Fixed {
    fn next_f64(&mut self) -> f64 {
        self.0
    }
}

#[test]
fn decorrelated_jitter_builds_each_delay_on_the_previous_one() {
    let clock = VirtualClock::new();
    let task = scripted(&clock, &Meter::default(), |_, a| {
        if a < 4 {
            Step::Fail(0, http(500))
        } else {
            Step::Ok(0)
        }
    });
    let config = Config {
        concurrency: 1,
        max_retries: 5,
        backoff: Backoff::new(MS(100), MS(10_000), Jitter::Decorrelated).unwrap(),
        ..Config::default()
    };
    let mut rec = Recorder::default();
    let (pacer, mut fixed) = (Pacer::unpaced(config.concurrency), Fixed(0.5));
    let executor = Executor::new(&config, &clock, &pacer).rng(&mut fixed);
    let results = clock.block_on(executor.run(1, task, &(), &mut rec));
    assert!(results[0].outcome.is_ok());
    let delays: Vec<Duration> = rec
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Backoff { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    // Each is halfway between the base (100 ms) and 3 times the one before.
    assert_eq!(delays, vec![MS(200), MS(350), MS(575)]);
}

#[test]
fn a_retry_due_exactly_at_the_deadline_fails_at_once() {
    let clock = VirtualClock::new();
    let task = scripted(&clock, &Meter::default(), |_, _| {
        Step::Fail(
            100,
            Failure {
                server_wait: Some(MS(1900)),
                ..http(503)
            },
        )
    });
    let config = Config {
        deadline: Some(MS(2000)),
        ..Config::default()
    };
    let results = run(
        &clock,
        &config,
        1,
        task,
        &CancelToken::new(),
        &mut Recorder::default(),
    );
    // At 2000 ms the deadline has passed: the retry could not start in time.
    let e = results[0].outcome.as_ref().unwrap_err();
    assert_eq!(
        (e.kind, e.retry_after_ms, results[0].elapsed),
        (ErrorKind::Deadline, Some(1900), MS(100))
    );
}
