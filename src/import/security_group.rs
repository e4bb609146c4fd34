//! Security groups (`security-groups.yaml`): those the imported services and load balancers
//! use, and those a CloudFormation stack or a tag picked (`AWS::EC2::SecurityGroup`).
//!
//! A rule naming another imported group names its manifest (`securityGroup:`); one naming a
//! group that is not imported keeps its ID (`securityGroupId:`). Manifests cannot name each
//! other in a cycle (neither could be created first), so a reference that would close one
//! keeps the ID, with a note (ingress references are kept as names before egress ones). The
//! VPC's `default` group is never imported (EC2 makes it with the VPC and mooring would own
//! every rule of it): it stays an ID wherever it is used.
//!
//! Ingress rules a manifest cannot express (IPv6 blocks, prefix lists, other protocols,
//! ICMP types, another account's group) are reported and put the group in observe mode.
//! Egress is written only when it is not EC2's default (all traffic to anywhere) and every
//! rule can be expressed; otherwise it is left out, which leaves it as it is and
//! uncompared (a note says why), so no observe mode is needed for it.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{Filter, IpPermission, SecurityGroup};
use serde_json::{Map, Value, json};

use super::{Ctx, Imported, Names, user_tags};
use crate::kinds::network::describe_security_groups;
use crate::kinds::security_group::spec::is_ipv4_cidr;

/// The imported security groups.
#[derive(Default)]
pub(crate) struct Groups {
    /// Their manifests, by group name.
    pub docs: Vec<Imported>,
    /// Group ID → manifest name, for each group imported.
    pub ids: BTreeMap<String, String>,
}

/// Reads the groups `reached` (by the services and load balancers) and `picked` (by a
/// stack or a tag) and builds their manifests. A picked group that is not imported is
/// added to `left_out` with why; a reached one just stays an ID where it is used.
pub(crate) async fn read(
    cx: &Ctx<'_>,
    reached: &BTreeSet<String>,
    picked: &BTreeSet<String>,
    names: &mut Names,
    left_out: &mut BTreeMap<String, String>,
) -> Result<Groups, String> {
    let wanted: Vec<String> = reached.union(picked).cloned().collect();
    let mut groups = Vec::new();
    for chunk in wanted.chunks(100) {
        let f = Filter::builder()
            .name("group-id")
            .set_values(Some(chunk.to_vec()))
            .build();
        let found = describe_security_groups(cx.aws, vec![f])
            .await
            .map_err(|e| format!("failed to read security groups: {e}"))?;
        groups.extend(found);
    }
    for id in picked {
        let label = format!("AWS::EC2::SecurityGroup {id}");
        match groups.iter().find(|g| g.group_id() == Some(id.as_str())) {
            None => {
                left_out.insert(label, "it does not exist".into());
            }
            Some(g) if g.group_name() == Some("default") => {
                left_out.insert(
                    label,
                    "the VPC's default group is not imported (EC2 makes it with the VPC); it stays an ID where it is used".into(),
                );
            }
            Some(_) => {}
        }
    }
    Ok(build(&groups, &cx.account, &cx.region, names))
}

/// Builds the manifests of `groups` (pure): see the module's doc.
pub(crate) fn build(
    groups: &[SecurityGroup],
    account: &str,
    region: &str,
    names: &mut Names,
) -> Groups {
    let mut kept: Vec<&SecurityGroup> = Vec::new();
    for g in groups {
        let id = g.group_id().unwrap_or_default();
        if g.group_name() == Some("default") || g.vpc_id().is_none() || id.is_empty() {
            continue;
        }
        if names.refuse("security group", id, tags(g)) {
            continue;
        }
        kept.push(g);
    }
    kept.sort_by(|a, b| (a.group_name(), a.group_id()).cmp(&(b.group_name(), b.group_id())));
    kept.dedup_by(|a, b| a.group_id() == b.group_id());
    let mut out = Groups::default();
    for g in &kept {
        let name = names.take_owned("SecurityGroup", g.group_name().unwrap_or_default(), tags(g));
        out.ids
            .insert(g.group_id().unwrap_or_default().to_string(), name);
    }

    // Egress is written only when it is expressible and not EC2's default.
    let by_id = |id: &str| Peer::Id(id.to_string());
    let egress_written: BTreeMap<&str, bool> = kept
        .iter()
        .map(|g| {
            let (rules, cannot) = convert(g.ip_permissions_egress(), account, &by_id);
            let id = g.group_id().unwrap_or_default();
            (
                id,
                cannot.is_empty() && !rules.is_empty() && !is_default_egress(&rules),
            )
        })
        .collect();

    // References between imported groups, ingress first, none closing a cycle.
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut broken: BTreeSet<(String, String)> = BTreeSet::new();
    let peers = |perms: &[IpPermission]| -> Vec<String> {
        perms
            .iter()
            .flat_map(|p| p.user_id_group_pairs())
            .filter_map(|u| u.group_id().map(str::to_string))
            .collect()
    };
    let candidates = kept.iter().map(|g| (g, peers(g.ip_permissions()))).chain(
        kept.iter()
            .filter(|g| egress_written[g.group_id().unwrap_or_default()])
            .map(|g| (g, peers(g.ip_permissions_egress()))),
    );
    for (g, to) in candidates {
        let from = g.group_id().unwrap_or_default().to_string();
        for to in to {
            if to == from || !out.ids.contains_key(&to) {
                continue;
            }
            if edges.get(&from).is_some_and(|s| s.contains(&to)) {
                continue;
            }
            if reaches(&edges, &to, &from) {
                broken.insert((from.clone(), to));
            } else {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }

    for g in kept {
        let id = g.group_id().unwrap_or_default();
        let name = out.ids[id].clone();
        let peer = |peer: &str| {
            let named = peer == id || edges.get(id).is_some_and(|s| s.contains(peer));
            match out.ids.get(peer) {
                Some(n) if named => Peer::Manifest(n.clone()),
                _ => Peer::Id(peer.to_string()),
            }
        };
        let (ingress, cannot) = convert(g.ip_permissions(), account, &peer);
        let mut notes = Vec::new();
        for (_, to) in broken.iter().filter(|(f, _)| f == id) {
            notes.push(format!(
                "names {to} (SecurityGroup `{}`) by ID: that group's rules name this one too, and manifests cannot name each other in a cycle",
                out.ids[to]
            ));
        }
        let mut spec = Map::new();
        let group_name = g.group_name().unwrap_or_default();
        spec.insert("groupName".into(), json!(group_name));
        let description = g.description().unwrap_or_default();
        if description != format!("Managed by mooring ({name})") {
            spec.insert("description".into(), json!(description));
        }
        spec.insert("vpc".into(), json!(g.vpc_id()));
        spec.insert("ingress".into(), json!(ingress));
        let (egress, egress_cannot) = convert(g.ip_permissions_egress(), account, &peer);
        if egress_written[id] {
            spec.insert("egress".into(), json!(egress));
        } else if !egress_cannot.is_empty() {
            notes.push(format!(
                "`egress` is left out, so mooring leaves the outbound rules as they are and does not compare them: it cannot write {}",
                egress_cannot.join("; ")
            ));
        } else if egress.is_empty() {
            notes.push(
                "the group allows no outbound traffic; `egress` is left out (not compared): add `egress: []` to keep it so"
                    .into(),
            );
        }
        spec.insert("tags".into(), user_tags(tags(g)));
        let arn = format!(
            "arn:aws:ec2:{region}:{}:security-group/{id}",
            g.owner_id().unwrap_or(account)
        );
        let mut doc = Imported::new("SecurityGroup", name, arn, Value::Object(spec));
        doc.cannot_carry = cannot
            .into_iter()
            .map(|c| format!("ingress: {c}"))
            .collect();
        doc.notes = notes;
        out.docs.push(doc);
    }
    out
}

/// The live tags of a group.
fn tags(g: &SecurityGroup) -> impl Iterator<Item = (&str, &str)> {
    g.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)))
}

/// Whether `to` reaches `from` through `edges` (so `from` → `to` would close a cycle).
fn reaches(edges: &BTreeMap<String, BTreeSet<String>>, to: &str, from: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![to.to_string()];
    while let Some(n) = stack.pop() {
        if n == from {
            return true;
        }
        if seen.insert(n.clone()) {
            stack.extend(edges.get(&n).into_iter().flatten().cloned());
        }
    }
    false
}

/// How a rule names another group.
enum Peer {
    /// A `SecurityGroup` manifest.
    Manifest(String),
    /// A group by ID.
    Id(String),
}

/// EC2's default egress: all traffic to anywhere (IPv4).
fn is_default_egress(rules: &[Value]) -> bool {
    matches!(rules, [r] if r.get("ipProtocol") == Some(&json!("all")) && r.get("cidrIp") == Some(&json!("0.0.0.0/0")))
}

/// The rules of `perms` as a manifest writes them (one per peer), and what cannot be
/// written (`tcp 443 ::/0 (IPv6)`, with why).
fn convert(
    perms: &[IpPermission],
    account: &str,
    peer: &dyn Fn(&str) -> Peer,
) -> (Vec<Value>, Vec<String>) {
    let mut rules = Vec::new();
    let mut cannot = Vec::new();
    for p in perms {
        let raw = p.ip_protocol().unwrap_or("-1");
        let (from, to) = (p.from_port(), p.to_port());
        let shown_ports = match (from, to) {
            (None | Some(-1), None | Some(-1)) => String::new(),
            (Some(a), Some(b)) if a == b => format!(" {a}"),
            (a, b) => format!(" {}-{}", a.unwrap_or(-1), b.unwrap_or(-1)),
        };
        let protocol = match raw {
            "tcp" | "6" => "tcp",
            "udp" | "17" => "udp",
            "icmp" | "1" => "icmp",
            "-1" => "all",
            other => {
                cannot.push(format!(
                    "protocol {other}{shown_ports}: a rule is tcp, udp, icmp or all"
                ));
                continue;
            }
        };
        let shown = format!("{protocol}{shown_ports}");
        let mut head = Map::new();
        if protocol != "tcp" {
            head.insert("ipProtocol".into(), json!(protocol));
        }
        match protocol {
            "tcp" | "udp" => match (from, to) {
                (Some(a), Some(b)) if (1..=65535).contains(&a) && a == b => {
                    head.insert("port".into(), json!(a));
                }
                (Some(a), Some(b)) if (1..=65535).contains(&a) && a < b && b <= 65535 => {
                    head.insert("fromPort".into(), json!(a));
                    head.insert("toPort".into(), json!(b));
                }
                _ => {
                    cannot.push(format!("{shown}: ports are 1-65535"));
                    continue;
                }
            },
            "icmp" if !shown_ports.is_empty() => {
                cannot.push(format!(
                    "{shown}: an ICMP type or code (a rule allows all of ICMP)"
                ));
                continue;
            }
            _ => {}
        }
        let rule = |peer: (&str, Value), description: Option<&str>| {
            let mut r = head.clone();
            r.insert(peer.0.into(), peer.1);
            if let Some(d) = description.filter(|d| !d.is_empty()) {
                r.insert("description".into(), json!(d));
            }
            Value::Object(r)
        };
        for r in p.ip_ranges() {
            let Some(c) = r.cidr_ip() else { continue };
            if is_ipv4_cidr(c) {
                rules.push(rule(("cidrIp", json!(c)), r.description()));
            } else {
                cannot.push(format!("{shown} {c}: not a network address"));
            }
        }
        for r in p.ipv6_ranges() {
            cannot.push(format!(
                "{shown} {} (IPv6): a rule names an IPv4 block or a group",
                r.cidr_ipv6().unwrap_or_default()
            ));
        }
        for l in p.prefix_list_ids() {
            cannot.push(format!(
                "{shown} {} (prefix list): a rule names an IPv4 block or a group",
                l.prefix_list_id().unwrap_or_default()
            ));
        }
        for u in p.user_id_group_pairs() {
            let Some(id) = u.group_id() else {
                cannot.push(format!("{shown}: a group named without its ID"));
                continue;
            };
            if u.user_id().is_some_and(|a| a != account) || u.vpc_peering_connection_id().is_some()
            {
                cannot.push(format!(
                    "{shown} {id}: a group of another account or a peered VPC"
                ));
                continue;
            }
            let named = match peer(id) {
                Peer::Manifest(n) => ("securityGroup", json!(n)),
                Peer::Id(i) => ("securityGroupId", json!(i)),
            };
            rules.push(rule(named, u.description()));
        }
    }
    (rules, cannot)
}

/// Rewrites the security group IDs at `pointer` of `doc`'s spec (`{ids: […]}`) to manifest
/// names (`{refs: […]}`) when every one of them is imported. A selector takes either IDs
/// or names, so when only some are, all stay IDs, with a note.
pub(crate) fn refer(doc: &mut Imported, pointer: &str, imported: &BTreeMap<String, String>) {
    let Some(selector) = doc.spec.pointer_mut(pointer) else {
        return;
    };
    let ids: Vec<String> = selector["ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if ids.is_empty() {
        return;
    }
    let (named, not): (Vec<&String>, Vec<&String>) =
        ids.iter().partition(|id| imported.contains_key(*id));
    if !not.is_empty() {
        if !named.is_empty() {
            let field = pointer.trim_start_matches('/').replace('/', ".");
            doc.notes.push(format!(
                "`{field}` stays IDs: {} is not imported, and it takes either IDs or SecurityGroup manifests (`refs`), not both",
                not.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        return;
    }
    let refs: Vec<&String> = ids.iter().map(|id| &imported[id]).collect();
    *selector = json!({ "refs": refs });
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{IpRange, Ipv6Range, Tag, UserIdGroupPair};

    const ACCOUNT: &str = "123456789012";

    fn tcp(port: i32) -> aws_sdk_ec2::types::builders::IpPermissionBuilder {
        IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(port)
            .to_port(port)
    }

    fn from_group(port: i32, id: &str) -> IpPermission {
        tcp(port)
            .user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(id)
                    .user_id(ACCOUNT)
                    .build(),
            )
            .build()
    }

    fn all_out() -> IpPermission {
        IpPermission::builder()
            .ip_protocol("-1")
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build()
    }

    fn group(
        id: &str,
        name: &str,
        ingress: Vec<IpPermission>,
        egress: Vec<IpPermission>,
    ) -> SecurityGroup {
        SecurityGroup::builder()
            .group_id(id)
            .group_name(name)
            .description(format!("{name} group"))
            .vpc_id("vpc-1")
            .owner_id(ACCOUNT)
            .set_ip_permissions(Some(ingress))
            .set_ip_permissions_egress(Some(egress))
            .build()
    }

    fn names() -> Names {
        let mut n = Names::default();
        n.for_stack("shop");
        n
    }

    #[test]
    fn rules_name_imported_groups_by_manifest_and_others_by_id_without_cycles() {
        let groups = [
            // The load balancer: open on 443, and (as CDK writes it) egress to the service.
            group(
                "sg-alb",
                "Shop-LbSg-1A",
                vec![
                    tcp(443)
                        .ip_ranges(
                            IpRange::builder()
                                .cidr_ip("0.0.0.0/0")
                                .description("https")
                                .build(),
                        )
                        .build(),
                ],
                vec![from_group(3000, "sg-svc")],
            ),
            // The service: from the load balancer, from itself, and from a group not imported.
            group(
                "sg-svc",
                "Shop-SvcSg-2B",
                vec![
                    from_group(3000, "sg-alb"),
                    from_group(3000, "sg-svc"),
                    from_group(22, "sg-other"),
                ],
                vec![all_out()],
            ),
            group("sg-def", "default", vec![], vec![all_out()]),
        ];
        let out = build(&groups, ACCOUNT, "eu-west-1", &mut names());
        assert_eq!(
            out.ids,
            BTreeMap::from([
                ("sg-alb".to_string(), "shop-lbsg-1a".to_string()),
                ("sg-svc".to_string(), "shop-svcsg-2b".to_string()),
            ]),
            "the default group is not imported"
        );
        let svc = out.docs.iter().find(|d| d.name == "shop-svcsg-2b").unwrap();
        assert_eq!(
            svc.spec["ingress"],
            json!([
                {"port": 3000, "securityGroup": "shop-lbsg-1a"},
                {"port": 3000, "securityGroup": "shop-svcsg-2b"},
                {"port": 22, "securityGroupId": "sg-other"},
            ])
        );
        assert_eq!(
            svc.spec.get("egress"),
            None,
            "EC2's default egress is left out"
        );
        assert!(svc.cannot_carry.is_empty(), "{:?}", svc.cannot_carry);
        let alb = out.docs.iter().find(|d| d.name == "shop-lbsg-1a").unwrap();
        assert_eq!(
            alb.spec["ingress"],
            json!([{"port": 443, "cidrIp": "0.0.0.0/0", "description": "https"}])
        );
        // The service's ingress names the load balancer's group, so the load balancer's
        // egress keeps the service's ID: manifests cannot name each other in a cycle.
        assert_eq!(
            alb.spec["egress"],
            json!([{"port": 3000, "securityGroupId": "sg-svc"}])
        );
        assert!(alb.notes[0].contains("cycle"), "{:?}", alb.notes);
        assert_eq!(alb.spec["groupName"], json!("Shop-LbSg-1A"));
        assert_eq!(alb.spec["description"], json!("Shop-LbSg-1A group"));
        assert_eq!(alb.spec["vpc"], json!("vpc-1"));
        assert!(alb.render().contains("mooring.dev/adopt: \"true\""));
    }

    #[test]
    fn what_a_rule_cannot_express_is_reported_and_observed() {
        let groups = [group(
            "sg-1",
            "web",
            vec![
                tcp(443)
                    .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
                    .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
                    .build(),
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(0)
                    .to_port(65535)
                    .ip_ranges(IpRange::builder().cidr_ip("10.1.0.0/16").build())
                    .build(),
                IpPermission::builder()
                    .ip_protocol("icmp")
                    .from_port(8)
                    .to_port(-1)
                    .ip_ranges(IpRange::builder().cidr_ip("10.1.0.0/16").build())
                    .build(),
                tcp(5432)
                    .user_id_group_pairs(
                        UserIdGroupPair::builder()
                            .group_id("sg-far")
                            .user_id("999999999999")
                            .build(),
                    )
                    .build(),
            ],
            vec![
                all_out(),
                IpPermission::builder()
                    .ip_protocol("-1")
                    .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
                    .build(),
            ],
        )];
        let out = build(&groups, ACCOUNT, "eu-west-1", &mut names());
        let d = &out.docs[0];
        assert_eq!(
            d.spec["ingress"],
            json!([{"port": 443, "cidrIp": "10.0.0.0/8"}]),
            "what can be written is"
        );
        let cannot = d.cannot_carry.join("\n");
        for expected in [
            "ingress: tcp 443 ::/0 (IPv6)",
            "ingress: tcp 0-65535: ports are 1-65535",
            "ingress: icmp 8--1: an ICMP type or code",
            "ingress: tcp 5432 sg-far: a group of another account",
        ] {
            assert!(cannot.contains(expected), "no {expected:?} in {cannot}");
        }
        assert!(d.render().contains("mooring.dev/mode: observe"));
        // Egress it cannot write is left out (not compared), with a note, not observed for.
        assert_eq!(d.spec.get("egress"), None);
        assert!(
            d.notes
                .iter()
                .any(|n| n.contains("`egress` is left out") && n.contains("::/0")),
            "{:?}",
            d.notes
        );
    }

    #[test]
    fn another_stacks_group_is_left_out_and_selectors_name_manifests_only_when_all_are() {
        let mut theirs = group("sg-blog", "blog", vec![], vec![all_out()]);
        theirs.tags = Some(vec![
            Tag::builder()
                .key("mooring.dev/stack")
                .value("blog")
                .build(),
            Tag::builder()
                .key("mooring.dev/resource")
                .value("SecurityGroup/web")
                .build(),
        ]);
        let mut n = names();
        let out = build(
            &[theirs, group("sg-1", "web", vec![], vec![all_out()])],
            ACCOUNT,
            "eu-west-1",
            &mut n,
        );
        assert_eq!(out.ids.keys().collect::<Vec<_>>(), ["sg-1"]);
        assert!(n.refused("security group", "sg-blog"));

        let mut doc = Imported::new(
            "Service",
            "api".into(),
            "arn".into(),
            json!({"network": {"securityGroups": {"ids": ["sg-1"]}}}),
        );
        refer(&mut doc, "/network/securityGroups", &out.ids);
        assert_eq!(
            doc.spec["network"]["securityGroups"],
            json!({"refs": ["web"]})
        );
        let mut doc = Imported::new(
            "LoadBalancer",
            "lb".into(),
            "arn".into(),
            json!({"securityGroups": {"ids": ["sg-1", "sg-blog"]}}),
        );
        refer(&mut doc, "/securityGroups", &out.ids);
        assert_eq!(
            doc.spec["securityGroups"],
            json!({"ids": ["sg-1", "sg-blog"]})
        );
        assert!(
            doc.notes[0].contains("sg-blog is not imported"),
            "{:?}",
            doc.notes
        );
    }
}
