//! ELBv2 target groups (`kind: TargetGroup`).
//!
//! Reads: one paginated DescribeTargetGroups for all of them (asking by name fails the
//! whole call when one is missing), one DescribeTags per 20 that exist, and one
//! DescribeTargetGroupAttributes per target group that exists (deregistration delay,
//! stickiness).
//!
//! Protocol, port, VPC and target type cannot change in place: such a change is planned
//! as a replacement, which apply refuses (the rest of the changes, e.g. the health check,
//! are still applied) unless the manifest allows it; then the target group is deleted
//! and created again. ELBv2 refuses to delete a target group a listener forwards to.

pub mod spec;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_elasticloadbalancingv2::types::{Matcher, ProtocolEnum, Tag, TargetGroup, TargetTypeEnum};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::ownership::{Ownership, managed_tags, owned_tags, tags_to_set};
use super::{Change, Resource};
use super::from::Field;
use crate::aws::AwsError;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::{Applied, Cx, Owned, ReconcileError};
use spec::{TargetGroupSpec, defaults};


/// The `TargetGroup` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeTags",
            "ec2:DescribeVpcs",
            "elasticloadbalancing:CreateTargetGroup",
            "elasticloadbalancing:ModifyTargetGroup",
            "elasticloadbalancing:DescribeTargetGroupAttributes",
            "elasticloadbalancing:ModifyTargetGroupAttributes",
            "elasticloadbalancing:DeleteTargetGroup",
            "elasticloadbalancing:AddTags",
    ];
    type State = ();

    const FIELDS: &'static [Field] = &[Field {
        name: "arn",
        doc: "the target group's ARN",
    }];

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the target group `{}`", m.spec.aws_name(&m.metadata))
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.target_groups
            .iter()
            .map(|t| {
                crate::iam::arn(
                    "elasticloadbalancing",
                    &format!("targetgroup/{}/*", t.spec.aws_name(&t.metadata)),
                )
            })
            .collect()
    }

}

/// Every target group in the region, read once per pass (one paginated
/// DescribeTargetGroups: asking by name fails the whole call when one is missing). Services
/// and load balancers find their target groups' ARNs here.
pub async fn list(
    cx: &crate::reconcile::Cx<'_>,
) -> Result<
    std::sync::Arc<Vec<aws_sdk_elasticloadbalancingv2::types::TargetGroup>>,
    crate::aws::AwsError,
> {
    cx.cache
        .target_groups
        .get((), || async {
            cx.aws()
                .elbv2
                .describe_target_groups()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map(std::sync::Arc::new)
                .map_err(|e| {
                    crate::aws::AwsError::from_sdk("elasticloadbalancing:DescribeTargetGroups", e)
                })
        })
        .await
}

/// The ARNs of target groups by manifest name, for the `TargetGroup` manifests `names`
/// (those that do not exist yet are left out).
pub async fn arns(
    cx: &crate::reconcile::Cx<'_>,
    names: impl IntoIterator<Item = &str>,
) -> Result<std::collections::BTreeMap<String, String>, crate::aws::AwsError> {
    let wanted: Vec<(&str, &str)> = names
        .into_iter()
        .filter_map(|n| {
            cx.set
                .target_group(n)
                .map(|tg| (n, tg.spec.aws_name(&tg.metadata)))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(Default::default());
    }
    let all = list(cx).await?;
    Ok(wanted
        .into_iter()
        .filter_map(|(manifest, aws_name)| {
            let tg = all
                .iter()
                .find(|t| t.target_group_name() == Some(aws_name))?;
            Some((manifest.to_string(), tg.target_group_arn()?.to_string()))
        })
        .collect())
}

/// A target group in the shape plan compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// `HTTP` or `HTTPS` (cannot change in place).
    pub protocol: Option<String>,
    /// The traffic port (cannot change in place).
    pub port: Option<i32>,
    /// The VPC (cannot change in place).
    pub vpc_id: Option<String>,
    /// Always `ip` (cannot change in place).
    pub target_type: Option<String>,
    /// The health check.
    pub health_check: HealthCheck,
    /// Target group attributes mooring manages.
    pub attributes: Attributes,
    /// Tags the manifest manages.
    pub tags: BTreeMap<String, String>,
}

/// The target group attributes mooring manages, AWS defaults filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attributes {
    /// `deregistration_delay.timeout_seconds`.
    pub deregistration_delay_seconds: u32,
    /// `stickiness.enabled` (with `stickiness.type` `lb_cookie`).
    pub stickiness: bool,
    /// `stickiness.lb_cookie.duration_seconds`.
    pub stickiness_seconds: u32,
}

impl Attributes {
    /// From DescribeTargetGroupAttributes' key/value pairs.
    fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Attributes {
        let map: HashMap<&str, &str> = pairs.into_iter().collect();
        let num = |k: &str, default: u32| map.get(k).and_then(|v| v.parse().ok()).unwrap_or(default);
        Attributes {
            deregistration_delay_seconds: num("deregistration_delay.timeout_seconds", 300),
            stickiness: map.get("stickiness.enabled") == Some(&"true"),
            stickiness_seconds: num("stickiness.lb_cookie.duration_seconds", 86_400),
        }
    }

    /// The key/value pairs ModifyTargetGroupAttributes takes.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("deregistration_delay.timeout_seconds", self.deregistration_delay_seconds.to_string()),
            ("stickiness.enabled", self.stickiness.to_string()),
        ];
        if self.stickiness {
            out.push(("stickiness.type", "lb_cookie".into()));
            out.push(("stickiness.lb_cookie.duration_seconds", self.stickiness_seconds.to_string()));
        }
        out
    }
}

/// A target group's health check, AWS defaults filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// On: a target group whose checks are off sends traffic to dead tasks.
    pub enabled: Option<bool>,
    /// Protocol of the check.
    pub protocol: Option<String>,
    /// Port of the check: `traffic-port` (another port makes every target unhealthy).
    pub port: Option<String>,
    /// Path.
    pub path: Option<String>,
    /// HTTP codes that count as healthy.
    pub matcher: Option<String>,
    /// Seconds between checks.
    pub interval_seconds: Option<i32>,
    /// Seconds before a check fails.
    pub timeout_seconds: Option<i32>,
    /// Checks in a row to become healthy.
    pub healthy_threshold: Option<i32>,
    /// Checks in a row to become unhealthy.
    pub unhealthy_threshold: Option<i32>,
}

/// What plan saw of one target group.
pub struct Observed {
    /// The VPC it belongs in (resolved from the manifest).
    vpc_id: String,
    /// The live target group and its tags.
    live: Option<(TargetGroup, Vec<Tag>)>,
    /// Its attributes, when it exists.
    attributes: Option<Attributes>,
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn desired_tags(set: &ManifestSet, m: &Manifest<TargetGroupSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::TargetGroup, set.owner(), m.name(), &m.spec.tags)
}

fn pairs(tags: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter().filter_map(|t| Some((t.key()?, t.value()?)))
}

/// Sets the target group's attributes (deregistration delay, stickiness).
async fn modify_attributes(cx: &Cx<'_>, arn: &str, a: &Attributes) -> Result<(), AwsError> {
    let attributes = a
        .pairs()
        .into_iter()
        .map(|(k, v)| {
            aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder()
                .key(k)
                .value(v)
                .build()
        })
        .collect();
    cx.aws()
        .elbv2
        .modify_target_group_attributes()
        .target_group_arn(arn)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("elasticloadbalancing:ModifyTargetGroupAttributes", e))?;
    info!(target_group = %arn, "set target group attributes");
    Ok(())
}

#[async_trait::async_trait]
impl Resource for Unit {
    /// The manifests' live target groups by manifest name, with their tags.
    type Live = HashMap<String, (TargetGroup, Vec<Tag>)>;
    type Observed = Observed;
    type Doc = Doc;

    async fn read(
        cx: &Cx<'_>,
        manifests: &[Manifest<TargetGroupSpec>],
    ) -> Result<Self::Live, ReconcileError> {
        let all = list(cx).await?;
        let found: Vec<(String, TargetGroup)> = manifests
            .iter()
            .filter_map(|m| {
                let name = m.spec.aws_name(&m.metadata);
                all.iter()
                    .find(|tg| tg.target_group_name() == Some(name))
                    .map(|tg| (m.name().to_string(), tg.clone()))
            })
            .collect();
        let tags = super::elbv2::tags(cx).await?;
        Ok(found
            .into_iter()
            .map(|(name, tg)| {
                let t = tg
                    .target_group_arn()
                    .and_then(|arn| tags.get(arn).cloned())
                    .unwrap_or_default();
                (name, (tg, t))
            })
            .collect())
    }

    async fn observe(
        cx: &Cx<'_>,
        m: &Manifest<TargetGroupSpec>,
        live: &Self::Live,
    ) -> Result<Observed, ReconcileError> {
        let live = live.get(m.name()).cloned();
        let attributes = match live.as_ref().and_then(|(tg, _)| tg.target_group_arn()) {
            Some(arn) => {
                let out = cx
                    .aws()
                    .elbv2
                    .describe_target_group_attributes()
                    .target_group_arn(arn)
                    .send()
                    .await
                    .map_err(|e| {
                        AwsError::from_sdk("elasticloadbalancing:DescribeTargetGroupAttributes", e)
                    })?;
                Some(Attributes::from_pairs(
                    out.attributes()
                        .iter()
                        .filter_map(|a| Some((a.key()?, a.value()?))),
                ))
            }
            None => None,
        };
        Ok(Observed {
            vpc_id: super::network::vpc_id(cx, &m.spec.vpc).await?,
            live,
            attributes,
        })
    }

    fn fields(obs: &Observed) -> Vec<(&'static str, String)> {
        obs.live
            .as_ref()
            .and_then(|(tg, _)| tg.target_group_arn())
            .map(|arn| vec![("arn", arn.to_string())])
            .unwrap_or_default()
    }

    fn ownership(obs: &Observed) -> Option<Ownership> {
        obs.live.as_ref().map(|(_, tags)| Ownership::from_tags(pairs(tags)))
    }

    fn desired(set: &ManifestSet, m: &Manifest<TargetGroupSpec>, obs: &Observed) -> Doc {
        let s = &m.spec;
        let hc = &s.health_check;
        Doc {
            protocol: Some(s.protocol.as_str().to_string()),
            port: Some(i32::from(s.port)),
            vpc_id: Some(obs.vpc_id.clone()),
            target_type: Some("ip".into()),
            health_check: HealthCheck {
                enabled: Some(true),
                protocol: Some(s.protocol.as_str().to_string()),
                port: Some(TRAFFIC_PORT.into()),
                path: Some(s.health_check_path().to_string()),
                matcher: Some(hc.matcher.clone().unwrap_or_else(|| defaults::MATCHER.into())),
                interval_seconds: Some(to_i32(hc.interval_seconds.unwrap_or(defaults::INTERVAL))),
                timeout_seconds: Some(to_i32(hc.timeout_seconds.unwrap_or(defaults::TIMEOUT))),
                healthy_threshold: Some(to_i32(hc.healthy_threshold.unwrap_or(defaults::HEALTHY))),
                unhealthy_threshold: Some(to_i32(
                    hc.unhealthy_threshold.unwrap_or(defaults::UNHEALTHY),
                )),
            },
            attributes: Attributes {
                deregistration_delay_seconds: s.deregistration_delay_seconds.unwrap_or(300),
                stickiness: s.stickiness.is_some(),
                stickiness_seconds: s
                    .stickiness
                    .as_ref()
                    .and_then(|st| st.duration_seconds)
                    .unwrap_or(86_400),
            },
            tags: desired_tags(set, m),
        }
    }

    fn live(set: &ManifestSet, m: &Manifest<TargetGroupSpec>, obs: &Observed) -> Option<Doc> {
        let (tg, tags) = obs.live.as_ref()?;
        Some(Doc {
            protocol: tg.protocol().map(|p| p.as_str().to_string()),
            port: tg.port(),
            vpc_id: tg.vpc_id().map(str::to_string),
            target_type: tg.target_type().map(|t| t.as_str().to_string()),
            health_check: HealthCheck {
                // ELBv2 always reports both; an answer without them means the defaults.
                enabled: Some(tg.health_check_enabled().unwrap_or(true)),
                protocol: tg.health_check_protocol().map(|p| p.as_str().to_string()),
                port: Some(tg.health_check_port().unwrap_or(TRAFFIC_PORT).to_string()),
                path: tg.health_check_path().map(str::to_string),
                matcher: tg.matcher().and_then(|m| m.http_code()).map(str::to_string),
                interval_seconds: tg.health_check_interval_seconds(),
                timeout_seconds: tg.health_check_timeout_seconds(),
                healthy_threshold: tg.healthy_threshold_count(),
                unhealthy_threshold: tg.unhealthy_threshold_count(),
            },
            // Not read (no call) when it does not exist: the defaults it is created with.
            attributes: obs
                .attributes
                .clone()
                .unwrap_or_else(|| Attributes::from_pairs([])),
            tags: managed_tags(pairs(tags), &desired_tags(set, m)),
        })
    }

    fn aws_id(_set: &ManifestSet, m: &Manifest<TargetGroupSpec>, obs: &Observed) -> String {
        obs.live
            .as_ref()
            .and_then(|(tg, _)| tg.target_group_arn())
            .unwrap_or(m.spec.aws_name(&m.metadata))
            .to_string()
    }

    fn replacement(desired: &Doc, live: &Doc) -> (Vec<&'static str>, &'static str) {
        (
            super::unit::differing(&[
                ("protocol", desired.protocol != live.protocol),
                ("port", desired.port != live.port),
                ("vpcId", desired.vpc_id != live.vpc_id),
                ("targetType", desired.target_type != live.target_type),
            ]),
            "target group (ELBv2 refuses to delete one a listener still forwards to)",
        )
    }

    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<TargetGroupSpec>,
        obs: &Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        let Doc {
            protocol,
            port,
            vpc_id,
            target_type: _,
            health_check,
            attributes,
            tags,
        } = change.desired;
        let HealthCheck {
            enabled,
            protocol: hc_protocol,
            port: hc_port,
            path,
            matcher,
            interval_seconds,
            timeout_seconds,
            healthy_threshold,
            unhealthy_threshold,
        } = health_check;
        let elbv2 = &cx.aws().elbv2;
        let matcher = Matcher::builder()
            .set_http_code(matcher.clone())
            .build();
        let mut arn = obs
            .live
            .as_ref()
            .and_then(|(tg, _)| tg.target_group_arn())
            .map(str::to_string);
        if let (true, Some(old)) = (change.replace, &arn) {
            elbv2
                .delete_target_group()
                .target_group_arn(old)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DeleteTargetGroup", e))?;
            info!(target_group = %old, "deleted target group, to replace it");
            arn = None;
        }
        let Some(arn) = arn else {
            let out = elbv2
                .create_target_group()
                .name(m.spec.aws_name(&m.metadata))
                .set_protocol(protocol.as_deref().map(ProtocolEnum::from))
                .set_port(*port)
                .set_vpc_id(vpc_id.clone())
                .target_type(TargetTypeEnum::Ip)
                .set_health_check_enabled(*enabled)
                .set_health_check_protocol(hc_protocol.as_deref().map(ProtocolEnum::from))
                .set_health_check_port(hc_port.clone())
                .set_health_check_path(path.clone())
                .set_health_check_interval_seconds(*interval_seconds)
                .set_health_check_timeout_seconds(*timeout_seconds)
                .set_healthy_threshold_count(*healthy_threshold)
                .set_unhealthy_threshold_count(*unhealthy_threshold)
                .matcher(matcher)
                .set_tags(Some(
                    tags.iter()
                        .map(|(k, v)| Tag::builder().key(k).value(v).build())
                        .collect(),
                ))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:CreateTargetGroup", e))?;
            let arn = out
                .target_groups()
                .first()
                .and_then(|t| t.target_group_arn())
                .unwrap_or_default()
                .to_string();
            info!(target_group = %arn, "created target group");
            if *attributes != Attributes::from_pairs([]) {
                modify_attributes(cx, &arn, attributes).await?;
            }
            return Ok(Applied {
                aws_id: arn,
                rollout: None,
            });
        };
        if change.differs(|d| &d.health_check) {
            elbv2
                .modify_target_group()
                .target_group_arn(&arn)
                .set_health_check_enabled(*enabled)
                .set_health_check_protocol(hc_protocol.as_deref().map(ProtocolEnum::from))
                .set_health_check_port(hc_port.clone())
                .set_health_check_path(path.clone())
                .set_health_check_interval_seconds(*interval_seconds)
                .set_health_check_timeout_seconds(*timeout_seconds)
                .set_healthy_threshold_count(*healthy_threshold)
                .set_unhealthy_threshold_count(*unhealthy_threshold)
                .matcher(matcher)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:ModifyTargetGroup", e))?;
            info!(target_group = %arn, "updated health check");
        }
        if change.differs(|d| &d.attributes) {
            modify_attributes(cx, &arn, attributes).await?;
        }
        let missing = tags_to_set(tags, change.live.map(|l| &l.tags));
        if !missing.is_empty() {
            elbv2
                .add_tags()
                .resource_arns(&arn)
                .set_tags(Some(
                    missing
                        .iter()
                        .map(|(k, v)| Tag::builder().key(k).value(v).build())
                        .collect(),
                ))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:AddTags", e))?;
        }
        Ok(Applied {
            aws_id: arn,
            rollout: None,
        })
    }

    async fn owned(cx: &Cx<'_>) -> Option<Result<Vec<Owned>, ReconcileError>> {
        let listed = async {
            let all = list(cx).await?;
            let arns: Vec<String> = all
                .iter()
                .filter_map(|t| t.target_group_arn().map(str::to_string))
                .collect();
            let tags = super::elbv2::describe_tags(cx, &arns).await?;
            Ok::<_, AwsError>(
                tags.into_iter()
                    .filter_map(|(arn, tags)| {
                        let name = Ownership::from_tags(pairs(&tags))
                            .name_in(cx.set.owner(), Kind::TargetGroup)?;
                        Some(Owned {
                            name,
                            aws_id: arn,
                            scope: None,
                        })
                    })
                    .collect(),
            )
        };
        Some(listed.await.map_err(Into::into))
    }

    async fn delete(cx: &Cx<'_>, owned: &Owned) -> Result<(), ReconcileError> {
        cx.aws()
            .elbv2
            .delete_target_group()
            .target_group_arn(&owned.aws_id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DeleteTargetGroup", e))?;
        Ok(())
    }
}

/// The health check port ELBv2 uses by default: the target's own traffic port.
const TRAFFIC_PORT: &str = "traffic-port";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;
    use crate::reconcile::diff::diff;

    fn loaded(extra: &str) -> ManifestSet {
        let text = format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: TargetGroup\nmetadata: {{name: api}}\nspec:\n  port: 3000\n  vpc: default\n{extra}"
        );
        load_with_stack(&[("t.yaml".into(), text)]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn as_elbv2_returns_it(set: &ManifestSet) -> Observed {
        let m = &set.target_groups[0];
        let tg = TargetGroup::builder()
            .target_group_arn("arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/api/abc")
            .target_group_name("api")
            .protocol(ProtocolEnum::Http)
            .port(3000)
            .vpc_id("vpc-1")
            .target_type(TargetTypeEnum::Ip)
            .health_check_protocol(ProtocolEnum::Http)
            .health_check_port("traffic-port")
            .health_check_enabled(true)
            .health_check_path("/")
            .health_check_interval_seconds(30)
            .health_check_timeout_seconds(5)
            .healthy_threshold_count(5)
            .unhealthy_threshold_count(2)
            .matcher(Matcher::builder().http_code("200").build())
            .build();
        let tags = desired_tags(set, m)
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .chain([Tag::builder().key("team").value("x").build()])
            .collect();
        Observed {
            vpc_id: "vpc-1".into(),
            live: Some((tg, tags)),
            attributes: Some(Attributes::from_pairs([
                ("deregistration_delay.timeout_seconds", "300"),
                ("stickiness.enabled", "false"),
                ("stickiness.type", "lb_cookie"),
            ])),
        }
    }

    fn changes(set: &ManifestSet, obs: &Observed) -> Vec<String> {
        let m = &set.target_groups[0];
        let d = serde_json::to_value(Unit::desired(set, m, obs)).unwrap();
        let l = serde_json::to_value(Unit::live(set, m, obs).unwrap()).unwrap();
        diff(&d, Some(&l)).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn deregistration_delay_and_stickiness_are_compared_and_sent_as_attributes() {
        let set = loaded("  deregistrationDelaySeconds: 30\n  stickiness: {durationSeconds: 3600}\n");
        let obs = as_elbv2_returns_it(&set);
        assert_eq!(
            changes(&set, &obs),
            [
                "attributes.deregistrationDelaySeconds",
                "attributes.stickiness",
                "attributes.stickinessSeconds"
            ]
        );
        let d = Unit::desired(&set, &set.target_groups[0], &obs);
        let pairs = d.attributes.pairs();
        assert!(pairs.contains(&("stickiness.type", "lb_cookie".into())), "{pairs:?}");
        assert!(pairs.contains(&("stickiness.lb_cookie.duration_seconds", "3600".into())));
        assert!(pairs.contains(&("deregistration_delay.timeout_seconds", "30".into())));
        let bad = load_with_stack(&[(
            "t.yaml".into(),
            "apiVersion: mooring.dev/v1alpha1\nkind: TargetGroup\nmetadata: {name: api}\nspec:\n  port: 3000\n  vpc: default\n  deregistrationDelaySeconds: 9000\n  stickiness: {durationSeconds: 0}\n".into(),
        )])
        .unwrap_err()
        .to_string();
        assert!(bad.contains("t.yaml:7:") && bad.contains("must be 0-3600"), "{bad}");
        assert!(bad.contains("0 is not 1-604800"), "{bad}");
    }

    #[test]
    fn elbv2_defaults_are_filled_before_comparing() {
        let set = loaded("");
        assert!(changes(&set, &as_elbv2_returns_it(&set)).is_empty());
    }

    #[test]
    fn health_check_port_enabled_and_replacement_fields_are_named() {
        let set = loaded("  healthCheck: {path: /api/health}\n");
        let mut obs = as_elbv2_returns_it(&set);
        if let Some((tg, _)) = obs.live.as_mut() {
            tg.port = Some(8080);
            tg.health_check_port = Some("8081".into());
            tg.health_check_enabled = Some(false);
        }
        assert_eq!(
            changes(&set, &obs),
            [
                "port",
                "healthCheck.enabled",
                "healthCheck.port",
                "healthCheck.path"
            ]
        );
        let m = &set.target_groups[0];
        let (fixed, _) = Unit::replacement(
            &Unit::desired(&set, m, &obs),
            &Unit::live(&set, m, &obs).unwrap(),
        );
        assert_eq!(fixed, ["port"]);
    }

    #[test]
    fn invalid_target_groups_are_rejected() {
        let text = "apiVersion: mooring.dev/v1alpha1\nkind: TargetGroup\nmetadata: {name: a-very-long-target-group-name-over-32}\nspec:\n  port: 0\n  vpc: main\n  healthCheck: {path: health, matcher: '600', intervalSeconds: 5, timeoutSeconds: 10}\n";
        let errs: Vec<String> = load_with_stack(&[("t.yaml".into(), text.into())])
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.to_string())
            .collect();
        for expected in [
            "spec.targetGroupName: `a-very-long-target-group-name-over-32` is not a valid target group name",
            "spec.port: ports are 1-65535",
            "spec.vpc: must be `default` or a VPC ID",
            "spec.healthCheck.path: must start with `/`",
            "spec.healthCheck.matcher: must be HTTP codes 200-499",
            "spec.healthCheck.timeoutSeconds: the timeout (10s) must be shorter than the interval (5s)",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "missing {expected:?} in {errs:#?}"
            );
        }
    }
}
