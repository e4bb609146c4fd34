//! The reconcile core: plan (observe + diff) and apply, kind by kind in dependency order.
//! The engine knows nothing about ECS; each kind plugs in through [`Reconciler`], which
//! [`crate::kinds::Typed`] implements once for every kind.

pub mod cache;
pub mod daemon;
pub mod diff;
pub mod engine;
#[cfg(test)]
mod engine_tests;
pub mod leadership;
pub mod outcome;
pub mod watch;

use serde::Serialize;

use crate::aws::AwsError;
use crate::manifest::{Kind, ManifestSet};

pub use cache::PassCache;
pub use diff::FieldChange;
pub use engine::{
    ApplyPolicy, Gates, PlanCheck, Refused, apply_all, apply_checked, apply_selected, plan_all,
    report_plan, verify_converged,
};
pub use outcome::{Category, Failure, Hold, Outcome, PassReport, ResourceReport};

/// What apply has to do with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// It does not exist yet.
    Create,
    /// It exists and some fields differ.
    Update,
    /// Some fields that differ cannot change in place: it has to be deleted and created
    /// again. Apply does that only when the manifest allows replacement.
    Replace,
    /// Live matches the manifest.
    None,
}

/// The state of a service's deployment, as ECS reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// `COMPLETED`, `IN_PROGRESS` or `FAILED` (of the primary deployment).
    pub state: String,
    /// Why, as ECS puts it.
    pub reason: Option<String>,
    /// Tasks running.
    pub running: i32,
    /// Tasks wanted.
    pub desired: i32,
    /// Tasks starting.
    pub pending: i32,
    /// Deployments still active (more than one means a rollout is under way).
    pub deployments: usize,
    /// Task definition ARN of the primary deployment.
    pub task_definition: Option<String>,
}

impl Rollout {
    /// True when the primary deployment finished and nothing else is running.
    pub fn is_complete(&self) -> bool {
        self.state == "COMPLETED" && self.deployments <= 1 && self.running >= self.desired
    }

    /// True when ECS gave up on the deployment (circuit breaker).
    pub fn is_failed(&self) -> bool {
        self.state == "FAILED"
    }
}

/// What plan found for one resource.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePlan {
    /// The kind.
    pub kind: Kind,
    /// The manifest's name.
    pub name: String,
    /// How AWS names it (an ARN when it exists, else the name it will get).
    pub aws_id: String,
    /// What apply would do.
    pub action: Action,
    /// Fields that differ, live → desired.
    pub changes: Vec<FieldChange>,
    /// The current rollout, for services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// What is wrong and cannot be fixed by apply (e.g. a required parameter nobody has
    /// set, a replacement the manifest does not allow). The resource's fixable changes are
    /// still applied; the resource then counts as failed, and resources that depend on it
    /// are not applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// A resource's plan, handed back to its reconciler by apply (which kept what it observed,
/// so apply does not read everything again).
#[derive(Clone)]
pub struct Planned {
    /// The plan.
    pub plan: ResourcePlan,
    /// The plan as its own reads showed it, when it was in sync and only what it takes
    /// from a dependency's planned changes made it change ([`Reconciler::follow`]): apply
    /// goes back to it when that dependency was not applied.
    pub unfollowed: Option<Box<ResourcePlan>>,
}

/// What apply did to one resource.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// The resource's ARN or name after apply.
    pub aws_id: String,
    /// The rollout after apply, for services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

/// Something about a resource that apply must not or cannot fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// [`Category::Requirement`] or [`Category::Replacement`].
    pub category: Category,
    /// What is wrong, for people.
    pub message: String,
}

impl Problem {
    /// An unmet requirement (e.g. a required secret nobody set).
    pub fn requirement(message: impl Into<String>) -> Problem {
        Problem {
            category: Category::Requirement,
            message: message.into(),
        }
    }

    /// A replacement the manifest does not allow.
    pub fn replacement(message: impl Into<String>) -> Problem {
        Problem {
            category: Category::Replacement,
            message: message.into(),
        }
    }
}

/// Why a reconcile step failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReconcileError {
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// A lookup (subnets, security groups, account) found nothing usable.
    #[error("failed to resolve {what}: {message}")]
    Resolve {
        /// What was looked up.
        what: String,
        /// Why it failed.
        message: String,
    },
    /// A resource this one needs is not ready (created later in this apply, or failed).
    #[error("not applied: {0} is not ready")]
    Dependency(String),
    /// AWS accepted the change but the live state still differs afterwards.
    #[error("failed to converge: {0}")]
    NotConverged(String),
    /// The deployment failed (circuit breaker) or did not finish in time.
    #[error("failed to roll out: {0}")]
    Rollout(String),
    /// The live resource is not mooring's to change.
    #[error("not managed: {0}")]
    Ownership(String),
    /// Something apply must not or cannot fix is wrong (see [`ResourcePlan::problems`]).
    #[error("{}", .0.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; "))]
    Problems(Vec<Problem>),
    /// Deleting it was refused on purpose: it holds data its manifest said to keep (an ECR
    /// repository with `deletionPolicy: retain`). Prune reports it as retained.
    #[error("retained: {0}")]
    Retained(String),
}

impl ReconcileError {
    /// An unmet requirement, e.g. a secret nobody has set.
    pub fn requirement(message: impl Into<String>) -> ReconcileError {
        ReconcileError::Problems(vec![Problem::requirement(message)])
    }

    /// What kind of failure this is.
    pub fn category(&self) -> Category {
        match self {
            ReconcileError::Aws(e) => e.category.into(),
            ReconcileError::Resolve { .. } => Category::Resolve,
            ReconcileError::Dependency(_) => Category::Dependency,
            ReconcileError::NotConverged(_) => Category::NotConverged,
            ReconcileError::Rollout(_) => Category::Rollout,
            ReconcileError::Ownership(_) => Category::Ownership,
            ReconcileError::Retained(_) => Category::Requirement,
            ReconcileError::Problems(p) => p
                .iter()
                .map(|p| p.category)
                .find(|c| *c == Category::Replacement)
                .unwrap_or(Category::Requirement),
        }
    }
}

/// Shared state of reconcile passes: the AWS clients and what outlives a pass.
pub struct Context {
    /// AWS clients.
    pub aws: crate::aws::Aws,
    /// Each kind's own state across passes (e.g. ECS task definitions by ARN).
    pub states: crate::kinds::KindStates,
    /// How long `apply` waits for service rollouts (`None`: do not wait).
    pub rollout_wait: Option<std::time::Duration>,
    /// How often a rollout is polled while waiting.
    pub rollout_poll: std::time::Duration,
    /// Called just before a resource is applied (the daemon marks it `applying`).
    pub on_apply: Option<ApplyHook>,
    /// Called while apply waits for a service's rollout, each time what ECS reports
    /// changes (`apply --wait` prints it).
    pub on_rollout: Option<RolloutHook>,
}

/// A callback told a service's manifest name, its rollout, and how long apply has waited.
pub type RolloutHook = std::sync::Arc<dyn Fn(&str, &Rollout, std::time::Duration) + Send + Sync>;

/// A callback told which resource (`kind`, name) is about to be applied.
pub type ApplyHook = std::sync::Arc<dyn Fn(Kind, &str) + Send + Sync>;

impl Context {
    /// A context with empty state.
    pub fn new(aws: crate::aws::Aws) -> Context {
        Context {
            aws,
            states: Default::default(),
            rollout_wait: None,
            rollout_poll: std::time::Duration::from_secs(5),
            on_apply: None,
            on_rollout: None,
        }
    }
}

/// What a kind sees during one round of a pass: the clients and lasting state, the
/// manifest set, and the reads shared by every kind this round.
#[derive(Clone, Copy)]
pub struct Cx<'a> {
    /// Clients and state that outlive the pass.
    pub ctx: &'a Context,
    /// The manifests.
    pub set: &'a ManifestSet,
    /// Reads shared this round.
    pub cache: &'a PassCache,
}

impl<'a> Cx<'a> {
    /// The AWS clients.
    pub fn aws(&self) -> &'a crate::aws::Aws {
        &self.ctx.aws
    }
}

/// One kind's reconcile logic over all of that kind's manifests at once (so reads can be
/// batched), as the engine sees it. Every kind gets it from [`crate::kinds::Typed`].
#[async_trait::async_trait]
pub trait Reconciler: Send + Sync {
    /// The kind this reconciler handles.
    fn kind(&self) -> Kind;

    /// Observes every resource of the kind and diffs it against its manifest. Reads only.
    /// One entry per manifest, named; a failed read fails only the resources it concerns.
    async fn plan(&self, cx: &Cx<'_>) -> Vec<(String, Result<Planned, ReconcileError>)>;

    /// Makes one resource match its manifest. Idempotent: safe to run again after any
    /// interruption.
    async fn apply(&self, cx: &Cx<'_>, planned: &Planned) -> Result<Applied, ReconcileError>;

    /// A fingerprint (`sha256:…`) of the live document the last plan observed for the
    /// resource `name` (of `null` when it did not exist); `None` when it was not planned.
    /// A saved plan keeps it to tell when live state moved since.
    fn live_fingerprint(&self, _name: &str) -> Option<String> {
        None
    }

    /// The manifests the resource `name` of this kind depends on (`Kind`, name).
    fn dependencies(&self, set: &ManifestSet, name: &str) -> Vec<(Kind, String)>;

    /// `planned` with the changes the resource takes once `deps` (the plans of resources
    /// it depends on that change) are applied, where its own reads cannot show them: a
    /// service rolls on a new version of a parameter it reads. `None` when nothing follows.
    /// Apply plans the resource again from fresh reads after those dependencies, so these
    /// changes are shown (and checked by a saved plan), never applied as such.
    fn follow(
        &self,
        _set: &ManifestSet,
        _planned: &Planned,
        _deps: &[&ResourcePlan],
    ) -> Option<Planned> {
        None
    }

    /// Every live resource of this kind that carries this stack's ownership tags, whatever
    /// manifest it names; `None` when the kind cannot list them (not pruned).
    async fn owned(&self, _cx: &Cx<'_>) -> Option<Result<Vec<Owned>, ReconcileError>> {
        None
    }

    /// Deletes a resource [`Reconciler::owned`] found (pruning). Only called for
    /// resources whose ownership tag names a manifest that is no longer in the set.
    async fn delete(&self, _cx: &Cx<'_>, owned: &Owned) -> Result<(), ReconcileError> {
        Err(ReconcileError::NotConverged(format!(
            "pruning is not supported for {}",
            owned.aws_id
        )))
    }
}

/// A live resource that carries this stack's ownership tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    /// The manifest name its `mooring.dev/resource` tag names.
    pub name: String,
    /// Its ARN or ID.
    pub aws_id: String,
    /// Where it lives, when deleting needs it (a service's cluster).
    pub scope: Option<String>,
}

impl Owned {
    /// This stack's resource of `kind` by its tags, as prune lists it: `aws_id` its ARN,
    /// `scope` its AWS name when deleting needs it. `None` when the tags name another
    /// stack or environment, another kind or nothing.
    pub fn by_tags<'a>(
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
        stack: crate::kinds::ownership::Owner<'_>,
        kind: Kind,
        aws_id: &str,
        scope: Option<&str>,
    ) -> Option<Owned> {
        let name = crate::kinds::ownership::Ownership::from_tags(tags).name_in(stack, kind)?;
        Some(Owned {
            name,
            aws_id: aws_id.to_string(),
            scope: scope.map(str::to_string),
        })
    }

    /// Its AWS name: `scope`, or what follows `marker` in its ARN (`:log-group:`,
    /// `:alarm:`, `:repository/`), without a log group ARN's `:*`.
    pub fn aws_name(&self, marker: &str) -> String {
        self.scope.clone().unwrap_or_else(|| {
            self.aws_id
                .rsplit_once(marker)
                .map(|(_, n)| n.trim_end_matches(":*").to_string())
                .unwrap_or_default()
        })
    }
}
