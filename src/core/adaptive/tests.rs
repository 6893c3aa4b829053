//! The controller's and the breaker's rules, one by one. Whole runs against modelled
//! servers are in tests/adaptive.rs.

use super::*;
use std::time::Duration;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// Sends `n` at `at` (levels `from..from + n`), returning their observations' keys.
fn burst(c: &mut Controller, from: usize, n: usize, at: u64) -> Vec<(usize, Duration)> {
    (from..from + n)
        .map(|level| {
            c.sent(level);
            (level, MS(at))
        })
        .collect()
}

fn end(c: &mut Controller, (level, started): (usize, Duration), at: u64, outcome: Outcome) {
    c.observe(&Observation {
        level,
        started,
        ended: MS(at),
        outcome,
    });
}

#[test]
fn shedding_past_capacity_lowers_the_limit_to_the_knee_before_a_second_burst() {
    let mut c = Controller::new(32, true);
    let sent = burst(&mut c, 1, 32, 0);
    // The server serves 12 and sheds 20 within 5 ms; each shed slot is held, not refilled.
    for (i, s) in sent[12..].iter().enumerate() {
        end(&mut c, *s, 5, Outcome::Failure);
        assert!(c.limit() <= 32 - (i + 1).min(19), "held: {}", c.limit());
    }
    assert_eq!(c.limit(), 12, "{:?}", c.reason());
    assert_eq!(
        c.reason(),
        Reason::Overload {
            knee: 12,
            shedding: true
        }
    );
    // The served ones succeed: the limit stays at the knee.
    for s in &sent[..12] {
        end(&mut c, *s, 300, Outcome::Success);
    }
    assert_eq!(c.limit(), 12);
}

#[test]
fn random_failures_keep_the_configured_limit() {
    let mut c = Controller::new(10, true);
    let mut t = 0;
    let mut x = 12345u64;
    for _ in 0..200 {
        let sent = burst(&mut c, 1, 10, t);
        for s in sent {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // 40% fail, at every level alike, as slowly as successes.
            let failed = (x >> 33) % 5 < 2;
            let outcome = if failed {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            end(&mut c, s, t + 300, outcome);
        }
        t += 300;
    }
    assert_eq!((c.limit(), c.reason()), (10, Reason::Configured));
}

#[test]
fn a_fast_rejection_holds_its_slot_until_a_success() {
    let mut c = Controller::new(8, true);
    let sent = burst(&mut c, 1, 8, 0);
    end(&mut c, sent[7], 2, Outcome::Failure);
    assert_eq!((c.limit(), c.reason()), (7, Reason::Held));
    end(&mut c, sent[6], 3, Outcome::Failure);
    assert_eq!(c.limit(), 6);
    end(&mut c, sent[0], 300, Outcome::Success);
    assert_eq!(
        (c.limit(), c.reason()),
        (8, Reason::Configured),
        "two failures are no knee: the slots come back"
    );
    end(&mut c, sent[1], 300, Outcome::Success);
    // A slow failure (as slow as successes) holds nothing.
    let late = burst(&mut c, 8, 1, 300);
    end(&mut c, late[0], 700, Outcome::Failure);
    for s in &sent[2..6] {
        end(&mut c, *s, 700, Outcome::Success);
    }
    assert_eq!(c.limit(), 8);
}

#[test]
fn neutral_outcomes_and_a_disabled_controller_change_nothing() {
    let mut c = Controller::new(4, true);
    let sent = burst(&mut c, 1, 4, 0);
    for s in sent {
        end(&mut c, s, 1, Outcome::Neutral);
    }
    assert_eq!(c.limit(), 4);
    let mut off = Controller::new(6, false);
    let sent = burst(&mut off, 1, 6, 0);
    for s in sent {
        end(&mut off, s, 1, Outcome::Failure);
    }
    assert_eq!((off.limit(), off.reason()), (6, Reason::Configured));
}

#[test]
fn probes_above_the_knee_back_off_when_they_fail_and_climb_when_they_pass() {
    let mut c = Controller::new(16, true);
    let sent = burst(&mut c, 1, 16, 0);
    for s in &sent[4..] {
        end(&mut c, *s, 2, Outcome::Failure);
    }
    for s in &sent[..4] {
        end(&mut c, *s, 100, Outcome::Success);
    }
    assert_eq!(c.limit(), 4);
    // Run at the knee until the evidence above it fades and a probe goes to 5.
    let mut t = 100;
    let mut rounds = 0;
    while c.limit() == 4 && rounds < 500 {
        for s in burst(&mut c, 4, 1, t) {
            end(&mut c, s, t + 100, Outcome::Success);
        }
        t += 100;
        rounds += 1;
    }
    assert_eq!((c.limit(), c.reason()), (5, Reason::Probe), "{rounds}");
    assert!(rounds >= 16, "not before 4 rounds of the limit: {rounds}");
    // The probe is shed at once: back to 4.
    let a = burst(&mut c, 4, 2, t);
    end(&mut c, a[1], t + 2, Outcome::Failure);
    assert_eq!(c.limit(), 4);
    end(&mut c, a[0], t + 100, Outcome::Success);
    // The server grew: probes now pass and the limit climbs by 1, 2, 4, ... to the max.
    let mut rounds = 0;
    while c.limit() < 16 && rounds < 5000 {
        let l = c.limit();
        for s in burst(&mut c, l, 1, t) {
            end(&mut c, s, t + 100, Outcome::Success);
        }
        t += 100;
        rounds += 1;
    }
    assert_eq!((c.limit(), c.reason()), (16, Reason::Configured));
}

#[test]
fn breaker_opens_only_on_a_lasting_outage_and_its_cooldown_grows() {
    let mut b = Breaker::new(3, MS(500));
    let fail = |b: &mut Breaker, at: u64| b.on_failure(MS(at.saturating_sub(300)), MS(at));
    for t in [300, 310, 320, 330, 340] {
        fail(&mut b, t);
    }
    assert_eq!(b.gate(MS(350)), Gate::Pass, "a burst is not an outage");
    fail(&mut b, 1999);
    assert_eq!(b.gate(MS(2000)), Gate::Pass);
    fail(&mut b, 2000);
    assert_eq!(b.state(), BreakerState::Open { until: MS(2500) });
    fail(&mut b, 2100);
    assert_eq!(
        b.gate(MS(2200)),
        Gate::Until(MS(2500)),
        "late failures do not extend it"
    );
    assert_eq!(b.gate(MS(2500)), Gate::Probe);
    b.probe_sent();
    assert_eq!(b.gate(MS(2501)), Gate::Blocked);
    fail(&mut b, 2600);
    assert_eq!(b.gate(MS(2601)), Gate::Until(MS(3600)), "doubled");
    b.probe_sent();
    fail(&mut b, 3700);
    assert_eq!(b.gate(MS(3701)), Gate::Until(MS(5700)));
    b.probe_sent();
    b.on_neutral();
    assert_eq!(
        b.gate(MS(5701)),
        Gate::Probe,
        "a neutral probe frees the next"
    );
    b.probe_sent();
    b.on_success();
    assert_eq!(b.gate(MS(5702)), Gate::Pass);
    // The cool-down is back to its base, and a success resets the count.
    for t in [6000, 8000] {
        fail(&mut b, t);
    }
    b.on_success();
    fail(&mut b, 9000);
    assert_eq!(b.gate(MS(9001)), Gate::Pass);
    for t in [9500, 11_000] {
        fail(&mut b, t);
    }
    assert_eq!(b.state(), BreakerState::Open { until: MS(11_500) });
    // One attempt that failed after hanging for longer than OUTAGE is an outage on its own.
    let mut one = Breaker::new(1, MS(100));
    one.on_failure(MS(0), MS(60_000));
    assert_eq!(one.gate(MS(60_000)), Gate::Until(MS(60_100)));
    let mut capped = Breaker::new(1, MS(20_000));
    capped.on_failure(MS(0), OUTAGE);
    for _ in 0..4 {
        capped.probe_sent();
        capped.on_failure(MS(0), MS(0));
    }
    assert_eq!(capped.gate(MS(0)), Gate::Until(MAX_COOLDOWN));
    let mut off = Breaker::new(0, MS(1000));
    for i in 0..10 {
        off.on_failure(MS(0), MS(i * 1000));
    }
    assert_eq!(off.gate(MS(10_000)), Gate::Pass);
}
