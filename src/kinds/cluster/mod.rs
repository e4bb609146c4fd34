//! ECS clusters (`kind: Cluster`).
//!
//! Reads: one DescribeClusters per 100 clusters, with tags and settings.

pub mod spec;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ecs::types::{
    Cluster, ClusterField, ClusterSetting, ClusterSettingName,
};
use serde::{Deserialize, Serialize};

use super::ownership::{Ownership, ecs_tags, managed_tags, owned_tags, tags_to_set};
use super::{Change, Declared, Resource};
use super::from::Field;
use super::service::render::{
    CapacityProviderDoc, capacity_provider_strategy, desired_strategy, live_strategy,
};
use crate::aws::AwsError;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::{Applied, Cx, ReconcileError};
use spec::ClusterSpec;

/// DescribeClusters takes up to 100 clusters per call.
const DESCRIBE_BATCH: usize = 100;

/// The `Cluster` kind.
pub struct Unit;

impl Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "ecs:DescribeClusters",
        "ecs:CreateCluster",
        "ecs:UpdateCluster",
        "ecs:PutClusterCapacityProviders",
        "ecs:TagResource",
    ];
    type State = ();

    const FIELDS: &'static [Field] = &[Field {
        name: "arn",
        doc: "the cluster's ARN",
    }];

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the ECS cluster `{}`", m.spec.aws_name(&m.metadata))
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.clusters
            .iter()
            .map(|c| {
                crate::iam::arn(
                    "ecs",
                    &format!("cluster/{}", c.spec.aws_name(&c.metadata)),
                )
            })
            .collect()
    }

}

/// A cluster in the shape plan compares: only the settings and tags the manifest manages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// The name in ECS.
    pub cluster_name: String,
    /// Cluster settings the manifest sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Settings>,
    /// The associated capacity providers, sorted, when the manifest manages them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_providers: Option<Vec<String>>,
    /// The default strategy by provider name (weight and base 0 when unset), when the
    /// manifest manages it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_capacity_provider_strategy: Option<Vec<CapacityProviderDoc>>,
    /// Tags the manifest manages.
    pub tags: BTreeMap<String, String>,
}

/// The cluster settings mooring manages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// `enabled`, `disabled` or `enhanced`.
    pub container_insights: String,
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

fn desired_tags(set: &ManifestSet, m: &Manifest<ClusterSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::Cluster, set.owner(), m.name(), &m.spec.tags)
}

#[async_trait::async_trait]
impl Resource for Unit {
    /// Live clusters by name (INACTIVE ones left out: they have to be created again).
    type Live = HashMap<String, Cluster>;
    type Observed = Option<Cluster>;
    type Doc = Doc;

    async fn read(
        cx: &Cx<'_>,
        manifests: &[Manifest<ClusterSpec>],
    ) -> Result<Self::Live, ReconcileError> {
        let names: Vec<String> = manifests
            .iter()
            .map(|m| m.spec.aws_name(&m.metadata).to_string())
            .collect();
        let mut live = HashMap::new();
        for chunk in names.chunks(DESCRIBE_BATCH) {
            let out = cx
                .aws()
                .ecs
                .describe_clusters()
                .set_clusters(Some(chunk.to_vec()))
                .include(ClusterField::Tags)
                .include(ClusterField::Settings)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecs:DescribeClusters", e))?;
            for c in out.clusters.unwrap_or_default() {
                if c.status() != Some("INACTIVE") {
                    live.insert(c.cluster_name().unwrap_or_default().to_string(), c);
                }
            }
        }
        Ok(live)
    }

    async fn observe(
        _cx: &Cx<'_>,
        m: &Manifest<ClusterSpec>,
        live: &Self::Live,
    ) -> Result<Self::Observed, ReconcileError> {
        Ok(live.get(m.spec.aws_name(&m.metadata)).cloned())
    }

    fn fields(obs: &Self::Observed) -> Vec<(&'static str, String)> {
        obs.as_ref()
            .and_then(|c| c.cluster_arn())
            .map(|arn| vec![("arn", arn.to_string())])
            .unwrap_or_default()
    }

    fn ownership(obs: &Self::Observed) -> Option<Ownership> {
        obs.as_ref().map(|c| {
            Ownership::from_tags(c.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))))
        })
    }

    fn desired(set: &ManifestSet, m: &Manifest<ClusterSpec>, _obs: &Self::Observed) -> Doc {
        Doc {
            cluster_name: m.spec.aws_name(&m.metadata).to_string(),
            settings: m.spec.container_insights.map(|ci| Settings {
                container_insights: ci.as_str().to_string(),
            }),
            capacity_providers: m.spec.capacity_providers.as_ref().map(|p| {
                sorted(p.iter().map(|p| p.as_str().to_string()).collect())
            }),
            default_capacity_provider_strategy: m
                .spec
                .default_capacity_provider_strategy
                .as_ref()
                .map(|s| desired_strategy(s)),
            tags: desired_tags(set, m),
        }
    }

    fn live(set: &ManifestSet, m: &Manifest<ClusterSpec>, obs: &Self::Observed) -> Option<Doc> {
        let c = obs.as_ref()?;
        let settings = m.spec.container_insights.map(|_| Settings {
            container_insights: c
                .settings()
                .iter()
                .find(|s| s.name() == Some(&ClusterSettingName::ContainerInsights))
                .and_then(|s| s.value())
                // ECS reports `disabled` when the setting was never set; moto leaves it out.
                .unwrap_or("disabled")
                .to_string(),
        });
        let tags = c.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)));
        Some(Doc {
            cluster_name: c.cluster_name().unwrap_or_default().to_string(),
            settings,
            // DescribeClusters leaves `capacityProviders` out when there are none.
            capacity_providers: m
                .spec
                .capacity_providers
                .as_ref()
                .map(|_| sorted(c.capacity_providers().to_vec())),
            default_capacity_provider_strategy: m
                .spec
                .default_capacity_provider_strategy
                .as_ref()
                .map(|_| live_strategy(c.default_capacity_provider_strategy())),
            tags: managed_tags(tags, &desired_tags(set, m)),
        })
    }

    fn aws_id(_set: &ManifestSet, m: &Manifest<ClusterSpec>, obs: &Self::Observed) -> String {
        obs.as_ref()
            .and_then(|c| c.cluster_arn())
            .unwrap_or(m.spec.aws_name(&m.metadata))
            .to_string()
    }

    async fn apply(
        cx: &Cx<'_>,
        _m: &Manifest<ClusterSpec>,
        obs: &Self::Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        let Doc {
            cluster_name,
            settings,
            capacity_providers,
            default_capacity_provider_strategy,
            tags,
        } = change.desired;
        let ecs = &cx.aws().ecs;
        let settings: Vec<ClusterSetting> = settings
            .iter()
            .map(|s| {
                ClusterSetting::builder()
                    .name(ClusterSettingName::ContainerInsights)
                    .value(&s.container_insights)
                    .build()
            })
            .collect();
        let (Some(live), Some(live_doc)) = (obs, change.live) else {
            let out = ecs
                .create_cluster()
                .cluster_name(cluster_name)
                .set_settings((!settings.is_empty()).then_some(settings))
                .set_capacity_providers(capacity_providers.clone())
                .set_default_capacity_provider_strategy(
                    default_capacity_provider_strategy
                        .as_deref()
                        .map(capacity_provider_strategy),
                )
                .set_tags(Some(ecs_tags(tags)))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecs:CreateCluster", e))?;
            return Ok(Applied {
                aws_id: out.cluster.and_then(|c| c.cluster_arn).unwrap_or_default(),
                rollout: None,
            });
        };
        let arn = live.cluster_arn().unwrap_or_default().to_string();
        // The name identifies the cluster: a live cluster of another name is not this one.
        if change.differs(|d| &d.settings) {
            ecs.update_cluster()
                .cluster(&arn)
                .set_settings(Some(settings))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecs:UpdateCluster", e))?;
        }
        if change.differs(|d| &d.capacity_providers)
            || change.differs(|d| &d.default_capacity_provider_strategy)
        {
            // The call sets both: what the manifest leaves out keeps its live value.
            let providers = capacity_providers
                .clone()
                .unwrap_or_else(|| live.capacity_providers().to_vec());
            let strategy = default_capacity_provider_strategy.as_deref().map_or_else(
                || live.default_capacity_provider_strategy().to_vec(),
                capacity_provider_strategy,
            );
            ecs.put_cluster_capacity_providers()
                .cluster(&arn)
                .set_capacity_providers(Some(providers))
                .set_default_capacity_provider_strategy(Some(strategy))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecs:PutClusterCapacityProviders", e))?;
        }
        let missing = tags_to_set(tags, Some(&live_doc.tags));
        if !missing.is_empty() {
            ecs.tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(ecs_tags(&missing)))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecs:TagResource", e))?;
        }
        Ok(Applied {
            aws_id: arn,
            rollout: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Metadata, Origin};
    use crate::reconcile::diff::diff;
    use aws_sdk_ecs::types::CapacityProviderStrategyItem;
    use spec::ContainerInsights;

    fn set() -> ManifestSet {
        ManifestSet {
            stack: "shop".into(),
            ..Default::default()
        }
    }

    fn manifest(ci: Option<ContainerInsights>) -> Manifest<ClusterSpec> {
        Manifest {
            metadata: Metadata {
                name: "prd".into(),
                labels: Default::default(),
                annotations: Default::default(),
            },
            spec: ClusterSpec {
                cluster_name: None,
                container_insights: ci,
                capacity_providers: None,
                default_capacity_provider_strategy: None,
                tags: BTreeMap::from([("team".into(), "core".into())]),
            },
            origin: Origin {
                file: "c.yaml".into(),
                line: 1,
            },
        }
    }

    fn live(settings: Option<&str>, tags: &[(&str, &str)]) -> Option<Cluster> {
        let mut b = Cluster::builder()
            .cluster_name("prd")
            .cluster_arn("arn:aws:ecs:eu-west-1:123456789012:cluster/prd");
        if let Some(v) = settings {
            b = b.settings(
                ClusterSetting::builder()
                    .name(ClusterSettingName::ContainerInsights)
                    .value(v)
                    .build(),
            );
        }
        for (k, v) in tags {
            b = b.tags(aws_sdk_ecs::types::Tag::builder().key(*k).value(*v).build());
        }
        Some(b.build())
    }

    const OWNED: [(&str, &str); 4] = [
        ("team", "core"),
        ("mooring.dev/managed-by", "mooring"),
        ("mooring.dev/stack", "shop"),
        ("mooring.dev/resource", "Cluster/prd"),
    ];

    fn changes(m: &Manifest<ClusterSpec>, obs: &Option<Cluster>) -> Vec<String> {
        let s = set();
        let d = serde_json::to_value(Unit::desired(&s, m, obs)).unwrap();
        let l = Unit::live(&s, m, obs).map(|l| serde_json::to_value(l).unwrap());
        diff(&d, l.as_ref()).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn in_sync_cluster_has_no_changes_and_foreign_tags_are_ignored() {
        let m = manifest(None);
        let mut tags = OWNED.to_vec();
        tags.push(("cost-center", "42"));
        assert!(changes(&m, &live(Some("disabled"), &tags)).is_empty());
    }

    #[test]
    fn missing_insights_setting_counts_as_disabled() {
        let m = manifest(Some(ContainerInsights::Disabled));
        assert!(changes(&m, &live(None, &OWNED)).is_empty());
        let m = manifest(Some(ContainerInsights::Enabled));
        assert_eq!(
            changes(&m, &live(None, &OWNED)),
            ["settings.containerInsights"]
        );
    }

    #[test]
    fn changed_tag_and_a_missing_stack_tag_are_drift() {
        let m = manifest(None);
        let c = live(None, &[("team", "other"), OWNED[1], OWNED[3]]);
        assert_eq!(changes(&m, &c), ["tags.mooring.dev/stack", "tags.team"]);
        let s = set();
        let desired = Unit::desired(&s, &m, &c);
        let live_doc = Unit::live(&s, &m, &c).unwrap();
        let missing = tags_to_set(&desired.tags, Some(&live_doc.tags));
        assert_eq!(missing.len(), 2);
        assert_eq!(missing["team"], "core");
        assert_eq!(missing["mooring.dev/stack"], "shop");
    }

    fn strategy_item(name: &str, weight: Option<i32>, base: Option<i32>) -> CapacityProviderStrategyItem {
        CapacityProviderStrategyItem::builder()
            .capacity_provider(name)
            .set_weight(weight)
            .set_base(base)
            .build()
            .unwrap()
    }

    #[test]
    fn capacity_providers_are_compared_only_when_managed() {
        use crate::kinds::service::spec::{CapacityProviderItem, FargateCapacityProvider};
        let mut m = manifest(None);
        let with = |providers: &[&str], strategy: Vec<CapacityProviderStrategyItem>| {
            let mut c = live(None, &OWNED).unwrap();
            c.capacity_providers = Some(providers.iter().map(|p| p.to_string()).collect());
            c.default_capacity_provider_strategy = Some(strategy);
            Some(c)
        };
        // Not managed: whatever the cluster has is not drift.
        let c = with(&["FARGATE"], vec![strategy_item("FARGATE", Some(1), None)]);
        assert!(changes(&m, &c).is_empty());

        m.spec.capacity_providers = Some(vec![
            FargateCapacityProvider::FargateSpot,
            FargateCapacityProvider::Fargate,
        ]);
        m.spec.default_capacity_provider_strategy = Some(vec![CapacityProviderItem {
            capacity_provider: FargateCapacityProvider::FargateSpot,
            weight: Some(3),
            base: None,
        }]);
        // In another order, with the base left out (moto) and AWS's 0: in sync.
        let c = with(
            &["FARGATE", "FARGATE_SPOT"],
            vec![strategy_item("FARGATE_SPOT", Some(3), None)],
        );
        assert!(changes(&m, &c).is_empty(), "{:?}", changes(&m, &c));
        let c = with(
            &["FARGATE_SPOT", "FARGATE"],
            vec![strategy_item("FARGATE_SPOT", Some(3), Some(0))],
        );
        assert!(changes(&m, &c).is_empty());
        // A provider removed and the default strategy reweighted by hand.
        let c = with(
            &["FARGATE"],
            vec![strategy_item("FARGATE", Some(1), None)],
        );
        assert_eq!(
            changes(&m, &c),
            ["capacityProviders", "defaultCapacityProviderStrategy"]
        );
        // A cluster that never had any (DescribeClusters leaves the list out).
        assert_eq!(
            changes(&m, &live(None, &OWNED)),
            ["capacityProviders", "defaultCapacityProviderStrategy"]
        );
        // `[]` manages them as none.
        m.spec.capacity_providers = Some(Vec::new());
        m.spec.default_capacity_provider_strategy = Some(Vec::new());
        assert!(changes(&m, &live(None, &OWNED)).is_empty());
    }
}
