//! The Rust API (`edgebatch::wasm`, feature `rust-api`) on real parts, as a Rust user calls
//! it: JS timers, `fetch` against the loopback test server (tests/support/server.mjs; its URL
//! baked in at compile time, `EDGEBATCH_TEST_SERVER`), real AbortController timeouts. Run by
//! scripts/test-wasm.sh in Node and headless Chromium (`make test-wasm`).
#![cfg(all(target_arch = "wasm32", feature = "rust-api"))]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use edgebatch::options::OptionErrorKind;
use edgebatch::wasm::{
    Alternative, AttemptContext, BatchProcessor, CancelToken, Event, ItemResult, Jitter, ServedBy,
    Upstream,
};
use edgebatch::web::clock::JsClock;
use edgebatch::{Clock, ErrorKind, Failure};
use futures::StreamExt;
use js_sys::Promise;
use serde_json::json;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{AbortController, AbortSignal, RequestInit, Response};

const MS: fn(u64) -> Duration = Duration::from_millis;

fn server() -> &'static str {
    match option_env!("EDGEBATCH_TEST_SERVER") {
        Some(url) => url,
        None => {
            panic!("EDGEBATCH_TEST_SERVER must be set at compile time (run scripts/test-wasm.sh)")
        }
    }
}

/// A key no other run (Node or browser, earlier or later) shares on the server.
fn unique(name: &str) -> String {
    format!("{name}-{}", (js_sys::Math::random() * 1e12) as u64)
}

#[wasm_bindgen]
extern "C" {
    /// The global `fetch`, bound without `window` (Node has none).
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(url: &str, init: &RequestInit) -> Promise;
}

/// What a user's task looks like: web-sys fetch with the attempt's signal; a non-2xx is an
/// HTTP failure, a rejected fetch (network, abort) is read from the thrown `JsValue`.
async fn get_json(path: &str, signal: &AbortSignal) -> Result<serde_json::Value, Failure> {
    let init = RequestInit::new();
    init.set_signal(Some(signal));
    let url = format!("{}{path}", server());
    let js_failure = |e: JsValue| edgebatch::wasm::TaskError::failure(&e);
    let response: Response = JsFuture::from(global_fetch(&url, &init))
        .await
        .map_err(js_failure)?
        .unchecked_into();
    let body = JsFuture::from(response.json().map_err(js_failure)?)
        .await
        .map_err(js_failure)?;
    if !response.ok() {
        return Err(Failure::http(response.status(), "not ok"));
    }
    serde_wasm_bindgen::from_value(body).map_err(|e| Failure::new(ErrorKind::Task, e.to_string()))
}

async fn aborted_on_server() -> f64 {
    let guard = AbortController::new().unwrap();
    let stats = get_json("/stats", &guard.signal()).await.expect("stats");
    stats["aborted"].as_f64().unwrap()
}

fn kinds<T, E>(results: &[ItemResult<T, E>]) -> Vec<(Option<ErrorKind>, u32)> {
    results
        .iter()
        .map(|r| (r.outcome.as_ref().err().map(|f| f.kind()), r.attempts))
        .collect()
}

#[wasm_bindgen_test]
fn options_are_checked_by_the_declared_rules() {
    let err = BatchProcessor::builder()
        .concurrency(0)
        .build()
        .unwrap_err();
    assert_eq!(err.kind, OptionErrorKind::Range);
    assert_eq!(
        err.message,
        "concurrency must be an integer in 1..=10000, got 0"
    );
    let err = BatchProcessor::builder()
        .backoff(MS(500), MS(100))
        .build()
        .unwrap_err();
    assert!(
        err.message.starts_with("backoff.maxMs must be at least"),
        "{err}"
    );
    let err = BatchProcessor::builder()
        .base_url("http://127.0.0.1:1")
        .build()
        .unwrap_err();
    assert!(err.message.starts_with("provider.name must be"), "{err}");
    let err = BatchProcessor::builder()
        .openai("k")
        .base_url("ftp://x")
        .build()
        .unwrap_err();
    assert!(err.message.starts_with("provider.baseUrl"), "{err}");
}

#[wasm_bindgen_test]
async fn map_returns_input_order_when_items_finish_out_of_order() {
    let finished = Rc::new(RefCell::new(Vec::new()));
    let progress = Rc::new(Cell::new((0, 0)));
    let p = progress.clone();
    let processor = BatchProcessor::builder()
        .concurrency(6)
        .seed(1)
        .on_progress(move |now| p.set((now.done, now.total)))
        .build()
        .unwrap();
    let f = finished.clone();
    let results = processor
        .map(0..6u64, move |i, ctx: AttemptContext| {
            let finished = f.clone();
            async move {
                assert_eq!(ctx.index as u64, i);
                JsClock.sleep(MS(10 + (5 - i) * 15)).await;
                finished.borrow_mut().push(i);
                Ok::<_, String>(format!("item {i}"))
            }
        })
        .await;
    assert_eq!(
        *finished.borrow(),
        [5, 4, 3, 2, 1, 0],
        "items end in reverse"
    );
    let values: Vec<String> = results.into_iter().map(|r| r.outcome.unwrap()).collect();
    assert_eq!(
        values,
        (0..6).map(|i| format!("item {i}")).collect::<Vec<_>>()
    );
    assert_eq!(progress.get(), (6, 6));
}

#[wasm_bindgen_test]
async fn stream_yields_completion_order() {
    let processor = BatchProcessor::builder().concurrency(3).build().unwrap();
    let order: Vec<usize> = processor
        .stream([60u64, 10, 35], |ms, _ctx| async move {
            JsClock.sleep(MS(ms)).await;
            Ok::<_, Failure>(ms)
        })
        .map(|r| r.index)
        .collect()
        .await;
    assert_eq!(order, [1, 2, 0]);
}

#[wasm_bindgen_test]
async fn a_503_from_the_server_is_retried_and_the_task_error_kept() {
    let key = unique("rust-flaky");
    let processor = BatchProcessor::builder()
        .max_retries(2)
        .backoff(MS(10), MS(20))
        .jitter(Jitter::None)
        .build()
        .unwrap();
    let paths = vec![
        format!("/flaky/{key}?fail=1&status=503"),
        "/status/404".to_owned(),
    ];
    let results = processor
        .map(paths, |path, ctx| async move {
            get_json(&path, ctx.signal()).await
        })
        .await;
    let body = results[0].outcome.as_ref().expect("the retry succeeds");
    assert_eq!(
        (body["attempt"].as_u64(), results[0].attempts),
        (Some(2), 2)
    );
    // A 404 is never retried; the task's own failure comes back as the source.
    let failed = results[1].outcome.as_ref().unwrap_err();
    assert_eq!(
        (failed.kind(), failed.error.status, results[1].attempts),
        (ErrorKind::Http, Some(404), 1)
    );
    assert_eq!(failed.source.as_ref().and_then(|f| f.status), Some(404));
}

#[wasm_bindgen_test]
async fn the_attempt_timeout_aborts_the_request() {
    let before = aborted_on_server().await;
    let processor = BatchProcessor::builder()
        .max_retries(0)
        .timeout(MS(150))
        .build()
        .unwrap();
    let results = processor
        .map(["/hang"], |path, ctx| async move {
            get_json(path, ctx.signal()).await
        })
        .await;
    let failed = results[0].outcome.as_ref().unwrap_err();
    assert_eq!(
        (failed.kind(), results[0].attempts),
        (ErrorKind::Timeout, 1)
    );
    assert!(
        failed.source.is_none(),
        "a timed-out attempt returned nothing"
    );
    // The server sees the connection go away (up to 5 s: a loaded machine hears it late).
    let mut aborted = 0.0;
    for _ in 0..100 {
        aborted = aborted_on_server().await - before;
        if aborted >= 1.0 {
            break;
        }
        JsClock.sleep(MS(50)).await;
    }
    assert!(aborted >= 1.0, "server saw {aborted} aborted connections");
}

#[wasm_bindgen_test]
async fn a_cancel_token_stops_the_call_and_every_item_gets_a_result() {
    let cancel = CancelToken::new();
    let processor = BatchProcessor::builder()
        .concurrency(2)
        .cancel_on(cancel.clone())
        .build()
        .unwrap();
    let c = cancel.clone();
    wasm_bindgen_futures::spawn_local(async move {
        JsClock.sleep(MS(100)).await;
        c.cancel();
    });
    let started = JsClock.now();
    let results = processor
        .map(["/hang"; 4], |path, ctx| async move {
            get_json(path, ctx.signal()).await
        })
        .await;
    let aborted = Some(ErrorKind::Aborted);
    assert_eq!(
        kinds(&results),
        [(aborted, 1), (aborted, 1), (aborted, 0), (aborted, 0)]
    );
    assert!(JsClock.now() - started < MS(5000));
}

#[wasm_bindgen_test]
async fn an_abort_signal_and_the_deadline_stop_a_stream() {
    let controller = AbortController::new().unwrap();
    let processor = BatchProcessor::builder()
        .signal(controller.signal())
        .build()
        .unwrap();
    let mut stream = processor.stream([10u64, 5_000], |ms, ctx| async move {
        JsClock.sleep(MS(ms)).await;
        Ok::<_, Failure>(ctx.index)
    });
    let first = stream.next().await.unwrap();
    assert_eq!((first.index, first.outcome), (0, Ok(0)));
    controller.abort();
    let rest: Vec<_> = stream.collect().await;
    assert_eq!(kinds(&rest), [(Some(ErrorKind::Aborted), 1)]);

    let processor = BatchProcessor::builder().deadline(MS(100)).build().unwrap();
    let results = processor
        .map([5_000u64], |ms, _ctx| async move {
            JsClock.sleep(MS(ms)).await;
            Ok::<_, Failure>(())
        })
        .await;
    assert_eq!(kinds(&results), [(Some(ErrorKind::Deadline), 1)]);
}

#[wasm_bindgen_test]
async fn run_sends_provider_requests_and_reads_the_replies() {
    let key = unique("rust-run");
    let claude = BatchProcessor::builder()
        .anthropic("sk-ant-test-key")
        .base_url(server())
        .backoff(MS(10), MS(20))
        .build()
        .unwrap();
    let message = |model: &str, text: &str| json!({ "model": model, "max_tokens": 50, "messages": [{ "role": "user", "content": text }] });
    let requests = vec![
        message("claude-test", "hello"),
        message(&format!("flaky:{key}:1:503"), "again"),
        json!({ "model": "claude-test", "messages": [] }),
    ];
    let results = claude.run(requests).await;
    let reply = results[0].outcome.as_ref().unwrap();
    assert_eq!(reply.text, "echo: hello");
    assert_eq!(reply.stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(reply.usage.input_tokens, 5);
    assert_eq!(reply.rate_limits.and_then(|l| l.requests.limit), Some(50));
    let body: serde_json::Value = reply.body_as().unwrap();
    assert_eq!(body["id"], "msg_test");
    let retried = results[1].outcome.as_ref().unwrap();
    assert_eq!(
        (retried.text.as_str(), results[1].attempts),
        ("echo: again", 2)
    );
    let invalid = results[2].outcome.as_ref().unwrap_err();
    assert_eq!(
        (invalid.kind(), results[2].attempts),
        (ErrorKind::Invalid, 0)
    );
    assert_eq!(invalid.error.message, "request body needs `max_tokens`");

    let gpt = BatchProcessor::builder()
        .openai("sk-test")
        .base_url(server())
        .build()
        .unwrap();
    let results = gpt
        .run([json!({ "model": "gpt-test", "messages": [{ "role": "user", "content": "hi" }] })])
        .await;
    let reply = results[0].outcome.as_ref().unwrap();
    assert_eq!(reply.text, "echo: hi");
    assert_eq!(reply.rate_limits.and_then(|l| l.requests.limit), Some(500));

    let none = BatchProcessor::new().run([json!({})]).await;
    let failed = none[0].outcome.as_ref().unwrap_err();
    assert_eq!(failed.kind(), ErrorKind::Invalid);
    assert!(failed.error.message.contains(".anthropic(key)"), "{failed}");
}

#[wasm_bindgen_test]
async fn run_starts_one_request_of_a_cached_prefix_before_the_rest() {
    // The test server reports no cache usage (the simulator's runs do: tests/js/cache.test.mjs);
    // what shows here is the order. Four requests share a `cache_control` system prompt and
    // each takes 150 ms: cache-aware, one goes first and the other three once its reply began
    // (at most 3 in flight); with `cache_aware(false)` all four at once.
    // Long enough to be cached (a prefix shorter than 1,024 bytes is never grouped).
    let text = format!(
        "{} {}",
        unique("a shared system prompt"),
        "rule ".repeat(300)
    );
    let system =
        json!([{ "type": "text", "text": text, "cache_control": { "type": "ephemeral" } }]);
    let requests: Vec<_> = (0..4)
        .map(|i| json!({ "model": "slow:150", "max_tokens": 50, "system": system, "messages": [{ "role": "user", "content": format!("ticket {i}") }] }))
        .collect();
    let mut most = Vec::new();
    for aware in [true, false] {
        let claude = BatchProcessor::builder()
            .anthropic("sk-ant-test-key")
            .base_url(server())
            .concurrency(4)
            .cache_aware(aware)
            .build()
            .unwrap();
        let guard = AbortController::new().unwrap();
        get_json("/reset", &guard.signal()).await.expect("reset");
        let results = claude.run(requests.clone()).await;
        assert!(
            results.iter().all(|r| r.outcome.is_ok()),
            "{:?}",
            kinds(&results)
        );
        let stats = get_json("/stats", &guard.signal()).await.expect("stats");
        most.push(stats["maxInFlight"].as_f64().unwrap());
    }
    assert_eq!(most, [3.0, 4.0]);
}

#[wasm_bindgen_test]
async fn run_falls_back_when_the_first_model_is_overloaded() {
    // The test server answers the model "status:529" with 529 overloaded_error, always.
    let (moves, fallbacks) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let (m, f) = (moves.clone(), fallbacks.clone());
    let second = Upstream::anthropic("sk-ant-second-key").base_url(server());
    let processor = BatchProcessor::builder()
        .anthropic("sk-ant-first-key")
        .base_url(server())
        .max_retries(2)
        .fallback(
            Alternative::upstream(second)
                .with_model("claude-haiku-4-5")
                .max_tokens(20),
        )
        .on_event(move |e| {
            if let Event::Fallback { from: 0, to: 1, .. } = e {
                m.set(m.get() + 1);
            }
        })
        .on_progress(move |p| f.set(p.fallbacks))
        .build()
        .unwrap();
    let model = |i: usize| {
        if i % 2 == 0 {
            "status:529"
        } else {
            "claude-test"
        }
    };
    let requests = (0..6).map(|i| json!({ "model": model(i), "max_tokens": 50, "messages": [{ "role": "user", "content": format!("doc {i}") }] }));
    let results = processor.run(requests).await;
    for (i, r) in results.iter().enumerate() {
        let reply = r.outcome.as_ref().expect("every item succeeds");
        assert_eq!(reply.text, format!("echo: doc {i}"));
        let served = r.served_by.clone().unwrap();
        if i % 2 == 0 {
            // Moved at once on the 529: one failed attempt, then the second alternative.
            assert_eq!(
                served,
                ServedBy {
                    provider: "anthropic",
                    model: Some("claude-haiku-4-5".into()),
                    alternative: 1
                }
            );
            assert_eq!(r.attempts, 2);
            assert!(
                reply.usd.is_some_and(|usd| usd > 0.0),
                "a priced model: {:?}",
                reply.usd
            );
        } else {
            assert_eq!(
                served,
                ServedBy {
                    provider: "anthropic",
                    model: Some("claude-test".into()),
                    alternative: 0
                }
            );
            assert_eq!((r.attempts, reply.usd), (1, None));
        }
    }
    assert_eq!((moves.get(), fallbacks.get()), (3, 3));

    // Without fallbacks the same overload fails its items, and results name no alternative.
    let plain = BatchProcessor::builder()
        .anthropic("k")
        .base_url(server())
        .max_retries(0)
        .build()
        .unwrap();
    let results = plain.run([json!({ "model": "status:529", "max_tokens": 5, "messages": [{ "role": "user", "content": "x" }] })]).await;
    let failed = results[0].outcome.as_ref().unwrap_err();
    assert_eq!(
        (failed.error.status, &results[0].served_by),
        (Some(529), &None)
    );
}

#[wasm_bindgen_test]
async fn bad_fallbacks_fail_at_build_naming_the_entry_and_the_cost_cap_holds() {
    let claude = || BatchProcessor::builder().anthropic("sk-ant-first");
    let secret = "sk-ant-never-shown-123";
    let cases = [
        (
            claude().fallbacks([]),
            "fallbacks must name at least one alternative, got none",
        ),
        (
            BatchProcessor::builder().fallback(Alternative::model("m")),
            "fallbacks needs a provider",
        ),
        (
            claude()
                .fallback(Alternative::model("m"))
                .fallback(Alternative::upstream(Upstream::openai(secret))),
            "fallbacks[1].provider.name must be \"anthropic\", the first choice's API",
        ),
        (
            claude().fallback(Alternative::model("m").max_tokens(0)),
            "fallbacks[0].overrides.max_tokens must be an integer in 1..=10000000, got 0",
        ),
        (
            claude().fallback(Alternative::model("")),
            "fallbacks[0].model must be",
        ),
        (
            claude().fallback(Alternative::upstream(
                Upstream::anthropic(secret).base_url("ftp://x"),
            )),
            "fallbacks[0].provider.baseUrl",
        ),
        (
            claude().fallback_after(MS(100)),
            "fallbackAfterMs applies only with fallbacks",
        ),
        (claude().max_cost_usd(-1.0), "maxCostUsd must be"),
    ];
    for (builder, message) in cases {
        let err = builder.build().unwrap_err();
        assert!(
            err.message.starts_with(message),
            "{err} (expected {message})"
        );
        assert!(!err.message.contains(secret));
    }

    // A cap of a millionth of a dollar: a priced request cannot start (cost_cap, nothing
    // sent); an unpriced one cannot be bounded (invalid).
    let capped = claude()
        .base_url(server())
        .max_cost_usd(0.000001)
        .build()
        .unwrap();
    let ask = |model: &str| json!({ "model": model, "max_tokens": 1000, "messages": [{ "role": "user", "content": "hi" }] });
    let results = capped.run([ask("claude-haiku-4-5")]).await;
    assert_eq!(kinds(&results), [(Some(ErrorKind::CostCap), 0)]);
    let results = capped.run([ask("claude-test")]).await;
    let failed = results[0].outcome.as_ref().unwrap_err();
    assert_eq!(
        (failed.kind(), results[0].attempts),
        (ErrorKind::Invalid, 0)
    );
    assert!(
        failed.error.message.starts_with("maxCostUsd needs a price"),
        "{failed}"
    );
}
