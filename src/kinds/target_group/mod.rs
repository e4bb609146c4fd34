//! ELBv2 target groups (`kind: TargetGroup`).
//!
//! Reads: one paginated DescribeTargetGroups for all of them (asking by name fails the
//! whole call when one is missing), one DescribeTags per 20 that exist.
//!
//! Protocol, port, VPC and target type cannot change in place: such a change is planned
//! as a replacement, which apply refuses (the rest of the changes, e.g. the health check,
//! are still applied) unless the manifest allows it; then the target group is deleted
//! and created again. ELBv2 refuses to delete a target group a listener forwards to.

pub mod spec;

use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};

/// The `TargetGroup` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeTags",
            "ec2:DescribeVpcs",
            "elasticloadbalancing:CreateTargetGroup",
            "elasticloadbalancing:ModifyTargetGroup",
            "elasticloadbalancing:DeleteTargetGroup",
            "elasticloadbalancing:AddTags",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the target group `{}`", m.spec.aws_name(&m.metadata))
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.target_groups
            .iter()
            .map(|t| {
                crate::iam::arn(
                    "elasticloadbalancing",
                    &format!("targetgroup/{}/*", t.spec.aws_name(&t.metadata)),
                )
            })
            .collect()
    }

    fn reconciler(_set: &ManifestSet) -> Box<dyn crate::reconcile::Reconciler> {
        crate::kinds::unconverted(Kind::TargetGroup)
    }
}
