//! Fallbacks on a virtual clock: the retry rule's decision table (each trigger, each
//! non-trigger), then the executor over two simulated upstreams: an overloaded first choice,
//! its breaker and its 429 pause moving items and letting them back, one attempt budget and
//! one deadline across alternatives, and each alternative paced by its own pacer.
#![cfg(not(target_arch = "wasm32"))]

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use edgebatch::core::backoff::{Backoff, Jitter};
use edgebatch::core::clock::{Clock, VirtualClock};
use edgebatch::core::executor::{Config, Event, Executor, ItemResult};
use edgebatch::core::pacer::{Pacer, PacingConfig};
use edgebatch::core::retry::{Action, AttemptState, Fallbacks, Refusal, RetryPolicy};
use edgebatch::core::rng::SplitMix64;
use edgebatch::{ErrorKind, Failure};

mod support;
use support::Recorder;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn http(status: u16) -> Failure {
    Failure::http(status, "x")
}

fn waits(f: Failure, ms: u64) -> Failure {
    Failure {
        server_wait: Some(MS(ms)),
        ..f
    }
}

fn policy(alternatives: usize, after: Option<u64>) -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        // No jitter: the backoff of retry n is 100 ms * 2^(n-1).
        backoff: Backoff::new(MS(100), MS(10_000), Jitter::None).unwrap(),
        max_server_wait: MS(60_000),
        fallbacks: Fallbacks {
            alternatives,
            after: after.map(MS),
        },
    }
}

fn on(route: usize) -> AttemptState {
    AttemptState {
        attempt: 1,
        route,
        ..AttemptState::default()
    }
}

const NOW: Action = Action::Move {
    to: 1,
    delay: Duration::ZERO,
};
const NEVER: Action = Action::Fail(Refusal::Final { retryable: false });

#[test]
fn the_fallback_table() {
    let overloaded_body = Failure {
        error_type: Some("overloaded_error".into()),
        retryable: Some(true),
        ..http(200)
    };
    let spend_cap = Failure {
        spend_cap: true,
        ..http(429)
    };
    let deadline = AttemptState {
        deadline: Some(MS(3000)),
        ..on(0)
    };
    let last = AttemptState {
        attempt: 4,
        ..on(0)
    };
    let spent = AttemptState {
        budget_spent: true,
        ..on(0)
    };
    let two = policy(2, Some(2000));
    let three = policy(3, None);
    let rows: Vec<(&str, RetryPolicy, Failure, AttemptState, Action)> = vec![
        // Triggers: the first failure moves, at once.
        ("529 moves", two, http(529), on(0), NOW),
        ("503 moves", two, http(503), on(0), NOW),
        (
            "an overloaded_error body moves",
            two,
            overloaded_body,
            on(0),
            NOW,
        ),
        (
            "a 429 waiting past fallbackAfterMs moves",
            two,
            waits(http(429), 2001),
            on(0),
            NOW,
        ),
        (
            "a 429 waiting past the deadline moves",
            three,
            waits(http(429), 3000),
            deadline,
            NOW,
        ),
        (
            "from a fallback to the next one, now",
            three,
            http(529),
            on(1),
            Action::Move {
                to: 2,
                delay: MS(0),
            },
        ),
        (
            "from the last back to the first choice, after the backoff",
            two,
            http(529),
            on(1),
            Action::Move {
                to: 0,
                delay: MS(100),
            },
        ),
        // Not triggers: retried where they are, or failed.
        (
            "a 429 within fallbackAfterMs retries here",
            two,
            waits(http(429), 2000),
            on(0),
            Action::Retry(MS(2000)),
        ),
        (
            "a 429 with no fallbackAfterMs, within the deadline, retries here",
            three,
            waits(http(429), 2999),
            deadline,
            Action::Retry(MS(2999)),
        ),
        (
            "500 retries here",
            two,
            http(500),
            on(0),
            Action::Retry(MS(100)),
        ),
        (
            "502 retries here",
            two,
            http(502),
            on(0),
            Action::Retry(MS(100)),
        ),
        (
            "a timeout retries here",
            two,
            Failure::timeout(MS(5)),
            on(0),
            Action::Retry(MS(100)),
        ),
        (
            "a network error retries here",
            two,
            Failure::network("reset"),
            on(0),
            Action::Retry(MS(100)),
        ),
        ("400 never moves", two, http(400), on(0), NEVER),
        ("401 (auth) never moves", two, http(401), on(0), NEVER),
        ("403 never moves", two, http(403), on(0), NEVER),
        ("404 never moves", two, http(404), on(0), NEVER),
        ("a spend cap never moves", two, spend_cap, on(0), NEVER),
        (
            "x-should-retry: false on a 529 never moves",
            two,
            Failure {
                should_retry: Some(false),
                ..http(529)
            },
            on(0),
            NEVER,
        ),
        (
            "no fallbacks: a 529 retries here",
            policy(1, None),
            http(529),
            on(0),
            Action::Retry(MS(100)),
        ),
        // One budget, one deadline across alternatives.
        (
            "no retry left: no move",
            two,
            http(529),
            last,
            Action::Fail(Refusal::Final { retryable: true }),
        ),
        (
            "a spent attempt budget: no move",
            two,
            http(529),
            spent,
            Action::Fail(Refusal::Budget),
        ),
        (
            "a move back whose backoff passes the deadline fails now",
            two,
            http(529),
            AttemptState {
                deadline: Some(MS(50)),
                ..on(1)
            },
            Action::Fail(Refusal::PastDeadline { wait: MS(100) }),
        ),
    ];
    for (rule, policy, failure, state, want) in rows {
        let decision = policy.decide(&failure, &state, &mut SplitMix64::new(1));
        assert_eq!(decision.action, want, "{rule}");
    }
}

#[test]
fn a_moving_429_still_pauses_its_own_upstream() {
    let d = policy(2, Some(1000)).decide(&waits(http(429), 5000), &on(0), &mut SplitMix64::new(1));
    assert_eq!((d.action, d.pause), (NOW, MS(5000)));
}

type Boxed = Pin<Box<dyn Future<Output = Result<(usize, usize), Failure>>>>;
/// `(route, index, attempt, start)` of every attempt.
type Log = Rc<RefCell<Vec<(usize, usize, u32, Duration)>>>;

/// Two upstreams on one clock: `answer(route, index, attempt, now)` says how each attempt
/// ends, after 100 ms; every attempt is logged as `(route, index, attempt, start)`.
struct Upstreams {
    clock: VirtualClock,
    log: Log,
}

impl Upstreams {
    fn new() -> Self {
        Upstreams {
            clock: VirtualClock::new(),
            log: Rc::default(),
        }
    }

    fn task(
        &self,
        answer: impl Fn(usize, usize, u32, Duration) -> Option<Failure> + Clone + 'static,
    ) -> impl Fn(usize, u32, usize) -> Boxed {
        let (clock, log) = (self.clock.clone(), self.log.clone());
        move |index, attempt, route| {
            let now = clock.now();
            log.borrow_mut().push((route, index, attempt, now));
            let sleep = clock.sleep(MS(100));
            let answer = answer.clone();
            Box::pin(async move {
                sleep.await;
                match answer(route, index, attempt, now) {
                    Some(failure) => Err(failure),
                    None => Ok((index, route)),
                }
            })
        }
    }

    fn on_route(&self, route: usize) -> usize {
        self.log.borrow().iter().filter(|a| a.0 == route).count()
    }
}

fn settings(concurrency: usize) -> Config {
    Config {
        concurrency,
        max_retries: 4,
        backoff: Backoff::new(MS(500), MS(30_000), Jitter::None).unwrap(),
        ..Config::default()
    }
}

fn pacer(config: &PacingConfig, concurrency: usize) -> RefCell<Pacer> {
    RefCell::new(Pacer::new(config, concurrency, Duration::ZERO))
}

fn served(results: &[ItemResult<(usize, usize)>]) -> Vec<usize> {
    results
        .iter()
        .map(|r| r.outcome.as_ref().unwrap().1)
        .collect()
}

#[test]
fn an_overloaded_first_choice_moves_items_at_once_and_they_come_back_after() {
    let up = Upstreams::new();
    // The first choice answers 529 for its first 2 s; the second is healthy.
    let task = up.task(|route, _, _, at| (route == 0 && at < MS(2000)).then(|| http(529)));
    let config = settings(4);
    let off = PacingConfig::off();
    let (first, second) = (pacer(&off, 4), pacer(&off, 4));
    let others = [&second];
    let mut seen = Recorder::default();
    let results = up.clock.block_on(
        Executor::new(&config, &up.clock, &first)
            .fallbacks(&others, None)
            .run_routed(120, task, &(), &mut seen),
    );
    assert!(results.iter().all(|r| r.outcome.is_ok()));
    // Every item sent during the overload failed once there and was served by the second
    // choice on its next attempt, with no backoff in between.
    for r in &results {
        assert!(
            r.attempts <= 2,
            "item {} made {} attempts",
            r.index,
            r.attempts
        );
    }
    assert!(!seen
        .events
        .iter()
        .any(|e| matches!(e, Event::Backoff { .. })));
    let moved = served(&results).iter().filter(|&&s| s == 1).count();
    let fallbacks = seen
        .events
        .iter()
        .filter(|e| matches!(e, Event::Fallback { from: 0, to: 1, .. }))
        .count();
    assert_eq!(moved, fallbacks);
    assert_eq!(seen.progress.last().unwrap().fallbacks, fallbacks as u64);
    // Items sent after the window went to the first choice again.
    let log = up.log.borrow();
    let after: Vec<_> = log.iter().filter(|a| a.3 >= MS(2000)).collect();
    assert!(
        !after.is_empty() && after.iter().all(|a| a.0 == 0 || a.2 == 2),
        "{after:?}"
    );
    assert!(served(&results)[100..].iter().all(|&s| s == 0));
}

#[test]
fn an_open_breaker_sends_queued_items_to_the_next_choice_until_its_probe_succeeds() {
    let up = Upstreams::new();
    let task = up.task(|route, _, _, at| (route == 0 && at < MS(5000)).then(|| http(529)));
    let config = settings(2);
    let breaker = PacingConfig {
        breaker_failures: 3,
        breaker_cooldown: MS(1000),
        ..PacingConfig::off()
    };
    let (first, second) = (pacer(&breaker, 2), pacer(&PacingConfig::off(), 2));
    let others = [&second];
    let mut seen = Recorder::default();
    let results = up.clock.block_on(
        Executor::new(&config, &up.clock, &first)
            .fallbacks(&others, None)
            .run_routed(200, task, &(), &mut seen),
    );
    assert!(results.iter().all(|r| r.outcome.is_ok()));
    // While it was open, items went straight to the second choice: a fallback before any
    // attempt.
    let straight = seen
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Fallback {
                    attempt: 0,
                    from: 0,
                    to: 1,
                    ..
                }
            )
        })
        .count();
    assert!(straight > 20, "{straight} items skipped the open breaker");
    // Far fewer attempts hit the first choice during its outage than were made.
    let log = up.log.borrow();
    let during = log.iter().filter(|a| a.0 == 0 && a.3 < MS(5000)).count();
    assert!(during < 40, "{during} attempts hit the open upstream");
    // A probe after the outage closed it, and everything after went to the first choice.
    let back = log.iter().find(|a| a.0 == 0 && a.3 >= MS(5000)).unwrap().3;
    assert!(
        back < MS(5000) + breaker.breaker_cooldown * 8,
        "back at {back:?}"
    );
    assert!(log
        .iter()
        .filter(|a| a.3 > back + MS(200))
        .all(|a| a.0 == 0));
}

#[test]
fn a_long_429_pause_moves_items_and_they_return_when_it_ends() {
    let up = Upstreams::new();
    // One 429 asking for 3 s, for the first item's first attempt.
    let task = up.task(|route, index, attempt, _| {
        (route == 0 && index == 0 && attempt == 1).then(|| waits(http(429), 3000))
    });
    let config = settings(2);
    let paused = PacingConfig {
        pause_on_rate_limit: true,
        ..PacingConfig::off()
    };
    let (first, second) = (pacer(&paused, 2), pacer(&paused, 2));
    let others = [&second];
    let results = up.clock.block_on(
        Executor::new(&config, &up.clock, &first)
            .fallbacks(&others, Some(MS(1000)))
            .run_routed(80, task, &(), &mut ()),
    );
    assert!(results.iter().all(|r| r.outcome.is_ok()));
    let log = up.log.borrow();
    // During the pause nothing went to the first choice; the second took the items.
    assert!(log
        .iter()
        .all(|a| a.0 == 1 || a.3 < MS(100) || a.3 >= MS(3100)));
    assert!(log.iter().any(|a| a.0 == 1 && a.3 > MS(1000)));
    // Once it ended, they went back.
    assert!(log.iter().any(|a| a.0 == 0 && a.3 >= MS(3100)));
    assert_eq!(served(&results)[0], 1, "the rate-limited item moved");
}

#[test]
fn a_short_429_and_other_failures_stay_where_they_are() {
    let up = Upstreams::new();
    let task = up.task(|route, index, attempt, _| match (route, index, attempt) {
        (0, 0, 1) => Some(waits(http(429), 500)),
        (0, 1, 1) => Some(http(500)),
        (0, 2, 1) => Some(Failure::timeout(MS(100))),
        (0, 3, _) => Some(http(400)),
        (0, 4, _) => Some(http(401)),
        (0, 5, _) => Some(Failure {
            spend_cap: true,
            ..http(429)
        }),
        _ => None,
    });
    let config = settings(8);
    let off = PacingConfig::off();
    let (first, second) = (pacer(&off, 8), pacer(&off, 8));
    let others = [&second];
    let results = up.clock.block_on(
        Executor::new(&config, &up.clock, &first)
            .fallbacks(&others, Some(MS(1000)))
            .run_routed(6, task, &(), &mut ()),
    );
    assert_eq!(up.on_route(1), 0, "nothing went to the second choice");
    for r in &results[..3] {
        assert_eq!((r.attempts, r.outcome.as_ref().unwrap().1), (2, 0));
    }
    for r in &results[3..] {
        assert_eq!((r.attempts, r.outcome.is_err()), (1, true));
    }
}

#[test]
fn one_budget_and_one_deadline_across_alternatives() {
    let up = Upstreams::new();
    let task = up.task(|_, _, _, _| Some(http(529)));
    let off = PacingConfig::off();
    let (first, second) = (pacer(&off, 1), pacer(&off, 1));
    let others = [&second];
    let config = Config {
        max_retries: 3,
        ..settings(1)
    };
    let results = up.clock.block_on(
        Executor::new(&config, &up.clock, &first)
            .fallbacks(&others, None)
            .run_routed(1, task, &(), &mut ()),
    );
    // 4 attempts in all (maxRetries 3), alternating, not 4 on each.
    assert_eq!(results[0].attempts, 4);
    let routes: Vec<usize> = up.log.borrow().iter().map(|a| a.0).collect();
    assert_eq!(routes, [0, 1, 0, 1]);
    let error = results[0].outcome.as_ref().unwrap_err();
    assert_eq!((error.kind, error.status), (ErrorKind::Http, Some(529)));

    // The deadline: the move back to the first choice waits its backoff (500 ms, then 1 s),
    // which passes a 1.5 s deadline: the item fails then, with the wait it needed.
    let up = Upstreams::new();
    let task = up.task(|_, _, _, _| Some(http(529)));
    let (first, second) = (pacer(&off, 1), pacer(&off, 1));
    let others = [&second];
    let config = Config {
        deadline: Some(MS(1500)),
        ..settings(1)
    };
    let results = up.clock.block_on(
        Executor::new(&config, &up.clock, &first)
            .fallbacks(&others, None)
            .run_routed(1, task, &(), &mut ()),
    );
    let error = results[0].outcome.as_ref().unwrap_err();
    assert_eq!(error.kind, ErrorKind::Deadline, "{error:?}");
    assert!(up.clock.now() <= MS(1500));

    // maxAttempts counts the attempts on every alternative.
    let up = Upstreams::new();
    let task = up.task(|_, _, _, _| Some(http(529)));
    let (first, second) = (pacer(&off, 1), pacer(&off, 1));
    let others = [&second];
    let config = Config {
        max_attempts: Some(3),
        ..settings(1)
    };
    let results = up.clock.block_on(
        Executor::new(&config, &up.clock, &first)
            .fallbacks(&others, None)
            .run_routed(1, task, &(), &mut ()),
    );
    assert_eq!((results[0].attempts, up.log.borrow().len()), (3, 3));
}

#[test]
fn each_alternative_is_paced_by_its_own_pacer() {
    let up = Upstreams::new();
    let task = up.task(|route, _, _, _| (route == 0).then(|| http(529)));
    // The second choice allows 3 requests a minute: a burst of 3, then one per 20 s.
    let budget = PacingConfig {
        requests_per_minute: Some(3),
        ..PacingConfig::off()
    };
    let (first, second) = (pacer(&PacingConfig::off(), 8), pacer(&budget, 8));
    let others = [&second];
    let config = settings(8);
    let results = up.clock.block_on(
        Executor::new(&config, &up.clock, &first)
            .fallbacks(&others, None)
            .run_routed(5, task, &(), &mut ()),
    );
    assert!(results.iter().all(|r| r.outcome.is_ok()));
    let mut starts: Vec<Duration> = up
        .log
        .borrow()
        .iter()
        .filter(|a| a.0 == 1)
        .map(|a| a.3)
        .collect();
    starts.sort();
    assert_eq!(
        starts.len(),
        5,
        "every fallback attempt went through the pacer once"
    );
    assert!(
        starts[3] >= MS(20_000) && starts[4] >= MS(40_000),
        "{starts:?}"
    );
    // The first choice's pacer never saw them: its own budget is untouched by them.
    assert_eq!(first.borrow().in_flight() + second.borrow().in_flight(), 0);
}
