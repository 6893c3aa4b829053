//! What a batch is configured with and what it reports: its config, one result per item,
//! attempt events for timelines, progress counts, and the observer that receives them.

use std::time::Duration;

use super::backoff::Backoff;
use crate::error::{ErrorKind, ItemError};

/// How a batch runs. Built from validated options; see `options/mod.rs` for the JS names.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Attempts in flight at once, at most.
    pub concurrency: usize,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Per-attempt timeout, counted from the attempt's start (never from when it was queued).
    pub timeout: Option<Duration>,
    /// Whole-batch deadline, counted from the batch's start.
    pub deadline: Option<Duration>,
    /// Delay between attempts when the server does not say.
    pub backoff: Backoff,
    /// Cap on a server's Retry-After.
    pub max_retry_after: Duration,
    /// Attempts the whole batch may start, retries included (`None`: unlimited).
    pub max_attempts: Option<u64>,
    /// Dollars the whole batch may spend, in pico-dollars (`None`: unlimited; see
    /// [`crate::core::cost::CostCap`]).
    pub max_cost: Option<u64>,
    /// `cacheAware`: items of one prompt-cache group wait for their primer's response to
    /// begin (when the caller gives groups: `Executor::cache_groups`).
    pub cache_aware: bool,
}

// `Default for Config` is in `crate::options`: the defaults are the declared options'.

/// The one result of one item.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemResult<V> {
    /// Position of the item in the input.
    pub index: usize,
    /// The task's value, or the final error.
    pub outcome: Result<V, ItemError>,
    /// Attempts started (0 when the item never started).
    pub attempts: u32,
    /// From the item's first start to its outcome.
    pub elapsed: Duration,
}

/// What happened to one attempt: the data a timeline picture needs. `at` counts from the
/// batch's start.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// An attempt was handed to the task.
    Start {
        /// Item index.
        index: usize,
        /// Attempt number, from 1.
        attempt: u32,
        /// When.
        at: Duration,
    },
    /// An attempt finished, failed, timed out or was stopped.
    End {
        /// Item index.
        index: usize,
        /// Attempt number, from 1.
        attempt: u32,
        /// When.
        at: Duration,
        /// How long the attempt ran.
        latency: Duration,
        /// `None` for success, else the failure's kind.
        outcome: Option<ErrorKind>,
        /// HTTP status, if the failure had one.
        status: Option<u16>,
    },
    /// The item will wait `delay` before its next attempt; it holds no slot meanwhile.
    Backoff {
        /// Item index.
        index: usize,
        /// The attempt that failed.
        attempt: u32,
        /// When.
        at: Duration,
        /// How long it waits.
        delay: Duration,
    },
    /// The item goes to another alternative (a fallback, see `retry::Fallbacks`): after its
    /// failed attempt (then in place of [`Event::Backoff`]: the move uses a retry), or when
    /// its own alternative will not take it soon.
    Fallback {
        /// Item index.
        index: usize,
        /// Its attempts so far (0: it had made none).
        attempt: u32,
        /// When.
        at: Duration,
        /// The alternative it leaves (0: the first choice).
        from: usize,
        /// The alternative it goes to.
        to: usize,
        /// How long it waits first.
        delay: Duration,
    },
    /// The item's value went into post-processing (after its call succeeded).
    ProcessStart {
        /// Item index.
        index: usize,
        /// The attempt whose value is processed.
        attempt: u32,
        /// When.
        at: Duration,
    },
    /// The item's post-processing finished, failed or was stopped.
    ProcessEnd {
        /// Item index.
        index: usize,
        /// The attempt whose value was processed.
        attempt: u32,
        /// When.
        at: Duration,
        /// How long it took.
        latency: Duration,
        /// `None` for success, else `process`, `deadline` or `aborted`.
        outcome: Option<ErrorKind>,
    },
}

/// Counts for a progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Items in the batch.
    pub total: usize,
    /// Items with a result.
    pub done: usize,
    /// Results that succeeded.
    pub ok: usize,
    /// Results that failed.
    pub failed: usize,
    /// Attempts running now.
    pub in_flight: usize,
    /// Items ready to start, waiting for a slot.
    pub queued: usize,
    /// Items waiting out a backoff, or for a permit (`Executor::permits`).
    pub waiting: usize,
    /// Retries scheduled so far.
    pub retries: u64,
    /// Items sent to another alternative so far (`Event::Fallback`s).
    pub fallbacks: u64,
    /// Items whose call succeeded, in post-processing or waiting for it (not yet `done`).
    pub processing: usize,
    /// Attempts allowed in flight now (adaptive concurrency moves it).
    pub limit: usize,
    /// Why `limit` is what it is: "configured", "overload", "shedding", "probe" or "held"
    /// (see [`crate::core::adaptive::Reason`]).
    pub limit_reason: &'static str,
    /// Since the batch's start.
    pub elapsed: Duration,
}

/// Receives what happens during a batch. Every method has an empty default.
pub trait Observer<V> {
    /// An attempt event.
    fn event(&mut self, _event: &Event) {}
    /// New counts, after every change.
    fn progress(&mut self, _progress: &Progress) {}
    /// An item's final result, in completion order.
    fn result(&mut self, _result: &ItemResult<V>) {}
}

impl<V> Observer<V> for () {}
