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

use super::limits::{YamlLimits, human_bytes};

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
    /// Fields written in another file than the document's (an environment's patch or
    /// variable): pointer → that file and position. Empty for a document read as is.
    pub elsewhere: BTreeMap<String, (std::path::PathBuf, Mark)>,
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

    /// Where the value at `pointer` (or its nearest written ancestor) was written: the file
    /// when it is not the document's own (see [`YamlDocument::elsewhere`]), and the position.
    pub fn place_of(&self, pointer: &str) -> (Option<&std::path::Path>, Mark) {
        let mut p = pointer;
        loop {
            if let Some((file, m)) = self.elsewhere.get(p) {
                return (Some(file.as_path()), *m);
            }
            if let Some(m) = self.marks.get(p) {
                return (None, *m);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return (None, Mark::default()),
            }
        }
    }
}

/// A problem found while reading YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Where it is.
    pub mark: Mark,
    /// The JSON pointer of the value concerned, empty when the problem is not about one
    /// value (a syntax error, a limit of the file).
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

/// Parses every document of `text` within the default [`YamlLimits`]. A syntax error or a
/// limit ends the file; duplicate keys and other structural problems are collected and
/// parsing goes on.
pub fn parse_documents(text: &str) -> (Vec<YamlDocument>, Vec<YamlError>) {
    parse_documents_with(text, &YamlLimits::default())
}

/// [`parse_documents`] within `limits`.
///
/// The parser is driven one event at a time (never through yaml-rust2's recursive
/// `Parser::load`), so nesting costs heap, not stack, and the reader stops as soon as a
/// limit is hit instead of building what the input asks for.
pub fn parse_documents_with(
    text: &str,
    limits: &YamlLimits,
) -> (Vec<YamlDocument>, Vec<YamlError>) {
    // A UTF-8 byte order mark is an encoding signature, not content (YAML 1.2 §5.2).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // yaml-rust2 takes a NUL for the end of the input and would silently drop the rest of
    // the file: control characters are refused before parsing (YAML 1.2 §5.1 excludes them).
    if let Some((i, c)) = text.char_indices().find(|(_, c)| !is_printable(*c)) {
        let prefix = &text[..i];
        let line = prefix.matches('\n').count() + 1;
        let col = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let error = YamlError {
            mark: Mark { line, col },
            pointer: String::new(),
            message: format!(
                "invalid YAML: control character U+{:04X} is not allowed in YAML text",
                u32::from(c)
            ),
        };
        return (Vec::new(), vec![error]);
    }
    let mut builder = Builder {
        limits: *limits,
        text,
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(text);
    while !builder.stopped {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => break,
            Ok((ev, marker)) => builder.on_event(ev, marker),
            Err(e) => {
                builder.errors.push(YamlError {
                    mark: Mark::from(*e.marker()),
                    pointer: String::new(),
                    message: format!("invalid YAML: {}", e.info()),
                });
                break;
            }
        }
    }
    (builder.documents, builder.errors)
}

/// YAML 1.2's printable characters (§5.1), the only ones a YAML stream may contain.
fn is_printable(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}'
        | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The size of a built value: its nodes, its height (a scalar is 0, `[1]` is 1) and the
/// bytes of its scalars and keys, so an alias can be charged for what it copies before it
/// is copied (a 64 KiB string aliased 10,000 times is 10,000 nodes but 655 MB).
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    height: usize,
    bytes: usize,
}

enum Frame {
    Seq {
        items: Vec<Value>,
        pointer: String,
        anchor: usize,
        size: Size,
    },
    Map {
        map: Map<String, Value>,
        pointer: String,
        anchor: usize,
        key: Option<String>,
        /// The current key was not a string (already an error): its value is dropped.
        discard: bool,
        size: Size,
    },
}

impl Frame {
    fn size_mut(&mut self) -> &mut Size {
        match self {
            Frame::Seq { size, .. } | Frame::Map { size, .. } => size,
        }
    }
}

#[derive(Default)]
struct Builder<'a> {
    limits: YamlLimits,
    /// The text being parsed, to place errors about tags.
    text: &'a str,
    documents: Vec<YamlDocument>,
    errors: Vec<YamlError>,
    stack: Vec<Frame>,
    marks: BTreeMap<String, Mark>,
    /// Anchored values of the current document, with their size.
    anchors: HashMap<usize, (Value, Size)>,
    root: Option<Value>,
    /// Set while skipping a value used as a mapping key (complex keys are not supported).
    skip_depth: usize,
    /// Nodes copied by aliases in this file so far.
    alias_nodes: usize,
    /// Bytes of scalars and keys copied by aliases in this file so far.
    alias_bytes: usize,
    /// A limit was hit: the rest of the file is not read.
    stopped: bool,
}

/// Which kind of node a tag is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    Scalar,
    Sequence,
    Mapping,
}

/// The YAML 1.2 core schema's tags, the only ones mooring accepts.
const CORE_TAG_PREFIX: &str = "tag:yaml.org,2002:";

/// CloudFormation's short-form intrinsic functions, for a clearer message.
const CLOUDFORMATION_TAGS: &[&str] = &[
    "Ref",
    "Sub",
    "GetAtt",
    "Join",
    "Select",
    "Split",
    "If",
    "Equals",
    "And",
    "Or",
    "Not",
    "FindInMap",
    "GetAZs",
    "ImportValue",
    "Base64",
    "Cidr",
    "Condition",
    "Transform",
    "ToJsonString",
    "Length",
];

/// How a tag was written: `!Ref`, `!!str`, `!<tag:example.com:x>`.
fn tag_text(tag: &Tag) -> String {
    if tag.handle == CORE_TAG_PREFIX {
        format!("!!{}", tag.suffix)
    } else if tag.handle == "!" || (tag.handle.is_empty() && tag.suffix == "!") {
        format!("!{}", tag.suffix.trim_start_matches('!'))
    } else {
        format!("!<{}{}>", tag.handle, tag.suffix)
    }
}

/// Checks a node's tag: core-schema tags that fit the node are allowed (a scalar's is
/// returned for [`resolve_scalar`]), every other tag is an error — mooring does not
/// evaluate CloudFormation functions or any other application tag, and ignoring one would
/// silently change what the manifest means.
fn check_tag(tag: Option<&Tag>, node: NodeKind) -> Result<Option<&str>, String> {
    let Some(tag) = tag else { return Ok(None) };
    // `! value`: the non-specific tag, which only says "not resolved", i.e. a string.
    let non_specific = (tag.handle == "!" && tag.suffix.is_empty())
        || (tag.handle.is_empty() && tag.suffix == "!");
    if non_specific && node == NodeKind::Scalar {
        return Ok(Some("str"));
    }
    if tag.handle == CORE_TAG_PREFIX {
        let fits = match node {
            NodeKind::Scalar => ["str", "int", "float", "bool", "null"].contains(&&*tag.suffix),
            NodeKind::Sequence => tag.suffix == "seq",
            NodeKind::Mapping => tag.suffix == "map",
        };
        if fits {
            return Ok(Some(tag.suffix.as_str()));
        }
    }
    let text = tag_text(tag);
    if tag.handle == "!" && CLOUDFORMATION_TAGS.contains(&tag.suffix.as_str()) {
        Err(format!(
            "YAML tag `{text}` is not supported: mooring does not evaluate CloudFormation functions"
        ))
    } else {
        Err(format!(
            "YAML tag `{text}` is not supported here: mooring reads plain YAML (core tags only: !!str, !!int, !!float, !!bool, !!null on scalars, !!seq, !!map)"
        ))
    }
}

impl Builder<'_> {
    fn error(&mut self, mark: Mark, pointer: &str, message: impl Into<String>) {
        if self.errors.len() >= self.limits.max_errors {
            self.errors.push(YamlError {
                mark,
                pointer: String::new(),
                message: format!(
                    "more than {} errors in this file; mooring stops reading it here",
                    self.limits.max_errors
                ),
            });
            self.stopped = true;
            return;
        }
        self.errors.push(YamlError {
            mark,
            pointer: pointer.to_string(),
            message: message.into(),
        });
    }

    /// Records a limit error and stops reading the file.
    fn stop(&mut self, mark: Mark, message: String) {
        self.errors.push(YamlError {
            mark,
            pointer: String::new(),
            message: format!("{message}; mooring stops reading this file here"),
        });
        self.stopped = true;
    }

    /// Pointer of the mapping or sequence now open, for errors about a key.
    fn current_pointer(&self) -> &str {
        match self.stack.last() {
            Some(Frame::Seq { pointer, .. } | Frame::Map { pointer, .. }) => pointer,
            None => "",
        }
    }

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
                map,
                pointer,
                key,
                discard,
                ..
            }) => match key {
                Some(k) => Some(format!("{pointer}/{}", escape_segment(k))),
                None => {
                    let pointer = pointer.clone();
                    match is_scalar_key {
                        Some(k) => {
                            let duplicate = map.contains_key(k);
                            *key = Some(k.to_string());
                            if duplicate {
                                let p = format!("{pointer}/{}", escape_segment(k));
                                self.error(mark, &p, format!("duplicate key `{k}`"));
                            } else {
                                let p = format!("{pointer}/{}", escape_segment(k));
                                self.marks.insert(p, mark);
                            }
                        }
                        None => {
                            *key = Some(String::new());
                            *discard = true;
                            self.error(mark, &pointer, "mapping keys must be plain strings");
                        }
                    }
                    None
                }
            },
        }
    }

    fn finish_value(&mut self, value: Value, size: Size) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(frame) => {
                let key_bytes = match frame {
                    Frame::Map { key, .. } => key.as_ref().map_or(0, String::len),
                    Frame::Seq { .. } => 0,
                };
                let parent = frame.size_mut();
                parent.nodes = parent.nodes.saturating_add(size.nodes);
                parent.height = parent.height.max(size.height + 1);
                parent.bytes = parent.bytes.saturating_add(size.bytes + key_bytes);
                match frame {
                    Frame::Seq { items, .. } => items.push(value),
                    Frame::Map {
                        map, key, discard, ..
                    } => {
                        if let Some(k) = key.take()
                            && !std::mem::take(discard)
                        {
                            // A duplicate key keeps the first value; the error was recorded
                            // already.
                            map.entry(k).or_insert(value);
                        }
                    }
                }
            }
        }
    }

    /// Where the tag of the node at `mark` was written: on the node's line, the last
    /// occurrence of the tag before the node (a tag on a line of its own stays at the node).
    fn tag_mark(&self, mark: Mark, tag: Option<&Tag>) -> Mark {
        let Some(tag) = tag else { return mark };
        let written = tag_text(tag);
        let Some(line) = self.text.lines().nth(mark.line.saturating_sub(1)) else {
            return mark;
        };
        let before: String = line.chars().take(mark.col.saturating_sub(1)).collect();
        match before.rfind(&written) {
            Some(i) => Mark {
                line: mark.line,
                col: before[..i].chars().count() + 1,
            },
            None => mark,
        }
    }

    fn is_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    fn check_scalar_length(&mut self, mark: Mark, pointer: &str, text: &str, what: &str) {
        if text.len() > self.limits.max_scalar_bytes {
            let message = format!(
                "{what} of {} bytes is longer than the limit of {}",
                text.len(),
                human_bytes(self.limits.max_scalar_bytes)
            );
            self.error(mark, pointer, message);
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, marker: Marker) {
        let mark = Mark::from(marker);
        if self.skip_depth > 0 {
            match ev {
                Event::SequenceStart(..) | Event::MappingStart(..) => {
                    self.skip_depth += 1;
                    if self.stack.len() + self.skip_depth > self.limits.max_depth {
                        let max = self.limits.max_depth;
                        self.stop(mark, format!("nesting deeper than {max} levels"));
                    }
                }
                Event::SequenceEnd | Event::MappingEnd => self.skip_depth -= 1,
                _ => {}
            }
            return;
        }
        match ev {
            Event::DocumentStart => {
                if self.documents.len() >= self.limits.max_documents {
                    let max = self.limits.max_documents;
                    self.stop(mark, format!("more than {max} documents in one file"));
                    return;
                }
                self.marks.clear();
                self.anchors.clear();
                self.root = None;
            }
            Event::DocumentEnd => {
                let value = self.root.take().unwrap_or(Value::Null);
                let marks = std::mem::take(&mut self.marks);
                self.documents.push(YamlDocument {
                    value,
                    marks,
                    elsewhere: BTreeMap::new(),
                });
            }
            Event::Scalar(text, style, anchor, tag) => {
                if self.is_key() {
                    let parent = self.current_pointer().to_string();
                    self.check_scalar_length(mark, &parent, &text, "key");
                    if let Err(message) = check_tag(tag.as_ref(), NodeKind::Scalar) {
                        let at = self.tag_mark(mark, tag.as_ref());
                        self.error(at, &parent, message);
                    }
                    self.begin_value(mark, Some(&text));
                    return;
                }
                let pointer = self.begin_value(mark, None).unwrap_or_default();
                self.check_scalar_length(mark, &pointer, &text, "value");
                let value = match check_tag(tag.as_ref(), NodeKind::Scalar) {
                    Ok(core) => match resolve_scalar(&text, style, core) {
                        Ok(v) => v,
                        Err(message) => {
                            let at = self.tag_mark(mark, tag.as_ref());
                            self.error(at, &pointer, message);
                            Value::Null
                        }
                    },
                    Err(message) => {
                        let at = self.tag_mark(mark, tag.as_ref());
                        self.error(at, &pointer, message);
                        Value::Null
                    }
                };
                let size = Size {
                    nodes: 1,
                    height: 0,
                    bytes: text.len(),
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, (value.clone(), size));
                }
                self.finish_value(value, size);
            }
            Event::Alias(id) => {
                if self.is_key() {
                    self.begin_value(mark, None);
                    return;
                }
                let pointer = self.begin_value(mark, None).unwrap_or_default();
                let Some((value, size)) = self.anchors.get(&id) else {
                    let enclosing = self.stack.iter().any(|f| match f {
                        Frame::Seq { anchor, .. } | Frame::Map { anchor, .. } => *anchor == id,
                    });
                    let message = if enclosing {
                        "alias refers to the anchor of a mapping or sequence that contains it \
                         (a recursive structure)"
                    } else {
                        "alias refers to an anchor of another document"
                    };
                    self.error(mark, &pointer, message);
                    self.finish_value(Value::Null, Size::default());
                    return;
                };
                self.alias_nodes = self.alias_nodes.saturating_add(size.nodes);
                self.alias_bytes = self.alias_bytes.saturating_add(size.bytes);
                if self.alias_bytes > self.limits.max_alias_bytes {
                    let max = self.limits.max_alias_bytes;
                    self.stop(
                        mark,
                        format!("aliases expand to more than {max} bytes in this file"),
                    );
                    return;
                }
                if self.alias_nodes > self.limits.max_alias_nodes {
                    let max = self.limits.max_alias_nodes;
                    self.stop(
                        mark,
                        format!("aliases expand to more than {max} nodes in this file"),
                    );
                    return;
                }
                if self.stack.len() + size.height > self.limits.max_depth {
                    let max = self.limits.max_depth;
                    self.stop(
                        mark,
                        format!("nesting deeper than {max} levels (through this alias)"),
                    );
                    return;
                }
                let (value, size) = (value.clone(), *size);
                self.finish_value(value, size);
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                if self.stack.len() >= self.limits.max_depth {
                    let max = self.limits.max_depth;
                    self.stop(mark, format!("nesting deeper than {max} levels"));
                    return;
                }
                let node = if matches!(ev, Event::SequenceStart(..)) {
                    NodeKind::Sequence
                } else {
                    NodeKind::Mapping
                };
                let tag_error = check_tag(tag.as_ref(), node).err();
                if self.is_key() {
                    self.begin_value(mark, None);
                    self.skip_depth = 1;
                    return;
                }
                let pointer = self.begin_value(mark, None).unwrap_or_default();
                if let Some(message) = tag_error {
                    let at = self.tag_mark(mark, tag.as_ref());
                    self.error(at, &pointer, message);
                }
                let size = Size {
                    nodes: 1,
                    height: 0,
                    bytes: 0,
                };
                let frame = if node == NodeKind::Sequence {
                    Frame::Seq {
                        items: Vec::new(),
                        pointer,
                        anchor,
                        size,
                    }
                } else {
                    Frame::Map {
                        map: Map::new(),
                        pointer,
                        anchor,
                        key: None,
                        discard: false,
                        size,
                    }
                };
                self.stack.push(frame);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor, size) = match self.stack.pop() {
                    Some(Frame::Seq {
                        items,
                        anchor,
                        size,
                        ..
                    }) => (Value::Array(items), anchor, size),
                    Some(Frame::Map {
                        map, anchor, size, ..
                    }) => (Value::Object(map), anchor, size),
                    None => return,
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, (value.clone(), size));
                }
                self.finish_value(value, size);
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
}

/// Resolves a scalar by the YAML 1.2 core schema: only plain scalars can be null, booleans
/// or numbers; `yes`/`no`/`on`/`off` stay strings. `core` is the scalar's core-schema tag
/// (`str`, `int`, …), which forces a string or must match what the text resolves to.
fn resolve_scalar(text: &str, style: TScalarStyle, core: Option<&str>) -> Result<Value, String> {
    let resolved = match core {
        Some("str") => return Ok(Value::String(text.to_string())),
        // An explicit type resolves the text as if it were plain, whatever its quoting.
        Some(_) => resolve_plain(text),
        None if style != TScalarStyle::Plain => return Ok(Value::String(text.to_string())),
        None => resolve_plain(text),
    };
    let fits = match core {
        None => true,
        Some("int") => resolved.is_i64() || resolved.is_u64(),
        Some("float") => resolved.is_number(),
        Some("bool") => resolved.is_boolean(),
        Some("null") => resolved.is_null(),
        Some(_) => false,
    };
    if fits {
        Ok(resolved)
    } else {
        let tag = core.unwrap_or_default();
        Err(format!("`{text}` is not a valid !!{tag}"))
    }
}

pub(crate) fn resolve_plain(text: &str) -> Value {
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

    fn limits() -> YamlLimits {
        YamlLimits::default()
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        let at_limit = format!("{}x{}", "[".repeat(64), "]".repeat(64));
        let (docs, errors) = parse_documents(&at_limit);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(docs.len(), 1);
        let over = format!("{}x{}", "[".repeat(65), "]".repeat(65));
        let (docs, errors) = parse_documents(&over);
        assert!(docs.is_empty());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].mark, Mark { line: 1, col: 65 });
        assert!(errors[0].message.contains("nesting deeper than 64 levels"));
    }

    #[test]
    fn aliases_are_charged_for_what_they_copy() {
        let small = YamlLimits {
            max_alias_nodes: 10,
            ..limits()
        };
        // Three nodes copied three times: 9, within 10.
        let ok = "a: &a [1, 2]\nb: [*a, *a, *a]\n";
        let (_, errors) = parse_documents_with(ok, &small);
        assert!(errors.is_empty(), "{errors:?}");
        // A fourth copy is 12.
        let over = "a: &a [1, 2]\nb: [*a, *a, *a, *a]\n";
        let (docs, errors) = parse_documents_with(over, &small);
        assert!(docs.is_empty());
        assert_eq!(errors[0].mark, Mark { line: 2, col: 17 });
        assert!(
            errors[0]
                .message
                .contains("aliases expand to more than 10 nodes")
        );
        // Copies of copies count in full: `b` copies 2 + 2 nodes and is 5 nodes itself,
        // `c` copies it twice: 14.
        let nested = "a: &a [1]\nb: &b [*a, *a]\nc: [*b, *b]\n";
        let within = |max| YamlLimits {
            max_alias_nodes: max,
            ..limits()
        };
        let (_, errors) = parse_documents_with(nested, &within(14));
        assert!(errors.is_empty(), "{errors:?}");
        let (_, errors) = parse_documents_with(nested, &within(13));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].mark, Mark { line: 3, col: 9 });
    }

    #[test]
    fn tags_other_than_the_core_schema_are_errors_at_the_tag() {
        let (docs, errors) = parse_documents(
            "a: !Ref Cluster\nb: !!str 7\nc: !!int '8'\nd: ! 9\ne: !!map {x: 1}\nf: !!float 1\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].mark, Mark { line: 1, col: 4 });
        assert_eq!(errors[0].pointer, "/a");
        assert_eq!(
            errors[0].message,
            "YAML tag `!Ref` is not supported: mooring does not evaluate CloudFormation functions"
        );
        assert_eq!(
            docs[0].value,
            json!({"a": null, "b": "7", "c": 8, "d": "9", "e": {"x": 1}, "f": 1})
        );
        let (_, errors) = parse_documents("a: !!seq {x: 1}\nb: !!bool maybe\nc: !foo\n  x: 1\n");
        let found: Vec<(Mark, &str)> = errors
            .iter()
            .map(|e| (e.mark, e.message.as_str()))
            .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0]
                .1
                .starts_with("YAML tag `!!seq` is not supported here")
        );
        assert_eq!(found[0].0, Mark { line: 1, col: 4 });
        assert_eq!(found[1].1, "`maybe` is not a valid !!bool");
        assert!(
            found[2]
                .1
                .starts_with("YAML tag `!foo` is not supported here")
        );
    }

    #[test]
    fn long_values_are_errors_naming_their_field() {
        let small = YamlLimits {
            max_scalar_bytes: 8,
            ..limits()
        };
        let (docs, errors) = parse_documents_with("a:\n  b: 123456789\n  c: 12345678\n", &small);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].pointer, "/a/b");
        assert_eq!(errors[0].mark, Mark { line: 2, col: 6 });
        assert_eq!(
            errors[0].message,
            "value of 9 bytes is longer than the limit of 8 bytes"
        );
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn a_byte_order_mark_is_not_content_and_control_characters_are_refused() {
        let doc = one("\u{feff}a: 1\n");
        assert_eq!(doc.value, json!({"a": 1}));
        assert_eq!(doc.mark_of("/a"), Mark { line: 1, col: 1 });
        // yaml-rust2 would stop at the NUL and drop `b`.
        let (docs, errors) = parse_documents("a: 1\nb: x\u{0}y\n");
        assert!(docs.is_empty());
        assert_eq!(errors[0].mark, Mark { line: 2, col: 5 });
        assert!(errors[0].message.contains("U+0000"));
    }

    #[test]
    fn documents_and_errors_per_file_are_bounded() {
        let (docs, errors) = parse_documents_with(
            &"---\na: 1\n".repeat(5),
            &YamlLimits {
                max_documents: 3,
                ..limits()
            },
        );
        assert_eq!(docs.len(), 3);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].mark, Mark { line: 7, col: 1 });
        let dups = format!("a: 1\n{}", "a: 2\n".repeat(50));
        let (_, errors) = parse_documents_with(
            &dups,
            &YamlLimits {
                max_errors: 5,
                ..limits()
            },
        );
        assert_eq!(errors.len(), 6);
        assert!(
            errors[5]
                .message
                .starts_with("more than 5 errors in this file")
        );
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let (_, errors) = parse_documents("a: [1, 2\nb: 3\n");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.starts_with("invalid YAML"));
        assert!(errors[0].mark.line >= 1);
    }

    #[test]
    fn aliases_are_charged_for_the_bytes_they_copy() {
        // One 60 KB string aliased 100 times: few nodes, 6 MB of copies.
        let big = "x".repeat(60_000);
        let aliases: String = (0..100).map(|_| "*a, ").collect();
        let text = format!("a: &a '{big}'\nb: [{aliases}]\n");
        let (_, errors) = parse_documents_with(&text, &YamlLimits::default());
        assert!(
            errors.iter().any(|e| e
                .message
                .contains("aliases expand to more than 1048576 bytes")),
            "{errors:?}"
        );
    }
}
