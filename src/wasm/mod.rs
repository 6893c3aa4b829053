//! The Rust API on wasm32 (cargo feature `rust-api`): batches of calls from a Rust program
//! that runs in a JS host — a Cloudflare Worker written with workers-rs, a Leptos, Yew or
//! Dioxus page, Node. The same executor, pacer and retry rule as the JS `BatchProcessor`,
//! on the host's timers, `fetch` and `AbortController`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), edgebatch::options::OptionError> {
//! use std::time::Duration;
//! use edgebatch::wasm::{AttemptContext, BatchProcessor};
//! use edgebatch::Failure;
//!
//! let processor = BatchProcessor::builder()
//!     .concurrency(4)
//!     .timeout(Duration::from_secs(10))
//!     .on_progress(|p| println!("{}/{} done", p.done, p.total))
//!     .build()?;
//! let pages = vec!["https://example.com/a", "https://example.com/b"];
//! let results = processor
//!     .map(pages, |url, ctx: AttemptContext| async move {
//!         // Hand ctx.signal() to fetch: a timeout then aborts the request itself.
//!         fetch_text(url, ctx.signal()).await
//!     })
//!     .await;
//! for result in &results {
//!     match &result.outcome {
//!         Ok(text) => println!("{}: {} bytes, {} attempts", result.index, text.len(), result.attempts),
//!         Err(failed) => println!("{}: {failed}", result.index),
//!     }
//! }
//! # Ok(())
//! # }
//! # async fn fetch_text(_: &str, _: &web_sys::AbortSignal) -> Result<String, edgebatch::Failure> { todo!() }
//! ```
//!
//! - [`BatchProcessor::map`]: your async function per item, results in input order;
//!   [`BatchProcessor::stream`]: the same in completion order, as a `futures::Stream`.
//! - [`BatchProcessor::run`] / [`BatchProcessor::run_stream`]: Anthropic or OpenAI request
//!   bodies (any `Serialize`), sent with `fetch`, replies read into [`Reply`] (with its
//!   [`usd`](Reply::usd); [`Builder::max_cost_usd`] caps a call's spend).
//! - Fallbacks for `run`: [`Builder::fallback`] with an [`Alternative`] (another model, another
//!   [`Upstream`] of the same API, or both); each result's [`served_by`](ItemResult::served_by)
//!   says who answered.
//! - A task's error tells the retry rule what happened through [`TaskError`]: return a
//!   [`Failure`] (`Failure::http(503, ..)`), a thrown `JsValue`, or a string.
//! - Cancellation: an `AbortSignal` ([`Builder::signal`]), a [`CancelToken`]
//!   ([`Builder::cancel_on`]), [`BatchStream::cancel`], or dropping the future.
//!
//! A call runs while it is polled (Rust futures are lazy): its deadline counts from its
//! first poll. Options are the JS options, checked by the same validation.

mod builder;
mod fallback;
mod outcome;
mod reply;
mod stream;

pub use builder::Builder;
pub use fallback::{Alternative, ServedBy, Upstream};
pub use outcome::{AttemptContext, Failed, ItemResult, TaskError};
pub use reply::Reply;
pub use stream::BatchStream;

pub use crate::core::backoff::Jitter;
pub use crate::core::cancel::CancelToken;
pub use crate::core::executor::{Event, Progress};

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::rc::Rc;

use futures::StreamExt;

use crate::bindings::{alternative_pacers, SignalLink};
use crate::core::cache_groups::CacheGroups;
use crate::core::cost::Prices;
use crate::core::executor::{self, Config, Executor, Pacing};
use crate::core::pacer::Pacer;
use crate::error::Failure;
use crate::options::Options;
use crate::providers::Provider;
use crate::redact::Secrets;
use crate::web::abort::AbortGuard;
use crate::web::attempt;
use crate::web::clock::JsClock;
use crate::Clock;
use builder::{OnEvent, OnProgress};
use stream::Sink;

/// Runs batches of calls with bounded concurrency, retries, per-attempt timeouts that abort,
/// a deadline, pacing and cancellation.
///
/// One processor is one budget: its `concurrency`, rate budgets and adaptive limit bound
/// every call it runs, concurrent calls included. A clone shares them.
#[derive(Clone)]
pub struct BatchProcessor {
    config: Config,
    seed: Option<u64>,
    pacer: Rc<RefCell<Pacer>>,
    provider: Option<Rc<Provider>>,
    /// The provider's and the alternatives' keys: scrubbed from everything a call reports.
    secrets: Rc<Secrets>,
    max_response_bytes: u64,
    /// `fallbacks` (for `run`), each with its own pacer, and `fallbackAfterMs`.
    fallbacks: Rc<[attempt::Alternative]>,
    fallback_pacers: Vec<Rc<RefCell<Pacer>>>,
    fallback_after: Option<std::time::Duration>,
    /// The built-in price table: replies' `usd`, and `maxCostUsd`.
    prices: Rc<Prices>,
    signals: Vec<web_sys::AbortSignal>,
    cancels: Vec<CancelToken>,
    on_progress: Option<OnProgress>,
    on_event: Option<OnEvent>,
}

impl fmt::Debug for BatchProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchProcessor")
            .field("config", &self.config)
            .field("provider", &self.provider)
            .field("fallbacks", &self.fallbacks.len())
            .finish_non_exhaustive()
    }
}

/// Every option at its default (see [`Builder`]).
impl Default for BatchProcessor {
    fn default() -> Self {
        BatchProcessor::from_parts(Options::default(), None, Vec::new(), Builder::default())
    }
}

impl BatchProcessor {
    /// A processor with every option at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Options, set one by one; see [`Builder`].
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn from_parts(
        options: Options,
        provider: Option<Provider>,
        fallbacks: Vec<attempt::Alternative>,
        b: Builder,
    ) -> Self {
        let pacer = Pacer::new(&options.pacing, options.config.concurrency, JsClock.now());
        let mut secrets = provider.as_ref().map(Provider::secrets).unwrap_or_default();
        for alternative in &fallbacks {
            secrets = secrets.with(&alternative.provider.secrets());
        }
        BatchProcessor {
            fallback_pacers: alternative_pacers(&options, fallbacks.len()),
            fallbacks: fallbacks.into(),
            fallback_after: options.fallback_after,
            prices: Rc::default(),
            config: options.config,
            seed: options.seed,
            pacer: Rc::new(RefCell::new(pacer)),
            provider: provider.map(Rc::new),
            secrets: Rc::new(secrets),
            max_response_bytes: options.max_response_bytes,
            signals: b.signals,
            cancels: b.cancels,
            on_progress: b.on_progress,
            on_event: b.on_event,
        }
    }

    /// Runs `task(item, ctx)` for every item and returns one result per item, in input
    /// order. Each attempt gets its own future (an item is cloned per attempt); a failed
    /// attempt is retried as its [`TaskError`] says.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use edgebatch::wasm::BatchProcessor;
    /// use edgebatch::Failure;
    ///
    /// let results = BatchProcessor::new()
    ///     .map(1..=3, |n: u32, ctx| async move {
    ///         if ctx.attempt == 1 && n == 2 {
    ///             return Err(Failure::http(503, "busy")); // retried after a backoff
    ///         }
    ///         Ok(n * 10)
    ///     })
    ///     .await;
    /// let values: Vec<u32> = results.into_iter().map(|r| r.outcome.unwrap()).collect();
    /// assert_eq!(values, [10, 20, 30]);
    /// # }
    /// ```
    pub fn map<I, T, E, F, Fut>(
        &self,
        items: impl IntoIterator<Item = I>,
        task: F,
    ) -> impl Future<Output = Vec<ItemResult<T, E>>>
    where
        I: Clone + 'static,
        T: 'static,
        E: TaskError + 'static,
        F: Fn(I, AttemptContext) -> Fut + 'static,
        Fut: Future<Output = Result<T, E>> + 'static,
    {
        in_input_order(self.stream(items, task))
    }

    /// [`map`](Self::map), the results in completion order.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use edgebatch::wasm::BatchProcessor;
    /// use futures::StreamExt;
    ///
    /// let mut results = BatchProcessor::new()
    ///     .stream(vec!["a", "b"], |s, _ctx| async move { Ok::<_, String>(s.len()) });
    /// while let Some(result) = results.next().await {
    ///     println!("item {} done", result.index);
    /// }
    /// # }
    /// ```
    pub fn stream<I, T, E, F, Fut>(
        &self,
        items: impl IntoIterator<Item = I>,
        task: F,
    ) -> BatchStream<T, E>
    where
        I: Clone + 'static,
        T: 'static,
        E: TaskError + 'static,
        F: Fn(I, AttemptContext) -> Fut + 'static,
        Fut: Future<Output = Result<T, E>> + 'static,
    {
        let items: Rc<Vec<I>> = Rc::new(items.into_iter().collect());
        let total = items.len();
        // The executor's values are `()`: each value (and the task's own error) waits here,
        // by index, for its item's result, so T needs no Clone.
        let slots = Rc::new(Slots::<T, E>::new(total));
        let (own, secrets) = (slots.clone(), self.secrets.clone());
        // A task is the caller's own: it never goes to an alternative (route 0).
        let attempt = move |index: usize, attempt: u32, _route: usize| {
            let guard = AbortGuard::new();
            let ctx = AttemptContext {
                index,
                attempt,
                signal: guard.signal(),
            };
            let work = task(items[index].clone(), ctx);
            let (slots, secrets) = (own.clone(), secrets.clone());
            async move {
                let out = work.await;
                guard.disarm();
                match out {
                    Ok(value) => {
                        slots.values.borrow_mut()[index] = Some(value);
                        Ok(())
                    }
                    Err(e) => {
                        let mut failure = e.failure();
                        failure.message = secrets.scrub(&failure.message);
                        slots.errors.borrow_mut()[index] = Some((attempt, e));
                        Err(failure)
                    }
                }
            }
        };
        let convert = move |r: &executor::ItemResult<()>| ItemResult {
            index: r.index,
            outcome: match &r.outcome {
                Ok(()) => match slots.values.borrow_mut()[r.index].take() {
                    Some(value) => Ok(value),
                    None => unreachable!("a success stored its value"),
                },
                Err(error) => Err(Failed {
                    error: error.clone(),
                    source: slots.errors.borrow_mut()[r.index]
                        .take()
                        .filter(|(attempt, _)| *attempt == r.attempts)
                        .map(|(_, e)| e),
                }),
            },
            attempts: r.attempts,
            elapsed: r.elapsed,
            served_by: None,
        };
        self.start(total, attempt, (), false, None, convert)
    }

    /// One call: the executor of this processor's config, pacer, seed and cancellation over
    /// `total` items, feeding a stream; `routed`: `task(index, attempt, route)` sends to the
    /// alternative the retry rule names (`run` with fallbacks), each paced by its own pacer;
    /// `groups`: prompt-cache-aware starts (`run` to Anthropic).
    fn start<V, T, E, F, Fut, P, C>(
        &self,
        total: usize,
        task: F,
        pacing: P,
        routed: bool,
        groups: Option<Rc<CacheGroups<'static>>>,
        convert: C,
    ) -> BatchStream<T, E>
    where
        V: 'static,
        T: 'static,
        E: 'static,
        F: Fn(usize, u32, usize) -> Fut + 'static,
        Fut: Future<Output = Result<V, Failure>> + 'static,
        P: Pacing<V> + 'static,
        C: FnMut(&executor::ItemResult<V>) -> ItemResult<T, E> + 'static,
    {
        let cancel = CancelToken::new();
        let links = self
            .signals
            .iter()
            .filter_map(|s| SignalLink::new(s, &cancel))
            .collect();
        let results = Rc::default();
        let mut sink = Sink {
            results: Rc::clone(&results),
            convert,
            on_progress: self.on_progress.clone(),
            on_event: self.on_event.clone(),
        };
        let (config, pacer, token) = (self.config.clone(), self.pacer.clone(), cancel.clone());
        let seed = self
            .seed
            .unwrap_or_else(|| (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64);
        let others = if routed {
            self.fallback_pacers.clone()
        } else {
            Vec::new()
        };
        let after = self.fallback_after;
        let run = async move {
            let others: Vec<&RefCell<Pacer>> = others.iter().map(|p| &**p).collect();
            let mut executor = Executor::new(&config, &JsClock, &pacer)
                .cancel_on(&token)
                .seed(seed)
                .fallbacks(&others, after);
            if let Some(groups) = &groups {
                executor = executor.cache_groups(groups);
            }
            executor.run_routed(total, task, &pacing, &mut sink).await;
        };
        BatchStream::new(
            Box::pin(run),
            results,
            cancel,
            self.cancels.clone(),
            links,
            total,
        )
    }
}

/// Values and task errors by item index, until the item's result takes them.
struct Slots<T, E> {
    values: RefCell<Vec<Option<T>>>,
    /// The task's error and the attempt that returned it.
    errors: RefCell<Vec<Option<(u32, E)>>>,
}

impl<T, E> Slots<T, E> {
    fn new(total: usize) -> Self {
        Slots {
            values: RefCell::new((0..total).map(|_| None).collect()),
            errors: RefCell::new((0..total).map(|_| None).collect()),
        }
    }
}

/// Every result of `stream`, sorted into input order.
async fn in_input_order<T, E>(stream: BatchStream<T, E>) -> Vec<ItemResult<T, E>> {
    let mut results: Vec<_> = stream.collect().await;
    results.sort_unstable_by_key(|r| r.index);
    results
}
