//! `kind: Service` — an ECS service on Fargate, with the task definition it runs.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kinds::from::Value;
use crate::manifest::Metadata;
pub use crate::manifest::common::{NetworkLookup, NetworkSelector};
use crate::manifest::common::{check_aws_name, check_tags};
use crate::manifest::error::Findings;

/// A Fargate service and the task definition it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    /// `metadata.name` of the `Cluster` manifest the service runs in.
    pub cluster: String,
    /// Name of the service in ECS. Defaults to `metadata.name`.
    #[serde(default)]
    pub service_name: Option<String>,
    /// Number of tasks to run. When unset, a new service starts with 1 task and mooring
    /// leaves the count alone afterwards (someone else, e.g. autoscaling, owns it).
    #[serde(default)]
    pub desired_count: Option<u32>,
    /// The task definition: a new revision is registered only when this changes.
    pub task_definition: TaskDefinitionSpec,
    /// Where the tasks run (awsvpc).
    pub network: NetworkSpec,
    /// Rolling deployment settings.
    #[serde(default)]
    pub deployment: DeploymentSpec,
    /// Seconds to ignore failing load balancer health checks after a task starts.
    #[serde(default)]
    pub health_check_grace_period_seconds: Option<u32>,
    /// Allow `aws ecs execute-command` into the tasks.
    #[serde(default)]
    pub enable_execute_command: bool,
    /// The Fargate platform version: `LATEST` (default) or a version such as `1.4.0`. A
    /// service pinned to another version by hand is drift.
    #[serde(default)]
    pub platform_version: Option<String>,
    /// Where tasks run, instead of the `FARGATE` launch type: a capacity provider strategy
    /// of `FARGATE` and `FARGATE_SPOT`, e.g. `[{capacityProvider: FARGATE_SPOT, weight: 3},
    /// {capacityProvider: FARGATE, weight: 1, base: 1}]`. Unset: the `FARGATE` launch type.
    /// The cluster must have the providers (the `Cluster` manifest's `capacityProviders`).
    #[serde(default)]
    pub capacity_provider_strategy: Vec<CapacityProviderItem>,
    /// `FARGATE`, the default when there is no `capacityProviderStrategy` (with which it
    /// cannot be combined).
    #[serde(default)]
    pub launch_type: Option<LaunchTypeSpec>,
    /// Target groups the service registers its tasks with.
    #[serde(default)]
    pub load_balancers: Vec<LoadBalancerSpec>,
    /// Tags to put on the service and its task definitions (the ownership tags are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// What happens around a deploy (a move to a new task definition revision).
    #[serde(default)]
    pub deploy: DeploySpec,
}

/// One capacity provider of a service's strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CapacityProviderItem {
    /// `FARGATE` or `FARGATE_SPOT`.
    pub capacity_provider: FargateCapacityProvider,
    /// The share of tasks placed with this provider, relative to the others (0-1000).
    /// AWS default 0.
    #[serde(default)]
    pub weight: Option<u32>,
    /// Tasks that run on this provider before the weights apply (0-100000; at most one
    /// provider may have a base). AWS default 0.
    #[serde(default)]
    pub base: Option<u32>,
}

/// The launch type mooring runs services with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LaunchTypeSpec {
    /// Fargate.
    #[serde(rename = "FARGATE")]
    Fargate,
}

/// The Fargate capacity providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum FargateCapacityProvider {
    /// On-demand Fargate.
    #[serde(rename = "FARGATE")]
    Fargate,
    /// Fargate Spot: cheaper, and tasks may be stopped with two minutes' notice.
    #[serde(rename = "FARGATE_SPOT")]
    FargateSpot,
}

impl FargateCapacityProvider {
    /// The provider's name in ECS.
    pub fn as_str(self) -> &'static str {
        match self {
            FargateCapacityProvider::Fargate => "FARGATE",
            FargateCapacityProvider::FargateSpot => "FARGATE_SPOT",
        }
    }
}

/// What happens around a deploy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeploySpec {
    /// A one-off task (e.g. database migrations) run from the new revision before the
    /// service moves to it; the service is updated only when it succeeds.
    #[serde(default)]
    pub pre_deploy: Option<super::predeploy::PreDeploySpec>,
    /// Deploy again when a secret the container reads gets a new version (an SSM
    /// parameter's version, a Secrets Manager secret's current version ID; never the
    /// value). The versions ride in the environment variable `MOORING_SECRETS_VERSION`, so
    /// the task definition changes and ECS starts new tasks, which read the new values.
    /// Default true.
    #[serde(default)]
    pub restart_on_secret_change: Option<bool>,
    /// An HTTP check after the rollout completes; a deploy that fails it is a failed
    /// deploy (notified), rolled back with `rollbackOnFailure`.
    #[serde(default)]
    pub verify: Option<super::verify::VerifySpec>,
    /// When `verify` fails: roll the service back out to the revision it ran before the
    /// deploy, and do not deploy the failed revision again until the manifest changes.
    /// Default false (the service stays on the new revision).
    #[serde(default)]
    pub rollback_on_failure: bool,
}

/// Task-level settings of the task definition (Fargate, awsvpc, the service's container and
/// its sidecars).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskDefinitionSpec {
    /// Task definition family. Defaults to the service's name.
    #[serde(default)]
    pub family: Option<String>,
    /// CPU units (256 = 0.25 vCPU). Must form a valid Fargate pair with `memory`.
    pub cpu: u32,
    /// Memory in MiB. Must form a valid Fargate pair with `cpu`.
    pub memory: u32,
    /// Role ECS uses to pull the image, write logs and read secrets.
    #[serde(default)]
    pub execution_role_arn: Option<String>,
    /// Role the application's own AWS calls use.
    #[serde(default)]
    pub task_role_arn: Option<String>,
    /// The application container: the one load balancers send traffic to, the pre-deploy
    /// task runs its command in, and a deploy is named after. Always essential.
    pub container: ContainerSpec,
    /// More containers in the same task (a log router, a proxy, a worker, a one-off init
    /// step), each with a `name`. They take the same fields as `container`, including
    /// `essential` and `dependsOn`; images followed by digest and secret versions work for
    /// each of them.
    #[serde(default)]
    pub sidecars: Vec<ContainerSpec>,
    /// Ephemeral storage of each task in GiB (21-200). Unset: Fargate's 20 GiB.
    #[serde(default)]
    pub ephemeral_storage: Option<EphemeralStorageSpec>,
    /// CPU architecture and operating system. Unset: `X86_64` on `LINUX`, Fargate's
    /// default. ARM64 (Graviton) needs images built for arm64.
    #[serde(default)]
    pub runtime_platform: Option<RuntimePlatformSpec>,
}

/// The task's ephemeral storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EphemeralStorageSpec {
    /// Size in GiB (21-200).
    #[serde(rename = "sizeInGiB")]
    pub size_in_gib: u32,
}

/// The task's platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuntimePlatformSpec {
    /// `X86_64` (default) or `ARM64`.
    #[serde(default)]
    pub cpu_architecture: Option<CpuArchitecture>,
    /// `LINUX` (the only family mooring runs).
    #[serde(default)]
    pub operating_system_family: Option<OperatingSystemFamily>,
}

/// A CPU architecture Fargate runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CpuArchitecture {
    /// Intel/AMD, the default.
    #[serde(rename = "X86_64")]
    X86_64,
    /// Graviton.
    #[serde(rename = "ARM64")]
    Arm64,
}

impl CpuArchitecture {
    /// The name ECS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            CpuArchitecture::X86_64 => "X86_64",
            CpuArchitecture::Arm64 => "ARM64",
        }
    }
}

/// An operating system family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OperatingSystemFamily {
    /// Linux, the default.
    #[serde(rename = "LINUX")]
    Linux,
}

impl OperatingSystemFamily {
    /// The name ECS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatingSystemFamily::Linux => "LINUX",
        }
    }
}

/// A container that must reach a state before this one starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DependsOnSpec {
    /// The other container's `name`.
    pub container_name: String,
    /// `START` (it started), `COMPLETE` (it exited), `SUCCESS` (it exited 0) or `HEALTHY`
    /// (its health check passed). `COMPLETE` and `SUCCESS` only on a non-essential
    /// container, `HEALTHY` only on one with a `healthCheck`.
    pub condition: DependencyCondition,
}

/// The state a container waits for in another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum DependencyCondition {
    /// The other container started.
    Start,
    /// The other container exited.
    Complete,
    /// The other container exited 0.
    Success,
    /// The other container's health check passed.
    Healthy,
}

impl DependencyCondition {
    /// The name ECS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            DependencyCondition::Start => "START",
            DependencyCondition::Complete => "COMPLETE",
            DependencyCondition::Success => "SUCCESS",
            DependencyCondition::Healthy => "HEALTHY",
        }
    }
}

/// A container of the task definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerSpec {
    /// Container name. Defaults to `app` for `container`; required for a sidecar.
    #[serde(default)]
    pub name: Option<String>,
    /// Image reference, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:1.4.2`.
    /// Exactly one of `image` and `repository` with `tag`.
    #[serde(default)]
    pub image: Option<String>,
    /// `metadata.name` of a `Repository` manifest the image is in (with `tag`): the image
    /// is `<repository URI>:<tag>`, and the repository is created before the service.
    #[serde(default)]
    pub repository: Option<String>,
    /// The image tag in `repository`, e.g. `1.4.2`.
    #[serde(default)]
    pub tag: Option<String>,
    /// How a new image under the same tag reaches the tasks. Unset: an image in ECR (an
    /// ECR URI, or `repository` with `tag`) is followed by digest unless its repository
    /// is IMMUTABLE; other images keep their tag. `digest`: resolve the tag to its digest
    /// on every pass (ECR images only), even in an IMMUTABLE repository. `tag`: register
    /// the tag as written; a push of the same tag is never seen.
    #[serde(default)]
    pub image_update: Option<ImageUpdate>,
    /// Port the application listens on (TCP).
    #[serde(default)]
    pub port: Option<u16>,
    /// Command override.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Plain environment variables. Values may be written as numbers or booleans; they are
    /// passed as strings. A value may be read from another manifest's live resource:
    /// `REDIS_HOST: {from: ReplicationGroup/redis, field: primaryEndpoint.address}`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, crate::kinds::from::ScalarValue>")]
    pub environment: BTreeMap<String, Value>,
    /// Environment variables whose values ECS reads from SSM Parameter Store or Secrets
    /// Manager when a task starts. Only the reference lives in git.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretRef>,
    /// Container health check.
    #[serde(default)]
    pub health_check: Option<HealthCheckSpec>,
    /// awslogs log configuration.
    #[serde(default)]
    pub logs: Option<LogsSpec>,
    /// Whether the task stops when this container exits. Default true; the service's
    /// `container` is always essential, a sidecar may set `false`.
    #[serde(default)]
    pub essential: Option<bool>,
    /// Containers that must reach a state before this one starts.
    #[serde(default)]
    pub depends_on: Vec<DependsOnSpec>,
}

/// How a container's image tag is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageUpdate {
    /// The task definition names the tag's digest (`repo@sha256:…`), resolved each pass.
    Digest,
    /// The task definition names the tag.
    Tag,
}

/// Where a secret's value lives. Exactly one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretRef {
    /// SSM parameter name (`/prd/db/password`) or ARN.
    #[serde(default)]
    pub ssm_parameter: Option<String>,
    /// Secrets Manager secret ARN (optionally with `:json-key::` suffix).
    #[serde(default)]
    pub secrets_manager_arn: Option<String>,
}

/// Container health check: either an HTTP path probed with `curl` or an explicit command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthCheckSpec {
    /// HTTP path to probe on the container's port, e.g. `/api/health`. Becomes
    /// `CMD-SHELL curl -f 'http://localhost:PORT/PATH' || exit 1` (the image needs curl).
    #[serde(default)]
    pub http_path: Option<String>,
    /// Explicit health check command, e.g. `["CMD-SHELL", "wget -q -O- localhost:3000/health"]`.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Seconds between checks (5-300). AWS default 30.
    #[serde(default)]
    pub interval_seconds: Option<u32>,
    /// Seconds before a check counts as failed (2-60). AWS default 5.
    #[serde(default)]
    pub timeout_seconds: Option<u32>,
    /// Consecutive failures before the container is unhealthy (1-10). AWS default 3.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Grace period in seconds for a starting container (0-300). AWS default 0.
    #[serde(default)]
    pub start_period_seconds: Option<u32>,
}

/// awslogs driver settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogsSpec {
    /// CloudWatch Logs group, e.g. `/ecs/api`.
    pub group: String,
    /// Stream prefix. Defaults to `ecs`.
    #[serde(default)]
    pub stream_prefix: Option<String>,
    /// Region of the log group. Defaults to the region mooring runs against.
    #[serde(default)]
    pub region: Option<String>,
    /// Let the awslogs driver create the group if it is missing (`awslogs-create-group`).
    #[serde(default)]
    pub create_group: bool,
}

/// awsvpc network settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Subnets for the tasks.
    pub subnets: NetworkSelector,
    /// Security groups for the tasks.
    pub security_groups: NetworkSelector,
    /// Give tasks a public IP (needed in public subnets without a NAT gateway).
    #[serde(default)]
    pub assign_public_ip: bool,
}

/// True when an image reference names an Alpine base (`node:20-alpine`,
/// `alpine:3.20`, `…/app:1.2-alpine3.19`).
fn is_alpine(image: &str) -> bool {
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split([':', '-', '@', '.'])
        .any(|part| part.starts_with("alpine"))
}

/// The platform version ECS runs Fargate tasks on when none is given.
pub const LATEST_PLATFORM: &str = "LATEST";

/// The environment variable that carries the versions of a container's secrets.
pub const SECRETS_VERSION_ENV: &str = "MOORING_SECRETS_VERSION";

/// Rolling deployment settings. Unset fields take the AWS defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// Stop a failing deployment and optionally roll back. AWS default: off.
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    /// Lower bound of running tasks during a deployment, in percent of desired (0-100).
    /// AWS default 100.
    #[serde(default)]
    pub minimum_healthy_percent: Option<u32>,
    /// Upper bound of running tasks during a deployment, in percent of desired (100-200).
    /// AWS default 200.
    #[serde(default)]
    pub maximum_percent: Option<u32>,
}

/// The deployment circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CircuitBreakerSpec {
    /// Turn the circuit breaker on.
    pub enable: bool,
    /// Roll back to the last completed deployment when it trips.
    pub rollback: bool,
}

/// A target group the service's tasks are registered with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadBalancerSpec {
    /// `metadata.name` of a `TargetGroup` manifest. Exactly one of `targetGroup` and
    /// `targetGroupArn`.
    #[serde(default)]
    pub target_group: Option<String>,
    /// ARN of a target group mooring does not manage (`ip` target type).
    #[serde(default)]
    pub target_group_arn: Option<String>,
    /// Container port to register. Defaults to the container's `port`.
    #[serde(default)]
    pub container_port: Option<u16>,
}

/// Default container name.
pub const DEFAULT_CONTAINER_NAME: &str = "app";

/// The CPU/memory pairs Fargate accepts (memory in MiB).
pub fn fargate_memory_options(cpu: u32) -> Option<Vec<u32>> {
    let range = |from: u32, to: u32, step: u32| (from..=to).step_by(step as usize).collect();
    Some(match cpu {
        256 => vec![512, 1024, 2048],
        512 => range(1024, 4096, 1024),
        1024 => range(2048, 8192, 1024),
        2048 => range(4096, 16384, 1024),
        4096 => range(8192, 30720, 1024),
        8192 => range(16384, 61440, 4096),
        16384 => range(32768, 122880, 8192),
        _ => return None,
    })
}

impl ServiceSpec {
    /// The service's name in ECS.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.service_name.as_deref().unwrap_or(&meta.name)
    }

    /// The task definition family.
    pub fn family<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.task_definition
            .family
            .as_deref()
            .unwrap_or_else(|| self.aws_name(meta))
    }

    /// The container's name.
    pub fn container_name(&self) -> &str {
        self.task_definition
            .container
            .name
            .as_deref()
            .unwrap_or(DEFAULT_CONTAINER_NAME)
    }

    /// Every container of the task definition with the pointer of its manifest entry: the
    /// service's `container` first, then the sidecars in manifest order.
    pub fn containers(&self) -> impl Iterator<Item = (String, &ContainerSpec)> {
        std::iter::once((
            "/spec/taskDefinition/container".to_string(),
            &self.task_definition.container,
        ))
        .chain(
            self.task_definition
                .sidecars
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("/spec/taskDefinition/sidecars/{i}"), c)),
        )
    }

    /// The sidecars with their names (a sidecar without one is refused by validation).
    pub fn sidecars(&self) -> impl Iterator<Item = (&str, &ContainerSpec)> {
        self.task_definition
            .sidecars
            .iter()
            .map(|c| (c.name.as_deref().unwrap_or_default(), c))
    }

    /// Checks what the schema cannot express: Fargate sizes, ranges, exclusive fields.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        check_aws_name(self.aws_name(meta), "/spec/serviceName", f);
        check_aws_name(self.family(meta), "/spec/taskDefinition/family", f);
        check_aws_name(
            self.container_name(),
            "/spec/taskDefinition/container/name",
            f,
        );
        check_tags(&self.tags, "/spec/tags", f);

        let td = &self.task_definition;
        match fargate_memory_options(td.cpu) {
            None => f.at(
                "/spec/taskDefinition/cpu",
                format!(
                    "{} is not a Fargate CPU size (256, 512, 1024, 2048, 4096, 8192, 16384)",
                    td.cpu
                ),
            ),
            Some(options) if !options.contains(&td.memory) => f.at(
                "/spec/taskDefinition/memory",
                format!(
                    "Fargate does not run cpu {} with memory {}; valid memory for cpu {}: {}",
                    td.cpu,
                    td.memory,
                    td.cpu,
                    describe_options(&options)
                ),
            ),
            Some(_) => {}
        }
        for (field, arn) in [
            ("executionRoleArn", &td.execution_role_arn),
            ("taskRoleArn", &td.task_role_arn),
        ] {
            if let Some(arn) = arn
                && !(arn.starts_with("arn:") && arn.contains(":iam::") && arn.contains(":role/"))
            {
                f.at(
                    &format!("/spec/taskDefinition/{field}"),
                    format!("`{arn}` is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"),
                );
            }
        }

        if td.execution_role_arn.is_none()
            && self
                .containers()
                .any(|(_, c)| c.logs.is_some() || !c.secrets.is_empty())
        {
            f.at(
                "/spec/taskDefinition",
                "`executionRoleArn` is required when a container has `logs` or `secrets` (ECS uses that role to write logs and read secrets)",
            );
        }
        for (base, c) in self.containers() {
            check_container(c, &base, f);
        }
        self.check_sidecars(f);
        self.check_task_platform(f);
        self.check_capacity_providers(f);
        self.check_network(f);
        self.check_deployment(f);
        super::predeploy::check(self, f);
        super::verify::check(self, f);

        if let Some(v) = &self.platform_version
            && v != LATEST_PLATFORM
            && !(v.split('.').count() == 3
                && v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
        {
            f.at(
                "/spec/platformVersion",
                format!("`{v}` is not a Fargate platform version: `LATEST` or e.g. `1.4.0`"),
            );
        }
        if let Some(grace) = self.health_check_grace_period_seconds
            && grace > 2_147_483_647
        {
            f.at(
                "/spec/healthCheckGracePeriodSeconds",
                "must be at most 2147483647",
            );
        }
        for (i, lb) in self.load_balancers.iter().enumerate() {
            let p = format!("/spec/loadBalancers/{i}");
            match (&lb.target_group, &lb.target_group_arn) {
                (Some(_), Some(_)) | (None, None) => {
                    f.at(&p, "set exactly one of `targetGroup` and `targetGroupArn`")
                }
                (None, Some(arn)) => {
                    if !(arn.starts_with("arn:") && arn.contains(":targetgroup/")) {
                        f.at(
                            &format!("{p}/targetGroupArn"),
                            format!("`{arn}` is not a target group ARN"),
                        );
                    }
                }
                (Some(_), None) => {} // resolved across documents
            }
            // The task definition maps exactly one port: the container's `port`.
            match (lb.container_port, td.container.port) {
                (_, None) => f.at(
                    &format!("{p}/containerPort"),
                    "a load balancer needs the container's `port` (the only port mapped)",
                ),
                (Some(lb_port), Some(port)) if lb_port != port => f.at(
                    &format!("{p}/containerPort"),
                    format!("{lb_port} is not mapped: the container's `port` is {port}"),
                ),
                _ => {}
            }
        }
    }

    /// Sidecar names, `essential`, and `dependsOn` across the containers: names unique,
    /// every dependency an existing other container, no cycle, the conditions ECS accepts.
    fn check_sidecars(&self, f: &mut Findings<'_>) {
        let main = self.container_name();
        if self.task_definition.container.essential == Some(false) {
            f.at(
                "/spec/taskDefinition/container/essential",
                "the service's container is always essential (load balancers, the pre-deploy task and deploys follow it); set `essential: false` on a sidecar instead",
            );
        }
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        seen.insert(main, "/spec/taskDefinition/container/name".to_string());
        for (i, c) in self.task_definition.sidecars.iter().enumerate() {
            let p = format!("/spec/taskDefinition/sidecars/{i}");
            let Some(name) = c.name.as_deref() else {
                f.at(&p, "a sidecar needs a `name`");
                continue;
            };
            check_aws_name(name, &format!("{p}/name"), f);
            if let Some(first) = seen.get(name) {
                f.at(
                    &format!("{p}/name"),
                    format!("container name `{name}` is already used at {first}"),
                );
            } else {
                seen.insert(name, format!("{p}/name"));
            }
        }
        let by_name: BTreeMap<&str, &ContainerSpec> = std::iter::once((main, &self.task_definition.container))
            .chain(self.sidecars())
            .collect();
        for (base, c) in self.containers() {
            let own = if base.ends_with("/container") {
                main
            } else {
                c.name.as_deref().unwrap_or_default()
            };
            let mut targets = BTreeSet::new();
            for (j, d) in c.depends_on.iter().enumerate() {
                let p = format!("{base}/dependsOn/{j}/containerName");
                let target = d.container_name.as_str();
                if !targets.insert(target) {
                    f.at(&p, format!("`{target}` is named twice in `dependsOn`"));
                }
                if target == own {
                    f.at(&p, "a container cannot depend on itself");
                    continue;
                }
                let Some(other) = by_name.get(target) else {
                    f.at(
                        &p,
                        format!(
                            "no container `{target}` in the task definition (containers: {})",
                            by_name.keys().copied().collect::<Vec<_>>().join(", ")
                        ),
                    );
                    continue;
                };
                let cond = format!("{base}/dependsOn/{j}/condition");
                match d.condition {
                    DependencyCondition::Complete | DependencyCondition::Success
                        if other.essential != Some(false) =>
                    {
                        f.at(
                            &cond,
                            format!(
                                "`{}` waits for `{target}` to exit, and ECS allows that only on a non-essential container: set `essential: false` on `{target}`",
                                d.condition.as_str()
                            ),
                        )
                    }
                    DependencyCondition::Healthy if other.health_check.is_none() => f.at(
                        &cond,
                        format!("`HEALTHY` needs a `healthCheck` on `{target}`"),
                    ),
                    _ => {}
                }
            }
        }
        if let Some(cycle) = dependency_cycle(&by_name) {
            f.at(
                "/spec/taskDefinition",
                format!(
                    "the containers' `dependsOn` form a cycle ({}): no container could start",
                    cycle.join(" -> ")
                ),
            );
        }
    }

    fn check_task_platform(&self, f: &mut Findings<'_>) {
        if let Some(e) = &self.task_definition.ephemeral_storage
            && !(EPHEMERAL_MIN..=EPHEMERAL_MAX).contains(&e.size_in_gib)
        {
            f.at(
                "/spec/taskDefinition/ephemeralStorage/sizeInGiB",
                format!(
                    "{} is outside {EPHEMERAL_MIN}-{EPHEMERAL_MAX} (leave `ephemeralStorage` out for Fargate's {EPHEMERAL_DEFAULT} GiB)",
                    e.size_in_gib
                ),
            );
        }
    }

    fn check_capacity_providers(&self, f: &mut Findings<'_>) {
        if self.capacity_provider_strategy.is_empty() {
            return;
        }
        if self.launch_type.is_some() {
            f.at(
                "/spec/capacityProviderStrategy",
                "set either `launchType` or `capacityProviderStrategy`, not both",
            );
        }
        check_strategy(
            &self.capacity_provider_strategy,
            "/spec/capacityProviderStrategy",
            f,
        );
    }
}

/// Checks a capacity provider strategy (a service's, or a cluster's default) at `pointer`:
/// each provider once, weights and bases in ECS's ranges, one base at most, some weight.
pub fn check_strategy(strategy: &[CapacityProviderItem], pointer: &str, f: &mut Findings<'_>) {
    if strategy.is_empty() {
        return;
    }
    let mut seen = BTreeSet::new();
    for (i, item) in strategy.iter().enumerate() {
        let p = format!("{pointer}/{i}");
        if !seen.insert(item.capacity_provider) {
            f.at(
                &format!("{p}/capacityProvider"),
                format!("`{}` is listed twice", item.capacity_provider.as_str()),
            );
        }
        if let Some(w) = item.weight
            && w > 1000
        {
            f.at(&format!("{p}/weight"), format!("{w} is outside 0-1000"));
        }
        if let Some(b) = item.base
            && b > 100_000
        {
            f.at(&format!("{p}/base"), format!("{b} is outside 0-100000"));
        }
    }
    if strategy.iter().filter(|i| i.base.unwrap_or(0) > 0).count() > 1 {
        f.at(pointer, "only one capacity provider may have a `base`");
    }
    // ECS: with several providers at least one needs a weight above 0; a single one may
    // have none (CloudFormation's `- CapacityProvider: FARGATE`, which import writes).
    if strategy.len() > 1 && strategy.iter().all(|i| i.weight.unwrap_or(0) == 0) {
        f.at(
            pointer,
            "with several capacity providers, at least one needs a `weight` above 0",
        );
    }
}

/// A cycle in the containers' `dependsOn`, as the names along it, if there is one.
fn dependency_cycle(by_name: &BTreeMap<&str, &ContainerSpec>) -> Option<Vec<String>> {
    fn visit<'a>(
        name: &'a str,
        by_name: &BTreeMap<&'a str, &'a ContainerSpec>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == name) {
            let mut cycle: Vec<String> = path[at..].iter().map(|n| n.to_string()).collect();
            cycle.push(name.to_string());
            return Some(cycle);
        }
        if !done.insert(name) {
            return None;
        }
        path.push(name);
        for d in by_name.get(name).map(|c| c.depends_on.as_slice()).unwrap_or_default() {
            if let Some((target, _)) = by_name.get_key_value(d.container_name.as_str())
                && let Some(c) = visit(target, by_name, path, done)
            {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for name in by_name.keys() {
        if let Some(c) = visit(name, by_name, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// Fargate's ephemeral storage: the default, and the range a task definition may ask for.
pub const EPHEMERAL_DEFAULT: u32 = 20;
const EPHEMERAL_MIN: u32 = 21;
const EPHEMERAL_MAX: u32 = 200;

/// Checks one container (the service's or a sidecar) at `base`.
fn check_container(c: &ContainerSpec, base: &str, f: &mut Findings<'_>) {
        match (&c.image, &c.repository, &c.tag) {
            (Some(image), None, None) => {
                if image.trim().is_empty() || image.contains(char::is_whitespace) {
                    f.at(
                        &format!("{base}/image"),
                        "must be a non-empty image reference without spaces",
                    );
                }
            }
            (None, Some(_), Some(tag)) => {
                if !crate::kinds::repository::spec::valid_tag(tag) {
                    f.at(
                        &format!("{base}/tag"),
                        format!(
                            "`{tag}` is not an image tag (1-128 of A-Z, a-z, 0-9, `_`, `.`, `-`, not starting with `.` or `-`)"
                        ),
                    );
                }
            }
            (Some(_), _, _) => f.at(
                &format!("{base}/image"),
                "set either `image` or `repository` with `tag`, not both",
            ),
            (None, Some(_), None) => f.at(
                &format!("{base}/repository"),
                "`repository` needs a `tag`: the image tag to run, e.g. `tag: 1.4.2`",
            ),
            (None, None, Some(_)) => f.at(
                &format!("{base}/tag"),
                "`tag` needs `repository`: the `Repository` manifest the image is in",
            ),
            (None, None, None) => f.at(
                base,
                "set `image` (a full image reference) or `repository` and `tag`",
            ),
        }
        if c.image_update == Some(ImageUpdate::Digest)
            && let Some(image) = &c.image
            && crate::kinds::service::image::EcrImage::parse(image).is_none()
        {
            f.at(
                &format!("{base}/imageUpdate"),
                format!(
                    "`digest` follows images in ECR, and `{image}` is not an ECR image (ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME:TAG); pin its digest in `image` instead, or use `repository` with `tag`"
                ),
            );
        }
        if c.port == Some(0) {
            f.at(&format!("{base}/port"), "ports are 1-65535");
        }
        let image = c.image.clone().unwrap_or_else(|| {
            format!(
                "{}:{}",
                c.repository.as_deref().unwrap_or_default(),
                c.tag.as_deref().unwrap_or_default()
            )
        });
        if let Some(hc) = &c.health_check
            && is_alpine(&image)
        {
            let curl = hc.http_path.is_some()
                || hc
                    .command
                    .iter()
                    .flatten()
                    .any(|part| part.split_whitespace().any(|w| w == "curl"));
            if curl {
                let path = hc.http_path.as_deref().unwrap_or("/health");
                let port = c.port.unwrap_or(80);
                f.warn(
                    &format!("{base}/healthCheck"),
                    format!(
                        "the health check runs curl, but `{}` looks Alpine-based and Alpine images ship without curl: every check would fail and ECS would keep replacing the tasks. Install curl in the image, or check with BusyBox wget: `command: [CMD-SHELL, \"wget -q -O /dev/null http://localhost:{port}{path} || exit 1\"]`",
                        image
                    ),
                );
            }
        }
        for name in c.environment.keys().chain(c.secrets.keys()) {
            if name == SECRETS_VERSION_ENV {
                f.at(
                    &format!("{base}/environment/{name}"),
                    format!("`{name}` is set by mooring (the versions of the secrets the container reads)"),
                );
            }
            if !is_env_name(name) {
                let p = if c.environment.contains_key(name) {
                    format!("{base}/environment/{name}")
                } else {
                    format!("{base}/secrets/{name}")
                };
                f.at(
                    &p,
                    format!("`{name}` is not a valid environment variable name"),
                );
            }
        }
        for (name, secret) in &c.secrets {
            let p = format!("{base}/secrets/{}", crate::manifest::yaml::escape_segment(name));
            if c.environment.contains_key(name) {
                f.at(
                    &p,
                    format!("`{name}` is set both in `environment` and in `secrets`"),
                );
            }
            match (&secret.ssm_parameter, &secret.secrets_manager_arn) {
                (Some(_), Some(_)) | (None, None) => f.at(
                    &p,
                    "set exactly one of `ssmParameter` and `secretsManagerArn`",
                ),
                (Some(param), None) => {
                    let ok = param.starts_with("arn:")
                        && param.contains(":ssm:")
                        && param.contains(":parameter/")
                        || !param.starts_with("arn:") && !param.is_empty() && param.len() <= 2048;
                    if !ok {
                        f.at(
                            &format!("{p}/ssmParameter"),
                            format!("`{param}` is not an SSM parameter name or ARN"),
                        );
                    }
                }
                (None, Some(arn)) => {
                    if !(arn.starts_with("arn:") && arn.contains(":secretsmanager:")) {
                        f.at(
                            &format!("{p}/secretsManagerArn"),
                            format!("`{arn}` is not a Secrets Manager ARN"),
                        );
                    }
                }
            }
        }
        if let Some(hc) = &c.health_check {
            let p = format!("{base}/healthCheck");
            match (&hc.http_path, &hc.command) {
                (Some(_), Some(_)) | (None, None) => {
                    f.at(&p, "set exactly one of `httpPath` and `command`")
                }
                (Some(path), None) => {
                    if !path.starts_with('/') {
                        f.at(&format!("{p}/httpPath"), "must start with `/`");
                    }
                    // The path goes inside single quotes in a CMD-SHELL command: only URL
                    // characters, and never a quote.
                    let url_char =
                        |c: char| c.is_ascii_alphanumeric() || "-._~!$&()*+,;=:@/?%".contains(c);
                    if !path.chars().all(url_char) {
                        f.at(
                            &format!("{p}/httpPath"),
                            "may contain only URL path characters (no spaces, quotes or control characters)",
                        );
                    }
                    if c.port.is_none() {
                        f.at(&p, "`httpPath` needs the container's `port`");
                    }
                }
                (None, Some(cmd)) => {
                    let ok = matches!(cmd.first().map(String::as_str), Some("CMD" | "CMD-SHELL"))
                        && cmd.len() >= 2;
                    if !ok {
                        f.at(
                            &format!("{p}/command"),
                            "must start with `CMD` or `CMD-SHELL` followed by the command",
                        );
                    }
                }
            }
            for (field, value, lo, hi) in [
                ("intervalSeconds", hc.interval_seconds, 5, 300),
                ("timeoutSeconds", hc.timeout_seconds, 2, 60),
                ("retries", hc.retries, 1, 10),
                ("startPeriodSeconds", hc.start_period_seconds, 0, 300),
            ] {
                if let Some(v) = value
                    && !(lo..=hi).contains(&v)
                {
                    f.at(&format!("{p}/{field}"), format!("{v} is outside {lo}-{hi}"));
                }
            }
            if let (Some(i), Some(t)) = (hc.interval_seconds, hc.timeout_seconds)
                && t >= i
            {
                f.at(
                    &format!("{p}/timeoutSeconds"),
                    "must be shorter than `intervalSeconds`",
                );
            }
        }
        if let Some(logs) = &c.logs {
            let ok = !logs.group.is_empty()
                && logs.group.len() <= 512
                && logs
                    .group
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-/#".contains(&b));
            if !ok {
                f.at(
                    &format!("{base}/logs/group"),
                    format!("`{}` is not a valid log group name", logs.group),
                );
            }
        }
    }

impl ServiceSpec {
    fn check_network(&self, f: &mut Findings<'_>) {
        self.network
            .subnets
            .check("/spec/network/subnets", false, f);
        self.network
            .security_groups
            .check("/spec/network/securityGroups", true, f);
    }

    fn check_deployment(&self, f: &mut Findings<'_>) {
        let d = &self.deployment;
        if let Some(min) = d.minimum_healthy_percent
            && min > 100
        {
            f.at(
                "/spec/deployment/minimumHealthyPercent",
                format!("{min} is outside 0-100"),
            );
        }
        if let Some(max) = d.maximum_percent
            && !(100..=200).contains(&max)
        {
            f.at(
                "/spec/deployment/maximumPercent",
                format!("{max} is outside 100-200"),
            );
        }
        if d.minimum_healthy_percent == Some(100) && d.maximum_percent == Some(100) {
            f.at(
                "/spec/deployment",
                "minimumHealthyPercent 100 with maximumPercent 100 can never deploy",
            );
        }
    }
}

fn describe_options(options: &[u32]) -> String {
    if options.len() <= 3 {
        options
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        let step = options[1] - options[0];
        format!(
            "{}-{} in steps of {}",
            options[0],
            options[options.len() - 1],
            step
        )
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fargate_pairs() {
        assert_eq!(fargate_memory_options(256), Some(vec![512, 1024, 2048]));
        assert!(fargate_memory_options(512).unwrap().contains(&3072));
        assert!(!fargate_memory_options(1024).unwrap().contains(&1024));
        assert!(fargate_memory_options(8192).unwrap().contains(&20480));
        assert!(!fargate_memory_options(8192).unwrap().contains(&17408));
        assert_eq!(fargate_memory_options(300), None);
        assert_eq!(describe_options(&[512, 1024, 2048]), "512, 1024, 2048");
        assert_eq!(
            describe_options(&fargate_memory_options(512).unwrap()),
            "1024-4096 in steps of 1024"
        );
    }

    /// The errors a service with `extra` under `spec:` (indented two spaces) and `td`
    /// under `taskDefinition:` (four) loads with, as `file:line:col: field: message`.
    fn errors(extra: &str, td: &str) -> Vec<String> {
        let doc = format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {{name: prd}}\nspec: {{}}\n---\napiVersion: mooring.dev/v1alpha1\nkind: Service\nmetadata: {{name: api}}\nspec:\n  cluster: prd\n  network: {{subnets: {{ids: [subnet-1]}}, securityGroups: {{ids: [sg-1]}}}}\n{extra}  taskDefinition:\n    cpu: 256\n    memory: 512\n    container: {{image: 'api:1', port: 3000}}\n{td}"
        );
        match crate::manifest::load::load_with_stack(&[("s.yaml".into(), doc)]) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn has(errs: &[String], needle: &str) -> bool {
        errs.iter().any(|e| e.contains(needle))
    }

    #[test]
    fn capacity_providers_are_checked_and_exclude_the_launch_type() {
        let ok = "  capacityProviderStrategy:\n    - {capacityProvider: FARGATE_SPOT, weight: 3, base: 0}\n    - {capacityProvider: FARGATE, weight: 1}\n";
        assert_eq!(errors(ok, ""), Vec::<String>::new());
        assert_eq!(errors("  launchType: FARGATE\n", ""), Vec::<String>::new());
        let both = errors(&format!("  launchType: FARGATE\n{ok}"), "");
        assert!(
            has(&both, "spec.capacityProviderStrategy: set either `launchType` or `capacityProviderStrategy`, not both"),
            "{both:#?}"
        );
        let bad = errors(
            "  capacityProviderStrategy:\n    - {capacityProvider: FARGATE, base: 1}\n    - {capacityProvider: FARGATE, base: 2, weight: 0}\n",
            "",
        );
        assert!(has(&bad, "spec.capacityProviderStrategy[1].capacityProvider: `FARGATE` is listed twice"), "{bad:#?}");
        assert!(has(&bad, "only one capacity provider may have a `base`"), "{bad:#?}");
        assert!(has(&bad, "with several capacity providers, at least one needs a `weight` above 0"), "{bad:#?}");
        // One provider needs no weight (ECS's default 0; what CloudFormation often says).
        assert_eq!(
            errors("  capacityProviderStrategy: [{capacityProvider: FARGATE}]\n", ""),
            Vec::<String>::new()
        );
        let ec2 = errors("  capacityProviderStrategy: [{capacityProvider: my-asg, weight: 1}]\n", "");
        assert!(has(&ec2, "capacityProvider"), "{ec2:#?}");
    }

    #[test]
    fn ephemeral_storage_and_platform_are_checked() {
        assert_eq!(
            errors("", "    ephemeralStorage: {sizeInGiB: 21}\n    runtimePlatform: {cpuArchitecture: ARM64, operatingSystemFamily: LINUX}\n"),
            Vec::<String>::new()
        );
        let e = errors("", "    ephemeralStorage: {sizeInGiB: 20}\n");
        assert!(
            has(&e, "spec.taskDefinition.ephemeralStorage.sizeInGiB: 20 is outside 21-200"),
            "{e:#?}"
        );
        assert!(has(&errors("", "    ephemeralStorage: {sizeInGiB: 201}\n"), "201 is outside 21-200"));
        assert!(!errors("", "    runtimePlatform: {cpuArchitecture: ARM}\n").is_empty());
    }

    #[test]
    fn sidecars_are_named_uniquely_and_depend_on_existing_containers_without_cycles() {
        let ok = "    sidecars:\n      - name: log-router\n        image: 'fluent-bit:3'\n        essential: false\n      - name: migrate\n        image: 'api:1'\n        essential: false\n        command: [npm, run, migrate]\n        dependsOn: [{containerName: log-router, condition: START}]\n";
        assert_eq!(errors("", ok), Vec::<String>::new());

        let e = errors("", "    sidecars:\n      - {image: 'x:1'}\n      - {name: app, image: 'x:1'}\n");
        assert!(has(&e, "spec.taskDefinition.sidecars[0]: a sidecar needs a `name`"), "{e:#?}");
        assert!(
            has(&e, "spec.taskDefinition.sidecars[1].name: container name `app` is already used at /spec/taskDefinition/container/name"),
            "{e:#?}"
        );
        let e = errors(
            "",
            "    sidecars:\n      - {name: a, image: 'x:1', dependsOn: [{containerName: nope, condition: START}]}\n",
        );
        assert!(
            has(&e, "spec.taskDefinition.sidecars[0].dependsOn[0].containerName: no container `nope` in the task definition (containers: a, app)"),
            "{e:#?}"
        );
        let e = errors(
            "",
            "    sidecars:\n      - {name: a, image: 'x:1', dependsOn: [{containerName: b, condition: START}]}\n      - {name: b, image: 'x:1', dependsOn: [{containerName: a, condition: START}]}\n",
        );
        assert!(
            has(&e, "spec.taskDefinition: the containers' `dependsOn` form a cycle (a -> b -> a)"),
            "{e:#?}"
        );
        let e = errors(
            "",
            "    sidecars:\n      - {name: a, image: 'x:1', dependsOn: [{containerName: a, condition: START}]}\n",
        );
        assert!(has(&e, "a container cannot depend on itself"), "{e:#?}");
        // COMPLETE/SUCCESS only on a non-essential container, HEALTHY only on a checked one.
        let e = errors(
            "",
            "    sidecars:\n      - {name: init, image: 'x:1'}\n      - {name: b, image: 'x:1', dependsOn: [{containerName: init, condition: SUCCESS}, {containerName: app, condition: HEALTHY}]}\n",
        );
        assert!(has(&e, "sidecars[1].dependsOn[0].condition: `SUCCESS` waits for `init` to exit, and ECS allows that only on a non-essential container"), "{e:#?}");
        assert!(has(&e, "sidecars[1].dependsOn[1].condition: `HEALTHY` needs a `healthCheck` on `app`"), "{e:#?}");
        // The service's container is always essential.
        let e = errors_main_not_essential();
        assert!(has(&e, "spec.taskDefinition.container.essential: the service's container is always essential"), "{e:#?}");
        // Each sidecar's container fields are checked like the service's own.
        let e = errors("", "    sidecars:\n      - {name: b, repository: api}\n");
        assert!(has(&e, "spec.taskDefinition.sidecars[0].repository: `repository` needs a `tag`"), "{e:#?}");
    }

    fn errors_main_not_essential() -> Vec<String> {
        let doc = "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: prd}\nspec: {}\n---\napiVersion: mooring.dev/v1alpha1\nkind: Service\nmetadata: {name: api}\nspec:\n  cluster: prd\n  network: {subnets: {ids: [subnet-1]}, securityGroups: {ids: [sg-1]}}\n  taskDefinition:\n    cpu: 256\n    memory: 512\n    container: {image: 'api:1', essential: false}\n";
        match crate::manifest::load::load_with_stack(&[("s.yaml".into(), doc.into())]) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("DB_HOST"));
        assert!(is_env_name("_X1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A-B"));
    }
}
