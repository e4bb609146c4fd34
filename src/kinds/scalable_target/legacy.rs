//! Application Auto Scaling of ECS services (`kind: ScalableTarget`).
//!
//! Reads: one DescribeScalableTargets per 50 targets and one (paginated)
//! DescribeScalingPolicies for the whole `ecs` namespace, filtered here: moto ignores the
//! `PolicyNames` filter and matches `ResourceId` by substring, and one listing is fewer
//! calls than one per service anyway.
//!
//! Policies mooring manages are named `mooring-<manifest>-<cpu|memory>`; other policies on
//! the same target are left alone. Scalable targets carry no ownership tags here (moto
//! does not store them); an existing target for the service is taken over.

pub mod spec;

use std::collections::BTreeMap;

use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ScalableTarget,
    ScalingPolicy, ServiceNamespace, TargetTrackingScalingPolicyConfiguration,
};
use serde_json::{Map, Value, json};
use tracing::info;

use crate::aws::AwsError;
use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::autoscaling::{DEFAULT_COOLDOWN, TargetTrackingSpec};
use crate::manifest::{Kind, Manifest, ManifestSet, ScalableTargetSpec};
use crate::reconcile::diff::diff_managed;
use crate::reconcile::{
    Action, Applied, Context, Planned, ReconcileError, Reconciler, ResourcePlan,
};
use crate::resources::touches;

/// DescribeScalableTargets takes at most 50 resource IDs per call.
const TARGET_BATCH: usize = 50;

/// Reconciles `kind: ScalableTarget` manifests.
pub struct ScalableTargetReconciler {
    /// Each manifest with the Application Auto Scaling resource ID of its service.
    targets: Vec<(Manifest<ScalableTargetSpec>, String)>,
}

impl ScalableTargetReconciler {
    /// The reconciler for the set's scalable targets.
    pub fn new(set: &ManifestSet) -> Self {
        let targets = set
            .scalable_targets
            .iter()
            .map(|t| {
                let id = set
                    .service(&t.spec.service)
                    .map(|svc| {
                        let cluster = set
                            .cluster(&svc.spec.cluster)
                            .map(|c| c.spec.aws_name(&c.metadata).to_string())
                            .unwrap_or_else(|| svc.spec.cluster.clone());
                        resource_id(&cluster, svc.spec.aws_name(&svc.metadata))
                    })
                    .unwrap_or_default();
                (t.clone(), id)
            })
            .collect();
        ScalableTargetReconciler { targets }
    }
}

/// The resource ID Application Auto Scaling uses for an ECS service.
pub fn resource_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

/// The name of the policy mooring manages for one target-tracking entry.
pub fn policy_name(manifest: &str, t: &TargetTrackingSpec) -> String {
    format!("mooring-{manifest}-{}", t.metric.short())
}

/// The manifest in the normalised shape plan compares.
pub fn desired_doc(m: &Manifest<ScalableTargetSpec>) -> Value {
    let policies: Map<String, Value> = m
        .spec
        .target_tracking
        .iter()
        .map(|t| {
            (
                policy_name(m.name(), t),
                json!({
                    "metric": t.metric.as_str(),
                    "targetValue": t.target_value,
                    "scaleInCooldown": t.scale_in_cooldown_seconds.unwrap_or(DEFAULT_COOLDOWN),
                    "scaleOutCooldown": t.scale_out_cooldown_seconds.unwrap_or(DEFAULT_COOLDOWN),
                    "disableScaleIn": t.disable_scale_in,
                }),
            )
        })
        .collect();
    json!({
        "minCapacity": m.spec.min_capacity,
        "maxCapacity": m.spec.max_capacity,
        "policies": policies,
    })
}

/// The live target and its policies in the shape of [`desired_doc`]; only the policies
/// the manifest names.
pub fn live_doc(
    m: &Manifest<ScalableTargetSpec>,
    target: &ScalableTarget,
    policies: &[ScalingPolicy],
) -> Value {
    let wanted = desired_doc(m);
    let names: Vec<&String> = wanted["policies"]
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let live: Map<String, Value> = names
        .into_iter()
        .map(|name| {
            let doc = policies
                .iter()
                .find(|p| p.policy_name() == name)
                .and_then(|p| p.target_tracking_scaling_policy_configuration())
                .map_or(Value::Null, |c| {
                    json!({
                        "metric": c
                            .predefined_metric_specification()
                            .map(|s| s.predefined_metric_type().as_str()),
                        "targetValue": c.target_value(),
                        "scaleInCooldown": c.scale_in_cooldown().unwrap_or(DEFAULT_COOLDOWN as i32),
                        "scaleOutCooldown": c.scale_out_cooldown().unwrap_or(DEFAULT_COOLDOWN as i32),
                        "disableScaleIn": c.disable_scale_in().unwrap_or(false),
                    })
                });
            (name.clone(), doc)
        })
        .collect();
    json!({
        "minCapacity": target.min_capacity(),
        "maxCapacity": target.max_capacity(),
        "policies": live,
    })
}

struct Observed {
    manifest: Manifest<ScalableTargetSpec>,
    resource_id: String,
    exists: bool,
}

async fn describe_targets(
    ctx: &Context,
    ids: &[String],
) -> Result<BTreeMap<String, ScalableTarget>, AwsError> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(TARGET_BATCH) {
        let mut token = None;
        loop {
            let page = ctx
                .aws
                .autoscaling
                .describe_scalable_targets()
                .service_namespace(ServiceNamespace::Ecs)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .set_resource_ids(Some(chunk.to_vec()))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| {
                    AwsError::from_sdk("application-autoscaling:DescribeScalableTargets", e)
                })?;
            for t in page.scalable_targets() {
                out.insert(t.resource_id().to_string(), t.clone());
            }
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
    }
    Ok(out)
}

async fn describe_policies(ctx: &Context) -> Result<Vec<ScalingPolicy>, AwsError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = ctx
            .aws
            .autoscaling
            .describe_scaling_policies()
            .service_namespace(ServiceNamespace::Ecs)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk("application-autoscaling:DescribeScalingPolicies", e)
            })?;
        out.extend(page.scaling_policies().iter().cloned());
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl Reconciler for ScalableTargetReconciler {
    fn kind(&self) -> Kind {
        Kind::ScalableTarget
    }

    fn dependencies(&self, name: &str) -> Vec<(Kind, String)> {
        self.targets
            .iter()
            .filter(|(m, _)| m.name() == name)
            .map(|(m, _)| (Kind::Service, m.spec.service.clone()))
            .collect()
    }

    async fn plan(&self, ctx: &Context) -> Vec<(String, Result<Planned, ReconcileError>)> {
        if self.targets.is_empty() {
            return Vec::new();
        }
        let ids: Vec<String> = self.targets.iter().map(|(_, id)| id.clone()).collect();
        let observed = async {
            let targets = describe_targets(ctx, &ids).await?;
            let policies = describe_policies(ctx).await?;
            Ok::<_, AwsError>((targets, policies))
        }
        .await;
        let (targets, policies) = match observed {
            Ok(o) => o,
            Err(e) => {
                let e = ReconcileError::from(e);
                return self
                    .targets
                    .iter()
                    .map(|(m, _)| (m.name().to_string(), Err(e.clone())))
                    .collect();
            }
        };
        self.targets
            .iter()
            .map(|(m, id)| {
                let target = targets.get(id);
                let mine: Vec<ScalingPolicy> = policies
                    .iter()
                    .filter(|p| p.resource_id() == id)
                    .cloned()
                    .collect();
                let changes = diff_managed(
                    &m.metadata,
                    &desired_doc(m),
                    target.map(|t| live_doc(m, t, &mine)).as_ref(),
                );
                let action = match (target, changes.is_empty()) {
                    (None, _) => Action::Create,
                    (Some(_), true) => Action::None,
                    (Some(_), false) => Action::Update,
                };
                let planned = Planned {
                    plan: ResourcePlan {
                        kind: Kind::ScalableTarget,
                        name: m.name().to_string(),
                        aws_id: id.clone(),
                        action,
                        changes,
                        rollout: None,
                        problems: Vec::new(),
                    },
                    observed: Box::new(Observed {
                        manifest: m.clone(),
                        resource_id: id.clone(),
                        exists: target.is_some(),
                    }),
                };
                (m.name().to_string(), Ok(planned))
            })
            .collect()
    }

    async fn apply(&self, ctx: &Context, planned: &Planned) -> Result<Applied, ReconcileError> {
        let Some(obs) = planned.observed.downcast_ref::<Observed>() else {
            return Err(ReconcileError::NotConverged("plan of another kind".into()));
        };
        let m = &obs.manifest;
        let changes = &planned.plan.changes;
        let capacity = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        if !obs.exists || touches(changes, "minCapacity") || touches(changes, "maxCapacity") {
            // RegisterScalableTarget creates or updates.
            ctx.aws
                .autoscaling
                .register_scalable_target()
                .service_namespace(ServiceNamespace::Ecs)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .resource_id(&obs.resource_id)
                .min_capacity(capacity(m.spec.min_capacity))
                .max_capacity(capacity(m.spec.max_capacity))
                .send()
                .await
                .map_err(|e| {
                    AwsError::from_sdk("application-autoscaling:RegisterScalableTarget", e)
                })?;
            info!(resource = %obs.resource_id, "registered scalable target");
        }
        for t in &m.spec.target_tracking {
            let name = policy_name(m.name(), t);
            if obs.exists && !touches(changes, &format!("policies.{name}")) {
                continue;
            }
            let config = TargetTrackingScalingPolicyConfiguration::builder()
                .target_value(t.target_value)
                .predefined_metric_specification(
                    PredefinedMetricSpecification::builder()
                        .predefined_metric_type(MetricType::from(t.metric.as_str()))
                        .build()
                        .map_err(|e| {
                            AwsError::invalid_request("application-autoscaling:PutScalingPolicy", e)
                        })?,
                )
                .scale_in_cooldown(capacity(
                    t.scale_in_cooldown_seconds.unwrap_or(DEFAULT_COOLDOWN),
                ))
                .scale_out_cooldown(capacity(
                    t.scale_out_cooldown_seconds.unwrap_or(DEFAULT_COOLDOWN),
                ))
                .disable_scale_in(t.disable_scale_in)
                .build()
                .map_err(|e| {
                    AwsError::invalid_request("application-autoscaling:PutScalingPolicy", e)
                })?;
            ctx.aws
                .autoscaling
                .put_scaling_policy()
                .policy_name(&name)
                .service_namespace(ServiceNamespace::Ecs)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .resource_id(&obs.resource_id)
                .policy_type(PolicyType::TargetTrackingScaling)
                .target_tracking_scaling_policy_configuration(config)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("application-autoscaling:PutScalingPolicy", e))?;
            info!(policy = %name, "put scaling policy");
        }
        Ok(Applied {
            aws_id: obs.resource_id.clone(),
            rollout: None,
        })
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::autoscaling::ScalingMetric;
    use crate::manifest::{Metadata, Origin};
    use crate::reconcile::diff::diff;

    fn manifest() -> Manifest<ScalableTargetSpec> {
        Manifest {
            metadata: Metadata {
                name: "api".into(),
                labels: Default::default(),
                annotations: Default::default(),
            },
            spec: ScalableTargetSpec {
                service: "api".into(),
                min_capacity: 1,
                max_capacity: 4,
                target_tracking: vec![
                    TargetTrackingSpec {
                        metric: ScalingMetric::ECSServiceAverageCPUUtilization,
                        target_value: 80.0,
                        scale_in_cooldown_seconds: None,
                        scale_out_cooldown_seconds: Some(60),
                        disable_scale_in: false,
                    },
                    TargetTrackingSpec {
                        metric: ScalingMetric::ECSServiceAverageMemoryUtilization,
                        target_value: 80.0,
                        scale_in_cooldown_seconds: None,
                        scale_out_cooldown_seconds: None,
                        disable_scale_in: false,
                    },
                ],
            },
            origin: Origin {
                file: "a.yaml".into(),
                line: 1,
            },
        }
    }

    fn policy(name: &str, metric: &str, value: f64, out_cooldown: Option<i32>) -> ScalingPolicy {
        ScalingPolicy::builder()
            .policy_arn(format!("arn:aws:autoscaling:eu-west-1:1:scalingPolicy:x:resource/ecs/service/prd/api:policyName/{name}"))
            .policy_name(name)
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id("service/prd/api")
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .policy_type(PolicyType::TargetTrackingScaling)
            .creation_time(aws_smithy_types::DateTime::from_secs(0))
            .target_tracking_scaling_policy_configuration(
                TargetTrackingScalingPolicyConfiguration::builder()
                    .target_value(value)
                    .predefined_metric_specification(
                        PredefinedMetricSpecification::builder()
                            .predefined_metric_type(MetricType::from(metric))
                            .build()
                            .unwrap(),
                    )
                    .set_scale_out_cooldown(out_cooldown)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    fn target(min: i32, max: i32) -> ScalableTarget {
        ScalableTarget::builder()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id("service/prd/api")
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .min_capacity(min)
            .max_capacity(max)
            .role_arn("arn:aws:iam::1:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService")
            .creation_time(aws_smithy_types::DateTime::from_secs(0))
            .build()
            .unwrap()
    }

    #[test]
    fn in_sync_with_defaults_filled_and_foreign_policies_ignored() {
        let m = manifest();
        let policies = vec![
            policy(
                "mooring-api-cpu",
                "ECSServiceAverageCPUUtilization",
                80.0,
                Some(60),
            ),
            // AWS leaves unset cooldowns out; they default to 300.
            policy(
                "mooring-api-memory",
                "ECSServiceAverageMemoryUtilization",
                80.0,
                None,
            ),
            policy(
                "someone-elses",
                "ECSServiceAverageCPUUtilization",
                50.0,
                None,
            ),
        ];
        assert!(
            diff(
                &desired_doc(&m),
                Some(&live_doc(&m, &target(1, 4), &policies))
            )
            .is_empty()
        );
    }

    #[test]
    fn changed_target_value_and_capacity_are_named() {
        let m = manifest();
        let policies = vec![policy(
            "mooring-api-cpu",
            "ECSServiceAverageCPUUtilization",
            60.0,
            Some(60),
        )];
        let changes = diff(
            &desired_doc(&m),
            Some(&live_doc(&m, &target(1, 8), &policies)),
        );
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields[..2],
            ["maxCapacity", "policies.mooring-api-cpu.targetValue"]
        );
        // The missing memory policy: every field of it.
        assert_eq!(fields.len(), 7, "{fields:?}");
        assert!(
            fields[2..]
                .iter()
                .all(|f| f.starts_with("policies.mooring-api-memory."))
        );
        assert_eq!(changes[1].live, json!(60.0));
        assert_eq!(changes[1].desired, json!(80.0));
    }
}
