//! Drift alerts: one alert when an episode starts (drift, a failing resource, a rejected
//! manifest set) and one `resolved` message when it ends — not one per pass. Each sink has
//! its own bounded queue and delivery task with retries, so neither reconciling nor another
//! sink waits for a slow one; messages are cut to each sink's size limit; what is queued at
//! shutdown is delivered within the grace; outcomes are counted.
//!
//! Each sink may take only some alerts (resource kinds, severities, names). Slack gets
//! Block Kit messages: the stack, account and region, the diff, the commit, and a link to
//! the resource's page when `externalUrl` is configured. Deploy notifications
//! ([`crate::deploys`]) travel the same way to sinks of their own.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::OperatorConfig;
use crate::deploys::{Deploy, DeployRule, Notice};
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

/// How urgent an alert is; sinks may take only some severities.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Drift (corrected or not), and the end of a drift episode.
    Warning,
    /// A failing resource or a rejected manifest set, and the end of one.
    Critical,
}

impl Severity {
    /// The severity of an alert of `kind` (a `resolved` alert: of the episode it ends).
    pub fn of(kind: AlertKind, resolves: Option<AlertKind>) -> Severity {
        match (kind, resolves) {
            (AlertKind::Drift, _) | (AlertKind::Resolved, Some(AlertKind::Drift)) => {
                Severity::Warning
            }
            _ => Severity::Critical,
        }
    }
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
    /// How urgent it is.
    pub severity: Severity,
    /// Where manifests come from.
    pub source: String,
    /// The stack (environment) of the manifest set (stamped by the alerter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// The account and region (stamped by the alerter once AWS has said).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<crate::aws::identity::Target>,
    /// The manifest revision being reconciled (for a rejected set: the one still running).
    pub revision: String,
    /// For a rejected set: the revision that was rejected, when it could be told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_revision: Option<String>,
    /// The resource's status page, when `externalUrl` is configured (stamped by the
    /// alerter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
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
    /// What was left out to fit the sink's size limit, e.g. "… 37 more errors not shown".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
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
            severity: Severity::of(kind, resolves),
            source: source.to_string(),
            stack: None,
            target: None,
            revision: revision.to_string(),
            rejected_revision: None,
            link: None,
            changes: Vec::new(),
            corrected: None,
            held: None,
            error: None,
            manifest_errors: Vec::new(),
            at: rfc3339(SystemTime::now()),
            truncated: None,
        }
    }

    /// What happened, in one line (a Slack header, the start of the text).
    pub fn headline(&self) -> String {
        let what = self.resource.as_deref().unwrap_or("the manifest set");
        match (self.kind, self.resolves) {
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
            (AlertKind::ManifestRejected, _) => match &self.rejected_revision {
                Some(rejected) => format!(
                    ":no_entry: manifest revision {rejected} was rejected; revision {} keeps running",
                    self.revision
                ),
                None => {
                    ":no_entry: a new manifest set was rejected; the previous one keeps running"
                        .to_string()
                }
            },
            (AlertKind::Resolved, Some(AlertKind::ManifestRejected)) => {
                ":white_check_mark: the manifests validate again".to_string()
            }
            (AlertKind::Resolved, Some(AlertKind::Failure)) => {
                format!(":white_check_mark: {what} reconciles again")
            }
            (AlertKind::Resolved, _) => format!(":white_check_mark: {what} is back in sync"),
        }
    }

    /// A readable one-paragraph text (SNS, Slack's fallback).
    pub fn text(&self) -> String {
        let mut out = self.headline();
        out.push_str(&format!(" — revision {} ({})", self.revision, self.source));
        if let Some(t) = &self.target {
            out.push_str(&format!(" in account {}, {}", t.account, t.region));
        }
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
        if self.manifest_errors.len() > 10 {
            out.push_str(&format!(
                "\n• … and {} more",
                self.manifest_errors.len() - 10
            ));
        }
        if let Some(note) = &self.truncated {
            out.push_str(&format!("\n{note}"));
        }
        if let Some(link) = &self.link {
            out.push_str(&format!("\n{link}"));
        }
        out
    }

    /// The diff, one `field: live → desired` per line, within about `max` characters.
    fn diff_lines(&self, max: usize) -> String {
        let mut out = String::new();
        for (i, c) in self.changes.iter().enumerate() {
            let line = format!(
                "{}: {} → {}\n",
                c.field,
                crate::reconcile::diff::show(&c.live),
                crate::reconcile::diff::show(&c.desired)
            );
            if out.chars().count() + line.chars().count() > max.saturating_sub(40) {
                out.push_str(&format!("… and {} more\n", self.changes.len() - i));
                break;
            }
            out.push_str(&line);
        }
        out
    }

    /// A Slack Block Kit message: the headline, the facts (stack, account, region, commit)
    /// as fields, the diff, the error or manifest errors, and a button to the resource's
    /// page; `text` is the fallback Slack shows in notifications.
    pub fn slack(&self) -> serde_json::Value {
        use crate::deploys::{button, context, field, header, section};
        let mut fields = Vec::new();
        if let Some(stack) = &self.stack {
            fields.push(field("Stack", stack));
        }
        if let Some(t) = &self.target {
            fields.push(field("Account", &t.account));
            fields.push(field("Region", &t.region));
        }
        match &self.rejected_revision {
            Some(rejected) => {
                fields.push(field("Rejected revision", &format!("`{rejected}`")));
                fields.push(field("Running revision", &format!("`{}`", self.revision)));
            }
            None => fields.push(field("Revision", &format!("`{}`", self.revision))),
        }
        if let Some(r) = &self.resource {
            fields.push(field("Resource", r));
        }
        fields.push(field(
            "Severity",
            match self.severity {
                Severity::Warning => "warning",
                Severity::Critical => "critical",
            },
        ));
        let mut blocks = vec![
            header(&self.headline()),
            serde_json::json!({"type": "section", "fields": fields}),
        ];
        if !self.changes.is_empty() {
            blocks.push(section(&format!(
                "*Diff* (live → git)\n```{}```",
                self.diff_lines(2900)
            )));
        }
        if let Some(e) = &self.error {
            blocks.push(section(&format!("*Error* ({})\n{}", e.category, e.message)));
        }
        if !self.manifest_errors.is_empty() {
            let mut listed = String::new();
            for (i, e) in self.manifest_errors.iter().enumerate() {
                if listed.chars().count() + e.chars().count() > 2800 {
                    listed.push_str(&format!("… and {} more\n", self.manifest_errors.len() - i));
                    break;
                }
                listed.push_str(&format!("{e}\n"));
            }
            blocks.push(section(&format!("*Errors*\n```{listed}```")));
        }
        let mut note = format!("{} · {}", self.source, self.at);
        if let Some(t) = &self.truncated {
            note.push_str(&format!(" · {t}"));
        }
        blocks.push(context(&note));
        if let Some(link) = &self.link {
            blocks.push(button("Open the resource's page", link));
        }
        serde_json::json!({"text": cut_chars(&self.text(), SLACK_LIMIT), "blocks": blocks})
    }
}

/// Which alerts a sink takes: of these resource kinds, severities and names (each: any
/// when empty). Alerts about the manifest set as a whole pass the kind and name filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    /// Resource kinds (`Service`).
    pub kinds: Vec<String>,
    /// Severities.
    pub severities: Vec<Severity>,
    /// Manifest names.
    pub names: Vec<String>,
}

impl AlertFilter {
    /// True when the sink takes `alert`.
    pub fn takes(&self, alert: &Alert) -> bool {
        let (kind, name) = alert
            .resource
            .as_deref()
            .and_then(|r| r.split_once('/'))
            .map_or((None, None), |(k, n)| (Some(k), Some(n)));
        (self.severities.is_empty() || self.severities.contains(&alert.severity))
            && (self.kinds.is_empty()
                || kind.is_none_or(|k| self.kinds.iter().any(|w| w.eq_ignore_ascii_case(k))))
            && (self.names.is_empty() || name.is_none_or(|n| self.names.iter().any(|w| w == n)))
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
    /// Each manifest's fingerprint now, and when its resource was last in sync.
    fingerprints: HashMap<(Kind, String), u64>,
    in_sync_with: HashMap<(Kind, String), u64>,
}

impl Episodes {
    /// The manifests' fingerprints for the next [`Episodes::observe`]: a resource whose
    /// manifest changed since it was last in sync, and whose change went in, is a change
    /// from git (a deploy, for a service), not drift.
    pub fn set_fingerprints(&mut self, fingerprints: HashMap<(Kind, String), u64>) {
        self.fingerprints = fingerprints;
    }

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
            // A change git asked for, applied: not drift.
            let from_git = r.applied
                && r.error().is_none()
                && self
                    .in_sync_with
                    .get(&id)
                    .is_some_and(|was| self.fingerprints.get(&id) != Some(was));
            let drift = drift && !from_git;
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
                if let Some(print) = self.fingerprints.get(&id) {
                    self.in_sync_with.insert(id.clone(), *print);
                }
                self.seen_in_sync.insert(id);
            }
        }
        out
    }

    /// A manifest set was rejected: an alert unless the same errors were already announced.
    /// `revision`: the one still running; `rejected`: the one refused, when known.
    pub fn rejected(
        &mut self,
        errors: &[ManifestError],
        source: &str,
        revision: &str,
        rejected: Option<&str>,
    ) -> Option<Alert> {
        if self.rejected.as_deref() == Some(errors) {
            return None;
        }
        self.rejected = Some(errors.to_vec());
        let mut alert = Alert::new(AlertKind::ManifestRejected, None, None, source, revision);
        alert.rejected_revision = rejected.map(str::to_string);
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

/// Where a sink sends.
#[derive(Clone, Debug, PartialEq)]
enum Address {
    Webhook(String),
    Slack(String),
    Sns(String),
}

/// What a sink takes: alerts (filtered) or deploy notifications (by rules).
#[derive(Clone, Debug, PartialEq)]
enum Accepts {
    Alerts(AlertFilter),
    Deploys(Vec<DeployRule>),
}

/// Where alerts and deploy notifications go, resolved from the configuration.
#[derive(Clone, Default)]
pub struct Sinks {
    sinks: Vec<(Address, Accepts)>,
    sns_client: Option<aws_sdk_sns::Client>,
    external_url: Option<String>,
}

impl Sinks {
    /// The sinks of a configuration (secrets are read here).
    pub fn from_config(
        config: &OperatorConfig,
        sns_client: Option<aws_sdk_sns::Client>,
    ) -> Result<Sinks, String> {
        let filter = |kinds: &[String], severities: &[Severity], names: &[String]| {
            Accepts::Alerts(AlertFilter {
                kinds: kinds.to_vec(),
                severities: severities.to_vec(),
                names: names.to_vec(),
            })
        };
        let mut sinks = Vec::new();
        let alerts = &config.alerts;
        for w in &alerts.webhooks {
            sinks.push((
                Address::Webhook(w.url.resolve()?),
                filter(&w.kinds, &w.severities, &w.names),
            ));
        }
        for w in &alerts.slack {
            sinks.push((
                Address::Slack(w.webhook_url.resolve()?),
                filter(&w.kinds, &w.severities, &w.names),
            ));
        }
        for w in &alerts.sns {
            sinks.push((
                Address::Sns(w.topic_arn.clone()),
                filter(&w.kinds, &w.severities, &w.names),
            ));
        }
        let deploys = &config.deploys;
        for w in &deploys.webhooks {
            sinks.push((
                Address::Webhook(w.url.resolve()?),
                Accepts::Deploys(w.when.clone()),
            ));
        }
        for w in &deploys.slack {
            sinks.push((
                Address::Slack(w.webhook_url.resolve()?),
                Accepts::Deploys(w.when.clone()),
            ));
        }
        for w in &deploys.sns {
            sinks.push((
                Address::Sns(w.topic_arn.clone()),
                Accepts::Deploys(w.when.clone()),
            ));
        }
        Ok(Sinks {
            sinks,
            sns_client,
            external_url: config.external_url.clone(),
        })
    }

    /// True when there is nowhere to send alerts.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

/// The page of `Kind/name` under `external_url`.
fn page(external_url: &str, resource: &str) -> String {
    format!(
        "{}/resources/{resource}",
        external_url.trim_end_matches('/')
    )
}

/// Largest JSON body sent to a generic webhook, in bytes.
pub const WEBHOOK_LIMIT: usize = 1024 * 1024;
/// Largest Slack message text, in characters (Slack truncates longer ones).
pub const SLACK_LIMIT: usize = 40_000;
/// Largest SNS message, in bytes (SNS refuses longer ones: "Message too long").
pub const SNS_LIMIT: usize = 256 * 1024;

/// How many alerts may wait for one sink; beyond it the oldest is dropped (and counted).
const QUEUE: usize = 256;

/// One destination of alerts.
#[derive(Clone)]
enum Target {
    Webhook(String),
    Slack(String),
    Sns {
        client: aws_sdk_sns::Client,
        topic: String,
    },
}

impl Target {
    /// The `sink` label of `alert_deliveries_total` (`deploy_…` for deploy sinks).
    fn label(&self, accepts: &Accepts) -> &'static str {
        match (self, accepts) {
            (Target::Webhook(_), Accepts::Alerts(_)) => "webhook",
            (Target::Slack(_), Accepts::Alerts(_)) => "slack",
            (Target::Sns { .. }, Accepts::Alerts(_)) => "sns",
            (Target::Webhook(_), Accepts::Deploys(_)) => "deploy_webhook",
            (Target::Slack(_), Accepts::Deploys(_)) => "deploy_slack",
            (Target::Sns { .. }, Accepts::Deploys(_)) => "deploy_sns",
        }
    }
}

impl Sinks {
    fn targets(&self) -> Vec<(Target, Accepts)> {
        self.sinks
            .iter()
            .filter_map(|(address, accepts)| {
                let target = match address {
                    Address::Webhook(url) => Target::Webhook(url.clone()),
                    Address::Slack(url) => Target::Slack(url.clone()),
                    Address::Sns(topic) => Target::Sns {
                        client: self.sns_client.clone()?,
                        topic: topic.clone(),
                    },
                };
                Some((target, accepts.clone()))
            })
            .collect()
    }
}

/// What a sink delivers.
#[derive(Debug, Clone)]
enum Message {
    Alert(Arc<Alert>),
    Deploy(Arc<Notice>),
}

/// The alerts waiting for one sink.
#[derive(Default)]
struct Queue {
    alerts: std::sync::Mutex<VecDeque<Message>>,
    wake: Notify,
    closed: AtomicBool,
    /// An alert is being delivered (taken off the queue, not yet done).
    in_flight: AtomicBool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Message>> {
        self.alerts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hands alerts to one delivery task per sink, so a sink that hangs or fails delays only
/// its own alerts.
#[derive(Clone)]
pub struct Alerter {
    target: Arc<std::sync::Mutex<Option<crate::aws::identity::Target>>>,
    stack: Arc<std::sync::Mutex<Option<String>>>,
    external_url: Option<String>,
    queues: Vec<(&'static str, Arc<Queue>, Accepts)>,
    tasks: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    metrics: Arc<Metrics>,
}

impl Alerter {
    /// Starts the delivery tasks. With no sinks, alerts are only logged.
    pub fn start(sinks: Sinks, metrics: Arc<Metrics>) -> Alerter {
        let mut queues = Vec::new();
        let mut tasks = Vec::new();
        for (target, accepts) in sinks.targets() {
            let queue = Arc::new(Queue::default());
            let label = target.label(&accepts);
            queues.push((label, queue.clone(), accepts));
            let m = metrics.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let next = queue.lock().pop_front();
                    match next {
                        Some(alert) => {
                            queue.in_flight.store(true, Ordering::SeqCst);
                            deliver(&target, label, &alert, &m).await;
                            queue.in_flight.store(false, Ordering::SeqCst);
                        }
                        None if queue.closed.load(Ordering::SeqCst) => return,
                        // A send between the check and here left a permit: no lost wake-up.
                        None => queue.wake.notified().await,
                    }
                }
            }));
        }
        Alerter {
            target: Arc::default(),
            stack: Arc::default(),
            external_url: sinks.external_url,
            queues,
            tasks: Arc::new(std::sync::Mutex::new(tasks)),
            metrics,
        }
    }

    /// Names this account and region in every alert from now on.
    pub fn set_target(&self, target: crate::aws::identity::Target) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = Some(target);
    }

    /// Names this stack (environment) in every alert from now on.
    pub fn set_stack(&self, stack: &str) {
        *self.stack.lock().unwrap_or_else(|p| p.into_inner()) = Some(stack.to_string());
    }

    /// Queues an alert for every sink that takes it; never waits. A full queue drops its
    /// oldest alert.
    pub fn send(&self, mut alert: Alert) {
        info!(kind = ?alert.kind, resource = alert.resource.as_deref().unwrap_or("-"), "alert");
        if alert.target.is_none() {
            alert.target = self
                .target
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
        }
        if alert.stack.is_none() {
            alert.stack = self.stack.lock().unwrap_or_else(|p| p.into_inner()).clone();
        }
        if let (Some(url), Some(resource), None) =
            (&self.external_url, &alert.resource, &alert.link)
        {
            alert.link = Some(page(url, resource));
        }
        let message = Message::Alert(Arc::new(alert));
        self.enqueue(&message, |accepts| match (accepts, &message) {
            (Accepts::Alerts(filter), Message::Alert(a)) => filter.takes(a),
            _ => false,
        });
    }

    /// Queues the notification of `deploy` as it is now for every deploy sink whose rules
    /// take it; never waits.
    pub fn send_deploy(&self, deploy: &Deploy) {
        let Some(mut notice) = Notice::of(deploy) else {
            return;
        };
        notice.target = self
            .target
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        notice.link = self
            .external_url
            .as_ref()
            .map(|url| page(url, &format!("Service/{}", deploy.service)));
        let message = Message::Deploy(Arc::new(notice));
        self.enqueue(&message, |accepts| match accepts {
            Accepts::Deploys(rules) => crate::deploys::takes(rules, deploy),
            Accepts::Alerts(_) => false,
        });
    }

    fn enqueue(&self, message: &Message, takes: impl Fn(&Accepts) -> bool) {
        for (sink, queue, accepts) in &self.queues {
            if !takes(accepts) {
                continue;
            }
            if queue.closed.load(Ordering::SeqCst) {
                warn!(sink, "alert after shutdown: not sent");
                self.metrics.record_alert(sink, "dropped");
                continue;
            }
            let dropped = {
                let mut q = queue.lock();
                q.push_back(message.clone());
                if q.len() > QUEUE { q.pop_front() } else { None }
            };
            if dropped.is_some() {
                warn!(sink, "alert queue full: oldest alert dropped");
                self.metrics.record_alert(sink, "dropped");
            }
            queue.wake.notify_one();
        }
    }

    /// Delivers what is queued, for at most `within`; what is left then is dropped (and
    /// counted). Called once at shutdown; later alerts are not sent.
    pub async fn flush(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        for (_, queue, _) in &self.queues {
            queue.closed.store(true, Ordering::SeqCst);
            queue.wake.notify_one();
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let mut late = Vec::new();
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                late.push(task);
            }
        }
        for task in late {
            let _ = task.await;
        }
        for (sink, queue, _) in &self.queues {
            let left = queue.lock().drain(..).count()
                + usize::from(queue.in_flight.swap(false, Ordering::SeqCst));
            if left > 0 {
                warn!(sink, left, "shutdown grace over: queued alerts dropped");
                for _ in 0..left {
                    self.metrics.record_alert(sink, "dropped");
                }
            }
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

/// The JSON webhook body, within [`WEBHOOK_LIMIT`].
fn webhook_body(alert: &Alert) -> String {
    let json = |a: &Alert| serde_json::to_string(a).unwrap_or_default();
    json(&fit(alert, WEBHOOK_LIMIT, |a| json(a).len()))
}

/// The Slack body: Block Kit, its fallback text within [`SLACK_LIMIT`] characters.
fn slack_body(alert: &Alert) -> String {
    fit(alert, SLACK_LIMIT, |a| a.text().chars().count())
        .slack()
        .to_string()
}

/// The SNS message (the text, then the JSON alert), within [`SNS_LIMIT`] bytes.
fn sns_message(alert: &Alert) -> String {
    let message = |a: &Alert| {
        format!(
            "{}\n\n{}",
            a.text(),
            serde_json::to_string(a).unwrap_or_default()
        )
    };
    let fitted = message(&fit(alert, SNS_LIMIT, |a| message(a).len()));
    if fitted.len() <= SNS_LIMIT {
        return fitted;
    }
    // Only a pathological alert gets here; the text alone still says what happened.
    let text = alert.text();
    let mut end = SNS_LIMIT.min(text.len()).saturating_sub(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n… {} more bytes not shown (message size limit)",
        &text[..end],
        text.len() - end
    )
}

/// `text` cut to `max` characters, saying how many were cut.
fn cut_chars(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let keep: String = text.chars().take(max.saturating_sub(80)).collect();
    format!(
        "{keep}\n… {} more characters not shown (message size limit)",
        count - keep.chars().count()
    )
}

/// `s` shortened to about `max` bytes (at a character boundary), saying how much was cut.
fn cap_string(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes not shown)", &s[..end], s.len() - end)
}

/// A copy of `alert` whose `size` is at most `limit`: long strings shortened first, then
/// manifest errors and changes left out from the end, with a note of what was cut. Returns
/// the smallest version when nothing fits.
fn fit(alert: &Alert, limit: usize, size: impl Fn(&Alert) -> usize) -> Alert {
    if size(alert) <= limit {
        return alert.clone();
    }
    // Each item gets a fair share of the limit, the error message a quarter.
    let item = (limit / 50).max(200);
    let mut short = alert.clone();
    if let Some(e) = &mut short.error {
        e.message = cap_string(&e.message, (limit / 4).max(200));
    }
    for e in &mut short.manifest_errors {
        *e = cap_string(e, item);
    }
    for c in &mut short.changes {
        for v in [&mut c.live, &mut c.desired] {
            let shown = crate::reconcile::diff::show(v);
            if shown.len() > item {
                *v = serde_json::Value::String(format!("({} bytes not shown)", shown.len()));
            }
        }
    }
    if size(&short) <= limit {
        return short;
    }
    let (errors, changes) = (short.manifest_errors.len(), short.changes.len());
    let keeping = |e: usize, c: usize| {
        let mut a = short.clone();
        a.manifest_errors.truncate(e);
        a.changes.truncate(c);
        let mut cut = Vec::new();
        if e < errors {
            cut.push(format!("{} more errors", errors - e));
        }
        if c < changes {
            cut.push(format!("{} more changes", changes - c));
        }
        a.truncated = Some(format!(
            "… {} not shown (message size limit)",
            cut.join(" and ")
        ));
        a
    };
    // The most manifest errors that fit with every change, or else the most changes that
    // fit with no manifest error.
    let largest = |n: usize, make: &dyn Fn(usize) -> Alert| -> Option<Alert> {
        let (mut lo, mut hi) = (0usize, n);
        if size(&make(0)) > limit {
            return None;
        }
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if size(&make(mid)) <= limit {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Some(make(lo))
    };
    largest(errors, &|e| keeping(e, changes))
        .or_else(|| largest(changes, &|c| keeping(0, c)))
        .unwrap_or_else(|| keeping(0, 0))
}

async fn deliver(target: &Target, sink: &'static str, message: &Message, metrics: &Metrics) {
    let (json, slack, text) = match message {
        Message::Alert(alert) => (
            webhook_body(alert),
            slack_body(alert),
            (alert.text(), sns_message(alert)),
        ),
        Message::Deploy(notice) => {
            let json = serde_json::to_string(notice.as_ref()).unwrap_or_default();
            (
                json.clone(),
                notice.slack().to_string(),
                (notice.text(), format!("{}\n\n{json}", notice.text())),
            )
        }
    };
    match target {
        Target::Webhook(url) => {
            with_retries(sink, metrics, || post_json(url.clone(), json.clone())).await;
        }
        Target::Slack(url) => {
            with_retries(sink, metrics, || post_json(url.clone(), slack.clone())).await;
        }
        Target::Sns { client, topic } => {
            let (text, message) = text;
            let subject: String = text
                .lines()
                .next()
                .unwrap_or("mooring alert")
                .chars()
                .filter(|c| c.is_ascii() && !c.is_ascii_control())
                .take(100)
                .collect();
            with_retries(sink, metrics, || {
                let req = client
                    .publish()
                    .topic_arn(topic)
                    .subject(subject.clone())
                    .message(message.clone());
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
                let e = crate::source::git::scrub(&e.to_string().replace(&url, "(url)"), &url);
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
                    note: None,
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
            target: None,
            aws_calls_by_kind: Default::default(),
            check_seconds_by_kind: Default::default(),
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
            .rejected(std::slice::from_ref(&err), "dir", "sha256:1", None)
            .unwrap();
        assert_eq!(a.manifest_errors, ["a.yaml:3:5: spec.cpu: bad"]);
        assert!(
            e.rejected(std::slice::from_ref(&err), "dir", "sha256:1", None)
                .is_none()
        );
        let back = e.accepted("dir", "sha256:2").unwrap();
        assert_eq!(back.resolves, Some(AlertKind::ManifestRejected));
        assert!(e.accepted("dir", "sha256:2").is_none());
    }

    /// A local HTTP endpoint that records request bodies; `answer` says whether it
    /// responds (200) or holds the connection open without a word (a black hole).
    struct Endpoint {
        url: String,
        bodies: Arc<std::sync::Mutex<Vec<String>>>,
        held: Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    }

    impl Drop for Endpoint {
        /// Lets go of held connections, so no blocking delivery outlives the test.
        fn drop(&mut self) {
            for s in self.held.lock().unwrap().drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    impl Endpoint {
        fn start(answer: bool) -> Endpoint {
            use std::io::{BufRead, BufReader, Read, Write};
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}/hook", listener.local_addr().unwrap());
            let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
            let seen = bodies.clone();
            let held = Arc::new(std::sync::Mutex::new(Vec::new()));
            let hold = held.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    let mut reader = BufReader::new(stream);
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        continue;
                    }
                    seen.lock().unwrap().push(String::from_utf8(body).unwrap());
                    let mut stream = reader.into_inner();
                    if answer {
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                    } else {
                        hold.lock().unwrap().push(stream);
                    }
                }
            });
            Endpoint { url, bodies, held }
        }

        fn json(&self) -> Vec<serde_json::Value> {
            let bodies = self.bodies.lock().unwrap();
            bodies
                .iter()
                .map(|b| serde_json::from_str(b).unwrap())
                .collect()
        }
    }

    fn sinks(webhooks: &[&Endpoint], slack: &[&Endpoint]) -> Sinks {
        let every = || Accepts::Alerts(AlertFilter::default());
        Sinks {
            sinks: webhooks
                .iter()
                .map(|e| (Address::Webhook(e.url.clone()), every()))
                .chain(
                    slack
                        .iter()
                        .map(|e| (Address::Slack(e.url.clone()), every())),
                )
                .collect(),
            ..Sinks::default()
        }
    }

    fn numbered(n: usize) -> Alert {
        Alert::new(
            AlertKind::Failure,
            None,
            Some(format!("Service/api-{n}")),
            "dir",
            "sha256:1",
        )
    }

    fn counted(metrics: &Metrics, sink: &str, outcome: &str) -> u64 {
        let prefix =
            format!("mooring_alert_deliveries_total{{sink=\"{sink}\",outcome=\"{outcome}\"}} ");
        metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(|n| n.parse().unwrap()))
            .unwrap_or(0)
    }

    async fn until(what: &str, cond: impl Fn() -> bool) {
        for _ in 0..600 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn a_dead_sink_does_not_hold_up_the_others() {
        let (dead, webhook, slack) = (
            Endpoint::start(false),
            Endpoint::start(true),
            Endpoint::start(true),
        );
        let metrics = Arc::new(Metrics::new());
        // The dead webhook comes first, as the one that used to hold up the rest.
        let alerter = Alerter::start(sinks(&[&dead, &webhook], &[&slack]), metrics.clone());
        for n in 0..3 {
            alerter.send(numbered(n));
        }
        until("the working sinks", || {
            webhook.bodies.lock().unwrap().len() == 3 && slack.bodies.lock().unwrap().len() == 3
        })
        .await;
        let got: Vec<_> = webhook
            .json()
            .iter()
            .map(|a| a["resource"].clone())
            .collect();
        assert_eq!(got, ["Service/api-0", "Service/api-1", "Service/api-2"]);
        // Meanwhile the dead sink is still on its first alert.
        let dead_seen = dead.json();
        assert!(
            dead_seen.iter().all(|a| a["resource"] == "Service/api-0"),
            "{dead_seen:?}"
        );
        assert_eq!(counted(&metrics, "webhook", "delivered"), 3);
        assert_eq!(counted(&metrics, "slack", "delivered"), 3);
        assert_eq!(counted(&metrics, "webhook", "failed"), 0);
    }

    #[tokio::test]
    async fn queued_alerts_are_delivered_at_shutdown() {
        let (webhook, slack) = (Endpoint::start(true), Endpoint::start(true));
        let metrics = Arc::new(Metrics::new());
        let alerter = Alerter::start(sinks(&[&webhook], &[&slack]), metrics.clone());
        for n in 0..12 {
            alerter.send(numbered(n));
        }
        alerter.flush(Duration::from_secs(60)).await;
        // Everything was delivered by the time flush returned.
        assert_eq!(webhook.bodies.lock().unwrap().len(), 12);
        assert_eq!(slack.bodies.lock().unwrap().len(), 12);
        assert_eq!(counted(&metrics, "webhook", "delivered"), 12);
        // Alerts after shutdown are counted as dropped, not lost silently.
        alerter.send(numbered(99));
        assert_eq!(counted(&metrics, "webhook", "dropped"), 1);
    }

    #[tokio::test]
    async fn flush_stops_at_its_deadline_and_counts_what_was_left() {
        let dead = Endpoint::start(false);
        let metrics = Arc::new(Metrics::new());
        let alerter = Alerter::start(sinks(&[&dead], &[]), metrics.clone());
        alerter.send(numbered(0));
        until("the first attempt", || {
            !dead.bodies.lock().unwrap().is_empty()
        })
        .await;
        alerter.send(numbered(1));
        let flushed = tokio::time::timeout(
            Duration::from_secs(30),
            alerter.flush(Duration::from_millis(300)),
        );
        assert!(flushed.await.is_ok(), "flush did not stop at its deadline");
        // The one in flight and the one queued.
        assert_eq!(counted(&metrics, "webhook", "dropped"), 2);
        assert_eq!(counted(&metrics, "webhook", "delivered"), 0);
    }

    #[tokio::test]
    async fn a_full_queue_drops_its_oldest_alerts_and_counts_them() {
        let dead = Endpoint::start(false);
        let metrics = Arc::new(Metrics::new());
        let alerter = Alerter::start(sinks(&[&dead], &[]), metrics.clone());
        alerter.send(numbered(0));
        until("the first attempt", || {
            !dead.bodies.lock().unwrap().is_empty()
        })
        .await;
        for n in 1..=QUEUE + 3 {
            alerter.send(numbered(n));
        }
        assert_eq!(counted(&metrics, "webhook", "dropped"), 3);
        let queue = &alerter.queues[0].1;
        let q = queue.lock();
        assert_eq!(q.len(), QUEUE);
        // The newest are kept.
        let Some(Message::Alert(front)) = q.front() else {
            panic!("not an alert")
        };
        assert_eq!(front.resource.as_deref(), Some("Service/api-4"));
    }

    fn huge_rejection(errors: usize) -> Alert {
        let mut a = Alert::new(AlertKind::ManifestRejected, None, None, "dir", "sha256:1");
        a.manifest_errors = (0..errors)
            .map(|i| {
                format!(
                    "prd/api-{i}.yaml:3:5: spec.taskDefinition.cpu: {}",
                    "x".repeat(80)
                )
            })
            .collect();
        a
    }

    #[tokio::test]
    async fn a_huge_alert_is_cut_to_each_sinks_limit_with_a_note_and_delivered() {
        let (webhook, slack) = (Endpoint::start(true), Endpoint::start(true));
        let metrics = Arc::new(Metrics::new());
        let alerter = Alerter::start(sinks(&[&webhook], &[&slack]), metrics.clone());
        let mut failure = numbered(1);
        failure.error = Some(Failure {
            category: crate::reconcile::Category::Validation,
            message: format!("ValidationError: {}", "y".repeat(200_000)),
        });
        alerter.send(huge_rejection(30_000));
        alerter.send(failure);
        alerter.flush(Duration::from_secs(60)).await;

        let bodies = webhook.bodies.lock().unwrap().clone();
        assert_eq!(bodies.len(), 2);
        assert!(bodies.iter().all(|b| b.len() <= WEBHOOK_LIMIT));
        let rejected: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
        let kept = rejected["manifestErrors"].as_array().unwrap().len();
        assert!(kept > 1000 && kept < 30_000, "{kept}");
        assert_eq!(
            rejected["truncated"],
            format!(
                "… {} more errors not shown (message size limit)",
                30_000 - kept
            )
        );
        let slack_bodies = slack.bodies.lock().unwrap().clone();
        assert_eq!(slack_bodies.len(), 2);
        for b in &slack_bodies {
            let text: serde_json::Value = serde_json::from_str(b).unwrap();
            let text = text["text"].as_str().unwrap();
            assert!(text.chars().count() <= SLACK_LIMIT, "{}", text.len());
        }
        let failure_text: serde_json::Value = serde_json::from_str(&slack_bodies[1]).unwrap();
        assert!(
            failure_text["text"]
                .as_str()
                .unwrap()
                .contains("more bytes not shown"),
            "{failure_text}"
        );
        assert_eq!(counted(&metrics, "webhook", "delivered"), 2);
        assert_eq!(counted(&metrics, "slack", "delivered"), 2);

        // SNS: text and JSON together within 256 KB, the JSON still whole.
        let message = sns_message(&huge_rejection(30_000));
        assert!(message.len() <= SNS_LIMIT, "{}", message.len());
        assert!(message.contains("more errors not shown (message size limit)"));
        let json = &message[message.find("\n\n{").unwrap() + 2..];
        let parsed: serde_json::Value = serde_json::from_str(json).unwrap();
        assert!(parsed["truncated"].is_string());
        // A small alert is left alone.
        let small = huge_rejection(3);
        assert_eq!(fit(&small, SNS_LIMIT, |a| sns_message(a).len()), small);
        assert!(!sns_message(&small).contains("not shown"));
    }

    fn drift() -> Alert {
        let mut a = Alert::new(
            AlertKind::Drift,
            None,
            Some("Service/api".into()),
            "git@example:ops.git",
            "4f2c9e1",
        );
        a.corrected = Some(true);
        a.changes = vec![FieldChange {
            field: "desiredCount".into(),
            live: json!(7),
            desired: json!(2),
            note: None,
        }];
        a
    }

    fn deploy(state: crate::deploys::DeployState, stack: &str) -> crate::deploys::Deploy {
        let begun = crate::deploys::Begun {
            service: "api".into(),
            ecs_name: "api".into(),
            cluster: "prd".into(),
            from_task_definition: Some("arn:aws:ecs:r:1:task-definition/api:1".into()),
            to_task_definition: "arn:aws:ecs:r:1:task-definition/api:2".into(),
            from_image: Some("nginx:1.27".into()),
            to_image: Some("nginx:1.28".into()),
            started: SystemTime::now(),
            changes: Vec::new(),
            created: false,
            failed: None,
            verify: None,
            rollback_on_failure: false,
        };
        let mut d = crate::deploys::Deploy::begin(
            &begun,
            stack,
            "4f2c9e1",
            (crate::deploys::Reason::ManifestChange, None),
        );
        match state {
            crate::deploys::DeployState::InProgress => {}
            crate::deploys::DeployState::Failed => d.finish(Some((
                crate::deploys::Cause::Rollback,
                "circuit breaker".into(),
            ))),
            _ => d.finish(None),
        }
        d
    }

    #[tokio::test]
    async fn slack_alerts_are_block_kit_with_the_stack_account_region_diff_commit_and_link() {
        let slack = Endpoint::start(true);
        let metrics = Arc::new(Metrics::new());
        let alerter = Alerter::start(
            Sinks {
                sinks: vec![(
                    Address::Slack(slack.url.clone()),
                    Accepts::Alerts(AlertFilter::default()),
                )],
                external_url: Some("https://mooring.example/".into()),
                ..Sinks::default()
            },
            metrics,
        );
        alerter.set_target(crate::aws::identity::Target {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            endpoint: None,
        });
        alerter.set_stack("production");
        alerter.send(drift());
        alerter.flush(Duration::from_secs(30)).await;
        let body = &slack.json()[0];
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert!(
            blocks[0]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("Service/api drifted from git (corrected)"),
            "{body}"
        );
        let fields: Vec<&str> = blocks[1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        for want in [
            "*Stack*\nproduction",
            "*Account*\n123456789012",
            "*Region*\neu-west-1",
            "*Revision*\n`4f2c9e1`",
            "*Resource*\nService/api",
            "*Severity*\nwarning",
        ] {
            assert!(fields.contains(&want), "{want} not in {fields:?}");
        }
        let texts: Vec<&str> = blocks
            .iter()
            .filter_map(|b| b["text"]["text"].as_str())
            .collect();
        assert!(
            texts.iter().any(|t| t.contains("desiredCount: 7 → 2")),
            "{texts:?}"
        );
        let actions = blocks.iter().find(|b| b["type"] == "actions").unwrap();
        assert_eq!(
            actions["elements"][0]["url"],
            "https://mooring.example/resources/Service/api"
        );
        // The fallback text says it too, for notifications.
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("account 123456789012, eu-west-1"), "{text}");
    }

    #[test]
    fn a_rejected_set_names_the_rejected_revision_and_the_running_one() {
        let mut e = Episodes::default();
        let err = ManifestError {
            file: "a.yaml".into(),
            line: 3,
            col: 5,
            field: "spec.cpu".into(),
            message: "bad".into(),
        };
        let a = e
            .rejected(
                std::slice::from_ref(&err),
                "dir",
                "abc1234",
                Some("def5678"),
            )
            .unwrap();
        assert!(
            a.headline()
                .contains("manifest revision def5678 was rejected; revision abc1234 keeps running"),
            "{}",
            a.headline()
        );
        let fields = a.slack()["blocks"][1]["fields"].to_string();
        assert!(
            fields.contains("*Rejected revision*\\n`def5678`")
                && fields.contains("*Running revision*\\n`abc1234`"),
            "{fields}"
        );
        assert_eq!(a.severity, Severity::Critical);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["rejectedRevision"], "def5678");
        assert_eq!(json["revision"], "abc1234");
    }

    #[test]
    fn alert_filters_take_kinds_severities_and_names() {
        let drift = drift();
        let mut failure = drift.clone();
        failure.kind = AlertKind::Failure;
        failure.severity = Severity::of(AlertKind::Failure, None);
        let mut rejected = Alert::new(AlertKind::ManifestRejected, None, None, "dir", "r");
        rejected.severity = Severity::Critical;
        let all = AlertFilter::default();
        assert!(all.takes(&drift) && all.takes(&failure) && all.takes(&rejected));
        let critical = AlertFilter {
            severities: vec![Severity::Critical],
            ..AlertFilter::default()
        };
        assert!(!critical.takes(&drift) && critical.takes(&failure) && critical.takes(&rejected));
        let resolved = Alert::new(
            AlertKind::Resolved,
            Some(AlertKind::Failure),
            Some("Service/api".into()),
            "dir",
            "r",
        );
        assert!(critical.takes(&resolved), "the end of a critical episode");
        let clusters = AlertFilter {
            kinds: vec!["Cluster".into()],
            ..AlertFilter::default()
        };
        assert!(!clusters.takes(&drift));
        assert!(
            clusters.takes(&rejected),
            "set-wide alerts pass kind filters"
        );
        let services = AlertFilter {
            kinds: vec!["service".into()],
            names: vec!["api".into()],
            ..AlertFilter::default()
        };
        assert!(services.takes(&drift));
        let worker = AlertFilter {
            names: vec!["worker".into()],
            ..AlertFilter::default()
        };
        assert!(!worker.takes(&drift));
    }

    #[tokio::test]
    async fn deploy_notifications_go_only_to_deploy_sinks_whose_rules_take_them() {
        use crate::deploys::{DeployState, Outcome};
        let (alerts, failures, slack) = (
            Endpoint::start(true),
            Endpoint::start(true),
            Endpoint::start(true),
        );
        let metrics = Arc::new(Metrics::new());
        let alerter = Alerter::start(
            Sinks {
                sinks: vec![
                    (
                        Address::Webhook(alerts.url.clone()),
                        Accepts::Alerts(AlertFilter::default()),
                    ),
                    (
                        Address::Webhook(failures.url.clone()),
                        Accepts::Deploys(vec![
                            DeployRule {
                                outcomes: vec![Outcome::Failed],
                                ..DeployRule::default()
                            },
                            DeployRule {
                                outcomes: vec![Outcome::Succeeded],
                                stacks: vec!["production".into()],
                                names: vec![],
                            },
                        ]),
                    ),
                    (Address::Slack(slack.url.clone()), Accepts::Deploys(vec![])),
                ],
                external_url: Some("https://mooring.example".into()),
                ..Sinks::default()
            },
            metrics.clone(),
        );
        alerter.send_deploy(&deploy(DeployState::InProgress, "staging"));
        alerter.send_deploy(&deploy(DeployState::Succeeded, "staging"));
        alerter.send_deploy(&deploy(DeployState::Failed, "staging"));
        alerter.send_deploy(&deploy(DeployState::Succeeded, "production"));
        alerter.send(drift());
        alerter.flush(Duration::from_secs(30)).await;
        let outcomes = |e: &Endpoint| -> Vec<String> {
            e.json()
                .iter()
                .map(|n| {
                    format!(
                        "{}/{}",
                        n["outcome"].as_str().unwrap_or("-"),
                        n["stack"].as_str().unwrap_or("-")
                    )
                })
                .collect()
        };
        assert_eq!(
            outcomes(&failures),
            ["failed/staging", "succeeded/production"]
        );
        assert_eq!(
            slack.json().len(),
            4,
            "a sink with no rules takes every notification"
        );
        assert_eq!(alerts.json().len(), 1, "alerts only: {:?}", alerts.json());
        assert_eq!(alerts.json()[0]["kind"], "drift");
        let failed = &failures.json()[0];
        assert_eq!(
            failed["link"],
            "https://mooring.example/resources/Service/api"
        );
        assert_eq!(failed["failure"]["message"], "circuit breaker");
        assert!(
            slack.json()[0]["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("Deploy started: api (staging)")
        );
        assert_eq!(counted(&metrics, "deploy_webhook", "delivered"), 2);
        assert_eq!(counted(&metrics, "deploy_slack", "delivered"), 4);
    }

    #[test]
    fn a_change_from_git_that_went_in_is_not_drift() {
        let id = (Kind::Service, "api".to_string());
        let mut e = Episodes::default();
        e.set_fingerprints(HashMap::from([(id.clone(), 1)]));
        assert!(
            e.observe(&pass(Action::None, false, None), "dir")
                .is_empty()
        );
        // The manifest changed and the change was applied: a deploy, not drift.
        e.set_fingerprints(HashMap::from([(id.clone(), 2)]));
        assert!(
            e.observe(&pass(Action::Update, true, None), "dir")
                .is_empty()
        );
        assert!(
            e.observe(&pass(Action::None, false, None), "dir")
                .is_empty()
        );
        // Held back (observe mode): live still differs from git, which is reported.
        e.set_fingerprints(HashMap::from([(id.clone(), 3)]));
        let held = e.observe(&pass(Action::Update, false, None), "dir");
        assert_eq!(kinds(&held), [(AlertKind::Drift, None)]);
        assert!(
            !e.observe(&pass(Action::None, false, None), "dir")
                .is_empty()
        );
        // The manifest unchanged since: a change to live is drift again.
        let drifted = e.observe(&pass(Action::Update, true, None), "dir");
        assert_eq!(kinds(&drifted), [(AlertKind::Drift, None)]);
    }
}
