//! OpenAI Chat Completions: `POST /v1/chat/completions` with `Authorization: Bearer`.

use super::http::Json;
use super::{count, Endpoint, Reply, Usage};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_json::parsed;

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
