//! The generic, pure part of diffing: both sides of a resource are rendered by its kind
//! into the same normalised JSON shape, and this module compares them field by field.

use serde::Serialize;
use serde_json::Value;

use crate::manifest::annotations::IGNORE as IGNORE_ANNOTATION;

/// One field that differs between the live resource and the manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// Dotted path, e.g. `taskDefinition.container.image`.
    pub field: String,
    /// What AWS has now (`null` when absent or when the resource does not exist).
    pub live: Value,
    /// What the manifest wants.
    pub desired: Value,
    /// Why the value changes, for people, when the kind knows more than the values show
    /// (`tag latest` for an image followed by digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Compares `desired` with `live`, both normalised by the kind into the same shape.
/// Objects are compared key by key over the keys of both sides (a key missing on one side
/// counts as `null`); anything else is compared as a whole value. The kind decides what
/// it manages by what it renders: fields it does not manage are left out of both sides,
/// and maps where others may add entries (tags) are filtered on the live side. With no
/// live resource every desired leaf is a change.
pub fn diff(desired: &Value, live: Option<&Value>) -> Vec<FieldChange> {
    let mut out = Vec::new();
    match live {
        Some(live) => walk("", desired, live, &mut out),
        None => creation("", desired, &mut out),
    }
    out
}

/// The fields a manifest's `mooring.dev/ignore` annotation names.
pub fn ignored_fields(meta: &crate::manifest::Metadata) -> Vec<String> {
    meta.annotations
        .get(IGNORE_ANNOTATION)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// [`diff`], without the changes the manifest says to ignore. A resource that does not
/// exist yet is created whole: nothing is ignored then.
pub fn diff_managed(
    meta: &crate::manifest::Metadata,
    desired: &Value,
    live: Option<&Value>,
) -> Vec<FieldChange> {
    let mut changes = diff(desired, live);
    let ignored = ignored_fields(meta);
    if live.is_some() && !ignored.is_empty() {
        changes.retain(|c| !ignore_covers(&c.field, &ignored));
    }
    changes
}

/// The prefix of mooring's own tags in a document (`tags.mooring.dev/…`).
pub const OWN_TAGS: &str = "tags.mooring.dev/";

/// True when the `mooring.dev/ignore` fields `ignored` cover `path` (the field itself or
/// one below it). mooring's own tags (ownership, an ECR repository's deletion policy) are
/// never covered: prune and adopt decide by them, so ignoring `tags` must not let them
/// drift.
pub fn ignore_covers(path: &str, ignored: &[String]) -> bool {
    !path.starts_with(OWN_TAGS)
        && ignored.iter().any(|i| {
            path == i
                || path
                    .strip_prefix(i.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: &str, desired: &Value, live: &Value, out: &mut Vec<FieldChange>) {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (k, dv) in d {
                walk(&join(path, k), dv, l.get(k).unwrap_or(&Value::Null), out);
            }
            for (k, lv) in l {
                if !d.contains_key(k) && !lv.is_null() {
                    out.push(change(&join(path, k), lv, &Value::Null));
                }
            }
        }
        (Value::Object(d), Value::Null) if !d.is_empty() => {
            for (k, dv) in d {
                walk(&join(path, k), dv, &Value::Null, out);
            }
        }
        _ if desired != live => out.push(change(path, live, desired)),
        _ => {}
    }
}

fn creation(path: &str, desired: &Value, out: &mut Vec<FieldChange>) {
    match desired {
        Value::Object(d) => {
            for (k, dv) in d {
                creation(&join(path, k), dv, out);
            }
        }
        Value::Null => {}
        other => out.push(change(path, &Value::Null, other)),
    }
}

fn change(path: &str, live: &Value, desired: &Value) -> FieldChange {
    FieldChange {
        field: path.to_string(),
        live: live.clone(),
        desired: desired.clone(),
        note: None,
    }
}

/// Words in a field path that mark its value as secret.
const SECRET_WORDS: [&str; 8] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api-key",
    "private",
    "credential",
];

/// True when a field's path (or pointer) names it like a secret (`…password…`, `…token…`).
pub fn looks_secret(field: &str) -> bool {
    let field = field.to_lowercase().replace('_', "");
    SECRET_WORDS.iter().any(|w| field.contains(w))
}

/// The changes with the values of secret-looking fields (`…password…`, `…token…`,
/// `…apiKey…`) replaced by `(redacted)`: for status and alerts, a safety net on top of
/// mooring never reading secret values in the first place.
pub fn redact(changes: &[FieldChange]) -> Vec<FieldChange> {
    changes
        .iter()
        .map(|c| {
            if looks_secret(&c.field) {
                let hide = |v: &Value| {
                    if v.is_null() {
                        Value::Null
                    } else {
                        Value::String("(redacted)".into())
                    }
                };
                FieldChange {
                    field: c.field.clone(),
                    live: hide(&c.live),
                    desired: hide(&c.desired),
                    note: c.note.clone(),
                }
            } else {
                // A URL in a value of any field may carry a password (`DATABASE_URL`):
                // its credentials go, the rest stays readable.
                let scrub = |v: &Value| match v {
                    Value::String(text) if text.contains("://") => {
                        Value::String(crate::source::git::redact_url(text))
                    }
                    other => other.clone(),
                };
                FieldChange {
                    field: c.field.clone(),
                    live: scrub(&c.live),
                    desired: scrub(&c.desired),
                    note: c.note.clone(),
                }
            }
        })
        .collect()
}

/// Renders a value for people: strings quoted, `null` as `(none)`, long values cut.
pub fn show(v: &Value) -> String {
    let s = match v {
        Value::Null => return "(none)".into(),
        other => other.to_string(),
    };
    if s.chars().count() > 200 {
        let cut: String = s.chars().take(197).collect();
        format!("{cut}...")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_documents_have_no_changes() {
        let d = json!({"a": 1, "b": {"c": [1, 2], "d": null}});
        assert!(diff(&d, Some(&d.clone())).is_empty());
    }

    #[test]
    fn fields_only_live_has_are_changes() {
        let d = json!({"a": 1, "env": {"X": "1"}});
        let l = json!({"a": 1, "env": {"X": "1", "Y": "2"}});
        let c = diff(&d, Some(&l));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "env.Y");
        assert_eq!(
            (c[0].live.clone(), c[0].desired.clone()),
            (json!("2"), json!(null))
        );
    }

    #[test]
    fn nested_changes_are_named_with_old_and_new() {
        let d = json!({"td": {"container": {"image": "nginx:2", "port": 80}}, "count": 2});
        let l = json!({"td": {"container": {"image": "nginx:1", "port": 80}}, "count": 3});
        let mut c = diff(&d, Some(&l));
        c.sort_by(|a, b| a.field.cmp(&b.field));
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].field, "count");
        assert_eq!(
            (c[0].live.clone(), c[0].desired.clone()),
            (json!(3), json!(2))
        );
        assert_eq!(c[1].field, "td.container.image");
        assert_eq!(c[1].live, json!("nginx:1"));
    }

    #[test]
    fn explicit_null_means_absent() {
        let d = json!({"taskRoleArn": null});
        let l = json!({"taskRoleArn": "arn:aws:iam::1:role/x"});
        assert_eq!(diff(&d, Some(&l)).len(), 1);
        assert!(diff(&d, Some(&json!({}))).is_empty());
    }

    #[test]
    fn creation_lists_every_desired_leaf() {
        let d = json!({"a": 1, "b": {"c": "x", "n": null}, "e": {}});
        let c = diff(&d, None);
        let fields: Vec<_> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["a", "b.c"]);
    }

    #[test]
    fn lists_compare_whole() {
        let d = json!({"subnets": ["a", "b"]});
        let c = diff(&d, Some(&json!({"subnets": ["a"]})));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "subnets");
    }

    #[test]
    fn empty_desired_map_compares_as_value() {
        let c = diff(&json!({"env": {}}), Some(&json!({"env": {"A": "1"}})));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "env.A");
        // A missing nested object is compared field by field too.
        let c = diff(&json!({"hc": {"retries": 3}}), Some(&json!({})));
        assert_eq!(c[0].field, "hc.retries");
    }

    #[test]
    fn ignored_fields_are_not_changes_except_at_creation() {
        let mut meta = crate::manifest::Metadata {
            name: "x".into(),
            labels: Default::default(),
            annotations: Default::default(),
        };
        meta.annotations
            .insert(IGNORE_ANNOTATION.into(), "desiredCount, tags".into());
        let d = json!({"desiredCount": 2, "tags": {"a": "1"}, "image": "x:2", "desiredCountX": 1});
        let l = json!({"desiredCount": 5, "tags": {"a": "2"}, "image": "x:1", "desiredCountX": 2});
        let fields: Vec<String> = diff_managed(&meta, &d, Some(&l))
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, vec!["image", "desiredCountX"]);
        assert_eq!(diff_managed(&meta, &d, None).len(), 4);
    }

    #[test]
    fn secret_looking_fields_are_redacted() {
        let changes = vec![
            FieldChange {
                field: "parameters./prd/db/password.value".into(),
                live: serde_json::json!("hunter2"),
                desired: serde_json::json!("x"),
                note: None,
            },
            FieldChange {
                field: "desiredCount".into(),
                live: serde_json::json!(1),
                desired: serde_json::json!(2),
                note: None,
            },
        ];
        let r = redact(&changes);
        assert_eq!(r[0].live, serde_json::json!("(redacted)"));
        assert_eq!(r[1], changes[1]);
    }

    #[test]
    fn show_values() {
        assert_eq!(show(&json!(null)), "(none)");
        assert_eq!(show(&json!("a")), "\"a\"");
        assert!(show(&json!("x".repeat(500))).ends_with("..."));
    }

    /// What reaches `/status`, the status page and alerts: a value set by hand outside git
    /// (a revision registered with a connection string, a `…_PASSWD` variable) keeps its
    /// secret out, whatever the field is called.
    #[test]
    fn redaction_covers_urls_with_credentials_and_more_secret_words() {
        let change = |field: &str, live: &str| FieldChange {
            field: field.into(),
            live: json!(live),
            desired: json!("postgres://db.internal/app"),
            note: None,
        };
        let out = redact(&[
            change(
                "taskDefinition.container.environment.DATABASE_URL",
                "postgres://app:hunter2@db.internal/app",
            ),
            change("taskDefinition.container.environment.DB_PASSWD", "hunter2"),
            change(
                "taskDefinition.container.environment.GCP_CREDENTIALS",
                "hunter2",
            ),
        ]);
        let text = serde_json::to_string(&out).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(out[0].live, json!("postgres://***@db.internal/app"));
        assert_eq!(out[0].desired, json!("postgres://db.internal/app"));
    }
}
