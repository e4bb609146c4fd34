//! Drift from AWS's own change events (`mooring run --events-queue URL`).
//!
//! CloudTrail records every management call; an EventBridge rule on the default bus
//! (`detail-type: AWS API Call via CloudTrail`) forwards those of the services mooring
//! manages to an SQS queue. The leader long-polls that queue, maps each event to the kinds
//! it touched ([`classify`], pure), and makes those kinds due at once — debounced by the
//! daemon, checked with the kinds they depend on — instead of at the next interval. The
//! polling interval stays the safety net (a lost event, a broken trail).
//!
//! Not re-checked: read-only calls, failed calls (`errorCode`), calls AWS services make on
//! their own behalf (ECS registering targets, the scaler changing a desired count), and
//! mooring's own writes, recognised by the `app/mooring` its SDK puts in every user agent,
//! which CloudTrail records as `userAgent`.
//!
//! A standby does not consume: messages it deleted would be lost to the leader.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

use crate::aws::{Aws, AwsError};
use crate::manifest::Kind;

/// The application name in mooring's SDK user agent (`app/mooring`).
pub const APP_NAME: &str = "mooring";

/// What one event means for mooring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Re-check these kinds.
    Recheck(BTreeSet<Kind>),
    /// mooring's own write.
    Own,
    /// Not a change mooring watches (read-only, failed, by an AWS service, another API,
    /// not a CloudTrail event).
    Ignored(&'static str),
}

/// Maps one EventBridge event (the SQS message body) to what it asks of mooring.
pub fn classify(event: &Value) -> Verdict {
    if event["detail-type"] != "AWS API Call via CloudTrail" {
        return Verdict::Ignored("not a CloudTrail API call");
    }
    let d = &event["detail"];
    if d["readOnly"] == true {
        return Verdict::Ignored("read-only");
    }
    if !d["errorCode"].is_null() {
        return Verdict::Ignored("failed call");
    }
    let agent = d["userAgent"].as_str().unwrap_or_default();
    if agent
        .split([' ', '(', ')', ','])
        .any(|part| part == format!("app/{APP_NAME}"))
    {
        return Verdict::Own;
    }
    if d["userIdentity"]["invokedBy"]
        .as_str()
        .is_some_and(|b| b.ends_with(".amazonaws.com"))
        || d["sourceIPAddress"]
            .as_str()
            .is_some_and(|s| s.ends_with(".amazonaws.com"))
    {
        return Verdict::Ignored("made by an AWS service");
    }
    let source = d["eventSource"].as_str().unwrap_or_default();
    let name = d["eventName"].as_str().unwrap_or_default();
    let arns = arns(&d["requestParameters"]);
    let kinds = kinds_of(source, name, &arns);
    if kinds.is_empty() {
        Verdict::Ignored("not a change to a kind mooring manages")
    } else {
        Verdict::Recheck(kinds)
    }
}

/// Every ARN-looking string in the request (tagging calls name their resource so).
fn arns(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) if s.starts_with("arn:") => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(arns).collect(),
        Value::Object(m) => m.values().flat_map(arns).collect(),
        _ => Vec::new(),
    }
}

/// Reads never change anything; CloudTrail marks them, but a pattern may still send them.
fn is_read(name: &str) -> bool {
    ["Describe", "List", "Get", "BatchGet", "Lookup"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The kinds a write `name` of the service `source` may have changed.
fn kinds_of(source: &str, name: &str, arns: &[String]) -> BTreeSet<Kind> {
    use Kind::*;
    let mut out = BTreeSet::new();
    if is_read(name) {
        return out;
    }
    let tagging = name.contains("Tag");
    let by_arn = |out: &mut BTreeSet<Kind>, rules: &[(&str, Kind)]| {
        for arn in arns {
            for (part, kind) in rules {
                if arn.contains(part) {
                    out.insert(*kind);
                }
            }
        }
    };
    match source {
        "ecs.amazonaws.com" if tagging => by_arn(
            &mut out,
            &[
                (":cluster/", Cluster),
                (":service/", Service),
                (":task-definition/", Service),
            ],
        ),
        "ecs.amazonaws.com" if name.contains("Cluster") => {
            out.insert(Cluster);
        }
        "ecs.amazonaws.com" if name.contains("Service") || name.contains("TaskDefinition") => {
            out.insert(Service);
        }
        "elasticloadbalancing.amazonaws.com" if tagging => by_arn(
            &mut out,
            &[
                (":targetgroup/", TargetGroup),
                (":loadbalancer/", LoadBalancer),
                (":listener/", LoadBalancer),
                (":listener-rule/", LoadBalancer),
            ],
        ),
        // ECS registers and deregisters targets all day: not a change to the group.
        "elasticloadbalancing.amazonaws.com" if name.ends_with("Targets") => {}
        "elasticloadbalancing.amazonaws.com" if name.contains("TargetGroup") => {
            out.insert(TargetGroup);
        }
        "elasticloadbalancing.amazonaws.com" => {
            out.insert(LoadBalancer);
        }
        "application-autoscaling.amazonaws.com" => {
            out.insert(ScalableTarget);
        }
        "elasticache.amazonaws.com" if tagging => by_arn(
            &mut out,
            &[
                (":replicationgroup:", ReplicationGroup),
                (":subnetgroup:", CacheSubnetGroup),
            ],
        ),
        "elasticache.amazonaws.com" if name.contains("CacheSubnetGroup") => {
            out.insert(CacheSubnetGroup);
        }
        "elasticache.amazonaws.com" if name.contains("ReplicationGroup") => {
            out.insert(ReplicationGroup);
        }
        "events.amazonaws.com" if tagging => by_arn(
            &mut out,
            &[
                (":rule/", Rule),
                (":connection/", Connection),
                (":api-destination/", ApiDestination),
            ],
        ),
        "events.amazonaws.com" if name.contains("ApiDestination") => {
            out.insert(ApiDestination);
        }
        "events.amazonaws.com" if name.contains("Connection") => {
            out.insert(Connection);
        }
        "events.amazonaws.com" if name.contains("Rule") || name.ends_with("Targets") => {
            out.insert(Rule);
        }
        // A parameter's new version is also a deploy of the services that read it.
        "ssm.amazonaws.com" if name.contains("Parameter") || tagging => {
            out.extend([ParameterSet, Service]);
        }
        "secretsmanager.amazonaws.com" => {
            out.extend([Service, Connection]);
        }
        "ec2.amazonaws.com" if name.contains("SecurityGroup") => {
            out.extend([SecurityGroup, SecurityGroupIngress]);
        }
        "ec2.amazonaws.com" if tagging => {
            // CreateTags names resource IDs, not ARNs: only security groups matter.
            out.extend([SecurityGroup, SecurityGroupIngress]);
        }
        "logs.amazonaws.com" if name != "PutLogEvents" && name != "CreateLogStream" => {
            out.insert(LogGroup);
        }
        // A push (PutImage) of a tag a service follows is a deploy.
        "ecr.amazonaws.com" if name == "PutImage" => {
            out.insert(Service);
        }
        "ecr.amazonaws.com" if !name.contains("Layer") => {
            out.insert(Repository);
        }
        "monitoring.amazonaws.com" if name.contains("Alarm") || tagging => {
            out.insert(Alarm);
        }
        _ => {}
    }
    out
}

/// What the consumer hands the daemon, and what it counted.
#[derive(Default)]
pub struct Rechecks {
    kinds: Mutex<BTreeSet<Kind>>,
    /// Woken when kinds were added.
    pub notify: Notify,
    stats: Mutex<Stats>,
}

/// Counts of the consumer, for `/status` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Messages received.
    pub received: u64,
    /// Events mapped to kinds to re-check.
    pub mapped: u64,
    /// mooring's own writes, ignored.
    pub own: u64,
    /// Other events ignored.
    pub ignored: u64,
    /// Re-checks handed to the daemon (one per batch of mapped events).
    pub rechecks: u64,
    /// When the last event arrived (RFC 3339).
    pub last_event: Option<String>,
    /// Unix seconds of the last event.
    #[serde(skip)]
    pub last_event_unix: Option<u64>,
}

impl Rechecks {
    /// The kinds to re-check now, emptied.
    pub fn take(&self) -> BTreeSet<Kind> {
        std::mem::take(&mut *self.kinds.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The consumer's counts.
    pub fn stats(&self) -> Stats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a batch of events and wakes the daemon when any asks for a re-check.
    pub fn record(&self, verdicts: &[Verdict]) {
        let mut kinds = BTreeSet::new();
        {
            let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            for v in verdicts {
                s.received += 1;
                match v {
                    Verdict::Recheck(k) => {
                        s.mapped += 1;
                        kinds.extend(k.iter().copied());
                    }
                    Verdict::Own => s.own += 1,
                    Verdict::Ignored(_) => s.ignored += 1,
                }
            }
            if !verdicts.is_empty() {
                let now = SystemTime::now();
                s.last_event = Some(crate::status::rfc3339(now));
                s.last_event_unix = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs());
            }
            if !kinds.is_empty() {
                s.rechecks += 1;
            }
        }
        if !kinds.is_empty() {
            self.kinds
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(kinds);
            self.notify.notify_one();
        }
    }
}

/// Where the consumer's counts are shown, as they change: `/status` (with a warning when a
/// leader has had no event for `quiet`: a broken trail) and `/metrics`. Not at the end of a
/// pass: with events, passes can be ten minutes apart.
pub struct Shown {
    /// `/status`.
    pub status: crate::status::StatusStore,
    /// `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// How long without an event is suspicious (`--events-quiet`).
    pub quiet: Duration,
}

impl Shown {
    /// Shows `rechecks`' counts; `reading_since`: since when (Unix seconds) this replica
    /// reads the queue, `None` while it does not (a standby: its silence says nothing about
    /// the trail). Silence counts from the last event or from then, whichever is later, so
    /// a replica that has just taken over does not call a healthy trail broken.
    pub fn show(&self, rechecks: &Rechecks, reading_since: Option<u64>) {
        let stats = rechecks.stats();
        self.metrics.record_change_events(&stats);
        let warning = reading_since.and_then(|reading| {
            let since = stats.last_event_unix.unwrap_or(0).max(reading);
            let silent =
                Duration::from_secs(crate::reconcile::daemon::unix_now().saturating_sub(since));
            (silent > self.quiet).then_some(silent)
        });
        let warning = warning.map(|silent| {
            format!(
                "no change event for {}: check the CloudTrail trail, the EventBridge rule and the queue's policy (drift is still found by polling)",
                humantime::format_duration(Duration::from_secs(silent.as_secs()))
            )
        });
        self.status
            .set_change_events(crate::status::ChangeEvents { stats, warning });
    }
}

/// Long-polls `queue` until `shutdown`, on the leader only, handing what it maps to
/// `rechecks` and showing its counts after every poll. `wait` is the long poll (below the
/// transport's response timeout).
pub async fn consume(
    aws: Aws,
    queue: String,
    wait: Duration,
    rechecks: Arc<Rechecks>,
    shown: Shown,
    lease: Option<crate::lease::Lease>,
    mut shutdown: watch::Receiver<bool>,
) {
    let wait_seconds = i32::try_from(wait.as_secs().clamp(1, 20)).unwrap_or(1);
    info!(queue = %queue, "reading change events");
    // Since when this replica reads the queue: reset on every takeover.
    let mut reading_since: Option<u64> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let leads = lease.as_ref().is_none_or(|l| l.is_leader());
        reading_since = match (leads, reading_since) {
            (false, _) => None,
            (true, None) => Some(crate::reconcile::daemon::unix_now()),
            (true, since) => since,
        };
        shown.show(&rechecks, reading_since);
        if !leads {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                _ = shutdown.changed() => return,
            }
        }
        let received = tokio::select! {
            r = aws
                .sqs
                .receive_message()
                .queue_url(&queue)
                .max_number_of_messages(10)
                .wait_time_seconds(wait_seconds)
                .send() => r,
            _ = shutdown.changed() => return,
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                let e = AwsError::from_sdk("sqs:ReceiveMessage", e);
                warn!(error = %e, "failed to read change events; polling goes on");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        if messages.is_empty() {
            continue;
        }
        let verdicts: Vec<Verdict> = messages
            .iter()
            .map(|m| {
                let body = m.body().unwrap_or_default();
                match serde_json::from_str::<Value>(body) {
                    Ok(event) => {
                        let v = classify(&event);
                        debug!(
                            source = %event["detail"]["eventSource"],
                            name = %event["detail"]["eventName"],
                            verdict = ?v,
                            "change event"
                        );
                        v
                    }
                    Err(_) => Verdict::Ignored("not JSON"),
                }
            })
            .collect();
        rechecks.record(&verdicts);
        shown.show(&rechecks, reading_since);
        let entries: Vec<_> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        if let Err(e) = aws
            .sqs
            .delete_message_batch()
            .queue_url(&queue)
            .set_entries(Some(entries))
            .send()
            .await
        {
            // They come back after the visibility timeout: a re-check more, no harm.
            warn!(error = %AwsError::from_sdk("sqs:DeleteMessageBatch", e), "failed to delete change events");
        }
    }
}

/// The ARN of the queue at `url` (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`, or an
/// endpoint's `http://HOST/ACCOUNT/NAME` with the region unknown: `*`).
pub fn queue_arn(url: &str) -> String {
    let path: Vec<&str> = url.split("://").nth(1).unwrap_or(url).split('/').collect();
    let region = path
        .first()
        .and_then(|host| host.strip_prefix("sqs."))
        .and_then(|h| h.split('.').next())
        .unwrap_or("*");
    match path.as_slice() {
        [_, account, name, ..] => format!("arn:aws:sqs:{region}:{account}:{name}"),
        _ => format!("arn:aws:sqs:{region}:*:*"),
    }
}

/// The services whose write calls the rule forwards (CloudTrail's `source` for each).
const SOURCES: &[&str] = &[
    "aws.ecs",
    "aws.elasticloadbalancing",
    "aws.application-autoscaling",
    "aws.elasticache",
    "aws.events",
    "aws.ssm",
    "aws.secretsmanager",
    "aws.ec2",
    "aws.logs",
    "aws.ecr",
    "aws.monitoring",
];

/// The rule's event pattern: write calls (not read-only) to [`SOURCES`], as CloudTrail
/// reports them.
pub fn event_pattern() -> Value {
    serde_json::json!({
        "source": SOURCES,
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"readOnly": [false]},
    })
}

/// Creates or updates the queue `name` (its policy lets only the rule `name` send) and the
/// rule `name` targeting it. Idempotent. Returns the queue URL.
pub async fn setup(aws: &Aws, name: &str) -> Result<String, AwsError> {
    let url = aws
        .sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("sqs:CreateQueue", e))?
        .queue_url
        .unwrap_or_default();
    let rule = aws
        .eventbridge
        .put_rule()
        .name(name)
        .description("CloudTrail write calls to the services mooring manages, for mooring run --events-queue")
        .event_pattern(event_pattern().to_string())
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("events:PutRule", e))?
        .rule_arn
        .unwrap_or_default();
    let attributes = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("sqs:GetQueueAttributes", e))?;
    let queue_arn = attributes
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_else(|| queue_arn(&url));
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "OnlyTheRule",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule}},
        }],
    });
    aws.sqs
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::Policy,
            policy.to_string(),
        )
        // A day is plenty: polling covers what is older.
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::MessageRetentionPeriod,
            "86400",
        )
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("sqs:SetQueueAttributes", e))?;
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("mooring")
        .arn(&queue_arn)
        .build()
        .map_err(|e| AwsError::invalid_request("events:PutTargets", e))?;
    let out = aws
        .eventbridge
        .put_targets()
        .rule(name)
        .targets(target)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("events:PutTargets", e))?;
    if out.failed_entry_count() > 0 {
        return Err(AwsError::invalid_request(
            "events:PutTargets",
            format!(
                "the rule refused the queue as its target ({} failed)",
                out.failed_entry_count()
            ),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(source: &str, name: &str, agent: &str, params: Value) -> Value {
        json!({
            "version": "0",
            "detail-type": "AWS API Call via CloudTrail",
            "source": format!("aws.{}", source.split('.').next().unwrap_or_default()),
            "detail": {
                "eventSource": source,
                "eventName": name,
                "userAgent": agent,
                "sourceIPAddress": "203.0.113.7",
                "userIdentity": {"type": "AssumedRole"},
                "requestParameters": params,
            }
        })
    }

    fn kinds(v: Verdict) -> Vec<Kind> {
        match v {
            Verdict::Recheck(k) => k.into_iter().collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn changes_map_to_the_kinds_they_touch() {
        let console = "console.amazonaws.com";
        let cases = [
            (
                "ecs.amazonaws.com",
                "UpdateService",
                json!({"cluster": "prd", "service": "api"}),
                vec![Kind::Service],
            ),
            (
                "ecs.amazonaws.com",
                "UpdateClusterSettings",
                json!({"cluster": "prd"}),
                vec![Kind::Cluster],
            ),
            (
                "ecs.amazonaws.com",
                "TagResource",
                json!({"resourceArn": "arn:aws:ecs:eu-west-1:1:cluster/prd"}),
                vec![Kind::Cluster],
            ),
            (
                "elasticloadbalancing.amazonaws.com",
                "ModifyTargetGroup",
                json!({}),
                vec![Kind::TargetGroup],
            ),
            (
                "elasticloadbalancing.amazonaws.com",
                "ModifyListener",
                json!({}),
                vec![Kind::LoadBalancer],
            ),
            (
                "elasticloadbalancing.amazonaws.com",
                "AddTags",
                json!({"resourceArns": ["arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/api/1"]}),
                vec![Kind::TargetGroup],
            ),
            (
                "application-autoscaling.amazonaws.com",
                "PutScalingPolicy",
                json!({}),
                vec![Kind::ScalableTarget],
            ),
            (
                "ssm.amazonaws.com",
                "PutParameter",
                json!({"name": "/app/db/port"}),
                vec![Kind::ParameterSet, Kind::Service],
            ),
            (
                "ec2.amazonaws.com",
                "AuthorizeSecurityGroupIngress",
                json!({}),
                vec![Kind::SecurityGroup, Kind::SecurityGroupIngress],
            ),
            (
                "events.amazonaws.com",
                "PutTargets",
                json!({}),
                vec![Kind::Rule],
            ),
            (
                "events.amazonaws.com",
                "UpdateConnection",
                json!({}),
                vec![Kind::Connection],
            ),
            (
                "ecr.amazonaws.com",
                "PutImage",
                json!({}),
                vec![Kind::Service],
            ),
            (
                "logs.amazonaws.com",
                "PutRetentionPolicy",
                json!({}),
                vec![Kind::LogGroup],
            ),
            (
                "monitoring.amazonaws.com",
                "PutMetricAlarm",
                json!({}),
                vec![Kind::Alarm],
            ),
        ];
        for (source, name, params, expected) in cases {
            let got = kinds(classify(&event(source, name, console, params)));
            let mut expected = expected;
            expected.sort();
            assert_eq!(got, expected, "{source} {name}");
        }
    }

    #[test]
    fn own_reads_failures_and_aws_services_are_not_rechecked() {
        let own = event(
            "ecs.amazonaws.com",
            "UpdateService",
            "aws-sdk-rust/1.3 os/linux lang/rust/1.95 app/mooring",
            json!({}),
        );
        assert_eq!(classify(&own), Verdict::Own);
        // Another app whose name merely starts the same.
        let other = event(
            "ecs.amazonaws.com",
            "UpdateService",
            "aws-cli/2 app/mooring-fork",
            json!({}),
        );
        assert!(matches!(classify(&other), Verdict::Recheck(_)));
        let mut read = event("ecs.amazonaws.com", "DescribeServices", "cli", json!({}));
        assert!(matches!(classify(&read), Verdict::Ignored(_)));
        read["detail"]["eventName"] = json!("UpdateService");
        read["detail"]["readOnly"] = json!(true);
        assert_eq!(classify(&read), Verdict::Ignored("read-only"));
        let mut failed = event("ecs.amazonaws.com", "UpdateService", "cli", json!({}));
        failed["detail"]["errorCode"] = json!("AccessDenied");
        assert_eq!(classify(&failed), Verdict::Ignored("failed call"));
        let mut scaler = event("ecs.amazonaws.com", "UpdateService", "cli", json!({}));
        scaler["detail"]["sourceIPAddress"] = json!("ecs.application-autoscaling.amazonaws.com");
        assert_eq!(
            classify(&scaler),
            Verdict::Ignored("made by an AWS service")
        );
        let targets = event(
            "elasticloadbalancing.amazonaws.com",
            "RegisterTargets",
            "cli",
            json!({}),
        );
        assert!(matches!(classify(&targets), Verdict::Ignored(_)));
        assert!(matches!(
            classify(&json!({"detail-type": "Scheduled Event"})),
            Verdict::Ignored(_)
        ));
    }

    #[test]
    fn queue_arns_from_urls() {
        assert_eq!(
            queue_arn("https://sqs.eu-west-1.amazonaws.com/123456789012/mooring-change-events"),
            "arn:aws:sqs:eu-west-1:123456789012:mooring-change-events"
        );
        assert_eq!(
            queue_arn("http://127.0.0.1:5000/123456789012/q"),
            "arn:aws:sqs:*:123456789012:q"
        );
    }

    #[test]
    fn the_rule_forwards_writes_of_every_service_the_classifier_maps() {
        let pattern = event_pattern();
        for source in SOURCES {
            let service = format!("{}.amazonaws.com", source.trim_start_matches("aws."));
            // Some write of each source maps to a kind.
            let mapped = [
                "Put",
                "Update",
                "Modify",
                "Create",
                "Authorize",
                "Tag",
                "PutImage",
                "PutMetricAlarm",
                "PutScalingPolicy",
                "ModifyReplicationGroup",
                "PutRetentionPolicy",
                "PutSecretValue",
                "PutParameter",
                "UpdateService",
                "PutRule",
            ]
            .iter()
            .any(|name| !kinds_of(&service, name, &[]).is_empty());
            assert!(mapped, "{source}: no write maps to a kind");
        }
        assert_eq!(pattern["detail"]["readOnly"], serde_json::json!([false]));
    }

    #[test]
    fn a_batch_wakes_the_daemon_once_with_every_kind() {
        let r = Rechecks::default();
        r.record(&[
            Verdict::Recheck([Kind::Service].into()),
            Verdict::Own,
            Verdict::Recheck([Kind::TargetGroup].into()),
            Verdict::Ignored("read-only"),
        ]);
        assert_eq!(
            r.take().into_iter().collect::<Vec<_>>(),
            [Kind::TargetGroup, Kind::Service]
        );
        assert!(r.take().is_empty());
        let s = r.stats();
        assert_eq!(
            (s.received, s.mapped, s.own, s.ignored, s.rechecks),
            (4, 2, 1, 1, 1)
        );
        assert!(s.last_event.is_some());
        r.record(&[Verdict::Own]);
        assert_eq!(r.stats().rechecks, 1, "own writes trigger no re-check");
    }
}
