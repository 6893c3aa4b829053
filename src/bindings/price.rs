//! `replyCost` (the Worker's build only, cargo feature `limiter`): what a provider reply cost
//! at the built-in prices, realtime and through the provider's Batch API. The Worker's stored
//! batches price the lines a provider batch returns with it, so the price table stays one
//! table (`core::cost::prices`), never a copy in JS. `cacheKey` is the library's prompt-cache
//! group of a request, for the stored batches' cache warming.

use wasm_bindgen::prelude::*;

use crate::core::cost::{Price, Prices, Served, Tokens};
use crate::providers::billed_tokens;
use crate::web::JsJson;

/// `replyCost(reply)`: `[realtime, providerBatch]` in pico-dollars (integers, exact below
/// $9,007 an item) for a Message or a chat completion whose `model` has a built-in price;
/// `undefined` when it has none or the reply has no usage.
#[wasm_bindgen(js_name = replyCost, skip_typescript)]
pub fn reply_cost(reply: JsValue) -> Option<Vec<f64>> {
    use crate::providers::http::Json;
    let reply = JsJson(reply);
    let price = Prices::default().find(&reply.field("model")?.text()?)?;
    let tokens = billed_tokens(&reply.field("usage")?)?;
    Some(vec![
        price.cost(&tokens, Served::Realtime) as f64,
        price.cost(&tokens, Served::ProviderBatch) as f64,
    ])
}

/// `costBound(model, inputTokens, outputTokens)`: `[realtime, providerBatch]` in pico-dollars
/// for a request that uses at most that many tokens: input at the model's dearest input rate
/// (plain or a cache write), output at its output rate; `undefined` when the model has no
/// built-in price. The Worker holds it against a token's dollars per hour before work starts.
#[wasm_bindgen(js_name = costBound, skip_typescript)]
pub fn cost_bound(model: &str, input_tokens: f64, output_tokens: f64) -> Option<Vec<f64>> {
    let price = Prices::default().find(model)?;
    let dearest = Price {
        input: price
            .input
            .max(price.cache_write_5m)
            .max(price.cache_write_1h),
        ..price
    };
    // `as` saturates: a negative or NaN count is 0.
    let tokens = Tokens {
        input: input_tokens as u64,
        output: output_tokens as u64,
        ..Tokens::default()
    };
    Some(vec![
        dearest.cost(&tokens, Served::Realtime) as f64,
        dearest.cost(&tokens, Served::ProviderBatch) as f64,
    ])
}

/// `cacheKey(request)`: the prompt-cache group of an Anthropic Messages request body, as the
/// library's `cacheAware` groups it (`providers::anthropic::cache_key`: a hash of the request
/// up to its last `cache_control` mark), as 16 hex digits (a u64 does not fit a JS number);
/// `undefined` when it marks no cacheable prefix. The Worker warms a provider batch's groups
/// with it (`worker/src/batches/provider-batch.js`).
#[wasm_bindgen(js_name = cacheKey, skip_typescript)]
pub fn cache_key(request: JsValue) -> Option<String> {
    crate::providers::anthropic::cache_key(&JsJson(request)).map(|k| format!("{k:016x}"))
}
