//! Text for messages and JSON bodies, written by hand: the wasm build carries neither
//! `Debug`'s string escaping nor a float formatter; and splits at an ASCII byte, which carry
//! no str pattern searcher.

/// `s` as a JSON string literal (as `JSON.stringify` writes it, quotes included), for
/// messages and the simulator's JSON bodies. Not `{s:?}`: `Debug` for strings brings Unicode
/// tables and escaping code (several KB) into the wasm build.
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

/// A number as JS prints it, for messages: integers exactly, other values to 6 decimals.
/// (Hand-rolled so the wasm build carries no float formatter.)
pub fn format_number(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sign = if n < 0.0 { "-" } else { "" };
    let a = n.abs();
    if a.fract() == 0.0 && a < 1e19 {
        return format!("{sign}{}", a as u64);
    }
    if a >= 1e19 {
        let exp = a.log10().floor() as i32;
        return format!("{sign}{}e+{exp}", format_number(a / 10f64.powi(exp)));
    }
    let micros = (a * 1e6).round() as u64;
    let (int, frac) = (micros / 1_000_000, micros % 1_000_000);
    if frac == 0 {
        return format!("{sign}{int}");
    }
    let frac = format!("{frac:06}");
    format!("{sign}{int}.{}", frac.trim_end_matches('0'))
}

/// `s.split_once(sep)` for an ASCII `sep`, as a byte scan: a `char` pattern brings its
/// searcher along (0.5 KB of wasm). Cut with `get`: a str's slicing panic brings `Debug`'s
/// string escaping along.
pub(crate) fn split_once(s: &str, sep: u8) -> Option<(&str, &str)> {
    let at = s.bytes().position(|b| b == sep)?;
    Some((s.get(..at)?, s.get(at + 1..)?))
}

/// `s.rsplit_once(sep)` for an ASCII `sep`, as [`split_once`] is.
pub(crate) fn rsplit_once(s: &str, sep: u8) -> Option<(&str, &str)> {
    let at = s.bytes().rposition(|b| b == sep)?;
    Some((s.get(..at)?, s.get(at + 1..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_a_byte_as_str_patterns_split() {
        for s in ["", "-", "a-b", "é-日本-🦀", "no dash", "--", "x-"] {
            assert_eq!(split_once(s, b'-'), s.split_once('-'), "{s}");
            assert_eq!(rsplit_once(s, b'-'), s.rsplit_once('-'), "{s}");
        }
    }

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
        assert_eq!(quote("abc"), "\"abc\"");
    }

    #[test]
    fn numbers_print_like_js() {
        let table = [
            (0.0, "0"),
            (-1.0, "-1"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (10001.0, "10001"),
            (2.0f64.powi(53), "9007199254740992"),
            (1e21, "1e+21"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (n, want) in table {
            assert_eq!(format_number(n), want);
        }
    }

    #[test]
    fn control_characters_and_infinities() {
        assert_eq!(quote("a b\u{1f}\u{2029}"), "\"a b\\u001f\\u2029\"");
        assert_eq!(format_number(f64::INFINITY), "Infinity");
    }
}
