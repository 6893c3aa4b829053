//! OpenAI Chat Completions: `POST /v1/chat/completions` with `Authorization: Bearer`.

use super::http::Json;
use super::{count, Endpoint, Reply, Usage};
use crate::core::cost::Tokens;

/// The public API.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com";

/// Where a Chat Completions request goes, with its headers.
pub fn endpoint(base_url: &str, api_key: Option<String>) -> Endpoint {
    let mut headers = vec![("content-type", "application/json".to_owned())];
    if let Some(key) = api_key {
        headers.push(("authorization", format!("Bearer {key}")));
    }
    Endpoint {
        url: format!("{base_url}/v1/chat/completions"),
        headers,
    }
}

/// Reads a chat completion: the first choice's content, `finish_reason`, `usage`.
pub fn parse_reply<J: Json>(json: &J) -> Result<Reply, String> {
    parse_reply_parts(json).map(Reply::joined)
}

/// [`parse_reply`] with the content's string not yet read (none when it is not a string).
pub fn parse_reply_parts<J: Json>(json: &J) -> Result<Reply<Vec<J>>, String> {
    let choice = json
        .field("choices")
        .and_then(|c| c.items().into_iter().next())
        .ok_or("reply has no `choices`: not a Chat Completions reply")?;
    let text = choice
        .field("message")
        .and_then(|m| m.field("content"))
        .filter(Json::is_text)
        .into_iter()
        .collect();
    let usage = json.field("usage").ok_or("reply has no `usage`")?;
    Ok(Reply {
        text,
        stop_reason: choice.field("finish_reason").and_then(|s| s.text()),
        usage: Usage {
            input_tokens: count(&usage, "prompt_tokens")
                .ok_or("usage.prompt_tokens is not a count")?,
            output_tokens: count(&usage, "completion_tokens")
                .ok_or("usage.completion_tokens is not a count")?,
        },
    })
}

/// The billed tokens of a completion's `usage`: `prompt_tokens` includes
/// `prompt_tokens_details.cached_tokens` (the cache reads); OpenAI bills no cache writes.
pub fn billed<J: Json>(usage: &J) -> Option<Tokens> {
    let prompt = count(usage, "prompt_tokens")?;
    let details = usage.field("prompt_tokens_details");
    let cached = details
        .and_then(|d| count(&d, "cached_tokens"))
        .unwrap_or(0);
    let cached = cached.min(prompt);
    Some(Tokens {
        input: prompt - cached,
        output: count(usage, "completion_tokens")?,
        cache_read: cached,
        ..Tokens::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_json::parsed;

    #[test]
    fn billed_tokens_take_the_cached_ones_out_of_the_prompt() {
        let body = r#"{"prompt_tokens":2006,"completion_tokens":300,
            "prompt_tokens_details":{"cached_tokens":1920}}"#;
        let t = billed(&parsed(body).unwrap()).unwrap();
        assert_eq!((t.input, t.cache_read, t.output), (86, 1920, 300));
        let plain = billed(&parsed(r#"{"prompt_tokens":9,"completion_tokens":2}"#).unwrap());
        assert_eq!(plain.map(|t| (t.input, t.cache_read)), Some((9, 0)));
    }

    #[test]
    fn replies() {
        let completion = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"finish_reason":"length"}],
            "usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#;
        let r = parse_reply(&parsed(completion).unwrap()).unwrap();
        assert_eq!(r.text, "Hi there");
        assert_eq!(r.stop_reason.as_deref(), Some("length"));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 9,
                output_tokens: 2
            }
        );
        let refusal = r#"{"choices":[{"message":{"content":null},"finish_reason":"content_filter"}],
            "usage":{"prompt_tokens":1,"completion_tokens":0}}"#;
        assert_eq!(parse_reply(&parsed(refusal).unwrap()).unwrap().text, "");
        assert_eq!(
            parse_reply(&parsed(r#"{"choices":[]}"#).unwrap()).unwrap_err(),
            "reply has no `choices`: not a Chat Completions reply"
        );
    }
}
