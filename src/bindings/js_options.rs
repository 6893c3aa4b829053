//! Reading options objects: every wrong value becomes a TypeError or RangeError naming it.

use js_sys::{Array, Function, Object};
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use serde::de::IgnoredAny;

use super::js_fields;

use std::rc::Rc;

use crate::core::cost::Prices;
use crate::options::{
    self, Kind, Opt, OptionError, OptionErrorKind, OptionSpec, Raw, RawFallback, RawPrice,
    RawProvider, OVERRIDES, PRICE,
};
use crate::providers::{Provider, ProviderKind};
use crate::text::quote;
use crate::web::attempt::Alternative;

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

/// Reads an options object into its declared struct: first the keys (each must be declared;
/// nested groups must be objects with declared keys), then the values ([`js_fields`]), which
/// reads only a struct's declared fields: the allow-list is this check, read from the same
/// declarations.
pub(super) fn read<T: options::Fields>(
    obj: &JsValue,
    lookup: &dyn Fn(&str) -> Option<&'static OptionSpec>,
) -> Result<T, JsValue> {
    check(obj, lookup)?;
    Ok(js_fields::from_js(obj))
}

/// [`read`]'s key check alone, for a caller that reads two structs from one object.
pub(super) fn check(
    obj: &JsValue,
    lookup: &dyn Fn(&str) -> Option<&'static OptionSpec>,
) -> Result<(), JsValue> {
    check_keys(obj, "", lookup)
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
    // Then each nested group and list given (two passes: every key of this level is checked
    // first); a list's entries are named by position (`fallbacks[1].model`).
    for key in Object::keys(obj.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| k.as_string())
    {
        let Some(spec) = lookup(&key) else { continue };
        let (Kind::Object(children) | Kind::List(children)) = spec.kind else {
            continue;
        };
        let Some(value) = option(obj, spec.key) else {
            continue;
        };
        let name = format!("{prefix}{}", spec.key);
        if !matches!(spec.kind, Kind::List(_)) {
            check_group(&value, &name, &spec.expected(), children)?;
            continue;
        }
        let entries = Some(&value)
            .filter(|v| Array::is_array(v))
            .map(Array::from)
            .filter(|a| a.length() > 0);
        let Some(entries) = entries else {
            return Err(not_expected(&name, &spec.expected(), &value));
        };
        for (i, entry) in entries.iter().enumerate() {
            check_group(&entry, &format!("{name}[{i}]"), "an object", children)?;
        }
    }
    Ok(())
}

/// A group named `name` must be a plain object with keys declared in `children`.
fn check_group(
    value: &JsValue,
    name: &str,
    expected: &str,
    children: &'static [OptionSpec],
) -> Result<(), JsValue> {
    if !is_plain_object(value) {
        return Err(not_expected(name, expected, value));
    }
    check_keys(value, &format!("{name}."), &|k| {
        OptionSpec::find(children, k)
    })
}

/// `{name} must be {expected}, got {value}` (a TypeError).
fn not_expected(name: &str, expected: &str, value: &JsValue) -> JsValue {
    type_error(format!("{name} must be {expected}, got {}", show(value)))
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
    provider_from(&p).map(Some).map_err(js_error)
}

/// A provider object's fields, validated (messages name them `provider.*`).
fn provider_from(p: &JsValue) -> Result<Provider, OptionError> {
    let keys = RawProvider::default();
    let text = |field: Opt<'_, IgnoredAny>| match option(p, field.spec.key) {
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
            field.spec.refuse(OptionErrorKind::Type, &shown)
        }),
    };
    let name = keys.name();
    let name = text(name)?.ok_or_else(|| name.spec.refuse(OptionErrorKind::Type, "undefined"))?;
    let browser = keys.dangerously_allow_browser();
    let browser = match option(p, browser.spec.key) {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| browser.spec.refuse(OptionErrorKind::Type, &show(&v)))?,
    };
    Provider::new(
        &name,
        text(keys.api_key())?,
        text(keys.base_url())?,
        text(keys.version())?,
    )
    .and_then(|p| p.allow_browser(browser))
}

/// `fallbacks: [{ provider?, model?, overrides? }, ...]` for `first` (run()'s provider): its
/// shape and each entry's keys were checked with the rest (`check_keys`); each entry's values
/// are checked here, its messages naming it by position (`fallbacks[1].model`); a provider's
/// key is never shown.
pub(super) fn fallbacks_option(
    options: &JsValue,
    spec: &OptionSpec,
    first: Option<&Provider>,
) -> Result<Vec<Alternative>, JsValue> {
    let Some(list) = option(options, spec.key) else {
        return Ok(Vec::new());
    };
    let first = first.filter(|p| p.kind != ProviderKind::Http).ok_or_else(|| {
        type_error("fallbacks needs a provider (\"anthropic\" or \"openai\"): its alternatives are other models or upstreams of run()'s provider".into())
    })?;
    let mut out = Vec::new();
    for (i, value) in Array::from(&list).iter().enumerate() {
        let alternative = fallback(&value, first).map_err(|e| js_error(entry_error(i, e)))?;
        out.push(alternative);
    }
    Ok(out)
}

/// An error of entry `i` of `fallbacks`, named: declared messages say `fallbacks[]…`, a
/// provider's `provider.…` (shared with the Rust API, `crate::wasm`).
pub(crate) fn entry_error(i: usize, e: OptionError) -> OptionError {
    let rest = e.message.strip_prefix("fallbacks[]").unwrap_or(&e.message);
    let dot = if rest.starts_with("provider.") {
        "."
    } else {
        ""
    };
    let message = format!("fallbacks[{i}]{dot}{rest}");
    OptionError { message, ..e }
}

/// `prices: { "<model>": { inputPerMTok, outputPerMTok, ... } }` over the built-in table: each
/// entry a plain object of declared keys, its values validated, messages naming the model
/// (`prices["gpt-4o"].batchDiscount must be a number in 0..=1, got 2`).
pub(super) fn prices_option(options: &JsValue, spec: &OptionSpec) -> Result<Prices, JsValue> {
    let mut prices = Prices::default();
    let Some(table) = object_option(options, spec)? else {
        return Ok(prices);
    };
    for model in Object::keys(table.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| k.as_string())
    {
        let name = format!("{}[{}]", spec.key, quote(&model));
        let entry = option(&table, &model).unwrap_or(JsValue::UNDEFINED);
        check_group(&entry, &name, "an object", PRICE)?;
        let price =
            options::validate_price(&js_fields::from_js::<RawPrice>(&entry)).map_err(|e| {
                let rest = e.message.strip_prefix("prices[]").unwrap_or(&e.message);
                js_error(OptionError {
                    message: format!("{name}{rest}"),
                    ..e
                })
            })?;
        prices = prices.with(model, price);
    }
    Ok(prices)
}

/// One entry of `fallbacks` (a plain object with declared keys: `check_keys`).
fn fallback(value: &JsValue, first: &Provider) -> Result<Alternative, OptionError> {
    let entry: RawFallback = js_fields::from_js(value);
    let provider = option(value, "provider")
        .map(|p| provider_from(&p))
        .transpose()?;
    alternative(first, provider, &entry)
}

/// One alternative of `first` from an entry's read parts: its provider (of the first choice's
/// API) and its validated model and overrides (shared with the Rust API, `crate::wasm`).
pub(crate) fn alternative(
    first: &Provider,
    provider: Option<Provider>,
    entry: &RawFallback,
) -> Result<Alternative, OptionError> {
    if let Some(p) = provider.as_ref().filter(|p| p.kind != first.kind) {
        return Err(OptionError {
            kind: OptionErrorKind::Range,
            // The names are plain ASCII: quoted by hand, one formatting call.
            message: format!(
                "provider.name must be \"{}\", the first choice's API (request bodies are sent as they are), got \"{}\"",
                first.kind.name(),
                p.kind.name()
            ),
        });
    }
    let (model, fields) = options::validate_fallback(entry, provider.is_some())?;
    let overrides = Object::new();
    for (spec, n) in OVERRIDES.iter().zip(fields) {
        if let Some(n) = n {
            crate::web::set(&overrides, spec.key, n as f64);
        }
    }
    Ok(Alternative {
        provider: Rc::new(provider.unwrap_or_else(|| first.clone())),
        model: model.map_or(JsValue::UNDEFINED, |m| JsValue::from_str(&m)),
        overrides: overrides.into(),
    })
}
