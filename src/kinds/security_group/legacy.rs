//! VPC security groups (`kind: SecurityGroup`).
//!
//! Reads: one DescribeSecurityGroups for mooring's groups (by ownership tag: how a group is
//! found first, so a renamed group is still its manifest's) and one for the manifests'
//! names (a group to adopt). Rules are compared as a set, one
//! entry per (protocol, ports, peer), the way EC2 stores them; a group's rules are all
//! mooring's, so a rule added by hand is drift and is revoked. Rule descriptions are set
//! when a rule is added and not compared.
//!
//! Name, description and VPC cannot change in place: such a change is planned as a replacement,
//! refused (the rules and tags are still brought in line) unless the manifest allows it.

pub mod spec;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{
    IpPermission, IpRange, ResourceType, SecurityGroup, Tag, TagSpecification, UserIdGroupPair,
};
use serde_json::{Value, json};
use tracing::info;

use super::service::network::{
    Resolver, describe_security_groups, group_owner, mooring_groups, owners,
};
use super::{
    live_tags_doc, owner_name, ownership_conflict, replacement, replacing, tags_doc, tags_to_set,
};
use crate::aws::AwsError;
use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::security_group::{Peer, SecurityGroupRule, SecurityGroupSpec};
use crate::manifest::{Kind, Manifest, ManifestSet, TAG_RESOURCE, owned_tags};
use crate::reconcile::diff::diff_managed;
use crate::reconcile::{
    Action, Applied, Context, Owned, Planned, ReconcileError, Reconciler, ResourcePlan,
};

/// Fields EC2 cannot change on an existing group.
const REPLACEMENT_FIELDS: [&str; 3] = ["groupName", "description", "vpcId"];

/// Reconciles `kind: SecurityGroup` manifests.
pub struct SecurityGroupReconciler {
    manifests: Vec<Manifest<SecurityGroupSpec>>,
}

impl SecurityGroupReconciler {
    /// The reconciler for the set's security groups (already ordered so that a group
    /// comes after the groups its rules name).
    pub fn new(set: &ManifestSet) -> Self {
        SecurityGroupReconciler {
            manifests: set.security_groups.clone(),
        }
    }
}

/// The other end of a rule, as EC2 identifies it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PeerId {
    Cidr(String),
    Group(String),
    /// A `SecurityGroup` manifest whose group does not exist yet.
    Pending(String),
    /// An IPv6 block: manifests cannot name one, so a live one is drift (and revoked).
    Ipv6(String),
    /// A managed prefix list: likewise.
    PrefixList(String),
}

/// One rule as EC2 stores it: protocol (`tcp`, `udp`, `icmp`, `-1`), port range, peer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rule {
    protocol: String,
    from: i32,
    to: i32,
    peer: PeerId,
    description: Option<String>,
}

impl Rule {
    /// The identity EC2 matches rules by (descriptions aside).
    fn key(&self) -> (String, i32, i32, PeerId) {
        (self.protocol.clone(), self.from, self.to, self.peer.clone())
    }

    /// How plan shows the rule: `tcp 443 0.0.0.0/0`, `all sg-0abc`.
    fn shown(&self) -> String {
        let protocol = if self.protocol == "-1" {
            "all"
        } else {
            &self.protocol
        };
        let ports = match (self.from, self.to) {
            (-1, _) => String::new(),
            (a, b) if a == b => format!(" {a}"),
            (a, b) => format!(" {a}-{b}"),
        };
        let peer = match &self.peer {
            PeerId::Cidr(c) => c.clone(),
            PeerId::Group(g) => g.clone(),
            PeerId::Pending(name) => format!("(SecurityGroup/{name}, once created)"),
            PeerId::Ipv6(c) => format!("{c} (IPv6)"),
            PeerId::PrefixList(p) => format!("{p} (prefix list)"),
        };
        format!("{protocol}{ports} {peer}")
    }

    fn permission(&self) -> IpPermission {
        let mut p = IpPermission::builder().ip_protocol(&self.protocol);
        if self.protocol != "-1" {
            p = p.from_port(self.from).to_port(self.to);
        }
        match &self.peer {
            PeerId::Cidr(c) => p.ip_ranges(
                IpRange::builder()
                    .cidr_ip(c)
                    .set_description(self.description.clone())
                    .build(),
            ),
            PeerId::Group(g) => p.user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(g)
                    .set_description(self.description.clone())
                    .build(),
            ),
            PeerId::Ipv6(c) => p.ipv6_ranges(
                aws_sdk_ec2::types::Ipv6Range::builder()
                    .cidr_ipv6(c)
                    .build(),
            ),
            PeerId::PrefixList(id) => p.prefix_list_ids(
                aws_sdk_ec2::types::PrefixListId::builder()
                    .prefix_list_id(id)
                    .build(),
            ),
            PeerId::Pending(_) => p,
        }
        .build()
    }
}

/// The rules a manifest asks for, with manifest names resolved through `groups`
/// (`SecurityGroup/name` → ID); `own` is the group's own ID when it exists.
fn desired_rules(
    rules: &[SecurityGroupRule],
    groups: &BTreeMap<String, String>,
    own: (&str, Option<&str>),
) -> BTreeSet<Rule> {
    rules
        .iter()
        .filter_map(|r| {
            let (from, to) = r.ports();
            let peer = match r.peer()? {
                Peer::Cidr(c) => PeerId::Cidr(c.to_string()),
                Peer::Id(id) => PeerId::Group(id.to_string()),
                Peer::Manifest(name) if name == own.0 => own.1.map_or_else(
                    || PeerId::Pending(name.into()),
                    |id| PeerId::Group(id.into()),
                ),
                Peer::Manifest(name) => groups
                    .get(&format!("{}/{name}", Kind::SecurityGroup))
                    .map_or_else(
                        || PeerId::Pending(name.into()),
                        |id| PeerId::Group(id.clone()),
                    ),
            };
            Some(Rule {
                protocol: r.ip_protocol.as_ec2().to_string(),
                from,
                to,
                peer,
                description: r.description.clone(),
            })
        })
        .collect()
}

/// The rules EC2 holds, one per peer.
fn live_rules(permissions: &[IpPermission]) -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for p in permissions {
        let protocol = match p.ip_protocol().unwrap_or("-1") {
            "6" => "tcp",
            "17" => "udp",
            "1" => "icmp",
            other => other,
        }
        .to_string();
        let (from, to) = if protocol == "-1" {
            (-1, -1)
        } else {
            (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1))
        };
        let rule = |peer| Rule {
            protocol: protocol.clone(),
            from,
            to,
            peer,
            description: None,
        };
        for r in p.ip_ranges() {
            if let Some(c) = r.cidr_ip() {
                out.insert(rule(PeerId::Cidr(c.to_string())));
            }
        }
        for g in p.user_id_group_pairs() {
            if let Some(id) = g.group_id() {
                out.insert(rule(PeerId::Group(id.to_string())));
            }
        }
        for r in p.ipv6_ranges() {
            if let Some(c) = r.cidr_ipv6() {
                out.insert(rule(PeerId::Ipv6(c.to_string())));
            }
        }
        for l in p.prefix_list_ids() {
            if let Some(id) = l.prefix_list_id() {
                out.insert(rule(PeerId::PrefixList(id.to_string())));
            }
        }
    }
    out
}

fn shown(rules: &BTreeSet<Rule>) -> Value {
    let mut v: Vec<String> = rules.iter().map(Rule::shown).collect();
    v.sort();
    v.dedup();
    json!(v)
}

fn desired_tags(m: &Manifest<SecurityGroupSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::SecurityGroup, m.name(), &m.spec.tags)
}

struct Observed {
    manifest: Manifest<SecurityGroupSpec>,
    vpc_id: String,
    id: Option<String>,
    ingress: (BTreeSet<Rule>, BTreeSet<Rule>),
    egress: Option<(BTreeSet<Rule>, BTreeSet<Rule>)>,
}

/// Desired and live rules of one direction, descriptions dropped from the live side's
/// comparison key.
fn differences(desired: &BTreeSet<Rule>, live: &BTreeSet<Rule>) -> (Vec<Rule>, Vec<Rule>) {
    let live_keys: BTreeSet<_> = live.iter().map(Rule::key).collect();
    let desired_keys: BTreeSet<_> = desired.iter().map(Rule::key).collect();
    let add = desired
        .iter()
        .filter(|r| !live_keys.contains(&r.key()))
        .cloned()
        .collect();
    let remove = live
        .iter()
        .filter(|r| !desired_keys.contains(&r.key()))
        .cloned()
        .collect();
    (add, remove)
}

#[async_trait::async_trait]
impl Reconciler for SecurityGroupReconciler {
    fn kind(&self) -> Kind {
        Kind::SecurityGroup
    }

    fn dependencies(&self, name: &str) -> Vec<(Kind, String)> {
        let mut deps: Vec<(Kind, String)> = self
            .manifests
            .iter()
            .filter(|m| m.name() == name)
            .flat_map(|m| m.spec.references())
            .filter(|r| *r != name)
            .map(|r| (Kind::SecurityGroup, r.to_string()))
            .collect();
        deps.sort();
        deps.dedup();
        deps
    }

    async fn owned(&self, ctx: &Context) -> Option<Result<Vec<Owned>, ReconcileError>> {
        Some(
            mooring_groups(&ctx.aws)
                .await
                .map_err(Into::into)
                .map(|groups| {
                    groups
                        .iter()
                        .filter_map(|g| {
                            Some(Owned {
                                name: owner_name(
                                    Kind::SecurityGroup,
                                    g.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))),
                                )?,
                                aws_id: g.group_id()?.to_string(),
                                scope: None,
                            })
                        })
                        .collect()
                }),
        )
    }

    async fn delete(&self, ctx: &Context, owned: &Owned) -> Result<(), ReconcileError> {
        ctx.aws
            .ec2
            .delete_security_group()
            .group_id(&owned.aws_id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2:DeleteSecurityGroup", e))?;
        Ok(())
    }

    async fn plan(&self, ctx: &Context) -> Vec<(String, Result<Planned, ReconcileError>)> {
        if self.manifests.is_empty() {
            return Vec::new();
        }
        let mut resolver = Resolver::default();
        let names: Vec<String> = self
            .manifests
            .iter()
            .map(|m| m.spec.aws_name(&m.metadata).to_string())
            .collect();
        let read = async {
            let named = describe_security_groups(
                &ctx.aws,
                vec![
                    aws_sdk_ec2::types::Filter::builder()
                        .name("group-name")
                        .set_values(Some(names))
                        .build(),
                ],
            )
            .await?;
            let owned = mooring_groups(&ctx.aws).await?;
            Ok::<_, ReconcileError>((named, owned))
        }
        .await;
        let (named, owned) = match read {
            Ok(r) => r,
            Err(e) => {
                return self
                    .manifests
                    .iter()
                    .map(|m| (m.name().to_string(), Err(e.clone())))
                    .collect();
            }
        };
        let managed = owners(&owned);
        let mut out = Vec::new();
        for m in &self.manifests {
            let result = async {
                let vpc_id = resolver.vpc_id(&ctx.aws, &m.spec.vpc).await?;
                let name = m.spec.aws_name(&m.metadata);
                // Ours by the ownership tag first: a renamed group, or one in another VPC,
                // is still this manifest's (and plans as a replacement), not a new one.
                let me = format!("{}/{}", Kind::SecurityGroup, m.name());
                let mine: Vec<&SecurityGroup> = owned
                    .iter()
                    .filter(|g| group_owner(g) == Some(me.as_str()))
                    .collect();
                if mine.len() > 1 {
                    let ids: Vec<&str> = mine.iter().filter_map(|g| g.group_id()).collect();
                    return Err(ReconcileError::Ownership(format!(
                        "security groups {} all carry {TAG_RESOURCE}={me}; delete or untag all but one",
                        ids.join(", ")
                    )));
                }
                let live = mine.first().copied().or_else(|| {
                    named.iter().find(|g| {
                        g.group_name() == Some(name) && g.vpc_id() == Some(vpc_id.as_str())
                    })
                });
                plan_one(m, &vpc_id, live, &managed)
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
        let ec2 = &ctx.aws.ec2;
        let replace = replacing(planned);
        if let (true, Some(old)) = (replace, &obs.id) {
            ec2.delete_security_group()
                .group_id(old)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ec2:DeleteSecurityGroup", e))?;
            info!(security_group = %old, "deleted security group, to replace it");
        }
        let existing = obs.id.as_ref().filter(|_| !replace);
        let id = match existing {
            Some(id) => id.clone(),
            None => {
                let tags: Vec<Tag> = desired_tags(m)
                    .iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect();
                let out = ec2
                    .create_security_group()
                    .group_name(m.spec.aws_name(&m.metadata))
                    .description(m.spec.description(&m.metadata))
                    .vpc_id(&obs.vpc_id)
                    .tag_specifications(
                        TagSpecification::builder()
                            .resource_type(ResourceType::SecurityGroup)
                            .set_tags(Some(tags))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ec2:CreateSecurityGroup", e))?;
                let id = out.group_id().unwrap_or_default().to_string();
                info!(security_group = %id, "created security group");
                id
            }
        };
        // Groups named by rules may have been created earlier in this apply, and the
        // group's own ID is known now.
        let pending =
            |rules: &BTreeSet<Rule>| rules.iter().any(|r| matches!(r.peer, PeerId::Pending(_)));
        let needs_lookup =
            pending(&obs.ingress.0) || obs.egress.as_ref().is_some_and(|e| pending(&e.0));
        let groups = if needs_lookup {
            Resolver::default().managed_groups(&ctx.aws).await?.clone()
        } else {
            BTreeMap::new()
        };
        let own = (m.name(), Some(id.as_str()));
        let settle = |rules: &[SecurityGroupRule], planned: &BTreeSet<Rule>| {
            if !needs_lookup {
                return Ok(planned.clone());
            }
            let rules = desired_rules(rules, &groups, own);
            match rules.iter().find_map(|r| match &r.peer {
                PeerId::Pending(name) => Some(name.clone()),
                _ => None,
            }) {
                Some(name) => Err(ReconcileError::Dependency(format!("SecurityGroup/{name}"))),
                None => Ok(rules),
            }
        };

        let ingress = settle(&m.spec.ingress, &obs.ingress.0)?;
        let live_ingress = match existing {
            Some(_) => obs.ingress.1.clone(),
            None => BTreeSet::new(),
        };
        let (add, remove) = differences(&ingress, &live_ingress);
        if !add.is_empty() {
            ec2.authorize_security_group_ingress()
                .group_id(&id)
                .set_ip_permissions(Some(add.iter().map(Rule::permission).collect()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ec2:AuthorizeSecurityGroupIngress", e))?;
        }
        if !remove.is_empty() {
            ec2.revoke_security_group_ingress()
                .group_id(&id)
                .set_ip_permissions(Some(remove.iter().map(Rule::permission).collect()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ec2:RevokeSecurityGroupIngress", e))?;
        }
        if let (Some(rules), Some((planned_egress, mut live))) =
            (m.spec.egress.as_deref(), obs.egress.clone())
        {
            if existing.is_none() {
                // EC2 gives a new group "all traffic to anywhere"; it goes unless asked for.
                live = live_rules(&[IpPermission::builder()
                    .ip_protocol("-1")
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build()]);
            }
            let egress = settle(rules, &planned_egress)?;
            let (add, remove) = differences(&egress, &live);
            if !add.is_empty() {
                ec2.authorize_security_group_egress()
                    .group_id(&id)
                    .set_ip_permissions(Some(add.iter().map(Rule::permission).collect()))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ec2:AuthorizeSecurityGroupEgress", e))?;
            }
            if !remove.is_empty() {
                ec2.revoke_security_group_egress()
                    .group_id(&id)
                    .set_ip_permissions(Some(remove.iter().map(Rule::permission).collect()))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ec2:RevokeSecurityGroupEgress", e))?;
            }
        }
        let tags = tags_to_set(&planned.plan.changes);
        if existing.is_some() && !tags.is_empty() {
            ec2.create_tags()
                .resources(&id)
                .set_tags(Some(
                    tags.iter()
                        .map(|(k, v)| Tag::builder().key(k).value(v).build())
                        .collect(),
                ))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ec2:CreateTags", e))?;
        }
        Ok(Applied {
            aws_id: id,
            rollout: None,
        })
    }
}

/// Plans one group: pure, given what was read.
fn plan_one(
    m: &Manifest<SecurityGroupSpec>,
    vpc_id: &str,
    live: Option<&SecurityGroup>,
    managed: &BTreeMap<String, String>,
) -> Result<Planned, ReconcileError> {
    let name = m.spec.aws_name(&m.metadata);
    if let Some(conflict) = live.and_then(|g| {
        ownership_conflict(
            Kind::SecurityGroup,
            &m.metadata,
            g.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))),
        )
    }) {
        return Err(ReconcileError::Ownership(format!(
            "security group {name}: {conflict}"
        )));
    }
    let id = live.and_then(|g| g.group_id());
    let own = (m.name(), id);
    let ingress = desired_rules(&m.spec.ingress, managed, own);
    let egress = m
        .spec
        .egress
        .as_deref()
        .map(|rules| desired_rules(rules, managed, own));
    let live_ingress = live.map(|g| live_rules(g.ip_permissions()));
    let live_egress = live.map(|g| live_rules(g.ip_permissions_egress()));

    let mut desired = json!({
        "groupName": name,
        "description": m.spec.description(&m.metadata),
        "vpcId": vpc_id,
        "ingress": shown(&ingress),
        "tags": tags_doc(&desired_tags(m)),
    });
    let live_doc = live.map(|g| {
        let mut doc = json!({
            "groupName": g.group_name(),
            "description": g.description(),
            "vpcId": g.vpc_id(),
            "ingress": shown(live_ingress.as_ref().unwrap_or(&BTreeSet::new())),
            "tags": live_tags_doc(
                g.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))),
                &desired_tags(m),
            ),
        });
        if egress.is_some() {
            doc["egress"] = shown(live_egress.as_ref().unwrap_or(&BTreeSet::new()));
        }
        doc
    });
    if let Some(e) = &egress {
        desired["egress"] = shown(e);
    }
    let changes = diff_managed(&m.metadata, &desired, live_doc.as_ref());
    let action = match (live, changes.is_empty()) {
        (None, _) => Action::Create,
        (Some(_), true) => Action::None,
        (Some(_), false) => Action::Update,
    };
    let (action, problems) = replacement(
        &m.metadata,
        action,
        &changes,
        &REPLACEMENT_FIELDS,
        "security group (EC2 refuses to delete one that is still in use)",
    );
    Ok(Planned {
        plan: ResourcePlan {
            kind: Kind::SecurityGroup,
            name: m.name().to_string(),
            aws_id: id.unwrap_or(name).to_string(),
            action,
            changes,
            rollout: None,
            problems,
        },
        observed: Box::new(Observed {
            manifest: m.clone(),
            vpc_id: vpc_id.to_string(),
            id: id.map(str::to_string),
            ingress: (ingress, live_ingress.unwrap_or_default()),
            egress: egress.map(|e| (e, live_egress.unwrap_or_default())),
        }),
    })
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;

    fn manifest(spec: &str) -> Manifest<SecurityGroupSpec> {
        let text = format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroup\nmetadata: {{name: app}}\nspec:\n  vpc: default\n{spec}"
        );
        let lb = "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroup\nmetadata: {name: alb}\nspec:\n  vpc: default\n";
        load_with_stack(&[("a.yaml".into(), lb.into()), ("sg.yaml".into(), text)])
            .unwrap_or_else(|e| panic!("{e}"))
            .security_group("app")
            .cloned()
            .expect("app")
    }

    fn ec2_group(ingress: Vec<IpPermission>, egress: Vec<IpPermission>) -> SecurityGroup {
        let m = manifest("");
        SecurityGroup::builder()
            .group_id("sg-app")
            .group_name("app")
            .description("Managed by mooring (app)")
            .vpc_id("vpc-1")
            .set_ip_permissions(Some(ingress))
            .set_ip_permissions_egress(Some(egress))
            .set_tags(Some(
                desired_tags(&m)
                    .iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .build()
    }

    fn managed() -> BTreeMap<String, String> {
        BTreeMap::from([("SecurityGroup/alb".to_string(), "sg-alb".to_string())])
    }

    #[test]
    fn ipv6_and_prefix_list_rules_are_drift_that_can_be_revoked() {
        let m = manifest("");
        let live = ec2_group(
            vec![
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(443)
                    .to_port(443)
                    .ipv6_ranges(
                        aws_sdk_ec2::types::Ipv6Range::builder()
                            .cidr_ipv6("::/0")
                            .build(),
                    )
                    .prefix_list_ids(
                        aws_sdk_ec2::types::PrefixListId::builder()
                            .prefix_list_id("pl-1")
                            .build(),
                    )
                    .build(),
            ],
            vec![],
        );
        let p = plan_one(&m, "vpc-1", Some(&live), &managed()).unwrap();
        assert_eq!(
            p.plan.changes[0].live,
            json!(["tcp 443 ::/0 (IPv6)", "tcp 443 pl-1 (prefix list)"])
        );
        let obs = p.observed.downcast_ref::<Observed>().unwrap();
        let (_, remove) = differences(&obs.ingress.0, &obs.ingress.1);
        let perms: Vec<IpPermission> = remove.iter().map(Rule::permission).collect();
        assert_eq!(perms[0].ipv6_ranges()[0].cidr_ipv6(), Some("::/0"));
        assert_eq!(perms[1].prefix_list_ids()[0].prefix_list_id(), Some("pl-1"));
    }

    #[test]
    fn rules_compare_as_sets_of_protocol_ports_and_peer() {
        let m = manifest(
            "  ingress:\n    - {port: 3000, securityGroup: alb, description: from the ALB}\n    - {port: 3000, securityGroup: app}\n",
        );
        // EC2 groups both peers of one port range into one permission, with a description.
        let live = ec2_group(
            vec![
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(3000)
                    .to_port(3000)
                    .user_id_group_pairs(
                        UserIdGroupPair::builder()
                            .group_id("sg-app")
                            .description("x")
                            .build(),
                    )
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-alb").build())
                    .build(),
            ],
            vec![
                IpPermission::builder()
                    .ip_protocol("-1")
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build(),
            ],
        );
        let p = plan_one(&m, "vpc-1", Some(&live), &managed()).unwrap();
        assert_eq!(p.plan.action, Action::None, "{:?}", p.plan.changes);

        // A hand-added rule and a lost one are both named, with the peer.
        let drifted = ec2_group(
            vec![
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(22)
                    .to_port(22)
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build(),
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(3000)
                    .to_port(3000)
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-app").build())
                    .build(),
            ],
            vec![],
        );
        let p = plan_one(&m, "vpc-1", Some(&drifted), &managed()).unwrap();
        assert_eq!(p.plan.action, Action::Update);
        assert_eq!(p.plan.changes.len(), 1, "{:?}", p.plan.changes);
        assert_eq!(p.plan.changes[0].field, "ingress");
        assert_eq!(
            p.plan.changes[0].live,
            json!(["tcp 22 0.0.0.0/0", "tcp 3000 sg-app"])
        );
        assert_eq!(
            p.plan.changes[0].desired,
            json!(["tcp 3000 sg-alb", "tcp 3000 sg-app"])
        );
        let obs = p.observed.downcast_ref::<Observed>().unwrap();
        let (add, remove) = differences(&obs.ingress.0, &obs.ingress.1);
        assert_eq!(
            add.iter().map(Rule::shown).collect::<Vec<_>>(),
            ["tcp 3000 sg-alb"]
        );
        assert_eq!(
            remove.iter().map(Rule::shown).collect::<Vec<_>>(),
            ["tcp 22 0.0.0.0/0"]
        );
    }

    #[test]
    fn groups_not_created_yet_show_as_pending_and_replacement_fields_are_refused() {
        let m = manifest(
            "  description: new words\n  ingress:\n    - {port: 3000, securityGroup: alb}\n",
        );
        let p = plan_one(&m, "vpc-1", None, &BTreeMap::new()).unwrap();
        assert_eq!(p.plan.action, Action::Create);
        let ingress = p
            .plan
            .changes
            .iter()
            .find(|c| c.field == "ingress")
            .unwrap();
        assert_eq!(
            ingress.desired,
            json!(["tcp 3000 (SecurityGroup/alb, once created)"])
        );
        let live = ec2_group(vec![], vec![]);
        let p = plan_one(&m, "vpc-1", Some(&live), &managed()).unwrap();
        assert!(p.plan.problems[0].contains("changing description needs a new security group"));
        // Managed egress is compared; unmanaged egress is not.
        let m = manifest("  egress: []\n");
        let live = ec2_group(
            vec![],
            vec![
                IpPermission::builder()
                    .ip_protocol("-1")
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build(),
            ],
        );
        let changes = plan_one(&m, "vpc-1", Some(&live), &managed())
            .unwrap()
            .plan
            .changes;
        assert_eq!(changes[0].field, "egress");
        assert_eq!(changes[0].live, json!(["all 0.0.0.0/0"]));
    }
}
