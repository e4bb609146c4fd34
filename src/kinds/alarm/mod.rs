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
use super::{Change, Declared, Reference, Resource, elbv2};
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
        if let Some(t) = &m.spec.target_group {
            let lb = t.load_balancer.as_deref();
            elbv2::check_forwarding(set, &t.name, lb, "/spec/targetGroup", "name", f);
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

/// The `LoadBalancer` manifest a target group alarm's metrics come from.
fn load_balancer_of<'a>(set: &'a ManifestSet, m: &'a Manifest<AlarmSpec>) -> Option<&'a str> {
    let t = m.spec.target_group.as_ref()?;
    elbv2::load_balancer_for(set, &t.name, t.load_balancer.as_deref())
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
    let traffic = elbv2::traffic(cx, &t.name, load_balancer_of(set, m)).await?;
    Ok(Metric {
        namespace: "AWS/ApplicationELB".into(),
        metric_name: match t.metric {
            TargetGroupMetricName::Http5xx => "HTTPCode_Target_5XX_Count",
            TargetGroupMetricName::ResponseTime => "TargetResponseTime",
        }
        .into(),
        dimensions: [
            ("LoadBalancer".to_string(), traffic.load_balancer),
            ("TargetGroup".to_string(), traffic.target_group),
        ]
        .into(),
        pending: traffic.pending,
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
    owned_tags(Kind::Alarm, set.owner(), m.name(), &m.spec.tags)
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
                out.extend(Owned::by_tags(
                    pairs(&tags),
                    cx.set.owner(),
                    Kind::Alarm,
                    arn,
                    Some(name),
                ));
            }
            Ok::<_, AwsError>(out)
        };
        Some(listed.await.map_err(Into::into))
    }

    async fn delete(cx: &Cx<'_>, owned: &Owned) -> Result<(), ReconcileError> {
        let name = owned.aws_name(":alarm:");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::elbv2::{arn_suffix, placeholder};
    use crate::manifest::load::load_with_stack;
    use crate::reconcile::diff::diff;

    const CPU: &str = "apiVersion: mooring.dev/v1alpha1
kind: Alarm
metadata: {name: api-cpu}
spec:
  description: API CPU above 85 % for 3 minutes
  service: {name: api, metric: cpu}
  period: 60
  threshold: 85
  comparison: greaterThan
  evaluationPeriods: 3
  alarmActions: [arn:aws:sns:eu-west-1:123456789012:alerts, arn:aws:sns:eu-west-1:123456789012:pager]
  tags: {team: core}
";

    const STACK: &str = "apiVersion: mooring.dev/v1alpha1
kind: Cluster
metadata: {name: prd}
spec: {clusterName: prd-cluster}
---
apiVersion: mooring.dev/v1alpha1
kind: TargetGroup
metadata: {name: api}
spec: {port: 3000, vpc: default}
---
apiVersion: mooring.dev/v1alpha1
kind: LoadBalancer
metadata: {name: edge}
spec:
  loadBalancerName: edge-alb
  subnets: {ids: [subnet-1, subnet-2]}
  securityGroups: {ids: [sg-1]}
  listeners:
    - {port: 80, protocol: HTTP, defaultAction: {forward: api}}
---
apiVersion: mooring.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  cluster: prd
  serviceName: api-svc
  network:
    subnets: {ids: [subnet-1]}
    securityGroups: {ids: [sg-1]}
  taskDefinition:
    cpu: 256
    memory: 512
    executionRoleArn: arn:aws:iam::123456789012:role/exec
    container:
      image: api:1
      port: 3000
      logs: {group: /ecs/api, createGroup: true}
";

    fn load(files: &[(&str, &str)]) -> Result<ManifestSet, Vec<String>> {
        let sources: Vec<_> = files
            .iter()
            .map(|(f, t)| (std::path::PathBuf::from(f), t.to_string()))
            .collect();
        load_with_stack(&sources).map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    fn errors(alarm: &str) -> Vec<String> {
        match load(&[("s.yaml", STACK), ("a.yaml", alarm)]) {
            Ok(_) => Vec::new(),
            Err(e) => e,
        }
    }

    fn cpu_metric() -> Metric {
        Metric {
            namespace: "AWS/ECS".into(),
            metric_name: "CPUUtilization".into(),
            dimensions: [
                ("ClusterName".to_string(), "prd-cluster".to_string()),
                ("ServiceName".to_string(), "api-svc".to_string()),
            ]
            .into(),
            pending: None,
        }
    }

    /// The alarm as DescribeAlarms returns it after mooring created it: no
    /// TreatMissingData or DatapointsToAlarm (never set), dimensions and actions in
    /// another order, a tag someone else added.
    fn as_cloudwatch_returns_it(set: &ManifestSet) -> Observed {
        let m = &set.alarms[0];
        let alarm = MetricAlarm::builder()
            .alarm_name("api-cpu")
            .alarm_arn("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:api-cpu")
            .alarm_description("API CPU above 85 % for 3 minutes")
            .actions_enabled(true)
            .alarm_actions("arn:aws:sns:eu-west-1:123456789012:pager")
            .alarm_actions("arn:aws:sns:eu-west-1:123456789012:alerts")
            .namespace("AWS/ECS")
            .metric_name("CPUUtilization")
            .dimensions(Dimension::builder().name("ServiceName").value("api-svc").build())
            .dimensions(Dimension::builder().name("ClusterName").value("prd-cluster").build())
            .statistic(Statistic::Average)
            .period(60)
            .evaluation_periods(3)
            .threshold(85.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .build();
        let tags = aws_tags(&desired_tags(set, m))
            .into_iter()
            .chain([Tag::builder().key("cost-center").value("42").build()])
            .collect();
        Observed {
            metric: cpu_metric(),
            live: Some((alarm, tags)),
        }
    }

    fn changes(set: &ManifestSet, obs: &Observed) -> Vec<String> {
        let m = &set.alarms[0];
        let d = serde_json::to_value(Unit::desired(set, m, obs)).unwrap();
        let l = Unit::live(set, m, obs).map(|l| serde_json::to_value(l).unwrap());
        diff(&d, l.as_ref()).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn cloudwatch_defaults_and_orders_are_not_drift() {
        let set = load(&[("s.yaml", STACK), ("a.yaml", CPU)]).unwrap();
        let obs = as_cloudwatch_returns_it(&set);
        assert_eq!(changes(&set, &obs), Vec::<String>::new());
        assert_eq!(
            Unit::aws_id(&set, &set.alarms[0], &obs),
            "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:api-cpu"
        );
        let d = Unit::desired(&set, &set.alarms[0], &obs);
        assert_eq!(d.statistic.as_deref(), Some("Average"));
        assert_eq!(d.treat_missing_data, "missing");
        assert_eq!(d.datapoints_to_alarm, 3, "all periods unless said otherwise");
    }

    #[test]
    fn out_of_band_changes_are_named() {
        let set = load(&[("s.yaml", STACK), ("a.yaml", CPU)]).unwrap();
        let mut obs = as_cloudwatch_returns_it(&set);
        if let Some((a, _)) = obs.live.as_mut() {
            a.threshold = Some(95.0);
            a.comparison_operator = Some(ComparisonOperator::GreaterThanOrEqualToThreshold);
            a.treat_missing_data = Some("breaching".into());
            a.datapoints_to_alarm = Some(1);
            a.actions_enabled = Some(false);
            a.alarm_actions = Some(vec!["arn:aws:sns:eu-west-1:123456789012:alerts".into()]);
            a.unit = Some(StandardUnit::Percent);
            a.dimensions = Some(vec![
                Dimension::builder().name("ServiceName").value("api-svc").build(),
            ]);
        }
        assert_eq!(
            changes(&set, &obs),
            [
                "dimensions.ClusterName",
                "unit",
                "threshold",
                "comparison",
                "datapointsToAlarm",
                "treatMissingData",
                "actionsEnabled",
                "alarmActions",
            ]
        );
        // An operator the manifest cannot say is shown by CloudWatch's name.
        if let Some((a, _)) = obs.live.as_mut() {
            a.comparison_operator =
                Some(ComparisonOperator::LessThanLowerOrGreaterThanUpperThreshold);
        }
        let l = Unit::live(&set, &set.alarms[0], &obs).unwrap();
        assert_eq!(l.comparison, "LessThanLowerOrGreaterThanUpperThreshold");
    }

    #[test]
    fn short_forms_name_the_aws_metrics_and_their_dependencies() {
        let tg_alarm = "apiVersion: mooring.dev/v1alpha1
kind: Alarm
metadata: {name: api-5xx}
spec:
  targetGroup: {name: api, metric: 5xx}
  threshold: 10
  comparison: greaterThanOrEqual
  evaluationPeriods: 1
  treatMissingData: notBreaching
";
        let set = load(&[("s.yaml", STACK), ("a.yaml", CPU), ("t.yaml", tg_alarm)]).unwrap();
        let cpu = &set.alarms[0];
        let five = &set.alarms[1];
        assert_eq!(statistic(&five.spec).as_deref(), Some("Sum"));
        assert_eq!(statistic(&cpu.spec).as_deref(), Some("Average"));
        assert_eq!(five.spec.period(), 300);
        // The load balancer whose listener forwards to the target group comes first.
        assert_eq!(
            Unit::dependencies(five, &set),
            [
                (Kind::TargetGroup, "api".to_string()),
                (Kind::LoadBalancer, "edge".to_string())
            ]
        );
        assert_eq!(
            Unit::dependencies(cpu, &set),
            [(Kind::Service, "api".to_string())]
        );
        let order = |k: Kind| Kind::ALL.iter().position(|x| *x == k).unwrap();
        for k in [Kind::Service, Kind::TargetGroup, Kind::LoadBalancer] {
            assert!(order(k) < order(Kind::Alarm), "{k}");
        }
        assert_eq!(
            arn_suffix("arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/api/73e2d6bc24d8a067"),
            Some("targetgroup/api/73e2d6bc24d8a067")
        );
        assert_eq!(
            arn_suffix("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/edge-alb/50dc6c495c0c9188"),
            Some("app/edge-alb/50dc6c495c0c9188")
        );
        assert_eq!(
            placeholder(Kind::TargetGroup, "api"),
            "(TargetGroup/api, once created)"
        );
    }

    #[test]
    fn invalid_alarms_are_named_with_their_positions() {
        let bad = "apiVersion: mooring.dev/v1alpha1
kind: Alarm
metadata: {name: TargetTracking-mine}
spec:
  service: {name: api, metric: cpu}
  metric: {namespace: AWS/ECS, metricName: CPUUtilization, unit: Percents}
  statistic: Average
  extendedStatistic: q99
  period: 45
  threshold: 85
  comparison: greaterThan
  evaluationPeriods: 2000
  datapointsToAlarm: 2001
  alarmActions: [arn:aws:sqs:eu-west-1:123456789012:q, not-an-arn]
  okActions: [arn:aws:sns:eu-west-1:123456789012:t, arn:aws:sns:eu-west-1:123456789012:t]
";
        let errs = errors(bad);
        for expected in [
            "a.yaml:3:12: metadata.name: alarm names starting with `TargetTracking-` belong to Application Auto Scaling",
            "a.yaml:4:1: spec: set exactly one of `metric`, `service` and `targetGroup`",
            "a.yaml:6:60: spec.metric.unit: `Percents` is not a CloudWatch unit",
            "a.yaml:8:3: spec.extendedStatistic: set `statistic` or `extendedStatistic`, not both",
            "spec.extendedStatistic: `q99` is not a percentile statistic",
            "a.yaml:9:3: spec.period: CloudWatch alarms take a period of 10, 30 or a multiple of 60 seconds, not 45",
            "a.yaml:12:3: spec.evaluationPeriods: 2000 periods of 45 s look back 90000 s",
            "a.yaml:13:3: spec.datapointsToAlarm: must be 1-2000",
            "a.yaml:14:18: spec.alarmActions[0]: `arn:aws:sqs:eu-west-1:123456789012:q` is not an SNS topic ARN",
            "a.yaml:14:56: spec.alarmActions[1]: `not-an-arn` is not an SNS topic ARN",
            "a.yaml:15:53: spec.okActions[1]: `arn:aws:sns:eu-west-1:123456789012:t` is listed twice",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "missing {expected:?} in {errs:#?}"
            );
        }
        // No periods: that one error, not a range `1-0` for `datapointsToAlarm`.
        let none = errors(&CPU.replace(
            "evaluationPeriods: 3",
            "evaluationPeriods: 0\n  datapointsToAlarm: 1",
        ));
        assert!(
            none.iter().any(|e| e.contains("spec.evaluationPeriods")),
            "{none:#?}"
        );
        assert!(
            !none.iter().any(|e| e.contains("datapointsToAlarm")),
            "{none:#?}"
        );
        let dangling = CPU.replace("name: api, metric", "name: web, metric");
        let errs = errors(&dangling);
        assert!(
            errs.iter()
                .any(|e| e.contains("a.yaml:6:13: spec.service.name: no Service named `web`")),
            "{errs:#?}"
        );
        assert!(errors(CPU).is_empty(), "{:#?}", errors(CPU));
        for ok in ["p99", "p99.9", "tm90", "p0", "p100"] {
            assert!(spec::is_extended_statistic(ok), "{ok}");
        }
        for bad in ["p", "p101", "99", "p9x", "P99"] {
            assert!(!spec::is_extended_statistic(bad), "{bad}");
        }
        assert!(spec::is_topic_arn("arn:aws:sns:eu-west-1:123456789012:alerts.fifo"));
        assert!(spec::is_topic_arn("arn:aws-cn:sns:cn-north-1:123456789012:a_b-c"));
        assert!(!spec::is_topic_arn("arn:aws:sns:eu-west-1:1234:alerts"));
        assert!(!spec::is_topic_arn("arn:aws:sns:eu-west-1:123456789012:"));
    }

    #[test]
    fn a_target_group_alarm_needs_exactly_one_load_balancer() {
        let alarm = |extra: &str| {
            format!(
                "apiVersion: mooring.dev/v1alpha1
kind: Alarm
metadata: {{name: api-latency}}
spec:
  targetGroup: {{name: api, metric: responseTime{extra}}}
  extendedStatistic: p99
  threshold: 1.5
  comparison: greaterThan
  evaluationPeriods: 5
"
            )
        };
        assert!(errors(&alarm("")).is_empty(), "{:#?}", errors(&alarm("")));
        let second = STACK.to_string()
            + "---
apiVersion: mooring.dev/v1alpha1
kind: LoadBalancer
metadata: {name: inner}
spec:
  scheme: internal
  subnets: {ids: [subnet-1, subnet-2]}
  securityGroups: {ids: [sg-1]}
  listeners:
    - {port: 8080, protocol: HTTP, defaultAction: {forward: api}}
";
        let errs = load(&[("s.yaml", &second), ("a.yaml", &alarm(""))]).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains(
                "a.yaml:5:3: spec.targetGroup: several LoadBalancer manifests forward to TargetGroup `api` (edge, inner); name one in `loadBalancer`"
            )),
            "{errs:#?}"
        );
        let set = load(&[("s.yaml", &second), ("a.yaml", &alarm(", loadBalancer: inner"))]).unwrap();
        assert!(
            Unit::dependencies(&set.alarms[0], &set)
                .contains(&(Kind::LoadBalancer, "inner".to_string()))
        );
        let alone = STACK.replace("defaultAction: {forward: api}", "defaultAction: {redirect: {port: 443}}");
        let errs = load(&[("s.yaml", &alone), ("a.yaml", &alarm(""))]).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains(
                "spec.targetGroup.name: no LoadBalancer manifest forwards to TargetGroup `api`"
            )),
            "{errs:#?}"
        );
        let set = load(&[("s.yaml", &alone), ("a.yaml", &alarm(", loadBalancer: edge"))]).unwrap();
        let w: Vec<String> = set.warnings.iter().map(|w| w.to_string()).collect();
        assert!(
            w.iter().any(|w| w.contains("LoadBalancer `edge` does not forward to TargetGroup `api`")),
            "{w:#?}"
        );
    }

    #[test]
    fn the_iam_policy_scopes_alarm_writes_to_the_alarms() {
        let set = load(&[("s.yaml", STACK), ("a.yaml", CPU)]).unwrap();
        let policy = crate::iam::policy(&set);
        let statements = policy["Statement"].as_array().unwrap();
        let write = statements
            .iter()
            .find(|s| s["Sid"] == "AlarmWrite")
            .expect("an AlarmWrite statement");
        assert_eq!(
            write["Resource"],
            serde_json::json!(["arn:aws:cloudwatch:*:*:alarm:api-cpu"])
        );
        for action in ["cloudwatch:PutMetricAlarm", "cloudwatch:TagResource", "cloudwatch:DeleteAlarms"] {
            assert!(write["Action"].as_array().unwrap().contains(&serde_json::json!(action)));
        }
        let read = statements.iter().find(|s| s["Sid"] == "Read").unwrap();
        assert!(
            !read["Action"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("cloudwatch:PutMetricAlarm")),
            "without a ScalableTarget nothing may write every alarm: {read}"
        );
    }

    /// CloudWatch ignores the tags of a PutMetricAlarm that updates an alarm (moto applies
    /// them): an update sends every field and no tags, and adds a missing tag with
    /// TagResource. Any other call matches no rule and fails apply.
    #[tokio::test]
    async fn an_update_puts_the_whole_alarm_and_tags_separately() {
        use aws_sdk_cloudwatch::Client;
        use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
        use aws_sdk_cloudwatch::operation::list_tags_for_resource::ListTagsForResourceOutput;
        use aws_sdk_cloudwatch::operation::put_metric_alarm::PutMetricAlarmOutput;
        use aws_sdk_cloudwatch::operation::tag_resource::TagResourceOutput;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        let metric = "apiVersion: mooring.dev/v1alpha1
kind: Alarm
metadata: {name: api-cpu}
spec:
  description: API CPU above 85 % for 3 minutes
  metric:
    namespace: AWS/ECS
    metricName: CPUUtilization
    dimensions: {ClusterName: prd-cluster, ServiceName: api-svc}
  period: 60
  threshold: 85
  comparison: greaterThan
  evaluationPeriods: 3
  alarmActions: [arn:aws:sns:eu-west-1:123456789012:alerts, arn:aws:sns:eu-west-1:123456789012:pager]
  tags: {team: core}
";
        let set = load(&[("a.yaml", metric)]).unwrap();
        let mut obs = as_cloudwatch_returns_it(&set);
        let (mut alarm, tags) = obs.live.take().unwrap();
        alarm.threshold = Some(95.0);
        // Tagged before stacks: the stack tag is missing.
        let tags: Vec<Tag> = tags
            .into_iter()
            .filter(|t| t.key() != Some("mooring.dev/stack"))
            .collect();
        let describe = mock!(Client::describe_alarms)
            .match_requests(|r| r.alarm_names() == ["api-cpu".to_string()])
            .then_output(move || {
                DescribeAlarmsOutput::builder()
                    .metric_alarms(alarm.clone())
                    .build()
            });
        let list_tags = mock!(Client::list_tags_for_resource)
            .match_requests(|r| {
                r.resource_arn() == Some("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:api-cpu")
            })
            .then_output(move || {
                ListTagsForResourceOutput::builder()
                    .set_tags(Some(tags.clone()))
                    .build()
            });
        let put = mock!(Client::put_metric_alarm)
            .match_requests(|r| {
                r.threshold() == Some(85.0)
                    && r.tags().is_empty()
                    && r.alarm_actions().len() == 2
                    && r.dimensions().len() == 2
                    && r.treat_missing_data() == Some("missing")
                    && r.datapoints_to_alarm() == Some(3)
                    && r.actions_enabled() == Some(true)
                    && r.alarm_description() == Some("API CPU above 85 % for 3 minutes")
            })
            .then_output(|| PutMetricAlarmOutput::builder().build());
        let tag = mock!(Client::tag_resource)
            .match_requests(|r| {
                r.tags().len() == 1 && r.tags()[0].key() == Some("mooring.dev/stack")
            })
            .then_output(|| TagResourceOutput::builder().build());
        let cloudwatch = mock_client!(
            aws_sdk_cloudwatch,
            RuleMode::MatchAny,
            [&describe, &list_tags, &put, &tag]
        );
        let config = crate::aws::offline_config();
        let mut aws = crate::aws::Aws::from_config(&config).expect("config");
        aws.cloudwatch = cloudwatch;
        let ctx = crate::reconcile::Context::new(aws);
        let report =
            crate::reconcile::apply_all(&ctx, &set, &crate::kinds::reconcilers(&set), true).await;
        let r = &report.resources[0];
        assert!(r.error().is_none(), "{r:#?}");
        assert_eq!(
            r.changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(),
            ["threshold", "tags.mooring.dev/stack"]
        );
        assert_eq!(put.num_calls(), 1);
        assert_eq!(tag.num_calls(), 1);
    }
}
