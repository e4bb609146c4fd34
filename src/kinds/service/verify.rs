//! Verifying a deploy after its rollout (`spec.deploy.verify`): an HTTP GET of a URL the
//! service answers once ECS reports the rollout of the new revision completed, repeated
//! until it answers the expected status or `timeoutSeconds` pass. The daemon runs it in
//! the task that follows the rollout (no other resource waits for it); `apply --wait` runs
//! it after its own wait.
//!
//! On failure, with `rollbackOnFailure: true`, the service is rolled back out to the
//! revision it ran before the deploy (UpdateService), and the failed revision is recorded
//! as the tag `mooring.dev/deploy: failed` on the task definition revision before that, so
//! neither this process, a restarted one nor another replica deploys it again; a manifest
//! change renders another revision, which is tried.
//!
//! The URL may carry credentials: plan, logs, status and notifications show it redacted
//! ([`crate::source::git::redact_url`]), and errors never repeat it.

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::Tag;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tracing::{info, warn};

use super::spec::ServiceSpec;
use crate::aws::AwsError;
use crate::deploys::Begun;
use crate::manifest::error::Findings;
use crate::reconcile::diff::FieldChange;

/// The tag on a task definition revision whose deploy failed and was rolled back.
pub const TAG: &str = "mooring.dev/deploy";
/// Its value.
pub const FAILED: &str = "failed";
/// The field plan shows the check under.
pub const FIELD: &str = "verify";
/// `expectStatus` when the manifest leaves it out.
pub const DEFAULT_STATUS: u16 = 200;
/// `timeoutSeconds` when the manifest leaves it out.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 60;
/// The longest `timeoutSeconds` (an hour).
const MAX_TIMEOUT_SECONDS: u32 = 3600;
/// The pause between two attempts.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// The longest single request: a slow answer is tried again within the timeout.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(10);

/// An HTTP check after the rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerifySpec {
    /// The URL to GET (`http://` or `https://`), e.g. the load balancer's internal name and
    /// the health path: `http://internal-api-123.eu-west-1.elb.amazonaws.com/api/health`.
    /// Redirects are not followed: their status is what counts.
    pub url: String,
    /// The status that counts as success (100-599). Default 200.
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// Seconds to keep trying after the rollout completed (1-3600), one attempt a second;
    /// then the deploy fails. Default 60.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
}

fn default_status() -> u16 {
    DEFAULT_STATUS
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_SECONDS
}

/// Checks `spec.deploy.verify` and `spec.deploy.rollbackOnFailure`.
pub fn check(spec: &ServiceSpec, f: &mut Findings<'_>) {
    let base = "/spec/deploy/verify";
    match &spec.deploy.verify {
        Some(v) => {
            if let Err(why) = parse_url(&v.url) {
                f.at(&format!("{base}/url"), why);
            }
            if !(100..=599).contains(&v.expect_status) {
                f.at(
                    &format!("{base}/expectStatus"),
                    format!("{} is not an HTTP status (100-599)", v.expect_status),
                );
            }
            if !(1..=MAX_TIMEOUT_SECONDS).contains(&v.timeout_seconds) {
                f.at(
                    &format!("{base}/timeoutSeconds"),
                    format!("{} is outside 1-{MAX_TIMEOUT_SECONDS}", v.timeout_seconds),
                );
            }
        }
        None if spec.deploy.rollback_on_failure => f.warn(
            "/spec/deploy/rollbackOnFailure",
            "has no effect without `verify` (ECS's own circuit breaker rolls back failed tasks: `deployment.circuitBreaker`)",
        ),
        None => {}
    }
}

/// Host and port of an `http://` or `https://` URL, or why it is not one.
fn parse_url(url: &str) -> Result<(String, u16), String> {
    let shown = crate::source::git::redact_url(url);
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{shown}` is not a URL: it needs `http://` or `https://`"))?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        other => return Err(format!("the scheme `{other}` is not http or https")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => (format!("[{h}]"), p.strip_prefix(':')),
            None => return Err(format!("`{shown}` has an unclosed IPv6 address")),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (host_port.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("`{shown}` names no host"));
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{shown}` has a space or control character in its host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{shown}` has the port `{p}`, not 1-65535"))?,
    };
    Ok((host, port))
}

/// What plan says about the check when the service would roll out a new revision (or be
/// created): one [`FIELD`] entry, shown as `verify: GET URL expects 200 after the rollout`.
pub fn plan_note(spec: &ServiceSpec, creating: bool, changes: &[FieldChange]) -> Option<FieldChange> {
    let v = spec.deploy.verify.as_ref()?;
    let rolls = creating
        || changes
            .iter()
            .any(|c| c.field == "taskDefinition" || c.field.starts_with("taskDefinition."));
    if !rolls {
        return None;
    }
    Some(FieldChange {
        field: FIELD.to_string(),
        live: Json::Null,
        desired: Json::String(format!(
            "GET {} expects {} after the rollout{}",
            crate::source::git::redact_url(&v.url),
            v.expect_status,
            if spec.deploy.rollback_on_failure {
                ", else rolls back"
            } else {
                ""
            }
        )),
        note: None,
    })
}

/// One GET: the status, or why there was none. Blocking (ureq), so it runs on the blocking
/// pool; the URL never appears in the error.
async fn attempt(url: &str, limit: Duration) -> Result<u16, String> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(limit))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        match agent.get(&url).call() {
            Ok(response) => Ok(response.status().as_u16()),
            Err(ureq::Error::Timeout(_)) => Err(format!("no answer within {}s", limit.as_secs_f32().ceil())),
            Err(e) => Err(crate::source::git::scrub(&e.to_string().replace(&url, "(url)"), &url)),
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

/// GETs the URL until it answers `expectStatus` or `timeoutSeconds` pass. `Err` says what
/// was seen last: the status, or the error (connection refused, timeout), with the URL
/// redacted.
pub async fn probe(v: &VerifySpec) -> Result<(), String> {
    let shown = crate::source::git::redact_url(&v.url);
    let limit = Duration::from_secs(u64::from(v.timeout_seconds));
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        let left = limit.saturating_sub(started.elapsed());
        attempts += 1;
        let seen = match attempt(&v.url, left.clamp(Duration::from_millis(100), ATTEMPT_LIMIT)).await {
            Ok(status) if status == v.expect_status => {
                info!(url = %shown, status, attempts, "deploy verified");
                return Ok(());
            }
            Ok(status) => format!("answered {status}"),
            Err(e) => e,
        };
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(format!(
                "verify failed: GET {shown} expected {} within {}s, last {seen} ({attempts} attempt{})",
                v.expect_status,
                v.timeout_seconds,
                if attempts == 1 { "" } else { "s" }
            ));
        }
        tokio::time::sleep(RETRY_PAUSE.min(left)).await;
    }
}

/// Verifies the deploy `begun` describes (no check configured: success). On failure with
/// `rollbackOnFailure`, records the new revision as failed and rolls the service back out
/// to the one it ran before; the message says what was done. `Ok(true)` when verified,
/// `Ok(false)` when there was nothing to verify.
pub async fn after_rollout(ecs: &aws_sdk_ecs::Client, begun: &Begun) -> Result<bool, String> {
    let Some(v) = &begun.verify else {
        return Ok(false);
    };
    let failed = match probe(v).await {
        Ok(()) => return Ok(true),
        Err(failed) => failed,
    };
    warn!(service = %begun.service, error = %failed, "deploy failed its verify");
    if !begun.rollback_on_failure {
        return Err(format!("{failed}; the service stays on {}", begun.to_task_definition));
    }
    Err(format!("{failed}; {}", roll_back(ecs, begun).await))
}

/// Records `begun`'s revision as failed, then points the service back at the revision it
/// ran before. Says what happened (a failed write is said, not returned: the deploy has
/// failed either way).
pub async fn roll_back(ecs: &aws_sdk_ecs::Client, begun: &Begun) -> String {
    let Some(previous) = &begun.from_task_definition else {
        return "the service is new, there is no earlier revision to roll back to".to_string();
    };
    // First the record: a crash between the two leaves a service on the failed revision
    // (nothing redeploys it), never a service rolled back whose revision is deployed again.
    let recorded = record_failed(ecs, &begun.to_task_definition).await;
    let rolled = ecs
        .update_service()
        .cluster(&begun.cluster)
        .service(&begun.ecs_name)
        .task_definition(previous)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ecs:UpdateService", e));
    let mut out = match rolled {
        Ok(_) => {
            info!(service = %begun.service, task_definition = %previous, "rolled back after a failed verify");
            format!(
                "rolled back to {previous}; {} is not deployed again until the manifest changes",
                begun.to_task_definition
            )
        }
        Err(e) => format!("the rollback to {previous} failed: {e}"),
    };
    if let Err(e) = recorded {
        out.push_str(&format!(
            " (recording {} as failed failed too: {e}; this process still remembers it)",
            begun.to_task_definition
        ));
    }
    out
}

/// Records `td_arn` as a revision whose deploy failed (the tag [`TAG`]: [`FAILED`]), so that
/// no pass, restarted process or other replica deploys it again until the manifest renders
/// another revision: after a failed verify, and after ECS rolled a deployment back.
pub async fn record_failed(ecs: &aws_sdk_ecs::Client, td_arn: &str) -> Result<(), AwsError> {
    ecs.tag_resource()
        .resource_arn(td_arn)
        .tags(Tag::builder().key(TAG).value(FAILED).build())
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ecs:TagResource", e))?;
    Ok(())
}

/// True when the revision carries the failed tag, read from ECS now: for a revision a
/// service is about to move to whose earlier read may predate the tag (another replica's
/// record, or one made after this process cached it).
pub async fn recorded_failed(ecs: &aws_sdk_ecs::Client, td_arn: &str) -> Result<bool, AwsError> {
    let out = ecs
        .describe_task_definition()
        .task_definition(td_arn)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ecs:DescribeTaskDefinition", e))?;
    Ok(tagged_failed(out.tags()))
}

/// True when `tags` (of a task definition revision) record a failed deploy.
pub fn tagged_failed(tags: &[Tag]) -> bool {
    tags.iter()
        .any(|t| t.key() == Some(TAG) && t.value() == Some(FAILED))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "apiVersion: mooring.dev/v1alpha1
kind: Cluster
metadata: {name: prd}
spec: {}
---
apiVersion: mooring.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  cluster: prd
  network:
    subnets: {ids: [subnet-a]}
    securityGroups: {ids: [sg-1]}
  taskDefinition:
    cpu: 256
    memory: 512
    container: {image: 'api:1'}
  deploy:
DEPLOY";

    fn load(deploy: &str) -> (Vec<String>, Vec<String>) {
        match crate::manifest::load::load_with_stack(&[(
            "app.yaml".into(),
            SERVICE.replace("DEPLOY", deploy),
        )]) {
            Ok(set) => (
                Vec::new(),
                set.warnings.iter().map(|w| w.to_string()).collect(),
            ),
            Err(e) => (e.0.iter().map(|e| e.to_string()).collect(), Vec::new()),
        }
    }

    #[test]
    fn the_manifest_is_checked_with_positions() {
        let (errs, _) = load(
            "    rollbackOnFailure: true\n    verify:\n      url: http://internal-api.elb.amazonaws.com:8080/api/health\n      expectStatus: 204\n      timeoutSeconds: 120\n",
        );
        assert_eq!(errs, Vec::<String>::new());
        let (errs, _) = load(
            "    verify:\n      url: ftp://host/x\n      expectStatus: 600\n      timeoutSeconds: 0\n",
        );
        let expect = [
            "app.yaml:20:7: spec.deploy.verify.url: the scheme `ftp` is not http or https",
            "app.yaml:21:7: spec.deploy.verify.expectStatus: 600 is not an HTTP status (100-599)",
            "app.yaml:22:7: spec.deploy.verify.timeoutSeconds: 0 is outside 1-3600",
        ];
        for e in expect {
            assert!(errs.iter().any(|x| x.starts_with(e)), "missing {e} in {errs:#?}");
        }
        for (url, why) in [
            ("http:///health", "names no host"),
            ("http://user:pw@:80/health", "names no host"),
            ("api.internal/health", "needs `http://` or `https://`"),
            ("http://api:99999/health", "not 1-65535"),
        ] {
            let (errs, _) = load(&format!("    verify: {{url: '{url}'}}\n"));
            assert!(
                errs.iter().any(|e| e.contains("spec.deploy.verify.url") && e.contains(why)),
                "{url}: {errs:#?}"
            );
        }
        let (errs, _) = load("    verify: {url: 'https://user:hunter2@api.internal:0/x'}\n");
        assert!(!errs.is_empty() && errs.iter().all(|e| !e.contains("hunter2")), "{errs:#?}");
        let (errs, _) = load("    verify: {expectStatus: 200}\n");
        assert!(
            errs.iter().any(|e| e.contains("spec.deploy.verify") && e.contains("url")),
            "{errs:#?}"
        );
        let (errs, warnings) = load("    rollbackOnFailure: true\n");
        assert!(errs.is_empty(), "{errs:#?}");
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("spec.deploy.rollbackOnFailure: has no effect without `verify`")),
            "{warnings:#?}"
        );
    }

    #[test]
    fn urls_are_parsed_for_host_and_port() {
        assert_eq!(parse_url("http://a.b/x").unwrap(), ("a.b".into(), 80));
        assert_eq!(parse_url("HTTPS://a.b?x=1").unwrap(), ("a.b".into(), 443));
        assert_eq!(parse_url("http://u:p@10.0.0.1:3000/").unwrap(), ("10.0.0.1".into(), 3000));
        assert_eq!(parse_url("http://[::1]:8080/h").unwrap(), ("[::1]".into(), 8080));
        assert!(parse_url("http://[::1/h").is_err());
    }

    #[test]
    fn plan_shows_the_check_only_when_a_rollout_would_happen_and_hides_credentials() {
        let spec: ServiceSpec = serde_json::from_value(serde_json::json!({
            "cluster": "prd",
            "network": {"subnets": {"ids": ["subnet-1"]}, "securityGroups": {"ids": ["sg-1"]}},
            "taskDefinition": {"cpu": 256, "memory": 512, "container": {"image": "api:2"}},
            "deploy": {"verify": {"url": "https://ops:s3cret@api.internal/health?token=abc"}}
        }))
        .unwrap();
        let v = spec.deploy.verify.as_ref().unwrap();
        assert_eq!((v.expect_status, v.timeout_seconds), (200, 60));
        let change = |field: &str| FieldChange {
            field: field.into(),
            live: Json::Null,
            desired: Json::Null,
            note: None,
        };
        assert_eq!(plan_note(&spec, false, &[change("desiredCount")]), None);
        let note = plan_note(&spec, false, &[change("taskDefinition.container.image")]).unwrap();
        assert_eq!(
            super::super::predeploy::shown_note(&note).unwrap(),
            "verify: GET https://***@api.internal/health?token=*** expects 200 after the rollout"
        );
        assert!(plan_note(&spec, true, &[]).is_some());
    }
}
