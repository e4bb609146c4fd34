//! Target groups the services register with (in the service's file).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::{Ctx, Imported, Names, read_failed, user_tags};
use crate::kinds::target_group::spec::defaults;

/// An imported target group.
#[derive(Clone)]
pub(crate) struct TargetGroup {
    /// Its manifest.
    pub doc: Imported,
    /// Its health check path.
    pub health_path: String,
    /// The load balancers that use it.
    pub load_balancers: Vec<String>,
}

/// Reads the target groups `arns`, by ARN.
pub(crate) async fn read(
    cx: &Ctx<'_>,
    arns: &BTreeSet<String>,
    names: &mut Names,
) -> Result<BTreeMap<String, TargetGroup>, String> {
    let mut out = BTreeMap::new();
    if arns.is_empty() {
        return Ok(out);
    }
    let list: Vec<String> = arns.iter().cloned().collect();
    let elb = &cx.aws.elbv2;
    let mut groups = Vec::new();
    for chunk in list.chunks(20) {
        let page = elb
            .describe_target_groups()
            .set_target_group_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| {
                read_failed(
                    "target groups",
                    "elasticloadbalancing:DescribeTargetGroups",
                    e,
                )
            })?;
        groups.extend(page.target_groups().iter().cloned());
    }
    let tags = super::load_balancer::tags(cx, &list).await?;
    groups.sort_by(|a, b| a.target_group_name().cmp(&b.target_group_name()));
    for tg in groups {
        let arn = tg.target_group_arn().unwrap_or_default().to_string();
        let aws_name = tg.target_group_name().unwrap_or_default().to_string();
        let live_tags = || {
            tags.get(&arn)
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str()))
        };
        if names.refuse("target group", &arn, live_tags()) {
            continue; // the service names it by ARN
        }
        let name = names.take_owned("TargetGroup", &aws_name, live_tags());
        let mut cannot = Vec::new();
        let protocol = tg
            .protocol()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        if protocol != "HTTP" && protocol != "HTTPS" {
            cannot.push(format!("protocol: {protocol}"));
        }
        let target_type = tg.target_type().map(|t| t.as_str()).unwrap_or("ip");
        if target_type != "ip" {
            cannot.push(format!(
                "targetType: {target_type} (mooring makes ip target groups)"
            ));
        }
        if tg.health_check_enabled() == Some(false) {
            cannot.push("healthCheck.enabled: false".into());
        }
        if let Some(p) = tg.health_check_port().filter(|p| *p != "traffic-port") {
            cannot.push(format!("healthCheck.port: {p}"));
        }
        if let Some(p) = tg
            .health_check_protocol()
            .map(|p| p.as_str())
            .filter(|p| *p != protocol)
        {
            cannot.push(format!("healthCheck.protocol: {p}"));
        }
        let health_path = tg.health_check_path().unwrap_or(defaults::PATH).to_string();
        let differs = |v: Option<i32>, d: u32| v.filter(|v| i64::from(*v) != i64::from(d));
        let hc = json!({
            "path": (health_path != defaults::PATH).then_some(&health_path),
            "matcher": tg.matcher().and_then(|m| m.http_code()).filter(|m| *m != defaults::MATCHER),
            "intervalSeconds": differs(tg.health_check_interval_seconds(), defaults::INTERVAL),
            "timeoutSeconds": differs(tg.health_check_timeout_seconds(), defaults::TIMEOUT),
            "healthyThreshold": differs(tg.healthy_threshold_count(), defaults::HEALTHY),
            "unhealthyThreshold": differs(tg.unhealthy_threshold_count(), defaults::UNHEALTHY),
        });
        let spec = json!({
            "targetGroupName": aws_name,
            "protocol": (protocol == "HTTPS").then_some("HTTPS"),
            "port": tg.port(),
            "vpc": tg.vpc_id(),
            "healthCheck": hc,
            "tags": user_tags(tags.get(&arn).into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str()))),
        });
        let mut doc = Imported::new("TargetGroup", name, arn.clone(), spec);
        doc.cannot_carry = cannot;
        let mut lbs = tg.load_balancer_arns().to_vec();
        lbs.sort();
        out.insert(
            arn,
            TargetGroup {
                doc,
                health_path,
                load_balancers: lbs,
            },
        );
    }
    Ok(out)
}
