//! A serde `Deserializer` over a JS options object: the serde-derived option structs of
//! `crate::options` are read through it.
//!
//! Why not serde-wasm-bindgen (the design card's name for this): its error path formats
//! serde's `Unexpected` (float `Display`, string `Debug`), which put float formatting and
//! Unicode tables into the wasm — 88.1 KB gzip instead of 65.3 KB for the library, against a
//! 66 KB budget. This reader has no messages of its own (validation and the key check write
//! them, from the declarations), so it carries none of that. It walks a struct's declared
//! fields only, like serde-wasm-bindgen: unknown keys are refused by the key check in
//! `js_options`, which reads the same declarations.
//!
//! The data model: `undefined` is `none` (not given), `null` is `unit`, numbers `f64`,
//! strings, booleans, a plain object is a map when a struct is asked for; anything else
//! (a function, a symbol, an array where a value is asked for) is its `typeof` name as bytes,
//! which `Raw` reads as "a value of type ...".

use std::fmt;

use js_sys::{Object, Reflect};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use wasm_bindgen::{JsCast, JsValue};

/// Reads `T` from a JS object whose keys `js_options::read` has checked.
pub(super) fn from_js<T: de::DeserializeOwned>(value: &JsValue) -> T {
    match T::deserialize(JsDeserializer(value.clone())) {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

/// The error type, with no values: reading an options object cannot fail (every field is a
/// [`Raw`](crate::options::Raw), which takes any value, `IgnoredAny`, or a group, read as an
/// object; each key is given once, by its index in the struct's own field list). So serde's
/// error paths (duplicate, unknown or missing fields, and their drops of the fields read so
/// far) compile away, and no message formatting is linked in.
#[derive(Debug)]
pub(super) enum Unreadable {}

impl fmt::Display for Unreadable {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl std::error::Error for Unreadable {}

impl de::Error for Unreadable {
    /// Unreachable (see [`Unreadable`]): serde asks for an error only on a duplicate, unknown
    /// or missing field, which [`Fields`] never gives it.
    fn custom<T: fmt::Display>(_: T) -> Self {
        unreachable!()
    }
}

struct JsDeserializer(JsValue);

impl<'de> de::Deserializer<'de> for JsDeserializer {
    type Error = Unreadable;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unreadable> {
        let v = &self.0;
        if v.is_undefined() {
            visitor.visit_none()
        } else if v.is_null() {
            visitor.visit_unit()
        } else if let Some(n) = v.as_f64() {
            visitor.visit_f64(n)
        } else if let Some(s) = v.as_string() {
            visitor.visit_string(s)
        } else if let Some(b) = v.as_bool() {
            visitor.visit_bool(b)
        } else {
            let type_name = v.js_typeof().as_string().unwrap_or_default();
            visitor.visit_byte_buf(type_name.into_bytes())
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unreadable> {
        if self.0.is_undefined() || self.0.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Unreadable> {
        // The key check saw an object here; a getter that answers differently the second
        // time gets the group's defaults, not a trap.
        let object = self.0.dyn_into::<Object>().unwrap_or_default();
        visitor.visit_map(Fields {
            object,
            fields: fields.iter().enumerate(),
            value: None,
        })
    }

    /// An option read on the explicit path: not even its type is looked at.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unreadable> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
    }
}

/// A struct's declared fields that the object holds (`undefined` is "not given": the
/// field keeps its default).
struct Fields {
    object: Object,
    fields: std::iter::Enumerate<std::slice::Iter<'static, &'static str>>,
    value: Option<JsValue>,
}

impl Fields {
    /// The next declared field the object holds (not generic: one copy for every struct).
    fn next_field(&mut self) -> Option<usize> {
        for (index, field) in self.fields.by_ref() {
            let value =
                Reflect::get(&self.object, &JsValue::from_str(field)).unwrap_or(JsValue::UNDEFINED);
            if !value.is_undefined() {
                self.value = Some(value);
                return Some(index);
            }
        }
        None
    }
}

impl<'de> MapAccess<'de> for Fields {
    type Error = Unreadable;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Unreadable> {
        Ok(match self.next_field() {
            // The field's index, not its name: serde's field visitor then needs no string match.
            Some(index) => Some(seed.deserialize(
                <u64 as IntoDeserializer<'de, Unreadable>>::into_deserializer(index as u64),
            )?),
            None => None,
        })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Unreadable> {
        let value = self.value.take().unwrap_or(JsValue::UNDEFINED);
        seed.deserialize(JsDeserializer(value))
    }
}
