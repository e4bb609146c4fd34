//! A service and the task definition it runs: `<service>.yaml`.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ecs::types::{
    ContainerDefinition, Service, ServiceField, TaskDefinition, TaskDefinitionField,
};
use serde_json::{Map, Value, json};

use super::target_group::TargetGroup;
use super::{Ctx, Imported, Names, read_failed, user_tags};
use crate::aws::AwsError;
use crate::kinds::service::spec::{DEFAULT_CONTAINER_NAME, SECRETS_VERSION_ENV};

/// A live service and the revision it runs.
pub(crate) struct Read {
    /// The service.
    pub service: Service,
    /// Its task definition.
    pub td: TaskDefinition,
}

/// The imported service and the SSM parameters its secrets read.
pub(crate) struct Built {
    /// The Service manifest.
    pub doc: Imported,
    /// Full names of the SSM parameters (this account and region) its secrets read.
    pub secrets: Vec<String>,
}

/// Reads the cluster's services (all, or those named), sorted by name, and their revisions.
pub(crate) async fn read(
    cx: &Ctx<'_>,
    cluster: &str,
    only: &[String],
) -> Result<Vec<Read>, String> {
    let ecs = &cx.aws.ecs;
    let wanted: Vec<String> = if only.is_empty() {
        ecs.list_services()
            .cluster(cluster)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| {
                format!(
                    "failed to list the services of `{cluster}`: {}",
                    AwsError::from_sdk("ecs:ListServices", e)
                )
            })?
    } else {
        only.to_vec()
    };
    let mut services = Vec::new();
    for chunk in wanted.chunks(10) {
        let out = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|e| {
                read_failed(
                    format!("services of `{cluster}`"),
                    "ecs:DescribeServices",
                    e,
                )
            })?;
        if let Some(f) = out.failures().first() {
            return Err(format!(
                "failed to find service `{}` in cluster `{cluster}` ({})",
                f.arn()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default(),
                f.reason().unwrap_or("missing")
            ));
        }
        services.extend(
            out.services()
                .iter()
                .filter(|s| s.status() != Some("INACTIVE"))
                .cloned(),
        );
    }
    services.sort_by(|a, b| a.service_name().cmp(&b.service_name()));
    let mut out = Vec::new();
    for s in services {
        let arn = s.task_definition().unwrap_or_default().to_string();
        let td = ecs
            .describe_task_definition()
            .task_definition(&arn)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(|e| {
                read_failed(
                    format!("task definition `{arn}`"),
                    "ecs:DescribeTaskDefinition",
                    e,
                )
            })?
            .task_definition
            .ok_or_else(|| format!("failed to read task definition `{arn}`"))?;
        out.push(Read { service: s, td });
    }
    Ok(out)
}

/// The container the manifest describes: the one a load balancer sends traffic to, else
/// the only (or first essential) one.
fn main_container<'a>(s: &Service, td: &'a TaskDefinition) -> Option<&'a ContainerDefinition> {
    let cs = td.container_definitions();
    let by_lb = s
        .load_balancers()
        .iter()
        .filter_map(|l| l.container_name())
        .find_map(|n| cs.iter().find(|c| c.name() == Some(n)));
    by_lb
        .or_else(|| cs.iter().find(|c| c.essential() != Some(false)))
        .or(cs.first())
}

/// An SSM parameter's name from a `valueFrom` ARN of this account and region (`None` for
/// another's, kept as an ARN).
fn parameter_name(cx: &Ctx<'_>, value_from: &str) -> Option<String> {
    if !value_from.starts_with("arn:") {
        return Some(value_from.to_string());
    }
    let parts: Vec<&str> = value_from.splitn(6, ':').collect();
    let [_, _, "ssm", region, account, resource] = parts.as_slice() else {
        return None;
    };
    if *region != cx.region || *account != cx.account {
        return None;
    }
    let rest = resource.strip_prefix("parameter/")?;
    Some(if rest.contains('/') {
        format!("/{rest}")
    } else {
        rest.to_string()
    })
}

/// One container as a manifest writes it (`container` or one of `sidecars`).
struct ContainerOut {
    /// The container's fields.
    spec: Map<String, Value>,
    /// `field: what` for what the manifest cannot express.
    cannot: Vec<String>,
    /// Remarks that need no observe mode.
    notes: Vec<String>,
    /// Full names of the SSM parameters (this account and region) its secrets read.
    secrets_read: Vec<String>,
    /// Whether it has secrets.
    has_secrets: bool,
    /// Whether it carries `MOORING_SECRETS_VERSION` (mooring follows its secrets).
    followed: bool,
}

/// Reads one container: the service's (`sidecar` `None`, whose health check may be the
/// target groups' `tg_paths`) or the sidecar of that name. What it cannot express is named
/// under `taskDefinition.container.` or `taskDefinition.sidecars.<name>.`.
fn container_spec(
    cx: &Ctx<'_>,
    c: &ContainerDefinition,
    sidecar: Option<&str>,
    tg_paths: &[&str],
) -> ContainerOut {
    let at = match sidecar {
        None => "taskDefinition.container".to_string(),
        Some(n) => format!("taskDefinition.sidecars.{n}"),
    };
    let mut cannot = Vec::new();
    let mut notes = Vec::new();
    let mut secrets_read = Vec::new();
    let mut container = Map::new();
    let doc = crate::kinds::service::render::container_doc(c);
    for setting in &doc.unmanaged_settings {
        cannot.push(format!("{at}.{setting}"));
    }
    match sidecar {
        None => {
            if !doc.essential {
                cannot.push(format!("{at}.essential: false"));
            }
            let name = doc.name.as_deref().unwrap_or(DEFAULT_CONTAINER_NAME);
            if name != DEFAULT_CONTAINER_NAME {
                container.insert("name".into(), json!(name));
            }
        }
        Some(n) => {
            container.insert("name".into(), json!(n));
        }
    }
    let image = doc.image.clone().unwrap_or_default();
    container.insert("image".into(), json!(image));
    if let Some(ecr) = crate::kinds::service::image::EcrImage::parse(&image)
        && ecr.digest.is_none()
    {
        // mooring would otherwise follow the tag by digest: a new revision.
        container.insert("imageUpdate".into(), json!("tag"));
        let whose = sidecar.map_or(String::new(), |n| format!(" of sidecar `{n}`"));
        notes.push(format!(
            "the image{whose} is registered by tag as it runs today (`imageUpdate: tag`); remove it to follow `{}` by digest (one new revision)",
            ecr.tag.as_deref().unwrap_or("latest")
        ));
    }
    if sidecar.is_some() && !doc.essential {
        container.insert("essential".into(), json!(false));
    }
    let mut port = None;
    match doc.port_mappings.as_slice() {
        [] => {}
        [p] if p.protocol == "tcp" && p.host_port == p.container_port => {
            port = p.container_port;
            container.insert("port".into(), json!(p.container_port));
        }
        more => cannot.push(format!(
            "{at}.portMappings: {} mapping(s) ({}); a manifest maps one TCP port",
            more.len(),
            more.iter()
                .map(|p| format!("{}/{}", p.container_port.unwrap_or_default(), p.protocol))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    container.insert("command".into(), json!(doc.command));
    let mut env = doc.environment.clone();
    let followed = env.remove(SECRETS_VERSION_ENV).is_some();
    container.insert("environment".into(), json!(env));
    let mut secrets = BTreeMap::new();
    for (k, from) in &doc.secrets {
        if from.contains(":secretsmanager:") {
            secrets.insert(k.clone(), json!({"secretsManagerArn": from}));
        } else {
            if !from.starts_with("arn:") {
                notes.push(format!(
                    "secret {k} names its parameter `{from}` without an ARN; mooring registers it by ARN (one new revision)"
                ));
            }
            match parameter_name(cx, from) {
                Some(n) => {
                    secrets_read.push(n.clone());
                    secrets.insert(k.clone(), json!({"ssmParameter": n}));
                }
                None => {
                    secrets.insert(k.clone(), json!({"ssmParameter": from}));
                }
            }
        }
    }
    let has_secrets = !secrets.is_empty();
    container.insert("secrets".into(), json!(secrets));
    if let Some(hc) = &doc.health_check {
        let mut h = Map::new();
        let http_path = port.and_then(|p| {
            let cmd = hc.command.get(1)?;
            let path = cmd
                .strip_prefix(&format!("curl -f 'http://localhost:{p}"))?
                .strip_suffix("' || exit 1")?;
            (hc.command.len() == 2
                && hc.command[0] == "CMD-SHELL"
                && path.starts_with('/')
                && tg_paths.iter().all(|t| *t == path))
            .then(|| path.to_string())
        });
        match http_path {
            Some(p) => h.insert("httpPath".into(), json!(p)),
            None => h.insert("command".into(), json!(hc.command)),
        };
        for (k, v, default) in [
            ("intervalSeconds", hc.interval, 30),
            ("timeoutSeconds", hc.timeout, 5),
            ("retries", hc.retries, 3),
            ("startPeriodSeconds", hc.start_period, 0),
        ] {
            if v != default {
                h.insert(k.into(), json!(v));
            }
        }
        container.insert("healthCheck".into(), Value::Object(h));
    }
    if let Some(l) = &doc.log_configuration {
        let mut o = l.options.clone();
        if l.log_driver != "awslogs" {
            cannot.push(format!(
                "{at}.logConfiguration.logDriver: {} (mooring writes awslogs)",
                l.log_driver
            ));
        } else {
            let mut logs = Map::new();
            logs.insert("group".into(), json!(o.remove("awslogs-group")));
            if let Some(p) = o.remove("awslogs-stream-prefix").filter(|p| p != "ecs") {
                logs.insert("streamPrefix".into(), json!(p));
            }
            if let Some(region) = o.remove("awslogs-region").filter(|r| *r != cx.region) {
                logs.insert("region".into(), json!(region));
            }
            if o.remove("awslogs-create-group").as_deref() == Some("true") {
                logs.insert("createGroup".into(), json!(true));
            }
            for k in o.keys() {
                cannot.push(format!("{at}.logConfiguration.options.{k}"));
            }
            container.insert("logs".into(), Value::Object(logs));
        }
    }
    let depends_on: Vec<Value> = doc
        .depends_on
        .iter()
        .map(|d| json!({"containerName": d.container_name, "condition": d.condition}))
        .collect();
    container.insert("dependsOn".into(), json!(depends_on));
    ContainerOut {
        spec: container,
        cannot,
        notes,
        secrets_read,
        has_secrets,
        followed,
    }
}

/// The `logs` blocks of an imported Service spec's containers (`container`, then each of
/// `sidecars`), whose `group` import rewrites to a `LogGroup` manifest's name.
pub(crate) fn logs_mut(spec: &mut Value) -> Vec<&mut Value> {
    let Some(td) = spec
        .get_mut("taskDefinition")
        .and_then(Value::as_object_mut)
    else {
        return Vec::new();
    };
    td.iter_mut()
        .flat_map(|(k, v)| match k.as_str() {
            "container" => vec![v],
            "sidecars" => v
                .as_array_mut()
                .map(|a| a.iter_mut().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        })
        .filter_map(|c| c.get_mut("logs"))
        .collect()
}

/// Builds the Service manifest.
pub(crate) fn build(
    cx: &Ctx<'_>,
    r: &Read,
    cluster: &str,
    tgs: &BTreeMap<String, TargetGroup>,
    forwarded: &BTreeSet<String>,
    scaled: bool,
    names: &mut Names,
) -> Built {
    let s = &r.service;
    let td = &r.td;
    let aws_name = s.service_name().unwrap_or_default().to_string();
    let name = names.take_owned(
        "Service",
        &aws_name,
        s.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))),
    );
    let mut cannot: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut secrets_read = Vec::new();

    // Task definition.
    let main = main_container(s, td);
    let main_name = main
        .and_then(|c| c.name())
        .unwrap_or(DEFAULT_CONTAINER_NAME);
    let live_td = crate::kinds::service::render::live_task_definition(td, main_name);
    for setting in &live_td.unmanaged_settings {
        cannot.push(format!("taskDefinition.{setting}"));
    }
    if live_td.network_mode.as_deref() != Some("awsvpc") {
        cannot.push(format!(
            "taskDefinition.networkMode: {} (mooring runs awsvpc)",
            live_td.network_mode.as_deref().unwrap_or("(none)")
        ));
    }
    if !live_td
        .requires_compatibilities
        .iter()
        .any(|c| c == "FARGATE")
    {
        cannot.push("taskDefinition.requiresCompatibilities: not FARGATE".into());
    }
    let tg_paths: Vec<&str> = s
        .load_balancers()
        .iter()
        .filter_map(|l| l.target_group_arn())
        .filter(|a| forwarded.contains(*a))
        .filter_map(|a| tgs.get(a))
        .map(|t| t.health_path.as_str())
        .collect();
    let mut container = Map::new();
    let mut with_secrets = Vec::new();
    if let Some(c) = main {
        let out = container_spec(cx, c, None, &tg_paths);
        container = out.spec;
        cannot.extend(out.cannot);
        notes.extend(out.notes);
        secrets_read.extend(out.secrets_read);
        if out.has_secrets {
            with_secrets.push((main_name.to_string(), out.followed));
        }
    }
    // The other containers, in the task definition's order, as sidecars.
    let mut sidecars = Vec::new();
    for c in td
        .container_definitions()
        .iter()
        .filter(|c| c.name().is_some_and(|n| n != main_name))
    {
        let name = c.name().unwrap_or_default();
        let out = container_spec(cx, c, Some(name), &[]);
        cannot.extend(out.cannot);
        notes.extend(out.notes);
        secrets_read.extend(out.secrets_read);
        if out.has_secrets {
            with_secrets.push((name.to_string(), out.followed));
        }
        sidecars.push(Value::Object(out.spec));
    }
    // Following secret versions adds MOORING_SECRETS_VERSION to each container with
    // secrets: a new revision, unless every such container already has it.
    let mut restart_on_secret_change = None;
    if with_secrets.iter().any(|(_, followed)| !followed) {
        restart_on_secret_change = Some(false);
        notes.push("`deploy.restartOnSecretChange: false` keeps the running revision; remove it to redeploy when a secret gets a new version (one new revision)".into());
        for (name, _) in with_secrets.iter().filter(|(_, followed)| *followed) {
            notes.push(format!(
                "container `{name}` follows its secrets' versions today but `{}` does not: with `restartOnSecretChange: false` the first apply registers one new revision without it",
                with_secrets.iter().find(|(_, f)| !f).map_or("", |(n, _)| n.as_str())
            ));
        }
    }
    let (cpu, memory) = (
        live_td.cpu.as_deref().and_then(|c| c.parse::<u32>().ok()),
        live_td
            .memory
            .as_deref()
            .and_then(|m| m.parse::<u32>().ok()),
    );
    let task_definition = json!({
        "family": td.family(),
        "cpu": cpu,
        "memory": memory,
        "executionRoleArn": td.execution_role_arn(),
        "taskRoleArn": td.task_role_arn(),
        "container": container,
        "sidecars": sidecars,
    });

    // The service. A strategy of Fargate's providers is written as it is, even one plain
    // `FARGATE` (the kind compares a live strategy as a strategy, not as the launch type);
    // moto keeps the launch type beside a strategy set by UpdateService, ECS drops it, and
    // the strategy decides in both.
    let launch_fargate = s.launch_type().map(|l| l.as_str()) == Some("FARGATE");
    let strategy = s.capacity_provider_strategy();
    let mut capacity_provider_strategy = Value::Null;
    if !strategy.is_empty() {
        match fargate_strategy(strategy) {
            Some(written) => capacity_provider_strategy = written,
            None => cannot.push(format!(
                "capacityProviderStrategy: {}",
                strategy
                    .iter()
                    .map(|c| format!(
                        "{} weight {} base {}",
                        c.capacity_provider(),
                        c.weight(),
                        c.base()
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    } else if strategy.is_empty() && !launch_fargate {
        cannot.push(format!(
            "capacityProviderStrategy: launch type {}",
            s.launch_type().map_or("(none)", |l| l.as_str())
        ));
    }
    if !s.placement_strategy().is_empty() {
        cannot.push("placementStrategy".into());
    }
    if !s.placement_constraints().is_empty() {
        cannot.push("placementConstraints".into());
    }
    if !s.service_registries().is_empty() {
        cannot.push("serviceRegistries (Cloud Map service discovery)".into());
    }
    if let Some(c) = s.deployment_controller()
        && c.r#type().as_str() != "ECS"
    {
        cannot.push(format!("deploymentController: {}", c.r#type().as_str()));
    }
    let vpc = s
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration());
    let mut subnets: Vec<String> = vpc.map(|v| v.subnets().to_vec()).unwrap_or_default();
    subnets.sort();
    let mut sgs: Vec<String> = vpc
        .map(|v| v.security_groups().to_vec())
        .unwrap_or_default();
    sgs.sort();
    if vpc.is_none() {
        cannot.push("networkConfiguration: none (mooring runs awsvpc)".into());
    }
    let public = vpc.and_then(|v| v.assign_public_ip()).map(|a| a.as_str()) == Some("ENABLED");
    let network = json!({
        "subnets": {"ids": subnets},
        "securityGroups": {"ids": sgs},
        "assignPublicIp": if public { Some(true) } else { None },
    });
    let d = s.deployment_configuration();
    let cb = d
        .and_then(|d| d.deployment_circuit_breaker())
        .filter(|c| c.enable() || c.rollback());
    let deployment = json!({
        "circuitBreaker": cb.map(|c| json!({"enable": c.enable(), "rollback": c.rollback()})),
        "minimumHealthyPercent": d.and_then(|d| d.minimum_healthy_percent()).filter(|v| *v != 100),
        "maximumPercent": d.and_then(|d| d.maximum_percent()).filter(|v| *v != 200),
    });
    let mut load_balancers = Vec::new();
    for lb in s.load_balancers() {
        let Some(arn) = lb.target_group_arn() else {
            cannot.push("loadBalancers: a classic load balancer".into());
            continue;
        };
        if lb.container_name().is_some_and(|n| n != main_name) {
            cannot.push(format!(
                "loadBalancers: traffic to container `{}`",
                lb.container_name().unwrap_or_default()
            ));
            continue;
        }
        let mut entry = Map::new();
        match tgs.get(arn).filter(|_| forwarded.contains(arn)) {
            Some(tg) => {
                entry.insert("targetGroup".into(), json!(tg.doc.name));
            }
            None => {
                notes.push(format!(
                    "target group {arn} is named by ARN: no listener's default action forwards to it, so it is not imported"
                ));
                entry.insert("targetGroupArn".into(), json!(arn));
            }
        }
        let port = lb.container_port();
        if port.is_some()
            && port
                != container
                    .get("port")
                    .and_then(Value::as_i64)
                    .map(|p| p as i32)
        {
            entry.insert("containerPort".into(), json!(port));
        }
        load_balancers.push(Value::Object(entry));
    }
    load_balancers.sort_by_key(|v| v.to_string());
    let platform = s.platform_version().filter(|p| *p != "LATEST");
    let grace = s.health_check_grace_period_seconds().filter(|g| *g != 0);
    let tags = user_tags(s.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))));
    let spec = json!({
        "cluster": cluster,
        "serviceName": aws_name,
        "desiredCount": if scaled { None } else { Some(s.desired_count()) },
        "taskDefinition": task_definition,
        "network": network,
        "deployment": deployment,
        "healthCheckGracePeriodSeconds": grace,
        "enableExecuteCommand": if s.enable_execute_command() { Some(true) } else { None },
        "platformVersion": platform,
        "capacityProviderStrategy": capacity_provider_strategy,
        "loadBalancers": load_balancers,
        "tags": tags,
        "deploy": {"restartOnSecretChange": restart_on_secret_change},
    });
    let mut doc = Imported::new(
        "Service",
        name,
        s.service_arn().unwrap_or_default().to_string(),
        spec,
    );
    doc.notes.push(format!(
        "runs task definition {}",
        td.task_definition_arn().unwrap_or_default()
    ));
    doc.cannot_carry = cannot;
    doc.notes.extend(notes);
    secrets_read.sort();
    secrets_read.dedup();
    Built {
        doc,
        secrets: secrets_read,
    }
}

/// A capacity provider strategy as a manifest writes it (weights and bases of 0, ECS's
/// defaults, left out); `None` when a provider is not one of Fargate's, which the kinds
/// cannot say.
pub(crate) fn fargate_strategy(
    items: &[aws_sdk_ecs::types::CapacityProviderStrategyItem],
) -> Option<Value> {
    items
        .iter()
        .map(|c| {
            let provider = c.capacity_provider();
            ["FARGATE", "FARGATE_SPOT"].contains(&provider).then(|| {
                let mut item = serde_json::Map::new();
                item.insert("capacityProvider".into(), json!(provider));
                if c.weight() != 0 {
                    item.insert("weight".into(), json!(c.weight()));
                }
                if c.base() != 0 {
                    item.insert("base".into(), json!(c.base()));
                }
                Value::Object(item)
            })
        })
        .collect::<Option<Vec<_>>>()
        .map(Value::Array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{
        CapacityProviderStrategyItem, HealthCheck, LogConfiguration, LogDriver, PlacementStrategy,
        PlacementStrategyType, PortMapping, Secret, TransportProtocol, Volume,
    };

    fn aws() -> crate::aws::Aws {
        let config = crate::aws::offline_config();
        crate::aws::Aws::from_config(&config).unwrap()
    }

    fn container() -> aws_sdk_ecs::types::ContainerDefinition {
        aws_sdk_ecs::types::ContainerDefinition::builder()
            .name("app")
            .image("nginx:1.27")
            .essential(true)
            .port_mappings(
                PortMapping::builder()
                    .container_port(8080)
                    .host_port(8080)
                    .protocol(TransportProtocol::Tcp)
                    .build(),
            )
            .secrets(
                Secret::builder()
                    .name("TOKEN")
                    .value_from("arn:aws:ssm:eu-west-1:123456789012:parameter/prd/token")
                    .build()
                    .unwrap(),
            )
            .secrets(
                Secret::builder()
                    .name("OTHER")
                    .value_from("arn:aws:ssm:us-west-2:123456789012:parameter/prd/other")
                    .build()
                    .unwrap(),
            )
            .health_check(
                HealthCheck::builder()
                    .command("CMD-SHELL")
                    .command("curl -f 'http://localhost:8080/health' || exit 1")
                    .interval(10)
                    .build()
                    .unwrap(),
            )
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", "/ecs/app")
                    .options("awslogs-region", "eu-west-1")
                    .options("awslogs-stream-prefix", "ecs")
                    .options("mode", "non-blocking")
                    .build()
                    .unwrap(),
            )
            .build()
    }

    fn build_one(service: Service, td: TaskDefinition) -> Built {
        let aws = aws();
        let cx = Ctx {
            aws: &aws,
            account: "123456789012".into(),
            region: "eu-west-1".into(),
        };
        build(
            &cx,
            &Read { service, td },
            "prd",
            &BTreeMap::new(),
            &BTreeSet::new(),
            false,
            &mut Names::default(),
        )
    }

    #[test]
    fn what_a_manifest_cannot_express_is_named_and_the_rest_is_written() {
        let td = TaskDefinition::builder()
            .family("app")
            .cpu("256")
            .memory("512")
            .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
            .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
            .container_definitions(container())
            .volumes(Volume::builder().name("data").build())
            .build();
        let service = Service::builder()
            .service_name("app")
            .service_arn("arn:aws:ecs:eu-west-1:123456789012:service/prd/app")
            .desired_count(3)
            .capacity_provider_strategy(
                CapacityProviderStrategyItem::builder()
                    .capacity_provider("FARGATE_SPOT")
                    .weight(1)
                    .build()
                    .unwrap(),
            )
            .placement_strategy(
                PlacementStrategy::builder()
                    .r#type(PlacementStrategyType::Spread)
                    .build(),
            )
            .build();
        let built = build_one(service, td);
        let d = &built.doc;
        let cannot = d.cannot_carry.join("\n");
        // Fargate Spot is carried: written, not reported.
        assert_eq!(
            d.spec["capacityProviderStrategy"],
            json!([{"capacityProvider": "FARGATE_SPOT", "weight": 1}])
        );
        assert!(!cannot.contains("capacityProviderStrategy"), "{cannot}");
        for expected in [
            "taskDefinition.volumes",
            "placementStrategy",
            "taskDefinition.container.logConfiguration.options.mode",
        ] {
            assert!(cannot.contains(expected), "no {expected:?} in {cannot}");
        }
        let text = d.render();
        assert!(text.contains("mooring.dev/mode: observe"), "{text}");
        assert!(text.contains("#   - placementStrategy\n"), "{text}");
        // Written as a person would: defaults left out, references as names.
        let c = &d.spec["taskDefinition"]["container"];
        assert_eq!(
            c["healthCheck"],
            json!({"httpPath": "/health", "intervalSeconds": 10})
        );
        assert_eq!(c["logs"], json!({"group": "/ecs/app"}));
        assert_eq!(c["secrets"]["TOKEN"], json!({"ssmParameter": "/prd/token"}));
        assert_eq!(
            c["secrets"]["OTHER"],
            json!({"ssmParameter": "arn:aws:ssm:us-west-2:123456789012:parameter/prd/other"}),
            "another region's parameter keeps its ARN"
        );
        assert_eq!(d.spec["desiredCount"], json!(3));
        assert_eq!(d.spec["deploy"]["restartOnSecretChange"], json!(false));
        assert_eq!(built.secrets, vec!["/prd/token".to_string()]);
    }

    #[test]
    fn sidecars_are_written_and_only_what_they_cannot_express_is_reported() {
        use aws_sdk_ecs::types::{ContainerCondition, ContainerDependency, MountPoint};
        let mut app = container();
        app.secrets = None;
        app.log_configuration = None;
        app.depends_on = Some(vec![
            ContainerDependency::builder()
                .container_name("envoy")
                .condition(ContainerCondition::Start)
                .build()
                .unwrap(),
        ]);
        let sidecar = |name: &str| {
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name(name)
                .image("envoyproxy/envoy:v1.31")
                .essential(false)
                .environment(
                    aws_sdk_ecs::types::KeyValuePair::builder()
                        .name("LEVEL")
                        .value("info")
                        .build(),
                )
        };
        let td = |containers: Vec<aws_sdk_ecs::types::ContainerDefinition>| {
            TaskDefinition::builder()
                .family("app")
                .cpu("256")
                .memory("512")
                .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
                .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
                .set_container_definitions(Some(containers))
        };
        let service = || {
            Service::builder()
                .service_name("app")
                .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
                .network_configuration(
                    aws_sdk_ecs::types::NetworkConfiguration::builder()
                        .awsvpc_configuration(
                            aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                                .subnets("subnet-a")
                                .security_groups("sg-1")
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build()
        };
        let built = build_one(
            service(),
            td(vec![app.clone(), sidecar("envoy").build()]).build(),
        );
        assert!(
            built.doc.cannot_carry.is_empty(),
            "{:?}",
            built.doc.cannot_carry
        );
        let t = &built.doc.spec["taskDefinition"];
        assert_eq!(
            t["sidecars"],
            json!([{"name": "envoy", "image": "envoyproxy/envoy:v1.31", "essential": false, "command": null, "environment": {"LEVEL": "info"}, "secrets": {}, "dependsOn": []}])
        );
        assert_eq!(
            t["container"]["dependsOn"],
            json!([{"containerName": "envoy", "condition": "START"}])
        );
        assert!(!built.doc.render().contains("mooring.dev/mode"));

        // A sidecar with a mount point (and the task's volume): reported, per field.
        let mounted = sidecar("shipper")
            .mount_points(
                MountPoint::builder()
                    .source_volume("data")
                    .container_path("/data")
                    .build(),
            )
            .build();
        let built = build_one(
            service(),
            td(vec![app, mounted])
                .volumes(aws_sdk_ecs::types::Volume::builder().name("data").build())
                .build(),
        );
        assert_eq!(
            built.doc.cannot_carry,
            [
                "taskDefinition.volumes",
                "taskDefinition.sidecars.shipper.mountPoints"
            ]
        );
        assert!(built.doc.render().contains("mooring.dev/mode: observe"));
    }

    #[test]
    fn a_plain_fargate_service_carries_everything() {
        let mut c = container();
        c.log_configuration = None;
        let td = TaskDefinition::builder()
            .family("app")
            .cpu("0.25 vCPU")
            .memory("512")
            .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
            .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
            .container_definitions(c)
            .build();
        let service = Service::builder()
            .service_name("app")
            .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
            .desired_count(1)
            .network_configuration(
                aws_sdk_ecs::types::NetworkConfiguration::builder()
                    .awsvpc_configuration(
                        aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                            .subnets("subnet-b")
                            .subnets("subnet-a")
                            .security_groups("sg-1")
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .build();
        let built = build_one(service, td);
        assert!(
            built.doc.cannot_carry.is_empty(),
            "{:?}",
            built.doc.cannot_carry
        );
        assert_eq!(built.doc.spec["taskDefinition"]["cpu"], json!(256));
        assert_eq!(
            built.doc.spec["network"]["subnets"],
            json!({"ids": ["subnet-a", "subnet-b"]})
        );
        assert!(!built.doc.render().contains("mooring.dev/mode"));
    }
}
