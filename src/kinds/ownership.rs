//! Who a live resource belongs to, and the tags that say so.
//!
//! Everything mooring creates carries three tags: `mooring.dev/managed-by: mooring`,
//! `mooring.dev/stack: <stack>` and `mooring.dev/resource: Kind/name`, and a fourth,
//! `mooring.dev/environment: <env>`, when the set was resolved for an environment. A
//! resource is this manifest's when all of them name it ([`Owner`]); one tagged before
//! stacks existed (no stack tag) is taken over by the stack whose manifest names it, and
//! one of the stack tagged before environments (no environment tag) by the environment
//! whose manifest names it: each adds its missing tag on its first apply. Anything else is
//! left alone unless the manifest says `mooring.dev/adopt: "true"`.
//!
//! The environment is part of the owner because two environments of one base that both
//! keep the base's names resolve to one stack name: without it, each would take the
//! other's resources for its own, and prune the other's orphans.

use std::collections::BTreeMap;

use crate::manifest::annotations::{
    ADOPT, ALLOW_REPLACEMENT, MANAGED_BY, TAG_ENVIRONMENT, TAG_MANAGED_BY, TAG_RESOURCE, TAG_STACK,
};
use crate::manifest::{Kind, Metadata};

/// Who a manifest set is: its stack, and the environment it was resolved for. Everything
/// the set creates is tagged with both, and only what carries both is the set's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner<'a> {
    /// The stack's name.
    pub stack: &'a str,
    /// The environment (`kind: Environment`), `None` for a plain manifest directory.
    pub environment: Option<&'a str>,
}

impl<'a> From<&'a str> for Owner<'a> {
    /// A plain set's owner: the stack alone.
    fn from(stack: &'a str) -> Self {
        Owner {
            stack,
            environment: None,
        }
    }
}

impl Owner<'_> {
    /// True when `live` carries exactly this owner's tags: the resource is the set's own
    /// (orphans, prune, tags left as they are).
    pub fn owns(&self, live: &Ownership) -> bool {
        live.stack.as_deref() == Some(self.stack) && live.environment.as_deref() == self.environment
    }

    /// True when `live` is the set's own, or the same stack's from before it was applied
    /// as an environment (no environment tag): the set may take it over and tag it.
    pub fn claims(&self, live: &Ownership) -> bool {
        self.owns(live)
            || (live.stack.as_deref() == Some(self.stack)
                && live.environment.is_none()
                && self.environment.is_some())
    }

    /// The owner as one line: `stack `shop`` or `environment `prd` of the stack `shop``.
    fn describe(stack: &str, environment: Option<&str>) -> String {
        match environment {
            Some(e) => format!("the environment `{e}` of the stack `{stack}`"),
            None => format!("the stack `{stack}`"),
        }
    }
}

/// What a live resource says about its owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// The stack it belongs to (`None`: created before stacks, or not by mooring).
    pub stack: Option<String>,
    /// The environment it belongs to (`None`: made by a plain set, or before environments).
    pub environment: Option<String>,
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
                TAG_ENVIRONMENT => o.environment = Some(v.to_string()),
                TAG_RESOURCE => o.resource = Some(v.to_string()),
                _ => {}
            }
        }
        o
    }

    /// The manifest name it belongs to for `owner`, for `kind`: set only when the resource
    /// carries exactly the owner's tags (stack and environment). Resources without a stack
    /// tag belong to no stack's prune, and those without an environment tag to no
    /// environment's.
    pub fn name_in<'a>(&self, owner: impl Into<Owner<'a>>, kind: Kind) -> Option<String> {
        if !owner.into().owns(self) {
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
pub fn conflict<'a>(
    kind: Kind,
    metadata: &Metadata,
    owner: impl Into<Owner<'a>>,
    live: &Ownership,
    in_set: &dyn Fn(&str) -> bool,
) -> Option<String> {
    if adopts(metadata) {
        return None;
    }
    let owner = owner.into();
    let me = format!("{kind}/{}", metadata.name);
    if let Some(r) = &live.resource
        && owner.claims(live)
        && r.strip_prefix(kind.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
        && !in_set(r)
    {
        return None;
    }
    let hint = format!("set the annotation `{ADOPT}: \"true\"` if {me} should take it over");
    match (&live.resource, &live.stack) {
        (Some(r), Some(_)) if *r == me && owner.claims(live) => None,
        (Some(r), None) if *r == me => None,
        (Some(r), Some(s)) if s != owner.stack => Some(format!(
            "it belongs to {r} of {} (tag {TAG_STACK}); {hint}",
            Owner::describe(s, live.environment.as_deref())
        )),
        (Some(r), Some(s)) if !owner.claims(live) => Some(format!(
            "it belongs to {r} of {} (tag {TAG_ENVIRONMENT}), not {}; {hint}",
            Owner::describe(s, live.environment.as_deref()),
            Owner::describe(owner.stack, owner.environment)
        )),
        (Some(r), _) => Some(format!("it belongs to {r} (tag {TAG_RESOURCE}); {hint}")),
        (None, _) => Some(format!(
            "it exists but was not created by mooring (no {TAG_RESOURCE} tag); set the annotation `{ADOPT}: \"true\"` to manage it"
        )),
    }
}

/// The tags mooring puts on a resource: the manifest's own plus the ownership tags.
pub fn owned_tags<'a>(
    kind: Kind,
    owner: impl Into<Owner<'a>>,
    name: &str,
    tags: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let owner = owner.into();
    let mut all = tags.clone();
    all.insert(TAG_MANAGED_BY.into(), MANAGED_BY.into());
    all.insert(TAG_STACK.into(), owner.stack.into());
    if let Some(e) = owner.environment {
        all.insert(TAG_ENVIRONMENT.into(), e.into());
    }
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
/// description instead (`managed by mooring: stack/Kind/name`, the stack written
/// `stack@env` for an environment; stack names cannot hold `@`).
pub fn marker<'a>(kind: Kind, owner: impl Into<Owner<'a>>, name: &str) -> String {
    let owner = owner.into();
    match owner.environment {
        Some(e) => format!("{MARKER_PREFIX}{}@{e}/{kind}/{name}", owner.stack),
        None => format!("{MARKER_PREFIX}{}/{kind}/{name}", owner.stack),
    }
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
        [stack, kind, name] => {
            let (stack, environment) = match stack.split_once('@') {
                Some((s, e)) => (s, Some(e.to_string())),
                None => (*stack, None),
            };
            Ownership {
                stack: Some(stack.to_string()),
                environment,
                resource: Some(format!("{kind}/{name}")),
            }
        }
        [kind, name] => Ownership {
            stack: None,
            environment: None,
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
            environment: None,
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

    /// Two environments of one stack name (no name scheme): each owns only what carries its
    /// environment tag; one takes over the stack's resources from before environments.
    #[test]
    fn environments_of_one_stack_own_only_their_own() {
        let m = meta(false);
        let k = Kind::Service;
        let all = |_: &str| true;
        let prd = Owner {
            stack: "shop",
            environment: Some("prd"),
        };
        let qa = Owner {
            stack: "shop",
            environment: Some("qa"),
        };
        let tagged = Ownership::from_tags([
            (TAG_STACK, "shop"),
            (TAG_ENVIRONMENT, "prd"),
            (TAG_RESOURCE, "Service/api"),
        ]);
        assert_eq!(conflict(k, &m, prd, &tagged, &all), None);
        let refused = conflict(k, &m, qa, &tagged, &all).unwrap_or_default();
        assert!(
            refused.contains("environment `prd` of the stack `shop`")
                && refused.contains("not the environment `qa`"),
            "{refused}"
        );
        // A plain set of the same stack does not take an environment's resource either.
        assert!(conflict(k, &m, "shop", &tagged, &all).is_some());
        // Nor does a renamed manifest of qa take prd's resource of a manifest gone from qa.
        let gone = |r: &str| r != "Service/web";
        let web = Ownership::from_tags([
            (TAG_STACK, "shop"),
            (TAG_ENVIRONMENT, "prd"),
            (TAG_RESOURCE, "Service/web"),
        ]);
        assert!(conflict(k, &m, qa, &web, &gone).is_some());
        assert_eq!(conflict(k, &m, prd, &web, &gone), None);
        // The stack's resource from before environments: taken over, its tag added.
        let plain = owned(Some("shop"), Some("Service/api"));
        assert_eq!(conflict(k, &m, prd, &plain, &all), None);
        assert_eq!(
            owned_tags(k, prd, "api", &BTreeMap::new()).get(TAG_ENVIRONMENT),
            Some(&"prd".to_string())
        );
        assert_eq!(
            owned_tags(k, "shop", "api", &BTreeMap::new()).get(TAG_ENVIRONMENT),
            None
        );
        // Prune: exactly the owner's, never the other environment's nor the untagged.
        assert_eq!(tagged.name_in(prd, k).as_deref(), Some("api"));
        assert_eq!(tagged.name_in(qa, k), None);
        assert_eq!(tagged.name_in("shop", k), None);
        assert_eq!(plain.name_in(prd, k), None);
        // Markers carry the environment too.
        assert_eq!(
            from_marker(Some(&marker(Kind::Connection, prd, "key"))),
            Ownership {
                stack: Some("shop".into()),
                environment: Some("prd".into()),
                resource: Some("Connection/key".into()),
            }
        );
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
