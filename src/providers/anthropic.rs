//! Anthropic Messages API: `POST /v1/messages` with `x-api-key` and `anthropic-version`.

use super::http::Json;
use super::{count, Endpoint, Reply, Usage};
use crate::core::cost::Tokens;

/// The public API.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The API version header edgebatch speaks by default.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// Where a Messages request goes, with its headers.
pub fn endpoint(base_url: &str, api_key: Option<String>, version: &str) -> Endpoint {
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("anthropic-version", version.to_owned()),
    ];
    if let Some(key) = api_key {
        headers.push(("x-api-key", key));
    }
    Endpoint {
        url: format!("{base_url}/v1/messages"),
        headers,
    }
}

/// The prompt-cache group of a Messages request: a hash (FNV-1a) of its model and of its
/// content up to and including its last `cache_control` block, in the API's order (tools,
/// system, messages; a top-level `cache_control` marks the end of the last message). `None`
/// without one. Of each block it reads the kind and text (a tool's name and description), so
/// two requests that differ only in other fields of a block before the mark (an image, a
/// tool's schema) share a key: they are scheduled as one group, and the API caches them
/// apart (a second write, never a wrong reply).
///
/// Also `None` for a prefix certainly shorter than any model's minimum cacheable length
/// ([`MIN_CACHEABLE`] tokens): the API caches nothing there, so holding the group behind a
/// primer would only delay it. A token is at least a byte, so a prefix of text blocks with
/// fewer bytes has fewer tokens; any other block (an image, a document, a tool with its
/// schema) may be long, and counts as long enough.
pub fn cache_key<J: Json>(body: &J) -> Option<u64> {
    let mut p = Prefix {
        hash: 0xcbf2_9ce4_8422_2325,
        len: 0,
        key: None,
    };
    p.add(body, "model");
    p.blocks(body.field("tools"));
    p.blocks(body.field("system"));
    for message in body
        .field("messages")
        .map(|m| m.items())
        .unwrap_or_default()
    {
        p.add(&message, "role");
        p.blocks(message.field("content"));
    }
    // Automatic caching marks the end, after any block's mark.
    match body.field("cache_control") {
        Some(_) => p.at_mark(),
        None => p.key,
    }
}

/// The fewest tokens any model caches (Anthropic's prompt caching docs: 1024 for Sonnet and
/// Opus 4 and older, 2048 and 4096 for others).
pub const MIN_CACHEABLE: usize = 1024;

/// [`cache_key`]'s running hash, the prefix's length so far (bytes of text, or
/// [`MIN_CACHEABLE`] for a block of unknown length), and the hash at the last mark so far.
struct Prefix {
    hash: u64,
    len: usize,
    key: Option<u64>,
}

impl Prefix {
    /// `v[name]`'s text (nothing when absent), then a 0 byte.
    fn add<J: Json>(&mut self, v: &J, name: &str) {
        self.text(v.field(name).and_then(|t| t.text()).unwrap_or_default());
    }

    /// The hash here, when the prefix so far may be long enough to be cached.
    fn at_mark(&self) -> Option<u64> {
        (self.len >= MIN_CACHEABLE).then_some(self.hash)
    }

    fn text(&mut self, text: String) {
        self.len += text.len();
        for b in text.bytes().chain([0]) {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// A string, or a list of blocks: each one's `type` and `text` (a tool's `name` and
    /// `description`), and its `cache_control` mark.
    fn blocks<J: Json>(&mut self, list: Option<J>) {
        let Some(list) = list else { return };
        if let Some(text) = list.text() {
            return self.text(text);
        }
        for block in list.items() {
            if block.field("type").and_then(|t| t.text()).as_deref() != Some("text") {
                self.len += MIN_CACHEABLE;
            }
            for name in ["type", "name", "text", "description"] {
                self.add(&block, name);
            }
            if block.field("cache_control").is_some() {
                self.key = self.at_mark();
            }
        }
    }
}

/// Reads a Message: its text blocks joined, `stop_reason`, `usage`.
pub fn parse_reply<J: Json>(json: &J) -> Result<Reply, String> {
    parse_reply_parts(json).map(Reply::joined)
}

/// [`parse_reply`] with the text blocks' strings not yet joined.
pub fn parse_reply_parts<J: Json>(json: &J) -> Result<Reply<Vec<J>>, String> {
    let content = json
        .field("content")
        .ok_or("reply has no `content`: not a Messages API reply")?;
    let text = content
        .items()
        .into_iter()
        .filter(|block| block.field("type").and_then(|t| t.text()).as_deref() == Some("text"))
        .filter_map(|block| block.field("text").filter(Json::is_text))
        .collect();
    let usage = json.field("usage").ok_or("reply has no `usage`")?;
    Ok(Reply {
        text,
        stop_reason: json.field("stop_reason").and_then(|s| s.text()),
        usage: Usage {
            input_tokens: count(&usage, "input_tokens")
                .ok_or("usage.input_tokens is not a count")?,
            output_tokens: count(&usage, "output_tokens")
                .ok_or("usage.output_tokens is not a count")?,
        },
    })
}

/// The billed tokens of a Message's `usage`: `input_tokens` (not cached), the cache writes
/// (`cache_creation_input_tokens`, split by `cache_creation.ephemeral_1h_input_tokens` when
/// the reply says, else all 5-minute), the cache reads (`cache_read_input_tokens`).
pub fn billed<J: Json>(usage: &J) -> Option<Tokens> {
    let n = |key| count(usage, key).unwrap_or(0);
    let split = usage.field("cache_creation");
    let part = |key| split.as_ref().and_then(|s| count(s, key)).unwrap_or(0);
    let (five, hour) = (
        part("ephemeral_5m_input_tokens"),
        part("ephemeral_1h_input_tokens"),
    );
    let writes = count(usage, "cache_creation_input_tokens").unwrap_or(five + hour);
    let hour = hour.min(writes);
    Some(Tokens {
        input: count(usage, "input_tokens")?,
        output: count(usage, "output_tokens")?,
        cache_write_5m: writes - hour,
        cache_write_1h: hour,
        cache_read: n("cache_read_input_tokens"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_json::parsed;

    #[test]
    fn cache_keys_cover_the_prefix_up_to_the_last_mark() {
        let pad = "x".repeat(MIN_CACHEABLE);
        let key = |system: &str, question: &str, model: &str| {
            let body = format!(
                r#"{{"model":"{model}","system":[{{"type":"text","text":"{system} {pad}","cache_control":{{"type":"ephemeral"}}}}],
                "messages":[{{"role":"user","content":"{question}"}}]}}"#
            );
            cache_key(&parsed(&body).unwrap())
        };
        let shared = key("rules", "a?", "m");
        assert!(shared.is_some());
        assert_eq!(
            shared,
            key("rules", "b?", "m"),
            "what follows the mark is not part of it"
        );
        assert_ne!(shared, key("other rules", "a?", "m"));
        assert_ne!(shared, key("rules", "a?", "n"), "one cache per model");
        let in_messages = |system: &str| {
            let body = format!(
                r#"{{"model":"m","system":"{system}","messages":[{{"role":"user",
                "content":[{{"type":"text","text":"doc {pad}","cache_control":{{"type":"ephemeral"}}}}]}}]}}"#
            );
            cache_key(&parsed(&body).unwrap())
        };
        assert_ne!(
            in_messages("a"),
            in_messages("b"),
            "a string system is part of the prefix"
        );
        let unmarked =
            r#"{"model":"m","system":"rules","messages":[{"role":"user","content":"a"}]}"#;
        assert_eq!(cache_key(&parsed(unmarked).unwrap()), None);
        let auto = format!(
            r#"{{"model":"m","cache_control":{{"type":"ephemeral"}},"messages":[{{"role":"user","content":"a {pad}"}}]}}"#
        );
        assert!(cache_key(&parsed(&auto).unwrap()).is_some());
    }

    #[test]
    fn a_prefix_too_short_to_be_cached_has_no_key() {
        let marked = |content: &str, tools: &str| {
            let body = format!(
                r#"{{"model":"m",{tools}"system":[{{"type":"text","text":"You are terse.","cache_control":{{"type":"ephemeral"}}}}],
                "messages":[{{"role":"user","content":[{content}]}}]}}"#
            );
            cache_key(&parsed(&body).unwrap())
        };
        let text = |n: usize| format!(r#"{{"type":"text","text":"{}"}}"#, "y".repeat(n));
        assert_eq!(
            marked(&text(1), ""),
            None,
            "a short system prompt: nothing to wait for"
        );
        let image =
            r#"{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}"#;
        let tool = r#""tools":[{"name":"t","description":"d","input_schema":{"type":"object"}}],"#;
        assert!(
            marked(&text(1), tool).is_some(),
            "a tool's schema may be long"
        );
        // Only what comes before the last mark counts: here, the short system prompt.
        assert_eq!(
            marked(&format!("{},{image}", text(MIN_CACHEABLE)), ""),
            None
        );
        let mark = r#","cache_control":{"type":"ephemeral"}}"#;
        let image_marked = format!("{}{mark}", image.strip_suffix('}').unwrap());
        assert!(
            marked(&image_marked, "").is_some(),
            "an image before the mark may be long"
        );
        let long_marked = format!("{}{mark}", text(MIN_CACHEABLE).strip_suffix('}').unwrap());
        assert!(marked(&long_marked, "").is_some());
        let short_marked = format!(
            "{}{mark}",
            text(MIN_CACHEABLE - 40).strip_suffix('}').unwrap()
        );
        assert_eq!(
            marked(&short_marked, ""),
            None,
            "fewer bytes than the minimum's tokens"
        );
    }

    #[test]
    fn replies() {
        let message = r#"{"id":"msg_1","type":"message","role":"assistant","model":"m",
            "content":[{"type":"text","text":"Hello"},{"type":"tool_use","id":"t","name":"x","input":{}},{"type":"text","text":", world"}],
            "stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":5}}"#;
        let r = parse_reply(&parsed(message).unwrap()).unwrap();
        assert_eq!(r.text, "Hello, world");
        assert_eq!(r.stop_reason.as_deref(), Some("end_turn"));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 5
            }
        );

        let table = [
            (
                r#"{"usage":{"input_tokens":1,"output_tokens":1}}"#,
                "reply has no `content`: not a Messages API reply",
            ),
            (r#"{"content":[]}"#, "reply has no `usage`"),
            (
                r#"{"content":[],"usage":{"input_tokens":-1,"output_tokens":1}}"#,
                "usage.input_tokens is not a count",
            ),
            (
                r#"{"content":[],"usage":{"input_tokens":1,"output_tokens":"7"}}"#,
                "usage.output_tokens is not a count",
            ),
        ];
        for (body, want) in table {
            assert_eq!(
                parse_reply(&parsed(body).unwrap()).unwrap_err(),
                want,
                "{body}"
            );
        }
    }

    #[test]
    fn only_text_blocks_whose_text_is_a_string_are_parts() {
        let body = r#"{"content":[{"type":"text","text":5},{"type":"text","text":"ok"}],
            "usage":{"input_tokens":1,"output_tokens":1}}"#;
        let parts = parse_reply_parts(&parsed(body).unwrap()).unwrap().text;
        assert_eq!(parts.len(), 1, "{parts:?}");
    }

    #[test]
    fn billed_tokens_count_cache_writes_and_reads_once() {
        let usage = |body: &str| billed(&parsed(body).unwrap());
        let plain = usage(r#"{"input_tokens":12,"output_tokens":5}"#).unwrap();
        assert_eq!((plain.input, plain.output, plain.cache_read), (12, 5, 0));
        let cached = usage(
            r#"{"input_tokens":3,"output_tokens":9,"cache_creation_input_tokens":3000,
                "cache_read_input_tokens":2000,
                "cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":2000}}"#,
        )
        .unwrap();
        let want = Tokens {
            input: 3,
            output: 9,
            cache_write_5m: 1000,
            cache_write_1h: 2000,
            cache_read: 2000,
        };
        assert_eq!(cached, want);
        let unsplit =
            usage(r#"{"input_tokens":1,"output_tokens":1,"cache_creation_input_tokens":70}"#);
        assert_eq!(unsplit.unwrap().cache_write_5m, 70);
        assert_eq!(usage(r#"{"output_tokens":1}"#), None);
    }

    #[test]
    fn no_key_no_header() {
        let e = endpoint("https://api.anthropic.com", None, DEFAULT_VERSION);
        assert!(e.headers.iter().all(|(name, _)| *name != "x-api-key"));
    }
}
