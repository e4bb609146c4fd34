//! The Helm chart in `charts/mooring`.
//!
//! 1. `Chart.yaml` and `values.yaml` parse; `values.yaml` (and a fuller example) validate
//!    against `values.schema.json` (draft-07, as Helm reads it), and wrong values — a wrong
//!    type, an unknown key, a plain-text secret where a `secretKeyRef` object belongs, a
//!    broken cross-field rule — are rejected at the expected place.
//! 2. Every `.Values.a.b.c` path in the templates exists in `values.yaml` (Helm renders a
//!    missing one as empty, silently).
//! 3. Helm's own engine (Helm's Go SDK through PyPI `helm-python-sdk`, run by
//!    tests/helm/render.py; no helm binary) renders the chart for several configurations,
//!    `helm lint --strict` finds nothing, and the checks read the rendered objects: the PDB,
//!    Service, ServiceMonitor and NetworkPolicy select the pods, the PrometheusRule's
//!    expressions name metrics mooring exports, each pod advertises its address for webhook
//!    forwarding, `extraEnv` and `podSecurityContext` reach the pod.
//! 4. The deployment runs as non-root with a read-only root filesystem, no privilege
//!    escalation, no capabilities and the RuntimeDefault seccomp profile, probes `/healthz`
//!    and `/readyz`, and passes secrets only through `secretKeyRef`.
//!
//! Plus: every value in `values.yaml` has a comment, the env vars the deployment sets are
//! ones the binary reads, and the operator config the chart renders has the shape
//! `mooring::config::OperatorConfig` accepts.

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
// 3. Rendered by Helm's engine
// ---------------------------------------------------------------------------------------

/// The release the chart is rendered as.
const RELEASE: &str = "prod";
/// Its namespace.
const NAMESPACE: &str = "ops";

/// Runs tests/helm/render.py (Helm's Go SDK through PyPI `helm-python-sdk`, which
/// scripts/test.sh installs into .venv) with `request`; its JSON answer.
fn helm(request: &Value) -> Value {
    use std::io::Write;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/helm/render.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python from .venv (scripts/test.sh installs helm-python-sdk)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write the request");
    let out = child.wait_with_output().expect("render.py");
    assert!(
        out.status.success(),
        "render.py failed (is helm-python-sdk installed in .venv?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "render.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The objects Helm renders from `values`, each with its template's file name; Helm's
/// error (schema or template) otherwise.
fn render(values: &Value) -> Result<Vec<(String, Value)>, String> {
    let answer = helm(&json!({"values": values, "release": RELEASE, "namespace": NAMESPACE}));
    if let Some(e) = answer["error"].as_str() {
        return Err(e.to_string());
    }
    let mut objects = Vec::new();
    let manifests = answer["manifests"].as_object().cloned().unwrap_or_default();
    for (path, text) in manifests {
        let file = path.rsplit('/').next().unwrap_or_default().to_string();
        if !file.ends_with(".yaml") {
            continue; // NOTES.txt
        }
        let text = text.as_str().unwrap_or_default();
        let (docs, errors) = parse_documents(text);
        if let Some(e) = errors.first() {
            return Err(format!(
                "{path}:{}:{}: {} in\n{text}",
                e.mark.line, e.mark.col, e.message
            ));
        }
        for doc in docs.into_iter().filter(|d| !d.value.is_null()) {
            objects.push((file.clone(), doc.value));
        }
    }
    Ok(objects)
}

/// [`render`] that must succeed.
fn rendered(what: &str, values: &Value) -> Vec<Value> {
    render(values)
        .unwrap_or_else(|e| panic!("{what}: helm refused to render: {e}"))
        .into_iter()
        .map(|(_, o)| o)
        .collect()
}

/// The one object of `kind` (panics when there is none or several).
fn only<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} expected, got {}", found.len());
    found[0]
}

/// The defaults plus what `helm install` needs: a region and a manifest.
fn installable() -> Value {
    let mut v = values();
    set(&mut v, "/aws/region", json!("eu-west-1"));
    set(
        &mut v,
        "/manifests",
        json!({"web.yaml": "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\n"}),
    );
    v
}

/// [`full_values`] with every optional object on.
fn everything() -> Value {
    let mut v = full_values();
    set(&mut v, "/prometheusRule/enabled", json!(true));
    set(&mut v, "/prometheusRule/labels", json!({"release": "prom"}));
    set(&mut v, "/networkPolicy/enabled", json!(true));
    v
}

/// The configurations every check of the rendered objects runs on.
fn variants() -> Vec<(&'static str, Value)> {
    let mut single = installable();
    set(&mut single, "/replicaCount", json!(1));
    set(&mut single, "/leaderElection/enabled", json!(false));
    let mut existing = installable();
    set(&mut existing, "/manifests", json!({}));
    set(
        &mut existing,
        "/source/directory/existingConfigMap",
        json!("stacks"),
    );
    vec![
        ("defaults", installable()),
        ("everything", everything()),
        ("one replica, no leader election", single),
        ("an existing ConfigMap", existing),
    ]
}

/// The set of the `key: value` pairs of a label map.
fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// True when every label of `selector` is on `pod`.
fn selects(selector: &Value, pod: &BTreeMap<String, String>) -> bool {
    let s = labels(selector);
    !s.is_empty() && s.iter().all(|(k, v)| pod.get(k) == Some(v))
}

/// The labels of the Deployment's pods.
fn pod_labels(objects: &[Value]) -> BTreeMap<String, String> {
    labels(&only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"])
}

#[test]
fn helm_renders_every_variant_into_complete_objects() {
    for (what, v) in variants() {
        let objects = render(&v).unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (file, o) in &objects {
            assert!(
                o["apiVersion"].is_string() && o["kind"].is_string(),
                "{what}: {file}: {o}"
            );
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            assert!(name.starts_with(RELEASE), "{what}: {file}: name {name}");
            kinds
                .entry(o["kind"].as_str().unwrap_or_default().to_string())
                .or_default()
                .push(file.clone());
        }
        let mut expected = vec![
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ];
        if what == "everything" {
            expected.extend(["NetworkPolicy", "PrometheusRule", "ServiceMonitor"]);
        }
        expected.sort_unstable();
        assert_eq!(
            kinds.keys().map(String::as_str).collect::<Vec<_>>(),
            expected,
            "{what}"
        );
        let config_maps = kinds["ConfigMap"].len();
        let manifests_map = what != "an existing ConfigMap" && what != "everything";
        assert_eq!(
            config_maps,
            if manifests_map { 2 } else { 1 },
            "{what}: the config (and the manifests) ConfigMaps: {kinds:?}"
        );
    }
}

#[test]
fn helm_lint_finds_no_warning() {
    for (what, v) in variants() {
        let answer =
            helm(&json!({"values": v, "release": RELEASE, "namespace": NAMESPACE, "lint": true}));
        assert!(answer["error"].is_null(), "{what}: {answer}");
        let report = &answer["lint"];
        assert!(
            report["errors"].as_array().is_some_and(Vec::is_empty),
            "{what}: {report}"
        );
        // Severity 1 is info (e.g. "icon is recommended"); 2 warning, 3 error.
        let serious: Vec<&Value> = report["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["severity"].as_u64().unwrap_or(3) > 1)
            .collect();
        assert!(serious.is_empty(), "{what}: {serious:#?}");
    }
}

#[test]
fn helm_refuses_what_the_chart_refuses() {
    // The schema, as Helm applies it.
    let mut v = installable();
    set(&mut v, "/replicaCount", json!("two"));
    let e = render(&v).unwrap_err();
    assert!(e.contains("/replicaCount") && e.contains("integer"), "{e}");
    // `required` and `fail` in the templates.
    let e = render(&values()).unwrap_err();
    assert!(e.contains("aws.region is required"), "{e}");
    let mut v = installable();
    set(&mut v, "/manifests", json!({}));
    let e = render(&v).unwrap_err();
    assert!(e.contains("the directory source needs manifests"), "{e}");
}

#[test]
fn service_servicemonitor_and_serviceaccount_point_at_the_pods() {
    let objects = rendered("everything", &everything());
    let pods = pod_labels(&objects);
    let deployment = only(&objects, "Deployment");
    assert!(selects(
        &deployment["spec"]["selector"]["matchLabels"],
        &pods
    ));
    let service = only(&objects, "Service");
    assert!(selects(&service["spec"]["selector"], &pods), "{service}");
    assert_eq!(service["spec"]["ports"][0]["name"], "http");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let monitor = only(&objects, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert!(selects(
        &monitor["spec"]["selector"]["matchLabels"],
        &labels(&service["metadata"]["labels"])
    ));
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!([NAMESPACE])
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let sa = only(&objects, "ServiceAccount");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/mooring"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        sa["metadata"]["name"]
    );
}

#[test]
fn the_disruption_budget_covers_the_pods_and_lets_a_drain_through() {
    for (what, v) in variants() {
        let objects = rendered(what, &v);
        let pdb = only(&objects, "PodDisruptionBudget");
        assert_eq!(pdb["apiVersion"], "policy/v1", "{what}");
        assert!(
            selects(
                &pdb["spec"]["selector"]["matchLabels"],
                &pod_labels(&objects)
            ),
            "{what}: the PDB does not select the pods: {pdb}"
        );
        assert_eq!(pdb["spec"]["maxUnavailable"], 1, "{what}");
        assert!(pdb["spec"].get("minAvailable").is_none(), "{what}");
    }
    let mut v = installable();
    set(&mut v, "/podDisruptionBudget/enabled", json!(false));
    let objects = rendered("no PDB", &v);
    assert!(!objects.iter().any(|o| o["kind"] == "PodDisruptionBudget"));
}

#[test]
fn the_network_policy_lets_replicas_forward_webhooks_and_named_peers_in() {
    let mut v = everything();
    let prometheus = json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}});
    set(&mut v, "/networkPolicy/ingressFrom", json!([prometheus]));
    let git_ssh = json!({"ports": [{"port": 22, "protocol": "TCP"}]});
    set(&mut v, "/networkPolicy/extraEgress", json!([git_ssh]));
    let objects = rendered("network policy", &v);
    let pods = pod_labels(&objects);
    let policy = only(&objects, "NetworkPolicy");
    let spec = &policy["spec"];
    assert!(
        selects(&spec["podSelector"]["matchLabels"], &pods),
        "{policy}"
    );
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    let ingress = spec["ingress"].as_array().cloned().unwrap_or_default();
    assert_eq!(ingress.len(), 1, "{policy}");
    let from = ingress[0]["from"].as_array().cloned().unwrap_or_default();
    assert!(
        from.iter()
            .any(|p| selects(&p["podSelector"]["matchLabels"], &pods)),
        "the replicas cannot reach each other: {policy}"
    );
    assert!(from.contains(&prometheus), "{policy}");
    assert_eq!(
        ingress[0]["ports"],
        json!([{"port": "http", "protocol": "TCP"}])
    );
    let egress = spec["egress"].as_array().cloned().unwrap_or_default();
    let allows = |port: u64, protocol: &str| {
        egress.iter().any(|rule| {
            rule["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["port"] == port && p["protocol"] == protocol)
        })
    };
    assert!(allows(53, "UDP") && allows(53, "TCP"), "DNS: {policy}");
    assert!(allows(443, "TCP"), "AWS APIs: {policy}");
    assert!(
        egress.iter().any(|rule| {
            rule["to"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| selects(&p["podSelector"]["matchLabels"], &pods))
                && rule["ports"][0]["port"] == 8080
        }),
        "the leader's port: {policy}"
    );
    assert!(egress.contains(&git_ssh), "{policy}");
    assert!(
        !rendered("defaults", &installable())
            .iter()
            .any(|o| o["kind"] == "NetworkPolicy"),
        "off by default"
    );
}

/// `(metric name, label matchers)` of every `mooring_…{…}` selector in `expr`.
fn selectors(expr: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("mooring_") {
        let after = &rest[i..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = after[..end].to_string();
        let mut matchers = BTreeMap::new();
        rest = &after[end..];
        if let Some(body) = rest.strip_prefix('{') {
            let close = body.find('}').expect("a closed selector");
            for m in body[..close].split(',').filter(|m| !m.trim().is_empty()) {
                let (k, v) = m.split_once('=').expect("label=\"value\"");
                matchers.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
            }
            rest = &body[close..];
        }
        out.push((name, matchers));
    }
    out
}

#[test]
fn the_prometheus_rule_watches_this_release_with_the_alerts_people_need() {
    let objects = rendered("everything", &everything());
    let service = only(&objects, "Service");
    let job = service["metadata"]["name"].as_str().unwrap_or_default();
    let rule = only(&objects, "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    let rules: Vec<Value> = rule["spec"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    let by_name: BTreeMap<String, Value> = rules
        .iter()
        .map(|r| {
            (
                r["alert"].as_str().unwrap_or_default().to_string(),
                r.clone(),
            )
        })
        .collect();
    assert_eq!(
        by_name.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "MooringDriftNotCorrected",
            "MooringNoLeader",
            "MooringResourceFailing",
            "MooringStuck"
        ]
    );
    for (alert, r) in &by_name {
        let expr = r["expr"].as_str().unwrap_or_default();
        let used = selectors(expr);
        assert!(!used.is_empty(), "{alert}: no mooring metric in `{expr}`");
        // That each metric exists: src/metrics.rs's
        // the_charts_alert_rules_name_exported_metrics, on a registry a pass has filled.
        for (metric, matchers) in &used {
            assert!(metric.starts_with("mooring_"), "{alert}: {metric}");
            assert_eq!(
                matchers.get("job").map(String::as_str),
                Some(job),
                "{alert}: {expr}"
            );
            assert_eq!(
                matchers.get("namespace").map(String::as_str),
                Some(NAMESPACE),
                "{alert}: {expr}"
            );
            if let Some(state) = matchers.get("state") {
                assert!(
                    mooring::reconcile::Outcome::STATES.contains(&state.as_str()),
                    "{alert}: no resource state `{state}`"
                );
            }
        }
        assert_eq!(r["labels"]["severity"], "warning", "{alert}");
        for annotation in ["summary", "description"] {
            assert!(r["annotations"][annotation].is_string(), "{alert}: {r}");
        }
    }
    let metric_of = |alert: &str| selectors(by_name[alert]["expr"].as_str().unwrap_or_default());
    let stuck = &by_name["MooringStuck"];
    assert_eq!(
        metric_of("MooringStuck")[0].0,
        "mooring_last_successful_full_pass_timestamp_seconds"
    );
    let expr = stuck["expr"].as_str().unwrap_or_default();
    assert!(
        expr.starts_with("time() - max") && expr.contains("> 900 or absent("),
        "{expr}"
    );
    let failing = metric_of("MooringResourceFailing");
    assert_eq!(failing[0].0, "mooring_resource_state");
    assert_eq!(failing[0].1["state"], "failed");
    assert_eq!(by_name["MooringResourceFailing"]["for"], "10m");
    // Prometheus' own templates reach Prometheus (escaped from Helm).
    assert!(
        by_name["MooringResourceFailing"]["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("{{ $labels.kind }}/{{ $labels.name }}")),
        "{}",
        by_name["MooringResourceFailing"]
    );
    // Drift counts on the leader only: a standby holds drift by design.
    let drift: Vec<String> = metric_of("MooringDriftNotCorrected")
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(drift, ["mooring_resource_drifted", "mooring_leader"]);
    assert_eq!(by_name["MooringDriftNotCorrected"]["for"], "15m");
    // Without leader election there is no lease to lose.
    let mut single = installable();
    set(&mut single, "/replicaCount", json!(1));
    set(&mut single, "/leaderElection/enabled", json!(false));
    set(&mut single, "/prometheusRule/enabled", json!(true));
    set(&mut single, "/prometheusRule/stuckAfterSeconds", json!(600));
    let objects = rendered("one replica", &single);
    let rule = only(&objects, "PrometheusRule");
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert!(!alerts.contains(&"MooringNoLeader"), "{alerts:?}");
    assert!(
        rule["spec"]["groups"][0]["rules"][0]["expr"]
            .as_str()
            .is_some_and(|e| e.contains("> 600 or absent(")),
        "{rule}"
    );
}

/// The container's env as (name, entry).
fn env_of(objects: &[Value]) -> Vec<(String, Value)> {
    only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_string(),
                e.clone(),
            )
        })
        .collect()
}

#[test]
fn each_pod_advertises_its_address_for_webhook_forwarding() {
    let objects = rendered("defaults", &installable());
    let env = env_of(&objects);
    let at = |name: &str| env.iter().position(|(n, _)| n == name);
    let (Some(ip), Some(url)) = (at("POD_IP"), at("MOORING_ADVERTISE_URL")) else {
        panic!("no POD_IP / MOORING_ADVERTISE_URL: {env:?}");
    };
    assert!(
        ip < url,
        "Kubernetes expands $(POD_IP) only from earlier entries"
    );
    assert_eq!(
        env[ip].1["valueFrom"],
        json!({"fieldRef": {"fieldPath": "status.podIP"}})
    );
    let container = &only(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let port = container["ports"][0]["containerPort"]
        .as_u64()
        .unwrap_or_default();
    let listen = env[at("MOORING_LISTEN").unwrap()].1["value"].clone();
    assert_eq!(listen, format!("0.0.0.0:{port}"));
    let advertised = env[url].1["value"].as_str().unwrap_or_default().to_string();
    assert_eq!(advertised, format!("http://$(POD_IP):{port}"));
    // The binary accepts it (with an address in place of the variable).
    let concrete = advertised.replace("$(POD_IP)", "10.0.1.7");
    assert_eq!(
        mooring::webhook::parse_advertise_url(&concrete).as_deref(),
        Ok(concrete.as_str())
    );
    for (what, pointer, value) in [
        (
            "forwarding off",
            "/leaderElection/forwardWebhooks",
            json!(false),
        ),
        (
            "no leader election",
            "/leaderElection/enabled",
            json!(false),
        ),
    ] {
        let mut v = installable();
        set(&mut v, "/replicaCount", json!(1));
        set(&mut v, pointer, value);
        let env = env_of(&rendered(what, &v));
        assert!(
            !env.iter()
                .any(|(n, _)| n == "MOORING_ADVERTISE_URL" || n == "POD_IP"),
            "{what}: {env:?}"
        );
    }
}

#[test]
fn extra_env_and_the_pod_security_context_reach_the_pod() {
    let mut v = installable();
    let proxy = json!({"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"});
    let token = json!({"name": "GITHUB_TOKEN", "valueFrom": {"secretKeyRef": {"name": "gh", "key": "token"}}});
    set(&mut v, "/extraEnv", json!([proxy, token]));
    set(
        &mut v,
        "/podSecurityContext",
        json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 2000,
               "supplementalGroups": [3000], "seccompProfile": {"type": "RuntimeDefault"}}),
    );
    let objects = rendered("extras", &v);
    let env: Vec<Value> = env_of(&objects).into_iter().map(|(_, e)| e).collect();
    assert_eq!(env[env.len() - 2..], [proxy, token], "appended as given");
    let pod = &only(&objects, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["fsGroup"], 2000);
    assert_eq!(pod["securityContext"]["supplementalGroups"], json!([3000]));
    // The schema keeps the pod non-root and secrets out of plain values.
    let validator = validator();
    for (what, pointer, value, at) in [
        (
            "root",
            "/podSecurityContext/runAsNonRoot",
            json!(false),
            "/podSecurityContext/runAsNonRoot",
        ),
        (
            "a plain-text token",
            "/extraEnv",
            json!([{"name": "GITHUB_TOKEN", "value": "ghp_x"}]),
            "/extraEnv/0",
        ),
        (
            "neither value nor valueFrom",
            "/extraEnv",
            json!([{"name": "X"}]),
            "/extraEnv/0",
        ),
    ] {
        let mut v = installable();
        set(&mut v, pointer, value);
        let errors = schema_errors(&validator, &v);
        assert!(
            errors.iter().any(|(p, _)| p == at),
            "{what}: expected an error at {at}: {errors:?}"
        );
        assert!(render(&v).is_err(), "{what}: helm rendered it");
    }
}

// ---------------------------------------------------------------------------------------
// 4. The deployment
// ---------------------------------------------------------------------------------------

#[test]
fn deployment_is_locked_down_and_probed() {
    for (what, values) in variants() {
        let objects = rendered(what, &values);
        let d = only(&objects, "Deployment");
        let at = what;
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{at}");
        assert_eq!(pod["securityContext"]["runAsUser"], 65532, "{at}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{at}"
        );
        assert_eq!(pod["terminationGracePeriodSeconds"], 30 + 15, "{at}");
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
            if let Some(from) = e.get("valueFrom") {
                assert!(e.get("value").is_none(), "{at}: {e}");
                // Secrets come from Secrets; the only other source is the pod's own IP.
                let secret = from["secretKeyRef"]["key"].is_string();
                let pod_ip = name == "POD_IP" && from["fieldRef"]["fieldPath"] == "status.podIP";
                assert!(secret || pod_ip, "{at}: {e}");
            } else {
                // Literal values only for settings, never for secrets.
                assert!(
                    !name.contains("SECRET")
                        && !name.contains("TOKEN")
                        && (!name.contains("URL") || name == "MOORING_ADVERTISE_URL"),
                    "{at}: {name} is set from a literal value"
                );
            }
        }
    }
}

/// Env vars the deployment may set that are not `mooring run` arguments: the region and the
/// log filter (read by the AWS SDK and tracing), the HMAC secret the operator config
/// names, and the pod IP that MOORING_ADVERTISE_URL is built from.
const NOT_CLI_ENV: &[&str] = &["AWS_REGION", "RUST_LOG", "MOORING_WEBHOOK_SECRET", "POD_IP"];

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
    for (what, values) in variants() {
        for (name, _) in env_of(&rendered(what, &values)) {
            set_by_chart.insert(name);
        }
    }
    // The names the sinks' env vars are built from, once each.
    set_by_chart.retain(|n| {
        !n.starts_with("MOORING_ALERT_WEBHOOK_URL_") && !n.starts_with("MOORING_SLACK_WEBHOOK_URL_")
    });
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
        "MOORING_ADVERTISE_URL",
        "MOORING_WEBHOOK_SECRET",
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

/// Durations in humantime's combined form reach the binary, which parses them.
#[test]
fn combined_durations_pass_the_schema_and_the_binary() {
    let validator = validator();
    let mut v = installable();
    set(&mut v, "/interval", json!("1m30s"));
    assert!(
        validator.is_valid(&v),
        "{:?}",
        schema_errors(&validator, &v)
    );
    let env = env_of(&rendered("1m30s", &v));
    let interval = env
        .iter()
        .find(|(n, _)| n == "MOORING_INTERVAL")
        .and_then(|(_, e)| e["value"].as_str())
        .unwrap_or_default()
        .to_string();
    assert_eq!(interval, "1m30s");
    assert_eq!(
        mooring::cli::parse_duration(&interval),
        Ok(std::time::Duration::from_secs(90))
    );
    for bad in ["1m30", "0", "1 minute", "m"] {
        set(&mut v, "/interval", json!(bad));
        assert!(!validator.is_valid(&v), "{bad} accepted by the schema");
    }
}

/// When no replica reports at all (a crash loop, the Deployment scaled to 0, an image that
/// cannot be pulled) there is no series to compare: `MooringStuck` fires on its absence
/// too, or the one case that most needs an alert would raise none.
#[test]
fn the_stuck_alert_fires_when_no_replica_reports() {
    let objects = rendered("everything", &everything());
    let job = only(&objects, "Service")["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let rule = only(&objects, "PrometheusRule");
    let stuck = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["alert"] == "MooringStuck")
        .cloned()
        .expect("MooringStuck");
    let expr = stuck["expr"].as_str().unwrap_or_default();
    assert!(
        expr.ends_with(&format!(
            "or absent(mooring_last_successful_full_pass_timestamp_seconds{{job=\"{job}\",namespace=\"{NAMESPACE}\"}})"
        )),
        "{expr}"
    );
}
