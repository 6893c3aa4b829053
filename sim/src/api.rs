//! Which API a request is for, read from its path: the one fact about a request that both
//! its check (`request.rs`) and what the sim says back (`reply.rs`, `error.rs`) depend on.

/// Which API a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `POST /v1/messages`.
    Anthropic,
    /// `POST /v1/chat/completions`.
    OpenAi,
}

impl Api {
    /// The API of a request path. Matching the end of the path lets a host mount the sim
    /// under a prefix (`/sim/v1/messages`); a query string is ignored.
    pub fn from_path(path: &str) -> Option<Api> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let path = path.strip_suffix('/').unwrap_or(path);
        if path.ends_with("/v1/messages") {
            Some(Api::Anthropic)
        } else if path.ends_with("/v1/chat/completions") {
            Some(Api::OpenAi)
        } else {
            None
        }
    }
}
