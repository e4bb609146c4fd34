//! mooring: a GitOps reconciling operator for AWS container stacks.
//!
//! Manifests (`manifest`) describe the desired state; each AWS kind (`kinds`) observes,
//! diffs and applies its resources; the core (`reconcile`) runs passes in dependency order;
//! `status` serves what the daemon knows; `aws` builds clients and classifies errors; `source`
//! fetches manifests from a git branch.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alerts;
pub mod aws;
pub mod cli;
pub mod config;
pub mod deploys;
pub mod events;
pub mod iam;
pub mod import;
pub mod kinds;
pub mod lease;
pub mod manifest;
pub mod metrics;
pub mod planfile;
pub mod promote;
pub mod reconcile;
pub mod source;
pub mod status;
pub mod webhook;
