//! ECR private repositories (`kind: Repository`), with their lifecycle policies.
//!
//! Reads: the account's repositories once per pass (DescribeRepositories, shared through
//! the pass cache with the services that name a repository), then one ListTagsForResource
//! and one GetLifecyclePolicy per repository that exists.
//!
//! Tag mutability, scan on push, the lifecycle policy and tags change in place. The
//! encryption is fixed at creation: a change replaces the repository. The lifecycle policy
//! is written as rules in the manifest and compared with the live policy's JSON parsed into
//! the same typed rules, keyed by priority: key order and whitespace are no drift, a rule
//! edited by hand is named (`lifecyclePolicy.2.selection.countNumber`) and put back.
//!
//! Images are data: a repository is deleted (pruned, or replaced) only when its
//! `deletionPolicy` is `delete`, which the repository carries as the tag
//! `mooring.dev/deletion-policy` so that prune knows it once the manifest is gone.

pub mod spec;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_ecr::types::{
    EncryptionConfiguration, ImageScanningConfiguration, ImageTagMutability, Repository, Tag,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ownership::{Ownership, allows_replacement, managed_tags, owned_tags, tags_to_set};
use super::{Change, Declared, Resource};
use crate::aws::{AwsError, ErrorCategory};
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::{Applied, Cx, Owned, Problem, ReconcileError};
use spec::{DeletionPolicy, EncryptionType, LifecycleRule, RepositorySpec, TagStatus};

/// The tag that records a repository's `deletionPolicy`.
pub const TAG_DELETION_POLICY: &str = "mooring.dev/deletion-policy";

/// The `Repository` kind.
pub struct Unit;

impl Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "ecr:DescribeRepositories",
        "ecr:ListTagsForResource",
        "ecr:GetLifecyclePolicy",
        "ecr:CreateRepository",
        "ecr:PutImageTagMutability",
        "ecr:PutImageScanningConfiguration",
        "ecr:PutLifecyclePolicy",
        "ecr:DeleteLifecyclePolicy",
        "ecr:TagResource",
        "ecr:DeleteRepository",
        // CreateRepository with a KMS key: ECR creates a grant on the caller's behalf.
        "kms:DescribeKey",
        "kms:CreateGrant",
        "kms:RetireGrant",
    ];
    type State = ();

    const FIELDS: &'static [super::from::Field] = &[
        super::from::Field {
            name: "repositoryUri",
            doc: "the repository's URI (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME`)",
        },
        super::from::Field {
            name: "arn",
            doc: "the repository's ARN",
        },
    ];

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the ECR repository `{}`", m.spec.aws_name(&m.metadata))
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        let mut out: Vec<String> = set
            .repositories
            .iter()
            .map(|r| crate::iam::arn("ecr", &format!("repository/{}", r.spec.aws_name(&r.metadata))))
            .collect();
        out.extend(
            set.repositories
                .iter()
                .filter_map(|r| r.spec.encryption.kms_key.clone()),
        );
        out
    }
}

/// The image a service container names as `repository` plus `tag`:
/// `<repository URI>:<tag>`, the URI as ECR reports it when the repository exists, else
/// built from the account and region (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME`).
pub async fn image_uri(cx: &Cx<'_>, repository: &str, tag: &str) -> Result<String, ReconcileError> {
    let name = cx
        .set
        .repositories
        .iter()
        .find(|r| r.name() == repository)
        .map(|r| r.spec.aws_name(&r.metadata).to_string())
        .unwrap_or_else(|| repository.to_string());
    let listed = repositories(cx).await?;
    if let Some(uri) = listed
        .iter()
        .find(|r| r.repository_name() == Some(name.as_str()))
        .and_then(|r| r.repository_uri())
    {
        return Ok(format!("{uri}:{tag}"));
    }
    let aws = cx.aws();
    Ok(format!(
        "{}/{name}:{tag}",
        registry_host(&aws.account_id().await?, &aws.region)
    ))
}

/// The registry's host name: `ACCOUNT.dkr.ecr.REGION.amazonaws.com` (`.com.cn` in China).
pub fn registry_host(account: &str, region: &str) -> String {
    let suffix = if crate::aws::partition_of(region) == "aws-cn" {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("{account}.dkr.ecr.{region}.{suffix}")
}

/// Every repository of the registry, once per pass.
pub(crate) async fn repositories(cx: &Cx<'_>) -> Result<Arc<Vec<Repository>>, AwsError> {
    cx.cache
        .ecr_repositories
        .get((), || async {
            cx.aws()
                .ecr
                .describe_repositories()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map(Arc::new)
                .map_err(|e| AwsError::from_sdk("ecr:DescribeRepositories", e))
        })
        .await
}

/// A repository in the shape plan compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// The name in ECR.
    pub repository_name: String,
    /// `MUTABLE` or `IMMUTABLE`.
    pub image_tag_mutability: String,
    /// Basic scanning on push.
    pub scan_on_push: bool,
    /// Encryption at rest (fixed at creation).
    pub encryption: EncryptionDoc,
    /// The lifecycle policy's rules by priority (empty: no policy).
    pub lifecycle_policy: BTreeMap<String, RuleDoc>,
    /// Tags the manifest manages (with the deletion policy's).
    pub tags: BTreeMap<String, String>,
}

/// Encryption at rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionDoc {
    /// `AES256` or `KMS`.
    #[serde(rename = "type")]
    pub encryption_type: String,
    /// The KMS key's ARN.
    pub kms_key: Option<String>,
}

/// One rule of an ECR lifecycle policy, in ECR's JSON form (without its priority, which
/// keys it). Fields mooring does not write (e.g. `tagPatternList`) are kept in `other`, so
/// a rule changed by hand to use them is drift.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleDoc {
    /// The rule's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The images it selects.
    #[serde(default)]
    pub selection: SelectionDoc,
    /// What it does with them.
    #[serde(default)]
    pub action: ActionDoc,
    /// Anything else in the rule.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A rule's `selection`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectionDoc {
    /// `tagged`, `untagged` or `any`.
    #[serde(default)]
    pub tag_status: String,
    /// Tag prefixes, sorted (their order means nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_prefix_list: Vec<String>,
    /// `imageCountMoreThan` or `sinceImagePushed`.
    #[serde(default)]
    pub count_type: String,
    /// `days`, with `sinceImagePushed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_unit: Option<String>,
    /// The count or the days.
    #[serde(default)]
    pub count_number: i64,
    /// Anything else in the selection.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A rule's `action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionDoc {
    /// Always `expire`.
    #[serde(rename = "type", default)]
    pub action_type: String,
    /// Anything else in the action.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl Default for ActionDoc {
    fn default() -> Self {
        ActionDoc {
            action_type: "expire".into(),
            other: BTreeMap::new(),
        }
    }
}

/// The manifest's lifecycle rules as ECR rules, keyed by priority (1 for the first).
pub fn rules_doc(rules: &[LifecycleRule]) -> BTreeMap<String, RuleDoc> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let status = r.status();
            let (count_type, count_unit, count_number) = match (
                r.keep_last,
                r.expire_after_days.or(r.expire_untagged_after_days),
            ) {
                (Some(n), _) => ("imageCountMoreThan", None, n),
                (None, Some(days)) => ("sinceImagePushed", Some("days".to_string()), days),
                (None, None) => ("imageCountMoreThan", None, 0), // refused by validation
            };
            let mut prefixes = if status == TagStatus::Tagged {
                r.tag_prefixes.clone()
            } else {
                Vec::new()
            };
            prefixes.sort();
            prefixes.dedup();
            let rule = RuleDoc {
                description: r.description.clone(),
                selection: SelectionDoc {
                    tag_status: status.as_str().into(),
                    tag_prefix_list: prefixes,
                    count_type: count_type.into(),
                    count_unit,
                    count_number: i64::from(count_number),
                    other: BTreeMap::new(),
                },
                action: ActionDoc::default(),
                other: BTreeMap::new(),
            };
            ((i + 1).to_string(), rule)
        })
        .collect()
}

/// A live lifecycle policy's JSON as rules keyed by priority. What does not parse as a rule
/// is kept whole (under `other.unparsed`), so it shows as drift instead of hiding.
pub fn parse_policy(text: &str) -> BTreeMap<String, RuleDoc> {
    let unparsed = |v: Value| RuleDoc {
        other: BTreeMap::from([("unparsed".to_string(), v)]),
        ..Default::default()
    };
    let policy: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => return BTreeMap::from([("?".to_string(), unparsed(Value::String(text.into())))]),
    };
    let Some(rules) = policy.get("rules").and_then(Value::as_array) else {
        return BTreeMap::from([("?".to_string(), unparsed(policy))]);
    };
    let mut out = BTreeMap::new();
    for (i, rule) in rules.iter().enumerate() {
        let mut rule = rule.clone();
        let priority = rule
            .as_object_mut()
            .and_then(|o| o.remove("rulePriority"))
            .and_then(|p| p.as_i64())
            .map_or_else(|| format!("?{i}"), |p| p.to_string());
        let doc = match serde_json::from_value::<RuleDoc>(rule.clone()) {
            Ok(mut d) => {
                d.selection.tag_prefix_list.sort();
                d.selection.tag_prefix_list.dedup();
                d
            }
            Err(_) => unparsed(rule),
        };
        out.insert(priority, doc);
    }
    out
}

/// The lifecycle policy text ECR takes for `rules`.
pub fn policy_text(rules: &BTreeMap<String, RuleDoc>) -> String {
    let mut ordered: Vec<(i64, &RuleDoc)> = rules
        .iter()
        .map(|(p, r)| (p.parse().unwrap_or(i64::MAX), r))
        .collect();
    ordered.sort_by_key(|(p, _)| *p);
    let rules: Vec<Value> = ordered
        .into_iter()
        .map(|(p, r)| {
            let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("rulePriority".into(), Value::from(p));
            }
            v
        })
        .collect();
    serde_json::json!({ "rules": rules }).to_string()
}

/// A live repository, its tags and its lifecycle policy's text.
#[derive(Debug, Clone)]
pub struct Live {
    repository: Repository,
    tags: HashMap<String, String>,
    policy: Option<String>,
}

fn desired_tags(set: &ManifestSet, m: &Manifest<RepositorySpec>) -> BTreeMap<String, String> {
    let mut tags = owned_tags(Kind::Repository, set.owner(), m.name(), &m.spec.tags);
    tags.insert(
        TAG_DELETION_POLICY.into(),
        m.spec.deletion_policy.as_str().into(),
    );
    tags
}

fn live_encryption(r: &Repository) -> EncryptionDoc {
    match r.encryption_configuration() {
        Some(e) => EncryptionDoc {
            encryption_type: e.encryption_type().as_str().to_string(),
            kms_key: e.kms_key().map(str::to_string),
        },
        None => EncryptionDoc {
            encryption_type: "AES256".into(),
            kms_key: None,
        },
    }
}

/// The encryption the manifest asks for. `KMS` without a key means the AWS-managed key,
/// whose ARN only the live repository knows: taken from there.
fn desired_encryption(m: &Manifest<RepositorySpec>, obs: &Option<Live>) -> EncryptionDoc {
    let e = &m.spec.encryption;
    let kms_key = match (e.encryption_type, &e.kms_key) {
        (EncryptionType::AES256, _) => None,
        (EncryptionType::KMS, Some(key)) => Some(key.clone()),
        (EncryptionType::KMS, None) => obs
            .as_ref()
            .map(|l| live_encryption(&l.repository))
            .filter(|l| l.encryption_type == "KMS")
            .and_then(|l| l.kms_key),
    };
    EncryptionDoc {
        encryption_type: e.encryption_type.as_str().into(),
        kms_key,
    }
}

fn ecr_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

async fn tags_of(cx: &Cx<'_>, arn: &str) -> Result<HashMap<String, String>, AwsError> {
    let out = cx
        .aws()
        .ecr
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ecr:ListTagsForResource", e))?;
    Ok(out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect())
}

/// The repository's lifecycle policy text; `None` when it has none.
async fn policy_of(cx: &Cx<'_>, name: &str) -> Result<Option<String>, AwsError> {
    match cx
        .aws()
        .ecr
        .get_lifecycle_policy()
        .repository_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.lifecycle_policy_text().map(str::to_string)),
        Err(e) => {
            let e = AwsError::from_sdk("ecr:GetLifecyclePolicy", e);
            // LifecyclePolicyNotFoundException: no policy.
            if e.category == ErrorCategory::NotFound {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// True when `field` is one the manifest's `mooring.dev/ignore` names (or is below one).
fn ignored(m: &Manifest<RepositorySpec>, field: &str) -> bool {
    crate::reconcile::diff::ignored_fields(&m.metadata)
        .iter()
        .any(|i| field == i || field.starts_with(&format!("{i}.")))
}

/// Why a repository may not be deleted: its deletion policy is not `delete`.
fn retained_message(name: &str, why: &str) -> String {
    format!(
        "the ECR repository `{name}` is retained ({why}): its images are data, so mooring does not delete it. Delete it by hand (`aws ecr delete-repository --repository-name {name} --force`), or set `deletionPolicy: delete` in its manifest and apply before removing the manifest"
    )
}

#[async_trait::async_trait]
impl Resource for Unit {
    /// The manifests' live repositories by manifest name.
    type Live = HashMap<String, Live>;
    type Observed = Option<Live>;
    type Doc = Doc;

    fn fields(obs: &Self::Observed) -> Vec<(&'static str, String)> {
        let Some(live) = obs else {
            return Vec::new();
        };
        let r = &live.repository;
        [
            ("repositoryUri", r.repository_uri()),
            ("arn", r.repository_arn()),
        ]
        .into_iter()
        .filter_map(|(field, value)| Some((field, value?.to_string())))
        .collect()
    }

    async fn read(
        cx: &Cx<'_>,
        manifests: &[Manifest<RepositorySpec>],
    ) -> Result<Self::Live, ReconcileError> {
        let listed = repositories(cx).await?;
        let mut out = HashMap::new();
        for m in manifests {
            let name = m.spec.aws_name(&m.metadata);
            let Some(repository) = listed
                .iter()
                .find(|r| r.repository_name() == Some(name))
                .cloned()
            else {
                continue;
            };
            let tags = match repository.repository_arn() {
                Some(arn) => tags_of(cx, arn).await?,
                None => HashMap::new(),
            };
            let policy = policy_of(cx, name).await?;
            out.insert(
                m.name().to_string(),
                Live {
                    repository,
                    tags,
                    policy,
                },
            );
        }
        Ok(out)
    }

    async fn observe(
        _cx: &Cx<'_>,
        m: &Manifest<RepositorySpec>,
        live: &Self::Live,
    ) -> Result<Self::Observed, ReconcileError> {
        Ok(live.get(m.name()).cloned())
    }

    fn ownership(obs: &Self::Observed) -> Option<Ownership> {
        obs.as_ref()
            .map(|l| Ownership::from_tags(l.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
    }

    fn desired(set: &ManifestSet, m: &Manifest<RepositorySpec>, obs: &Self::Observed) -> Doc {
        Doc {
            repository_name: m.spec.aws_name(&m.metadata).to_string(),
            image_tag_mutability: m.spec.image_tag_mutability.as_str().into(),
            scan_on_push: m.spec.scan_on_push,
            encryption: desired_encryption(m, obs),
            lifecycle_policy: rules_doc(&m.spec.lifecycle),
            tags: desired_tags(set, m),
        }
    }

    fn live(set: &ManifestSet, m: &Manifest<RepositorySpec>, obs: &Self::Observed) -> Option<Doc> {
        let l = obs.as_ref()?;
        let r = &l.repository;
        Some(Doc {
            repository_name: r.repository_name().unwrap_or_default().to_string(),
            image_tag_mutability: r
                .image_tag_mutability()
                .map_or("MUTABLE", |t| t.as_str())
                .to_string(),
            scan_on_push: r
                .image_scanning_configuration()
                .is_some_and(|s| s.scan_on_push()),
            encryption: live_encryption(r),
            lifecycle_policy: l.policy.as_deref().map(parse_policy).unwrap_or_default(),
            tags: managed_tags(
                l.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &desired_tags(set, m),
            ),
        })
    }

    fn aws_id(_set: &ManifestSet, m: &Manifest<RepositorySpec>, obs: &Self::Observed) -> String {
        obs.as_ref()
            .and_then(|l| l.repository.repository_arn())
            .map(str::to_string)
            .unwrap_or_else(|| m.spec.aws_name(&m.metadata).to_string())
    }

    fn replacement(desired: &Doc, live: &Doc) -> (Vec<&'static str>, &'static str) {
        (
            super::unit::differing(&[("encryption", desired.encryption != live.encryption)]),
            "repository (ECR cannot change a repository's encryption; every image in it is deleted with it)",
        )
    }

    /// A replacement deletes the images: refused unless the deletion policy is `delete`.
    fn problems(m: &Manifest<RepositorySpec>, obs: &Self::Observed) -> Vec<Problem> {
        let Some(l) = obs else {
            return Vec::new();
        };
        let (d, live) = (desired_encryption(m, obs), live_encryption(&l.repository));
        let replaced = (d.encryption_type != live.encryption_type
            && !ignored(m, "encryption.type"))
            || (d.kms_key != live.kms_key && !ignored(m, "encryption.kmsKey"));
        if replaced && m.spec.deletion_policy != DeletionPolicy::Delete {
            let name = m.spec.aws_name(&m.metadata);
            vec![Problem::replacement(format!(
                "changing encryption replaces the ECR repository `{name}`, which deletes every image in it; its `deletionPolicy` is `retain`: set `deletionPolicy: delete` (and the annotation `{}: \"true\"`) to allow it, or keep the encryption",
                crate::manifest::annotations::ALLOW_REPLACEMENT
            ))]
        } else {
            Vec::new()
        }
    }

    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<RepositorySpec>,
        obs: &Self::Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        let Doc {
            repository_name,
            image_tag_mutability,
            scan_on_push,
            encryption,
            lifecycle_policy,
            tags,
        } = change.desired;
        let ecr = &cx.aws().ecr;
        let live_arn = obs
            .as_ref()
            .and_then(|l| l.repository.repository_arn())
            .map(str::to_string);
        let existing = match (live_arn, change.live) {
            (Some(arn), Some(live)) if !change.replace => Some((arn, live)),
            (Some(_), Some(_)) => {
                // Replacing: only with the annotation and `deletionPolicy: delete` (the
                // engine asks only when plan found no problem; checked again here).
                if !allows_replacement(&m.metadata)
                    || m.spec.deletion_policy != DeletionPolicy::Delete
                {
                    return Err(ReconcileError::Problems(vec![Problem::replacement(
                        retained_message(repository_name, "a replacement deletes it"),
                    )]));
                }
                ecr.delete_repository()
                    .repository_name(repository_name)
                    .force(true)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ecr:DeleteRepository", e))?;
                None
            }
            _ => None,
        };
        let Some((arn, live)) = existing else {
            let e = EncryptionConfiguration::builder()
                .encryption_type(encryption.encryption_type.as_str().into())
                .set_kms_key(encryption.kms_key.clone())
                .build()
                .map_err(|e| ReconcileError::NotConverged(format!("encryption: {e}")))?;
            let out = ecr
                .create_repository()
                .repository_name(repository_name)
                .image_tag_mutability(ImageTagMutability::from(image_tag_mutability.as_str()))
                .image_scanning_configuration(
                    ImageScanningConfiguration::builder()
                        .scan_on_push(*scan_on_push)
                        .build(),
                )
                .encryption_configuration(e)
                .set_tags(Some(ecr_tags(tags)))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecr:CreateRepository", e))?;
            if !lifecycle_policy.is_empty() {
                put_policy(cx, repository_name, lifecycle_policy).await?;
            }
            let arn = out
                .repository()
                .and_then(|r| r.repository_arn())
                .map(str::to_string)
                .unwrap_or_else(|| repository_name.clone());
            return Ok(Applied {
                aws_id: arn,
                rollout: None,
            });
        };
        // The name identifies the repository, and the encryption cannot change in place.
        if change.differs(|d| &d.image_tag_mutability) {
            ecr.put_image_tag_mutability()
                .repository_name(repository_name)
                .image_tag_mutability(ImageTagMutability::from(image_tag_mutability.as_str()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecr:PutImageTagMutability", e))?;
        }
        if change.differs(|d| &d.scan_on_push) {
            ecr.put_image_scanning_configuration()
                .repository_name(repository_name)
                .image_scanning_configuration(
                    ImageScanningConfiguration::builder()
                        .scan_on_push(*scan_on_push)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecr:PutImageScanningConfiguration", e))?;
        }
        if change.differs(|d| &d.lifecycle_policy) {
            if lifecycle_policy.is_empty() {
                ecr.delete_lifecycle_policy()
                    .repository_name(repository_name)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ecr:DeleteLifecyclePolicy", e))?;
            } else {
                put_policy(cx, repository_name, lifecycle_policy).await?;
            }
        }
        let missing = tags_to_set(tags, Some(&live.tags));
        if !missing.is_empty() {
            ecr.tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(ecr_tags(&missing)))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecr:TagResource", e))?;
        }
        Ok(Applied {
            aws_id: arn,
            rollout: None,
        })
    }

    async fn owned(cx: &Cx<'_>) -> Option<Result<Vec<Owned>, ReconcileError>> {
        let listed = async {
            let mut out = Vec::new();
            for r in repositories(cx).await?.iter() {
                let (Some(arn), Some(name)) = (r.repository_arn(), r.repository_name()) else {
                    continue;
                };
                let tags = tags_of(cx, arn).await?;
                out.extend(Owned::by_tags(
                    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    cx.set.owner(),
                    Kind::Repository,
                    arn,
                    Some(name),
                ));
            }
            Ok::<_, AwsError>(out)
        };
        Some(listed.await.map_err(Into::into))
    }

    /// Deletes the repository with its images, only when it carries
    /// `mooring.dev/deletion-policy: delete` (read afresh); a retained one is refused with
    /// how to delete it by hand, and stays reported as an orphan.
    async fn delete(cx: &Cx<'_>, owned: &Owned) -> Result<(), ReconcileError> {
        let name = owned.aws_name(":repository/");
        let policy = tags_of(cx, &owned.aws_id).await?.remove(TAG_DELETION_POLICY);
        if policy.as_deref() != Some(DeletionPolicy::Delete.as_str()) {
            let why = match policy {
                Some(p) => format!("its tag `{TAG_DELETION_POLICY}` is `{p}`"),
                None => format!("it has no `{TAG_DELETION_POLICY}` tag"),
            };
            return Err(ReconcileError::Retained(retained_message(&name, &why)));
        }
        cx.aws()
            .ecr
            .delete_repository()
            .repository_name(name)
            .force(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecr:DeleteRepository", e))?;
        Ok(())
    }
}

async fn put_policy(
    cx: &Cx<'_>,
    name: &str,
    rules: &BTreeMap<String, RuleDoc>,
) -> Result<(), AwsError> {
    cx.aws()
        .ecr
        .put_lifecycle_policy()
        .repository_name(name)
        .lifecycle_policy_text(policy_text(rules))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ecr:PutLifecyclePolicy", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;
    use crate::reconcile::diff::diff;
    use aws_sdk_ecr::types::EncryptionType as AwsEncryption;

    const REPO: &str = "apiVersion: mooring.dev/v1alpha1
kind: Repository
metadata: {name: backend}
spec:
  repositoryName: salon/backend
  imageTagMutability: IMMUTABLE
  scanOnPush: true
  lifecycle:
    - {keepLast: 20, tagPrefixes: [v, release], description: releases}
    - {expireUntaggedAfterDays: 14}
  tags: {team: core}
";

    const ARN: &str = "arn:aws:ecr:eu-west-1:123456789012:repository/salon/backend";

    fn load(files: &[(&str, &str)]) -> Result<ManifestSet, String> {
        let sources: Vec<_> = files
            .iter()
            .map(|(f, t)| (std::path::PathBuf::from(f), t.to_string()))
            .collect();
        load_with_stack(&sources).map_err(|e| e.to_string())
    }

    const OWNED: [(&str, &str); 5] = [
        ("team", "core"),
        ("mooring.dev/managed-by", "mooring"),
        ("mooring.dev/stack", "test"),
        ("mooring.dev/resource", "Repository/backend"),
        ("mooring.dev/deletion-policy", "retain"),
    ];

    /// The policy as ECR might return it: other key order, other prefix order, whitespace.
    const LIVE_POLICY: &str = r#"{ "rules": [
        {"action": {"type": "expire"}, "selection": {"countNumber": 14, "countUnit": "days",
          "countType": "sinceImagePushed", "tagStatus": "untagged"}, "rulePriority": 2},
        {"rulePriority": 1, "description": "releases",
         "selection": {"tagStatus": "tagged", "tagPrefixList": ["release", "v"],
                       "countType": "imageCountMoreThan", "countNumber": 20},
         "action": {"type": "expire"}}
    ]}"#;

    fn live(
        mutability: &str,
        scan: bool,
        encryption: (AwsEncryption, Option<&str>),
        policy: Option<&str>,
        tags: &[(&str, &str)],
    ) -> Option<Live> {
        Some(Live {
            repository: Repository::builder()
                .repository_name("salon/backend")
                .repository_arn(ARN)
                .repository_uri("123456789012.dkr.ecr.eu-west-1.amazonaws.com/salon/backend")
                .image_tag_mutability(ImageTagMutability::from(mutability))
                .image_scanning_configuration(
                    ImageScanningConfiguration::builder().scan_on_push(scan).build(),
                )
                .encryption_configuration(
                    EncryptionConfiguration::builder()
                        .encryption_type(encryption.0)
                        .set_kms_key(encryption.1.map(str::to_string))
                        .build()
                        .unwrap(),
                )
                .build(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            policy: policy.map(str::to_string),
        })
    }

    fn steady() -> Option<Live> {
        live(
            "IMMUTABLE",
            true,
            (AwsEncryption::Aes256, None),
            Some(LIVE_POLICY),
            &OWNED,
        )
    }

    fn changes(set: &ManifestSet, obs: &Option<Live>) -> Vec<String> {
        let m = &set.repositories[0];
        let d = serde_json::to_value(Unit::desired(set, m, obs)).unwrap();
        let l = Unit::live(set, m, obs).map(|l| serde_json::to_value(l).unwrap());
        diff(&d, l.as_ref()).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn in_sync_repository_has_no_changes_whatever_the_policy_json_looks_like() {
        let set = load(&[("r.yaml", REPO)]).unwrap();
        let mut obs = steady();
        assert_eq!(changes(&set, &obs), Vec::<String>::new());
        // Tags others add are not drift.
        obs.as_mut()
            .unwrap()
            .tags
            .insert("cost-center".into(), "42".into());
        assert!(changes(&set, &obs).is_empty());
        assert_eq!(Unit::aws_id(&set, &set.repositories[0], &obs), ARN);
    }

    /// `from: Repository/x` reads the URI and ARN of the live repository; none before it
    /// exists.
    #[test]
    fn the_uri_and_arn_are_readable_once_the_repository_exists() {
        assert_eq!(
            Unit::fields(&steady()),
            [
                (
                    "repositoryUri",
                    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/salon/backend".to_string()
                ),
                ("arn", ARN.to_string()),
            ]
        );
        assert!(Unit::fields(&None).is_empty());
        let declared: Vec<&str> = <Unit as Declared>::FIELDS.iter().map(|f| f.name).collect();
        assert_eq!(declared, ["repositoryUri", "arn"]);
    }

    #[test]
    fn lifecycle_rules_render_to_ecr_json() {
        let set = load(&[("r.yaml", REPO)]).unwrap();
        let text = policy_text(&rules_doc(&set.repositories[0].spec.lifecycle));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"rules": [
                {"rulePriority": 1, "description": "releases",
                 "selection": {"tagStatus": "tagged", "tagPrefixList": ["release", "v"],
                               "countType": "imageCountMoreThan", "countNumber": 20},
                 "action": {"type": "expire"}},
                {"rulePriority": 2,
                 "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                               "countUnit": "days", "countNumber": 14},
                 "action": {"type": "expire"}}
            ]})
        );
        // What is rendered parses back to the same rules.
        assert_eq!(
            parse_policy(&text),
            rules_doc(&set.repositories[0].spec.lifecycle)
        );
        // An explicit status and expireAfterDays for tagged images; `any` last.
        let rules: Vec<LifecycleRule> = serde_json::from_value(serde_json::json!([
            {"expireAfterDays": 30, "tagPrefixes": ["pr-"]},
            {"keepLast": 100}
        ]))
        .unwrap();
        let docs = rules_doc(&rules);
        assert_eq!(docs["1"].selection.count_type, "sinceImagePushed");
        assert_eq!(docs["1"].selection.tag_status, "tagged");
        assert_eq!(docs["2"].selection.tag_status, "any");
        assert_eq!(docs["2"].selection.count_unit, None);
    }

    #[test]
    fn a_policy_edited_by_hand_is_named_rule_by_rule() {
        let set = load(&[("r.yaml", REPO)]).unwrap();
        let with = |policy: &str| {
            live(
                "IMMUTABLE",
                true,
                (AwsEncryption::Aes256, None),
                Some(policy),
                &OWNED,
            )
        };
        let edited = LIVE_POLICY.replace("\"countNumber\": 20", "\"countNumber\": 5");
        assert_eq!(
            changes(&set, &with(&edited)),
            ["lifecyclePolicy.1.selection.countNumber"]
        );
        let patterns = LIVE_POLICY.replace(
            "\"tagPrefixList\": [\"release\", \"v\"]",
            "\"tagPatternList\": [\"v*\"]",
        );
        assert_eq!(
            changes(&set, &with(&patterns)),
            [
                "lifecyclePolicy.1.selection.tagPrefixList",
                "lifecyclePolicy.1.selection.tagPatternList"
            ]
        );
        let extra = r#"{"rules": [{"rulePriority": 3, "selection": {"tagStatus": "any",
            "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]}"#;
        let mut c = changes(&set, &with(extra));
        c.sort();
        assert!(c.contains(&"lifecyclePolicy.3".to_string()), "{c:?}");
        assert!(c.iter().any(|f| f.starts_with("lifecyclePolicy.1.")), "{c:?}");
        // No policy at all.
        let none = live(
            "IMMUTABLE",
            true,
            (AwsEncryption::Aes256, None),
            None,
            &OWNED,
        );
        assert!(changes(&set, &none).iter().all(|f| f.starts_with("lifecyclePolicy.")));
        // Garbage is drift, not a crash.
        assert!(!changes(&set, &with("{\"rules\": 7}")).is_empty());
        // A manifest without rules wants no policy: a live one is drift.
        let bare = REPO.split("  lifecycle:").next().unwrap().to_string() + "  tags: {team: core}\n";
        let set = load(&[("r.yaml", &bare)]).unwrap();
        assert_eq!(
            changes(&set, &with(LIVE_POLICY)),
            ["lifecyclePolicy.1", "lifecyclePolicy.2"]
        );
        assert!(changes(&set, &none).is_empty());
    }

    #[test]
    fn mutability_scanning_and_tags_are_drift() {
        let set = load(&[("r.yaml", REPO)]).unwrap();
        let p = Some(LIVE_POLICY);
        let aes = (AwsEncryption::Aes256, None);
        assert_eq!(
            changes(&set, &live("MUTABLE", true, aes.clone(), p, &OWNED)),
            ["imageTagMutability"]
        );
        assert_eq!(
            changes(&set, &live("IMMUTABLE", false, aes.clone(), p, &OWNED)),
            ["scanOnPush"]
        );
        let mut tags = OWNED.to_vec();
        tags.pop();
        assert_eq!(
            changes(&set, &live("IMMUTABLE", true, aes, p, &tags)),
            ["tags.mooring.dev/deletion-policy"]
        );
    }

    #[test]
    fn encryption_changes_replace_and_are_refused_while_retained() {
        let set = load(&[("r.yaml", REPO)]).unwrap();
        let m = &set.repositories[0];
        let kms = live(
            "IMMUTABLE",
            true,
            (AwsEncryption::Kms, Some("arn:aws:kms:eu-west-1:123456789012:key/k")),
            Some(LIVE_POLICY),
            &OWNED,
        );
        let d = Unit::desired(&set, m, &kms);
        let l = Unit::live(&set, m, &kms).unwrap();
        let (fields, what) = Unit::replacement(&d, &l);
        assert_eq!(fields, ["encryption"]);
        assert!(what.contains("every image in it is deleted"), "{what}");
        let problems = Unit::problems(m, &kms);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("`deletionPolicy` is `retain`"), "{problems:?}");
        assert!(Unit::problems(m, &steady()).is_empty());
        // With `deletionPolicy: delete` the replacement is left to the annotation.
        let deletable = REPO.replace("  tags:", "  deletionPolicy: delete\n  tags:");
        let set = load(&[("r.yaml", &deletable)]).unwrap();
        assert!(Unit::problems(&set.repositories[0], &kms).is_empty());
        // Ignored, the encryption is left alone.
        let ignoring = REPO.replace(
            "metadata: {name: backend}",
            "metadata: {name: backend, annotations: {mooring.dev/ignore: encryption}}",
        );
        let set = load(&[("r.yaml", &ignoring)]).unwrap();
        assert!(Unit::problems(&set.repositories[0], &kms).is_empty());
    }

    #[test]
    fn kms_without_a_key_means_the_aws_managed_key() {
        let text = REPO.replace("  tags:", "  encryption: {type: KMS}\n  tags:");
        let set = load(&[("r.yaml", &text)]).unwrap();
        let managed = live(
            "IMMUTABLE",
            true,
            (AwsEncryption::Kms, Some("arn:aws:kms:eu-west-1:123456789012:key/aws-ecr")),
            Some(LIVE_POLICY),
            &OWNED,
        );
        assert!(changes(&set, &managed).is_empty());
        assert_eq!(changes(&set, &steady()), ["encryption.type"]);
        let keyed = REPO.replace(
            "  tags:",
            "  encryption: {type: KMS, kmsKey: 'arn:aws:kms:eu-west-1:123456789012:key/mine'}\n  tags:",
        );
        let set = load(&[("r.yaml", &keyed)]).unwrap();
        assert_eq!(changes(&set, &managed), ["encryption.kmsKey"]);
    }

    #[test]
    fn names_rules_and_keys_are_checked_with_positions() {
        let bad = |from: &str, to: &str| load(&[("r.yaml", &REPO.replace(from, to))]).unwrap_err();
        let e = bad("salon/backend", "Salon/backend");
        assert!(e.contains("r.yaml:5:"), "{e}");
        assert!(e.contains("is not a valid ECR repository name"), "{e}");
        for name in ["a//b", "a--", "-a", "a", "a_b/c.d-e1"] {
            assert_eq!(spec::valid_name(name), name == "a_b/c.d-e1", "{name}");
        }
        let e = bad("{expireUntaggedAfterDays: 14}", "{expireUntaggedAfterDays: 14, keepLast: 3}");
        assert!(e.contains("r.yaml:10:"), "{e}");
        assert!(e.contains("set exactly one of `keepLast`"), "{e}");
        let e = bad("{keepLast: 20, tagPrefixes: [v, release], description: releases}", "{keepLast: 20, tagStatus: tagged}");
        assert!(e.contains("add `tagPrefixes`"), "{e}");
        let e = bad("{keepLast: 20, tagPrefixes: [v, release], description: releases}", "{keepLast: 20}");
        assert!(e.contains("r.yaml:9:"), "{e}");
        assert!(e.contains("must be the last one"), "{e}");
        let e = bad("{expireUntaggedAfterDays: 14}", "{expireUntaggedAfterDays: 0, tagPrefixes: [v]}");
        assert!(e.contains("must be at least 1"), "{e}");
        assert!(e.contains("tag prefixes select tagged images"), "{e}");
        let e = bad("  tags:", "  encryption: {type: KMS, kmsKey: alias/ecr}\n  tags:");
        assert!(e.contains("r.yaml:11:") && e.contains("is not a KMS key ARN"), "{e}");
        let e = bad("  tags:", "  encryption: {kmsKey: 'arn:aws:kms:eu-west-1:1:key/k'}\n  tags:");
        assert!(e.contains("needs `type: KMS`"), "{e}");
        let e = bad("IMMUTABLE", "FROZEN");
        assert!(e.contains("imageTagMutability"), "{e}");
        let e = bad("  tags:", "  deletionPolicy: forget\n  tags:");
        assert!(e.contains("deletionPolicy"), "{e}");
        assert!(load(&[("r.yaml", REPO)]).is_ok());
    }

    #[test]
    fn the_deletion_policy_is_a_tag_and_retain_is_the_default() {
        let set = load(&[("r.yaml", REPO)]).unwrap();
        let tags = desired_tags(&set, &set.repositories[0]);
        assert_eq!(tags[TAG_DELETION_POLICY], "retain");
        let set = load(&[(
            "r.yaml",
            &REPO.replace("  tags:", "  deletionPolicy: delete\n  tags:"),
        )])
        .unwrap();
        assert_eq!(desired_tags(&set, &set.repositories[0])[TAG_DELETION_POLICY], "delete");
        let msg = retained_message("salon/backend", "x");
        assert!(msg.contains("aws ecr delete-repository --repository-name salon/backend --force"));
    }

    /// moto returns every repository in one page; ECR pages them. The manifest's repository
    /// on a second page is found (not created again), a missing lifecycle policy is
    /// `LifecyclePolicyNotFoundException`, and the only write is the policy.
    #[tokio::test]
    async fn a_repository_on_a_later_page_is_found_and_only_its_policy_is_written() {
        use aws_sdk_ecr::Client;
        use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput;
        use aws_sdk_ecr::operation::get_lifecycle_policy::GetLifecyclePolicyError;
        use aws_sdk_ecr::operation::list_tags_for_resource::ListTagsForResourceOutput;
        use aws_sdk_ecr::operation::put_lifecycle_policy::PutLifecyclePolicyOutput;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        use aws_smithy_types::error::ErrorMetadata;

        let set = load(&[("r.yaml", REPO)]).unwrap();
        let first = mock!(Client::describe_repositories)
            .match_requests(|r| r.next_token().is_none())
            .then_output(|| {
                DescribeRepositoriesOutput::builder()
                    .repositories(
                        Repository::builder()
                            .repository_name("other")
                            .repository_arn("arn:aws:ecr:eu-west-1:123456789012:repository/other")
                            .build(),
                    )
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(Client::describe_repositories)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_output(|| {
                DescribeRepositoriesOutput::builder()
                    .repositories(steady().unwrap().repository)
                    .build()
            });
        let tags = mock!(Client::list_tags_for_resource)
            .match_requests(|r| r.resource_arn() == Some(ARN))
            .then_output(|| {
                ListTagsForResourceOutput::builder()
                    .set_tags(Some(ecr_tags(
                        &OWNED
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    )))
                    .build()
            });
        let no_policy = mock!(Client::get_lifecycle_policy).then_error(|| {
            GetLifecyclePolicyError::generic(
                ErrorMetadata::builder()
                    .code("LifecyclePolicyNotFoundException")
                    .message("Lifecycle policy does not exist")
                    .build(),
            )
        });
        let put = mock!(Client::put_lifecycle_policy)
            .match_requests(|r| {
                r.repository_name() == Some("salon/backend")
                    && r.lifecycle_policy_text().map(parse_policy)
                        == Some(parse_policy(LIVE_POLICY))
            })
            .then_output(|| PutLifecyclePolicyOutput::builder().build());
        let ecr = mock_client!(
            aws_sdk_ecr,
            RuleMode::MatchAny,
            [&first, &second, &tags, &no_policy, &put]
        );
        // Every other client points at a closed loopback port.
        let config = crate::aws::offline_config();
        let mut aws = crate::aws::Aws::from_config(&config).expect("config");
        aws.ecr = ecr;
        let ctx = crate::reconcile::Context::new(aws);
        let report =
            crate::reconcile::apply_all(&ctx, &set, &crate::kinds::reconcilers(&set), true).await;
        let r = &report.resources[0];
        assert_eq!(r.action, crate::reconcile::Action::Update, "{r:#?}");
        assert!(r.error().is_none(), "{r:#?}");
        let fields: Vec<&str> = r.changes.iter().map(|c| c.field.as_str()).collect();
        assert!(
            fields.iter().all(|f| f.starts_with("lifecyclePolicy.")),
            "{fields:?}"
        );
        assert!(fields.contains(&"lifecyclePolicy.2.selection.countUnit"), "{fields:?}");
        // Any other write (creating, mutability, tags) matches no rule and would fail apply.
        assert_eq!(put.num_calls(), 1);
        assert_eq!(second.num_calls(), 1);
    }

    fn service(container: &str) -> String {
        format!(
            "apiVersion: mooring.dev/v1alpha1
kind: Cluster
metadata: {{name: prd}}
spec: {{}}
---
apiVersion: mooring.dev/v1alpha1
kind: Service
metadata: {{name: api}}
spec:
  cluster: prd
  network:
    subnets: {{ids: [subnet-1]}}
    securityGroups: {{ids: [sg-1]}}
  taskDefinition:
    cpu: 256
    memory: 512
    container: {container}
"
        )
    }

    #[test]
    fn a_service_image_may_name_a_repository_and_a_tag() {
        let svc = service("{repository: backend, tag: v1.4.2}");
        let set = load(&[("r.yaml", REPO), ("s.yaml", &svc)]).unwrap();
        let m = &set.services[0];
        let deps = <crate::kinds::service::Unit as Declared>::dependencies(m, &set);
        assert!(deps.contains(&(Kind::Repository, "backend".to_string())), "{deps:?}");
        let order = |k: Kind| Kind::ALL.iter().position(|x| *x == k).unwrap();
        assert!(order(Kind::Repository) < order(Kind::Service));
        // The image is the resolved repository URI with the tag.
        let r = crate::kinds::service::render::Resolved {
            image: Some(format!(
                "{}/salon/backend:v1.4.2",
                registry_host("123456789012", "eu-west-1")
            )),
            ..Default::default()
        };
        let c = crate::kinds::service::render::manifest_container(m, &r);
        assert_eq!(
            c.image(),
            Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com/salon/backend:v1.4.2")
        );
        assert_eq!(
            registry_host("123456789012", "cn-north-1"),
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"
        );
        // The full URI stays valid.
        let set = load(&[("s.yaml", &service("{image: 'api:1'}"))]).unwrap();
        let c = crate::kinds::service::render::manifest_container(
            &set.services[0],
            &Default::default(),
        );
        assert_eq!(c.image(), Some("api:1"));
    }

    #[test]
    fn a_service_names_exactly_one_image_and_an_existing_repository() {
        let err = |container: &str, with_repo: bool| {
            let svc = service(container);
            let mut files = vec![("s.yaml", svc.as_str())];
            if with_repo {
                files.push(("r.yaml", REPO));
            }
            load(&files).unwrap_err()
        };
        let e = err("{repository: frontend, tag: '1'}", true);
        assert!(
            e.contains("s.yaml:17:17: spec.taskDefinition.container.repository: no Repository named `frontend` in the manifests (known: backend)"),
            "{e}"
        );
        let e = err("{image: 'api:1', repository: backend, tag: '1'}", true);
        assert!(e.contains("set either `image` or `repository` with `tag`, not both"), "{e}");
        let e = err("{repository: backend}", true);
        assert!(e.contains("`repository` needs a `tag`"), "{e}");
        let e = err("{tag: '1'}", false);
        assert!(e.contains("`tag` needs `repository`"), "{e}");
        let e = err("{port: 3000}", false);
        assert!(e.contains("set `image` (a full image reference) or `repository` and `tag`"), "{e}");
        let e = err("{repository: backend, tag: '-bad tag'}", true);
        assert!(e.contains("spec.taskDefinition.container.tag") && e.contains("is not an image tag"), "{e}");
    }
}
