//! What the daemon knows, shared between the reconcile loop (writer) and the HTTP server
//! (reader): `GET /status`, `GET /status/{kind}/{name}`, `GET /healthz`, `GET /readyz`,
//! `GET /metrics`, and `POST /reconcile` (a git-push webhook, HMAC-signed); and for people,
//! the HTML pages `GET /` and `GET /resources/{kind}/{name}`.

pub mod http;
pub mod page;
pub mod server;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::Serialize;

use crate::manifest::{Kind, ManifestError, ManifestSet};
use crate::reconcile::{Failure, FieldChange, Hold, Outcome, PassReport, Rollout};

/// The state of one resource as the daemon last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceState {
    /// Not checked yet.
    Pending,
    /// Live matches the manifest.
    InSync,
    /// Live differs and was not corrected (observe mode, backoff, standby).
    Drifted,
    /// Not applied: a resource it depends on is failed, missing or not mooring's.
    Blocked,
    /// A change is being applied.
    Applying,
    /// Planning or applying failed.
    Failed,
    /// Paused by its manifest: checked, never changed.
    Paused,
    /// No longer in the manifests. Kept in AWS unless pruning deletes it.
    Orphaned,
}

impl ResourceState {
    /// Every state, in the order pages and tables list them.
    pub const ALL: [ResourceState; 8] = [
        ResourceState::InSync,
        ResourceState::Drifted,
        ResourceState::Failed,
        ResourceState::Blocked,
        ResourceState::Applying,
        ResourceState::Pending,
        ResourceState::Paused,
        ResourceState::Orphaned,
    ];

    /// The name `/status` uses, e.g. `in_sync`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceState::Pending => "pending",
            ResourceState::InSync => "in_sync",
            ResourceState::Drifted => "drifted",
            ResourceState::Blocked => "blocked",
            ResourceState::Applying => "applying",
            ResourceState::Failed => "failed",
            ResourceState::Paused => "paused",
            ResourceState::Orphaned => "orphaned",
        }
    }

    /// The state named `s` (as [`ResourceState::as_str`] writes it).
    pub fn parse(s: &str) -> Option<ResourceState> {
        ResourceState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// One resource in `/status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// The kind.
    pub kind: Kind,
    /// The manifest's name.
    pub name: String,
    /// ARN or AWS name.
    pub aws_id: String,
    /// Current state.
    pub state: ResourceState,
    /// `enforce` or `observe`, for this resource.
    pub mode: String,
    /// Changes still pending after the last check (live → desired): drift left in place, a
    /// failed or blocked apply, a resource still to create. Empty once in sync, so `/status`
    /// carries a diff only for resources that have one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<FieldChange>,
    /// The last difference with the manifest seen (live → desired), corrected or not. Only
    /// `/status/{kind}/{name}` shows it.
    #[serde(skip)]
    pub last_diff: Vec<FieldChange>,
    /// When it was last compared with AWS (RFC 3339).
    pub last_checked: Option<String>,
    /// When mooring last changed it.
    pub last_applied: Option<String>,
    /// When a difference with the manifest was last seen.
    pub last_drifted: Option<String>,
    /// The last error, if the last pass failed for it (or a dependency blocked it).
    pub last_error: Option<Failure>,
    /// Why a difference was left in place, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<Hold>,
    /// The service rollout, for services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// The latest deploy, for services (`/status/Service/{name}` lists the last
    /// [`crate::deploys::DEPLOYS_KEPT`] as `deploys`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_deploy: Option<crate::deploys::Deploy>,
}

impl ResourceStatus {
    /// A resource not checked yet, in `state`.
    fn new(kind: Kind, name: String, state: ResourceState) -> ResourceStatus {
        ResourceStatus {
            kind,
            name,
            aws_id: String::new(),
            state,
            mode: String::new(),
            diff: Vec::new(),
            last_diff: Vec::new(),
            last_checked: None,
            last_applied: None,
            last_drifted: None,
            last_error: None,
            held: None,
            rollout: None,
            last_deploy: None,
        }
    }
}

/// Everything `/status` reports.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// mooring's version and git revision.
    pub version: String,
    /// Where manifests come from.
    pub source: String,
    /// `enforce` or `observe`.
    pub mode: String,
    /// Revision of the manifest set being reconciled.
    pub revision: Option<String>,
    /// Errors of the newest manifest set, when it was rejected (the previous good set keeps
    /// being reconciled).
    pub manifest_errors: Vec<ManifestError>,
    /// When the last full pass finished.
    pub last_pass: Option<String>,
    /// How long it took, in milliseconds.
    pub last_pass_ms: Option<u128>,
    /// Number of passes since start.
    pub passes: u64,
    /// True when the last pass reached AWS (some call answered).
    pub aws_reachable: bool,
    /// The account and region this daemon works in (once AWS has said).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<crate::aws::identity::Target>,
    /// With leader election: whether this replica leads (applies) or stands by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leadership: Option<crate::lease::Leadership>,
    /// With `--events-queue`: what the change-event consumer received, and a warning
    /// when none arrived for long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_events: Option<ChangeEvents>,
    /// Counts by state and the last pass, filled in by [`StatusStore::snapshot`].
    pub summary: Summary,
    /// Every resource of the current set, then orphans.
    pub resources: Vec<ResourceStatus>,
    /// Recent events per `Kind/name`, newest last (shown by `/status/{kind}/{name}`).
    #[serde(skip)]
    pub events: BTreeMap<String, VecDeque<Event>>,
    /// Recent deploys per Service manifest name, newest last (shown by
    /// `/status/Service/{name}`).
    #[serde(skip)]
    pub deploys: BTreeMap<String, VecDeque<crate::deploys::Deploy>>,
}

/// The change-event consumer's counts, in `/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEvents {
    /// Received, mapped, own, ignored, re-checks, last event.
    #[serde(flatten)]
    pub stats: crate::events::Stats,
    /// Set when no event arrived for longer than `--events-quiet`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The numbers at the top of `/status`, the status page and `mooring status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Resources listed (orphans included).
    pub resources: usize,
    /// How many are in each state; states nobody is in are left out.
    pub by_state: BTreeMap<ResourceState, usize>,
    /// Resources with pending changes (a non-empty `diff`).
    pub with_changes: usize,
    /// Resources whose last pass failed or was blocked.
    pub with_errors: usize,
    /// When the last pass finished (RFC 3339).
    pub last_pass: Option<String>,
    /// How long it took, in milliseconds.
    pub last_pass_ms: Option<u128>,
    /// Passes since start.
    pub passes: u64,
}

impl Status {
    /// Counts by state, totals and the last pass.
    pub fn summarise(&self) -> Summary {
        let mut by_state = BTreeMap::new();
        for r in &self.resources {
            *by_state.entry(r.state).or_insert(0) += 1;
        }
        Summary {
            resources: self.resources.len(),
            by_state,
            with_changes: self.resources.iter().filter(|r| !r.diff.is_empty()).count(),
            with_errors: self
                .resources
                .iter()
                .filter(|r| r.last_error.is_some())
                .count(),
            last_pass: self.last_pass.clone(),
            last_pass_ms: self.last_pass_ms,
            passes: self.passes,
        }
    }
}

/// Something that happened to a resource.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// When (RFC 3339).
    pub at: String,
    /// What: `drifted`, `applied`, `failed`, `in_sync`, `orphaned`.
    pub what: String,
    /// Details: the fields that differed, or the error.
    pub detail: String,
}

/// How many events each resource keeps.
pub const EVENTS_KEPT: usize = 20;

fn push_event(s: &mut Status, kind: Kind, name: &str, what: &str, detail: String, at: &str) {
    let events = s.events.entry(format!("{kind}/{name}")).or_default();
    if events
        .back()
        .is_some_and(|e| e.what == what && e.detail == detail)
    {
        return; // the same state again: one event per change of state
    }
    events.push_back(Event {
        at: at.to_string(),
        what: what.to_string(),
        detail,
    });
    while events.len() > EVENTS_KEPT {
        events.pop_front();
    }
}

/// The shared status, cheap to clone.
#[derive(Clone, Default)]
pub struct StatusStore {
    inner: Arc<RwLock<Status>>,
    /// With leader election: leadership is read from the lease when status is read, so a
    /// replica says `leader: false` the moment it cannot prove it holds the lease (a renewal
    /// that hangs must not leave a stale `true` behind).
    lease: Arc<std::sync::OnceLock<crate::lease::Lease>>,
}

/// Formats a time as RFC 3339 (UTC).
pub fn rfc3339(t: SystemTime) -> String {
    aws_smithy_types::DateTime::from(t)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

impl StatusStore {
    /// A store for a daemon reading `source` in `mode`.
    pub fn new(source: &str, mode: &str) -> Self {
        let store = StatusStore::default();
        store.write(|s| {
            s.version = crate::cli::VERSION.to_string();
            s.source = source.to_string();
            s.mode = mode.to_string();
        });
        store
    }

    fn write(&self, f: impl FnOnce(&mut Status)) {
        // A panic while holding the lock would poison it; the data is still usable.
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        f(&mut guard);
    }

    /// A copy of the current status.
    pub fn snapshot(&self) -> Status {
        let mut s = self.inner.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(l) = self.leadership() {
            s.leadership = Some(l);
        }
        s.summary = s.summarise();
        s
    }

    /// Leadership as the lease says now (`None` without leader election), without copying
    /// the whole status.
    pub fn leadership(&self) -> Option<crate::lease::Leadership> {
        self.lease.get().map(crate::lease::Lease::leadership)
    }

    /// Reads leadership from `lease` from now on.
    pub fn follow_lease(&self, lease: crate::lease::Lease) {
        let _ = self.lease.set(lease);
    }

    /// A newly loaded, valid set: resources not seen before start as pending; resources no
    /// longer in the set stay listed as orphaned (mooring does not delete them).
    pub fn set_manifests(&self, set: &ManifestSet, global_enforce: bool) {
        let stamp = rfc3339(SystemTime::now());
        self.write(|s| {
            s.revision = Some(set.revision.clone());
            s.manifest_errors.clear();
            let mut next = Vec::new();
            for (kind, meta) in set.metadata() {
                let name = meta.name.clone();
                let mode = if meta.enforce().unwrap_or(global_enforce) {
                    "enforce"
                } else {
                    "observe"
                };
                let mut entry = s
                    .resources
                    .iter()
                    .find(|r| r.kind == kind && r.name == name)
                    .cloned()
                    .unwrap_or_else(|| ResourceStatus::new(kind, name, ResourceState::Pending));
                entry.mode = mode.to_string();
                if entry.state == ResourceState::Orphaned {
                    entry.state = ResourceState::Pending;
                }
                next.push(entry);
            }
            let gone: Vec<ResourceStatus> = s
                .resources
                .iter()
                .filter(|r| !next.iter().any(|n| n.kind == r.kind && n.name == r.name))
                .cloned()
                .collect();
            for mut r in gone {
                if r.state != ResourceState::Orphaned {
                    push_event(
                        s,
                        r.kind,
                        &r.name,
                        "orphaned",
                        "removed from the manifests; left in AWS".into(),
                        &stamp,
                    );
                }
                r.state = ResourceState::Orphaned;
                r.diff.clear();
                next.push(r);
            }
            s.resources = next;
        });
    }

    /// A newer manifest set was rejected.
    pub fn set_manifest_errors(&self, errors: Vec<ManifestError>) {
        self.write(|s| s.manifest_errors = errors);
    }

    /// Records the outcome of a pass.
    pub fn record_pass(&self, report: &PassReport, started: SystemTime, aws_reachable: bool) {
        let now = SystemTime::now();
        let stamp = rfc3339(now);
        self.write(|s| {
            for r in &report.resources {
                let Some(entry) = s
                    .resources
                    .iter_mut()
                    .find(|e| e.kind == r.kind && e.name == r.name)
                else {
                    continue;
                };
                entry.last_checked = Some(stamp.clone());
                if !r.aws_id.is_empty() {
                    entry.aws_id = r.aws_id.clone();
                }
                let diff = crate::reconcile::diff::redact(&r.changes);
                // The last difference seen with the manifest; creating a resource is not one.
                if !diff.is_empty() && r.saw_drift() {
                    entry.last_diff = diff.clone();
                }
                if r.saw_drift() {
                    entry.last_drifted = Some(stamp.clone());
                }
                if r.applied {
                    entry.last_applied = Some(stamp.clone());
                }
                if r.rollout.is_some() {
                    entry.rollout = r.rollout.clone();
                }
                entry.diff = match r.outcome {
                    Outcome::InSync | Outcome::Applied => Vec::new(),
                    _ => diff.clone(),
                };
                entry.last_error = r.error();
                entry.held = match r.outcome {
                    Outcome::Held { why } => Some(why),
                    _ => None,
                };
                entry.state = match &r.outcome {
                    Outcome::Failed { .. } => ResourceState::Failed,
                    Outcome::Blocked { .. } => ResourceState::Blocked,
                    Outcome::InSync | Outcome::Applied => ResourceState::InSync,
                    Outcome::Held { why: Hold::Paused } => ResourceState::Paused,
                    Outcome::Held { .. } => ResourceState::Drifted,
                };
                let fields = || {
                    diff.iter()
                        .map(|c| c.field.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let (what, detail) = match &r.outcome {
                    Outcome::Failed { failure } => (
                        "failed",
                        format!("{} ({})", failure.message, failure.category),
                    ),
                    Outcome::Blocked { on, why } => ("blocked", format!("{on} {why}")),
                    Outcome::InSync => ("in_sync", String::new()),
                    Outcome::Applied => ("applied", fields()),
                    Outcome::Held { why } => {
                        ("drifted", format!("{} ({})", fields(), why.describe()))
                    }
                };
                let (kind, name) = (r.kind, r.name.clone());
                push_event(s, kind, &name, what, detail, &stamp);
            }
            s.passes += 1;
            s.aws_reachable = aws_reachable;
            s.last_pass = Some(stamp);
            s.last_pass_ms = now.duration_since(started).ok().map(|d| d.as_millis());
        });
    }

    /// A resource that carries this stack's ownership tags but is in no manifest: listed as
    /// orphaned, with what pruning did (`pruned`, or why it failed).
    pub fn record_orphan(&self, kind: Kind, name: &str, aws_id: &str, outcome: &str) {
        let stamp = rfc3339(SystemTime::now());
        self.write(|s| {
            if !s.resources.iter().any(|r| r.kind == kind && r.name == name) {
                let mut orphan =
                    ResourceStatus::new(kind, name.to_string(), ResourceState::Orphaned);
                orphan.aws_id = aws_id.to_string();
                orphan.mode = "enforce".into();
                orphan.last_checked = Some(stamp.clone());
                s.resources.push(orphan);
            }
            push_event(s, kind, name, "prune", outcome.to_string(), &stamp);
        });
    }

    /// Leadership, with leader election on.
    pub fn set_leadership(&self, leadership: crate::lease::Leadership) {
        self.write(|s| s.leadership = Some(leadership));
    }

    /// The change-event consumer's counts and warning.
    pub fn set_change_events(&self, events: ChangeEvents) {
        self.write(|s| s.change_events = Some(events));
    }

    /// The account and region the daemon works in.
    pub fn set_target(&self, target: crate::aws::identity::Target) {
        self.write(|s| s.target = Some(target));
    }

    /// The account and region, once known.
    pub fn target(&self) -> Option<crate::aws::identity::Target> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .target
            .clone()
    }

    /// Where manifests come from and which revision of them (a git commit) is in use.
    pub fn set_source(&self, source: &str) {
        self.write(|s| s.source = source.to_string());
    }

    /// Records a deploy as it is now: a new one, or a later state of one already kept.
    pub fn record_deploy(&self, deploy: &crate::deploys::Deploy) {
        self.write(|s| {
            let kept = s.deploys.entry(deploy.service.clone()).or_default();
            match kept.iter_mut().find(|d| d.id == deploy.id) {
                Some(d) => *d = deploy.clone(),
                None => kept.push_back(deploy.clone()),
            }
            while kept.len() > crate::deploys::DEPLOYS_KEPT {
                kept.pop_front();
            }
            let latest = kept.back().cloned();
            if let Some(e) = s
                .resources
                .iter_mut()
                .find(|e| e.kind == Kind::Service && e.name == deploy.service)
            {
                e.last_deploy = latest;
            }
        });
    }

    /// Marks a resource as being applied.
    pub fn set_applying(&self, kind: Kind, name: &str) {
        self.write(|s| {
            if let Some(e) = s
                .resources
                .iter_mut()
                .find(|e| e.kind == kind && e.name == name)
            {
                e.state = ResourceState::Applying;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{Action, ResourceReport};
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http::router;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn set() -> ManifestSet {
        crate::manifest::load::load_with_stack(&[(
            "c.yaml".into(),
            "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: prd}\nspec: {}\n"
                .into(),
        )])
        .unwrap()
    }

    fn app(store: &StatusStore) -> http::App {
        http::App {
            status: store.clone(),
            metrics: Default::default(),
            trigger: Default::default(),
            webhook_secret: None,
            liveness: None,
        }
    }

    async fn get_json(store: &StatusStore, uri: &str) -> (StatusCode, serde_json::Value) {
        let resp = router(app(store))
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn status_follows_passes() {
        let store = StatusStore::new("manifests/", "observe");
        store.set_manifests(&set(), false);
        let (code, body) = get_json(&store, "/status").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body["resources"][0]["state"], "pending");
        assert_eq!(body["mode"], "observe");
        store.set_applying(Kind::Cluster, "prd");
        let (_, body) = get_json(&store, "/status/cluster/prd").await;
        assert_eq!(body["state"], "applying");

        let ready = router(app(&store))
            .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

        let report = PassReport {
            revision: "r1".into(),
            resources: vec![ResourceReport {
                kind: Kind::Cluster,
                name: "prd".into(),
                aws_id: "arn:aws:ecs:r:1:cluster/prd".into(),
                action: Action::Update,
                changes: vec![FieldChange {
                    field: "tags.team".into(),
                    live: serde_json::json!("a"),
                    desired: serde_json::json!("b"),
                    note: None,
                }],
                applied: false,
                rollout: None,
                outcome: Outcome::Held { why: Hold::Observe },
            }],
            aws_calls: Default::default(),
            target: None,
            aws_calls_by_kind: Default::default(),
            check_seconds_by_kind: Default::default(),
        };
        store.record_pass(&report, SystemTime::now(), true);
        let (_, body) = get_json(&store, "/status/Cluster/prd").await;
        assert_eq!(body["state"], "drifted");
        assert_eq!(body["lastDiff"][0]["field"], "tags.team");
        assert!(body["lastDrifted"].is_string());
        let (code, _) = get_json(&store, "/status/Service/nope").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let ready = router(app(&store))
            .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_missing_resource_left_alone_is_drift_with_a_time_and_blocked_is_its_own_state() {
        let store = StatusStore::new("manifests/", "observe");
        store.set_manifests(&set(), false);
        let entry = |action, outcome| PassReport {
            revision: "r1".into(),
            resources: vec![ResourceReport {
                kind: Kind::Cluster,
                name: "prd".into(),
                aws_id: String::new(),
                action,
                changes: vec![FieldChange {
                    field: "clusterName".into(),
                    live: serde_json::Value::Null,
                    desired: serde_json::json!("prd"),
                    note: None,
                }],
                applied: false,
                rollout: None,
                outcome,
            }],
            aws_calls: Default::default(),
            target: None,
            aws_calls_by_kind: Default::default(),
            check_seconds_by_kind: Default::default(),
        };
        store.record_pass(
            &entry(Action::Create, Outcome::Held { why: Hold::Observe }),
            SystemTime::now(),
            true,
        );
        let (_, body) = get_json(&store, "/status/Cluster/prd").await;
        assert_eq!(body["state"], "drifted");
        assert_eq!(body["held"], "observe");
        assert!(body["lastDrifted"].is_string(), "{body}");
        assert_eq!(body["lastDiff"][0]["field"], "clusterName");
        store.record_pass(
            &entry(
                Action::Create,
                Outcome::Blocked {
                    on: "ParameterSet/config".into(),
                    why: "failed: a secret is missing".into(),
                },
            ),
            SystemTime::now(),
            true,
        );
        let (_, body) = get_json(&store, "/status/Cluster/prd").await;
        assert_eq!(body["state"], "blocked");
        assert_eq!(body["lastError"]["category"], "dependency");
    }
}

#[cfg(test)]
mod summary_tests {
    use super::*;
    use crate::reconcile::{Action, ResourceReport};

    #[test]
    fn status_counts_states_and_carries_only_pending_diffs() {
        let set = crate::manifest::load::load_with_stack(&[(
            "c.yaml".into(),
            "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: a}\nspec: {}\n---\napiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: b}\nspec: {}\n"
                .into(),
        )])
        .unwrap();
        let store = StatusStore::new("manifests/", "enforce");
        store.set_manifests(&set, true);
        let change = |field: &str| FieldChange {
            field: field.into(),
            live: serde_json::Value::Null,
            desired: serde_json::json!("x"),
            note: None,
        };
        let entry = |name: &str, action, changes, applied, outcome| ResourceReport {
            kind: Kind::Cluster,
            name: name.into(),
            aws_id: String::new(),
            action,
            changes,
            applied,
            rollout: None,
            outcome,
        };
        let pass = |resources| PassReport {
            revision: "r1".into(),
            resources,
            aws_calls: Default::default(),
            target: None,
            aws_calls_by_kind: Default::default(),
            check_seconds_by_kind: Default::default(),
        };
        // a is created; b drifts and is held back.
        store.record_pass(
            &pass(vec![
                entry(
                    "a",
                    Action::Create,
                    vec![change("clusterName")],
                    true,
                    Outcome::Applied,
                ),
                entry(
                    "b",
                    Action::Update,
                    vec![change("tags.team")],
                    false,
                    Outcome::Held { why: Hold::Backoff },
                ),
            ]),
            SystemTime::now(),
            true,
        );
        let json = serde_json::to_value(store.snapshot()).unwrap();
        let summary = &json["summary"];
        assert_eq!(summary["resources"], 2);
        assert_eq!(
            summary["byState"],
            serde_json::json!({"in_sync": 1, "drifted": 1})
        );
        assert_eq!(summary["withChanges"], 1);
        assert_eq!(summary["withErrors"], 0);
        assert_eq!(summary["passes"], 1);
        assert!(summary["lastPass"].is_string());
        let resources = json["resources"].as_array().unwrap();
        // The created resource repeats no creation diff; the held one carries its diff.
        assert!(resources[0].get("diff").is_none(), "{json}");
        assert!(resources[0].get("lastDiff").is_none(), "{json}");
        assert_eq!(resources[1]["diff"][0]["field"], "tags.team");
        assert!(resources[1].get("lastDiff").is_none(), "{json}");

        // Corrected on the next pass: no pending diff left, the summary follows.
        store.record_pass(
            &pass(vec![entry(
                "b",
                Action::Update,
                vec![change("tags.team")],
                true,
                Outcome::Applied,
            )]),
            SystemTime::now(),
            true,
        );
        let s = store.snapshot();
        assert_eq!(s.summary.with_changes, 0);
        assert_eq!(s.summary.by_state.get(&ResourceState::InSync), Some(&2));
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["resources"][1].get("diff").is_none(), "{json}");
        assert_eq!(s.resources[1].last_diff[0].field, "tags.team");
    }
}
