//! `kind: ScalableTarget` — Application Auto Scaling of a service's desired count, with
//! target-tracking policies on CPU, memory and requests per target.
//!
//! When a service has a scalable target, its desired count belongs to the scaler: a
//! changed count is not drift and apply never sets it (except once, at creation).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::error::Findings;

/// Scaling of one service's desired count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScalableTargetSpec {
    /// `metadata.name` of the `Service` manifest whose desired count is scaled.
    pub service: String,
    /// Fewest tasks.
    pub min_capacity: u32,
    /// Most tasks.
    pub max_capacity: u32,
    /// Target-tracking policies, at most one per metric. mooring owns the target's
    /// policies: one it did not put there (added by hand) is named by plan and deleted.
    #[serde(default)]
    pub target_tracking: Vec<TargetTrackingSpec>,
    /// Scaling that is paused on purpose. Default: nothing paused, so a target suspended
    /// by hand (which silently stops scaling) is drift and apply resumes it.
    #[serde(default)]
    pub suspended: Suspended,
    /// Scheduled changes of the capacity range (e.g. a higher minimum in business hours).
    /// mooring owns the target's scheduled actions: one it did not put there (added by
    /// hand) is named by plan and deleted.
    #[serde(default)]
    pub schedules: Vec<ScheduleSpec>,
}

/// A scheduled action: at each time the schedule gives, the target's range becomes
/// `minCapacity`-`maxCapacity` (either may be left out: that bound is kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// The scheduled action's name in Application Auto Scaling (unique on the target;
    /// no `:`, `/` or `|`).
    pub name: String,
    /// `cron(0 7 ? * MON-FRI *)` (six fields), `rate(1 day)` or
    /// `at(2026-12-24T18:00:00)`.
    pub schedule: String,
    /// The minimum from then on.
    #[serde(default)]
    pub min_capacity: Option<u32>,
    /// The maximum from then on.
    #[serde(default)]
    pub max_capacity: Option<u32>,
    /// IANA time zone the schedule is read in, e.g. `Europe/Paris`. Default `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// The time zone of a schedule that names none.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// Which scaling activities are paused (Application Auto Scaling's `SuspendedState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Suspended {
    /// No scale-in by target-tracking or step policies.
    #[serde(default)]
    pub dynamic_scaling_in: bool,
    /// No scale-out by target-tracking or step policies.
    #[serde(default)]
    pub dynamic_scaling_out: bool,
    /// No scheduled actions.
    #[serde(default)]
    pub scheduled_scaling: bool,
}

/// A target-tracking scaling policy on a predefined metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetTrackingSpec {
    /// The metric to track.
    pub metric: ScalingMetric,
    /// The value to keep the metric at: percent (1-100) of CPU or memory, requests per
    /// target per minute for `ALBRequestCountPerTarget`.
    pub target_value: f64,
    /// For `ALBRequestCountPerTarget` (and only then): the `metadata.name` of the
    /// `TargetGroup` manifest whose requests are counted.
    #[serde(default)]
    pub target_group: Option<String>,
    /// For `ALBRequestCountPerTarget`: the `LoadBalancer` manifest whose requests to the
    /// target group are counted. Default: the one whose listener forwards to it (needed
    /// only when several do).
    #[serde(default)]
    pub load_balancer: Option<String>,
    /// Seconds after a scale-in before another one. AWS default 300.
    #[serde(default)]
    pub scale_in_cooldown_seconds: Option<u32>,
    /// Seconds after a scale-out before another one. AWS default 300.
    #[serde(default)]
    pub scale_out_cooldown_seconds: Option<u32>,
    /// Only ever scale out with this policy.
    #[serde(default)]
    pub disable_scale_in: bool,
    /// The policy's name in Application Auto Scaling. Defaults to
    /// `mooring-<manifest>-<cpu|memory|requests>`; `mooring import` sets it to keep the name of a
    /// policy made elsewhere (CDK, the console), so adopting it renames nothing.
    #[serde(default)]
    pub policy_name: Option<String>,
}

/// Predefined ECS service metrics, and the requests per target of a load balancer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum ScalingMetric {
    /// Average CPU utilisation of the service's tasks.
    ECSServiceAverageCPUUtilization,
    /// Average memory utilisation of the service's tasks.
    ECSServiceAverageMemoryUtilization,
    /// Requests per minute to each target of a target group, through one load balancer.
    ALBRequestCountPerTarget,
}

impl ScalingMetric {
    /// The predefined metric type's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScalingMetric::ECSServiceAverageCPUUtilization => "ECSServiceAverageCPUUtilization",
            ScalingMetric::ECSServiceAverageMemoryUtilization => {
                "ECSServiceAverageMemoryUtilization"
            }
            ScalingMetric::ALBRequestCountPerTarget => "ALBRequestCountPerTarget",
        }
    }

    /// Short form used in policy names.
    pub fn short(self) -> &'static str {
        match self {
            ScalingMetric::ECSServiceAverageCPUUtilization => "cpu",
            ScalingMetric::ECSServiceAverageMemoryUtilization => "memory",
            ScalingMetric::ALBRequestCountPerTarget => "requests",
        }
    }
}

/// Default cooldown of target-tracking policies.
pub const DEFAULT_COOLDOWN: u32 = 300;

impl ScalableTargetSpec {
    /// Checks what the schema cannot express.
    pub fn check(&self, f: &mut Findings<'_>) {
        if self.min_capacity > self.max_capacity {
            f.at(
                "/spec/minCapacity",
                format!(
                    "minCapacity {} is more than maxCapacity {}",
                    self.min_capacity, self.max_capacity
                ),
            );
        }
        if self.max_capacity == 0 {
            f.at("/spec/maxCapacity", "must be at least 1");
        }
        if self.max_capacity > 5000 {
            f.at(
                "/spec/maxCapacity",
                "ECS runs at most 5000 tasks per service",
            );
        }
        let mut seen = Vec::new();
        for (i, t) in self.target_tracking.iter().enumerate() {
            let p = format!("/spec/targetTracking/{i}");
            if t.metric == ScalingMetric::ALBRequestCountPerTarget {
                if t.target_group.is_none() {
                    f.at(
                        p.as_str(),
                        "`ALBRequestCountPerTarget` needs `targetGroup` (the TargetGroup manifest whose requests are counted)",
                    );
                }
                if !(t.target_value > 0.0 && t.target_value.is_finite()) {
                    f.at(
                        &format!("{p}/targetValue"),
                        format!("{} is not a number of requests above 0", t.target_value),
                    );
                }
            } else {
                if !(1.0..=100.0).contains(&t.target_value) {
                    f.at(
                        &format!("{p}/targetValue"),
                        format!("{} is outside 1-100 (percent)", t.target_value),
                    );
                }
                for (field, set) in [
                    ("targetGroup", t.target_group.is_some()),
                    ("loadBalancer", t.load_balancer.is_some()),
                ] {
                    if set {
                        f.at(
                            &format!("{p}/{field}"),
                            format!("only for `ALBRequestCountPerTarget`, not {}", t.metric.as_str()),
                        );
                    }
                }
            }
            for (field, v) in [
                ("scaleInCooldownSeconds", t.scale_in_cooldown_seconds),
                ("scaleOutCooldownSeconds", t.scale_out_cooldown_seconds),
            ] {
                if v.is_some_and(|v| v > 86_400) {
                    f.at(&format!("{p}/{field}"), "at most 86400 seconds (one day)");
                }
            }
            if let Some(name) = &t.policy_name
                && (name.is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control))
            {
                f.at(
                    &format!("{p}/policyName"),
                    "a policy name is 1-256 printable characters",
                );
            }
            if seen.contains(&t.metric) {
                f.at(
                    &format!("{p}/metric"),
                    format!("a second policy on {}", t.metric.as_str()),
                );
            }
            seen.push(t.metric);
        }
        let mut names: Vec<&str> = Vec::new();
        for (i, sch) in self.schedules.iter().enumerate() {
            let p = format!("/spec/schedules/{i}");
            let n = &sch.name;
            if n.is_empty()
                || n.len() > 256
                || n.trim() != n
                || n.chars().any(|c| ":/|".contains(c) || c.is_control())
            {
                f.at(
                    &format!("{p}/name"),
                    "names are 1-256 characters without `:`, `/`, `|` or surrounding spaces",
                );
            }
            if names.contains(&n.as_str()) {
                f.at(&format!("{p}/name"), format!("a second schedule named `{n}`"));
            }
            names.push(n);
            let at = sch
                .schedule
                .strip_prefix("at(")
                .and_then(|s| s.strip_suffix(')'));
            let checked = match at {
                Some(t) if is_local_datetime(t) => Ok(()),
                Some(_) => Err(format!(
                    "`{}`: `at()` takes yyyy-mm-ddThh:mm:ss",
                    sch.schedule
                )),
                None => crate::kinds::rule::spec::check_schedule(&sch.schedule),
            };
            if let Err(e) = checked {
                f.at(&format!("{p}/schedule"), e);
            }
            match (sch.min_capacity, sch.max_capacity) {
                (None, None) => f.at(p.as_str(), "set `minCapacity`, `maxCapacity` or both"),
                (Some(min), Some(max)) if min > max => f.at(
                    &format!("{p}/minCapacity"),
                    format!("minCapacity {min} is more than maxCapacity {max}"),
                ),
                _ => {}
            }
            if sch.max_capacity.is_some_and(|m| m > 5000) {
                f.at(
                    &format!("{p}/maxCapacity"),
                    "ECS runs at most 5000 tasks per service",
                );
            }
            if let Some(tz) = &sch.timezone
                && (tz.is_empty() || tz.contains(char::is_whitespace))
            {
                f.at(
                    &format!("{p}/timezone"),
                    "an IANA time zone such as `Europe/Paris` or `UTC`",
                );
            }
        }
    }
}

/// `yyyy-mm-ddThh:mm:ss`.
fn is_local_datetime(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}
