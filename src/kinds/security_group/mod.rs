//! VPC security groups (`kind: SecurityGroup`).
//!
//! Reads: mooring's groups (by ownership tag, one DescribeSecurityGroups per pass shared
//! with the kinds that name groups) and one DescribeSecurityGroups for the manifests' names
//! (a group to adopt). A group is found by its ownership tag first (this stack's, else one
//! tagged before stacks), so a renamed group is still its manifest's; then by name in its
//! VPC. Rules are compared as a set, one entry per (protocol, ports, peer), the way EC2
//! stores them; a group's rules are all mooring's, so a rule added by hand is drift and is
//! revoked. Rule descriptions are set when a rule is added and not compared.
//!
//! Name, description and VPC cannot change in place: such a change is planned as a
//! replacement, refused (the rules and tags are still brought in line) unless the manifest
//! allows it.

pub mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, SecurityGroup, Tag,
    TagSpecification, UserIdGroupPair,
};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::network::{self, describe_security_groups, group_ownership};
use super::ownership::{Owner, Ownership, managed_tags, owned_tags, tags_to_set};
use super::{Change, Declared, Reference, Resource};
use super::from::Field;
use crate::aws::AwsError;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet, TAG_RESOURCE};
use crate::reconcile::{Applied, Cx, Owned, ReconcileError};
use spec::{Peer, SecurityGroupRule, SecurityGroupSpec};

/// The `SecurityGroup` kind.
pub struct Unit;

impl Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeVpcs",
        "ec2:CreateSecurityGroup",
        "ec2:CreateTags",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:AuthorizeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:DeleteSecurityGroup",
    ];
    type State = ();

    const FIELDS: &'static [Field] = &[Field {
        name: "groupId",
        doc: "the security group's ID (`sg-…`)",
    }];

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!(
            "the group `{}` in VPC `{}`",
            m.spec.aws_name(&m.metadata),
            m.spec.vpc
        )
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        m.spec
            .rules()
            .filter_map(|(p, rule)| {
                let name = rule.security_group.as_deref()?;
                Some(Reference::new(
                    format!("{p}/securityGroup"),
                    Kind::SecurityGroup,
                    name,
                ))
            })
            .collect()
    }

}

/// The other end of a rule, as EC2 identifies it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerId {
    /// An IPv4 block.
    Cidr(String),
    /// A security group, by ID.
    Group(String),
    /// A `SecurityGroup` manifest whose group does not exist yet.
    Pending(String),
    /// An IPv6 block: manifests cannot name one, so a live one is drift (and revoked).
    Ipv6(String),
    /// A managed prefix list: likewise.
    PrefixList(String),
}

/// One rule as EC2 stores it: protocol (`tcp`, `udp`, `icmp`, `-1`), port range, peer.
/// Descriptions are not part of it: they are set when a rule is added, not compared. In
/// the document a rule is the string plan shows (`tcp 443 0.0.0.0/0`), and it orders by
/// that string, so plan lists rules as people read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Rule {
    /// EC2's protocol name (`-1`: all).
    pub protocol: String,
    /// First port (-1: none).
    pub from: i32,
    /// Last port (-1: none).
    pub to: i32,
    /// The other end.
    pub peer: PeerId,
}

impl Ord for Rule {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.shown(), &self.protocol, self.from, self.to, &self.peer).cmp(&(
            other.shown(),
            &other.protocol,
            other.from,
            other.to,
            &other.peer,
        ))
    }
}

impl PartialOrd for Rule {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl From<Rule> for String {
    fn from(r: Rule) -> String {
        r.shown()
    }
}

impl TryFrom<String> for Rule {
    type Error = String;

    /// Reads back what [`Rule::shown`] writes.
    fn try_from(s: String) -> Result<Rule, String> {
        let bad = || format!("`{s}` is not a security group rule");
        let (protocol, rest) = s.split_once(' ').ok_or_else(bad)?;
        let protocol = if protocol == "all" { "-1" } else { protocol }.to_string();
        let port = |p: &str| p.parse::<i32>().map_err(|_| bad());
        let (first, after) = rest.split_once(' ').unwrap_or((rest, ""));
        let is_ports = !first.is_empty()
            && first
                .trim_start_matches('-')
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'-');
        let ((from, to), peer) = if is_ports && !after.is_empty() {
            let range = match first.split_once('-').filter(|(a, _)| !a.is_empty()) {
                Some((a, b)) => (port(a)?, port(b)?),
                None => (port(first)?, port(first)?),
            };
            (range, after)
        } else {
            ((-1, -1), rest)
        };
        let peer = if let Some(c) = peer.strip_suffix(" (IPv6)") {
            PeerId::Ipv6(c.to_string())
        } else if let Some(p) = peer.strip_suffix(" (prefix list)") {
            PeerId::PrefixList(p.to_string())
        } else if let Some(name) = peer
            .strip_prefix("(SecurityGroup/")
            .and_then(|p| p.strip_suffix(", once created)"))
        {
            PeerId::Pending(name.to_string())
        } else if peer.starts_with("sg-") {
            PeerId::Group(peer.to_string())
        } else {
            PeerId::Cidr(peer.to_string())
        };
        Ok(Rule {
            protocol,
            from,
            to,
            peer,
        })
    }
}

impl Rule {
    /// How plan shows the rule: `tcp 443 0.0.0.0/0`, `all sg-0abc`.
    pub fn shown(&self) -> String {
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

    /// The rule in EC2's request form, with `description` when adding it (also used by
    /// `SecurityGroupIngress`, whose rules may be IPv6 or prefix lists).
    pub(crate) fn permission(&self, description: Option<&String>) -> IpPermission {
        let mut p = IpPermission::builder().ip_protocol(&self.protocol);
        if self.protocol != "-1" {
            p = p.from_port(self.from).to_port(self.to);
        }
        let description = description.cloned();
        match &self.peer {
            PeerId::Cidr(c) => p.ip_ranges(
                IpRange::builder()
                    .cidr_ip(c)
                    .set_description(description)
                    .build(),
            ),
            PeerId::Group(g) => p.user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(g)
                    .set_description(description)
                    .build(),
            ),
            PeerId::Ipv6(c) => p.ipv6_ranges(
                Ipv6Range::builder()
                    .cidr_ipv6(c)
                    .set_description(description)
                    .build(),
            ),
            PeerId::PrefixList(id) => p.prefix_list_ids(
                PrefixListId::builder()
                    .prefix_list_id(id)
                    .set_description(description)
                    .build(),
            ),
            PeerId::Pending(_) => p,
        }
        .build()
    }
}

/// A direction's rules.
pub type Rules = BTreeSet<Rule>;

/// The rules a manifest asks for, with their descriptions, manifest names resolved through
/// `groups` (manifest name → ID); `own` is the group's manifest name and its ID when it
/// exists.
fn rendered(
    rules: &[SecurityGroupRule],
    groups: &BTreeMap<String, String>,
    own: (&str, Option<&str>),
) -> BTreeMap<Rule, Option<String>> {
    let mut out = BTreeMap::new();
    for r in rules {
        let (from, to) = r.ports();
        let Some(peer) = r.peer() else { continue };
        let pending = |name: &str| PeerId::Pending(name.to_string());
        let peer = match peer {
            Peer::Cidr(c) => PeerId::Cidr(c.to_string()),
            Peer::Id(id) => PeerId::Group(id.to_string()),
            Peer::Manifest(name) if name == own.0 => {
                own.1.map_or_else(|| pending(name), |id| PeerId::Group(id.into()))
            }
            Peer::Manifest(name) => groups
                .get(name)
                .map_or_else(|| pending(name), |id| PeerId::Group(id.clone())),
        };
        let rule = Rule {
            protocol: r.ip_protocol.as_ec2().to_string(),
            from,
            to,
            peer,
        };
        out.entry(rule).or_insert_with(|| r.description.clone());
    }
    out
}

/// The rules EC2 holds, one per peer.
fn live_rules(permissions: &[IpPermission]) -> Rules {
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
        };
        let peers = p
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip().map(|c| PeerId::Cidr(c.into())))
            .chain(
                p.user_id_group_pairs()
                    .iter()
                    .filter_map(|g| g.group_id().map(|id| PeerId::Group(id.into()))),
            )
            .chain(
                p.ipv6_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ipv6().map(|c| PeerId::Ipv6(c.into()))),
            )
            .chain(
                p.prefix_list_ids()
                    .iter()
                    .filter_map(|l| l.prefix_list_id().map(|id| PeerId::PrefixList(id.into()))),
            );
        out.extend(peers.map(rule));
    }
    out
}

/// What EC2 gives a new group for egress: all traffic to anywhere.
fn default_egress() -> Rules {
    BTreeSet::from([Rule {
        protocol: "-1".into(),
        from: -1,
        to: -1,
        peer: PeerId::Cidr("0.0.0.0/0".into()),
    }])
}

/// The permissions to authorize (with the manifest's descriptions) and to revoke so that
/// `have` becomes `want`.
fn permissions(
    want: &Rules,
    have: &Rules,
    descriptions: &BTreeMap<Rule, Option<String>>,
) -> (Vec<IpPermission>, Vec<IpPermission>) {
    let add = want
        .difference(have)
        .map(|r| r.permission(descriptions.get(r).and_then(Option::as_ref)))
        .collect();
    let remove = have.difference(want).map(|r| r.permission(None)).collect();
    (add, remove)
}

fn pending(rules: &Rules) -> bool {
    rules.iter().any(|r| matches!(r.peer, PeerId::Pending(_)))
}

/// A security group in the shape plan compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// The name in EC2.
    pub group_name: String,
    /// The description (fixed at creation).
    pub description: String,
    /// The VPC.
    pub vpc_id: String,
    /// Inbound rules.
    pub ingress: Rules,
    /// Outbound rules, when the manifest manages them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Rules>,
    /// Tags the manifest manages.
    pub tags: BTreeMap<String, String>,
}

/// What one read finds for all of the kind's manifests.
pub struct Live {
    /// Groups with one of the manifests' names (a group to adopt).
    named: Vec<SecurityGroup>,
    /// Every group with mooring's ownership tag.
    mooring: Arc<Vec<SecurityGroup>>,
    /// This stack's groups, manifest name → ID.
    managed: BTreeMap<String, String>,
}

/// One group as observed.
pub struct Observed {
    /// The VPC's ID.
    vpc_id: String,
    /// The live group, when there is one.
    group: Option<SecurityGroup>,
    /// This stack's groups, manifest name → ID, that rules are resolved against.
    groups: BTreeMap<String, String>,
}

impl Observed {
    fn id(&self) -> Option<&str> {
        self.group.as_ref().and_then(|g| g.group_id())
    }
}

fn desired_tags(set: &ManifestSet, m: &Manifest<SecurityGroupSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::SecurityGroup, set.owner(), m.name(), &m.spec.tags)
}

fn ec2_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The live group a manifest names: by this stack's ownership tag first, so a renamed
/// group, or one in another VPC, is still this manifest's (and plans as a replacement);
/// else one tagged before stacks that has its name in its VPC; else by name in the VPC.
fn find<'a>(
    owner: Owner<'_>,
    m: &Manifest<SecurityGroupSpec>,
    vpc_id: &str,
    live: &'a Live,
) -> Result<Option<&'a SecurityGroup>, ReconcileError> {
    let me = format!("{}/{}", Kind::SecurityGroup, m.name());
    let tagged = |of: &dyn Fn(&Ownership) -> bool| -> Vec<&'a SecurityGroup> {
        live.mooring
            .iter()
            .filter(|g| {
                let o = group_ownership(g);
                o.resource.as_deref() == Some(me.as_str()) && of(&o)
            })
            .collect()
    };
    let name = m.spec.aws_name(&m.metadata);
    let mut mine = tagged(&|o| owner.owns(o));
    if mine.is_empty() {
        // Tagged before stacks (or, for an environment, by its stack before environments):
        // this manifest's only with its name, in its VPC (another stack's or
        // environment's older group of the same manifest name is not ours).
        mine = tagged(&|o| o.stack.is_none() || owner.claims(o))
            .into_iter()
            .filter(|g| g.group_name() == Some(name) && g.vpc_id() == Some(vpc_id))
            .collect();
    }
    if mine.len() > 1 {
        let ids: Vec<&str> = mine.iter().filter_map(|g| g.group_id()).collect();
        return Err(ReconcileError::Ownership(format!(
            "security groups {} all carry {TAG_RESOURCE}={me}; delete or untag all but one",
            ids.join(", ")
        )));
    }
    Ok(mine.first().copied().or_else(|| {
        live.named
            .iter()
            .find(|g| g.group_name() == Some(name) && g.vpc_id() == Some(vpc_id))
    }))
}

#[async_trait::async_trait]
impl Resource for Unit {
    type Live = Live;
    type Observed = Observed;
    type Doc = Doc;

    async fn read(
        cx: &Cx<'_>,
        manifests: &[Manifest<SecurityGroupSpec>],
    ) -> Result<Live, ReconcileError> {
        let names: Vec<String> = manifests
            .iter()
            .map(|m| m.spec.aws_name(&m.metadata).to_string())
            .collect();
        let named = describe_security_groups(
            cx.aws(),
            vec![
                Filter::builder()
                    .name("group-name")
                    .set_values(Some(names))
                    .build(),
            ],
        )
        .await?;
        let mooring = network::mooring_groups(cx).await?;
        let managed = network::managed_groups(cx).await?;
        Ok(Live {
            named,
            mooring,
            managed,
        })
    }

    async fn observe(
        cx: &Cx<'_>,
        m: &Manifest<SecurityGroupSpec>,
        live: &Live,
    ) -> Result<Observed, ReconcileError> {
        let vpc_id = network::vpc_id(cx, &m.spec.vpc).await?;
        let group = find(cx.set.owner(), m, &vpc_id, live)?.cloned();
        Ok(Observed {
            vpc_id,
            group,
            groups: live.managed.clone(),
        })
    }

    fn fields(obs: &Observed) -> Vec<(&'static str, String)> {
        obs.group
            .as_ref()
            .and_then(|g| g.group_id())
            .map(|id| vec![("groupId", id.to_string())])
            .unwrap_or_default()
    }

    fn ownership(obs: &Observed) -> Option<Ownership> {
        obs.group.as_ref().map(group_ownership)
    }

    fn desired(set: &ManifestSet, m: &Manifest<SecurityGroupSpec>, obs: &Observed) -> Doc {
        let own = (m.name(), obs.id());
        Doc {
            group_name: m.spec.aws_name(&m.metadata).to_string(),
            description: m.spec.description(&m.metadata),
            vpc_id: obs.vpc_id.clone(),
            ingress: rendered(&m.spec.ingress, &obs.groups, own)
                .into_keys()
                .collect(),
            egress: m
                .spec
                .egress
                .as_deref()
                .map(|rules| rendered(rules, &obs.groups, own).into_keys().collect()),
            tags: desired_tags(set, m),
        }
    }

    fn live(set: &ManifestSet, m: &Manifest<SecurityGroupSpec>, obs: &Observed) -> Option<Doc> {
        let g = obs.group.as_ref()?;
        let tags = g.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)));
        Some(Doc {
            group_name: g.group_name().unwrap_or_default().to_string(),
            description: g.description().unwrap_or_default().to_string(),
            vpc_id: g.vpc_id().unwrap_or_default().to_string(),
            ingress: live_rules(g.ip_permissions()),
            egress: m
                .spec
                .egress
                .as_ref()
                .map(|_| live_rules(g.ip_permissions_egress())),
            tags: managed_tags(tags, &desired_tags(set, m)),
        })
    }

    fn aws_id(_set: &ManifestSet, m: &Manifest<SecurityGroupSpec>, obs: &Observed) -> String {
        obs.id()
            .unwrap_or(m.spec.aws_name(&m.metadata))
            .to_string()
    }

    fn replacement(desired: &Doc, live: &Doc) -> (Vec<&'static str>, &'static str) {
        let fixed = [
            ("groupName", desired.group_name != live.group_name),
            ("description", desired.description != live.description),
            ("vpcId", desired.vpc_id != live.vpc_id),
        ];
        (
            super::unit::differing(&fixed),
            "security group (EC2 refuses to delete one that is still in use)",
        )
    }

    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<SecurityGroupSpec>,
        obs: &Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        let Doc {
            group_name,
            description,
            vpc_id,
            ingress,
            egress,
            tags,
        } = change.desired;
        let ec2 = &cx.aws().ec2;
        if let (true, Some(old)) = (change.replace, obs.id()) {
            ec2.delete_security_group()
                .group_id(old)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ec2:DeleteSecurityGroup", e))?;
            info!(security_group = %old, "deleted security group, to replace it");
        }
        let existing = obs.id().zip(change.live).filter(|_| !change.replace);
        let (id, live) = match existing {
            Some((id, live)) => (id.to_string(), Some(live)),
            None => {
                let out = ec2
                    .create_security_group()
                    .group_name(group_name)
                    .description(description)
                    .vpc_id(vpc_id)
                    .tag_specifications(
                        TagSpecification::builder()
                            .resource_type(ResourceType::SecurityGroup)
                            .set_tags(Some(ec2_tags(tags)))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ec2:CreateSecurityGroup", e))?;
                let id = out.group_id().unwrap_or_default().to_string();
                info!(security_group = %id, "created security group");
                (id, None)
            }
        };

        // Groups named by rules may have been created earlier in this apply, and the
        // group's own ID is known now.
        let needs_lookup = pending(ingress) || egress.as_ref().is_some_and(pending);
        let groups = if needs_lookup {
            network::managed_groups(cx).await?
        } else {
            obs.groups.clone()
        };
        let own = (m.name(), Some(id.as_str()));
        let settle = |planned: &Rules, rules: &[SecurityGroupRule]| {
            let now = rendered(rules, &groups, own);
            if !pending(planned) {
                return Ok((planned.clone(), now));
            }
            let settled: Rules = now.keys().cloned().collect();
            match settled.iter().find_map(|r| match &r.peer {
                PeerId::Pending(name) => Some(name.clone()),
                _ => None,
            }) {
                Some(name) => Err(ReconcileError::Dependency(format!("SecurityGroup/{name}"))),
                None => Ok((settled, now)),
            }
        };

        let (want, descriptions) = settle(ingress, &m.spec.ingress)?;
        let have = live.map(|l| l.ingress.clone()).unwrap_or_default();
        let (add, remove) = permissions(&want, &have, &descriptions);
        if !add.is_empty() {
            ec2.authorize_security_group_ingress()
                .group_id(&id)
                .set_ip_permissions(Some(add))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ec2:AuthorizeSecurityGroupIngress", e))?;
        }
        if !remove.is_empty() {
            ec2.revoke_security_group_ingress()
                .group_id(&id)
                .set_ip_permissions(Some(remove))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ec2:RevokeSecurityGroupIngress", e))?;
        }
        if let (Some(planned), Some(rules)) = (egress, m.spec.egress.as_deref()) {
            let (want, descriptions) = settle(planned, rules)?;
            let have = match live {
                Some(l) => l.egress.clone().unwrap_or_default(),
                // EC2 gives a new group "all traffic to anywhere"; it goes unless asked for.
                None => default_egress(),
            };
            let (add, remove) = permissions(&want, &have, &descriptions);
            if !add.is_empty() {
                ec2.authorize_security_group_egress()
                    .group_id(&id)
                    .set_ip_permissions(Some(add))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ec2:AuthorizeSecurityGroupEgress", e))?;
            }
            if !remove.is_empty() {
                ec2.revoke_security_group_egress()
                    .group_id(&id)
                    .set_ip_permissions(Some(remove))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ec2:RevokeSecurityGroupEgress", e))?;
            }
        }
        if let Some(live) = live {
            let missing = tags_to_set(tags, Some(&live.tags));
            if !missing.is_empty() {
                ec2.create_tags()
                    .resources(&id)
                    .set_tags(Some(ec2_tags(&missing)))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ec2:CreateTags", e))?;
            }
        }
        Ok(Applied {
            aws_id: id,
            rollout: None,
        })
    }

    async fn owned(cx: &Cx<'_>) -> Option<Result<Vec<Owned>, ReconcileError>> {
        let groups = match network::mooring_groups(cx).await {
            Ok(g) => g,
            Err(e) => return Some(Err(e.into())),
        };
        Some(Ok(groups
            .iter()
            .filter_map(|g| {
                Some(Owned {
                    name: group_ownership(g).name_in(cx.set.owner(), Kind::SecurityGroup)?,
                    aws_id: g.group_id()?.to_string(),
                    scope: None,
                })
            })
            .collect()))
    }

    async fn delete(cx: &Cx<'_>, owned: &Owned) -> Result<(), ReconcileError> {
        cx.aws()
            .ec2
            .delete_security_group()
            .group_id(&owned.aws_id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2:DeleteSecurityGroup", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;
    use crate::manifest::{MANAGED_BY, TAG_MANAGED_BY, TAG_STACK};
    use crate::reconcile::diff::diff;
    use serde_json::json;

    fn load(spec: &str) -> ManifestSet {
        let text = format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroup\nmetadata: {{name: app}}\nspec:\n  vpc: default\n{spec}"
        );
        let lb = "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroup\nmetadata: {name: alb}\nspec:\n  vpc: default\n";
        load_with_stack(&[("a.yaml".into(), lb.into()), ("sg.yaml".into(), text)])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn app(set: &ManifestSet) -> &Manifest<SecurityGroupSpec> {
        set.security_group("app").expect("app")
    }

    fn tagged(b: aws_sdk_ec2::types::builders::SecurityGroupBuilder, tags: &[(&str, &str)]) -> SecurityGroup {
        tags.iter()
            .fold(b, |b, (k, v)| b.tags(Tag::builder().key(*k).value(*v).build()))
            .build()
    }

    fn ec2_group(
        set: &ManifestSet,
        ingress: Vec<IpPermission>,
        egress: Vec<IpPermission>,
    ) -> SecurityGroup {
        SecurityGroup::builder()
            .group_id("sg-app")
            .group_name("app")
            .description("Managed by mooring (app)")
            .vpc_id("vpc-1")
            .set_ip_permissions(Some(ingress))
            .set_ip_permissions_egress(Some(egress))
            .set_tags(Some(ec2_tags(&desired_tags(set, app(set)))))
            .build()
    }

    fn observed(group: Option<SecurityGroup>, groups: &[(&str, &str)]) -> Observed {
        Observed {
            vpc_id: "vpc-1".into(),
            group,
            groups: groups
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn managed(group: Option<SecurityGroup>) -> Observed {
        observed(group, &[("alb", "sg-alb")])
    }

    /// Fields that differ, with (live, desired).
    fn changes(set: &ManifestSet, obs: &Observed) -> Vec<(String, serde_json::Value, serde_json::Value)> {
        let m = app(set);
        let d = serde_json::to_value(Unit::desired(set, m, obs)).unwrap();
        let l = Unit::live(set, m, obs).map(|l| serde_json::to_value(l).unwrap());
        diff(&d, l.as_ref())
            .into_iter()
            .map(|c| (c.field, c.live, c.desired))
            .collect()
    }

    fn all_traffic() -> IpPermission {
        IpPermission::builder()
            .ip_protocol("-1")
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build()
    }

    #[test]
    fn ipv6_and_prefix_list_rules_are_drift_that_can_be_revoked() {
        let set = load("");
        let live = ec2_group(
            &set,
            vec![
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(443)
                    .to_port(443)
                    .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
                    .prefix_list_ids(PrefixListId::builder().prefix_list_id("pl-1").build())
                    .build(),
            ],
            vec![],
        );
        let obs = managed(Some(live));
        let c = changes(&set, &obs);
        assert_eq!(
            c[0].1,
            json!(["tcp 443 ::/0 (IPv6)", "tcp 443 pl-1 (prefix list)"])
        );
        let m = app(&set);
        let desired = Unit::desired(&set, m, &obs);
        let live_doc = Unit::live(&set, m, &obs).unwrap();
        let (add, remove) = permissions(&desired.ingress, &live_doc.ingress, &BTreeMap::new());
        assert!(add.is_empty());
        assert_eq!(remove[0].ipv6_ranges()[0].cidr_ipv6(), Some("::/0"));
        assert_eq!(remove[1].prefix_list_ids()[0].prefix_list_id(), Some("pl-1"));
    }

    #[test]
    fn rules_compare_as_sets_of_protocol_ports_and_peer() {
        let set = load(
            "  ingress:\n    - {port: 3000, securityGroup: alb, description: from the ALB}\n    - {port: 3000, securityGroup: app}\n",
        );
        // EC2 groups both peers of one port range into one permission, with a description.
        let live = ec2_group(
            &set,
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
            vec![all_traffic()],
        );
        assert_eq!(changes(&set, &managed(Some(live))), []);

        // A hand-added rule and a lost one are both named, with the peer.
        let drifted = ec2_group(
            &set,
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
        let obs = managed(Some(drifted));
        assert_eq!(
            changes(&set, &obs),
            [(
                "ingress".to_string(),
                json!(["tcp 22 0.0.0.0/0", "tcp 3000 sg-app"]),
                json!(["tcp 3000 sg-alb", "tcp 3000 sg-app"])
            )]
        );
        let m = app(&set);
        let desired = Unit::desired(&set, m, &obs);
        let live_doc = Unit::live(&set, m, &obs).unwrap();
        let descriptions = rendered(&m.spec.ingress, &obs.groups, (m.name(), obs.id()));
        let (add, remove) = permissions(&desired.ingress, &live_doc.ingress, &descriptions);
        assert_eq!(add.len(), 1);
        let pair = &add[0].user_id_group_pairs()[0];
        assert_eq!(
            (pair.group_id(), pair.description()),
            (Some("sg-alb"), Some("from the ALB")),
            "added rules carry the manifest's description"
        );
        assert_eq!(remove.len(), 1);
        assert_eq!(remove[0].from_port(), Some(22));
        assert_eq!(remove[0].ip_ranges()[0].cidr_ip(), Some("0.0.0.0/0"));
    }

    #[test]
    fn groups_not_created_yet_show_as_pending_and_replacement_fields_are_named() {
        let set = load(
            "  description: new words\n  ingress:\n    - {port: 3000, securityGroup: alb}\n",
        );
        let c = changes(&set, &observed(None, &[]));
        let ingress = c.iter().find(|c| c.0 == "ingress").unwrap();
        assert_eq!(ingress.2, json!(["tcp 3000 (SecurityGroup/alb, once created)"]));

        let obs = managed(Some(ec2_group(&set, vec![], vec![])));
        let m = app(&set);
        let desired = Unit::desired(&set, m, &obs);
        let live = Unit::live(&set, m, &obs).unwrap();
        let (fixed, what) = Unit::replacement(&desired, &live);
        assert_eq!(fixed, ["description"]);
        assert!(what.starts_with("security group"), "{what}");
        let same = Unit::desired(&load(""), app(&load("")), &obs);
        assert!(Unit::replacement(&same, &live).0.is_empty());

        // Managed egress is compared; unmanaged egress is not.
        let set = load("  egress: []\n");
        let obs = managed(Some(ec2_group(&set, vec![], vec![all_traffic()])));
        let c = changes(&set, &obs);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!((c[0].0.as_str(), &c[0].1), ("egress", &json!(["all 0.0.0.0/0"])));
        let set = load("");
        let obs = managed(Some(ec2_group(&set, vec![], vec![all_traffic()])));
        assert_eq!(changes(&set, &obs), []);
    }

    #[test]
    fn rules_read_back_from_what_plan_shows() {
        let rules = [
            "tcp 443 0.0.0.0/0",
            "udp 1000-2000 10.0.0.0/8",
            "all sg-0abc",
            "icmp 8--1 10.1.0.0/16",
            "tcp 443 ::/0 (IPv6)",
            "tcp 443 pl-1 (prefix list)",
            "tcp 3000 (SecurityGroup/alb, once created)",
            "50 0.0.0.0/0",
        ];
        for shown in rules {
            let rule = Rule::try_from(shown.to_string()).unwrap();
            assert_eq!(rule.shown(), shown);
        }
        let all = Rule::try_from("all 0.0.0.0/0".to_string()).unwrap();
        assert_eq!(all, default_egress().into_iter().next().unwrap());
        let pending = Rule::try_from("tcp 3000 (SecurityGroup/alb, once created)".to_string());
        assert_eq!(pending.unwrap().peer, PeerId::Pending("alb".into()));
        // The document survives a JSON round trip (what `mooring.dev/ignore` goes through).
        let set = load("  ingress:\n    - {port: 443, cidrIp: 0.0.0.0/0}\n  egress: []\n");
        let doc = Unit::desired(&set, app(&set), &managed(None));
        let back: Doc = serde_json::from_value(serde_json::to_value(&doc).unwrap()).unwrap();
        assert_eq!(back, doc);
        assert!(Rule::try_from("nonsense".to_string()).is_err());
    }

    #[test]
    fn a_group_is_found_by_this_stacks_tag_then_a_legacy_tag_then_its_name() {
        let set = load("");
        let m = app(&set);
        let stack = set.stack.as_str();
        let group = |id: &str, name: &str, tags: &[(&str, &str)]| {
            tagged(
                SecurityGroup::builder()
                    .group_id(id)
                    .group_name(name)
                    .vpc_id("vpc-1"),
                tags,
            )
        };
        let mine = [
            (TAG_MANAGED_BY, MANAGED_BY),
            (TAG_STACK, stack),
            (TAG_RESOURCE, "SecurityGroup/app"),
        ];
        let legacy = [(TAG_MANAGED_BY, MANAGED_BY), (TAG_RESOURCE, "SecurityGroup/app")];
        let other = [
            (TAG_MANAGED_BY, MANAGED_BY),
            (TAG_STACK, "blog"),
            (TAG_RESOURCE, "SecurityGroup/app"),
        ];
        let live = |named: Vec<SecurityGroup>, mooring: Vec<SecurityGroup>| Live {
            managed: network::owners(&mooring, stack.into(), &|n| Some(n.to_string())),
            named,
            mooring: Arc::new(mooring),
        };
        let found = |l: &Live| {
            find(stack.into(), m, "vpc-1", l)
                .unwrap()
                .and_then(|g| g.group_id())
                .map(str::to_string)
        };
        // A renamed group of this stack is found by its tag, before a legacy one.
        let l = live(
            vec![],
            vec![group("sg-old", "x", &legacy), group("sg-1", "renamed", &mine)],
        );
        assert_eq!(found(&l).as_deref(), Some("sg-1"));
        // A group tagged before stacks is this manifest's only with its name in its VPC: one
        // of another name may be another stack's of the same manifest name.
        let l = live(vec![], vec![group("sg-x", "x", &legacy), group("sg-2", "y", &other)]);
        assert_eq!(found(&l), None);
        let l = live(vec![], vec![group("sg-old", "app", &legacy), group("sg-2", "y", &other)]);
        assert_eq!(found(&l).as_deref(), Some("sg-old"));
        // Another stack's group is not found by its tag, only by name (then refused).
        let by_name = group("sg-3", "app", &other);
        let l = live(vec![by_name.clone()], vec![by_name]);
        assert_eq!(found(&l).as_deref(), Some("sg-3"));
        let o = Unit::ownership(&observed(l.named.first().cloned(), &[])).unwrap();
        assert_eq!(o.stack.as_deref(), Some("blog"));
        // Two groups with this stack's tag: an error naming both.
        let l = live(vec![], vec![group("sg-a", "a", &mine), group("sg-b", "b", &mine)]);
        let e = find(stack.into(), m, "vpc-1", &l).unwrap_err().to_string();
        assert!(e.contains("sg-a, sg-b") && e.contains("delete or untag"), "{e}");
        // Nothing tagged, nothing of that name in this VPC: it is created.
        let elsewhere = tagged(
            SecurityGroup::builder().group_id("sg-4").group_name("app").vpc_id("vpc-2"),
            &[],
        );
        assert_eq!(found(&live(vec![elsewhere], vec![])), None);
    }

    #[tokio::test]
    async fn prune_lists_only_this_stacks_groups() {
        let set = load("");
        let stack = set.stack.clone();
        let group = |id: &str, tags: &[(&str, &str)]| {
            tagged(SecurityGroup::builder().group_id(id), tags)
        };
        let groups = vec![
            group(
                "sg-mine",
                &[(TAG_STACK, stack.as_str()), (TAG_RESOURCE, "SecurityGroup/old")],
            ),
            group("sg-legacy", &[(TAG_RESOURCE, "SecurityGroup/older")]),
            group(
                "sg-blog",
                &[(TAG_STACK, "blog"), (TAG_RESOURCE, "SecurityGroup/old")],
            ),
        ];
        let config = crate::aws::offline_config();
        let ctx = crate::reconcile::Context::new(crate::aws::Aws::from_config(&config).unwrap());
        let cache = crate::reconcile::PassCache::default();
        // The pass has already listed mooring's groups: prune reads nothing more.
        cache
            .mooring_groups
            .get((), || async { Ok::<_, AwsError>(Arc::new(groups)) })
            .await
            .unwrap();
        let cx = Cx {
            ctx: &ctx,
            set: &set,
            cache: &cache,
        };
        let owned = Unit::owned(&cx).await.unwrap().unwrap();
        assert_eq!(
            owned,
            [Owned {
                name: "old".into(),
                aws_id: "sg-mine".into(),
                scope: None
            }]
        );
    }
}
