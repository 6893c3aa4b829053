//! Rust values to the JS objects users see: results, errors, progress, events.

use js_sys::{Array, Object};
use wasm_bindgen::prelude::*;

use crate::core::cost::{usd, Prices};
use crate::core::executor::{Event, ItemResult, Progress};
use crate::web::attempt::Routed;
use crate::web::provider::{usage_object, Metered};
use crate::web::set;

pub(super) fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(super) fn event_object(event: &Event) -> JsValue {
    let o = Object::new();
    let common = |kind: &str, index: usize, attempt: u32, at| {
        set(&o, "type", kind);
        set(&o, "index", index as u32);
        set(&o, "attempt", attempt);
        set(&o, "atMs", ms(at));
    };
    match *event {
        Event::Start { index, attempt, at } => common("start", index, attempt, at),
        Event::End {
            index,
            attempt,
            at,
            latency,
            outcome,
            status,
        } => {
            common("end", index, attempt, at);
            set(&o, "latencyMs", ms(latency));
            set(&o, "outcome", outcome.map_or("ok", |k| k.as_str()));
            if let Some(s) = status {
                set(&o, "status", s);
            }
        }
        Event::Backoff {
            index,
            attempt,
            at,
            delay,
        } => {
            common("backoff", index, attempt, at);
            set(&o, "delayMs", ms(delay));
        }
        Event::Fallback {
            index,
            attempt,
            at,
            from,
            to,
            delay,
        } => {
            common("fallback", index, attempt, at);
            set(&o, "from", from as u32);
            set(&o, "to", to as u32);
            set(&o, "delayMs", ms(delay));
        }
        // The post-processing stage, after the attempt whose value it processes.
        Event::ProcessStart { index, attempt, at } => common("processStart", index, attempt, at),
        Event::ProcessEnd {
            index,
            attempt,
            at,
            latency,
            outcome,
        } => {
            common("processEnd", index, attempt, at);
            set(&o, "latencyMs", ms(latency));
            set(&o, "outcome", outcome.map_or("ok", |k| k.as_str()));
        }
    }
    o.into()
}

pub(super) fn progress_object(p: &Progress) -> JsValue {
    let o = Object::new();
    set(&o, "total", p.total as u32);
    set(&o, "done", p.done as u32);
    set(&o, "ok", p.ok as u32);
    set(&o, "failed", p.failed as u32);
    set(&o, "inFlight", p.in_flight as u32);
    set(&o, "queued", p.queued as u32);
    set(&o, "waiting", p.waiting as u32);
    set(&o, "retries", p.retries as f64);
    set(&o, "fallbacks", p.fallbacks as f64);
    set(&o, "processing", p.processing as u32);
    set(&o, "limit", p.limit as u32);
    set(&o, "limitReason", p.limit_reason);
    set(&o, "elapsedMs", ms(p.elapsed));
    o.into()
}

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = makeResult)]
    fn make_result(
        index: u32,
        ok: bool,
        payload: &JsValue,
        attempts: u32,
        elapsed_ms: f64,
        usage: &JsValue,
        served_by: &JsValue,
        usd: Option<f64>,
    ) -> JsValue;
    #[wasm_bindgen(js_name = makeError)]
    fn make_error(
        kind: &str,
        status: Option<u16>,
        error_type: Option<String>,
        message: &str,
        retryable: bool,
        retry_after_ms: Option<f64>,
        budget_refused_at: Option<u32>,
    ) -> JsValue;
}

/// The result object; a provider value's usage is lifted onto it, what it cost when its
/// model has a price (`usd`), and with fallbacks which alternative served it (`servedBy`).
pub(super) fn result_object(
    r: &ItemResult<Metered>,
    routed: Option<&Routed>,
    prices: &Prices,
) -> JsValue {
    let mut usage = JsValue::UNDEFINED;
    let mut cost = None;
    let (ok, payload) = match &r.outcome {
        Ok(v) => {
            if let Some(u) = v.feedback().usage {
                usage = usage_object(u);
            }
            cost = v.cost(prices).map(usd);
            (true, v.value.clone())
        }
        Err(e) => (
            false,
            make_error(
                e.kind.as_str(),
                e.status,
                e.error_type.clone(),
                &e.message,
                e.retryable,
                e.retry_after_ms.map(|ms| ms as f64),
                // 0: never started (a refused retry's last error starts past its head).
                e.budget.map(|b| b.last_error_at.unwrap_or(0)),
            ),
        ),
    };
    let served_by = routed.map_or(JsValue::UNDEFINED, |routed| routed.served_by(r.index));
    make_result(
        r.index as u32,
        ok,
        &payload,
        r.attempts,
        ms(r.elapsed),
        &usage,
        &served_by,
        cost,
    )
}

pub(super) fn results_array(
    results: &[ItemResult<Metered>],
    routed: Option<&Routed>,
    prices: &Prices,
) -> JsValue {
    results
        .iter()
        .map(|r| result_object(r, routed, prices))
        .collect::<Array>()
        .into()
}
