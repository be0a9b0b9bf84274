//! A small YAML emitter for specs, safe for YAML 1.1 readers.
//!
//! doctl reads spec files with a YAML 1.1 parser (go-yaml v2 under `sigs.k8s.io/yaml`), where
//! bare `no`, `on`, `y`, `1_000` or `0123` are booleans and numbers, not strings. A general YAML
//! 1.2 serializer leaves many of those unquoted, so an env value `no` would reach App Platform
//! as `false` (or fail to decode). This emitter writes a string bare only when it is plainly a
//! word or path (`sandbox-python`, `/sandbox_health`, `RUN_TIME`) and not one of the YAML 1.1
//! keywords; everything else is double-quoted with escapes, which every YAML version reads the
//! same way. Block style, two-space indents, sequences indented under their key, keys in the
//! order the model serializes them.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Words YAML 1.1 or 1.2 resolve to booleans or null (compared case-insensitively).
const KEYWORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

/// Renders a JSON value (the spec, serialized) as block-style YAML ending in a newline.
pub(crate) fn render(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            write_scalar(&mut out, scalar);
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn write_map(out: &mut String, map: &Map<String, Value>, indent: usize) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        write_entry(out, key, value, indent);
    }
}

/// Writes `key: value` at the current position; nested blocks go one level deeper.
fn write_entry(out: &mut String, key: &str, value: &Value, indent: usize) {
    write_string(out, key);
    out.push(':');
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            pad(out, indent + 2);
            write_map(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, indent + 2);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar);
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        pad(out, indent);
        match item {
            Value::Object(map) if !map.is_empty() => {
                out.push_str("- ");
                write_map(out, map, indent + 2);
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push_str("-\n");
                write_seq(out, inner, indent + 2);
            }
            scalar => {
                out.push_str("- ");
                write_scalar(out, scalar);
                out.push('\n');
            }
        }
    }
}

fn write_scalar(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// Whether `s` reads back as the same string when written bare, in YAML 1.1 and 1.2 alike.
fn is_plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/' || first == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(s))
}

fn write_string(out: &mut String, s: &str) {
    if is_plain(s) {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Everything YAML does not allow raw, or that readers treat as a line break or
            // byte-order mark: C0 and C1 controls, DEL, NEL, U+2028, U+2029, U+FEFF.
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_words_and_paths_stay_bare() {
        for s in [
            "sandbox-python",
            "/sandbox_health",
            "RUN_TIME",
            "python/service",
            "a.b",
        ] {
            assert!(is_plain(s), "{s}");
        }
    }

    #[test]
    fn yaml_1_1_lookalikes_are_quoted() {
        for s in [
            "",
            "no",
            "No",
            "ON",
            "y",
            "N",
            "true",
            "Null",
            "~",
            "1",
            "1_000",
            "0123",
            "1:20",
            "2001-12-14",
            "=",
            "<<",
            ".inf",
            "-1",
            "+1",
            "24.04",
            " a",
            "a ",
            "a: b",
            "#x",
            "a#b",
            "*x",
            "&x",
            "!x",
            "%x",
            "@x",
            "`x",
            "|",
            ">",
            "[a]",
            "{a}",
            "'a'",
            "\"a\"",
            "?x",
            "-x",
            "a b",
            "é",
        ] {
            let mut out = String::new();
            write_string(&mut out, s);
            assert!(out.starts_with('"'), "{s:?} rendered bare as {out}");
        }
    }

    #[test]
    fn escapes() {
        let mut out = String::new();
        write_string(&mut out, "a\"b\\c\nd\re\tf\u{7}g\u{7f}h\u{85}i\u{2028}j✓");
        assert_eq!(out, r#""a\"b\\c\nd\re\tf\u0007g\u007fh\u0085i\u2028j✓""#);
    }

    #[test]
    fn block_layout() {
        let value = json!({
            "name": "x",
            "services": [{"name": "s", "internal_ports": [9090], "image": {"tag": "1.0"}}],
            "empty": [],
            "nested": [[1, 2], []],
        });
        assert_eq!(
            render(&value),
            "name: x\nservices:\n  - name: s\n    internal_ports:\n      - 9090\n    image:\n      \
             tag: \"1.0\"\nempty: []\nnested:\n  -\n    - 1\n    - 2\n  - []\n"
        );
    }
}
