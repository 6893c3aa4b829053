//! The post-processing stage: CPU work on a call's successful values, after the call and
//! outside its attempt. The executor hands each success over as it completes (through
//! [`PostStage::feed`]); the stage runs at most `bound` of them at once, keeps every result
//! until the item is really done, and reports progress with the items in the stage counted
//! as `processing` (not yet `done`).
//!
//! Why a stage of its own rather than part of the task: the attempt timeout must not count
//! CPU time, a retry of the call must not run the processing again, and CPU work has its own
//! bound (threads), not the API's concurrency. The deadline and the caller's cancellation
//! still stop it: the processing futures in flight are dropped, which on the JS hosts
//! terminates the worker running them (or stops an inline job at its next slice), and each
//! such item fails as `deadline` / `aborted`, saying it was post-processing.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};

use super::cancel::CancelToken;
use super::clock::{Clock, Sleep};
use super::report::{Event, ItemResult, Observer, Progress};
use crate::error::{ErrorKind, Failure, ItemError};

/// One value's processing: it settles with the item's index and the processed value, or
/// why processing failed. Dropping it must stop the processing.
pub type Processing<V> = Pin<Box<dyn Future<Output = (usize, Result<V, Failure>)>>>;

/// The call's executor, observed by the stage's [`Feed`].
pub type Calls<'a, V> = Pin<Box<dyn Future<Output = Vec<ItemResult<V>>> + 'a>>;

/// What a call's result said besides its value: attempts made, time taken.
#[derive(Clone, Copy)]
struct Call {
    attempts: u32,
    elapsed: Duration,
}

/// What the executor has handed over and the stage has not finished.
struct Shared<V> {
    /// Successful calls waiting for a processing slot.
    inbox: VecDeque<(usize, V, Call)>,
    /// Items handed over and not yet finished (queued or processing).
    in_stage: usize,
    /// The executor's latest counts, before the stage's adjustment.
    last: Progress,
}

/// The batch a stage runs inside, as the executor runs it: the stage stops where the calls
/// stop (the deadline, the cancel token) and its events count from the same start.
#[derive(Clone, Copy)]
pub struct BatchScope<'a> {
    /// The clock the batch runs on.
    pub clock: &'a dyn Clock,
    /// When the batch started on `clock` (events are timed from it).
    pub start: Duration,
    /// The batch's deadline on `clock`, if it has one.
    pub deadline_at: Option<Duration>,
    /// The caller's cancellation of the batch.
    pub cancel: &'a CancelToken,
}

/// A post-processing stage for one call. Not `Clone`: one per call.
pub struct PostStage<V> {
    shared: Rc<RefCell<Shared<V>>>,
    total: usize,
    bound: usize,
}

/// The executor's observer while a stage is on: successes go into the stage, everything
/// else goes on to the caller's observer, with progress counting the stage.
pub struct Feed<'a, 'o, V> {
    shared: Rc<RefCell<Shared<V>>>,
    downstream: &'a RefCell<&'o mut dyn Observer<V>>,
}

impl<V: Clone + 'static> PostStage<V> {
    /// A stage for `total` items that processes at most `bound` values at once (at least 1).
    #[must_use]
    pub fn new(total: usize, bound: usize) -> Self {
        PostStage {
            shared: Rc::new(RefCell::new(Shared {
                inbox: VecDeque::new(),
                in_stage: 0,
                last: Progress {
                    total,
                    ..Progress::default()
                },
            })),
            total,
            bound: bound.max(1),
        }
    }

    /// The observer to give the executor; `downstream` is the caller's.
    #[must_use]
    pub fn feed<'a, 'o>(
        &self,
        downstream: &'a RefCell<&'o mut dyn Observer<V>>,
    ) -> Feed<'a, 'o, V> {
        Feed {
            shared: self.shared.clone(),
            downstream,
        }
    }

    /// Runs `calls` (the executor, observed by this stage's [`Feed`]) and the stage side by
    /// side inside `batch` (its clock, start, deadline and cancel token); `process(index,
    /// value)` starts one item's post-processing. Returns one result per item, in input
    /// order. Not generic beyond `V` (boxed futures, `dyn` clock): the stage is compiled once
    /// into the wasm.
    pub async fn run(
        self,
        calls: Calls<'_, V>,
        process: &dyn Fn(usize, V) -> Processing<V>,
        batch: BatchScope<'_>,
        downstream: &RefCell<&mut dyn Observer<V>>,
    ) -> Vec<ItemResult<V>> {
        let BatchScope {
            clock,
            start,
            deadline_at,
            cancel,
        } = batch;
        let mut worker = Worker {
            shared: self.shared.clone(),
            bound: self.bound,
            calls: Some(calls),
            results: Vec::new(),
            clock,
            start,
            deadline: deadline_at.map(|at| clock.sleep(at.saturating_sub(clock.now()))),
            cancel,
            downstream,
            running: FuturesUnordered::new(),
            started: (0..self.total).map(|_| None).collect(),
            done: (0..self.total).map(|_| None).collect(),
            stopped: None,
            process,
        };
        poll_fn(|cx| worker.poll(cx)).await;
        // The calls' results, with each processed item's in place of its call's.
        let mut results = std::mem::take(&mut worker.results);
        for r in &mut results {
            if let Some(done) = worker.done[r.index].take() {
                *r = done;
            }
        }
        results
    }
}

impl<V: Clone> Observer<V> for Feed<'_, '_, V> {
    fn event(&mut self, event: &Event) {
        self.downstream.borrow_mut().event(event);
    }

    fn progress(&mut self, progress: &Progress) {
        self.shared.borrow_mut().last = *progress;
        let adjusted = adjusted(&self.shared.borrow());
        self.downstream.borrow_mut().progress(&adjusted);
    }

    fn result(&mut self, result: &ItemResult<V>) {
        // The stage takes it up in the same poll (the executor runs inside the stage's).
        if let Ok(value) = &result.outcome {
            let mut st = self.shared.borrow_mut();
            let call = Call {
                attempts: result.attempts,
                elapsed: result.elapsed,
            };
            st.inbox.push_back((result.index, value.clone(), call));
            st.in_stage += 1;
            return;
        }
        self.downstream.borrow_mut().result(result);
    }
}

/// The executor's counts with the items in the stage moved from `done`/`ok` to `processing`.
fn adjusted<V>(st: &Shared<V>) -> Progress {
    let mut p = st.last;
    p.done = p.done.saturating_sub(st.in_stage);
    p.ok = p.ok.saturating_sub(st.in_stage);
    p.processing = st.in_stage;
    p
}

struct Worker<'a, 'o, V> {
    shared: Rc<RefCell<Shared<V>>>,
    bound: usize,
    /// The calls, until they are over; then their results.
    calls: Option<Calls<'a, V>>,
    results: Vec<ItemResult<V>>,
    clock: &'a dyn Clock,
    start: Duration,
    deadline: Option<Sleep>,
    cancel: &'a CancelToken,
    downstream: &'a RefCell<&'o mut dyn Observer<V>>,
    running: FuturesUnordered<Processing<V>>,
    /// By item index, while it is processing: its call, and when processing began.
    started: Vec<Option<(Call, Duration)>>,
    /// By item index: the final results of the items that went through the stage.
    done: Vec<Option<ItemResult<V>>>,
    /// Set by the deadline or a cancellation: values handed over from then on fail at once.
    stopped: Option<(ErrorKind, &'static str)>,
    process: &'a dyn Fn(usize, V) -> Processing<V>,
}

impl<V: Clone + 'static> Worker<'_, '_, V> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(calls) = self.calls.as_mut() {
                if let Poll::Ready(results) = calls.as_mut().poll(cx) {
                    self.results = results;
                    self.calls = None;
                }
            }
            if self.stopped.is_none() && self.cancel.poll_cancelled(cx).is_ready() {
                self.stopped = Some((ErrorKind::Aborted, "cancelled"));
            }
            if let Some(deadline) = self.deadline.as_mut().filter(|_| self.stopped.is_none()) {
                if deadline.as_mut().poll(cx).is_ready() {
                    self.stopped = Some((ErrorKind::Deadline, "deadline reached"));
                }
            }
            let mut progressed = false;
            if let Some((kind, what)) = self.stopped {
                // Calls still running stop on the same signal; their failures bypass the
                // stage, and a success that raced the stop fails here.
                progressed = self.stop_all(kind, what);
            } else {
                while let Poll::Ready(Some((index, outcome))) = self.running.poll_next_unpin(cx) {
                    self.finish(index, outcome);
                    progressed = true;
                }
                while self.running.len() < self.bound {
                    let Some((index, value, call)) = self.shared.borrow_mut().inbox.pop_front()
                    else {
                        break;
                    };
                    self.begin(index, value, call);
                    progressed = true;
                }
            }
            if progressed {
                self.emit_progress();
                continue;
            }
            if self.calls.is_none() && self.shared.borrow().in_stage == 0 {
                return Poll::Ready(());
            }
            return Poll::Pending;
        }
    }

    fn since_start(&self, now: Duration) -> Duration {
        now.saturating_sub(self.start)
    }

    fn begin(&mut self, index: usize, value: V, call: Call) {
        let now = self.clock.now();
        self.downstream.borrow_mut().event(&Event::ProcessStart {
            index,
            attempt: call.attempts,
            at: self.since_start(now),
        });
        self.started[index] = Some((call, now));
        self.running.push((self.process)(index, value));
    }

    fn finish(&mut self, index: usize, outcome: Result<V, Failure>) {
        let outcome = outcome.map_err(|f| {
            ItemError::bare(
                ErrorKind::Process,
                format!("post-processing failed: {}", f.message),
            )
        });
        let (call, began) = self.started[index]
            .take()
            .expect("only started items finish");
        self.end(index, (call, Some(began)), outcome);
    }

    /// The item's one result: its call's attempts; its elapsed time includes the stage.
    /// An item that never began processing (queued at a stop) has no end event.
    fn end(
        &mut self,
        index: usize,
        started: (Call, Option<Duration>),
        outcome: Result<V, ItemError>,
    ) {
        let now = self.clock.now();
        let (call, began) = started;
        if let Some(began) = began {
            self.downstream.borrow_mut().event(&Event::ProcessEnd {
                index,
                attempt: call.attempts,
                at: self.since_start(now),
                latency: now.saturating_sub(began),
                outcome: outcome.as_ref().err().map(|e| e.kind),
            });
        }
        let result = ItemResult {
            index,
            outcome,
            attempts: call.attempts,
            elapsed: call.elapsed + began.map_or(Duration::ZERO, |b| now.saturating_sub(b)),
        };
        self.downstream.borrow_mut().result(&result);
        self.shared.borrow_mut().in_stage -= 1;
        self.done[index] = Some(result);
    }

    /// Deadline or cancellation: processing in flight is dropped (terminated) and queued
    /// values are never processed; each of those items fails with `kind`.
    fn stop_all(&mut self, kind: ErrorKind, what: &str) -> bool {
        self.running.clear();
        let mut changed = false;
        for index in 0..self.started.len() {
            if let Some((call, began)) = self.started[index].take() {
                let error = ItemError::bare(kind, format!("{what} during post-processing"));
                self.end(index, (call, Some(began)), Err(error));
                changed = true;
            }
        }
        loop {
            let Some((index, _, call)) = self.shared.borrow_mut().inbox.pop_front() else {
                return changed;
            };
            let error = ItemError::bare(kind, format!("{what} before post-processing"));
            self.end(index, (call, None), Err(error));
            changed = true;
        }
    }

    fn emit_progress(&mut self) {
        let adjusted = adjusted(&self.shared.borrow());
        self.downstream.borrow_mut().progress(&adjusted);
    }
}
