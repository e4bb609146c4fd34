//! ECS services on Fargate, with their task definitions (`kind: Service`).
//!
//! The baseline for comparing is the task definition the service *runs*, not the newest
//! revision of its family. A new revision is registered only when the manifest's content
//! differs from it, and then only if none of the family's five newest revisions already
//! matches (which makes a re-run after an interrupted apply register nothing, and a
//! service moved to another revision by hand go back to the one it ran).
//!
//! Reads: one DescribeServices per cluster and 10 services, one DescribeParameters per 50
//! SSM parameters and one DescribeSecret per secret that no ParameterSet declares, and a
//! DescribeTaskDefinition per revision not seen before (kept in [`State`] across passes).
//! Subnets, security groups, target groups and ECR repositories come from the pass cache,
//! and so do the digests of images followed by digest (one BatchGetImage per repository,
//! [`image`]) and the versions of parameters a ParameterSet declares (its path listing).
//! The versions of the secrets a service reads (metadata, never values) ride in the
//! environment variable `MOORING_SECRETS_VERSION`, so a new version is a new revision.

pub mod follow;
pub mod image;
pub mod predeploy;
pub mod render;
pub mod spec;
pub mod verify;

#[cfg(test)]
mod mock_tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ecs::operation::describe_services::DescribeServicesError;
use aws_sdk_ecs::types::{
    Compatibility, DeploymentRolloutState, LaunchType, NetworkMode, Service, ServiceField,
    TaskDefinition, TaskDefinitionField,
};
use tracing::{debug, info, warn};

use self::render::{Doc, LoadBalancerDoc, NetworkDoc, Resolved, TaskDefinitionDoc};
use super::network::{self, Target};
use super::ownership::{Ownership, ecs_tags, tags_to_set};
use super::from::{self, Value};
use super::{Change, Declared, Reference, Resource};
use crate::aws::{AwsError, ErrorCategory};
use crate::manifest::ServiceSpec;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::diff::FieldChange;
use crate::reconcile::{Applied, Cx, Owned, Problem, ReconcileError, ResourcePlan, Rollout};

/// The field that carries the versions of the secrets a service reads.
const SECRETS_FIELD: &str = "taskDefinition.container.environment.MOORING_SECRETS_VERSION";

/// DescribeServices takes at most 10 services per call.
const DESCRIBE_BATCH: usize = 10;
/// DescribeParameters filters on at most 50 names per call.
const PARAMETER_BATCH: usize = 50;

/// What the Service kind keeps from pass to pass (ECS's own: no other kind reads it).
#[derive(Default)]
pub struct State {
    /// Task definitions by ARN: a revision never changes, so it is read once.
    task_definitions: Mutex<HashMap<String, Arc<TaskDefinition>>>,
    /// Revisions whose deployment failed (circuit breaker, rollback): not deployed again
    /// until the manifest renders another revision.
    failed_revisions: Mutex<HashSet<String>>,
    /// Pre-deploy tasks that failed (see [`predeploy`]).
    pre_deploys: predeploy::Memory,
    /// Deploys begun since the daemon last took them (at most [`BEGUN_KEPT`]).
    begun: Mutex<Vec<crate::deploys::Begun>>,
    /// Told of each deploy as it begins (the daemon announces it).
    on_begin: std::sync::OnceLock<DeployHook>,
}

/// A callback told of each deploy as it begins.
pub type DeployHook = Arc<dyn Fn(&crate::deploys::Begun) + Send + Sync>;

/// How many begun deploys wait to be taken (`apply` never takes them).
const BEGUN_KEPT: usize = 100;

impl State {
    fn task_definition(&self, arn: &str) -> Option<Arc<TaskDefinition>> {
        self.task_definitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(arn)
            .cloned()
    }

    fn remember_task_definition(&self, td: Arc<TaskDefinition>) {
        if let Some(arn) = td.task_definition_arn() {
            self.task_definitions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(arn.to_string(), td.clone());
        }
    }

    /// Marks `td_arn` as failed to deploy (ECS rolled it back): not deployed again until
    /// the manifest renders another revision.
    pub fn mark_failed(&self, td_arn: &str) {
        self.remember_failed(td_arn);
    }

    fn remember_failed(&self, td_arn: &str) {
        self.failed_revisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(td_arn.to_string());
    }

    fn begin_deploy(&self, begun: crate::deploys::Begun) {
        let mut all = self.begun.lock().unwrap_or_else(|p| p.into_inner());
        all.push(begun);
        let over = all.len().saturating_sub(BEGUN_KEPT);
        all.drain(..over);
    }

    /// Tells `hook` of every deploy as it begins, before its pre-deploy task or update.
    pub fn on_begin(&self, hook: DeployHook) {
        let _ = self.on_begin.set(hook);
    }

    fn announce(&self, begun: &crate::deploys::Begun) {
        if let Some(hook) = self.on_begin.get() {
            hook(begun);
        }
    }

    /// The deploys begun since the last call, with how the apply ended for each (the
    /// daemon ends or follows them).
    pub fn take_deploys(&self) -> Vec<crate::deploys::Begun> {
        std::mem::take(&mut *self.begun.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn has_failed(&self, td_arn: &str) -> bool {
        self.failed_revisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(td_arn)
    }
}

fn state<'a>(cx: &Cx<'a>) -> &'a State {
    &cx.ctx.states.services
}

/// The `Service` kind.
pub struct Unit;

impl Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "ecs:DescribeServices",
        "ecs:ListServices",
        "ecs:DescribeTaskDefinition",
        "ecs:ListTaskDefinitions",
        "ecs:RegisterTaskDefinition",
        "ecs:CreateService",
        "ecs:UpdateService",
        "ecs:DeleteService",
        "ecs:TagResource",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeVpcs",
        "elasticloadbalancing:DescribeTargetGroups",
        "ssm:DescribeParameters",
        "secretsmanager:DescribeSecret",
        // Images followed by digest (image.rs): the repository listing and the tags.
        "ecr:DescribeRepositories",
        "ecr:BatchGetImage",
        "sts:GetCallerIdentity",
        "iam:PassRole",
        // The pre-deploy task (predeploy.rs).
        "ecs:RunTask",
        "ecs:DescribeTasks",
        "ecs:ListTasks",
        "ecs:StopTask",
    ];
    type State = State;

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, set: &ManifestSet) -> String {
        format!(
            "the ECS service `{}/{}`",
            cluster_name(set, &m.spec.cluster),
            m.spec.aws_name(&m.metadata)
        )
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        let mut out = vec![Reference::new("/spec/cluster", Kind::Cluster, &m.spec.cluster)];
        out.extend(
            m.spec
                .network
                .security_groups
                .references("/spec/network/securityGroups"),
        );
        for (base, c) in m.spec.containers() {
            if let Some(repository) = &c.repository {
                out.push(Reference::new(
                    format!("{base}/repository"),
                    Kind::Repository,
                    repository,
                ));
            }
        }
        for (i, lb) in m.spec.load_balancers.iter().enumerate() {
            if let Some(tg) = &lb.target_group {
                out.push(Reference::new(
                    format!("/spec/loadBalancers/{i}/targetGroup"),
                    Kind::TargetGroup,
                    tg,
                ));
            }
        }
        out
    }

    fn values(spec: &ServiceSpec) -> Vec<(String, &Value)> {
        spec.containers()
            .flat_map(|(base, c)| {
                c.environment
                    .iter()
                    .map(move |(k, v)| (from::entry(&format!("{base}/environment"), k), v))
            })
            .collect()
    }

    fn check_set(m: &Manifest<Self::Spec>, set: &ManifestSet, f: &mut Findings<'_>) {
        check_secret_references(set, m, f);
        check_health_check_paths(set, m, f);
        check_log_group(set, m, f);
        check_target_groups_forwarded(set, m, f);
        check_cluster_providers(set, m, f);
    }

    /// Besides what it names: the parameter sets that declare its secrets (a missing
    /// required secret keeps tasks from starting), and the load balancers that forward to
    /// its target groups (ECS only attaches target groups a load balancer uses).
    fn dependencies(m: &Manifest<Self::Spec>, set: &ManifestSet) -> Vec<(Kind, String)> {
        let mut deps: Vec<(Kind, String)> = Self::references(m)
            .into_iter()
            .map(|r| (r.kind, r.name))
            .collect();
        for secret in m.spec.containers().flat_map(|(_, c)| c.secrets.values()) {
            if let Some(ps) = secret
                .ssm_parameter
                .as_deref()
                .and_then(|name| set.parameter_set_declaring(name))
            {
                deps.push((Kind::ParameterSet, ps.name().to_string()));
            }
        }
        for tg in m.spec.load_balancers.iter().filter_map(|lb| lb.target_group.as_ref()) {
            for alb in &set.load_balancers {
                if alb.spec.forwards_to(tg) {
                    deps.push((Kind::LoadBalancer, alb.name().to_string()));
                }
            }
        }
        for (_, c) in m.spec.containers() {
            if let Some(g) = c.logs.as_ref().and_then(|l| super::log_group::managing(set, &l.group)) {
                deps.push((Kind::LogGroup, g.name().to_string()));
            }
        }
        deps.sort();
        deps.dedup();
        deps
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        let mut out: Vec<String> = set.services.iter().flat_map(|s| ecr_repository_arns(set, s)).collect();
        out.sort();
        out.dedup();
        out.extend(set.services
            .iter()
            .flat_map(|s| {
                let cluster = cluster_name(set, &s.spec.cluster);
                [
                    crate::iam::arn(
                        "ecs",
                        &format!("service/{cluster}/{}", s.spec.aws_name(&s.metadata)),
                    ),
                    crate::iam::arn(
                        "ecs",
                        &format!("task-definition/{}:*", s.spec.family(&s.metadata)),
                    ),
                    crate::iam::arn("ecs", &format!("cluster/{cluster}")),
                ]
                .into_iter()
                // StopTask on a pre-deploy task that timed out.
                .chain(s.spec.deploy.pre_deploy.as_ref().map(|_| {
                    crate::iam::arn("ecs", &format!("task/{cluster}/*"))
                }))
            }));
        out
    }

}

/// The ECR repositories whose tags the service's containers may follow by digest.
fn ecr_repository_arns(set: &ManifestSet, s: &Manifest<ServiceSpec>) -> Vec<String> {
    s.spec
        .containers()
        .filter_map(|(_, c)| ecr_repository_arn(set, c))
        .collect()
}

/// The ECR repository whose tags a container may follow by digest (BatchGetImage is scoped
/// to it): the `Repository` manifest's, or the one an ECR `image` names. `None` with
/// `imageUpdate: tag` or an image outside ECR.
fn ecr_repository_arn(set: &ManifestSet, c: &spec::ContainerSpec) -> Option<String> {
    if c.image_update == Some(spec::ImageUpdate::Tag) {
        return None;
    }
    let name = match (&c.image, &c.repository) {
        (Some(i), _) => image::EcrImage::parse(i)?.repository,
        (None, Some(r)) => set
            .repositories
            .iter()
            .find(|m| m.name() == r)
            .map_or_else(|| r.clone(), |m| m.spec.aws_name(&m.metadata).to_string()),
        (None, None) => return None,
    };
    Some(crate::iam::arn("ecr", &format!("repository/{name}")))
}

/// The task count the manifest manages: `None` when it leaves it unset or a ScalableTarget
/// owns it (then it is not compared, and never set after creation).
fn managed_count(set: &ManifestSet, m: &Manifest<ServiceSpec>) -> Option<u32> {
    if set.scalable_target_for(m.name()).is_some() {
        return None;
    }
    m.spec.desired_count
}

/// The task count a new service starts with: the manifest's, else its scaler's minimum,
/// else 1.
fn initial_count(set: &ManifestSet, m: &Manifest<ServiceSpec>) -> i32 {
    let scaler_min = set
        .scalable_target_for(m.name())
        .map(|t| t.spec.min_capacity);
    let count = m.spec.desired_count.or(scaler_min).unwrap_or(1);
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// The SSM parameter name in a `valueFrom` (a name or a parameter ARN).
fn parameter_name(value_from: &str) -> String {
    match value_from.split_once(":parameter") {
        Some((prefix, name)) if prefix.starts_with("arn:") => name.to_string(),
        _ => value_from.to_string(),
    }
}

/// What one pass read for every service at once.
pub struct Live {
    /// Per cluster (ECS name): its services by name (INACTIVE ones left out), or why they
    /// could not be read (which fails only that cluster's services).
    services: BTreeMap<String, Result<BTreeMap<String, Service>, ReconcileError>>,
    /// Referenced SSM parameters (names) and Secrets Manager secrets (ARNs) that no
    /// ParameterSet declares and that do not exist.
    missing_secrets: BTreeSet<String>,
    /// The current version of each referenced parameter (name → Version) and secret (ARN →
    /// AWSCURRENT VersionId) that exists. Metadata only.
    secret_versions: BTreeMap<String, String>,
}

/// One service as observed, with what its desired state was resolved against.
pub struct Observed {
    /// The cluster's ECS name.
    cluster: String,
    /// Subnet, security group, secret and target group lookups.
    resolved: Resolved,
    /// The live service.
    live: Option<Service>,
    /// The task definition it runs.
    live_td: Option<Arc<TaskDefinition>>,
}

/// The referenced parameters and secrets that do not exist (of those no ParameterSet
/// declares), and the current versions of those that do. Metadata only: no value is read.
/// The versions of parameters a ParameterSet declares come from that set's listing of its
/// path (the pass cache): no call of their own.
async fn secret_metadata(
    cx: &Cx<'_>,
    manifests: &[Manifest<ServiceSpec>],
) -> Result<(BTreeSet<String>, BTreeMap<String, String>), AwsError> {
    let mut undeclared = BTreeSet::new();
    let mut parameters = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let mut versions = BTreeMap::new();
    for m in manifests {
        for (_, c) in m.spec.containers() {
        let follows = follows_secrets(m, c);
        for secret in c.secrets.values() {
            if let Some(p) = &secret.ssm_parameter {
                let name = parameter_name(p);
                match cx.set.parameter_set_declaring(&name) {
                    None => {
                        undeclared.insert(name.clone());
                        parameters.insert(name);
                    }
                    // The set's own listing of its path, shared through the pass cache.
                    Some(ps) if follows => {
                        let listed = super::parameter_set::listing(cx, &ps.spec.path).await?;
                        if let Some(p) = listed.iter().find(|p| p.name() == Some(name.as_str())) {
                            versions.insert(name, p.version().to_string());
                        }
                    }
                    Some(_) => {}
                }
            }
            if let Some(arn) = &secret.secrets_manager_arn {
                secrets.insert(secret_arn(arn));
            }
        }
        }
    }
    let mut missing = undeclared;
    let parameters: Vec<String> = parameters.into_iter().collect();
    for chunk in parameters.chunks(PARAMETER_BATCH) {
        let filter = aws_sdk_ssm::types::ParameterStringFilter::builder()
            .key("Name")
            .option("Equals")
            .set_values(Some(chunk.to_vec()))
            .build()
            .map_err(|e| AwsError::invalid_request("ssm:DescribeParameters", e))?;
        let pages: Vec<_> = cx
            .aws()
            .ssm
            .describe_parameters()
            .parameter_filters(filter)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| AwsError::from_sdk("ssm:DescribeParameters", e))?;
        for p in pages.iter().flat_map(|page| page.parameters()) {
            if let Some(name) = p.name() {
                missing.remove(name);
                versions.insert(name.to_string(), p.version().to_string());
            }
        }
    }
    for arn in secrets {
        let out = cx
            .aws()
            .secretsmanager
            .describe_secret()
            .secret_id(&arn)
            .send()
            .await;
        match out {
            Ok(out) => {
                let current = out.version_ids_to_stages().and_then(|v| {
                    v.iter()
                        .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
                        .map(|(id, _)| id.clone())
                });
                if let Some(id) = current {
                    versions.insert(arn, id);
                }
            }
            Err(e) => {
                let e = AwsError::from_sdk("secretsmanager:DescribeSecret", e);
                if e.category != ErrorCategory::NotFound {
                    return Err(e);
                }
                missing.insert(arn);
            }
        }
    }
    Ok((missing, versions))
}

/// True when the service deploys again on a new version of a secret container `c` reads.
fn follows_secrets(m: &Manifest<ServiceSpec>, c: &spec::ContainerSpec) -> bool {
    m.spec.deploy.restart_on_secret_change != Some(false) && !c.secrets.is_empty()
}

/// The versions of the service's secrets, `ENV=version` by env name, comma-separated (the
/// value of `MOORING_SECRETS_VERSION`); `None` when it does not follow them. A secret whose
/// version is not known (not created yet) is left out.
fn secrets_version(m: &Manifest<ServiceSpec>, versions: &BTreeMap<String, String>) -> Option<String> {
    container_secrets_version(m, &m.spec.task_definition.container, versions)
}

/// [`secrets_version`] for any container of the service: each carries the versions of the
/// secrets it reads itself.
fn container_secrets_version(
    m: &Manifest<ServiceSpec>,
    c: &spec::ContainerSpec,
    versions: &BTreeMap<String, String>,
) -> Option<String> {
    if !follows_secrets(m, c) {
        return None;
    }
    let entries: Vec<String> = c
        .secrets
        .iter()
        .filter_map(|(env, r)| {
            let key = match (&r.ssm_parameter, &r.secrets_manager_arn) {
                (Some(p), _) => parameter_name(p),
                (None, Some(arn)) => secret_arn(arn),
                (None, None) => return None,
            };
            versions.get(&key).map(|v| format!("{env}={v}"))
        })
        .collect();
    (!entries.is_empty()).then(|| entries.join(","))
}

/// A `MOORING_SECRETS_VERSION` value (`ENV=version,…`, as [`secrets_version`] writes it
/// in env order) as env name → version.
fn parse_versions(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The secrets whose version differs between two `MOORING_SECRETS_VERSION` values, by env
/// name (added, removed or changed).
fn changed_secrets(live: &str, desired: &str) -> Vec<String> {
    let (l, d) = (parse_versions(live), parse_versions(desired));
    let mut names: Vec<String> = l
        .keys()
        .chain(d.keys())
        .filter(|k| l.get(*k) != d.get(*k))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Why the service's tasks could not start: each secret it reads that does not exist.
fn absent_secrets(m: &Manifest<ServiceSpec>, missing: &BTreeSet<String>) -> Vec<Problem> {
    m.spec
        .containers()
        .flat_map(|(_, c)| c.secrets.iter())
        .filter_map(|(env, r)| {
            if let Some(p) = &r.ssm_parameter {
                let p = parameter_name(p);
                return missing.contains(&p).then(|| {
                    format!("secret {env}: the SSM parameter {p} does not exist, so tasks could not start; create it, or declare it in a ParameterSet")
                });
            }
            let arn = secret_arn(r.secrets_manager_arn.as_deref()?);
            missing.contains(&arn).then(|| {
                format!("secret {env}: the Secrets Manager secret {arn} does not exist, so tasks could not start")
            })
        })
        .map(Problem::requirement)
        .collect()
}

/// Describes the services of one cluster, 10 per call. Missing and INACTIVE ones (a
/// deleted service lingers as INACTIVE and can be created again) are left out.
async fn describe(
    cx: &Cx<'_>,
    cluster: &str,
    names: &[String],
) -> Result<Vec<Service>, AwsError> {
    let mut found = Vec::new();
    for chunk in names.chunks(DESCRIBE_BATCH) {
        let out = cx
            .aws()
            .ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .include(ServiceField::Tags)
            .send()
            .await;
        match out {
            Ok(out) => found.extend(out.services.unwrap_or_default()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DescribeServicesError::ClusterNotFoundException(_))
                ) =>
            {
                // No cluster yet: none of its services exist.
                return Ok(Vec::new());
            }
            Err(e) => return Err(AwsError::from_sdk("ecs:DescribeServices", e)),
        }
    }
    found.retain(|s| s.status() != Some("INACTIVE"));
    Ok(found)
}

/// DescribeTaskDefinition for an ARN or a family (newest ACTIVE revision); `None` when
/// there is none. Remembers the result by ARN.
async fn describe_task_definition(
    cx: &Cx<'_>,
    arn_or_family: &str,
) -> Result<Option<Arc<TaskDefinition>>, AwsError> {
    let out = cx
        .aws()
        .ecs
        .describe_task_definition()
        .task_definition(arn_or_family)
        .include(TaskDefinitionField::Tags)
        .send()
        .await;
    match out {
        Ok(out) => {
            // The tags come with every read: a revision a failed verify rolled back (here
            // or in another process) is remembered as failed at no extra call.
            if let Some(arn) = out.task_definition().and_then(|td| td.task_definition_arn())
                && verify::tagged_failed(out.tags())
            {
                state(cx).remember_failed(arn);
            }
            Ok(out.task_definition.map(|td| {
                let td = Arc::new(td);
                state(cx).remember_task_definition(td.clone());
                td
            }))
        }
        Err(e) => {
            let e = AwsError::from_sdk("ecs:DescribeTaskDefinition", e);
            // ECS answers an unknown family with a ClientException, moto with a 4xx of
            // its own; both mean "no such task definition".
            if matches!(
                e.category,
                ErrorCategory::NotFound | ErrorCategory::Validation
            ) {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// How many of a family's newest revisions a repair looks at before registering one.
const RECENT_REVISIONS: i32 = 5;

/// The ARNs of the family's [`RECENT_REVISIONS`] newest ACTIVE revisions, newest first
/// (one ListTaskDefinitions; only when a revision is about to be registered).
async fn recent_revisions(cx: &Cx<'_>, family: &str) -> Result<Vec<String>, AwsError> {
    let out = cx
        .aws()
        .ecs
        .list_task_definitions()
        .family_prefix(family)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .sort(aws_sdk_ecs::types::SortOrder::Desc)
        .max_results(RECENT_REVISIONS)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ecs:ListTaskDefinitions", e))?;
    // `familyPrefix` is a prefix: keep this family's revisions, newest first.
    let mut revisions: Vec<(u32, String)> = out
        .task_definition_arns()
        .iter()
        .filter_map(|arn| {
            let (f, rev) = arn.rsplit_once('/')?.1.rsplit_once(':')?;
            (f == family).then(|| Some((rev.parse().ok()?, arn.clone())))?
        })
        .collect();
    revisions.sort_by(|a, b| b.cmp(a));
    revisions.truncate(usize::try_from(RECENT_REVISIONS).unwrap_or(5));
    Ok(revisions.into_iter().map(|(_, arn)| arn).collect())
}

/// A task definition by ARN, from [`State`] or ECS.
async fn task_definition_by_arn(cx: &Cx<'_>, arn: &str) -> Result<Arc<TaskDefinition>, AwsError> {
    Ok(task_definition_read(cx, arn).await?.0)
}

/// A task definition by ARN, and whether it was read from ECS just now (its tags seen)
/// rather than kept from an earlier read.
async fn task_definition_read(
    cx: &Cx<'_>,
    arn: &str,
) -> Result<(Arc<TaskDefinition>, bool), AwsError> {
    if let Some(td) = state(cx).task_definition(arn) {
        return Ok((td, false));
    }
    let td = describe_task_definition(cx, arn)
        .await?
        .ok_or_else(|| AwsError {
            operation: "ecs:DescribeTaskDefinition",
            code: None,
            message: format!("task definition {arn} does not exist"),
            category: ErrorCategory::NotFound,
        })?;
    Ok((td, true))
}

/// Where the revision a service moves to came from ([`ensure_task_definition`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Revision {
    /// Registered just now: it carries no record of a failed deploy.
    Registered,
    /// An existing revision read from ECS just now, tags included.
    Read,
    /// An existing revision kept from an earlier read: its tags may have changed since.
    Kept,
}

/// Looks up everything a service's desired state depends on.
async fn resolve(cx: &Cx<'_>, m: &Manifest<ServiceSpec>) -> Result<Resolved, ReconcileError> {
    let subnets = network::resolve(cx, Target::Subnets, &m.spec.network.subnets).await?;
    let security_groups =
        network::resolve(cx, Target::SecurityGroups, &m.spec.network.security_groups).await?;
    let aws = cx.aws();
    let target_groups = super::target_group::arns(
        cx,
        m.spec
            .load_balancers
            .iter()
            .filter_map(|lb| lb.target_group.as_deref()),
    )
    .await?;
    let main = resolve_container(cx, &m.spec.task_definition.container).await?;
    let mut sidecars = BTreeMap::new();
    for (name, c) in m.spec.sidecars() {
        sidecars.insert(name.to_string(), resolve_container(cx, c).await?);
    }
    Ok(Resolved {
        subnets,
        security_groups,
        secrets: main.secrets,
        region: aws.region.clone(),
        target_groups,
        log_group: main.log_group,
        image: main.image,
        image_tag: main.image_tag,
        secrets_version: None, // from the kind's batched read, in `observe`
        sidecars,
    })
}

/// Looks up what one container's part of the task definition depends on: its secrets'
/// ARNs, its log group, its image (by digest, or from a `Repository` manifest).
async fn resolve_container(
    cx: &Cx<'_>,
    c: &spec::ContainerSpec,
) -> Result<render::ResolvedContainer, ReconcileError> {
    let aws = cx.aws();
    let mut secrets = BTreeMap::new();
    for (name, r) in &c.secrets {
        let arn = match (&r.ssm_parameter, &r.secrets_manager_arn) {
            (Some(p), _) if p.starts_with("arn:") => p.clone(),
            (Some(p), _) => render::ssm_parameter_arn(
                aws.partition(),
                &aws.region,
                &aws.account_id().await?,
                p,
            ),
            (None, Some(arn)) => arn.clone(),
            (None, None) => continue, // rejected by validation
        };
        secrets.insert(name.clone(), arn);
    }
    let (image, image_tag) = match image::tracked_container(cx, c).await? {
        Some(t) => (
            Some(t.pinned(&image::digest(cx, &t).await?)),
            Some(t.tag),
        ),
        None => match (&c.repository, &c.tag) {
            (Some(repository), Some(tag)) => (
                Some(super::repository::image_uri(cx, repository, tag).await?),
                None,
            ),
            _ => (None, None),
        },
    };
    Ok(render::ResolvedContainer {
        secrets,
        log_group: c
            .logs
            .as_ref()
            .map(|l| super::log_group::aws_name_for(cx.set, &l.group)),
        image,
        image_tag,
        secrets_version: None, // from the kind's batched read, in `observe`
    })
}

/// The rollout of a live service, from its deployments.
pub fn rollout_of(s: &Service) -> Option<Rollout> {
    let deployments = s.deployments();
    let primary = deployments.iter().find(|d| d.status() == Some("PRIMARY"))?;
    Some(Rollout {
        state: primary
            .rollout_state()
            .map_or("UNKNOWN".to_string(), |r| r.as_str().to_string()),
        reason: primary.rollout_state_reason().map(str::to_string),
        running: s.running_count(),
        desired: s.desired_count(),
        pending: s.pending_count(),
        deployments: deployments
            .iter()
            .filter(|d| matches!(d.status(), Some("PRIMARY" | "ACTIVE")))
            .count(),
        task_definition: primary.task_definition().map(str::to_string),
    })
}

fn service_ownership(s: &Service) -> Ownership {
    Ownership::from_tags(s.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))))
}

#[async_trait::async_trait]
impl Resource for Unit {
    type Live = Live;
    type Observed = Observed;
    type Doc = Doc;

    async fn read(
        cx: &Cx<'_>,
        manifests: &[Manifest<ServiceSpec>],
    ) -> Result<Live, ReconcileError> {
        let mut by_cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in manifests {
            by_cluster
                .entry(cluster_name(cx.set, &m.spec.cluster))
                .or_default()
                .push(m.spec.aws_name(&m.metadata).to_string());
        }
        let mut services = BTreeMap::new();
        for (cluster, names) in by_cluster {
            let found = describe(cx, &cluster, &names)
                .await
                .map(|found| {
                    found
                        .into_iter()
                        .map(|s| (s.service_name().unwrap_or_default().to_string(), s))
                        .collect()
                })
                .map_err(ReconcileError::from);
            services.insert(cluster, found);
        }
        let (missing_secrets, secret_versions) = secret_metadata(cx, manifests).await?;
        Ok(Live {
            services,
            missing_secrets,
            secret_versions,
        })
    }

    async fn observe(
        cx: &Cx<'_>,
        m: &Manifest<ServiceSpec>,
        live: &Live,
    ) -> Result<Observed, ReconcileError> {
        let cluster = cluster_name(cx.set, &m.spec.cluster);
        let found = match live.services.get(&cluster) {
            Some(Ok(services)) => services.get(m.spec.aws_name(&m.metadata)).cloned(),
            Some(Err(e)) => return Err(e.clone()),
            None => None,
        };
        // Tasks could not start: nothing is applied until the secrets exist.
        let absent = absent_secrets(m, &live.missing_secrets);
        if !absent.is_empty() {
            return Err(ReconcileError::Problems(absent));
        }
        let mut resolved = resolve(cx, m).await?;
        resolved.secrets_version = secrets_version(m, &live.secret_versions);
        for (name, c) in m.spec.sidecars() {
            let version = container_secrets_version(m, c, &live.secret_versions);
            if let Some(r) = resolved.sidecars.get_mut(name) {
                r.secrets_version = version;
            }
        }
        if found.as_ref().is_some_and(|s| s.status() == Some("DRAINING")) {
            return Err(ReconcileError::Resolve {
                what: format!("service {}", m.spec.aws_name(&m.metadata)),
                message:
                    "it is being deleted (DRAINING); it can be created again once it is INACTIVE"
                        .into(),
            });
        }
        for d in found.iter().flat_map(|s| s.deployments()) {
            if d.rollout_state() == Some(&DeploymentRolloutState::Failed)
                && let Some(arn) = d.task_definition()
            {
                state(cx).remember_failed(arn);
            }
        }
        let live_td = match found.as_ref().and_then(|s| s.task_definition()) {
            Some(arn) => Some(task_definition_by_arn(cx, arn).await?),
            None => None,
        };
        Ok(Observed {
            cluster,
            resolved,
            live: found,
            live_td,
        })
    }

    fn ownership(obs: &Observed) -> Option<Ownership> {
        obs.live.as_ref().map(service_ownership)
    }

    fn desired(set: &ManifestSet, m: &Manifest<ServiceSpec>, obs: &Observed) -> Doc {
        render::desired_doc(set.owner(), m, managed_count(set, m), &obs.resolved)
    }

    fn live(set: &ManifestSet, m: &Manifest<ServiceSpec>, obs: &Observed) -> Option<Doc> {
        let s = obs.live.as_ref()?;
        Some(render::live_doc(
            set.owner(),
            m,
            managed_count(set, m),
            s,
            obs.live_td.as_deref(),
        ))
    }

    fn aws_id(_set: &ManifestSet, m: &Manifest<ServiceSpec>, obs: &Observed) -> String {
        obs.live
            .as_ref()
            .and_then(|s| s.service_arn())
            .map_or_else(
                || format!("{}/{}", obs.cluster, m.spec.aws_name(&m.metadata)),
                str::to_string,
            )
    }

    fn extra_changes(m: &Manifest<ServiceSpec>, obs: &Observed, changes: &[FieldChange]) -> Vec<FieldChange> {
        let running = obs.live.as_ref().and_then(|s| s.task_definition());
        predeploy::plan_note(&m.spec, obs.live.is_none(), running, changes)
            .into_iter()
            .chain(verify::plan_note(&m.spec, obs.live.is_none(), changes))
            .collect()
    }

    fn rollout(obs: &Observed) -> Option<Rollout> {
        obs.live.as_ref().and_then(rollout_of)
    }

    /// A parameter it reads whose value the plan of its `ParameterSet` changes gets a
    /// new version (SSM counts them up by one), so the service rolls after that set is
    /// applied: shown now, as the version it will read.
    fn follows(m: &Manifest<ServiceSpec>, obs: &Observed, dep: &ResourcePlan) -> Vec<FieldChange> {
        let Some(live) = obs.resolved.secrets_version.as_deref() else {
            return Vec::new();
        };
        if dep.kind != Kind::ParameterSet {
            return Vec::new();
        }
        let rewritten = |name: &str| {
            let prefix = format!("parameters.{name}.");
            dep.changes.iter().any(|c| {
                c.field.strip_prefix(&prefix).is_some_and(|f| f == "value" || f == "type")
            })
        };
        let bumped: BTreeSet<&str> = m
            .spec
            .task_definition
            .container
            .secrets
            .iter()
            .filter(|(_, r)| r.ssm_parameter.as_deref().is_some_and(|p| rewritten(&parameter_name(p))))
            .map(|(env, _)| env.as_str())
            .collect();
        let mut versions = parse_versions(live);
        let mut named = Vec::new();
        for (env, v) in versions.iter_mut().filter(|(env, _)| bumped.contains(env.as_str())) {
            if let Ok(n) = v.parse::<u64>() {
                *v = (n + 1).to_string();
                named.push(env.clone());
            }
        }
        let desired: Vec<String> = versions.iter().map(|(env, v)| format!("{env}={v}")).collect();
        if named.is_empty() {
            return Vec::new();
        }
        vec![FieldChange {
            field: SECRETS_FIELD.to_string(),
            live: live.into(),
            desired: desired.join(",").into(),
            note: Some(format!(
                "new version of secret {} once {}/{} is applied",
                named.join(", "),
                dep.kind,
                dep.name
            )),
        }]
    }

    fn notes(obs: &Observed) -> Vec<(&'static str, String)> {
        let mut notes: Vec<(&'static str, String)> = obs
            .resolved
            .image_tag
            .iter()
            .map(|tag| ("taskDefinition.container.image", format!("tag {tag}")))
            .collect();
        if let Some(desired) = &obs.resolved.secrets_version {
            let live = obs
                .live_td
                .iter()
                .flat_map(|td| td.container_definitions())
                .flat_map(|c| c.environment())
                .find(|kv| kv.name() == Some(spec::SECRETS_VERSION_ENV))
                .and_then(|kv| kv.value())
                .unwrap_or_default();
            let changed = changed_secrets(live, desired);
            if !live.is_empty() && !changed.is_empty() {
                notes.push((
                    SECRETS_FIELD,
                    format!("new version of secret {}", changed.join(", ")),
                ));
            }
        }
        notes
    }

    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<ServiceSpec>,
        obs: &Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        let Doc {
            task_definition,
            network,
            load_balancers,
            tags,
            ..
        } = change.desired;
        // A move between the FARGATE launch type and a capacity provider strategy is an
        // UpdateService; a service on EC2 or EXTERNAL needs a new one.
        let not_fargate = change.live.and_then(|l| l.launch_type.as_deref()).is_some_and(|l| l != "FARGATE");
        if obs.live.is_some() && change.differs(|d| &d.launch_type) && not_fargate {
            return Err(ReconcileError::NotConverged(
                "the service does not run on Fargate; changing the launch type needs a new service, which mooring does not do on its own".into(),
            ));
        }
        // Security groups and target groups created earlier in this apply had no ID when
        // the service was planned: look them up now.
        let settled = Doc {
            network: NetworkDoc {
                security_groups: network::settle(
                    cx,
                    Some(&m.spec.network.security_groups),
                    &network.security_groups,
                )
                .await?,
                ..network.clone()
            },
            load_balancers: settle_load_balancers(cx, m, load_balancers).await?,
            ..change.desired.clone()
        };
        let change = Change {
            desired: &settled,
            live: change.live,
            replace: change.replace,
        };
        let td_arn = match &obs.live {
            Some(s) if !change.differs(|d| &d.task_definition) => {
                s.task_definition().unwrap_or_default().to_string()
            }
            _ => {
                let Some(td) = task_definition else {
                    return Err(ReconcileError::NotConverged(
                        "there is no task definition to register (`taskDefinition` is ignored and the live one could not be read)".into(),
                    ));
                };
                let (arn, revision) = ensure_task_definition(cx, m, td, tags).await?;
                // A revision registered just now carries no record, and one read just now
                // had its tags seen; one kept from an earlier read has its tags read again,
                // so a failure recorded since (by another replica, before a restart) counts.
                if revision == Revision::Kept
                    && !state(cx).has_failed(&arn)
                    && verify::recorded_failed(&cx.aws().ecs, &arn).await?
                {
                    state(cx).remember_failed(&arn);
                }
                if state(cx).has_failed(&arn) {
                    return Err(ReconcileError::Rollout(format!(
                        "{arn} failed to deploy before (deployment circuit breaker, or a failed verify rolled back); it is not deployed again until the manifest changes (or until its record is removed: aws ecs untag-resource --resource-arn {arn} --tag-keys {})",
                        verify::TAG
                    )));
                }
                arn
            }
        };
        let moving = obs.live.as_ref().and_then(|s| s.task_definition()) != Some(td_arn.as_str());
        // A move to a new revision is a deploy: recorded now, so that a pre-deploy task or
        // an update that fails is a failed deploy too (the daemon reports and follows it).
        let deploy = moving.then(|| crate::deploys::Begun {
            service: m.metadata.name.clone(),
            ecs_name: m.spec.aws_name(&m.metadata).to_string(),
            cluster: obs.cluster.clone(),
            from_task_definition: obs
                .live
                .as_ref()
                .and_then(|s| s.task_definition())
                .map(str::to_string),
            to_task_definition: td_arn.clone(),
            from_image: obs
                .live_td
                .iter()
                .flat_map(|td| td.container_definitions())
                .find(|c| c.name() == Some(m.spec.container_name()))
                .and_then(|c| c.image())
                .map(str::to_string),
            to_image: task_definition
                .as_ref()
                .and_then(|td| td.container.as_ref())
                .and_then(|c| c.image.clone()),
            started: std::time::SystemTime::now(),
            changes: deploy_changes(change.live, change.desired, &Self::notes(obs)),
            created: obs.live.is_none(),
            failed: None,
            verify: m.spec.deploy.verify.clone(),
            rollback_on_failure: m.spec.deploy.rollback_on_failure,
        });
        if let Some(begun) = &deploy {
            state(cx).announce(begun);
        }
        let rolled = async {
            if moving && m.spec.deploy.pre_deploy.is_some() {
                let td = task_definition_by_arn(cx, &td_arn).await?;
                predeploy::before_rollout(
                    cx,
                    m,
                    &state(cx).pre_deploys,
                    &obs.cluster,
                    &settled.network,
                    &td_arn,
                    &td,
                )
                .await?;
            }
            let name = m.spec.aws_name(&m.metadata);
            let service = match &obs.live {
                None => {
                    let created =
                        create_service(cx, m, &obs.cluster, &settled, &td_arn).await?;
                    // ECS applies every field at creation. moto ignores some of them
                    // (deploymentConfiguration, healthCheckGracePeriodSeconds,
                    // enableExecuteCommand): compare again and send what is still missing.
                    let td = task_definition_by_arn(cx, &td_arn).await?;
                    let now = render::live_doc(
                        cx.set.owner(),
                        m,
                        managed_count(cx.set, m),
                        &created,
                        Some(&td),
                    );
                    if now == settled {
                        created
                    } else {
                        debug!(service = name, "fields not taken at creation, updating");
                        let remaining = Change {
                            desired: &settled,
                            live: Some(&now),
                            replace: false,
                        };
                        update_service(cx, m, &obs.cluster, Some(created), &remaining, &td_arn)
                            .await?
                    }
                }
                Some(live) => {
                    update_service(cx, m, &obs.cluster, Some(live.clone()), &change, &td_arn).await?
                }
            };
            Ok::<_, ReconcileError>((name, service))
        }
        .await;
        let verifying = deploy.clone().filter(|b| b.verify.is_some());
        if let Some(mut begun) = deploy {
            if let Err(e) = &rolled {
                let cause = if matches!(e, ReconcileError::Rollout(_)) {
                    crate::deploys::Cause::PreDeploy
                } else {
                    crate::deploys::Cause::Apply
                };
                begun.failed = Some((cause, e.to_string()));
            }
            state(cx).begin_deploy(begun);
        }
        let (name, mut service) = rolled?;
        if let Some(limit) = cx.ctx.rollout_wait {
            let ids = (m.metadata.name.as_str(), name);
            let from = obs.live.as_ref().and_then(|s| s.task_definition());
            let revisions = (from, td_arn.as_str());
            service = wait_for_rollout(cx, &obs.cluster, ids, service, revisions, limit).await?;
            // `apply --wait`: the check after the rollout too (the daemon runs it in the
            // task that follows the rollout instead).
            if let Some(begun) = &verifying
                && let Err(why) = verify::after_rollout(&cx.aws().ecs, begun).await
            {
                if begun.rollback_on_failure && begun.from_task_definition.is_some() {
                    state(cx).remember_failed(&td_arn);
                }
                return Err(ReconcileError::Rollout(why));
            }
        }
        Ok(Applied {
            aws_id: service.service_arn().unwrap_or_default().to_string(),
            rollout: rollout_of(&service),
        })
    }

    async fn owned(cx: &Cx<'_>) -> Option<Result<Vec<Owned>, ReconcileError>> {
        let listed = async {
            let mut owned = Vec::new();
            for c in &cx.set.clusters {
                let cluster = c.spec.aws_name(&c.metadata);
                let arns: Vec<String> = match cx
                    .aws()
                    .ecs
                    .list_services()
                    .cluster(cluster)
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect()
                    .await
                {
                    Ok(arns) => arns,
                    Err(e) => {
                        let e = AwsError::from_sdk("ecs:ListServices", e);
                        if e.category == ErrorCategory::NotFound {
                            continue; // no cluster, no services
                        }
                        return Err(e);
                    }
                };
                for s in describe(cx, cluster, &arns).await? {
                    if s.status() != Some("ACTIVE") {
                        continue; // already being deleted
                    }
                    let name = service_ownership(&s).name_in(cx.set.owner(), Kind::Service);
                    if let (Some(name), Some(arn)) = (name, s.service_arn()) {
                        owned.push(Owned {
                            name,
                            aws_id: arn.to_string(),
                            scope: Some(cluster.to_string()),
                        });
                    }
                }
            }
            Ok::<_, AwsError>(owned)
        };
        Some(listed.await.map_err(Into::into))
    }

    async fn delete(cx: &Cx<'_>, owned: &Owned) -> Result<(), ReconcileError> {
        // `force`: stop its tasks rather than require a scale-down to 0 first.
        cx.aws()
            .ecs
            .delete_service()
            .set_cluster(owned.scope.clone())
            .service(&owned.aws_id)
            .force(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:DeleteService", e))?;
        Ok(())
    }
}

/// The attachments with the ARNs of target groups created since plan filled in. One
/// still missing is a dependency that is not ready.
async fn settle_load_balancers(
    cx: &Cx<'_>,
    m: &Manifest<ServiceSpec>,
    lbs: &[LoadBalancerDoc],
) -> Result<Vec<LoadBalancerDoc>, ReconcileError> {
    let pending = |lb: &LoadBalancerDoc| {
        lb.target_group_arn
            .as_deref()
            .is_some_and(render::is_pending_target_group)
    };
    if !lbs.iter().any(pending) {
        return Ok(lbs.to_vec());
    }
    let names: Vec<&str> = m
        .spec
        .load_balancers
        .iter()
        .filter_map(|lb| lb.target_group.as_deref())
        .collect();
    let arns = super::target_group::arns(cx, names.iter().copied()).await?;
    let mut out = lbs.to_vec();
    for lb in out.iter_mut().filter(|lb| pending(lb)) {
        let name = names
            .iter()
            .find(|n| lb.target_group_arn.as_deref() == Some(&render::pending_target_group(n)));
        match name.and_then(|n| arns.get(*n)) {
            Some(arn) => lb.target_group_arn = Some(arn.clone()),
            None => {
                return Err(ReconcileError::Dependency(format!(
                    "TargetGroup/{}",
                    name.copied().unwrap_or("?")
                )));
            }
        }
    }
    Ok(out)
}

/// The ARN of a task definition revision with exactly the document's content: the newest
/// such of the family's [`RECENT_REVISIONS`] newest ACTIVE revisions (read once each, then
/// kept in [`State`]), otherwise a newly registered one. A revision moved to by
/// hand and then repaired is thus undone by going back, not by registering a duplicate.
/// A matching revision that failed to deploy is returned too (the caller refuses it):
/// registering a copy of it would deploy the same content again.
async fn ensure_task_definition(
    cx: &Cx<'_>,
    m: &Manifest<ServiceSpec>,
    desired: &TaskDefinitionDoc,
    tags: &BTreeMap<String, String>,
) -> Result<(String, Revision), ReconcileError> {
    let TaskDefinitionDoc {
        family,
        cpu,
        memory,
        network_mode: _,             // always awsvpc
        requires_compatibilities: _, // always FARGATE
        execution_role_arn,
        task_role_arn,
        ephemeral_storage,
        runtime_platform,
        container,
        sidecars, // the manifest's; registering drops any other container
        unmanaged_settings: _, // never sent: registering a revision drops them
    } = desired;
    let family = family
        .clone()
        .unwrap_or_else(|| m.spec.family(&m.metadata).to_string());
    for arn in recent_revisions(cx, &family).await? {
        let (td, read) = task_definition_read(cx, &arn).await?;
        if render::live_task_definition(&td, m.spec.container_name()) == *desired {
            info!(task_definition = %arn, "reusing matching revision");
            return Ok((arn, if read { Revision::Read } else { Revision::Kept }));
        }
    }
    let Some(container) = container else {
        return Err(ReconcileError::NotConverged(format!(
            "there is no container `{}` to register",
            m.spec.container_name()
        )));
    };
    let out = cx
        .aws()
        .ecs
        .register_task_definition()
        .family(&family)
        .set_cpu(cpu.clone())
        .set_memory(memory.clone())
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .set_execution_role_arn(execution_role_arn.clone())
        .set_task_role_arn(task_role_arn.clone())
        .set_container_definitions(Some(
            std::iter::once(render::container_definition(container))
                .chain(sidecars.values().map(render::container_definition))
                .collect(),
        ))
        .set_ephemeral_storage(render::ephemeral_storage(ephemeral_storage))
        .set_runtime_platform(render::runtime_platform(runtime_platform))
        .set_tags(Some(ecs_tags(tags)))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ecs:RegisterTaskDefinition", e))?;
    let registered = out.task_definition.ok_or_else(|| {
        ReconcileError::NotConverged("RegisterTaskDefinition returned no task definition".into())
    })?;
    let registered = Arc::new(registered);
    let arn = registered
        .task_definition_arn()
        .unwrap_or_default()
        .to_string();
    info!(task_definition = %arn, "registered new revision");
    state(cx).remember_task_definition(registered);
    Ok((arn, Revision::Registered))
}

async fn create_service(
    cx: &Cx<'_>,
    m: &Manifest<ServiceSpec>,
    cluster: &str,
    desired: &Doc,
    td_arn: &str,
) -> Result<Service, ReconcileError> {
    let Doc {
        launch_type: _, // FARGATE unless there is a strategy
        capacity_provider_strategy,
        desired_count: _, // the initial count: the manifest's, or its scaler's minimum
        task_definition: _, // registered as `td_arn`
        network,
        deployment,
        health_check_grace_period_seconds,
        enable_execute_command,
        platform_version,
        load_balancers,
        tags,
    } = desired;
    let lbs = render::load_balancers(load_balancers);
    let out = cx
        .aws()
        .ecs
        .create_service()
        .cluster(cluster)
        .service_name(m.spec.aws_name(&m.metadata))
        .task_definition(td_arn)
        .desired_count(initial_count(cx.set, m))
        // One or the other: ECS refuses both.
        .set_launch_type(capacity_provider_strategy.is_empty().then_some(LaunchType::Fargate))
        .set_capacity_provider_strategy(
            (!capacity_provider_strategy.is_empty())
                .then(|| render::capacity_provider_strategy(capacity_provider_strategy)),
        )
        .set_network_configuration(render::network_configuration(network))
        .deployment_configuration(render::deployment_configuration(deployment))
        // ECS refuses a grace period on a service without a load balancer; 0 is its
        // default anyway.
        .set_health_check_grace_period_seconds(
            (*health_check_grace_period_seconds != 0).then_some(*health_check_grace_period_seconds),
        )
        .enable_execute_command(*enable_execute_command)
        .platform_version(platform_version)
        .set_load_balancers((!lbs.is_empty()).then_some(lbs))
        .set_tags(Some(ecs_tags(tags)))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ecs:CreateService", e))?;
    let service = out
        .service
        .ok_or_else(|| ReconcileError::NotConverged("CreateService returned no service".into()))?;
    info!(
        service = service.service_arn().unwrap_or_default(),
        "created service"
    );
    Ok(service)
}

/// Sends what differs: UpdateService for settings, TagResource for tags. Returns the
/// service as ECS reports it afterwards.
async fn update_service(
    cx: &Cx<'_>,
    m: &Manifest<ServiceSpec>,
    cluster: &str,
    mut service: Option<Service>,
    change: &Change<'_, Doc>,
    td_arn: &str,
) -> Result<Service, ReconcileError> {
    let Doc {
        launch_type: _, // follows the strategy: FARGATE exactly when it is empty
        capacity_provider_strategy,
        desired_count,
        task_definition: _, // sent as `td_arn`
        network,
        deployment,
        health_check_grace_period_seconds,
        enable_execute_command,
        platform_version,
        load_balancers,
        tags,
    } = change.desired;
    let name = m.spec.aws_name(&m.metadata);
    let mut req = cx.aws().ecs.update_service().cluster(cluster).service(name);
    let mut any = false;
    if change.differs(|d| &d.task_definition) {
        req = req.task_definition(td_arn);
        any = true;
    }
    if let Some(n) = desired_count.filter(|_| change.differs(|d| &d.desired_count)) {
        req = req.desired_count(n);
        any = true;
    }
    if change.differs(|d| &d.network) {
        req = req.set_network_configuration(render::network_configuration(network));
        any = true;
    }
    if change.differs(|d| &d.deployment) {
        req = req.deployment_configuration(render::deployment_configuration(deployment));
        any = true;
    }
    if change.differs(|d| &d.health_check_grace_period_seconds) {
        req = req.health_check_grace_period_seconds(*health_check_grace_period_seconds);
        any = true;
    }
    if change.differs(|d| &d.enable_execute_command) {
        req = req.enable_execute_command(*enable_execute_command);
        any = true;
    }
    if change.differs(|d| &d.capacity_provider_strategy) || change.differs(|d| &d.launch_type) {
        // An empty list moves the service back to its launch type. The strategy itself
        // "doesn't trigger a new service deployment" (UpdateService's documentation), so
        // running tasks would stay where they are: a move between the launch type and a
        // strategy, or between strategies, forces one so that the tasks follow it.
        req = req
            .set_capacity_provider_strategy(Some(render::capacity_provider_strategy(
                capacity_provider_strategy,
            )))
            .force_new_deployment(true);
        any = true;
    }
    if change.differs(|d| &d.platform_version) {
        req = req.platform_version(platform_version);
        any = true;
    }
    if change.differs(|d| &d.load_balancers) {
        req = req.set_load_balancers(Some(render::load_balancers(load_balancers)));
        any = true;
    }
    if any {
        let out = req
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:UpdateService", e))?;
        service = out.service;
        info!(service = name, "updated service");
    }
    let missing = tags_to_set(tags, change.live.map(|l| &l.tags));
    if !missing.is_empty() {
        let arn = service
            .as_ref()
            .and_then(|s| s.service_arn())
            .unwrap_or_default()
            .to_string();
        cx.aws()
            .ecs
            .tag_resource()
            .resource_arn(&arn)
            .set_tags(Some(ecs_tags(&missing)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:TagResource", e))?;
    }
    service.ok_or_else(|| ReconcileError::NotConverged("UpdateService returned no service".into()))
}

/// The changes that say why a service moves to a new revision, as plan shows them: its
/// image and its `MOORING_SECRETS_VERSION`, with the kind's notes.
fn deploy_changes(
    live: Option<&Doc>,
    desired: &Doc,
    notes: &[(&'static str, String)],
) -> Vec<FieldChange> {
    fn container(d: Option<&Doc>) -> Option<&render::ContainerDoc> {
        d.and_then(|d| d.task_definition.as_ref())
            .and_then(|td| td.container.as_ref())
    }
    let (was, wants) = (container(live), container(Some(desired)));
    let secrets = |c: Option<&render::ContainerDoc>| {
        c.and_then(|c| c.environment.get(spec::SECRETS_VERSION_ENV).cloned())
    };
    let image_field = "taskDefinition.container.image";
    let secrets_field = SECRETS_FIELD;
    let note = |field: &str| {
        notes
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, n)| n.clone())
    };
    let mut out = Vec::new();
    for (field, live, desired) in [
        (
            image_field,
            was.and_then(|c| c.image.clone()),
            wants.and_then(|c| c.image.clone()),
        ),
        (secrets_field, secrets(was), secrets(wants)),
    ] {
        if live != desired {
            out.push(FieldChange {
                field: field.to_string(),
                live: live.into(),
                desired: desired.into(),
                note: note(field),
            });
        }
    }
    out
}

/// The reason ECS gave up on a deployment of `td_arn` (circuit breaker), if it did.
fn failed_deployment(s: &Service, td_arn: &str) -> Option<String> {
    s.deployments()
        .iter()
        .find(|d| {
            d.task_definition() == Some(td_arn)
                && d.rollout_state() == Some(&DeploymentRolloutState::Failed)
        })
        .map(|d| {
            d.rollout_state_reason()
                .unwrap_or("no reason given")
                .to_string()
        })
}

/// Polls the service until the deployment of `td_arn` completes, fails, or `limit`
/// passes. A circuit-breaker rollback shows as the old revision becoming PRIMARY again
/// and the new one FAILED: both count as failure, and the revision is remembered so that
/// later passes do not deploy it again.
/// `ids`: the manifest's name and the ECS service's; `revisions`: the revision the service
/// ran before (none for a new service) and the one it moves to. A third revision taking
/// over is another deploy, not a rollback: it fails the wait but records nothing.
async fn wait_for_rollout(
    cx: &Cx<'_>,
    cluster: &str,
    (manifest, name): (&str, &str),
    mut service: Service,
    (from, td_arn): (Option<&str>, &str),
    limit: Duration,
) -> Result<Service, ReconcileError> {
    let started = Instant::now();
    let mut shown: Option<Rollout> = None;
    loop {
        if let Some(reason) = failed_deployment(&service, td_arn) {
            rolled_back(cx, td_arn).await;
            return Err(ReconcileError::Rollout(format!(
                "deployment of {td_arn} to {name} failed: {reason}"
            )));
        }
        let Some(r) = rollout_of(&service) else {
            return Ok(service);
        };
        if let Some(hook) = cx.ctx.on_rollout.as_ref().filter(|_| shown.as_ref() != Some(&r)) {
            hook(manifest, &r, started.elapsed());
            shown = Some(r.clone());
        }
        if let Some(primary) = r.task_definition.as_deref().filter(|p| *p != td_arn) {
            if Some(primary) != from {
                return Err(ReconcileError::Rollout(format!(
                    "{name} moved to {primary} during the rollout of {td_arn}: another deploy replaced it (not a rollback, nothing recorded)"
                )));
            }
            rolled_back(cx, td_arn).await;
            return Err(ReconcileError::Rollout(format!(
                "ECS rolled {name} back to {primary} ({})",
                r.reason.unwrap_or_else(|| "no reason given".into())
            )));
        }
        if r.is_failed() {
            rolled_back(cx, td_arn).await;
            return Err(ReconcileError::Rollout(format!(
                "deployment of {td_arn} to {name} failed: {}",
                r.reason.unwrap_or_else(|| "no reason given".into())
            )));
        }
        if r.is_complete() {
            return Ok(service);
        }
        if started.elapsed() >= limit {
            return Err(ReconcileError::Rollout(format!(
                "deployment of {name} still {} after {}s ({} of {} tasks running)",
                r.state,
                limit.as_secs(),
                r.running,
                r.desired
            )));
        }
        tokio::time::sleep(cx.ctx.rollout_poll.min(limit)).await;
        let found = describe(cx, cluster, &[name.to_string()]).await?;
        service = found.into_iter().next().ok_or_else(|| {
            ReconcileError::Rollout(format!("service {name} disappeared during its rollout"))
        })?;
    }
}

/// ECS gave up on `td_arn` during a rollout this apply waits for: remembered, and recorded on
/// the revision (best effort: the deploy has failed either way) so that a restarted
/// process or another replica does not deploy it again either.
async fn rolled_back(cx: &Cx<'_>, td_arn: &str) {
    state(cx).remember_failed(td_arn);
    if let Err(e) = verify::record_failed(&cx.aws().ecs, td_arn).await {
        warn!(task_definition = td_arn, error = %e, "cannot record the rolled-back revision as failed; this process still remembers it");
    }
}

/// The ECS name of the cluster manifest `name`.
pub(crate) fn cluster_name(set: &ManifestSet, name: &str) -> String {
    set.cluster(name)
        .map(|c| c.spec.aws_name(&c.metadata).to_string())
        .unwrap_or_else(|| name.to_string())
}

/// Warns when the service logs to a group that no `LogGroup` manifest manages and that
/// the awslogs driver may not create (`createGroup` off): unless someone made it by hand,
/// tasks fail to start, and a hand-made group keeps its events forever by default.
fn check_log_group(set: &ManifestSet, svc: &Manifest<ServiceSpec>, f: &mut Findings<'_>) {
    for (base, c) in svc.spec.containers() {
    let Some(logs) = &c.logs else {
        continue;
    };
    if logs.create_group || super::log_group::managing(set, &logs.group).is_some() {
        continue;
    }
    f.warn(
        &format!("{base}/logs/group"),
        format!(
            "no LogGroup manifest manages the log group `{}` and `createGroup` is off: tasks cannot start unless the group already exists, and a group nobody manages keeps its events forever; add a `kind: LogGroup` manifest with a `retentionInDays` and name it here",
            logs.group
        ),
    );
    }
}

/// ECS refuses to attach a target group no load balancer uses: each `TargetGroup` manifest a
/// service names needs a listener (default action or rule) of the set that forwards to it.
fn check_target_groups_forwarded(
    set: &ManifestSet,
    svc: &Manifest<ServiceSpec>,
    f: &mut Findings<'_>,
) {
    for (i, lb) in svc.spec.load_balancers.iter().enumerate() {
        let Some(tg) = lb.target_group.as_deref() else {
            continue;
        };
        if set.target_group(tg).is_none()
            || set.load_balancers.iter().any(|alb| alb.spec.forwards_to(tg))
        {
            continue;
        }
        f.at(
            &format!("/spec/loadBalancers/{i}/targetGroup"),
            format!(
                "no LoadBalancer listener forwards to TargetGroup `{tg}`, and ECS only attaches a target group a load balancer uses: forward to it from a listener's `defaultAction` or a rule"
            ),
        );
    }
}

/// A strategy may name only providers the cluster has: when the `Cluster` manifest
/// manages `capacityProviders`, each of the service's must be among them (ECS refuses the
/// service otherwise, at apply).
fn check_cluster_providers(set: &ManifestSet, svc: &Manifest<ServiceSpec>, f: &mut Findings<'_>) {
    let Some(cluster) = set.cluster(&svc.spec.cluster) else {
        return;
    };
    for (i, item) in svc.spec.capacity_provider_strategy.iter().enumerate() {
        if cluster.spec.lacks_provider(item.capacity_provider) {
            f.at(
                &format!("/spec/capacityProviderStrategy/{i}/capacityProvider"),
                format!(
                    "the Cluster `{}` does not list `{}` in its `capacityProviders`",
                    cluster.name(),
                    item.capacity_provider.as_str()
                ),
            );
        }
    }
}

/// When both the container and a target group check an HTTP path, it must be the same
/// path: a mismatch (`/health` vs `/api/health`) keeps tasks failing load balancer checks
/// and restarting.
fn check_health_check_paths(set: &ManifestSet, svc: &Manifest<ServiceSpec>, f: &mut Findings<'_>) {
    let container_path = svc
        .spec
        .task_definition
        .container
        .health_check
        .as_ref()
        .and_then(|h| h.http_path.as_deref());
    for (i, lb) in svc.spec.load_balancers.iter().enumerate() {
        let Some(tg) = lb.target_group.as_deref().and_then(|n| set.target_group(n)) else {
            continue;
        };
        let tg_path = tg.spec.health_check_path();
        if let Some(path) = container_path.filter(|p| *p != tg_path) {
            f.at(
                &format!("/spec/loadBalancers/{i}/targetGroup"),
                format!(
                    "TargetGroup `{}` checks `{tg_path}` but the container's health check calls `{path}`; use the same path for both",
                    tg.name()
                ),
            );
        }
    }
}

/// A secret read from an SSM parameter under a path that a ParameterSet manages must be
/// declared there (managed or required): a typo would otherwise only show when tasks fail
/// to start. Parameters outside every managed path are the user's own business.
fn check_secret_references(set: &ManifestSet, svc: &Manifest<ServiceSpec>, f: &mut Findings<'_>) {
    for (base, c) in svc.spec.containers() {
    for (env, secret) in &c.secrets {
        let Some(name) = &secret.ssm_parameter else {
            continue;
        };
        if name.starts_with("arn:") || set.parameter_set_declaring(name).is_some() {
            continue;
        }
        if let Some(owner) = set
            .parameter_sets
            .iter()
            .find(|p| p.spec.relative(name).is_some())
        {
            f.at(
                &format!(
                    "{base}/secrets/{}/ssmParameter",
                    crate::manifest::yaml::escape_segment(env)
                ),
                format!(
                    "`{name}` is under the path `{}` of ParameterSet `{}` but not declared there; add it to its `parameters` or `required`",
                    owner.spec.path,
                    owner.name()
                ),
            );
        }
    }
    }
}

/// The secret ARN in a `valueFrom`, without ECS's `:json-key:stage:version` suffix.
pub(crate) fn secret_arn(value_from: &str) -> String {
    value_from
        .splitn(8, ':')
        .take(7)
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_versions_are_carried_by_env_name_and_changes_are_named() {
        let set = crate::manifest::load::load_with_stack(&[(
            "s.yaml".into(),
            "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: prd}\nspec: {}\n---\napiVersion: mooring.dev/v1alpha1\nkind: Service\nmetadata: {name: api}\nspec:\n  cluster: prd\n  network: {subnets: {ids: [subnet-1]}, securityGroups: {ids: [sg-1]}}\n  taskDefinition:\n    cpu: 256\n    memory: 512\n    executionRoleArn: arn:aws:iam::1:role/exec\n    container:\n      image: api:1\n      secrets:\n        DB_PASSWORD: {ssmParameter: /prd/db/password}\n        API_KEY: {secretsManagerArn: 'arn:aws:secretsmanager:eu-west-1:1:secret:key-AbCdEf:token::'}\n".into(),
        )])
        .unwrap();
        let mut m = set.services[0].clone();
        let versions = BTreeMap::from([
            ("/prd/db/password".to_string(), "4".to_string()),
            (
                "arn:aws:secretsmanager:eu-west-1:1:secret:key-AbCdEf".to_string(),
                "v-1".to_string(),
            ),
        ]);
        assert_eq!(
            secrets_version(&m, &versions).as_deref(),
            Some("API_KEY=v-1,DB_PASSWORD=4")
        );
        assert_eq!(
            secrets_version(&m, &BTreeMap::new()),
            None,
            "unknown versions are left out"
        );
        assert_eq!(
            changed_secrets("API_KEY=v-1,DB_PASSWORD=4", "API_KEY=v-2,DB_PASSWORD=4"),
            ["API_KEY"]
        );
        assert_eq!(changed_secrets("A=1", "A=1,B=1"), ["B"]);
        m.spec.deploy.restart_on_secret_change = Some(false);
        assert_eq!(secrets_version(&m, &versions), None, "opted out");
    }

    #[test]
    fn value_from_forms() {
        assert_eq!(parameter_name("/prd/db/password"), "/prd/db/password");
        assert_eq!(
            parameter_name("arn:aws:ssm:eu-west-1:1:parameter/prd/db/password"),
            "/prd/db/password"
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:1:secret:prd/db-AbCdEf";
        assert_eq!(secret_arn(arn), arn);
        assert_eq!(secret_arn(&format!("{arn}:password::")), arn);
    }

    const ROUTED: &str = "apiVersion: mooring.dev/v1alpha1
kind: Cluster
metadata: {name: prd}
spec: {}
---
apiVersion: mooring.dev/v1alpha1
kind: TargetGroup
metadata: {name: web}
spec: {port: 3000, vpc: default}
---
apiVersion: mooring.dev/v1alpha1
kind: TargetGroup
metadata: {name: api}
spec: {port: 3001, vpc: default}
---
apiVersion: mooring.dev/v1alpha1
kind: LoadBalancer
metadata: {name: edge}
spec:
  subnets: {ids: [subnet-a, subnet-b]}
  securityGroups: {ids: [sg-1]}
  listeners:
    - port: 80
      protocol: HTTP
      defaultAction: {forward: web}
RULES---
apiVersion: mooring.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  cluster: prd
  network:
    subnets: {ids: [subnet-a]}
    securityGroups: {ids: [sg-1]}
  loadBalancers: [{targetGroup: api, containerPort: 3001}]
  taskDefinition:
    cpu: 256
    memory: 512
    container: {image: 'api:1', port: 3001}
";

    #[test]
    fn a_target_group_no_listener_forwards_to_is_refused_and_a_rule_is_enough() {
        let load = |rules: &str| {
            crate::manifest::load::load_with_stack(&[(
                "app.yaml".into(),
                ROUTED.replace("RULES", rules),
            )])
        };
        let errs: Vec<String> = match load("") {
            Ok(_) => panic!("a target group no listener uses was accepted"),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        };
        assert!(
            errs.iter().any(|e| e.contains(
                "spec.loadBalancers[0].targetGroup: no LoadBalancer listener forwards to TargetGroup `api`"
            )),
            "{errs:#?}"
        );
        let set = load(
            "      rules:\n        - {priority: 10, conditions: {pathPatterns: [/api/*]}, action: {forward: api}}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let deps = Unit::dependencies(&set.services[0], &set);
        assert!(
            deps.contains(&(Kind::LoadBalancer, "edge".to_string())),
            "{deps:?}"
        );
    }
}
