//! What the sim says back when a request succeeds: the reply in each API's shape and its
//! pseudo-summary text (error bodies are in `error.rs`).

use crate::api::Api;
use crate::cache;
use crate::request::Prompt;
use crate::text::quote;

/// A stable hash of the prompt text that tests can recompute: FNV-1a (64 bits), then
/// SplitMix64's finalizer so that prompts differing in one letter differ in every bit.
pub fn prompt_hash(text: &str) -> u64 {
    let fnv = text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    mix(fnv)
}

/// SplitMix64's finalizer: spreads every input bit over the output.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The reply length the prompt "deserves": `min(20, max)..=max` tokens, from its hash.
pub fn natural_tokens(hash: u64, max: u64) -> u64 {
    let lo = max.min(20);
    lo + hash % (max - lo + 1)
}

const FILLER: &[&str] = &[
    "the",
    "key",
    "point",
    "is",
    "that",
    "results",
    "arrive",
    "in",
    "order",
    "and",
    "every",
    "request",
    "is",
    "accounted",
    "for",
    "with",
    "retries",
    "limits",
    "and",
    "deadlines",
];

/// The reply text: `Summary <hash8>: <first words of the last user message>` and filler,
/// cut to about 4 characters per output token (so a low `max_tokens` truncates it).
pub fn summary(prompt: &Prompt, hash: u64, tokens: u64) -> String {
    let source = if prompt.last_user.is_empty() {
        &prompt.text
    } else {
        &prompt.last_user
    };
    let mut text = format!("Summary {:08x}:", (hash >> 32) as u32);
    for word in source.split_whitespace().take(8) {
        text.push(' ');
        text.extend(word.chars().take(24));
    }
    let target = (tokens * 4) as usize;
    let mut state = hash;
    while text.len() < target {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        text.push(' ');
        text.push_str(FILLER[(state >> 33) as usize % FILLER.len()]);
    }
    let cut = text
        .char_indices()
        .nth(target)
        .map_or(text.len(), |(i, _)| i);
    text.truncate(cut);
    text.trim_end().to_owned()
}

/// A successful reply's parts.
#[derive(Clone, Debug)]
pub struct Success<'a> {
    /// Reply id (`msg_…`, `chatcmpl-…`).
    pub id: &'a str,
    /// The request's model.
    pub model: &'a str,
    /// The generated text.
    pub text: &'a str,
    /// Whether `max_tokens` cut the reply short.
    pub truncated: bool,
    /// Input tokens (those not read from or written to the cache).
    pub input_tokens: u64,
    /// The prompt cache's part, for a request with `cache_control` (Anthropic; its usage
    /// fields are left out without one, so such replies stay as they were).
    pub cache: Option<cache::Usage>,
    /// Output tokens.
    pub output_tokens: u64,
    /// Unix seconds (OpenAI's `created`).
    pub created: u64,
}

impl Success<'_> {
    /// Why the reply ended, in `api`'s words: cut by `max_tokens`, or done.
    pub fn stop_reason(&self, api: Api) -> &'static str {
        match (api, self.truncated) {
            (Api::Anthropic, true) => "max_tokens",
            (Api::Anthropic, false) => "end_turn",
            (Api::OpenAi, true) => "length",
            (Api::OpenAi, false) => "stop",
        }
    }

    /// The cache's usage fields (with their trailing comma), or nothing.
    pub fn cache_usage(&self) -> String {
        self.cache.map(|c| c.json()).unwrap_or_default()
    }

    /// The JSON body in `api`'s shape.
    pub fn body(&self, api: Api) -> String {
        let (id, model, text) = (quote(self.id), quote(self.model), quote(self.text));
        let (input, output) = (self.input_tokens, self.output_tokens);
        match api {
            Api::Anthropic => format!(
                r#"{{"id":{id},"type":"message","role":"assistant","model":{model},"content":[{{"type":"text","text":{text}}}],"stop_reason":"{}","stop_sequence":null,"usage":{{"input_tokens":{input},{}"output_tokens":{output}}}}}"#,
                self.stop_reason(api),
                self.cache_usage(),
            ),
            Api::OpenAi => format!(
                r#"{{"id":{id},"object":"chat.completion","created":{},"model":{model},"choices":[{{"index":0,"message":{{"role":"assistant","content":{text},"refusal":null}},"logprobs":null,"finish_reason":"{}"}}],"usage":{{"prompt_tokens":{input},"completion_tokens":{output},"total_tokens":{}}}}}"#,
                self.created,
                self.stop_reason(api),
                input + output,
            ),
        }
    }
}

/// `s` cut at about half its bytes (on a character boundary): JSON that no parser accepts.
pub fn truncate_half(s: &str) -> String {
    let mut cut = s.len() / 2;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.get(..cut).unwrap_or_default().to_owned()
}
