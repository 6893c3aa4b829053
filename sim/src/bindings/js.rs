//! Reading and making JS values for the `Simulator` export: options objects (every wrong value
//! a TypeError or RangeError naming it), plain objects, and the host's `JSON.parse`.

use js_sys::{Array, Object};
use wasm_bindgen::prelude::*;

use crate::json::Json;
use crate::raw::{OptionError, OptionErrorKind, Raw};

#[wasm_bindgen]
extern "C" {
    /// `String(value)`: never throws for primitives; an object's throwing `toString` is caught.
    #[wasm_bindgen(catch, js_name = String)]
    fn js_string(value: &JsValue) -> Result<String, JsValue>;
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
    let _ = js_sys::Reflect::set(obj, &JsValue::from_str(key), &value.into());
}

/// Parsed JSON from the host's `JSON.parse`, seen through the pure [`Json`] view.
pub struct JsJson(JsValue);

impl Json for JsJson {
    fn field(&self, key: &str) -> Option<Self> {
        get(&self.0, key).map(JsJson)
    }
    fn text(&self) -> Option<String> {
        self.0.as_string()
    }
    fn number(&self) -> Option<f64> {
        self.0.as_f64()
    }
    fn boolean(&self) -> Option<bool> {
        self.0.as_bool()
    }
    fn items(&self) -> Vec<Self> {
        if !Array::is_array(&self.0) {
            return Vec::new();
        }
        Array::from(&self.0).iter().map(JsJson).collect()
    }
}

/// `JSON.parse(text)`, or `None` when it is not JSON.
pub fn parse_json(text: &str) -> Option<JsJson> {
    js_sys::JSON::parse(text).ok().map(JsJson)
}

pub fn js_error(err: OptionError) -> JsValue {
    match err.kind {
        OptionErrorKind::Type => js_sys::TypeError::new(&err.message).into(),
        OptionErrorKind::Range => js_sys::RangeError::new(&err.message).into(),
    }
}

pub fn type_error(message: String) -> JsValue {
    js_sys::TypeError::new(&message).into()
}

/// An option's value: only `undefined` means "not given" (`null` is a wrong type).
pub fn option(obj: &JsValue, key: &str) -> Option<JsValue> {
    js_sys::Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined())
}

/// An option's value reduced to what validation needs.
pub fn raw(value: Option<JsValue>) -> Raw {
    let Some(v) = value else {
        return Raw::Missing;
    };
    if v.is_null() {
        Raw::Other("null".into())
    } else if let Some(n) = v.as_f64() {
        Raw::Number(n)
    } else if let Some(s) = v.as_string() {
        Raw::Text(s)
    } else if let Some(b) = v.as_bool() {
        Raw::Bool(b)
    } else {
        Raw::Other(v.js_typeof().as_string().unwrap_or_default())
    }
}

/// The keys of an options object, each checked against the known ones (most often a typo).
pub fn check_keys(obj: &JsValue, prefix: &str, known: &[&str]) -> Result<(), JsValue> {
    let keys = Object::keys(obj.unchecked_ref::<Object>());
    match keys
        .iter()
        .filter_map(|k| k.as_string())
        .find(|k| !known.contains(&k.as_str()))
    {
        Some(key) => Err(type_error(format!("unknown option \"{prefix}{key}\""))),
        None => Ok(()),
    }
}

/// A nested options object (`latency`, `faults`), when given.
pub fn object_option(parent: &JsValue, name: &str) -> Result<Option<JsValue>, JsValue> {
    match option(parent, name) {
        Some(v) if v.is_object() && !v.is_function() && !Array::is_array(&v) => Ok(Some(v)),
        Some(v) => Err(type_error(format!(
            "{name} must be an object, got {}",
            raw(Some(v))
        ))),
        None => Ok(None),
    }
}
