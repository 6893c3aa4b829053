//! One attempt's life inside a batch: it starts (counted against the budget, raced against
//! its timeout), and it ends (the pacer and the permit source learn how; the retry rule
//! decides whether the item waits and tries again, here or on another alternative, or ends).

use std::future::Future;
use std::time::Duration;

use futures::future::abortable;

use super::{Batch, Phase};
use crate::core::clock::Clock;
use crate::core::limits::Cost;
use crate::core::observation::{Observation, Observed};
use crate::core::pacing::Pacing;
use crate::core::permit_source::Outcome;
use crate::core::report::{Event, Observer};
use crate::core::retry::{Action, AttemptState};
use crate::core::stop::deferred;
use crate::error::{ErrorKind, Failure};

impl<V, C, F, Fut, P, O> Batch<'_, V, C, F, P, O>
where
    V: 'static,
    C: Clock + ?Sized,
    F: Fn(usize, u32, usize) -> Fut,
    Fut: Future<Output = Result<V, Failure>> + 'static,
    P: Pacing<V> + ?Sized,
    O: Observer<V> + ?Sized,
{
    pub(super) fn start_attempt(&mut self, index: usize) {
        let now = self.clock.now();
        self.budget.take();
        let state = &mut self.items[index];
        state.attempts += 1;
        let attempt = state.attempts;
        state.first_start.get_or_insert(now);
        state.phase = Phase::Running {
            attempt,
            started: now,
        };
        self.observer.event(&Event::Start {
            index,
            attempt,
            at: self.since_start(now),
        });
        let work = (self.task)(index, attempt, self.items[index].route);
        if self.budget.is_spent() {
            self.close_waiting();
        }
        let Some(after) = self.config.timeout else {
            self.running
                .push(Box::pin(async move { (index, work.await) }));
            return;
        };
        let (work, handle) = abortable(work);
        self.timeouts.push(now + after, index, attempt, handle);
        self.running.push(Box::pin(async move {
            let outcome = match work.await {
                Ok(outcome) => outcome,
                Err(_aborted) => Err(Failure::timeout(after)),
            };
            (index, outcome)
        }));
    }

    pub(super) fn finish_attempt(&mut self, index: usize, outcome: Result<V, Failure>) {
        let now = self.clock.now();
        let Phase::Running { attempt, started } = self.items[index].phase else {
            unreachable!("only running items finish attempts")
        };
        // A cache group's primer: a success began its response; a failure hands over.
        if let Some(groups) = self.groups.as_mut() {
            groups.ended(index, outcome.is_ok(), &mut self.ready);
        }
        let (kind, status) = match &outcome {
            Ok(_) => (None, None),
            Err(f) => (Some(f.kind()), f.status),
        };
        // What the attempt cost, against the cap: a success's reply says; a timed-out attempt
        // may have been billed for what it generated, so it costs its estimate; other failures
        // (error replies, no reply) cost nothing.
        let cost = match &outcome {
            Ok(value) => self.pacing.spend(value),
            Err(_) if kind == Some(ErrorKind::Timeout) => self.items[index].held,
            Err(_) => 0,
        };
        self.settle_cost(index, cost);
        self.observer.event(&Event::End {
            index,
            attempt,
            at: self.since_start(now),
            latency: now.saturating_sub(started),
            outcome: kind,
            status,
        });
        let state = &self.items[index];
        let observation = |outcome| Observation {
            cost: state.cost.as_ref().unwrap_or(&Cost::NONE),
            ticket: &state.ticket,
            started,
            ended: now,
            in_flight_at_start: state.in_flight_at_start,
            outcome,
        };
        let failure = match outcome {
            Ok(value) => {
                let feedback = self.pacing.feedback(&value);
                let seen = observation(Observed::Success(&feedback));
                self.pacers[state.route].borrow_mut().observe(&seen);
                let held = self.items[index].permit.take();
                self.permits.release(held, Outcome::Success(&feedback));
                return self.finalize(index, Ok(value));
            }
            Err(failure) => failure,
        };
        let attempt_state = AttemptState {
            attempt: attempt - state.sheds,
            now,
            deadline: self.deadline_at,
            previous_delay: state.last_delay,
            budget_spent: self.budget.is_spent(),
            route: state.route,
        };
        let decision = self.policy.decide(&failure, &attempt_state, self.rng);
        let seen = observation(Observed::Failure {
            failure: &failure,
            class: decision.class,
            pause: decision.pause,
        });
        let ours = self.pacers[state.route].borrow_mut().observe(&seen);
        let wait = decision.pause;
        let held = self.items[index].permit.take();
        let outcome = Outcome::Failure {
            failure: &failure,
            wait,
        };
        self.permits.release(held, outcome);
        let state = &mut self.items[index];
        let delay = match decision.action {
            _ if ours
                && self
                    .policy
                    .requeues_shed(&decision.action, &attempt_state, state.sheds) =>
            {
                state.sheds += 1;
                Duration::ZERO
            }
            Action::Retry(delay) => {
                state.last_delay = Some(delay);
                delay
            }
            Action::Move { to, delay } => {
                let from = state.route;
                self.moved(index, from, to, delay);
                delay
            }
            Action::Fail(refusal) => {
                let error = refusal.error(failure, &self.budget);
                return self.finalize(index, Err(error));
            }
        };
        if let Some((left, why)) = self.permits.deferral(now) {
            return self.finalize(index, Err(deferred(left, why, Some(failure))));
        }
        self.retries += 1;
        let state = &mut self.items[index];
        state.last_failure = Some(failure);
        state.phase = Phase::Waiting;
        // A move was told as its own event (`Event::Fallback`).
        if !matches!(decision.action, Action::Move { .. }) {
            self.observer.event(&Event::Backoff {
                index,
                attempt,
                at: self.since_start(now),
                delay,
            });
        }
        if delay.is_zero() {
            self.items[index].phase = Phase::Queued;
            self.ready.push_retry(index);
        } else {
            let sleep = self.clock.sleep(delay);
            self.waiting.push(Box::pin(async move {
                sleep.await;
                (index, None)
            }));
        }
    }
}
