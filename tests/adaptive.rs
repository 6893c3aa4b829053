//! The concurrency controller alone, on virtual time, against modelled servers: random
//! (load-independent) failures, a server with a capacity that queues then sheds, and both
//! mixed. A discrete-event model: items wait in a ready queue, start while fewer than the
//! controller's limit are in flight, fail or succeed after the server's latency, and retry
//! after exponential backoff with full jitter. Figures: `cargo test --test adaptive -- --nocapture`.
#![cfg(not(target_arch = "wasm32"))]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use edgebatch::core::adaptive::{Controller, Observation, Outcome};
use proptest::prelude::*;

/// The modelled server.
#[derive(Clone, Copy, Debug)]
struct Server {
    /// Load-independent failure probability.
    p: f64,
    /// Random failures come back in a few ms instead of after the full latency.
    fast_faults: bool,
    /// (capacity, queue): served at full speed, served slower, the rest shed in 5 ms.
    capacity: Option<(usize, usize)>,
    /// A served reply's time on the wire: the server's place is free this long before the
    /// client sees the reply (real sockets; 0 in the pure model).
    transit_ms: f64,
}

#[derive(Debug, Default)]
struct Figures {
    /// When 90% of the items had succeeded (ms).
    t90_ms: f64,
    requests: usize,
    ok: usize,
    /// Time-weighted mean of the limit over the second half of the run.
    late_mean_limit: f64,
    /// Share of the second half spent below `floor`.
    below_floor: f64,
}

/// A uniform draw for (seed, item, attempt, which): the same attempt meets the same fate in
/// the adaptive and the fixed run, so their difference is the controller's, not luck's.
fn draw(seed: u64, item: usize, attempt: u32, which: u64) -> f64 {
    let mut r = Rng(seed
        ^ (item as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)
        ^ (u64::from(attempt) << 40)
        ^ (which << 56));
    r.f64()
}

struct Rng(u64);
impl Rng {
    fn f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

const SERVICE_MS: f64 = 300.0;
const JITTER_MS: f64 = 100.0;
const SHED_MS: f64 = 5.0;
const MAX_RETRIES: u32 = 12;

enum Event {
    /// An attempt ends: item, level, start, failed.
    End(usize, usize, u64, bool),
    /// An item's backoff is over.
    Ready(usize),
    /// A served reply left the server (its place is free; the client has not seen it yet).
    Free,
}

fn run(n: usize, max: usize, adaptive: bool, server: Server, seed: u64, floor: usize) -> Figures {
    let mut ctl = Controller::new(max, adaptive);
    let mut ready: VecDeque<usize> = (0..n).collect();
    let mut attempts = vec![0u32; n];
    let mut events: BinaryHeap<Reverse<(u64, u64, usize)>> = BinaryHeap::new();
    let mut payloads: Vec<Option<Event>> = Vec::new();
    let (mut in_flight, mut served, mut done, mut now) = (0usize, 0usize, 0usize, 0u64);
    let mut f = Figures::default();
    let mut limits: Vec<(u64, usize)> = vec![(0, ctl.limit())];
    fn push(
        events: &mut BinaryHeap<Reverse<(u64, u64, usize)>>,
        payloads: &mut Vec<Option<Event>>,
        at: u64,
        e: Event,
    ) {
        payloads.push(Some(e));
        events.push(Reverse((at, payloads.len() as u64, payloads.len() - 1)));
    }
    let us = |ms: f64| (ms * 1000.0) as u64;
    loop {
        while in_flight < ctl.limit() {
            let Some(item) = ready.pop_front() else { break };
            in_flight += 1;
            f.requests += 1;
            attempts[item] += 1;
            ctl.sent(in_flight);
            let a = attempts[item];
            let service = SERVICE_MS + draw(seed, item, a, 0) * JITTER_MS;
            let (failed, is_served, ms) = if draw(seed, item, a, 1) < server.p {
                (
                    true,
                    false,
                    if server.fast_faults { SHED_MS } else { service },
                )
            } else {
                match server.capacity {
                    Some((c, q)) if served + 1 > c + q => (true, false, SHED_MS),
                    Some((c, _)) => (
                        false,
                        true,
                        service * ((served + 1) as f64 / c as f64).max(1.0),
                    ),
                    None => (false, false, service),
                }
            };
            served += usize::from(is_served);
            if is_served {
                let free = (ms - server.transit_ms).max(0.0);
                push(&mut events, &mut payloads, now + us(free), Event::Free);
            }
            push(
                &mut events,
                &mut payloads,
                now + us(ms),
                Event::End(item, in_flight, now, failed),
            );
        }
        if limits.last().map(|l| l.1) != Some(ctl.limit()) {
            if std::env::var("TRACE").is_ok() {
                eprintln!(
                    "{:>8.1} ms limit {} {:?}",
                    now as f64 / 1000.0,
                    ctl.limit(),
                    ctl.reason()
                );
            }
            limits.push((now, ctl.limit()));
        }
        let Some(Reverse((at, _, id))) = events.pop() else {
            break;
        };
        now = at;
        match payloads[id].take().expect("each event once") {
            Event::Ready(item) => ready.push_back(item),
            Event::Free => served -= 1,
            Event::End(item, level, started, failed) => {
                in_flight -= 1;
                ctl.observe(&Observation {
                    level,
                    started: Duration::from_micros(started),
                    ended: Duration::from_micros(now),
                    outcome: if failed {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    },
                });
                if !failed {
                    done += 1;
                    f.ok += 1;
                    if done * 10 == n * 9 {
                        f.t90_ms = now as f64 / 1000.0;
                    }
                } else if attempts[item] <= MAX_RETRIES {
                    let cap = (100.0 * 2f64.powi(attempts[item] as i32 - 1)).min(5000.0);
                    push(
                        &mut events,
                        &mut payloads,
                        now + us(draw(seed, item, attempts[item], 2) * cap),
                        Event::Ready(item),
                    );
                } else {
                    done += 1;
                }
            }
        }
    }
    // Time-weighted limit over the second half.
    let (half, end) = (now / 2, now);
    let (mut sum, mut below) = (0.0, 0.0);
    for (i, &(t, l)) in limits.iter().enumerate() {
        let next = limits.get(i + 1).map_or(end, |x| x.0);
        let (a, b) = (t.max(half), next.min(end));
        if b > a {
            sum += l as f64 * (b - a) as f64;
            if l < floor {
                below += (b - a) as f64;
            }
        }
    }
    let span = (end - half).max(1) as f64;
    f.late_mean_limit = sum / span;
    f.below_floor = below / span;
    f
}

const RANDOM: fn(f64, bool) -> Server = |p, fast_faults| Server {
    p,
    fast_faults,
    capacity: None,
    transit_ms: 0.0,
};

const CAPACITY: [(usize, usize, usize, f64); 4] = [
    (8, 4, 32, 0.0),
    (4, 2, 16, 0.0),
    (8, 4, 32, 0.1),
    (16, 0, 48, 0.1),
];

#[test]
fn trace() {
    if let Ok(i) = std::env::var("TRACE").map(|v| v.parse::<usize>().unwrap_or(0)) {
        if i >= CAPACITY.len() {
            run(300, 10, true, RANDOM(0.4, true), 1, 0);
            return;
        }
        let (c, q, max, p) = CAPACITY[i];
        let s = Server {
            p,
            fast_faults: false,
            capacity: Some((c, q)),
            transit_ms: std::env::var("TRANSIT").map_or(0.0, |v| v.parse().unwrap_or(0.0)),
        };
        run(
            240,
            max,
            true,
            s,
            std::env::var("SEED").map_or(1, |v| v.parse().unwrap_or(1)),
            c,
        );
    }
}

#[test]
fn figures() {
    for (p, fast) in [
        (0.1, false),
        (0.2, false),
        (0.4, false),
        (0.2, true),
        (0.4, true),
    ] {
        let a = run(300, 10, true, RANDOM(p, fast), 1, 0);
        let x = run(300, 10, false, RANDOM(p, fast), 1, 0);
        eprintln!(
            "random p={p} fast={fast}: adaptive/fixed throughput {:.3} (t90 {:.0} / {:.0} ms), req/item {:.2} / {:.2}",
            x.t90_ms / a.t90_ms, a.t90_ms, x.t90_ms, a.requests as f64 / 300.0, x.requests as f64 / 300.0
        );
    }
    for (c, q, max, p) in CAPACITY {
        let s = Server {
            p,
            fast_faults: false,
            capacity: Some((c, q)),
            transit_ms: 0.0,
        };
        let a = run(240, max, true, s, 1, c);
        let x = run(240, max, false, s, 1, c);
        eprintln!(
            "capacity {c}+{q} at {max}, p={p}: late mean limit {:.1}, below capacity {:.1}% of the time, req/item {:.3} (fixed {:.3}, {} of 240 ok), t90 {:.0} ms (fixed {:.0})",
            a.late_mean_limit, a.below_floor * 100.0, a.requests as f64 / 240.0, x.requests as f64 / 240.0, x.ok, a.t90_ms, x.t90_ms
        );
    }
}

/// The proptest seed of this file's properties: PROPTEST_RNG_SEED when set, else a fixed one.
fn fixed_seed() -> proptest::test_runner::RngSeed {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse().ok());
    proptest::test_runner::RngSeed::Fixed(seed.unwrap_or(0x5eed_2026))
}

proptest! {
    // Throughput properties on simulated time: the same cases every run (a fixed seed), so
    // `make test` cannot pass or fail by luck; PROPTEST_RNG_SEED=<n> explores other cases.
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, rng_seed: fixed_seed(), ..ProptestConfig::default() })]

    #[test]
    fn random_failures_keep_nine_tenths_of_the_fixed_throughput(
        seed in any::<u64>(),
        p in prop::sample::select(vec![0.1, 0.2, 0.4]),
        fast in any::<bool>(),
        max in 4usize..=24,
    ) {
        let a = run(300, max, true, RANDOM(p, fast), seed, 0);
        let x = run(300, max, false, RANDOM(p, fast), seed, 0);
        // Random failures answered in a few ms (an LLM's 529 comes long before a reply would)
        // look like shedding to the fast-rejection rule: they must cost no more.
        let bound = 0.9;
        prop_assert!(x.t90_ms / a.t90_ms >= bound, "adaptive {} ms vs fixed {} ms", a.t90_ms, x.t90_ms);
    }

    #[test]
    fn a_capacity_settles_between_capacity_and_queue_with_few_extra_requests(
        seed in any::<u64>(),
        c in 4usize..=16,
        q in 0usize..=8,
        extra in 4usize..=24,
        transit_ms in prop::sample::select(vec![0.0, 10.0]),
    ) {
        let max = c + q + extra;
        let s = Server { p: 0.0, fast_faults: false, capacity: Some((c, q)), transit_ms };
        let a = run(240, max, true, s, seed, c);
        prop_assert_eq!(a.ok, 240);
        prop_assert!(
            a.late_mean_limit >= c as f64 && a.late_mean_limit <= (c + q) as f64 + 0.5,
            "mean limit {} outside [{}, {}]", a.late_mean_limit, c, c + q
        );
        let per_item = a.requests as f64 / 240.0;
        prop_assert!(per_item <= 1.15, "{} requests per item", per_item);
    }

    #[test]
    fn capacity_mixed_with_random_failures_stays_at_or_above_capacity(
        seed in any::<u64>(),
        c in 4usize..=16,
        q in 0usize..=8,
        extra in 4usize..=24,
        p in prop::sample::select(vec![0.05, 0.1, 0.2]),
        transit_ms in prop::sample::select(vec![0.0, 10.0]),
    ) {
        let s = Server { p, fast_faults: false, capacity: Some((c, q)), transit_ms };
        let a = run(240, c + q + extra, true, s, seed, c);
        prop_assert!(a.late_mean_limit >= c as f64, "mean limit {} below {}", a.late_mean_limit, c);
        prop_assert!(a.below_floor <= 0.05, "below capacity {:.1}% of the time", a.below_floor * 100.0);
    }
}
