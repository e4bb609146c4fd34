//! The YAML text `mooring import` writes: block style, keys in the order they were built,
//! strings quoted only when YAML could read them as something else.

use serde_json::Value;

/// A string as a YAML scalar: plain when it cannot be read as a number, boolean, null or
/// YAML syntax, otherwise double-quoted (JSON's escaping is valid YAML).
pub fn scalar(s: &str) -> String {
    let plain_char = |c: char| c.is_ascii_alphanumeric() || "_./@+-:$".contains(c);
    let first = s.chars().next();
    let lower = s.to_ascii_lowercase();
    let plain = first.is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && s.chars().all(plain_char)
        && !s.ends_with(':')
        && !s.contains(": ")
        && !matches!(
            lower.as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n" | "inf" | "nan"
        )
        && s.parse::<f64>().is_err();
    if plain { s.to_string() } else { quoted(s) }
}

/// `s` double-quoted, escaped so that YAML reads back exactly `s`: JSON's escaping leaves
/// DEL, the C1 controls, NEL, the line and paragraph separators and the BOM raw, which a
/// YAML reader refuses or folds; those and every other control character are written as
/// `\uXXXX`.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn inline(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("null".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(scalar(s)),
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(o) if o.is_empty() => Some("{}".into()),
        // A list of scalars reads best on one line: `command: [CMD-SHELL, "…"]`.
        Value::Array(a) if a.iter().all(|x| !x.is_array() && !x.is_object()) => Some(format!(
            "[{}]",
            a.iter().filter_map(inline).collect::<Vec<_>>().join(", ")
        )),
        _ => None,
    }
}

/// Writes `v` (an object) as block YAML at `indent` spaces.
pub fn block(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match inline(v) {
                    Some(s) => out.push_str(&format!("{pad}{}: {s}\n", scalar(k))),
                    None => {
                        out.push_str(&format!("{pad}{}:\n", scalar(k)));
                        block(v, indent + 2, out);
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match inline(item) {
                    Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                    None => {
                        let mut inner = String::new();
                        block(item, indent + 2, &mut inner);
                        // The first line of the item goes after the dash.
                        out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                    }
                }
            }
        }
        other => {
            if let Some(s) = inline(other) {
                out.push_str(&format!("{pad}{s}\n"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quotes_only_what_yaml_would_misread() {
        assert_eq!(scalar("production"), "production");
        assert_eq!(scalar("/ecs/api"), "/ecs/api");
        assert_eq!(
            scalar("arn:aws:ssm:eu-west-1:123456789012:parameter/prd/db"),
            "arn:aws:ssm:eu-west-1:123456789012:parameter/prd/db"
        );
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("3000"), "\"3000\"");
        assert_eq!(scalar("1.4.2"), "\"1.4.2\"");
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("a b"), "\"a b\"");
        assert_eq!(scalar("#x"), "\"#x\"");
        assert_eq!(scalar("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
    }

    #[test]
    fn block_style_with_lists_of_maps() {
        let mut out = String::new();
        block(
            &json!({"a": {"b": 1, "c": []}, "l": [{"x": "1", "w": {"z": true}}], "s": ["CMD", "a b"]}),
            0,
            &mut out,
        );
        assert_eq!(
            out,
            "a:\n  b: 1\n  c: []\nl:\n  - x: \"1\"\n    w:\n      z: true\ns: [CMD, \"a b\"]\n"
        );
    }

    /// Review finding: what `mooring import` writes must read back as the same string
    /// (alarm names and descriptions, rule descriptions are free text in AWS). JSON's
    /// escaping leaves DEL, C1 controls, NEL, LS/PS and the BOM raw, which YAML does not
    /// take as they are inside a double-quoted scalar.
    #[test]
    fn hostile_strings_round_trip() {
        let hostile = [
            "Backend: CPU > 80% # page",
            "- x",
            "? x",
            "*alias",
            "&anchor",
            "!tag",
            "%YAML",
            "|",
            ">",
            "'single'",
            "\"double\"",
            " lead",
            "trail ",
            "a\tb",
            "a\\b",
            "{x: 1}",
            "[x]",
            "@x",
            "`x`",
            "Ünïcödé 日本 🚀",
            "a\r\nb",
            "a\u{7f}b",
            "a\u{85}b",
            "a\u{9f}b",
            "a\u{2028}b",
            "a\u{2029}b",
            "a\u{feff}b",
        ];
        let long = "x: ".repeat(400);
        let mut failed = Vec::new();
        for s in hostile.iter().copied().chain([long.as_str()]) {
            // Keys (tag keys, dimension names) are short in AWS; values may be long.
            let v = if s.len() < 256 {
                json!({ "d": s, (s): 1 })
            } else {
                json!({ "d": s })
            };
            let mut out = String::new();
            block(&v, 0, &mut out);
            let (docs, errors) = crate::manifest::yaml::parse_documents(&out);
            let back = docs.first().map(|d| d.value.clone());
            if !errors.is_empty() || back != Some(v.clone()) {
                failed.push(format!("{s:?} -> {out:?}: {errors:?} {back:?}"));
            }
        }
        assert!(failed.is_empty(), "{failed:#?}");
    }
}
