//! A service's scalable target and its target-tracking policies (in the service's file).
//! Policies keep their live names (`policyName`), so adopting them renames nothing.

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use serde_json::{Value, json};

use super::service::Read;
use super::{Ctx, Imported, read_failed};
use crate::kinds::scalable_target::resource_id;
use crate::kinds::scalable_target::spec::DEFAULT_COOLDOWN;

/// Reads the scalable target of one service; `None` when it is not scaled.
pub(crate) async fn read(
    cx: &Ctx<'_>,
    cluster: &str,
    s: &Read,
) -> Result<Option<Imported>, String> {
    let id = resource_id(cluster, s.service.service_name().unwrap_or_default());
    let scaling = &cx.aws.autoscaling;
    let targets: Vec<_> = scaling
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .resource_ids(&id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| {
            read_failed(
                format!("the scaling of {id}"),
                "application-autoscaling:DescribeScalableTargets",
                e,
            )
        })?;
    let Some(target) = targets.into_iter().find(|t| t.resource_id() == id) else {
        return Ok(None);
    };
    let mut policies: Vec<_> = scaling
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(&id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| {
            read_failed(
                format!("the scaling policies of {id}"),
                "application-autoscaling:DescribeScalingPolicies",
                e,
            )
        })?;
    policies.retain(|p| p.resource_id() == id);
    policies.sort_by(|a, b| a.policy_name().cmp(b.policy_name()));
    let mut cannot = Vec::new();
    let mut tracking = Vec::new();
    let mut metrics = Vec::new();
    for p in &policies {
        let name = p.policy_name();
        let metric = p
            .target_tracking_scaling_policy_configuration()
            .and_then(|c| Some((c, c.predefined_metric_specification()?)));
        let Some((c, m)) = metric else {
            cannot.push(format!(
                "policies.{name}: a {} policy (only target tracking on a predefined metric)",
                p.policy_type().as_str()
            ));
            continue;
        };
        let metric = m.predefined_metric_type().as_str();
        if ![
            "ECSServiceAverageCPUUtilization",
            "ECSServiceAverageMemoryUtilization",
        ]
        .contains(&metric)
            || metrics.contains(&metric)
        {
            cannot.push(format!("policies.{name}: target tracking on {metric}"));
            continue;
        }
        metrics.push(metric);
        let cooldown = |v: Option<i32>| v.filter(|v| i64::from(*v) != i64::from(DEFAULT_COOLDOWN));
        tracking.push(json!({
            "metric": metric,
            "targetValue": c.target_value(),
            "scaleInCooldownSeconds": cooldown(c.scale_in_cooldown()),
            "scaleOutCooldownSeconds": cooldown(c.scale_out_cooldown()),
            "disableScaleIn": c.disable_scale_in().filter(|d| *d),
            "policyName": name,
        }));
    }
    let state = target.suspended_state();
    let flag = |v: Option<bool>| v.filter(|v| *v);
    let spec = json!({
        "service": Value::Null,
        "minCapacity": target.min_capacity(),
        "maxCapacity": target.max_capacity(),
        "targetTracking": tracking,
        "suspended": {
            "dynamicScalingIn": flag(state.and_then(|s| s.dynamic_scaling_in_suspended())),
            "dynamicScalingOut": flag(state.and_then(|s| s.dynamic_scaling_out_suspended())),
            "scheduledScaling": flag(state.and_then(|s| s.scheduled_scaling_suspended())),
        },
    });
    let source = target
        .scalable_target_arn()
        .map_or_else(|| id.clone(), str::to_string);
    let mut doc = Imported::new("ScalableTarget", String::new(), source, spec);
    doc.cannot_carry = cannot;
    Ok(Some(doc))
}

/// Names the target after its service; a policy named as mooring names its own
/// (`mooring-<manifest>-<cpu|memory>`) needs no `policyName`.
pub(crate) fn finish(mut doc: Imported, service: &str) -> Imported {
    doc.name = service.to_string();
    if let Some(list) = doc.spec["targetTracking"].as_array_mut() {
        for t in list {
            let short = match t["metric"].as_str() {
                Some("ECSServiceAverageCPUUtilization") => "cpu",
                _ => "memory",
            };
            if t["policyName"].as_str() == Some(format!("mooring-{service}-{short}").as_str()) {
                t["policyName"] = serde_json::Value::Null;
            }
        }
    }
    doc
}
