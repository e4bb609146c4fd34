//! Pure rendering for services: the manifest and the live service into the normalised
//! [`Doc`] plan compares, and a [`Doc`] into the ECS request pieces apply sends.
//!
//! Normalisation rules (each has a unit test below): cpu/memory as ECS returns them
//! (`"256"`, also from `"0.25 vCPU"` / `"1 GB"`), hostPort = containerPort under awsvpc,
//! protocol `tcp`, health check defaults (interval 30, timeout 5, retries 3, start period
//! 0), `essential` true, environment and secrets as maps (order does not matter), subnets
//! and security groups sorted, deployment defaults (100 % / 200 %, circuit breaker off),
//! grace period 0, only the tags the manifest manages, ephemeral storage 20 GiB and
//! runtime platform X86_64/LINUX when unset, sidecars by name and `dependsOn` by container
//! name, capacity providers by name with weight and base 0 when unset (and no launch type
//! compared while a strategy decides where tasks run).
//!
//! Apply builds its requests from the (effective) document, not from the manifest, so a
//! field `mooring.dev/ignore` names keeps its live value in what is sent.

use std::collections::BTreeMap;

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerCondition,
    ContainerDefinition, ContainerDependency, DeploymentCircuitBreaker,
    DeploymentConfiguration, HealthCheck, KeyValuePair, LoadBalancer, LogConfiguration, LogDriver,
    NetworkConfiguration, PortMapping, Secret, Service, TaskDefinition, TransportProtocol,
};
use serde::{Deserialize, Serialize};

use crate::kinds::ownership::{Owner, managed_tags, owned_tags};
use crate::kinds::service::spec::{ContainerSpec, EPHEMERAL_DEFAULT};
use crate::manifest::ServiceSpec;
use crate::manifest::{Kind, Manifest};

/// What plan looked up for a service: the inputs that are not in the manifest itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resolved {
    /// Subnet IDs, sorted.
    pub subnets: Vec<String>,
    /// Security group IDs, sorted (placeholders for groups this apply has yet to create).
    pub security_groups: Vec<String>,
    /// Secret env name → the ARN ECS reads it from.
    pub secrets: BTreeMap<String, String>,
    /// The region (default for awslogs).
    pub region: String,
    /// `TargetGroup` manifest name → ARN, for the target groups that exist.
    pub target_groups: BTreeMap<String, String>,
    /// The log group's name in CloudWatch, when `logs.group` names a `LogGroup` manifest.
    pub log_group: Option<String>,
    /// The image, when the container names a `Repository` manifest and a tag, or when its
    /// tag is followed by digest (then `repo@sha256:…`).
    pub image: Option<String>,
    /// The tag an image followed by digest was resolved from (plan shows it).
    pub image_tag: Option<String>,
    /// The versions of the secrets the container reads (`ENV=version,…`), carried as the
    /// environment variable `MOORING_SECRETS_VERSION`; `None` when not followed.
    pub secrets_version: Option<String>,
    /// The same lookups for each sidecar, by its name.
    pub sidecars: BTreeMap<String, ResolvedContainer>,
}

/// What plan looked up for one container (see the fields of [`Resolved`] of the same names).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResolvedContainer {
    /// Secret env name → the ARN ECS reads it from.
    pub secrets: BTreeMap<String, String>,
    /// The log group's name in CloudWatch, when `logs.group` names a `LogGroup` manifest.
    pub log_group: Option<String>,
    /// The image, when it names a `Repository` manifest or is followed by digest.
    pub image: Option<String>,
    /// The tag an image followed by digest was resolved from.
    pub image_tag: Option<String>,
    /// The value of `MOORING_SECRETS_VERSION`, when the container's secrets are followed.
    pub secrets_version: Option<String>,
}

impl Resolved {
    /// The lookups of the service's own container.
    pub fn main(&self) -> ResolvedContainer {
        ResolvedContainer {
            secrets: self.secrets.clone(),
            log_group: self.log_group.clone(),
            image: self.image.clone(),
            image_tag: self.image_tag.clone(),
            secrets_version: self.secrets_version.clone(),
        }
    }
}

/// A service in the shape plan compares: the service's settings and the task definition
/// it runs. The JSON field paths are what plan shows and `mooring.dev/ignore` names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// `FARGATE`, or what else the live service runs on; left out when a capacity provider
    /// strategy decides where tasks run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<String>,
    /// The capacity provider strategy, sorted by provider, AWS defaults (weight 0, base 0)
    /// filled in; empty with a launch type.
    pub capacity_provider_strategy: Vec<CapacityProviderDoc>,
    /// The task count; left out when the manifest does not manage it (unset, or owned by a
    /// ScalableTarget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_count: Option<i32>,
    /// The task definition; `None` when the live one could not be read.
    pub task_definition: Option<TaskDefinitionDoc>,
    /// The awsvpc network configuration.
    pub network: NetworkDoc,
    /// The deployment configuration, defaults filled in.
    pub deployment: DeploymentDoc,
    /// Seconds load balancer health checks are ignored after a task starts.
    pub health_check_grace_period_seconds: i32,
    /// ECS Exec.
    pub enable_execute_command: bool,
    /// The Fargate platform version (`LATEST` when unset).
    pub platform_version: String,
    /// Target group attachments, sorted.
    pub load_balancers: Vec<LoadBalancerDoc>,
    /// The tags the manifest manages.
    pub tags: BTreeMap<String, String>,
}

/// A task definition revision, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinitionDoc {
    /// The family.
    pub family: Option<String>,
    /// CPU units, as ECS stores them (`"256"`).
    pub cpu: Option<String>,
    /// MiB, as ECS stores them (`"512"`).
    pub memory: Option<String>,
    /// Always `awsvpc` on the desired side.
    pub network_mode: Option<String>,
    /// Always `["FARGATE"]` on the desired side.
    pub requires_compatibilities: Vec<String>,
    /// The role ECS pulls images and reads secrets with.
    pub execution_role_arn: Option<String>,
    /// The role the task runs as.
    pub task_role_arn: Option<String>,
    /// Ephemeral storage (Fargate's 20 GiB when unset).
    pub ephemeral_storage: EphemeralStorageDoc,
    /// CPU architecture and OS (Fargate's `X86_64` / `LINUX` when unset).
    pub runtime_platform: RuntimePlatformDoc,
    /// The manifest's container; `None` when the live revision has no container of its name.
    pub container: Option<ContainerDoc>,
    /// The other containers by name: the manifest's sidecars, and on the live side any
    /// container registered out of band.
    pub sidecars: BTreeMap<String, ContainerDoc>,
    /// Task settings that are set but that mooring never sets (names only).
    pub unmanaged_settings: Vec<String>,
}

/// A task's ephemeral storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EphemeralStorageDoc {
    /// Size in GiB.
    #[serde(rename = "sizeInGiB")]
    pub size_in_gib: i32,
}

/// A task's platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimePlatformDoc {
    /// `X86_64` or `ARM64`.
    pub cpu_architecture: String,
    /// `LINUX`, or another family.
    pub operating_system_family: String,
}

/// One capacity provider of a strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityProviderDoc {
    /// The provider's name.
    pub capacity_provider: String,
    /// Its relative share.
    pub weight: i32,
    /// Tasks it runs before the weights apply.
    pub base: i32,
}

/// A container's dependency on another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DependsOnDoc {
    /// The other container.
    pub container_name: String,
    /// `START`, `COMPLETE`, `SUCCESS` or `HEALTHY`.
    pub condition: String,
}

/// A container, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDoc {
    /// Container settings that are set but that mooring never sets (names only).
    pub unmanaged_settings: Vec<String>,
    /// The container's name.
    pub name: Option<String>,
    /// The image.
    pub image: Option<String>,
    /// Whether the task stops when it exits (AWS default true).
    pub essential: bool,
    /// The containers it waits for, sorted by name.
    pub depends_on: Vec<DependsOnDoc>,
    /// Port mappings, by container port.
    pub port_mappings: Vec<PortMappingDoc>,
    /// The command, if it overrides the image's.
    pub command: Option<Vec<String>>,
    /// Environment variables.
    pub environment: BTreeMap<String, String>,
    /// Secret env name → `valueFrom` (an ARN, never a value).
    pub secrets: BTreeMap<String, String>,
    /// The container health check.
    pub health_check: Option<HealthCheckDoc>,
    /// Where logs go.
    pub log_configuration: Option<LogConfigurationDoc>,
}

/// One port mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMappingDoc {
    /// The container port.
    pub container_port: Option<i32>,
    /// The host port (the container port under awsvpc).
    pub host_port: Option<i32>,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// A container health check, defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckDoc {
    /// The command (`CMD-SHELL …`).
    pub command: Vec<String>,
    /// Seconds between checks.
    pub interval: i32,
    /// Seconds before a check fails.
    pub timeout: i32,
    /// Failures before the container is unhealthy.
    pub retries: i32,
    /// Seconds of grace after start.
    pub start_period: i32,
}

/// A container's log configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogConfigurationDoc {
    /// The log driver (`awslogs`).
    pub log_driver: String,
    /// The driver's options.
    pub options: BTreeMap<String, String>,
}

/// The awsvpc network configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkDoc {
    /// Subnet IDs, sorted.
    pub subnets: Vec<String>,
    /// Security group IDs, sorted.
    pub security_groups: Vec<String>,
    /// `ENABLED` or `DISABLED`.
    pub assign_public_ip: String,
}

/// The deployment configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentDoc {
    /// The deployment circuit breaker.
    pub circuit_breaker: CircuitBreakerDoc,
    /// Lower bound of running tasks during a deployment, in percent.
    pub minimum_healthy_percent: i32,
    /// Upper bound of tasks during a deployment, in percent.
    pub maximum_percent: i32,
}

/// The deployment circuit breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerDoc {
    /// Stop failing deployments.
    pub enable: bool,
    /// Roll back to the last completed deployment.
    pub rollback: bool,
}

/// A target group attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerDoc {
    /// The target group's ARN (a placeholder while it is yet to be created).
    pub target_group_arn: Option<String>,
    /// The container traffic goes to.
    pub container_name: Option<String>,
    /// Its port.
    pub container_port: Option<i32>,
}

/// What plan shows for the ARN of a target group that this apply has yet to create.
pub fn pending_target_group(name: &str) -> String {
    format!("(ARN of TargetGroup/{name}, once created)")
}

/// True when `arn` is a [`pending_target_group`] placeholder.
pub fn is_pending_target_group(arn: &str) -> bool {
    arn.starts_with("(ARN of TargetGroup/")
}

/// AWS defaults for container health checks.
const HC_INTERVAL: i32 = 30;
const HC_TIMEOUT: i32 = 5;
const HC_RETRIES: i32 = 3;
/// AWS deployment defaults for replica services.
const MIN_HEALTHY: i32 = 100;
const MAX_PERCENT: i32 = 200;

/// The tags a service and its task definitions carry.
pub fn desired_tags(stack: Owner<'_>, m: &Manifest<ServiceSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::Service, stack, m.name(), &m.spec.tags)
}

/// The ARN of an SSM parameter given by name (ECS wants ARNs for cross-checking IAM).
pub fn ssm_parameter_arn(partition: &str, region: &str, account: &str, name: &str) -> String {
    if name.starts_with("arn:") {
        return name.to_string();
    }
    format!(
        "arn:{partition}:ssm:{region}:{account}:parameter/{}",
        name.trim_start_matches('/')
    )
}

/// The health check command the manifest asks for on the service's container.
pub fn health_check_command(spec: &ServiceSpec) -> Option<Vec<String>> {
    container_health_check_command(&spec.task_definition.container)
}

/// The health check command a container of the manifest asks for.
pub fn container_health_check_command(c: &ContainerSpec) -> Option<Vec<String>> {
    let hc = c.health_check.as_ref()?;
    if let Some(cmd) = &hc.command {
        return Some(cmd.clone());
    }
    let path = hc.http_path.as_ref()?;
    let port = c.port.unwrap_or(80);
    Some(vec![
        "CMD-SHELL".into(),
        format!("curl -f 'http://localhost:{port}{path}' || exit 1"),
    ])
}

fn log_options(
    c: &ContainerSpec,
    r: &ResolvedContainer,
    region: &str,
) -> Option<BTreeMap<String, String>> {
    let logs = c.logs.as_ref()?;
    let mut o = BTreeMap::new();
    o.insert(
        "awslogs-group".to_string(),
        r.log_group.clone().unwrap_or_else(|| logs.group.clone()),
    );
    o.insert(
        "awslogs-region".to_string(),
        logs.region.clone().unwrap_or_else(|| region.to_string()),
    );
    o.insert(
        "awslogs-stream-prefix".to_string(),
        logs.stream_prefix.clone().unwrap_or_else(|| "ecs".into()),
    );
    if logs.create_group {
        o.insert("awslogs-create-group".to_string(), "true".into());
    }
    Some(o)
}

/// The container definition the manifest asks for, in ECS's request form. The desired
/// document normalises it with the same code as a live one, so a registered definition
/// always normalises to exactly what the manifest rendered.
pub fn manifest_container(m: &Manifest<ServiceSpec>, r: &Resolved) -> ContainerDefinition {
    let spec = &m.spec;
    spec_container(
        spec.container_name(),
        &spec.task_definition.container,
        &r.main(),
        &r.region,
    )
}

/// A sidecar of the manifest in ECS's request form (see [`manifest_container`]).
pub fn manifest_sidecar(name: &str, c: &ContainerSpec, r: &Resolved) -> ContainerDefinition {
    let none = ResolvedContainer::default();
    spec_container(name, c, r.sidecars.get(name).unwrap_or(&none), &r.region)
}

fn spec_container(
    name: &str,
    c: &ContainerSpec,
    r: &ResolvedContainer,
    region: &str,
) -> ContainerDefinition {
    let mut b = ContainerDefinition::builder()
        .name(name)
        .set_image(r.image.clone().or_else(|| c.image.clone()))
        .essential(c.essential.unwrap_or(true))
        .set_command(c.command.clone());
    for d in &c.depends_on {
        if let Ok(d) = ContainerDependency::builder()
            .container_name(&d.container_name)
            .condition(ContainerCondition::from(d.condition.as_str()))
            .build()
        {
            b = b.depends_on(d);
        }
    }
    if let Some(port) = c.port {
        b = b.port_mappings(
            PortMapping::builder()
                .container_port(i32::from(port))
                .host_port(i32::from(port))
                .protocol(TransportProtocol::Tcp)
                .build(),
        );
    }
    for (k, v) in &c.environment {
        b = b.environment(KeyValuePair::builder().name(k).value(v.as_str()).build());
    }
    if let Some(versions) = &r.secrets_version {
        b = b.environment(
            KeyValuePair::builder()
                .name(crate::kinds::service::spec::SECRETS_VERSION_ENV)
                .value(versions)
                .build(),
        );
    }
    for (k, arn) in &r.secrets {
        // Secret names and ARNs are references, never values: safe to send and show.
        if let Ok(s) = Secret::builder().name(k).value_from(arn).build() {
            b = b.secrets(s);
        }
    }
    if let (Some(cmd), Some(hc)) = (container_health_check_command(c), &c.health_check) {
        let built = HealthCheck::builder()
            .set_command(Some(cmd))
            .interval(hc.interval_seconds.map_or(HC_INTERVAL, to_i32))
            .timeout(hc.timeout_seconds.map_or(HC_TIMEOUT, to_i32))
            .retries(hc.retries.map_or(HC_RETRIES, to_i32))
            .start_period(hc.start_period_seconds.map_or(0, to_i32))
            .build();
        if let Ok(hc) = built {
            b = b.health_check(hc);
        }
    }
    if let Some(options) = log_options(c, r, region)
        && let Ok(lc) = LogConfiguration::builder()
            .log_driver(LogDriver::Awslogs)
            .set_options(Some(options.into_iter().collect()))
            .build()
    {
        b = b.log_configuration(lc);
    }
    b.build()
}

/// The container definition to register for a (normalised) container document.
pub fn container_definition(c: &ContainerDoc) -> ContainerDefinition {
    let mut b = ContainerDefinition::builder()
        .set_name(c.name.clone())
        .set_image(c.image.clone())
        .essential(c.essential)
        .set_command(c.command.clone());
    for d in &c.depends_on {
        if let Ok(d) = ContainerDependency::builder()
            .container_name(&d.container_name)
            .condition(ContainerCondition::from(d.condition.as_str()))
            .build()
        {
            b = b.depends_on(d);
        }
    }
    for p in &c.port_mappings {
        b = b.port_mappings(
            PortMapping::builder()
                .set_container_port(p.container_port)
                .set_host_port(p.host_port)
                .protocol(TransportProtocol::from(p.protocol.as_str()))
                .build(),
        );
    }
    for (k, v) in &c.environment {
        b = b.environment(KeyValuePair::builder().name(k).value(v).build());
    }
    for (k, value_from) in &c.secrets {
        if let Ok(s) = Secret::builder().name(k).value_from(value_from).build() {
            b = b.secrets(s);
        }
    }
    if let Some(hc) = &c.health_check
        && let Ok(hc) = HealthCheck::builder()
            .set_command(Some(hc.command.clone()))
            .interval(hc.interval)
            .timeout(hc.timeout)
            .retries(hc.retries)
            .start_period(hc.start_period)
            .build()
    {
        b = b.health_check(hc);
    }
    if let Some(l) = &c.log_configuration
        && let Ok(lc) = LogConfiguration::builder()
            .log_driver(LogDriver::from(l.log_driver.as_str()))
            .set_options(Some(l.options.clone().into_iter().collect()))
            .build()
    {
        b = b.log_configuration(lc);
    }
    b.build()
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// The task definition part of the normalised document, from the manifest.
pub fn desired_task_definition(m: &Manifest<ServiceSpec>, r: &Resolved) -> TaskDefinitionDoc {
    let spec = &m.spec;
    let td = &spec.task_definition;
    TaskDefinitionDoc {
        family: Some(spec.family(&m.metadata).to_string()),
        cpu: Some(td.cpu.to_string()),
        memory: Some(td.memory.to_string()),
        network_mode: Some("awsvpc".into()),
        requires_compatibilities: vec!["FARGATE".into()],
        execution_role_arn: td.execution_role_arn.clone(),
        task_role_arn: td.task_role_arn.clone(),
        ephemeral_storage: EphemeralStorageDoc {
            size_in_gib: td
                .ephemeral_storage
                .as_ref()
                .map_or(to_i32(EPHEMERAL_DEFAULT), |e| to_i32(e.size_in_gib)),
        },
        runtime_platform: RuntimePlatformDoc {
            cpu_architecture: td
                .runtime_platform
                .as_ref()
                .and_then(|p| p.cpu_architecture)
                .map_or(DEFAULT_ARCHITECTURE, |a| a.as_str())
                .to_string(),
            operating_system_family: td
                .runtime_platform
                .as_ref()
                .and_then(|p| p.operating_system_family)
                .map_or(DEFAULT_OS_FAMILY, |o| o.as_str())
                .to_string(),
        },
        container: Some(container_doc(&manifest_container(m, r))),
        sidecars: spec
            .sidecars()
            .map(|(name, c)| (name.to_string(), container_doc(&manifest_sidecar(name, c, r))))
            .collect(),
        unmanaged_settings: Vec::new(),
    }
}

/// The CPU architecture and OS family of a Fargate task that names none.
const DEFAULT_ARCHITECTURE: &str = "X86_64";
const DEFAULT_OS_FAMILY: &str = "LINUX";

/// The task definition part of the normalised document, from what ECS returned.
pub fn live_task_definition(td: &TaskDefinition, container_name: &str) -> TaskDefinitionDoc {
    let sidecars = td
        .container_definitions()
        .iter()
        .filter_map(|c| Some((c.name()?, c)))
        .filter(|(n, _)| *n != container_name)
        .map(|(n, c)| (n.to_string(), container_doc(c)))
        .collect();
    let platform = td.runtime_platform();
    let container = td
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(container_name))
        .map(container_doc);
    let mut compat: Vec<String> = td
        .requires_compatibilities()
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    compat.sort();
    TaskDefinitionDoc {
        family: td.family().map(str::to_string),
        cpu: td.cpu().map(cpu_units),
        memory: td.memory().map(memory_mib),
        network_mode: td.network_mode().map(|n| n.as_str().to_string()),
        requires_compatibilities: compat,
        execution_role_arn: td.execution_role_arn().map(str::to_string),
        task_role_arn: td.task_role_arn().map(str::to_string),
        ephemeral_storage: EphemeralStorageDoc {
            size_in_gib: td
                .ephemeral_storage()
                .map_or(to_i32(EPHEMERAL_DEFAULT), |e| e.size_in_gib()),
        },
        runtime_platform: RuntimePlatformDoc {
            cpu_architecture: platform
                .and_then(|p| p.cpu_architecture())
                .map_or(DEFAULT_ARCHITECTURE, |a| a.as_str())
                .to_string(),
            operating_system_family: platform
                .and_then(|p| p.operating_system_family())
                .map_or(DEFAULT_OS_FAMILY, |o| o.as_str())
                .to_string(),
        },
        container,
        sidecars,
        unmanaged_settings: names(unmanaged_task_settings(td)),
    }
}

fn names(v: Vec<&'static str>) -> Vec<String> {
    v.into_iter().map(str::to_string).collect()
}
/// Container settings that are set but that mooring never sets. The manifest cannot ask
/// for them, so any of them in a live revision (say an `entryPoint` registered out of
/// band) is drift; the values are not shown, only the names. AWS's own fillers (`cpu: 0`,
/// empty lists) do not count.
fn unmanaged_container_settings(c: &ContainerDefinition) -> Vec<&'static str> {
    let checks: [(&'static str, bool); 25] = [
        ("cpu", c.cpu() != 0),
        ("memory", c.memory().is_some()),
        ("memoryReservation", c.memory_reservation().is_some()),
        ("entryPoint", !c.entry_point().is_empty()),
        ("workingDirectory", c.working_directory().is_some()),
        ("user", c.user().is_some()),
        ("privileged", c.privileged() == Some(true)),
        (
            "readonlyRootFilesystem",
            c.readonly_root_filesystem() == Some(true),
        ),
        ("mountPoints", !c.mount_points().is_empty()),
        ("volumesFrom", !c.volumes_from().is_empty()),
        (
            "dockerLabels",
            c.docker_labels().is_some_and(|l| !l.is_empty()),
        ),
        (
            "repositoryCredentials",
            c.repository_credentials().is_some(),
        ),
        ("ulimits", !c.ulimits().is_empty()),
        ("linuxParameters", c.linux_parameters().is_some()),
        ("links", !c.links().is_empty()),
        ("dnsServers", !c.dns_servers().is_empty()),
        ("extraHosts", !c.extra_hosts().is_empty()),
        (
            "dockerSecurityOptions",
            !c.docker_security_options().is_empty(),
        ),
        ("systemControls", !c.system_controls().is_empty()),
        (
            "firelensConfiguration",
            c.firelens_configuration().is_some(),
        ),
        (
            "resourceRequirements",
            !c.resource_requirements().is_empty(),
        ),
        ("environmentFiles", !c.environment_files().is_empty()),
        ("startTimeout", c.start_timeout().is_some()),
        ("stopTimeout", c.stop_timeout().is_some()),
        ("hostname", c.hostname().is_some()),
    ];
    checks
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
}

/// Task-level settings that are set but that mooring never sets (see
/// [`unmanaged_container_settings`]). The runtime platform and ephemeral storage are
/// compared as fields of their own.
fn unmanaged_task_settings(td: &TaskDefinition) -> Vec<&'static str> {
    let checks: [(&'static str, bool); 5] = [
        ("volumes", !td.volumes().is_empty()),
        (
            "placementConstraints",
            !td.placement_constraints().is_empty(),
        ),
        ("pidMode", td.pid_mode().is_some()),
        ("ipcMode", td.ipc_mode().is_some()),
        ("proxyConfiguration", td.proxy_configuration().is_some()),
    ];
    checks
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
}

/// CPU as ECS stores it: units as a string. Accepts `"0.25 vCPU"` / `"1 vcpu"` forms.
pub fn cpu_units(s: &str) -> String {
    let lower = s.trim().to_ascii_lowercase();
    match lower.strip_suffix("vcpu").map(str::trim) {
        Some(n) => n
            .parse::<f64>()
            .map(|v| format!("{}", (v * 1024.0).round() as i64))
            .unwrap_or_else(|_| s.to_string()),
        None => s.trim().to_string(),
    }
}

/// Memory as ECS stores it: MiB as a string. Accepts `"1 GB"` / `"0.5gb"` forms.
pub fn memory_mib(s: &str) -> String {
    let lower = s.trim().to_ascii_lowercase();
    match lower.strip_suffix("gb").map(str::trim) {
        Some(n) => n
            .parse::<f64>()
            .map(|v| format!("{}", (v * 1024.0).round() as i64))
            .unwrap_or_else(|_| s.to_string()),
        None => s.trim().to_string(),
    }
}

/// One container in normalised form; used for both sides, so a registered definition
/// always normalises to exactly what the manifest rendered.
pub fn container_doc(c: &ContainerDefinition) -> ContainerDoc {
    let mut ports: Vec<PortMappingDoc> = c
        .port_mappings()
        .iter()
        .map(|p| {
            let cp = p.container_port();
            PortMappingDoc {
                container_port: cp,
                host_port: p.host_port().or(cp),
                protocol: p
                    .protocol()
                    .map_or("tcp".to_string(), |t| t.as_str().to_ascii_lowercase()),
            }
        })
        .collect();
    ports.sort_by_key(|p| p.container_port);
    let environment = c
        .environment()
        .iter()
        .filter_map(|kv| {
            Some((
                kv.name()?.to_string(),
                kv.value().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    let secrets = c
        .secrets()
        .iter()
        .map(|s| (s.name().to_string(), s.value_from().to_string()))
        .collect();
    let health_check = c.health_check().map(|h| HealthCheckDoc {
        command: h.command().to_vec(),
        interval: h.interval().unwrap_or(HC_INTERVAL),
        timeout: h.timeout().unwrap_or(HC_TIMEOUT),
        retries: h.retries().unwrap_or(HC_RETRIES),
        start_period: h.start_period().unwrap_or(0),
    });
    let log_configuration = c.log_configuration().map(|l| LogConfigurationDoc {
        log_driver: l.log_driver().as_str().to_string(),
        options: l
            .options()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    });
    let command = c.command().to_vec();
    let mut depends_on: Vec<DependsOnDoc> = c
        .depends_on()
        .iter()
        .map(|d| DependsOnDoc {
            container_name: d.container_name().to_string(),
            condition: d.condition().as_str().to_string(),
        })
        .collect();
    depends_on.sort_by(|a, b| a.container_name.cmp(&b.container_name));
    ContainerDoc {
        unmanaged_settings: names(unmanaged_container_settings(c)),
        name: c.name().map(str::to_string),
        image: c.image().map(str::to_string),
        essential: c.essential().unwrap_or(true),
        depends_on,
        port_mappings: ports,
        command: (!command.is_empty()).then_some(command),
        environment,
        secrets,
        health_check,
        log_configuration,
    }
}

/// The awsvpc network configuration to send.
pub fn network_configuration(n: &NetworkDoc) -> Option<NetworkConfiguration> {
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(n.subnets.clone()))
        .set_security_groups(Some(n.security_groups.clone()))
        .assign_public_ip(AssignPublicIp::from(n.assign_public_ip.as_str()))
        .build()
        .ok()?;
    Some(
        NetworkConfiguration::builder()
            .awsvpc_configuration(vpc)
            .build(),
    )
}

/// The deployment configuration to send (complete: the document has the defaults).
pub fn deployment_configuration(d: &DeploymentDoc) -> DeploymentConfiguration {
    DeploymentConfiguration::builder()
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(d.circuit_breaker.enable)
                .rollback(d.circuit_breaker.rollback)
                .build(),
        )
        .minimum_healthy_percent(d.minimum_healthy_percent)
        .maximum_percent(d.maximum_percent)
        .build()
}

/// A manifest's capacity provider strategy in plan's shape: by provider name, weight and
/// base 0 when unset (as ECS fills them).
pub fn desired_strategy(items: &[super::spec::CapacityProviderItem]) -> Vec<CapacityProviderDoc> {
    let mut strategy: Vec<CapacityProviderDoc> = items
        .iter()
        .map(|i| CapacityProviderDoc {
            capacity_provider: i.capacity_provider.as_str().to_string(),
            weight: i.weight.map_or(0, to_i32),
            base: i.base.map_or(0, to_i32),
        })
        .collect();
    strategy.sort_by(|a, b| a.capacity_provider.cmp(&b.capacity_provider));
    strategy
}

/// A live capacity provider strategy in plan's shape (moto returns an unset weight or
/// base as absent, which the SDK reads as 0 like ECS's own 0).
pub fn live_strategy(items: &[CapacityProviderStrategyItem]) -> Vec<CapacityProviderDoc> {
    let mut strategy: Vec<CapacityProviderDoc> = items
        .iter()
        .map(|i| CapacityProviderDoc {
            capacity_provider: i.capacity_provider().to_string(),
            weight: i.weight(),
            base: i.base(),
        })
        .collect();
    strategy.sort_by(|a, b| a.capacity_provider.cmp(&b.capacity_provider));
    strategy
}

/// The capacity provider strategy to send (empty: back to the launch type).
pub fn capacity_provider_strategy(items: &[CapacityProviderDoc]) -> Vec<CapacityProviderStrategyItem> {
    items
        .iter()
        .filter_map(|i| {
            CapacityProviderStrategyItem::builder()
                .capacity_provider(&i.capacity_provider)
                .weight(i.weight)
                .base(i.base)
                .build()
                .ok()
        })
        .collect()
}

/// The ephemeral storage to register: `None` for Fargate's default (ECS accepts only
/// 21-200 GiB in a task definition).
pub fn ephemeral_storage(e: &EphemeralStorageDoc) -> Option<aws_sdk_ecs::types::EphemeralStorage> {
    (e.size_in_gib != to_i32(EPHEMERAL_DEFAULT)).then(|| {
        aws_sdk_ecs::types::EphemeralStorage::builder()
            .size_in_gib(e.size_in_gib)
            .build()
    })
}

/// The runtime platform to register: `None` for Fargate's default (X86_64 on LINUX), so
/// that a manifest without one registers what it always did.
pub fn runtime_platform(p: &RuntimePlatformDoc) -> Option<aws_sdk_ecs::types::RuntimePlatform> {
    (p.cpu_architecture != DEFAULT_ARCHITECTURE || p.operating_system_family != DEFAULT_OS_FAMILY)
        .then(|| {
            aws_sdk_ecs::types::RuntimePlatform::builder()
                .cpu_architecture(aws_sdk_ecs::types::CpuArchitecture::from(
                    p.cpu_architecture.as_str(),
                ))
                .operating_system_family(aws_sdk_ecs::types::OsFamily::from(
                    p.operating_system_family.as_str(),
                ))
                .build()
        })
}

/// The load balancer attachments to send.
pub fn load_balancers(lbs: &[LoadBalancerDoc]) -> Vec<LoadBalancer> {
    lbs.iter()
        .map(|lb| {
            LoadBalancer::builder()
                .set_target_group_arn(lb.target_group_arn.clone())
                .set_container_name(lb.container_name.clone())
                .set_container_port(lb.container_port)
                .build()
        })
        .collect()
}

fn sorted_load_balancers(mut v: Vec<LoadBalancerDoc>) -> Vec<LoadBalancerDoc> {
    v.sort_by_cached_key(|lb| serde_json::to_string(lb).unwrap_or_default());
    v
}

fn desired_load_balancers(spec: &ServiceSpec, r: &Resolved) -> Vec<LoadBalancerDoc> {
    sorted_load_balancers(
        spec.load_balancers
            .iter()
            .map(|lb| {
                let arn = match (&lb.target_group_arn, &lb.target_group) {
                    (Some(arn), _) => arn.clone(),
                    (None, Some(name)) => r
                        .target_groups
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| pending_target_group(name)),
                    (None, None) => String::new(),
                };
                LoadBalancerDoc {
                    target_group_arn: Some(arn),
                    container_name: Some(spec.container_name().to_string()),
                    container_port: Some(i32::from(
                        lb.container_port
                            .or(spec.task_definition.container.port)
                            .unwrap_or(80),
                    )),
                }
            })
            .collect(),
    )
}

fn live_load_balancers(lbs: &[LoadBalancer]) -> Vec<LoadBalancerDoc> {
    sorted_load_balancers(
        lbs.iter()
            .map(|lb| LoadBalancerDoc {
                target_group_arn: lb.target_group_arn().map(str::to_string),
                container_name: lb.container_name().map(str::to_string),
                container_port: lb.container_port(),
            })
            .collect(),
    )
}

fn network_doc(nc: Option<&NetworkConfiguration>) -> NetworkDoc {
    let vpc = nc.and_then(|n| n.awsvpc_configuration());
    let mut subnets: Vec<String> = vpc.map(|v| v.subnets().to_vec()).unwrap_or_default();
    subnets.sort();
    let mut security_groups: Vec<String> =
        vpc.map(|v| v.security_groups().to_vec()).unwrap_or_default();
    security_groups.sort();
    NetworkDoc {
        subnets,
        security_groups,
        assign_public_ip: vpc
            .and_then(|v| v.assign_public_ip())
            .map_or("DISABLED", |a| a.as_str())
            .to_string(),
    }
}

fn desired_network(spec: &ServiceSpec, r: &Resolved) -> NetworkDoc {
    let mut subnets = r.subnets.clone();
    subnets.sort();
    let mut security_groups = r.security_groups.clone();
    security_groups.sort();
    NetworkDoc {
        subnets,
        security_groups,
        assign_public_ip: if spec.network.assign_public_ip {
            "ENABLED"
        } else {
            "DISABLED"
        }
        .to_string(),
    }
}

fn deployment_doc(d: Option<&DeploymentConfiguration>) -> DeploymentDoc {
    let cb = d.and_then(|d| d.deployment_circuit_breaker());
    DeploymentDoc {
        circuit_breaker: CircuitBreakerDoc {
            enable: cb.is_some_and(|c| c.enable()),
            rollback: cb.is_some_and(|c| c.rollback()),
        },
        minimum_healthy_percent: d
            .and_then(|d| d.minimum_healthy_percent())
            .unwrap_or(MIN_HEALTHY),
        maximum_percent: d.and_then(|d| d.maximum_percent()).unwrap_or(MAX_PERCENT),
    }
}

fn desired_deployment(spec: &ServiceSpec) -> DeploymentDoc {
    let d = &spec.deployment;
    let (enable, rollback) = d
        .circuit_breaker
        .as_ref()
        .map_or((false, false), |c| (c.enable, c.rollback));
    DeploymentDoc {
        circuit_breaker: CircuitBreakerDoc { enable, rollback },
        minimum_healthy_percent: d.minimum_healthy_percent.map_or(MIN_HEALTHY, to_i32),
        maximum_percent: d.maximum_percent.map_or(MAX_PERCENT, to_i32),
    }
}

/// The whole normalised document of a service, from the manifest. `desired_count` is the
/// count the manifest manages (`None` when unset or owned by a ScalableTarget).
pub fn desired_doc(
    stack: Owner<'_>,
    m: &Manifest<ServiceSpec>,
    desired_count: Option<u32>,
    r: &Resolved,
) -> Doc {
    let spec = &m.spec;
    let strategy = desired_strategy(&spec.capacity_provider_strategy);
    Doc {
        launch_type: strategy.is_empty().then(|| "FARGATE".to_string()),
        capacity_provider_strategy: strategy,
        desired_count: desired_count.map(to_i32),
        task_definition: Some(desired_task_definition(m, r)),
        network: desired_network(spec, r),
        deployment: desired_deployment(spec),
        health_check_grace_period_seconds: to_i32(
            spec.health_check_grace_period_seconds.unwrap_or(0),
        ),
        enable_execute_command: spec.enable_execute_command,
        platform_version: spec
            .platform_version
            .clone()
            .unwrap_or_else(|| super::spec::LATEST_PLATFORM.into()),
        load_balancers: desired_load_balancers(spec, r),
        tags: desired_tags(stack, m),
    }
}

/// The whole normalised document of a live service and the task definition it runs.
pub fn live_doc(
    stack: Owner<'_>,
    m: &Manifest<ServiceSpec>,
    desired_count: Option<u32>,
    s: &Service,
    td: Option<&TaskDefinition>,
) -> Doc {
    let spec = &m.spec;
    let strategy = live_strategy(s.capacity_provider_strategy());
    // With a strategy, the strategy decides where tasks run: ECS then reports no launch
    // type (moto keeps the one the service was created with, EC2 when none was given).
    let launch_type = if strategy.is_empty() {
        Some(s.launch_type().map_or("(none)", |l| l.as_str()).to_string())
    } else {
        None
    };
    let tags = s.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)));
    Doc {
        launch_type,
        capacity_provider_strategy: strategy,
        desired_count: desired_count.map(|_| s.desired_count()),
        task_definition: td.map(|td| live_task_definition(td, spec.container_name())),
        network: network_doc(s.network_configuration()),
        deployment: deployment_doc(s.deployment_configuration()),
        health_check_grace_period_seconds: s.health_check_grace_period_seconds().unwrap_or(0),
        enable_execute_command: s.enable_execute_command(),
        platform_version: s
            .platform_version()
            .unwrap_or(super::spec::LATEST_PLATFORM)
            .to_string(),
        load_balancers: live_load_balancers(s.load_balancers()),
        tags: managed_tags(tags, &desired_tags(stack, m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;
    use crate::reconcile::diff::{FieldChange, diff};
    use aws_sdk_ecs::types::{Compatibility, NetworkMode, Tag};
    use serde_json::{Value, json};

    fn to_json<T: Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap()
    }

    fn desired(m: &Manifest<ServiceSpec>, r: &Resolved) -> Doc {
        desired_doc("test".into(), m, m.spec.desired_count, r)
    }

    /// The fields plan shows as changed, live → desired.
    fn changes(
        m: &Manifest<ServiceSpec>,
        r: &Resolved,
        svc: &Service,
        td: &TaskDefinition,
    ) -> Vec<FieldChange> {
        let live = live_doc("test".into(), m, m.spec.desired_count, svc, Some(td));
        diff(&to_json(&desired(m, r)), Some(&to_json(&live)))
    }

    const SERVICE: &str = "apiVersion: mooring.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  cluster: prd
  desiredCount: 2
  network:
    subnets: {ids: [subnet-b, subnet-a]}
    securityGroups: {ids: [sg-1]}
  healthCheckGracePeriodSeconds: 60
  loadBalancers:
    - targetGroupArn: arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/api/abc
  deployment:
    circuitBreaker: {enable: true, rollback: true}
  taskDefinition:
    cpu: 512
    memory: 1024
    executionRoleArn: arn:aws:iam::123456789012:role/exec
    container:
      image: nginx:1.27
      port: 3000
      environment: {NODE_ENV: production, PORT: 3000}
      secrets:
        DB_PASSWORD: {ssmParameter: /prd/db/password}
      healthCheck: {httpPath: /api/health, startPeriodSeconds: 60}
      logs: {group: /ecs/api}
";
    const CLUSTER: &str =
        "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: prd}\nspec: {}\n";

    fn manifest() -> Manifest<ServiceSpec> {
        let set = load_with_stack(&[
            ("c.yaml".into(), CLUSTER.into()),
            ("s.yaml".into(), SERVICE.into()),
        ])
        .unwrap();
        set.services[0].clone()
    }

    fn resolved() -> Resolved {
        Resolved {
            subnets: vec!["subnet-a".into(), "subnet-b".into()],
            security_groups: vec!["sg-1".into()],
            secrets: BTreeMap::from([(
                "DB_PASSWORD".into(),
                ssm_parameter_arn("aws", "eu-west-1", "123456789012", "/prd/db/password"),
            )]),
            region: "eu-west-1".into(),
            target_groups: BTreeMap::new(),
            log_group: None,
            image: None,
            image_tag: None,
            secrets_version: None,
            sidecars: BTreeMap::new(),
        }
    }

    /// What ECS returns for a task definition registered from the manifest, written the way
    /// AWS writes it: other list order, AWS-filled defaults left implicit or spelled out.
    fn as_aws_returns_it(m: &Manifest<ServiceSpec>, r: &Resolved) -> (Service, TaskDefinition) {
        let mut c = manifest_container(m, r);
        c.environment = c.environment.map(|mut e| {
            e.reverse();
            e
        });
        // AWS fills protocol and hostPort; ECS stores what it was given otherwise.
        c.port_mappings = Some(vec![PortMapping::builder().container_port(3000).build()]);
        c.essential = None;
        let mut td = TaskDefinition::builder();
        // Sidecars after the service's container, with what AWS leaves implicit.
        for (name, sc) in m.spec.sidecars() {
            let mut d = manifest_sidecar(name, sc, r);
            if d.essential == Some(true) {
                d.essential = None;
            }
            if let Some(deps) = d.depends_on.as_mut() {
                deps.reverse();
            }
            td = td.container_definitions(d);
        }
        let td = td
            .task_definition_arn("arn:aws:ecs:eu-west-1:123456789012:task-definition/api:3")
            .family("api")
            .cpu("0.5 vCPU")
            .memory("1 GB")
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .execution_role_arn("arn:aws:iam::123456789012:role/exec")
            .container_definitions(c)
            .build();
        // Fargate's own defaults, spelt out as DescribeTaskDefinition may return them.
        let mut td = td;
        if td.runtime_platform.is_none() {
            td.runtime_platform = Some(
                aws_sdk_ecs::types::RuntimePlatform::builder()
                    .cpu_architecture(aws_sdk_ecs::types::CpuArchitecture::X8664)
                    .operating_system_family(aws_sdk_ecs::types::OsFamily::Linux)
                    .build(),
            );
        }
        let vpc = AwsVpcConfiguration::builder()
            .subnets("subnet-b")
            .subnets("subnet-a")
            .security_groups("sg-1")
            .build()
            .unwrap();
        let strategy: Vec<aws_sdk_ecs::types::CapacityProviderStrategyItem> = m
            .spec
            .capacity_provider_strategy
            .iter()
            .rev()
            .map(|i| {
                // AWS leaves a weight or base of 0 out.
                aws_sdk_ecs::types::CapacityProviderStrategyItem::builder()
                    .capacity_provider(i.capacity_provider.as_str())
                    .weight(i.weight.map_or(0, to_i32))
                    .base(i.base.map_or(0, to_i32))
                    .build()
                    .unwrap()
            })
            .collect();
        let mut svc = Service::builder()
            .service_name("api")
            .set_launch_type(
                strategy
                    .is_empty()
                    .then_some(aws_sdk_ecs::types::LaunchType::Fargate),
            )
            .set_capacity_provider_strategy((!strategy.is_empty()).then_some(strategy))
            .desired_count(2)
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(vpc)
                    .build(),
            )
            .deployment_configuration(deployment_configuration(&desired(m, r).deployment))
            .health_check_grace_period_seconds(60)
            .set_load_balancers(Some(load_balancers(&desired(m, r).load_balancers)))
            .tags(
                Tag::builder()
                    .key("aws:ecs:clusterName")
                    .value("prd")
                    .build(),
            );
        for (k, v) in desired_tags("test".into(), m) {
            svc = svc.tags(Tag::builder().key(k).value(v).build());
        }
        (svc.build(), td)
    }

    #[test]
    fn a_service_as_aws_returns_it_has_no_changes() {
        let m = manifest();
        let r = resolved();
        let (svc, td) = as_aws_returns_it(&m, &r);
        let changes = changes(&m, &r, &svc, &td);
        assert!(changes.is_empty(), "{changes:#?}");
    }

    #[test]
    fn each_drifted_field_is_named() {
        let m = manifest();
        let r = resolved();
        let (mut svc, mut td) = as_aws_returns_it(&m, &r);
        svc.desired_count = 5;
        if let Some(c) = td
            .container_definitions
            .as_mut()
            .and_then(|c| c.first_mut())
        {
            c.image = Some("nginx:evil".into());
            if let Some(hc) = c.health_check.as_mut() {
                hc.command = vec![
                    "CMD-SHELL".into(),
                    "curl -f http://localhost:3000/health || exit 1".into(),
                ];
            }
        }
        let mut changes = changes(&m, &r, &svc, &td);
        changes.sort_by(|a, b| a.field.cmp(&b.field));
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "desiredCount",
                "taskDefinition.container.healthCheck.command",
                "taskDefinition.container.image"
            ]
        );
        assert_eq!(changes[2].live, json!("nginx:evil"));
        assert_eq!(changes[2].desired, json!("nginx:1.27"));
    }

    #[test]
    fn unmanaged_desired_count_is_not_compared() {
        let mut m = manifest();
        m.spec.desired_count = None;
        let r = resolved();
        let (mut svc, td) = as_aws_returns_it(&m, &r);
        svc.desired_count = 7;
        assert!(changes(&m, &r, &svc, &td).is_empty());
    }

    #[test]
    fn aws_defaults_are_filled_before_comparing() {
        let mut m = manifest();
        m.spec.deployment = Default::default();
        m.spec.health_check_grace_period_seconds = None;
        let r = resolved();
        let (mut svc, td) = as_aws_returns_it(&m, &r);
        // moto and older services: no deploymentConfiguration, no grace period at all.
        svc.deployment_configuration = None;
        svc.health_check_grace_period_seconds = None;
        assert!(changes(&m, &r, &svc, &td).is_empty());
    }

    #[test]
    fn extra_env_and_sidecars_are_drift() {
        let m = manifest();
        let r = resolved();
        let (svc, mut td) = as_aws_returns_it(&m, &r);
        if let Some(cs) = td.container_definitions.as_mut() {
            if let Some(e) = cs[0].environment.as_mut() {
                e.push(KeyValuePair::builder().name("DEBUG").value("1").build());
            }
            cs.push(
                ContainerDefinition::builder()
                    .name("xray")
                    .image("xray")
                    .build(),
            );
        }
        let changes = changes(&m, &r, &svc, &td);
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "taskDefinition.container.environment.DEBUG",
                "taskDefinition.sidecars.xray"
            ]
        );
    }

    /// A revision spelt out by hand the way DescribeTaskDefinition returns it (not built
    /// with this module's own builders): AWS-added fields, other order, `cpu: 0`.
    #[test]
    fn a_revision_as_ecs_describes_it_is_in_sync() {
        use aws_sdk_ecs::types::{Compatibility, NetworkMode, TaskDefinitionStatus};
        let m = manifest();
        let r = resolved();
        let kv = |k: &str, v: &str| KeyValuePair::builder().name(k).value(v).build();
        let container = ContainerDefinition::builder()
            .name("app")
            .image("nginx:1.27")
            .cpu(0)
            .essential(true)
            .port_mappings(
                PortMapping::builder()
                    .container_port(3000)
                    .host_port(3000)
                    .protocol(TransportProtocol::Tcp)
                    .build(),
            )
            .environment(kv("PORT", "3000"))
            .environment(kv("NODE_ENV", "production"))
            .set_mount_points(Some(vec![]))
            .set_volumes_from(Some(vec![]))
            .set_system_controls(Some(vec![]))
            .secrets(
                Secret::builder()
                    .name("DB_PASSWORD")
                    .value_from("arn:aws:ssm:eu-west-1:123456789012:parameter/prd/db/password")
                    .build()
                    .unwrap(),
            )
            .health_check(
                HealthCheck::builder()
                    .command("CMD-SHELL")
                    .command("curl -f 'http://localhost:3000/api/health' || exit 1")
                    .interval(30)
                    .timeout(5)
                    .retries(3)
                    .start_period(60)
                    .build()
                    .unwrap(),
            )
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-stream-prefix", "ecs")
                    .options("awslogs-group", "/ecs/api")
                    .options("awslogs-region", "eu-west-1")
                    .build()
                    .unwrap(),
            )
            .build();
        let td = TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:eu-west-1:123456789012:task-definition/api:7")
            .family("api")
            .revision(7)
            .status(TaskDefinitionStatus::Active)
            .container_definitions(container)
            .execution_role_arn("arn:aws:iam::123456789012:role/exec")
            .network_mode(NetworkMode::Awsvpc)
            .set_volumes(Some(vec![]))
            .set_placement_constraints(Some(vec![]))
            .compatibilities(Compatibility::Ec2)
            .compatibilities(Compatibility::Fargate)
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("512")
            .memory("1024")
            .build();
        let changes = diff(
            &to_json(&desired_task_definition(&m, &r)),
            Some(&to_json(&live_task_definition(&td, "app"))),
        );
        assert!(changes.is_empty(), "{changes:#?}");
    }

    #[test]
    fn settings_mooring_never_sets_are_drift() {
        let m = manifest();
        let r = resolved();
        let (svc, mut td) = as_aws_returns_it(&m, &r);
        // AWS fillers are not drift.
        if let Some(c) = td
            .container_definitions
            .as_mut()
            .and_then(|c| c.first_mut())
        {
            c.cpu = 0;
            c.mount_points = Some(vec![]);
            c.system_controls = Some(vec![]);
        }
        td.volumes = Some(vec![]);
        assert!(changes(&m, &r, &svc, &td).is_empty());
        // An entry point and a volume registered out of band are.
        if let Some(c) = td
            .container_definitions
            .as_mut()
            .and_then(|c| c.first_mut())
        {
            c.entry_point = Some(vec!["/bin/sh".into(), "-c".into()]);
        }
        td.volumes = Some(vec![
            aws_sdk_ecs::types::Volume::builder()
                .name("scratch")
                .build(),
        ]);
        let changes = changes(&m, &r, &svc, &td);
        let fields: Vec<(&str, String)> = changes
            .iter()
            .map(|c| (c.field.as_str(), c.live.to_string()))
            .collect();
        assert_eq!(
            fields,
            vec![
                (
                    "taskDefinition.container.unmanagedSettings",
                    r#"["entryPoint"]"#.to_string()
                ),
                (
                    "taskDefinition.unmanagedSettings",
                    r#"["volumes"]"#.to_string()
                ),
            ]
        );
    }

    /// Apply registers the container from the (effective) document: what it sends must
    /// normalise back to that document, or every apply would register a new revision.
    #[test]
    fn a_registered_container_normalises_back_to_its_document() {
        let m = manifest();
        let r = resolved();
        let doc = desired_task_definition(&m, &r).container.unwrap();
        assert_eq!(container_doc(&container_definition(&doc)), doc);
        let mut bare = manifest();
        bare.spec.task_definition.container = serde_json::from_value(
            json!({"image": "api:1", "command": ["serve"]}),
        )
        .unwrap();
        let doc = desired_task_definition(&bare, &Resolved::default())
            .container
            .unwrap();
        assert_eq!(container_doc(&container_definition(&doc)), doc);
    }

    #[test]
    fn placeholders_and_sorting_of_attachments() {
        let mut m = manifest();
        m.spec.load_balancers = serde_json::from_value(json!([
            {"targetGroup": "web", "containerPort": 8080},
            {"targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/a/1"},
        ]))
        .unwrap();
        let lbs = desired(&m, &resolved()).load_balancers;
        let arns: Vec<&str> = lbs
            .iter()
            .map(|l| l.target_group_arn.as_deref().unwrap())
            .collect();
        assert_eq!(
            arns,
            [
                "(ARN of TargetGroup/web, once created)",
                "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/a/1"
            ]
        );
        assert!(is_pending_target_group(arns[0]));
        assert!(!is_pending_target_group(arns[1]));
        assert_eq!(lbs[0].container_port, Some(8080));
        assert_eq!(lbs[1].container_port, Some(3000));
    }

    #[test]
    fn sizes_and_arns_normalise() {
        assert_eq!(cpu_units("0.25 vCPU"), "256");
        assert_eq!(cpu_units("1 vcpu"), "1024");
        assert_eq!(cpu_units("512"), "512");
        assert_eq!(memory_mib("1 GB"), "1024");
        assert_eq!(memory_mib("0.5GB"), "512");
        assert_eq!(memory_mib("2048"), "2048");
        assert_eq!(
            ssm_parameter_arn("aws", "eu-west-1", "1", "/prd/x"),
            "arn:aws:ssm:eu-west-1:1:parameter/prd/x"
        );
        assert_eq!(
            ssm_parameter_arn("aws", "eu-west-1", "1", "plain"),
            "arn:aws:ssm:eu-west-1:1:parameter/plain"
        );
        assert_eq!(
            ssm_parameter_arn("aws", "r", "1", "arn:aws:ssm:r:2:parameter/y"),
            "arn:aws:ssm:r:2:parameter/y"
        );
    }

    #[test]
    fn http_health_check_becomes_curl() {
        let m = manifest();
        assert_eq!(
            health_check_command(&m.spec).unwrap(),
            vec![
                "CMD-SHELL",
                "curl -f 'http://localhost:3000/api/health' || exit 1"
            ]
        );
        let r = resolved();
        let doc = to_json(&desired_task_definition(&m, &r));
        assert_eq!(doc["container"]["healthCheck"]["interval"], json!(30));
        assert_eq!(doc["container"]["healthCheck"]["startPeriod"], json!(60));
        assert_eq!(
            doc["container"]["logConfiguration"]["options"]["awslogs-region"],
            json!("eu-west-1")
        );
        assert_eq!(
            doc["container"]["logConfiguration"]["options"]["awslogs-stream-prefix"],
            json!("ecs")
        );
        assert_eq!(
            doc["container"]["secrets"]["DB_PASSWORD"],
            json!("arn:aws:ssm:eu-west-1:123456789012:parameter/prd/db/password")
        );
    }

    #[test]
    fn fargate_platform_defaults_are_not_drift_and_changes_are_named() {
        let m = manifest();
        let r = resolved();
        let (svc, mut td) = as_aws_returns_it(&m, &r);
        td.ephemeral_storage = Some(
            aws_sdk_ecs::types::EphemeralStorage::builder()
                .size_in_gib(20)
                .build(),
        );
        assert!(changes(&m, &r, &svc, &td).is_empty(), "AWS's 20 GiB and X86_64/LINUX");
        td.ephemeral_storage = Some(
            aws_sdk_ecs::types::EphemeralStorage::builder()
                .size_in_gib(50)
                .build(),
        );
        td.runtime_platform = Some(
            aws_sdk_ecs::types::RuntimePlatform::builder()
                .cpu_architecture(aws_sdk_ecs::types::CpuArchitecture::Arm64)
                .build(),
        );
        let changes = changes(&m, &r, &svc, &td);
        let fields: Vec<(&str, String, String)> = changes
            .iter()
            .map(|c| (c.field.as_str(), c.live.to_string(), c.desired.to_string()))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("taskDefinition.ephemeralStorage.sizeInGiB", "50".into(), "20".into()),
                (
                    "taskDefinition.runtimePlatform.cpuArchitecture",
                    "\"ARM64\"".into(),
                    "\"X86_64\"".into()
                ),
            ]
        );
        // Declared, they are sent; the default never is (ECS takes 21-200 GiB only).
        let mut arm = manifest();
        arm.spec.task_definition.ephemeral_storage = Some(crate::kinds::service::spec::EphemeralStorageSpec { size_in_gib: 50 });
        arm.spec.task_definition.runtime_platform = serde_json::from_value(json!({"cpuArchitecture": "ARM64"})).unwrap();
        let doc = desired_task_definition(&arm, &r);
        assert_eq!(ephemeral_storage(&doc.ephemeral_storage).map(|e| e.size_in_gib()), Some(50));
        assert_eq!(
            runtime_platform(&doc.runtime_platform).and_then(|p| p.cpu_architecture().cloned()),
            Some(aws_sdk_ecs::types::CpuArchitecture::Arm64)
        );
        assert_eq!(live_task_definition(&td, "app").ephemeral_storage, doc.ephemeral_storage);
        assert_eq!(live_task_definition(&td, "app").runtime_platform, doc.runtime_platform);
        let plain = desired_task_definition(&manifest(), &r);
        assert!(ephemeral_storage(&plain.ephemeral_storage).is_none());
        assert!(runtime_platform(&plain.runtime_platform).is_none());
    }

    fn with_sidecars() -> Manifest<ServiceSpec> {
        let mut m = manifest();
        m.spec.task_definition.container.depends_on = serde_json::from_value(json!([
            {"containerName": "migrate", "condition": "SUCCESS"},
            {"containerName": "log-router", "condition": "START"},
        ]))
        .unwrap();
        m.spec.task_definition.sidecars = serde_json::from_value(json!([
            {"name": "log-router", "image": "fluent-bit:3", "essential": true,
             "logs": {"group": "/ecs/router"}},
            {"name": "migrate", "image": "api:1", "essential": false,
             "command": ["npm", "run", "migrate"],
             "secrets": {"DB_PASSWORD": {"ssmParameter": "/prd/db/password"}}},
        ]))
        .unwrap();
        m
    }

    fn resolved_with_sidecars() -> Resolved {
        let mut r = resolved();
        r.sidecars.insert(
            "migrate".into(),
            ResolvedContainer {
                secrets: r.secrets.clone(),
                secrets_version: Some("DB_PASSWORD=4".into()),
                ..Default::default()
            },
        );
        r
    }

    #[test]
    fn sidecars_as_aws_returns_them_have_no_changes_and_each_field_is_named() {
        let m = with_sidecars();
        let r = resolved_with_sidecars();
        let (svc, mut td) = as_aws_returns_it(&m, &r);
        assert_eq!(td.container_definitions().len(), 3);
        assert!(changes(&m, &r, &svc, &td).is_empty(), "{:#?}", changes(&m, &r, &svc, &td));
        // What is sent: the service's container first, each sidecar's own secrets and
        // secret versions, essential and dependsOn.
        let doc = desired_task_definition(&m, &r);
        let migrate = &doc.sidecars["migrate"];
        assert!(!migrate.essential);
        assert_eq!(migrate.environment["MOORING_SECRETS_VERSION"], "DB_PASSWORD=4");
        assert_eq!(
            migrate.secrets["DB_PASSWORD"],
            "arn:aws:ssm:eu-west-1:123456789012:parameter/prd/db/password"
        );
        assert_eq!(doc.sidecars["log-router"].log_configuration.as_ref().unwrap().options["awslogs-group"], "/ecs/router");
        assert_eq!(container_doc(&container_definition(migrate)), *migrate);
        let main = doc.container.as_ref().unwrap();
        assert_eq!(container_doc(&container_definition(main)), *main);
        assert_eq!(
            main.depends_on.iter().map(|d| d.container_name.as_str()).collect::<Vec<_>>(),
            ["log-router", "migrate"],
            "sorted by name"
        );

        for c in td.container_definitions.as_mut().unwrap() {
            match c.name() {
                Some("log-router") => c.image = Some("fluent-bit:evil".into()),
                Some("migrate") => c.essential = Some(true),
                Some("app") => {
                    c.depends_on.as_mut().unwrap()[0] = ContainerDependency::builder()
                        .container_name("log-router")
                        .condition(ContainerCondition::Healthy)
                        .build()
                        .unwrap()
                }
                _ => {}
            }
        }
        let mut fields: Vec<String> = changes(&m, &r, &svc, &td).into_iter().map(|c| c.field).collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "taskDefinition.container.dependsOn",
                "taskDefinition.sidecars.log-router.image",
                "taskDefinition.sidecars.migrate.essential",
            ]
        );
        // A sidecar removed by hand is named by its name.
        td.container_definitions.as_mut().unwrap().retain(|c| c.name() != Some("migrate"));
        let fields: Vec<String> = changes(&m, &r, &svc, &td).into_iter().map(|c| c.field).collect();
        // (a whole object against nothing is listed leaf by leaf, as a new resource is)
        assert!(
            fields.iter().any(|f| f == "taskDefinition.sidecars.migrate.image"),
            "{fields:?}"
        );
    }

    #[test]
    fn capacity_providers_are_compared_by_name_with_aws_defaults_and_replace_the_launch_type() {
        let mut spot = manifest();
        spot.spec.capacity_provider_strategy = serde_json::from_value(json!([
            {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0},
            {"capacityProvider": "FARGATE", "weight": 1},
        ]))
        .unwrap();
        let r = resolved();
        let (svc, td) = as_aws_returns_it(&spot, &r);
        assert!(svc.launch_type().is_none());
        assert!(changes(&spot, &r, &svc, &td).is_empty(), "{:#?}", changes(&spot, &r, &svc, &td));
        let d = desired(&spot, &r);
        assert_eq!(d.launch_type, None);
        assert_eq!(
            capacity_provider_strategy(&d.capacity_provider_strategy)
                .iter()
                .map(|i| (i.capacity_provider().to_string(), i.weight(), i.base()))
                .collect::<Vec<_>>(),
            [("FARGATE".to_string(), 1, 0), ("FARGATE_SPOT".to_string(), 3, 0)]
        );
        // The same service on the launch type: both named.
        let (plain_svc, _) = as_aws_returns_it(&manifest(), &r);
        let mut fields: Vec<String> = changes(&spot, &r, &plain_svc, &td).into_iter().map(|c| c.field).collect();
        fields.sort();
        assert_eq!(fields, ["capacityProviderStrategy", "launchType"]);
        // A strategy put on a launch-type service by hand: named the other way round.
        let m = manifest();
        let mut fields: Vec<String> = changes(&m, &r, &svc, &td).into_iter().map(|c| c.field).collect();
        fields.sort();
        assert_eq!(fields, ["capacityProviderStrategy", "launchType"]);
        // A weight changed by hand.
        let mut reweighted = svc.clone();
        // (AWS's order: FARGATE, weight 1, comes first; 7 is neither manifest weight)
        reweighted.capacity_provider_strategy.as_mut().unwrap()[0].weight = 7;
        let c = changes(&spot, &r, &reweighted, &td);
        assert_eq!(c.len(), 1, "{c:#?}");
        assert!(c[0].field.starts_with("capacityProviderStrategy"), "{c:#?}");
    }
}
