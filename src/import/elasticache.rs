//! ElastiCache replication groups (Redis/Valkey, cluster mode disabled) and the cache
//! subnet groups they are placed in, picked by a CloudFormation stack or a tag:
//! `replication-groups.yaml`. A replication group in a subnet group other than `default`
//! names that group's `CacheSubnetGroup` manifest (`subnetGroup:`), which is imported with
//! it. Security groups are written as IDs. The `--cluster` path does not follow services to
//! their caches (nothing in a service names one): pick them by tag or stack.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_elasticache::types::{CacheCluster, ReplicationGroup};
use serde_json::json;

use super::{Ctx, Imported, Names, read_failed, user_tags};
use crate::aws::{AwsError, ErrorCategory};

/// The engine version written when ElastiCache reports none (the current Redis OSS one).
const UNKNOWN_VERSION: &str = "7.1";

/// What the replication groups picked came to.
#[derive(Default)]
pub(crate) struct Read {
    /// The subnet groups, then the replication groups.
    pub docs: Vec<Imported>,
    /// The member cache clusters of the imported groups (their IDs).
    pub members: BTreeSet<String>,
    /// What was picked but is not imported: `what` → why.
    pub left_out: BTreeMap<String, String>,
}

/// Reads the replication groups `groups` (IDs) and the subnet groups `subnet_groups`
/// (names) picked on their own, with the subnet groups the replication groups use.
pub(crate) async fn read(
    cx: &Ctx<'_>,
    groups: &BTreeSet<String>,
    subnet_groups: &BTreeSet<String>,
    names: &mut Names,
) -> Result<Read, String> {
    let mut out = Read::default();
    let mut rgs = Vec::new();
    for id in groups {
        match replication_group(cx, id).await? {
            Some(rg) => rgs.push(rg),
            None => {
                out.left_out.insert(
                    format!("replication group {id}"),
                    "it does not exist".into(),
                );
            }
        }
    }
    let mut primaries = BTreeMap::new();
    let mut wanted_subnets = subnet_groups.clone();
    for rg in &rgs {
        out.members
            .extend(rg.member_clusters().iter().map(String::clone));
        let primary = match primary_id(rg) {
            Some(id) => cache_cluster(cx, &id).await?,
            None => None,
        };
        if let Some(sg) = primary
            .as_ref()
            .and_then(|c| c.cache_subnet_group_name())
            .filter(|n| *n != "default")
        {
            wanted_subnets.insert(sg.to_string());
        }
        primaries.insert(
            rg.replication_group_id().unwrap_or_default().to_string(),
            primary,
        );
    }
    // The subnet groups first: the replication groups name their manifests.
    let mut subnet_names = BTreeMap::new();
    for name in &wanted_subnets {
        let Some(g) = subnet_group(cx, name).await? else {
            out.left_out.insert(
                format!("cache subnet group {name}"),
                "it does not exist".into(),
            );
            continue;
        };
        let arn = g.arn().unwrap_or(name).to_string();
        let tags = tags(cx, &arn).await?;
        if names.refuse("cache subnet group", name, pairs(&tags)) {
            continue;
        }
        let manifest = names.take_owned("CacheSubnetGroup", name, pairs(&tags));
        let mut subnets: Vec<&str> = g
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_identifier())
            .collect();
        subnets.sort_unstable();
        subnets.dedup();
        let spec = json!({
            "cacheSubnetGroupName": name,
            "description": g.cache_subnet_group_description().unwrap_or_default(),
            "subnets": {"ids": subnets},
            "tags": user_tags(pairs(&tags)),
        });
        subnet_names.insert(name.clone(), manifest.clone());
        out.docs
            .push(Imported::new("CacheSubnetGroup", manifest, arn, spec));
    }
    for rg in rgs {
        let id = rg.replication_group_id().unwrap_or_default().to_string();
        let primary = primaries.remove(&id).flatten();
        let arn = rg.arn().unwrap_or(&id).to_string();
        let tags = tags(cx, &arn).await?;
        if names.refuse("replication group", &id, pairs(&tags)) {
            continue;
        }
        let manifest = names.take_owned("ReplicationGroup", &id, pairs(&tags));
        out.docs.push(build(
            &rg,
            primary.as_ref(),
            &subnet_names,
            manifest,
            arn,
            &tags,
        ));
    }
    Ok(out)
}

/// `(key, value)` pairs of ElastiCache tags.
fn pairs(tags: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// The ID of the group's primary node's cache cluster (else its first member).
fn primary_id(rg: &ReplicationGroup) -> Option<String> {
    rg.node_groups()
        .first()
        .and_then(|n| {
            n.node_group_members()
                .iter()
                .find(|m| m.current_role() == Some("primary"))
                .and_then(|m| m.cache_cluster_id())
        })
        .or_else(|| rg.member_clusters().first().map(String::as_str))
        .map(str::to_string)
}

/// `7.1.0` → `7.1`: manifests name major.minor.
fn major_minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The manifest of one replication group.
fn build(
    rg: &ReplicationGroup,
    primary: Option<&CacheCluster>,
    subnet_names: &BTreeMap<String, String>,
    name: String,
    arn: String,
    tags: &[(String, String)],
) -> Imported {
    let id = rg.replication_group_id().unwrap_or_default();
    let mut cannot = Vec::new();
    let mut notes = Vec::new();
    let engine = rg
        .engine()
        .or_else(|| primary.and_then(|c| c.engine()))
        .unwrap_or("redis");
    if !matches!(engine, "redis" | "valkey") {
        cannot.push(format!("engine: {engine}"));
    }
    let shards = rg.node_groups().len();
    if shards > 1 || rg.cluster_enabled() == Some(true) {
        cannot.push(format!(
            "cluster mode: {shards} shard(s) (mooring manages one shard with 1-6 nodes)"
        ));
    }
    // The version lives on the member clusters only; moto describes none.
    let version = primary.and_then(|c| c.engine_version()).map(major_minor);
    if version.is_none() {
        notes.push(format!(
            "ElastiCache did not describe the group's nodes, so the engine version, subnet group and security groups are unknown: `engineVersion: {UNKNOWN_VERSION}` is a placeholder to check (mooring compares these only when ElastiCache reports them)"
        ));
    }
    let on = |s: Option<&str>| matches!(s, Some("enabled" | "enabling"));
    let failover = on(rg.automatic_failover().map(|a| a.as_str()));
    let multi_az = on(rg.multi_az().map(|a| a.as_str()));
    let port = rg
        .node_groups()
        .first()
        .and_then(|n| n.primary_endpoint())
        .and_then(|e| e.port())
        .filter(|p| *p != 6379);
    let mut sgs: Vec<&str> = primary
        .map(|c| {
            c.security_groups()
                .iter()
                .filter_map(|g| g.security_group_id())
                .collect()
        })
        .unwrap_or_default();
    sgs.sort_unstable();
    sgs.dedup();
    let subnet = primary
        .and_then(|c| c.cache_subnet_group_name())
        .filter(|n| *n != "default");
    let (subnet_group, subnet_group_name) = match subnet {
        Some(n) => match subnet_names.get(n) {
            Some(manifest) => (Some(manifest.clone()), None),
            None => (None, Some(n.to_string())),
        },
        None => (None, None),
    };
    // Left alone by apply (never compared): noted, not observed.
    if rg.auth_token_enabled() == Some(true) {
        notes.push("an AUTH token is set: mooring neither reads nor changes it".into());
    }
    if let Some(k) = rg.kms_key_id() {
        notes.push(format!(
            "encrypted at rest with KMS key {k}: mooring does not change it"
        ));
    }
    if !rg.user_group_ids().is_empty() {
        notes.push(format!(
            "user groups {:?}: mooring does not change them",
            rg.user_group_ids()
        ));
    }
    if !rg.log_delivery_configurations().is_empty() {
        notes.push("log delivery is configured: mooring does not change it".into());
    }
    let retention = rg.snapshot_retention_limit().filter(|d| *d != 0);
    let spec = json!({
        "replicationGroupId": id,
        "description": rg.description().unwrap_or_default(),
        "engine": (engine == "valkey").then_some("valkey"),
        "engineVersion": version.unwrap_or_else(|| UNKNOWN_VERSION.to_string()),
        "nodeType": rg.cache_node_type(),
        "numCacheClusters": rg.member_clusters().len(),
        "automaticFailover": failover.then_some(true),
        "multiAz": multi_az.then_some(true),
        "subnetGroup": subnet_group,
        "subnetGroupName": subnet_group_name,
        "securityGroups": (!sgs.is_empty()).then(|| json!({"ids": sgs})),
        "port": port,
        "atRestEncryption": rg.at_rest_encryption_enabled().filter(|e| *e),
        "transitEncryption": rg.transit_encryption_enabled().filter(|e| *e),
        "snapshotRetentionLimit": retention,
        "tags": user_tags(pairs(tags)),
    });
    let mut doc = Imported::new("ReplicationGroup", name, arn, spec);
    doc.cannot_carry = cannot;
    doc.notes = notes;
    doc
}

/// One replication group; `None` when it does not exist.
async fn replication_group(cx: &Ctx<'_>, id: &str) -> Result<Option<ReplicationGroup>, String> {
    match cx
        .aws
        .elasticache
        .describe_replication_groups()
        .replication_group_id(id)
        .send()
        .await
    {
        Ok(out) => Ok(out.replication_groups().first().cloned()),
        Err(e) => {
            let e = AwsError::from_sdk("elasticache:DescribeReplicationGroups", e);
            if e.category == ErrorCategory::NotFound {
                Ok(None)
            } else {
                Err(format!("failed to read replication group `{id}`: {e}"))
            }
        }
    }
}

/// One cache cluster (a replication group's node); `None` when it does not exist.
async fn cache_cluster(cx: &Ctx<'_>, id: &str) -> Result<Option<CacheCluster>, String> {
    match cx
        .aws
        .elasticache
        .describe_cache_clusters()
        .cache_cluster_id(id)
        .send()
        .await
    {
        Ok(out) => Ok(out.cache_clusters().first().cloned()),
        Err(e) => {
            let e = AwsError::from_sdk("elasticache:DescribeCacheClusters", e);
            if e.category == ErrorCategory::NotFound {
                Ok(None)
            } else {
                Err(format!("failed to read cache cluster `{id}`: {e}"))
            }
        }
    }
}

/// One cache subnet group; `None` when it does not exist.
async fn subnet_group(
    cx: &Ctx<'_>,
    name: &str,
) -> Result<Option<aws_sdk_elasticache::types::CacheSubnetGroup>, String> {
    match cx
        .aws
        .elasticache
        .describe_cache_subnet_groups()
        .cache_subnet_group_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.cache_subnet_groups().first().cloned()),
        Err(e) => {
            let e = AwsError::from_sdk("elasticache:DescribeCacheSubnetGroups", e);
            if e.category == ErrorCategory::NotFound {
                Ok(None)
            } else {
                Err(format!("failed to read cache subnet group `{name}`: {e}"))
            }
        }
    }
}

/// The tags of an ElastiCache resource, sorted.
async fn tags(cx: &Ctx<'_>, arn: &str) -> Result<Vec<(String, String)>, String> {
    let out = cx
        .aws
        .elasticache
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(|e| {
            read_failed(
                format!("the tags of {arn}"),
                "elasticache:ListTagsForResource",
                e,
            )
        })?;
    let mut tags: Vec<(String, String)> = out
        .tag_list()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect();
    tags.sort();
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticache::types::{
        AutomaticFailoverStatus, Endpoint, NodeGroup, NodeGroupMember, SecurityGroupMembership,
    };

    #[test]
    fn a_replication_group_keeps_its_id_names_its_subnet_group_and_leaves_defaults_out() {
        let make = |shards: usize| {
            let mut b = ReplicationGroup::builder()
                .replication_group_id("CdkStack-Redis-1A2B".to_ascii_lowercase())
                .description("cache")
                .cache_node_type("cache.t3.small")
                .member_clusters("r-001")
                .member_clusters("r-002")
                .automatic_failover(AutomaticFailoverStatus::Disabled)
                .transit_encryption_enabled(true)
                .at_rest_encryption_enabled(false)
                .snapshot_retention_limit(0)
                .node_groups(
                    NodeGroup::builder()
                        .primary_endpoint(Endpoint::builder().address("r.cache").port(6379).build())
                        .node_group_members(
                            NodeGroupMember::builder()
                                .cache_cluster_id("r-002")
                                .current_role("primary")
                                .build(),
                        )
                        .build(),
                );
            for _ in 1..shards {
                b = b.node_groups(NodeGroup::builder().build());
            }
            b.build()
        };
        let rg = make(1);
        assert_eq!(primary_id(&rg).as_deref(), Some("r-002"));
        let primary = CacheCluster::builder()
            .engine("redis")
            .engine_version("7.1.0")
            .cache_subnet_group_name("cdkstack-redissubnets-9z")
            .security_groups(
                SecurityGroupMembership::builder()
                    .security_group_id("sg-b")
                    .build(),
            )
            .security_groups(
                SecurityGroupMembership::builder()
                    .security_group_id("sg-a")
                    .build(),
            )
            .build();
        let subnets = BTreeMap::from([(
            "cdkstack-redissubnets-9z".to_string(),
            "redis-subnets".to_string(),
        )]);
        let tags = vec![
            ("app".to_string(), "salon".to_string()),
            (
                "aws:cloudformation:stack-name".to_string(),
                "CdkStack".to_string(),
            ),
        ];
        let doc = build(
            &rg,
            Some(&primary),
            &subnets,
            "redis".into(),
            "arn:rg".into(),
            &tags,
        );
        assert!(
            doc.cannot_carry.is_empty() && doc.notes.is_empty(),
            "{doc:?}"
        );
        assert_eq!(
            doc.render(),
            "# Imported by `mooring import` from arn:rg\napiVersion: mooring.dev/v1alpha1\nkind: ReplicationGroup\nmetadata:\n  name: redis\n  annotations:\n    mooring.dev/adopt: \"true\"\nspec:\n  replicationGroupId: cdkstack-redis-1a2b\n  description: cache\n  engineVersion: \"7.1\"\n  nodeType: cache.t3.small\n  numCacheClusters: 2\n  subnetGroup: redis-subnets\n  securityGroups:\n    ids: [sg-a, sg-b]\n  transitEncryption: true\n  tags:\n    app: salon\n"
        );
        // Cluster mode (several shards) cannot be carried: observe.
        let sharded = make(2);
        let doc = build(
            &sharded,
            None,
            &subnets,
            "redis".into(),
            "arn:rg".into(),
            &[],
        );
        assert!(
            doc.cannot_carry[0].starts_with("cluster mode: 2 shard(s)"),
            "{doc:?}"
        );
        assert!(doc.notes[0].contains("engine version"), "{doc:?}");
    }
}
