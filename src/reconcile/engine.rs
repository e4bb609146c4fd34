//! One pass: plan every kind in dependency order, then apply what differs, and say for each
//! resource what became of it ([`Outcome`]).
//!
//! Dependency gates hold across passes: a resource is applied only while every resource it
//! depends on was, the last time it was checked, in place and mooring's. The daemon keeps
//! those states ([`Gates`]) from pass to pass, so a kind checked on its own interval never
//! acts on a resource whose dependency failed, is missing or was refused as not managed.

use std::collections::HashMap;

use tracing::{Instrument, info, info_span, warn};

use super::outcome::{Category, Failure, Hold, Outcome, PassReport, ResourceReport};
use super::{Action, Context, Cx, PassCache, Planned, ReconcileError, Reconciler, ResourcePlan};
use crate::manifest::{Kind, ManifestSet};

/// The plan of one resource, or why it could not be made; with the index of its reconciler.
pub type PlanOutcome = (usize, Result<Planned, (String, ReconcileError)>);

/// Plans every resource: observe and diff, reads only. Kinds run in dependency order.
pub async fn plan_all(cx: &Cx<'_>, reconcilers: &[Box<dyn Reconciler>]) -> Vec<PlanOutcome> {
    let mut out = Vec::new();
    for (i, r) in reconcilers.iter().enumerate() {
        for (name, result) in plan_kind(cx, r.as_ref()).await {
            out.push((i, result.map_err(|e| (name, e))));
        }
    }
    follow(cx.set, reconcilers, &mut out);
    out
}

/// Adds to each plan what the resource takes once the planned changes of the resources it
/// depends on are applied ([`Reconciler::follow`]), so plan shows it and a saved plan
/// holds it.
fn follow(set: &ManifestSet, reconcilers: &[Box<dyn Reconciler>], planned: &mut [PlanOutcome]) {
    let changing: HashMap<(Kind, String), ResourcePlan> = planned
        .iter()
        .filter_map(|(_, p)| p.as_ref().ok())
        .filter(|p| p.plan.action != Action::None)
        .map(|p| ((p.plan.kind, p.plan.name.clone()), p.plan.clone()))
        .collect();
    if changing.is_empty() {
        return;
    }
    for (i, p) in planned.iter_mut() {
        let Ok(p) = p else { continue };
        let r = &reconcilers[*i];
        let deps = r.dependencies(set, &p.plan.name);
        let deps: Vec<&ResourcePlan> = deps.iter().filter_map(|d| changing.get(d)).collect();
        if deps.is_empty() {
            continue;
        }
        if let Some(followed) = r.follow(set, p, &deps) {
            *p = followed;
        }
    }
}

/// One kind's plan, its AWS calls and time counted in the pass cache.
async fn plan_kind(cx: &Cx<'_>, r: &dyn Reconciler) -> KindPlan {
    let span = info_span!("plan", kind = %r.kind());
    let before = cx.ctx.aws.calls.total();
    let clock = std::time::Instant::now();
    let results = r.plan(cx).instrument(span).await;
    let made = cx.ctx.aws.calls.total().saturating_sub(before);
    cx.cache
        .count_plan(r.kind(), made, clock.elapsed().as_secs_f64());
    results
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
            Ok(p) => planned_report(p, Hold::Plan),
            Err((name, e)) => failed(reconcilers[*i].kind(), name, e),
        })
        .collect();
    PassReport {
        revision: revision.to_string(),
        resources,
        aws_calls: Default::default(),
        target: None,
        aws_calls_by_kind: Default::default(),
        check_seconds_by_kind: Default::default(),
    }
}

/// The report of a planned resource that is not applied (yet): in sync, failed for its
/// problems, or held for `hold`.
fn planned_report(p: &Planned, hold: Hold) -> ResourceReport {
    let outcome = if let Some(f) = problems_failure(p) {
        Outcome::Failed { failure: f }
    } else if p.plan.action == Action::None {
        Outcome::InSync
    } else {
        Outcome::Held { why: hold }
    };
    ResourceReport {
        kind: p.plan.kind,
        name: p.plan.name.clone(),
        aws_id: p.plan.aws_id.clone(),
        action: p.plan.action,
        changes: p.plan.changes.clone(),
        applied: false,
        rollout: p.plan.rollout.clone(),
        outcome,
    }
}

fn problems_failure(p: &Planned) -> Option<Failure> {
    (!p.plan.problems.is_empty())
        .then(|| (&ReconcileError::Problems(p.plan.problems.clone())).into())
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
        outcome: Outcome::Failed { failure: e.into() },
    }
}

/// Whether each resource was in place and mooring's when last checked: what dependency
/// gates go by. Kept across passes by the daemon.
#[derive(Debug, Default, Clone)]
pub struct Gates {
    last: HashMap<(Kind, String), Result<(), String>>,
}

impl Gates {
    /// Records what a report says about each of its resources.
    pub fn record(&mut self, report: &PassReport) {
        for r in &report.resources {
            self.record_one(r);
        }
    }

    fn record_one(&mut self, r: &ResourceReport) {
        let ready = match &r.outcome {
            Outcome::InSync | Outcome::Applied => Ok(()),
            // Left as it is: usable unless it does not exist.
            Outcome::Held { why } if r.action == Action::Create => {
                Err(format!("does not exist yet ({})", why.describe()))
            }
            Outcome::Held { .. } => Ok(()),
            Outcome::Blocked { on, .. } => Err(format!("waits for {on}")),
            Outcome::Failed { failure } => Err(format!("failed: {}", failure.message)),
        };
        self.last.insert((r.kind, r.name.clone()), ready);
    }

    /// The first of `deps` that is not ready, with why.
    pub fn blocking(&self, deps: &[(Kind, String)]) -> Option<(String, String)> {
        deps.iter()
            .find_map(|(k, n)| match self.last.get(&(*k, n.clone())) {
                Some(Ok(())) => None,
                Some(Err(why)) => Some((format!("{k}/{n}"), why.clone())),
                None => Some((format!("{k}/{n}"), "has not been checked yet".to_string())),
            })
    }

    /// Forgets resources that are no longer in the set.
    pub fn retain(&mut self, set: &ManifestSet) {
        let ids: std::collections::HashSet<(Kind, String)> = set.ids().into_iter().collect();
        self.last.retain(|id, _| ids.contains(id));
    }
}

/// Plans and then applies every resource whose plan has changes, in dependency order.
/// `write` false reads and reports only (observe mode).
pub async fn apply_all(
    ctx: &Context,
    set: &ManifestSet,
    reconcilers: &[Box<dyn Reconciler>],
    write: bool,
) -> PassReport {
    let hold = |_: Kind, _: &str| (!write).then_some(Hold::Observe);
    apply_selected(ctx, set, reconcilers, &hold, &mut Gates::default()).await
}

/// Which resources a pass may change: `None` to apply, or why it is held.
pub type ApplyPolicy<'a> = &'a (dyn Fn(Kind, &str) -> Option<Hold> + Sync);

/// [`apply_all`], asking `policy` before changing each resource (observe mode, paused
/// resources, backoff after failures, standby, shutdown), and gating each resource on the
/// state of its dependencies in `gates` (this pass's, or the last one's for kinds not
/// checked this pass). Resources it holds are planned and reported, not applied.
///
/// A replacement gives a resource a new ARN or ID that resources planned after it may
/// still hold (a service keeps the old target group's ARN): when one happened, the pass
/// plans and applies once more, and the report shows the later outcome of each resource
/// that the second round touched.
pub async fn apply_selected(
    ctx: &Context,
    set: &ManifestSet,
    reconcilers: &[Box<dyn Reconciler>],
    policy: ApplyPolicy<'_>,
    gates: &mut Gates,
) -> PassReport {
    match apply_checked(ctx, set, reconcilers, policy, gates, None).await {
        Ok(report) | Err(Refused { report, .. }) => report,
    }
}

/// Looks at a pass's fresh plan before anything is applied: `Err` with why refuses the
/// whole apply (a saved plan that no longer matches, see `crate::planfile`).
pub type PlanCheck<'a> =
    &'a (dyn Fn(&[Box<dyn Reconciler>], &[PlanOutcome]) -> Result<(), String> + Sync);

/// An apply that `check` refused before any write: the fresh plan's report, and why.
#[derive(Debug)]
pub struct Refused {
    /// The plan as it is now; nothing in it was applied.
    pub report: PassReport,
    /// What `check` said.
    pub reason: String,
}

/// [`apply_selected`], with `check` shown the first round's plan before anything is
/// applied: when it refuses, nothing is written.
pub async fn apply_checked(
    ctx: &Context,
    set: &ManifestSet,
    reconcilers: &[Box<dyn Reconciler>],
    policy: ApplyPolicy<'_>,
    gates: &mut Gates,
    check: Option<PlanCheck<'_>>,
) -> Result<PassReport, Refused> {
    let mut report = apply_round(ctx, set, reconcilers, policy, gates, check).await?;
    let replaced = report
        .resources
        .iter()
        .any(|r| r.applied && r.action == Action::Replace);
    if replaced {
        info!("a resource was replaced: one more round for the resources that refer to it");
        let again = match apply_round(ctx, set, reconcilers, policy, gates, None).await {
            Ok(report) | Err(Refused { report, .. }) => report,
        };
        for (kind, calls) in again.aws_calls_by_kind {
            *report.aws_calls_by_kind.entry(kind).or_default() += calls;
        }
        for (kind, seconds) in again.check_seconds_by_kind {
            *report.check_seconds_by_kind.entry(kind).or_default() += seconds;
        }
        for later in again.resources {
            if !(later.applied || later.error().is_some()) {
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
                entry.outcome = later.outcome;
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
    Ok(report)
}

async fn apply_round(
    ctx: &Context,
    set: &ManifestSet,
    reconcilers: &[Box<dyn Reconciler>],
    policy: ApplyPolicy<'_>,
    gates: &mut Gates,
    check: Option<PlanCheck<'_>>,
) -> Result<PassReport, Refused> {
    let cache = PassCache::default();
    let cx = Cx {
        ctx,
        set,
        cache: &cache,
    };
    let planned = plan_all(&cx, reconcilers).await;
    if let Some(Err(reason)) = check.map(|check| check(reconcilers, &planned)) {
        let mut report = report_plan(&set.revision, reconcilers, &planned);
        report.aws_calls_by_kind = cache.plan_calls();
        return Err(Refused { report, reason });
    }
    let mut resources = Vec::with_capacity(planned.len());
    let mut replans = Replans::default();
    for (i, p) in &planned {
        let r = &reconcilers[*i];
        // A resource one of its dependencies was applied before in this round is planned
        // again from fresh reads: what it reads of that one (an ARN `from:` it, a
        // parameter's version) may have changed since the round's plan.
        let again = replans.current(&cx, *i, r.as_ref(), p).await;
        // What it would take from a dependency that was not applied (held, blocked,
        // failed): its own plan, as its reads showed it.
        let unfollowed: Option<OnePlan> = match (&again, p) {
            (None, Ok(p)) => p.unfollowed.as_ref().map(|plan| {
                Ok(Planned {
                    plan: (**plan).clone(),
                    unfollowed: None,
                })
            }),
            _ => None,
        };
        let p = match again.as_ref().or(unfollowed.as_ref()).unwrap_or(p) {
            Ok(p) => p,
            Err((name, e)) => {
                let entry = failed(r.kind(), name, e);
                gates.record_one(&entry);
                resources.push(entry);
                continue;
            }
        };
        let name = p.plan.name.clone();
        let mut entry = planned_report(p, Hold::Plan);
        if p.plan.action == Action::None {
            gates.record_one(&entry);
            resources.push(entry);
            continue;
        }
        if let Some(hold) = policy(r.kind(), &name) {
            // Reported as drift and left alone.
            entry = planned_report(p, hold);
            gates.record_one(&entry);
            resources.push(entry);
            continue;
        }
        if let Some((on, why)) = gates.blocking(&r.dependencies(set, &name)) {
            warn!(kind = %r.kind(), name = %name, dependency = %on, why = %why, "not applied: a dependency is not ready");
            entry.outcome = Outcome::Blocked { on, why };
            gates.record_one(&entry);
            resources.push(entry);
            continue;
        }
        if let Some(hook) = &ctx.on_apply {
            hook(r.kind(), &name);
        }
        let span = info_span!("apply", kind = %r.kind(), name = %name, action = ?p.plan.action);
        match r.apply(&cx, p).instrument(span).await {
            Ok(applied) => {
                info!(kind = %r.kind(), name = %name, changes = p.plan.changes.len(), "applied");
                // What was read before may have changed: later resources read afresh.
                cache.clear();
                replans.applied(r.kind(), &name);
                entry.applied = true;
                entry.aws_id = applied.aws_id;
                if applied.rollout.is_some() {
                    entry.rollout = applied.rollout;
                }
                // Requirement problems stay reported after the fixable part is applied.
                entry.outcome = match problems_failure(p) {
                    Some(failure) => Outcome::Failed { failure },
                    None => Outcome::Applied,
                };
            }
            Err(e) if e.category() == Category::Fenced => {
                warn!(kind = %r.kind(), name = %name, error = %e, "not applied: lost the lease");
                entry.outcome = Outcome::Held { why: Hold::Standby };
            }
            Err(e) => {
                warn!(kind = %r.kind(), name = %name, error = %e, category = %e.category(), "apply failed");
                entry.outcome = Outcome::Failed {
                    failure: (&e).into(),
                };
            }
        }
        gates.record_one(&entry);
        resources.push(entry);
    }
    Ok(PassReport {
        revision: set.revision.clone(),
        resources,
        aws_calls: Default::default(),
        target: None,
        aws_calls_by_kind: cache.plan_calls(),
        check_seconds_by_kind: cache.plan_seconds(),
    })
}

/// Which kinds were planned again within an apply round, and when.
#[derive(Default)]
struct Replans {
    /// Resources applied so far in the round, with the order of their apply (from 1).
    applied: HashMap<(Kind, String), usize>,
    /// A kind's fresh plan (by reconciler index), made after the apply numbered `.0`.
    fresh: HashMap<usize, (usize, KindPlan)>,
}

impl Replans {
    fn applied(&mut self, kind: Kind, name: &str) {
        let n = self.applied.len() + 1;
        self.applied.insert((kind, name.to_string()), n);
    }

    /// The resource's plan as it stands now, when it differs from the round's plan `p`:
    /// its kind is planned again (once per apply it depends on, not once per resource)
    /// when a dependency was applied after the kind's last plan; once planned again, the
    /// kind's later resources take that plan too (it is the one its observations hold).
    async fn current(
        &mut self,
        cx: &Cx<'_>,
        i: usize,
        r: &dyn Reconciler,
        p: &OnePlan,
    ) -> Option<OnePlan> {
        let name = match p {
            Ok(p) => &p.plan.name,
            Err((name, _)) => name,
        };
        let since = r
            .dependencies(cx.set, name)
            .iter()
            .filter_map(|d| self.applied.get(d))
            .max()
            .copied();
        let planned_at = self.fresh.get(&i).map(|(at, _)| *at);
        if let Some(since) = since.filter(|s| planned_at.is_none_or(|at| at < *s)) {
            self.fresh.insert(i, (since, plan_kind(cx, r).await));
        }
        let (_, results) = self.fresh.get(&i)?;
        let (n, result) = results.iter().find(|(n, _)| n == name)?;
        Some(result.clone().map_err(|e| (n.clone(), e)))
    }
}

/// A kind's plan: each manifest's name with its plan or why it failed.
type KindPlan = Vec<(String, Result<Planned, ReconcileError>)>;

/// One resource's plan, or the name of the resource it failed for and why.
type OnePlan = Result<Planned, (String, ReconcileError)>;

/// Plans again after an apply and turns every resource that still differs into a
/// `not_converged` failure: "apply exited 0" then means "AWS now matches".
pub async fn verify_converged(
    ctx: &Context,
    set: &ManifestSet,
    reconcilers: &[Box<dyn Reconciler>],
    report: &mut PassReport,
) {
    if report.has_errors() || !report.resources.iter().any(|r| r.applied) {
        return;
    }
    let cache = PassCache::default();
    let cx = Cx {
        ctx,
        set,
        cache: &cache,
    };
    let planned = plan_all(&cx, reconcilers).await;
    let after = report_plan(&report.revision, reconcilers, &planned);
    // By identity: the report may cover only some resources (`--target`).
    let mut after: HashMap<(Kind, String), ResourceReport> = after
        .resources
        .into_iter()
        .map(|r| ((r.kind, r.name.clone()), r))
        .collect();
    for entry in report.resources.iter_mut() {
        let Some(now) = after.remove(&(entry.kind, entry.name.clone())) else {
            continue;
        };
        if let Some(failure) = now.error() {
            entry.outcome = Outcome::Failed { failure };
        } else if now.action != Action::None {
            let fields: Vec<&str> = now.changes.iter().map(|c| c.field.as_str()).collect();
            let e = ReconcileError::NotConverged(format!(
                "still differs after apply: {}",
                fields.join(", ")
            ));
            entry.outcome = Outcome::Failed {
                failure: (&e).into(),
            };
        }
    }
}
