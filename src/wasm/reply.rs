//! `run`: request bodies of the processor's provider, turned into JS objects with
//! serde-wasm-bindgen and sent by the JS `run()`'s own attempt (`web::attempt::Task::Run`,
//! or `Task::Routed` with fallbacks: the same preflight, fetch, abort guard, reply reading,
//! routing and secret scrubbing), paced and priced as the JS `run()` is (`CallPacing`); each
//! reply read into a typed [`Reply`].

use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_wasm_bindgen::Serializer;
use wasm_bindgen::JsValue;

use super::outcome::{Failed, ItemResult};
use super::stream::BatchStream;
use super::{BatchProcessor, ServedBy};
use crate::bindings::{priced, CallPacing};
use crate::core::cache_groups::CacheGroups;
use crate::core::cost::{usd, Pico, Prices};
use crate::core::executor::{self, Pacing};
use crate::core::limits::{Cost, Feedback, RateLimits, Usage};
use crate::providers::ProviderKind;
use crate::web::attempt::{self, Routed, Task};
use crate::web::items::Items;
use crate::web::provider::Metered;
use crate::web::{get, preflight, JsJson};

/// What a provider's reply says, as the JS `run()` reports it (`{ text, stopReason, usage,
/// rateLimits?, reply }`).
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The generated text (every text block, joined).
    pub text: String,
    /// Why generation stopped: `end_turn`, `max_tokens`, `stop`, `length`, ...
    pub stop_reason: Option<String>,
    /// Token usage.
    pub usage: Usage,
    /// The reply's rate-limit headers, when it had any.
    pub rate_limits: Option<RateLimits>,
    /// What the reply cost in US dollars at the built-in prices of the model it names
    /// (cache writes and reads included), as the JS results' `usd`; `None` when that model
    /// has no price.
    pub usd: Option<f64>,
    body: JsValue,
}

impl Reply {
    fn new(metered: &Metered, prices: &Prices) -> Reply {
        let feedback = metered.feedback();
        let text = |key| get(&metered.value, key).and_then(|v| v.as_string());
        Reply {
            text: text("text").unwrap_or_default(),
            stop_reason: text("stopReason"),
            usage: feedback.usage.unwrap_or_default(),
            rate_limits: feedback.limits,
            usd: metered.cost(prices).map(usd),
            body: get(&metered.value, "reply").unwrap_or(JsValue::UNDEFINED),
        }
    }

    /// The whole reply body as the API sent it (parsed by the host's `JSON.parse`).
    pub fn body(&self) -> &JsValue {
        &self.body
    }

    /// The whole reply body read into `T` (a struct of yours, or `serde_json::Value`).
    pub fn body_as<T: DeserializeOwned>(&self) -> Result<T, serde_wasm_bindgen::Error> {
        serde_wasm_bindgen::from_value(self.body.clone())
    }
}

/// What an item of a processor with no provider fails with.
const NO_PROVIDER: &str =
    "run() sends provider requests: build the processor with .anthropic(key) or .openai(key)";

impl BatchProcessor {
    /// Sends each request body (an Anthropic Messages or OpenAI Chat Completions request:
    /// a struct of yours, or `serde_json::Value`) to the processor's provider with the
    /// global `fetch`, and returns one [`Reply`] per request, in input order.
    ///
    /// Each body is checked before its first attempt (the fields the API needs; no
    /// `"stream": true`): one that cannot be sent fails at once as `invalid`, with 0
    /// attempts. Replies pace the processor: their usage and rate-limit headers feed its
    /// budgets. The key never appears in a result.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), edgebatch::options::OptionError> {
    /// use edgebatch::wasm::BatchProcessor;
    /// use serde_json::json;
    ///
    /// let claude = BatchProcessor::builder().anthropic("sk-ant-...").requests_per_minute(50).build()?;
    /// let requests = ["a haiku on retries", "a haiku on jitter"].map(|topic| json!({
    ///     "model": "claude-sonnet-4-5",
    ///     "max_tokens": 200,
    ///     "messages": [{ "role": "user", "content": format!("Write {topic}.") }],
    /// }));
    /// for result in claude.run(requests).await {
    ///     match result.outcome {
    ///         Ok(reply) => println!("{} ({} tokens out)", reply.text, reply.usage.output_tokens),
    ///         Err(failed) => println!("request {} failed: {failed}", result.index),
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn run<R: Serialize>(
        &self,
        requests: impl IntoIterator<Item = R>,
    ) -> impl std::future::Future<Output = Vec<ItemResult<Reply>>> {
        super::in_input_order(self.run_stream(requests))
    }

    /// [`run`](Self::run), the results in completion order.
    pub fn run_stream<R: Serialize>(
        &self,
        requests: impl IntoIterator<Item = R>,
    ) -> BatchStream<Reply> {
        // json_compatible: maps become plain objects (not `Map`s), which JSON.stringify sends.
        let serializer = Serializer::json_compatible();
        let array = js_sys::Array::new();
        let mut problems = Vec::new();
        for request in requests {
            let (value, problem) = match request.serialize(&serializer) {
                Ok(value) => (value, None),
                Err(e) => (
                    JsValue::UNDEFINED,
                    Some(format!("the request body cannot be sent as JSON: {e}")),
                ),
            };
            array.push(&value);
            problems.push(problem);
        }
        let items = match Items::read(array.into()) {
            Ok(items) => Rc::new(items),
            Err(_) => unreachable!("an Array is always readable"),
        };
        let total = items.len();
        let (provider, secrets) = (self.provider.clone(), self.secrets.clone());
        let (cost_items, cost_secrets) = (items.clone(), secrets.clone());
        let (capped, prices) = (self.config.max_cost.is_some(), self.prices.clone());
        // Read and checked before the item's first attempt, as the JS run() does.
        let cost = move |index: usize| {
            if let Some(problem) = &problems[index] {
                return Err(problem.clone());
            }
            let provider = provider.as_deref().ok_or(NO_PROVIDER)?;
            let item = cost_items.get(index)?;
            preflight::check_request(provider, &item).map_err(|m| cost_secrets.scrub(&m))?;
            if capped {
                priced(&prices, &item)?;
            }
            Ok(provider.estimate_cost(&JsJson(item)))
        };
        // Through the fallbacks when there are any, as the JS run() sends.
        let routed = match &self.provider {
            Some(first) if !self.fallbacks.is_empty() => Some(Rc::new(Routed::new(
                first.clone(),
                self.fallbacks.clone(),
                self.max_response_bytes,
            ))),
            _ => None,
        };
        let task = match &routed {
            Some(routed) => Task::Routed(routed.clone()),
            None => Task::Run(self.provider.clone(), self.max_response_bytes),
        };
        let pacing = RunPacing {
            cost,
            prices: self.prices.clone(),
            items: items.clone(),
            fallbacks: self.fallbacks.clone(),
        };
        // `cacheAware`: requests to Anthropic, grouped by their prompt-cache prefix, as the JS
        // run() groups them (the executor skips the groups when the option is off).
        let anthropic = self
            .provider
            .clone()
            .filter(|p| p.kind == ProviderKind::Anthropic);
        let key_items = items.clone();
        let groups = anthropic.map(|provider| {
            Rc::new(CacheGroups::new(move |i| {
                provider.cache_key(&JsJson(key_items.get(i).ok()?))
            }))
        });
        let told = groups.clone();
        let attempt = move |index: usize, attempt: u32, route: usize| {
            let began = told.as_ref().and_then(|groups| groups.began(index));
            task.start(index, attempt, route, &items, &secrets, began)
        };
        let prices = self.prices.clone();
        let served = routed.clone();
        let convert = move |r: &executor::ItemResult<Metered>| ItemResult {
            index: r.index,
            outcome: match &r.outcome {
                Ok(metered) => Ok(Reply::new(metered, &prices)),
                Err(error) => Err(Failed {
                    error: error.clone(),
                    source: None,
                }),
            },
            attempts: r.attempts,
            elapsed: r.elapsed,
            served_by: served.as_ref().and_then(|s| ServedBy::of(s, r.index)),
        };
        self.start(total, attempt, pacing, routed.is_some(), groups, convert)
    }
}

/// The JS `run()`'s pacing (`CallPacing`: the estimate for the pacer, the reply's feedback,
/// dollars for `maxCostUsd` at the price of the model each attempt sends), owning what it
/// reads for as long as the call runs.
struct RunPacing<C> {
    cost: C,
    prices: Rc<Prices>,
    items: Rc<Items>,
    fallbacks: Rc<[attempt::Alternative]>,
}

impl<C: Fn(usize) -> Result<Cost, String>> RunPacing<C> {
    fn call(&self) -> CallPacing<'_> {
        CallPacing {
            cost: &self.cost,
            prices: &self.prices,
            models: Some((&self.items, &self.fallbacks)),
        }
    }
}

impl<C: Fn(usize) -> Result<Cost, String>> Pacing<Metered> for RunPacing<C> {
    fn cost(&self, index: usize) -> Result<Cost, String> {
        (self.cost)(index)
    }

    fn feedback(&self, value: &Metered) -> Feedback {
        value.feedback()
    }

    fn max_spend(&self, index: usize, cost: &Cost, route: usize) -> Pico {
        self.call().max_spend(index, cost, route)
    }

    fn spend(&self, value: &Metered) -> Pico {
        self.call().spend(value)
    }
}
