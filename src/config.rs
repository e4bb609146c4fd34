//! The operator's own configuration (`mooring run --config FILE`): alert sinks, deploy
//! notification sinks, the status site's external URL and the git-push webhook secret. Secrets (webhook URLs, the HMAC key) are read from an
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
//!       severities: [critical]
//! deploys:
//!   slack:
//!     - webhookUrl: {env: SLACK_DEPLOYS_URL}
//!       when:
//!         - outcomes: [failed]
//!         - outcomes: [succeeded]
//!           stacks: [production]
//! externalUrl: https://mooring.example/
//! webhook:
//!   secret: {env: MOORING_WEBHOOK_SECRET}
//! ```

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

pub use crate::alerts::Severity;
pub use crate::deploys::DeployRule;
use crate::manifest::yaml::parse_documents;

/// The whole operator configuration.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OperatorConfig {
    /// Where drift, failure and rejected-manifest alerts go.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// Where deploy notifications go (a stream of their own, beside alerts).
    #[serde(default)]
    pub deploys: DeploysConfig,
    /// The address people reach this daemon's status pages at (`https://mooring.example/`):
    /// alerts and deploy notifications link to `<externalUrl>/resources/{Kind}/{name}`.
    #[serde(default)]
    pub external_url: Option<String>,
    /// The git-push webhook (`POST /reconcile`).
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

impl OperatorConfig {
    /// Every SNS topic it publishes to: alert topics, then deploy topics.
    pub fn sns_topics(&self) -> Vec<String> {
        let alerts = self.alerts.sns.iter().map(|s| s.topic_arn.clone());
        let deploys = self.deploys.sns.iter().map(|s| s.topic_arn.clone());
        let mut topics: Vec<String> = alerts.chain(deploys).collect();
        topics.dedup();
        topics
    }
}

/// Alert sinks; every alert goes to all of them that take it.
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
    /// Only alerts about resources of these kinds (`Service`, …); any when empty.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Only alerts of these severities (`warning`, `critical`); any when empty.
    #[serde(default)]
    pub severities: Vec<Severity>,
    /// Only alerts about resources of these manifest names; any when empty.
    #[serde(default)]
    pub names: Vec<String>,
}

/// A Slack incoming webhook.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SlackSink {
    /// The incoming-webhook URL.
    pub webhook_url: Secret,
    /// Only alerts about resources of these kinds (`Service`, …); any when empty.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Only alerts of these severities (`warning`, `critical`); any when empty.
    #[serde(default)]
    pub severities: Vec<Severity>,
    /// Only alerts about resources of these manifest names; any when empty.
    #[serde(default)]
    pub names: Vec<String>,
}

/// An SNS topic.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SnsSink {
    /// The topic's ARN.
    pub topic_arn: String,
    /// Only alerts about resources of these kinds (`Service`, …); any when empty.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Only alerts of these severities (`warning`, `critical`); any when empty.
    #[serde(default)]
    pub severities: Vec<Severity>,
    /// Only alerts about resources of these manifest names; any when empty.
    #[serde(default)]
    pub names: Vec<String>,
}

/// Deploy notification sinks: each takes the notifications its `when` rules take (all,
/// without rules).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeploysConfig {
    /// Generic JSON webhooks (one JSON object per notification: enough for a board item).
    #[serde(default)]
    pub webhooks: Vec<DeployWebhookSink>,
    /// Slack incoming webhooks (a Block Kit message).
    #[serde(default)]
    pub slack: Vec<DeploySlackSink>,
    /// SNS topics (the readable text, then the JSON).
    #[serde(default)]
    pub sns: Vec<DeploySnsSink>,
    /// How long a rollout is followed before the deploy counts as failed (default 1800).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// A JSON webhook for deploy notifications.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeployWebhookSink {
    /// The URL (a secret).
    pub url: Secret,
    /// Which notifications it takes (any rule; all without rules).
    #[serde(default)]
    pub when: Vec<DeployRule>,
}

/// A Slack incoming webhook for deploy notifications.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeploySlackSink {
    /// The incoming-webhook URL.
    pub webhook_url: Secret,
    /// Which notifications it takes (any rule; all without rules).
    #[serde(default)]
    pub when: Vec<DeployRule>,
}

/// An SNS topic for deploy notifications.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeploySnsSink {
    /// The topic's ARN.
    pub topic_arn: String,
    /// Which notifications it takes (any rule; all without rules).
    #[serde(default)]
    pub when: Vec<DeployRule>,
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
    for (i, w) in config.deploys.webhooks.iter().enumerate() {
        secrets.push((format!("deploys.webhooks[{i}].url"), &w.url));
    }
    for (i, s) in config.deploys.slack.iter().enumerate() {
        secrets.push((format!("deploys.slack[{i}].webhookUrl"), &s.webhook_url));
    }
    if let Some(w) = &config.webhook {
        secrets.push(("webhook.secret".into(), &w.secret));
    }
    for (field, secret) in secrets {
        secret
            .resolve()
            .map_err(|e| format!("{}: {field}: {e}", path.display()))?;
    }
    let topics = config
        .alerts
        .sns
        .iter()
        .map(|s| ("alerts", &s.topic_arn))
        .chain(config.deploys.sns.iter().map(|s| ("deploys", &s.topic_arn)));
    let mut counts = std::collections::HashMap::new();
    for (stream, topic) in topics {
        let i = counts.entry(stream).or_insert(0usize);
        if !(topic.starts_with("arn:") && topic.contains(":sns:")) {
            // The value is not shown: config errors never echo config values.
            return Err(format!(
                "{}: {stream}.sns[{i}].topicArn: not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
                path.display(),
            ));
        }
        *i += 1;
    }
    let kinds = config
        .alerts
        .webhooks
        .iter()
        .map(|w| ("webhooks", &w.kinds))
        .enumerate()
        .chain(
            config
                .alerts
                .slack
                .iter()
                .map(|s| ("slack", &s.kinds))
                .enumerate(),
        )
        .chain(
            config
                .alerts
                .sns
                .iter()
                .map(|s| ("sns", &s.kinds))
                .enumerate(),
        );
    for (i, (sink, kinds)) in kinds {
        for k in kinds {
            if crate::manifest::Kind::parse(k).is_none() {
                return Err(format!(
                    "{}: alerts.{sink}[{i}].kinds: unknown kind `{k}`",
                    path.display()
                ));
            }
        }
    }
    if let Some(url) = &config.external_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(format!(
            "{}: externalUrl: must start with https:// or http://",
            path.display()
        ));
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

    #[test]
    fn deploy_sinks_and_alert_filters_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mooring.yaml");
        std::fs::write(
            &cfg,
            "alerts:\n  slack:\n    - webhookUrl: {value: 'http://127.0.0.1:9/a'}\n      kinds: [Service]\n      severities: [critical]\n      names: [api]\ndeploys:\n  timeoutSeconds: 600\n  webhooks:\n    - url: {value: 'http://127.0.0.1:9/d'}\n      when:\n        - outcomes: [failed]\n        - outcomes: [succeeded]\n          stacks: [production]\n  slack:\n    - webhookUrl: {value: 'http://127.0.0.1:9/s'}\n  sns:\n    - topicArn: arn:aws:sns:eu-west-1:1:deploys\nexternalUrl: https://mooring.example/\n",
        )
        .unwrap();
        let c = load(&cfg).unwrap();
        assert_eq!(c.alerts.slack[0].severities, [Severity::Critical]);
        assert_eq!(c.alerts.slack[0].kinds, ["Service"]);
        assert_eq!(c.deploys.webhooks[0].when.len(), 2);
        assert_eq!(
            c.deploys.webhooks[0].when[1].outcomes,
            [crate::deploys::Outcome::Succeeded]
        );
        assert_eq!(c.deploys.webhooks[0].when[1].stacks, ["production"]);
        assert!(c.deploys.slack[0].when.is_empty());
        assert_eq!(c.deploys.timeout_seconds, Some(600));
        assert_eq!(c.external_url.as_deref(), Some("https://mooring.example/"));
        let sinks = crate::alerts::Sinks::from_config(&c, None).unwrap();
        assert!(!sinks.is_empty());
        assert_eq!(
            c.sns_topics(),
            ["arn:aws:sns:eu-west-1:1:deploys"],
            "for the IAM policy"
        );

        for (text, error) in [
            (
                "alerts:\n  webhooks:\n    - url: {value: x}\n      kinds: [Servise]\n",
                "alerts.webhooks[0].kinds: unknown kind `Servise`",
            ),
            (
                "deploys:\n  sns:\n    - topicArn: nope\n",
                "deploys.sns[0].topicArn: not an SNS topic ARN",
            ),
            (
                "deploys:\n  slack:\n    - webhookUrl: {env: MOORING_TEST_SURELY_UNSET_VAR}\n",
                "deploys.slack[0].webhookUrl: environment variable",
            ),
            (
                "externalUrl: mooring.example\n",
                "externalUrl: must start with https://",
            ),
            (
                "deploys:\n  webhooks:\n    - url: {value: x}\n      when: [{outcomes: [exploded]}]\n",
                "unknown variant `exploded`",
            ),
            (
                "alerts:\n  sns:\n    - topicArn: arn:aws:sns:r:1:t\n      severities: [loud]\n",
                "unknown variant `loud`",
            ),
        ] {
            std::fs::write(&cfg, text).unwrap();
            let e = load(&cfg).unwrap_err();
            assert!(e.contains(error), "{text}: {e}");
        }
    }
}
