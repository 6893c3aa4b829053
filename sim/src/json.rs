//! The read-only view of a parsed JSON body the simulator reads requests through. The wasm
//! edge implements it over values from the host's own `JSON.parse` (no JSON parser in the
//! wasm binary); native hosts and tests over `serde_json::Value` (feature `serde_json`).

/// A read-only view of parsed JSON.
pub trait Json: Sized {
    /// `self[key]` when `self` is an object that has it (and it is not null).
    fn field(&self, key: &str) -> Option<Self>;
    /// The value when it is a string.
    fn text(&self) -> Option<String>;
    /// The value when it is a number.
    fn number(&self) -> Option<f64>;
    /// The value when it is a boolean.
    fn boolean(&self) -> Option<bool>;
    /// The elements when it is an array (empty otherwise).
    fn items(&self) -> Vec<Self>;
}

/// `serde_json::Value` through the view, for native hosts and tests; `null` reads as missing.
#[cfg(any(test, feature = "serde_json"))]
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
