//! YAML to JSON with positions.
//!
//! serde's YAML deserializers stop at the first error and forget where a value came from.
//! mooring wants every error of a manifest set at once, each with `file:line:col`, so it
//! parses YAML events itself (`yaml-rust2`), builds a `serde_json::Value` per document and
//! remembers, for every JSON pointer, where that field was written. Schema validation and
//! the semantic checks then run on the JSON value and map their findings back through
//! [`YamlDocument::mark_of`].

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in a YAML file (both 1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Mark {
    /// Line, starting at 1.
    pub line: usize,
    /// Column, starting at 1.
    pub col: usize,
}

impl From<Marker> for Mark {
    fn from(m: Marker) -> Self {
        // yaml-rust2 reports 1-based lines and 0-based columns.
        Mark {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// One YAML document converted to JSON, with the position of every field.
#[derive(Debug, Clone)]
pub struct YamlDocument {
    /// The document as JSON.
    pub value: Value,
    /// Position of each JSON pointer: the key for a mapping entry, the item for a sequence
    /// entry, the start of the document for `""`.
    pub marks: BTreeMap<String, Mark>,
}

impl YamlDocument {
    /// Where the value at `pointer` (or its nearest written ancestor) was written.
    pub fn mark_of(&self, pointer: &str) -> Mark {
        let mut p = pointer;
        loop {
            if let Some(m) = self.marks.get(p) {
                return *m;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return self.marks.get("").copied().unwrap_or_default(),
            }
        }
    }
}

/// A problem found while reading YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Where it is.
    pub mark: Mark,
    /// What is wrong.
    pub message: String,
}

/// Parses every document of `text`. A syntax error ends the file; duplicate keys and other
/// structural problems are collected and parsing goes on.
pub fn parse_documents(text: &str) -> (Vec<YamlDocument>, Vec<YamlError>) {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        builder.errors.push(YamlError {
            mark: Mark::from(*e.marker()),
            message: format!("invalid YAML: {}", e.info()),
        });
    }
    (builder.documents, builder.errors)
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

enum Frame {
    Seq {
        items: Vec<Value>,
        pointer: String,
        anchor: usize,
    },
    Map {
        map: Map<String, Value>,
        pointer: String,
        anchor: usize,
        key: Option<String>,
    },
}

#[derive(Default)]
struct Builder {
    documents: Vec<YamlDocument>,
    errors: Vec<YamlError>,
    stack: Vec<Frame>,
    marks: BTreeMap<String, Mark>,
    anchors: HashMap<usize, Value>,
    root: Option<Value>,
    /// Set while skipping a value used as a mapping key (complex keys are not supported).
    skip_depth: usize,
}

impl Builder {
    /// Pointer for the value that starts now, recording its mark. `None` means this event
    /// is a mapping key, not a value.
    fn begin_value(&mut self, mark: Mark, is_scalar_key: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => {
                self.marks.insert(String::new(), mark);
                Some(String::new())
            }
            Some(Frame::Seq { items, pointer, .. }) => {
                let p = format!("{pointer}/{}", items.len());
                self.marks.insert(p.clone(), mark);
                Some(p)
            }
            Some(Frame::Map {
                map, pointer, key, ..
            }) => match key {
                Some(k) => Some(format!("{pointer}/{}", escape_segment(k))),
                None => {
                    match is_scalar_key {
                        Some(k) => {
                            let p = format!("{pointer}/{}", escape_segment(k));
                            if map.contains_key(k) {
                                self.errors.push(YamlError {
                                    mark,
                                    message: format!("duplicate key `{k}`"),
                                });
                            } else {
                                self.marks.insert(p, mark);
                            }
                            *key = Some(k.to_string());
                        }
                        None => {
                            self.errors.push(YamlError {
                                mark,
                                message: "mapping keys must be plain strings".into(),
                            });
                            *key = Some(String::new());
                        }
                    }
                    None
                }
            },
        }
    }

    fn finish_value(&mut self, value: Value) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { map, key, .. }) => {
                if let Some(k) = key.take() {
                    // A duplicate key keeps the first value; the error was recorded already.
                    map.entry(k).or_insert(value);
                }
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, marker: Marker) {
        let mark = Mark::from(marker);
        if self.skip_depth > 0 {
            match ev {
                Event::SequenceStart(..) | Event::MappingStart(..) => self.skip_depth += 1,
                Event::SequenceEnd | Event::MappingEnd => self.skip_depth -= 1,
                _ => {}
            }
            return;
        }
        match ev {
            Event::DocumentStart => {
                self.marks.clear();
                self.root = None;
            }
            Event::DocumentEnd => {
                let value = self.root.take().unwrap_or(Value::Null);
                let marks = std::mem::take(&mut self.marks);
                self.documents.push(YamlDocument { value, marks });
            }
            Event::Scalar(text, style, anchor, tag) => {
                let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if is_key {
                    self.begin_value(mark, Some(&text));
                    return;
                }
                self.begin_value(mark, None);
                let value = resolve_scalar(&text, style, tag.as_ref());
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                self.finish_value(value);
            }
            Event::Alias(id) => {
                let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if is_key {
                    self.begin_value(mark, None);
                    return;
                }
                self.begin_value(mark, None);
                let value = self.anchors.get(&id).cloned().unwrap_or(Value::Null);
                self.finish_value(value);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if is_key {
                    self.begin_value(mark, None);
                    self.skip_depth = 1;
                    return;
                }
                let pointer = self.begin_value(mark, None).unwrap_or_default();
                let frame = if matches!(ev, Event::SequenceStart(..)) {
                    Frame::Seq {
                        items: Vec::new(),
                        pointer,
                        anchor,
                    }
                } else {
                    Frame::Map {
                        map: Map::new(),
                        pointer,
                        anchor,
                        key: None,
                    }
                };
                self.stack.push(frame);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { items, anchor, .. }) => (Value::Array(items), anchor),
                    Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
                    None => return,
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                self.finish_value(value);
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
}

/// Resolves a scalar by the YAML 1.2 core schema: only plain scalars can be null, booleans
/// or numbers; `yes`/`no`/`on`/`off` stay strings.
fn resolve_scalar(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(tag) = tag
        && tag.suffix == "str"
    {
        return Value::String(text.to_string());
    }
    if style != TScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    // A number only when it reads back exactly as written: `01234`, `1.10`, `0x1F` or
    // `1e3` stay strings, so an environment value reaches the container as typed, and a
    // number field given such a value gets a type error instead of a silent rewrite.
    if let Ok(i) = text.parse::<i64>()
        && i.to_string() == text
    {
        return Value::Number(i.into());
    }
    if text.contains('.')
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
        && n.to_string() == text
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> YamlDocument {
        let (docs, errors) = parse_documents(text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(docs.len(), 1);
        docs.into_iter().next().unwrap()
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let doc = one(
            "a: 1\nb: -2\nc: 1.5\nd: true\ne: ~\nf: yes\ng: '3'\nh: 0x1f\ni: 1e3\nj: v1.2\nk: !!str 7\nl: 01234\nm: 1.10\nn: .inf\n",
        );
        assert_eq!(
            doc.value,
            json!({"a":1,"b":-2,"c":1.5,"d":true,"e":null,"f":"yes","g":"3","h":"0x1f","i":"1e3","j":"v1.2","k":"7","l":"01234","m":"1.10","n":".inf"})
        );
    }

    #[test]
    fn marks_point_at_keys_and_items() {
        let doc = one("spec:\n  image: nginx\n  ports:\n    - 80\n    - 443\n");
        assert_eq!(doc.mark_of("/spec/image"), Mark { line: 2, col: 3 });
        assert_eq!(doc.mark_of("/spec/ports/1"), Mark { line: 5, col: 7 });
        // Unknown pointers fall back to the nearest ancestor that was written.
        assert_eq!(doc.mark_of("/spec/image/x"), Mark { line: 2, col: 3 });
    }

    #[test]
    fn several_documents_and_duplicate_keys() {
        let (docs, errors) = parse_documents("a: 1\n---\nb: 2\nb: 3\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value, json!({"b": 2}));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].mark, Mark { line: 4, col: 1 });
        assert!(errors[0].message.contains("duplicate key `b`"));
    }

    #[test]
    fn anchors_and_aliases_copy_values() {
        let doc = one("base: &b {x: 1}\nother: *b\n");
        assert_eq!(doc.value["other"], json!({"x": 1}));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let (_, errors) = parse_documents("a: [1, 2\nb: 3\n");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.starts_with("invalid YAML"));
        assert!(errors[0].mark.line >= 1);
    }
}
