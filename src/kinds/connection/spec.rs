//! `kind: Connection`: an EventBridge connection (API key, basic or OAuth client
//! credentials), its secret part read from Secrets Manager.


use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::Metadata;
use crate::manifest::error::Findings;

/// An EventBridge connection: how EventBridge authorizes its calls to an API destination.
/// Exactly one of `apiKey`, `basic` and `oauth`; each takes its secret part (the key, the
/// password, the client secret) from Secrets Manager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionSpec {
    /// Name in EventBridge. Defaults to `metadata.name`.
    #[serde(default)]
    pub connection_name: Option<String>,
    /// An API key sent in a header with every call (`API_KEY`).
    #[serde(default)]
    pub api_key: Option<ApiKeySpec>,
    /// HTTP basic authorization (`BASIC`): a user name and its password.
    #[serde(default)]
    pub basic: Option<BasicSpec>,
    /// OAuth client credentials (`OAUTH_CLIENT_CREDENTIALS`): EventBridge gets a token from
    /// the authorization endpoint with the client ID and secret, and sends it with calls.
    #[serde(default)]
    pub oauth: Option<OAuthSpec>,
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

/// HTTP basic authorization. The password is read from Secrets Manager like an API key
/// (`secretId`, `secretKey`); without `secretId` the live password is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BasicSpec {
    /// The user name (not a secret: EventBridge returns it).
    pub username: String,
    /// The Secrets Manager secret holding the password (name or ARN).
    #[serde(default)]
    pub secret_id: Option<String>,
    /// When the secret is a JSON object: the key of the field holding the password.
    #[serde(default)]
    pub secret_key: Option<String>,
}

/// OAuth client credentials. The client secret is read from Secrets Manager (`secretId`,
/// `secretKey`); without `secretId` the live client secret is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OAuthSpec {
    /// The token endpoint, an `https://` URL.
    pub authorization_endpoint: String,
    /// The method EventBridge calls the endpoint with.
    #[serde(default)]
    pub http_method: OAuthMethod,
    /// The client ID (not a secret: EventBridge returns it).
    pub client_id: String,
    /// The Secrets Manager secret holding the client secret (name or ARN).
    #[serde(default)]
    pub secret_id: Option<String>,
    /// When the secret is a JSON object: the key of the field holding the client secret.
    #[serde(default)]
    pub secret_key: Option<String>,
    /// Extra body parameters of the token request, e.g. `scope` or `audience`. Not
    /// secrets: EventBridge returns them, and plan shows them.
    #[serde(default)]
    pub body_parameters: std::collections::BTreeMap<String, String>,
}

/// The HTTP method of an OAuth token request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum OAuthMethod {
    /// `GET`.
    Get,
    /// `POST`, the default (client credentials are usually posted).
    #[default]
    Post,
    /// `PUT`.
    Put,
}

impl OAuthMethod {
    /// The method as EventBridge spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
        }
    }
}

/// The one authorization form of a connection.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// `apiKey`.
    ApiKey(&'a ApiKeySpec),
    /// `basic`.
    Basic(&'a BasicSpec),
    /// `oauth`.
    OAuth(&'a OAuthSpec),
}

/// Where an authorization's secret part comes from.
#[derive(Debug, Clone, Copy)]
pub struct SecretSource<'a> {
    /// `secretId`; `None`: the live secret part is kept.
    pub id: Option<&'a str>,
    /// `secretKey`.
    pub key: Option<&'a str>,
    /// The manifest field it sits under (`apiKey`, `basic`, `oauth`).
    pub field: &'static str,
    /// What the secret holds, for messages (`API key`, `password`, `client secret`).
    pub what: &'static str,
}

impl Auth<'_> {
    /// EventBridge's `AuthorizationType`.
    pub fn authorization_type(self) -> &'static str {
        match self {
            Self::ApiKey(_) => "API_KEY",
            Self::Basic(_) => "BASIC",
            Self::OAuth(_) => "OAUTH_CLIENT_CREDENTIALS",
        }
    }

    /// Where the secret part comes from.
    pub fn secret(&self) -> SecretSource<'_> {
        let (id, key, field, what) = match self {
            Self::ApiKey(k) => (&k.secret_id, &k.secret_key, "apiKey", "API key"),
            Self::Basic(b) => (&b.secret_id, &b.secret_key, "basic", "password"),
            Self::OAuth(o) => (&o.secret_id, &o.secret_key, "oauth", "client secret"),
        };
        SecretSource {
            id: id.as_deref(),
            key: key.as_deref(),
            field,
            what,
        }
    }
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

/// Checks a user name or client ID at `pointer` as EventBridge does: 1-512 characters,
/// no control character, no `:` (it separates user and password in basic authorization).
fn check_credential(value: &str, pointer: &str, f: &mut Findings<'_>) {
    if value.trim().is_empty()
        || value.chars().count() > 512
        || value.chars().any(|c| c == ':' || (c.is_control() && c != '\t'))
    {
        f.at(
            pointer,
            "must be 1-512 characters, not all blank, with no `:` and no control character",
        );
    }
}

/// True for an `https://` URL (scheme in any case) with a host, at most 2048 characters of
/// the characters EventBridge allows in an endpoint.
fn https_url(url: &str) -> bool {
    let Some(rest) = url
        .get(..8)
        .filter(|scheme| scheme.eq_ignore_ascii_case("https://"))
        .map(|_| &url[8..])
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    url.len() <= 2048
        && !host.is_empty()
        && !host.starts_with(':')
        && url
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-()_.!~*';/?:@&=+$,%#".contains(c))
}

impl ConnectionSpec {
    /// The connection's name in EventBridge.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.connection_name.as_deref().unwrap_or(&meta.name)
    }

    /// The authorization form. Validation refuses a manifest with none or several, so a
    /// loaded manifest has exactly one; unvalidated, the first given wins, and none at all
    /// reads as an API key in no header.
    pub fn auth(&self) -> Auth<'_> {
        static NONE: ApiKeySpec = ApiKeySpec {
            header_name: String::new(),
            secret_id: None,
            secret_key: None,
        };
        match (&self.api_key, &self.basic, &self.oauth) {
            (Some(k), _, _) => Auth::ApiKey(k),
            (None, Some(b), _) => Auth::Basic(b),
            (None, None, Some(o)) => Auth::OAuth(o),
            (None, None, None) => Auth::ApiKey(&NONE),
        }
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        check_name(self.aws_name(meta), "/spec/connectionName", f);
        let given = [
            self.api_key.is_some(),
            self.basic.is_some(),
            self.oauth.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            f.at(
                "/spec",
                format!(
                    "a connection authorizes one way: set exactly one of `apiKey`, `basic` and `oauth` ({given} set)"
                ),
            );
            return;
        }
        let auth = self.auth();
        match auth {
            Auth::ApiKey(k) => {
                let header_ok = !k.header_name.is_empty()
                    && k.header_name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                if !header_ok {
                    f.at("/spec/apiKey/headerName", "must be an HTTP header name");
                }
            }
            Auth::Basic(b) => check_credential(&b.username, "/spec/basic/username", f),
            Auth::OAuth(o) => {
                if !https_url(&o.authorization_endpoint) {
                    f.at(
                        "/spec/oauth/authorizationEndpoint",
                        format!(
                            "`{}` is not an https:// URL of at most 2048 characters (EventBridge calls it for tokens)",
                            o.authorization_endpoint.escape_debug()
                        ),
                    );
                }
                check_credential(&o.client_id, "/spec/oauth/clientId", f);
                if o.body_parameters.len() > 100 {
                    f.at(
                        "/spec/oauth/bodyParameters",
                        format!("{} parameters; EventBridge takes at most 100", o.body_parameters.len()),
                    );
                }
                for (name, value) in &o.body_parameters {
                    let pointer = format!(
                        "/spec/oauth/bodyParameters/{}",
                        crate::manifest::yaml::escape_segment(name)
                    );
                    if name.is_empty() || name.chars().count() > 512 || name.chars().any(char::is_control) {
                        f.at(&pointer, "a parameter name is 1-512 characters, none a control character");
                    } else if value.is_empty()
                        || value.chars().count() > 512
                        || value.chars().any(|c| c.is_control() && c != '\t' && c != '\n' && c != '\r')
                    {
                        f.at(&pointer, "a parameter value is 1-512 characters, no control character but tabs and line breaks");
                    }
                }
            }
        }
        let secret = auth.secret();
        let field = secret.field;
        let Some(id) = secret.id else {
            if secret.key.is_some() {
                f.at(
                    &format!("/spec/{field}/secretKey"),
                    "names a field of the secret: set `secretId` too",
                );
            }
            return;
        };
        if id.starts_with("arn:") {
            if !id.contains(":secretsmanager:") {
                f.at(
                    &format!("/spec/{field}/secretId"),
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
                &format!("/spec/{field}/secretId"),
                format!("`{id}` is not a secret name (letters, digits and /_+=.@-) or ARN"),
            );
        }
    }
}
