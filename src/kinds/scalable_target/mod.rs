//! Application Auto Scaling of ECS services (`kind: ScalableTarget`).
//!
//! Reads: one DescribeScalableTargets per 50 targets and one (paginated)
//! DescribeScalingPolicies for the whole `ecs` namespace, filtered here: moto ignores the
//! `PolicyNames` filter and matches `ResourceId` by substring, and one listing is fewer
//! calls than one per service anyway.
//!
//! Policies mooring manages are named `mooring-<manifest>-<cpu|memory>`; other policies on
//! the same target are left alone. Scalable targets carry no ownership tags here (moto
//! does not store them); an existing target for the service is taken over.

pub mod spec;

use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};

/// The `ScalableTarget` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "application-autoscaling:DescribeScalableTargets",
            "application-autoscaling:DescribeScalingPolicies",
            "application-autoscaling:RegisterScalableTarget",
            "application-autoscaling:PutScalingPolicy",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:DeleteAlarms",
            "iam:CreateServiceLinkedRole",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the scaling of Service `{}`", m.spec.service)
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        vec![Reference::new("/spec/service", Kind::Service, &m.spec.service)]
    }

    /// A service that starts with a desired count starts within the scaling range.
    fn check_set(m: &Manifest<Self::Spec>, set: &ManifestSet, f: &mut Findings<'_>) {
        let s = &m.spec;
        if let Some(count) = set
            .service(&s.service)
            .and_then(|svc| svc.spec.desired_count)
            .filter(|c| !(s.min_capacity..=s.max_capacity).contains(c))
        {
            f.at(
                "/spec/minCapacity",
                format!(
                    "Service `{}` starts with desiredCount {count}, outside {}-{}",
                    s.service, s.min_capacity, s.max_capacity
                ),
            );
        }
    }

    fn reconciler(_set: &ManifestSet) -> Box<dyn crate::reconcile::Reconciler> {
        crate::kinds::unconverted(Kind::ScalableTarget)
    }
}
