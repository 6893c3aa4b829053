//! The pure core: no JS, no `std::time::Instant`. Everything here runs natively on a
//! [`clock::VirtualClock`] in tests and on JS timers in wasm.

pub mod adaptive;
pub mod backoff;
mod batch;
pub mod budget;
pub mod cache_groups;
pub mod cancel;
pub mod clock;
pub mod cost;
pub mod executor;
pub mod limits;
pub mod observation;
pub mod pacer;
pub mod pacing;
pub mod permit_source;
mod permit_wait;
pub mod permits;
pub mod post;
pub mod queue;
pub mod report;
pub mod retry;
pub mod rng;
mod stop;
mod timeouts;
