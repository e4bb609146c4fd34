//! `kind: Rule`: a scheduled EventBridge rule calling an API destination. Rules are tagged
//! like everything else.
//!
//! Reads: one ListRules for all rules, then per rule its tags and targets; the API
//! destination's describe is shared with the `ApiDestination` kind.
//!
//! mooring owns the targets of a rule it manages: a target added by hand (another id than
//! mooring's) is named by plan as `extraTargets.<id>` and removed — a schedule that also
//! calls something nobody declared is not what git says.

pub mod spec;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_eventbridge::types::{
    HttpParameters, Rule as EbRule, RuleState as EbRuleState, Tag, Target as EbTarget,
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

/// The API destination a rule calls, as PutTargets sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetDoc {
    /// The API destination's ARN (a placeholder while it is to be created).
    pub arn: String,
    /// The role EventBridge assumes.
    pub role_arn: String,
    /// The request body.
    pub input: Option<String>,
    /// Extra HTTP headers.
    pub headers: BTreeMap<String, String>,
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
    /// created yet.
    destination_arn: String,
}

/// The EventBridge name of the API destination `m` calls.
fn destination_name<'a>(set: &'a ManifestSet, m: &'a Manifest<RuleSpec>) -> &'a str {
    let d = &m.spec.target.api_destination;
    set.api_destinations
        .iter()
        .find(|a| a.name() == *d)
        .map_or(d.as_str(), |a| a.spec.aws_name(&a.metadata))
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
        let destination_arn = destination_arn(cx, m).await?.unwrap_or_else(|| {
            eventbridge::pending(Kind::ApiDestination, &m.spec.target.api_destination)
        });
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
            destination_arn,
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
                arn: obs.destination_arn.clone(),
                role_arn: t.role_arn.clone(),
                input: t.input.clone(),
                headers: t.headers.clone(),
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
                        m.spec.target.api_destination
                    ))
                })?
            } else {
                t.arn.clone()
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
            destination_arn: DESTINATION.into(),
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
}
