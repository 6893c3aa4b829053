//! Options: each declared once below (name, kind, range, default, doc), and validated from
//! that declaration.
//!
//! # Adding an option
//! Add one line to its group's `declare_options!` (its doc comment, field, JS key, [`Kind`],
//! [`DefaultValue`]): that gives the serde field the JS edge reads, the allow-list entry, the
//! message (`name must be <kind>, got <value>`) and the accessor `raw.field()`. Then use it
//! where it takes effect (in [`RawOptions::validate`], or on the explicit path in
//! `bindings` for a function or signal), and add it to `src/bindings/types.d.ts` and
//! docs/API.md (tests/options_docs.rs fails until both list it). A call option goes in
//! [`CALL_OPTIONS`]; a new nested group gets its own `declare_options!` and a
//! [`Kind::Object`] entry in its parent.
//!
//! The JS edge reads these structs with serde-wasm-bindgen; each data value stays a [`Raw`]
//! (a JS value reduced to what validation needs), so messages show it as given and `null`
//! is told from `undefined`. Everything here is pure Rust, tested natively.

use std::fmt;
use std::time::Duration;

use serde::de::IgnoredAny;

use crate::core::backoff::{Backoff, Jitter};
use crate::core::cost::{self, Price};
use crate::core::executor::Config;
use crate::core::pacer::PacingConfig;
use crate::text::{format_number, quote};

mod spec;

use spec::declare_options;
pub use spec::{DefaultValue, Field, Fields, Kind, Opt, OptionSpec, Source};

/// An option's value as it came from JS, reduced to what validation needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Raw {
    /// `undefined` (or a key not there): use the default.
    #[default]
    Missing,
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
    /// A boolean.
    Bool(bool),
    /// Anything else, by its `typeof` name (`object`, `function`, `symbol`, `bigint`).
    Other(String),
}

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::Missing => f.write_str("undefined"),
            Raw::Number(n) => f.write_str(&format_number(*n)),
            Raw::Text(s) => f.write_str(&quote(s)),
            Raw::Bool(b) => write!(f, "{b}"),
            Raw::Other(t) => write!(f, "a value of type {t}"),
        }
    }
}

/// Whether a bad option is of the wrong type (JS `TypeError`) or out of range (`RangeError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionErrorKind {
    /// Wrong type.
    Type,
    /// Right type, value out of range.
    Range,
}

/// A bad option; the message names it and shows the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionError {
    /// Type or range.
    pub kind: OptionErrorKind,
    /// E.g. `concurrency must be an integer in 1..=10000, got "abc"`.
    pub message: String,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Default `maxResponseBytes`: 16 MiB. Far past any model reply (128k output tokens are well
/// under 1 MB), and a Worker (128 MB of memory, 6 connections) can hold six such bodies.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// Largest `maxAttempts`: far past any host's limit (a Worker allows 10,000 subrequests).
pub const MAX_ATTEMPTS: u64 = 1_000_000_000;

/// Largest `maxResponseBytes`: 1 GiB (a JS string cannot hold much more anyway).
pub const MAX_RESPONSE_BYTES: u64 = 1 << 30;

/// Largest timer delay JS timers honour (2^31 - 1 ms).
pub const MAX_TIMER_MS: u64 = 2_147_483_647;

/// Largest output cap in `fallbacks[].overrides`.
const MAX_OUTPUT_TOKENS: u64 = 10_000_000;

/// Largest budget per minute in `rateLimit`.
const MAX_PER_MINUTE: u64 = 1_000_000_000_000;

/// Largest `maxCostUsd`, in dollars.
const MAX_COST_USD: u64 = 1_000_000_000;

/// Largest price in `prices`, in dollars per million tokens.
const MAX_PER_MTOK: u64 = 1_000_000;

/// Largest delay option (backoff, Retry-After cap, breaker cooldown): an hour.
const HOUR_MS: u64 = 3_600_000;

const fn int(min: u64, max: u64) -> Kind {
    Kind::Int { min, max }
}

use DefaultValue::{Absent, Bool as DefaultBool, Int as DefaultInt, Text as DefaultText};

declare_options! {
    /// `new BatchProcessor(options)` as read from JS.
    pub struct RawOptions, table OPTIONS, prefix "" {
        /// Attempts in flight at once, at most, across every call of this processor.
        concurrency: Raw = "concurrency", int(1, 10_000), DefaultInt(8);
        /// Retries after the first attempt.
        max_retries: Raw = "maxRetries", int(0, 100), DefaultInt(4);
        /// Per-attempt timeout in ms; the attempt's signal aborts.
        timeout_ms: Raw = "timeoutMs", int(1, MAX_TIMER_MS), DefaultInt(60_000);
        /// Whole-call deadline in ms from the call of map/run/stream.
        deadline_ms: Raw = "deadlineMs", int(1, MAX_TIMER_MS), Absent("none");
        /// Exponential backoff between attempts when the server gives no Retry-After.
        backoff: Option<RawBackoff> = "backoff", Kind::Object(BACKOFF), Absent("its keys' defaults");
        /// Cap on a server's Retry-After in ms.
        max_retry_after_ms: Raw = "maxRetryAfterMs", int(0, HOUR_MS), DefaultInt(60_000);
        /// Attempts one call of map/run/stream may start in all, retries included.
        max_attempts: Raw = "maxAttempts", int(1, MAX_ATTEMPTS), Absent("unlimited");
        /// Seed for the jitter, for repeatable runs.
        seed: Raw = "seed", int(0, (1 << 53) - 1), Absent("random");
        /// Cancels every call of this processor (explicit path: not data).
        signal: IgnoredAny = "signal", Kind::AbortSignal, Absent("none");
        /// Called on every change of the counts (explicit path: a function).
        on_progress: IgnoredAny = "onProgress", Kind::Function, Absent("none");
        /// Called for every attempt start, end and backoff (explicit path: a function).
        on_event: IgnoredAny = "onEvent", Kind::Function, Absent("none");
        /// The API `run()` talks to (explicit path: its key is never shown in a message).
        provider: IgnoredAny = "provider", Kind::Object(PROVIDER), Absent("none");
        /// Budgets per minute, corrected by every reply's rate-limit headers.
        rate_limit: Option<RawRateLimit> = "rateLimit", Kind::Object(RATE_LIMIT), Absent("none");
        /// Lower the concurrency only when failures follow our own load (429s never move it).
        adaptive: Raw = "adaptive", Kind::Bool, DefaultBool(true);
        /// Circuit breaker: stop sending during a lasting outage, then probe.
        breaker: Option<RawBreaker> = "breaker", Kind::Object(BREAKER), Absent("its keys' defaults");
        /// An item's expected cost, over the estimate (explicit path: a function).
        cost: IgnoredAny = "cost", Kind::Function, Absent("none");
        /// Largest 2xx reply body run()/stream() read, in bytes.
        max_response_bytes: Raw = "maxResponseBytes", int(1, MAX_RESPONSE_BYTES), DefaultInt(DEFAULT_MAX_RESPONSE_BYTES);
        /// Other models or upstreams of the provider's API, tried in order when an item's own
        /// is overloaded (explicit path: their keys are never shown).
        fallbacks: IgnoredAny = "fallbacks", Kind::List(FALLBACK), Absent("none");
        /// A rate-limit wait longer than this moves an item to its next alternative, in ms.
        fallback_after_ms: Raw = "fallbackAfterMs", int(0, MAX_TIMER_MS), Absent("only a wait past the deadline moves");
        /// Dollars one call of map/run/stream may spend; no attempt starts that could pass it.
        max_cost_usd: Raw = "maxCostUsd", Kind::Number { max: MAX_COST_USD }, Absent("unlimited");
        /// Prices per model, over the built-in table (explicit path: the keys are model names).
        prices: IgnoredAny = "prices", Kind::Map(PRICE), Absent("the built-in table");
        /// Anthropic requests sharing a prompt-cache prefix: one goes first, the rest once its reply began.
        cache_aware: Raw = "cacheAware", Kind::Bool, DefaultBool(true);
    }
}

declare_options! {
    /// One model's price in `prices: { "<model>": { ... } }`, in dollars per million tokens;
    /// read on the explicit path, messages naming the model (`prices["gpt-4o"].inputPerMTok`).
    pub struct RawPrice, table PRICE, prefix "prices[]." {
        /// Input tokens (neither cache writes nor cache reads).
        input_per_mtok: Raw = "inputPerMTok", Kind::Number { max: MAX_PER_MTOK }, Absent("required");
        /// Output tokens.
        output_per_mtok: Raw = "outputPerMTok", Kind::Number { max: MAX_PER_MTOK }, Absent("required");
        /// Input tokens written to a 5-minute cache entry.
        cache_write_5m_per_mtok: Raw = "cacheWrite5mPerMTok", Kind::Number { max: MAX_PER_MTOK }, Absent("inputPerMTok");
        /// Input tokens written to a 1-hour cache entry.
        cache_write_1h_per_mtok: Raw = "cacheWrite1hPerMTok", Kind::Number { max: MAX_PER_MTOK }, Absent("cacheWrite5mPerMTok");
        /// Input tokens read from the cache.
        cache_read_per_mtok: Raw = "cacheReadPerMTok", Kind::Number { max: MAX_PER_MTOK }, Absent("inputPerMTok");
        /// The share the provider's Batch API takes off (0.5: half price).
        batch_discount: Raw = "batchDiscount", Kind::Number { max: 1 }, Absent("0");
    }
}

declare_options! {
    /// One entry of `fallbacks: [{ provider?, model?, overrides? }]`, read on the explicit
    /// path (`bindings`); messages name it by position (`fallbacks[1].model`).
    pub struct RawFallback, table FALLBACK, prefix "fallbacks[]." {
        /// Another upstream of the same API; the first choice's when not given.
        provider: IgnoredAny = "provider", Kind::Object(PROVIDER), Absent("the first choice's");
        /// The model sent instead of the item's own.
        model: Raw = "model", Kind::Text, Absent("the item's");
        /// Request fields set on this alternative only.
        overrides: Option<RawOverrides> = "overrides", Kind::Object(OVERRIDES), Absent("none");
    }
}

declare_options! {
    /// `fallbacks[].overrides: { max_tokens?, max_completion_tokens? }`: request fields set for
    /// one alternative (named as the API names them).
    pub struct RawOverrides, table OVERRIDES, prefix "fallbacks[].overrides." {
        /// Anthropic's output cap for this alternative.
        max_tokens: Raw = "max_tokens", int(1, MAX_OUTPUT_TOKENS), Absent("the item's");
        /// OpenAI's output cap for this alternative.
        max_completion_tokens: Raw = "max_completion_tokens", int(1, MAX_OUTPUT_TOKENS), Absent("the item's");
    }
}

declare_options! {
    /// `backoff: { baseMs?, maxMs?, jitter? }`.
    pub struct RawBackoff, table BACKOFF, prefix "backoff." {
        /// First retry delay scale, in ms.
        base_ms: Raw = "baseMs", int(1, HOUR_MS), DefaultInt(500);
        /// Delay cap, in ms; never below baseMs (its default rises to baseMs).
        max_ms: Raw = "maxMs", int(1, HOUR_MS), DefaultInt(30_000);
        /// How delays are spread.
        jitter: Raw = "jitter", Kind::OneOf(&["full", "decorrelated", "none"]), DefaultText("full");
    }
}

declare_options! {
    /// `rateLimit: { requestsPerMinute?, inputTokensPerMinute?, outputTokensPerMinute? }`.
    pub struct RawRateLimit, table RATE_LIMIT, prefix "rateLimit." {
        /// Requests per minute.
        requests_per_minute: Raw = "requestsPerMinute", int(1, MAX_PER_MINUTE), Absent("none");
        /// Input tokens per minute.
        input_tokens_per_minute: Raw = "inputTokensPerMinute", int(1, MAX_PER_MINUTE), Absent("none");
        /// Output tokens per minute.
        output_tokens_per_minute: Raw = "outputTokensPerMinute", int(1, MAX_PER_MINUTE), Absent("none");
    }
}

declare_options! {
    /// `breaker: { failures?, cooldownMs? }`.
    pub struct RawBreaker, table BREAKER, prefix "breaker." {
        /// Outage failures in a row (spanning 2 s, no success) that open it; 0 turns it off.
        failures: Raw = "failures", int(0, 1000), DefaultInt(5);
        /// How long it stays open before one probe, in ms (doubling per failed probe, to 30 s).
        cooldown_ms: Raw = "cooldownMs", int(1, HOUR_MS), DefaultInt(500);
    }
}

declare_options! {
    /// `provider: { name, apiKey?, baseUrl?, version?, dangerouslyAllowBrowser? }`: read on the
    /// explicit path (`bindings`), so a wrong `apiKey` is named but never shown.
    pub struct RawProvider, table PROVIDER, prefix "provider." {
        /// Which API.
        name: IgnoredAny = "name", Kind::OneOf(&["anthropic", "openai", "http"]), Absent("required");
        /// The API key; sent only to baseUrl, never in results.
        api_key: IgnoredAny = "apiKey", Kind::Text, Absent("none");
        /// The API's base URL.
        base_url: IgnoredAny = "baseUrl", Kind::Text, Absent("the provider's public API");
        /// `anthropic-version`.
        version: IgnoredAny = "version", Kind::Text, DefaultText("2023-06-01");
        /// The page knowingly sends apiKey from a browser.
        dangerously_allow_browser: IgnoredAny = "dangerouslyAllowBrowser", Kind::Bool, DefaultBool(false);
    }
}

declare_options! {
    /// The options of one call of map/run/stream, as read from JS.
    pub struct RawCallOptions, table CALL_OPTIONS, prefix "" {
        /// Cancels this call only (explicit path: not data).
        signal: IgnoredAny = "signal", Kind::AbortSignal, Absent("none");
        /// CPU post-processing of each successful value, off the event loop (explicit path:
        /// src/web/post.js reads it, since only the host knows its pool and its paths).
        post_process: IgnoredAny = "postProcess", Kind::Object(POST_PROCESS), Absent("none");
        /// A shared permit source asked before every attempt, told every outcome (explicit
        /// path: an object with methods).
        permits: IgnoredAny = "permits", Kind::Methods(PERMITS), Absent("none");
        /// Dollars this call may spend, in place of the processor's `maxCostUsd`.
        max_cost_usd: Raw = "maxCostUsd", Kind::Number { max: MAX_COST_USD }, Absent("the processor's");
    }
}

declare_options! {
    /// `permits: { acquire(index, cost, { alternative }), release(id, outcome) }`: read on the explicit path.
    pub struct RawPermits, table PERMITS, prefix "permits." {
        /// `(index, { requests, inputTokens, outputTokens })` → a promise of `{ id }`,
        /// `{ never }` or `{ defer: { untilMs, reason } }`.
        acquire: IgnoredAny = "acquire", Kind::Function, Absent("required");
        /// `(id, outcome)`: how the attempt of a granted permit ended.
        release: IgnoredAny = "release", Kind::Function, Absent("required");
    }
}

declare_options! {
    /// `postProcess: { module, export?, threads? }`: read on the explicit path (a module is a
    /// URL, a path or a module namespace object; the host resolves it).
    pub struct RawPostProcess, table POST_PROCESS, prefix "postProcess." {
        /// The ES module: a URL, an absolute path, or the module namespace object (inline).
        module: IgnoredAny = "module", Kind::Text, Absent("required");
        /// The export called as `(value, { item, index })`.
        export: IgnoredAny = "export", Kind::Text, DefaultText("default");
        /// Values in processing at once.
        threads: IgnoredAny = "threads", int(1, 1024), Absent("the host's cores - 1, at least 1");
    }
}

declare_options! {
    /// `new Limiter(options, nowMs)`'s own options; it also reads [`LIMITER_SHARED`] of
    /// [`OPTIONS`] (the Worker's limiter Durable Object: one pacer for many consumers).
    pub struct RawLimiterOptions, table LIMITER_OPTIONS, prefix "" {
        /// Whose rate-limit headers it reads (explicit path: checked by the provider's rules).
        provider: IgnoredAny = "provider", Kind::OneOf(&["anthropic", "openai", "http"]), Absent("required");
        /// How long a granted permit lasts unless released, in ms.
        lease_ms: Raw = "leaseMs", int(1000, HOUR_MS), DefaultInt(120_000);
    }
}

/// The keys of [`OPTIONS`] a `Limiter` reads too (the pacing subset).
pub const LIMITER_SHARED: &[&str] = &["concurrency", "rateLimit", "adaptive", "breaker"];

/// The error for a key nobody declared: most often a typo.
pub fn unknown_key(prefix: &str, key: &str) -> OptionError {
    OptionError {
        kind: OptionErrorKind::Type,
        message: format!("unknown option \"{prefix}{key}\""),
    }
}

/// Validated options: the executor's [`Config`] and the jitter seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// For the executor.
    pub config: Config,
    /// Seed for the jitter; `None` means the edge picks a random one.
    pub seed: Option<u64>,
    /// Rate budgets, adaptive concurrency, breaker.
    pub pacing: PacingConfig,
    /// The largest 2xx reply body `run()` reads; a larger one fails its item.
    pub max_response_bytes: u64,
    /// `fallbackAfterMs`: a rate-limit wait longer than this moves an item to its next
    /// alternative (with `fallbacks`).
    pub fallback_after: Option<Duration>,
}

/// Every option at its declared default.
impl Default for Options {
    fn default() -> Self {
        RawOptions::default()
            .validate()
            // Not `expect`: that would print the error with `Debug`, which costs the wasm build.
            .unwrap_or_else(|_| unreachable!("the declared defaults are valid"))
    }
}

/// The executor's defaults are the declared ones (written once, in [`OPTIONS`]).
impl Default for Config {
    fn default() -> Self {
        Options::default().config
    }
}

impl RawOptions {
    /// Checks every option, first error wins, and fills in the declared defaults.
    pub fn validate(&self) -> Result<Options, OptionError> {
        let ms = Duration::from_millis;
        // `int()` of an option declared with a default is always `Some`.
        let declared = |v: Option<u64>| v.unwrap_or_default();
        let concurrency = declared(self.concurrency().int()?) as usize;
        let max_retries = declared(self.max_retries().int()?) as u32;
        let timeout = self.timeout_ms().int()?.map(ms);
        let deadline = self.deadline_ms().int()?.map(ms);
        let (no_backoff, no_rate, no_breaker) = Default::default();
        let backoff: &RawBackoff = self.backoff.as_ref().unwrap_or(&no_backoff);
        let base = declared(backoff.base_ms().int()?);
        // maxMs's default never sits below an explicit baseMs; an explicit maxMs must not.
        let max = declared(backoff.max_ms().int()?);
        let max = if backoff.max_ms.is_given() {
            max
        } else {
            max.max(base)
        };
        if max < base {
            return Err(OptionError {
                kind: OptionErrorKind::Range,
                message: format!(
                    "backoff.maxMs must be at least backoff.baseMs ({base}), got {max}"
                ),
            });
        }
        let jitter = match backoff.jitter().choice()? {
            Some("decorrelated") => Jitter::Decorrelated,
            Some("none") => Jitter::None,
            _ => Jitter::Full,
        };
        let backoff = Backoff::new(ms(base), ms(max), jitter).map_err(|message| OptionError {
            kind: OptionErrorKind::Range,
            message,
        })?;
        let max_retry_after = ms(declared(self.max_retry_after_ms().int()?));
        let max_attempts = self.max_attempts().int()?;
        let seed = self.seed().int()?;
        let rate: &RawRateLimit = self.rate_limit.as_ref().unwrap_or(&no_rate);
        let breaker: &RawBreaker = self.breaker.as_ref().unwrap_or(&no_breaker);
        let pacing = PacingConfig {
            requests_per_minute: rate.requests_per_minute().int()?,
            input_tokens_per_minute: rate.input_tokens_per_minute().int()?,
            output_tokens_per_minute: rate.output_tokens_per_minute().int()?,
            adaptive: self.adaptive().boolean()?.unwrap_or_default(),
            breaker_failures: declared(breaker.failures().int()?) as u32,
            breaker_cooldown: ms(declared(breaker.cooldown_ms().int()?)),
            ..PacingConfig::default()
        };
        let max_response_bytes = declared(self.max_response_bytes().int()?);
        let fallback_after = self.fallback_after_ms().int()?.map(ms);
        let max_cost = self.max_cost_usd().number()?.map(cost::pico);
        Ok(Options {
            max_response_bytes,
            fallback_after,
            config: Config {
                concurrency,
                max_retries,
                timeout,
                deadline,
                backoff,
                max_retry_after,
                max_attempts,
                max_cost,
                cache_aware: self.cache_aware().boolean()?.unwrap_or_default(),
            },
            seed,
            pacing,
        })
    }
}

/// One `fallbacks` entry's data, validated: its model (a non-empty string, when given) and its
/// overrides (`max_tokens`, `max_completion_tokens`, in [`OVERRIDES`] order). An entry must
/// name a provider or a model. Messages say `fallbacks[].…`: the edge names the entry
/// (`fallbacks[1].model`).
pub fn validate_fallback(
    entry: &RawFallback,
    has_provider: bool,
) -> Result<(Option<String>, [Option<u64>; 2]), OptionError> {
    let model = match &entry.model {
        Raw::Missing if !has_provider => {
            return Err(OptionError {
                kind: OptionErrorKind::Range,
                message: "fallbacks[] must name a provider or a model (or both)".into(),
            })
        }
        Raw::Missing => None,
        Raw::Text(m) if !m.is_empty() => Some(m.clone()),
        other => {
            let kind = match other {
                Raw::Text(_) => OptionErrorKind::Range,
                _ => OptionErrorKind::Type,
            };
            return Err(entry.model().spec.refuse(kind, &other.to_string()));
        }
    };
    let none = RawOverrides::default();
    let overrides = entry.overrides.as_ref().unwrap_or(&none);
    let fields = [
        overrides.max_tokens().int()?,
        overrides.max_completion_tokens().int()?,
    ];
    Ok((model, fields))
}

/// One `prices` entry, validated: dollars per MTok into the ledger's [`Price`] (rounded to
/// $0.000001 per MTok). Messages say `prices[].…`: the edge names the model.
pub fn validate_price(entry: &RawPrice) -> Result<Price, OptionError> {
    let required = |opt: Opt<'_, Raw>| {
        opt.number()?
            .ok_or_else(|| opt.spec.refuse(OptionErrorKind::Type, "undefined"))
    };
    let input = required(entry.input_per_mtok())?;
    let output = required(entry.output_per_mtok())?;
    let write_5m = entry.cache_write_5m_per_mtok().number()?.unwrap_or(input);
    let write_1h = entry
        .cache_write_1h_per_mtok()
        .number()?
        .unwrap_or(write_5m);
    let read = entry.cache_read_per_mtok().number()?.unwrap_or(input);
    let discount = entry.batch_discount().number()?.unwrap_or(0.0);
    // Dollars per MTok are micro-dollars per token: 1e6 pico-dollars per token each.
    let rate = |per_mtok: f64| (per_mtok * 1e6).round() as u64;
    Ok(Price {
        input: rate(input),
        output: rate(output),
        cache_write_5m: rate(write_5m),
        cache_write_1h: rate(write_1h),
        cache_read: rate(read),
        batch_discount: (discount * 1e6).round() as u32,
    })
}

/// The call's `maxCostUsd`, in pico-dollars, when given.
pub fn call_max_cost(call: &RawCallOptions) -> Result<Option<u64>, OptionError> {
    Ok(call.max_cost_usd().number()?.map(cost::pico))
}

impl Raw {
    /// Whether a value was given (anything but `undefined`).
    pub fn is_given(&self) -> bool {
        !matches!(self, Raw::Missing)
    }
}

/// Any value is read; the option's declaration judges it. For serde readers (JSON in the tests;
/// the JS edge reads through [`Fields`], by the same rules): `none` is not given, `unit`
/// (`null`) is a wrong type, not "use the default", and bytes are a value of another JS type
/// by its `typeof` name.
impl<'de> serde::Deserialize<'de> for Raw {
    // One copy for every field, not one inlined into each struct's reader.
    #[inline(never)]
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Raw, E> {
                Ok(Raw::Number(n as f64))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Raw, E> {
                Ok(Raw::Number(n as f64))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Raw, E> {
                Ok(Raw::Number(n))
            }
            fn visit_str<E>(self, s: &str) -> Result<Raw, E> {
                Ok(Raw::Text(s.into()))
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Missing)
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Other("null".into()))
            }
            fn visit_byte_buf<E>(self, type_name: Vec<u8>) -> Result<Raw, E> {
                Ok(Raw::Other(String::from_utf8_lossy(&type_name).into_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Raw::Other("object".into()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Raw::Other("object".into()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests;
