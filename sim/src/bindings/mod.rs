//! `Simulator`: the simulated AI API of this crate for JS hosts, the one export of its wasm.
//! Options are read and decisions built here; `js/sim-host.mjs` turns decisions into
//! fetch-API Responses.

mod js;

use js_sys::{Array, Object};
use wasm_bindgen::prelude::*;

use crate::{self as sim, config, Action, Request};
use js::{
    check_keys, describe, get, js_error, object_option, option, parse_json, raw, set, type_error,
};

#[wasm_bindgen(typescript_custom_section)]
const SIM_TYPES: &str = r#"
/** Options of `new Simulator(options)`. Invalid values throw TypeError/RangeError naming the option. */
export interface SimulatorOptions {
  /** Seeds faults, jitter and ids: the same seed and calls give the same decisions (default 0). */
  seed?: number;
  /** Unix ms at nowMs = 0, the sim's wall clock (default performance.timeOrigin). */
  epochMs?: number;
  /** Length of the rate-limit "minute" in ms (1..=3600000, default 60000). */
  minuteMs?: number;
  /** Requests per minute (default unlimited: no headers for it). */
  requestsPerMinute?: number;
  /** Input tokens per minute (default unlimited). */
  inputTokensPerMinute?: number;
  /** Output tokens per minute (default unlimited). */
  outputTokensPerMinute?: number;
  /** Natural reply lengths spread over 20..=maxTokens tokens (default 256). */
  maxTokens?: number;
  /** Reply latency: baseMs + perOutputTokenMs * outputTokens + U(0, jitterMs). */
  latency?: { baseMs?: number; perOutputTokenMs?: number; jitterMs?: number; chunkMs?: number };
  /** Probabilities (each 0..=1, together at most 1) that a valid request meets a fault. */
  faults?: {
    rate429?: number; rate529?: number; rate500?: number; hang?: number;
    slowBody?: number; malformed?: number; disconnect?: number;
    /** A `stream: true` reply breaks off halfway with an error event (others are not affected). */
    streamError?: number;
  };
  /** The server serves this many at once at full speed (default: any number). */
  capacity?: number;
  /** Up to this many more are served slower: n at once each take n / capacity times as long (default 0; needs capacity). */
  queue?: number;
  /** The rest are shed with 529 (OpenAI: 503) after this many ms (default 5; needs capacity). */
  shedMs?: number;
  /** The Batch APIs: items finish delayMs + U(0, spreadMs) after creation (defaults 1000, 4000); errorRate of them fail (0); a batch not done windowMs after creation expires (86400000); maxRequests and maxBytes lower the APIs' limits (Anthropic 100,000 requests / 256 MB a batch, OpenAI 50,000 / 200 MB an input file). */
  batches?: { delayMs?: number; spreadMs?: number; errorRate?: number; windowMs?: number; maxRequests?: number; maxBytes?: number };
}

/** How a host answers a request. */
export type SimAction = "reply" | "hang" | "slow_body" | "disconnect" | "malformed" | "stream";

/** What `Simulator.handle` decided. */
export interface SimDecision {
  /** For finish/abort. */
  id: number;
  /** HTTP status; 0 for hang and disconnect (nothing is sent). */
  status: number;
  /** Response headers, lower-case names. */
  headers: Record<string, string>;
  /** Response body (server-sent events for "stream", broken JSON for "malformed"). */
  body: string;
  /** Wait this long before acting. */
  delayMs: number;
  action: SimAction;
  /** slow_body: pause before each chunk. */
  chunkMs?: number;
  /** slow_body: bytes per chunk. */
  chunkBytes?: number;
  /** stream: the pause between two events (each ends with a blank line); the first goes at once. */
  eventMs?: number;
}

/** Counters since the simulator was made. */
export interface SimStats {
  requests: number;
  byStatus: Record<string, number>;
  hangs: number;
  disconnects: number;
  malformed: number;
  slowBodies: number;
  /** Admitted stream: true requests (whatever fault then met them). */
  streams: number;
  /** Streams that broke off with an error event. */
  streamErrors: number;
  inFlight: number;
  maxInFlight: number;
  finished: number;
  aborted: number;
  inputTokens: number;
  outputTokens: number;
  /** Input tokens written to the prompt cache (`cache_creation_input_tokens`). */
  cacheWriteTokens: number;
  /** Input tokens read from the prompt cache (`cache_read_input_tokens`). */
  cacheReadTokens: number;
  /** Requests shed because the server was at capacity + queue. */
  shed: number;
  /** The most served at once (shed requests and random faults excluded). */
  maxServed: number;
  /** Mean of finish time minus handle time over finished requests (0 if none). */
  meanLatencyMs: number;
}

/** A simulated Anthropic Messages / OpenAI Chat Completions API, on the caller's clock. */
export class Simulator {
  constructor(options?: SimulatorOptions);
  /** Decides one request: `path` ending in /v1/messages or /v1/chat/completions, else 404; `stream: true` in the body: server-sent events. */
  handle(
    method: string,
    path: string,
    headers: Record<string, string> | Headers | Iterable<[string, string]> | undefined,
    body: string | undefined,
    nowMs: number,
  ): SimDecision;
  /** The reply was sent; returns whether `id` was in flight. */
  finish(id: number, nowMs: number): boolean;
  /** The client went away; returns whether `id` was in flight. */
  abort(id: number): boolean;
  stats(): SimStats;
  free(): void;
}
"#;

/// A simulated AI API for JS hosts.
#[wasm_bindgen(skip_typescript)]
pub struct Simulator {
    inner: sim::Simulator,
}

/// The wall clock `performance.now()` counts from, so `epoch + nowMs` is the time of day.
fn default_epoch_ms() -> f64 {
    get(&js_sys::global(), "performance")
        .and_then(|p| get(&p, "timeOrigin"))
        .and_then(|t| t.as_f64())
        .filter(|t| t.is_finite() && *t >= 0.0)
        .unwrap_or_else(js_sys::Date::now)
}

fn read_options(options: &JsValue) -> Result<sim::Config, JsValue> {
    if options.is_undefined() || options.is_null() {
        return Ok(sim::Config {
            epoch_ms: default_epoch_ms() as u64,
            ..sim::Config::default()
        });
    }
    if !options.is_object() || options.is_function() || Array::is_array(options) {
        return Err(type_error(format!(
            "options must be an object, got {}",
            describe(options)
        )));
    }
    check_keys(options, "", config::KNOWN_KEYS)?;
    let latency = object_option(options, "latency")?;
    let faults = object_option(options, "faults")?;
    if let Some(l) = &latency {
        check_keys(l, "latency.", config::LATENCY_KEYS)?;
    }
    if let Some(f) = &faults {
        check_keys(f, "faults.", config::FAULT_KEYS)?;
    }
    let batches = object_option(options, "batches")?;
    if let Some(b) = &batches {
        check_keys(b, "batches.", crate::batches::KEYS)?;
    }
    let read = |name: &str| {
        let value = match name.split_once('.') {
            Some(("latency", key)) => latency.as_ref().and_then(|l| option(l, key)),
            Some(("faults", key)) => faults.as_ref().and_then(|f| option(f, key)),
            Some(("batches", key)) => batches.as_ref().and_then(|b| option(b, key)),
            _ => option(options, name),
        };
        raw(value)
    };
    let mut config = sim::Config::from_options(read).map_err(js_error)?;
    if let Some(models) = faults
        .as_ref()
        .map(|f| object_option(f, "byModel"))
        .transpose()?
    {
        config.by_model = by_model(models.as_ref())?;
    }
    if option(options, "epochMs").is_none() {
        config.epoch_ms = default_epoch_ms() as u64;
    }
    Ok(config)
}

/// `faults.byModel: { [model]: { overloaded, untilMs? } }`.
fn by_model(models: Option<&JsValue>) -> Result<Vec<config::ModelFault>, JsValue> {
    let Some(models) = models else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for model in Object::keys(models.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| k.as_string())
    {
        let name = format!("faults.byModel[\"{model}\"]");
        let entry = object_option(models, &model)?.unwrap_or_default();
        if !entry.is_object() {
            return Err(type_error(format!("{name} must be an object")));
        }
        check_keys(&entry, &format!("{name}."), config::MODEL_FAULT_KEYS)?;
        let (overloaded, until) = (
            raw(option(&entry, "overloaded")),
            raw(option(&entry, "untilMs")),
        );
        out.push(config::ModelFault::new(&model, &overloaded, &until).map_err(js_error)?);
    }
    Ok(out)
}

/// Headers as a plain object, a `Headers`, a `Map` or `[name, value]` pairs; names lower-cased.
fn header_pairs(headers: &JsValue) -> Result<Vec<(String, String)>, JsValue> {
    if headers.is_undefined() || headers.is_null() {
        return Ok(Vec::new());
    }
    if !headers.is_object() {
        return Err(type_error(format!(
            "headers must be an object, Headers or [name, value] pairs, got {}",
            describe(headers)
        )));
    }
    let entries: Vec<JsValue> = match js_sys::try_iter(headers)? {
        Some(iter) => iter.collect::<Result<_, _>>()?,
        None => Object::entries(headers.unchecked_ref()).iter().collect(),
    };
    Ok(entries
        .iter()
        .filter_map(|e| {
            let pair = Array::from(e);
            let name = pair.get(0).as_string()?;
            Some((name.to_ascii_lowercase(), describe(&pair.get(1))))
        })
        .collect())
}

fn decision_object(d: sim::Decision) -> JsValue {
    let o = Object::new();
    let headers = Object::new();
    for (name, value) in &d.headers {
        set(&headers, name, value.as_str());
    }
    set(&o, "id", d.id);
    set(&o, "status", d.status);
    set(&o, "headers", headers);
    set(&o, "body", d.body);
    set(&o, "delayMs", d.delay_ms);
    let action = match d.action {
        Action::Reply => "reply",
        Action::Hang => "hang",
        Action::SlowBody {
            chunk_ms,
            chunk_bytes,
        } => {
            set(&o, "chunkMs", chunk_ms);
            set(&o, "chunkBytes", chunk_bytes);
            "slow_body"
        }
        Action::Disconnect => "disconnect",
        Action::Malformed => "malformed",
        Action::Stream { event_ms } => {
            set(&o, "eventMs", event_ms);
            "stream"
        }
    };
    set(&o, "action", action);
    o.into()
}

#[wasm_bindgen]
impl Simulator {
    /// `new Simulator(options?)`: throws TypeError/RangeError naming a bad option.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<Simulator, JsValue> {
        Ok(Simulator {
            inner: sim::Simulator::new(read_options(&options)?),
        })
    }

    /// `handle(method, path, headers, bodyText, nowMs)`: the decision for one request.
    pub fn handle(
        &mut self,
        method: &str,
        path: &str,
        headers: JsValue,
        body: JsValue,
        now_ms: f64,
    ) -> Result<JsValue, JsValue> {
        let headers = header_pairs(&headers)?;
        let text = match body.as_string() {
            Some(t) => t,
            None if body.is_undefined() || body.is_null() => String::new(),
            None => {
                return Err(type_error(format!(
                    "body must be a string, got {}",
                    describe(&body)
                )))
            }
        };
        // The host's JSON.parse: no JSON parser in the wasm binary.
        let parsed = parse_json(&text);
        let request = Request {
            method,
            path,
            headers: &headers,
            body: parsed.as_ref(),
        };
        Ok(decision_object(self.inner.handle(&request, now_ms)))
    }

    /// `finish(id, nowMs)`: the reply was sent. Returns whether `id` was in flight.
    pub fn finish(&mut self, id: u32, now_ms: f64) -> bool {
        self.inner.finish(id, now_ms)
    }

    /// `abort(id)`: the client went away. Returns whether `id` was in flight.
    pub fn abort(&mut self, id: u32) -> bool {
        self.inner.abort(id)
    }

    /// `stats()`: the counters as a plain object.
    pub fn stats(&self) -> JsValue {
        let s = self.inner.stats();
        let o = Object::new();
        let by_status = Object::new();
        for (status, n) in &s.by_status {
            set(&by_status, &status.to_string(), *n as f64);
        }
        set(&o, "requests", s.requests as f64);
        set(&o, "byStatus", by_status);
        let counts = [
            ("hangs", s.hangs),
            ("disconnects", s.disconnects),
            ("malformed", s.malformed),
            ("slowBodies", s.slow_bodies),
            ("streams", s.streams),
            ("streamErrors", s.stream_errors),
            ("inFlight", s.in_flight),
            ("maxInFlight", s.max_in_flight),
            ("finished", s.finished),
            ("aborted", s.aborted),
            ("inputTokens", s.input_tokens),
            ("outputTokens", s.output_tokens),
            ("cacheWriteTokens", s.cache_write_tokens),
            ("cacheReadTokens", s.cache_read_tokens),
            ("shed", s.shed),
            ("maxServed", s.max_served),
        ];
        for (name, n) in counts {
            set(&o, name, n as f64);
        }
        let mean = if s.finished == 0 {
            0.0
        } else {
            s.busy_ms / s.finished as f64
        };
        set(&o, "meanLatencyMs", mean);
        o.into()
    }
}
