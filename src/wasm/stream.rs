//! [`BatchStream`]: one call of the executor, driven by whoever polls the stream. Results
//! queue up as the executor finishes items and come out in completion order. Nothing runs
//! until the stream is first polled; dropping it drops the executor's attempts, which
//! aborts their requests.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::Stream;

use super::builder::{OnEvent, OnProgress};
use super::outcome::ItemResult;
use crate::bindings::SignalLink;
use crate::core::cancel::CancelToken;
use crate::core::executor::{self, Event, Observer, Progress};

type Queue<T, E> = Rc<RefCell<VecDeque<ItemResult<T, E>>>>;

/// The results of one call in completion order: a [`futures::Stream`] of [`ItemResult`]s,
/// one per item. Made by [`BatchProcessor::stream`](super::BatchProcessor::stream) and
/// [`BatchProcessor::run_stream`](super::BatchProcessor::run_stream).
///
/// The call runs while the stream is polled and ends when it is dropped: attempts in flight
/// are aborted. [`BatchStream::cancel`] instead ends it with a result for every item (those
/// not done fail as `aborted`).
#[must_use = "streams do nothing unless polled"]
pub struct BatchStream<T, E = Infallible> {
    run: Option<Pin<Box<dyn Future<Output = ()>>>>,
    results: Queue<T, E>,
    cancel: CancelToken,
    /// The processor's cancel tokens: any of them cancels this call.
    parents: Vec<CancelToken>,
    _links: Vec<SignalLink>,
    remaining: usize,
}

impl<T, E> BatchStream<T, E> {
    /// A stream of `total` results that `run` puts into `results`.
    pub(super) fn new(
        run: Pin<Box<dyn Future<Output = ()>>>,
        results: Queue<T, E>,
        cancel: CancelToken,
        parents: Vec<CancelToken>,
        links: Vec<SignalLink>,
        total: usize,
    ) -> Self {
        BatchStream {
            run: Some(run),
            results,
            cancel,
            parents,
            _links: links,
            remaining: total,
        }
    }

    /// Cancels the rest of the call: attempts in flight abort, and every item not done yet
    /// comes out failed as `aborted`.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    fn next_result(&mut self) -> Option<ItemResult<T, E>> {
        let next = self.results.borrow_mut().pop_front();
        if next.is_some() {
            self.remaining = self.remaining.saturating_sub(1);
        }
        next
    }
}

impl<T, E> Stream for BatchStream<T, E> {
    type Item = ItemResult<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(result) = this.next_result() {
            return Poll::Ready(Some(result));
        }
        let Some(run) = this.run.as_mut() else {
            return Poll::Ready(None);
        };
        // A cancelled processor token wakes this task; the call's own token tells the executor.
        if this.parents.iter().any(|p| p.poll_cancelled(cx).is_ready()) {
            this.cancel.cancel();
        }
        if run.as_mut().poll(cx).is_ready() {
            this.run = None;
        }
        match this.next_result() {
            Some(result) => Poll::Ready(Some(result)),
            None if this.run.is_none() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

/// The executor's observer for one call: the caller's callbacks, and each result converted
/// (`convert`) into the queue of the stream.
pub(super) struct Sink<T, E, C> {
    pub(super) results: Queue<T, E>,
    pub(super) convert: C,
    pub(super) on_progress: Option<OnProgress>,
    pub(super) on_event: Option<OnEvent>,
}

impl<V, T, E, C> Observer<V> for Sink<T, E, C>
where
    C: FnMut(&executor::ItemResult<V>) -> ItemResult<T, E>,
{
    fn event(&mut self, event: &Event) {
        if let Some(f) = &self.on_event {
            f(event);
        }
    }

    fn progress(&mut self, progress: &Progress) {
        if let Some(f) = &self.on_progress {
            f(progress);
        }
    }

    fn result(&mut self, result: &executor::ItemResult<V>) {
        let converted = (self.convert)(result);
        self.results.borrow_mut().push_back(converted);
    }
}
