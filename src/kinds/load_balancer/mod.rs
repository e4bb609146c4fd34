//! Application Load Balancers and their listeners (`kind: LoadBalancer`).
//!
//! Reads: one paginated DescribeLoadBalancers (asking by name fails the whole call when
//! one is missing), one DescribeTags per 20 that exist, one DescribeListeners per load
//! balancer. Listeners on ports the manifest does not declare are left alone (mooring
//! never deletes). The scheme and the name cannot change in place: reported, refused.

pub mod spec;

use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};

/// The `LoadBalancer` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "elasticloadbalancing:DescribeLoadBalancers",
            "elasticloadbalancing:DescribeListeners",
            "elasticloadbalancing:DescribeTags",
            "elasticloadbalancing:DescribeTargetGroups",
            "acm:ListCertificates",
            "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeVpcs",
            "elasticloadbalancing:CreateLoadBalancer",
            "elasticloadbalancing:DeleteLoadBalancer",
            "elasticloadbalancing:SetSubnets",
            "elasticloadbalancing:SetSecurityGroups",
            "elasticloadbalancing:CreateListener",
            "elasticloadbalancing:ModifyListener",
            "elasticloadbalancing:AddTags",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the load balancer `{}`", m.spec.aws_name(&m.metadata))
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        let mut out: Vec<Reference> = m
            .spec
            .listeners
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let tg = l.default_action.forward.as_deref()?;
                Some(Reference::new(
                    format!("/spec/listeners/{i}/defaultAction/forward"),
                    Kind::TargetGroup,
                    tg,
                ))
            })
            .collect();
        out.extend(m.spec.security_groups.references("/spec/securityGroups"));
        out
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.load_balancers
            .iter()
            .flat_map(|l| {
                let name = l.spec.aws_name(&l.metadata).to_string();
                [
                    crate::iam::arn("elasticloadbalancing", &format!("loadbalancer/app/{name}/*")),
                    crate::iam::arn("elasticloadbalancing", &format!("listener/app/{name}/*")),
                ]
            })
            .collect()
    }

    fn reconciler(_set: &ManifestSet) -> Box<dyn crate::reconcile::Reconciler> {
        crate::kinds::unconverted(Kind::LoadBalancer)
    }
}
