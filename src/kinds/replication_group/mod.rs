//! ElastiCache replication groups (`kind: ReplicationGroup`).
//!
//! Reads: one paginated DescribeReplicationGroups and one paginated DescribeCacheClusters
//! for all groups (engine version and security groups live on the member clusters), one
//! ListTagsForResource per existing group. Updates go through ModifyReplicationGroup with
//! ApplyImmediately (moto implements no ModifyCacheCluster; replication groups are what it
//! supports). moto returns cache clusters without `SecurityGroups`: a cluster that reports
//! no security groups at all is not compared on them.

pub mod spec;

use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};

/// The `ReplicationGroup` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "elasticache:DescribeReplicationGroups",
            "elasticache:DescribeCacheClusters",
            "elasticache:ListTagsForResource",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeVpcs",
            "elasticache:CreateReplicationGroup",
            "elasticache:ModifyReplicationGroup",
            "elasticache:DeleteReplicationGroup",
            "elasticache:AddTagsToResource",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the replication group `{}`", m.spec.aws_name(&m.metadata))
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        m.spec
            .security_groups
            .as_ref()
            .map(|s| s.references("/spec/securityGroups"))
            .unwrap_or_default()
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.replication_groups
            .iter()
            .flat_map(|r| {
                let id = r.spec.aws_name(&r.metadata).to_string();
                [
                    crate::iam::arn("elasticache", &format!("replicationgroup:{id}")),
                    crate::iam::arn("elasticache", &format!("cluster:{id}-*")),
                    crate::iam::arn("elasticache", "subnetgroup:*"),
                    crate::iam::arn("elasticache", "parametergroup:*"),
                    crate::iam::arn("elasticache", "securitygroup:*"),
                ]
            })
            .collect()
    }

    fn reconciler(_set: &ManifestSet) -> Box<dyn crate::reconcile::Reconciler> {
        crate::kinds::unconverted(Kind::ReplicationGroup)
    }
}
