//! Prompt-cache-aware starts (`Executor::cache_groups`) on the virtual clock, against the
//! simulator's cache model: the primer first, the rest of its group only once its response
//! began, one cache write and N-1 reads; a failed primer hands over; items without a group
//! are not held back.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use edgebatch::core::cache_groups::{Began, CacheGroups};
use edgebatch::core::clock::VirtualClock;
use edgebatch::core::executor::{Config, Event, Executor};
use edgebatch::core::pacer::Pacer;
use edgebatch::providers::http::Json;
use edgebatch::providers::{Provider, ProviderKind};
use edgebatch::{Clock, Failure};
use edgebatch_sim::{Action, Config as SimConfig, Latency, Request, Simulator};
use serde_json::{json, Value};
use support::Recorder;

const GROUPED: usize = 8;
const PLAIN: usize = 4;

/// 8 requests sharing a 3,000-token system prompt marked for caching, then 4 without.
fn bodies() -> Vec<Value> {
    let system = "x".repeat(12_000);
    let mut out: Vec<Value> = (0..GROUPED)
        .map(|i| {
            json!({ "model": "claude-sonnet-4-5", "max_tokens": 40, "stream": true,
                "system": [{ "type": "text", "text": system, "cache_control": { "type": "ephemeral" } }],
                "messages": [{ "role": "user", "content": format!("question {i}") }] })
        })
        .collect();
    out.extend((0..PLAIN).map(|i| {
        json!({ "model": "claude-sonnet-4-5", "max_tokens": 40, "stream": true,
            "messages": [{ "role": "user", "content": format!("plain {i}") }] })
    }));
    out
}

/// The library's JSON view over serde_json (its own impl is for its unit tests only).
#[derive(Clone)]
struct J(Value);

impl Json for J {
    fn field(&self, key: &str) -> Option<Self> {
        self.0.get(key).filter(|v| !v.is_null()).cloned().map(J)
    }
    fn text(&self) -> Option<String> {
        self.0.as_str().map(str::to_owned)
    }
    fn number(&self) -> Option<f64> {
        self.0.as_f64()
    }
    fn boolean(&self) -> Option<bool> {
        self.0.as_bool()
    }
    fn items(&self) -> Vec<Self> {
        self.0
            .as_array()
            .into_iter()
            .flatten()
            .cloned()
            .map(J)
            .collect()
    }
}

struct Run {
    /// Per item, whether it succeeded.
    ok: Vec<bool>,
    /// (index, attempt, start ms)
    starts: Vec<(usize, u32, u64)>,
    /// When each item's response began (its last attempt's), ms.
    began: Vec<Option<u64>>,
    /// (index, attempt) of the attempts that started as their group's primer (given a `Began`).
    primed: Vec<(usize, u32)>,
    writes: u64,
    reads: u64,
}

/// Runs the bodies through the simulator (headers after 100 ms, then the stream over
/// 40 tokens x 10 ms), grouped by the provider's key unless `aware` is off. `fail_first`: item 0's
/// first attempt fails at 30 ms with a 529 before any response.
fn run(aware: bool, concurrency: usize, fail_first: bool) -> Run {
    run_with(aware, concurrency, fail_first, None)
}

fn run_with(aware: bool, concurrency: usize, fail_first: bool, max_attempts: Option<u64>) -> Run {
    let clock = VirtualClock::new();
    let sim = Rc::new(RefCell::new(Simulator::new(SimConfig {
        latency: Latency {
            base_ms: 100.0,
            per_output_token_ms: 10.0,
            jitter_ms: 0.0,
            chunk_ms: 5.0,
        },
        ..SimConfig::default()
    })));
    let bodies = Rc::new(bodies());
    let provider = Provider::new("anthropic", None, None, None).unwrap();
    assert_eq!(provider.kind, ProviderKind::Anthropic);
    let keys = bodies.clone();
    let groups = CacheGroups::new(move |i| provider.cache_key(&J(keys[i].clone())));
    let began = Rc::new(RefCell::new(vec![None; bodies.len()]));
    let primed = RefCell::new(Vec::new());
    let task = |i: usize, attempt: u32| {
        let (c, sim, bodies, began) = (clock.clone(), sim.clone(), bodies.clone(), began.clone());
        let signal: Option<Began> = groups.began(i);
        if signal.is_some() {
            primed.borrow_mut().push((i, attempt));
        }
        async move {
            if fail_first && i == 0 && attempt == 1 {
                c.sleep(Duration::from_millis(30)).await;
                return Err(Failure::http(529, "Overloaded"));
            }
            let headers = [("x-api-key", "k"), ("anthropic-version", "2023-06-01")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()));
            let req = Request {
                method: "POST",
                path: "/v1/messages",
                headers: &headers,
                body: Some(&bodies[i]),
            };
            let now = c.now().as_secs_f64() * 1000.0;
            let d = sim.borrow_mut().handle(&req, now);
            assert_eq!(d.status, 200, "{}", d.body);
            c.sleep(Duration::from_secs_f64(d.delay_ms / 1000.0)).await;
            began.borrow_mut()[i] = Some(c.now().as_millis() as u64);
            if let Some(signal) = signal {
                signal.now();
            }
            let Action::Stream { event_ms } = d.action else {
                panic!("a stream")
            };
            let events = d.body.matches("\n\n").count();
            c.sleep(Duration::from_secs_f64(
                event_ms * (events - 1) as f64 / 1000.0,
            ))
            .await;
            sim.borrow_mut()
                .finish(d.id, c.now().as_secs_f64() * 1000.0);
            Ok::<_, Failure>(())
        }
    };
    assert!(Config::default().cache_aware, "on by default");
    let config = Config {
        concurrency,
        cache_aware: aware,
        max_attempts,
        ..Config::default()
    };
    let pacer = Pacer::unpaced(concurrency);
    let mut rec = Recorder::default();
    // `cacheAware: false` turns the groups off.
    let executor = Executor::new(&config, &clock, &pacer).cache_groups(&groups);
    let results = clock.block_on(executor.run(bodies.len(), task, &(), &mut rec));
    let ok = results.iter().map(|r| r.outcome.is_ok()).collect();
    let starts = rec
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Start { index, attempt, at } => Some((*index, *attempt, at.as_millis() as u64)),
            _ => None,
        })
        .collect();
    let stats = sim.borrow().stats();
    let began = began.borrow().clone();
    Run {
        ok,
        starts,
        began,
        primed: primed.into_inner(),
        writes: stats.cache_write_tokens,
        reads: stats.cache_read_tokens,
    }
}

fn first_start(r: &Run, index: usize) -> u64 {
    r.starts.iter().find(|s| s.0 == index).expect("started").2
}

#[test]
fn the_primer_first_the_rest_after_its_first_byte_one_write() {
    let r = run(true, 16, false);
    assert!(r.ok.iter().all(|ok| *ok));
    let primed = r.began[0].expect("the primer's response began");
    assert_eq!(primed, 100);
    assert_eq!(first_start(&r, 0), 0);
    for i in 1..GROUPED {
        assert_eq!(
            first_start(&r, i),
            primed,
            "item {i} starts once the primer began"
        );
    }
    // Items without a cache mark are not held back.
    for i in GROUPED..GROUPED + PLAIN {
        assert_eq!(first_start(&r, i), 0, "item {i}");
    }
    // The simulator saw one write and N-1 reads of the 3,000-token prefix.
    assert_eq!((r.writes, r.reads), (3000, 3000 * (GROUPED as u64 - 1)));
    // Only the primer's attempt was told it primes (a task streams that one).
    assert_eq!(r.primed, [(0, 1)]);
    // Fanned out without grouping, every request of the group writes.
    let naive = run(false, 16, false);
    assert!((0..GROUPED).all(|i| first_start(&naive, i) == 0));
    assert_eq!((naive.writes, naive.reads), (3000 * GROUPED as u64, 0));
    assert!(naive.primed.is_empty(), "no groups, no primer");
}

#[test]
fn held_items_take_no_slot_and_a_failed_primer_hands_over() {
    // Concurrency 3: the primer and two plain items at once; the held items wait in no slot.
    let r = run(true, 3, true);
    let order: Vec<usize> = r.starts.iter().filter(|s| s.2 == 0).map(|s| s.0).collect();
    assert_eq!(order, [0, GROUPED, GROUPED + 1]);
    // Item 0 failed at 30 ms: item 1 became the primer then, and the others waited for it.
    assert_eq!(first_start(&r, 1), 30);
    let primed = r.began[1].expect("item 1 primed");
    for i in 2..GROUPED {
        assert!(
            first_start(&r, i) >= primed,
            "item {i} before its primer began"
        );
    }
    let retry = r
        .starts
        .iter()
        .find(|s| s.0 == 0 && s.1 == 2)
        .expect("item 0 retried");
    assert!(retry.2 > 30);
    assert_eq!((r.writes, r.reads), (3000, 3000 * (GROUPED as u64 - 1)));
    // Item 0's first attempt primed, then item 1's; item 0's retry, after the group opened, not.
    assert_eq!(r.primed, [(0, 1), (1, 1)]);
}

#[test]
fn held_items_end_once_with_the_batch() {
    // 5 attempts in all: the primer and the 4 plain items start at once and spend them; the
    // held items end at once (each exactly once), and the primer's failure hands over to
    // items that have already ended without starting them.
    let r = run_with(true, 16, true, Some(5));
    let ok: Vec<usize> = (0..r.ok.len()).filter(|&i| r.ok[i]).collect();
    assert_eq!(ok, [8, 9, 10, 11]);
    assert_eq!(r.starts.len(), 5);
    assert_eq!((r.writes, r.reads), (0, 0));
}
