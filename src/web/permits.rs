//! A JS permit source (`permits: { acquire, release }`, a call option of map/run/stream) as the
//! core's [`Permits`]: its promises become the executor's asks (`acquire(index, cost,
//! { alternative })`: a source of before fallbacks reads the first two), its ids stay in JS (the core
//! sees their place in a list), and outcomes go back in the shape the Worker's
//! `Limiter.release` reads. A source that throws or rejects never breaks the batch: a failed
//! acquire defers it for a second, a failed release is dropped. The JS half is in glue.js.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use wasm_bindgen::prelude::*;

use super::get;
use super::provider::{limits_object, usage_object};
use super::task::{settled_by, TaskAttempt};
use crate::core::limits::Cost;
use crate::core::permit_source::{Outcome, Permit, Permits};
#[cfg(doc)]
use crate::options::Kind;
use crate::options::OptionSpec;
use crate::providers::ProviderKind;

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = permitSource)]
    fn permit_source(
        options: &JsValue,
        key: &str,
        name: &str,
        provider: &str,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = askPermit)]
    fn ask_permit(
        source: &JsValue,
        index: u32,
        alternative: u32,
        input_tokens: f64,
        output_tokens: f64,
        id: f64,
        settle: &JsValue,
    ) -> JsValue;
    #[wasm_bindgen(js_name = releasePermit)]
    #[allow(clippy::too_many_arguments)]
    fn release_permit(
        source: &JsValue,
        id: f64,
        kind: &str,
        status: f64,
        retry_after_ms: f64,
        spend_cap: bool,
        error_type: &str,
        usage: JsValue,
        limits: JsValue,
    );
}

/// See the module docs.
pub struct JsPermits {
    /// `{ permits, ids, provider }` (glue.js): the caller's object, the ids it granted and
    /// whose rate-limit header names the outcomes use.
    source: JsValue,
}

impl JsPermits {
    /// The call option `spec` (`permits`, [`Kind::Methods`]) of `options`, if given, for a
    /// processor whose provider is `provider`. glue.js checks it (a TypeError naming it or its
    /// method): the same words as the declared options', in fewer bytes of wasm.
    pub fn read(
        options: &JsValue,
        spec: &OptionSpec,
        provider: Option<ProviderKind>,
    ) -> Result<Option<Self>, JsValue> {
        let provider = match provider {
            Some(ProviderKind::Anthropic) => "anthropic",
            Some(ProviderKind::OpenAi) => "openai",
            _ => "",
        };
        let source = permit_source(options, spec.key, spec.name, provider)?;
        Ok((!source.is_undefined()).then_some(JsPermits { source }))
    }
}

impl Permits for JsPermits {
    fn acquire(
        &self,
        index: usize,
        alternative: usize,
        cost: &Cost,
    ) -> Pin<Box<dyn Future<Output = Permit> + '_>> {
        // Dropped before its answer, the ask gives a late grant back (askPermit, glue.js).
        let ask = settled_by(|id, settle| {
            let (input, output) = (cost.input_tokens as f64, cost.output_tokens as f64);
            let (index, alternative) = (index as u32, alternative as u32);
            ask_permit(&self.source, index, alternative, input, output, id, settle)
        });
        Box::pin(JsAsk(ask))
    }

    /// Sends `{ ok: true, usage?, headers? }`, `{ ok: false, kind, status?, headers?, error? }`
    /// or `{ abandoned: true }`, built in glue.js from these parts (`NaN`: not known).
    fn release(&self, id: u64, outcome: Outcome<'_>) {
        let (kind, usage, limits, failure) = match outcome {
            Outcome::Abandoned => ("abandoned", None, None, None),
            Outcome::Success(f) => ("ok", f.usage, f.limits.as_ref(), None),
            Outcome::Failure { failure, .. } => {
                let limits = failure.limits.as_deref();
                (failure.kind().as_str(), None, limits, Some(failure))
            }
        };
        let ms = |d: Duration| d.as_millis() as u64 as f64;
        release_permit(
            &self.source,
            id as f64,
            kind,
            failure.and_then(|f| f.status).map_or(f64::NAN, f64::from),
            failure.and_then(|f| f.server_wait).map_or(f64::NAN, ms),
            failure.is_some_and(|f| f.spend_cap),
            failure
                .and_then(|f| f.error_type.as_deref())
                .unwrap_or_default(),
            usage.map_or(JsValue::UNDEFINED, usage_object),
            limits.map_or(JsValue::UNDEFINED, limits_object),
        );
    }
}

/// An ask of `permits.acquire`: askPermit (glue.js) settles it only with an answer it made,
/// the granted id's place in its list, the message of a `never`, or `{ deferMs, reason }`.
struct JsAsk(TaskAttempt);

impl Future for JsAsk {
    type Output = Permit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let answer = ready!(self.0.poll_settled(cx)).unwrap_or(JsValue::UNDEFINED);
        Poll::Ready(if let Some(id) = answer.as_f64() {
            Permit::Granted(id as u64)
        } else if let Some(why) = answer.as_string() {
            Permit::Never(why)
        } else {
            let ms = get(&answer, "deferMs").and_then(|v| v.as_f64());
            Permit::Defer {
                wait: Duration::from_millis(ms.unwrap_or(1000.0) as u64),
                reason: get(&answer, "reason")
                    .and_then(|v| v.as_string())
                    .unwrap_or_default(),
            }
        })
    }
}
