//! `kind: SecurityGroup` — a VPC security group and its rules: the load balancer open to
//! the world on 443, the service open to the load balancer, Redis open to the service.
//! Rules name other groups by manifest name, so no `sg-…` ID has to live in git.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::Metadata;
use crate::manifest::common::check_tags;
use crate::manifest::error::Findings;

/// A security group in one VPC. mooring owns every rule of a group it manages: a rule
/// someone adds by hand is drift and is revoked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityGroupSpec {
    /// Name in EC2 (at most 255 characters, not starting with `sg-`). Defaults to
    /// `metadata.name`. Changing it replaces the group.
    #[serde(default)]
    pub group_name: Option<String>,
    /// Description (EC2 cannot change it later: changing it replaces the group). Defaults
    /// to `Managed by mooring (<name>)`.
    #[serde(default)]
    pub description: Option<String>,
    /// `default` for the account's default VPC, or a VPC ID. Changing it replaces the
    /// group.
    pub vpc: String,
    /// Inbound rules. Empty: nothing may connect.
    #[serde(default)]
    pub ingress: Vec<SecurityGroupRule>,
    /// Outbound rules. Unset: left as EC2 creates them (all traffic to anywhere) and not
    /// compared. Set (even to `[]`): exactly these.
    #[serde(default)]
    pub egress: Option<Vec<SecurityGroupRule>>,
    /// Tags (the ownership tags are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// One rule: a protocol, a port range and one peer (a CIDR block or another group).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityGroupRule {
    /// `tcp` (default), `udp`, `icmp`, or `all` (every protocol and port).
    #[serde(default)]
    pub ip_protocol: IpProtocol,
    /// A single port; shorthand for `fromPort` = `toPort`.
    #[serde(default)]
    pub port: Option<u16>,
    /// First port of the range (tcp/udp).
    #[serde(default)]
    pub from_port: Option<u16>,
    /// Last port of the range (tcp/udp).
    #[serde(default)]
    pub to_port: Option<u16>,
    /// An IPv4 CIDR block, e.g. `0.0.0.0/0`.
    #[serde(default)]
    pub cidr_ip: Option<String>,
    /// Another `SecurityGroup` manifest, by name (the source of inbound traffic, the
    /// destination of outbound).
    #[serde(default)]
    pub security_group: Option<String>,
    /// A security group mooring does not manage, by ID (`sg-…`).
    #[serde(default)]
    pub security_group_id: Option<String>,
    /// Shown in the console. Set when the rule is added; not compared afterwards.
    #[serde(default)]
    pub description: Option<String>,
}

/// The protocols a rule can name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum IpProtocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (ports are not used).
    Icmp,
    /// Every protocol and port (EC2's `-1`).
    All,
}

impl IpProtocol {
    /// The value EC2 uses.
    pub fn as_ec2(self) -> &'static str {
        match self {
            IpProtocol::Tcp => "tcp",
            IpProtocol::Udp => "udp",
            IpProtocol::Icmp => "icmp",
            IpProtocol::All => "-1",
        }
    }

    /// The name a manifest uses.
    pub fn as_str(self) -> &'static str {
        match self {
            IpProtocol::Tcp => "tcp",
            IpProtocol::Udp => "udp",
            IpProtocol::Icmp => "icmp",
            IpProtocol::All => "all",
        }
    }
}

/// Where a rule's traffic comes from or goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer<'a> {
    /// A CIDR block.
    Cidr(&'a str),
    /// A `SecurityGroup` manifest.
    Manifest(&'a str),
    /// A security group by ID.
    Id(&'a str),
}

impl SecurityGroupRule {
    /// The port range EC2 stores: (-1, -1) for `all` and ICMP.
    pub fn ports(&self) -> (i32, i32) {
        port_range(self.ip_protocol, self.port, self.from_port, self.to_port)
    }

    /// The rule's one peer (validation guarantees there is exactly one).
    pub fn peer(&self) -> Option<Peer<'_>> {
        match (&self.cidr_ip, &self.security_group, &self.security_group_id) {
            (Some(c), None, None) => Some(Peer::Cidr(c)),
            (None, Some(m), None) => Some(Peer::Manifest(m)),
            (None, None, Some(id)) => Some(Peer::Id(id)),
            _ => None,
        }
    }

    fn check(&self, p: &str, f: &mut Findings<'_>) {
        let peers = [
            self.cidr_ip.is_some(),
            self.security_group.is_some(),
            self.security_group_id.is_some(),
        ];
        if peers.iter().filter(|x| **x).count() != 1 {
            f.at(
                p,
                "set exactly one of `cidrIp`, `securityGroup` and `securityGroupId`",
            );
        }
        if let Some(c) = &self.cidr_ip
            && !is_ipv4_cidr(c)
        {
            f.at(
                &format!("{p}/cidrIp"),
                format!("`{c}` is not an IPv4 CIDR block (e.g. `10.0.0.0/16`)"),
            );
        }
        if let Some(id) = &self.security_group_id
            && !id.starts_with("sg-")
        {
            f.at(
                &format!("{p}/securityGroupId"),
                format!("`{id}` does not look like a security group ID (`sg-…`)"),
            );
        }
        check_ports(
            self.ip_protocol,
            [self.port, self.from_port, self.to_port],
            p,
            f,
        );
    }
}

/// Whether `s` is an IPv4 network address with its prefix length (`10.0.0.0/16`).
pub(crate) fn is_ipv4_cidr(s: &str) -> bool {
    let Some((ip, len)) = s.split_once('/') else {
        return false;
    };
    // The network address itself: EC2 rejects (or rewrites) `10.0.0.5/16`, which would be
    // a failure or a drift that never clears.
    match (ip.parse::<std::net::Ipv4Addr>(), len.parse::<u32>()) {
        (Ok(ip), Ok(len)) if len <= 32 => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(ip) & !mask == 0
        }
        _ => false,
    }
}

impl SecurityGroupSpec {
    /// The group's name in EC2.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.group_name.as_deref().unwrap_or(&meta.name)
    }

    /// The description, default filled in.
    pub fn description(&self, meta: &Metadata) -> String {
        self.description
            .clone()
            .unwrap_or_else(|| format!("Managed by mooring ({})", meta.name))
    }

    /// Every rule with its JSON pointer: ingress, then egress.
    pub fn rules(&self) -> impl Iterator<Item = (String, &SecurityGroupRule)> {
        let ingress = self
            .ingress
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("/spec/ingress/{i}"), r));
        let egress = self
            .egress
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, r)| (format!("/spec/egress/{i}"), r));
        ingress.chain(egress)
    }

    /// The `SecurityGroup` manifests this one's rules name.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.rules()
            .filter_map(|(_, r)| r.security_group.as_deref())
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        let name = self.aws_name(meta);
        if name.is_empty() || name.len() > 255 || name.starts_with("sg-") {
            f.at(
                "/spec/groupName",
                format!("`{name}` is not a valid security group name (1-255 characters, not starting with `sg-`)"),
            );
        }
        let description = self.description(meta);
        if description.len() > 255 || !description.is_ascii() {
            f.at(
                "/spec/description",
                "at most 255 ASCII characters (EC2's limit)",
            );
        }
        if self.vpc != "default" && !self.vpc.starts_with("vpc-") {
            f.at("/spec/vpc", "must be `default` or a VPC ID (`vpc-…`)");
        }
        let mut seen = BTreeMap::new();
        for (p, r) in self.rules() {
            r.check(&p, f);
            let direction = if p.starts_with("/spec/ingress") {
                "ingress"
            } else {
                "egress"
            };
            let key = (
                direction,
                r.ip_protocol,
                r.ports(),
                format!("{:?}", r.peer()),
            );
            if let Some(first) = seen.insert(key, p.clone()) {
                f.at(
                    &p,
                    format!("the same rule as {}", crate::manifest::error::dotted(&first)),
                );
            }
        }
        check_tags(&self.tags, "/spec/tags", f);
    }
}

/// The port range EC2 stores for a rule written with `port`, or `fromPort` and `toPort`:
/// (-1, -1) for `all` and ICMP.
pub fn port_range(
    protocol: IpProtocol,
    port: Option<u16>,
    from_port: Option<u16>,
    to_port: Option<u16>,
) -> (i32, i32) {
    match protocol {
        IpProtocol::All | IpProtocol::Icmp => (-1, -1),
        _ => {
            let from = port.or(from_port).map_or(-1, i32::from);
            let to = port.or(to_port).or(from_port);
            (from, to.map_or(-1, i32::from))
        }
    }
}

/// Checks the ports of a rule at JSON pointer `p`: tcp and udp take `port`, or `fromPort`
/// and `toPort` (1-65535, in order); `all` and ICMP take none.
pub fn check_ports(
    protocol: IpProtocol,
    [port, from_port, to_port]: [Option<u16>; 3],
    p: &str,
    f: &mut Findings<'_>,
) {
    match protocol {
        IpProtocol::Tcp | IpProtocol::Udp => {
            match (port, from_port, to_port) {
                (Some(_), None, None) | (None, Some(_), Some(_)) => {}
                (Some(_), _, _) => f.at(
                    &format!("{p}/port"),
                    "set either `port` or `fromPort` and `toPort`, not both",
                ),
                _ => f.at(
                    p,
                    "a tcp or udp rule needs `port`, or `fromPort` and `toPort`",
                ),
            }
            let (from, to) = port_range(protocol, port, from_port, to_port);
            if from == 0 || to == 0 {
                f.at(p, "ports are 1-65535");
            } else if from > to {
                f.at(
                    &format!("{p}/toPort"),
                    format!("the range {from}-{to} ends before it starts"),
                );
            }
        }
        IpProtocol::All | IpProtocol::Icmp => {
            if port.is_some() || from_port.is_some() || to_port.is_some() {
                f.at(p, format!("`{}` rules take no ports", protocol.as_str()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::load::load_with_stack;

    fn errors(spec: &str) -> Vec<String> {
        let text = format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroup\nmetadata: {{name: app}}\nspec:\n{spec}"
        );
        match load_with_stack(&[("sg.yaml".into(), text)]) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn rules_need_one_peer_and_sane_ports() {
        assert!(errors("  vpc: default\n  ingress:\n    - {port: 443, cidrIp: 0.0.0.0/0}\n    - {ipProtocol: all, securityGroupId: sg-1}\n").is_empty());
        let errs = errors(
            "  vpc: main\n  ingress:\n    - {port: 443}\n    - {port: 80, cidrIp: 0.0.0.0/0, securityGroupId: sg-1}\n    - {fromPort: 90, toPort: 80, cidrIp: 10.0.0.0/33}\n    - {ipProtocol: all, port: 1, securityGroupId: x-1}\n    - {port: 443, cidrIp: 0.0.0.0/0}\n    - {port: 443, cidrIp: 0.0.0.0/0}\n    - {port: 22, cidrIp: 10.0.0.5/16}\n",
        );
        for expected in [
            "sg.yaml:5:3: spec.vpc: must be `default` or a VPC ID",
            "spec.ingress[0]: set exactly one of `cidrIp`, `securityGroup` and `securityGroupId`",
            "spec.ingress[1]: set exactly one of",
            "spec.ingress[2].cidrIp: `10.0.0.0/33` is not an IPv4 CIDR block",
            "spec.ingress[2].toPort: the range 90-80 ends before it starts",
            "spec.ingress[3]: `all` rules take no ports",
            "spec.ingress[3].securityGroupId: `x-1` does not look like a security group ID",
            "spec.ingress[5]: the same rule as spec.ingress[4]",
            "spec.ingress[6].cidrIp: `10.0.0.5/16` is not an IPv4 CIDR block",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "missing {expected:?} in {errs:#?}"
            );
        }
    }
}
