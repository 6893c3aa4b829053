//! Where an executor's attempts get their permits when the in-process [`Pacer`] is not the
//! only judge: a limiter shared with other processes (the Worker's limiter Durable Object,
//! which every consumer of every stored batch asks). The executor asks before each attempt,
//! once its own slot and pacer admit it, and tells the source how each granted attempt ended,
//! so one attempt path (classification, the retry rule, timeouts) serves every host.
//!
//! [`Pacer`]: super::pacer::Pacer

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::limits::Cost;
pub use super::permits::Outcome;

/// The answer to one [`Permits::acquire`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Permit {
    /// Send now; the executor releases this id exactly once, with the attempt's outcome.
    Granted(u64),
    /// This item can never be sent (larger than any budget): it fails, not retryable.
    Never(String),
    /// Nothing more should start on this alternative for `wait` (the limiter's reservation
    /// is too far out, or it could not be asked). With fallbacks, the item moves to the next
    /// alternative whose source has not deferred, and this one is not asked again in the
    /// batch; once every alternative deferred (at once, without fallbacks) the batch stops
    /// starting attempts, lets those in flight finish, and every other item ends `deferred`,
    /// retryable after what is left of the earliest `wait`.
    Defer {
        /// From the answer on.
        wait: Duration,
        /// Why, in words the item's error repeats.
        reason: String,
    },
}

/// An asynchronous permit source; see the module docs.
///
/// The executor waits for an answer holding the item's local slot, with no attempt timeout
/// running and no attempt counted. It may drop an [`acquire`](Permits::acquire) future before
/// the answer (cancellation, the deadline, a deferral, the attempt budget): the source must
/// then give back whatever that ask would have been granted, since the executor never learns
/// its id.
pub trait Permits {
    /// Asks for a permit for the next attempt of item `index`, expected to cost `cost`, on
    /// `alternative` (0: the first choice, k: the k-th of the fallbacks), so that a source
    /// shared per upstream can ask that upstream's limiter.
    fn acquire(
        &self,
        index: usize,
        alternative: usize,
        cost: &Cost,
    ) -> Pin<Box<dyn Future<Output = Permit> + '_>>;

    /// How the attempt of permit `id` ended: success with its usage and rate-limit headers,
    /// a failure as the executor classified it (a timeout included), or abandoned when the
    /// attempt was dropped without an answer (cancellation, the deadline, the batch dropped).
    fn release(&self, id: u64, outcome: Outcome<'_>);
}
