//! The built-in price table: dollars per million tokens for the models the simulator, the docs
//! and the tests use. Data, not code: a caller's `prices` option wins over any row, and a
//! model not listed here is unpriced (its results carry no `usd`).
//!
//! Sources, checked 2026-12-07:
//! - Anthropic: <https://platform.claude.com/docs/en/about-claude/pricing> ("Model pricing":
//!   base input, 5m cache writes, 1h cache writes, cache hits, output; "Batch processing": 50%
//!   off input and output).
//! - OpenAI: <https://platform.openai.com/docs/pricing> (input, cached input, output; the Batch
//!   API: 50% off). OpenAI charges no premium to write its cache: a write is billed as input.
//!
//! Each row is `model, [input, output, cache write 5m, cache write 1h, cache read]` in
//! thousandths of a dollar per million tokens (`1_000` is $1 / MTok), then the batch discount
//! in percent.

use super::Price;

/// `(model, price)`, by the model's undated name (a dated name, `claude-haiku-4-5-20251001`,
/// finds its row too: see [`super::Prices::find`]).
pub const BUILT_IN: &[(&str, Price)] = &[
    (
        "claude-opus-4-5",
        row([5_000, 25_000, 6_250, 10_000, 500], 50),
    ),
    (
        "claude-sonnet-4-5",
        row([3_000, 15_000, 3_750, 6_000, 300], 50),
    ),
    (
        "claude-haiku-4-5",
        row([1_000, 5_000, 1_250, 2_000, 100], 50),
    ),
    ("gpt-4o", row([2_500, 10_000, 2_500, 2_500, 1_250], 50)),
    ("gpt-4o-mini", row([150, 600, 150, 150, 75], 50)),
];

/// A row in thousandths of a dollar per MTok: one of those is 1,000 pico-dollars per token.
const fn row(milli: [u64; 5], batch_percent: u32) -> Price {
    Price {
        input: milli[0] * 1_000,
        output: milli[1] * 1_000,
        cache_write_5m: milli[2] * 1_000,
        cache_write_1h: milli[3] * 1_000,
        cache_read: milli[4] * 1_000,
        batch_discount: batch_percent * 10_000,
    }
}
