//! A simulated AI API: a faithful, adversarial stand-in for Anthropic's Messages API and
//! OpenAI's Chat Completions, so the demo runs without a key and tests and benchmarks have a
//! realistic upstream.
//!
//! Pure Rust and host-agnostic: the host passes each request in (its body already parsed,
//! through the [`Json`] view) with the current time, and gets a [`Decision`] back: status,
//! headers and body, how long to wait before answering, and how to answer (reply, hang,
//! trickle the body, cut the connection, send broken JSON). `js/sim-host.mjs` carries the
//! decisions out over fetch-API `Request`/`Response`.
//!
//! What it models: request and token buckets that refill continuously over a configurable
//! "minute" (429 with exact `retry-after`/`retry-after-ms` when a request does not fit), the
//! rate-limit headers both APIs send on every reply, validation and auth errors with the real
//! error shapes, a latency model, and random faults, all seeded and repeatable; a
//! `stream: true` request gets its reply as each API's server-sent events (`stream.rs`); and
//! both providers' Batch APIs (Anthropic's Message Batches, OpenAI's Files + Batch API), their
//! batches kept in the simulator and read at each request's time (`batches/`).
//!
//! ```
//! # #[cfg(not(feature = "serde_json"))]
//! # fn main() {}
//! # #[cfg(feature = "serde_json")]
//! # fn main() {
//! use edgebatch_sim::{Action, Config, Request, Simulator};
//!
//! // The host's parsed JSON through the `Json` view: here serde_json (feature `serde_json`),
//! // in wasm the host's own JSON.parse.
//! let mut sim = Simulator::new(Config { requests_per_minute: Some(1), ..Config::default() });
//! let headers = [("x-api-key", "k"), ("anthropic-version", "2023-06-01")]
//!     .map(|(k, v)| (k.to_owned(), v.to_owned()));
//! let body = serde_json::json!({ "model": "m", "max_tokens": 100,
//!     "messages": [{ "role": "user", "content": "Summarise this please" }] });
//! let req = Request { method: "POST", path: "/v1/messages", headers: &headers, body: Some(&body) };
//! let d = sim.handle(&req, 0.0);
//! assert_eq!((d.status, d.action), (200, Action::Reply));
//! assert!(d.body.contains(r#""text":"Summary "#));
//! sim.finish(d.id, d.delay_ms);
//! // The one request of this minute is spent: the next must wait the whole minute.
//! let again = sim.handle(&req, 1000.0);
//! assert_eq!(again.status, 429);
//! assert!(again.headers.contains(&("retry-after-ms".to_owned(), "59000".to_owned())));
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod batches;
pub mod bucket;
pub mod cache;
pub mod config;
pub mod error;
pub mod json;
pub mod limits;
pub mod raw;
pub mod reply;
pub mod request;
pub mod rng;
pub mod stream;
pub mod text;
pub mod time;

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(test)]
mod tests;

pub use config::{Capacity, Config, Fault, Faults, Latency};
pub use json::Json;

use api::Api;
use error::{ApiError, ErrorKind};
use limits::Limits;
use reply::Success;
use rng::SplitMix64;

/// A request as the host received it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a, J> {
    /// `POST`, `GET`, ...
    pub method: &'a str,
    /// The URL path; the API is picked by its end (`…/v1/messages`, `…/v1/chat/completions`).
    pub path: &'a str,
    /// Headers, names in lower case.
    pub headers: &'a [(String, String)],
    /// The parsed JSON body; `None` when there was none or it was not JSON.
    pub body: Option<&'a J>,
}

/// How the host answers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Send status, headers and body after `delay_ms`.
    Reply,
    /// Send nothing until the client gives up, then call [`Simulator::abort`].
    Hang,
    /// Send status and headers after `delay_ms`, then the body `chunk_bytes` at a time with
    /// `chunk_ms` pauses.
    SlowBody {
        /// Pause before each chunk.
        chunk_ms: f64,
        /// Bytes per chunk.
        chunk_bytes: u32,
    },
    /// After `delay_ms`, drop the connection without a reply.
    Disconnect,
    /// Send the 200 after `delay_ms`; the body is already broken JSON.
    Malformed,
    /// Send status and headers after `delay_ms`, then the body's server-sent events (each
    /// ends with a blank line) one every `event_ms`, the first at once: a `stream: true`
    /// reply, its events spread over the generation time.
    Stream {
        /// Pause between two events.
        event_ms: f64,
    },
}

/// What to do with one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// For [`Simulator::finish`] / [`Simulator::abort`].
    pub id: u32,
    /// HTTP status; 0 when nothing is sent (hang, disconnect).
    pub status: u16,
    /// Response headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Response body (JSON, server-sent events for a streamed reply, or broken JSON for
    /// [`Action::Malformed`]).
    pub body: String,
    /// Wait this long before acting.
    pub delay_ms: f64,
    /// How to answer.
    pub action: Action,
}

/// Counters since the simulator was made.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Requests handled.
    pub requests: u64,
    /// Replies by status, in order of first appearance (hangs and disconnects have none).
    pub by_status: Vec<(u16, u64)>,
    /// Requests that hung.
    pub hangs: u64,
    /// Requests that got a dropped connection.
    pub disconnects: u64,
    /// Replies with broken JSON.
    pub malformed: u64,
    /// Replies with a slow body.
    pub slow_bodies: u64,
    /// Admitted `stream: true` requests (whatever fault then met them).
    pub streams: u64,
    /// Streams that broke off with an error event.
    pub stream_errors: u64,
    /// Handled but neither finished nor aborted.
    pub in_flight: u64,
    /// The most in flight at once.
    pub max_in_flight: u64,
    /// Finished by the host.
    pub finished: u64,
    /// Abandoned by the client.
    pub aborted: u64,
    /// Input tokens of admitted requests.
    pub input_tokens: u64,
    /// Output tokens of admitted requests.
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache (part of `input_tokens`).
    pub cache_write_tokens: u64,
    /// Input tokens read from the prompt cache (part of `input_tokens`).
    pub cache_read_tokens: u64,
    /// Sum over finished requests of finish time minus handle time.
    pub busy_ms: f64,
    /// Requests shed because the server was full (see [`Capacity`]).
    pub shed: u64,
    /// The most served at once (shed requests and random faults excluded).
    pub max_served: u64,
}

/// The simulated API. Single-threaded; time only moves through the `now_ms` it is given.
#[derive(Debug)]
pub struct Simulator {
    config: Config,
    rng: SplitMix64,
    limits: Limits,
    next_id: u32,
    /// Requests in flight: id, when handled, whether it takes a place of [`Capacity`].
    open: Vec<(u32, f64, bool)>,
    /// Set by `respond` when the request it decided is being served.
    served: bool,
    stats: Stats,
    /// The Batch APIs' batches and files (`batches/`).
    batches: batches::Store,
    /// Anthropic's prompt cache (`cache.rs`).
    cache: cache::Cache,
    /// What the request being decided does to the cache, once its headers' time is known.
    cache_plan: Option<cache::Plan>,
}

/// Milliseconds (any `f64`) as whole microseconds; negative and NaN read as 0.
fn micros(ms: f64) -> u64 {
    (ms.max(0.0) * 1000.0) as u64
}

impl Simulator {
    /// A simulator with full buckets at time 0.
    pub fn new(config: Config) -> Simulator {
        Simulator {
            rng: SplitMix64::new(config.seed),
            limits: Limits::new(&config),
            config,
            next_id: 0,
            open: Vec::new(),
            served: false,
            stats: Stats::default(),
            batches: batches::Store::default(),
            cache: cache::Cache::default(),
            cache_plan: None,
        }
    }

    /// Decides the fate of one request arriving at `now_ms` and counts it in flight.
    pub fn handle<J: Json>(&mut self, req: &Request<'_, J>, now_ms: f64) -> Decision {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let jitter_ms = self.rng.next_f64() * self.config.latency.jitter_ms;
        self.served = false;
        let shed_before = self.stats.shed;
        let mut d = self.respond(id, req, micros(now_ms));
        // Shedding is fast by design: no jitter on it.
        if d.action != Action::Hang && self.stats.shed == shed_before {
            d.delay_ms += jitter_ms;
        }
        // The cache entries it writes are readable once its headers go out; a request that
        // never answers (hang, disconnect) writes none.
        if let Some(plan) = self.cache_plan.take() {
            if d.status != 0 {
                let now_us = micros(now_ms);
                self.cache
                    .commit(&plan, now_us, micros(now_ms + d.delay_ms));
            }
        }
        let s = &mut self.stats;
        s.requests += 1;
        match d.action {
            Action::Hang => s.hangs += 1,
            Action::Disconnect => s.disconnects += 1,
            Action::Malformed => s.malformed += 1,
            Action::SlowBody { .. } => s.slow_bodies += 1,
            Action::Reply | Action::Stream { .. } => {}
        }
        if d.status != 0 {
            match s.by_status.iter_mut().find(|(st, _)| *st == d.status) {
                Some((_, n)) => *n += 1,
                None => s.by_status.push((d.status, 1)),
            }
        }
        self.open.push((id, now_ms, self.served));
        s.max_in_flight = s.max_in_flight.max(self.open.len() as u64);
        let busy = self.busy();
        self.stats.max_served = self.stats.max_served.max(busy);
        d
    }

    /// The host sent the reply (or gave up on it) at `now_ms`. Returns whether `id` was open.
    pub fn finish(&mut self, id: u32, now_ms: f64) -> bool {
        let Some(start) = self.close(id) else {
            return false;
        };
        self.stats.finished += 1;
        self.stats.busy_ms += (now_ms - start).max(0.0);
        true
    }

    /// The client went away before the reply. Returns whether `id` was open.
    pub fn abort(&mut self, id: u32) -> bool {
        let open = self.close(id).is_some();
        self.stats.aborted += u64::from(open);
        open
    }

    fn close(&mut self, id: u32) -> Option<f64> {
        let at = self.open.iter().position(|(i, ..)| *i == id)?;
        Some(self.open.swap_remove(at).1)
    }

    /// Requests being served now (each holds a place of the capacity).
    fn busy(&self) -> u64 {
        self.open.iter().filter(|(.., served)| *served).count() as u64
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        Stats {
            in_flight: self.open.len() as u64,
            ..self.stats.clone()
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn tag(&self, id: u32) -> String {
        format!(
            "{:016x}",
            reply::mix(self.config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(id))
        )
    }

    /// A reply with the API's common headers and, for a known API, the rate-limit headers.
    fn reply(&mut self, id: u32, api: Api, status: u16, body: String, now_us: u64) -> Decision {
        let request_id = match api {
            Api::Anthropic => ("request-id", format!("req_sim_{}", self.tag(id))),
            Api::OpenAi => ("x-request-id", format!("req_{}", self.tag(id))),
        };
        let mut headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            (request_id.0.to_owned(), request_id.1),
        ];
        let levels = self.limits.levels(now_us);
        let wall_us = self.config.epoch_ms * 1000 + now_us;
        limits::rate_headers(api, &levels, wall_us, &mut headers);
        Decision {
            id,
            status,
            headers,
            body,
            delay_ms: self.config.latency.base_ms,
            action: Action::Reply,
        }
    }

    fn error(&mut self, id: u32, api: Api, err: ApiError, now_us: u64) -> Decision {
        let status = err.kind.status(api);
        self.reply(id, api, status, err.body(api), now_us)
    }

    fn respond<J: Json>(&mut self, id: u32, req: &Request<'_, J>, now_us: u64) -> Decision {
        // The Batch APIs: state, not a model call; neither charged nor faulted.
        if let Some(route) = batches::Route::parse(req.path) {
            return self.batch_decision(id, route, req, now_us);
        }
        let Some(api) = Api::from_path(req.path) else {
            let err = ApiError::new(ErrorKind::NotFound, format!("Not found: {}", req.path));
            let mut d = self.error(id, Api::Anthropic, err, now_us);
            d.headers.truncate(2);
            return d;
        };
        if !req.method.eq_ignore_ascii_case("POST") {
            let message = format!("Method {} not allowed; use POST", req.method);
            return self.error(id, api, ApiError::new(ErrorKind::Method, message), now_us);
        }
        let prompt = match request::check(api, req.headers, req.body) {
            Ok(p) => p,
            Err(err) => return self.error(id, api, err, now_us),
        };
        // A model overloaded on its own (`faults.byModel`), in its window.
        let model_fault = self
            .config
            .by_model
            .iter()
            .find(|f| f.model == prompt.model);
        if let Some(f) = model_fault.filter(|f| f.open_at(now_us as f64 / 1000.0)) {
            let overloaded = f.overloaded;
            if self.rng.next_f64() < overloaded {
                let err = ApiError::new(ErrorKind::Overloaded, "Overloaded".into());
                return self.error(id, api, err, now_us);
            }
        }
        let fault = self.config.faults.pick(self.rng.next_f64());
        // Turned away at the door: nothing is charged, and no retry-after is given.
        let early = match fault {
            Some(Fault::RateLimited) => Some((
                ErrorKind::RateLimit { tokens: false },
                "Rate limited; please slow down",
            )),
            Some(Fault::Overloaded) => Some((ErrorKind::Overloaded, "Overloaded")),
            Some(Fault::Internal) => Some((ErrorKind::Internal, "Internal server error")),
            _ => None,
        };
        if let Some((kind, message)) = early {
            return self.error(id, api, ApiError::new(kind, message.into()), now_us);
        }
        // A full server sheds before it looks at the account's limits: nothing is charged.
        let slowdown = match self.config.capacity {
            None => 1.0,
            Some(cap) => match cap.admit(self.busy()) {
                Some(factor) => factor,
                None => {
                    self.stats.shed += 1;
                    let err = ApiError::new(ErrorKind::Overloaded, "Overloaded".into());
                    let mut d = self.error(id, api, err, now_us);
                    d.delay_ms = cap.shed_ms;
                    return d;
                }
            },
        };
        let hash = reply::prompt_hash(&prompt.text);
        let natural = reply::natural_tokens(hash, self.config.max_tokens);
        let output = prompt.max_tokens.map_or(natural, |m| m.min(natural));
        let input = prompt.input_tokens();
        // Anthropic's cache: what this request reads and writes (none without cache_control).
        let plan = (api == Api::Anthropic && !prompt.cache.is_empty())
            .then(|| self.cache.plan(&prompt.model, &prompt.cache, now_us));
        let usage = plan.as_ref().map(|p| p.usage);
        // Cache reads do not count against the input-token limit.
        let read = usage.map_or(0, |u| u.read);
        if let Err(refusal) = self.limits.admit(now_us, [1, input - read, output]) {
            let (err, retry) = refusal.error();
            let mut d = self.error(id, api, err, now_us);
            d.headers.extend(retry);
            return d;
        }
        self.stats.input_tokens += input;
        self.stats.output_tokens += output;
        if let Some(u) = usage {
            self.stats.cache_write_tokens += u.written();
            self.stats.cache_read_tokens += u.read;
        }
        self.cache_plan = plan;
        let text = reply::summary(&prompt, hash, output);
        let reply_id = match api {
            Api::Anthropic => format!("msg_sim_{}", self.tag(id)),
            Api::OpenAi => format!("chatcmpl-sim{}", self.tag(id)),
        };
        let success = Success {
            id: &reply_id,
            model: &prompt.model,
            text: &text,
            truncated: output < natural,
            input_tokens: input - usage.map_or(0, |u| u.written() + u.read),
            cache: usage,
            output_tokens: output,
            created: (self.config.epoch_ms + now_us / 1000) / 1000,
        };
        // A stream's events, and how many the whole stream has: the generation time is
        // spread over the gaps between them.
        let (body, events) = if prompt.stream {
            let broken = fault == Some(Fault::StreamError);
            self.stats.streams += 1;
            self.stats.stream_errors += u64::from(broken);
            stream::events(api, &success, prompt.include_usage, broken)
        } else {
            (success.body(api), 0)
        };
        self.served = true;
        let mut d = self.reply(id, api, 200, body, now_us);
        if prompt.stream {
            for (name, value) in d.headers.iter_mut() {
                if name == "content-type" {
                    *value = stream::CONTENT_TYPE.into();
                }
            }
            d.headers.push(("cache-control".into(), "no-cache".into()));
        }
        d.delay_ms *= slowdown;
        let generation_ms = self.config.latency.per_output_token_ms * output as f64 * slowdown;
        match fault {
            Some(Fault::Hang) => {
                d = Decision {
                    status: 0,
                    headers: Vec::new(),
                    body: String::new(),
                    delay_ms: 0.0,
                    action: Action::Hang,
                    ..d
                };
            }
            Some(Fault::SlowBody) => {
                d.action = Action::SlowBody {
                    chunk_ms: self.config.latency.chunk_ms,
                    chunk_bytes: d.body.len().div_ceil(8).max(1) as u32,
                };
            }
            Some(Fault::Malformed) => {
                d.body = reply::truncate_half(&d.body);
                d.delay_ms += generation_ms;
                d.action = Action::Malformed;
            }
            Some(Fault::Disconnect) => {
                d.status = 0;
                d.headers.clear();
                d.body.clear();
                d.action = Action::Disconnect;
            }
            _ if prompt.stream => {
                d.action = Action::Stream {
                    event_ms: generation_ms / events.saturating_sub(1).max(1) as f64,
                };
            }
            _ => d.delay_ms += generation_ms,
        }
        d
    }
}
