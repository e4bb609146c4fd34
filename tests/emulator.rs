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
    let (svc, td) = describe_api(emu).await;
    assert_eq!(image_of(&td), "nginx:1.27");
    assert_eq!(svc.desired_count(), 2);
    assert_ne!(svc.task_definition(), Some(other_arn.as_str()));
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
    }
    // 26, the Redis subnet group and the backend's LogGroup.
    assert_eq!(total, 28);

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
        "Service/salon-backend: in sync",
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

    // A new port needs a new target group: reported, refused, nothing changed.
    edit(
        &dir.path().join("target-group.yaml"),
        "port: 3000",
        "port: 8080",
    );
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(
            "TargetGroup/api: error (replacement): changing port needs a new target group"
        ),
        "{}",
        stdout(&out)
    );
    let tgs = elb
        .describe_target_groups()
        .names("api")
        .send()
        .await
        .unwrap();
    assert_eq!(tgs.target_groups()[0].port(), Some(3000));

    // Allowed: the target group is deleted and created again, and the service that held
    // the old ARN follows in the same apply.
    edit(
        &dir.path().join("target-group.yaml"),
        "metadata: {name: api}",
        "metadata:\n  name: api\n  annotations: {mooring.dev/allow-replacement: \"true\"}",
    );
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("TargetGroup/api: replace\n  ~ port: 3000 -> 8080"),
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
        .names("api")
        .send()
        .await
        .unwrap();
    let new_arn = tgs.target_groups()[0].target_group_arn().unwrap();
    assert_ne!(new_arn, arn);
    assert_eq!(tgs.target_groups()[0].port(), Some(8080));
    let (svc, _) = describe_api(emu).await;
    assert_eq!(svc.load_balancers()[0].target_group_arn(), Some(new_arn));
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
    let out = emu.mooring(&["plan", path]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
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
