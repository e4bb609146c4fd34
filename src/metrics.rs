//! `GET /metrics`: what the daemon did, in Prometheus text format (`prometheus-client`).
//!
//! Counters only grow: AWS calls are taken from the clients' call counter after every
//! pass and added as the difference to the last look.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::aws::CallKey;
use crate::reconcile::PassReport;

/// Labels of a reconcile of one kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The kind.
    pub kind: String,
}

/// Labels of a failed reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The kind.
    pub kind: String,
    /// The error category (`throttling`, `requirement`, `dependency`, …).
    pub category: String,
}

/// Labels of one resource.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// The kind.
    pub kind: String,
    /// The manifest's name.
    pub name: String,
}

/// Labels of AWS calls.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The AWS service, as the SDK names it.
    pub service: String,
    /// The operation.
    pub operation: String,
    /// `ok`, `error` or `throttled`.
    pub outcome: String,
}

/// Labels of the manifest revision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevisionLabels {
    /// Where manifests come from.
    pub source: String,
    /// The revision (content hash or git commit).
    pub revision: String,
}

/// Labels of alert deliveries.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    /// `webhook`, `slack` or `sns`.
    pub sink: String,
    /// `delivered`, `retried`, `failed` or `dropped`.
    pub outcome: String,
}

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    pass_duration: Histogram,
    drifted: Family<ResourceLabels, Gauge>,
    aws_calls: Family<CallLabels, Counter>,
    last_success: Gauge<f64, std::sync::atomic::AtomicU64>,
    revision: Family<RevisionLabels, Gauge>,
    rejected_sets: Counter,
    alerts: Family<AlertLabels, Counter>,
    leader: Gauge,
    acquisitions: Counter,
    seen_calls: Mutex<BTreeMap<CallKey, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric, all zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mooring");
        let reconciles = Family::<KindLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Resources reconciled (planned, and applied when needed), by kind",
            reconciles.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "reconcile_failures",
            "Resources whose reconcile failed, by kind and error category",
            failures.clone(),
        );
        let pass_duration =
            Histogram::new([0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]);
        registry.register(
            "pass_duration_seconds",
            "Duration of a full reconcile pass",
            pass_duration.clone(),
        );
        let drifted = Family::<ResourceLabels, Gauge>::default();
        registry.register(
            "resource_drifted",
            "1 while a resource differs from its manifest (drift not corrected yet), else 0",
            drifted.clone(),
        );
        let aws_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "aws_calls",
            "AWS API calls by service, operation and outcome",
            aws_calls.clone(),
        );
        let last_success = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "last_successful_pass_timestamp_seconds",
            "Unix time of the last pass in which no resource failed",
            last_success.clone(),
        );
        let revision = Family::<RevisionLabels, Gauge>::default();
        registry.register(
            "manifest_revision_info",
            "The manifest revision being reconciled (value 1)",
            revision.clone(),
        );
        let rejected_sets = Counter::default();
        registry.register(
            "manifest_sets_rejected",
            "Manifest sets rejected because they did not validate",
            rejected_sets.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "alert_deliveries",
            "Alert deliveries by sink and outcome",
            alerts.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 when this replica applies changes, 0 on standby",
            leader.clone(),
        );

        let acquisitions = Counter::default();
        registry.register(
            "leader_acquisitions",
            "Times this replica became leader (handovers to it)",
            acquisitions.clone(),
        );
        Metrics {
            registry,
            reconciles,
            failures,
            pass_duration,
            drifted,
            aws_calls,
            last_success,
            revision,
            rejected_sets,
            alerts,
            leader,
            acquisitions,
            seen_calls: Mutex::default(),
        }
    }

    /// Records a finished pass: per-resource outcomes, drift, duration, the revision.
    pub fn record_pass(&self, report: &PassReport, source: &str, took: Duration) {
        for r in &report.resources {
            let kind = r.kind.to_string();
            self.reconciles
                .get_or_create(&KindLabels { kind: kind.clone() })
                .inc();
            if let Some(e) = r.error() {
                self.failures
                    .get_or_create(&FailureLabels {
                        kind: kind.clone(),
                        category: e.category.as_str().to_string(),
                    })
                    .inc();
            }
            self.drifted
                .get_or_create(&ResourceLabels {
                    kind,
                    name: r.name.clone(),
                })
                .set(i64::from(r.drifted()));
        }
        self.pass_duration.observe(took.as_secs_f64());
        if !report.has_errors() {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            self.last_success.set(now);
        }
        self.set_revision(source, &report.revision);
    }

    /// Shows `revision` as the one being reconciled (and no other).
    pub fn set_revision(&self, source: &str, revision: &str) {
        self.revision.clear();
        self.revision
            .get_or_create(&RevisionLabels {
                source: source.to_string(),
                revision: revision.to_string(),
            })
            .set(1);
    }

    /// Adds the AWS calls made since the last look, from the clients' cumulative counts.
    pub fn record_calls(&self, now: &BTreeMap<CallKey, u64>) {
        let Ok(mut seen) = self.seen_calls.lock() else {
            return;
        };
        for (key, n) in now {
            let before = seen.get(key).copied().unwrap_or(0);
            if *n > before {
                let (service, operation, outcome) = key;
                self.aws_calls
                    .get_or_create(&CallLabels {
                        service: service.clone(),
                        operation: operation.clone(),
                        outcome: outcome.to_string(),
                    })
                    .inc_by(n - before);
            }
            seen.insert(key.clone(), *n);
        }
    }

    /// A manifest set was rejected.
    pub fn record_rejected_set(&self) {
        self.rejected_sets.inc();
    }

    /// One alert delivery outcome.
    pub fn record_alert(&self, sink: &str, outcome: &str) {
        self.alerts
            .get_or_create(&AlertLabels {
                sink: sink.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Leadership of this replica; a change to leader counts as an acquisition.
    pub fn set_leader(&self, leader: bool) {
        if self.leader.set(i64::from(leader)) == 0 && leader {
            self.acquisitions.inc();
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Shared metrics.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Kind;
    use crate::reconcile::{Action, Category, Failure, Hold, Outcome, ResourceReport};

    fn report(action: Action, applied: bool, error: Option<Category>) -> PassReport {
        PassReport {
            revision: "sha256:abc".into(),
            resources: vec![ResourceReport {
                kind: Kind::Service,
                name: "api".into(),
                aws_id: String::new(),
                action,
                changes: Vec::new(),
                applied,
                rollout: None,
                outcome: match error {
                    Some(category) => Outcome::Failed {
                        failure: Failure {
                            category,
                            message: "x".into(),
                        },
                    },
                    None if action == Action::None || applied => Outcome::InSync,
                    None => Outcome::Held { why: Hold::Observe },
                },
            }],
            aws_calls: Default::default(),
            aws_calls_by_kind: Default::default(),
        }
    }

    #[test]
    fn passes_calls_and_drift_show_in_the_text_format() {
        let m = Metrics::new();
        m.record_pass(
            &report(Action::Update, false, None),
            "dir",
            Duration::from_millis(300),
        );
        let mut calls = BTreeMap::new();
        calls.insert(("ECS".to_string(), "DescribeServices".to_string(), "ok"), 3);
        m.record_calls(&calls);
        calls.insert(("ECS".to_string(), "DescribeServices".to_string(), "ok"), 5);
        m.record_calls(&calls);
        m.record_pass(
            &report(Action::None, false, Some(Category::Throttling)),
            "dir",
            Duration::from_millis(300),
        );
        let text = m.encode();
        for line in [
            "mooring_reconciles_total{kind=\"Service\"} 2",
            "mooring_reconcile_failures_total{kind=\"Service\",category=\"throttling\"} 1",
            "mooring_resource_drifted{kind=\"Service\",name=\"api\"} 0",
            "mooring_aws_calls_total{service=\"ECS\",operation=\"DescribeServices\",outcome=\"ok\"} 5",
            "mooring_pass_duration_seconds_count 2",
            "mooring_manifest_revision_info{source=\"dir\",revision=\"sha256:abc\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
