//! `kind: ApiDestination`: an EventBridge API destination (endpoint, method, rate limit).


use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kinds::from::Value;
use crate::manifest::Metadata;
use crate::manifest::error::Findings;
use crate::kinds::connection::spec::check_name;

/// An EventBridge API destination: an HTTPS endpoint of the backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiDestinationSpec {
    /// Name in EventBridge. Defaults to `metadata.name`.
    #[serde(default)]
    pub api_destination_name: Option<String>,
    /// `metadata.name` of the `Connection` manifest that authorizes the calls.
    pub connection: String,
    /// HTTPS URL to call, e.g. `https://api.example.com/salons/reset-queue`, or read from
    /// another resource, e.g. `{from: LoadBalancer/alb, field: dnsName, format:
    /// "https://{}/salons/reset-queue"}`.
    pub endpoint: Value,
    /// HTTP method.
    pub http_method: HttpMethod,
    /// Most calls per second (1-300). Default 300.
    #[serde(default)]
    pub invocation_rate_limit_per_second: Option<u32>,
}

/// HTTP methods an API destination can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HttpMethod {
    /// GET.
    GET,
    /// POST.
    POST,
    /// PUT.
    PUT,
    /// PATCH.
    PATCH,
    /// DELETE.
    DELETE,
    /// HEAD.
    HEAD,
    /// OPTIONS.
    OPTIONS,
}

impl HttpMethod {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::GET => "GET",
            HttpMethod::POST => "POST",
            HttpMethod::PUT => "PUT",
            HttpMethod::PATCH => "PATCH",
            HttpMethod::DELETE => "DELETE",
            HttpMethod::HEAD => "HEAD",
            HttpMethod::OPTIONS => "OPTIONS",
        }
    }
}

impl ApiDestinationSpec {
    /// The API destination's name in EventBridge.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.api_destination_name.as_deref().unwrap_or(&meta.name)
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        check_name(self.aws_name(meta), "/spec/apiDestinationName", f);
        match &self.endpoint {
            Value::Literal(url) => {
                let host = url.strip_prefix("https://");
                if host.is_none_or(|h| {
                    h.is_empty() || h.starts_with('/') || h.contains(char::is_whitespace)
                }) {
                    f.at(
                        "/spec/endpoint",
                        format!(
                            "`{url}` is not an https:// URL (EventBridge calls HTTPS endpoints only)"
                        ),
                    );
                }
            }
            Value::From(v) => {
                if !v
                    .format
                    .as_deref()
                    .is_some_and(|t| t.starts_with("https://{}"))
                {
                    f.at(
                        "/spec/endpoint/format",
                        format!(
                            "the endpoint read from {} must be an https:// URL: give a `format` that starts with `https://{{}}`, e.g. `https://{{}}/api/jobs` (EventBridge calls HTTPS endpoints only)",
                            v.from
                        ),
                    );
                }
            }
        }
        if let Some(r) = self
            .invocation_rate_limit_per_second
            .filter(|r| !(1..=300).contains(r))
        {
            f.at(
                "/spec/invocationRateLimitPerSecond",
                format!("{r} is outside 1-300"),
            );
        }
    }
}
