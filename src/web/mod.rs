//! The wasm platform edge: JS timers, the global `fetch`, AbortController, calling JS tasks.
//! Every JS API is wrapped in a small Rust type that cleans up in `Drop`. Globals are bound
//! through `globalThis`, so one build runs in the browser, in workerd and in Node.

pub mod abort;
#[cfg(feature = "wasm-allocator")]
mod allocator;
pub(crate) mod attempt;
pub mod clock;
pub mod fetch;
pub(crate) mod items;
pub(crate) mod permits;
pub mod preflight;
pub mod provider;
pub mod task;

use wasm_bindgen::prelude::*;

use crate::providers::http::Json;

#[wasm_bindgen]
extern "C" {
    /// `String(value)`: never throws for primitives; an object's throwing `toString` is caught.
    #[wasm_bindgen(catch, js_name = String)]
    fn js_string(value: &JsValue) -> Result<String, JsValue>;
}

/// `{what}, got {value}`, the value as [`describe`] prints it: one `format!` for the many
/// messages of this shape, not one at each (smaller wasm).
pub fn got(what: &str, value: &JsValue) -> String {
    format!("{what}, got {}", describe(value))
}

/// `String(value)` as JS would print it, with a fallback when even that throws.
pub fn describe(value: &JsValue) -> String {
    value
        .as_string()
        .or_else(|| js_string(value).ok())
        .unwrap_or_else(|| "a value that cannot be printed".to_owned())
}

/// `obj[key]`, with `undefined` and `null` read as missing.
pub fn get(obj: &JsValue, key: &str) -> Option<JsValue> {
    if !obj.is_object() && !obj.is_function() {
        return None;
    }
    js_sys::Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// `obj[key] = value` on an object we created (cannot fail).
pub fn set(obj: &JsValue, key: &str, value: impl Into<JsValue>) {
    set_value(obj, key, value.into());
}

/// [`set`]'s body, compiled once rather than once per value type.
fn set_value(obj: &JsValue, key: &str, value: JsValue) {
    let _ = js_sys::Reflect::set(obj, &JsValue::from_str(key), &value);
}

/// Parsed JSON from the host's `JSON.parse`, seen through the pure [`Json`] view.
#[derive(Clone, Debug)]
pub struct JsJson(pub JsValue);

impl Json for JsJson {
    fn field(&self, key: &str) -> Option<Self> {
        get(&self.0, key).map(JsJson)
    }
    fn text(&self) -> Option<String> {
        self.0.as_string()
    }
    fn is_text(&self) -> bool {
        self.0.is_string()
    }
    fn number(&self) -> Option<f64> {
        self.0.as_f64()
    }
    fn boolean(&self) -> Option<bool> {
        self.0.as_bool()
    }
    /// Read element by element through `Reflect`: an item's array may be a Proxy whose
    /// traps throw, and a throw must not escape into wasm (what was read so far is kept).
    fn items(&self) -> Vec<Self> {
        if !js_sys::Array::is_array(&self.0) {
            return Vec::new();
        }
        let len = get(&self.0, "length")
            .and_then(|n| n.as_f64())
            .unwrap_or(0.0) as u32;
        (0..len)
            .map_while(|i| js_sys::Reflect::get_u32(&self.0, i).ok())
            .map(JsJson)
            .collect()
    }
}

/// Whether `needle` occurs in `haystack`. For the short messages and header values classified
/// here a plain scan does; `str::contains` brings a Two-Way searcher (KBs of wasm) along.
pub fn has(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w == n)
}

#[wasm_bindgen]
extern "C" {
    /// `JSON.parse` of a JS string, which then never needs copying into the wasm memory.
    #[wasm_bindgen(catch, js_namespace = JSON, js_name = parse)]
    fn json_parse(text: &JsValue) -> Result<JsValue, JsValue>;
}

/// `JSON.parse(text)`, or `None` when it is not JSON.
pub fn parse_json(text: &JsValue) -> Option<JsJson> {
    json_parse(text).ok().map(JsJson)
}
