//! Subnet and security group lookups, so manifests can say "the default VPC's subnets"
//! instead of account-specific IDs.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ec2::types::{Filter, SecurityGroup};

use crate::aws::{Aws, AwsError};
use crate::manifest::service::{NetworkLookup, NetworkSelector};
use crate::manifest::{Kind, MANAGED_BY, TAG_MANAGED_BY};
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
    /// `SecurityGroup/name` → ID of every group mooring manages, listed once.
    managed_groups: Option<BTreeMap<String, String>>,
}

/// What plan shows for the ID of a security group that this apply has yet to create.
pub fn pending_security_group(name: &str) -> String {
    format!("(ID of SecurityGroup/{name}, once created)")
}

/// True when `ids` holds a [`pending_security_group`] placeholder.
pub fn has_pending(ids: &[String]) -> bool {
    ids.iter().any(|id| id.starts_with('('))
}

/// The IDs of a selector whose groups plan found missing, looked up again at apply time
/// (they may have been created earlier in this apply). Still missing: a dependency error.
pub async fn settle(
    aws: &Aws,
    selector: Option<&NetworkSelector>,
    ids: &[String],
) -> Result<Vec<String>, ReconcileError> {
    let Some(selector) = selector.filter(|_| has_pending(ids)) else {
        return Ok(ids.to_vec());
    };
    let ids = Resolver::default()
        .resolve(aws, Target::SecurityGroups, selector)
        .await?;
    match selector
        .refs
        .iter()
        .flatten()
        .find(|r| ids.contains(&pending_security_group(r)))
    {
        Some(name) => Err(ReconcileError::Dependency(format!("SecurityGroup/{name}"))),
        None => Ok(ids),
    }
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
        if let Some(refs) = &selector.refs {
            let groups = self.managed_groups(aws).await?;
            let mut ids: Vec<String> = refs
                .iter()
                .map(|name| {
                    groups
                        .get(&format!("{}/{name}", Kind::SecurityGroup))
                        .cloned()
                        .unwrap_or_else(|| pending_security_group(name))
                })
                .collect();
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
        let found = match target {
            Target::Subnets => subnets(aws, &vpc, lookup).await?,
            Target::SecurityGroups => security_groups(aws, &vpc, lookup).await?,
        };
        let ids = check_lookup(target, lookup, &key.1, found)?;
        self.cache.insert(key, ids.clone());
        Ok(ids)
    }

    /// Every security group mooring manages, by its ownership tag (`SecurityGroup/name`).
    /// One paginated DescribeSecurityGroups per pass.
    pub async fn managed_groups(
        &mut self,
        aws: &Aws,
    ) -> Result<&BTreeMap<String, String>, ReconcileError> {
        if self.managed_groups.is_none() {
            self.managed_groups = Some(owners(&mooring_groups(aws).await?));
        }
        Ok(self.managed_groups.get_or_insert_default())
    }

    /// The ID of `vpc` (`default` or an ID), looked up once per pass.
    pub async fn vpc_id(&mut self, aws: &Aws, vpc: &str) -> Result<String, ReconcileError> {
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

/// The IDs of a lookup's results, sorted, after checking them: every requested name found,
/// and no more than ECS takes (16 subnets, 5 security groups). `found` is (ID, name).
pub fn check_lookup(
    target: Target,
    lookup: &NetworkLookup,
    shown: &str,
    found: Vec<(String, Option<String>)>,
) -> Result<Vec<String>, ReconcileError> {
    let (what, limit) = match target {
        Target::Subnets => ("subnets", 16),
        Target::SecurityGroups => ("security groups", 5),
    };
    let err = |message: String| ReconcileError::Resolve {
        what: what.into(),
        message,
    };
    let missing: Vec<&str> = lookup
        .names
        .iter()
        .filter(|n| {
            !found
                .iter()
                .any(|(_, name)| name.as_deref() == Some(n.as_str()))
        })
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(err(format!(
            "no match for {} in the lookup {shown}",
            missing.join(", ")
        )));
    }
    let mut ids: Vec<String> = found.into_iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Err(err(format!("nothing matches the lookup {shown}")));
    }
    if ids.len() > limit {
        return Err(err(format!(
            "the lookup {shown} finds {} {what}; ECS takes at most {limit}: narrow it with `names` or `tags`",
            ids.len()
        )));
    }
    Ok(ids)
}

/// An EC2 filter with one value.
pub fn filter(name: &str, value: &str) -> Filter {
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
) -> Result<Vec<(String, Option<String>)>, ReconcileError> {
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
        ids.extend(out.subnets().iter().filter_map(|s| {
            let name = s
                .tags()
                .iter()
                .find(|t| t.key() == Some("Name"))
                .and_then(|t| t.value())
                .map(str::to_string);
            Some((s.subnet_id()?.to_string(), name))
        }));
        token = out.next_token;
        if token.is_none() {
            break;
        }
    }
    Ok(ids)
}

/// Every security group that carries mooring's `managed-by` tag (one paginated call).
pub async fn mooring_groups(aws: &Aws) -> Result<Vec<SecurityGroup>, AwsError> {
    describe_security_groups(
        aws,
        vec![filter(&format!("tag:{TAG_MANAGED_BY}"), MANAGED_BY)],
    )
    .await
}

/// A group's ownership tag value (`SecurityGroup/name`).
pub fn group_owner(g: &SecurityGroup) -> Option<&str> {
    crate::resources::resource_tag(g.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))))
}

/// Ownership tag value → group ID.
pub fn owners(groups: &[SecurityGroup]) -> BTreeMap<String, String> {
    groups
        .iter()
        .filter_map(|g| Some((group_owner(g)?.to_string(), g.group_id()?.to_string())))
        .collect()
}

async fn security_groups(
    aws: &Aws,
    vpc: &str,
    lookup: &NetworkLookup,
) -> Result<Vec<(String, Option<String>)>, ReconcileError> {
    Ok(
        describe_security_groups(aws, filters(vpc, lookup, "group-name"))
            .await?
            .iter()
            .filter_map(|g| {
                Some((
                    g.group_id()?.to_string(),
                    g.group_name().map(str::to_string),
                ))
            })
            .collect(),
    )
}

/// DescribeSecurityGroups with `filters`, every page.
pub async fn describe_security_groups(
    aws: &Aws,
    filters: Vec<Filter>,
) -> Result<Vec<SecurityGroup>, AwsError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = aws
            .ec2
            .describe_security_groups()
            .set_filters(Some(filters.clone()))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2:DescribeSecurityGroups", e))?;
        out.extend(page.security_groups().iter().cloned());
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(names: &[&str]) -> NetworkLookup {
        NetworkLookup {
            vpc: "default".into(),
            tags: Default::default(),
            names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn found(n: usize) -> Vec<(String, Option<String>)> {
        (0..n)
            .map(|i| (format!("sg-{i}"), Some(format!("g{i}"))))
            .collect()
    }

    #[test]
    fn lookups_must_find_every_name_and_fit_ecs_limits() {
        let ids = check_lookup(
            Target::SecurityGroups,
            &lookup(&["g1", "g0"]),
            "x",
            found(2),
        )
        .unwrap();
        assert_eq!(ids, vec!["sg-0", "sg-1"]);
        let e = check_lookup(
            Target::SecurityGroups,
            &lookup(&["g0", "typo"]),
            "x",
            found(1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no match for typo"), "{e}");
        let e = check_lookup(Target::SecurityGroups, &lookup(&[]), "x", found(6)).unwrap_err();
        assert!(
            e.to_string()
                .contains("finds 6 security groups; ECS takes at most 5"),
            "{e}"
        );
        assert!(check_lookup(Target::Subnets, &lookup(&[]), "x", found(6)).is_ok());
        assert!(check_lookup(Target::Subnets, &lookup(&[]), "x", vec![]).is_err());
    }
}
