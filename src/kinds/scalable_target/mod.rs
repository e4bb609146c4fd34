//! Application Auto Scaling of ECS services (`kind: ScalableTarget`).
//!
//! Reads: one DescribeScalableTargets per 50 targets and one (paginated)
//! DescribeScalingPolicies for the whole `ecs` namespace, filtered here: moto ignores the
//! `PolicyNames` filter and matches `ResourceId` by substring, and one listing is fewer
//! calls than one per service anyway; likewise one DescribeScheduledActions for the
//! namespace.
//!
//! Policies mooring manages are named `mooring-<manifest>-<cpu|memory|requests>`. A
//! requests-per-target policy's `ResourceLabel` (`app/LB/ID/targetgroup/TG/ID`) is read from
//! the live target group and the load balancer that forwards to it, as an `Alarm`'s
//! `targetGroup:` dimensions are (`super::elbv2::traffic`). mooring owns every
//! policy of a target it manages: another one (added by hand, or left by a renamed entry)
//! is named by plan and deleted, as a listener that declares `rules:` owns its rules — two
//! policies on one target both act on it (the highest desired count wins), so a foreign
//! one silently overrides the manifest. The same holds for scheduled actions: the
//! manifest's `schedules` are all of them. The suspended state (scale-in, scale-out,
//! scheduled) is compared too: a target paused by hand is drift. Scalable targets carry no
//! ownership tags here (moto does not store them); an existing target for the service is
//! taken over.

pub mod spec;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ScalableTarget,
    ScalableTargetAction, ScalingPolicy, ScheduledAction, ServiceNamespace, SuspendedState,
    TargetTrackingScalingPolicyConfiguration,
};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::elbv2::Traffic;
use super::ownership::Ownership;
use super::{Change, Resource};
use crate::aws::AwsError;
use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::{Applied, Cx, ReconcileError};
use spec::{DEFAULT_COOLDOWN, DEFAULT_TIMEZONE, ScalableTargetSpec, Suspended, TargetTrackingSpec};

/// The `ScalableTarget` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "application-autoscaling:DescribeScalableTargets",
            "application-autoscaling:DescribeScalingPolicies",
            "application-autoscaling:RegisterScalableTarget",
            "application-autoscaling:PutScalingPolicy",
            "application-autoscaling:DeleteScalingPolicy",
            "application-autoscaling:DescribeScheduledActions",
            "application-autoscaling:PutScheduledAction",
            "application-autoscaling:DeleteScheduledAction",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:DeleteAlarms",
            "iam:CreateServiceLinkedRole",
            // The ResourceLabel of a requests-per-target policy (super::elbv2::traffic).
            "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeLoadBalancers",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the scaling of Service `{}`", m.spec.service)
    }

    /// The scalable targets (their IDs are made up by AWS: any target) and the alarms
    /// target tracking makes for each scaled service
    /// (`TargetTracking-service/CLUSTER/SERVICE-AlarmHigh-…`).
    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        let mut out = vec![crate::iam::arn("application-autoscaling", "scalable-target/*")];
        // `-AlarmHigh-`/`-AlarmLow-` and not `-*`: a service `api-worker` of another stack
        // in the same cluster would match `TargetTracking-service/CLUSTER/api-*`.
        out.extend(set.scalable_targets.iter().flat_map(|m| {
            let id = service_resource_id(set, m);
            ["AlarmHigh", "AlarmLow"].map(|which| {
                crate::iam::arn("cloudwatch", &format!("alarm:TargetTracking-{id}-{which}-*"))
            })
        }));
        out
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        let mut out = vec![Reference::new("/spec/service", Kind::Service, &m.spec.service)];
        for (i, t) in m.spec.target_tracking.iter().enumerate() {
            if let Some(tg) = &t.target_group {
                out.push(Reference::new(
                    format!("/spec/targetTracking/{i}/targetGroup"),
                    Kind::TargetGroup,
                    tg,
                ));
            }
            if let Some(lb) = &t.load_balancer {
                out.push(Reference::new(
                    format!("/spec/targetTracking/{i}/loadBalancer"),
                    Kind::LoadBalancer,
                    lb,
                ));
            }
        }
        out
    }

    /// Besides what it names: the load balancer whose requests a policy counts.
    fn dependencies(m: &Manifest<Self::Spec>, set: &ManifestSet) -> Vec<(Kind, String)> {
        let mut deps: Vec<(Kind, String)> = Self::references(m)
            .into_iter()
            .map(|r| (r.kind, r.name))
            .collect();
        for t in &m.spec.target_tracking {
            if let Some(lb) = t.target_group.as_deref().and_then(|tg| {
                super::elbv2::load_balancer_for(set, tg, t.load_balancer.as_deref())
            }) {
                deps.push((Kind::LoadBalancer, lb.to_string()));
            }
        }
        deps.sort();
        deps.dedup();
        deps
    }

    /// A service that starts with a desired count starts within the scaling range; a
    /// requests-per-target policy's target group has one load balancer to count at.
    fn check_set(m: &Manifest<Self::Spec>, set: &ManifestSet, f: &mut Findings<'_>) {
        let s = &m.spec;
        for (i, t) in s.target_tracking.iter().enumerate() {
            if let Some(tg) = &t.target_group {
                let base = format!("/spec/targetTracking/{i}");
                let lb = t.load_balancer.as_deref();
                super::elbv2::check_forwarding(set, tg, lb, &base, "targetGroup", f);
            }
        }
        if let Some(count) = set
            .service(&s.service)
            .and_then(|svc| svc.spec.desired_count)
            .filter(|c| !(s.min_capacity..=s.max_capacity).contains(c))
        {
            f.at(
                "/spec/minCapacity",
                format!(
                    "Service `{}` starts with desiredCount {count}, outside {}-{}",
                    s.service, s.min_capacity, s.max_capacity
                ),
            );
        }
    }

}

/// DescribeScalableTargets takes at most 50 resource IDs per call.
const TARGET_BATCH: usize = 50;

/// The resource ID Application Auto Scaling uses for an ECS service.
pub fn resource_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

/// The resource ID of the service `m` scales, by the names its manifests give in AWS.
fn service_resource_id(set: &ManifestSet, m: &Manifest<ScalableTargetSpec>) -> String {
    set.service(&m.spec.service)
        .map(|svc| {
            let cluster = set
                .cluster(&svc.spec.cluster)
                .map_or(svc.spec.cluster.as_str(), |c| c.spec.aws_name(&c.metadata));
            resource_id(cluster, svc.spec.aws_name(&svc.metadata))
        })
        .unwrap_or_default()
}

/// The name of the policy mooring manages for one target-tracking entry: its `policyName`,
/// else `mooring-<manifest>-<cpu|memory|requests>`.
pub fn policy_name(manifest: &str, t: &TargetTrackingSpec) -> String {
    t.policy_name
        .clone()
        .unwrap_or_else(|| format!("mooring-{manifest}-{}", t.metric.short()))
}

/// A scalable target and the policies the manifest names, in the shape plan compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// Fewest tasks.
    pub min_capacity: u32,
    /// Most tasks.
    pub max_capacity: u32,
    /// What is paused.
    pub suspended: Suspended,
    /// Every policy of the target, by name: desired, those the manifest names; live, all
    /// of them (`None`: missing, or to be deleted).
    pub policies: BTreeMap<String, Option<PolicyDoc>>,
    /// Every scheduled action of the target, by name, as `policies`.
    pub schedules: BTreeMap<String, Option<ScheduleDoc>>,
}

/// A scheduled action, with AWS's default time zone filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleDoc {
    /// `cron(…)`, `rate(…)` or `at(…)`.
    pub schedule: String,
    /// The time zone the schedule is read in.
    pub timezone: String,
    /// The minimum it sets (`None`: kept).
    pub min_capacity: Option<u32>,
    /// The maximum it sets (`None`: kept).
    pub max_capacity: Option<u32>,
}

impl ScheduleDoc {
    /// As DescribeScheduledActions reports it; moto leaves an unset time zone out.
    fn from_aws(a: &ScheduledAction) -> ScheduleDoc {
        let count = |v: Option<i32>| v.map(|v| u32::try_from(v).unwrap_or_default());
        let action = a.scalable_target_action();
        ScheduleDoc {
            schedule: a.schedule().to_string(),
            timezone: a.timezone().unwrap_or(DEFAULT_TIMEZONE).to_string(),
            min_capacity: count(action.and_then(|x| x.min_capacity())),
            max_capacity: count(action.and_then(|x| x.max_capacity())),
        }
    }
}

/// A target-tracking policy, with AWS's defaults filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDoc {
    /// The predefined metric (a policy of another type: its type, e.g. `StepScaling`).
    pub metric: String,
    /// The value to keep it at.
    pub target_value: f64,
    /// Seconds between scale-ins.
    pub scale_in_cooldown: u32,
    /// Seconds between scale-outs.
    pub scale_out_cooldown: u32,
    /// Only ever scale out.
    pub disable_scale_in: bool,
    /// `ALBRequestCountPerTarget`'s load balancer and target group
    /// (`app/LB/ID/targetgroup/TG/ID`; a placeholder for one not created yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_label: Option<String>,
}

/// What one pass reads for every scalable target at once.
pub struct Live {
    /// The ECS service targets, by resource ID.
    targets: HashMap<String, ScalableTarget>,
    /// Every scaling policy of the `ecs` namespace.
    policies: Vec<ScalingPolicy>,
    /// Every scheduled action of the `ecs` namespace.
    scheduled: Vec<ScheduledAction>,
}

/// One scalable target as observed.
pub struct Observed {
    /// The service's resource ID.
    resource_id: String,
    /// The live target; `None` when the service is not registered.
    target: Option<ScalableTarget>,
    /// The policies on exactly this resource.
    policies: Vec<ScalingPolicy>,
    /// The scheduled actions on exactly this resource.
    scheduled: Vec<ScheduledAction>,
    /// The traffic each requests-per-target policy counts, by policy name.
    traffic: BTreeMap<String, Traffic>,
}

/// The traffic each requests-per-target policy of `m` counts, by policy name.
async fn traffic(
    cx: &Cx<'_>,
    m: &Manifest<ScalableTargetSpec>,
) -> Result<BTreeMap<String, Traffic>, AwsError> {
    let mut out = BTreeMap::new();
    for t in &m.spec.target_tracking {
        if let Some(tg) = &t.target_group {
            let lb = super::elbv2::load_balancer_for(cx.set, tg, t.load_balancer.as_deref());
            out.insert(policy_name(m.name(), t), super::elbv2::traffic(cx, tg, lb).await?);
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl Resource for Unit {
    type Live = Live;
    type Observed = Observed;
    type Doc = Doc;

    async fn read(
        cx: &Cx<'_>,
        manifests: &[Manifest<ScalableTargetSpec>],
    ) -> Result<Live, ReconcileError> {
        let ids: Vec<String> = manifests
            .iter()
            .map(|m| service_resource_id(cx.set, m))
            .collect();
        let scaling = &cx.aws().autoscaling;
        let mut targets = HashMap::new();
        for chunk in ids.chunks(TARGET_BATCH) {
            let page: Vec<ScalableTarget> = scaling
                .describe_scalable_targets()
                .service_namespace(ServiceNamespace::Ecs)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .set_resource_ids(Some(chunk.to_vec()))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| {
                    AwsError::from_sdk("application-autoscaling:DescribeScalableTargets", e)
                })?;
            for t in page {
                targets.insert(t.resource_id().to_string(), t);
            }
        }
        // The whole namespace, filtered in `observe`: moto ignores `PolicyNames` and
        // matches `ResourceId` by substring, and one listing is fewer calls anyway.
        let policies = scaling
            .describe_scaling_policies()
            .service_namespace(ServiceNamespace::Ecs)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| AwsError::from_sdk("application-autoscaling:DescribeScalingPolicies", e))?;
        let scheduled = scaling
            .describe_scheduled_actions()
            .service_namespace(ServiceNamespace::Ecs)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| {
                AwsError::from_sdk("application-autoscaling:DescribeScheduledActions", e)
            })?;
        Ok(Live {
            targets,
            policies,
            scheduled,
        })
    }

    async fn observe(
        cx: &Cx<'_>,
        m: &Manifest<ScalableTargetSpec>,
        live: &Live,
    ) -> Result<Observed, ReconcileError> {
        let resource_id = service_resource_id(cx.set, m);
        Ok(Observed {
            target: live.targets.get(&resource_id).cloned(),
            policies: live
                .policies
                .iter()
                .filter(|p| p.resource_id() == resource_id)
                .cloned()
                .collect(),
            scheduled: live
                .scheduled
                .iter()
                .filter(|a| a.resource_id() == resource_id)
                .cloned()
                .collect(),
            traffic: traffic(cx, m).await?,
            resource_id,
        })
    }

    /// Scalable targets cannot be tagged (moto does not store their tags), so they carry
    /// no owner: an existing target for the service is taken over.
    fn ownership(_obs: &Observed) -> Option<Ownership> {
        None
    }

    fn desired(_set: &ManifestSet, m: &Manifest<ScalableTargetSpec>, obs: &Observed) -> Doc {
        let mut policies: BTreeMap<String, Option<PolicyDoc>> = obs
            .policies
            .iter()
            .map(|p| (p.policy_name().to_string(), None))
            .collect();
        policies.extend(m
                .spec
                .target_tracking
                .iter()
                .map(|t| {
                    let doc = PolicyDoc {
                        metric: t.metric.as_str().to_string(),
                        target_value: t.target_value,
                        scale_in_cooldown: t.scale_in_cooldown_seconds.unwrap_or(DEFAULT_COOLDOWN),
                        scale_out_cooldown: t
                            .scale_out_cooldown_seconds
                            .unwrap_or(DEFAULT_COOLDOWN),
                        disable_scale_in: t.disable_scale_in,
                        resource_label: obs
                            .traffic
                            .get(&policy_name(m.name(), t))
                            .map(Traffic::resource_label),
                    };
                    (policy_name(m.name(), t), Some(doc))
                }));
        let mut schedules: BTreeMap<String, Option<ScheduleDoc>> = obs
            .scheduled
            .iter()
            .map(|a| (a.scheduled_action_name().to_string(), None))
            .collect();
        schedules.extend(m.spec.schedules.iter().map(|s| {
            let doc = ScheduleDoc {
                schedule: s.schedule.clone(),
                timezone: s
                    .timezone
                    .clone()
                    .unwrap_or_else(|| DEFAULT_TIMEZONE.into()),
                min_capacity: s.min_capacity,
                max_capacity: s.max_capacity,
            };
            (s.name.clone(), Some(doc))
        }));
        Doc {
            min_capacity: m.spec.min_capacity,
            max_capacity: m.spec.max_capacity,
            suspended: m.spec.suspended,
            policies,
            schedules,
        }
    }

    /// Every policy on the target, those the manifest does not name included (they are
    /// deleted).
    fn live(_set: &ManifestSet, m: &Manifest<ScalableTargetSpec>, obs: &Observed) -> Option<Doc> {
        let target = obs.target.as_ref()?;
        let count = |v: i32| u32::try_from(v).unwrap_or_default();
        // AWS leaves unset cooldowns out; they default to 300.
        let cooldown = |v: Option<i32>| v.map_or(DEFAULT_COOLDOWN, count);
        let mut policies: BTreeMap<String, Option<PolicyDoc>> = m
            .spec
            .target_tracking
            .iter()
            .map(|t| (policy_name(m.name(), t), None))
            .collect();
        for p in &obs.policies {
            let doc = match p.target_tracking_scaling_policy_configuration() {
                Some(c) => PolicyDoc {
                    metric: c
                        .predefined_metric_specification()
                        .map(|s| s.predefined_metric_type().as_str().to_string())
                        .unwrap_or_default(),
                    target_value: c.target_value(),
                    scale_in_cooldown: cooldown(c.scale_in_cooldown()),
                    scale_out_cooldown: cooldown(c.scale_out_cooldown()),
                    disable_scale_in: c.disable_scale_in().unwrap_or(false),
                    resource_label: c
                        .predefined_metric_specification()
                        .and_then(|s| s.resource_label())
                        .map(str::to_string),
                },
                // A step scaling policy: only its type is shown (it is deleted).
                None => PolicyDoc {
                    metric: p.policy_type().as_str().to_string(),
                    target_value: 0.0,
                    scale_in_cooldown: 0,
                    scale_out_cooldown: 0,
                    disable_scale_in: false,
                    resource_label: None,
                },
            };
            policies.insert(p.policy_name().to_string(), Some(doc));
        }
        let mut schedules: BTreeMap<String, Option<ScheduleDoc>> = m
            .spec
            .schedules
            .iter()
            .map(|s| (s.name.clone(), None))
            .collect();
        for a in &obs.scheduled {
            schedules.insert(
                a.scheduled_action_name().to_string(),
                Some(ScheduleDoc::from_aws(a)),
            );
        }
        let state = target.suspended_state();
        Some(Doc {
            min_capacity: count(target.min_capacity()),
            max_capacity: count(target.max_capacity()),
            suspended: Suspended {
                dynamic_scaling_in: state.and_then(|s| s.dynamic_scaling_in_suspended()) == Some(true),
                dynamic_scaling_out: state.and_then(|s| s.dynamic_scaling_out_suspended())
                    == Some(true),
                scheduled_scaling: state.and_then(|s| s.scheduled_scaling_suspended()) == Some(true),
            },
            policies,
            schedules,
        })
    }

    fn aws_id(_set: &ManifestSet, _m: &Manifest<ScalableTargetSpec>, obs: &Observed) -> String {
        obs.resource_id.clone()
    }

    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<ScalableTargetSpec>,
        obs: &Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        // A target group or load balancer created earlier in this apply: read it now.
        let settled;
        let mut desired = change.desired;
        if obs.traffic.values().any(|t| t.pending.is_some()) {
            let traffic = traffic(cx, m).await?;
            if let Some(missing) = traffic.values().find_map(|t| t.pending.clone()) {
                return Err(ReconcileError::Dependency(missing));
            }
            let mut doc = desired.clone();
            for (name, t) in &traffic {
                if let Some(Some(p)) = doc.policies.get_mut(name) {
                    p.resource_label = Some(t.resource_label());
                }
            }
            settled = doc;
            desired = &settled;
        }
        let change = &Change {
            desired,
            live: change.live,
            replace: change.replace,
        };
        let Doc {
            min_capacity,
            max_capacity,
            suspended,
            policies,
            schedules,
        } = change.desired;
        let scaling = &cx.aws().autoscaling;
        let int = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        if change.differs(|d| &d.min_capacity)
            || change.differs(|d| &d.max_capacity)
            || change.differs(|d| &d.suspended)
        {
            // RegisterScalableTarget creates or updates.
            scaling
                .register_scalable_target()
                .service_namespace(ServiceNamespace::Ecs)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .resource_id(&obs.resource_id)
                .min_capacity(int(*min_capacity))
                .max_capacity(int(*max_capacity))
                .suspended_state(
                    SuspendedState::builder()
                        .dynamic_scaling_in_suspended(suspended.dynamic_scaling_in)
                        .dynamic_scaling_out_suspended(suspended.dynamic_scaling_out)
                        .scheduled_scaling_suspended(suspended.scheduled_scaling)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| {
                    AwsError::from_sdk("application-autoscaling:RegisterScalableTarget", e)
                })?;
            info!(resource = %obs.resource_id, "registered scalable target");
        }
        for (name, policy) in policies {
            let Some(p) = policy else {
                if change.live.and_then(|l| l.policies.get(name)).is_some_and(Option::is_some) {
                    // Not in the manifest: mooring owns the target's policies.
                    scaling
                        .delete_scaling_policy()
                        .policy_name(name)
                        .service_namespace(ServiceNamespace::Ecs)
                        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                        .resource_id(&obs.resource_id)
                        .send()
                        .await
                        .map_err(|e| {
                            AwsError::from_sdk("application-autoscaling:DeleteScalingPolicy", e)
                        })?;
                    info!(policy = %name, "deleted a scaling policy the manifest does not name");
                }
                continue;
            };
            if change.live.and_then(|l| l.policies.get(name)) == Some(policy) {
                continue;
            }
            let invalid = |e| AwsError::invalid_request("application-autoscaling:PutScalingPolicy", e);
            let PolicyDoc {
                metric,
                target_value,
                scale_in_cooldown,
                scale_out_cooldown,
                disable_scale_in,
                resource_label,
            } = p;
            let config = TargetTrackingScalingPolicyConfiguration::builder()
                .target_value(*target_value)
                .predefined_metric_specification(
                    PredefinedMetricSpecification::builder()
                        .predefined_metric_type(MetricType::from(metric.as_str()))
                        .set_resource_label(resource_label.clone())
                        .build()
                        .map_err(invalid)?,
                )
                .scale_in_cooldown(int(*scale_in_cooldown))
                .scale_out_cooldown(int(*scale_out_cooldown))
                .disable_scale_in(*disable_scale_in)
                .build()
                .map_err(invalid)?;
            scaling
                .put_scaling_policy()
                .policy_name(name)
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
        for (name, schedule) in schedules {
            let live = change.live.and_then(|l| l.schedules.get(name));
            let Some(sch) = schedule else {
                if live.is_some_and(Option::is_some) {
                    // Not in the manifest: mooring owns the target's scheduled actions.
                    scaling
                        .delete_scheduled_action()
                        .scheduled_action_name(name)
                        .service_namespace(ServiceNamespace::Ecs)
                        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                        .resource_id(&obs.resource_id)
                        .send()
                        .await
                        .map_err(|e| {
                            AwsError::from_sdk("application-autoscaling:DeleteScheduledAction", e)
                        })?;
                    info!(schedule = %name, "deleted a scheduled action the manifest does not name");
                }
                continue;
            };
            if live == Some(schedule) {
                continue;
            }
            let ScheduleDoc {
                schedule: expression,
                timezone,
                min_capacity,
                max_capacity,
            } = sch;
            // PutScheduledAction creates or replaces.
            scaling
                .put_scheduled_action()
                .scheduled_action_name(name)
                .service_namespace(ServiceNamespace::Ecs)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .resource_id(&obs.resource_id)
                .schedule(expression)
                .timezone(timezone)
                .scalable_target_action(
                    ScalableTargetAction::builder()
                        .set_min_capacity(min_capacity.map(int))
                        .set_max_capacity(max_capacity.map(int))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("application-autoscaling:PutScheduledAction", e))?;
            info!(schedule = %name, "put scheduled action");
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
    use crate::manifest::{Metadata, Origin};
    use crate::reconcile::diff::diff;
    use serde_json::{Value, json};
    use spec::ScalingMetric;

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
                        policy_name: None,
                        target_group: None,
                        load_balancer: None,
                    },
                    TargetTrackingSpec {
                        metric: ScalingMetric::ECSServiceAverageMemoryUtilization,
                        target_value: 80.0,
                        scale_in_cooldown_seconds: None,
                        scale_out_cooldown_seconds: None,
                        disable_scale_in: false,
                        policy_name: None,
                        target_group: None,
                        load_balancer: None,
                    },
                ],
                suspended: Suspended::default(),
                schedules: vec![spec::ScheduleSpec {
                    name: "business-hours".into(),
                    schedule: "cron(0 7 ? * MON-FRI *)".into(),
                    min_capacity: Some(3),
                    max_capacity: None,
                    timezone: Some("Europe/Paris".into()),
                }],
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

    fn scheduled(name: &str, schedule: &str, tz: Option<&str>, min: Option<i32>) -> ScheduledAction {
        ScheduledAction::builder()
            .scheduled_action_name(name)
            .scheduled_action_arn(format!("arn:aws:autoscaling:eu-west-1:1:scheduledAction:x:resource/ecs/service/prd/api:scheduledActionName/{name}"))
            .service_namespace(ServiceNamespace::Ecs)
            .schedule(schedule)
            .set_timezone(tz.map(str::to_string))
            .resource_id("service/prd/api")
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .scalable_target_action(ScalableTargetAction::builder().set_min_capacity(min).build())
            .creation_time(aws_smithy_types::DateTime::from_secs(0))
            .build()
            .unwrap()
    }

    /// The manifest's scheduled action as AWS reports it.
    fn business_hours() -> ScheduledAction {
        scheduled("business-hours", "cron(0 7 ? * MON-FRI *)", Some("Europe/Paris"), Some(3))
    }

    fn docs(
        m: &Manifest<ScalableTargetSpec>,
        target: ScalableTarget,
        policies: Vec<ScalingPolicy>,
    ) -> (Value, Value) {
        docs_with(m, target, policies, vec![business_hours()])
    }

    fn docs_with(
        m: &Manifest<ScalableTargetSpec>,
        target: ScalableTarget,
        policies: Vec<ScalingPolicy>,
        scheduled: Vec<ScheduledAction>,
    ) -> (Value, Value) {
        let set = ManifestSet::default();
        let obs = Observed {
            resource_id: "service/prd/api".into(),
            target: Some(target),
            policies,
            scheduled,
            traffic: m
                .spec
                .target_tracking
                .iter()
                .filter(|t| t.target_group.is_some())
                .map(|t| (policy_name(m.name(), t), web_traffic()))
                .collect(),
        };
        let d = serde_json::to_value(Unit::desired(&set, m, &obs)).unwrap();
        let l = serde_json::to_value(Unit::live(&set, m, &obs).unwrap()).unwrap();
        (d, l)
    }

    /// The target group `web` behind the load balancer `edge`, as read from ELBv2.
    fn web_traffic() -> Traffic {
        Traffic {
            load_balancer: "app/edge/50dc6c495c0c9188".into(),
            target_group: "targetgroup/web/73e2d6bc24d8a067".into(),
            pending: None,
        }
    }

    fn requests_policy(label: &str, value: f64) -> ScalingPolicy {
        let mut p = policy("mooring-api-requests", "ALBRequestCountPerTarget", value, Some(60));
        let mut c = p.target_tracking_scaling_policy_configuration.take().unwrap();
        c.predefined_metric_specification = Some(
            PredefinedMetricSpecification::builder()
                .predefined_metric_type(MetricType::AlbRequestCountPerTarget)
                .resource_label(label)
                .build()
                .unwrap(),
        );
        p.target_tracking_scaling_policy_configuration = Some(c);
        p
    }

    #[test]
    fn requests_per_target_carries_the_resource_label_of_the_live_target_group() {
        let mut m = manifest();
        m.spec.target_tracking = vec![TargetTrackingSpec {
            metric: ScalingMetric::ALBRequestCountPerTarget,
            target_value: 1000.0,
            scale_in_cooldown_seconds: None,
            scale_out_cooldown_seconds: Some(60),
            disable_scale_in: false,
            policy_name: None,
            target_group: Some("web".into()),
            load_balancer: None,
        }];
        let label = "app/edge/50dc6c495c0c9188/targetgroup/web/73e2d6bc24d8a067";
        assert_eq!(web_traffic().resource_label(), label);
        let (d, l) = docs(&m, target(1, 4), vec![requests_policy(label, 1000.0)]);
        assert_eq!(d["policies"]["mooring-api-requests"]["resourceLabel"], label);
        assert!(diff(&d, Some(&l)).is_empty(), "{:?}", diff(&d, Some(&l)));
        // Counted at another target group (one made again by hand, with a new ID).
        let other = "app/edge/50dc6c495c0c9188/targetgroup/web/0000000000000000";
        let (d, l) = docs(&m, target(1, 4), vec![requests_policy(other, 1000.0)]);
        let fields: Vec<String> = diff(&d, Some(&l)).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["policies.mooring-api-requests.resourceLabel"]);
        // CPU and memory policies have no label.
        let (d, _) = docs(&manifest(), target(1, 4), vec![]);
        assert!(d["policies"]["mooring-api-cpu"].get("resourceLabel").is_none());
    }

    #[test]
    fn requests_per_target_needs_a_target_group_and_a_load_balancer_forwarding_to_it() {
        let tg = "apiVersion: mooring.dev/v1alpha1\nkind: TargetGroup\nmetadata: {name: web}\nspec: {port: 3000, vpc: default}\n";
        let base = "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: prd}\nspec: {}\n---\napiVersion: mooring.dev/v1alpha1\nkind: Service\nmetadata: {name: api}\nspec:\n  cluster: prd\n  network: {subnets: {ids: [subnet-1]}, securityGroups: {ids: [sg-1]}}\n  taskDefinition:\n    cpu: 256\n    memory: 512\n    container: {image: 'api:1', port: 3000}\n";
        let errors = |policy: &str, more: &str| -> Vec<String> {
            let doc = format!(
                "{base}---\n{tg}---\n{more}apiVersion: mooring.dev/v1alpha1\nkind: ScalableTarget\nmetadata: {{name: api}}\nspec:\n  service: api\n  minCapacity: 1\n  maxCapacity: 4\n  targetTracking:\n    - {policy}\n"
            );
            match crate::manifest::load::load_with_stack(&[("s.yaml".into(), doc)]) {
                Ok(_) => Vec::new(),
                Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
            }
        };
        let e = errors("{metric: ALBRequestCountPerTarget, targetValue: 0}", "");
        assert!(e.iter().any(|e| e.contains("spec.targetTracking[0]: `ALBRequestCountPerTarget` needs `targetGroup`")), "{e:#?}");
        assert!(e.iter().any(|e| e.contains("spec.targetTracking[0].targetValue: 0 is not a number of requests above 0")), "{e:#?}");
        let e = errors("{metric: ECSServiceAverageCPUUtilization, targetValue: 80, targetGroup: web}", "");
        assert!(e.iter().any(|e| e.contains("spec.targetTracking[0].targetGroup: only for `ALBRequestCountPerTarget`")), "{e:#?}");
        let e = errors("{metric: ALBRequestCountPerTarget, targetValue: 1000, targetGroup: nope}", "");
        assert!(e.iter().any(|e| e.contains("targetTracking[0].targetGroup") && e.contains("nope")), "{e:#?}");
        let e = errors("{metric: ALBRequestCountPerTarget, targetValue: 1000, targetGroup: web}", "");
        assert!(e.iter().any(|e| e.contains("spec.targetTracking[0].targetGroup: no LoadBalancer manifest forwards to TargetGroup `web`")), "{e:#?}");
        let alb = "apiVersion: mooring.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: edge}\nspec:\n  subnets: {ids: [subnet-1, subnet-2]}\n  securityGroups: {ids: [sg-1]}\n  listeners:\n    - {port: 80, protocol: HTTP, defaultAction: {forward: web}}\n---\n";
        let set = {
            let doc = format!(
                "{base}---\n{tg}---\n{alb}apiVersion: mooring.dev/v1alpha1\nkind: ScalableTarget\nmetadata: {{name: api}}\nspec:\n  service: api\n  minCapacity: 1\n  maxCapacity: 4\n  targetTracking:\n    - {{metric: ALBRequestCountPerTarget, targetValue: 1000, targetGroup: web}}\n"
            );
            crate::manifest::load::load_with_stack(&[("s.yaml".into(), doc)]).unwrap()
        };
        let m = &set.scalable_targets[0];
        assert_eq!(policy_name(m.name(), &m.spec.target_tracking[0]), "mooring-api-requests");
        let deps = <Unit as crate::kinds::Declared>::dependencies(m, &set);
        assert!(deps.contains(&(Kind::TargetGroup, "web".into())), "{deps:?}");
        assert!(deps.contains(&(Kind::LoadBalancer, "edge".into())), "{deps:?}");
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
        ];
        let (d, l) = docs(&m, target(1, 4), policies.clone());
        assert!(diff(&d, Some(&l)).is_empty());

        // A policy added by hand on the same target is named, to be deleted.
        let mut more = policies;
        more.push(policy(
            "someone-elses",
            "ECSServiceAverageCPUUtilization",
            50.0,
            None,
        ));
        let (d, l) = docs(&m, target(1, 4), more);
        let changes = diff(&d, Some(&l));
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert!(
            !fields.is_empty() && fields.iter().all(|f| f.starts_with("policies.someone-elses")),
            "{fields:?}"
        );
        assert!(changes.iter().all(|c| c.desired.is_null()), "{changes:?}");
    }

    #[test]
    fn scaling_suspended_by_hand_is_drift_unless_the_manifest_says_so() {
        let mut m = manifest();
        let policies = vec![
            policy("mooring-api-cpu", "ECSServiceAverageCPUUtilization", 80.0, Some(60)),
            policy("mooring-api-memory", "ECSServiceAverageMemoryUtilization", 80.0, None),
        ];
        let mut paused = target(1, 4);
        paused.suspended_state = Some(
                SuspendedState::builder()
                    .dynamic_scaling_in_suspended(true)
                    .dynamic_scaling_out_suspended(true)
                    .build(),
        );
        let (d, l) = docs(&m, paused.clone(), policies.clone());
        let fields: Vec<String> = diff(&d, Some(&l)).into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            ["suspended.dynamicScalingIn", "suspended.dynamicScalingOut"]
        );
        m.spec.suspended.dynamic_scaling_in = true;
        m.spec.suspended.dynamic_scaling_out = true;
        let (d, l) = docs(&m, paused, policies);
        assert!(diff(&d, Some(&l)).is_empty());
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
        let (d, l) = docs(&m, target(1, 8), policies);
        let changes = diff(&d, Some(&l));
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

    #[test]
    fn scheduled_actions_are_a_set_the_target_owns_with_utc_filled() {
        let mut m = manifest();
        let policies = vec![
            policy("mooring-api-cpu", "ECSServiceAverageCPUUtilization", 80.0, Some(60)),
            policy("mooring-api-memory", "ECSServiceAverageMemoryUtilization", 80.0, None),
        ];
        let (d, l) = docs(&m, target(1, 4), policies.clone());
        assert!(diff(&d, Some(&l)).is_empty(), "{:?}", diff(&d, Some(&l)));
        // No time zone in the manifest is UTC; moto leaves it out of its answer.
        m.spec.schedules[0].timezone = None;
        let moto = scheduled("business-hours", "cron(0 7 ? * MON-FRI *)", None, Some(3));
        let (d, l) = docs_with(&m, target(1, 4), policies.clone(), vec![moto]);
        assert!(diff(&d, Some(&l)).is_empty());
        assert_eq!(d["schedules"]["business-hours"]["timezone"], json!("UTC"));
        // Changed by hand, and one added by hand: each named, the foreign one to go.
        let changed = scheduled("business-hours", "cron(0 7 ? * MON-FRI *)", Some("UTC"), Some(1));
        let foreign = scheduled("by-hand", "rate(1 day)", None, Some(9));
        let (d, l) = docs_with(&m, target(1, 4), policies, vec![changed, foreign]);
        let changes = diff(&d, Some(&l));
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields[0], "schedules.business-hours.minCapacity", "{fields:?}");
        assert_eq!((&changes[0].live, &changes[0].desired), (&json!(1), &json!(3)));
        assert!(fields[1..].iter().all(|f| f.starts_with("schedules.by-hand")), "{fields:?}");
        assert!(changes[1..].iter().all(|c| c.desired.is_null()), "{changes:?}");
    }

    #[test]
    fn schedule_mistakes_are_named() {
        let text = "apiVersion: mooring.dev/v1alpha1\nkind: ScalableTarget\nmetadata: {name: api}\nspec:\n  service: api\n  minCapacity: 1\n  maxCapacity: 4\n  schedules:\n    - {name: a/b, schedule: 'cron(0 7 * * * *)', minCapacity: 1}\n    - {name: night, schedule: 'at(2026-12-24 18:00)', minCapacity: 5, maxCapacity: 2}\n    - {name: night, schedule: 'rate(1 day)'}\n    - {name: ok, schedule: 'at(2026-12-24T18:00:00)', maxCapacity: 9000, timezone: 'Europe Paris'}\n";
        let errs: Vec<String> =
            match crate::manifest::load::load_with_stack(&[("s.yaml".into(), text.into())]) {
                Ok(_) => Vec::new(),
                Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
            };
        for expected in [
            "spec.schedules[0].name: names are 1-256 characters without",
            "spec.schedules[0].schedule: `cron(0 7 * * * *)`: exactly one of day-of-month and day-of-week",
            "spec.schedules[1].schedule: `at(2026-12-24 18:00)`: `at()` takes yyyy-mm-ddThh:mm:ss",
            "spec.schedules[1].minCapacity: minCapacity 5 is more than maxCapacity 2",
            "spec.schedules[2].name: a second schedule named `night`",
            "spec.schedules[2]: set `minCapacity`, `maxCapacity` or both",
            "spec.schedules[3].maxCapacity: ECS runs at most 5000 tasks per service",
            "spec.schedules[3].timezone: an IANA time zone",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "missing {expected:?} in {errs:#?}"
            );
        }
    }
}
