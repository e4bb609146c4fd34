//! One folder per AWS kind, registered once.
//!
//! A kind is a folder `src/kinds/<kind>/`: `spec.rs` holds the manifest's spec types and
//! their checks, `mod.rs` implements [`Declared`] (the manifest side) and [`Resource`] (one
//! batched read, an observation per manifest, the normalised document, apply). The
//! [`kinds!`] table below is the only list of kinds: it generates the [`Kind`] enum, the
//! [`ManifestSet`] fields, loading, the schema, the order reconcilers run in, the IAM actions
//! and each kind's lasting state.
//!
//! Adding a kind: a folder with `spec.rs` and `mod.rs`, one line in the table (in dependency
//! order: a kind may only reference kinds above it), and, when the AWS service is new, its
//! SDK client in `crate::aws`.

#[macro_use]
mod registry;

pub mod elasticache;
pub mod elbv2;
pub mod eventbridge;
pub mod from;
pub mod network;
pub mod ownership;
pub mod unit;

pub use unit::{Change, Declared, InSet, Reference, Resource, Typed, Visitor};

kinds! {
    /// An ECS cluster.
    Cluster => cluster::ClusterSpec, clusters;
    /// SSM parameters under one path: managed values and required hand-set ones.
    ParameterSet => parameter_set::ParameterSetSpec, parameter_sets;
    /// A VPC security group and its rules.
    SecurityGroup => security_group::SecurityGroupSpec, security_groups;
    /// Ingress rules mooring adds to a security group it does not own (only its own rules).
    SecurityGroupIngress => security_group_ingress::SecurityGroupIngressSpec, security_group_ingresses;
    /// An ELBv2 target group of `ip` targets.
    TargetGroup => target_group::TargetGroupSpec, target_groups;
    /// An Application Load Balancer and its listeners.
    LoadBalancer => load_balancer::LoadBalancerSpec, load_balancers;
    /// An ElastiCache cache subnet group (the subnets of a replication group).
    CacheSubnetGroup => cache_subnet_group::CacheSubnetGroupSpec, cache_subnet_groups;
    /// An ElastiCache Redis replication group.
    ReplicationGroup => replication_group::ReplicationGroupSpec, replication_groups;
    /// A CloudWatch Logs log group, with its retention.
    LogGroup => log_group::LogGroupSpec, log_groups;
    /// An ECR private repository, with its lifecycle policy.
    Repository => repository::RepositorySpec, repositories;
    /// An ECS service on Fargate with its task definition.
    Service => service::ServiceSpec, services;
    /// Application Auto Scaling of a service's desired count.
    ScalableTarget => scalable_target::ScalableTargetSpec, scalable_targets;
    /// A CloudWatch metric alarm notifying SNS topics.
    Alarm => alarm::AlarmSpec, alarms;
    /// An EventBridge connection with API-key authorization.
    Connection => connection::ConnectionSpec, connections;
    /// An EventBridge API destination (an HTTPS endpoint).
    ApiDestination => api_destination::ApiDestinationSpec, api_destinations;
    /// A scheduled EventBridge rule calling an API destination.
    Rule => rule::RuleSpec, rules;
}

/// The reconcilers for a pass, in dependency order.
pub fn reconcilers(_set: &ManifestSet) -> Vec<Box<dyn crate::reconcile::Reconciler>> {
    Kind::ALL.iter().map(|k| k.reconciler()).collect()
}

impl ManifestSet {
    /// A hash of each manifest's content (metadata and spec), to tell when one changed.
    pub fn fingerprints(&self) -> std::collections::HashMap<(Kind, String), u64> {
        struct Prints<'a>(
            &'a ManifestSet,
            std::collections::HashMap<(Kind, String), u64>,
        );
        impl Visitor for Prints<'_> {
            type Out = ();
            fn visit<K: Declared>(&mut self) {
                use std::hash::{Hash, Hasher};
                for m in K::manifests(self.0) {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    serde_json::to_string(&(&m.metadata, &m.spec))
                        .unwrap_or_default()
                        .hash(&mut h);
                    self.1
                        .insert((K::KIND, m.metadata.name.clone()), h.finish());
                }
            }
        }
        let mut p = Prints(self, Default::default());
        for k in Kind::ALL {
            k.visit(&mut p);
        }
        p.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every folder under src/kinds is a registered kind: a kind that is not in the table
    /// would validate nothing and never be reconciled.
    #[test]
    fn every_kind_folder_is_registered() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/kinds");
        let mut folders: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        folders.sort();
        let mut registered: Vec<String> =
            Kind::ALL.iter().map(|k| k.module().to_string()).collect();
        registered.sort();
        assert_eq!(folders, registered);
    }

    #[test]
    fn kinds_parse_back_and_are_in_dependency_order() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(Kind::parse("Nope"), None);
        assert_eq!(Kind::ALL.first(), Some(&Kind::Cluster));
    }
}
