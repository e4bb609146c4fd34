//! `kind: LoadBalancer` — an Application Load Balancer and its listeners (typically HTTPS
//! on 443 with an ACM certificate forwarding to a target group, and HTTP on 80
//! redirecting to HTTPS).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::Metadata;
use crate::manifest::common::check_tags;
use crate::manifest::error::Findings;
use crate::manifest::common::NetworkSelector;
use crate::manifest::common::check_elbv2_name;

/// An Application Load Balancer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadBalancerSpec {
    /// Name in ELBv2 (at most 32 letters, digits and inner hyphens). Defaults to
    /// `metadata.name`. Changing it replaces the load balancer.
    #[serde(default)]
    pub load_balancer_name: Option<String>,
    /// Reachable from the internet or only inside the VPC. Changing it replaces the load
    /// balancer.
    #[serde(default)]
    pub scheme: Scheme,
    /// Subnets (at least two, in different availability zones).
    pub subnets: NetworkSelector,
    /// Security groups of the load balancer.
    pub security_groups: NetworkSelector,
    /// Listeners by port; listeners on other ports are left alone.
    pub listeners: Vec<ListenerSpec>,
    /// Tags (the ownership tags are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Load balancer scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// Public.
    #[default]
    InternetFacing,
    /// VPC only.
    Internal,
}

impl Scheme {
    /// The name ELBv2 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::InternetFacing => "internet-facing",
            Scheme::Internal => "internal",
        }
    }
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenerSpec {
    /// Port, e.g. 443.
    pub port: u16,
    /// `HTTP` or `HTTPS`.
    pub protocol: ListenerProtocol,
    /// ACM certificate ARN. An HTTPS listener needs this or `certificate`.
    #[serde(default)]
    pub certificate_arn: Option<String>,
    /// The ACM certificate found by domain at reconcile time (an `ISSUED` certificate
    /// whose domain or alternative names include it), so manifests stay portable between
    /// accounts.
    #[serde(default)]
    pub certificate: Option<CertificateLookup>,
    /// TLS policy for HTTPS. Default `ELBSecurityPolicy-TLS13-1-2-2021-06`.
    #[serde(default)]
    pub ssl_policy: Option<String>,
    /// What the listener does with every request.
    pub default_action: ListenerAction,
}

/// An ACM certificate, looked up by domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateLookup {
    /// Domain the certificate is for, e.g. `api.example.com`.
    pub domain_name: String,
}

/// Listener protocols of an Application Load Balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ListenerProtocol {
    /// Plain HTTP.
    HTTP,
    /// TLS-terminating HTTPS.
    HTTPS,
}

impl ListenerProtocol {
    /// The name ELBv2 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerProtocol::HTTP => "HTTP",
            ListenerProtocol::HTTPS => "HTTPS",
        }
    }
}

/// A listener's default action: exactly one of `forward` and `redirect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenerAction {
    /// Forward to a target group: the `metadata.name` of a `TargetGroup` manifest.
    #[serde(default)]
    pub forward: Option<String>,
    /// Redirect, e.g. HTTP to HTTPS.
    #[serde(default)]
    pub redirect: Option<RedirectSpec>,
}

/// A redirect; unset parts keep the request's own (`#{host}`, `/#{path}`, `#{query}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedirectSpec {
    /// Target protocol. Default `HTTPS`.
    #[serde(default)]
    pub protocol: Option<ListenerProtocol>,
    /// Target port. Default 443.
    #[serde(default)]
    pub port: Option<u16>,
    /// Permanent (`HTTP_301`, default) or temporary (`HTTP_302`).
    #[serde(default)]
    pub status_code: Option<RedirectStatus>,
}

/// Redirect status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(non_camel_case_types)]
pub enum RedirectStatus {
    /// Permanent.
    HTTP_301,
    /// Temporary.
    HTTP_302,
}

impl RedirectStatus {
    /// The name ELBv2 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RedirectStatus::HTTP_301 => "HTTP_301",
            RedirectStatus::HTTP_302 => "HTTP_302",
        }
    }
}

/// The default TLS policy for HTTPS listeners.
pub const DEFAULT_SSL_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";

impl LoadBalancerSpec {
    /// The load balancer's name in ELBv2.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.load_balancer_name.as_deref().unwrap_or(&meta.name)
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        check_elbv2_name(
            self.aws_name(meta),
            "load balancer",
            "/spec/loadBalancerName",
            f,
        );
        self.subnets.check("/spec/subnets", false, f);
        self.security_groups.check("/spec/securityGroups", true, f);
        if self.subnets.ids.as_ref().is_some_and(|ids| ids.len() < 2) {
            f.at(
                "/spec/subnets/ids",
                "an Application Load Balancer needs subnets in at least two availability zones",
            );
        }
        if self.listeners.is_empty() {
            f.at("/spec/listeners", "declare at least one listener");
        }
        check_tags(&self.tags, "/spec/tags", f);
        let mut ports = Vec::new();
        for (i, l) in self.listeners.iter().enumerate() {
            let p = format!("/spec/listeners/{i}");
            if l.port == 0 {
                f.at(&format!("{p}/port"), "ports are 1-65535");
            }
            if ports.contains(&l.port) {
                f.at(
                    &format!("{p}/port"),
                    format!("a second listener on port {}", l.port),
                );
            }
            ports.push(l.port);
            match (l.protocol, &l.certificate_arn, &l.certificate) {
                (ListenerProtocol::HTTPS, None, None) => f.at(
                    p.as_str(),
                    "an HTTPS listener needs a certificate: `certificateArn` or `certificate: {domainName: …}`",
                ),
                (ListenerProtocol::HTTPS, Some(_), Some(_)) => f.at(
                    &format!("{p}/certificate"),
                    "set `certificateArn` or `certificate`, not both",
                ),
                (ListenerProtocol::HTTPS, Some(arn), None)
                    if !(arn.starts_with("arn:") && arn.contains(":acm:")) =>
                {
                    f.at(
                        &format!("{p}/certificateArn"),
                        format!("`{arn}` is not an ACM certificate ARN"),
                    )
                }
                (ListenerProtocol::HTTPS, None, Some(c))
                    if c.domain_name.is_empty() || c.domain_name.contains(char::is_whitespace) =>
                {
                    f.at(
                        &format!("{p}/certificate/domainName"),
                        "must be a domain name such as `api.example.com`",
                    )
                }
                (ListenerProtocol::HTTP, Some(_), _) | (ListenerProtocol::HTTP, _, Some(_)) => f.at(
                    p.as_str(),
                    "only HTTPS listeners take a certificate",
                ),
                _ => {}
            }
            if l.protocol == ListenerProtocol::HTTP && l.ssl_policy.is_some() {
                f.at(
                    &format!("{p}/sslPolicy"),
                    "only HTTPS listeners take a TLS policy",
                );
            }
            let a = &l.default_action;
            if a.forward.is_some() == a.redirect.is_some() {
                f.at(
                    &format!("{p}/defaultAction"),
                    "set exactly one of `forward` and `redirect`",
                );
            }
            if let Some(r) = &a.redirect {
                let to_port = r.port.unwrap_or(443);
                let to_protocol = r.protocol.unwrap_or(ListenerProtocol::HTTPS);
                if to_port == l.port && to_protocol == l.protocol {
                    f.at(
                        &format!("{p}/defaultAction/redirect"),
                        "redirects to itself (same protocol and port): a redirect loop",
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::load::load_with_stack;

    const BASE: &str = "apiVersion: mooring.dev/v1alpha1
kind: TargetGroup
metadata: {name: api}
spec: {port: 3000, vpc: default}
---
apiVersion: mooring.dev/v1alpha1
kind: LoadBalancer
metadata: {name: api}
spec:
  subnets: {lookup: {vpc: default}}
  securityGroups: {ids: [sg-1]}
  listeners:
";

    fn errors(listeners: &str) -> Vec<String> {
        match load_with_stack(&[("lb.yaml".into(), format!("{BASE}{listeners}"))]) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn https_and_redirect_listeners_are_valid() {
        let ok = "    - {port: 443, protocol: HTTPS, certificateArn: 'arn:aws:acm:eu-west-1:1:certificate/x', defaultAction: {forward: api}}
    - {port: 80, protocol: HTTP, defaultAction: {redirect: {protocol: HTTPS, port: 443}}}
    - {port: 8443, protocol: HTTPS, certificate: {domainName: api.example.com}, defaultAction: {forward: api}}
";
        assert!(errors(ok).is_empty(), "{:?}", errors(ok));
    }

    #[test]
    fn listener_mistakes_are_named() {
        let bad = "    - {port: 443, protocol: HTTPS, defaultAction: {forward: web}}
    - {port: 80, protocol: HTTP, sslPolicy: x, defaultAction: {redirect: {protocol: HTTP, port: 80}}}
    - {port: 80, protocol: HTTP, defaultAction: {}}
    - {port: 8443, protocol: HTTPS, certificate: {domainName: a.example}, certificateArn: 'arn:aws:acm:eu-west-1:1:certificate/x', defaultAction: {forward: web}}
    - {port: 8080, protocol: HTTP, certificate: {domainName: a.example}, defaultAction: {forward: web}}
";
        let errs = errors(bad);
        for expected in [
            "lb.yaml:13:7: spec.listeners[0]: an HTTPS listener needs a certificate: `certificateArn` or `certificate: {domainName: …}`",
            "spec.listeners[1].sslPolicy: only HTTPS listeners take a TLS policy",
            "spec.listeners[1].defaultAction.redirect: redirects to itself",
            "spec.listeners[2].port: a second listener on port 80",
            "spec.listeners[2].defaultAction: set exactly one of `forward` and `redirect`",
            "spec.listeners[3].certificate: set `certificateArn` or `certificate`, not both",
            "spec.listeners[4]: only HTTPS listeners take a certificate",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "missing {expected:?} in {errs:#?}"
            );
        }
        // The dangling target group is reported once the documents are valid on their own.
        let dangling = "    - {port: 443, protocol: HTTPS, certificateArn: 'arn:aws:acm:eu-west-1:1:certificate/x', defaultAction: {forward: web}}\n";
        let errs = errors(dangling);
        assert!(
            errs.iter().any(|e| e
                .contains("spec.listeners[0].defaultAction.forward: no TargetGroup named `web`")),
            "{errs:#?}"
        );
    }
}
