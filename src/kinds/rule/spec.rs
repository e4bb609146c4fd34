//! `kind: Rule`: a scheduled EventBridge rule and its target: an API destination, or an
//! ECS task on Fargate.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kinds::service::spec::NetworkSpec;
use crate::manifest::Metadata;
use crate::manifest::common::check_tags;
use crate::manifest::error::Findings;
use crate::kinds::connection::spec::check_name;

/// The target ID mooring gives the target it manages, unless the manifest names another.
pub const TARGET_ID: &str = "mooring";

/// A scheduled EventBridge rule that calls an API destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleSpec {
    /// Name in EventBridge. Defaults to `metadata.name`.
    #[serde(default)]
    pub rule_name: Option<String>,
    /// `cron(0 8 * * ? *)` (six fields, UTC) or `rate(15 minutes)`.
    pub schedule_expression: String,
    /// Whether the rule fires.
    #[serde(default)]
    pub state: RuleState,
    /// Free text shown in the console.
    #[serde(default)]
    pub description: Option<String>,
    /// What the rule calls.
    pub target: RuleTarget,
    /// Tags (the ownership tags are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Rule state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum RuleState {
    /// Fires on schedule.
    #[default]
    ENABLED,
    /// Does not fire.
    DISABLED,
}

impl RuleState {
    /// The name EventBridge uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleState::ENABLED => "ENABLED",
            RuleState::DISABLED => "DISABLED",
        }
    }
}

/// The rule's target: an API destination (`apiDestination`) or an ECS task (`task`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleTarget {
    /// The target's ID on the rule (1-64 letters, digits, `.-_`). Default `mooring`;
    /// `mooring import` keeps the live one (CDK's is `Target0`), so adopting a rule does not
    /// replace its target.
    #[serde(default)]
    pub id: Option<String>,
    /// `metadata.name` of the `ApiDestination` manifest to call.
    #[serde(default)]
    pub api_destination: Option<String>,
    /// An ECS task to run on Fargate (a scheduled job), instead of an API destination.
    #[serde(default)]
    pub task: Option<TaskTarget>,
    /// IAM role EventBridge assumes to invoke the API destination or run the task (it
    /// needs `ecs:RunTask`, and `iam:PassRole` on the task's roles).
    pub role_arn: String,
    /// Request body (JSON text), or for a task its overrides as ECS takes them
    /// (`{"containerOverrides": […]}`). Default: the scheduled event itself; none for a
    /// task with `command`.
    #[serde(default)]
    pub input: Option<String>,
    /// Extra HTTP headers (API destinations only).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// An ECS task a rule runs on Fargate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskTarget {
    /// `metadata.name` of the `Cluster` manifest the task runs in.
    pub cluster: String,
    /// The task definition family: a `Service` manifest's name (its family), or a family
    /// name. Always the family's ARN without a revision, so each run takes the latest
    /// ACTIVE revision: a deploy of the service needs no rule update.
    pub task_definition: String,
    /// Tasks started each time (1-10). Default 1.
    #[serde(default)]
    pub count: Option<u32>,
    /// Subnets, security groups and public IP of the tasks, as a service's `network`.
    pub network: NetworkSpec,
    /// The command to run instead of the image's, e.g. `[npm, run, job:cleanup]` (sent as
    /// the target's input, a container override).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// The container `command` is for. Default: the `Service` manifest's container (a
    /// family name needs it).
    #[serde(default)]
    pub container: Option<String>,
}

/// Most tasks one EventBridge ECS target starts at a time.
pub const MAX_TASK_COUNT: u32 = 10;

impl RuleSpec {
    /// The rule's name in EventBridge.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.rule_name.as_deref().unwrap_or(&meta.name)
    }

    /// The ID of the target mooring manages on the rule.
    pub fn target_id(&self) -> &str {
        self.target.id.as_deref().unwrap_or(TARGET_ID)
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        check_name(self.aws_name(meta), "/spec/ruleName", f);
        if let Some(id) = &self.target.id {
            check_name(id, "/spec/target/id", f);
        }
        if let Err(e) = check_schedule(&self.schedule_expression) {
            f.at("/spec/scheduleExpression", e);
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 512)
        {
            f.at("/spec/description", "at most 512 characters");
        }
        let t = &self.target;
        if !(t.role_arn.starts_with("arn:")
            && t.role_arn.contains(":iam::")
            && t.role_arn.contains(":role/"))
        {
            f.at(
                "/spec/target/roleArn",
                format!("`{}` is not an IAM role ARN", t.role_arn),
            );
        }
        if let Some(input) = &t.input
            && serde_json::from_str::<serde_json::Value>(input).is_err()
        {
            f.at("/spec/target/input", "must be JSON text");
        }
        match (&t.api_destination, &t.task) {
            (Some(_), Some(_)) | (None, None) => f.at(
                "/spec/target",
                "set exactly one of `apiDestination` and `task` (what the rule runs)",
            ),
            _ => {}
        }
        if let Some(task) = &t.task {
            if !t.headers.is_empty() {
                f.at("/spec/target/headers", "only for an `apiDestination` target");
            }
            if task.count.is_some_and(|c| !(1..=MAX_TASK_COUNT).contains(&c)) {
                f.at(
                    "/spec/target/task/count",
                    format!("EventBridge starts 1-{MAX_TASK_COUNT} tasks"),
                );
            }
            if task.command.is_some() && t.input.is_some() {
                f.at(
                    "/spec/target/task/command",
                    "set `command` or the target's `input`, not both (the command is sent as the input)",
                );
            }
        }
        check_tags(&self.tags, "/spec/tags", f);
    }
}

/// Validates an EventBridge schedule expression the way EventBridge does, which moto does
/// not: `rate(1 minute)` but `rate(5 minutes)`; `cron()` with six fields where exactly one
/// of day-of-month and day-of-week is `?`.
pub fn check_schedule(expr: &str) -> Result<(), String> {
    if let Some(inner) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
        let mut parts = inner.split_whitespace();
        let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "`{expr}` must be `rate(VALUE UNIT)`, e.g. `rate(15 minutes)`"
            ));
        };
        let n: u32 = n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{expr}`: the rate must be a whole number above 0"))?;
        let singular = ["minute", "hour", "day"];
        let plural = ["minutes", "hours", "days"];
        return match (n, singular.contains(&unit), plural.contains(&unit)) {
            (1, true, _) | (2.., _, true) => Ok(()),
            (1, _, true) => Err(format!(
                "`{expr}`: EventBridge wants the singular for 1: `rate(1 {})`",
                unit.trim_end_matches('s')
            )),
            (_, true, _) => Err(format!(
                "`{expr}`: EventBridge wants the plural: `rate({n} {unit}s)`"
            )),
            _ => Err(format!(
                "`{expr}`: the unit must be minute(s), hour(s) or day(s)"
            )),
        };
    }
    let Some(inner) = expr.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) else {
        return Err(format!("`{expr}` must be `cron(…)` or `rate(…)`"));
    };
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "`{expr}` has {} fields; EventBridge cron has six: minutes hours day-of-month month day-of-week year",
            fields.len()
        ));
    }
    let (dom, dow) = (fields[2], fields[4]);
    if (dom == "?") == (dow == "?") {
        return Err(format!(
            "`{expr}`: exactly one of day-of-month and day-of-week must be `?` (e.g. `cron(0 8 * * ? *)`)"
        ));
    }
    let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (1, 7), (1970, 2199)];
    let names = [
        "minutes",
        "hours",
        "day-of-month",
        "month",
        "day-of-week",
        "year",
    ];
    for (i, field) in fields.iter().enumerate() {
        if !cron_field_ok(field, ranges[i]) {
            return Err(format!(
                "`{expr}`: `{field}` is not a valid {} field",
                names[i]
            ));
        }
    }
    Ok(())
}

/// A cron field: `*`, `?`, numbers in range, lists, ranges, steps; names (JAN, MON), `L`,
/// `W` and `#` are accepted where EventBridge allows words.
fn cron_field_ok(field: &str, (lo, hi): (u32, u32)) -> bool {
    if field == "*" || field == "?" {
        return true;
    }
    field.split(',').all(|part| {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        if step.is_some_and(|s| s.parse::<u32>().map_or(true, |s| s == 0)) {
            return false;
        }
        if range == "*" {
            return true;
        }
        let value_ok = |v: &str| match v.parse::<u32>() {
            Ok(n) => (lo..=hi).contains(&n),
            // JAN-DEC, SUN-SAT, L, W, 1#2 and the like.
            Err(_) => !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '#'),
        };
        match range.split_once('-') {
            Some((a, b)) => value_ok(a) && value_ok(b),
            None => value_ok(range),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_like_eventbridge() {
        for ok in [
            "cron(0 8 * * ? *)",
            "cron(0/15 * * * ? *)",
            "cron(0 18 ? * MON-FRI *)",
            "cron(0 10 15 * ? *)",
            "rate(1 minute)",
            "rate(15 minutes)",
            "rate(30 minutes)",
            "rate(1 day)",
        ] {
            assert_eq!(check_schedule(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("cron(0 8 * * *)", "has 5 fields"),
            (
                "cron(0 8 * * * *)",
                "exactly one of day-of-month and day-of-week",
            ),
            ("cron(0 8 ? * ? *)", "exactly one of"),
            ("cron(61 8 * * ? *)", "`61` is not a valid minutes field"),
            ("cron(0 8 * 13 ? *)", "`13` is not a valid month field"),
            ("rate(1 minutes)", "singular for 1: `rate(1 minute)`"),
            ("rate(5 minute)", "plural: `rate(5 minutes)`"),
            ("rate(0 minutes)", "above 0"),
            ("rate(5 weeks)", "minute(s), hour(s) or day(s)"),
            ("every 5 minutes", "must be `cron(…)` or `rate(…)`"),
        ] {
            let err = check_schedule(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}

#[cfg(test)]
mod manifest_tests {
    use crate::manifest::load::load_with_stack;

    fn errors(text: &str) -> Vec<String> {
        match load_with_stack(&[("s.yaml".into(), text.into())]) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn schedule_manifests_are_checked_like_eventbridge() {
        let text = "apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata: {name: backend}
spec:
  apiKey: {headerName: 'x api key', secretId: 'arn:aws:ssm:eu-west-1:1:parameter/x'}
---
apiVersion: mooring.dev/v1alpha1
kind: ApiDestination
metadata: {name: jobs}
spec:
  connection: backend
  endpoint: http://api.example.com/jobs
  httpMethod: POST
  invocationRateLimitPerSecond: 500
---
apiVersion: mooring.dev/v1alpha1
kind: Rule
metadata: {name: sms}
spec:
  scheduleExpression: rate(1 minutes)
  target:
    id: 'target 0'
    apiDestination: jobs
    roleArn: arn:aws:iam::1:role/x
    input: '{not json'
";
        let errs = errors(text);
        for expected in [
            "s.yaml:5:12: spec.apiKey.headerName: must be an HTTP header name",
            "spec.apiKey.secretId: `arn:aws:ssm:eu-west-1:1:parameter/x` is not a Secrets Manager secret ARN",
            "s.yaml:12:3: spec.endpoint: `http://api.example.com/jobs` is not an https:// URL",
            "spec.invocationRateLimitPerSecond: 500 is outside 1-300",
            "s.yaml:20:3: spec.scheduleExpression: `rate(1 minutes)`: EventBridge wants the singular",
            "spec.target.input: must be JSON text",
            "spec.target.id: `target 0` is not a valid EventBridge name",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "missing {expected:?} in {errs:#?}"
            );
        }
    }

    #[test]
    fn schedule_references_must_resolve() {
        let text = "apiVersion: mooring.dev/v1alpha1
kind: ApiDestination
metadata: {name: jobs}
spec: {connection: nope, endpoint: 'https://api.example.com/jobs', httpMethod: POST}
---
apiVersion: mooring.dev/v1alpha1
kind: Rule
metadata: {name: sms}
spec:
  scheduleExpression: rate(15 minutes)
  target: {apiDestination: other, roleArn: 'arn:aws:iam::1:role/x'}
";
        let errs = errors(text);
        assert!(
            errs.iter()
                .any(|e| e.contains("spec.connection: no Connection named `nope`")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("spec.target.apiDestination: no ApiDestination named `other`")),
            "{errs:#?}"
        );
    }
}
