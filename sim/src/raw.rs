//! Option values as the JS edge hands them over, and the errors a bad one gets: the same
//! wording as `BatchProcessor`'s options (`name must be ..., got value`).

use std::fmt;

use crate::text::{format_number, quote};

/// An option's value as it came from JS, reduced to what validation needs.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    /// `undefined`: use the default.
    Missing,
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
    /// A boolean.
    Bool(bool),
    /// Anything else, by its `typeof` name (`object`, `function`, ...), or `null`.
    Other(String),
}

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::Missing => f.write_str("undefined"),
            Raw::Number(n) => f.write_str(&format_number(*n)),
            Raw::Text(s) => f.write_str(&quote(s)),
            Raw::Bool(b) => write!(f, "{b}"),
            Raw::Other(t) => write!(f, "a value of type {t}"),
        }
    }
}

/// Whether a bad option is of the wrong type (JS `TypeError`) or out of range (`RangeError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionErrorKind {
    /// Wrong type.
    Type,
    /// Right type, value out of range.
    Range,
}

/// A bad option; the message names it and shows the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionError {
    /// Type or range.
    pub kind: OptionErrorKind,
    /// E.g. `requestsPerMinute must be an integer in 1..=1000000000, got "abc"`.
    pub message: String,
}

impl OptionError {
    /// `name must be {what}, got {raw}`, of the kind the value's type calls for: a number out
    /// of range is a range error, anything else a type error.
    pub fn expected(name: &str, what: &str, raw: &Raw) -> OptionError {
        let kind = match raw {
            Raw::Number(_) => OptionErrorKind::Range,
            _ => OptionErrorKind::Type,
        };
        OptionError {
            kind,
            message: format!("{name} must be {what}, got {raw}"),
        }
    }
}

/// An optional integer option in `min..=max`.
pub fn integer(name: &str, raw: &Raw, min: u64, max: u64) -> Result<Option<u64>, OptionError> {
    match *raw {
        Raw::Missing => Ok(None),
        Raw::Number(n) if n.fract() == 0.0 && n >= min as f64 && n <= max as f64 => {
            Ok(Some(n as u64))
        }
        _ => Err(OptionError::expected(
            name,
            &format!("an integer in {min}..={max}"),
            raw,
        )),
    }
}
