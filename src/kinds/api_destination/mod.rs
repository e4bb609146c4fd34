//! `kind: ApiDestination`.

pub mod spec;

use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};

/// The `ApiDestination` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "events:DescribeApiDestination",
            "events:DescribeConnection",
            "events:CreateApiDestination",
            "events:UpdateApiDestination",
            "events:ListTagsForResource",
            "events:TagResource",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the API destination `{}`", m.spec.aws_name(&m.metadata))
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        vec![Reference::new("/spec/connection", Kind::Connection, &m.spec.connection)]
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.api_destinations
            .iter()
            .flat_map(|d| {
                let name = d.spec.aws_name(&d.metadata);
                [
                    crate::iam::arn("events", &format!("api-destination/{name}")),
                    crate::iam::arn("events", &format!("api-destination/{name}/*")),
                ]
            })
            .collect()
    }

    fn reconciler(_set: &ManifestSet) -> Box<dyn crate::reconcile::Reconciler> {
        crate::kinds::unconverted(Kind::ApiDestination)
    }
}
