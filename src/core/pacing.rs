//! What the pacer needs to know about a batch's items, asked by the batch
//! (`batch/mod.rs`) and handed in by whoever runs the executor: its own module, so the
//! executor and the batch both depend on it and not on each other.

use super::cost::Pico;
use super::limits::{Cost, Feedback};

/// What the pacer needs to know about a batch's items: what each costs, and what a
/// successful value reports (usage, rate-limit headers). `()` is "costs nothing, says
/// nothing"; a pair of closures `(cost, feedback)` is a quick implementation.
pub trait Pacing<V> {
    /// The expected cost of item `index`, asked once before its first attempt; an `Err`
    /// (the item cannot be read, or can never be sent) fails it at once as `invalid`, with
    /// no attempt made.
    fn cost(&self, _index: usize) -> Result<Cost, String> {
        Ok(Cost::default())
    }

    /// What a success reports.
    fn feedback(&self, _value: &V) -> Feedback {
        Feedback::default()
    }

    /// The most an attempt of item `index` on alternative `route` is expected to cost, in
    /// pico-dollars (`maxCostUsd`), given its expected `cost`; `0` when no price is known.
    fn max_spend(&self, _index: usize, _cost: &Cost, _route: usize) -> Pico {
        0
    }

    /// What a successful value cost, in pico-dollars (`0` when not known).
    fn spend(&self, _value: &V) -> Pico {
        0
    }
}

impl<V> Pacing<V> for () {}

impl<V, C, F> Pacing<V> for (C, F)
where
    C: Fn(usize) -> Result<Cost, String>,
    F: Fn(&V) -> Feedback,
{
    fn cost(&self, index: usize) -> Result<Cost, String> {
        (self.0)(index)
    }

    fn feedback(&self, value: &V) -> Feedback {
        (self.1)(value)
    }
}
