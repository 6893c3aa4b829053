//! Every `#[wasm_bindgen]` export, and only those (the simulator is its own crate): JS values
//! are read and made here, at the edge; the batch itself runs in `core::executor` on the JS
//! clock.

mod convert;
mod js_fields;
mod js_options;
#[cfg(feature = "limiter")]
mod limiter;
mod post;
#[cfg(feature = "limiter")]
mod price;
mod stream;

use convert::{event_object, progress_object, results_array};
#[cfg(feature = "rust-api")]
pub(crate) use js_options::{alternative, entry_error};
use js_options::{
    fallbacks_option, function_option, is_plain_object, js_error, prices_option, provider_option,
    read, signal_option, type_error,
};
use post::PostJob;
use stream::as_async_iterable;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use web_sys::AbortSignal;

use crate::core::cache_groups::CacheGroups;
use crate::core::cancel::CancelToken;
use crate::core::cost::{Pico, Prices};
use crate::core::executor::{Config, Event, Executor, ItemResult, Observer, Pacing, Progress};
use crate::core::limits::{Cost, Feedback};
use crate::core::pacer::{Pacer, PacingConfig};
use crate::core::post::{BatchScope, PostStage};
use crate::options::{
    call_max_cost, OptionSpec, Options, RawCallOptions, RawOptions, CALL_OPTIONS, OPTIONS,
};
use crate::providers::{Provider, ProviderKind};
use crate::redact::Secrets;
use crate::web::attempt::{Alternative, Routed, Task};
use crate::web::clock::JsClock;
use crate::web::items::Items;
use crate::web::permits::JsPermits;
use crate::web::preflight;
use crate::web::provider::Metered;
use crate::web::{get, got, JsJson};
use crate::Clock;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = include_str!("types.d.ts");

/// Runs batches of calls with bounded concurrency, retries, timeouts, a deadline and
/// cancellation. Options are validated here, once.
#[wasm_bindgen(skip_typescript)]
pub struct BatchProcessor {
    config: Config,
    seed: Option<u64>,
    signal: Option<AbortSignal>,
    on_progress: Option<Function>,
    on_event: Option<Function>,
    provider: Option<Rc<Provider>>,
    cost: Option<Function>,
    pacer: Rc<RefCell<Pacer>>,
    /// The provider's key: scrubbed from everything a call reports.
    secrets: Rc<Secrets>,
    /// `maxResponseBytes`.
    max_response_bytes: u64,
    /// `fallbacks`, each with its own pacer, and `fallbackAfterMs`.
    fallbacks: Rc<[Alternative]>,
    fallback_pacers: Vec<Rc<RefCell<Pacer>>>,
    fallback_after: Option<Duration>,
    /// `prices` over the built-in table: results' `usd`, and `maxCostUsd`.
    prices: Rc<Prices>,
}

#[wasm_bindgen]
impl BatchProcessor {
    /// `new BatchProcessor(options?)`: throws TypeError/RangeError naming a bad option.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<BatchProcessor, JsValue> {
        if options.is_undefined() || options.is_null() {
            return Self::from_parts(RawOptions::default(), &JsValue::UNDEFINED);
        }
        if !is_plain_object(&options) {
            return Err(type_error(format!(
                "options must be an object, got {}",
                js_options::show(&options)
            )));
        }
        let raw: RawOptions = read(&options, &|key| OptionSpec::find(OPTIONS, key))?;
        Self::from_parts(raw, &options)
    }

    /// The data options through serde; signal, functions and the provider (whose key must
    /// never be shown) on the explicit path, from the same declarations.
    fn from_parts(raw: RawOptions, options: &JsValue) -> Result<BatchProcessor, JsValue> {
        // Every option that can fail is read first, in this order (the first bad one is the
        // error); what cannot fail is built after them, so that no early return has a pacer
        // or the secrets to drop (each such return was its own copy of the drops).
        let validated = raw.validate().map_err(js_error)?;
        let provider = provider_option(options, raw.provider().spec)?;
        let fallbacks = fallbacks_option(options, raw.fallbacks().spec, provider.as_ref())?;
        if fallbacks.is_empty() && validated.fallback_after.is_some() {
            return Err(
                js_sys::RangeError::new("fallbackAfterMs applies only with fallbacks").into(),
            );
        }
        let prices = prices_option(options, raw.prices().spec)?;
        let signal = signal_option(options, raw.signal().spec)?;
        let on_progress = function_option(options, raw.on_progress().spec)?;
        let on_event = function_option(options, raw.on_event().spec)?;
        let cost = function_option(options, raw.cost().spec)?;
        let mut secrets = provider.as_ref().map(Provider::secrets).unwrap_or_default();
        for alternative in &fallbacks {
            secrets = secrets.with(&alternative.provider.secrets());
        }
        let pacer = Pacer::new(
            &validated.pacing,
            validated.config.concurrency,
            JsClock.now(),
        );
        let fallback_pacers = alternative_pacers(&validated, fallbacks.len());
        Ok(BatchProcessor {
            prices: Rc::new(prices),
            fallbacks: fallbacks.into(),
            fallback_pacers,
            fallback_after: validated.fallback_after,
            config: validated.config,
            seed: validated.seed,
            signal,
            on_progress,
            on_event,
            provider: provider
                .filter(|p| p.kind != ProviderKind::Http)
                .map(Rc::new),
            secrets: Rc::new(secrets),
            max_response_bytes: validated.max_response_bytes,
            cost,
            pacer: Rc::new(RefCell::new(pacer)),
        })
    }

    /// `map(items, fn, callOptions?)`: one result per item, in input order.
    pub fn map(&self, items: JsValue, task: JsValue, call_options: JsValue) -> Promise {
        let prepared = self
            .prepare(items, call_options, false)
            .and_then(|c| Ok((c, task_fn(task)?)));
        let (call, task) = match prepared {
            Ok(ready) => ready,
            Err(e) => return Promise::reject(&e),
        };
        call.settle(Task::Map(task))
    }

    /// `run(specs, callOptions?)`: each spec sent with the global `fetch`.
    pub fn run(&self, specs: JsValue, call_options: JsValue) -> Promise {
        let call = match self.prepare(specs, call_options, true) {
            Ok(call) => call,
            Err(e) => return Promise::reject(&e),
        };
        let task = self.sending();
        call.settle(task)
    }

    /// What run() and stream() without a function send: requests, through the fallbacks when
    /// there are any.
    fn sending(&self) -> Task {
        match &self.provider {
            Some(first) if !self.fallbacks.is_empty() => Task::Routed(Rc::new(Routed::new(
                first.clone(),
                self.fallbacks.clone(),
                self.max_response_bytes,
            ))),
            _ => Task::Run(self.provider.clone(), self.max_response_bytes),
        }
    }

    /// `stream(items, fn?, callOptions?)`: an async iterable of results in completion order.
    /// Without `fn` the items are sent as `run()` sends them (fetch specs, or provider
    /// request bodies with the provider's pacing); `stream(items, callOptions)` also works.
    pub fn stream(
        &self,
        items: JsValue,
        task: JsValue,
        call_options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let options_in_place_of_fn =
            call_options.is_undefined() && task.is_object() && !task.is_function();
        let (task, call_options) = if options_in_place_of_fn {
            (JsValue::UNDEFINED, task)
        } else {
            (task, call_options)
        };
        let sends = task.is_undefined() || task.is_null();
        let call = self.prepare(items, call_options, sends)?;
        let task = if sends {
            self.sending()
        } else {
            Task::Map(task_fn(task)?)
        };
        let (stream, mut sink) =
            stream::channel(call.cancel.clone(), routed(&task), call.prices.clone());
        wasm_bindgen_futures::spawn_local(async move {
            call.execute(task, &mut sink).await;
            sink.finish();
        });
        Ok(as_async_iterable(stream.into()))
    }

    /// The call's items, signals and cost; `sends`: the items are requests (run, stream
    /// without a function), checked before their first attempt.
    fn prepare(&self, items: JsValue, call_options: JsValue, sends: bool) -> Result<Call, JsValue> {
        let items = Rc::new(Items::read(items)?);
        let mut signals: Vec<AbortSignal> = self.signal.iter().cloned().collect();
        let (mut post, mut permits) = (None, None);
        let mut config = self.config.clone();
        if !call_options.is_undefined() && !call_options.is_null() {
            if !call_options.is_object() {
                return Err(type_error(got(
                    "call options must be an object",
                    &call_options,
                )));
            }
            let call: RawCallOptions = read(&call_options, &|k| OptionSpec::find(CALL_OPTIONS, k))?;
            signals.extend(signal_option(&call_options, call.signal().spec)?);
            let spec = call.post_process().spec;
            post = PostJob::read(&call_options, spec, items.array(), &self.secrets)?;
            let kind = self.provider.as_ref().map(|p| p.kind);
            permits = JsPermits::read(&call_options, call.permits().spec, kind)?;
            if let Some(max) = call_max_cost(&call).map_err(js_error)? {
                config.max_cost = Some(max);
            }
        }
        let cancel = CancelToken::new();
        let links = signals
            .iter()
            .filter_map(|s| SignalLink::new(s, &cancel))
            .collect();
        let seed = self
            .seed
            .unwrap_or_else(|| (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64);
        let provider = self.provider.clone();
        let cost_fn = self.cost.clone();
        let cost_items = items.clone();
        let secrets = self.secrets.clone();
        let (capped, prices) = (config.max_cost.is_some(), self.prices.clone());
        // Every item is read here first, guarded: one that throws fails before any attempt.
        let cost = move |index: usize| {
            let item = cost_items.get(index).map_err(|m| secrets.scrub(&m))?;
            match (sends, provider.as_deref()) {
                (false, _) => Ok(()),
                (true, Some(p)) => preflight::check_request(p, &item),
                (true, None) => preflight::check_spec(&item),
            }
            .map_err(|m| secrets.scrub(&m))?;
            if let (true, true, Some(_)) = (capped, sends, provider.as_deref()) {
                priced(&prices, &item)?;
            }
            let estimate = provider
                .as_deref()
                .map(|p| p.estimate_cost(&JsJson(item.clone())));
            Ok(caller_cost(cost_fn.as_ref(), &item, index).unwrap_or(estimate.unwrap_or_default()))
        };
        Ok(Call {
            config,
            prices: self.prices.clone(),
            seed,
            pacer: self.pacer.clone(),
            fallback_pacers: self.fallback_pacers.clone(),
            fallback_after: self.fallback_after,
            secrets: self.secrets.clone(),
            cost: Box::new(cost),
            items,
            cancel,
            post,
            permits,
            _links: links,
            callbacks: JsCallbacks {
                on_progress: self.on_progress.clone(),
                on_event: self.on_event.clone(),
            },
        })
    }
}

/// A pacer per alternative of `fallbacks`: each is its own upstream, learning from its own
/// replies (`rateLimit` is the first choice's budget). Shared with the Rust API.
pub(crate) fn alternative_pacers(validated: &Options, count: usize) -> Vec<Rc<RefCell<Pacer>>> {
    let pacing = PacingConfig {
        requests_per_minute: None,
        input_tokens_per_minute: None,
        output_tokens_per_minute: None,
        ..validated.pacing.clone()
    };
    let now = JsClock.now();
    (0..count)
        .map(|_| {
            Rc::new(RefCell::new(Pacer::new(
                &pacing,
                validated.config.concurrency,
                now,
            )))
        })
        .collect()
}

/// The fallbacks of a task that sends through them.
/// The promise of a boxed future: every promise the bindings return (`map`/`run`, a stream's
/// `next`) goes through this one `future_to_promise` (each instantiation of it is its own
/// state machine in the wasm).
pub(crate) fn promise(future: Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>>) -> Promise {
    future_to_promise(future)
}

fn routed(task: &Task) -> Option<Rc<Routed>> {
    match task {
        Task::Routed(routed) => Some(routed.clone()),
        _ => None,
    }
}

fn task_fn(task: JsValue) -> Result<Rc<Function>, JsValue> {
    task.dyn_into::<Function>()
        .map(Rc::new)
        .map_err(|v| type_error(got("the task must be a function", &v)))
}

/// One call of map/run/stream: its items, cancel token and the links to the AbortSignals.
struct Call {
    config: Config,
    prices: Rc<Prices>,
    seed: u64,
    pacer: Rc<RefCell<Pacer>>,
    fallback_pacers: Vec<Rc<RefCell<Pacer>>>,
    fallback_after: Option<Duration>,
    secrets: Rc<Secrets>,
    cost: Box<dyn Fn(usize) -> Result<Cost, String>>,
    items: Rc<Items>,
    cancel: CancelToken,
    /// `postProcess`: the stage after each successful call.
    post: Option<PostJob>,
    /// `permits`: asked before each attempt, told each outcome.
    permits: Option<JsPermits>,
    _links: Vec<SignalLink>,
    callbacks: JsCallbacks,
}

impl Call {
    /// `map` and `run`: the results array once every item is done. One promise for both.
    fn settle(self, task: Task) -> Promise {
        let routed = routed(&task);
        promise(Box::pin(async move {
            let prices = self.prices.clone();
            let results = self.execute(task, &mut ()).await;
            Ok(results_array(&results, routed.as_deref(), &prices))
        }))
    }

    /// Not generic: map, run and stream, with or without a stream's sink, share one
    /// instantiation of the executor (each one is several KB of wasm).
    async fn execute(
        self,
        task: Task,
        extra: &mut dyn Observer<Metered>,
    ) -> Vec<ItemResult<Metered>> {
        let items = self.items.clone();
        let mut both = Both(&self.callbacks, extra);
        let downstream = RefCell::new(&mut both as &mut dyn Observer<Metered>);
        let total = items.len();
        let pacing = CallPacing {
            cost: &*self.cost,
            prices: &self.prices,
            models: match &task {
                Task::Run(Some(_), _) => Some((&*items, &[][..])),
                Task::Routed(routed) => Some((&*items, &routed.fallbacks[..])),
                _ => None,
            },
        };
        // One executor call site either way (each instantiation is KBs of wasm): with a
        // stage, its feed observes the calls; without, the caller's observers do.
        let stage = self.post.as_ref().map(|p| PostStage::new(total, p.threads));
        let (mut feed, mut direct);
        let observer: &mut dyn Observer<Metered> = match &stage {
            Some(stage) => {
                feed = stage.feed(&downstream);
                &mut feed
            }
            None => {
                direct = Direct(&downstream);
                &mut direct
            }
        };
        let start = JsClock.now();
        // Boxed as `dyn`: awaited here or inside the stage, its body is compiled once.
        let mut executor = Executor::new(&self.config, &JsClock, &self.pacer)
            .cancel_on(&self.cancel)
            .seed(self.seed);
        if let Some(permits) = &self.permits {
            executor = executor.permits(permits);
        }
        // Only requests go through the fallbacks (a map() task is the caller's own).
        let others: Vec<&RefCell<Pacer>> = match task {
            Task::Routed(_) => self.fallback_pacers.iter().map(|p| &**p).collect(),
            _ => Vec::new(),
        };
        executor = executor.fallbacks(&others, self.fallback_after);
        // `cacheAware`: requests to Anthropic, grouped by their prompt-cache prefix.
        let anthropic = match &task {
            Task::Run(Some(p), _) => Some(p.clone()),
            Task::Routed(routed) => Some(routed.first.clone()),
            _ => None,
        }
        .filter(|p| p.kind == ProviderKind::Anthropic);
        let grouped = anthropic.is_some();
        let key_items = items.clone();
        let groups = CacheGroups::new(move |i| {
            anthropic
                .as_deref()?
                .cache_key(&JsJson(key_items.get(i).ok()?))
        });
        executor = executor.cache_groups(&groups);
        let calls: Pin<Box<dyn Future<Output = Vec<ItemResult<Metered>>> + '_>> =
            Box::pin(executor.run_routed(
                total,
                |i, a, route| {
                    let began = grouped.then(|| groups.began(i)).flatten();
                    task.start(i, a, route, &items, &self.secrets, began)
                },
                &pacing,
                observer,
            ));
        let (Some(stage), Some(post)) = (stage, self.post.as_ref()) else {
            return calls.await;
        };
        let process = |index: usize, value: Metered| post.process(index, value);
        let deadline_at = self.config.deadline.map(|d| start + d);
        let batch = BatchScope {
            clock: &JsClock,
            start,
            deadline_at,
            cancel: &self.cancel,
        };
        stage.run(calls, &process, batch, &downstream).await
    }
}

/// A cap cannot bound what it cannot price: with `maxCostUsd`, a request of an unpriced model
/// fails before its first attempt (shared with the Rust API).
pub(crate) fn priced(prices: &Prices, item: &JsValue) -> Result<(), String> {
    let model = get(item, "model").and_then(|m| m.as_string());
    if model.as_deref().and_then(|m| prices.find(m)).is_none() {
        let shown = model.as_deref().map_or("(none)".into(), crate::text::quote);
        return Err(format!(
            "maxCostUsd needs a price for the model {shown}: add it to the processor's prices"
        ));
    }
    Ok(())
}

/// What the executor asks of a call's items: their expected cost (for the pacer), what a
/// value reports, and dollars (the ledger: `maxCostUsd`, from the processor's `prices`).
/// Shared with the Rust API's `run`.
pub(crate) struct CallPacing<'a> {
    pub(crate) cost: &'a dyn Fn(usize) -> Result<Cost, String>,
    pub(crate) prices: &'a Prices,
    /// With a provider: the items (requests whose `model` has a price) and the fallbacks.
    pub(crate) models: Option<(&'a Items, &'a [Alternative])>,
}

impl Pacing<Metered> for CallPacing<'_> {
    fn cost(&self, index: usize) -> Result<Cost, String> {
        (self.cost)(index)
    }

    fn feedback(&self, value: &Metered) -> Feedback {
        value.feedback()
    }

    /// The estimate at the price of the model the attempt sends: the alternative's, else the
    /// item's own.
    fn max_spend(&self, index: usize, cost: &Cost, route: usize) -> Pico {
        let Some((items, fallbacks)) = self.models else {
            return 0;
        };
        let model = route
            .checked_sub(1)
            .and_then(|k| fallbacks.get(k)?.model.as_string())
            .or_else(|| get(&items.get(index).ok()?, "model")?.as_string());
        model
            .and_then(|m| self.prices.find(&m))
            .map_or(0, |p| p.estimate(cost))
    }

    fn spend(&self, value: &Metered) -> Pico {
        value.cost(self.prices).unwrap_or(0)
    }
}

/// Ends the call's cancellation when an AbortSignal fires; removes its listener on drop.
pub(crate) struct SignalLink {
    signal: AbortSignal,
    listener: Closure<dyn FnMut()>,
}

impl SignalLink {
    pub(crate) fn new(signal: &AbortSignal, cancel: &CancelToken) -> Option<SignalLink> {
        if signal.aborted() {
            cancel.cancel();
            return None;
        }
        let token = cancel.clone();
        let listener = Closure::<dyn FnMut()>::new(move || token.cancel());
        let _ = signal.add_event_listener_with_callback("abort", listener.as_ref().unchecked_ref());
        Some(SignalLink {
            signal: signal.clone(),
            listener,
        })
    }
}

impl Drop for SignalLink {
    fn drop(&mut self) {
        let _ = self
            .signal
            .remove_event_listener_with_callback("abort", self.listener.as_ref().unchecked_ref());
    }
}

struct JsCallbacks {
    on_progress: Option<Function>,
    on_event: Option<Function>,
}

/// The caller's observers, shared with a post-processing stage when there is one.
struct Direct<'a, 'o>(&'a RefCell<&'o mut dyn Observer<Metered>>);

impl Observer<Metered> for Direct<'_, '_> {
    fn event(&mut self, event: &Event) {
        self.0.borrow_mut().event(event);
    }
    fn progress(&mut self, progress: &Progress) {
        self.0.borrow_mut().progress(progress);
    }
    fn result(&mut self, result: &ItemResult<Metered>) {
        self.0.borrow_mut().result(result);
    }
}

/// The user's callbacks and a second observer (the stream sink), side by side.
struct Both<'a, V>(&'a JsCallbacks, &'a mut dyn Observer<V>);

impl<V> Observer<V> for Both<'_, V> {
    fn event(&mut self, event: &Event) {
        if let Some(f) = &self.0.on_event {
            // A throwing callback must not break the batch: its error is dropped.
            let _ = f.call1(&JsValue::UNDEFINED, &event_object(event));
        }
    }
    fn progress(&mut self, progress: &Progress) {
        if let Some(f) = &self.0.on_progress {
            let _ = f.call1(&JsValue::UNDEFINED, &progress_object(progress));
        }
    }
    fn result(&mut self, result: &ItemResult<V>) {
        self.1.result(result);
    }
}

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = summarize)]
    fn summarize_results(results: &JsValue) -> JsValue;
}

/// `summarize(results)`: totals of a batch — counts, attempts, retries, failures by kind and
/// token usage, and usage per model (`byModel`) when the results name models.
#[wasm_bindgen(skip_typescript)]
pub fn summarize(results: JsValue) -> Result<JsValue, JsValue> {
    if js_sys::try_iter(&results).ok().flatten().is_none() {
        return Err(type_error(got(
            "summarize() takes the results array",
            &results,
        )));
    }
    Ok(summarize_results(&results))
}

/// The caller's `cost(item, index)`: `{ inputTokens?, outputTokens? }` wins over the estimate.
/// A throwing or malformed answer falls back to the estimate.
fn caller_cost(f: Option<&Function>, item: &JsValue, index: usize) -> Option<Cost> {
    let out = f?
        .call2(&JsValue::UNDEFINED, item, &JsValue::from(index as u32))
        .ok()?;
    let read = |key: &str| {
        get(&out, key)
            .and_then(|v| v.as_f64())
            .filter(|n| *n >= 0.0 && n.is_finite())
    };
    let (input, output) = (read("inputTokens"), read("outputTokens"));
    (input.is_some() || output.is_some()).then(|| Cost {
        input_tokens: input.unwrap_or(0.0) as u64,
        output_tokens: output.unwrap_or(0.0) as u64,
    })
}
