//! An option's declaration ([`OptionSpec`]: name, kind, range, default, doc) and the rules every
//! declaration shares: what a value of its kind must be, and the message when it is not.
//!
//! The `declare_options!` macro turns one list of declarations into the serde struct
//! the JS edge reads, the table the allow-list, the docs test and the messages read, and one
//! accessor per option that pairs its value with its declaration.

use super::{quote, OptionError, OptionErrorKind, Raw};

/// What an option's value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An integer in `min..=max` (a JS number with no fraction).
    Int {
        /// Smallest value allowed.
        min: u64,
        /// Largest value allowed.
        max: u64,
    },
    /// A finite number in `0..=max`, fractions allowed (dollars, prices, shares).
    Number {
        /// Largest value allowed.
        max: u64,
    },
    /// `true` or `false`.
    Bool,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// Any string.
    Text,
    /// A plain object (not an array or function) whose keys are these declarations.
    Object(&'static [OptionSpec]),
    /// A non-empty array of plain objects whose keys are these declarations (read on the
    /// explicit path: each entry is named by its position, e.g. `fallbacks[1].model`).
    List(&'static [OptionSpec]),
    /// A plain object whose keys are names the caller picks (models) and whose values are
    /// plain objects of these declarations (read on the explicit path: each entry is named
    /// by its key, e.g. `prices["gpt-4o"].inputPerMTok`).
    Map(&'static [OptionSpec]),
    /// A JS function (read on the explicit path: serde cannot hold a function).
    Function,
    /// An object with these methods ([`Kind::Function`] declarations), read on the explicit
    /// path; its other keys are its own (a class instance, an RPC stub).
    Methods(&'static [OptionSpec]),
    /// An `AbortSignal` (read on the explicit path, like a function).
    AbortSignal,
}

/// What an option is when it is not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultValue {
    /// This integer.
    Int(u64),
    /// This boolean.
    Bool(bool),
    /// This string (one of a [`Kind::OneOf`]).
    Text(&'static str),
    /// No value; the words say what that means (`none`, `unlimited`, `random`).
    Absent(&'static str),
}

/// One option, declared once. Validation, messages, the allow-lists and the docs test read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionSpec {
    /// The name messages use: the path from the options object, e.g. `backoff.baseMs`.
    pub name: &'static str,
    /// What the value must be.
    pub kind: Kind,
    /// The key in its object, e.g. `baseMs`.
    pub key: &'static str,
    /// What it is when not given.
    pub default: DefaultValue,
    /// What it does (native builds only: the wasm carries no doc text).
    #[cfg(not(target_arch = "wasm32"))]
    pub doc: &'static str,
}

impl OptionSpec {
    /// A declaration; `doc` is dropped from the wasm build (nothing there reads it).
    pub const fn new(
        name: &'static str,
        key: &'static str,
        kind: Kind,
        default: DefaultValue,
        doc: &'static str,
    ) -> OptionSpec {
        #[cfg(target_arch = "wasm32")]
        let _ = doc;
        OptionSpec {
            name,
            key,
            kind,
            default,
            #[cfg(not(target_arch = "wasm32"))]
            doc,
        }
    }

    /// What a value must be, as messages say it: `an integer in 1..=10000`, `a boolean`.
    pub fn expected(&self) -> String {
        match self.kind {
            Kind::Int { min, max } => format!("an integer in {min}..={max}"),
            Kind::Number { max } => format!("a number in 0..={max}"),
            Kind::Bool => "a boolean".into(),
            Kind::OneOf(choices) => {
                // By hand: `join` over a Vec costs the wasm build more than this loop.
                let mut out = String::new();
                for (i, choice) in choices.iter().enumerate() {
                    if i > 0 {
                        out.push_str(if i + 1 == choices.len() { " or " } else { ", " });
                    }
                    out.push_str(&quote(choice));
                }
                out
            }
            Kind::Text => "a string".into(),
            Kind::Object(_) | Kind::Methods(_) => "an object".into(),
            Kind::Map(_) => "an object of names to objects".into(),
            Kind::List(_) => "a non-empty array of objects".into(),
            Kind::Function => "a function".into(),
            Kind::AbortSignal => "an AbortSignal".into(),
        }
    }

    /// The error for a value that is not [`expected`](Self::expected); `shown` is the value as
    /// the message may show it (a secret's caller passes only its type).
    pub fn refuse(&self, kind: OptionErrorKind, shown: &str) -> OptionError {
        OptionError {
            kind,
            message: format!("{} must be {}, got {shown}", self.name, self.expected()),
        }
    }

    /// The declaration of `key` in `table`, if any.
    pub fn find(table: &'static [OptionSpec], key: &str) -> Option<&'static OptionSpec> {
        table.iter().find(|s| s.key == key)
    }
}

/// A value that a group's fields are read from (the JS edge's options object): serde's
/// derive is not used there, since its generated readers cost the npm wasm about 2 KB gzip
/// more than [`Fields::read`] over the declarations.
pub trait Source: Sized {
    /// The value of `key` when given: a value that is `undefined` (or not an object of
    /// fields at all) gives none, and the field keeps its default.
    fn field(&self, key: &str) -> Option<Self>;
    /// The value, reduced to what validation needs.
    fn raw(&self) -> Raw;
    /// Whether the value is `null` (a group given as `null` is not given).
    fn is_null(&self) -> bool;
}

/// A declared group (a `declare_options!` struct), read field by field from a [`Source`]
/// in declaration order.
pub trait Fields: Default {
    /// The group; fields not given keep their defaults.
    fn read<S: Source>(object: &S) -> Self;
}

/// A field's type, read from its given value.
pub trait Field: Default {
    /// The field from its value.
    fn read<S: Source>(value: &S) -> Self;
}

impl Field for Raw {
    fn read<S: Source>(value: &S) -> Raw {
        value.raw()
    }
}

/// An option read on the explicit path: not even its type is looked at here.
impl Field for serde::de::IgnoredAny {
    fn read<S: Source>(_: &S) -> Self {
        serde::de::IgnoredAny
    }
}

/// A nested group: `null` is not given (its check refused it before anyway).
impl<T: Fields> Field for Option<T> {
    fn read<S: Source>(value: &S) -> Self {
        (!value.is_null()).then(|| T::read(value))
    }
}

/// An option's value beside its declaration: what the generated accessors return.
#[derive(Clone, Copy, Debug)]
pub struct Opt<'a, T> {
    /// The declaration.
    pub spec: &'static OptionSpec,
    /// The value as read.
    pub value: &'a T,
}

impl Opt<'_, Raw> {
    /// An integer option: the value, else the declared default (`None` for [`DefaultValue::Absent`]).
    pub fn int(&self) -> Result<Option<u64>, OptionError> {
        let Kind::Int { min, max } = self.spec.kind else {
            unreachable!("{} is not declared as an integer", self.spec.name)
        };
        match *self.value {
            Raw::Missing => Ok(match self.spec.default {
                DefaultValue::Int(n) => Some(n),
                _ => None,
            }),
            Raw::Number(n) if n.fract() == 0.0 && n >= min as f64 && n <= max as f64 => {
                Ok(Some(n as u64))
            }
            Raw::Number(_) => Err(self.refuse(OptionErrorKind::Range)),
            _ => Err(self.refuse(OptionErrorKind::Type)),
        }
    }

    /// A number option (fractions allowed): the value, else `None` (such options have no
    /// default value).
    pub fn number(&self) -> Result<Option<f64>, OptionError> {
        let Kind::Number { max } = self.spec.kind else {
            unreachable!("{} is not declared as a number", self.spec.name)
        };
        match *self.value {
            Raw::Missing => Ok(None),
            Raw::Number(n) if n >= 0.0 && n <= max as f64 => Ok(Some(n)),
            Raw::Number(_) => Err(self.refuse(OptionErrorKind::Range)),
            _ => Err(self.refuse(OptionErrorKind::Type)),
        }
    }

    /// A boolean option: the value, else the declared default.
    pub fn boolean(&self) -> Result<Option<bool>, OptionError> {
        match *self.value {
            Raw::Missing => Ok(match self.spec.default {
                DefaultValue::Bool(b) => Some(b),
                _ => None,
            }),
            Raw::Bool(b) => Ok(Some(b)),
            _ => Err(self.refuse(OptionErrorKind::Type)),
        }
    }

    /// A one-of-these-strings option: the declared choice, else the declared default.
    pub fn choice(&self) -> Result<Option<&'static str>, OptionError> {
        let Kind::OneOf(choices) = self.spec.kind else {
            unreachable!("{} is not declared as a choice", self.spec.name)
        };
        match self.value {
            Raw::Missing => Ok(match self.spec.default {
                DefaultValue::Text(s) => Some(s),
                _ => None,
            }),
            Raw::Text(s) => choices
                .iter()
                .find(|c| **c == s.as_str())
                .map(|c| Some(*c))
                .ok_or_else(|| self.refuse(OptionErrorKind::Range)),
            _ => Err(self.refuse(OptionErrorKind::Type)),
        }
    }

    fn refuse(&self, kind: OptionErrorKind) -> OptionError {
        self.spec.refuse(kind, &self.value.to_string())
    }
}

/// Declares a group of options once: a serde struct (camelCase keys, unknown keys refused, a
/// missing key is its default) that also reads itself from a [`Source`] ([`Fields`]), the `&[OptionSpec]` table of the group and, per option, an
/// accessor of the same name returning an [`Opt`] (its value and declaration).
///
/// ```text
/// declare_options! {
///     /// The struct's doc.
///     pub struct RawBackoff, table BACKOFF, prefix "backoff." {
///         /// The option's doc (the table's `doc`, and the field's).
///         base_ms: Raw = "baseMs", Kind::Int { min: 1, max: 3_600_000 }, DefaultValue::Int(500);
///     }
/// }
/// ```
/// Field types: [`Raw`] for a data value (the spec's kind checks it), `Option<Group>` for a
/// nested group, `serde::de::IgnoredAny` for an option read on the explicit path (functions,
/// signals, the provider and its key).
macro_rules! declare_options {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident, table $table:ident, prefix $prefix:literal {
            $(
                $(#[doc = $doc:literal])+
                $field:ident: $ty:ty = $key:literal, $kind:expr, $default:expr;
            )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[doc = $doc])+
                #[serde(rename = $key, default)]
                pub $field: $ty,
            )*
        }

        #[doc = concat!("The declarations of [`", stringify!($name), "`]'s options, in order.")]
        pub const $table: &[$crate::options::OptionSpec] = &[
            $(
                $crate::options::OptionSpec::new(
                    concat!($prefix, $key), $key, $kind, $default, concat!($($doc, "\n"),+),
                ),
            )*
        ];

        impl $crate::options::Fields for $name {
            fn read<S: $crate::options::Source>(object: &S) -> Self {
                let mut out = Self::default();
                $(
                    if let Some(value) = object.field($key) {
                        out.$field = $crate::options::Field::read(&value);
                    }
                )*
                out
            }
        }

        const _: () = {
            /// Each field's position in the table (an enum counts them for the macro).
            #[allow(non_camel_case_types)]
            enum Position { $($field),* }

            impl $name {
                $(
                    #[doc = concat!("`", $prefix, $key, "`: its value and its declaration.")]
                    pub fn $field(&self) -> $crate::options::Opt<'_, $ty> {
                        let spec = &$table[Position::$field as usize];
                        $crate::options::Opt { spec, value: &self.$field }
                    }
                )*
            }
        };
    };
}
pub(crate) use declare_options;
