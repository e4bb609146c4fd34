//! Application Load Balancers and their listeners (`kind: LoadBalancer`).
//!
//! Reads: one paginated DescribeLoadBalancers (asking by name fails the whole call when
//! one is missing), one DescribeTags per 20 that exist, one ListCertificates when a
//! listener looks its certificate up by domain, the target group listing shared with
//! services, and one DescribeListeners per load balancer. Listeners on ports the manifest
//! does not declare are left alone (mooring never deletes). One
//! DescribeLoadBalancerAttributes per load balancer (idle timeout, access logs) and one
//! DescribeListenerCertificates per HTTPS listener that declares `certificates`. The
//! scheme and the type cannot
//! change in place: such a change is planned as a replacement, refused unless the manifest
//! allows it.

pub mod spec;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_acm::types::{CertificateStatus, CertificateSummary};
use aws_sdk_elasticloadbalancingv2::types::{
    Action as ElbAction, ActionTypeEnum, Certificate, FixedResponseActionConfig,
    ForwardActionConfig, Listener, LoadBalancer, LoadBalancerSchemeEnum, LoadBalancerTypeEnum,
    LoadBalancerAttribute, ProtocolEnum, RedirectActionConfig, RedirectActionStatusCodeEnum, Rule, Tag,
    TargetGroupStickinessConfig, TargetGroupTuple,
};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::network::{self, Target};
use super::ownership::{Ownership, managed_tags, owned_tags, tags_to_set};
use super::{Change, Declared, Reference, Resource};
use super::from::Field;
use crate::aws::AwsError;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::{Applied, Cx, ReconcileError};
use spec::{
    DEFAULT_SSL_POLICY, ListenerAction, ListenerProtocol, LoadBalancerSpec, QueryStringCondition,
    RedirectStatus,
};

pub mod rules;


/// The `LoadBalancer` kind.
pub struct Unit;

impl Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:DescribeTargetGroups",
        "acm:ListCertificates",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeVpcs",
        "elasticloadbalancing:CreateLoadBalancer",
        "elasticloadbalancing:DeleteLoadBalancer",
        "elasticloadbalancing:SetSubnets",
        "elasticloadbalancing:SetSecurityGroups",
        "elasticloadbalancing:CreateListener",
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:AddTags",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:CreateRule",
        "elasticloadbalancing:ModifyRule",
        "elasticloadbalancing:DeleteRule",
        "elasticloadbalancing:SetRulePriorities",
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        "elasticloadbalancing:ModifyLoadBalancerAttributes",
        "elasticloadbalancing:DescribeListenerCertificates",
        "elasticloadbalancing:AddListenerCertificates",
        "elasticloadbalancing:RemoveListenerCertificates",
    ];
    type State = ();

    const FIELDS: &'static [Field] = &[
        Field {
            name: "dnsName",
            doc: "the load balancer's DNS name",
        },
        Field {
            name: "arn",
            doc: "the load balancer's ARN",
        },
        Field {
            name: "canonicalHostedZoneId",
            doc: "the Route 53 hosted zone of its DNS name (for alias records)",
        },
    ];

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the load balancer `{}`", m.spec.aws_name(&m.metadata))
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        let mut out: Vec<Reference> = m
            .spec
            .target_groups()
            .into_iter()
            .map(|(pointer, tg)| Reference::new(pointer, Kind::TargetGroup, tg))
            .collect();
        out.extend(m.spec.security_groups.references("/spec/securityGroups"));
        out
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.load_balancers
            .iter()
            .flat_map(|l| {
                let name = l.spec.aws_name(&l.metadata).to_string();
                [
                    crate::iam::arn("elasticloadbalancing", &format!("loadbalancer/app/{name}/*")),
                    crate::iam::arn("elasticloadbalancing", &format!("listener/app/{name}/*")),
                    crate::iam::arn(
                        "elasticloadbalancing",
                        &format!("listener-rule/app/{name}/*"),
                    ),
                ]
            })
            .collect()
    }

}

/// A load balancer in the shape plan compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// `application`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `internet-facing` or `internal`.
    pub scheme: Option<String>,
    /// Subnet IDs, sorted.
    pub subnets: Vec<String>,
    /// Security group IDs, sorted.
    pub security_groups: Vec<String>,
    /// The listeners the manifest declares, by port (`None`: there is none on that port).
    pub listeners: BTreeMap<u16, Option<ListenerDoc>>,
    /// `idle_timeout.timeout_seconds`.
    pub idle_timeout_seconds: u32,
    /// `access_logs.s3.*`; `None` when off.
    pub access_logs: Option<AccessLogsDoc>,
    /// Tags the manifest manages.
    pub tags: BTreeMap<String, String>,
}

/// Where access logs go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogsDoc {
    /// `access_logs.s3.bucket`.
    pub bucket: String,
    /// `access_logs.s3.prefix` (`""`: none).
    pub prefix: String,
}

/// The managed attributes from DescribeLoadBalancerAttributes' key/value pairs: absent
/// keys are AWS's defaults (moto leaves out `idle_timeout.timeout_seconds` and
/// `access_logs.s3.enabled`), and a bucket kept while logging is off is no log.
fn attributes_from<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> (u32, Option<AccessLogsDoc>) {
    let map: HashMap<&str, &str> = pairs.into_iter().collect();
    let idle = map
        .get("idle_timeout.timeout_seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(spec::DEFAULT_IDLE_TIMEOUT);
    let logs = (map.get("access_logs.s3.enabled") == Some(&"true")).then(|| AccessLogsDoc {
        bucket: map.get("access_logs.s3.bucket").unwrap_or(&"").to_string(),
        prefix: map.get("access_logs.s3.prefix").unwrap_or(&"").to_string(),
    });
    (idle, logs)
}

/// The key/value pairs ModifyLoadBalancerAttributes takes for `d`.
fn attribute_pairs(d: &Doc) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("idle_timeout.timeout_seconds", d.idle_timeout_seconds.to_string()),
        ("access_logs.s3.enabled", d.access_logs.is_some().to_string()),
    ];
    if let Some(logs) = &d.access_logs {
        out.push(("access_logs.s3.bucket", logs.bucket.clone()));
        out.push(("access_logs.s3.prefix", logs.prefix.clone()));
    }
    out
}

/// Sets the load balancer's managed attributes.
async fn modify_attributes(cx: &Cx<'_>, arn: &str, d: &Doc) -> Result<(), AwsError> {
    let attributes = attribute_pairs(d)
        .into_iter()
        .map(|(k, v)| LoadBalancerAttribute::builder().key(k).value(v).build())
        .collect();
    cx.aws()
        .elbv2
        .modify_load_balancer_attributes()
        .load_balancer_arn(arn)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("elasticloadbalancing:ModifyLoadBalancerAttributes", e))?;
    info!(load_balancer = %arn, "set load balancer attributes");
    Ok(())
}

/// The certificates a listener serves besides its default one, sorted; the default
/// certificate is left out even where AWS lists it a second time as non-default.
async fn extra_certificates(cx: &Cx<'_>, listener: &str) -> Result<Vec<String>, AwsError> {
    let all: Vec<Certificate> = cx
        .aws()
        .elbv2
        .describe_listener_certificates()
        .listener_arn(listener)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DescribeListenerCertificates", e))?;
    Ok(extras(&all))
}

fn extras(all: &[Certificate]) -> Vec<String> {
    let default: Vec<&str> = all
        .iter()
        .filter(|c| c.is_default() == Some(true))
        .filter_map(|c| c.certificate_arn())
        .collect();
    let mut out: Vec<String> = all
        .iter()
        .filter(|c| c.is_default() != Some(true))
        .filter_map(|c| c.certificate_arn())
        .filter(|arn| !default.contains(arn))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Adds and removes certificates of `listener` so that its extras are `want`.
async fn set_extra_certificates(
    cx: &Cx<'_>,
    listener: &str,
    want: &[String],
    have: &[String],
) -> Result<(), AwsError> {
    let elbv2 = &cx.aws().elbv2;
    let certs = |arns: Vec<&String>| -> Vec<Certificate> {
        arns.into_iter()
            .map(|a| Certificate::builder().certificate_arn(a).build())
            .collect()
    };
    let add: Vec<&String> = want.iter().filter(|c| !have.contains(c)).collect();
    let remove: Vec<&String> = have.iter().filter(|c| !want.contains(c)).collect();
    if !add.is_empty() {
        elbv2
            .add_listener_certificates()
            .listener_arn(listener)
            .set_certificates(Some(certs(add)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticloadbalancing:AddListenerCertificates", e))?;
    }
    if !remove.is_empty() {
        elbv2
            .remove_listener_certificates()
            .listener_arn(listener)
            .set_certificates(Some(certs(remove)))
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk("elasticloadbalancing:RemoveListenerCertificates", e)
            })?;
    }
    info!(listener = %listener, "listener certificates in place");
    Ok(())
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerDoc {
    /// `HTTP` or `HTTPS`.
    pub protocol: Option<String>,
    /// The certificate of an HTTPS listener.
    pub certificate_arn: Option<String>,
    /// Its further certificates (SNI), sorted, when the manifest declares them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<String>>,
    /// The TLS policy of an HTTPS listener.
    pub ssl_policy: Option<String>,
    /// What it does with a request no rule matches.
    pub default_action: Option<ActionDoc>,
    /// The rules by priority, when the manifest declares the listener's rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<BTreeMap<u32, RuleDoc>>,
}

/// A listener rule (not the default one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleDoc {
    /// What a request must match.
    pub conditions: ConditionsDoc,
    /// What the rule does.
    pub action: Option<ActionDoc>,
}

/// A rule's conditions, each list sorted (values are alternatives).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionsDoc {
    /// `path-pattern` values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path_patterns: Vec<String>,
    /// `host-header` values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_headers: Vec<String>,
    /// `http-header` conditions: header name → values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub http_headers: BTreeMap<String, Vec<String>>,
    /// `query-string` key/value pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_strings: Vec<QueryStringCondition>,
    /// Conditions of other fields (`source-ip`, `http-request-method`), set outside
    /// mooring: field → values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, Vec<String>>,
}

/// An action: a forward (to one target group, or weighted to several), a redirect or a
/// fixed response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionDoc {
    /// `forward`, `redirect`, `fixed-response` (or another type, set by hand).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Where a forward to one target group goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group_arn: Option<String>,
    /// Where a weighted forward goes, sorted by ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_groups: Option<Vec<WeightedDoc>>,
    /// How long a weighted forward keeps a client on its target group (when sticky).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stickiness_seconds: Option<i32>,
    /// A redirect's protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// A redirect's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// A redirect's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A redirect's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A redirect's query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// A redirect's or fixed response's status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
    /// A fixed response's content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// A fixed response's body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_body: Option<String>,
}

/// One target group of a weighted forward.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedDoc {
    /// Its ARN.
    pub target_group_arn: String,
    /// Its weight.
    pub weight: i32,
}

/// What plan shows for the ARN of a target group that this apply has yet to create.
fn pending_target_group(name: &str) -> String {
    format!("(ARN of TargetGroup/{name}, once created)")
}

/// The target group name in a [`pending_target_group`] placeholder.
fn pending_name(arn: &str) -> Option<&str> {
    arn.strip_prefix("(ARN of TargetGroup/")?
        .strip_suffix(", once created)")
}

/// Replaces the pending target group ARNs of `a` with those created since plan.
fn settle_action(a: &mut ActionDoc, found: &BTreeMap<String, String>) -> Result<(), ReconcileError> {
    let settle = |arn: &mut String| match pending_name(arn) {
        Some(name) => match found.get(name) {
            Some(real) => {
                *arn = real.clone();
                Ok(())
            }
            None => Err(ReconcileError::Dependency(format!("TargetGroup/{name}"))),
        },
        None => Ok(()),
    };
    if let Some(arn) = a.target_group_arn.as_mut() {
        settle(arn)?;
    }
    for w in a.target_groups.iter_mut().flatten() {
        settle(&mut w.target_group_arn)?;
    }
    Ok(())
}

/// Inputs of a load balancer that are looked up, not written in the manifest.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Subnet IDs, sorted.
    pub subnets: Vec<String>,
    /// Security group IDs, sorted.
    pub security_groups: Vec<String>,
    /// `TargetGroup` manifest name → ARN, for those that exist.
    pub target_groups: BTreeMap<String, String>,
    /// Listener port → certificate ARN, for HTTPS listeners.
    pub certificates: BTreeMap<u16, String>,
}

/// What one read finds for all of the kind's manifests.
pub struct Live {
    load_balancers: Vec<LoadBalancer>,
    /// Tags by load balancer ARN.
    tags: HashMap<String, Vec<Tag>>,
    /// `TargetGroup` manifest name → ARN.
    target_groups: BTreeMap<String, String>,
    /// `ISSUED` ACM certificates (read only when a listener looks one up).
    issued: Vec<CertificateSummary>,
}

/// One load balancer as observed.
pub struct Observed {
    /// The live load balancer.
    load_balancer: Option<LoadBalancer>,
    /// Its tags.
    tags: Vec<Tag>,
    /// Its listeners.
    listeners: Vec<Listener>,
    /// The rules (default rule left out) of the listeners that declare theirs, by port.
    rules: BTreeMap<u16, Vec<Rule>>,
    /// The extra certificates of the listeners that declare theirs, by port.
    certificates: BTreeMap<u16, Vec<String>>,
    /// DescribeLoadBalancerAttributes' pairs, when it exists.
    attributes: Vec<(String, String)>,
    /// What the manifest's lookups found.
    resolved: Resolved,
}

impl Observed {
    fn arn(&self) -> Option<&str> {
        self.load_balancer
            .as_ref()
            .and_then(|lb| lb.load_balancer_arn())
    }
}

fn desired_tags(set: &ManifestSet, m: &Manifest<LoadBalancerSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::LoadBalancer, set.owner(), m.name(), &m.spec.tags)
}

fn elb_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn target_group_arn(r: &Resolved, name: &str) -> String {
    r.target_groups
        .get(name)
        .cloned()
        .unwrap_or_else(|| pending_target_group(name))
}

fn forward_doc(arn: String) -> ActionDoc {
    ActionDoc {
        kind: Some("forward".into()),
        target_group_arn: Some(arn),
        ..ActionDoc::default()
    }
}

/// The action as ELBv2 describes it once created: a weighted forward to one target group
/// without stickiness is a plain forward; the redirect's unset parts keep the request's.
fn action_doc(a: &ListenerAction, r: &Resolved) -> ActionDoc {
    if let Some(tg) = &a.forward {
        return forward_doc(target_group_arn(r, tg));
    }
    if let Some(w) = &a.weighted_forward {
        if let ([only], None) = (w.target_groups.as_slice(), &w.stickiness) {
            return forward_doc(target_group_arn(r, &only.name));
        }
        let mut groups: Vec<WeightedDoc> = w
            .target_groups
            .iter()
            .map(|t| WeightedDoc {
                target_group_arn: target_group_arn(r, &t.name),
                weight: i32::from(t.weight),
            })
            .collect();
        groups.sort();
        return ActionDoc {
            kind: Some("forward".into()),
            target_groups: Some(groups),
            stickiness_seconds: w
                .stickiness
                .as_ref()
                .map(|s| i32::try_from(s.duration_seconds).unwrap_or(i32::MAX)),
            ..ActionDoc::default()
        };
    }
    if let Some(f) = &a.fixed_response {
        return ActionDoc {
            kind: Some("fixed-response".into()),
            status_code: Some(f.status_code.to_string()),
            content_type: Some(
                f.content_type
                    .clone()
                    .unwrap_or_else(|| spec::CONTENT_TYPES[0].into()),
            ),
            message_body: f.message_body.clone().filter(|b| !b.is_empty()),
            ..ActionDoc::default()
        };
    }
    let redirect = a.redirect.as_ref();
    ActionDoc {
        kind: Some("redirect".into()),
        protocol: Some(
            redirect
                .and_then(|r| r.protocol)
                .unwrap_or(ListenerProtocol::HTTPS)
                .as_str()
                .into(),
        ),
        port: Some(redirect.and_then(|r| r.port).unwrap_or(443).to_string()),
        host: Some(
            redirect
                .and_then(|r| r.host.clone())
                .unwrap_or_else(|| "#{host}".into()),
        ),
        path: Some(
            redirect
                .and_then(|r| r.path.clone())
                .unwrap_or_else(|| "/#{path}".into()),
        ),
        query: Some(
            redirect
                .and_then(|r| r.query.clone())
                .unwrap_or_else(|| "#{query}".into()),
        ),
        status_code: Some(
            redirect
                .and_then(|r| r.status_code)
                .unwrap_or(RedirectStatus::HTTP_301)
                .as_str()
                .into(),
        ),
        ..ActionDoc::default()
    }
}

fn live_action_doc(a: &ElbAction) -> ActionDoc {
    let mut doc = ActionDoc {
        kind: a.r#type().map(|t| t.as_str().to_string()),
        ..ActionDoc::default()
    };
    match a.r#type() {
        Some(ActionTypeEnum::Forward) => {
            let config = a.forward_config();
            let mut groups: Vec<WeightedDoc> = config
                .map(|c| c.target_groups())
                .unwrap_or_default()
                .iter()
                .filter_map(|t| {
                    Some(WeightedDoc {
                        target_group_arn: t.target_group_arn()?.to_string(),
                        weight: t.weight().unwrap_or(1),
                    })
                })
                .collect();
            // ELBv2 reports stickiness as off, with or without a duration.
            let sticky = config
                .and_then(|c| c.target_group_stickiness_config())
                .filter(|s| s.enabled() == Some(true))
                .map(|s| s.duration_seconds().unwrap_or(3600));
            if groups.len() <= 1 && sticky.is_none() {
                doc.target_group_arn = a
                    .target_group_arn()
                    .map(str::to_string)
                    .or_else(|| groups.pop().map(|g| g.target_group_arn));
            } else {
                groups.sort();
                doc.target_groups = Some(groups);
                doc.stickiness_seconds = sticky;
            }
        }
        Some(ActionTypeEnum::Redirect) => {
            let c = a.redirect_config();
            let part = |f: fn(&RedirectActionConfig) -> Option<&str>, default: &str| {
                Some(c.and_then(f).unwrap_or(default).to_string())
            };
            doc.protocol = part(|c| c.protocol(), "#{protocol}");
            doc.port = part(|c| c.port(), "#{port}");
            doc.host = part(|c| c.host(), "#{host}");
            doc.path = part(|c| c.path(), "/#{path}");
            doc.query = part(|c| c.query(), "#{query}");
            doc.status_code = c
                .and_then(|c| c.status_code())
                .map(|s| s.as_str().to_string());
        }
        Some(ActionTypeEnum::FixedResponse) => {
            let c = a.fixed_response_config();
            doc.status_code = c.and_then(|c| c.status_code()).map(str::to_string);
            doc.content_type = c.and_then(|c| c.content_type()).map(str::to_string);
            doc.message_body = c
                .and_then(|c| c.message_body())
                .filter(|b| !b.is_empty())
                .map(str::to_string);
        }
        _ => {}
    }
    doc
}

/// The action in ELBv2's request form; `None` for a type mooring does not write (kept by
/// `mooring.dev/ignore`).
fn elb_action(a: &ActionDoc) -> Option<ElbAction> {
    match a.kind.as_deref()? {
        "forward" => Some(match &a.target_groups {
            Some(groups) => ElbAction::builder()
                .r#type(ActionTypeEnum::Forward)
                .forward_config(
                    ForwardActionConfig::builder()
                        .set_target_groups(Some(
                            groups
                                .iter()
                                .map(|g| {
                                    TargetGroupTuple::builder()
                                        .target_group_arn(&g.target_group_arn)
                                        .weight(g.weight)
                                        .build()
                                })
                                .collect(),
                        ))
                        .target_group_stickiness_config(
                            TargetGroupStickinessConfig::builder()
                                .enabled(a.stickiness_seconds.is_some())
                                .set_duration_seconds(a.stickiness_seconds)
                                .build(),
                        )
                        .build(),
                )
                .build(),
            None => ElbAction::builder()
                .r#type(ActionTypeEnum::Forward)
                .set_target_group_arn(a.target_group_arn.clone())
                .build(),
        }),
        "fixed-response" => Some(
            ElbAction::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    FixedResponseActionConfig::builder()
                        .set_status_code(a.status_code.clone())
                        .set_content_type(a.content_type.clone())
                        .set_message_body(a.message_body.clone())
                        .build(),
                )
                .build(),
        ),
        "redirect" => Some(
            ElbAction::builder()
                .r#type(ActionTypeEnum::Redirect)
                .redirect_config(
                    RedirectActionConfig::builder()
                        .set_protocol(a.protocol.clone())
                        .set_port(a.port.clone())
                        .set_host(a.host.clone())
                        .set_path(a.path.clone())
                        .set_query(a.query.clone())
                        .set_status_code(
                            a.status_code
                                .as_deref()
                                .map(RedirectActionStatusCodeEnum::from),
                        )
                        .build(),
                )
                .build(),
        ),
        _ => None,
    }
}

/// The certificate of every HTTPS listener: as written, or the newest `ISSUED` ACM
/// certificate for the domain.
fn certificates(
    m: &Manifest<LoadBalancerSpec>,
    issued: &[CertificateSummary],
    region: &str,
) -> Result<BTreeMap<u16, String>, ReconcileError> {
    let mut out = BTreeMap::new();
    for l in &m.spec.listeners {
        if let Some(arn) = &l.certificate_arn {
            out.insert(l.port, arn.clone());
        }
        let Some(lookup) = &l.certificate else {
            continue;
        };
        let found = issued
            .iter()
            .filter(|c| {
                c.domain_name() == Some(lookup.domain_name.as_str())
                    || c.subject_alternative_name_summaries()
                        .contains(&lookup.domain_name)
            })
            .max_by_key(|c| (c.not_after().map(|t| t.secs()), c.certificate_arn()));
        match found.and_then(|c| c.certificate_arn()) {
            Some(arn) => {
                out.insert(l.port, arn.to_string());
            }
            None => {
                return Err(ReconcileError::Resolve {
                    what: format!("the certificate of listener {}", l.port),
                    message: format!(
                        "no ISSUED ACM certificate for {} in {region}",
                        lookup.domain_name
                    ),
                });
            }
        }
    }
    Ok(out)
}

/// The target groups the manifests' listeners (default actions and rules) forward to.
fn forwards(manifests: &[Manifest<LoadBalancerSpec>]) -> impl Iterator<Item = &str> {
    manifests
        .iter()
        .flat_map(|m| m.spec.target_groups().into_iter().map(|(_, tg)| tg))
}

#[async_trait::async_trait]
impl Resource for Unit {
    type Live = Live;
    type Observed = Observed;
    type Doc = Doc;

    async fn read(
        cx: &Cx<'_>,
        manifests: &[Manifest<LoadBalancerSpec>],
    ) -> Result<Live, ReconcileError> {
        let wanted: Vec<&str> = manifests
            .iter()
            .map(|m| m.spec.aws_name(&m.metadata))
            .collect();
        let load_balancers: Vec<LoadBalancer> = super::elbv2::load_balancers(cx)
            .await?
            .iter()
            .filter(|lb| lb.load_balancer_name().is_some_and(|n| wanted.contains(&n)))
            .cloned()
            .collect();
        let all_tags = super::elbv2::tags(cx).await?;
        let tags: HashMap<String, Vec<Tag>> = load_balancers
            .iter()
            .filter_map(|lb| lb.load_balancer_arn())
            .filter_map(|arn| Some((arn.to_string(), all_tags.get(arn)?.clone())))
            .collect();
        let target_groups = crate::kinds::target_group::arns(cx, forwards(manifests)).await?;
        let looks_up = manifests
            .iter()
            .flat_map(|m| m.spec.listeners.iter())
            .any(|l| l.certificate.is_some());
        let issued = if looks_up {
            cx.aws()
                .acm
                .list_certificates()
                .certificate_statuses(CertificateStatus::Issued)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| AwsError::from_sdk("acm:ListCertificates", e))?
        } else {
            Vec::new()
        };
        Ok(Live {
            load_balancers,
            tags,
            target_groups,
            issued,
        })
    }

    async fn observe(
        cx: &Cx<'_>,
        m: &Manifest<LoadBalancerSpec>,
        live: &Live,
    ) -> Result<Observed, ReconcileError> {
        let name = m.spec.aws_name(&m.metadata);
        let load_balancer = live
            .load_balancers
            .iter()
            .find(|lb| lb.load_balancer_name() == Some(name))
            .cloned();
        let resolved = Resolved {
            subnets: network::resolve(cx, Target::Subnets, &m.spec.subnets).await?,
            security_groups: network::resolve(cx, Target::SecurityGroups, &m.spec.security_groups)
                .await?,
            target_groups: live.target_groups.clone(),
            certificates: certificates(m, &live.issued, &cx.aws().region)?,
        };
        let arn = load_balancer
            .as_ref()
            .and_then(|lb| lb.load_balancer_arn());
        let (tags, listeners) = match arn {
            Some(arn) => (
                live.tags.get(arn).cloned().unwrap_or_default(),
                cx.aws()
                    .elbv2
                    .describe_listeners()
                    .load_balancer_arn(arn)
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect()
                    .await
                    .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DescribeListeners", e))?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        let mut rules = BTreeMap::new();
        for l in m.spec.listeners.iter().filter(|l| l.rules.is_some()) {
            let Some(arn) = listeners
                .iter()
                .find(|x: &&Listener| x.port() == Some(i32::from(l.port)))
                .and_then(|x| x.listener_arn())
            else {
                continue;
            };
            rules.insert(l.port, rules::describe(cx, arn).await?);
        }
        let mut certificates = BTreeMap::new();
        for l in m.spec.listeners.iter().filter(|l| l.certificates.is_some()) {
            let Some(arn) = listeners
                .iter()
                .find(|x: &&Listener| x.port() == Some(i32::from(l.port)))
                .and_then(|x| x.listener_arn())
            else {
                continue;
            };
            certificates.insert(l.port, extra_certificates(cx, arn).await?);
        }
        let attributes = match arn {
            Some(arn) => cx
                .aws()
                .elbv2
                .describe_load_balancer_attributes()
                .load_balancer_arn(arn)
                .send()
                .await
                .map_err(|e| {
                    AwsError::from_sdk("elasticloadbalancing:DescribeLoadBalancerAttributes", e)
                })?
                .attributes()
                .iter()
                .filter_map(|a| Some((a.key()?.to_string(), a.value()?.to_string())))
                .collect(),
            None => Vec::new(),
        };
        Ok(Observed {
            load_balancer,
            tags,
            listeners,
            rules,
            certificates,
            attributes,
            resolved,
        })
    }

    fn fields(obs: &Observed) -> Vec<(&'static str, String)> {
        let Some(lb) = obs.load_balancer.as_ref() else {
            return Vec::new();
        };
        [
            ("dnsName", lb.dns_name()),
            ("arn", lb.load_balancer_arn()),
            ("canonicalHostedZoneId", lb.canonical_hosted_zone_id()),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?.to_string())))
        .collect()
    }

    fn ownership(obs: &Observed) -> Option<Ownership> {
        obs.load_balancer.as_ref().map(|_| {
            Ownership::from_tags(
                obs.tags
                    .iter()
                    .filter_map(|t| Some((t.key()?, t.value()?))),
            )
        })
    }

    fn desired(set: &ManifestSet, m: &Manifest<LoadBalancerSpec>, obs: &Observed) -> Doc {
        let r = &obs.resolved;
        let listeners = m
            .spec
            .listeners
            .iter()
            .map(|l| {
                let https = l.protocol == ListenerProtocol::HTTPS;
                let doc = ListenerDoc {
                    protocol: Some(l.protocol.as_str().into()),
                    certificate_arn: r.certificates.get(&l.port).cloned(),
                    certificates: l.certificates.as_ref().map(|c| {
                        let mut c = c.clone();
                        c.sort();
                        c.dedup();
                        c
                    }),
                    ssl_policy: https.then(|| {
                        l.ssl_policy
                            .clone()
                            .unwrap_or_else(|| DEFAULT_SSL_POLICY.into())
                    }),
                    default_action: Some(action_doc(&l.default_action, r)),
                    rules: l.rules.as_ref().map(|rules| {
                        rules
                            .iter()
                            .map(|rule| {
                                (
                                    rule.priority,
                                    RuleDoc {
                                        conditions: rules::conditions_doc(&rule.conditions),
                                        action: Some(action_doc(&rule.action, r)),
                                    },
                                )
                            })
                            .collect()
                    }),
                };
                (l.port, Some(doc))
            })
            .collect();
        Doc {
            kind: Some("application".into()),
            scheme: Some(m.spec.scheme.as_str().into()),
            subnets: r.subnets.clone(),
            security_groups: r.security_groups.clone(),
            listeners,
            idle_timeout_seconds: m
                .spec
                .idle_timeout_seconds
                .unwrap_or(spec::DEFAULT_IDLE_TIMEOUT),
            access_logs: m.spec.access_logs.as_ref().map(|a| AccessLogsDoc {
                bucket: a.bucket.clone(),
                prefix: a.prefix.clone().unwrap_or_default(),
            }),
            tags: desired_tags(set, m),
        }
    }

    fn live(set: &ManifestSet, m: &Manifest<LoadBalancerSpec>, obs: &Observed) -> Option<Doc> {
        let lb = obs.load_balancer.as_ref()?;
        let mut subnets: Vec<String> = lb
            .availability_zones()
            .iter()
            .filter_map(|z| z.subnet_id().map(str::to_string))
            .collect();
        subnets.sort();
        let mut security_groups = lb.security_groups().to_vec();
        security_groups.sort();
        let listeners = m
            .spec
            .listeners
            .iter()
            .map(|want| {
                let doc = obs
                    .listeners
                    .iter()
                    .find(|l| l.port() == Some(i32::from(want.port)))
                    .map(|l| ListenerDoc {
                        protocol: l.protocol().map(|p| p.as_str().to_string()),
                        certificate_arn: l
                            .certificates()
                            .first()
                            .and_then(|c| c.certificate_arn())
                            .map(str::to_string),
                        certificates: want.certificates.as_ref().map(|_| {
                            obs.certificates.get(&want.port).cloned().unwrap_or_default()
                        }),
                        // A TLS policy means nothing on an HTTP listener (moto reports
                        // one anyway).
                        ssl_policy: l
                            .ssl_policy()
                            .filter(|_| l.protocol() == Some(&ProtocolEnum::Https))
                            .map(str::to_string),
                        default_action: l.default_actions().first().map(live_action_doc),
                        rules: want.rules.as_ref().map(|_| {
                            obs.rules
                                .get(&want.port)
                                .map(|r| rules::live_rules(r))
                                .unwrap_or_default()
                        }),
                    });
                (want.port, doc)
            })
            .collect();
        let tags = obs.tags.iter().filter_map(|t| Some((t.key()?, t.value()?)));
        let (idle_timeout_seconds, access_logs) = attributes_from(
            obs.attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        Some(Doc {
            kind: lb.r#type().map(|t| t.as_str().to_string()),
            scheme: lb.scheme().map(|s| s.as_str().to_string()),
            subnets,
            security_groups,
            listeners,
            idle_timeout_seconds,
            access_logs,
            tags: managed_tags(tags, &desired_tags(set, m)),
        })
    }

    fn aws_id(_set: &ManifestSet, m: &Manifest<LoadBalancerSpec>, obs: &Observed) -> String {
        obs.arn()
            .unwrap_or(m.spec.aws_name(&m.metadata))
            .to_string()
    }

    fn replacement(desired: &Doc, live: &Doc) -> (Vec<&'static str>, &'static str) {
        let fixed = [
            ("scheme", desired.scheme != live.scheme),
            ("type", desired.kind != live.kind),
        ];
        (
            super::unit::differing(&fixed),
            "load balancer (with a new DNS name; its listeners go with the old one)",
        )
    }

    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<LoadBalancerSpec>,
        obs: &Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        let Doc {
            kind,
            scheme,
            subnets,
            security_groups,
            listeners,
            idle_timeout_seconds,
            access_logs,
            tags,
        } = change.desired;
        let elbv2 = &cx.aws().elbv2;
        // Security groups and target groups may have been created earlier in this apply.
        let security_groups =
            network::settle(cx, Some(&m.spec.security_groups), security_groups).await?;
        let target_groups = if forwards(std::slice::from_ref(m))
            .any(|tg| !obs.resolved.target_groups.contains_key(tg))
        {
            crate::kinds::target_group::arns(cx, forwards(std::slice::from_ref(m))).await?
        } else {
            obs.resolved.target_groups.clone()
        };
        if let (true, Some(old)) = (change.replace, obs.arn()) {
            elbv2
                .delete_load_balancer()
                .load_balancer_arn(old)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DeleteLoadBalancer", e))?;
            info!(load_balancer = %old, "deleted load balancer, to replace it");
        }
        let existing = obs.arn().zip(change.live).filter(|_| !change.replace);
        let (arn, live) = match existing {
            Some((arn, live)) => (arn.to_string(), Some(live)),
            None => {
                let out = elbv2
                    .create_load_balancer()
                    .name(m.spec.aws_name(&m.metadata))
                    .r#type(LoadBalancerTypeEnum::from(
                        kind.as_deref().unwrap_or("application"),
                    ))
                    .set_scheme(scheme.as_deref().map(LoadBalancerSchemeEnum::from))
                    .set_subnets(Some(subnets.clone()))
                    .set_security_groups(Some(security_groups.clone()))
                    .set_tags(Some(elb_tags(tags)))
                    .send()
                    .await
                    .map_err(|e| {
                        AwsError::from_sdk("elasticloadbalancing:CreateLoadBalancer", e)
                    })?;
                let arn = out
                    .load_balancers()
                    .first()
                    .and_then(|lb| lb.load_balancer_arn())
                    .unwrap_or_default()
                    .to_string();
                info!(load_balancer = %arn, "created load balancer");
                (arn, None)
            }
        };
        // A new load balancer starts with AWS's defaults: written only when they differ.
        let attributes_differ = match live {
            Some(live) => {
                (live.idle_timeout_seconds, &live.access_logs)
                    != (*idle_timeout_seconds, access_logs)
            }
            None => *idle_timeout_seconds != spec::DEFAULT_IDLE_TIMEOUT || access_logs.is_some(),
        };
        if attributes_differ {
            modify_attributes(cx, &arn, change.desired).await?;
        }
        if let Some(live) = live {
            if change.differs(|d| &d.subnets) {
                elbv2
                    .set_subnets()
                    .load_balancer_arn(&arn)
                    .set_subnets(Some(subnets.clone()))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("elasticloadbalancing:SetSubnets", e))?;
            }
            if security_groups != live.security_groups {
                elbv2
                    .set_security_groups()
                    .load_balancer_arn(&arn)
                    .set_security_groups(Some(security_groups.clone()))
                    .send()
                    .await
                    .map_err(|e| {
                        AwsError::from_sdk("elasticloadbalancing:SetSecurityGroups", e)
                    })?;
            }
        }
        for l in &m.spec.listeners {
            let Some(want) = listeners.get(&l.port).and_then(Option::as_ref) else {
                continue;
            };
            let have = live.and_then(|d| d.listeners.get(&l.port)).and_then(Option::as_ref);
            // The listener (ModifyListener), its rules (rule calls) and its extra
            // certificates (Add/RemoveListenerCertificates) are written apart.
            let want_rules = want.rules.as_ref();
            let own = |d: &ListenerDoc| ListenerDoc {
                rules: None,
                certificates: None,
                ..d.clone()
            };
            let listener = obs
                .listeners
                .iter()
                .filter(|_| live.is_some())
                .find(|x| x.port() == Some(i32::from(l.port)))
                .and_then(|x| x.listener_arn());
            let written = if have.map(own) == Some(own(want)) {
                None
            } else {
                let mut action = want.default_action.clone();
                if let Some(a) = action.as_mut() {
                    settle_action(a, &target_groups)?;
                }
                let certificates = want
                    .certificate_arn
                    .as_ref()
                    .map(|c| vec![Certificate::builder().certificate_arn(c).build()]);
                let protocol = want.protocol.as_deref().map(ProtocolEnum::from);
                let actions = action.as_ref().and_then(elb_action).map(|a| vec![a]);
                let written = match listener {
                    Some(listener) => {
                        elbv2
                            .modify_listener()
                            .listener_arn(listener)
                            .set_protocol(protocol)
                            .port(i32::from(l.port))
                            .set_certificates(certificates)
                            .set_ssl_policy(want.ssl_policy.clone())
                            .set_default_actions(actions)
                            .send()
                            .await
                            .map_err(|e| {
                                AwsError::from_sdk("elasticloadbalancing:ModifyListener", e)
                            })?;
                        listener.to_string()
                    }
                    None => {
                        let created = elbv2
                            .create_listener()
                            .load_balancer_arn(&arn)
                            .set_protocol(protocol)
                            .port(i32::from(l.port))
                            .set_certificates(certificates)
                            .set_ssl_policy(want.ssl_policy.clone())
                            .set_default_actions(actions)
                            .send()
                            .await
                            .map_err(|e| {
                                AwsError::from_sdk("elasticloadbalancing:CreateListener", e)
                            })?;
                        created
                            .listeners()
                            .first()
                            .and_then(|x| x.listener_arn())
                            .unwrap_or_default()
                            .to_string()
                    }
                };
                info!(port = l.port, "listener in place");
                Some(written)
            };
            let Some(listener) = written.clone().or(listener.map(str::to_string)) else {
                continue;
            };
            if let Some(want_rules) = want_rules
                && (written.is_some() || have.and_then(|h| h.rules.as_ref()) != Some(want_rules))
            {
                let live_rules = obs
                    .rules
                    .get(&l.port)
                    .filter(|_| live.is_some())
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                rules::apply(cx, &listener, want_rules, live_rules, &target_groups).await?;
            }
            if let Some(want_certs) = want.certificates.as_ref() {
                // Read again after a write: a new listener has none, and moto's
                // ModifyListener replaces the whole list (AWS's keeps the extras).
                let have_certs = match (&written, have.and_then(|h| h.certificates.as_ref())) {
                    (None, Some(c)) => c.clone(),
                    _ => extra_certificates(cx, &listener).await?,
                };
                if have_certs != *want_certs {
                    set_extra_certificates(cx, &listener, want_certs, &have_certs).await?;
                }
            }
        }
        if let Some(live) = live {
            let missing = tags_to_set(tags, Some(&live.tags));
            if !missing.is_empty() {
                elbv2
                    .add_tags()
                    .resource_arns(&arn)
                    .set_tags(Some(elb_tags(&missing)))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("elasticloadbalancing:AddTags", e))?;
            }
        }
        Ok(Applied {
            aws_id: arn,
            rollout: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;
    use crate::reconcile::diff::diff;
    use aws_sdk_elasticloadbalancingv2::types::{
        AvailabilityZone, HostHeaderConditionConfig, HttpHeaderConditionConfig,
        PathPatternConditionConfig, QueryStringConditionConfig, QueryStringKeyValuePair,
        RuleCondition,
    };
    use serde_json::json;

    const TG_ARN: &str = "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/api/1";
    const CERT: &str = "arn:aws:acm:eu-west-1:1:certificate/a";

    fn load(listeners: &str) -> ManifestSet {
        let text = format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: TargetGroup\nmetadata: {{name: api}}\nspec:\n  port: 3000\n  vpc: default\n  healthCheck: {{path: /health}}\n---\napiVersion: mooring.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {{name: api}}\nspec:\n  subnets: {{ids: [subnet-b, subnet-a]}}\n  securityGroups: {{ids: [sg-1]}}\n  listeners:\n{listeners}"
        );
        load_with_stack(&[("lb.yaml".into(), text)]).unwrap_or_else(|e| panic!("{e}"))
    }

    const LISTENERS: &str = "    - {port: 443, protocol: HTTPS, certificateArn: CERT, defaultAction: {forward: api}}\n    - {port: 80, protocol: HTTP, defaultAction: {redirect: {protocol: HTTPS, port: 443}}}\n";

    fn resolved(target_groups: &[(&str, &str)]) -> Resolved {
        Resolved {
            subnets: vec!["subnet-a".into(), "subnet-b".into()],
            security_groups: vec!["sg-1".into()],
            target_groups: target_groups
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            certificates: BTreeMap::from([(443, CERT.to_string())]),
        }
    }

    fn https() -> Listener {
        Listener::builder()
            .port(443)
            .protocol(ProtocolEnum::Https)
            .ssl_policy(DEFAULT_SSL_POLICY)
            .certificates(Certificate::builder().certificate_arn(CERT).build())
            .default_actions(
                ElbAction::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(TG_ARN)
                    .build(),
            )
            .build()
    }

    fn redirect() -> Listener {
        Listener::builder()
            .port(80)
            .protocol(ProtocolEnum::Http)
            // moto reports a policy on HTTP listeners too.
            .ssl_policy("ELBSecurityPolicy-2016-08")
            .default_actions(
                ElbAction::builder()
                    .r#type(ActionTypeEnum::Redirect)
                    .redirect_config(
                        RedirectActionConfig::builder()
                            .protocol("HTTPS")
                            .port("443")
                            .host("#{host}")
                            .path("/#{path}")
                            .query("#{query}")
                            .status_code(RedirectActionStatusCodeEnum::Http301)
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    fn observed(set: &ManifestSet, listeners: Vec<Listener>, tgs: &[(&str, &str)]) -> Observed {
        let lb = LoadBalancer::builder()
            .load_balancer_name("api")
            .load_balancer_arn("arn:lb")
            .r#type(LoadBalancerTypeEnum::Application)
            .scheme(LoadBalancerSchemeEnum::InternetFacing)
            .availability_zones(AvailabilityZone::builder().subnet_id("subnet-b").build())
            .availability_zones(AvailabilityZone::builder().subnet_id("subnet-a").build())
            .security_groups("sg-1")
            .build();
        let mut tags = desired_tags(set, &set.load_balancers[0]);
        tags.insert("cost-center".into(), "42".into());
        Observed {
            load_balancer: Some(lb),
            tags: elb_tags(&tags),
            listeners,
            rules: BTreeMap::new(),
            certificates: BTreeMap::new(),
            // moto's answer: neither the idle timeout nor `access_logs.s3.enabled`.
            attributes: vec![
                ("access_logs.s3.bucket".into(), String::new()),
                ("access_logs.s3.prefix".into(), String::new()),
                ("deletion_protection.enabled".into(), "false".into()),
            ],
            resolved: resolved(tgs),
        }
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn idle_timeout_and_access_logs_default_as_aws_fills_them_and_changes_are_named() {
        let set = load(&LISTENERS.replace("CERT", CERT));
        let mut obs = observed(&set, vec![redirect(), https()], &[("api", TG_ARN)]);
        assert_eq!(changes(&set, &obs), []);
        // AWS's own answer for a new load balancer: 60 s, logging off.
        obs.attributes = pairs(&[
            ("idle_timeout.timeout_seconds", "60"),
            ("access_logs.s3.enabled", "false"),
            ("access_logs.s3.bucket", ""),
            ("access_logs.s3.prefix", ""),
        ]);
        assert_eq!(changes(&set, &obs), []);
        // Logging switched off by hand keeps the bucket: still no log, no drift.
        obs.attributes = pairs(&[
            ("access_logs.s3.enabled", "false"),
            ("access_logs.s3.bucket", "old-logs"),
        ]);
        assert_eq!(changes(&set, &obs), []);
        // Turned on and the timeout raised by hand: both named, both put back.
        obs.attributes = pairs(&[
            ("idle_timeout.timeout_seconds", "300"),
            ("access_logs.s3.enabled", "true"),
            ("access_logs.s3.bucket", "someone-elses"),
        ]);
        let c = changes(&set, &obs);
        let fields: Vec<&str> = c.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(fields, ["idleTimeoutSeconds", "accessLogs"], "{c:?}");
        assert_eq!((&c[0].1, &c[0].2), (&json!(300), &json!(60)));
        assert_eq!(c[1].2, json!(null), "{c:?}");
        let d = Unit::desired(&set, &set.load_balancers[0], &obs);
        assert_eq!(
            attribute_pairs(&d),
            [
                ("idle_timeout.timeout_seconds", "60".to_string()),
                ("access_logs.s3.enabled", "false".to_string())
            ]
        );
        // Declared: compared field by field and sent with the bucket and prefix.
        let text = format!(
            "{}  idleTimeoutSeconds: 120\n  accessLogs: {{bucket: salon-alb-logs, prefix: prd}}\n",
            LISTENERS.replace("CERT", CERT)
        );
        let set = load(&text);
        let c = changes(&set, &obs);
        let fields: Vec<&str> = c.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            fields,
            ["idleTimeoutSeconds", "accessLogs.bucket", "accessLogs.prefix"],
            "{c:?}"
        );
        let d = Unit::desired(&set, &set.load_balancers[0], &obs);
        let sent = attribute_pairs(&d);
        assert!(sent.contains(&("access_logs.s3.enabled", "true".into())), "{sent:?}");
        assert!(sent.contains(&("access_logs.s3.bucket", "salon-alb-logs".into())));
        assert!(sent.contains(&("access_logs.s3.prefix", "prd".into())));
        assert!(sent.contains(&("idle_timeout.timeout_seconds", "120".into())));
    }

    #[test]
    fn extra_certificates_are_a_set_the_listener_owns_when_declared() {
        const B: &str = "arn:aws:acm:eu-west-1:1:certificate/b";
        const C: &str = "arn:aws:acm:eu-west-1:1:certificate/c";
        let cert = |arn: &str, default: bool| {
            Certificate::builder()
                .certificate_arn(arn)
                .is_default(default)
                .build()
        };
        // AWS lists the default first, and once more as non-default when it was added
        // as an extra too; neither is an extra.
        assert_eq!(
            extras(&[cert(CERT, true), cert(C, false), cert(CERT, false), cert(B, false)]),
            [B, C]
        );
        let with = |extra: &str| {
            load(&format!(
                "    - {{port: 443, protocol: HTTPS, certificateArn: {CERT}, certificates: [{extra}], defaultAction: {{forward: api}}}}\n    - {{port: 80, protocol: HTTP, defaultAction: {{redirect: {{protocol: HTTPS, port: 443}}}}}}\n"
            ))
        };
        let set = with(&format!("{C}, {B}"));
        let mut obs = observed(&set, vec![redirect(), https()], &[("api", TG_ARN)]);
        obs.certificates.insert(443, vec![B.into(), C.into()]);
        assert_eq!(changes(&set, &obs), [], "order does not matter");
        // One added by hand: named, and the manifest's list is what apply leaves.
        obs.certificates
            .insert(443, vec![B.into(), C.into(), "arn:aws:acm:eu-west-1:1:certificate/x".into()]);
        let c = changes(&set, &obs);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].0, "listeners.443.certificates");
        assert_eq!(c[0].2, json!([B, C]));
        // `[]`: none but the default.
        let set = with("");
        assert_eq!(changes(&set, &obs)[0].2, json!([]));
        // Left out: extras are neither read nor compared.
        let set = load(&LISTENERS.replace("CERT", CERT));
        assert_eq!(changes(&set, &obs), []);
        let v = serde_json::to_value(Unit::desired(&set, &set.load_balancers[0], &obs)).unwrap();
        assert!(v["listeners"]["443"].get("certificates").is_none(), "{v}");
    }

    fn changes(set: &ManifestSet, obs: &Observed) -> Vec<(String, serde_json::Value, serde_json::Value)> {
        let m = &set.load_balancers[0];
        let d = serde_json::to_value(Unit::desired(set, m, obs)).unwrap();
        let l = Unit::live(set, m, obs).map(|l| serde_json::to_value(l).unwrap());
        diff(&d, l.as_ref())
            .into_iter()
            .map(|c| (c.field, c.live, c.desired))
            .collect()
    }

    #[test]
    fn a_load_balancer_as_elbv2_describes_it_is_in_sync() {
        let set = load(&LISTENERS.replace("CERT", CERT));
        let obs = observed(&set, vec![redirect(), https()], &[("api", TG_ARN)]);
        assert_eq!(changes(&set, &obs), []);
        let m = &set.load_balancers[0];
        let d = Unit::desired(&set, m, &obs);
        assert!(Unit::replacement(&d, &Unit::live(&set, m, &obs).unwrap()).0.is_empty());
        // The document survives a JSON round trip (what `mooring.dev/ignore` goes through).
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["listeners"]["443"]["defaultAction"]["targetGroupArn"], TG_ARN);
        assert_eq!(serde_json::from_value::<Doc>(v).unwrap(), d);
    }

    #[test]
    fn changed_actions_and_missing_listeners_are_named_by_port() {
        let set = load(&LISTENERS.replace("CERT", CERT));
        let mut forward = redirect();
        forward.default_actions = Some(vec![
            ElbAction::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(TG_ARN)
                .build(),
        ]);
        let obs = observed(&set, vec![forward, https()], &[("api", TG_ARN)]);
        let c = changes(&set, &obs);
        let fields: Vec<&str> = c.iter().map(|c| c.0.as_str()).collect();
        assert!(fields.contains(&"listeners.80.defaultAction.type"), "{fields:?}");
        let t = c.iter().find(|c| c.0 == "listeners.80.defaultAction.type").unwrap();
        assert_eq!((&t.1, &t.2), (&json!("forward"), &json!("redirect")));

        let obs = observed(&set, vec![https()], &[("api", TG_ARN)]);
        let fields: Vec<String> = changes(&set, &obs).into_iter().map(|c| c.0).collect();
        assert!(fields.contains(&"listeners.80.protocol".to_string()), "{fields:?}");
        assert!(fields.iter().all(|f| f.starts_with("listeners.80.")), "{fields:?}");
    }

    #[test]
    fn target_groups_not_created_yet_show_as_pending_and_scheme_needs_a_replacement() {
        let set = load(&LISTENERS.replace("CERT", CERT));
        let obs = observed(&set, vec![redirect(), https()], &[]);
        let c = changes(&set, &obs);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].0, "listeners.443.defaultAction.targetGroupArn");
        assert_eq!(c[0].2, json!("(ARN of TargetGroup/api, once created)"));

        let m = &set.load_balancers[0];
        let mut d = Unit::desired(&set, m, &obs);
        d.scheme = Some("internal".into());
        let (fixed, what) = Unit::replacement(&d, &Unit::live(&set, m, &obs).unwrap());
        assert_eq!(fixed, ["scheme"]);
        assert!(what.contains("new DNS name"), "{what}");
    }

    #[test]
    fn actions_are_sent_as_rendered() {
        let set = load(&LISTENERS.replace("CERT", CERT));
        let m = &set.load_balancers[0];
        let d = Unit::desired(&set, m, &observed(&set, vec![], &[("api", TG_ARN)]));
        let to_https = d.listeners[&80].as_ref().unwrap().default_action.as_ref().unwrap();
        let a = elb_action(to_https).unwrap();
        let c = a.redirect_config().unwrap();
        assert_eq!((c.protocol(), c.port()), (Some("HTTPS"), Some("443")));
        assert_eq!(c.status_code(), Some(&RedirectActionStatusCodeEnum::Http301));
        let forward = d.listeners[&443].as_ref().unwrap().default_action.as_ref().unwrap();
        assert_eq!(elb_action(forward).unwrap().target_group_arn(), Some(TG_ARN));
        let other = ActionDoc {
            kind: Some("authenticate-oidc".into()),
            ..live_action_doc(&ElbAction::builder().build())
        };
        assert!(elb_action(&other).is_none());
    }

    #[test]
    fn certificates_by_domain_take_the_newest_issued_one() {
        let set = load(
            "    - {port: 443, protocol: HTTPS, certificate: {domainName: api.example.com}, defaultAction: {forward: api}}\n",
        );
        let m = &set.load_balancers[0];
        let cert = |arn: &str, domain: &str, secs: i64| {
            CertificateSummary::builder()
                .certificate_arn(arn)
                .domain_name(domain)
                .not_after(aws_smithy_types::DateTime::from_secs(secs))
                .build()
        };
        let issued = [
            cert("arn:old", "api.example.com", 100),
            cert("arn:new", "api.example.com", 200),
            cert("arn:other", "www.example.com", 300),
        ];
        let found = certificates(m, &issued, "eu-west-1").unwrap();
        assert_eq!(found[&443], "arn:new");
        let e = certificates(m, &issued[2..], "eu-west-1").unwrap_err();
        assert!(
            e.to_string()
                .contains("no ISSUED ACM certificate for api.example.com in eu-west-1"),
            "{e}"
        );
    }

    const WEB_ARN: &str = "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/web/2";

    /// A listener with one rule of each kind, and a second target group `web`.
    fn load_rules() -> ManifestSet {
        let text = format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: TargetGroup\nmetadata: {{name: web}}\nspec: {{port: 3000, vpc: default}}\n---\n{}",
            "apiVersion: mooring.dev/v1alpha1\nkind: TargetGroup\nmetadata: {name: api}\nspec: {port: 3001, vpc: default}\n---\napiVersion: mooring.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: api}\nspec:\n  subnets: {ids: [subnet-b, subnet-a]}\n  securityGroups: {ids: [sg-1]}\n  listeners:\n    - port: 443\n      protocol: HTTPS\n      certificateArn: CERT\n      defaultAction: {forward: web}\n      rules:\n        - priority: 10\n          conditions: {pathPatterns: [/api/*, /api], httpHeaders: [{name: X-Canary, values: ['1']}]}\n          action: {forward: api}\n        - priority: 20\n          conditions: {hostHeaders: [old.example.com], queryStrings: [{key: v, value: '2'}]}\n          action: {redirect: {host: new.example.com, statusCode: HTTP_302}}\n        - priority: 30\n          conditions: {pathPatterns: [/beta/*]}\n          action: {weightedForward: {targetGroups: [{name: web, weight: 90}, {name: api, weight: 10}], stickiness: {durationSeconds: 300}}}\n        - priority: 40\n          conditions: {pathPatterns: [/down]}\n          action: {fixedResponse: {statusCode: 503, messageBody: maintenance}}\n".replace("CERT", CERT)
        );
        load_with_stack(&[("lb.yaml".into(), text)]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn condition(field: &str, values: &[&str]) -> RuleCondition {
        // AWS reports path patterns and host headers twice: as `Values` and as a config.
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let b = RuleCondition::builder()
            .field(field)
            .set_values(Some(values.clone()));
        match field {
            "path-pattern" => b.path_pattern_config(
                PathPatternConditionConfig::builder()
                    .set_values(Some(values))
                    .build(),
            ),
            _ => b.host_header_config(
                HostHeaderConditionConfig::builder()
                    .set_values(Some(values))
                    .build(),
            ),
        }
        .build()
    }

    fn forward_to(arns: &[(&str, i32)], sticky: Option<i32>) -> ElbAction {
        let b = ElbAction::builder().r#type(ActionTypeEnum::Forward);
        let b = match arns {
            [(arn, _)] => b.target_group_arn(*arn),
            _ => b,
        };
        b.forward_config(
            ForwardActionConfig::builder()
                .set_target_groups(Some(
                    arns.iter()
                        .map(|(arn, w)| {
                            TargetGroupTuple::builder()
                                .target_group_arn(*arn)
                                .weight(*w)
                                .build()
                        })
                        .collect(),
                ))
                .target_group_stickiness_config(
                    TargetGroupStickinessConfig::builder()
                        .enabled(sticky.is_some())
                        .set_duration_seconds(sticky)
                        .build(),
                )
                .build(),
        )
        .build()
    }

    /// The rules of [`load_rules`] as AWS describes them (with the default rule).
    fn aws_rules() -> Vec<Rule> {
        let rule = |p: &str, conditions: Vec<RuleCondition>, action: ElbAction| {
            Rule::builder()
                .rule_arn(format!("arn:rule/{p}"))
                .priority(p)
                .is_default(false)
                .set_conditions(Some(conditions))
                .actions(action)
                .build()
        };
        vec![
            Rule::builder()
                .rule_arn("arn:rule/default")
                .priority("default")
                .is_default(true)
                .actions(forward_to(&[(WEB_ARN, 1)], None))
                .build(),
            rule(
                "10",
                vec![
                    condition("path-pattern", &["/api", "/api/*"]),
                    RuleCondition::builder()
                        .field("http-header")
                        .http_header_config(
                            HttpHeaderConditionConfig::builder()
                                .http_header_name("X-Canary")
                                .values("1")
                                .build(),
                        )
                        .build(),
                ],
                forward_to(&[(TG_ARN, 1)], None),
            ),
            rule(
                "20",
                vec![
                    condition("host-header", &["old.example.com"]),
                    RuleCondition::builder()
                        .field("query-string")
                        .query_string_config(
                            QueryStringConditionConfig::builder()
                                .values(QueryStringKeyValuePair::builder().key("v").value("2").build())
                                .build(),
                        )
                        .build(),
                ],
                ElbAction::builder()
                    .r#type(ActionTypeEnum::Redirect)
                    .redirect_config(
                        RedirectActionConfig::builder()
                            .protocol("HTTPS")
                            .port("443")
                            .host("new.example.com")
                            .path("/#{path}")
                            .query("#{query}")
                            .status_code(RedirectActionStatusCodeEnum::Http302)
                            .build(),
                    )
                    .build(),
            ),
            rule(
                "30",
                vec![condition("path-pattern", &["/beta/*"])],
                forward_to(&[(TG_ARN, 10), (WEB_ARN, 90)], Some(300)),
            ),
            rule(
                "40",
                vec![condition("path-pattern", &["/down"])],
                ElbAction::builder()
                    .r#type(ActionTypeEnum::FixedResponse)
                    .fixed_response_config(
                        FixedResponseActionConfig::builder()
                            .status_code("503")
                            .content_type("text/plain")
                            .message_body("maintenance")
                            .build(),
                    )
                    .build(),
            ),
        ]
    }

    fn rules_observed(set: &ManifestSet, rules: Vec<Rule>) -> Observed {
        let mut listener = https();
        listener.default_actions = Some(vec![forward_to(&[(WEB_ARN, 1)], None)]);
        let mut obs = observed(set, vec![listener], &[("api", TG_ARN), ("web", WEB_ARN)]);
        obs.rules.insert(443, rules);
        obs
    }

    #[test]
    fn rules_as_aws_describes_them_are_in_sync() {
        let set = load_rules();
        let obs = rules_observed(&set, aws_rules());
        assert_eq!(changes(&set, &obs), []);
        let d = Unit::desired(&set, &set.load_balancers[0], &obs);
        let v = serde_json::to_value(&d).unwrap();
        let rules = &v["listeners"]["443"]["rules"];
        assert_eq!(rules["10"]["conditions"]["pathPatterns"], json!(["/api", "/api/*"]));
        assert_eq!(rules["30"]["action"]["stickinessSeconds"], json!(300));
        assert_eq!(rules["40"]["action"]["contentType"], json!("text/plain"));
        // Priorities survive the JSON round trip `mooring.dev/ignore` goes through.
        assert_eq!(serde_json::from_value::<Doc>(v).unwrap(), d);
        // A listener that declares no rules neither reads nor compares them.
        let plain = load(&LISTENERS.replace("CERT", CERT));
        let v = serde_json::to_value(Unit::desired(&plain, &plain.load_balancers[0], &obs)).unwrap();
        assert!(v["listeners"]["443"].get("rules").is_none(), "{v}");
    }

    #[test]
    fn changed_and_foreign_rules_are_named_by_priority() {
        let set = load_rules();
        let mut rules = aws_rules();
        rules[1].conditions = Some(vec![condition("path-pattern", &["/v2/*"])]);
        rules.push(
            Rule::builder()
                .rule_arn("arn:rule/99")
                .priority("99")
                .conditions(condition("path-pattern", &["/admin"]))
                .actions(forward_to(&[(WEB_ARN, 1)], None))
                .build(),
        );
        rules.remove(4);
        let c = changes(&set, &rules_observed(&set, rules));
        let fields: Vec<&str> = c.iter().map(|c| c.0.as_str()).collect();
        assert!(fields.contains(&"listeners.443.rules.10.conditions.pathPatterns"), "{fields:?}");
        assert!(fields.contains(&"listeners.443.rules.10.conditions.httpHeaders.X-Canary"), "{fields:?}");
        assert!(fields.contains(&"listeners.443.rules.99"), "{fields:?}");
        assert!(fields.iter().any(|f| f.starts_with("listeners.443.rules.40.")), "{fields:?}");
        let foreign = c.iter().find(|c| c.0 == "listeners.443.rules.99").unwrap();
        assert_eq!(foreign.2, json!(null));
        let moved = c
            .iter()
            .find(|c| c.0 == "listeners.443.rules.10.conditions.pathPatterns")
            .unwrap();
        assert_eq!((&moved.1, &moved.2), (&json!(["/v2/*"]), &json!(["/api", "/api/*"])));
    }

    fn rule_doc(path: &str) -> RuleDoc {
        RuleDoc {
            conditions: ConditionsDoc {
                path_patterns: vec![path.into()],
                ..ConditionsDoc::default()
            },
            action: Some(forward_doc(TG_ARN.into())),
        }
    }

    #[test]
    fn rule_changes_become_deletes_moves_modifications_and_creations() {
        let have = |rules: &[(u32, &str)]| -> BTreeMap<u32, (String, RuleDoc)> {
            rules
                .iter()
                .map(|(p, path)| (*p, (format!("arn:{p}"), rule_doc(path))))
                .collect()
        };
        let want = |rules: &[(u32, &str)]| -> BTreeMap<u32, RuleDoc> {
            rules.iter().map(|(p, path)| (*p, rule_doc(path))).collect()
        };
        // In sync: nothing to do.
        let same = [(10, "/a"), (20, "/b")];
        assert_eq!(rules::plan(&want(&same), &have(&same)), rules::RulePlan::default());
        // /a moved from 10 to 15, /b changed in place, /c is foreign, /d is new.
        let p = rules::plan(
            &want(&[(15, "/a"), (20, "/b2"), (30, "/d")]),
            &have(&[(10, "/a"), (20, "/b"), (25, "/c")]),
        );
        assert_eq!(p.moves, [("arn:10".to_string(), 15)]);
        assert_eq!(p.modify, [("arn:20".to_string(), 20)]);
        assert_eq!(p.delete, ["arn:25"]);
        assert_eq!(p.create, [30]);
        // A swap is not done with SetRulePriorities (moto refuses it): the second rule is
        // rewritten where it stands instead.
        let p = rules::plan(&want(&[(10, "/b"), (20, "/a")]), &have(&[(10, "/a"), (20, "/b")]));
        assert_eq!(p.moves.len() + p.modify.len() + p.create.len(), 2, "{p:?}");
        let targets: Vec<u32> = p.moves.iter().map(|m| m.1).collect();
        assert!(p.modify.iter().all(|(_, q)| !targets.contains(q)), "{p:?}");
    }

    #[test]
    fn rule_conditions_are_sent_in_config_form() {
        let set = load_rules();
        let obs = rules_observed(&set, Vec::new());
        let d = Unit::desired(&set, &set.load_balancers[0], &obs);
        let rules = d.listeners[&443].as_ref().unwrap().rules.as_ref().unwrap();
        let sent = rules::elb_conditions(&rules[&10].conditions);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].field(), Some("path-pattern"));
        assert_eq!(sent[0].path_pattern_config().unwrap().values(), ["/api", "/api/*"]);
        assert!(sent[0].values().is_empty(), "Values and a config together are refused");
        assert_eq!(sent[1].http_header_config().unwrap().http_header_name(), Some("X-Canary"));
        let weighted = elb_action(rules[&30].action.as_ref().unwrap()).unwrap();
        let fc = weighted.forward_config().unwrap();
        assert_eq!(fc.target_groups().len(), 2);
        assert_eq!(fc.target_group_stickiness_config().unwrap().duration_seconds(), Some(300));
        let fixed = elb_action(rules[&40].action.as_ref().unwrap()).unwrap();
        assert_eq!(fixed.fixed_response_config().unwrap().status_code(), Some("503"));
        // Target groups created during this apply replace their placeholders.
        let mut pending = action_doc(
            &set.load_balancers[0].spec.listeners[0].rules.as_ref().unwrap()[2].action,
            &Resolved::default(),
        );
        let found = BTreeMap::from([("api".to_string(), TG_ARN.to_string())]);
        let e = settle_action(&mut pending.clone(), &found).unwrap_err();
        assert!(e.to_string().contains("TargetGroup/web"), "{e}");
        let found = BTreeMap::from([
            ("api".to_string(), TG_ARN.to_string()),
            ("web".to_string(), WEB_ARN.to_string()),
        ]);
        settle_action(&mut pending, &found).unwrap();
        let arns: Vec<&str> = pending
            .target_groups
            .iter()
            .flatten()
            .map(|g| g.target_group_arn.as_str())
            .collect();
        assert!(arns.contains(&TG_ARN) && arns.contains(&WEB_ARN), "{arns:?}");
    }
}
