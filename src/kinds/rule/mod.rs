//! `kind: Rule`: a scheduled EventBridge rule calling an API destination or running an ECS
//! task on Fargate. Rules are tagged like everything else.
//!
//! Reads: one ListRules for all rules, then per rule its tags and targets; the API
//! destination's describe is shared with the `ApiDestination` kind. A task target's network
//! lookups are shared with services; its ARNs are built from the account (asked once).
//!
//! One target model: mooring's target (id `mooring`) is an API destination or a task, and
//! its `ecs` parameters are compared only for a task. A task target names the family's ARN
//! without a revision (EventBridge runs the latest ACTIVE one), so deploying the service
//! the family belongs to changes nothing here.
//!
//! mooring owns the targets of a rule it manages: a target added by hand (another id than
//! mooring's) is named by plan as `extraTargets.<id>` and removed — a schedule that also
//! calls something nobody declared is not what git says.

pub mod spec;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_eventbridge::types::{
    AssignPublicIp, AwsVpcConfiguration, EcsParameters, HttpParameters, LaunchType,
    NetworkConfiguration, Rule as EbRule, RuleState as EbRuleState, Tag, Target as EbTarget,
};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::ownership::{Ownership, managed_tags, owned_tags, tags_to_set};
use super::{Change, Resource, eventbridge};
use crate::aws::AwsError;
use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::{Applied, Cx, ReconcileError};
use spec::RuleSpec;

/// The `Rule` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "events:ListRules",
            "events:ListTargetsByRule",
            "events:DescribeApiDestination",
            "events:ListTagsForResource",
            "events:PutRule",
            "events:PutTargets",
            "events:RemoveTargets",
            "events:TagResource",
            "iam:PassRole",
            // A task target: the account for its ARNs, its network lookups.
            "sts:GetCallerIdentity",
            "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeVpcs",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the rule `{}`", m.spec.aws_name(&m.metadata))
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        let t = &m.spec.target;
        let mut out: Vec<Reference> = t
            .api_destination
            .iter()
            .map(|d| Reference::new("/spec/target/apiDestination", Kind::ApiDestination, d))
            .collect();
        if let Some(task) = &t.task {
            out.push(Reference::new("/spec/target/task/cluster", Kind::Cluster, &task.cluster));
            out.extend(
                task.network
                    .security_groups
                    .references("/spec/target/task/network/securityGroups"),
            );
        }
        out
    }

    /// Besides what it names: the `Service` whose family a task target runs (registered
    /// first, so the family exists).
    fn dependencies(m: &Manifest<Self::Spec>, set: &ManifestSet) -> Vec<(Kind, String)> {
        let mut deps: Vec<(Kind, String)> = Self::references(m)
            .into_iter()
            .map(|r| (r.kind, r.name))
            .collect();
        if let Some(svc) = task_service(set, m) {
            deps.push((Kind::Service, svc.name().to_string()));
        }
        deps.sort();
        deps.dedup();
        deps
    }

    /// A task target's `command` needs a container: the service's, or one named.
    fn check_set(m: &Manifest<Self::Spec>, set: &ManifestSet, f: &mut Findings<'_>) {
        if let Some(task) = &m.spec.target.task
            && task.command.is_some()
            && task.container.is_none()
            && task_service(set, m).is_none()
        {
            f.at(
                "/spec/target/task/container",
                format!(
                    "`{}` is not a Service manifest: name the container `command` is for",
                    task.task_definition
                ),
            );
        }
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.rules
            .iter()
            .map(|r| crate::iam::arn("events", &format!("rule/{}", r.spec.aws_name(&r.metadata))))
            .collect()
    }

}


/// A rule in the shape plan compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// `cron(…)` or `rate(…)`.
    pub schedule_expression: String,
    /// `ENABLED` or `DISABLED`.
    pub state: String,
    /// Free text.
    pub description: Option<String>,
    /// The target mooring manages (`None`: the rule has none).
    pub target: Option<TargetDoc>,
    /// Other targets, by id → ARN: none desired, so any is removed.
    pub extra_targets: BTreeMap<String, String>,
    /// Tags the manifest manages.
    pub tags: BTreeMap<String, String>,
}

/// The target a rule calls, as PutTargets sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetDoc {
    /// The API destination's ARN (a placeholder while it is to be created), or the
    /// cluster's for a task.
    pub arn: String,
    /// The role EventBridge assumes.
    pub role_arn: String,
    /// The request body.
    pub input: Option<String>,
    /// Extra HTTP headers.
    pub headers: BTreeMap<String, String>,
    /// The task a task target runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<EcsDoc>,
}

/// A task target's ECS parameters, with EventBridge's defaults filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsDoc {
    /// The family's ARN, without a revision.
    pub task_definition_arn: String,
    /// Tasks per run (EventBridge's default 1).
    pub task_count: i32,
    /// `FARGATE`.
    pub launch_type: String,
    /// Subnet IDs, sorted.
    pub subnets: Vec<String>,
    /// Security group IDs, sorted (placeholders for groups to be created).
    pub security_groups: Vec<String>,
    /// `ENABLED` or `DISABLED` (the default).
    pub assign_public_ip: String,
}

/// One rule as observed.
pub struct Observed {
    /// The live rule; `None` when there is none.
    rule: Option<EbRule>,
    /// Its tags.
    tags: Vec<Tag>,
    /// The target mooring manages, when the rule has it.
    target: Option<EbTarget>,
    /// Its other targets.
    extra_targets: Vec<EbTarget>,
    /// The ARN of the API destination the manifest names, or the placeholder of one not
    /// created yet; the cluster's ARN for a task.
    target_arn: String,
    /// A task target as the manifest wants it, its names resolved.
    ecs: Option<EcsDoc>,
}

/// The `Service` manifest whose family a task target runs, when it names one.
fn task_service<'a>(
    set: &'a ManifestSet,
    m: &Manifest<RuleSpec>,
) -> Option<&'a Manifest<crate::kinds::service::spec::ServiceSpec>> {
    set.service(&m.spec.target.task.as_ref()?.task_definition)
}

/// A task target's ECS parameters and the cluster's ARN, names resolved.
async fn task_target(
    cx: &Cx<'_>,
    m: &Manifest<RuleSpec>,
    task: &spec::TaskTarget,
) -> Result<(String, EcsDoc), ReconcileError> {
    use super::network::{self, Target};
    let aws = cx.aws();
    let ecs_arn = |rest: &str, account: &str| {
        format!("arn:{}:ecs:{}:{account}:{rest}", aws.partition(), aws.region)
    };
    let account = aws.account_id().await?;
    let family = task_service(cx.set, m).map_or(task.task_definition.as_str(), |svc| {
        svc.spec.family(&svc.metadata)
    });
    let cluster = super::service::cluster_name(cx.set, &task.cluster);
    let doc = EcsDoc {
        task_definition_arn: ecs_arn(&format!("task-definition/{family}"), &account),
        task_count: task.count.map_or(1, |c| i32::try_from(c).unwrap_or(i32::MAX)),
        launch_type: "FARGATE".into(),
        subnets: network::resolve(cx, Target::Subnets, &task.network.subnets).await?,
        security_groups: network::resolve(cx, Target::SecurityGroups, &task.network.security_groups)
            .await?,
        assign_public_ip: if task.network.assign_public_ip { "ENABLED" } else { "DISABLED" }.into(),
    };
    Ok((ecs_arn(&format!("cluster/{cluster}"), &account), doc))
}

/// The input a task target sends: its `command` as a container override, else `input`.
fn task_input(set: &ManifestSet, m: &Manifest<RuleSpec>) -> Option<String> {
    let t = &m.spec.target;
    let Some(command) = t.task.as_ref().and_then(|task| task.command.as_ref()) else {
        return t.input.clone();
    };
    let container = t
        .task
        .as_ref()
        .and_then(|task| task.container.clone())
        .or_else(|| task_service(set, m).map(|svc| svc.spec.container_name().to_string()))
        .unwrap_or_default();
    Some(
        serde_json::json!({"containerOverrides": [{"name": container, "command": command}]})
            .to_string(),
    )
}

/// The EventBridge name of the API destination `m` calls.
fn destination_name<'a>(set: &'a ManifestSet, m: &'a Manifest<RuleSpec>) -> &'a str {
    let d = m.spec.target.api_destination.as_deref().unwrap_or_default();
    set.api_destinations
        .iter()
        .find(|a| a.name() == d)
        .map_or(d, |a| a.spec.aws_name(&a.metadata))
}

/// The ARN of the API destination `m` calls; `None` when it does not exist (yet).
async fn destination_arn(
    cx: &Cx<'_>,
    m: &Manifest<RuleSpec>,
) -> Result<Option<String>, AwsError> {
    Ok(eventbridge::api_destination(cx, destination_name(cx.set, m))
        .await?
        .and_then(|d| d.api_destination_arn().map(str::to_string)))
}

fn desired_tags(set: &ManifestSet, m: &Manifest<RuleSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::Rule, set.owner(), m.name(), &m.spec.tags)
}

fn eb_tags(tags: &BTreeMap<String, String>, operation: &'static str) -> Result<Vec<Tag>, AwsError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| AwsError::invalid_request(operation, e))
        })
        .collect()
}

#[async_trait::async_trait]
impl Resource for Unit {
    /// The rules of the default event bus by name.
    type Live = HashMap<String, EbRule>;
    type Observed = Observed;
    type Doc = Doc;

    async fn read(
        cx: &Cx<'_>,
        _manifests: &[Manifest<RuleSpec>],
    ) -> Result<Self::Live, ReconcileError> {
        // One listing instead of a DescribeRule per rule (ListRules returns the same
        // fields). The SDK has no paginator for it.
        let mut rules = HashMap::new();
        let mut token = None;
        loop {
            let page = cx
                .aws()
                .eventbridge
                .list_rules()
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:ListRules", e))?;
            for r in page.rules() {
                if let Some(name) = r.name() {
                    rules.insert(name.to_string(), r.clone());
                }
            }
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        Ok(rules)
    }

    async fn observe(
        cx: &Cx<'_>,
        m: &Manifest<RuleSpec>,
        live: &Self::Live,
    ) -> Result<Observed, ReconcileError> {
        let name = m.spec.aws_name(&m.metadata);
        let (target_arn, ecs) = match (&m.spec.target.task, &m.spec.target.api_destination) {
            (Some(task), _) => {
                let (arn, ecs) = task_target(cx, m, task).await?;
                (arn, Some(ecs))
            }
            (None, d) => {
                let arn = destination_arn(cx, m).await?.unwrap_or_else(|| {
                    eventbridge::pending(Kind::ApiDestination, d.as_deref().unwrap_or_default())
                });
                (arn, None)
            }
        };
        let rule = live.get(name).cloned();
        let (mut tags, mut target, mut extra_targets) = (Vec::new(), None, Vec::new());
        if let Some(arn) = rule.as_ref().and_then(|r| r.arn()) {
            let eb = &cx.aws().eventbridge;
            tags = eb
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:ListTagsForResource", e))?
                .tags
                .unwrap_or_default();
            let (ours, others) = eb
                .list_targets_by_rule()
                .rule(name)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:ListTargetsByRule", e))?
                .targets
                .unwrap_or_default()
                .into_iter()
                .partition::<Vec<_>, _>(|t| t.id() == m.spec.target_id());
            target = ours.into_iter().next();
            extra_targets = others;
        }
        Ok(Observed {
            rule,
            tags,
            target,
            extra_targets,
            target_arn,
            ecs,
        })
    }

    fn ownership(obs: &Observed) -> Option<Ownership> {
        obs.rule.as_ref()?;
        Some(Ownership::from_tags(
            obs.tags.iter().map(|t| (t.key(), t.value())),
        ))
    }

    fn desired(set: &ManifestSet, m: &Manifest<RuleSpec>, obs: &Observed) -> Doc {
        let t = &m.spec.target;
        Doc {
            schedule_expression: m.spec.schedule_expression.clone(),
            state: m.spec.state.as_str().to_string(),
            description: m.spec.description.clone(),
            target: Some(TargetDoc {
                arn: obs.target_arn.clone(),
                role_arn: t.role_arn.clone(),
                input: task_input(set, m),
                headers: t.headers.clone(),
                ecs: obs.ecs.clone(),
            }),
            extra_targets: BTreeMap::new(),
            tags: desired_tags(set, m),
        }
    }

    fn live(set: &ManifestSet, m: &Manifest<RuleSpec>, obs: &Observed) -> Option<Doc> {
        let r = obs.rule.as_ref()?;
        let target = obs.target.as_ref().map(|t| TargetDoc {
            arn: t.arn().to_string(),
            role_arn: t.role_arn().unwrap_or_default().to_string(),
            input: t.input().map(str::to_string),
            headers: t
                .http_parameters()
                .and_then(|h| h.header_parameters())
                .map(|h| h.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            ecs: t.ecs_parameters().map(|e| {
                let vpc = e.network_configuration().and_then(|n| n.awsvpc_configuration());
                let sorted = |ids: &[String]| {
                    let mut ids = ids.to_vec();
                    ids.sort();
                    ids
                };
                EcsDoc {
                    task_definition_arn: e.task_definition_arn().to_string(),
                    task_count: e.task_count().unwrap_or(1),
                    launch_type: e
                        .launch_type()
                        .map_or("(none)", |l| l.as_str())
                        .to_string(),
                    subnets: vpc.map(|v| sorted(v.subnets())).unwrap_or_default(),
                    security_groups: vpc.map(|v| sorted(v.security_groups())).unwrap_or_default(),
                    assign_public_ip: vpc
                        .and_then(|v| v.assign_public_ip())
                        .map_or("DISABLED", |a| a.as_str())
                        .to_string(),
                }
            }),
        });
        Some(Doc {
            schedule_expression: r.schedule_expression().unwrap_or_default().to_string(),
            state: r.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
            description: r.description().map(str::to_string),
            target,
            extra_targets: obs
                .extra_targets
                .iter()
                .map(|t| (t.id().to_string(), t.arn().to_string()))
                .collect(),
            tags: managed_tags(
                obs.tags.iter().map(|t| (t.key(), t.value())),
                &desired_tags(set, m),
            ),
        })
    }

    fn aws_id(_set: &ManifestSet, m: &Manifest<RuleSpec>, obs: &Observed) -> String {
        obs.rule
            .as_ref()
            .and_then(|r| r.arn())
            .unwrap_or(m.spec.aws_name(&m.metadata))
            .to_string()
    }

    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<RuleSpec>,
        obs: &Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        let Doc {
            schedule_expression,
            state,
            description,
            target,
            extra_targets: _,
            tags,
        } = change.desired;
        let name = m.spec.aws_name(&m.metadata);
        let eb = &cx.aws().eventbridge;
        let creating = change.live.is_none();
        let mut arn = obs
            .rule
            .as_ref()
            .and_then(|r| r.arn())
            .unwrap_or_default()
            .to_string();
        if change.differs(|d| &d.schedule_expression)
            || change.differs(|d| &d.state)
            || change.differs(|d| &d.description)
        {
            let out = eb
                .put_rule()
                .name(name)
                .schedule_expression(schedule_expression)
                .state(EbRuleState::from(state.as_str()))
                .set_description(description.clone())
                // Tags go on at creation; later changes use TagResource.
                .set_tags(if creating {
                    Some(eb_tags(tags, "events:PutRule")?)
                } else {
                    None
                })
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:PutRule", e))?;
            arn = out.rule_arn().unwrap_or_default().to_string();
        }
        if let Some(t) = target.as_ref().filter(|_| change.differs(|d| &d.target)) {
            // An API destination plan did not find was to be created earlier in this apply.
            let destination = if eventbridge::is_pending(&t.arn) {
                destination_arn(cx, m).await?.ok_or_else(|| {
                    ReconcileError::Dependency(format!(
                        "ApiDestination/{}",
                        m.spec.target.api_destination.as_deref().unwrap_or_default()
                    ))
                })?
            } else {
                t.arn.clone()
            };
            let ecs = match (&t.ecs, &m.spec.target.task) {
                (Some(e), Some(task)) => Some(ecs_parameters(cx, task, e).await?),
                _ => None,
            };
            let target = EbTarget::builder()
                .id(m.spec.target_id())
                .arn(destination)
                .role_arn(&t.role_arn)
                .set_input(t.input.clone())
                .set_http_parameters((!t.headers.is_empty()).then(|| {
                    HttpParameters::builder()
                        .set_header_parameters(Some(t.headers.clone().into_iter().collect()))
                        .build()
                }))
                .set_ecs_parameters(ecs)
                .build()
                .map_err(|e| AwsError::invalid_request("events:PutTargets", e))?;
            let out = eb
                .put_targets()
                .rule(name)
                .targets(target)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:PutTargets", e))?;
            if out.failed_entry_count() > 0 {
                let why: Vec<String> = out
                    .failed_entries()
                    .iter()
                    .map(|f| f.error_message().unwrap_or("unknown").to_string())
                    .collect();
                return Err(ReconcileError::NotConverged(format!(
                    "PutTargets failed: {}",
                    why.join("; ")
                )));
            }
        }
        if let Some(extra) = change
            .live
            .map(|l| &l.extra_targets)
            .filter(|e| !e.is_empty())
        {
            let out = eb
                .remove_targets()
                .rule(name)
                .set_ids(Some(extra.keys().cloned().collect()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:RemoveTargets", e))?;
            if out.failed_entry_count() > 0 {
                return Err(ReconcileError::NotConverged(format!(
                    "RemoveTargets failed for {} target(s) added by hand",
                    out.failed_entry_count()
                )));
            }
            info!(rule = %name, targets = ?extra.keys().collect::<Vec<_>>(), "removed targets the manifest does not name");
        }
        if let Some(live) = change.live {
            let missing = tags_to_set(tags, Some(&live.tags));
            if !missing.is_empty() {
                eb.tag_resource()
                    .resource_arn(&arn)
                    .set_tags(Some(eb_tags(&missing, "events:TagResource")?))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("events:TagResource", e))?;
            }
        }
        info!(rule = %name, "rule in place");
        Ok(Applied {
            aws_id: arn,
            rollout: None,
        })
    }
}

/// A task target's ECS parameters to send; security groups created earlier in this apply
/// are looked up now.
async fn ecs_parameters(
    cx: &Cx<'_>,
    task: &spec::TaskTarget,
    e: &EcsDoc,
) -> Result<EcsParameters, ReconcileError> {
    let groups =
        super::network::settle(cx, Some(&task.network.security_groups), &e.security_groups)
            .await?;
    let invalid = |err| AwsError::invalid_request("events:PutTargets", err);
    Ok(EcsParameters::builder()
        .task_definition_arn(&e.task_definition_arn)
        .task_count(e.task_count)
        .launch_type(LaunchType::from(e.launch_type.as_str()))
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(
                    AwsVpcConfiguration::builder()
                        .set_subnets(Some(e.subnets.clone()))
                        .set_security_groups(Some(groups))
                        .assign_public_ip(AssignPublicIp::from(e.assign_public_ip.as_str()))
                        .build()
                        .map_err(invalid)?,
                )
                .build(),
        )
        .build()
        .map_err(invalid)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spec::TARGET_ID;
    use crate::manifest::load::load_with_stack;
    use crate::reconcile::diff::diff;

    const MANIFESTS: &str = "apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata: {name: backend}
spec:
  apiKey: {headerName: x-api-key, secretId: prd/backend/api-key}
---
apiVersion: mooring.dev/v1alpha1
kind: ApiDestination
metadata: {name: jobs}
spec:
  apiDestinationName: jobs-prd
  connection: backend
  endpoint: https://api.example.com/jobs
  httpMethod: POST
---
apiVersion: mooring.dev/v1alpha1
kind: Rule
metadata: {name: daily}
spec:
  scheduleExpression: cron(0 8 * * ? *)
  description: Every day
  target:
    apiDestination: jobs
    roleArn: arn:aws:iam::123456789012:role/invoke
    input: '{}'
    headers: {x-source: mooring}
  tags: {team: core}
";

    const DESTINATION: &str = "arn:aws:events:eu-west-1:123456789012:api-destination/jobs-prd/1";

    fn set() -> ManifestSet {
        load_with_stack(&[("r.yaml".into(), MANIFESTS.into())]).unwrap()
    }

    fn tag(k: &str, v: &str) -> Tag {
        Tag::builder().key(k).value(v).build().unwrap()
    }

    fn observed(state: &str, target: bool, stack_tag: bool) -> Observed {
        let rule = EbRule::builder()
            .name("daily")
            .arn("arn:aws:events:eu-west-1:123456789012:rule/daily")
            .schedule_expression("cron(0 8 * * ? *)")
            .state(EbRuleState::from(state))
            .description("Every day")
            .build();
        let mut tags = vec![
            tag("team", "core"),
            tag("cost-center", "42"),
            tag("mooring.dev/managed-by", "mooring"),
            tag("mooring.dev/resource", "Rule/daily"),
        ];
        if stack_tag {
            tags.push(tag("mooring.dev/stack", "test"));
        }
        let target = target.then(|| {
            EbTarget::builder()
                .id(TARGET_ID)
                .arn(DESTINATION)
                .role_arn("arn:aws:iam::123456789012:role/invoke")
                .input("{}")
                .http_parameters(
                    HttpParameters::builder()
                        .header_parameters("x-source", "mooring")
                        .build(),
                )
                .build()
                .unwrap()
        });
        Observed {
            rule: Some(rule),
            tags,
            target,
            extra_targets: Vec::new(),
            target_arn: DESTINATION.into(),
            ecs: None,
        }
    }

    fn changes(set: &ManifestSet, obs: &Observed) -> Vec<String> {
        let m = &set.rules[0];
        let d = serde_json::to_value(Unit::desired(set, m, obs)).unwrap();
        let l = Unit::live(set, m, obs).map(|l| serde_json::to_value(l).unwrap());
        diff(&d, l.as_ref()).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn in_sync_rule_has_no_changes_and_a_disabled_one_is_named() {
        let set = set();
        assert_eq!(destination_name(&set, &set.rules[0]), "jobs-prd");
        assert!(changes(&set, &observed("ENABLED", true, true)).is_empty());
        assert_eq!(changes(&set, &observed("DISABLED", true, true)), ["state"]);
        let obs = observed("ENABLED", true, true);
        assert_eq!(
            Unit::ownership(&obs).and_then(|o| o.name_in("test", Kind::Rule)),
            Some("daily".to_string())
        );
    }

    #[test]
    fn a_missing_target_and_a_missing_stack_tag_are_drift() {
        let set = set();
        let obs = observed("ENABLED", false, false);
        assert_eq!(
            changes(&set, &obs),
            [
                "target.arn",
                "target.roleArn",
                "target.input",
                "target.headers.x-source",
                "tags.mooring.dev/stack"
            ]
        );
        let m = &set.rules[0];
        let desired = Unit::desired(&set, m, &obs);
        let live = Unit::live(&set, m, &obs).unwrap();
        let change = Change {
            desired: &desired,
            live: Some(&live),
            replace: false,
        };
        assert!(change.differs(|d| &d.target));
        assert!(!change.differs(|d| &d.state));
        assert_eq!(
            tags_to_set(&desired.tags, Some(&live.tags)),
            BTreeMap::from([("mooring.dev/stack".to_string(), "test".to_string())])
        );
    }

    const TASK_MANIFESTS: &str = "apiVersion: mooring.dev/v1alpha1
kind: Cluster
metadata: {name: prd}
spec: {clusterName: prd-cluster}
---
apiVersion: mooring.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  cluster: prd
  network: {subnets: {ids: [subnet-1]}, securityGroups: {ids: [sg-1]}}
  taskDefinition:
    family: api-prd
    cpu: 256
    memory: 512
    container: {name: app, image: 'api:1', port: 3000}
---
apiVersion: mooring.dev/v1alpha1
kind: Rule
metadata: {name: nightly}
spec:
  scheduleExpression: cron(0 2 * * ? *)
  target:
    task:
      cluster: prd
      taskDefinition: api
      count: 2
      network: {subnets: {ids: [subnet-2, subnet-1]}, securityGroups: {ids: [sg-1]}}
      command: [npm, run, cleanup]
    roleArn: arn:aws:iam::123456789012:role/run-task
";

    const CLUSTER_ARN: &str = "arn:aws:ecs:eu-west-1:123456789012:cluster/prd-cluster";
    const FAMILY_ARN: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api-prd";

    /// The task target as plan resolves it, and the rule as EventBridge returns it with
    /// `count` tasks and EventBridge's defaults left out (public IP, when unset).
    fn task_observed(count: Option<i32>) -> Observed {
        let ecs = EcsDoc {
            task_definition_arn: FAMILY_ARN.into(),
            task_count: 2,
            launch_type: "FARGATE".into(),
            subnets: vec!["subnet-1".into(), "subnet-2".into()],
            security_groups: vec!["sg-1".into()],
            assign_public_ip: "DISABLED".into(),
        };
        let mut obs = observed("ENABLED", false, true);
        obs.rule = Some(
            EbRule::builder()
                .name("nightly")
                .arn("arn:aws:events:eu-west-1:123456789012:rule/nightly")
                .schedule_expression("cron(0 2 * * ? *)")
                .state(EbRuleState::Enabled)
                .build(),
        );
        obs.tags = vec![
            tag("mooring.dev/managed-by", "mooring"),
            tag("mooring.dev/resource", "Rule/nightly"),
            tag("mooring.dev/stack", "test"),
        ];
        obs.target = Some(
            EbTarget::builder()
                .id(TARGET_ID)
                .arn(CLUSTER_ARN)
                .role_arn("arn:aws:iam::123456789012:role/run-task")
                .input(r#"{"containerOverrides":[{"name":"app","command":["npm","run","cleanup"]}]}"#)
                .ecs_parameters(
                    EcsParameters::builder()
                        .task_definition_arn(FAMILY_ARN)
                        .set_task_count(count)
                        .launch_type(LaunchType::Fargate)
                        .network_configuration(
                            NetworkConfiguration::builder()
                                .awsvpc_configuration(
                                    AwsVpcConfiguration::builder()
                                        .subnets("subnet-2")
                                        .subnets("subnet-1")
                                        .security_groups("sg-1")
                                        .build()
                                        .unwrap(),
                                )
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        );
        obs.target_arn = CLUSTER_ARN.into();
        obs.ecs = Some(ecs);
        obs
    }

    #[test]
    fn a_task_target_is_compared_with_defaults_filled_and_its_count_is_named() {
        let set = load_with_stack(&[("r.yaml".into(), TASK_MANIFESTS.into())]).unwrap();
        let m = &set.rules[0];
        assert_eq!(
            task_input(&set, m).as_deref(),
            Some(r#"{"containerOverrides":[{"name":"app","command":["npm","run","cleanup"]}]}"#),
            "the command goes to the service's container"
        );
        let deps = <Unit as crate::kinds::Declared>::dependencies(m, &set);
        assert_eq!(
            deps,
            [(Kind::Cluster, "prd".to_string()), (Kind::Service, "api".to_string())]
        );
        assert!(changes(&set, &task_observed(Some(2))).is_empty());
        assert_eq!(changes(&set, &task_observed(Some(5))), ["target.ecs.taskCount"]);
        // No count: EventBridge runs one.
        assert_eq!(changes(&set, &task_observed(None)), ["target.ecs.taskCount"]);
        // An API destination target where the task was: every ECS field is named.
        let mut obs = task_observed(Some(2));
        obs.target = observed("ENABLED", true, true).target;
        let fields = changes(&set, &obs);
        assert!(fields.contains(&"target.arn".to_string()), "{fields:?}");
        assert!(fields.contains(&"target.ecs".to_string()) || fields.iter().any(|f| f.starts_with("target.ecs.")), "{fields:?}");
    }

    #[test]
    fn task_targets_are_checked() {
        let errors = |target: &str| -> Vec<String> {
            let doc = TASK_MANIFESTS.replace(
                "  target:\n    task:",
                &format!("  target:\n{target}    task:"),
            );
            match load_with_stack(&[("r.yaml".into(), doc)]) {
                Ok(_) => Vec::new(),
                Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
            }
        };
        assert_eq!(errors(""), Vec::<String>::new());
        let e = errors("    apiDestination: jobs\n");
        assert!(e.iter().any(|e| e.contains("spec.target: set exactly one of `apiDestination` and `task`")), "{e:#?}");
        let e = errors("    input: '{}'\n    headers: {a: b}\n");
        assert!(e.iter().any(|e| e.contains("spec.target.task.command: set `command` or the target's `input`, not both")), "{e:#?}");
        assert!(e.iter().any(|e| e.contains("spec.target.headers: only for an `apiDestination` target")), "{e:#?}");
        let load = |doc: String| -> Vec<String> {
            match load_with_stack(&[("r.yaml".into(), doc)]) {
                Ok(_) => Vec::new(),
                Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
            }
        };
        let e = load(TASK_MANIFESTS.replace("count: 2", "count: 11"));
        assert!(e.iter().any(|e| e.contains("spec.target.task.count: EventBridge starts 1-10 tasks")), "{e:#?}");
        let e = load(TASK_MANIFESTS.replace("taskDefinition: api", "taskDefinition: cleanup-job"));
        assert!(e.iter().any(|e| e.contains("spec.target.task.container: `cleanup-job` is not a Service manifest")), "{e:#?}");
        let doc = TASK_MANIFESTS.replace("      count: 2\n", "      count: 2\n      cpu: 256\n");
        let e: Vec<String> = match load_with_stack(&[("r.yaml".into(), doc)]) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        };
        assert!(e.iter().any(|e| e == "r.yaml:28:7: spec.target.task.cpu: unknown field `cpu` (expected one of: cluster, taskDefinition, count, network, command, container)"), "{e:#?}");
    }
}
