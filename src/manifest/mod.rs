//! Desired state: the manifest format `mooring.dev/v1alpha1`, its schema, loading and
//! validation. Nothing here touches the network.

pub mod annotations;
pub mod common;
pub mod environment;
pub mod error;
pub mod limits;
pub mod load;
pub mod read;
pub mod render;
pub mod schema;
pub mod stack;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

pub use crate::kinds::api_destination::spec::ApiDestinationSpec;
pub use crate::kinds::cluster::spec::ClusterSpec;
pub use crate::kinds::connection::spec::ConnectionSpec;
pub use crate::kinds::load_balancer::spec::LoadBalancerSpec;
pub use crate::kinds::parameter_set::spec::ParameterSetSpec;
pub use crate::kinds::replication_group::spec::ReplicationGroupSpec;
pub use crate::kinds::rule::spec::RuleSpec;
pub use crate::kinds::scalable_target::spec::ScalableTargetSpec;
pub use crate::kinds::security_group::spec::SecurityGroupSpec;
pub use crate::kinds::service::spec::ServiceSpec;
pub use crate::kinds::target_group::spec::TargetGroupSpec;
pub use crate::kinds::{Kind, ManifestSet};
pub use annotations::{MANAGED_BY, TAG_MANAGED_BY, TAG_RESOURCE, TAG_STACK};
pub use error::{ManifestError, ManifestErrors};
pub use load::load_dir;

/// The only API version this build understands.
pub const API_VERSION: &str = "mooring.dev/v1alpha1";

/// Identity and bookkeeping of a manifest, as in Kubernetes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// Name of the resource, unique per kind. Other manifests refer to it by this name; it
    /// is also the AWS name unless the spec overrides it. At most 200 characters, so that
    /// the ownership tag `Kind/name` stays within AWS's 256-character tag values.
    #[schemars(length(min = 1, max = 200), pattern(r"^[A-Za-z0-9][A-Za-z0-9_-]*$"))]
    pub name: String,
    /// Free-form labels (not sent to AWS).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations (not sent to AWS).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A manifest document: the Kubernetes-style envelope around a kind's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Document<S> {
    /// Always `mooring.dev/v1alpha1`.
    pub api_version: String,
    /// The kind of resource.
    pub kind: String,
    /// Name, labels and annotations.
    pub metadata: Metadata,
    /// The desired state of the resource.
    pub spec: S,
}

/// Where a manifest was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The file.
    pub file: PathBuf,
    /// Line of the document's first field.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A validated manifest of one kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest<S> {
    /// Name, labels and annotations.
    pub metadata: Metadata,
    /// The validated spec.
    pub spec: S,
    /// Where it came from.
    pub origin: Origin,
}

impl<S> Manifest<S> {
    /// The manifest's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

impl ManifestSet {
    /// The cluster manifest called `name`.
    pub fn cluster(&self, name: &str) -> Option<&Manifest<ClusterSpec>> {
        self.clusters.iter().find(|c| c.name() == name)
    }

    /// The parameter set that declares the SSM parameter `full_name`, managed or required.
    pub fn parameter_set_declaring(&self, full_name: &str) -> Option<&Manifest<ParameterSetSpec>> {
        self.parameter_sets
            .iter()
            .find(|p| p.spec.declares(full_name))
    }

    /// Every resource as (kind, name), in dependency order.
    pub fn ids(&self) -> Vec<(Kind, String)> {
        self.metadata()
            .into_iter()
            .map(|(k, m)| (k, m.name.clone()))
            .collect()
    }

    /// The scalable target of the service manifest `service`, if it is autoscaled.
    pub fn scalable_target_for(&self, service: &str) -> Option<&Manifest<ScalableTargetSpec>> {
        self.scalable_targets
            .iter()
            .find(|t| t.spec.service == service)
    }

    /// The security group manifest called `name`.
    pub fn security_group(&self, name: &str) -> Option<&Manifest<SecurityGroupSpec>> {
        self.security_groups.iter().find(|g| g.name() == name)
    }

    /// The target group manifest called `name`.
    pub fn target_group(&self, name: &str) -> Option<&Manifest<TargetGroupSpec>> {
        self.target_groups.iter().find(|t| t.name() == name)
    }

    /// The service manifest called `name`.
    pub fn service(&self, name: &str) -> Option<&Manifest<ServiceSpec>> {
        self.services.iter().find(|s| s.name() == name)
    }

    /// True when the set describes nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Metadata {
    /// The mode this resource asks for, if any (`true` = enforce).
    pub fn enforce(&self) -> Option<bool> {
        match self.annotations.get(annotations::MODE).map(String::as_str) {
            Some("enforce") => Some(true),
            Some("observe") => Some(false),
            _ => None,
        }
    }

    /// True when the resource is paused.
    pub fn paused(&self) -> bool {
        self.annotations
            .get(annotations::PAUSED)
            .map(String::as_str)
            == Some("true")
    }
}

/// Schema of an environment value: a string, number or boolean.
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)]
pub(crate) enum ScalarSchema {
    String(String),
    Number(f64),
    Bool(bool),
}

pub(crate) fn scalar_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "value of `{k}` must be a string, number or boolean, not {other}"
            ))),
        })
        .collect()
}
