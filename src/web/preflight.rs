//! Checks made on each item before its first attempt, so that an item which can never be
//! sent fails at once as `invalid` with 0 attempts — instead of being retried as a network
//! error and counted as an outage by the breaker.

use wasm_bindgen::prelude::*;

use super::{got, JsJson};
use crate::providers::Provider;

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = specProblem)]
    fn spec_problem(spec: &JsValue) -> String;
}

/// A fetch spec `{ url, method?, headers?, body? }`: an object, a URL fetch can send to, a
/// valid method, no body on GET/HEAD (checked in JS, with the host's own URL parser).
pub fn check_spec(spec: &JsValue) -> Result<(), String> {
    let problem = spec_problem(spec);
    if problem.is_empty() {
        Ok(())
    } else {
        Err(problem)
    }
}

/// A provider request body: an object with the fields the provider needs.
pub fn check_request(provider: &Provider, body: &JsValue) -> Result<(), String> {
    if !body.is_object() || js_sys::Array::is_array(body) {
        return Err(got("a request body must be an object", body));
    }
    provider.check_request(&JsJson(body.clone()))
}
