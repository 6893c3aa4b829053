//! JSON written by hand: the sim's replies are small, fixed shapes (see `reply`), and a
//! serializer would cost the wasm build more than this one escaping function.

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
}
