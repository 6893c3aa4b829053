//! `run()`'s transport: a fetch spec `{ url, method?, headers?, body? }` sent with the global
//! `fetch`, the body always read (an unread body holds a connection on Workers).

use js_sys::{Object, Promise, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Headers, RequestInit, Response};

use super::task::failure_from_js;
use super::{describe, get, got, has, parse_json, set};
use crate::core::cache_groups::Began;
use crate::core::limits::RateLimits;
use crate::error::{ErrorKind, Failure};
use crate::providers::http::{failure_from_reply, redirect_failure};
use crate::redact::Secrets;

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    /// The global `fetch` (glue.js `fetchOnce`: a prompt-cache primer's stream refused is
    /// asked again as its caller wrote it).
    #[wasm_bindgen(catch, js_name = fetchOnce)]
    fn global_fetch(url: &str, init: &RequestInit) -> Result<Promise, JsValue>;
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure::new(ErrorKind::Invalid, message)
}

/// Builds the request of one spec; a malformed spec is an `invalid` failure of that item only.
pub fn request_init(
    spec: &JsValue,
    signal: &AbortSignal,
) -> Result<(String, RequestInit), Failure> {
    if !spec.is_object() {
        return Err(invalid(got(
            "a fetch spec must be an object with a url",
            spec,
        )));
    }
    let url = get(spec, "url")
        .and_then(|u| u.as_string())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid("fetch spec needs a non-empty string `url`"))?;
    let init = RequestInit::new();
    init.set_signal(Some(signal));
    set(&init, "redirect", redirect_mode(spec)?);
    if let Some(method) = get(spec, "method") {
        let method = method
            .as_string()
            .ok_or_else(|| invalid(got("fetch spec `method` must be a string", &method)))?;
        init.set_method(&method);
    }
    let headers = match get(spec, "headers") {
        None => Headers::new(),
        Some(h) => Headers::new_with_str_sequence_sequence(&h),
    }
    .map_err(|e| {
        invalid(format!(
            "fetch spec `headers` are invalid: {}",
            failure_from_js(&e).message
        ))
    })?;
    if let Some(body) = get(spec, "body") {
        if body.is_string() || !is_plain_data(&body) {
            init.set_body(&body);
        } else {
            let json = JSON::stringify(&body).map_err(|e| not_json("fetch spec `body`", &e))?;
            if !headers.has("content-type").unwrap_or(false) {
                let _ = headers.set("content-type", "application/json");
            }
            init.set_body(&json);
        }
    }
    init.set_headers(&headers);
    Ok((url, init))
}

/// `{what} cannot be sent as JSON: {why}` (an `invalid` failure), for a body `JSON.stringify`
/// threw on: one message for specs' bodies and providers' requests.
pub(super) fn not_json(what: &str, thrown: &JsValue) -> Failure {
    invalid(format!(
        "{what} cannot be sent as JSON: {}",
        describe(thrown)
    ))
}

/// The spec's `redirect` ("follow", "manual" or "error"); default "manual": a redirect is not
/// followed but fails the item (see [`send`]), so no header goes to a host nobody named.
fn redirect_mode(spec: &JsValue) -> Result<String, Failure> {
    match get(spec, "redirect") {
        None => Ok("manual".to_owned()),
        Some(v) => v
            .as_string()
            .filter(|m| ["follow", "manual", "error"].contains(&m.as_str()))
            .ok_or_else(|| {
                invalid(got(
                    "fetch spec `redirect` must be \"follow\", \"manual\" or \"error\"",
                    &v,
                ))
            }),
    }
}

/// Plain objects and arrays go out as JSON; Blob, FormData, ArrayBuffer, streams as they are.
fn is_plain_data(body: &JsValue) -> bool {
    if js_sys::Array::is_array(body) {
        return true;
    }
    // Reflect, not Object.getPrototypeOf: a Proxy's trap may throw.
    body.is_object()
        && js_sys::Reflect::get_prototype_of(body)
            .is_ok_and(|proto| proto.is_null() || proto == Object::get_prototype_of(&Object::new()))
}

/// A fetch response whose body has been read in full (not `providers::Reply`, which is what
/// a provider's reply says).
pub struct ReadResponse {
    /// HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: Headers,
    /// The body, a JS string: it stays in the JS heap, out of the wasm memory.
    pub text: JsValue,
}

impl ReadResponse {
    /// A response header by name.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).ok().flatten()
    }
}

/// Reads a reply's rate-limit headers (a provider's), for the failure of a non-2xx reply.
pub type LimitsReader<'a> = &'a dyn Fn(&dyn Fn(&str) -> Option<String>) -> Option<RateLimits>;

/// How a reply's body is read: its size cap and the secrets replaced in it.
pub struct BodyRules<'a> {
    /// `maxResponseBytes`: a larger 2xx body fails the item.
    pub max_bytes: u64,
    /// Replaced wherever they appear whole in a body.
    pub secrets: &'a Secrets,
    /// Told when a 2xx reply's headers are in (a prompt-cache group's primer, `cacheAware`).
    /// Such a request asks for a stream of Messages events the caller did not ask for: its
    /// 2xx body is put back together as the Message (glue.js `messageFromEvents`),
    /// `max_bytes` its cap (the events may take several times that).
    pub began: Option<&'a Began>,
}

/// An error reply is read for its message only: this much of it is plenty.
pub const ERROR_BODY_BYTES: u64 = 64 * 1024;

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = readBody)]
    fn read_body(
        response: &Response,
        max_bytes: f64,
        truncate: bool,
        secrets: &JsValue,
        stream: bool,
    ) -> Promise;
}

/// Sends a request with the global `fetch` and reads the whole body: an unread body would
/// hold one of a Worker's 6 connections. A non-2xx reply is an `http` failure, carrying what
/// `limits` reads from its headers; a redirect (sent with `redirect: "manual"`) is one that is
/// never retried.
pub async fn send(
    url: &str,
    init: &RequestInit,
    limits: LimitsReader<'_>,
    rules: &BodyRules<'_>,
) -> Result<ReadResponse, Failure> {
    let sent = global_fetch(url, init).map_err(|e| fetch_rejection(&e))?;
    let response: Response = JsFuture::from(sent)
        .await
        .map_err(|e| fetch_rejection(&e))?
        .unchecked_into();
    let (status, ok) = (response.status(), response.ok());
    if let Some(began) = rules.began.filter(|_| ok) {
        began.now();
    }
    let cap = if ok {
        rules.max_bytes
    } else {
        rules.max_bytes.min(ERROR_BODY_BYTES)
    };
    let secrets: js_sys::Array = rules.secrets.iter().map(JsValue::from_str).collect();
    let text = JsFuture::from(read_body(&response, cap as f64, !ok, &secrets, rules.began.is_some()))
        .await
        .map_err(|e| {
            if let Some(bytes) = get(&e, "tooLarge").and_then(|b| b.as_f64()) {
                return Failure {
                    retryable: Some(false),
                    ..Failure::http(status, format!(
                        "the reply is larger than maxResponseBytes ({} bytes; read {} before stopping): raise maxResponseBytes to accept it",
                        rules.max_bytes, bytes as u64
                    ))
                };
            }
            let cause = failure_from_js(&e).message;
            Failure::new(
                ErrorKind::Network,
                format!("reading the body failed: {cause}"),
            )
        })?;
    let reply = ReadResponse {
        status,
        headers: response.headers(),
        text,
    };
    let opaque = get(&response, "type")
        .and_then(|t| t.as_string())
        .as_deref()
        == Some("opaqueredirect");
    let location = reply.header("location");
    if opaque || (300..400).contains(&reply.status) && location.is_some() {
        return Err(redirect_failure(
            (!opaque).then_some(reply.status),
            location.as_deref(),
        ));
    }
    if !ok {
        let body = parse_json(&reply.text);
        let header = |h: &str| reply.header(h);
        let mut failure = failure_from_reply(
            reply.status,
            &response.status_text(),
            body.as_ref(),
            header,
            js_sys::Date::now(),
        );
        failure.limits = limits(&header).map(Box::new);
        return Err(failure);
    }
    Ok(reply)
}

impl Default for BodyRules<'_> {
    fn default() -> Self {
        static NONE: Secrets = Secrets::NONE;
        BodyRules {
            max_bytes: crate::options::DEFAULT_MAX_RESPONSE_BYTES,
            secrets: &NONE,
            began: None,
        }
    }
}

/// Sends one spec with the default [`BodyRules`]; see [`fetch_spec_with`].
pub async fn fetch_spec(spec: &JsValue, signal: &AbortSignal) -> Result<JsValue, Failure> {
    fetch_spec_with(spec, signal, &BodyRules::default()).await
}

/// Sends one spec. Value: `{ status, headers, body }`, body parsed when the reply is JSON.
pub async fn fetch_spec_with(
    spec: &JsValue,
    signal: &AbortSignal,
    rules: &BodyRules<'_>,
) -> Result<JsValue, Failure> {
    let (url, init) = request_init(spec, signal)?;
    Ok(spec_value(&send(&url, &init, &|_| None, rules).await?))
}

/// A fetch spec's value, `{ status, headers, body }`, of its reply (the body parsed when the
/// reply is JSON).
pub fn spec_value(reply: &ReadResponse) -> JsValue {
    let is_json = reply
        .header("content-type")
        .is_some_and(|ct| has(&ct.to_ascii_lowercase(), "json"));
    let body = match is_json.then(|| parse_json(&reply.text)).flatten() {
        Some(parsed) => parsed.0,
        None => reply.text.clone(),
    };
    let value = Object::new();
    set(&value, "status", reply.status);
    set(&value, "headers", headers_object(&reply.headers));
    set(&value, "body", body);
    value.into()
}

/// A rejected `fetch`: a malformed URL is the item's fault, anything else is the network's.
fn fetch_rejection(err: &JsValue) -> Failure {
    let mut failure = failure_from_js(err);
    let m = failure.message.as_str();
    if ["URL", "Invalid", "cannot load"].iter().any(|n| has(m, n)) {
        failure.kind = Some(ErrorKind::Invalid);
    } else if failure.kind() == ErrorKind::Task {
        failure.kind = Some(ErrorKind::Network);
    }
    failure
}

/// Headers as a plain object with lower-case names (Headers iterates them lower-cased).
pub fn headers_object(headers: &Headers) -> JsValue {
    let out = Object::new();
    if let Ok(Some(entries)) = js_sys::try_iter(headers) {
        for entry in entries.flatten() {
            let pair: js_sys::Array = entry.unchecked_into();
            let _ = js_sys::Reflect::set(&out, &pair.get(0), &pair.get(1));
        }
    }
    out.into()
}
