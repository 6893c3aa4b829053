//! Reading options objects: every wrong value becomes a TypeError or RangeError naming it.

use js_sys::{Array, Function, Object};
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use crate::options::{self, OptionError, OptionErrorKind, Raw};
use crate::providers::Provider;

pub(super) fn js_error(err: OptionError) -> JsValue {
    match err.kind {
        OptionErrorKind::Type => js_sys::TypeError::new(&err.message).into(),
        OptionErrorKind::Range => js_sys::RangeError::new(&err.message).into(),
    }
}

pub(super) fn type_error(message: String) -> JsValue {
    js_sys::TypeError::new(&message).into()
}

/// An option's value: only `undefined` means "not given" (`null` is a wrong type).
pub(super) fn option(obj: &JsValue, key: &str) -> Option<JsValue> {
    js_sys::Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined())
}

/// A value as option messages show it: strings quoted, like [`Raw`]'s display.
pub(super) fn show(v: &JsValue) -> String {
    raw(Some(v.clone())).map_or_else(|| "undefined".into(), |r| r.to_string())
}

pub(super) fn raw(value: Option<JsValue>) -> Option<Raw> {
    let v = value?;
    Some(if v.is_null() {
        Raw::Other("null".into())
    } else if let Some(n) = v.as_f64() {
        Raw::Number(n)
    } else if let Some(s) = v.as_string() {
        Raw::Text(s)
    } else if let Some(b) = v.as_bool() {
        Raw::Bool(b)
    } else {
        Raw::Other(v.js_typeof().as_string().unwrap_or_default())
    })
}

/// The keys of an options object, each checked against the known ones.
pub(super) fn check_keys(obj: &JsValue, prefix: &str, known: &[&str]) -> Result<(), JsValue> {
    for key in Object::keys(obj.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| k.as_string())
    {
        if !known.contains(&key.as_str()) {
            return Err(js_error(options::unknown_key(prefix, &key)));
        }
    }
    Ok(())
}

pub(super) fn object_option(parent: &JsValue, name: &str) -> Result<Option<JsValue>, JsValue> {
    match option(parent, name) {
        Some(v) if v.is_object() && !v.is_function() && !Array::is_array(&v) => Ok(Some(v)),
        Some(v) => Err(type_error(format!(
            "{name} must be an object, got {}",
            show(&v)
        ))),
        None => Ok(None),
    }
}

pub(super) fn function_option(options: &JsValue, name: &str) -> Result<Option<Function>, JsValue> {
    option(options, name)
        .map(|v| {
            v.dyn_into::<Function>()
                .map_err(|v| type_error(format!("{name} must be a function, got {}", show(&v))))
        })
        .transpose()
}

pub(super) fn signal_option(options: &JsValue, name: &str) -> Result<Option<AbortSignal>, JsValue> {
    option(options, name)
        .map(|v| {
            v.dyn_into::<AbortSignal>()
                .map_err(|v| type_error(format!("{name} must be an AbortSignal, got {}", show(&v))))
        })
        .transpose()
}

/// `provider: { name, apiKey?, baseUrl?, version?, dangerouslyAllowBrowser? }`. A wrong
/// `apiKey` is named, never shown.
pub(super) fn provider_option(options: &JsValue) -> Result<Option<Provider>, JsValue> {
    let Some(p) = object_option(options, "provider")? else {
        return Ok(None);
    };
    check_keys(
        &p,
        "provider.",
        &[
            "name",
            "apiKey",
            "baseUrl",
            "version",
            "dangerouslyAllowBrowser",
        ],
    )?;
    let text = |key: &str| match option(&p, key) {
        None => Ok(None),
        Some(v) => v.as_string().map(Some).ok_or_else(|| {
            let shown = if key == "apiKey" {
                format!(
                    "a value of type {}",
                    v.js_typeof().as_string().unwrap_or_default()
                )
            } else {
                show(&v)
            };
            type_error(format!("provider.{key} must be a string, got {shown}"))
        }),
    };
    let name = text("name")?.ok_or_else(|| {
        type_error(
            "provider.name must be \"anthropic\", \"openai\" or \"http\", got undefined".into(),
        )
    })?;
    let browser = match option(&p, "dangerouslyAllowBrowser") {
        None => false,
        Some(v) => v.as_bool().ok_or_else(|| {
            type_error(format!(
                "provider.dangerouslyAllowBrowser must be a boolean, got {}",
                show(&v)
            ))
        })?,
    };
    Provider::new(&name, text("apiKey")?, text("baseUrl")?, text("version")?)
        .and_then(|p| p.allow_browser(browser))
        .map(Some)
        .map_err(js_error)
}
