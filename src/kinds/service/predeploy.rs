//! The pre-deploy task of a service (`spec.deploy.preDeploy`): a one-off ECS task, run from
//! the revision the service is about to move to, that must succeed before the service is
//! updated (database migrations).
//!
//! Once per revision, durably: a success is recorded as the tag
//! `mooring.dev/pre-deploy: succeeded` on the task definition revision, read fresh (never
//! from a cache) before every run, so neither a restarted daemon nor another replica runs it
//! again. Tasks are started with `startedBy: mooring/pre-deploy`: before starting one,
//! mooring looks for a task of that revision an earlier leader started (ListTasks) and
//! follows it instead (still running), or records its success (stopped with exit code 0)
//! when the leader died before writing the tag.
//!
//! A failure or a timeout fails the service with the category `rollout`, which the daemon
//! does not retry until the manifest changes. It is recorded durably too, as the tag
//! `mooring.dev/pre-deploy: failed-<digest>` on the revision, where the digest covers the
//! revision and the `preDeploy` settings: neither a restarted daemon nor another replica runs
//! it again for the same revision and settings, while a changed command or timeout (same
//! revision, new digest) runs it. [`Memory`] keeps the full message within this process.
//! To run the same task again by hand: `aws ecs untag-resource --resource-arn <revision>
//! --tag-keys mooring.dev/pre-deploy`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{
    ContainerOverride, DesiredStatus, KeyValuePair, LaunchType, LogDriver, Tag, Task,
    TaskDefinition, TaskDefinitionField, TaskOverride, TaskStopCode,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tracing::{info, warn};

use super::render::{self, NetworkDoc};
use super::spec::{NetworkSelector, ServiceSpec, fargate_memory_options};
use crate::aws::AwsError;
use crate::kinds::from::Value;
use crate::kinds::network::{self, Target};
use crate::manifest::Manifest;
use crate::manifest::error::Findings;
use crate::reconcile::diff::FieldChange;
use crate::reconcile::{Cx, ReconcileError};

/// The tag on a task definition revision whose pre-deploy task succeeded.
pub const TAG: &str = "mooring.dev/pre-deploy";
/// Its value once the task succeeded.
pub const SUCCEEDED: &str = "succeeded";
/// How its value starts once the task failed (then the run's [`key`]).
const FAILED_PREFIX: &str = "failed-";
/// `startedBy` of every pre-deploy task (ListTasks filters on it).
pub const STARTED_BY: &str = "mooring/pre-deploy";
/// How the reason mooring gives StopTask starts.
const STOP_REASON: &str = "mooring: pre-deploy";
/// The field plan shows the pre-deploy task under.
pub const FIELD: &str = "preDeploy";
/// `timeoutSeconds` when the manifest leaves it out.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 900;
/// The longest `timeoutSeconds` (a day).
const MAX_TIMEOUT_SECONDS: u32 = 86_400;

/// A command run as a one-off task before the service moves to a new revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PreDeploySpec {
    /// The command, run in the service's container instead of its own, e.g.
    /// `[npm, run, migration:run]`. The service is updated only when it exits 0.
    #[serde(default)]
    pub command: Vec<String>,
    /// Seconds to wait for the task to stop; then it is stopped and counts as failed
    /// (1-86400). Default 900.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    /// Task CPU units for this task instead of the task definition's.
    #[serde(default)]
    pub cpu: Option<u32>,
    /// Task memory in MiB for this task instead of the task definition's.
    #[serde(default)]
    pub memory: Option<u32>,
    /// Environment variables added to (or replacing those of) the container for this task.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, crate::kinds::from::ScalarValue>")]
    pub environment: BTreeMap<String, Value>,
    /// Where this task runs instead of the service's network (each field optional).
    #[serde(default)]
    pub network: Option<PreDeployNetworkSpec>,
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_SECONDS
}

/// Network overrides of the pre-deploy task; unset fields keep the service's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PreDeployNetworkSpec {
    /// Subnets for the task (e.g. ones that can reach the database).
    #[serde(default)]
    pub subnets: Option<NetworkSelector>,
    /// Security groups for the task.
    #[serde(default)]
    pub security_groups: Option<NetworkSelector>,
    /// Give the task a public IP.
    #[serde(default)]
    pub assign_public_ip: Option<bool>,
}

/// Checks `spec.deploy.preDeploy`.
pub fn check(spec: &ServiceSpec, f: &mut Findings<'_>) {
    let Some(p) = &spec.deploy.pre_deploy else {
        return;
    };
    let base = "/spec/deploy/preDeploy";
    if p.command.is_empty() || p.command.iter().all(|a| a.trim().is_empty()) {
        f.at(
            &format!("{base}/command"),
            "must name a command, e.g. `[npm, run, migration:run]`",
        );
    }
    if !(1..=MAX_TIMEOUT_SECONDS).contains(&p.timeout_seconds) {
        f.at(
            &format!("{base}/timeoutSeconds"),
            format!("{} is outside 1-{MAX_TIMEOUT_SECONDS}", p.timeout_seconds),
        );
    }
    if p.cpu.is_some() || p.memory.is_some() {
        let cpu = p.cpu.unwrap_or(spec.task_definition.cpu);
        let memory = p.memory.unwrap_or(spec.task_definition.memory);
        match fargate_memory_options(cpu) {
            None => f.at(
                &format!("{base}/cpu"),
                format!("{cpu} is not a Fargate CPU size (256, 512, 1024, 2048, 4096, 8192, 16384)"),
            ),
            Some(options) if !options.contains(&memory) => f.at(
                &format!(
                    "{base}/{}",
                    if p.memory.is_some() { "memory" } else { "cpu" }
                ),
                format!("Fargate does not run cpu {cpu} with memory {memory}"),
            ),
            Some(_) => {}
        }
    }
    for (name, value) in &p.environment {
        let pointer = format!(
            "{base}/environment/{}",
            crate::manifest::yaml::escape_segment(name)
        );
        if !is_env_name(name) {
            f.at(
                &pointer,
                format!("`{name}` is not a valid environment variable name"),
            );
        }
        if value.from().is_some() {
            f.at(
                &pointer,
                "`from:` is not supported here; write the value, or set it in the container's `environment`",
            );
        }
    }
    if let Some(n) = &p.network {
        if let Some(s) = &n.subnets {
            s.check(&format!("{base}/network/subnets"), false, f);
        }
        if let Some(s) = &n.security_groups {
            s.check(&format!("{base}/network/securityGroups"), true, f);
        }
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The command as plan shows it.
fn shown_command(p: &PreDeploySpec) -> String {
    p.command.join(" ")
}

/// What plan says about the pre-deploy task when the task definition changes: one
/// [`FIELD`] entry, shown by `plan` as `preDeploy: will run "…" before …`. `running` is the
/// revision the service runs now (its ARN).
///
/// Plan names the revision the service runs, not the number it will move to: that number
/// is only known at apply. Apply reuses a matching revision among the family's five newest
/// (an interrupted apply, a revert) before it registers one, and the family's latest + 1
/// would be a guess that another registration (CI, a second service of the family) can
/// take first; finding even that guess would cost a ListTaskDefinitions on every pass, which
/// a steady state must not pay. The apply's deploy record names the exact revision.
pub fn plan_note(
    spec: &ServiceSpec,
    creating: bool,
    running: Option<&str>,
    changes: &[FieldChange],
) -> Option<FieldChange> {
    let p = spec.deploy.pre_deploy.as_ref()?;
    let new_revision = creating
        || changes
            .iter()
            .any(|c| c.field == "taskDefinition" || c.field.starts_with("taskDefinition."));
    if !new_revision {
        return None;
    }
    let when = if creating {
        "before the service is created".to_string()
    } else {
        let now = running
            .and_then(|arn| arn.rsplit('/').next())
            .map(|rev| format!(" (now {rev})"))
            .unwrap_or_default();
        format!("before rolling to the new revision{now}")
    };
    Some(FieldChange {
        field: FIELD.to_string(),
        live: Json::Null,
        desired: Json::String(format!("will run \"{}\" {when}", shown_command(p))),
        note: None,
    })
}

/// The plan line of a [`plan_note`] or [`super::verify::plan_note`] entry, or `None` for
/// any other change.
pub fn shown_note(c: &FieldChange) -> Option<String> {
    match (&c.live, &c.desired) {
        (Json::Null, Json::String(note)) if c.field == FIELD || c.field == super::verify::FIELD => {
            Some(format!("{}: {note}", c.field))
        }
        _ => None,
    }
}

/// Failed pre-deploy runs this process remembers, by revision and settings.
#[derive(Default)]
pub struct Memory {
    failed: Mutex<HashMap<String, String>>,
}

impl Memory {
    fn failed(&self, key: &str) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn remember(&self, key: &str, message: &str) {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), message.to_string());
    }
}

/// The key of a run: a digest of the revision and everything the manifest says about the
/// task, stable across processes and versions (it goes into the failed tag).
fn key(td_arn: &str, p: &PreDeploySpec) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(td_arn.as_bytes());
    h.update([0]);
    h.update(serde_json::to_string(p).unwrap_or_default().as_bytes());
    h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The task ID, the last part of its ARN.
fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Where the output of `container` in task `id` went: its awslogs group and stream.
pub fn log_stream(td: &TaskDefinition, container: &str, id: &str) -> String {
    let Some(lc) = td
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(container))
        .and_then(|c| c.log_configuration())
        .filter(|lc| lc.log_driver() == &LogDriver::Awslogs)
    else {
        return format!("container `{container}` has no awslogs configuration, its output was not kept");
    };
    let options = lc.options();
    let group = options.and_then(|o| o.get("awslogs-group")).map_or("?", String::as_str);
    match options.and_then(|o| o.get("awslogs-stream-prefix")) {
        Some(prefix) => format!("logs: group {group}, stream {prefix}/{container}/{id}"),
        None => format!("logs: group {group}, stream of task {id}"),
    }
}

/// Why a stopped task failed, or `None` when every essential container exited 0.
pub fn failure(td: &TaskDefinition, task: &Task, main: &str) -> Option<String> {
    let id = task_id(task.task_arn().unwrap_or_default()).to_string();
    let essential = |name: &str| {
        td.container_definitions()
            .iter()
            .find(|c| c.name() == Some(name))
            .is_none_or(|c| c.essential().unwrap_or(true))
    };
    let mut bad = Vec::new();
    for c in task.containers() {
        let name = c.name().unwrap_or_default();
        if !essential(name) || c.exit_code() == Some(0) {
            continue;
        }
        let what = match c.exit_code() {
            Some(code) => format!("container `{name}` exited with code {code}"),
            None => format!("container `{name}` has no exit code"),
        };
        let reason = c.reason().map(|r| format!(" ({r})")).unwrap_or_default();
        bad.push((name.to_string(), format!("{what}{reason}")));
    }
    if task.containers().is_empty() {
        bad.push((main.to_string(), "no container ran".to_string()));
    }
    if bad.is_empty() {
        return None;
    }
    let logs = log_stream(td, &bad[0].0, &id);
    Some(format!(
        "pre-deploy task {id} failed: {}; stopped reason: {}; {logs}",
        bad.into_iter().map(|(_, w)| w).collect::<Vec<_>>().join(", "),
        task.stopped_reason().unwrap_or("none given"),
    ))
}

/// True when someone stopped the task (StopTask, e.g. after a timeout): whatever its
/// exit codes, it did not finish.
fn stopped_by_someone(t: &Task) -> bool {
    t.stop_code() == Some(&TaskStopCode::UserInitiated)
        || t.stopped_reason().is_some_and(|r| r.starts_with(STOP_REASON))
}

/// True when the revision carries the success tag. Read from ECS every time.
async fn recorded(cx: &Cx<'_>, td_arn: &str) -> Result<Option<String>, AwsError> {
    let out = cx
        .aws()
        .ecs
        .describe_task_definition()
        .task_definition(td_arn)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ecs:DescribeTaskDefinition", e))?;
    Ok(out
        .tags()
        .iter()
        .find(|t| t.key() == Some(TAG))
        .and_then(|t| t.value())
        .map(str::to_string))
}

/// Records the outcome on the revision: [`SUCCEEDED`], or failed with the run's key.
async fn record(cx: &Cx<'_>, td_arn: &str, value: &str) -> Result<(), AwsError> {
    cx.aws()
        .ecs
        .tag_resource()
        .resource_arn(td_arn)
        .tags(Tag::builder().key(TAG).value(value).build())
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ecs:TagResource", e))?;
    info!(task_definition = td_arn, outcome = value, "pre-deploy outcome recorded");
    Ok(())
}

/// DescribeTasks takes at most 100 tasks per call.
const DESCRIBE_TASKS_BATCH: usize = 100;

async fn describe_tasks(cx: &Cx<'_>, cluster: &str, arns: &[String]) -> Result<Vec<Task>, AwsError> {
    let mut out = Vec::new();
    for chunk in arns.chunks(DESCRIBE_TASKS_BATCH) {
        let found = cx
            .aws()
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:DescribeTasks", e))?;
        out.extend(found.tasks.unwrap_or_default());
    }
    Ok(out)
}

/// Pre-deploy tasks of `td_arn` that an earlier leader started and that ECS still shows
/// (stopped ones for about an hour): running ones first. ListTasks takes `startedBy` only
/// as its sole filter, and lists running tasks unless asked otherwise: running ones by
/// `startedBy`, stopped ones by family, each checked after DescribeTasks.
async fn earlier(
    cx: &Cx<'_>,
    cluster: &str,
    family: &str,
    td_arn: &str,
) -> Result<Vec<Task>, AwsError> {
    let list = |started_by: Option<&str>, family: Option<&str>, status: Option<DesiredStatus>| {
        cx.aws()
            .ecs
            .list_tasks()
            .cluster(cluster)
            .set_started_by(started_by.map(str::to_string))
            .set_family(family.map(str::to_string))
            .set_desired_status(status)
            .into_paginator()
            .items()
            .send()
            .try_collect()
    };
    let mut arns: Vec<String> = list(Some(STARTED_BY), None, None)
        .await
        .map_err(|e| AwsError::from_sdk("ecs:ListTasks", e))?;
    arns.extend(
        list(None, Some(family), Some(DesiredStatus::Stopped))
            .await
            .map_err(|e| AwsError::from_sdk("ecs:ListTasks", e))?,
    );
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let mut tasks: Vec<Task> = describe_tasks(cx, cluster, &arns)
        .await?
        .into_iter()
        .filter(|t| t.task_definition_arn() == Some(td_arn) && t.started_by() == Some(STARTED_BY))
        .collect();
    tasks.sort_by_key(|t| t.last_status() == Some("STOPPED"));
    Ok(tasks)
}

/// The network of the task: the service's, with the manifest's overrides.
async fn network_of(
    cx: &Cx<'_>,
    p: &PreDeploySpec,
    service: &NetworkDoc,
) -> Result<NetworkDoc, ReconcileError> {
    let mut net = service.clone();
    let Some(o) = &p.network else {
        return Ok(net);
    };
    if let Some(s) = &o.subnets {
        net.subnets = network::resolve(cx, Target::Subnets, s).await?;
    }
    if let Some(s) = &o.security_groups {
        net.security_groups = network::resolve(cx, Target::SecurityGroups, s).await?;
    }
    if let Some(public) = o.assign_public_ip {
        net.assign_public_ip = if public { "ENABLED" } else { "DISABLED" }.to_string();
    }
    Ok(net)
}

/// Starts the task; returns its ARN.
async fn run(
    cx: &Cx<'_>,
    m: &Manifest<ServiceSpec>,
    p: &PreDeploySpec,
    cluster: &str,
    network: &NetworkDoc,
    td_arn: &str,
) -> Result<String, ReconcileError> {
    let mut container = ContainerOverride::builder()
        .name(m.spec.container_name())
        .set_command(Some(p.command.clone()));
    for (k, v) in &p.environment {
        container = container.environment(KeyValuePair::builder().name(k).value(v.as_str()).build());
    }
    let overrides = TaskOverride::builder()
        .container_overrides(container.build())
        .set_cpu(p.cpu.map(|c| c.to_string()))
        .set_memory(p.memory.map(|m| m.to_string()))
        .build();
    let out = cx
        .aws()
        .ecs
        .run_task()
        .cluster(cluster)
        .task_definition(td_arn)
        // On-demand Fargate even for a service on FARGATE_SPOT: a migration stopped
        // halfway by a Spot reclaim is worse than its cost.
        .launch_type(LaunchType::Fargate)
        .count(1)
        .started_by(STARTED_BY)
        .set_network_configuration(render::network_configuration(network))
        .overrides(overrides)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ecs:RunTask", e))?;
    match out.tasks().first().and_then(|t| t.task_arn()) {
        Some(arn) => {
            info!(task = arn, task_definition = td_arn, command = %shown_command(p), "started pre-deploy task");
            Ok(arn.to_string())
        }
        None => {
            let why: Vec<String> = out
                .failures()
                .iter()
                .map(|f| {
                    format!(
                        "{} {}",
                        f.reason().unwrap_or("unknown reason"),
                        f.detail().unwrap_or_default()
                    )
                    .trim()
                    .to_string()
                })
                .collect();
            Err(ReconcileError::NotConverged(format!(
                "RunTask started no pre-deploy task for {td_arn}: {}",
                if why.is_empty() { "no reason given".to_string() } else { why.join("; ") }
            )))
        }
    }
}

/// Polls the task until it stops or `limit` passes; `None` on timeout.
async fn wait(
    cx: &Cx<'_>,
    cluster: &str,
    task_arn: &str,
    limit: Duration,
) -> Result<Option<Task>, ReconcileError> {
    let started = Instant::now();
    // Short tasks are seen to stop soon: 1 s, 2 s, 4 s … up to the rollout poll interval.
    let mut pause = Duration::from_secs(1);
    loop {
        let task = describe_tasks(cx, cluster, &[task_arn.to_string()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                ReconcileError::Rollout(format!(
                    "pre-deploy task {} disappeared before it stopped",
                    task_id(task_arn)
                ))
            })?;
        if task.last_status() == Some("STOPPED") {
            return Ok(Some(task));
        }
        let elapsed = started.elapsed();
        if elapsed >= limit {
            return Ok(None);
        }
        tokio::time::sleep(pause.min(cx.ctx.rollout_poll).min(limit - elapsed)).await;
        pause = pause.saturating_mul(2);
    }
}

/// Runs the service's pre-deploy task for `td_arn`, the revision it is about to move to,
/// unless it succeeded before. `Ok` means the service may be updated.
pub(super) async fn before_rollout(
    cx: &Cx<'_>,
    m: &Manifest<ServiceSpec>,
    memory: &Memory,
    cluster: &str,
    service_network: &NetworkDoc,
    td_arn: &str,
    td: &TaskDefinition,
) -> Result<(), ReconcileError> {
    let Some(p) = &m.spec.deploy.pre_deploy else {
        return Ok(());
    };
    let key = key(td_arn, p);
    if let Some(message) = memory.failed(&key) {
        return Err(ReconcileError::Rollout(format!(
            "{message}; it is not run again for {td_arn} until the manifest changes"
        )));
    }
    let failed = format!("{FAILED_PREFIX}{key}");
    match recorded(cx, td_arn).await?.as_deref() {
        Some(SUCCEEDED) => return Ok(()),
        Some(v) if v == failed => {
            return Err(ReconcileError::Rollout(format!(
                "the pre-deploy task failed before for {td_arn} with these settings (recorded as the tag {TAG}={failed}); it is not run again until the manifest changes, or until the tag is removed: aws ecs untag-resource --resource-arn {td_arn} --tag-keys {TAG}"
            )));
        }
        _ => {}
    }
    let family = td
        .family()
        .map_or_else(|| m.spec.family(&m.metadata).to_string(), str::to_string);
    let earlier = earlier(cx, cluster, &family, td_arn).await?;
    let main = m.spec.container_name();
    let task_arn = match earlier.first() {
        Some(t) if t.last_status() != Some("STOPPED") => {
            let arn = t.task_arn().unwrap_or_default().to_string();
            info!(task = %arn, "following a pre-deploy task started earlier");
            arn
        }
        _ => {
            if earlier
                .iter()
                .any(|t| !stopped_by_someone(t) && failure(td, t, main).is_none())
            {
                // It succeeded, and its leader died before recording it.
                record(cx, td_arn, SUCCEEDED).await?;
                return Ok(());
            }
            let network = network_of(cx, p, service_network).await?;
            run(cx, m, p, cluster, &network, td_arn).await?
        }
    };
    let id = task_id(&task_arn).to_string();
    let limit = Duration::from_secs(u64::from(p.timeout_seconds));
    let message = match wait(cx, cluster, &task_arn, limit).await? {
        Some(task) => match failure(td, &task, main) {
            None => {
                info!(task = %id, task_definition = td_arn, "pre-deploy task succeeded");
                record(cx, td_arn, SUCCEEDED).await?;
                return Ok(());
            }
            Some(message) => message,
        },
        None => {
            let reason = format!("{STOP_REASON} timed out after {}s", p.timeout_seconds);
            if let Err(e) = cx
                .aws()
                .ecs
                .stop_task()
                .cluster(cluster)
                .task(&task_arn)
                .reason(&reason)
                .send()
                .await
            {
                warn!(task = %id, error = %AwsError::from_sdk("ecs:StopTask", e), "failed to stop the pre-deploy task");
            }
            format!(
                "pre-deploy task {id} did not stop within {}s and was stopped; {}",
                p.timeout_seconds,
                log_stream(td, main, &id)
            )
        }
    };
    memory.remember(&key, &message);
    // Best effort: the deploy has failed either way, and this process remembers it.
    if let Err(e) = record(cx, td_arn, &failed).await {
        warn!(task_definition = td_arn, error = %e, "cannot record the failed pre-deploy on the revision");
    }
    Err(ReconcileError::Rollout(format!(
        "{message}; the service stays on its revision and {td_arn} is not tried again until the manifest changes"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{Container, ContainerDefinition, LogConfiguration};

    fn td(essential_sidecar: bool, logs: bool) -> TaskDefinition {
        let mut app = ContainerDefinition::builder().name("app").image("api:2");
        if logs {
            app = app.log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", "/ecs/api")
                    .options("awslogs-stream-prefix", "ecs")
                    .build()
                    .unwrap(),
            );
        }
        TaskDefinition::builder()
            .container_definitions(app.build())
            .container_definitions(
                ContainerDefinition::builder()
                    .name("sidecar")
                    .essential(essential_sidecar)
                    .build(),
            )
            .build()
    }

    fn stopped(codes: &[(&str, Option<i32>)]) -> Task {
        let mut t = Task::builder()
            .task_arn("arn:aws:ecs:eu-west-1:1:task/prd/abc123")
            .last_status("STOPPED")
            .stopped_reason("Essential container in task exited");
        for (name, code) in codes {
            t = t.containers(Container::builder().name(*name).set_exit_code(*code).build());
        }
        t.build()
    }

    #[test]
    fn success_is_every_essential_container_exiting_0() {
        let td = td(false, true);
        assert_eq!(failure(&td, &stopped(&[("app", Some(0)), ("sidecar", Some(137))]), "app"), None);
        let msg = failure(&td, &stopped(&[("app", Some(1)), ("sidecar", Some(0))]), "app").unwrap();
        assert_eq!(
            msg,
            "pre-deploy task abc123 failed: container `app` exited with code 1; stopped reason: Essential container in task exited; logs: group /ecs/api, stream ecs/app/abc123"
        );
        let td = td_with_essential_sidecar();
        let msg = failure(&td, &stopped(&[("app", Some(0)), ("sidecar", None)]), "app").unwrap();
        assert!(msg.contains("container `sidecar` has no exit code"), "{msg}");
        assert!(msg.contains("has no awslogs configuration"), "{msg}");
        assert!(failure(&td, &stopped(&[]), "app").unwrap().contains("no container ran"));
    }

    fn td_with_essential_sidecar() -> TaskDefinition {
        td(true, false)
    }

    #[test]
    fn plan_names_the_command_only_when_the_task_definition_changes() {
        let spec: ServiceSpec = serde_json::from_value(serde_json::json!({
            "cluster": "prd",
            "network": {"subnets": {"ids": ["subnet-1"]}, "securityGroups": {"ids": ["sg-1"]}},
            "taskDefinition": {"cpu": 256, "memory": 512, "container": {"image": "api:2"}},
            "deploy": {"preDeploy": {"command": ["npm", "run", "migration:run"]}}
        }))
        .unwrap();
        assert_eq!(spec.deploy.pre_deploy.as_ref().unwrap().timeout_seconds, 900);
        let change = |field: &str| FieldChange {
            field: field.into(),
            live: Json::Null,
            desired: Json::Null,
            note: None,
        };
        assert_eq!(plan_note(&spec, false, None, &[change("desiredCount")]), None);
        let image = [change("taskDefinition.container.image")];
        let note = plan_note(&spec, false, None, &image).unwrap();
        assert_eq!(
            shown_note(&note).unwrap(),
            "preDeploy: will run \"npm run migration:run\" before rolling to the new revision"
        );
        let note = plan_note(
            &spec,
            false,
            Some("arn:aws:ecs:eu-west-1:1:task-definition/api:7"),
            &image,
        )
        .unwrap();
        assert_eq!(
            shown_note(&note).unwrap(),
            "preDeploy: will run \"npm run migration:run\" before rolling to the new revision (now api:7)"
        );
        let note = plan_note(&spec, true, None, &[]).unwrap();
        assert!(shown_note(&note).unwrap().ends_with("before the service is created"));
        assert_eq!(shown_note(&change("preDeploy")), None);
    }

    const SERVICE: &str = "apiVersion: mooring.dev/v1alpha1
kind: Cluster
metadata: {name: prd}
spec: {}
---
apiVersion: mooring.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  cluster: prd
  network:
    subnets: {ids: [subnet-a]}
    securityGroups: {ids: [sg-1]}
  taskDefinition:
    cpu: 256
    memory: 512
    container: {image: 'api:1'}
  deploy:
    preDeploy:
PRE";

    fn errors(pre: &str) -> Vec<String> {
        match crate::manifest::load::load_with_stack(&[(
            "app.yaml".into(),
            SERVICE.replace("PRE", pre),
        )]) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn the_manifest_is_checked_with_positions() {
        assert_eq!(
            errors("      command: [npm, run, migration:run]\n      timeoutSeconds: 600\n      cpu: 512\n      memory: 1024\n      environment: {LOG_LEVEL: debug}\n      network: {assignPublicIp: true}\n"),
            Vec::<String>::new()
        );
        let errs = errors("      command: []\n      timeoutSeconds: 0\n      memory: 4096\n      environment: {1X: a}\n");
        let expect = [
            "app.yaml:20:7: spec.deploy.preDeploy.command: must name a command",
            "app.yaml:21:7: spec.deploy.preDeploy.timeoutSeconds: 0 is outside 1-86400",
            "app.yaml:22:7: spec.deploy.preDeploy.memory: Fargate does not run cpu 256 with memory 4096",
            "app.yaml:23:21: spec.deploy.preDeploy.environment.1X: `1X` is not a valid environment variable name",
        ];
        for e in expect {
            assert!(errs.iter().any(|x| x.starts_with(e)), "missing {e} in {errs:#?}");
        }
        let errs = errors("      timeoutSeconds: 60\n");
        assert!(
            errs.iter().any(|e| e
                .starts_with("app.yaml:19:5: spec.deploy.preDeploy.command: must name a command")),
            "{errs:#?}"
        );
    }
}
