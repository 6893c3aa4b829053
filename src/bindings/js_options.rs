//! Reading options objects: every wrong value becomes a TypeError or RangeError naming it.

use js_sys::{Array, Function, Object};
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use serde::de::IgnoredAny;

use super::js_serde;

use crate::options::{self, Kind, Opt, OptionError, OptionErrorKind, OptionSpec, Raw, RawProvider};
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
    raw(v).to_string()
}

/// A JS value reduced to what validation needs.
pub(super) fn raw(v: &JsValue) -> Raw {
    if v.is_undefined() {
        Raw::Missing
    } else if v.is_null() {
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

/// Reads an options object into its serde struct: first the keys (each must be declared;
/// nested groups must be objects with declared keys), then serde ([`js_serde`]). serde reads
/// only a struct's declared fields and never sees other keys, so `deny_unknown_fields` cannot
/// fire there: the allow-list is this check, read from the same declarations.
pub(super) fn read<T: serde::de::DeserializeOwned>(
    obj: &JsValue,
    lookup: &dyn Fn(&str) -> Option<&'static OptionSpec>,
) -> Result<T, JsValue> {
    check_keys(obj, "", lookup)?;
    Ok(js_serde::from_js(obj))
}

fn check_keys(
    obj: &JsValue,
    prefix: &str,
    lookup: &dyn Fn(&str) -> Option<&'static OptionSpec>,
) -> Result<(), JsValue> {
    for key in Object::keys(obj.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| k.as_string())
    {
        if lookup(&key).is_none() {
            return Err(js_error(options::unknown_key(prefix, &key)));
        }
    }
    // Then each nested group given (two passes: every key of this level is checked first).
    for key in Object::keys(obj.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| k.as_string())
    {
        if let Some(
            spec @ OptionSpec {
                kind: Kind::Object(children),
                ..
            },
        ) = lookup(&key)
        {
            if let Some(group) = object_option(obj, spec)? {
                let prefix = format!("{}.", spec.name);
                check_keys(&group, &prefix, &|k| OptionSpec::find(children, k))?;
            }
        }
    }
    Ok(())
}

/// Whether a value is a plain options object (not an array, not a function).
pub(super) fn is_plain_object(v: &JsValue) -> bool {
    v.is_object() && !v.is_function() && !Array::is_array(v)
}

fn object_option(parent: &JsValue, spec: &OptionSpec) -> Result<Option<JsValue>, JsValue> {
    match option(parent, spec.key) {
        Some(v) if is_plain_object(&v) => Ok(Some(v)),
        Some(v) => Err(refuse(spec, &v)),
        None => Ok(None),
    }
}

fn refuse(spec: &OptionSpec, v: &JsValue) -> JsValue {
    js_error(spec.refuse(OptionErrorKind::Type, &show(v)))
}

/// A function option (the explicit path: serde cannot hold a JS function).
pub(super) fn function_option(
    obj: &JsValue,
    spec: &OptionSpec,
) -> Result<Option<Function>, JsValue> {
    option(obj, spec.key)
        .map(|v| v.dyn_into::<Function>().map_err(|v| refuse(spec, &v)))
        .transpose()
}

/// An `AbortSignal` option (the explicit path, like a function).
pub(super) fn signal_option(
    obj: &JsValue,
    spec: &OptionSpec,
) -> Result<Option<AbortSignal>, JsValue> {
    option(obj, spec.key)
        .map(|v| v.dyn_into::<AbortSignal>().map_err(|v| refuse(spec, &v)))
        .transpose()
}

/// `provider: { name, apiKey?, baseUrl?, version?, dangerouslyAllowBrowser? }` (its keys were
/// checked with the rest). The explicit path: a wrong `apiKey` is named, never shown.
pub(super) fn provider_option(
    options: &JsValue,
    spec: &OptionSpec,
) -> Result<Option<Provider>, JsValue> {
    let Some(p) = object_option(options, spec)? else {
        return Ok(None);
    };
    let keys = RawProvider::default();
    let text = |field: Opt<'_, IgnoredAny>| match option(&p, field.spec.key) {
        None => Ok(None),
        Some(v) => v.as_string().map(Some).ok_or_else(|| {
            let shown = if field.spec.key == keys.api_key().spec.key {
                format!(
                    "a value of type {}",
                    v.js_typeof().as_string().unwrap_or_default()
                )
            } else {
                show(&v)
            };
            js_error(field.spec.refuse(OptionErrorKind::Type, &shown))
        }),
    };
    let name = keys.name();
    let name = text(name)?.ok_or_else(|| refuse(name.spec, &JsValue::UNDEFINED))?;
    let browser = keys.dangerously_allow_browser();
    let browser = match option(&p, browser.spec.key) {
        None => false,
        Some(v) => v.as_bool().ok_or_else(|| refuse(browser.spec, &v))?,
    };
    Provider::new(
        &name,
        text(keys.api_key())?,
        text(keys.base_url())?,
        text(keys.version())?,
    )
    .and_then(|p| p.allow_browser(browser))
    .map(Some)
    .map_err(js_error)
}
