//! `kind: Alarm` — a CloudWatch metric alarm: on any metric, or in a short form on a
//! service's CPU or memory or a target group's 5xx count or response time, notifying SNS
//! topics.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::Metadata;
use crate::manifest::common::check_tags;
use crate::manifest::error::Findings;
use crate::manifest::yaml::escape_segment;

/// The name prefix of the alarms Application Auto Scaling creates for target tracking:
/// never mooring's.
pub const TARGET_TRACKING_PREFIX: &str = "TargetTracking-";

/// Seconds per datapoint when `period` is unset (CloudFormation's and CDK's default).
pub const DEFAULT_PERIOD: u32 = 300;

/// A CloudWatch metric alarm. Exactly one of `metric`, `service` and `targetGroup` says
/// what it watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlarmSpec {
    /// Name in CloudWatch (1-255 characters, no control characters). Defaults to
    /// `metadata.name`. Names starting with `TargetTracking-` belong to Application Auto
    /// Scaling. A new name is a new alarm.
    #[serde(default)]
    pub alarm_name: Option<String>,
    /// What the alarm means, sent with its notifications (at most 1024 characters).
    #[serde(default)]
    pub description: Option<String>,
    /// Any metric, by its CloudWatch namespace, name and dimensions.
    #[serde(default)]
    pub metric: Option<MetricSpec>,
    /// A `Service` manifest's CPU or memory utilisation (`AWS/ECS`, dimensions
    /// `ClusterName` and `ServiceName`).
    #[serde(default)]
    pub service: Option<ServiceMetric>,
    /// A `TargetGroup` manifest's target 5xx count or response time (`AWS/ApplicationELB`,
    /// dimensions `TargetGroup` and `LoadBalancer` as CloudWatch names them, read from the
    /// live resources).
    #[serde(default)]
    pub target_group: Option<TargetGroupMetric>,
    /// How datapoints are aggregated over a period. Default: `Sum` for a target group's
    /// `5xx`, `Average` otherwise. Set this or `extendedStatistic`.
    #[serde(default)]
    pub statistic: Option<Statistic>,
    /// A percentile instead of `statistic`, e.g. `p99` or `p99.9` (also `tm90`, `wm90`,
    /// `tc90`, `ts90`).
    #[serde(default)]
    pub extended_statistic: Option<String>,
    /// Seconds per datapoint: 10, 30 or a multiple of 60. Default 300.
    #[serde(default)]
    pub period: Option<u32>,
    /// The value the statistic is compared with, e.g. `85` (percent CPU), `10` (5xx
    /// responses per period) or `1.5` (seconds of response time).
    pub threshold: f64,
    /// How the statistic is compared with the threshold.
    pub comparison: Comparison,
    /// Periods looked at (at least 1; periods × period at most one day, or 7 days for
    /// periods of an hour or more).
    pub evaluation_periods: u32,
    /// Breaching periods among `evaluationPeriods` that set off the alarm ("M out of N").
    /// Default: all of them.
    #[serde(default)]
    pub datapoints_to_alarm: Option<u32>,
    /// What a period without data counts as. Default `missing` (CloudWatch's).
    #[serde(default)]
    pub treat_missing_data: TreatMissingData,
    /// Whether the actions run. Default true.
    #[serde(default)]
    pub actions_enabled: Option<bool>,
    /// SNS topic ARNs notified when the alarm goes off (at most 5), e.g. the topic that
    /// forwards to Slack or PagerDuty.
    #[serde(default)]
    pub alarm_actions: Vec<String>,
    /// SNS topic ARNs notified when it is back to OK (at most 5).
    #[serde(default)]
    pub ok_actions: Vec<String>,
    /// SNS topic ARNs notified when it has too little data (at most 5).
    #[serde(default)]
    pub insufficient_data_actions: Vec<String>,
    /// Tags (the ownership tags are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A metric named in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricSpec {
    /// Namespace, e.g. `AWS/ECS` or `Salon/Bookings`.
    pub namespace: String,
    /// Metric name, e.g. `CPUUtilization`.
    pub metric_name: String,
    /// Dimensions by name (at most 30), e.g. `{ClusterName: prd, ServiceName: api}`.
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// The metric's unit, when it is published with several (e.g. `Percent`,
    /// `Milliseconds`, `Count`).
    #[serde(default)]
    pub unit: Option<String>,
}

/// A service's utilisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceMetric {
    /// The `metadata.name` of a `Service` manifest.
    pub name: String,
    /// `cpu` (`CPUUtilization`) or `memory` (`MemoryUtilization`), in percent.
    pub metric: ServiceMetricName,
}

/// The utilisation metrics of an ECS service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServiceMetricName {
    /// `CPUUtilization`.
    #[serde(rename = "cpu")]
    Cpu,
    /// `MemoryUtilization`.
    #[serde(rename = "memory")]
    Memory,
}

/// A target group's health as its load balancer sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetGroupMetric {
    /// The `metadata.name` of a `TargetGroup` manifest.
    pub name: String,
    /// `5xx` (`HTTPCode_Target_5XX_Count`: 5xx responses of the targets) or
    /// `responseTime` (`TargetResponseTime`, seconds).
    pub metric: TargetGroupMetricName,
    /// The `LoadBalancer` manifest whose metrics are meant. Default: the one whose
    /// listener forwards to the target group (needed only when several do).
    #[serde(default)]
    pub load_balancer: Option<String>,
}

/// The target group metrics of an Application Load Balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TargetGroupMetricName {
    /// `HTTPCode_Target_5XX_Count`.
    #[serde(rename = "5xx")]
    Http5xx,
    /// `TargetResponseTime`.
    #[serde(rename = "responseTime")]
    ResponseTime,
}

/// CloudWatch's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Statistic {
    /// Mean of the datapoints.
    Average,
    /// Sum of the datapoints.
    Sum,
    /// Lowest datapoint.
    Minimum,
    /// Highest datapoint.
    Maximum,
    /// Number of datapoints.
    SampleCount,
}

impl Statistic {
    /// The name CloudWatch uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Statistic::Average => "Average",
            Statistic::Sum => "Sum",
            Statistic::Minimum => "Minimum",
            Statistic::Maximum => "Maximum",
            Statistic::SampleCount => "SampleCount",
        }
    }
}

/// How the statistic is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Comparison {
    /// `>` (`GreaterThanThreshold`).
    GreaterThan,
    /// `>=` (`GreaterThanOrEqualToThreshold`).
    GreaterThanOrEqual,
    /// `<` (`LessThanThreshold`).
    LessThan,
    /// `<=` (`LessThanOrEqualToThreshold`).
    LessThanOrEqual,
}

/// The comparisons by their manifest name and CloudWatch's.
pub const COMPARISONS: [(Comparison, &str, &str); 4] = [
    (Comparison::GreaterThan, "greaterThan", "GreaterThanThreshold"),
    (
        Comparison::GreaterThanOrEqual,
        "greaterThanOrEqual",
        "GreaterThanOrEqualToThreshold",
    ),
    (Comparison::LessThan, "lessThan", "LessThanThreshold"),
    (
        Comparison::LessThanOrEqual,
        "lessThanOrEqual",
        "LessThanOrEqualToThreshold",
    ),
];

impl Comparison {
    /// The manifest's name.
    pub fn as_str(self) -> &'static str {
        COMPARISONS
            .iter()
            .find(|(c, _, _)| *c == self)
            .map_or("", |(_, name, _)| name)
    }

    /// CloudWatch's name.
    pub fn aws_name(self) -> &'static str {
        COMPARISONS
            .iter()
            .find(|(c, _, _)| *c == self)
            .map_or("", |(_, _, aws)| aws)
    }
}

/// What a period without data counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TreatMissingData {
    /// Not evaluated: the alarm looks further back (CloudWatch's default).
    #[default]
    Missing,
    /// Counts as good.
    NotBreaching,
    /// Counts as bad.
    Breaching,
    /// The alarm keeps its state.
    Ignore,
}

impl TreatMissingData {
    /// The name CloudWatch uses.
    pub fn as_str(self) -> &'static str {
        match self {
            TreatMissingData::Missing => "missing",
            TreatMissingData::NotBreaching => "notBreaching",
            TreatMissingData::Breaching => "breaching",
            TreatMissingData::Ignore => "ignore",
        }
    }
}

/// True for an SNS topic ARN (`arn:PARTITION:sns:REGION:ACCOUNT:TOPIC`).
pub fn is_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    let [arn_, partition, service, region, account, topic] = parts.as_slice() else {
        return false;
    };
    let topic = topic.strip_suffix(".fifo").unwrap_or(topic);
    *arn_ == "arn"
        && partition.starts_with("aws")
        && *service == "sns"
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && (1..=256).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// True for an extended statistic CloudWatch alarms take: `p`, `tm`, `wm`, `tc` or `ts`
/// followed by a percentage, e.g. `p99` or `p99.9`.
pub fn is_extended_statistic(s: &str) -> bool {
    let number = ["tm", "wm", "tc", "ts", "p"]
        .iter()
        .find_map(|prefix| s.strip_prefix(prefix));
    number.is_some_and(|n| {
        !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && n.parse::<f64>().is_ok_and(|v| (0.0..=100.0).contains(&v))
    })
}

impl AlarmSpec {
    /// The alarm's name in CloudWatch.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.alarm_name.as_deref().unwrap_or(&meta.name)
    }

    /// The period, default filled in.
    pub fn period(&self) -> u32 {
        self.period.unwrap_or(DEFAULT_PERIOD)
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        let name = self.aws_name(meta);
        let name_at = if self.alarm_name.is_some() {
            "/spec/alarmName"
        } else {
            "/metadata/name"
        };
        if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
            f.at(
                name_at,
                format!("`{name}` is not a valid alarm name (1-255 characters, no control characters)"),
            );
        }
        if name.starts_with(TARGET_TRACKING_PREFIX) {
            f.at(
                name_at,
                format!(
                    "alarm names starting with `{TARGET_TRACKING_PREFIX}` belong to Application Auto Scaling's target tracking; choose another name"
                ),
            );
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 1024)
        {
            f.at("/spec/description", "at most 1024 characters");
        }
        let forms = [
            self.metric.is_some(),
            self.service.is_some(),
            self.target_group.is_some(),
        ];
        if forms.iter().filter(|x| **x).count() != 1 {
            f.at(
                "/spec",
                "set exactly one of `metric`, `service` and `targetGroup` (what the alarm watches)",
            );
        }
        if let Some(m) = &self.metric {
            check_metric(m, f);
        }
        if self.statistic.is_some() && self.extended_statistic.is_some() {
            f.at(
                "/spec/extendedStatistic",
                "set `statistic` or `extendedStatistic`, not both",
            );
        }
        if let Some(s) = self
            .extended_statistic
            .as_ref()
            .filter(|s| !is_extended_statistic(s))
        {
            f.at(
                "/spec/extendedStatistic",
                format!("`{s}` is not a percentile statistic such as `p99`, `p99.9` or `tm90` (0-100)"),
            );
        }
        let period = self.period();
        if !(period == 10 || period == 30 || (period > 0 && period.is_multiple_of(60))) {
            f.at(
                "/spec/period",
                format!("CloudWatch alarms take a period of 10, 30 or a multiple of 60 seconds, not {period}"),
            );
        }
        if self.evaluation_periods == 0 {
            f.at("/spec/evaluationPeriods", "at least 1");
        }
        let window = u64::from(period) * u64::from(self.evaluation_periods);
        let limit: u64 = if period >= 3600 { 7 * 86_400 } else { 86_400 };
        if window > limit {
            f.at(
                "/spec/evaluationPeriods",
                format!(
                    "{} periods of {period} s look back {window} s; CloudWatch allows at most {limit} s ({})",
                    self.evaluation_periods,
                    if limit > 86_400 {
                        "7 days for periods of an hour or more"
                    } else {
                        "one day for periods under an hour"
                    }
                ),
            );
        }
        // With no valid `evaluationPeriods` (reported above) there is no range to name.
        if let Some(d) = self.datapoints_to_alarm
            && self.evaluation_periods > 0
            && (d == 0 || d > self.evaluation_periods)
        {
            f.at(
                "/spec/datapointsToAlarm",
                format!(
                    "must be 1-{} (at most `evaluationPeriods`)",
                    self.evaluation_periods
                ),
            );
        }
        if !self.threshold.is_finite() {
            f.at("/spec/threshold", "must be a finite number");
        }
        for (field, arns) in [
            ("alarmActions", &self.alarm_actions),
            ("okActions", &self.ok_actions),
            ("insufficientDataActions", &self.insufficient_data_actions),
        ] {
            if arns.len() > 5 {
                f.at(&format!("/spec/{field}"), "at most 5 actions");
            }
            for (i, arn) in arns.iter().enumerate() {
                let p = format!("/spec/{field}/{i}");
                if !is_topic_arn(arn) {
                    f.at(
                        &p,
                        format!("`{arn}` is not an SNS topic ARN (`arn:aws:sns:REGION:ACCOUNT:TOPIC`)"),
                    );
                } else if arns[..i].contains(arn) {
                    f.at(&p, format!("`{arn}` is listed twice"));
                }
            }
        }
        check_tags(&self.tags, "/spec/tags", f);
    }
}

fn check_metric(m: &MetricSpec, f: &mut Findings<'_>) {
    for (field, v) in [("namespace", &m.namespace), ("metricName", &m.metric_name)] {
        if v.is_empty() || v.chars().count() > 255 {
            f.at(&format!("/spec/metric/{field}"), "1-255 characters");
        }
    }
    if m.namespace.starts_with(':') {
        f.at("/spec/metric/namespace", "must not start with `:`");
    }
    if m.dimensions.len() > 30 {
        f.at("/spec/metric/dimensions", "at most 30 dimensions");
    }
    for (k, v) in &m.dimensions {
        let p = format!("/spec/metric/dimensions/{}", escape_segment(k));
        if k.is_empty() || k.chars().count() > 255 || k.starts_with(':') {
            f.at(&p, "dimension names are 1-255 characters, not starting with `:`");
        }
        if v.is_empty() || v.chars().count() > 1024 {
            f.at(&p, "dimension values are 1-1024 characters");
        }
    }
    if let Some(u) = &m.unit
        && !aws_sdk_cloudwatch::types::StandardUnit::values().contains(&u.as_str())
    {
        f.at(
            "/spec/metric/unit",
            format!(
                "`{u}` is not a CloudWatch unit; use one of {}",
                aws_sdk_cloudwatch::types::StandardUnit::values().join(", ")
            ),
        );
    }
}
