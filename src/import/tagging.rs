//! `--tag key=value`: the resources the Resource Groups Tagging API lists with that tag
//! (GetResources), sorted by their ARNs as a CloudFormation stack's are. A tagged
//! CloudFormation stack brings its own resources (not its nested stacks': AWS tags those
//! with the stack's tags, so they are listed themselves); a nested stack is reported with
//! a hint to `--cloudformation-stack NAME --recursive`, as `--tag` has no `--recursive`.

use super::pick::Picked;
use super::{Ctx, cloudformation};
use crate::aws::AwsError;

/// Adds the resources tagged `key=value` to `picked`.
pub(crate) async fn pick(
    cx: &Ctx<'_>,
    key: &str,
    value: &str,
    picked: &mut Picked,
) -> Result<(), String> {
    let filter = aws_sdk_resourcegroupstagging::types::TagFilter::builder()
        .key(key)
        .values(value)
        .build();
    let pages: Vec<_> = cx
        .aws
        .tagging
        .get_resources()
        .tag_filters(filter)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(|e| {
            format!(
                "failed to list the resources tagged `{key}={value}`: {}",
                AwsError::from_sdk("tag:GetResources", e)
            )
        })?;
    let mut arns: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.resource_tag_mapping_list())
        .filter_map(|m| m.resource_arn())
        .collect();
    arns.sort();
    arns.dedup();
    let mut stacks = Vec::new();
    for arn in arns {
        match kind_of_arn(arn) {
            Some(("AWS::CloudFormation::Stack", id)) => stacks.push(id),
            Some((kind, id)) => {
                picked.resource(kind, &id, arn);
            }
            None => {
                picked.left_out.insert(
                    arn.to_string(),
                    format!("mooring has no kind for {}", service_and_type(arn)),
                );
            }
        }
    }
    for stack in stacks {
        cloudformation::pick_with(cx, &stack, cloudformation::Nested::ReportForTag, picked).await?;
    }
    Ok(())
}

/// `service:type` of an ARN, for the report.
fn service_and_type(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let resource = parts.get(5).copied().unwrap_or_default();
    let kind = resource.split(['/', ':']).next().unwrap_or_default();
    format!("{}:{kind}", parts.get(2).copied().unwrap_or_default())
}

/// The CloudFormation type and physical ID (as CloudFormation names it) of an ARN that
/// import knows.
fn kind_of_arn(arn: &str) -> Option<(&'static str, String)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _, service, _, _, resource] = parts.as_slice() else {
        return None;
    };
    let (rtype, rest) = resource.split_once(['/', ':'])?;
    Some(match (*service, rtype) {
        ("ecs", "service") => ("AWS::ECS::Service", arn.to_string()),
        ("ecs", "cluster") => ("AWS::ECS::Cluster", rest.to_string()),
        ("ecs", "task-definition") => ("AWS::ECS::TaskDefinition", arn.to_string()),
        ("logs", "log-group") => (
            "AWS::Logs::LogGroup",
            rest.trim_end_matches(":*").to_string(),
        ),
        ("ecr", "repository") => ("AWS::ECR::Repository", rest.to_string()),
        // `parameter/a/b` is `/a/b`; `parameter/a` is `a`.
        ("ssm", "parameter") => (
            "AWS::SSM::Parameter",
            if rest.contains('/') {
                format!("/{rest}")
            } else {
                rest.to_string()
            },
        ),
        ("cloudformation", "stack") => ("AWS::CloudFormation::Stack", arn.to_string()),
        ("elasticloadbalancing", "targetgroup") => {
            ("AWS::ElasticLoadBalancingV2::TargetGroup", arn.to_string())
        }
        ("elasticloadbalancing", "loadbalancer") => {
            ("AWS::ElasticLoadBalancingV2::LoadBalancer", arn.to_string())
        }
        ("elasticloadbalancing", "listener") => {
            ("AWS::ElasticLoadBalancingV2::Listener", arn.to_string())
        }
        ("elasticloadbalancing", "listener-rule") => {
            ("AWS::ElasticLoadBalancingV2::ListenerRule", arn.to_string())
        }
        ("ec2", "security-group") => ("AWS::EC2::SecurityGroup", rest.to_string()),
        // `rule/BUS/NAME` on another bus: `BUS|NAME`, as CloudFormation names it.
        ("events", "rule") => ("AWS::Events::Rule", rest.replacen('/', "|", 1)),
        ("events", "api-destination") => (
            "AWS::Events::ApiDestination",
            rest.split('/').next().unwrap_or(rest).to_string(),
        ),
        ("events", "connection") => (
            "AWS::Events::Connection",
            rest.split('/').next().unwrap_or(rest).to_string(),
        ),
        ("elasticache", "replicationgroup") => {
            ("AWS::ElastiCache::ReplicationGroup", rest.to_string())
        }
        ("elasticache", "subnetgroup") => ("AWS::ElastiCache::SubnetGroup", rest.to_string()),
        ("elasticache", "cluster") => ("AWS::ElastiCache::CacheCluster", rest.to_string()),
        ("cloudwatch", "alarm") => ("AWS::CloudWatch::Alarm", rest.to_string()),
        ("application-autoscaling", _) => (
            "AWS::ApplicationAutoScaling::ScalingPolicy",
            arn.to_string(),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_are_read_as_the_types_and_ids_cloudformation_uses() {
        let a = "arn:aws:";
        assert_eq!(
            kind_of_arn(&format!("{a}logs:us-east-1:1:log-group:/ecs/api:*")),
            Some(("AWS::Logs::LogGroup", "/ecs/api".into()))
        );
        assert_eq!(
            kind_of_arn(&format!("{a}ssm:us-east-1:1:parameter/shop/db/host")),
            Some(("AWS::SSM::Parameter", "/shop/db/host".into()))
        );
        assert_eq!(
            kind_of_arn(&format!("{a}ecr:us-east-1:1:repository/shop/api")),
            Some(("AWS::ECR::Repository", "shop/api".into()))
        );
        assert_eq!(
            kind_of_arn(&format!("{a}ecs:us-east-1:1:cluster/prd")),
            Some(("AWS::ECS::Cluster", "prd".into()))
        );
        assert_eq!(
            kind_of_arn(&format!(
                "{a}elasticache:us-east-1:1:replicationgroup:salon-redis"
            )),
            Some(("AWS::ElastiCache::ReplicationGroup", "salon-redis".into()))
        );
        assert_eq!(
            kind_of_arn(&format!("{a}cloudwatch:us-east-1:1:alarm:Backend CPU")),
            Some(("AWS::CloudWatch::Alarm", "Backend CPU".into()))
        );
        assert_eq!(
            kind_of_arn(&format!("{a}events:us-east-1:1:api-destination/reset/0a1b")),
            Some(("AWS::Events::ApiDestination", "reset".into()))
        );
        assert_eq!(kind_of_arn(&format!("{a}sns:us-east-1:1:topic")), None);
        assert_eq!(
            service_and_type(&format!("{a}sqs:us-east-1:1:queue")),
            "sqs:queue"
        );
    }
}
