//! The option declarations (src/options/mod.rs) against what users read: the TypeScript
//! declarations and docs/API.md list exactly the declared options, no more, no fewer, with the
//! declared ranges and defaults. Native only: the wasm build carries no doc text.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;

use edgebatch::options::{
    DefaultValue, Kind, OptionSpec, RawOptions, CALL_OPTIONS, OPTIONS, PROVIDER,
};

const TYPES: &str = include_str!("../src/bindings/types.d.ts");
const API: &str = include_str!("../docs/API.md");

/// Every declared name under `table`, nested groups included (`backoff`, `backoff.baseMs`).
fn all_names(table: &'static [OptionSpec]) -> Vec<&'static OptionSpec> {
    let mut out = Vec::new();
    for spec in table {
        out.push(spec);
        if let Kind::Object(children) = spec.kind {
            out.extend(all_names(children));
        }
    }
    out
}

fn keys(table: &[OptionSpec]) -> BTreeSet<String> {
    table.iter().map(|s| s.key.to_string()).collect()
}

/// The body of `export interface <name> { ... }`.
fn interface<'a>(name: &str) -> &'a str {
    let start = TYPES
        .find(&format!("export interface {name} {{"))
        .unwrap_or_else(|| panic!("types.d.ts has no interface {name}"));
    let body = &TYPES[start..];
    let open = body.find('{').unwrap() + 1;
    let mut depth = 1;
    for (i, c) in body[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &body[open..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("interface {name} is not closed")
}

/// The property names of an interface body or inline object type, at its top level (doc
/// comments skipped), each with the text of its type.
fn properties(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut in_comment = false;
    let mut current = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if in_comment {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                in_comment = false;
            }
            continue;
        }
        if c == '/' && chars.peek() == Some(&'*') {
            in_comment = true;
            continue;
        }
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' => depth -= 1,
            _ => {}
        }
        if depth == 0 && (c == ';' || c == '\n') {
            push_property(&mut out, &current);
            current.clear();
        } else {
            current.push(c);
        }
    }
    push_property(&mut out, &current);
    out
}

fn push_property(out: &mut Vec<(String, String)>, text: &str) {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    if end > 0 {
        out.push((text[..end].to_string(), text[end..].to_string()));
    }
}

fn names_of(props: &[(String, String)]) -> BTreeSet<String> {
    props.iter().map(|(n, _)| n.clone()).collect()
}

#[test]
fn the_typescript_declarations_list_exactly_the_declared_options() {
    let top = properties(interface("BatchOptions"));
    assert_eq!(names_of(&top), keys(OPTIONS), "BatchOptions in types.d.ts");
    for spec in OPTIONS {
        let Kind::Object(children) = spec.kind else {
            continue;
        };
        if spec.key == "provider" {
            continue; // its own interface, below
        }
        let (_, ty) = top.iter().find(|(n, _)| n == spec.key).unwrap();
        let inner = &ty[ty.find('{').unwrap() + 1..ty.rfind('}').unwrap()];
        assert_eq!(
            names_of(&properties(inner)),
            keys(children),
            "{} in types.d.ts",
            spec.name
        );
    }
    assert_eq!(
        names_of(&properties(interface("ProviderOptions"))),
        keys(PROVIDER),
        "ProviderOptions in types.d.ts"
    );
    assert_eq!(
        names_of(&properties(interface("CallOptions"))),
        keys(CALL_OPTIONS),
        "CallOptions in types.d.ts"
    );
}

/// The rows of the options table in docs/API.md: `(name, type, default)`.
fn api_rows() -> Vec<(String, String, String)> {
    let section = &API[API.find("## `new BatchProcessor(options?)`").unwrap()..];
    let section = &section[..section[3..].find("\n## ").unwrap() + 3];
    let table = &section[section.find("| option |").unwrap()..];
    table
        .lines()
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let cells: Vec<&str> = l.split(" | ").map(|c| c.trim_matches(['|', ' '])).collect();
            (
                cells[0].to_string(),
                cells[1].to_string(),
                cells[2].to_string(),
            )
        })
        .collect()
}

#[test]
fn docs_api_lists_exactly_the_declared_options_with_their_ranges_and_defaults() {
    let rows = api_rows();
    let documented: BTreeSet<String> = rows.iter().map(|r| r.0.clone()).collect();
    let declared: BTreeSet<String> = all_names(OPTIONS)
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(documented, declared, "the options table of docs/API.md");
    for spec in all_names(OPTIONS) {
        let (_, ty, default) = rows.iter().find(|r| r.0 == spec.name).unwrap();
        if let Kind::Int { min, max } = spec.kind {
            assert!(
                ty.contains(&format!("{min}..={max}")),
                "docs/API.md: {} is {min}..={max}, the row says {ty}",
                spec.name
            );
        }
        let want = match spec.default {
            DefaultValue::Int(n) => n.to_string(),
            DefaultValue::Bool(b) => b.to_string(),
            DefaultValue::Text(s) => format!("\"{s}\""),
            DefaultValue::Absent(words) => words.to_string(),
        };
        assert!(
            default.starts_with(&want),
            "docs/API.md: {}'s default is {want}, the row says {default}",
            spec.name
        );
    }
}

#[test]
fn every_option_has_a_doc_and_the_struct_reads_every_declared_key() {
    for spec in all_names(OPTIONS).into_iter().chain(CALL_OPTIONS) {
        assert!(!spec.doc.trim().is_empty(), "{} has no doc", spec.name);
    }
    // serde (deny_unknown_fields) accepts each declared key, and refuses others.
    for spec in OPTIONS {
        let value = match spec.kind {
            Kind::Object(_) => serde_json::json!({}),
            _ => serde_json::json!(1),
        };
        let one = serde_json::json!({ spec.key: value });
        serde_json::from_value::<RawOptions>(one).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
    }
    assert!(serde_json::from_value::<RawOptions>(serde_json::json!({ "concurency": 1 })).is_err());
}
