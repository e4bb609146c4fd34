//! ElastiCache replication groups (`kind: ReplicationGroup`).
//!
//! Reads: one paginated DescribeReplicationGroups and one paginated DescribeCacheClusters
//! for all groups (engine version and security groups live on the member clusters), one
//! ListTagsForResource per existing group. Updates go through ModifyReplicationGroup with
//! ApplyImmediately (moto implements no ModifyCacheCluster; replication groups are what it
//! supports). moto returns cache clusters without `SecurityGroups`: a cluster that reports
//! no security groups at all is not compared on them.

pub mod spec;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_elasticache::types::{CacheCluster, ReplicationGroup, Tag};
use serde_json::{Map, Value, json};
use tracing::info;

use super::service::network::{Resolver, Target, settle};
use super::{
    live_tags_doc, ownership_conflict, replacement, replacing, tags_doc, tags_to_set, touches,
};
use crate::aws::{AwsError, ErrorCategory};
use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::redis::ReplicationGroupSpec;
use crate::manifest::{Kind, Manifest, ManifestSet, owned_tags};
use crate::reconcile::diff::diff_managed;
use crate::reconcile::{
    Action, Applied, Context, Planned, ReconcileError, Reconciler, ResourcePlan,
};

/// Default Redis port.
const DEFAULT_PORT: u16 = 6379;
/// Fields ElastiCache cannot change on an existing group.
const REPLACEMENT_FIELDS: [&str; 4] = ["engine", "port", "atRestEncryption", "transitEncryption"];

/// Reconciles `kind: ReplicationGroup` manifests.
pub struct ReplicationGroupReconciler {
    manifests: Vec<Manifest<ReplicationGroupSpec>>,
}

impl ReplicationGroupReconciler {
    /// The reconciler for the set's replication groups.
    pub fn new(set: &ManifestSet) -> Self {
        ReplicationGroupReconciler {
            manifests: set.replication_groups.clone(),
        }
    }
}

fn desired_tags(m: &Manifest<ReplicationGroupSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::ReplicationGroup, m.name(), &m.spec.tags)
}

fn description(m: &Manifest<ReplicationGroupSpec>) -> String {
    m.spec
        .description
        .clone()
        .unwrap_or_else(|| format!("{} (managed by mooring)", m.name()))
}

fn enabled(on: bool) -> &'static str {
    if on { "enabled" } else { "disabled" }
}

/// The manifest in the normalised shape plan compares. `security_groups` is `None` and
/// `engine_version` false when the live side cannot show them (see [`Observable`]).
pub fn desired_doc(
    m: &Manifest<ReplicationGroupSpec>,
    security_groups: Option<&[String]>,
    engine_version: bool,
) -> Value {
    let s = &m.spec;
    let mut doc = Map::new();
    doc.insert("description".into(), json!(description(m)));
    doc.insert("engine".into(), json!(s.engine.as_str()));
    if engine_version {
        doc.insert("engineVersion".into(), json!(s.engine_version));
    }
    doc.insert("nodeType".into(), json!(s.node_type));
    doc.insert("numCacheClusters".into(), json!(s.num_cache_clusters));
    doc.insert(
        "automaticFailover".into(),
        json!(enabled(s.automatic_failover)),
    );
    doc.insert("multiAz".into(), json!(enabled(s.multi_az)));
    doc.insert("port".into(), json!(s.port.unwrap_or(DEFAULT_PORT)));
    doc.insert("atRestEncryption".into(), json!(s.at_rest_encryption));
    doc.insert("transitEncryption".into(), json!(s.transit_encryption));
    doc.insert(
        "snapshotRetentionLimit".into(),
        json!(s.snapshot_retention_limit),
    );
    if let Some(sgs) = security_groups {
        doc.insert("securityGroups".into(), json!(sgs));
    }
    doc.insert("tags".into(), tags_doc(&desired_tags(m)));
    Value::Object(doc)
}

/// The live group in the shape of [`desired_doc`]; `primary` is its first member cluster.
pub fn live_doc(
    m: &Manifest<ReplicationGroupSpec>,
    rg: &ReplicationGroup,
    primary: Option<&CacheCluster>,
    tags: &[Tag],
    observable: Observable,
) -> Value {
    let port = rg
        .node_groups()
        .first()
        .and_then(|n| n.primary_endpoint())
        .and_then(|e| e.port())
        .or_else(|| rg.configuration_endpoint().and_then(|e| e.port()));
    let mut doc = Map::new();
    doc.insert("description".into(), json!(rg.description()));
    doc.insert(
        "engine".into(),
        json!(rg.engine().or_else(|| primary.and_then(|c| c.engine()))),
    );
    if observable.engine_version {
        doc.insert(
            "engineVersion".into(),
            json!(primary.and_then(|c| c.engine_version()).map(major_minor)),
        );
    }
    doc.insert("nodeType".into(), json!(rg.cache_node_type()));
    doc.insert("numCacheClusters".into(), json!(rg.member_clusters().len()));
    doc.insert(
        "automaticFailover".into(),
        json!(rg.automatic_failover().map_or("disabled", |a| a.as_str())),
    );
    doc.insert(
        "multiAz".into(),
        json!(rg.multi_az().map_or("disabled", |a| a.as_str())),
    );
    doc.insert(
        "port".into(),
        json!(port.unwrap_or(i32::from(DEFAULT_PORT))),
    );
    doc.insert(
        "atRestEncryption".into(),
        json!(rg.at_rest_encryption_enabled().unwrap_or(false)),
    );
    doc.insert(
        "transitEncryption".into(),
        json!(rg.transit_encryption_enabled().unwrap_or(false)),
    );
    doc.insert(
        "snapshotRetentionLimit".into(),
        json!(rg.snapshot_retention_limit().unwrap_or(0)),
    );
    if observable.security_groups {
        let mut sgs: Vec<&str> = primary
            .map(|c| {
                c.security_groups()
                    .iter()
                    .filter_map(|g| g.security_group_id())
                    .collect()
            })
            .unwrap_or_default();
        sgs.sort();
        doc.insert("securityGroups".into(), json!(sgs));
    }
    let live_tags = tags.iter().filter_map(|t| Some((t.key()?, t.value()?)));
    doc.insert("tags".into(), live_tags_doc(live_tags, &desired_tags(m)));
    Value::Object(doc)
}

/// Which fields of the member clusters can be seen. Real ElastiCache always lists the
/// member clusters with their engine version and security groups; moto lists neither the
/// clusters of a replication group nor security groups, so those fields are compared only
/// when AWS shows them.
#[derive(Debug, Clone, Copy)]
pub struct Observable {
    /// The primary's engine version is visible.
    pub engine_version: bool,
    /// The primary's security groups are visible (and the manifest sets them).
    pub security_groups: bool,
}

/// `7.1.0` → `7.1`: ElastiCache reports the patch level, manifests name major.minor.
fn major_minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

struct Observed {
    manifest: Manifest<ReplicationGroupSpec>,
    security_groups: Vec<String>,
    arn: Option<String>,
}

async fn list_groups(ctx: &Context) -> Result<Vec<ReplicationGroup>, AwsError> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = ctx
            .aws
            .elasticache
            .describe_replication_groups()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticache:DescribeReplicationGroups", e))?;
        out.extend(page.replication_groups().iter().cloned());
        marker = page.marker;
        if marker.is_none() {
            break;
        }
    }
    Ok(out)
}

async fn list_clusters(ctx: &Context) -> Result<Vec<CacheCluster>, AwsError> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = ctx
            .aws
            .elasticache
            .describe_cache_clusters()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticache:DescribeCacheClusters", e))?;
        out.extend(page.cache_clusters().iter().cloned());
        marker = page.marker;
        if marker.is_none() {
            break;
        }
    }
    Ok(out)
}

/// How long a replacement waits for ElastiCache to finish deleting the old group.
const DELETE_WAIT: Duration = Duration::from_secs(30 * 60);

/// Deletes a replication group (no final snapshot: the manifest allowed replacement) and
/// waits until ElastiCache no longer knows it, so the ID can be used again.
async fn delete_and_wait(ctx: &Context, id: &str) -> Result<(), ReconcileError> {
    ctx.aws
        .elasticache
        .delete_replication_group()
        .replication_group_id(id)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("elasticache:DeleteReplicationGroup", e))?;
    info!(replication_group = %id, "deleting replication group, to replace it");
    let started = Instant::now();
    loop {
        let out = ctx
            .aws
            .elasticache
            .describe_replication_groups()
            .replication_group_id(id)
            .send()
            .await;
        match out {
            Err(e) => {
                let e = AwsError::from_sdk("elasticache:DescribeReplicationGroups", e);
                if e.category == ErrorCategory::NotFound {
                    return Ok(());
                }
                return Err(e.into());
            }
            Ok(o) if o.replication_groups().is_empty() => return Ok(()),
            Ok(_) if started.elapsed() > DELETE_WAIT => {
                return Err(ReconcileError::NotConverged(format!(
                    "replication group {id} was still being deleted after {} minutes; it is created again on a later pass",
                    DELETE_WAIT.as_secs() / 60
                )));
            }
            Ok(_) => tokio::time::sleep(ctx.rollout_poll).await,
        }
    }
}

#[async_trait::async_trait]
impl Reconciler for ReplicationGroupReconciler {
    fn kind(&self) -> Kind {
        Kind::ReplicationGroup
    }

    fn dependencies(&self, name: &str) -> Vec<(Kind, String)> {
        self.manifests
            .iter()
            .filter(|m| m.name() == name)
            .filter_map(|m| m.spec.security_groups.as_ref())
            .flat_map(|s| s.dependencies())
            .collect()
    }

    async fn plan(&self, ctx: &Context) -> Vec<(String, Result<Planned, ReconcileError>)> {
        if self.manifests.is_empty() {
            return Vec::new();
        }
        let read = async {
            let groups = list_groups(ctx).await?;
            let clusters = list_clusters(ctx).await?;
            Ok::<_, AwsError>((groups, clusters))
        }
        .await;
        let (groups, clusters) = match read {
            Ok(r) => r,
            Err(e) => {
                let e = ReconcileError::from(e);
                return self
                    .manifests
                    .iter()
                    .map(|m| (m.name().to_string(), Err(e.clone())))
                    .collect();
            }
        };
        let mut resolver = Resolver::default();
        let mut out = Vec::new();
        for m in &self.manifests {
            let id = m.spec.aws_name(&m.metadata);
            let result = async {
                let security_groups = match &m.spec.security_groups {
                    Some(sel) => resolver.resolve(&ctx.aws, Target::SecurityGroups, sel).await?,
                    None => Vec::new(),
                };
                let rg = groups
                    .iter()
                    .find(|g| g.replication_group_id() == Some(id) && g.status() != Some("deleting"));
                let primary = rg.and_then(|g| {
                    let first = g.member_clusters().first()?;
                    clusters.iter().find(|c| c.cache_cluster_id() == Some(first.as_str()))
                });
                let arn = rg.and_then(|g| g.arn()).map(str::to_string);
                let tags = match &arn {
                    Some(arn) => ctx
                        .aws
                        .elasticache
                        .list_tags_for_resource()
                        .resource_name(arn)
                        .send()
                        .await
                        .map_err(|e| AwsError::from_sdk("elasticache:ListTagsForResource", e))?
                        .tag_list()
                        .to_vec(),
                    None => Vec::new(),
                };
                if let Some(conflict) = rg.and_then(|_| {
                    ownership_conflict(
                        Kind::ReplicationGroup,
                        &m.metadata,
                        tags.iter().filter_map(|t| Some((t.key()?, t.value()?))),
                    )
                }) {
                    return Err(ReconcileError::Ownership(format!("replication group {id}: {conflict}")));
                }
                let observable = match (rg, primary) {
                    (None, _) => Observable {
                        engine_version: true,
                        security_groups: m.spec.security_groups.is_some(),
                    },
                    (Some(_), None) => Observable {
                        engine_version: false,
                        security_groups: false,
                    },
                    (Some(_), Some(c)) => Observable {
                        engine_version: c.engine_version().is_some(),
                        security_groups: m.spec.security_groups.is_some()
                            && c.security_groups.is_some(),
                    },
                };
                let desired = desired_doc(
                    m,
                    observable
                        .security_groups
                        .then_some(security_groups.as_slice()),
                    observable.engine_version,
                );
                let changes = diff_managed(
                    &m.metadata,
                    &desired,
                    rg.map(|g| live_doc(m, g, primary, &tags, observable)).as_ref(),
                );
                let action = match (rg, changes.is_empty()) {
                    (None, _) => Action::Create,
                    (Some(_), true) => Action::None,
                    (Some(_), false) => Action::Update,
                };
                let (action, mut problems) = replacement(
                    &m.metadata,
                    action,
                    &changes,
                    &REPLACEMENT_FIELDS,
                    "replication group (its data is lost unless restored from a snapshot)",
                );
                if rg.is_some() && touches(&changes, "numCacheClusters") {
                    problems.push("changing numCacheClusters (adding or removing replicas) is not supported yet".into());
                }
                Ok(Planned {
                    plan: ResourcePlan {
                        kind: Kind::ReplicationGroup,
                        name: m.name().to_string(),
                        aws_id: arn.clone().unwrap_or_else(|| id.to_string()),
                        action,
                        changes,
                        rollout: None,
                        problems,
                    },
                    observed: Box::new(Observed {
                        manifest: m.clone(),
                        security_groups,
                        arn,
                    }),
                })
            }
            .await;
            out.push((m.name().to_string(), result));
        }
        out
    }

    async fn apply(&self, ctx: &Context, planned: &Planned) -> Result<Applied, ReconcileError> {
        let Some(obs) = planned.observed.downcast_ref::<Observed>() else {
            return Err(ReconcileError::NotConverged("plan of another kind".into()));
        };
        let m = &obs.manifest;
        let s = &m.spec;
        let id = s.aws_name(&m.metadata);
        let security_groups =
            settle(&ctx.aws, s.security_groups.as_ref(), &obs.security_groups).await?;
        let sgs = (!security_groups.is_empty()).then(|| security_groups.clone());
        let num = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let mut arn = obs.arn.clone();
        if replacing(planned) && arn.is_some() {
            delete_and_wait(ctx, id).await?;
            arn = None;
        }
        let Some(arn) = &arn else {
            let tags: Vec<Tag> = desired_tags(m)
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect();
            let out = ctx
                .aws
                .elasticache
                .create_replication_group()
                .replication_group_id(id)
                .replication_group_description(description(m))
                .engine(s.engine.as_str())
                .engine_version(&s.engine_version)
                .cache_node_type(&s.node_type)
                .num_cache_clusters(num(s.num_cache_clusters))
                .automatic_failover_enabled(s.automatic_failover)
                .multi_az_enabled(s.multi_az)
                .set_cache_subnet_group_name(s.subnet_group_name.clone())
                .set_security_group_ids(sgs)
                .port(i32::from(s.port.unwrap_or(DEFAULT_PORT)))
                .at_rest_encryption_enabled(s.at_rest_encryption)
                .transit_encryption_enabled(s.transit_encryption)
                .snapshot_retention_limit(num(s.snapshot_retention_limit))
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticache:CreateReplicationGroup", e))?;
            let arn = out
                .replication_group()
                .and_then(|g| g.arn())
                .unwrap_or(id)
                .to_string();
            info!(replication_group = %arn, "created replication group");
            return Ok(Applied {
                aws_id: arn,
                rollout: None,
            });
        };
        let changes = &planned.plan.changes;
        let fields = [
            "description",
            "engineVersion",
            "nodeType",
            "automaticFailover",
            "multiAz",
            "snapshotRetentionLimit",
            "securityGroups",
        ];
        if fields.iter().any(|f| touches(changes, f)) {
            let mut req = ctx
                .aws
                .elasticache
                .modify_replication_group()
                .replication_group_id(id)
                .apply_immediately(true);
            if touches(changes, "description") {
                req = req.replication_group_description(description(m));
            }
            if touches(changes, "engineVersion") {
                req = req.engine_version(&s.engine_version);
            }
            if touches(changes, "nodeType") {
                req = req.cache_node_type(&s.node_type);
            }
            if touches(changes, "automaticFailover") {
                req = req.automatic_failover_enabled(s.automatic_failover);
            }
            if touches(changes, "multiAz") {
                req = req.multi_az_enabled(s.multi_az);
            }
            if touches(changes, "snapshotRetentionLimit") {
                req = req.snapshot_retention_limit(num(s.snapshot_retention_limit));
            }
            if touches(changes, "securityGroups") {
                req = req.set_security_group_ids(Some(security_groups.clone()));
            }
            req.send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticache:ModifyReplicationGroup", e))?;
            info!(replication_group = %id, "modified replication group");
        }
        let tags = tags_to_set(changes);
        if !tags.is_empty() {
            ctx.aws
                .elasticache
                .add_tags_to_resource()
                .resource_name(arn)
                .set_tags(Some(
                    tags.iter()
                        .map(|(k, v)| Tag::builder().key(k).value(v).build())
                        .collect(),
                ))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticache:AddTagsToResource", e))?;
        }
        Ok(Applied {
            aws_id: arn.clone(),
            rollout: None,
        })
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;
    use crate::reconcile::diff::diff;
    use aws_sdk_elasticache::types::{
        AutomaticFailoverStatus, Endpoint, NodeGroup, SecurityGroupMembership,
    };

    /// Replacement waits for ElastiCache to forget the old group (minutes on AWS; moto
    /// keeps it `deleting` for ever, hence canned responses).
    #[tokio::test]
    async fn replacement_waits_until_the_old_group_is_gone() {
        use aws_sdk_elasticache::Client;
        use aws_sdk_elasticache::operation::delete_replication_group::DeleteReplicationGroupOutput;
        use aws_sdk_elasticache::operation::describe_replication_groups::{
            DescribeReplicationGroupsError, DescribeReplicationGroupsOutput,
        };
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        use aws_smithy_types::error::ErrorMetadata;

        let delete = mock!(Client::delete_replication_group)
            .match_requests(|r| r.replication_group_id() == Some("cache"))
            .then_output(|| DeleteReplicationGroupOutput::builder().build());
        let describe = mock!(Client::describe_replication_groups)
            .sequence()
            .output(|| {
                DescribeReplicationGroupsOutput::builder()
                    .replication_groups(
                        ReplicationGroup::builder()
                            .replication_group_id("cache")
                            .status("deleting")
                            .build(),
                    )
                    .build()
            })
            .times(2)
            .error(|| {
                DescribeReplicationGroupsError::generic(
                    ErrorMetadata::builder()
                        .code("ReplicationGroupNotFoundFault")
                        .message("ReplicationGroup cache not found.")
                        .build(),
                )
            })
            .build();
        let client = mock_client!(
            aws_sdk_elasticache,
            RuleMode::MatchAny,
            [&delete, &describe]
        );
        let config = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:1")
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let mut aws = crate::aws::Aws::from_config(&config).unwrap();
        aws.elasticache = client;
        let mut ctx = Context::new(aws);
        ctx.rollout_poll = Duration::from_millis(1);
        delete_and_wait(&ctx, "cache").await.unwrap();
        assert_eq!(delete.num_calls(), 1);
        assert_eq!(
            describe.num_calls(),
            3,
            "polled until ElastiCache forgot the group"
        );
    }

    #[test]
    fn replacement_fields_make_a_replace_plan_refused_unless_allowed() {
        let m = manifest();
        let changes = vec![crate::reconcile::FieldChange {
            field: "engine".into(),
            live: json!("redis"),
            desired: json!("valkey"),
        }];
        let (action, problems) = replacement(
            &m.metadata,
            Action::Update,
            &changes,
            &REPLACEMENT_FIELDS,
            "group",
        );
        assert_eq!(action, Action::Replace);
        assert!(
            problems[0].contains("mooring.dev/allow-replacement"),
            "{problems:?}"
        );
        let mut allowed = m.metadata.clone();
        allowed
            .annotations
            .insert("mooring.dev/allow-replacement".into(), "true".into());
        let (action, problems) = replacement(
            &allowed,
            Action::Update,
            &changes,
            &REPLACEMENT_FIELDS,
            "group",
        );
        assert_eq!((action, problems.len()), (Action::Replace, 0));
        let node_type = vec![crate::reconcile::FieldChange {
            field: "nodeType".into(),
            live: json!("cache.t2.small"),
            desired: json!("cache.t3.small"),
        }];
        let (action, _) = replacement(
            &m.metadata,
            Action::Update,
            &node_type,
            &REPLACEMENT_FIELDS,
            "group",
        );
        assert_eq!(action, Action::Update, "node types change in place");
    }

    fn manifest() -> Manifest<ReplicationGroupSpec> {
        let text = "apiVersion: mooring.dev/v1alpha1\nkind: ReplicationGroup\nmetadata: {name: cache}\nspec:\n  engineVersion: '7.1'\n  nodeType: cache.t2.small\n  numCacheClusters: 2\n  automaticFailover: true\n  securityGroups: {ids: [sg-1]}\n";
        load_with_stack(&[("r.yaml".into(), text.into())])
            .unwrap_or_else(|e| panic!("{e}"))
            .replication_groups[0]
            .clone()
    }

    fn live(m: &Manifest<ReplicationGroupSpec>) -> (ReplicationGroup, CacheCluster, Vec<Tag>) {
        let rg = ReplicationGroup::builder()
            .replication_group_id("cache")
            .description("cache (managed by mooring)")
            .engine("redis")
            .cache_node_type("cache.t2.small")
            .member_clusters("cache-001")
            .member_clusters("cache-002")
            .automatic_failover(AutomaticFailoverStatus::Enabled)
            .node_groups(
                NodeGroup::builder()
                    .primary_endpoint(Endpoint::builder().address("x").port(6379).build())
                    .build(),
            )
            .build();
        let primary = CacheCluster::builder()
            .cache_cluster_id("cache-001")
            .engine("redis")
            .engine_version("7.1.0")
            .security_groups(
                SecurityGroupMembership::builder()
                    .security_group_id("sg-1")
                    .build(),
            )
            .build();
        let tags = desired_tags(m)
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        (rg, primary, tags)
    }

    const ALL: Observable = Observable {
        engine_version: true,
        security_groups: true,
    };

    #[test]
    fn a_group_as_elasticache_describes_it_is_in_sync() {
        let m = manifest();
        let (rg, primary, tags) = live(&m);
        let changes = diff(
            &desired_doc(&m, Some(&["sg-1".to_string()]), true),
            Some(&live_doc(&m, &rg, Some(&primary), &tags, ALL)),
        );
        assert!(changes.is_empty(), "{changes:#?}");
    }

    #[test]
    fn node_type_and_security_groups_drift_is_named() {
        let m = manifest();
        let (mut rg, mut primary, tags) = live(&m);
        rg.cache_node_type = Some("cache.t2.medium".into());
        primary.security_groups = Some(vec![]);
        let changes = diff(
            &desired_doc(&m, Some(&["sg-1".to_string()]), true),
            Some(&live_doc(&m, &rg, Some(&primary), &tags, ALL)),
        );
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["nodeType", "securityGroups"]);
    }

    #[test]
    fn invalid_groups_are_rejected() {
        let text = "apiVersion: mooring.dev/v1alpha1\nkind: ReplicationGroup\nmetadata: {name: Cache--1}\nspec:\n  engineVersion: latest\n  nodeType: cache.t2.smal\n  numCacheClusters: 1\n  automaticFailover: true\n  multiAz: true\n  snapshotRetentionLimit: 40\n";
        let errs: Vec<String> = load_with_stack(&[("r.yaml".into(), text.into())])
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.to_string())
            .collect();
        for expected in [
            "spec.replicationGroupId: `Cache--1` is not a valid replication group ID",
            "r.yaml:5:3: spec.engineVersion: must be a version such as `7.1`",
            "r.yaml:6:3: spec.nodeType: `cache.t2.smal` is not an ElastiCache node type",
            "spec.automaticFailover: needs numCacheClusters of 2 or more",
            "spec.snapshotRetentionLimit: at most 35 days",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "missing {expected:?} in {errs:#?}"
            );
        }
    }
}
