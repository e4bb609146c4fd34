//! Subnet and security group lookups, so manifests can say "the default VPC's subnets"
//! instead of account-specific IDs.

use std::collections::HashMap;

use aws_sdk_ec2::types::Filter;

use crate::aws::{Aws, AwsError};
use crate::manifest::service::{NetworkLookup, NetworkSelector};
use crate::reconcile::ReconcileError;

/// Which EC2 collection a selector picks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Subnets (`names` match the `Name` tag).
    Subnets,
    /// Security groups (`names` match the group name).
    SecurityGroups,
}

/// Resolves selectors to sorted IDs, remembering answers for the rest of a pass.
#[derive(Default)]
pub struct Resolver {
    cache: HashMap<(Target, String), Vec<String>>,
    default_vpc: Option<String>,
}

impl Resolver {
    /// The IDs `selector` stands for, sorted.
    pub async fn resolve(
        &mut self,
        aws: &Aws,
        target: Target,
        selector: &NetworkSelector,
    ) -> Result<Vec<String>, ReconcileError> {
        if let Some(ids) = &selector.ids {
            let mut ids = ids.clone();
            ids.sort();
            ids.dedup();
            return Ok(ids);
        }
        let Some(lookup) = &selector.lookup else {
            return Ok(Vec::new());
        };
        let key = (target, serde_json::to_string(lookup).unwrap_or_default());
        if let Some(ids) = self.cache.get(&key) {
            return Ok(ids.clone());
        }
        let vpc = self.vpc_id(aws, &lookup.vpc).await?;
        let ids = match target {
            Target::Subnets => subnets(aws, &vpc, lookup).await?,
            Target::SecurityGroups => security_groups(aws, &vpc, lookup).await?,
        };
        if ids.is_empty() {
            return Err(ReconcileError::Resolve {
                what: match target {
                    Target::Subnets => "subnets".into(),
                    Target::SecurityGroups => "security groups".into(),
                },
                message: format!("nothing matches the lookup {}", key.1),
            });
        }
        self.cache.insert(key, ids.clone());
        Ok(ids)
    }

    async fn vpc_id(&mut self, aws: &Aws, vpc: &str) -> Result<String, ReconcileError> {
        if vpc != "default" {
            return Ok(vpc.to_string());
        }
        if let Some(id) = &self.default_vpc {
            return Ok(id.clone());
        }
        let out = aws
            .ec2
            .describe_vpcs()
            .filters(filter("is-default", "true"))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2:DescribeVpcs", e))?;
        let id = out
            .vpcs()
            .iter()
            .find_map(|v| v.vpc_id())
            .ok_or_else(|| ReconcileError::Resolve {
                what: "the default VPC".into(),
                message: format!("the account has no default VPC in {}", aws.region),
            })?
            .to_string();
        self.default_vpc = Some(id.clone());
        Ok(id)
    }
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn filters(vpc: &str, lookup: &NetworkLookup, name_filter: &str) -> Vec<Filter> {
    let mut out = vec![filter("vpc-id", vpc)];
    for (k, v) in &lookup.tags {
        out.push(filter(&format!("tag:{k}"), v));
    }
    if !lookup.names.is_empty() {
        out.push(
            Filter::builder()
                .name(name_filter)
                .set_values(Some(lookup.names.clone()))
                .build(),
        );
    }
    out
}

async fn subnets(
    aws: &Aws,
    vpc: &str,
    lookup: &NetworkLookup,
) -> Result<Vec<String>, ReconcileError> {
    let mut ids = Vec::new();
    let mut token = None;
    loop {
        let out = aws
            .ec2
            .describe_subnets()
            .set_filters(Some(filters(vpc, lookup, "tag:Name")))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2:DescribeSubnets", e))?;
        ids.extend(
            out.subnets()
                .iter()
                .filter_map(|s| s.subnet_id().map(str::to_string)),
        );
        token = out.next_token;
        if token.is_none() {
            break;
        }
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

async fn security_groups(
    aws: &Aws,
    vpc: &str,
    lookup: &NetworkLookup,
) -> Result<Vec<String>, ReconcileError> {
    let mut ids = Vec::new();
    let mut token = None;
    loop {
        let out = aws
            .ec2
            .describe_security_groups()
            .set_filters(Some(filters(vpc, lookup, "group-name")))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2:DescribeSecurityGroups", e))?;
        ids.extend(
            out.security_groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_string)),
        );
        token = out.next_token;
        if token.is_none() {
            break;
        }
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}
