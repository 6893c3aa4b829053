//! The capacity model: full speed up to `capacity`, slower up to `queue` more, shed beyond;
//! random faults and rate limits take no place; it mixes with random faults.

use super::*;

fn server(capacity: u64, queue: u64) -> Config {
    Config {
        capacity: Some(Capacity {
            capacity,
            queue,
            shed_ms: 3.0,
        }),
        ..quiet()
    }
}

#[test]
fn serves_queues_then_sheds_fast() {
    let mut sim = Simulator::new(server(2, 2));
    let b = body(MESSAGES, "abcdefgh", Some(10));
    // 10 ms base + 10 tokens * 1 ms: 20 ms at full speed.
    let ds: Vec<Decision> = (0..6).map(|_| send(&mut sim, MESSAGES, &b, 0.0)).collect();
    let seen: Vec<(u16, f64)> = ds.iter().map(|d| (d.status, d.delay_ms)).collect();
    assert_eq!(
        seen,
        vec![
            (200, 20.0),
            (200, 20.0),
            (200, 30.0),
            (200, 40.0),
            (529, 3.0),
            (529, 3.0)
        ],
        "3 served share the server: 1.5x; 4: 2x; the 5th and 6th are shed"
    );
    assert!(ds[4].body.contains("overloaded_error"));
    let s = sim.stats();
    assert_eq!((s.shed, s.max_served, s.max_in_flight), (2, 4, 6));
    // A shed request frees nothing; a served one that finishes frees its place.
    sim.finish(ds[4].id, 3.0);
    assert_eq!(send(&mut sim, MESSAGES, &b, 3.0).status, 529);
    sim.finish(ds[0].id, 20.0);
    let d = send(&mut sim, MESSAGES, &b, 20.0);
    assert_eq!((d.status, d.delay_ms), (200, 40.0), "4 served again");
    // OpenAI's shape sheds with 503.
    let c = body(CHAT, "abcdefgh", Some(10));
    assert_eq!(send(&mut sim, CHAT, &c, 21.0).status, 503);
}

#[test]
fn throughput_stays_at_capacity_inside_the_queue() {
    // n served at once each take n / capacity times as long: requests per ms is the same at
    // capacity and at capacity + queue.
    let cap = Capacity {
        capacity: 8,
        queue: 4,
        shed_ms: 1.0,
    };
    let rate = |n: u64| n as f64 / cap.admit(n - 1).unwrap();
    assert_eq!(rate(8), 8.0);
    assert_eq!(rate(12), 8.0);
    assert!(rate(4) < 8.0);
    assert_eq!(cap.admit(12), None);
}

#[test]
fn random_faults_and_rate_limits_take_no_place() {
    let mut sim = Simulator::new(Config {
        requests_per_minute: Some(2),
        faults: Faults {
            rate500: 0.5,
            ..Faults::default()
        },
        seed: 3,
        ..server(1, 0)
    });
    let b = body(MESSAGES, "abcdefgh", Some(10));
    let mut statuses = Vec::new();
    for i in 0..40 {
        statuses.push(send(&mut sim, MESSAGES, &b, i as f64).status);
    }
    // The first request not hit by a fault is served and holds the one place; later ones are
    // 500s (random, taking no place) or shed (529); nothing reaches the rate limit while shed.
    let first_ok = statuses.iter().position(|s| *s == 200).expect("one served");
    assert!(statuses[..first_ok].iter().all(|s| *s == 500));
    let after = &statuses[first_ok + 1..];
    assert!(after.iter().all(|s| *s == 500 || *s == 529), "{after:?}");
    assert!(after.contains(&500) && after.contains(&529), "the two mix");
    assert_eq!(
        sim.stats().shed,
        after.iter().filter(|s| **s == 529).count() as u64
    );
}

#[test]
fn options_read_and_checked() {
    let get = |pairs: &'static [(&'static str, f64)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map_or(raw::Raw::Missing, |(_, v)| raw::Raw::Number(*v))
        }
    };
    let c = Config::from_options(get(&[("capacity", 8.0), ("queue", 4.0)])).unwrap();
    assert_eq!(
        c.capacity,
        Some(Capacity {
            capacity: 8,
            queue: 4,
            shed_ms: config::DEFAULT_SHED_MS
        })
    );
    assert_eq!(Config::from_options(get(&[])).unwrap().capacity, None);
    let err = Config::from_options(get(&[("capacity", 0.0)])).unwrap_err();
    assert_eq!(
        err.message,
        "capacity must be an integer in 1..=1000000, got 0"
    );
    let err = Config::from_options(get(&[("queue", 4.0)])).unwrap_err();
    assert_eq!(err.message, "queue needs capacity, which is not set");
    let err = Config::from_options(get(&[("capacity", 2.0), ("shedMs", -1.0)])).unwrap_err();
    assert_eq!(
        err.message,
        "shedMs must be a number in 0..=3600000, got -1"
    );
}
