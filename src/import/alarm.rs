//! CloudWatch metric alarms: those a CloudFormation stack or a tag picked, and those whose
//! dimensions name an imported service or target group (`alarms.yaml`). An alarm on an
//! imported service's CPU or memory, or on an imported target group's 5xx count or
//! response time, is written in the short form (`service: {name, metric}`, `targetGroup:
//! {name, metric}`) naming the manifests; any other in full (`metric:` with namespace,
//! name and dimensions). Application Auto Scaling's own alarms (`TargetTracking-…`) are
//! never imported; alarms on metric math or anomaly bands are reported and left out.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_cloudwatch::types::MetricAlarm;
use serde_json::{Value, json};

use super::{Ctx, Imported, Names, read_failed, user_tags};
use crate::aws::AwsError;
use crate::kinds::alarm::spec::{
    COMPARISONS, DEFAULT_PERIOD, TARGET_TRACKING_PREFIX, is_topic_arn,
};

/// The imported resources an alarm's dimensions may name.
#[derive(Default)]
pub(crate) struct Targets {
    /// `(cluster, service)` live names → the `Service` manifest.
    pub services: BTreeMap<(String, String), String>,
    /// A `TargetGroup` dimension (`targetgroup/NAME/ID`) → the `TargetGroup` manifest and,
    /// by `LoadBalancer` dimension (`app/NAME/ID`), the `LoadBalancer` manifests whose
    /// written listeners forward to it.
    pub target_groups: BTreeMap<String, (String, BTreeMap<String, String>)>,
}

impl Targets {
    /// True when the alarm's dimensions name one of the imported resources.
    fn named_by(&self, a: &MetricAlarm) -> bool {
        let dims = dimensions(a);
        let service = match (dims.get("ClusterName"), dims.get("ServiceName")) {
            (Some(c), Some(s)) => self.services.contains_key(&(c.clone(), s.clone())),
            _ => false,
        };
        service
            || dims
                .get("TargetGroup")
                .is_some_and(|t| self.target_groups.contains_key(t))
    }
}

/// The `TargetGroup`/`LoadBalancer` dimension value of an ELBv2 ARN: what follows
/// `targetgroup/` or `loadbalancer/` (`targetgroup/NAME/ID`, `app/NAME/ID`).
pub(crate) fn dimension(arn: &str) -> String {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or(arn);
    resource
        .strip_prefix("loadbalancer/")
        .unwrap_or(resource)
        .to_string()
}

fn dimensions(a: &MetricAlarm) -> BTreeMap<String, String> {
    a.dimensions()
        .iter()
        .filter_map(|d| Some((d.name()?.to_string(), d.value()?.to_string())))
        .collect()
}

/// What the alarms came to: their manifests, and what was picked but is not imported.
pub(crate) struct Read {
    /// The alarms' manifests, by alarm name.
    pub docs: Vec<Imported>,
    /// `what` → why.
    pub left_out: BTreeMap<String, String>,
}

/// Reads the alarms `picked` (names) and every alarm whose dimensions name one of
/// `targets`.
pub(crate) async fn read(
    cx: &Ctx<'_>,
    picked: &BTreeSet<String>,
    targets: &Targets,
    names: &mut Names,
) -> Result<Read, String> {
    let mut alarms: BTreeMap<String, MetricAlarm> = BTreeMap::new();
    let cw = &cx.aws.cloudwatch;
    if !targets.services.is_empty() || !targets.target_groups.is_empty() {
        let all: Vec<MetricAlarm> = cw
            .describe_alarms()
            .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| {
                format!(
                    "failed to list the alarms: {}",
                    AwsError::from_sdk("cloudwatch:DescribeAlarms", e)
                )
            })?
            .iter()
            .flat_map(|p| p.metric_alarms().to_vec())
            .collect();
        for a in all {
            let name = a.alarm_name().unwrap_or_default();
            if !name.starts_with(TARGET_TRACKING_PREFIX) && targets.named_by(&a) {
                alarms.insert(name.to_string(), a);
            }
        }
    }
    let mut left_out = BTreeMap::new();
    let wanted: Vec<String> = picked
        .iter()
        .filter(|n| !alarms.contains_key(*n))
        .cloned()
        .collect();
    for chunk in wanted.chunks(100) {
        let pages: Vec<_> = cw
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| {
                read_failed(format!("alarms {chunk:?}"), "cloudwatch:DescribeAlarms", e)
            })?;
        for a in pages.iter().flat_map(|p| p.metric_alarms()) {
            alarms.insert(a.alarm_name().unwrap_or_default().to_string(), a.clone());
        }
        for p in pages.iter().flat_map(|p| p.composite_alarms()) {
            left_out.insert(
                format!("alarm {}", p.alarm_name().unwrap_or_default()),
                "a composite alarm: mooring has no kind for it".into(),
            );
        }
    }
    for name in &wanted {
        if !alarms.contains_key(name) && !left_out.contains_key(&format!("alarm {name}")) {
            left_out.insert(format!("alarm {name}"), "it does not exist".into());
        }
    }
    let mut docs = Vec::new();
    for (name, a) in alarms {
        if name.starts_with(TARGET_TRACKING_PREFIX) {
            left_out.insert(
                format!("alarm {name}"),
                "Application Auto Scaling's own (target tracking): mooring never manages it".into(),
            );
            continue;
        }
        let arn = a.alarm_arn().unwrap_or(&name).to_string();
        let tags: Vec<(String, String)> = cw
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(|e| {
                read_failed(
                    format!("the tags of alarm `{name}`"),
                    "cloudwatch:ListTagsForResource",
                    e,
                )
            })?
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect();
        // Another stack's alarm naming an imported service (a monitoring stack's) stays
        // its own.
        if names.refuse(
            "alarm",
            &name,
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ) {
            continue;
        }
        match build(&a, targets, &tags) {
            Ok(built) => {
                let manifest = names.take_owned(
                    "Alarm",
                    &name,
                    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                );
                let mut doc = Imported::new("Alarm", manifest, arn, built.spec);
                doc.cannot_carry = built.cannot_carry;
                docs.push(doc);
            }
            Err(why) => {
                left_out.insert(format!("alarm {name}"), why);
            }
        }
    }
    Ok(Read { docs, left_out })
}

/// An alarm's spec and what it cannot carry.
#[derive(Debug)]
struct Built {
    spec: Value,
    cannot_carry: Vec<String>,
}

/// A whole number as an integer (`85`, not `85.0`).
#[allow(clippy::cast_possible_truncation)]
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        // Whole and small: exact as an integer.
        json!(v as i64)
    } else {
        json!(v)
    }
}

/// The spec of one alarm; `Err` with why when no manifest can say what it watches.
fn build(a: &MetricAlarm, targets: &Targets, tags: &[(String, String)]) -> Result<Built, String> {
    if !a.metrics().is_empty() || a.metric_name().is_none() {
        return Err("it watches metric math: an Alarm manifest names one metric".into());
    }
    let aws_comparison = a
        .comparison_operator()
        .map(|c| c.as_str())
        .unwrap_or_default();
    let Some((_, comparison, _)) = COMPARISONS
        .iter()
        .find(|(_, _, aws)| *aws == aws_comparison)
    else {
        return Err(format!(
            "comparison {aws_comparison}: an Alarm manifest compares with a threshold"
        ));
    };
    let namespace = a.namespace().unwrap_or_default();
    let metric = a.metric_name().unwrap_or_default();
    let dims = dimensions(a);
    let keys: Vec<&str> = dims.keys().map(String::as_str).collect();
    let mut short = None;
    if a.unit().is_none() {
        match (namespace, metric, keys.as_slice()) {
            ("AWS/ECS", "CPUUtilization" | "MemoryUtilization", ["ClusterName", "ServiceName"]) => {
                if let Some(s) = targets
                    .services
                    .get(&(dims["ClusterName"].clone(), dims["ServiceName"].clone()))
                {
                    let m = if metric == "CPUUtilization" {
                        "cpu"
                    } else {
                        "memory"
                    };
                    short = Some(("service", json!({"name": s, "metric": m}), "Average"));
                }
            }
            (
                "AWS/ApplicationELB",
                "HTTPCode_Target_5XX_Count" | "TargetResponseTime",
                ["LoadBalancer", "TargetGroup"],
            ) => {
                if let Some((tg, lbs)) = targets.target_groups.get(&dims["TargetGroup"])
                    && let Some(lb) = lbs.get(&dims["LoadBalancer"])
                {
                    let (m, default) = if metric == "TargetResponseTime" {
                        ("responseTime", "Average")
                    } else {
                        ("5xx", "Sum")
                    };
                    // The load balancer is named only when several forward to the group.
                    let lb = (lbs.len() > 1).then_some(lb);
                    short = Some((
                        "targetGroup",
                        json!({"name": tg, "metric": m, "loadBalancer": lb}),
                        default,
                    ));
                }
            }
            _ => {}
        }
    }
    let default_statistic = short.as_ref().map_or("Average", |(_, _, d)| *d);
    let statistic = a
        .statistic()
        .map(|s| s.as_str())
        .filter(|s| *s != default_statistic);
    let mut spec = json!({
        "alarmName": a.alarm_name(),
        "description": a.alarm_description().filter(|d| !d.is_empty()),
    });
    match short {
        Some((key, value, _)) => spec[key] = value,
        None => {
            spec["metric"] = json!({
                "namespace": namespace,
                "metricName": metric,
                "dimensions": dims,
                "unit": a.unit().map(|u| u.as_str()),
            });
        }
    }
    let mut cannot_carry = Vec::new();
    let mut actions = |field: &str, arns: &[String]| -> Vec<String> {
        let mut topics: Vec<String> = Vec::new();
        for arn in arns {
            if is_topic_arn(arn) {
                topics.push(arn.clone());
            } else {
                cannot_carry.push(format!(
                    "{field}: {arn} (an Alarm manifest notifies SNS topics only)"
                ));
            }
        }
        topics.sort();
        topics
    };
    let alarm_actions = actions("alarmActions", a.alarm_actions());
    let ok_actions = actions("okActions", a.ok_actions());
    let insufficient = actions("insufficientDataActions", a.insufficient_data_actions());
    let evaluation = a.evaluation_periods().unwrap_or(1);
    let rest = json!({
        "statistic": statistic,
        "extendedStatistic": a.extended_statistic(),
        "period": a.period().filter(|p| i64::from(*p) != i64::from(DEFAULT_PERIOD)),
        "threshold": number(a.threshold().unwrap_or_default()),
        "comparison": comparison,
        "evaluationPeriods": evaluation,
        "datapointsToAlarm": a.datapoints_to_alarm().filter(|d| *d != evaluation),
        "treatMissingData": a.treat_missing_data().filter(|t| *t != "missing"),
        "actionsEnabled": a.actions_enabled().filter(|e| !e),
        "alarmActions": alarm_actions,
        "okActions": ok_actions,
        "insufficientDataActions": insufficient,
        "tags": user_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    });
    if let (Value::Object(spec), Value::Object(rest)) = (&mut spec, rest) {
        spec.extend(rest);
    }
    Ok(Built { spec, cannot_carry })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};

    fn alarm(namespace: &str, metric: &str, dims: &[(&str, &str)]) -> MetricAlarm {
        let mut b = MetricAlarm::builder()
            .alarm_name("HighCpu")
            .alarm_arn("arn:aws:cloudwatch:us-east-1:123456789012:alarm:HighCpu")
            .namespace(namespace)
            .metric_name(metric)
            .statistic(Statistic::Average)
            .period(60)
            .evaluation_periods(3)
            .threshold(85.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .alarm_actions("arn:aws:sns:us-east-1:123456789012:alerts")
            .alarm_actions("arn:aws:automate:us-east-1:ec2:stop");
        for (k, v) in dims {
            b = b.dimensions(Dimension::builder().name(*k).value(*v).build());
        }
        b.build()
    }

    fn targets() -> Targets {
        Targets {
            services: BTreeMap::from([(("prd".into(), "api-1A2B".into()), "api".into())]),
            target_groups: BTreeMap::from([(
                "targetgroup/api-tg/abc".into(),
                (
                    "api-tg".into(),
                    BTreeMap::from([("app/alb/123".into(), "alb".into())]),
                ),
            )]),
        }
    }

    #[test]
    fn alarms_on_imported_resources_take_the_short_form_and_others_the_full_one() {
        let t = targets();
        let cpu = alarm(
            "AWS/ECS",
            "CPUUtilization",
            &[("ClusterName", "prd"), ("ServiceName", "api-1A2B")],
        );
        assert!(t.named_by(&cpu));
        let b = build(&cpu, &t, &[]).unwrap();
        assert_eq!(
            super::super::clean(b.spec),
            json!({"alarmName": "HighCpu", "service": {"name": "api", "metric": "cpu"},
                "period": 60, "threshold": 85, "comparison": "greaterThan",
                "evaluationPeriods": 3,
                "alarmActions": ["arn:aws:sns:us-east-1:123456789012:alerts"]})
        );
        assert_eq!(
            b.cannot_carry,
            [
                "alarmActions: arn:aws:automate:us-east-1:ec2:stop (an Alarm manifest notifies SNS topics only)"
            ]
        );
        let five = alarm(
            "AWS/ApplicationELB",
            "HTTPCode_Target_5XX_Count",
            &[
                ("LoadBalancer", "app/alb/123"),
                ("TargetGroup", "targetgroup/api-tg/abc"),
            ],
        );
        let b = build(&five, &t, &[]).unwrap();
        let spec = super::super::clean(b.spec);
        assert_eq!(
            spec["targetGroup"],
            json!({"name": "api-tg", "metric": "5xx"})
        );
        // Average is not the 5xx short form's default: written.
        assert_eq!(spec["statistic"], json!("Average"));
        // Another service's alarm: the full form.
        let other = alarm(
            "AWS/ECS",
            "CPUUtilization",
            &[("ClusterName", "prd"), ("ServiceName", "other")],
        );
        assert!(!t.named_by(&other));
        let spec = super::super::clean(build(&other, &t, &[]).unwrap().spec);
        assert_eq!(
            spec["metric"],
            json!({"namespace": "AWS/ECS", "metricName": "CPUUtilization",
                "dimensions": {"ClusterName": "prd", "ServiceName": "other"}})
        );
        assert!(spec.get("statistic").is_none(), "Average is the default");
        assert_eq!(
            dimension("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/alb/123"),
            "app/alb/123"
        );
        assert_eq!(
            dimension("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/api-tg/abc"),
            "targetgroup/api-tg/abc"
        );
    }

    #[test]
    fn metric_math_and_anomaly_bands_are_left_out() {
        let mut band = alarm("AWS/ECS", "CPUUtilization", &[]);
        band.comparison_operator =
            Some(ComparisonOperator::LessThanLowerOrGreaterThanUpperThreshold);
        let err = build(&band, &Targets::default(), &[]).unwrap_err();
        assert!(
            err.contains("LessThanLowerOrGreaterThanUpperThreshold"),
            "{err}"
        );
        let mut math = alarm("AWS/ECS", "CPUUtilization", &[]);
        math.metric_name = None;
        assert!(
            build(&math, &Targets::default(), &[])
                .unwrap_err()
                .contains("metric math")
        );
    }
}
