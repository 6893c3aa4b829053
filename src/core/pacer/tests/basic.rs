//! The pacer's main cases: budgets reserve, refund and wait; a request no budget can hold;
//! the 429 pause for everyone; headers alone pacing requests; the breaker's block and probe.

use super::*;

#[test]
fn budgets_reserve_refund_and_wait() {
    let config = PacingConfig {
        output_tokens_per_minute: Some(6000),
        ..PacingConfig::off()
    };
    let mut p = Pacer::new(&config, 8, MS(0));
    let c = cost(100, 3000);
    assert_eq!(p.admit(&c, MS(0)), Admission::Go);
    p.start(&c, MS(0));
    assert_eq!(p.admit(&c, MS(0)), Admission::Go);
    p.start(&c, MS(0));
    // 6000 reserved: the third waits for 3000 tokens at 100/s.
    assert_eq!(p.admit(&c, MS(0)), Admission::Until(MS(30_000)));
    // The first reply used 500 of its 3000: 2500 come back.
    let fb = Feedback {
        usage: Some(Usage {
            input_tokens: 100,
            output_tokens: 500,
        }),
        limits: None,
    };
    p.on_success(&c, &fb, &Ticket::default(), MS(1000));
    // 100 refilled + 2500 back = 2600: 400 short, 4 s at 100/s (instead of 29 s more).
    assert_eq!(p.admit(&c, MS(1000)), Admission::Until(MS(5000)));
}

#[test]
fn never_fits_is_rejected_at_once() {
    let config = PacingConfig {
        input_tokens_per_minute: Some(1000),
        ..PacingConfig::off()
    };
    let mut p = Pacer::new(&config, 4, MS(0));
    match p.admit(&cost(5000, 10), MS(0)) {
        Admission::Never(m) => assert_eq!(
            m,
            "the request needs 5000 input tokens, more than the whole budget of 1000 per minute"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_429_pauses_everyone_until_the_wait_is_over() {
    let mut p = Pacer::new(&PacingConfig::default(), 8, MS(0));
    let c = cost(1, 1);
    p.start(&c, MS(0));
    p.on_failure(
        &c,
        &Failure::http(429, "slow down"),
        MS(2000),
        MS(0),
        &Ticket::default(),
        MS(100),
    );
    assert_eq!(p.admit(&c, MS(100)), Admission::Until(MS(2100)));
    assert_eq!(p.admit(&c, MS(2100)), Admission::Go);
    assert_eq!(
        p.concurrency(),
        8,
        "a 429 is the budgets' business: concurrency stays"
    );
    let capped = Failure {
        spend_cap: true,
        ..Failure::http(429, "cap")
    };
    p.on_failure(
        &c,
        &capped,
        MS(9000),
        MS(3000),
        &Ticket::default(),
        MS(3000),
    );
    assert_eq!(
        p.admit(&c, MS(3000)),
        Admission::Go,
        "a spend cap is final, not a pause"
    );
}

#[test]
fn headers_alone_pace_requests() {
    let mut p = Pacer::new(
        &PacingConfig {
            follow_headers: true,
            ..PacingConfig::off()
        },
        8,
        MS(0),
    );
    let c = cost(10, 10);
    let mut tickets = Vec::new();
    for _ in 0..3 {
        assert_eq!(p.admit(&c, MS(0)), Admission::Go, "nothing known yet");
        tickets.push(p.start(&c, MS(0)));
    }
    let first = tickets[0];
    let limits = RateLimits {
        requests: Limit {
            limit: Some(10),
            remaining: Some(0),
            reset_in: Some(MS(5400)),
        },
        ..RateLimits::default()
    };
    p.on_success(
        &c,
        &Feedback {
            usage: None,
            limits: Some(limits),
        },
        &first,
        MS(50),
    );
    // At least 9 used (10 as rounded) refill in 5.4 s: one request per 600 ms (less a
    // margin). The report answers the first request: the 2 sent after it are not in its
    // `remaining`, so 3 tokens must refill before the next request.
    match p.admit(&c, MS(50)) {
        Admission::Until(at) => {
            let want = 50.0 + 3.0 * 600.0 / crate::core::limits::RATE_MARGIN;
            assert!((at.as_secs_f64() * 1000.0 - want).abs() < 1e-3, "{at:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn breaker_blocks_then_probes() {
    let config = PacingConfig {
        breaker_failures: 2,
        breaker_cooldown: MS(1000),
        ..PacingConfig::off()
    };
    let mut p = Pacer::new(&config, 4, MS(0));
    let c = cost(0, 0);
    for t in [10, 2020] {
        p.start(&c, MS(t));
        p.on_failure(
            &c,
            &Failure::http(529, "overloaded"),
            MS(100),
            MS(t),
            &Ticket::default(),
            MS(t),
        );
    }
    assert_eq!(p.admit(&c, MS(2030)), Admission::Until(MS(3020)));
    assert_eq!(p.admit(&c, MS(3020)), Admission::Go);
    p.start(&c, MS(3020));
    assert_eq!(
        p.admit(&c, MS(3021)),
        Admission::Blocked,
        "one probe at a time"
    );
    p.on_success(&c, &Feedback::default(), &Ticket::default(), MS(3100));
    assert_eq!(p.admit(&c, MS(3100)), Admission::Go);
    // A 400 is an answer, not an outage: it resets the count.
    p.on_failure(
        &c,
        &Failure::network("reset"),
        MS(0),
        MS(3200),
        &Ticket::default(),
        MS(3200),
    );
    p.on_failure(
        &c,
        &Failure::http(400, "bad"),
        MS(0),
        MS(3201),
        &Ticket::default(),
        MS(3201),
    );
    p.on_failure(
        &c,
        &Failure::network("reset"),
        MS(0),
        MS(3202),
        &Ticket::default(),
        MS(3202),
    );
    assert_eq!(p.admit(&c, MS(3203)), Admission::Go);
}
