//! SSM parameters (`kind: ParameterSet`).
//!
//! Reads: one DescribeParameters listing per set (metadata only: names and types, never
//! values), then GetParameters for the *managed* names only, 10 per call, without
//! decryption. Required parameters' values are never requested, so they cannot reach
//! logs, plans, `/status` or alerts.
//!
//! Tags are written when mooring creates a parameter. Their drift is not checked: it would
//! cost one ListTagsForResource call per parameter and pass.

pub mod spec;

use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};

/// The `ParameterSet` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "ssm:DescribeParameters",
            "ssm:GetParameters",
            "ssm:PutParameter",
            "ssm:AddTagsToResource",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("ParameterSet/{}", m.metadata.name)
    }

    /// One SSM parameter is declared by one parameter set only.
    fn check_set(m: &Manifest<Self::Spec>, set: &ManifestSet, f: &mut Findings<'_>) {
        let earlier = set
            .parameter_sets
            .iter()
            .take_while(|p| p.metadata.name != m.metadata.name);
        let earlier: Vec<&Manifest<Self::Spec>> = earlier.collect();
        for (section, names) in [
            ("parameters", m.spec.parameters.keys().collect::<Vec<_>>()),
            ("required", m.spec.required.keys().collect()),
        ] {
            for name in names {
                let full = m.spec.full_name(name);
                if let Some(other) = earlier.iter().find(|p| p.spec.declares(&full)) {
                    f.at(
                        &format!("/spec/{section}/{}", crate::manifest::yaml::escape_segment(name)),
                        format!("`{full}` is also declared by ParameterSet `{}`", other.metadata.name),
                    );
                }
            }
        }
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.parameter_sets
            .iter()
            .map(|p| crate::iam::arn("ssm", &format!("parameter/{}/*", p.spec.path.trim_matches('/'))))
            .collect()
    }

    fn reconciler(_set: &ManifestSet) -> Box<dyn crate::reconcile::Reconciler> {
        crate::kinds::unconverted(Kind::ParameterSet)
    }
}
