//! Options: defaults, validation and the messages users see when an option is wrong.
//!
//! The JS edge turns each option's value into a [`Raw`]; everything else is pure Rust so the
//! rules are tested natively.

use std::fmt;
use std::time::Duration;

use crate::core::backoff::{Backoff, Jitter};
use crate::core::executor::Config;
use crate::core::pacer::PacingConfig;
use crate::text::{format_number, quote};

/// An option's value as it came from JS, reduced to what validation needs.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    /// `undefined` or `null`: use the default.
    Missing,
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
    /// A boolean.
    Bool(bool),
    /// Anything else, by its `typeof` name (`object`, `function`, `symbol`, `bigint`).
    Other(String),
}

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::Missing => f.write_str("undefined"),
            Raw::Number(n) => f.write_str(&format_number(*n)),
            Raw::Text(s) => f.write_str(&quote(s)),
            Raw::Bool(b) => write!(f, "{b}"),
            Raw::Other(t) => write!(f, "a value of type {t}"),
        }
    }
}

/// Whether a bad option is of the wrong type (JS `TypeError`) or out of range (`RangeError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionErrorKind {
    /// Wrong type.
    Type,
    /// Right type, value out of range.
    Range,
}

/// A bad option; the message names it and shows the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionError {
    /// Type or range.
    pub kind: OptionErrorKind,
    /// E.g. `concurrency must be an integer in 1..=10000, got "abc"`.
    pub message: String,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Every option key `BatchProcessor` accepts (nested `backoff` keys are checked apart).
pub const KNOWN_KEYS: &[&str] = &[
    "concurrency",
    "maxRetries",
    "timeoutMs",
    "deadlineMs",
    "backoff",
    "maxRetryAfterMs",
    "maxAttempts",
    "seed",
    "signal",
    "onProgress",
    "onEvent",
    "provider",
    "rateLimit",
    "adaptive",
    "breaker",
    "cost",
    "maxResponseBytes",
];

/// Default `maxResponseBytes`: 16 MiB. Far past any model reply (128k output tokens are well
/// under 1 MB), and a Worker (128 MB of memory, 6 connections) can hold six such bodies.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// The keys of the `rateLimit` object.
pub const RATE_LIMIT_KEYS: &[&str] = &[
    "requestsPerMinute",
    "inputTokensPerMinute",
    "outputTokensPerMinute",
];

/// The keys of the `breaker` object.
pub const BREAKER_KEYS: &[&str] = &["failures", "cooldownMs"];

/// The keys of the `backoff` object.
pub const BACKOFF_KEYS: &[&str] = &["baseMs", "maxMs", "jitter"];

/// Largest `maxAttempts`: far past any host's limit (a Worker allows 10,000 subrequests).
pub const MAX_ATTEMPTS: u64 = 1_000_000_000;

/// Largest `maxResponseBytes`: 1 GiB (a JS string cannot hold much more anyway).
pub const MAX_RESPONSE_BYTES: u64 = 1 << 30;

/// Largest timer delay JS timers honour (2^31 - 1 ms).
pub const MAX_TIMER_MS: u64 = 2_147_483_647;

/// The error for a key nobody knows: most often a typo.
pub fn unknown_key(prefix: &str, key: &str) -> OptionError {
    OptionError {
        kind: OptionErrorKind::Type,
        message: format!("unknown option \"{prefix}{key}\""),
    }
}

/// An optional integer option in `min..=max`.
pub fn integer(name: &str, raw: &Raw, min: u64, max: u64) -> Result<Option<u64>, OptionError> {
    let bad = |kind| OptionError {
        kind,
        message: format!("{name} must be an integer in {min}..={max}, got {raw}"),
    };
    match *raw {
        Raw::Missing => Ok(None),
        Raw::Number(n) if n.fract() == 0.0 && n >= min as f64 && n <= max as f64 => {
            Ok(Some(n as u64))
        }
        Raw::Number(_) => Err(bad(OptionErrorKind::Range)),
        _ => Err(bad(OptionErrorKind::Type)),
    }
}

/// An optional boolean option.
pub fn boolean(name: &str, raw: &Raw) -> Result<Option<bool>, OptionError> {
    match raw {
        Raw::Missing => Ok(None),
        Raw::Bool(b) => Ok(Some(*b)),
        _ => Err(OptionError {
            kind: OptionErrorKind::Type,
            message: format!("{name} must be a boolean, got {raw}"),
        }),
    }
}

/// The `backoff.jitter` option.
pub fn jitter(raw: &Raw) -> Result<Option<Jitter>, OptionError> {
    let bad = |kind| OptionError {
        kind,
        message: format!(
            "backoff.jitter must be \"full\", \"decorrelated\" or \"none\", got {raw}"
        ),
    };
    match raw {
        Raw::Missing => Ok(None),
        Raw::Text(s) => match s.as_str() {
            "full" => Ok(Some(Jitter::Full)),
            "decorrelated" => Ok(Some(Jitter::Decorrelated)),
            "none" => Ok(Some(Jitter::None)),
            _ => Err(bad(OptionErrorKind::Range)),
        },
        _ => Err(bad(OptionErrorKind::Type)),
    }
}

/// The numeric options, each already reduced to a [`Raw`].
#[derive(Clone, Debug, Default)]
pub struct RawOptions {
    /// `concurrency`
    pub concurrency: Option<Raw>,
    /// `maxRetries`
    pub max_retries: Option<Raw>,
    /// `timeoutMs`
    pub timeout_ms: Option<Raw>,
    /// `deadlineMs`
    pub deadline_ms: Option<Raw>,
    /// `backoff.baseMs`
    pub backoff_base_ms: Option<Raw>,
    /// `backoff.maxMs`
    pub backoff_max_ms: Option<Raw>,
    /// `backoff.jitter`
    pub backoff_jitter: Option<Raw>,
    /// `maxRetryAfterMs`
    pub max_retry_after_ms: Option<Raw>,
    /// `maxAttempts`
    pub max_attempts: Option<Raw>,
    /// `seed`
    pub seed: Option<Raw>,
    /// `rateLimit.requestsPerMinute`
    pub requests_per_minute: Option<Raw>,
    /// `rateLimit.inputTokensPerMinute`
    pub input_tokens_per_minute: Option<Raw>,
    /// `rateLimit.outputTokensPerMinute`
    pub output_tokens_per_minute: Option<Raw>,
    /// `adaptive`
    pub adaptive: Option<Raw>,
    /// `breaker.failures`
    pub breaker_failures: Option<Raw>,
    /// `breaker.cooldownMs`
    pub breaker_cooldown_ms: Option<Raw>,
    /// `maxResponseBytes`
    pub max_response_bytes: Option<Raw>,
}

/// Validated options: the executor's [`Config`] and the jitter seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// For the executor.
    pub config: Config,
    /// Seed for the jitter; `None` means the edge picks a random one.
    pub seed: Option<u64>,
    /// Rate budgets, adaptive concurrency, breaker.
    pub pacing: PacingConfig,
    /// The largest 2xx reply body `run()` reads; a larger one fails its item.
    pub max_response_bytes: u64,
}

fn get(raw: &Option<Raw>) -> &Raw {
    raw.as_ref().unwrap_or(&Raw::Missing)
}

impl RawOptions {
    /// Checks every option, first error wins, and fills in the defaults.
    pub fn validate(&self) -> Result<Options, OptionError> {
        let defaults = Config::default();
        let ms = Duration::from_millis;
        let concurrency = integer("concurrency", get(&self.concurrency), 1, 10_000)?
            .map_or(defaults.concurrency, |v| v as usize);
        let max_retries = integer("maxRetries", get(&self.max_retries), 0, 100)?
            .map_or(defaults.max_retries, |v| v as u32);
        let timeout = integer("timeoutMs", get(&self.timeout_ms), 1, MAX_TIMER_MS)?
            .map(ms)
            .or(defaults.timeout);
        let deadline = integer("deadlineMs", get(&self.deadline_ms), 1, MAX_TIMER_MS)?.map(ms);
        let base =
            integer("backoff.baseMs", get(&self.backoff_base_ms), 1, 3_600_000)?.unwrap_or(500);
        let max = integer("backoff.maxMs", get(&self.backoff_max_ms), 1, 3_600_000)?
            .unwrap_or(30_000.max(base));
        if max < base {
            return Err(OptionError {
                kind: OptionErrorKind::Range,
                message: format!(
                    "backoff.maxMs must be at least backoff.baseMs ({base}), got {max}"
                ),
            });
        }
        let jitter = jitter(get(&self.backoff_jitter))?.unwrap_or(Jitter::Full);
        let backoff = Backoff::new(ms(base), ms(max), jitter).map_err(|message| OptionError {
            kind: OptionErrorKind::Range,
            message,
        })?;
        let max_retry_after = integer(
            "maxRetryAfterMs",
            get(&self.max_retry_after_ms),
            0,
            3_600_000,
        )?
        .map_or(defaults.max_retry_after, ms);
        let max_attempts = integer("maxAttempts", get(&self.max_attempts), 1, MAX_ATTEMPTS)?;
        let seed = integer("seed", get(&self.seed), 0, (1 << 53) - 1)?;
        let budget = |name, raw| integer(name, get(raw), 1, 1_000_000_000_000);
        let pacing_defaults = PacingConfig::default();
        let pacing = PacingConfig {
            requests_per_minute: budget("rateLimit.requestsPerMinute", &self.requests_per_minute)?,
            input_tokens_per_minute: budget(
                "rateLimit.inputTokensPerMinute",
                &self.input_tokens_per_minute,
            )?,
            output_tokens_per_minute: budget(
                "rateLimit.outputTokensPerMinute",
                &self.output_tokens_per_minute,
            )?,
            adaptive: boolean("adaptive", get(&self.adaptive))?.unwrap_or(pacing_defaults.adaptive),
            breaker_failures: integer("breaker.failures", get(&self.breaker_failures), 0, 1000)?
                .map_or(pacing_defaults.breaker_failures, |n| n as u32),
            breaker_cooldown: integer(
                "breaker.cooldownMs",
                get(&self.breaker_cooldown_ms),
                1,
                3_600_000,
            )?
            .map_or(pacing_defaults.breaker_cooldown, ms),
            ..pacing_defaults
        };
        let max_response_bytes = integer(
            "maxResponseBytes",
            get(&self.max_response_bytes),
            1,
            MAX_RESPONSE_BYTES,
        )?
        .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
        Ok(Options {
            max_response_bytes,
            config: Config {
                concurrency,
                max_retries,
                timeout,
                deadline,
                backoff,
                max_retry_after,
                max_attempts,
            },
            seed,
            pacing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(n: f64) -> Option<Raw> {
        Some(Raw::Number(n))
    }

    #[test]
    fn defaults() {
        let o = RawOptions::default().validate().unwrap();
        assert_eq!(o.config, Config::default());
        assert_eq!(o.seed, None);
        assert_eq!(o.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES);
        let bad = RawOptions {
            max_response_bytes: num(0.0),
            ..Default::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().message,
            "maxResponseBytes must be an integer in 1..=1073741824, got 0"
        );
    }

    #[test]
    fn messages_name_the_option_and_value() {
        let cases: Vec<(RawOptions, OptionErrorKind, &str)> = vec![
            (
                RawOptions {
                    concurrency: Some(Raw::Text("abc".into())),
                    ..Default::default()
                },
                OptionErrorKind::Type,
                "concurrency must be an integer in 1..=10000, got \"abc\"",
            ),
            (
                RawOptions {
                    concurrency: num(0.0),
                    ..Default::default()
                },
                OptionErrorKind::Range,
                "concurrency must be an integer in 1..=10000, got 0",
            ),
            (
                RawOptions {
                    max_retries: num(1.5),
                    ..Default::default()
                },
                OptionErrorKind::Range,
                "maxRetries must be an integer in 0..=100, got 1.5",
            ),
            (
                RawOptions {
                    timeout_ms: num(f64::NAN),
                    ..Default::default()
                },
                OptionErrorKind::Range,
                "timeoutMs must be an integer in 1..=2147483647, got NaN",
            ),
            (
                RawOptions {
                    deadline_ms: Some(Raw::Bool(true)),
                    ..Default::default()
                },
                OptionErrorKind::Type,
                "deadlineMs must be an integer in 1..=2147483647, got true",
            ),
            (
                RawOptions {
                    backoff_jitter: Some(Raw::Text("wild".into())),
                    ..Default::default()
                },
                OptionErrorKind::Range,
                "backoff.jitter must be \"full\", \"decorrelated\" or \"none\", got \"wild\"",
            ),
            (
                RawOptions {
                    backoff_base_ms: num(1000.0),
                    backoff_max_ms: num(10.0),
                    ..Default::default()
                },
                OptionErrorKind::Range,
                "backoff.maxMs must be at least backoff.baseMs (1000), got 10",
            ),
            (
                RawOptions {
                    seed: Some(Raw::Other("object".into())),
                    ..Default::default()
                },
                OptionErrorKind::Type,
                "seed must be an integer in 0..=9007199254740991, got a value of type object",
            ),
        ];
        for (raw, kind, message) in cases {
            let err = raw.validate().unwrap_err();
            assert_eq!((err.kind, err.message.as_str()), (kind, message));
        }
    }

    #[test]
    fn values_are_applied() {
        let raw = RawOptions {
            concurrency: num(3.0),
            max_retries: num(0.0),
            timeout_ms: num(250.0),
            deadline_ms: num(9000.0),
            backoff_base_ms: num(40_000.0),
            backoff_jitter: Some(Raw::Text("none".into())),
            max_retry_after_ms: num(0.0),
            max_attempts: num(50.0),
            seed: num(42.0),
            ..Default::default()
        };
        let o = raw.validate().unwrap();
        let ms = Duration::from_millis;
        assert_eq!(o.config.concurrency, 3);
        assert_eq!(o.config.max_retries, 0);
        assert_eq!(o.config.timeout, Some(ms(250)));
        assert_eq!(o.config.deadline, Some(ms(9000)));
        // maxMs defaults to 30 s but never below baseMs.
        assert_eq!(
            o.config.backoff,
            Backoff::new(ms(40_000), ms(40_000), Jitter::None).unwrap()
        );
        assert_eq!(o.config.max_retry_after, ms(0));
        assert_eq!(o.config.max_attempts, Some(50));
        assert_eq!(o.seed, Some(42));
    }

    #[test]
    fn pacing_options() {
        let o = RawOptions::default().validate().unwrap();
        assert_eq!(o.pacing, PacingConfig::default());
        let raw = RawOptions {
            requests_per_minute: num(50.0),
            output_tokens_per_minute: num(8000.0),
            adaptive: Some(Raw::Bool(false)),
            breaker_failures: num(0.0),
            breaker_cooldown_ms: num(250.0),
            ..Default::default()
        };
        let p = raw.validate().unwrap().pacing;
        assert_eq!(
            (
                p.requests_per_minute,
                p.input_tokens_per_minute,
                p.output_tokens_per_minute
            ),
            (Some(50), None, Some(8000))
        );
        assert!(!p.adaptive);
        assert_eq!(
            (p.breaker_failures, p.breaker_cooldown),
            (0, Duration::from_millis(250))
        );
        let bad = RawOptions {
            adaptive: Some(Raw::Text("yes".into())),
            ..Default::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().message,
            "adaptive must be a boolean, got \"yes\""
        );
        let bad = RawOptions {
            requests_per_minute: num(0.0),
            ..Default::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().message,
            "rateLimit.requestsPerMinute must be an integer in 1..=1000000000000, got 0"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        assert_eq!(
            unknown_key("", "concurency").message,
            "unknown option \"concurency\""
        );
        assert_eq!(
            unknown_key("backoff.", "base").message,
            "unknown option \"backoff.base\""
        );
    }

    #[test]
    fn every_jitter_mode_is_accepted() {
        let ms = Duration::from_millis;
        for (name, mode) in [
            ("full", Jitter::Full),
            ("decorrelated", Jitter::Decorrelated),
            ("none", Jitter::None),
        ] {
            let raw = RawOptions {
                backoff_jitter: Some(Raw::Text(name.into())),
                ..Default::default()
            };
            assert_eq!(
                raw.validate().unwrap().config.backoff,
                Backoff::new(ms(500), ms(30_000), mode).unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn messages_print_exactly() {
        // A round trip through a JSON parser cannot tell an escaped space from a raw one.
        let err = RawOptions {
            concurrency: num(0.0),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.to_string(), err.message);
        assert!(err.message.starts_with("concurrency must be"), "{err}");
    }

    #[test]
    fn each_budget_reaches_its_own_field_and_seeds_stop_at_2_to_the_53() {
        let raw = RawOptions {
            requests_per_minute: num(50.0),
            input_tokens_per_minute: num(40_000.0),
            output_tokens_per_minute: num(8000.0),
            seed: num(9_007_199_254_740_991.0),
            ..Default::default()
        };
        let o = raw.validate().unwrap();
        let p = o.pacing;
        assert_eq!(
            (
                p.requests_per_minute,
                p.input_tokens_per_minute,
                p.output_tokens_per_minute
            ),
            (Some(50), Some(40_000), Some(8000))
        );
        assert_eq!(o.seed, Some(9_007_199_254_740_991));
        let too_big = RawOptions {
            seed: num(9_007_199_254_740_992.0),
            ..Default::default()
        };
        assert_eq!(
            too_big.validate().unwrap_err().message,
            "seed must be an integer in 0..=9007199254740991, got 9007199254740992"
        );
    }
}
