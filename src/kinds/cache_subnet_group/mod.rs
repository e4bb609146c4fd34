//! ElastiCache cache subnet groups (`kind: CacheSubnetGroup`).
//!
//! Reads: one paginated DescribeCacheSubnetGroups for all groups, the subnet lookups
//! through the pass cache (shared with services and load balancers), and one
//! ListTagsForResource per existing group. Description and subnets change in place
//! (ModifyCacheSubnetGroup); nothing about a subnet group needs a replacement. moto
//! implements neither ModifyCacheSubnetGroup nor DeleteCacheSubnetGroup: those are covered
//! with canned responses (tests below).

pub mod spec;

use std::collections::BTreeMap;

use aws_sdk_elasticache::types::{CacheSubnetGroup, Tag};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::network::{self, Target};
use super::ownership::{Ownership, managed_tags, owned_tags, tags_to_set};
use super::{Change, Declared, Resource};
use super::from::Field;
use crate::aws::AwsError;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::{Applied, Cx, Owned, ReconcileError};
use spec::CacheSubnetGroupSpec;

/// The `CacheSubnetGroup` kind.
pub struct Unit;

impl Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "elasticache:DescribeCacheSubnetGroups",
        "elasticache:ListTagsForResource",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcs",
        "elasticache:CreateCacheSubnetGroup",
        "elasticache:ModifyCacheSubnetGroup",
        "elasticache:DeleteCacheSubnetGroup",
        "elasticache:AddTagsToResource",
    ];
    type State = ();

    const FIELDS: &'static [Field] = &[Field {
        name: "name",
        doc: "the cache subnet group's name",
    }];

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the cache subnet group `{}`", m.spec.aws_name(&m.metadata))
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.cache_subnet_groups
            .iter()
            .map(|g| {
                crate::iam::arn(
                    "elasticache",
                    &format!("subnetgroup:{}", g.spec.aws_name(&g.metadata)),
                )
            })
            .collect()
    }

}

/// A cache subnet group in the shape plan compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// Shown in the console.
    pub description: String,
    /// Subnet IDs, sorted.
    pub subnet_ids: Vec<String>,
    /// Tags the manifest manages.
    pub tags: BTreeMap<String, String>,
}

/// One cache subnet group as observed.
pub struct Observed {
    /// The live group.
    group: Option<CacheSubnetGroup>,
    /// Its tags.
    tags: Vec<Tag>,
    /// The manifest's subnets, resolved (sorted).
    subnet_ids: Vec<String>,
}

fn desired_tags(set: &ManifestSet, m: &Manifest<CacheSubnetGroupSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::CacheSubnetGroup, set.owner(), m.name(), &m.spec.tags)
}

fn pairs(tags: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter().filter_map(|t| Some((t.key()?, t.value()?)))
}

async fn describe_all(cx: &Cx<'_>) -> Result<Vec<CacheSubnetGroup>, AwsError> {
    cx.aws()
        .elasticache
        .describe_cache_subnet_groups()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AwsError::from_sdk("elasticache:DescribeCacheSubnetGroups", e))
}

/// The name in an ElastiCache subnet group ARN (`…:subnetgroup:<name>`).
fn name_of_arn(arn: &str) -> &str {
    arn.rsplit_once(":subnetgroup:").map_or(arn, |(_, name)| name)
}

#[async_trait::async_trait]
impl Resource for Unit {
    type Live = Vec<CacheSubnetGroup>;
    type Observed = Observed;
    type Doc = Doc;

    async fn read(
        cx: &Cx<'_>,
        _manifests: &[Manifest<CacheSubnetGroupSpec>],
    ) -> Result<Self::Live, ReconcileError> {
        Ok(describe_all(cx).await?)
    }

    async fn observe(
        cx: &Cx<'_>,
        m: &Manifest<CacheSubnetGroupSpec>,
        live: &Self::Live,
    ) -> Result<Observed, ReconcileError> {
        let name = m.spec.aws_name(&m.metadata);
        let subnet_ids = network::resolve(cx, Target::Subnets, &m.spec.subnets).await?;
        let group = live
            .iter()
            .find(|g| g.cache_subnet_group_name() == Some(name))
            .cloned();
        let tags = match group.as_ref().and_then(|g| g.arn()) {
            Some(arn) => super::elasticache::tags_of(cx, arn).await?,
            None => Vec::new(),
        };
        Ok(Observed {
            group,
            tags,
            subnet_ids,
        })
    }

    fn fields(obs: &Observed) -> Vec<(&'static str, String)> {
        obs.group
            .as_ref()
            .and_then(|g| g.cache_subnet_group_name())
            .map(|n| vec![("name", n.to_string())])
            .unwrap_or_default()
    }

    fn ownership(obs: &Observed) -> Option<Ownership> {
        obs.group
            .as_ref()
            .map(|_| Ownership::from_tags(pairs(&obs.tags)))
    }

    fn desired(set: &ManifestSet, m: &Manifest<CacheSubnetGroupSpec>, obs: &Observed) -> Doc {
        Doc {
            description: m.spec.description(&m.metadata),
            subnet_ids: obs.subnet_ids.clone(),
            tags: desired_tags(set, m),
        }
    }

    fn live(set: &ManifestSet, m: &Manifest<CacheSubnetGroupSpec>, obs: &Observed) -> Option<Doc> {
        let g = obs.group.as_ref()?;
        let mut subnet_ids: Vec<String> = g
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_identifier().map(str::to_string))
            .collect();
        subnet_ids.sort();
        subnet_ids.dedup();
        Some(Doc {
            description: g
                .cache_subnet_group_description()
                .unwrap_or_default()
                .to_string(),
            subnet_ids,
            tags: managed_tags(pairs(&obs.tags), &desired_tags(set, m)),
        })
    }

    fn aws_id(_set: &ManifestSet, m: &Manifest<CacheSubnetGroupSpec>, obs: &Observed) -> String {
        obs.group
            .as_ref()
            .and_then(|g| g.arn())
            .unwrap_or(m.spec.aws_name(&m.metadata))
            .to_string()
    }

    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<CacheSubnetGroupSpec>,
        obs: &Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        let Doc {
            description,
            subnet_ids,
            tags,
        } = change.desired;
        let ec = &cx.aws().elasticache;
        let name = m.spec.aws_name(&m.metadata);
        let existing = obs.group.as_ref().and_then(|g| g.arn()).zip(change.live);
        let Some((arn, live)) = existing else {
            let out = ec
                .create_cache_subnet_group()
                .cache_subnet_group_name(name)
                .cache_subnet_group_description(description)
                .set_subnet_ids(Some(subnet_ids.clone()))
                .set_tags(Some(super::elasticache::tags(tags)))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticache:CreateCacheSubnetGroup", e))?;
            let arn = out
                .cache_subnet_group()
                .and_then(|g| g.arn())
                .unwrap_or(name)
                .to_string();
            info!(cache_subnet_group = %arn, "created cache subnet group");
            return Ok(Applied {
                aws_id: arn,
                rollout: None,
            });
        };
        if change.differs(|d| &d.description) || change.differs(|d| &d.subnet_ids) {
            // ModifyCacheSubnetGroup replaces the subnet list with the one sent.
            ec.modify_cache_subnet_group()
                .cache_subnet_group_name(name)
                .cache_subnet_group_description(description)
                .set_subnet_ids(Some(subnet_ids.clone()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticache:ModifyCacheSubnetGroup", e))?;
            info!(cache_subnet_group = %name, "modified cache subnet group");
        }
        super::elasticache::add_tags(cx, arn, &tags_to_set(tags, Some(&live.tags))).await?;
        Ok(Applied {
            aws_id: arn.to_string(),
            rollout: None,
        })
    }

    async fn owned(cx: &Cx<'_>) -> Option<Result<Vec<Owned>, ReconcileError>> {
        let listed = async {
            let mut out = Vec::new();
            for g in describe_all(cx).await? {
                let Some(arn) = g.arn() else { continue };
                if g.cache_subnet_group_name() == Some("default") {
                    continue;
                }
                let tags = super::elasticache::tags_of(cx, arn).await?;
                out.extend(Owned::by_tags(
                    pairs(&tags),
                    cx.set.owner(),
                    Kind::CacheSubnetGroup,
                    arn,
                    None,
                ));
            }
            Ok::<_, AwsError>(out)
        };
        Some(listed.await.map_err(Into::into))
    }

    async fn delete(cx: &Cx<'_>, owned: &Owned) -> Result<(), ReconcileError> {
        cx.aws()
            .elasticache
            .delete_cache_subnet_group()
            .cache_subnet_group_name(name_of_arn(&owned.aws_id))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticache:DeleteCacheSubnetGroup", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;
    use crate::reconcile::diff::diff;
    use aws_sdk_elasticache::types::Subnet;

    const ARN: &str = "arn:aws:elasticache:eu-west-1:123456789012:subnetgroup:salon-cache";

    fn load(spec: &str) -> ManifestSet {
        let text = format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: CacheSubnetGroup\nmetadata: {{name: salon-cache}}\nspec:\n{spec}"
        );
        load_with_stack(&[("g.yaml".into(), text)]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn default_set() -> ManifestSet {
        load("  subnets: {ids: [subnet-b, subnet-a]}\n  tags: {team: core}\n")
    }

    /// The group as ElastiCache describes it after mooring created it.
    fn observed(set: &ManifestSet, subnets: &[&str]) -> Observed {
        let m = &set.cache_subnet_groups[0];
        let mut g = CacheSubnetGroup::builder()
            .cache_subnet_group_name("salon-cache")
            .cache_subnet_group_description("salon-cache (managed by mooring)")
            .arn(ARN)
            .vpc_id("vpc-1");
        for s in subnets {
            g = g.subnets(Subnet::builder().subnet_identifier(*s).build());
        }
        Observed {
            group: Some(g.build()),
            tags: crate::kinds::elasticache::tags(&desired_tags(set, m)),
            subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
        }
    }

    fn changes(set: &ManifestSet, obs: &Observed) -> Vec<String> {
        let m = &set.cache_subnet_groups[0];
        let d = serde_json::to_value(Unit::desired(set, m, obs)).unwrap();
        let l = Unit::live(set, m, obs).map(|l| serde_json::to_value(l).unwrap());
        diff(&d, l.as_ref()).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn a_group_as_elasticache_describes_it_is_in_sync_whatever_the_subnet_order() {
        let set = default_set();
        let obs = observed(&set, &["subnet-b", "subnet-a"]);
        assert_eq!(changes(&set, &obs), Vec::<String>::new());
        let o = Unit::ownership(&obs).unwrap();
        assert_eq!(
            o.name_in("test", Kind::CacheSubnetGroup).as_deref(),
            Some("salon-cache")
        );
        let m = &set.cache_subnet_groups[0];
        assert_eq!(Unit::aws_id(&set, m, &obs), ARN);
    }

    #[test]
    fn subnets_description_and_tag_drift_are_named() {
        let set = default_set();
        let mut obs = observed(&set, &["subnet-a", "subnet-c"]);
        if let Some(g) = obs.group.as_mut() {
            g.cache_subnet_group_description = Some("hand-edited".into());
        }
        obs.tags.retain(|t| t.key() != Some("team"));
        obs.tags.push(Tag::builder().key("team").value("other").build());
        obs.tags.push(Tag::builder().key("cost-center").value("42").build());
        assert_eq!(
            changes(&set, &obs),
            ["description", "subnetIds", "tags.team"],
            "tags the manifest does not set are not compared"
        );
        assert!(
            Unit::replacement(
                &Unit::desired(&set, &set.cache_subnet_groups[0], &obs),
                &Unit::live(&set, &set.cache_subnet_groups[0], &obs).unwrap()
            )
            .0
            .is_empty(),
            "a subnet group changes in place"
        );
    }

    #[test]
    fn a_missing_group_is_created_with_the_ownership_tags() {
        let set = load("  cacheSubnetGroupName: other\n  description: Redis\n  subnets: {lookup: {vpc: default}}\n");
        let m = &set.cache_subnet_groups[0];
        let obs = Observed {
            group: None,
            tags: Vec::new(),
            subnet_ids: vec!["subnet-a".into()],
        };
        assert!(Unit::live(&set, m, &obs).is_none());
        assert!(Unit::ownership(&obs).is_none());
        assert_eq!(Unit::aws_id(&set, m, &obs), "other");
        let d = Unit::desired(&set, m, &obs);
        assert_eq!(d.description, "Redis");
        assert_eq!(d.tags["mooring.dev/resource"], "CacheSubnetGroup/salon-cache");
        assert_eq!(d.tags["mooring.dev/managed-by"], "mooring");
    }

    #[test]
    fn invalid_groups_are_rejected_with_their_place() {
        for (spec, expected) in [
            (
                "  cacheSubnetGroupName: Salon_Cache\n  subnets: {ids: [subnet-a]}\n",
                "g.yaml:5:3: spec.cacheSubnetGroupName: `Salon_Cache` is not a valid cache subnet group name",
            ),
            (
                "  cacheSubnetGroupName: default\n  subnets: {ids: [subnet-a]}\n",
                "spec.cacheSubnetGroupName: `default` is ElastiCache's own subnet group",
            ),
            (
                "  subnets: {ids: [sg-1]}\n",
                "g.yaml:5:19: spec.subnets.ids[0]: `sg-1` does not look like a `subnet-…` ID",
            ),
            (
                "  subnets: {refs: [salon-redis]}\n",
                "spec.subnets.refs: only security groups can be named by manifest",
            ),
            (
                "  subnets: {ids: [subnet-a]}\n  tags: {mooring.dev/x: y}\n",
                "tag keys under `mooring.dev/` are reserved",
            ),
        ] {
            let text = format!(
                "apiVersion: mooring.dev/v1alpha1\nkind: CacheSubnetGroup\nmetadata: {{name: salon-cache}}\nspec:\n{spec}"
            );
            let errs: Vec<String> = load_with_stack(&[("g.yaml".into(), text)])
                .unwrap_err()
                .0
                .iter()
                .map(|e| e.to_string())
                .collect();
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "missing {expected:?} in {errs:#?}"
            );
        }
    }

    /// moto implements neither ModifyCacheSubnetGroup nor DeleteCacheSubnetGroup: apply of
    /// a changed subnet list and pruning are shown with canned responses.
    #[tokio::test]
    async fn changed_subnets_are_modified_in_place_and_pruning_deletes_by_name() {
        use aws_sdk_elasticache::Client;
        use aws_sdk_elasticache::operation::add_tags_to_resource::AddTagsToResourceOutput;
        use aws_sdk_elasticache::operation::delete_cache_subnet_group::DeleteCacheSubnetGroupOutput;
        use aws_sdk_elasticache::operation::modify_cache_subnet_group::ModifyCacheSubnetGroupOutput;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        let modify = mock!(Client::modify_cache_subnet_group)
            .match_requests(|r| {
                r.cache_subnet_group_name() == Some("salon-cache")
                    && r.subnet_ids() == ["subnet-a", "subnet-b"]
                    && r.cache_subnet_group_description() == Some("salon-cache (managed by mooring)")
            })
            .then_output(|| ModifyCacheSubnetGroupOutput::builder().build());
        let tag = mock!(Client::add_tags_to_resource)
            .then_output(|| AddTagsToResourceOutput::builder().build());
        let delete = mock!(Client::delete_cache_subnet_group)
            .match_requests(|r| r.cache_subnet_group_name() == Some("old-cache"))
            .then_output(|| DeleteCacheSubnetGroupOutput::builder().build());
        let client = mock_client!(
            aws_sdk_elasticache,
            RuleMode::MatchAny,
            [&modify, &tag, &delete]
        );
        let config = crate::aws::offline_config();
        let mut aws = crate::aws::Aws::from_config(&config).unwrap();
        aws.elasticache = client;
        let ctx = crate::reconcile::Context::new(aws);

        let set = default_set();
        let m = &set.cache_subnet_groups[0];
        let obs = observed(&set, &["subnet-a", "subnet-c"]);
        let live = Unit::live(&set, m, &obs).unwrap();
        let desired = Unit::desired(&set, m, &obs);
        let cache = crate::reconcile::PassCache::default();
        let cx = Cx {
            ctx: &ctx,
            set: &set,
            cache: &cache,
        };
        let change = Change {
            desired: &desired,
            live: Some(&live),
            replace: false,
        };
        let applied = Unit::apply(&cx, m, &obs, &change).await.unwrap();
        assert_eq!(applied.aws_id, ARN);
        assert_eq!(modify.num_calls(), 1);
        assert_eq!(tag.num_calls(), 0, "the tags were in place");

        let old = Owned {
            name: "old-cache".into(),
            aws_id: "arn:aws:elasticache:eu-west-1:123456789012:subnetgroup:old-cache".into(),
            scope: None,
        };
        Unit::delete(&cx, &old).await.unwrap();
        assert_eq!(delete.num_calls(), 1);
    }
}
