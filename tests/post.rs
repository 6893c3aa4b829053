//! The post-processing stage on a virtual clock, with the real executor in front of it:
//! input order, one result per item, the stage's own bound, a retry that does not re-run it,
//! an attempt timeout that does not count it, failures of its own kind, and the deadline and
//! cancellation stopping (dropping) the processing in flight.
#![cfg(not(target_arch = "wasm32"))]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use edgebatch::core::backoff::{Backoff, Jitter};
use edgebatch::core::cancel::CancelToken;
use edgebatch::core::clock::{Clock, VirtualClock};
use edgebatch::core::executor::{Config, Event, Executor, ItemResult, Observer};
use edgebatch::core::pacer::Pacer;
use edgebatch::core::post::{BatchScope, PostStage, Processing};
use edgebatch::{ErrorKind, Failure};

const MS: fn(u64) -> Duration = Duration::from_millis;

mod support;
use support::Recorder;

/// How the test's calls and processing behave, per item.
struct Script {
    /// Call latency of item i (ms).
    call_ms: fn(usize) -> u64,
    /// Attempts of item i that fail (retryably) before one succeeds.
    failures: fn(usize) -> u32,
    /// Processing time of item i (ms); `None`: the processing fails.
    process_ms: fn(usize) -> Option<u64>,
}

struct Run {
    results: Vec<ItemResult<u64>>,
    recorder: Recorder,
    /// Processing runs started, per item.
    processed: Vec<u32>,
    /// Most processing runs at once.
    max_processing: usize,
    /// Processing futures dropped before they finished.
    dropped: usize,
    end: Duration,
}

struct Guard {
    now: Rc<Cell<usize>>,
    dropped: Rc<Cell<usize>>,
    finished: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.now.set(self.now.get() - 1);
        if !self.finished {
            self.dropped.set(self.dropped.get() + 1);
        }
    }
}

fn run(
    total: usize,
    config: &Config,
    bound: usize,
    script: &Script,
    cancel_at: Option<u64>,
) -> Run {
    let clock = VirtualClock::new();
    let cancel = CancelToken::new();
    let attempts = Rc::new(RefCell::new(vec![0u32; total]));
    let processed = Rc::new(RefCell::new(vec![0u32; total]));
    let (now, max, dropped) = (
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(0)),
    );
    let mut recorder = Recorder::default();
    let results = {
        let c = clock.clone();
        let tries = attempts.clone();
        let (call_ms, failures) = (script.call_ms, script.failures);
        let task = move |i: usize, _attempt: u32| {
            let sleep = c.sleep(MS(call_ms(i)));
            let n = {
                let mut t = tries.borrow_mut();
                t[i] += 1;
                t[i]
            };
            async move {
                sleep.await;
                if n <= failures(i) {
                    return Err(Failure::http(503, "overloaded"));
                }
                Ok(i as u64)
            }
        };
        let c = clock.clone();
        let (p, process_ms) = (processed.clone(), script.process_ms);
        let (now2, max2, dropped2) = (now.clone(), max.clone(), dropped.clone());
        let process = move |i: usize, v: u64| -> Processing<u64> {
            p.borrow_mut()[i] += 1;
            let ms = process_ms(i);
            let sleep = c.sleep(MS(ms.unwrap_or(1)));
            now2.set(now2.get() + 1);
            max2.set(max2.get().max(now2.get()));
            let guard = Guard {
                now: now2.clone(),
                dropped: dropped2.clone(),
                finished: false,
            };
            Box::pin(async move {
                // Moved in whole (a closure would capture only the field).
                let mut guard = guard;
                sleep.await;
                guard.finished = true;
                let out = match ms {
                    Some(_) => Ok(v * 10),
                    None => Err(Failure::new(ErrorKind::Task, "extract threw: bad input")),
                };
                (i, out)
            })
        };
        let canceller = {
            let sleep = cancel_at.map(|at| clock.sleep(MS(at)));
            let token = cancel.clone();
            async move {
                if let Some(sleep) = sleep {
                    sleep.await;
                    token.cancel();
                }
            }
        };
        let observer: &mut dyn Observer<u64> = &mut recorder;
        let downstream = RefCell::new(observer);
        let stage = PostStage::new(total, bound);
        let mut feed = stage.feed(&downstream);
        let pacer = Pacer::unpaced(config.concurrency);
        let start = clock.now();
        let executor = Executor::new(config, &clock, &pacer)
            .cancel_on(&cancel)
            .seed(7);
        let calls = Box::pin(executor.run(total, task, &(), &mut feed));
        let deadline_at = config.deadline.map(|d| start + d);
        let batch = BatchScope {
            clock: &clock,
            start,
            deadline_at,
            cancel: &cancel,
        };
        let all = stage.run(calls, &process, batch, &downstream);
        clock.block_on(futures::future::join(all, canceller)).0
    };
    let processed = processed.borrow().clone();
    Run {
        results,
        recorder,
        processed,
        max_processing: max.get(),
        dropped: dropped.get(),
        end: clock.now(),
    }
}

fn config(concurrency: usize) -> Config {
    Config {
        concurrency,
        backoff: Backoff::new(MS(100), MS(100), Jitter::None).unwrap(),
        ..Config::default()
    }
}

fn values(run: &Run) -> Vec<Result<u64, ErrorKind>> {
    run.results
        .iter()
        .map(|r| r.outcome.clone().map_err(|e| e.kind))
        .collect()
}

#[test]
fn input_order_one_result_each_and_the_stage_bound() {
    let script = Script {
        call_ms: |i| 10 + (i as u64 * 37) % 50,
        failures: |_| 0,
        process_ms: |i| Some(100 + (i as u64 * 13) % 40),
    };
    let run = run(20, &config(8), 2, &script, None);
    assert_eq!(
        run.results.iter().map(|r| r.index).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    assert_eq!(
        values(&run),
        (0..20).map(|i| Ok(i * 10)).collect::<Vec<_>>()
    );
    assert_eq!(run.processed, vec![1; 20]);
    assert_eq!(
        run.max_processing, 2,
        "the stage's own bound, not the call concurrency"
    );
    // Results reach the observer when processing ends: completion order, each once.
    let mut seen = run.recorder.completion_order.clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
    let starts = run
        .recorder
        .events
        .iter()
        .filter(|e| matches!(e, Event::ProcessStart { .. }))
        .count();
    let ends = run
        .recorder
        .events
        .iter()
        .filter(|e| matches!(e, Event::ProcessEnd { outcome: None, .. }))
        .count();
    assert_eq!((starts, ends), (20, 20));
    // The calls' own events still reach the observer through the stage, one start per call.
    let call_starts = run
        .recorder
        .events
        .iter()
        .filter(|e| matches!(e, Event::Start { .. }))
        .count();
    assert_eq!(call_starts, 20);
    // Event times are since the batch's start: each item's stage spans its processing time,
    // and starts after its call (at least 10 ms in).
    for i in 0..20usize {
        let at = |start: bool| {
            run.recorder.events.iter().find_map(|e| match *e {
                Event::ProcessStart { index, at, .. } if start && index == i => Some(at),
                Event::ProcessEnd { index, at, .. } if !start && index == i => Some(at),
                _ => None,
            })
        };
        let (begun, ended) = (at(true).unwrap(), at(false).unwrap());
        assert!(
            begun >= Duration::from_millis(10),
            "item {i} began at {begun:?}"
        );
        assert!(
            ended - begun >= Duration::from_millis(100 + (i as u64 * 13) % 40),
            "item {i}: {begun:?}..{ended:?}"
        );
    }
    // Progress: an item in the stage is `processing`, not `done`; the last counts say all done.
    assert!(run.recorder.progress.iter().any(|p| p.processing > 0));
    assert!(run
        .recorder
        .progress
        .iter()
        .all(|p| p.done + p.processing <= 20));
    let last = run.recorder.progress.last().unwrap();
    assert_eq!((last.done, last.ok, last.processing), (20, 20, 0));
}

#[test]
fn a_retried_call_is_processed_once_and_processing_time_is_not_attempt_time() {
    // Every call fails once then succeeds; processing takes 500 ms, far over the 100 ms
    // attempt timeout: it must neither time the attempt out nor run twice.
    let script = Script {
        call_ms: |_| 50,
        failures: |i| u32::from(i % 2 == 0),
        process_ms: |_| Some(500),
    };
    let config = Config {
        timeout: Some(MS(100)),
        ..config(4)
    };
    let run = run(6, &config, 3, &script, None);
    assert_eq!(values(&run), (0..6).map(|i| Ok(i * 10)).collect::<Vec<_>>());
    assert_eq!(run.processed, vec![1; 6]);
    let attempts: Vec<u32> = run.results.iter().map(|r| r.attempts).collect();
    assert_eq!(attempts, vec![2, 1, 2, 1, 2, 1]);
    // elapsed covers the stage: at least call + 500 ms.
    assert!(run.results.iter().all(|r| r.elapsed >= MS(550)));
}

#[test]
fn a_failed_processing_fails_that_item_only_with_its_own_kind() {
    let script = Script {
        call_ms: |_| 20,
        failures: |_| 0,
        process_ms: |i| (i != 2).then_some(10),
    };
    let run = run(5, &config(5), 2, &script, None);
    assert_eq!(
        values(&run),
        vec![Ok(0), Ok(10), Err(ErrorKind::Process), Ok(30), Ok(40)]
    );
    let error = run.results[2].outcome.as_ref().unwrap_err();
    assert!(
        error
            .message
            .contains("post-processing failed: extract threw: bad input"),
        "{}",
        error.message
    );
    assert!(!error.retryable);
    assert_eq!(
        run.results[2].attempts, 1,
        "the call is not retried for a processing failure"
    );
    assert!(run.recorder.events.iter().any(|e| matches!(
        e,
        Event::ProcessEnd {
            index: 2,
            outcome: Some(ErrorKind::Process),
            ..
        }
    )));
}

#[test]
fn the_deadline_stops_processing_in_flight_and_queued() {
    // Calls end at 10 ms; processing takes 1 s, one at a time; the deadline is 300 ms.
    let script = Script {
        call_ms: |_| 10,
        failures: |_| 0,
        process_ms: |_| Some(1000),
    };
    let config = Config {
        deadline: Some(MS(300)),
        ..config(4)
    };
    let run = run(4, &config, 1, &script, None);
    assert_eq!(values(&run), vec![Err(ErrorKind::Deadline); 4]);
    assert_eq!(
        run.end,
        MS(300),
        "the batch ends at the deadline, not after processing"
    );
    assert_eq!(
        run.dropped, 1,
        "the processing in flight is dropped (terminated)"
    );
    assert_eq!(
        run.processed,
        vec![1, 0, 0, 0],
        "queued values are never processed"
    );
    let m = |i: usize| run.results[i].outcome.as_ref().unwrap_err().message.clone();
    assert_eq!(m(0), "deadline reached during post-processing");
    assert_eq!(m(3), "deadline reached before post-processing");
}

#[test]
fn cancelling_stops_the_stage_and_the_calls_alike() {
    // Item 0's call is quick, item 1's slow: the cancel at 100 ms finds 0 processing and 1
    // still calling.
    let script = Script {
        call_ms: |i| if i == 0 { 10 } else { 1000 },
        failures: |_| 0,
        process_ms: |_| Some(1000),
    };
    let run = run(2, &config(2), 1, &script, Some(100));
    assert_eq!(values(&run), vec![Err(ErrorKind::Aborted); 2]);
    assert_eq!(run.end, MS(100));
    assert_eq!(run.dropped, 1);
    let m = |i: usize| run.results[i].outcome.as_ref().unwrap_err().message.clone();
    assert_eq!(m(0), "cancelled during post-processing");
    assert_eq!(m(1), "cancelled during attempt 1");
    assert_eq!(
        run.recorder.completion_order.len(),
        2,
        "one result per item"
    );
}

#[test]
fn call_failures_skip_the_stage() {
    let script = Script {
        call_ms: |_| 10,
        failures: |i| if i == 1 { 99 } else { 0 },
        process_ms: |_| Some(10),
    };
    let config = Config {
        max_retries: 1,
        ..config(2)
    };
    let run = run(3, &config, 1, &script, None);
    assert_eq!(values(&run), vec![Ok(0), Err(ErrorKind::Http), Ok(20)]);
    assert_eq!(run.processed, vec![1, 0, 1]);
}
