//! Text for messages and JSON bodies, without `{:?}` or a float formatter (both bring
//! several KB of tables and formatting code into the wasm build).

/// `s` as a JSON string literal (as `JSON.stringify` writes it, quotes included), for
/// messages and JSON bodies. Not `{s:?}`: `Debug` for strings brings Unicode
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
