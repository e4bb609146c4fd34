//! The reconcile core: plan (observe + diff) and apply, kind by kind in dependency order.
//! The engine knows nothing about ECS; each kind plugs in through [`Reconciler`].

pub mod daemon;
pub mod diff;
pub mod engine;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::aws::{AwsError, ErrorCategory};
use crate::manifest::Kind;

pub use diff::FieldChange;
pub use engine::{
    ApplyPolicy, ErrorReport, PassReport, ResourceReport, apply_all, apply_selected, plan_all,
    report_plan, verify_converged,
};

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
    /// set). The resource's fixable changes are still applied; the resource then counts as
    /// failed, and resources that depend on it are not applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A plan plus what the kind observed, handed back to it by apply so that apply does not
/// read everything again.
pub struct Planned {
    /// The plan.
    pub plan: ResourcePlan,
    /// Kind-private observations.
    pub observed: Box<dyn Any + Send + Sync>,
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
    /// A resource this one needs failed earlier in the pass.
    #[error("not applied: {0} failed earlier in this pass")]
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
    #[error("{}", .0.join("; "))]
    Requirement(Vec<String>),
}

impl ReconcileError {
    /// A stable label for metrics and status.
    pub fn category(&self) -> &'static str {
        match self {
            ReconcileError::Aws(e) => e.category.as_str(),
            ReconcileError::Resolve { .. } => "resolve",
            ReconcileError::Dependency(_) => "dependency",
            ReconcileError::NotConverged(_) => "not_converged",
            ReconcileError::Rollout(_) => "rollout",
            ReconcileError::Requirement(_) => "requirement",
            ReconcileError::Ownership(_) => "ownership",
        }
    }

    /// True when trying again later may succeed without a manifest change.
    pub fn is_transient(&self) -> bool {
        matches!(self, ReconcileError::Aws(e) if matches!(e.category, ErrorCategory::Throttling | ErrorCategory::Transient))
    }
}

/// Shared state of reconcile passes: the AWS clients and caches that outlive a pass.
pub struct Context {
    /// AWS clients.
    pub aws: crate::aws::Aws,
    /// Task definitions by ARN. Revisions are immutable, so entries never go stale.
    pub task_definitions: Mutex<HashMap<String, Arc<aws_sdk_ecs::types::TaskDefinition>>>,
    /// How long `apply` waits for service rollouts (`None`: do not wait).
    pub rollout_wait: Option<std::time::Duration>,
    /// How often a rollout is polled while waiting.
    pub rollout_poll: std::time::Duration,
    /// Called just before a resource is applied (the daemon marks it `applying`).
    pub on_apply: Option<ApplyHook>,
    /// Task definition revisions whose deployment failed (circuit breaker): not deployed
    /// again, so a daemon does not roll broken tasks out every interval.
    pub failed_revisions: Mutex<std::collections::HashSet<String>>,
}

/// A callback told which resource (`kind`, name) is about to be applied.
pub type ApplyHook = Arc<dyn Fn(Kind, &str) + Send + Sync>;

impl Context {
    /// A context with empty caches.
    pub fn new(aws: crate::aws::Aws) -> Context {
        Context {
            aws,
            task_definitions: Mutex::default(),
            rollout_wait: None,
            rollout_poll: std::time::Duration::from_secs(5),
            on_apply: None,
            failed_revisions: Mutex::default(),
        }
    }
}

/// One kind's reconcile logic, over all of that kind's manifests at once (so reads can be
/// batched).
#[async_trait::async_trait]
pub trait Reconciler: Send + Sync {
    /// The kind this reconciler handles.
    fn kind(&self) -> Kind;

    /// Observes every resource of the kind and diffs it against its manifest. Reads only.
    /// One entry per manifest, named; a failed read fails only the resources it concerns.
    async fn plan(&self, ctx: &Context) -> Vec<(String, Result<Planned, ReconcileError>)>;

    /// Makes one resource match its manifest. Idempotent: safe to run again after any
    /// interruption.
    async fn apply(&self, ctx: &Context, planned: &Planned) -> Result<Applied, ReconcileError>;

    /// The manifests another resource of this kind depends on (`Kind`, name).
    fn dependencies(&self, name: &str) -> Vec<(Kind, String)>;

    /// Every live resource of this kind that carries mooring's ownership tag, whatever
    /// manifest it names; `None` when the kind cannot list them (pruning is not supported
    /// for it).
    async fn owned(&self, _ctx: &Context) -> Option<Result<Vec<Owned>, ReconcileError>> {
        None
    }

    /// Deletes a resource [`Reconciler::owned`] found (pruning). Only called for
    /// resources whose ownership tag names a manifest that is no longer in the set.
    async fn delete(&self, _ctx: &Context, owned: &Owned) -> Result<(), ReconcileError> {
        Err(ReconcileError::NotConverged(format!(
            "pruning is not supported for {}",
            owned.aws_id
        )))
    }
}

/// A live resource that carries mooring's ownership tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    /// The manifest name its `mooring.dev/resource` tag names.
    pub name: String,
    /// Its ARN or ID.
    pub aws_id: String,
    /// Where it lives, when deleting needs it (a service's cluster).
    pub scope: Option<String>,
}
