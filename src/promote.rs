//! `mooring promote FROM TO`: copies the image of services from one environment to another
//! by editing TO's environment file where the image is written (a patch's `image`/`tag`, or
//! the variable it names). Only the value's text changes: comments, quoting style and
//! layout stay, so the commit of that edit is the promotion and reads as one.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::manifest::environment::{Environment, find, resolve};
use crate::manifest::limits::Limits;
use crate::manifest::load::closest;
use crate::manifest::read::read_sources;
use crate::manifest::yaml::{YamlDocument, escape_segment, parse_documents};

/// The fields that name a service's image: a full reference (`repo:tag`, `repo@sha256:…`)
/// or the tag in the service's `repository`.
pub const IMAGE_FIELDS: [&str; 2] = [
    "/spec/taskDefinition/container/image",
    "/spec/taskDefinition/container/tag",
];

/// One edit of the environment file: a value's text on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The service it promotes.
    pub service: String,
    /// 1-based line of the file.
    pub line: usize,
    /// Byte range of the value's text in that line.
    pub span: (usize, usize),
    /// The text written instead.
    pub text: String,
}

/// A failure, lower-case, with the file concerned.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PromoteError(pub String);

/// The environment of `dir` with its resolved Service documents by name.
fn services(dir: &Path) -> Result<(Environment, Vec<(String, YamlDocument)>), PromoteError> {
    if find(dir).is_none() {
        return Err(PromoteError(format!(
            "failed to promote: {} is not an environment directory (no environment.yaml)",
            dir.display()
        )));
    }
    if let Err(e) = crate::manifest::load_dir(dir) {
        return Err(PromoteError(format!(
            "failed to promote: {} does not load:\n{e}",
            dir.display()
        )));
    }
    let resolved = resolve(dir, &Limits::default());
    let env = resolved.environment.ok_or_else(|| {
        PromoteError(format!(
            "failed to promote: {} has no environment",
            dir.display()
        ))
    })?;
    let docs = resolved
        .parsed
        .files
        .into_iter()
        .flat_map(|(_, docs)| docs)
        .filter(|d| d.value["kind"] == "Service")
        .filter_map(|d| Some((d.value["metadata"]["name"].as_str()?.to_string(), d)))
        .collect();
    Ok((env, docs))
}

/// Where TO writes a service's image field: the env-file pointer of the value to edit.
fn written_at(
    env: &Environment,
    service: &str,
    doc: &YamlDocument,
    field: &str,
) -> Result<String, PromoteError> {
    let key = format!("Service/{service}");
    let patch = format!("/spec/patches/{}{field}", escape_segment(&key));
    let var_named = |name: &str| -> Result<String, PromoteError> {
        let p = format!("/spec/vars/{}", escape_segment(name));
        match env.doc.value.pointer(&p) {
            Some(Value::String(_)) => Ok(p),
            _ => Err(PromoteError(format!(
                "failed to promote `{service}`: the variable `{name}` in {} is not a string",
                env.file.display()
            ))),
        }
    };
    if let Some(raw) = env.doc.value.pointer(&patch) {
        let Some(raw) = raw.as_str() else {
            return Err(PromoteError(format!(
                "failed to promote `{service}`: {}:{} is not a string",
                env.file.display(),
                env.mark(&patch).line
            )));
        };
        if let Some(name) = raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            return var_named(name);
        }
        if raw.contains("${") {
            return Err(PromoteError(format!(
                "failed to promote `{service}`: {}:{} builds the image from variables; edit it by hand",
                env.file.display(),
                env.mark(&patch).line
            )));
        }
        return Ok(patch);
    }
    // A base value that is one variable of TO.
    if let Some((file, mark)) = doc.elsewhere.get(field)
        && *file == env.file
        && let Some(name) = env
            .vars
            .keys()
            .find(|v| env.mark(&format!("/spec/vars/{}", escape_segment(v))) == *mark)
    {
        return var_named(name);
    }
    Err(PromoteError(format!(
        "failed to promote `{service}`: {} takes its image from the base; write it in the environment (a patch `{key}: {{spec: {{taskDefinition: {{container: {{{}: …}}}}}}}}` or a variable) so that promotion has a place to write",
        env.file.display(),
        field.rsplit('/').next().unwrap_or_default()
    )))
}

/// The byte range of the value after the key that starts at `col` (1-based, in
/// characters) of `line`.
fn value_span(line: &str, col: usize) -> Option<(usize, usize)> {
    let start = line.char_indices().nth(col.saturating_sub(1))?.0;
    let bytes = line.as_bytes();
    let mut i = start;
    // The key.
    match bytes.get(i) {
        Some(b'"') | Some(b'\'') => i = quoted_end(line, i)?,
        _ => {
            while i < bytes.len() && bytes[i] != b':' {
                i += 1;
            }
        }
    }
    while i < bytes.len() && bytes[i] != b':' {
        i += 1;
    }
    i += 1;
    while i < bytes.len() && bytes[i] == b' ' {
        i += 1;
    }
    if i >= bytes.len() || bytes[i] == b'#' {
        return None; // a block value on the next lines
    }
    let value_start = i;
    if bytes[i] == b'"' || bytes[i] == b'\'' {
        return Some((value_start, quoted_end(line, i)?));
    }
    let before = &line[..start];
    let flow = before.matches(['{', '[']).count() > before.matches(['}', ']']).count();
    let mut end = i;
    while end < bytes.len() {
        let c = bytes[end];
        if flow && matches!(c, b',' | b'}' | b']') {
            break;
        }
        if c == b'#' && end > value_start && matches!(bytes[end - 1], b' ' | b'\t') {
            break;
        }
        end += 1;
    }
    // Blanks before a comment, and a CRLF file's `\r`, are not the value.
    while end > value_start && matches!(bytes[end - 1], b' ' | b'\t' | b'\r') {
        end -= 1;
    }
    Some((value_start, end))
}

/// The end (exclusive) of the quoted scalar starting at byte `i`.
fn quoted_end(line: &str, i: usize) -> Option<usize> {
    let bytes = line.as_bytes();
    let q = bytes[i];
    let mut j = i + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' if q == b'"' => j += 2,
            c if c == q => {
                if q == b'\'' && bytes.get(j + 1) == Some(&b'\'') {
                    j += 2;
                } else {
                    return Some(j + 1);
                }
            }
            _ => j += 1,
        }
    }
    None
}

/// `new` written the way `old` was (quoted the same, or plain when that reads back).
fn styled(old: &str, new: &str, in_flow: bool) -> String {
    if old.starts_with('"') {
        return serde_json::to_string(new).unwrap_or_default();
    }
    if old.starts_with('\'') {
        return format!("'{}'", new.replace('\'', "''"));
    }
    let plain = crate::manifest::render::scalar(new);
    if in_flow && !plain.starts_with('"') && new.contains([',', '[', ']', '{', '}']) {
        serde_json::to_string(new).unwrap_or_default()
    } else {
        plain
    }
}

/// The edits that bring TO's images to FROM's, for `only` (empty: every service of FROM).
pub fn plan(from: &Path, to: &Path, only: &[String]) -> Result<(PathBuf, Vec<Edit>), PromoteError> {
    let (_, from_services) = services(from)?;
    let (to_env, to_services) = services(to)?;
    for name in only {
        if !from_services.iter().any(|(n, _)| n == name) {
            let hint = closest(name, from_services.iter().map(|(n, _)| n.as_str()), |c| {
                c.len() / 3 + 1
            })
            .map(|c| format!("; did you mean `{c}`?"))
            .unwrap_or_default();
            return Err(PromoteError(format!(
                "failed to promote: no Service `{name}` in {}{hint}",
                from.display()
            )));
        }
    }
    let text = std::fs::read_to_string(&to_env.file)
        .map_err(|e| PromoteError(format!("failed to read {}: {e}", to_env.file.display())))?;
    let lines: Vec<&str> = text.split('\n').collect();
    let mut edits: Vec<Edit> = Vec::new();
    // Variables edited, with how many promoted image fields each serves.
    let mut through_vars: Vec<(String, usize)> = Vec::new();
    for (name, from_doc) in &from_services {
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        let Some((_, to_doc)) = to_services.iter().find(|(n, _)| n == name) else {
            return Err(PromoteError(format!(
                "failed to promote: {} has the Service `{name}` and {} does not",
                from.display(),
                to.display()
            )));
        };
        for field in IMAGE_FIELDS {
            let (want, have) = (from_doc.value.pointer(field), to_doc.value.pointer(field));
            if want == have {
                continue;
            }
            let (Some(Value::String(want)), Some(Value::String(_))) = (want, have) else {
                return Err(PromoteError(format!(
                    "failed to promote `{name}`: {} and {} name its image differently (`image` in one, `repository` and `tag` in the other)",
                    from.display(),
                    to.display()
                )));
            };
            let pointer = written_at(&to_env, name, to_doc, field)?;
            let mark = to_env.mark(&pointer);
            let line = lines
                .get(mark.line.saturating_sub(1))
                .copied()
                .unwrap_or_default();
            let Some(span) = value_span(line, mark.col) else {
                return Err(PromoteError(format!(
                    "failed to promote `{name}`: cannot find the value at {}:{}:{}",
                    to_env.file.display(),
                    mark.line,
                    mark.col
                )));
            };
            let before = &line[..span.0];
            let in_flow = before.matches(['{', '[']).count() > before.matches(['}', ']']).count();
            let edit = Edit {
                service: name.clone(),
                line: mark.line,
                span,
                text: styled(&line[span.0..span.1], want, in_flow),
            };
            // Two services on one place (a variable): one edit, and only when both want
            // the same image.
            let same_place = |e: &Edit| (e.line, e.span) == (edit.line, edit.span);
            if let Some(other) = edits.iter().find(|e| same_place(e)) {
                if other.text != edit.text {
                    return Err(PromoteError(format!(
                        "failed to promote: `{}` and `{name}` take their image from the same place in {} (line {}), but run different images in {}; give each its own variable or patch",
                        other.service,
                        to_env.file.display(),
                        mark.line,
                        from.display()
                    )));
                }
            } else {
                edits.push(edit);
            }
            if let Some(var) = pointer.strip_prefix("/spec/vars/") {
                let var = var.replace("~1", "/").replace("~0", "~");
                match through_vars.iter_mut().find(|(v, _)| *v == var) {
                    Some((_, n)) => *n += 1,
                    None => through_vars.push((var, 1)),
                }
            }
        }
    }
    // A variable edited for the images promoted must serve nothing else: changing it would
    // change every other field (or service) that names it.
    for (var, promoted) in through_vars {
        let uses = var_uses(to, &to_env, &var);
        if uses > promoted {
            return Err(PromoteError(format!(
                "failed to promote: the variable `{var}` ({}:{}) is used in {uses} places of {}, of which {promoted} are the images promoted; editing it would change the others too (give the image its own variable, or promote every service that uses it)",
                to_env.file.display(),
                to_env
                    .mark(&format!("/spec/vars/{}", escape_segment(&var)))
                    .line,
                to.display()
            )));
        }
    }
    Ok((to_env.file, edits))
}

/// How many values of TO's sources (its own files and its bases, before expansion) name
/// `${var}`.
fn var_uses(to: &Path, env: &Environment, var: &str) -> usize {
    let limits = Limits::default();
    let (mut sources, _) = read_sources(to, &limits);
    for (base, _) in &env.bases {
        sources.extend(read_sources(&to.join(base), &limits).0);
    }
    let needle = format!("${{{var}}}");
    let mut count = 0;
    for (_, text) in &sources {
        let (docs, _) = parse_documents(text);
        let mut stack: Vec<&Value> = docs.iter().map(|d| &d.value).collect();
        while let Some(v) = stack.pop() {
            match v {
                Value::String(s) => {
                    count += s
                        .match_indices(&needle)
                        .filter(|(i, _)| !s[..*i].ends_with('$'))
                        .count()
                }
                Value::Array(items) => stack.extend(items),
                Value::Object(m) => stack.extend(m.values()),
                _ => {}
            }
        }
    }
    count
}

/// `text` with `edits` applied.
pub fn apply_edits(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let mut sorted = edits.to_vec();
    sorted.sort_by_key(|e| std::cmp::Reverse((e.line, e.span.0)));
    for e in sorted {
        if let Some(l) = lines.get_mut(e.line - 1) {
            l.replace_range(e.span.0..e.span.1, &e.text);
        }
    }
    lines.join("\n")
}

/// The changed lines as a unified diff.
pub fn diff(file: &Path, old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.split('\n').collect(), new.split('\n').collect());
    let mut out = format!("--- {0}\n+++ {0}\n", file.display());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if x != y {
            out.push_str(&format!("@@ -{0},1 +{0},1 @@\n-{x}\n+{y}\n", i + 1));
        }
    }
    out
}

/// `mooring promote`: exit 0 done (or nothing to do), 2 with `check` when something would
/// change, 1 on error.
pub fn run(from: &Path, to: &Path, only: &[String], check: bool) -> i32 {
    let (file, edits) = match plan(from, to, only) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if edits.is_empty() {
        println!(
            "{} already runs the images of {}: nothing to promote",
            to.display(),
            from.display()
        );
        return 0;
    }
    let old = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("failed to read {}: {e}", file.display());
            return 1;
        }
    };
    let new = apply_edits(&old, &edits);
    // The edit must read back: the file still parses, and nothing but the values moved.
    let (_, errors) = parse_documents(&new);
    if !errors.is_empty() {
        eprintln!(
            "failed to promote: the edited {} would not parse ({}); nothing was written",
            file.display(),
            errors[0].message
        );
        return 1;
    }
    print!("{}", diff(&file, &old, &new));
    if check {
        eprintln!(
            "{} is behind {}: {} change(s) to promote",
            to.display(),
            from.display(),
            edits.len()
        );
        return 2;
    }
    let tmp = file.with_extension("yaml.mooring-promote");
    let written = std::fs::write(&tmp, &new).and_then(|()| std::fs::rename(&tmp, &file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        eprintln!("failed to write {}: {e}", file.display());
        return 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_spans_in_block_and_flow_mappings() {
        let line = "    tag: v1.0.0  # the release";
        assert_eq!(
            value_span(line, 5).map(|(a, b)| &line[a..b]),
            Some("v1.0.0")
        );
        let line = "      container: {tag: \"${backendTag}\", port: 3000}";
        assert_eq!(
            value_span(line, 19).map(|(a, b)| &line[a..b]),
            Some("\"${backendTag}\"")
        );
        let line = "  vars: {a: 1, backendTag: 'v1.0.0'}";
        assert_eq!(
            value_span(line, 16).map(|(a, b)| &line[a..b]),
            Some("'v1.0.0'")
        );
        let line = "    image: repo:v1, x";
        assert_eq!(
            value_span(line, 5).map(|(a, b)| &line[a..b]),
            Some("repo:v1, x")
        );
        assert_eq!(value_span("  spec:", 3), None);
    }

    #[test]
    fn edits_keep_quoting_and_everything_else() {
        let text = "a: 1  # keep\nvars: {tag: 'v1'}\nimage: \"x:1\"\n";
        let e = |line, col: usize, new: &str| {
            let l = text.split('\n').nth(line - 1).unwrap();
            let span = value_span(l, col).unwrap();
            Edit {
                service: "s".into(),
                line,
                span,
                text: styled(&l[span.0..span.1], new, l[..span.0].contains('{')),
            }
        };
        let new = apply_edits(text, &[e(2, 9, "v2"), e(3, 1, "x:2")]);
        assert_eq!(new, "a: 1  # keep\nvars: {tag: 'v2'}\nimage: \"x:2\"\n");
        assert_eq!(
            diff(Path::new("f.yaml"), text, &new),
            "--- f.yaml\n+++ f.yaml\n@@ -2,1 +2,1 @@\n-vars: {tag: 'v1'}\n+vars: {tag: 'v2'}\n@@ -3,1 +3,1 @@\n-image: \"x:1\"\n+image: \"x:2\"\n"
        );
    }

    /// `base/` (the basic fixture) with environments `a` and `b` holding `a` and `b`.
    fn envs(a: &str, b: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/basic");
        std::fs::create_dir_all(root.path().join("base")).unwrap();
        for entry in std::fs::read_dir(fixture).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(
                entry.path(),
                root.path().join("base").join(entry.file_name()),
            )
            .unwrap();
        }
        let head = "apiVersion: mooring.dev/v1alpha1\nkind: Environment\nmetadata: {name: NAME}\nspec:\n  bases: [../base]\n";
        for (name, body) in [("a", a), ("b", b)] {
            std::fs::create_dir_all(root.path().join(name)).unwrap();
            std::fs::write(
                root.path().join(name).join("environment.yaml"),
                format!("{}{body}", head.replace("NAME", name)),
            )
            .unwrap();
        }
        root
    }

    fn promoted(root: &tempfile::TempDir) -> Result<String, PromoteError> {
        let (from, to) = (root.path().join("a"), root.path().join("b"));
        let (file, edits) = plan(&from, &to, &[])?;
        let text = std::fs::read_to_string(file).unwrap();
        Ok(apply_edits(&text, &edits))
    }

    const PATCH: &str = "  patches:\n    Service/api:\n      spec:\n        taskDefinition:\n          container:\n            image: nginx:1.29  # the release\n";

    #[test]
    fn promotion_edits_a_patch_or_the_variable_it_names() {
        // A literal in TO's patch: edited in place, the comment kept.
        let root = envs(PATCH, &PATCH.replace("1.29", "1.27"));
        assert!(
            promoted(&root)
                .unwrap()
                .ends_with("image: nginx:1.29  # the release\n")
        );
        // TO's patch names a variable: the variable is edited, the patch stays.
        let to = "  vars:\n    web: \"nginx:1.27\" # pinned\n  patches:\n    Service/api:\n      spec: {taskDefinition: {container: {image: \"${web}\"}}}\n";
        let root = envs(PATCH, to);
        let out = promoted(&root).unwrap();
        assert!(out.contains("    web: \"nginx:1.29\" # pinned\n"), "{out}");
        assert!(out.contains("{image: \"${web}\"}"), "{out}");
        // Already the same: nothing to do.
        let root = envs(PATCH, PATCH);
        let (_, edits) = plan(&root.path().join("a"), &root.path().join("b"), &[]).unwrap();
        assert!(edits.is_empty());
    }

    #[test]
    fn promotion_needs_a_place_to_write_and_known_services() {
        let root = envs(PATCH, "  tags: {env: b}\n");
        let e = promoted(&root).unwrap_err().to_string();
        assert!(e.contains("takes its image from the base"), "{e}");
        let root = envs(PATCH, PATCH);
        let e = plan(
            &root.path().join("a"),
            &root.path().join("b"),
            &["ap".into()],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("no Service `ap`") && e.contains("did you mean `api`?"),
            "{e}"
        );
        let e = plan(&root.path().join("base"), &root.path().join("b"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not an environment directory"), "{e}");
    }

    /// `base/` with a second service `worker` beside `api`.
    fn two_services(a: &str, b: &str) -> tempfile::TempDir {
        let root = envs(a, b);
        let base = root.path().join("base");
        let api = std::fs::read_to_string(base.join("service.yaml")).unwrap();
        std::fs::write(
            base.join("worker.yaml"),
            api.replace("name: api\n", "name: worker\n")
                .replace("/ecs/api", "/ecs/worker"),
        )
        .unwrap();
        root
    }

    const TWO: &str = "  patches:\n    Service/api:\n      spec: {taskDefinition: {container: {image: \"nginx:1.29.10\"}}}\n    Service/worker:\n      spec: {taskDefinition: {container: {image: \"nginx:1.30\"}}}\n";
    const SHARED: &str = "  vars:\n    img: nginx:1.27.1\n  patches:\n    Service/api:\n      spec: {taskDefinition: {container: {image: \"${img}\"}}}\n    Service/worker:\n      spec: {taskDefinition: {container: {image: \"${img}\"}}}\n";

    #[test]
    fn one_variable_for_two_services_that_differ_in_from_is_refused() {
        // Before: two edits of one span, applied one over the other, wrote `nginx:1.300`.
        let root = two_services(TWO, SHARED);
        let e = promoted(&root).unwrap_err().to_string();
        assert!(
            e.contains("`api` and `worker` take their image from the same place"),
            "{e}"
        );
        // The same image for both: one edit.
        let root = two_services(&TWO.replace("1.30", "1.29.10"), SHARED);
        assert!(
            promoted(&root)
                .unwrap()
                .contains("    img: nginx:1.29.10\n")
        );
    }

    #[test]
    fn promoting_one_service_never_moves_another_through_a_shared_variable() {
        // Before: `--service api` edited `img`, and `worker` moved to api's image too.
        let root = two_services(TWO, SHARED);
        let e = plan(
            &root.path().join("a"),
            &root.path().join("b"),
            &["api".into()],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("the variable `img`") && e.contains("used in 2 places"),
            "{e}"
        );
        // A variable that also fills a tag: the same.
        let to = "  vars: {img: nginx:1.27}\n  patches:\n    Service/api:\n      spec:\n        tags: {release: \"${img}\"}\n        taskDefinition: {container: {image: \"${img}\"}}\n";
        let root = envs(PATCH, to);
        let e = promoted(&root).unwrap_err().to_string();
        assert!(e.contains("used in 2 places"), "{e}");
    }

    #[test]
    fn a_crlf_file_keeps_its_line_ends_and_a_tab_before_a_comment_keeps_the_comment() {
        // Before: the `\r` was part of the value (the edited line lost it), and a tab
        // before `#` made the comment part of the value.
        let line = "            image: nginx:1.27\r";
        assert_eq!(
            value_span(line, 13).map(|(a, b)| &line[a..b]),
            Some("nginx:1.27")
        );
        let line = "    tag: v1.0.0\t# the release";
        assert_eq!(
            value_span(line, 5).map(|(a, b)| &line[a..b]),
            Some("v1.0.0")
        );
        let root = envs(
            &PATCH.replace('\n', "\r\n"),
            &PATCH.replace("1.29", "1.27").replace('\n', "\r\n"),
        );
        let out = promoted(&root).unwrap();
        assert!(
            out.contains("image: nginx:1.29  # the release\r\n"),
            "{out:?}"
        );
    }
}
