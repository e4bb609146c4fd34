//! JSON Schema of the manifest format, generated from the Rust types.
//!
//! The same schema does two jobs: editors validate manifests with it (through
//! yaml-language-server, committed as `manifests/schema/mooring.schema.json`), and
//! [`super::load`] validates every document against it to report all structural errors at
//! once.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::{API_VERSION, Document, Kind};
use crate::kinds::{Declared, Visitor};

/// The name of the stack document's definition.
const STACK: &str = super::stack::KIND;

/// Where the committed schema lives, relative to the repository root.
pub const SCHEMA_PATH: &str = "manifests/schema/mooring.schema.json";

/// Every type's schema by name; each kind's document under the kind's name.
fn definitions() -> &'static Map<String, Value> {
    static DEFS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFS.get_or_init(|| {
        let mut generator = SchemaSettings::draft2020_12().into_generator();
        struct Refs<'a>(&'a mut schemars::SchemaGenerator);
        impl Visitor for Refs<'_> {
            type Out = schemars::Schema;
            fn visit<K: Declared>(&mut self) -> schemars::Schema {
                self.0.subschema_for::<Document<K::Spec>>()
            }
        }
        let mut refs: Vec<(&'static str, schemars::Schema)> = Kind::ALL
            .iter()
            .map(|k| (k.as_str(), k.visit(&mut Refs(&mut generator))))
            .collect();
        refs.push((
            STACK,
            generator.subschema_for::<super::stack::StackDocument>(),
        ));
        let mut defs = generator.take_definitions(true);
        for (kind, reference) in refs {
            let generated = reference
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit('/').next())
                .map(str::to_string)
                .unwrap_or_default();
            let mut def = defs.remove(&generated).unwrap_or_else(|| json!({}));
            if let Some(props) = def.get_mut("properties").and_then(Value::as_object_mut) {
                props.insert(
                    "apiVersion".into(),
                    json!({"description": "Always `mooring.dev/v1alpha1`.", "const": API_VERSION}),
                );
                props.insert(
                    "kind".into(),
                    json!({"description": "The kind of resource.", "const": kind}),
                );
            }
            if let Some(obj) = def.as_object_mut() {
                obj.insert("title".into(), json!(kind));
            }
            defs.insert(kind.to_string(), def);
        }
        defs
    })
}

/// The schema one document of `kind` (a kind's name, or `Stack`) is validated against.
pub fn kind_schema(kind: &str) -> Value {
    let defs = definitions();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/$defs/{kind}"),
        "$defs": defs,
    })
}

/// What editors get beyond the validation schema, which leaves these checks to the code
/// (with `file:line:col` messages and did-you-mean hints): the `mooring.dev/*` annotations
/// with their documentation and values, and Fargate's cpu/memory pairs.
fn editor_hints(defs: &mut Map<String, Value>) {
    use super::annotations::{CHOICES, DESCRIPTIONS, KNOWN};
    if let Some(annotations) = defs
        .get_mut("Metadata")
        .and_then(|m| m.pointer_mut("/properties/annotations"))
    {
        let mut known = Map::new();
        for (key, description) in DESCRIPTIONS {
            let mut one = json!({"type": "string", "description": description});
            if let Some((_, values)) = CHOICES.iter().find(|(k, _)| *k == key) {
                one["enum"] = json!(values);
            }
            known.insert(key.to_string(), one);
        }
        annotations["properties"] = Value::Object(known);
        // Any other `mooring.dev/` key is a typo.
        annotations["propertyNames"] = json!({
            "if": {"pattern": "^mooring\\.dev/"},
            "then": {"enum": KNOWN},
        });
    }
    if let Some(task) = defs.get_mut("TaskDefinitionSpec") {
        let sizes: Vec<(u32, Vec<u32>)> = [256, 512, 1024, 2048, 4096, 8192, 16384]
            .into_iter()
            .filter_map(|cpu| {
                crate::kinds::service::spec::fargate_memory_options(cpu).map(|m| (cpu, m))
            })
            .collect();
        let pairs: Vec<String> = sizes
            .iter()
            .map(|(cpu, m)| {
                let (first, last) = (m.first().copied(), m.last().copied());
                format!(
                    "{cpu}: {}–{} MiB",
                    first.unwrap_or_default(),
                    last.unwrap_or_default()
                )
            })
            .collect();
        if let Some(cpu) = task.pointer_mut("/properties/cpu") {
            cpu["enum"] = json!(sizes.iter().map(|(c, _)| c).collect::<Vec<_>>());
            cpu["description"] = json!(format!(
                "CPU units (256 = 0.25 vCPU). Fargate's sizes and the memory each allows: {}.",
                pairs.join("; ")
            ));
        }
        let branches: Vec<Value> = sizes
            .iter()
            .map(|(cpu, memory)| {
                json!({
                    "if": {"properties": {"cpu": {"const": cpu}}, "required": ["cpu"]},
                    "then": {"properties": {"memory": {
                        "enum": memory,
                        "description": format!("Memory in MiB Fargate runs with cpu {cpu}."),
                    }}},
                })
            })
            .collect();
        task["allOf"] = Value::Array(branches);
    }
}

/// The editor schema for any manifest document (every kind, chosen by `kind`).
pub fn manifest_schema() -> Value {
    let mut defs = definitions().clone();
    editor_hints(&mut defs);
    let names: Vec<&str> = std::iter::once(STACK)
        .chain(Kind::ALL.iter().map(|k| k.as_str()))
        .collect();
    let branches: Vec<Value> = names
        .iter()
        .map(|kind| {
            json!({
                "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {"$ref": format!("#/$defs/{kind}")},
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://mooring.dev/schema/v1alpha1/mooring.schema.json",
        "title": "mooring manifest (mooring.dev/v1alpha1)",
        "description": "One document of a mooring manifest set. Generated by `mooring schema`; do not edit.",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"enum": names},
        },
        "allOf": branches,
        "$defs": defs,
    })
}

/// The editor schema as committed: pretty JSON with a trailing newline.
pub fn manifest_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&manifest_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// The field names the schema allows in the object at `pointer` of a `kind` document
/// (for "did you mean" hints). Empty when the place is not an object with fixed fields.
pub fn fields_at(kind: Kind, pointer: &str) -> Vec<String> {
    let defs = definitions();
    let resolve = |mut s: &'static Value| -> &'static Value {
        loop {
            if let Some(r) = s.get("$ref").and_then(Value::as_str) {
                match r.rsplit('/').next().and_then(|name| defs.get(name)) {
                    Some(d) => s = d,
                    None => return s,
                }
            } else if let Some(branch) = s
                .get("anyOf")
                .or_else(|| s.get("oneOf"))
                .and_then(Value::as_array)
                .and_then(|b| b.iter().find(|x| x.get("type") != Some(&json!("null"))))
            {
                s = branch;
            } else {
                return s;
            }
        }
    };
    let Some(mut schema) = defs.get(kind.as_str()) else {
        return Vec::new();
    };
    for seg in pointer.split('/').skip(1) {
        schema = resolve(schema);
        let next = schema
            .get("properties")
            .and_then(|p| p.get(seg))
            .or_else(|| schema.get("items"))
            .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
        match next {
            Some(n) => schema = n,
            None => return Vec::new(),
        }
    }
    resolve(schema)
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// A compiled validator per kind, built once.
pub(crate) fn validator(kind: Kind) -> &'static jsonschema::Validator {
    static VALIDATORS: OnceLock<Vec<jsonschema::Validator>> = OnceLock::new();
    let all = VALIDATORS.get_or_init(|| Kind::ALL.iter().map(|k| compile(k.as_str())).collect());
    let i = Kind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or_default();
    &all[i]
}

/// The validator of the stack document.
pub(crate) fn stack_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| compile(STACK))
}

fn compile(kind: &str) -> jsonschema::Validator {
    // The schema is generated from our own types: failing to compile it is a bug caught by
    // the tests, not a runtime condition.
    #[allow(clippy::expect_used)]
    jsonschema::validator_for(&kind_schema(kind)).expect("generated schema compiles")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed schema must be the one the code generates: regenerate it with
    /// `cargo run -- schema > manifests/schema/mooring.schema.json`.
    #[test]
    fn committed_schema_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_PATH);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == manifest_schema_text(),
            "{SCHEMA_PATH} is stale: run `cargo run -- schema > {SCHEMA_PATH}`"
        );
    }

    #[test]
    fn every_kind_has_a_definition_and_validator() {
        let schema = manifest_schema();
        for kind in Kind::ALL {
            let kind = *kind;
            assert!(schema["$defs"][kind.as_str()]["properties"]["spec"].is_object());
            // Compiles, and rejects a document without spec.
            let doc = json!({"apiVersion": API_VERSION, "kind": kind.as_str(), "metadata": {"name": "x"}});
            assert!(!validator(kind).is_valid(&doc));
        }
    }

    /// Every `*.yaml` under manifests/ (examples, mooring-on-ecs), as (path, text).
    fn example_files() -> Vec<(std::path::PathBuf, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "yaml")
                    // An environment overlay (kind `Environment`) is not a resource
                    // manifest: the resource schema does not describe it.
                    && path.file_name().is_some_and(|n| n != "environment.yaml")
                {
                    out.push(path);
                }
            }
        }
        let mut paths = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests"),
            &mut paths,
        );
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p, text)
            })
            .collect()
    }

    /// Issue 15: yaml-language-server reads the modeline of each document, so every
    /// document of every example carries one, pointing at the committed schema; and every
    /// document passes the editor schema an editor would check it with.
    #[test]
    fn every_example_document_names_the_schema_and_passes_it() {
        let schema_file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(SCHEMA_PATH)
            .canonicalize()
            .unwrap();
        let editor = jsonschema::validator_for(&manifest_schema()).unwrap();
        let mut documents = 0;
        for (path, text) in example_files() {
            let docs: Vec<&str> = text.split("\n---\n").collect();
            let (parsed, errors) = super::super::yaml::parse_documents(&text);
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            let parsed: Vec<_> = parsed.into_iter().filter(|d| !d.value.is_null()).collect();
            assert_eq!(parsed.len(), docs.len(), "{}", path.display());
            for (i, (doc, value)) in docs.iter().zip(&parsed).enumerate() {
                documents += 1;
                let modeline = doc
                    .lines()
                    .take_while(|l| l.starts_with('#'))
                    .find_map(|l| l.strip_prefix("# yaml-language-server: $schema="))
                    .unwrap_or_else(|| {
                        panic!(
                            "{} document {}: no `# yaml-language-server: $schema=` line before its first key",
                            path.display(),
                            i + 1
                        )
                    });
                let target = path.parent().unwrap().join(modeline.trim());
                assert_eq!(
                    target.canonicalize().ok().as_ref(),
                    Some(&schema_file),
                    "{} document {}: the modeline points at {}",
                    path.display(),
                    i + 1,
                    target.display()
                );
                let errors: Vec<String> = editor
                    .iter_errors(&value.value)
                    .map(|e| format!("{}: {e}", e.instance_path()))
                    .collect();
                assert!(
                    errors.is_empty(),
                    "{} document {}: {errors:?}",
                    path.display(),
                    i + 1
                );
            }
        }
        assert!(documents >= 29, "only {documents} example documents found");
    }

    /// The editor schema knows Fargate's cpu/memory pairs and mooring's annotations.
    #[test]
    fn the_editor_schema_checks_fargate_sizes_and_annotations() {
        let editor = jsonschema::validator_for(&manifest_schema()).unwrap();
        let service = |cpu: u32, memory: u32, annotations: Value| {
            json!({
                "apiVersion": API_VERSION, "kind": "Service",
                "metadata": {"name": "api", "annotations": annotations},
                "spec": {
                    "cluster": "prd",
                    "taskDefinition": {"cpu": cpu, "memory": memory,
                        "container": {"image": "nginx:1", "port": 80}},
                    "network": {"subnets": {"ids": ["subnet-1"]}, "securityGroups": ["web"]}
                }
            })
        };
        let errors = |doc: &Value| -> Vec<String> {
            editor
                .iter_errors(doc)
                .map(|e| format!("{} {e}", e.instance_path()))
                .collect()
        };
        let fine = service(256, 512, json!({"mooring.dev/mode": "observe"}));
        // Only the pair and the annotations matter here: find what else the schema wants.
        let baseline = errors(&fine);
        let extra = |doc: &Value| -> Vec<String> {
            errors(doc)
                .into_iter()
                .filter(|e| !baseline.contains(e))
                .collect()
        };
        for (cpu, memory, bad) in [
            (256, 512, false),
            (256, 4096, true),
            (1024, 1024, true),
            (1024, 8192, false),
            (8192, 20480, false),
            (8192, 17408, true),
            (300, 512, true),
        ] {
            let found = extra(&service(cpu, memory, json!({})));
            assert_eq!(
                !found.is_empty(),
                bad,
                "cpu {cpu} memory {memory}: {found:?}"
            );
        }
        for (annotations, bad) in [
            (json!({"mooring.dev/paused": "true"}), false),
            (json!({"mooring.dev/mode": "watch"}), true),
            (json!({"mooring.dev/pasued": "true"}), true),
            (
                json!({"mooring.dev/ignore": "desiredCount,tags.team"}),
                false,
            ),
            (json!({"example.com/owner": "team-a"}), false),
        ] {
            let found = extra(&service(256, 512, annotations.clone()));
            assert_eq!(!found.is_empty(), bad, "{annotations}: {found:?}");
        }
        let schema = manifest_schema();
        let annotations = &schema["$defs"]["Metadata"]["properties"]["annotations"]["properties"];
        for key in super::super::annotations::KNOWN {
            assert!(
                annotations[key]["description"]
                    .as_str()
                    .is_some_and(|d| d.len() > 20),
                "{key} has no documentation in the schema"
            );
        }
        let cpu = &schema["$defs"]["TaskDefinitionSpec"]["properties"]["cpu"];
        assert!(
            cpu["description"]
                .as_str()
                .is_some_and(|d| d.contains("256: 512–2048 MiB")),
            "{cpu}"
        );
        // The validation schema leaves these to the code's own messages.
        assert!(
            kind_schema("Service")["$defs"]["TaskDefinitionSpec"]
                .get("allOf")
                .is_none()
        );
    }
}
