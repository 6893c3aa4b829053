//! The pacer's less-travelled branches, each pinned by a test: timeouts as congestion, the
//! combined `tokens` budget, refunds and over-budget charges, the 429 pause and its memory
//! of rejected requests across syncs, and `PacingConfig::off()`. Mutation testing found each
//! of these unpinned by the virtual-clock property tests.

use super::*;

fn usage(i: u64, o: u64) -> Feedback {
    Feedback {
        usage: Some(Usage {
            input_tokens: i,
            output_tokens: o,
        }),
        limits: None,
    }
}

fn fail(p: &mut Pacer, c: &Cost, f: &Failure, wait: u64, ticket: &Ticket, at: u64) {
    p.on_failure(c, f, MS(wait), MS(at), ticket, MS(at));
}

#[test]
fn timeouts_count_toward_the_breaker_but_alone_leave_concurrency() {
    let config = PacingConfig {
        breaker_failures: 2,
        breaker_cooldown: MS(1000),
        ..PacingConfig::default()
    };
    let mut p = Pacer::new(&config, 8, MS(0));
    let c = cost(0, 0);
    let t = p.start(&c, MS(0));
    fail(&mut p, &c, &Failure::timeout(MS(500)), 100, &t, 500);
    assert_eq!(
        p.concurrency(),
        8,
        "one timeout says nothing about our load"
    );
    assert_eq!(p.admit(&c, MS(500)), Admission::Go, "1 of 2 failures");
    let t = p.start(&c, MS(2000));
    fail(&mut p, &c, &Failure::timeout(MS(500)), 100, &t, 2500);
    assert_eq!(p.concurrency(), 8);
    assert_eq!(
        p.admit(&c, MS(2500)),
        Admission::Until(MS(3500)),
        "the second timeout in a row opens the breaker"
    );
}

#[test]
fn network_errors_open_the_breaker_but_leave_concurrency_alone() {
    let config = PacingConfig {
        breaker_failures: 2,
        breaker_cooldown: MS(1000),
        ..PacingConfig::default()
    };
    let mut p = Pacer::new(&config, 8, MS(0));
    let c = cost(0, 0);
    for at in [10, 2010] {
        let t = p.start(&c, MS(at));
        fail(&mut p, &c, &Failure::network("reset"), 0, &t, at);
    }
    assert_eq!(p.concurrency(), 8);
    assert_eq!(p.admit(&c, MS(2020)), Admission::Until(MS(3010)));
}

/// OpenAI's `x-ratelimit-*-tokens`: one budget for input plus output.
/// A header report of `remaining` of `limit`, reset in a minute.
fn limit(limit: u64, remaining: u64) -> Limit {
    Limit {
        limit: Some(limit),
        remaining: Some(remaining),
        reset_in: Some(MS(60_000)),
    }
}

/// A reply that says nothing but its rate-limit headers.
fn reported(limits: RateLimits) -> Feedback {
    Feedback {
        usage: None,
        limits: Some(limits),
    }
}

fn combined_tokens(of: u64, remaining: u64) -> Feedback {
    reported(RateLimits {
        tokens: limit(of, remaining),
        ..RateLimits::default()
    })
}

/// A pacer with no budgets of its own: what it knows comes from the headers.
fn headers_only() -> Pacer {
    let config = PacingConfig {
        follow_headers: true,
        ..PacingConfig::off()
    };
    Pacer::new(&config, 8, MS(0))
}

#[test]
fn the_combined_tokens_budget_charges_input_plus_output() {
    let mut p = headers_only();
    p.on_success(
        &cost(0, 0),
        &combined_tokens(202, 202),
        &Ticket::default(),
        MS(0),
    );
    // Everything below happens at one instant: no refill blurs the balance.
    let now = MS(0);
    let c = cost(100, 1);
    assert_eq!(p.admit(&c, now), Admission::Go);
    let a = p.start(&c, now);
    let b = p.start(&c, now);
    assert_eq!(p.tokens.available(now), 0.0, "two reservations of 100 + 1");
    fail(&mut p, &c, &Failure::http(500, "down"), 0, &a, 0);
    assert_eq!(p.tokens.available(now), 101.0, "a failure refunds 100 + 1");
    // Used exactly what was reserved: nothing to settle.
    p.on_success(&c, &usage(100, 1), &b, now);
    assert_eq!(p.tokens.available(now), 101.0);
    match p.admit(&cost(150, 60), now) {
        Admission::Never(m) => assert_eq!(
            m,
            "the request needs 210 tokens, more than the whole budget of 202 per minute"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_over_budget_reply_is_charged_only_what_it_used_beyond_the_reservation() {
    let config = PacingConfig {
        output_tokens_per_minute: Some(1000),
        ..PacingConfig::off()
    };
    let mut p = Pacer::new(&config, 8, MS(0));
    let c = cost(0, 100);
    let t = p.start(&c, MS(0));
    assert_eq!(p.output.available(MS(0)), 900.0);
    p.on_success(&c, &usage(0, 300), &t, MS(0));
    assert_eq!(p.output.available(MS(0)), 700.0, "300 used in all");
}

#[test]
fn failed_and_abandoned_attempts_get_their_tokens_back() {
    let config = PacingConfig {
        input_tokens_per_minute: Some(1000),
        output_tokens_per_minute: Some(1000),
        ..PacingConfig::off()
    };
    let mut p = Pacer::new(&config, 8, MS(0));
    let c = cost(300, 600);
    let t = p.start(&c, MS(0));
    assert!(matches!(p.admit(&c, MS(0)), Admission::Until(_)));
    fail(&mut p, &c, &Failure::http(503, "overloaded"), 0, &t, 0);
    assert_eq!(
        (p.input.available(MS(0)), p.output.available(MS(0))),
        (1000.0, 1000.0)
    );
    assert_eq!(p.admit(&c, MS(0)), Admission::Go);
    let t = p.start(&c, MS(0));
    p.on_abandoned(&c, &t, 1, MS(0));
    assert_eq!(
        (p.input.available(MS(0)), p.output.available(MS(0))),
        (1000.0, 1000.0)
    );
}

#[test]
fn an_abandoned_probe_lets_the_next_request_probe() {
    let config = PacingConfig {
        breaker_failures: 1,
        breaker_cooldown: MS(100),
        ..PacingConfig::off()
    };
    let mut p = Pacer::new(&config, 4, MS(0));
    let c = cost(0, 0);
    let t = p.start(&c, MS(0));
    // Sent at 0, failed after OUTAGE: the breaker opens for 100 ms.
    p.on_failure(&c, &Failure::http(500, "down"), MS(0), MS(0), &t, MS(2000));
    assert_eq!(p.admit(&c, MS(2000)), Admission::Until(MS(2100)));
    assert_eq!(p.admit(&c, MS(2100)), Admission::Go, "the probe");
    let t = p.start(&c, MS(2100));
    assert_eq!(p.admit(&c, MS(2100)), Admission::Blocked);
    p.on_abandoned(&c, &t, 1, MS(2150));
    assert_eq!(p.admit(&c, MS(2150)), Admission::Go, "a new probe");
}

#[test]
fn the_longest_wait_of_all_budgets_wins() {
    let config = PacingConfig {
        requests_per_minute: Some(1),
        input_tokens_per_minute: Some(12_000),
        ..PacingConfig::off()
    };
    let mut p = Pacer::new(&config, 8, MS(0));
    let c = cost(6000, 0);
    p.start(&c, MS(0));
    p.start(&c, MS(0));
    // Requests are 1 in debt: 2 to refill at 1/min = 120 s; input needs 30 s.
    assert_eq!(p.admit(&c, MS(0)), Admission::Until(MS(120_000)));
}

#[test]
fn overlapping_429s_pause_until_the_later_wait() {
    let mut p = Pacer::new(&PacingConfig::default(), 8, MS(0));
    let c = cost(0, 0);
    let (a, b) = (p.start(&c, MS(0)), p.start(&c, MS(0)));
    fail(&mut p, &c, &Failure::http(429, "slow"), 5000, &a, 0);
    fail(&mut p, &c, &Failure::http(429, "slow"), 1000, &b, 100);
    assert_eq!(p.admit(&c, MS(2000)), Admission::Until(MS(5000)));
}

#[test]
fn a_429_with_headers_is_not_refunded_twice() {
    let config = PacingConfig {
        requests_per_minute: Some(10),
        follow_headers: true,
        ..PacingConfig::off()
    };
    let mut p = Pacer::new(&config, 8, MS(0));
    let c = cost(0, 0);
    let t = p.start(&c, MS(0));
    assert_eq!(p.requests.available(MS(0)), 9.0);
    fail(&mut p, &c, &Failure::http(429, "slow"), 0, &t, 0);
    assert_eq!(
        p.requests.available(MS(0)),
        10.0,
        "not counted by the server"
    );
    let t = p.start(&c, MS(0));
    let said = RateLimits {
        requests: Limit {
            limit: Some(10),
            remaining: Some(5),
            reset_in: Some(MS(30_000)),
        },
        ..RateLimits::default()
    };
    let rejected = Failure {
        limits: Some(Box::new(said)),
        ..Failure::http(429, "slow")
    };
    fail(&mut p, &c, &rejected, 0, &t, 0);
    assert_eq!(
        p.requests.available(MS(0)),
        5.0,
        "the headers' count stands"
    );
}

#[test]
fn every_rejected_request_is_left_out_of_later_syncs() {
    let mut p = headers_only();
    let c = cost(0, 0);
    let tickets: Vec<Ticket> = (0..5).map(|_| p.start(&c, MS(0))).collect();
    // Requests 1, 4 and 5 were rate limited; the reply to request 2 then reports 5 left.
    for k in [0, 3, 4] {
        fail(&mut p, &c, &Failure::http(429, "slow"), 0, &tickets[k], 0);
    }
    let report = RateLimits {
        requests: Limit {
            limit: Some(10),
            remaining: Some(5),
            reset_in: Some(MS(10_000)),
        },
        ..RateLimits::default()
    };
    p.on_success(&c, &reported(report), &tickets[1], MS(0));
    // Sent after request 2: 3, 4, 5, of which only 3 was served (and is not in the report).
    assert_eq!(p.requests.available(MS(0)), 4.0);
}

/// A reply whose headers report `requests` of 10 and `input` tokens of 1,000 left.
fn report(requests: u64, input: u64) -> Feedback {
    reported(RateLimits {
        requests: limit(10, requests),
        input_tokens: limit(1000, input),
        ..RateLimits::default()
    })
}

#[test]
fn a_request_sent_earlier_and_still_in_flight_is_left_out_of_a_sync() {
    let mut p = headers_only();
    let now = MS(0);
    let (c1, c2, c3) = (cost(100, 0), cost(20, 0), cost(3, 0));
    let first = p.start(&c1, now);
    let second = p.start(&c2, now);
    let third = p.start(&c3, now);
    // Over separate connections the second reached the server first: its reply cannot have
    // counted the first (still in flight) nor the third (sent after it).
    p.on_success(&c2, &report(8, 900), &second, now);
    assert_eq!(
        p.requests.available(now),
        6.0,
        "8 less the first and the third"
    );
    assert_eq!(p.input.available(now), 797.0, "900 less 100 and 3");
    // The first's own reply: what was sent after it is in doubt, the second included.
    p.on_success(&c1, &report(7, 880), &first, now);
    assert_eq!(
        p.requests.available(now),
        5.0,
        "7 less the second and the third"
    );
    assert_eq!(p.input.available(now), 857.0);
    // Once the first is over it is no longer in doubt: the last reply counts what it says.
    p.on_success(&c3, &report(7, 877), &third, now);
    assert_eq!(
        (p.requests.available(now), p.input.available(now)),
        (7.0, 877.0),
        "nothing in flight, nothing sent since"
    );
    assert_eq!(p.in_flight(), 0);
}

#[test]
fn the_memory_of_rejected_requests_is_bounded() {
    let mut p = Pacer::new(&PacingConfig::off(), 8, MS(0));
    let c = cost(0, 0);
    for _ in 0..MAX_REJECTED + 10 {
        let t = p.start(&c, MS(0));
        fail(&mut p, &c, &Failure::http(429, "slow"), 0, &t, 0);
    }
    assert_eq!(p.rejected.len(), MAX_REJECTED);
    assert_eq!(p.rejected.first(), Some(&11.0), "the oldest are forgotten");
}

#[test]
fn off_paces_nothing() {
    assert_eq!(PacingConfig::off().breaker_failures, 0);
    let mut p = Pacer::new(&PacingConfig::off(), 8, MS(0));
    let c = cost(1000, 1000);
    for at in 0..10 {
        let t = p.start(&c, MS(at));
        fail(&mut p, &c, &Failure::http(503, "overloaded"), 0, &t, at);
        let t = p.start(&c, MS(at));
        fail(&mut p, &c, &Failure::http(429, "slow"), 60_000, &t, at);
    }
    let full = reported(RateLimits {
        requests: limit(1, 0),
        ..RateLimits::default()
    });
    p.on_success(&c, &full, &Ticket::default(), MS(10));
    assert_eq!(
        p.admit(&c, MS(10)),
        Admission::Go,
        "no breaker, pause or budget"
    );
    assert_eq!(p.concurrency(), 8, "no adaptation");
    assert_eq!(p.paused_until(MS(10)), None);
}
