//! What a task sees ([`AttemptContext`]), how its error reaches the retry rule
//! ([`TaskError`]), and what a call returns per item ([`ItemResult`], [`Failed`]).

use std::convert::Infallible;
use std::fmt;
use std::time::Duration;

use wasm_bindgen::JsValue;
use web_sys::AbortSignal;

use super::ServedBy;
use crate::error::{ErrorKind, Failure, ItemError};
use crate::web::task::failure_from_js;

/// What one attempt of a `map`/`stream` task is told: which item, which attempt, and the
/// signal that aborts when the attempt is stopped (timeout, deadline, cancellation).
#[derive(Clone, Debug)]
pub struct AttemptContext {
    /// The item's position in the input.
    pub index: usize,
    /// The attempt's number, from 1.
    pub attempt: u32,
    pub(super) signal: AbortSignal,
}

impl AttemptContext {
    /// Aborts when the attempt is stopped. Hand it to `fetch` (`RequestInit::set_signal`,
    /// workers-rs `RequestInit::with_signal`): dropping a Rust future does not stop a request
    /// the host is already sending; this signal does.
    pub fn signal(&self) -> &AbortSignal {
        &self.signal
    }
}

/// An error a task can end an attempt with: how the retry rule sees it.
///
/// The rule retries timeouts, network errors and HTTP 408, 409, 429, 5xx and 529 (with the
/// server's Retry-After), never other 4xx; a task's own error ([`ErrorKind::Task`]) is not
/// retried unless its [`Failure::retryable`] says so. Return a [`Failure`] for full control,
/// a `JsValue` thrown by JS (an SDK error with `status` and `headers`, a fetch `TypeError`) or
/// a `String` / `&str` (a task error).
pub trait TaskError {
    /// The attempt's failure, as the retry rule reads it.
    fn failure(&self) -> Failure;
}

impl TaskError for Failure {
    fn failure(&self) -> Failure {
        self.clone()
    }
}

/// Read as the JS `map` reads what its task throws.
impl TaskError for JsValue {
    fn failure(&self) -> Failure {
        failure_from_js(self)
    }
}

impl TaskError for String {
    fn failure(&self) -> Failure {
        Failure::new(ErrorKind::Task, self.clone())
    }
}

impl TaskError for &str {
    fn failure(&self) -> Failure {
        Failure::new(ErrorKind::Task, *self)
    }
}

impl TaskError for Infallible {
    fn failure(&self) -> Failure {
        match *self {}
    }
}

/// Why an item failed: the final error (kind, status, message, as JS results report it) and
/// the error the task returned on the item's last attempt, when it returned one.
#[derive(Clone, Debug, PartialEq)]
pub struct Failed<E = Infallible> {
    /// The final error.
    pub error: ItemError,
    /// Your task's own error from the item's last attempt; `None` when that attempt did not
    /// return one (it timed out, the call was cancelled, the deadline or the attempt budget
    /// stopped the item) or for `run`.
    pub source: Option<E>,
}

impl<E> Failed<E> {
    /// The final error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.error.kind
    }
}

impl<E> fmt::Display for Failed<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Failed<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// The one result of one item.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemResult<T, E = Infallible> {
    /// The item's position in the input.
    pub index: usize,
    /// The value of its successful attempt, or why it failed.
    pub outcome: Result<T, Failed<E>>,
    /// Attempts started (0 when the item never started).
    pub attempts: u32,
    /// From the item's first start to its outcome.
    pub elapsed: Duration,
    /// With fallbacks ([`Builder::fallback`](super::Builder::fallback)), the alternative the
    /// item's last attempt went to: for a success, who answered. `None` without fallbacks,
    /// for `map`/`stream`, and for an item that made no attempt.
    pub served_by: Option<ServedBy>,
}

impl<T, E> ItemResult<T, E> {
    /// Whether the item succeeded.
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }
}
