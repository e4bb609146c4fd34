//! `mooring iam-policy DIR`: the IAM policy exactly the given manifests need. Actions are
//! grouped per kind; writes are scoped to the resources' ARNs (built from their names),
//! or to mooring's ownership tag where AWS does not know the ARN in advance (security
//! groups); reads that AWS does not scope stay on `*`. Region and account are `*`: the
//! manifests do not name them.
//!
//! A unit test reads every resource module's source and checks that each AWS operation it
//! calls is in its kind's actions, so the policy cannot fall behind the code.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::manifest::{Kind, MANAGED_BY, ManifestSet, TAG_MANAGED_BY};

/// `arn:aws:<service>:*:*:<rest>`: region and account are `*`, the manifests do not name
/// them.
pub(crate) fn arn(service: &str, rest: &str) -> String {
    format!("arn:aws:{service}:*:*:{rest}")
}

/// Reads AWS does not scope to a resource: on `*`, in the `Read` statement. Nothing that
/// writes is here; writes AWS cannot scope have their own statements
/// ([`ON_ANY_RESOURCE`]).
fn unscoped(action: &str) -> bool {
    let (_, op) = action.split_once(':').unwrap_or(("", action));
    op.starts_with("Describe") || op.starts_with("List") || action == "sts:GetCallerIdentity"
}

/// A condition key and the value it must have.
type Condition = (&'static str, &'static str);

/// Writes whose resource AWS does not let a policy name, each in its own statement on `*`:
/// (action, Sid, the condition that narrows it, if any).
///
/// `ecs:RegisterTaskDefinition`: ECS authorises it before the revision (and so its ARN)
/// exists, so it cannot be scoped to the family's `task-definition/NAME:*`; it is allowed
/// only with mooring's ownership tag in the request (ECS's tag-on-create condition keys),
/// which mooring always sends.
const ON_ANY_RESOURCE: &[(&str, &str, Option<Condition>)] = &[(
    "ecs:RegisterTaskDefinition",
    "RegisterTaskDefinitionsAnyResource",
    Some(("aws:RequestTag/mooring.dev/managed-by", "mooring")),
)];

/// The statement [`ON_ANY_RESOURCE`] gives `action`, if it has one.
fn on_any_resource(action: &str) -> Option<Value> {
    let (_, sid, condition) = ON_ANY_RESOURCE.iter().find(|(a, _, _)| *a == action)?;
    let mut st = json!({"Sid": sid, "Effect": "Allow", "Action": [action], "Resource": ["*"]});
    if let Some((key, value)) = condition {
        st["Condition"] = json!({"StringEquals": {*key: value}});
    }
    Some(st)
}

fn statement(sid: String, actions: Vec<&str>, resources: Vec<String>) -> Value {
    let mut actions = actions;
    actions.sort_unstable();
    actions.dedup();
    let mut resources = resources;
    resources.sort();
    resources.dedup();
    json!({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources})
}

/// The policy document for `set`.
pub fn policy(set: &ManifestSet) -> Value {
    let mut statements = Vec::new();
    let present: BTreeSet<Kind> = set.metadata().into_iter().map(|(k, _)| k).collect();
    // Reads on `*`, one statement for all kinds.
    let reads: Vec<&str> = present
        .iter()
        .flat_map(|k| k.actions().iter().map(|a| (*k, *a)))
        .filter(|(_, a)| unscoped(a))
        .map(|(_, a)| a)
        .collect();
    if !reads.is_empty() {
        statements.push(statement("Read".into(), reads, vec!["*".into()]));
    }
    let mut any_resource: Vec<&str> = present
        .iter()
        .flat_map(|k| k.actions().iter().copied())
        .filter(|a| on_any_resource(a).is_some())
        .collect();
    any_resource.sort_unstable();
    any_resource.dedup();
    statements.extend(any_resource.into_iter().filter_map(on_any_resource));
    let writes = |kind: Kind| -> Vec<&str> {
        kind.actions()
            .iter()
            .copied()
            .filter(|a| {
                !unscoped(a)
                    && on_any_resource(a).is_none()
                    && !a.starts_with("iam:")
                    && !a.starts_with("secretsmanager:")
            })
            .collect()
    };
    for kind in &present {
        let kind = *kind;
        let resources = kind.visit(&mut IamResources(set));
        let w = writes(kind);
        if kind == Kind::SecurityGroup {
            // IDs are unknown until created: create only with the ownership tag, change
            // only what carries it.
            statements.push(json!({
                "Sid": "SecurityGroupCreate",
                "Effect": "Allow",
                "Action": ["ec2:CreateSecurityGroup"],
                "Resource": ["arn:aws:ec2:*:*:security-group/*"],
                "Condition": {"StringEquals": {format!("aws:RequestTag/{TAG_MANAGED_BY}"): MANAGED_BY}},
            }));
            // Tags only as part of creating a group: the role cannot tag someone else's
            // group as mooring's and then change it.
            statements.push(json!({
                "Sid": "SecurityGroupTagOnCreate",
                "Effect": "Allow",
                "Action": ["ec2:CreateTags"],
                "Resource": ["arn:aws:ec2:*:*:security-group/*"],
                "Condition": {"StringEquals": {
                    "ec2:CreateAction": "CreateSecurityGroup",
                    format!("aws:RequestTag/{TAG_MANAGED_BY}"): MANAGED_BY,
                }},
            }));
            statements.push(json!({
                "Sid": "SecurityGroupInVpc",
                "Effect": "Allow",
                "Action": ["ec2:CreateSecurityGroup"],
                "Resource": ["arn:aws:ec2:*:*:vpc/*"],
            }));
            let owned: Vec<&str> = w
                .into_iter()
                .filter(|a| *a != "ec2:CreateSecurityGroup")
                .collect();
            statements.push(json!({
                "Sid": "SecurityGroupOwned",
                "Effect": "Allow",
                "Action": owned,
                "Resource": ["arn:aws:ec2:*:*:security-group/*"],
                "Condition": {"StringEquals": {format!("aws:ResourceTag/{TAG_MANAGED_BY}"): MANAGED_BY}},
            }));
        } else if kind == Kind::SecurityGroupIngress && !resources.is_empty() {
            // Tags on rules only: tagging a group `managed-by: mooring` would hand it to
            // `SecurityGroupOwned` above (and its DeleteSecurityGroup).
            let (tags, rest): (Vec<&str>, Vec<&str>) =
                w.into_iter().partition(|a| *a == "ec2:CreateTags");
            statements.push(statement(format!("{kind}Write"), rest, resources));
            if !tags.is_empty() {
                statements.push(statement(
                    format!("{kind}TagRules"),
                    tags,
                    vec!["arn:aws:ec2:*:*:security-group-rule/*".into()],
                ));
            }
        } else if kind == Kind::ScalableTarget {
            // Two services, two kinds of ARN: the scalable targets (IDs AWS makes up, so
            // `scalable-target/*`) and the alarms target tracking makes for them, whose names
            // start with `TargetTracking-` and the service's resource ID.
            for (service, sid) in [
                ("application-autoscaling", format!("{kind}Write")),
                ("cloudwatch", format!("{kind}Alarms")),
            ] {
                let prefix = format!("{service}:");
                let actions: Vec<&str> = w
                    .iter()
                    .copied()
                    .filter(|a| a.starts_with(&prefix))
                    .collect();
                let arns: Vec<String> = resources
                    .iter()
                    .filter(|r| r.starts_with(&format!("arn:aws:{service}:")))
                    .cloned()
                    .collect();
                if !actions.is_empty() && !arns.is_empty() {
                    statements.push(statement(sid, actions, arns));
                }
            }
        } else if !w.is_empty() && !resources.is_empty() {
            statements.push(statement(format!("{kind}Write"), w, resources));
        }
    }
    // What other principals' resources mooring touches on the kinds' behalf.
    let mut pass_ecs: Vec<String> = set
        .services
        .iter()
        .flat_map(|s| {
            [
                s.spec.task_definition.execution_role_arn.clone(),
                s.spec.task_definition.task_role_arn.clone(),
            ]
        })
        .flatten()
        .collect();
    pass_ecs.sort();
    pass_ecs.dedup();
    if !pass_ecs.is_empty() {
        statements.push(json!({
            "Sid": "PassTaskRoles",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": pass_ecs,
            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        }));
    }
    let mut pass_events: Vec<String> = set
        .rules
        .iter()
        .map(|r| r.spec.target.role_arn.clone())
        .collect();
    pass_events.sort();
    pass_events.dedup();
    if !pass_events.is_empty() {
        statements.push(json!({
            "Sid": "PassRuleRoles",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": pass_events,
            "Condition": {"StringEquals": {"iam:PassedToService": "events.amazonaws.com"}},
        }));
    }
    let mut secrets: Vec<String> = set
        .services
        .iter()
        .flat_map(|s| s.spec.containers().flat_map(|(_, c)| c.secrets.values()))
        .filter_map(|r| r.secrets_manager_arn.clone())
        .map(|a| crate::kinds::service::secret_arn(&a))
        .collect();
    // A connection without `secretId` never reads a key.
    for id in set
        .connections
        .iter()
        .filter_map(|c| c.spec.auth().secret().id.map(str::to_string))
    {
        secrets.push(if id.starts_with("arn:") {
            id
        } else {
            // Secrets Manager appends six random characters to a secret's name.
            arn("secretsmanager", &format!("secret:{id}-??????"))
        });
    }
    secrets.sort();
    secrets.dedup();
    if !secrets.is_empty() {
        let mut read = vec!["secretsmanager:DescribeSecret"];
        if !set.connections.is_empty() {
            read.push("secretsmanager:GetSecretValue");
        }
        statements.push(statement("ReadReferencedSecrets".into(), read, secrets));
    }
    if !set.connections.is_empty() {
        statements.push(statement(
            "ConnectionSecrets".into(),
            vec![
                "secretsmanager:CreateSecret",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecret",
                "secretsmanager:DescribeSecret",
                "secretsmanager:DeleteSecret",
                "secretsmanager:TagResource",
            ],
            vec![arn("secretsmanager", "secret:events!connection/*")],
        ));
    }
    if !set.scalable_targets.is_empty() {
        statements.push(json!({
            "Sid": "AutoScalingServiceLinkedRole",
            "Effect": "Allow",
            "Action": ["iam:CreateServiceLinkedRole"],
            "Resource": ["*"],
            "Condition": {"StringEquals": {"iam:AWSServiceName": "ecs.application-autoscaling.amazonaws.com"}},
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// A kind's write resources.
struct IamResources<'a>(&'a ManifestSet);

impl crate::kinds::Visitor for IamResources<'_> {
    type Out = Vec<String>;
    fn visit<K: crate::kinds::Declared>(&mut self) -> Vec<String> {
        K::iam_resources(self.0)
    }
}

/// The statement leader election needs: read and conditionally write its lease item.
pub fn lease_statement(table: &str) -> Value {
    json!({
        "Sid": "LeaderLease",
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
        "Resource": [format!("arn:aws:dynamodb:*:*:table/{table}")],
    })
}

/// The statement the change-event consumer needs (`--events-queue`): read and delete
/// messages of that one queue.
pub fn events_statement(queue_url: &str) -> Value {
    json!({
        "Sid": "ChangeEvents",
        "Effect": "Allow",
        "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage"],
        "Resource": [crate::events::queue_arn(queue_url)],
    })
}

/// The statement the daemon needs for its SNS alert topics.
pub fn alert_statement(topics: &[String]) -> Option<Value> {
    (!topics.is_empty()).then(|| {
        json!({"Sid": "AlertTopics", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": topics})
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;

    /// Every source file of a kind's folder, and the shared modules with the kinds their
    /// calls serve: each operation a file names must be in (one of) its kinds' actions.
    fn sources() -> Vec<(String, String, Vec<Kind>)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut out = Vec::new();
        for kind in Kind::ALL {
            let dir = root.join("kinds").join(kind.module());
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.display().to_string(), text, vec![*kind]));
            }
        }
        let shared: [(&str, &[Kind]); 6] = [
            // Lookups every kind with network settings makes.
            (
                "kinds/network.rs",
                &[
                    Kind::Service,
                    Kind::LoadBalancer,
                    Kind::ReplicationGroup,
                    Kind::CacheSubnetGroup,
                    Kind::SecurityGroup,
                    Kind::TargetGroup,
                ],
            ),
            ("kinds/elbv2.rs", &[Kind::TargetGroup, Kind::LoadBalancer]),
            (
                "kinds/elasticache.rs",
                &[Kind::CacheSubnetGroup, Kind::ReplicationGroup],
            ),
            (
                "kinds/eventbridge.rs",
                &[Kind::Connection, Kind::ApiDestination, Kind::Rule],
            ),
            // The account ID, for the SSM parameter ARNs of service secrets.
            ("aws/mod.rs", &[Kind::Service]),
            ("kinds/mod.rs", &[]),
        ];
        for (file, kinds) in shared {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            out.push((file.to_string(), text, kinds.to_vec()));
        }
        out
    }

    /// The IAM service prefixes operations are scanned for: every prefix some kind's
    /// actions use (so a kind on a new AWS service is scanned without another edit), plus
    /// the daemon's own (the lease, alerts).
    fn services() -> BTreeSet<String> {
        let mut out: BTreeSet<String> = Kind::ALL
            .iter()
            .flat_map(|k| k.actions().iter())
            .filter_map(|a| a.split_once(':').map(|(s, _)| s.to_string()))
            .collect();
        out.extend(["dynamodb".to_string(), "sns".to_string()]);
        out
    }

    #[test]
    fn the_lease_statement_covers_the_lease_code() {
        let st = lease_statement("mooring-leases");
        let ops = operations(include_str!("lease.rs"));
        assert!(!ops.is_empty());
        for op in ops {
            assert!(
                st["Action"].as_array().unwrap().contains(&json!(op)),
                "lease.rs calls {op}"
            );
        }
        assert_eq!(
            st["Resource"],
            json!(["arn:aws:dynamodb:*:*:table/mooring-leases"])
        );
    }

    /// Every `"service:Operation"` string literal in a source file.
    fn operations(source: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for piece in source.split('"').skip(1).step_by(2) {
            if let Some((service, op)) = piece.split_once(':')
                && services().contains(service)
                && !op.is_empty()
                && op.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && op.chars().all(|c| c.is_ascii_alphanumeric())
            {
                out.insert(piece.to_string());
            }
        }
        out
    }

    #[test]
    fn every_operation_the_code_calls_is_in_its_kinds_policy() {
        let mut seen = 0;
        for (file, source, kinds) in sources() {
            for op in operations(&source) {
                seen += 1;
                if op == "sns:Publish" {
                    continue; // the daemon's alerts, not a kind: alert_statement
                }
                assert!(!kinds.is_empty(), "{file} calls {op} but serves no kind");
                for kind in &kinds {
                    // A module serving several kinds: the op must be in at least one.
                    if kinds.len() > 1 {
                        continue;
                    }
                    assert!(
                        kind.actions().contains(&op.as_str()),
                        "{file} calls {op}, which is not in the {kind} policy"
                    );
                }
                if kinds.len() > 1 {
                    assert!(
                        kinds.iter().any(|k| k.actions().contains(&op.as_str())),
                        "{file} calls {op}, which none of {kinds:?} allows"
                    );
                }
            }
        }
        assert!(seen > 60, "the scan found only {seen} operations");
    }

    #[test]
    fn the_policy_names_only_what_the_manifests_use_and_scopes_writes() {
        let text =
            "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: prd}\nspec: {}\n";
        let set = load_with_stack(&[("c.yaml".into(), text.into())]).unwrap();
        let p = policy(&set);
        let all: Vec<&str> = p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                s["Action"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
            })
            .collect();
        assert!(all.iter().all(|a| a.starts_with("ecs:")), "{all:?}");
        let write = p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "ClusterWrite")
            .unwrap();
        assert_eq!(write["Resource"], json!(["arn:aws:ecs:*:*:cluster/prd"]));
        assert!(
            !write["Action"]
                .as_array()
                .unwrap()
                .contains(&json!("ecs:DescribeClusters"))
        );
    }

    /// Each connection's secret, whatever its authorization, and no other, may be read.
    #[test]
    fn every_authorization_s_secret_is_readable_and_a_kept_one_is_not() {
        let doc = |name: &str, spec: &str| {
            format!(
                "apiVersion: mooring.dev/v1alpha1\nkind: Connection\nmetadata: {{name: {name}}}\nspec:\n  {spec}\n---\n"
            )
        };
        let text = [
            doc("a", "apiKey: {headerName: x-api-key, secretId: prd/api-key}"),
            doc("b", "basic: {username: u, secretId: prd/password}"),
            doc(
                "c",
                "oauth: {authorizationEndpoint: 'https://a.example.com/t', clientId: c, secretId: 'arn:aws:secretsmanager:eu-west-1:1:secret:prd/client-AbCdEf'}",
            ),
            doc("d", "basic: {username: kept}"),
        ]
        .concat();
        let set = load_with_stack(&[("c.yaml".into(), text)]).unwrap();
        let statements = policy(&set)["Statement"].as_array().unwrap().clone();
        assert_eq!(
            by_sid(&statements, "ReadReferencedSecrets")["Resource"],
            json!([
                "arn:aws:secretsmanager:*:*:secret:prd/api-key-??????",
                "arn:aws:secretsmanager:*:*:secret:prd/password-??????",
                "arn:aws:secretsmanager:eu-west-1:1:secret:prd/client-AbCdEf",
            ])
        );
    }

    fn example_policy(dir: &str) -> Vec<Value> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let set = crate::manifest::load::load_dir(&path).unwrap();
        policy(&set)["Statement"].as_array().unwrap().clone()
    }

    fn by_sid<'a>(statements: &'a [Value], sid: &str) -> &'a Value {
        statements
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no statement {sid}: {statements:#?}"))
    }

    /// Issue 15: the `Read` statement carried writes on `*`. Now it holds reads only; each
    /// write is on its resources' ARNs, and the one write AWS cannot scope has its own
    /// statement, narrowed by a condition.
    #[test]
    fn writes_are_scoped_and_only_reads_stay_in_read() {
        for dir in [
            "manifests/examples/small-api",
            "manifests/examples/salon-booking",
        ] {
            let statements = example_policy(dir);
            let read = by_sid(&statements, "Read");
            for action in read["Action"].as_array().unwrap() {
                let action = action.as_str().unwrap();
                let op = action.split_once(':').unwrap().1;
                assert!(
                    op.starts_with("Describe") || op.starts_with("List") || op.starts_with("Get"),
                    "{dir}: the Read statement allows {action} on *"
                );
            }
            // Every statement on `*` is a read, or says why and is narrowed by a condition.
            for st in &statements {
                if st["Resource"].as_array().unwrap().contains(&json!("*")) {
                    let sid = st["Sid"].as_str().unwrap();
                    assert!(
                        sid == "Read" || st.get("Condition").is_some(),
                        "{dir}: {sid} is on * without a condition"
                    );
                }
            }
            let register = by_sid(&statements, "RegisterTaskDefinitionsAnyResource");
            assert_eq!(register["Action"], json!(["ecs:RegisterTaskDefinition"]));
            assert_eq!(register["Resource"], json!(["*"]));
            assert_eq!(
                register["Condition"]["StringEquals"][format!("aws:RequestTag/{TAG_MANAGED_BY}")],
                MANAGED_BY
            );
            let service = by_sid(&statements, "ServiceWrite");
            assert!(
                !service["Action"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("ecs:RegisterTaskDefinition")),
                "{dir}: RegisterTaskDefinition is only in its own statement"
            );
            let targets = by_sid(&statements, "ScalableTargetWrite");
            assert_eq!(
                targets["Action"],
                json!([
                    "application-autoscaling:DeleteScalingPolicy",
                    "application-autoscaling:DeleteScheduledAction",
                    "application-autoscaling:PutScalingPolicy",
                    "application-autoscaling:PutScheduledAction",
                    "application-autoscaling:RegisterScalableTarget"
                ])
            );
            assert_eq!(
                targets["Resource"],
                json!(["arn:aws:application-autoscaling:*:*:scalable-target/*"])
            );
            // Listener certificates and attributes are written on the load balancer's
            // own listener and load balancer ARNs; their reads stay in `Read`.
            let lb = by_sid(&statements, "LoadBalancerWrite");
            for action in [
                "elasticloadbalancing:AddListenerCertificates",
                "elasticloadbalancing:RemoveListenerCertificates",
                "elasticloadbalancing:ModifyLoadBalancerAttributes",
            ] {
                assert!(
                    lb["Action"].as_array().unwrap().contains(&json!(action)),
                    "{dir}: {action} not in {lb:#}"
                );
            }
            assert!(
                lb["Resource"].as_array().unwrap().iter().all(|r| r
                    .as_str()
                    .unwrap()
                    .contains("/app/salon-alb/")
                    || r.as_str().unwrap().contains("/app/small-api")),
                "{dir}: {lb:#}"
            );
            let read = by_sid(&statements, "Read")["Action"]
                .as_array()
                .unwrap()
                .clone();
            for action in [
                "elasticloadbalancing:DescribeListenerCertificates",
                "elasticloadbalancing:DescribeLoadBalancerAttributes",
                "application-autoscaling:DescribeScheduledActions",
            ] {
                assert!(read.contains(&json!(action)), "{dir}: {action} not in Read");
            }
            let alarms = by_sid(&statements, "ScalableTargetAlarms");
            assert_eq!(
                alarms["Action"],
                json!(["cloudwatch:DeleteAlarms", "cloudwatch:PutMetricAlarm"])
            );
            for arn in alarms["Resource"].as_array().unwrap() {
                let arn = arn.as_str().unwrap();
                assert!(
                    arn.starts_with("arn:aws:cloudwatch:*:*:alarm:TargetTracking-service/")
                        && arn.ends_with("-*"),
                    "{dir}: {arn}"
                );
            }
        }
        let small = example_policy("manifests/examples/small-api");
        assert_eq!(
            by_sid(&small, "ScalableTargetAlarms")["Resource"],
            json!([
                "arn:aws:cloudwatch:*:*:alarm:TargetTracking-service/small-prd/small-api-AlarmHigh-*",
                "arn:aws:cloudwatch:*:*:alarm:TargetTracking-service/small-prd/small-api-AlarmLow-*"
            ])
        );
    }
}
