//! Values from other resources: a spec field that takes `{from: Kind/name, field: …}`
//! instead of a literal gets the value from that manifest's live resource, as observed in
//! the same pass.
//!
//! A kind that others can read declares its readable fields ([`Declared::FIELDS`]) and
//! reads them from its observation ([`super::Resource::fields`]). A kind whose spec takes
//! such values lists where ([`Declared::values`]). The rest is here and in
//! [`super::Typed`]: the schema (which kinds and fields exist), the checks against the set
//! (the source exists, no cycle), the dependency on the source, and resolution: the
//! manifest with every value it can resolve written in as a literal, the others shown as
//! [`UNKNOWN`] and applied only once known.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::{Declared, Visitor};
use crate::manifest::error::Findings;
use crate::manifest::yaml::escape_segment;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::FieldChange;
use crate::reconcile::diff::{looks_secret, redact};

/// What plan shows for a value read from a resource that does not exist yet.
pub const UNKNOWN: &str = "(known after apply)";

/// A field other manifests can read from a kind's live resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The name `field:` takes, e.g. `primaryEndpoint.address`.
    pub name: &'static str,
    /// What it holds, for the schema and the README.
    pub doc: &'static str,
}

/// A spec value: written in the manifest, or read from another manifest's live resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// Written in the manifest (numbers and booleans become strings).
    Literal(String),
    /// Read from another resource.
    From(ValueFrom),
}

/// `{from: Kind/name, field: …, format: …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueFrom {
    /// The manifest read from, as `Kind/name`.
    pub from: String,
    /// The field of its live resource.
    pub field: String,
    /// A text with one `{}`, where the value goes (e.g. `https://{}/api/cron`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl Value {
    /// The value; [`UNKNOWN`] for a `from:` not resolved (yet).
    pub fn as_str(&self) -> &str {
        match self {
            Value::Literal(s) => s,
            Value::From(_) => UNKNOWN,
        }
    }

    /// The `from:` reference, if it is one.
    pub fn from(&self) -> Option<&ValueFrom> {
        match self {
            Value::From(f) => Some(f),
            Value::Literal(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(serde_json::Number),
            Bool(bool),
            From(ValueFrom),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Text(s) => Value::Literal(s),
            Raw::Number(n) => Value::Literal(n.to_string()),
            Raw::Bool(b) => Value::Literal(b.to_string()),
            Raw::From(f) => Value::From(f),
        })
    }
}

impl ValueFrom {
    /// The kind and name `from:` names; `None` when it is not `Kind/name` of a known kind.
    pub fn source(&self) -> Option<(Kind, &str)> {
        let (kind, name) = self.from.split_once('/')?;
        Some((Kind::parse(kind)?, name))
    }

    /// The value as the field gets it: `value` put into `format`.
    pub fn render(&self, value: &str) -> String {
        match &self.format {
            Some(f) => f.replacen("{}", value, 1),
            None => value.to_string(),
        }
    }
}

/// The readable fields of `kind`.
pub fn fields_of(kind: Kind) -> &'static [Field] {
    struct Fields;
    impl Visitor for Fields {
        type Out = &'static [Field];
        fn visit<K: Declared>(&mut self) -> &'static [Field] {
            K::FIELDS
        }
    }
    kind.visit(&mut Fields)
}

/// The kinds other manifests can read from.
pub fn readable_kinds() -> Vec<Kind> {
    Kind::ALL
        .iter()
        .copied()
        .filter(|k| !fields_of(*k).is_empty())
        .collect()
}

fn schema_of(scalars: bool) -> Schema {
    let kinds = readable_kinds();
    let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let by_kind: Vec<serde_json::Value> = kinds
        .iter()
        .map(|k| {
            let fields: Vec<&str> = fields_of(*k).iter().map(|f| f.name).collect();
            serde_json::json!({
                "if": {"properties": {"from": {"pattern": format!("^{k}/")}}, "required": ["from"]},
                "then": {"properties": {"field": {"enum": fields}}},
            })
        })
        .collect();
    let listing: Vec<String> = kinds
        .iter()
        .map(|k| {
            let fields: Vec<&str> = fields_of(*k).iter().map(|f| f.name).collect();
            format!("{k}: {}", fields.join(", "))
        })
        .collect();
    let types: &[&str] = if scalars {
        &["string", "number", "boolean", "object"]
    } else {
        &["string", "object"]
    };
    json_schema!({
        "description": format!(
            "A value, or `{{from: Kind/name, field: …, format: …}}` to read it from another manifest's live resource (created first). Readable fields: {}.",
            listing.join("; ")
        ),
        "type": types,
        "properties": {
            "from": {
                "description": "The manifest to read from, as `Kind/name`.",
                "type": "string",
                "pattern": format!("^({})/[A-Za-z0-9][A-Za-z0-9_-]*$", names.join("|")),
            },
            "field": {
                "description": "The field of its live resource.",
                "type": "string",
            },
            "format": {
                "description": "Where the value goes in the text: one `{}`, e.g. `https://{}/api/cron`.",
                "type": "string",
                "pattern": "\\{\\}",
            },
        },
        "required": ["from", "field"],
        "additionalProperties": false,
        "allOf": by_kind,
    })
}

impl JsonSchema for Value {
    fn schema_name() -> Cow<'static, str> {
        "Value".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schema_of(false)
    }
}

/// The schema of an environment value: a string, number, boolean or `from:`.
pub struct ScalarValue;

impl JsonSchema for ScalarValue {
    fn schema_name() -> Cow<'static, str> {
        "ScalarValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schema_of(true)
    }
}

/// The `from:` values of `m` (pointer of the value in the document, reference).
pub fn values_of<K: Declared>(m: &Manifest<K::Spec>) -> Vec<(String, &ValueFrom)> {
    K::values(&m.spec)
        .into_iter()
        .filter_map(|(p, v)| Some((p, v.from()?)))
        .collect()
}

/// The manifests `m` reads values from, as dependencies.
pub fn sources<K: Declared>(m: &Manifest<K::Spec>) -> Vec<(Kind, String)> {
    values_of::<K>(m)
        .into_iter()
        .filter_map(|(_, v)| v.source().map(|(k, n)| (k, n.to_string())))
        .collect()
}

/// True when some manifest of `set` reads a value from `kind`/`name`.
pub fn is_read(set: &ManifestSet, kind: Kind, name: &str) -> bool {
    struct Reads<'a>(&'a ManifestSet, Kind, &'a str);
    impl Visitor for Reads<'_> {
        type Out = bool;
        fn visit<K: Declared>(&mut self) -> bool {
            K::manifests(self.0).iter().any(|m| {
                sources::<K>(m)
                    .iter()
                    .any(|(k, n)| *k == self.1 && n == self.2)
            })
        }
    }
    Kind::ALL
        .iter()
        .any(|k| k.visit(&mut Reads(set, kind, name)))
}

/// Checks `m`'s `from:` values against the set: the source exists, has the field, and is
/// applied before `m` (a kind applied later, or a cycle, could never be resolved).
pub fn check<K: Declared>(m: &Manifest<K::Spec>, set: &ManifestSet, f: &mut Findings<'_>) {
    for (pointer, v) in values_of::<K>(m) {
        let Some((kind, name)) = v.source() else {
            f.at(
                &format!("{pointer}/from"),
                format!(
                    "`{}` is not `Kind/name` of a kind with readable fields ({})",
                    v.from,
                    readable_kinds()
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            continue;
        };
        let known: Vec<String> = set
            .ids()
            .into_iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n)
            .collect();
        if !known.iter().any(|n| n == name) {
            f.at(
                &format!("{pointer}/from"),
                format!(
                    "no {kind} named `{name}` in the manifests (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
        let fields = fields_of(kind);
        if !fields.iter().any(|x| x.name == v.field) {
            let names: Vec<&str> = fields.iter().map(|x| x.name).collect();
            f.at(
                &format!("{pointer}/field"),
                format!(
                    "{kind} has no readable field `{}`{}",
                    v.field,
                    nearest(&v.field, &names)
                ),
            );
        }
        let order = |k: Kind| Kind::ALL.iter().position(|x| *x == k);
        if order(kind) > order(K::KIND) {
            f.at(
                &format!("{pointer}/from"),
                format!(
                    "{kind} is applied after {}, so {} `{}` cannot read from it (it can read from: {})",
                    K::KIND,
                    K::KIND,
                    m.name(),
                    readable_kinds()
                        .into_iter()
                        .filter(|k| order(*k) <= order(K::KIND))
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        if kind == K::KIND && name == m.name() {
            f.at(
                &format!("{pointer}/from"),
                format!("{} `{name}` cannot read a value from itself", K::KIND),
            );
        }
        if let Some(format) = &v.format
            && format.matches("{}").count() != 1
        {
            f.at(
                &format!("{pointer}/format"),
                "`format` takes exactly one `{}`, where the value goes",
            );
        }
    }
}

/// "did you mean" among `names`, else the list of them.
fn nearest(name: &str, names: &[&str]) -> String {
    match crate::manifest::load::closest(name, names.iter().copied(), |_| 3) {
        Some(n) => format!(" (did you mean `{n}`?)"),
        None if names.is_empty() => " (it has none)".to_string(),
        None => format!(" (readable: {})", names.join(", ")),
    }
}

/// What one `from:` value resolved to this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Where the value is in the document (JSON pointer).
    pub pointer: String,
    /// What it reads.
    pub from: ValueFrom,
    /// The value as the field gets it; `None` while the source has no such value (it does
    /// not exist yet).
    pub value: Option<String>,
}

impl Resolved {
    /// Why a resource waits for this value.
    pub fn waiting(&self) -> String {
        format!(
            "`{}` of {} (read by {})",
            self.from.field,
            self.from.from,
            crate::manifest::error::dotted(&self.pointer)
        )
    }
}

/// The readable fields of the resources observed this pass, by kind and name: filled as
/// each kind plans, and again after a resource that others read from is applied.
#[derive(Default)]
pub struct Readings {
    fields: Mutex<HashMap<(Kind, String), Fields>>,
}

/// One resource's readable fields, by name.
type Fields = HashMap<&'static str, String>;

impl Readings {
    /// Records the fields `kind`/`name` has now (none: it does not exist).
    pub fn put(&self, kind: Kind, name: &str, fields: Vec<(&'static str, String)>) {
        self.fields
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((kind, name.to_string()), fields.into_iter().collect());
    }

    /// The value of `field` of `kind`/`name`, if it was observed and has one.
    pub fn get(&self, kind: Kind, name: &str, field: &str) -> Option<String> {
        self.fields
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(kind, name.to_string()))
            .and_then(|f| f.get(field).cloned())
    }
}

/// `m` with every `from:` value that `lookup` (kind, name, field) knows written in as a
/// literal, and what each resolved to. Without `from:` values, `m` itself.
pub fn resolve<'m, K: Declared>(
    m: &'m Manifest<K::Spec>,
    lookup: impl Fn(Kind, &str, &str) -> Option<String>,
) -> (Cow<'m, Manifest<K::Spec>>, Vec<Resolved>) {
    let resolved: Vec<Resolved> = values_of::<K>(m)
        .into_iter()
        .map(|(pointer, v)| Resolved {
            value: v
                .source()
                .and_then(|(k, n)| lookup(k, n, &v.field))
                .map(|x| v.render(&x)),
            pointer,
            from: v.clone(),
        })
        .collect();
    if resolved.iter().all(|r| r.value.is_none()) {
        return (Cow::Borrowed(m), resolved);
    }
    match substitute(&m.spec, &resolved) {
        Some(spec) => (
            Cow::Owned(Manifest {
                metadata: m.metadata.clone(),
                spec,
                origin: m.origin.clone(),
            }),
            resolved,
        ),
        // Cannot happen for a spec that round-trips; then nothing counts as resolved.
        None => (
            Cow::Borrowed(m),
            resolved
                .into_iter()
                .map(|r| Resolved { value: None, ..r })
                .collect(),
        ),
    }
}

fn substitute<S: Serialize + DeserializeOwned>(spec: &S, resolved: &[Resolved]) -> Option<S> {
    let mut json = serde_json::to_value(spec).ok()?;
    for r in resolved {
        if let Some(value) = &r.value {
            let at = r.pointer.strip_prefix("/spec")?;
            *json.pointer_mut(at)? = serde_json::Value::String(value.clone());
        }
    }
    serde_json::from_value(json).ok()
}

/// The changes of a plan as shown: a value read from another resource is not a secret,
/// but when one goes into a field named like a secret (`DB_PASSWORD`), the secret-looking
/// fields' values are not shown.
pub fn shown(changes: Vec<FieldChange>, values: &[Resolved]) -> Vec<FieldChange> {
    if values.iter().any(|v| looks_secret(&v.pointer)) {
        redact(&changes)
    } else {
        changes
    }
}

/// The pointer of map entry `key` under `base`.
pub fn entry(base: &str, key: &str) -> String {
    format!("{base}/{}", escape_segment(key))
}

/// The README's table of readable fields, generated from the kinds' declarations.
pub fn readme_table() -> String {
    let mut out = String::from("| kind | field | value |\n|---|---|---|\n");
    for k in readable_kinds() {
        for f in fields_of(k) {
            out.push_str(&format!("| `{k}` | `{}` | {} |\n", f.name, f.doc));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_literals_or_references() {
        let v: Value = serde_json::from_value(serde_json::json!(3000)).unwrap();
        assert_eq!(v, Value::Literal("3000".into()));
        let v: Value = serde_json::from_value(serde_json::json!({
            "from": "LoadBalancer/alb", "field": "dnsName", "format": "https://{}/x"
        }))
        .unwrap();
        let f = v.from().unwrap();
        assert_eq!(f.source(), Some((Kind::LoadBalancer, "alb")));
        assert_eq!(f.render("a.example"), "https://a.example/x");
        assert_eq!(v.as_str(), UNKNOWN);
        assert!(
            serde_json::from_value::<Value>(serde_json::json!({"from": "X/y", "feld": "a"}))
                .is_err()
        );
    }

    #[test]
    fn the_readme_lists_every_readable_field() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"),
        )
        .unwrap();
        assert!(
            readme.contains(&readme_table()),
            "README.md's table of readable fields is stale; it must contain:\n{}",
            readme_table()
        );
    }

    use crate::manifest::ManifestErrors;
    use crate::manifest::load::load_with_stack;

    const REDIS: &str = "apiVersion: mooring.dev/v1alpha1
kind: ReplicationGroup
metadata: {name: redis}
spec:
  engineVersion: '7.1'
  nodeType: cache.t2.small
  numCacheClusters: 1
  securityGroups: {lookup: {vpc: default, names: [default]}}
";

    const ALB: &str = "apiVersion: mooring.dev/v1alpha1
kind: LoadBalancer
metadata: {name: alb}
spec:
  subnets: {lookup: {vpc: default}}
  securityGroups: {lookup: {vpc: default, names: [default]}}
  listeners:
    - {port: 80, protocol: HTTP, defaultAction: {redirect: {protocol: HTTPS, port: 443}}}
";

    const CLUSTER: &str = "apiVersion: mooring.dev/v1alpha1
kind: Cluster
metadata: {name: prd}
spec: {}
";

    fn service(env: &str) -> String {
        format!(
            "apiVersion: mooring.dev/v1alpha1
kind: Service
metadata: {{name: api}}
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
      environment:
        PORT: 80
{env}"
        )
    }

    fn destination(name: &str, endpoint: &str) -> String {
        format!(
            "apiVersion: mooring.dev/v1alpha1
kind: ApiDestination
metadata: {{name: {name}}}
spec:
  connection: backend
  endpoint: {endpoint}
  httpMethod: POST
"
        )
    }

    const CONNECTION: &str = "apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata: {name: backend}
spec:
  apiKey: {headerName: x-api-key, secretId: prd/backend/api-key}
";

    fn load(files: &[(&str, &str)]) -> Result<ManifestSet, ManifestErrors> {
        let sources: Vec<(std::path::PathBuf, String)> = files
            .iter()
            .map(|(p, t)| (std::path::PathBuf::from(p), t.to_string()))
            .collect();
        load_with_stack(&sources)
    }

    fn errors(files: &[(&str, &str)]) -> Vec<String> {
        match load(files) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    fn has(errs: &[String], expected: &str) {
        assert!(
            errs.iter().any(|e| e == expected),
            "missing\n  {expected}\nin\n  {}",
            errs.join("\n  ")
        );
    }

    #[test]
    fn a_set_with_values_from_other_resources_loads_and_depends_on_them() {
        let svc = service(
            "        REDIS_HOST: {from: ReplicationGroup/redis, field: primaryEndpoint.address}\n",
        );
        let dest = destination(
            "jobs",
            "{from: LoadBalancer/alb, field: dnsName, format: 'https://{}/api/jobs'}",
        );
        let set = load(&[
            ("c.yaml", CLUSTER),
            ("r.yaml", REDIS),
            ("a.yaml", ALB),
            ("s.yaml", &svc),
            ("k.yaml", CONNECTION),
            ("d.yaml", &dest),
        ])
        .unwrap();
        let api = &set.services[0];
        let values = values_of::<crate::kinds::service::Unit>(api);
        assert_eq!(values.len(), 1);
        assert_eq!(
            values[0].0,
            "/spec/taskDefinition/container/environment/REDIS_HOST"
        );
        let deps = Kind::Service.reconciler().dependencies(&set, "api");
        assert!(
            deps.contains(&(Kind::ReplicationGroup, "redis".to_string())),
            "{deps:?}"
        );
        let deps = Kind::ApiDestination.reconciler().dependencies(&set, "jobs");
        assert!(
            deps.contains(&(Kind::LoadBalancer, "alb".to_string())),
            "{deps:?}"
        );
        assert_eq!(
            api.spec.task_definition.container.environment["PORT"],
            Value::Literal("80".into()),
            "literals keep taking numbers"
        );
    }

    #[test]
    fn resolution_writes_known_values_in_and_leaves_unknown_ones_marked() {
        let dest = destination(
            "jobs",
            "{from: LoadBalancer/alb, field: dnsName, format: 'https://{}/api/jobs'}",
        );
        let svc = service(
            "        REDIS_HOST: {from: ReplicationGroup/redis, field: primaryEndpoint.address}\n        REDIS_PORT: {from: ReplicationGroup/redis, field: primaryEndpoint.port}\n",
        );
        let set = load(&[
            ("c.yaml", CLUSTER),
            ("r.yaml", REDIS),
            ("a.yaml", ALB),
            ("s.yaml", &svc),
            ("k.yaml", CONNECTION),
            ("d.yaml", &dest),
        ])
        .unwrap();
        let m = &set.api_destinations[0];
        let (r, values) = resolve::<crate::kinds::api_destination::Unit>(m, |_, _, _| None);
        assert!(matches!(r, Cow::Borrowed(_)));
        assert_eq!(r.spec.endpoint.as_str(), UNKNOWN);
        assert_eq!(values[0].value, None);
        let (r, values) = resolve::<crate::kinds::api_destination::Unit>(m, |k, n, f| {
            (k == Kind::LoadBalancer && n == "alb" && f == "dnsName")
                .then(|| "alb-1.elb.example".to_string())
        });
        assert_eq!(
            r.spec.endpoint.as_str(),
            "https://alb-1.elb.example/api/jobs"
        );
        assert_eq!(
            values[0].value.as_deref(),
            Some("https://alb-1.elb.example/api/jobs")
        );
        // One of two known: that one is written in, the other still waits.
        let svc = &set.services[0];
        let (r, values) = resolve::<crate::kinds::service::Unit>(svc, |_, _, f| {
            (f == "primaryEndpoint.address").then(|| "master.redis.example".to_string())
        });
        let env = &r.spec.task_definition.container.environment;
        assert_eq!(env["REDIS_HOST"].as_str(), "master.redis.example");
        assert_eq!(env["REDIS_PORT"].as_str(), UNKNOWN);
        assert_eq!(env["PORT"].as_str(), "80");
        let waiting: Vec<String> = values
            .iter()
            .filter(|v| v.value.is_none())
            .map(Resolved::waiting)
            .collect();
        assert_eq!(
            waiting,
            [
                "`primaryEndpoint.port` of ReplicationGroup/redis (read by spec.taskDefinition.container.environment.REDIS_PORT)"
            ]
        );
    }

    #[test]
    fn unknown_sources_and_fields_are_reported_where_they_are_written() {
        let svc = service(
            "        REDIS_HOST: {from: ReplicationGroup/cache, field: primaryEndpoint.address}\n",
        );
        let errs = errors(&[("c.yaml", CLUSTER), ("r.yaml", REDIS), ("s.yaml", &svc)]);
        has(
            &errs,
            "s.yaml:16:22: spec.taskDefinition.container.environment.REDIS_HOST.from: no ReplicationGroup named `cache` in the manifests (known: redis)",
        );
        // The schema knows each kind's fields, and names the nearest one.
        let svc = service(
            "        REDIS_PORT: {from: ReplicationGroup/redis, field: primaryEndpoint.prot}\n        ALB: {from: LoadBalancer/alb, field: hostname}\n",
        );
        let errs = errors(&[
            ("c.yaml", CLUSTER),
            ("r.yaml", REDIS),
            ("a.yaml", ALB),
            ("s.yaml", &svc),
        ]);
        has(
            &errs,
            "s.yaml:16:52: spec.taskDefinition.container.environment.REDIS_PORT.field: \"primaryEndpoint.prot\" is not one of \"primaryEndpoint.address\", \"primaryEndpoint.port\" or \"readerEndpoint.address\" (did you mean `primaryEndpoint.port`?)",
        );
        assert!(
            errs.iter().any(|e| e.starts_with("s.yaml:17:39: spec.taskDefinition.container.environment.ALB.field: \"hostname\" is not one of")),
            "{errs:#?}"
        );
    }

    #[test]
    fn misspelt_keys_and_kinds_without_fields_are_schema_errors() {
        let svc = service(
            "        A: {fron: ReplicationGroup/redis, field: primaryEndpoint.address}\n        B: {from: Service/api, field: arn}\n",
        );
        let errs = errors(&[("c.yaml", CLUSTER), ("r.yaml", REDIS), ("s.yaml", &svc)]);
        has(
            &errs,
            "s.yaml:16:13: spec.taskDefinition.container.environment.A.fron: unknown field `fron` (did you mean `from`?)",
        );
        assert!(
            errs.iter().any(|e| e.starts_with(
                "s.yaml:17:13: spec.taskDefinition.container.environment.B.from: \"Service/api\" does not match"
            )),
            "{errs:#?}"
        );
    }

    #[test]
    fn cycles_self_reads_and_reads_from_later_kinds_are_rejected() {
        let a = destination(
            "a",
            "{from: ApiDestination/b, field: arn, format: 'https://{}/x'}",
        );
        let b = destination(
            "b",
            "{from: ApiDestination/a, field: arn, format: 'https://{}/x'}",
        );
        let errs = errors(&[("k.yaml", CONNECTION), ("a.yaml", &a), ("b.yaml", &b)]);
        assert!(
            errs.iter().any(|e| e.starts_with(
                "a.yaml:6:14: spec.endpoint.from: ApiDestination `a` and b name each other in a cycle, so neither can be created first"
            )),
            "{errs:#?}"
        );
        let own = destination(
            "a",
            "{from: ApiDestination/a, field: arn, format: 'https://{}/x'}",
        );
        let errs = errors(&[("k.yaml", CONNECTION), ("a.yaml", &own)]);
        has(
            &errs,
            "a.yaml:6:14: spec.endpoint.from: ApiDestination `a` cannot read a value from itself",
        );
        let svc = service("        JOBS: {from: ApiDestination/a, field: arn}\n");
        let a = destination("a", "https://api.example.com/a");
        let errs = errors(&[
            ("c.yaml", CLUSTER),
            ("k.yaml", CONNECTION),
            ("a.yaml", &a),
            ("s.yaml", &svc),
        ]);
        assert!(
            errs.iter().any(|e| e.starts_with(
                "s.yaml:16:16: spec.taskDefinition.container.environment.JOBS.from: ApiDestination is applied after Service, so Service `api` cannot read from it"
            )),
            "{errs:#?}"
        );
    }

    #[test]
    fn an_endpoint_read_from_a_load_balancer_must_become_an_https_url() {
        let d = destination("jobs", "{from: LoadBalancer/alb, field: dnsName}");
        let errs = errors(&[("a.yaml", ALB), ("k.yaml", CONNECTION), ("d.yaml", &d)]);
        assert!(
            errs.iter().any(|e| e.starts_with(
                "d.yaml:6:3: spec.endpoint.format: the endpoint read from LoadBalancer/alb must be an https:// URL"
            )),
            "{errs:#?}"
        );
        let d = destination(
            "jobs",
            "{from: LoadBalancer/alb, field: dnsName, format: 'https://{}/{}'}",
        );
        let errs = errors(&[("a.yaml", ALB), ("k.yaml", CONNECTION), ("d.yaml", &d)]);
        assert!(
            errs.iter().any(|e| e
                .starts_with("d.yaml:6:54: spec.endpoint.format: `format` takes exactly one `{}`")),
            "{errs:#?}"
        );
    }

    #[test]
    fn a_value_read_into_a_secret_looking_field_is_not_shown() {
        let change = |field: &str, desired: &str| FieldChange {
            field: field.into(),
            live: serde_json::Value::Null,
            desired: desired.into(),
            note: None,
        };
        let read = |pointer: &str| Resolved {
            pointer: pointer.into(),
            from: ValueFrom {
                from: "ReplicationGroup/redis".into(),
                field: "primaryEndpoint.address".into(),
                format: None,
            },
            value: Some("master.redis.example".into()),
        };
        let changes = vec![
            change(
                "taskDefinition.container.environment.REDIS_AUTH_TOKEN",
                "master.redis.example",
            ),
            change(
                "taskDefinition.container.environment.REDIS_HOST",
                "master.redis.example",
            ),
        ];
        let out = shown(
            changes.clone(),
            &[read(
                "/spec/taskDefinition/container/environment/REDIS_AUTH_TOKEN",
            )],
        );
        assert_eq!(out[0].desired, "(redacted)");
        assert_eq!(out[1].desired, "master.redis.example");
        let out = shown(
            changes.clone(),
            &[read(
                "/spec/taskDefinition/container/environment/REDIS_HOST",
            )],
        );
        assert_eq!(out, changes, "no secret-looking field reads a value");
    }

    #[test]
    fn nearest_names_a_close_field_or_lists_them() {
        let names = ["primaryEndpoint.address", "primaryEndpoint.port"];
        assert_eq!(
            nearest("primaryEndpoint.adress", &names),
            " (did you mean `primaryEndpoint.address`?)"
        );
        assert_eq!(
            nearest("host", &names),
            " (readable: primaryEndpoint.address, primaryEndpoint.port)"
        );
    }
}
