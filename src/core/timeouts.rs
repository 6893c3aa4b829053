//! Attempt timeouts: one timer for all the attempts of a batch, instead of a JS timer each.

use std::task::Context;
use std::time::Duration;

use futures::future::AbortHandle;

use super::clock::{Clock, Sleep};

/// A running attempt's timeout.
struct AttemptTimeout {
    at: Duration,
    index: usize,
    attempt: u32,
    handle: AbortHandle,
}

/// The timeouts of the attempts in flight. Every attempt gets the same timeout, so deadlines
/// grow in start order and a queue (not a heap) holds them: a `Vec` whose front is drained
/// (a `VecDeque` of its own was 0.2 KB more wasm; it holds at most the attempts in flight).
#[derive(Default)]
pub(super) struct AttemptTimeouts {
    queue: Vec<AttemptTimeout>,
    timer: Option<(Duration, Sleep)>,
}

impl AttemptTimeouts {
    /// Attempt `attempt` of item `index` is aborted through `handle` at `at`.
    pub(super) fn push(&mut self, at: Duration, index: usize, attempt: u32, handle: AbortHandle) {
        self.queue.push(AttemptTimeout {
            at,
            index,
            attempt,
            handle,
        });
    }

    /// Aborts the attempts whose time is up and keeps one timer armed for the next deadline.
    /// `live(index, attempt)` says whether that attempt still runs (a finished one's entry is
    /// dropped). An aborted attempt's future ends with a timeout when it is polled next.
    pub(super) fn expire<C: Clock + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        clock: &C,
        live: impl Fn(usize, u32) -> bool,
    ) {
        loop {
            let now = clock.now();
            // From the front: finished attempts are dropped, due ones aborted and dropped.
            let mut over = 0;
            for t in &self.queue {
                if live(t.index, t.attempt) {
                    if t.at > now {
                        break;
                    }
                    t.handle.abort();
                }
                over += 1;
            }
            self.queue.drain(..over);
            let Some(at) = self.queue.first().map(|t| t.at) else {
                self.timer = None;
                return;
            };
            if self.timer.as_ref().is_none_or(|(armed, _)| *armed > at) {
                self.timer = Some((at, clock.sleep(at - now)));
            }
            let (_, sleep) = self.timer.as_mut().expect("armed above");
            if sleep.as_mut().poll(cx).is_pending() {
                return;
            }
            self.timer = None;
        }
    }

    /// Forgets every timeout (the attempts are being dropped anyway).
    pub(super) fn clear(&mut self) {
        self.queue.clear();
        self.timer = None;
    }
}
