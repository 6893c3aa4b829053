//! Cost as data plus a pure ledger. Prices are a table (`prices.rs`, its sources and date
//! beside it; a caller's own `prices` over it); the ledger turns a reply's tokens into dollars;
//! `maxCostUsd` is a budget like `maxAttempts` (`cap.rs`).
//!
//! # Exactness
//! Amounts are integers of pico-dollars (1e-12 USD). A price of $p per million tokens is p × 1e6
//! pico-dollars per token, so a price list's dollars per MTok (to $0.000001) are exact, and
//! tokens × rate is exact (in `u128`, clamped to `u64`: $18 million). The one rounding is
//! the batch discount, to the nearest pico-dollar. Dollars for users are `pico / 1e12` as an
//! `f64`: exact to 2^53 pico-dollars ($9,007), then to f64's 16 digits.

mod cap;
mod prices;

pub use cap::CostCap;
pub use prices::BUILT_IN;

use super::limits::Cost;
use crate::text::rsplit_once;

/// An amount in pico-dollars (1e-12 USD).
pub type Pico = u64;

/// Pico-dollars in a dollar.
pub const PICO_PER_USD: f64 = 1e12;

/// One model's price, per token in pico-dollars (the same number as micro-dollars per MTok).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Price {
    /// Input tokens that are neither cache writes nor cache reads.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Input tokens written to a 5-minute cache entry.
    pub cache_write_5m: u64,
    /// Input tokens written to a 1-hour cache entry.
    pub cache_write_1h: u64,
    /// Input tokens read from the cache.
    pub cache_read: u64,
    /// What the provider's Batch API takes off, in millionths (500,000: 50%).
    pub batch_discount: u32,
}

/// A reply's billed tokens, each counted once (an Anthropic reply's `input_tokens` excludes
/// its cache tokens; OpenAI's `prompt_tokens` includes its `cached_tokens`: `providers`
/// reads both into this shape).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Input at the full price.
    pub input: u64,
    /// Output.
    pub output: u64,
    /// Written to a 5-minute cache entry.
    pub cache_write_5m: u64,
    /// Written to a 1-hour cache entry.
    pub cache_write_1h: u64,
    /// Read from the cache.
    pub cache_read: u64,
}

/// How a request was served: realtime, or through the provider's Batch API (discounted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// A realtime call.
    Realtime,
    /// Through the provider's Batch API.
    ProviderBatch,
}

impl Price {
    /// What `tokens` cost, served as `served` (saturating at `u64::MAX`: $18 million).
    pub fn cost(&self, tokens: &Tokens, served: Served) -> Pico {
        let parts = [
            (tokens.input, self.input),
            (tokens.output, self.output),
            (tokens.cache_write_5m, self.cache_write_5m),
            (tokens.cache_write_1h, self.cache_write_1h),
            (tokens.cache_read, self.cache_read),
        ];
        let full = parts.iter().fold(0u64, |sum, &(n, rate)| {
            sum.saturating_add(n.saturating_mul(rate))
        });
        match served {
            Served::Realtime => full,
            // full × kept / 1e6 in u64 (no 128-bit division in the wasm build): the millions
            // and the rest apart, the rest rounded to the nearest pico-dollar.
            Served::ProviderBatch => {
                const M: u64 = 1_000_000;
                let kept = M - (self.batch_discount as u64).min(M);
                (full / M) * kept + ((full % M) * kept + M / 2) / M
            }
        }
    }

    /// The most an attempt is expected to cost, realtime: its estimated input tokens at the
    /// input price and its output cap (`max_tokens`) at the output price.
    pub fn estimate(&self, cost: &Cost) -> Pico {
        let tokens = Tokens {
            input: cost.input_tokens,
            output: cost.output_tokens,
            ..Tokens::default()
        };
        self.cost(&tokens, Served::Realtime)
    }
}

/// Dollars, as users see them.
pub fn usd(pico: Pico) -> f64 {
    pico as f64 / PICO_PER_USD
}

/// Pico-dollars from dollars (a price per MTok is pico-dollars per token the same way),
/// rounded to the nearest one.
pub fn pico(usd: f64) -> Pico {
    (usd * PICO_PER_USD).round() as Pico
}

/// A processor's price list: the caller's own rows over the built-in table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prices {
    own: Vec<(String, Price)>,
}

impl Prices {
    /// The list with `model` priced at `price` (over a built-in row of that name).
    pub fn with(mut self, model: String, price: Price) -> Self {
        self.own.push((model, price));
        self
    }

    /// The price of `model`: the caller's row, else the built-in one; a dated name
    /// (`claude-haiku-4-5-20251001`, `gpt-4o-mini-2024-07-18`) falls back to its undated row.
    pub fn find(&self, model: &str) -> Option<Price> {
        let exact = |m: &str| {
            let own = self.own.iter().rev().find(|(k, _)| k == m).map(|r| r.1);
            own.or_else(|| BUILT_IN.iter().find(|r| r.0 == m).map(|r| r.1))
        };
        exact(model).or_else(|| exact(undated(model)?))
    }
}

/// The model's name without a trailing date: `-YYYYMMDD` (Anthropic) or `-YYYY-MM-DD` (OpenAI).
fn undated(model: &str) -> Option<&str> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (head, tail) = rsplit_once(model, b'-')?;
    if tail.len() == 8 && digits(tail) {
        return Some(head);
    }
    let (head, month) = rsplit_once(head, b'-')?;
    let (head, year) = rsplit_once(head, b'-')?;
    let dated = [(year, 4), (month, 2), (tail, 2)]
        .iter()
        .all(|&(part, len)| part.len() == len && digits(part));
    dated.then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_names_find_their_row() {
        let prices = Prices::default();
        let haiku = prices.find("claude-haiku-4-5").unwrap();
        assert_eq!(prices.find("claude-haiku-4-5-20251001"), Some(haiku));
        assert_eq!(
            prices.find("gpt-4o-mini-2024-07-18"),
            prices.find("gpt-4o-mini")
        );
        assert_eq!(prices.find("claude-haiku-4-5-2025"), None);
        assert_eq!(prices.find("sim-1"), None);
        let own = Price {
            input: 7,
            ..Price::default()
        };
        let prices = prices.with("claude-haiku-4-5".into(), own);
        assert_eq!(prices.find("claude-haiku-4-5-20251001"), Some(own));
    }
}
