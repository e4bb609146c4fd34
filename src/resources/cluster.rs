//! ECS clusters.

use std::collections::BTreeMap;

use aws_sdk_ecs::types::{Cluster, ClusterField, ClusterSetting, ClusterSettingName};
use serde_json::{Map, Value, json};

use super::{ecs_tags, live_tags_doc, ownership_conflict, tags_doc, tags_to_set, touches};
use crate::aws::AwsError;
use crate::manifest::{ClusterSpec, Kind, Manifest, ManifestSet, owned_tags};
use crate::reconcile::diff::diff_managed;
use crate::reconcile::{
    Action, Applied, Context, Planned, ReconcileError, Reconciler, ResourcePlan,
};

/// Reconciles `kind: Cluster` manifests.
pub struct ClusterReconciler {
    manifests: Vec<Manifest<ClusterSpec>>,
}

impl ClusterReconciler {
    /// The reconciler for the set's clusters.
    pub fn new(set: &ManifestSet) -> Self {
        ClusterReconciler {
            manifests: set.clusters.clone(),
        }
    }
}

/// What plan saw of one cluster.
struct Observed {
    manifest: Manifest<ClusterSpec>,
    live: Option<Cluster>,
}

/// The manifest rendered in the normalised shape plan compares.
pub fn desired_doc(m: &Manifest<ClusterSpec>) -> Value {
    let mut doc = Map::new();
    doc.insert("clusterName".into(), json!(m.spec.aws_name(&m.metadata)));
    if let Some(ci) = m.spec.container_insights {
        doc.insert("settings".into(), json!({"containerInsights": ci.as_str()}));
    }
    doc.insert("tags".into(), tags_doc(&desired_tags(m)));
    Value::Object(doc)
}

fn desired_tags(m: &Manifest<ClusterSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::Cluster, m.name(), &m.spec.tags)
}

/// The live cluster in the same shape as [`desired_doc`]; only managed settings and tags.
pub fn live_doc(m: &Manifest<ClusterSpec>, c: &Cluster) -> Value {
    let mut doc = Map::new();
    doc.insert("clusterName".into(), json!(c.cluster_name()));
    if m.spec.container_insights.is_some() {
        let value = c
            .settings()
            .iter()
            .find(|s| s.name() == Some(&ClusterSettingName::ContainerInsights))
            .and_then(|s| s.value())
            // ECS reports `disabled` when the setting was never set; moto leaves it out.
            .unwrap_or("disabled");
        doc.insert("settings".into(), json!({"containerInsights": value}));
    }
    let live = c.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)));
    doc.insert("tags".into(), live_tags_doc(live, &desired_tags(m)));
    Value::Object(doc)
}

#[async_trait::async_trait]
impl Reconciler for ClusterReconciler {
    fn kind(&self) -> Kind {
        Kind::Cluster
    }

    fn dependencies(&self, _name: &str) -> Vec<(Kind, String)> {
        Vec::new()
    }

    async fn plan(&self, ctx: &Context) -> Vec<(String, Result<Planned, ReconcileError>)> {
        let mut live: BTreeMap<String, Cluster> = BTreeMap::new();
        let names: Vec<String> = self
            .manifests
            .iter()
            .map(|m| m.spec.aws_name(&m.metadata).to_string())
            .collect();
        // DescribeClusters takes up to 100 clusters per call.
        for chunk in names.chunks(100) {
            let out = ctx
                .aws
                .ecs
                .describe_clusters()
                .set_clusters(Some(chunk.to_vec()))
                .include(ClusterField::Tags)
                .include(ClusterField::Settings)
                .send()
                .await;
            match out {
                Ok(out) => {
                    for c in out.clusters.unwrap_or_default() {
                        // A deleted cluster lingers as INACTIVE; it has to be created again.
                        if c.status() != Some("INACTIVE") {
                            live.insert(c.cluster_name().unwrap_or_default().to_string(), c);
                        }
                    }
                }
                Err(e) => {
                    let e = ReconcileError::from(AwsError::from_sdk("ecs:DescribeClusters", e));
                    return self
                        .manifests
                        .iter()
                        .map(|m| (m.name().to_string(), Err(e.clone())))
                        .collect();
                }
            }
        }
        self.manifests
            .iter()
            .map(|m| {
                let aws_name = m.spec.aws_name(&m.metadata);
                let found = live.get(aws_name).cloned();
                if let Some(conflict) = found.as_ref().and_then(|c| {
                    let tags = c.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)));
                    ownership_conflict(Kind::Cluster, &m.metadata, tags)
                }) {
                    return (
                        m.name().to_string(),
                        Err(ReconcileError::Ownership(format!(
                            "cluster {aws_name}: {conflict}"
                        ))),
                    );
                }
                let desired = desired_doc(m);
                let changes = diff_managed(
                    &m.metadata,
                    &desired,
                    found.as_ref().map(|c| live_doc(m, c)).as_ref(),
                );
                let action = match (&found, changes.is_empty()) {
                    (None, _) => Action::Create,
                    (Some(_), true) => Action::None,
                    (Some(_), false) => Action::Update,
                };
                let plan = ResourcePlan {
                    kind: Kind::Cluster,
                    name: m.name().to_string(),
                    aws_id: found
                        .as_ref()
                        .and_then(|c| c.cluster_arn())
                        .unwrap_or(aws_name)
                        .to_string(),
                    action,
                    changes,
                    rollout: None,
                    problems: Vec::new(),
                };
                let observed = Observed {
                    manifest: m.clone(),
                    live: found,
                };
                (
                    m.name().to_string(),
                    Ok(Planned {
                        plan,
                        observed: Box::new(observed),
                    }),
                )
            })
            .collect()
    }

    async fn apply(&self, ctx: &Context, planned: &Planned) -> Result<Applied, ReconcileError> {
        let Some(obs) = planned.observed.downcast_ref::<Observed>() else {
            return Err(ReconcileError::NotConverged("plan of another kind".into()));
        };
        let m = &obs.manifest;
        let settings: Vec<ClusterSetting> = m
            .spec
            .container_insights
            .map(|ci| {
                ClusterSetting::builder()
                    .name(ClusterSettingName::ContainerInsights)
                    .value(ci.as_str())
                    .build()
            })
            .into_iter()
            .collect();
        let Some(live) = &obs.live else {
            let out = ctx
                .aws
                .ecs
                .create_cluster()
                .cluster_name(m.spec.aws_name(&m.metadata))
                .set_settings((!settings.is_empty()).then_some(settings))
                .set_tags(Some(ecs_tags(&desired_tags(m))))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecs:CreateCluster", e))?;
            return Ok(Applied {
                aws_id: out.cluster.and_then(|c| c.cluster_arn).unwrap_or_default(),
                rollout: None,
            });
        };
        let arn = live.cluster_arn().unwrap_or_default().to_string();
        let changes = &planned.plan.changes;
        if touches(changes, "settings") {
            ctx.aws
                .ecs
                .update_cluster()
                .cluster(&arn)
                .set_settings(Some(settings))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecs:UpdateCluster", e))?;
        }
        let tags = tags_to_set(changes);
        if !tags.is_empty() {
            ctx.aws
                .ecs
                .tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(ecs_tags(&tags)))
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
    use crate::manifest::cluster::ContainerInsights;
    use crate::manifest::{Metadata, Origin};
    use crate::reconcile::diff::diff;

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
                tags: BTreeMap::from([("team".into(), "core".into())]),
            },
            origin: Origin {
                file: "c.yaml".into(),
                line: 1,
            },
        }
    }

    fn live(settings: Option<&str>, tags: &[(&str, &str)]) -> Cluster {
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
        b.build()
    }

    const OWNED: [(&str, &str); 3] = [
        ("team", "core"),
        ("mooring.dev/managed-by", "mooring"),
        ("mooring.dev/resource", "Cluster/prd"),
    ];

    #[test]
    fn in_sync_cluster_has_no_changes_and_foreign_tags_are_ignored() {
        let m = manifest(None);
        let mut tags = OWNED.to_vec();
        tags.push(("cost-center", "42"));
        let c = live(Some("disabled"), &tags);
        assert!(diff(&desired_doc(&m), Some(&live_doc(&m, &c))).is_empty());
    }

    #[test]
    fn missing_insights_setting_counts_as_disabled() {
        let m = manifest(Some(ContainerInsights::Disabled));
        assert!(diff(&desired_doc(&m), Some(&live_doc(&m, &live(None, &OWNED)))).is_empty());
        let m = manifest(Some(ContainerInsights::Enabled));
        let changes = diff(&desired_doc(&m), Some(&live_doc(&m, &live(None, &OWNED))));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].field, "settings.containerInsights");
    }

    #[test]
    fn changed_tag_is_drift() {
        let m = manifest(None);
        let c = live(None, &[("team", "other"), OWNED[1], OWNED[2]]);
        let changes = diff(&desired_doc(&m), Some(&live_doc(&m, &c)));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].field, "tags.team");
        assert_eq!(tags_to_set(&changes)["team"], "core");
    }
}
