//! The wasm edge on real parts: JS timers, the global `fetch` against a loopback server
//! (cross-origin in the browser, so CORS is exercised), real AbortController timeouts, and
//! the executor on the JS clock. Run by scripts/test-wasm.sh in Node and in headless Chromium;
//! the server's URL is baked in at compile time (`EDGEBATCH_TEST_SERVER`).
#![cfg(target_arch = "wasm32")]

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use edgebatch::core::cancel::CancelToken;
use edgebatch::core::executor::{Config, Executor, ItemResult};
use edgebatch::core::pacer::Pacer;
use edgebatch::web::abort::AbortGuard;
use edgebatch::web::clock::JsClock;
use edgebatch::web::fetch::fetch_spec;
use edgebatch::web::{get, set};
use edgebatch::{Clock, ErrorKind, Failure};
use js_sys::Object;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

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

fn spec(path: &str) -> JsValue {
    let o = Object::new();
    set(&o, "url", format!("{}{path}", server()));
    o.into()
}

async fn stats() -> JsValue {
    let guard = AbortGuard::new();
    let v = fetch_spec(&spec("/stats"), &guard.signal())
        .await
        .expect("stats");
    guard.disarm();
    get(&v, "body").expect("stats body")
}

fn number(v: &JsValue, key: &str) -> f64 {
    get(v, key)
        .and_then(|n| n.as_f64())
        .unwrap_or_else(|| panic!("{key} is not a number"))
}

#[wasm_bindgen_test]
async fn js_clock_sleeps_at_least_as_long_as_asked() {
    let clock = JsClock;
    let t0 = clock.now();
    clock.sleep(MS(60)).await;
    assert!(
        clock.now() - t0 >= MS(59),
        "woke after {:?}",
        clock.now() - t0
    );
    assert!(clock.unix_ms() > 1.7e12, "wall clock reads the real date");
}

#[wasm_bindgen_test]
async fn a_dropped_sleep_never_fires() {
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let sleep = JsClock.sleep(MS(20));
    let pending = async move {
        sleep.await;
        f.set(true);
    };
    drop(pending);
    JsClock.sleep(MS(60)).await;
    assert!(!fired.get());
}

#[wasm_bindgen_test]
async fn fetch_sends_json_and_parses_the_reply() {
    let o = Object::new();
    set(&o, "url", format!("{}/echo", server()));
    set(&o, "method", "POST");
    let body = Object::new();
    set(&body, "hello", "world");
    set(&o, "body", body);
    let guard = AbortGuard::new();
    let v = fetch_spec(&o.into(), &guard.signal())
        .await
        .expect("echo works");
    guard.disarm();
    assert_eq!(number(&v, "status"), 200.0);
    let reply = get(&v, "body").unwrap();
    assert_eq!(get(&reply, "method").unwrap().as_string().unwrap(), "POST");
    assert_eq!(
        get(&reply, "body").unwrap().as_string().unwrap(),
        r#"{"hello":"world"}"#
    );
    let sent_headers = get(&reply, "headers").unwrap();
    assert_eq!(
        get(&sent_headers, "content-type")
            .unwrap()
            .as_string()
            .unwrap(),
        "application/json"
    );
    let headers = get(&v, "headers").unwrap();
    assert!(get(&headers, "content-type")
        .unwrap()
        .as_string()
        .unwrap()
        .contains("json"));
}

#[wasm_bindgen_test]
async fn a_non_2xx_reply_is_an_http_failure_with_the_body_read() {
    let guard = AbortGuard::new();
    let err = fetch_spec(
        &spec("/status/529?type=overloaded_error&retryAfterMs=250"),
        &guard.signal(),
    )
    .await
    .unwrap_err();
    guard.disarm();
    assert_eq!((err.kind(), err.status), (ErrorKind::Http, Some(529)));
    assert_eq!(err.error_type.as_deref(), Some("overloaded_error"));
    assert_eq!(err.message, "test server: status 529");
    assert_eq!(
        err.server_wait,
        Some(MS(250)),
        "CORS exposes the retry headers"
    );
}

#[wasm_bindgen_test]
async fn a_redirect_is_not_followed_and_names_no_url() {
    // Node sees the 302 and its Location; a browser only an opaque redirect. Either way the
    // request is not sent on, and no part of the target's URL but its host is shown.
    let guard = AbortGuard::new();
    let err = fetch_spec(&spec("/redirect"), &guard.signal())
        .await
        .unwrap_err();
    guard.disarm();
    assert_eq!(err.kind(), ErrorKind::Http, "{err:?}");
    assert_eq!(err.retryable, Some(false));
    assert!(
        err.message.starts_with("redirect not followed: "),
        "{}",
        err.message
    );
    assert!(!err.message.contains("t0k3n") && !err.message.contains("/echo"));
    if let Some(status) = err.status {
        assert_eq!(status, 302);
        assert!(
            err.message.contains("to host localhost:"),
            "{}",
            err.message
        );
    }
}

#[wasm_bindgen_test]
async fn a_dropped_connection_is_a_network_failure() {
    let guard = AbortGuard::new();
    let err = fetch_spec(&spec("/drop"), &guard.signal())
        .await
        .unwrap_err();
    guard.disarm();
    assert_eq!(err.kind(), ErrorKind::Network, "{err:?}");
}

#[wasm_bindgen_test]
async fn a_spec_without_url_is_invalid() {
    let guard = AbortGuard::new();
    let err = fetch_spec(&Object::new().into(), &guard.signal())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let err = fetch_spec(&JsValue::from(5), &guard.signal())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

#[wasm_bindgen_test]
async fn the_attempt_timeout_really_aborts_the_request() {
    let before = number(&stats().await, "aborted");
    let config = Config {
        max_retries: 1,
        timeout: Some(MS(150)),
        ..Config::default()
    };
    let results = run_specs_n(&config, vec![spec("/hang")]).await;
    let err = results[0].outcome.as_ref().unwrap_err();
    assert_eq!((err.kind, results[0].attempts), (ErrorKind::Timeout, 2));
    // The server sees both connections go away: the abort reached the network.
    // Up to 5 s: on a loaded machine the server hears of a reset late.
    let mut aborted = 0.0;
    for _ in 0..250 {
        aborted = number(&stats().await, "aborted") - before;
        if aborted >= 2.0 {
            break;
        }
        JsClock.sleep(MS(20)).await;
    }
    assert!(aborted >= 2.0, "server saw {aborted} aborted connections");
}

#[wasm_bindgen_test]
async fn retries_reach_a_flaky_server_and_succeed() {
    let key = unique("flaky");
    let config = Config {
        max_retries: 3,
        backoff: edgebatch::core::backoff::Backoff::new(
            MS(10),
            MS(40),
            edgebatch::core::backoff::Jitter::Full,
        )
        .unwrap(),
        ..Config::default()
    };
    let results = run_specs_n(
        &config,
        vec![spec(&format!("/flaky/{key}?fail=2&status=503"))],
    )
    .await;
    let value = results[0].outcome.as_ref().expect("third attempt succeeds");
    assert_eq!(results[0].attempts, 3);
    let body = get(value, "body").unwrap();
    assert_eq!(number(&body, "attempt"), 3.0);
}

#[wasm_bindgen_test]
async fn executor_on_real_timers_bounds_concurrency_and_keeps_order() {
    let in_flight = Rc::new(Cell::new(0usize));
    let max = Rc::new(Cell::new(0usize));
    let (f, m) = (in_flight.clone(), max.clone());
    let task = move |i: usize, _attempt: u32| {
        let (f, m) = (f.clone(), m.clone());
        async move {
            f.set(f.get() + 1);
            m.set(m.get().max(f.get()));
            JsClock.sleep(MS(5 + (i as u64 * 7) % 30)).await;
            f.set(f.get() - 1);
            Ok::<_, Failure>(i * 10)
        }
    };
    let config = Config {
        concurrency: 3,
        ..Config::default()
    };
    let pacer = Pacer::unpaced(config.concurrency);
    let results = Executor::new(&config, &JsClock, &pacer)
        .seed(1)
        .run(20, task, &(), &mut ())
        .await;
    let values: Vec<usize> = results
        .iter()
        .map(|r| *r.outcome.as_ref().unwrap())
        .collect();
    assert_eq!(values, (0..20).map(|i| i * 10).collect::<Vec<_>>());
    assert_eq!(max.get(), 3);
}

#[wasm_bindgen_test]
async fn cancel_on_real_timers_aborts_requests_and_resolves() {
    let cancel = CancelToken::new();
    let c = cancel.clone();
    wasm_bindgen_futures::spawn_local(async move {
        JsClock.sleep(MS(100)).await;
        c.cancel();
    });
    let specs: Vec<JsValue> = (0..4).map(|_| spec("/hang")).collect();
    let specs = Rc::new(specs);
    let s = specs.clone();
    let task = move |i: usize, _: u32| {
        let guard = AbortGuard::new();
        let spec = s[i].clone();
        async move {
            let out = fetch_spec(&spec, &guard.signal()).await;
            guard.disarm();
            out
        }
    };
    let config = Config {
        concurrency: 2,
        ..Config::default()
    };
    let pacer = Pacer::unpaced(config.concurrency);
    let results = Executor::new(&config, &JsClock, &pacer)
        .cancel_on(&cancel)
        .seed(1)
        .run(4, task, &(), &mut ())
        .await;
    let kinds: Vec<(ErrorKind, u32)> = results
        .iter()
        .map(|r| (r.outcome.as_ref().unwrap_err().kind, r.attempts))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (ErrorKind::Aborted, 1),
            (ErrorKind::Aborted, 1),
            (ErrorKind::Aborted, 0),
            (ErrorKind::Aborted, 0)
        ]
    );
}

#[wasm_bindgen_test]
async fn global_fetch_is_bound_without_window() {
    // The same binding serves Node (no `window`) and the browser.
    let global = js_sys::global();
    assert!(get(&global, "fetch").is_some_and(|f| f.is_function()));
    let p: js_sys::Promise = js_sys::Promise::resolve(&JsValue::from(1));
    assert_eq!(JsFuture::from(p).await.unwrap().as_f64(), Some(1.0));
}

/// Runs specs through the executor on the JS clock, as `run()` does.
async fn run_specs_n(config: &Config, specs: Vec<JsValue>) -> Vec<ItemResult<JsValue>> {
    let n = specs.len();
    let specs = Rc::new(specs);
    let task = move |i: usize, _attempt: u32| {
        let guard = AbortGuard::new();
        let spec = specs[i].clone();
        async move {
            let out = fetch_spec(&spec, &guard.signal()).await;
            guard.disarm();
            out
        }
    };
    let pacer = Pacer::unpaced(config.concurrency);
    Executor::new(config, &JsClock, &pacer)
        .seed(5)
        .run(n, task, &(), &mut ())
        .await
}
