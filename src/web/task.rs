//! Calling the caller's JS task function, and reading whatever it throws into a [`Failure`].

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::Headers;

use super::{describe, get};
use crate::error::{ErrorKind, Failure};
use crate::providers::http::SPEND_CAP_CODE;

/// Calls `task(item, ctx)` now and returns a future of its settled value. A sync throw, a
/// rejection with any value and a plain (non-promise) return value are all handled.
pub fn call_task(
    task: &Function,
    item: &JsValue,
    ctx: &JsValue,
) -> impl std::future::Future<Output = Result<JsValue, Failure>> {
    let called = task.call2(&JsValue::UNDEFINED, item, ctx);
    async move {
        let value = called.map_err(|e| failure_from_js(&e))?;
        if !is_thenable(&value) {
            return Ok(value);
        }
        JsFuture::from(Promise::resolve(&value))
            .await
            .map_err(|e| failure_from_js(&e))
    }
}

fn is_thenable(value: &JsValue) -> bool {
    get(value, "then").is_some_and(|then| then.is_function())
}

/// Messages hosts give a failed `fetch`: Node/undici, Chromium, Firefox, Safari, workerd.
const NETWORK_MESSAGES: &[&str] = &[
    "fetch failed",
    "Failed to fetch",
    "NetworkError",
    "Load failed",
    "Network connection lost",
    "network error",
];

/// Error names (SDKs and Node) that mean the request never got an answer.
const NETWORK_NAMES: &[&str] = &[
    "APIConnectionError",
    "APIConnectionTimeoutError",
    "FetchError",
];

/// Node's socket error codes.
const NETWORK_CODES: &[&str] = &[
    "ECONNRESET",
    "ECONNREFUSED",
    "ETIMEDOUT",
    "EPIPE",
    "ENOTFOUND",
    "EAI_AGAIN",
    "UND_ERR_SOCKET",
];

/// Reads a thrown JS value: a numeric `status` makes it an HTTP error (SDK errors carry
/// `status`, `headers` and the parsed body in `error`); fetch and connection failures are
/// network errors; an own boolean `retryable` overrides; anything else is a task error.
pub fn failure_from_js(err: &JsValue) -> Failure {
    let text = |key: &str| get(err, key).and_then(|v| v.as_string());
    let message = text("message")
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| describe(err));
    let name = text("name").unwrap_or_default();
    let code = text("code").unwrap_or_default();
    let mut failure = Failure::new(ErrorKind::Task, message);
    failure.retryable = get(err, "retryable").and_then(|v| v.as_bool());

    let status = get(err, "status")
        .and_then(|v| v.as_f64())
        .filter(|s| s.fract() == 0.0 && (100.0..=599.0).contains(s));
    if let Some(status) = status {
        failure.kind = Some(ErrorKind::Http);
        failure.status = Some(status as u16);
        let body = get(err, "error");
        let inner = body.as_ref().and_then(|b| get(b, "error"));
        failure.error_type = [inner.as_ref(), body.as_ref(), Some(err)]
            .into_iter()
            .flatten()
            .find_map(|o| {
                get(o, "type")
                    .and_then(|t| t.as_string())
                    .filter(|t| t != "error")
            });
        failure.spend_cap = [inner.as_ref(), body.as_ref()]
            .into_iter()
            .flatten()
            .any(|o| {
                get(o, "details")
                    .and_then(|d| get(&d, "error_code"))
                    .and_then(|c| c.as_string())
                    == Some(SPEND_CAP_CODE.to_owned())
            });
        if let Some(headers) = get(err, "headers") {
            let read = |h: &str| header_value(&headers, h);
            failure.retry_after_ms = read("retry-after-ms");
            failure.retry_after = read("retry-after");
            failure.should_retry = read("x-should-retry");
        }
    } else if is_network_error(&name, &code, &failure.message) {
        failure.kind = Some(ErrorKind::Network);
    }
    failure
}

fn is_network_error(name: &str, code: &str, message: &str) -> bool {
    NETWORK_NAMES.contains(&name)
        || NETWORK_CODES.contains(&code)
        || (name == "TypeError" && NETWORK_MESSAGES.iter().any(|m| message.contains(m)))
}

/// A header from a `Headers` object or a plain object (any key case).
pub fn header_value(headers: &JsValue, name: &str) -> Option<String> {
    if let Some(h) = headers.dyn_ref::<Headers>() {
        return h.get(name).ok().flatten();
    }
    if !headers.is_object() {
        return None;
    }
    let keys = js_sys::Object::keys(headers.unchecked_ref::<js_sys::Object>());
    keys.iter()
        .filter_map(|k| k.as_string())
        .find(|k| k.eq_ignore_ascii_case(name))
        .and_then(|k| get(headers, &k))
        .map(|v| describe(&v))
}
