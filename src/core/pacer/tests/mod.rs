//! The pacer's unit tests: its main cases (`basic.rs`), and its less-travelled branches, each
//! pinned by a test (`branches.rs`).

mod basic;
mod branches;

use super::*;
use crate::core::limits::{Limit, Usage};

const MS: fn(u64) -> Duration = Duration::from_millis;

fn cost(i: u64, o: u64) -> Cost {
    Cost {
        input_tokens: i,
        output_tokens: o,
    }
}
