//! `mooring import`: manifests, as a person would write them, for what runs today. Three
//! ways pick the resources, and all of them go down one path: `--cluster C [--service S…]`
//! picks a cluster's services; `--cloudformation-stack NAME [--recursive]` the ECS
//! services, log groups, ECR repositories, SSM parameters, security groups, ElastiCache
//! replication groups, CloudWatch alarms and EventBridge rules of a stack (and of its nested
//! stacks); `--tag key=value` those the Resource Groups Tagging API lists with the tag
//! (`pick`, `cloudformation`, `tagging`). What a selection picked but mooring cannot carry
//! is reported (stderr and a comment in `stack.yaml`).
//!
//! From each ECS service picked it follows the cluster, the task definition the
//! service runs (its container and the others as `sidecars`), its network (subnet IDs and
//! its security groups, as the load balancers' too: `security_group`), the target groups it
//! registers with and the load balancer listeners that forward to them, its scalable target
//! and target-tracking policies, its log group, and the SSM parameters its secrets read. Only reads: import
//! never writes to AWS and never reads a secret's value (SecureString parameters become
//! `required` entries; only `String` parameters' values are read, to manage them).
//!
//! Every resource is written with `mooring.dev/adopt: "true"`, its live AWS name kept
//! explicitly, a comment naming the ARN it came from, and the defaults AWS filled left out,
//! so that `plan` on the output shows only the adoption (ownership tags). References are
//! manifest names where the resource is imported (a security group selector only when all
//! of its groups are; a rule reference closing a cycle stays an ID). What the manifest
//! format cannot express is listed per resource and field (stderr and a comment in the
//! file), and such a resource gets `mooring.dev/mode: observe`.
//!
//! Beside the services: replication groups with their cache subnet groups (`elasticache`),
//! alarms picked or naming an imported service or target group in their dimensions, in
//! the short forms where they can (`alarm`), and scheduled rules with their API
//! destinations and connections, references rewritten to manifest names and no API key
//! read or written (`eventbridge`).
//!
//! Ownership: once the stack is known (`--stack`, else the clusters' tag, else derived),
//! a resource whose `mooring.dev/stack` tag names another stack, or that carries a
//! `mooring.dev/environment` tag (import writes a plain stack), is left out and reported
//! (`Names::refuse`): the `mooring.dev/adopt` every manifest carries would take it from its
//! owner. What names it keeps the AWS name or ARN; a refused cluster takes its services.
//!
//! One file per service (`<service>.yaml`: the service with its task definition, its
//! scaling, its log group and its target groups), `cluster.yaml`, `stack.yaml`,
//! `parameters.yaml`, `load-balancers.yaml` and `security-groups.yaml`, and for resources
//! picked on their own `log-groups.yaml`, `repositories.yaml`, `replication-groups.yaml`,
//! `alarms.yaml` and `schedules.yaml`. Output is deterministic: importing twice gives the
//! same bytes.

mod alarm;
mod cloudformation;
mod cluster;
mod elasticache;
mod eventbridge;
mod load_balancer;
mod log_group;
mod parameter_set;
mod pick;
mod repository;
mod scalable_target;
mod security_group;
mod service;
mod tagging;
mod target_group;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::aws::Aws;
use crate::manifest::annotations::{ADOPT, MODE};
pub use pick::parse_tag;

/// How the resources to import are picked.
#[derive(Debug, Clone)]
pub enum Selection {
    /// An ECS cluster's services.
    Cluster {
        /// The ECS cluster (name or ARN).
        cluster: String,
        /// Only these services (names); all of the cluster's when empty.
        services: Vec<String>,
    },
    /// A CloudFormation stack's resources.
    CloudFormationStack {
        /// The stack's name or ID.
        name: String,
        /// Nested stacks' resources too.
        recursive: bool,
    },
    /// The resources carrying a tag.
    Tag {
        /// The tag's key.
        key: String,
        /// The tag's value.
        value: String,
    },
}

/// What to import and where to.
#[derive(Debug, Clone)]
pub struct Options {
    /// What to import.
    pub selection: Selection,
    /// Where the manifests go.
    pub out: PathBuf,
    /// The stack's name; by default the clusters' `mooring.dev/stack` tag, else derived from
    /// the CloudFormation stack's name, the tag's value or the cluster's name.
    pub stack: Option<String>,
    /// Print what would be written; write nothing.
    pub dry_run: bool,
}

/// One imported resource: a manifest document and what it could not carry.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The manifest kind.
    pub kind: &'static str,
    /// `metadata.name`.
    pub name: String,
    /// The ARN (or ID) it was read from.
    pub source: String,
    /// `field: what` for each setting the manifest format cannot express.
    pub cannot_carry: Vec<String>,
    /// Remarks that need no observe mode (what apply will change, what is left alone).
    pub notes: Vec<String>,
    /// The spec, as it is written.
    pub spec: Value,
}

impl Imported {
    fn new(kind: &'static str, name: String, source: String, spec: Value) -> Imported {
        Imported {
            kind,
            name,
            source,
            cannot_carry: Vec::new(),
            notes: Vec::new(),
            spec,
        }
    }

    /// The document's text, with its comments.
    pub fn render(&self) -> String {
        let mut out = format!("{MARK} from {}\n", self.source);
        if !self.cannot_carry.is_empty() {
            out.push_str(
                "# mooring.dev/mode: observe — the manifest format cannot carry these live settings, so\n# the daemon only watches this resource (`mooring apply` by hand ignores the annotation\n# and would remove them):\n",
            );
            for c in &self.cannot_carry {
                out.push_str(&format!("#   - {c}\n"));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("# Note: {n}\n"));
        }
        let mut annotations = Map::new();
        annotations.insert(ADOPT.into(), json!("true"));
        if !self.cannot_carry.is_empty() {
            annotations.insert(MODE.into(), json!("observe"));
        }
        let mut head = Map::new();
        head.insert("apiVersion".into(), json!(crate::manifest::API_VERSION));
        head.insert("kind".into(), json!(self.kind));
        head.insert(
            "metadata".into(),
            json!({"name": self.name, "annotations": annotations}),
        );
        yaml::block(&Value::Object(head), 0, &mut out);
        let spec = clean(self.spec.clone());
        match &spec {
            Value::Object(o) if !o.is_empty() => {
                out.push_str("spec:\n");
                yaml::block(&spec, 2, &mut out);
            }
            _ => out.push_str("spec: {}\n"),
        }
        out
    }
}

/// Drops nulls and empty lists and maps (what the manifest leaves out), recursively.
pub(crate) fn clean(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, clean(v)))
                .filter(|(_, v)| match v {
                    Value::Null => false,
                    Value::Array(a) => !a.is_empty(),
                    Value::Object(o) => !o.is_empty(),
                    _ => true,
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(clean).collect()),
        other => other,
    }
}

/// A file of the output: its name and its documents.
#[derive(Debug, Clone)]
pub struct File {
    /// The file name, relative to the output directory.
    pub name: String,
    /// Its documents, in order.
    pub docs: Vec<Imported>,
    /// A stack document goes first in `stack.yaml`.
    pub stack: Option<String>,
    /// Comment lines before the documents (in `stack.yaml`: what was left out).
    pub comments: Vec<String>,
}

impl File {
    /// The file's text.
    pub fn render(&self) -> String {
        let mut parts = Vec::new();
        let head: String = self.comments.iter().map(|c| format!("# {c}\n")).collect();
        if let Some(stack) = &self.stack {
            parts.push(format!(
                "{head}# Imported by `mooring import`: the stack these manifests describe. Its name goes\n# into the ownership tags mooring adds to every resource.\napiVersion: {}\nkind: Stack\nmetadata:\n  name: {stack}\n",
                crate::manifest::API_VERSION
            ));
        }
        parts.extend(self.docs.iter().map(Imported::render));
        parts.join("---\n")
    }
}

/// Manifest names already given, per kind, so two resources never share one; and the
/// stack the manifests are for, against which live ownership tags are checked.
#[derive(Default)]
pub(crate) struct Names {
    used: BTreeMap<&'static str, BTreeSet<String>>,
    /// The stack imported into, once known (`--stack`, else derived).
    stack: Option<String>,
    /// Resources left out because another stack or environment owns them: `what` → why.
    refused: BTreeMap<String, String>,
}

impl Names {
    /// A manifest name for the AWS name `aws`: lower-case, `[a-z0-9_-]`, unique per kind.
    pub(crate) fn take(&mut self, kind: &'static str, aws: &str) -> String {
        self.take_owned(kind, aws, std::iter::empty())
    }

    /// Sets the stack the manifests are written for.
    pub(crate) fn for_stack(&mut self, stack: &str) {
        self.stack = Some(stack.to_string());
    }

    /// Why a resource with these live tags must not be imported into this stack: its
    /// `mooring.dev/stack` tag names another stack, or its `mooring.dev/environment` tag an
    /// environment (import writes a plain stack, which has none). `None` for a resource
    /// mooring did not make, one tagged before stacks, and this stack's own. The imported
    /// manifests say `mooring.dev/adopt: "true"`, so one of them naming such a resource would
    /// take it over from its owner on the first apply: it is left out instead.
    pub(crate) fn foreign<'a>(
        &self,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<String> {
        let stack = self.stack.as_deref()?;
        let live = crate::kinds::ownership::Ownership::from_tags(tags);
        let owner = crate::kinds::ownership::Owner {
            stack,
            environment: None,
        };
        let theirs = live.stack.as_deref()?;
        if owner.claims(&live) {
            return None;
        }
        let what = live
            .resource
            .as_deref()
            .map_or(String::new(), |r| format!("{r} of "));
        Some(match live.environment.as_deref() {
            Some(env) => format!(
                "mooring manages it as {what}the environment `{env}` of the stack `{theirs}` (tag {}); import writes a plain stack, so adopting it here would take it from that environment",
                crate::manifest::annotations::TAG_ENVIRONMENT
            ),
            None => format!(
                "mooring manages it as {what}the stack `{theirs}` (tag {}), not `{stack}`; adopting it here would take it from that stack (import into it with `--stack {theirs}`)",
                crate::manifest::TAG_STACK
            ),
        })
    }

    /// True, recording why, when a resource (`kind` and its ARN or name, `what`) belongs to
    /// another stack or environment (see [`Names::foreign`]) and is left out.
    pub(crate) fn refuse<'a>(
        &mut self,
        kind: &str,
        what: &str,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> bool {
        match self.foreign(tags) {
            Some(why) => {
                self.refused.insert(format!("{kind} {what}"), why);
                true
            }
            None => false,
        }
    }

    /// Whether `kind` `what` was left out by [`Names::refuse`].
    pub(crate) fn refused(&self, kind: &str, what: &str) -> bool {
        self.refused.contains_key(&format!("{kind} {what}"))
    }

    /// As [`Names::take`], but a resource mooring made for this stack (its
    /// `mooring.dev/resource` tag names a manifest of this kind) keeps its manifest's name,
    /// so the ownership tags stay. Another stack's or environment's tag is not followed.
    pub(crate) fn take_owned<'a>(
        &mut self,
        kind: &'static str,
        aws: &str,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> String {
        let tags: Vec<(&str, &str)> = tags.into_iter().collect();
        let owned = tags
            .iter()
            .find(|(k, _)| *k == crate::manifest::TAG_RESOURCE)
            .filter(|_| self.foreign(tags.iter().copied()).is_none())
            .and_then(|(_, v)| v.strip_prefix(kind)?.strip_prefix('/').map(str::to_string))
            .filter(|n| {
                n.len() <= 200
                    && n.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        let base = owned.unwrap_or_else(|| manifest_name(aws));
        let used = self.used.entry(kind).or_default();
        let mut name = base.clone();
        let mut n = 2;
        while used.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        used.insert(name.clone());
        name
    }
}

/// Import's error for a failed read of `what` by the AWS operation `op`:
/// `failed to read <what>: <the classified AWS error>`.
pub(crate) fn read_failed<E, R>(
    what: impl std::fmt::Display,
    op: &'static str,
    err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    format!(
        "failed to read {what}: {}",
        crate::aws::AwsError::from_sdk(op, err)
    )
}

/// A readable manifest name from an AWS name (which stays explicit in the spec).
pub fn manifest_name(aws: &str) -> String {
    let mut s: String = aws
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches(|c: char| c == '-' || c == '_');
    let s: String = s.chars().take(200).collect();
    if s.is_empty() { "imported".into() } else { s }
}

/// A valid stack name (1-63 lower-case letters, digits and inner hyphens) from any text.
pub fn stack_name(from: &str) -> String {
    let s = manifest_name(from).replace('_', "-");
    let s: String = s.chars().take(63).collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "imported".into() } else { s }
}

/// The tags a manifest may declare: AWS's (`aws:`) and mooring's own are left out.
pub(crate) fn user_tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let mut out: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in tags {
        if !k.to_ascii_lowercase().starts_with("aws:") && !k.starts_with("mooring.dev/") {
            out.insert(k, v);
        }
    }
    json!(out)
}

/// Who and where the import reads from.
pub(crate) struct Ctx<'a> {
    pub aws: &'a Aws,
    pub account: String,
    pub region: String,
}

/// Reads what runs and builds the files. Reads only.
pub async fn import(aws: &Aws, opts: &Options) -> Result<Vec<File>, String> {
    Ok(import_report(aws, opts).await?.0)
}

/// The resources to import, as the selection picks them.
async fn select(cx: &Ctx<'_>, selection: &Selection) -> Result<pick::Picked, String> {
    let mut picked = pick::Picked::default();
    match selection {
        Selection::Cluster { cluster, services } => {
            picked.clusters.insert(
                cluster.clone(),
                (!services.is_empty()).then(|| services.iter().cloned().collect()),
            );
        }
        Selection::CloudFormationStack { name, recursive } => {
            cloudformation::pick(cx, name, *recursive, &mut picked).await?;
            if picked.is_empty() {
                return Err(format!(
                    "failed to find any resource to import in CloudFormation stack `{name}`{}",
                    report_suffix(&picked)
                ));
            }
            picked.stack = Some(stack_name(name.rsplit('/').nth(1).unwrap_or(name)));
        }
        Selection::Tag { key, value } => {
            tagging::pick(cx, key, value, &mut picked).await?;
            if picked.is_empty() {
                return Err(format!(
                    "failed to find any resource to import tagged `{key}={value}`{}",
                    report_suffix(&picked)
                ));
            }
            picked.stack = Some(stack_name(value));
        }
    }
    Ok(picked)
}

/// `: only …` naming what was found but cannot be carried, when anything was.
fn report_suffix(picked: &pick::Picked) -> String {
    if picked.left_out.is_empty() {
        return String::new();
    }
    let found: Vec<&str> = picked.left_out.keys().map(String::as_str).collect();
    format!(" (found only what it cannot carry: {})", found.join(", "))
}

/// Reads what runs and builds the files, and what was picked but not imported (`what`,
/// why). Reads only.
pub async fn import_report(
    aws: &Aws,
    opts: &Options,
) -> Result<(Vec<File>, Vec<(String, String)>), String> {
    let account = aws
        .account_id()
        .await
        .map_err(|e| format!("failed to read the account ID: {e}"))?;
    let cx = Ctx {
        aws,
        account,
        region: aws.region.clone(),
    };
    let mut picked = select(&cx, &opts.selection).await?;
    let mut names = Names::default();
    let mut read_clusters = Vec::new();
    for (c, only) in &picked.clusters {
        read_clusters.push((cluster::read(&cx, c, &mut names).await?, only.clone()));
    }
    let stack = match (
        &opts.stack,
        read_clusters.iter().find_map(|(c, _)| c.stack.clone()),
    ) {
        (Some(s), _) => stack_name(s),
        (None, Some(tagged)) => tagged,
        (None, None) => match (&picked.stack, read_clusters.first()) {
            (Some(s), _) => s.clone(),
            (None, Some((c, _))) => stack_name(&c.aws_name),
            (None, None) => "imported".into(),
        },
    };
    // From here on, what another stack or environment owns is left out (`Names::foreign`):
    // a cluster with all its services, since a Service names its Cluster manifest.
    names.for_stack(&stack);
    let mut clusters = Vec::new();
    let mut onlys = Vec::new();
    for (c, only) in read_clusters {
        let tags = c.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        if !names.refuse("cluster", &c.doc.source, tags) {
            clusters.push(c);
            onlys.push(only);
        }
    }
    // Each service with the index of its cluster.
    let mut services: Vec<(usize, service::Read)> = Vec::new();
    for (i, (cluster, only)) in clusters.iter().zip(&onlys).enumerate() {
        let only: Vec<String> = match only {
            None => Vec::new(),
            Some(s) if s.is_empty() => continue,
            Some(s) => s.iter().cloned().collect(),
        };
        for s in service::read(&cx, &cluster.aws_name, &only).await? {
            let tags = s
                .service
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?, t.value()?)));
            if !names.refuse("service", s.service.service_arn().unwrap_or_default(), tags) {
                services.push((i, s));
            }
        }
    }
    if let Selection::Cluster { cluster, .. } = &opts.selection
        && services.is_empty()
    {
        let why: Vec<String> = names
            .refused
            .iter()
            .map(|(what, why)| format!("{what}: {why}"))
            .collect();
        return Err(if why.is_empty() {
            format!("failed to find any service to import in cluster `{cluster}`")
        } else {
            format!(
                "failed to find any service to import in cluster `{cluster}` that is not another stack's:\n  {}",
                why.join("\n  ")
            )
        });
    }
    // Target groups and the load balancers whose listeners forward to them.
    let tg_arns: BTreeSet<String> = services
        .iter()
        .flat_map(|(_, s)| s.service.load_balancers())
        .filter_map(|lb| lb.target_group_arn().map(str::to_string))
        .collect();
    let tgs = target_group::read(&cx, &tg_arns, &mut names).await?;
    let mut lbs = load_balancer::read(&cx, &tgs, &mut names).await?;
    let forwarded: BTreeSet<String> = lbs.iter().flat_map(|l| l.forwards.clone()).collect();
    // The security groups the services and load balancers use, and those picked; where
    // every group of a selector is imported, it names their manifests.
    let used: BTreeSet<String> = services
        .iter()
        .filter_map(|(_, s)| s.service.network_configuration()?.awsvpc_configuration())
        .flat_map(|v| v.security_groups().to_vec())
        .chain(lbs.iter().flat_map(|l| {
            l.doc.spec["securityGroups"]["ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
        }))
        .collect();
    let groups = security_group::read(
        &cx,
        &used,
        &picked.security_groups,
        &mut names,
        &mut picked.left_out,
    )
    .await?;
    for l in &mut lbs {
        security_group::refer(&mut l.doc, "/securityGroups", &groups.ids);
    }

    // The load balancers forwarding to a target group: (alarm dimension, manifest name).
    let forwarding = |arn: &str| -> Vec<(String, String)> {
        lbs.iter()
            .filter(|l| l.forwards.iter().any(|f| f == arn))
            .map(|l| (alarm::dimension(&l.doc.source), l.doc.name.clone()))
            .collect()
    };
    let mut files = Vec::new();
    let mut parameters = parameter_set::Collector::default();
    let mut tg_written = BTreeSet::new();
    let mut log_groups: BTreeMap<String, String> = BTreeMap::new();
    let mut alarm_targets = alarm::Targets::default();
    for (i, s) in &services {
        let cluster = &clusters[*i];
        let scaling = scalable_target::read(&cx, &cluster.aws_name, s).await?;
        let mut svc = service::build(
            &cx,
            s,
            &cluster.name,
            &tgs,
            &forwarded,
            scaling.is_some(),
            &mut names,
        );
        security_group::refer(&mut svc.doc, "/network/securityGroups", &groups.ids);
        parameters.collect(&svc.secrets);
        alarm_targets.services.insert(
            (
                cluster.aws_name.clone(),
                s.service.service_name().unwrap_or_default().to_string(),
            ),
            svc.doc.name.clone(),
        );
        let mut docs = vec![];
        // Each container's log group, when it is in this region: `logs.group` then names
        // its manifest.
        for logs in service::logs_mut(&mut svc.doc.spec) {
            let Some(group) = logs["group"].as_str().map(str::to_string) else {
                continue;
            };
            if logs.get("region").is_some() {
                continue;
            }
            match log_groups.get(&group) {
                Some(name) => logs["group"] = json!(name),
                None => {
                    if let Some(lg) = log_group::read(&cx, &group, &mut names).await? {
                        logs["group"] = json!(lg.name);
                        log_groups.insert(group, lg.name.clone());
                        docs.push(lg);
                    }
                }
            }
        }
        if let Some(mut st) = scaling {
            st.spec["service"] = json!(svc.doc.name);
            scalable_target::requests_by_manifest(&mut st, |dimension| {
                let (arn, tg) = tgs
                    .iter()
                    .filter(|(arn, _)| forwarded.contains(*arn))
                    .find(|(arn, _)| alarm::dimension(arn) == dimension)?;
                Some((tg.doc.name.clone(), forwarding(arn)))
            });
            docs.push(scalable_target::finish(st, &svc.doc.name));
        }
        for arn in s
            .service
            .load_balancers()
            .iter()
            .filter_map(|l| l.target_group_arn())
        {
            if let Some(tg) = tgs.get(arn).filter(|_| forwarded.contains(arn))
                && tg_written.insert(arn.to_string())
            {
                docs.push(tg.doc.clone());
            }
        }
        let service_doc = std::mem::replace(
            &mut svc.doc,
            Imported::new("Service", String::new(), String::new(), Value::Null),
        );
        docs.insert(0, service_doc);
        let reserved = [
            "stack",
            "cluster",
            "parameters",
            "load-balancers",
            "security-groups",
            "log-groups",
            "repositories",
            "replication-groups",
            "alarms",
            "schedules",
        ];
        let base = if reserved.contains(&docs[0].name.as_str()) {
            format!("service-{}", docs[0].name)
        } else {
            docs[0].name.clone()
        };
        files.push(File {
            name: format!("{base}.yaml"),
            docs,
            stack: None,
            comments: Vec::new(),
        });
    }
    // What the selection picked on its own, when no service reached it.
    let mut extra_logs = Vec::new();
    for group in &picked.log_groups {
        if log_groups.contains_key(group) {
            continue;
        }
        match log_group::read(&cx, group, &mut names).await? {
            Some(lg) => extra_logs.push(lg),
            None if names.refused("log group", group) => {}
            None => {
                picked
                    .left_out
                    .insert(format!("log group {group}"), "it does not exist".into());
            }
        }
    }
    let wanted: Vec<String> = picked.repositories.iter().cloned().collect();
    let repositories = repository::read(&cx, &wanted, &mut names).await?;
    parameters.collect(&picked.parameters.iter().cloned().collect::<Vec<_>>());
    let parameter_docs = parameters.build(&cx, &mut names).await?;
    // Caches, alarms (on what was imported, or picked) and schedules.
    for arn in &tg_written {
        if let Some(tg) = tgs.get(arn) {
            alarm_targets.target_groups.insert(
                alarm::dimension(arn),
                (tg.doc.name.clone(), forwarding(arn).into_iter().collect()),
            );
        }
    }
    let caches = elasticache::read(
        &cx,
        &picked.replication_groups,
        &picked.cache_subnet_groups,
        &mut names,
    )
    .await?;
    let alarms = alarm::read(&cx, &picked.alarms, &alarm_targets, &mut names).await?;
    let schedules = eventbridge::read(&cx, &picked.rules, &mut names).await?;
    for left in [&caches.left_out, &alarms.left_out, &schedules.left_out] {
        picked.left_out.extend(left.clone());
    }

    // Resources only a service brings in, which none did.
    let imported_lbs: Vec<&str> = lbs.iter().map(|l| l.doc.source.as_str()).collect();
    let families: BTreeSet<&str> = services.iter().filter_map(|(_, s)| s.td.family()).collect();
    let service_ids: Vec<String> = services
        .iter()
        .map(|(i, s)| {
            format!(
                "service/{}/{}",
                clusters[*i].aws_name,
                s.service.service_name().unwrap_or_default()
            )
        })
        .collect();
    for (kind, id) in &picked.reached {
        let lb_part = |arn: &str| {
            // `…:listener/app/NAME/ID/…` and `…:listener-rule/app/NAME/ID/…` belong to
            // `…:loadbalancer/app/NAME/ID`.
            let path = arn.splitn(6, ':').nth(5).unwrap_or_default();
            let lb: Vec<&str> = path.split('/').skip(1).take(3).collect();
            let lb = lb.join("/");
            imported_lbs.iter().any(|l| l.ends_with(&format!("/{lb}")))
        };
        let covered = match kind.as_str() {
            "AWS::ElasticLoadBalancingV2::TargetGroup" => tgs.contains_key(id),
            "AWS::ElastiCache::CacheCluster" => caches.members.contains(id),
            "AWS::Events::ApiDestination" | "AWS::Events::Connection" => {
                schedules.imported.contains(id)
            }
            "AWS::ElasticLoadBalancingV2::LoadBalancer" => imported_lbs.contains(&id.as_str()),
            "AWS::ElasticLoadBalancingV2::Listener"
            | "AWS::ElasticLoadBalancingV2::ListenerRule" => lb_part(id),
            "AWS::ECS::TaskDefinition" => {
                let family = id.rsplit('/').next().unwrap_or(id);
                let family = family.rsplit_once(':').map_or(family, |(f, _)| f);
                families.contains(family)
            }
            _ => service_ids.iter().any(|s| {
                id.contains(&format!("{s}|"))
                    || id.ends_with(s.as_str())
                    || id.contains(&format!("{s}:"))
            }),
        };
        if !covered {
            picked
                .left_out
                .insert(format!("{kind} {id}"), "nothing imported reaches it".into());
        }
    }
    picked.left_out.append(&mut names.refused);
    let left_out: Vec<(String, String)> = picked.left_out.into_iter().collect();

    let mut comments = Vec::new();
    if !left_out.is_empty() {
        comments.push("Picked but not imported (mooring cannot carry these):".to_string());
        for (what, why) in &left_out {
            comments.push(format!("  - {what}: {why}"));
        }
    }
    let mut out = vec![File {
        name: "stack.yaml".into(),
        docs: vec![],
        stack: Some(stack),
        comments,
    }];
    let mut push = |name: &str, docs: Vec<Imported>| {
        if !docs.is_empty() {
            out.push(File {
                name: name.into(),
                docs,
                stack: None,
                comments: Vec::new(),
            });
        }
    };
    push(
        "cluster.yaml",
        clusters.into_iter().map(|c| c.doc).collect(),
    );
    push("parameters.yaml", parameter_docs);
    push(
        "load-balancers.yaml",
        lbs.into_iter().map(|l| l.doc).collect(),
    );
    push("security-groups.yaml", groups.docs);
    push("log-groups.yaml", extra_logs);
    push("repositories.yaml", repositories);
    push("replication-groups.yaml", caches.docs);
    push("alarms.yaml", alarms.docs);
    push("schedules.yaml", schedules.docs);
    out.extend(files);
    Ok((out, left_out))
}

/// `mooring import`: reads, then writes the files (or prints them with `dry_run`) and
/// reports on stderr what could not be carried. Returns the exit code.
pub async fn run(aws: &Aws, opts: &Options) -> i32 {
    let (files, left_out) = match import_report(aws, opts).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    for (what, why) in &left_out {
        eprintln!("not imported: {what}: {why}");
    }
    for f in &files {
        for d in &f.docs {
            for c in &d.cannot_carry {
                eprintln!("{}/{}: cannot carry {c}", d.kind, d.name);
            }
            if !d.cannot_carry.is_empty() {
                eprintln!(
                    "{}/{}: written with mooring.dev/mode: observe (in {})",
                    d.kind, d.name, f.name
                );
            }
            for n in &d.notes {
                eprintln!("{}/{}: note: {n}", d.kind, d.name);
            }
        }
    }
    if opts.dry_run {
        for f in &files {
            println!("# {}", opts.out.join(&f.name).display());
            print!("{}", f.render());
            println!();
        }
        eprintln!(
            "dry run: {} file(s) would be written to {}; nothing written",
            files.len(),
            opts.out.display()
        );
        return 0;
    }
    if let Err(e) = check_out(&opts.out, &files) {
        eprintln!("error: {e}");
        return 1;
    }
    if let Err(e) = std::fs::create_dir_all(&opts.out) {
        eprintln!("error: failed to create {}: {e}", opts.out.display());
        return 1;
    }
    for f in &files {
        let path = opts.out.join(&f.name);
        if let Err(e) = std::fs::write(&path, f.render()) {
            eprintln!("error: failed to write {}: {e}", path.display());
            return 1;
        }
        println!("wrote {}", path.display());
    }
    0
}

/// The line every file import writes carries; a file without it is someone else's.
const MARK: &str = "# Imported by `mooring import`";

/// Largest existing file read to look for [`MARK`] (a manifest is at most 1 MiB).
const MAX_EXISTING: u64 = 1 << 20;

/// Refuses, before anything is written, an `--out` that is not a directory, and any file
/// import would write over that import did not write itself (no [`MARK`] line) or that is
/// not a regular file (a symbolic link would be followed out of the directory). Other
/// files in the directory are never touched. Every problem is named at once.
fn check_out(out: &Path, files: &[File]) -> Result<(), String> {
    match std::fs::metadata(out) {
        Ok(m) if !m.is_dir() => {
            return Err(format!(
                "--out {} exists and is not a directory",
                out.display()
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("failed to read {}: {e}", out.display())),
    }
    let mut problems = Vec::new();
    for f in files {
        let path = out.join(&f.name);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                problems.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        if !meta.is_file() {
            problems.push(format!("{}: not a regular file", path.display()));
            continue;
        }
        let ours = std::fs::File::open(&path).and_then(|file| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_EXISTING), &mut text)?;
            Ok(text.lines().any(|l| l.starts_with(MARK)))
        });
        match ours {
            Ok(true) => {}
            Ok(false) => problems.push(format!(
                "{}: exists and was not written by `mooring import`",
                path.display()
            )),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "refusing to overwrite files in {} (move them, or import into another directory); nothing written:\n  {}",
            out.display(),
            problems.join("\n  ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_readable_valid_and_unique() {
        assert_eq!(
            manifest_name("CdkBackendStack-ServiceD69D759B-1AB2C3"),
            "cdkbackendstack-serviced69d759b-1ab2c3"
        );
        assert_eq!(manifest_name("/ecs/api.v2"), "ecs-api-v2");
        assert_eq!(manifest_name("***"), "imported");
        assert_eq!(stack_name("My_Cluster"), "my-cluster");
        let mut n = Names::default();
        assert_eq!(n.take("Service", "api"), "api");
        assert_eq!(n.take("Service", "API"), "api-2");
        assert_eq!(n.take("TargetGroup", "api"), "api");
        // A resource mooring made keeps its manifest's name (its ownership tag).
        let tags = [("mooring.dev/resource", "LogGroup/backend-logs")];
        assert_eq!(
            n.take_owned("LogGroup", "/ecs/backend", tags),
            "backend-logs"
        );
        assert_eq!(
            n.take_owned("Service", "/ecs/backend", tags),
            "ecs-backend",
            "another kind's tag"
        );
    }

    #[test]
    fn another_stacks_or_environments_resources_are_refused_and_their_names_not_taken() {
        let mut n = Names::default();
        let blog = [
            ("mooring.dev/stack", "blog"),
            ("mooring.dev/resource", "LogGroup/blog-logs"),
        ];
        // Before the stack is known nothing is refused.
        assert_eq!(n.foreign(blog), None);
        n.for_stack("shop");
        let why = n.foreign(blog).unwrap();
        assert!(
            why.contains("LogGroup/blog-logs of the stack `blog`") && why.contains("--stack blog"),
            "{why}"
        );
        assert!(n.refuse("log group", "/ecs/blog", blog));
        assert!(n.refused("log group", "/ecs/blog"));
        assert_eq!(
            n.take_owned("LogGroup", "/ecs/blog", blog),
            "ecs-blog",
            "another stack's manifest name is not followed"
        );
        let prd = [
            ("mooring.dev/stack", "shop"),
            ("mooring.dev/environment", "prd"),
            ("mooring.dev/resource", "Service/api"),
        ];
        let why = n.foreign(prd).unwrap();
        assert!(
            why.contains("the environment `prd` of the stack `shop`"),
            "{why}"
        );
        // This stack's, one tagged before stacks, and one mooring did not make: imported.
        let mine = [
            ("mooring.dev/stack", "shop"),
            ("mooring.dev/resource", "Service/api"),
        ];
        assert_eq!(n.foreign(mine), None);
        assert_eq!(n.take_owned("Service", "Shop-Api-1", mine), "api");
        assert_eq!(n.foreign([("mooring.dev/resource", "Service/x")]), None);
        assert_eq!(n.foreign([("team", "web")]), None);
    }

    #[test]
    fn out_keeps_foreign_files_and_refuses_to_overwrite_them() {
        let dir = tempfile::tempdir().unwrap();
        let files = |names: &[&str]| -> Vec<File> {
            names
                .iter()
                .map(|n| File {
                    name: (*n).into(),
                    docs: vec![],
                    stack: Some("shop".into()),
                    comments: vec![],
                })
                .collect()
        };
        // Missing directory, and a directory of other files: fine.
        assert_eq!(
            check_out(&dir.path().join("new"), &files(&["stack.yaml"])),
            Ok(())
        );
        std::fs::write(dir.path().join("notes.md"), "mine").unwrap();
        assert_eq!(check_out(dir.path(), &files(&["stack.yaml"])), Ok(()));
        // A file import wrote before is overwritten; one it did not write is refused.
        std::fs::write(dir.path().join("stack.yaml"), files(&["s"])[0].render()).unwrap();
        assert_eq!(check_out(dir.path(), &files(&["stack.yaml"])), Ok(()));
        std::fs::write(dir.path().join("cluster.yaml"), "kind: Cluster\n").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("api.yaml")).unwrap();
        let err = check_out(
            dir.path(),
            &files(&["stack.yaml", "cluster.yaml", "api.yaml"]),
        )
        .unwrap_err();
        assert!(
            err.contains("cluster.yaml: exists and was not written by `mooring import`"),
            "{err}"
        );
        #[cfg(unix)]
        assert!(err.contains("api.yaml: not a regular file"), "{err}");
        assert!(!err.contains("stack.yaml"), "{err}");
        // `--out` naming a file.
        let err = check_out(&dir.path().join("notes.md"), &files(&["stack.yaml"])).unwrap_err();
        assert!(err.contains("is not a directory"), "{err}");
    }

    #[test]
    fn stack_yaml_lists_what_was_left_out_before_the_stack() {
        let f = File {
            name: "stack.yaml".into(),
            docs: vec![],
            stack: Some("shop".into()),
            comments: vec![
                "Picked but not imported:".into(),
                "  - AWS::SNS::Topic t: why".into(),
            ],
        };
        let text = f.render();
        assert!(
            text.starts_with(
                "# Picked but not imported:\n#   - AWS::SNS::Topic t: why\n# Imported by"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("kind: Stack\nmetadata:\n  name: shop\n"),
            "{text}"
        );
    }

    #[test]
    fn a_document_says_where_it_came_from_and_what_it_cannot_carry() {
        let mut d = Imported::new(
            "Cluster",
            "prd".into(),
            "arn:aws:ecs:eu-west-1:123456789012:cluster/prd".into(),
            json!({"clusterName": "prd", "tags": {}, "containerInsights": null}),
        );
        assert_eq!(
            d.render(),
            "# Imported by `mooring import` from arn:aws:ecs:eu-west-1:123456789012:cluster/prd\napiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: prd\n  annotations:\n    mooring.dev/adopt: \"true\"\nspec:\n  clusterName: prd\n"
        );
        d.cannot_carry
            .push("capacityProviders: [FARGATE_SPOT]".into());
        let text = d.render();
        assert!(
            text.contains("#   - capacityProviders: [FARGATE_SPOT]\n"),
            "{text}"
        );
        assert!(text.contains("    mooring.dev/mode: observe\n"), "{text}");
    }
}
