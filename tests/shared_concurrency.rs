//! One processor = one budget: two calls running at once on one pacer (as two concurrent
//! `map()` calls on one `BatchProcessor`) share its `concurrency` bound.
#![cfg(not(target_arch = "wasm32"))]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use edgebatch::core::clock::{Clock, VirtualClock};
use edgebatch::core::executor::{Config, Executor};
use edgebatch::core::pacer::{Pacer, PacingConfig};
use edgebatch::Failure;

#[test]
fn two_calls_on_one_pacer_share_its_concurrency() {
    let clock = VirtualClock::new();
    let config = Config {
        concurrency: 3,
        ..Config::default()
    };
    let pacing = PacingConfig {
        adaptive: false,
        ..PacingConfig::default()
    };
    let pacer = RefCell::new(Pacer::new(&pacing, config.concurrency, clock.now()));
    let (now, max) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let task = |fail_first: bool| {
        let (clock, now, max) = (clock.clone(), now.clone(), max.clone());
        move |i: usize, attempt: u32| {
            let (clock, now, max) = (clock.clone(), now.clone(), max.clone());
            now.set(now.get() + 1);
            max.set(max.get().max(now.get()));
            async move {
                clock.sleep(Duration::from_millis(100)).await;
                now.set(now.get() - 1);
                // Some failures and retries too: every outcome must give its slot back.
                if fail_first && i % 3 == 0 && attempt == 1 {
                    return Err(Failure::http(503, "busy"));
                }
                Ok(i)
            }
        }
    };
    let call = |fail_first: bool, seed: u64| {
        let (config, clock, pacer) = (&config, &clock, &pacer);
        async move {
            Executor::new(config, clock, pacer)
                .seed(seed)
                .run(10, task(fail_first), &(), &mut ())
                .await
        }
    };
    let (a, b) = clock.block_on(futures::future::join(call(true, 1), call(false, 2)));
    assert!(a.iter().chain(&b).all(|r| r.outcome.is_ok()));
    assert_eq!(max.get(), 3, "at most 3 in flight across both calls");
    assert_eq!(pacer.borrow().in_flight(), 0, "every slot given back");
}

#[test]
fn a_call_dropped_mid_way_gives_its_slots_back() {
    // `map()`'s promise can be dropped (its future with it) while attempts are in flight: the
    // processor's other calls must not stay short of those slots for ever.
    use futures::FutureExt;
    let clock = VirtualClock::new();
    let config = Config {
        concurrency: 2,
        ..Config::default()
    };
    let pacing = PacingConfig {
        adaptive: false,
        ..PacingConfig::default()
    };
    let pacer = RefCell::new(Pacer::new(&pacing, config.concurrency, clock.now()));
    let slow = |_: usize, _: u32| {
        let clock = clock.clone();
        async move {
            clock.sleep(Duration::from_secs(60)).await;
            Ok::<usize, Failure>(0)
        }
    };
    let mut observer = ();
    let mut first =
        Box::pin(Executor::new(&config, &clock, &pacer).run(5, slow, &(), &mut observer));
    assert!(
        (&mut first).now_or_never().is_none(),
        "its attempts are sleeping"
    );
    assert_eq!(pacer.borrow().in_flight(), 2, "both slots taken");
    drop(first);
    assert_eq!(
        pacer.borrow().in_flight(),
        0,
        "the dropped call's slots came back"
    );
    let quick = |i: usize, _: u32| async move { Ok::<usize, Failure>(i) };
    let results =
        clock.block_on(Executor::new(&config, &clock, &pacer).run(3, quick, &(), &mut ()));
    assert!(
        results.iter().all(|r| r.outcome.is_ok()),
        "the next call runs"
    );
}
