//! How a batch ends items early, without another attempt: once nothing more may start (the
//! attempt budget is spent, the cost cap would be passed, or the permit source deferred the
//! batch), and when the cancel
//! token or the deadline stops everything. Each gives back the slots and reservations its
//! items held.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use super::{Batch, ItemState, Phase};
use crate::core::clock::Clock;
use crate::core::pacer::Pacer;
use crate::core::pacing::Pacing;
use crate::core::report::{Event, Observer};
use crate::core::stop::{deferred, stopped, Stopped};
use crate::error::{ErrorKind, Failure};

/// The item's slot and pacer reservation come back: its attempt was dropped, or never sent.
pub(super) fn give_back(pacer: &RefCell<Pacer>, state: &ItemState, now: Duration) {
    let cost = state.cost.unwrap_or_default();
    let level = state.in_flight_at_start;
    pacer
        .borrow_mut()
        .on_abandoned(&cost, &state.ticket, level, now);
}

impl<V, C, F, Fut, P, O> Batch<'_, V, C, F, P, O>
where
    V: 'static,
    C: Clock + ?Sized,
    F: Fn(usize, u32, usize) -> Fut,
    Fut: Future<Output = Result<V, Failure>> + 'static,
    P: Pacing<V> + ?Sized,
    O: Observer<V> + ?Sized,
{
    /// The budget is spent, the cost cap closed the batch, or the permit source deferred it:
    /// no item that is queued,
    /// waiting out a backoff or waiting for a permit can start again, so each ends now rather
    /// than after its wait. Attempts in flight run on.
    pub(super) fn close_waiting(&mut self) {
        self.waiting.clear();
        self.ready.close();
        self.gate = None;
        let now = self.clock.now();
        for index in 0..self.items.len() {
            let state = &mut self.items[index];
            match state.phase {
                Phase::Permit => give_back(self.pacers[state.route], state, now),
                Phase::Queued | Phase::Waiting => {}
                _ => continue,
            }
            let waited_for_permit = state.phase == Phase::Permit;
            let last = state.last_failure.take();
            if waited_for_permit {
                self.settle_cost(index, 0);
            }
            let error = match (self.permits.deferral(now), last) {
                (Some((left, why)), last) => deferred(left, why, last),
                (None, Some(last)) if self.cap.is_closed() => self.cap.refused(last),
                (None, None) if self.cap.is_closed() => self.cap.unstarted(),
                (None, Some(last)) => self.budget.refused(last),
                (None, None) => self.budget.unstarted(),
            };
            self.finalize(index, Err(error));
        }
    }

    /// Cancellation or deadline: every attempt in flight is dropped (which aborts it) and
    /// every unfinished item gets its result now.
    pub(super) fn stop_all(&mut self, kind: ErrorKind) {
        self.running.clear();
        self.waiting.clear();
        self.timeouts.clear();
        self.gate = None;
        let now = self.clock.now();
        for index in 0..self.items.len() {
            let state = &self.items[index];
            if matches!(state.phase, Phase::Permit | Phase::Running { .. }) {
                give_back(self.pacers[state.route], state, now);
            }
            let at = match state.phase {
                Phase::Done => continue,
                Phase::Queued | Phase::Permit if state.attempts == 0 => Stopped::BeforeStart,
                Phase::Queued | Phase::Permit | Phase::Waiting => Stopped::WaitingToRetry,
                Phase::Running { attempt, started } => {
                    self.observer.event(&Event::End {
                        index,
                        attempt,
                        at: self.since_start(now),
                        latency: now.saturating_sub(started),
                        outcome: Some(kind),
                        status: None,
                    });
                    Stopped::During(attempt)
                }
            };
            let last = self.items[index].last_failure.take();
            self.finalize(index, Err(stopped(kind, at, last)));
        }
        self.emit_progress();
    }
}
