//! `mooring run`: load the manifests, reconcile, report, wait — until shutdown.
//!
//! A pass runs every `interval` (±10 % jitter, so replicas and restarts spread out), at once
//! when the manifest directory changes (debounced file watch) or a signed webhook arrives.
//! A resource that failed is not applied again until its backoff (exponential with jitter,
//! reset by a success) has passed; it is still checked every pass. Observe mode, per
//! resource or global, and paused resources are checked and reported, never changed.
//! SIGTERM stops new applies at once, lets the one in flight finish within `grace`, and
//! returns.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::{Notify, watch};
use tracing::{Instrument, error, info, info_span, warn};

use super::engine::Gates;
use super::{
    Action, Context, Cx, Hold, Outcome, PassCache, PassReport, ReconcileError, ResourceReport,
    apply_selected,
};
use crate::alerts::{Alerter, Episodes};
use crate::kinds::reconcilers;
use crate::manifest::{Kind, ManifestErrors, ManifestSet, load_dir};
use crate::metrics::Metrics;
use crate::status::StatusStore;

/// Where manifests come from.
pub enum Source {
    /// A directory, re-read every pass and watched for changes.
    Dir(PathBuf),
    /// A git branch, fetched every pass (cloned on the first); the commit is the revision.
    Git(Arc<std::sync::Mutex<crate::source::git::GitSource>>),
}

/// Loads the manifests from `source`. A git source's set carries the fetched commit as
/// its revision; a failed fetch is reported like an invalid set (the last good set keeps
/// running).
pub async fn load(source: &Source) -> Result<ManifestSet, ManifestErrors> {
    load_with_revision(source).await.map_err(|(e, _)| e)
}

/// [`load`], and for a set that does not validate, its revision when it can be told (the
/// git commit, or a directory's content hash), so that an alert can name it.
pub async fn load_with_revision(
    source: &Source,
) -> Result<ManifestSet, (ManifestErrors, Option<String>)> {
    match source {
        Source::Dir(dir) => {
            let loaded = load_dir_off_runtime(dir.clone()).await;
            match loaded {
                Ok(set) => Ok(set),
                Err(e) => {
                    let dir = dir.clone();
                    let revision = tokio::task::spawn_blocking(move || content_revision(&dir))
                        .await
                        .ok()
                        .flatten();
                    Err((e, revision))
                }
            }
        }
        Source::Git(git) => {
            let git = git.clone();
            let fetched = tokio::task::spawn_blocking(move || {
                let mut g = git.lock().unwrap_or_else(|p| p.into_inner());
                let url = g.redacted_url().to_string();
                (g.sync(), url)
            })
            .await;
            let (synced, url) = match fetched {
                Ok(r) => r,
                Err(e) => {
                    return Err((
                        one_error("git", format!("the fetch task failed: {e}")),
                        None,
                    ));
                }
            };
            match synced {
                Ok(s) => match load_dir_off_runtime(s.dir).await {
                    Ok(mut set) => {
                        set.revision = s.commit;
                        Ok(set)
                    }
                    Err(e) => Err((e, Some(s.commit))),
                },
                Err(e) => Err((one_error(&url, e.to_string()), None)),
            }
        }
    }
}

/// Reads and checks a directory on a blocking thread: reading may wait up to the read
/// timeout on a hung mount, which must not hold up a runtime worker (and `/healthz`).
async fn load_dir_off_runtime(dir: PathBuf) -> Result<ManifestSet, ManifestErrors> {
    let label = dir.display().to_string();
    tokio::task::spawn_blocking(move || load_dir(&dir))
        .await
        .unwrap_or_else(|e| Err(one_error(&label, format!("the manifest load failed: {e}"))))
}

/// The content hash a directory's set would have had as its revision (the same hash of
/// the files read as [`crate::manifest::load`] takes); `None` when nothing could be read.
fn content_revision(dir: &std::path::Path) -> Option<String> {
    use sha2::Digest;
    let (sources, _) =
        crate::manifest::read::read_sources(dir, &crate::manifest::limits::Limits::default());
    if sources.is_empty() {
        return None;
    }
    let mut hasher = sha2::Sha256::new();
    for (file, text) in &sources {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    Some(format!(
        "sha256:{}",
        digest
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

fn one_error(file: &str, message: String) -> ManifestErrors {
    ManifestErrors(vec![crate::manifest::ManifestError {
        file: PathBuf::from(file),
        line: 1,
        col: 1,
        field: String::new(),
        message,
    }])
}

/// Settings of the loop.
pub struct DaemonConfig {
    /// Where manifests come from.
    pub source: Source,
    /// Time between checks of a resource (jittered ±10 %).
    pub interval: Duration,
    /// Kinds checked on their own interval instead.
    pub kind_intervals: HashMap<Kind, Duration>,
    /// Correct drift (`true`) or only report it, unless a resource says otherwise.
    pub enforce: bool,
    /// How long an apply in flight may take to finish after SIGTERM.
    pub grace: Duration,
    /// Shortest and longest wait before a failed resource is applied again.
    pub backoff: (Duration, Duration),
    /// Delete resources that carry this stack's ownership tags but are in no manifest
    /// (only in enforce mode, only kinds that can list what they own).
    pub prune: bool,
    /// Let prune delete more resources than the manifests still describe (a set emptied by
    /// mistake must not wipe the stack).
    pub allow_empty_prune: bool,
    /// How long a deploy's rollout is followed before it counts as failed.
    pub deploy_timeout: Duration,
}

/// What the loop shares with the HTTP server and the alert task.
pub struct Shared {
    /// Status for `/status`.
    pub status: StatusStore,
    /// Metrics for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Alert delivery.
    pub alerter: Alerter,
    /// Wakes the loop (webhook, file watch, leadership won).
    pub trigger: Arc<Notify>,
    /// With leader election: only the lease holder applies.
    pub lease: Option<crate::lease::Lease>,
    /// When the loop last started a round (Unix seconds): the lease renewal stops when the
    /// loop is stuck (e.g. a hung fetch), so a standby can take over.
    pub heartbeat: Arc<std::sync::atomic::AtomicU64>,
    /// With `--events-queue`: the kinds change events ask to re-check (the consumer shows
    /// its own counts).
    pub events: Option<Arc<crate::events::Rechecks>>,
}

/// Per-resource backoff after failures.
struct Backoff {
    until: Instant,
    delays: backon::ExponentialBackoff,
    /// Set for failures only a manifest change can fix: the manifest's fingerprint then;
    /// the resource waits until it changes.
    until_changed: Option<u64>,
}

/// Failed resources and when they may be applied again: the error policy.
struct Backoffs {
    builder: ExponentialBuilder,
    failing: HashMap<(Kind, String), Backoff>,
}

impl Backoffs {
    fn new((min, max): (Duration, Duration)) -> Backoffs {
        Backoffs {
            builder: ExponentialBuilder::default()
                .with_min_delay(min)
                .with_max_delay(max)
                .without_max_times()
                .with_jitter(),
            failing: HashMap::new(),
        }
    }

    /// True while `(kind, name)` waits: for its backoff, or (for failures only a change
    /// can fix) for its manifest, whose fingerprint is now `fingerprint`, to change.
    fn waiting(&self, kind: Kind, name: &str, fingerprint: Option<u64>) -> bool {
        self.failing
            .get(&(kind, name.to_string()))
            .is_some_and(|b| match b.until_changed {
                Some(was) => fingerprint == Some(was),
                None => Instant::now() < b.until,
            })
    }

    /// Failed applies start or extend a backoff; a clean result resets it. Failures of
    /// planning (a read error, a missing secret) are seen again every pass anyway and a
    /// resource blocked by a dependency is not failing itself: neither backs off.
    fn update(&mut self, report: &PassReport, fingerprints: &HashMap<(Kind, String), u64>) {
        for r in &report.resources {
            let id = (r.kind, r.name.clone());
            match &r.outcome {
                Outcome::Failed { failure } if r.action != Action::None || r.applied => {
                    let fingerprint = fingerprints.get(&id).copied();
                    let entry = self.failing.entry(id).or_insert_with(|| Backoff {
                        until: Instant::now(),
                        delays: self.builder.build(),
                        until_changed: None,
                    });
                    if failure.category.needs_change() && fingerprint.is_some() {
                        entry.until_changed = fingerprint;
                        info!(kind = %r.kind, name = %r.name, category = %failure.category, "not applied again until its manifest changes");
                    } else if Instant::now() >= entry.until {
                        entry.until_changed = None;
                        let delay = entry.delays.next().unwrap_or(Duration::from_secs(300));
                        entry.until = Instant::now() + delay;
                        info!(kind = %r.kind, name = %r.name, ?delay, "backing off");
                    }
                }
                Outcome::Failed { .. } | Outcome::Blocked { .. } | Outcome::Held { .. } => {}
                Outcome::InSync | Outcome::Applied => {
                    self.failing.remove(&id);
                }
            }
        }
    }
}

/// How long a trigger waits for more changes before the pass starts.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// A factor of ±10 %, so replicas and restarts spread out.
fn jitter() -> f64 {
    0.9 + fastrand::f64() * 0.2
}

/// The loop's state between passes.
struct Daemon {
    cfg: DaemonConfig,
    ctx: Context,
    shared: Shared,
    source_label: String,
    stopping: Arc<AtomicBool>,
    backoffs: Backoffs,
    prune_backoffs: Backoffs,
    episodes: Episodes,
    deploys: crate::deploys::Tracker,
    gates: Gates,
    current: Option<ManifestSet>,
    /// When each kind is due for its next check.
    next_due: HashMap<Kind, Instant>,
    /// Check every kind in the next pass (a trigger, a new revision, a replacement).
    everything: bool,
    /// The live resource each manifest was last found at: prune never deletes one of
    /// these, whatever its tags say (a renamed manifest that adopted it, held in observe
    /// mode before its tags are rewritten).
    in_use: HashMap<(Kind, String), String>,
}

/// Runs passes until `shutdown` turns true.
pub async fn run(
    cfg: DaemonConfig,
    mut ctx: Context,
    shared: Shared,
    mut shutdown: watch::Receiver<bool>,
) {
    let applying = shared.status.clone();
    ctx.on_apply = Some(Arc::new(move |kind, name| {
        applying.set_applying(kind, name)
    }));
    let source_label = shared.status.snapshot().source;
    let deploys = crate::deploys::Tracker::new(
        crate::deploys::Reporter {
            status: shared.status.clone(),
            metrics: shared.metrics.clone(),
            alerter: shared.alerter.clone(),
        },
        crate::deploys::Follow {
            ecs: ctx.aws.ecs.clone(),
            poll: ctx.rollout_poll,
            timeout: cfg.deploy_timeout,
        },
    );
    let announce = deploys.clone();
    ctx.states
        .services
        .on_begin(Arc::new(move |begun| announce.begun(begun)));
    let mut d = Daemon {
        backoffs: Backoffs::new(cfg.backoff),
        prune_backoffs: Backoffs::new(cfg.backoff),
        cfg,
        ctx,
        shared,
        source_label,
        stopping: Arc::new(AtomicBool::new(false)),
        episodes: Episodes::default(),
        deploys,
        gates: Gates::default(),
        current: None,
        next_due: HashMap::new(),
        everything: true,
        in_use: HashMap::new(),
    };
    loop {
        d.shared.heartbeat.store(unix_now(), Ordering::SeqCst);
        d.reload().await;
        if d.current.is_some() {
            d.refresh_lease().await;
            let Some(report) = d.pass(&mut shutdown).await else {
                return; // the apply in flight did not finish within the grace
            };
            d.record(&report);
            if d.cfg.prune && d.cfg.enforce && d.leads() && !d.stopping.load(Ordering::SeqCst) {
                d.prune().await;
            }
        }
        if !d.wait(&mut shutdown).await {
            info!("shutting down");
            return;
        }
    }
}

impl Daemon {
    fn leads(&self) -> bool {
        leads(&self.shared.lease)
    }

    /// Step 1: load the manifests; a broken set is rejected whole and the last good one
    /// keeps running.
    async fn reload(&mut self) {
        let Shared {
            status,
            metrics,
            alerter,
            lease,
            ..
        } = &self.shared;
        match load_with_revision(&self.cfg.source).await {
            Ok(set) => {
                if self.current.as_ref().map(|c| &c.revision) != Some(&set.revision) {
                    self.everything = true;
                    info!(revision = %set.revision, stack = %set.stack, resources = set.len(), "loaded manifests");
                    for w in &set.warnings {
                        warn!(warning = %w, "manifest warning");
                    }
                }
                if let Some(a) = self.episodes.accepted(&self.source_label, &set.revision)
                    && leads(lease)
                {
                    alerter.send(a);
                }
                alerter.set_stack(&set.stack);
                status.set_manifests(&set, self.cfg.enforce);
                metrics.set_revision(&self.source_label, &set.revision);
                self.gates.retain(&set);
                self.current = Some(set);
            }
            Err((errors, rejected)) => {
                error!(errors = errors.0.len(), first = %errors.0.first().map(|e| e.to_string()).unwrap_or_default(), "rejected manifest set");
                metrics.record_rejected_set();
                let revision = self
                    .current
                    .as_ref()
                    .map(|c| c.revision.clone())
                    .unwrap_or_default();
                if let Some(a) = self.episodes.rejected(
                    &errors.0,
                    &self.source_label,
                    &revision,
                    rejected.as_deref(),
                ) && leads(lease)
                {
                    alerter.send(a);
                }
                status.set_manifest_errors(errors.0);
            }
        }
    }

    /// Step 2: with leader election, read the lease before deciding who applies.
    async fn refresh_lease(&self) {
        if let Some(lease) = &self.shared.lease {
            if let Err(e) = lease.refresh().await {
                warn!(error = %e, "cannot read the lease: standing by");
            }
            self.shared.metrics.set_leader(lease.is_leader());
            self.shared.status.set_leadership(lease.leadership());
        }
    }

    /// Step 3: plan the kinds that are due and apply what the policy allows. `None` when
    /// shutdown cut an apply short.
    async fn pass(&mut self, shutdown: &mut watch::Receiver<bool>) -> Option<PassReport> {
        let set = self.current.as_ref()?;
        self.deploys.before_pass(set);
        for td in self.deploys.take_rolled_back() {
            self.ctx.states.services.mark_failed(&td);
        }
        if self.shared.status.target().is_none()
            && let Ok(target) = self.ctx.aws.target().await
        {
            info!(%target, "working in");
            self.shared.alerter.set_target(target.clone());
            self.shared.status.set_target(target);
        }
        let fingerprints = set.fingerprints();
        let modes: HashMap<(Kind, String), (bool, bool)> = set
            .metadata()
            .into_iter()
            .map(|(k, m)| {
                (
                    (k, m.name.clone()),
                    (m.enforce().unwrap_or(self.cfg.enforce), m.paused()),
                )
            })
            .collect();
        let waiting: std::collections::HashSet<(Kind, String)> = modes
            .keys()
            .filter(|(k, n)| {
                self.backoffs
                    .waiting(*k, n, fingerprints.get(&(*k, n.clone())).copied())
            })
            .cloned()
            .collect();
        let (lease, stopping, enforce) = (&self.shared.lease, &self.stopping, self.cfg.enforce);
        let policy = |kind: Kind, name: &str| -> Option<Hold> {
            let id = (kind, name.to_string());
            let (enforce, paused) = modes.get(&id).copied().unwrap_or((enforce, false));
            if paused {
                Some(Hold::Paused)
            } else if !enforce {
                Some(Hold::Observe)
            } else if stopping.load(Ordering::SeqCst) {
                Some(Hold::Stopping)
            } else if !leads(lease) {
                // Checked at each apply: a leader paused past its lease applies nothing
                // when it wakes.
                Some(Hold::Standby)
            } else if waiting.contains(&id) {
                Some(Hold::Backoff)
            } else {
                None
            }
        };
        let now = Instant::now();
        let all = reconcilers(set);
        let mut due: std::collections::HashSet<Kind> = all
            .iter()
            .filter(|r| self.everything || self.next_due.get(&r.kind()).is_none_or(|t| *t <= now))
            .map(|r| r.kind())
            .collect();
        // A kind that is due is checked with the kinds it depends on, whatever their own
        // interval: its dependency gates go by states read in this pass, not an hour ago.
        loop {
            let needed: Vec<Kind> = all
                .iter()
                .filter(|r| due.contains(&r.kind()))
                .flat_map(|r| {
                    set.metadata()
                        .into_iter()
                        .filter(|(k, _)| *k == r.kind())
                        .flat_map(|(_, m)| r.dependencies(set, &m.name))
                        .map(|(k, _)| k)
                        .collect::<Vec<_>>()
                })
                .filter(|k| !due.contains(k))
                .collect();
            if needed.is_empty() {
                break;
            }
            due.extend(needed);
        }
        let recs: Vec<_> = all
            .into_iter()
            .filter(|r| due.contains(&r.kind()))
            .collect();
        // One jitter per pass: kinds on the same interval stay due together, so an interval
        // is one pass, not one small pass per kind.
        let factor = jitter();
        for r in &recs {
            let every = self
                .cfg
                .kind_intervals
                .get(&r.kind())
                .copied()
                .unwrap_or(self.cfg.interval);
            self.next_due.insert(r.kind(), now + every.mul_f64(factor));
        }
        self.everything = false;
        let started = SystemTime::now();
        let clock = Instant::now();
        let calls_before: u64 = self.ctx.aws.calls.snapshot().values().sum();
        let ok_before = ok_calls(&self.ctx);
        let pass = apply_selected(&self.ctx, set, &recs, &policy, &mut self.gates)
            .instrument(info_span!("pass", revision = %set.revision));
        tokio::pin!(pass);
        let mut report = tokio::select! {
            r = &mut pass => r,
            _ = wait_true(shutdown) => {
                // No new applies from now on; the one in flight may finish.
                self.stopping.store(true, Ordering::SeqCst);
                info!(grace = ?self.cfg.grace, "shutting down: letting the apply in flight finish");
                match tokio::time::timeout(self.cfg.grace, &mut pass).await {
                    Ok(r) => r,
                    Err(_) => {
                        // Dropping the pass cancels the call in flight; every apply is
                        // idempotent, so the next start carries on from AWS's state.
                        warn!(grace = ?self.cfg.grace, "the apply in flight did not finish in time; stopping anyway");
                        return None;
                    }
                }
            }
        };
        // Resources held back by their backoff were not tried: their episode and backoff
        // stay as they are until they are.
        for r in &mut report.resources {
            if waiting.contains(&(r.kind, r.name.clone()))
                && matches!(r.outcome, Outcome::Held { .. })
            {
                r.outcome = Outcome::Held { why: Hold::Backoff };
            }
        }
        let failed = report
            .resources
            .iter()
            .filter(|r| r.error().is_some())
            .count();
        if failed > 0 {
            warn!(failed, "pass finished with failures");
        }
        let reachable = ok_calls(&self.ctx) > ok_before
            || self.ctx.aws.calls.snapshot().values().sum::<u64>() == calls_before;
        self.shared.status.record_pass(&report, started, reachable);
        let ids: std::collections::HashSet<(Kind, String)> = set.ids().into_iter().collect();
        self.shared
            .metrics
            .record_pass(&report, &ids, &self.source_label, clock.elapsed());
        self.shared
            .metrics
            .record_calls(&self.ctx.aws.calls.snapshot());
        self.backoffs.update(&report, &fingerprints);
        self.in_use.retain(|id, _| ids.contains(id));
        for r in &report.resources {
            if !r.aws_id.is_empty() && r.action != Action::Create {
                self.in_use
                    .insert((r.kind, r.name.clone()), r.aws_id.clone());
            }
        }
        Some(report)
    }

    /// Step 4: alerts for the episodes the pass opened or closed, and the deploys it
    /// started (reported, then followed apart from the loop).
    fn record(&mut self, report: &PassReport) {
        // Every replica tracks episodes (a new leader closes what the old one opened);
        // only the leader sends.
        if let Some(set) = self.current.as_ref() {
            self.episodes.set_fingerprints(set.fingerprints());
        }
        let alerts = self.episodes.observe(report, &self.source_label);
        if self.leads() {
            for alert in alerts {
                self.shared.alerter.send(alert);
            }
        }
        let begun = self.ctx.states.services.take_deploys();
        self.deploys.after_pass(begun, report);
        if report
            .resources
            .iter()
            .any(|r| r.applied && r.action == Action::Replace)
        {
            // Resources of kinds not due this pass may hold the replaced ARN.
            self.everything = true;
        }
    }

    /// Step 5: delete what carries this stack's ownership tags but is in no manifest,
    /// dependents first (services before their target groups and security groups). A
    /// resource whose manifest is paused or in observe mode is in the set, so never
    /// pruned. Refuses to delete more than the manifests still describe unless allowed.
    async fn prune(&mut self) {
        let Some(set) = self.current.as_ref() else {
            return;
        };
        let cache = PassCache::default();
        let cx = Cx {
            ctx: &self.ctx,
            set,
            cache: &cache,
        };
        let wanted: std::collections::HashSet<(Kind, String)> = set.ids().into_iter().collect();
        let recs = reconcilers(set);
        let mut owned_total = 0;
        let mut orphans = Vec::new();
        for (i, r) in recs.iter().enumerate().rev() {
            let Some(owned) = r.owned(&cx).await else {
                continue;
            };
            match owned {
                Ok(owned) => {
                    owned_total += owned.len();
                    let in_use: std::collections::HashSet<&String> = self.in_use.values().collect();
                    orphans.extend(
                        owned
                            .into_iter()
                            .filter(|o| !wanted.contains(&(r.kind(), o.name.clone())))
                            .filter(|o| !in_use.contains(&o.aws_id))
                            .map(|o| (i, o)),
                    );
                }
                Err(e) => {
                    warn!(kind = %r.kind(), error = %e, "cannot list owned resources for pruning: pruning nothing this pass");
                    return;
                }
            }
        }
        if orphans.is_empty() {
            return;
        }
        // A protected environment (`protect: true`) deletes nothing, whatever the flags.
        if set.protect {
            for (i, o) in &orphans {
                self.shared.status.record_orphan(
                    recs[*i].kind(),
                    &o.name,
                    &o.aws_id,
                    &format!(
                        "not pruned: the environment `{}` is protected (`protect: true`)",
                        set.environment.as_deref().unwrap_or_default()
                    ),
                );
            }
            return;
        }
        // An emptied or mostly emptied set (a bad merge, a wrong path) must not wipe the
        // stack: prune deletes no more than the manifests still describe unless allowed.
        if orphans.len() > set.len() && !self.cfg.allow_empty_prune {
            warn!(
                orphans = orphans.len(),
                owned = owned_total,
                described = set.len(),
                "not pruning: that would delete more resources than the manifests describe (use --allow-empty-prune if that is meant)"
            );
            for (i, o) in &orphans {
                self.shared.status.record_orphan(
                    recs[*i].kind(),
                    &o.name,
                    &o.aws_id,
                    &format!(
                        "not pruned: {} of the {owned_total} resources the stack `{}` owns would go while the manifests describe {}; --allow-empty-prune allows it",
                        orphans.len(),
                        set.stack,
                        set.len()
                    ),
                );
            }
            return;
        }
        let none = HashMap::new();
        for (i, o) in orphans {
            let r = &recs[i];
            let key = format!("prune:{}", o.name);
            if self.prune_backoffs.waiting(r.kind(), &key, None) {
                continue;
            }
            if !leads(&self.shared.lease) {
                warn!("lost the lease while pruning: stopping");
                return;
            }
            let result = r.delete(&cx, &o).await;
            let entry = ResourceReport {
                kind: r.kind(),
                name: key,
                aws_id: o.aws_id.clone(),
                action: Action::Update,
                changes: Vec::new(),
                applied: result.is_ok(),
                rollout: None,
                outcome: match &result {
                    Ok(()) => Outcome::Applied,
                    Err(e) => Outcome::Failed { failure: e.into() },
                },
            };
            self.prune_backoffs.update(
                &PassReport {
                    revision: set.revision.clone(),
                    resources: vec![entry],
                    aws_calls: Default::default(),
                    target: None,
                    aws_calls_by_kind: Default::default(),
                    check_seconds_by_kind: Default::default(),
                },
                &none,
            );
            match result {
                Ok(()) => {
                    info!(kind = %r.kind(), name = %o.name, aws_id = %o.aws_id, "pruned");
                    self.shared
                        .status
                        .record_orphan(r.kind(), &o.name, &o.aws_id, "pruned");
                }
                Err(ReconcileError::Retained(why)) => {
                    // Kept on purpose: reported, not an error; asked again after a backoff.
                    info!(kind = %r.kind(), name = %o.name, aws_id = %o.aws_id, "not pruned: retained");
                    self.shared.status.record_orphan(
                        r.kind(),
                        &o.name,
                        &o.aws_id,
                        &format!("retained: {why}"),
                    );
                }
                Err(e) => {
                    warn!(kind = %r.kind(), name = %o.name, error = %e, "prune failed: backing off");
                    self.shared.status.record_orphan(
                        r.kind(),
                        &o.name,
                        &o.aws_id,
                        &format!("failed: {e}"),
                    );
                }
            }
        }
    }

    /// Step 6: sleep until the next kind is due (at most one interval: the manifests are
    /// re-read then, too), a trigger, or shutdown. False at shutdown.
    async fn wait(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let until = self
            .next_due
            .values()
            .min()
            .copied()
            .unwrap_or_else(|| Instant::now() + self.cfg.interval)
            .min(Instant::now() + self.cfg.interval);
        tokio::select! {
            _ = tokio::time::sleep_until(until.max(Instant::now() + DEBOUNCE).into()) => {}
            _ = self.shared.trigger.notified() => {
                // Let a burst of changes settle into one pass.
                tokio::time::sleep(DEBOUNCE).await;
                info!("reconcile triggered");
                self.everything = true;
            }
            _ = async {
                match &self.shared.events {
                    Some(rechecks) => rechecks.notify.notified().await,
                    None => std::future::pending().await,
                }
            } => {
                // Let a burst of events settle into one pass of the kinds they touched
                // (and, as every pass, the kinds those depend on).
                tokio::time::sleep(DEBOUNCE).await;
                if let Some(rechecks) = &self.shared.events {
                    let kinds = rechecks.take();
                    info!(kinds = ?kinds, "re-check after change events");
                    let now = Instant::now();
                    for kind in kinds {
                        self.next_due.insert(kind, now);
                    }
                }
            }
            _ = wait_true(shutdown) => {}
        }
        !*shutdown.borrow()
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// True when this replica may change AWS: no leader election, or it holds the lease.
fn leads(lease: &Option<crate::lease::Lease>) -> bool {
    lease.as_ref().is_none_or(|l| l.is_leader())
}

fn ok_calls(ctx: &Context) -> u64 {
    ctx.aws
        .calls
        .snapshot()
        .iter()
        .filter(|((_, _, outcome), _)| *outcome == "ok")
        .map(|(_, n)| n)
        .sum()
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{Category, Failure};

    fn report(outcome: Outcome) -> PassReport {
        PassReport {
            revision: "r".into(),
            resources: vec![ResourceReport {
                kind: Kind::Service,
                name: "api".into(),
                aws_id: String::new(),
                action: Action::Update,
                changes: Vec::new(),
                applied: false,
                rollout: None,
                outcome,
            }],
            aws_calls: Default::default(),
            target: None,
            aws_calls_by_kind: Default::default(),
            check_seconds_by_kind: Default::default(),
        }
    }

    fn failed(category: Category) -> Outcome {
        Outcome::Failed {
            failure: Failure {
                category,
                message: "x".into(),
            },
        }
    }

    #[test]
    fn failures_back_off_and_success_resets() {
        let prints = HashMap::from([((Kind::Service, "api".to_string()), 1)]);
        let mut b = Backoffs::new((Duration::from_secs(60), Duration::from_secs(600)));
        assert!(!b.waiting(Kind::Service, "api", Some(1)));
        b.update(&report(failed(Category::Throttling)), &prints);
        assert!(b.waiting(Kind::Service, "api", Some(1)));
        assert!(!b.waiting(Kind::Service, "other", Some(1)));
        b.update(&report(Outcome::Applied), &prints);
        assert!(!b.waiting(Kind::Service, "api", Some(1)));
        // Waiting for a dependency is not a failure of its own.
        b.update(
            &report(Outcome::Blocked {
                on: "Cluster/prd".into(),
                why: "failed".into(),
            }),
            &prints,
        );
        assert!(!b.waiting(Kind::Service, "api", Some(1)));
        for _ in 0..100 {
            let d = Duration::from_secs(60).mul_f64(jitter());
            assert!(
                d >= Duration::from_secs(54) && d <= Duration::from_secs(66),
                "{d:?}"
            );
        }
    }

    #[test]
    fn failures_only_a_change_can_fix_wait_for_the_manifest_to_change() {
        let prints = HashMap::from([((Kind::Service, "api".to_string()), 1)]);
        let mut b = Backoffs::new((Duration::from_millis(1), Duration::from_millis(1)));
        b.update(&report(failed(Category::Validation)), &prints);
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            b.waiting(Kind::Service, "api", Some(1)),
            "not retried after the backoff: only a change can fix it"
        );
        assert!(
            !b.waiting(Kind::Service, "api", Some(2)),
            "a new manifest is tried"
        );
        // A transient failure is tried again once its short backoff has passed.
        b.update(&report(failed(Category::Transient)), &prints);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!b.waiting(Kind::Service, "api", Some(1)));
    }

    #[tokio::test]
    async fn a_rejected_directory_set_is_named_by_the_revision_it_would_have_had() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| {
            std::fs::write(
                dir.path().join("stack.yaml"),
                "apiVersion: mooring.dev/v1alpha1\nkind: Stack\nmetadata: {name: prd}\n",
            )
            .unwrap();
            std::fs::write(dir.path().join("cluster.yaml"), text).unwrap();
        };
        write("apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: prd}\nspec: {}\n");
        let source = Source::Dir(dir.path().to_path_buf());
        let set = load_with_revision(&source).await.unwrap();
        assert_eq!(content_revision(dir.path()), Some(set.revision.clone()));
        write(
            "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: prd}\nspec: {cpu: 1}\n",
        );
        let (errors, rejected) = load_with_revision(&source).await.unwrap_err();
        assert!(!errors.0.is_empty());
        let rejected = rejected.expect("the rejected set's revision");
        assert!(
            rejected.starts_with("sha256:") && rejected != set.revision,
            "{rejected}"
        );
    }
}
