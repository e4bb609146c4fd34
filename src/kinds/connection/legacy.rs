//! EventBridge schedules: `Connection`, `ApiDestination` and `Rule`.
//!
//! The API key never leaves Secrets Manager except into EventBridge: a connection records
//! in its description which secret *version* its key came from, so a rotated secret is
//! seen (DescribeSecret, metadata only) without reading any value; the value is read
//! (GetSecretValue) only to create or update the connection, and is never logged, shown
//! in a plan, or kept.
//!
//! moto cannot tag connections or API destinations, so their ownership marker is the
//! description (`managed by mooring: Kind/name`). Rules are tagged like everything else.

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
// Connection

/// Reconciles `kind: Connection` manifests.
pub struct ConnectionReconciler {
    manifests: Vec<Manifest<ConnectionSpec>>,
}

impl ConnectionReconciler {
    /// The reconciler for the set's connections.
    pub fn new(set: &ManifestSet) -> Self {
        ConnectionReconciler {
            manifests: set.connections.clone(),
        }
    }
}

/// The description that records where a connection's key came from.
pub fn connection_description(m: &Manifest<ConnectionSpec>, version: &str) -> String {
    let k = &m.spec.api_key;
    let source = match &k.secret_key {
        Some(key) => format!("{}#{key}", k.secret_id),
        None => k.secret_id.clone(),
    };
    format!(
        "{}; key from {source} version {version}",
        marker(Kind::Connection, m.name())
    )
}

struct ConnectionObserved {
    manifest: Manifest<ConnectionSpec>,
    exists: bool,
    version: String,
}

/// The version of the secret that is current (AWSCURRENT), from metadata only.
async fn current_secret_version(ctx: &Context, arn: &str) -> Result<String, ReconcileError> {
    let out = ctx
        .aws
        .secretsmanager
        .describe_secret()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("secretsmanager:DescribeSecret", e));
    let out = match out {
        Ok(o) => o,
        Err(e) if not_found(&e) => {
            return Err(ReconcileError::Requirement(vec![format!(
                "the API key secret {arn} does not exist: create it in Secrets Manager (mooring never writes it)"
            )]));
        }
        Err(e) => return Err(e.into()),
    };
    out.version_ids_to_stages()
        .and_then(|m| {
            m.iter()
                .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
                .map(|(v, _)| v.clone())
        })
        .ok_or_else(|| {
            ReconcileError::Requirement(vec![format!(
                "the API key secret {arn} has no current version"
            )])
        })
}

/// Reads the API key. The value goes straight into the request and is dropped after it.
async fn api_key_value(
    ctx: &Context,
    m: &Manifest<ConnectionSpec>,
    version: &str,
) -> Result<String, ReconcileError> {
    let k = &m.spec.api_key;
    let out = ctx
        .aws
        .secretsmanager
        .get_secret_value()
        .secret_id(&k.secret_id)
        .version_id(version)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("secretsmanager:GetSecretValue", e))?;
    let raw = out.secret_string().unwrap_or_default();
    let value = match &k.secret_key {
        None => raw.to_string(),
        Some(key) => serde_json::from_str::<Value>(raw)
            .ok()
            .and_then(|v| v.get(key).and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| {
                // Never echo the secret: only say what was expected.
                ReconcileError::Requirement(vec![format!(
                    "the secret {} is not a JSON object with a string field `{key}`",
                    k.secret_id
                )])
            })?,
    };
    if value.is_empty() {
        return Err(ReconcileError::Requirement(vec![format!(
            "the secret {} holds an empty API key",
            k.secret_id
        )]));
    }
    Ok(value)
}

#[async_trait::async_trait]
impl Reconciler for ConnectionReconciler {
    fn kind(&self) -> Kind {
        Kind::Connection
    }

    fn dependencies(&self, _name: &str) -> Vec<(Kind, String)> {
        Vec::new()
    }

    async fn plan(&self, ctx: &Context) -> Vec<(String, Result<Planned, ReconcileError>)> {
        let mut out = Vec::new();
        for m in &self.manifests {
            let name = m.spec.aws_name(&m.metadata);
            let result = async {
                let version = current_secret_version(ctx, &m.spec.api_key.secret_id).await?;
                let live = ctx
                    .aws
                    .eventbridge
                    .describe_connection()
                    .name(name)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("events:DescribeConnection", e));
                let live = match live {
                    Ok(c) => Some(c),
                    Err(e) if not_found(&e) => None,
                    Err(e) => return Err(e.into()),
                };
                if let Some(conflict) = live.as_ref().and_then(|c| {
                    description_conflict(Kind::Connection, &m.metadata, c.description())
                }) {
                    return Err(ReconcileError::Ownership(format!(
                        "connection {name}: {conflict}"
                    )));
                }
                let desired = json!({
                    "authorizationType": "API_KEY",
                    "apiKeyName": m.spec.api_key.header_name,
                    "description": connection_description(m, &version),
                });
                // The key's value is never part of the comparison: EventBridge does not
                // return it, and the description names the secret version it came from.
                let live_doc = live.as_ref().map(|c| {
                    json!({
                        "authorizationType": c.authorization_type().map(|a| a.as_str()),
                        "apiKeyName": c
                            .auth_parameters()
                            .and_then(|a| a.api_key_auth_parameters())
                            .and_then(|k| k.api_key_name()),
                        "description": c.description(),
                    })
                });
                let changes = diff_managed(&m.metadata, &desired, live_doc.as_ref());
                Ok(plan_entry(
                    Kind::Connection,
                    m.name(),
                    live.as_ref()
                        .and_then(|c| c.connection_arn())
                        .unwrap_or(name)
                        .to_string(),
                    live.is_some(),
                    changes,
                    Box::new(ConnectionObserved {
                        manifest: m.clone(),
                        exists: live.is_some(),
                        version,
                    }),
                ))
            }
            .await;
            out.push((m.name().to_string(), result));
        }
        out
    }

    async fn apply(&self, ctx: &Context, planned: &Planned) -> Result<Applied, ReconcileError> {
        let Some(obs) = planned.observed.downcast_ref::<ConnectionObserved>() else {
            return Err(ReconcileError::NotConverged("plan of another kind".into()));
        };
        let m = &obs.manifest;
        let name = m.spec.aws_name(&m.metadata);
        let header = &m.spec.api_key.header_name;
        let description = connection_description(m, &obs.version);
        let key = api_key_value(ctx, m, &obs.version).await?;
        let arn = if obs.exists {
            let out = ctx
                .aws
                .eventbridge
                .update_connection()
                .name(name)
                .description(description)
                .authorization_type(ConnectionAuthorizationType::ApiKey)
                .auth_parameters(
                    UpdateConnectionAuthRequestParameters::builder()
                        .api_key_auth_parameters(
                            UpdateConnectionApiKeyAuthRequestParameters::builder()
                                .api_key_name(header)
                                .api_key_value(key)
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:UpdateConnection", e))?;
            out.connection_arn().unwrap_or_default().to_string()
        } else {
            let params = CreateConnectionApiKeyAuthRequestParameters::builder()
                .api_key_name(header)
                .api_key_value(key)
                .build()
                .map_err(|e| AwsError::invalid_request("events:CreateConnection", e))?;
            let out = ctx
                .aws
                .eventbridge
                .create_connection()
                .name(name)
                .description(description)
                .authorization_type(ConnectionAuthorizationType::ApiKey)
                .auth_parameters(
                    CreateConnectionAuthRequestParameters::builder()
                        .api_key_auth_parameters(params)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:CreateConnection", e))?;
            out.connection_arn().unwrap_or_default().to_string()
        };
        info!(connection = %arn, "connection in place");
        Ok(Applied {
            aws_id: arn,
            rollout: None,
        })
    }
}

// Reads one connection's ARN by name; `None` when it does not exist (yet).
