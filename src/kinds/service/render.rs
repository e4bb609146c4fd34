//! Pure rendering for services: the manifest into ECS request pieces, and both the
//! manifest and the live service into the normalised document plan compares.
//!
//! Normalisation rules (each has a unit test below): cpu/memory as ECS returns them
//! (`"256"`, also from `"0.25 vCPU"` / `"1 GB"`), hostPort = containerPort under awsvpc,
//! protocol `tcp`, health check defaults (interval 30, timeout 5, retries 3, start period
//! 0), `essential` true, environment and secrets as maps (order does not matter), subnets
//! and security groups sorted, deployment defaults (100 % / 200 %, circuit breaker off),
//! grace period 0, only the tags the manifest manages.

use std::collections::BTreeMap;

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, ContainerDefinition, DeploymentCircuitBreaker,
    DeploymentConfiguration, HealthCheck, KeyValuePair, LoadBalancer, LogConfiguration, LogDriver,
    NetworkConfiguration, PortMapping, Secret, Service, TaskDefinition, TransportProtocol,
};
use serde_json::{Map, Value, json};

use crate::manifest::service::ServiceSpec;
use crate::manifest::{Kind, Manifest, owned_tags};
use crate::resources::{live_tags_doc, tags_doc};

/// What plan looked up for a service: the inputs that are not in the manifest itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resolved {
    /// Subnet IDs, sorted.
    pub subnets: Vec<String>,
    /// Security group IDs, sorted.
    pub security_groups: Vec<String>,
    /// Secret env name → the ARN ECS reads it from.
    pub secrets: BTreeMap<String, String>,
    /// The region (default for awslogs).
    pub region: String,
    /// `TargetGroup` manifest name → ARN, for the target groups that exist.
    pub target_groups: BTreeMap<String, String>,
}

/// What plan shows for the ARN of a target group that this apply has yet to create.
pub fn pending_target_group(name: &str) -> String {
    format!("(ARN of TargetGroup/{name}, once created)")
}

/// AWS defaults for container health checks.
const HC_INTERVAL: i32 = 30;
const HC_TIMEOUT: i32 = 5;
const HC_RETRIES: i32 = 3;
/// AWS deployment defaults for replica services.
const MIN_HEALTHY: i32 = 100;
const MAX_PERCENT: i32 = 200;

/// The tags a service and its task definitions carry.
pub fn desired_tags(m: &Manifest<ServiceSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::Service, m.name(), &m.spec.tags)
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

/// The health check command a manifest asks for.
pub fn health_check_command(spec: &ServiceSpec) -> Option<Vec<String>> {
    let c = &spec.task_definition.container;
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

fn log_options(spec: &ServiceSpec, r: &Resolved) -> Option<BTreeMap<String, String>> {
    let logs = spec.task_definition.container.logs.as_ref()?;
    let mut o = BTreeMap::new();
    o.insert("awslogs-group".to_string(), logs.group.clone());
    o.insert(
        "awslogs-region".to_string(),
        logs.region.clone().unwrap_or_else(|| r.region.clone()),
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

/// The container definition to register.
pub fn container_definition(m: &Manifest<ServiceSpec>, r: &Resolved) -> ContainerDefinition {
    let spec = &m.spec;
    let c = &spec.task_definition.container;
    let mut b = ContainerDefinition::builder()
        .name(spec.container_name())
        .image(&c.image)
        .essential(true)
        .set_command(c.command.clone());
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
        b = b.environment(KeyValuePair::builder().name(k).value(v).build());
    }
    for (k, arn) in &r.secrets {
        // Secret names and ARNs are references, never values: safe to send and show.
        if let Ok(s) = Secret::builder().name(k).value_from(arn).build() {
            b = b.secrets(s);
        }
    }
    if let (Some(cmd), Some(hc)) = (health_check_command(spec), &c.health_check) {
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
    if let Some(options) = log_options(spec, r)
        && let Ok(lc) = LogConfiguration::builder()
            .log_driver(LogDriver::Awslogs)
            .set_options(Some(options.into_iter().collect()))
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
pub fn desired_task_definition(m: &Manifest<ServiceSpec>, r: &Resolved) -> Value {
    let spec = &m.spec;
    let td = &spec.task_definition;
    json!({
        "family": spec.family(&m.metadata),
        "cpu": td.cpu.to_string(),
        "memory": td.memory.to_string(),
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "executionRoleArn": td.execution_role_arn,
        "taskRoleArn": td.task_role_arn,
        "container": container_doc(&container_definition(m, r)),
        "otherContainers": [],
        "unmanagedSettings": [],
    })
}

/// The task definition part of the normalised document, from what ECS returned.
pub fn live_task_definition(td: &TaskDefinition, container_name: &str) -> Value {
    let mut others: Vec<&str> = td
        .container_definitions()
        .iter()
        .filter_map(|c| c.name())
        .filter(|n| *n != container_name)
        .collect();
    others.sort();
    let container = td
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(container_name))
        .map(container_doc)
        .unwrap_or(Value::Null);
    let mut compat: Vec<&str> = td
        .requires_compatibilities()
        .iter()
        .map(|c| c.as_str())
        .collect();
    compat.sort();
    json!({
        "family": td.family(),
        "cpu": td.cpu().map(cpu_units),
        "memory": td.memory().map(memory_mib),
        "networkMode": td.network_mode().map(|n| n.as_str()),
        "requiresCompatibilities": compat,
        "executionRoleArn": td.execution_role_arn(),
        "taskRoleArn": td.task_role_arn(),
        "container": container,
        "otherContainers": others,
        "unmanagedSettings": unmanaged_task_settings(td),
    })
}

/// Container settings that are set but that mooring never sets. The manifest cannot ask
/// for them, so any of them in a live revision (say an `entryPoint` registered out of
/// band) is drift; the values are not shown, only the names. AWS's own fillers (`cpu: 0`,
/// empty lists) do not count.
fn unmanaged_container_settings(c: &ContainerDefinition) -> Vec<&'static str> {
    let checks: [(&'static str, bool); 26] = [
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
        ("dependsOn", !c.depends_on().is_empty()),
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
/// [`unmanaged_container_settings`]). Fargate's defaults (Linux/x86-64, 20 GiB of
/// ephemeral storage) do not count.
fn unmanaged_task_settings(td: &TaskDefinition) -> Vec<&'static str> {
    let platform = td.runtime_platform().is_some_and(|p| {
        p.cpu_architecture().is_some_and(|a| a.as_str() != "X86_64")
            || p.operating_system_family()
                .is_some_and(|o| o.as_str() != "LINUX")
    });
    let checks: [(&'static str, bool); 7] = [
        ("volumes", !td.volumes().is_empty()),
        (
            "placementConstraints",
            !td.placement_constraints().is_empty(),
        ),
        ("runtimePlatform", platform),
        (
            "ephemeralStorage",
            td.ephemeral_storage()
                .is_some_and(|e| e.size_in_gib() != 20),
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

/// One container in normalised form; used for both sides, so a registered definition
/// always normalises to exactly what the manifest rendered.
fn container_doc(c: &ContainerDefinition) -> Value {
    let mut ports: Vec<Value> = c
        .port_mappings()
        .iter()
        .map(|p| {
            let cp = p.container_port();
            json!({
                "containerPort": cp,
                "hostPort": p.host_port().or(cp),
                "protocol": p.protocol().map_or("tcp".to_string(), |t| t.as_str().to_ascii_lowercase()),
            })
        })
        .collect();
    ports.sort_by_key(|p| p["containerPort"].as_i64());
    let env: Map<String, Value> = c
        .environment()
        .iter()
        .filter_map(|kv| {
            Some((
                kv.name()?.to_string(),
                json!(kv.value().unwrap_or_default()),
            ))
        })
        .collect();
    let secrets: Map<String, Value> = c
        .secrets()
        .iter()
        .map(|s| (s.name().to_string(), json!(s.value_from())))
        .collect();
    let health = c.health_check().map(|h| {
        json!({
            "command": h.command(),
            "interval": h.interval().unwrap_or(HC_INTERVAL),
            "timeout": h.timeout().unwrap_or(HC_TIMEOUT),
            "retries": h.retries().unwrap_or(HC_RETRIES),
            "startPeriod": h.start_period().unwrap_or(0),
        })
    });
    let logs = c.log_configuration().map(|l| {
        let options: BTreeMap<&str, &str> = l
            .options()
            .map(|o| o.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
            .unwrap_or_default();
        json!({"logDriver": l.log_driver().as_str(), "options": options})
    });
    let command = c.command().to_vec();
    json!({
        "unmanagedSettings": unmanaged_container_settings(c),
        "name": c.name(),
        "image": c.image(),
        "essential": c.essential().unwrap_or(true),
        "portMappings": ports,
        "command": if command.is_empty() { Value::Null } else { json!(command) },
        "environment": env,
        "secrets": secrets,
        "healthCheck": health,
        "logConfiguration": logs,
    })
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

/// The awsvpc network configuration to send.
pub fn network_configuration(spec: &ServiceSpec, r: &Resolved) -> Option<NetworkConfiguration> {
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(r.subnets.clone()))
        .set_security_groups(Some(r.security_groups.clone()))
        .assign_public_ip(if spec.network.assign_public_ip {
            AssignPublicIp::Enabled
        } else {
            AssignPublicIp::Disabled
        })
        .build()
        .ok()?;
    Some(
        NetworkConfiguration::builder()
            .awsvpc_configuration(vpc)
            .build(),
    )
}

/// The deployment configuration to send (defaults filled in, so it is always complete).
pub fn deployment_configuration(spec: &ServiceSpec) -> DeploymentConfiguration {
    let d = &spec.deployment;
    let (enable, rollback) = d
        .circuit_breaker
        .as_ref()
        .map_or((false, false), |c| (c.enable, c.rollback));
    DeploymentConfiguration::builder()
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(enable)
                .rollback(rollback)
                .build(),
        )
        .minimum_healthy_percent(d.minimum_healthy_percent.map_or(MIN_HEALTHY, to_i32))
        .maximum_percent(d.maximum_percent.map_or(MAX_PERCENT, to_i32))
        .build()
}

/// The load balancer attachments to send.
pub fn load_balancers(spec: &ServiceSpec, r: &Resolved) -> Vec<LoadBalancer> {
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
            LoadBalancer::builder()
                .target_group_arn(arn)
                .container_name(spec.container_name())
                .container_port(i32::from(
                    lb.container_port
                        .or(spec.task_definition.container.port)
                        .unwrap_or(80),
                ))
                .build()
        })
        .collect()
}

fn load_balancers_doc(lbs: &[LoadBalancer]) -> Value {
    let mut v: Vec<Value> = lbs
        .iter()
        .map(|lb| {
            json!({
                "targetGroupArn": lb.target_group_arn(),
                "containerName": lb.container_name(),
                "containerPort": lb.container_port(),
            })
        })
        .collect();
    v.sort_by_key(|x| x.to_string());
    json!(v)
}

fn network_doc(nc: Option<&NetworkConfiguration>) -> Value {
    let vpc = nc.and_then(|n| n.awsvpc_configuration());
    let mut subnets: Vec<&str> = vpc
        .map(|v| v.subnets().iter().map(String::as_str).collect())
        .unwrap_or_default();
    subnets.sort();
    let mut sgs: Vec<&str> = vpc
        .map(|v| v.security_groups().iter().map(String::as_str).collect())
        .unwrap_or_default();
    sgs.sort();
    json!({
        "subnets": subnets,
        "securityGroups": sgs,
        "assignPublicIp": vpc.and_then(|v| v.assign_public_ip()).map_or("DISABLED", |a| a.as_str()),
    })
}

fn deployment_doc(d: Option<&DeploymentConfiguration>) -> Value {
    let cb = d.and_then(|d| d.deployment_circuit_breaker());
    json!({
        "circuitBreaker": {
            "enable": cb.is_some_and(|c| c.enable()),
            "rollback": cb.is_some_and(|c| c.rollback()),
        },
        "minimumHealthyPercent": d.and_then(|d| d.minimum_healthy_percent()).unwrap_or(MIN_HEALTHY),
        "maximumPercent": d.and_then(|d| d.maximum_percent()).unwrap_or(MAX_PERCENT),
    })
}

/// The whole normalised document of a service, from the manifest.
pub fn desired_doc(m: &Manifest<ServiceSpec>, r: &Resolved) -> Value {
    let spec = &m.spec;
    let mut doc = Map::new();
    doc.insert("launchType".into(), json!("FARGATE"));
    if let Some(n) = spec.desired_count {
        doc.insert("desiredCount".into(), json!(n));
    }
    doc.insert("taskDefinition".into(), desired_task_definition(m, r));
    doc.insert(
        "network".into(),
        network_doc(network_configuration(spec, r).as_ref()),
    );
    doc.insert(
        "deployment".into(),
        deployment_doc(Some(&deployment_configuration(spec))),
    );
    doc.insert(
        "healthCheckGracePeriodSeconds".into(),
        json!(spec.health_check_grace_period_seconds.unwrap_or(0)),
    );
    doc.insert(
        "enableExecuteCommand".into(),
        json!(spec.enable_execute_command),
    );
    doc.insert(
        "loadBalancers".into(),
        load_balancers_doc(&load_balancers(spec, r)),
    );
    doc.insert("tags".into(), tags_doc(&desired_tags(m)));
    Value::Object(doc)
}

/// The whole normalised document of a live service and the task definition it runs.
pub fn live_doc(m: &Manifest<ServiceSpec>, s: &Service, td: Option<&TaskDefinition>) -> Value {
    let spec = &m.spec;
    let mut doc = Map::new();
    let launch = s
        .launch_type()
        .map(|l| l.as_str().to_string())
        .unwrap_or_else(|| {
            // A capacity provider strategy of FARGATE / FARGATE_SPOT is Fargate too.
            let fargate = s
                .capacity_provider_strategy()
                .iter()
                .any(|c| c.capacity_provider().starts_with("FARGATE"));
            if fargate { "FARGATE" } else { "(none)" }.to_string()
        });
    doc.insert("launchType".into(), json!(launch));
    if spec.desired_count.is_some() {
        doc.insert("desiredCount".into(), json!(s.desired_count()));
    }
    doc.insert(
        "taskDefinition".into(),
        td.map_or(Value::Null, |td| {
            live_task_definition(td, spec.container_name())
        }),
    );
    doc.insert("network".into(), network_doc(s.network_configuration()));
    doc.insert(
        "deployment".into(),
        deployment_doc(s.deployment_configuration()),
    );
    doc.insert(
        "healthCheckGracePeriodSeconds".into(),
        json!(s.health_check_grace_period_seconds().unwrap_or(0)),
    );
    doc.insert(
        "enableExecuteCommand".into(),
        json!(s.enable_execute_command()),
    );
    doc.insert(
        "loadBalancers".into(),
        load_balancers_doc(s.load_balancers()),
    );
    let tags = s.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)));
    doc.insert("tags".into(), live_tags_doc(tags, &desired_tags(m)));
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;
    use crate::reconcile::diff::diff;
    use aws_sdk_ecs::types::{Compatibility, NetworkMode, Tag};

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
        }
    }

    /// What ECS returns for a task definition registered from the manifest, written the way
    /// AWS writes it: other list order, AWS-filled defaults left implicit or spelled out.
    fn as_aws_returns_it(m: &Manifest<ServiceSpec>, r: &Resolved) -> (Service, TaskDefinition) {
        let mut c = container_definition(m, r);
        c.environment = c.environment.map(|mut e| {
            e.reverse();
            e
        });
        // AWS fills protocol and hostPort; ECS stores what it was given otherwise.
        c.port_mappings = Some(vec![PortMapping::builder().container_port(3000).build()]);
        c.essential = None;
        let td = TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:eu-west-1:123456789012:task-definition/api:3")
            .family("api")
            .cpu("0.5 vCPU")
            .memory("1 GB")
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .execution_role_arn("arn:aws:iam::123456789012:role/exec")
            .container_definitions(c)
            .build();
        let vpc = AwsVpcConfiguration::builder()
            .subnets("subnet-b")
            .subnets("subnet-a")
            .security_groups("sg-1")
            .build()
            .unwrap();
        let mut svc = Service::builder()
            .service_name("api")
            .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
            .desired_count(2)
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(vpc)
                    .build(),
            )
            .deployment_configuration(deployment_configuration(&m.spec))
            .health_check_grace_period_seconds(60)
            .set_load_balancers(Some(load_balancers(&m.spec, r)))
            .tags(
                Tag::builder()
                    .key("aws:ecs:clusterName")
                    .value("prd")
                    .build(),
            );
        for (k, v) in desired_tags(m) {
            svc = svc.tags(Tag::builder().key(k).value(v).build());
        }
        (svc.build(), td)
    }

    #[test]
    fn a_service_as_aws_returns_it_has_no_changes() {
        let m = manifest();
        let r = resolved();
        let (svc, td) = as_aws_returns_it(&m, &r);
        let changes = diff(&desired_doc(&m, &r), Some(&live_doc(&m, &svc, Some(&td))));
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
        let mut changes = diff(&desired_doc(&m, &r), Some(&live_doc(&m, &svc, Some(&td))));
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
        assert!(diff(&desired_doc(&m, &r), Some(&live_doc(&m, &svc, Some(&td)))).is_empty());
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
        assert!(diff(&desired_doc(&m, &r), Some(&live_doc(&m, &svc, Some(&td)))).is_empty());
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
        let changes = diff(&desired_doc(&m, &r), Some(&live_doc(&m, &svc, Some(&td))));
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "taskDefinition.container.environment.DEBUG",
                "taskDefinition.otherContainers"
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
            &desired_task_definition(&m, &r),
            Some(&live_task_definition(&td, "app")),
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
        assert!(diff(&desired_doc(&m, &r), Some(&live_doc(&m, &svc, Some(&td)))).is_empty());
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
        let changes = diff(&desired_doc(&m, &r), Some(&live_doc(&m, &svc, Some(&td))));
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
        let doc = desired_task_definition(&m, &r);
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
}
