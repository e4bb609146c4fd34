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

use super::{Context, PassReport, apply_selected};
use crate::alerts::{Alerter, Episodes};
use crate::manifest::{Kind, ManifestErrors, ManifestSet, load_dir};
use crate::metrics::Metrics;
use crate::resources::reconcilers;
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
    match source {
        Source::Dir(dir) => load_dir_off_runtime(dir.clone()).await,
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
                Err(e) => return Err(one_error("git", format!("the fetch task failed: {e}"))),
            };
            match synced {
                Ok(s) => load_dir_off_runtime(s.dir).await.map(|mut set| {
                    set.revision = s.commit;
                    set
                }),
                Err(e) => Err(one_error(&url, e.to_string())),
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
    /// Delete resources that carry mooring's ownership tag but are in no manifest (only
    /// in enforce mode, only kinds that can list what they own).
    pub prune: bool,
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
}

/// Per-resource backoff after failures.
struct Backoff {
    until: Instant,
    delays: backon::ExponentialBackoff,
}

/// Failed resources and when they may be applied again.
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

    fn waiting(&self, kind: Kind, name: &str) -> bool {
        self.failing
            .get(&(kind, name.to_string()))
            .is_some_and(|b| Instant::now() < b.until)
    }

    /// Failures start or extend a backoff; a clean result resets it. A resource waiting
    /// for a failed dependency is not failing itself.
    fn update(&mut self, report: &PassReport) {
        for r in &report.resources {
            let id = (r.kind, r.name.clone());
            match &r.error {
                Some(e) if e.category != "dependency" => {
                    let entry = self.failing.entry(id).or_insert_with(|| Backoff {
                        until: Instant::now(),
                        delays: self.builder.build(),
                    });
                    if Instant::now() >= entry.until {
                        let delay = entry.delays.next().unwrap_or(Duration::from_secs(300));
                        entry.until = Instant::now() + delay;
                        info!(kind = %r.kind, name = %r.name, ?delay, "backing off");
                    }
                }
                Some(_) => {}
                None => {
                    self.failing.remove(&id);
                }
            }
        }
    }
}

/// How long a trigger waits for more changes before the pass starts.
const DEBOUNCE: Duration = Duration::from_millis(300);

fn jittered(interval: Duration) -> Duration {
    let factor = 0.9 + fastrand::f64() * 0.2;
    interval.mul_f64(factor)
}

/// Runs passes until `shutdown` turns true.
pub async fn run(
    cfg: DaemonConfig,
    mut ctx: Context,
    shared: Shared,
    mut shutdown: watch::Receiver<bool>,
) {
    let Shared {
        status,
        metrics,
        alerter,
        trigger,
        lease,
        heartbeat,
    } = shared;
    let applying = status.clone();
    ctx.on_apply = Some(Arc::new(move |kind, name| {
        applying.set_applying(kind, name)
    }));
    let source_label = status.snapshot().source;
    let stopping = Arc::new(AtomicBool::new(false));
    let mut backoffs = Backoffs::new(cfg.backoff);
    let mut episodes = Episodes::default();
    let mut current: Option<ManifestSet> = None;
    // When each kind is due for its next check; a trigger or a new revision checks all.
    let mut next_due: HashMap<Kind, Instant> = HashMap::new();
    let mut everything = true;
    loop {
        heartbeat.store(unix_now(), Ordering::SeqCst);
        match load(&cfg.source).await {
            Ok(set) => {
                if current.as_ref().map(|c| &c.revision) != Some(&set.revision) {
                    everything = true;
                    info!(revision = %set.revision, resources = set.len(), "loaded manifests");
                    for w in &set.warnings {
                        warn!(warning = %w, "manifest warning");
                    }
                }
                if let Some(a) = episodes.accepted(&source_label, &set.revision)
                    && leads(&lease)
                {
                    alerter.send(a);
                }
                status.set_manifests(&set, cfg.enforce);
                metrics.set_revision(&source_label, &set.revision);
                current = Some(set);
            }
            Err(errors) => {
                // A broken manifest set is rejected whole; the last good one keeps running.
                error!(errors = errors.0.len(), first = %errors.0.first().map(|e| e.to_string()).unwrap_or_default(), "rejected manifest set");
                metrics.record_rejected_set();
                let revision = current
                    .as_ref()
                    .map(|c| c.revision.clone())
                    .unwrap_or_default();
                if let Some(a) = episodes.rejected(&errors.0, &source_label, &revision)
                    && leads(&lease)
                {
                    alerter.send(a);
                }
                status.set_manifest_errors(errors.0);
            }
        }
        if let Some(set) = &current {
            if let Some(lease) = &lease {
                if let Err(e) = lease.refresh().await {
                    warn!(error = %e, "cannot read the lease: standing by");
                }
                metrics.set_leader(lease.is_leader());
                status.set_leadership(lease.leadership());
            }
            let started = SystemTime::now();
            let clock = Instant::now();
            let calls_before: u64 = ctx.aws.calls.snapshot().values().sum();
            let ok_before = ok_calls(&ctx);
            let modes: HashMap<(Kind, String), (bool, bool)> = set
                .metadata()
                .into_iter()
                .map(|(k, m)| {
                    (
                        (k, m.name.clone()),
                        (m.enforce().unwrap_or(cfg.enforce), m.paused()),
                    )
                })
                .collect();
            let waiting: std::collections::HashSet<(Kind, String)> = modes
                .keys()
                .filter(|(k, n)| backoffs.waiting(*k, n))
                .cloned()
                .collect();
            let may_apply = |kind: Kind, name: &str| {
                let (enforce, paused) = modes
                    .get(&(kind, name.to_string()))
                    .copied()
                    .unwrap_or((cfg.enforce, false));
                // The lease is checked at each apply: a leader paused past its lease
                // applies nothing when it wakes.
                enforce
                    && lease.as_ref().is_none_or(|l| l.is_leader())
                    && !paused
                    && !waiting.contains(&(kind, name.to_string()))
                    && !stopping.load(Ordering::SeqCst)
            };
            let now = Instant::now();
            let recs: Vec<_> = reconcilers(set)
                .into_iter()
                .filter(|r| everything || next_due.get(&r.kind()).is_none_or(|t| *t <= now))
                .collect();
            for r in &recs {
                let every = cfg
                    .kind_intervals
                    .get(&r.kind())
                    .copied()
                    .unwrap_or(cfg.interval);
                next_due.insert(r.kind(), now + jittered(every));
            }
            everything = false;
            let pass = apply_selected(&ctx, &set.revision, &recs, &may_apply)
                .instrument(info_span!("pass", revision = %set.revision));
            tokio::pin!(pass);
            let report = tokio::select! {
                r = &mut pass => r,
                _ = wait_true(&mut shutdown) => {
                    // No new applies from now on; the one in flight may finish.
                    stopping.store(true, Ordering::SeqCst);
                    info!(grace = ?cfg.grace, "shutting down: letting the apply in flight finish");
                    match tokio::time::timeout(cfg.grace, &mut pass).await {
                        Ok(r) => r,
                        Err(_) => {
                            // Dropping the pass cancels the call in flight; every apply is
                            // idempotent, so the next start carries on from AWS's state.
                            warn!(grace = ?cfg.grace, "the apply in flight did not finish in time; stopping anyway");
                            return;
                        }
                    }
                }
            };
            let failed = report
                .resources
                .iter()
                .filter(|r| r.error.is_some())
                .count();
            if failed > 0 {
                warn!(failed, "pass finished with failures");
            }
            let reachable = ok_calls(&ctx) > ok_before
                || ctx.aws.calls.snapshot().values().sum::<u64>() == calls_before;
            status.record_pass(
                &report,
                started,
                &|k, n| modes.get(&(k, n.to_string())).is_some_and(|m| m.1),
                reachable,
            );
            metrics.record_pass(&report, &source_label, clock.elapsed(), cfg.enforce);
            metrics.record_calls(&ctx.aws.calls.snapshot());
            // A resource held back by its backoff was not tried: its failure episode and
            // backoff stay as they are until it is.
            let mut tried = report.clone();
            tried
                .resources
                .retain(|r| !waiting.contains(&(r.kind, r.name.clone())));
            // Every replica tracks episodes (a new leader closes what the old one opened);
            // only the leader sends.
            let alerts = episodes.observe(&tried, &source_label);
            if leads(&lease) {
                for alert in alerts {
                    alerter.send(alert);
                }
            }
            backoffs.update(&tried);
            if report
                .resources
                .iter()
                .any(|r| r.applied && r.action == super::Action::Replace)
            {
                // Resources of kinds not due this pass may hold the replaced ARN.
                everything = true;
            }
            if cfg.prune && cfg.enforce && leads(&lease) && !stopping.load(Ordering::SeqCst) {
                prune(&ctx, set, &status, &|| leads(&lease)).await;
            }
        }
        // Until the next kind is due (at most one interval: the manifests are re-read
        // then, too).
        let until = next_due
            .values()
            .min()
            .copied()
            .unwrap_or_else(|| Instant::now() + cfg.interval)
            .min(Instant::now() + cfg.interval);
        tokio::select! {
            _ = tokio::time::sleep_until(until.max(Instant::now() + DEBOUNCE).into()) => {}
            _ = trigger.notified() => {
                // Let a burst of changes settle into one pass.
                tokio::time::sleep(DEBOUNCE).await;
                info!("reconcile triggered");
                everything = true;
            }
            _ = wait_true(&mut shutdown) => {}
        }
        if *shutdown.borrow() {
            info!("shutting down");
            return;
        }
    }
}

/// Deletes what carries mooring's ownership tag but is in no manifest, dependents first
/// (services before their target groups and security groups). A resource whose manifest
/// is paused or in observe mode is in the set, so never pruned.
async fn prune(
    ctx: &Context,
    set: &ManifestSet,
    status: &StatusStore,
    leading: &(dyn Fn() -> bool + Sync),
) {
    let wanted: std::collections::HashSet<(Kind, String)> = set.ids().into_iter().collect();
    for r in reconcilers(set).iter().rev() {
        let Some(owned) = r.owned(ctx).await else {
            continue;
        };
        let owned = match owned {
            Ok(o) => o,
            Err(e) => {
                warn!(kind = %r.kind(), error = %e, "cannot list owned resources for pruning");
                continue;
            }
        };
        for o in owned {
            if wanted.contains(&(r.kind(), o.name.clone())) {
                continue;
            }
            if !leading() {
                warn!("lost the lease while pruning: stopping");
                return;
            }
            match r.delete(ctx, &o).await {
                Ok(()) => {
                    info!(kind = %r.kind(), name = %o.name, aws_id = %o.aws_id, "pruned");
                    status.record_orphan(r.kind(), &o.name, &o.aws_id, "pruned");
                }
                Err(e) => {
                    warn!(kind = %r.kind(), name = %o.name, error = %e, "prune failed");
                    status.record_orphan(r.kind(), &o.name, &o.aws_id, &format!("failed: {e}"));
                }
            }
        }
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
    use crate::reconcile::{Action, ErrorReport, ResourceReport};

    fn report(error: Option<&str>) -> PassReport {
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
                error: error.map(|c| ErrorReport {
                    category: c.into(),
                    message: "x".into(),
                }),
            }],
            aws_calls: Default::default(),
        }
    }

    #[test]
    fn failures_back_off_and_success_resets() {
        let mut b = Backoffs::new((Duration::from_secs(60), Duration::from_secs(600)));
        assert!(!b.waiting(Kind::Service, "api"));
        b.update(&report(Some("throttling")));
        assert!(b.waiting(Kind::Service, "api"));
        assert!(!b.waiting(Kind::Service, "other"));
        b.update(&report(None));
        assert!(!b.waiting(Kind::Service, "api"));
        // Waiting for a dependency is not a failure of its own.
        b.update(&report(Some("dependency")));
        assert!(!b.waiting(Kind::Service, "api"));
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(60));
            assert!(
                d >= Duration::from_secs(54) && d <= Duration::from_secs(66),
                "{d:?}"
            );
        }
    }
}
