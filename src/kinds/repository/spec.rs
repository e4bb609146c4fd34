//! `kind: Repository` — an ECR private repository, with its lifecycle policy.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::Metadata;
use crate::manifest::common::check_tags;
use crate::manifest::error::Findings;

/// An ECR private repository: where a service's images live (a service names it in
/// `container.repository` plus `container.tag`). Its images are data: deleting the
/// repository (pruning it, or replacing it for a new encryption) is refused unless
/// `deletionPolicy` is `delete`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RepositorySpec {
    /// Name of the repository in ECR, e.g. `salon/backend`: 2-256 characters, lower-case
    /// letters and digits in parts joined by single `.`, `_` or `-`, with `/` between
    /// namespaces. Defaults to `metadata.name`.
    #[serde(default)]
    pub repository_name: Option<String>,
    /// Whether a pushed tag may be pushed again onto another image. Default `MUTABLE`.
    #[serde(default)]
    pub image_tag_mutability: TagMutability,
    /// Scan every image for vulnerabilities when it is pushed (basic scanning).
    #[serde(default)]
    pub scan_on_push: bool,
    /// How the images are encrypted at rest. Fixed when the repository is created: a change
    /// replaces the repository (and deletes its images), which needs both the annotation
    /// `mooring.dev/allow-replacement: "true"` and `deletionPolicy: delete`.
    #[serde(default)]
    pub encryption: Encryption,
    /// The lifecycle policy, as rules applied in the order written (the first rule has
    /// priority 1). Each rule is one of `keepLast`, `expireAfterDays` or
    /// `expireUntaggedAfterDays`, optionally narrowed to tags by `tagPrefixes`, e.g.
    /// `[{keepLast: 20, tagPrefixes: [v]}, {expireUntaggedAfterDays: 14}]`. Empty: no
    /// lifecycle policy (images are kept forever; a policy set by hand is removed).
    #[serde(default)]
    pub lifecycle: Vec<LifecycleRule>,
    /// What happens to the repository when its manifest is removed and mooring prunes, or
    /// when a replacement would delete it: `retain` (default) keeps it and its images and
    /// reports it; `delete` deletes it with every image in it. Recorded on the repository as
    /// the tag `mooring.dev/deletion-policy`, so prune still knows it once the manifest is
    /// gone.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Tags to put on the repository (the ownership tags are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// ECR's image tag mutability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum TagMutability {
    /// A tag may be moved to another image.
    #[default]
    MUTABLE,
    /// A pushed tag can never be overwritten.
    IMMUTABLE,
}

impl TagMutability {
    /// The value ECR uses.
    pub fn as_str(self) -> &'static str {
        match self {
            TagMutability::MUTABLE => "MUTABLE",
            TagMutability::IMMUTABLE => "IMMUTABLE",
        }
    }
}

/// Encryption at rest.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Encryption {
    /// `AES256` (default: S3-managed keys) or `KMS`.
    #[serde(default, rename = "type")]
    pub encryption_type: EncryptionType,
    /// With `KMS`: the key's ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`). Unset: the
    /// AWS-managed key `aws/ecr`.
    #[serde(default)]
    pub kms_key: Option<String>,
}

/// How ECR encrypts the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum EncryptionType {
    /// Amazon S3-managed keys.
    #[default]
    AES256,
    /// A KMS key.
    KMS,
}

impl EncryptionType {
    /// The value ECR uses.
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionType::AES256 => "AES256",
            EncryptionType::KMS => "KMS",
        }
    }
}

/// What becomes of the repository when it would be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DeletionPolicy {
    /// Never deleted by mooring: reported as retained, deleted by hand.
    #[default]
    Retain,
    /// Deleted, images and all, when pruned or replaced.
    Delete,
}

impl DeletionPolicy {
    /// The value of the `mooring.dev/deletion-policy` tag.
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionPolicy::Retain => "retain",
            DeletionPolicy::Delete => "delete",
        }
    }
}

/// Which images a lifecycle rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TagStatus {
    /// Images with a tag that starts with each of `tagPrefixes`.
    Tagged,
    /// Images without a tag.
    Untagged,
    /// Every image (must be the last rule).
    Any,
}

impl TagStatus {
    /// The value ECR uses.
    pub fn as_str(self) -> &'static str {
        match self {
            TagStatus::Tagged => "tagged",
            TagStatus::Untagged => "untagged",
            TagStatus::Any => "any",
        }
    }
}

/// One lifecycle rule: exactly one of `keepLast`, `expireAfterDays` and
/// `expireUntaggedAfterDays`. Rendered to an ECR rule (`selection` with `tagStatus`,
/// `tagPrefixList`, `countType`, `countUnit`, `countNumber`; `action: expire`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LifecycleRule {
    /// Keep the N most recently pushed images the rule selects; older ones expire
    /// (`countType: imageCountMoreThan`).
    #[serde(default)]
    pub keep_last: Option<u32>,
    /// Expire the images the rule selects N days after they were pushed
    /// (`countType: sinceImagePushed`, `countUnit: days`).
    #[serde(default)]
    pub expire_after_days: Option<u32>,
    /// Expire untagged images N days after they were pushed (`expireAfterDays` with
    /// `tagStatus: untagged`).
    #[serde(default)]
    pub expire_untagged_after_days: Option<u32>,
    /// Select images with a tag starting with these prefixes, e.g. `[v]` for `v1.2.3`
    /// (ECR: with several prefixes, an image needs a tag for each). Implies
    /// `tagStatus: tagged`.
    #[serde(default)]
    pub tag_prefixes: Vec<String>,
    /// Which images the rule selects. Default: `tagged` with `tagPrefixes`, `untagged` for
    /// `expireUntaggedAfterDays`, else `any`.
    #[serde(default)]
    pub tag_status: Option<TagStatus>,
    /// A note ECR shows with the rule.
    #[serde(default)]
    pub description: Option<String>,
}

impl LifecycleRule {
    /// The images the rule selects.
    pub fn status(&self) -> TagStatus {
        if let Some(s) = self.tag_status {
            s
        } else if self.expire_untagged_after_days.is_some() {
            TagStatus::Untagged
        } else if !self.tag_prefixes.is_empty() {
            TagStatus::Tagged
        } else {
            TagStatus::Any
        }
    }
}

/// True for a name ECR accepts for a repository.
pub fn valid_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.split(['.', '_', '-']).all(|w| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    };
    (2..=256).contains(&name.len()) && name.split('/').all(part)
}

/// True for a Docker image tag: 1-128 of `A-Za-z0-9_.-`, not starting with `.` or `-`.
pub fn valid_tag(tag: &str) -> bool {
    (1..=128).contains(&tag.len())
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn is_kms_key_arn(key: &str) -> bool {
    let parts: Vec<&str> = key.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", _, "kms", _, _, rest] if rest.starts_with("key/") && rest.len() > 4)
}

impl RepositorySpec {
    /// The repository's name in ECR.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.repository_name.as_deref().unwrap_or(&meta.name)
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        let name = self.aws_name(meta);
        if !valid_name(name) {
            let pointer = if self.repository_name.is_some() {
                "/spec/repositoryName"
            } else {
                "/metadata/name"
            };
            f.at(
                pointer,
                format!(
                    "`{name}` is not a valid ECR repository name (2-256 characters: lower-case letters and digits, parts joined by a single `.`, `_` or `-`, namespaces separated by `/`)"
                ),
            );
        }
        match (&self.encryption.encryption_type, &self.encryption.kms_key) {
            (EncryptionType::AES256, Some(_)) => f.at(
                "/spec/encryption/kmsKey",
                "a KMS key needs `type: KMS` (AES256 uses S3-managed keys)",
            ),
            (EncryptionType::KMS, Some(key)) if !is_kms_key_arn(key) => f.at(
                "/spec/encryption/kmsKey",
                format!(
                    "`{key}` is not a KMS key ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`): ECR reports the key's ARN, so an alias or key ID would show as drift forever"
                ),
            ),
            _ => {}
        }
        let last = self.lifecycle.len().saturating_sub(1);
        for (i, rule) in self.lifecycle.iter().enumerate() {
            check_rule(rule, &format!("/spec/lifecycle/{i}"), i == last, f);
        }
        check_tags(&self.tags, "/spec/tags", f);
    }
}

fn check_rule(rule: &LifecycleRule, p: &str, last: bool, f: &mut Findings<'_>) {
    let counts = [
        ("keepLast", rule.keep_last),
        ("expireAfterDays", rule.expire_after_days),
        ("expireUntaggedAfterDays", rule.expire_untagged_after_days),
    ];
    let set: Vec<_> = counts.iter().filter(|(_, v)| v.is_some()).collect();
    if set.len() != 1 {
        f.at(
            p,
            "set exactly one of `keepLast`, `expireAfterDays` and `expireUntaggedAfterDays`",
        );
    }
    for (field, v) in counts {
        if v == Some(0) {
            f.at(&format!("{p}/{field}"), "must be at least 1");
        }
    }
    let status = rule.status();
    if rule.expire_untagged_after_days.is_some()
        && rule.tag_status.is_some_and(|s| s != TagStatus::Untagged)
    {
        f.at(
            &format!("{p}/tagStatus"),
            "`expireUntaggedAfterDays` selects untagged images; use `expireAfterDays` for others",
        );
    }
    match status {
        TagStatus::Tagged if rule.tag_prefixes.is_empty() => f.at(
            &format!("{p}/tagStatus"),
            "ECR selects tagged images by tag prefix: add `tagPrefixes` (e.g. `[v]`)",
        ),
        TagStatus::Untagged | TagStatus::Any if !rule.tag_prefixes.is_empty() => f.at(
            &format!("{p}/tagPrefixes"),
            format!(
                "tag prefixes select tagged images; this rule selects {} images",
                status.as_str()
            ),
        ),
        TagStatus::Any if !last => f.at(
            p,
            "a rule for any image must be the last one (ECR evaluates it last: it needs the highest priority)",
        ),
        _ => {}
    }
    let mut seen = std::collections::BTreeSet::new();
    for (j, prefix) in rule.tag_prefixes.iter().enumerate() {
        if prefix.is_empty() || !seen.insert(prefix) {
            f.at(
                &format!("{p}/tagPrefixes/{j}"),
                "tag prefixes must be non-empty and distinct",
            );
        }
    }
}
