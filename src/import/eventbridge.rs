//! EventBridge schedules picked by a CloudFormation stack or a tag: each scheduled rule of
//! the default event bus with its API destination target, that destination and its
//! connection (`schedules.yaml`). The rule's target names the `ApiDestination` manifest,
//! which names the `Connection` manifest; the rule keeps its target's live ID (`target.id`)
//! so adopting it does not replace the target.
//!
//! A connection's API key is never readable from AWS, and import never reads one from
//! anywhere: the `Connection` is written without `apiKey.secretId`, which the kind takes as
//! "the key is left as it is" (adopting it writes only its ownership marker, and no secret
//! is read or key sent). A note says how to hand the key to mooring.
//!
//! The `--cluster` path does not follow services to schedules (a rule names an endpoint,
//! not a service): pick them by tag or stack.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_eventbridge::types::{ConnectionAuthorizationType, Target};
use serde_json::json;

use super::{Ctx, Imported, Names, read_failed, user_tags};
use crate::aws::{AwsError, ErrorCategory};
use crate::kinds::rule::spec::TARGET_ID;

/// What the rules picked came to.
#[derive(Default)]
pub(crate) struct Read {
    /// Connections, then API destinations, then rules.
    pub docs: Vec<Imported>,
    /// The names of the API destinations and connections imported (what a stack or a tag
    /// may list on its own).
    pub imported: BTreeSet<String>,
    /// `what` → why.
    pub left_out: BTreeMap<String, String>,
}

/// The ownership a description marker stands for (connections and API destinations carry
/// their owner in their description) as the tags [`Names::take_owned`] and
/// [`Names::refuse`] read.
fn marker_tags(own: &crate::kinds::ownership::Ownership) -> Vec<(&'static str, &str)> {
    [
        (crate::manifest::TAG_STACK, own.stack.as_deref()),
        (
            crate::manifest::annotations::TAG_ENVIRONMENT,
            own.environment.as_deref(),
        ),
        (crate::manifest::TAG_RESOURCE, own.resource.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect()
}

/// A connection's authorization as a manifest writes it: the field (`apiKey`, `basic`,
/// `oauth`), what its secret part is, and its non-secret part; `None` when AWS says no more
/// than the type (or a type the kind does not send).
fn authorization(
    c: &aws_sdk_eventbridge::operation::describe_connection::DescribeConnectionOutput,
) -> Option<(&'static str, &'static str, serde_json::Value)> {
    let params = c.auth_parameters()?;
    match c.authorization_type()? {
        ConnectionAuthorizationType::ApiKey => {
            let header = params.api_key_auth_parameters()?.api_key_name()?;
            Some(("apiKey", "API key", json!({"headerName": header})))
        }
        ConnectionAuthorizationType::Basic => {
            let username = params.basic_auth_parameters()?.username()?;
            Some(("basic", "password", json!({"username": username})))
        }
        ConnectionAuthorizationType::OauthClientCredentials => {
            let o = params.o_auth_parameters()?;
            let mut oauth = json!({
                "authorizationEndpoint": o.authorization_endpoint()?,
                "httpMethod": o.http_method()?.as_str(),
                "clientId": o.client_parameters()?.client_id()?,
            });
            let body: serde_json::Map<String, serde_json::Value> = o
                .o_auth_http_parameters()
                .map(|h| h.body_parameters())
                .unwrap_or_default()
                .iter()
                .filter(|p| !p.is_value_secret())
                .filter_map(|p| Some((p.key()?.to_string(), json!(p.value()?))))
                .collect();
            if !body.is_empty() {
                oauth["bodyParameters"] = serde_json::Value::Object(body);
            }
            Some(("oauth", "client secret", oauth))
        }
        _ => None,
    }
}

/// The secret (and JSON field) a connection mooring set up says its key came from: its
/// description's `key from SECRET[#FIELD] version V`. Never the key.
fn key_source(description: Option<&str>) -> Option<(String, Option<String>)> {
    let d = description?;
    crate::kinds::ownership::from_marker(Some(d)).resource?;
    let from = d.split_once("; key from ")?.1;
    let from = from.split_once("; set at ").map_or(from, |(f, _)| f);
    let (source, _version) = from.rsplit_once(" version ")?;
    Some(match source.split_once('#') {
        Some((id, key)) => (id.to_string(), Some(key.to_string())),
        None => (source.to_string(), None),
    })
}

/// The name in an EventBridge ARN: `…:api-destination/NAME/UUID` → `NAME`.
fn name_of(arn: &str) -> &str {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or(arn);
    resource.split('/').nth(1).unwrap_or(resource)
}

/// Reads the rules `rules` (names; `BUS|NAME` for another bus, as CloudFormation lists them).
pub(crate) async fn read(
    cx: &Ctx<'_>,
    rules: &BTreeSet<String>,
    names: &mut Names,
) -> Result<Read, String> {
    let mut out = Read::default();
    let eb = &cx.aws.eventbridge;
    // By ARN: the manifest name and the document.
    let mut connections: BTreeMap<String, (String, Imported)> = BTreeMap::new();
    let mut destinations: BTreeMap<String, (String, Imported)> = BTreeMap::new();
    let mut rule_docs = Vec::new();
    for id in rules {
        let what = format!("rule {id}");
        if id.contains('|') {
            out.left_out.insert(
                what,
                "on another event bus than `default` (the Rule kind's)".into(),
            );
            continue;
        }
        let rule = match eb.describe_rule().name(id).send().await {
            Ok(r) => r,
            Err(e) => {
                let e = AwsError::from_sdk("events:DescribeRule", e);
                if e.category == ErrorCategory::NotFound {
                    out.left_out.insert(what, "it does not exist".into());
                    continue;
                }
                return Err(format!("failed to read rule `{id}`: {e}"));
            }
        };
        let Some(schedule) = rule.schedule_expression() else {
            out.left_out.insert(
                what,
                "it matches an event pattern: the Rule kind is for schedules".into(),
            );
            continue;
        };
        let arn = rule.arn().unwrap_or(id).to_string();
        let mut targets = eb
            .list_targets_by_rule()
            .rule(id)
            .send()
            .await
            .map_err(|e| {
                read_failed(
                    format!("the targets of rule `{id}`"),
                    "events:ListTargetsByRule",
                    e,
                )
            })?
            .targets
            .unwrap_or_default();
        targets.sort_by(|a, b| a.id().cmp(b.id()));
        let (calls, others): (Vec<Target>, Vec<Target>) = targets
            .into_iter()
            .partition(|t| t.arn().contains(":api-destination/") && t.role_arn().is_some());
        let Some(target) = calls.first() else {
            let why = if others.is_empty() {
                "it has no target".to_string()
            } else {
                format!(
                    "no target is an API destination (with a role): {}",
                    others
                        .iter()
                        .map(Target::arn)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            out.left_out.insert(what, why);
            continue;
        };
        let tags: Vec<(String, String)> = eb
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(|e| {
                read_failed(
                    format!("the tags of rule `{id}`"),
                    "events:ListTagsForResource",
                    e,
                )
            })?
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        // Another stack's or environment's rule is left out, with its destination.
        if names.refuse(
            "rule",
            id,
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ) {
            continue;
        }
        // The API destination and its connection, once each.
        let dest_arn = target.arn().to_string();
        if !destinations.contains_key(&dest_arn) {
            match destination(cx, &dest_arn, &mut connections, names, &mut out).await? {
                Some(d) => {
                    destinations.insert(dest_arn.clone(), d);
                }
                None => {
                    out.left_out
                        .insert(what, "its API destination cannot be imported".into());
                    continue;
                }
            }
        }
        let Some((dest_manifest, _)) = destinations.get(&dest_arn) else {
            continue;
        };
        let mut cannot = Vec::new();
        for t in calls.iter().skip(1).chain(&others) {
            cannot.push(format!(
                "target {}: {} (a Rule manifest calls one API destination; apply removes the others)",
                t.id(),
                t.arn()
            ));
        }
        if target.input_path().is_some() || target.input_transformer().is_some() {
            cannot.push("target.inputPath/inputTransformer (only a fixed `input`)".into());
        }
        let http = target.http_parameters();
        if http.is_some_and(|h| {
            !h.path_parameter_values().is_empty()
                || h.query_string_parameters().is_some_and(|q| !q.is_empty())
        }) {
            cannot.push("target.httpParameters path or query string parameters".into());
        }
        if target.dead_letter_config().is_some() || target.retry_policy().is_some() {
            cannot.push("target.deadLetterConfig/retryPolicy".into());
        }
        let headers: BTreeMap<&str, &str> = http
            .and_then(|h| h.header_parameters())
            .map(|h| h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
            .unwrap_or_default();
        let spec = json!({
            "ruleName": id,
            "scheduleExpression": schedule,
            "state": rule.state().map(|s| s.as_str()).filter(|s| *s != "ENABLED"),
            "description": rule.description().filter(|d| !d.is_empty()),
            "target": {
                "id": (target.id() != TARGET_ID).then(|| target.id()),
                "apiDestination": dest_manifest,
                "roleArn": target.role_arn(),
                "input": target.input(),
                "headers": headers,
            },
            "tags": user_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        });
        let manifest = names.take_owned(
            "Rule",
            id,
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let mut doc = Imported::new("Rule", manifest, arn, spec);
        doc.cannot_carry = cannot;
        rule_docs.push(doc);
    }
    for (arn, (_, doc)) in connections {
        out.imported.insert(name_of(&arn).to_string());
        out.docs.push(doc);
    }
    for (arn, (_, doc)) in destinations {
        out.imported.insert(name_of(&arn).to_string());
        out.docs.push(doc);
    }
    out.docs.extend(rule_docs);
    Ok(out)
}

/// The API destination `arn` as a manifest, with its connection (added to `connections`);
/// `None`, with why in `out.left_out`, when it cannot be written.
async fn destination(
    cx: &Ctx<'_>,
    arn: &str,
    connections: &mut BTreeMap<String, (String, Imported)>,
    names: &mut Names,
    out: &mut Read,
) -> Result<Option<(String, Imported)>, String> {
    let eb = &cx.aws.eventbridge;
    let name = name_of(arn);
    let d = eb
        .describe_api_destination()
        .name(name)
        .send()
        .await
        .map_err(|e| {
            read_failed(
                format!("API destination `{name}`"),
                "events:DescribeApiDestination",
                e,
            )
        })?;
    let conn_arn = d.connection_arn().unwrap_or_default().to_string();
    if !connections.contains_key(&conn_arn) {
        let conn_name = name_of(&conn_arn);
        let c = eb
            .describe_connection()
            .name(conn_name)
            .send()
            .await
            .map_err(|e| {
                read_failed(
                    format!("connection `{conn_name}`"),
                    "events:DescribeConnection",
                    e,
                )
            })?;
        let Some((field, what, auth)) = authorization(&c) else {
            out.left_out.insert(
                format!("API destination {name} and connection {conn_name}"),
                format!(
                    "the connection authorizes with {} and says no more (the Connection kind sends an API key, basic or OAuth client credentials)",
                    c.authorization_type().map_or("nothing", |a| a.as_str())
                ),
            );
            return Ok(None);
        };
        let own = crate::kinds::ownership::from_marker(c.description());
        if names.refuse("connection", conn_name, marker_tags(&own)) {
            return Ok(None);
        }
        let manifest = names.take_owned("Connection", conn_name, marker_tags(&own));
        // Never `secretId` from the description: anyone allowed to update the connection
        // writes it, and the next apply would send that secret's value to the endpoint.
        let mut spec = json!({"connectionName": conn_name});
        spec[field] = auth;
        let mut doc = Imported::new("Connection", manifest.clone(), conn_arn.clone(), spec);
        doc.notes.push(format!(
            "EventBridge never returns the {what}, and import reads none: without `{field}.secretId` mooring leaves it as it is and never sends one, nor the rest of the authorization (EventBridge takes it whole; a difference is reported, not repaired). To have mooring set it, set `{field}.secretId` to the Secrets Manager secret holding the {what} (the next apply sends that secret's value)"
        ));
        // What a manifest cannot say (secret body parameters, header, query and invocation
        // parameters), any update would remove: the connection is watched, never written.
        doc.cannot_carry
            .extend(crate::kinds::connection::unsayable(&c));
        // A connection mooring set up says in its description which secret its key came
        // from: shown as a hint to check, not trusted.
        if let Some((id, key)) = key_source(c.description()) {
            let field = key.map_or(String::new(), |k| format!(" (field `{k}`)"));
            doc.notes.push(format!(
                "its description says the key came from the secret `{id}`{field}; import does not take that from the description (anyone allowed to update the connection writes it): check it before naming it"
            ));
        }
        // Said every time (not only while the description is someone else's), so that
        // importing again after the adoption gives the same bytes.
        doc.notes.push(
            "its description is mooring's ownership marker (EventBridge cannot tag connections): adopting it replaces the one it has".into(),
        );
        connections.insert(conn_arn.clone(), (manifest, doc));
    }
    let connection = connections
        .get(&conn_arn)
        .map(|(m, _)| m.clone())
        .unwrap_or_default();
    let own = crate::kinds::ownership::from_marker(d.description());
    if names.refuse("API destination", name, marker_tags(&own)) {
        return Ok(None);
    }
    let manifest = names.take_owned("ApiDestination", name, marker_tags(&own));
    let rate = d.invocation_rate_limit_per_second().filter(|r| *r != 300);
    let spec = json!({
        "apiDestinationName": name,
        "connection": connection,
        "endpoint": d.invocation_endpoint(),
        "httpMethod": d.http_method().map(|m| m.as_str()),
        "invocationRateLimitPerSecond": rate,
    });
    let mut doc = Imported::new(
        "ApiDestination",
        manifest.clone(),
        d.api_destination_arn().unwrap_or(arn).to_string(),
        spec,
    );
    doc.notes.push(
        "its description is mooring's ownership marker (EventBridge cannot tag API destinations): adopting it replaces the one it has".into(),
    );
    Ok(Some((manifest, doc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_eventbridge_arns() {
        assert_eq!(
            name_of("arn:aws:events:us-east-1:1:api-destination/reset-queue/0a1b"),
            "reset-queue"
        );
        assert_eq!(
            name_of("arn:aws:events:us-east-1:1:connection/backend-api/9f8e"),
            "backend-api"
        );
        assert_eq!(name_of("arn:aws:events:us-east-1:1:rule/daily"), "daily");
    }

    /// Basic and OAuth connections import like API-key ones: what AWS returns is written,
    /// no secret is, and the manifest written loads as the kind's own spec.
    #[test]
    fn basic_and_oauth_connections_import_without_their_secrets() {
        use aws_sdk_eventbridge::operation::describe_connection::DescribeConnectionOutput;
        use aws_sdk_eventbridge::types::{
            ConnectionAuthResponseParameters, ConnectionBasicAuthResponseParameters,
            ConnectionBodyParameter, ConnectionHttpParameters,
            ConnectionOAuthClientResponseParameters, ConnectionOAuthHttpMethod,
            ConnectionOAuthResponseParameters,
        };
        let basic = DescribeConnectionOutput::builder()
            .authorization_type(ConnectionAuthorizationType::Basic)
            .auth_parameters(
                ConnectionAuthResponseParameters::builder()
                    .basic_auth_parameters(
                        ConnectionBasicAuthResponseParameters::builder()
                            .username("scheduler")
                            .build(),
                    )
                    .build(),
            )
            .build();
        let (field, what, spec) = authorization(&basic).unwrap();
        assert_eq!((field, what), ("basic", "password"));
        assert_eq!(spec, json!({"username": "scheduler"}));
        let param = |k: &str, v: Option<&str>, secret: bool| {
            ConnectionBodyParameter::builder()
                .key(k)
                .set_value(v.map(str::to_string))
                .is_value_secret(secret)
                .build()
        };
        let oauth = DescribeConnectionOutput::builder()
            .authorization_type(ConnectionAuthorizationType::OauthClientCredentials)
            .auth_parameters(
                ConnectionAuthResponseParameters::builder()
                    .o_auth_parameters(
                        ConnectionOAuthResponseParameters::builder()
                            .authorization_endpoint("https://auth.example.com/oauth/token")
                            .http_method(ConnectionOAuthHttpMethod::Post)
                            .client_parameters(
                                ConnectionOAuthClientResponseParameters::builder()
                                    .client_id("salon-scheduler")
                                    .build(),
                            )
                            .o_auth_http_parameters(
                                ConnectionHttpParameters::builder()
                                    .body_parameters(param("scope", Some("queues:reset"), false))
                                    .body_parameters(param("audience-key", None, true))
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build();
        let (field, what, spec) = authorization(&oauth).unwrap();
        assert_eq!((field, what), ("oauth", "client secret"));
        assert_eq!(
            spec,
            json!({
                "authorizationEndpoint": "https://auth.example.com/oauth/token",
                "httpMethod": "POST",
                "clientId": "salon-scheduler",
                "bodyParameters": {"scope": "queues:reset"},
            })
        );
        let parsed: crate::kinds::connection::spec::ConnectionSpec =
            serde_json::from_value(json!({"connectionName": "backend", "oauth": spec})).unwrap();
        assert_eq!(
            parsed.auth().authorization_type(),
            "OAUTH_CLIENT_CREDENTIALS"
        );
        // The type alone (no parameters) says too little to write.
        let bare = DescribeConnectionOutput::builder()
            .authorization_type(ConnectionAuthorizationType::Basic)
            .build();
        assert!(authorization(&bare).is_none());
    }

    #[test]
    fn a_connection_mooring_set_up_names_its_secret_and_manifest() {
        let d = "managed by mooring: salon/Connection/backend-api; key from salon/prd/key#value version v1; set at 2026-12-02T10:00:00Z";
        assert_eq!(
            key_source(Some(d)),
            Some(("salon/prd/key".to_string(), Some("value".to_string())))
        );
        let own = crate::kinds::ownership::from_marker(Some(d));
        assert_eq!(
            marker_tags(&own),
            [
                ("mooring.dev/stack", "salon"),
                ("mooring.dev/resource", "Connection/backend-api")
            ]
        );
        assert_eq!(key_source(Some("made by CDK; key from x version 1")), None);
        let none = crate::kinds::ownership::from_marker(Some("made by CDK"));
        assert!(marker_tags(&none).is_empty());
        // Another stack's marker is refused once the stack is known; this stack's is not.
        let mut names = crate::import::Names::default();
        names.for_stack("shop");
        assert!(names.refuse("connection", "c", marker_tags(&own)));
        names.for_stack("salon");
        assert!(!names.refuse("connection", "c2", marker_tags(&own)));
    }
}
