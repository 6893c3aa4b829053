//! Prompt caching as the API reports it: writes, reads once the writer's headers went out,
//! the minimum length, the usage fields, and bad `cache_control` values.

use super::*;

/// A request with a system prompt of `chars` characters marked with `cache_control`.
fn cached(model: &str, chars: usize, question: &str, cc: Value) -> Value {
    json!({
        "model": model,
        "max_tokens": 50,
        "system": [{ "type": "text", "text": "s".repeat(chars), "cache_control": cc }],
        "messages": [{ "role": "user", "content": question }],
    })
}

fn usage(d: &Decision) -> Value {
    parsed(d)["usage"].clone()
}

#[test]
fn simultaneous_requests_all_write_and_later_ones_read() {
    let mut sim = Simulator::new(quiet());
    let eph = json!({ "type": "ephemeral" });
    let a = send(
        &mut sim,
        MESSAGES,
        &cached("claude-sonnet-4-5", 12_000, "one", eph.clone()),
        0.0,
    );
    let b = send(
        &mut sim,
        MESSAGES,
        &cached("claude-sonnet-4-5", 12_000, "two", eph.clone()),
        0.0,
    );
    for d in [&a, &b] {
        let u = usage(d);
        assert_eq!(u["cache_creation_input_tokens"], 3000, "{u}");
        assert_eq!(u["cache_read_input_tokens"], 0);
        assert_eq!(u["cache_creation"]["ephemeral_5m_input_tokens"], 3000);
        // "one" / "two": 3 characters, 1 token outside the cached prefix.
        assert_eq!(u["input_tokens"], 1);
    }
    // Just before the first writer's headers: still a write; at them: a read.
    let headers_at = a.delay_ms;
    let c = send(
        &mut sim,
        MESSAGES,
        &cached("claude-sonnet-4-5", 12_000, "three", eph.clone()),
        headers_at - 1.0,
    );
    assert_eq!(usage(&c)["cache_creation_input_tokens"], 3000);
    let d = send(
        &mut sim,
        MESSAGES,
        &cached("claude-sonnet-4-5", 12_000, "four", eph),
        headers_at,
    );
    assert_eq!(usage(&d)["cache_read_input_tokens"], 3000);
    assert_eq!(usage(&d)["cache_creation_input_tokens"], 0);
    let s = sim.stats();
    assert_eq!((s.cache_write_tokens, s.cache_read_tokens), (9000, 3000));
    // A streamed reply says the same in message_start.
    let mut body = cached(
        "claude-sonnet-4-5",
        12_000,
        "five",
        json!({ "type": "ephemeral" }),
    );
    body["stream"] = json!(true);
    let e = send(&mut sim, MESSAGES, &body, headers_at + 1.0);
    assert!(
        e.body.contains(r#""cache_read_input_tokens":3000"#),
        "{}",
        e.body
    );
}

#[test]
fn the_minimum_length_the_hour_and_no_cache_control() {
    let mut sim = Simulator::new(quiet());
    // 3,000 tokens: under Haiku 4.5's 4,096, so nothing is cached.
    let haiku = cached(
        "claude-haiku-4-5",
        12_000,
        "q",
        json!({ "type": "ephemeral" }),
    );
    let u = usage(&send(&mut sim, MESSAGES, &haiku, 0.0));
    assert_eq!(
        (
            u["cache_creation_input_tokens"].clone(),
            u["input_tokens"].clone()
        ),
        (json!(0), json!(3001))
    );
    let hour = cached("m", 8000, "q", json!({ "type": "ephemeral", "ttl": "1h" }));
    let first = send(&mut sim, MESSAGES, &hour, 0.0);
    assert_eq!(
        usage(&first)["cache_creation"]["ephemeral_1h_input_tokens"],
        2000
    );
    // 30 minutes on, the hour's entry is still there.
    let later = send(&mut sim, MESSAGES, &hour, 1_800_000.0);
    assert_eq!(usage(&later)["cache_read_input_tokens"], 2000);
    // Without cache_control the usage is as it always was.
    let plain = send(&mut sim, MESSAGES, &body(MESSAGES, "hello", None), 0.0);
    assert_eq!(
        usage(&plain).as_object().unwrap().len(),
        2,
        "{}",
        plain.body
    );
}

#[test]
fn bad_cache_control_is_a_400_naming_it() {
    let mut sim = Simulator::new(quiet());
    let ttl = cached("m", 10, "q", json!({ "type": "ephemeral", "ttl": "2h" }));
    let d = send(&mut sim, MESSAGES, &ttl, 0.0);
    assert_eq!(d.status, 400);
    assert!(
        d.body
            .contains("system.0.cache_control.ttl: Input should be '5m' or '1h'"),
        "{}",
        d.body
    );
    let mut five = body(MESSAGES, "q", None);
    let block = json!({ "type": "text", "text": "x", "cache_control": { "type": "ephemeral" } });
    five["system"] = json!([block, block, block, block, block]);
    let d = send(&mut sim, MESSAGES, &five, 0.0);
    assert_eq!(d.status, 400);
    assert!(d
        .body
        .contains("A maximum of 4 blocks with cache_control may be provided. Found 5."));
}
