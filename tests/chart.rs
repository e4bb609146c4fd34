//! The Helm chart in `charts/mooring`, checked without Helm.
//!
//! 1. `Chart.yaml` and `values.yaml` parse; `values.yaml` (and a fuller example) validate
//!    against `values.schema.json` (draft-07, as Helm reads it), and wrong values — a wrong
//!    type, an unknown key, a plain-text secret where a `secretKeyRef` object belongs, a
//!    broken cross-field rule — are rejected at the expected place.
//! 2. Every `.Values.a.b.c` path in the templates exists in `values.yaml`.
//! 3. Every `templates/*.yaml` is parseable YAML after a crude de-templating (see
//!    [`detemplate`]), once with the first branch of every `if`/`else` and once with the last.
//! 4. The deployment runs as non-root with a read-only root filesystem, no privilege
//!    escalation, no capabilities and the RuntimeDefault seccomp profile, probes `/healthz`
//!    and `/readyz`, and passes secrets only through `secretKeyRef`.
//!
//! Plus: every value in `values.yaml` has a comment, the env vars the deployment sets are
//! ones the binary reads (or are listed as pending below), and the operator config the chart
//! renders has the shape `mooring::config::OperatorConfig` accepts.
//!
//! What this cannot see: the output of Go template functions (`toYaml`, `include`, `required`,
//! `fail`), branches in the middle of an `if`/`else if`/`else` chain, and `.tpl`/`NOTES.txt`
//! as YAML (they are not YAML). `helm lint` and `helm template` remain the real check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use mooring::manifest::yaml::parse_documents;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Reading the chart
// ---------------------------------------------------------------------------------------

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/mooring")
}

fn read(rel: &str) -> String {
    let path = chart_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The single YAML document of `text`; panics with `name:line:col` on any problem.
fn yaml_one(name: &str, text: &str) -> Value {
    let (docs, errors) = parse_documents(text);
    if let Some(e) = errors.first() {
        panic!("{name}:{}:{}: {}", e.mark.line, e.mark.col, e.message);
    }
    assert_eq!(docs.len(), 1, "{name}: expected one YAML document");
    docs.into_iter().next().map(|d| d.value).unwrap_or_default()
}

fn values() -> Value {
    yaml_one("values.yaml", &read("values.yaml"))
}

fn schema() -> Value {
    serde_json::from_str(&read("values.schema.json"))
        .unwrap_or_else(|e| panic!("values.schema.json: {e}"))
}

fn validator() -> jsonschema::Validator {
    let schema = schema();
    assert_eq!(
        schema["$schema"], "http://json-schema.org/draft-07/schema#",
        "Helm reads values.schema.json as draft-07"
    );
    if let Err(e) = jsonschema::draft7::meta::validate(&schema) {
        panic!("values.schema.json is not a valid draft-07 schema: {e}");
    }
    jsonschema::draft7::new(&schema).unwrap_or_else(|e| panic!("values.schema.json: {e}"))
}

/// `(pointer, message)` of every schema error of `values`.
fn schema_errors(v: &jsonschema::Validator, values: &Value) -> Vec<(String, String)> {
    v.iter_errors(values)
        .map(|e| (e.instance_path().as_str().to_string(), e.to_string()))
        .collect()
}

/// `(file name, text)` of every file in templates/, sorted.
fn templates() -> Vec<(String, String)> {
    let dir = chart_dir().join("templates");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (name, text)
        })
        .collect();
    out.sort();
    out
}

/// Sets `pointer` (e.g. `/a/b/0`) in `doc`, creating objects on the way.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    if pointer.is_empty() {
        *doc = value;
        return;
    }
    let mut cur = doc;
    let segments: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        cur = match cur {
            Value::Array(items) => {
                let idx: usize = seg.parse().expect("array index");
                &mut items[idx]
            }
            other => {
                if !other.is_object() {
                    *other = json!({});
                }
                let map = other.as_object_mut().expect("object");
                map.entry(seg.to_string()).or_insert(Value::Null)
            }
        };
        if last {
            *cur = value;
            return;
        }
    }
}

/// A realistic full configuration: git source, every sink, the webhook, a ServiceMonitor.
fn full_values() -> Value {
    let mut v = values();
    set(&mut v, "/aws/region", json!("eu-west-1"));
    set(
        &mut v,
        "/serviceAccount/roleArn",
        json!("arn:aws:iam::123456789012:role/mooring"),
    );
    set(&mut v, "/source/type", json!("git"));
    set(
        &mut v,
        "/source/git/url/secretKeyRef",
        json!({"name": "mooring-git", "key": "url"}),
    );
    set(&mut v, "/source/git/path", json!("stacks/prod"));
    set(
        &mut v,
        "/alerts",
        json!({
            "webhooks": [{"url": {"secretKeyRef": {"name": "mooring-alerts", "key": "webhook-url"}}}],
            "slack": [{"webhookUrl": {"secretKeyRef": {"name": "mooring-alerts", "key": "slack-url"}}}],
            "sns": [{"topicArn": "arn:aws:sns:eu-west-1:123456789012:mooring-alerts"}]
        }),
    );
    set(&mut v, "/webhook/enabled", json!(true));
    set(
        &mut v,
        "/webhook/secret/secretKeyRef/name",
        json!("mooring-webhook"),
    );
    set(&mut v, "/serviceMonitor/enabled", json!(true));
    set(
        &mut v,
        "/serviceMonitor/labels",
        json!({"release": "prometheus"}),
    );
    set(
        &mut v,
        "/manifests",
        json!({"web.yaml": "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\n"}),
    );
    v
}

// ---------------------------------------------------------------------------------------
// 1. Chart.yaml, values.yaml and the schema
// ---------------------------------------------------------------------------------------

#[test]
fn chart_yaml_is_a_helm3_chart_of_this_crate() {
    let chart = yaml_one("Chart.yaml", &read("Chart.yaml"));
    assert_eq!(chart["apiVersion"], "v2", "Helm 3 charts are apiVersion v2");
    assert_eq!(chart["name"], "mooring");
    assert_eq!(chart["type"], "application");
    let version = chart["version"].as_str().unwrap_or_default();
    let core: Vec<&str> = version
        .split(['-', '+'])
        .next()
        .unwrap_or("")
        .split('.')
        .collect();
    assert!(
        core.len() == 3 && core.iter().all(|p| p.parse::<u64>().is_ok()),
        "Chart.yaml version `{version}` is not SemVer"
    );
    assert_eq!(
        chart["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "Chart.yaml appVersion should be the crate's version (the default image tag)"
    );
}

#[test]
fn values_yaml_validates_against_the_schema() {
    let v = validator();
    let errors = schema_errors(&v, &values());
    assert!(errors.is_empty(), "values.yaml: {errors:#?}");
    let errors = schema_errors(&v, &full_values());
    assert!(errors.is_empty(), "full example: {errors:#?}");
}

#[test]
fn schema_rejects_wrong_values() {
    let v = validator();
    // (what, pointer to change, new value, where the error must be, text in its message)
    let cases: Vec<(&str, &str, Value, &str, &str)> = vec![
        (
            "wrong type",
            "/replicaCount",
            json!("two"),
            "/replicaCount",
            "integer",
        ),
        ("wrong type", "/prune", json!("yes"), "/prune", "boolean"),
        (
            "wrong type",
            "/aws/rateLimit",
            json!("fast"),
            "/aws/rateLimit",
            "number",
        ),
        (
            "unknown key at the top",
            "/replicas",
            json!(3),
            "",
            "replicas",
        ),
        (
            "unknown key nested",
            "/image/tagg",
            json!("1.0"),
            "/image",
            "tagg",
        ),
        (
            "unknown key in a secretKeyRef",
            "/webhook/secret/secretKeyRef/value",
            json!("s3cret"),
            "/webhook/secret/secretKeyRef",
            "value",
        ),
        ("enum", "/mode", json!("dry-run"), "/mode", "dry-run"),
        (
            "duration",
            "/interval",
            json!("1 minute"),
            "/interval",
            "1 minute",
        ),
        (
            "region",
            "/aws/region",
            json!("Ireland"),
            "/aws/region",
            "Ireland",
        ),
        (
            "role ARN",
            "/serviceAccount/roleArn",
            json!("mooring-role"),
            "/serviceAccount/roleArn",
            "mooring-role",
        ),
        (
            "manifest file name",
            "/manifests",
            json!({"../escape.yaml": "a: 1"}),
            "/manifests",
            "escape",
        ),
        (
            "plain-text webhook URL",
            "/alerts/webhooks",
            json!([{"url": "https://hooks.example.com/T0/abc"}]),
            "/alerts/webhooks/0/url",
            "object",
        ),
        (
            "plain-text Slack URL",
            "/alerts/slack",
            json!([{"webhookUrl": "https://hooks.slack.com/services/T0/B0/xyz"}]),
            "/alerts/slack/0/webhookUrl",
            "object",
        ),
        (
            "inline secret value instead of a secretKeyRef",
            "/alerts/webhooks",
            json!([{"url": {"value": "https://hooks.example.com/T0/abc"}}]),
            "/alerts/webhooks/0/url",
            "",
        ),
        (
            "empty secret reference",
            "/alerts/webhooks",
            json!([{"url": {}}]),
            "/alerts/webhooks/0/url",
            "secretKeyRef",
        ),
        (
            "plain-text git URL",
            "/source/git/url",
            json!("https://user:token@git.example.com/stacks.git"),
            "/source/git/url",
            "object",
        ),
        (
            "plain-text HMAC secret",
            "/webhook/secret",
            json!("s3cret"),
            "/webhook/secret",
            "object",
        ),
        (
            "alert sink without a Secret name",
            "/alerts/slack",
            json!([{"webhookUrl": {"secretKeyRef": {"name": "", "key": "k"}}}]),
            "/alerts/slack/0/webhookUrl/secretKeyRef/name",
            "",
        ),
        (
            "SNS topic that is not an ARN",
            "/alerts/sns",
            json!([{"topicArn": "mooring-alerts"}]),
            "/alerts/sns/0/topicArn",
            "mooring-alerts",
        ),
    ];
    let mut failures = Vec::new();
    for (what, pointer, value, at, text) in cases {
        let mut doc = values();
        set(&mut doc, pointer, value.clone());
        let errors = schema_errors(&v, &doc);
        if !errors.iter().any(|(p, m)| p == at && m.contains(text)) {
            failures.push(format!(
                "{what}: {pointer} = {value}: expected an error at `{at}` mentioning `{text}`, got {errors:?}"
            ));
        }
    }
    // Rules across fields (draft-07 if/then); each starts from valid values.
    let mut single = values();
    set(&mut single, "/leaderElection/enabled", json!(false));
    set(&mut single, "/replicaCount", json!(1));
    assert!(
        v.is_valid(&single),
        "one replica without leader election is fine: {:?}",
        schema_errors(&v, &single)
    );
    let rules: Vec<(&str, Value, &str, &str)> = vec![
        (
            "two replicas without leader election",
            {
                let mut d = single.clone();
                set(&mut d, "/replicaCount", json!(2));
                d
            },
            "/leaderElection/enabled",
            "true",
        ),
        (
            "leader election without a lease table",
            {
                let mut d = values();
                set(&mut d, "/leaderElection/leaseTable", json!(""));
                d
            },
            "/leaderElection/leaseTable",
            "",
        ),
        (
            "git source without the URL's Secret",
            {
                let mut d = values();
                set(&mut d, "/source/type", json!("git"));
                d
            },
            "/source/git/url/secretKeyRef/name",
            "",
        ),
        (
            "webhook without the HMAC Secret",
            {
                let mut d = values();
                set(&mut d, "/webhook/enabled", json!(true));
                d
            },
            "/webhook/secret/secretKeyRef/name",
            "",
        ),
    ];
    for (what, doc, at, text) in rules {
        let errors = schema_errors(&v, &doc);
        if !errors.iter().any(|(p, m)| p == at && m.contains(text)) {
            failures.push(format!(
                "{what}: expected an error at `{at}` mentioning `{text}`, got {errors:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every key line of values.yaml comes right after a comment line (or carries one).
#[test]
fn every_value_is_documented() {
    let text = read("values.yaml");
    let mut previous = "";
    let mut undocumented = Vec::new();
    let mut keys = 0;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let is_key = !trimmed.starts_with('#')
            && trimmed.split_once(':').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if is_key {
            keys += 1;
            if !previous.trim_start().starts_with('#') && !line.contains(" # ") {
                undocumented.push(format!(
                    "values.yaml:{}: `{}` has no comment",
                    n + 1,
                    trimmed
                ));
            }
        }
        previous = line;
    }
    assert!(
        keys > 30,
        "only {keys} keys found in values.yaml: is the scan broken?"
    );
    assert!(undocumented.is_empty(), "{}", undocumented.join("\n"));
}

// ---------------------------------------------------------------------------------------
// 2. `.Values` paths
// ---------------------------------------------------------------------------------------

/// `file:line: .Values.path` for every `.Values.x.y` reference of `text` that `values` lacks.
/// `$.Values.x` counts too; `index .Values "x"` and paths through variables do not.
fn missing_value_paths(file: &str, text: &str, values: &Value) -> (usize, Vec<String>) {
    let mut found = 0;
    let mut missing = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find(".Values.") {
            let after = &rest[i + ".Values.".len()..];
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(after.len());
            let path = after[..end].trim_end_matches('.');
            rest = &after[end..];
            if path.is_empty() {
                continue;
            }
            found += 1;
            let mut cur = values;
            for seg in path.split('.') {
                match cur.get(seg) {
                    Some(next) => cur = next,
                    None => {
                        missing.push(format!(
                            "{file}:{}: .Values.{path} is not in values.yaml",
                            n + 1
                        ));
                        break;
                    }
                }
            }
        }
    }
    (found, missing)
}

#[test]
fn every_values_path_in_the_templates_exists() {
    let values = values();
    let mut total = 0;
    let mut missing = Vec::new();
    for (file, text) in templates() {
        let (found, m) = missing_value_paths(&format!("templates/{file}"), &text, &values);
        total += found;
        missing.extend(m);
    }
    assert!(
        total > 40,
        "only {total} .Values references found: is the scan broken?"
    );
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn the_values_path_check_finds_a_missing_path() {
    let values = json!({"image": {"tag": ""}, "alerts": {"sns": []}});
    let text = "a: {{ .Values.image.tag }}\nb: {{ $.Values.image.tagg | quote }}\n{{- range .Values.alerts.sns }}\n";
    let (found, missing) = missing_value_paths("t.yaml", text, &values);
    assert_eq!(found, 3);
    assert_eq!(
        missing,
        vec!["t.yaml:2: .Values.image.tagg is not in values.yaml"]
    );
}

// ---------------------------------------------------------------------------------------
// 3. De-templated YAML
// ---------------------------------------------------------------------------------------

/// Which branch of each `if`/`with`/`range` … `else` … `end` block [`detemplate`] keeps.
#[derive(Debug, Clone, Copy)]
enum Branch {
    First,
    Last,
}

/// What one `{{ … }}` action is.
#[derive(Debug, PartialEq)]
enum Action {
    Open,
    Else,
    End,
    Other,
}

fn classify(action: &str) -> Action {
    let inner = action
        .trim_start_matches("{{")
        .trim_end_matches("}}")
        .trim_start_matches('-')
        .trim_end_matches('-')
        .trim();
    match inner.split_whitespace().next().unwrap_or("") {
        "if" | "with" | "range" | "define" | "block" => Action::Open,
        "else" => Action::Else,
        "end" => Action::End,
        _ => Action::Other,
    }
}

/// The actions of one line and the line with each action replaced by `placeholder`.
fn split_actions(line: &str, placeholder: &str) -> Result<(Vec<String>, String), String> {
    let mut actions = Vec::new();
    let mut text = String::new();
    let mut rest = line;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            return Err("an action spanning several lines cannot be checked".into());
        };
        text.push_str(&rest[..start]);
        text.push_str(placeholder);
        actions.push(rest[start..start + len + 2].to_string());
        rest = &rest[start + len + 2..];
    }
    text.push_str(rest);
    Ok((actions, text))
}

/// Crude de-templating, honest about its limits:
/// - a line holding only actions (`{{- if … }}`, `{{- end }}`, `{{- include … | nindent 4 }}`,
///   `{{- toYaml . | nindent 8 }}`, comments) is dropped, so what `toYaml`/`include` would
///   insert is not seen;
/// - any other action becomes the scalar `TEMPLATED` (so `name: {{ … }}-config` reads as
///   `name: TEMPLATED-config`);
/// - of each `if`/`with`/`range` block, only the lines of the first (or of the last)
///   branch are kept; branches in the middle of an `else if` chain are not checked;
/// - an action spanning lines, or a control action on a line with other text, is an error:
///   the templates must keep those on their own lines to be checked at all.
///
/// Returns the text and, for each of its lines, the template's line number.
fn detemplate(text: &str, pick: Branch) -> Result<(String, Vec<usize>), String> {
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let (actions, rest) =
            split_actions(line, "TEMPLATED").map_err(|e| format!("line {}: {e}", n + 1))?;
        let only_actions = !actions.is_empty() && split_actions(line, "")?.1.trim().is_empty();
        let kinds: Vec<Action> = actions.iter().map(|a| classify(a)).collect();
        if !only_actions && kinds.iter().any(|k| *k != Action::Other) {
            return Err(format!(
                "line {}: a control action shares its line with text",
                n + 1
            ));
        }
        lines.push((n + 1, only_actions, kinds, rest));
    }
    // First pass: how many branches each block has (blocks numbered in opening order).
    let mut branches: Vec<usize> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    for (n, _, kinds, _) in &lines {
        for k in kinds {
            match k {
                Action::Open => {
                    stack.push(branches.len());
                    branches.push(1);
                }
                Action::Else => match stack.last() {
                    Some(&b) => branches[b] += 1,
                    None => return Err(format!("line {n}: `else` outside a block")),
                },
                Action::End => {
                    if stack.pop().is_none() {
                        return Err(format!("line {n}: `end` without a block"));
                    }
                }
                Action::Other => {}
            }
        }
    }
    if !stack.is_empty() {
        return Err(format!("{} block(s) not closed", stack.len()));
    }
    // Second pass: keep the text lines of the chosen branches.
    let mut out = String::new();
    let mut line_map = Vec::new();
    let mut open = 0;
    let mut frames: Vec<(usize, usize)> = Vec::new(); // (block, current branch)
    for (n, only_actions, kinds, rest) in lines {
        for k in &kinds {
            match k {
                Action::Open => {
                    frames.push((open, 0));
                    open += 1;
                }
                Action::Else => {
                    if let Some(f) = frames.last_mut() {
                        f.1 += 1;
                    }
                }
                Action::End => {
                    frames.pop();
                }
                Action::Other => {}
            }
        }
        let kept = frames.iter().all(|&(block, branch)| match pick {
            Branch::First => branch == 0,
            Branch::Last => branch + 1 == branches[block],
        });
        if !only_actions && kept {
            out.push_str(&rest);
            out.push('\n');
            line_map.push(n);
        }
    }
    Ok((out, line_map))
}

/// The Kubernetes objects of a de-templated template; errors name the template's lines.
fn detemplated_objects(file: &str, text: &str, pick: Branch) -> Result<Vec<Value>, String> {
    let (yaml, line_map) = detemplate(text, pick).map_err(|e| format!("{file}: {e}"))?;
    let (docs, errors) = parse_documents(&yaml);
    if let Some(e) = errors.first() {
        let line = line_map
            .get(e.mark.line.saturating_sub(1))
            .copied()
            .unwrap_or(e.mark.line);
        return Err(format!(
            "{file}:{line} ({pick:?} branches, de-templated):\n{yaml}\n{}",
            e.message
        ));
    }
    let mut objects = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.value.is_null()) {
        let v = doc.value;
        let complete = v["apiVersion"].is_string()
            && v["kind"].is_string()
            && !v["metadata"]["name"].is_null();
        if !complete {
            return Err(format!(
                "{file} ({pick:?} branches): a document without apiVersion, kind or metadata.name: {v}"
            ));
        }
        objects.push(v);
    }
    Ok(objects)
}

/// Every template, de-templated both ways: `(file, objects)`.
fn all_objects() -> Vec<(String, Branch, Vec<Value>)> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (file, text) in templates() {
        // _helpers.tpl holds `define`s and NOTES.txt is plain text: neither is YAML, so only
        // their `.Values` paths are checked (above).
        if !file.ends_with(".yaml") {
            continue;
        }
        for pick in [Branch::First, Branch::Last] {
            match detemplated_objects(&file, &text, pick) {
                Ok(objects) => out.push((file.clone(), pick, objects)),
                Err(e) => errors.push(e),
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n\n"));
    out
}

#[test]
fn every_template_is_yaml_after_detemplating() {
    let all = all_objects();
    let mut kinds = BTreeMap::new();
    for (file, pick, objects) in &all {
        assert!(!objects.is_empty(), "{file} ({pick:?}): no object");
        for o in objects {
            let kind = o["kind"].as_str().unwrap_or_default().to_string();
            kinds
                .entry(kind)
                .or_insert_with(BTreeSet::new)
                .insert(file.clone());
        }
    }
    for kind in [
        "Deployment",
        "ServiceAccount",
        "Service",
        "ConfigMap",
        "ServiceMonitor",
    ] {
        assert!(
            kinds.contains_key(kind),
            "no template makes a {kind}: {kinds:?}"
        );
    }
    assert_eq!(
        kinds["ConfigMap"].len(),
        2,
        "the config and the manifests ConfigMaps"
    );
    let monitors: Vec<&Value> = all
        .iter()
        .flat_map(|(_, _, o)| o)
        .filter(|o| o["kind"] == "ServiceMonitor")
        .collect();
    for m in monitors {
        assert_eq!(m["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(m["spec"]["endpoints"][0]["port"], "http");
        assert_eq!(m["spec"]["endpoints"][0]["path"], "/metrics");
    }
    for (file, pick, objects) in &all {
        for sa in objects.iter().filter(|o| o["kind"] == "ServiceAccount") {
            assert!(
                sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].is_string(),
                "{file} ({pick:?}): no IRSA annotation: {sa}"
            );
        }
        for s in objects.iter().filter(|o| o["kind"] == "Service") {
            assert_eq!(s["spec"]["ports"][0]["name"], "http");
            assert_eq!(s["spec"]["ports"][0]["targetPort"], "http");
        }
    }
}

#[test]
fn detemplating_catches_broken_templates() {
    // Wrong indentation under a templated value.
    let bad = "metadata:\n  name: {{ include \"x\" . }}\n   labels: {}\n";
    assert!(detemplated_objects("bad.yaml", bad, Branch::First).is_err());
    // An `if` never closed.
    let unclosed = "{{- if .Values.a }}\nkind: A\n";
    assert!(detemplate(unclosed, Branch::First).is_err());
    // A control action inside a text line.
    let inline = "kind: {{ if .Values.a }}A{{ end }}\n";
    assert!(detemplate(inline, Branch::First).is_err());
    // Both branches of an if/else are looked at.
    let branches = "{{- if .Values.a }}\nkind: A\n{{- else }}\nkind: [B\n{{- end }}\n";
    assert!(detemplated_objects("b.yaml", branches, Branch::First).is_err());
    assert!(detemplated_objects("b.yaml", branches, Branch::Last).is_err());
    let (first, _) =
        detemplate(branches.replace("[B", "B").as_str(), Branch::First).unwrap_or_default();
    let (last, _) =
        detemplate(branches.replace("[B", "B").as_str(), Branch::Last).unwrap_or_default();
    assert_eq!((first.as_str(), last.as_str()), ("kind: A\n", "kind: B\n"));
}

// ---------------------------------------------------------------------------------------
// 4. The deployment
// ---------------------------------------------------------------------------------------

#[test]
fn deployment_is_locked_down_and_probed() {
    let text = read("templates/deployment.yaml");
    for needle in [
        "runAsNonRoot: true",
        "runAsUser: 65532",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "drop:\n                - ALL",
        "type: RuntimeDefault",
        "path: /healthz",
        "path: /readyz",
        "containerPort: 8080",
        "value: \"0.0.0.0:8080\"",
        "terminationGracePeriodSeconds: {{ add (int .Values.shutdownGraceSeconds) 15 }}",
    ] {
        assert!(text.contains(needle), "deployment.yaml lacks `{needle}`");
    }
    for (file, pick, objects) in all_objects() {
        for d in objects.iter().filter(|o| o["kind"] == "Deployment") {
            let at = format!("{file} ({pick:?} branches)");
            let pod = &d["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{at}");
            assert_eq!(pod["securityContext"]["runAsUser"], 65532, "{at}");
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{at}"
            );
            let containers = pod["containers"].as_array().cloned().unwrap_or_default();
            assert_eq!(containers.len(), 1, "{at}");
            let c = &containers[0];
            let sc = &c["securityContext"];
            assert_eq!(sc["runAsNonRoot"], true, "{at}");
            assert_eq!(sc["runAsUser"], 65532, "{at}");
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{at}");
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{at}");
            assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{at}");
            assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{at}");
            assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{at}");
            assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http", "{at}");
            assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{at}");
            assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http", "{at}");
            assert_eq!(
                c["ports"],
                json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}]),
                "{at}"
            );
            let args: Vec<&str> = c["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(args.first(), Some(&"run"), "{at}");
            assert!(
                args.iter().all(|a| !a.starts_with("--")),
                "{at}: settings go through env vars: {args:?}"
            );
            let env = c["env"].as_array().cloned().unwrap_or_default();
            let value_of = |name: &str| {
                env.iter()
                    .find(|e| e["name"] == name)
                    .map(|e| e["value"].clone())
            };
            // mooring refuses MOORING_LEADER_ELECTION, even `false`, without a lease table.
            if let Some(on) = value_of("MOORING_LEADER_ELECTION") {
                assert_eq!(on, "true", "{at}");
                assert!(value_of("MOORING_LEASE_TABLE").is_some(), "{at}");
            }
            for e in &env {
                let name = e["name"].as_str().unwrap_or_default();
                if e.get("valueFrom").is_some() {
                    assert!(
                        e["valueFrom"]["secretKeyRef"]["key"].is_string(),
                        "{at}: {e}"
                    );
                    assert!(e.get("value").is_none(), "{at}: {e}");
                } else {
                    // Literal values only for settings, never for secrets.
                    assert!(
                        !name.contains("SECRET")
                            && !name.contains("URL")
                            && !name.contains("TOKEN"),
                        "{at}: {name} is set from a literal value"
                    );
                }
            }
        }
    }
}

/// Env vars the deployment may set that are not `mooring run` arguments: the region and the
/// log filter (read by the AWS SDK and tracing), and the HMAC secret the operator config
/// names.
const NOT_CLI_ENV: &[&str] = &["AWS_REGION", "RUST_LOG", "MOORING_WEBHOOK_SECRET"];

#[test]
fn deployment_env_vars_are_read_by_the_binary() {
    let mut read_by_cli = BTreeSet::new();
    let cmd = mooring::cli::Cli::command();
    let run = cmd.find_subcommand("run").expect("a `run` subcommand");
    for arg in cmd.get_arguments().chain(run.get_arguments()) {
        if let Some(env) = arg.get_env() {
            read_by_cli.insert(env.to_string_lossy().into_owned());
        }
    }
    let mut set_by_chart = BTreeSet::new();
    for (_, _, objects) in all_objects() {
        for d in objects.iter().filter(|o| o["kind"] == "Deployment") {
            for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(name) = e["name"].as_str().filter(|n| *n != "TEMPLATED") {
                    set_by_chart.insert(name.to_string());
                }
            }
        }
    }
    let unknown: Vec<&String> = set_by_chart
        .iter()
        .filter(|n| !read_by_cli.contains(*n) && !NOT_CLI_ENV.contains(&n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "the chart sets env vars mooring does not read: {unknown:?}"
    );
    for needed in [
        "MOORING_LISTEN",
        "MOORING_INTERVAL",
        "MOORING_MODE",
        "MOORING_CONFIG",
        "MOORING_PRUNE",
        "MOORING_SHUTDOWN_GRACE",
        "MOORING_AWS_RATE_LIMIT",
        "MOORING_LOG_FORMAT",
        "MOORING_GIT_URL",
        "MOORING_GIT_BRANCH",
        "MOORING_GIT_PATH",
        "MOORING_WORK_DIR",
        "MOORING_LEADER_ELECTION",
        "MOORING_LEASE_TABLE",
        "AWS_REGION",
    ] {
        assert!(
            set_by_chart.contains(needed),
            "the deployment does not set {needed}"
        );
    }
}

/// The operator config is built in `_helpers.tpl` from `dict`s whose keys must be the
/// binary's config fields, and every secret in it is an `env` reference.
#[test]
fn operator_config_matches_the_binary_and_names_env_vars_only() {
    let helpers = read("templates/_helpers.tpl");
    let start = helpers
        .find("define \"mooring.operatorConfig\"")
        .expect("a mooring.operatorConfig template");
    let body = &helpers[start..];
    let body = &body[..body.find("{{- end }}\n\n").unwrap_or(body.len())];
    let mut keys = BTreeSet::new();
    let mut rest = body;
    while let Some(i) = rest.find("dict \"") {
        rest = &rest[i + 6..];
        let key = &rest[..rest.find('"').unwrap_or(0)];
        // The first key of each dict; the alerts dict's other keys are checked below.
        keys.insert(key.to_string());
    }
    let expected: BTreeSet<String> = [
        "alerts",
        "webhooks",
        "url",
        "env",
        "webhookUrl",
        "topicArn",
        "secret",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(keys, expected, "dict keys of mooring.operatorConfig");
    for needle in [
        "dict \"webhooks\" $webhooks \"slack\" $slack \"sns\" $sns",
        "set $config \"webhook\"",
        "dict \"env\" \"MOORING_WEBHOOK_SECRET\"",
    ] {
        assert!(
            body.contains(needle),
            "mooring.operatorConfig lacks `{needle}`"
        );
    }
    for inline in ["\"value\"", "\"file\""] {
        assert!(
            !body.contains(inline),
            "mooring.operatorConfig must not use {inline} secrets"
        );
    }
    // The same shape, as the binary reads it (unknown fields are errors there).
    let rendered = json!({
        "alerts": {
            "webhooks": [{"url": {"env": "MOORING_ALERT_WEBHOOK_URL_0"}}],
            "slack": [{"webhookUrl": {"env": "MOORING_SLACK_WEBHOOK_URL_0"}}],
            "sns": [{"topicArn": "arn:aws:sns:eu-west-1:123456789012:mooring-alerts"}]
        },
        "webhook": {"secret": {"env": "MOORING_WEBHOOK_SECRET"}}
    });
    let parsed: Result<mooring::config::OperatorConfig, _> = serde_json::from_value(rendered);
    assert!(
        parsed.is_ok(),
        "mooring cannot read the chart's config: {parsed:?}"
    );
    let empty = json!({"alerts": {"webhooks": [], "slack": [], "sns": []}});
    let parsed: Result<mooring::config::OperatorConfig, _> = serde_json::from_value(empty);
    assert!(
        parsed.is_ok(),
        "mooring cannot read the chart's empty config: {parsed:?}"
    );
    // The deployment fills the same env vars from secretKeyRefs.
    let deployment = read("templates/deployment.yaml");
    for needle in [
        "name: {{ include \"mooring.alertWebhookEnv\" $i }}",
        "name: {{ include \"mooring.slackWebhookEnv\" $i }}",
        "name: MOORING_WEBHOOK_SECRET",
    ] {
        assert!(
            deployment.contains(needle),
            "deployment.yaml lacks `{needle}`"
        );
    }
    for needle in [
        "include \"mooring.alertWebhookEnv\" $i",
        "include \"mooring.slackWebhookEnv\" $i",
    ] {
        assert!(
            body.contains(needle),
            "mooring.operatorConfig lacks `{needle}`"
        );
    }
}
