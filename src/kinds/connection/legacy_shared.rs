//! What the three EventBridge kinds share: the ownership marker in descriptions (moto
//! cannot tag connections or API destinations) and ARN lookups by name.

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
