//! Subnet and security group lookups, so manifests can say "the default VPC's subnets"
//! instead of account-specific IDs.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_ec2::types::{Filter, SecurityGroup};

use super::ownership::{Owner, Ownership};
use crate::aws::{Aws, AwsError};
use crate::manifest::common::{NetworkLookup, NetworkSelector};
use crate::manifest::{Kind, MANAGED_BY, TAG_MANAGED_BY};
use crate::reconcile::{Cx, ReconcileError};

/// Which EC2 collection a selector picks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Subnets (`names` match the `Name` tag).
    Subnets,
    /// Security groups (`names` match the group name).
    SecurityGroups,
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
    cx: &Cx<'_>,
    selector: Option<&NetworkSelector>,
    ids: &[String],
) -> Result<Vec<String>, ReconcileError> {
    let Some(selector) = selector.filter(|_| has_pending(ids)) else {
        return Ok(ids.to_vec());
    };
    let ids = resolve(cx, Target::SecurityGroups, selector).await?;
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

/// The IDs `selector` stands for, sorted. Lookups are read once per pass.
pub async fn resolve(
    cx: &Cx<'_>,
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
        let groups = managed_groups(cx).await?;
        let mut ids: Vec<String> = refs
            .iter()
            .map(|name| {
                groups
                    .get(name)
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
    let shown = serde_json::to_string(lookup).unwrap_or_default();
    let vpc = vpc_id(cx, &lookup.vpc).await?;
    let found = cx
        .cache
        .lookups
        .get((target, vpc.clone(), shown.clone()), || async {
            let found = match target {
                Target::Subnets => subnets(cx.aws(), &vpc, lookup).await?,
                Target::SecurityGroups => security_groups(cx.aws(), &vpc, lookup).await?,
            };
            Ok::<_, ReconcileError>(Arc::new(found))
        })
        .await?;
    check_lookup(target, lookup, &shown, found.as_ref().clone())
}

/// This stack's security groups, by manifest name → group ID (groups tagged before stacks
/// count too; one of this stack wins over one without a stack). A manifest that adopts
/// (`mooring.dev/adopt: "true"`) a group not tagged yet names the group of its name in its
/// VPC, as the `SecurityGroup` kind finds it: a reference to it then plans that group's ID
/// (what `mooring import` writes plans only the adoption), not one "once created".
pub async fn managed_groups(cx: &Cx<'_>) -> Result<BTreeMap<String, String>, ReconcileError> {
    let groups = mooring_groups(cx).await?;
    let mut out = owners(&groups, cx.set.owner(), &|name| group_name(cx.set, name));
    for m in &cx.set.security_groups {
        if !super::ownership::adopts(&m.metadata) || out.contains_key(m.name()) {
            continue;
        }
        let vpc = vpc_id(cx, &m.spec.vpc).await?;
        let lookup = NetworkLookup {
            vpc: vpc.clone(),
            tags: BTreeMap::new(),
            names: vec![m.spec.aws_name(&m.metadata).to_string()],
        };
        let shown = serde_json::to_string(&lookup).unwrap_or_default();
        let found = cx
            .cache
            .lookups
            .get((Target::SecurityGroups, vpc.clone(), shown), || async {
                let found = security_groups(cx.aws(), &vpc, &lookup).await?;
                Ok::<_, ReconcileError>(Arc::new(found))
            })
            .await?;
        if let [(id, _)] = found.as_slice() {
            out.insert(m.name().to_string(), id.clone());
        }
    }
    Ok(out)
}

/// Every security group that carries mooring's `managed-by` tag, whatever its stack (one
/// paginated call per pass).
pub async fn mooring_groups(cx: &Cx<'_>) -> Result<Arc<Vec<SecurityGroup>>, AwsError> {
    cx.cache
        .mooring_groups
        .get((), || async {
            describe_security_groups(
                cx.aws(),
                vec![filter(&format!("tag:{TAG_MANAGED_BY}"), MANAGED_BY)],
            )
            .await
            .map(Arc::new)
        })
        .await
}

/// The ID of `vpc` (`default` or an ID), looked up once per pass.
pub async fn vpc_id(cx: &Cx<'_>, vpc: &str) -> Result<String, ReconcileError> {
    if vpc != "default" {
        return Ok(vpc.to_string());
    }
    let aws = cx.aws();
    let id = cx
        .cache
        .default_vpc
        .get((), || async {
            let out = aws
                .ec2
                .describe_vpcs()
                .filters(filter("is-default", "true"))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ec2:DescribeVpcs", e))?;
            Ok::<_, AwsError>(
                out.vpcs()
                    .iter()
                    .find_map(|v| v.vpc_id())
                    .map(str::to_string),
            )
        })
        .await?;
    id.ok_or_else(|| ReconcileError::Resolve {
        what: "the default VPC".into(),
        message: format!("the account has no default VPC in {}", aws.region),
    })
}

/// The AWS name of the set's `SecurityGroup` manifest `name`.
pub fn group_name(set: &crate::manifest::ManifestSet, name: &str) -> Option<String> {
    set.security_group(name)
        .map(|g| g.spec.aws_name(&g.metadata).to_string())
}

/// A group's ownership, from its tags.
pub fn group_ownership(g: &SecurityGroup) -> Ownership {
    Ownership::from_tags(g.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))))
}

/// Manifest name → group ID of the groups that belong to `stack`, or to no stack (tagged
/// before stacks) when they carry the name `aws_name` gives for that manifest: another
/// stack's older group of the same manifest name is not this stack's.
pub fn owners(
    groups: &[SecurityGroup],
    owner: Owner<'_>,
    aws_name: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, String> {
    let prefix = format!("{}/", Kind::SecurityGroup);
    let mut out = BTreeMap::new();
    let mut legacy = BTreeMap::new();
    for g in groups {
        let o = group_ownership(g);
        let (Some(name), Some(id)) = (
            o.resource
                .as_deref()
                .and_then(|r| r.strip_prefix(prefix.as_str())),
            g.group_id(),
        ) else {
            continue;
        };
        if owner.owns(&o) {
            out.insert(name.to_string(), id.to_string());
        } else if (o.stack.is_none() || owner.claims(&o))
            && aws_name(name).as_deref() == g.group_name()
        {
            legacy.insert(name.to_string(), id.to_string());
        }
    }
    for (name, id) in legacy {
        out.entry(name).or_insert(id);
    }
    out
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
    let subnets = aws
        .ec2
        .describe_subnets()
        .set_filters(Some(filters(vpc, lookup, "tag:Name")))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AwsError::from_sdk("ec2:DescribeSubnets", e))?;
    Ok(subnets
        .iter()
        .filter_map(|s| {
            let name = s
                .tags()
                .iter()
                .find(|t| t.key() == Some("Name"))
                .and_then(|t| t.value())
                .map(str::to_string);
            Some((s.subnet_id()?.to_string(), name))
        })
        .collect())
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
    aws.ec2
        .describe_security_groups()
        .set_filters(Some(filters))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AwsError::from_sdk("ec2:DescribeSecurityGroups", e))
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
