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

/// Observes the end of an attempt sent at (level, started), returning the observation.
fn end(
    c: &mut Controller,
    (level, started): (usize, Duration),
    at: u64,
    outcome: Outcome,
) -> Observation {
    let o = Observation {
        level,
        started,
        ended: MS(at),
        outcome,
    };
    c.observe(&o);
    o
}

/// A controller of `max` whose first burst found a server that serves `knee` and sheds the
/// rest at once (in 2 ms, the served ones taking 100), at the time 100 ms.
fn at_a_knee(max: usize, knee: usize) -> Controller {
    let mut c = Controller::new(max, true);
    let sent = burst(&mut c, 1, max, 0);
    for s in &sent[knee..] {
        end(&mut c, *s, 2, Outcome::Failure);
    }
    for s in &sent[..knee] {
        end(&mut c, *s, 100, Outcome::Success);
    }
    assert_eq!(c.limit(), knee);
    c
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
    let mut c = at_a_knee(16, 4);
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

#[test]
fn reasons_read_as_their_progress_event_names() {
    let overload = |shedding| Reason::Overload { knee: 3, shedding };
    let names = [
        Reason::Configured,
        overload(false),
        overload(true),
        Reason::Probe,
        Reason::Held,
    ]
    .map(Reason::as_str);
    assert_eq!(
        names,
        ["configured", "overload", "shedding", "probe", "held"]
    );
}

/// Fails the attempt at `s` after `ms` and answers the limit, and whether the slot was held.
fn fail_after(c: &mut Controller, s: (usize, Duration), ms: u64) -> (usize, Reason) {
    let at = s.1.as_millis() as u64 + ms;
    end(c, s, at, Outcome::Failure);
    (c.limit(), c.reason())
}

#[test]
fn a_fast_rejection_is_one_back_before_others_or_under_a_quarter_of_the_typical_success() {
    let mut c = Controller::new(8, true);
    // Before any success: back while others still run is fast, back alone is not.
    let alone = burst(&mut c, 8, 1, 0);
    assert_eq!(fail_after(&mut c, alone[0], 1), (8, Reason::Configured));
    let two = burst(&mut c, 6, 2, 10);
    assert_eq!(fail_after(&mut c, two[1], 1), (7, Reason::Held));
    end(&mut c, two[0], 110, Outcome::Success);
    assert_eq!((c.limit(), c.reason()), (8, Reason::Configured));
    // The typical success is now 100 ms: a failure in 25 ms is not fast, in 24 ms it is
    // (each with another attempt still in flight, which no longer matters).
    let a = burst(&mut c, 3, 3, 200);
    assert_eq!(fail_after(&mut c, a[2], 25), (8, Reason::Configured));
    assert_eq!(fail_after(&mut c, a[1], 24), (7, Reason::Held));
    // A success in 200 ms moves the typical one to 0.9 × 100 + 0.1 × 200 = 110 ms: fast is
    // now under 27.5 ms.
    end(&mut c, a[0], 400, Outcome::Success);
    assert_eq!(c.limit(), 8);
    let b = burst(&mut c, 3, 3, 500);
    assert_eq!(fail_after(&mut c, b[2], 28), (8, Reason::Configured));
    assert_eq!(fail_after(&mut c, b[1], 27), (7, Reason::Held));
}

#[test]
fn only_a_fast_failure_at_a_level_where_most_failed_holds_its_slot() {
    let mut c = Controller::new(8, true);
    for _ in 0..3 {
        let s = burst(&mut c, 2, 1, 0);
        end(&mut c, s[0], 100, Outcome::Success);
    }
    // Level 2 has seen 3 successes: a fast failure there is random, not a full server.
    let s = burst(&mut c, 1, 2, 200);
    assert_eq!(fail_after(&mut c, s[1], 1), (8, Reason::Configured));
    // A slow failure at a fresh level holds nothing either.
    let slow = burst(&mut c, 7, 1, 300);
    assert_eq!(fail_after(&mut c, slow[0], 100), (8, Reason::Configured));
    // A fast one there does, at the limit itself too.
    let fast = burst(&mut c, 3, 6, 500);
    assert_eq!(fail_after(&mut c, fast[5], 1), (7, Reason::Held));
    assert_eq!(fail_after(&mut c, fast[4], 1), (6, Reason::Held));
}

/// Fails `sent` fast (2 ms) from the last, answering each limit and reason after it.
fn shed_from_the_top(c: &mut Controller, sent: &[(usize, Duration)]) -> Vec<(usize, Reason)> {
    sent.iter()
        .rev()
        .map(|s| {
            let at = s.1.as_millis() as u64 + 2;
            end(c, *s, at, Outcome::Failure);
            (c.limit(), c.reason())
        })
        .collect()
}

#[test]
fn before_any_success_a_knee_needs_a_quarter_of_the_levels_above_it_to_have_failed() {
    // The first `held` sheds only hold their slots; the next lowers the limit to `knee`.
    let held_then_knee = |after: &[(usize, Reason)], held: usize, knee: usize| {
        assert!(
            after[..held].iter().all(|(_, r)| *r == Reason::Held),
            "{after:?}"
        );
        let shedding = Reason::Overload {
            knee,
            shedding: true,
        };
        assert_eq!(after[held], (knee, shedding));
    };
    // Of 64, 16 (faded: 18 sheds) rather than MIN_FAILED's 8 (faded: 9).
    let mut c = Controller::new(64, true);
    let sent = burst(&mut c, 1, 64, 0);
    held_then_knee(&shed_from_the_top(&mut c, &sent[40..]), 17, 46);
    // Once a success is known, 9 sheds are enough.
    let mut c = Controller::new(64, true);
    let first = burst(&mut c, 1, 1, 0);
    end(&mut c, first[0], 100, Outcome::Success);
    let sent = burst(&mut c, 1, 64, 100);
    held_then_knee(&shed_from_the_top(&mut c, &sent[50..]), 8, 55);
}

#[test]
fn below_a_known_knee_the_limit_comes_down_one_level_at_a_time() {
    let mut c = at_a_knee(32, 23);
    // The server now sheds all but 4: each shed lowers the limit by one, not to 4 at once
    // (the levels under the limit hold only old evidence).
    let sent = burst(&mut c, 1, 23, 100);
    let after: Vec<usize> = shed_from_the_top(&mut c, &sent[4..])
        .iter()
        .map(|(limit, _)| *limit)
        .collect();
    assert_eq!(after[..6], [22, 22, 21, 20, 19, 18], "{after:?}");
    assert_eq!(
        c.reason(),
        Reason::Held,
        "{after:?}: the last sheds hold their slots"
    );
}

#[test]
fn a_knee_lowered_from_itself_is_no_failed_probe() {
    let mut c = at_a_knee(32, 23);
    // Two sheds at the knee of 23 lower it by one; the rest are served.
    let sent = burst(&mut c, 1, 23, 100);
    shed_from_the_top(&mut c, &sent[21..]);
    for s in &sent[..21] {
        end(&mut c, *s, 200, Outcome::Success);
    }
    assert_eq!(c.limit(), 22);
    // Probes still come after 4 rounds of the limit (once the evidence has faded for the
    // first), as before any probe failed.
    let mut t = 200;
    let first = succeed_at_the_limit(&mut c, &mut t, 10_000);
    assert!(first > 4 * 22 && c.limit() == 23, "{first}");
    let next = succeed_at_the_limit(&mut c, &mut t, 10_000);
    assert_eq!((next, c.limit()), (4 * 23, 25));
}

/// Runs `rounds` successes, one at a time, at the limit (or until it moves): how many ran.
fn succeed_at_the_limit(c: &mut Controller, t: &mut u64, rounds: usize) -> usize {
    let limit = c.limit();
    let mut n = 0;
    while c.limit() == limit && n < rounds {
        for s in burst(c, limit, 1, *t) {
            end(c, s, *t + 100, Outcome::Success);
        }
        *t += 100;
        n += 1;
    }
    n
}

#[test]
fn probes_come_after_four_rounds_of_the_limit_and_climb_by_doubling_steps_to_the_max() {
    let mut c = at_a_knee(24, 9);
    let mut t = 100;
    // Not before the evidence above the knee has faded, more than 4 rounds of 9 here.
    let first = succeed_at_the_limit(&mut c, &mut t, 10_000);
    assert!(first > 4 * 9, "{first}");
    assert_eq!((c.limit(), c.reason()), (10, Reason::Probe));
    // Each passing probe: 4 rounds of the new limit, then a step twice the last.
    let mut climb = vec![];
    for _ in 0..3 {
        let n = succeed_at_the_limit(&mut c, &mut t, 10_000);
        climb.push((n, c.limit()));
    }
    assert_eq!(climb, [(40, 12), (48, 16), (64, 24)]);
    assert_eq!(c.reason(), Reason::Configured);
    // At the max the knee is forgotten: a few failures above 16 are no knee (a known one
    // would need only these to be confirmed).
    let sent = burst(&mut c, 1, 24, t);
    for s in &sent[20..] {
        end(&mut c, *s, t + 100, Outcome::Failure);
    }
    assert_eq!((c.limit(), c.reason()), (24, Reason::Configured));
    for s in &sent[..20] {
        end(&mut c, *s, t + 100, Outcome::Success);
    }
    // And there are no more probes: a long run stays put.
    t += 100;
    assert_eq!(succeed_at_the_limit(&mut c, &mut t, 10_000), 10_000);
    assert_eq!((c.limit(), c.reason()), (24, Reason::Configured));
}

#[test]
fn a_failed_probe_doubles_the_rounds_before_the_next() {
    let mut c = at_a_knee(16, 4);
    let mut t = 100;
    succeed_at_the_limit(&mut c, &mut t, 10_000);
    assert_eq!(c.limit(), 5);
    let a = burst(&mut c, 4, 2, t);
    end(&mut c, a[1], t + 2, Outcome::Failure);
    end(&mut c, a[0], t + 100, Outcome::Success);
    assert_eq!(c.limit(), 4);
    // 8 rounds now (at 4, also the probe's evidence must fade), then 8 rounds of 5; the
    // step starts again at 1.
    let next = succeed_at_the_limit(&mut c, &mut t, 10_000);
    assert!(next >= 8 * 4 - 1 && c.limit() == 5, "{next}");
    let next = succeed_at_the_limit(&mut c, &mut t, 10_000);
    assert_eq!((next, c.limit()), (8 * 5, 7));
}

#[test]
fn failures_only_above_the_limit_leave_it_where_it_is() {
    let mut c = at_a_knee(24, 9);
    let mut t = 100;
    succeed_at_the_limit(&mut c, &mut t, 10_000);
    assert_eq!((c.limit(), c.reason()), (10, Reason::Probe));
    // The probe holds up for 3 of its 4 rounds; then attempts sent above the limit (under an
    // earlier one) fail, slowly: the knee they show is the limit itself, which is no reason
    // to lower it, nor to call it an overload.
    assert_eq!(succeed_at_the_limit(&mut c, &mut t, 30), 30);
    let above = burst(&mut c, 11, 3, t);
    for s in above {
        end(&mut c, s, t + 100, Outcome::Failure);
        assert_eq!((c.limit(), c.reason()), (10, Reason::Probe));
    }
}

/// Fails the attempt at `at`: whether the controller blames that on our load.
fn shed(c: &mut Controller, sent: (usize, Duration), at: u64) -> bool {
    let o = end(c, sent, at, Outcome::Failure);
    c.blames_our_load(&o)
}

#[test]
fn at_a_known_knee_a_fast_failure_holds_its_slot_and_is_blamed_on_our_load() {
    let mut c = at_a_knee(24, 8);
    let knee = Reason::Overload {
        knee: 8,
        shedding: true,
    };
    // Levels 5, 7 and 8 do well: most of their attempts succeed.
    for i in 0..10 {
        for level in [5, 7, 8] {
            let s = burst(&mut c, level, 1, 200 + i * 100);
            end(&mut c, s[0], 300 + i * 100, Outcome::Success);
        }
    }
    assert_eq!((c.limit(), c.reason()), (8, knee));
    // Below the knee a fast failure is random: nothing held, nothing blamed.
    let low = burst(&mut c, 5, 1, 2000);
    assert!(!shed(&mut c, low[0], 2002));
    assert_eq!((c.limit(), c.reason()), (8, knee));
    // Nor a failure at the knee that took as long as a success.
    let slow = burst(&mut c, 8, 1, 2100);
    assert!(!shed(&mut c, slow[0], 2200));
    assert_eq!((c.limit(), c.reason()), (8, knee));
    // A fast one there is the server's capacity: its slot is held, and it is ours.
    let fast = burst(&mut c, 8, 1, 2300);
    assert!(shed(&mut c, fast[0], 2302));
    assert_eq!((c.limit(), c.reason()), (7, Reason::Held));
    // Below the knee, at the level the limit now allows, where most succeed: random.
    let within = burst(&mut c, 7, 1, 2350);
    assert!(!shed(&mut c, within[0], 2352));
    assert_eq!((c.limit(), c.reason()), (7, Reason::Held));
    // Above the knee, even where the limit still allows the level.
    let above = burst(&mut c, 9, 1, 2400);
    assert!(shed(&mut c, above[0], 2402));
}

#[test]
fn without_a_knee_no_failure_is_blamed_on_our_load() {
    // A storm: every level fails, fast. Slots are held, but nothing says it is our load.
    let mut c = Controller::new(8, true);
    let sent = burst(&mut c, 1, 8, 0);
    for s in sent.iter().rev() {
        assert!(!shed(&mut c, *s, 2), "level {}", s.0);
    }
    assert_eq!(c.reason(), Reason::Held);
    // Disabled, nothing is ever blamed: it finds no knee.
    let mut off = Controller::new(16, false);
    let sent = burst(&mut off, 1, 16, 0);
    for s in sent[8..].iter().rev() {
        assert!(!shed(&mut off, *s, 2), "level {}", s.0);
    }
    assert_eq!(off.limit(), 16);
}
