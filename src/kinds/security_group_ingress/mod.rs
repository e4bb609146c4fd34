//! Ingress rules on a security group mooring does not own (`kind: SecurityGroupIngress`).
//!
//! mooring owns only the rules it added: each carries the ownership tags (rule tags,
//! `TagSpecifications` on AuthorizeSecurityGroupIngress). It reads them back by tag, changes
//! their descriptions in place, and revokes them by rule ID; no other rule of the group is
//! ever touched, even an identical one. A rule the manifest asks for that is already in the
//! group but not this manifest's (added by hand, by another tool or another stack) is not
//! added again (EC2 refuses duplicates) nor taken over: plan reports it as a requirement,
//! unless the manifest has `mooring.dev/adopt: "true"`, which tags it as this manifest's —
//! and then a removed manifest revokes it, so adopt only what nobody else relies on.
//!
//! Reads per pass: one DescribeSecurityGroups for the target groups (by ID, and one more by
//! name when both forms are used), one DescribeSecurityGroupRules for the stack's tagged
//! rules (any group: a rule left in a group the manifest no longer names is found and
//! revoked). The group must exist: a missing one is a requirement, never created.

pub mod spec;

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    Filter, IpPermission, ResourceType, SecurityGroup, SecurityGroupRule,
    SecurityGroupRuleRequest, SecurityGroupRuleUpdate, Tag, TagSpecification,
};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::network::{self, describe_security_groups, filter, group_ownership};
use super::ownership::{Ownership, adopts, owned_tags};
use super::security_group::{PeerId, Rule};
use super::{Change, Declared, Reference, Resource};
use crate::aws::{Aws, AwsError};
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet, TAG_STACK};
use crate::reconcile::{Applied, Cx, Owned, Problem, ReconcileError};
use spec::{Peer, SecurityGroupIngressSpec, Target};

/// The `SecurityGroupIngress` kind.
pub struct Unit;

impl Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSecurityGroupRules",
        "ec2:DescribeVpcs",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:ModifySecurityGroupRules",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:CreateTags",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(f);
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        m.spec
            .source_groups()
            .map(|(p, name)| Reference::new(p, Kind::SecurityGroup, name))
            .collect()
    }

    /// The group must not be one a `SecurityGroup` manifest of the set manages (that kind
    /// owns every rule of its group and would revoke these), and two manifests must not ask
    /// for the same rule on the same group (EC2 keeps one; the other would fail for ever).
    fn check_set(m: &Manifest<Self::Spec>, set: &ManifestSet, f: &mut Findings<'_>) {
        if let Some(Target::Named { name, vpc }) = m.spec.target()
            && let Some(sg) = set
                .security_groups
                .iter()
                .find(|g| g.spec.aws_name(&g.metadata) == name && g.spec.vpc == vpc)
        {
            f.at(
                "/spec/groupName",
                format!(
                    "the group `{name}` is SecurityGroup/{} of this set, which owns all of its rules (it would revoke these): add them to that manifest's `ingress` instead",
                    sg.metadata.name
                ),
            );
        }
        let Some(target) = m.spec.target() else {
            return;
        };
        for other in set
            .security_group_ingresses
            .iter()
            .take_while(|o| o.metadata.name != m.metadata.name)
            .filter(|o| o.spec.target() == Some(target.clone()))
        {
            for (i, r) in m.spec.rules.iter().enumerate() {
                if r.identity().is_some()
                    && other.spec.rules.iter().any(|o| o.identity() == r.identity())
                {
                    f.at(
                        &format!("/spec/rules/{i}"),
                        format!(
                            "SecurityGroupIngress `{}` adds the same rule to {target}",
                            other.metadata.name
                        ),
                    );
                }
            }
        }
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        let target = m
            .spec
            .target()
            .map_or_else(|| "a security group".to_string(), |t| t.to_string());
        format!("the rules `{}` adds to {target}", m.metadata.name)
    }

    /// The groups by ID (a group found by name has no ID before it is looked up: any group),
    /// and the rules, which carry no name either.
    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        let mut out: Vec<String> = set
            .security_group_ingresses
            .iter()
            .map(|m| match m.spec.target() {
                Some(Target::Id(id)) => crate::iam::arn("ec2", &format!("security-group/{id}")),
                _ => crate::iam::arn("ec2", "security-group/*"),
            })
            .collect();
        if !out.is_empty() {
            out.push(crate::iam::arn("ec2", "security-group-rule/*"));
        }
        out
    }
}

/// This manifest's rules, in the shape plan compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// The group the rules are in.
    pub group_id: String,
    /// Each rule as plan shows it (`tcp 5432 sg-0abc`, `tcp 5432 10.0.0.0/16`) → its
    /// description (empty when it has none). A rule of this manifest found in another group
    /// (the manifest named another one before) is shown with `(in sg-…)`.
    pub rules: BTreeMap<String, String>,
}

/// One of this stack's rules, as DescribeSecurityGroupRules returns it.
#[derive(Debug, Clone, PartialEq)]
struct Ours {
    /// `sgr-…`.
    id: String,
    /// The group it is in.
    group_id: String,
    /// Its description (empty: none).
    description: String,
}

/// What one read finds for all of the kind's manifests.
pub struct Live {
    /// The groups the manifests name, found.
    groups: Vec<SecurityGroup>,
    /// Every ingress rule that carries this stack's tag.
    rules: Vec<SecurityGroupRule>,
    /// This stack's `SecurityGroup` manifests, by name → group ID (rule sources).
    managed: BTreeMap<String, String>,
}

/// One manifest's group and rules, as observed.
pub struct Observed {
    /// The group's ID.
    group_id: String,
    /// This manifest's rules, by the key the document uses.
    ours: BTreeMap<String, Ours>,
    /// Rules in the group that are not this manifest's, by key → whose they are.
    taken: BTreeMap<String, String>,
    /// This stack's `SecurityGroup` manifests, name → ID.
    groups: BTreeMap<String, String>,
}

/// EC2's protocol name for a rule's protocol (`6` → `tcp`); `-1` stays `-1`.
fn protocol(p: Option<&str>) -> String {
    match p.unwrap_or("-1") {
        "6" => "tcp",
        "17" => "udp",
        "1" => "icmp",
        "all" => "-1",
        other => other,
    }
    .to_ascii_lowercase()
}

/// Ports as plan compares them: none for `-1` (every protocol) and missing ones.
fn ports(protocol: &str, from: Option<i32>, to: Option<i32>) -> (i32, i32) {
    if protocol == "-1" {
        (-1, -1)
    } else {
        (from.unwrap_or(-1), to.unwrap_or(-1))
    }
}

/// A CIDR block as the manifest side normalises it (AWS's own form already, normally).
fn cidr(c: &str) -> String {
    spec::normalise_cidr(c).map_or_else(|_| c.to_string(), |(c, _)| c)
}

/// A rule read with DescribeSecurityGroupRules, normalised.
fn rule_of(r: &SecurityGroupRule) -> Option<Rule> {
    let protocol = protocol(r.ip_protocol());
    let (from, to) = ports(&protocol, r.from_port(), r.to_port());
    let peer = if let Some(c) = r.cidr_ipv4() {
        PeerId::Cidr(cidr(c))
    } else if let Some(c) = r.cidr_ipv6() {
        PeerId::Ipv6(cidr(c))
    } else if let Some(g) = r.referenced_group_info().and_then(|g| g.group_id()) {
        PeerId::Group(g.to_string())
    } else {
        PeerId::PrefixList(r.prefix_list_id()?.to_string())
    };
    Some(Rule {
        protocol,
        from,
        to,
        peer,
    })
}

/// Every rule of a group's ingress permissions (one per source), with its description.
fn group_rules(g: &SecurityGroup) -> BTreeMap<Rule, String> {
    let mut out = BTreeMap::new();
    for p in g.ip_permissions() {
        let protocol = protocol(p.ip_protocol());
        let (from, to) = ports(&protocol, p.from_port(), p.to_port());
        let mut add = |peer, description: Option<&str>| {
            let rule = Rule {
                protocol: protocol.clone(),
                from,
                to,
                peer,
            };
            out.insert(rule, description.unwrap_or_default().to_string());
        };
        for r in p.ip_ranges() {
            if let Some(c) = r.cidr_ip() {
                add(PeerId::Cidr(cidr(c)), r.description());
            }
        }
        for r in p.ipv6_ranges() {
            if let Some(c) = r.cidr_ipv6() {
                add(PeerId::Ipv6(cidr(c)), r.description());
            }
        }
        for g in p.user_id_group_pairs() {
            if let Some(id) = g.group_id() {
                add(PeerId::Group(id.to_string()), g.description());
            }
        }
        for l in p.prefix_list_ids() {
            if let Some(id) = l.prefix_list_id() {
                add(PeerId::PrefixList(id.to_string()), l.description());
            }
        }
    }
    out
}

/// The manifest's rules with their descriptions, sources named by manifest resolved
/// through `groups` (pending while the group does not exist yet).
fn rendered(
    spec: &SecurityGroupIngressSpec,
    groups: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in &spec.rules {
        let Some(peer) = r.peer() else { continue };
        let (from, to) = r.ports();
        let peer = match peer {
            Peer::Manifest(name) => groups.get(name).map_or_else(
                || PeerId::Pending(name.to_string()),
                |id| PeerId::Group(id.clone()),
            ),
            Peer::Id(id) => PeerId::Group(id.to_string()),
            Peer::Ipv4(c) => PeerId::Cidr(c),
            Peer::Ipv6(c) => PeerId::Ipv6(c),
        };
        let rule = Rule {
            protocol: r.protocol.as_ec2().to_string(),
            from,
            to,
            peer,
        };
        out.entry(rule.shown())
            .or_insert_with(|| r.description.clone().unwrap_or_default());
    }
    out
}

/// The document key of one of this manifest's rules found in `group` while the manifest
/// names `target`.
fn key(rule: &Rule, group: &str, target: &str) -> String {
    if group == target {
        rule.shown()
    } else {
        format!("{} (in {group})", rule.shown())
    }
}

/// The rule in EC2's request form, with its description (none when empty).
fn permission(rule: &Rule, description: &str) -> IpPermission {
    let description = (!description.is_empty()).then(|| description.to_string());
    rule.permission(description.as_ref())
}

/// The rule as ModifySecurityGroupRules takes it (the whole rule, with a new description).
fn rule_request(rule: &Rule, description: &str) -> SecurityGroupRuleRequest {
    let mut r = SecurityGroupRuleRequest::builder()
        .ip_protocol(&rule.protocol)
        .from_port(rule.from)
        .to_port(rule.to)
        .description(description);
    r = match &rule.peer {
        PeerId::Cidr(c) => r.cidr_ipv4(c),
        PeerId::Ipv6(c) => r.cidr_ipv6(c),
        PeerId::Group(g) => r.referenced_group_id(g),
        PeerId::PrefixList(id) => r.prefix_list_id(id),
        PeerId::Pending(_) => r,
    };
    r.build()
}

fn ec2_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn rule_ownership(r: &SecurityGroupRule) -> Ownership {
    Ownership::from_tags(r.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))))
}

/// DescribeSecurityGroupRules with `filters`, every page, ingress rules only.
async fn describe_rules(
    aws: &Aws,
    filters: Vec<Filter>,
) -> Result<Vec<SecurityGroupRule>, AwsError> {
    let rules: Vec<SecurityGroupRule> = aws
        .ec2
        .describe_security_group_rules()
        .set_filters(Some(filters))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AwsError::from_sdk("ec2:DescribeSecurityGroupRules", e))?;
    Ok(rules
        .into_iter()
        .filter(|r| r.is_egress() != Some(true))
        .collect())
}

/// This stack's tagged ingress rules: only this kind tags rules, so they are its own.
async fn stack_rules(cx: &Cx<'_>) -> Result<Vec<SecurityGroupRule>, AwsError> {
    describe_rules(
        cx.aws(),
        vec![filter(&format!("tag:{TAG_STACK}"), &cx.set.stack)],
    )
    .await
}

/// The live group `m` names, or why there is none to add rules to.
fn find<'a>(
    m: &Manifest<SecurityGroupIngressSpec>,
    target: &Target<'_>,
    vpc_id: Option<&str>,
    groups: &'a [SecurityGroup],
) -> Result<&'a SecurityGroup, ReconcileError> {
    let found = groups.iter().find(|g| match target {
        Target::Id(id) => g.group_id() == Some(id),
        Target::Named { name, .. } => g.group_name() == Some(name) && g.vpc_id() == vpc_id,
    });
    let Some(g) = found else {
        let field = match target {
            Target::Id(_) => "groupId",
            Target::Named { .. } => "groupName",
        };
        let vpc = vpc_id.map(|v| format!(" ({v})")).unwrap_or_default();
        return Err(ReconcileError::requirement(format!(
            "{target}{vpc} does not exist: SecurityGroupIngress/{} adds rules to a group someone else creates, and never creates it (check `{field}`)",
            m.metadata.name
        )));
    };
    let o = group_ownership(g);
    if let Some(owner) = o
        .resource
        .as_deref()
        .filter(|r| r.starts_with(&format!("{}/", Kind::SecurityGroup)))
    {
        let stack = o
            .stack
            .map(|s| format!(" of the stack `{s}`"))
            .unwrap_or_default();
        return Err(ReconcileError::requirement(format!(
            "{target} ({}) is mooring's {owner}{stack}, which owns all of its rules and revokes any other: add these rules to that manifest's `ingress` instead",
            g.group_id().unwrap_or_default()
        )));
    }
    Ok(g)
}

#[async_trait::async_trait]
impl Resource for Unit {
    type Live = Live;
    type Observed = Observed;
    type Doc = Doc;

    async fn read(
        cx: &Cx<'_>,
        manifests: &[Manifest<SecurityGroupIngressSpec>],
    ) -> Result<Live, ReconcileError> {
        let mut ids = Vec::new();
        let mut names = Vec::new();
        let mut vpcs = Vec::new();
        for m in manifests {
            match m.spec.target() {
                Some(Target::Id(id)) => ids.push(id.to_string()),
                Some(Target::Named { name, vpc }) => {
                    names.push(name.to_string());
                    vpcs.push(network::vpc_id(cx, vpc).await?);
                }
                None => {}
            }
        }
        let mut groups = Vec::new();
        for (name, values) in [("group-id", ids), ("group-name", names)] {
            if values.is_empty() {
                continue;
            }
            let mut filters = vec![
                Filter::builder()
                    .name(name)
                    .set_values(Some(values))
                    .build(),
            ];
            if name == "group-name" {
                filters.push(
                    Filter::builder()
                        .name("vpc-id")
                        .set_values(Some(vpcs.clone()))
                        .build(),
                );
            }
            groups.extend(describe_security_groups(cx.aws(), filters).await?);
        }
        let rules = stack_rules(cx).await?;
        let named = manifests
            .iter()
            .any(|m| m.spec.source_groups().next().is_some());
        let managed = if named {
            network::managed_groups(cx).await?
        } else {
            BTreeMap::new()
        };
        Ok(Live {
            groups,
            rules,
            managed,
        })
    }

    async fn observe(
        cx: &Cx<'_>,
        m: &Manifest<SecurityGroupIngressSpec>,
        live: &Live,
    ) -> Result<Observed, ReconcileError> {
        let target = m.spec.target().ok_or_else(|| {
            ReconcileError::requirement("the manifest names no group".to_string())
        })?;
        let vpc_id = match &target {
            Target::Named { vpc, .. } => Some(network::vpc_id(cx, vpc).await?),
            Target::Id(_) => None,
        };
        let group = find(m, &target, vpc_id.as_deref(), &live.groups)?;
        let group_id = group.group_id().unwrap_or_default().to_string();
        // moto leaves out the description of rules from a group in
        // DescribeSecurityGroupRules; the group's permissions have it (on AWS both agree).
        let present = group_rules(group);
        let stack = cx.set.owner();
        let mut ours = BTreeMap::new();
        let mut others: BTreeMap<Rule, String> = BTreeMap::new();
        for r in &live.rules {
            let (Some(rule), Some(id), Some(in_group)) =
                (rule_of(r), r.security_group_rule_id(), r.group_id())
            else {
                continue;
            };
            match rule_ownership(r).name_in(stack, Kind::SecurityGroupIngress) {
                Some(name) if name == m.metadata.name => {
                    let description = match r.description() {
                        Some(d) => d.to_string(),
                        None if in_group == group_id => {
                            present.get(&rule).cloned().unwrap_or_default()
                        }
                        None => String::new(),
                    };
                    ours.insert(
                        key(&rule, in_group, &group_id),
                        Ours {
                            id: id.to_string(),
                            group_id: in_group.to_string(),
                            description,
                        },
                    );
                }
                Some(name) if in_group == group_id => {
                    others.insert(rule, format!("{}/{name}", Kind::SecurityGroupIngress));
                }
                _ => {}
            }
        }
        let taken = present
            .into_keys()
            .filter(|r| !ours.contains_key(&r.shown()))
            .map(|r| {
                let whose = others.get(&r).map_or_else(
                    || "not this stack's (added by hand, by another tool or another stack)".to_string(),
                    |o| format!("{o}'s"),
                );
                (r.shown(), whose)
            })
            .collect();
        Ok(Observed {
            group_id,
            ours,
            taken,
            groups: live.managed.clone(),
        })
    }

    /// Rules are found by this manifest's tags, so the ones found are its own; a rule that
    /// belongs to someone else is a problem of that rule (see `problems`).
    fn ownership(_obs: &Observed) -> Option<Ownership> {
        None
    }

    fn desired(_set: &ManifestSet, m: &Manifest<SecurityGroupIngressSpec>, obs: &Observed) -> Doc {
        Doc {
            group_id: obs.group_id.clone(),
            rules: rendered(&m.spec, &obs.groups),
        }
    }

    /// `None` while none of the manifest's rules exist: plan shows a create.
    fn live(_set: &ManifestSet, _m: &Manifest<SecurityGroupIngressSpec>, obs: &Observed) -> Option<Doc> {
        (!obs.ours.is_empty()).then(|| Doc {
            group_id: obs.group_id.clone(),
            rules: obs
                .ours
                .iter()
                .map(|(k, o)| (k.clone(), o.description.clone()))
                .collect(),
        })
    }

    fn aws_id(_set: &ManifestSet, _m: &Manifest<SecurityGroupIngressSpec>, obs: &Observed) -> String {
        obs.group_id.clone()
    }

    fn problems(m: &Manifest<SecurityGroupIngressSpec>, obs: &Observed) -> Vec<Problem> {
        if adopts(&m.metadata) {
            return Vec::new();
        }
        rendered(&m.spec, &obs.groups)
            .into_keys()
            .filter(|k| !obs.ours.contains_key(k))
            .filter_map(|k| {
                let whose = obs.taken.get(&k)?;
                Some(Problem::requirement(format!(
                    "the rule `{k}` is already in {} and is {whose}: EC2 keeps one copy and mooring does not take it over; remove it from the manifest, or set the annotation `{}: \"true\"` to tag it as this manifest's (it is then revoked when the manifest goes)",
                    obs.group_id,
                    crate::manifest::annotations::ADOPT
                )))
            })
            .collect()
    }

    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<SecurityGroupIngressSpec>,
        obs: &Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        let Doc { group_id, rules } = change.desired;
        let ec2 = &cx.aws().ec2;
        let tags = ec2_tags(&owned_tags(
            Kind::SecurityGroupIngress,
            cx.set.owner(),
            m.name(),
            &BTreeMap::new(),
        ));
        let pending = |k: &String| {
            Rule::try_from(k.clone()).is_ok_and(|r| matches!(r.peer, PeerId::Pending(_)))
        };
        // Source groups may have been created earlier in this apply.
        let want: BTreeMap<String, String> = if rules.keys().any(pending) {
            let now = rendered(&m.spec, &network::managed_groups(cx).await?);
            if let Some(k) = now.keys().find(|k| pending(k)) {
                let name = match Rule::try_from(k.clone()).map(|r| r.peer) {
                    Ok(PeerId::Pending(name)) => name,
                    _ => k.clone(),
                };
                return Err(ReconcileError::Dependency(format!("SecurityGroup/{name}")));
            }
            now.into_iter()
                .map(|(k, d)| (k.clone(), rules.get(&k).cloned().unwrap_or(d)))
                .collect()
        } else {
            rules.clone()
        };
        let parsed = |k: &String| {
            Rule::try_from(k.clone())
                .map_err(|e| ReconcileError::NotConverged(format!("{}: {e}", m.name())))
        };

        let mut add = Vec::new();
        let mut adopt = Vec::new();
        let mut describe = Vec::new();
        for (k, d) in &want {
            match obs.ours.get(k) {
                Some(o) if o.description != *d => {
                    describe.push(
                        SecurityGroupRuleUpdate::builder()
                            .security_group_rule_id(&o.id)
                            .security_group_rule(rule_request(&parsed(k)?, d))
                            .build(),
                    );
                }
                Some(_) => {}
                None if obs.taken.contains_key(k) => {
                    // Someone else's: reported by plan, taken over only when asked.
                    if adopts(&m.metadata) {
                        adopt.push((parsed(k)?, d));
                    }
                }
                None => add.push(permission(&parsed(k)?, d)),
            }
        }
        if !add.is_empty() {
            ec2.authorize_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(add))
                .tag_specifications(
                    TagSpecification::builder()
                        .resource_type(ResourceType::SecurityGroupRule)
                        .set_tags(Some(tags.clone()))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ec2:AuthorizeSecurityGroupIngress", e))?;
            info!(security_group = %group_id, "authorized ingress rules");
        }
        if !adopt.is_empty() {
            let found =
                describe_rules(cx.aws(), vec![filter("group-id", group_id)]).await?;
            for (rule, d) in adopt {
                let Some(r) = found.iter().find(|r| rule_of(r).as_ref() == Some(&rule)) else {
                    continue;
                };
                let Some(id) = r.security_group_rule_id() else {
                    continue;
                };
                ec2.create_tags()
                    .resources(id)
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ec2:CreateTags", e))?;
                info!(security_group = %group_id, rule = %id, "adopted ingress rule");
                if r.description().unwrap_or_default() != d.as_str() {
                    describe.push(
                        SecurityGroupRuleUpdate::builder()
                            .security_group_rule_id(id)
                            .security_group_rule(rule_request(&rule, d))
                            .build(),
                    );
                }
            }
        }
        if !describe.is_empty() {
            ec2.modify_security_group_rules()
                .group_id(group_id)
                .set_security_group_rules(Some(describe))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ec2:ModifySecurityGroupRules", e))?;
        }
        // Revoked last, by ID: only rules that carry this manifest's tags, wherever they are.
        let mut revoke: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (k, o) in &obs.ours {
            if !want.contains_key(k) {
                revoke
                    .entry(o.group_id.as_str())
                    .or_default()
                    .push(o.id.clone());
            }
        }
        for (group, ids) in revoke {
            revoke_rules(cx.aws(), group, ids).await?;
        }
        Ok(Applied {
            aws_id: group_id.clone(),
            rollout: None,
        })
    }

    /// This stack's tagged rules, one entry per manifest and group.
    async fn owned(cx: &Cx<'_>) -> Option<Result<Vec<Owned>, ReconcileError>> {
        let rules = match stack_rules(cx).await {
            Ok(r) => r,
            Err(e) => return Some(Err(e.into())),
        };
        let mut by: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for r in &rules {
            let (Some(name), Some(group), Some(id)) = (
                rule_ownership(r).name_in(cx.set.owner(), Kind::SecurityGroupIngress),
                r.group_id(),
                r.security_group_rule_id(),
            ) else {
                continue;
            };
            by.entry((name, group.to_string()))
                .or_default()
                .push(id.to_string());
        }
        Some(Ok(by
            .into_iter()
            .map(|((name, group), ids)| Owned {
                name,
                aws_id: ids.join(","),
                scope: Some(group),
            })
            .collect()))
    }

    /// Revokes the rules of the group `owned.scope` that still carry this stack's tags for
    /// `owned.name` (read again: nothing else in the group is touched).
    async fn delete(cx: &Cx<'_>, owned: &Owned) -> Result<(), ReconcileError> {
        let Some(group) = owned.scope.as_deref() else {
            return Ok(());
        };
        let rules = describe_rules(
            cx.aws(),
            vec![
                filter("group-id", group),
                filter(&format!("tag:{TAG_STACK}"), &cx.set.stack),
            ],
        )
        .await?;
        let ids: Vec<String> = rules
            .iter()
            .filter(|r| {
                rule_ownership(r).name_in(cx.set.owner(), Kind::SecurityGroupIngress)
                    == Some(owned.name.clone())
            })
            .filter_map(|r| r.security_group_rule_id().map(str::to_string))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        revoke_rules(cx.aws(), group, ids).await
    }
}

async fn revoke_rules(aws: &Aws, group: &str, ids: Vec<String>) -> Result<(), ReconcileError> {
    aws.ec2
        .revoke_security_group_ingress()
        .group_id(group)
        .set_security_group_rule_ids(Some(ids.clone()))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ec2:RevokeSecurityGroupIngress", e))?;
    info!(security_group = %group, rules = %ids.join(","), "revoked ingress rules");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{IpRange, UserIdGroupPair};
    use crate::manifest::load::load_with_stack;
    use crate::manifest::annotations::ADOPT;
    use crate::manifest::{TAG_MANAGED_BY, TAG_RESOURCE};
    use crate::reconcile::diff::diff;
    use aws_sdk_ec2::types::ReferencedSecurityGroup;
    use serde_json::json;

    const DB: &str = "sg-0db";
    const BACKEND: &str = "sg-0be";

    fn load_docs(docs: &[&str]) -> Result<ManifestSet, Vec<String>> {
        let files: Vec<(std::path::PathBuf, String)> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("m{i}.yaml").into(), d.to_string()))
            .collect();
        load_with_stack(&files).map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    fn ingress(name: &str, annotations: &str, spec: &str) -> String {
        format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroupIngress\nmetadata: {{name: {name}{annotations}}}\nspec:\n{spec}"
        )
    }

    const BACKEND_GROUP: &str = "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroup\nmetadata: {name: backend}\nspec:\n  vpc: default\n";

    const RULES: &str = "  groupId: sg-0db\n  rules:\n    - {port: 5432, from: {securityGroup: backend}, description: the backend}\n    - {port: 5432, from: {cidr: 10.8.0.0/16}}\n";

    fn set(annotations: &str) -> ManifestSet {
        load_docs(&[BACKEND_GROUP, &ingress("db", annotations, RULES)]).unwrap()
    }

    fn tagged(b: aws_sdk_ec2::types::builders::SecurityGroupRuleBuilder, stack: &str, owner: &str) -> SecurityGroupRule {
        b.tags(Tag::builder().key(TAG_MANAGED_BY).value("mooring").build())
            .tags(Tag::builder().key(TAG_STACK).value(stack).build())
            .tags(Tag::builder().key(TAG_RESOURCE).value(owner).build())
            .build()
    }

    /// A rule of the stack `test` as DescribeSecurityGroupRules returns it.
    fn stack_rule(id: &str, group: &str, owner: &str, from: &str, description: Option<&str>) -> SecurityGroupRule {
        let b = SecurityGroupRule::builder()
            .security_group_rule_id(id)
            .group_id(group)
            .is_egress(false)
            .ip_protocol("6")
            .from_port(5432)
            .to_port(5432)
            .set_description(description.map(str::to_string));
        let b = if from.starts_with("sg-") {
            b.referenced_group_info(ReferencedSecurityGroup::builder().group_id(from).build())
        } else {
            b.cidr_ipv4(from)
        };
        tagged(b, "test", owner)
    }

    /// The database's group with ingress permissions (port 5432) from `sources`.
    fn db_group(sources: &[(&str, Option<&str>)], tags: &[(&str, &str)]) -> SecurityGroup {
        let mut p = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(5432)
            .to_port(5432);
        for (s, d) in sources {
            let d = d.map(str::to_string);
            p = if s.starts_with("sg-") {
                p.user_id_group_pairs(UserIdGroupPair::builder().group_id(*s).set_description(d).build())
            } else {
                p.ip_ranges(IpRange::builder().cidr_ip(*s).set_description(d).build())
            };
        }
        let mut g = SecurityGroup::builder()
            .group_id(DB)
            .group_name("salon-db")
            .vpc_id("vpc-1")
            .ip_permissions(p.build());
        for (k, v) in tags {
            g = g.tags(Tag::builder().key(*k).value(*v).build());
        }
        g.build()
    }

    fn aws() -> Aws {
        let config = crate::aws::offline_config();
        Aws::from_config(&config).unwrap()
    }

    async fn observe(set: &ManifestSet, live: Live) -> Result<Observed, ReconcileError> {
        let ctx = crate::reconcile::Context::new(aws());
        let cache = crate::reconcile::PassCache::default();
        let cx = Cx {
            ctx: &ctx,
            set,
            cache: &cache,
        };
        Unit::observe(&cx, &set.security_group_ingresses[0], &live).await
    }

    fn live(groups: Vec<SecurityGroup>, rules: Vec<SecurityGroupRule>) -> Live {
        Live {
            groups,
            rules,
            managed: BTreeMap::from([("backend".to_string(), BACKEND.to_string())]),
        }
    }

    /// Fields that differ, with (live, desired).
    fn changes(set: &ManifestSet, obs: &Observed) -> Vec<(String, serde_json::Value, serde_json::Value)> {
        let m = &set.security_group_ingresses[0];
        let d = serde_json::to_value(Unit::desired(set, m, obs)).unwrap();
        let l = Unit::live(set, m, obs).map(|l| serde_json::to_value(l).unwrap());
        diff(&d, l.as_ref())
            .into_iter()
            .map(|c| (c.field, c.live, c.desired))
            .collect()
    }

    fn ours() -> Vec<SecurityGroupRule> {
        vec![
            stack_rule("sgr-1", DB, "SecurityGroupIngress/db", BACKEND, Some("the backend")),
            stack_rule("sgr-2", DB, "SecurityGroupIngress/db", "10.8.0.0/16", None),
        ]
    }

    #[tokio::test]
    async fn in_sync_rules_plan_nothing_and_rules_of_others_never_show() {
        let set = set("");
        // The group also holds a rule of someone else (a VPN range) and one from another
        // manifest of the stack: neither is this manifest's, neither is drift.
        let mut rules = ours();
        rules.push(stack_rule("sgr-9", DB, "SecurityGroupIngress/other", "10.9.0.0/16", None));
        let group = db_group(
            &[
                (BACKEND, Some("the backend")),
                ("10.8.0.0/16", None),
                ("10.9.0.0/16", None),
                ("192.168.0.0/16", Some("vpn")),
            ],
            &[],
        );
        let obs = observe(&set, live(vec![group], rules)).await.unwrap();
        assert_eq!(changes(&set, &obs), []);
        let m = &set.security_group_ingresses[0];
        assert_eq!(Unit::aws_id(&set, m, &obs), DB);
        assert!(Unit::problems(m, &obs).is_empty());
        assert_eq!(
            serde_json::to_value(Unit::live(&set, m, &obs).unwrap()).unwrap(),
            json!({"groupId": DB, "rules": {
                "tcp 5432 10.8.0.0/16": "",
                "tcp 5432 sg-0be": "the backend",
            }})
        );
    }

    #[tokio::test]
    async fn a_revoked_rule_a_changed_description_and_a_rule_left_elsewhere_are_named() {
        let set = set("");
        let rules = vec![
            stack_rule("sgr-1", DB, "SecurityGroupIngress/db", BACKEND, Some("changed by hand")),
            stack_rule("sgr-7", "sg-0old", "SecurityGroupIngress/db", "10.8.0.0/16", None),
        ];
        let group = db_group(&[(BACKEND, Some("changed by hand"))], &[]);
        let obs = observe(&set, live(vec![group], rules)).await.unwrap();
        assert_eq!(
            changes(&set, &obs),
            [
                (
                    "rules.tcp 5432 10.8.0.0/16".to_string(),
                    serde_json::Value::Null,
                    json!("")
                ),
                (
                    "rules.tcp 5432 sg-0be".to_string(),
                    json!("changed by hand"),
                    json!("the backend")
                ),
                (
                    "rules.tcp 5432 10.8.0.0/16 (in sg-0old)".to_string(),
                    json!(""),
                    serde_json::Value::Null
                ),
            ]
        );
        // Nothing of ours at all: a create.
        let obs = observe(&set, live(vec![db_group(&[], &[])], vec![])).await.unwrap();
        assert!(Unit::live(&set, &set.security_group_ingresses[0], &obs).is_none());
    }

    #[tokio::test]
    async fn moto_missing_descriptions_of_group_rules_come_from_the_group() {
        let set = set("");
        let mut rules = ours();
        rules[0] = stack_rule("sgr-1", DB, "SecurityGroupIngress/db", BACKEND, None);
        let group = db_group(&[(BACKEND, Some("the backend")), ("10.8.0.0/16", None)], &[]);
        let obs = observe(&set, live(vec![group], rules)).await.unwrap();
        assert_eq!(changes(&set, &obs), []);
    }

    #[tokio::test]
    async fn an_identical_rule_of_someone_else_is_a_problem_unless_adopted() {
        let set = set("");
        let group = db_group(&[(BACKEND, Some("hand made")), ("10.8.0.0/16", None)], &[]);
        let obs = observe(&set, live(vec![group.clone()], vec![])).await.unwrap();
        let m = &set.security_group_ingresses[0];
        let problems = Unit::problems(m, &obs);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].message.contains("the rule `tcp 5432 10.8.0.0/16` is already in sg-0db and is not this stack's")
                && problems[0].message.contains(ADOPT),
            "{}",
            problems[0].message
        );
        // Another manifest of the stack holds it: named.
        let other = stack_rule("sgr-9", DB, "SecurityGroupIngress/other", BACKEND, None);
        let obs = observe(&set, live(vec![group.clone()], vec![other])).await.unwrap();
        let problems = Unit::problems(m, &obs);
        assert!(
            problems.iter().any(|p| p.message.contains("is SecurityGroupIngress/other's")),
            "{problems:?}"
        );
        let adopting = self::set(&format!(", annotations: {{{ADOPT}: \"true\"}}"));
        let obs = observe(&adopting, live(vec![group], vec![])).await.unwrap();
        assert!(Unit::problems(&adopting.security_group_ingresses[0], &obs).is_empty());
    }

    #[tokio::test]
    async fn a_missing_group_or_one_mooring_manages_is_a_requirement() {
        let set = set("");
        let e = observe(&set, live(vec![], vec![])).await.err().unwrap();
        assert_eq!(e.category(), crate::reconcile::Category::Requirement);
        assert!(
            e.to_string().contains("the security group sg-0db does not exist")
                && e.to_string().contains("never creates it (check `groupId`)"),
            "{e}"
        );
        let managed = db_group(
            &[],
            &[(TAG_STACK, "blog"), (TAG_RESOURCE, "SecurityGroup/db")],
        );
        let e = observe(&set, live(vec![managed], vec![])).await.err().unwrap();
        assert!(
            e.to_string().contains("is mooring's SecurityGroup/db of the stack `blog`"),
            "{e}"
        );
    }

    #[test]
    fn a_group_of_the_set_and_a_rule_two_manifests_add_are_refused() {
        let own = ingress(
            "db",
            "",
            "  groupName: backend\n  rules:\n    - {port: 5432, from: {cidr: 10.0.0.0/16}}\n",
        );
        let errs = load_docs(&[BACKEND_GROUP, &own]).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("m1.yaml:5:3: spec.groupName: the group `backend` is SecurityGroup/backend of this set")),
            "{errs:#?}"
        );
        let twice = ingress("again", "", RULES);
        let errs = load_docs(&[BACKEND_GROUP, &ingress("db", "", RULES), &twice]).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("m2.yaml")
                && e.contains("spec.rules[0]: SecurityGroupIngress `db` adds the same rule to the security group sg-0db")),
            "{errs:#?}"
        );
        // The source group is a dependency: created first.
        let set = set("");
        let m = &set.security_group_ingresses[0];
        assert_eq!(
            Unit::dependencies(m, &set),
            [(Kind::SecurityGroup, "backend".to_string())]
        );
    }

    #[test]
    fn rules_render_from_numbers_all_and_pending_groups() {
        let set = load_docs(&[ingress(
            "db",
            "",
            "  groupName: salon-db\n  rules:\n    - {protocol: all, from: {cidr: 10.1.2.3}}\n    - {protocol: udp, fromPort: 1000, toPort: 2000, from: {securityGroup: backend}}\n    - {port: 443, from: {cidr: \"2001:DB8::/32\"}}\n",
        )
        .as_str(), BACKEND_GROUP])
        .unwrap();
        let m = &set.security_group_ingresses[0];
        let rules = rendered(&m.spec, &BTreeMap::new());
        assert_eq!(
            rules.keys().collect::<Vec<_>>(),
            [
                "all 10.1.2.3/32",
                "tcp 443 2001:db8::/32 (IPv6)",
                "udp 1000-2000 (SecurityGroup/backend, once created)"
            ]
        );
        // Read back from AWS's numbers.
        let r = SecurityGroupRule::builder()
            .ip_protocol("-1")
            .from_port(-1)
            .to_port(-1)
            .cidr_ipv4("10.1.2.3/32")
            .build();
        assert_eq!(rule_of(&r).unwrap().shown(), "all 10.1.2.3/32");
        let r = SecurityGroupRule::builder()
            .ip_protocol("17")
            .from_port(1000)
            .to_port(2000)
            .referenced_group_info(ReferencedSecurityGroup::builder().group_id(BACKEND).build())
            .build();
        assert_eq!(rule_of(&r).unwrap().shown(), "udp 1000-2000 sg-0be");
        // Keys read back into the rule apply sends.
        let rule = Rule::try_from("tcp 443 2001:db8::/32 (IPv6)".to_string()).unwrap();
        let p = permission(&rule, "v6");
        assert_eq!(p.ipv6_ranges()[0].cidr_ipv6(), Some("2001:db8::/32"));
        assert_eq!(p.ipv6_ranges()[0].description(), Some("v6"));
        assert_eq!((p.from_port(), p.to_port()), (Some(443), Some(443)));
    }

    /// What apply sends: new rules with the ownership tags as rule tags, descriptions by
    /// rule ID, and revocations by rule ID only (never by content, which could match
    /// someone else's identical rule).
    #[tokio::test]
    async fn apply_tags_new_rules_and_changes_and_revokes_only_by_rule_id() {
        use aws_sdk_ec2::Client;
        use aws_sdk_ec2::operation::authorize_security_group_ingress::AuthorizeSecurityGroupIngressOutput;
        use aws_sdk_ec2::operation::modify_security_group_rules::ModifySecurityGroupRulesOutput;
        use aws_sdk_ec2::operation::revoke_security_group_ingress::RevokeSecurityGroupIngressOutput;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        let authorize = mock!(Client::authorize_security_group_ingress)
            .match_requests(|r| {
                let spec = &r.tag_specifications()[0];
                let tags: BTreeMap<&str, &str> = spec
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?, t.value()?)))
                    .collect();
                r.group_id() == Some(DB)
                    && r.tag_specifications().len() == 1
                    && spec.resource_type() == Some(&ResourceType::SecurityGroupRule)
                    && tags
                        == BTreeMap::from([
                            (TAG_MANAGED_BY, "mooring"),
                            (TAG_STACK, "test"),
                            (TAG_RESOURCE, "SecurityGroupIngress/db"),
                        ])
                    && r.ip_permissions().len() == 1
                    && r.ip_permissions()[0].ip_ranges()[0].cidr_ip() == Some("10.8.0.0/16")
            })
            .then_output(|| AuthorizeSecurityGroupIngressOutput::builder().build());
        let modify = mock!(Client::modify_security_group_rules)
            .match_requests(|r| {
                let u = &r.security_group_rules()[0];
                let rule = u.security_group_rule().unwrap();
                u.security_group_rule_id() == Some("sgr-1")
                    && rule.referenced_group_id() == Some(BACKEND)
                    && rule.description() == Some("the backend")
            })
            .then_output(|| ModifySecurityGroupRulesOutput::builder().build());
        let revoke = mock!(Client::revoke_security_group_ingress)
            .match_requests(|r| {
                r.group_id() == Some("sg-0old")
                    && r.security_group_rule_ids() == ["sgr-7"]
                    && r.ip_permissions().is_empty()
            })
            .then_output(|| RevokeSecurityGroupIngressOutput::builder().build());
        let client = mock_client!(
            aws_sdk_ec2,
            RuleMode::MatchAny,
            [&authorize, &modify, &revoke]
        );
        let mut aws = aws();
        aws.ec2 = client;
        let ctx = crate::reconcile::Context::new(aws);

        let set = set("");
        let rules = vec![
            stack_rule("sgr-1", DB, "SecurityGroupIngress/db", BACKEND, Some("changed by hand")),
            stack_rule("sgr-7", "sg-0old", "SecurityGroupIngress/db", "10.8.0.0/16", None),
        ];
        let group = db_group(&[(BACKEND, Some("changed by hand"))], &[]);
        let obs = observe(&set, live(vec![group], rules)).await.unwrap();
        let m = &set.security_group_ingresses[0];
        let desired = Unit::desired(&set, m, &obs);
        let live_doc = Unit::live(&set, m, &obs).unwrap();
        let cache = crate::reconcile::PassCache::default();
        let cx = Cx {
            ctx: &ctx,
            set: &set,
            cache: &cache,
        };
        let change = Change {
            desired: &desired,
            live: Some(&live_doc),
            replace: false,
        };
        let applied = Unit::apply(&cx, m, &obs, &change).await.unwrap();
        assert_eq!(applied.aws_id, DB);
        assert_eq!(
            (authorize.num_calls(), modify.num_calls(), revoke.num_calls()),
            (1, 1, 1)
        );
    }

    #[test]
    fn the_policy_scopes_writes_to_the_groups_by_id() {
        let set = set("");
        let p = crate::iam::policy(&set);
        let write = p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "SecurityGroupIngressWrite")
            .unwrap();
        assert_eq!(
            write["Resource"],
            json!([
                "arn:aws:ec2:*:*:security-group-rule/*",
                "arn:aws:ec2:*:*:security-group/sg-0db"
            ])
        );
        assert!(
            write["Action"]
                .as_array()
                .unwrap()
                .contains(&json!("ec2:RevokeSecurityGroupIngress"))
        );
        // Tags go on rules only, never on a group (which would make it mooring's).
        let tag_statements: Vec<&serde_json::Value> = p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["Sid"]
                    .as_str()
                    .is_some_and(|sid| sid.starts_with("SecurityGroupIngress"))
                    && s["Action"]
                        .as_array()
                        .is_some_and(|a| a.contains(&json!("ec2:CreateTags")))
            })
            .collect();
        assert_eq!(tag_statements.len(), 1, "{p:#}");
        assert_eq!(tag_statements[0]["Sid"], "SecurityGroupIngressTagRules");
        assert_eq!(
            tag_statements[0]["Resource"],
            json!(["arn:aws:ec2:*:*:security-group-rule/*"])
        );
    }
}
