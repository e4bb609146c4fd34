//! Desired state: the manifest format `mooring.dev/v1alpha1`, its schema, loading and
//! validation. Nothing here touches the network.

pub mod autoscaling;
pub mod cluster;
pub mod error;
pub mod limits;
pub mod load;
pub mod load_balancer;
pub mod parameters;
pub mod read;
pub mod redis;
pub mod schedules;
pub mod schema;
pub mod security_group;
pub mod service;
pub mod target_group;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

pub use autoscaling::ScalableTargetSpec;
pub use cluster::ClusterSpec;
pub use error::{ManifestError, ManifestErrors};
pub use load::load_dir;
pub use load_balancer::LoadBalancerSpec;
pub use parameters::ParameterSetSpec;
pub use redis::ReplicationGroupSpec;
pub use schedules::{ApiDestinationSpec, ConnectionSpec, RuleSpec};
pub use security_group::SecurityGroupSpec;
pub use service::ServiceSpec;
pub use target_group::TargetGroupSpec;

/// The only API version this build understands.
pub const API_VERSION: &str = "mooring.dev/v1alpha1";

/// The kinds of resources a manifest can describe, in the order they are applied.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Kind {
    /// An ECS cluster.
    Cluster,
    /// SSM parameters under one path: managed values and required hand-set ones.
    ParameterSet,
    /// A VPC security group and its rules.
    SecurityGroup,
    /// An ELBv2 target group of `ip` targets.
    TargetGroup,
    /// An Application Load Balancer and its listeners.
    LoadBalancer,
    /// An ElastiCache Redis replication group.
    ReplicationGroup,
    /// An ECS service on Fargate with its task definition.
    Service,
    /// Application Auto Scaling of a service's desired count.
    ScalableTarget,
    /// An EventBridge connection with API-key authorization.
    Connection,
    /// An EventBridge API destination (an HTTPS endpoint).
    ApiDestination,
    /// A scheduled EventBridge rule calling an API destination.
    Rule,
}

impl Kind {
    /// Every kind, in dependency order (a kind only references kinds before it).
    pub const ALL: [Kind; 11] = [
        Kind::Cluster,
        Kind::ParameterSet,
        Kind::SecurityGroup,
        Kind::TargetGroup,
        Kind::LoadBalancer,
        Kind::ReplicationGroup,
        Kind::Service,
        Kind::ScalableTarget,
        Kind::Connection,
        Kind::ApiDestination,
        Kind::Rule,
    ];

    /// The name used in manifests, URLs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cluster => "Cluster",
            Kind::ParameterSet => "ParameterSet",
            Kind::SecurityGroup => "SecurityGroup",
            Kind::TargetGroup => "TargetGroup",
            Kind::LoadBalancer => "LoadBalancer",
            Kind::ReplicationGroup => "ReplicationGroup",
            Kind::Service => "Service",
            Kind::ScalableTarget => "ScalableTarget",
            Kind::Connection => "Connection",
            Kind::ApiDestination => "ApiDestination",
            Kind::Rule => "Rule",
        }
    }

    /// Parses the `kind` field of a manifest.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// A whole, validated set of manifests: the desired state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestSet {
    /// ECS clusters.
    pub clusters: Vec<Manifest<ClusterSpec>>,
    /// SSM parameter sets.
    pub parameter_sets: Vec<Manifest<ParameterSetSpec>>,
    /// Security groups, each after the groups its rules name.
    pub security_groups: Vec<Manifest<SecurityGroupSpec>>,
    /// ELBv2 target groups.
    pub target_groups: Vec<Manifest<TargetGroupSpec>>,
    /// Application Load Balancers.
    pub load_balancers: Vec<Manifest<LoadBalancerSpec>>,
    /// ElastiCache replication groups.
    pub replication_groups: Vec<Manifest<ReplicationGroupSpec>>,
    /// Fargate services.
    pub services: Vec<Manifest<ServiceSpec>>,
    /// Autoscaling of services.
    pub scalable_targets: Vec<Manifest<ScalableTargetSpec>>,
    /// EventBridge connections.
    pub connections: Vec<Manifest<ConnectionSpec>>,
    /// EventBridge API destinations.
    pub api_destinations: Vec<Manifest<ApiDestinationSpec>>,
    /// EventBridge rules.
    pub rules: Vec<Manifest<RuleSpec>>,
    /// Content hash of the files the set was loaded from (`sha256:…`, first 12 hex digits).
    pub revision: String,
    /// Findings that do not stop the set from loading (e.g. a health check that calls a
    /// tool the image probably lacks), for people to read.
    pub warnings: Vec<ManifestError>,
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

    /// Every resource's metadata with its kind, in dependency order.
    pub fn metadata(&self) -> Vec<(Kind, &Metadata)> {
        fn each<'a, S>(kind: Kind, ms: &'a [Manifest<S>], out: &mut Vec<(Kind, &'a Metadata)>) {
            out.extend(ms.iter().map(|m| (kind, &m.metadata)));
        }
        let mut out = Vec::with_capacity(self.len());
        each(Kind::Cluster, &self.clusters, &mut out);
        each(Kind::ParameterSet, &self.parameter_sets, &mut out);
        each(Kind::SecurityGroup, &self.security_groups, &mut out);
        each(Kind::TargetGroup, &self.target_groups, &mut out);
        each(Kind::LoadBalancer, &self.load_balancers, &mut out);
        each(Kind::ReplicationGroup, &self.replication_groups, &mut out);
        each(Kind::Service, &self.services, &mut out);
        each(Kind::ScalableTarget, &self.scalable_targets, &mut out);
        each(Kind::Connection, &self.connections, &mut out);
        each(Kind::ApiDestination, &self.api_destinations, &mut out);
        each(Kind::Rule, &self.rules, &mut out);
        out
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

    /// Number of resources in the set.
    pub fn len(&self) -> usize {
        self.clusters.len()
            + self.parameter_sets.len()
            + self.security_groups.len()
            + self.target_groups.len()
            + self.load_balancers.len()
            + self.replication_groups.len()
            + self.services.len()
            + self.scalable_targets.len()
            + self.connections.len()
            + self.api_destinations.len()
            + self.rules.len()
    }

    /// True when the set describes nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Ownership tag key: present on everything mooring creates.
pub const TAG_MANAGED_BY: &str = "mooring.dev/managed-by";
/// Ownership tag key: `Kind/name` of the manifest a resource belongs to.
pub const TAG_RESOURCE: &str = "mooring.dev/resource";
/// Annotation: `observe` (report drift, change nothing) or `enforce` for this resource,
/// whatever the daemon's mode.
pub const MODE_ANNOTATION: &str = "mooring.dev/mode";
/// Annotation: `"true"` pauses the resource: it is still checked, never changed.
pub const PAUSED_ANNOTATION: &str = "mooring.dev/paused";

impl Metadata {
    /// The mode this resource asks for, if any (`true` = enforce).
    pub fn enforce(&self) -> Option<bool> {
        match self.annotations.get(MODE_ANNOTATION).map(String::as_str) {
            Some("enforce") => Some(true),
            Some("observe") => Some(false),
            _ => None,
        }
    }

    /// True when the resource is paused.
    pub fn paused(&self) -> bool {
        self.annotations.get(PAUSED_ANNOTATION).map(String::as_str) == Some("true")
    }
}

/// Value of [`TAG_MANAGED_BY`].
pub const MANAGED_BY: &str = "mooring";

/// The tags mooring puts on a resource: the manifest's own plus the ownership tags.
pub fn owned_tags(
    kind: Kind,
    name: &str,
    tags: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut all = tags.clone();
    all.insert(TAG_MANAGED_BY.into(), MANAGED_BY.into());
    all.insert(TAG_RESOURCE.into(), format!("{kind}/{name}"));
    all
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
