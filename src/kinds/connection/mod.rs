//! EventBridge schedules: `Connection`, `ApiDestination` and `Rule`.
//!
//! The API key never leaves Secrets Manager except into EventBridge: a connection records
//! in its description which secret *version* its key came from, so a rotated secret is
//! seen (DescribeSecret, metadata only) without reading any value; the value is read
//! (GetSecretValue) only to create or update the connection, and is never logged, shown
//! in a plan, or kept.
//!
//! moto cannot tag connections or API destinations, so their ownership marker is the
//! description (`managed by mooring: Kind/name`). Rules are tagged like everything else.

pub mod spec;

use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};

/// The `Connection` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "events:DescribeConnection",
            "events:CreateConnection",
            "events:UpdateConnection",
            "events:ListTagsForResource",
            "events:TagResource",
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:CreateSecret",
            "secretsmanager:PutSecretValue",
            "secretsmanager:UpdateSecret",
            "secretsmanager:DeleteSecret",
            "secretsmanager:TagResource",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the connection `{}`", m.spec.aws_name(&m.metadata))
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        // The ARN ends in the name on create and in name/UUID afterwards.
        set.connections
            .iter()
            .flat_map(|c| {
                let name = c.spec.aws_name(&c.metadata);
                [
                    crate::iam::arn("events", &format!("connection/{name}")),
                    crate::iam::arn("events", &format!("connection/{name}/*")),
                ]
            })
            .collect()
    }

    fn reconciler(_set: &ManifestSet) -> Box<dyn crate::reconcile::Reconciler> {
        crate::kinds::unconverted(Kind::Connection)
    }
}
