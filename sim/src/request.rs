//! Reading and validating request bodies the way the real APIs do: the fields they require,
//! the roles they accept, and their error messages (Anthropic's `field: problem` style,
//! OpenAI's `param` and `code`). Bodies arrive already parsed, through the [`Json`] view.

use crate::api::Api;
use crate::cache::{self, Breakpoint};
use crate::error::{ApiError, ErrorKind};
use crate::json::Json;

/// What the sim needs from a valid request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `model`, echoed in the reply.
    pub model: String,
    /// The request's own cap on output tokens, if it set one.
    pub max_tokens: Option<u64>,
    /// All text (system first), joined by newlines: what the reply length is derived from.
    pub text: String,
    /// The last user message's text: what the reply summarises.
    pub last_user: String,
    /// Characters of message text (without the joins).
    pub chars: u64,
    /// `stream: true`: the reply goes out as server-sent events (`stream.rs`).
    pub stream: bool,
    /// OpenAI's `stream_options.include_usage`: a usage chunk before `data: [DONE]`.
    pub include_usage: bool,
    /// Anthropic's `cache_control` blocks, in order (`cache.rs`).
    pub cache: Vec<Breakpoint>,
    /// Tools' names and descriptions: part of every cached prefix's key.
    tools: String,
}

impl Prompt {
    /// Input tokens, estimated as ceil(chars / 4).
    pub fn input_tokens(&self) -> u64 {
        self.chars.div_ceil(4)
    }

    fn add(&mut self, text: &str) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(text);
        self.chars += text.chars().count() as u64;
    }

    /// A `cache_control` block ends here: the prefix so far (model, tools, text) is a
    /// cache entry's key.
    fn mark(&mut self, long: Option<bool>) {
        if let Some(long) = long {
            let key = cache::key(&[&self.model, &self.tools, &self.text]);
            let tokens = self.chars.div_ceil(4);
            self.cache.push(Breakpoint { key, tokens, long });
        }
    }
}

/// The most `cache_control` blocks a request may have.
const MAX_BREAKPOINTS: usize = 4;

/// A block's `cache_control`: `None` without one, `Some(true)` for `ttl: "1h"`.
fn cache_control<J: Json>(block: &J, at: &str) -> Result<Option<bool>, ApiError> {
    let Some(cc) = block.field("cache_control") else {
        return Ok(None);
    };
    let api = Api::Anthropic;
    let at = if at.is_empty() {
        String::new()
    } else {
        format!("{at}.")
    };
    if cc.field("type").and_then(|t| t.text()).as_deref() != Some("ephemeral") {
        return Err(bad(
            api,
            &format!("{at}cache_control.type"),
            Problem::Not("'ephemeral'"),
        ));
    }
    match cc.field("ttl").map(|t| t.text()) {
        None => Ok(Some(false)),
        Some(Some(t)) if t == "5m" => Ok(Some(false)),
        Some(Some(t)) if t == "1h" => Ok(Some(true)),
        Some(_) => Err(bad(
            api,
            &format!("{at}cache_control.ttl"),
            Problem::Not("'5m' or '1h'"),
        )),
    }
}

/// How a field is wrong.
#[derive(Clone, Copy)]
enum Problem {
    Missing,
    /// What it should be, e.g. "a valid string".
    Not(&'static str),
}

/// A 400 in `api`'s words: Anthropic's `path: problem`, OpenAI's message with `param` and
/// `code`. One function for both keeps the wasm build small.
fn bad(api: Api, path: &str, problem: Problem) -> ApiError {
    let (message, code) = match (api, problem) {
        (Api::Anthropic, Problem::Missing) => (format!("{path}: Field required"), None),
        (Api::Anthropic, Problem::Not(want)) => (format!("{path}: Input should be {want}"), None),
        (Api::OpenAi, Problem::Missing) => (
            format!("Missing required parameter: '{path}'."),
            Some("missing_required_parameter"),
        ),
        (Api::OpenAi, Problem::Not(want)) => (
            format!("Invalid '{path}': expected {want}."),
            Some("invalid_value"),
        ),
    };
    ApiError {
        param: (api == Api::OpenAi).then(|| path.to_owned()),
        code,
        ..ApiError::new(ErrorKind::Invalid, message)
    }
}

/// `messages.0` (Anthropic) or `messages[0]` (OpenAI).
fn index(api: Api, path: &str, i: usize) -> String {
    match api {
        Api::Anthropic => format!("{path}.{i}"),
        Api::OpenAi => format!("{path}[{i}]"),
    }
}

/// A positive whole number of tokens.
fn token_count<J: Json>(v: &J) -> Option<u64> {
    v.number()
        .filter(|n| n.fract() == 0.0 && *n >= 1.0 && *n <= 1e9)
        .map(|n| n as u64)
}

/// One content block: its text, if it has any, and its `cache_control` (Anthropic only).
type Piece = (Option<String>, Option<bool>);

/// Text of a content value: a string, or a non-empty list of blocks whose `text` blocks count
/// (images, documents and tool blocks are accepted and carry none).
fn content_text<J: Json>(api: Api, content: &J, path: &str) -> Result<Vec<Piece>, ApiError> {
    if let Some(s) = content.text() {
        return Ok(vec![(Some(s), None)]);
    }
    let blocks = content.items();
    if blocks.is_empty() {
        let want = "a string or a non-empty list of content blocks";
        return Err(bad(api, path, Problem::Not(want)));
    }
    let mut out = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = index(api, path, j);
        let text = match block.field("type").and_then(|t| t.text()).as_deref() {
            None => return Err(bad(api, &format!("{at}.type"), Problem::Missing)),
            Some("text") => match block.field("text").and_then(|t| t.text()) {
                Some(t) => Some(t),
                None => return Err(bad(api, &format!("{at}.text"), Problem::Missing)),
            },
            Some(_) => None,
        };
        let cached = match api {
            Api::Anthropic => cache_control(block, &at)?,
            Api::OpenAi => None,
        };
        out.push((text, cached));
    }
    Ok(out)
}

/// Validates a Messages (Anthropic) or Chat Completions (OpenAI) body.
pub fn parse<J: Json>(api: Api, body: Option<&J>) -> Result<Prompt, ApiError> {
    let Some(body) = body else {
        let message = "The request body is not valid JSON".to_owned();
        return Err(ApiError::new(ErrorKind::Invalid, message));
    };
    let model = match body.field("model") {
        None => return Err(bad(api, "model", Problem::Missing)),
        Some(m) => m
            .text()
            .ok_or_else(|| bad(api, "model", Problem::Not("a valid string")))?,
    };
    // Anthropic requires max_tokens; OpenAI takes either name, or neither.
    let (caps, roles, role_want): (&[&str], &[&str], _) = match api {
        Api::Anthropic => (
            &["max_tokens"],
            &["user", "assistant"],
            "'user' or 'assistant'",
        ),
        Api::OpenAi => (
            &["max_completion_tokens", "max_tokens"],
            &[
                "system",
                "developer",
                "user",
                "assistant",
                "tool",
                "function",
            ],
            "one of 'system', 'developer', 'user', 'assistant', 'tool', 'function'",
        ),
    };
    let mut max_tokens = None;
    for key in caps {
        if let Some(v) = body.field(key) {
            let want = "an integer greater than or equal to 1";
            let n = token_count(&v).ok_or_else(|| bad(api, key, Problem::Not(want)))?;
            max_tokens = max_tokens.or(Some(n));
        }
    }
    if api == Api::Anthropic && max_tokens.is_none() {
        return Err(bad(api, "max_tokens", Problem::Missing));
    }
    let messages = body
        .field("messages")
        .ok_or_else(|| bad(api, "messages", Problem::Missing))?
        .items();
    if messages.is_empty() {
        let want = "a non-empty list of messages";
        return Err(bad(api, "messages", Problem::Not(want)));
    }
    let (stream, include_usage) = stream_flags(api, body)?;
    let mut prompt = Prompt {
        model,
        max_tokens,
        stream,
        include_usage,
        ..Prompt::default()
    };
    if api == Api::Anthropic {
        for (i, tool) in body
            .field("tools")
            .map(|t| t.items())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            for key in ["name", "description"] {
                prompt.tools.extend(tool.field(key).and_then(|v| v.text()));
                prompt.tools.push('\0');
            }
            let long = cache_control(tool, &format!("tools.{i}"))?;
            prompt.mark(long);
        }
    }
    if let Some(system) = body.field("system").filter(|_| api == Api::Anthropic) {
        for (t, long) in content_text(api, &system, "system")? {
            if let Some(t) = t {
                prompt.add(&t);
            }
            prompt.mark(long);
        }
    }
    for (i, m) in messages.iter().enumerate() {
        let at = index(api, "messages", i);
        let role = m
            .field("role")
            .ok_or_else(|| bad(api, &format!("{at}.role"), Problem::Missing))?
            .text()
            .filter(|r| roles.contains(&r.as_str()))
            .ok_or_else(|| bad(api, &format!("{at}.role"), Problem::Not(role_want)))?;
        let path = format!("{at}.content");
        let texts = match m.field("content") {
            Some(c) => content_text(api, &c, &path)?,
            // OpenAI: an assistant message with tool calls may have no content.
            None if api == Api::OpenAi => Vec::new(),
            None => return Err(bad(api, &path, Problem::Missing)),
        };
        let mut words = Vec::new();
        for (t, long) in texts {
            if let Some(t) = t {
                prompt.add(&t);
                words.push(t);
            }
            prompt.mark(long);
        }
        if role == "user" {
            prompt.last_user = words.join(" ");
        }
    }
    if api == Api::Anthropic {
        // Automatic caching: a top-level `cache_control` marks the end of the last message.
        let long = cache_control(body, "")?;
        prompt.mark(long);
        if prompt.cache.len() > MAX_BREAKPOINTS {
            let message = format!(
                "A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {}.",
                prompt.cache.len()
            );
            return Err(ApiError::new(ErrorKind::Invalid, message));
        }
    }
    Ok(prompt)
}

/// `stream` (a boolean when present) and, for OpenAI, `stream_options.include_usage`, which
/// the API accepts only together with `stream: true`.
fn stream_flags<J: Json>(api: Api, body: &J) -> Result<(bool, bool), ApiError> {
    let flag = |v: Option<J>, path: &str| match v {
        None => Ok(false),
        Some(v) => v
            .boolean()
            .ok_or_else(|| bad(api, path, Problem::Not("a valid boolean"))),
    };
    let stream = flag(body.field("stream"), "stream")?;
    if api == Api::Anthropic {
        return Ok((stream, false));
    }
    let Some(options) = body.field("stream_options") else {
        return Ok((stream, false));
    };
    if !stream {
        let message = "The 'stream_options' parameter is only allowed when 'stream' is enabled.";
        return Err(ApiError {
            param: Some("stream_options".into()),
            ..ApiError::new(ErrorKind::Invalid, message.into())
        });
    }
    let usage = flag(
        options.field("include_usage"),
        "stream_options.include_usage",
    )?;
    Ok((stream, usage))
}

/// Auth, required headers and the body, in the order the real APIs check them.
pub fn check<J: Json>(
    api: Api,
    headers: &[(String, String)],
    body: Option<&J>,
) -> Result<Prompt, ApiError> {
    auth(api, headers)?;
    parse(api, body)
}

/// The API key and, for Anthropic, `anthropic-version`: what every route of the API checks
/// first (the Batch APIs' too).
pub fn auth(api: Api, headers: &[(String, String)]) -> Result<(), ApiError> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
    };
    match api {
        Api::Anthropic => {
            // The API takes `x-api-key`; newer SDKs may send the key as a Bearer token.
            let bearer = header("authorization").and_then(|v| v.strip_prefix("Bearer "));
            if header("x-api-key").or(bearer).is_none_or(str::is_empty) {
                let message = "x-api-key header is required".to_owned();
                return Err(ApiError::new(ErrorKind::Auth, message));
            }
            if header("anthropic-version").is_none_or(str::is_empty) {
                let message = "anthropic-version: header is required".to_owned();
                return Err(ApiError::new(ErrorKind::Invalid, message));
            }
        }
        Api::OpenAi => {
            let key = header("authorization").and_then(|v| {
                let (scheme, key) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
            });
            if key.is_none_or(str::is_empty) {
                let message = "You didn't provide an API key. You need to provide your API key \
                               in an Authorization header using Bearer auth (i.e. \
                               Authorization: Bearer YOUR_KEY)."
                    .to_owned();
                return Err(ApiError::new(ErrorKind::Auth, message));
            }
        }
    }
    Ok(())
}
