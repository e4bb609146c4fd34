//! Listener rules: read with one DescribeRules per listener that declares its rules, diffed
//! as a set keyed by priority, written with DeleteRule, SetRulePriorities, ModifyRule and
//! CreateRule. The default rule is the listener's default action: never touched here.
//!
//! A listener that declares `rules:` owns its rule set: a rule at a priority the manifest
//! does not declare (added by hand) is drift, planned as a removal and deleted by apply.
//! The listener belongs to a load balancer mooring owns (the engine refuses others), so
//! these are the only rules mooring ever deletes.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_elasticloadbalancingv2::types::{
    HostHeaderConditionConfig, HttpHeaderConditionConfig, HttpRequestMethodConditionConfig,
    PathPatternConditionConfig, QueryStringConditionConfig, QueryStringKeyValuePair, Rule,
    RuleCondition, RulePriorityPair, SourceIpConditionConfig,
};
use tracing::info;

use super::spec::{ConditionsSpec, QueryStringCondition};
use super::{ConditionsDoc, RuleDoc, elb_action, live_action_doc, settle_action};
use crate::aws::AwsError;
use crate::reconcile::{Cx, ReconcileError};

/// The rules of a listener, the default rule left out.
pub async fn describe(cx: &Cx<'_>, listener_arn: &str) -> Result<Vec<Rule>, ReconcileError> {
    let rules: Vec<Rule> = cx
        .aws()
        .elbv2
        .describe_rules()
        .listener_arn(listener_arn)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DescribeRules", e))?;
    Ok(rules
        .into_iter()
        .filter(|r| r.is_default() != Some(true))
        .collect())
}

fn sorted(values: &[String]) -> Vec<String> {
    let mut v = values.to_vec();
    v.sort();
    v
}

/// The manifest's conditions in the shape plan compares.
pub fn conditions_doc(c: &ConditionsSpec) -> ConditionsDoc {
    let mut query_strings = c.query_strings.clone();
    query_strings.sort();
    ConditionsDoc {
        path_patterns: sorted(&c.path_patterns),
        host_headers: sorted(&c.host_headers),
        http_headers: c
            .http_headers
            .iter()
            .map(|h| (h.name.clone(), sorted(&h.values)))
            .collect(),
        query_strings,
        other: BTreeMap::new(),
    }
}

/// The live conditions: the `…Config` values where ELBv2 gives them, else the legacy
/// `Values` (AWS reports both for path patterns and host headers; moto what was sent).
fn live_conditions(conditions: &[RuleCondition]) -> ConditionsDoc {
    let mut doc = ConditionsDoc::default();
    for c in conditions {
        let or_values = |config: Option<&[String]>| -> Vec<String> {
            match config {
                Some(v) if !v.is_empty() => v.to_vec(),
                _ => c.values().to_vec(),
            }
        };
        match c.field().unwrap_or_default() {
            "path-pattern" => doc.path_patterns.extend(or_values(
                c.path_pattern_config().map(|p| p.values()),
            )),
            "host-header" => doc
                .host_headers
                .extend(or_values(c.host_header_config().map(|h| h.values()))),
            "http-header" => {
                if let Some(h) = c.http_header_config() {
                    doc.http_headers
                        .entry(h.http_header_name().unwrap_or_default().to_string())
                        .or_default()
                        .extend(h.values().iter().cloned());
                }
            }
            "query-string" => doc.query_strings.extend(
                c.query_string_config()
                    .map(|q| q.values())
                    .unwrap_or_default()
                    .iter()
                    .map(|kv| QueryStringCondition {
                        key: kv.key().map(str::to_string),
                        value: kv.value().unwrap_or_default().to_string(),
                    }),
            ),
            other => {
                let values = or_values(
                    c.source_ip_config()
                        .map(|s| s.values())
                        .or_else(|| c.http_request_method_config().map(|m| m.values())),
                );
                doc.other.entry(other.to_string()).or_default().extend(values);
            }
        }
    }
    doc.path_patterns.sort();
    doc.host_headers.sort();
    doc.query_strings.sort();
    for v in doc.http_headers.values_mut().chain(doc.other.values_mut()) {
        v.sort();
    }
    doc
}

/// The live rules by priority.
pub fn live_rules(rules: &[Rule]) -> BTreeMap<u32, RuleDoc> {
    rules
        .iter()
        .filter(|r| r.is_default() != Some(true))
        .filter_map(|r| Some((r.priority()?.parse().ok()?, live_rule(r))))
        .collect()
}

fn live_rule(r: &Rule) -> RuleDoc {
    RuleDoc {
        conditions: live_conditions(r.conditions()),
        action: r.actions().first().map(live_action_doc),
    }
}

/// The conditions in ELBv2's request form (the `…Config` forms, which moto and AWS both
/// take).
pub fn elb_conditions(c: &ConditionsDoc) -> Vec<RuleCondition> {
    let ConditionsDoc {
        path_patterns,
        host_headers,
        http_headers,
        query_strings,
        other,
    } = c;
    let mut out = Vec::new();
    if !path_patterns.is_empty() {
        out.push(
            RuleCondition::builder()
                .field("path-pattern")
                .path_pattern_config(
                    PathPatternConditionConfig::builder()
                        .set_values(Some(path_patterns.clone()))
                        .build(),
                )
                .build(),
        );
    }
    if !host_headers.is_empty() {
        out.push(
            RuleCondition::builder()
                .field("host-header")
                .host_header_config(
                    HostHeaderConditionConfig::builder()
                        .set_values(Some(host_headers.clone()))
                        .build(),
                )
                .build(),
        );
    }
    for (name, values) in http_headers {
        out.push(
            RuleCondition::builder()
                .field("http-header")
                .http_header_config(
                    HttpHeaderConditionConfig::builder()
                        .http_header_name(name)
                        .set_values(Some(values.clone()))
                        .build(),
                )
                .build(),
        );
    }
    if !query_strings.is_empty() {
        out.push(
            RuleCondition::builder()
                .field("query-string")
                .query_string_config(
                    QueryStringConditionConfig::builder()
                        .set_values(Some(
                            query_strings
                                .iter()
                                .map(|q| {
                                    QueryStringKeyValuePair::builder()
                                        .set_key(q.key.clone())
                                        .value(&q.value)
                                        .build()
                                })
                                .collect(),
                        ))
                        .build(),
                )
                .build(),
        );
    }
    // Kept only when `mooring.dev/ignore` hands back what was set outside mooring.
    for (field, values) in other {
        let b = RuleCondition::builder().field(field);
        out.push(match field.as_str() {
            "source-ip" => b
                .source_ip_config(
                    SourceIpConditionConfig::builder()
                        .set_values(Some(values.clone()))
                        .build(),
                )
                .build(),
            "http-request-method" => b
                .http_request_method_config(
                    HttpRequestMethodConditionConfig::builder()
                        .set_values(Some(values.clone()))
                        .build(),
                )
                .build(),
            _ => b.set_values(Some(values.clone())).build(),
        });
    }
    out
}

/// What apply does to a listener's rules, in this order: deletions first (they free
/// priorities), then moves, then in-place modifications, then creations.
#[derive(Debug, Default, PartialEq)]
pub struct RulePlan {
    /// Rule ARNs to delete.
    pub delete: Vec<String>,
    /// (rule ARN, new priority): a live rule that is wanted as it is at another priority.
    pub moves: Vec<(String, u32)>,
    /// (rule ARN, priority) to modify in place.
    pub modify: Vec<(String, u32)>,
    /// Priorities to create.
    pub create: Vec<u32>,
}

/// Matches the live rules (priority → (ARN, document)) with the wanted ones. A move is
/// only planned when neither end is the other end of another move (moto refuses a swap
/// in one SetRulePriorities call); otherwise the rule is deleted and created.
pub fn plan(want: &BTreeMap<u32, RuleDoc>, have: &BTreeMap<u32, (String, RuleDoc)>) -> RulePlan {
    let mut want_left: BTreeMap<u32, &RuleDoc> = want
        .iter()
        .filter(|(p, w)| have.get(p).map(|(_, d)| d) != Some(*w))
        .map(|(p, w)| (*p, w))
        .collect();
    let mut have_left: BTreeMap<u32, &(String, RuleDoc)> = have
        .iter()
        .filter(|(p, (_, d))| want.get(p) != Some(d))
        .map(|(p, h)| (*p, h))
        .collect();
    let mut out = RulePlan::default();
    let mut sources = BTreeSet::new();
    let mut targets = BTreeSet::new();
    for (p, w) in want_left.clone() {
        let found = have_left
            .iter()
            .find(|(q, (_, d))| d == w && !sources.contains(*q) && !targets.contains(*q))
            .map(|(q, _)| *q);
        if let Some(q) = found
            && !sources.contains(&p)
            && let Some((arn, _)) = have_left.remove(&q)
        {
            out.moves.push((arn.clone(), p));
            sources.insert(q);
            targets.insert(p);
            want_left.remove(&p);
        }
    }
    for (p, (arn, _)) in &have_left {
        if want_left.contains_key(p) {
            out.modify.push((arn.clone(), *p));
            want_left.remove(p);
        } else {
            out.delete.push(arn.clone());
        }
    }
    out.create = want_left.into_keys().collect();
    out
}

/// Makes the rules of the listener `listener_arn` those of `want`.
pub async fn apply(
    cx: &Cx<'_>,
    listener_arn: &str,
    want: &BTreeMap<u32, RuleDoc>,
    live: &[Rule],
    target_groups: &BTreeMap<String, String>,
) -> Result<(), ReconcileError> {
    let have: BTreeMap<u32, (String, RuleDoc)> = live
        .iter()
        .filter(|r| r.is_default() != Some(true))
        .filter_map(|r| {
            Some((
                r.priority()?.parse().ok()?,
                (r.rule_arn()?.to_string(), live_rule(r)),
            ))
        })
        .collect();
    let plan = plan(want, &have);
    let elbv2 = &cx.aws().elbv2;
    for arn in &plan.delete {
        elbv2
            .delete_rule()
            .rule_arn(arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DeleteRule", e))?;
        info!(rule = %arn, "deleted listener rule the manifest does not declare");
    }
    if !plan.moves.is_empty() {
        elbv2
            .set_rule_priorities()
            .set_rule_priorities(Some(
                plan.moves
                    .iter()
                    .map(|(arn, p)| {
                        RulePriorityPair::builder()
                            .rule_arn(arn)
                            .priority(i32::try_from(*p).unwrap_or(i32::MAX))
                            .build()
                    })
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticloadbalancing:SetRulePriorities", e))?;
    }
    let request = |p: u32| -> Result<(Vec<RuleCondition>, Option<Vec<_>>), ReconcileError> {
        let rule = &want[&p];
        let mut action = rule.action.clone();
        if let Some(a) = action.as_mut() {
            settle_action(a, target_groups)?;
        }
        Ok((
            elb_conditions(&rule.conditions),
            action.as_ref().and_then(elb_action).map(|a| vec![a]),
        ))
    };
    for (arn, p) in &plan.modify {
        let (conditions, actions) = request(*p)?;
        elbv2
            .modify_rule()
            .rule_arn(arn)
            .set_conditions(Some(conditions))
            .set_actions(actions)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticloadbalancing:ModifyRule", e))?;
    }
    for p in &plan.create {
        let (conditions, actions) = request(*p)?;
        elbv2
            .create_rule()
            .listener_arn(listener_arn)
            .priority(i32::try_from(*p).unwrap_or(i32::MAX))
            .set_conditions(Some(conditions))
            .set_actions(actions)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticloadbalancing:CreateRule", e))?;
    }
    let changed = plan.delete.len() + plan.moves.len() + plan.modify.len() + plan.create.len();
    if changed > 0 {
        info!(listener = %listener_arn, changed, "listener rules in place");
    }
    Ok(())
}

/// Canned responses (aws-smithy-mocks) for what moto cannot show: rules as AWS describes
/// them (`Values` next to the configs, `ForwardConfig` on every forward), and the order of
/// the writes (moto accepts any).
#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_elasticloadbalancingv2::Client;
    use aws_sdk_elasticloadbalancingv2::operation::create_rule::CreateRuleOutput;
    use aws_sdk_elasticloadbalancingv2::operation::delete_rule::DeleteRuleOutput;
    use aws_sdk_elasticloadbalancingv2::operation::describe_rules::DescribeRulesOutput;
    use aws_sdk_elasticloadbalancingv2::operation::modify_rule::ModifyRuleOutput;
    use aws_sdk_elasticloadbalancingv2::operation::set_rule_priorities::SetRulePrioritiesOutput;
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, ForwardActionConfig, TargetGroupStickinessConfig,
        TargetGroupTuple,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::kinds::load_balancer::{ActionDoc, pending_target_group};

    const LISTENER: &str = "arn:aws:elasticloadbalancing:eu-west-1:1:listener/app/edge/1/2";
    const API: &str = "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/api/1";
    const WEB: &str = "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/web/2";

    fn aws_forward(arn: &str) -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(arn)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn(arn)
                            .weight(1)
                            .build(),
                    )
                    .target_group_stickiness_config(
                        TargetGroupStickinessConfig::builder().enabled(false).build(),
                    )
                    .build(),
            )
            .build()
    }

    fn aws_rule(priority: &str, path: &str) -> Rule {
        Rule::builder()
            .rule_arn(format!("{LISTENER}/rule-{priority}"))
            .priority(priority)
            .is_default(priority == "default")
            .conditions(
                RuleCondition::builder()
                    .field("path-pattern")
                    .values(path)
                    .path_pattern_config(PathPatternConditionConfig::builder().values(path).build())
                    .build(),
            )
            .actions(aws_forward(API))
            .build()
    }

    fn want(path: &str, target_group: &str) -> RuleDoc {
        RuleDoc {
            conditions: ConditionsDoc {
                path_patterns: vec![path.into()],
                ..ConditionsDoc::default()
            },
            action: Some(ActionDoc {
                kind: Some("forward".into()),
                target_group_arn: Some(target_group.into()),
                ..ActionDoc::default()
            }),
        }
    }

    #[tokio::test]
    async fn rules_are_read_as_aws_shapes_them_and_written_in_order() {
        let described = mock!(Client::describe_rules)
            .match_requests(|r| r.listener_arn() == Some(LISTENER))
            .then_output(|| {
                DescribeRulesOutput::builder()
                    .rules(aws_rule("default", "*"))
                    .rules(aws_rule("10", "/a"))
                    .rules(aws_rule("20", "/b"))
                    .rules(aws_rule("25", "/c"))
                    .build()
            });
        let calls = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = |c: &Arc<Mutex<Vec<String>>>, what: String| c.lock().unwrap().push(what);
        let (c1, c2, c3, c4) = (calls.clone(), calls.clone(), calls.clone(), calls.clone());
        let delete = mock!(Client::delete_rule)
            .match_requests(move |r| {
                log(&c1, format!("delete {}", r.rule_arn().unwrap_or_default()));
                true
            })
            .then_output(|| DeleteRuleOutput::builder().build());
        let moves = mock!(Client::set_rule_priorities)
            .match_requests(move |r| {
                for p in r.rule_priorities() {
                    log(
                        &c2,
                        format!("move {} to {}", p.rule_arn().unwrap_or_default(), p.priority().unwrap_or_default()),
                    );
                }
                true
            })
            .then_output(|| SetRulePrioritiesOutput::builder().build());
        let modify = mock!(Client::modify_rule)
            .match_requests(move |r| {
                let path = r.conditions()[0].path_pattern_config().unwrap().values().join(",");
                log(&c3, format!("modify {} to {path}", r.rule_arn().unwrap_or_default()));
                true
            })
            .then_output(|| ModifyRuleOutput::builder().build());
        let create = mock!(Client::create_rule)
            .match_requests(move |r| {
                log(
                    &c4,
                    format!(
                        "create {} forwarding to {}",
                        r.priority().unwrap_or_default(),
                        r.actions()[0].target_group_arn().unwrap_or_default()
                    ),
                );
                r.listener_arn() == Some(LISTENER) && r.conditions()[0].values().is_empty()
            })
            .then_output(|| CreateRuleOutput::builder().build());
        let client = mock_client!(
            aws_sdk_elasticloadbalancingv2,
            RuleMode::MatchAny,
            [&described, &delete, &moves, &modify, &create]
        );
        let config = crate::aws::offline_config();
        let mut aws = crate::aws::Aws::from_config(&config).unwrap();
        aws.elbv2 = client;
        let ctx = crate::reconcile::Context::new(aws);
        let set = crate::manifest::load::load_with_stack(&[]).unwrap();
        let cache = crate::reconcile::PassCache::default();
        let cx = Cx {
            ctx: &ctx,
            set: &set,
            cache: &cache,
        };

        let live = describe(&cx, LISTENER).await.unwrap();
        assert_eq!(live.len(), 3, "the default rule is the listener's default action");
        let docs = live_rules(&live);
        assert_eq!(docs[&10], want("/a", API), "AWS's shape normalises to the manifest's");

        // /a moves from 10 to 15, /b changes in place, /c was added by hand, /d is new and
        // forwards to a target group created earlier in this apply.
        let wanted = BTreeMap::from([
            (15, want("/a", API)),
            (20, want("/b2", API)),
            (30, want("/d", &pending_target_group("web"))),
        ]);
        let created = BTreeMap::from([("web".to_string(), WEB.to_string())]);
        apply(&cx, LISTENER, &wanted, &live, &created).await.unwrap();
        assert_eq!(
            *calls.lock().unwrap(),
            [
                format!("delete {LISTENER}/rule-25"),
                format!("move {LISTENER}/rule-10 to 15"),
                format!("modify {LISTENER}/rule-20 to /b2"),
                format!("create 30 forwarding to {WEB}"),
            ]
        );
        assert_eq!(create.num_calls(), 1);
        assert_eq!(described.num_calls(), 1);
    }
}
