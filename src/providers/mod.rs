//! The APIs edgebatch speaks, in pure Rust: how to address a request, how to read the reply,
//! its usage and its rate-limit headers. JSON comes in through the [`http::Json`] view, so the
//! wasm build uses the host's `JSON.parse` and native tests use `serde_json`.

pub mod anthropic;
pub mod headers;
pub mod http;
pub mod openai;
pub mod ratelimit;

use crate::core::cost::{Pico, Prices, Served, Tokens};
use crate::core::limits::Cost;
use crate::options::{OptionError, OptionErrorKind};
use crate::text::{quote, split, trim_end};
use http::Json;
use ratelimit::RateLimits;

/// Which API a processor's `run()` talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// Anthropic Messages API.
    Anthropic,
    /// OpenAI Chat Completions API.
    OpenAi,
    /// Plain fetch specs `{ url, method?, headers?, body? }`.
    Http,
}

impl ProviderKind {
    /// The name `provider.name` gives it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Http => "http",
        }
    }
}

/// A configured provider: where requests go and how they authenticate.
#[derive(Clone, PartialEq, Eq)]
pub struct Provider {
    /// The API.
    pub kind: ProviderKind,
    api_key: Option<String>,
    base_url: String,
    version: String,
    browser: bool,
}

impl std::fmt::Debug for Provider {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

pub use crate::core::limits::Usage;

/// What a successful reply says, in the same shape for every provider. `Reply<Vec<J>>` holds
/// the text as the reply's own JSON strings, not yet joined: the wasm edge joins them in JS,
/// so a long reply's text never passes through the wasm memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reply<T = String> {
    /// The generated text (all text blocks, joined).
    pub text: T,
    /// Why generation stopped: `end_turn`, `max_tokens`, `stop`, `length`, ...
    pub stop_reason: Option<String>,
    /// Token usage.
    pub usage: Usage,
}

impl<J: Json> Reply<Vec<J>> {
    /// The reply with its text parts joined.
    pub fn joined(self) -> Reply {
        Reply {
            text: self
                .text
                .iter()
                .filter_map(Json::text)
                .collect::<Vec<_>>()
                .join(""),
            stop_reason: self.stop_reason,
            usage: self.usage,
        }
    }
}

/// Where to send one request and with which headers (the body is the item itself, as JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Full URL.
    pub url: String,
    /// Headers, names lower-case. They may hold the API key: never log or return them.
    pub headers: Vec<(&'static str, String)>,
}

fn bad(kind: OptionErrorKind, message: String) -> OptionError {
    OptionError { kind, message }
}

impl Provider {
    /// Validates `provider: { name, apiKey?, baseUrl?, version? }`.
    pub fn new(
        name: &str,
        api_key: Option<String>,
        base_url: Option<String>,
        version: Option<String>,
    ) -> Result<Provider, OptionError> {
        let (kind, default_url) = match name {
            "anthropic" => (ProviderKind::Anthropic, anthropic::DEFAULT_BASE_URL),
            "openai" => (ProviderKind::OpenAi, openai::DEFAULT_BASE_URL),
            "http" => (ProviderKind::Http, ""),
            other => {
                return Err(bad(
                    OptionErrorKind::Range,
                    format!(
                        "provider.name must be \"anthropic\", \"openai\" or \"http\", got {}",
                        quote(other)
                    ),
                ))
            }
        };
        let base_url = base_url.unwrap_or_else(|| default_url.to_owned());
        // The host: what follows the scheme, up to the path; `http://` alone has none.
        let host = ["https://", "http://"]
            .iter()
            .find_map(|scheme| base_url.strip_prefix(scheme))
            .map(|rest| split(rest, b"/?#").next().unwrap_or(""));
        let valid_host = host.is_some_and(|h| {
            !h.is_empty() && !h.starts_with(':') && !h.bytes().any(|b| b <= b' ' || b == b'\\')
        });
        if kind != ProviderKind::Http && !valid_host {
            return Err(bad(
                OptionErrorKind::Range,
                format!(
                    "provider.baseUrl must be an http(s) URL with a host, got {}",
                    quote(&base_url)
                ),
            ));
        }
        if api_key.as_deref().is_some_and(str::is_empty) {
            return Err(bad(
                OptionErrorKind::Range,
                "provider.apiKey must not be empty".into(),
            ));
        }
        Ok(Provider {
            kind,
            api_key,
            base_url: trim_end(&base_url, b'/').to_owned(),
            version: version.unwrap_or_else(|| anthropic::DEFAULT_VERSION.to_owned()),
            browser: false,
        })
    }

    /// `dangerouslyAllowBrowser: true`: the caller knowingly sends its key from a browser page.
    /// Anthropic answers such cross-origin calls only with
    /// `anthropic-dangerous-direct-browser-access: true`; OpenAI needs nothing. Refused for
    /// `http` providers, whose headers are the caller's own.
    pub fn allow_browser(mut self, allow: bool) -> Result<Provider, OptionError> {
        if allow && self.kind == ProviderKind::Http {
            return Err(bad(
                OptionErrorKind::Range,
                "provider.dangerouslyAllowBrowser applies to \"anthropic\" and \"openai\" only; an \"http\" item sets its own headers".into(),
            ));
        }
        self.browser = allow;
        Ok(self)
    }

    /// The secrets this provider sends (its key), to scrub from what a call reports.
    pub fn secrets(&self) -> crate::redact::Secrets {
        let mut secrets = crate::redact::Secrets::default();
        if let Some(key) = &self.api_key {
            secrets.add(key);
        }
        secrets
    }

    /// Where a request goes, with its headers. `None` for [`ProviderKind::Http`].
    pub fn endpoint(&self) -> Option<Endpoint> {
        let key = self.api_key.clone();
        match self.kind {
            ProviderKind::Anthropic => {
                let mut e = anthropic::endpoint(&self.base_url, key, &self.version);
                if self.browser {
                    e.headers
                        .push(("anthropic-dangerous-direct-browser-access", "true".into()));
                }
                Some(e)
            }
            ProviderKind::OpenAi => Some(openai::endpoint(&self.base_url, key)),
            ProviderKind::Http => None,
        }
    }

    /// Checks one request body before it is sent; an `Err` fails that item as `invalid`.
    pub fn check_request<J: Json>(&self, body: &J) -> Result<(), String> {
        if body.field("stream").and_then(|s| s.boolean()) == Some(true) {
            return Err("streaming requests (\"stream\": true) are not supported by run(); use map() with your own client".into());
        }
        let needs: &[&str] = match self.kind {
            ProviderKind::Anthropic => &["model", "max_tokens", "messages"],
            ProviderKind::OpenAi => &["model", "messages"],
            ProviderKind::Http => &[],
        };
        match needs.iter().find(|k| body.field(k).is_none()) {
            Some(missing) => Err(format!("request body needs `{missing}`")),
            None => Ok(()),
        }
    }

    /// What a request body is expected to use: input tokens estimated at 4 characters a
    /// token over every text in `system` and `messages`, output tokens from `max_tokens`
    /// (or `max_completion_tokens`), else [`DEFAULT_OUTPUT_TOKENS`].
    pub fn estimate_cost<J: Json>(&self, body: &J) -> Cost {
        let mut chars = body.field("system").map_or(0, |s| text_chars(&s));
        for message in body
            .field("messages")
            .map(|m| m.items())
            .unwrap_or_default()
        {
            chars += message.field("content").map_or(0, |c| text_chars(&c));
        }
        let output = ["max_tokens", "max_completion_tokens"]
            .iter()
            .find_map(|k| count(body, k))
            .unwrap_or(DEFAULT_OUTPUT_TOKENS);
        Cost {
            input_tokens: chars.div_ceil(4) as u64,
            output_tokens: output,
        }
    }

    /// The prompt-cache group of a request body ([`anthropic::cache_key`]); `None` for the
    /// other APIs (OpenAI caches on its own, with no mark to schedule by).
    pub fn cache_key<J: Json>(&self, body: &J) -> Option<u64> {
        (self.kind == ProviderKind::Anthropic)
            .then(|| anthropic::cache_key(body))
            .flatten()
    }

    /// Reads a 2xx reply body.
    pub fn parse_reply<J: Json>(&self, json: &J) -> Result<Reply, String> {
        self.parse_reply_parts(json).map(Reply::joined)
    }

    /// Reads a 2xx reply body, its text left as the reply's JSON strings (in order).
    pub fn parse_reply_parts<J: Json>(&self, json: &J) -> Result<Reply<Vec<J>>, String> {
        match self.kind {
            ProviderKind::Anthropic => anthropic::parse_reply_parts(json),
            ProviderKind::OpenAi => openai::parse_reply_parts(json),
            ProviderKind::Http => Err("plain http replies are not parsed".into()),
        }
    }

    /// Reads the rate-limit headers of any reply.
    pub fn rate_limits(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        now_unix_ms: f64,
    ) -> RateLimits {
        match self.kind {
            ProviderKind::Anthropic => ratelimit::anthropic(header, now_unix_ms),
            ProviderKind::OpenAi => ratelimit::openai(header),
            ProviderKind::Http => RateLimits::default(),
        }
    }
}

/// The output reserved for a request that sets no `max_tokens`.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 1024;

/// Characters of text in a content value: a string, or blocks with `text`.
fn text_chars<J: Json>(content: &J) -> usize {
    match content.text() {
        Some(s) => s.chars().count(),
        None => content
            .items()
            .iter()
            .filter_map(|block| block.field("text").and_then(|t| t.text()))
            .map(|t| t.chars().count())
            .sum(),
    }
}

/// Reads a token count that must be a non-negative integer.
/// The billed tokens of a reply's `usage`, in either API's shape (OpenAI's has
/// `prompt_tokens`).
pub fn billed_tokens<J: Json>(usage: &J) -> Option<Tokens> {
    if usage.field("prompt_tokens").is_some() {
        openai::billed(usage)
    } else {
        anthropic::billed(usage)
    }
}

/// What a reply (a Message or a chat completion: its `model` and `usage`) cost realtime, when
/// `prices` has its model.
pub fn reply_cost<J: Json>(prices: &Prices, reply: &J) -> Option<Pico> {
    let price = prices.find(&reply.field("model")?.text()?)?;
    let tokens = billed_tokens(&reply.field("usage")?)?;
    Some(price.cost(&tokens, Served::Realtime))
}

fn count<J: Json>(json: &J, key: &str) -> Option<u64> {
    json.field(key)
        .and_then(|v| v.number())
        .filter(|n| *n >= 0.0 && n.fract() == 0.0)
        .map(|n| n as u64)
}

#[cfg(test)]
pub(crate) mod test_json {
    //! The [`Json`] view over `serde_json`, for native tests.
    use super::http::Json;

    impl Json for serde_json::Value {
        fn field(&self, key: &str) -> Option<Self> {
            self.get(key).filter(|v| !v.is_null()).cloned()
        }
        fn text(&self) -> Option<String> {
            self.as_str().map(str::to_owned)
        }
        fn number(&self) -> Option<f64> {
            self.as_f64()
        }
        fn boolean(&self) -> Option<bool> {
            self.as_bool()
        }
        fn items(&self) -> Vec<Self> {
            self.as_array().cloned().unwrap_or_default()
        }
    }

    /// Parses test JSON, `None` when it is not JSON.
    pub fn parsed(text: &str) -> Option<serde_json::Value> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::test_json::parsed;
    use super::*;

    #[test]
    fn provider_validation() {
        assert!(Provider::new("anthropic", Some("k".into()), None, None).is_ok());
        let e = Provider::new("gemini", None, None, None).unwrap_err();
        assert_eq!(
            e.message,
            "provider.name must be \"anthropic\", \"openai\" or \"http\", got \"gemini\""
        );
        let e = Provider::new("openai", None, Some("ftp://x".into()), None).unwrap_err();
        assert!(e.message.starts_with("provider.baseUrl"), "{}", e.message);
        for bad in [
            "http://",
            "https:///v1",
            "http://:8080",
            "http://a b",
            "https://?x",
        ] {
            let e = Provider::new("anthropic", None, Some(bad.into()), None).unwrap_err();
            assert!(e.message.contains("with a host"), "{bad}: {}", e.message);
        }
        assert!(Provider::new(
            "anthropic",
            None,
            Some("http://127.0.0.1:8787/".into()),
            None
        )
        .is_ok());
        let e = Provider::new("openai", Some(String::new()), None, None).unwrap_err();
        assert_eq!(e.message, "provider.apiKey must not be empty");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let p = Provider::new("anthropic", Some("sk-ant-secret".into()), None, None).unwrap();
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("secret") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn a_providers_key_is_among_the_secrets_to_scrub() {
        let p = Provider::new("openai", Some("sk-live-123".into()), None, None).unwrap();
        let scrubbed = p.secrets().scrub("401: bad key sk-live-123");
        assert!(!scrubbed.contains("sk-live-123"), "{scrubbed}");
        let none = Provider::new("http", None, None, None).unwrap();
        assert!(none.secrets().is_empty());
    }

    #[test]
    fn each_provider_reads_its_own_replies_and_rate_limit_headers() {
        let make = |kind| Provider::new(kind, Some("k".into()), None, None).unwrap();
        let (anthropic, openai) = (make("anthropic"), make("openai"));
        let http = Provider::new("http", None, None, None).unwrap();
        let message = r#"{"content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn",
            "usage":{"input_tokens":3,"output_tokens":1}}"#;
        let completion = r#"{"choices":[{"message":{"content":"Yo"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        let text = |p: &Provider, body| p.parse_reply(&parsed(body).unwrap()).map(|r| r.text);
        assert_eq!(text(&anthropic, message), Ok("Hi".to_string()));
        assert_eq!(text(&openai, completion), Ok("Yo".to_string()));
        assert!(text(&http, completion).is_err());
        let headers = |name: &str| match name {
            "anthropic-ratelimit-requests-limit" => Some("50".to_string()),
            "x-ratelimit-limit-requests" => Some("60".to_string()),
            _ => None,
        };
        let requests = |p: &Provider| p.rate_limits(&headers, 0.0).requests.limit;
        assert_eq!(
            [requests(&anthropic), requests(&openai), requests(&http)],
            [Some(50), Some(60), None]
        );
    }

    #[test]
    fn endpoints() {
        let a = Provider::new(
            "anthropic",
            Some("k1".into()),
            Some("http://127.0.0.1:9/sim/".into()),
            None,
        )
        .unwrap();
        let e = a.endpoint().unwrap();
        assert_eq!(e.url, "http://127.0.0.1:9/sim/v1/messages");
        assert!(e.headers.contains(&("x-api-key", "k1".into())));
        assert!(e
            .headers
            .contains(&("anthropic-version", "2023-06-01".into())));
        let o = Provider::new("openai", Some("k2".into()), None, None).unwrap();
        let e = o.endpoint().unwrap();
        assert_eq!(e.url, "https://api.openai.com/v1/chat/completions");
        assert!(e.headers.contains(&("authorization", "Bearer k2".into())));
        assert_eq!(
            Provider::new("http", None, None, None).unwrap().endpoint(),
            None
        );
    }

    #[test]
    fn browser_access_header_only_when_asked() {
        const HEADER: &str = "anthropic-dangerous-direct-browser-access";
        let has = |p: &Provider| {
            p.endpoint()
                .unwrap()
                .headers
                .iter()
                .any(|(n, v)| *n == HEADER && v == "true")
        };
        let a = Provider::new("anthropic", Some("k".into()), None, None).unwrap();
        assert!(!has(&a));
        assert!(has(&a.clone().allow_browser(true).unwrap()));
        assert!(!has(&a.allow_browser(false).unwrap()));
        let o = Provider::new("openai", None, None, None)
            .unwrap()
            .allow_browser(true)
            .unwrap();
        assert!(o
            .endpoint()
            .unwrap()
            .headers
            .iter()
            .all(|(n, _)| *n != HEADER));
        let e = Provider::new("http", None, None, None)
            .unwrap()
            .allow_browser(true)
            .unwrap_err();
        assert!(
            e.message.starts_with("provider.dangerouslyAllowBrowser"),
            "{}",
            e.message
        );
    }

    #[test]
    fn cost_estimates() {
        let a = Provider::new("anthropic", None, None, None).unwrap();
        let body = parsed(
            r#"{"model":"m","max_tokens":300,"system":"Be brief.",
               "messages":[{"role":"user","content":"Summarize this document please"},
                           {"role":"user","content":[{"type":"text","text":"and this"},{"type":"image"}]}]}"#,
        )
        .unwrap();
        // 9 + 30 + 8 = 47 characters -> 12 tokens.
        assert_eq!(
            a.estimate_cost(&body),
            Cost {
                input_tokens: 12,
                output_tokens: 300
            }
        );
        let o = Provider::new("openai", None, None, None).unwrap();
        let bare = parsed(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(
            o.estimate_cost(&bare),
            Cost {
                input_tokens: 1,
                output_tokens: DEFAULT_OUTPUT_TOKENS
            }
        );
        let newer = parsed(r#"{"model":"m","max_completion_tokens":50,"messages":[]}"#).unwrap();
        assert_eq!(o.estimate_cost(&newer).output_tokens, 50);
    }

    #[test]
    fn request_checks() {
        let a = Provider::new("anthropic", None, None, None).unwrap();
        let ok = parsed(r#"{"model":"m","max_tokens":10,"messages":[]}"#).unwrap();
        assert_eq!(a.check_request(&ok), Ok(()));
        let missing = parsed(r#"{"model":"m","messages":[]}"#).unwrap();
        assert_eq!(
            a.check_request(&missing),
            Err("request body needs `max_tokens`".into())
        );
        let streaming =
            parsed(r#"{"model":"m","max_tokens":1,"messages":[],"stream":true}"#).unwrap();
        assert!(a.check_request(&streaming).unwrap_err().contains("stream"));
        let o = Provider::new("openai", None, None, None).unwrap();
        assert_eq!(
            o.check_request(&parsed(r#"{"model":"m","messages":[]}"#).unwrap()),
            Ok(())
        );
    }
}
