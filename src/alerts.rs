//! Drift alerts: one alert when an episode starts (drift, a failing resource, a rejected
//! manifest set) and one `resolved` message when it ends — not one per pass. Delivery runs
//! on its own task with retries and never blocks reconciling; outcomes are counted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::AlertsConfig;
use crate::manifest::{Kind, ManifestError};
use crate::metrics::Metrics;
use crate::reconcile::diff::redact;
use crate::reconcile::{Action, Failure, FieldChange, Hold, Outcome, PassReport};
use crate::status::rfc3339;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A resource differs from its manifest.
    Drift,
    /// A resource failed to reconcile.
    Failure,
    /// A new manifest set did not validate; the previous one keeps running.
    ManifestRejected,
    /// The episode is over: back in sync, reconciling again, or a valid set loaded.
    Resolved,
}

/// One alert, as the JSON webhook receives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// What happened.
    pub kind: AlertKind,
    /// For `resolved`: which kind of episode ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolves: Option<AlertKind>,
    /// `Kind/name`, for resource alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Where manifests come from.
    pub source: String,
    /// The manifest revision being reconciled.
    pub revision: String,
    /// Fields that differ, live → desired (secret-looking fields redacted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// For drift: whether mooring corrected it (enforce mode) or only reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrected: Option<bool>,
    /// For drift left in place: why (observe mode, paused, backoff, standby…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<Hold>,
    /// For failures (and drift whose correction failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// For rejected manifest sets: the errors, `file:line:col: field: message`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub manifest_errors: Vec<String>,
    /// When (RFC 3339).
    pub at: String,
}

impl Alert {
    /// An alert with no details yet, stamped now.
    fn new(
        kind: AlertKind,
        resolves: Option<AlertKind>,
        resource: Option<String>,
        source: &str,
        revision: &str,
    ) -> Alert {
        Alert {
            kind,
            resolves,
            resource,
            source: source.to_string(),
            revision: revision.to_string(),
            changes: Vec::new(),
            corrected: None,
            held: None,
            error: None,
            manifest_errors: Vec::new(),
            at: rfc3339(SystemTime::now()),
        }
    }

    /// A readable one-paragraph text (Slack, SNS).
    pub fn text(&self) -> String {
        let what = self.resource.as_deref().unwrap_or("the manifest set");
        let mut out = match (self.kind, self.resolves) {
            (AlertKind::Drift, _) => format!(
                ":warning: {what} drifted from git ({})",
                match (self.corrected, self.held, &self.error) {
                    (Some(true), _, _) => "corrected".to_string(),
                    (_, Some(h), _) => format!("not corrected: {}", h.describe()),
                    (_, None, Some(_)) => "not corrected: the apply failed".to_string(),
                    _ => "not corrected".to_string(),
                }
            ),
            (AlertKind::Failure, _) => format!(":x: {what} failed to reconcile"),
            (AlertKind::ManifestRejected, _) => {
                ":no_entry: a new manifest set was rejected; the previous one keeps running"
                    .to_string()
            }
            (AlertKind::Resolved, Some(AlertKind::ManifestRejected)) => {
                ":white_check_mark: the manifests validate again".to_string()
            }
            (AlertKind::Resolved, Some(AlertKind::Failure)) => {
                format!(":white_check_mark: {what} reconciles again")
            }
            (AlertKind::Resolved, _) => format!(":white_check_mark: {what} is back in sync"),
        };
        out.push_str(&format!(" — revision {} ({})", self.revision, self.source));
        for c in self.changes.iter().take(10) {
            out.push_str(&format!(
                "\n• {}: {} → {}",
                c.field,
                crate::reconcile::diff::show(&c.live),
                crate::reconcile::diff::show(&c.desired)
            ));
        }
        if self.changes.len() > 10 {
            out.push_str(&format!("\n• … and {} more", self.changes.len() - 10));
        }
        if let Some(e) = &self.error {
            out.push_str(&format!("\n{} ({})", e.message, e.category));
        }
        for e in self.manifest_errors.iter().take(10) {
            out.push_str(&format!("\n• {e}"));
        }
        out
    }
}

#[derive(Default, Clone, Copy)]
struct Open {
    drift: bool,
    failure: bool,
}

/// Which episodes are open, so that each is announced once and closed once.
#[derive(Default)]
pub struct Episodes {
    open: HashMap<(Kind, String), Open>,
    seen_in_sync: HashSet<(Kind, String)>,
    rejected: Option<Vec<ManifestError>>,
}

impl Episodes {
    /// The alerts a pass calls for. `enforce` says whether drift was meant to be corrected.
    pub fn observe(&mut self, report: &PassReport, source: &str) -> Vec<Alert> {
        let mut out = Vec::new();
        for r in &report.resources {
            let id = (r.kind, r.name.clone());
            let alert = |kind, resolves| {
                Alert::new(
                    kind,
                    resolves,
                    Some(format!("{}/{}", r.kind, r.name)),
                    source,
                    &report.revision,
                )
            };
            // Created again after it was once in sync: deleted out of band, which is drift.
            let drift = match r.action {
                Action::Update | Action::Replace => true,
                Action::Create => self.seen_in_sync.contains(&id),
                Action::None => false,
            };
            // A resource waiting for a failed dependency is not its own failure.
            let failure = match &r.outcome {
                Outcome::Failed { failure } => Some(failure.clone()),
                _ => None,
            };
            let error = r.error();
            let open = self.open.entry(id.clone()).or_default();
            if drift && !open.drift {
                open.drift = true;
                let mut a = alert(AlertKind::Drift, None);
                a.changes = redact(&r.changes);
                a.corrected = Some(r.applied && error.is_none());
                if let Outcome::Held { why } = r.outcome {
                    a.held = Some(why);
                }
                a.error = failure.clone();
                out.push(a);
            } else if !drift && open.drift && error.is_none() {
                open.drift = false;
                out.push(alert(AlertKind::Resolved, Some(AlertKind::Drift)));
            }
            if failure.is_some() && !open.failure {
                open.failure = true;
                let mut a = alert(AlertKind::Failure, None);
                a.error = failure;
                out.push(a);
            } else if error.is_none() && open.failure {
                open.failure = false;
                out.push(alert(AlertKind::Resolved, Some(AlertKind::Failure)));
            }
            if r.action == Action::None && error.is_none() {
                self.seen_in_sync.insert(id);
            }
        }
        out
    }

    /// A manifest set was rejected: an alert unless the same errors were already announced.
    pub fn rejected(
        &mut self,
        errors: &[ManifestError],
        source: &str,
        revision: &str,
    ) -> Option<Alert> {
        if self.rejected.as_deref() == Some(errors) {
            return None;
        }
        self.rejected = Some(errors.to_vec());
        let mut alert = Alert::new(AlertKind::ManifestRejected, None, None, source, revision);
        alert.manifest_errors = errors.iter().map(ToString::to_string).collect();
        Some(alert)
    }

    /// A valid set loaded: closes a rejected-set episode.
    pub fn accepted(&mut self, source: &str, revision: &str) -> Option<Alert> {
        self.rejected.take().map(|_| {
            Alert::new(
                AlertKind::Resolved,
                Some(AlertKind::ManifestRejected),
                None,
                source,
                revision,
            )
        })
    }
}

/// Where alerts go, resolved from the configuration.
#[derive(Clone, Default)]
pub struct Sinks {
    webhooks: Vec<String>,
    slack: Vec<String>,
    sns: Vec<String>,
    sns_client: Option<aws_sdk_sns::Client>,
}

impl Sinks {
    /// The sinks of a configuration (secrets are read here).
    pub fn from_config(
        config: &AlertsConfig,
        sns_client: Option<aws_sdk_sns::Client>,
    ) -> Result<Sinks, String> {
        Ok(Sinks {
            webhooks: config
                .webhooks
                .iter()
                .map(|w| w.url.resolve())
                .collect::<Result<_, _>>()?,
            slack: config
                .slack
                .iter()
                .map(|s| s.webhook_url.resolve())
                .collect::<Result<_, _>>()?,
            sns: config.sns.iter().map(|s| s.topic_arn.clone()).collect(),
            sns_client,
        })
    }

    /// True when there is nowhere to send alerts.
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.slack.is_empty() && self.sns.is_empty()
    }
}

/// Hands alerts to the delivery task.
#[derive(Clone)]
pub struct Alerter {
    tx: Option<mpsc::Sender<Alert>>,
    metrics: Arc<Metrics>,
}

/// How many alerts may wait for delivery before new ones are dropped (and counted).
const QUEUE: usize = 256;

impl Alerter {
    /// Starts the delivery task. With no sinks, alerts are only logged.
    pub fn start(sinks: Sinks, metrics: Arc<Metrics>) -> Alerter {
        if sinks.is_empty() {
            return Alerter { tx: None, metrics };
        }
        let (tx, mut rx) = mpsc::channel::<Alert>(QUEUE);
        let m = metrics.clone();
        tokio::spawn(async move {
            while let Some(alert) = rx.recv().await {
                deliver(&sinks, &alert, &m).await;
            }
        });
        Alerter {
            tx: Some(tx),
            metrics,
        }
    }

    /// Queues an alert; never waits.
    pub fn send(&self, alert: Alert) {
        info!(kind = ?alert.kind, resource = alert.resource.as_deref().unwrap_or("-"), "alert");
        if let Some(tx) = &self.tx
            && tx.try_send(alert).is_err()
        {
            warn!("alert queue full: alert dropped");
            self.metrics.record_alert("queue", "dropped");
        }
    }
}

/// Tries a delivery up to 4 times, 0.5 s apart and doubling, with jitter.
async fn with_retries<F, Fut>(sink: &str, metrics: &Metrics, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(3)
        .with_jitter()
        .build();
    loop {
        match attempt().await {
            Ok(()) => {
                metrics.record_alert(sink, "delivered");
                return;
            }
            Err(e) => match delays.next() {
                Some(delay) => {
                    metrics.record_alert(sink, "retried");
                    warn!(sink, error = %e, ?delay, "alert delivery failed, retrying");
                    tokio::time::sleep(delay).await;
                }
                None => {
                    metrics.record_alert(sink, "failed");
                    warn!(sink, error = %e, "alert delivery failed, giving up");
                    return;
                }
            },
        }
    }
}

async fn deliver(sinks: &Sinks, alert: &Alert, metrics: &Metrics) {
    let json = serde_json::to_string(alert).unwrap_or_default();
    let text = alert.text();
    for url in &sinks.webhooks {
        with_retries("webhook", metrics, || post_json(url.clone(), json.clone())).await;
    }
    for url in &sinks.slack {
        let body = serde_json::json!({ "text": text }).to_string();
        with_retries("slack", metrics, || post_json(url.clone(), body.clone())).await;
    }
    if let Some(client) = &sinks.sns_client {
        for topic in &sinks.sns {
            let subject: String = text
                .lines()
                .next()
                .unwrap_or("mooring alert")
                .chars()
                .filter(|c| c.is_ascii() && !c.is_ascii_control())
                .take(100)
                .collect();
            with_retries("sns", metrics, || {
                let req = client
                    .publish()
                    .topic_arn(topic)
                    .subject(subject.clone())
                    .message(format!("{text}\n\n{json}"));
                async move {
                    req.send()
                        .await
                        .map(|_| ())
                        .map_err(|e| crate::aws::AwsError::from_sdk("sns:Publish", e).to_string())
                }
            })
            .await;
        }
    }
}

/// POSTs a JSON body; the URL is a secret and never logged (errors name the host only).
async fn post_json(url: String, body: String) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        let host = url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', '?']).next())
            .map(|h| h.rsplit('@').next().unwrap_or(h).to_string())
            .unwrap_or_default();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(true)
            .build()
            .into();
        agent
            .post(&url)
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .map(|_| ())
            .map_err(|e| {
                let e = e.to_string().replace(&url, "(url)");
                format!("POST to {host}: {e}")
            })
    })
    .await
    .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{Category, ResourceReport};
    use serde_json::json;

    fn pass(action: Action, applied: bool, error: Option<Category>) -> PassReport {
        PassReport {
            revision: "sha256:1".into(),
            resources: vec![ResourceReport {
                kind: Kind::Service,
                name: "api".into(),
                aws_id: String::new(),
                action,
                changes: vec![FieldChange {
                    field: "desiredCount".into(),
                    live: json!(7),
                    desired: json!(2),
                }],
                applied,
                rollout: None,
                outcome: match error {
                    Some(Category::Dependency) => Outcome::Blocked {
                        on: "Cluster/prd".into(),
                        why: "failed: boom".into(),
                    },
                    Some(category) => Outcome::Failed {
                        failure: Failure {
                            category,
                            message: "boom".into(),
                        },
                    },
                    None if action == Action::None || applied => Outcome::InSync,
                    None => Outcome::Held { why: Hold::Observe },
                },
            }],
            aws_calls: Default::default(),
        }
    }

    fn kinds(alerts: &[Alert]) -> Vec<(AlertKind, Option<AlertKind>)> {
        alerts.iter().map(|a| (a.kind, a.resolves)).collect()
    }

    #[test]
    fn one_alert_per_episode_and_one_resolved() {
        let mut e = Episodes::default();
        assert!(
            e.observe(&pass(Action::Create, true, None), "dir")
                .is_empty()
        );
        assert!(
            e.observe(&pass(Action::None, false, None), "dir")
                .is_empty()
        );
        // Observe mode: drift seen on three passes, announced once.
        let first = e.observe(&pass(Action::Update, false, None), "dir");
        assert_eq!(kinds(&first), [(AlertKind::Drift, None)]);
        assert_eq!(first[0].corrected, Some(false));
        assert!(
            first[0].text().contains("not corrected: observe mode"),
            "{}",
            first[0].text()
        );
        assert!(
            first[0].text().contains("• desiredCount: 7 → 2"),
            "{}",
            first[0].text()
        );
        assert!(
            e.observe(&pass(Action::Update, false, None), "dir")
                .is_empty()
        );
        let fixed = e.observe(&pass(Action::None, false, None), "dir");
        assert_eq!(
            kinds(&fixed),
            [(AlertKind::Resolved, Some(AlertKind::Drift))]
        );
        // Deleted out of band: created again, which is drift too.
        let recreated = e.observe(&pass(Action::Create, true, None), "dir");
        assert_eq!(recreated[0].corrected, Some(true));
        // Failures: once, then resolved once; dependency waits are not failures.
        let mut e = Episodes::default();
        let failed = e.observe(
            &pass(Action::None, false, Some(Category::Throttling)),
            "dir",
        );
        assert_eq!(kinds(&failed), [(AlertKind::Failure, None)]);
        assert!(
            e.observe(
                &pass(Action::None, false, Some(Category::Throttling)),
                "dir"
            )
            .is_empty()
        );
        let ok = e.observe(&pass(Action::None, false, None), "dir");
        assert_eq!(
            kinds(&ok),
            [(AlertKind::Resolved, Some(AlertKind::Failure))]
        );
        assert!(
            e.observe(
                &pass(Action::None, false, Some(Category::Dependency)),
                "dir"
            )
            .is_empty()
        );
    }

    #[test]
    fn a_rejected_set_alerts_once_until_a_good_set_loads() {
        let mut e = Episodes::default();
        let err = ManifestError {
            file: "a.yaml".into(),
            line: 3,
            col: 5,
            field: "spec.cpu".into(),
            message: "bad".into(),
        };
        let a = e
            .rejected(std::slice::from_ref(&err), "dir", "sha256:1")
            .unwrap();
        assert_eq!(a.manifest_errors, ["a.yaml:3:5: spec.cpu: bad"]);
        assert!(
            e.rejected(std::slice::from_ref(&err), "dir", "sha256:1")
                .is_none()
        );
        let back = e.accepted("dir", "sha256:2").unwrap();
        assert_eq!(back.resolves, Some(AlertKind::ManifestRejected));
        assert!(e.accepted("dir", "sha256:2").is_none());
    }
}
