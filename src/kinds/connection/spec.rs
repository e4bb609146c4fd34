//! `kind: Connection`: an EventBridge connection with API-key authorization, the key read
//! from Secrets Manager.


use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::Metadata;
use crate::manifest::error::Findings;

/// An EventBridge connection with API-key authorization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionSpec {
    /// Name in EventBridge. Defaults to `metadata.name`.
    #[serde(default)]
    pub connection_name: Option<String>,
    /// The API key sent with every call.
    pub api_key: ApiKeySpec,
}

/// Where the API key comes from. Its value is read from Secrets Manager when the
/// connection is created or the secret changes, handed to EventBridge, and never shown.
/// Without `secretId` the key is left as it is: mooring takes the connection over (its
/// header name, its ownership marker) but never sends a key, and cannot create it. That is
/// how `mooring import` writes a connection, since EventBridge never returns the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKeySpec {
    /// HTTP header that carries the key, e.g. `x-api-key`.
    pub header_name: String,
    /// The Secrets Manager secret holding the key: its name (e.g. `salon/prd/scheduler-key`)
    /// or its ARN, as Secrets Manager's `SecretId` takes either. Unset: the live key is kept
    /// and never sent (the connection must exist).
    #[serde(default)]
    pub secret_id: Option<String>,
    /// When the secret is a JSON object: the key of the field holding the API key.
    #[serde(default)]
    pub secret_key: Option<String>,
}

/// EventBridge names: 1-64 letters, digits, `.`, `-`, `_`.
pub(crate) fn check_name(name: &str, pointer: &str, f: &mut Findings<'_>) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b));
    if !ok {
        f.at(
            pointer,
            format!("`{name}` is not a valid EventBridge name (1-64 letters, digits, `.-_`)"),
        );
    }
}

impl ConnectionSpec {
    /// The connection's name in EventBridge.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.connection_name.as_deref().unwrap_or(&meta.name)
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        check_name(self.aws_name(meta), "/spec/connectionName", f);
        let k = &self.api_key;
        let header_ok = !k.header_name.is_empty()
            && k.header_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if !header_ok {
            f.at("/spec/apiKey/headerName", "must be an HTTP header name");
        }
        let Some(id) = &k.secret_id else {
            if k.secret_key.is_some() {
                f.at(
                    "/spec/apiKey/secretKey",
                    "names a field of the secret: set `secretId` too",
                );
            }
            return;
        };
        if id.starts_with("arn:") {
            if !id.contains(":secretsmanager:") {
                f.at(
                    "/spec/apiKey/secretId",
                    format!("`{id}` is not a Secrets Manager secret ARN"),
                );
            }
        } else if id.is_empty()
            || id.len() > 512
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
        {
            f.at(
                "/spec/apiKey/secretId",
                format!("`{id}` is not a secret name (letters, digits and /_+=.@-) or ARN"),
            );
        }
    }
}
