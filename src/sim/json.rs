//! JSON written by hand: the sim's replies are small, fixed shapes, and a serializer would
//! cost the wasm build more than these few lines.

/// `s` as a JSON string literal, quotes included.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Other control characters, and the two separators JS source cannot hold raw.
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON object built field by field, in order.
#[derive(Debug)]
#[must_use]
pub struct Obj(String);

impl Obj {
    /// `{`
    pub fn new() -> Obj {
        Obj("{".into())
    }

    /// A field whose value is already JSON.
    pub fn raw(mut self, key: &str, json: &str) -> Obj {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push_str(&quote(key));
        self.0.push(':');
        self.0.push_str(json);
        self
    }

    /// A string field.
    pub fn str(self, key: &str, value: &str) -> Obj {
        self.raw(key, &quote(value))
    }

    /// A string field, or `null`.
    pub fn opt(self, key: &str, value: Option<&str>) -> Obj {
        match value {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// An integer field.
    pub fn num(self, key: &str, value: u64) -> Obj {
        self.raw(key, &value.to_string())
    }

    /// `}`: the finished text.
    pub fn end(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

impl Default for Obj {
    fn default() -> Self {
        Obj::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_survive_a_real_parser() {
        let nasty = [
            "",
            "plain",
            "quote \" and backslash \\",
            "lines\nand\ttabs\r",
            "\u{0}\u{1}\u{1f}\u{7f}",
            "unicode: é 日本 🦀 \u{2028}\u{2029}",
            "</script>",
        ];
        for s in nasty {
            let back: String = serde_json::from_str(&quote(s)).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn objects_nest_and_parse() {
        let inner = Obj::new().num("n", 3).opt("none", None).end();
        let text = Obj::new()
            .str("a", "x\"y")
            .raw("inner", &inner)
            .raw("list", &format!("[{inner}]"))
            .end();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": "x\"y", "inner": {"n": 3, "none": null},
                "list": [{"n": 3, "none": null}]})
        );
        assert_eq!(Obj::new().end(), "{}");
    }
}
