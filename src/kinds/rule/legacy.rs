//! `kind: Rule`.

pub mod spec;

use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::{
    ConnectionAuthorizationType, CreateConnectionApiKeyAuthRequestParameters,
    CreateConnectionAuthRequestParameters, HttpParameters, RuleState as EbRuleState, Tag,
    Target as EbTarget, UpdateConnectionApiKeyAuthRequestParameters,
    UpdateConnectionAuthRequestParameters,
};
use serde_json::{Value, json};
use tracing::info;

use super::{ADOPT_ANNOTATION, live_tags_doc, tags_doc, tags_to_set, touches};
use crate::aws::{AwsError, ErrorCategory};
use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::schedules::{ApiDestinationSpec, ConnectionSpec, RuleSpec};
use crate::manifest::{Kind, Manifest, ManifestSet, Metadata, owned_tags};
use crate::reconcile::diff::diff_managed;
use crate::reconcile::{
    Action, Applied, Context, Planned, ReconcileError, Reconciler, ResourcePlan,
};

use super::eventbridge::*;

// ---------------------------------------------------------------------------------------
// Rule

/// Reconciles `kind: Rule` manifests.
pub struct RuleReconciler {
    manifests: Vec<Manifest<RuleSpec>>,
    /// `ApiDestination` manifest name → name in EventBridge.
    destinations: BTreeMap<String, String>,
}

impl RuleReconciler {
    /// The reconciler for the set's rules.
    pub fn new(set: &ManifestSet) -> Self {
        RuleReconciler {
            manifests: set.rules.clone(),
            destinations: set
                .api_destinations
                .iter()
                .map(|d| {
                    (
                        d.name().to_string(),
                        d.spec.aws_name(&d.metadata).to_string(),
                    )
                })
                .collect(),
        }
    }

    fn destination_name<'a>(&'a self, m: &'a Manifest<RuleSpec>) -> &'a str {
        let d = &m.spec.target.api_destination;
        self.destinations.get(d).map_or(d.as_str(), String::as_str)
    }
}

fn rule_tags(m: &Manifest<RuleSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::Rule, m.name(), &m.spec.tags)
}

/// A rule's normalised document.
pub fn rule_doc(m: &Manifest<RuleSpec>, destination_arn: &str) -> Value {
    let t = &m.spec.target;
    json!({
        "scheduleExpression": m.spec.schedule_expression,
        "state": m.spec.state.as_str(),
        "description": m.spec.description,
        "target": {
            "arn": destination_arn,
            "roleArn": t.role_arn,
            "input": t.input,
            "headers": t.headers,
        },
        "tags": tags_doc(&rule_tags(m)),
    })
}

struct RuleObserved {
    manifest: Manifest<RuleSpec>,
    arn: Option<String>,
}

#[async_trait::async_trait]
impl Reconciler for RuleReconciler {
    fn kind(&self) -> Kind {
        Kind::Rule
    }

    fn dependencies(&self, name: &str) -> Vec<(Kind, String)> {
        self.manifests
            .iter()
            .filter(|m| m.name() == name)
            .map(|m| (Kind::ApiDestination, m.spec.target.api_destination.clone()))
            .collect()
    }

    async fn plan(&self, ctx: &Context) -> Vec<(String, Result<Planned, ReconcileError>)> {
        let mut out = Vec::new();
        for m in &self.manifests {
            let name = m.spec.aws_name(&m.metadata);
            let result = async {
                let dest = api_destination_arn(ctx, self.destination_name(m))
                    .await?
                    .unwrap_or_else(|| pending(Kind::ApiDestination, &m.spec.target.api_destination));
                let rule = match ctx.aws.eventbridge.describe_rule().name(name).send().await {
                    Ok(r) => Some(r),
                    Err(e) => {
                        let e = AwsError::from_sdk("events:DescribeRule", e);
                        if not_found(&e) { None } else { return Err(e.into()) }
                    }
                };
                let arn = rule.as_ref().and_then(|r| r.arn()).map(str::to_string);
                let live_doc = match &arn {
                    None => None,
                    Some(arn) => {
                        let tags = ctx
                            .aws
                            .eventbridge
                            .list_tags_for_resource()
                            .resource_arn(arn)
                            .send()
                            .await
                            .map_err(|e| AwsError::from_sdk("events:ListTagsForResource", e))?
                            .tags()
                            .to_vec();
                        let owned = super::ownership_conflict(
                            Kind::Rule,
                            &m.metadata,
                            tags.iter().map(|t| (t.key(), t.value())),
                        );
                        if let Some(conflict) = owned {
                            return Err(ReconcileError::Ownership(format!("rule {name}: {conflict}")));
                        }
                        let targets = ctx
                            .aws
                            .eventbridge
                            .list_targets_by_rule()
                            .rule(name)
                            .send()
                            .await
                            .map_err(|e| AwsError::from_sdk("events:ListTargetsByRule", e))?;
                        let target = targets.targets().iter().find(|t| t.id() == TARGET_ID).map(|t| {
                            let headers: BTreeMap<&str, &str> = t
                                .http_parameters()
                                .and_then(|h| h.header_parameters())
                                .map(|h| h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
                                .unwrap_or_default();
                            json!({
                                "arn": t.arn(),
                                "roleArn": t.role_arn(),
                                "input": t.input(),
                                "headers": headers,
                            })
                        });
                        let r = rule.as_ref();
                        Some(json!({
                            "scheduleExpression": r.and_then(|r| r.schedule_expression()),
                            "state": r.and_then(|r| r.state()).map(|s| s.as_str()),
                            "description": r.and_then(|r| r.description()),
                            "target": target,
                            "tags": live_tags_doc(tags.iter().map(|t| (t.key(), t.value())), &rule_tags(m)),
                        }))
                    }
                };
                let changes = diff_managed(&m.metadata, &rule_doc(m, &dest), live_doc.as_ref());
                Ok(plan_entry(
                    Kind::Rule,
                    m.name(),
                    arn.clone().unwrap_or_else(|| name.to_string()),
                    arn.is_some(),
                    changes,
                    Box::new(RuleObserved {
                        manifest: m.clone(),
                        arn,
                    }),
                ))
            }
            .await;
            out.push((m.name().to_string(), result));
        }
        out
    }

    async fn apply(&self, ctx: &Context, planned: &Planned) -> Result<Applied, ReconcileError> {
        let Some(obs) = planned.observed.downcast_ref::<RuleObserved>() else {
            return Err(ReconcileError::NotConverged("plan of another kind".into()));
        };
        let m = &obs.manifest;
        let name = m.spec.aws_name(&m.metadata);
        let changes = &planned.plan.changes;
        let creating = obs.arn.is_none();
        let tag = |(k, v): (&String, &String)| Tag::builder().key(k).value(v).build();
        let mut arn = obs.arn.clone().unwrap_or_default();
        let rule_fields = ["scheduleExpression", "state", "description"];
        if creating || rule_fields.iter().any(|f| touches(changes, f)) {
            let out = ctx
                .aws
                .eventbridge
                .put_rule()
                .name(name)
                .schedule_expression(&m.spec.schedule_expression)
                .state(EbRuleState::from(m.spec.state.as_str()))
                .set_description(m.spec.description.clone())
                // Tags go on at creation; later changes use TagResource.
                .set_tags(
                    creating.then(|| rule_tags(m).iter().filter_map(|kv| tag(kv).ok()).collect()),
                )
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:PutRule", e))?;
            arn = out.rule_arn().unwrap_or_default().to_string();
        }
        if creating || touches(changes, "target") {
            let dest = api_destination_arn(ctx, self.destination_name(m))
                .await?
                .ok_or_else(|| {
                    ReconcileError::Dependency(format!(
                        "ApiDestination/{}",
                        m.spec.target.api_destination
                    ))
                })?;
            let t = &m.spec.target;
            let target = EbTarget::builder()
                .id(TARGET_ID)
                .arn(dest)
                .role_arn(&t.role_arn)
                .set_input(t.input.clone())
                .set_http_parameters((!t.headers.is_empty()).then(|| {
                    HttpParameters::builder()
                        .set_header_parameters(Some(t.headers.clone().into_iter().collect()))
                        .build()
                }))
                .build()
                .map_err(|e| AwsError::invalid_request("events:PutTargets", e))?;
            let out = ctx
                .aws
                .eventbridge
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
        let tags = tags_to_set(changes);
        if !creating && !tags.is_empty() {
            ctx.aws
                .eventbridge
                .tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(tags.iter().filter_map(|kv| tag(kv).ok()).collect()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:TagResource", e))?;
        }
        info!(rule = %name, "rule in place");
        Ok(Applied {
            aws_id: arn,
            rollout: None,
        })
    }
}
