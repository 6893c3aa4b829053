//! [`Builder`]: typed setters over the declared options (`crate::options`). Each setter fills
//! the option's [`Raw`] value and [`Builder::build`] runs the one validation the JS
//! constructor runs, so a Rust caller gets the same ranges, defaults and messages (an
//! [`OptionError`] naming the option by its JS name, e.g. `timeoutMs`).

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use web_sys::AbortSignal;

use super::fallback::{self, Alternative};
use super::BatchProcessor;
use crate::core::backoff::Jitter;
use crate::core::cancel::CancelToken;
use crate::core::executor::{Event, Progress};
use crate::options::{
    OptionError, OptionErrorKind, Raw, RawBackoff, RawBreaker, RawOptions, RawRateLimit,
};
use crate::providers::Provider;

/// A progress callback: called with new counts after every change.
pub(super) type OnProgress = Rc<dyn Fn(&Progress)>;
/// An event callback: every attempt start, end and backoff.
pub(super) type OnEvent = Rc<dyn Fn(&Event)>;

/// Options of a [`BatchProcessor`], set one by one; [`Builder::build`] checks them all.
///
/// Every option is the JS option of the same name (`concurrency`, `maxRetries`,
/// `timeoutMs`, ...; see docs/API.md), with the same range and default.
///
/// # Default
/// 8 attempts in flight, 4 retries, 60 s per attempt, no deadline, backoff from 500 ms to
/// 30 s with full jitter, a server's Retry-After capped at 60 s, adaptive concurrency and the
/// breaker on, no rate budgets (the replies' rate-limit headers still pace), no provider.
///
/// ```no_run
/// use std::time::Duration;
/// use edgebatch::wasm::BatchProcessor;
///
/// let processor = BatchProcessor::builder()
///     .concurrency(4)
///     .max_retries(3)
///     .timeout(Duration::from_secs(30))
///     .deadline(Duration::from_secs(120))
///     .requests_per_minute(50)
///     .anthropic("sk-ant-...")
///     .build()?;
/// # Ok::<(), edgebatch::options::OptionError>(())
/// ```
#[derive(Clone, Default)]
#[must_use = "a builder does nothing until built"]
pub struct Builder {
    raw: RawOptions,
    provider: Option<ProviderSettings>,
    fallbacks: Option<Vec<Alternative>>,
    pub(super) signals: Vec<AbortSignal>,
    pub(super) cancels: Vec<CancelToken>,
    pub(super) on_progress: Option<OnProgress>,
    pub(super) on_event: Option<OnEvent>,
}

/// A provider as the builder and an [`Upstream`](super::Upstream) collect it; checked by
/// [`Provider::new`] at build.
#[derive(Clone, Default)]
pub(super) struct ProviderSettings {
    pub(super) name: &'static str,
    pub(super) api_key: Option<String>,
    pub(super) base_url: Option<String>,
    pub(super) version: Option<String>,
    pub(super) browser: bool,
}

impl ProviderSettings {
    /// The provider, checked (`""`, a base URL set with no API chosen, fails as an unknown
    /// `provider.name`).
    pub(super) fn provider(&self) -> Result<Provider, OptionError> {
        let made = Provider::new(
            self.name,
            self.api_key.clone(),
            self.base_url.clone(),
            self.version.clone(),
        );
        made?.allow_browser(self.browser)
    }
}

impl fmt::Debug for Builder {
    // The provider's key is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("options", &self.raw)
            .field("provider", &self.provider.as_ref().map(|p| p.name))
            .field("fallbacks", &self.fallbacks)
            .finish_non_exhaustive()
    }
}

/// A count as the option reads it (a JS number).
fn number(n: u64) -> Raw {
    Raw::Number(n as f64)
}

/// A duration in whole milliseconds, rounded up: a timer never fires before it is due.
fn millis(d: Duration) -> Raw {
    Raw::Number(d.as_micros().div_ceil(1000) as f64)
}

impl Builder {
    /// Attempts in flight at once, across every call of the processor (`concurrency`,
    /// 1..=10000).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.raw.concurrency = number(n as u64);
        self
    }

    /// Retries after the first attempt (`maxRetries`, 0..=100).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.raw.max_retries = number(n.into());
        self
    }

    /// Per-attempt timeout (`timeoutMs`): the attempt's future is dropped and its
    /// [`AttemptContext::signal`](super::AttemptContext::signal) aborts.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.raw.timeout_ms = millis(timeout);
        self
    }

    /// Deadline of each call, from the call of `map`/`stream`/`run` (`deadlineMs`).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.raw.deadline_ms = millis(deadline);
        self
    }

    /// Exponential backoff between attempts when the server gives no Retry-After
    /// (`backoff.baseMs`, `backoff.maxMs`).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        let group = self.raw.backoff.get_or_insert_with(RawBackoff::default);
        group.base_ms = millis(base);
        group.max_ms = millis(max);
        self
    }

    /// How backoff delays are spread (`backoff.jitter`).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        let name = match jitter {
            Jitter::Full => "full",
            Jitter::Decorrelated => "decorrelated",
            Jitter::None => "none",
        };
        let group = self.raw.backoff.get_or_insert_with(RawBackoff::default);
        group.jitter = Raw::Text(name.into());
        self
    }

    /// Cap on a server's Retry-After (`maxRetryAfterMs`).
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.raw.max_retry_after_ms = millis(cap);
        self
    }

    /// Attempts one call may start in all, retries included (`maxAttempts`).
    pub fn max_attempts(mut self, n: u64) -> Self {
        self.raw.max_attempts = number(n);
        self
    }

    /// Seed of the jitter, for repeatable runs (`seed`).
    pub fn seed(mut self, seed: u64) -> Self {
        self.raw.seed = number(seed);
        self
    }

    /// Requests per minute (`rateLimit.requestsPerMinute`), corrected by every reply's
    /// rate-limit headers.
    pub fn requests_per_minute(mut self, n: u64) -> Self {
        self.rate_limit().requests_per_minute = number(n);
        self
    }

    /// Input tokens per minute (`rateLimit.inputTokensPerMinute`).
    pub fn input_tokens_per_minute(mut self, n: u64) -> Self {
        self.rate_limit().input_tokens_per_minute = number(n);
        self
    }

    /// Output tokens per minute (`rateLimit.outputTokensPerMinute`).
    pub fn output_tokens_per_minute(mut self, n: u64) -> Self {
        self.rate_limit().output_tokens_per_minute = number(n);
        self
    }

    fn rate_limit(&mut self) -> &mut RawRateLimit {
        self.raw
            .rate_limit
            .get_or_insert_with(RawRateLimit::default)
    }

    /// Lower the concurrency when failures follow our own load (`adaptive`).
    pub fn adaptive(mut self, on: bool) -> Self {
        self.raw.adaptive = Raw::Bool(on);
        self
    }

    /// Prompt-cache-aware starts for `run` (`cacheAware`, on by default): Anthropic requests
    /// that share a cacheable prefix (up to their last `cache_control` block) start one first,
    /// the rest once its reply has begun, so they read the cache entry it wrote instead of
    /// each writing it again. Other items start as usual meanwhile.
    pub fn cache_aware(mut self, on: bool) -> Self {
        self.raw.cache_aware = Raw::Bool(on);
        self
    }

    /// The circuit breaker (`breaker.failures`, 0 turns it off; `breaker.cooldownMs`).
    pub fn breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        let group = self.raw.breaker.get_or_insert_with(RawBreaker::default);
        group.failures = number(failures.into());
        group.cooldown_ms = millis(cooldown);
        self
    }

    /// Dollars one call of `run` may spend (`maxCostUsd`, 0..=1000000000): before each
    /// attempt the most it can cost (its estimate at the price of the model it sends, over
    /// what was spent and what attempts in flight may still spend) must fit, else the item
    /// fails as `cost_cap` and the call ends with nothing lost. A request of a model with no
    /// built-in price fails as `invalid` (a cap cannot bound what it cannot price). See
    /// [`Reply::usd`](super::Reply::usd).
    pub fn max_cost_usd(mut self, usd: f64) -> Self {
        self.raw.max_cost_usd = Raw::Number(usd);
        self
    }

    /// Largest 2xx reply body `run` reads, in bytes (`maxResponseBytes`).
    pub fn max_response_bytes(mut self, n: u64) -> Self {
        self.raw.max_response_bytes = number(n);
        self
    }

    /// `run` sends Anthropic Messages requests, with this key (`x-api-key`). The key is
    /// scrubbed from everything a call reports.
    pub fn anthropic(self, api_key: impl Into<String>) -> Self {
        self.with_provider("anthropic", api_key.into())
    }

    /// `run` sends OpenAI Chat Completions requests, with this key (a bearer token).
    pub fn openai(self, api_key: impl Into<String>) -> Self {
        self.with_provider("openai", api_key.into())
    }

    fn with_provider(mut self, name: &'static str, api_key: String) -> Self {
        let old = self.provider.take();
        self.provider = Some(ProviderSettings {
            name,
            api_key: Some(api_key),
            base_url: old.as_ref().and_then(|p| p.base_url.clone()),
            version: old.as_ref().and_then(|p| p.version.clone()),
            browser: old.is_some_and(|p| p.browser),
        });
        self
    }

    /// The provider's base URL (`provider.baseUrl`), e.g. a gateway or the simulator.
    /// Needs [`anthropic`](Self::anthropic) or [`openai`](Self::openai).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.provider_settings().base_url = Some(url.into());
        self
    }

    /// `anthropic-version` (`provider.version`).
    pub fn anthropic_version(mut self, version: impl Into<String>) -> Self {
        self.provider_settings().version = Some(version.into());
        self
    }

    /// The page knowingly sends the key from a browser (`provider.dangerouslyAllowBrowser`).
    pub fn dangerously_allow_browser(mut self, allow: bool) -> Self {
        self.provider_settings().browser = allow;
        self
    }

    fn provider_settings(&mut self) -> &mut ProviderSettings {
        // A base URL or version before the key: `build` names the missing provider.
        self.provider.get_or_insert_with(ProviderSettings::default)
    }

    /// Adds an alternative to `fallbacks`, tried after the first choice and the alternatives
    /// added before it: `run` moves an item to it at once when its own upstream is overloaded
    /// (529, 503, `overloaded_error`), when a 429's wait would pass the deadline or
    /// [`fallback_after`](Self::fallback_after), or when its breaker is open; never on a
    /// request or auth error or a spend cap. New items always start at the first choice. One
    /// attempt budget and one deadline cover all alternatives; each alternative has its own
    /// pacer. Needs [`anthropic`](Self::anthropic) or [`openai`](Self::openai); results say
    /// who answered ([`ItemResult::served_by`](super::ItemResult::served_by)).
    ///
    /// ```no_run
    /// use edgebatch::wasm::{Alternative, BatchProcessor, Upstream};
    ///
    /// let processor = BatchProcessor::builder()
    ///     .anthropic("sk-ant-...")
    ///     // The same upstream, another model (with a smaller output cap).
    ///     .fallback(Alternative::model("claude-haiku-4-5").max_tokens(512))
    ///     // The item's own model, on another account behind a gateway.
    ///     .fallback(Alternative::upstream(
    ///         Upstream::anthropic("sk-ant-other-...").base_url("https://gateway.example/anthropic"),
    ///     ))
    ///     .build()?;
    /// # Ok::<(), edgebatch::options::OptionError>(())
    /// ```
    pub fn fallback(mut self, alternative: Alternative) -> Self {
        self.fallbacks
            .get_or_insert_with(Vec::new)
            .push(alternative);
        self
    }

    /// Sets the whole `fallbacks` list (in place of any added before); an empty list is an
    /// error at [`build`](Self::build).
    pub fn fallbacks(mut self, alternatives: impl IntoIterator<Item = Alternative>) -> Self {
        self.fallbacks = Some(alternatives.into_iter().collect());
        self
    }

    /// A rate-limit wait longer than this moves an item to its next alternative
    /// (`fallbackAfterMs`); without it only a wait past the deadline does. Needs
    /// [`fallback`](Self::fallback).
    pub fn fallback_after(mut self, wait: Duration) -> Self {
        self.raw.fallback_after_ms = millis(wait);
        self
    }

    /// Cancels every call of the processor when `signal` aborts (`signal`): attempts in
    /// flight abort, every unfinished item fails as `aborted`.
    pub fn signal(mut self, signal: AbortSignal) -> Self {
        self.signals.push(signal);
        self
    }

    /// Cancels every call of the processor when `token` is cancelled, like
    /// [`signal`](Self::signal), from Rust.
    pub fn cancel_on(mut self, token: CancelToken) -> Self {
        self.cancels.push(token);
        self
    }

    /// Called with new counts after every change (`onProgress`).
    pub fn on_progress(mut self, f: impl Fn(&Progress) + 'static) -> Self {
        self.on_progress = Some(Rc::new(f));
        self
    }

    /// Called for every attempt start, end and backoff (`onEvent`).
    pub fn on_event(mut self, f: impl Fn(&Event) + 'static) -> Self {
        self.on_event = Some(Rc::new(f));
        self
    }

    /// Checks every option (the first bad one is the error) and builds the processor.
    pub fn build(self) -> Result<BatchProcessor, OptionError> {
        let options = self.raw.validate()?;
        let provider = self
            .provider
            .as_ref()
            .map(ProviderSettings::provider)
            .transpose()?;
        let routes = fallback::routes(self.fallbacks.as_deref(), provider.as_ref())?;
        if routes.is_empty() && options.fallback_after.is_some() {
            return Err(OptionError {
                kind: OptionErrorKind::Range,
                message: "fallbackAfterMs applies only with fallbacks".into(),
            });
        }
        Ok(BatchProcessor::from_parts(options, provider, routes, self))
    }
}
