//! What an import starts from: the ECS services (by cluster) that the `--cluster` path
//! follows, plus resources of supported kinds picked on their own (by a CloudFormation stack
//! or a tag), plus what was picked but cannot be carried, with why.

use std::collections::{BTreeMap, BTreeSet};

/// The resources a selection picked.
#[derive(Debug, Default)]
pub(crate) struct Picked {
    /// Clusters (name, or ARN as given) and their services to import: `None` is every
    /// service of the cluster, `Some(empty)` the cluster alone.
    pub clusters: BTreeMap<String, Option<BTreeSet<String>>>,
    /// Log group names.
    pub log_groups: BTreeSet<String>,
    /// ECR repository names.
    pub repositories: BTreeSet<String>,
    /// SSM parameter names (full, with their path).
    pub parameters: BTreeSet<String>,
    /// ElastiCache replication group IDs.
    pub replication_groups: BTreeSet<String>,
    /// ElastiCache cache subnet group names.
    pub cache_subnet_groups: BTreeSet<String>,
    /// CloudWatch alarm names.
    pub alarms: BTreeSet<String>,
    /// EventBridge rule names (`BUS|NAME` on another bus).
    pub rules: BTreeSet<String>,
    /// Security group IDs.
    pub security_groups: BTreeSet<String>,
    /// Resources imported only as a service reaches them (target groups, load balancers,
    /// listeners and rules, task definitions, scaling): `(type, ID or ARN)`.
    pub reached: BTreeSet<(String, String)>,
    /// What is not imported: `what` → why.
    pub left_out: BTreeMap<String, String>,
    /// The stack name the selection suggests (a CloudFormation stack's, a tag's value).
    pub stack: Option<String>,
}

/// Kinds of resources that only the service path imports (or, for the last three, a
/// replication group or a rule).
pub(crate) const REACHED: [&str; 10] = [
    "AWS::ECS::TaskDefinition",
    "AWS::ElasticLoadBalancingV2::TargetGroup",
    "AWS::ElasticLoadBalancingV2::LoadBalancer",
    "AWS::ElasticLoadBalancingV2::Listener",
    "AWS::ElasticLoadBalancingV2::ListenerRule",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::ElastiCache::CacheCluster",
    "AWS::Events::ApiDestination",
    "AWS::Events::Connection",
];

impl Picked {
    /// One service of a cluster (both by name).
    pub(crate) fn service(&mut self, cluster: &str, service: &str) {
        if let Some(set) = self
            .clusters
            .entry(cluster.to_string())
            .or_insert_with(|| Some(BTreeSet::new()))
        {
            set.insert(service.to_string());
        }
    }

    /// A cluster, with none of its services unless they are picked too.
    pub(crate) fn cluster(&mut self, cluster: &str) {
        self.clusters
            .entry(cluster.to_string())
            .or_insert_with(|| Some(BTreeSet::new()));
    }

    /// Sorts one resource by its CloudFormation type and physical ID. `false` for a nested
    /// stack, which the caller follows or reports.
    pub(crate) fn resource(&mut self, kind: &str, id: &str, label: &str) -> bool {
        match kind {
            "AWS::ECS::Cluster" => self.cluster(id.rsplit('/').next().unwrap_or(id)),
            "AWS::ECS::Service" => match service_of_arn(id) {
                Some((cluster, service)) => self.service(&cluster, &service),
                None => {
                    self.left_out.insert(
                        label.into(),
                        "a service ARN without its cluster (the old ARN format)".into(),
                    );
                }
            },
            "AWS::Logs::LogGroup" => {
                self.log_groups.insert(id.to_string());
            }
            "AWS::ECR::Repository" => {
                self.repositories.insert(id.to_string());
            }
            "AWS::SSM::Parameter" if id.starts_with('/') => {
                self.parameters.insert(id.to_string());
            }
            "AWS::SSM::Parameter" => {
                self.left_out.insert(
                    label.into(),
                    "a parameter outside a path (a ParameterSet manages the parameters under one path)".into(),
                );
            }
            "AWS::CloudFormation::Stack" => return false,
            // CDK's own bookkeeping, not a resource.
            "AWS::CDK::Metadata" => {}
            "AWS::EC2::SecurityGroup" if id.starts_with("sg-") => {
                self.security_groups.insert(id.to_string());
            }
            "AWS::EC2::SecurityGroup" => {
                self.left_out.insert(
                    label.into(),
                    "a security group named without its ID (EC2-Classic)".into(),
                );
            }
            "AWS::Events::Rule" => {
                self.rules.insert(id.to_string());
            }
            "AWS::ElastiCache::ReplicationGroup" => {
                self.replication_groups.insert(id.to_string());
            }
            "AWS::ElastiCache::SubnetGroup" => {
                self.cache_subnet_groups.insert(id.to_string());
            }
            "AWS::CloudWatch::Alarm" => {
                self.alarms.insert(id.to_string());
            }
            k if REACHED.contains(&k) => {
                self.reached.insert((k.to_string(), id.to_string()));
            }
            other => {
                self.left_out
                    .insert(label.into(), format!("mooring has no kind for {other}"));
            }
        }
        true
    }

    /// Whether nothing at all was picked.
    pub(crate) fn is_empty(&self) -> bool {
        self.clusters.is_empty()
            && self.log_groups.is_empty()
            && self.repositories.is_empty()
            && self.parameters.is_empty()
            && self.replication_groups.is_empty()
            && self.cache_subnet_groups.is_empty()
            && self.alarms.is_empty()
            && self.rules.is_empty()
            && self.security_groups.is_empty()
    }
}

/// `(cluster, service)` from `arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE`.
pub(crate) fn service_of_arn(arn: &str) -> Option<(String, String)> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let mut parts = resource.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("service"), Some(c), Some(s), None) if !c.is_empty() && !s.is_empty() => {
            Some((c.to_string(), s.to_string()))
        }
        _ => None,
    }
}

/// Parses `--tag key=value`: a key of 1-128 characters, a value of at most 256.
pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected KEY=VALUE, e.g. app=backend"))?;
    let k = k.trim();
    if k.is_empty() || k.chars().count() > 128 {
        return Err(format!("`{s}`: a tag key is 1-128 characters"));
    }
    if v.chars().count() > 256 {
        return Err(format!("`{s}`: a tag value is at most 256 characters"));
    }
    Ok((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_sorted_by_kind_and_the_rest_reported() {
        let mut p = Picked::default();
        let svc = "arn:aws:ecs:us-east-1:123456789012:service/Cdk-Cluster-1/Cdk-Service-2";
        assert!(p.resource("AWS::ECS::Service", svc, "ServiceD69D759B"));
        assert!(p.resource("AWS::ECS::Cluster", "Cdk-Cluster-1", "Cluster"));
        assert!(p.resource("AWS::ECS::Cluster", "Other", "Other"));
        assert!(p.resource("AWS::Logs::LogGroup", "Cdk-Logs-3", "Logs"));
        assert!(p.resource("AWS::SSM::Parameter", "/a/b", "P"));
        assert!(p.resource("AWS::SSM::Parameter", "CFN-P-1", "P2"));
        assert!(p.resource("AWS::SNS::Topic", "arn:aws:sns:x", "Topic (arn:aws:sns:x)"));
        assert!(p.resource("AWS::CDK::Metadata", "x", "CDKMetadata"));
        assert!(p.resource("AWS::EC2::SecurityGroup", "sg-0abc", "Sg"));
        assert!(!p.resource("AWS::CloudFormation::Stack", "arn:nested", "Nested"));
        assert_eq!(
            p.clusters["Cdk-Cluster-1"],
            Some(BTreeSet::from(["Cdk-Service-2".to_string()]))
        );
        assert_eq!(p.clusters["Other"], Some(BTreeSet::new()));
        assert_eq!(p.parameters, BTreeSet::from(["/a/b".to_string()]));
        assert_eq!(p.security_groups, BTreeSet::from(["sg-0abc".to_string()]));
        assert_eq!(
            p.left_out.keys().collect::<Vec<_>>(),
            ["P2", "Topic (arn:aws:sns:x)"]
        );
        assert!(p.left_out["Topic (arn:aws:sns:x)"].contains("AWS::SNS::Topic"));
    }

    #[test]
    fn tags_are_key_equals_value() {
        assert_eq!(
            parse_tag("app=backend"),
            Ok(("app".into(), "backend".into()))
        );
        assert_eq!(parse_tag("env="), Ok(("env".into(), String::new())));
        assert!(parse_tag("app").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_tag("=x").unwrap_err().contains("1-128"));
        assert_eq!(service_of_arn("arn:aws:ecs:r:1:service/svc"), None);
    }
}
