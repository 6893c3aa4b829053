//! The providers' Batch APIs: Anthropic's Message Batches (`/v1/messages/batches`) and
//! OpenAI's Files + Batch API (`/v1/files`, `/v1/batches`), so that routing work to them can
//! be built and tested without a key.
//!
//! Batches are state, kept in the [`Simulator`](crate::Simulator) that already keeps state
//! across requests (its buckets, its requests in flight): each simulator, so each Worker
//! session, has its own batches, and every host that hands requests to `handle` serves them.
//! Nothing runs in the background: each item's finish time and outcome are fixed when the
//! batch is made (its reply from the same code as a realtime call), and every request reads
//! the batch as it stands at its `now`, so time only moves with the host's clock.

mod anthropic;
mod lifecycle;
mod openai;
#[cfg(test)]
mod tests;

use crate::api::Api;
use crate::error::{ApiError, ErrorKind};
use crate::json::Json;
use crate::raw::{OptionError, Raw};
use crate::reply::{self, Success};
use crate::request::Prompt;
use crate::text::quote;
use crate::{Decision, Request, Simulator};

pub use lifecycle::{Batch, Item, Outcome, State};

/// `batches: { delayMs, spreadMs, errorRate, windowMs, maxRequests, maxBytes }` of the sim's
/// options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Before any item of a batch finishes.
    pub delay_ms: f64,
    /// Items finish spread uniformly over this long after the delay.
    pub spread_ms: f64,
    /// The share of items that fail (`errored`; OpenAI: a 500 in the error file).
    pub error_rate: f64,
    /// The completion window ("24h"): a batch not done by then ends expired.
    pub window_ms: f64,
    /// Requests a batch may hold, below the API's own limit (100,000 Anthropic, 50,000
    /// OpenAI): a client's chunking at a limit is tested with a few requests, not 100,000.
    pub max_requests: f64,
    /// Bytes a batch may hold (Anthropic: the create body; OpenAI: the input file), below the
    /// API's own limit (256 MB, 200 MB), for the same reason.
    pub max_bytes: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            delay_ms: 1000.0,
            spread_ms: 4000.0,
            error_rate: 0.0,
            window_ms: 86_400_000.0,
            max_requests: anthropic::MAX_REQUESTS as f64,
            max_bytes: anthropic::MAX_BYTES as f64,
        }
    }
}

/// Keys of `batches`.
pub const KEYS: &[&str] = &[
    "delayMs",
    "spreadMs",
    "errorRate",
    "windowMs",
    "maxRequests",
    "maxBytes",
];

impl Settings {
    /// Validates `batches.*` read by `get` (dotted names, as `Config::from_options` reads).
    pub fn from_options(get: &impl Fn(&str) -> Raw) -> Result<Settings, OptionError> {
        let d = Settings::default();
        let mut v = [
            d.delay_ms,
            d.spread_ms,
            d.error_rate,
            d.window_ms,
            d.max_requests,
            d.max_bytes,
        ];
        let max = [
            86_400_000.0,
            86_400_000.0,
            1.0,
            9_007_199_254_740_991.0,
            d.max_requests,
            d.max_bytes,
        ];
        for ((slot, key), max) in v.iter_mut().zip(KEYS).zip(max) {
            let name = format!("batches.{key}");
            // The window and the limits are at least 1; the limits whole numbers.
            let from_one = matches!(*key, "windowMs" | "maxRequests" | "maxBytes");
            let whole = matches!(*key, "maxRequests" | "maxBytes");
            match get(&name) {
                Raw::Missing => {}
                Raw::Number(n)
                    if (0.0..=max).contains(&n)
                        && (!from_one || n >= 1.0)
                        && (!whole || n.fract() == 0.0) =>
                {
                    *slot = n
                }
                raw => {
                    let lo = if from_one { "1" } else { "0" };
                    let kind = if whole { "an integer" } else { "a number" };
                    let want = format!("{kind} in {lo}..={}", crate::text::format_number(max));
                    return Err(OptionError::expected(&name, &want, &raw));
                }
            }
        }
        let [delay_ms, spread_ms, error_rate, window_ms, max_requests, max_bytes] = v;
        Ok(Settings {
            delay_ms,
            spread_ms,
            error_rate,
            window_ms,
            max_requests,
            max_bytes,
        })
    }

    /// The requests limit in force for `api_max` (the API's own).
    pub fn requests_limit(&self, api_max: usize) -> usize {
        (self.max_requests as usize).min(api_max)
    }

    /// The bytes limit in force for `api_max` (the API's own).
    pub fn bytes_limit(&self, api_max: u64) -> u64 {
        (self.max_bytes as u64).min(api_max)
    }
}

/// An uploaded file (OpenAI): what it holds, and for a batch input file its lines as read.
#[derive(Clone, Debug)]
pub struct File {
    id: String,
    filename: String,
    purpose: String,
    created_ms: f64,
    content: String,
    /// Input files: each line, read at upload (the sim has no JSON parser of its own).
    lines: Vec<openai::Line>,
}

/// The batches and files of one simulator.
#[derive(Clone, Debug, Default)]
pub struct Store {
    batches: Vec<Batch>,
    files: Vec<File>,
    /// Ids handed out so far.
    made: u64,
}

/// What a batch route answers: status and body; `jsonl` for results and file contents.
#[derive(Debug, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// JSON, or JSONL.
    pub body: String,
    /// The body is a file (JSONL or an upload's bytes), not a JSON object.
    pub jsonl: bool,
}

impl Answer {
    fn ok(body: String) -> Answer {
        Answer {
            status: 200,
            body,
            jsonl: false,
        }
    }
}

/// An error answer in `api`'s shape.
fn fail(api: Api, e: ApiError) -> Answer {
    Answer {
        status: e.kind.status(api),
        body: e.body(api),
        jsonl: false,
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorKind::Invalid, message)
}

fn not_found(message: String) -> ApiError {
    ApiError {
        code: None,
        ..ApiError::new(ErrorKind::NotFound, message)
    }
}

/// A batch route: which API, and the path after `/v1/messages/batches`, `/v1/batches` or
/// `/v1/files` (e.g. `/msgbatch_…/results`), with the query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Route<'a> {
    /// Which resource.
    pub kind: Kind,
    /// The path's segments after the resource (`id`, then `cancel`/`results`/`content`).
    pub rest: &'a str,
    /// The query string, without `?`.
    pub query: &'a str,
}

/// The three resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/v1/messages/batches`.
    MessageBatches,
    /// `/v1/batches`.
    Batches,
    /// `/v1/files`.
    Files,
}

impl<'a> Route<'a> {
    /// The route of `path` (a prefix, as with `/sim/v1/…`, and a query are fine). Bytes and
    /// `get`, not `find` and `[..]`: a substring searcher and a slice that can panic bring
    /// kilobytes (and Unicode tables) into the wasm build.
    pub fn parse(path: &'a str) -> Option<Route<'a>> {
        let end = path.bytes().position(|b| b == b'?').unwrap_or(path.len());
        let query = path.get(end + 1..).unwrap_or("");
        let path = path.get(..end).unwrap_or("");
        let path = path.strip_suffix('/').unwrap_or(path);
        for (kind, base) in [
            (Kind::MessageBatches, "/v1/messages/batches"),
            (Kind::Batches, "/v1/batches"),
            (Kind::Files, "/v1/files"),
        ] {
            let base = base.as_bytes();
            let found = path.as_bytes().windows(base.len()).position(|w| w == base);
            if let Some(rest) = found.and_then(|at| path.get(at + base.len()..)) {
                if rest.is_empty() || rest.starts_with('/') {
                    return Some(Route { kind, rest, query });
                }
            }
        }
        None
    }

    /// The API whose auth and error shapes the route uses.
    pub fn api(&self) -> Api {
        match self.kind {
            Kind::MessageBatches => Api::Anthropic,
            _ => Api::OpenAi,
        }
    }

    /// A query parameter's value (ids and numbers: no percent-decoding needed).
    pub fn param(&self, key: &str) -> Option<&'a str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// `(id, action)` of `/id` or `/id/action`.
    fn target(&self) -> (Option<&'a str>, Option<&'a str>) {
        let mut parts = self.rest.split('/').skip(1);
        (parts.next(), parts.next())
    }
}

/// `limit` from the query: `default` when absent, else an integer in `1..=max`.
fn limit(api: Api, route: &Route, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(raw) = route.param("limit") else {
        return Ok(default);
    };
    match raw.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        // Anthropic's validator names the bound that was crossed (the SDKs show the message
        // as it is, so `limit=0` must not read "less than or equal to 1000"); what does not
        // parse as a `usize` is mostly a negative number.
        n => Err(invalid(match api {
            Api::Anthropic if n.is_err() || n == Ok(0) => {
                "limit: Input should be greater than or equal to 1".into()
            }
            Api::Anthropic => format!("limit: Input should be less than or equal to {max}"),
            Api::OpenAi => format!("Invalid 'limit': integer must be between 1 and {max}."),
        })),
    }
}

/// A page of `ids` (newest first): after `after` or before `before`, `limit` of them, and
/// whether more are left in that direction.
fn page<'a>(
    ids: &[&'a str],
    after: Option<&str>,
    before: Option<&str>,
    limit: usize,
) -> (Vec<&'a str>, bool) {
    let at = |id: &str| ids.iter().position(|x| *x == id);
    match (after, before) {
        (_, Some(b)) => {
            let end = at(b).unwrap_or(0);
            let start = end.saturating_sub(limit);
            (ids[start..end].to_vec(), start > 0)
        }
        (Some(a), None) => {
            let start = at(a).map_or(ids.len(), |i| i + 1);
            let end = (start + limit).min(ids.len());
            (ids[start..end].to_vec(), end < ids.len())
        }
        (None, None) => {
            let end = limit.min(ids.len());
            (ids[..end].to_vec(), end < ids.len())
        }
    }
}

/// The first id that repeats an earlier one: `(first place, repeat)`. A small open-addressing
/// table over the prompt hash the sim already has: a sort or a `HashMap` would add kilobytes
/// to the wasm.
pub fn repeated(ids: &[&str]) -> Option<(usize, usize)> {
    let size = (ids.len() * 2).next_power_of_two().max(2);
    let mut slots = vec![usize::MAX; size];
    for (i, id) in ids.iter().enumerate() {
        let mut at = reply::prompt_hash(id) as usize & (size - 1);
        loop {
            match slots[at] {
                usize::MAX => {
                    slots[at] = i;
                    break;
                }
                j if ids[j] == *id => return Some((j, i)),
                _ => at = (at + 1) & (size - 1),
            }
        }
    }
    None
}

/// 16 hex digits for item `i` of a batch (its ids), stable for the batch; `salt` tells the
/// ids of one item apart.
pub fn item_tag(batch_id: &str, i: usize, salt: u64) -> String {
    let h = reply::prompt_hash(batch_id) ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:016x}", reply::mix(h ^ salt))
}

/// `"x"` or `null`.
fn opt(s: Option<&str>) -> String {
    s.map_or("null".into(), quote)
}

/// The reply a valid request gets: the same hash, length and text as a realtime call.
pub fn reply_for(prompt: &Prompt, max_tokens: u64) -> lifecycle::Reply {
    let hash = reply::prompt_hash(&prompt.text);
    let natural = reply::natural_tokens(hash, max_tokens);
    let output = prompt.max_tokens.map_or(natural, |m| m.min(natural));
    lifecycle::Reply {
        model: prompt.model.clone(),
        text: reply::summary(prompt, hash, output),
        truncated: output < natural,
        input_tokens: prompt.input_tokens(),
        output_tokens: output,
        cache: None,
    }
}

impl lifecycle::Reply {
    /// The body a realtime call would have got, with this id and `created` (Unix seconds).
    pub fn body(&self, api: Api, id: &str, created: u64) -> String {
        Success {
            id,
            model: &self.model,
            text: &self.text,
            truncated: self.truncated,
            input_tokens: self.input_tokens - self.cache.map_or(0, |c| c.written() + c.read),
            output_tokens: self.output_tokens,
            cache: self.cache,
            created,
        }
        .body(api)
    }
}

impl Simulator {
    /// A new id's tag: 16 hex digits, distinct per simulator call, seeded.
    fn batch_tag(&mut self, salt: u64) -> String {
        self.batches.made += 1;
        let n = self.batches.made;
        format!(
            "{:016x}",
            reply::mix(self.config.seed.wrapping_mul(0xA24B_AED4_963E_E407) ^ (n << 8) ^ salt)
        )
    }

    /// Unix ms of a sim time.
    fn wall_ms(&self, now_ms: f64) -> u64 {
        self.config.epoch_ms + now_ms.max(0.0) as u64
    }

    /// Answers a batch route (see [`Route`]); auth as on the API's realtime route.
    pub(crate) fn batch_route<J: Json>(
        &mut self,
        route: Route,
        req: &Request<'_, J>,
        now_ms: f64,
    ) -> Answer {
        let api = route.api();
        if let Err(e) = crate::request::auth(api, req.headers) {
            return fail(api, e);
        }
        let method = req.method.to_ascii_uppercase();
        let answer = match route.kind {
            Kind::MessageBatches => self.message_batches(&method, &route, req, now_ms),
            Kind::Batches => self.openai_batches(&method, &route, req.body, now_ms),
            Kind::Files => self.files(&method, &route, req.body, now_ms),
        };
        answer.unwrap_or_else(|e| fail(api, e))
    }

    /// The decision for a batch route: its answer with the API's usual headers.
    pub(crate) fn batch_decision<J: Json>(
        &mut self,
        id: u32,
        route: Route,
        req: &Request<'_, J>,
        now_us: u64,
    ) -> Decision {
        let a = self.batch_route(route, req, now_us as f64 / 1000.0);
        let mut d = self.reply(id, route.api(), a.status, a.body, now_us);
        if a.jsonl {
            d.headers[0].1 = "application/x-jsonl".into();
        }
        d
    }
}

/// 405 for a method a route does not take.
fn method(method: &str, allowed: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Method,
        format!("Method {method} not allowed; use {allowed}"),
    )
}
