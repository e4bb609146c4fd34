//! `kind: CacheSubnetGroup` — the subnets an ElastiCache replication group's nodes live in.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::Metadata;
use crate::manifest::common::{NetworkSelector, check_tags};
use crate::manifest::error::Findings;

/// An ElastiCache cache subnet group: the subnets (of one VPC) a replication group's nodes
/// are placed in. A `ReplicationGroup` names it with `subnetGroup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheSubnetGroupSpec {
    /// Name in ElastiCache (1-255 lowercase letters, digits and hyphens, starting with a
    /// letter; not `default`). Defaults to `metadata.name`.
    #[serde(default)]
    pub cache_subnet_group_name: Option<String>,
    /// Description shown in the console. Defaults to `<name> (managed by mooring)`.
    #[serde(default)]
    pub description: Option<String>,
    /// The subnets, by ID or looked up (all in one VPC; typically the private ones).
    pub subnets: NetworkSelector,
    /// Tags (the ownership tags are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl CacheSubnetGroupSpec {
    /// The group's name in ElastiCache.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.cache_subnet_group_name.as_deref().unwrap_or(&meta.name)
    }

    /// The description the group gets.
    pub fn description(&self, meta: &Metadata) -> String {
        self.description
            .clone()
            .unwrap_or_else(|| format!("{} (managed by mooring)", self.aws_name(meta)))
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        let name = self.aws_name(meta);
        // ElastiCache stores the name in lowercase: an upper-case name would never be found
        // again under the manifest's spelling.
        let ok = !name.is_empty()
            && name.len() <= 255
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            f.at(
                "/spec/cacheSubnetGroupName",
                format!("`{name}` is not a valid cache subnet group name (1-255 lowercase letters, digits and hyphens, starting with a letter)"),
            );
        } else if name == "default" {
            f.at(
                "/spec/cacheSubnetGroupName",
                "`default` is ElastiCache's own subnet group; choose another name",
            );
        }
        self.subnets.check("/spec/subnets", false, f);
        check_tags(&self.tags, "/spec/tags", f);
    }
}
