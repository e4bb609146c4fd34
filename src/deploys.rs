//! Deploys as episodes. When the Service kind moves a service to a new task definition
//! revision it says what it begins ([`Begun`]) before any pre-deploy task or update; the
//! daemon's [`Tracker`] turns that into a [`Deploy`] — why it happened (derived from the
//! plan's changes), old → new image, the manifest revision — and announces it as started.
//! After the pass it follows the rollout in a task of its own (so no other resource waits
//! for it) until it completes, fails (circuit-breaker rollback, pre-deploy failure, the
//! apply itself) or times out. `/status/Service/{name}`
//! keeps the last [`DEPLOYS_KEPT`]; deploy notifications go to their own sinks
//! ([`crate::alerts`]), filtered per sink by outcome, stack and name ([`DeployRule`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::reconcile::FieldChange;
use crate::status::rfc3339;

/// How many deploys each service keeps in `/status/Service/{name}`.
pub const DEPLOYS_KEPT: usize = 20;

/// How long a rollout is followed before the deploy counts as failed, unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// The plan field of a service's image.
const IMAGE_FIELD: &str = "taskDefinition.container.image";

/// Why a service was deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Its manifest changed (a new image tag, new settings) or it is new.
    ManifestChange,
    /// The tag it follows by digest points at a new image.
    NewDigest,
    /// A parameter or secret it reads has a new version.
    SecretChange,
    /// Live differed from an unchanged manifest and mooring put it back.
    DriftCorrection,
}

impl Reason {
    /// The words messages use.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::ManifestChange => "manifest change",
            Reason::NewDigest => "new image digest",
            Reason::SecretChange => "secret change",
            Reason::DriftCorrection => "drift correction",
        }
    }
}

/// Why a deploy failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// ECS gave up on the new revision (deployment circuit breaker, rollback).
    Rollback,
    /// The pre-deploy task failed or timed out; the service was not touched.
    PreDeploy,
    /// The rollout did not finish within the deploy timeout.
    Timeout,
    /// ECS refused the change (RegisterTaskDefinition, UpdateService, CreateService).
    Apply,
    /// The rollout completed but the check after it (`deploy.verify`) failed.
    Verify,
    /// The service moved to another revision during the rollout (a deploy from elsewhere:
    /// `aws ecs update-service`, a hand `mooring apply`); the revision is not marked failed.
    Replaced,
}

/// Where a deploy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployState {
    /// Rolling out.
    InProgress,
    /// Every task runs the new revision.
    Succeeded,
    /// See [`Deploy::failure`].
    Failed,
    /// A newer deploy of the same service started before this one finished.
    Superseded,
}

/// What a deploy notification announces; sinks filter on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The deploy began.
    Started,
    /// It completed.
    Succeeded,
    /// It failed.
    Failed,
}

/// What the Service kind records when it moves a service to a new revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Begun {
    /// The manifest's name.
    pub service: String,
    /// The ECS service's name.
    pub ecs_name: String,
    /// The ECS cluster's name.
    pub cluster: String,
    /// The revision it ran (`None` for a new service).
    pub from_task_definition: Option<String>,
    /// The revision it moves to.
    pub to_task_definition: String,
    /// The image it ran.
    pub from_image: Option<String>,
    /// The image it moves to.
    pub to_image: Option<String>,
    /// When.
    pub started: SystemTime,
    /// The plan's changes that say why: the image and `MOORING_SECRETS_VERSION`, with
    /// their notes (`tag latest`, `new version of secret …`).
    pub changes: Vec<FieldChange>,
    /// The service is new.
    pub created: bool,
    /// Set when the deploy failed within the apply (pre-deploy task, ECS refused).
    pub failed: Option<(Cause, String)>,
    /// The check after the rollout (`deploy.verify`), if any.
    pub verify: Option<crate::kinds::service::verify::VerifySpec>,
    /// Roll back to `from_task_definition` when the check fails.
    pub rollback_on_failure: bool,
}

/// Why a deploy failed, as status and notifications show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeployFailure {
    /// What failed.
    pub cause: Cause,
    /// What ECS or mooring said.
    pub message: String,
}

/// One deploy of one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deploy {
    /// `service:revision@started` (unique per deploy).
    pub id: String,
    /// The Service manifest's name.
    pub service: String,
    /// The stack (environment) it belongs to.
    pub stack: String,
    /// The manifest revision (git commit or content hash) that asked for it.
    pub revision: String,
    /// Why.
    pub reason: Reason,
    /// More about why (`tag latest`, `new version of secret db-password`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The task definition revision it ran.
    pub from_task_definition: Option<String>,
    /// The task definition revision it moves to.
    pub to_task_definition: String,
    /// The image it ran.
    pub from_image: Option<String>,
    /// The image it moves to.
    pub to_image: Option<String>,
    /// Where it is.
    pub state: DeployState,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<DeployFailure>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// How long it took, start to finish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    #[serde(skip)]
    started: Option<SystemTime>,
}

impl Deploy {
    /// The deploy `begun` describes, under way.
    pub fn begin(
        begun: &Begun,
        stack: &str,
        revision: &str,
        reason: (Reason, Option<String>),
    ) -> Deploy {
        let started_at = rfc3339(begun.started);
        let number = begun
            .to_task_definition
            .rsplit(':')
            .next()
            .unwrap_or_default();
        Deploy {
            id: format!("{}:{number}@{started_at}", begun.service),
            service: begun.service.clone(),
            stack: stack.to_string(),
            revision: revision.to_string(),
            reason: reason.0,
            detail: reason.1,
            from_task_definition: begun.from_task_definition.clone(),
            to_task_definition: begun.to_task_definition.clone(),
            from_image: begun.from_image.clone(),
            to_image: begun.to_image.clone(),
            state: DeployState::InProgress,
            failure: None,
            started_at,
            finished_at: None,
            duration_seconds: None,
            started: Some(begun.started),
        }
    }

    /// Ends it: succeeded (`None`) or failed, stamped now.
    pub fn finish(&mut self, failure: Option<(Cause, String)>) {
        let now = SystemTime::now();
        self.finished_at = Some(rfc3339(now));
        self.duration_seconds = self
            .started
            .and_then(|s| now.duration_since(s).ok())
            .map(|d| (d.as_secs_f64() * 10.0).round() / 10.0);
        match failure {
            None => self.state = DeployState::Succeeded,
            Some((cause, message)) => {
                self.state = DeployState::Failed;
                self.failure = Some(DeployFailure { cause, message });
            }
        }
    }

    /// Ends it as overtaken by a newer deploy of the same service.
    pub fn supersede(&mut self) {
        self.finish(None);
        self.state = DeployState::Superseded;
    }

    /// What a notification of it now would announce (`None` once superseded).
    pub fn outcome(&self) -> Option<Outcome> {
        match self.state {
            DeployState::InProgress => Some(Outcome::Started),
            DeployState::Succeeded => Some(Outcome::Succeeded),
            DeployState::Failed => Some(Outcome::Failed),
            DeployState::Superseded => None,
        }
    }

    /// One line for people: `api (production): nginx:1.27 → nginx:1.28`.
    pub fn title(&self) -> String {
        let image = |i: &Option<String>| i.clone().unwrap_or_else(|| "(none)".into());
        format!(
            "{} ({}): {} → {}",
            self.service,
            self.stack,
            image(&self.from_image),
            image(&self.to_image)
        )
    }
}

/// Why a service moved to a new revision, from the plan's changes: a new version of a
/// secret it reads (`MOORING_SECRETS_VERSION`), a tag followed by digest that points at a
/// new image (the image change carries `tag …`), the manifest, or else drift put back.
/// `manifest_changed` is what the daemon knows: whether the manifest changed since the
/// service was last in sync (`None`: not known, e.g. the first pass after a start).
pub fn reason(
    changes: &[FieldChange],
    created: bool,
    manifest_changed: Option<bool>,
) -> (Reason, Option<String>) {
    let image = changes.iter().find(|c| c.field == IMAGE_FIELD);
    let secret = changes.iter().find(|c| {
        c.field.ends_with(&format!(
            ".{}",
            crate::kinds::service::spec::SECRETS_VERSION_ENV
        ))
    });
    let digest_note = image.and_then(|c| c.note.clone());
    if created {
        // Deleted out of band and created again from an unchanged manifest: drift.
        return match manifest_changed {
            Some(false) => (Reason::DriftCorrection, Some("created again".into())),
            _ => (Reason::ManifestChange, Some("new service".into())),
        };
    }
    match manifest_changed {
        Some(true) => (Reason::ManifestChange, digest_note),
        _ if image.is_some_and(|c| c.note.is_some()) => (Reason::NewDigest, digest_note),
        _ if secret.is_some() => (Reason::SecretChange, secret.and_then(|c| c.note.clone())),
        // An image changed with no tag followed: the manifest's own image, unless the
        // manifest is known not to have changed (then someone changed the service).
        None if image.is_some() => (Reason::ManifestChange, None),
        _ => (Reason::DriftCorrection, None),
    }
}

/// Which deploy notifications a sink takes: all of `outcomes` (any when empty) of the
/// stacks in `stacks` and services in `names` (any when empty). A sink with several
/// rules takes what any of them takes; with none, everything.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeployRule {
    /// `started`, `succeeded`, `failed`.
    #[serde(default)]
    pub outcomes: Vec<Outcome>,
    /// Stack names (the `kind: Stack` document's name).
    #[serde(default)]
    pub stacks: Vec<String>,
    /// Service manifest names.
    #[serde(default)]
    pub names: Vec<String>,
}

impl DeployRule {
    fn takes(&self, outcome: Outcome, deploy: &Deploy) -> bool {
        (self.outcomes.is_empty() || self.outcomes.contains(&outcome))
            && (self.stacks.is_empty() || self.stacks.contains(&deploy.stack))
            && (self.names.is_empty() || self.names.contains(&deploy.service))
    }
}

/// True when a sink with `rules` takes the notification of `deploy` now.
pub fn takes(rules: &[DeployRule], deploy: &Deploy) -> bool {
    let Some(outcome) = deploy.outcome() else {
        return false;
    };
    rules.is_empty() || rules.iter().any(|r| r.takes(outcome, deploy))
}

/// One deploy notification, as the JSON webhook receives it: enough for a board item
/// (Monday, Jira) — title, service, stack, outcome, old and new image, commit, duration,
/// link.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    /// `deploy`, so one receiver can tell these from alerts.
    pub event: &'static str,
    /// `started`, `succeeded` or `failed`.
    pub outcome: Outcome,
    /// One line for people.
    pub title: String,
    /// The deploy.
    #[serde(flatten)]
    pub deploy: Deploy,
    /// The account and region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<crate::aws::identity::Target>,
    /// The service's page on mooring's status site, when `externalUrl` is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl Notice {
    /// The notification of `deploy` as it is now (`None` once superseded).
    pub fn of(deploy: &Deploy) -> Option<Notice> {
        Some(Notice {
            event: "deploy",
            outcome: deploy.outcome()?,
            title: deploy.title(),
            deploy: deploy.clone(),
            target: None,
            link: None,
        })
    }

    /// The headline: `Deploy succeeded: api (production) in 1m 5s`.
    pub fn headline(&self) -> String {
        let d = &self.deploy;
        match self.outcome {
            Outcome::Started => format!(":rocket: Deploy started: {} ({})", d.service, d.stack),
            Outcome::Succeeded => format!(
                ":white_check_mark: Deploy succeeded: {} ({}){}",
                d.service,
                d.stack,
                d.duration_seconds
                    .map(|s| format!(" in {}", human(s)))
                    .unwrap_or_default()
            ),
            Outcome::Failed => format!(
                ":x: Deploy failed: {} ({}){}",
                d.service,
                d.stack,
                d.failure
                    .as_ref()
                    .map(|f| format!(" — {}", cause_words(f.cause)))
                    .unwrap_or_default()
            ),
        }
    }

    /// A readable text (SNS, Slack's fallback).
    pub fn text(&self) -> String {
        let d = &self.deploy;
        let mut out = self.headline();
        out.push_str(&format!(
            "\nimage: {} → {}\nwhy: {}{}\nrevision: {}",
            d.from_image.as_deref().unwrap_or("(none)"),
            d.to_image.as_deref().unwrap_or("(none)"),
            d.reason.describe(),
            d.detail
                .as_ref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default(),
            d.revision
        ));
        if let Some(t) = &self.target {
            out.push_str(&format!("\naccount {}, {}", t.account, t.region));
        }
        if let Some(f) = &d.failure {
            out.push_str(&format!("\n{}", f.message));
        }
        if let Some(link) = &self.link {
            out.push_str(&format!("\n{link}"));
        }
        out
    }

    /// A Slack Block Kit message: a header, the facts as fields, the failure, a button
    /// to the service's status page; `text` is the fallback for notifications.
    pub fn slack(&self) -> serde_json::Value {
        let d = &self.deploy;
        let mut fields = vec![
            field("Service", &d.service),
            field("Stack", &d.stack),
            field(
                "Image",
                &format!(
                    "`{}` → `{}`",
                    d.from_image.as_deref().unwrap_or("(none)"),
                    d.to_image.as_deref().unwrap_or("(none)")
                ),
            ),
            field(
                "Why",
                &format!(
                    "{}{}",
                    d.reason.describe(),
                    d.detail
                        .as_ref()
                        .map(|x| format!(" ({x})"))
                        .unwrap_or_default()
                ),
            ),
            field("Revision", &format!("`{}`", d.revision)),
        ];
        if let Some(s) = d.duration_seconds {
            fields.push(field("Duration", &human(s)));
        }
        if let Some(t) = &self.target {
            fields.push(field("Account", &t.account));
            fields.push(field("Region", &t.region));
        }
        let mut blocks = vec![
            header(&self.headline()),
            serde_json::json!({"type": "section", "fields": fields}),
        ];
        if let Some(f) = &d.failure {
            blocks.push(section(&format!(
                "*{}*\n{}",
                cause_words(f.cause),
                f.message
            )));
        }
        blocks.push(context(&format!(
            "{} → {}",
            d.from_task_definition.as_deref().unwrap_or("(none)"),
            d.to_task_definition
        )));
        if let Some(link) = &self.link {
            blocks.push(button("Open the service's page", link));
        }
        serde_json::json!({"text": cut(&self.text(), 3000), "blocks": blocks})
    }
}

fn cause_words(cause: Cause) -> &'static str {
    match cause {
        Cause::Rollback => "rolled back by ECS",
        Cause::Replaced => "replaced by another deploy",
        Cause::PreDeploy => "pre-deploy task failed",
        Cause::Timeout => "timed out",
        Cause::Apply => "ECS refused the change",
        Cause::Verify => "verify failed",
    }
}

/// `65.0` → `1m 5s`.
pub fn human(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// `text` cut to `max` characters (Block Kit's limits are in characters).
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A Block Kit header (plain text, at most 150 characters).
pub fn header(text: &str) -> serde_json::Value {
    serde_json::json!({"type": "header", "text": {"type": "plain_text", "text": cut(text, 150), "emoji": true}})
}

/// `text` with the three characters Slack's mrkdwn reserves escaped (`<`, `>`, `&`), so
/// a value such as `<none>` or a URL with `&` shows as written.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Block Kit section of markdown (at most 3000 characters).
pub fn section(text: &str) -> serde_json::Value {
    serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&escape(text), 3000)}})
}

/// A Block Kit section field: a bold label over a value (at most 2000 characters).
pub fn field(label: &str, value: &str) -> serde_json::Value {
    serde_json::json!({"type": "mrkdwn", "text": cut(&format!("*{label}*\n{}", escape(value)), 2000)})
}

/// A Block Kit context line.
pub fn context(text: &str) -> serde_json::Value {
    serde_json::json!({"type": "context", "elements": [{"type": "mrkdwn", "text": cut(&escape(text), 2000)}]})
}

/// A Block Kit actions block with one link button.
pub fn button(text: &str, url: &str) -> serde_json::Value {
    serde_json::json!({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": text}, "url": cut(url, 3000)}]})
}

/// Where finished and started deploys are reported: status, metrics, notifications.
#[derive(Clone)]
pub struct Reporter {
    /// `/status`.
    pub status: crate::status::StatusStore,
    /// `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Notifications.
    pub alerter: crate::alerts::Alerter,
}

impl Reporter {
    /// Records `deploy` as it is now everywhere it is shown, and announces it.
    pub fn report(&self, deploy: &Deploy) {
        tracing::info!(
            service = %deploy.service,
            state = ?deploy.state,
            reason = deploy.reason.describe(),
            to = %deploy.to_task_definition,
            "deploy"
        );
        self.status.record_deploy(deploy);
        if deploy.state != DeployState::InProgress {
            self.metrics.record_deploy(deploy);
        }
        self.alerter.send_deploy(deploy);
    }
}

/// What following a rollout needs.
#[derive(Clone)]
pub struct Follow {
    /// ECS.
    pub ecs: aws_sdk_ecs::Client,
    /// Time between looks.
    pub poll: Duration,
    /// How long before the deploy counts as timed out.
    pub timeout: Duration,
}

/// What the daemon keeps about deploys, shared with the Service kind's hook: the manifest
/// each service was last in sync with (to tell a manifest change from a new digest or
/// drift), the deploys announced in this pass, and the rollouts being followed.
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<std::sync::Mutex<Inner>>,
    reporter: Reporter,
    follow: Follow,
}

#[derive(Default)]
struct Inner {
    stack: String,
    revision: String,
    fingerprints: HashMap<(crate::manifest::Kind, String), u64>,
    settled: HashMap<String, u64>,
    /// Announced as started in this pass, by [`Deploy::id`].
    announced: HashMap<String, Deploy>,
    following: HashMap<String, (Arc<std::sync::Mutex<Deploy>>, tokio::task::AbortHandle)>,
    /// Revisions ECS rolled back, seen by a follower, not yet handed to the Service kind.
    rolled_back: Vec<String>,
}

impl Tracker {
    /// A tracker reporting to `reporter` and following rollouts as `follow` says.
    pub fn new(reporter: Reporter, follow: Follow) -> Tracker {
        Tracker {
            inner: Arc::default(),
            reporter,
            follow,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The revisions ECS rolled back since the last call: the Service kind does not deploy
    /// them again until the manifest changes (ECS soon stops listing the failed deployment,
    /// so the next plan cannot see it).
    pub fn take_rolled_back(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().rolled_back)
    }

    /// The set a pass is about to reconcile: its stack, revision and fingerprints.
    pub fn before_pass(&self, set: &crate::manifest::ManifestSet) {
        let mut inner = self.lock();
        inner.stack = set.stack.clone();
        inner.revision = set.revision.clone();
        inner.fingerprints = set.fingerprints();
    }

    fn deploy_of(inner: &Inner, b: &Begun) -> Deploy {
        let print = inner
            .fingerprints
            .get(&(crate::manifest::Kind::Service, b.service.clone()))
            .copied();
        let manifest_changed = inner.settled.get(&b.service).map(|was| Some(*was) != print);
        let why = reason(&b.changes, b.created, manifest_changed);
        Deploy::begin(b, &inner.stack, &inner.revision, why)
    }

    /// The Service kind began `b` (called from its apply, before a pre-deploy task or the
    /// update): announced as started now; a deploy of the same service still followed is
    /// superseded.
    pub fn begun(&self, b: &Begun) {
        let deploy = {
            let mut inner = self.lock();
            let deploy = Self::deploy_of(&inner, b);
            if let Some((older, task)) = inner.following.remove(&b.service) {
                task.abort();
                // Under the lock its follower finishes with: ended already, or never.
                let mut older = older.lock().unwrap_or_else(|p| p.into_inner());
                if older.state == DeployState::InProgress {
                    older.supersede();
                    self.reporter.report(&older);
                }
            }
            inner.announced.insert(deploy.id.clone(), deploy.clone());
            deploy
        };
        self.reporter.report(&deploy);
    }

    /// After a pass: each deploy the Service kind began (`begun`, taken from it) ends at
    /// once when it failed within the apply, or is followed in a task of its own.
    /// Services whose plan was clean count as in sync with their manifest as it is now.
    pub fn after_pass(&self, begun: Vec<Begun>, report: &crate::reconcile::PassReport) {
        use crate::manifest::Kind;
        let mut inner = self.lock();
        for b in begun {
            let fresh = Self::deploy_of(&inner, &b);
            let mut deploy = match inner.announced.remove(&fresh.id) {
                Some(d) => d,
                None => {
                    // Begun without the hook (not expected in the daemon): announce now.
                    self.reporter.report(&fresh);
                    fresh
                }
            };
            if let Some(failed) = b.failed.clone() {
                deploy.finish(Some(failed));
                self.reporter.report(&deploy);
                continue;
            }
            let service = deploy.service.clone();
            let shared = Arc::new(std::sync::Mutex::new(deploy));
            let (follow, reporter, mine, tracker) = (
                self.follow.clone(),
                self.reporter.clone(),
                shared.clone(),
                self.inner.clone(),
            );
            let task = tokio::spawn(async move {
                let result = crate::kinds::service::follow::follow(
                    &follow.ecs,
                    &b,
                    follow.poll,
                    follow.timeout,
                )
                .await;
                // The rollout completed: the check after it decides (and may roll back).
                let result = match result {
                    Ok(()) => crate::kinds::service::verify::after_rollout(&follow.ecs, &b)
                        .await
                        .map(|_| ())
                        .map_err(|why| (Cause::Verify, why)),
                    Err(e) => Err(e),
                };
                // Not deployed again until the manifest changes: what ECS rolled back, and
                // what a failed verify rolled back.
                let rolled_back = match &result {
                    Err((Cause::Rollback, _)) => true,
                    Err((Cause::Verify, _)) => {
                        b.rollback_on_failure && b.from_task_definition.is_some()
                    }
                    _ => false,
                };
                if rolled_back {
                    tracker
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .rolled_back
                        .push(b.to_task_definition.clone());
                }
                let done = {
                    let mut d = mine.lock().unwrap_or_else(|p| p.into_inner());
                    // A newer deploy may have superseded it meanwhile.
                    (d.state == DeployState::InProgress).then(|| {
                        d.finish(result.err());
                        d.clone()
                    })
                };
                if let Some(done) = done {
                    reporter.report(&done);
                }
            });
            inner
                .following
                .insert(service, (shared, task.abort_handle()));
        }
        inner.announced.clear();
        inner.following.retain(|_, (_, task)| !task.is_finished());
        for r in &report.resources {
            if r.kind == Kind::Service
                && r.action == crate::reconcile::Action::None
                && let Some(p) = inner
                    .fingerprints
                    .get(&(Kind::Service, r.name.clone()))
                    .copied()
            {
                inner.settled.insert(r.name.clone(), p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(field: &str, note: Option<&str>) -> FieldChange {
        FieldChange {
            field: field.into(),
            live: json!("a"),
            desired: json!("b"),
            note: note.map(str::to_string),
        }
    }

    fn begun() -> Begun {
        Begun {
            service: "api".into(),
            ecs_name: "api".into(),
            cluster: "prd".into(),
            from_task_definition: Some("arn:aws:ecs:r:1:task-definition/api:1".into()),
            to_task_definition: "arn:aws:ecs:r:1:task-definition/api:2".into(),
            from_image: Some("nginx:1.27".into()),
            to_image: Some("nginx:1.28".into()),
            started: SystemTime::now() - Duration::from_secs(65),
            changes: Vec::new(),
            created: false,
            failed: None,
            verify: None,
            rollback_on_failure: false,
        }
    }

    #[test]
    fn why_a_deploy_happened_comes_from_the_changes() {
        let image = change(IMAGE_FIELD, None);
        let digest = change(IMAGE_FIELD, Some("tag latest"));
        let secret = change(
            "taskDefinition.container.environment.MOORING_SECRETS_VERSION",
            Some("new version of secret db-password"),
        );
        let cpu = change("taskDefinition.cpu", None);
        assert_eq!(
            reason(std::slice::from_ref(&cpu), true, None).0,
            Reason::ManifestChange
        );
        assert_eq!(
            reason(std::slice::from_ref(&cpu), true, Some(false)),
            (Reason::DriftCorrection, Some("created again".into()))
        );
        assert_eq!(
            reason(std::slice::from_ref(&image), false, None).0,
            Reason::ManifestChange
        );
        assert_eq!(
            reason(std::slice::from_ref(&image), false, Some(false)).0,
            Reason::DriftCorrection
        );
        assert_eq!(
            reason(std::slice::from_ref(&digest), false, Some(false)),
            (Reason::NewDigest, Some("tag latest".into()))
        );
        assert_eq!(
            reason(&[digest], false, Some(true)).0,
            Reason::ManifestChange
        );
        assert_eq!(
            reason(std::slice::from_ref(&secret), false, None),
            (
                Reason::SecretChange,
                Some("new version of secret db-password".into())
            )
        );
        assert_eq!(
            reason(std::slice::from_ref(&cpu), false, Some(true)).0,
            Reason::ManifestChange
        );
        assert_eq!(
            reason(&[cpu], false, Some(false)).0,
            Reason::DriftCorrection
        );
    }

    #[test]
    fn sinks_take_the_outcomes_stacks_and_names_their_rules_name() {
        let mut d = Deploy::begin(
            &begun(),
            "staging",
            "abc123",
            (Reason::ManifestChange, None),
        );
        // Only failures, and successes in production.
        let rules = vec![
            DeployRule {
                outcomes: vec![Outcome::Failed],
                ..DeployRule::default()
            },
            DeployRule {
                outcomes: vec![Outcome::Succeeded],
                stacks: vec!["production".into()],
                names: vec![],
            },
        ];
        assert!(!takes(&rules, &d), "started");
        assert!(takes(&[], &d), "no rules: everything");
        d.finish(None);
        assert!(!takes(&rules, &d), "a success in staging");
        d.stack = "production".into();
        assert!(takes(&rules, &d));
        let by_name = [DeployRule {
            names: vec!["worker".into()],
            ..DeployRule::default()
        }];
        assert!(!takes(&by_name, &d));
        d.service = "worker".into();
        assert!(takes(&by_name, &d));
        d.state = DeployState::Failed;
        d.stack = "staging".into();
        assert!(takes(&rules, &d));
        d.supersede();
        assert!(!takes(&[], &d), "a superseded deploy is not announced");
    }

    #[test]
    fn a_finished_deploy_has_its_duration_and_the_slack_message_its_facts() {
        let mut d = Deploy::begin(
            &begun(),
            "production",
            "abc123",
            (Reason::NewDigest, Some("tag latest".into())),
        );
        assert_eq!(d.state, DeployState::InProgress);
        d.finish(Some((
            Cause::Rollback,
            "ECS deployment circuit breaker: tasks failed to start.".into(),
        )));
        assert_eq!(d.state, DeployState::Failed);
        let took = d.duration_seconds.unwrap();
        assert!((65.0..70.0).contains(&took), "{took}");
        let mut n = Notice::of(&d).unwrap();
        n.link = Some("https://mooring.example/resources/Service/api".into());
        n.target = Some(crate::aws::identity::Target {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            endpoint: None,
        });
        let msg = n.slack();
        let blocks = msg["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        let head = blocks[0]["text"]["text"].as_str().unwrap();
        assert!(
            head.contains("Deploy failed: api (production)") && head.contains("rolled back"),
            "{head}"
        );
        let fields: Vec<&str> = blocks[1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        for want in [
            "*Service*\napi",
            "*Stack*\nproduction",
            "*Image*\n`nginx:1.27` → `nginx:1.28`",
            "*Why*\nnew image digest (tag latest)",
            "*Revision*\n`abc123`",
            "*Account*\n123456789012",
            "*Region*\neu-west-1",
        ] {
            assert!(fields.contains(&want), "{want} not in {fields:?}");
        }
        assert!(
            fields.iter().any(|f| f.starts_with("*Duration*\n1m ")),
            "{fields:?}"
        );
        assert!(blocks.iter().any(|b| {
            b["text"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("circuit breaker"))
        }));
        let button = blocks.last().unwrap();
        assert_eq!(button["type"], "actions");
        assert_eq!(
            button["elements"][0]["url"],
            "https://mooring.example/resources/Service/api"
        );
        assert!(
            msg["text"]
                .as_str()
                .unwrap()
                .contains("nginx:1.27 → nginx:1.28")
        );
        // The JSON webhook body: a board item's worth, flat.
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["event"], "deploy");
        assert_eq!(json["outcome"], "failed");
        assert_eq!(json["service"], "api");
        assert_eq!(json["stack"], "production");
        assert_eq!(json["fromImage"], "nginx:1.27");
        assert_eq!(json["toImage"], "nginx:1.28");
        assert_eq!(json["revision"], "abc123");
        assert_eq!(json["failure"]["cause"], "rollback");
        assert!(json["durationSeconds"].is_number());
        assert_eq!(
            json["link"],
            "https://mooring.example/resources/Service/api"
        );
        assert_eq!(json["title"], "api (production): nginx:1.27 → nginx:1.28");
    }

    #[test]
    fn block_kit_limits_hold() {
        let long = "x".repeat(5000);
        assert_eq!(
            header(&long)["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            150
        );
        assert_eq!(
            section(&long)["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            3000
        );
        assert_eq!(
            field("L", &long)["text"].as_str().unwrap().chars().count(),
            2000
        );
        assert_eq!(
            section("a <b> & c")["text"]["text"],
            "a &lt;b&gt; &amp; c",
            "mrkdwn's reserved characters"
        );
        assert_eq!(human(5.0), "5s");
        assert_eq!(human(65.0), "1m 5s");
        assert_eq!(human(3725.0), "1h 2m");
    }
}
