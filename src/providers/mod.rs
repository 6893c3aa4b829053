//! What APIs say back, read in pure Rust: error bodies and the headers that steer retries.
//! (Anthropic and OpenAI request builders and rate-limit snapshots grow here.)

pub mod http;
