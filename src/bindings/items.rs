//! The caller's items, read defensively: an item may be a getter or sit behind a Proxy that
//! throws, and a JS exception that escapes into wasm leaves the batch half-updated (a hang,
//! or a crash of the host). So every read of the items goes through `Reflect` with the throw
//! caught: an item that cannot be read fails alone, as `invalid`; a length or an iterator
//! that throws rejects the whole call with a TypeError (there is no list to run).

use js_sys::{Array, Reflect};
use wasm_bindgen::prelude::*;

use super::js_options::type_error;
use crate::web::describe;
use crate::web::task::failure_from_js;

#[wasm_bindgen]
extern "C" {
    /// `Array.isArray`, which throws for a revoked Proxy.
    #[wasm_bindgen(catch, js_namespace = Array, js_name = isArray)]
    fn is_array(value: &JsValue) -> Result<bool, JsValue>;
}

/// An array of items and its length, read once.
pub(super) struct Items {
    array: Array,
    len: usize,
}

impl Items {
    /// Reads `items`: an array (or a Proxy of one), or any other iterable, which is drained
    /// into an array now. Strings are refused on purpose: a string is iterable, but running
    /// one item per character is never what a caller means.
    pub(super) fn read(items: JsValue) -> Result<Items, JsValue> {
        if items.is_string() {
            return Err(type_error(
                "items must be an array or an iterable of items, got a string (strings are refused on purpose: a string would run one item per character; wrap it as [text])".into(),
            ));
        }
        if !items.is_object() {
            return Err(not_a_list(&items));
        }
        if is_array(&items).map_err(|e| threw("Array.isArray(items)", &e))? {
            let len = Reflect::get(&items, &JsValue::from_str("length"))
                .map_err(|e| threw("reading items.length", &e))?
                .as_f64()
                .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n <= u32::MAX as f64)
                .ok_or_else(|| type_error("items.length is not a valid array length".into()))?;
            return Ok(Items {
                array: items.unchecked_into(),
                len: len as usize,
            });
        }
        let iter = match js_sys::try_iter(&items) {
            Ok(Some(iter)) => iter,
            Ok(None) => return Err(not_a_list(&items)),
            Err(e) => return Err(threw("starting to iterate the items", &e)),
        };
        let array = Array::new();
        for next in iter {
            let item = next.map_err(|e| {
                threw(
                    &format!("iterating the items (after {})", array.length()),
                    &e,
                )
            })?;
            array.push(&item);
        }
        let len = array.length() as usize;
        Ok(Items { array, len })
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// `items[index]`, or why it cannot be read (a throwing getter or Proxy trap).
    pub(super) fn get(&self, index: usize) -> Result<JsValue, String> {
        Reflect::get_u32(&self.array, index as u32).map_err(|e| {
            format!(
                "reading item {index} threw: {}",
                failure_from_js(&e).message
            )
        })
    }
}

fn not_a_list(items: &JsValue) -> JsValue {
    type_error(format!(
        "items must be an array or an iterable of items, got {}",
        describe(items)
    ))
}

fn threw(what: &str, error: &JsValue) -> JsValue {
    type_error(format!("{what} threw: {}", failure_from_js(error).message))
}
