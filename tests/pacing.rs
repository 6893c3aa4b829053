//! Pacing on a virtual clock against a rate-limited upstream model: header-driven pacing with
//! no configured budget, configured budgets with refunds, the global pause on 429, AIMD under
//! overload, the circuit breaker, and the never-fits rejection.
#![cfg(not(target_arch = "wasm32"))]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};

use edgebatch::core::cancel::CancelToken;
use edgebatch::core::clock::{Clock, VirtualClock};
use edgebatch::core::executor::{Config, Event, Executor, ItemResult, Observer};
use edgebatch::core::limits::{Cost, Feedback, Limit, RateLimits, Usage};
use edgebatch::core::observation::{Observation, Observed};
use edgebatch::core::pacer::{Pacer, PacingConfig};
use edgebatch::core::retry::FailureClass;
use edgebatch::{ErrorKind, Failure};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// A value with what the reply said about limits and usage.
#[derive(Clone, Debug)]
struct Reply {
    limits: RateLimits,
    usage: Usage,
}

/// An API with a requests-per-minute limit refilled continuously, like the real ones; it
/// reports its state in headers on every reply and answers 429 when over.
struct Upstream {
    per_minute: f64,
    tokens: f64,
    at: Duration,
    latency: Duration,
    rejected: Vec<Duration>,
    served: u32,
}

impl Upstream {
    fn new(per_minute: u64, latency: Duration) -> Self {
        Upstream {
            per_minute: per_minute as f64,
            tokens: per_minute as f64,
            at: Duration::ZERO,
            latency,
            rejected: Vec::new(),
            served: 0,
        }
    }

    fn arrive(&mut self, now: Duration) -> (bool, RateLimits) {
        let rate = self.per_minute / 60_000.0;
        self.tokens =
            (self.tokens + (now - self.at).as_secs_f64() * 1000.0 * rate).min(self.per_minute);
        self.at = now;
        let ok = self.tokens >= 1.0;
        if ok {
            self.tokens -= 1.0;
            self.served += 1;
        } else {
            self.rejected.push(now);
        }
        let reset_ms = (self.per_minute - self.tokens) / rate;
        let limits = RateLimits {
            requests: Limit {
                limit: Some(self.per_minute as u64),
                remaining: Some(self.tokens.floor() as u64),
                reset_in: Some(Duration::from_secs_f64(reset_ms.ceil() / 1000.0)),
            },
            ..RateLimits::default()
        };
        (ok, limits)
    }
}

type Attempt = Pin<Box<dyn Future<Output = Result<Reply, Failure>>>>;

fn api_task(clock: &VirtualClock, api: &Rc<RefCell<Upstream>>) -> impl Fn(usize, u32) -> Attempt {
    let (clock, api) = (clock.clone(), api.clone());
    move |_, _| {
        let (clock, api) = (clock.clone(), api.clone());
        Box::pin(async move {
            let (ok, limits) = api.borrow_mut().arrive(clock.now());
            let latency = api.borrow().latency;
            clock.sleep(latency).await;
            if ok {
                Ok(Reply {
                    limits,
                    usage: Usage::default(),
                })
            } else {
                let wait = limits.requests.reset_in.map(|_| MS(1000));
                Err(Failure {
                    limits: Some(Box::new(limits)),
                    server_wait: wait,
                    ..Failure::http(429, "rate limited")
                })
            }
        })
    }
}

#[derive(Default)]
struct Starts(Vec<(Duration, usize)>, Vec<usize>);

impl<V> Observer<V> for Starts {
    fn event(&mut self, e: &Event) {
        if let Event::Start { at, index, .. } = e {
            self.0.push((*at, *index));
        }
    }
    fn progress(&mut self, p: &edgebatch::core::executor::Progress) {
        self.1.push(p.limit);
    }
}

struct Run<V> {
    results: Vec<ItemResult<V>>,
    starts: Starts,
}

fn run<V: 'static, F, Fut>(
    clock: &VirtualClock,
    config: &Config,
    pacing: &PacingConfig,
    n: usize,
    task: F,
    cost: &dyn Fn(usize) -> Cost,
    feedback: &dyn Fn(&V) -> Feedback,
) -> Run<V>
where
    F: Fn(usize, u32) -> Fut,
    Fut: Future<Output = Result<V, Failure>> + 'static,
{
    let pacer = RefCell::new(Pacer::new(pacing, config.concurrency, clock.now()));
    let mut starts = Starts::default();
    let cost = |i| Ok::<_, String>(cost(i));
    let p = (cost, feedback);
    let results = clock.block_on(Executor::new(config, clock, &pacer).seed(3).run(
        n,
        task,
        &p,
        &mut starts,
    ));
    Run { results, starts }
}

fn reply_feedback(r: &Reply) -> Feedback {
    Feedback {
        usage: Some(r.usage),
        limits: Some(r.limits),
    }
}

#[test]
fn headers_alone_keep_the_batch_out_of_429s_after_the_first_reply() {
    for (per_minute, concurrency) in [(60, 8), (120, 20), (30, 4)] {
        let clock = VirtualClock::new();
        let api = Rc::new(RefCell::new(Upstream::new(per_minute, MS(200))));
        // Use up most of the budget first, as another client would have.
        api.borrow_mut().tokens = 2.0;
        let config = Config {
            concurrency,
            max_retries: 10,
            ..Config::default()
        };
        let r = run(
            &clock,
            &config,
            &PacingConfig::default(),
            40,
            api_task(&clock, &api),
            &|_| Cost::default(),
            &reply_feedback,
        );
        assert!(
            r.results.iter().all(|r| r.outcome.is_ok()),
            "every item succeeds"
        );
        let first_reply = MS(200);
        let late: Vec<_> = api
            .borrow()
            .rejected
            .iter()
            .filter(|t| **t > first_reply)
            .copied()
            .collect();
        assert!(
            late.is_empty(),
            "{per_minute}/min: 429s after the first reply at {late:?}"
        );
        // And it is not needlessly slow: 38 requests at per_minute/60 per second, plus slack.
        let bound = Duration::from_secs_f64(38.0 * 60.0 / per_minute as f64);
        assert!(
            clock.now() <= bound + bound / 10 + MS(2000),
            "{per_minute}/min took {:?}, bound {bound:?}",
            clock.now()
        );
    }
}

#[test]
fn without_pacing_the_same_batch_hammers_the_api() {
    // The contrast for the test above: the pacer is what keeps the 429s away.
    let clock = VirtualClock::new();
    let api = Rc::new(RefCell::new(Upstream::new(60, MS(200))));
    api.borrow_mut().tokens = 2.0;
    let config = Config {
        concurrency: 8,
        max_retries: 10,
        ..Config::default()
    };
    run(
        &clock,
        &config,
        &PacingConfig::off(),
        40,
        api_task(&clock, &api),
        &|_| Cost::default(),
        &reply_feedback,
    );
    assert!(
        api.borrow().rejected.len() > 20,
        "only {} 429s",
        api.borrow().rejected.len()
    );
}

#[test]
fn a_429_pauses_all_dispatch_and_the_item_keeps_its_place() {
    let clock = VirtualClock::new();
    let c = clock.clone();
    let task = move |i: usize, a: u32| {
        let c = c.clone();
        async move {
            c.sleep(MS(100)).await;
            if i == 0 && a == 1 {
                return Err(Failure {
                    server_wait: Some(MS(3000)),
                    ..Failure::http(429, "slow")
                });
            }
            Ok(i)
        }
    };
    let config = Config {
        concurrency: 2,
        ..Config::default()
    };
    let pacing = PacingConfig {
        adaptive: false,
        ..PacingConfig::default()
    };
    let r = run(
        &clock,
        &config,
        &pacing,
        6,
        task,
        &|_| Cost::default(),
        &|_: &usize| Feedback::default(),
    );
    assert!(r.results.iter().all(|r| r.outcome.is_ok()));
    // Items 0 and 1 at 0; item 2 at 100 ms (item 1's slot); the 429 at 100 ms pauses until
    // 3.1 s, when item 0's retry goes first.
    let starts: Vec<(u128, usize)> = r
        .starts
        .0
        .iter()
        .map(|(t, i)| (t.as_millis(), *i))
        .collect();
    assert_eq!(
        &starts[..4],
        &[(0, 0), (0, 1), (3100, 0), (3100, 2)],
        "{starts:?}"
    );
}

#[test]
fn output_budget_reserves_max_tokens_and_refunds_actual_usage() {
    let clock = VirtualClock::new();
    let c = clock.clone();
    let task = move |_: usize, _: u32| {
        let c = c.clone();
        async move {
            c.sleep(MS(100)).await;
            Ok::<_, Failure>(Usage {
                input_tokens: 10,
                output_tokens: 250,
            })
        }
    };
    let config = Config {
        concurrency: 10,
        ..Config::default()
    };
    let pacing = PacingConfig {
        output_tokens_per_minute: Some(6000),
        ..PacingConfig::off()
    };
    let cost = |_| Cost {
        input_tokens: 10,
        output_tokens: 1000,
    };
    let feedback = |u: &Usage| Feedback {
        usage: Some(*u),
        limits: None,
    };
    let r = run(&clock, &config, &pacing, 12, task, &cost, &feedback);
    assert!(r.results.iter().all(|r| r.outcome.is_ok()));
    // 6 fit the 6000 budget at once; at 100 ms each returns 750: 4500 back, 4 more start
    // (4000, at 100 ms); then the refunds from those cover the last 2 at 200 ms.
    let at: Vec<u128> = r.starts.0.iter().map(|(t, _)| t.as_millis()).collect();
    assert_eq!(at, vec![0, 0, 0, 0, 0, 0, 100, 100, 100, 100, 200, 200]);
    // Without refunds, 12 x 1000 at 100/s would need 60 s; with them it took 300 ms.
    assert_eq!(clock.now(), MS(300));
}

#[test]
fn an_item_no_budget_can_hold_fails_at_once_as_invalid() {
    let clock = VirtualClock::new();
    let c = clock.clone();
    let task = move |i: usize, _: u32| {
        let c = c.clone();
        async move {
            c.sleep(MS(100)).await;
            Ok::<_, Failure>(i)
        }
    };
    let pacing = PacingConfig {
        input_tokens_per_minute: Some(1000),
        ..PacingConfig::off()
    };
    let cost = |i| Cost {
        input_tokens: if i == 1 { 5000 } else { 100 },
        output_tokens: 0,
    };
    let r = run(
        &clock,
        &Config::default(),
        &pacing,
        3,
        task,
        &cost,
        &|_: &usize| Feedback::default(),
    );
    let e = r.results[1].outcome.as_ref().unwrap_err();
    assert_eq!(
        (e.kind, r.results[1].attempts, r.results[1].elapsed),
        (ErrorKind::Invalid, 0, MS(0))
    );
    assert!(e.message.contains("5000 input tokens"), "{}", e.message);
    assert!(r.results[0].outcome.is_ok() && r.results[2].outcome.is_ok());
}

#[test]
fn a_storm_at_every_load_leaves_the_configured_concurrency() {
    // Every attempt in the first second gets 529 overloaded, however many are in flight: a
    // storm that sending less would not end. The limit must be 16 again as soon as successes
    // come (AIMD halved it to 1 and crawled back).
    let clock = VirtualClock::new();
    let in_flight = Rc::new(Cell::new(0usize));
    let peak_after_storm = Rc::new(Cell::new(0usize));
    let (c, f, p) = (clock.clone(), in_flight.clone(), peak_after_storm.clone());
    let task = move |_: usize, _: u32| {
        let (c, f, p) = (c.clone(), f.clone(), p.clone());
        async move {
            f.set(f.get() + 1);
            let start = c.now();
            if start >= MS(1100) && start < MS(1500) {
                p.set(p.get().max(f.get()));
            }
            c.sleep(MS(100)).await;
            f.set(f.get() - 1);
            if start < MS(1000) {
                return Err(Failure::http(529, "overloaded"));
            }
            Ok(())
        }
    };
    let config = Config {
        concurrency: 16,
        max_retries: 30,
        ..Config::default()
    };
    let pacing = PacingConfig {
        breaker_failures: 0,
        ..PacingConfig::default()
    };
    let r = run(
        &clock,
        &config,
        &pacing,
        200,
        task,
        &|_| Cost::default(),
        &|_: &()| Feedback::default(),
    );
    assert!(r.results.iter().all(|r| r.outcome.is_ok()));
    assert_eq!(
        peak_after_storm.get(),
        16,
        "right after the storm, all 16 in flight"
    );
    assert_eq!(*r.starts.1.last().unwrap(), 16);
}

#[test]
fn breaker_stops_sending_then_probes_and_items_wait_instead_of_failing() {
    let clock = VirtualClock::new();
    let sent = Rc::new(RefCell::new(Vec::new()));
    let (c, s) = (clock.clone(), sent.clone());
    // The service is down for the first 3 s.
    let task = move |i: usize, _: u32| {
        let (c, s) = (c.clone(), s.clone());
        async move {
            s.borrow_mut().push(c.now());
            c.sleep(MS(50)).await;
            if c.now() < MS(6000) {
                return Err(Failure::network("connection refused"));
            }
            Ok(i)
        }
    };
    let config = Config {
        concurrency: 2,
        max_retries: 20,
        ..Config::default()
    };
    let pacing = PacingConfig {
        adaptive: false,
        breaker_failures: 3,
        breaker_cooldown: MS(1000),
        ..PacingConfig::default()
    };
    let r = run(
        &clock,
        &config,
        &pacing,
        4,
        task,
        &|_| Cost::default(),
        &|_: &usize| Feedback::default(),
    );
    assert!(
        r.results.iter().all(|r| r.outcome.is_ok()),
        "items waited out the outage"
    );
    let sent = sent.borrow();
    // Failures for OUTAGE (2 s) open it; then only probes go, one per cool-down (1 s, then
    // 2 s: doubled after a failed probe), until one succeeds after the outage.
    let open: Vec<u128> = sent
        .iter()
        .filter(|t| **t >= MS(2500) && **t < MS(6000))
        .map(|t| t.as_millis())
        .collect();
    assert!(open.len() <= 2, "only probes while open: {sent:?}");
    let gaps = sent.windows(2).filter(|w| w[1] - w[0] >= MS(1000)).count();
    assert!(gaps >= 2, "cool-down gaps: {sent:?}");
}

#[test]
fn a_probe_that_fails_for_its_own_reasons_does_not_block_the_batch() {
    // The breaker opens on 500s; its probe then fails with the task's own (final) error. That
    // says nothing about the outage: the next item must still be sent (it used to hang here).
    let clock = VirtualClock::new();
    let calls = Rc::new(Cell::new(0u32));
    let (c, n) = (clock.clone(), calls.clone());
    let task = move |i: usize, _: u32| {
        let (c, n) = (c.clone(), n.clone());
        async move {
            n.set(n.get() + 1);
            c.sleep(MS(5)).await;
            match n.get() {
                1..=3 => Err(Failure::http(500, "down")),
                4 => Err(Failure::new(ErrorKind::Task, "bug in the task")),
                _ => Ok(i),
            }
        }
    };
    let config = Config {
        concurrency: 1,
        max_retries: 10,
        ..Config::default()
    };
    let pacing = PacingConfig {
        adaptive: false,
        breaker_failures: 3,
        breaker_cooldown: MS(100),
        ..PacingConfig::default()
    };
    let r = run(
        &clock,
        &config,
        &pacing,
        2,
        task,
        &|_| Cost::default(),
        &|_: &usize| Feedback::default(),
    );
    // Items interleave during backoffs: whichever met the task error failed, the other went
    // out after the neutral probe and succeeded.
    let kinds: Vec<Option<ErrorKind>> = r
        .results
        .iter()
        .map(|r| r.outcome.as_ref().err().map(|e| e.kind))
        .collect();
    assert!(
        kinds.contains(&Some(ErrorKind::Task)) && kinds.contains(&None),
        "{kinds:?}"
    );
    assert_eq!(calls.get(), 5);
}

#[test]
fn an_open_breaker_lets_exactly_one_probe_go_per_cool_down() {
    let clock = VirtualClock::new();
    let sent = Rc::new(RefCell::new(Vec::new()));
    let (c, s) = (clock.clone(), sent.clone());
    // Down for the first 4 s; every attempt takes 50 ms.
    let task = move |i: usize, _: u32| {
        let (c, s) = (c.clone(), s.clone());
        async move {
            s.borrow_mut().push(c.now().as_millis());
            c.sleep(MS(50)).await;
            if c.now() < MS(4000) {
                return Err(Failure::network("connection refused"));
            }
            Ok(i)
        }
    };
    let config = Config {
        concurrency: 4,
        max_retries: 20,
        ..Config::default()
    };
    let pacing = PacingConfig {
        adaptive: false,
        breaker_failures: 3,
        breaker_cooldown: MS(1000),
        ..PacingConfig::default()
    };
    let r = run(
        &clock,
        &config,
        &pacing,
        4,
        task,
        &|_| Cost::default(),
        &|_: &usize| Feedback::default(),
    );
    assert!(r.results.iter().all(|r| r.outcome.is_ok()));
    // Failures for 2 s (OUTAGE), the retries spread by their backoff: the failure of the
    // attempt sent at 2239 ms (at 2289 ms) opens it for the 1 s cool-down. One probe at
    // 3289 ms fails: 2 s this time. The probe at 5339 ms succeeds and closes it; the others go
    // when their own backoff is over (two were due long ago, one at 6209 ms).
    let sent = sent.borrow();
    let open_at = sent
        .iter()
        .position(|t| *t == 2239)
        .expect("the last attempt before")
        + 1;
    assert_eq!(&sent[open_at..open_at + 2], &[3289, 5339], "{sent:?}");
    assert!(sent[open_at + 2..].iter().all(|t| *t >= 5389), "{sent:?}");
    assert!(
        sent[..open_at].windows(2).all(|w| w[1] - w[0] < 1000),
        "no pause before the outage had lasted 2 s: {sent:?}"
    );
}

#[test]
fn a_batch_finds_the_probe_held_by_another_batch_on_the_same_pacer_and_still_finishes() {
    let clock = VirtualClock::new();
    let pacing = PacingConfig {
        adaptive: false,
        breaker_failures: 1,
        breaker_cooldown: MS(100),
        ..PacingConfig::default()
    };
    let pacer = RefCell::new(Pacer::new(&pacing, 1, clock.now()));
    // An outage seen before the batches start (an attempt sent at 0 failed at 2 s, the
    // breaker's OUTAGE): the breaker is open until 2.1 s.
    let t = pacer.borrow_mut().start(&Cost::default(), MS(0));
    clock.advance(MS(2000));
    let down = Failure::http(500, "down");
    pacer.borrow_mut().observe(&Observation {
        cost: &Cost::default(),
        ticket: &t,
        started: MS(0),
        ended: MS(2000),
        in_flight_at_start: 1,
        outcome: Observed::Failure {
            failure: &down,
            class: FailureClass::of(&down),
            pause: MS(0),
        },
    });
    let c = clock.clone();
    let task = move |i: usize, _: u32| {
        let c = c.clone();
        async move {
            c.sleep(MS(50)).await;
            Ok::<_, Failure>(i)
        }
    };
    let config = Config {
        concurrency: 1,
        ..Config::default()
    };
    let paced = ();
    let cancel = CancelToken::new();
    let batch = |seed| {
        Executor::new(&config, &clock, &pacer)
            .cancel_on(&cancel)
            .seed(seed)
    };
    let (mut seen_a, mut seen_b) = (Starts::default(), Starts::default());
    type Batch<'a> = Pin<Box<dyn Future<Output = Vec<ItemResult<usize>>> + 'a>>;
    // Polled only when woken (unlike `join`): a batch left waiting with nothing to wake it
    // would hang here.
    let batches: FuturesUnordered<Batch> = [
        Box::pin(batch(1).run(1, &task, &paced, &mut seen_a)) as Batch,
        Box::pin(batch(2).run(1, &task, &paced, &mut seen_b)),
    ]
    .into_iter()
    .collect();
    let results: Vec<Vec<ItemResult<usize>>> = clock.block_on(batches.collect());
    assert!(results.iter().flatten().all(|r| r.outcome.is_ok()));
    // One batch sent the probe at 2.1 s; the pacer's one slot (concurrency bounds every
    // batch on a pacer) lets the other go when the probe's reply has closed the breaker.
    assert_eq!(clock.now(), MS(2200));
    let mut starts = [seen_a.0[0].0, seen_b.0[0].0];
    starts.sort();
    assert_eq!(
        starts,
        [MS(100), MS(150)],
        "since the batches' start at 2 s"
    );
}

#[test]
fn a_refund_that_shortens_the_wait_wakes_the_queue_earlier() {
    let clock = VirtualClock::new();
    let c = clock.clone();
    // Item 0 replies at 100 ms having used 1000 of its 3000; item 1 takes 40 s.
    let task = move |i: usize, _: u32| {
        let c = c.clone();
        async move {
            c.sleep(MS(if i == 0 { 100 } else { 40_000 })).await;
            Ok::<_, Failure>(Usage {
                input_tokens: 0,
                output_tokens: 1000,
            })
        }
    };
    let config = Config {
        concurrency: 3,
        timeout: None,
        ..Config::default()
    };
    let pacing = PacingConfig {
        output_tokens_per_minute: Some(6000),
        ..PacingConfig::off()
    };
    let cost = |_| Cost {
        input_tokens: 0,
        output_tokens: 3000,
    };
    let feedback = |u: &Usage| Feedback {
        usage: Some(*u),
        limits: None,
    };
    let r = run(&clock, &config, &pacing, 3, task, &cost, &feedback);
    assert!(r.results.iter().all(|r| r.outcome.is_ok()));
    // At 0 ms item 2 must wait 30 s for 3000 tokens at 100/s. At 100 ms the refund leaves
    // 2010: 990 short, 9.9 s more.
    let at: Vec<u128> = r.starts.0.iter().map(|(t, _)| t.as_millis()).collect();
    assert_eq!(at, vec![0, 0, 10_000]);
}
