//! `kind: Connection`: an EventBridge connection with API-key, basic or OAuth
//! client-credentials authorization.
//!
//! The secret part (the API key, the password, the client secret; "the key" below) never
//! leaves Secrets Manager except into EventBridge: a connection records in its description
//! which secret *version* its key came from, so a rotated secret is seen (DescribeSecret,
//! metadata only) without reading any value; the value is read (GetSecretValue) only to
//! create or update the connection, and is never logged, shown in a plan, compared, or
//! kept. What EventBridge returns (the header name, the user name, the OAuth endpoint,
//! method, client ID and body parameters) is compared like any field.
//!
//! moto returns the authorization as it was sent, secrets included (AWS leaves them out);
//! mooring reads none of them.
//!
//! moto cannot tag connections, so their ownership marker is the description
//! (`managed by mooring: stack/Connection/name; key from …`); one marked before stacks
//! (`Connection/name`) is taken over and its description rewritten on the next apply.
//!
//! The description also records when mooring last sent the key (`set at <time>`): a
//! connection AWS says was modified more than [`SET_AT_SLACK`] after that had its key (or
//! other authorization) replaced outside mooring — EventBridge never returns the key, but
//! `LastModifiedTime` tells — and plan shows `keyFrom: "set outside mooring at …"`. moto
//! does not keep `LastModifiedTime`; that case is tested with canned responses.
//!
//! Reads: one DescribeSecret and one DescribeConnection per connection and pass (the
//! describe is shared with the API destinations that use it).

pub mod spec;

use std::sync::Arc;

use aws_sdk_eventbridge::operation::describe_connection::DescribeConnectionOutput;
use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::{
    ConnectionAuthorizationType, ConnectionBodyParameter, ConnectionHttpParameters,
    ConnectionOAuthHttpMethod, CreateConnectionApiKeyAuthRequestParameters,
    CreateConnectionAuthRequestParameters, CreateConnectionBasicAuthRequestParameters,
    CreateConnectionOAuthClientRequestParameters, CreateConnectionOAuthRequestParameters,
    UpdateConnectionApiKeyAuthRequestParameters, UpdateConnectionAuthRequestParameters,
    UpdateConnectionBasicAuthRequestParameters, UpdateConnectionOAuthClientRequestParameters,
    UpdateConnectionOAuthRequestParameters,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use super::ownership::{self, Ownership};
use super::{Change, Resource, eventbridge};
use crate::aws::{AwsError, ErrorCategory};
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::{Applied, Cx, ReconcileError};
use spec::{Auth, ConnectionSpec};

/// The `Connection` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "events:DescribeConnection",
            "events:CreateConnection",
            "events:UpdateConnection",
            "events:ListTagsForResource",
            "events:TagResource",
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:CreateSecret",
            "secretsmanager:PutSecretValue",
            "secretsmanager:UpdateSecret",
            "secretsmanager:DeleteSecret",
            "secretsmanager:TagResource",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the connection `{}`", m.spec.aws_name(&m.metadata))
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        // The ARN ends in the name on create and in name/UUID afterwards.
        set.connections
            .iter()
            .flat_map(|c| {
                let name = c.spec.aws_name(&c.metadata);
                [
                    crate::iam::arn("events", &format!("connection/{name}")),
                    crate::iam::arn("events", &format!("connection/{name}/*")),
                ]
            })
            .collect()
    }

}

/// A connection in the shape plan compares. The key's value is not in it: EventBridge does
/// not return it, and the description names the secret version it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// The authorization, but for its secret part.
    #[serde(flatten)]
    pub auth: Authorization,
    /// The ownership marker (the description's first part).
    pub marker: Option<String>,
    /// Where the key came from: `<secret> version <id>`; live, `set outside mooring at …`
    /// when the connection was modified after mooring last sent it. Named `keyFrom`, not
    /// `apiKey`: it never holds the key, and a field named like a secret is redacted in
    /// plan, status and alerts, which hid exactly this news.
    #[serde(alias = "apiKey")]
    pub key_from: Option<String>,
}

/// What EventBridge returns of a connection's authorization: everything but the secret
/// part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// `API_KEY`, `BASIC` or `OAUTH_CLIENT_CREDENTIALS`.
    pub authorization_type: String,
    /// The HTTP header that carries an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_name: Option<String>,
    /// The user name of basic authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// What OAuth client credentials say besides the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthDoc>,
}

impl Authorization {
    /// What the manifest says.
    fn of_spec(m: &Manifest<ConnectionSpec>) -> Authorization {
        let auth = m.spec.auth();
        let mut out = Authorization {
            authorization_type: auth.authorization_type().to_string(),
            ..Authorization::default()
        };
        match auth {
            Auth::ApiKey(k) => out.api_key_name = Some(k.header_name.clone()),
            Auth::Basic(b) => out.username = Some(b.username.clone()),
            Auth::OAuth(o) => {
                out.oauth = Some(OAuthDoc {
                    authorization_endpoint: o.authorization_endpoint.clone(),
                    http_method: o.http_method.as_str().to_string(),
                    client_id: o.client_id.clone(),
                    body_parameters: o.body_parameters.clone(),
                });
            }
        }
        out
    }

    /// What AWS says. What a manifest cannot say is not in it (see [`unsayable`]).
    fn of_live(c: &DescribeConnectionOutput) -> Authorization {
        let params = c.auth_parameters();
        Authorization {
            authorization_type: c
                .authorization_type()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default(),
            api_key_name: params
                .and_then(|a| a.api_key_auth_parameters())
                .and_then(|k| k.api_key_name())
                .map(str::to_string),
            username: params
                .and_then(|a| a.basic_auth_parameters())
                .and_then(|b| b.username())
                .map(str::to_string),
            oauth: params.and_then(|a| a.o_auth_parameters()).map(|o| OAuthDoc {
                authorization_endpoint: o.authorization_endpoint().unwrap_or_default().to_string(),
                http_method: o.http_method().map(|h| h.as_str()).unwrap_or_default().to_string(),
                client_id: o
                    .client_parameters()
                    .and_then(|c| c.client_id())
                    .unwrap_or_default()
                    .to_string(),
                body_parameters: o
                    .o_auth_http_parameters()
                    .map(|h| h.body_parameters())
                    .unwrap_or_default()
                    .iter()
                    .filter(|p| !p.is_value_secret())
                    .map(|p| {
                        (
                            p.key().unwrap_or_default().to_string(),
                            p.value().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
            }),
        }
    }
}

/// What the live connection has that a manifest cannot say, by field: OAuth body
/// parameters whose values AWS keeps secret, OAuth header and query-string parameters, and
/// the invocation parameters sent with every call. EventBridge takes an authorization
/// whole, so an update would remove them.
pub fn unsayable(c: &DescribeConnectionOutput) -> Vec<String> {
    use aws_sdk_eventbridge::types::ConnectionHttpParameters as Params;
    let Some(auth) = c.auth_parameters() else {
        return Vec::new();
    };
    let named = |prefix: &str, p: &Params, body_too: bool| {
        let mut out: Vec<String> = Vec::new();
        out.extend(
            p.header_parameters()
                .iter()
                .map(|h| format!("{prefix}.headerParameters.{}", h.key().unwrap_or_default())),
        );
        out.extend(
            p.query_string_parameters()
                .iter()
                .map(|q| format!("{prefix}.queryStringParameters.{}", q.key().unwrap_or_default())),
        );
        out.extend(
            p.body_parameters()
                .iter()
                .filter(|b| body_too || b.is_value_secret())
                .map(|b| {
                    let secret = if b.is_value_secret() { " (secret)" } else { "" };
                    format!("{prefix}.bodyParameters.{}{secret}", b.key().unwrap_or_default())
                }),
        );
        out
    };
    let mut out = Vec::new();
    if let Some(p) = auth.o_auth_parameters().and_then(|o| o.o_auth_http_parameters()) {
        out.extend(named("oauth", p, false));
    }
    if let Some(p) = auth.invocation_http_parameters() {
        out.extend(named("invocationHttpParameters", p, true));
    }
    out
}

/// The non-secret part of OAuth client credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthDoc {
    /// The token endpoint.
    pub authorization_endpoint: String,
    /// `GET`, `POST` or `PUT`.
    pub http_method: String,
    /// The client ID.
    pub client_id: String,
    /// The token request's body parameters (none secret).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub body_parameters: BTreeMap<String, String>,
}

/// One connection as observed.
pub struct Observed {
    /// The live connection; `None` when there is none.
    live: Option<Arc<DescribeConnectionOutput>>,
    /// The secret's current version (AWSCURRENT), from its metadata.
    version: String,
}

/// How long after mooring's own clock said "set at" AWS may stamp the connection's
/// `LastModifiedTime` (request time, clock skew) before the change counts as someone else's.
pub const SET_AT_SLACK: std::time::Duration = std::time::Duration::from_secs(300);

/// Where the key of `m` comes from, at `version`; `None` for a key left as it is (no
/// `secretId`).
fn key_from(m: &Manifest<ConnectionSpec>, version: &str) -> Option<String> {
    let auth = m.spec.auth();
    let k = auth.secret();
    let id = k.id?;
    let source = match k.key {
        Some(key) => format!("{id}#{key}"),
        None => id.to_string(),
    };
    Some(format!("{source} version {version}"))
}

/// The description that records who owns a connection, where its key came from and when
/// mooring sent it (`set_at`, RFC 3339); only the owner for a key left as it is.
pub fn description(
    stack: ownership::Owner<'_>,
    m: &Manifest<ConnectionSpec>,
    version: &str,
    set_at: &str,
) -> String {
    let marker = ownership::marker(Kind::Connection, stack, m.name());
    match key_from(m, version) {
        Some(from) => format!("{marker}; key from {from}; set at {set_at}"),
        None => marker,
    }
}

/// A description's parts: the marker, where the key came from, and when it was set (the
/// last two absent from descriptions mooring did not write).
fn parts(description: &str) -> (&str, Option<&str>, Option<&str>) {
    let Some((marker, rest)) = description.split_once("; key from ") else {
        return (description, None, None);
    };
    match rest.split_once("; set at ") {
        Some((from, at)) => (marker, Some(from), Some(at)),
        None => (marker, Some(rest), None),
    }
}

/// When AWS modified the connection, if that was more than [`SET_AT_SLACK`] after `set_at`.
fn modified_after(c: &DescribeConnectionOutput, set_at: &str) -> Option<String> {
    use aws_smithy_types::date_time::{DateTime, Format};
    let modified = c.last_modified_time()?;
    let set = DateTime::from_str(set_at, Format::DateTime).ok()?;
    let slack = i64::try_from(SET_AT_SLACK.as_secs()).unwrap_or(i64::MAX);
    (modified.secs() > set.secs().saturating_add(slack))
        .then(|| modified.fmt(Format::DateTime).unwrap_or_default())
}

/// True when AWS stamped a write made at `set_at` (mooring's clock) more than half of
/// [`SET_AT_SLACK`] later: mooring's clock is behind AWS's by about that much.
fn skewed(set_at: std::time::SystemTime, stamp: &aws_smithy_types::DateTime) -> bool {
    let set = aws_smithy_types::DateTime::from(set_at).secs();
    let half = i64::try_from(SET_AT_SLACK.as_secs() / 2).unwrap_or(i64::MAX);
    stamp.secs() > set.saturating_add(half)
}

/// The version of the secret that is current (AWSCURRENT), from metadata only; `what` it
/// holds, for messages.
async fn current_secret_version(
    cx: &Cx<'_>,
    id: &str,
    what: &str,
) -> Result<String, ReconcileError> {
    let out = cx
        .aws()
        .secretsmanager
        .describe_secret()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("secretsmanager:DescribeSecret", e));
    let out = match out {
        Ok(o) => o,
        Err(e) if e.category == ErrorCategory::NotFound => {
            return Err(ReconcileError::requirement(format!(
                "the {what} secret {id} does not exist: create it in Secrets Manager (mooring never writes it)"
            )));
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
            ReconcileError::requirement(format!("the {what} secret {id} has no current version"))
        })
}

/// Why a connection without `secretId` cannot be created.
fn no_secret(m: &Manifest<ConnectionSpec>) -> String {
    let auth = m.spec.auth();
    let k = auth.secret();
    format!(
        "the connection `{}` does not exist and `{}.secretId` is not set: EventBridge needs the {} to create it; set `secretId` to the Secrets Manager secret that holds it",
        m.spec.aws_name(&m.metadata),
        k.field,
        k.what
    )
}

/// Why mooring must not send this connection's authorization, if it must not; `live`, the
/// connection as it is. Every such case would lose something no manifest can give back:
/// - it does not exist and no `secretId` names its key (EventBridge needs one);
/// - it has what a manifest cannot say ([`unsayable`]: secret OAuth body parameters, OAuth
///   header or query parameters, invocation parameters): EventBridge takes an
///   authorization whole, so any sent would remove them;
/// - without `secretId`, its authorization differs from the manifest's: EventBridge takes an
///   authorization whole, and one sent without its key may leave the connection keyless
///   (moto drops the key; AWS does not document that it keeps it).
fn cannot_send(m: &Manifest<ConnectionSpec>, live: Option<&DescribeConnectionOutput>) -> Option<String> {
    let auth = m.spec.auth();
    let k = auth.secret();
    let name = m.spec.aws_name(&m.metadata);
    let Some(c) = live else {
        return k.id.is_none().then(|| no_secret(m));
    };
    let unsayable = unsayable(c);
    if !unsayable.is_empty() {
        return Some(format!(
            "the connection `{name}` has {}, which a manifest cannot say; EventBridge takes a connection's authorization whole, so any update would remove them, and mooring sends none: keep the connection with `mooring.dev/mode: observe`, or remove them",
            unsayable.join(", ")
        ));
    }
    if k.id.is_some() {
        return None;
    }
    let (field, what) = (k.field, k.what);
    let live_authorization = c.authorization_type().map_or("no authorization", |a| a.as_str());
    let wanted = auth.authorization_type();
    if live_authorization != wanted {
        return Some(format!(
            "the connection `{name}` authorizes with {live_authorization}, and without `{field}.secretId` mooring has no {what} to switch it to {wanted} with (it never sends a connection without one); set `secretId` to the Secrets Manager secret that holds the {what}"
        ));
    }
    let desired = serde_json::to_value(Authorization::of_spec(m)).unwrap_or_default();
    let live = serde_json::to_value(Authorization::of_live(c)).unwrap_or_default();
    // What `mooring.dev/ignore` covers is not sent either way.
    let differ: Vec<String> = crate::reconcile::diff::diff_managed(&m.metadata, &desired, Some(&live))
        .into_iter()
        .map(|c| format!("`{}`", c.field))
        .collect();
    (!differ.is_empty()).then(|| {
        format!(
            "the connection `{name}` differs in {}, and without `{field}.secretId` mooring does not send it: EventBridge takes a connection's authorization whole, and one sent without the {what} may leave the connection without one; set `secretId` to the Secrets Manager secret that holds the {what}, or make the manifest say what the connection has",
            differ.join(", ")
        )
    })
}

/// Reads the key. The value goes straight into the request and is dropped after it.
async fn secret_value(
    cx: &Cx<'_>,
    m: &Manifest<ConnectionSpec>,
    version: &str,
) -> Result<String, ReconcileError> {
    let auth = m.spec.auth();
    let k = auth.secret();
    let what = k.what;
    let Some(secret_id) = k.id else {
        return Err(ReconcileError::requirement(no_secret(m)));
    };
    let out = cx
        .aws()
        .secretsmanager
        .get_secret_value()
        .secret_id(secret_id)
        .version_id(version)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("secretsmanager:GetSecretValue", e))?;
    let Some(raw) = out.secret_string() else {
        return Err(ReconcileError::requirement(format!(
            "the secret {secret_id} holds no text (a binary secret?); the {what} must be a string"
        )));
    };
    let value = match k.key {
        None => raw.to_string(),
        Some(key) => serde_json::from_str::<Value>(raw)
            .ok()
            .and_then(|v| v.get(key).and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| {
                // Never echo the secret: only say what was expected.
                ReconcileError::requirement(format!(
                    "the secret {secret_id} is not a JSON object with a string field `{key}` (the {what})"
                ))
            })?,
    };
    if value.is_empty() {
        return Err(ReconcileError::requirement(format!(
            "the secret {secret_id} holds an empty {what}"
        )));
    }
    // EventBridge refuses control characters; a trailing newline is the usual one.
    if value.chars().any(char::is_control) {
        return Err(ReconcileError::requirement(format!(
            "the {what} in the secret {secret_id} holds a line break or another control character (a trailing newline?), which EventBridge refuses"
        )));
    }
    Ok(value)
}

/// An OAuth token request's body parameters, none of them secret.
fn body_parameters(params: &BTreeMap<String, String>) -> ConnectionHttpParameters {
    ConnectionHttpParameters::builder()
        .set_body_parameters(Some(
            params
                .iter()
                .map(|(k, v)| {
                    ConnectionBodyParameter::builder()
                        .key(k)
                        .value(v)
                        .is_value_secret(false)
                        .build()
                })
                .collect(),
        ))
        .build()
}

/// The authorization to create a connection like `doc` with, `key` its secret part.
fn create_auth(
    doc: &Doc,
    key: String,
) -> Result<CreateConnectionAuthRequestParameters, aws_sdk_eventbridge::error::BuildError> {
    let doc = &doc.auth;
    let params = CreateConnectionAuthRequestParameters::builder();
    let params = if let Some(o) = &doc.oauth {
        let mut oauth = CreateConnectionOAuthRequestParameters::builder()
            .client_parameters(
                CreateConnectionOAuthClientRequestParameters::builder()
                    .client_id(&o.client_id)
                    .client_secret(key)
                    .build()?,
            )
            .authorization_endpoint(&o.authorization_endpoint)
            .http_method(ConnectionOAuthHttpMethod::from(o.http_method.as_str()));
        if !o.body_parameters.is_empty() {
            oauth = oauth.o_auth_http_parameters(body_parameters(&o.body_parameters));
        }
        params.o_auth_parameters(oauth.build()?)
    } else if let Some(username) = &doc.username {
        params.basic_auth_parameters(
            CreateConnectionBasicAuthRequestParameters::builder()
                .username(username)
                .password(key)
                .build()?,
        )
    } else {
        params.api_key_auth_parameters(
            CreateConnectionApiKeyAuthRequestParameters::builder()
                .api_key_name(doc.api_key_name.clone().unwrap_or_default())
                .api_key_value(key)
                .build()?,
        )
    };
    Ok(params.build())
}

/// The authorization to update a connection to `doc` with, `key` its secret part: always
/// sent, since UpdateConnection takes the authorization as a whole (see [`cannot_send`]).
/// Every non-secret field goes out, and an OAuth connection's body parameters are sent
/// even when there are none, so that parameters added by hand go.
fn update_auth(doc: &Doc, key: String) -> UpdateConnectionAuthRequestParameters {
    let doc = &doc.auth;
    let params = UpdateConnectionAuthRequestParameters::builder();
    let params = if let Some(o) = &doc.oauth {
        params.o_auth_parameters(
            UpdateConnectionOAuthRequestParameters::builder()
                .client_parameters(
                    UpdateConnectionOAuthClientRequestParameters::builder()
                        .client_id(&o.client_id)
                        .client_secret(key)
                        .build(),
                )
                .authorization_endpoint(&o.authorization_endpoint)
                .http_method(ConnectionOAuthHttpMethod::from(o.http_method.as_str()))
                .o_auth_http_parameters(body_parameters(&o.body_parameters))
                .build(),
        )
    } else if let Some(username) = &doc.username {
        params.basic_auth_parameters(
            UpdateConnectionBasicAuthRequestParameters::builder()
                .username(username)
                .password(key)
                .build(),
        )
    } else {
        params.api_key_auth_parameters(
            UpdateConnectionApiKeyAuthRequestParameters::builder()
                .set_api_key_name(doc.api_key_name.clone())
                .api_key_value(key)
                .build(),
        )
    };
    params.build()
}

#[async_trait::async_trait]
impl Resource for Unit {
    /// Nothing is read for all connections at once: EventBridge describes them by name.
    type Live = ();
    type Observed = Observed;
    type Doc = Doc;

    async fn read(
        _cx: &Cx<'_>,
        _manifests: &[Manifest<ConnectionSpec>],
    ) -> Result<(), ReconcileError> {
        Ok(())
    }

    async fn observe(
        cx: &Cx<'_>,
        m: &Manifest<ConnectionSpec>,
        _live: &(),
    ) -> Result<Observed, ReconcileError> {
        // No secret named: the key is left as it is, and no secret is looked at.
        let auth = m.spec.auth();
        let secret = auth.secret();
        let version = match secret.id {
            Some(id) => current_secret_version(cx, id, secret.what).await?,
            None => String::new(),
        };
        let live = eventbridge::connection(cx, m.spec.aws_name(&m.metadata)).await?;
        Ok(Observed { live, version })
    }

    fn ownership(obs: &Observed) -> Option<Ownership> {
        obs.live
            .as_ref()
            .map(|c| ownership::from_marker(c.description()))
    }

    fn desired(set: &ManifestSet, m: &Manifest<ConnectionSpec>, obs: &Observed) -> Doc {
        Doc {
            auth: Authorization::of_spec(m),
            marker: Some(ownership::marker(Kind::Connection, set.owner(), m.name())),
            key_from: key_from(m, &obs.version),
        }
    }

    fn live(_set: &ManifestSet, _m: &Manifest<ConnectionSpec>, obs: &Observed) -> Option<Doc> {
        let c = obs.live.as_ref()?;
        Some(Doc {
            auth: Authorization::of_live(c),
            marker: c.description().map(|d| parts(d).0.to_string()),
            key_from: c.description().and_then(|d| {
                let (_, from, at) = parts(d);
                match at.and_then(|at| modified_after(c, at)) {
                    Some(when) => Some(format!("set outside mooring at {when}")),
                    None => from.map(str::to_string),
                }
            }),
        })
    }

    /// Only a connection that cannot be created is a problem of the plan. What makes a
    /// live one unsendable ([`cannot_send`]) is refused by apply alone: a connection held
    /// (observe mode, as import writes one with what a manifest cannot say, or paused) is
    /// then held drift, not a failure on every pass that also blocks its API destinations.
    fn problems(m: &Manifest<ConnectionSpec>, obs: &Observed) -> Vec<crate::reconcile::Problem> {
        match obs.live {
            None => cannot_send(m, None),
            Some(_) => None,
        }
        .map(crate::reconcile::Problem::requirement)
        .into_iter()
        .collect()
    }

    fn aws_id(_set: &ManifestSet, m: &Manifest<ConnectionSpec>, obs: &Observed) -> String {
        obs.live
            .as_ref()
            .and_then(|c| c.connection_arn())
            .unwrap_or(m.spec.aws_name(&m.metadata))
            .to_string()
    }

    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<ConnectionSpec>,
        obs: &Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        // Every field goes out on create and update alike: UpdateConnection takes the
        // authorization as a whole, and the key is sent again with it, read at the version
        // the description records (a changed description is a rotated secret or a rewritten
        // marker; sending the key with it keeps the recorded version true).
        let desired = change.desired;
        let name = m.spec.aws_name(&m.metadata);
        let set_at = std::time::SystemTime::now();
        let description = Some(description(
            cx.set.owner(),
            m,
            &obs.version,
            &crate::status::rfc3339(set_at),
        ));
        let auth = ConnectionAuthorizationType::from(desired.auth.authorization_type.as_str());
        let eb = &cx.aws().eventbridge;
        if let Some(why) = cannot_send(m, obs.live.as_deref()) {
            return Err(ReconcileError::requirement(why));
        }
        // No secret named (and the authorization as the manifest says): the key stays as
        // it is, only the description (the owner) goes out, and no secret is read.
        if m.spec.auth().secret().id.is_none() {
            let out = eb
                .update_connection()
                .name(name)
                .set_description(description)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:UpdateConnection", e))?;
            let arn = out.connection_arn().unwrap_or_default().to_string();
            info!(connection = %arn, "connection in place (its key left as it is)");
            return Ok(Applied {
                aws_id: arn,
                rollout: None,
            });
        }
        let key = secret_value(cx, m, &obs.version).await?;
        let (arn, stamped) = if change.live.is_some() {
            let out = eb
                .update_connection()
                .name(name)
                .set_description(description.clone())
                .authorization_type(auth)
                .auth_parameters(update_auth(desired, key))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:UpdateConnection", e))?;
            (
                out.connection_arn().unwrap_or_default().to_string(),
                out.last_modified_time().copied(),
            )
        } else {
            let params = create_auth(desired, key)
                .map_err(|e| AwsError::invalid_request("events:CreateConnection", e))?;
            let out = eb
                .create_connection()
                .name(name)
                .set_description(description.clone())
                .authorization_type(auth)
                .auth_parameters(params)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:CreateConnection", e))?;
            (
                out.connection_arn().unwrap_or_default().to_string(),
                out.last_modified_time().or(out.creation_time()).copied(),
            )
        };
        // The description's `set at` is mooring's clock; drift is a `LastModifiedTime`
        // (AWS's clock) more than SET_AT_SLACK later. With mooring's clock that far behind
        // AWS's, every write would read as someone else's and be made again, forever: when
        // AWS stamped this write well after `set at`, the description is written once more
        // with AWS's own stamp, which the next write's stamp follows by seconds.
        if let Some(stamp) = stamped.filter(|t| skewed(set_at, t)) {
            let at = stamp
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap_or_default();
            warn!(connection = %arn, aws = %at, "mooring's clock is behind AWS's: the connection's set-at time is AWS's");
            eb.update_connection()
                .name(name)
                .description(self::description(cx.set.owner(), m, &obs.version, &at))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:UpdateConnection", e))?;
        }
        info!(connection = %arn, "connection in place");
        Ok(Applied {
            aws_id: arn,
            rollout: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;
    use crate::reconcile::diff::diff;
    use aws_sdk_eventbridge::types::{
        ConnectionApiKeyAuthResponseParameters, ConnectionAuthResponseParameters,
    };

    const MANIFEST: &str = "apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata: {name: backend}
spec:
  apiKey: {headerName: x-api-key, secretId: prd/backend/api-key, secretKey: key}
";

    fn set() -> ManifestSet {
        load_with_stack(&[("c.yaml".into(), MANIFEST.into())]).unwrap()
    }

    fn observed(description: Option<&str>, version: &str) -> Observed {
        let live = description.map(|d| {
            Arc::new(
                DescribeConnectionOutput::builder()
                    .connection_arn("arn:aws:events:eu-west-1:123456789012:connection/backend/1")
                    .name("backend")
                    .description(d)
                    .authorization_type(ConnectionAuthorizationType::ApiKey)
                    .auth_parameters(
                        ConnectionAuthResponseParameters::builder()
                            .api_key_auth_parameters(
                                ConnectionApiKeyAuthResponseParameters::builder()
                                    .api_key_name("x-api-key")
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
        });
        Observed {
            live,
            version: version.into(),
        }
    }

    fn changes(set: &ManifestSet, obs: &Observed) -> Vec<String> {
        let m = &set.connections[0];
        let d = serde_json::to_value(Unit::desired(set, m, obs)).unwrap();
        let l = Unit::live(set, m, obs).map(|l| serde_json::to_value(l).unwrap());
        diff(&d, l.as_ref()).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn the_description_names_stack_secret_and_version_and_a_rotation_is_the_key_field() {
        let set = set();
        let current = "managed by mooring: test/Connection/backend; key from prd/backend/api-key#key version v1; set at 2026-12-02T10:00:00Z";
        assert_eq!(
            description(set.owner(), &set.connections[0], "v1", "2026-12-02T10:00:00Z"),
            current
        );
        let obs = observed(Some(current), "v1");
        assert!(changes(&set, &obs).is_empty());
        assert_eq!(
            Unit::ownership(&obs).and_then(|o| o.name_in("test", Kind::Connection)),
            Some("backend".to_string())
        );
        // The secret was rotated: its current version is no longer the recorded one.
        assert_eq!(changes(&set, &observed(Some(current), "v2")), ["keyFrom"]);
        // Written before the time was recorded: still in sync.
        let older = "managed by mooring: test/Connection/backend; key from prd/backend/api-key#key version v1";
        assert!(changes(&set, &observed(Some(older), "v1")).is_empty());
    }

    #[test]
    fn a_key_replaced_after_mooring_set_it_is_drift() {
        let set = set();
        let current = "managed by mooring: test/Connection/backend; key from prd/backend/api-key#key version v1; set at 2026-12-02T10:00:00Z";
        let modified = |secs: i64| {
            let mut obs = observed(Some(current), "v1");
            let c = obs.live.take().unwrap();
            let mut c = (*c).clone();
            c.last_modified_time = Some(aws_smithy_types::DateTime::from_secs(secs));
            obs.live = Some(Arc::new(c));
            obs
        };
        let set_at = 1_796_205_600; // 2026-12-02T10:00:00Z
        // AWS's own stamp of mooring's update, seconds later: in sync.
        assert!(changes(&set, &modified(set_at + 2)).is_empty());
        // Modified an hour later by someone else: the key is named, and when.
        let obs = modified(set_at + 3600);
        assert_eq!(changes(&set, &obs), ["keyFrom"]);
        let m = &set.connections[0];
        let live = Unit::live(&set, m, &obs).unwrap();
        assert_eq!(
            live.key_from.as_deref(),
            Some("set outside mooring at 2026-12-02T11:00:00Z")
        );
    }

    #[test]
    fn a_connection_marked_before_stacks_is_taken_over_and_its_marker_rewritten() {
        let set = set();
        let legacy = "managed by mooring: Connection/backend; key from prd/backend/api-key#key version v1";
        let obs = observed(Some(legacy), "v1");
        let owner = Unit::ownership(&obs).unwrap();
        assert_eq!(owner.stack, None);
        assert_eq!(
            ownership::conflict(
                Kind::Connection,
                &set.connections[0].metadata,
                "test",
                &owner,
                &|_| true
            ),
            None
        );
        assert_eq!(changes(&set, &obs), ["marker"]);
        let other = observed(Some("hand made"), "v1");
        assert!(
            ownership::conflict(
                Kind::Connection,
                &set.connections[0].metadata,
                "test",
                &Unit::ownership(&other).unwrap(),
                &|_| true
            )
            .is_some()
        );
        assert!(Unit::ownership(&observed(None, "v1")).is_none());
    }

    /// mooring's clock an hour behind AWS's: AWS stamps the update an hour after `set at`,
    /// which the next plan would read as a key set outside mooring, and update again, on
    /// every pass. The description is written once more with AWS's stamp instead.
    #[tokio::test]
    async fn a_clock_behind_aws_does_not_make_every_write_look_foreign() {
        use aws_sdk_eventbridge::operation::update_connection::UpdateConnectionOutput;
        use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        let set = set();
        let recorded = "managed by mooring: test/Connection/backend; key from prd/backend/api-key#key version v1; set at 2026-12-02T10:00:00Z";
        // AWS's clock: an hour after mooring's.
        let aws_now = aws_smithy_types::DateTime::from(std::time::SystemTime::now()).secs() + 3600;
        let stamp = aws_smithy_types::DateTime::from_secs(aws_now);
        let stamp_text = stamp
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap();
        let versions = mock!(aws_sdk_secretsmanager::Client::describe_secret).then_output(|| {
            DescribeSecretOutput::builder()
                .version_ids_to_stages("v2", vec!["AWSCURRENT".to_string()])
                .build()
        });
        let value = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
            .match_requests(|r| r.version_id() == Some("v2"))
            .then_output(|| {
                GetSecretValueOutput::builder()
                    .secret_string(r#"{"key": "k-2"}"#)
                    .build()
            });
        let live = observed(Some(recorded), "v1").live.unwrap();
        let describe = mock!(aws_sdk_eventbridge::Client::describe_connection)
            .then_output(move || (*live).clone());
        // The update with the rotated key, stamped by AWS an hour "later"...
        let update = mock!(aws_sdk_eventbridge::Client::update_connection)
            .match_requests(|r| r.auth_parameters().is_some())
            .then_output(move || {
                UpdateConnectionOutput::builder()
                    .connection_arn("arn:aws:events:eu-west-1:123456789012:connection/backend/1")
                    .last_modified_time(stamp)
                    .build()
            });
        // ...then the description alone, with AWS's stamp as its set-at time.
        let want = format!("; set at {stamp_text}");
        let restamp = mock!(aws_sdk_eventbridge::Client::update_connection)
            .match_requests(move |r| {
                r.auth_parameters().is_none()
                    && r.description().is_some_and(|d| {
                        d.ends_with(&want) && d.contains("version v2")
                    })
            })
            .then_output(|| UpdateConnectionOutput::builder().build());
        let config = crate::aws::offline_config();
        let mut aws = crate::aws::Aws::from_config(&config).expect("config");
        aws.secretsmanager =
            mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&versions, &value]);
        aws.eventbridge = mock_client!(
            aws_sdk_eventbridge,
            RuleMode::MatchAny,
            [&describe, &update, &restamp]
        );
        let ctx = crate::reconcile::Context::new(aws);
        let report =
            crate::reconcile::apply_all(&ctx, &set, &crate::kinds::reconcilers(&set), true).await;
        let r = &report.resources[0];
        assert!(r.error().is_none(), "{r:#?}");
        assert_eq!(update.num_calls(), 1);
        assert_eq!(restamp.num_calls(), 1, "the description is stamped with AWS's time");
        // The stamp that follows such a write is within the slack: no drift next pass.
        let mut next = observed(
            Some(&format!(
                "managed by mooring: test/Connection/backend; key from prd/backend/api-key#key version v2; set at {stamp_text}"
            )),
            "v2",
        );
        let mut c = (*next.live.take().unwrap()).clone();
        c.last_modified_time = Some(aws_smithy_types::DateTime::from_secs(aws_now + 2));
        next.live = Some(Arc::new(c));
        assert!(changes(&set, &next).is_empty());
    }

    /// Without `secretId` (as `mooring import` writes a connection) the key is never part
    /// of the plan: adopting shows the owner only, the description then names no key, and
    /// a connection that does not exist is a problem, not a creation without a key.
    #[test]
    fn a_connection_without_a_secret_is_adopted_without_its_key() {
        let text = "apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata: {name: backend}
spec:
  apiKey: {headerName: x-api-key}
";
        let set = load_with_stack(&[("c.yaml".into(), text.into())]).unwrap();
        let m = &set.connections[0];
        assert_eq!(key_from(m, ""), None);
        let owned = description(set.owner(), m, "", "2026-12-02T10:00:00Z");
        assert_eq!(owned, "managed by mooring: test/Connection/backend");
        assert_eq!(changes(&set, &observed(Some("made by CDK"), "")), ["marker"]);
        assert!(changes(&set, &observed(Some(&owned), "")).is_empty());
        assert!(Unit::problems(m, &observed(Some("made by CDK"), "")).is_empty());
        // A header someone else changed cannot be put back without the key: UpdateConnection
        // takes the authorization whole. A problem naming the field, not a keyless update.
        let mut other = (*observed(Some(&owned), "").live.unwrap()).clone();
        other.auth_parameters = Some(
            ConnectionAuthResponseParameters::builder()
                .api_key_auth_parameters(
                    ConnectionApiKeyAuthResponseParameters::builder()
                        .api_key_name("x-other")
                        .build(),
                )
                .build(),
        );
        let other = Observed {
            live: Some(Arc::new(other)),
            version: String::new(),
        };
        assert_eq!(changes(&set, &other), ["apiKeyName"]);
        let refused = cannot_send(m, other.live.as_deref()).unwrap_or_default();
        assert!(
            refused.contains("differs in `apiKeyName`")
                && refused.contains("without `apiKey.secretId`"),
            "{refused:?}"
        );
        // Refused by apply, not a plan problem: held (observe), it is drift, not a failure.
        assert!(Unit::problems(m, &other).is_empty());
        // A field `mooring.dev/ignore` covers is not a reason to refuse.
        let mut ignoring = set.connections[0].clone();
        ignoring
            .metadata
            .annotations
            .insert("mooring.dev/ignore".into(), "apiKeyName".into());
        assert_eq!(cannot_send(&ignoring, other.live.as_deref()), None);
        let missing = Unit::problems(m, &observed(None, ""));
        assert!(
            missing[0].message.contains("`apiKey.secretId` is not set"),
            "{missing:?}"
        );
        // A field of a secret needs the secret.
        let errs = load_with_stack(&[(
            "c.yaml".into(),
            text.replace("x-api-key}", "x-api-key, secretKey: key}"),
        )])
        .unwrap_err();
        assert!(
            errs.0.iter().any(|e| e.to_string().contains("set `secretId` too")),
            "{errs:?}"
        );
    }

    fn connection(text: &str, live: DescribeConnectionOutput) -> (ManifestSet, Observed) {
        let set = load_with_stack(&[("c.yaml".into(), text.into())]).unwrap();
        let current = "managed by mooring: test/Connection/backend; key from prd/backend/secret version v1; set at 2026-12-02T10:00:00Z";
        let mut live = live;
        live.description = Some(current.into());
        (
            set,
            Observed {
                live: Some(Arc::new(live)),
                version: "v1".into(),
            },
        )
    }

    /// Basic authorization: the user name is compared (AWS returns it), the password is
    /// not (it does not), a rotated password secret is `keyFrom`, and a connection switched
    /// by hand to another authorization is named by its type.
    #[test]
    fn a_basic_connection_compares_its_user_name_and_never_its_password() {
        use aws_sdk_eventbridge::types::ConnectionBasicAuthResponseParameters;
        let text = "apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata: {name: backend}
spec:
  basic: {username: scheduler, secretId: prd/backend/secret}
";
        let live = |user: &str| {
            DescribeConnectionOutput::builder()
                .name("backend")
                .authorization_type(ConnectionAuthorizationType::Basic)
                .auth_parameters(
                    ConnectionAuthResponseParameters::builder()
                        .basic_auth_parameters(
                            ConnectionBasicAuthResponseParameters::builder()
                                .username(user)
                                .build(),
                        )
                        .build(),
                )
                .build()
        };
        let (set, obs) = connection(text, live("scheduler"));
        assert!(changes(&set, &obs).is_empty());
        let (set, obs) = connection(text, live("someone"));
        assert_eq!(changes(&set, &obs), ["username"]);
        let (set, mut obs) = connection(text, live("scheduler"));
        obs.version = "v2".into();
        assert_eq!(changes(&set, &obs), ["keyFrom"]);
        // Switched to an API key by hand: the type, the header and the user name differ.
        let (set, obs) = connection(text, observed(Some("x"), "v1").live.map(|c| (*c).clone()).unwrap());
        let mut named = changes(&set, &obs);
        named.sort();
        assert_eq!(named, ["apiKeyName", "authorizationType", "username"]);
        // The authorization sent carries the user name and the password.
        let desired = Unit::desired(&set, &set.connections[0], &obs);
        let update = update_auth(&desired, "pw".into());
        let b = update.basic_auth_parameters().unwrap();
        assert_eq!((b.username(), b.password()), (Some("scheduler"), Some("pw")));
        let create = create_auth(&desired, "pw".into()).unwrap();
        assert_eq!(create.basic_auth_parameters().unwrap().password(), "pw");
    }

    /// OAuth client credentials: endpoint, method, client ID and body parameters are
    /// compared; a secret body parameter someone added is not a field (a manifest cannot
    /// say one) but a problem, and nothing is sent that would remove it.
    #[test]
    fn an_oauth_connection_compares_what_aws_returns() {
        use aws_sdk_eventbridge::types::{
            ConnectionBodyParameter, ConnectionHttpParameters,
            ConnectionOAuthClientResponseParameters, ConnectionOAuthHttpMethod,
            ConnectionOAuthResponseParameters,
        };
        let text = "apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata: {name: backend}
spec:
  oauth:
    authorizationEndpoint: https://auth.example.com/oauth/token
    clientId: salon-scheduler
    secretId: prd/backend/secret
    bodyParameters: {scope: queues:reset}
";
        let live = |client: &str, method: ConnectionOAuthHttpMethod, extra: Option<(&str, bool)>| {
            let mut params = ConnectionHttpParameters::builder().body_parameters(
                ConnectionBodyParameter::builder()
                    .key("scope")
                    .value("queues:reset")
                    .is_value_secret(false)
                    .build(),
            );
            if let Some((key, secret)) = extra {
                params = params.body_parameters(
                    ConnectionBodyParameter::builder()
                        .key(key)
                        .set_value((!secret).then(|| "by-hand".to_string()))
                        .is_value_secret(secret)
                        .build(),
                );
            }
            DescribeConnectionOutput::builder()
                .name("backend")
                .authorization_type(ConnectionAuthorizationType::OauthClientCredentials)
                .auth_parameters(
                    ConnectionAuthResponseParameters::builder()
                        .o_auth_parameters(
                            ConnectionOAuthResponseParameters::builder()
                                .authorization_endpoint("https://auth.example.com/oauth/token")
                                .http_method(method)
                                .client_parameters(
                                    ConnectionOAuthClientResponseParameters::builder()
                                        .client_id(client)
                                        .build(),
                                )
                                .o_auth_http_parameters(params.build())
                                .build(),
                        )
                        .build(),
                )
                .build()
        };
        use ConnectionOAuthHttpMethod::{Get, Post};
        let (set, obs) = connection(text, live("salon-scheduler", Post, None));
        assert!(changes(&set, &obs).is_empty());
        let (set, obs) = connection(text, live("other", Get, None));
        assert_eq!(changes(&set, &obs), ["oauth.httpMethod", "oauth.clientId"]);
        let (set, obs) = connection(text, live("salon-scheduler", Post, Some(("audience", false))));
        assert_eq!(changes(&set, &obs), ["oauth.bodyParameters.audience"]);
        assert!(Unit::problems(&set.connections[0], &obs).is_empty());
        let (set, obs) = connection(text, live("salon-scheduler", Post, Some(("client_assertion", true))));
        assert!(changes(&set, &obs).is_empty());
        let refused = cannot_send(&set.connections[0], obs.live.as_deref()).unwrap_or_default();
        assert!(
            refused.contains("has oauth.bodyParameters.client_assertion (secret), which a manifest cannot say"),
            "{refused}"
        );
        // The update sends the body parameters whole (so extras go) and the client secret.
        let desired = Unit::desired(&set, &set.connections[0], &obs);
        let update = update_auth(&desired, "cs".into());
        let o = update.o_auth_parameters().unwrap();
        assert_eq!(o.client_parameters().unwrap().client_secret(), Some("cs"));
        let body = o.o_auth_http_parameters().unwrap().body_parameters();
        assert_eq!(body.len(), 1);
        assert_eq!((body[0].key(), body[0].is_value_secret()), (Some("scope"), false));
        let create = create_auth(&desired, "cs".into()).unwrap();
        let o = create.o_auth_parameters().unwrap();
        assert_eq!(o.client_parameters().unwrap().client_secret(), "cs");
        assert_eq!(o.http_method().as_str(), "POST");
    }

    /// Exactly one authorization form; each one's own fields are checked where they are.
    #[test]
    fn a_connection_takes_exactly_one_authorization() {
        let load = |spec: &str| {
            let text = format!(
                "apiVersion: mooring.dev/v1alpha1\nkind: Connection\nmetadata: {{name: backend}}\nspec:\n{spec}"
            );
            load_with_stack(&[("c.yaml".into(), text)])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let none = load("  connectionName: backend\n");
        assert!(none.contains("set exactly one of `apiKey`, `basic` and `oauth` (0 set)"), "{none}");
        let two = load("  apiKey: {headerName: x-api-key}\n  basic: {username: u}\n");
        assert!(two.contains("(2 set)"), "{two}");
        let plain = load(
            "  oauth: {authorizationEndpoint: 'http://auth.example.com/token', clientId: c}\n",
        );
        assert!(
            plain.contains("spec.oauth.authorizationEndpoint: `http://auth.example.com/token` is not an https:// URL"),
            "{plain}"
        );
        let method = load(
            "  oauth: {authorizationEndpoint: 'https://a.example.com/t', clientId: c, httpMethod: PATCH}\n",
        );
        assert!(method.contains("httpMethod"), "{method}");
        let user = load("  basic: {username: '', secretId: 'arn:aws:ssm:eu-west-1:1:parameter/p'}\n");
        assert!(user.contains("spec.basic.username: must be 1-512 characters"), "{user}");
        assert!(
            user.contains("spec.basic.secretId: `arn:aws:ssm:eu-west-1:1:parameter/p` is not a Secrets Manager secret ARN"),
            "{user}"
        );
        assert!(load("  basic: {username: u, secretId: prd/pw}\n").is_empty());
        // What EventBridge would refuse only at apply time (review finding), refused here.
        let oauth = |endpoint: &str, client: &str, body: &str| {
            load(&format!(
                "  oauth: {{authorizationEndpoint: \"{endpoint}\", clientId: \"{client}\", bodyParameters: {{{body}}}}}\n"
            ))
        };
        assert!(oauth("HTTPS://auth.example.com/t", "c", "scope: a").is_empty(), "the scheme is case-insensitive");
        for (endpoint, client, body, field) in [
            ("https://@", "c", "scope: a", "authorizationEndpoint"),
            ("https://a.example.com/t\\u0007", "c", "scope: a", "authorizationEndpoint"),
            ("https://a.example.com/t", "c:d", "scope: a", "clientId"),
            ("https://a.example.com/t", "c\\u0001", "scope: a", "clientId"),
            ("https://a.example.com/t", "c", &format!("scope: {}", "x".repeat(513)), "bodyParameters.scope"),
            ("https://a.example.com/t", "c", "scope: \"a\\u0000\"", "bodyParameters.scope"),
        ] {
            let errors = oauth(endpoint, client, body);
            assert!(errors.contains(&format!("spec.oauth.{field}:")), "{endpoint} {client} {body}: {errors}");
        }
        let user = load("  basic: {username: 'user:name'}\n");
        assert!(user.contains("spec.basic.username: must be 1-512 characters, not all blank, with no `:`"), "{user}");
    }

    /// A clock in step with AWS's writes once.
    #[test]
    fn only_a_stamp_well_after_set_at_counts_as_skew() {
        let now = std::time::SystemTime::now();
        let secs = aws_smithy_types::DateTime::from(now).secs();
        assert!(!skewed(now, &aws_smithy_types::DateTime::from_secs(secs + 5)));
        assert!(!skewed(now, &aws_smithy_types::DateTime::from_secs(secs - 600)));
        assert!(skewed(now, &aws_smithy_types::DateTime::from_secs(secs + 3600)));
    }

    /// Review finding: without `secretId` mooring must never leave a connection with an
    /// API_KEY authorization it sent no key for. A live connection that authorizes another
    /// way (BASIC here) has no key to keep: switching it to API_KEY needs a key, so this is
    /// a problem to report, not an UpdateConnection with a header name and no value.
    #[tokio::test]
    async fn without_a_secret_a_connection_of_another_authorization_is_not_switched_keyless() {
        use aws_sdk_eventbridge::operation::describe_connection::DescribeConnectionOutput;
        use aws_sdk_eventbridge::operation::update_connection::UpdateConnectionOutput;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        let text = "apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata:
  name: backend
  annotations: {mooring.dev/adopt: \"true\"}
spec:
  apiKey: {headerName: x-api-key}
";
        let set = load_with_stack(&[("c.yaml".into(), text.into())]).unwrap();
        let describe = mock!(aws_sdk_eventbridge::Client::describe_connection).then_output(|| {
            DescribeConnectionOutput::builder()
                .connection_arn("arn:aws:events:eu-west-1:123456789012:connection/backend/1")
                .name("backend")
                .description("made by CDK")
                .authorization_type(ConnectionAuthorizationType::Basic)
                .build()
        });
        let keyless = mock!(aws_sdk_eventbridge::Client::update_connection)
            .match_requests(|r| r.authorization_type().is_some())
            .then_output(|| {
                UpdateConnectionOutput::builder()
                    .connection_arn("arn:aws:events:eu-west-1:123456789012:connection/backend/1")
                    .build()
            });
        let other = mock!(aws_sdk_eventbridge::Client::update_connection)
            .then_output(|| UpdateConnectionOutput::builder().build());
        let config = crate::aws::offline_config();
        let mut aws = crate::aws::Aws::from_config(&config).expect("config");
        aws.eventbridge = mock_client!(
            aws_sdk_eventbridge,
            RuleMode::MatchAny,
            [&describe, &keyless, &other]
        );
        let ctx = crate::reconcile::Context::new(aws);
        let report =
            crate::reconcile::apply_all(&ctx, &set, &crate::kinds::reconcilers(&set), true).await;
        assert_eq!(
            keyless.num_calls(),
            0,
            "switched to API_KEY with no key sent: {:#?}",
            report.resources[0]
        );
        assert!(report.resources[0].error().is_some(), "{:#?}", report.resources[0]);
    }
}
