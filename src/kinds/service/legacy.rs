//! ECS services on Fargate, with their task definitions.
//!
//! The baseline for comparing is the task definition the service *runs*, not the newest
//! revision of its family. A new revision is registered only when the manifest's content
//! differs from it, and then only if the family's newest revision does not already match
//! (which makes a re-run after an interrupted apply register nothing).

pub mod render;
pub mod spec;

#[cfg(test)]
mod mock_tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ecs::operation::describe_services::DescribeServicesError;
use aws_sdk_ecs::types::{
    Compatibility, DeploymentRolloutState, LaunchType, NetworkMode, Service, ServiceField,
    TaskDefinition, TaskDefinitionField,
};
use tracing::{debug, info};

use self::network::{Resolver, Target};
use self::render::{Resolved, desired_doc, desired_tags, live_doc};
use super::{ecs_tags, owner_name, ownership_conflict, tags_to_set, touches};
use crate::aws::{AwsError, ErrorCategory};
use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet, ServiceSpec};
use crate::reconcile::diff::{diff, diff_managed};
use crate::reconcile::{
    Action, Applied, Context, FieldChange, Owned, Planned, ReconcileError, Reconciler,
    ResourcePlan, Rollout,
};

/// DescribeServices takes at most 10 services per call.
const DESCRIBE_BATCH: usize = 10;

/// Reconciles `kind: Service` manifests.
pub struct ServiceReconciler {
    services: Vec<(Manifest<ServiceSpec>, String)>,
    /// Per service: the manifests it needs applied first.
    dependencies: BTreeMap<String, Vec<(Kind, String)>>,
    /// Per service: the task count it starts with.
    initial_counts: BTreeMap<String, i32>,
    /// `TargetGroup` manifest name → target group name in ELBv2, for those services use.
    target_group_names: BTreeMap<String, String>,
    /// SSM parameters (names) and Secrets Manager secrets (ARNs) that services read and
    /// no `ParameterSet` declares: their existence is checked on every plan.
    external: External,
    /// ECS names of every cluster in the set: where owned services are looked for.
    clusters: Vec<String>,
}

/// Secrets services read from outside the manifests.
#[derive(Default)]
struct External {
    parameters: Vec<String>,
    secrets: Vec<String>,
}

/// The SSM parameter name in a `valueFrom` (a name or a parameter ARN).
fn parameter_name(value_from: &str) -> String {
    match value_from.split_once(":parameter") {
        Some((prefix, name)) if prefix.starts_with("arn:") => name.to_string(),
        _ => value_from.to_string(),
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

/// The referenced parameters and secrets that do not exist. Metadata only: no value is
/// read. One DescribeParameters per 50 names, one DescribeSecret per secret.
async fn missing_secrets(
    ctx: &Context,
    external: &External,
) -> Result<std::collections::BTreeSet<String>, AwsError> {
    let mut missing: std::collections::BTreeSet<String> =
        external.parameters.iter().cloned().collect();
    for chunk in external.parameters.chunks(50) {
        let mut token = None;
        loop {
            let out = ctx
                .aws
                .ssm
                .describe_parameters()
                .parameter_filters(
                    aws_sdk_ssm::types::ParameterStringFilter::builder()
                        .key("Name")
                        .option("Equals")
                        .set_values(Some(chunk.to_vec()))
                        .build()
                        .map_err(|e| AwsError::invalid_request("ssm:DescribeParameters", e))?,
                )
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ssm:DescribeParameters", e))?;
            for p in out.parameters() {
                if let Some(name) = p.name() {
                    missing.remove(name);
                }
            }
            token = out.next_token;
            if token.is_none() {
                break;
            }
        }
    }
    for arn in &external.secrets {
        let out = ctx
            .aws
            .secretsmanager
            .describe_secret()
            .secret_id(arn)
            .send()
            .await;
        if let Err(e) = out {
            let e = AwsError::from_sdk("secretsmanager:DescribeSecret", e);
            if e.category == ErrorCategory::NotFound {
                missing.insert(arn.clone());
            } else {
                return Err(e);
            }
        }
    }
    Ok(missing)
}

impl ServiceReconciler {
    /// The reconciler for the set's services (each with its cluster's ECS name).
    pub fn new(set: &ManifestSet) -> Self {
        let services = set
            .services
            .iter()
            .map(|m| {
                let cluster = set
                    .cluster(&m.spec.cluster)
                    .map(|c| c.spec.aws_name(&c.metadata).to_string())
                    .unwrap_or_else(|| m.spec.cluster.clone());
                let mut m = m.clone();
                if set.scalable_target_for(m.name()).is_some() {
                    // The desired count belongs to the scaler: not compared, never set
                    // after creation.
                    m.spec.desired_count = None;
                }
                (m, cluster)
            })
            .collect();
        let initial_counts = set
            .services
            .iter()
            .map(|m| {
                let scaler_min = set
                    .scalable_target_for(m.name())
                    .map(|t| t.spec.min_capacity);
                let count = m.spec.desired_count.or(scaler_min).unwrap_or(1);
                (
                    m.name().to_string(),
                    i32::try_from(count).unwrap_or(i32::MAX),
                )
            })
            .collect();
        let dependencies = set
            .services
            .iter()
            .map(|m| {
                let mut deps = vec![(Kind::Cluster, m.spec.cluster.clone())];
                deps.extend(m.spec.network.security_groups.dependencies());
                for secret in m.spec.task_definition.container.secrets.values() {
                    let declared = secret
                        .ssm_parameter
                        .as_deref()
                        .and_then(|name| set.parameter_set_declaring(name));
                    if let Some(ps) = declared {
                        deps.push((Kind::ParameterSet, ps.name().to_string()));
                    }
                }
                for lb in &m.spec.load_balancers {
                    if let Some(tg) = &lb.target_group {
                        deps.push((Kind::TargetGroup, tg.clone()));
                        // ECS only attaches target groups that a load balancer uses.
                        for alb in &set.load_balancers {
                            let forwards = alb
                                .spec
                                .listeners
                                .iter()
                                .any(|l| l.default_action.forward.as_ref() == Some(tg));
                            if forwards {
                                deps.push((Kind::LoadBalancer, alb.name().to_string()));
                            }
                        }
                    }
                }
                deps.sort();
                deps.dedup();
                (m.name().to_string(), deps)
            })
            .collect();
        let target_group_names = set
            .services
            .iter()
            .flat_map(|m| m.spec.load_balancers.iter())
            .filter_map(|lb| lb.target_group.as_deref())
            .filter_map(|name| set.target_group(name))
            .map(|tg| {
                (
                    tg.name().to_string(),
                    tg.spec.aws_name(&tg.metadata).to_string(),
                )
            })
            .collect();
        let mut external = External::default();
        for m in &set.services {
            for secret in m.spec.task_definition.container.secrets.values() {
                if let Some(p) = &secret.ssm_parameter {
                    let name = parameter_name(p);
                    if set.parameter_set_declaring(&name).is_none() {
                        external.parameters.push(name);
                    }
                }
                if let Some(arn) = &secret.secrets_manager_arn {
                    external.secrets.push(secret_arn(arn));
                }
            }
        }
        external.parameters.sort();
        external.parameters.dedup();
        external.secrets.sort();
        external.secrets.dedup();
        ServiceReconciler {
            services,
            dependencies,
            initial_counts,
            target_group_names,
            external,
            clusters: set
                .clusters
                .iter()
                .map(|c| c.spec.aws_name(&c.metadata).to_string())
                .collect(),
        }
    }
}

/// What plan saw of one service.
struct Observed {
    manifest: Manifest<ServiceSpec>,
    cluster: String,
    initial_count: i32,
    resolved: Resolved,
    live: Option<Service>,
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

impl ServiceReconciler {
    /// Looks up everything a service's desired state depends on.
    async fn resolve(
        &self,
        ctx: &Context,
        resolver: &mut Resolver,
        target_groups: &BTreeMap<String, String>,
        m: &Manifest<ServiceSpec>,
    ) -> Result<Resolved, ReconcileError> {
        let subnets = resolver
            .resolve(&ctx.aws, Target::Subnets, &m.spec.network.subnets)
            .await?;
        let security_groups = resolver
            .resolve(
                &ctx.aws,
                Target::SecurityGroups,
                &m.spec.network.security_groups,
            )
            .await?;
        let mut secrets = BTreeMap::new();
        for (name, r) in &m.spec.task_definition.container.secrets {
            let arn = match (&r.ssm_parameter, &r.secrets_manager_arn) {
                (Some(p), _) if p.starts_with("arn:") => p.clone(),
                (Some(p), _) => render::ssm_parameter_arn(
                    ctx.aws.partition(),
                    &ctx.aws.region,
                    &ctx.aws.account_id().await?,
                    p,
                ),
                (None, Some(arn)) => arn.clone(),
                (None, None) => continue, // rejected by validation
            };
            secrets.insert(name.clone(), arn);
        }
        Ok(Resolved {
            subnets,
            security_groups,
            secrets,
            region: ctx.aws.region.clone(),
            target_groups: target_groups.clone(),
        })
    }

    /// ARNs of the target groups the services use, by manifest name; those that do not
    /// exist yet are left out. One listing, and none when no service uses one.
    async fn target_group_arns(&self, ctx: &Context) -> Result<BTreeMap<String, String>, AwsError> {
        if self.target_group_names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let all = super::target_group::list_target_groups(ctx).await?;
        Ok(self
            .target_group_names
            .iter()
            .filter_map(|(manifest, aws_name)| {
                let tg = all
                    .iter()
                    .find(|t| t.target_group_name() == Some(aws_name.as_str()))?;
                Some((manifest.clone(), tg.target_group_arn()?.to_string()))
            })
            .collect())
    }

    /// Describes the services of one cluster, 10 per call. Missing ones are left out.
    async fn describe(
        ctx: &Context,
        cluster: &str,
        names: &[String],
    ) -> Result<Vec<Service>, AwsError> {
        let mut found = Vec::new();
        for chunk in names.chunks(DESCRIBE_BATCH) {
            let out = ctx
                .aws
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
        // A deleted service lingers as INACTIVE and can be created again.
        found.retain(|s| s.status() != Some("INACTIVE"));
        Ok(found)
    }

    /// A task definition by ARN, from the cache or ECS.
    async fn task_definition(ctx: &Context, arn: &str) -> Result<Arc<TaskDefinition>, AwsError> {
        if let Some(td) = ctx
            .task_definitions
            .lock()
            .ok()
            .and_then(|c| c.get(arn).cloned())
        {
            return Ok(td);
        }
        let td = describe_task_definition(ctx, arn)
            .await?
            .ok_or_else(|| AwsError {
                operation: "ecs:DescribeTaskDefinition",
                code: None,
                message: format!("task definition {arn} does not exist"),
                category: ErrorCategory::NotFound,
            })?;
        Ok(td)
    }
}

/// DescribeTaskDefinition for an ARN or a family (newest ACTIVE revision); `None` when
/// there is none. Caches the result by ARN.
async fn describe_task_definition(
    ctx: &Context,
    arn_or_family: &str,
) -> Result<Option<Arc<TaskDefinition>>, AwsError> {
    let out = ctx
        .aws
        .ecs
        .describe_task_definition()
        .task_definition(arn_or_family)
        .include(TaskDefinitionField::Tags)
        .send()
        .await;
    match out {
        Ok(out) => {
            let Some(td) = out.task_definition else {
                return Ok(None);
            };
            let td = Arc::new(td);
            if let (Some(arn), Ok(mut cache)) =
                (td.task_definition_arn(), ctx.task_definitions.lock())
            {
                cache.insert(arn.to_string(), td.clone());
            }
            Ok(Some(td))
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

#[async_trait::async_trait]
impl Reconciler for ServiceReconciler {
    fn kind(&self) -> Kind {
        Kind::Service
    }

    fn dependencies(&self, name: &str) -> Vec<(Kind, String)> {
        self.dependencies.get(name).cloned().unwrap_or_default()
    }

    async fn owned(&self, ctx: &Context) -> Option<Result<Vec<Owned>, ReconcileError>> {
        let listed = async {
            let mut owned = Vec::new();
            for cluster in &self.clusters {
                let mut arns = Vec::new();
                let mut token = None;
                loop {
                    let out = ctx
                        .aws
                        .ecs
                        .list_services()
                        .cluster(cluster)
                        .set_next_token(token)
                        .send()
                        .await;
                    let out = match out {
                        Ok(o) => o,
                        Err(e) => {
                            let e = AwsError::from_sdk("ecs:ListServices", e);
                            if e.category == ErrorCategory::NotFound {
                                break; // no cluster, no services
                            }
                            return Err(e);
                        }
                    };
                    arns.extend(out.service_arns().iter().cloned());
                    token = out.next_token;
                    if token.is_none() {
                        break;
                    }
                }
                for s in Self::describe(ctx, cluster, &arns).await? {
                    if s.status() != Some("ACTIVE") {
                        continue; // already being deleted
                    }
                    let name = owner_name(
                        Kind::Service,
                        s.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))),
                    );
                    if let (Some(name), Some(arn)) = (name, s.service_arn()) {
                        owned.push(Owned {
                            name,
                            aws_id: arn.to_string(),
                            scope: Some(cluster.clone()),
                        });
                    }
                }
            }
            Ok::<_, AwsError>(owned)
        };
        Some(listed.await.map_err(Into::into))
    }

    async fn delete(&self, ctx: &Context, owned: &Owned) -> Result<(), ReconcileError> {
        // `force`: stop its tasks rather than require a scale-down to 0 first.
        ctx.aws
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

    async fn plan(&self, ctx: &Context) -> Vec<(String, Result<Planned, ReconcileError>)> {
        // Batched reads: one DescribeServices per cluster and 10 services.
        let mut by_cluster: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (m, cluster) in &self.services {
            by_cluster
                .entry(cluster.as_str())
                .or_default()
                .push(m.spec.aws_name(&m.metadata).to_string());
        }
        let mut live: BTreeMap<(String, String), Service> = BTreeMap::new();
        let mut failed: BTreeMap<String, ReconcileError> = BTreeMap::new();
        for (cluster, names) in by_cluster {
            match Self::describe(ctx, cluster, &names).await {
                Ok(services) => {
                    for s in services {
                        let name = s.service_name().unwrap_or_default().to_string();
                        live.insert((cluster.to_string(), name), s);
                    }
                }
                Err(e) => {
                    failed.insert(cluster.to_string(), e.into());
                }
            }
        }

        let target_groups = match self.target_group_arns(ctx).await {
            Ok(t) => t,
            Err(e) => {
                let e = ReconcileError::from(e);
                return self
                    .services
                    .iter()
                    .map(|(m, _)| (m.name().to_string(), Err(e.clone())))
                    .collect();
            }
        };
        let missing = match missing_secrets(ctx, &self.external).await {
            Ok(m) => m,
            Err(e) => {
                let e = ReconcileError::from(e);
                return self
                    .services
                    .iter()
                    .map(|(m, _)| (m.name().to_string(), Err(e.clone())))
                    .collect();
            }
        };
        let mut resolver = Resolver::default();
        let mut out = Vec::new();
        for (m, cluster) in &self.services {
            let name = m.name().to_string();
            if let Some(e) = failed.get(cluster) {
                out.push((name, Err(e.clone())));
                continue;
            }
            let absent: Vec<String> = m
                .spec
                .task_definition
                .container
                .secrets
                .iter()
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
                .collect();
            if !absent.is_empty() {
                out.push((name, Err(ReconcileError::Requirement(absent))));
                continue;
            }
            let result = async {
                let resolved = self.resolve(ctx, &mut resolver, &target_groups, m).await?;
                let aws_name = m.spec.aws_name(&m.metadata);
                let found = live.get(&(cluster.clone(), aws_name.to_string())).cloned();
                if let Some(conflict) = found.as_ref().and_then(|s| {
                    let tags = s.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)));
                    ownership_conflict(Kind::Service, &m.metadata, tags)
                }) {
                    return Err(ReconcileError::Ownership(format!(
                        "service {cluster}/{aws_name}: {conflict}"
                    )));
                }
                if found.as_ref().is_some_and(|s| s.status() == Some("DRAINING")) {
                    return Err(ReconcileError::Resolve {
                        what: format!("service {aws_name}"),
                        message: "it is being deleted (DRAINING); it can be created again once it is INACTIVE".into(),
                    });
                }
                for d in found.iter().flat_map(|s| s.deployments()) {
                    if d.rollout_state() == Some(&DeploymentRolloutState::Failed)
                        && let Some(arn) = d.task_definition() {
                            remember_failed(ctx, arn);
                        }
                }
                let live_td = match found.as_ref().and_then(|s| s.task_definition()) {
                    Some(arn) => Some(Self::task_definition(ctx, arn).await?),
                    None => None,
                };
                let desired = desired_doc(m, &resolved);
                let live_doc = found.as_ref().map(|s| live_doc(m, s, live_td.as_deref()));
                let changes = diff_managed(&m.metadata, &desired, live_doc.as_ref());
                let action = match (&found, changes.is_empty()) {
                    (None, _) => Action::Create,
                    (Some(_), true) => Action::None,
                    (Some(_), false) => Action::Update,
                };
                debug!(service = aws_name, ?action, changes = changes.len(), "planned");
                Ok(Planned {
                    plan: ResourcePlan {
                        kind: Kind::Service,
                        name: m.name().to_string(),
                        aws_id: found
                            .as_ref()
                            .and_then(|s| s.service_arn())
                            .map_or_else(|| format!("{cluster}/{aws_name}"), str::to_string),
                        action,
                        changes,
                        rollout: found.as_ref().and_then(rollout_of),
                        problems: Vec::new(),
                    },
                    observed: Box::new(Observed {
                        manifest: m.clone(),
                        cluster: cluster.clone(),
                        initial_count: self.initial_counts.get(m.name()).copied().unwrap_or(1),
                        resolved,
                        live: found,
                    }),
                })
            }
            .await;
            out.push((name, result));
        }
        out
    }

    async fn apply(&self, ctx: &Context, planned: &Planned) -> Result<Applied, ReconcileError> {
        let Some(obs) = planned.observed.downcast_ref::<Observed>() else {
            return Err(ReconcileError::NotConverged("plan of another kind".into()));
        };
        let changes = &planned.plan.changes;
        if touches(changes, "launchType") && obs.live.is_some() {
            return Err(ReconcileError::NotConverged(
                "the service does not run on Fargate; changing the launch type needs a new service, which mooring does not do on its own".into(),
            ));
        }
        // A target group created earlier in this apply had no ARN when the service was
        // planned: look it up now.
        let mut resolved = obs.resolved.clone();
        let pending = |r: &Resolved| {
            obs.manifest
                .spec
                .load_balancers
                .iter()
                .filter_map(|lb| lb.target_group.clone())
                .find(|n| !r.target_groups.contains_key(n))
        };
        if pending(&resolved).is_some() {
            resolved.target_groups = self.target_group_arns(ctx).await?;
            if let Some(name) = pending(&resolved) {
                return Err(ReconcileError::Dependency(format!("TargetGroup/{name}")));
            }
        }
        resolved.security_groups = network::settle(
            &ctx.aws,
            Some(&obs.manifest.spec.network.security_groups),
            &resolved.security_groups,
        )
        .await?;
        let td_arn = match &obs.live {
            Some(s) if !touches(changes, "taskDefinition") => {
                s.task_definition().unwrap_or_default().to_string()
            }
            _ => {
                let arn = ensure_task_definition(ctx, obs).await?;
                let failed = ctx.failed_revisions.lock().is_ok_and(|f| f.contains(&arn));
                if failed {
                    return Err(ReconcileError::Rollout(format!(
                        "{arn} failed to deploy before (deployment circuit breaker); it is not deployed again until the manifest changes"
                    )));
                }
                arn
            }
        };

        let mut service = match &obs.live {
            None => {
                let created = create_service(ctx, obs, &resolved, &td_arn).await?;
                // ECS applies every field at creation. moto ignores some of them
                // (deploymentConfiguration, healthCheckGracePeriodSeconds,
                // enableExecuteCommand): compare again and send what is still missing.
                let td = ServiceReconciler::task_definition(ctx, &td_arn).await?;
                let remaining = diff(
                    &desired_doc(&obs.manifest, &resolved),
                    Some(&live_doc(&obs.manifest, &created, Some(&td))),
                );
                if remaining.is_empty() {
                    created
                } else {
                    debug!(
                        fields = remaining.len(),
                        "fields not taken at creation, updating"
                    );
                    update_service(ctx, obs, &resolved, &remaining, &td_arn).await?
                }
            }
            Some(_) => update_service(ctx, obs, &resolved, changes, &td_arn).await?,
        };

        if let Some(limit) = ctx.rollout_wait {
            service = wait_for_rollout(ctx, obs, service, &td_arn, limit).await?;
        }
        Ok(Applied {
            aws_id: service.service_arn().unwrap_or_default().to_string(),
            rollout: rollout_of(&service),
        })
    }
}

/// The ARN of a task definition revision with exactly the manifest's content: the family's
/// newest revision when it matches, otherwise a newly registered one.
async fn ensure_task_definition(ctx: &Context, obs: &Observed) -> Result<String, ReconcileError> {
    let m = &obs.manifest;
    let family = m.spec.family(&m.metadata);
    let desired = render::desired_task_definition(m, &obs.resolved);
    if let Some(latest) = describe_task_definition(ctx, family).await? {
        let same = diff(
            &desired,
            Some(&render::live_task_definition(
                &latest,
                m.spec.container_name(),
            )),
        );
        if same.is_empty()
            && let Some(arn) = latest.task_definition_arn()
        {
            info!(task_definition = arn, "reusing matching revision");
            return Ok(arn.to_string());
        }
    }
    let td = &m.spec.task_definition;
    let out = ctx
        .aws
        .ecs
        .register_task_definition()
        .family(family)
        .cpu(td.cpu.to_string())
        .memory(td.memory.to_string())
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .set_execution_role_arn(td.execution_role_arn.clone())
        .set_task_role_arn(td.task_role_arn.clone())
        .container_definitions(render::container_definition(m, &obs.resolved))
        .set_tags(Some(ecs_tags(&desired_tags(m))))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ecs:RegisterTaskDefinition", e))?;
    let registered = out.task_definition.ok_or_else(|| {
        ReconcileError::NotConverged("RegisterTaskDefinition returned no task definition".into())
    })?;
    let arn = registered
        .task_definition_arn()
        .unwrap_or_default()
        .to_string();
    info!(task_definition = %arn, "registered new revision");
    if let Ok(mut cache) = ctx.task_definitions.lock() {
        cache.insert(arn.clone(), Arc::new(registered));
    }
    Ok(arn)
}

async fn create_service(
    ctx: &Context,
    obs: &Observed,
    resolved: &Resolved,
    td_arn: &str,
) -> Result<Service, ReconcileError> {
    let m = &obs.manifest;
    let spec = &m.spec;
    let lbs = render::load_balancers(spec, resolved);
    let out = ctx
        .aws
        .ecs
        .create_service()
        .cluster(&obs.cluster)
        .service_name(spec.aws_name(&m.metadata))
        .task_definition(td_arn)
        .desired_count(obs.initial_count)
        .launch_type(LaunchType::Fargate)
        .set_network_configuration(render::network_configuration(spec, resolved))
        .deployment_configuration(render::deployment_configuration(spec))
        .set_health_check_grace_period_seconds(
            spec.health_check_grace_period_seconds
                .map(|g| i32::try_from(g).unwrap_or(i32::MAX)),
        )
        .enable_execute_command(spec.enable_execute_command)
        .set_load_balancers((!lbs.is_empty()).then_some(lbs))
        .set_tags(Some(ecs_tags(&desired_tags(m))))
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

/// Sends the parts of the service that `changes` touch: UpdateService for settings, and
/// TagResource for tags. Returns the service as ECS reports it afterwards.
async fn update_service(
    ctx: &Context,
    obs: &Observed,
    resolved: &Resolved,
    changes: &[FieldChange],
    td_arn: &str,
) -> Result<Service, ReconcileError> {
    let m = &obs.manifest;
    let spec = &m.spec;
    let name = spec.aws_name(&m.metadata);
    let mut req = ctx
        .aws
        .ecs
        .update_service()
        .cluster(&obs.cluster)
        .service(name);
    let mut any = false;
    if touches(changes, "taskDefinition") {
        req = req.task_definition(td_arn);
        any = true;
    }
    if touches(changes, "desiredCount")
        && let Some(n) = spec.desired_count
    {
        req = req.desired_count(i32::try_from(n).unwrap_or(i32::MAX));
        any = true;
    }
    if touches(changes, "network") {
        req = req.set_network_configuration(render::network_configuration(spec, resolved));
        any = true;
    }
    if touches(changes, "deployment") {
        req = req.deployment_configuration(render::deployment_configuration(spec));
        any = true;
    }
    if touches(changes, "healthCheckGracePeriodSeconds") {
        req = req.health_check_grace_period_seconds(
            i32::try_from(spec.health_check_grace_period_seconds.unwrap_or(0)).unwrap_or(i32::MAX),
        );
        any = true;
    }
    if touches(changes, "enableExecuteCommand") {
        req = req.enable_execute_command(spec.enable_execute_command);
        any = true;
    }
    if touches(changes, "loadBalancers") {
        req = req.set_load_balancers(Some(render::load_balancers(spec, resolved)));
        any = true;
    }
    let mut service = obs.live.clone();
    if any {
        let out = req
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:UpdateService", e))?;
        service = out.service;
        info!(service = name, "updated service");
    }
    let tags = tags_to_set(changes);
    let arn = service
        .as_ref()
        .and_then(|s| s.service_arn())
        .unwrap_or_default()
        .to_string();
    if !tags.is_empty() {
        ctx.aws
            .ecs
            .tag_resource()
            .resource_arn(&arn)
            .set_tags(Some(ecs_tags(&tags)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:TagResource", e))?;
    }
    service.ok_or_else(|| ReconcileError::NotConverged("UpdateService returned no service".into()))
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
async fn wait_for_rollout(
    ctx: &Context,
    obs: &Observed,
    mut service: Service,
    td_arn: &str,
    limit: Duration,
) -> Result<Service, ReconcileError> {
    let started = Instant::now();
    let name = obs
        .manifest
        .spec
        .aws_name(&obs.manifest.metadata)
        .to_string();
    loop {
        if let Some(reason) = failed_deployment(&service, td_arn) {
            remember_failed(ctx, td_arn);
            return Err(ReconcileError::Rollout(format!(
                "deployment of {td_arn} to {name} failed: {reason}"
            )));
        }
        let Some(r) = rollout_of(&service) else {
            return Ok(service);
        };
        if let Some(primary) = r.task_definition.as_deref().filter(|p| *p != td_arn) {
            remember_failed(ctx, td_arn);
            return Err(ReconcileError::Rollout(format!(
                "ECS rolled {name} back to {primary} ({})",
                r.reason.unwrap_or_else(|| "no reason given".into())
            )));
        }
        if r.is_failed() {
            remember_failed(ctx, td_arn);
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
        tokio::time::sleep(ctx.rollout_poll.min(limit)).await;
        let found =
            ServiceReconciler::describe(ctx, &obs.cluster, std::slice::from_ref(&name)).await?;
        service = found.into_iter().next().ok_or_else(|| {
            ReconcileError::Rollout(format!("service {name} disappeared during its rollout"))
        })?;
    }
}

fn remember_failed(ctx: &Context, td_arn: &str) {
    if let Ok(mut failed) = ctx.failed_revisions.lock() {
        failed.insert(td_arn.to_string());
    }
}


#[cfg(test)]
mod secret_ref_tests {
    use super::*;

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
}
