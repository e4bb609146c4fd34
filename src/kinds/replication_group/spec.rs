//! `kind: ReplicationGroup` — ElastiCache Redis (or Valkey) for cache, sessions and job
//! queues.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::Metadata;
use crate::manifest::common::check_tags;
use crate::manifest::error::Findings;
use crate::manifest::common::NetworkSelector;

/// An ElastiCache replication group (cluster mode disabled: one shard, 1-6 nodes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReplicationGroupSpec {
    /// ID in ElastiCache (1-40 lowercase letters, digits and single hyphens, starting with a
    /// letter). Defaults to `metadata.name`. Changing it replaces the group.
    #[serde(default)]
    pub replication_group_id: Option<String>,
    /// Description shown in the console.
    #[serde(default)]
    pub description: Option<String>,
    /// Engine. Changing it replaces the group.
    #[serde(default)]
    pub engine: CacheEngine,
    /// Engine version, e.g. `7.1`.
    pub engine_version: String,
    /// Node type, e.g. `cache.t2.small`.
    pub node_type: String,
    /// Nodes: the primary plus replicas (1-6).
    pub num_cache_clusters: u32,
    /// Promote a replica when the primary fails (needs 2 or more nodes).
    #[serde(default)]
    pub automatic_failover: bool,
    /// Spread nodes over availability zones (needs automatic failover).
    #[serde(default)]
    pub multi_az: bool,
    /// Name of an existing cache subnet group (one no manifest manages). Without it and
    /// without `subnetGroup`, ElastiCache uses the default VPC's `default` group.
    #[serde(default)]
    pub subnet_group_name: Option<String>,
    /// A `CacheSubnetGroup` manifest, by name: it is created first, and the group is placed
    /// in it under its ElastiCache name. Set this or `subnetGroupName`, not both.
    #[serde(default)]
    pub subnet_group: Option<String>,
    /// VPC security groups of the nodes.
    #[serde(default)]
    pub security_groups: Option<NetworkSelector>,
    /// Port. Default 6379. Changing it replaces the group.
    #[serde(default)]
    pub port: Option<u16>,
    /// Encrypt data at rest. Changing it replaces the group.
    #[serde(default)]
    pub at_rest_encryption: bool,
    /// Encrypt connections (TLS). Changing it replaces the group.
    #[serde(default)]
    pub transit_encryption: bool,
    /// Days of automatic snapshots to keep (0-35; 0 turns them off).
    #[serde(default)]
    pub snapshot_retention_limit: u32,
    /// Tags (the ownership tags are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// ElastiCache engines with replication groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CacheEngine {
    /// Redis OSS.
    #[default]
    Redis,
    /// Valkey.
    Valkey,
}

impl CacheEngine {
    /// The name ElastiCache uses.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheEngine::Redis => "redis",
            CacheEngine::Valkey => "valkey",
        }
    }
}

/// Node families and sizes ElastiCache offers for Redis/Valkey (current and previous
/// generation); a typo here is a failed CreateReplicationGroup later.
const NODE_FAMILIES: [(&str, &[&str]); 13] = [
    ("t2", &["micro", "small", "medium"]),
    ("t3", &["micro", "small", "medium"]),
    ("t4g", &["micro", "small", "medium"]),
    ("m4", &["large", "xlarge", "2xlarge", "4xlarge", "10xlarge"]),
    (
        "m5",
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge",
        ],
    ),
    (
        "m6g",
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge",
        ],
    ),
    (
        "m7g",
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge",
        ],
    ),
    (
        "r4",
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge",
        ],
    ),
    (
        "r5",
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge",
        ],
    ),
    (
        "r6g",
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge",
        ],
    ),
    (
        "r7g",
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge",
        ],
    ),
    (
        "r6gd",
        &[
            "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge",
        ],
    ),
    (
        "c7gn",
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge",
        ],
    ),
];

/// True when `node_type` is a node type ElastiCache offers.
pub fn known_node_type(node_type: &str) -> bool {
    let mut parts = node_type.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("cache"), Some(family), Some(size), None) => NODE_FAMILIES
            .iter()
            .any(|(f, sizes)| *f == family && sizes.contains(&size)),
        _ => false,
    }
}

impl ReplicationGroupSpec {
    /// The group's ID in ElastiCache.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.replication_group_id.as_deref().unwrap_or(&meta.name)
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        let id = self.aws_name(meta);
        let ok = !id.is_empty()
            && id.len() <= 40
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !id.ends_with('-')
            && !id.contains("--");
        if !ok {
            f.at(
                "/spec/replicationGroupId",
                format!("`{id}` is not a valid replication group ID (1-40 lowercase letters, digits and single hyphens, starting with a letter)"),
            );
        }
        if !known_node_type(&self.node_type) {
            f.at(
                "/spec/nodeType",
                format!("`{}` is not an ElastiCache node type (e.g. cache.t2.small, cache.t4g.micro, cache.r7g.large)", self.node_type),
            );
        }
        let version_ok = !self.engine_version.is_empty()
            && self
                .engine_version
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !version_ok {
            f.at("/spec/engineVersion", "must be a version such as `7.1`");
        }
        if !(1..=6).contains(&self.num_cache_clusters) {
            f.at(
                "/spec/numCacheClusters",
                format!(
                    "{} is outside 1-6 (the primary and up to five replicas)",
                    self.num_cache_clusters
                ),
            );
        }
        if self.automatic_failover && self.num_cache_clusters < 2 {
            f.at(
                "/spec/automaticFailover",
                "needs numCacheClusters of 2 or more",
            );
        }
        if self.multi_az && !self.automatic_failover {
            f.at("/spec/multiAz", "needs automaticFailover");
        }
        if self.port == Some(0) {
            f.at("/spec/port", "ports are 1-65535");
        }
        if self.snapshot_retention_limit > 35 {
            f.at("/spec/snapshotRetentionLimit", "at most 35 days");
        }
        if let Some(sel) = &self.security_groups {
            sel.check("/spec/securityGroups", true, f);
        }
        if self.subnet_group.is_some() && self.subnet_group_name.is_some() {
            f.at(
                "/spec/subnetGroup",
                "set `subnetGroup` (a CacheSubnetGroup manifest) or `subnetGroupName` (an existing group), not both",
            );
        }
        check_tags(&self.tags, "/spec/tags", f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_types() {
        assert!(known_node_type("cache.t2.small"));
        assert!(known_node_type("cache.r7g.large"));
        assert!(!known_node_type("cache.t2.smal"));
        assert!(!known_node_type("t2.small"));
        assert!(!known_node_type("cache.x9.large"));
    }
}
