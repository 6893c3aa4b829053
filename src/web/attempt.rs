//! What an attempt runs: the caller's function (map, stream with a function) or a request
//! (run, stream without one). Both kinds share one attempt type and one value type, so the
//! executor is compiled once into the wasm, not once per kind. With `fallbacks`, `run`'s
//! attempt goes to the alternative the executor names (`Routed`).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use js_sys::Function;
use wasm_bindgen::prelude::*;

use super::abort::AbortGuard;
use super::clock::JsClock;
use super::fetch::{request_init, send, spec_value, BodyRules};
use super::get;
use super::items::Items;
use super::provider::{provider_limits, provider_request, provider_value, Metered};
use super::task::{start_task, TaskAttempt};
use crate::core::cache_groups::Began;
use crate::core::clock::Clock;
use crate::error::{ErrorKind, Failure};
use crate::providers::Provider;
use crate::redact::Secrets;

/// The work of one call's items.
pub(crate) enum Task {
    /// `fn(item, { signal, attempt, index })`, its signal fired when the attempt is dropped
    /// (timeout, deadline, cancel).
    Map(Rc<Function>),
    /// A fetch spec, or with a provider its request body; the request is aborted when the
    /// attempt is dropped. A 2xx body past the byte cap (`maxResponseBytes`) fails the item.
    Run(Option<Rc<Provider>>, u64),
    /// [`Task::Run`] with a provider and its fallbacks: each attempt goes to the alternative
    /// the executor names.
    Routed(Rc<Routed>),
}

/// One alternative of `fallbacks`: an upstream of the first choice's API (its own, when not
/// given) and/or a model, with request fields of its own. Validated at construction; kept as
/// the JS values `routeRequest` (glue.js) sets on each request.
pub(crate) struct Alternative {
    pub provider: Rc<Provider>,
    /// The model (a string), or `undefined`: the item's own.
    pub model: JsValue,
    /// A fresh object of the validated overrides (never the caller's own), or `undefined`.
    pub overrides: JsValue,
}

/// One call of `run` with fallbacks: the first choice, the alternatives, and which one each
/// item's last attempt went to (`servedBy`).
pub(crate) struct Routed {
    pub first: Rc<Provider>,
    pub fallbacks: Rc<[Alternative]>,
    pub max_bytes: u64,
    /// Per item, `{ provider, model, alternative }` of its last attempt (`routeRequest`).
    served: js_sys::Array,
}

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    /// The body of `item` on `alternative` (a copy with `model` and `overrides` set; the item
    /// itself on the first choice), noted as `served[index]`.
    #[wasm_bindgen(js_name = routeRequest)]
    fn route_request(
        served: &js_sys::Array,
        index: u32,
        item: &JsValue,
        alternative: u32,
        provider: &str,
        model: &JsValue,
        overrides: &JsValue,
    ) -> JsValue;
}

impl Routed {
    pub(crate) fn new(first: Rc<Provider>, fallbacks: Rc<[Alternative]>, max_bytes: u64) -> Self {
        Routed {
            first,
            fallbacks,
            max_bytes,
            served: js_sys::Array::new(),
        }
    }

    /// `servedBy` of item `index`: the alternative its last attempt went to (undefined when
    /// it made none).
    pub(crate) fn served_by(&self, index: usize) -> JsValue {
        self.served.get(index as u32)
    }

    /// The request of `item` on alternative `route` (0: the first choice, sent as it is), and
    /// its provider; notes it as the item's `servedBy`.
    fn request(&self, index: usize, route: usize, item: &JsValue) -> (Rc<Provider>, JsValue) {
        let alt = route.checked_sub(1).and_then(|k| self.fallbacks.get(k));
        let provider = alt.map_or(&self.first, |alt| &alt.provider).clone();
        let none = JsValue::UNDEFINED;
        let (model, overrides) = alt.map_or((&none, &none), |alt| (&alt.model, &alt.overrides));
        let body = route_request(
            &self.served,
            index as u32,
            item,
            route as u32,
            provider.kind.name(),
            model,
            overrides,
        );
        (provider, body)
    }
}

impl Task {
    /// Starts attempt `attempt` of item `index` now, on alternative `route` (0: the first
    /// choice; only [`Task::Routed`] has others). The item was read once before (its cost);
    /// one that throws only now fails this attempt as `invalid`. Whatever the attempt reports
    /// is scrubbed of `secrets` (and of a fetch spec's own credentials). A provider's request
    /// tells `began`, when given (a prompt-cache group's primer, `cacheAware`), that its
    /// reply's headers are in.
    pub(crate) fn start(
        &self,
        index: usize,
        attempt: u32,
        route: usize,
        items: &Items,
        secrets: &Rc<Secrets>,
        began: Option<Began>,
    ) -> Attempt {
        let work = match (self, items.get(index)) {
            (_, Err(message)) => Work::Unreadable(Some(message)),
            (Task::Map(f), Ok(item)) => Work::Map(start_task(f, item, index, attempt)),
            (Task::Run(provider, max_bytes), Ok(item)) => Work::Run(request(
                provider.clone(),
                item,
                secrets.clone(),
                *max_bytes,
                began,
            )),
            (Task::Routed(routed), Ok(item)) => {
                let (provider, body) = routed.request(index, route, &item);
                let max_bytes = routed.max_bytes;
                Work::Run(request(
                    Some(provider),
                    body,
                    secrets.clone(),
                    max_bytes,
                    began,
                ))
            }
        };
        Attempt {
            work,
            secrets: secrets.clone(),
        }
    }
}

type Request = Pin<Box<dyn Future<Output = Result<Metered, Failure>>>>;

fn request(
    provider: Option<Rc<Provider>>,
    item: JsValue,
    secrets: Rc<Secrets>,
    max_bytes: u64,
    began: Option<Began>,
) -> Request {
    let guard = AbortGuard::new();
    Box::pin(async move {
        let signal = guard.signal();
        let provider = provider.as_deref();
        // A fetch spec's own credentials are scrubbed too; only a provider's request is a
        // prompt-cache primer.
        let with_spec;
        let secrets: &Secrets = match provider {
            Some(_) => &secrets,
            None => {
                with_spec = secrets.with(&spec_secrets(&item));
                &with_spec
            }
        };
        // A prompt-cache primer's reply is asked for as a stream: its first byte, which the
        // rest of its group waits for, then comes when the provider starts the reply rather
        // than when it is done. Its body is put back together as the Message (`send`).
        // (Only an Anthropic call groups, and its alternatives are of its API.)
        let rules = BodyRules {
            max_bytes,
            secrets,
            began: began.as_ref().filter(|_| provider.is_some()),
        };
        // One `send` for both kinds (its future is large: once in the wasm, not twice).
        let sent = match provider {
            Some(p) => provider_request(p, &item, rules.began.is_some(), &signal),
            None => request_init(&item, &signal),
        };
        let now_ms = JsClock.unix_ms();
        let read_limits = |h: &dyn Fn(&str) -> Option<String>| {
            provider.and_then(|p| provider_limits(p, h, now_ms))
        };
        let out = match sent {
            Ok((url, init)) => send(&url, &init, &read_limits, &rules).await,
            Err(failure) => Err(failure),
        };
        let out = match provider {
            Some(p) => out.and_then(|reply| provider_value(p, &reply, now_ms)),
            None => out
                .map(|reply| {
                    let value = spec_value(&reply);
                    scrub_headers(&value, secrets);
                    Metered::plain(value)
                })
                .map_err(|f| scrub(f, secrets)),
        };
        guard.disarm();
        out
    })
}

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = specSecrets)]
    fn spec_credentials(spec: &JsValue) -> js_sys::Array;
}

/// The credentials a fetch spec sends in its headers (`authorization`, `x-api-key`, ...).
fn spec_secrets(spec: &JsValue) -> Secrets {
    let mut secrets = Secrets::default();
    for value in spec_credentials(spec).iter().filter_map(|v| v.as_string()) {
        secrets.add(&value);
    }
    secrets
}

/// A failure with its message and type scrubbed of `secrets`.
fn scrub(mut failure: Failure, secrets: &Secrets) -> Failure {
    if !secrets.is_empty() {
        failure.message = secrets.scrub(&failure.message);
        failure.error_type = failure.error_type.map(|t| secrets.scrub(&t));
    }
    failure
}

/// A fetch spec value's `headers` copy, scrubbed in place (an upstream may echo a key in a
/// header as well as in the body).
fn scrub_headers(value: &JsValue, secrets: &Secrets) {
    let Some(headers) = get(value, "headers").filter(|_| !secrets.is_empty()) else {
        return;
    };
    for key in js_sys::Object::keys(headers.unchecked_ref::<js_sys::Object>()).iter() {
        let scrubbed = js_sys::Reflect::get(&headers, &key)
            .ok()
            .and_then(|v| v.as_string())
            .map(|v| secrets.scrub(&v));
        if let Some(v) = scrubbed {
            let _ = js_sys::Reflect::set(&headers, &key, &JsValue::from_str(&v));
        }
    }
}

/// One attempt of either kind, scrubbed of the call's secrets; a task's value arrives as a
/// [`Metered::plain`] value.
#[must_use = "dropping the attempt aborts it"]
pub(crate) struct Attempt {
    work: Work,
    secrets: Rc<Secrets>,
}

enum Work {
    Map(TaskAttempt),
    Run(Request),
    /// The item threw when read: fails at once.
    Unreadable(Option<String>),
}

impl Future for Attempt {
    type Output = Result<Metered, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let out = match &mut this.work {
            Work::Map(task) => Pin::new(task).poll(cx).map(|out| out.map(Metered::plain)),
            Work::Run(request) => request.as_mut().poll(cx),
            Work::Unreadable(message) => Poll::Ready(Err(Failure::new(
                ErrorKind::Invalid,
                message.take().unwrap_or_default(),
            ))),
        };
        out.map(|out| out.map_err(|f| scrub(f, &this.secrets)))
    }
}
