//! Loading a manifest directory: read every `*.yaml`/`*.yml` below it, check every
//! document, and return either a whole valid [`ManifestSet`] or every error found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::annotations::{CHOICES, KNOWN};
use super::error::{Findings, ManifestError, ManifestErrors, dotted};
use super::limits::{Limits, human_bytes};
use super::read::read_sources;
use super::schema::validator;
use super::yaml::{YamlDocument, escape_segment, parse_documents_with};
use super::{API_VERSION, Document, Kind, Manifest, ManifestSet, Origin};
use crate::kinds::{Declared, Reference, Visitor};

/// Loads and validates every manifest under `dir` (recursively; hidden entries skipped),
/// within the default [`Limits`]. Touches no network. On any error, returns all errors and
/// no set.
pub fn load_dir(dir: &Path) -> Result<ManifestSet, ManifestErrors> {
    load_dir_with(dir, &Limits::default())
}

/// [`load_dir`] within `limits`.
pub fn load_dir_with(dir: &Path, limits: &Limits) -> Result<ManifestSet, ManifestErrors> {
    // An environment directory (one holding `environment.yaml`): its bases, overlaid.
    if super::environment::find(dir).is_some() {
        return super::environment::load(dir, limits);
    }
    let (sources, mut errors) = read_sources(dir, limits);
    if sources.is_empty() && errors.is_empty() {
        return Err(ManifestErrors(vec![ManifestError {
            file: dir.to_path_buf(),
            line: 1,
            col: 1,
            field: String::new(),
            message: "no manifests (*.yaml, *.yml) found".into(),
        }]));
    }
    match load_sources_with(&sources, limits) {
        Ok(set) if errors.is_empty() => Ok(set),
        Ok(_) => {
            errors.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
            Err(ManifestErrors(errors))
        }
        Err(ManifestErrors(more)) => {
            errors.extend(more);
            errors.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
            Err(ManifestErrors(errors))
        }
    }
}

/// One document that passed the per-document checks, kept with its positions for the
/// checks across documents.
struct Checked {
    file: PathBuf,
    doc: YamlDocument,
    kind: Kind,
    name: String,
}

/// A `kind: Stack` document: where it was, and the name it gives.
struct StackDoc {
    file: PathBuf,
    doc: YamlDocument,
    name: String,
}

/// [`load_sources`] with a `kind: Stack` document (stack `test`) added as `stack.yaml`: for
/// tests of single documents.
#[doc(hidden)]
pub fn load_with_stack(sources: &[(PathBuf, String)]) -> Result<ManifestSet, ManifestErrors> {
    let mut all = sources.to_vec();
    all.push((
        PathBuf::from("stack.yaml"),
        "apiVersion: mooring.dev/v1alpha1\nkind: Stack\nmetadata: {name: test}\n".into(),
    ));
    load_sources(&all)
}

/// Validates already-read files (`(path, text)`, in a stable order) into a set, within the
/// default [`Limits`].
pub fn load_sources(sources: &[(PathBuf, String)]) -> Result<ManifestSet, ManifestErrors> {
    load_sources_with(sources, &Limits::default())
}

/// [`load_sources`] within `limits`: a text over the file limit (or past the set's total) is
/// refused unread, and each file is parsed within `limits.yaml`.
pub fn load_sources_with(
    sources: &[(PathBuf, String)],
    limits: &Limits,
) -> Result<ManifestSet, ManifestErrors> {
    check_parsed(parse_sources(sources, limits), limits)
}

/// Files parsed into documents (or resolved by an environment), with the problems met so
/// far, ready for [`check_parsed`].
#[derive(Clone)]
pub struct ParsedSources {
    /// Each file with its documents, in a stable order.
    pub files: Vec<(PathBuf, Vec<YamlDocument>)>,
    /// Problems that are not the YAML reader's.
    pub errors: Vec<ManifestError>,
    /// Problems of the YAML itself.
    pub yaml_errors: Vec<ManifestError>,
    /// Content hash of the inputs (`sha256:…`).
    pub revision: String,
    /// The first input file, where a set-wide error is reported.
    pub first: Option<PathBuf>,
}

/// Content hash of `sources` as a set revision: `sha256:` and 12 hex digits.
pub(crate) fn revision_of(sources: &[(PathBuf, String)]) -> String {
    let mut hasher = Sha256::new();
    for (file, text) in sources {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    format!(
        "sha256:{}",
        digest
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Parses every file within `limits`: a text over the file limit (or past the set's total)
/// is refused unread.
pub(crate) fn parse_sources(sources: &[(PathBuf, String)], limits: &Limits) -> ParsedSources {
    let mut errors = Vec::new();
    let mut yaml_errors: Vec<ManifestError> = Vec::new();
    let mut total = 0usize;
    let mut files = Vec::new();
    for (file, text) in sources {
        total = total.saturating_add(text.len());
        if let Some(e) = check_size(file, text.len(), total, limits) {
            errors.push(e);
            continue;
        }
        let (docs, file_yaml_errors) = parse_documents_with(text, &limits.yaml);
        if file_yaml_errors.is_empty() && docs.iter().all(|d| d.value.is_null()) {
            yaml_errors.push(ManifestError {
                file: file.clone(),
                line: 1,
                col: 1,
                field: String::new(),
                message: "no manifest in this file (it is empty or only comments); \
                          delete the file if that is intended"
                    .into(),
            });
        }
        yaml_errors.extend(file_yaml_errors.into_iter().map(|e| ManifestError {
            file: file.clone(),
            line: e.mark.line,
            col: e.mark.col,
            field: dotted(&e.pointer),
            message: e.message,
        }));
        files.push((file.clone(), docs));
    }
    ParsedSources {
        files,
        errors,
        yaml_errors,
        revision: revision_of(sources),
        first: sources.first().map(|(f, _)| f.clone()),
    }
}

/// Checks parsed documents into a set: every document on its own, then across documents.
pub(crate) fn check_parsed(
    parsed: ParsedSources,
    limits: &Limits,
) -> Result<ManifestSet, ManifestErrors> {
    let ParsedSources {
        files,
        mut errors,
        // Problems of the YAML itself; a field they name gets no further errors (the value
        // that was refused would only show up again as "null is not of type string").
        mut yaml_errors,
        revision,
        first,
    } = parsed;
    let mut set = ManifestSet::default();
    let mut checked = Vec::new();
    let mut stacks: Vec<StackDoc> = Vec::new();
    let mut warnings = Vec::new();

    for (file, docs) in files {
        for doc in docs {
            if doc.value.is_null() {
                continue; // an empty document, e.g. after a trailing `---`
            }
            let mut f = Findings::new(&file, &doc);
            let kind = match check_envelope(&doc, &mut f) {
                Some(Envelope::Stack) => {
                    let name = super::stack::check(&doc, &mut f);
                    let ok = f.errors.is_empty();
                    errors.append(&mut f.errors);
                    if let (true, Some(name)) = (ok, name) {
                        stacks.push(StackDoc {
                            file: file.clone(),
                            doc,
                            name,
                        });
                    }
                    continue;
                }
                Some(Envelope::Kind(kind)) => {
                    check_schema(kind, &doc, &mut f);
                    if f.errors.is_empty() {
                        let origin = Origin {
                            file: file.clone(),
                            line: doc.mark_of("").line,
                        };
                        kind.visit(&mut Build {
                            doc: &doc,
                            origin,
                            f: &mut f,
                            set: &mut set,
                        });
                    }
                    Some(kind)
                }
                None => None,
            };
            check_annotations(&doc, &mut f);
            let ok = f.errors.is_empty();
            errors.append(&mut f.errors);
            warnings.append(&mut f.warnings);
            if let (true, Some(kind)) = (ok, kind) {
                let name = doc.value["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                checked.push(Checked {
                    file: file.clone(),
                    doc,
                    kind,
                    name,
                });
            }
        }
    }

    match stacks.as_slice() {
        // Reported at the first file, so that the error has a place an editor can open.
        [] => errors.push(ManifestError {
            file: first.clone().unwrap_or_default(),
            line: 1,
            col: 1,
            field: String::new(),
            message: "no `kind: Stack` document: every manifest set names its stack (`apiVersion: mooring.dev/v1alpha1`, `kind: Stack`, `metadata: {name: my-stack}`), so that mooring tells its resources from other stacks' in the same account".into(),
        }),
        [one] => set.stack = one.name.clone(),
        [first, rest @ ..] => {
            for other in rest {
                let mut f = Findings::new(&other.file, &other.doc);
                f.at(
                    "/kind",
                    format!(
                        "a manifest set is one stack, and `{}` is already named at {}:{}",
                        first.name,
                        first.file.display(),
                        first.doc.mark_of("").line
                    ),
                );
                errors.append(&mut f.errors);
            }
        }
    }

    check_across(&set, &checked, &mut errors, &mut warnings);
    order_within_kinds(&mut set, &checked, &mut errors);
    if !yaml_errors.is_empty() {
        let refused: std::collections::BTreeSet<(&Path, &str)> = yaml_errors
            .iter()
            .filter(|e| !e.field.is_empty())
            .map(|e| (e.file.as_path(), e.field.as_str()))
            .collect();
        errors.retain(|e| !refused.contains(&(e.file.as_path(), e.field.as_str())));
    }

    if errors.is_empty() && yaml_errors.is_empty() {
        set.revision = revision;
        warnings.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
        set.warnings = warnings;
        Ok(set)
    } else {
        errors.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
        errors.dedup();
        // The YAML reader's errors are few already (it stops at its own limit), and one of
        // them may be the limit that explains the rest: always shown.
        let mut errors = cap_per_file(errors, limits.yaml.max_errors);
        errors.append(&mut yaml_errors);
        errors.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
        Err(ManifestErrors(errors))
    }
}

/// Builds one schema-valid document of the visited kind into the set, with the kind's own
/// checks.
struct Build<'a, 'f> {
    doc: &'a YamlDocument,
    origin: Origin,
    f: &'a mut Findings<'f>,
    set: &'a mut ManifestSet,
}

impl Visitor for Build<'_, '_> {
    type Out = ();
    fn visit<K: Declared>(&mut self) {
        match serde_json::from_value::<Document<K::Spec>>(self.doc.value.clone()) {
            Ok(d) => {
                let m = Manifest {
                    metadata: d.metadata,
                    spec: d.spec,
                    origin: self.origin.clone(),
                };
                K::check(&m, self.f);
                K::manifests_mut(self.set).push(m);
            }
            Err(e) => match out_of_range(&self.doc.value, &e.to_string()) {
                Some((pointer, message)) => self.f.at(&pointer, message),
                None => self.f.at("", format!("invalid manifest: {e}")),
            },
        }
    }
}

/// Keeps the first `max` errors of each file (sorted by position), and says how many more
/// there were: 500 broken documents must not become a 1,000-line report and alert.
fn cap_per_file(errors: Vec<ManifestError>, max: usize) -> Vec<ManifestError> {
    let mut out: Vec<ManifestError> = Vec::new();
    let mut hidden: Option<(ManifestError, usize)> = None;
    let mut in_file = 0;
    for e in errors {
        if out.last().is_none_or(|last| last.file != e.file) {
            if let Some((last, n)) = hidden.take() {
                out.push(more_errors(last, n));
            }
            in_file = 0;
        }
        in_file += 1;
        if in_file <= max {
            out.push(e);
        } else {
            hidden = Some(match hidden {
                Some((_, n)) => (e, n + 1),
                None => (e, 1),
            });
        }
    }
    if let Some((last, n)) = hidden {
        out.push(more_errors(last, n));
    }
    out
}

fn more_errors(last: ManifestError, n: usize) -> ManifestError {
    ManifestError {
        field: String::new(),
        message: format!("{n} more error(s) in this file not shown"),
        ..last
    }
}

/// A text over the per-file limit, or one that takes the set past its total, is not parsed.
pub(crate) fn check_size(
    file: &Path,
    len: usize,
    total: usize,
    limits: &Limits,
) -> Option<ManifestError> {
    let message = if len > limits.max_file_bytes {
        format!(
            "file is larger than the limit of {} per manifest file",
            human_bytes(limits.max_file_bytes)
        )
    } else if total > limits.max_total_bytes {
        format!(
            "the manifest files add up to more than {}; this file was not read",
            human_bytes(limits.max_total_bytes)
        )
    } else {
        return None;
    };
    Some(ManifestError {
        file: file.to_path_buf(),
        line: 1,
        col: 1,
        field: String::new(),
        message,
    })
}

/// mooring's own annotations take known values only: a typo must not silently turn a
/// resource back to enforce mode.
fn check_annotations(doc: &YamlDocument, f: &mut Findings<'_>) {
    let Some(annotations) = doc.value["metadata"]["annotations"].as_object() else {
        return;
    };
    for (key, value) in annotations {
        let pointer = format!("/metadata/annotations/{}", escape_segment(key));
        match CHOICES.iter().find(|(k, _)| k == key) {
            Some((_, values)) if !value.as_str().is_some_and(|v| values.contains(&v)) => {
                f.at(
                    &pointer,
                    format!("must be one of: {} (as a quoted string)", values.join(", ")),
                );
            }
            Some(_) => {}
            None if key.starts_with("mooring.dev/") && !KNOWN.contains(&key.as_str()) => f.at(
                &pointer,
                format!("unknown mooring annotation; known: {}", KNOWN.join(", ")),
            ),
            None => {}
        }
    }
}

/// Checks `apiVersion` and `kind`, returning the kind when it is known.
/// What a document's `kind` says it is.
enum Envelope {
    /// The stack's own document.
    Stack,
    /// A resource.
    Kind(Kind),
}

fn check_envelope(doc: &YamlDocument, f: &mut Findings<'_>) -> Option<Envelope> {
    let Some(obj) = doc.value.as_object() else {
        f.at(
            "",
            "a manifest must be a mapping with apiVersion, kind, metadata and spec",
        );
        return None;
    };
    match obj.get("apiVersion") {
        None => f.at(
            "",
            format!("missing required field `apiVersion` (use `{API_VERSION}`)"),
        ),
        Some(Value::String(v)) if v == API_VERSION => {}
        Some(other) => f.at(
            "/apiVersion",
            format!("unsupported apiVersion {other}; this mooring understands `{API_VERSION}`"),
        ),
    }
    let known = std::iter::once(super::stack::KIND)
        .chain(Kind::ALL.iter().map(|k| k.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    match obj.get("kind") {
        None => {
            f.at(
                "",
                format!("missing required field `kind` (one of {known})"),
            );
            None
        }
        Some(Value::String(k)) if k == super::stack::KIND => Some(Envelope::Stack),
        Some(Value::String(k)) if k == super::environment::KIND => {
            f.at(
                "/kind",
                "an `Environment` is read only as the environment.yaml of the directory given to mooring; this directory is read as manifests (keep environment directories outside their bases, which are read recursively)",
            );
            None
        }
        Some(Value::String(k)) => match Kind::parse(k) {
            Some(kind) => Some(Envelope::Kind(kind)),
            None => {
                f.at(
                    "/kind",
                    format!("unknown kind `{k}` (known kinds: {known})"),
                );
                None
            }
        },
        Some(other) => {
            f.at("/kind", format!("kind must be a string, not {other}"));
            None
        }
    }
}

/// Structural validation against the generated schema: unknown fields, wrong types,
/// missing required fields, out-of-range numbers. Every error, not just the first.
fn check_schema(kind: Kind, doc: &YamlDocument, f: &mut Findings<'_>) {
    for err in validator(kind).iter_errors(&doc.value) {
        report_schema_error(kind, &err, f);
    }
}

/// One schema error as a finding at its field. An optional object (`anyOf` of the object
/// and `null`) that is given but wrong reports what is wrong inside it (a missing field,
/// an unknown one), not that it matches neither branch.
fn report_schema_error(kind: Kind, err: &jsonschema::ValidationError<'_>, f: &mut Findings<'_>) {
    use jsonschema::JsonType;
    use jsonschema::error::{TypeKind, ValidationErrorKind as K};
    if let K::AnyOf { context } = err.kind()
        && !err.instance().is_null()
    {
        let is_null_branch = |errs: &Vec<jsonschema::ValidationError<'static>>| matches!(errs.as_slice(), [e] if matches!(e.kind(), K::Type { kind: TypeKind::Single(JsonType::Null) }));
        let others: Vec<_> = context.iter().filter(|b| !is_null_branch(b)).collect();
        if let [only] = others.as_slice()
            && !only.is_empty()
            && others.len() + 1 == context.len()
        {
            for inner in only.iter() {
                report_schema_error(kind, inner, f);
            }
            return;
        }
    }
    let path = err.instance_path().as_str().to_string();
    if path == "/apiVersion" || path == "/kind" {
        return; // reported by check_envelope with a better message
    }
    match err.kind() {
        K::AdditionalProperties { unexpected } => {
            for key in unexpected {
                f.at(
                    &format!("{path}/{}", escape_segment(key)),
                    format!("unknown field `{key}`{}", suggestion(kind, &path, key)),
                );
            }
        }
        K::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            if path.is_empty() && (name == "apiVersion" || name == "kind") {
                return;
            }
            f.at(&path, format!("missing required field `{name}`"));
        }
        K::Enum { options } => {
            // A misspelt choice (a `from:` field, an engine) gets the nearest one.
            let choices: Vec<&str> = options
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let hint = err
                .instance()
                .as_str()
                .and_then(|v| closest(v, choices.iter().copied(), |_| 2))
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            f.at(&path, format!("{err}{hint}"));
        }
        _ => f.at(&path, err.to_string()),
    }
}

/// "did you mean" for a misspelt field: the known field names at that place that are
/// one or two edits away.
fn suggestion(kind: Kind, pointer: &str, key: &str) -> String {
    let fields = super::schema::fields_at(kind, pointer);
    match closest(key, fields.iter().map(String::as_str), |_| 2) {
        Some(f) => format!(" (did you mean `{f}`?)"),
        None if !fields.is_empty() => format!(" (expected one of: {})", fields.join(", ")),
        None => String::new(),
    }
}

/// The candidate nearest to `name` (case-insensitive edit distance, a swap of two
/// neighbouring letters counting as one edit: `strsim`'s optimal string alignment) when it
/// is at most `max(candidate)` edits away: the "did you mean" of every error that names a
/// choice.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    max: impl Fn(&str) -> usize,
) -> Option<&'a str> {
    let name = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(&c.to_lowercase(), &name), c))
        .filter(|(d, c)| *d <= max(c))
        .min()
        .map(|(_, c)| c)
}

/// The schema says `integer` but not how wide (`format: uint32` is not checked), so a number
/// too large for its field only fails deserialising, and serde's error has no path: find
/// the number in the document to name its field.
fn out_of_range(value: &Value, error: &str) -> Option<(String, String)> {
    let rest = error.split_once("invalid value: integer `")?.1;
    let (number, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected ")?.1.trim();
    let bounds = match expected {
        "u8" => "0 to 255",
        "u16" => "0 to 65535",
        "u32" => "0 to 4294967295",
        "i32" => "-2147483648 to 2147483647",
        "usize" | "u64" => "0 to 18446744073709551615",
        _ => return None,
    };
    fn find(v: &Value, number: &str, pointer: String) -> Option<String> {
        match v {
            Value::Number(n) if n.to_string() == number => Some(pointer),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, x)| find(x, number, format!("{pointer}/{i}"))),
            Value::Object(map) => map
                .iter()
                .find_map(|(k, x)| find(x, number, format!("{pointer}/{}", escape_segment(k)))),
            _ => None,
        }
    }
    let pointer = find(value, number, String::new())?;
    Some((
        pointer,
        format!("{number} is out of range: this field takes {bounds}"),
    ))
}

/// Checks that span documents, kind by kind: unique names, unique AWS identities,
/// references that resolve, and each kind's own checks against the set.
fn check_across(
    set: &ManifestSet,
    checked: &[Checked],
    errors: &mut Vec<ManifestError>,
    warnings: &mut Vec<ManifestError>,
) {
    let mut first: BTreeMap<(Kind, &str), &Checked> = BTreeMap::new();
    for c in checked {
        if let Some(prev) = first.get(&(c.kind, c.name.as_str())) {
            let mut f = Findings::new(&c.file, &c.doc);
            f.at(
                "/metadata/name",
                format!(
                    "duplicate {} `{}` (first defined at {}:{})",
                    c.kind,
                    c.name,
                    prev.file.display(),
                    prev.doc.mark_of("/metadata/name").line
                ),
            );
            errors.append(&mut f.errors);
        } else {
            first.insert((c.kind, c.name.as_str()), c);
        }
    }
    let mut names: BTreeMap<Kind, Vec<&str>> = BTreeMap::new();
    for (kind, meta) in set.metadata() {
        names.entry(kind).or_default().push(meta.name.as_str());
    }
    for kind in Kind::ALL {
        kind.visit(&mut Across {
            set,
            first: &first,
            names: &names,
            errors,
            warnings,
        });
    }
}

struct Across<'a> {
    set: &'a ManifestSet,
    first: &'a BTreeMap<(Kind, &'a str), &'a Checked>,
    names: &'a BTreeMap<Kind, Vec<&'a str>>,
    errors: &'a mut Vec<ManifestError>,
    warnings: &'a mut Vec<ManifestError>,
}

impl Visitor for Across<'_> {
    type Out = ();
    fn visit<K: Declared>(&mut self) {
        let mut identities: BTreeMap<String, &str> = BTreeMap::new();
        for m in K::manifests(self.set) {
            let Some(c) = self.first.get(&(K::KIND, m.name())) else {
                continue;
            };
            let mut f = Findings::new(&c.file, &c.doc);
            let identity = K::identity(m, self.set);
            if let Some(other) = identities.insert(identity.clone(), m.name())
                && other != m.name()
            {
                f.at(
                    "/metadata/name",
                    format!("{} `{other}` already manages {identity}", K::KIND),
                );
            }
            for r in K::references(m) {
                let known = self.names.get(&r.kind).cloned().unwrap_or_default();
                if !known.contains(&r.name.as_str()) {
                    f.at(
                        &r.pointer,
                        format!(
                            "no {} named `{}` in the manifests (known: {})",
                            r.kind,
                            r.name,
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                }
            }
            K::check_set(m, self.set, &mut f);
            crate::kinds::from::check::<K>(m, self.set, &mut f);
            self.errors.append(&mut f.errors);
            self.warnings.append(&mut f.warnings);
        }
    }
}

/// Orders each kind's manifests so that one comes after the manifests of its own kind that
/// it references (a security group after the groups its rules name); what cannot be
/// ordered is a cycle, reported at the reference.
fn order_within_kinds(set: &mut ManifestSet, checked: &[Checked], errors: &mut Vec<ManifestError>) {
    struct Order<'a> {
        set: &'a mut ManifestSet,
        checked: &'a [Checked],
        errors: &'a mut Vec<ManifestError>,
    }
    impl Visitor for Order<'_> {
        type Out = ();
        fn visit<K: Declared>(&mut self) {
            let refs = |m: &Manifest<K::Spec>| -> Vec<Reference> {
                let reads = crate::kinds::from::values_of::<K>(m)
                    .into_iter()
                    .filter_map(|(pointer, v)| {
                        let (kind, name) = v.source()?;
                        Some(Reference::new(format!("{pointer}/from"), kind, name))
                    });
                K::references(m)
                    .into_iter()
                    .chain(reads)
                    .filter(|r| r.kind == K::KIND && r.name != m.metadata.name)
                    .collect()
            };
            let mut rest = std::mem::take(K::manifests_mut(self.set));
            let known: Vec<String> = rest.iter().map(|m| m.metadata.name.clone()).collect();
            let mut ordered: Vec<Manifest<K::Spec>> = Vec::with_capacity(rest.len());
            while !rest.is_empty() {
                let ready = rest.iter().position(|m| {
                    refs(m).iter().all(|r| {
                        ordered.iter().any(|o| o.metadata.name == r.name)
                            || !known.contains(&r.name)
                    })
                });
                if let Some(i) = ready {
                    ordered.push(rest.remove(i));
                    continue;
                }
                for m in &rest {
                    let waiting: Vec<Reference> = refs(m)
                        .into_iter()
                        .filter(|r| rest.iter().any(|o| o.metadata.name == r.name))
                        .collect();
                    let Some(c) = self
                        .checked
                        .iter()
                        .find(|c| c.kind == K::KIND && c.name == m.metadata.name)
                    else {
                        continue;
                    };
                    let mut f = Findings::new(&c.file, &c.doc);
                    let names: Vec<&str> = waiting.iter().map(|r| r.name.as_str()).collect();
                    let hint = if K::KIND == Kind::SecurityGroup {
                        " (e.g. allow a CIDR block on one side)"
                    } else {
                        ""
                    };
                    f.at(
                        waiting.first().map_or("/spec", |r| r.pointer.as_str()),
                        format!(
                            "{} `{}` and {} name each other in a cycle, so neither can be created first; break it{hint}",
                            K::KIND,
                            m.metadata.name,
                            names.join(", ")
                        ),
                    );
                    self.errors.append(&mut f.errors);
                }
                ordered.append(&mut rest);
            }
            *K::manifests_mut(self.set) = ordered;
        }
    }
    for kind in Kind::ALL {
        kind.visit(&mut Order {
            set,
            checked,
            errors,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[(&str, &str)]) -> Result<ManifestSet, ManifestErrors> {
        let sources: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        load_with_stack(&sources)
    }

    fn errors(files: &[(&str, &str)]) -> Vec<String> {
        match load(files) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    const CLUSTER: &str =
        "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: prd\nspec: {}\n";

    fn service(extra_spec: &str, td_extra: &str) -> String {
        format!(
            "apiVersion: mooring.dev/v1alpha1
kind: Service
metadata:
  name: api
spec:
  cluster: prd
  network:
    subnets: {{lookup: {{vpc: default}}}}
    securityGroups: {{lookup: {{vpc: default, names: [default]}}}}
  taskDefinition:
    cpu: 256
    memory: 512
    container:
      image: nginx:1.27
      port: 80
{td_extra}{extra_spec}"
        )
    }

    fn security_group(name: &str, ingress_from: &[&str]) -> String {
        let rules: String = ingress_from
            .iter()
            .map(|g| format!("    - {{port: 443, securityGroup: {g}}}\n"))
            .collect();
        let rules = if rules.is_empty() {
            " []\n".to_string()
        } else {
            format!("\n{rules}")
        };
        format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroup\nmetadata: {{name: {name}}}\nspec:\n  vpc: default\n  ingress:{rules}"
        )
    }

    #[test]
    fn security_groups_are_ordered_by_reference_and_cycles_rejected() {
        // Listed in the wrong order on purpose: redis ← app ← alb.
        let (redis, app, alb) = (
            security_group("redis", &["app"]),
            security_group("app", &["alb", "app"]),
            security_group("alb", &[]),
        );
        let set = load(&[("1.yaml", &redis), ("2.yaml", &app), ("3.yaml", &alb)]).unwrap();
        let order: Vec<&str> = set.security_groups.iter().map(|g| g.name()).collect();
        assert_eq!(order, ["alb", "app", "redis"]);

        let a = security_group("a", &["b"]);
        let b = security_group("b", &["a"]);
        let errs = errors(&[("a.yaml", &a), ("b.yaml", &b)]);
        assert!(
            errs.iter().any(|e| e.starts_with("a.yaml:7:19: spec.ingress[0].securityGroup: SecurityGroup `a` and b name each other in a cycle")),
            "{errs:#?}"
        );
        let dangling = security_group("a", &["nope"]);
        let errs = errors(&[("a.yaml", &dangling)]);
        assert!(
            errs[0].contains("spec.ingress[0].securityGroup: no SecurityGroup named `nope` in the manifests (known: a)"),
            "{errs:#?}"
        );
        let svc = service("", "").replace(
            "securityGroups: {lookup: {vpc: default, names: [default]}}",
            "securityGroups: {refs: [app]}",
        );
        let errs = errors(&[("a.yaml", CLUSTER), ("svc.yaml", &svc)]);
        assert!(
            errs.iter().any(|e| e.starts_with(
                "svc.yaml:9:29: spec.network.securityGroups.refs[0]: no SecurityGroup named `app`"
            )),
            "{errs:#?}"
        );
        assert!(
            load(&[
                ("a.yaml", CLUSTER),
                ("svc.yaml", &svc),
                ("sg.yaml", &alb.replace("alb", "app"))
            ])
            .is_ok()
        );
    }

    #[test]
    fn a_curl_health_check_on_an_alpine_image_is_a_warning() {
        let svc = service("", "      healthCheck: {httpPath: /health}\n")
            .replace("image: nginx:1.27", "image: node:20-alpine");
        let set = load(&[("a.yaml", CLUSTER), ("svc.yaml", &svc)]).unwrap();
        assert_eq!(set.warnings.len(), 1, "{:?}", set.warnings);
        let w = set.warnings[0].to_string();
        assert!(
            w.starts_with("svc.yaml:16:7: spec.taskDefinition.container.healthCheck: the health check runs curl, but `node:20-alpine` looks Alpine-based"),
            "{w}"
        );
        assert!(
            w.contains("wget -q -O /dev/null http://localhost:80/health"),
            "{w}"
        );
        // wget on Alpine, or curl on a slim image: nothing to say.
        let wget = service(
            "",
            "      healthCheck: {command: [CMD-SHELL, wget -q -O- localhost/health]}\n",
        )
        .replace("image: nginx:1.27", "image: node:20-alpine");
        let slim = service("", "      healthCheck: {httpPath: /health}\n");
        for ok in [wget, slim] {
            let set = load(&[("a.yaml", CLUSTER), ("svc.yaml", &ok)]).unwrap();
            assert!(set.warnings.is_empty(), "{:?}", set.warnings);
        }
    }

    #[test]
    fn mooring_annotations_take_known_values_only() {
        let ok = CLUSTER.replace(
            "  name: prd\n",
            "  name: prd\n  annotations: {mooring.dev/mode: observe, mooring.dev/paused: 'true'}\n",
        );
        let set = load(&[("a.yaml", &ok)]).unwrap();
        assert_eq!(set.clusters[0].metadata.enforce(), Some(false));
        assert!(set.clusters[0].metadata.paused());
        let bad = CLUSTER.replace(
            "  name: prd\n",
            "  name: prd\n  annotations: {mooring.dev/mode: enforcing, mooring.dev/pause: 'true'}\n",
        );
        let errs = errors(&[("a.yaml", &bad)]);
        assert!(
            errs.iter().any(|e| e.contains(
                "metadata.annotations.mooring.dev/mode: must be one of: enforce, observe"
            )),
            "{errs:#?}"
        );
        assert!(
            errs.iter().any(|e| e
                .contains("metadata.annotations.mooring.dev/pause: unknown mooring annotation")),
            "{errs:#?}"
        );
    }

    #[test]
    fn a_valid_set_loads() {
        let svc = service("", "");
        let set = load(&[("a.yaml", CLUSTER), ("b.yaml", &svc)]).unwrap();
        assert_eq!(set.clusters.len(), 1);
        assert_eq!(set.services.len(), 1);
        assert_eq!(set.services[0].origin.line, 1);
        assert!(set.revision.starts_with("sha256:"));
        assert_eq!(set.revision.len(), "sha256:".len() + 12);
    }

    #[test]
    fn unknown_fields_are_reported_with_position_and_suggestion() {
        let svc =
            service("", "      imagePullPolicy: always\n").replace("image: nginx", "imagee: nginx");
        let errs = errors(&[("a.yaml", CLUSTER), ("svc.yaml", &svc)]);
        assert!(
            errs.iter().any(|e| e.starts_with("svc.yaml:14:7: spec.taskDefinition.container.imagee: unknown field `imagee` (did you mean `image`?)")),
            "{errs:#?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with(
                "svc.yaml:16:7: spec.taskDefinition.container.imagePullPolicy: unknown field"
            )),
            "{errs:#?}"
        );
        // `image` is optional (a container may name `repository` and `tag` instead): the
        // typo is reported once, as the unknown field.
        assert_eq!(errs.len(), 2, "{errs:#?}");
    }

    #[test]
    fn wrong_types_and_negative_counts() {
        let svc = service("  desiredCount: -1\n", "").replace("cpu: 256", "cpu: lots");
        let errs = errors(&[("a.yaml", CLUSTER), ("svc.yaml", &svc)]);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("svc.yaml:11:5: spec.taskDefinition.cpu:")
                    && e.contains("not of type")),
            "{errs:#?}"
        );
        assert!(
            errs.iter().any(
                |e| e.starts_with("svc.yaml:16:3: spec.desiredCount:") && e.contains("minimum")
            ),
            "{errs:#?}"
        );
    }

    #[test]
    fn impossible_values_are_reported_all_at_once() {
        let svc = service(
            "  loadBalancers:\n    - targetGroupArn: not-an-arn\n",
            "      healthCheck: {httpPath: api/health, intervalSeconds: 1}\n",
        )
        .replace("memory: 512", "memory: 4096")
        .replace("port: 80", "port: 0");
        let errs = errors(&[("a.yaml", CLUSTER), ("svc.yaml", &svc)]);
        let expect = [
            "svc.yaml:12:5: spec.taskDefinition.memory: Fargate does not run cpu 256 with memory 4096",
            "svc.yaml:15:7: spec.taskDefinition.container.port: ports are 1-65535",
            "spec.taskDefinition.container.healthCheck.httpPath: must start with `/`",
            "spec.taskDefinition.container.healthCheck.intervalSeconds: 1 is outside 5-300",
            "spec.loadBalancers[0].targetGroupArn: `not-an-arn` is not a target group ARN",
        ];
        for e in expect {
            assert!(
                errs.iter().any(|x| x.contains(e)),
                "missing {e:?} in {errs:#?}"
            );
        }
    }

    #[test]
    fn port_out_of_range_is_a_schema_error() {
        let svc = service("", "").replace("port: 80", "port: 70000");
        let errs = errors(&[("a.yaml", CLUSTER), ("svc.yaml", &svc)]);
        assert!(
            errs.iter().any(|e| e
                .starts_with("svc.yaml:15:7: spec.taskDefinition.container.port:")
                && e.contains("65535")),
            "{errs:#?}"
        );
    }

    #[test]
    fn dangling_references_and_duplicates() {
        let svc = service("", "").replace("cluster: prd", "cluster: staging");
        let errs = errors(&[("a.yaml", CLUSTER), ("b.yaml", CLUSTER), ("svc.yaml", &svc)]);
        assert!(
            errs.iter().any(|e| e.starts_with(
                "b.yaml:4:3: metadata.name: duplicate Cluster `prd` (first defined at a.yaml:4)"
            )),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("svc.yaml:6:3: spec.cluster: no Cluster named `staging`")),
            "{errs:#?}"
        );
    }

    #[test]
    fn envelope_errors() {
        let bad = "apiVersion: mooring.dev/v2\nkind: Servise\nmetadata: {name: x}\nspec: {}\n---\n- a list\n";
        let errs = errors(&[("x.yml", bad)]);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("x.yml:1:1: apiVersion: unsupported apiVersion")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("x.yml:2:1: kind: unknown kind `Servise`")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("x.yml:6:1: a manifest must be a mapping")),
            "{errs:#?}"
        );
    }

    #[test]
    fn exclusive_fields_and_secrets() {
        let svc = service(
            "",
            "      environment: {DB_HOST: db, PORT: 3000, DEBUG: false}\n      secrets:\n        DB_HOST: {ssmParameter: /prd/db/host}\n        JWT: {}\n        KEY: {secretsManagerArn: arn:aws:secretsmanager:eu-west-1:1:secret:k}\n",
        );
        let errs = errors(&[("a.yaml", CLUSTER), ("svc.yaml", &svc)]);
        assert!(
            errs.iter()
                .any(|e| e.contains("secrets.DB_HOST: `DB_HOST` is set both")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("secrets.JWT: set exactly one of")),
            "{errs:#?}"
        );
        assert!(
            errs.iter().any(|e| e
                .contains("svc.yaml:10:3: spec.taskDefinition: `executionRoleArn` is required")),
            "{errs:#?}"
        );
        assert_eq!(errs.len(), 3, "{errs:#?}");
    }

    #[test]
    fn load_balancer_port_must_be_the_mapped_port() {
        let svc = service(
            "  loadBalancers:\n    - targetGroupArn: arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/a/b\n      containerPort: 8080\n",
            "",
        );
        let errs = errors(&[("a.yaml", CLUSTER), ("svc.yaml", &svc)]);
        assert!(
            errs.iter().any(|e| e.contains("spec.loadBalancers[0].containerPort: 8080 is not mapped: the container's `port` is 80")),
            "{errs:#?}"
        );
    }

    #[test]
    fn health_check_paths_are_url_paths_only() {
        let svc = service(
            "",
            "      healthCheck: {httpPath: \"/health' ; rm -rf /\", timeoutSeconds: 61}\n",
        );
        let errs = errors(&[("a.yaml", CLUSTER), ("svc.yaml", &svc)]);
        assert!(
            errs.iter()
                .any(|e| e.contains("httpPath: may contain only URL path characters")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("timeoutSeconds: 61 is outside 2-60")),
            "{errs:#?}"
        );
    }

    #[test]
    fn environment_scalars_become_strings() {
        let svc = service(
            "",
            "      environment: {PORT: 3000, DEBUG: false, NAME: x}\n",
        );
        let set = load(&[("a.yaml", CLUSTER), ("svc.yaml", &svc)]).unwrap();
        let env = &set.services[0].spec.task_definition.container.environment;
        assert_eq!(env["PORT"].as_str(), "3000");
        assert_eq!(env["DEBUG"].as_str(), "false");
    }

    #[test]
    fn an_empty_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(err.0[0].message.contains("no manifests"));
    }

    #[test]
    fn closest_counts_edits_and_swaps() {
        let fields = ["image", "name", "memory", "cpu"];
        assert_eq!(closest("imagee", fields, |_| 1), Some("image"));
        assert_eq!(closest("IMAGE", fields, |_| 0), Some("image"));
        // A swap of neighbours is one edit (two for plain Levenshtein).
        assert_eq!(closest("imgae", fields, |_| 1), Some("image"));
        assert_eq!(closest("memroy", fields, |_| 1), Some("memory"));
        assert_eq!(closest("disk", fields, |_| 2), None);
        // The nearest wins, ties by name.
        assert_eq!(closest("cpux", ["cpu", "cpuxy"], |_| 2), Some("cpu"));
    }
}

#[cfg(test)]
mod readme_tests {
    use super::*;

    /// The minimal manifest in the README must stay valid.
    #[test]
    fn readme_manifest_is_valid() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = readme.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
        let len = readme[start..].find("```").unwrap();
        let set = load_sources(&[("README.md".into(), readme[start..start + len].to_string())])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.len(), 2);
    }
}

#[cfg(test)]
mod parameter_tests {
    use super::*;

    const SET: &str = "apiVersion: mooring.dev/v1alpha1
kind: ParameterSet
metadata: {name: prd}
spec:
  path: /salon/prd
  parameters:
    database/host: db.internal
    database/port: 5432
  required:
    database/password: SecureString
";

    fn service(param: &str) -> String {
        format!(
            "apiVersion: mooring.dev/v1alpha1
kind: Cluster
metadata: {{name: c}}
spec: {{}}
---
apiVersion: mooring.dev/v1alpha1
kind: Service
metadata: {{name: api}}
spec:
  cluster: c
  network:
    subnets: {{ids: [subnet-1]}}
    securityGroups: {{ids: [sg-1]}}
  taskDefinition:
    cpu: 256
    memory: 512
    executionRoleArn: arn:aws:iam::123456789012:role/exec
    container:
      image: api:1
      secrets:
        DB: {{ssmParameter: {param}}}
"
        )
    }

    fn load(files: &[(&str, &str)]) -> Result<ManifestSet, ManifestErrors> {
        let sources: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        load_with_stack(&sources)
    }

    #[test]
    fn a_parameter_set_loads_with_values_as_strings() {
        let set = load(&[("p.yaml", SET)]).unwrap();
        let ps = &set.parameter_sets[0].spec;
        assert_eq!(ps.parameters["database/port"], "5432");
        assert_eq!(
            ps.required["database/password"],
            crate::kinds::parameter_set::spec::ParameterType::SecureString
        );
    }

    #[test]
    fn secrets_under_a_managed_path_must_be_declared() {
        let ok = service("/salon/prd/database/password");
        assert!(load(&[("p.yaml", SET), ("s.yaml", &ok)]).is_ok());
        // Outside every managed path: the user's own parameter, allowed.
        let external = service("/other/key");
        assert!(load(&[("p.yaml", SET), ("s.yaml", &external)]).is_ok());
        let typo = service("/salon/prd/database/pasword");
        let errs = load(&[("p.yaml", SET), ("s.yaml", &typo)]).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].col), (21, 14));
        assert_eq!(
            errs[0].field,
            "spec.taskDefinition.container.secrets.DB.ssmParameter"
        );
        assert!(
            errs[0].message.contains("not declared there"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn bad_paths_names_and_duplicates() {
        let bad = "apiVersion: mooring.dev/v1alpha1
kind: ParameterSet
metadata: {name: bad}
spec:
  path: aws/prd/
  parameters:
    'a//b': x
    empty: ''
    database/host: other
  required:
    empty: String
    key: Secret
";
        let errs: Vec<String> = load(&[("p.yaml", SET), ("q.yaml", bad)])
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            errs.iter()
                .any(|e| e.starts_with("q.yaml:12:5: spec.required.key:")),
            "{errs:#?}"
        );
        // The unknown type is a schema error; the rest are not checked until it is fixed.
        let bad = bad.replace("key: Secret", "key: SecureString");
        let errs: Vec<String> = load(&[("p.yaml", SET), ("q.yaml", &bad)])
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        for expected in [
            "q.yaml:5:3: spec.path: must start with `/`",
            "q.yaml:7:5: spec.parameters.a//b: `a//b` is not a valid parameter name",
            "q.yaml:8:5: spec.parameters.empty: SSM does not store empty values",
            "q.yaml:11:5: spec.required.empty: `empty` is both managed",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(expected)),
                "missing {expected:?} in {errs:#?}"
            );
        }
        let dup = SET.replace("name: prd", "name: again");
        let errs = load(&[("p.yaml", SET), ("q.yaml", &dup)]).unwrap_err().0;
        assert!(
            errs.iter()
                .any(|e| e.message.contains("also declared by ParameterSet `prd`")),
            "{errs:?}"
        );
    }
}

#[cfg(test)]
mod autoscaling_tests {
    use super::*;

    fn files(target: &str) -> Vec<(PathBuf, String)> {
        let base = "apiVersion: mooring.dev/v1alpha1
kind: Cluster
metadata: {name: c}
spec: {}
---
apiVersion: mooring.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  cluster: c
  desiredCount: 2
  network:
    subnets: {ids: [subnet-1]}
    securityGroups: {ids: [sg-1]}
  taskDefinition:
    cpu: 256
    memory: 512
    container: {image: 'api:1'}
";
        vec![
            ("a.yaml".into(), base.into()),
            ("t.yaml".into(), target.into()),
        ]
    }

    const TARGET: &str = "apiVersion: mooring.dev/v1alpha1
kind: ScalableTarget
metadata: {name: api}
spec:
  service: api
  minCapacity: 1
  maxCapacity: 4
  targetTracking:
    - {metric: ECSServiceAverageCPUUtilization, targetValue: 70}
";

    #[test]
    fn a_scalable_target_loads() {
        let set = load_with_stack(&files(TARGET)).unwrap();
        assert_eq!(
            set.scalable_target_for("api").map(|t| t.spec.max_capacity),
            Some(4)
        );
    }

    #[test]
    fn impossible_scaling_is_rejected() {
        let dangling = TARGET.replace("service: api", "service: apx");
        let errs = load_with_stack(&files(&dangling)).unwrap_err().0;
        assert!(
            errs[0]
                .to_string()
                .starts_with("t.yaml:5:3: spec.service: no Service named `apx`"),
            "{errs:?}"
        );
        // Checks across documents run once each document is valid on its own.
        let bad = TARGET
            .replace("targetValue: 70", "targetValue: 170")
            .replace("minCapacity: 1", "minCapacity: 5");
        let errs: Vec<String> = load_with_stack(&files(&bad))
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        for expected in [
            "t.yaml:6:3: spec.minCapacity: minCapacity 5 is more than maxCapacity 4",
            "t.yaml:9:49: spec.targetTracking[0].targetValue: 170 is outside 1-100",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(expected)),
                "missing {expected:?} in {errs:#?}"
            );
        }
        let outside = TARGET.replace("maxCapacity: 4", "maxCapacity: 1");
        let errs = load_with_stack(&files(&outside)).unwrap_err().0;
        assert!(
            errs[0]
                .message
                .contains("starts with desiredCount 2, outside 1-1"),
            "{errs:?}"
        );
        let metric = TARGET.replace("ECSServiceAverageCPUUtilization", "CPU");
        let errs = load_with_stack(&files(&metric)).unwrap_err().0;
        assert_eq!(errs[0].field, "spec.targetTracking[0].metric", "{errs:?}");
    }
}
