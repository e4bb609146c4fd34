//! `kind: SecurityGroupIngress` — inbound rules that mooring adds to a security group it
//! does not own, e.g. the database's group, which another team manages: "5432 from the
//! backend's group". mooring owns only the rules it added (they carry its tags); the
//! group and every other rule in it are left alone.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kinds::security_group::spec::{IpProtocol, check_ports, port_range};
use crate::manifest::error::{Findings, dotted};

/// Rules added to an existing security group, found by ID or by name in a VPC. The group
/// must exist (mooring does not create it) and must not be one a `SecurityGroup` manifest
/// manages (that kind owns all of its group's rules: add them to its `ingress` instead).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityGroupIngressSpec {
    /// The group, by ID (`sg-…`). Set this or `groupName`.
    #[serde(default)]
    pub group_id: Option<String>,
    /// The group, by name (in `vpc`). Set this or `groupId`.
    #[serde(default)]
    pub group_name: Option<String>,
    /// The VPC of `groupName`: `default` (the account's default VPC, the default) or a VPC
    /// ID.
    #[serde(default)]
    pub vpc: Option<String>,
    /// The rules this manifest adds (at least one). Each is compared by protocol, ports and
    /// source; a changed description is updated in place.
    pub rules: Vec<IngressRule>,
}

/// One inbound rule: a protocol, a port range and one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressRule {
    /// `tcp` (default), `udp`, `icmp`, or `all` (every protocol and port).
    #[serde(default)]
    pub protocol: IpProtocol,
    /// A single port; shorthand for `fromPort` = `toPort`.
    #[serde(default)]
    pub port: Option<u16>,
    /// First port of the range (tcp/udp).
    #[serde(default)]
    pub from_port: Option<u16>,
    /// Last port of the range (tcp/udp).
    #[serde(default)]
    pub to_port: Option<u16>,
    /// Where the traffic comes from.
    pub from: Source,
    /// Shown in the console: at most 255 letters, digits, spaces and `._-:/()#,@[]+=&;{}!$*`
    /// (what EC2 accepts). Compared: a description changed by hand is put back.
    #[serde(default)]
    pub description: Option<String>,
}

/// The source of a rule's traffic: exactly one of `securityGroup`, `groupId` and `cidr`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Source {
    /// A `SecurityGroup` manifest of this stack, by name (it is created first).
    #[serde(default)]
    pub security_group: Option<String>,
    /// A security group mooring does not manage, by ID (`sg-…`).
    #[serde(default)]
    pub group_id: Option<String>,
    /// A CIDR block, IPv4 (`10.0.0.0/16`; a bare address is a /32) or IPv6 (`2001:db8::/32`).
    #[serde(default)]
    pub cidr: Option<String>,
}

/// A rule's source, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer<'a> {
    /// A `SecurityGroup` manifest.
    Manifest(&'a str),
    /// A security group by ID.
    Id(&'a str),
    /// An IPv4 block, normalised (`10.0.0.0/16`).
    Ipv4(String),
    /// An IPv6 block, normalised (`2001:db8::/32`).
    Ipv6(String),
}

/// `text` as the CIDR block EC2 stores, or why it is not one. A bare address is a host
/// (/32 or /128); the address must be the network's own (EC2 rejects `10.0.0.5/16`).
pub fn normalise_cidr(text: &str) -> Result<(String, bool), String> {
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (text, None),
    };
    let addr: std::net::IpAddr = ip
        .parse()
        .map_err(|_| format!("`{text}` is not a CIDR block (e.g. `10.0.0.0/16`)"))?;
    let bits: u32 = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => bits,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| *l <= bits)
            .ok_or_else(|| format!("`{text}` is not a CIDR block: the prefix is 0-{bits}"))?,
    };
    let host_bits_clear = match addr {
        std::net::IpAddr::V4(a) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & !mask == 0
        }
        std::net::IpAddr::V6(a) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            u128::from(a) & !mask == 0
        }
    };
    if !host_bits_clear {
        return Err(format!(
            "`{text}` has host bits set: write the network's own address (EC2 rejects it)"
        ));
    }
    Ok((format!("{addr}/{len}"), addr.is_ipv6()))
}

impl IngressRule {
    /// The port range EC2 stores: (-1, -1) for `all` and ICMP.
    pub fn ports(&self) -> (i32, i32) {
        port_range(self.protocol, self.port, self.from_port, self.to_port)
    }

    /// The rule's one source (`None` when the manifest does not name exactly one valid one;
    /// validation reports it).
    pub fn peer(&self) -> Option<Peer<'_>> {
        let s = &self.from;
        match (&s.security_group, &s.group_id, &s.cidr) {
            (Some(m), None, None) => Some(Peer::Manifest(m)),
            (None, Some(id), None) => Some(Peer::Id(id)),
            (None, None, Some(c)) => match normalise_cidr(c) {
                Ok((c, false)) => Some(Peer::Ipv4(c)),
                Ok((c, true)) => Some(Peer::Ipv6(c)),
                Err(_) => None,
            },
            _ => None,
        }
    }

    fn check(&self, p: &str, f: &mut Findings<'_>) {
        let s = &self.from;
        let sources = [
            s.security_group.is_some(),
            s.group_id.is_some(),
            s.cidr.is_some(),
        ];
        if sources.iter().filter(|x| **x).count() != 1 {
            f.at(
                &format!("{p}/from"),
                "set exactly one of `securityGroup`, `groupId` and `cidr`",
            );
        }
        if let Some(c) = &s.cidr
            && let Err(e) = normalise_cidr(c)
        {
            f.at(&format!("{p}/from/cidr"), e);
        }
        if let Some(id) = &s.group_id
            && !id.starts_with("sg-")
        {
            f.at(
                &format!("{p}/from/groupId"),
                format!("`{id}` does not look like a security group ID (`sg-…`)"),
            );
        }
        check_ports(
            self.protocol,
            [self.port, self.from_port, self.to_port],
            p,
            f,
        );
        if let Some(d) = &self.description
            && (d.len() > 255
                || !d
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c)))
        {
            f.at(
                &format!("{p}/description"),
                "at most 255 characters: letters, digits, spaces and ._-:/()#,@[]+=&;{}!$* (what EC2 accepts)",
            );
        }
    }


    /// What makes two rules the same in EC2: protocol, ports and source.
    pub fn identity(&self) -> Option<(IpProtocol, (i32, i32), Peer<'_>)> {
        Some((self.protocol, self.ports(), self.peer()?))
    }
}

/// Where the rules go, as the manifest names the group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target<'a> {
    /// By ID.
    Id(&'a str),
    /// By name, in a VPC (`default` or an ID).
    Named {
        /// The group's name.
        name: &'a str,
        /// The VPC.
        vpc: &'a str,
    },
}

impl std::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Id(id) => write!(f, "the security group {id}"),
            Target::Named { name, vpc } => {
                write!(f, "the security group `{name}` in VPC `{vpc}`")
            }
        }
    }
}

impl SecurityGroupIngressSpec {
    /// The group the rules go into (`None` when neither `groupId` nor `groupName` is set;
    /// validation reports it).
    pub fn target(&self) -> Option<Target<'_>> {
        match (&self.group_id, &self.group_name) {
            (Some(id), None) => Some(Target::Id(id)),
            (None, Some(name)) => Some(Target::Named {
                name,
                vpc: self.vpc.as_deref().unwrap_or("default"),
            }),
            _ => None,
        }
    }

    /// The `SecurityGroup` manifests the rules name, with the pointer of each.
    pub fn source_groups(&self) -> impl Iterator<Item = (String, &str)> {
        self.rules.iter().enumerate().filter_map(|(i, r)| {
            r.from
                .security_group
                .as_deref()
                .map(|name| (format!("/spec/rules/{i}/from/securityGroup"), name))
        })
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, f: &mut Findings<'_>) {
        match (&self.group_id, &self.group_name) {
            (Some(_), Some(_)) | (None, None) => {
                f.at("/spec", "set exactly one of `groupId` and `groupName`");
            }
            (Some(id), None) => {
                if !id.starts_with("sg-") {
                    f.at(
                        "/spec/groupId",
                        format!("`{id}` does not look like a security group ID (`sg-…`)"),
                    );
                }
                if self.vpc.is_some() {
                    f.at(
                        "/spec/vpc",
                        "`vpc` goes with `groupName` (an ID names one group already)",
                    );
                }
            }
            (None, Some(name)) => {
                if name.is_empty() || name.len() > 255 || name.starts_with("sg-") {
                    f.at(
                        "/spec/groupName",
                        format!("`{name}` is not a security group name (1-255 characters, not starting with `sg-`; use `groupId` for an ID)"),
                    );
                }
            }
        }
        if let Some(vpc) = &self.vpc
            && vpc != "default"
            && !vpc.starts_with("vpc-")
        {
            f.at("/spec/vpc", "must be `default` or a VPC ID (`vpc-…`)");
        }
        if self.rules.is_empty() {
            f.at("/spec/rules", "list at least one rule");
        }
        let mut seen = BTreeMap::new();
        for (i, r) in self.rules.iter().enumerate() {
            let p = format!("/spec/rules/{i}");
            r.check(&p, f);
            if let Some(id) = r.identity()
                && let Some(first) = seen.insert(format!("{id:?}"), p.clone())
            {
                f.at(&p, format!("the same rule as {}", dotted(&first)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;

    fn errors(spec: &str) -> Vec<String> {
        let text = format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroupIngress\nmetadata: {{name: db}}\nspec:\n{spec}"
        );
        match load_with_stack(&[("i.yaml".into(), text)]) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn cidrs_are_normalised_and_host_bits_refused() {
        assert_eq!(
            normalise_cidr("10.0.0.0/16").unwrap(),
            ("10.0.0.0/16".into(), false)
        );
        assert_eq!(
            normalise_cidr("10.1.2.3").unwrap(),
            ("10.1.2.3/32".into(), false)
        );
        assert_eq!(
            normalise_cidr("2001:DB8:0:0::/32").unwrap(),
            ("2001:db8::/32".into(), true)
        );
        assert!(normalise_cidr("10.0.0.5/16").unwrap_err().contains("host bits"));
        assert!(normalise_cidr("10.0.0.0/33").is_err());
        assert!(normalise_cidr("db.internal").is_err());
    }

    #[test]
    fn a_valid_manifest_loads() {
        let ok = "  groupName: salon-db\n  rules:\n    - {port: 5432, from: {cidr: 10.0.0.0/16}, description: office}\n    - {protocol: all, from: {groupId: sg-0abc}}\n    - {fromPort: 6000, toPort: 6010, from: {cidr: 10.1.2.3}}\n";
        assert_eq!(errors(ok), Vec::<String>::new());
        let by_id = "  groupId: sg-0db\n  rules:\n    - {port: 5432, from: {cidr: 10.0.0.0/16}}\n";
        assert_eq!(errors(by_id), Vec::<String>::new());
    }

    #[test]
    fn invalid_rules_and_targets_are_reported_with_their_place() {
        let errs = errors(
            "  groupId: db\n  vpc: main\n  rules:\n    - {port: 5432, from: {}}\n    - {port: 5432, from: {cidr: 10.0.0.0/16, groupId: sg-1}}\n    - {fromPort: 90, toPort: 80, from: {cidr: 10.0.0.5/16}}\n    - {protocol: icmp, port: 1, from: {groupId: x-1}}\n    - {port: 22, from: {cidr: 10.0.0.0/8}}\n    - {port: 22, from: {cidr: 10.0.0.0/8}, description: \"again?\"}\n",
        );
        for expected in [
            "i.yaml:5:3: spec.groupId: `db` does not look like a security group ID",
            "spec.vpc: `vpc` goes with `groupName`",
            "spec.vpc: must be `default` or a VPC ID",
            "spec.rules[0].from: set exactly one of `securityGroup`, `groupId` and `cidr`",
            "spec.rules[1].from: set exactly one of",
            "spec.rules[2].from.cidr: `10.0.0.5/16` has host bits set",
            "spec.rules[2].toPort: the range 90-80 ends before it starts",
            "spec.rules[3]: `icmp` rules take no ports",
            "spec.rules[3].from.groupId: `x-1` does not look like a security group ID",
            "spec.rules[5]: the same rule as spec.rules[4]",
            "spec.rules[5].description: at most 255 characters: letters, digits",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "missing {expected:?} in {errs:#?}"
            );
        }
        let errs = errors("  rules: []\n");
        assert!(
            errs.iter()
                .any(|e| e.contains("spec: set exactly one of `groupId` and `groupName`")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("spec.rules: list at least one rule")),
            "{errs:#?}"
        );
    }
}
