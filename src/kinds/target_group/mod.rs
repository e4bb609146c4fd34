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

/// Every target group in the region, read once per pass (one paginated
/// DescribeTargetGroups: asking by name fails the whole call when one is missing). Services
/// and load balancers find their target groups' ARNs here.
pub async fn list(
    cx: &crate::reconcile::Cx<'_>,
) -> Result<
    std::sync::Arc<Vec<aws_sdk_elasticloadbalancingv2::types::TargetGroup>>,
    crate::aws::AwsError,
> {
    cx.cache
        .target_groups
        .get((), || async {
            cx.aws()
                .elbv2
                .describe_target_groups()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map(std::sync::Arc::new)
                .map_err(|e| {
                    crate::aws::AwsError::from_sdk("elasticloadbalancing:DescribeTargetGroups", e)
                })
        })
        .await
}

/// The ARNs of target groups by manifest name, for the `TargetGroup` manifests `names`
/// (those that do not exist yet are left out).
pub async fn arns(
    cx: &crate::reconcile::Cx<'_>,
    names: impl IntoIterator<Item = &str>,
) -> Result<std::collections::BTreeMap<String, String>, crate::aws::AwsError> {
    let wanted: Vec<(&str, &str)> = names
        .into_iter()
        .filter_map(|n| {
            cx.set
                .target_group(n)
                .map(|tg| (n, tg.spec.aws_name(&tg.metadata)))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(Default::default());
    }
    let all = list(cx).await?;
    Ok(wanted
        .into_iter()
        .filter_map(|(manifest, aws_name)| {
            let tg = all
                .iter()
                .find(|t| t.target_group_name() == Some(aws_name))?;
            Some((manifest.to_string(), tg.target_group_arn()?.to_string()))
        })
        .collect())
}
