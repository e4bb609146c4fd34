//! VPC security groups (`kind: SecurityGroup`).
//!
//! Reads: one DescribeSecurityGroups for mooring's groups (by ownership tag: how a group is
//! found first, so a renamed group is still its manifest's) and one for the manifests'
//! names (a group to adopt). Rules are compared as a set, one
//! entry per (protocol, ports, peer), the way EC2 stores them; a group's rules are all
//! mooring's, so a rule added by hand is drift and is revoked. Rule descriptions are set
//! when a rule is added and not compared.
//!
//! Name, description and VPC cannot change in place: such a change is planned as a replacement,
//! refused (the rules and tags are still brought in line) unless the manifest allows it.

pub mod spec;

use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};

/// The `SecurityGroup` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "ec2:DescribeSecurityGroups",
            "ec2:DescribeVpcs",
            "ec2:CreateSecurityGroup",
            "ec2:CreateTags",
            "ec2:AuthorizeSecurityGroupIngress",
            "ec2:RevokeSecurityGroupIngress",
            "ec2:AuthorizeSecurityGroupEgress",
            "ec2:RevokeSecurityGroupEgress",
            "ec2:DeleteSecurityGroup",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!(
            "the group `{}` in VPC `{}`",
            m.spec.aws_name(&m.metadata),
            m.spec.vpc
        )
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        m.spec
            .rules()
            .filter_map(|(p, rule)| {
                let name = rule.security_group.as_deref()?;
                Some(Reference::new(
                    format!("{p}/securityGroup"),
                    Kind::SecurityGroup,
                    name,
                ))
            })
            .collect()
    }

    fn reconciler(_set: &ManifestSet) -> Box<dyn crate::reconcile::Reconciler> {
        crate::kinds::unconverted(Kind::SecurityGroup)
    }
}
