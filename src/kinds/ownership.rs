//! Who a live resource belongs to, and the tags that say so.
//!
//! Everything mooring creates carries three tags: `mooring.dev/managed-by: mooring`,
//! `mooring.dev/stack: <stack>` and `mooring.dev/resource: Kind/name`. A resource is this
//! manifest's when both name it; one tagged before stacks existed (no stack tag) is taken
//! over by the stack whose manifest names it, which adds the stack tag on its first apply.
//! Anything else is left alone unless the manifest says `mooring.dev/adopt: "true"`.

use std::collections::BTreeMap;

use crate::manifest::annotations::{
    ADOPT, ALLOW_REPLACEMENT, MANAGED_BY, TAG_MANAGED_BY, TAG_RESOURCE, TAG_STACK,
};
use crate::manifest::{Kind, Metadata};

/// What a live resource says about its owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// The stack it belongs to (`None`: created before stacks, or not by mooring).
    pub stack: Option<String>,
    /// The `Kind/name` it belongs to (`None`: not created by mooring).
    pub resource: Option<String>,
}

impl Ownership {
    /// Reads the ownership tags out of a resource's tags.
    pub fn from_tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Ownership {
        let mut o = Ownership::default();
        for (k, v) in tags {
            match k {
                TAG_STACK => o.stack = Some(v.to_string()),
                TAG_RESOURCE => o.resource = Some(v.to_string()),
                _ => {}
            }
        }
        o
    }

    /// The manifest name it belongs to in `stack`, for `kind`: set only when the resource
    /// carries this stack's tag. Resources without a stack tag belong to no stack's prune.
    pub fn name_in(&self, stack: &str, kind: Kind) -> Option<String> {
        if self.stack.as_deref() != Some(stack) {
            return None;
        }
        let prefix = format!("{kind}/");
        self.resource
            .as_deref()
            .and_then(|r| r.strip_prefix(prefix.as_str()))
            .map(str::to_string)
    }
}

/// True when the manifest asks to adopt what it finds.
pub fn adopts(metadata: &Metadata) -> bool {
    metadata.annotations.get(ADOPT).map(String::as_str) == Some("true")
}

/// True when the manifest allows replacement.
pub fn allows_replacement(metadata: &Metadata) -> bool {
    metadata
        .annotations
        .get(ALLOW_REPLACEMENT)
        .map(String::as_str)
        == Some("true")
}

/// Why mooring must not touch a live resource; `None` when it is this manifest's, when it
/// predates stacks and names this manifest, or when adoption is asked for.
///
/// A resource of this stack whose manifest (`Kind/name`, `in_set` false) is no longer in the
/// set is this manifest's: that is a rename (same AWS identity, new manifest name), and the
/// resource is taken over and re-tagged, never pruned and created again empty.
pub fn conflict(
    kind: Kind,
    metadata: &Metadata,
    stack: &str,
    live: &Ownership,
    in_set: &dyn Fn(&str) -> bool,
) -> Option<String> {
    if adopts(metadata) {
        return None;
    }
    let me = format!("{kind}/{}", metadata.name);
    if let (Some(r), Some(s)) = (&live.resource, &live.stack)
        && s == stack
        && r.strip_prefix(kind.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
        && !in_set(r)
    {
        return None;
    }
    let hint = format!("set the annotation `{ADOPT}: \"true\"` if {me} should take it over");
    match (&live.resource, &live.stack) {
        (Some(r), Some(s)) if *r == me && s == stack => None,
        (Some(r), None) if *r == me => None,
        (Some(r), Some(s)) if s != stack => Some(format!(
            "it belongs to {r} of the stack `{s}` (tag {TAG_STACK}); {hint}"
        )),
        (Some(r), _) => Some(format!("it belongs to {r} (tag {TAG_RESOURCE}); {hint}")),
        (None, _) => Some(format!(
            "it exists but was not created by mooring (no {TAG_RESOURCE} tag); set the annotation `{ADOPT}: \"true\"` to manage it"
        )),
    }
}

/// The tags mooring puts on a resource: the manifest's own plus the ownership tags.
pub fn owned_tags(
    kind: Kind,
    stack: &str,
    name: &str,
    tags: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut all = tags.clone();
    all.insert(TAG_MANAGED_BY.into(), MANAGED_BY.into());
    all.insert(TAG_STACK.into(), stack.into());
    all.insert(TAG_RESOURCE.into(), format!("{kind}/{name}"));
    all
}

/// Live tags, keeping only the keys the manifest manages: tags that others (AWS, cost
/// tooling, people) add are not drift.
pub fn managed_tags<'a>(
    live: impl IntoIterator<Item = (&'a str, &'a str)>,
    desired: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    live.into_iter()
        .filter(|(k, _)| desired.contains_key(*k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The tags to set so that `live` carries `desired` (added or changed keys).
pub fn tags_to_set(
    desired: &BTreeMap<String, String>,
    live: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    desired
        .iter()
        .filter(|(k, v)| live.and_then(|l| l.get(*k)) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Tags in ECS's request form.
pub fn ecs_tags(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_ecs::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build())
        .collect()
}

/// The ownership marker of resources that cannot be tagged and carry it in their
/// description instead (`managed by mooring: stack/Kind/name`).
pub fn marker(kind: Kind, stack: &str, name: &str) -> String {
    format!("{MARKER_PREFIX}{stack}/{kind}/{name}")
}

const MARKER_PREFIX: &str = "managed by mooring: ";

/// Reads a description marker: `stack/Kind/name`, or `Kind/name` from before stacks.
pub fn from_marker(description: Option<&str>) -> Ownership {
    let Some(rest) = description.and_then(|d| d.strip_prefix(MARKER_PREFIX)) else {
        return Ownership::default();
    };
    let owner = rest.split(';').next().unwrap_or_default().trim();
    let parts: Vec<&str> = owner.split('/').collect();
    match parts.as_slice() {
        [stack, kind, name] => Ownership {
            stack: Some((*stack).to_string()),
            resource: Some(format!("{kind}/{name}")),
        },
        [kind, name] => Ownership {
            stack: None,
            resource: Some(format!("{kind}/{name}")),
        },
        _ => Ownership::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(adopt: bool) -> Metadata {
        let mut m = Metadata {
            name: "api".into(),
            labels: Default::default(),
            annotations: Default::default(),
        };
        if adopt {
            m.annotations.insert(ADOPT.into(), "true".into());
        }
        m
    }

    fn owned(stack: Option<&str>, resource: Option<&str>) -> Ownership {
        Ownership {
            stack: stack.map(str::to_string),
            resource: resource.map(str::to_string),
        }
    }

    #[test]
    fn a_resource_is_ours_when_stack_and_manifest_match_or_it_predates_stacks() {
        let m = meta(false);
        let k = Kind::Service;
        // Every manifest named is in the set.
        let all = |_: &str| true;
        assert_eq!(
            conflict(
                k,
                &m,
                "shop",
                &owned(Some("shop"), Some("Service/api")),
                &all
            ),
            None
        );
        // Created before stacks: taken over (the stack tag is added on apply).
        assert_eq!(
            conflict(k, &m, "shop", &owned(None, Some("Service/api")), &all),
            None
        );
        let other_stack = conflict(
            k,
            &m,
            "shop",
            &owned(Some("blog"), Some("Service/api")),
            &all,
        );
        assert!(
            other_stack
                .as_deref()
                .is_some_and(|c| c.contains("stack `blog`")),
            "{other_stack:?}"
        );
        let other = conflict(
            k,
            &m,
            "shop",
            &owned(Some("shop"), Some("Service/web")),
            &all,
        );
        assert!(other.is_some_and(|c| c.contains("belongs to Service/web")));
        let foreign = conflict(k, &m, "shop", &owned(None, None), &all);
        assert!(foreign.is_some_and(|c| c.contains("not created by mooring")));
        let adopt = meta(true);
        assert_eq!(
            conflict(
                k,
                &adopt,
                "shop",
                &owned(Some("blog"), Some("Service/x")),
                &all
            ),
            None
        );
    }

    /// A manifest renamed: the resource's manifest left the set, this one has its AWS
    /// identity; it is taken over (and re-tagged), not refused and then pruned. Only
    /// within the stack and the kind.
    #[test]
    fn a_resource_whose_manifest_left_the_set_goes_to_the_renamed_one() {
        let m = meta(false);
        let k = Kind::Service;
        let gone = |r: &str| r != "Service/web";
        assert_eq!(
            conflict(
                k,
                &m,
                "shop",
                &owned(Some("shop"), Some("Service/web")),
                &gone
            ),
            None
        );
        assert!(
            conflict(
                k,
                &m,
                "shop",
                &owned(Some("blog"), Some("Service/web")),
                &gone
            )
            .is_some()
        );
        assert!(
            conflict(
                k,
                &m,
                "shop",
                &owned(Some("shop"), Some("TargetGroup/web")),
                &gone
            )
            .is_some()
        );
        assert!(conflict(k, &m, "shop", &owned(None, Some("Service/web")), &gone).is_some());
    }

    #[test]
    fn prune_names_only_resources_of_the_same_stack() {
        let tags = [(TAG_STACK, "shop"), (TAG_RESOURCE, "TargetGroup/api")];
        let o = Ownership::from_tags(tags);
        assert_eq!(o.name_in("shop", Kind::TargetGroup).as_deref(), Some("api"));
        assert_eq!(o.name_in("blog", Kind::TargetGroup), None);
        assert_eq!(o.name_in("shop", Kind::Service), None);
        let legacy = Ownership::from_tags([(TAG_RESOURCE, "TargetGroup/api")]);
        assert_eq!(legacy.name_in("shop", Kind::TargetGroup), None);
    }

    #[test]
    fn description_markers_with_and_without_a_stack() {
        let d = format!(
            "{}; key from x version 1",
            marker(Kind::Connection, "shop", "key")
        );
        assert_eq!(
            from_marker(Some(&d)),
            owned(Some("shop"), Some("Connection/key"))
        );
        assert_eq!(
            from_marker(Some("managed by mooring: Connection/key; key from x")),
            owned(None, Some("Connection/key"))
        );
        assert_eq!(from_marker(Some("hand made")), Ownership::default());
        assert_eq!(from_marker(None), Ownership::default());
    }

    #[test]
    fn only_changed_tags_are_set() {
        let desired =
            BTreeMap::from([("a".to_string(), "1".to_string()), ("b".into(), "2".into())]);
        let live = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".into(), "3".into())]);
        assert_eq!(
            tags_to_set(&desired, Some(&live)),
            BTreeMap::from([("b".to_string(), "2".to_string())])
        );
        assert_eq!(tags_to_set(&desired, None), desired);
        let kept = managed_tags([("a", "1"), ("aws:cloudformation", "x")], &desired);
        assert_eq!(kept, BTreeMap::from([("a".to_string(), "1".to_string())]));
    }
}
