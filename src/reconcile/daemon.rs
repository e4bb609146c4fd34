//! `mooring run`: reload the manifests, reconcile, report, sleep, again — until shutdown.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tracing::{Instrument, error, info, info_span, warn};

use super::{Context, apply_all};
use crate::manifest::{ManifestSet, load_dir};
use crate::resources::reconcilers;
use crate::status::StatusStore;

/// Settings of the loop.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Manifest directory, re-read every pass.
    pub dir: PathBuf,
    /// Time between passes.
    pub interval: Duration,
    /// Correct drift (`true`) or only report it.
    pub enforce: bool,
}

/// Runs passes until `shutdown` turns true. A pass in progress finishes first, so an apply
/// is never cut off half-way by the daemon itself.
pub async fn run(
    cfg: DaemonConfig,
    mut ctx: Context,
    status: StatusStore,
    mut shutdown: watch::Receiver<bool>,
) {
    let applying = status.clone();
    ctx.on_apply = Some(std::sync::Arc::new(move |kind, name| {
        applying.set_applying(kind, name)
    }));
    let mut current: Option<ManifestSet> = None;
    loop {
        match load_dir(&cfg.dir) {
            Ok(set) => {
                if current.as_ref().map(|c| &c.revision) != Some(&set.revision) {
                    info!(revision = %set.revision, resources = set.len(), "loaded manifests");
                    for w in &set.warnings {
                        warn!(warning = %w, "manifest warning");
                    }
                }
                status.set_manifests(&set);
                current = Some(set);
            }
            Err(errors) => {
                // A broken manifest set is rejected whole; the last good one keeps running.
                error!(errors = errors.0.len(), first = %errors.0.first().map(|e| e.to_string()).unwrap_or_default(), "rejected manifest set");
                status.set_manifest_errors(errors.0);
            }
        }
        if let Some(set) = &current {
            let started = SystemTime::now();
            let span = info_span!("pass", revision = %set.revision);
            let report = apply_all(&ctx, &set.revision, &reconcilers(set), cfg.enforce)
                .instrument(span)
                .await;
            let failed = report
                .resources
                .iter()
                .filter(|r| r.error.is_some())
                .count();
            if failed > 0 {
                warn!(failed, "pass finished with failures");
            }
            status.record_pass(&report, started);
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.interval) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            info!("shutting down");
            return;
        }
    }
}
