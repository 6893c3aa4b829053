//! Fault rates, determinism, stats.

use super::*;

#[test]
fn fault_rates_are_honoured() {
    let rate = 0.08;
    let mut sim = Simulator::new(Config {
        seed: 11,
        faults: Faults {
            rate429: rate,
            rate529: rate,
            rate500: rate,
            hang: rate,
            slow_body: rate,
            malformed: rate,
            disconnect: rate,
            stream_error: rate,
        },
        ..quiet()
    });
    let n = 20_000;
    let b = body(MESSAGES, "count me", None);
    let mut plain429 = 0;
    for i in 0..n {
        let d = send(&mut sim, MESSAGES, &b, i as f64);
        if d.status == 429 {
            assert_eq!(header(&d, "retry-after"), None);
            plain429 += 1;
        }
        if d.action == Action::Hang {
            assert_eq!((d.status, d.delay_ms), (0, 0.0));
        }
        if let Action::SlowBody {
            chunk_ms,
            chunk_bytes,
        } = d.action
        {
            assert_eq!(chunk_ms, 5.0);
            assert_eq!(chunk_bytes as usize, d.body.len().div_ceil(8));
        }
        sim.finish(d.id, i as f64);
    }
    let s = sim.stats();
    let count = |status| {
        s.by_status
            .iter()
            .find(|(st, _)| *st == status)
            .map_or(0, |(_, c)| *c)
    };
    // Binomial: sd = sqrt(n p (1-p)) ~ 38; allow 5 sd.
    let expect = n as f64 * rate;
    for (name, got) in [
        ("429", plain429),
        ("529", count(529)),
        ("500", count(500)),
        ("hang", s.hangs),
        ("slow", s.slow_bodies),
        ("malformed", s.malformed),
        ("disconnect", s.disconnects),
    ] {
        assert!(
            (got as f64 - expect).abs() < 190.0,
            "{name}: {got} vs {expect}"
        );
    }
    let total = plain429 + count(529) + count(500) + s.hangs + s.disconnects + count(200);
    assert_eq!(total, n as u64);
    // Its slice of the rolls is a normal reply when the request is not streamed.
    assert_eq!((s.streams, s.stream_errors), (0, 0));
}

#[test]
fn same_seed_same_decisions() {
    let run = |seed| {
        let mut sim = Simulator::new(Config {
            seed,
            requests_per_minute: Some(20),
            latency: Latency {
                jitter_ms: 50.0,
                ..quiet().latency
            },
            faults: Faults {
                rate500: 0.2,
                hang: 0.1,
                malformed: 0.1,
                ..Faults::default()
            },
            ..quiet()
        });
        (0..60)
            .map(|i| {
                let path = [MESSAGES, CHAT][i % 2];
                send(
                    &mut sim,
                    path,
                    &body(path, &format!("item {i}"), None),
                    (i * 250) as f64,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
    let (a, b) = (run(5), run(6));
    assert_ne!(a, b);
    // The reply text depends only on the input, not the seed.
    let text = |d: &Decision| parsed(d)["content"][0]["text"].clone();
    let both_ok = a.iter().zip(&b).find(|(x, y)| {
        x.status == 200
            && y.status == 200
            && x.action == Action::Reply
            && y.action == Action::Reply
            && x.body.contains("\"message\"")
    });
    let (x, y) = both_ok.expect("some item succeeds under both seeds");
    assert_eq!(text(x), text(y));
}

#[test]
fn stats_count_flight_finish_and_abort() {
    let mut sim = Simulator::new(quiet());
    let b = body(MESSAGES, "abcdefgh", Some(7));
    let ds: Vec<Decision> = (0..4)
        .map(|i| send(&mut sim, MESSAGES, &b, i as f64))
        .collect();
    assert_eq!((sim.stats().in_flight, sim.stats().max_in_flight), (4, 4));
    assert!(sim.finish(ds[0].id, 100.0));
    assert!(!sim.finish(ds[0].id, 200.0), "finish twice counts once");
    assert!(sim.abort(ds[1].id));
    assert!(!sim.abort(ds[0].id), "finished cannot be aborted");
    assert!(!sim.abort(999));
    let s = sim.stats();
    assert_eq!((s.requests, s.in_flight, s.max_in_flight), (4, 2, 4));
    assert_eq!((s.finished, s.aborted), (1, 1));
    assert_eq!((s.input_tokens, s.output_tokens), (8, 28));
    assert_eq!(s.busy_ms, 100.0);
    assert_eq!(s.by_status, vec![(200, 4)]);
}

#[test]
fn one_model_is_overloaded_for_its_window_while_another_is_healthy() {
    let mut sim = Simulator::new(Config {
        seed: 5,
        by_model: vec![crate::config::ModelFault::new(
            "sim-busy",
            &crate::raw::Raw::Number(0.8),
            &crate::raw::Raw::Number(1000.0),
        )
        .unwrap()],
        ..quiet()
    });
    let with_model = |model: &str| {
        let mut b = body(MESSAGES, "hello", None);
        b["model"] = model.into();
        b
    };
    let (busy, calm) = (with_model("sim-busy"), with_model("sim-calm"));
    let count = |sim: &mut Simulator, b: &Value, from: u32| {
        (from..from + 500)
            .filter(|&i| send(sim, MESSAGES, b, f64::from(i)).status == 529)
            .count()
    };
    let during = count(&mut sim, &busy, 0);
    assert!(
        (350..=450).contains(&during),
        "{during} of 500 overloaded in the window"
    );
    assert_eq!(count(&mut sim, &calm, 0), 0, "the other model is healthy");
    assert_eq!(count(&mut sim, &busy, 1000), 0, "the window is over");
    let e = crate::config::ModelFault::new(
        "m",
        &crate::raw::Raw::Number(2.0),
        &crate::raw::Raw::Missing,
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "faults.byModel[\"m\"].overloaded must be a number in 0..=1, got 2"
    );
}
