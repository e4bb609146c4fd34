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
use serde::{Deserialize, Serialize};
use tracing::info;

use super::network::{self, Target};
use super::ownership::{Ownership, managed_tags, owned_tags, tags_to_set};
use super::{Change, Declared, Reference, Resource};
use super::from::Field;
use crate::aws::{AwsError, ErrorCategory};
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::diff::ignored_fields;
use crate::reconcile::{Applied, Cx, Problem, ReconcileError};
use spec::ReplicationGroupSpec;

/// Default Redis port.
const DEFAULT_PORT: u16 = 6379;

/// The `ReplicationGroup` kind.
pub struct Unit;

impl Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "elasticache:DescribeReplicationGroups",
        "elasticache:DescribeCacheClusters",
        "elasticache:ListTagsForResource",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeVpcs",
        "elasticache:CreateReplicationGroup",
        "elasticache:ModifyReplicationGroup",
        "elasticache:DeleteReplicationGroup",
        "elasticache:AddTagsToResource",
    ];
    type State = ();

    const FIELDS: &'static [Field] = &[
        Field {
            name: "primaryEndpoint.address",
            doc: "the host name of the primary (read-write) endpoint",
        },
        Field {
            name: "primaryEndpoint.port",
            doc: "the port of the primary endpoint",
        },
        Field {
            name: "readerEndpoint.address",
            doc: "the host name of the reader endpoint (the replicas)",
        },
    ];

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the replication group `{}`", m.spec.aws_name(&m.metadata))
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        let mut refs = m
            .spec
            .security_groups
            .as_ref()
            .map(|s| s.references("/spec/securityGroups"))
            .unwrap_or_default();
        if let Some(name) = &m.spec.subnet_group {
            refs.push(Reference::new(
                "/spec/subnetGroup",
                Kind::CacheSubnetGroup,
                name,
            ));
        }
        refs
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.replication_groups
            .iter()
            .flat_map(|r| {
                let id = r.spec.aws_name(&r.metadata).to_string();
                [
                    crate::iam::arn("elasticache", &format!("replicationgroup:{id}")),
                    crate::iam::arn("elasticache", &format!("cluster:{id}-*")),
                    crate::iam::arn("elasticache", "subnetgroup:*"),
                    crate::iam::arn("elasticache", "parametergroup:*"),
                    crate::iam::arn("elasticache", "securitygroup:*"),
                ]
            })
            .collect()
    }

}

/// A replication group in the shape plan compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// Shown in the console.
    pub description: String,
    /// `redis` or `valkey`.
    pub engine: Option<String>,
    /// major.minor; left out when the member clusters do not show it (see [`Observable`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// Node type.
    pub node_type: Option<String>,
    /// Nodes: the primary plus replicas.
    pub num_cache_clusters: u32,
    /// `enabled` or `disabled` (live may show `enabling`, `disabling`).
    pub automatic_failover: String,
    /// Likewise.
    pub multi_az: String,
    /// Port.
    pub port: i32,
    /// Encryption at rest.
    pub at_rest_encryption: bool,
    /// TLS.
    pub transit_encryption: bool,
    /// Days of snapshots kept.
    pub snapshot_retention_limit: i32,
    /// Security group IDs, sorted; left out when the member clusters do not show them or
    /// the manifest does not set them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
    /// The cache subnet group's name; left out when the member clusters do not show it or
    /// the manifest does not name one (ElastiCache then picks `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_group: Option<String>,
    /// Tags the manifest manages.
    pub tags: BTreeMap<String, String>,
}

/// Which fields of the member clusters can be seen. Real ElastiCache always lists the
/// member clusters with their engine version and security groups; moto lists neither the
/// clusters of a replication group nor security groups, so those fields are compared only
/// when AWS shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observable {
    /// The primary's engine version is visible.
    pub engine_version: bool,
    /// The primary's security groups are visible (and the manifest sets them).
    pub security_groups: bool,
    /// The primary's subnet group is visible (and the manifest names one).
    pub subnet_group: bool,
}

/// What one read finds for all of the kind's manifests.
pub struct Live {
    groups: Vec<ReplicationGroup>,
    clusters: Vec<CacheCluster>,
}

/// One replication group as observed.
pub struct Observed {
    /// The live group (not one being deleted).
    group: Option<ReplicationGroup>,
    /// Its first member cluster.
    primary: Option<CacheCluster>,
    /// Its tags.
    tags: Vec<Tag>,
    /// The manifest's security groups, resolved (sorted).
    security_groups: Vec<String>,
}

impl Observed {
    fn observable(&self, m: &Manifest<ReplicationGroupSpec>) -> Observable {
        let sets = m.spec.security_groups.is_some();
        let names = m.spec.subnet_group.is_some() || m.spec.subnet_group_name.is_some();
        match (&self.group, &self.primary) {
            (None, _) => Observable {
                engine_version: true,
                security_groups: sets,
                subnet_group: names,
            },
            (Some(_), None) => Observable {
                engine_version: false,
                security_groups: false,
                subnet_group: false,
            },
            (Some(_), Some(c)) => Observable {
                engine_version: c.engine_version().is_some(),
                security_groups: sets && c.security_groups.is_some(),
                subnet_group: names && c.cache_subnet_group_name().is_some(),
            },
        }
    }
}

fn desired_tags(
    set: &ManifestSet,
    m: &Manifest<ReplicationGroupSpec>,
) -> BTreeMap<String, String> {
    owned_tags(Kind::ReplicationGroup, set.owner(), m.name(), &m.spec.tags)
}

fn description(m: &Manifest<ReplicationGroupSpec>) -> String {
    m.spec
        .description
        .clone()
        .unwrap_or_else(|| format!("{} (managed by mooring)", m.name()))
}

/// The ElastiCache name of the group's subnet group: the `CacheSubnetGroup` manifest it
/// names, or the existing group it names.
fn subnet_group_name(set: &ManifestSet, m: &Manifest<ReplicationGroupSpec>) -> Option<String> {
    match &m.spec.subnet_group {
        Some(name) => set
            .cache_subnet_groups
            .iter()
            .find(|g| &g.metadata.name == name)
            .map(|g| g.spec.aws_name(&g.metadata).to_string()),
        None => m.spec.subnet_group_name.clone(),
    }
}

fn enabled(on: bool) -> String {
    if on { "enabled" } else { "disabled" }.to_string()
}

fn num(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// `7.1.0` → `7.1`: ElastiCache reports the patch level, manifests name major.minor.
fn major_minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// How long a replacement waits for ElastiCache to finish deleting the old group.
const DELETE_WAIT: Duration = Duration::from_secs(30 * 60);

/// Deletes a replication group (no final snapshot: the manifest allowed replacement) and
/// waits until ElastiCache no longer knows it, so the ID can be used again.
async fn delete_and_wait(
    ec: &aws_sdk_elasticache::Client,
    poll: Duration,
    id: &str,
) -> Result<(), ReconcileError> {
    ec.delete_replication_group()
        .replication_group_id(id)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("elasticache:DeleteReplicationGroup", e))?;
    info!(replication_group = %id, "deleting replication group, to replace it");
    let started = Instant::now();
    loop {
        let out = ec
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
            Ok(_) => tokio::time::sleep(poll).await,
        }
    }
}

#[async_trait::async_trait]
impl Resource for Unit {
    type Live = Live;
    type Observed = Observed;
    type Doc = Doc;

    async fn read(
        cx: &Cx<'_>,
        _manifests: &[Manifest<ReplicationGroupSpec>],
    ) -> Result<Live, ReconcileError> {
        let ec = &cx.aws().elasticache;
        let groups = ec
            .describe_replication_groups()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| AwsError::from_sdk("elasticache:DescribeReplicationGroups", e))?;
        let clusters = ec
            .describe_cache_clusters()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| AwsError::from_sdk("elasticache:DescribeCacheClusters", e))?;
        Ok(Live { groups, clusters })
    }

    async fn observe(
        cx: &Cx<'_>,
        m: &Manifest<ReplicationGroupSpec>,
        live: &Live,
    ) -> Result<Observed, ReconcileError> {
        let id = m.spec.aws_name(&m.metadata);
        let security_groups = match &m.spec.security_groups {
            Some(sel) => network::resolve(cx, Target::SecurityGroups, sel).await?,
            None => Vec::new(),
        };
        let group = live
            .groups
            .iter()
            .find(|g| g.replication_group_id() == Some(id) && g.status() != Some("deleting"))
            .cloned();
        let primary = group.as_ref().and_then(|g| {
            let first = g.member_clusters().first()?;
            live.clusters
                .iter()
                .find(|c| c.cache_cluster_id() == Some(first.as_str()))
                .cloned()
        });
        let tags = match group.as_ref().and_then(|g| g.arn()) {
            Some(arn) => super::elasticache::tags_of(cx, arn).await?,
            None => Vec::new(),
        };
        Ok(Observed {
            group,
            primary,
            tags,
            security_groups,
        })
    }

    fn fields(obs: &Observed) -> Vec<(&'static str, String)> {
        let Some(ng) = obs.group.as_ref().and_then(|g| g.node_groups().first()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(e) = ng.primary_endpoint() {
            if let Some(a) = e.address() {
                out.push(("primaryEndpoint.address", a.to_string()));
            }
            if let Some(p) = e.port() {
                out.push(("primaryEndpoint.port", p.to_string()));
            }
        }
        if let Some(a) = ng.reader_endpoint().and_then(|e| e.address()) {
            out.push(("readerEndpoint.address", a.to_string()));
        }
        out
    }

    fn ownership(obs: &Observed) -> Option<Ownership> {
        obs.group.as_ref().map(|_| {
            Ownership::from_tags(
                obs.tags
                    .iter()
                    .filter_map(|t| Some((t.key()?, t.value()?))),
            )
        })
    }

    fn desired(set: &ManifestSet, m: &Manifest<ReplicationGroupSpec>, obs: &Observed) -> Doc {
        let s = &m.spec;
        let observable = obs.observable(m);
        Doc {
            description: description(m),
            engine: Some(s.engine.as_str().to_string()),
            engine_version: observable
                .engine_version
                .then(|| s.engine_version.clone()),
            node_type: Some(s.node_type.clone()),
            num_cache_clusters: s.num_cache_clusters,
            automatic_failover: enabled(s.automatic_failover),
            multi_az: enabled(s.multi_az),
            port: i32::from(s.port.unwrap_or(DEFAULT_PORT)),
            at_rest_encryption: s.at_rest_encryption,
            transit_encryption: s.transit_encryption,
            snapshot_retention_limit: num(s.snapshot_retention_limit),
            security_groups: observable
                .security_groups
                .then(|| obs.security_groups.clone()),
            subnet_group: observable
                .subnet_group
                .then(|| subnet_group_name(set, m))
                .flatten(),
            tags: desired_tags(set, m),
        }
    }

    fn live(
        set: &ManifestSet,
        m: &Manifest<ReplicationGroupSpec>,
        obs: &Observed,
    ) -> Option<Doc> {
        let rg = obs.group.as_ref()?;
        let primary = obs.primary.as_ref();
        let observable = obs.observable(m);
        let port = rg
            .node_groups()
            .first()
            .and_then(|n| n.primary_endpoint())
            .and_then(|e| e.port())
            .or_else(|| rg.configuration_endpoint().and_then(|e| e.port()));
        let security_groups = observable.security_groups.then(|| {
            let mut sgs: Vec<String> = primary
                .map(|c| {
                    c.security_groups()
                        .iter()
                        .filter_map(|g| g.security_group_id().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            sgs.sort();
            sgs
        });
        let tags = obs.tags.iter().filter_map(|t| Some((t.key()?, t.value()?)));
        Some(Doc {
            description: rg.description().unwrap_or_default().to_string(),
            engine: rg
                .engine()
                .or_else(|| primary.and_then(|c| c.engine()))
                .map(str::to_string),
            engine_version: observable
                .engine_version
                .then(|| primary.and_then(|c| c.engine_version()).map(major_minor))
                .flatten(),
            node_type: rg.cache_node_type().map(str::to_string),
            num_cache_clusters: u32::try_from(rg.member_clusters().len()).unwrap_or(u32::MAX),
            automatic_failover: rg
                .automatic_failover()
                .map_or("disabled", |a| a.as_str())
                .to_string(),
            multi_az: rg.multi_az().map_or("disabled", |a| a.as_str()).to_string(),
            port: port.unwrap_or(i32::from(DEFAULT_PORT)),
            at_rest_encryption: rg.at_rest_encryption_enabled().unwrap_or(false),
            transit_encryption: rg.transit_encryption_enabled().unwrap_or(false),
            snapshot_retention_limit: rg.snapshot_retention_limit().unwrap_or(0),
            security_groups,
            subnet_group: observable
                .subnet_group
                .then(|| primary.and_then(|c| c.cache_subnet_group_name()))
                .flatten()
                .map(str::to_string),
            tags: managed_tags(tags, &desired_tags(set, m)),
        })
    }

    fn aws_id(_set: &ManifestSet, m: &Manifest<ReplicationGroupSpec>, obs: &Observed) -> String {
        obs.group
            .as_ref()
            .and_then(|g| g.arn())
            .unwrap_or(m.spec.aws_name(&m.metadata))
            .to_string()
    }

    fn replacement(desired: &Doc, live: &Doc) -> (Vec<&'static str>, &'static str) {
        let fixed = [
            ("engine", desired.engine != live.engine),
            ("port", desired.port != live.port),
            (
                "atRestEncryption",
                desired.at_rest_encryption != live.at_rest_encryption,
            ),
            (
                "transitEncryption",
                desired.transit_encryption != live.transit_encryption,
            ),
            ("subnetGroup", desired.subnet_group != live.subnet_group),
        ];
        (
            super::unit::differing(&fixed),
            "replication group (its data is lost unless restored from a snapshot)",
        )
    }

    fn problems(m: &Manifest<ReplicationGroupSpec>, obs: &Observed) -> Vec<Problem> {
        let Some(rg) = &obs.group else {
            return Vec::new();
        };
        let ignored = ignored_fields(&m.metadata)
            .iter()
            .any(|f| f == "numCacheClusters");
        let live = u32::try_from(rg.member_clusters().len()).unwrap_or(u32::MAX);
        if ignored || live == m.spec.num_cache_clusters {
            return Vec::new();
        }
        vec![Problem::requirement(
            "changing numCacheClusters (adding or removing replicas) is not supported yet",
        )]
    }

    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<ReplicationGroupSpec>,
        obs: &Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        let Doc {
            description,
            engine,
            engine_version,
            node_type,
            num_cache_clusters,
            automatic_failover,
            multi_az,
            port,
            at_rest_encryption,
            transit_encryption,
            snapshot_retention_limit,
            security_groups,
            // Changes only by replacement; created with the name the manifest gives.
            subnet_group: _,
            tags,
        } = change.desired;
        let ec = &cx.aws().elasticache;
        let id = m.spec.aws_name(&m.metadata);
        let security_groups = match security_groups {
            Some(ids) => Some(network::settle(cx, m.spec.security_groups.as_ref(), ids).await?),
            None => None,
        };
        let existing = obs.group.as_ref().and_then(|g| g.arn()).zip(change.live);
        if let (true, Some(_)) = (change.replace, existing) {
            delete_and_wait(ec, cx.ctx.rollout_poll, id).await?;
        }
        let Some((arn, live)) = existing.filter(|_| !change.replace) else {
            let out = ec
                .create_replication_group()
                .replication_group_id(id)
                .replication_group_description(description)
                .set_engine(engine.clone())
                .set_engine_version(engine_version.clone())
                .set_cache_node_type(node_type.clone())
                .num_cache_clusters(num(*num_cache_clusters))
                .automatic_failover_enabled(automatic_failover == "enabled")
                .multi_az_enabled(multi_az == "enabled")
                .set_cache_subnet_group_name(subnet_group_name(cx.set, m))
                .set_security_group_ids(security_groups.filter(|s| !s.is_empty()))
                .port(*port)
                .at_rest_encryption_enabled(*at_rest_encryption)
                .transit_encryption_enabled(*transit_encryption)
                .snapshot_retention_limit(*snapshot_retention_limit)
                .set_tags(Some(super::elasticache::tags(tags)))
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
        // Engine, port, encryption and subnet group change only by replacement; numCacheClusters is a
        // problem plan reports (replicas are not added or removed yet).
        let mut req = ec
            .modify_replication_group()
            .replication_group_id(id)
            .apply_immediately(true);
        let mut modify = false;
        if change.differs(|d| &d.description) {
            req = req.replication_group_description(description);
            modify = true;
        }
        if change.differs(|d| &d.engine_version) {
            req = req.set_engine_version(engine_version.clone());
            modify = true;
        }
        if change.differs(|d| &d.node_type) {
            req = req.set_cache_node_type(node_type.clone());
            modify = true;
        }
        if change.differs(|d| &d.automatic_failover) {
            req = req.automatic_failover_enabled(automatic_failover == "enabled");
            modify = true;
        }
        if change.differs(|d| &d.multi_az) {
            req = req.multi_az_enabled(multi_az == "enabled");
            modify = true;
        }
        if change.differs(|d| &d.snapshot_retention_limit) {
            req = req.snapshot_retention_limit(*snapshot_retention_limit);
            modify = true;
        }
        if change.differs(|d| &d.security_groups) {
            req = req.set_security_group_ids(security_groups);
            modify = true;
        }
        if modify {
            req.send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticache:ModifyReplicationGroup", e))?;
            info!(replication_group = %id, "modified replication group");
        }
        super::elasticache::add_tags(cx, arn, &tags_to_set(tags, Some(&live.tags))).await?;
        Ok(Applied {
            aws_id: arn.to_string(),
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

    fn load(extra: &str) -> ManifestSet {
        let text = format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: ReplicationGroup\nmetadata: {{name: cache{extra}}}\nspec:\n  engineVersion: '7.1'\n  nodeType: cache.t2.small\n  numCacheClusters: 2\n  automaticFailover: true\n  securityGroups: {{ids: [sg-1]}}\n"
        );
        load_with_stack(&[("r.yaml".into(), text)]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn observed(set: &ManifestSet) -> Observed {
        let m = &set.replication_groups[0];
        let group = ReplicationGroup::builder()
            .replication_group_id("cache")
            .arn("arn:aws:elasticache:eu-west-1:123456789012:replicationgroup:cache")
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
        Observed {
            group: Some(group),
            primary: Some(primary),
            tags: crate::kinds::elasticache::tags(&desired_tags(set, m)),
            security_groups: vec!["sg-1".into()],
        }
    }

    fn changes(set: &ManifestSet, obs: &Observed) -> Vec<String> {
        let m = &set.replication_groups[0];
        let d = serde_json::to_value(Unit::desired(set, m, obs)).unwrap();
        let l = Unit::live(set, m, obs).map(|l| serde_json::to_value(l).unwrap());
        diff(&d, l.as_ref()).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn a_group_as_elasticache_describes_it_is_in_sync() {
        let set = load("");
        assert_eq!(changes(&set, &observed(&set)), Vec::<String>::new());
        assert!(Unit::problems(&set.replication_groups[0], &observed(&set)).is_empty());
    }

    #[test]
    fn node_type_and_security_groups_drift_is_named() {
        let set = load("");
        let mut obs = observed(&set);
        if let Some(g) = obs.group.as_mut() {
            g.cache_node_type = Some("cache.t2.medium".into());
        }
        if let Some(c) = obs.primary.as_mut() {
            c.security_groups = Some(vec![]);
        }
        assert_eq!(changes(&set, &obs), ["nodeType", "securityGroups"]);
    }

    #[test]
    fn member_clusters_that_do_not_show_version_or_groups_are_not_compared_on_them() {
        let set = load("");
        let mut obs = observed(&set);
        obs.primary = Some(CacheCluster::builder().cache_cluster_id("cache-001").build());
        let m = &set.replication_groups[0];
        let d = serde_json::to_value(Unit::desired(&set, m, &obs)).unwrap();
        assert!(d.get("engineVersion").is_none() && d.get("securityGroups").is_none());
        assert_eq!(changes(&set, &obs), Vec::<String>::new());
        obs.primary = None;
        assert_eq!(changes(&set, &obs), Vec::<String>::new());
    }

    #[test]
    fn replacement_fields_are_named_and_replica_counts_are_a_problem() {
        let set = load("");
        let m = &set.replication_groups[0];
        let obs = observed(&set);
        let live = Unit::live(&set, m, &obs).unwrap();
        let mut desired = Unit::desired(&set, m, &obs);
        desired.engine = Some("valkey".into());
        desired.node_type = Some("cache.t3.small".into());
        let (fixed, what) = Unit::replacement(&desired, &live);
        assert_eq!(fixed, ["engine"], "node types change in place");
        assert!(what.contains("data is lost"), "{what}");

        let mut one = observed(&set);
        if let Some(g) = one.group.as_mut() {
            g.member_clusters = Some(vec!["cache-001".into()]);
        }
        let problems = Unit::problems(m, &one);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("numCacheClusters"), "{problems:?}");
        let ignoring = load(", annotations: {mooring.dev/ignore: numCacheClusters}");
        assert!(Unit::problems(&ignoring.replication_groups[0], &one).is_empty());
    }

    /// A replacement deletes the old group, waits for ElastiCache to forget it (minutes on
    /// AWS; moto keeps it `deleting` for ever, hence canned responses), then creates the
    /// new one.
    #[tokio::test]
    async fn replacement_deletes_waits_until_the_old_group_is_gone_then_creates() {
        use aws_sdk_elasticache::Client;
        use aws_sdk_elasticache::operation::create_replication_group::CreateReplicationGroupOutput;
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
        let create = mock!(Client::create_replication_group)
            .match_requests(|r| {
                r.replication_group_id() == Some("cache")
                    && r.engine() == Some("valkey")
                    && r.security_group_ids() == ["sg-1"]
            })
            .then_output(|| {
                CreateReplicationGroupOutput::builder()
                    .replication_group(ReplicationGroup::builder().arn("arn:new").build())
                    .build()
            });
        let client = mock_client!(
            aws_sdk_elasticache,
            RuleMode::MatchAny,
            [&delete, &describe, &create]
        );
        let config = crate::aws::offline_config();
        let mut aws = crate::aws::Aws::from_config(&config).unwrap();
        aws.elasticache = client;
        let mut ctx = crate::reconcile::Context::new(aws);
        ctx.rollout_poll = Duration::from_millis(1);

        let set = load(", annotations: {mooring.dev/allow-replacement: 'true'}");
        let m = &set.replication_groups[0];
        let obs = observed(&set);
        let live = Unit::live(&set, m, &obs).unwrap();
        let mut desired = Unit::desired(&set, m, &obs);
        desired.engine = Some("valkey".into());
        let cache = crate::reconcile::PassCache::default();
        let cx = Cx {
            ctx: &ctx,
            set: &set,
            cache: &cache,
        };
        let change = Change {
            desired: &desired,
            live: Some(&live),
            replace: true,
        };
        let applied = Unit::apply(&cx, m, &obs, &change).await.unwrap();
        assert_eq!(applied.aws_id, "arn:new");
        assert_eq!(delete.num_calls(), 1);
        assert_eq!(
            describe.num_calls(),
            3,
            "polled until ElastiCache forgot the group"
        );
        assert_eq!(create.num_calls(), 1, "created again, as the manifest says");
    }

    /// `subnetGroup` names a CacheSubnetGroup manifest: a dependency, created first, and
    /// the group is placed in it under its ElastiCache name.
    #[test]
    fn a_subnet_group_manifest_is_a_dependency_and_lends_its_aws_name() {
        let rg = "apiVersion: mooring.dev/v1alpha1\nkind: ReplicationGroup\nmetadata: {name: cache}\nspec:\n  engineVersion: '7.1'\n  nodeType: cache.t2.small\n  numCacheClusters: 1\n  subnetGroup: private\n";
        let group = "apiVersion: mooring.dev/v1alpha1\nkind: CacheSubnetGroup\nmetadata: {name: private}\nspec:\n  cacheSubnetGroupName: cache-private\n  subnets: {ids: [subnet-1]}\n";
        let set = load_with_stack(&[("r.yaml".into(), rg.into()), ("g.yaml".into(), group.into())])
            .unwrap_or_else(|e| panic!("{e}"));
        let m = &set.replication_groups[0];
        assert_eq!(
            Unit::dependencies(m, &set),
            [(Kind::CacheSubnetGroup, "private".to_string())]
        );
        assert_eq!(subnet_group_name(&set, m).as_deref(), Some("cache-private"));

        // A group in another subnet group is replaced, never moved in place (ElastiCache
        // cannot); a member cluster that does not show its subnet group is not compared.
        let mut obs = observed(&set);
        if let Some(c) = obs.primary.as_mut() {
            c.cache_subnet_group_name = Some("default".into());
        }
        let desired = Unit::desired(&set, m, &obs);
        let live = Unit::live(&set, m, &obs).unwrap();
        assert_eq!(desired.subnet_group.as_deref(), Some("cache-private"));
        assert_eq!(Unit::replacement(&desired, &live).0, ["subnetGroup"]);
        if let Some(c) = obs.primary.as_mut() {
            c.cache_subnet_group_name = Some("cache-private".into());
        }
        let live = Unit::live(&set, m, &obs).unwrap();
        assert!(Unit::replacement(&Unit::desired(&set, m, &obs), &live).0.is_empty());
        if let Some(c) = obs.primary.as_mut() {
            c.cache_subnet_group_name = None;
        }
        assert_eq!(Unit::desired(&set, m, &obs).subnet_group, None, "not shown: not compared");

        // An existing group by its ElastiCache name is neither.
        let existing = rg.replace("subnetGroup: private", "subnetGroupName: legacy-private");
        let set = load_with_stack(&[("r.yaml".into(), existing)]).unwrap_or_else(|e| panic!("{e}"));
        let m = &set.replication_groups[0];
        assert!(Unit::dependencies(m, &set).is_empty());
        assert_eq!(subnet_group_name(&set, m).as_deref(), Some("legacy-private"));

        // A manifest that is not there, or both fields: where, and why.
        let errs = |text: String| -> Vec<String> {
            load_with_stack(&[("r.yaml".into(), text)])
                .unwrap_err()
                .0
                .iter()
                .map(|e| e.to_string())
                .collect()
        };
        let missing = errs(rg.to_string());
        assert!(
            missing.iter().any(|e| e.starts_with("r.yaml:8:") && e.contains("spec.subnetGroup") && e.contains("private")),
            "{missing:#?}"
        );
        let both = errs(rg.replace(
            "subnetGroup: private",
            "subnetGroup: private\n  subnetGroupName: legacy",
        ));
        assert!(
            both.iter().any(|e| e.contains("spec.subnetGroup: set `subnetGroup`")),
            "{both:#?}"
        );
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
