//! `stream()`'s async iterator: results queue up as they complete; `next()` waits for one.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use js_sys::{Object, Promise};
use wasm_bindgen::prelude::*;

use super::convert::result_object;
use super::promise;
use crate::core::cancel::CancelToken;
use crate::core::cost::Prices;
use crate::core::executor::{ItemResult, Observer};
use crate::web::attempt::Routed;
use crate::web::provider::Metered;
use crate::web::set;

#[wasm_bindgen(
    inline_js = "export function asAsyncIterable(o) { o[Symbol.asyncIterator] = function () { return this; }; return o; }"
)]
extern "C" {
    #[wasm_bindgen(js_name = asAsyncIterable)]
    pub(super) fn as_async_iterable(stream: JsValue) -> JsValue;
}

#[derive(Default)]
struct StreamState {
    queue: VecDeque<JsValue>,
    finished: bool,
    wakers: Vec<Waker>,
}

/// The batch's side of a stream: results go in as they complete.
pub(super) struct StreamSink(Rc<RefCell<StreamState>>, Option<Rc<Routed>>, Rc<Prices>);

/// A stream and the sink that feeds it; `cancel` is the batch's token (`return()` fires it);
/// `routed`: the call's fallbacks (each result says which alternative served it); `prices`:
/// each result's `usd`.
pub(super) fn channel(
    cancel: CancelToken,
    routed: Option<Rc<Routed>>,
    prices: Rc<Prices>,
) -> (ResultStream, StreamSink) {
    let state = Rc::new(RefCell::new(StreamState::default()));
    let stream = ResultStream {
        sink: state.clone(),
        cancel,
    };
    (stream, StreamSink(state, routed, prices))
}

impl StreamSink {
    /// The batch is over: `next()` answers `done` once the queue is drained.
    pub(super) fn finish(&self) {
        let mut st = self.0.borrow_mut();
        st.finished = true;
        st.wakers.drain(..).for_each(Waker::wake);
    }
}

impl Observer<Metered> for StreamSink {
    fn result(&mut self, result: &ItemResult<Metered>) {
        let mut st = self.0.borrow_mut();
        st.queue
            .push_back(result_object(result, self.1.as_deref(), &self.2));
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
        promise(Box::pin(async move {
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
        }))
    }

    /// Leaving a `for await` loop early: the rest of the batch is cancelled.
    #[wasm_bindgen(js_name = "return")]
    pub fn return_(&self) -> Promise {
        self.cancel.cancel();
        Promise::resolve(&iter_result(JsValue::UNDEFINED, true))
    }
}
