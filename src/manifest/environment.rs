//! Environments: one base, an overlay per environment.
//!
//! An environment directory holds `environment.yaml` (`kind: Environment`): its base
//! directories, typed variables, a name scheme, common tags, `protect`, and merge patches
//! per `Kind/name`. Any other `*.yaml` in the directory are manifests of that environment
//! only. The loader reads the bases as they are, applies the environment to their documents
//! and hands the result to the ordinary checks, so a field keeps the place it was written:
//! a base field reports the base's `file:line:col`, a patched field or a variable the
//! environment file's.
//!
//! Order, per document: name scheme, common tags, patches, `protect`, then variables (in
//! base and patch values alike).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::annotations::ALLOW_REPLACEMENT;
use super::error::{Findings, ManifestError, ManifestErrors, dotted};
use super::limits::{Limits, human_bytes};
use super::load::{ParsedSources, check_parsed, closest, parse_sources};
use super::read::read_sources;
use super::yaml::{Mark, YamlDocument, escape_segment};
use super::{API_VERSION, Kind, ManifestSet};

/// The `kind` of an environment file.
pub const KIND: &str = "Environment";

/// Bases one environment may name: each is read within the set's limits, and the count
/// keeps one small file from asking for many directory walks.
pub const MAX_BASES: usize = 16;

/// The names an environment file may have, in the environment directory itself.
pub const FILE_NAMES: [&str; 2] = ["environment.yaml", "environment.yml"];

/// The environment file of `dir`, when `dir` is an environment directory.
pub fn find(dir: &Path) -> Option<PathBuf> {
    FILE_NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
}

/// The base directories of the environment directory `dir` (empty for a plain directory,
/// or when the environment file does not read): what a file watch must cover besides `dir`.
pub fn base_dirs(dir: &Path) -> Vec<PathBuf> {
    base_paths(dir)
        .iter()
        .map(|b| normalize(&dir.join(b)))
        .collect()
}

/// The bases of the environment directory `dir` as its file writes them (relative to
/// `dir`); empty for a plain directory, or when the environment file does not read (the
/// load reports why).
pub fn base_paths(dir: &Path) -> Vec<String> {
    let Some(file) = find(dir) else {
        return Vec::new();
    };
    let limits = Limits::default();
    let too_big = std::fs::metadata(&file).map_or(true, |m| m.len() > limits.max_file_bytes as u64);
    let Ok(text) = (if too_big {
        Err(std::io::Error::other("too big"))
    } else {
        std::fs::read_to_string(&file)
    }) else {
        return Vec::new();
    };
    let (docs, _) = super::yaml::parse_documents_with(&text, &limits.yaml);
    let Some(doc) = docs.into_iter().find(|d| !d.value.is_null()) else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    check_environment(&file, doc, &mut errors)
        .map(|env| env.bases.into_iter().map(|(b, _)| b).collect())
        .unwrap_or_default()
}

/// A checked environment file.
#[derive(Debug, Clone)]
pub struct Environment {
    /// `metadata.name`.
    pub name: String,
    /// The environment file.
    pub file: PathBuf,
    /// Base directories as written (relative to the environment directory), with their
    /// JSON pointer in the environment document.
    pub bases: Vec<(String, String)>,
    /// Variables: name → value (string, number or boolean).
    pub vars: BTreeMap<String, Value>,
    /// Added before every AWS name and the stack name.
    pub prefix: String,
    /// Added after every AWS name and the stack name.
    pub suffix: String,
    /// Tags added to every resource that has tags (over the base's own).
    pub tags: BTreeMap<String, String>,
    /// Forbid replacement and deletion.
    pub protect: bool,
    /// Patches: `Kind/name` → merge patch.
    pub patches: Vec<(String, Value)>,
    /// The document, for positions.
    pub doc: YamlDocument,
}

impl Environment {
    /// Where the field at `pointer` of the environment file is.
    pub fn mark(&self, pointer: &str) -> Mark {
        self.doc.mark_of(pointer)
    }
}

/// The AWS-name fields of each kind: the first is set from `metadata.name` when absent (it
/// is what `aws_name` falls back to); the others are renamed only when written.
/// ParameterSet paths and SecurityGroupIngress/ScalableTarget (named by what they attach
/// to) are not names: patch them or use a variable.
pub fn name_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Cluster" => &["/spec/clusterName"],
        "SecurityGroup" => &["/spec/groupName"],
        "TargetGroup" => &["/spec/targetGroupName"],
        "LoadBalancer" => &["/spec/loadBalancerName"],
        "CacheSubnetGroup" => &["/spec/cacheSubnetGroupName"],
        "ReplicationGroup" => &["/spec/replicationGroupId"],
        "LogGroup" => &["/spec/logGroupName"],
        "Repository" => &["/spec/repositoryName"],
        "Service" => &["/spec/serviceName", "/spec/taskDefinition/family"],
        "Alarm" => &["/spec/alarmName"],
        "Connection" => &["/spec/connectionName"],
        "ApiDestination" => &["/spec/apiDestinationName"],
        "Rule" => &["/spec/ruleName"],
        _ => &[],
    }
}

/// The documents of an environment (or a plain directory), resolved and not yet checked.
pub struct Resolved {
    /// The environment, when `dir` is an environment directory.
    pub environment: Option<Environment>,
    /// Parsed (and, for an environment, resolved) documents per file.
    pub parsed: ParsedSources,
    /// Problems of the environment itself (bad patch targets, variables, …).
    pub errors: Vec<ManifestError>,
}

/// Loads an environment directory into a checked set (the entry point `load_dir` uses when
/// `dir` holds an environment file).
pub fn load(dir: &Path, limits: &Limits) -> Result<ManifestSet, ManifestErrors> {
    let resolved = resolve(dir, limits);
    let Resolved {
        environment,
        mut parsed,
        errors,
    } = resolved;
    if !errors.is_empty() {
        let mut all = errors;
        all.append(&mut parsed.errors);
        all.append(&mut parsed.yaml_errors);
        return Err(sorted(all));
    }
    let mut set = check_parsed(parsed, limits)?;
    if let Some(env) = environment {
        set.environment = Some(env.name);
        set.protect = env.protect;
    }
    Ok(set)
}

fn sorted(mut errors: Vec<ManifestError>) -> ManifestErrors {
    errors.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    errors.dedup();
    ManifestErrors(errors)
}

/// `a/b/../c` → `a/c`, so that base files read as `manifests/base/x.yaml` in messages.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn error_at(file: &Path, mark: Mark, field: &str, message: impl Into<String>) -> ManifestError {
    ManifestError {
        file: file.to_path_buf(),
        line: mark.line,
        col: mark.col,
        field: dotted(field),
        message: message.into(),
    }
}

/// Reads `dir` (a plain or an environment directory) into documents: for an environment,
/// its bases with the environment applied.
pub fn resolve(dir: &Path, limits: &Limits) -> Resolved {
    let Some(env_file) = find(dir) else {
        let (sources, mut read_errors) = read_sources(dir, limits);
        let mut parsed = parse_sources(&sources, limits);
        parsed.errors.append(&mut read_errors);
        return Resolved {
            environment: None,
            parsed,
            errors: Vec::new(),
        };
    };
    let mut errors = Vec::new();
    let (own, mut read_errors) = read_sources(dir, limits);
    errors.append(&mut read_errors);
    // The environment file first, then the environment's own manifests, then the bases.
    let (env_sources, extra): (Vec<_>, Vec<_>) = own
        .into_iter()
        .partition(|(p, _)| p.parent() == Some(dir) && p.file_name() == env_file.file_name());
    let mut sources = env_sources;
    sources.extend(extra);
    let env_text = sources.first().map(|(_, t)| t.clone()).unwrap_or_default();
    let (env_docs, _) = super::yaml::parse_documents_with(&env_text, &limits.yaml);
    let env = env_docs
        .into_iter()
        .find(|d| !d.value.is_null())
        .and_then(|doc| check_environment(&env_file, doc, &mut errors));
    let mut base_dirs = Vec::new();
    let mut seen: Vec<(String, PathBuf)> = Vec::new();
    if let Some(env) = &env {
        for (base, pointer) in &env.bases {
            let base_dir = normalize(&dir.join(base));
            let mark = env.mark(pointer);
            if !base_dir.is_dir() {
                errors.push(error_at(
                    &env_file,
                    mark,
                    pointer,
                    format!("base `{base}` is not a directory ({})", base_dir.display()),
                ));
                continue;
            }
            // The same directory spelt twice (`../base`, `./../base/`), a symlink to it, or
            // one base inside another: its files would be read twice.
            let real = std::fs::canonicalize(&base_dir).unwrap_or_else(|_| base_dir.clone());
            if let Some((other, _)) = seen
                .iter()
                .find(|(_, r)| real.starts_with(r) || r.starts_with(&real))
            {
                errors.push(error_at(
                    &env_file,
                    mark,
                    pointer,
                    format!(
                        "base `{base}` is, holds or lies inside the base `{other}`: its manifests would be read twice"
                    ),
                ));
                continue;
            }
            seen.push((base.clone(), real));
            if find(&base_dir).is_some() {
                errors.push(error_at(
                    &env_file,
                    mark,
                    pointer,
                    format!(
                        "base `{base}` is itself an environment; a base is a plain manifest directory"
                    ),
                ));
                continue;
            }
            let (base_sources, mut e) = read_sources(&base_dir, limits);
            errors.append(&mut e);
            if base_sources.is_empty() {
                errors.push(error_at(
                    &env_file,
                    mark,
                    pointer,
                    format!("base `{base}` holds no manifests (*.yaml, *.yml)"),
                ));
            }
            sources.extend(base_sources);
            base_dirs.push(base_dir);
        }
    }
    let mut parsed = parse_sources(&sources, limits);
    // The environment file is not a manifest: out of the set (its YAML errors stay).
    if parsed.files.first().is_some_and(|(f, _)| *f == env_file) {
        parsed.files.remove(0);
        parsed.first = parsed.files.first().map(|(f, _)| f.clone());
    }
    parsed
        .yaml_errors
        .retain(|e| e.file != env_file || !e.message.starts_with("no manifest in this file"));
    if let Some(env) = &env {
        apply(env, &mut parsed.files, &mut errors, limits);
    }
    Resolved {
        environment: env,
        parsed,
        errors,
    }
}

/// Checks the environment document, reporting into `errors`.
fn check_environment(
    file: &Path,
    doc: YamlDocument,
    errors: &mut Vec<ManifestError>,
) -> Option<Environment> {
    let mut f = Findings::new(file, &doc);
    let v = &doc.value;
    let Some(top) = v.as_object() else {
        f.at(
            "",
            "an environment file is a mapping with apiVersion, kind, metadata and spec",
        );
        errors.append(&mut f.errors);
        return None;
    };
    unknown_fields(&mut f, "", top, &["apiVersion", "kind", "metadata", "spec"]);
    if v["apiVersion"] != Value::String(API_VERSION.into()) {
        f.at("/apiVersion", format!("must be `{API_VERSION}`"));
    }
    if v["kind"] != Value::String(KIND.into()) {
        f.at(
            "/kind",
            format!("the environment file (environment.yaml) must be `kind: {KIND}`"),
        );
    }
    let name = v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some(m) = v["metadata"].as_object() {
        unknown_fields(&mut f, "/metadata", m, &["name", "labels", "annotations"]);
    }
    if !super::stack::valid_name(&name) {
        f.at(
            "/metadata/name",
            "the environment's name: 1-63 lower-case letters, digits and inner hyphens",
        );
    }
    let empty = Map::new();
    let spec = match &v["spec"] {
        Value::Object(s) => s,
        _ => {
            f.at("/spec", "missing `spec` (at least `bases`)");
            &empty
        }
    };
    unknown_fields(
        &mut f,
        "/spec",
        spec,
        &["bases", "vars", "names", "tags", "protect", "patches"],
    );
    let mut bases: Vec<(String, String)> = Vec::new();
    match spec.get("bases") {
        Some(Value::Array(items)) if items.len() > MAX_BASES => {
            f.at("/spec/bases", format!("at most {MAX_BASES} bases"))
        }
        Some(Value::Array(items)) if !items.is_empty() => {
            for (i, b) in items.iter().enumerate() {
                match b.as_str() {
                    Some(s) if bases.iter().any(|(other, _)| other == s) => f.at(
                        &format!("/spec/bases/{i}"),
                        format!("base `{s}` is listed twice"),
                    ),
                    Some(s) if !s.is_empty() && !Path::new(s).is_absolute() => {
                        bases.push((s.to_string(), format!("/spec/bases/{i}")))
                    }
                    _ => f.at(
                        &format!("/spec/bases/{i}"),
                        "a base is a directory relative to the environment directory",
                    ),
                }
            }
        }
        _ => f.at(
            "/spec/bases",
            "`bases` lists at least one base directory, relative to this one",
        ),
    }
    let mut vars = BTreeMap::new();
    match spec.get("vars") {
        None => {}
        Some(Value::Object(m)) => {
            for (k, val) in m {
                let p = format!("/spec/vars/{}", escape_segment(k));
                if !valid_var_name(k) {
                    f.at(&p, "a variable name is letters, digits, `_` and `-`, starting with a letter or `_`");
                }
                match val {
                    // Not expanded: `${b}` in `a` would reach AWS as written.
                    Value::String(s) if expand(s, &BTreeMap::new()).is_err() => f.at(
                        &p,
                        "a variable's value cannot name another variable (values are not expanded); write the value out",
                    ),
                    Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                        vars.insert(k.clone(), val.clone());
                    }
                    _ => f.at(&p, "a variable is a string, number or boolean"),
                }
            }
        }
        Some(_) => f.at("/spec/vars", "`vars` is a mapping of name to value"),
    }
    let (mut prefix, mut suffix) = (String::new(), String::new());
    match spec.get("names") {
        None => {}
        Some(Value::Object(m)) => {
            unknown_fields(&mut f, "/spec/names", m, &["prefix", "suffix"]);
            for (key, out) in [("prefix", &mut prefix), ("suffix", &mut suffix)] {
                match m.get(key) {
                    None => {}
                    Some(Value::String(s))
                        if s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') =>
                    {
                        *out = s.clone();
                    }
                    Some(_) => f.at(
                        &format!("/spec/names/{key}"),
                        "letters, digits and hyphens only (it goes into stack and AWS names)",
                    ),
                }
            }
        }
        Some(_) => f.at(
            "/spec/names",
            "`names` is a mapping with `prefix` and/or `suffix`",
        ),
    }
    let mut tags = BTreeMap::new();
    match spec.get("tags") {
        None => {}
        Some(Value::Object(m)) => {
            for (k, val) in m {
                match val {
                    Value::String(s) => {
                        tags.insert(k.clone(), s.clone());
                    }
                    Value::Number(_) | Value::Bool(_) => {
                        tags.insert(k.clone(), val.to_string());
                    }
                    _ => f.at(
                        &format!("/spec/tags/{}", escape_segment(k)),
                        "a tag value is a string",
                    ),
                }
            }
        }
        Some(_) => f.at("/spec/tags", "`tags` is a mapping of key to value"),
    }
    let protect = match spec.get("protect") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            f.at("/spec/protect", "`protect` is true or false");
            false
        }
    };
    let mut patches = Vec::new();
    match spec.get("patches") {
        None => {}
        Some(Value::Object(m)) => {
            for (k, val) in m {
                let p = format!("/spec/patches/{}", escape_segment(k));
                let well_formed = k
                    .split_once('/')
                    .is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty());
                if !well_formed {
                    f.at(&p, "a patch is keyed `Kind/name`, e.g. `Service/api`");
                    continue;
                }
                let Some(obj) = val.as_object() else {
                    f.at(&p, "a patch is a mapping (a merge patch of the manifest)");
                    continue;
                };
                unknown_fields(&mut f, &p, obj, &["metadata", "spec"]);
                if let Some(meta) = obj.get("metadata") {
                    match meta.as_object() {
                        Some(meta) => {
                            if meta.contains_key("name") {
                                f.at(
                                    &format!("{p}/metadata/name"),
                                    "a patch cannot rename a manifest (its name is the patch's key)",
                                );
                            }
                        }
                        None => f.at(&format!("{p}/metadata"), "`metadata` is a mapping"),
                    }
                }
                patches.push((k.clone(), val.clone()));
            }
        }
        Some(_) => f.at(
            "/spec/patches",
            "`patches` is a mapping of `Kind/name` to a merge patch",
        ),
    }
    let ok = f.errors.is_empty();
    errors.append(&mut f.errors);
    ok.then(|| Environment {
        name,
        file: file.to_path_buf(),
        bases,
        vars,
        prefix,
        suffix,
        tags,
        protect,
        patches,
        doc,
    })
}

fn unknown_fields(f: &mut Findings<'_>, at: &str, obj: &Map<String, Value>, known: &[&str]) {
    for k in obj.keys() {
        if !known.contains(&k.as_str()) {
            let hint = closest(k, known.iter().copied(), |c| c.len() / 3 + 1)
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            f.at(
                &format!("{at}/{}", escape_segment(k)),
                format!("unknown field `{k}` (known: {}){hint}", known.join(", ")),
            );
        }
    }
}

fn valid_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `Kind/name` of a manifest document.
fn key_of(doc: &Value) -> Option<String> {
    Some(format!(
        "{}/{}",
        doc["kind"].as_str()?,
        doc["metadata"]["name"].as_str()?
    ))
}

/// Applies `env` to every document.
fn apply(
    env: &Environment,
    files: &mut [(PathBuf, Vec<YamlDocument>)],
    errors: &mut Vec<ManifestError>,
    limits: &Limits,
) {
    let keys: BTreeSet<String> = files
        .iter()
        .flat_map(|(_, docs)| docs.iter().filter_map(|d| key_of(&d.value)))
        .collect();
    for (key, _) in &env.patches {
        if !keys.contains(key) {
            let hint = closest(key, keys.iter().map(String::as_str), |c| c.len() / 3 + 1)
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            let p = format!("/spec/patches/{}", escape_segment(key));
            errors.push(error_at(
                &env.file,
                env.mark(&p),
                "",
                format!("patch for `{key}`, which no base declares{hint}"),
            ));
        }
    }
    let mut used = BTreeSet::new();
    let mut budget = Budget {
        left: limits.yaml.max_alias_bytes,
        max_value: limits.yaml.max_scalar_bytes,
        exhausted: false,
    };
    for (file, docs) in files.iter_mut() {
        for doc in docs.iter_mut() {
            let Some(key) = key_of(&doc.value) else {
                continue;
            };
            let kind = doc.value["kind"].as_str().unwrap_or_default().to_string();
            rename(env, &kind, doc);
            add_tags(env, &kind, doc);
            if let Some((_, patch)) = env.patches.iter().find(|(k, _)| *k == key) {
                let at = format!("/spec/patches/{}", escape_segment(&key));
                apply_patch(env, doc, patch, &at);
            }
            if env.protect
                && let Some(a) = doc
                    .value
                    .pointer_mut("/metadata/annotations")
                    .and_then(Value::as_object_mut)
                && a.remove(ALLOW_REPLACEMENT).is_some()
            {
                let p = format!(
                    "/metadata/annotations/{}",
                    escape_segment(ALLOW_REPLACEMENT)
                );
                clear(doc, &p);
            }
            substitute(env, file, doc, &mut used, &mut budget, errors);
        }
    }
    for name in env.vars.keys() {
        if !used.contains(name) {
            let p = format!("/spec/vars/{}", escape_segment(name));
            errors.push(error_at(
                &env.file,
                env.mark(&p),
                &p,
                format!("variable `{name}` is not used (no `${{{name}}}` in the bases or patches)"),
            ));
        }
    }
}

/// Forgets every position at or below `pointer`.
fn clear(doc: &mut YamlDocument, pointer: &str) {
    let below = format!("{pointer}/");
    let gone = |k: &String| k == pointer || k.starts_with(&below);
    doc.marks.retain(|k, _| !gone(k));
    doc.elsewhere.retain(|k, _| !gone(k));
}

/// Records that the value at `pointer` (and below) was written at `env_pointer` of the
/// environment file.
fn written_at(env: &Environment, doc: &mut YamlDocument, pointer: &str, env_pointer: &str) {
    clear(doc, pointer);
    let mut stack = vec![(pointer.to_string(), env_pointer.to_string())];
    while let Some((p, e)) = stack.pop() {
        let value = doc.value.pointer(&p).cloned();
        doc.elsewhere
            .insert(p.clone(), (env.file.clone(), env.mark(&e)));
        match value {
            Some(Value::Object(m)) => {
                for k in m.keys() {
                    let s = escape_segment(k);
                    stack.push((format!("{p}/{s}"), format!("{e}/{s}")));
                }
            }
            Some(Value::Array(items)) => {
                for i in 0..items.len() {
                    stack.push((format!("{p}/{i}"), format!("{e}/{i}")));
                }
            }
            _ => {}
        }
    }
}

fn rename(env: &Environment, kind: &str, doc: &mut YamlDocument) {
    if env.prefix.is_empty() && env.suffix.is_empty() {
        return;
    }
    let scheme = |name: &str| match name.strip_prefix('/') {
        Some(rest) => format!("/{}{rest}{}", env.prefix, env.suffix),
        None => format!("{}{name}{}", env.prefix, env.suffix),
    };
    if kind == super::stack::KIND {
        if let Some(name) = doc.value["metadata"]["name"].as_str() {
            doc.value["metadata"]["name"] = Value::String(scheme(name));
            written_at(env, doc, "/metadata/name", "/spec/names");
        }
        return;
    }
    let meta_name = doc.value["metadata"]["name"].as_str().map(str::to_string);
    for (i, pointer) in name_fields(kind).iter().enumerate() {
        let current = doc
            .value
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string);
        let name = match (current, i, &meta_name) {
            (Some(n), _, _) => n,
            (None, 0, Some(m)) => m.clone(),
            _ => continue,
        };
        if set_at(&mut doc.value, pointer, Value::String(scheme(&name))) {
            written_at(env, doc, pointer, "/spec/names");
        }
    }
}

/// Sets the value at `pointer`, creating mappings on the way; false when something that is
/// not a mapping is in the way (the checks will report it).
fn set_at(root: &mut Value, pointer: &str, value: Value) -> bool {
    let mut at = root;
    let segs: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, seg) in segs.iter().enumerate() {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if at.is_null() {
            *at = Value::Object(Map::new());
        }
        let Some(obj) = at.as_object_mut() else {
            return false;
        };
        if i + 1 == segs.len() {
            obj.insert(seg, value);
            return true;
        }
        at = obj.entry(seg).or_insert(Value::Null);
    }
    false
}

fn add_tags(env: &Environment, kind: &str, doc: &mut YamlDocument) {
    let Some(k) = Kind::parse(kind) else { return };
    if env.tags.is_empty()
        || !super::schema::fields_at(k, "/spec")
            .iter()
            .any(|f| f == "tags")
    {
        return;
    }
    for (key, value) in &env.tags {
        let p = format!("/spec/tags/{}", escape_segment(key));
        if set_at(&mut doc.value, &p, Value::String(value.clone())) {
            written_at(env, doc, &p, &format!("/spec/tags/{}", escape_segment(key)));
        }
    }
}

/// RFC 7386 JSON merge patch: mappings merge key by key, `null` removes a key, anything
/// else replaces. `on` hears of every replaced or removed (`true`) target pointer, with
/// the patch's pointer that did it.
pub fn merge_patch(
    target: &mut Value,
    patch: &Value,
    at: &str,
    on: &mut dyn FnMut(&str, &str, bool),
    patch_at: &str,
) {
    match patch {
        Value::Object(pm) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
                on(at, patch_at, false);
            }
            let Some(tm) = target.as_object_mut() else {
                return;
            };
            for (k, v) in pm {
                let s = escape_segment(k);
                let (tk, pk) = (format!("{at}/{s}"), format!("{patch_at}/{s}"));
                if v.is_null() {
                    if tm.remove(k).is_some() {
                        on(&tk, &pk, true);
                    }
                } else {
                    let entry = tm.entry(k.clone()).or_insert(Value::Null);
                    merge_patch(entry, v, &tk, on, &pk);
                }
            }
        }
        other => {
            *target = other.clone();
            on(at, patch_at, false);
        }
    }
}

fn apply_patch(env: &Environment, doc: &mut YamlDocument, patch: &Value, env_pointer: &str) {
    let mut events: Vec<(String, String, bool)> = Vec::new();
    merge_patch(
        &mut doc.value,
        patch,
        "",
        &mut |p, from, removed| events.push((p.to_string(), from.to_string(), removed)),
        env_pointer,
    );
    for (p, e, removed) in events {
        if removed {
            // Gone, and the environment is where it went.
            clear(doc, &p);
            doc.elsewhere.insert(p, (env.file.clone(), env.mark(&e)));
        } else {
            written_at(env, doc, &p, &e);
        }
    }
}

/// What variable expansion may still add.
struct Budget {
    left: usize,
    max_value: usize,
    exhausted: bool,
}

/// A string after `${var}` expansion.
enum Expanded {
    /// No reference in it.
    Unchanged,
    /// The whole string was one reference: the variable's value, with its type.
    Whole(Value, String),
    /// References inside a longer string; the variables used.
    Text(String, Vec<String>),
}

/// Expands `${name}` in `s` (`$${` is a literal `${`). Err: a missing variable's name.
fn expand(s: &str, vars: &BTreeMap<String, Value>) -> Result<Expanded, String> {
    if !s.contains("${") {
        return Ok(Expanded::Unchanged);
    }
    if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
        && valid_var_name(name)
    {
        return match vars.get(name) {
            Some(v) => Ok(Expanded::Whole(v.clone(), name.to_string())),
            None => Err(name.to_string()),
        };
    }
    let mut out = String::new();
    let mut used = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) if valid_var_name(&after[..j]) => {
                let name = &after[..j];
                match vars.get(name) {
                    Some(Value::String(v)) => out.push_str(v),
                    Some(v) => out.push_str(&v.to_string()),
                    None => return Err(name.to_string()),
                }
                used.push(name.to_string());
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(Expanded::Text(out, used))
}

fn substitute(
    env: &Environment,
    file: &Path,
    doc: &mut YamlDocument,
    used: &mut BTreeSet<String>,
    budget: &mut Budget,
    errors: &mut Vec<ManifestError>,
) {
    let mut strings = Vec::new();
    let mut stack = vec![(String::new(), &doc.value)];
    while let Some((p, v)) = stack.pop() {
        match v {
            Value::String(s) if s.contains("${") => strings.push((p, s.clone())),
            Value::Object(m) => {
                for (k, c) in m {
                    stack.push((format!("{p}/{}", escape_segment(k)), c));
                }
            }
            Value::Array(items) => {
                for (i, c) in items.iter().enumerate() {
                    stack.push((format!("{p}/{i}"), c));
                }
            }
            _ => {}
        }
    }
    strings.sort();
    for (p, s) in strings {
        let (place, mark) = doc.place_of(&p);
        let place = place.unwrap_or(file).to_path_buf();
        let (value, names) = match expand(&s, &env.vars) {
            Ok(Expanded::Unchanged) => continue,
            Ok(Expanded::Whole(v, name)) => (v, vec![name]),
            Ok(Expanded::Text(t, names)) => (Value::String(t), names),
            Err(name) => {
                let hint = closest(&name, env.vars.keys().map(String::as_str), |c| {
                    c.len() / 3 + 1
                })
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
                errors.push(error_at(
                    &place,
                    mark,
                    &p,
                    format!(
                        "variable `{name}` is not defined in {} (`vars:`){hint}",
                        env.file.display()
                    ),
                ));
                continue;
            }
        };
        used.extend(names.iter().cloned());
        let len = match &value {
            Value::String(t) => t.len(),
            other => other.to_string().len(),
        };
        if len > budget.max_value {
            errors.push(error_at(
                &place,
                mark,
                &p,
                format!(
                    "expands to {len} bytes, longer than the limit of {} per value",
                    human_bytes(budget.max_value)
                ),
            ));
            continue;
        }
        if len > budget.left {
            if !budget.exhausted {
                errors.push(error_at(
                    &place,
                    mark,
                    &p,
                    "variables expand to more than the limit for one environment; mooring stops expanding here",
                ));
                budget.exhausted = true;
            }
            continue;
        }
        budget.left -= len;
        if let Some(slot) = doc.value.pointer_mut(&p) {
            *slot = value;
        }
        // A base field whose value is a variable: its value comes from the environment
        // (a patched field keeps its patch's place).
        if !doc.elsewhere.contains_key(&p)
            && let [name] = names.as_slice()
        {
            let vp = format!("/spec/vars/{}", escape_segment(name));
            doc.elsewhere
                .insert(p.clone(), (env.file.clone(), env.mark(&vp)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(target: Value, patch: Value) -> Value {
        let mut t = target;
        merge_patch(&mut t, &patch, "", &mut |_, _, _| {}, "");
        t
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // The examples of RFC 7386 §3.
        assert_eq!(
            merged(json!({"a": "b"}), json!({"a": "c"})),
            json!({"a": "c"})
        );
        assert_eq!(
            merged(json!({"a": "b"}), json!({"b": "c"})),
            json!({"a": "b", "b": "c"})
        );
        assert_eq!(merged(json!({"a": "b"}), json!({"a": null})), json!({}));
        assert_eq!(
            merged(json!({"a": "b", "b": "c"}), json!({"a": null})),
            json!({"b": "c"})
        );
        assert_eq!(
            merged(json!({"a": ["b"]}), json!({"a": "c"})),
            json!({"a": "c"})
        );
        assert_eq!(
            merged(json!({"a": "c"}), json!({"a": ["b"]})),
            json!({"a": ["b"]})
        );
        assert_eq!(
            merged(
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}})
            ),
            json!({"a": {"b": "d"}})
        );
        assert_eq!(
            merged(json!({"a": [{"b": "c"}]}), json!({"a": [1]})),
            json!({"a": [1]})
        );
        assert_eq!(
            merged(json!({"e": null}), json!({"a": 1})),
            json!({"e": null, "a": 1})
        );
        assert_eq!(
            merged(json!([1, 2]), json!({"a": "b", "c": null})),
            json!({"a": "b"})
        );
        assert_eq!(
            merged(json!({}), json!({"a": {"bb": {"ccc": null}}})),
            json!({"a": {"bb": {}}})
        );
    }

    #[test]
    fn variables_expand_typed_whole_and_as_text_inside() {
        let vars: BTreeMap<String, Value> = [
            ("n".to_string(), json!(3)),
            ("env".to_string(), json!("dev")),
        ]
        .into();
        match expand("${n}", &vars) {
            Ok(Expanded::Whole(v, _)) => assert_eq!(v, json!(3)),
            _ => panic!("whole"),
        }
        match expand("/salon/${env}/x-${n}", &vars) {
            Ok(Expanded::Text(t, used)) => {
                assert_eq!(t, "/salon/dev/x-3");
                assert_eq!(used, ["env", "n"]);
            }
            _ => panic!("text"),
        }
        match expand("cost $${env} and ${ not a ref", &vars) {
            Ok(Expanded::Text(t, used)) => {
                assert_eq!(t, "cost ${env} and ${ not a ref");
                assert!(used.is_empty());
            }
            _ => panic!("escape"),
        }
        assert!(matches!(expand("plain", &vars), Ok(Expanded::Unchanged)));
        assert_eq!(
            expand("a-${missing}", &vars).err().as_deref(),
            Some("missing")
        );
    }

    #[test]
    fn lexical_normalisation_of_base_paths() {
        assert_eq!(
            normalize(Path::new("m/envs/dev/../../base")),
            PathBuf::from("m/base")
        );
        assert_eq!(normalize(Path::new("../base")), PathBuf::from("../base"));
    }

    #[test]
    fn name_fields_exist_in_the_schema() {
        for kind in Kind::ALL {
            for pointer in name_fields(kind.as_str()) {
                let (parent, field) = pointer.rsplit_once('/').unwrap_or_default();
                assert!(
                    super::super::schema::fields_at(*kind, parent)
                        .iter()
                        .any(|f| f == field),
                    "{kind} {pointer}"
                );
            }
        }
    }

    const STACK: &str = "apiVersion: mooring.dev/v1alpha1\nkind: Stack\nmetadata: {name: shop}\n";
    const LOGS: &str = "apiVersion: mooring.dev/v1alpha1
kind: LogGroup
metadata:
  name: api-logs
  annotations: {mooring.dev/allow-replacement: \"true\"}
spec:
  logGroupName: /ecs/api
  retentionInDays: 30
";

    /// A base (`base/`) and an environment (`envs/x/environment.yaml` holding `env`).
    fn layout(base_logs: &str, env: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().join("base");
        let envs = root.path().join("envs/x");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::create_dir_all(&envs).unwrap();
        std::fs::write(base.join("stack.yaml"), STACK).unwrap();
        std::fs::write(base.join("logs.yaml"), base_logs).unwrap();
        let head = "apiVersion: mooring.dev/v1alpha1\nkind: Environment\nmetadata: {name: x}\nspec:\n  bases: [../../base]\n";
        std::fs::write(envs.join("environment.yaml"), format!("{head}{env}")).unwrap();
        root
    }

    fn load_env(root: &tempfile::TempDir) -> Result<ManifestSet, ManifestErrors> {
        super::super::load_dir(&root.path().join("envs/x"))
    }

    fn messages(root: &tempfile::TempDir, e: ManifestErrors) -> Vec<String> {
        let prefix = format!("{}/", root.path().display());
        e.0.iter()
            .map(|e| e.to_string().replace(&prefix, ""))
            .collect()
    }

    #[test]
    fn an_environment_renames_tags_patches_and_protects() {
        let root = layout(
            LOGS,
            "  names: {prefix: a-, suffix: -x}\n  tags: {env: x}\n  protect: true\n  vars: {days: 7}\n  patches:\n    LogGroup/api-logs:\n      spec: {retentionInDays: \"${days}\"}\n",
        );
        let set = load_env(&root).unwrap();
        assert_eq!(
            base_dirs(&root.path().join("envs/x")),
            [root.path().join("base")],
            "the file watch covers the base"
        );
        assert_eq!(set.stack, "a-shop-x");
        assert_eq!(set.environment.as_deref(), Some("x"));
        assert!(set.protect);
        let logs = &set.log_groups[0];
        assert_eq!(
            logs.name(),
            "api-logs",
            "manifest names stay: references hold"
        );
        assert_eq!(logs.spec.log_group_name.as_deref(), Some("/a-ecs/api-x"));
        assert_eq!(logs.spec.retention_in_days, Some(7));
        assert_eq!(logs.spec.tags.get("env").map(String::as_str), Some("x"));
        // protect overrides the base's annotation.
        assert!(!crate::kinds::ownership::allows_replacement(&logs.metadata));
        // Without protect the annotation stays.
        let root = layout(LOGS, "  protect: false\n");
        let set = load_env(&root).unwrap();
        assert!(crate::kinds::ownership::allows_replacement(
            &set.log_groups[0].metadata
        ));
        assert!(!set.protect);
    }

    #[test]
    fn errors_point_at_the_file_that_wrote_the_field() {
        let root = layout(
            &LOGS.replace("retentionInDays: 30", "retentionInDays: 31"),
            "  vars: {unused: 1}\n  patches:\n    LogGroup/api-logs:\n      spec:\n        logGroupNam: /x\n        tags: {team: \"${team}\"}\n    LogGroup/api-log:\n      spec: {}\n",
        );
        let found = messages(&root, load_env(&root).unwrap_err());
        assert_eq!(
            found,
            [
                "envs/x/environment.yaml:6:10: spec.vars.unused: variable `unused` is not used (no `${unused}` in the bases or patches)",
                "envs/x/environment.yaml:11:16: spec.tags.team: variable `team` is not defined in envs/x/environment.yaml (`vars:`)",
                "envs/x/environment.yaml:12:5: patch for `LogGroup/api-log`, which no base declares; did you mean `LogGroup/api-logs`?",
            ]
        );
        // Once the environment itself is right, the checks place each field.
        let root = layout(
            &LOGS.replace("retentionInDays: 30", "retentionInDays: 31"),
            "  patches:\n    LogGroup/api-logs:\n      spec:\n        logGroupNam: /x\n",
        );
        let found = messages(&root, load_env(&root).unwrap_err());
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("base/logs.yaml:8:3: spec.retentionInDays:"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("envs/x/environment.yaml:9:9: spec.logGroupNam: unknown field"),
            "{found:?}"
        );
    }

    #[test]
    fn a_null_in_a_patch_removes_the_field_and_its_place() {
        let root = layout(
            LOGS,
            "  patches:\n    LogGroup/api-logs:\n      spec: {retentionInDays: null}\n",
        );
        let set = load_env(&root).unwrap();
        assert_eq!(set.log_groups[0].spec.retention_in_days, None);
    }

    #[test]
    fn expansion_is_bounded() {
        let big = "x".repeat(40_000);
        let refs: String = (0..40)
            .map(|i| format!("        k{i}: \"${{v}}\"\n"))
            .collect();
        let root = layout(
            LOGS,
            &format!(
                "  vars: {{v: {big}}}\n  patches:\n    LogGroup/api-logs:\n      spec:\n        tags:\n{refs}"
            ),
        );
        let found = messages(&root, load_env(&root).unwrap_err());
        assert!(
            found
                .iter()
                .any(|m| m.contains("variables expand to more than the limit for one environment")),
            "{found:?}"
        );
        let two = "\"${v}${v}\"";
        let root = layout(
            LOGS,
            &format!(
                "  vars: {{v: {big}}}\n  patches:\n    LogGroup/api-logs:\n      spec:\n        tags: {{a: {two}}}\n"
            ),
        );
        let found = messages(&root, load_env(&root).unwrap_err());
        assert!(
            found
                .iter()
                .any(|m| m
                    .contains("expands to 80000 bytes, longer than the limit of 64 KiB per value")),
            "{found:?}"
        );
    }

    #[test]
    fn one_directory_named_twice_as_a_base_is_refused_at_the_environment_file() {
        // Before: every manifest was read twice and reported as a duplicate of itself, at
        // the base's files.
        let root = layout(LOGS, "");
        let env = root.path().join("envs/x/environment.yaml");
        let text = std::fs::read_to_string(&env).unwrap();
        std::fs::create_dir_all(root.path().join("base/sub")).unwrap();
        for twice in ["../../base, ./../../base/", "../../base, ../../base/sub"] {
            std::fs::write(&env, text.replace("../../base", twice)).unwrap();
            let found = messages(&root, load_env(&root).unwrap_err());
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(
                found[0].starts_with("envs/x/environment.yaml:5:23: spec.bases[1]: base `")
                    && found[0].contains("would be read twice"),
                "{found:?}"
            );
        }
    }

    #[test]
    fn a_variable_naming_another_is_an_error_at_its_value() {
        // Before: `a` reached the manifest as the literal text `${b}`, and the error was
        // that `b` is unused.
        let root = layout(
            LOGS,
            "  vars: {a: \"x-${b}\", b: y}\n  patches:\n    LogGroup/api-logs:\n      spec: {tags: {t: \"${a}\", u: \"${b}\"}}\n",
        );
        let found = messages(&root, load_env(&root).unwrap_err());
        assert_eq!(
            found,
            [
                "envs/x/environment.yaml:6:10: spec.vars.a: a variable's value cannot name another variable (values are not expanded); write the value out"
            ]
        );
    }
}
