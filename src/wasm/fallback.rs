//! Fallbacks for `run` (the JS options `fallbacks` and `fallbackAfterMs`): typed alternatives
//! ([`Alternative`], [`Upstream`]) turned at build into the JS binding's own routes
//! (`web::attempt::Alternative`) by its own checks (`bindings::alternative`), so both APIs
//! refuse the same values with the same messages; and who answered each item ([`ServedBy`]).

use std::fmt;
use std::rc::Rc;

use super::builder::ProviderSettings;
use crate::bindings::{alternative, entry_error};
use crate::options::{OptionError, OptionErrorKind, Raw, RawFallback, RawOverrides};
use crate::providers::Provider;
use crate::web::attempt::{self, Routed};

/// Another upstream of the processor's API (its base URL and key): the same model on another
/// account, region or gateway. Request bodies are sent as they are, so it must speak the
/// first choice's API: an [`Upstream::openai`] behind an Anthropic processor is an error at
/// build. Its key is never shown and is scrubbed from every result.
#[derive(Clone)]
#[must_use]
pub struct Upstream(ProviderSettings);

impl Upstream {
    /// The Anthropic Messages API with this key (at its public URL unless
    /// [`base_url`](Self::base_url) says otherwise).
    pub fn anthropic(api_key: impl Into<String>) -> Self {
        Self::new("anthropic", api_key.into())
    }

    /// The OpenAI Chat Completions API with this key.
    pub fn openai(api_key: impl Into<String>) -> Self {
        Self::new("openai", api_key.into())
    }

    fn new(name: &'static str, api_key: String) -> Self {
        Upstream(ProviderSettings {
            name,
            api_key: Some(api_key),
            ..ProviderSettings::default()
        })
    }

    /// Its base URL (`provider.baseUrl`): a gateway, another region, the simulator.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.0.base_url = Some(url.into());
        self
    }

    /// `anthropic-version` (`provider.version`).
    pub fn anthropic_version(mut self, version: impl Into<String>) -> Self {
        self.0.version = Some(version.into());
        self
    }

    /// The page knowingly sends this key from a browser (`provider.dangerouslyAllowBrowser`).
    pub fn dangerously_allow_browser(mut self, allow: bool) -> Self {
        self.0.browser = allow;
        self
    }
}

impl fmt::Debug for Upstream {
    // The key is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.0.name)
            .field("base_url", &self.0.base_url)
            .finish_non_exhaustive()
    }
}

/// One entry of `fallbacks`: another model, another [`Upstream`], or both, with output caps
/// of its own. Added with [`Builder::fallback`](super::Builder::fallback); checked at build.
#[derive(Clone, Debug)]
#[must_use]
pub struct Alternative {
    upstream: Option<Upstream>,
    model: Option<String>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
}

impl Alternative {
    /// Another model on the first choice's upstream (`{ model }`).
    pub fn model(model: impl Into<String>) -> Self {
        Alternative::upstream_and_model(None, Some(model.into()))
    }

    /// Each item's own model on another upstream of the same API (`{ provider }`).
    pub fn upstream(upstream: Upstream) -> Self {
        Alternative::upstream_and_model(Some(upstream), None)
    }

    fn upstream_and_model(upstream: Option<Upstream>, model: Option<String>) -> Self {
        Alternative {
            upstream,
            model,
            max_tokens: None,
            max_completion_tokens: None,
        }
    }

    /// This model in place of the item's own (`{ provider, model }` with
    /// [`upstream`](Self::upstream)).
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Anthropic's output cap on this alternative (`overrides.max_tokens`, 1..=10000000).
    pub fn max_tokens(mut self, n: u64) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// OpenAI's output cap on this alternative (`overrides.max_completion_tokens`).
    pub fn max_completion_tokens(mut self, n: u64) -> Self {
        self.max_completion_tokens = Some(n);
        self
    }

    /// The entry as the JS option reads it, for the shared checks.
    fn entry(&self) -> RawFallback {
        let number = |n: Option<u64>| n.map_or(Raw::Missing, |n| Raw::Number(n as f64));
        let given = self.max_tokens.is_some() || self.max_completion_tokens.is_some();
        RawFallback {
            model: self.model.clone().map_or(Raw::Missing, Raw::Text),
            overrides: given.then(|| RawOverrides {
                max_tokens: number(self.max_tokens),
                max_completion_tokens: number(self.max_completion_tokens),
            }),
            ..RawFallback::default()
        }
    }
}

/// The routes of `alternatives` after `first`, checked as the JS constructor checks
/// `fallbacks` (errors name the entry: `fallbacks[1].overrides.max_tokens ...`).
pub(super) fn routes(
    alternatives: Option<&[Alternative]>,
    first: Option<&Provider>,
) -> Result<Vec<attempt::Alternative>, OptionError> {
    let Some(alternatives) = alternatives else {
        return Ok(Vec::new());
    };
    if alternatives.is_empty() {
        return Err(OptionError {
            kind: OptionErrorKind::Range,
            message: "fallbacks must name at least one alternative, got none".into(),
        });
    }
    let first = first.ok_or_else(|| OptionError {
        kind: OptionErrorKind::Type,
        message: "fallbacks needs a provider: build the processor with .anthropic(key) or .openai(key) (its alternatives are other models or upstreams of run()'s provider)".into(),
    })?;
    let mut out = Vec::with_capacity(alternatives.len());
    for (i, alt) in alternatives.iter().enumerate() {
        let provider = alt.upstream.as_ref().map(|u| u.0.provider()).transpose();
        let route = provider.and_then(|p| alternative(first, p, &alt.entry()));
        out.push(route.map_err(|e| entry_error(i, e))?);
    }
    Ok(out)
}

/// Which alternative an item's last attempt went to (`servedBy`): for a success, who answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedBy {
    /// The API: `"anthropic"` or `"openai"`.
    pub provider: &'static str,
    /// The model the request named (`None` when it named none).
    pub model: Option<String>,
    /// 0: the first choice; `k`: the `k`-th alternative added with
    /// [`Builder::fallback`](super::Builder::fallback).
    pub alternative: usize,
}

impl ServedBy {
    /// Item `index`'s, as `routed` noted it (`None` when it made no attempt).
    pub(super) fn of(routed: &Rc<Routed>, index: usize) -> Option<ServedBy> {
        let noted = routed.served_by(index);
        let field = |key| crate::web::get(&noted, key);
        let alternative = field("alternative")?.as_f64()? as usize;
        let provider = match alternative.checked_sub(1) {
            None => &routed.first,
            Some(k) => &routed.fallbacks.get(k)?.provider,
        };
        Some(ServedBy {
            provider: provider.kind.name(),
            model: field("model").and_then(|m| m.as_string()),
            alternative,
        })
    }
}
