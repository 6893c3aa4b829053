//! Adapting to overload: a concurrency controller that lowers the limit only on evidence that
//! our own load causes failures, and a circuit breaker for outages. Pure state machines driven
//! by attempt observations and the clock.
//!
//! Why not AIMD on every 529: halving on any failure is TCP Reno on a lossy link. When
//! failures are random (a provider's global 529 storm), sending less does not make them
//! rarer, and throughput falls like 1/sqrt(p). The [`Controller`] asks instead whether the
//! failure rate depends on how many attempts were in flight when each was sent
//! ([`levels`]), which is what a server at capacity shows, and stays at the configured
//! concurrency when it does not.

mod breaker;
mod controller;
pub mod levels;

pub use breaker::{MAX_COOLDOWN, OUTAGE};

pub use breaker::{Breaker, BreakerState, Gate};
pub use controller::{Controller, Observation, Outcome, Reason};

#[cfg(test)]
mod tests;
