//! Every `#[wasm_bindgen]` export, and only those (the simulator's are in `sim.rs`): JS values
//! are read and made here, at the edge; the batch itself runs in `core::executor` on the JS
//! clock.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use js_sys::{Array, Function, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use web_sys::AbortSignal;

use crate::core::backoff::SplitMix64;
use crate::core::cancel::CancelToken;
use crate::core::executor::{run_batch, Config, Event, ItemResult, Observer, Progress};
use crate::error::Failure;
use crate::options::{self, OptionError, OptionErrorKind, Raw, RawOptions};
use crate::web::abort::AbortGuard;
use crate::web::clock::JsClock;
use crate::web::fetch::fetch_spec;
use crate::web::task::{start_task, TaskAttempt};
use crate::web::{describe, set};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = include_str!("types.d.ts");

#[wasm_bindgen(
    inline_js = "export function asAsyncIterable(o) { o[Symbol.asyncIterator] = function () { return this; }; return o; }"
)]
extern "C" {
    #[wasm_bindgen(js_name = asAsyncIterable)]
    fn as_async_iterable(stream: JsValue) -> JsValue;
}

fn js_error(err: OptionError) -> JsValue {
    match err.kind {
        OptionErrorKind::Type => js_sys::TypeError::new(&err.message).into(),
        OptionErrorKind::Range => js_sys::RangeError::new(&err.message).into(),
    }
}

fn type_error(message: String) -> JsValue {
    js_sys::TypeError::new(&message).into()
}

/// An option's value: only `undefined` means "not given" (`null` is a wrong type).
fn option(obj: &JsValue, key: &str) -> Option<JsValue> {
    js_sys::Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined())
}

/// A value as option messages show it: strings quoted, like [`Raw`]'s display.
fn show(v: &JsValue) -> String {
    raw(Some(v.clone())).map_or_else(|| "undefined".into(), |r| r.to_string())
}

fn raw(value: Option<JsValue>) -> Option<Raw> {
    let v = value?;
    Some(if v.is_null() {
        Raw::Other("null".into())
    } else if let Some(n) = v.as_f64() {
        Raw::Number(n)
    } else if let Some(s) = v.as_string() {
        Raw::Text(s)
    } else if let Some(b) = v.as_bool() {
        Raw::Bool(b)
    } else {
        Raw::Other(v.js_typeof().as_string().unwrap_or_default())
    })
}

/// The keys of an options object, each checked against the known ones.
fn check_keys(obj: &JsValue, prefix: &str, known: &[&str]) -> Result<(), JsValue> {
    for key in Object::keys(obj.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| k.as_string())
    {
        if !known.contains(&key.as_str()) {
            return Err(js_error(options::unknown_key(prefix, &key)));
        }
    }
    Ok(())
}

fn object_option(parent: &JsValue, name: &str) -> Result<Option<JsValue>, JsValue> {
    match option(parent, name) {
        Some(v) if v.is_object() && !v.is_function() && !Array::is_array(&v) => Ok(Some(v)),
        Some(v) => Err(type_error(format!(
            "{name} must be an object, got {}",
            show(&v)
        ))),
        None => Ok(None),
    }
}

fn function_option(options: &JsValue, name: &str) -> Result<Option<Function>, JsValue> {
    option(options, name)
        .map(|v| {
            v.dyn_into::<Function>()
                .map_err(|v| type_error(format!("{name} must be a function, got {}", show(&v))))
        })
        .transpose()
}

fn signal_option(options: &JsValue, name: &str) -> Result<Option<AbortSignal>, JsValue> {
    option(options, name)
        .map(|v| {
            v.dyn_into::<AbortSignal>()
                .map_err(|v| type_error(format!("{name} must be an AbortSignal, got {}", show(&v))))
        })
        .transpose()
}

/// Runs batches of calls with bounded concurrency, retries, timeouts, a deadline and
/// cancellation. Options are validated here, once.
#[wasm_bindgen(skip_typescript)]
pub struct BatchProcessor {
    config: Config,
    seed: Option<u64>,
    signal: Option<AbortSignal>,
    on_progress: Option<Function>,
    on_event: Option<Function>,
}

#[wasm_bindgen]
impl BatchProcessor {
    /// `new BatchProcessor(options?)`: throws TypeError/RangeError naming a bad option.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<BatchProcessor, JsValue> {
        if options.is_undefined() || options.is_null() {
            return Self::from_parts(RawOptions::default(), &JsValue::UNDEFINED);
        }
        if !options.is_object() || options.is_function() || Array::is_array(&options) {
            return Err(type_error(format!(
                "options must be an object, got {}",
                describe(&options)
            )));
        }
        check_keys(&options, "", options::KNOWN_KEYS)?;
        let backoff = object_option(&options, "backoff")?;
        if let Some(b) = &backoff {
            check_keys(b, "backoff.", options::BACKOFF_KEYS)?;
        }
        let nested = |key: &str| raw(backoff.as_ref().and_then(|b| option(b, key)));
        let raw_options = RawOptions {
            concurrency: raw(option(&options, "concurrency")),
            max_retries: raw(option(&options, "maxRetries")),
            timeout_ms: raw(option(&options, "timeoutMs")),
            deadline_ms: raw(option(&options, "deadlineMs")),
            backoff_base_ms: nested("baseMs"),
            backoff_max_ms: nested("maxMs"),
            backoff_jitter: nested("jitter"),
            max_retry_after_ms: raw(option(&options, "maxRetryAfterMs")),
            seed: raw(option(&options, "seed")),
        };
        Self::from_parts(raw_options, &options)
    }

    fn from_parts(raw_options: RawOptions, options: &JsValue) -> Result<BatchProcessor, JsValue> {
        let validated = raw_options.validate().map_err(js_error)?;
        Ok(BatchProcessor {
            config: validated.config,
            seed: validated.seed,
            signal: signal_option(options, "signal")?,
            on_progress: function_option(options, "onProgress")?,
            on_event: function_option(options, "onEvent")?,
        })
    }

    /// `map(items, fn, callOptions?)`: one result per item, in input order.
    pub fn map(&self, items: JsValue, task: JsValue, call_options: JsValue) -> Promise {
        let prepared = self
            .prepare(items, call_options)
            .and_then(|c| Ok((c, task_fn(task)?)));
        let (call, task) = match prepared {
            Ok(ready) => ready,
            Err(e) => return Promise::reject(&e),
        };
        future_to_promise(async move {
            let results = call.execute(map_task(task), &mut ()).await;
            Ok(results_array(&results))
        })
    }

    /// `run(specs, callOptions?)`: each spec sent with the global `fetch`.
    pub fn run(&self, specs: JsValue, call_options: JsValue) -> Promise {
        let call = match self.prepare(specs, call_options) {
            Ok(call) => call,
            Err(e) => return Promise::reject(&e),
        };
        let task = |index: usize, _attempt: u32, specs: &Array| {
            let guard = AbortGuard::new();
            let spec = specs.get(index as u32);
            async move {
                let out = fetch_spec(&spec, &guard.signal()).await;
                guard.disarm();
                out
            }
        };
        future_to_promise(async move {
            let results = call.execute(task, &mut ()).await;
            Ok(results_array(&results))
        })
    }

    /// `stream(items, fn, callOptions?)`: an async iterable of results in completion order.
    pub fn stream(
        &self,
        items: JsValue,
        task: JsValue,
        call_options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let call = self.prepare(items, call_options)?;
        let task = task_fn(task)?;
        let sink = Rc::new(RefCell::new(StreamState::default()));
        let stream = ResultStream {
            sink: sink.clone(),
            cancel: call.cancel.clone(),
        };
        wasm_bindgen_futures::spawn_local(async move {
            let mut observer = StreamSink(sink.clone());
            call.execute(map_task(task), &mut observer).await;
            let mut st = sink.borrow_mut();
            st.finished = true;
            st.wakers.drain(..).for_each(Waker::wake);
        });
        Ok(as_async_iterable(stream.into()))
    }

    fn prepare(&self, items: JsValue, call_options: JsValue) -> Result<Call, JsValue> {
        let items = to_array(items)?;
        let mut signals: Vec<AbortSignal> = self.signal.iter().cloned().collect();
        if !call_options.is_undefined() && !call_options.is_null() {
            if !call_options.is_object() {
                return Err(type_error(format!(
                    "call options must be an object, got {}",
                    describe(&call_options)
                )));
            }
            check_keys(&call_options, "", &["signal"])?;
            signals.extend(signal_option(&call_options, "signal")?);
        }
        let cancel = CancelToken::new();
        let links = signals
            .iter()
            .filter_map(|s| SignalLink::new(s, &cancel))
            .collect();
        let seed = self
            .seed
            .unwrap_or_else(|| (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64);
        Ok(Call {
            config: self.config.clone(),
            seed,
            items,
            cancel,
            _links: links,
            callbacks: JsCallbacks {
                on_progress: self.on_progress.clone(),
                on_event: self.on_event.clone(),
            },
        })
    }
}

fn to_array(items: JsValue) -> Result<Rc<Array>, JsValue> {
    if Array::is_array(&items) {
        return Ok(Rc::new(items.unchecked_into()));
    }
    match js_sys::try_iter(&items) {
        Ok(Some(_)) => Ok(Rc::new(Array::from(&items))),
        _ => Err(type_error(format!(
            "items must be an array or an iterable, got {}",
            describe(&items)
        ))),
    }
}

fn task_fn(task: JsValue) -> Result<Rc<Function>, JsValue> {
    task.dyn_into::<Function>()
        .map(Rc::new)
        .map_err(|v| type_error(format!("the task must be a function, got {}", describe(&v))))
}

/// The task of map/stream: `fn(item, { signal, attempt, index })`, its signal fired when the
/// attempt is dropped (timeout, deadline, cancel).
fn map_task(task: Rc<Function>) -> impl Fn(usize, u32, &Array) -> TaskAttempt {
    move |index, attempt, items| start_task(&task, items, index, attempt)
}

/// One call of map/run/stream: its items, cancel token and the links to the AbortSignals.
struct Call {
    config: Config,
    seed: u64,
    items: Rc<Array>,
    cancel: CancelToken,
    _links: Vec<SignalLink>,
    callbacks: JsCallbacks,
}

impl Call {
    async fn execute<T, Fut, O>(self, task: T, extra: &mut O) -> Vec<ItemResult<JsValue>>
    where
        T: TaskWithItems<Fut>,
        Fut: std::future::Future<Output = Result<JsValue, Failure>> + 'static,
        O: Observer<JsValue>,
    {
        let mut rng = SplitMix64::new(self.seed);
        let items = self.items.clone();
        let mut observer = Both(&self.callbacks, extra);
        let total = items.length() as usize;
        run_batch(
            &self.config,
            &JsClock,
            total,
            |i, a| task.call(i, a, &items),
            &self.cancel,
            &mut rng,
            &mut observer,
        )
        .await
    }
}

/// A task that reads its item from the call's array (map, stream) or ignores it (run).
trait TaskWithItems<Fut> {
    fn call(&self, index: usize, attempt: u32, items: &Array) -> Fut;
}

impl<F, Fut> TaskWithItems<Fut> for F
where
    F: Fn(usize, u32, &Array) -> Fut,
{
    fn call(&self, index: usize, attempt: u32, items: &Array) -> Fut {
        self(index, attempt, items)
    }
}

/// Ends the call's cancellation when an AbortSignal fires; removes its listener on drop.
struct SignalLink {
    signal: AbortSignal,
    listener: Closure<dyn FnMut()>,
}

impl SignalLink {
    fn new(signal: &AbortSignal, cancel: &CancelToken) -> Option<SignalLink> {
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

/// The user's callbacks and a second observer (the stream sink), side by side.
struct Both<'a, O>(&'a JsCallbacks, &'a mut O);

impl<O: Observer<JsValue>> Observer<JsValue> for Both<'_, O> {
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
    fn result(&mut self, result: &ItemResult<JsValue>) {
        self.1.result(result);
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn event_object(event: &Event) -> JsValue {
    let o = Object::new();
    match *event {
        Event::Start { index, attempt, at } => {
            set(&o, "type", "start");
            set(&o, "index", index as u32);
            set(&o, "attempt", attempt);
            set(&o, "atMs", ms(at));
        }
        Event::End {
            index,
            attempt,
            at,
            latency,
            outcome,
            status,
        } => {
            set(&o, "type", "end");
            set(&o, "index", index as u32);
            set(&o, "attempt", attempt);
            set(&o, "atMs", ms(at));
            set(&o, "latencyMs", ms(latency));
            set(&o, "outcome", outcome.map_or("ok", |k| k.as_str()));
            if let Some(s) = status {
                set(&o, "status", s);
            }
        }
        Event::Backoff {
            index,
            attempt,
            at,
            delay,
        } => {
            set(&o, "type", "backoff");
            set(&o, "index", index as u32);
            set(&o, "attempt", attempt);
            set(&o, "atMs", ms(at));
            set(&o, "delayMs", ms(delay));
        }
    }
    o.into()
}

fn progress_object(p: &Progress) -> JsValue {
    let o = Object::new();
    set(&o, "total", p.total as u32);
    set(&o, "done", p.done as u32);
    set(&o, "ok", p.ok as u32);
    set(&o, "failed", p.failed as u32);
    set(&o, "inFlight", p.in_flight as u32);
    set(&o, "queued", p.queued as u32);
    set(&o, "waiting", p.waiting as u32);
    set(&o, "retries", p.retries as f64);
    set(&o, "elapsedMs", ms(p.elapsed));
    o.into()
}

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = makeResult)]
    fn make_result(
        index: u32,
        ok: bool,
        payload: &JsValue,
        attempts: u32,
        elapsed_ms: f64,
    ) -> JsValue;
    #[wasm_bindgen(js_name = makeError)]
    fn make_error(
        kind: &str,
        status: Option<u16>,
        error_type: Option<String>,
        message: &str,
        retryable: bool,
        retry_after_ms: Option<f64>,
    ) -> JsValue;
}

fn result_object(r: &ItemResult<JsValue>) -> JsValue {
    let (ok, payload) = match &r.outcome {
        Ok(v) => (true, v.clone()),
        Err(e) => (
            false,
            make_error(
                e.kind.as_str(),
                e.status,
                e.error_type.clone(),
                &e.message,
                e.retryable,
                e.retry_after_ms.map(|ms| ms as f64),
            ),
        ),
    };
    make_result(r.index as u32, ok, &payload, r.attempts, ms(r.elapsed))
}

fn results_array(results: &[ItemResult<JsValue>]) -> JsValue {
    results.iter().map(result_object).collect::<Array>().into()
}

#[derive(Default)]
struct StreamState {
    queue: VecDeque<JsValue>,
    finished: bool,
    wakers: Vec<Waker>,
}

struct StreamSink(Rc<RefCell<StreamState>>);

impl Observer<JsValue> for StreamSink {
    fn result(&mut self, result: &ItemResult<JsValue>) {
        let mut st = self.0.borrow_mut();
        st.queue.push_back(result_object(result));
        st.wakers.drain(..).for_each(Waker::wake);
    }
}

/// The async iterator `stream()` returns.
#[wasm_bindgen(skip_typescript)]
pub struct ResultStream {
    sink: Rc<RefCell<StreamState>>,
    cancel: CancelToken,
}

fn iter_result(value: JsValue, done: bool) -> JsValue {
    let o = Object::new();
    set(&o, "value", value);
    set(&o, "done", done);
    o.into()
}

#[wasm_bindgen]
impl ResultStream {
    /// The next result in completion order, or `{ done: true }` after the last.
    pub fn next(&self) -> Promise {
        let sink = self.sink.clone();
        future_to_promise(async move {
            poll_fn(|cx| {
                let mut st = sink.borrow_mut();
                if let Some(v) = st.queue.pop_front() {
                    return Poll::Ready(Ok(iter_result(v, false)));
                }
                if st.finished {
                    return Poll::Ready(Ok(iter_result(JsValue::UNDEFINED, true)));
                }
                st.wakers.push(cx.waker().clone());
                Poll::Pending
            })
            .await
        })
    }

    /// Leaving a `for await` loop early: the rest of the batch is cancelled.
    #[wasm_bindgen(js_name = "return")]
    pub fn return_(&self) -> Promise {
        self.cancel.cancel();
        Promise::resolve(&iter_result(JsValue::UNDEFINED, true))
    }
}
