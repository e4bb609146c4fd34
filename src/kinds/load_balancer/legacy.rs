//! Application Load Balancers and their listeners (`kind: LoadBalancer`).
//!
//! Reads: one paginated DescribeLoadBalancers (asking by name fails the whole call when
//! one is missing), one DescribeTags per 20 that exist, one DescribeListeners per load
//! balancer. Listeners on ports the manifest does not declare are left alone (mooring
//! never deletes). The scheme and the name cannot change in place: reported, refused.

pub mod spec;

use std::collections::BTreeMap;

use aws_sdk_acm::types::{CertificateStatus, CertificateSummary};
use aws_sdk_elasticloadbalancingv2::types::{
    Action as ElbAction, ActionTypeEnum, Certificate, Listener, LoadBalancer,
    LoadBalancerSchemeEnum, LoadBalancerTypeEnum, ProtocolEnum, RedirectActionConfig,
    RedirectActionStatusCodeEnum, Tag,
};
use serde_json::{Map, Value, json};
use tracing::info;

use super::service::network::{Resolver, Target, settle};
use super::{
    live_tags_doc, ownership_conflict, replacement, replacing, tags_doc, tags_to_set, touches,
};
use crate::aws::AwsError;
use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::load_balancer::{
    DEFAULT_SSL_POLICY, ListenerProtocol, ListenerSpec, LoadBalancerSpec, RedirectStatus,
};
use crate::manifest::{Kind, Manifest, ManifestSet, owned_tags};
use crate::reconcile::diff::diff_managed;
use crate::reconcile::{
    Action, Applied, Context, Planned, ReconcileError, Reconciler, ResourcePlan,
};

/// Reconciles `kind: LoadBalancer` manifests.
pub struct LoadBalancerReconciler {
    manifests: Vec<Manifest<LoadBalancerSpec>>,
    /// `TargetGroup` manifest name → name in ELBv2.
    target_group_names: BTreeMap<String, String>,
}

impl LoadBalancerReconciler {
    /// The reconciler for the set's load balancers.
    pub fn new(set: &ManifestSet) -> Self {
        LoadBalancerReconciler {
            manifests: set.load_balancers.clone(),
            target_group_names: set
                .target_groups
                .iter()
                .map(|t| {
                    (
                        t.name().to_string(),
                        t.spec.aws_name(&t.metadata).to_string(),
                    )
                })
                .collect(),
        }
    }
}

/// Inputs of a load balancer that are looked up, not written in the manifest.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Subnet IDs, sorted.
    pub subnets: Vec<String>,
    /// Security group IDs, sorted.
    pub security_groups: Vec<String>,
    /// `TargetGroup` manifest name → ARN.
    pub target_groups: BTreeMap<String, String>,
    /// Listener port → certificate ARN, for HTTPS listeners.
    pub certificates: BTreeMap<u16, String>,
}

fn desired_tags(m: &Manifest<LoadBalancerSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::LoadBalancer, m.name(), &m.spec.tags)
}

fn action_doc(l: &ListenerSpec, r: &Resolved) -> Value {
    let a = &l.default_action;
    if let Some(tg) = &a.forward {
        let arn = r
            .target_groups
            .get(tg)
            .cloned()
            .unwrap_or_else(|| format!("(ARN of TargetGroup/{tg}, once created)"));
        return json!({"type": "forward", "targetGroupArn": arn});
    }
    let redirect = a.redirect.as_ref();
    json!({
        "type": "redirect",
        "protocol": redirect.and_then(|r| r.protocol).unwrap_or(ListenerProtocol::HTTPS).as_str(),
        "port": redirect.and_then(|r| r.port).unwrap_or(443).to_string(),
        "host": "#{host}",
        "path": "/#{path}",
        "query": "#{query}",
        "statusCode": redirect.and_then(|r| r.status_code).unwrap_or(RedirectStatus::HTTP_301).as_str(),
    })
}

/// The manifest in the normalised shape plan compares.
pub fn desired_doc(m: &Manifest<LoadBalancerSpec>, r: &Resolved) -> Value {
    let listeners: Map<String, Value> = m
        .spec
        .listeners
        .iter()
        .map(|l| {
            let https = l.protocol == ListenerProtocol::HTTPS;
            (
                l.port.to_string(),
                json!({
                    "protocol": l.protocol.as_str(),
                    "certificateArn": r.certificates.get(&l.port),
                    "sslPolicy": https.then(|| l.ssl_policy.as_deref().unwrap_or(DEFAULT_SSL_POLICY)),
                    "defaultAction": action_doc(l, r),
                }),
            )
        })
        .collect();
    json!({
        "type": "application",
        "scheme": m.spec.scheme.as_str(),
        "subnets": r.subnets,
        "securityGroups": r.security_groups,
        "listeners": listeners,
        "tags": tags_doc(&desired_tags(m)),
    })
}

fn live_action_doc(a: Option<&ElbAction>) -> Value {
    let Some(a) = a else { return Value::Null };
    match a.r#type() {
        Some(ActionTypeEnum::Forward) => {
            json!({"type": "forward", "targetGroupArn": a.target_group_arn()})
        }
        Some(ActionTypeEnum::Redirect) => {
            let c = a.redirect_config();
            json!({
                "type": "redirect",
                "protocol": c.and_then(|c| c.protocol()).unwrap_or("#{protocol}"),
                "port": c.and_then(|c| c.port()).unwrap_or("#{port}"),
                "host": c.and_then(|c| c.host()).unwrap_or("#{host}"),
                "path": c.and_then(|c| c.path()).unwrap_or("/#{path}"),
                "query": c.and_then(|c| c.query()).unwrap_or("#{query}"),
                "statusCode": c.and_then(|c| c.status_code()).map(|s| s.as_str()),
            })
        }
        other => json!({"type": other.map(|t| t.as_str())}),
    }
}

/// The live load balancer in the shape of [`desired_doc`]: only the listener ports the
/// manifest declares.
pub fn live_doc(
    m: &Manifest<LoadBalancerSpec>,
    lb: &LoadBalancer,
    listeners: &[Listener],
    tags: &[Tag],
) -> Value {
    let mut subnets: Vec<&str> = lb
        .availability_zones()
        .iter()
        .filter_map(|z| z.subnet_id())
        .collect();
    subnets.sort();
    let mut sgs: Vec<&str> = lb.security_groups().iter().map(String::as_str).collect();
    sgs.sort();
    let live: Map<String, Value> = m
        .spec
        .listeners
        .iter()
        .map(|want| {
            let doc = listeners
                .iter()
                .find(|l| l.port() == Some(i32::from(want.port)))
                .map_or(Value::Null, |l| {
                    json!({
                        "protocol": l.protocol().map(|p| p.as_str()),
                        "certificateArn": l.certificates().first().and_then(|c| c.certificate_arn()),
                        // A TLS policy means nothing on an HTTP listener (moto reports
                        // one anyway).
                        "sslPolicy": l
                            .ssl_policy()
                            .filter(|_| l.protocol() == Some(&ProtocolEnum::Https)),
                        "defaultAction": live_action_doc(l.default_actions().first()),
                    })
                });
            (want.port.to_string(), doc)
        })
        .collect();
    let live_tags = tags.iter().filter_map(|t| Some((t.key()?, t.value()?)));
    json!({
        "type": lb.r#type().map(|t| t.as_str()),
        "scheme": lb.scheme().map(|s| s.as_str()),
        "subnets": subnets,
        "securityGroups": sgs,
        "listeners": live,
        "tags": live_tags_doc(live_tags, &desired_tags(m)),
    })
}

fn action(l: &ListenerSpec, r: &Resolved) -> Result<ElbAction, AwsError> {
    let op = "elasticloadbalancing:CreateListener";
    if let Some(tg) = &l.default_action.forward {
        let arn = r.target_groups.get(tg).ok_or_else(|| AwsError {
            operation: op,
            code: None,
            message: format!("TargetGroup/{tg} does not exist yet"),
            category: crate::aws::ErrorCategory::NotFound,
        })?;
        return Ok(ElbAction::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(arn)
            .build());
    }
    let redirect = l.default_action.redirect.as_ref();
    let config = RedirectActionConfig::builder()
        .protocol(
            redirect
                .and_then(|r| r.protocol)
                .unwrap_or(ListenerProtocol::HTTPS)
                .as_str(),
        )
        .port(redirect.and_then(|r| r.port).unwrap_or(443).to_string())
        .host("#{host}")
        .path("/#{path}")
        .query("#{query}")
        .status_code(RedirectActionStatusCodeEnum::from(
            redirect
                .and_then(|r| r.status_code)
                .unwrap_or(RedirectStatus::HTTP_301)
                .as_str(),
        ))
        .build();
    Ok(ElbAction::builder()
        .r#type(ActionTypeEnum::Redirect)
        .redirect_config(config)
        .build())
}

struct Observed {
    manifest: Manifest<LoadBalancerSpec>,
    resolved: Resolved,
    arn: Option<String>,
    listeners: Vec<Listener>,
}

/// Every `ISSUED` certificate in ACM (pages of 1000).
async fn issued_certificates(ctx: &Context) -> Result<Vec<CertificateSummary>, AwsError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = ctx
            .aws
            .acm
            .list_certificates()
            .certificate_statuses(CertificateStatus::Issued)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("acm:ListCertificates", e))?;
        out.extend(page.certificate_summary_list().iter().cloned());
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

async fn list_load_balancers(ctx: &Context) -> Result<Vec<LoadBalancer>, AwsError> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = ctx
            .aws
            .elbv2
            .describe_load_balancers()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DescribeLoadBalancers", e))?;
        out.extend(page.load_balancers().iter().cloned());
        marker = page.next_marker;
        if marker.is_none() {
            break;
        }
    }
    Ok(out)
}

impl LoadBalancerReconciler {
    async fn target_group_arns(&self, ctx: &Context) -> Result<BTreeMap<String, String>, AwsError> {
        let wanted: Vec<&String> = self
            .manifests
            .iter()
            .flat_map(|m| m.spec.listeners.iter())
            .filter_map(|l| l.default_action.forward.as_ref())
            .collect();
        if wanted.is_empty() {
            return Ok(BTreeMap::new());
        }
        let all = super::target_group::list_target_groups(ctx).await?;
        Ok(wanted
            .into_iter()
            .filter_map(|name| {
                let aws_name = self.target_group_names.get(name)?;
                let tg = all
                    .iter()
                    .find(|t| t.target_group_name() == Some(aws_name.as_str()))?;
                Some((name.clone(), tg.target_group_arn()?.to_string()))
            })
            .collect())
    }

    /// The certificate of every HTTPS listener: as written, or the newest `ISSUED` ACM
    /// certificate for the domain (one ListCertificates per load balancer that asks).
    async fn certificates(
        &self,
        ctx: &Context,
        m: &Manifest<LoadBalancerSpec>,
    ) -> Result<BTreeMap<u16, String>, ReconcileError> {
        let mut out = BTreeMap::new();
        let mut issued = None;
        for l in &m.spec.listeners {
            if let Some(arn) = &l.certificate_arn {
                out.insert(l.port, arn.clone());
            }
            let Some(lookup) = &l.certificate else {
                continue;
            };
            if issued.is_none() {
                issued = Some(issued_certificates(ctx).await?);
            }
            let found = issued
                .iter()
                .flatten()
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
                            "no ISSUED ACM certificate for {} in {}",
                            lookup.domain_name, ctx.aws.region
                        ),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn plan_one(
        &self,
        ctx: &Context,
        resolver: &mut Resolver,
        m: &Manifest<LoadBalancerSpec>,
        found: Option<&LoadBalancer>,
        tags: &[Tag],
        target_groups: &BTreeMap<String, String>,
    ) -> Result<Planned, ReconcileError> {
        let name = m.spec.aws_name(&m.metadata);
        if let Some(conflict) = found.and_then(|_| {
            ownership_conflict(
                Kind::LoadBalancer,
                &m.metadata,
                tags.iter().filter_map(|t| Some((t.key()?, t.value()?))),
            )
        }) {
            return Err(ReconcileError::Ownership(format!(
                "load balancer {name}: {conflict}"
            )));
        }
        let resolved = Resolved {
            subnets: resolver
                .resolve(&ctx.aws, Target::Subnets, &m.spec.subnets)
                .await?,
            security_groups: resolver
                .resolve(&ctx.aws, Target::SecurityGroups, &m.spec.security_groups)
                .await?,
            target_groups: target_groups.clone(),
            certificates: self.certificates(ctx, m).await?,
        };
        let arn = found
            .and_then(|lb| lb.load_balancer_arn())
            .map(str::to_string);
        let listeners = match &arn {
            Some(arn) => ctx
                .aws
                .elbv2
                .describe_listeners()
                .load_balancer_arn(arn)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DescribeListeners", e))?
                .listeners()
                .to_vec(),
            None => Vec::new(),
        };
        let changes = diff_managed(
            &m.metadata,
            &desired_doc(m, &resolved),
            found.map(|lb| live_doc(m, lb, &listeners, tags)).as_ref(),
        );
        let action = match (found, changes.is_empty()) {
            (None, _) => Action::Create,
            (Some(_), true) => Action::None,
            (Some(_), false) => Action::Update,
        };
        let (action, problems) = replacement(
            &m.metadata,
            action,
            &changes,
            &["scheme", "type"],
            "load balancer (with a new DNS name; its listeners go with the old one)",
        );
        Ok(Planned {
            plan: ResourcePlan {
                kind: Kind::LoadBalancer,
                name: m.name().to_string(),
                aws_id: arn.clone().unwrap_or_else(|| name.to_string()),
                action,
                changes,
                rollout: None,
                problems,
            },
            observed: Box::new(Observed {
                manifest: m.clone(),
                resolved,
                arn,
                listeners,
            }),
        })
    }
}

#[async_trait::async_trait]
impl Reconciler for LoadBalancerReconciler {
    fn kind(&self) -> Kind {
        Kind::LoadBalancer
    }

    fn dependencies(&self, name: &str) -> Vec<(Kind, String)> {
        let mut deps: Vec<(Kind, String)> = self
            .manifests
            .iter()
            .filter(|m| m.name() == name)
            .flat_map(|m| m.spec.listeners.iter())
            .filter_map(|l| l.default_action.forward.clone())
            .map(|tg| (Kind::TargetGroup, tg))
            .collect();
        for m in self.manifests.iter().filter(|m| m.name() == name) {
            deps.extend(m.spec.security_groups.dependencies());
        }
        deps.sort();
        deps.dedup();
        deps
    }

    async fn plan(&self, ctx: &Context) -> Vec<(String, Result<Planned, ReconcileError>)> {
        if self.manifests.is_empty() {
            return Vec::new();
        }
        let read = async {
            let all = list_load_balancers(ctx).await?;
            let target_groups = self.target_group_arns(ctx).await?;
            Ok::<_, AwsError>((all, target_groups))
        }
        .await;
        let (all, target_groups) = match read {
            Ok(r) => r,
            Err(e) => {
                let e = ReconcileError::from(e);
                return self
                    .manifests
                    .iter()
                    .map(|m| (m.name().to_string(), Err(e.clone())))
                    .collect();
            }
        };
        let mut resolver = Resolver::default();
        let mut out = Vec::new();
        for m in &self.manifests {
            let name = m.spec.aws_name(&m.metadata);
            let found = all.iter().find(|lb| lb.load_balancer_name() == Some(name));
            let tags = match found.and_then(|lb| lb.load_balancer_arn()) {
                Some(arn) => match ctx
                    .aws
                    .elbv2
                    .describe_tags()
                    .resource_arns(arn)
                    .send()
                    .await
                {
                    Ok(o) => o
                        .tag_descriptions()
                        .first()
                        .map(|d| d.tags().to_vec())
                        .unwrap_or_default(),
                    Err(e) => {
                        out.push((
                            m.name().to_string(),
                            Err(AwsError::from_sdk("elasticloadbalancing:DescribeTags", e).into()),
                        ));
                        continue;
                    }
                },
                None => Vec::new(),
            };
            let result = self
                .plan_one(ctx, &mut resolver, m, found, &tags, &target_groups)
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
        let mut resolved = obs.resolved.clone();
        let forwards = m
            .spec
            .listeners
            .iter()
            .filter_map(|l| l.default_action.forward.as_ref());
        if forwards
            .clone()
            .any(|tg| !resolved.target_groups.contains_key(tg))
        {
            // Created earlier in this apply.
            resolved.target_groups = self.target_group_arns(ctx).await?;
        }
        resolved.security_groups = settle(
            &ctx.aws,
            Some(&m.spec.security_groups),
            &resolved.security_groups,
        )
        .await?;
        let tag = |k: &String, v: &String| Tag::builder().key(k).value(v).build();
        let replace = replacing(planned);
        if let (true, Some(old)) = (replace, &obs.arn) {
            ctx.aws
                .elbv2
                .delete_load_balancer()
                .load_balancer_arn(old)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DeleteLoadBalancer", e))?;
            info!(load_balancer = %old, "deleted load balancer, to replace it");
        }
        let existing = obs.arn.as_ref().filter(|_| !replace);
        let arn = match existing {
            Some(arn) => arn.clone(),
            None => {
                let out = ctx
                    .aws
                    .elbv2
                    .create_load_balancer()
                    .name(m.spec.aws_name(&m.metadata))
                    .r#type(LoadBalancerTypeEnum::Application)
                    .scheme(LoadBalancerSchemeEnum::from(m.spec.scheme.as_str()))
                    .set_subnets(Some(resolved.subnets.clone()))
                    .set_security_groups(Some(resolved.security_groups.clone()))
                    .set_tags(Some(
                        desired_tags(m).iter().map(|(k, v)| tag(k, v)).collect(),
                    ))
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
                arn
            }
        };
        let changes = &planned.plan.changes;
        let creating = existing.is_none();
        if !creating && touches(changes, "subnets") {
            ctx.aws
                .elbv2
                .set_subnets()
                .load_balancer_arn(&arn)
                .set_subnets(Some(resolved.subnets.clone()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:SetSubnets", e))?;
        }
        if !creating && touches(changes, "securityGroups") {
            ctx.aws
                .elbv2
                .set_security_groups()
                .load_balancer_arn(&arn)
                .set_security_groups(Some(resolved.security_groups.clone()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:SetSecurityGroups", e))?;
        }
        for l in &m.spec.listeners {
            if !creating && !touches(changes, &format!("listeners.{}", l.port)) {
                continue;
            }
            let https = l.protocol == ListenerProtocol::HTTPS;
            let certs = resolved
                .certificates
                .get(&l.port)
                .map(|c| vec![Certificate::builder().certificate_arn(c).build()]);
            let policy = https.then(|| {
                l.ssl_policy
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SSL_POLICY.into())
            });
            let listener = obs
                .listeners
                .iter()
                .filter(|_| !creating)
                .find(|x| x.port() == Some(i32::from(l.port)))
                .and_then(|x| x.listener_arn());
            match listener {
                Some(listener) => {
                    ctx.aws
                        .elbv2
                        .modify_listener()
                        .listener_arn(listener)
                        .protocol(ProtocolEnum::from(l.protocol.as_str()))
                        .port(i32::from(l.port))
                        .set_certificates(certs)
                        .set_ssl_policy(policy)
                        .default_actions(action(l, &resolved)?)
                        .send()
                        .await
                        .map_err(|e| {
                            AwsError::from_sdk("elasticloadbalancing:ModifyListener", e)
                        })?;
                }
                None => {
                    ctx.aws
                        .elbv2
                        .create_listener()
                        .load_balancer_arn(&arn)
                        .protocol(ProtocolEnum::from(l.protocol.as_str()))
                        .port(i32::from(l.port))
                        .set_certificates(certs)
                        .set_ssl_policy(policy)
                        .default_actions(action(l, &resolved)?)
                        .send()
                        .await
                        .map_err(|e| {
                            AwsError::from_sdk("elasticloadbalancing:CreateListener", e)
                        })?;
                }
            }
            info!(port = l.port, "listener in place");
        }
        let tags = tags_to_set(changes);
        if !creating && !tags.is_empty() {
            ctx.aws
                .elbv2
                .add_tags()
                .resource_arns(&arn)
                .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:AddTags", e))?;
        }
        Ok(Applied {
            aws_id: arn,
            rollout: None,
        })
    }
}
