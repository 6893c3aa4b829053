//! The dollar ledger and `maxCostUsd` on the virtual clock: the ledger's sums against
//! hand-computed ones (cache writes and reads, the batch discount, an unknown model), the cap
//! stopping at the exact item whose attempt could pass it (every item still gets one result),
//! a retry refused by the cap, and the cap counted per call.
#![cfg(not(target_arch = "wasm32"))]

use std::cell::RefCell;
use std::time::Duration;

use edgebatch::core::backoff::{Backoff, Jitter};
use edgebatch::core::clock::{Clock, VirtualClock};
use edgebatch::core::cost::{usd, Pico, Price, Prices, Served, Tokens};
use edgebatch::core::executor::{Config, Executor, ItemResult, Pacing};
use edgebatch::core::limits::Cost;
use edgebatch::core::pacer::Pacer;
use edgebatch::options::{call_max_cost, validate_price, RawCallOptions, RawOptions, RawPrice};
use edgebatch::{ErrorKind, Failure};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// One millionth of a dollar, in pico-dollars.
const MICRO: Pico = 1_000_000;

#[test]
fn the_ledger_adds_every_kind_of_token_at_its_own_rate() {
    let prices = Prices::default();
    let haiku = prices
        .find("claude-haiku-4-5")
        .expect("in the built-in table");
    // $1 input, $5 output, $1.25 / $2 cache writes, $0.10 cache reads per MTok.
    let tokens = Tokens {
        input: 1_000,
        output: 500,
        cache_write_5m: 2_000,
        cache_write_1h: 1_000,
        cache_read: 3_000,
    };
    // 1000×1 + 500×5 + 2000×1.25 + 1000×2 + 3000×0.1 = 8,300 micro-dollars.
    let realtime = haiku.cost(&tokens, Served::Realtime);
    assert_eq!(realtime, 8_300 * MICRO);
    assert_eq!(usd(realtime), 0.0083);
    assert_eq!(haiku.cost(&tokens, Served::ProviderBatch), 4_150 * MICRO);

    // OpenAI: cache reads at $0.075 / MTok, no write premium.
    let mini = prices
        .find("gpt-4o-mini-2024-07-18")
        .expect("a dated name finds its row");
    let cached = Tokens {
        input: 86,
        output: 300,
        cache_read: 1_920,
        ..Tokens::default()
    };
    // 86×0.15 + 300×0.6 + 1920×0.075 = 12.9 + 180 + 144 = 336.9 micro-dollars.
    assert_eq!(mini.cost(&cached, Served::Realtime), 336_900_000);

    // An unknown model has no price: its results carry no `usd`.
    assert_eq!(prices.find("sim-1"), None);

    // A discount that does not divide evenly rounds to the nearest pico-dollar.
    let odd = Price {
        input: 1,
        batch_discount: 333_333,
        ..Price::default()
    };
    let one = Tokens {
        input: 1,
        ..Tokens::default()
    };
    assert_eq!(
        odd.cost(&one, Served::ProviderBatch),
        1,
        "0.666667 rounds to 1"
    );
    // The estimate of an attempt: its input at the input price, max_tokens at the output price.
    let cost = Cost {
        input_tokens: 400,
        output_tokens: 1_000,
    };
    assert_eq!(haiku.estimate(&cost), 5_400 * MICRO);
}

#[test]
fn a_price_from_the_option_is_dollars_per_mtok_with_its_defaults() {
    let raw: RawPrice = serde_json::from_value(serde_json::json!({
        "inputPerMTok": 0.15, "outputPerMTok": 0.6, "cacheReadPerMTok": 0.075, "batchDiscount": 0.5
    }))
    .unwrap();
    let price = validate_price(&raw).unwrap();
    let want = Price {
        input: 150_000,
        output: 600_000,
        cache_write_5m: 150_000,
        cache_write_1h: 150_000,
        cache_read: 75_000,
        batch_discount: 500_000,
    };
    assert_eq!(price, want);
    assert_eq!(price, Prices::default().find("gpt-4o-mini").unwrap());
    let bad = |json| {
        let raw: RawPrice = serde_json::from_value(json).unwrap();
        validate_price(&raw).unwrap_err().message
    };
    assert_eq!(
        bad(serde_json::json!({ "outputPerMTok": 1 })),
        "prices[].inputPerMTok must be a number in 0..=1000000, got undefined"
    );
    assert_eq!(
        bad(serde_json::json!({ "inputPerMTok": 1, "outputPerMTok": 1, "batchDiscount": 2 })),
        "prices[].batchDiscount must be a number in 0..=1, got 2"
    );
    let options: RawOptions =
        serde_json::from_value(serde_json::json!({ "maxCostUsd": 0.001 })).unwrap();
    assert_eq!(
        options.validate().unwrap().config.max_cost,
        Some(1_000 * MICRO)
    );
    let options: RawOptions =
        serde_json::from_value(serde_json::json!({ "maxCostUsd": "1" })).unwrap();
    assert_eq!(
        options.validate().unwrap_err().message,
        "maxCostUsd must be a number in 0..=1000000000, got \"1\""
    );
    let call: RawCallOptions =
        serde_json::from_value(serde_json::json!({ "maxCostUsd": 0.5 })).unwrap();
    assert_eq!(call_max_cost(&call).unwrap(), Some(500_000 * MICRO));
}

/// Each item's attempt is estimated at 300 micro-dollars and costs 200 (its value says).
struct Priced;

impl Pacing<Pico> for Priced {
    fn max_spend(&self, _index: usize, _cost: &Cost, _route: usize) -> Pico {
        300 * MICRO
    }
    fn spend(&self, value: &Pico) -> Pico {
        *value
    }
}

/// Runs `n` items of 100 ms each, costing 200 micro-dollars; `fail(i, attempt)` makes an
/// attempt answer 529 instead.
fn run(
    clock: &VirtualClock,
    pacer: &RefCell<Pacer>,
    config: &Config,
    n: usize,
    fail: fn(usize, u32) -> bool,
) -> (Vec<ItemResult<Pico>>, Vec<usize>) {
    let started = RefCell::new(Vec::new());
    let c = clock.clone();
    let task = |i: usize, attempt: u32| {
        started.borrow_mut().push(i);
        let sleep = c.sleep(MS(100));
        async move {
            sleep.await;
            if fail(i, attempt) {
                return Err(Failure::http(529, "overloaded"));
            }
            Ok(200 * MICRO)
        }
    };
    let results =
        clock.block_on(Executor::new(config, clock, pacer).run(n, task, &Priced, &mut ()));
    let started = started.into_inner();
    (results, started)
}

fn capped(concurrency: usize, max_usd: f64) -> Config {
    Config {
        concurrency,
        max_cost: Some(edgebatch::core::cost::pico(max_usd)),
        ..Config::default()
    }
}

#[test]
fn the_cap_stops_at_the_first_attempt_that_could_pass_it() {
    // $0.001 = 1,000 micro-dollars. One at a time: after 4 items 800 is spent and the fifth
    // (800 + 300 > 1,000) could pass it: nothing in flight, so the batch stops there.
    for concurrency in [1, 4] {
        let clock = VirtualClock::new();
        let pacer = Pacer::unpaced(concurrency);
        let (results, started) = run(&clock, &pacer, &capped(concurrency, 0.001), 10, |_, _| {
            false
        });
        assert_eq!(started, vec![0, 1, 2, 3], "concurrency {concurrency}");
        assert_eq!(results.len(), 10, "every item gets exactly one result");
        for r in &results[..4] {
            assert_eq!(r.outcome, Ok(200 * MICRO));
        }
        for r in &results[4..] {
            let e = r.outcome.as_ref().unwrap_err();
            assert_eq!(
                (e.kind, e.retryable, r.attempts),
                (ErrorKind::CostCap, false, 0)
            );
            assert_eq!(
                e.message,
                "cost cap reached: this call's maxCostUsd is $0.001, $0.0008 is spent and the \
                 next attempt could cost up to $0.0003"
            );
        }
        assert_eq!(pacer.borrow().in_flight(), 0, "every slot given back");
    }
    // Four at a time: three start (900 held), the fourth waits for them (they may cost less
    // than they hold) rather than failing, then starts once 600 is spent.
    let clock = VirtualClock::new();
    let pacer = Pacer::unpaced(4);
    let (_, started) = run(&clock, &pacer, &capped(4, 0.001), 10, |_, _| false);
    assert_eq!(started, vec![0, 1, 2, 3]);
    assert_eq!(
        clock.now(),
        MS(200),
        "the fourth waited for the first three"
    );
}

#[test]
fn a_retry_the_cap_refuses_keeps_its_last_error() {
    // Item 0 always fails (a 529 costs nothing) and retries after 1 ms, between the others;
    // after item 4, 800 is spent and its retry (+300) could pass $0.001: refused, with its
    // last error; item 5 never starts.
    let clock = VirtualClock::new();
    let pacer = Pacer::unpaced(1);
    let config = Config {
        max_retries: 10,
        backoff: Backoff::new(MS(1), MS(1), Jitter::None).unwrap(),
        ..capped(1, 0.001)
    };
    let (results, started) = run(&clock, &pacer, &config, 6, |i, _| i == 0);
    assert_eq!(started, vec![0, 1, 0, 2, 0, 3, 0, 4]);
    let e = results[0].outcome.as_ref().unwrap_err();
    assert_eq!(
        (e.kind, e.status, e.retryable),
        (ErrorKind::Http, Some(529), true)
    );
    assert_eq!(
        e.message,
        "retry refused, cost cap reached: this call's maxCostUsd is $0.001, $0.0008 is spent \
         and the next attempt could cost up to $0.0003; last error: overloaded"
    );
    assert_eq!(results[0].attempts, 4);
    let e = results[5].outcome.as_ref().unwrap_err();
    assert_eq!((e.kind, results[5].attempts), (ErrorKind::CostCap, 0));
}

#[test]
fn the_cap_is_counted_per_call() {
    // Two calls on one processor's pacer: each has its own $0.001 and stops at its own fifth
    // item; a call without a cap runs everything.
    let clock = VirtualClock::new();
    let pacer = Pacer::unpaced(2);
    for _ in 0..2 {
        let (results, started) = run(&clock, &pacer, &capped(2, 0.001), 6, |_, _| false);
        assert_eq!(started, vec![0, 1, 2, 3]);
        assert!(results[4..].iter().all(|r| r.attempts == 0));
    }
    let free = Config {
        concurrency: 2,
        ..Config::default()
    };
    let (results, _) = run(&clock, &pacer, &free, 6, |_, _| false);
    assert!(results.iter().all(|r| r.outcome.is_ok()));
    // A zero cap starts nothing.
    let (results, started) = run(&clock, &pacer, &capped(2, 0.0), 3, |_, _| false);
    assert!(started.is_empty());
    assert!(results
        .iter()
        .all(|r| r.outcome.as_ref().unwrap_err().kind == ErrorKind::CostCap));
}
