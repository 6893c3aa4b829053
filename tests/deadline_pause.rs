//! A 429's pause and the deadline, on a virtual clock, with one pacer shared by calls as one
//! processor shares it: a wait that passes the deadline pauses nobody (and nothing carries into
//! the next call); items a pause pushes past the deadline fail at once with `retryAfterMs`.
#![cfg(not(target_arch = "wasm32"))]

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use edgebatch::core::clock::{Clock, VirtualClock};
use edgebatch::core::executor::{Config, Executor, ItemResult};
use edgebatch::core::pacer::{Pacer, PacingConfig};
use edgebatch::providers::headers::server_wait;
use edgebatch::{ErrorKind, Failure};

const MS: fn(u64) -> Duration = Duration::from_millis;

type Attempt = Pin<Box<dyn Future<Output = Result<usize, Failure>>>>;

/// Every attempt takes 100 ms; item `limited` is answered 429 with `retry-after: secs` on its
/// first attempt.
fn task(clock: &VirtualClock, limited: usize, secs: &str) -> impl Fn(usize, u32) -> Attempt {
    let (clock, secs) = (clock.clone(), secs.to_owned());
    move |i, a| {
        let (clock, secs) = (clock.clone(), secs.clone());
        Box::pin(async move {
            clock.sleep(MS(100)).await;
            if i == limited && a == 1 {
                // Read as the edge reads a reply's `retry-after`.
                return Err(Failure {
                    server_wait: server_wait(None, Some(&secs), clock.unix_ms()),
                    ..Failure::http(429, "rate limited")
                });
            }
            Ok(i)
        })
    }
}

fn call(
    clock: &VirtualClock,
    pacer: &RefCell<Pacer>,
    config: &Config,
    n: usize,
    task: impl Fn(usize, u32) -> Attempt,
) -> Vec<ItemResult<usize>> {
    clock.block_on(
        Executor::new(config, clock, pacer)
            .seed(7)
            .run(n, task, &(), &mut ()),
    )
}

fn setup(deadline: Option<u64>) -> (VirtualClock, RefCell<Pacer>, Config) {
    let clock = VirtualClock::new();
    let config = Config {
        concurrency: 2,
        deadline: deadline.map(MS),
        max_retry_after: Duration::from_secs(3600),
        ..Config::default()
    };
    let pacing = PacingConfig {
        adaptive: false,
        ..PacingConfig::default()
    };
    let pacer = RefCell::new(Pacer::new(&pacing, config.concurrency, clock.now()));
    (clock, pacer, config)
}

#[test]
fn a_wait_past_the_deadline_fails_its_item_and_pauses_nobody() {
    let (clock, pacer, config) = setup(Some(4000));
    let results = call(&clock, &pacer, &config, 20, task(&clock, 0, "3600"));
    let e = results[0].outcome.as_ref().unwrap_err();
    assert_eq!((e.kind, e.retryable), (ErrorKind::Deadline, true));
    assert_eq!(e.retry_after_ms, Some(3_600_000));
    assert_eq!(results[0].attempts, 1);
    let ok = results.iter().filter(|r| r.outcome.is_ok()).count();
    assert_eq!(
        ok,
        19,
        "every healthy item runs: {:?}",
        results[1..].iter().map(|r| &r.outcome).collect::<Vec<_>>()
    );
    // 20 items, 2 at a time, 100 ms each: nothing waited on the unusable pause.
    assert_eq!(clock.now(), MS(1000));

    // The next call on the same processor does not inherit a pause either.
    let start = clock.now();
    let next = call(&clock, &pacer, &config, 4, task(&clock, usize::MAX, "0"));
    assert!(next.iter().all(|r| r.outcome.is_ok()));
    assert_eq!(clock.now() - start, MS(200));
}

#[test]
fn items_a_pause_pushes_past_the_deadline_fail_at_once_with_the_wait() {
    // A first call without a deadline meets a 429 asking for 10 s: that pause is real.
    let (clock, pacer, mut config) = setup(None);
    config.max_retries = 0;
    let first = call(&clock, &pacer, &config, 1, task(&clock, 0, "10"));
    assert_eq!(first[0].outcome.as_ref().unwrap_err().status, Some(429));
    let paused_at = clock.now();

    // A second call with a 4 s deadline cannot start before the pause ends: its items fail
    // now, not at the deadline, and say how long the wait was.
    config.deadline = Some(MS(4000));
    let second = call(&clock, &pacer, &config, 5, task(&clock, usize::MAX, "0"));
    assert_eq!(clock.now(), paused_at, "failed at once");
    for r in &second {
        let e = r.outcome.as_ref().unwrap_err();
        assert_eq!(
            (e.kind, e.retryable, r.attempts),
            (ErrorKind::Deadline, true, 0)
        );
        assert_eq!(e.retry_after_ms, Some(10_000));
        assert!(e.message.contains("past the deadline"), "{}", e.message);
    }

    // With room before its deadline the same call waits the pause out and succeeds.
    config.deadline = Some(MS(20_000));
    let third = call(&clock, &pacer, &config, 2, task(&clock, usize::MAX, "0"));
    assert!(third.iter().all(|r| r.outcome.is_ok()));
    assert_eq!(clock.now(), paused_at + MS(10_000) + MS(100));
}
