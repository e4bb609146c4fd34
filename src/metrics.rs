//! `GET /metrics`: what the daemon did, in OpenMetrics (`prometheus-client`) or, for
//! scrapers that do not ask for OpenMetrics, the classic Prometheus text format.
//!
//! Counters only grow: AWS calls are taken from the clients' call counter after every
//! pass and added as the difference to the last look.

mod process;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::aws::CallKey;
use crate::manifest::Kind;
use crate::reconcile::{Hold, Outcome, PassReport};

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

/// Labels of one resource's state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// The kind.
    pub kind: String,
    /// The manifest's name.
    pub name: String,
    /// `in_sync`, `applied`, `held`, `blocked` or `failed`.
    pub state: String,
}

/// Labels of the build.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// mooring's version.
    pub version: String,
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

/// Labels of change events (`--events-queue`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// `mapped` (a re-check), `own` (mooring's write) or `ignored`.
    pub verdict: String,
}

/// Labels of alert deliveries.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    /// `webhook`, `slack` or `sns`.
    pub sink: String,
    /// `delivered`, `retried`, `failed` or `dropped`.
    pub outcome: String,
}

/// Labels of deploys.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeployLabels {
    /// The Service manifest's name.
    pub service: String,
    /// `succeeded`, `failed` or `superseded`.
    pub outcome: String,
}

/// Labels of one service.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    /// The Service manifest's name.
    pub service: String,
}

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    pass_duration: Histogram,
    check_duration: Family<KindLabels, Histogram>,
    drifted: Family<ResourceLabels, Gauge>,
    states: Family<StateLabels, Gauge>,
    aws_calls: Family<CallLabels, Counter>,
    last_success: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Each resource's latest check: did it succeed?
    latest: Mutex<HashMap<(Kind, String), bool>>,
    revision: Family<RevisionLabels, Gauge>,
    rejected_sets: Counter,
    alerts: Family<AlertLabels, Counter>,
    leader: Gauge,
    acquisitions: Counter,
    deploys: Family<DeployLabels, Counter>,
    deploy_duration: Histogram,
    last_deploy: Family<ServiceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    seen_calls: Mutex<BTreeMap<CallKey, u64>>,
    change_events: Family<EventLabels, Counter>,
    event_rechecks: Counter,
    last_event: Gauge<f64, std::sync::atomic::AtomicU64>,
    seen_events: Mutex<crate::events::Stats>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric, all zero.
    pub fn new() -> Metrics {
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector));
        let registry = root.sub_registry_with_prefix("mooring");
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
            "Duration of a reconcile pass (the kinds that were due)",
            pass_duration.clone(),
        );
        let check_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
        });
        registry.register(
            "check_duration_seconds",
            "Duration of one kind's check in a pass (its AWS reads and the diff)",
            check_duration.clone(),
        );
        let states = Family::<StateLabels, Gauge>::default();
        registry.register(
            "resource_state",
            "1 for the state of each resource after its latest check, 0 for the other states",
            states.clone(),
        );
        registry.register(
            "build",
            "mooring's build (value 1)",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
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
            "last_successful_full_pass_timestamp_seconds",
            "Unix time of the last pass after which every resource of the set had been checked and none was failed, blocked or backing off",
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
        let change_events = Family::<EventLabels, Counter>::default();
        registry.register(
            "change_events",
            "Change events read from the events queue, by verdict (mapped to a re-check, mooring's own write, ignored)",
            change_events.clone(),
        );
        let event_rechecks = Counter::default();
        registry.register(
            "event_rechecks",
            "Re-checks that change events triggered",
            event_rechecks.clone(),
        );
        let last_event = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "last_change_event_timestamp_seconds",
            "When the last change event arrived (Unix time); 0 before the first",
            last_event.clone(),
        );
        let deploys = Family::<DeployLabels, Counter>::default();
        registry.register(
            "deploys",
            "Finished deploys (a service moved to a new task definition revision), by service and outcome",
            deploys.clone(),
        );
        let deploy_duration =
            Histogram::new([10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0]);
        registry.register(
            "deploy_duration_seconds",
            "Duration of finished deploys, from the start (pre-deploy task included) to the end of the rollout",
            deploy_duration.clone(),
        );
        let last_deploy =
            Family::<ServiceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "last_successful_deploy_timestamp_seconds",
            "Unix time of each service's last successful deploy",
            last_deploy.clone(),
        );
        Metrics {
            registry: root,
            reconciles,
            failures,
            pass_duration,
            check_duration,
            drifted,
            states,
            aws_calls,
            last_success,
            latest: Mutex::default(),
            revision,
            rejected_sets,
            alerts,
            leader,
            acquisitions,
            deploys,
            deploy_duration,
            last_deploy,
            seen_calls: Mutex::default(),
            change_events,
            event_rechecks,
            last_event,
            seen_events: Mutex::default(),
        }
    }

    /// The change-event consumer's counts as they are now (counters move by the
    /// difference since the last call).
    pub fn record_change_events(&self, now: &crate::events::Stats) {
        let mut seen = self.seen_events.lock().unwrap_or_else(|p| p.into_inner());
        for (verdict, new, old) in [
            ("mapped", now.mapped, seen.mapped),
            ("own", now.own, seen.own),
            ("ignored", now.ignored, seen.ignored),
        ] {
            self.change_events
                .get_or_create(&EventLabels {
                    verdict: verdict.to_string(),
                })
                .inc_by(new.saturating_sub(old));
        }
        self.event_rechecks
            .inc_by(now.rechecks.saturating_sub(seen.rechecks));
        if let Some(at) = now.last_event_unix {
            self.last_event.set(at as f64);
        }
        *seen = now.clone();
    }

    /// Records a finished pass over some of the set's resources (`set`: all of them):
    /// per-resource outcomes and states, drift, durations, the revision, and whether every
    /// resource's latest check now succeeded.
    pub fn record_pass(
        &self,
        report: &PassReport,
        set: &HashSet<(Kind, String)>,
        source: &str,
        took: Duration,
    ) {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        // Resources that left the set leave the per-resource series too.
        latest.retain(|(kind, name), _| {
            let keep = set.contains(&(*kind, name.clone()));
            if !keep {
                self.forget(*kind, name);
            }
            keep
        });
        for r in &report.resources {
            let ok =
                r.error().is_none() && !matches!(r.outcome, Outcome::Held { why: Hold::Backoff });
            latest.insert((r.kind, r.name.clone()), ok);
            for state in Outcome::STATES {
                self.states
                    .get_or_create(&StateLabels {
                        kind: r.kind.to_string(),
                        name: r.name.clone(),
                        state: state.to_string(),
                    })
                    .set(i64::from(state == r.outcome.state()));
            }
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
        for (kind, seconds) in &report.check_seconds_by_kind {
            self.check_duration
                .get_or_create(&KindLabels { kind: kind.clone() })
                .observe(*seconds);
        }
        let all_ok = set
            .iter()
            .all(|id| latest.get(id).copied().unwrap_or(false));
        if all_ok {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            self.last_success.set(now);
        }
        self.set_revision(source, &report.revision);
    }

    fn forget(&self, kind: Kind, name: &str) {
        let kind = kind.to_string();
        self.drifted.remove(&ResourceLabels {
            kind: kind.clone(),
            name: name.to_string(),
        });
        for state in Outcome::STATES {
            self.states.remove(&StateLabels {
                kind: kind.clone(),
                name: name.to_string(),
                state: state.to_string(),
            });
        }
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

    /// A finished deploy: counted by outcome, its duration observed, and for a success
    /// the service's last successful deploy time.
    pub fn record_deploy(&self, deploy: &crate::deploys::Deploy) {
        use crate::deploys::DeployState;
        let outcome = match deploy.state {
            DeployState::InProgress => return,
            DeployState::Succeeded => "succeeded",
            DeployState::Failed => "failed",
            DeployState::Superseded => "superseded",
        };
        self.deploys
            .get_or_create(&DeployLabels {
                service: deploy.service.clone(),
                outcome: outcome.to_string(),
            })
            .inc();
        if let Some(seconds) = deploy.duration_seconds {
            self.deploy_duration.observe(seconds);
        }
        if deploy.state == DeployState::Succeeded {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            self.last_deploy
                .get_or_create(&ServiceLabels {
                    service: deploy.service.clone(),
                })
                .set(now);
        }
    }

    /// Leadership of this replica; a change to leader counts as an acquisition.
    pub fn set_leader(&self, leader: bool) {
        if self.leader.set(i64::from(leader)) == 0 && leader {
            self.acquisitions.inc();
        }
    }

    /// Every metric in OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Every metric in the format `accept` (an HTTP `Accept` header) asks for: OpenMetrics
    /// when it names it, else the classic text format; with its content type.
    pub fn encode_for(&self, accept: Option<&str>) -> (&'static str, String) {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            (OPENMETRICS, self.encode())
        } else {
            (CLASSIC, to_classic(&self.encode()))
        }
    }
}

/// The content type of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the classic Prometheus text format.
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text in the classic Prometheus format. The two differ where a classic
/// parser would misread: OpenMetrics names a counter family without `_total` (its samples
/// carry it), so a classic parser reads every counter as untyped; `info` families are
/// gauges there; `# UNIT` and `# EOF` do not exist.
fn to_classic(openmetrics: &str) -> String {
    let mut counters = HashSet::new();
    let mut infos = HashSet::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            match rest.rsplit_once(' ') {
                Some((name, "counter")) => counters.insert(name.to_string()),
                Some((name, "info")) => infos.insert(name.to_string()),
                _ => false,
            };
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let header = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match header.and_then(|(p, rest)| Some((p, rest.split_once(' ')?))) {
            Some((p, (name, rest))) if counters.contains(name) => {
                out.push_str(&format!("{p}{name}_total {rest}"));
            }
            Some((p, (name, rest))) if infos.contains(name) => {
                let rest = if p == "# TYPE " { "gauge" } else { rest };
                out.push_str(&format!("{p}{name}_info {rest}"));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
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
            target: None,
            aws_calls_by_kind: Default::default(),
            check_seconds_by_kind: Default::default(),
        }
    }

    fn ids(names: &[&str]) -> HashSet<(Kind, String)> {
        names
            .iter()
            .map(|n| (Kind::Service, n.to_string()))
            .collect()
    }

    #[test]
    fn passes_calls_and_drift_show_in_the_text_format() {
        let m = Metrics::new();
        let mut first = report(Action::Update, false, None);
        first
            .check_seconds_by_kind
            .insert("Service".to_string(), 0.2);
        m.record_pass(&first, &ids(&["api"]), "dir", Duration::from_millis(300));
        let mut calls = BTreeMap::new();
        calls.insert(("ECS".to_string(), "DescribeServices".to_string(), "ok"), 3);
        m.record_calls(&calls);
        calls.insert(("ECS".to_string(), "DescribeServices".to_string(), "ok"), 5);
        m.record_calls(&calls);
        m.record_pass(
            &report(Action::None, false, Some(Category::Throttling)),
            &ids(&["api"]),
            "dir",
            Duration::from_millis(300),
        );
        let text = m.encode();
        for line in [
            "mooring_reconciles_total{kind=\"Service\"} 2",
            "mooring_reconcile_failures_total{kind=\"Service\",category=\"throttling\"} 1",
            "mooring_resource_drifted{kind=\"Service\",name=\"api\"} 0",
            "mooring_resource_state{kind=\"Service\",name=\"api\",state=\"failed\"} 1",
            "mooring_resource_state{kind=\"Service\",name=\"api\",state=\"held\"} 0",
            "mooring_aws_calls_total{service=\"ECS\",operation=\"DescribeServices\",outcome=\"ok\"} 5",
            "mooring_pass_duration_seconds_count 2",
            "mooring_check_duration_seconds_count{kind=\"Service\"} 1",
            "mooring_manifest_revision_info{source=\"dir\",revision=\"sha256:abc\"} 1",
            "mooring_build_info{version=\"",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        #[cfg(target_os = "linux")]
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
        ] {
            assert!(text.contains(name), "missing {name:?} in\n{text}");
        }
    }

    /// `/status` and `mooring_resource_state` name states alike.
    #[test]
    fn state_names_are_the_status_names() {
        let failure = Failure {
            category: Category::Throttling,
            message: "x".into(),
        };
        for outcome in [
            Outcome::InSync,
            Outcome::Applied,
            Outcome::Held { why: Hold::Observe },
            Outcome::Blocked {
                on: "a".into(),
                why: "b".into(),
            },
            Outcome::Failed { failure },
        ] {
            let json = serde_json::to_value(&outcome).unwrap();
            assert_eq!(json["state"], outcome.state());
            assert!(Outcome::STATES.contains(&outcome.state()));
        }
    }

    /// The stuck alert's gauge: fresh only while every resource's latest check succeeded,
    /// however many passes of other kinds succeed meanwhile.
    #[test]
    fn the_full_pass_gauge_stays_old_while_any_resource_fails() {
        let last = |m: &Metrics| -> f64 {
            let text = m.encode();
            let line = text
                .lines()
                .find(|l| l.starts_with("mooring_last_successful_full_pass_timestamp_seconds "))
                .unwrap_or_else(|| panic!("{text}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        let named = |name: &str, error: Option<Category>| {
            let mut r = report(Action::None, false, error);
            r.resources[0].name = name.into();
            r
        };
        let m = Metrics::new();
        let both = ids(&["api", "web"]);
        // Only one of the two checked: not a full pass yet.
        m.record_pass(&named("api", None), &both, "dir", Duration::ZERO);
        assert_eq!(last(&m), 0.0);
        m.record_pass(&named("web", None), &both, "dir", Duration::ZERO);
        let full = last(&m);
        assert!(full > 0.0);
        // `web` fails; passes that check only `api` (another interval) succeed.
        m.record_pass(
            &named("web", Some(Category::Throttling)),
            &both,
            "dir",
            Duration::ZERO,
        );
        std::thread::sleep(Duration::from_millis(20));
        m.record_pass(&named("api", None), &both, "dir", Duration::ZERO);
        assert_eq!(last(&m), full, "a failing resource keeps the gauge old");
        // Backing off is still failing.
        let mut held = named("web", None);
        held.resources[0].outcome = Outcome::Held { why: Hold::Backoff };
        m.record_pass(&held, &both, "dir", Duration::ZERO);
        assert_eq!(last(&m), full);
        // `web` leaves the set: its series go, and the rest is a full success.
        m.record_pass(&named("api", None), &ids(&["api"]), "dir", Duration::ZERO);
        assert!(last(&m) > full);
        assert!(!m.encode().contains("name=\"web\""));
    }

    /// Scrapers that do not ask for OpenMetrics get the classic format, where every
    /// counter's `# TYPE` names its `_total` samples.
    #[test]
    fn the_classic_format_types_counters_under_their_sample_names() {
        let m = Metrics::new();
        m.record_pass(
            &report(Action::None, false, None),
            &ids(&["api"]),
            "dir",
            Duration::ZERO,
        );
        let (om_type, om) = m.encode_for(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        ));
        assert_eq!(om_type, OPENMETRICS);
        assert!(om.contains("# TYPE mooring_reconciles counter"), "{om}");
        let (classic_type, classic) = m.encode_for(Some("*/*"));
        assert_eq!(classic_type, CLASSIC);
        assert_eq!(m.encode_for(None).0, CLASSIC);
        assert!(
            !classic.contains("# EOF") && !classic.contains("# UNIT"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE mooring_reconciles_total counter"),
            "{classic}"
        );
        assert!(
            classic.contains("# HELP mooring_reconciles_total "),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE mooring_build_info gauge"),
            "{classic}"
        );
        // Every sample belongs to a family its # TYPE line names.
        let typed: HashSet<&str> = classic
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
            .collect();
        for sample in classic.lines().filter(|l| !l.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(f)))
                .unwrap_or(name);
            assert!(typed.contains(family), "{name} has no # TYPE in\n{classic}");
        }
    }

    /// The chart's PrometheusRule (charts/mooring/templates/prometheusrule.yaml) alerts on
    /// series this registry exports, once a pass has filled them; tests/chart.rs checks
    /// the rendered rule's selectors.
    #[test]
    fn the_charts_alert_rules_name_exported_metrics() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/charts/mooring/templates/prometheusrule.yaml"
        );
        let rules = std::fs::read_to_string(path).unwrap();
        let m = Metrics::new();
        m.record_pass(
            &report(Action::Update, false, Some(Category::Throttling)),
            &ids(&["api"]),
            "dir",
            Duration::ZERO,
        );
        m.set_leader(true);
        let text = m.encode_for(None).1;
        let exported: HashSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
            .collect();
        let mut used = Vec::new();
        for expr in rules
            .lines()
            .filter_map(|l| l.trim().strip_prefix("expr: "))
        {
            let mut rest = expr;
            while let Some(i) = rest.find("mooring_") {
                let after = &rest[i..];
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                used.push(after[..end].to_string());
                rest = &after[end..];
            }
        }
        assert!(used.len() >= 4, "is the scan broken? {used:?}");
        for name in &used {
            assert!(
                exported.contains(name.as_str()),
                "the chart alerts on {name}, which mooring does not export: {exported:?}"
            );
        }
        for needed in [
            "mooring_last_successful_full_pass_timestamp_seconds",
            "mooring_resource_state",
            "mooring_resource_drifted",
        ] {
            assert!(used.iter().any(|u| u == needed), "no alert on {needed}");
        }
    }
}
