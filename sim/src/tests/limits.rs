//! Buckets, 429s and their waits, rate-limit headers.

use super::*;
use crate::time::parse;

#[test]
fn requests_bucket_rejects_exactly_and_retry_after_is_enough() {
    let mut sim = Simulator::new(Config {
        minute_ms: 1000,
        requests_per_minute: Some(3),
        ..quiet()
    });
    let b = body(MESSAGES, "hello", None);
    for _ in 0..3 {
        assert_eq!(send(&mut sim, MESSAGES, &b, 0.0).status, 200);
    }
    let d = send(&mut sim, MESSAGES, &b, 0.0);
    assert_eq!(d.status, 429);
    assert_eq!(parsed(&d)["error"]["type"], "rate_limit_error");
    // One request flows back every 333.33 ms: the wait is rounded up, never down.
    assert_eq!(header(&d, "retry-after-ms"), Some("334"));
    assert_eq!(header(&d, "retry-after"), Some("1"));
    assert_eq!(
        header(&d, "anthropic-ratelimit-requests-remaining"),
        Some("0")
    );
    assert_eq!(send(&mut sim, MESSAGES, &b, 333.0).status, 429);
    assert_eq!(send(&mut sim, MESSAGES, &b, 334.0).status, 200);
    let o = send(&mut sim, CHAT, &body(CHAT, "hello", None), 334.0);
    assert_eq!(o.status, 429);
    let v = parsed(&o);
    assert_eq!(
        (&v["error"]["type"], &v["error"]["code"]),
        (&json!("requests"), &json!("rate_limit_exceeded"))
    );
    assert_eq!(header(&o, "x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(header(&o, "x-ratelimit-reset-requests"), Some("1s"));
}

/// A small deterministic generator for the property tests.
fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1);
    *state >> 33
}

#[test]
fn every_429_wait_fits_when_retried_after_it() {
    for seed in 0..20u64 {
        let mut sim = Simulator::new(Config {
            seed,
            minute_ms: 1000 + seed * 37,
            requests_per_minute: Some(5 + seed),
            input_tokens_per_minute: Some(200 + 10 * seed),
            output_tokens_per_minute: Some(300 + 7 * seed),
            max_tokens: 60,
            ..quiet()
        });
        let mut state = seed;
        let mut now = 0.0;
        let mut retried = 0;
        for _ in 0..300 {
            let path = if lcg(&mut state) % 2 == 0 {
                MESSAGES
            } else {
                CHAT
            };
            let words = 1 + lcg(&mut state) % 30;
            let text: Vec<String> = (0..words).map(|w| format!("w{w}")).collect();
            let b = body(path, &text.join(" "), Some(1 + lcg(&mut state) % 80));
            let d = send(&mut sim, path, &b, now);
            if d.status == 429 {
                let ms: f64 = header(&d, "retry-after-ms").unwrap().parse().unwrap();
                let secs: f64 = header(&d, "retry-after").unwrap().parse().unwrap();
                assert!(secs * 1000.0 >= ms && secs * 1000.0 < ms + 1000.0);
                assert_eq!(
                    send(&mut sim, path, &b, now + ms - 1.0).status,
                    429,
                    "seed {seed}"
                );
                now += ms;
                assert_eq!(send(&mut sim, path, &b, now).status, 200, "seed {seed}");
                retried += 1;
            }
            now += (lcg(&mut state) % 50) as f64;
        }
        assert!(retried > 10, "seed {seed}: only {retried} rejections");
    }
}

#[test]
fn a_request_bigger_than_the_limit_is_told_not_to_retry() {
    let mut sim = Simulator::new(Config {
        input_tokens_per_minute: Some(10),
        ..quiet()
    });
    let d = send(
        &mut sim,
        MESSAGES,
        &body(MESSAGES, &"x".repeat(100), None),
        0.0,
    );
    assert_eq!(d.status, 429);
    assert_eq!(header(&d, "x-should-retry"), Some("false"));
    assert_eq!(header(&d, "retry-after"), None);
    assert!(parsed(&d)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("25 input tokens"));
}

/// Checks the rate-limit headers of one reply and returns how many it had.
fn check_rate_headers(d: &Decision, api: Api, wall_ms: u64, minute_ms: u64) -> usize {
    let num = |name: &str| -> u64 { header(d, name).unwrap().parse().unwrap() };
    let mut seen = 0;
    match api {
        Api::Anthropic => {
            for kind in ["requests", "tokens", "input-tokens", "output-tokens"] {
                let p = format!("anthropic-ratelimit-{kind}");
                assert!(num(&format!("{p}-remaining")) <= num(&format!("{p}-limit")));
                let reset = parse::rfc3339(header(d, &format!("{p}-reset")).unwrap()).unwrap();
                // Whole seconds, rounded up: never before now, never past a minute and 1 s.
                assert!(reset >= wall_ms / 1000 * 1000 && reset <= wall_ms + minute_ms + 1000);
                seen += 3;
            }
        }
        Api::OpenAi => {
            for kind in ["requests", "tokens"] {
                let remaining = num(&format!("x-ratelimit-remaining-{kind}"));
                assert!(remaining <= num(&format!("x-ratelimit-limit-{kind}")));
                let reset = header(d, &format!("x-ratelimit-reset-{kind}")).unwrap();
                let ms = parse::go_duration(reset).unwrap_or_else(|| panic!("{reset:?}"));
                assert!(ms <= minute_ms as f64 + 1.0, "{reset}");
                seen += 3;
            }
        }
    }
    seen
}

#[test]
fn rate_limit_headers_on_every_reply() {
    let config = Config {
        seed: 3,
        minute_ms: 90_500,
        requests_per_minute: Some(40),
        input_tokens_per_minute: Some(2000),
        output_tokens_per_minute: Some(3000),
        faults: Faults {
            rate429: 0.05,
            rate529: 0.05,
            rate500: 0.05,
            malformed: 0.05,
            slow_body: 0.05,
            ..Faults::default()
        },
        ..quiet()
    };
    let mut sim = Simulator::new(config.clone());
    let mut state = 9;
    let mut statuses = std::collections::BTreeSet::new();
    for i in 0..400 {
        let now = (i * 97) as f64;
        let path = [MESSAGES, CHAT][i % 2];
        let b = if i % 7 == 0 {
            json!({ "model": "m" })
        } else {
            body(
                path,
                &"word ".repeat(1 + lcg(&mut state) as usize % 60),
                None,
            )
        };
        let d = send(&mut sim, path, &b, now);
        statuses.insert(d.status);
        let api = Api::from_path(path).unwrap();
        let wall_ms = config.epoch_ms + now as u64;
        assert_eq!(
            check_rate_headers(&d, api, wall_ms, config.minute_ms),
            [12, 6][i % 2]
        );
        let id = if api == Api::Anthropic {
            "request-id"
        } else {
            "x-request-id"
        };
        assert!(header(&d, id).is_some());
        if d.action != Action::Malformed {
            parsed(&d);
        } else {
            assert!(serde_json::from_str::<Value>(&d.body).is_err());
        }
    }
    let want: std::collections::BTreeSet<u16> = [200, 400, 429, 500, 503, 529].into();
    assert_eq!(statuses, want);
}
