//! End-to-end runs against moto's server mode, through the real AWS SDK clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::ContainerDefinition;
use common::{Emulator, describe_service, edit, emulator, fixture_copy, stderr, stdout};
use mooring::kinds::reconcilers;
use mooring::manifest::{Kind, load_dir};
use mooring::reconcile::{self, Action, Category, Context, Cx, PassCache, PassReport};

async fn plan(emu: &Emulator, dir: &Path) -> (PassReport, mooring::aws::Aws) {
    let set = load_dir(dir).expect("valid manifests");
    let aws = emu.aws().await;
    let ctx = Context::new(aws.clone());
    let recs = reconcilers(&set);
    let cache = PassCache::default();
    let cx = Cx {
        ctx: &ctx,
        set: &set,
        cache: &cache,
    };
    let planned = reconcile::plan_all(&cx, &recs).await;
    (reconcile::report_plan(&set.revision, &recs, &planned), aws)
}

async fn apply(emu: &Emulator, dir: &Path) -> (PassReport, mooring::aws::Aws) {
    let set = load_dir(dir).expect("valid manifests");
    let aws = emu.aws().await;
    let ctx = Context::new(aws.clone());
    let report = reconcile::apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(!report.has_errors(), "apply failed: {report:#?}");
    (report, aws)
}

const WRITES: [&str; 6] = [
    "CreateCluster",
    "UpdateCluster",
    "RegisterTaskDefinition",
    "CreateService",
    "UpdateService",
    "TagResource",
];

/// The report of the fixture's one service.
fn service_report(report: &PassReport) -> &reconcile::ResourceReport {
    report
        .resources
        .iter()
        .find(|r| r.kind == Kind::Service)
        .expect("a service in the report")
}

fn writes(aws: &mooring::aws::Aws) -> u64 {
    WRITES.iter().map(|op| aws.calls.count("ECS", op)).sum()
}

/// The service and the task definition it runs, as another client sees them.
async fn describe_api(
    emu: &Emulator,
) -> (
    aws_sdk_ecs::types::Service,
    aws_sdk_ecs::types::TaskDefinition,
) {
    describe_service(emu, "test", "api").await
}

/// Out of band, as another client would: registers a copy of the running task definition
/// with another image and points the service at it (and at `desired_count`, if given).
/// Returns the new revision's ARN.
async fn swap_image(
    emu: &Emulator,
    cluster: &str,
    service: &str,
    image: &str,
    desired_count: Option<i32>,
) -> String {
    let ecs = emu.ecs().await;
    let (_, td) = describe_service(emu, cluster, service).await;
    let mut container: ContainerDefinition = td.container_definitions()[0].clone();
    container.image = Some(image.into());
    let registered = ecs
        .register_task_definition()
        .family(td.family().unwrap_or_default())
        .set_cpu(td.cpu().map(str::to_string))
        .set_memory(td.memory().map(str::to_string))
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .set_execution_role_arn(td.execution_role_arn().map(str::to_string))
        .set_task_role_arn(td.task_role_arn().map(str::to_string))
        .container_definitions(container)
        .send()
        .await
        .expect("register task definition");
    let arn = registered
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("arn")
        .to_string();
    ecs.update_service()
        .cluster(cluster)
        .service(service)
        .task_definition(&arn)
        .set_desired_count(desired_count)
        .send()
        .await
        .expect("update service");
    arn
}

/// Registers a copy of the service's revision with `edit` applied (every container and the
/// task-level fields mooring compares), and moves the service to it, as someone would by
/// hand. Returns the new revision's ARN.
async fn swap_task_definition(
    emu: &Emulator,
    cluster: &str,
    service: &str,
    edit: impl FnOnce(&mut aws_sdk_ecs::types::TaskDefinition),
) -> String {
    let ecs = emu.ecs().await;
    let (_, mut td) = describe_service(emu, cluster, service).await;
    edit(&mut td);
    let registered = ecs
        .register_task_definition()
        .family(td.family().unwrap_or_default())
        .set_cpu(td.cpu().map(str::to_string))
        .set_memory(td.memory().map(str::to_string))
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .set_execution_role_arn(td.execution_role_arn().map(str::to_string))
        .set_task_role_arn(td.task_role_arn().map(str::to_string))
        .set_container_definitions(Some(td.container_definitions().to_vec()))
        .set_ephemeral_storage(td.ephemeral_storage().cloned())
        .set_runtime_platform(td.runtime_platform().cloned())
        .send()
        .await
        .expect("register task definition");
    let arn = registered
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("arn")
        .to_string();
    ecs.update_service()
        .cluster(cluster)
        .service(service)
        .task_definition(&arn)
        .send()
        .await
        .expect("update service");
    arn
}

fn image_of(td: &aws_sdk_ecs::types::TaskDefinition) -> String {
    td.container_definitions()[0]
        .image()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn creates_from_nothing_then_plans_no_changes() {
    let (_guard, emu) = emulator().await;
    let dir = common::root().join("tests/fixtures/basic");

    let (report, _) = plan(emu, &dir).await;
    let actions: Vec<_> = report
        .resources
        .iter()
        .map(|r| (r.kind, r.action))
        .collect();
    assert_eq!(
        actions,
        vec![
            (Kind::Cluster, Action::Create),
            (Kind::ParameterSet, Action::Create),
            (Kind::Service, Action::Create)
        ]
    );

    let (report, aws) = apply(emu, &dir).await;
    assert!(report.resources.iter().all(|r| r.applied));
    assert_eq!(aws.calls.count("ECS", "RegisterTaskDefinition"), 1);
    assert_eq!(aws.calls.count("ECS", "CreateService"), 1);

    let (svc, td) = describe_api(emu).await;
    assert_eq!(svc.desired_count(), 2);
    assert_eq!(svc.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    assert!(
        svc.enable_execute_command(),
        "set after creation despite moto ignoring it on create"
    );
    let dc = svc
        .deployment_configuration()
        .expect("deployment configuration");
    assert_eq!(dc.minimum_healthy_percent(), Some(50));
    assert!(
        dc.deployment_circuit_breaker()
            .is_some_and(|c| c.enable() && c.rollback())
    );
    let tags: Vec<_> = svc
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        .collect();
    assert!(
        tags.contains(&("mooring.dev/managed-by", "mooring")),
        "{tags:?}"
    );
    assert!(
        tags.contains(&("mooring.dev/resource", "Service/api")),
        "{tags:?}"
    );

    // Subnets were looked up in the default VPC.
    let ec2 = aws_sdk_ec2::Client::new(&emu.sdk_config().await);
    let vpc = ec2.describe_vpcs().send().await.unwrap();
    let default_vpc = vpc
        .vpcs()
        .iter()
        .find(|v| v.is_default() == Some(true))
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_string();
    let subnets = ec2.describe_subnets().send().await.unwrap();
    let mut expected: Vec<String> = subnets
        .subnets()
        .iter()
        .filter(|s| s.vpc_id() == Some(default_vpc.as_str()))
        .filter_map(|s| s.subnet_id().map(str::to_string))
        .collect();
    expected.sort();
    let mut got = svc
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .map(|a| a.subnets().to_vec())
        .unwrap_or_default();
    got.sort();
    assert_eq!(got, expected);

    // The task definition carries what the manifest says, secrets as ARNs.
    assert_eq!(image_of(&td), "nginx:1.27");
    assert_eq!(td.cpu(), Some("256"));
    let c = &td.container_definitions()[0];
    assert_eq!(c.name(), Some("app"));
    assert_eq!(
        c.secrets()[0].value_from(),
        "arn:aws:ssm:us-east-1:123456789012:parameter/test/config/db/host"
    );
    assert_eq!(
        c.health_check().map(|h| h.command().to_vec()),
        Some(vec![
            "CMD-SHELL".to_string(),
            "curl -f 'http://localhost:3000/api/health' || exit 1".to_string()
        ])
    );

    // Second plan: nothing to do, read calls only, one DescribeServices for the batch.
    let (report, aws) = plan(emu, &dir).await;
    assert!(!report.has_changes(), "{report:#?}");
    assert!(!report.has_errors());
    assert_eq!(writes(&aws), 0);
    assert_eq!(aws.calls.count("ECS", "DescribeServices"), 1);
    assert_eq!(aws.calls.count("ECS", "DescribeClusters"), 1);
    let rollout = report
        .resources
        .iter()
        .find(|r| r.kind == Kind::Service)
        .and_then(|r| r.rollout.clone())
        .expect("rollout");
    assert_eq!((rollout.running, rollout.desired), (2, 2));
}

#[tokio::test]
async fn out_of_band_changes_are_named_and_reverted() {
    let (_guard, emu) = emulator().await;
    let dir = common::root().join("tests/fixtures/basic");
    apply(emu, &dir).await;
    let (_, good) = describe_api(emu).await;

    // Another client registers a revision with another image, points the service at it and
    // changes the desired count.
    let other_arn = swap_image(emu, "test", "api", "nginx:hacked", Some(5)).await;

    let (report, aws) = plan(emu, &dir).await;
    let svc = service_report(&report);
    assert_eq!(
        (svc.kind, svc.name.as_str(), svc.action),
        (Kind::Service, "api", Action::Update)
    );
    let fields: Vec<(&str, String, String)> = svc
        .changes
        .iter()
        .map(|c| (c.field.as_str(), c.live.to_string(), c.desired.to_string()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("desiredCount", "5".to_string(), "2".to_string()),
            (
                "taskDefinition.container.image",
                "\"nginx:hacked\"".to_string(),
                "\"nginx:1.27\"".to_string()
            ),
        ]
    );
    assert_eq!(writes(&aws), 0, "plan must not write");

    let (_, aws) = apply(emu, &dir).await;
    assert_eq!(aws.calls.count("ECS", "UpdateService"), 1);
    // The revision it ran before is identical to the manifest: reused, not duplicated.
    assert_eq!(aws.calls.count("ECS", "RegisterTaskDefinition"), 0);
    let (svc, td) = describe_api(emu).await;
    assert_eq!(image_of(&td), "nginx:1.27");
    assert_eq!(svc.desired_count(), 2);
    assert_ne!(svc.task_definition(), Some(other_arn.as_str()));
    assert_eq!(svc.task_definition(), good.task_definition_arn());
    let (report, _) = plan(emu, &dir).await;
    assert!(!report.has_changes(), "{report:#?}");
}

#[tokio::test]
async fn a_new_image_registers_one_revision_and_updates_once() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    apply(emu, dir.path()).await;
    let (_, before) = describe_api(emu).await;

    edit(
        &dir.path().join("service.yaml"),
        "image: nginx:1.27",
        "image: nginx:1.28",
    );
    let (report, aws) = apply(emu, dir.path()).await;
    let changed: Vec<&str> = service_report(&report)
        .changes
        .iter()
        .map(|c| c.field.as_str())
        .collect();
    assert_eq!(changed, vec!["taskDefinition.container.image"]);
    assert_eq!(aws.calls.count("ECS", "RegisterTaskDefinition"), 1);
    assert_eq!(aws.calls.count("ECS", "UpdateService"), 1);
    assert_eq!(aws.calls.count("ECS", "CreateService"), 0);
    assert_eq!(aws.calls.count("ECS", "TagResource"), 0);

    let (_, after) = describe_api(emu).await;
    assert_eq!(image_of(&after), "nginx:1.28");
    assert_eq!(after.revision(), before.revision() + 1);
    let revisions = emu
        .ecs()
        .await
        .list_task_definitions()
        .family_prefix("api")
        .send()
        .await
        .unwrap();
    assert_eq!(revisions.task_definition_arns().len(), 2);

    // Applying the same manifests again writes nothing.
    let (report, aws) = apply(emu, dir.path()).await;
    assert!(!report.has_changes());
    assert_eq!(writes(&aws), 0);
}

#[tokio::test]
async fn invalid_manifests_touch_nothing() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let file = dir.path().join("service.yaml");
    edit(
        &file,
        "      image: nginx:1.27\n",
        "      image: nginx:1.27\n      imagePullPolicy: always\n",
    );
    edit(&file, "desiredCount: 2", "desiredCount: -2");
    let text = std::fs::read_to_string(&file).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let path = dir.path().to_str().unwrap();

    for cmd in ["validate", "plan", "apply"] {
        let out = emu.mooring(&[cmd, path]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", stderr(&out));
        let err = stderr(&out);
        let unknown = format!(
            "{}:{}:7: spec.taskDefinition.container.imagePullPolicy: unknown field `imagePullPolicy`",
            file.display(),
            line_of("imagePullPolicy")
        );
        assert!(
            err.contains(&unknown),
            "{cmd}: expected {unknown:?} in {err}"
        );
        let negative = format!(
            "{}:{}:3: spec.desiredCount:",
            file.display(),
            line_of("desiredCount")
        );
        assert!(
            err.contains(&negative),
            "{cmd}: expected {negative:?} in {err}"
        );
    }
    let clusters = emu.ecs().await.list_clusters().send().await.unwrap();
    assert!(clusters.cluster_arns().is_empty(), "nothing may be created");
}

#[tokio::test]
async fn example_stacks_converge_and_every_kind_is_kept_in_place() {
    let (_guard, emu) = emulator().await;
    // Two stacks in one account: each applies and plans on its own and neither takes the
    // other's resources for its own.
    let examples = "manifests/examples/salon-booking";
    let small = "manifests/examples/small-api";
    for dir in [examples, small] {
        let out = emu.mooring(&["validate", dir]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }

    // What people set by hand, then one apply from an empty emulator.
    let seeded = emu.seed_examples();
    assert!(
        seeded.contains("seeded SecureString /salon/prd/secrets/database-password"),
        "{seeded}"
    );
    let out = emu.mooring(&["plan", examples]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stdout(&out).contains("Service/salon-backend: create"));
    assert!(
        stdout(&out).contains(
            "  preDeploy: will run \"npm run migration:run\" before the service is created"
        ),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains(
            "+ taskDefinition.container.environment.REDIS_HOST = \"(known after apply)\""
        ),
        "{}",
        stdout(&out)
    );
    for dir in [examples, small] {
        let out = emu.mooring(&["apply", dir]);
        let applied = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{applied}{}", stderr(&out));
        assert!(applied.contains("0 failed"), "{applied}");
    }

    let mut total = 0;
    for dir in [examples, small] {
        let out = emu.mooring(&["plan", dir, "--output", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("plan json");
        let resources = json["resources"].as_array().unwrap();
        total += resources.len();
        assert!(resources.iter().all(|r| r["action"] == "none"));
        // Every call of the plan is counted for the kind whose plan made it, but the one
        // GetCallerIdentity asked before anything (who and where).
        let sum = |key: &str| -> u64 {
            json[key]
                .as_object()
                .unwrap_or_else(|| panic!("{key} in {json}"))
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum()
        };
        assert_eq!(sum("awsCallsByKind") + 1, sum("awsCalls"), "{json}");
        assert_eq!(json["awsCalls"]["STS.GetCallerIdentity"], 1, "{json}");
        for r in resources {
            let kind = r["kind"].as_str().unwrap();
            assert!(
                json["awsCallsByKind"][kind].as_u64() > Some(0),
                "{kind}: {json}"
            );
        }
    }
    // 26, the Redis subnet group, the backend's LogGroup, its image Repository, its
    // two alarms and the nightly job's Rule (an ECS task target).
    assert_eq!(total, 32);

    // The values read `from:` the live Redis and ALB were filled in by that one apply.
    let config = emu.sdk_config().await;
    let redis = aws_sdk_elasticache::Client::new(&config)
        .describe_replication_groups()
        .replication_group_id("salon-redis")
        .send()
        .await
        .unwrap();
    let address = redis.replication_groups()[0].node_groups()[0]
        .primary_endpoint()
        .and_then(|e| e.address())
        .unwrap()
        .to_string();
    let (_, td) = describe_service(emu, "salon-prd", "salon-backend").await;
    assert!(
        td.container_definitions()[0]
            .environment()
            .iter()
            .any(|kv| kv.name() == Some("REDIS_HOST") && kv.value() == Some(address.as_str())),
        "{td:?}"
    );
    let alb = aws_sdk_elasticloadbalancingv2::Client::new(&config)
        .describe_load_balancers()
        .names("salon-alb")
        .send()
        .await
        .unwrap();
    let dns = alb.load_balancers()[0].dns_name().unwrap().to_string();
    let reset = aws_sdk_eventbridge::Client::new(&config)
        .describe_api_destination()
        .name("salon-reset-queue")
        .send()
        .await
        .unwrap();
    assert_eq!(
        reset.invocation_endpoint(),
        Some(format!("https://{dns}/salons/reset-queue").as_str())
    );

    // Another client changes one thing of each kind.
    let events = aws_sdk_eventbridge::Client::new(&config);
    events
        .disable_rule()
        .name("salon-sms-every-minute")
        .send()
        .await
        .unwrap();
    events
        .put_rule()
        .name("salon-sms-every-15-minutes")
        .schedule_expression("rate(20 minutes)")
        .send()
        .await
        .unwrap();
    let scaling = aws_sdk_applicationautoscaling::Client::new(&config);
    let policies = scaling
        .describe_scaling_policies()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    let cpu = policies
        .scaling_policies()
        .iter()
        .find(|p| {
            p.resource_id() == "service/salon-prd/salon-backend"
                && p.policy_name() == "mooring-salon-backend-cpu"
        })
        .expect("the backend's CPU policy")
        .clone();
    let mut tracking = cpu
        .target_tracking_scaling_policy_configuration()
        .unwrap()
        .clone();
    tracking.target_value = 50.0;
    scaling
        .put_scaling_policy()
        .policy_name(cpu.policy_name())
        .service_namespace(cpu.service_namespace().clone())
        .resource_id(cpu.resource_id())
        .scalable_dimension(cpu.scalable_dimension().clone())
        .policy_type(cpu.policy_type().clone())
        .target_tracking_scaling_policy_configuration(tracking)
        .send()
        .await
        .unwrap();
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let tg = elb
        .describe_target_groups()
        .names("salon-backend")
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    elb.modify_target_group()
        .target_group_arn(&tg)
        .health_check_path("/health")
        .send()
        .await
        .unwrap();
    let ssm = aws_sdk_ssm::Client::new(&config);
    ssm.put_parameter()
        .name("/salon/prd/database/port")
        .value("6543")
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let cache = aws_sdk_elasticache::Client::new(&config);
    cache
        .modify_replication_group()
        .replication_group_id("salon-redis")
        .cache_node_type("cache.t3.medium")
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
    aws_sdk_cloudwatchlogs::Client::new(&config)
        .put_retention_policy()
        .log_group_name("/ecs/salon-backend")
        .retention_in_days(7)
        .send()
        .await
        .unwrap();
    aws_sdk_ecr::Client::new(&config)
        .put_image_tag_mutability()
        .repository_name("salon/backend")
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();
    aws_sdk_cloudwatch::Client::new(&config)
        .put_metric_alarm()
        .alarm_name("salon-backend-cpu")
        .namespace("AWS/ECS")
        .metric_name("CPUUtilization")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("ClusterName")
                .value("salon-prd")
                .build(),
        )
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("ServiceName")
                .value("salon-backend")
                .build(),
        )
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(60)
        .evaluation_periods(3)
        .threshold(95.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .alarm_description("salon-backend CPU above 85 % for 3 minutes")
        .alarm_actions("arn:aws:sns:eu-west-1:123456789012:salon-prd-alerts")
        .ok_actions("arn:aws:sns:eu-west-1:123456789012:salon-prd-alerts")
        .send()
        .await
        .unwrap();
    // The scaler (or a person) changes the desired count: not drift under autoscaling.
    emu.ecs()
        .await
        .update_service()
        .cluster("salon-prd")
        .service("salon-backend")
        .desired_count(7)
        .send()
        .await
        .unwrap();

    let out = emu.mooring(&["plan", examples]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for expected in [
        "Rule/salon-sms-every-minute: update\n  ~ state: \"DISABLED\" -> \"ENABLED\"",
        "Rule/salon-sms-every-15-minutes: update\n  ~ scheduleExpression: \"rate(20 minutes)\" -> \"rate(15 minutes)\"",
        "ScalableTarget/salon-backend: update\n  ~ policies.mooring-salon-backend-cpu.targetValue: 50.0 -> 80.0",
        "TargetGroup/salon-backend: update\n  ~ healthCheck.path: \"/health\" -> \"/api/health\"",
        "ParameterSet/salon-prd: update\n  ~ parameters./salon/prd/database/port.value: \"6543\" -> \"5432\"",
        "ReplicationGroup/salon-redis: update\n  ~ nodeType: \"cache.t3.medium\" -> \"cache.t2.small\"",
        "LogGroup/salon-backend-logs: update\n  ~ retentionInDays: 7 -> 30",
        "Repository/salon-backend: update\n  ~ imageTagMutability: \"MUTABLE\" -> \"IMMUTABLE\"",
        "Alarm/salon-backend-cpu: update\n  ~ threshold: 95.0 -> 85.0\n",
        "Alarm/salon-backend-5xx: in sync",
        // The backend reads the port: its new version (set by hand) is a deploy.
        "Service/salon-backend: update",
        "(new version of secret DATABASE_PORT)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let out = emu.mooring(&["apply", examples]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = emu.mooring(&["plan", examples]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let (svc, _) = describe_service(emu, "salon-prd", "salon-backend").await;
    assert_eq!(svc.desired_count(), 7, "apply never fights the scaler");

    // No hand-set value shows in any output: read them as another client would.
    let mut hidden = Vec::new();
    for name in [
        "/salon/prd/secrets/database-password",
        "/salon/prd/secrets/jwt-access-secret",
    ] {
        let p = ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .unwrap();
        hidden.push(p.parameter().unwrap().value().unwrap().to_string());
    }
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let key = sm
        .get_secret_value()
        .secret_id("salon/prd/scheduler-api-key")
        .send()
        .await
        .unwrap();
    hidden.push(key.secret_string().unwrap().to_string());
    for args in [
        vec!["plan", examples],
        vec!["plan", examples, "--output", "json"],
        vec!["apply", examples, "--output", "json"],
    ] {
        let out = emu.mooring(&args);
        for secret in &hidden {
            assert!(
                !stdout(&out).contains(secret.as_str()) && !stderr(&out).contains(secret.as_str())
            );
        }
    }
}

#[tokio::test]
async fn daemon_corrects_drift_serves_status_and_stops_on_sigterm() {
    let (_guard, emu) = emulator().await;
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut daemon = common::KillOnDrop(
        emu.mooring_command(&[
            "run",
            "tests/fixtures/basic",
            "--interval",
            "1s",
            "--listen",
            &listen,
        ])
        .spawn()
        .expect("start daemon"),
    );
    let child = &mut daemon.0;

    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !cond() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for("readyz", &|| {
        common::http(port, "GET", "/readyz")
            .map(|(s, _)| s == 200)
            .unwrap_or(false)
    });
    let (code, body) = common::http(port, "GET", "/healthz").unwrap();
    assert_eq!(code, 200, "{body}");
    let status = |path: &str| -> serde_json::Value {
        let (_, body) = common::http(port, "GET", path).unwrap();
        serde_json::from_str(&body).unwrap_or_default()
    };
    let s = status("/status");
    assert_eq!(s["mode"], "enforce");
    assert!(s["revision"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(s["resources"].as_array().unwrap().len(), 3);

    // Out-of-band change: corrected on a later pass, and the diff shows in /status.
    emu.ecs()
        .await
        .update_service()
        .cluster("test")
        .service("api")
        .desired_count(7)
        .send()
        .await
        .unwrap();
    wait_for("drift to be recorded", &|| {
        status("/status/Service/api")["lastDrifted"].is_string()
    });
    let r = status("/status/Service/api");
    assert_eq!(r["lastDiff"][0]["field"], "desiredCount");
    assert_eq!(r["lastDiff"][0]["live"], 7);
    assert_eq!(r["lastDiff"][0]["desired"], 2);
    assert_eq!(r["state"], "in_sync");
    let (svc, _) = describe_api(emu).await;
    assert_eq!(svc.desired_count(), 2);

    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn parameter_sets_manage_values_and_require_hand_set_secrets() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    std::fs::write(
        dir.path().join("parameters.yaml"),
        "apiVersion: mooring.dev/v1alpha1
kind: ParameterSet
metadata: {name: app}
spec:
  path: /test/app
  parameters:
    db/host: db.internal
    db/port: 5432
  required:
    db/password: SecureString
",
    )
    .unwrap();
    edit(
        &dir.path().join("service.yaml"),
        "ssmParameter: /test/config/db/host",
        "ssmParameter: /test/app/db/password",
    );

    // The hand-set secret is missing: values are written, the service waits for it.
    let set = load_dir(dir.path()).unwrap();
    let ctx = Context::new(emu.aws().await);
    let report = reconcile::apply_all(&ctx, &set, &reconcilers(&set), true).await;
    let by_kind = |k: Kind| {
        report
            .resources
            .iter()
            .find(|r| r.kind == k)
            .unwrap()
            .clone()
    };
    let params = by_kind(Kind::ParameterSet);
    assert!(params.applied);
    let err = params.error().expect("missing required parameter");
    assert_eq!(err.category, Category::Requirement);
    assert!(
        err.message.contains("/test/app/db/password is missing"),
        "{}",
        err.message
    );
    let svc = by_kind(Kind::Service);
    assert_eq!(svc.error().map(|e| e.category), Some(Category::Dependency));
    assert!(
        emu.ecs()
            .await
            .list_services()
            .cluster("test")
            .send()
            .await
            .unwrap()
            .service_arns()
            .is_empty()
    );
    let ssm = aws_sdk_ssm::Client::new(&emu.sdk_config().await);
    let host = ssm
        .get_parameter()
        .name("/test/app/db/host")
        .send()
        .await
        .unwrap();
    assert_eq!(
        host.parameter().and_then(|p| p.value()),
        Some("db.internal")
    );
    let path = dir.path().to_str().unwrap();
    assert_eq!(emu.mooring(&["plan", path]).status.code(), Some(1));

    // Someone sets the secret by hand; now everything converges.
    const SECRET: &str = "s3cr3t-value-never-shown";
    ssm.put_parameter()
        .name("/test/app/db/password")
        .value(SECRET)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(emu.mooring(&["plan", path]).status.code(), Some(0));

    // An out-of-band value change is named and put back.
    ssm.put_parameter()
        .name("/test/app/db/host")
        .value("evil.example.com")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains(
            r#"~ parameters./test/app/db/host.value: "evil.example.com" -> "db.internal""#
        ),
        "{}",
        stdout(&out)
    );
    let json = emu.mooring(&["plan", path, "--output", "json"]);
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let host = ssm
        .get_parameter()
        .name("/test/app/db/host")
        .send()
        .await
        .unwrap();
    assert_eq!(
        host.parameter().and_then(|p| p.value()),
        Some("db.internal")
    );

    // The secret's value never shows, in any output.
    for o in [&out, &json] {
        assert!(!stdout(o).contains(SECRET) && !stderr(o).contains(SECRET));
    }
}

#[tokio::test]
async fn resources_mooring_did_not_create_are_left_alone_unless_adopted() {
    let (_guard, emu) = emulator().await;
    let ecs = emu.ecs().await;
    ecs.create_cluster()
        .cluster_name("test")
        .send()
        .await
        .unwrap();
    let dir = fixture_copy("basic");
    let path = dir.path().to_str().unwrap();

    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("Cluster/test: error (ownership): not managed: the ECS cluster `test`: it exists but was not created by mooring"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("Service/api: error (dependency)"),
        "{}",
        stdout(&out)
    );
    let cluster = ecs
        .describe_clusters()
        .clusters("test")
        .include(aws_sdk_ecs::types::ClusterField::Tags)
        .send()
        .await
        .unwrap();
    assert!(
        cluster.clusters()[0].tags().is_empty(),
        "no tags were added"
    );

    edit(
        &dir.path().join("cluster.yaml"),
        "  name: test\n",
        "  name: test\n  annotations:\n    mooring.dev/adopt: \"true\"\n",
    );
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(emu.mooring(&["plan", path]).status.code(), Some(0));
}

#[tokio::test]
async fn autoscaling_owns_the_desired_count_and_its_policies_are_kept() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    std::fs::write(
        dir.path().join("scaling.yaml"),
        "apiVersion: mooring.dev/v1alpha1
kind: ScalableTarget
metadata: {name: api}
spec:
  service: api
  minCapacity: 1
  maxCapacity: 4
  targetTracking:
    - {metric: ECSServiceAverageCPUUtilization, targetValue: 80, scaleOutCooldownSeconds: 60}
    - {metric: ECSServiceAverageMemoryUtilization, targetValue: 80}
",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(emu.mooring(&["plan", path]).status.code(), Some(0));

    let scaling = aws_sdk_applicationautoscaling::Client::new(&emu.sdk_config().await);
    use aws_sdk_applicationautoscaling::types::{
        MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace,
        TargetTrackingScalingPolicyConfiguration,
    };
    let targets = scaling
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    let t = &targets.scalable_targets()[0];
    assert_eq!(
        (t.resource_id(), t.min_capacity(), t.max_capacity()),
        ("service/test/api", 1, 4)
    );

    // The scaler (here: another client) changes the desired count: not drift.
    emu.ecs()
        .await
        .update_service()
        .cluster("test")
        .service("api")
        .desired_count(3)
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Someone lowers the CPU target: named, and put back.
    scaling
        .put_scaling_policy()
        .policy_name("mooring-api-cpu")
        .service_namespace(ServiceNamespace::Ecs)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .resource_id("service/test/api")
        .policy_type(PolicyType::TargetTrackingScaling)
        .target_tracking_scaling_policy_configuration(
            TargetTrackingScalingPolicyConfiguration::builder()
                .target_value(50.0)
                .predefined_metric_specification(
                    PredefinedMetricSpecification::builder()
                        .predefined_metric_type(MetricType::EcsServiceAverageCpuUtilization)
                        .build()
                        .unwrap(),
                )
                .scale_out_cooldown(60)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("~ policies.mooring-api-cpu.targetValue: 50.0 -> 80.0"),
        "{}",
        stdout(&out)
    );
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(emu.mooring(&["plan", path]).status.code(), Some(0));

    // Scaling paused by hand, and a second policy added by hand on the managed target:
    // both named; apply resumes scaling and deletes the foreign policy (mooring owns the
    // target's policies).
    scaling
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .resource_id("service/test/api")
        .suspended_state(
            aws_sdk_applicationautoscaling::types::SuspendedState::builder()
                .dynamic_scaling_in_suspended(true)
                .dynamic_scaling_out_suspended(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    scaling
        .put_scaling_policy()
        .policy_name("by-hand")
        .service_namespace(ServiceNamespace::Ecs)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .resource_id("service/test/api")
        .policy_type(PolicyType::TargetTrackingScaling)
        .target_tracking_scaling_policy_configuration(
            TargetTrackingScalingPolicyConfiguration::builder()
                .target_value(20.0)
                .predefined_metric_specification(
                    PredefinedMetricSpecification::builder()
                        .predefined_metric_type(MetricType::EcsServiceAverageCpuUtilization)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["plan", path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for expected in [
        "~ suspended.dynamicScalingIn: true -> false",
        "~ suspended.dynamicScalingOut: true -> false",
        "~ policies.by-hand: {\"metric\":\"ECSServiceAverageCPUUtilization\",\"targetValue\":20.0,",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(text.contains("} -> (none)\n"), "{text}");
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(emu.mooring(&["plan", path]).status.code(), Some(0));
    let policies = scaling
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    let mut names: Vec<&str> = policies
        .scaling_policies()
        .iter()
        .map(|p| p.policy_name())
        .collect();
    names.sort();
    assert_eq!(names, ["mooring-api-cpu", "mooring-api-memory"]);
    let (svc, _) = describe_api(emu).await;
    assert_eq!(svc.desired_count(), 3, "apply never fights the scaler");
}

#[tokio::test]
async fn target_groups_round_trip_and_refuse_replacement() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    std::fs::write(
        dir.path().join("target-group.yaml"),
        "apiVersion: mooring.dev/v1alpha1
kind: TargetGroup
metadata: {name: api}
spec:
  port: 3000
  vpc: default
  healthCheck: {path: /api/health, matcher: 200-299, intervalSeconds: 15}
---
apiVersion: mooring.dev/v1alpha1
kind: TargetGroup
metadata: {name: spare}
spec:
  port: 4000
  vpc: default
",
    )
    .unwrap();
    // ECS attaches only a target group a listener forwards to.
    std::fs::write(
        dir.path().join("load-balancer.yaml"),
        "apiVersion: mooring.dev/v1alpha1
kind: LoadBalancer
metadata: {name: api}
spec:
  subnets: {lookup: {vpc: default}}
  securityGroups: {lookup: {vpc: default, names: [default]}}
  listeners:
    - {port: 80, protocol: HTTP, defaultAction: {forward: api}}
",
    )
    .unwrap();
    edit(
        &dir.path().join("service.yaml"),
        "  enableExecuteCommand: true\n",
        "  enableExecuteCommand: true\n  healthCheckGracePeriodSeconds: 60\n  loadBalancers:\n    - targetGroup: api\n",
    );
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(emu.mooring(&["plan", path]).status.code(), Some(0));

    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&emu.sdk_config().await);
    let tgs = elb
        .describe_target_groups()
        .names("api")
        .send()
        .await
        .unwrap();
    let tg = &tgs.target_groups()[0];
    let arn = tg.target_group_arn().unwrap().to_string();
    assert_eq!(tg.health_check_path(), Some("/api/health"));
    assert_eq!(tg.target_type().map(|t| t.as_str()), Some("ip"));
    let (svc, _) = describe_api(emu).await;
    assert_eq!(
        svc.load_balancers()[0].target_group_arn(),
        Some(arn.as_str())
    );
    assert_eq!(svc.load_balancers()[0].container_port(), Some(3000));

    // Someone points the health check elsewhere: named and put back.
    elb.modify_target_group()
        .target_group_arn(&arn)
        .health_check_path("/health")
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains(r#"~ healthCheck.path: "/health" -> "/api/health""#),
        "{}",
        stdout(&out)
    );
    assert_eq!(emu.mooring(&["apply", path]).status.code(), Some(0));
    let tgs = elb
        .describe_target_groups()
        .names("api")
        .send()
        .await
        .unwrap();
    assert_eq!(
        tgs.target_groups()[0].health_check_path(),
        Some("/api/health")
    );

    // A new port needs a new target group: reported, refused, nothing changed. (ELBv2
    // refuses to delete a target group a listener forwards to, so this is the spare one.)
    let spare = elb
        .describe_target_groups()
        .names("spare")
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    edit(
        &dir.path().join("target-group.yaml"),
        "port: 4000",
        "port: 8080",
    );
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(
            "TargetGroup/spare: error (replacement): changing port needs a new target group"
        ),
        "{}",
        stdout(&out)
    );
    let tgs = elb
        .describe_target_groups()
        .names("spare")
        .send()
        .await
        .unwrap();
    assert_eq!(tgs.target_groups()[0].port(), Some(4000));

    // Allowed: the target group is deleted and created again.
    edit(
        &dir.path().join("target-group.yaml"),
        "metadata: {name: spare}",
        "metadata:\n  name: spare\n  annotations: {mooring.dev/allow-replacement: \"true\"}",
    );
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("TargetGroup/spare: replace\n  ~ port: 4000 -> 8080"),
        "{}",
        stdout(&out)
    );
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let tgs = elb
        .describe_target_groups()
        .names("spare")
        .send()
        .await
        .unwrap();
    let new_arn = tgs.target_groups()[0].target_group_arn().unwrap();
    assert_ne!(new_arn, spare);
    assert_eq!(tgs.target_groups()[0].port(), Some(8080));
    let (svc, _) = describe_api(emu).await;
    assert_eq!(
        svc.load_balancers()[0].target_group_arn(),
        Some(arn.as_str())
    );
    assert_eq!(emu.mooring(&["plan", path]).status.code(), Some(0));
}

#[tokio::test]
async fn mismatched_health_check_paths_are_rejected_before_aws() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    std::fs::write(
        dir.path().join("target-group.yaml"),
        "apiVersion: mooring.dev/v1alpha1\nkind: TargetGroup\nmetadata: {name: api}\nspec:\n  port: 3000\n  vpc: default\n  healthCheck: {path: /health}\n",
    )
    .unwrap();
    edit(
        &dir.path().join("service.yaml"),
        "  enableExecuteCommand: true\n",
        "  enableExecuteCommand: true\n  loadBalancers:\n    - targetGroup: api\n",
    );
    let out = emu.mooring(&["plan", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("spec.loadBalancers[0].targetGroup: TargetGroup `api` checks `/health` but the container's health check calls `/api/health`"),
        "{}",
        stderr(&out)
    );
}

const LOAD_BALANCER: &str = "apiVersion: mooring.dev/v1alpha1
kind: TargetGroup
metadata: {name: api}
spec:
  port: 3000
  vpc: default
  healthCheck: {path: /api/health}
---
apiVersion: mooring.dev/v1alpha1
kind: LoadBalancer
metadata: {name: api}
spec:
  subnets: {lookup: {vpc: default}}
  securityGroups: {lookup: {vpc: default, names: [default]}}
  listeners:
    - port: 443
      protocol: HTTPS
      certificateArn: CERTIFICATE
      defaultAction: {forward: api}
    - port: 80
      protocol: HTTP
      defaultAction: {redirect: {protocol: HTTPS, port: 443}}
";

#[tokio::test]
async fn load_balancer_listeners_round_trip() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let cert = emu.certificate("api.example.com");
    std::fs::write(
        dir.path().join("load-balancer.yaml"),
        LOAD_BALANCER.replace("CERTIFICATE", &cert),
    )
    .unwrap();
    edit(
        &dir.path().join("service.yaml"),
        "  enableExecuteCommand: true\n",
        "  enableExecuteCommand: true\n  loadBalancers:\n    - targetGroup: api\n",
    );
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&emu.sdk_config().await);
    let lbs = elb
        .describe_load_balancers()
        .names("api")
        .send()
        .await
        .unwrap();
    let lb_arn = lbs.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(&lb_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(listeners.listeners().len(), 2);
    let tg_arn = elb
        .describe_target_groups()
        .names("api")
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let https = listeners
        .listeners()
        .iter()
        .find(|l| l.port() == Some(443))
        .unwrap();
    assert_eq!(
        https.default_actions()[0].target_group_arn(),
        Some(tg_arn.as_str())
    );

    // Someone turns the redirect into a forward to the target group: named, put back.
    let http = listeners
        .listeners()
        .iter()
        .find(|l| l.port() == Some(80))
        .unwrap();
    elb.modify_listener()
        .listener_arn(http.listener_arn().unwrap())
        .default_actions(
            aws_sdk_elasticloadbalancingv2::types::Action::builder()
                .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
                .target_group_arn(&tg_arn)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains(r#"~ listeners.80.defaultAction.type: "forward" -> "redirect""#),
        "{}",
        stdout(&out)
    );
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(emu.mooring(&["plan", path]).status.code(), Some(0));
}

const SCHEDULES: &str = "apiVersion: mooring.dev/v1alpha1
kind: Stack
metadata: {name: schedules}
---
apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata: {name: backend}
spec:
  apiKey: {headerName: x-api-key, secretId: SECRET_ARN}
---
apiVersion: mooring.dev/v1alpha1
kind: ApiDestination
metadata: {name: reset-queue}
spec:
  connection: backend
  endpoint: https://api.example.com/salons/reset-queue
  httpMethod: POST
  invocationRateLimitPerSecond: 1
---
apiVersion: mooring.dev/v1alpha1
kind: Rule
metadata: {name: reset-queue-daily}
spec:
  scheduleExpression: cron(0 8 * * ? *)
  description: Reset the salon queues every day at 08:00 UTC
  target:
    apiDestination: reset-queue
    roleArn: arn:aws:iam::123456789012:role/eventbridge-invoke
    input: '{}'
---
apiVersion: mooring.dev/v1alpha1
kind: Rule
metadata: {name: sms-every-minute}
spec:
  scheduleExpression: rate(1 minute)
  target:
    apiDestination: reset-queue
    roleArn: arn:aws:iam::123456789012:role/eventbridge-invoke
";

#[tokio::test]
async fn schedules_call_the_backend_with_a_key_that_is_never_shown() {
    let (_guard, emu) = emulator().await;
    const KEY: &str = "key-value-that-must-never-be-printed";
    let sm = aws_sdk_secretsmanager::Client::new(&emu.sdk_config().await);
    let secret = sm
        .create_secret()
        .name("prd/backend/api-key")
        .secret_string(KEY)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schedules.yaml"),
        SCHEDULES.replace("SECRET_ARN", secret.arn().unwrap()),
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let mut outputs = Vec::new();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    outputs.push(out);
    let out = emu.mooring(&["plan", path, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    outputs.push(out);

    let eb = aws_sdk_eventbridge::Client::new(&emu.sdk_config().await);
    let targets = eb
        .list_targets_by_rule()
        .rule("reset-queue-daily")
        .send()
        .await
        .unwrap();
    let dest = eb
        .describe_api_destination()
        .name("reset-queue")
        .send()
        .await
        .unwrap();
    assert_eq!(
        targets.targets()[0].arn(),
        dest.api_destination_arn().unwrap()
    );
    assert_eq!(
        dest.invocation_endpoint(),
        Some("https://api.example.com/salons/reset-queue")
    );

    // Out of band: the daily rule is disabled and the SMS rule slowed down.
    eb.disable_rule()
        .name("reset-queue-daily")
        .send()
        .await
        .unwrap();
    eb.put_rule()
        .name("sms-every-minute")
        .schedule_expression("rate(5 minutes)")
        .send()
        .await
        .unwrap();
    // ... and a second target added by hand to the daily rule: mooring owns the rule's
    // targets, so it is named and removed.
    eb.put_targets()
        .rule("reset-queue-daily")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("by-hand")
                .arn("arn:aws:sqs:us-east-1:123456789012:somewhere")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(
        text.contains(
            r#"~ extraTargets.by-hand: "arn:aws:sqs:us-east-1:123456789012:somewhere" -> (none)"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"Rule/reset-queue-daily: update"#), "{text}");
    assert!(
        text.contains(r#"~ state: "DISABLED" -> "ENABLED""#),
        "{text}"
    );
    assert!(
        text.contains(r#"~ scheduleExpression: "rate(5 minutes)" -> "rate(1 minute)""#),
        "{text}"
    );
    outputs.push(out);
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    outputs.push(out);
    let rule = eb
        .describe_rule()
        .name("reset-queue-daily")
        .send()
        .await
        .unwrap();
    assert_eq!(rule.state().map(|s| s.as_str()), Some("ENABLED"));
    let targets = eb
        .list_targets_by_rule()
        .rule("reset-queue-daily")
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = targets.targets().iter().map(|t| t.id()).collect();
    assert_eq!(ids, ["mooring"]);

    // The key is rotated: seen from the secret's version, the connection is updated.
    sm.put_secret_value()
        .secret_id(secret.arn().unwrap())
        .secret_string(format!("{KEY}-2"))
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("Connection/backend: update"),
        "{}",
        stdout(&out)
    );
    outputs.push(out);
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    outputs.push(out);
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    outputs.push(out);

    for o in &outputs {
        assert!(
            !stdout(o).contains(KEY) && !stderr(o).contains(KEY),
            "the key leaked"
        );
    }
}

/// Basic and OAuth client-credentials connections on moto: created with their secret part
/// read from Secrets Manager (moto keeps what it was sent in the connection's managed
/// secret, which proves the right value went out), in sync on the next plan, repaired
/// after out-of-band changes to what AWS returns (user name, client ID, a body parameter
/// added by hand), updated when the secret rotates, and no secret printed anywhere.
#[tokio::test]
async fn basic_and_oauth_connections_send_their_secret_and_repair_the_rest() {
    use aws_sdk_eventbridge::types::{
        ConnectionBodyParameter, ConnectionHttpParameters, ConnectionOAuthHttpMethod,
        UpdateConnectionAuthRequestParameters, UpdateConnectionBasicAuthRequestParameters,
        UpdateConnectionOAuthClientRequestParameters, UpdateConnectionOAuthRequestParameters,
    };
    let (_guard, emu) = emulator().await;
    const PASSWORD: &str = "basic-password-that-must-never-be-printed";
    const CLIENT_SECRET: &str = "client-secret-that-must-never-be-printed";
    let sm = aws_sdk_secretsmanager::Client::new(&emu.sdk_config().await);
    let password = sm
        .create_secret()
        .name("prd/backend/basic")
        .secret_string(format!(r#"{{"password": "{PASSWORD}"}}"#))
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name("prd/backend/oauth")
        .secret_string(CLIENT_SECRET)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("connections.yaml"),
        "apiVersion: mooring.dev/v1alpha1
kind: Stack
metadata: {name: connections}
---
apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata: {name: partner-basic}
spec:
  basic: {username: scheduler, secretId: prd/backend/basic, secretKey: password}
---
apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata: {name: partner-oauth}
spec:
  oauth:
    authorizationEndpoint: https://auth.example.com/oauth/token
    clientId: salon-scheduler
    secretId: prd/backend/oauth
    bodyParameters: {scope: 'queues:reset'}
",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let mut outputs = Vec::new();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    outputs.push(out);
    let eb = aws_sdk_eventbridge::Client::new(&emu.sdk_config().await);
    // moto keeps the authorization it was sent in the connection's managed secret.
    let sent = |name: &'static str| {
        let (eb, sm) = (eb.clone(), sm.clone());
        async move {
            let c = eb.describe_connection().name(name).send().await.unwrap();
            let kept = sm
                .get_secret_value()
                .secret_id(c.secret_arn().unwrap())
                .send()
                .await
                .unwrap();
            (c, kept.secret_string().unwrap().to_string())
        }
    };
    let (basic, kept) = sent("partner-basic").await;
    assert_eq!(
        basic.authorization_type().map(|a| a.as_str()),
        Some("BASIC")
    );
    assert_eq!(
        basic
            .auth_parameters()
            .and_then(|a| a.basic_auth_parameters())
            .and_then(|b| b.username()),
        Some("scheduler")
    );
    assert!(
        kept.contains(PASSWORD),
        "the password from the secret's field went out"
    );
    let (oauth, kept) = sent("partner-oauth").await;
    let o = oauth
        .auth_parameters()
        .unwrap()
        .o_auth_parameters()
        .unwrap();
    assert_eq!(
        o.authorization_endpoint(),
        Some("https://auth.example.com/oauth/token")
    );
    assert_eq!(o.http_method().map(|m| m.as_str()), Some("POST"));
    assert!(kept.contains(CLIENT_SECRET), "the client secret went out");
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    outputs.push(out);

    // Out of band: another user name, another client ID and a body parameter by hand.
    eb.update_connection()
        .name("partner-basic")
        .auth_parameters(
            UpdateConnectionAuthRequestParameters::builder()
                .basic_auth_parameters(
                    UpdateConnectionBasicAuthRequestParameters::builder()
                        .username("someone")
                        .password("set-by-hand")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let body = |k: &str, v: &str| {
        ConnectionBodyParameter::builder()
            .key(k)
            .value(v)
            .is_value_secret(false)
            .build()
    };
    eb.update_connection()
        .name("partner-oauth")
        .auth_parameters(
            UpdateConnectionAuthRequestParameters::builder()
                .o_auth_parameters(
                    UpdateConnectionOAuthRequestParameters::builder()
                        .authorization_endpoint("https://auth.example.com/oauth/token")
                        .http_method(ConnectionOAuthHttpMethod::Post)
                        .client_parameters(
                            UpdateConnectionOAuthClientRequestParameters::builder()
                                .client_id("someone-else")
                                .client_secret("set-by-hand")
                                .build(),
                        )
                        .o_auth_http_parameters(
                            ConnectionHttpParameters::builder()
                                .body_parameters(body("scope", "queues:reset"))
                                .body_parameters(body("audience", "by-hand"))
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let text = stdout(&out);
    for line in [
        r#"~ username: "someone" -> "scheduler""#,
        r#"~ oauth.clientId: "someone-else" -> "salon-scheduler""#,
        r#"~ oauth.bodyParameters.audience: "by-hand" -> (none)"#,
    ] {
        assert!(text.contains(line), "{line} not in {text}");
    }
    outputs.push(out);
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    outputs.push(out);
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    outputs.push(out);
    let (oauth, _) = sent("partner-oauth").await;
    let o = oauth
        .auth_parameters()
        .unwrap()
        .o_auth_parameters()
        .unwrap();
    let params: Vec<_> = o
        .o_auth_http_parameters()
        .unwrap()
        .body_parameters()
        .iter()
        .map(|p| (p.key().unwrap(), p.value().unwrap()))
        .collect();
    assert_eq!(params, [("scope", "queues:reset")]);

    // The password is rotated: seen from the secret's version, the connection updated.
    sm.put_secret_value()
        .secret_id(password.arn().unwrap())
        .secret_string(format!(r#"{{"password": "{PASSWORD}-2"}}"#))
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("Connection/partner-basic: update")
            && stdout(&out).contains("~ keyFrom:")
            && !stdout(&out).contains("Connection/partner-oauth: update"),
        "{}",
        stdout(&out)
    );
    outputs.push(out);
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    outputs.push(out);
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    outputs.push(out);

    for o in &outputs {
        for secret in [PASSWORD, CLIENT_SECRET] {
            assert!(
                !stdout(o).contains(secret) && !stderr(o).contains(secret),
                "a secret leaked"
            );
        }
    }
}

/// DescribeConnection as moto answers it, raw: moto returns the authorization as it was
/// sent, secrets included (AWS leaves them out), which shows whether a secret was kept.
fn raw_connection(emu: &Emulator, name: &str) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            &format!("http://127.0.0.1:{}/", emu.port()),
            "-H",
            "X-Amz-Target: AWSEvents.DescribeConnection",
            "-H",
            "Content-Type: application/x-amz-json-1.1",
            "-H",
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/events/aws4_request, SignedHeaders=host, Signature=0",
            "-d",
            &format!(r#"{{"Name": "{name}"}}"#),
        ])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Review findings: mooring never sends a connection's authorization in a way that could
/// lose what no manifest can give back. Without `secretId`, a user name that differs is a
/// problem, not an update without the password (moto drops a password left out; AWS does
/// not document keeping it); secret OAuth body parameters, which a manifest cannot say,
/// are a problem, not removed by the next update. Adoption then writes the marker only.
#[tokio::test]
async fn a_connection_is_never_sent_without_what_it_would_lose() {
    use aws_sdk_eventbridge::types::{
        ConnectionAuthorizationType, ConnectionBodyParameter, ConnectionHttpParameters,
        ConnectionOAuthHttpMethod, CreateConnectionAuthRequestParameters,
        CreateConnectionBasicAuthRequestParameters, CreateConnectionOAuthClientRequestParameters,
        CreateConnectionOAuthRequestParameters,
    };
    const PASSWORD: &str = "password-set-by-hand-0123";
    const ASSERTION: &str = "assertion-set-by-hand-0123";
    let (_guard, emu) = emulator().await;
    let eb = aws_sdk_eventbridge::Client::new(&emu.sdk_config().await);
    eb.create_connection()
        .name("partner-basic")
        .description("made by hand")
        .authorization_type(ConnectionAuthorizationType::Basic)
        .auth_parameters(
            CreateConnectionAuthRequestParameters::builder()
                .basic_auth_parameters(
                    CreateConnectionBasicAuthRequestParameters::builder()
                        .username("someone")
                        .password(PASSWORD)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let body = |k: &str, v: &str, secret: bool| {
        ConnectionBodyParameter::builder()
            .key(k)
            .value(v)
            .is_value_secret(secret)
            .build()
    };
    eb.create_connection()
        .name("partner-oauth")
        .description("made by hand")
        .authorization_type(ConnectionAuthorizationType::OauthClientCredentials)
        .auth_parameters(
            CreateConnectionAuthRequestParameters::builder()
                .o_auth_parameters(
                    CreateConnectionOAuthRequestParameters::builder()
                        .authorization_endpoint("https://auth.example.com/oauth/token")
                        .http_method(ConnectionOAuthHttpMethod::Post)
                        .client_parameters(
                            CreateConnectionOAuthClientRequestParameters::builder()
                                .client_id("salon")
                                .client_secret("client-secret-by-hand")
                                .build()
                                .unwrap(),
                        )
                        .o_auth_http_parameters(
                            ConnectionHttpParameters::builder()
                                .body_parameters(body("scope", "queues", false))
                                .body_parameters(body("client_assertion", ASSERTION, true))
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    aws_sdk_secretsmanager::Client::new(&emu.sdk_config().await)
        .create_secret()
        .name("prd/partner/oauth")
        .secret_string("client-secret-from-mooring")
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifests = |username: &str| {
        format!(
            "apiVersion: mooring.dev/v1alpha1
kind: Stack
metadata: {{name: partners}}
---
apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata: {{name: partner-basic, annotations: {{mooring.dev/adopt: \"true\"}}}}
spec:
  basic: {{username: {username}}}
---
apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata: {{name: partner-oauth, annotations: {{mooring.dev/adopt: \"true\"}}}}
spec:
  oauth:
    authorizationEndpoint: https://auth.example.com/oauth/token
    clientId: salon
    secretId: prd/partner/oauth
    bodyParameters: {{scope: queues}}
"
        )
    };
    let file = dir.path().join("partners.yaml");
    std::fs::write(&file, manifests("scheduler")).unwrap();
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    for expected in [
        "differs in `username`, and without `basic.secretId` mooring does not send it",
        "has oauth.bodyParameters.client_assertion (secret), which a manifest cannot say",
    ] {
        assert!(text.contains(expected), "no {expected:?} in {text}");
    }
    let (basic, oauth) = (
        raw_connection(emu, "partner-basic"),
        raw_connection(emu, "partner-oauth"),
    );
    assert!(
        basic.contains(PASSWORD) && basic.contains("someone") && basic.contains("made by hand"),
        "the basic connection was touched: {basic}"
    );
    assert!(
        oauth.contains(ASSERTION)
            && oauth.contains("client-secret-by-hand")
            && oauth.contains("made by hand"),
        "the OAuth connection was touched: {oauth}"
    );
    assert!(!text.contains(PASSWORD) && !text.contains(ASSERTION));

    // The manifest says what the connection has: adopted (its marker only), password kept.
    std::fs::write(&file, manifests("someone")).unwrap();
    let out = emu.mooring(&["apply", "--target", "Connection/partner-basic", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let basic = raw_connection(emu, "partner-basic");
    assert!(
        basic.contains(PASSWORD)
            && basic.contains("managed by mooring: partners/Connection/partner-basic"),
        "{basic}"
    );
}

/// Review finding: ECS takes a lone capacity provider with no weight (weight 0 is ECS's
/// default; only several providers all at 0 are refused). `mooring import` writes such a
/// strategy as it is (`[{capacityProvider: FARGATE}]`), and the imported files must load.
#[tokio::test]
async fn import_of_a_lone_fargate_provider_without_a_weight_validates() {
    use aws_sdk_ecs::types::CapacityProviderStrategyItem as Item;
    let (_guard, emu) = emulator().await;
    build_cdk_like_stack(emu).await;
    let ecs = aws_sdk_ecs::Client::new(&emu.sdk_config().await);
    let lone = Item::builder()
        .capacity_provider("FARGATE")
        .build()
        .unwrap();
    ecs.put_cluster_capacity_providers()
        .cluster(IMPORT_CLUSTER)
        .capacity_providers("FARGATE")
        .default_capacity_provider_strategy(lone.clone())
        .send()
        .await
        .unwrap();
    ecs.update_service()
        .cluster(IMPORT_CLUSTER)
        .service(IMPORT_SERVICE)
        .capacity_provider_strategy(lone)
        .send()
        .await
        .unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let dir = out_dir.path().join("imported");
    let path = dir.to_str().unwrap();
    let out = emu.mooring(&[
        "import",
        "--cluster",
        IMPORT_CLUSTER,
        "--service",
        IMPORT_SERVICE,
        "--out",
        path,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let files = read_dir_files(&dir);
    assert!(
        files["cluster.yaml"]
            .contains("  defaultCapacityProviderStrategy:\n    - capacityProvider: FARGATE\n"),
        "{}",
        files["cluster.yaml"]
    );
    let svc = files
        .iter()
        .find(|(k, _)| k.starts_with("cdkbackendstack-service"))
        .unwrap()
        .1;
    assert!(
        svc.contains("  capacityProviderStrategy:\n    - capacityProvider: FARGATE\n"),
        "{svc}"
    );
    let out = emu.mooring(&["validate", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the imported files do not load:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Review finding: a connection with invocation parameters (which a manifest cannot say) is
/// imported with `mooring.dev/mode: observe`, as the refusal itself advises. In a pass that
/// honours the annotation (the daemon's) nothing is sent, and the connection is held, not
/// failed on every pass with its API destination blocked.
#[tokio::test]
async fn an_observed_connection_with_invocation_parameters_is_held_not_failed() {
    use aws_sdk_eventbridge::types::{
        ConnectionAuthorizationType, ConnectionHeaderParameter, ConnectionHttpParameters,
        CreateConnectionApiKeyAuthRequestParameters, CreateConnectionAuthRequestParameters,
    };
    let (_guard, emu) = emulator().await;
    let eb = aws_sdk_eventbridge::Client::new(&emu.sdk_config().await);
    eb.create_connection()
        .name("partner-key")
        .description("made by hand")
        .authorization_type(ConnectionAuthorizationType::ApiKey)
        .auth_parameters(
            CreateConnectionAuthRequestParameters::builder()
                .api_key_auth_parameters(
                    CreateConnectionApiKeyAuthRequestParameters::builder()
                        .api_key_name("x-api-key")
                        .api_key_value("key-set-by-hand-0123")
                        .build()
                        .unwrap(),
                )
                .invocation_http_parameters(
                    ConnectionHttpParameters::builder()
                        .header_parameters(
                            ConnectionHeaderParameter::builder()
                                .key("x-tenant")
                                .value("salon")
                                .is_value_secret(false)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("partners.yaml"),
        "apiVersion: mooring.dev/v1alpha1
kind: Stack
metadata: {name: partners}
---
apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata:
  name: partner-key
  annotations: {mooring.dev/adopt: \"true\", mooring.dev/mode: observe}
spec:
  apiKey: {headerName: x-api-key}
---
apiVersion: mooring.dev/v1alpha1
kind: ApiDestination
metadata: {name: partner-jobs}
spec:
  connection: partner-key
  endpoint: https://api.example.com/jobs
  httpMethod: POST
",
    )
    .unwrap();
    let set = load_dir(dir.path()).unwrap();
    let ctx = Context::new(emu.aws().await);
    let policy =
        |kind: Kind, _: &str| (kind == Kind::Connection).then_some(reconcile::Hold::Observe);
    let pass = reconcile::apply_selected(
        &ctx,
        &set,
        &reconcilers(&set),
        &policy,
        &mut reconcile::Gates::default(),
    )
    .await;
    assert!(
        !pass.has_errors(),
        "an observed connection fails the pass: {pass:#?}"
    );
    // In enforce mode the same connection is refused by apply, naming the parameter, and
    // the connection keeps it.
    let enforce = |_: Kind, _: &str| None;
    let pass = reconcile::apply_selected(
        &ctx,
        &set,
        &reconcilers(&set),
        &enforce,
        &mut reconcile::Gates::default(),
    )
    .await;
    let connection = pass
        .resources
        .iter()
        .find(|r| r.kind == Kind::Connection)
        .unwrap();
    let error = connection.error().expect("refused").message;
    assert!(
        error.contains("invocationHttpParameters.headerParameters.x-tenant"),
        "{error}"
    );
    assert!(raw_connection(emu, "partner-key").contains("x-tenant"));
}

#[tokio::test]
async fn redis_replication_group_round_trip() {
    let (_guard, emu) = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis.yaml");
    std::fs::write(
        &file,
        "apiVersion: mooring.dev/v1alpha1
kind: Stack
metadata: {name: cache}
---
apiVersion: mooring.dev/v1alpha1
kind: ReplicationGroup
metadata: {name: salon-redis}
spec:
  engineVersion: '7.1'
  nodeType: cache.t2.small
  numCacheClusters: 1
  securityGroups: {lookup: {vpc: default, names: [default]}}
  atRestEncryption: true
  tags: {project: salon}
",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Out of band: a bigger node type. Named and put back.
    let ec = aws_sdk_elasticache::Client::new(&emu.sdk_config().await);
    ec.modify_replication_group()
        .replication_group_id("salon-redis")
        .cache_node_type("cache.t2.medium")
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains(r#"~ nodeType: "cache.t2.medium" -> "cache.t2.small""#),
        "{}",
        stdout(&out)
    );
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let groups = ec
        .describe_replication_groups()
        .replication_group_id("salon-redis")
        .send()
        .await
        .unwrap();
    assert_eq!(
        groups.replication_groups()[0].cache_node_type(),
        Some("cache.t2.small")
    );

    // An engine change would need a new group: reported, refused.
    edit(
        &file,
        "  engineVersion:",
        "  engine: valkey\n  engineVersion:",
    );
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("ReplicationGroup/salon-redis: error (replacement): changing engine needs a new replication group"),
        "{}",
        stdout(&out)
    );
    // Replacing needs the old group gone first; moto keeps a deleted group in `deleting`
    // for ever, so replacement is shown with canned responses (redis::tests).
}

/// ElastiCache writes among the calls made (reads are Describe*/List*).
fn elasticache_writes(aws: &mooring::aws::Aws) -> Vec<String> {
    aws.calls
        .by_operation()
        .into_keys()
        .filter(|op| {
            op.starts_with("ElastiCache.")
                && !op.starts_with("ElastiCache.Describe")
                && !op.starts_with("ElastiCache.List")
        })
        .collect()
}

#[tokio::test]
async fn cache_subnet_group_round_trip_and_redis_is_placed_in_it() {
    let (_guard, emu) = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis.yaml");
    std::fs::write(
        &file,
        "apiVersion: mooring.dev/v1alpha1
kind: Stack
metadata: {name: cache}
---
apiVersion: mooring.dev/v1alpha1
kind: CacheSubnetGroup
metadata: {name: private}
spec:
  cacheSubnetGroupName: salon-private
  description: Redis subnets
  subnets: {lookup: {vpc: default}}
  tags: {project: salon}
---
apiVersion: mooring.dev/v1alpha1
kind: ReplicationGroup
metadata: {name: salon-redis}
spec:
  engineVersion: '7.1'
  nodeType: cache.t2.small
  numCacheClusters: 1
  subnetGroup: private
",
    )
    .unwrap();

    // From nothing: the subnet group first, then Redis in it, in one pass.
    let (report, aws) = apply(emu, dir.path()).await;
    let created: Vec<String> = report
        .resources
        .iter()
        .filter(|r| r.action == Action::Create)
        .map(|r| format!("{}/{}", r.kind, r.name))
        .collect();
    assert_eq!(
        created,
        ["CacheSubnetGroup/private", "ReplicationGroup/salon-redis"]
    );
    assert_eq!(aws.calls.count("ElastiCache", "CreateCacheSubnetGroup"), 1);
    let config = emu.sdk_config().await;
    let ec = aws_sdk_elasticache::Client::new(&config);
    let group = ec
        .describe_cache_subnet_groups()
        .cache_subnet_group_name("salon-private")
        .send()
        .await
        .unwrap()
        .cache_subnet_groups()[0]
        .clone();
    assert_eq!(
        group.cache_subnet_group_description(),
        Some("Redis subnets")
    );
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let vpc = ec2
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("is-default")
                .values("true")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .vpcs()[0]
        .vpc_id()
        .unwrap()
        .to_string();
    let default_subnets = ec2
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&vpc)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .subnets()
        .len();
    assert!(default_subnets > 0);
    assert_eq!(group.subnets().len(), default_subnets);
    let tags = ec
        .list_tags_for_resource()
        .resource_name(group.arn().unwrap())
        .send()
        .await
        .unwrap();
    let tag = |k: &str| {
        tags.tag_list()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    assert_eq!(
        tag("mooring.dev/resource").as_deref(),
        Some("CacheSubnetGroup/private")
    );
    assert_eq!(tag("mooring.dev/stack").as_deref(), Some("cache"));
    assert_eq!(tag("project").as_deref(), Some("salon"));
    // ElastiCache does not show a replication group's subnet group (only its member
    // clusters do, and moto lists none): read moto's own state.
    let port: u16 = emu.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let (status, body) = common::http(port, "GET", "/moto-api/data.json").unwrap();
    assert_eq!(status, 200);
    let data: serde_json::Value = serde_json::from_str(&body).unwrap();
    let placed = data["elasticache"]["ReplicationGroup"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["replication_group_id"] == "salon-redis")
        .map(|g| g["cache_subnet_group_name"].clone());
    assert_eq!(placed, Some(serde_json::json!("salon-private")));

    // Steady: a second apply plans nothing and writes nothing.
    let (report, aws) = apply(emu, dir.path()).await;
    assert!(
        report.resources.iter().all(|r| r.action == Action::None),
        "{report:#?}"
    );
    assert_eq!(elasticache_writes(&aws), Vec::<String>::new());
    // What the kind adds to a steady pass: one describe for all groups and one tag read
    // per group; the subnet lookup is the pass cache's (one per VPC and lookup).
    assert_eq!(
        aws.calls.count("ElastiCache", "DescribeCacheSubnetGroups"),
        1
    );
    assert_eq!(
        aws.calls.count("ElastiCache", "ListTagsForResource"),
        2,
        "the subnet group's tags and the replication group's"
    );
    assert_eq!(aws.calls.count("EC2", "DescribeSubnets"), 1);

    // Out of band: a managed tag changed. Named, and put back.
    ec.add_tags_to_resource()
        .resource_name(group.arn().unwrap())
        .tags(
            aws_sdk_elasticache::types::Tag::builder()
                .key("project")
                .value("other")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out)
            .contains("CacheSubnetGroup/private: update\n  ~ tags.project: \"other\" -> \"salon\""),
        "{}",
        stdout(&out)
    );
    let (_, aws) = apply(emu, dir.path()).await;
    assert_eq!(elasticache_writes(&aws), ["ElastiCache.AddTagsToResource"]);
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // A changed description is named; moto has no ModifyCacheSubnetGroup, so applying it
    // is shown with canned responses (cache_subnet_group::tests).
    edit(
        &file,
        "description: Redis subnets",
        "description: Redis, private subnets",
    );
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains(r#"~ description: "Redis subnets" -> "Redis, private subnets""#),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn security_groups_reference_each_other_by_name() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    // Listed app-first: mooring creates alb first because app's rule names it.
    std::fs::write(
        dir.path().join("security-groups.yaml"),
        "apiVersion: mooring.dev/v1alpha1
kind: SecurityGroup
metadata: {name: app}
spec:
  vpc: default
  description: the backend's tasks
  ingress:
    - {port: 3000, securityGroup: alb, description: from the load balancer}
  egress:
    - {ipProtocol: all, cidrIp: 0.0.0.0/0}
---
apiVersion: mooring.dev/v1alpha1
kind: SecurityGroup
metadata: {name: alb}
spec:
  vpc: default
  ingress:
    - {port: 443, cidrIp: 0.0.0.0/0}
    - {port: 80, cidrIp: 0.0.0.0/0}
",
    )
    .unwrap();
    edit(
        &dir.path().join("service.yaml"),
        "lookup: {vpc: default, names: [default]}",
        "refs: [app]",
    );
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let ec2 = aws_sdk_ec2::Client::new(&emu.sdk_config().await);
    let groups = ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values("app")
                .values("alb")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let id = |name: &str| {
        groups
            .security_groups()
            .iter()
            .find(|g| g.group_name() == Some(name))
            .and_then(|g| g.group_id())
            .unwrap_or_else(|| panic!("no group {name}"))
            .to_string()
    };
    let (app, alb) = (id("app"), id("alb"));
    let app_group = groups
        .security_groups()
        .iter()
        .find(|g| g.group_name() == Some("app"))
        .unwrap();
    let from: Vec<&str> = app_group.ip_permissions()[0]
        .user_id_group_pairs()
        .iter()
        .filter_map(|p| p.group_id())
        .collect();
    assert_eq!(from, [alb.as_str()]);
    let (svc, _) = describe_api(emu).await;
    let sgs = svc
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .map(|a| a.security_groups().to_vec())
        .unwrap_or_default();
    assert_eq!(sgs, [app.as_str()]);

    // Someone opens SSH to the world on the backend: named, and revoked by apply.
    ec2.authorize_security_group_ingress()
        .group_id(&app)
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .cidr_ip("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(text.contains("SecurityGroup/app: update"), "{text}");
    assert!(
        text.contains(&format!(
            r#"~ ingress: ["tcp 22 0.0.0.0/0","tcp 3000 {alb}"] -> ["tcp 3000 {alb}"]"#
        )),
        "{text}"
    );
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let after = ec2
        .describe_security_groups()
        .group_ids(&app)
        .send()
        .await
        .unwrap();
    let ports: Vec<Option<i32>> = after.security_groups()[0]
        .ip_permissions()
        .iter()
        .map(|p| p.from_port())
        .collect();
    assert_eq!(ports, [Some(3000)]);
    assert_eq!(emu.mooring(&["plan", path]).status.code(), Some(0));

    // A new name is the same group (found by its ownership tag), which EC2 cannot rename:
    // a replacement, refused; no second group appears.
    edit(
        &dir.path().join("security-groups.yaml"),
        "metadata: {name: alb}\nspec:\n",
        "metadata: {name: alb}\nspec:\n  groupName: alb-v2\n",
    );
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(
            "SecurityGroup/alb: error (replacement): changing groupName needs a new security group"
        ),
        "{}",
        stdout(&out)
    );
    let renamed = ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values("alb-v2")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(renamed.security_groups().is_empty(), "no second group");
}

#[tokio::test]
async fn secrets_from_outside_the_manifests_must_exist() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    edit(
        &dir.path().join("service.yaml"),
        "DB_HOST: {ssmParameter: /test/config/db/host}",
        "DB_HOST: {ssmParameter: /test/config/db/host}\n        DB_PASSWORD: {ssmParameter: /shared/db/password}",
    );
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("Service/api: error (requirement): secret DB_PASSWORD: the SSM parameter /shared/db/password does not exist"),
        "{text}"
    );
    assert!(
        emu.ecs()
            .await
            .list_services()
            .cluster("test")
            .send()
            .await
            .unwrap()
            .service_arns()
            .is_empty(),
        "no service may start without its secrets"
    );
    // Someone sets it by hand; mooring sees that it exists, never its value.
    let ssm = aws_sdk_ssm::Client::new(&emu.sdk_config().await);
    ssm.put_parameter()
        .name("/shared/db/password")
        .value("hunter2-never-shown")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!stdout(&out).contains("hunter2"));
    assert!(!stderr(&out).contains("hunter2"));
}

#[tokio::test]
async fn iam_policy_names_only_the_services_a_stack_uses() {
    let (_guard, emu) = emulator().await;
    let services = |dir: &str| -> std::collections::BTreeSet<String> {
        let out = emu.mooring(&["iam-policy", dir]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let policy: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        assert_eq!(policy["Version"], "2012-10-17");
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["Action"].as_array().unwrap().clone())
            .filter_map(|a| {
                a.as_str()
                    .and_then(|a| a.split(':').next())
                    .map(str::to_string)
            })
            .collect()
    };
    let mut examples = services("manifests/examples/salon-booking");
    examples.extend(services("manifests/examples/small-api"));
    for s in [
        "ecs",
        "ec2",
        "elasticloadbalancing",
        "elasticache",
        "events",
        "ssm",
    ] {
        assert!(examples.contains(s), "{s} missing from {examples:?}");
    }
    let own = services("manifests/mooring-on-ecs");
    for s in ["elasticache", "events", "application-autoscaling", "acm"] {
        assert!(
            !own.contains(s),
            "{s} in the policy of a stack that does not use it: {own:?}"
        );
    }
    let out = emu.mooring(&["--version"]);
    assert!(
        stdout(&out).starts_with("mooring 0.1.0 (rev "),
        "{}",
        stdout(&out)
    );
}

/// Every write one run made, by service and operation.
fn all_writes(aws: &mooring::aws::Aws) -> Vec<(String, String)> {
    aws.calls
        .snapshot()
        .into_keys()
        .filter(|(_, op, _)| !mooring::aws::is_read_operation(op))
        .map(|(s, op, _)| (s, op))
        .collect()
}

#[tokio::test]
async fn log_groups_round_trip_and_are_created_before_the_service_that_logs_to_them() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    std::fs::write(
        dir.path().join("logs.yaml"),
        "apiVersion: mooring.dev/v1alpha1
kind: LogGroup
metadata: {name: api-logs}
spec:
  logGroupName: /ecs/api
  retentionInDays: 14
  tags: {team: core}
",
    )
    .unwrap();
    edit(
        &dir.path().join("service.yaml"),
        "logs: {group: /ecs/api}",
        "logs: {group: api-logs}",
    );

    // From nothing: the group first (it is a dependency of the service), then the service,
    // which logs to the group's CloudWatch name.
    let (report, _) = apply(emu, dir.path()).await;
    let order: Vec<Kind> = report.resources.iter().map(|r| r.kind).collect();
    let at = |k: Kind| order.iter().position(|x| *x == k).unwrap();
    assert!(at(Kind::LogGroup) < at(Kind::Service), "{order:?}");
    let group = report
        .resources
        .iter()
        .find(|r| r.kind == Kind::LogGroup)
        .unwrap();
    assert_eq!(group.action, Action::Create);
    assert!(
        group.aws_id.ends_with(":log-group:/ecs/api"),
        "{}",
        group.aws_id
    );
    let logs = aws_sdk_cloudwatchlogs::Client::new(&emu.sdk_config().await);
    let described = logs
        .describe_log_groups()
        .log_group_name_prefix("/ecs/api")
        .send()
        .await
        .unwrap();
    let g = &described.log_groups()[0];
    assert_eq!(g.log_group_name(), Some("/ecs/api"));
    assert_eq!(g.retention_in_days(), Some(14));
    let arn = g.log_group_arn().unwrap().to_string();
    let tags = logs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap_or_default();
    assert_eq!(tags.get("team").map(String::as_str), Some("core"));
    assert_eq!(
        tags.get("mooring.dev/resource").map(String::as_str),
        Some("LogGroup/api-logs")
    );
    assert_eq!(
        tags.get("mooring.dev/stack").map(String::as_str),
        Some("basic")
    );
    let (_, td) = describe_api(emu).await;
    let options = td.container_definitions()[0]
        .log_configuration()
        .unwrap()
        .options()
        .unwrap();
    assert_eq!(options["awslogs-group"], "/ecs/api");

    // Steady: nothing to do, nothing written.
    let (report, aws) = plan(emu, dir.path()).await;
    assert!(!report.has_changes(), "{report:#?}");
    assert_eq!(all_writes(&aws), vec![], "plan must not write");

    // Out of band: another retention. Named, and put back.
    logs.put_retention_policy()
        .log_group_name("/ecs/api")
        .retention_in_days(90)
        .send()
        .await
        .unwrap();
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("~ retentionInDays: 90 -> 14"),
        "{}",
        stdout(&out)
    );
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let described = logs
        .describe_log_groups()
        .log_group_name_prefix("/ecs/api")
        .send()
        .await
        .unwrap();
    assert_eq!(described.log_groups()[0].retention_in_days(), Some(14));

    // Kept forever when the manifest drops the retention.
    edit(&dir.path().join("logs.yaml"), "  retentionInDays: 14\n", "");
    let (report, _) = apply(emu, dir.path()).await;
    assert!(report.resources.iter().any(|r| r.kind == Kind::LogGroup
        && r.action == Action::Update
        && r.changes.iter().any(|c| c.field == "retentionInDays")));
    let described = logs
        .describe_log_groups()
        .log_group_name_prefix("/ecs/api")
        .send()
        .await
        .unwrap();
    assert_eq!(described.log_groups()[0].retention_in_days(), None);
    let (report, _) = plan(emu, dir.path()).await;
    assert!(!report.has_changes(), "{report:#?}");
}

/// The repository's lifecycle policy as ECR returns it, parsed.
async fn lifecycle_of(ecr: &aws_sdk_ecr::Client, name: &str) -> serde_json::Value {
    let text = ecr
        .get_lifecycle_policy()
        .repository_name(name)
        .send()
        .await
        .unwrap()
        .lifecycle_policy_text
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn repositories_round_trip_serve_service_images_and_are_never_pruned_while_retained() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let repos = dir.path().join("repository.yaml");
    std::fs::write(
        &repos,
        "apiVersion: mooring.dev/v1alpha1
kind: Repository
metadata: {name: api-images}
spec:
  repositoryName: team/api
  imageTagMutability: IMMUTABLE
  scanOnPush: true
  lifecycle:
    - {keepLast: 20, tagPrefixes: [v]}
    - {expireUntaggedAfterDays: 14}
  tags: {team: core}
---
apiVersion: mooring.dev/v1alpha1
kind: Repository
metadata: {name: scratch}
spec:
  deletionPolicy: delete
",
    )
    .unwrap();
    edit(
        &dir.path().join("service.yaml"),
        "image: nginx:1.27",
        "repository: api-images\n      tag: v1.0.0",
    );

    // From nothing: the repositories first, then the service, whose image is the
    // repository's URI (as ECR reports it) with the tag.
    let (report, _) = apply(emu, dir.path()).await;
    let order: Vec<Kind> = report.resources.iter().map(|r| r.kind).collect();
    let at = |k: Kind| order.iter().position(|x| *x == k).unwrap();
    assert!(at(Kind::Repository) < at(Kind::Service), "{order:?}");
    let ecr = aws_sdk_ecr::Client::new(&emu.sdk_config().await);
    let described = ecr
        .describe_repositories()
        .repository_names("team/api")
        .send()
        .await
        .unwrap();
    let repo = &described.repositories()[0];
    assert_eq!(
        repo.image_tag_mutability(),
        Some(&aws_sdk_ecr::types::ImageTagMutability::Immutable)
    );
    assert!(repo.image_scanning_configuration().unwrap().scan_on_push());
    let arn = repo.repository_arn().unwrap().to_string();
    let uri = repo.repository_uri().unwrap().to_string();
    let tags: std::collections::HashMap<String, String> = ecr
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    assert_eq!(tags["team"], "core");
    assert_eq!(tags["mooring.dev/resource"], "Repository/api-images");
    assert_eq!(tags["mooring.dev/stack"], "basic");
    assert_eq!(tags["mooring.dev/deletion-policy"], "retain");
    let policy = lifecycle_of(&ecr, "team/api").await;
    assert_eq!(policy["rules"][0]["rulePriority"], 1);
    assert_eq!(
        policy["rules"][0]["selection"]["tagPrefixList"],
        serde_json::json!(["v"])
    );
    assert_eq!(
        policy["rules"][0]["selection"]["countType"],
        "imageCountMoreThan"
    );
    assert_eq!(policy["rules"][1]["selection"]["tagStatus"], "untagged");
    assert_eq!(policy["rules"][1]["selection"]["countUnit"], "days");
    assert_eq!(policy["rules"][1]["action"]["type"], "expire");
    let (_, td) = describe_api(emu).await;
    assert_eq!(image_of(&td), format!("{uri}:v1.0.0"));

    // Steady: nothing to do, nothing written. The reads: every repository once (the
    // service's image shares it), then tags and lifecycle policy per repository.
    let (report, aws) = plan(emu, dir.path()).await;
    assert!(!report.has_changes(), "{report:#?}");
    assert_eq!(all_writes(&aws), vec![], "plan must not write");
    assert_eq!(aws.calls.count("ECR", "DescribeRepositories"), 1);
    assert_eq!(aws.calls.count("ECR", "ListTagsForResource"), 2);
    assert_eq!(aws.calls.count("ECR", "GetLifecyclePolicy"), 2);

    // The same policy written another way (key order, whitespace) is no drift.
    ecr.put_lifecycle_policy()
        .repository_name("team/api")
        .lifecycle_policy_text(
            r#"{"rules": [
              {"selection": {"countNumber": 14, "countUnit": "days", "countType": "sinceImagePushed",
                             "tagStatus": "untagged"}, "action": {"type": "expire"}, "rulePriority": 2},
              {"action": {"type": "expire"}, "rulePriority": 1,
               "selection": {"countNumber": 20, "countType": "imageCountMoreThan",
                             "tagPrefixList": ["v"], "tagStatus": "tagged"}}]}"#,
        )
        .send()
        .await
        .unwrap();
    let (report, _) = plan(emu, dir.path()).await;
    assert!(!report.has_changes(), "{report:#?}");

    // Out of band: mutable tags and a hand-edited policy. Named, and put back.
    ecr.put_image_tag_mutability()
        .repository_name("team/api")
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();
    ecr.put_lifecycle_policy()
        .repository_name("team/api")
        .lifecycle_policy_text(
            r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "tagged",
               "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 5},
               "action": {"type": "expire"}}]}"#,
        )
        .send()
        .await
        .unwrap();
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["plan", path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for expected in [
        "Repository/api-images: update",
        "~ imageTagMutability: \"MUTABLE\" -> \"IMMUTABLE\"",
        "~ lifecyclePolicy.1.selection.countNumber: 5 -> 20",
        "lifecyclePolicy.2",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let described = ecr
        .describe_repositories()
        .repository_names("team/api")
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.repositories()[0].image_tag_mutability(),
        Some(&aws_sdk_ecr::types::ImageTagMutability::Immutable)
    );
    assert_eq!(lifecycle_of(&ecr, "team/api").await, policy);
    let (report, _) = plan(emu, dir.path()).await;
    assert!(!report.has_changes(), "{report:#?}");

    // A new encryption replaces the repository, which would delete its images: refused
    // while it is retained, even with the replacement annotation.
    edit(
        &repos,
        "metadata: {name: api-images}",
        "metadata: {name: api-images, annotations: {mooring.dev/allow-replacement: \"true\"}}",
    );
    edit(
        &repos,
        "  scanOnPush: true\n",
        "  scanOnPush: true\n  encryption: {type: KMS}\n",
    );
    let (report, _) = plan(emu, dir.path()).await;
    let r = report
        .resources
        .iter()
        .find(|r| r.kind == Kind::Repository && r.name == "api-images")
        .unwrap();
    assert_eq!(r.action, Action::Replace, "{r:#?}");
    let e = r.error().expect("refused").message;
    assert!(e.contains("`deletionPolicy` is `retain`"), "{e}");
    let set = load_dir(dir.path()).unwrap();
    let aws = emu.aws().await;
    let ctx = Context::new(aws.clone());
    let report = reconcile::apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(
        report.has_errors(),
        "the replacement is refused: {report:#?}"
    );
    assert!(
        !all_writes(&aws)
            .iter()
            .any(|(_, op)| op == "DeleteRepository" || op == "CreateRepository"),
        "{:?}",
        all_writes(&aws)
    );
    assert_eq!(
        ecr.describe_repositories()
            .repository_names("team/api")
            .send()
            .await
            .unwrap()
            .repositories()[0]
            .repository_arn(),
        Some(arn.as_str()),
        "the same repository"
    );

    // Both repositories leave the manifests: prune deletes the one whose policy says
    // `delete` and keeps the retained one, reporting how to delete it by hand.
    std::fs::remove_file(&repos).unwrap();
    edit(
        &dir.path().join("service.yaml"),
        "repository: api-images\n      tag: v1.0.0",
        &format!("image: {uri}:v1.0.0"),
    );
    let set = load_dir(dir.path()).unwrap();
    let recs = reconcilers(&set);
    let cache = PassCache::default();
    let cx = Cx {
        ctx: &ctx,
        set: &set,
        cache: &cache,
    };
    let r = recs.iter().find(|r| r.kind() == Kind::Repository).unwrap();
    let mut owned = r.owned(&cx).await.expect("listed").expect("listing");
    owned.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        owned.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
        ["api-images", "scratch"]
    );
    let kept = r.delete(&cx, &owned[0]).await.unwrap_err();
    // Retained on purpose: the daemon's prune reports it as `retained: …`, not failed.
    assert!(
        matches!(kept, reconcile::ReconcileError::Retained(_)),
        "{kept:?}"
    );
    let kept = kept.to_string();
    assert!(kept.contains("is retained"), "{kept}");
    assert!(
        kept.contains("aws ecr delete-repository --repository-name team/api --force"),
        "{kept}"
    );
    r.delete(&cx, &owned[1]).await.expect("scratch is deleted");
    let names: Vec<String> = ecr
        .describe_repositories()
        .send()
        .await
        .unwrap()
        .repositories()
        .iter()
        .filter_map(|r| r.repository_name().map(str::to_string))
        .collect();
    assert_eq!(names, ["team/api"], "the retained repository stays");
}

/// The non-default rules of the webapp example's HTTPS listener, by priority:
/// (path patterns, target group ARN).
async fn webapp_rules(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
) -> (String, Vec<(String, Vec<String>, String)>) {
    let lb = elb
        .describe_load_balancers()
        .names("webapp-alb")
        .send()
        .await
        .unwrap();
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(lb.load_balancers()[0].load_balancer_arn().unwrap())
        .send()
        .await
        .unwrap();
    let https = listeners
        .listeners()
        .iter()
        .find(|l| l.port() == Some(443))
        .unwrap()
        .listener_arn()
        .unwrap()
        .to_string();
    let rules = elb
        .describe_rules()
        .listener_arn(&https)
        .send()
        .await
        .unwrap();
    let rules = rules
        .rules()
        .iter()
        .filter(|r| r.is_default() != Some(true))
        .map(|r| {
            let c = &r.conditions()[0];
            let paths = match c.path_pattern_config() {
                Some(p) => p.values().to_vec(),
                None => c.values().to_vec(),
            };
            (
                r.priority().unwrap().to_string(),
                paths,
                r.actions()[0]
                    .target_group_arn()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    (https, rules)
}

#[tokio::test]
async fn webapp_example_routes_api_to_the_backend_and_keeps_its_listener_rules() {
    let (_guard, emu) = emulator().await;
    let webapp = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/examples/webapp");
    let out = emu.mooring(&["validate", "manifests/examples/webapp"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    emu.seed_examples();

    // From nothing: target groups, then the load balancer and its rule, then the services
    // (each after the load balancer that forwards to its target group).
    let (report, _) = apply(emu, &webapp).await;
    assert!(
        report.resources.iter().all(|r| r.error().is_none()),
        "{report:#?}"
    );
    let at = |kind: Kind, name: &str| {
        report
            .resources
            .iter()
            .position(|r| r.kind == kind && r.name == name)
            .unwrap_or_else(|| panic!("{kind:?}/{name} in {report:#?}"))
    };
    let alb = at(Kind::LoadBalancer, "webapp-alb");
    assert!(at(Kind::TargetGroup, "webapp-backend") < alb);
    assert!(alb < at(Kind::Service, "webapp-backend"));
    assert!(alb < at(Kind::Service, "webapp-frontend"));
    assert!(at(Kind::LogGroup, "webapp-backend-logs") < at(Kind::Service, "webapp-backend"));

    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&emu.sdk_config().await);
    let tg = |name: &'static str| {
        let elb = elb.clone();
        async move {
            elb.describe_target_groups()
                .names(name)
                .send()
                .await
                .unwrap()
                .target_groups()[0]
                .target_group_arn()
                .unwrap()
                .to_string()
        }
    };
    let (backend, frontend) = (tg("webapp-backend").await, tg("webapp-frontend").await);
    let (https, rules) = webapp_rules(&elb).await;
    assert_eq!(
        rules,
        [(
            "10".to_string(),
            vec!["/api/*".to_string()],
            backend.clone()
        )]
    );
    let (svc, _) = describe_service(emu, "webapp-prd", "webapp-backend").await;
    assert_eq!(
        svc.load_balancers()[0].target_group_arn(),
        Some(backend.as_str())
    );
    assert_eq!(svc.load_balancers()[0].container_port(), Some(3001));

    // The database's group (another team's, seeded) lets the backend's tasks in on 5432,
    // by one rule tagged as the webapp stack's.
    let ec2 = aws_sdk_ec2::Client::new(&emu.sdk_config().await);
    let group_id = |name: &'static str| {
        let ec2 = ec2.clone();
        async move {
            ec2.describe_security_groups()
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("group-name")
                        .values(name)
                        .build(),
                )
                .send()
                .await
                .unwrap()
                .security_groups()[0]
                .group_id()
                .unwrap()
                .to_string()
        }
    };
    let (db, backend_sg) = (
        group_id("webapp-db").await,
        group_id("webapp-backend").await,
    );
    let db_rules = ec2
        .describe_security_group_rules()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-id")
                .values(&db)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ingress: Vec<_> = db_rules
        .security_group_rules()
        .iter()
        .filter(|r| r.is_egress() == Some(false))
        .collect();
    assert_eq!(ingress.len(), 1, "{ingress:#?}");
    assert_eq!(ingress[0].from_port(), Some(5432));
    assert_eq!(
        ingress[0]
            .referenced_group_info()
            .and_then(|g| g.group_id()),
        Some(backend_sg.as_str())
    );
    assert!(
        ingress[0]
            .tags()
            .iter()
            .any(|t| t.key() == Some("mooring.dev/stack") && t.value() == Some("webapp")),
        "{ingress:#?}"
    );

    // Steady: nothing to do, nothing written.
    let (report, aws) = plan(emu, &webapp).await;
    assert!(!report.has_changes(), "{report:#?}");
    assert_eq!(all_writes(&aws), vec![], "plan must not write");

    // Out of band: the rule's path changes, and someone adds a rule of their own on the
    // listener mooring owns. Both are named by priority; apply puts the path back and
    // removes the foreign rule (the listener declares its rules).
    let rule_arn = elb
        .describe_rules()
        .listener_arn(&https)
        .send()
        .await
        .unwrap()
        .rules()
        .iter()
        .find(|r| r.priority() == Some("10"))
        .unwrap()
        .rule_arn()
        .unwrap()
        .to_string();
    let path = |p: &str| {
        aws_sdk_elasticloadbalancingv2::types::RuleCondition::builder()
            .field("path-pattern")
            .path_pattern_config(
                aws_sdk_elasticloadbalancingv2::types::PathPatternConditionConfig::builder()
                    .values(p)
                    .build(),
            )
            .build()
    };
    let forward = |arn: &str| {
        aws_sdk_elasticloadbalancingv2::types::Action::builder()
            .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
            .target_group_arn(arn)
            .build()
    };
    elb.modify_rule()
        .rule_arn(&rule_arn)
        .conditions(path("/v2/*"))
        .actions(forward(&backend))
        .send()
        .await
        .unwrap();
    elb.create_rule()
        .listener_arn(&https)
        .priority(99)
        .conditions(path("/admin/*"))
        .actions(forward(&frontend))
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["plan", "manifests/examples/webapp"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    for expected in [
        r#"~ listeners.443.rules.10.conditions.pathPatterns: ["/v2/*"] -> ["/api/*"]"#,
        "listeners.443.rules.99: ",
    ] {
        assert!(
            stdout(&out).contains(expected),
            "{expected}: {}",
            stdout(&out)
        );
    }
    let (report, aws) = apply(emu, &webapp).await;
    assert!(
        report.resources.iter().all(|r| r.error().is_none()),
        "{report:#?}"
    );
    let writes = all_writes(&aws);
    for op in ["ModifyRule", "DeleteRule"] {
        assert!(writes.iter().any(|(_, o)| o == op), "{op}: {writes:?}");
    }
    assert!(
        !writes.iter().any(|(_, o)| o == "ModifyListener"),
        "the default rule is left alone: {writes:?}"
    );
    let (_, rules) = webapp_rules(&elb).await;
    assert_eq!(
        rules,
        [(
            "10".to_string(),
            vec!["/api/*".to_string()],
            backend.clone()
        )]
    );

    // Moved by hand to another priority: moved back, not rewritten.
    elb.set_rule_priorities()
        .rule_priorities(
            aws_sdk_elasticloadbalancingv2::types::RulePriorityPair::builder()
                .rule_arn(&rule_arn)
                .priority(20)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (report, aws) = apply(emu, &webapp).await;
    assert!(
        report.resources.iter().all(|r| r.error().is_none()),
        "{report:#?}"
    );
    let writes = all_writes(&aws);
    assert!(
        writes.iter().any(|(_, o)| o == "SetRulePriorities")
            && !writes
                .iter()
                .any(|(_, o)| o == "CreateRule" || o == "DeleteRule"),
        "{writes:?}"
    );
    let (_, rules) = webapp_rules(&elb).await;
    assert_eq!(
        rules,
        [("10".to_string(), vec!["/api/*".to_string()], backend)]
    );
    let (report, _) = plan(emu, &webapp).await;
    assert!(!report.has_changes(), "{report:#?}");
}

/// An ingress rule of a security group, as another client sees it: (ID, source,
/// description, the `mooring.dev/resource` tag).
type SeenRule = (String, String, Option<String>, Option<String>);

async fn ingress_rules(ec2: &aws_sdk_ec2::Client, group: &str) -> Vec<SeenRule> {
    let out = ec2
        .describe_security_group_rules()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-id")
                .values(group)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut rules: Vec<SeenRule> = out
        .security_group_rules()
        .iter()
        .filter(|r| r.is_egress() == Some(false))
        .map(|r| {
            let source = r
                .cidr_ipv4()
                .map(str::to_string)
                .or_else(|| {
                    r.referenced_group_info()
                        .and_then(|g| g.group_id())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            let owner = r
                .tags()
                .iter()
                .find(|t| t.key() == Some("mooring.dev/resource"))
                .and_then(|t| t.value())
                .map(str::to_string);
            (
                r.security_group_rule_id().unwrap().to_string(),
                source,
                r.description().map(str::to_string),
                owner,
            )
        })
        .collect();
    rules.sort_by(|a, b| a.1.cmp(&b.1));
    rules
}

#[tokio::test]
async fn ingress_rules_on_a_group_of_another_team_touch_only_their_own() {
    let (_guard, emu) = emulator().await;
    let ec2 = aws_sdk_ec2::Client::new(&emu.sdk_config().await);
    // The database's group belongs to another team, with a rule of theirs.
    let vpc = ec2
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("is-default")
                .values("true")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .vpcs()[0]
        .vpc_id()
        .unwrap()
        .to_string();
    let db = ec2
        .create_security_group()
        .group_name("salon-db")
        .description("the database (not mooring's)")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    ec2.authorize_security_group_ingress()
        .group_id(&db)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(5432)
                .to_port(5432)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("192.168.0.0/16")
                        .description("vpn")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let foreign = ingress_rules(&ec2, &db).await;
    assert_eq!(foreign.len(), 1);

    let stack = |name: &str| {
        format!("apiVersion: mooring.dev/v1alpha1\nkind: Stack\nmetadata: {{name: {name}}}\n")
    };
    let webapp = tempfile::tempdir().unwrap();
    std::fs::write(webapp.path().join("stack.yaml"), stack("webapp")).unwrap();
    std::fs::write(
        webapp.path().join("backend.yaml"),
        "apiVersion: mooring.dev/v1alpha1
kind: SecurityGroup
metadata: {name: backend}
spec:
  vpc: default
",
    )
    .unwrap();
    let access = webapp.path().join("db-access.yaml");
    std::fs::write(
        &access,
        "apiVersion: mooring.dev/v1alpha1
kind: SecurityGroupIngress
metadata: {name: db-access}
spec:
  groupName: salon-db
  rules:
    - {port: 5432, from: {securityGroup: backend}, description: the backend}
    - {port: 5432, from: {cidr: 10.8.0.0/16}, description: migrations}
",
    )
    .unwrap();

    // From nothing: the backend's group first, then the rules, tagged as this manifest's.
    let (report, _) = apply(emu, webapp.path()).await;
    let order: Vec<(Kind, Action)> = report
        .resources
        .iter()
        .map(|r| (r.kind, r.action))
        .collect();
    assert_eq!(
        order,
        [
            (Kind::SecurityGroup, Action::Create),
            (Kind::SecurityGroupIngress, Action::Create)
        ]
    );
    assert_eq!(report.resources[1].aws_id, db);
    let backend = ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values("backend")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .security_groups()[0]
        .group_id()
        .unwrap()
        .to_string();
    let rules = ingress_rules(&ec2, &db).await;
    let ours = |rules: &[SeenRule]| -> Vec<(String, String)> {
        rules
            .iter()
            .filter(|r| r.3.as_deref() == Some("SecurityGroupIngress/db-access"))
            .map(|r| (r.1.clone(), r.0.clone()))
            .collect()
    };
    let mut sources: Vec<String> = ours(&rules).into_iter().map(|(s, _)| s).collect();
    sources.sort();
    let mut expected = vec!["10.8.0.0/16".to_string(), backend.clone()];
    expected.sort();
    assert_eq!(sources, expected);
    assert!(
        rules.contains(&foreign[0]),
        "the foreign rule is untouched: {rules:?}"
    );

    // Steady: nothing to do, nothing written; the kind's own reads are one
    // DescribeSecurityGroups for its groups and one DescribeSecurityGroupRules.
    let (report, aws) = plan(emu, webapp.path()).await;
    assert!(!report.has_changes(), "{report:#?}");
    assert_eq!(all_writes(&aws), vec![], "plan must not write");
    assert_eq!(aws.calls.count("EC2", "DescribeSecurityGroupRules"), 1);
    // SecurityGroup/backend: its names and mooring's groups (shared); this kind: its group.
    assert_eq!(aws.calls.count("EC2", "DescribeSecurityGroups"), 3);

    // Another stack adds its own rule to the same group.
    let reports = tempfile::tempdir().unwrap();
    std::fs::write(reports.path().join("stack.yaml"), stack("reports")).unwrap();
    std::fs::write(
        reports.path().join("db.yaml"),
        "apiVersion: mooring.dev/v1alpha1
kind: SecurityGroupIngress
metadata: {name: reports-db}
spec:
  groupId: GROUP
  rules:
    - {port: 5432, from: {cidr: 10.20.0.0/16}}
"
        .replace("GROUP", &db),
    )
    .unwrap();
    apply(emu, reports.path()).await;
    let theirs: Vec<SeenRule> = ingress_rules(&ec2, &db)
        .await
        .into_iter()
        .filter(|r| r.3.as_deref() == Some("SecurityGroupIngress/reports-db"))
        .collect();
    assert_eq!(theirs.len(), 1);
    let (report, _) = plan(emu, webapp.path()).await;
    assert!(
        !report.has_changes(),
        "another stack's rule is not drift: {report:#?}"
    );

    // Out of band: one of ours revoked, the other's description changed. Both named, both
    // put back; nobody else's rule is touched.
    let cidr_rule = ours(&ingress_rules(&ec2, &db).await)
        .into_iter()
        .find(|(s, _)| s == "10.8.0.0/16")
        .unwrap()
        .1;
    let group_rule = ours(&ingress_rules(&ec2, &db).await)
        .into_iter()
        .find(|(s, _)| *s == backend)
        .unwrap()
        .1;
    ec2.revoke_security_group_ingress()
        .group_id(&db)
        .security_group_rule_ids(&cidr_rule)
        .send()
        .await
        .unwrap();
    ec2.modify_security_group_rules()
        .group_id(&db)
        .security_group_rules(
            aws_sdk_ec2::types::SecurityGroupRuleUpdate::builder()
                .security_group_rule_id(&group_rule)
                .security_group_rule(
                    aws_sdk_ec2::types::SecurityGroupRuleRequest::builder()
                        .ip_protocol("tcp")
                        .from_port(5432)
                        .to_port(5432)
                        .referenced_group_id(&backend)
                        .description("changed by hand")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let path = webapp.path().to_str().unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("SecurityGroupIngress/db-access: update"),
        "{text}"
    );
    assert!(
        text.contains(r#"~ rules.tcp 5432 10.8.0.0/16: (none) -> "migrations""#),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#"~ rules.tcp 5432 {backend}: "changed by hand" -> "the backend""#
        )),
        "{text}"
    );
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let (report, _) = plan(emu, webapp.path()).await;
    assert!(!report.has_changes(), "{report:#?}");
    let rules = ingress_rules(&ec2, &db).await;
    assert_eq!(ours(&rules).len(), 2, "{rules:?}");
    assert!(
        rules
            .iter()
            .any(|r| r.0 == group_rule && r.2.as_deref() == Some("the backend")),
        "the description was changed in place: {rules:?}"
    );
    assert!(rules.contains(&foreign[0]), "{rules:?}");
    assert!(rules.contains(&theirs[0]), "{rules:?}");

    // The manifest goes: prune revokes this stack's rules and nothing else.
    std::fs::remove_file(&access).unwrap();
    let set = load_dir(webapp.path()).unwrap();
    let ctx = Context::new(emu.aws().await);
    let cache = PassCache::default();
    let cx = Cx {
        ctx: &ctx,
        set: &set,
        cache: &cache,
    };
    let rec = Kind::SecurityGroupIngress.reconciler();
    let owned = rec.owned(&cx).await.unwrap().unwrap();
    assert_eq!(
        owned
            .iter()
            .map(|o| (o.name.as_str(), o.scope.as_deref()))
            .collect::<Vec<_>>(),
        [("db-access", Some(db.as_str()))]
    );
    rec.delete(&cx, &owned[0]).await.unwrap();
    let rules = ingress_rules(&ec2, &db).await;
    assert_eq!(rules, {
        let mut left = vec![foreign[0].clone(), theirs[0].clone()];
        left.sort_by(|a, b| a.1.cmp(&b.1));
        left
    });
    assert!(rec.owned(&cx).await.unwrap().unwrap().is_empty());

    // Asking for the other team's rule: a requirement, not a duplicate or a takeover...
    let vpn = "apiVersion: mooring.dev/v1alpha1
kind: SecurityGroupIngress
metadata: {name: vpn-access}
spec:
  groupName: salon-db
  rules:
    - {port: 5432, from: {cidr: 192.168.0.0/16}, description: vpn}
";
    std::fs::write(&access, vpn).unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("the rule `tcp 5432 192.168.0.0/16` is already in")
            && text.contains("not this stack's"),
        "{text}"
    );
    assert!(ingress_rules(&ec2, &db).await.contains(&foreign[0]));
    // ...unless adopted: the same rule, now tagged as this manifest's.
    std::fs::write(
        &access,
        vpn.replace(
            "{name: vpn-access}",
            "{name: vpn-access, annotations: {mooring.dev/adopt: \"true\"}}",
        ),
    )
    .unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let rules = ingress_rules(&ec2, &db).await;
    let adopted = rules.iter().find(|r| r.0 == foreign[0].0).unwrap();
    assert_eq!(
        adopted.3.as_deref(),
        Some("SecurityGroupIngress/vpn-access")
    );
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!(emu.mooring(&["plan", path]).status.code(), Some(0));
}

/// A target group, the load balancer forwarding to it, and two alarms on the basic
/// fixture's service: CPU (the service short form) and 5xx (the target group short form).
const ALARMS: &str = "apiVersion: mooring.dev/v1alpha1
kind: TargetGroup
metadata: {name: api}
spec: {port: 3000, vpc: default, healthCheck: {path: /api/health}}
---
apiVersion: mooring.dev/v1alpha1
kind: LoadBalancer
metadata: {name: api}
spec:
  subnets: {lookup: {vpc: default}}
  securityGroups: {lookup: {vpc: default, names: [default]}}
  listeners:
    - {port: 80, protocol: HTTP, defaultAction: {forward: api}}
---
apiVersion: mooring.dev/v1alpha1
kind: Alarm
metadata: {name: api-cpu}
spec:
  description: API CPU above 85 % for 3 minutes
  service: {name: api, metric: cpu}
  period: 60
  threshold: 85
  comparison: greaterThan
  evaluationPeriods: 3
  alarmActions: [arn:aws:sns:us-east-1:123456789012:alerts]
  okActions: [arn:aws:sns:us-east-1:123456789012:alerts]
  tags: {team: core}
---
apiVersion: mooring.dev/v1alpha1
kind: Alarm
metadata: {name: api-5xx}
spec:
  targetGroup: {name: api, metric: 5xx}
  threshold: 10
  comparison: greaterThanOrEqual
  evaluationPeriods: 5
  datapointsToAlarm: 2
  treatMissingData: notBreaching
  alarmActions: [arn:aws:sns:us-east-1:123456789012:pager]
";

async fn metric_alarm(
    cw: &aws_sdk_cloudwatch::Client,
    name: &str,
) -> Option<aws_sdk_cloudwatch::types::MetricAlarm> {
    cw.describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .unwrap()
        .metric_alarms()
        .first()
        .cloned()
}

#[tokio::test]
async fn alarms_round_trip_and_leave_target_tracking_and_other_stacks_alone() {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic, Tag};
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    std::fs::write(dir.path().join("alarms.yaml"), ALARMS).unwrap();
    edit(
        &dir.path().join("service.yaml"),
        "  enableExecuteCommand: true\n",
        "  enableExecuteCommand: true\n  loadBalancers:\n    - targetGroup: api\n",
    );
    let cw = aws_sdk_cloudwatch::Client::new(&emu.sdk_config().await);
    // Out of band, before mooring: what Application Auto Scaling makes for target
    // tracking (no mooring tags), and an alarm of another stack in the same account.
    let tracking = "TargetTracking-service/basic/api-AlarmHigh-0b1c2d3e";
    cw.put_metric_alarm()
        .alarm_name(tracking)
        .alarm_description("DO NOT EDIT OR DELETE. For TargetTrackingScaling policy")
        .namespace("AWS/ECS")
        .metric_name("CPUUtilization")
        .dimensions(
            Dimension::builder()
                .name("ClusterName")
                .value("test")
                .build(),
        )
        .dimensions(
            Dimension::builder()
                .name("ServiceName")
                .value("api")
                .build(),
        )
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(3)
        .threshold(80.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .alarm_actions("arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:x")
        .send()
        .await
        .unwrap();
    cw.put_metric_alarm()
        .alarm_name("other-cpu")
        .namespace("AWS/ECS")
        .metric_name("CPUUtilization")
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(90.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .tags(
            Tag::builder()
                .key("mooring.dev/managed-by")
                .value("mooring")
                .build(),
        )
        .tags(
            Tag::builder()
                .key("mooring.dev/stack")
                .value("other")
                .build(),
        )
        .tags(
            Tag::builder()
                .key("mooring.dev/resource")
                .value("Alarm/gone")
                .build(),
        )
        .send()
        .await
        .unwrap();

    // From nothing: after the service, the target group and the load balancer, whose
    // ARN suffixes become the 5xx alarm's dimensions.
    let (report, _) = apply(emu, dir.path()).await;
    let order: Vec<Kind> = report.resources.iter().map(|r| r.kind).collect();
    let at = |k: Kind| order.iter().position(|x| *x == k).unwrap();
    for k in [Kind::Service, Kind::TargetGroup, Kind::LoadBalancer] {
        assert!(at(k) < at(Kind::Alarm), "{order:?}");
    }
    for r in report.resources.iter().filter(|r| r.kind == Kind::Alarm) {
        assert_eq!(r.action, Action::Create, "{r:#?}");
        assert!(r.aws_id.contains(":alarm:api-"), "{}", r.aws_id);
    }
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&emu.sdk_config().await);
    let tg_arn = elb
        .describe_target_groups()
        .names("api")
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let lb_arn = elb
        .describe_load_balancers()
        .names("api")
        .send()
        .await
        .unwrap()
        .load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let five = metric_alarm(&cw, "api-5xx").await.expect("the 5xx alarm");
    let dims: std::collections::BTreeMap<&str, &str> = five
        .dimensions()
        .iter()
        .map(|d| (d.name().unwrap(), d.value().unwrap()))
        .collect();
    assert_eq!(dims["TargetGroup"], tg_arn.rsplit_once(':').unwrap().1);
    assert!(
        dims["TargetGroup"].starts_with("targetgroup/api/"),
        "{dims:?}"
    );
    assert_eq!(
        dims["LoadBalancer"],
        lb_arn.split_once(":loadbalancer/").unwrap().1
    );
    assert_eq!(five.namespace(), Some("AWS/ApplicationELB"));
    assert_eq!(five.metric_name(), Some("HTTPCode_Target_5XX_Count"));
    assert_eq!(five.statistic(), Some(&Statistic::Sum));
    assert_eq!(five.treat_missing_data(), Some("notBreaching"));
    assert_eq!(five.datapoints_to_alarm(), Some(2));
    let cpu = metric_alarm(&cw, "api-cpu").await.expect("the CPU alarm");
    assert_eq!(cpu.metric_name(), Some("CPUUtilization"));
    assert_eq!(cpu.threshold(), Some(85.0));
    let cpu_arn = cpu.alarm_arn().unwrap().to_string();
    let tags = cw
        .list_tags_for_resource()
        .resource_arn(&cpu_arn)
        .send()
        .await
        .unwrap();
    let tags: std::collections::BTreeMap<&str, &str> = tags
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags.get("team"), Some(&"core"));
    assert_eq!(tags.get("mooring.dev/stack"), Some(&"basic"));
    assert_eq!(tags.get("mooring.dev/resource"), Some(&"Alarm/api-cpu"));

    // Steady: nothing to do, nothing written; the alarms cost one DescribeAlarms and a
    // tag read each.
    let (report, aws) = plan(emu, dir.path()).await;
    assert!(!report.has_changes(), "{report:#?}");
    assert_eq!(all_writes(&aws), vec![], "plan must not write");
    let by_op = aws.calls.by_operation();
    assert_eq!(
        by_op.get("CloudWatch.DescribeAlarms"),
        Some(&1),
        "{by_op:?}"
    );
    assert_eq!(
        by_op.get("CloudWatch.ListTagsForResource"),
        Some(&2),
        "{by_op:?}"
    );

    // Out of band: a higher threshold (PutMetricAlarm replaces the alarm). Named, and
    // put back with everything else intact.
    cw.put_metric_alarm()
        .alarm_name("api-cpu")
        .alarm_description("API CPU above 85 % for 3 minutes")
        .namespace("AWS/ECS")
        .metric_name("CPUUtilization")
        .set_dimensions(Some(cpu.dimensions().to_vec()))
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(3)
        .threshold(95.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .alarm_actions("arn:aws:sns:us-east-1:123456789012:alerts")
        .ok_actions("arn:aws:sns:us-east-1:123456789012:alerts")
        .send()
        .await
        .unwrap();
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["plan", path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("Alarm/api-cpu: update\n  ~ threshold: 95.0 -> 85.0\n"),
        "{text}"
    );
    assert!(text.contains("Alarm/api-5xx: in sync"), "{text}");
    assert!(!text.contains("TargetTracking"), "{text}");
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let cpu = metric_alarm(&cw, "api-cpu").await.unwrap();
    assert_eq!(cpu.threshold(), Some(85.0));
    assert_eq!(
        cpu.alarm_actions(),
        ["arn:aws:sns:us-east-1:123456789012:alerts"]
    );
    assert_eq!(emu.mooring(&["plan", path]).status.code(), Some(0));

    // The 5xx alarm leaves the manifests: it is this stack's orphan, and pruning deletes
    // it alone — not the other stack's alarm, not Application Auto Scaling's.
    std::fs::write(
        dir.path().join("alarms.yaml"),
        ALARMS
            .split("---\napiVersion: mooring.dev/v1alpha1\nkind: Alarm\nmetadata: {name: api-5xx}")
            .next()
            .unwrap(),
    )
    .unwrap();
    let set = load_dir(dir.path()).expect("valid manifests");
    let ctx = Context::new(emu.aws().await);
    let cache = PassCache::default();
    let cx = Cx {
        ctx: &ctx,
        set: &set,
        cache: &cache,
    };
    let alarms = Kind::Alarm.reconciler();
    let mut owned = alarms
        .owned(&cx)
        .await
        .expect("alarms list their own")
        .unwrap();
    owned.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = owned.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["api-5xx", "api-cpu"]);
    let orphan = owned.iter().find(|o| o.name == "api-5xx").unwrap();
    alarms.delete(&cx, orphan).await.unwrap();
    assert!(metric_alarm(&cw, "api-5xx").await.is_none());
    assert!(metric_alarm(&cw, "api-cpu").await.is_some());
    assert!(metric_alarm(&cw, "other-cpu").await.is_some());
    let kept = metric_alarm(&cw, tracking)
        .await
        .expect("target tracking's alarm stays");
    assert_eq!(kept.threshold(), Some(80.0));
}

/// A stack whose service reads Redis's endpoint and whose API destination reads the ALB's
/// DNS name (`SECRET_ARN` is the connection's key).
const VALUES_FROM: &str = "apiVersion: mooring.dev/v1alpha1
kind: Stack
metadata: {name: values}
---
apiVersion: mooring.dev/v1alpha1
kind: Cluster
metadata: {name: prd}
spec: {}
---
apiVersion: mooring.dev/v1alpha1
kind: ReplicationGroup
metadata: {name: redis}
spec:
  engineVersion: '7.1'
  nodeType: cache.t2.small
  numCacheClusters: 1
  securityGroups: {lookup: {vpc: default, names: [default]}}
---
apiVersion: mooring.dev/v1alpha1
kind: LoadBalancer
metadata: {name: alb}
spec:
  loadBalancerName: values-alb
  subnets: {lookup: {vpc: default}}
  securityGroups: {lookup: {vpc: default, names: [default]}}
  listeners:
    - {port: 80, protocol: HTTP, defaultAction: {redirect: {protocol: HTTPS, port: 443}}}
---
apiVersion: mooring.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  cluster: prd
  network:
    subnets: {lookup: {vpc: default}}
    securityGroups: {lookup: {vpc: default, names: [default]}}
  taskDefinition:
    cpu: 256
    memory: 512
    container:
      image: nginx:1.27
      port: 80
      environment:
        NODE_ENV: production
        REDIS_HOST: {from: ReplicationGroup/redis, field: primaryEndpoint.address}
        REDIS_PORT: {from: ReplicationGroup/redis, field: primaryEndpoint.port}
---
apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata: {name: backend}
spec:
  apiKey: {headerName: x-api-key, secretId: SECRET_ARN}
---
apiVersion: mooring.dev/v1alpha1
kind: ApiDestination
metadata: {name: jobs}
spec:
  connection: backend
  endpoint: {from: LoadBalancer/alb, field: dnsName, format: 'https://{}/api/jobs'}
  httpMethod: POST
";

#[tokio::test]
async fn values_from_other_resources_are_filled_in_order_and_follow_their_source() {
    let (_guard, emu) = emulator().await;
    let config = emu.sdk_config().await;
    let secret = aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name("values/api-key")
        .secret_string("key-that-is-never-shown")
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stack.yaml");
    std::fs::write(
        &file,
        VALUES_FROM.replace("SECRET_ARN", secret.arn().unwrap()),
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();

    // From nothing: the values are not known before their sources exist.
    let out = emu.mooring(&["plan", path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}{}", stderr(&out));
    for expected in [
        "+ taskDefinition.container.environment.REDIS_HOST = \"(known after apply)\"",
        "+ taskDefinition.container.environment.REDIS_PORT = \"(known after apply)\"",
        "+ taskDefinition.container.environment.NODE_ENV = \"production\"",
        "+ endpoint = \"(known after apply)\"",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let out = emu.mooring(&["plan", path, "--output", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("plan json");
    let jobs = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "ApiDestination")
        .unwrap();
    let endpoint = jobs["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "endpoint")
        .unwrap();
    assert_eq!(endpoint["desired"], "(known after apply)");

    // One apply creates the sources first and fills the values in, in the same pass.
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let ec = aws_sdk_elasticache::Client::new(&config);
    let groups = ec
        .describe_replication_groups()
        .replication_group_id("redis")
        .send()
        .await
        .unwrap();
    let primary = groups.replication_groups()[0].node_groups()[0]
        .primary_endpoint()
        .unwrap()
        .clone();
    let address = primary.address().unwrap().to_string();
    assert!(address.contains("redis"), "{address}");
    let (_, td) = describe_service(emu, "prd", "api").await;
    let env = |td: &aws_sdk_ecs::types::TaskDefinition, name: &str| {
        td.container_definitions()[0]
            .environment()
            .iter()
            .find(|kv| kv.name() == Some(name))
            .and_then(|kv| kv.value())
            .map(str::to_string)
    };
    assert_eq!(env(&td, "REDIS_HOST"), Some(address.clone()));
    assert_eq!(
        env(&td, "REDIS_PORT"),
        primary.port().map(|p| p.to_string())
    );
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let dns = |name: &'static str| {
        let elb = elb.clone();
        async move {
            elb.describe_load_balancers()
                .names(name)
                .send()
                .await
                .unwrap()
                .load_balancers()[0]
                .dns_name()
                .unwrap()
                .to_string()
        }
    };
    let eb = aws_sdk_eventbridge::Client::new(&config);
    let endpoint = || async {
        eb.describe_api_destination()
            .name("jobs")
            .send()
            .await
            .unwrap()
            .invocation_endpoint()
            .unwrap()
            .to_string()
    };
    let first_dns = dns("values-alb").await;
    assert_eq!(endpoint().await, format!("https://{first_dns}/api/jobs"));

    // Converged: an empty plan, and another apply writes nothing.
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let (report, aws) = apply(emu, dir.path()).await;
    assert!(report.resources.iter().all(|r| r.action == Action::None));
    assert_eq!(all_writes(&aws), Vec::<(String, String)>::new());

    // The source changes (a new ALB, under another name): plan cannot know its DNS name
    // yet, and one apply creates it and moves the destination to it.
    edit(
        &file,
        "loadBalancerName: values-alb",
        "loadBalancerName: values-alb-2",
    );
    let out = emu.mooring(&["plan", path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "ApiDestination/jobs: update\n  ~ endpoint: \"https://{first_dns}/api/jobs\" -> \"(known after apply)\""
        )),
        "{text}"
    );
    let (report, _) = apply(emu, dir.path()).await;
    let jobs = report
        .resources
        .iter()
        .find(|r| r.kind == Kind::ApiDestination)
        .unwrap();
    assert!(jobs.applied, "{report:#?}");
    let second_dns = dns("values-alb-2").await;
    assert_ne!(second_dns, first_dns);
    assert_eq!(endpoint().await, format!("https://{second_dns}/api/jobs"));
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // The service did not move: Redis is the same.
    let (_, td) = describe_service(emu, "prd", "api").await;
    assert_eq!(env(&td, "REDIS_HOST"), Some(address));
}

const PLANFILE_STACK: &str = r#"apiVersion: mooring.dev/v1alpha1
kind: Stack
metadata:
  name: planfile
---
apiVersion: mooring.dev/v1alpha1
kind: Cluster
metadata:
  name: pf
spec: {}
---
apiVersion: mooring.dev/v1alpha1
kind: Cluster
metadata:
  name: pf-other
spec:
  tags:
    team: core
---
apiVersion: mooring.dev/v1alpha1
kind: ParameterSet
metadata:
  name: pf-config
spec:
  path: /pf/config
  parameters:
    db/host: db.internal
---
apiVersion: mooring.dev/v1alpha1
kind: Service
metadata:
  name: pf-api
spec:
  cluster: pf
  desiredCount: 1
  network:
    subnets:
      lookup: {vpc: default}
    securityGroups:
      lookup: {vpc: default, names: [default]}
  taskDefinition:
    cpu: 256
    memory: 512
    executionRoleArn: arn:aws:iam::123456789012:role/exec
    container:
      image: nginx:1.27
      port: 3000
      secrets:
        DB_HOST: {ssmParameter: /pf/config/db/host}
"#;

/// `Kind/name` → action of a JSON plan's resources.
fn planned_actions(out: &std::process::Output) -> Vec<(String, String)> {
    let json: serde_json::Value = serde_json::from_str(&stdout(out)).expect("plan json");
    json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                format!(
                    "{}/{}",
                    r["kind"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                ),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn cluster_exists(emu: &Emulator, name: &str) -> bool {
    let out = emu
        .ecs()
        .await
        .describe_clusters()
        .clusters(name)
        .send()
        .await
        .unwrap();
    out.clusters().iter().any(|c| c.status() == Some("ACTIVE"))
}

#[tokio::test]
async fn a_saved_plan_is_applied_exactly_and_refused_once_stale() {
    let (_guard, emu) = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stack.yaml");
    std::fs::write(&file, PLANFILE_STACK).unwrap();
    let path = dir.path().to_str().unwrap();
    let plans = tempfile::tempdir().unwrap();
    let plan_file = plans.path().join("plan.json");
    let plan_path = plan_file.to_str().unwrap();

    // plan --out → apply FILE converges.
    let out = emu.mooring(&["plan", path, "--out", plan_path]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Saved the plan to"),
        "{}",
        stderr(&out)
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    assert_eq!(saved["format"], "mooring-plan");
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["region"], "us-east-1");
    assert!(saved["revision"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(saved["resources"].as_array().unwrap().len(), 4, "{saved}");
    // A plan made in another region is refused.
    let elsewhere = plans.path().join("elsewhere.json");
    std::fs::write(
        &elsewhere,
        std::fs::read_to_string(&plan_file)
            .unwrap()
            .replace("\"us-east-1\"", "\"eu-west-1\""),
    )
    .unwrap();
    let out = emu.mooring(&["apply", elsewhere.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("region eu-west-1, but the credentials work in account"),
        "{}",
        stderr(&out)
    );
    assert!(!cluster_exists(emu, "pf").await);
    let out = emu.mooring(&["apply", plan_path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("Apply: 4 created"),
        "{}",
        stdout(&out)
    );
    assert_eq!(emu.mooring(&["plan", path]).status.code(), Some(0));

    // A new cluster to create, planned; then someone changes a parameter by hand.
    std::fs::write(
        dir.path().join("late.yaml"),
        "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: pf-late\nspec: {}\n",
    )
    .unwrap();
    let out = emu.mooring(&["plan", path, "--out", plan_path]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let ssm = aws_sdk_ssm::Client::new(&emu.sdk_config().await);
    ssm.put_parameter()
        .name("/pf/config/db/host")
        .value("db.moved")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let out = emu.mooring(&["apply", plan_path]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}{err}", stdout(&out));
    assert!(
        err.contains("ParameterSet/pf-config: its live state changed"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(
        !err.contains("Cluster/pf-late"),
        "only what moved is named: {err}"
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    // Nothing was written: the planned cluster is not there, the hand-set value stays.
    assert!(!cluster_exists(emu, "pf-late").await);
    let out = emu.mooring(&["apply", plan_path, "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(json["error"]["category"], "stale_plan", "{json}");
    assert_eq!(
        json["error"]["moved"][0],
        "ParameterSet/pf-config: its live state changed; planned to none, now update",
        "{json}"
    );
    assert!(!cluster_exists(emu, "pf-late").await);
    let host = ssm
        .get_parameter()
        .name("/pf/config/db/host")
        .send()
        .await
        .unwrap();
    assert_eq!(host.parameter().and_then(|p| p.value()), Some("db.moved"));

    // A plan made before the manifests changed is refused too.
    let out = emu.mooring(&["plan", path, "--out", plan_path]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    edit(&dir.path().join("late.yaml"), "pf-late", "pf-later");
    let out = emu.mooring(&["apply", plan_path]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("changed since the plan"),
        "{}",
        stderr(&out)
    );
    assert!(!cluster_exists(emu, "pf-later").await);

    // Planned again, it applies: the value is put back and the cluster created.
    let out = emu.mooring(&["plan", path, "--out", plan_path]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = emu.mooring(&["apply", plan_path, "--dir", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(cluster_exists(emu, "pf-later").await);
    let host = ssm
        .get_parameter()
        .name("/pf/config/db/host")
        .send()
        .await
        .unwrap();
    assert_eq!(
        host.parameter().and_then(|p| p.value()),
        Some("db.internal")
    );
    assert_eq!(emu.mooring(&["plan", path]).status.code(), Some(0));

    // --target: only the service and what it depends on.
    edit(&file, "team: core", "team: platform");
    edit(&file, "db/host: db.internal", "db/host: db2.internal");
    edit(&file, "desiredCount: 1", "desiredCount: 2");
    let out = emu.mooring(&[
        "plan",
        path,
        "--target",
        "Service/pf-api",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let actions = planned_actions(&out);
    assert_eq!(
        actions,
        vec![
            ("Cluster/pf".to_string(), "none".to_string()),
            ("ParameterSet/pf-config".to_string(), "update".to_string()),
            ("Service/pf-api".to_string(), "update".to_string()),
        ]
    );
    let out = emu.mooring(&["plan", path, "--target", "Service/pf-apj"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("did you mean `Service/pf-api`?"),
        "{}",
        stderr(&out)
    );
    let out = emu.mooring(&["apply", path, "--target", "Service/pf-api"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(!stdout(&out).contains("pf-other"), "{}", stdout(&out));
    let (svc, _) = describe_service(emu, "pf", "pf-api").await;
    assert_eq!(svc.desired_count(), 2);
    let out = emu.mooring(&["plan", path, "--output", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let pending: Vec<_> = planned_actions(&out)
        .into_iter()
        .filter(|(_, a)| a != "none")
        .collect();
    assert_eq!(
        pending,
        vec![("Cluster/pf-other".to_string(), "update".to_string())]
    );
}

/// `mooring apply DIR` on a terminal (`script` gives it one), answering `answer`.
fn apply_on_a_terminal(emu: &Emulator, dir: &str, answer: &str) -> std::process::Output {
    use std::io::Write as _;
    let mooring = emu.mooring_command(&[]);
    let mut cmd = std::process::Command::new("script");
    cmd.args([
        "-qec",
        &format!("{} apply {dir}", env!("CARGO_BIN_EXE_mooring")),
        "/dev/null",
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    for (k, v) in mooring.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd.spawn().expect("run script (util-linux)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn apply_on_a_terminal_asks_first() {
    let (_guard, emu) = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("stack.yaml"),
        "apiVersion: mooring.dev/v1alpha1\nkind: Stack\nmetadata:\n  name: tty\n---\n\
         apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: pf-tty\nspec: {}\n",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let out = apply_on_a_terminal(emu, path, "no");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Cluster/pf-tty: create"), "{text}");
    assert!(text.contains("Only `yes` goes ahead"), "{text}");
    assert!(
        text.contains("Apply cancelled; nothing was changed."),
        "{text}"
    );
    assert!(!cluster_exists(emu, "pf-tty").await);

    let out = apply_on_a_terminal(emu, path, "yes");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Cluster/pf-tty: created"), "{text}");
    assert!(cluster_exists(emu, "pf-tty").await);

    // --auto-approve on a terminal, and no terminal at all: no question.
    edit(
        &dir.path().join("stack.yaml"),
        "spec: {}",
        "spec: {tags: {team: a}}",
    );
    let out = apply_on_a_terminal(emu, &format!("{path} --auto-approve"), "");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Cluster/pf-tty: updated"), "{text}");
    assert!(!text.contains("goes ahead"), "{text}");
    edit(&dir.path().join("stack.yaml"), "team: a", "team: b");
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("Cluster/pf-tty: updated"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("goes ahead"), "{}", stdout(&out));
}

/// An image manifest as `docker push` would put it, distinct per `layer`.
fn image_manifest(layer: &str) -> String {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 7023,
            "digest": format!("sha256:{}", "c".repeat(64)),
        },
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 32654,
            "digest": format!("sha256:{layer}"),
        }],
    })
    .to_string()
}

/// Pushes a new image under `tag`; returns its digest.
async fn push(ecr: &aws_sdk_ecr::Client, repository: &str, tag: &str, layer: &str) -> String {
    ecr.put_image()
        .repository_name(repository)
        .image_tag(tag)
        .image_manifest(image_manifest(layer))
        .send()
        .await
        .expect("put image")
        .image()
        .and_then(|i| i.image_id())
        .and_then(|i| i.image_digest())
        .expect("a digest")
        .to_string()
}

#[tokio::test]
async fn images_in_ecr_are_followed_by_digest_and_a_push_of_the_same_tag_deploys() {
    let (_guard, emu) = emulator().await;
    let ecr = aws_sdk_ecr::Client::new(&emu.sdk_config().await);
    let repo = ecr
        .create_repository()
        .repository_name("team/api")
        .send()
        .await
        .unwrap()
        .repository
        .unwrap();
    let uri = repo.repository_uri().unwrap().to_string();
    let first = push(&ecr, "team/api", "latest", &"1".repeat(64)).await;
    let stable = push(&ecr, "team/api", "stable", &"2".repeat(64)).await;

    // Two services on the one (MUTABLE, no manifest) repository: `api` follows `latest`,
    // `worker` follows `stable`.
    let dir = fixture_copy("basic");
    let service = dir.path().join("service.yaml");
    edit(
        &service,
        "image: nginx:1.27",
        &format!("image: {uri}:latest"),
    );
    let worker = std::fs::read_to_string(&service)
        .unwrap()
        .replace("name: api", "name: worker")
        .replace(":latest", ":stable");
    std::fs::write(dir.path().join("worker.yaml"), worker).unwrap();
    apply(emu, dir.path()).await;
    let (_, td) = describe_api(emu).await;
    assert_eq!(image_of(&td), format!("{uri}@{first}"));
    let (_, worker_td) = describe_service(emu, "test", "worker").await;
    assert_eq!(image_of(&worker_td), format!("{uri}@{stable}"));

    // Steady: no change, no write, and one BatchGetImage for both services' tags.
    let (report, aws) = plan(emu, dir.path()).await;
    assert!(!report.has_changes(), "{report:#?}");
    assert_eq!(writes(&aws), 0);
    assert_eq!(aws.calls.count("ECR", "BatchGetImage"), 1);
    assert_eq!(aws.calls.count("ECR", "DescribeRepositories"), 1);

    // A push of the same tag: plan names the digests and the tag; only `api` moves.
    let second = push(&ecr, "team/api", "latest", &"3".repeat(64)).await;
    assert_ne!(first, second);
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["plan", path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let expected = format!(
        "\n  ~ taskDefinition.container.image: \"{uri}@{first}\" -> \"{uri}@{second}\" (tag latest)\n"
    );
    assert!(text.contains(&expected), "missing {expected:?} in\n{text}");
    assert!(text.contains("Service/api: update"), "{text}");
    assert!(text.contains("Service/worker: in sync"), "{text}");
    let (report, aws) = apply(emu, dir.path()).await;
    assert_eq!(aws.calls.count("ECS", "RegisterTaskDefinition"), 1);
    assert_eq!(aws.calls.count("ECS", "UpdateService"), 1);
    let api = report.resources.iter().find(|r| r.name == "api").unwrap();
    assert!(api.applied, "{report:#?}");
    let (svc, after) = describe_api(emu).await;
    assert_eq!(image_of(&after), format!("{uri}@{second}"));
    assert_eq!(after.revision(), td.revision() + 1);
    assert_eq!(svc.task_definition(), after.task_definition_arn());
    let (_, worker_after) = describe_service(emu, "test", "worker").await;
    assert_eq!(
        worker_after.task_definition_arn(),
        worker_td.task_definition_arn()
    );
    let (report, aws) = plan(emu, dir.path()).await;
    assert!(!report.has_changes(), "{report:#?}");
    assert_eq!(writes(&aws), 0);

    // A tag that is not there fails that service alone, which keeps its revision.
    edit(&dir.path().join("worker.yaml"), ":stable", ":missing");
    let set = load_dir(dir.path()).unwrap();
    let aws = emu.aws().await;
    let ctx = Context::new(aws.clone());
    let report = reconcile::apply_all(&ctx, &set, &reconcilers(&set), true).await;
    let failed = report
        .resources
        .iter()
        .find(|r| r.name == "worker")
        .unwrap();
    let e = failed.error().expect("the worker fails").message;
    assert!(
        e.contains("ECR has no image tagged `missing` in the repository team/api")
            && e.contains("running revision is kept"),
        "{e}"
    );
    assert_eq!(aws.calls.count("ECS", "UpdateService"), 0);
    assert_eq!(aws.calls.count("ECS", "RegisterTaskDefinition"), 0);
    let api = report.resources.iter().find(|r| r.name == "api").unwrap();
    assert!(api.error().is_none(), "{report:#?}");
    let (_, worker_now) = describe_service(emu, "test", "worker").await;
    assert_eq!(
        worker_now.task_definition_arn(),
        worker_td.task_definition_arn()
    );

    // `imageUpdate: tag` runs the tag as written (one revision, then steady).
    edit(&dir.path().join("worker.yaml"), ":missing", ":stable");
    edit(
        &service,
        "      port: 3000",
        "      imageUpdate: tag\n      port: 3000",
    );
    let (_, _) = apply(emu, dir.path()).await;
    let (_, td) = describe_api(emu).await;
    assert_eq!(image_of(&td), format!("{uri}:latest"));
    let (report, _) = plan(emu, dir.path()).await;
    assert!(!report.has_changes(), "{report:#?}");
}

/// How many DescribeTasks calls moto's tasks take per step of RUNNING → … → STOPPED
/// (exit code 0); `None`: moto's default, one.
fn moto_task_steps(emu: &Emulator, times: Option<u32>) {
    let (path, body) = match times {
        Some(t) => (
            "/moto-api/state-manager/set-transition",
            format!(
                r#"{{"model_name": "ecs::task", "transition": {{"progression": "manual", "times": {t}}}}}"#
            ),
        ),
        None => (
            "/moto-api/state-manager/unset-transition",
            r#"{"model_name": "ecs::task"}"#.to_string(),
        ),
    };
    let port: u16 = emu
        .endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("moto's port");
    let (status, body) = common::post(port, path, &[("Content-Type", "application/json")], &body)
        .expect("moto state manager");
    assert!(status < 300, "{status} {body}");
}

/// Applies with a short poll interval (pre-deploy tasks are polled); errors are returned.
async fn apply_polling(emu: &Emulator, dir: &Path) -> (PassReport, mooring::aws::Aws) {
    let set = load_dir(dir).expect("valid manifests");
    let aws = emu.aws().await;
    let mut ctx = Context::new(aws.clone());
    ctx.rollout_poll = Duration::from_millis(20);
    let report = reconcile::apply_all(&ctx, &set, &reconcilers(&set), true).await;
    (report, aws)
}

#[tokio::test]
async fn a_pre_deploy_task_runs_from_the_new_revision_before_the_service_moves_to_it() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    apply(emu, dir.path()).await;
    let (_, old) = describe_api(emu).await;
    let service = dir.path().join("service.yaml");
    edit(
        &service,
        "  tags:\n    team: core",
        "  deploy:\n    preDeploy: {command: [npm, run, migration:run], timeoutSeconds: 1}\n  tags:\n    team: core",
    );
    edit(&service, "image: nginx:1.27", "image: nginx:1.28");
    let (planned, _) = plan(emu, dir.path()).await;
    let note = service_report(&planned)
        .changes
        .iter()
        .find(|c| c.field == "preDeploy")
        .expect("plan names the pre-deploy task");
    assert_eq!(
        note.desired,
        "will run \"npm run migration:run\" before rolling to the new revision (now api:1)"
    );

    // moto's task does not stop in time: it is stopped, and the service is not touched.
    moto_task_steps(emu, Some(1_000_000));
    let (report, aws) = apply_polling(emu, dir.path()).await;
    moto_task_steps(emu, None);
    let err = service_report(&report)
        .error()
        .expect("the pre-deploy timed out");
    assert_eq!(err.category, Category::Rollout, "{}", err.message);
    assert!(
        err.message
            .contains("did not stop within 1s and was stopped")
            && err
                .message
                .contains("logs: group /ecs/api, stream ecs/app/"),
        "{}",
        err.message
    );
    assert_eq!(aws.calls.count("ECS", "RegisterTaskDefinition"), 1);
    assert_eq!(aws.calls.count("ECS", "RunTask"), 1);
    assert_eq!(aws.calls.count("ECS", "StopTask"), 1);
    assert_eq!(
        aws.calls.count("ECS", "UpdateService"),
        0,
        "gated on the task"
    );
    let (still, _) = describe_api(emu).await;
    assert_eq!(still.task_definition(), old.task_definition_arn());

    // What moto holds: one task, started by mooring from the new revision, with the command.
    let ecs = emu.ecs().await;
    let listed = ecs
        .list_tasks()
        .cluster("test")
        .started_by("mooring/pre-deploy")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.task_arns().len(), 1);
    let tasks = ecs
        .describe_tasks()
        .cluster("test")
        .set_tasks(Some(listed.task_arns().to_vec()))
        .send()
        .await
        .unwrap();
    let task = &tasks.tasks()[0];
    let new_td = task.task_definition_arn().unwrap().to_string();
    assert!(new_td.ends_with("task-definition/api:2"), "{new_td}");
    let container = &task.overrides().unwrap().container_overrides()[0];
    assert_eq!(container.name(), Some("app"));
    assert_eq!(container.command(), ["npm", "run", "migration:run"]);
    assert_eq!(task.last_status(), Some("STOPPED"));

    // The failure is recorded on the revision: the next process (each `apply` is one, as a
    // restarted daemon is) does not run the task again, and says how to retry.
    let recorded = ecs
        .describe_task_definition()
        .task_definition(&new_td)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    assert!(
        recorded
            .tags()
            .iter()
            .any(|t| t.key() == Some("mooring.dev/pre-deploy")
                && t.value().is_some_and(|v| v.starts_with("failed-"))),
        "{:?}",
        recorded.tags()
    );
    let (report, aws) = apply_polling(emu, dir.path()).await;
    let err = service_report(&report)
        .error()
        .expect("still failed in a new process");
    assert!(
        err.message.contains("failed before") && err.message.contains("aws ecs untag-resource"),
        "{}",
        err.message
    );
    assert_eq!(aws.calls.count("ECS", "RunTask"), 0, "not run again");
    assert_eq!(aws.calls.count("ECS", "UpdateService"), 0);
    // The documented retry: remove the record.
    ecs.untag_resource()
        .resource_arn(&new_td)
        .tag_keys("mooring.dev/pre-deploy")
        .send()
        .await
        .unwrap();

    // The task stops with exit code 0: the revision is tagged, then the service moves to it.
    let (report, aws) = apply_polling(emu, dir.path()).await;
    assert!(!report.has_errors(), "{report:#?}");
    assert_eq!(
        aws.calls.count("ECS", "RegisterTaskDefinition"),
        0,
        "api:2 reused"
    );
    assert_eq!(aws.calls.count("ECS", "RunTask"), 1);
    assert_eq!(aws.calls.count("ECS", "UpdateService"), 1);
    let (now, td) = describe_api(emu).await;
    assert_eq!(now.task_definition(), Some(new_td.as_str()));
    assert_eq!(image_of(&td), "nginx:1.28");
    let tags = ecs
        .describe_task_definition()
        .task_definition(&new_td)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags()
            .iter()
            .any(|t| t.key() == Some("mooring.dev/pre-deploy") && t.value() == Some("succeeded")),
        "{:?}",
        tags.tags()
    );

    // Once per revision: moved back to api:1 out of band, the service returns to api:2
    // without the task running again.
    ecs.update_service()
        .cluster("test")
        .service("api")
        .task_definition(old.task_definition_arn().unwrap())
        .send()
        .await
        .unwrap();
    let (report, aws) = apply_polling(emu, dir.path()).await;
    assert!(!report.has_errors(), "{report:#?}");
    assert_eq!(aws.calls.count("ECS", "RunTask"), 0);
    assert_eq!(aws.calls.count("ECS", "UpdateService"), 1);
    let (now, _) = describe_api(emu).await;
    assert_eq!(now.task_definition(), Some(new_td.as_str()));
}

#[tokio::test]
async fn a_new_version_of_a_secret_deploys_the_services_that_read_it_and_no_other() {
    let (_guard, emu) = emulator().await;
    let ssm = aws_sdk_ssm::Client::new(&emu.sdk_config().await);
    let put = |value: &'static str| {
        ssm.put_parameter()
            .name("/shared/db/password")
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
    };
    put("hunter2-first").await.unwrap();
    let sm = aws_sdk_secretsmanager::Client::new(&emu.sdk_config().await);
    let key = sm
        .create_secret()
        .name("worker/api-key")
        .secret_string("key-never-shown-1")
        .send()
        .await
        .unwrap();
    let key_arn = key.arn().unwrap().to_string();
    let key_v1 = key.version_id().unwrap().to_string();
    // `api` reads the hand-set password and the ParameterSet's host; `worker` the host and
    // a Secrets Manager key.
    let dir = fixture_copy("basic");
    let service = dir.path().join("service.yaml");
    let worker = std::fs::read_to_string(&service)
        .unwrap()
        .replace("name: api", "name: worker")
        .replace(
            "DB_HOST: {ssmParameter: /test/config/db/host}",
            &format!("DB_HOST: {{ssmParameter: /test/config/db/host}}\n        API_KEY: {{secretsManagerArn: '{key_arn}'}}"),
        );
    std::fs::write(dir.path().join("worker.yaml"), worker).unwrap();
    edit(
        &service,
        "DB_HOST: {ssmParameter: /test/config/db/host}",
        "DB_HOST: {ssmParameter: /test/config/db/host}\n        DB_PASSWORD: {ssmParameter: /shared/db/password}",
    );
    apply(emu, dir.path()).await;
    let version = |td: &aws_sdk_ecs::types::TaskDefinition| {
        td.container_definitions()[0]
            .environment()
            .iter()
            .find(|kv| kv.name() == Some("MOORING_SECRETS_VERSION"))
            .and_then(|kv| kv.value().map(str::to_string))
    };
    let (_, td) = describe_api(emu).await;
    // The ParameterSet created DB_HOST in the same apply: its version is read again then.
    assert_eq!(version(&td).as_deref(), Some("DB_HOST=1,DB_PASSWORD=1"));
    let (_, worker_td) = describe_service(emu, "test", "worker").await;
    assert_eq!(
        version(&worker_td),
        Some(format!("API_KEY={key_v1},DB_HOST=1"))
    );
    let (report, aws) = plan(emu, dir.path()).await;
    assert!(!report.has_changes(), "{report:#?}");
    assert_eq!(writes(&aws), 0);
    // Versions cost no call of their own: the set's listing of its path (DB_HOST), its
    // tag-filtered listing (its tags), and the existence check of the hand-set password
    // (one call for both services).
    assert_eq!(aws.calls.count("SSM", "DescribeParameters"), 3);

    // The password is rotated by hand: plan names it, apply deploys `api` alone.
    put("hunter2-second").await.unwrap();
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["plan", path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let expected = "  ~ taskDefinition.container.environment.MOORING_SECRETS_VERSION: \"DB_HOST=1,DB_PASSWORD=1\" -> \"DB_HOST=1,DB_PASSWORD=2\" (new version of secret DB_PASSWORD)\n";
    assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    assert!(text.contains("Service/worker: in sync"), "{text}");
    assert!(!text.contains("hunter2") && !stderr(&out).contains("hunter2"));
    let (_, aws) = apply(emu, dir.path()).await;
    assert_eq!(aws.calls.count("ECS", "RegisterTaskDefinition"), 1);
    assert_eq!(aws.calls.count("ECS", "UpdateService"), 1);
    let (svc, after) = describe_api(emu).await;
    assert_eq!(version(&after).as_deref(), Some("DB_HOST=1,DB_PASSWORD=2"));
    assert_eq!(after.revision(), td.revision() + 1);
    assert_eq!(svc.task_definition(), after.task_definition_arn());
    let (_, worker_after) = describe_service(emu, "test", "worker").await;
    assert_eq!(
        worker_after.task_definition_arn(),
        worker_td.task_definition_arn()
    );
    let (report, aws) = plan(emu, dir.path()).await;
    assert!(!report.has_changes(), "{report:#?}");
    assert_eq!(writes(&aws), 0);

    // The worker's key is rotated in Secrets Manager: the worker deploys, `api` does not.
    let key_v2 = sm
        .put_secret_value()
        .secret_id(&key_arn)
        .secret_string("key-never-shown-2")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_string();
    let out = emu.mooring(&["plan", path]);
    let text = stdout(&out);
    assert!(
        text.contains("(new version of secret API_KEY)") && text.contains("Service/api: in sync"),
        "{text}"
    );
    assert!(!text.contains("key-never-shown"));
    let (_, aws) = apply(emu, dir.path()).await;
    assert_eq!(aws.calls.count("ECS", "UpdateService"), 1);
    let (_, worker_now) = describe_service(emu, "test", "worker").await;
    assert_eq!(
        version(&worker_now),
        Some(format!("API_KEY={key_v2},DB_HOST=1"))
    );
    let (_, api_now) = describe_api(emu).await;
    assert_eq!(api_now.task_definition_arn(), after.task_definition_arn());

    // A value the ParameterSet manages changes in git: the one apply writes it and
    // deploys both readers with its new version (they are planned again after the set is
    // applied), and nothing is left differing.
    edit(
        &dir.path().join("parameters.yaml"),
        "db/host: db.internal",
        "db/host: db2.internal",
    );
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let (_, api_host) = describe_api(emu).await;
    assert_eq!(
        version(&api_host).as_deref(),
        Some("DB_HOST=2,DB_PASSWORD=2")
    );
    let (_, worker_host) = describe_service(emu, "test", "worker").await;
    assert_eq!(
        version(&worker_host),
        Some(format!("API_KEY={key_v2},DB_HOST=2"))
    );
    let (report, aws) = plan(emu, dir.path()).await;
    assert!(!report.has_changes(), "{report:#?}");
    assert_eq!(writes(&aws), 0);

    // Opted out: the versions leave the task definition, and a rotation deploys nothing.
    edit(
        &service,
        "  enableExecuteCommand: true\n",
        "  enableExecuteCommand: true\n  deploy: {restartOnSecretChange: false}\n",
    );
    apply(emu, dir.path()).await;
    let (_, td) = describe_api(emu).await;
    assert_eq!(version(&td), None);
    put("hunter2-third").await.unwrap();
    let (report, aws) = plan(emu, dir.path()).await;
    assert!(!report.has_changes(), "{report:#?}");
    assert_eq!(writes(&aws), 0);
}

/// Out-of-band changes that once went unseen (issue 16): each is named by plan with its
/// exact field, and apply puts it back.
#[tokio::test]
async fn once_unseen_changes_are_named_and_restored() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    std::fs::write(
        dir.path().join("target-group.yaml"),
        "apiVersion: mooring.dev/v1alpha1
kind: TargetGroup
metadata: {name: api}
spec:
  port: 3000
  vpc: default
  healthCheck: {path: /api/health}
",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // A service pinned to another platform version; a target group's health check moved
    // to another port, then switched off.
    emu.ecs()
        .await
        .update_service()
        .cluster("test")
        .service("api")
        .platform_version("1.3.0")
        .send()
        .await
        .unwrap();
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&emu.sdk_config().await);
    let tg = elb
        .describe_target_groups()
        .names("api")
        .send()
        .await
        .unwrap();
    let tg_arn = tg.target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    elb.modify_target_group()
        .target_group_arn(&tg_arn)
        .health_check_port("8080")
        .health_check_enabled(false)
        .send()
        .await
        .unwrap();
    // A managed tag of an SSM parameter changed (tags others add are left alone).
    let ssm = aws_sdk_ssm::Client::new(&emu.sdk_config().await);
    for (k, v) in [
        ("mooring.dev/resource", "ParameterSet/other"),
        ("cost-center", "42"),
    ] {
        ssm.add_tags_to_resource()
            .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
            .resource_id("/test/config/db/host")
            .tags(
                aws_sdk_ssm::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    let out = emu.mooring(&["plan", path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for expected in [
        r#"~ platformVersion: "1.3.0" -> "LATEST""#,
        r#"~ healthCheck.port: "8080" -> "traffic-port""#,
        "~ healthCheck.enabled: false -> true",
        r#"~ parameters./test/config/db/host.tags.mooring.dev/resource: "ParameterSet/other" -> "ParameterSet/test-config""#,
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let (svc, _) = describe_api(emu).await;
    assert_eq!(svc.platform_version(), Some("LATEST"));
    let tags = ssm
        .list_tags_for_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id("/test/config/db/host")
        .send()
        .await
        .unwrap();
    let tags: std::collections::BTreeMap<&str, &str> = tags
        .tag_list()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(
        tags.get("mooring.dev/resource"),
        Some(&"ParameterSet/test-config")
    );
    assert_eq!(tags.get("cost-center"), Some(&"42"), "others' tags stay");
}

/// Clients of every service the salon example uses, for out-of-band changes.
struct Others {
    ecs: aws_sdk_ecs::Client,
    ec2: aws_sdk_ec2::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    ecr: aws_sdk_ecr::Client,
    ssm: aws_sdk_ssm::Client,
    cache: aws_sdk_elasticache::Client,
    cw: aws_sdk_cloudwatch::Client,
    eb: aws_sdk_eventbridge::Client,
    scaling: aws_sdk_applicationautoscaling::Client,
}

impl Others {
    async fn new(emu: &Emulator) -> Others {
        let c = emu.sdk_config().await;
        Others {
            ecs: aws_sdk_ecs::Client::new(&c),
            ec2: aws_sdk_ec2::Client::new(&c),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&c),
            logs: aws_sdk_cloudwatchlogs::Client::new(&c),
            ecr: aws_sdk_ecr::Client::new(&c),
            ssm: aws_sdk_ssm::Client::new(&c),
            cache: aws_sdk_elasticache::Client::new(&c),
            cw: aws_sdk_cloudwatch::Client::new(&c),
            eb: aws_sdk_eventbridge::Client::new(&c),
            scaling: aws_sdk_applicationautoscaling::Client::new(&c),
        }
    }

    async fn group_id(&self, name: &str) -> String {
        let out = self
            .ec2
            .describe_security_groups()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("group-name")
                    .values(name)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.security_groups()[0].group_id().unwrap().to_string()
    }

    async fn target_group_arn(&self) -> String {
        let out = self
            .elb
            .describe_target_groups()
            .names("salon-backend")
            .send()
            .await
            .unwrap();
        out.target_groups()[0]
            .target_group_arn()
            .unwrap()
            .to_string()
    }

    async fn alb_arn(&self) -> String {
        let out = self
            .elb
            .describe_load_balancers()
            .names("salon-alb")
            .send()
            .await
            .unwrap();
        out.load_balancers()[0]
            .load_balancer_arn()
            .unwrap()
            .to_string()
    }

    /// Re-puts the backend's CPU alarm as the example has it, with `change` applied.
    async fn put_cpu_alarm(
        &self,
        change: impl FnOnce(
            aws_sdk_cloudwatch::operation::put_metric_alarm::builders::PutMetricAlarmFluentBuilder,
        )
            -> aws_sdk_cloudwatch::operation::put_metric_alarm::builders::PutMetricAlarmFluentBuilder,
    ) {
        use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
        let alerts = "arn:aws:sns:eu-west-1:123456789012:salon-prd-alerts";
        let req = self
            .cw
            .put_metric_alarm()
            .alarm_name("salon-backend-cpu")
            .namespace("AWS/ECS")
            .metric_name("CPUUtilization")
            .dimensions(
                Dimension::builder()
                    .name("ClusterName")
                    .value("salon-prd")
                    .build(),
            )
            .dimensions(
                Dimension::builder()
                    .name("ServiceName")
                    .value("salon-backend")
                    .build(),
            )
            .statistic(Statistic::Average)
            .period(60)
            .evaluation_periods(3)
            .threshold(85.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .alarm_description("salon-backend CPU above 85 % for 3 minutes")
            .alarm_actions(alerts)
            .ok_actions(alerts);
        change(req).send().await.unwrap();
    }

    /// Makes the out-of-band change `id` of the mutation corpus.
    async fn mutate(&self, emu: &Emulator, id: &str) {
        use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
        let tag_ecs = |arn: String| {
            self.ecs
                .tag_resource()
                .resource_arn(arn)
                .tags(
                    aws_sdk_ecs::types::Tag::builder()
                        .key("team")
                        .value("payments")
                        .build(),
                )
                .send()
        };
        match id {
            "cluster containerInsights" => {
                // moto answers UpdateClusterSettings with a 500; UpdateCluster takes them too.
                self.ecs
                    .update_cluster()
                    .cluster("salon-prd")
                    .settings(
                        aws_sdk_ecs::types::ClusterSetting::builder()
                            .name(aws_sdk_ecs::types::ClusterSettingName::ContainerInsights)
                            .value("disabled")
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "scaling requests counted elsewhere" => {
                use aws_sdk_applicationautoscaling::types::{
                    MetricType, PolicyType, PredefinedMetricSpecification,
                    TargetTrackingScalingPolicyConfiguration,
                };
                // Re-put by hand at another target group's ID (one made again).
                let tg = self.target_group_arn().await;
                let alb = self.alb_arn().await;
                // `arn:…:loadbalancer/app/NAME/ID` and `arn:…:targetgroup/NAME/ID`.
                let alb = alb.split_once(":loadbalancer/").unwrap().1.to_string();
                let tg = tg.rsplit_once(':').unwrap().1;
                let tg_without_id = tg.rsplit_once('/').unwrap().0;
                let label = format!("{alb}/{tg_without_id}/0000000000000000");
                self.scaling
                    .put_scaling_policy()
                    .policy_name("mooring-salon-backend-requests")
                    .service_namespace(ServiceNamespace::Ecs)
                    .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                    .resource_id("service/salon-prd/salon-backend")
                    .policy_type(PolicyType::TargetTrackingScaling)
                    .target_tracking_scaling_policy_configuration(
                        TargetTrackingScalingPolicyConfiguration::builder()
                            .target_value(1000.0)
                            .predefined_metric_specification(
                                PredefinedMetricSpecification::builder()
                                    .predefined_metric_type(MetricType::AlbRequestCountPerTarget)
                                    .resource_label(label)
                                    .build()
                                    .unwrap(),
                            )
                            .scale_in_cooldown(300)
                            .scale_out_cooldown(60)
                            .build()
                            .unwrap(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "cluster capacity providers" | "cluster default capacity provider strategy" => {
                use aws_sdk_ecs::types::CapacityProviderStrategyItem;
                let (providers, strategy) = if id == "cluster capacity providers" {
                    (vec!["FARGATE"], vec![("FARGATE", 1, 1)])
                } else {
                    (
                        vec!["FARGATE", "FARGATE_SPOT"],
                        vec![("FARGATE_SPOT", 1, 0)],
                    )
                };
                self.ecs
                    .put_cluster_capacity_providers()
                    .cluster("salon-prd")
                    .set_capacity_providers(Some(providers.into_iter().map(String::from).collect()))
                    .set_default_capacity_provider_strategy(Some(
                        strategy
                            .into_iter()
                            .map(|(p, w, b)| {
                                CapacityProviderStrategyItem::builder()
                                    .capacity_provider(p)
                                    .weight(w)
                                    .base(b)
                                    .build()
                                    .unwrap()
                            })
                            .collect(),
                    ))
                    .send()
                    .await
                    .unwrap();
            }
            "cluster managed tag" => {
                let arn = "arn:aws:ecs:us-east-1:123456789012:cluster/salon-prd".to_string();
                self.ecs
                    .tag_resource()
                    .resource_arn(arn)
                    .tags(
                        aws_sdk_ecs::types::Tag::builder()
                            .key("env")
                            .value("dev")
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "security group extra ingress" => {
                self.ec2
                    .authorize_security_group_ingress()
                    .group_id(self.group_id("salon-alb").await)
                    .ip_protocol("tcp")
                    .from_port(22)
                    .to_port(22)
                    .cidr_ip("0.0.0.0/0")
                    .send()
                    .await
                    .unwrap();
            }
            "security group ingress removed" => {
                self.ec2
                    .revoke_security_group_ingress()
                    .group_id(self.group_id("salon-alb").await)
                    .ip_protocol("tcp")
                    .from_port(80)
                    .to_port(80)
                    .cidr_ip("0.0.0.0/0")
                    .send()
                    .await
                    .unwrap();
            }
            "security group managed tag" => {
                self.ec2
                    .create_tags()
                    .resources(self.group_id("salon-redis").await)
                    .tags(
                        aws_sdk_ec2::types::Tag::builder()
                            .key("env")
                            .value("dev")
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "target group health check interval" => {
                self.elb
                    .modify_target_group()
                    .target_group_arn(self.target_group_arn().await)
                    .health_check_interval_seconds(10)
                    .send()
                    .await
                    .unwrap();
            }
            "target group health check port" => {
                self.elb
                    .modify_target_group()
                    .target_group_arn(self.target_group_arn().await)
                    .health_check_port("8080")
                    .send()
                    .await
                    .unwrap();
            }
            "target group health check off" => {
                self.elb
                    .modify_target_group()
                    .target_group_arn(self.target_group_arn().await)
                    .health_check_enabled(false)
                    .send()
                    .await
                    .unwrap();
            }
            "target group deregistration delay" | "target group stickiness" => {
                let attr = |k: &str, v: &str| {
                    aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder()
                        .key(k)
                        .value(v)
                        .build()
                };
                let attrs = if id == "target group stickiness" {
                    vec![
                        attr("stickiness.enabled", "true"),
                        attr("stickiness.type", "lb_cookie"),
                    ]
                } else {
                    vec![attr("deregistration_delay.timeout_seconds", "5")]
                };
                self.elb
                    .modify_target_group_attributes()
                    .target_group_arn(self.target_group_arn().await)
                    .set_attributes(Some(attrs))
                    .send()
                    .await
                    .unwrap();
            }
            "load balancer security groups" => {
                self.elb
                    .set_security_groups()
                    .load_balancer_arn(self.alb_arn().await)
                    .security_groups(self.group_id("salon-redis").await)
                    .send()
                    .await
                    .unwrap();
            }
            "load balancer idle timeout" | "load balancer access logs" => {
                let attr = |k: &str, v: &str| {
                    aws_sdk_elasticloadbalancingv2::types::LoadBalancerAttribute::builder()
                        .key(k)
                        .value(v)
                        .build()
                };
                let attrs = if id == "load balancer idle timeout" {
                    vec![attr("idle_timeout.timeout_seconds", "300")]
                } else {
                    vec![
                        attr("access_logs.s3.enabled", "true"),
                        attr("access_logs.s3.bucket", "someone-elses-logs"),
                    ]
                };
                self.elb
                    .modify_load_balancer_attributes()
                    .load_balancer_arn(self.alb_arn().await)
                    .set_attributes(Some(attrs))
                    .send()
                    .await
                    .unwrap();
            }
            "listener extra certificate" => {
                let listeners = self
                    .elb
                    .describe_listeners()
                    .load_balancer_arn(self.alb_arn().await)
                    .send()
                    .await
                    .unwrap();
                let https = listeners
                    .listeners()
                    .iter()
                    .find(|l| l.port() == Some(443))
                    .unwrap();
                self.elb
                    .add_listener_certificates()
                    .listener_arn(https.listener_arn().unwrap())
                    .certificates(
                        aws_sdk_elasticloadbalancingv2::types::Certificate::builder()
                            .certificate_arn(
                                "arn:aws:acm:us-east-1:123456789012:certificate/by-hand",
                            )
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "listener default action" => {
                let listeners = self
                    .elb
                    .describe_listeners()
                    .load_balancer_arn(self.alb_arn().await)
                    .send()
                    .await
                    .unwrap();
                let http = listeners
                    .listeners()
                    .iter()
                    .find(|l| l.port() == Some(80))
                    .unwrap();
                self.elb
                    .modify_listener()
                    .listener_arn(http.listener_arn().unwrap())
                    .default_actions(
                        aws_sdk_elasticloadbalancingv2::types::Action::builder()
                            .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
                            .target_group_arn(self.target_group_arn().await)
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "log group retention" => {
                self.logs
                    .put_retention_policy()
                    .log_group_name("/ecs/salon-backend")
                    .retention_in_days(7)
                    .send()
                    .await
                    .unwrap();
            }
            "repository mutability" => {
                self.ecr
                    .put_image_tag_mutability()
                    .repository_name("salon/backend")
                    .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
                    .send()
                    .await
                    .unwrap();
            }
            "repository scan on push" => {
                // Raw JSON: the SDK leaves `scanOnPush: false` (the default) out of the
                // request, and moto keeps its old setting for an empty configuration.
                let port = emu.endpoint.rsplit(':').next().unwrap().parse().unwrap();
                let (status, body) = common::aws_json(
                    port,
                    "ecr",
                    "AmazonEC2ContainerRegistry_V20150921.PutImageScanningConfiguration",
                    r#"{"repositoryName":"salon/backend","imageScanningConfiguration":{"scanOnPush":false}}"#,
                );
                assert_eq!(status, 200, "{body}");
            }
            "repository lifecycle removed" => {
                self.ecr
                    .delete_lifecycle_policy()
                    .repository_name("salon/backend")
                    .send()
                    .await
                    .unwrap();
            }
            "redis node type" => {
                self.cache
                    .modify_replication_group()
                    .replication_group_id("salon-redis")
                    .cache_node_type("cache.t3.medium")
                    .apply_immediately(true)
                    .send()
                    .await
                    .unwrap();
            }
            "redis snapshot retention" => {
                self.cache
                    .modify_replication_group()
                    .replication_group_id("salon-redis")
                    .snapshot_retention_limit(1)
                    .apply_immediately(true)
                    .send()
                    .await
                    .unwrap();
            }
            "parameter value" => {
                self.ssm
                    .put_parameter()
                    .name("/salon/prd/database/port")
                    .value("6543")
                    .overwrite(true)
                    .send()
                    .await
                    .unwrap();
            }
            "parameter managed tag" => {
                self.ssm
                    .add_tags_to_resource()
                    .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                    .resource_id("/salon/prd/database/host")
                    // A managed tag of the set's own (`env`): a parameter whose stack tag
                    // names another stack is that stack's, refused, not drift.
                    .tags(
                        aws_sdk_ssm::types::Tag::builder()
                            .key("env")
                            .value("another")
                            .build()
                            .unwrap(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "service image" => {
                swap_image(emu, "salon-prd", "salon-backend", "nginx:hacked", None).await;
            }
            "service ephemeral storage" => {
                swap_task_definition(emu, "salon-prd", "salon-backend", |td| {
                    td.ephemeral_storage = Some(
                        aws_sdk_ecs::types::EphemeralStorage::builder()
                            .size_in_gib(50)
                            .build(),
                    );
                })
                .await;
            }
            "service cpu architecture" => {
                swap_task_definition(emu, "salon-prd", "salon-backend", |td| {
                    td.runtime_platform = Some(
                        aws_sdk_ecs::types::RuntimePlatform::builder()
                            .cpu_architecture(aws_sdk_ecs::types::CpuArchitecture::Arm64)
                            .operating_system_family(aws_sdk_ecs::types::OsFamily::Linux)
                            .build(),
                    );
                })
                .await;
            }
            "service sidecar added" | "service container dependsOn" => {
                let depends = id == "service container dependsOn";
                swap_task_definition(emu, "salon-prd", "salon-backend", |td| {
                    let cs = td.container_definitions.get_or_insert_with(Vec::new);
                    cs.push(
                        ContainerDefinition::builder()
                            .name("xray")
                            .image("amazon/aws-xray-daemon:3")
                            .essential(false)
                            .build(),
                    );
                    if depends {
                        cs[0].depends_on = Some(vec![
                            aws_sdk_ecs::types::ContainerDependency::builder()
                                .container_name("xray")
                                .condition(aws_sdk_ecs::types::ContainerCondition::Start)
                                .build()
                                .unwrap(),
                        ]);
                    }
                })
                .await;
            }
            "Fargate's defaults spelt out in a revision" => {
                // What AWS fills in is what the manifest means by leaving them out.
                swap_task_definition(emu, "salon-prd", "salon-backend", |td| {
                    td.runtime_platform = Some(
                        aws_sdk_ecs::types::RuntimePlatform::builder()
                            .cpu_architecture(aws_sdk_ecs::types::CpuArchitecture::X8664)
                            .operating_system_family(aws_sdk_ecs::types::OsFamily::Linux)
                            .build(),
                    );
                    for c in td.container_definitions.iter_mut().flatten() {
                        c.essential = None;
                    }
                })
                .await;
            }
            "service capacity provider strategy" => {
                // moto stores a strategy sent with UpdateService (and keeps the launch type
                // alongside it; ECS drops it). CreateService with a strategy is another
                // matter: moto drops the strategy there (launch type EC2), see
                // mock_tests.rs for the shape ECS returns.
                self.ecs
                    .update_service()
                    .cluster("salon-prd")
                    .service("salon-backend")
                    .capacity_provider_strategy(
                        aws_sdk_ecs::types::CapacityProviderStrategyItem::builder()
                            .capacity_provider("FARGATE_SPOT")
                            .weight(1)
                            .build()
                            .unwrap(),
                    )
                    .force_new_deployment(true)
                    .send()
                    .await
                    .unwrap();
            }
            "service execute command" => {
                self.ecs
                    .update_service()
                    .cluster("salon-prd")
                    .service("salon-backend")
                    .enable_execute_command(false)
                    .send()
                    .await
                    .unwrap();
            }
            "service grace period" => {
                self.ecs
                    .update_service()
                    .cluster("salon-prd")
                    .service("salon-backend")
                    .health_check_grace_period_seconds(5)
                    .send()
                    .await
                    .unwrap();
            }
            "service platform version" => {
                self.ecs
                    .update_service()
                    .cluster("salon-prd")
                    .service("salon-backend")
                    .platform_version("1.3.0")
                    .send()
                    .await
                    .unwrap();
            }
            "service deployment circuit breaker" => {
                self.ecs
                    .update_service()
                    .cluster("salon-prd")
                    .service("salon-backend")
                    .deployment_configuration(
                        aws_sdk_ecs::types::DeploymentConfiguration::builder()
                            .maximum_percent(200)
                            .minimum_healthy_percent(100)
                            .deployment_circuit_breaker(
                                aws_sdk_ecs::types::DeploymentCircuitBreaker::builder()
                                    .enable(false)
                                    .rollback(false)
                                    .build(),
                            )
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "scaling max capacity" | "scaling suspended" => {
                let mut req = self
                    .scaling
                    .register_scalable_target()
                    .service_namespace(ServiceNamespace::Ecs)
                    .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                    .resource_id("service/salon-prd/salon-backend");
                req = if id == "scaling max capacity" {
                    req.min_capacity(2).max_capacity(3)
                } else {
                    req.suspended_state(
                        aws_sdk_applicationautoscaling::types::SuspendedState::builder()
                            .dynamic_scaling_out_suspended(true)
                            .build(),
                    )
                };
                req.send().await.unwrap();
            }
            "scaling extra policy" => {
                use aws_sdk_applicationautoscaling::types::{
                    MetricType, PolicyType, PredefinedMetricSpecification,
                    TargetTrackingScalingPolicyConfiguration,
                };
                self.scaling
                    .put_scaling_policy()
                    .policy_name("by-hand")
                    .service_namespace(ServiceNamespace::Ecs)
                    .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                    .resource_id("service/salon-prd/salon-backend")
                    .policy_type(PolicyType::TargetTrackingScaling)
                    .target_tracking_scaling_policy_configuration(
                        TargetTrackingScalingPolicyConfiguration::builder()
                            .target_value(20.0)
                            .predefined_metric_specification(
                                PredefinedMetricSpecification::builder()
                                    .predefined_metric_type(
                                        MetricType::EcsServiceAverageCpuUtilization,
                                    )
                                    .build()
                                    .unwrap(),
                            )
                            .build()
                            .unwrap(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "scheduled action capacity" | "scheduled action by hand" => {
                let (name, schedule) = if id == "scheduled action by hand" {
                    ("by-hand", "rate(1 day)")
                } else {
                    ("business-hours", "cron(0 7 ? * MON-FRI *)")
                };
                self.scaling
                    .put_scheduled_action()
                    .scheduled_action_name(name)
                    .service_namespace(ServiceNamespace::Ecs)
                    .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                    .resource_id("service/salon-prd/salon-backend")
                    .schedule(schedule)
                    .scalable_target_action(
                        aws_sdk_applicationautoscaling::types::ScalableTargetAction::builder()
                            .min_capacity(1)
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "alarm threshold" => self.put_cpu_alarm(|r| r.threshold(95.0)).await,
            "alarm periods" => self.put_cpu_alarm(|r| r.evaluation_periods(5)).await,
            "alarm ok actions removed" => {
                self.put_cpu_alarm(|r| r.set_ok_actions(Some(Vec::new())))
                    .await
            }
            "connection header name" => {
                self.eb
                    .update_connection()
                    .name("salon-backend-api")
                    .auth_parameters(
                        aws_sdk_eventbridge::types::UpdateConnectionAuthRequestParameters::builder()
                            .api_key_auth_parameters(
                                aws_sdk_eventbridge::types::UpdateConnectionApiKeyAuthRequestParameters::builder()
                                    .api_key_name("x-other")
                                    .api_key_value("not-the-key")
                                    .build(),
                            )
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "api destination rate" => {
                self.eb
                    .update_api_destination()
                    .name("salon-reset-queue")
                    .invocation_rate_limit_per_second(50)
                    .send()
                    .await
                    .unwrap();
            }
            "api destination endpoint" => {
                self.eb
                    .update_api_destination()
                    .name("salon-reset-queue")
                    .invocation_endpoint("https://elsewhere.example/hook")
                    .send()
                    .await
                    .unwrap();
            }
            "rule state" => {
                self.eb
                    .disable_rule()
                    .name("salon-sms-every-minute")
                    .send()
                    .await
                    .unwrap();
            }
            "rule schedule" => {
                self.eb
                    .put_rule()
                    .name("salon-sms-every-15-minutes")
                    .schedule_expression("rate(20 minutes)")
                    .send()
                    .await
                    .unwrap();
            }
            "rule task count" => {
                // mooring's own target, put back with 3 tasks a run.
                let targets = self
                    .eb
                    .list_targets_by_rule()
                    .rule("salon-nightly-cleanup")
                    .send()
                    .await
                    .unwrap();
                let mut target = targets
                    .targets()
                    .iter()
                    .find(|t| t.id() == "mooring")
                    .unwrap()
                    .clone();
                let mut ecs = target.ecs_parameters.take().unwrap();
                ecs.task_count = Some(3);
                target.ecs_parameters = Some(ecs);
                self.eb
                    .put_targets()
                    .rule("salon-nightly-cleanup")
                    .targets(target)
                    .send()
                    .await
                    .unwrap();
            }
            "rule extra target" => {
                self.eb
                    .put_targets()
                    .rule("salon-reset-queue-daily")
                    .targets(
                        aws_sdk_eventbridge::types::Target::builder()
                            .id("by-hand")
                            .arn("arn:aws:sqs:us-east-1:123456789012:elsewhere")
                            .build()
                            .unwrap(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            // Changes that are not drift.
            "others' tag on the service" => {
                let svc = describe_service(emu, "salon-prd", "salon-backend").await.0;
                tag_ecs(svc.service_arn().unwrap().to_string())
                    .await
                    .unwrap();
            }
            "others' tag on the target group" => {
                self.elb
                    .add_tags()
                    .resource_arns(self.target_group_arn().await)
                    .tags(
                        aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                            .key("team")
                            .value("payments")
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "cache subnet group managed tag" => {
                // moto has no ModifyCacheSubnetGroup: the description and subnets cannot
                // be changed (or put back) here; see the kind's canned-response tests.
                self.cache
                    .add_tags_to_resource()
                    .resource_name(
                        "arn:aws:elasticache:us-east-1:123456789012:subnetgroup:salon-redis",
                    )
                    .tags(
                        aws_sdk_elasticache::types::Tag::builder()
                            .key("project")
                            .value("someone-else")
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "ingress rule description" | "ingress rule revoked" => {
                let db = self.group_id("webapp-db").await;
                let backend = self.group_id("webapp-backend").await;
                let rules = ingress_rules(&self.ec2, &db).await;
                let ours = rules
                    .iter()
                    .find(|r| r.1 == backend)
                    .expect("the backend's rule on webapp-db");
                if id == "ingress rule revoked" {
                    self.ec2
                        .revoke_security_group_ingress()
                        .group_id(&db)
                        .security_group_rule_ids(&ours.0)
                        .send()
                        .await
                        .unwrap();
                } else {
                    self.ec2
                        .modify_security_group_rules()
                        .group_id(&db)
                        .security_group_rules(
                            aws_sdk_ec2::types::SecurityGroupRuleUpdate::builder()
                                .security_group_rule_id(&ours.0)
                                .security_group_rule(
                                    aws_sdk_ec2::types::SecurityGroupRuleRequest::builder()
                                        .ip_protocol("tcp")
                                        .from_port(5432)
                                        .to_port(5432)
                                        .referenced_group_id(&backend)
                                        .description("changed by hand")
                                        .build(),
                                )
                                .build(),
                        )
                        .send()
                        .await
                        .unwrap();
                }
            }
            "others' tag on the log group" => {
                self.logs
                    .tag_resource()
                    .resource_arn(
                        "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/salon-backend",
                    )
                    .tags("team", "payments")
                    .send()
                    .await
                    .unwrap();
            }
            "others' tag on a parameter" => {
                self.ssm
                    .add_tags_to_resource()
                    .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                    .resource_id("/salon/prd/database/host")
                    .tags(
                        aws_sdk_ssm::types::Tag::builder()
                            .key("team")
                            .value("payments")
                            .build()
                            .unwrap(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "load balancer deletion protection" => {
                self.elb
                    .modify_load_balancer_attributes()
                    .load_balancer_arn(self.alb_arn().await)
                    .attributes(
                        aws_sdk_elasticloadbalancingv2::types::LoadBalancerAttribute::builder()
                            .key("deletion_protection.enabled")
                            .value("true")
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            "desired count under autoscaling" => {
                self.ecs
                    .update_service()
                    .cluster("salon-prd")
                    .service("salon-backend")
                    .desired_count(7)
                    .send()
                    .await
                    .unwrap();
            }
            "an unmanaged parameter under the set's path" => {
                self.ssm
                    .put_parameter()
                    .name("/salon/prd/feature/flag")
                    .value("on")
                    .r#type(aws_sdk_ssm::types::ParameterType::String)
                    .send()
                    .await
                    .unwrap();
            }
            other => panic!("no mutation {other}"),
        }
    }
}

/// Issue 16's regression net: single-field out-of-band changes on the salon example, one
/// kind after another. Each must be named by plan (resource and exact field) and put back
/// by apply; each change of the second table must not be drift at all.
#[tokio::test]
async fn mutation_corpus_every_change_is_named_and_restored() {
    let (_guard, emu) = emulator().await;
    let examples = common::root().join("manifests/examples/salon-booking");
    emu.seed_examples();
    apply(emu, &examples).await;
    let (report, _) = plan(emu, &examples).await;
    assert!(!report.has_changes(), "{report:#?}");
    let others = Others::new(emu).await;

    // (out-of-band change, resource, the field plan must name)
    let drift: &[(&str, &str, &str)] = &[
        (
            "cluster containerInsights",
            "Cluster/salon-prd",
            "settings.containerInsights",
        ),
        ("cluster managed tag", "Cluster/salon-prd", "tags.env"),
        (
            "cluster capacity providers",
            "Cluster/salon-prd",
            "capacityProviders",
        ),
        (
            "cluster default capacity provider strategy",
            "Cluster/salon-prd",
            "defaultCapacityProviderStrategy",
        ),
        (
            "security group extra ingress",
            "SecurityGroup/salon-alb",
            "ingress",
        ),
        (
            "security group ingress removed",
            "SecurityGroup/salon-alb",
            "ingress",
        ),
        (
            "security group managed tag",
            "SecurityGroup/salon-redis",
            "tags.env",
        ),
        (
            "target group health check interval",
            "TargetGroup/salon-backend",
            "healthCheck.intervalSeconds",
        ),
        (
            "target group health check port",
            "TargetGroup/salon-backend",
            "healthCheck.port",
        ),
        (
            "target group health check off",
            "TargetGroup/salon-backend",
            "healthCheck.enabled",
        ),
        (
            "target group deregistration delay",
            "TargetGroup/salon-backend",
            "attributes.deregistrationDelaySeconds",
        ),
        (
            "target group stickiness",
            "TargetGroup/salon-backend",
            "attributes.stickiness",
        ),
        (
            "load balancer security groups",
            "LoadBalancer/salon-alb",
            "securityGroups",
        ),
        (
            "listener default action",
            "LoadBalancer/salon-alb",
            "listeners.80.defaultAction.type",
        ),
        (
            "load balancer idle timeout",
            "LoadBalancer/salon-alb",
            "idleTimeoutSeconds",
        ),
        (
            "load balancer access logs",
            "LoadBalancer/salon-alb",
            "accessLogs",
        ),
        (
            "listener extra certificate",
            "LoadBalancer/salon-alb",
            "listeners.443.certificates",
        ),
        (
            "log group retention",
            "LogGroup/salon-backend-logs",
            "retentionInDays",
        ),
        (
            "repository mutability",
            "Repository/salon-backend",
            "imageTagMutability",
        ),
        (
            "repository scan on push",
            "Repository/salon-backend",
            "scanOnPush",
        ),
        (
            "repository lifecycle removed",
            "Repository/salon-backend",
            "lifecyclePolicy",
        ),
        (
            "redis node type",
            "ReplicationGroup/salon-redis",
            "nodeType",
        ),
        (
            "redis snapshot retention",
            "ReplicationGroup/salon-redis",
            "snapshotRetentionLimit",
        ),
        (
            "parameter value",
            "ParameterSet/salon-prd",
            "parameters./salon/prd/database/port.value",
        ),
        (
            "parameter managed tag",
            "ParameterSet/salon-prd",
            "parameters./salon/prd/database/host.tags.env",
        ),
        (
            "service image",
            "Service/salon-backend",
            "taskDefinition.container.image",
        ),
        (
            "service execute command",
            "Service/salon-backend",
            "enableExecuteCommand",
        ),
        (
            "service grace period",
            "Service/salon-backend",
            "healthCheckGracePeriodSeconds",
        ),
        (
            "service platform version",
            "Service/salon-backend",
            "platformVersion",
        ),
        (
            "service capacity provider strategy",
            "Service/salon-backend",
            "capacityProviderStrategy",
        ),
        (
            "service ephemeral storage",
            "Service/salon-backend",
            "taskDefinition.ephemeralStorage.sizeInGiB",
        ),
        (
            "service cpu architecture",
            "Service/salon-backend",
            "taskDefinition.runtimePlatform.cpuArchitecture",
        ),
        (
            "service sidecar added",
            "Service/salon-backend",
            "taskDefinition.sidecars.xray",
        ),
        (
            "service container dependsOn",
            "Service/salon-backend",
            "taskDefinition.container.dependsOn",
        ),
        (
            "service deployment circuit breaker",
            "Service/salon-backend",
            "deployment.circuitBreaker",
        ),
        (
            "scaling max capacity",
            "ScalableTarget/salon-backend",
            "maxCapacity",
        ),
        (
            "scaling suspended",
            "ScalableTarget/salon-backend",
            "suspended.dynamicScalingOut",
        ),
        (
            "scaling requests counted elsewhere",
            "ScalableTarget/salon-backend",
            "policies.mooring-salon-backend-requests.resourceLabel",
        ),
        (
            "scaling extra policy",
            "ScalableTarget/salon-backend",
            "policies.by-hand",
        ),
        (
            "scheduled action capacity",
            "ScalableTarget/salon-backend",
            "schedules.business-hours.minCapacity",
        ),
        (
            "scheduled action by hand",
            "ScalableTarget/salon-backend",
            "schedules.by-hand",
        ),
        ("alarm threshold", "Alarm/salon-backend-cpu", "threshold"),
        (
            "alarm periods",
            "Alarm/salon-backend-cpu",
            "evaluationPeriods",
        ),
        (
            "alarm ok actions removed",
            "Alarm/salon-backend-cpu",
            "okActions",
        ),
        (
            "connection header name",
            "Connection/salon-backend-api",
            "apiKeyName",
        ),
        (
            "api destination rate",
            "ApiDestination/salon-reset-queue",
            "invocationRateLimitPerSecond",
        ),
        (
            "api destination endpoint",
            "ApiDestination/salon-reset-queue",
            "endpoint",
        ),
        ("rule state", "Rule/salon-sms-every-minute", "state"),
        (
            "rule schedule",
            "Rule/salon-sms-every-15-minutes",
            "scheduleExpression",
        ),
        (
            "rule extra target",
            "Rule/salon-reset-queue-daily",
            "extraTargets.by-hand",
        ),
        (
            "rule task count",
            "Rule/salon-nightly-cleanup",
            "target.ecs.taskCount",
        ),
        (
            "cache subnet group managed tag",
            "CacheSubnetGroup/salon-redis",
            "tags.project",
        ),
    ];
    let mut misses = named_and_restored(emu, &others, &examples, drift).await;

    // The one kind the salon stack has none of: a rule on another team's group (the
    // webapp example's `webapp-db`, which seeding made). Its field names the rule by its
    // source group's ID.
    let webapp = common::root().join("manifests/examples/webapp");
    apply(emu, &webapp).await;
    let backend = others.group_id("webapp-backend").await;
    let rule = format!("rules.tcp 5432 {backend}");
    let ingress = [
        (
            "ingress rule description",
            "SecurityGroupIngress/webapp-db-access",
            rule.as_str(),
        ),
        (
            "ingress rule revoked",
            "SecurityGroupIngress/webapp-db-access",
            rule.as_str(),
        ),
    ];
    misses.extend(named_and_restored(emu, &others, &webapp, &ingress).await);
    // Every kind has its changes in the corpus.
    let covered: std::collections::BTreeSet<&str> = drift
        .iter()
        .chain(&ingress)
        .filter_map(|(_, resource, _)| resource.split('/').next())
        .collect();
    let uncovered: Vec<String> = Kind::ALL
        .iter()
        .map(|k| k.to_string())
        .filter(|k| !covered.contains(k.as_str()))
        .collect();
    assert!(
        uncovered.is_empty(),
        "kinds without a mutation: {uncovered:?}"
    );
    let not_drift = [
        "others' tag on the service",
        "others' tag on the target group",
        "others' tag on the log group",
        "others' tag on a parameter",
        "desired count under autoscaling",
        "an unmanaged parameter under the set's path",
        "load balancer deletion protection",
        "Fargate's defaults spelt out in a revision",
    ];
    for change in not_drift {
        others.mutate(emu, change).await;
        let (report, _) = plan(emu, &examples).await;
        let drifted: Vec<String> = report
            .resources
            .iter()
            .filter(|r| r.action != Action::None)
            .map(|r| {
                format!(
                    "{} {:?}",
                    r.id(),
                    r.changes.iter().map(|c| &c.field).collect::<Vec<_>>()
                )
            })
            .collect();
        if !drifted.is_empty() {
            misses.push(format!("{change}: taken for drift: {drifted:?}"));
        }
    }
    eprintln!(
        "mutation corpus: {}/{} changes named and restored, {} non-drift changes checked",
        drift.len() + ingress.len()
            - misses
                .iter()
                .filter(|m| !m.contains("taken for drift"))
                .count(),
        drift.len() + ingress.len(),
        not_drift.len()
    );
    assert!(misses.is_empty(), "{}", misses.join("\n"));
}

/// Makes each out-of-band change of `drift` (by [`Others::mutate`]) and checks that plan of
/// `examples` names the resource and the exact field, and that apply puts it back: what
/// did not, said.
async fn named_and_restored(
    emu: &Emulator,
    others: &Others,
    examples: &Path,
    drift: &[(&str, &str, &str)],
) -> Vec<String> {
    let mut misses = Vec::new();
    for (change, resource, field) in drift {
        others.mutate(emu, change).await;
        let (report, _) = plan(emu, examples).await;
        let found = report
            .resources
            .iter()
            .find(|r| r.id() == *resource)
            .unwrap();
        let fields: Vec<&str> = found.changes.iter().map(|c| c.field.as_str()).collect();
        // The exact field, or (for a set such as a group's ingress rules) a member of it.
        let named = fields
            .iter()
            .any(|f| f == field || f.starts_with(&format!("{field}.")));
        if !named {
            misses.push(format!(
                "{change}: {resource} {field} not named; plan: {fields:?} ({:?})",
                found.error()
            ));
            // Put the stack back anyway for the next change.
        }
        let set = load_dir(examples).unwrap();
        let ctx = Context::new(emu.aws().await);
        let applied = reconcile::apply_all(&ctx, &set, &reconcilers(&set), true).await;
        let (after, _) = plan(emu, examples).await;
        if applied.has_errors() || after.has_changes() {
            let left: Vec<String> = after
                .resources
                .iter()
                .filter(|r| r.action != Action::None || r.error().is_some())
                .map(|r| {
                    format!(
                        "{} {:?} {:?}",
                        r.id(),
                        r.changes.iter().map(|c| &c.field).collect::<Vec<_>>(),
                        r.error()
                    )
                })
                .collect();
            misses.push(format!("{change}: not restored by apply: {left:?}"));
        }
    }
    misses
}

/// Copies the directory tree `from` into `to` (created).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Every leaf of a resolved document: pointer → value.
fn leaves(
    v: &serde_json::Value,
    at: String,
    out: &mut std::collections::BTreeMap<String, serde_json::Value>,
) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                leaves(
                    c,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        serde_json::Value::Array(a) if !a.is_empty() => {
            for (i, c) in a.iter().enumerate() {
                leaves(c, format!("{at}/{i}"), out);
            }
        }
        other => {
            out.insert(at, other.clone());
        }
    }
}

/// The resolved documents of an environment directory by `Kind/name`.
fn resolved(
    dir: &Path,
) -> std::collections::BTreeMap<String, mooring::manifest::yaml::YamlDocument> {
    let r = mooring::manifest::environment::resolve(dir, &Default::default());
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    r.parsed
        .files
        .into_iter()
        .flat_map(|(_, docs)| docs)
        .map(|d| {
            // The stack's name is the environment's to change: keyed by kind alone.
            let key = match d.value["kind"].as_str().unwrap() {
                "Stack" => "Stack".to_string(),
                kind => format!("{kind}/{}", d.value["metadata"]["name"].as_str().unwrap()),
            };
            (key, d)
        })
        .collect()
}

#[tokio::test]
async fn environments_render_apply_side_by_side_and_promote_only_images() {
    let (_guard, emu) = emulator().await;
    // A copy of the example base and its environments: promote edits files.
    let work = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    for dir in ["examples/salon-booking", "environments/salon-booking"] {
        copy_tree(&root.join(dir), &work.path().join(dir));
    }
    let dev = work.path().join("environments/salon-booking/dev");
    let prd = work.path().join("environments/salon-booking/prd");
    let (dev_s, prd_s) = (dev.to_str().unwrap(), prd.to_str().unwrap());
    let dev_file = dev.join("environment.yaml");
    let prd_file = prd.join("environment.yaml");

    // 1. dev and prd differ exactly where their environment files say: every leaf that
    // differs was written by one of them, and render marks it.
    let (d, p) = (resolved(&dev), resolved(&prd));
    assert_eq!(d.keys().collect::<Vec<_>>(), p.keys().collect::<Vec<_>>());
    let mut differing = 0;
    for (key, dd) in &d {
        let pd = &p[key];
        let (mut dl, mut pl) = (Default::default(), Default::default());
        leaves(&dd.value, String::new(), &mut dl);
        leaves(&pd.value, String::new(), &mut pl);
        let pointers: std::collections::BTreeSet<&String> = dl.keys().chain(pl.keys()).collect();
        for ptr in pointers {
            if dl.get(ptr) == pl.get(ptr) {
                continue;
            }
            differing += 1;
            let by_env = |doc: &mooring::manifest::yaml::YamlDocument, file: &Path| {
                doc.place_of(ptr).0 == Some(file)
            };
            assert!(
                by_env(dd, &dev_file) || by_env(pd, &prd_file),
                "{key} {ptr}: {:?} vs {:?} differs, but neither environment set it",
                dl.get(ptr),
                pl.get(ptr)
            );
        }
    }
    assert!(differing > 40, "{differing}");
    // What the environments say, as render shows it.
    let out = emu.mooring(&["render", dev_s]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dev_render = stdout(&out);
    let marked = format!("  # {}:", dev_file.display());
    for line in [
        "stack `salon-booking-dev`",
        "  desiredCount: 1",
        "    cpu: 256",
        "  serviceName: salon-backend-dev",
        "  clusterName: salon-prd-dev",
        "  retentionInDays: 7",
        "  logGroupName: /ecs/salon-backend-dev",
        "  nodeType: cache.t3.micro",
        "      domainName: api.dev.salon.example",
        "  path: /salon/dev",
        "  deletionPolicy: delete",
    ] {
        let found = dev_render.lines().find(|l| l.contains(line));
        assert!(found.is_some(), "{line} in\n{dev_render}");
        if !line.starts_with("stack") {
            assert!(
                found.unwrap().contains(&marked),
                "{line} is not marked: {found:?}"
            );
        }
    }
    let out = emu.mooring(&["render", prd_s]);
    let prd_render = stdout(&out);
    assert!(prd_render.contains("stack `salon-booking`"), "{prd_render}");
    assert!(prd_render.contains("      domainName: api.salon.example\n"));
    assert!(prd_render.contains("  retentionInDays: 30\n"));

    // 2. Both apply to one emulator and converge side by side.
    emu.seed_examples();
    for (dir, env) in [(dev_s, "dev"), (prd_s, "prd")] {
        let out = emu.mooring(&["apply", dir]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{env}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains("0 failed"), "{}", stdout(&out));
    }
    for (dir, env) in [(dev_s, "dev"), (prd_s, "prd")] {
        let out = emu.mooring(&["plan", dir, "--output", "json"]);
        assert_eq!(out.status.code(), Some(0), "{env}: {}", stdout(&out));
        let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(json["environment"], env);
        assert!(json["revision"].as_str().unwrap().starts_with("sha256:"));
        assert!(
            json["resources"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["action"] == "none")
        );
    }
    let clusters = emu.ecs().await.list_clusters().send().await.unwrap();
    let mut names: Vec<&str> = clusters
        .cluster_arns()
        .iter()
        .filter_map(|a| a.rsplit('/').next())
        .collect();
    names.sort();
    assert_eq!(names, ["salon-prd", "salon-prd-dev"]);
    let (_, td) = describe_service(emu, "salon-prd-dev", "salon-backend-dev").await;
    assert_eq!(td.cpu(), Some("256"));
    assert!(
        td.container_definitions()[0]
            .image()
            .unwrap()
            .ends_with("salon/backend-dev:v1.1.0")
    );

    // 3. promote: --check says prd is behind, the edit is one line, then prd plans only
    // the image.
    let before = std::fs::read_to_string(&prd_file).unwrap();
    let out = emu.mooring(&["promote", dev_s, prd_s, "--check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("-    backendTag: v1.0.0\n+    backendTag: v1.1.0\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&prd_file).unwrap(),
        before,
        "--check writes nothing"
    );
    let out = emu.mooring(&["promote", dev_s, prd_s, "--service", "salon-backend"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = std::fs::read_to_string(&prd_file).unwrap();
    assert_eq!(
        after,
        before.replace("backendTag: v1.0.0", "backendTag: v1.1.0")
    );
    let out = emu.mooring(&["promote", dev_s, prd_s, "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("nothing to promote"));
    let out = emu.mooring(&["promote", dev_s, prd_s, "--service", "salon-backnd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("did you mean `salon-backend`?"),
        "{}",
        stderr(&out)
    );

    let out = emu.mooring(&["plan", prd_s, "--output", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let changed: Vec<&serde_json::Value> = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] != "none")
        .collect();
    assert_eq!(changed.len(), 1, "{json}");
    assert_eq!(changed[0]["kind"], "Service");
    assert_eq!(changed[0]["name"], "salon-backend");
    let fields: Vec<&str> = changed[0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    // The image, the migrations the new revision runs before the service moves to it, and
    // the check after the rollout (the base's backend has `deploy.verify`).
    assert_eq!(
        fields,
        ["taskDefinition.container.image", "preDeploy", "verify"]
    );
    let image = &changed[0]["changes"][0];
    assert!(
        image["live"]
            .as_str()
            .unwrap()
            .ends_with("salon/backend:v1.0.0"),
        "{image}"
    );
    assert!(
        image["desired"]
            .as_str()
            .unwrap()
            .ends_with("salon/backend:v1.1.0"),
        "{image}"
    );
    // dev is untouched by promotion.
    let out = emu.mooring(&["plan", dev_s]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // 4. A bad field in a patch is reported at the environment file's line and column.
    edit(&dev_file, "          memory: 512", "          memroy: 512");
    let line = std::fs::read_to_string(&dev_file)
        .unwrap()
        .lines()
        .position(|l| l.contains("memroy"))
        .unwrap()
        + 1;
    let out = emu.mooring(&["validate", dev_s]);
    assert_eq!(out.status.code(), Some(1));
    let expected = format!(
        "{}:{line}:11: spec.taskDefinition.memroy: unknown field `memroy`",
        dev_file.display()
    );
    assert!(
        stderr(&out).contains(&expected),
        "{expected} in {}",
        stderr(&out)
    );
}

/// Two stacks in one account that both declare the same SSM parameter (same value): the
/// parameter belongs to the stack whose ownership tags it carries; the other stack's apply
/// is refused, naming the owner, and rewrites neither its value nor its tags, so the two do
/// not take it from each other on every pass. `mooring.dev/adopt` takes it over.
#[tokio::test]
async fn a_parameter_of_another_stack_keeps_its_owner_and_is_not_fought_over() {
    let (_guard, emu) = emulator().await;
    let stack = |name: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stack.yaml"),
            format!("apiVersion: mooring.dev/v1alpha1\nkind: Stack\nmetadata:\n  name: {name}\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("parameters.yaml"),
            "apiVersion: mooring.dev/v1alpha1
kind: ParameterSet
metadata: {name: shared}
spec:
  path: /shared
  parameters:
    region: eu-west-1
",
        )
        .unwrap();
        dir
    };
    let (alpha, beta) = (stack("alpha"), stack("beta"));
    let stack_tag = |emu: &'static Emulator| async move {
        let ssm = aws_sdk_ssm::Client::new(&emu.sdk_config().await);
        let tags = ssm
            .list_tags_for_resource()
            .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
            .resource_id("/shared/region")
            .send()
            .await
            .unwrap();
        tags.tag_list()
            .iter()
            .find(|t| t.key() == "mooring.dev/stack")
            .map(|t| t.value().to_string())
    };
    let out = emu.mooring(&["apply", alpha.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stack_tag(emu).await.as_deref(), Some("alpha"));

    // beta declares the same parameter with the same value: refused, alpha's tags stay.
    let out = emu.mooring(&["apply", beta.path().to_str().unwrap()]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("it belongs to ParameterSet/shared of the stack `alpha`"),
        "{text}"
    );
    assert!(!text.contains("tags.mooring.dev"), "{text}");
    assert_eq!(
        stack_tag(emu).await.as_deref(),
        Some("alpha"),
        "beta took alpha's parameter: {text}"
    );
    let out = emu.mooring(&["plan", alpha.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Adoption is the one way to take it: beta's tags, after which alpha is refused.
    let file = beta.path().join("parameters.yaml");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "metadata: {name: shared}",
        "metadata:\n  name: shared\n  annotations: {mooring.dev/adopt: \"true\"}",
    );
    std::fs::write(&file, text).unwrap();
    let out = emu.mooring(&["apply", beta.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stack_tag(emu).await.as_deref(), Some("beta"));
    let out = emu.mooring(&["plan", alpha.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("of the stack `beta`"), "{text}");
}

/// A saved plan is "a plan you can apply exactly": a ParameterSet value change also rolls
/// the services that read the parameter (its new version is a new revision), so plan
/// shows that roll beside the value, naming the secret and the set, and applying the
/// saved plan does what it showed: one new revision, carrying the version plan predicted.
/// A service that opted out (`restartOnSecretChange: false`) is shown in sync and keeps
/// its revision.
#[tokio::test]
async fn a_saved_plan_shows_the_roll_a_parameter_change_causes() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let (_, first) = describe_api(emu).await;
    let version_of = |td: &aws_sdk_ecs::types::TaskDefinition| {
        td.container_definitions()[0]
            .environment()
            .iter()
            .find(|kv| kv.name() == Some("MOORING_SECRETS_VERSION"))
            .and_then(|kv| kv.value())
            .map(str::to_string)
    };
    assert_eq!(version_of(&first).as_deref(), Some("DB_HOST=1"));
    edit(
        &dir.path().join("parameters.yaml"),
        "db/host: db.internal",
        "db/host: db2.internal",
    );
    let plans = tempfile::tempdir().unwrap();
    let plan_file = plans.path().join("plan.json");
    let out = emu.mooring(&["plan", path, "--out", plan_file.to_str().unwrap()]);
    let shown = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}{}", stderr(&out));
    assert!(
        shown.contains(
            "~ taskDefinition.container.environment.MOORING_SECRETS_VERSION: \"DB_HOST=1\" -> \"DB_HOST=2\" (new version of secret DB_HOST once ParameterSet/test-config is applied)"
        ),
        "{shown}"
    );
    assert!(shown.contains("0 to create, 2 to update"), "{shown}");
    let out = emu.mooring(&["apply", plan_file.to_str().unwrap()]);
    let applied = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{applied}{}", stderr(&out));
    let (_, after) = describe_api(emu).await;
    assert_ne!(
        after.task_definition_arn(),
        first.task_definition_arn(),
        "{applied}"
    );
    assert_eq!(after.revision(), first.revision() + 1, "{applied}");
    assert_eq!(version_of(&after).as_deref(), Some("DB_HOST=2"));
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Opted out: the value changes, the service is in sync before and after.
    let service = std::fs::read_to_string(dir.path().join("service.yaml")).unwrap();
    assert!(service.contains("\nspec:\n"), "{service}");
    std::fs::write(
        dir.path().join("service.yaml"),
        service.replacen(
            "\nspec:\n",
            "\nspec:\n  deploy: {restartOnSecretChange: false}\n",
            1,
        ),
    )
    .unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let (_, opted) = describe_api(emu).await;
    edit(
        &dir.path().join("parameters.yaml"),
        "db/host: db2.internal",
        "db/host: db3.internal",
    );
    let out = emu.mooring(&["plan", path, "--out", plan_file.to_str().unwrap()]);
    let shown = stdout(&out);
    assert!(shown.contains("Service/api: in sync"), "{shown}");
    let out = emu.mooring(&["apply", plan_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let (_, still) = describe_api(emu).await;
    assert_eq!(still.task_definition_arn(), opted.task_definition_arn());
}

// ---- mooring import --cluster ----

const IMPORT_CLUSTER: &str = "CdkBackendStack-Cluster1A2B3C";
const IMPORT_SERVICE: &str = "CdkBackendStack-ServiceD69D759B-1AB2C3";
const IMPORT_SECRET_VALUE: &str = "never-shown-7d1f0c";

/// Builds a CDK-shaped stack in moto directly through the SDK, without mooring: a cluster,
/// SSM String and SecureString parameters, a target group behind an ALB's HTTP listener,
/// a Fargate service reading both parameters as secrets, a scalable target with a CPU
/// policy, and a second service whose task runs a sidecar. Returns the service's ARN, the
/// target group's ARN and the running task definition's ARN.
async fn build_cdk_like_stack(emu: &Emulator) -> (String, String, String) {
    use aws_sdk_ecs::types::{
        AssignPublicIp, AwsVpcConfiguration, Compatibility, HealthCheck, KeyValuePair, LaunchType,
        LoadBalancer, LogConfiguration, LogDriver, NetworkConfiguration, NetworkMode, PortMapping,
        Secret, TransportProtocol,
    };
    let config = emu.sdk_config().await;
    let ecs = emu.ecs().await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let ssm = aws_sdk_ssm::Client::new(&config);
    let scaling = aws_sdk_applicationautoscaling::Client::new(&config);

    let vpcs = ec2.describe_vpcs().send().await.unwrap();
    let vpc = vpcs
        .vpcs()
        .iter()
        .find(|v| v.is_default() == Some(true))
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_string();
    let subnets = ec2.describe_subnets().send().await.unwrap();
    let mut subnets: Vec<String> = subnets
        .subnets()
        .iter()
        .filter(|s| s.vpc_id() == Some(vpc.as_str()))
        .filter_map(|s| s.subnet_id().map(str::to_string))
        .collect();
    subnets.sort();
    subnets.truncate(2);
    let groups = ec2.describe_security_groups().send().await.unwrap();
    let sg = groups
        .security_groups()
        .iter()
        .find(|g| g.vpc_id() == Some(vpc.as_str()) && g.group_name() == Some("default"))
        .and_then(|g| g.group_id())
        .unwrap()
        .to_string();
    // CDK's shape: the load balancer's group open on 443 and 80, its egress only to the
    // service's group; the service's group open to the load balancer's on 3000 (and, added by
    // hand, to the VPC's default group on 22, which import leaves an ID).
    let (lb_sg, svc_sg) = import_security_groups(&ec2, &vpc, &sg).await;

    for (name, value, kind) in [
        (
            "/shop/prd/db/host",
            "db.internal",
            aws_sdk_ssm::types::ParameterType::String,
        ),
        (
            "/shop/prd/db/api_token",
            "tok-never-shown-51c2",
            aws_sdk_ssm::types::ParameterType::String,
        ),
        (
            "/shop/prd/db/password",
            IMPORT_SECRET_VALUE,
            aws_sdk_ssm::types::ParameterType::SecureString,
        ),
    ] {
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(kind)
            .send()
            .await
            .unwrap();
    }
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    logs.create_log_group()
        .log_group_name("/ecs/backend")
        .send()
        .await
        .unwrap();
    logs.put_retention_policy()
        .log_group_name("/ecs/backend")
        .retention_in_days(14)
        .send()
        .await
        .unwrap();
    ecs.create_cluster()
        .cluster_name(IMPORT_CLUSTER)
        .send()
        .await
        .unwrap();

    let tg = elb
        .create_target_group()
        .name("CdkBa-Servi-1AB2C3D4E5F6")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(3000)
        .vpc_id(&vpc)
        .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Ip)
        .health_check_path("/api/health")
        .healthy_threshold_count(3)
        .send()
        .await
        .unwrap();
    let tg_arn = tg.target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let lb = elb
        .create_load_balancer()
        .name("CdkBa-LB8A12904C-XYZ")
        // CDK always sends the scheme (moto reports none when it was not sent).
        .scheme(aws_sdk_elasticloadbalancingv2::types::LoadBalancerSchemeEnum::InternetFacing)
        .set_subnets(Some(subnets.clone()))
        .security_groups(&lb_sg)
        .send()
        .await
        .unwrap();
    let lb_arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    // HTTPS on 443 forwarding to the target group, HTTP on 80 redirecting to it.
    use aws_sdk_elasticloadbalancingv2::types::{
        Action as ElbAction, ActionTypeEnum, Certificate, ProtocolEnum, RedirectActionConfig,
        RedirectActionStatusCodeEnum,
    };
    elb.create_listener()
        .load_balancer_arn(&lb_arn)
        .protocol(ProtocolEnum::Https)
        .port(443)
        .certificates(
            Certificate::builder()
                .certificate_arn(emu.certificate("api.cdk.example"))
                .build(),
        )
        .ssl_policy("ELBSecurityPolicy-TLS13-1-2-2021-06")
        .default_actions(
            ElbAction::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&tg_arn)
                .build(),
        )
        .send()
        .await
        .unwrap();
    elb.create_listener()
        .load_balancer_arn(&lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(
            ElbAction::builder()
                .r#type(ActionTypeEnum::Redirect)
                .redirect_config(
                    RedirectActionConfig::builder()
                        .protocol("HTTPS")
                        .port("443")
                        .status_code(RedirectActionStatusCodeEnum::Http301)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();

    let param_arn = |n: &str| format!("arn:aws:ssm:us-east-1:123456789012:parameter{n}");
    let web = aws_sdk_ecs::types::ContainerDefinition::builder()
        .name("web")
        .image("123456789012.dkr.ecr.us-east-1.amazonaws.com/backend:1.4.2")
        .essential(true)
        .port_mappings(
            PortMapping::builder()
                .container_port(3000)
                .host_port(3000)
                .protocol(TransportProtocol::Tcp)
                .build(),
        )
        .environment(
            KeyValuePair::builder()
                .name("NODE_ENV")
                .value("production")
                .build(),
        )
        .environment(KeyValuePair::builder().name("PORT").value("3000").build())
        .secrets(
            Secret::builder()
                .name("DB_HOST")
                .value_from(param_arn("/shop/prd/db/host"))
                .build()
                .unwrap(),
        )
        .secrets(
            Secret::builder()
                .name("API_TOKEN")
                .value_from(param_arn("/shop/prd/db/api_token"))
                .build()
                .unwrap(),
        )
        .secrets(
            Secret::builder()
                .name("DB_PASSWORD")
                .value_from(param_arn("/shop/prd/db/password"))
                .build()
                .unwrap(),
        )
        .health_check(
            HealthCheck::builder()
                .command("CMD-SHELL")
                .command("curl -f 'http://localhost:3000/api/health' || exit 1")
                .interval(30)
                .timeout(5)
                .retries(3)
                .start_period(60)
                .build()
                .unwrap(),
        )
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", "/ecs/backend")
                .options("awslogs-region", "us-east-1")
                .options("awslogs-stream-prefix", "backend")
                .build()
                .unwrap(),
        )
        .build();
    let register = |family: &str, containers: Vec<aws_sdk_ecs::types::ContainerDefinition>| {
        ecs.register_task_definition()
            .family(family)
            .cpu("256")
            .memory("512")
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .execution_role_arn("arn:aws:iam::123456789012:role/CdkBackendStack-TaskExecRole")
            .set_container_definitions(Some(containers))
            .send()
    };
    let td = register("CdkBackendStackTaskDef1234ABCD", vec![web])
        .await
        .unwrap();
    let td_arn = td
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .unwrap()
        .to_string();
    let network = NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder()
                .set_subnets(Some(subnets.clone()))
                .security_groups(&svc_sg)
                .assign_public_ip(AssignPublicIp::Disabled)
                .build()
                .unwrap(),
        )
        .build();
    let svc = ecs
        .create_service()
        .cluster(IMPORT_CLUSTER)
        .service_name(IMPORT_SERVICE)
        .task_definition(&td_arn)
        .desired_count(2)
        .launch_type(LaunchType::Fargate)
        .network_configuration(network.clone())
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn(&tg_arn)
                .container_name("web")
                .container_port(3000)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let svc_arn = svc
        .service()
        .and_then(|s| s.service_arn())
        .unwrap()
        .to_string();

    let resource = format!("service/{IMPORT_CLUSTER}/{IMPORT_SERVICE}");
    let dim = aws_sdk_applicationautoscaling::types::ScalableDimension::EcsServiceDesiredCount;
    let ns = aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs;
    scaling
        .register_scalable_target()
        .service_namespace(ns.clone())
        .scalable_dimension(dim.clone())
        .resource_id(&resource)
        .min_capacity(1)
        .max_capacity(4)
        .send()
        .await
        .unwrap();
    scaling
        .put_scaling_policy()
        .policy_name("CdkBackendStackServiceTaskCountTargetCpuScaling5A7E3F")
        .service_namespace(ns)
        .scalable_dimension(dim)
        .resource_id(&resource)
        .policy_type(aws_sdk_applicationautoscaling::types::PolicyType::TargetTrackingScaling)
        .target_tracking_scaling_policy_configuration(
            aws_sdk_applicationautoscaling::types::TargetTrackingScalingPolicyConfiguration::builder()
                .target_value(70.0)
                .predefined_metric_specification(
                    aws_sdk_applicationautoscaling::types::PredefinedMetricSpecification::builder()
                        .predefined_metric_type(
                            aws_sdk_applicationautoscaling::types::MetricType::EcsServiceAverageCpuUtilization,
                        )
                        .build()
                        .unwrap(),
                )
                .scale_out_cooldown(60)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // A second service whose task runs a sidecar the app waits for.
    let worker_td = register(
        "worker",
        vec![
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("busybox:1.36")
                .essential(true)
                .depends_on(
                    aws_sdk_ecs::types::ContainerDependency::builder()
                        .container_name("envoy")
                        .condition(aws_sdk_ecs::types::ContainerCondition::Start)
                        .build()
                        .unwrap(),
                )
                .build(),
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("envoy")
                .image("envoyproxy/envoy:v1.31")
                .essential(false)
                .environment(
                    KeyValuePair::builder()
                        .name("ENVOY_LOG_LEVEL")
                        .value("info")
                        .build(),
                )
                .build(),
        ],
    )
    .await
    .unwrap();
    ecs.create_service()
        .cluster(IMPORT_CLUSTER)
        .service_name("worker")
        .task_definition(
            worker_td
                .task_definition()
                .and_then(|t| t.task_definition_arn())
                .unwrap(),
        )
        .desired_count(1)
        .launch_type(LaunchType::Fargate)
        .network_configuration(network)
        .send()
        .await
        .unwrap();
    (svc_arn, tg_arn, td_arn)
}

/// The CDK-shaped stack's security groups in `vpc`: the load balancer's and the service's
/// (see `build_cdk_like_stack`). `default_sg` is the VPC's default group.
async fn import_security_groups(
    ec2: &aws_sdk_ec2::Client,
    vpc: &str,
    default_sg: &str,
) -> (String, String) {
    use aws_sdk_ec2::types::{IpPermission, IpRange, UserIdGroupPair};
    let create = |name: &'static str, description: &'static str| {
        ec2.create_security_group()
            .group_name(name)
            .description(description)
            .vpc_id(vpc)
            .send()
    };
    let lb_sg = create(
        "CdkBackendStack-LBSecurityGroup8A41EA2B-1XYZ",
        "Automatically created Security Group for ELB CdkBackendStackLB",
    )
    .await
    .unwrap()
    .group_id()
    .unwrap()
    .to_string();
    let svc_sg = create(
        "CdkBackendStack-ServiceSecurityGroup9C4F-2ABC",
        "CdkBackendStack/Service/SecurityGroup",
    )
    .await
    .unwrap()
    .group_id()
    .unwrap()
    .to_string();
    let tcp = |port: i32| {
        IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(port)
            .to_port(port)
    };
    let anywhere = |port: i32| {
        tcp(port)
            .ip_ranges(
                IpRange::builder()
                    .cidr_ip("0.0.0.0/0")
                    .description(format!("Allow from anyone on port {port}"))
                    .build(),
            )
            .build()
    };
    let group = |port: i32, id: &str| {
        tcp(port)
            .user_id_group_pairs(UserIdGroupPair::builder().group_id(id).build())
            .build()
    };
    ec2.authorize_security_group_ingress()
        .group_id(&lb_sg)
        .ip_permissions(anywhere(443))
        .ip_permissions(anywhere(80))
        .send()
        .await
        .unwrap();
    ec2.revoke_security_group_egress()
        .group_id(&lb_sg)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    ec2.authorize_security_group_egress()
        .group_id(&lb_sg)
        .ip_permissions(group(3000, &svc_sg))
        .send()
        .await
        .unwrap();
    ec2.authorize_security_group_ingress()
        .group_id(&svc_sg)
        .ip_permissions(group(3000, &lb_sg))
        .ip_permissions(group(22, default_sg))
        .send()
        .await
        .unwrap();
    (lb_sg, svc_sg)
}

/// Every file of a directory, by name, with its text.
fn read_dir_files(dir: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The round trip is the contract: a stack made without mooring (CDK-style generated names)
/// imports into manifests that validate; plan shows only the adoption (tags); apply keeps
/// every ARN and the task definition revision; the next plan is empty; importing twice
/// gives the same bytes; a dry run writes nothing; no secret value is ever written.
#[tokio::test(flavor = "multi_thread")]
async fn import_round_trip_keeps_every_arn_and_plans_only_the_adoption() {
    let (_guard, emu) = emulator().await;
    let (svc_arn, tg_arn, td_arn) = build_cdk_like_stack(emu).await;
    // Fargate Spot: the cluster's providers and default strategy, the service's own
    // strategy. Imported as they are, and in sync after the adoption.
    {
        use aws_sdk_ecs::types::CapacityProviderStrategyItem as Item;
        let item = |provider: &str, weight: i32, base: i32| {
            Item::builder()
                .capacity_provider(provider)
                .weight(weight)
                .base(base)
                .build()
                .unwrap()
        };
        let ecs = aws_sdk_ecs::Client::new(&emu.sdk_config().await);
        ecs.put_cluster_capacity_providers()
            .cluster(IMPORT_CLUSTER)
            .capacity_providers("FARGATE")
            .capacity_providers("FARGATE_SPOT")
            .default_capacity_provider_strategy(item("FARGATE_SPOT", 1, 0))
            .send()
            .await
            .unwrap();
        ecs.update_service()
            .cluster(IMPORT_CLUSTER)
            .service(IMPORT_SERVICE)
            .capacity_provider_strategy(item("FARGATE_SPOT", 3, 0))
            .capacity_provider_strategy(item("FARGATE", 1, 1))
            .send()
            .await
            .unwrap();
        // And scaling on the requests per target its load balancer sends: imported with
        // the target group's and load balancer's manifests, not the label's ARN parts.
        use aws_sdk_applicationautoscaling::types::{
            MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension,
            ServiceNamespace, TargetTrackingScalingPolicyConfiguration,
        };
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&emu.sdk_config().await);
        let lb = elb
            .describe_load_balancers()
            .names("CdkBa-LB8A12904C-XYZ")
            .send()
            .await
            .unwrap();
        let lb_arn = lb.load_balancers()[0]
            .load_balancer_arn()
            .unwrap()
            .to_string();
        let suffix = |arn: &str, part: &str| format!("{part}{}", arn.split_once(part).unwrap().1);
        let label = format!(
            "{}/{}",
            suffix(&lb_arn, "app/"),
            suffix(&tg_arn, "targetgroup/")
        );
        aws_sdk_applicationautoscaling::Client::new(&emu.sdk_config().await)
            .put_scaling_policy()
            .policy_name("CdkBackendStackServiceTaskCountTargetRequestsScalingB2C4")
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_id(format!("service/{IMPORT_CLUSTER}/{IMPORT_SERVICE}"))
            .policy_type(PolicyType::TargetTrackingScaling)
            .target_tracking_scaling_policy_configuration(
                TargetTrackingScalingPolicyConfiguration::builder()
                    .target_value(1000.0)
                    .predefined_metric_specification(
                        PredefinedMetricSpecification::builder()
                            .predefined_metric_type(MetricType::AlbRequestCountPerTarget)
                            .resource_label(label)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    let out_dir = tempfile::tempdir().unwrap();
    let dir = out_dir.path().join("imported");
    let path = dir.to_str().unwrap();
    let args = [
        "import",
        "--cluster",
        IMPORT_CLUSTER,
        "--service",
        IMPORT_SERVICE,
        "--out",
        path,
    ];

    // A dry run prints the files and writes nothing.
    let dry = {
        let mut a = args.to_vec();
        a.push("--dry-run");
        emu.mooring(&a)
    };
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    assert!(!dir.exists(), "a dry run wrote {}", dir.display());
    for expected in [
        format!("# {}\n", dir.join("stack.yaml").display()),
        format!(
            "# {}\n",
            dir.join("cdkbackendstack-serviced69d759b-1ab2c3.yaml")
                .display()
        ),
        "kind: Service\n".to_string(),
    ] {
        assert!(stdout(&dry).contains(&expected), "{}", stdout(&dry));
    }
    assert!(stderr(&dry).contains("nothing written"), "{}", stderr(&dry));

    let out = emu.mooring(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let files = read_dir_files(&dir);
    let service_file = "cdkbackendstack-serviced69d759b-1ab2c3.yaml";
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            service_file,
            "cluster.yaml",
            "load-balancers.yaml",
            "parameters.yaml",
            "security-groups.yaml",
            "stack.yaml"
        ]
    );
    // Security groups: references are manifest names where the group is imported; the
    // VPC's default group is not imported and stays an ID, and the load balancer's egress
    // to the service's group keeps its ID (the two would otherwise name each other).
    let sgs_yaml = &files["security-groups.yaml"];
    let (lb_sg, svc_sg, default_sg) = import_group_ids(emu).await;
    for expected in [
        "groupName: CdkBackendStack-LBSecurityGroup8A41EA2B-1XYZ".to_string(),
        "groupName: CdkBackendStack-ServiceSecurityGroup9C4F-2ABC".to_string(),
        "- port: 3000\n      securityGroup: cdkbackendstack-lbsecuritygroup8a41ea2b-1xyz\n"
            .to_string(),
        format!("- port: 22\n      securityGroupId: {default_sg}\n"),
        format!("egress:\n    - port: 3000\n      securityGroupId: {svc_sg}\n"),
        "cidrIp: \"0.0.0.0/0\"\n      description: \"Allow from anyone on port 443\"\n".to_string(),
        "mooring.dev/adopt: \"true\"".to_string(),
        format!(
            "# Imported by `mooring import` from arn:aws:ec2:us-east-1:123456789012:security-group/{lb_sg}"
        ),
    ] {
        assert!(
            sgs_yaml.contains(&expected),
            "no {expected:?} in\n{sgs_yaml}"
        );
    }
    assert!(!sgs_yaml.contains("groupName: default"), "{sgs_yaml}");
    assert!(!sgs_yaml.contains("mooring.dev/mode"), "{sgs_yaml}");
    assert!(
        files[service_file].contains(
            "securityGroups:\n      refs: [cdkbackendstack-servicesecuritygroup9c4f-2abc]"
        ),
        "{}",
        files[service_file]
    );
    assert!(
        files["load-balancers.yaml"]
            .contains("securityGroups:\n    refs: [cdkbackendstack-lbsecuritygroup8a41ea2b-1xyz]"),
        "{}",
        files["load-balancers.yaml"]
    );
    let all: String = files.values().cloned().collect();
    assert!(
        !all.contains(IMPORT_SECRET_VALUE),
        "a secret value was written"
    );
    assert!(!stdout(&dry).contains(IMPORT_SECRET_VALUE));
    let svc_yaml = &files[service_file];
    for expected in [
        &format!("# Imported by `mooring import` from {svc_arn}"),
        &format!("serviceName: {IMPORT_SERVICE}"),
        "family: CdkBackendStackTaskDef1234ABCD",
        "cluster: cdkbackendstack-cluster1a2b3c",
        "targetGroup: cdkba-servi-1ab2c3d4e5f6",
        "ssmParameter: /shop/prd/db/password",
        "policyName: CdkBackendStackServiceTaskCountTargetCpuScaling5A7E3F",
        "mooring.dev/adopt: \"true\"",
        "httpPath: /api/health",
        "kind: LogGroup",
        "logGroupName: /ecs/backend",
        "retentionInDays: 14",
        "group: ecs-backend",
        "  capacityProviderStrategy:\n    - capacityProvider: FARGATE_SPOT\n      weight: 3\n    - capacityProvider: FARGATE\n      weight: 1\n      base: 1\n",
        "  - metric: ALBRequestCountPerTarget\n      targetValue: 1000.0\n      targetGroup: cdkba-servi-1ab2c3d4e5f6\n      policyName: CdkBackendStackServiceTaskCountTargetRequestsScalingB2C4\n",
    ] {
        assert!(
            svc_yaml.contains(expected),
            "no {expected:?} in\n{svc_yaml}"
        );
    }
    let cluster_yaml = &files["cluster.yaml"];
    assert!(
        cluster_yaml.contains("  capacityProviders: [FARGATE, FARGATE_SPOT]\n")
            && cluster_yaml.contains(
                "  defaultCapacityProviderStrategy:\n    - capacityProvider: FARGATE_SPOT\n      weight: 1\n"
            ),
        "{cluster_yaml}"
    );
    let lb_yaml = &files["load-balancers.yaml"];
    for expected in [
        "loadBalancerName: CdkBa-LB8A12904C-XYZ",
        "- port: 80\n      protocol: HTTP\n      defaultAction:\n        redirect:\n          protocol: HTTPS\n",
        "- port: 443\n      protocol: HTTPS\n      certificateArn: arn:aws:acm:",
        "forward: cdkba-servi-1ab2c3d4e5f6",
    ] {
        assert!(lb_yaml.contains(expected), "no {expected:?} in\n{lb_yaml}");
    }
    assert!(
        !svc_yaml.contains("desiredCount"),
        "a scaled service leaves its count to the scaler"
    );
    assert!(
        !svc_yaml.contains("intervalSeconds"),
        "defaults AWS filled are left out"
    );
    assert!(!svc_yaml.contains("mooring.dev/mode"), "{svc_yaml}");
    let params = &files["parameters.yaml"];
    assert!(params.contains("path: /shop/prd/db\n"), "{params}");
    assert!(params.contains("host: db.internal"), "{params}");
    assert!(params.contains("password: SecureString"), "{params}");
    assert!(
        params.contains("api_token: String"),
        "a String named like a secret: {params}"
    );
    assert!(!all.contains("tok-never-shown-51c2"), "{params}");
    assert!(files["stack.yaml"].contains("name: cdkbackendstack-cluster1a2b3c"));

    let out = emu.mooring(&["validate", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // Plan shows only the adoption: ownership tags, nothing else.
    let (report, _) = plan(emu, &dir).await;
    for r in &report.resources {
        assert!(r.error().is_none(), "{r:#?}");
        assert_ne!(r.action, Action::Create, "{r:#?}");
        assert_ne!(r.action, Action::Replace, "{r:#?}");
        for c in &r.changes {
            // Ownership tags, of the resource or of a member (an SSM parameter's).
            assert!(
                c.field.starts_with("tags.") || c.field.contains(".tags."),
                "{:?}/{}: {} {} -> {}",
                r.kind,
                r.name,
                c.field,
                c.live,
                c.desired
            );
        }
    }
    let kinds: Vec<Kind> = report.resources.iter().map(|r| r.kind).collect();
    for k in [
        Kind::Cluster,
        Kind::ParameterSet,
        Kind::TargetGroup,
        Kind::LoadBalancer,
        Kind::Service,
        Kind::ScalableTarget,
        Kind::LogGroup,
        Kind::SecurityGroup,
    ] {
        assert!(kinds.contains(&k), "{k:?} not imported: {kinds:?}");
    }

    // Apply adds the tags and replaces nothing.
    let (before, _) = describe_service(emu, IMPORT_CLUSTER, IMPORT_SERVICE).await;
    apply(emu, &dir).await;
    let (svc, td) = describe_service(emu, IMPORT_CLUSTER, IMPORT_SERVICE).await;
    assert_eq!(svc.service_arn(), Some(svc_arn.as_str()));
    assert_eq!(svc.task_definition(), Some(td_arn.as_str()));
    assert_eq!(td.task_definition_arn(), Some(td_arn.as_str()));
    assert_eq!(
        svc.load_balancers()[0].target_group_arn(),
        Some(tg_arn.as_str())
    );
    assert_eq!(
        svc.network_configuration(),
        before.network_configuration(),
        "same subnets and security group IDs"
    );
    assert!(
        svc.tags()
            .iter()
            .any(|t| t.key() == Some("mooring.dev/stack")
                && t.value() == Some("cdkbackendstack-cluster1a2b3c")),
        "{:?}",
        svc.tags()
    );
    let out = emu.mooring(&["plan", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // The same security groups (IDs), now tagged, still used by the load balancer.
    assert_eq!(
        import_group_ids(emu).await,
        (lb_sg.clone(), svc_sg, default_sg)
    );
    let ec2 = aws_sdk_ec2::Client::new(&emu.sdk_config().await);
    let lb_group = ec2
        .describe_security_groups()
        .group_ids(&lb_sg)
        .send()
        .await
        .unwrap();
    assert!(
        lb_group.security_groups()[0]
            .tags()
            .iter()
            .any(|t| t.key() == Some("mooring.dev/stack")),
        "{lb_group:?}"
    );
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&emu.sdk_config().await);
    let lbs = elb.describe_load_balancers().send().await.unwrap();
    assert_eq!(lbs.load_balancers()[0].security_groups(), [lb_sg.as_str()]);

    // Importing again into the same directory gives the same bytes.
    let out = emu.mooring(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(read_dir_files(&dir), files);

    // Ownership: what another stack owns is left out, not adopted. The log group, tagged
    // as another stack's, is reported and named by its AWS name; the rest still imports.
    let logs = aws_sdk_cloudwatchlogs::Client::new(&emu.sdk_config().await);
    let group_arn = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/backend";
    logs.tag_resource()
        .resource_arn(group_arn)
        .tags("mooring.dev/stack", "blog")
        .tags("mooring.dev/resource", "LogGroup/blog-logs")
        .send()
        .await
        .unwrap();
    let other = out_dir.path().join("again");
    let mut again = args.to_vec();
    let other_path = other.to_str().unwrap();
    *again.last_mut().unwrap() = other_path;
    let out = emu.mooring(&again);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not imported: log group /ecs/backend: mooring manages it as LogGroup/blog-logs of the stack `blog`"),
        "{}",
        stderr(&out)
    );
    let svc_again = std::fs::read_to_string(other.join(service_file)).unwrap();
    assert!(svc_again.contains("group: /ecs/backend"), "{svc_again}");
    assert!(!svc_again.contains("kind: LogGroup"), "{svc_again}");
    // Into another stack, the cluster (which this stack now owns) and so its services are
    // refused: an error, and nothing written.
    let mut into_other = again.clone();
    into_other.extend(["--stack", "other"]);
    let out = emu.mooring(&into_other);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("mooring manages it as Cluster/cdkbackendstack-cluster1a2b3c of the stack `cdkbackendstack-cluster1a2b3c`"),
        "{}",
        stderr(&out)
    );
    // Another environment of the same stack: refused too.
    let ecs = emu.ecs().await;
    let cluster_arn = format!("arn:aws:ecs:us-east-1:123456789012:cluster/{IMPORT_CLUSTER}");
    ecs.tag_resource()
        .resource_arn(&cluster_arn)
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("mooring.dev/environment")
                .value("prd")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let third = out_dir.path().join("third");
    *again.last_mut().unwrap() = third.to_str().unwrap();
    let out = emu.mooring(&again);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("the environment `prd` of the stack `cdkbackendstack-cluster1a2b3c`"),
        "{}",
        stderr(&out)
    );
    assert!(!third.exists());
}

/// The IDs of the CDK-shaped stack's load balancer group, service group and the VPC's
/// default group, by name.
async fn import_group_ids(emu: &Emulator) -> (String, String, String) {
    let ec2 = aws_sdk_ec2::Client::new(&emu.sdk_config().await);
    let groups = ec2.describe_security_groups().send().await.unwrap();
    let id = |name: &str| {
        let found: Vec<&str> = groups
            .security_groups()
            .iter()
            .filter(|g| g.group_name() == Some(name))
            .filter_map(|g| g.group_id())
            .collect();
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        found[0].to_string()
    };
    (
        id("CdkBackendStack-LBSecurityGroup8A41EA2B-1XYZ"),
        id("CdkBackendStack-ServiceSecurityGroup9C4F-2ABC"),
        id("default"),
    )
}

/// A service whose task runs a sidecar (not essential, that the app waits for) imports
/// with the sidecar in the manifest and round-trips: plan shows only the adoption, apply
/// keeps the revision, the next plan is empty. A sidecar with what a manifest cannot
/// express (a mount point of a task volume) is reported per field, on stderr and in the
/// file, and that service is written in observe mode.
#[tokio::test(flavor = "multi_thread")]
async fn import_writes_sidecars_and_observes_a_service_whose_sidecar_it_cannot_carry() {
    let (_guard, emu) = emulator().await;
    build_cdk_like_stack(emu).await;
    // A third service, whose sidecar mounts a task volume.
    let ecs = emu.ecs().await;
    let (worker, _) = describe_service(emu, IMPORT_CLUSTER, "worker").await;
    let shipper_td = ecs
        .register_task_definition()
        .family("batch")
        .cpu("256")
        .memory("512")
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .volumes(aws_sdk_ecs::types::Volume::builder().name("spool").build())
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("busybox:1.36")
                .essential(true)
                .build(),
        )
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("shipper")
                .image("fluent/fluent-bit:3.1")
                .essential(false)
                .mount_points(
                    aws_sdk_ecs::types::MountPoint::builder()
                        .source_volume("spool")
                        .container_path("/spool")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let batch_td = shipper_td
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .unwrap()
        .to_string();
    ecs.create_service()
        .cluster(IMPORT_CLUSTER)
        .service_name("batch")
        .task_definition(&batch_td)
        .desired_count(1)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .set_network_configuration(worker.network_configuration().cloned())
        .send()
        .await
        .unwrap();

    let out_dir = tempfile::tempdir().unwrap();
    let path = out_dir.path().to_str().unwrap();
    let out = emu.mooring(&[
        "import",
        "--cluster",
        IMPORT_CLUSTER,
        "--out",
        path,
        "--stack",
        "shop",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("Service/worker: cannot carry"), "{err}");
    for expected in [
        "Service/batch: cannot carry taskDefinition.volumes",
        "Service/batch: cannot carry taskDefinition.sidecars.shipper.mountPoints",
        "Service/batch: written with mooring.dev/mode: observe",
    ] {
        assert!(err.contains(expected), "no {expected:?} in {err}");
    }
    let worker_yaml = std::fs::read_to_string(out_dir.path().join("worker.yaml")).unwrap();
    assert!(!worker_yaml.contains("mooring.dev/mode"), "{worker_yaml}");
    for expected in [
        "    sidecars:\n      - name: envoy\n        image: envoyproxy/envoy:v1.31\n        essential: false\n",
        "ENVOY_LOG_LEVEL: info",
        "      dependsOn:\n        - containerName: envoy\n          condition: START\n",
    ] {
        assert!(
            worker_yaml.contains(expected),
            "no {expected:?} in\n{worker_yaml}"
        );
    }
    let batch = std::fs::read_to_string(out_dir.path().join("batch.yaml")).unwrap();
    assert!(batch.contains("mooring.dev/mode: observe"), "{batch}");
    assert!(
        batch.contains("#   - taskDefinition.sidecars.shipper.mountPoints\n"),
        "{batch}"
    );
    assert!(batch.contains("- name: shipper"), "{batch}");
    let main = std::fs::read_to_string(
        out_dir
            .path()
            .join("cdkbackendstack-serviced69d759b-1ab2c3.yaml"),
    )
    .unwrap();
    assert!(!main.contains("mooring.dev/mode"), "{main}");
    assert!(
        std::fs::read_to_string(out_dir.path().join("stack.yaml"))
            .unwrap()
            .contains("name: shop")
    );
    let out = emu.mooring(&["validate", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // Plan: the adoption only, but for the observed service, whose plan names what observe
    // mode keeps mooring from removing.
    let (report, _) = plan(emu, out_dir.path()).await;
    for r in &report.resources {
        assert!(r.error().is_none(), "{r:#?}");
        if r.kind == Kind::Service && r.name == "batch" {
            assert!(
                r.changes
                    .iter()
                    .any(|c| c.field.starts_with("taskDefinition")),
                "{r:#?}"
            );
            continue;
        }
        for c in &r.changes {
            assert!(
                c.field.starts_with("tags.") || c.field.contains(".tags."),
                "{:?}/{}: {} {} -> {}",
                r.kind,
                r.name,
                c.field,
                c.live,
                c.desired
            );
        }
    }
    // A pass that honours the annotations, as the daemon's does, adopts the rest and
    // leaves the observed service's revision (with its volume) alone.
    let (_, worker_before) = describe_service(emu, IMPORT_CLUSTER, "worker").await;
    let set = load_dir(out_dir.path()).unwrap();
    let ctx = Context::new(emu.aws().await);
    let observed: std::collections::HashSet<(Kind, String)> = set
        .metadata()
        .into_iter()
        .filter(|(_, m)| m.enforce() == Some(false))
        .map(|(k, m)| (k, m.name.clone()))
        .collect();
    assert_eq!(
        observed,
        std::collections::HashSet::from([(Kind::Service, "batch".to_string())])
    );
    let policy = |kind: Kind, name: &str| {
        observed
            .contains(&(kind, name.to_string()))
            .then_some(reconcile::Hold::Observe)
    };
    let pass = reconcile::apply_selected(
        &ctx,
        &set,
        &reconcilers(&set),
        &policy,
        &mut reconcile::Gates::default(),
    )
    .await;
    assert!(!pass.has_errors(), "{pass:#?}");
    let (svc, after) = describe_service(emu, IMPORT_CLUSTER, "batch").await;
    assert_eq!(after.task_definition_arn(), Some(batch_td.as_str()));
    assert_eq!(after.container_definitions().len(), 2);
    assert_eq!(svc.task_definition(), Some(batch_td.as_str()));
    let (svc, after) = describe_service(emu, IMPORT_CLUSTER, "worker").await;
    assert_eq!(
        after.task_definition_arn(),
        worker_before.task_definition_arn()
    );
    assert_eq!(svc.task_definition(), worker_before.task_definition_arn());
    // Without the observed service, the plan is empty: the sidecar round-trips.
    std::fs::remove_file(out_dir.path().join("batch.yaml")).unwrap();
    let out = emu.mooring(&["plan", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // A service the cluster does not have is an error, and nothing is written.
    let empty = tempfile::tempdir().unwrap();
    let out = emu.mooring(&[
        "import",
        "--cluster",
        IMPORT_CLUSTER,
        "--service",
        "nope",
        "--out",
        empty.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("failed to find service `nope`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

/// A stack mooring made imports back into manifests that plan nothing at all: the same
/// names, the same ownership tags, the defaults left out (the small-api example).
#[tokio::test(flavor = "multi_thread")]
async fn import_of_a_stack_mooring_made_plans_no_changes() {
    let (_guard, emu) = emulator().await;
    emu.seed_examples();
    let out = emu.mooring(&["apply", "manifests/examples/small-api"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["import", "--cluster", "small-prd", "--out", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The stack is the one the cluster's ownership tag names, not the cluster's name.
    let stack = std::fs::read_to_string(dir.path().join("stack.yaml")).unwrap();
    assert!(stack.contains("name: small-api\n"), "{stack}");
    let svc = std::fs::read_to_string(dir.path().join("small-api.yaml")).unwrap();
    for expected in [
        "circuitBreaker:",
        "assignPublicIp: true",
        "createGroup: true",
        "project: small-api",
        "command: [CMD-SHELL, \"wget -q -O /dev/null http://localhost:8080/health || exit 1\"]",
        "redirect:",
    ] {
        let all = format!(
            "{svc}{}",
            std::fs::read_to_string(dir.path().join("load-balancers.yaml")).unwrap()
        );
        assert!(all.contains(expected), "no {expected:?} in\n{all}");
    }
    assert!(
        !svc.contains("policyName"),
        "mooring's own policy name is the default\n{svc}"
    );
    let out = emu.mooring(&["plan", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// The webapp example's HTTPS listener declares a rule forwarding `/api/*` to the backend's
/// target group: import writes the rule (every rule of the listener can be written, so the
/// listener owns them) and the backend's target group as a manifest, and the round trip
/// plans nothing. Once a rule matching on source IP (which a manifest cannot express) is
/// added by hand, the listener's rules are left out with a note, the backend's target
/// group, reached only by a rule, is named by ARN, and the round trip still plans nothing.
#[tokio::test(flavor = "multi_thread")]
async fn import_writes_listener_rules_it_can_express_and_leaves_the_others() {
    let (_guard, emu) = emulator().await;
    emu.seed_examples();
    let out = emu.mooring(&["apply", "manifests/examples/webapp"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&[
        "import",
        "--cluster",
        "webapp-prd",
        "--stack",
        "webapp",
        "--out",
        path,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let files = read_dir_files(dir.path());
    let all: String = files.values().cloned().collect();
    let lb_yaml = &files["load-balancers.yaml"];
    let rules = &lb_yaml[lb_yaml.find("rules:").expect(lb_yaml)..];
    for expected in [
        "priority: 10",
        "pathPatterns: [\"/api/*\"]",
        "forward: webapp-backend",
    ] {
        assert!(rules.contains(expected), "no {expected:?} in\n{lb_yaml}");
    }
    assert!(!all.contains("targetGroupArn:"), "{all}");
    assert!(all.contains("kind: LogGroup"), "{all}");
    for args in [["validate", path], ["plan", path]] {
        let out = emu.mooring(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
    }

    // A rule the manifest cannot express, added by hand: the rules are left alone.
    use aws_sdk_elasticloadbalancingv2::types::{
        Action as ElbAction, ActionTypeEnum, RuleCondition, SourceIpConditionConfig,
    };
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&emu.sdk_config().await);
    let lbs = elb.describe_load_balancers().send().await.unwrap();
    let lb_arn = lbs.load_balancers()[0].load_balancer_arn().unwrap();
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(lb_arn)
        .send()
        .await
        .unwrap();
    let https = listeners
        .listeners()
        .iter()
        .find(|l| l.port() == Some(443))
        .unwrap();
    let backend = https_rule_target(&elb, https.listener_arn().unwrap()).await;
    elb.create_rule()
        .listener_arn(https.listener_arn().unwrap())
        .priority(20)
        .conditions(
            RuleCondition::builder()
                .field("source-ip")
                .source_ip_config(
                    SourceIpConditionConfig::builder()
                        .values("10.0.0.0/8")
                        .build(),
                )
                .build(),
        )
        .actions(
            ElbAction::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&backend)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&[
        "import",
        "--cluster",
        "webapp-prd",
        "--stack",
        "webapp",
        "--out",
        path,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "note: the rules of listener 443 are left out and left as they are: rule 20 matches on source-ip"
        ),
        "{}",
        stderr(&out)
    );
    let all: String = read_dir_files(dir.path()).into_values().collect();
    assert!(all.contains(&format!("targetGroupArn: {backend}")), "{all}");
    assert!(!all.contains("rules:"), "{all}");
    let out = emu.mooring(&["plan", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// The target group the listener's rule 10 forwards to.
async fn https_rule_target(elb: &aws_sdk_elasticloadbalancingv2::Client, listener: &str) -> String {
    let rules = elb
        .describe_rules()
        .listener_arn(listener)
        .send()
        .await
        .unwrap();
    rules
        .rules()
        .iter()
        .find(|r| r.priority() == Some("10"))
        .and_then(|r| r.actions().first())
        .and_then(|a| a.target_group_arn())
        .unwrap()
        .to_string()
}

// ---- mooring import --cloudformation-stack / --tag ----

/// What a CloudFormation-made stack came to: the service's cluster and name (generated),
/// its ARN, its target group's ARN, its task definition's ARN and its security group.
struct CfnStack {
    cluster: String,
    service: String,
    svc_arn: String,
    tg_arn: String,
    td_arn: String,
    sg: String,
}

/// The physical IDs of a stack's resources, by logical ID.
async fn stack_resources(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> std::collections::BTreeMap<String, String> {
    cfn.list_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .unwrap()
        .stack_resource_summaries()
        .iter()
        .map(|r| {
            (
                r.logical_resource_id().unwrap().to_string(),
                r.physical_resource_id().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Builds through moto's CloudFormation a stack shaped like CDK's output (generated
/// logical IDs and names: cluster, Fargate service and task definition, log groups, an SSM
/// String parameter, an ECR repository, a security group, an ALB with its HTTP listener
/// and target group, an EventBridge schedule, an SNS topic and, with `nested`, a nested
/// stack holding a repository and a log group), tagged `app=<tag>`, then adds by direct
/// SDK calls what moto's CloudFormation lacks: scaling, and the service settings it drops
/// (the service is made again under its name: see below).
async fn build_cfn_stack(emu: &Emulator, stack: &str, tag: &str, nested: bool) -> CfnStack {
    use aws_sdk_ecs::types::{
        Compatibility, LogConfiguration, LogDriver, NetworkMode, PortMapping, TransportProtocol,
    };
    use serde_json::json;
    let config = emu.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    let ecs = emu.ecs().await;
    let vpc = ec2
        .describe_vpcs()
        .send()
        .await
        .unwrap()
        .vpcs()
        .iter()
        .find(|v| v.is_default() == Some(true))
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_string();
    let mut subnets: Vec<String> = ec2
        .describe_subnets()
        .send()
        .await
        .unwrap()
        .subnets()
        .iter()
        .filter(|s| s.vpc_id() == Some(vpc.as_str()))
        .filter_map(|s| s.subnet_id().map(str::to_string))
        .collect();
    subnets.sort();
    subnets.truncate(2);
    let lower = stack.to_ascii_lowercase();
    let mut resources = json!({
        "ClusterEB0386A7": {"Type": "AWS::ECS::Cluster"},
        "ServiceLogGroupF5B46931": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 14}},
        "AuditLogs9C1D2E3F": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": format!("/cdk/{lower}/audit"), "RetentionInDays": 30}},
        "DbHostParam1A2B3C4D": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Name": format!("/cdk/{lower}/db/host"), "Value": "db.internal"}},
        // moto 5.2.5 derives a missing RepositoryName from the stack name and logical ID with
        // their capitals, which ECR then refuses: the name is given, lower-case as CDK's are.
        "Repo02AC86CF": {"Type": "AWS::ECR::Repository", "Properties": {"RepositoryName": format!("{lower}-repo02ac86cf-1x2y3z")}},
        "ServiceSecurityGroup4C5D6E7F": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "service", "VpcId": vpc}},
        "LB8A12904C": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {
            "Type": "application", "Scheme": "internet-facing", "Subnets": subnets,
            "SecurityGroups": [{"Fn::GetAtt": ["ServiceSecurityGroup4C5D6E7F", "GroupId"]}]}},
        "LBListenerTargetGroupF04FCF6D": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {
            "Port": 3000, "Protocol": "HTTP", "TargetType": "ip", "VpcId": vpc,
            "HealthCheckPath": "/api/health"}},
        "LBListener49E825B4": {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
            "LoadBalancerArn": {"Ref": "LB8A12904C"}, "Port": 80, "Protocol": "HTTP",
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": {"Ref": "LBListenerTargetGroupF04FCF6D"}}]}},
        "TaskDef54694570": {"Type": "AWS::ECS::TaskDefinition", "Properties": {
            "Family": format!("{stack}TaskDef54694570"), "Cpu": "256", "Memory": "512",
            "NetworkMode": "awsvpc", "RequiresCompatibilities": ["FARGATE"],
            "ContainerDefinitions": [{"Name": "web", "Image": "nginx:1.25", "Essential": true,
                "PortMappings": [{"ContainerPort": 3000, "Protocol": "tcp"}]}]}},
        "ServiceD69D759B": {"Type": "AWS::ECS::Service", "DependsOn": ["LBListener49E825B4"], "Properties": {
            "Cluster": {"Ref": "ClusterEB0386A7"}, "TaskDefinition": {"Ref": "TaskDef54694570"},
            "DesiredCount": 2, "LaunchType": "FARGATE",
            "NetworkConfiguration": {"AwsvpcConfiguration": {"Subnets": subnets, "AssignPublicIp": "DISABLED",
                "SecurityGroups": [{"Fn::GetAtt": ["ServiceSecurityGroup4C5D6E7F", "GroupId"]}]}},
            "LoadBalancers": [{"ContainerName": "web", "ContainerPort": 3000,
                "TargetGroupArn": {"Ref": "LBListenerTargetGroupF04FCF6D"}}]}},
        "ResetQueueSchedule8E2B1C3A": {"Type": "AWS::Events::Rule", "Properties": {"ScheduleExpression": "rate(15 minutes)", "State": "ENABLED"}},
        "AlertsTopic7F3A2B1C": {"Type": "AWS::SNS::Topic"},
    });
    if nested {
        let template = json!({"Resources": {
            "NestedRepoABC123": {"Type": "AWS::ECR::Repository", "Properties": {"RepositoryName": format!("{lower}-nested-repo")}},
            "NestedLogs1F2E3D": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": format!("/cdk/{lower}/nested"), "RetentionInDays": 7}},
        }});
        emu.s3_put("/cdk-assets", "");
        emu.s3_put(
            &format!("/cdk-assets/{lower}-nested.json"),
            &template.to_string(),
        );
        resources["NestedStackNestedStackResource9A8B7C6D"] = json!({
            "Type": "AWS::CloudFormation::Stack",
            "Properties": {"TemplateURL": format!("https://s3.amazonaws.com/cdk-assets/{lower}-nested.json")}
        });
    }
    cfn.create_stack()
        .stack_name(stack)
        .template_body(json!({"Resources": resources}).to_string())
        .tags(
            aws_sdk_cloudformation::types::Tag::builder()
                .key("app")
                .value(tag)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ids = stack_resources(&cfn, stack).await;
    let cluster = ids["ClusterEB0386A7"].clone();
    let svc_arn = ids["ServiceD69D759B"].clone();
    let service = svc_arn.rsplit('/').next().unwrap().to_string();
    let tg_arn = ids["LBListenerTargetGroupF04FCF6D"].clone();
    let sg = ids["ServiceSecurityGroup4C5D6E7F"].clone();
    let log_group = ids["ServiceLogGroupF5B46931"].clone();
    assert!(
        service.starts_with(&format!("{stack}-ServiceD69D759B-")),
        "{service}"
    );

    // moto's CloudFormation keeps of a task definition only its family, containers and
    // memory, and of a service only its cluster, name, task definition and count
    // (LoadBalancers and Role are TODOs in moto 5.2.5's Service.create_from_cloudformation_json),
    // and it makes the service with launch type EC2. UpdateService cannot fix the launch
    // type (AWS's API has no such field, and moto parses the request by the API's shape,
    // dropping it), so the revision CDK would have made is registered and the service is
    // deleted and made again under the same name, with the settings CDK would have given
    // it: same cluster, same name, hence the same ARN the stack lists as its physical ID.
    let td = ecs
        .register_task_definition()
        .family(format!("{stack}TaskDef54694570"))
        .cpu("256")
        .memory("512")
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .execution_role_arn(format!(
            "arn:aws:iam::123456789012:role/{stack}-TaskDefExecutionRole-1A2B3C"
        ))
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image("nginx:1.25")
                .essential(true)
                .port_mappings(
                    PortMapping::builder()
                        .container_port(3000)
                        .host_port(3000)
                        .protocol(TransportProtocol::Tcp)
                        .build(),
                )
                .log_configuration(
                    LogConfiguration::builder()
                        .log_driver(LogDriver::Awslogs)
                        .options("awslogs-group", &log_group)
                        .options("awslogs-region", "us-east-1")
                        .options("awslogs-stream-prefix", "Service")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let td_arn = td
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .unwrap()
        .to_string();
    ecs.delete_service()
        .cluster(&cluster)
        .service(&service)
        .force(true)
        .send()
        .await
        .unwrap();
    let made = ecs
        .create_service()
        .cluster(&cluster)
        .service_name(&service)
        .task_definition(&td_arn)
        .desired_count(2)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .network_configuration(
            aws_sdk_ecs::types::NetworkConfiguration::builder()
                .awsvpc_configuration(
                    aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                        .set_subnets(Some(subnets.clone()))
                        .security_groups(&sg)
                        .assign_public_ip(aws_sdk_ecs::types::AssignPublicIp::Disabled)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .load_balancers(
            aws_sdk_ecs::types::LoadBalancer::builder()
                .target_group_arn(&tg_arn)
                .container_name("web")
                .container_port(3000)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        made.service().and_then(|s| s.service_arn()),
        Some(svc_arn.as_str()),
        "the service made again has the ARN the stack lists"
    );

    // Scaling: moto's CloudFormation has no Application Auto Scaling.
    let scaling = aws_sdk_applicationautoscaling::Client::new(&config);
    let resource = format!("service/{cluster}/{service}");
    let dim = aws_sdk_applicationautoscaling::types::ScalableDimension::EcsServiceDesiredCount;
    let ns = aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs;
    scaling
        .register_scalable_target()
        .service_namespace(ns.clone())
        .scalable_dimension(dim.clone())
        .resource_id(&resource)
        .min_capacity(2)
        .max_capacity(6)
        .send()
        .await
        .unwrap();
    scaling
        .put_scaling_policy()
        .policy_name(format!("{stack}ServiceTaskCountTargetCpuScaling5A7E3F"))
        .service_namespace(ns)
        .scalable_dimension(dim)
        .resource_id(&resource)
        .policy_type(aws_sdk_applicationautoscaling::types::PolicyType::TargetTrackingScaling)
        .target_tracking_scaling_policy_configuration(
            aws_sdk_applicationautoscaling::types::TargetTrackingScalingPolicyConfiguration::builder()
                .target_value(80.0)
                .predefined_metric_specification(
                    aws_sdk_applicationautoscaling::types::PredefinedMetricSpecification::builder()
                        .predefined_metric_type(
                            aws_sdk_applicationautoscaling::types::MetricType::EcsServiceAverageCpuUtilization,
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    CfnStack {
        cluster,
        service,
        svc_arn,
        tg_arn,
        td_arn,
        sg,
    }
}

/// What the salon-booking shape adds to a CDK-shaped stack by direct SDK calls, where
/// moto's CloudFormation has no such resource type: the schedule's API destination and its
/// API-key connection (the stack's rule then gets its target, CDK's `Target0`), Redis in
/// its subnet group, and alarms on the service's CPU and the target group's 5xx count
/// (both followed from the service) plus one on a custom metric picked by its tag.
struct SalonExtras {
    rule: String,
    connection_arn: String,
    destination_arn: String,
    /// The secret moto keeps the connection's key in (to prove it untouched).
    key_secret: String,
    redis_arn: String,
    subnet_group: String,
    alarm_arns: Vec<String>,
}

async fn add_salon_extras(emu: &Emulator, stack: &str, built: &CfnStack, tag: &str) -> SalonExtras {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
    let config = emu.sdk_config().await;
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    let ids = stack_resources(&cfn, stack).await;
    let rule = ids["ResetQueueSchedule8E2B1C3A"].clone();
    let topic = ids["AlertsTopic7F3A2B1C"].clone();
    let lb_arn = ids["LB8A12904C"].clone();
    let eb = aws_sdk_eventbridge::Client::new(&config);
    let made = eb
        .create_connection()
        .name(format!("{stack}SchedulerConnection1A2B3C4D-Kx9Q"))
        .description("made by CDK")
        .authorization_type(aws_sdk_eventbridge::types::ConnectionAuthorizationType::ApiKey)
        .auth_parameters(
            aws_sdk_eventbridge::types::CreateConnectionAuthRequestParameters::builder()
                .api_key_auth_parameters(
                    aws_sdk_eventbridge::types::CreateConnectionApiKeyAuthRequestParameters::builder()
                        .api_key_name("x-api-key")
                        .api_key_value("key-set-by-hand")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let connection_arn = made.connection_arn().unwrap().to_string();
    let connection = eb
        .describe_connection()
        .name(format!("{stack}SchedulerConnection1A2B3C4D-Kx9Q"))
        .send()
        .await
        .unwrap();
    let key_secret = connection.secret_arn().unwrap().to_string();
    let destination_arn = eb
        .create_api_destination()
        .name(format!("{stack}ResetQueueDestination5E6F7A8B-Lm3N"))
        .connection_arn(&connection_arn)
        .invocation_endpoint("https://api.salon.example/salons/reset-queue")
        .http_method(aws_sdk_eventbridge::types::ApiDestinationHttpMethod::Post)
        .invocation_rate_limit_per_second(1)
        .send()
        .await
        .unwrap()
        .api_destination_arn()
        .unwrap()
        .to_string();
    eb.put_targets()
        .rule(&rule)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("Target0")
                .arn(&destination_arn)
                .role_arn(format!(
                    "arn:aws:iam::123456789012:role/{stack}-SchedulerRole-1A2B"
                ))
                .input("{}")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // Redis: one node in its own subnet group, behind the service's security group.
    let ec = aws_sdk_elasticache::Client::new(&config);
    let lower = stack.to_ascii_lowercase();
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let mut subnets: Vec<String> = ec2
        .describe_subnets()
        .send()
        .await
        .unwrap()
        .subnets()
        .iter()
        .filter(|s| s.default_for_az() == Some(true))
        .filter_map(|s| s.subnet_id().map(str::to_string))
        .collect();
    subnets.sort();
    subnets.truncate(2);
    let etag = || {
        aws_sdk_elasticache::types::Tag::builder()
            .key("app")
            .value(tag)
            .build()
    };
    let subnet_group = format!("{lower}-redissubnets-1x2y3z");
    ec.create_cache_subnet_group()
        .cache_subnet_group_name(&subnet_group)
        .cache_subnet_group_description("salon-booking Redis subnets")
        .set_subnet_ids(Some(subnets))
        .tags(etag())
        .send()
        .await
        .unwrap();
    let redis_arn = ec
        .create_replication_group()
        .replication_group_id(format!("{lower}-redis-4a5b6c"))
        .replication_group_description("salon-booking cache")
        .engine("redis")
        .engine_version("7.1")
        .cache_node_type("cache.t2.small")
        .num_cache_clusters(1)
        .cache_subnet_group_name(&subnet_group)
        .security_group_ids(&built.sg)
        .at_rest_encryption_enabled(true)
        .transit_encryption_enabled(true)
        .snapshot_retention_limit(7)
        .tags(etag())
        .send()
        .await
        .unwrap()
        .replication_group()
        .and_then(|g| g.arn())
        .unwrap()
        .to_string();

    // Alarms: two on what the service reaches (short forms), one on a custom metric.
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    let dim = |n: &str, v: &str| Dimension::builder().name(n).value(v).build();
    let suffix = |arn: &str| {
        let r = arn.splitn(6, ':').nth(5).unwrap().to_string();
        r.strip_prefix("loadbalancer/").unwrap_or(&r).to_string()
    };
    cw.put_metric_alarm()
        .alarm_name(format!("{stack}-BackendCpuAlarm9A8B7C6D-1QW2E3"))
        .alarm_description("backend CPU above 85 % for 3 minutes")
        .namespace("AWS/ECS")
        .metric_name("CPUUtilization")
        .dimensions(dim("ClusterName", &built.cluster))
        .dimensions(dim("ServiceName", &built.service))
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(3)
        .threshold(85.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .alarm_actions(&topic)
        .ok_actions(&topic)
        .send()
        .await
        .unwrap();
    cw.put_metric_alarm()
        .alarm_name(format!("{stack}-Backend5xxAlarm5F4E3D2C-4RT5Y6"))
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .dimensions(dim("LoadBalancer", &suffix(&lb_arn)))
        .dimensions(dim("TargetGroup", &suffix(&built.tg_arn)))
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(5)
        .datapoints_to_alarm(2)
        .threshold(10.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .treat_missing_data("notBreaching")
        .alarm_actions(&topic)
        .send()
        .await
        .unwrap();
    cw.put_metric_alarm()
        .alarm_name(format!("{stack}-FailedBookingsAlarm-7U8I9O"))
        .namespace("Salon/Bookings")
        .metric_name("FailedBookings")
        .dimensions(dim("Env", "prd"))
        .statistic(Statistic::Sum)
        .period(300)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .tags(
            aws_sdk_cloudwatch::types::Tag::builder()
                .key("app")
                .value(tag)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut alarm_arns: Vec<String> = cw
        .describe_alarms()
        .send()
        .await
        .unwrap()
        .metric_alarms()
        .iter()
        .filter(|a| a.alarm_name().is_some_and(|n| n.starts_with(stack)))
        .filter_map(|a| a.alarm_arn().map(str::to_string))
        .collect();
    alarm_arns.sort();
    assert_eq!(alarm_arns.len(), 3, "{alarm_arns:?}");
    SalonExtras {
        rule,
        connection_arn,
        destination_arn,
        key_secret,
        redis_arn,
        subnet_group,
        alarm_arns,
    }
}

/// The live IDs the salon extras must keep through an apply: the rule's targets, the
/// connection's and destination's ARNs, the key's secret value, Redis's ARN and its subnet
/// group's subnets, the alarms' ARNs.
async fn salon_extras_state(emu: &Emulator, stack: &str, x: &SalonExtras) -> Vec<String> {
    let config = emu.sdk_config().await;
    let eb = aws_sdk_eventbridge::Client::new(&config);
    let mut state: Vec<String> = eb
        .list_targets_by_rule()
        .rule(&x.rule)
        .send()
        .await
        .unwrap()
        .targets()
        .iter()
        .map(|t| format!("target {} -> {}", t.id(), t.arn()))
        .collect();
    let c = eb
        .describe_connection()
        .name(format!("{stack}SchedulerConnection1A2B3C4D-Kx9Q"))
        .send()
        .await
        .unwrap();
    state.push(format!("connection {}", c.connection_arn().unwrap()));
    let d = eb
        .describe_api_destination()
        .name(format!("{stack}ResetQueueDestination5E6F7A8B-Lm3N"))
        .send()
        .await
        .unwrap();
    state.push(format!(
        "destination {} {} via {}",
        d.api_destination_arn().unwrap(),
        d.invocation_endpoint().unwrap(),
        d.connection_arn().unwrap()
    ));
    // The test's own fake key, read only here to prove mooring left it alone.
    let key = aws_sdk_secretsmanager::Client::new(&config)
        .get_secret_value()
        .secret_id(&x.key_secret)
        .send()
        .await
        .unwrap();
    state.push(format!(
        "key kept: {}",
        key.secret_string().unwrap().contains("key-set-by-hand")
    ));
    let ec = aws_sdk_elasticache::Client::new(&config);
    let rg = ec
        .describe_replication_groups()
        .send()
        .await
        .unwrap()
        .replication_groups()
        .iter()
        .filter_map(|g| g.arn().map(str::to_string))
        .collect::<Vec<_>>();
    state.push(format!("redis {rg:?}"));
    let sg = ec
        .describe_cache_subnet_groups()
        .cache_subnet_group_name(&x.subnet_group)
        .send()
        .await
        .unwrap();
    let g = &sg.cache_subnet_groups()[0];
    let mut subnets: Vec<&str> = g
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_identifier())
        .collect();
    subnets.sort_unstable();
    state.push(format!(
        "subnet group {} {subnets:?}",
        g.arn().unwrap_or_default()
    ));
    state.extend(x.alarm_arns.iter().map(|a| format!("alarm {a}")));
    state
}

/// The number of manifest documents in a directory, by kind.
fn documents(files: &std::collections::BTreeMap<String, String>) -> Vec<(String, usize)> {
    let mut by_kind = std::collections::BTreeMap::new();
    for text in files.values() {
        for line in text.lines() {
            if let Some(kind) = line.strip_prefix("kind: ") {
                *by_kind.entry(kind.to_string()).or_insert(0) += 1;
            }
        }
    }
    by_kind.into_iter().collect()
}

/// A CDK-shaped stack made by moto's CloudFormation (plus scaling, the schedule's API
/// destination and connection, Redis and alarms by SDK: the salon-booking shape) imports by
/// its stack name: generated names kept, what mooring cannot carry reported, `plan` shows
/// only the adoption, `apply` keeps the service ARN, target group ARN, security group IDs,
/// task definition revision, the rule's target, the connection (and its key), the API
/// destination and the alarms, the next `plan` exits 0, and importing twice gives the same
/// files. The nested stack's resources come only with `--recursive`. Then Redis, which
/// moto's CloudFormation cannot hold, comes by `--tag` with the same round trip.
#[tokio::test(flavor = "multi_thread")]
async fn import_cloudformation_stack_round_trip_keeps_generated_names_and_every_arn() {
    let (_guard, emu) = emulator().await;
    let stack = "CdkBackendStack";
    let built = build_cfn_stack(emu, stack, "backend", true).await;
    let extras = add_salon_extras(emu, stack, &built, "backend").await;
    let extras_before = salon_extras_state(emu, stack, &extras).await;
    let out_dir = tempfile::tempdir().unwrap();
    let dir = out_dir.path().join("imported");
    let path = dir.to_str().unwrap();
    let args = ["import", "--cloudformation-stack", stack, "--out", path];
    let out = emu.mooring(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    for expected in [
        "not imported: AWS::SNS::Topic arn:aws:sns:",
        "(CdkBackendStack/NestedStackNestedStackResource9A8B7C6D): a nested stack: `--recursive` imports its resources too",
    ] {
        assert!(err.contains(expected), "no {expected:?} in\n{err}");
    }
    // The stack's security group is imported (the service names its manifest).
    assert!(!err.contains("AWS::EC2::SecurityGroup"), "{err}");
    let files = read_dir_files(&dir);
    let service_file = format!("{}.yaml", built.service.to_ascii_lowercase());
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    let mut expected = vec![
        service_file.as_str(),
        "alarms.yaml",
        "cluster.yaml",
        "load-balancers.yaml",
        "log-groups.yaml",
        "parameters.yaml",
        "repositories.yaml",
        "schedules.yaml",
        "security-groups.yaml",
        "stack.yaml",
    ];
    expected.sort();
    assert_eq!(names, expected);
    let all: String = files.values().cloned().collect();
    let svc_yaml = &files[&service_file];
    for expected in [
        format!("# Imported by `mooring import` from {}", built.svc_arn),
        format!("serviceName: {}", built.service),
        format!("clusterName: {}", built.cluster),
        format!("family: {stack}TaskDef54694570"),
        format!("policyName: {stack}ServiceTaskCountTargetCpuScaling5A7E3F"),
        format!("security-group/{}", built.sg),
        "kind: SecurityGroup".to_string(),
        "securityGroups:\n      refs: [".to_string(),
        "kind: LogGroup".to_string(),
        "kind: ScalableTarget".to_string(),
    ] {
        assert!(all.contains(&expected), "no {expected:?} in\n{all}");
    }
    assert!(!svc_yaml.contains("mooring.dev/mode"), "{svc_yaml}");
    let lower = stack.to_ascii_lowercase();
    for expected in [
        format!("logGroupName: /cdk/{lower}/audit\n  retentionInDays: 30"),
        format!("repositoryName: {lower}-repo02ac86cf-1x2y3z"),
        format!("path: /cdk/{lower}/db\n"),
        "host: db.internal".to_string(),
        "name: cdkbackendstack\n".to_string(),
        "#   - AWS::SNS::Topic".to_string(),
    ] {
        assert!(all.contains(&expected), "no {expected:?} in\n{all}");
    }
    assert!(
        !all.contains(&format!("{lower}-nested-repo")) && !all.contains("/nested\n"),
        "nested without --recursive:\n{all}"
    );
    // The schedule: rule → API destination → connection, by manifest names; the rule keeps
    // CDK's target ID, and the connection names no secret (its key is left as it is).
    let schedules = &files["schedules.yaml"];
    let connection = format!("{stack}SchedulerConnection1A2B3C4D-Kx9Q");
    let destination = format!("{stack}ResetQueueDestination5E6F7A8B-Lm3N");
    for expected in [
        format!("# Imported by `mooring import` from {}", extras.connection_arn),
        format!("# Imported by `mooring import` from {}", extras.destination_arn),
        format!("connectionName: {connection}\n  apiKey:\n    headerName: x-api-key\n"),
        format!("apiDestinationName: {destination}\n  connection: {}\n", connection.to_ascii_lowercase()),
        "endpoint: https://api.salon.example/salons/reset-queue\n  httpMethod: POST\n  invocationRateLimitPerSecond: 1\n".to_string(),
        format!("ruleName: {}\n  scheduleExpression: \"rate(15 minutes)\"\n", extras.rule),
        format!("    id: Target0\n    apiDestination: {}\n", destination.to_ascii_lowercase()),
        "set `apiKey.secretId` to the Secrets Manager secret holding the API key".to_string(),
    ] {
        assert!(schedules.contains(&expected), "no {expected:?} in\n{schedules}");
    }
    assert!(!schedules.contains("secretId:"), "{schedules}");
    assert!(!all.contains("key-set-by-hand"), "{all}");
    // The alarms the service and its target group reach, in the short forms; not
    // Application Auto Scaling's, nor the custom metric's (tagged, not in the stack).
    let alarms = &files["alarms.yaml"];
    for expected in [
        format!("alarmName: {stack}-BackendCpuAlarm9A8B7C6D-1QW2E3\n  description: \"backend CPU above 85 % for 3 minutes\"\n  service:\n    name: {}\n    metric: cpu\n  period: 60\n  threshold: 85\n  comparison: greaterThan\n  evaluationPeriods: 3\n", built.service.to_ascii_lowercase()),
        "  targetGroup:\n    name: ".to_string(),
        "    metric: \"5xx\"\n  period: 60\n  threshold: 10\n  comparison: greaterThanOrEqual\n  evaluationPeriods: 5\n  datapointsToAlarm: 2\n  treatMissingData: notBreaching\n".to_string(),
    ] {
        assert!(alarms.contains(&expected), "no {expected:?} in\n{alarms}");
    }
    assert!(
        !alarms.contains("TargetTracking-") && !alarms.contains("FailedBookings"),
        "{alarms}"
    );
    let counts = documents(&files);
    eprintln!(
        "import --cloudformation-stack: {} files, documents {counts:?}",
        files.len()
    );

    let out = emu.mooring(&["validate", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // Plan shows only the adoption: ownership tags, nothing else.
    let (report, _) = plan(emu, &dir).await;
    only_adoption(&report);
    let kinds: Vec<Kind> = report.resources.iter().map(|r| r.kind).collect();
    for k in [
        Kind::Cluster,
        Kind::Service,
        Kind::TargetGroup,
        Kind::LoadBalancer,
        Kind::ScalableTarget,
        Kind::LogGroup,
        Kind::ParameterSet,
        Kind::Repository,
        Kind::Alarm,
        Kind::Rule,
        Kind::ApiDestination,
        Kind::Connection,
    ] {
        assert!(kinds.contains(&k), "{k:?} not imported: {kinds:?}");
    }
    eprintln!(
        "import --cloudformation-stack: {} resources planned",
        report.resources.len()
    );

    // Apply adds the tags and replaces nothing.
    apply(emu, &dir).await;
    let (svc, td) = describe_service(emu, &built.cluster, &built.service).await;
    assert_eq!(svc.service_arn(), Some(built.svc_arn.as_str()));
    assert_eq!(svc.task_definition(), Some(built.td_arn.as_str()));
    assert_eq!(td.task_definition_arn(), Some(built.td_arn.as_str()));
    assert_eq!(
        svc.load_balancers()[0].target_group_arn(),
        Some(built.tg_arn.as_str())
    );
    assert_eq!(
        svc.network_configuration()
            .and_then(|n| n.awsvpc_configuration())
            .map(|a| a.security_groups().to_vec()),
        Some(vec![built.sg.clone()])
    );
    assert_eq!(salon_extras_state(emu, stack, &extras).await, extras_before);
    let out = emu.mooring(&["plan", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // Importing again gives the same bytes.
    let out = emu.mooring(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(read_dir_files(&dir), files);

    // With --recursive, the nested stack's repository and log group come too.
    let nested_dir = tempfile::tempdir().unwrap();
    let out = emu.mooring(&[
        "import",
        "--cloudformation-stack",
        stack,
        "--recursive",
        "--out",
        nested_dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("a nested stack"), "{}", stderr(&out));
    let nested = read_dir_files(nested_dir.path());
    let all: String = nested.values().cloned().collect();
    for expected in [
        format!("repositoryName: {lower}-nested-repo"),
        format!("logGroupName: /cdk/{lower}/nested\n  retentionInDays: 7"),
    ] {
        assert!(all.contains(&expected), "no {expected:?} in\n{all}");
    }
    eprintln!(
        "import --cloudformation-stack --recursive: {} files, documents {:?}",
        nested.len(),
        documents(&nested)
    );
    let out = emu.mooring(&["validate", nested_dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Redis and the custom metric's alarm, which moto's CloudFormation cannot hold, come by
    // their tag (with the stack, whose tag they share): in the same stack, what the first
    // apply adopted plans nothing, and Redis and its subnet group only their adoption.
    let tagged_dir = tempfile::tempdir().unwrap();
    let tagged_path = tagged_dir.path().to_str().unwrap();
    let tag_args = [
        "import",
        "--tag",
        "app=backend",
        "--stack",
        &lower,
        "--out",
        tagged_path,
    ];
    let out = emu.mooring(&tag_args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let tagged = read_dir_files(tagged_dir.path());
    let caches = &tagged["replication-groups.yaml"];
    for expected in [
        format!("# Imported by `mooring import` from {}", extras.redis_arn),
        format!("kind: CacheSubnetGroup\nmetadata:\n  name: {}\n", extras.subnet_group),
        format!("cacheSubnetGroupName: {}\n  description: \"salon-booking Redis subnets\"\n  subnets:\n    ids: [subnet-", extras.subnet_group),
        // moto describes no member cache cluster of a replication group, so the engine
        // version (a placeholder, noted), the subnet group and the security groups are
        // unknown there; the kind compares them only when ElastiCache reports them.
        format!("replicationGroupId: {lower}-redis-4a5b6c\n  description: \"salon-booking cache\"\n  engineVersion: \"7.1\"\n  nodeType: cache.t2.small\n  numCacheClusters: 1\n  atRestEncryption: true\n"),
        "# Note: ElastiCache did not describe the group's nodes".to_string(),
        "atRestEncryption: true\n  transitEncryption: true\n  snapshotRetentionLimit: 7\n  tags:\n    app: backend\n".to_string(),
    ] {
        assert!(caches.contains(&expected), "no {expected:?} in\n{caches}");
    }
    assert!(
        tagged["alarms.yaml"].contains("  metric:\n    namespace: Salon/Bookings\n    metricName: FailedBookings\n    dimensions:\n      Env: prd\n  statistic: Sum\n"),
        "{}",
        tagged["alarms.yaml"]
    );
    eprintln!(
        "import --tag (salon extras): {} files, documents {:?}",
        tagged.len(),
        documents(&tagged)
    );
    let out = emu.mooring(&["validate", tagged_path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (report, _) = plan(emu, tagged_dir.path()).await;
    only_adoption(&report);
    let changing: Vec<String> = report
        .resources
        .iter()
        .filter(|r| !r.changes.is_empty())
        .map(|r| format!("{:?}", r.kind))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for k in ["Alarm", "CacheSubnetGroup", "ReplicationGroup"] {
        assert!(
            changing.iter().any(|c| c == k),
            "{k} not adopted: {changing:?}"
        );
    }
    for k in [
        "Cluster",
        "Service",
        "TargetGroup",
        "LoadBalancer",
        "ScalableTarget",
        "ParameterSet",
        "Rule",
        "ApiDestination",
        "Connection",
    ] {
        assert!(
            !changing.iter().any(|c| c == k),
            "{k} was adopted by the stack import: {report:#?}"
        );
    }
    eprintln!("import --tag after the stack's adoption: changes only on {changing:?}");
    apply(emu, tagged_dir.path()).await;
    assert_eq!(salon_extras_state(emu, stack, &extras).await, extras_before);
    let out = emu.mooring(&["plan", tagged_path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = emu.mooring(&tag_args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(read_dir_files(tagged_dir.path()), tagged);
}

/// Every planned change is the adoption: ownership tags, or the ownership marker in the
/// description of the kinds EventBridge cannot tag (a connection's `marker`, an API
/// destination's `description`); nothing is created or replaced.
fn only_adoption(report: &PassReport) {
    for r in &report.resources {
        assert!(r.error().is_none(), "{r:#?}");
        assert_ne!(r.action, Action::Create, "{r:#?}");
        assert_ne!(r.action, Action::Replace, "{r:#?}");
        for c in &r.changes {
            let marker = match r.kind {
                Kind::Connection => c.field == "marker",
                Kind::ApiDestination => c.field == "description",
                _ => false,
            };
            assert!(
                marker || c.field.starts_with("tags.") || c.field.contains(".tags."),
                "{:?}/{}: {} {} -> {}",
                r.kind,
                r.name,
                c.field,
                c.live,
                c.desired
            );
        }
    }
}

/// `--tag app=backend` picks the stack carrying that tag and none of another stack's
/// resources in the same account, and gives the same manifests as importing the stack by
/// name. An unknown stack, a malformed tag and a tag nothing carries are clear errors that
/// write nothing.
#[tokio::test(flavor = "multi_thread")]
async fn import_by_tag_picks_only_the_tagged_stack_and_bad_input_writes_nothing() {
    let (_guard, emu) = emulator().await;
    let backend = build_cfn_stack(emu, "CdkBackendStack", "backend", false).await;
    let other = build_cfn_stack(emu, "CdkOtherStack", "other", false).await;
    let by_tag = tempfile::tempdir().unwrap();
    let by_stack = tempfile::tempdir().unwrap();
    let out = emu.mooring(&[
        "import",
        "--tag",
        "app=backend",
        "--stack",
        "backend",
        "--out",
        by_tag.path().to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let tagged = read_dir_files(by_tag.path());
    let all: String = tagged.values().cloned().collect();
    assert!(all.contains(&backend.svc_arn), "{all}");
    for absent in [
        other.svc_arn.as_str(),
        other.cluster.as_str(),
        "cdkotherstack",
        "CdkOtherStack",
    ] {
        assert!(!all.contains(absent), "{absent} imported by tag:\n{all}");
    }
    eprintln!(
        "import --tag: {} files, documents {:?}",
        tagged.len(),
        documents(&tagged)
    );

    // `--out` holding someone else's files: they are kept, and one named like a file import
    // writes is refused (nothing written) until it is moved.
    let mixed = tempfile::tempdir().unwrap();
    let own = mixed.path().join("README.md");
    let hand = mixed.path().join("cluster.yaml");
    std::fs::write(&own, "notes\n").unwrap();
    std::fs::write(&hand, "# written by hand\n").unwrap();
    let mixed_args = [
        "import",
        "--tag",
        "app=backend",
        "--stack",
        "backend",
        "--out",
        mixed.path().to_str().unwrap(),
    ];
    let out = emu.mooring(&mixed_args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cluster.yaml: exists and was not written by `mooring import`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&hand).unwrap(),
        "# written by hand\n"
    );
    assert!(!mixed.path().join("stack.yaml").exists());
    std::fs::remove_file(&hand).unwrap();
    let out = emu.mooring(&mixed_args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut written = read_dir_files(mixed.path());
    assert_eq!(written.remove("README.md").as_deref(), Some("notes\n"));
    assert_eq!(written, tagged);
    let out = emu.mooring(&[
        "import",
        "--cloudformation-stack",
        "CdkBackendStack",
        "--stack",
        "backend",
        "--out",
        by_stack.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut named = read_dir_files(by_stack.path());
    let mut tagged = tagged;
    // stack.yaml's comment lists what was left out, named by the way it was found.
    named.remove("stack.yaml");
    tagged.remove("stack.yaml");
    assert_eq!(tagged, named);
    let out = emu.mooring(&["plan", by_tag.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Bad input: a clear error, nothing written.
    for (args, code, message) in [
        (
            vec!["--cloudformation-stack", "NoSuchStack"],
            1,
            "failed to read CloudFormation stack `NoSuchStack`",
        ),
        (vec!["--tag", "app"], 2, "expected KEY=VALUE"),
        (
            vec!["--tag", "=backend"],
            2,
            "a tag key is 1-128 characters",
        ),
        (
            vec!["--tag", "app=nobody"],
            1,
            "failed to find any resource to import tagged `app=nobody`",
        ),
        (
            vec!["--tag", "app=backend", "--cluster", "x"],
            2,
            "cannot be used with",
        ),
    ] {
        let empty = tempfile::tempdir().unwrap();
        let target = empty.path().join("out");
        let mut a = vec!["import"];
        a.extend(args.iter().copied());
        a.extend(["--out", target.to_str().unwrap()]);
        let out = emu.mooring(&a);
        assert_eq!(out.status.code(), Some(code), "{a:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(message),
            "{a:?}: no {message:?} in {}",
            stderr(&out)
        );
        assert!(!target.exists(), "{a:?} wrote {}", target.display());
    }
}
