//! One pass: plan every kind in dependency order, then apply what differs.

use std::collections::HashSet;

use serde::Serialize;
use tracing::{Instrument, info, info_span, warn};

use super::{Action, Context, FieldChange, Planned, ReconcileError, Reconciler, Rollout};
use crate::manifest::Kind;

/// What one pass found and did for one resource.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceReport {
    /// The kind.
    pub kind: Kind,
    /// The manifest's name.
    pub name: String,
    /// The AWS identity (ARN or name).
    pub aws_id: String,
    /// What the plan said.
    pub action: Action,
    /// Fields that differed, live → desired.
    pub changes: Vec<FieldChange>,
    /// True when apply ran and succeeded for this resource.
    pub applied: bool,
    /// The service rollout, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// The error, when planning or applying failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

/// An error as reported to people and machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorReport {
    /// Stable category label.
    pub category: String,
    /// The message.
    pub message: String,
}

impl From<&ReconcileError> for ErrorReport {
    fn from(e: &ReconcileError) -> Self {
        ErrorReport {
            category: e.category().to_string(),
            message: e.to_string(),
        }
    }
}

/// The outcome of a plan or apply over a whole manifest set.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PassReport {
    /// Revision of the manifest set.
    pub revision: String,
    /// One entry per resource, in dependency order.
    pub resources: Vec<ResourceReport>,
    /// AWS calls made, `Service.Operation` → count (filled by the caller that owns the
    /// clients; empty otherwise).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub aws_calls: std::collections::BTreeMap<String, u64>,
}

impl PassReport {
    /// True when any resource needs a change.
    pub fn has_changes(&self) -> bool {
        self.resources.iter().any(|r| r.action != Action::None)
    }

    /// True when any resource failed.
    pub fn has_errors(&self) -> bool {
        self.resources.iter().any(|r| r.error.is_some())
    }
}

/// The plan of one resource, or why it could not be made; with the index of its reconciler.
pub type PlanOutcome = (usize, Result<Planned, (String, ReconcileError)>);

/// Plans every resource: observe and diff, reads only. Kinds run in dependency order.
pub async fn plan_all(ctx: &Context, reconcilers: &[Box<dyn Reconciler>]) -> Vec<PlanOutcome> {
    let mut out = Vec::new();
    for (i, r) in reconcilers.iter().enumerate() {
        let span = info_span!("plan", kind = %r.kind());
        let results = r.plan(ctx).instrument(span).await;
        for (name, result) in results {
            out.push((i, result.map_err(|e| (name, e))));
        }
    }
    out
}

/// Builds the report of a plan without applying anything.
pub fn report_plan(
    revision: &str,
    reconcilers: &[Box<dyn Reconciler>],
    planned: &[PlanOutcome],
) -> PassReport {
    let resources = planned
        .iter()
        .map(|(i, p)| match p {
            Ok(p) => ResourceReport {
                kind: p.plan.kind,
                name: p.plan.name.clone(),
                aws_id: p.plan.aws_id.clone(),
                action: p.plan.action,
                changes: p.plan.changes.clone(),
                applied: false,
                rollout: p.plan.rollout.clone(),
                error: problems_error(&p.plan.problems),
            },
            Err((name, e)) => failed(reconcilers[*i].kind(), name, e),
        })
        .collect();
    PassReport {
        revision: revision.to_string(),
        resources,
        aws_calls: Default::default(),
    }
}

fn problems_error(problems: &[String]) -> Option<ErrorReport> {
    (!problems.is_empty()).then(|| (&ReconcileError::Requirement(problems.to_vec())).into())
}

fn failed(kind: Kind, name: &str, e: &ReconcileError) -> ResourceReport {
    ResourceReport {
        kind,
        name: name.to_string(),
        aws_id: String::new(),
        action: Action::None,
        changes: Vec::new(),
        applied: false,
        rollout: None,
        error: Some(e.into()),
    }
}

/// Plans and then applies every resource whose plan has changes, in dependency order.
/// A resource whose dependency failed in this pass is not applied. `write` false reads and
/// reports only (observe mode).
///
/// A replacement gives a resource a new ARN or ID that resources planned after it may
/// still hold (a service keeps the old target group's ARN): when one happened, the pass
/// plans and applies once more, and the report shows the later outcome of each resource
/// that the second round touched.
pub async fn apply_all(
    ctx: &Context,
    revision: &str,
    reconcilers: &[Box<dyn Reconciler>],
    write: bool,
) -> PassReport {
    apply_selected(ctx, revision, reconcilers, &|_, _| write).await
}

/// Which resources a pass may change: `(kind, name)` → apply or only report.
pub type ApplyPolicy<'a> = &'a (dyn Fn(Kind, &str) -> bool + Sync);

/// [`apply_all`], asking `may_apply` before changing each resource (observe mode, paused
/// resources, backoff after failures, shutdown). Resources it refuses are planned and
/// reported, not applied.
pub async fn apply_selected(
    ctx: &Context,
    revision: &str,
    reconcilers: &[Box<dyn Reconciler>],
    may_apply: ApplyPolicy<'_>,
) -> PassReport {
    let mut report = apply_round(ctx, revision, reconcilers, may_apply).await;
    let replaced = report
        .resources
        .iter()
        .any(|r| r.applied && r.error.is_none() && r.action == Action::Replace);
    if replaced {
        info!("a resource was replaced: one more round for the resources that refer to it");
        let again = apply_round(ctx, revision, reconcilers, may_apply).await;
        for later in again.resources {
            if !(later.applied || later.error.is_some()) {
                continue;
            }
            if let Some(entry) = report
                .resources
                .iter_mut()
                .find(|r| r.kind == later.kind && r.name == later.name)
            {
                for c in later.changes {
                    if !entry.changes.iter().any(|e| e.field == c.field) {
                        entry.changes.push(c);
                    }
                }
                entry.applied |= later.applied;
                entry.error = later.error;
                entry.aws_id = later.aws_id;
                if entry.action == Action::None {
                    entry.action = later.action;
                }
                if later.rollout.is_some() {
                    entry.rollout = later.rollout;
                }
            }
        }
    }
    report
}

async fn apply_round(
    ctx: &Context,
    revision: &str,
    reconcilers: &[Box<dyn Reconciler>],
    may_apply: ApplyPolicy<'_>,
) -> PassReport {
    let planned = plan_all(ctx, reconcilers).await;
    let mut report = report_plan(revision, reconcilers, &planned);
    let mut broken: HashSet<(Kind, String)> = HashSet::new();
    for ((i, p), entry) in planned.iter().zip(report.resources.iter_mut()) {
        let r = &reconcilers[*i];
        let p = match p {
            Ok(p) => p,
            Err((name, _)) => {
                broken.insert((r.kind(), name.clone()));
                continue;
            }
        };
        let name = p.plan.name.clone();
        if !p.plan.problems.is_empty() {
            broken.insert((r.kind(), name.clone()));
        }
        if p.plan.action == Action::None {
            continue;
        }
        if !may_apply(r.kind(), &name) {
            // Reported as drift and left alone. What depends on it waits only when it
            // does not exist yet.
            if p.plan.action == Action::Create {
                broken.insert((r.kind(), name));
            }
            continue;
        }
        if let Some((k, n)) = r
            .dependencies(&name)
            .into_iter()
            .find(|d| broken.contains(d))
        {
            let e = ReconcileError::Dependency(format!("{k}/{n}"));
            warn!(kind = %r.kind(), name = %name, error = %e, "skipped apply");
            entry.error = Some((&e).into());
            broken.insert((r.kind(), name));
            continue;
        }
        if let Some(hook) = &ctx.on_apply {
            hook(r.kind(), &name);
        }
        let span = info_span!("apply", kind = %r.kind(), name = %name, action = ?p.plan.action);
        match r.apply(ctx, p).instrument(span).await {
            Ok(applied) => {
                info!(kind = %r.kind(), name = %name, changes = p.plan.changes.len(), "applied");
                // Requirement problems stay reported after the fixable part is applied.
                entry.applied = true;
                entry.aws_id = applied.aws_id;
                if applied.rollout.is_some() {
                    entry.rollout = applied.rollout;
                }
            }
            Err(e) => {
                warn!(kind = %r.kind(), name = %name, error = %e, category = e.category(), "apply failed");
                entry.error = Some((&e).into());
                broken.insert((r.kind(), name));
            }
        }
    }
    report
}

/// Plans again after an apply and turns every resource that still differs into a
/// `not_converged` error: "apply exited 0" then means "AWS now matches".
pub async fn verify_converged(
    ctx: &Context,
    reconcilers: &[Box<dyn Reconciler>],
    report: &mut PassReport,
) {
    if report.has_errors() || !report.resources.iter().any(|r| r.applied) {
        return;
    }
    let planned = plan_all(ctx, reconcilers).await;
    let after = report_plan(&report.revision, reconcilers, &planned);
    for (entry, now) in report.resources.iter_mut().zip(after.resources) {
        if let Some(e) = now.error {
            entry.error = Some(e);
        } else if now.action != Action::None {
            let fields: Vec<&str> = now.changes.iter().map(|c| c.field.as_str()).collect();
            let e = ReconcileError::NotConverged(format!(
                "still differs after apply: {}",
                fields.join(", ")
            ));
            entry.error = Some((&e).into());
        }
    }
}
