//! The account's limits: one [`TokenBucket`] each for requests, input tokens and output
//! tokens per minute, the admission of a request against all three, and the rate-limit
//! headers both APIs send on every reply.

use crate::api::Api;
use crate::bucket::{Fit, TokenBucket};
use crate::error::{ApiError, ErrorKind};
use crate::time::{go_duration, rfc3339_ms};
use crate::Config;

/// The three buckets; an unlimited one is `None`.
#[derive(Clone, Debug)]
pub struct Limits {
    buckets: [Option<TokenBucket>; 3],
}

const WHAT: [&str; 3] = ["requests", "input tokens", "output tokens"];

/// Why a request was turned away: the bucket that holds it back longest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 0 requests, 1 input tokens, 2 output tokens.
    pub which: usize,
    /// [`Fit::After`] the wait, or [`Fit::Never`].
    pub fit: Fit,
    /// That bucket's limit.
    pub limit: u64,
    /// What the request needed from it.
    pub need: u64,
}

impl Refusal {
    /// The 429: `retry-after-ms` (exact, rounded up) and `retry-after` (whole seconds, rounded
    /// up) for a wait; `x-should-retry: false` for a request no wait will ever fit.
    pub fn error(&self) -> (ApiError, Vec<(String, String)>) {
        let (limit, need, what) = (self.limit, self.need, WHAT[self.which]);
        let kind = ErrorKind::RateLimit {
            tokens: self.which > 0,
        };
        let (message, headers) = match self.fit {
            Fit::After(us) => (
                format!(
                    "Rate limit reached for {what} per minute: limit {limit}, requested \
                     {need}. Please try again in {}.",
                    go_duration(us.div_ceil(1000))
                ),
                [
                    ("retry-after", us.div_ceil(1_000_000)),
                    ("retry-after-ms", us.div_ceil(1000)),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_string()))
                .to_vec(),
            ),
            _ => (
                format!(
                    "Request too large: {need} {what} exceed the limit of {limit} {what} per \
                     minute. Reduce the request to run it."
                ),
                vec![("x-should-retry".to_owned(), "false".to_owned())],
            ),
        };
        (ApiError::new(kind, message), headers)
    }
}

impl Limits {
    /// Full buckets for the configured limits.
    pub fn new(config: &Config) -> Limits {
        let limits = [
            config.requests_per_minute,
            config.input_tokens_per_minute,
            config.output_tokens_per_minute,
        ];
        Limits {
            buckets: limits.map(|l| l.map(|l| TokenBucket::new(l, config.minute_ms))),
        }
    }

    /// Takes `needs` (requests, input, output) from every bucket, or takes nothing and says
    /// which bucket refused.
    pub fn admit(&mut self, now_us: u64, needs: [u64; 3]) -> Result<(), Refusal> {
        let rank = |f: Fit| match f {
            Fit::Now => 0,
            Fit::After(us) => us.saturating_add(1),
            Fit::Never => u64::MAX,
        };
        let mut worst: Option<Refusal> = None;
        for (which, b) in self.buckets.iter_mut().enumerate() {
            let Some(b) = b else { continue };
            let fit = b.fit(now_us, needs[which]);
            if rank(fit) > worst.map_or(0, |w| rank(w.fit)) {
                worst = Some(Refusal {
                    which,
                    fit,
                    limit: b.limit(),
                    need: needs[which],
                });
            }
        }
        if let Some(refusal) = worst {
            return Err(refusal);
        }
        for (b, n) in self.buckets.iter_mut().zip(needs) {
            if let Some(b) = b {
                b.take(now_us, n);
            }
        }
        Ok(())
    }

    /// Every bucket's state at `now_us`.
    pub fn levels(&mut self, now_us: u64) -> Levels {
        let [requests, input, output] = self.buckets.each_mut().map(|b| {
            let b = b.as_mut()?;
            b.refill(now_us);
            Some(Level {
                limit: b.limit(),
                remaining: b.remaining(),
                reset_us: b.reset_us(),
            })
        });
        Levels {
            requests,
            input,
            output,
        }
    }
}

/// One bucket's state for the headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// Per minute.
    pub limit: u64,
    /// Left now.
    pub remaining: u64,
    /// Microseconds until full.
    pub reset_us: u64,
}

/// The buckets that exist (unlimited ones are `None` and send no headers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Levels {
    /// Requests.
    pub requests: Option<Level>,
    /// Input tokens.
    pub input: Option<Level>,
    /// Output tokens.
    pub output: Option<Level>,
}

impl Levels {
    /// The token limit closest to running out: what Anthropic's `tokens-*` and OpenAI's
    /// `*-tokens` headers report.
    pub fn tokens(&self) -> Option<Level> {
        match (self.input, self.output) {
            (Some(i), Some(o)) => Some(if o.remaining < i.remaining { o } else { i }),
            (i, o) => i.or(o),
        }
    }
}

const ANTHROPIC_HEADERS: [[&str; 3]; 4] = [
    [
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
    ],
    [
        "anthropic-ratelimit-tokens-limit",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
    ],
    [
        "anthropic-ratelimit-input-tokens-limit",
        "anthropic-ratelimit-input-tokens-remaining",
        "anthropic-ratelimit-input-tokens-reset",
    ],
    [
        "anthropic-ratelimit-output-tokens-limit",
        "anthropic-ratelimit-output-tokens-remaining",
        "anthropic-ratelimit-output-tokens-reset",
    ],
];

const OPENAI_HEADERS: [[&str; 3]; 2] = [
    [
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    ],
    [
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ],
];

/// Appends `api`'s rate-limit headers; `wall_us` is the sim's Unix time in microseconds.
pub fn rate_headers(api: Api, levels: &Levels, wall_us: u64, out: &mut Vec<(String, String)>) {
    let all = [
        levels.requests,
        levels.tokens(),
        levels.input,
        levels.output,
    ];
    let (names, levels): (&[[&str; 3]], &[Option<Level>]) = match api {
        Api::Anthropic => (&ANTHROPIC_HEADERS, &all),
        Api::OpenAi => (&OPENAI_HEADERS, &all[..2]),
    };
    for (names, level) in names.iter().zip(levels) {
        let Some(l) = level else { continue };
        let reset = match api {
            // Rounded up to the second: at that time the bucket is surely full.
            Api::Anthropic => rfc3339_ms((wall_us + l.reset_us).div_ceil(1000)),
            Api::OpenAi => go_duration(l.reset_us.div_ceil(1000)),
        };
        let values = [l.limit.to_string(), l.remaining.to_string(), reset];
        out.extend(names.iter().map(|n| n.to_string()).zip(values));
    }
}
