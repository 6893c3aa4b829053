//! What a `stream: true` request gets back: its reply as server-sent events in each API's
//! format. Anthropic: `message_start`, `content_block_start`, `ping`, `content_block_delta`s,
//! `content_block_stop`, `message_delta`, `message_stop`, each as `event: <type>` and `data:`.
//! OpenAI: `data:` lines of `chat.completion.chunk`s, the last with its `finish_reason`, a
//! usage chunk when `stream_options.include_usage` asked for one, then `data: [DONE]`.
//! The events are made at once from the same [`Success`] a plain reply is; the host sends
//! them spaced over the generation time ([`crate::Action::Stream`]). Errors before a stream
//! starts (limits, faults, validation) are the ordinary JSON replies.

use crate::api::Api;
use crate::error::{ApiError, ErrorKind};
use crate::reply::Success;
use crate::text::quote;

/// The content type of a streamed reply (both APIs send this one).
pub const CONTENT_TYPE: &str = "text/event-stream; charset=utf-8";

/// Words per text delta: a few tokens each, as the real APIs send them.
const WORDS_PER_DELTA: usize = 3;

/// `text` in the pieces the deltas carry: a few words each, every piece after the first
/// starting with its space, so that they join back into `text` exactly. (`get`, not `[..]`:
/// a string slice that can panic brings Unicode tables into the wasm build.)
pub fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut words, mut in_word) = (0, 0, false);
    for (i, c) in text.char_indices() {
        let space = c == ' ';
        if space && in_word {
            words += 1;
            if words == WORDS_PER_DELTA {
                out.push(text.get(start..i).unwrap_or_default());
                (start, words) = (i, 0);
            }
        }
        in_word = !space;
    }
    if start < text.len() {
        out.push(text.get(start..).unwrap_or_default());
    }
    out
}

/// Appends one event: `event: <name>` when the API names its events, `data: <data>`, and the
/// blank line that ends it. (JSON from `quote` never holds a raw newline, so a blank line
/// only ever ends an event.)
fn event(out: &mut String, name: Option<&str>, data: &str) {
    if let Some(name) = name {
        out.push_str("event: ");
        out.push_str(name);
        out.push('\n');
    }
    out.push_str("data: ");
    out.push_str(data);
    out.push_str("\n\n");
}

/// The events of `reply` in `api`'s format, and how many events the whole stream has. With
/// `broken`, the stream breaks off after half its text with the API's error event (an
/// overload, as the real APIs send mid-stream) and sends nothing after it.
pub fn events(api: Api, reply: &Success, include_usage: bool, broken: bool) -> (String, usize) {
    let parts = pieces(reply.text);
    let sent = if broken { parts.len() / 2 } else { parts.len() };
    let error = ApiError::new(ErrorKind::Overloaded, "Overloaded".into()).body(api);
    let mut out = String::new();
    let (id, model) = (quote(reply.id), quote(reply.model));
    let whole = match api {
        Api::Anthropic => {
            let start = format!(
                r#"{{"type":"message_start","message":{{"id":{id},"type":"message","role":"assistant","model":{model},"content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{},{}"output_tokens":1}}}}}}"#,
                reply.input_tokens,
                reply.cache_usage()
            );
            event(&mut out, Some("message_start"), &start);
            let block = r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
            event(&mut out, Some("content_block_start"), block);
            event(&mut out, Some("ping"), r#"{"type":"ping"}"#);
            for part in parts.iter().take(sent) {
                let delta = format!(
                    r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#,
                    quote(part)
                );
                event(&mut out, Some("content_block_delta"), &delta);
            }
            if broken {
                event(&mut out, Some("error"), &error);
            } else {
                let stop = r#"{"type":"content_block_stop","index":0}"#;
                event(&mut out, Some("content_block_stop"), stop);
                let delta = format!(
                    r#"{{"type":"message_delta","delta":{{"stop_reason":"{}","stop_sequence":null}},"usage":{{"output_tokens":{}}}}}"#,
                    reply.stop_reason(api),
                    reply.output_tokens
                );
                event(&mut out, Some("message_delta"), &delta);
                event(&mut out, Some("message_stop"), r#"{"type":"message_stop"}"#);
            }
            parts.len() + 6
        }
        Api::OpenAi => {
            let head = format!(
                r#"{{"id":{id},"object":"chat.completion.chunk","created":{},"model":{model},"choices":["#,
                reply.created
            );
            // With include_usage, every chunk but the last carries `"usage":null`.
            let tail = if include_usage {
                r#"],"usage":null}"#
            } else {
                "]}"
            };
            let chunk = |out: &mut String, choice: &str| {
                event(out, None, &format!("{head}{choice}{tail}"));
            };
            let first = r#"{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}"#;
            chunk(&mut out, first);
            for part in parts.iter().take(sent) {
                let choice = format!(
                    r#"{{"index":0,"delta":{{"content":{}}},"logprobs":null,"finish_reason":null}}"#,
                    quote(part)
                );
                chunk(&mut out, &choice);
            }
            if broken {
                event(&mut out, None, &error);
            } else {
                let last = format!(
                    r#"{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"{}"}}"#,
                    reply.stop_reason(api)
                );
                chunk(&mut out, &last);
                if include_usage {
                    let (input, output) = (reply.input_tokens, reply.output_tokens);
                    let usage = format!(
                        r#"{head}],"usage":{{"prompt_tokens":{input},"completion_tokens":{output},"total_tokens":{}}}}}"#,
                        input + output
                    );
                    event(&mut out, None, &usage);
                }
                event(&mut out, None, "[DONE]");
            }
            parts.len() + 3 + usize::from(include_usage)
        }
    };
    (out, whole)
}
