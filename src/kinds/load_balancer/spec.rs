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
    /// Seconds a connection may stay idle before the load balancer closes it (1-4000).
    /// AWS default 60; a backend whose keep-alive is shorter than this sees 502s.
    #[serde(default)]
    pub idle_timeout_seconds: Option<u32>,
    /// Access logs to S3; off when unset. The bucket's policy must let ELB write to it.
    #[serde(default)]
    pub access_logs: Option<AccessLogs>,
    /// Tags (the ownership tags are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Where the load balancer writes its access logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessLogs {
    /// S3 bucket name (not an ARN), in the load balancer's region.
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`. Default: none.
    #[serde(default)]
    pub prefix: Option<String>,
}

/// The AWS default idle timeout, in seconds.
pub const DEFAULT_IDLE_TIMEOUT: u32 = 60;

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
    /// Further ACM certificate ARNs an HTTPS listener serves by SNI, beside its default
    /// one. When set (even `[]`), the listener's certificate list is the manifest's: a
    /// certificate added by hand is drift, removed by apply. When left out, extra
    /// certificates are left alone.
    #[serde(default)]
    pub certificates: Option<Vec<String>>,
    /// TLS policy for HTTPS. Default `ELBSecurityPolicy-TLS13-1-2-2021-06`.
    #[serde(default)]
    pub ssl_policy: Option<String>,
    /// What the listener does with a request no rule matches.
    pub default_action: ListenerAction,
    /// Rules tried before the default action, lowest priority first. When set (even
    /// `[]`), the listener's rules are the manifest's: a rule at a priority the manifest
    /// does not declare is drift, deleted by apply. When left out, the listener's rules
    /// are left alone. The default rule is the `defaultAction`.
    #[serde(default)]
    pub rules: Option<Vec<RuleSpec>>,
}

/// A listener rule: when all of its conditions match, its action runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleSpec {
    /// 1-50000, unique on the listener; lower priorities are tried first.
    pub priority: u32,
    /// What a request must match (every kind given must match; within one kind, any value
    /// may). At least one value, at most 5 in total.
    pub conditions: ConditionsSpec,
    /// What the rule does with a matching request.
    pub action: ListenerAction,
}

/// A rule's conditions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConditionsSpec {
    /// Request paths, e.g. `/api/*` (case-sensitive; `*` and `?` are wildcards; at most
    /// 128 characters).
    #[serde(default)]
    pub path_patterns: Vec<String>,
    /// Host names, e.g. `api.example.com` or `*.example.com` (at most 128 characters).
    #[serde(default)]
    pub host_headers: Vec<String>,
    /// HTTP headers, each by name with the values it may have.
    #[serde(default)]
    pub http_headers: Vec<HttpHeaderCondition>,
    /// Query string parameters, any of which may match.
    #[serde(default)]
    pub query_strings: Vec<QueryStringCondition>,
}

/// An HTTP header condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpHeaderCondition {
    /// Header name, e.g. `X-Canary` (at most 40 characters).
    pub name: String,
    /// Values it may have (`*` and `?` are wildcards; at most 128 characters each).
    pub values: Vec<String>,
}

/// A query string condition: `key=value`, or any parameter with the value when `key` is
/// left out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueryStringCondition {
    /// Parameter name (at most 128 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Value (`*` and `?` are wildcards; at most 128 characters).
    pub value: String,
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

/// What a listener or rule does with a request: exactly one of `forward`,
/// `weightedForward`, `redirect` and `fixedResponse`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenerAction {
    /// Forward to a target group: the `metadata.name` of a `TargetGroup` manifest.
    #[serde(default)]
    pub forward: Option<String>,
    /// Forward to several target groups, split by weight (e.g. a canary).
    #[serde(default)]
    pub weighted_forward: Option<WeightedForward>,
    /// Redirect, e.g. HTTP to HTTPS.
    #[serde(default)]
    pub redirect: Option<RedirectSpec>,
    /// Answer directly, e.g. `503` during maintenance.
    #[serde(default)]
    pub fixed_response: Option<FixedResponse>,
}

/// A forward split between target groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WeightedForward {
    /// 1-5 target groups (`TargetGroup` manifest names) with their weights.
    pub target_groups: Vec<WeightedTargetGroup>,
    /// Keep a client on the target group it was first sent to.
    #[serde(default)]
    pub stickiness: Option<Stickiness>,
}

/// One target group of a weighted forward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WeightedTargetGroup {
    /// The `metadata.name` of a `TargetGroup` manifest.
    pub name: String,
    /// 0-999; the share of requests is the weight over the sum of the weights.
    pub weight: u16,
}

/// Target group stickiness of a weighted forward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Stickiness {
    /// How long a client stays on its target group: 1-604800 seconds.
    pub duration_seconds: u32,
}

/// A fixed response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FixedResponse {
    /// A 2XX, 4XX or 5XX status code.
    pub status_code: u16,
    /// `text/plain` (default), `text/css`, `text/html`, `application/javascript` or
    /// `application/json`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// The body (at most 1024 characters).
    #[serde(default)]
    pub message_body: Option<String>,
}

/// The content types a fixed response may have.
pub const CONTENT_TYPES: [&str; 5] = [
    "text/plain",
    "text/css",
    "text/html",
    "application/javascript",
    "application/json",
];

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
    /// Target host. Default `#{host}` (the request's).
    #[serde(default)]
    pub host: Option<String>,
    /// Target path, starting with `/`. Default `/#{path}` (the request's).
    #[serde(default)]
    pub path: Option<String>,
    /// Target query, without the `?`. Default `#{query}` (the request's).
    #[serde(default)]
    pub query: Option<String>,
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

/// ELBv2's quota of certificates on a listener besides its default one.
pub const MAX_EXTRA_CERTIFICATES: usize = 25;

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
        if self
            .idle_timeout_seconds
            .is_some_and(|t| !(1..=4000).contains(&t))
        {
            f.at("/spec/idleTimeoutSeconds", "must be 1-4000");
        }
        if let Some(logs) = &self.access_logs {
            let b = &logs.bucket;
            if !(3..=63).contains(&b.len())
                || !b
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
            {
                f.at(
                    "/spec/accessLogs/bucket",
                    format!("`{b}` is not an S3 bucket name (3-63 lower-case letters, digits, `.` and `-`; not an ARN)"),
                );
            }
            if logs
                .prefix
                .as_deref()
                .is_some_and(|p| p.starts_with('/') || p.ends_with('/') || p.contains("AWSLogs"))
            {
                f.at(
                    "/spec/accessLogs/prefix",
                    "a prefix neither starts nor ends with `/` and does not contain `AWSLogs`",
                );
            }
        }
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
            if let Some(extra) = &l.certificates {
                if l.protocol == ListenerProtocol::HTTP {
                    f.at(
                        &format!("{p}/certificates"),
                        "only HTTPS listeners take certificates",
                    );
                }
                if extra.len() > MAX_EXTRA_CERTIFICATES {
                    f.at(
                        &format!("{p}/certificates"),
                        format!("at most {MAX_EXTRA_CERTIFICATES} certificates besides the default one"),
                    );
                }
                for (k, arn) in extra.iter().enumerate() {
                    let cp = format!("{p}/certificates/{k}");
                    if !(arn.starts_with("arn:") && arn.contains(":acm:")) {
                        f.at(&cp, format!("`{arn}` is not an ACM certificate ARN"));
                    } else if extra[..k].contains(arn) {
                        f.at(&cp, format!("`{arn}` is listed twice"));
                    } else if l.certificate_arn.as_ref() == Some(arn) {
                        f.at(&cp, "the default certificate (`certificateArn`) is served anyway");
                    }
                }
            }
            if l.protocol == ListenerProtocol::HTTP && l.ssl_policy.is_some() {
                f.at(
                    &format!("{p}/sslPolicy"),
                    "only HTTPS listeners take a TLS policy",
                );
            }
            check_action(
                &l.default_action,
                &format!("{p}/defaultAction"),
                Some(l),
                f,
            );
            let Some(rules) = &l.rules else {
                continue;
            };
            let mut priorities = Vec::new();
            for (j, r) in rules.iter().enumerate() {
                let rp = format!("{p}/rules/{j}");
                if !(1..=MAX_PRIORITY).contains(&r.priority) {
                    f.at(
                        &format!("{rp}/priority"),
                        format!("priorities are 1-{MAX_PRIORITY}"),
                    );
                }
                if priorities.contains(&r.priority) {
                    f.at(
                        &format!("{rp}/priority"),
                        format!("a second rule with priority {} on listener {}", r.priority, l.port),
                    );
                }
                priorities.push(r.priority);
                r.conditions.check(&format!("{rp}/conditions"), f);
                check_action(&r.action, &format!("{rp}/action"), None, f);
            }
        }
    }

    /// Every target group a listener of this load balancer forwards to (default actions
    /// and rules), with the JSON pointer that names it.
    pub fn target_groups(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        for (i, l) in self.listeners.iter().enumerate() {
            let p = format!("/spec/listeners/{i}");
            out.extend(l.default_action.target_groups(&format!("{p}/defaultAction")));
            for (j, r) in l.rules.iter().flatten().enumerate() {
                out.extend(r.action.target_groups(&format!("{p}/rules/{j}/action")));
            }
        }
        out
    }

    /// True when a listener's default action or rule forwards to the `TargetGroup`
    /// manifest `name`.
    pub fn forwards_to(&self, name: &str) -> bool {
        self.target_groups().iter().any(|(_, tg)| *tg == name)
    }
}

/// The highest rule priority ELBv2 accepts.
pub const MAX_PRIORITY: u32 = 50_000;
/// ELBv2 evaluates at most this many condition values per rule.
pub const MAX_CONDITION_VALUES: usize = 5;
/// The longest path pattern, host header, header value or query string part.
pub const MAX_CONDITION_LENGTH: usize = 128;

impl ListenerAction {
    /// The target groups it forwards to, with the JSON pointer of each (under `at`).
    pub fn target_groups(&self, at: &str) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        if let Some(tg) = &self.forward {
            out.push((format!("{at}/forward"), tg.as_str()));
        }
        for (k, w) in self
            .weighted_forward
            .iter()
            .flat_map(|w| w.target_groups.iter())
            .enumerate()
        {
            out.push((
                format!("{at}/weightedForward/targetGroups/{k}/name"),
                w.name.as_str(),
            ));
        }
        out
    }
}

impl ConditionsSpec {
    /// How many values ELBv2 evaluates (its limit is per rule).
    pub fn values(&self) -> usize {
        self.path_patterns.len()
            + self.host_headers.len()
            + self.http_headers.iter().map(|h| h.values.len()).sum::<usize>()
            + self.query_strings.len()
    }

    fn check(&self, p: &str, f: &mut Findings<'_>) {
        let count = self.values();
        if count == 0 {
            f.at(
                p,
                "a rule needs at least one condition: `pathPatterns`, `hostHeaders`, `httpHeaders` or `queryStrings`",
            );
        }
        if count > MAX_CONDITION_VALUES {
            f.at(
                p,
                format!("{count} condition values; ELBv2 allows at most {MAX_CONDITION_VALUES} per rule"),
            );
        }
        let long = |v: &str| v.is_empty() || v.chars().count() > MAX_CONDITION_LENGTH;
        for (k, v) in self.path_patterns.iter().enumerate() {
            if long(v) {
                f.at(
                    &format!("{p}/pathPatterns/{k}"),
                    format!("path patterns are 1-{MAX_CONDITION_LENGTH} characters"),
                );
            } else if !v.starts_with(['/', '*']) {
                f.at(
                    &format!("{p}/pathPatterns/{k}"),
                    format!("`{v}` never matches: request paths start with `/`"),
                );
            } else if let Some(c) = v.chars().find(|c| {
                !(c.is_ascii_alphanumeric() || "_-.$/~\"'@:+&*?".contains(*c))
            }) {
                f.at(
                    &format!("{p}/pathPatterns/{k}"),
                    format!("`{c}` is not allowed in a path pattern (letters, digits and _-.$/~\"'@:+&*? are)"),
                );
            }
        }
        for (k, v) in self.host_headers.iter().enumerate() {
            if long(v)
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.*?".contains(c))
            {
                f.at(
                    &format!("{p}/hostHeaders/{k}"),
                    format!("`{v}` is not a host name pattern (letters, digits, `-`, `.`, `*` and `?`, at most {MAX_CONDITION_LENGTH} characters)"),
                );
            }
        }
        let mut names: Vec<String> = Vec::new();
        for (k, h) in self.http_headers.iter().enumerate() {
            let hp = format!("{p}/httpHeaders/{k}");
            if h.name.is_empty()
                || h.name.len() > 40
                || !h
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                f.at(
                    &format!("{hp}/name"),
                    "header names are 1-40 letters, digits, `-` and `_`",
                );
            }
            if names.contains(&h.name.to_ascii_lowercase()) {
                f.at(
                    &format!("{hp}/name"),
                    format!("a second condition on header `{}`: list its values once", h.name),
                );
            }
            names.push(h.name.to_ascii_lowercase());
            if h.values.is_empty() {
                f.at(&format!("{hp}/values"), "give at least one value");
            }
            for (v, value) in h.values.iter().enumerate() {
                if long(value) {
                    f.at(
                        &format!("{hp}/values/{v}"),
                        format!("header values are 1-{MAX_CONDITION_LENGTH} characters"),
                    );
                }
            }
        }
        for (k, q) in self.query_strings.iter().enumerate() {
            if q.key.as_deref().is_some_and(long) {
                f.at(
                    &format!("{p}/queryStrings/{k}/key"),
                    format!("query string keys are 1-{MAX_CONDITION_LENGTH} characters"),
                );
            }
            if long(&q.value) {
                f.at(
                    &format!("{p}/queryStrings/{k}/value"),
                    format!("query string values are 1-{MAX_CONDITION_LENGTH} characters"),
                );
            }
        }
    }
}

/// Checks one action at `p`; `listener` is set for a default action (where a redirect to
/// the same protocol, port, host and path loops).
fn check_action(a: &ListenerAction, p: &str, listener: Option<&ListenerSpec>, f: &mut Findings<'_>) {
    let set = [
        a.forward.is_some(),
        a.weighted_forward.is_some(),
        a.redirect.is_some(),
        a.fixed_response.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        f.at(
            p,
            "set exactly one of `forward`, `weightedForward`, `redirect` and `fixedResponse`",
        );
    }
    if let Some(w) = &a.weighted_forward {
        let wp = format!("{p}/weightedForward");
        if !(1..=5).contains(&w.target_groups.len()) {
            f.at(
                &format!("{wp}/targetGroups"),
                "a weighted forward has 1-5 target groups",
            );
        }
        let mut seen: Vec<&str> = Vec::new();
        for (k, tg) in w.target_groups.iter().enumerate() {
            if tg.weight > 999 {
                f.at(
                    &format!("{wp}/targetGroups/{k}/weight"),
                    "weights are 0-999",
                );
            }
            if seen.contains(&tg.name.as_str()) {
                f.at(
                    &format!("{wp}/targetGroups/{k}/name"),
                    format!("target group `{}` is listed twice", tg.name),
                );
            }
            seen.push(&tg.name);
        }
        if !w.target_groups.is_empty() && w.target_groups.iter().all(|t| t.weight == 0) {
            f.at(
                &format!("{wp}/targetGroups"),
                "every weight is 0: no request would be forwarded",
            );
        }
        if let Some(s) = &w.stickiness
            && !(1..=604_800).contains(&s.duration_seconds)
        {
            f.at(
                &format!("{wp}/stickiness/durationSeconds"),
                "stickiness lasts 1-604800 seconds (7 days)",
            );
        }
    }
    if let Some(r) = &a.fixed_response {
        let fp = format!("{p}/fixedResponse");
        if !(200..600).contains(&r.status_code) || (300..400).contains(&r.status_code) {
            f.at(
                &format!("{fp}/statusCode"),
                "a fixed response has a 2XX, 4XX or 5XX status code",
            );
        }
        if let Some(t) = &r.content_type
            && !CONTENT_TYPES.contains(&t.as_str())
        {
            f.at(
                &format!("{fp}/contentType"),
                format!("content types are {}", CONTENT_TYPES.join(", ")),
            );
        }
        if r.message_body.as_ref().is_some_and(|b| b.chars().count() > 1024) {
            f.at(
                &format!("{fp}/messageBody"),
                "a fixed response body is at most 1024 characters",
            );
        }
    }
    if let Some(r) = &a.redirect {
        if r.path.as_ref().is_some_and(|p| !p.starts_with('/')) {
            f.at(&format!("{p}/redirect/path"), "a redirect path starts with `/`");
        }
        if let Some(l) = listener {
            let to_port = r.port.unwrap_or(443);
            let to_protocol = r.protocol.unwrap_or(ListenerProtocol::HTTPS);
            let same_request = r.host.is_none() && r.path.is_none() && r.query.is_none();
            if to_port == l.port && to_protocol == l.protocol && same_request {
                f.at(
                    &format!("{p}/redirect"),
                    "redirects to itself (same protocol and port): a redirect loop",
                );
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
            "spec.listeners[2].defaultAction: set exactly one of `forward`, `weightedForward`, `redirect` and `fixedResponse`",
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

    #[test]
    fn attribute_and_certificate_mistakes_are_named() {
        let cert = "arn:aws:acm:eu-west-1:1:certificate/x";
        let text = format!(
            "{}    - {{port: 443, protocol: HTTPS, certificateArn: '{cert}', certificates: ['{cert}', 'arn:aws:iam::1:server-certificate/y', 'arn:aws:acm:eu-west-1:1:certificate/z', 'arn:aws:acm:eu-west-1:1:certificate/z'], defaultAction: {{forward: api}}}}\n    - {{port: 80, protocol: HTTP, certificates: [], defaultAction: {{forward: api}}}}\n  idleTimeoutSeconds: 0\n  accessLogs: {{bucket: 'arn:aws:s3:::logs', prefix: /alb/}}\n",
            BASE
        );
        let errs: Vec<String> = match load_with_stack(&[("lb.yaml".into(), text)]) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        };
        for expected in [
            "spec.listeners[0].certificates[0]: the default certificate (`certificateArn`) is served anyway",
            "spec.listeners[0].certificates[1]: `arn:aws:iam::1:server-certificate/y` is not an ACM certificate ARN",
            "spec.listeners[0].certificates[3]: `arn:aws:acm:eu-west-1:1:certificate/z` is listed twice",
            "spec.listeners[1].certificates: only HTTPS listeners take certificates",
            "spec.idleTimeoutSeconds: must be 1-4000",
            "spec.accessLogs.bucket: `arn:aws:s3:::logs` is not an S3 bucket name",
            "spec.accessLogs.prefix: a prefix neither starts nor ends with `/`",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "missing {expected:?} in {errs:#?}"
            );
        }
        assert_eq!(errs.len(), 7, "{errs:#?}");
    }

    #[test]
    fn rule_mistakes_are_named() {
        let bad = "    - port: 443
      protocol: HTTPS
      certificateArn: 'arn:aws:acm:eu-west-1:1:certificate/x'
      defaultAction: {fixedResponse: {statusCode: 404}}
      rules:
        - {priority: 10, conditions: {pathPatterns: [/api/*]}, action: {forward: api}}
        - {priority: 10, conditions: {}, action: {forward: api}}
        - {priority: 0, conditions: {pathPatterns: [/a, /b, /c], hostHeaders: [a.example, b.example], queryStrings: [{value: x}]}, action: {redirect: {path: nowhere}}}
        - {priority: 20, conditions: {pathPatterns: [api]}, action: {forward: api, fixedResponse: {statusCode: 302}}}
        - {priority: 30, conditions: {httpHeaders: [{name: X-A, values: []}, {name: x-a, values: ['1']}]}, action: {weightedForward: {targetGroups: [{name: api, weight: 1000}, {name: api, weight: 0}], stickiness: {durationSeconds: 0}}}}
        - {priority: 40, conditions: {hostHeaders: ['bad host']}, action: {fixedResponse: {statusCode: 200, contentType: text/xml}}}
";
        let errs = errors(bad);
        let long = format!("/{}", "a".repeat(128));
        let too_long = format!(
            "{BASE}    - port: 80\n      protocol: HTTP\n      defaultAction: {{forward: api}}\n      rules:\n        - {{priority: 1, conditions: {{pathPatterns: ['{long}']}}, action: {{forward: api}}}}\n"
        );
        for expected in [
            "lb.yaml:19:12: spec.listeners[0].rules[1].priority: a second rule with priority 10 on listener 443",
            "spec.listeners[0].rules[1].conditions: a rule needs at least one condition",
            "spec.listeners[0].rules[2].priority: priorities are 1-50000",
            "spec.listeners[0].rules[2].conditions: 6 condition values; ELBv2 allows at most 5 per rule",
            "spec.listeners[0].rules[2].action.redirect.path: a redirect path starts with `/`",
            "spec.listeners[0].rules[3].conditions.pathPatterns[0]: `api` never matches",
            "spec.listeners[0].rules[3].action: set exactly one of",
            "spec.listeners[0].rules[3].action.fixedResponse.statusCode: a fixed response has a 2XX, 4XX or 5XX status code",
            "spec.listeners[0].rules[4].conditions.httpHeaders[0].values: give at least one value",
            "spec.listeners[0].rules[4].conditions.httpHeaders[1].name: a second condition on header `x-a`",
            "spec.listeners[0].rules[4].action.weightedForward.targetGroups[0].weight: weights are 0-999",
            "spec.listeners[0].rules[4].action.weightedForward.targetGroups[1].name: target group `api` is listed twice",
            "spec.listeners[0].rules[4].action.weightedForward.stickiness.durationSeconds: stickiness lasts 1-604800 seconds",
            "spec.listeners[0].rules[5].conditions.hostHeaders[0]: `bad host` is not a host name pattern",
            "spec.listeners[0].rules[5].action.fixedResponse.contentType: content types are text/plain",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "missing {expected:?} in {errs:#?}"
            );
        }
        let errs = match load_with_stack(&[("lb.yaml".into(), too_long)]) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        };
        assert!(
            errs.iter().any(|e| e.contains(
                "spec.listeners[0].rules[0].conditions.pathPatterns[0]: path patterns are 1-128 characters"
            )),
            "{errs:#?}"
        );
        // Target groups a rule names must exist in the set.
        let dangling = "    - port: 80
      protocol: HTTP
      defaultAction: {fixedResponse: {statusCode: 404, contentType: application/json, messageBody: '{}'}}
      rules:
        - {priority: 1, conditions: {pathPatterns: [/a]}, action: {forward: api}}
        - {priority: 2, conditions: {pathPatterns: [/b]}, action: {weightedForward: {targetGroups: [{name: api, weight: 1}, {name: web, weight: 1}]}}}
";
        let errs = errors(dangling);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].contains(
                "spec.listeners[0].rules[1].action.weightedForward.targetGroups[1].name: no TargetGroup named `web`"
            ),
            "{errs:#?}"
        );
    }
}
