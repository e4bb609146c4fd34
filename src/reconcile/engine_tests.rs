//! The engine on its own, with fake kinds: no AWS, only what the engine decides.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::engine::{Gates, apply_selected};
use super::{
    Action, Applied, Context, Cx, Hold, Outcome, PassReport, Planned, Problem, ReconcileError,
    Reconciler, ResourcePlan,
};
use crate::manifest::{Kind, ManifestSet, Metadata};

/// What a fake resource looks like this pass.
#[derive(Clone)]
enum Fake {
    InSync,
    Differs,
    Missing,
    Replace,
    PlanFails,
    ApplyFails,
    Requirement,
}

/// The fake resources of a kind by name.
type States = Arc<Mutex<HashMap<String, Fake>>>;

/// A fake kind: each named resource behaves as `states` says; applies are recorded.
struct FakeKind {
    kind: Kind,
    states: Arc<Mutex<HashMap<String, Fake>>>,
    deps: HashMap<String, Vec<(Kind, String)>>,
    applied: Arc<Mutex<Vec<String>>>,
    /// What an apply of this kind does to other resources (a value they read `from:` it
    /// changes): their states, and what each named one becomes.
    effects: Option<(States, HashMap<String, Fake>)>,
    /// How many times the kind was planned.
    plans: Arc<Mutex<usize>>,
}

#[async_trait::async_trait]
impl Reconciler for FakeKind {
    fn kind(&self) -> Kind {
        self.kind
    }

    async fn plan(&self, _cx: &Cx<'_>) -> Vec<(String, Result<Planned, ReconcileError>)> {
        *self.plans.lock().unwrap() += 1;
        let states = self.states.lock().unwrap().clone();
        let mut names: Vec<_> = states.keys().cloned().collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let state = states[&name].clone();
                let action = match state {
                    Fake::InSync => Action::None,
                    Fake::Missing => Action::Create,
                    Fake::Replace => Action::Replace,
                    _ => Action::Update,
                };
                let problems = match state {
                    Fake::Requirement => vec![Problem::requirement("a secret is missing")],
                    _ => Vec::new(),
                };
                let planned = match state {
                    Fake::PlanFails => Err(ReconcileError::NotConverged("read failed".into())),
                    _ => Ok(Planned {
                        unfollowed: None,
                        plan: ResourcePlan {
                            kind: self.kind,
                            name: name.clone(),
                            aws_id: format!("id-{name}"),
                            action,
                            changes: Vec::new(),
                            rollout: None,
                            problems,
                        },
                    }),
                };
                (name, planned)
            })
            .collect()
    }

    async fn apply(&self, _cx: &Cx<'_>, planned: &Planned) -> Result<Applied, ReconcileError> {
        let name = planned.plan.name.clone();
        self.applied
            .lock()
            .unwrap()
            .push(format!("{}/{name}", self.kind));
        let mut states = self.states.lock().unwrap();
        if matches!(states.get(&name), Some(Fake::ApplyFails)) {
            return Err(ReconcileError::NotConverged("AWS said no".into()));
        }
        states.insert(name.clone(), Fake::InSync);
        if let Some((others, becomes)) = &self.effects {
            others.lock().unwrap().extend(becomes.clone());
        }
        Ok(Applied {
            aws_id: format!("id-{name}"),
            rollout: None,
        })
    }

    fn dependencies(&self, _set: &ManifestSet, name: &str) -> Vec<(Kind, String)> {
        self.deps.get(name).cloned().unwrap_or_default()
    }
}

struct World {
    clusters: Arc<Mutex<HashMap<String, Fake>>>,
    services: Arc<Mutex<HashMap<String, Fake>>>,
    applied: Arc<Mutex<Vec<String>>>,
    /// What services become when a cluster is applied.
    refreshed: HashMap<String, Fake>,
    /// How many times services were planned.
    service_plans: Arc<Mutex<usize>>,
}

impl World {
    fn new(cluster: Fake, service: Fake) -> World {
        World {
            clusters: Arc::new(Mutex::new(HashMap::from([("prd".to_string(), cluster)]))),
            services: Arc::new(Mutex::new(HashMap::from([("api".to_string(), service)]))),
            applied: Arc::default(),
            refreshed: HashMap::new(),
            service_plans: Arc::default(),
        }
    }

    /// The kinds due this pass: clusters and services, or only services (a per-kind
    /// interval where only the service timer fired).
    fn reconcilers(&self, with_clusters: bool) -> Vec<Box<dyn Reconciler>> {
        let mut out: Vec<Box<dyn Reconciler>> = Vec::new();
        if with_clusters {
            out.push(Box::new(FakeKind {
                kind: Kind::Cluster,
                states: self.clusters.clone(),
                deps: HashMap::new(),
                applied: self.applied.clone(),
                effects: Some((self.services.clone(), self.refreshed.clone())),
                plans: Arc::default(),
            }));
        }
        out.push(Box::new(FakeKind {
            kind: Kind::Service,
            states: self.services.clone(),
            deps: ["api", "worker"]
                .map(|s| (s.to_string(), vec![(Kind::Cluster, "prd".to_string())]))
                .into(),
            applied: self.applied.clone(),
            effects: None,
            plans: self.service_plans.clone(),
        }));
        out
    }

    fn applied(&self) -> Vec<String> {
        std::mem::take(&mut *self.applied.lock().unwrap())
    }
}

fn set() -> ManifestSet {
    let meta = |name: &str| Metadata {
        name: name.into(),
        labels: Default::default(),
        annotations: Default::default(),
    };
    let mut set = ManifestSet {
        stack: "test".into(),
        revision: "r1".into(),
        ..Default::default()
    };
    set.clusters.push(crate::manifest::Manifest {
        metadata: meta("prd"),
        spec: Default::default(),
        origin: crate::manifest::Origin {
            file: "c.yaml".into(),
            line: 1,
        },
    });
    set
}

async fn context() -> Context {
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("eu-west-1"))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    Context::new(crate::aws::Aws::from_config(&config).unwrap())
}

fn outcome(report: &PassReport, kind: Kind) -> &Outcome {
    &report
        .resources
        .iter()
        .find(|r| r.kind == kind)
        .unwrap()
        .outcome
}

#[tokio::test]
async fn a_resource_is_not_applied_while_its_dependency_failed_even_in_a_later_pass() {
    let ctx = context().await;
    let set = set();
    let world = World::new(Fake::ApplyFails, Fake::Differs);
    let mut gates = Gates::default();
    let apply = |_: Kind, _: &str| None;
    let report = apply_selected(&ctx, &set, &world.reconcilers(true), &apply, &mut gates).await;
    assert_eq!(world.applied(), ["Cluster/prd"]);
    assert!(matches!(
        outcome(&report, Kind::Cluster),
        Outcome::Failed { .. }
    ));
    assert!(
        matches!(outcome(&report, Kind::Service), Outcome::Blocked { on, .. } if on == "Cluster/prd"),
        "{report:#?}"
    );
    // The next pass checks only services (their own interval): the cluster's failure still
    // holds them back.
    let report = apply_selected(&ctx, &set, &world.reconcilers(false), &apply, &mut gates).await;
    assert!(
        world.applied().is_empty(),
        "nothing applied while the cluster is failed"
    );
    assert!(matches!(
        outcome(&report, Kind::Service),
        Outcome::Blocked { .. }
    ));
    // The cluster is fixed and checked: the service follows.
    *world.clusters.lock().unwrap().get_mut("prd").unwrap() = Fake::Differs;
    let report = apply_selected(&ctx, &set, &world.reconcilers(true), &apply, &mut gates).await;
    assert_eq!(world.applied(), ["Cluster/prd", "Service/api"]);
    assert_eq!(outcome(&report, Kind::Service), &Outcome::Applied);
}

#[tokio::test]
async fn a_dependency_never_checked_or_refused_at_plan_blocks_its_dependents() {
    let ctx = context().await;
    let set = set();
    let world = World::new(Fake::PlanFails, Fake::Differs);
    let apply = |_: Kind, _: &str| None;
    // Only services are due and the cluster was never checked.
    let mut gates = Gates::default();
    let report = apply_selected(&ctx, &set, &world.reconcilers(false), &apply, &mut gates).await;
    assert!(
        matches!(outcome(&report, Kind::Service), Outcome::Blocked { why, .. } if why.contains("not been checked")),
        "{report:#?}"
    );
    let report = apply_selected(&ctx, &set, &world.reconcilers(true), &apply, &mut gates).await;
    assert!(world.applied().is_empty());
    assert!(
        matches!(outcome(&report, Kind::Service), Outcome::Blocked { why, .. } if why.contains("read failed"))
    );
    // A requirement problem blocks dependents too, after its fixable part is applied.
    *world.clusters.lock().unwrap().get_mut("prd").unwrap() = Fake::Requirement;
    let report = apply_selected(&ctx, &set, &world.reconcilers(true), &apply, &mut gates).await;
    assert_eq!(world.applied(), ["Cluster/prd"]);
    assert!(report.resources[0].applied);
    assert!(matches!(
        outcome(&report, Kind::Cluster),
        Outcome::Failed { .. }
    ));
    assert!(matches!(
        outcome(&report, Kind::Service),
        Outcome::Blocked { .. }
    ));
}

#[tokio::test]
async fn held_resources_are_reported_not_applied_and_a_missing_one_blocks_dependents() {
    let ctx = context().await;
    let set = set();
    let world = World::new(Fake::Missing, Fake::Differs);
    let mut gates = Gates::default();
    let observe_cluster = |k: Kind, _: &str| (k == Kind::Cluster).then_some(Hold::Observe);
    let report = apply_selected(
        &ctx,
        &set,
        &world.reconcilers(true),
        &observe_cluster,
        &mut gates,
    )
    .await;
    assert!(world.applied().is_empty());
    let cluster = &report.resources[0];
    assert_eq!(cluster.outcome, Outcome::Held { why: Hold::Observe });
    assert!(cluster.drifted(), "a missing resource left alone is drift");
    assert!(
        matches!(outcome(&report, Kind::Service), Outcome::Blocked { why, .. } if why.contains("does not exist"))
    );
    // A cluster that exists but differs, held: its dependents may go on.
    *world.clusters.lock().unwrap().get_mut("prd").unwrap() = Fake::Differs;
    let report = apply_selected(
        &ctx,
        &set,
        &world.reconcilers(true),
        &observe_cluster,
        &mut gates,
    )
    .await;
    assert_eq!(world.applied(), ["Service/api"]);
    assert_eq!(outcome(&report, Kind::Service), &Outcome::Applied);
    let standby = |_: Kind, _: &str| Some(Hold::Standby);
    *world.services.lock().unwrap().get_mut("api").unwrap() = Fake::Differs;
    let report = apply_selected(&ctx, &set, &world.reconcilers(true), &standby, &mut gates).await;
    assert!(world.applied().is_empty());
    assert_eq!(
        outcome(&report, Kind::Service),
        &Outcome::Held { why: Hold::Standby }
    );
}

#[tokio::test]
async fn a_replacement_runs_one_more_round_for_the_resources_that_follow_it() {
    let ctx = context().await;
    let set = set();
    let world = World::new(Fake::Replace, Fake::InSync);
    let mut gates = Gates::default();
    let apply = |_: Kind, _: &str| None;
    let report = apply_selected(&ctx, &set, &world.reconcilers(true), &apply, &mut gates).await;
    // Round one replaces the cluster; round two plans everything again (the service is in
    // sync by then, so nothing more is applied).
    assert_eq!(world.applied(), ["Cluster/prd"]);
    let cluster = &report.resources[0];
    assert!(cluster.applied);
    assert_eq!(cluster.action, Action::Replace);
    assert_eq!(outcome(&report, Kind::Service), &Outcome::InSync);
    // Converged: the next pass has nothing to do.
    let report = apply_selected(&ctx, &set, &world.reconcilers(true), &apply, &mut gates).await;
    assert!(!report.has_changes());
    assert!(world.applied().is_empty());
}

/// A resource whose dependency was applied earlier in the round (a value it reads `from:`
/// it, a parameter's version) is planned again from fresh reads, and applied in the same
/// round when that changed it; without an apply before it, its plan stands.
#[tokio::test]
async fn a_reader_is_planned_again_after_its_source_is_applied_in_the_round() {
    let ctx = context().await;
    let set = set();
    let apply = |_: Kind, _: &str| None;
    let mut world = World::new(Fake::Missing, Fake::InSync);
    world.refreshed = HashMap::from([("api".to_string(), Fake::Differs)]);
    let report = apply_selected(
        &ctx,
        &set,
        &world.reconcilers(true),
        &apply,
        &mut Gates::default(),
    )
    .await;
    assert_eq!(world.applied(), ["Cluster/prd", "Service/api"]);
    let service = report
        .resources
        .iter()
        .find(|r| r.kind == Kind::Service)
        .unwrap();
    assert!(
        service.applied && service.action == Action::Update,
        "{report:#?}"
    );
    assert_eq!(*world.service_plans.lock().unwrap(), 2);

    // Two readers of the cluster: their kind is planned again once, not once each.
    let mut world = World::new(Fake::Missing, Fake::InSync);
    world
        .services
        .lock()
        .unwrap()
        .insert("worker".into(), Fake::InSync);
    world.refreshed = ["api", "worker"]
        .map(|s| (s.to_string(), Fake::Differs))
        .into();
    apply_selected(
        &ctx,
        &set,
        &world.reconcilers(true),
        &apply,
        &mut Gates::default(),
    )
    .await;
    assert_eq!(
        world.applied(),
        ["Cluster/prd", "Service/api", "Service/worker"]
    );
    assert_eq!(*world.service_plans.lock().unwrap(), 2);

    let mut world = World::new(Fake::InSync, Fake::InSync);
    world.refreshed = HashMap::from([("api".to_string(), Fake::Differs)]);
    apply_selected(
        &ctx,
        &set,
        &world.reconcilers(true),
        &apply,
        &mut Gates::default(),
    )
    .await;
    assert!(
        world.applied().is_empty(),
        "nothing applied before it: not planned again"
    );
    assert_eq!(*world.service_plans.lock().unwrap(), 1);
}
