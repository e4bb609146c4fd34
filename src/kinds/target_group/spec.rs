//! `kind: TargetGroup` — an ELBv2 target group of `ip` targets (what Fargate tasks
//! register as), with its health check.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::Metadata;
use crate::manifest::common::{check_elbv2_name, check_tags};
use crate::manifest::error::Findings;

/// A target group for a Fargate service behind an Application Load Balancer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetGroupSpec {
    /// Name in ELBv2 (at most 32 letters, digits and hyphens). Defaults to `metadata.name`.
    /// Changing it replaces the target group.
    #[serde(default)]
    pub target_group_name: Option<String>,
    /// Protocol to the targets. Changing it replaces the target group.
    #[serde(default)]
    pub protocol: TargetProtocol,
    /// Port the targets listen on (the container's port). Changing it replaces the target
    /// group.
    pub port: u16,
    /// `default` for the account's default VPC, or a VPC ID. Changing it replaces the
    /// target group.
    pub vpc: String,
    /// How the load balancer checks targets.
    #[serde(default)]
    pub health_check: TargetHealthCheck,
    /// Seconds a draining target keeps its connections before it is deregistered (0-3600).
    /// AWS default 300; a task that stops faster than this holds a deploy up.
    #[serde(default)]
    pub deregistration_delay_seconds: Option<u32>,
    /// Sticky sessions with a load-balancer cookie; off when unset.
    #[serde(default)]
    pub stickiness: Option<Stickiness>,
    /// Tags (the ownership tags are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Sticky sessions (`lb_cookie`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Stickiness {
    /// How long a client sticks to one target, in seconds (1-604800). Default 86400.
    #[serde(default)]
    pub duration_seconds: Option<u32>,
}

/// Protocol between the load balancer and the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum TargetProtocol {
    /// Plain HTTP (TLS ends at the load balancer).
    #[default]
    HTTP,
    /// HTTPS to the targets.
    HTTPS,
}

impl TargetProtocol {
    /// The name ELBv2 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetProtocol::HTTP => "HTTP",
            TargetProtocol::HTTPS => "HTTPS",
        }
    }
}

/// The target group's health check. Unset fields take the ELBv2 defaults for `ip`
/// targets over HTTP.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetHealthCheck {
    /// Path to request, e.g. `/api/health`. Default `/`. Must match the container's
    /// health check path when both are HTTP checks.
    #[serde(default)]
    pub path: Option<String>,
    /// HTTP codes that count as healthy, e.g. `200` or `200-299`. Default `200`.
    #[serde(default)]
    pub matcher: Option<String>,
    /// Seconds between checks (5-300). Default 30.
    #[serde(default)]
    pub interval_seconds: Option<u32>,
    /// Seconds before a check fails (2-120). Default 5.
    #[serde(default)]
    pub timeout_seconds: Option<u32>,
    /// Successes before a target is healthy (2-10). Default 5.
    #[serde(default)]
    pub healthy_threshold: Option<u32>,
    /// Failures before a target is unhealthy (2-10). Default 2.
    #[serde(default)]
    pub unhealthy_threshold: Option<u32>,
}

/// ELBv2 defaults for the health check of `ip` targets over HTTP(S).
pub mod defaults {
    /// Path.
    pub const PATH: &str = "/";
    /// Matcher.
    pub const MATCHER: &str = "200";
    /// Interval.
    pub const INTERVAL: u32 = 30;
    /// Timeout.
    pub const TIMEOUT: u32 = 5;
    /// Healthy threshold.
    pub const HEALTHY: u32 = 5;
    /// Unhealthy threshold.
    pub const UNHEALTHY: u32 = 2;
}


impl TargetGroupSpec {
    /// The target group's name in ELBv2.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.target_group_name.as_deref().unwrap_or(&meta.name)
    }

    /// The health check path, default filled in.
    pub fn health_check_path(&self) -> &str {
        self.health_check.path.as_deref().unwrap_or(defaults::PATH)
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        check_elbv2_name(
            self.aws_name(meta),
            "target group",
            "/spec/targetGroupName",
            f,
        );
        if self.port == 0 {
            f.at("/spec/port", "ports are 1-65535");
        }
        if self.deregistration_delay_seconds.is_some_and(|d| d > 3600) {
            f.at("/spec/deregistrationDelaySeconds", "must be 0-3600");
        }
        if let Some(d) = self
            .stickiness
            .as_ref()
            .and_then(|s| s.duration_seconds)
            .filter(|d| !(1..=604_800).contains(d))
        {
            f.at(
                "/spec/stickiness/durationSeconds",
                format!("{d} is not 1-604800 (one second to seven days)"),
            );
        }
        if self.vpc != "default" && !self.vpc.starts_with("vpc-") {
            f.at("/spec/vpc", "must be `default` or a VPC ID (`vpc-…`)");
        }
        check_tags(&self.tags, "/spec/tags", f);
        let hc = &self.health_check;
        if let Some(path) = &hc.path
            && (!path.starts_with('/') || path.len() > 1024)
        {
            f.at(
                "/spec/healthCheck/path",
                "must start with `/` (at most 1024 characters)",
            );
        }
        if let Some(m) = &hc.matcher {
            let code = |s: &str| s.parse::<u16>().is_ok_and(|c| (200..=499).contains(&c));
            let ok = m.split(',').all(|part| match part.split_once('-') {
                Some((a, b)) => code(a) && code(b),
                None => code(part),
            });
            if !ok {
                f.at(
                    "/spec/healthCheck/matcher",
                    "must be HTTP codes 200-499, e.g. `200`, `200,204` or `200-299`",
                );
            }
        }
        for (field, v, lo, hi) in [
            ("intervalSeconds", hc.interval_seconds, 5, 300),
            ("timeoutSeconds", hc.timeout_seconds, 2, 120),
            ("healthyThreshold", hc.healthy_threshold, 2, 10),
            ("unhealthyThreshold", hc.unhealthy_threshold, 2, 10),
        ] {
            if let Some(v) = v.filter(|v| !(lo..=hi).contains(v)) {
                f.at(
                    &format!("/spec/healthCheck/{field}"),
                    format!("{v} is outside {lo}-{hi}"),
                );
            }
        }
        let interval = hc.interval_seconds.unwrap_or(defaults::INTERVAL);
        let timeout = hc.timeout_seconds.unwrap_or(defaults::TIMEOUT);
        if timeout >= interval {
            f.at(
                "/spec/healthCheck/timeoutSeconds",
                format!("the timeout ({timeout}s) must be shorter than the interval ({interval}s)"),
            );
        }
    }
}
