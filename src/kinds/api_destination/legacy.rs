//! `kind: ApiDestination`.

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
// ApiDestination

/// Reconciles `kind: ApiDestination` manifests.
pub struct ApiDestinationReconciler {
    manifests: Vec<Manifest<ApiDestinationSpec>>,
    /// `Connection` manifest name → connection name in EventBridge.
    connections: BTreeMap<String, String>,
}

impl ApiDestinationReconciler {
    /// The reconciler for the set's API destinations.
    pub fn new(set: &ManifestSet) -> Self {
        ApiDestinationReconciler {
            manifests: set.api_destinations.clone(),
            connections: set
                .connections
                .iter()
                .map(|c| {
                    (
                        c.name().to_string(),
                        c.spec.aws_name(&c.metadata).to_string(),
                    )
                })
                .collect(),
        }
    }

    fn connection_name<'a>(&'a self, m: &'a Manifest<ApiDestinationSpec>) -> &'a str {
        self.connections
            .get(&m.spec.connection)
            .map_or(m.spec.connection.as_str(), String::as_str)
    }
}

/// An API destination's normalised document.
pub fn api_destination_doc(m: &Manifest<ApiDestinationSpec>, connection_arn: &str) -> Value {
    json!({
        "connectionArn": connection_arn,
        "endpoint": m.spec.endpoint,
        "httpMethod": m.spec.http_method.as_str(),
        "invocationRateLimitPerSecond": m.spec.invocation_rate_limit_per_second.unwrap_or(MAX_RATE),
        "description": marker(Kind::ApiDestination, m.name()),
    })
}

struct DestinationObserved {
    manifest: Manifest<ApiDestinationSpec>,
    exists: bool,
}

#[async_trait::async_trait]
impl Reconciler for ApiDestinationReconciler {
    fn kind(&self) -> Kind {
        Kind::ApiDestination
    }

    fn dependencies(&self, name: &str) -> Vec<(Kind, String)> {
        self.manifests
            .iter()
            .filter(|m| m.name() == name)
            .map(|m| (Kind::Connection, m.spec.connection.clone()))
            .collect()
    }

    async fn plan(&self, ctx: &Context) -> Vec<(String, Result<Planned, ReconcileError>)> {
        let mut out = Vec::new();
        for m in &self.manifests {
            let name = m.spec.aws_name(&m.metadata);
            let result = async {
                let conn = connection_arn(ctx, self.connection_name(m))
                    .await?
                    .unwrap_or_else(|| pending(Kind::Connection, &m.spec.connection));
                let live = match ctx
                    .aws
                    .eventbridge
                    .describe_api_destination()
                    .name(name)
                    .send()
                    .await
                {
                    Ok(d) => Some(d),
                    Err(e) => {
                        let e = AwsError::from_sdk("events:DescribeApiDestination", e);
                        if not_found(&e) {
                            None
                        } else {
                            return Err(e.into());
                        }
                    }
                };
                if let Some(conflict) = live.as_ref().and_then(|d| {
                    description_conflict(Kind::ApiDestination, &m.metadata, d.description())
                }) {
                    return Err(ReconcileError::Ownership(format!(
                        "API destination {name}: {conflict}"
                    )));
                }
                let live_doc = live.as_ref().map(|d| {
                    json!({
                        "connectionArn": d.connection_arn(),
                        "endpoint": d.invocation_endpoint(),
                        "httpMethod": d.http_method().map(|h| h.as_str()),
                        "invocationRateLimitPerSecond": d.invocation_rate_limit_per_second(),
                        "description": d.description(),
                    })
                });
                let changes = diff_managed(
                    &m.metadata,
                    &api_destination_doc(m, &conn),
                    live_doc.as_ref(),
                );
                Ok(plan_entry(
                    Kind::ApiDestination,
                    m.name(),
                    live.as_ref()
                        .and_then(|d| d.api_destination_arn())
                        .unwrap_or(name)
                        .to_string(),
                    live.is_some(),
                    changes,
                    Box::new(DestinationObserved {
                        manifest: m.clone(),
                        exists: live.is_some(),
                    }),
                ))
            }
            .await;
            out.push((m.name().to_string(), result));
        }
        out
    }

    async fn apply(&self, ctx: &Context, planned: &Planned) -> Result<Applied, ReconcileError> {
        let Some(obs) = planned.observed.downcast_ref::<DestinationObserved>() else {
            return Err(ReconcileError::NotConverged("plan of another kind".into()));
        };
        let m = &obs.manifest;
        let name = m.spec.aws_name(&m.metadata);
        let conn = connection_arn(ctx, self.connection_name(m))
            .await?
            .ok_or_else(|| {
                ReconcileError::Dependency(format!("Connection/{}", m.spec.connection))
            })?;
        let method =
            aws_sdk_eventbridge::types::ApiDestinationHttpMethod::from(m.spec.http_method.as_str());
        let rate = i32::try_from(m.spec.invocation_rate_limit_per_second.unwrap_or(MAX_RATE))
            .unwrap_or(300);
        let description = marker(Kind::ApiDestination, m.name());
        let arn = if obs.exists {
            ctx.aws
                .eventbridge
                .update_api_destination()
                .name(name)
                .description(description)
                .connection_arn(conn)
                .invocation_endpoint(&m.spec.endpoint)
                .http_method(method)
                .invocation_rate_limit_per_second(rate)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:UpdateApiDestination", e))?
                .api_destination_arn()
                .unwrap_or_default()
                .to_string()
        } else {
            ctx.aws
                .eventbridge
                .create_api_destination()
                .name(name)
                .description(description)
                .connection_arn(conn)
                .invocation_endpoint(&m.spec.endpoint)
                .http_method(method)
                .invocation_rate_limit_per_second(rate)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:CreateApiDestination", e))?
                .api_destination_arn()
                .unwrap_or_default()
                .to_string()
        };
        info!(api_destination = %arn, "API destination in place");
        Ok(Applied {
            aws_id: arn,
            rollout: None,
        })
    }
}

