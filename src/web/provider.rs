//! `run()` with a provider: each item is a request body of the provider's own API, sent to its
//! endpoint with its auth headers; the reply is read into `{ text, stopReason, usage, reply }`.

use js_sys::{Object, JSON};
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, Headers, RequestInit};

use super::fetch::{not_json, send, BodyRules, ReadResponse};
use super::{get, got, parse_json, set, JsJson};
use crate::core::clock::Clock;
use crate::core::cost::{Pico, Prices};
use crate::core::limits::Feedback;
use crate::error::{ErrorKind, Failure};
use crate::providers::http::error_in_success;
use crate::providers::ratelimit::{Limit, RateLimits};
use crate::providers::{Provider, Usage};
use crate::web::clock::JsClock;

fn invalid(message: impl Into<String>) -> Failure {
    Failure::new(ErrorKind::Invalid, message)
}

/// A provider reply's value with what it tells the pacer (usage, rate-limit headers).
#[derive(Clone)]
pub struct Metered {
    /// `{ text, stopReason, usage, rateLimits?, reply }`, or any other value.
    pub value: JsValue,
    /// For the pacer; boxed, so that the many plain values (every `map` result) stay small.
    pub feedback: Option<Box<Feedback>>,
}

impl Metered {
    /// A value that tells the pacer nothing (a fetch spec's reply, a task's value).
    pub fn plain(value: JsValue) -> Self {
        Metered {
            value,
            feedback: None,
        }
    }

    /// What the value tells the pacer: usage and rate-limit headers, or nothing.
    pub fn feedback(&self) -> Feedback {
        self.feedback.as_deref().copied().unwrap_or_default()
    }

    /// What the value cost realtime, when its model has a price: a provider value's `reply`,
    /// or a `map()` value that is the SDK's own reply (a Message, a ChatCompletion).
    pub fn cost(&self, prices: &Prices) -> Option<Pico> {
        let reply = match self.feedback {
            Some(_) => get(&self.value, "reply")?,
            None => self.value.clone(),
        };
        crate::providers::reply_cost(prices, &JsJson(reply))
    }
}

/// Sends one request body through `provider`.
pub async fn call_provider(
    provider: &Provider,
    body: &JsValue,
    signal: &AbortSignal,
    rules: &BodyRules<'_>,
) -> Result<Metered, Failure> {
    let (url, init) = provider_request(provider, body, false, signal)?;
    let now_ms = JsClock.unix_ms();
    let read_limits = |h: &dyn Fn(&str) -> Option<String>| provider_limits(provider, h, now_ms);
    let reply = send(&url, &init, &read_limits, rules).await?;
    provider_value(provider, &reply, now_ms)
}

/// The rate limits a reply's headers tell, if any (for the failure of a non-2xx reply).
pub fn provider_limits(
    provider: &Provider,
    header: &dyn Fn(&str) -> Option<String>,
    now_ms: f64,
) -> Option<RateLimits> {
    Some(provider.rate_limits(header, now_ms)).filter(|l| !l.is_empty())
}

/// The URL and request of one request body to `provider`: a body that is not an object, or
/// that the provider's API refuses, is an `invalid` failure of that item only. `stream`: sent
/// with `"stream": true` added (a prompt-cache primer's; the caller's own body never asks).
pub fn provider_request(
    provider: &Provider,
    body: &JsValue,
    stream: bool,
    signal: &AbortSignal,
) -> Result<(String, RequestInit), Failure> {
    let endpoint = provider
        .endpoint()
        .ok_or_else(|| invalid("this provider takes fetch specs"))?;
    if !body.is_object() || js_sys::Array::is_array(body) {
        return Err(invalid(got("a request body must be an object", body)));
    }
    provider
        .check_request(&JsJson(body.clone()))
        .map_err(invalid)?;
    let json = JSON::stringify(body).map_err(|e| not_json("the request body", &e))?;
    let headers = Headers::new().map_err(|_| invalid("Headers is not available"))?;
    for (name, value) in &endpoint.headers {
        headers
            .set(name, value)
            .map_err(|_| invalid(format!("header {name} has a value fetch refuses")))?;
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&json);
    if stream {
        streamed(&init, body).map_err(|e| not_json("the request body", &e))?;
    }
    init.set_signal(Some(signal));
    // Never follow: the key would go along to wherever the redirect points.
    set(&init, "redirect", "manual");
    Ok((endpoint.url, init))
}

/// The value of a 2xx `reply` from `provider` (read at `now_ms`), or its failure: a body that
/// is not JSON, an error inside a 2xx, a reply the provider's API would not send.
pub fn provider_value(
    provider: &Provider,
    reply: &ReadResponse,
    now_ms: f64,
) -> Result<Metered, Failure> {
    let parsed = parse_json(&reply.text).ok_or_else(|| Failure {
        // A cut-off or garbled 2xx body is a transient fault worth another attempt.
        retryable: Some(true),
        ..Failure::http(reply.status, "the reply is not valid JSON")
    })?;
    if let Some(failure) = error_in_success(reply.status, &parsed) {
        return Err(failure);
    }
    let read = provider
        .parse_reply_parts(&parsed)
        .map_err(|m| Failure::http(reply.status, m))?;
    let limits = provider.rate_limits(&|h| reply.header(h), now_ms);

    let value = Object::new();
    // Joined in JS: the text stays out of the wasm memory.
    let parts: js_sys::Array = read.text.into_iter().map(|part| part.0).collect();
    set(&value, "text", parts.join(""));
    set(
        &value,
        "stopReason",
        read.stop_reason
            .map_or(JsValue::NULL, |s| JsValue::from_str(&s)),
    );
    set(&value, "usage", usage_object(read.usage));
    if !limits.is_empty() {
        set(&value, "rateLimits", limits_object(&limits));
    }
    set(&value, "reply", parsed.0);
    Ok(Metered {
        value: value.into(),
        feedback: Some(Box::new(Feedback {
            usage: Some(read.usage),
            limits: Some(limits).filter(|l| !l.is_empty()),
        })),
    })
}

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(catch)]
    fn streamed(init: &RequestInit, body: &JsValue) -> Result<(), JsValue>;
}

/// `{ inputTokens, outputTokens }`.
pub fn usage_object(usage: Usage) -> JsValue {
    let o = Object::new();
    set(&o, "inputTokens", usage.input_tokens as f64);
    set(&o, "outputTokens", usage.output_tokens as f64);
    o.into()
}

/// `{ requests?, tokens?, inputTokens?, outputTokens? }`, each `{ limit, remaining, resetMs }`
/// (`null` where the reply did not say).
pub fn limits_object(limits: &RateLimits) -> JsValue {
    let o = Object::new();
    let kinds = [
        ("requests", limits.requests),
        ("tokens", limits.tokens),
        ("inputTokens", limits.input_tokens),
        ("outputTokens", limits.output_tokens),
    ];
    for (name, limit) in kinds.into_iter().filter(|(_, l)| l.is_known()) {
        set(&o, name, limit_object(limit));
    }
    o.into()
}

fn limit_object(limit: Limit) -> JsValue {
    let o = Object::new();
    let num = |v: Option<u64>| v.map_or(JsValue::NULL, |n| JsValue::from_f64(n as f64));
    set(&o, "limit", num(limit.limit));
    set(&o, "remaining", num(limit.remaining));
    set(
        &o,
        "resetMs",
        num(limit.reset_in.map(|d| d.as_millis() as u64)),
    );
    o.into()
}
