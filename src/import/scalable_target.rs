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
            "ALBRequestCountPerTarget",
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
            // Filled in by `requests_by_manifest` (here for their place in the document).
            "targetGroup": Value::Null,
            "loadBalancer": Value::Null,
            "scaleInCooldownSeconds": cooldown(c.scale_in_cooldown()),
            "scaleOutCooldownSeconds": cooldown(c.scale_out_cooldown()),
            "disableScaleIn": c.disable_scale_in().filter(|d| *d),
            "policyName": name,
            // Requests per target: named by manifests in `requests_by_manifest`.
            "resourceLabel": m.resource_label(),
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

/// Turns each requests-per-target policy's resource label
/// (`app/<lb>/<id>/targetgroup/<tg>/<id>`) into the manifests it counts: `targetGroup`,
/// found by `target_group` (the target group manifest written for a label's part, if any),
/// and `loadBalancer` when `forwarding` (the load balancer manifests forwarding to that
/// target group) holds several. A policy on a target group or load balancer not imported
/// cannot be said: it goes to what the document cannot carry.
pub(crate) fn requests_by_manifest(
    doc: &mut Imported,
    target_group: impl Fn(&str) -> Option<(String, Vec<(String, String)>)>,
) {
    let Some(list) = doc.spec["targetTracking"].as_array_mut() else {
        return;
    };
    let mut cannot = Vec::new();
    list.retain_mut(|t| {
        let Some(label) = t
            .as_object_mut()
            .and_then(|o| o.remove("resourceLabel"))
            .and_then(|l| l.as_str().map(str::to_string))
        else {
            return true;
        };
        let (lb, tg) = label
            .split_once("/targetgroup/")
            .map_or((label.as_str(), ""), |(lb, tg)| (lb, tg));
        let found = target_group(&format!("targetgroup/{tg}")).and_then(|(tg, forwarding)| {
            let lb_name = forwarding
                .iter()
                .find(|(dimension, _)| dimension == lb)
                .map(|(_, name)| name.clone())?;
            Some((tg, lb_name, forwarding.len() > 1))
        });
        match found {
            Some((tg, lb, several)) => {
                t["targetGroup"] = json!(tg);
                if several {
                    t["loadBalancer"] = json!(lb);
                }
                true
            }
            None => {
                cannot.push(format!(
                    "policies.{}: requests per target of `{label}`, a target group or load balancer not imported",
                    t["policyName"].as_str().unwrap_or_default()
                ));
                false
            }
        }
    });
    doc.cannot_carry.extend(cannot);
}

/// Names the target after its service; a policy named as mooring names its own
/// (`mooring-<manifest>-<cpu|memory|requests>`) needs no `policyName`.
pub(crate) fn finish(mut doc: Imported, service: &str) -> Imported {
    doc.name = service.to_string();
    if let Some(list) = doc.spec["targetTracking"].as_array_mut() {
        for t in list {
            let short = match t["metric"].as_str() {
                Some("ECSServiceAverageCPUUtilization") => "cpu",
                Some("ALBRequestCountPerTarget") => "requests",
                _ => "memory",
            };
            if t["policyName"].as_str() == Some(format!("mooring-{service}-{short}").as_str()) {
                t["policyName"] = serde_json::Value::Null;
            }
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A requests-per-target policy names the target group (and, when several forward to
    /// it, the load balancer) by manifest; one on a target group not imported is reported.
    #[test]
    fn requests_per_target_are_named_by_manifests_or_reported() {
        let tracking = |label: &str| {
            json!({
                "metric": "ALBRequestCountPerTarget",
                "targetValue": 500.0,
                "targetGroup": null,
                "loadBalancer": null,
                "policyName": "requests",
                "resourceLabel": label,
            })
        };
        let mut doc = Imported::new(
            "ScalableTarget",
            String::new(),
            "id".into(),
            json!({"targetTracking": [
                {"metric": "ECSServiceAverageCPUUtilization", "targetValue": 70.0, "resourceLabel": null},
                tracking("app/web/1a/targetgroup/api/2b"),
                tracking("app/web/1a/targetgroup/elsewhere/3c"),
            ]}),
        );
        requests_by_manifest(&mut doc, |dimension| {
            (dimension == "targetgroup/api/2b").then(|| {
                (
                    "api".to_string(),
                    vec![
                        ("app/web/1a".to_string(), "web".to_string()),
                        ("app/internal/4d".to_string(), "internal".to_string()),
                    ],
                )
            })
        });
        let list = doc.spec["targetTracking"].as_array().unwrap();
        assert_eq!(list.len(), 2, "{list:?}");
        assert!(list[0].get("resourceLabel").is_none());
        assert_eq!(list[1]["targetGroup"], "api");
        assert_eq!(
            list[1]["loadBalancer"], "web",
            "two forward to it: the one counted"
        );
        assert!(list[1].get("resourceLabel").is_none());
        assert_eq!(doc.cannot_carry.len(), 1);
        assert!(
            doc.cannot_carry[0].contains("app/web/1a/targetgroup/elsewhere/3c"),
            "{:?}",
            doc.cannot_carry
        );
    }
}
