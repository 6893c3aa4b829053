//! The client's rate-limit header readers against the simulator's writers: two crates that
//! share no code, so this is where a drift between them shows (the simulator is a
//! dev-dependency only; the library never links it).

use edgebatch::providers::ratelimit;
use edgebatch_sim::{Config, Decision, Latency, Request, Simulator};
use serde_json::{json, Value};

fn send(sim: &mut Simulator, path: &str, headers: &[(&str, &str)], body: Value) -> Decision {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let req = Request {
        method: "POST",
        path,
        headers: &headers,
        body: Some(&body),
    };
    sim.handle(&req, 12_345.0)
}

fn header(d: &Decision, name: &str) -> Option<String> {
    d.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

#[test]
fn the_clients_header_readers_understand_the_sims_headers() {
    let mut sim = Simulator::new(Config {
        minute_ms: 60_000,
        requests_per_minute: Some(50),
        input_tokens_per_minute: Some(1000),
        output_tokens_per_minute: Some(400),
        latency: Latency {
            base_ms: 10.0,
            per_output_token_ms: 1.0,
            jitter_ms: 0.0,
            chunk_ms: 5.0,
        },
        ..Config::default()
    });
    let anthropic = [
        ("x-api-key", "sk-ant-test"),
        ("anthropic-version", "2023-06-01"),
    ];
    let prompt = "abcd".repeat(100);
    let body = json!({ "model": "sim-1", "max_tokens": 50,
        "messages": [{ "role": "user", "content": prompt }] });
    let d = send(&mut sim, "/v1/messages", &anthropic, body);
    assert_eq!(d.status, 200, "{}", d.body);
    let wall = (sim.config().epoch_ms + 12_345) as f64;
    let seen = ratelimit::anthropic(&|name: &str| header(&d, name), wall);
    assert_eq!(
        (seen.requests.limit, seen.requests.remaining),
        (Some(50), Some(49))
    );
    assert_eq!(
        (seen.input_tokens.limit, seen.input_tokens.remaining),
        (Some(1000), Some(900))
    );
    assert_eq!(
        (seen.output_tokens.limit, seen.output_tokens.remaining),
        (Some(400), Some(350))
    );
    // The sim sends `tokens` as the tighter of the two token limits (output here), as the API
    // does; the client reads the two exact headers instead and leaves `tokens` alone.
    assert!(!seen.tokens.is_known());
    // 50 of 400 output tokens refill in 7.5 s; the header rounds up to the whole second.
    let reset = seen.output_tokens.reset_in.unwrap().as_millis();
    assert!((7500..8500).contains(&reset), "{reset}");

    let body = json!({ "model": "sim-1", "max_tokens": 50,
        "messages": [{ "role": "user", "content": "hi" }] });
    let o = send(
        &mut sim,
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-test")],
        body,
    );
    assert_eq!(o.status, 200, "{}", o.body);
    let seen = ratelimit::openai(&|name: &str| header(&o, name));
    assert_eq!(seen.requests.remaining, Some(48));
    assert_eq!(seen.requests.reset_in.unwrap().as_millis(), 2400);
}
