//! `kind: Cluster` — an ECS cluster.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Metadata;
use super::error::Findings;

/// An ECS cluster that services run in.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Name of the cluster in ECS. Defaults to `metadata.name`.
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// CloudWatch Container Insights for the cluster. Left as AWS has it when unset.
    #[serde(default)]
    pub container_insights: Option<ContainerInsights>,
    /// Tags to put on the cluster (the ownership tags are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// The `containerInsights` cluster setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ContainerInsights {
    /// Container Insights on.
    Enabled,
    /// Container Insights off.
    Disabled,
    /// Container Insights with enhanced observability.
    Enhanced,
}

impl ContainerInsights {
    /// The value ECS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerInsights::Enabled => "enabled",
            ContainerInsights::Disabled => "disabled",
            ContainerInsights::Enhanced => "enhanced",
        }
    }
}

impl ClusterSpec {
    /// The cluster's name in ECS.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.cluster_name.as_deref().unwrap_or(&meta.name)
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        check_aws_name(self.aws_name(meta), "/spec/clusterName", f);
        check_tags(&self.tags, "/spec/tags", f);
    }
}

/// ECS names (clusters, services, families, containers): 1–255 letters, digits, `-`, `_`.
pub(crate) fn check_aws_name(name: &str, pointer: &str, f: &mut Findings<'_>) {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        f.at(
            pointer,
            format!("`{name}` is not a valid ECS name (1-255 letters, digits, `-` and `_`)"),
        );
    }
}

/// AWS tag limits, and the keys mooring reserves for itself.
pub(crate) fn check_tags(tags: &BTreeMap<String, String>, pointer: &str, f: &mut Findings<'_>) {
    if tags.len() > 45 {
        f.at(
            pointer,
            "at most 45 tags (AWS allows 50; mooring adds its own)",
        );
    }
    for (k, v) in tags {
        let p = format!("{pointer}/{}", super::yaml::escape_segment(k));
        if k.is_empty() || k.chars().count() > 128 {
            f.at(&p, "tag keys are 1-128 characters");
        }
        if v.chars().count() > 256 {
            f.at(&p, "tag values are at most 256 characters");
        }
        if k.starts_with("mooring.dev/") {
            f.at(
                &p,
                "tag keys under `mooring.dev/` are reserved for ownership tags",
            );
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            f.at(&p, "tag keys starting with `aws:` are reserved by AWS");
        }
    }
}
