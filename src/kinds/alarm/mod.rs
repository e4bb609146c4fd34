//! CloudWatch metric alarms (`kind: Alarm`).
//!
//! Reads: one DescribeAlarms per 100 of the set's alarm names (asked by name, so the
//! account's other alarms are never listed in a steady pass), one ListTagsForResource per
//! alarm that exists (CloudWatch has no batch tag read). The short forms resolve their
//! dimensions from the live target group and load balancer through the pass's shared ELBv2
//! listings.
//!
//! PutMetricAlarm replaces the whole alarm, so an update sends every field; tags go through
//! TagResource (PutMetricAlarm ignores tags on an existing alarm). Alarms Application Auto
//! Scaling creates for target tracking (`TargetTracking-…`, no mooring tags) are never read
//! for ownership, listed as orphans or touched.

pub mod spec;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudwatch::types::{
    AlarmType, ComparisonOperator, Dimension, MetricAlarm, StandardUnit, Statistic, Tag,
};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::ownership::{Ownership, managed_tags, owned_tags, tags_to_set};
use super::{Change, Declared, Reference, Resource};
use crate::aws::AwsError;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::{Applied, Cx, Owned, ReconcileError};
use spec::{
    AlarmSpec, COMPARISONS, ServiceMetricName, TARGET_TRACKING_PREFIX, TargetGroupMetricName,
};

/// DescribeAlarms takes at most 100 alarm names per call.
const NAMES_BATCH: usize = 100;

/// The `Alarm` kind.
pub struct Unit;

impl Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "cloudwatch:DescribeAlarms",
        "cloudwatch:ListTagsForResource",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:TagResource",
        "cloudwatch:DeleteAlarms",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeLoadBalancers",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        let mut out = Vec::new();
        if let Some(s) = &m.spec.service {
            out.push(Reference::new("/spec/service/name", Kind::Service, &s.name));
        }
        if let Some(t) = &m.spec.target_group {
            out.push(Reference::new(
                "/spec/targetGroup/name",
                Kind::TargetGroup,
                &t.name,
            ));
            if let Some(lb) = &t.load_balancer {
                out.push(Reference::new(
                    "/spec/targetGroup/loadBalancer",
                    Kind::LoadBalancer,
                    lb,
                ));
            }
        }
        out
    }

    /// A target group's alarm needs the load balancer that forwards to it.
    fn check_set(m: &Manifest<Self::Spec>, set: &ManifestSet, f: &mut Findings<'_>) {
        let Some(t) = &m.spec.target_group else {
            return;
        };
        let forwarding = forwarding_to(set, &t.name);
        match (&t.load_balancer, forwarding.as_slice()) {
            (Some(lb), _) if set.load_balancers.iter().any(|l| l.name() == lb) => {
                if !forwarding.contains(&lb.as_str()) {
                    f.warn(
                        "/spec/targetGroup/loadBalancer",
                        format!(
                            "LoadBalancer `{lb}` does not forward to TargetGroup `{}`: the alarm's metric may have no data",
                            t.name
                        ),
                    );
                }
            }
            (Some(_), _) | (None, [_]) => {}
            (None, []) => f.at(
                "/spec/targetGroup/name",
                format!(
                    "no LoadBalancer manifest forwards to TargetGroup `{}`; name the load balancer in `loadBalancer`, or give the full `metric`",
                    t.name
                ),
            ),
            (None, several) => f.at(
                "/spec/targetGroup",
                format!(
                    "several LoadBalancer manifests forward to TargetGroup `{}` ({}); name one in `loadBalancer`",
                    t.name,
                    several.join(", ")
                ),
            ),
        }
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the alarm `{}`", m.spec.aws_name(&m.metadata))
    }

    fn dependencies(m: &Manifest<Self::Spec>, set: &ManifestSet) -> Vec<(Kind, String)> {
        let mut deps: Vec<(Kind, String)> = Self::references(m)
            .into_iter()
            .map(|r| (r.kind, r.name))
            .collect();
        if let Some(lb) = load_balancer_of(set, m) {
            deps.push((Kind::LoadBalancer, lb.to_string()));
        }
        deps.sort();
        deps.dedup();
        deps
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.alarms
            .iter()
            .map(|a| crate::iam::arn("cloudwatch", &format!("alarm:{}", a.spec.aws_name(&a.metadata))))
            .collect()
    }
}

/// The `LoadBalancer` manifests that forward to the `TargetGroup` manifest `tg` (by the
/// target groups each one references).
fn forwarding_to<'a>(set: &'a ManifestSet, tg: &str) -> Vec<&'a str> {
    set.load_balancers
        .iter()
        .filter(|lb| {
            <super::load_balancer::Unit as Declared>::references(lb)
                .iter()
                .any(|r| r.kind == Kind::TargetGroup && r.name == tg)
        })
        .map(|lb| lb.name())
        .collect()
}

/// The `LoadBalancer` manifest a target group alarm's metrics come from.
fn load_balancer_of<'a>(set: &'a ManifestSet, m: &'a Manifest<AlarmSpec>) -> Option<&'a str> {
    let t = m.spec.target_group.as_ref()?;
    match &t.load_balancer {
        Some(lb) => Some(lb.as_str()),
        None => match forwarding_to(set, &t.name).as_slice() {
            [one] => Some(one),
            _ => None,
        },
    }
}

/// An alarm in the shape plan compares: everything PutMetricAlarm sets, with CloudWatch's
/// defaults filled and lists in a stable order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// The name in CloudWatch.
    pub alarm_name: String,
    /// `AlarmDescription`.
    pub description: Option<String>,
    /// The metric's namespace.
    pub namespace: String,
    /// The metric's name.
    pub metric_name: String,
    /// Dimensions by name (a target group's not created yet shows a placeholder).
    pub dimensions: BTreeMap<String, String>,
    /// `Average`, `Sum`…
    pub statistic: Option<String>,
    /// A percentile such as `p99`.
    pub extended_statistic: Option<String>,
    /// Seconds per datapoint.
    pub period: i32,
    /// The metric's unit, when it names one.
    pub unit: Option<String>,
    /// The threshold.
    pub threshold: f64,
    /// The manifest's name for the comparison (CloudWatch's when it has none).
    pub comparison: String,
    /// Periods looked at.
    pub evaluation_periods: i32,
    /// Breaching periods that set it off (all of them unless said otherwise).
    pub datapoints_to_alarm: i32,
    /// `missing`, `notBreaching`, `breaching` or `ignore`.
    pub treat_missing_data: String,
    /// Whether the actions run.
    pub actions_enabled: bool,
    /// Topics notified on ALARM, sorted.
    pub alarm_actions: Vec<String>,
    /// Topics notified on OK, sorted.
    pub ok_actions: Vec<String>,
    /// Topics notified on INSUFFICIENT_DATA, sorted.
    pub insufficient_data_actions: Vec<String>,
    /// Tags the manifest manages.
    pub tags: BTreeMap<String, String>,
}

/// The metric an alarm watches, resolved from its manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Namespace.
    pub namespace: String,
    /// Metric name.
    pub metric_name: String,
    /// Dimensions by name.
    pub dimensions: BTreeMap<String, String>,
    /// A dependency whose live resource is not there yet (`Kind/name`), if any.
    pub pending: Option<String>,
}

/// What plan saw of one alarm.
pub struct Observed {
    metric: Metric,
    live: Option<(MetricAlarm, Vec<Tag>)>,
}

/// What plan shows for a dimension whose resource this apply has yet to create.
fn placeholder(kind: Kind, name: &str) -> String {
    format!("({kind}/{name}, once created)")
}

/// The part of an ELBv2 ARN CloudWatch uses as the dimension value: `targetgroup/…/…` of
/// a target group's, `app/…/…` of a load balancer's.
pub fn arn_suffix(arn: &str) -> Option<&str> {
    let resource = arn.splitn(6, ':').nth(5)?;
    Some(resource.strip_prefix("loadbalancer/").unwrap_or(resource))
}

/// The metric of `m`, with the target group's and load balancer's dimensions read from
/// the pass's shared listings.
async fn resolve(cx: &Cx<'_>, m: &Manifest<AlarmSpec>) -> Result<Metric, AwsError> {
    let set = cx.set;
    if let Some(full) = &m.spec.metric {
        return Ok(Metric {
            namespace: full.namespace.clone(),
            metric_name: full.metric_name.clone(),
            dimensions: full.dimensions.clone(),
            pending: None,
        });
    }
    if let Some(s) = &m.spec.service {
        let service = set
            .service(&s.name)
            .map_or(s.name.as_str(), |svc| svc.spec.aws_name(&svc.metadata));
        let cluster = set
            .service(&s.name)
            .map(|svc| super::service::cluster_name(set, &svc.spec.cluster))
            .unwrap_or_default();
        return Ok(Metric {
            namespace: "AWS/ECS".into(),
            metric_name: match s.metric {
                ServiceMetricName::Cpu => "CPUUtilization",
                ServiceMetricName::Memory => "MemoryUtilization",
            }
            .into(),
            dimensions: [
                ("ClusterName".to_string(), cluster),
                ("ServiceName".to_string(), service.to_string()),
            ]
            .into(),
            pending: None,
        });
    }
    let Some(t) = &m.spec.target_group else {
        return Ok(Metric {
            namespace: String::new(),
            metric_name: String::new(),
            dimensions: BTreeMap::new(),
            pending: None,
        });
    };
    let mut pending = None;
    let tg = super::target_group::arns(cx, [t.name.as_str()])
        .await?
        .get(&t.name)
        .and_then(|arn| arn_suffix(arn).map(str::to_string));
    let tg = tg.unwrap_or_else(|| {
        pending = Some(format!("{}/{}", Kind::TargetGroup, t.name));
        placeholder(Kind::TargetGroup, &t.name)
    });
    let lb_manifest = load_balancer_of(set, m).unwrap_or_default();
    let lb_name = set
        .load_balancers
        .iter()
        .find(|l| l.name() == lb_manifest)
        .map(|l| l.spec.aws_name(&l.metadata).to_string());
    let lb = match lb_name {
        Some(name) => super::elbv2::load_balancers(cx)
            .await?
            .iter()
            .find(|l| l.load_balancer_name() == Some(name.as_str()))
            .and_then(|l| l.load_balancer_arn())
            .and_then(arn_suffix)
            .map(str::to_string),
        None => None,
    };
    let lb = lb.unwrap_or_else(|| {
        pending.get_or_insert_with(|| format!("{}/{lb_manifest}", Kind::LoadBalancer));
        placeholder(Kind::LoadBalancer, lb_manifest)
    });
    Ok(Metric {
        namespace: "AWS/ApplicationELB".into(),
        metric_name: match t.metric {
            TargetGroupMetricName::Http5xx => "HTTPCode_Target_5XX_Count",
            TargetGroupMetricName::ResponseTime => "TargetResponseTime",
        }
        .into(),
        dimensions: [
            ("LoadBalancer".to_string(), lb),
            ("TargetGroup".to_string(), tg),
        ]
        .into(),
        pending,
    })
}

/// The statistic of `m`: its own, or the short form's usual one.
fn statistic(spec: &AlarmSpec) -> Option<String> {
    if spec.extended_statistic.is_some() {
        return None;
    }
    let default = match &spec.target_group {
        Some(t) if t.metric == TargetGroupMetricName::Http5xx => spec::Statistic::Sum,
        _ => spec::Statistic::Average,
    };
    Some(spec.statistic.unwrap_or(default).as_str().to_string())
}

/// The manifest's name of a CloudWatch comparison operator (CloudWatch's own for the
/// ones the manifest cannot say, e.g. anomaly bands).
fn comparison_name(aws: &str) -> String {
    COMPARISONS
        .iter()
        .find(|(_, _, a)| *a == aws)
        .map_or(aws, |(_, name, _)| name)
        .to_string()
}

fn comparison_operator(name: &str) -> ComparisonOperator {
    let aws = COMPARISONS
        .iter()
        .find(|(_, n, _)| *n == name)
        .map_or(name, |(_, _, a)| a);
    ComparisonOperator::from(aws)
}

fn sorted(list: &[String]) -> Vec<String> {
    let mut v = list.to_vec();
    v.sort();
    v.dedup();
    v
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn desired_tags(set: &ManifestSet, m: &Manifest<AlarmSpec>) -> BTreeMap<String, String> {
    owned_tags(Kind::Alarm, &set.stack, m.name(), &m.spec.tags)
}

fn pairs(tags: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter().filter_map(|t| Some((t.key()?, t.value()?)))
}

fn aws_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

async fn tags_of(cx: &Cx<'_>, arn: &str) -> Result<Vec<Tag>, AwsError> {
    let out = cx
        .aws()
        .cloudwatch
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("cloudwatch:ListTagsForResource", e))?;
    Ok(out.tags.unwrap_or_default())
}

/// Metric alarms, those named `names` (every one when `None`).
async fn describe(cx: &Cx<'_>, names: Option<Vec<String>>) -> Result<Vec<MetricAlarm>, AwsError> {
    let pages: Vec<_> = cx
        .aws()
        .cloudwatch
        .describe_alarms()
        .set_alarm_names(names)
        .alarm_types(AlarmType::MetricAlarm)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(|e| AwsError::from_sdk("cloudwatch:DescribeAlarms", e))?;
    Ok(pages
        .into_iter()
        .flat_map(|p| p.metric_alarms.unwrap_or_default())
        .collect())
}

#[async_trait::async_trait]
impl Resource for Unit {
    /// The manifests' live alarms by manifest name, with their tags.
    type Live = HashMap<String, (MetricAlarm, Vec<Tag>)>;
    type Observed = Observed;
    type Doc = Doc;

    async fn read(
        cx: &Cx<'_>,
        manifests: &[Manifest<AlarmSpec>],
    ) -> Result<Self::Live, ReconcileError> {
        let names: Vec<String> = manifests
            .iter()
            .map(|m| m.spec.aws_name(&m.metadata).to_string())
            .collect();
        let mut found = Vec::new();
        for chunk in names.chunks(NAMES_BATCH) {
            found.extend(describe(cx, Some(chunk.to_vec())).await?);
        }
        let mut out = HashMap::new();
        for m in manifests {
            let name = m.spec.aws_name(&m.metadata);
            let Some(alarm) = found.iter().find(|a| a.alarm_name() == Some(name)) else {
                continue;
            };
            let tags = match alarm.alarm_arn() {
                Some(arn) => tags_of(cx, arn).await?,
                None => Vec::new(),
            };
            out.insert(m.name().to_string(), (alarm.clone(), tags));
        }
        Ok(out)
    }

    async fn observe(
        cx: &Cx<'_>,
        m: &Manifest<AlarmSpec>,
        live: &Self::Live,
    ) -> Result<Observed, ReconcileError> {
        Ok(Observed {
            metric: resolve(cx, m).await?,
            live: live.get(m.name()).cloned(),
        })
    }

    fn ownership(obs: &Observed) -> Option<Ownership> {
        obs.live
            .as_ref()
            .map(|(_, tags)| Ownership::from_tags(pairs(tags)))
    }

    fn desired(set: &ManifestSet, m: &Manifest<AlarmSpec>, obs: &Observed) -> Doc {
        let s = &m.spec;
        Doc {
            alarm_name: s.aws_name(&m.metadata).to_string(),
            description: s.description.clone().filter(|d| !d.is_empty()),
            namespace: obs.metric.namespace.clone(),
            metric_name: obs.metric.metric_name.clone(),
            dimensions: obs.metric.dimensions.clone(),
            statistic: statistic(s),
            extended_statistic: s.extended_statistic.clone(),
            period: to_i32(s.period()),
            unit: s.metric.as_ref().and_then(|m| m.unit.clone()),
            threshold: s.threshold,
            comparison: s.comparison.as_str().to_string(),
            evaluation_periods: to_i32(s.evaluation_periods),
            datapoints_to_alarm: to_i32(s.datapoints_to_alarm.unwrap_or(s.evaluation_periods)),
            treat_missing_data: s.treat_missing_data.as_str().to_string(),
            actions_enabled: s.actions_enabled.unwrap_or(true),
            alarm_actions: sorted(&s.alarm_actions),
            ok_actions: sorted(&s.ok_actions),
            insufficient_data_actions: sorted(&s.insufficient_data_actions),
            tags: desired_tags(set, m),
        }
    }

    fn live(set: &ManifestSet, m: &Manifest<AlarmSpec>, obs: &Observed) -> Option<Doc> {
        let (a, tags) = obs.live.as_ref()?;
        let evaluation_periods = a.evaluation_periods().unwrap_or_default();
        Some(Doc {
            alarm_name: a.alarm_name().unwrap_or_default().to_string(),
            description: a
                .alarm_description()
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            namespace: a.namespace().unwrap_or_default().to_string(),
            metric_name: a.metric_name().unwrap_or_default().to_string(),
            dimensions: a
                .dimensions()
                .iter()
                .filter_map(|d| Some((d.name()?.to_string(), d.value()?.to_string())))
                .collect(),
            statistic: a.statistic().map(|s| s.as_str().to_string()),
            extended_statistic: a.extended_statistic().map(str::to_string),
            period: a.period().unwrap_or_default(),
            unit: a.unit().map(|u| u.as_str().to_string()),
            threshold: a.threshold().unwrap_or_default(),
            comparison: comparison_name(
                a.comparison_operator()
                    .map(ComparisonOperator::as_str)
                    .unwrap_or_default(),
            ),
            evaluation_periods,
            // Unset means "all of them".
            datapoints_to_alarm: a.datapoints_to_alarm().unwrap_or(evaluation_periods),
            // CloudWatch leaves it out when it was never set.
            treat_missing_data: a.treat_missing_data().unwrap_or("missing").to_string(),
            actions_enabled: a.actions_enabled().unwrap_or(true),
            alarm_actions: sorted(a.alarm_actions()),
            ok_actions: sorted(a.ok_actions()),
            insufficient_data_actions: sorted(a.insufficient_data_actions()),
            tags: managed_tags(pairs(tags), &desired_tags(set, m)),
        })
    }

    fn aws_id(_set: &ManifestSet, m: &Manifest<AlarmSpec>, obs: &Observed) -> String {
        obs.live
            .as_ref()
            .and_then(|(a, _)| a.alarm_arn())
            .unwrap_or(m.spec.aws_name(&m.metadata))
            .to_string()
    }

    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<AlarmSpec>,
        obs: &Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        // A target group or load balancer created earlier in this apply: read it now.
        let settled;
        let mut desired = change.desired;
        if obs.metric.pending.is_some() {
            let metric = resolve(cx, m).await?;
            if let Some(missing) = metric.pending {
                return Err(ReconcileError::Dependency(missing));
            }
            settled = Doc {
                dimensions: metric.dimensions,
                ..desired.clone()
            };
            desired = &settled;
        }
        let Doc {
            alarm_name,
            description,
            namespace,
            metric_name,
            dimensions,
            statistic,
            extended_statistic,
            period,
            unit,
            threshold,
            comparison,
            evaluation_periods,
            datapoints_to_alarm,
            treat_missing_data,
            actions_enabled,
            alarm_actions,
            ok_actions,
            insufficient_data_actions,
            tags,
        } = desired;
        let untagged = |d: &Doc| Doc {
            tags: BTreeMap::new(),
            ..d.clone()
        };
        let live_arn = obs
            .live
            .as_ref()
            .and_then(|(a, _)| a.alarm_arn())
            .map(str::to_string);
        let creating = change.live.is_none() || live_arn.is_none();
        if creating || change.live.is_some_and(|l| untagged(l) != untagged(desired)) {
            cx.aws()
                .cloudwatch
                .put_metric_alarm()
                .alarm_name(alarm_name)
                .set_alarm_description(description.clone())
                .namespace(namespace)
                .metric_name(metric_name)
                .set_dimensions(Some(
                    dimensions
                        .iter()
                        .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                        .collect(),
                ))
                .set_statistic(statistic.as_deref().map(Statistic::from))
                .set_extended_statistic(extended_statistic.clone())
                .period(*period)
                .set_unit(unit.as_deref().map(StandardUnit::from))
                .threshold(*threshold)
                .comparison_operator(comparison_operator(comparison))
                .evaluation_periods(*evaluation_periods)
                .datapoints_to_alarm(*datapoints_to_alarm)
                .treat_missing_data(treat_missing_data)
                .actions_enabled(*actions_enabled)
                .set_alarm_actions(Some(alarm_actions.clone()))
                .set_ok_actions(Some(ok_actions.clone()))
                .set_insufficient_data_actions(Some(insufficient_data_actions.clone()))
                // Taken only when the alarm is created; TagResource below otherwise.
                .set_tags(creating.then(|| aws_tags(tags)))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("cloudwatch:PutMetricAlarm", e))?;
            info!(alarm = %alarm_name, created = creating, "put metric alarm");
        }
        let arn = match live_arn {
            Some(arn) => arn,
            None => {
                let aws = cx.aws();
                format!(
                    "arn:{}:cloudwatch:{}:{}:alarm:{alarm_name}",
                    aws.partition(),
                    aws.region,
                    aws.account_id().await?
                )
            }
        };
        let missing = tags_to_set(tags, change.live.map(|l| &l.tags));
        if !creating && !missing.is_empty() {
            cx.aws()
                .cloudwatch
                .tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(aws_tags(&missing)))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("cloudwatch:TagResource", e))?;
        }
        Ok(Applied {
            aws_id: arn,
            rollout: None,
        })
    }

    async fn owned(cx: &Cx<'_>) -> Option<Result<Vec<Owned>, ReconcileError>> {
        let listed = async {
            let mut out = Vec::new();
            for a in describe(cx, None).await? {
                let (Some(name), Some(arn)) = (a.alarm_name(), a.alarm_arn()) else {
                    continue;
                };
                // Application Auto Scaling's: never ours, not even worth a tag read.
                if name.starts_with(TARGET_TRACKING_PREFIX) {
                    continue;
                }
                let tags = tags_of(cx, arn).await?;
                if let Some(manifest) =
                    Ownership::from_tags(pairs(&tags)).name_in(&cx.set.stack, Kind::Alarm)
                {
                    out.push(Owned {
                        name: manifest,
                        aws_id: arn.to_string(),
                        scope: Some(name.to_string()),
                    });
                }
            }
            Ok::<_, AwsError>(out)
        };
        Some(listed.await.map_err(Into::into))
    }

    async fn delete(cx: &Cx<'_>, owned: &Owned) -> Result<(), ReconcileError> {
        let name = owned.scope.clone().unwrap_or_else(|| {
            owned
                .aws_id
                .rsplit_once(":alarm:")
                .map(|(_, n)| n.to_string())
                .unwrap_or_default()
        });
        if name.starts_with(TARGET_TRACKING_PREFIX) {
            return Err(ReconcileError::NotConverged(format!(
                "{name} belongs to Application Auto Scaling; mooring does not delete it"
            )));
        }
        cx.aws()
            .cloudwatch
            .delete_alarms()
            .alarm_names(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("cloudwatch:DeleteAlarms", e))?;
        Ok(())
    }
}
