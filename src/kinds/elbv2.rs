//! What the two ELBv2 kinds (`TargetGroup`, `LoadBalancer`) read together: the load balancer
//! listing, and the tags of the set's target groups and load balancers in as few
//! DescribeTags calls as ELBv2 allows (20 ARNs each), once per pass.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer, Tag};

use crate::aws::AwsError;
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
