//! The errors the sim sends, with their bodies in each API's shape: what a request check,
//! a limit or an injected fault answers instead of a reply.

use crate::api::Api;
use crate::text::quote;

/// The kinds of error the sim sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the body is wrong.
    Invalid,
    /// 401: no usable API key.
    Auth,
    /// 404: no such endpoint.
    NotFound,
    /// 405: the endpoint takes POST.
    Method,
    /// 429: a limit; `tokens` says which kind for OpenAI's `type`.
    RateLimit {
        /// A token limit rather than the request limit.
        tokens: bool,
    },
    /// Anthropic 529 `overloaded_error`, OpenAI 503.
    Overloaded,
    /// 500.
    Internal,
}

impl ErrorKind {
    /// The HTTP status on `api`.
    pub fn status(self, api: Api) -> u16 {
        match self {
            ErrorKind::Invalid => 400,
            ErrorKind::Auth => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::Method => 405,
            ErrorKind::RateLimit { .. } => 429,
            ErrorKind::Overloaded if api == Api::OpenAi => 503,
            ErrorKind::Overloaded => 529,
            ErrorKind::Internal => 500,
        }
    }

    fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::Invalid | ErrorKind::Method => "invalid_request_error",
            ErrorKind::Auth => "authentication_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RateLimit { .. } => "rate_limit_error",
            ErrorKind::Overloaded => "overloaded_error",
            ErrorKind::Internal => "api_error",
        }
    }

    fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::Invalid | ErrorKind::Method | ErrorKind::Auth | ErrorKind::NotFound => {
                "invalid_request_error"
            }
            ErrorKind::RateLimit { tokens: false } => "requests",
            ErrorKind::RateLimit { tokens: true } => "tokens",
            ErrorKind::Overloaded | ErrorKind::Internal => "server_error",
        }
    }
}

/// An error reply: kind, message, and OpenAI's `param` and `code`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// For people.
    pub message: String,
    /// OpenAI's `param`.
    pub param: Option<String>,
    /// OpenAI's `code`.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// An error with no `param`, and the `code` OpenAI uses for its kind.
    pub fn new(kind: ErrorKind, message: String) -> ApiError {
        let code = match kind {
            ErrorKind::RateLimit { .. } => Some("rate_limit_exceeded"),
            ErrorKind::NotFound => Some("unknown_url"),
            _ => None,
        };
        ApiError {
            kind,
            message,
            param: None,
            code,
        }
    }

    /// The JSON body: Anthropic `{"type":"error","error":{"type","message"}}`, OpenAI
    /// `{"error":{"message","type","param","code"}}`. (Templates rather than a builder: the
    /// shapes are fixed, and one `format!` is the least code in the wasm build.)
    pub fn body(&self, api: Api) -> String {
        let message = quote(&self.message);
        match api {
            Api::Anthropic => format!(
                r#"{{"type":"error","error":{{"type":"{}","message":{message}}}}}"#,
                self.kind.anthropic_type()
            ),
            Api::OpenAi => format!(
                r#"{{"error":{{"message":{message},"type":"{}","param":{},"code":{}}}}}"#,
                self.kind.openai_type(),
                self.param.as_deref().map_or("null".into(), quote),
                self.code.map_or("null".into(), quote),
            ),
        }
    }
}
