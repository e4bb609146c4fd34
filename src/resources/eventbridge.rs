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
use crate::manifest::schedules::{ApiDestinationSpec, ConnectionSpec, RuleSpec};
use crate::manifest::{Kind, Manifest, ManifestSet, Metadata, owned_tags};
use crate::reconcile::diff::diff_managed;
use crate::reconcile::{
    Action, Applied, Context, Planned, ReconcileError, Reconciler, ResourcePlan,
};

/// Default and maximum invocation rate of an API destination.
const MAX_RATE: u32 = 300;
/// Id of the target mooring manages on a rule.
const TARGET_ID: &str = "mooring";

fn marker(kind: Kind, name: &str) -> String {
    format!("managed by mooring: {kind}/{name}")
}

/// An ownership conflict for resources whose marker is their description.
fn description_conflict(kind: Kind, meta: &Metadata, description: Option<&str>) -> Option<String> {
    if meta.annotations.get(ADOPT_ANNOTATION).map(String::as_str) == Some("true") {
        return None;
    }
    let mine = marker(kind, &meta.name);
    match description {
        Some(d) if d == mine || d.starts_with(&format!("{mine};")) => None,
        _ => Some(format!(
            "it exists but its description does not say `{mine}`; set the annotation `{ADOPT_ANNOTATION}: \"true\"` to manage it"
        )),
    }
}

fn not_found(e: &AwsError) -> bool {
    e.category == ErrorCategory::NotFound
}

fn plan_entry(
    kind: Kind,
    name: &str,
    aws_id: String,
    exists: bool,
    changes: Vec<crate::reconcile::FieldChange>,
    observed: Box<dyn std::any::Any + Send + Sync>,
) -> Planned {
    let action = match (exists, changes.is_empty()) {
        (false, _) => Action::Create,
        (true, true) => Action::None,
        (true, false) => Action::Update,
    };
    Planned {
        plan: ResourcePlan {
            kind,
            name: name.to_string(),
            aws_id,
            action,
            changes,
            rollout: None,
            problems: Vec::new(),
        },
        observed,
    }
}

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
async fn connection_arn(ctx: &Context, name: &str) -> Result<Option<String>, AwsError> {
    match ctx
        .aws
        .eventbridge
        .describe_connection()
        .name(name)
        .send()
        .await
    {
        Ok(c) => Ok(c.connection_arn().map(str::to_string)),
        Err(e) => {
            let e = AwsError::from_sdk("events:DescribeConnection", e);
            if not_found(&e) { Ok(None) } else { Err(e) }
        }
    }
}

// Reads one API destination's ARN by name; `None` when it does not exist (yet).
async fn api_destination_arn(ctx: &Context, name: &str) -> Result<Option<String>, AwsError> {
    match ctx
        .aws
        .eventbridge
        .describe_api_destination()
        .name(name)
        .send()
        .await
    {
        Ok(d) => Ok(d.api_destination_arn().map(str::to_string)),
        Err(e) => {
            let e = AwsError::from_sdk("events:DescribeApiDestination", e);
            if not_found(&e) { Ok(None) } else { Err(e) }
        }
    }
}

fn pending(kind: Kind, name: &str) -> String {
    format!("(ARN of {kind}/{name}, once created)")
}

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
