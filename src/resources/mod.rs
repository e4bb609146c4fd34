//! One module per AWS kind, each behind [`crate::reconcile::Reconciler`].

pub mod autoscaling;
pub mod cluster;
pub mod eventbridge;
pub mod load_balancer;
pub mod parameters;
pub mod redis;
pub mod security_group;
pub mod service;
pub mod target_group;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::manifest::{Kind, ManifestSet, Metadata, TAG_RESOURCE};
use crate::reconcile::{FieldChange, Reconciler};

/// The reconcilers for a manifest set, in dependency order.
pub fn reconcilers(set: &ManifestSet) -> Vec<Box<dyn Reconciler>> {
    vec![
        Box::new(cluster::ClusterReconciler::new(set)),
        Box::new(parameters::ParameterSetReconciler::new(set)),
        Box::new(security_group::SecurityGroupReconciler::new(set)),
        Box::new(target_group::TargetGroupReconciler::new(set)),
        Box::new(load_balancer::LoadBalancerReconciler::new(set)),
        Box::new(redis::ReplicationGroupReconciler::new(set)),
        Box::new(service::ServiceReconciler::new(set)),
        Box::new(autoscaling::ScalableTargetReconciler::new(set)),
        Box::new(eventbridge::ConnectionReconciler::new(set)),
        Box::new(eventbridge::ApiDestinationReconciler::new(set)),
        Box::new(eventbridge::RuleReconciler::new(set)),
    ]
}

/// Annotation that lets mooring take over a resource it did not create (or one whose
/// ownership tag names another manifest, e.g. after a rename).
pub const ADOPT_ANNOTATION: &str = "mooring.dev/adopt";

/// Why mooring must not touch a live resource: it carries no ownership tag, or one that
/// names another manifest. `None` when it is ours or adoption is asked for.
pub(crate) fn ownership_conflict<'a>(
    kind: Kind,
    metadata: &Metadata,
    live_tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<String> {
    if metadata
        .annotations
        .get(ADOPT_ANNOTATION)
        .map(String::as_str)
        == Some("true")
    {
        return None;
    }
    let me = format!("{kind}/{}", metadata.name);
    match resource_tag(live_tags) {
        Some(owner) if owner == me => None,
        Some(owner) => Some(format!(
            "it belongs to {owner} (tag {TAG_RESOURCE}); set the annotation `{ADOPT_ANNOTATION}: \"true\"` if {me} should take it over"
        )),
        None => Some(format!(
            "it exists but was not created by mooring (no {TAG_RESOURCE} tag); set the annotation `{ADOPT_ANNOTATION}: \"true\"` to manage it"
        )),
    }
}

/// Annotation that lets apply replace (delete, then create) a resource when a field that
/// AWS cannot change in place differs. Without it such a change is refused.
pub const ALLOW_REPLACEMENT_ANNOTATION: &str = "mooring.dev/allow-replacement";

/// True when the manifest allows replacement.
pub(crate) fn allows_replacement(metadata: &Metadata) -> bool {
    metadata
        .annotations
        .get(ALLOW_REPLACEMENT_ANNOTATION)
        .map(String::as_str)
        == Some("true")
}

/// The action and problems of a plan whose changes may touch fields that cannot change
/// in place (`fixed`): [`Action::Replace`] when the resource exists and one of them
/// differs, with a problem that makes apply refuse unless the manifest allows it.
/// `what` names the resource and what a replacement loses.
pub(crate) fn replacement(
    metadata: &Metadata,
    action: crate::reconcile::Action,
    changes: &[FieldChange],
    fixed: &[&str],
    what: &str,
) -> (crate::reconcile::Action, Vec<String>) {
    use crate::reconcile::Action;
    if action != Action::Update {
        return (action, Vec::new());
    }
    let touched: Vec<&str> = fixed
        .iter()
        .copied()
        .filter(|f| touches(changes, f))
        .collect();
    if touched.is_empty() {
        return (action, Vec::new());
    }
    let problems = if allows_replacement(metadata) {
        Vec::new()
    } else {
        vec![format!(
            "changing {} needs a new {what}; apply replaces it (deletes it, then creates it) only when the manifest has the annotation `{ALLOW_REPLACEMENT_ANNOTATION}: \"true\"`",
            touched.join(", ")
        )]
    };
    (Action::Replace, problems)
}

/// True when apply is to replace the planned resource: the plan says so and nothing
/// refused it.
pub(crate) fn replacing(planned: &crate::reconcile::Planned) -> bool {
    planned.plan.action == crate::reconcile::Action::Replace && planned.plan.problems.is_empty()
}

/// The value of the `mooring.dev/resource` ownership tag (`Kind/name`), if any.
pub(crate) fn resource_tag<'a>(
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<&'a str> {
    tags.into_iter()
        .find(|(k, _)| *k == TAG_RESOURCE)
        .map(|(_, v)| v)
}

/// The manifest name a `mooring.dev/resource` tag value names for `kind`
/// (`SecurityGroup/app` → `app`).
pub(crate) fn owner_name<'a>(
    kind: Kind,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<String> {
    let prefix = format!("{kind}/");
    resource_tag(tags).and_then(|v| v.strip_prefix(prefix.as_str()).map(str::to_string))
}

/// Tags in ECS's request form.
pub(crate) fn ecs_tags(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_ecs::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build())
        .collect()
}

/// Renders desired tags as a JSON object.
pub(crate) fn tags_doc(tags: &BTreeMap<String, String>) -> Value {
    Value::Object(
        tags.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Renders live tags, keeping only the keys the manifest manages: tags that others (AWS,
/// cost tooling, people) add are not drift.
pub(crate) fn live_tags_doc<'a>(
    live: impl IntoIterator<Item = (&'a str, &'a str)>,
    desired: &BTreeMap<String, String>,
) -> Value {
    let mut out = Map::new();
    for (k, v) in live {
        if desired.contains_key(k) {
            out.insert(k.to_string(), Value::String(v.to_string()));
        }
    }
    Value::Object(out)
}

/// The tags a plan wants set (added or changed), from its `tags.*` changes.
pub(crate) fn tags_to_set(changes: &[FieldChange]) -> BTreeMap<String, String> {
    changes
        .iter()
        .filter_map(|c| {
            let key = c.field.strip_prefix("tags.")?;
            Some((key.to_string(), c.desired.as_str()?.to_string()))
        })
        .collect()
}

/// True when some change is under `prefix` (`prefix` itself or `prefix.…`).
pub(crate) fn touches(changes: &[FieldChange], prefix: &str) -> bool {
    changes.iter().any(|c| {
        c.field == prefix
            || c.field
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ownership_is_checked_unless_adoption_is_asked_for() {
        let mut meta = Metadata {
            name: "api".into(),
            labels: Default::default(),
            annotations: Default::default(),
        };
        let ours = [("mooring.dev/resource", "Service/api")];
        assert_eq!(ownership_conflict(Kind::Service, &meta, ours), None);
        let theirs = [("mooring.dev/resource", "Service/other")];
        let conflict = ownership_conflict(Kind::Service, &meta, theirs).unwrap();
        assert!(conflict.contains("belongs to Service/other"), "{conflict}");
        let foreign = ownership_conflict(Kind::Service, &meta, []).unwrap();
        assert!(foreign.contains("not created by mooring"), "{foreign}");
        meta.annotations
            .insert(ADOPT_ANNOTATION.into(), "true".into());
        assert_eq!(ownership_conflict(Kind::Service, &meta, theirs), None);
        assert_eq!(ownership_conflict(Kind::Service, &meta, []), None);
    }

    #[test]
    fn live_tags_keep_managed_keys_only() {
        let desired = BTreeMap::from([("team".to_string(), "a".to_string())]);
        let doc = live_tags_doc([("team", "b"), ("aws:cloudformation", "x")], &desired);
        assert_eq!(doc, json!({"team": "b"}));
    }

    #[test]
    fn tag_changes_and_prefixes() {
        let changes = vec![
            FieldChange {
                field: "tags.mooring.dev/resource".into(),
                live: json!(null),
                desired: json!("Service/api"),
            },
            FieldChange {
                field: "taskDefinition.container.image".into(),
                live: json!("a"),
                desired: json!("b"),
            },
        ];
        assert_eq!(
            tags_to_set(&changes)
                .get("mooring.dev/resource")
                .map(String::as_str),
            Some("Service/api")
        );
        assert!(touches(&changes, "taskDefinition"));
        assert!(!touches(&changes, "task"));
        assert!(touches(&changes, "tags"));
    }
}
