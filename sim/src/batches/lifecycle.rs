//! One batch's life, read at any time: when each item finishes and how, and whether a cancel
//! or the end of the completion window cut it short. All of it follows from the times fixed
//! at creation and the time asked about, so a batch needs no timer.

use crate::api::Api;
use crate::error::ApiError;
use crate::reply::mix;

/// A successful item's reply (the parts of [`crate::reply::Success`] that do not depend on
/// when it is read).
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The request's model.
    pub model: String,
    /// The text a realtime call gets for the same request.
    pub text: String,
    /// Whether `max_tokens` cut it.
    pub truncated: bool,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// The prompt cache's part (`cache_control` requests; see `anthropic.rs`).
    pub cache: Option<crate::cache::Usage>,
}

/// How an item ends when it is processed.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The reply.
    Succeeded(Reply),
    /// The error it met (invalid params, or the configured share of failures).
    Errored(ApiError),
}

/// One request of a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The caller's id for it.
    pub custom_id: String,
    /// When it is processed, in the sim's ms.
    pub done_ms: f64,
    /// What it ends as once processed.
    pub outcome: Outcome,
}

/// An item as seen at some time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not processed yet.
    Processing,
    /// Processed: its outcome stands.
    Done,
    /// Cancelled before it was processed.
    Canceled,
    /// The window ended before it was processed.
    Expired,
}

/// One batch of either API.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `msgbatch_…` / `batch_…`.
    pub id: String,
    /// Whose batch.
    pub api: Api,
    /// Made at, in the sim's ms.
    pub created_ms: f64,
    /// The end of its completion window.
    pub expires_ms: f64,
    /// How long cancelling takes, and OpenAI's validating and finalizing.
    pub step_ms: f64,
    /// When a cancel was asked for.
    pub cancel_ms: Option<f64>,
    /// The requests, in input order.
    pub items: Vec<Item>,
    /// Deleted (Anthropic): no longer listed or found.
    pub deleted: bool,
    /// OpenAI: the input file.
    pub input_file_id: String,
    /// OpenAI: the validation errors' JSON (`errors.data`) of a batch that failed.
    pub errors: Option<String>,
    /// OpenAI: the output and error files, once written.
    pub files: Option<(Option<String>, Option<String>)>,
}

/// Where a batch's life is at some time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// OpenAI: reading the input file (`step_ms` after creation).
    Validating,
    /// OpenAI: the input file was wrong; nothing runs.
    Failed,
    /// Items are being processed.
    InProgress,
    /// OpenAI: every item processed, the files being written.
    Finalizing,
    /// A cancel was asked for; items still running finish or are cancelled.
    Canceling,
    /// Over: every item has its outcome, or was cancelled or expired.
    Ended,
}

impl Item {
    /// An item processed `delay + u * spread` after `created_ms` (u from the seed and its
    /// place, so it does not depend on other calls), failing with chance `error_rate`.
    pub fn new(
        custom_id: String,
        outcome: Outcome,
        key: u64,
        created_ms: f64,
        s: &super::Settings,
    ) -> Item {
        let u = |salt: u64| (mix(key ^ salt) >> 11) as f64 / (1u64 << 53) as f64;
        let outcome = match outcome {
            Outcome::Succeeded(_) if u(0x5EED) < s.error_rate => Outcome::Errored(ApiError::new(
                crate::error::ErrorKind::Internal,
                "Internal server error".into(),
            )),
            o => o,
        };
        Item {
            custom_id,
            done_ms: created_ms + s.delay_ms + u(0x7173) * s.spread_ms,
            outcome,
        }
    }
}

impl Batch {
    /// A batch of `api` made at `now`: its window and its steps (a quarter of the processing
    /// delay: cancelling, OpenAI's validating and finalizing) from `s`; no file, no errors.
    pub fn new(id: String, api: Api, now: f64, s: &super::Settings, items: Vec<Item>) -> Self {
        Batch {
            id,
            api,
            created_ms: now,
            expires_ms: now + s.window_ms,
            step_ms: (s.delay_ms / 4.0).max(1.0),
            cancel_ms: None,
            items,
            deleted: false,
            input_file_id: String::new(),
            errors: None,
            files: None,
        }
    }

    /// When the last item is processed (creation, for none).
    pub fn last_done_ms(&self) -> f64 {
        self.items
            .iter()
            .map(|i| i.done_ms)
            .fold(self.created_ms, f64::max)
    }

    /// What cut the batch short, and when: a cancel asked before the last item, or the end
    /// of the window before it, whichever came first. Items processed by then keep their
    /// outcome; the rest are cancelled or expired.
    pub fn cut(&self) -> Option<(f64, State)> {
        let last = self.last_done_ms();
        match self.cancel_ms {
            Some(c) if c < last && c < self.expires_ms => Some((c, State::Canceled)),
            _ if self.expires_ms < last => Some((self.expires_ms, State::Expired)),
            _ => None,
        }
    }

    /// When the batch ends: a cancel takes `step_ms`; OpenAI finalizes for `step_ms`.
    pub fn ended_ms(&self) -> f64 {
        match self.cut() {
            Some((c, State::Canceled)) => c + self.step_ms,
            Some((e, _)) => e,
            None if self.errors.is_some() => self.created_ms + self.step_ms,
            None if self.api == Api::OpenAi => self.last_done_ms() + self.step_ms,
            None => self.last_done_ms(),
        }
    }

    /// The phase at `now_ms`.
    pub fn phase(&self, now_ms: f64) -> Phase {
        let openai = self.api == Api::OpenAi;
        // (A cancel while validating shows at once, as `cancelling`.)
        if openai && now_ms < self.created_ms + self.step_ms && self.cancel_ms.is_none() {
            return Phase::Validating;
        }
        if self.errors.is_some() {
            return Phase::Failed;
        }
        if now_ms >= self.ended_ms() {
            return Phase::Ended;
        }
        match self.cut() {
            Some((c, State::Canceled)) if now_ms >= c => Phase::Canceling,
            _ if openai && now_ms >= self.last_done_ms() => Phase::Finalizing,
            _ => Phase::InProgress,
        }
    }

    /// Item `i`'s state at `now_ms`.
    pub fn state(&self, item: &Item, now_ms: f64) -> State {
        let cut = self.cut();
        let kept = cut.is_none_or(|(at, _)| item.done_ms <= at);
        if kept && item.done_ms <= now_ms {
            return State::Done;
        }
        match cut {
            Some((_, how)) if !kept && now_ms >= self.ended_ms() => how,
            _ => State::Processing,
        }
    }

    /// At `now_ms`: processing, succeeded, errored, canceled, expired.
    pub fn counts(&self, now_ms: f64) -> [u64; 5] {
        let mut n = [0; 5];
        for item in &self.items {
            let at = match (self.state(item, now_ms), &item.outcome) {
                (State::Processing, _) => 0,
                (State::Done, Outcome::Succeeded(_)) => 1,
                (State::Done, Outcome::Errored(_)) => 2,
                (State::Canceled, _) => 3,
                (State::Expired, _) => 4,
            };
            n[at] += 1;
        }
        n
    }
}
