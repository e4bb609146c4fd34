//! `mooring render DIR`: the manifests an environment (or a plain directory) resolves to, as
//! YAML, each field the environment set marked with where it was written, so a reviewer
//! sees what prd will get before it gets it.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::environment::resolve;
use super::error::ManifestErrors;
use super::limits::Limits;
use super::load::check_parsed;
use super::yaml::{YamlDocument, escape_segment, resolve_plain};

/// Renders `dir`: the resolved documents as one YAML stream, or every error.
pub fn render_dir(dir: &Path) -> Result<String, ManifestErrors> {
    let limits = Limits::default();
    let resolved = resolve(dir, &limits);
    if !resolved.errors.is_empty() {
        let mut all = resolved.errors;
        all.extend(resolved.parsed.errors);
        all.extend(resolved.parsed.yaml_errors);
        all.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
        return Err(ManifestErrors(all));
    }
    // Only what would load is rendered.
    let set = check_parsed(resolved.parsed.clone(), &limits)?;
    let mut out = String::new();
    match &resolved.environment {
        Some(env) => {
            let _ = writeln!(
                out,
                "# environment `{}` ({}), stack `{}`, revision {}",
                env.name,
                env.file.display(),
                set.stack,
                set.revision
            );
        }
        None => {
            let _ = writeln!(
                out,
                "# {} (no environment), stack `{}`, revision {}",
                dir.display(),
                set.stack,
                set.revision
            );
        }
    }
    for (file, docs) in &resolved.parsed.files {
        for doc in docs.iter().filter(|d| !d.value.is_null()) {
            let key = format!(
                "{}/{}",
                doc.value["kind"].as_str().unwrap_or_default(),
                doc.value["metadata"]["name"].as_str().unwrap_or_default()
            );
            let _ = writeln!(
                out,
                "---\n# {key} from {}:{}",
                file.display(),
                doc.mark_of("").line
            );
            out.push_str(&render_document(doc));
        }
    }
    Ok(out)
}

/// One document as block YAML; a line whose field was written elsewhere ends with
/// `# file:line`.
pub fn render_document(doc: &YamlDocument) -> String {
    let mut lines: Vec<(String, Option<String>)> = Vec::new();
    match &doc.value {
        Value::Object(m) if !m.is_empty() => block(doc, &doc.value, 0, "", &mut lines),
        other => lines.push((inline(other), None)),
    }
    let mut out = String::new();
    for (text, from) in lines {
        out.push_str(&text);
        if let Some(from) = from {
            out.push_str("  # ");
            out.push_str(&from);
        }
        out.push('\n');
    }
    out
}

fn from(doc: &YamlDocument, pointer: &str) -> Option<String> {
    doc.elsewhere
        .get(pointer)
        .map(|(file, mark)| format!("{}:{}", file.display(), mark.line))
}

/// A scalar or an empty collection, written on one line.
fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar(s),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(m) if m.is_empty() => "{}".into(),
        // Not reached: collections with content are written as blocks.
        other => other.to_string(),
    }
}

fn is_inline(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => true,
    }
}

/// A string as a YAML scalar that reads back as the same string: plain when that is safe,
/// double-quoted (JSON escapes are valid YAML) otherwise.
pub fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && resolve_plain(s) == Value::String(s.to_string())
        && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c))
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && s.chars().all(|c| !c.is_control());
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

fn block(
    doc: &YamlDocument,
    v: &Value,
    indent: usize,
    pointer: &str,
    lines: &mut Vec<(String, Option<String>)>,
) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let p = format!("{pointer}/{}", escape_segment(k));
                if is_inline(c) {
                    lines.push((format!("{pad}{}: {}", scalar(k), inline(c)), from(doc, &p)));
                } else {
                    lines.push((format!("{pad}{}:", scalar(k)), from(doc, &p)));
                    block(doc, c, indent + 2, &p, lines);
                }
            }
        }
        Value::Array(items) => {
            for (i, c) in items.iter().enumerate() {
                let p = format!("{pointer}/{i}");
                if is_inline(c) {
                    lines.push((format!("{pad}- {}", inline(c)), from(doc, &p)));
                } else {
                    let start = lines.len();
                    block(doc, c, indent + 2, &p, lines);
                    if let Some(first) = lines.get_mut(start) {
                        first.0 = format!("{pad}- {}", &first.0[indent + 2..]);
                        if first.1.is_none() {
                            first.1 = from(doc, &p);
                        }
                    }
                }
            }
        }
        other => lines.push((format!("{pad}{}", inline(other)), from(doc, pointer))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::yaml::parse_documents;

    #[test]
    fn rendered_yaml_reads_back_as_the_same_value() {
        let text = "a: 1\nb: '1'\nc: 'yes'\nd: true\ne: 'true'\nf: ~\ng: ''\nh: 'a: b'\ni: '- x'\nj: [1, [2, 3], {k: v, l: [w]}, []]\nk: {}\nl: \"x\\ny\"\nm: '#no'\nn: cron(0 8 * * ? *)\no: 'a #b'\n";
        let (docs, errors) = parse_documents(text);
        assert!(errors.is_empty());
        let rendered = render_document(&docs[0]);
        let (again, errors) = parse_documents(&rendered);
        assert!(errors.is_empty(), "{errors:?}\n{rendered}");
        assert_eq!(again[0].value, docs[0].value, "{rendered}");
    }
}
