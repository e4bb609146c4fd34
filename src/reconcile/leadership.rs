//! The lease renewal loop of leader election: renews the lease (or, on standby, tries to
//! take it over) every third of its duration, between passes too, and starts a pass at
//! once when this replica wins it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::lease::Lease;
use crate::metrics::Metrics;
use crate::status::StatusStore;

/// What the renewal loop needs.
pub struct Renewal {
    /// The lease.
    pub lease: Lease,
    /// Wakes the reconcile loop when leadership is won.
    pub trigger: Arc<Notify>,
    /// `mooring_leader`.
    pub metrics: Arc<Metrics>,
    /// `/status` leadership.
    pub status: StatusStore,
    /// Turns true at shutdown.
    pub stop: watch::Receiver<bool>,
    /// When the reconcile loop last started a round (Unix seconds).
    pub heartbeat: Arc<AtomicU64>,
    /// A loop idle longer than this is stuck: the lease is not renewed, so a standby takes
    /// over.
    pub stuck_after: Duration,
}

/// Starts the renewal loop on its own task.
pub fn spawn_renewal(r: Renewal) {
    let Renewal {
        lease,
        trigger,
        metrics,
        status,
        mut stop,
        heartbeat,
        stuck_after,
    } = r;
    let every = lease.renew_every();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|v| *v) => return,
            }
            let was = lease.is_leader();
            let idle = super::daemon::unix_now().saturating_sub(heartbeat.load(Ordering::SeqCst));
            if idle > stuck_after.as_secs() {
                // The loop is stuck (a hung fetch or AWS call): stop renewing, so the
                // lease runs out and a standby takes over.
                tracing::error!(idle, "the reconcile loop is stuck: not renewing the lease");
                continue;
            }
            if let Err(e) = lease.refresh().await {
                tracing::warn!(error = %e, "cannot renew the lease");
            }
            metrics.set_leader(lease.is_leader());
            status.set_leadership(lease.leadership());
            if !was && lease.is_leader() {
                trigger.notify_one();
            }
        }
    });
}
