//! CloudWatch Logs log groups (`kind: LogGroup`).
//!
//! Reads: one DescribeLogGroups per group (by name prefix; the exact name is picked out),
//! and one ListTagsForResource per group that exists.
//!
//! Everything the manifest says can change in place: retention (PutRetentionPolicy, or
//! DeleteRetentionPolicy to keep events forever), the KMS key (AssociateKmsKey,
//! DisassociateKmsKey) and tags. A new name is a new log group. A service's `logs.group`
//! may name a `LogGroup` manifest; the group is then created before the service.

pub mod spec;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudwatchlogs::types::LogGroup;
use serde::{Deserialize, Serialize};

use super::ownership::{Ownership, managed_tags, owned_tags, tags_to_set};
use super::{Change, Declared, Resource};
use super::from::Field;
use crate::aws::AwsError;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::{Applied, Cx, Owned, ReconcileError};
use spec::LogGroupSpec;

/// The `LogGroup` kind.
pub struct Unit;

impl Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "logs:DescribeLogGroups",
        "logs:ListTagsForResource",
        "logs:CreateLogGroup",
        "logs:PutRetentionPolicy",
        "logs:DeleteRetentionPolicy",
        "logs:AssociateKmsKey",
        "logs:DisassociateKmsKey",
        "logs:TagResource",
        "logs:DeleteLogGroup",
    ];
    type State = ();

    const FIELDS: &'static [Field] = &[
        Field {
            name: "name",
            doc: "the log group's name",
        },
        Field {
            name: "arn",
            doc: "the log group's ARN (without the `:*` suffix)",
        },
    ];

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the log group `{}`", m.spec.aws_name(&m.metadata))
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.log_groups
            .iter()
            .flat_map(|g| {
                let name = g.spec.aws_name(&g.metadata);
                [
                    crate::iam::arn("logs", &format!("log-group:{name}")),
                    crate::iam::arn("logs", &format!("log-group:{name}:*")),
                ]
            })
            .collect()
    }

}

/// The `LogGroup` manifest a service's `logs.group` means: the one of that manifest name,
/// or the one whose log group has that name.
pub fn managing<'a>(set: &'a ManifestSet, group: &str) -> Option<&'a Manifest<LogGroupSpec>> {
    set.log_groups
        .iter()
        .find(|g| g.name() == group)
        .or_else(|| {
            set.log_groups
                .iter()
                .find(|g| g.spec.aws_name(&g.metadata) == group)
        })
}

/// The log group name in CloudWatch that a service's `logs.group` stands for: a `LogGroup`
/// manifest's group when it names one, else the value itself.
pub fn aws_name_for(set: &ManifestSet, group: &str) -> String {
    managing(set, group)
        .map(|g| g.spec.aws_name(&g.metadata).to_string())
        .unwrap_or_else(|| group.to_string())
}

/// A log group in the shape plan compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// The name in CloudWatch Logs.
    pub log_group_name: String,
    /// Days events are kept; `null`: forever.
    pub retention_in_days: Option<i32>,
    /// The KMS key's ARN; `null`: CloudWatch's own encryption.
    pub kms_key_id: Option<String>,
    /// Tags the manifest manages.
    pub tags: BTreeMap<String, String>,
}

/// A live log group and its tags.
#[derive(Debug, Clone)]
pub struct Live {
    group: LogGroup,
    tags: HashMap<String, String>,
}

fn desired_tags(set: &ManifestSet, m: &Manifest<LogGroupSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::LogGroup, set.owner(), m.name(), &m.spec.tags)
}

/// The ARN tag calls take: the group's, without the `:*` DescribeLogGroups' `arn` ends in.
fn tagging_arn(g: &LogGroup) -> Option<String> {
    g.log_group_arn()
        .map(str::to_string)
        .or_else(|| g.arn().map(|a| a.trim_end_matches(":*").to_string()))
}

async fn tags_of(cx: &Cx<'_>, arn: &str) -> Result<HashMap<String, String>, AwsError> {
    let out = cx
        .aws()
        .logs
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("logs:ListTagsForResource", e))?;
    Ok(out.tags.unwrap_or_default())
}

/// Log groups whose name starts with `prefix` (every group when empty).
async fn describe(cx: &Cx<'_>, prefix: Option<&str>) -> Result<Vec<LogGroup>, AwsError> {
    cx.aws()
        .logs
        .describe_log_groups()
        .set_log_group_name_prefix(prefix.map(str::to_string))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AwsError::from_sdk("logs:DescribeLogGroups", e))
}

#[async_trait::async_trait]
impl Resource for Unit {
    /// The manifests' live log groups by manifest name.
    type Live = HashMap<String, Live>;
    type Observed = Option<Live>;
    type Doc = Doc;

    async fn read(
        cx: &Cx<'_>,
        manifests: &[Manifest<LogGroupSpec>],
    ) -> Result<Self::Live, ReconcileError> {
        let mut out = HashMap::new();
        for m in manifests {
            let name = m.spec.aws_name(&m.metadata);
            let Some(group) = describe(cx, Some(name))
                .await?
                .into_iter()
                .find(|g| g.log_group_name() == Some(name))
            else {
                continue;
            };
            let tags = match tagging_arn(&group) {
                Some(arn) => tags_of(cx, &arn).await?,
                None => HashMap::new(),
            };
            out.insert(m.name().to_string(), Live { group, tags });
        }
        Ok(out)
    }

    async fn observe(
        _cx: &Cx<'_>,
        m: &Manifest<LogGroupSpec>,
        live: &Self::Live,
    ) -> Result<Self::Observed, ReconcileError> {
        Ok(live.get(m.name()).cloned())
    }

    fn fields(obs: &Self::Observed) -> Vec<(&'static str, String)> {
        let Some(l) = obs else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(name) = l.group.log_group_name() {
            out.push(("name", name.to_string()));
        }
        if let Some(arn) = tagging_arn(&l.group) {
            out.push(("arn", arn));
        }
        out
    }

    fn ownership(obs: &Self::Observed) -> Option<Ownership> {
        obs.as_ref()
            .map(|l| Ownership::from_tags(l.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
    }

    fn desired(set: &ManifestSet, m: &Manifest<LogGroupSpec>, _obs: &Self::Observed) -> Doc {
        Doc {
            log_group_name: m.spec.aws_name(&m.metadata).to_string(),
            retention_in_days: m
                .spec
                .retention_in_days
                .map(|d| i32::try_from(d).unwrap_or(i32::MAX)),
            kms_key_id: m.spec.kms_key_id.clone(),
            tags: desired_tags(set, m),
        }
    }

    fn live(set: &ManifestSet, m: &Manifest<LogGroupSpec>, obs: &Self::Observed) -> Option<Doc> {
        let l = obs.as_ref()?;
        Some(Doc {
            log_group_name: l.group.log_group_name().unwrap_or_default().to_string(),
            retention_in_days: l.group.retention_in_days(),
            kms_key_id: l.group.kms_key_id().map(str::to_string),
            tags: managed_tags(
                l.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &desired_tags(set, m),
            ),
        })
    }

    fn aws_id(_set: &ManifestSet, m: &Manifest<LogGroupSpec>, obs: &Self::Observed) -> String {
        obs.as_ref()
            .and_then(|l| tagging_arn(&l.group))
            .unwrap_or_else(|| m.spec.aws_name(&m.metadata).to_string())
    }

    async fn apply(
        cx: &Cx<'_>,
        _m: &Manifest<LogGroupSpec>,
        obs: &Self::Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        let Doc {
            log_group_name,
            retention_in_days,
            kms_key_id,
            tags,
        } = change.desired;
        let aws = cx.aws();
        let logs = &aws.logs;
        let live_arn = obs.as_ref().and_then(|l| tagging_arn(&l.group));
        let (Some(arn), Some(live)) = (live_arn, change.live) else {
            logs.create_log_group()
                .log_group_name(log_group_name)
                .set_kms_key_id(kms_key_id.clone())
                .set_tags(Some(tags.clone().into_iter().collect()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("logs:CreateLogGroup", e))?;
            if let Some(days) = retention_in_days {
                put_retention(cx, log_group_name, *days).await?;
            }
            let arn = format!(
                "arn:{}:logs:{}:{}:log-group:{log_group_name}",
                aws.partition(),
                aws.region,
                aws.account_id().await?
            );
            return Ok(Applied {
                aws_id: arn,
                rollout: None,
            });
        };
        // The name identifies the group: a live group of another name is not this one.
        if change.differs(|d| &d.retention_in_days) {
            match retention_in_days {
                Some(days) => put_retention(cx, log_group_name, *days).await?,
                None => {
                    logs.delete_retention_policy()
                        .log_group_name(log_group_name)
                        .send()
                        .await
                        .map_err(|e| AwsError::from_sdk("logs:DeleteRetentionPolicy", e))?;
                }
            }
        }
        if change.differs(|d| &d.kms_key_id) {
            match kms_key_id {
                Some(key) => {
                    logs.associate_kms_key()
                        .log_group_name(log_group_name)
                        .kms_key_id(key)
                        .send()
                        .await
                        .map_err(|e| AwsError::from_sdk("logs:AssociateKmsKey", e))?;
                }
                None => {
                    logs.disassociate_kms_key()
                        .log_group_name(log_group_name)
                        .send()
                        .await
                        .map_err(|e| AwsError::from_sdk("logs:DisassociateKmsKey", e))?;
                }
            }
        }
        let missing = tags_to_set(tags, Some(&live.tags));
        if !missing.is_empty() {
            logs.tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(missing.into_iter().collect()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("logs:TagResource", e))?;
        }
        Ok(Applied {
            aws_id: arn,
            rollout: None,
        })
    }

    async fn owned(cx: &Cx<'_>) -> Option<Result<Vec<Owned>, ReconcileError>> {
        // A group a service of the set logs to by its name is in use, whichever manifest
        // once made it: pruning it would lose its events and stop the tasks starting.
        let logged_to: std::collections::HashSet<&str> = cx
            .set
            .services
            .iter()
            .flat_map(|s| s.spec.containers().filter_map(|(_, c)| c.logs.as_ref()))
            .map(|l| l.group.as_str())
            .collect();
        let listed = async {
            let mut out = Vec::new();
            for g in describe(cx, None).await? {
                let (Some(arn), Some(name)) = (tagging_arn(&g), g.log_group_name()) else {
                    continue;
                };
                if logged_to.contains(name) {
                    continue;
                }
                let tags = tags_of(cx, &arn).await?;
                out.extend(Owned::by_tags(
                    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    cx.set.owner(),
                    Kind::LogGroup,
                    &arn,
                    Some(name),
                ));
            }
            Ok::<_, AwsError>(out)
        };
        Some(listed.await.map_err(Into::into))
    }

    /// Deletes the group and the events in it.
    async fn delete(cx: &Cx<'_>, owned: &Owned) -> Result<(), ReconcileError> {
        let name = owned.aws_name(":log-group:");
        cx.aws()
            .logs
            .delete_log_group()
            .log_group_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("logs:DeleteLogGroup", e))?;
        Ok(())
    }
}

async fn put_retention(cx: &Cx<'_>, name: &str, days: i32) -> Result<(), AwsError> {
    cx.aws()
        .logs
        .put_retention_policy()
        .log_group_name(name)
        .retention_in_days(days)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("logs:PutRetentionPolicy", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;
    use crate::reconcile::diff::diff;

    const GROUP: &str = "apiVersion: mooring.dev/v1alpha1
kind: LogGroup
metadata: {name: backend-logs}
spec:
  logGroupName: /ecs/backend
  retentionInDays: 30
  tags: {team: core}
";

    fn service(logs: &str) -> String {
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
    executionRoleArn: arn:aws:iam::123456789012:role/exec
    container:
      image: api:1
      logs: {logs}
"
        )
    }

    fn load(files: &[(&str, &str)]) -> Result<ManifestSet, String> {
        let sources: Vec<_> = files
            .iter()
            .map(|(f, t)| (std::path::PathBuf::from(f), t.to_string()))
            .collect();
        load_with_stack(&sources).map_err(|e| e.to_string())
    }

    fn live(retention: Option<i32>, kms: Option<&str>, tags: &[(&str, &str)]) -> Option<Live> {
        Some(Live {
            group: LogGroup::builder()
                .log_group_name("/ecs/backend")
                .arn("arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/backend:*")
                .set_retention_in_days(retention)
                .set_kms_key_id(kms.map(str::to_string))
                .build(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    const OWNED: [(&str, &str); 4] = [
        ("team", "core"),
        ("mooring.dev/managed-by", "mooring"),
        ("mooring.dev/stack", "test"),
        ("mooring.dev/resource", "LogGroup/backend-logs"),
    ];

    fn changes(set: &ManifestSet, obs: &Option<Live>) -> Vec<String> {
        let m = &set.log_groups[0];
        let d = serde_json::to_value(Unit::desired(set, m, obs)).unwrap();
        let l = Unit::live(set, m, obs).map(|l| serde_json::to_value(l).unwrap());
        diff(&d, l.as_ref()).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn in_sync_group_has_no_changes_and_foreign_tags_are_ignored() {
        let set = load(&[("g.yaml", GROUP)]).unwrap();
        let mut tags = OWNED.to_vec();
        tags.push(("cost-center", "42"));
        assert!(changes(&set, &live(Some(30), None, &tags)).is_empty());
        assert_eq!(
            Unit::aws_id(&set, &set.log_groups[0], &live(Some(30), None, &tags)),
            "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/backend",
            "the group's ARN, without the `:*` of its events"
        );
    }

    #[test]
    fn retention_kms_key_and_tags_are_drift() {
        let set = load(&[("g.yaml", GROUP)]).unwrap();
        // Never expire: CloudWatch leaves retentionInDays out.
        assert_eq!(changes(&set, &live(None, None, &OWNED)), ["retentionInDays"]);
        assert_eq!(
            changes(
                &set,
                &live(
                    Some(30),
                    Some("arn:aws:kms:eu-west-1:123456789012:key/abc"),
                    &OWNED
                )
            ),
            ["kmsKeyId"]
        );
        assert_eq!(
            changes(&set, &live(Some(30), None, &[OWNED[0], OWNED[1], OWNED[3]])),
            ["tags.mooring.dev/stack"]
        );
        let kept_forever = GROUP.replace("  retentionInDays: 30\n", "");
        let set = load(&[("g.yaml", &kept_forever)]).unwrap();
        assert_eq!(changes(&set, &live(Some(30), None, &OWNED)), ["retentionInDays"]);
        assert!(changes(&set, &live(None, None, &OWNED)).is_empty());
    }

    #[test]
    fn only_retentions_cloudwatch_accepts_and_kms_key_arns_are_valid() {
        let e = load(&[("g.yaml", &GROUP.replace(": 30", ": 31"))]).unwrap_err();
        assert!(e.contains("g.yaml:6:"), "{e}");
        assert!(e.contains("retentionInDays"), "{e}");
        let e = load(&[(
            "g.yaml",
            &GROUP.replace("  tags:", "  kmsKeyId: alias/logs\n  tags:"),
        )])
        .unwrap_err();
        assert!(e.contains("g.yaml:7:3: spec.kmsKeyId"), "{e}");
        assert!(e.contains("is not a KMS key ARN"), "{e}");
        let e = load(&[(
            "g.yaml",
            &GROUP.replace("/ecs/backend", "/ecs/back end"),
        )])
        .unwrap_err();
        assert!(e.contains("g.yaml:5:"), "{e}");
        assert!(e.contains("is not a valid log group name"), "{e}");
        for days in spec::RETENTION_DAYS {
            let text = GROUP.replace(": 30", &format!(": {days}"));
            assert!(load(&[("g.yaml", &text)]).is_ok(), "{days}");
        }
        let with_key = GROUP.replace(
            "  tags:",
            "  kmsKeyId: arn:aws:kms:eu-west-1:123456789012:key/1234abcd\n  tags:",
        );
        assert!(load(&[("g.yaml", &with_key)]).is_ok());
    }

    #[test]
    fn the_retention_check_names_the_accepted_values() {
        let spec = LogGroupSpec {
            retention_in_days: Some(31),
            ..Default::default()
        };
        let meta = crate::manifest::Metadata {
            name: "g".into(),
            labels: Default::default(),
            annotations: Default::default(),
        };
        let doc = crate::manifest::yaml::parse_documents("spec: {retentionInDays: 31}\n")
            .0
            .remove(0);
        let path = std::path::PathBuf::from("g.yaml");
        let mut f = Findings::new(&path, &doc);
        spec.check(&meta, &mut f);
        let e = f.errors[0].to_string();
        assert!(e.contains("does not accept a retention of 31 days"), "{e}");
        assert!(e.contains("30, 60, 90"), "{e}");
    }

    #[test]
    fn a_service_logging_to_a_log_group_manifest_depends_on_it_and_uses_its_name() {
        let svc = service("{group: backend-logs, streamPrefix: api}");
        let set = load(&[("g.yaml", GROUP), ("s.yaml", &svc)]).unwrap();
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
        let m = &set.services[0];
        let deps = <crate::kinds::service::Unit as Declared>::dependencies(m, &set);
        assert!(
            deps.contains(&(Kind::LogGroup, "backend-logs".to_string())),
            "{deps:?}"
        );
        assert_eq!(aws_name_for(&set, "backend-logs"), "/ecs/backend");
        // Named by its CloudWatch name, the group is just as managed.
        let svc = service("{group: /ecs/backend}");
        let set = load(&[("g.yaml", GROUP), ("s.yaml", &svc)]).unwrap();
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
        let deps = <crate::kinds::service::Unit as Declared>::dependencies(&set.services[0], &set);
        assert!(deps.contains(&(Kind::LogGroup, "backend-logs".to_string())));
        // LogGroup is applied before Service.
        let order = |k: Kind| Kind::ALL.iter().position(|x| *x == k).unwrap();
        assert!(order(Kind::LogGroup) < order(Kind::Service));
    }

    #[test]
    fn logging_to_an_unmanaged_group_without_create_group_is_a_warning() {
        let svc = service("{group: /ecs/elsewhere}");
        let set = load(&[("s.yaml", &svc)]).unwrap();
        assert_eq!(set.warnings.len(), 1, "{:?}", set.warnings);
        let w = set.warnings[0].to_string();
        assert!(w.contains("s.yaml:20:"), "{w}");
        assert!(w.contains("no LogGroup manifest manages the log group `/ecs/elsewhere`"), "{w}");
        let deps = <crate::kinds::service::Unit as Declared>::dependencies(&set.services[0], &set);
        assert!(!deps.iter().any(|(k, _)| *k == Kind::LogGroup));
        let svc = service("{group: /ecs/elsewhere, createGroup: true}");
        let set = load(&[("s.yaml", &svc)]).unwrap();
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    }

    /// moto lacks AssociateKmsKey/DisassociateKmsKey: a key added to an existing group is
    /// shown with canned responses, and nothing else is written.
    #[tokio::test]
    async fn a_new_kms_key_is_associated_in_place() {
        use aws_sdk_cloudwatchlogs::Client;
        use aws_sdk_cloudwatchlogs::operation::associate_kms_key::AssociateKmsKeyOutput;
        use aws_sdk_cloudwatchlogs::operation::describe_log_groups::DescribeLogGroupsOutput;
        use aws_sdk_cloudwatchlogs::operation::list_tags_for_resource::ListTagsForResourceOutput;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        const KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd";
        let with_key = GROUP.replace("  tags:", &format!("  kmsKeyId: {KEY}\n  tags:"));
        let set = load(&[("g.yaml", &with_key)]).unwrap();
        let describe = mock!(Client::describe_log_groups)
            .match_requests(|r| r.log_group_name_prefix() == Some("/ecs/backend"))
            .then_output(|| {
                DescribeLogGroupsOutput::builder()
                    .log_groups(live(Some(30), None, &[]).unwrap().group)
                    .build()
            });
        let tags = mock!(Client::list_tags_for_resource)
            .match_requests(|r| {
                r.resource_arn() == Some("arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/backend")
            })
            .then_output(|| {
                ListTagsForResourceOutput::builder()
                    .set_tags(Some(
                        OWNED
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    ))
                    .build()
            });
        let associate = mock!(Client::associate_kms_key)
            .match_requests(|r| {
                r.log_group_name() == Some("/ecs/backend") && r.kms_key_id() == Some(KEY)
            })
            .then_output(|| AssociateKmsKeyOutput::builder().build());
        let logs = mock_client!(
            aws_sdk_cloudwatchlogs,
            RuleMode::MatchAny,
            [&describe, &tags, &associate]
        );
        // Every other client points at a closed loopback port.
        let config = crate::aws::offline_config();
        let mut aws = crate::aws::Aws::from_config(&config).expect("config");
        aws.logs = logs;
        let ctx = crate::reconcile::Context::new(aws);
        let report = crate::reconcile::apply_all(
            &ctx,
            &set,
            &crate::kinds::reconcilers(&set),
            true,
        )
        .await;
        let r = &report.resources[0];
        assert_eq!(r.action, crate::reconcile::Action::Update, "{r:#?}");
        assert!(r.error().is_none(), "{r:#?}");
        assert_eq!(
            r.changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(),
            ["kmsKeyId"]
        );
        // Any other call (retention, tags, creating) matches no rule and would fail apply.
        assert_eq!(associate.num_calls(), 1);
        assert_eq!(describe.num_calls(), 1);
    }
}
