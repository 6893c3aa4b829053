//! Calling the caller's JS task function, and reading whatever it throws into a [`Failure`].

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use js_sys::Function;
use wasm_bindgen::prelude::*;
use web_sys::Headers;

use super::{describe, get, has, JsJson};
use crate::error::{ErrorKind, Failure};
use crate::providers::headers::{parse_should_retry, server_wait};
use crate::providers::http::parse_error_body;

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = invokeTask)]
    fn invoke_task(
        task: &Function,
        item: &JsValue,
        index: u32,
        attempt: u32,
        id: f64,
        settle: &JsValue,
    ) -> JsValue;
    #[wasm_bindgen(js_name = abortTask)]
    fn abort_task(ctx: &JsValue);
    #[wasm_bindgen(js_name = thrownMessage)]
    fn thrown_message(err: &JsValue) -> String;
}

/// JS calls waiting for their answer, by id: a task's promise, a permit source's, a timer of
/// the JS clock. One settle callback serves every call of every batch and lives as long as the
/// module: an answer that comes after its call was dropped (timeout, cancel) finds no slot and
/// is ignored, instead of calling a freed closure. Ids only grow, so the slots of the calls
/// still waiting, kept in id order, are found by binary search (a call that never answers, a
/// batch's deadline timer say, holds only its own slot).
struct Pending {
    next_id: u64,
    slots: Vec<(u64, Slot)>,
    /// The settle callback, made at the first call.
    settle: Option<JsValue>,
}

impl Pending {
    fn insert(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.slots.push((id, Slot::default()));
        id
    }

    fn find(&self, id: u64) -> Option<usize> {
        self.slots.binary_search_by_key(&id, |(id, _)| *id).ok()
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Slot> {
        let at = self.find(id)?;
        Some(&mut self.slots[at].1)
    }

    fn remove(&mut self, id: u64) {
        if let Some(at) = self.find(id) {
            self.slots.remove(at);
        }
    }
}

#[derive(Default)]
struct Slot {
    outcome: Option<Result<JsValue, JsValue>>,
    waker: Option<Waker>,
}

thread_local! {
    // `const`, and the callback made on first use inside it rather than in a lazy thread local
    // of its own: no lazy initialisation, whose code each access carried (-0.2 KB of wasm).
    static PENDING: RefCell<Pending> = const {
        RefCell::new(Pending {
            next_id: 0,
            slots: Vec::new(),
            settle: None,
        })
    };
}

fn settle(id: f64, ok: bool, value: JsValue) {
    let waker = PENDING.with_borrow_mut(|p| {
        let slot = p.get_mut(id as u64)?;
        slot.outcome = Some(if ok { Ok(value) } else { Err(value) });
        slot.waker.take()
    });
    if let Some(w) = waker {
        w.wake();
    }
}

/// Calls `task(item, { signal, attempt, index })` now. The returned future settles with the
/// task's value or its failure; dropping it early fires the task's signal.
pub fn start_task(task: &Function, item: JsValue, index: usize, attempt: u32) -> TaskAttempt {
    settled_by(|id, settle| invoke_task(task, &item, index as u32, attempt, id, settle))
}

/// A future of what a JS call reports through `settle(id, ok, value)`: `start(id, settle)`
/// makes the call and returns the context `abortTask` gets if the future is dropped first
/// (glue.js).
pub(crate) fn settled_by(start: impl FnOnce(f64, &JsValue) -> JsValue) -> TaskAttempt {
    let (id, settle) = PENDING.with_borrow_mut(|p| {
        let settle = p.settle.get_or_insert_with(|| {
            Closure::<dyn FnMut(f64, bool, JsValue)>::new(settle).into_js_value()
        });
        let settle = settle.clone();
        (p.insert(), settle)
    });
    let ctx = start(id as f64, &settle);
    TaskAttempt {
        id,
        ctx,
        settled: false,
    }
}

/// One attempt of a JS task; see [`start_task`].
#[must_use = "dropping the attempt aborts it"]
pub struct TaskAttempt {
    id: u64,
    ctx: JsValue,
    settled: bool,
}

impl TaskAttempt {
    /// What the JS call settled with, as it came: `Ok` a value, `Err` a thrown one.
    pub(crate) fn poll_settled(&mut self, cx: &mut Context<'_>) -> Poll<Result<JsValue, JsValue>> {
        let id = self.id;
        let outcome = PENDING.with_borrow_mut(|p| {
            let slot = p.get_mut(id).expect("a pending attempt has a slot");
            let out = slot.outcome.take();
            if out.is_none() {
                slot.waker = Some(cx.waker().clone());
            }
            out
        });
        let Some(out) = outcome else {
            return Poll::Pending;
        };
        self.settled = true;
        Poll::Ready(out)
    }
}

impl Future for TaskAttempt {
    type Output = Result<JsValue, Failure>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.poll_settled(cx).map_err(|e| failure_from_js(&e))
    }
}

impl Drop for TaskAttempt {
    fn drop(&mut self) {
        PENDING.with_borrow_mut(|p| p.remove(self.id));
        if !self.settled {
            abort_task(&self.ctx);
        }
    }
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
    let message = thrown_message(err);
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
        // SDK errors carry the parsed reply body in `error` (Anthropic: the whole body;
        // OpenAI: its inner `error`); OpenAI's error also has `type` on itself.
        let body = get(err, "error").map(JsJson);
        let parsed = body.as_ref().map(parse_error_body).unwrap_or_default();
        failure.error_type = parsed
            .error_type
            .or_else(|| get(err, "type").and_then(|t| t.as_string()));
        failure.spend_cap = parsed.spend_cap;
        if let Some(headers) = get(err, "headers") {
            let read = |h: &str| header_value(&headers, h);
            failure.server_wait = server_wait(
                read("retry-after-ms").as_deref(),
                read("retry-after").as_deref(),
                js_sys::Date::now(),
            );
            failure.should_retry = read("x-should-retry")
                .as_deref()
                .and_then(parse_should_retry);
        }
    } else if is_network_error(&name, &code, &failure.message) {
        failure.kind = Some(ErrorKind::Network);
    }
    failure
}

fn is_network_error(name: &str, code: &str, message: &str) -> bool {
    NETWORK_NAMES.contains(&name)
        || NETWORK_CODES.contains(&code)
        || (name == "TypeError" && NETWORK_MESSAGES.iter().any(|m| has(message, m)))
}

/// A header from a `Headers` object or a plain object (any key case).
pub fn header_value(headers: &JsValue, name: &str) -> Option<String> {
    if let Some(h) = headers.dyn_ref::<Headers>() {
        return h.get(name).ok().flatten();
    }
    if !headers.is_object() {
        return None;
    }
    // Reflect, not Object.keys: a thrown error's `headers` may be a Proxy whose trap throws.
    let keys = js_sys::Reflect::own_keys(headers).ok()?;
    keys.iter()
        .filter_map(|k| k.as_string())
        .find(|k| k.eq_ignore_ascii_case(name))
        .and_then(|k| get(headers, &k))
        .map(|v| describe(&v))
}
