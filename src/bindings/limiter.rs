//! `Limiter`: the core's pacer as a permit source for JS callers that are not one
//! `BatchProcessor` — the Worker's limiter Durable Object, which every consumer of every batch
//! on one upstream account asks before each attempt. Time comes in as `nowMs` (ms since the
//! epoch, `Date.now()`), so the object holding it decides what "now" is.

use std::time::Duration;

use wasm_bindgen::prelude::*;

use super::js_options::{check, js_error, option, raw, show, type_error};
use crate::core::limits::{Cost, Feedback, Usage};
use crate::core::permits::{Grant, Outcome, PermitConfig, PermitPool};
use crate::error::{ErrorKind, Failure};
use crate::options::{
    OptionErrorKind, OptionSpec, RawLimiterOptions, RawOptions, LIMITER_OPTIONS, LIMITER_SHARED,
    OPTIONS,
};
use crate::providers::headers::server_wait;
use crate::providers::http::parse_error_body;
use crate::providers::{Provider, ProviderKind};
use crate::web::{get, set, JsJson};

/// The longest wait a 429's Retry-After may impose on everyone.
const MAX_PAUSE: Duration = Duration::from_secs(600);

/// See the module docs.
#[wasm_bindgen(skip_typescript)]
pub struct Limiter {
    pool: PermitPool,
    kind: ProviderKind,
    origin_ms: f64,
}

#[wasm_bindgen]
impl Limiter {
    /// `new Limiter({ provider, concurrency?, leaseMs?, rateLimit?, adaptive?, breaker? }, nowMs)`:
    /// `provider` is `"anthropic"`, `"openai"` or `"http"` (whose headers it reads).
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue, now_ms: f64) -> Result<Limiter, JsValue> {
        if !options.is_object() {
            return Err(type_error("Limiter options must be an object".into()));
        }
        // Its own declarations, and the pacing subset of BatchProcessor's.
        let lookup = |key: &str| {
            OptionSpec::find(LIMITER_OPTIONS, key).or_else(|| {
                LIMITER_SHARED
                    .contains(&key)
                    .then(|| OptionSpec::find(OPTIONS, key))
                    .flatten()
            })
        };
        check(&options, &lookup)?;
        // The shared part is read as BatchProcessor's options; the limiter's own two are read
        // by hand (a second struct read would cost the Worker's wasm more than these lines).
        let shared: RawOptions = super::js_fields::from_js(&options);
        let mut own = RawLimiterOptions::default();
        if let Some(v) = option(&options, own.lease_ms().spec.key) {
            own.lease_ms = raw(&v);
        }
        let provider = own.provider().spec;
        let kind = match option(&options, provider.key).and_then(|v| v.as_string()) {
            Some(name) => {
                Provider::new(&name, None, None, None)
                    .map_err(js_error)?
                    .kind
            }
            None => {
                let got = option(&options, provider.key).unwrap_or(JsValue::UNDEFINED);
                return Err(js_error(
                    provider.refuse(OptionErrorKind::Type, &show(&got)),
                ));
            }
        };
        let validated = shared.validate().map_err(js_error)?;
        let lease_ms = own.lease_ms().int().map_err(js_error)?.unwrap_or_default();
        let config = PermitConfig {
            pacing: validated.pacing,
            max_in_flight: validated.config.concurrency,
            lease: Duration::from_millis(lease_ms),
        };
        Ok(Limiter {
            pool: PermitPool::new(&config, Duration::ZERO),
            kind,
            origin_ms: now_ms,
        })
    }

    fn at(&self, now_ms: f64) -> Duration {
        Duration::from_millis((now_ms - self.origin_ms).max(0.0) as u64)
    }

    /// `acquire(owner, inputTokens, outputTokens, nowMs, ordered?)` → `{ id }` (send now, then
    /// `release(id, ...)`), `{ waitMs }` (ask again then), or `{ never: message }`. `ordered`:
    /// the caller holds its waiters and picked this one to go next (no turn-taking between
    /// owners here: `PermitPool::acquire_next`).
    pub fn acquire(
        &mut self,
        owner: &str,
        input_tokens: f64,
        output_tokens: f64,
        now_ms: f64,
        ordered: Option<bool>,
    ) -> JsValue {
        let cost = Cost {
            input_tokens: input_tokens.max(0.0) as u64,
            output_tokens: output_tokens.max(0.0) as u64,
        };
        let out = js_sys::Object::new();
        let now = self.at(now_ms);
        let grant = if ordered == Some(true) {
            self.pool.acquire_next(owner, &cost, now)
        } else {
            self.pool.acquire(owner, &cost, now)
        };
        match grant {
            Grant::Granted(id) => set(&out, "id", id as f64),
            Grant::Wait(d) => set(&out, "waitMs", d.as_millis() as f64),
            Grant::Never(why) => set(&out, "never", why),
        }
        out.into()
    }

    /// `release(id, outcome, nowMs)`: `outcome` is `{ ok: true, usage?, headers? }`,
    /// `{ ok: false, kind, status?, headers?, error? }` (`error` the parsed reply body) or `{ abandoned: true }`; `headers`
    /// a plain object of lower-case names. False when the lease had already expired.
    pub fn release(&mut self, id: f64, outcome: JsValue, now_ms: f64) -> bool {
        let header = |name: &str| {
            get(&outcome, "headers")
                .and_then(|h| get(&h, name))
                .and_then(|v| v.as_string())
        };
        let limits = {
            let l = match self.kind {
                ProviderKind::Anthropic => crate::providers::ratelimit::anthropic(&header, now_ms),
                ProviderKind::OpenAi => crate::providers::ratelimit::openai(&header),
                ProviderKind::Http => Default::default(),
            };
            (!l.is_empty()).then_some(l)
        };
        let (id, at) = (id as u64, self.at(now_ms));
        if get(&outcome, "abandoned").and_then(|v| v.as_bool()) == Some(true) {
            self.pool.release(id, Outcome::Abandoned, at)
        } else if get(&outcome, "ok").and_then(|v| v.as_bool()) == Some(true) {
            let usage = get(&outcome, "usage").map(|u| {
                let n =
                    |k: &str| get(&u, k).and_then(|v| v.as_f64()).unwrap_or(0.0).max(0.0) as u64;
                Usage {
                    input_tokens: n("inputTokens"),
                    output_tokens: n("outputTokens"),
                }
            });
            let feedback = Feedback { usage, limits };
            self.pool.release(id, Outcome::Success(&feedback), at)
        } else {
            let status = get(&outcome, "status")
                .and_then(|v| v.as_f64())
                .map(|s| s as u16);
            let kind = match get(&outcome, "kind").and_then(|v| v.as_string()).as_deref() {
                Some("timeout") => ErrorKind::Timeout,
                Some("network") => ErrorKind::Network,
                Some("aborted") => ErrorKind::Aborted,
                _ if status.is_some() => ErrorKind::Http,
                _ => ErrorKind::Task,
            };
            let body = get(&outcome, "error").map(|b| parse_error_body(&JsJson(b)));
            let failure = Failure {
                kind: Some(kind),
                status,
                spend_cap: body.as_ref().is_some_and(|b| b.spend_cap),
                error_type: body.and_then(|b| b.error_type),
                server_wait: server_wait(
                    header("retry-after-ms").as_deref(),
                    header("retry-after").as_deref(),
                    now_ms,
                ),
                limits: limits.map(Box::new),
                ..Failure::default()
            };
            let wait = failure
                .server_wait
                .map(|d| d.min(MAX_PAUSE))
                // No Retry-After, no pause for everyone: the item's own backoff covers it, and a
                // guess would stall every batch on a random 429.
                .unwrap_or(Duration::ZERO);
            let failure = Outcome::Failure {
                failure: &failure,
                wait,
            };
            self.pool.release(id, failure, at)
        }
    }

    /// `{ inFlight, concurrency, granted, expired, owners, pausedForMs }` now.
    pub fn stats(&mut self, now_ms: f64) -> JsValue {
        let now = self.at(now_ms);
        let s = self.pool.stats(now);
        let out = js_sys::Object::new();
        set(&out, "inFlight", s.in_flight as f64);
        set(&out, "concurrency", s.concurrency as f64);
        set(&out, "granted", s.granted as f64);
        set(&out, "expired", s.expired as f64);
        set(&out, "owners", s.owners as f64);
        let paused = self
            .pool
            .paused_until(now)
            .map_or(0.0, |t| (t - now).as_millis() as f64);
        set(&out, "pausedForMs", paused);
        out.into()
    }

    /// `Limiter.estimate(provider, body)` → `{ inputTokens, outputTokens }`: what one request
    /// is expected to cost, reserved at acquire and settled at release.
    pub fn estimate(provider: &str, body: JsValue) -> Result<JsValue, JsValue> {
        let p = Provider::new(provider, None, None, None).map_err(js_error)?;
        let cost = p.estimate_cost(&JsJson(body));
        let out = js_sys::Object::new();
        set(&out, "inputTokens", cost.input_tokens as f64);
        set(&out, "outputTokens", cost.output_tokens as f64);
        Ok(out.into())
    }

    /// `Limiter.request({ name, baseUrl?, apiKey?, version? })` → `{ url, headers }`: where
    /// the provider sends one request and with which headers (they hold the key: never log
    /// them). The body is the request itself, as JSON.
    pub fn request(provider: JsValue) -> Result<JsValue, JsValue> {
        let text = |k: &str| get(&provider, k).and_then(|v| v.as_string());
        let name = text("name").unwrap_or_default();
        let p = Provider::new(&name, text("apiKey"), text("baseUrl"), text("version"))
            .map_err(js_error)?;
        let endpoint = p
            .endpoint()
            .ok_or_else(|| type_error(format!("provider {name} has no endpoint")))?;
        let headers = js_sys::Object::new();
        for (k, v) in endpoint.headers {
            set(&headers, k, v);
        }
        let out = js_sys::Object::new();
        set(&out, "url", endpoint.url);
        set(&out, "headers", headers);
        Ok(out.into())
    }

    /// `Limiter.usage(provider, reply)` → `{ inputTokens, outputTokens }` of a parsed reply,
    /// or `undefined` when it is not a reply of that API.
    pub fn usage(provider: &str, reply: JsValue) -> Result<JsValue, JsValue> {
        let p = Provider::new(provider, None, None, None).map_err(js_error)?;
        Ok(match p.parse_reply(&JsJson(reply)) {
            Ok(r) => {
                let out = js_sys::Object::new();
                set(&out, "inputTokens", r.usage.input_tokens as f64);
                set(&out, "outputTokens", r.usage.output_tokens as f64);
                out.into()
            }
            Err(_) => JsValue::UNDEFINED,
        })
    }
}
