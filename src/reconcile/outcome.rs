//! What became of each resource in a pass: one [`Outcome`] per resource, the only place that
//! decides what "in sync", "drifted", "blocked" and "failed" mean. The CLI, `/status`,
//! `/metrics` and alerts all render from it.

use serde::Serialize;

use super::{Action, FieldChange, ReconcileError, Rollout};
use crate::aws::ErrorCategory;
use crate::manifest::Kind;

/// Why a failure happened, as a stable label for metrics, status and the error policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// AWS asked us to slow down.
    Throttling,
    /// Something AWS was asked about does not exist.
    NotFound,
    /// The credentials may not do this.
    AccessDenied,
    /// AWS rejected the request's content.
    Validation,
    /// Network, timeout or a 5xx.
    Transient,
    /// Missing region, credentials and the like.
    Configuration,
    /// This replica does not hold the lease: the write was not sent.
    Fenced,
    /// An AWS error of no known category.
    Other,
    /// A lookup (subnets, security groups, account) found nothing usable.
    Resolve,
    /// A resource this one needs is failed, missing or not mooring's.
    Dependency,
    /// AWS accepted the change but still differs afterwards.
    NotConverged,
    /// A deployment failed or did not finish in time.
    Rollout,
    /// The live resource is not this manifest's to change.
    Ownership,
    /// Something apply must not fix is wrong (e.g. a required secret nobody set).
    Requirement,
    /// A change needs a replacement the manifest does not allow.
    Replacement,
}

impl Category {
    /// The label used in metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Throttling => "throttling",
            Category::NotFound => "not_found",
            Category::AccessDenied => "access_denied",
            Category::Validation => "validation",
            Category::Transient => "transient",
            Category::Configuration => "configuration",
            Category::Fenced => "fenced",
            Category::Other => "other",
            Category::Resolve => "resolve",
            Category::Dependency => "dependency",
            Category::NotConverged => "not_converged",
            Category::Rollout => "rollout",
            Category::Ownership => "ownership",
            Category::Requirement => "requirement",
            Category::Replacement => "replacement",
        }
    }

    /// The error policy, the only one: errors that only a manifest change (or a person) can
    /// fix are not retried — a failed apply waits for its manifest to change, and a failed
    /// plan is simply seen again every pass until the cause is gone. Everything else
    /// (throttling, transient network errors, access denied, not converged) backs off
    /// exponentially and is retried.
    pub fn needs_change(self) -> bool {
        matches!(
            self,
            Category::Validation
                | Category::Ownership
                | Category::Requirement
                | Category::Replacement
                | Category::Rollout
                | Category::Configuration
        )
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ErrorCategory> for Category {
    fn from(c: ErrorCategory) -> Category {
        match c {
            ErrorCategory::Throttling => Category::Throttling,
            ErrorCategory::NotFound => Category::NotFound,
            ErrorCategory::AccessDenied => Category::AccessDenied,
            ErrorCategory::Validation => Category::Validation,
            ErrorCategory::Transient => Category::Transient,
            ErrorCategory::Configuration => Category::Configuration,
            ErrorCategory::Fenced => Category::Fenced,
            ErrorCategory::Other => Category::Other,
        }
    }
}

/// An error as reported to people and machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// What kind of failure.
    pub category: Category,
    /// The message.
    pub message: String,
}

impl From<&ReconcileError> for Failure {
    fn from(e: &ReconcileError) -> Self {
        Failure {
            category: e.category(),
            message: e.to_string(),
        }
    }
}

/// Why a resource that differs was left as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// Observe mode (global or the resource's annotation).
    Observe,
    /// The resource's manifest pauses it.
    Paused,
    /// It failed recently and waits for its backoff (or for its manifest to change).
    Backoff,
    /// This replica does not hold the lease.
    Standby,
    /// The daemon is shutting down.
    Stopping,
    /// The command only plans.
    Plan,
}

impl Hold {
    /// The words alerts and status use.
    pub fn describe(self) -> &'static str {
        match self {
            Hold::Observe => "observe mode",
            Hold::Paused => "paused",
            Hold::Backoff => "backing off after a failure",
            Hold::Standby => "this replica is on standby",
            Hold::Stopping => "shutting down",
            Hold::Plan => "plan only",
        }
    }
}

/// What became of one resource in a pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Outcome {
    /// Live matches the manifest.
    InSync,
    /// mooring changed it and AWS took the changes.
    Applied,
    /// It differs and was left as it is.
    Held {
        /// Why.
        why: Hold,
    },
    /// Not applied: a resource it needs is failed, missing or not mooring's.
    Blocked {
        /// `Kind/name` of that resource.
        on: String,
        /// What is wrong with it.
        why: String,
    },
    /// Planning or applying failed.
    Failed {
        /// The error.
        failure: Failure,
    },
}

impl Outcome {
    /// Every state an outcome can be in, as [`Outcome::state`] names them.
    pub const STATES: [&'static str; 5] = ["in_sync", "applied", "held", "blocked", "failed"];

    /// The state's name, as `/status` shows it.
    pub fn state(&self) -> &'static str {
        match self {
            Outcome::InSync => "in_sync",
            Outcome::Applied => "applied",
            Outcome::Held { .. } => "held",
            Outcome::Blocked { .. } => "blocked",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// What one pass found and did for one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceReport {
    /// The kind.
    pub kind: Kind,
    /// The manifest's name.
    pub name: String,
    /// The AWS identity (ARN or name).
    pub aws_id: String,
    /// What the plan said.
    pub action: Action,
    /// Fields that differed, live → desired.
    pub changes: Vec<FieldChange>,
    /// True when apply ran for this resource and AWS took its changes (a resource can be
    /// applied and still fail: its fixable changes go in, a requirement stays unmet).
    pub applied: bool,
    /// The service rollout, when there is one.
    pub rollout: Option<Rollout>,
    /// The outcome.
    pub outcome: Outcome,
}

impl ResourceReport {
    /// The error, when planning or applying failed or a dependency blocked it.
    pub fn error(&self) -> Option<Failure> {
        match &self.outcome {
            Outcome::Failed { failure } => Some(failure.clone()),
            Outcome::Blocked { on, why } => Some(Failure {
                category: Category::Dependency,
                message: format!("not applied: {on} {why}"),
            }),
            _ => None,
        }
    }

    /// True when live differs from the manifest and this pass did not correct it: the one
    /// definition of drift that status, metrics, alerts and the CLI share.
    pub fn drifted(&self) -> bool {
        self.action != Action::None && !self.applied
    }

    /// True when a difference with the manifest was seen: drift left in place, or an
    /// existing resource corrected (creating a missing resource for the first time is a
    /// deploy, not drift).
    pub fn saw_drift(&self) -> bool {
        self.drifted() || matches!(self.action, Action::Update | Action::Replace)
    }

    /// `Kind/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

impl Serialize for ResourceReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Shown<'a> {
            kind: Kind,
            name: &'a str,
            aws_id: &'a str,
            action: Action,
            changes: &'a [FieldChange],
            applied: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            rollout: Option<&'a Rollout>,
            outcome: &'a Outcome,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<Failure>,
        }
        Shown {
            kind: self.kind,
            name: &self.name,
            aws_id: &self.aws_id,
            action: self.action,
            changes: &self.changes,
            applied: self.applied,
            rollout: self.rollout.as_ref(),
            outcome: &self.outcome,
            error: self.error(),
        }
        .serialize(s)
    }
}

/// The outcome of a plan or apply over a whole manifest set.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PassReport {
    /// Revision of the manifest set.
    pub revision: String,
    /// The account and region (filled by the caller that asked AWS; absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<crate::aws::identity::Target>,
    /// One entry per resource, in dependency order.
    pub resources: Vec<ResourceReport>,
    /// AWS calls made, `Service.Operation` → count (filled by the caller that owns the
    /// clients; empty otherwise).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub aws_calls: std::collections::BTreeMap<String, u64>,
    /// AWS calls of the plan per kind, kind → count (a read shared by several kinds counts
    /// for the first that made it; filled by `plan`, empty otherwise).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub aws_calls_by_kind: std::collections::BTreeMap<String, u64>,
    /// Seconds each kind's check (its reads and diff) took in the pass, kind → seconds.
    #[serde(skip)]
    pub check_seconds_by_kind: std::collections::BTreeMap<String, f64>,
}

impl PassReport {
    /// True when any resource needs a change.
    pub fn has_changes(&self) -> bool {
        self.resources.iter().any(|r| r.action != Action::None)
    }

    /// True when any resource failed or was blocked.
    pub fn has_errors(&self) -> bool {
        self.resources.iter().any(|r| r.error().is_some())
    }
}
