//! The caller's items, read defensively: an item may be a getter or sit behind a Proxy that
//! throws, and a JS exception that escapes into wasm leaves the batch half-updated (a hang,
//! or a crash of the host). So every read of the items is caught: the list itself is read in
//! JS (`readItems` in glue.js: a length or an iterator that throws rejects the whole call
//! with a TypeError, since there is no list to run), and each item through `Reflect`, where
//! one that throws fails alone, as `invalid`.

use js_sys::{Array, Reflect};
use wasm_bindgen::prelude::*;

use super::task::failure_from_js;

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = readItems)]
    fn read_items(items: &JsValue) -> Result<Array, JsValue>;
}

/// An array of items and its length, read once.
pub(crate) struct Items {
    array: JsValue,
    len: usize,
}

impl Items {
    /// Reads `items`: an array (or a Proxy of one), or any other iterable, which is drained
    /// into an array now. Strings are refused on purpose: a string is iterable, but running
    /// one item per character is never what a caller means.
    pub(crate) fn read(items: JsValue) -> Result<Items, JsValue> {
        let pair = read_items(&items)?;
        Ok(Items {
            array: pair.get(0),
            len: pair.get(1).as_f64().unwrap_or(0.0) as usize,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// `items[index]`, or why it cannot be read (a throwing getter or Proxy trap).
    pub(crate) fn get(&self, index: usize) -> Result<JsValue, String> {
        Reflect::get_u32(&self.array, index as u32).map_err(|e| {
            format!(
                "reading item {index} threw: {}",
                failure_from_js(&e).message
            )
        })
    }
}
