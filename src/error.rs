//! The error kinds users see, and the failure a single attempt reports.

use std::fmt;
use std::time::Duration;

/// What went wrong with an item, as reported in its result's `error.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// An attempt ran past `timeoutMs` and was aborted (and no retry was left).
    Timeout,
    /// The server answered with a non-2xx status.
    Http,
    /// The request never got an answer: DNS, connection reset, refused, CORS.
    Network,
    /// The caller cancelled the batch through its AbortSignal.
    Aborted,
    /// The batch deadline passed, or a needed wait would have passed it.
    Deadline,
    /// The item itself is malformed; retrying cannot help.
    Invalid,
    /// The caller's task function threw something that is not an HTTP or network error.
    Task,
    /// The call's attempt budget (`maxAttempts`) was used up before the item could start.
    Budget,
    /// The post-processing stage (`postProcess`) failed: the export threw, its value could
    /// not be cloned, or its worker died. The call itself succeeded; it is not retried.
    Process,
    /// The call's permit source (`permits`, a shared rate limiter) asked to start nothing more
    /// for a while: the item was not (or not again) attempted; retry after `retryAfterMs`.
    Deferred,
    /// The call's `maxCostUsd` would be passed: the item was not (or not again) attempted.
    CostCap,
}

impl ErrorKind {
    /// The lower-case name used in JS results and events.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Http => "http",
            ErrorKind::Network => "network",
            ErrorKind::Aborted => "aborted",
            ErrorKind::Deadline => "deadline",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Task => "task",
            ErrorKind::Budget => "budget",
            ErrorKind::Process => "process",
            ErrorKind::Deferred => "deferred",
            ErrorKind::CostCap => "cost_cap",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed attempt, as the task (or the platform edge) describes it. The edge reads the
/// reply's headers once (`providers::headers`) into the typed fields below.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Failure {
    /// What kind of failure this is (`None` is read as [`ErrorKind::Task`]).
    pub kind: Option<ErrorKind>,
    /// HTTP status, when there was a reply.
    pub status: Option<u16>,
    /// The API's error type, e.g. `rate_limit_error` or `overloaded_error`.
    pub error_type: Option<String>,
    /// Human-readable message. Never contains request headers (keys live there).
    pub message: String,
    /// The reply says the account's spend/quota cap is reached: waiting will not help.
    pub spend_cap: bool,
    /// An explicit verdict from the task (`error.retryable` in JS) that wins over the table.
    pub retryable: Option<bool>,
    /// The wait the server asked for (`retry-after-ms`, else `retry-after`), as read when
    /// the reply arrived; the core caps it (`maxRetryAfterMs`).
    pub server_wait: Option<Duration>,
    /// The server's explicit verdict (`x-should-retry`), which beats the status table.
    pub should_retry: Option<bool>,
    /// The reply's rate-limit headers, when it had any.
    pub limits: Option<Box<crate::core::limits::RateLimits>>,
}

impl Failure {
    /// A failure of the given kind with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure::of(kind, None, message.into())
    }

    /// A non-2xx reply.
    pub fn http(status: u16, message: impl Into<String>) -> Self {
        Failure::of(ErrorKind::Http, Some(status), message.into())
    }

    /// [`Failure::new`] and [`Failure::http`]'s body, compiled once rather than once per
    /// message type (the struct is large: each copy writes every field).
    fn of(kind: ErrorKind, status: Option<u16>, message: String) -> Self {
        Failure {
            kind: Some(kind),
            status,
            message,
            ..Failure::default()
        }
    }

    /// A request that never got an answer.
    pub fn network(message: impl Into<String>) -> Self {
        Failure::new(ErrorKind::Network, message)
    }

    /// An attempt that ran out of time.
    pub fn timeout(after: Duration) -> Self {
        Failure::new(
            ErrorKind::Timeout,
            format!("attempt timed out after {} ms", after.as_millis() as u64),
        )
    }

    /// The kind, with a missing kind read as a task error.
    pub fn kind(&self) -> ErrorKind {
        self.kind.unwrap_or(ErrorKind::Task)
    }
}

/// The final error of an item, as its result reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// HTTP status of the last reply, if any.
    pub status: Option<u16>,
    /// The API's error type of the last reply, if any.
    pub error_type: Option<String>,
    /// Human-readable message.
    pub message: String,
    /// Whether the last failure was of a retryable kind (retries ran out, or the deadline hit).
    pub retryable: bool,
    /// The wait the server (or the backoff) asked for, when the deadline made it impossible.
    pub retry_after_ms: Option<u64>,
    /// Set when the call's attempt budget refused the item, so that a host can say so in its
    /// own words (the Worker speaks of subrequests) without reading the message.
    pub budget: Option<BudgetRefusal>,
}

/// The attempt budget refused an item: it never started, or its retry was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetRefusal {
    /// The budget: attempts the call may start in all.
    pub max: u64,
    /// A refused retry: where its last attempt's own message starts in the error's message
    /// (after `; last error: `; the text before it is ASCII, so the byte offset is the JS
    /// string index too). `None`: the item never started.
    pub last_error_at: Option<u32>,
}

impl ItemError {
    /// The final error made from an attempt's failure.
    pub fn from_failure(failure: Failure, retryable: bool) -> Self {
        ItemError {
            kind: failure.kind(),
            status: failure.status,
            error_type: failure.error_type,
            message: failure.message,
            retryable,
            retry_after_ms: None,
            budget: None,
        }
    }

    /// The message `head; last error: <message>`: why the item failed, then what its last
    /// attempt said. Returns where the last attempt's words start.
    pub fn after_head(&mut self, head: String) -> usize {
        let mut message = head;
        message.push_str("; last error: ");
        let at = message.len();
        message.push_str(&self.message);
        self.message = message;
        at
    }

    /// An error of the given kind with nothing else known.
    pub fn bare(kind: ErrorKind, message: impl Into<String>) -> Self {
        ItemError {
            kind,
            status: None,
            error_type: None,
            message: message.into(),
            retryable: false,
            retry_after_ms: None,
            budget: None,
        }
    }
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}
