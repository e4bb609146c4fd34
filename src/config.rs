//! The operator's own configuration (`mooring run --config FILE`): alert sinks and the
//! git-push webhook secret. Secrets (webhook URLs, the HMAC key) are read from an
//! environment variable or a file — e.g. a mounted Kubernetes Secret — or, for local use
//! only, given inline.
//!
//! ```yaml
//! alerts:
//!   webhooks:
//!     - url: {env: ALERT_WEBHOOK_URL}
//!   slack:
//!     - webhookUrl: {file: /var/run/secrets/mooring/slack-url}
//!   sns:
//!     - topicArn: arn:aws:sns:eu-west-1:123456789012:mooring-alerts
//! webhook:
//!   secret: {env: MOORING_WEBHOOK_SECRET}
//! ```

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::manifest::yaml::parse_documents;

/// The whole operator configuration.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OperatorConfig {
    /// Where drift, failure and rejected-manifest alerts go.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// The git-push webhook (`POST /reconcile`).
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

/// Alert sinks; every alert goes to all of them.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlertsConfig {
    /// Generic JSON webhooks: the alert is POSTed as JSON.
    #[serde(default)]
    pub webhooks: Vec<WebhookSink>,
    /// Slack incoming webhooks: a readable message.
    #[serde(default)]
    pub slack: Vec<SlackSink>,
    /// SNS topics: the readable message, with the JSON alert as message attributes.
    #[serde(default)]
    pub sns: Vec<SnsSink>,
}

/// A generic JSON webhook.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookSink {
    /// The URL (a secret: it often carries a token).
    pub url: Secret,
}

/// A Slack incoming webhook.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SlackSink {
    /// The incoming-webhook URL.
    pub webhook_url: Secret,
}

/// An SNS topic.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SnsSink {
    /// The topic's ARN.
    pub topic_arn: String,
}

/// The git-push webhook.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookConfig {
    /// The shared secret that signs pushes (`X-Hub-Signature-256`).
    pub secret: Secret,
}

/// A secret value: from an environment variable, a file, or inline (local use only).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Secret {
    /// Name of an environment variable holding it.
    #[serde(default)]
    pub env: Option<String>,
    /// Path of a file holding it (surrounding whitespace is trimmed).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The value itself. Avoid outside local testing: it would live in the config file.
    #[serde(default)]
    pub value: Option<String>,
}

impl Secret {
    /// Reads the value. The error names where it was looked for, never the value — and
    /// names the variable only when it looks like a variable name, since a secret pasted
    /// into `env:` by mistake must not be echoed either.
    pub fn resolve(&self) -> Result<String, String> {
        match (&self.env, &self.file, &self.value) {
            (Some(var), None, None) => std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    if looks_like_variable_name(var) {
                        format!("environment variable {var} is not set")
                    } else {
                        "`env` must name an environment variable (letters, digits and `_`); \
                         the value given is not shown"
                            .to_string()
                    }
                }),
            (None, Some(path), None) => std::fs::read_to_string(path)
                .map(|v| v.trim().to_string())
                .map_err(|e| format!("cannot read {}: {e}", path.display())),
            (None, None, Some(v)) => Ok(v.clone()),
            _ => Err("set exactly one of `env`, `file` and `value`".into()),
        }
    }
}

/// `FOO_BAR`-style: letters, digits and `_`, not starting with a digit, at most 128 long.
fn looks_like_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// serde quotes the offending value in some errors (`invalid type: string "https://…"`);
/// in this file that value may be a secret written inline by mistake.
fn hide_values(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(start) = rest.find("string \"") {
        let (before, after) = rest.split_at(start + "string \"".len());
        out.push_str(before);
        match after.find('"') {
            Some(end) => {
                out.push_str("(value hidden)\"");
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("(value hidden)");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Loads and checks a configuration file; every secret must resolve now, so a daemon
/// never starts with an alert sink it cannot use.
pub fn load(path: &Path) -> Result<OperatorConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let (docs, errors) = parse_documents(&text);
    if let Some(e) = errors.first() {
        return Err(format!(
            "{}:{}:{}: {}",
            path.display(),
            e.mark.line,
            e.mark.col,
            e.message
        ));
    }
    let Some(doc) = docs.into_iter().find(|d| !d.value.is_null()) else {
        return Ok(OperatorConfig::default());
    };
    let config: OperatorConfig = serde_json::from_value(doc.value.clone())
        .map_err(|e| format!("{}: {}", path.display(), hide_values(&e.to_string())))?;
    let mut secrets: Vec<(String, &Secret)> = Vec::new();
    for (i, w) in config.alerts.webhooks.iter().enumerate() {
        secrets.push((format!("alerts.webhooks[{i}].url"), &w.url));
    }
    for (i, s) in config.alerts.slack.iter().enumerate() {
        secrets.push((format!("alerts.slack[{i}].webhookUrl"), &s.webhook_url));
    }
    if let Some(w) = &config.webhook {
        secrets.push(("webhook.secret".into(), &w.secret));
    }
    for (field, secret) in secrets {
        secret
            .resolve()
            .map_err(|e| format!("{}: {field}: {e}", path.display()))?;
    }
    for (i, s) in config.alerts.sns.iter().enumerate() {
        if !(s.topic_arn.starts_with("arn:") && s.topic_arn.contains(":sns:")) {
            // The value is not shown: config errors never echo config values.
            return Err(format!(
                "{}: alerts.sns[{i}].topicArn: not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
                path.display(),
            ));
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_env_files_or_inline_and_errors_never_show_them() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("slack");
        std::fs::write(&secret_file, "https://hooks.slack.example/T/B/xyz\n").unwrap();
        let cfg = dir.path().join("mooring.yaml");
        std::fs::write(
            &cfg,
            format!(
                "alerts:\n  webhooks:\n    - url: {{value: 'http://127.0.0.1:9/hook'}}\n  slack:\n    - webhookUrl: {{file: {}}}\n  sns:\n    - topicArn: arn:aws:sns:eu-west-1:1:alerts\nwebhook:\n  secret: {{value: s3cret}}\n",
                secret_file.display()
            ),
        )
        .unwrap();
        let c = load(&cfg).unwrap();
        assert_eq!(
            c.alerts.slack[0].webhook_url.resolve().unwrap(),
            "https://hooks.slack.example/T/B/xyz"
        );
        assert_eq!(c.webhook.unwrap().secret.resolve().unwrap(), "s3cret");

        std::fs::write(
            &cfg,
            "alerts:\n  webhooks:\n    - url: {env: MOORING_TEST_SURELY_UNSET_VAR}\n",
        )
        .unwrap();
        let e = load(&cfg).unwrap_err();
        assert!(
            e.ends_with("alerts.webhooks[0].url: environment variable MOORING_TEST_SURELY_UNSET_VAR is not set"),
            "{e}"
        );
        std::fs::write(&cfg, "alerts:\n  sns:\n    - topicArn: not-a-topic-xyz\n").unwrap();
        let e = load(&cfg).unwrap_err();
        assert!(
            e.contains("topicArn: not an SNS topic ARN") && !e.contains("not-a-topic-xyz"),
            "{e}"
        );
        std::fs::write(
            &cfg,
            "alerts:\n  slack:\n    - webhookUrl: https://hooks.slack.example/T/B/secret-token\n",
        )
        .unwrap();
        let e = load(&cfg).unwrap_err();
        assert!(!e.contains("secret-token"), "{e}");
        assert!(e.contains("invalid type"), "{e}");
        // A secret pasted into `env:` (or given as a list) is never echoed.
        for pasted in [
            "{env: 'https://hooks.slack.example/T/B/pasted-token'}",
            "{env: [pasted-token]}",
            "[pasted-token]",
            "{env: pasted-token}",
        ] {
            std::fs::write(
                &cfg,
                format!("alerts:\n  slack:\n    - webhookUrl: {pasted}\n"),
            )
            .unwrap();
            let e = load(&cfg).unwrap_err();
            assert!(!e.contains("pasted-token"), "{pasted}: {e}");
            assert!(!e.contains("hooks.slack"), "{pasted}: {e}");
        }
        std::fs::write(&cfg, "webhook:\n  secret: {env: 's3cr3t value'}\n").unwrap();
        let e = load(&cfg).unwrap_err();
        assert!(
            e.contains("webhook.secret: `env` must name an environment variable"),
            "{e}"
        );
        assert!(!e.contains("s3cr3t"), "{e}");
        std::fs::write(&cfg, "alerts:\n  slak: []\n").unwrap();
        assert!(load(&cfg).unwrap_err().contains("unknown field `slak`"));
    }
}
