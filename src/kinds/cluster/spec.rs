//! `kind: Cluster` — an ECS cluster.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::Metadata;
use crate::manifest::common::{check_aws_name, check_tags};
use crate::manifest::error::Findings;

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

