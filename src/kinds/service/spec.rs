//! `kind: Service` — an ECS service on Fargate, with the task definition it runs.

use std::collections::BTreeMap;

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

/// Task-level settings of the task definition (Fargate, awsvpc, one essential container).
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
    /// The application container.
    pub container: ContainerSpec,
}

/// The application container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerSpec {
    /// Container name. Defaults to `app`.
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

        let c = &td.container;
        if td.execution_role_arn.is_none() && (c.logs.is_some() || !c.secrets.is_empty()) {
            f.at(
                "/spec/taskDefinition",
                "`executionRoleArn` is required when the container has `logs` or `secrets` (ECS uses that role to write logs and read secrets)",
            );
        }
        self.check_container(f);
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

    fn check_container(&self, f: &mut Findings<'_>) {
        let c = &self.task_definition.container;
        let base = "/spec/taskDefinition/container";
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

    #[test]
    fn env_names() {
        assert!(is_env_name("DB_HOST"));
        assert!(is_env_name("_X1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A-B"));
    }
}
