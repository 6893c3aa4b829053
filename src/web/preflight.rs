//! Checks made on each item before its first attempt, so that an item which can never be
//! sent fails at once as `invalid` with 0 attempts — instead of being retried as a network
//! error and counted as an outage by the breaker.

use wasm_bindgen::prelude::*;

use super::{describe, get, JsJson};
use crate::providers::http::method_problem;
use crate::providers::Provider;

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = urlProblem)]
    fn url_problem(url: &str) -> String;
}

/// A fetch spec `{ url, method?, headers?, body? }`: an object, a URL fetch can send to, a
/// valid method, no body on GET/HEAD.
pub fn check_spec(spec: &JsValue) -> Result<(), String> {
    if !spec.is_object() {
        return Err(format!(
            "a fetch spec must be an object with a url, got {}",
            describe(spec)
        ));
    }
    let url = get(spec, "url")
        .and_then(|u| u.as_string())
        .filter(|u| !u.is_empty())
        .ok_or("fetch spec needs a non-empty string `url`")?;
    let problem = url_problem(&url);
    if !problem.is_empty() {
        return Err(problem);
    }
    let method = match get(spec, "method") {
        None => "GET".to_owned(),
        Some(m) => m
            .as_string()
            .ok_or_else(|| format!("fetch spec `method` must be a string, got {}", describe(&m)))?,
    };
    match method_problem(&method, get(spec, "body").is_some()) {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}

/// A provider request body: an object with the fields the provider needs.
pub fn check_request(provider: &Provider, body: &JsValue) -> Result<(), String> {
    if !body.is_object() || js_sys::Array::is_array(body) {
        return Err(format!(
            "a request body must be an object, got {}",
            describe(body)
        ));
    }
    provider.check_request(&JsJson(body.clone()))
}
