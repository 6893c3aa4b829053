//! The simulator on virtual time: shapes, validation, buckets, headers, faults, determinism.

mod cache;
mod capacity;
mod faults;
mod limits;
mod replies;
mod streams;

pub(super) use serde_json::{json, Value};

use super::*;

pub(super) const MESSAGES: &str = "/v1/messages";
pub(super) const CHAT: &str = "/v1/chat/completions";

pub(super) fn auth(path: &str) -> Vec<(String, String)> {
    let pairs: &[(&str, &str)] = if path == CHAT {
        &[("authorization", "Bearer sk-test")]
    } else {
        &[
            ("x-api-key", "sk-ant-test"),
            ("anthropic-version", "2023-06-01"),
        ]
    };
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn body(path: &str, text: &str, max_tokens: Option<u64>) -> Value {
    let mut b = json!({ "model": "sim-1", "messages": [{ "role": "user", "content": text }] });
    if let Some(m) = max_tokens {
        b["max_tokens"] = json!(m);
    } else if path == MESSAGES {
        b["max_tokens"] = json!(1024);
    }
    b
}

pub(super) fn send(sim: &mut Simulator, path: &str, body: &Value, now_ms: f64) -> Decision {
    let headers = auth(path);
    let req = Request {
        method: "POST",
        path,
        headers: &headers,
        body: Some(body),
    };
    sim.handle(&req, now_ms)
}

pub(super) fn header<'a>(d: &'a Decision, name: &str) -> Option<&'a str> {
    d.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn parsed(d: &Decision) -> Value {
    serde_json::from_str(&d.body).unwrap_or_else(|e| panic!("{e}: {}", d.body))
}

pub(super) fn quiet() -> Config {
    Config {
        latency: Latency {
            base_ms: 10.0,
            per_output_token_ms: 1.0,
            jitter_ms: 0.0,
            chunk_ms: 5.0,
        },
        ..Config::default()
    }
}
