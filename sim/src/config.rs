//! The simulator's settings: limits, the latency model, fault rates. Validated from option
//! values the JS edge reduced to [`Raw`], with the same messages as `BatchProcessor`'s options.

use crate::bucket::{MAX_LIMIT, MAX_MINUTE_MS};
use crate::raw::{integer, OptionError, OptionErrorKind, Raw};
use crate::text::format_number;

/// How long replies take: `base_ms + per_output_token_ms * output_tokens + U(0, jitter_ms)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    /// Fixed part of every reply, errors included.
    pub base_ms: f64,
    /// Generation time per output token (successful replies only).
    pub per_output_token_ms: f64,
    /// Uniform random extra, `[0, jitter_ms)`.
    pub jitter_ms: f64,
    /// A slow body's pause between chunks.
    pub chunk_ms: f64,
}

/// Probabilities, each in `[0, 1]` and together at most 1, that a valid request meets a fault.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// 429 with no retry-after headers: the client has to pick its own backoff.
    pub rate429: f64,
    /// Overloaded: Anthropic 529 `overloaded_error`, OpenAI 503.
    pub rate529: f64,
    /// 500 `api_error` / `server_error`.
    pub rate500: f64,
    /// No reply at all until the client gives up.
    pub hang: f64,
    /// Headers at once, then the body in small chunks with pauses.
    pub slow_body: f64,
    /// 200 with a JSON body cut in half.
    pub malformed: f64,
    /// The connection drops before a reply.
    pub disconnect: f64,
    /// A `stream: true` reply breaks off halfway with an error event (Anthropic's
    /// `event: error`, OpenAI's `data: {"error": …}`); a reply that is not streamed is not
    /// affected.
    pub stream_error: f64,
}

/// One fault, in the order [`Faults::pick`] checks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// [`Faults::rate429`]
    RateLimited,
    /// [`Faults::rate529`]
    Overloaded,
    /// [`Faults::rate500`]
    Internal,
    /// [`Faults::hang`]
    Hang,
    /// [`Faults::slow_body`]
    SlowBody,
    /// [`Faults::malformed`]
    Malformed,
    /// [`Faults::disconnect`]
    Disconnect,
    /// [`Faults::stream_error`]
    StreamError,
}

impl Faults {
    /// The fault a uniform `u` in `[0, 1)` picks, if any: each fault owns a slice of `[0, 1)`
    /// as wide as its rate.
    pub fn pick(&self, mut u: f64) -> Option<Fault> {
        use Fault::*;
        let all = [
            RateLimited,
            Overloaded,
            Internal,
            Hang,
            SlowBody,
            Malformed,
            Disconnect,
            StreamError,
        ];
        let hit = self.rates().into_iter().position(|rate| {
            u -= rate;
            u < 0.0
        });
        hit.map(|i| all[i])
    }

    /// The rates, in the order of [`Fault`].
    pub fn rates(&self) -> [f64; 8] {
        [
            self.rate429,
            self.rate529,
            self.rate500,
            self.hang,
            self.slow_body,
            self.malformed,
            self.disconnect,
            self.stream_error,
        ]
    }
}

/// A server that can only do so much at once: `capacity` requests at full speed, up to `queue`
/// more served slower (processor sharing: with `n` served, each takes `n / capacity` times its
/// normal latency, so throughput stays at `capacity`), the rest shed with 529 (OpenAI: 503)
/// after `shed_ms`. Requests turned away by a random fault or a rate limit take no place.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Capacity {
    /// Served at full speed at once.
    pub capacity: u64,
    /// Served on top of `capacity`, slower.
    pub queue: u64,
    /// How fast a shed request is answered.
    pub shed_ms: f64,
}

impl Capacity {
    /// What a request arriving while `busy` others are being served gets: `Some(factor)` on
    /// its latency, or `None` (shed).
    pub fn admit(&self, busy: u64) -> Option<f64> {
        let n = busy + 1;
        if n > self.capacity + self.queue {
            None
        } else {
            Some((n as f64 / self.capacity as f64).max(1.0))
        }
    }
}

/// Everything the simulator needs to know.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Seeds faults, jitter and ids: the same seed and calls give the same decisions.
    pub seed: u64,
    /// Unix milliseconds at `now_ms == 0`: the sim's wall clock for reset times and `created`.
    pub epoch_ms: u64,
    /// The rate-limit window; short values make tests fast.
    pub minute_ms: u64,
    /// Requests per minute; `None` is unlimited (and sends no headers for it).
    pub requests_per_minute: Option<u64>,
    /// Input tokens per minute.
    pub input_tokens_per_minute: Option<u64>,
    /// Output tokens per minute.
    pub output_tokens_per_minute: Option<u64>,
    /// Natural reply lengths spread over `20..=max_tokens` tokens (less if a request's own
    /// `max_tokens` is smaller).
    pub max_tokens: u64,
    /// The latency model.
    pub latency: Latency,
    /// The fault rates.
    pub faults: Faults,
    /// The server's capacity; `None` serves any number at once.
    pub capacity: Option<Capacity>,
    /// Models overloaded on their own (`faults.byModel`), for a window: one model struggles
    /// while another is healthy.
    pub by_model: Vec<ModelFault>,
    /// The Batch APIs' processing delay, spread, failures and window (`batches`).
    pub batches: crate::batches::Settings,
}

/// `faults.byModel[model]: { overloaded, untilMs? }`: a request for `model` (as its body names
/// it) sent before `until_ms` is overloaded with this chance (rolled before the other faults;
/// Anthropic 529 `overloaded_error`, OpenAI 503), not charged.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelFault {
    /// The model, as the request body names it.
    pub model: String,
    /// The chance, in `[0, 1]`.
    pub overloaded: f64,
    /// When the window ends, in the sim's ms (`nowMs`); `None`: never.
    pub until_ms: Option<f64>,
}

impl ModelFault {
    /// Validates one entry (`overloaded` and `untilMs` as read).
    pub fn new(model: &str, overloaded: &Raw, until_ms: &Raw) -> Result<ModelFault, OptionError> {
        let name = |key: &str| format!("faults.byModel[\"{model}\"].{key}");
        let overloaded = number(&name("overloaded"), overloaded, 0.0, 1.0)?.ok_or_else(|| {
            OptionError::expected(&name("overloaded"), "a number in 0..=1", &Raw::Missing)
        })?;
        let until_ms = number(&name("untilMs"), until_ms, 0.0, MAX_SAFE as f64)?;
        Ok(ModelFault {
            model: model.to_owned(),
            overloaded,
            until_ms,
        })
    }

    /// Whether a request sent at `now_ms` meets this fault's window.
    pub fn open_at(&self, now_ms: f64) -> bool {
        self.until_ms.is_none_or(|until| now_ms < until)
    }
}

/// Keys of one `faults.byModel` entry.
pub const MODEL_FAULT_KEYS: &[&str] = &["overloaded", "untilMs"];

/// 2026-01-01T00:00:00Z: a fixed default wall clock keeps native runs repeatable.
pub const DEFAULT_EPOCH_MS: u64 = 1_767_225_600_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 0,
            epoch_ms: DEFAULT_EPOCH_MS,
            minute_ms: 60_000,
            requests_per_minute: None,
            input_tokens_per_minute: None,
            output_tokens_per_minute: None,
            max_tokens: 256,
            latency: Latency {
                base_ms: 250.0,
                per_output_token_ms: 2.0,
                jitter_ms: 100.0,
                chunk_ms: 100.0,
            },
            faults: Faults::default(),
            capacity: None,
            by_model: Vec::new(),
            batches: crate::batches::Settings::default(),
        }
    }
}

/// Top-level option keys of `new Simulator(options)`.
pub const KNOWN_KEYS: &[&str] = &[
    "seed",
    "epochMs",
    "minuteMs",
    "requestsPerMinute",
    "inputTokensPerMinute",
    "outputTokensPerMinute",
    "maxTokens",
    "latency",
    "faults",
    "capacity",
    "queue",
    "shedMs",
    "batches",
];
/// Keys of `latency`.
pub const LATENCY_KEYS: &[&str] = &["baseMs", "perOutputTokenMs", "jitterMs", "chunkMs"];
/// Keys of `faults`.
pub const FAULT_KEYS: &[&str] = &[
    "rate429",
    "rate529",
    "rate500",
    "hang",
    "slowBody",
    "malformed",
    "disconnect",
    "streamError",
    "byModel",
];

/// A shed request's answer comes this fast by default: a few ms, like a load balancer's.
pub const DEFAULT_SHED_MS: f64 = 5.0;

const MAX_SAFE: u64 = (1 << 53) - 1;
const MAX_MS: f64 = 3_600_000.0;

/// A number (fractions allowed) in `min..=max`.
fn number(name: &str, raw: &Raw, min: f64, max: f64) -> Result<Option<f64>, OptionError> {
    match *raw {
        Raw::Missing => Ok(None),
        Raw::Number(n) if n >= min && n <= max => Ok(Some(n)),
        _ => Err(OptionError::expected(
            name,
            &format!(
                "a number in {}..={}",
                format_number(min),
                format_number(max)
            ),
            raw,
        )),
    }
}

impl Config {
    /// Validates options read by `get` (dotted names: `latency.baseMs`, `faults.hang`, ...;
    /// [`Raw::Missing`] for absent ones). The first bad option wins. Unknown keys are the
    /// edge's to reject, against [`KNOWN_KEYS`], [`LATENCY_KEYS`] and [`FAULT_KEYS`].
    pub fn from_options(get: impl Fn(&str) -> Raw) -> Result<Config, OptionError> {
        // Table-driven: one loop per kind of option is less wasm than a call per option.
        const INTEGERS: [(&str, u64, u64); 9] = [
            ("seed", 0, MAX_SAFE),
            ("epochMs", 0, MAX_SAFE),
            ("minuteMs", 1, MAX_MINUTE_MS),
            ("requestsPerMinute", 1, MAX_LIMIT),
            ("inputTokensPerMinute", 1, MAX_LIMIT),
            ("outputTokensPerMinute", 1, MAX_LIMIT),
            ("maxTokens", 1, 1_000_000),
            ("capacity", 1, 1_000_000),
            ("queue", 0, 1_000_000),
        ];
        const DURATIONS: [&str; 4] = [
            "latency.baseMs",
            "latency.perOutputTokenMs",
            "latency.jitterMs",
            "latency.chunkMs",
        ];
        const RATES: [&str; 8] = [
            "faults.rate429",
            "faults.rate529",
            "faults.rate500",
            "faults.hang",
            "faults.slowBody",
            "faults.malformed",
            "faults.disconnect",
            "faults.streamError",
        ];
        let d = Config::default();
        let mut ints = [None; 9];
        for (slot, (name, min, max)) in ints.iter_mut().zip(INTEGERS) {
            *slot = integer(name, &get(name), min, max)?;
        }
        let l = d.latency;
        let mut ms = [l.base_ms, l.per_output_token_ms, l.jitter_ms, l.chunk_ms];
        for (slot, name) in ms.iter_mut().zip(DURATIONS) {
            *slot = number(name, &get(name), 0.0, MAX_MS)?.unwrap_or(*slot);
        }
        let mut rates = [0.0; 8];
        for (slot, name) in rates.iter_mut().zip(RATES) {
            *slot = number(name, &get(name), 0.0, 1.0)?.unwrap_or(0.0);
        }
        let [seed, epoch_ms, minute_ms, rpm, itpm, otpm, max_tokens, capacity, queue] = ints;
        let shed_ms = number("shedMs", &get("shedMs"), 0.0, MAX_MS)?;
        if capacity.is_none() && (queue.is_some() || shed_ms.is_some()) {
            let which = if queue.is_some() { "queue" } else { "shedMs" };
            return Err(OptionError {
                kind: OptionErrorKind::Type,
                message: format!("{which} needs capacity, which is not set"),
            });
        }
        let capacity = capacity.map(|capacity| Capacity {
            capacity,
            queue: queue.unwrap_or(0),
            shed_ms: shed_ms.unwrap_or(DEFAULT_SHED_MS),
        });
        let [base_ms, per_output_token_ms, jitter_ms, chunk_ms] = ms;
        let [rate429, rate529, rate500, hang, slow_body, malformed, disconnect, stream_error] =
            rates;
        let config = Config {
            seed: seed.unwrap_or(d.seed),
            epoch_ms: epoch_ms.unwrap_or(d.epoch_ms),
            minute_ms: minute_ms.unwrap_or(d.minute_ms),
            requests_per_minute: rpm,
            input_tokens_per_minute: itpm,
            output_tokens_per_minute: otpm,
            max_tokens: max_tokens.unwrap_or(d.max_tokens),
            latency: Latency {
                base_ms,
                per_output_token_ms,
                jitter_ms,
                chunk_ms,
            },
            faults: Faults {
                rate429,
                rate529,
                rate500,
                hang,
                slow_body,
                malformed,
                disconnect,
                stream_error,
            },
            capacity,
            by_model: Vec::new(),
            batches: crate::batches::Settings::from_options(&get)?,
        };
        let total: f64 = config.faults.rates().iter().sum();
        // A little slack for sums like 0.1 + 0.2 that floats cannot hit exactly.
        if total > 1.0 + 1e-9 {
            return Err(OptionError {
                kind: OptionErrorKind::Range,
                message: format!(
                    "faults must add up to at most 1, got {}",
                    format_number(total)
                ),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, Raw)]) -> Result<Config, OptionError> {
        Config::from_options(|k| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map_or(Raw::Missing, |(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(with(&[]).unwrap(), Config::default());
        let c = with(&[
            ("seed", Raw::Number(7.0)),
            ("minuteMs", Raw::Number(1000.0)),
            ("requestsPerMinute", Raw::Number(5.0)),
            ("latency.perOutputTokenMs", Raw::Number(0.5)),
            ("faults.hang", Raw::Number(0.25)),
            ("faults.disconnect", Raw::Number(0.75)),
        ])
        .unwrap();
        assert_eq!((c.seed, c.minute_ms), (7, 1000));
        assert_eq!(c.requests_per_minute, Some(5));
        assert_eq!(c.input_tokens_per_minute, None);
        assert_eq!(c.latency.per_output_token_ms, 0.5);
        assert_eq!((c.faults.hang, c.faults.disconnect), (0.25, 0.75));
    }

    #[test]
    fn messages_name_the_option_and_value() {
        use OptionErrorKind::{Range, Type};
        let table: [(&str, Raw, OptionErrorKind, &str); 7] = [
            (
                "seed",
                Raw::Number(-1.0),
                Range,
                "seed must be an integer in 0..=9007199254740991, got -1",
            ),
            (
                "minuteMs",
                Raw::Text("fast".into()),
                Type,
                "minuteMs must be an integer in 1..=3600000, got \"fast\"",
            ),
            (
                "requestsPerMinute",
                Raw::Number(0.0),
                Range,
                "requestsPerMinute must be an integer in 1..=1000000000, got 0",
            ),
            (
                "outputTokensPerMinute",
                Raw::Number(1.5),
                Range,
                "outputTokensPerMinute must be an integer in 1..=1000000000, got 1.5",
            ),
            (
                "latency.jitterMs",
                Raw::Number(-5.0),
                Range,
                "latency.jitterMs must be a number in 0..=3600000, got -5",
            ),
            (
                "faults.rate529",
                Raw::Number(1.5),
                Range,
                "faults.rate529 must be a number in 0..=1, got 1.5",
            ),
            (
                "faults.slowBody",
                Raw::Bool(true),
                Type,
                "faults.slowBody must be a number in 0..=1, got true",
            ),
        ];
        for (key, value, kind, message) in table {
            let err = with(&[(key, value)]).unwrap_err();
            assert_eq!((err.kind, err.message.as_str()), (kind, message));
        }
        let nan = with(&[("latency.baseMs", Raw::Number(f64::NAN))]).unwrap_err();
        assert_eq!(
            nan.message,
            "latency.baseMs must be a number in 0..=3600000, got NaN"
        );
    }

    #[test]
    fn fault_rates_add_up_to_at_most_one() {
        let ok = with(&[
            ("faults.rate429", Raw::Number(0.1)),
            ("faults.rate500", Raw::Number(0.2)),
            ("faults.hang", Raw::Number(0.7)),
        ]);
        assert!(ok.is_ok());
        let err = with(&[
            ("faults.rate429", Raw::Number(0.6)),
            ("faults.malformed", Raw::Number(0.6)),
        ])
        .unwrap_err();
        assert_eq!(err.kind, OptionErrorKind::Range);
        assert_eq!(err.message, "faults must add up to at most 1, got 1.2");
    }
}
