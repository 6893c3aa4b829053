//! `run`: request bodies of the processor's provider, turned into JS objects with
//! serde-wasm-bindgen and sent by the JS `run()`'s own attempt (`web::attempt::Task::Run`:
//! the same preflight, fetch, abort guard, reply reading and secret scrubbing); each reply
//! read into a typed [`Reply`].

use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_wasm_bindgen::Serializer;
use wasm_bindgen::JsValue;

use super::outcome::{Failed, ItemResult};
use super::stream::BatchStream;
use super::BatchProcessor;
use crate::core::executor;
use crate::core::limits::{RateLimits, Usage};
use crate::web::attempt::Task;
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
    body: JsValue,
}

impl Reply {
    fn new(metered: &Metered) -> Reply {
        let feedback = metered.feedback();
        let text = |key| get(&metered.value, key).and_then(|v| v.as_string());
        Reply {
            text: text("text").unwrap_or_default(),
            stop_reason: text("stopReason"),
            usage: feedback.usage.unwrap_or_default(),
            rate_limits: feedback.limits,
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
        // Read and checked before the item's first attempt, as the JS run() does.
        let cost = move |index: usize| {
            if let Some(problem) = &problems[index] {
                return Err(problem.clone());
            }
            let provider = provider.as_deref().ok_or(NO_PROVIDER)?;
            let item = cost_items.get(index)?;
            preflight::check_request(provider, &item).map_err(|m| cost_secrets.scrub(&m))?;
            Ok(provider.estimate_cost(&JsJson(item)))
        };
        let task = Task::Run(self.provider.clone(), self.max_response_bytes);
        let attempt =
            move |index: usize, attempt: u32| task.start(index, attempt, &items, &secrets);
        let convert = |r: &executor::ItemResult<Metered>| ItemResult {
            index: r.index,
            outcome: match &r.outcome {
                Ok(metered) => Ok(Reply::new(metered)),
                Err(error) => Err(Failed {
                    error: error.clone(),
                    source: None,
                }),
            },
            attempts: r.attempts,
            elapsed: r.elapsed,
        };
        self.start(total, attempt, (cost, Metered::feedback), convert)
    }
}
