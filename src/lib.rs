//! # edgebatch
//!
//! Run N calls to an AI API (or any `fetch`) from a JavaScript host and get N results back:
//! bounded concurrency, retries with exponential backoff and jitter, per-attempt timeouts that
//! really abort the request, a whole-batch deadline, cancellation, progress and attempt events.
//!
//! The crate is one pure core ([`core`]: executor, retry rule, delay math, pacing, all on a
//! [`Clock`] trait), pure provider code ([`providers`]: requests, replies, headers parsed once
//! into typed values) and thin wasm edges (`web`: JS timers, `fetch`, AbortController; `bindings`: the
//! `BatchProcessor` class JS sees). The core runs natively on a virtual clock:
//!
//! ```
//! use edgebatch::core::{clock::VirtualClock, pacer::Pacer};
//! use edgebatch::core::executor::{Config, Executor};
//! use edgebatch::{Clock, ErrorKind, Failure};
//! use std::time::Duration;
//!
//! let clock = VirtualClock::new();
//! let c = clock.clone();
//! // Item 1 is rate limited on its first attempt; the server asks for a 2 s wait.
//! let task = move |index: usize, attempt: u32| {
//!     let sleep = c.sleep(Duration::from_millis(100));
//!     async move {
//!         sleep.await;
//!         if index == 1 && attempt == 1 {
//!             let wait = Some(Duration::from_secs(2)); // the edge reads it from `retry-after`
//!             return Err(Failure { server_wait: wait, ..Failure::http(429, "slow down") });
//!         }
//!         Ok(format!("summary {index}"))
//!     }
//! };
//! let config = Config::default();
//! let pacer = Pacer::unpaced(config.concurrency);
//! let executor = Executor::new(&config, &clock, &pacer).seed(1);
//! let results = clock.block_on(executor.run(3, task, &(), &mut ()));
//! assert!(results.iter().all(|r| r.outcome.is_ok()));
//! assert_eq!(results[1].attempts, 2);
//! assert_eq!(clock.now(), Duration::from_millis(2200));
//! # let _ = ErrorKind::Http;
//! ```
//!
//! Rust programs that run in a JS host (a workers-rs Worker, a Leptos/Yew/Dioxus page) use
//! the same executor through the Rust API, `edgebatch::wasm` (wasm32, cargo feature `rust-api`):
//! `BatchProcessor::builder()...build()?`, then `map(items, |item, ctx| async move { .. })`,
//! `stream(..)` or `run(requests)`.
//!
//! The simulated Anthropic / OpenAI API the demo, the tests and the benchmarks use as an
//! upstream is its own crate (`sim/`, `edgebatch-sim`) with its own wasm: not in this one.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod core;
pub mod error;
pub mod options;
pub mod providers;
pub mod redact;
pub mod text;

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(all(target_arch = "wasm32", feature = "rust-api"))]
#[cfg_attr(docsrs, doc(cfg(all(target_arch = "wasm32", feature = "rust-api"))))]
pub mod wasm;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use crate::core::clock::Clock;
pub use crate::error::{ErrorKind, Failure, ItemError};
