//! A Cloudflare Worker in Rust (workers-rs) that runs a batch with edgebatch's Rust API
//! against an Anthropic-compatible API at `UPSTREAM_URL` (the simulator in the test).
//!
//! - `GET /run?n=20`: n Messages requests sent by `run`, at most 6 at once (a Worker's
//!   simultaneous connections), retried on 429/529/5xx as the reply's headers say.
//! - `GET /map?n=20`: the same requests sent by your own code (workers-rs `Fetch` with the
//!   attempt's abort signal) through `map`.
//!
//! Both answer `{ ok, failed, attempts, results: [{ index, ok, attempts, value | error }] }`.

use std::time::Duration;

use edgebatch::providers::headers::server_wait;
use edgebatch::wasm::{AttemptContext, BatchProcessor, ItemResult};
use edgebatch::Failure;
use serde_json::{json, Value};
use worker::*;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let url = req.url()?;
    let n = url
        .query_pairs()
        .find(|(k, _)| k == "n")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(10)
        .min(500);
    let upstream = env.var("UPSTREAM_URL")?.to_string();
    let key = env.secret("ANTHROPIC_API_KEY")?.to_string();
    let requests = (0..n).map(|i| {
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "messages": [{ "role": "user", "content": format!("Summarize document {i}.") }],
        })
    });
    // One processor per request: its budget (6 in flight) is this invocation's.
    let options = BatchProcessor::builder()
        .concurrency(6)
        .max_retries(4)
        .timeout(Duration::from_secs(20))
        .deadline(Duration::from_secs(25));
    match url.path() {
        "/run" => {
            let claude = options.anthropic(key).base_url(upstream).build();
            let results = claude
                .map_err(|e| Error::RustError(e.to_string()))?
                .run(requests)
                .await;
            answer(&results, |reply| json!(reply.text))
        }
        "/map" => {
            let processor = options
                .build()
                .map_err(|e| Error::RustError(e.to_string()))?;
            let endpoint = format!("{upstream}/v1/messages");
            let results = processor
                .map(requests, move |body, ctx| {
                    send(endpoint.clone(), key.clone(), body, ctx)
                })
                .await;
            answer(&results, |reply| reply["content"][0]["text"].clone())
        }
        _ => Response::error("try GET /run?n=10 or GET /map?n=10", 404),
    }
}

/// One attempt by hand: the attempt's signal aborts the fetch on a timeout or cancel; the
/// status and Retry-After tell edgebatch's retry rule what happened.
async fn send(
    url: String,
    key: String,
    body: Value,
    ctx: AttemptContext,
) -> Result<Value, Failure> {
    let network = |e: Error| Failure::network(e.to_string());
    let headers = Headers::new();
    for (name, value) in [
        ("x-api-key", key.as_str()),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
    ] {
        headers.set(name, value).map_err(network)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.to_string().into()));
    let request = Request::new_with_init(&url, &init).map_err(network)?;
    let signal = AbortSignal::from(ctx.signal().clone());
    let mut response = Fetch::Request(request)
        .send_with_signal(&signal)
        .await
        .map_err(network)?;
    let status = response.status_code();
    if status >= 400 {
        let header = |name: &str| response.headers().get(name).ok().flatten();
        let now_ms = Date::now().as_millis() as f64;
        let wait = server_wait(
            header("retry-after-ms").as_deref(),
            header("retry-after").as_deref(),
            now_ms,
        );
        return Err(Failure {
            server_wait: wait,
            ..Failure::http(status, format!("upstream answered {status}"))
        });
    }
    response.json::<Value>().await.map_err(|e| Failure {
        // A cut-off body is worth another attempt.
        retryable: Some(true),
        ..Failure::network(e.to_string())
    })
}

/// The results as JSON, each value shown by `value`.
fn answer<T, E>(results: &[ItemResult<T, E>], value: impl Fn(&T) -> Value) -> Result<Response> {
    let rows: Vec<Value> = results
        .iter()
        .map(|r| match &r.outcome {
            Ok(v) => {
                json!({ "index": r.index, "ok": true, "attempts": r.attempts, "value": value(v) })
            }
            Err(failed) => json!({
                "index": r.index, "ok": false, "attempts": r.attempts,
                "error": {
                    "kind": failed.kind().as_str(),
                    "status": failed.error.status,
                    "message": failed.error.message,
                },
            }),
        })
        .collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    Response::from_json(&json!({
        "ok": ok,
        "failed": results.len() - ok,
        "attempts": results.iter().map(|r| r.attempts).sum::<u32>(),
        "results": rows,
    }))
}
