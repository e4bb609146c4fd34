//! SSM parameters (`kind: ParameterSet`).
//!
//! Reads: one DescribeParameters listing per set (metadata only: names and types, never
//! values), then GetParameters for the *managed* names only, 10 per call, without
//! decryption. Required parameters' values are never requested, so they cannot reach
//! logs, plans, `/status` or alerts.
//!
//! Tags: the managed tags (ownership + `spec.tags`) of managed parameters are compared
//! without a ListTagsForResource per parameter: a second DescribeParameters listing of the
//! path, filtered on every managed tag at once (`tag:KEY` equals VALUE, ANDed), finds the
//! parameters that carry all of them; only a parameter missing from it has its tags read
//! (one ListTagsForResource), so plan names the exact tag. Steady state: one call per set
//! and pass. Tags others add are neither drift nor removed; a changed managed tag is put
//! back with AddTagsToResource (PutParameter refuses tags with Overwrite).
//! A managed parameter whose `mooring.dev/stack` tag names another stack is that stack's:
//! the set is refused, naming the owner, and neither its values nor its tags are written
//! (two stacks declaring one parameter do not take it from each other; dev with prd's SSM
//! path does not overwrite prd's values), unless the set says `mooring.dev/adopt`.

pub mod spec;

use std::collections::BTreeMap;

use aws_sdk_ssm::types::{ParameterStringFilter, ParameterType as SsmType, Tag};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::ownership::{Ownership, owned_tags};
use super::{Change, Resource};
use crate::aws::AwsError;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::{Applied, Cx, Problem, ReconcileError};
use spec::ParameterSetSpec;

/// GetParameters takes at most 10 names per call.
const GET_BATCH: usize = 10;

/// The `ParameterSet` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "ssm:DescribeParameters",
            "ssm:GetParameters",
            "ssm:PutParameter",
            "ssm:AddTagsToResource",
            "ssm:ListTagsForResource",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("ParameterSet/{}", m.metadata.name)
    }

    /// One SSM parameter is declared by one parameter set only.
    fn check_set(m: &Manifest<Self::Spec>, set: &ManifestSet, f: &mut Findings<'_>) {
        let earlier = set
            .parameter_sets
            .iter()
            .take_while(|p| p.metadata.name != m.metadata.name);
        let earlier: Vec<&Manifest<Self::Spec>> = earlier.collect();
        for (section, names) in [
            ("parameters", m.spec.parameters.keys().collect::<Vec<_>>()),
            ("required", m.spec.required.keys().collect()),
        ] {
            for name in names {
                let full = m.spec.full_name(name);
                if let Some(other) = earlier.iter().find(|p| p.spec.declares(&full)) {
                    f.at(
                        &format!("/spec/{section}/{}", crate::manifest::yaml::escape_segment(name)),
                        format!("`{full}` is also declared by ParameterSet `{}`", other.metadata.name),
                    );
                }
            }
        }
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.parameter_sets
            .iter()
            .map(|p| crate::iam::arn("ssm", &format!("parameter/{}/*", p.spec.path.trim_matches('/'))))
            .collect()
    }

}

/// What AWS has for one parameter name. `value` is only ever read for `String`
/// parameters that the manifest manages.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveParameter {
    /// SSM type.
    pub kind: String,
    /// Value, for managed `String` parameters.
    pub value: Option<String>,
    /// Its managed tags, for managed parameters: `None` when it carries all of them as
    /// the manifest says (the tag-filtered listing found it).
    pub tags: Option<BTreeMap<String, String>>,
    /// Who its ownership tags name, when that is another stack (an environment over the
    /// same base with the same SSM path): `None` for this stack's or an untagged one.
    pub owner: Option<Ownership>,
}

/// The managed parameters as plan compares them: full name → type and value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Doc {
    /// Full name → what it holds (`None`: it does not exist).
    pub parameters: BTreeMap<String, Option<Value>>,
}

/// One managed parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Value {
    /// SSM type (`String` for managed values).
    #[serde(rename = "type")]
    pub kind: String,
    /// The value (`None` for a parameter of another type: its value is never read).
    pub value: Option<String>,
    /// The managed tags (ownership + `spec.tags`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// What apply cannot fix: missing or mistyped required parameters, and managed names that
/// exist as SecureString (mooring will not overwrite a secret with a plain value).
pub fn problems(spec: &ParameterSetSpec, live: &BTreeMap<String, LiveParameter>) -> Vec<Problem> {
    let mut out = Vec::new();
    for (rel, want) in &spec.required {
        let full = spec.full_name(rel);
        match live.get(&full) {
            None => out.push(Problem::requirement(format!(
                "required parameter {full} is missing: set it by hand as {} (mooring never writes it)",
                want.as_str()
            ))),
            Some(p) if p.kind != want.as_str() => out.push(Problem::requirement(format!(
                "required parameter {full} is a {}, expected {}",
                p.kind,
                want.as_str()
            ))),
            Some(_) => {}
        }
    }
    for rel in spec.parameters.keys() {
        let full = spec.full_name(rel);
        if live.get(&full).is_some_and(|p| p.kind == "SecureString") {
            out.push(Problem::requirement(format!(
                "parameter {full} exists as a SecureString; mooring will not overwrite it with a plain String"
            )));
        }
    }
    out
}

/// Every parameter under `path` (metadata only), once per pass: the set's listing, which
/// services also read the versions of the parameters a set declares from.
pub(crate) async fn listing(
    cx: &Cx<'_>,
    path: &str,
) -> Result<std::sync::Arc<Vec<aws_sdk_ssm::types::ParameterMetadata>>, AwsError> {
    cx.cache
        .ssm_paths
        .get(path.to_string(), || async {
            let filter = ParameterStringFilter::builder()
                .key("Path")
                .option("Recursive")
                .values(path)
                .build()
                .map_err(|e| AwsError::invalid_request("ssm:DescribeParameters", e))?;
            let pages: Vec<_> = cx
                .aws()
                .ssm
                .describe_parameters()
                .parameter_filters(filter)
                .max_results(50)
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| AwsError::from_sdk("ssm:DescribeParameters", e))?;
            Ok(std::sync::Arc::new(
                pages
                    .iter()
                    .flat_map(|page| page.parameters())
                    .cloned()
                    .collect(),
            ))
        })
        .await
}

/// The tags mooring manages on the set's parameters.
fn desired_tags(set: &ManifestSet, m: &Manifest<ParameterSetSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::ParameterSet, set.owner(), m.name(), &m.spec.tags)
}

/// The filters of [`tagged_names`]'s listing: the path, and `tag:KEY` equals VALUE per
/// tag. `None` when a value is empty: SSM refuses empty filter values (1-1024 characters),
/// so such tags cannot be matched by a listing.
fn tag_filters(
    path: &str,
    tags: &BTreeMap<String, String>,
) -> Result<Option<Vec<ParameterStringFilter>>, aws_sdk_ssm::error::BuildError> {
    if tags.values().any(String::is_empty) {
        return Ok(None);
    }
    let mut filters = vec![
        ParameterStringFilter::builder()
            .key("Path")
            .option("Recursive")
            .values(path)
            .build()?,
    ];
    for (k, v) in tags {
        filters.push(
            ParameterStringFilter::builder()
                .key(format!("tag:{k}"))
                .option("Equals")
                .values(v)
                .build()?,
        );
    }
    Ok(Some(filters))
}

/// The parameters under `path` that carry every tag of `tags` with its value: one listing
/// with a `tag:KEY` filter per tag (filters are ANDed). None when a tag's value is empty
/// (see [`tag_filters`]): every managed parameter then has its tags read.
async fn tagged_names(
    cx: &Cx<'_>,
    path: &str,
    tags: &BTreeMap<String, String>,
) -> Result<std::collections::BTreeSet<String>, AwsError> {
    let Some(filters) = tag_filters(path, tags)
        .map_err(|e| AwsError::invalid_request("ssm:DescribeParameters", e))?
    else {
        return Ok(std::collections::BTreeSet::new());
    };
    let pages: Vec<_> = cx
        .aws()
        .ssm
        .describe_parameters()
        .set_parameter_filters(Some(filters))
        .max_results(50)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(|e| AwsError::from_sdk("ssm:DescribeParameters", e))?;
    Ok(pages
        .iter()
        .flat_map(|page| page.parameters())
        .filter_map(|p| p.name().map(str::to_string))
        .collect())
}

#[async_trait::async_trait]
impl Resource for Unit {
    /// Nothing is shared between sets: each lists its own path.
    type Live = ();
    /// Every parameter under the set's path, by full name.
    type Observed = BTreeMap<String, LiveParameter>;
    type Doc = Doc;

    async fn read(_cx: &Cx<'_>, _manifests: &[Manifest<ParameterSetSpec>]) -> Result<(), ReconcileError> {
        Ok(())
    }

    /// One DescribeParameters listing of the path (metadata only), then GetParameters for
    /// the managed plain names, 10 per call, without decryption.
    async fn observe(
        cx: &Cx<'_>,
        m: &Manifest<ParameterSetSpec>,
        _live: &(),
    ) -> Result<Self::Observed, ReconcileError> {
        let spec = &m.spec;
        let ssm = &cx.aws().ssm;
        let listed = listing(cx, &spec.path).await?;
        let mut live: BTreeMap<String, LiveParameter> = listed
            .iter()
            .filter_map(|p| {
                Some((
                    p.name()?.to_string(),
                    LiveParameter {
                        kind: p.r#type()?.as_str().to_string(),
                        value: None,
                        tags: None,
                        owner: None,
                    },
                ))
            })
            .collect();
        let managed: Vec<String> = spec
            .parameters
            .keys()
            .map(|rel| spec.full_name(rel))
            .filter(|n| live.contains_key(n))
            .collect();
        if !managed.is_empty() {
            let want = desired_tags(cx.set, m);
            let tagged = tagged_names(cx, &spec.path, &want).await?;
            for name in managed.iter().filter(|n| !tagged.contains(*n)) {
                let out = ssm
                    .list_tags_for_resource()
                    .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                    .resource_id(name)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ssm:ListTagsForResource", e))?;
                let tags = super::ownership::managed_tags(
                    out.tag_list().iter().map(|t| (t.key(), t.value())),
                    &want,
                );
                let owner = Ownership::from_tags(
                    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                );
                let theirs = owner.stack.is_some() && !cx.set.owner().claims(&owner);
                if let Some(p) = live.get_mut(name) {
                    p.tags = Some(tags);
                    p.owner = theirs.then_some(owner);
                }
            }
        }
        let names: Vec<String> = spec
            .parameters
            .keys()
            .map(|rel| spec.full_name(rel))
            .filter(|n| live.get(n).is_some_and(|p| p.kind == "String"))
            .collect();
        for chunk in names.chunks(GET_BATCH) {
            let out = ssm
                .get_parameters()
                .set_names(Some(chunk.to_vec()))
                .with_decryption(false)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ssm:GetParameters", e))?;
            for p in out.parameters() {
                if let (Some(name), Some(value)) = (p.name(), p.value())
                    && let Some(entry) = live.get_mut(name)
                {
                    entry.value = Some(value.to_string());
                }
            }
        }
        Ok(live)
    }

    /// A set manages values by name under its path; a managed parameter whose ownership
    /// tags name another stack is that stack's (dev with prd's SSM path would overwrite
    /// prd's values and take them over).
    fn ownership(obs: &Self::Observed) -> Option<Ownership> {
        obs.values().find_map(|p| p.owner.clone())
    }

    fn desired(set: &ManifestSet, m: &Manifest<ParameterSetSpec>, _obs: &Self::Observed) -> Doc {
        let spec = &m.spec;
        let tags = desired_tags(set, m);
        Doc {
            parameters: spec
                .parameters
                .iter()
                .map(|(rel, v)| {
                    (
                        spec.full_name(rel),
                        Some(Value {
                            kind: "String".into(),
                            value: Some(v.clone()),
                            tags: tags.clone(),
                        }),
                    )
                })
                .collect(),
        }
    }

    /// `None` (the set is created) when none of its managed parameters exists.
    fn live(set: &ManifestSet, m: &Manifest<ParameterSetSpec>, obs: &Self::Observed) -> Option<Doc> {
        let spec = &m.spec;
        let want = desired_tags(set, m);
        let full: Vec<String> = spec.parameters.keys().map(|rel| spec.full_name(rel)).collect();
        if !full.is_empty() && full.iter().all(|n| !obs.contains_key(n)) {
            return None;
        }
        Some(Doc {
            parameters: full
                .into_iter()
                .map(|name| {
                    let v = obs.get(&name).map(|p| Value {
                        kind: p.kind.clone(),
                        value: p.value.clone(),
                        tags: p.tags.clone().unwrap_or_else(|| want.clone()),
                    });
                    (name, v)
                })
                .collect(),
        })
    }

    fn aws_id(_set: &ManifestSet, m: &Manifest<ParameterSetSpec>, _obs: &Self::Observed) -> String {
        m.spec.path.clone()
    }

    fn problems(m: &Manifest<ParameterSetSpec>, obs: &Self::Observed) -> Vec<Problem> {
        problems(&m.spec, obs)
    }

    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<ParameterSetSpec>,
        obs: &Self::Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        let Doc { parameters } = change.desired;
        let tags: Vec<Tag> = desired_tags(cx.set, m)
            .iter()
            .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
            .collect();
        for (full, want) in parameters {
            let Some(Value {
                kind: _,
                value: Some(value),
                tags: want_tags,
            }) = want
            else {
                continue;
            };
            let current = obs.get(full);
            if let Some(live_tags) = current.and_then(|p| p.tags.as_ref()) {
                let missing = super::ownership::tags_to_set(want_tags, Some(live_tags));
                if !missing.is_empty() {
                    cx.aws()
                        .ssm
                        .add_tags_to_resource()
                        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                        .resource_id(full)
                        .set_tags(Some(
                            missing
                                .iter()
                                .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
                                .collect(),
                        ))
                        .send()
                        .await
                        .map_err(|e| AwsError::from_sdk("ssm:AddTagsToResource", e))?;
                    info!(parameter = %full, "put its tags back");
                }
            }
            if current.is_some_and(|p| p.kind == "String" && p.value.as_ref() == Some(value)) {
                continue;
            }
            if current.is_some_and(|p| p.kind == "SecureString") {
                continue; // reported as a problem; never overwrite a secret
            }
            let exists = current.is_some();
            // SSM refuses tags together with Overwrite: tags go on at creation only.
            cx.aws()
                .ssm
                .put_parameter()
                .name(full)
                .value(value)
                .r#type(SsmType::String)
                .overwrite(exists)
                .set_tags((!exists).then(|| tags.clone()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ssm:PutParameter", e))?;
            info!(parameter = %full, created = !exists, "wrote parameter");
        }
        Ok(Applied {
            aws_id: m.spec.path.clone(),
            rollout: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Origin;
    use crate::reconcile::diff::diff;
    use serde_json::json;
    use spec::ParameterType;

    fn manifest() -> Manifest<ParameterSetSpec> {
        Manifest {
            metadata: crate::manifest::Metadata {
                name: "config".into(),
                labels: Default::default(),
                annotations: Default::default(),
            },
            spec: ParameterSetSpec {
                path: "/app/prd".into(),
                parameters: BTreeMap::from([
                    ("db/host".into(), "db.internal".into()),
                    ("db/port".into(), "5432".into()),
                ]),
                required: BTreeMap::from([("db/password".into(), ParameterType::SecureString)]),
                tags: BTreeMap::new(),
            },
            origin: Origin {
                file: "p.yaml".into(),
                line: 1,
            },
        }
    }

    fn live(entries: &[(&str, &str, Option<&str>)]) -> BTreeMap<String, LiveParameter> {
        entries
            .iter()
            .map(|(n, k, v)| {
                (
                    n.to_string(),
                    LiveParameter {
                        kind: k.to_string(),
                        value: v.map(str::to_string),
                        tags: None,
                        owner: None,
                    },
                )
            })
            .collect()
    }

    fn changes(obs: &BTreeMap<String, LiveParameter>) -> Vec<crate::reconcile::FieldChange> {
        let set = ManifestSet::default();
        let m = manifest();
        let d = serde_json::to_value(Unit::desired(&set, &m, obs)).unwrap();
        let l = Unit::live(&set, &m, obs).map(|l| serde_json::to_value(l).unwrap());
        diff(&d, l.as_ref())
    }

    #[test]
    fn in_sync_parameters_have_no_changes_or_problems() {
        let l = live(&[
            ("/app/prd/db/host", "String", Some("db.internal")),
            ("/app/prd/db/port", "String", Some("5432")),
            ("/app/prd/db/password", "SecureString", None),
            ("/app/prd/unmanaged", "String", Some("x")),
        ]);
        assert!(changes(&l).is_empty());
        assert!(problems(&manifest().spec, &l).is_empty());
    }

    #[test]
    fn changed_and_missing_values_are_named() {
        let l = live(&[("/app/prd/db/host", "String", Some("old.internal"))]);
        let c = changes(&l);
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "parameters./app/prd/db/host.value",
                "parameters./app/prd/db/port.type",
                "parameters./app/prd/db/port.value",
                // A missing parameter is created with the managed tags.
                "parameters./app/prd/db/port.tags.mooring.dev/managed-by",
                "parameters./app/prd/db/port.tags.mooring.dev/resource",
                "parameters./app/prd/db/port.tags.mooring.dev/stack",
            ]
        );
        assert_eq!(c[0].live, json!("old.internal"));
        // Nothing there at all: the set is created.
        assert!(Unit::live(&ManifestSet::default(), &manifest(), &live(&[])).is_none());
    }

    #[test]
    fn a_managed_tag_changed_by_hand_is_named_and_others_tags_are_not() {
        let mut l = live(&[
            ("/app/prd/db/host", "String", Some("db.internal")),
            ("/app/prd/db/port", "String", Some("5432")),
        ]);
        // Not found by the tag-filtered listing: its managed tags as read.
        let mut tags = owned_tags(Kind::ParameterSet, "", "config", &BTreeMap::new());
        tags.insert("mooring.dev/stack".into(), "someone-else".into());
        l.get_mut("/app/prd/db/port").unwrap().tags = Some(tags);
        let c = changes(&l);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].field, "parameters./app/prd/db/port.tags.mooring.dev/stack");
        assert_eq!(c[0].live, json!("someone-else"));
    }

    #[test]
    fn required_parameters_are_checked_without_values() {
        let spec = manifest().spec;
        let missing = problems(&spec, &live(&[]));
        assert_eq!(missing.len(), 1);
        assert!(missing[0].message.contains("/app/prd/db/password is missing"));
        let wrong = problems(&spec, &live(&[("/app/prd/db/password", "String", None)]));
        assert!(
            wrong[0].message.contains("is a String, expected SecureString"),
            "{wrong:?}"
        );
        let secret = problems(
            &spec,
            &live(&[
                ("/app/prd/db/password", "SecureString", None),
                ("/app/prd/db/host", "SecureString", None),
            ]),
        );
        assert!(secret[0].message.contains("will not overwrite it"), "{secret:?}");
    }

    /// Tags may have empty values (the manifest allows them), SSM's filter values may not:
    /// such a set is never listed with a filter SSM refuses (it would fail every pass).
    #[test]
    fn tag_filters_never_carry_an_empty_value() {
        let mut tags = BTreeMap::from([
            ("mooring.dev/stack".to_string(), "shop".to_string()),
            ("team".to_string(), "payments".to_string()),
        ]);
        let filters = tag_filters("/app/prd", &tags).unwrap().unwrap();
        assert_eq!(filters.len(), 3);
        assert!(
            filters
                .iter()
                .flat_map(|f| f.values())
                .all(|v| (1..=1024).contains(&v.len())),
            "{filters:?}"
        );
        tags.insert("env".into(), String::new());
        assert!(tag_filters("/app/prd", &tags).unwrap().is_none());
    }
}
