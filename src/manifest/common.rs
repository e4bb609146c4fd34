//! Manifest pieces several kinds share: name and tag checks, network selectors.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::Findings;
use super::yaml::escape_segment;

/// ECS names (clusters, services, families, containers): 1–255 letters, digits, `-`, `_`.
pub(crate) fn check_aws_name(name: &str, pointer: &str, f: &mut Findings<'_>) {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        f.at(
            pointer,
            format!("`{name}` is not a valid ECS name (1-255 letters, digits, `-` and `_`)"),
        );
    }
}

/// AWS tag limits, and the keys mooring reserves for itself.
pub(crate) fn check_tags(tags: &BTreeMap<String, String>, pointer: &str, f: &mut Findings<'_>) {
    if tags.len() > 45 {
        f.at(
            pointer,
            "at most 45 tags (AWS allows 50; mooring adds its own)",
        );
    }
    for (k, v) in tags {
        let p = format!("{pointer}/{}", escape_segment(k));
        if k.is_empty() || k.chars().count() > 128 {
            f.at(&p, "tag keys are 1-128 characters");
        }
        if v.chars().count() > 256 {
            f.at(&p, "tag values are at most 256 characters");
        }
        if k.starts_with("mooring.dev/") {
            f.at(
                &p,
                "tag keys under `mooring.dev/` are reserved for ownership tags",
            );
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            f.at(&p, "tag keys starting with `aws:` are reserved by AWS");
        }
    }
}

/// ELBv2 names (load balancers, target groups): 1-32 letters, digits and inner hyphens,
/// not starting with `internal-`.
pub(crate) fn check_elbv2_name(name: &str, what: &str, pointer: &str, f: &mut Findings<'_>) {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.starts_with("internal-");
    if !ok {
        f.at(
            pointer,
            format!("`{name}` is not a valid {what} name (1-32 letters, digits and inner hyphens)"),
        );
    }
}

/// Subnets or security groups: by ID, looked up so manifests stay portable between
/// accounts, or (security groups only) `SecurityGroup` manifests by name. Exactly one of
/// `ids`, `lookup` and `refs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkSelector {
    /// Explicit IDs (`subnet-…`, `sg-…`).
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    /// Look the IDs up at reconcile time.
    #[serde(default)]
    pub lookup: Option<NetworkLookup>,
    /// `SecurityGroup` manifests, by name: the groups mooring manages.
    #[serde(default)]
    pub refs: Option<Vec<String>>,
}

impl NetworkSelector {
    /// The `SecurityGroup` manifests the selector names, each with the pointer of its
    /// entry under `base`.
    pub fn references(&self, base: &str) -> Vec<crate::kinds::Reference> {
        self.refs
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, r)| {
                crate::kinds::Reference::new(
                    format!("{base}/refs/{i}"),
                    super::Kind::SecurityGroup,
                    r,
                )
            })
            .collect()
    }

    /// The `SecurityGroup` manifests the selector names, as dependencies.
    pub fn dependencies(&self) -> impl Iterator<Item = (super::Kind, String)> + '_ {
        self.refs
            .iter()
            .flatten()
            .map(|r| (super::Kind::SecurityGroup, r.clone()))
    }

    /// Checks the selector at `p`: one way of selecting, IDs that look like IDs, at most
    /// 16 subnets and 5 security groups (the limits of ECS and ELBv2).
    pub fn check(&self, p: &str, security_groups: bool, f: &mut Findings<'_>) {
        let (prefix, limit) = if security_groups {
            ("sg-", 5)
        } else {
            ("subnet-", 16)
        };
        let set = [
            self.ids.is_some(),
            self.lookup.is_some(),
            self.refs.is_some(),
        ];
        if set.iter().filter(|x| **x).count() != 1 {
            f.at(
                p,
                if security_groups {
                    "set exactly one of `ids`, `lookup` and `refs`"
                } else {
                    "set exactly one of `ids` and `lookup`"
                },
            );
            return;
        }
        if let Some(ids) = &self.ids {
            if ids.is_empty() {
                f.at(&format!("{p}/ids"), "must list at least one ID");
            }
            if ids.len() > limit {
                f.at(&format!("{p}/ids"), format!("at most {limit}"));
            }
            for (i, id) in ids.iter().enumerate() {
                if !id.starts_with(prefix) {
                    f.at(
                        &format!("{p}/ids/{i}"),
                        format!("`{id}` does not look like a `{prefix}…` ID"),
                    );
                }
            }
        }
        if let Some(lookup) = &self.lookup
            && lookup.vpc != "default"
            && !lookup.vpc.starts_with("vpc-")
        {
            f.at(
                &format!("{p}/lookup/vpc"),
                "must be `default` or a VPC ID (`vpc-…`)",
            );
        }
        if let Some(refs) = &self.refs {
            if !security_groups {
                f.at(
                    &format!("{p}/refs"),
                    "only security groups can be named by manifest; use `ids` or `lookup`",
                );
            } else if refs.is_empty() || refs.len() > limit {
                f.at(
                    &format!("{p}/refs"),
                    format!("name 1-{limit} SecurityGroup manifests"),
                );
            }
        }
    }
}

/// A lookup of subnets or security groups in one VPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkLookup {
    /// `default` for the account's default VPC, or a VPC ID.
    pub vpc: String,
    /// Only resources carrying all these tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Only these names: security group names, or subnet `Name` tags.
    #[serde(default)]
    pub names: Vec<String>,
}
