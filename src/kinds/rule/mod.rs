//! `kind: Rule`.

pub mod spec;

use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};

/// The `Rule` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "events:DescribeRule",
            "events:ListTargetsByRule",
            "events:DescribeApiDestination",
            "events:ListTagsForResource",
            "events:PutRule",
            "events:PutTargets",
            "events:TagResource",
            "iam:PassRole",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the rule `{}`", m.spec.aws_name(&m.metadata))
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        vec![Reference::new(
            "/spec/target/apiDestination",
            Kind::ApiDestination,
            &m.spec.target.api_destination,
        )]
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.rules
            .iter()
            .map(|r| crate::iam::arn("events", &format!("rule/{}", r.spec.aws_name(&r.metadata))))
            .collect()
    }

    fn reconciler(_set: &ManifestSet) -> Box<dyn crate::reconcile::Reconciler> {
        crate::kinds::unconverted(Kind::Rule)
    }
}
