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
            // (`\u` and 4 hex digits, as `{:04x}` would print them: no formatter here.)
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(char::from(b"0123456789abcdef"[(c as usize >> shift) & 0xf]));
                }
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
    format!("{sign}{int}.{}", trim_end(&frac, b'0'))
}

/// `s.parse::<u64>()`, by hand: an optional `+`, then ASCII digits (at least one), without
/// overflow. One small body for every integer the headers hold, instead of std's generic
/// parser once per integer type.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    match s.as_bytes() {
        [b'+', digits @ ..] => unsigned(digits),
        digits => unsigned(digits),
    }
}

/// `s.parse::<u32>()`, as [`parse_u64`] is.
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    parse_u64(s).and_then(|n| u32::try_from(n).ok())
}

/// `s.parse::<i64>()`, as [`parse_u64`] is (a `-` allowed too).
pub(crate) fn parse_i64(s: &str) -> Option<i64> {
    match s.as_bytes() {
        [b'-', digits @ ..] => 0i64.checked_sub_unsigned(unsigned(digits)?),
        [b'+', digits @ ..] => i64::try_from(unsigned(digits)?).ok(),
        digits => i64::try_from(unsigned(digits)?).ok(),
    }
}

fn unsigned(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let d = d.is_ascii_digit().then(|| u64::from(d - b'0'))?;
        n.checked_mul(10)?.checked_add(d)
    })
}

/// `s.split_once(sep)` for an ASCII `sep`, as a byte scan: a `char` pattern brings its
/// searcher along (0.5 KB of wasm). Cut with `get`: a str's slicing panic brings `Debug`'s
/// string escaping along.
pub(crate) fn split_once(s: &str, sep: u8) -> Option<(&str, &str)> {
    let at = s.bytes().position(|b| b == sep)?;
    Some((s.get(..at)?, s.get(at + 1..)?))
}

/// `bytes.contains(&b)`, as a plain loop: a byte slice's `contains` is `memchr`, 0.2 KB of
/// wasm gzipped for the few short slices it searches here.
#[allow(clippy::manual_contains)]
pub(crate) fn has_byte(bytes: &[u8], b: u8) -> bool {
    bytes.iter().any(|&c| c == b)
}

/// `s.split(seps)` for ASCII `seps` (`[' ', ',']` as a pattern), as [`split_once`] is.
pub(crate) fn split<'a>(s: &'a str, seps: &'a [u8]) -> impl Iterator<Item = &'a str> + 'a {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| has_byte(seps, b)) {
            Some(at) => {
                rest = r.get(at + 1..);
                r.get(..at)
            }
            None => rest.take(),
        }
    })
}

/// `s.trim_end_matches(c)` for an ASCII `c`, as [`split_once`] is.
pub(crate) fn trim_end(s: &str, c: u8) -> &str {
    let mut end = s.len();
    while end > 0 && s.as_bytes().get(end - 1) == Some(&c) {
        end -= 1;
    }
    s.get(..end).unwrap_or(s)
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
        for s in [
            "",
            "-",
            "a-b",
            "é-日本-🦀",
            "no dash",
            "--",
            "x-",
            "a,b c-",
            "-,é 0",
        ] {
            assert_eq!(split_once(s, b'-'), s.split_once('-'), "{s}");
            assert_eq!(rsplit_once(s, b'-'), s.rsplit_once('-'), "{s}");
            let by_bytes: Vec<&str> = split(s, b" ,-").collect();
            assert_eq!(
                by_bytes,
                s.split([' ', ',', '-']).collect::<Vec<_>>(),
                "{s}"
            );
            assert_eq!(trim_end(s, b'-'), s.trim_end_matches('-'), "{s}");
        }
    }

    #[test]
    fn integers_parse_as_std_parses_them() {
        let max = u64::MAX.to_string();
        let over = "18446744073709551616";
        let table = [
            "",
            "+",
            "-",
            "0",
            "7",
            "+7",
            "-7",
            "007",
            "+-7",
            "-+7",
            " 7",
            "7 ",
            "1.5",
            "١",
            "4294967295",
            "4294967296",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            &max,
            over,
            "99999999999999999999",
        ];
        for s in table {
            assert_eq!(parse_u64(s), s.parse::<u64>().ok(), "u64 {s:?}");
            assert_eq!(parse_u32(s), s.parse::<u32>().ok(), "u32 {s:?}");
            assert_eq!(parse_i64(s), s.parse::<i64>().ok(), "i64 {s:?}");
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
