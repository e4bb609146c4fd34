//! ELBv2 target groups (`kind: TargetGroup`).
//!
//! Reads: one paginated DescribeTargetGroups for all of them (asking by name fails the
//! whole call when one is missing), one DescribeTags per 20 that exist.
//!
//! Protocol, port, VPC and target type cannot change in place: such a change is planned
//! as a replacement, which apply refuses (the rest of the changes, e.g. the health check,
//! are still applied) unless the manifest allows it; then the target group is deleted
//! and created again. ELBv2 refuses to delete a target group a listener forwards to.

pub mod spec;

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types::{
    Matcher, ProtocolEnum, Tag, TargetGroup, TargetTypeEnum,
};
use serde_json::{Value, json};
use tracing::info;

use super::service::network::Resolver;
use super::{
    live_tags_doc, owner_name, ownership_conflict, replacement, replacing, tags_doc, tags_to_set,
    touches,
};
use crate::aws::AwsError;
use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::target_group::{TargetGroupSpec, defaults};
use crate::manifest::{Kind, Manifest, ManifestSet, owned_tags};
use crate::reconcile::diff::diff_managed;
use crate::reconcile::{
    Action, Applied, Context, Owned, Planned, ReconcileError, Reconciler, ResourcePlan,
};

/// DescribeTags takes at most 20 ARNs per call.
const TAGS_BATCH: usize = 20;

/// Fields ELBv2 cannot change on an existing target group.
const REPLACEMENT_FIELDS: [&str; 4] = ["protocol", "port", "vpcId", "targetType"];

/// Reconciles `kind: TargetGroup` manifests.
pub struct TargetGroupReconciler {
    manifests: Vec<Manifest<TargetGroupSpec>>,
}

impl TargetGroupReconciler {
    /// The reconciler for the set's target groups.
    pub fn new(set: &ManifestSet) -> Self {
        TargetGroupReconciler {
            manifests: set.target_groups.clone(),
        }
    }
}

/// Every target group in the region (ELBv2 pages of 400).
pub async fn list_target_groups(ctx: &Context) -> Result<Vec<TargetGroup>, AwsError> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = ctx
            .aws
            .elbv2
            .describe_target_groups()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DescribeTargetGroups", e))?;
        out.extend(page.target_groups().iter().cloned());
        marker = page.next_marker;
        if marker.is_none() {
            break;
        }
    }
    Ok(out)
}

fn desired_tags(m: &Manifest<TargetGroupSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::TargetGroup, m.name(), &m.spec.tags)
}

/// The manifest in the normalised shape plan compares.
pub fn desired_doc(m: &Manifest<TargetGroupSpec>, vpc_id: &str) -> Value {
    let s = &m.spec;
    let hc = &s.health_check;
    json!({
        "protocol": s.protocol.as_str(),
        "port": s.port,
        "vpcId": vpc_id,
        "targetType": "ip",
        "healthCheck": {
            "protocol": s.protocol.as_str(),
            "path": s.health_check_path(),
            "matcher": hc.matcher.as_deref().unwrap_or(defaults::MATCHER),
            "intervalSeconds": hc.interval_seconds.unwrap_or(defaults::INTERVAL),
            "timeoutSeconds": hc.timeout_seconds.unwrap_or(defaults::TIMEOUT),
            "healthyThreshold": hc.healthy_threshold.unwrap_or(defaults::HEALTHY),
            "unhealthyThreshold": hc.unhealthy_threshold.unwrap_or(defaults::UNHEALTHY),
        },
        "tags": tags_doc(&desired_tags(m)),
    })
}

/// The live target group in the shape of [`desired_doc`].
pub fn live_doc(m: &Manifest<TargetGroupSpec>, tg: &TargetGroup, tags: &[Tag]) -> Value {
    let live_tags = tags.iter().filter_map(|t| Some((t.key()?, t.value()?)));
    json!({
        "protocol": tg.protocol().map(|p| p.as_str()),
        "port": tg.port(),
        "vpcId": tg.vpc_id(),
        "targetType": tg.target_type().map(|t| t.as_str()),
        "healthCheck": {
            "protocol": tg.health_check_protocol().map(|p| p.as_str()),
            "path": tg.health_check_path(),
            "matcher": tg.matcher().and_then(|m| m.http_code()),
            "intervalSeconds": tg.health_check_interval_seconds(),
            "timeoutSeconds": tg.health_check_timeout_seconds(),
            "healthyThreshold": tg.healthy_threshold_count(),
            "unhealthyThreshold": tg.unhealthy_threshold_count(),
        },
        "tags": live_tags_doc(live_tags, &desired_tags(m)),
    })
}

struct Observed {
    manifest: Manifest<TargetGroupSpec>,
    vpc_id: String,
    arn: Option<String>,
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

#[async_trait::async_trait]
impl Reconciler for TargetGroupReconciler {
    fn kind(&self) -> Kind {
        Kind::TargetGroup
    }

    fn dependencies(&self, _name: &str) -> Vec<(Kind, String)> {
        Vec::new()
    }

    async fn owned(&self, ctx: &Context) -> Option<Result<Vec<Owned>, ReconcileError>> {
        let listed = async {
            let all = list_target_groups(ctx).await?;
            let arns: Vec<String> = all
                .iter()
                .filter_map(|t| t.target_group_arn().map(str::to_string))
                .collect();
            let mut owned = Vec::new();
            for chunk in arns.chunks(TAGS_BATCH) {
                let out = ctx
                    .aws
                    .elbv2
                    .describe_tags()
                    .set_resource_arns(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DescribeTags", e))?;
                for d in out.tag_descriptions() {
                    let name = owner_name(
                        Kind::TargetGroup,
                        d.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))),
                    );
                    if let (Some(name), Some(arn)) = (name, d.resource_arn()) {
                        owned.push(Owned {
                            name,
                            aws_id: arn.to_string(),
                            scope: None,
                        });
                    }
                }
            }
            Ok::<_, AwsError>(owned)
        };
        Some(listed.await.map_err(Into::into))
    }

    async fn delete(&self, ctx: &Context, owned: &Owned) -> Result<(), ReconcileError> {
        ctx.aws
            .elbv2
            .delete_target_group()
            .target_group_arn(&owned.aws_id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DeleteTargetGroup", e))?;
        Ok(())
    }

    async fn plan(&self, ctx: &Context) -> Vec<(String, Result<Planned, ReconcileError>)> {
        if self.manifests.is_empty() {
            return Vec::new();
        }
        let fail_all = |e: ReconcileError| {
            self.manifests
                .iter()
                .map(|m| (m.name().to_string(), Err(e.clone())))
                .collect::<Vec<_>>()
        };
        let all = match list_target_groups(ctx).await {
            Ok(all) => all,
            Err(e) => return fail_all(e.into()),
        };
        let found: BTreeMap<&str, &TargetGroup> = self
            .manifests
            .iter()
            .filter_map(|m| {
                let name = m.spec.aws_name(&m.metadata);
                all.iter()
                    .find(|tg| tg.target_group_name() == Some(name))
                    .map(|tg| (m.name(), tg))
            })
            .collect();
        let arns: Vec<String> = found
            .values()
            .filter_map(|tg| tg.target_group_arn().map(str::to_string))
            .collect();
        let mut tags: BTreeMap<String, Vec<Tag>> = BTreeMap::new();
        for chunk in arns.chunks(TAGS_BATCH) {
            match ctx
                .aws
                .elbv2
                .describe_tags()
                .set_resource_arns(Some(chunk.to_vec()))
                .send()
                .await
            {
                Ok(out) => {
                    for d in out.tag_descriptions() {
                        if let Some(arn) = d.resource_arn() {
                            tags.insert(arn.to_string(), d.tags().to_vec());
                        }
                    }
                }
                Err(e) => {
                    return fail_all(
                        AwsError::from_sdk("elasticloadbalancing:DescribeTags", e).into(),
                    );
                }
            }
        }

        let mut resolver = Resolver::default();
        let mut out = Vec::new();
        for m in &self.manifests {
            let result = async {
                let vpc_id = resolver.vpc_id(&ctx.aws, &m.spec.vpc).await?;
                let tg = found.get(m.name()).copied();
                let live_tags = tg
                    .and_then(|t| t.target_group_arn())
                    .and_then(|arn| tags.get(arn))
                    .cloned()
                    .unwrap_or_default();
                if let Some(conflict) = tg.and_then(|_| {
                    ownership_conflict(
                        Kind::TargetGroup,
                        &m.metadata,
                        live_tags
                            .iter()
                            .filter_map(|t| Some((t.key()?, t.value()?))),
                    )
                }) {
                    return Err(ReconcileError::Ownership(format!(
                        "target group {}: {conflict}",
                        m.spec.aws_name(&m.metadata)
                    )));
                }
                let changes = diff_managed(
                    &m.metadata,
                    &desired_doc(m, &vpc_id),
                    tg.map(|t| live_doc(m, t, &live_tags)).as_ref(),
                );
                let action = match (tg, changes.is_empty()) {
                    (None, _) => Action::Create,
                    (Some(_), true) => Action::None,
                    (Some(_), false) => Action::Update,
                };
                let (action, problems) = replacement(
                    &m.metadata,
                    action,
                    &changes,
                    &REPLACEMENT_FIELDS,
                    "target group (ELBv2 refuses to delete one a listener still forwards to)",
                );
                Ok(Planned {
                    plan: ResourcePlan {
                        kind: Kind::TargetGroup,
                        name: m.name().to_string(),
                        aws_id: tg
                            .and_then(|t| t.target_group_arn())
                            .unwrap_or(m.spec.aws_name(&m.metadata))
                            .to_string(),
                        action,
                        changes,
                        rollout: None,
                        problems,
                    },
                    observed: Box::new(Observed {
                        manifest: m.clone(),
                        vpc_id,
                        arn: tg.and_then(|t| t.target_group_arn()).map(str::to_string),
                    }),
                })
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
        let s = &m.spec;
        let hc = &s.health_check;
        let protocol = ProtocolEnum::from(s.protocol.as_str());
        let matcher = Matcher::builder()
            .http_code(hc.matcher.as_deref().unwrap_or(defaults::MATCHER))
            .build();
        let tag = |k: &String, v: &String| Tag::builder().key(k).value(v).build();
        let mut arn = obs.arn.clone();
        if let (true, Some(old)) = (replacing(planned), &arn) {
            ctx.aws
                .elbv2
                .delete_target_group()
                .target_group_arn(old)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DeleteTargetGroup", e))?;
            info!(target_group = %old, "deleted target group, to replace it");
            arn = None;
        }
        let Some(arn) = &arn else {
            let out = ctx
                .aws
                .elbv2
                .create_target_group()
                .name(s.aws_name(&m.metadata))
                .protocol(protocol.clone())
                .port(i32::from(s.port))
                .vpc_id(&obs.vpc_id)
                .target_type(TargetTypeEnum::Ip)
                .health_check_protocol(protocol)
                .health_check_path(s.health_check_path())
                .health_check_interval_seconds(to_i32(
                    hc.interval_seconds.unwrap_or(defaults::INTERVAL),
                ))
                .health_check_timeout_seconds(to_i32(
                    hc.timeout_seconds.unwrap_or(defaults::TIMEOUT),
                ))
                .healthy_threshold_count(to_i32(hc.healthy_threshold.unwrap_or(defaults::HEALTHY)))
                .unhealthy_threshold_count(to_i32(
                    hc.unhealthy_threshold.unwrap_or(defaults::UNHEALTHY),
                ))
                .matcher(matcher)
                .set_tags(Some(
                    desired_tags(m).iter().map(|(k, v)| tag(k, v)).collect(),
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
            return Ok(Applied {
                aws_id: arn,
                rollout: None,
            });
        };
        let changes = &planned.plan.changes;
        if touches(changes, "healthCheck") {
            ctx.aws
                .elbv2
                .modify_target_group()
                .target_group_arn(arn)
                .health_check_protocol(protocol)
                .health_check_path(s.health_check_path())
                .health_check_interval_seconds(to_i32(
                    hc.interval_seconds.unwrap_or(defaults::INTERVAL),
                ))
                .health_check_timeout_seconds(to_i32(
                    hc.timeout_seconds.unwrap_or(defaults::TIMEOUT),
                ))
                .healthy_threshold_count(to_i32(hc.healthy_threshold.unwrap_or(defaults::HEALTHY)))
                .unhealthy_threshold_count(to_i32(
                    hc.unhealthy_threshold.unwrap_or(defaults::UNHEALTHY),
                ))
                .matcher(matcher)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:ModifyTargetGroup", e))?;
            info!(target_group = %arn, "updated health check");
        }
        let tags = tags_to_set(changes);
        if !tags.is_empty() {
            ctx.aws
                .elbv2
                .add_tags()
                .resource_arns(arn)
                .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:AddTags", e))?;
        }
        Ok(Applied {
            aws_id: arn.clone(),
            rollout: None,
        })
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;
    use crate::reconcile::diff::diff;

    fn manifest(extra: &str) -> Manifest<TargetGroupSpec> {
        let text = format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: TargetGroup\nmetadata: {{name: api}}\nspec:\n  port: 3000\n  vpc: default\n{extra}"
        );
        load_with_stack(&[("t.yaml".into(), text)])
            .unwrap_or_else(|e| panic!("{e}"))
            .target_groups[0]
            .clone()
    }

    fn as_elbv2_returns_it(m: &Manifest<TargetGroupSpec>) -> (TargetGroup, Vec<Tag>) {
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
        let tags = desired_tags(m)
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .chain([Tag::builder().key("team").value("x").build()])
            .collect();
        (tg, tags)
    }

    #[test]
    fn elbv2_defaults_are_filled_before_comparing() {
        let m = manifest("");
        let (tg, tags) = as_elbv2_returns_it(&m);
        assert!(diff(&desired_doc(&m, "vpc-1"), Some(&live_doc(&m, &tg, &tags))).is_empty());
    }

    #[test]
    fn health_check_and_replacement_fields_are_named() {
        let m = manifest("  healthCheck: {path: /api/health}\n");
        let (mut tg, tags) = as_elbv2_returns_it(&m);
        tg.port = Some(8080);
        let changes = diff(&desired_doc(&m, "vpc-1"), Some(&live_doc(&m, &tg, &tags)));
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["port", "healthCheck.path"]);
        assert!(touches(&changes, "port"));
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
