//! What the two ELBv2 kinds (`TargetGroup`, `LoadBalancer`) read together: the load balancer
//! listing, and the tags of the set's target groups and load balancers in as few
//! DescribeTags calls as ELBv2 allows (20 ARNs each), once per pass. Also what the kinds
//! that watch a target group's traffic (an `Alarm`'s `targetGroup:`, a `ScalableTarget`'s
//! request count) share: which load balancer forwards to it, and the two ARN suffixes
//! CloudWatch and Application Auto Scaling name them by.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer, Tag};

use crate::aws::AwsError;
use crate::kinds::Declared;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, ManifestSet};
use crate::reconcile::Cx;

/// DescribeTags takes at most 20 ARNs per call.
pub const TAGS_BATCH: usize = 20;

/// Every load balancer of the region (one paginated call per pass).
pub async fn load_balancers(cx: &Cx<'_>) -> Result<Arc<Vec<LoadBalancer>>, AwsError> {
    cx.cache
        .load_balancers
        .get((), || async {
            cx.aws()
                .elbv2
                .describe_load_balancers()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map(Arc::new)
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DescribeLoadBalancers", e))
        })
        .await
}

/// The tags of the set's target groups and load balancers that exist, by ARN.
pub async fn tags(cx: &Cx<'_>) -> Result<Arc<HashMap<String, Vec<Tag>>>, AwsError> {
    cx.cache
        .elb_tags
        .get((), || async {
            let mut arns: Vec<String> = Vec::new();
            if !cx.set.target_groups.is_empty() {
                let names: Vec<&str> = cx
                    .set
                    .target_groups
                    .iter()
                    .map(|m| m.spec.aws_name(&m.metadata))
                    .collect();
                arns.extend(
                    super::target_group::list(cx)
                        .await?
                        .iter()
                        .filter(|t| t.target_group_name().is_some_and(|n| names.contains(&n)))
                        .filter_map(|t| t.target_group_arn().map(str::to_string)),
                );
            }
            if !cx.set.load_balancers.is_empty() {
                let names: Vec<&str> = cx
                    .set
                    .load_balancers
                    .iter()
                    .map(|m| m.spec.aws_name(&m.metadata))
                    .collect();
                arns.extend(
                    load_balancers(cx)
                        .await?
                        .iter()
                        .filter(|l| l.load_balancer_name().is_some_and(|n| names.contains(&n)))
                        .filter_map(|l| l.load_balancer_arn().map(str::to_string)),
                );
            }
            Ok(Arc::new(describe_tags(cx, &arns).await?))
        })
        .await
}

/// DescribeTags for `arns`, 20 per call.
pub async fn describe_tags(
    cx: &Cx<'_>,
    arns: &[String],
) -> Result<HashMap<String, Vec<Tag>>, AwsError> {
    let mut out = HashMap::new();
    for chunk in arns.chunks(TAGS_BATCH) {
        let described = cx
            .aws()
            .elbv2
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DescribeTags", e))?;
        for d in described.tag_descriptions() {
            if let Some(arn) = d.resource_arn() {
                out.insert(arn.to_string(), d.tags().to_vec());
            }
        }
    }
    Ok(out)
}

/// The `LoadBalancer` manifests that forward to the `TargetGroup` manifest `tg` (by the
/// target groups each one references).
pub fn forwarding_to<'a>(set: &'a ManifestSet, tg: &str) -> Vec<&'a str> {
    set.load_balancers
        .iter()
        .filter(|lb| {
            <super::load_balancer::Unit as Declared>::references(lb)
                .iter()
                .any(|r| r.kind == Kind::TargetGroup && r.name == tg)
        })
        .map(|lb| lb.name())
        .collect()
}

/// The `LoadBalancer` manifest whose traffic to the target group `tg` is meant: the one
/// named, else the only one forwarding to it.
pub fn load_balancer_for<'a>(
    set: &'a ManifestSet,
    tg: &str,
    named: Option<&'a str>,
) -> Option<&'a str> {
    match named {
        Some(lb) => Some(lb),
        None => match forwarding_to(set, tg).as_slice() {
            [one] => Some(one),
            _ => None,
        },
    }
}

/// Checks that one load balancer's traffic to the target group `tg` can be told: `named`
/// forwards to it, or exactly one does. `base` is the pointer of the object holding the
/// target group (at `base/<tg_field>`) and `loadBalancer`.
pub fn check_forwarding(
    set: &ManifestSet,
    tg: &str,
    named: Option<&str>,
    base: &str,
    tg_field: &str,
    f: &mut Findings<'_>,
) {
    let forwarding = forwarding_to(set, tg);
    match (named, forwarding.as_slice()) {
        (Some(lb), _) if set.load_balancers.iter().any(|l| l.name() == lb) => {
            if !forwarding.contains(&lb) {
                f.warn(
                    &format!("{base}/loadBalancer"),
                    format!(
                        "LoadBalancer `{lb}` does not forward to TargetGroup `{tg}`: the metric may have no data"
                    ),
                );
            }
        }
        (Some(_), _) | (None, [_]) => {}
        (None, []) => f.at(
            &format!("{base}/{tg_field}"),
            format!(
                "no LoadBalancer manifest forwards to TargetGroup `{tg}`; name the load balancer in `loadBalancer`"
            ),
        ),
        (None, several) => f.at(
            base,
            format!(
                "several LoadBalancer manifests forward to TargetGroup `{tg}` ({}); name one in `loadBalancer`",
                several.join(", ")
            ),
        ),
    }
}

/// The part of an ELBv2 ARN CloudWatch uses as the dimension value: `targetgroup/…/…` of
/// a target group's, `app/…/…` of a load balancer's.
pub fn arn_suffix(arn: &str) -> Option<&str> {
    let resource = arn.splitn(6, ':').nth(5)?;
    Some(resource.strip_prefix("loadbalancer/").unwrap_or(resource))
}

/// What plan shows for a resource this apply has yet to create.
pub fn placeholder(kind: Kind, name: &str) -> String {
    format!("({kind}/{name}, once created)")
}

/// A target group's traffic through one load balancer, as CloudWatch and Application Auto
/// Scaling name it.
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic {
    /// The load balancer's ARN suffix (`app/NAME/ID`), or a placeholder.
    pub load_balancer: String,
    /// The target group's ARN suffix (`targetgroup/NAME/ID`), or a placeholder.
    pub target_group: String,
    /// A resource not there yet (`Kind/name`), if any: the values above hold placeholders.
    pub pending: Option<String>,
}

impl Traffic {
    /// Application Auto Scaling's `ResourceLabel` for `ALBRequestCountPerTarget`.
    pub fn resource_label(&self) -> String {
        format!("{}/{}", self.load_balancer, self.target_group)
    }
}

/// The traffic to the `TargetGroup` manifest `tg` through the `LoadBalancer` manifest
/// `lb` (see [`load_balancer_for`]), read from the pass's shared listings.
pub async fn traffic(cx: &Cx<'_>, tg: &str, lb: Option<&str>) -> Result<Traffic, AwsError> {
    let mut pending = None;
    let target_group = super::target_group::arns(cx, [tg])
        .await?
        .get(tg)
        .and_then(|arn| arn_suffix(arn).map(str::to_string));
    let target_group = target_group.unwrap_or_else(|| {
        pending = Some(format!("{}/{tg}", Kind::TargetGroup));
        placeholder(Kind::TargetGroup, tg)
    });
    let lb_manifest = lb.unwrap_or_default();
    let lb_name = cx
        .set
        .load_balancers
        .iter()
        .find(|l| l.name() == lb_manifest)
        .map(|l| l.spec.aws_name(&l.metadata).to_string());
    let load_balancer = match lb_name {
        Some(name) => load_balancers(cx)
            .await?
            .iter()
            .find(|l| l.load_balancer_name() == Some(name.as_str()))
            .and_then(|l| l.load_balancer_arn())
            .and_then(arn_suffix)
            .map(str::to_string),
        None => None,
    };
    let load_balancer = load_balancer.unwrap_or_else(|| {
        pending.get_or_insert_with(|| format!("{}/{lb_manifest}", Kind::LoadBalancer));
        placeholder(Kind::LoadBalancer, lb_manifest)
    });
    Ok(Traffic {
        load_balancer,
        target_group,
        pending,
    })
}
