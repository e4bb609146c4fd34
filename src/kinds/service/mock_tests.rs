//! Canned-response tests (aws-smithy-mocks) for what moto cannot show: deployments that
//! progress, circuit-breaker rollbacks, throttling. Real SDK clients, no network.

use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::operation::describe_services::{DescribeServicesError, DescribeServicesOutput};
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_sdk_ecs::types::{
    ContainerDefinition, Deployment, DeploymentRolloutState, Service, TaskDefinition,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;

use crate::aws::Aws;
use crate::manifest::load::load_with_stack;
use crate::kinds::reconcilers;
use crate::reconcile::{Action, Context, apply_all};

const MANIFESTS: &str = "apiVersion: mooring.dev/v1alpha1
kind: Cluster
metadata: {name: prd}
spec: {}
---
apiVersion: mooring.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  cluster: prd
  desiredCount: 2
  network:
    subnets: {ids: [subnet-1]}
    securityGroups: {ids: [sg-1]}
  taskDefinition:
    cpu: 256
    memory: 512
    container: {image: 'api:2', port: 3000}
";

const OLD_TD: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:1";
const NEW_TD: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:2";

fn task_definition(arn: &str, image: &str) -> TaskDefinition {
    TaskDefinition::builder()
        .task_definition_arn(arn)
        .family("api")
        .cpu("256")
        .memory("512")
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image(image)
                .port_mappings(
                    aws_sdk_ecs::types::PortMapping::builder()
                        .container_port(3000)
                        .build(),
                )
                .build(),
        )
        .build()
}

fn service(
    td: &str,
    deployments: &[(&str, DeploymentRolloutState, Option<&str>)],
    running: i32,
) -> Service {
    let mut b = Service::builder()
        .service_name("api")
        .service_arn("arn:aws:ecs:eu-west-1:123456789012:service/prd/api")
        .status("ACTIVE")
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .task_definition(td)
        .desired_count(2)
        .running_count(running)
        .network_configuration(
            aws_sdk_ecs::types::NetworkConfiguration::builder()
                .awsvpc_configuration(
                    aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                        .subnets("subnet-1")
                        .security_groups("sg-1")
                        .build()
                        .unwrap(),
                )
                .build(),
        );
    for (status, state, reason) in deployments {
        b = b.deployments(
            Deployment::builder()
                .status(*status)
                .rollout_state(state.clone())
                .set_rollout_state_reason(reason.map(str::to_string))
                .task_definition(td)
                .build(),
        );
    }
    for (k, v) in [
        ("mooring.dev/managed-by", "mooring"),
        ("mooring.dev/stack", "test"),
        ("mooring.dev/resource", "Service/api"),
    ] {
        b = b.tags(aws_sdk_ecs::types::Tag::builder().key(k).value(v).build());
    }
    b.build()
}

fn cluster_rule() -> Rule {
    mock!(Client::describe_clusters).then_output(|| {
        aws_sdk_ecs::operation::describe_clusters::DescribeClustersOutput::builder()
            .clusters(
                aws_sdk_ecs::types::Cluster::builder()
                    .cluster_name("prd")
                    .cluster_arn("arn:aws:ecs:eu-west-1:123456789012:cluster/prd")
                    .status("ACTIVE")
                    .tags(
                        aws_sdk_ecs::types::Tag::builder()
                            .key("mooring.dev/managed-by")
                            .value("mooring")
                            .build(),
                    )
                    .tags(
                        aws_sdk_ecs::types::Tag::builder()
                            .key("mooring.dev/stack")
                            .value("test")
                            .build(),
                    )
                    .tags(
                        aws_sdk_ecs::types::Tag::builder()
                            .key("mooring.dev/resource")
                            .value("Cluster/prd")
                            .build(),
                    )
                    .build(),
            )
            .build()
    })
}

fn context(rules: &[&Rule]) -> Context {
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, rules);
    // Every other client points at a closed loopback port: a call this test did not
    // expect fails fast instead of reaching out.
    let config = crate::aws::offline_config();
    let mut aws = Aws::from_config(&config).expect("config");
    aws.ecs = ecs;
    let mut ctx = Context::new(aws);
    ctx.rollout_wait = Some(Duration::from_secs(30));
    ctx.rollout_poll = Duration::from_millis(1);
    ctx
}

/// The image changes; ECS registers api:2, starts a deployment, and then reports
/// `after_update` from DescribeServices while apply waits.
fn rollout_rules(after_update: Vec<Service>) -> Vec<Rule> {
    let describe = {
        let mut seq = mock!(Client::describe_services).sequence().output(|| {
            DescribeServicesOutput::builder()
                .services(service(
                    OLD_TD,
                    &[("PRIMARY", DeploymentRolloutState::Completed, None)],
                    2,
                ))
                .build()
        });
        for s in after_update {
            seq = seq.output(move || {
                DescribeServicesOutput::builder()
                    .services(s.clone())
                    .build()
            });
        }
        seq.build()
    };
    let old_td = mock!(Client::describe_task_definition).then_output(|| {
        DescribeTaskDefinitionOutput::builder()
            .task_definition(task_definition(OLD_TD, "api:1"))
            .build()
    });
    let register = mock!(Client::register_task_definition).then_output(|| {
        RegisterTaskDefinitionOutput::builder()
            .task_definition(task_definition(NEW_TD, "api:2"))
            .build()
    });
    let update = mock!(Client::update_service)
        .match_requests(|r| r.task_definition() == Some(NEW_TD))
        .then_output(|| {
            UpdateServiceOutput::builder()
                .service(service(
                    NEW_TD,
                    &[
                        ("PRIMARY", DeploymentRolloutState::InProgress, None),
                        ("ACTIVE", DeploymentRolloutState::Completed, None),
                    ],
                    2,
                ))
                .build()
        });
    vec![
        describe,
        old_td,
        register,
        update,
        cluster_rule(),
        family_rule(&[OLD_TD]),
    ]
}

/// ListTaskDefinitions of the family `api`: `arns`, newest first.
fn family_rule(arns: &'static [&'static str]) -> Rule {
    use aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput;
    mock!(Client::list_task_definitions)
        .match_requests(|r| r.family_prefix() == Some("api"))
        .then_output(move || {
            ListTaskDefinitionsOutput::builder()
                .set_task_definition_arns(Some(arns.iter().map(|a| a.to_string()).collect()))
                .build()
        })
}

fn set() -> crate::manifest::ManifestSet {
    load_with_stack(&[("m.yaml".into(), MANIFESTS.into())]).unwrap()
}

#[tokio::test]
async fn apply_waits_for_the_rollout_to_complete() {
    let rules = rollout_rules(vec![
        service(
            NEW_TD,
            &[
                ("PRIMARY", DeploymentRolloutState::InProgress, None),
                ("ACTIVE", DeploymentRolloutState::Completed, None),
            ],
            1,
        ),
        service(
            NEW_TD,
            &[("PRIMARY", DeploymentRolloutState::Completed, None)],
            2,
        ),
    ]);
    let refs: Vec<&Rule> = rules.iter().collect();
    let ctx = context(&refs);
    let set = set();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    let svc = &report.resources[1];
    assert_eq!(svc.action, Action::Update);
    assert!(svc.error().is_none(), "{svc:#?}");
    let rollout = svc.rollout.clone().unwrap();
    assert_eq!(rollout.state, "COMPLETED");
    assert_eq!(rollout.task_definition.as_deref(), Some(NEW_TD));
    assert_eq!(rules[0].num_calls(), 3, "plan read + two polls");
    assert_eq!(rules[2].num_calls(), 1, "one new revision");
    assert_eq!(rules[3].num_calls(), 1, "one service update");
}

#[tokio::test]
async fn a_circuit_breaker_rollback_fails_the_apply_and_is_not_redeployed() {
    // What ECS shows during a rollback: the old revision is PRIMARY again (rolling back),
    // the new one is ACTIVE with rolloutState FAILED. Then the next pass sees the old
    // revision alone.
    let mut rollback = service(OLD_TD, &[], 2);
    rollback.deployments = Some(vec![
        Deployment::builder()
            .status("PRIMARY")
            .rollout_state(DeploymentRolloutState::InProgress)
            .task_definition(OLD_TD)
            .build(),
        Deployment::builder()
            .status("ACTIVE")
            .rollout_state(DeploymentRolloutState::Failed)
            .rollout_state_reason("ECS deployment circuit breaker: tasks failed to start.")
            .task_definition(NEW_TD)
            .build(),
    ]);
    let rules = rollout_rules(vec![
        rollback,
        service(
            OLD_TD,
            &[("PRIMARY", DeploymentRolloutState::Completed, None)],
            2,
        ),
    ]);
    let tag = failed_tag_rule();
    let mut refs: Vec<&Rule> = rules.iter().collect();
    refs.push(&tag);
    let ctx = context(&refs);
    let set = set();
    let recs = reconcilers(&set);
    let report = apply_all(&ctx, &set, &recs, true).await;
    let err = report.resources[1]
        .error()
        .expect("rollout failure is an error");
    assert_eq!(err.category.as_str(), "rollout");
    assert!(err.message.contains("circuit breaker"), "{}", err.message);
    assert!(!report.resources[1].applied);
    assert_eq!(rules[3].num_calls(), 1);
    // Recorded on the revision: a restarted daemon refuses it too (see
    // a_revision_a_failed_verify_rolled_back_is_not_deployed_again_until_the_manifest_changes).
    assert_eq!(tag.num_calls(), 1, "the rolled-back revision is tagged failed");

    // The next pass still sees the old image, but does not deploy the failed revision again.
    let report = apply_all(&ctx, &set, &recs, true).await;
    let err = report.resources[1].error().expect("refused");
    assert!(
        err.message.contains("not deployed again"),
        "{}",
        err.message
    );
    assert_eq!(rules[3].num_calls(), 1, "no second UpdateService");
}

#[tokio::test]
async fn throttling_is_classified_and_fails_only_the_service() {
    let throttled = mock!(Client::describe_services).then_error(|| {
        DescribeServicesError::generic(
            ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        )
    });
    let cluster = cluster_rule();
    let ctx = context(&[&throttled, &cluster]);
    let set = set();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(report.resources[0].error().is_none());
    let err = report.resources[1].error().expect("throttled");
    assert_eq!(err.category.as_str(), "throttling");
    assert!(
        err.message.contains("ecs:DescribeServices"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn an_update_that_does_not_stick_is_not_converged() {
    // ECS accepts the update, but DescribeServices keeps showing the old revision.
    let mut rules = rollout_rules(vec![]);
    rules[0] = mock!(Client::describe_services).then_output(|| {
        DescribeServicesOutput::builder()
            .services(service(
                OLD_TD,
                &[("PRIMARY", DeploymentRolloutState::Completed, None)],
                2,
            ))
            .build()
    });
    let refs: Vec<&Rule> = rules.iter().collect();
    let mut ctx = context(&refs);
    ctx.rollout_wait = None;
    let set = set();
    let recs = reconcilers(&set);
    let mut report = apply_all(&ctx, &set, &recs, true).await;
    assert!(report.resources[1].applied);
    assert!(!report.has_errors());
    crate::reconcile::verify_converged(&ctx, &set, &recs, &mut report).await;
    let err = report.resources[1].error().expect("not converged");
    assert_eq!(err.category.as_str(), "not_converged");
    assert!(
        err.message.contains("taskDefinition.container.image"),
        "{}",
        err.message
    );
    assert!(
        report.resources[0].error().is_none(),
        "the cluster did converge"
    );
}

#[tokio::test]
async fn a_matching_newest_revision_is_reused_not_registered_again() {
    // An earlier apply registered api:2 and was interrupted before UpdateService: the
    // family's newest revision already has the manifest's content.
    let mut rules = rollout_rules(vec![service(
        NEW_TD,
        &[("PRIMARY", DeploymentRolloutState::Completed, None)],
        2,
    )]);
    let newest = mock!(Client::describe_task_definition)
        .match_requests(|r| r.task_definition() == Some(NEW_TD))
        .then_output(|| {
            DescribeTaskDefinitionOutput::builder()
                .task_definition(task_definition(NEW_TD, "api:2"))
                .build()
        });
    rules.insert(0, newest);
    rules[6] = family_rule(&[NEW_TD, OLD_TD]);
    let refs: Vec<&Rule> = rules.iter().collect();
    let ctx = context(&refs);
    let set = set();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(report.resources[1].error().is_none(), "{report:#?}");
    assert!(report.resources[1].applied);
    assert_eq!(rules[6].num_calls(), 1, "the family was listed");
    assert_eq!(rules[0].num_calls(), 1, "its newest revision read");
    assert_eq!(rules[3].num_calls(), 0, "nothing registered");
    assert_eq!(rules[4].num_calls(), 1, "the service points at api:2");
}

#[tokio::test]
async fn a_new_revision_keeps_the_live_value_of_an_ignored_field() {
    // CI sets the image (`mooring.dev/ignore` names it); the manifest adds an environment
    // variable. The new revision must carry the variable and the image CI deployed.
    let manifests = MANIFESTS
        .replace(
            "metadata: {name: api}",
            "metadata:\n  name: api\n  annotations: {mooring.dev/ignore: taskDefinition.container.image}",
        )
        .replace(
            "container: {image: 'api:2', port: 3000}",
            "container: {image: 'api:2', port: 3000, environment: {FOO: bar}}",
        );
    let set = load_with_stack(&[("m.yaml".into(), manifests)]).unwrap();
    let mut rules = rollout_rules(vec![]);
    rules[0] = mock!(Client::describe_services).then_output(|| {
        DescribeServicesOutput::builder()
            .services(service(
                OLD_TD,
                &[("PRIMARY", DeploymentRolloutState::Completed, None)],
                2,
            ))
            .build()
    });
    rules[2] = mock!(Client::register_task_definition)
        .match_requests(|r| {
            let c = &r.container_definitions()[0];
            c.image() == Some("api:1")
                && c.environment()
                    .iter()
                    .any(|kv| kv.name() == Some("FOO") && kv.value() == Some("bar"))
        })
        .then_output(|| {
            RegisterTaskDefinitionOutput::builder()
                .task_definition(task_definition(NEW_TD, "api:1"))
                .build()
        });
    let refs: Vec<&Rule> = rules.iter().collect();
    let mut ctx = context(&refs);
    ctx.rollout_wait = None;
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    let svc = &report.resources[1];
    let fields: Vec<&str> = svc.changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["taskDefinition.container.environment.FOO"]);
    assert!(svc.error().is_none(), "{report:#?}");
    assert_eq!(rules[2].num_calls(), 1, "registered with the live image");
    assert_eq!(rules[3].num_calls(), 1, "the service points at it");
}

#[tokio::test]
async fn waiting_reports_each_change_of_the_rollout_once() {
    let in_progress = || {
        service(
            NEW_TD,
            &[
                ("PRIMARY", DeploymentRolloutState::InProgress, None),
                ("ACTIVE", DeploymentRolloutState::Completed, None),
            ],
            1,
        )
    };
    let rules = rollout_rules(vec![
        in_progress(),
        in_progress(),
        service(
            NEW_TD,
            &[("PRIMARY", DeploymentRolloutState::Completed, None)],
            2,
        ),
    ]);
    let refs: Vec<&Rule> = rules.iter().collect();
    let mut ctx = context(&refs);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    ctx.on_rollout = Some(std::sync::Arc::new(move |name, r, _| {
        log.lock().unwrap().push(format!(
            "{name}: {} {}/{} ({} deployments)",
            r.state, r.running, r.desired, r.deployments
        ));
    }));
    let set = set();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(report.resources[1].error().is_none(), "{report:#?}");
    assert_eq!(rules[0].num_calls(), 4, "plan read + three polls");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            "api: IN_PROGRESS 2/2 (2 deployments)",
            "api: IN_PROGRESS 1/2 (2 deployments)",
            "api: COMPLETED 2/2 (1 deployments)",
        ]
    );
}

#[tokio::test]
async fn a_digest_ecr_refuses_to_read_fails_the_service_and_keeps_its_revision() {
    // moto grants everything: a registry that answers AccessDenied is canned here.
    let image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:latest";
    let manifests = MANIFESTS.replace(
        "container: {image: 'api:2', port: 3000}",
        &format!("container: {{image: '{image}', imageUpdate: digest, port: 3000}}"),
    );
    let set = load_with_stack(&[("m.yaml".into(), manifests)]).unwrap();
    let rules = rollout_rules(vec![]);
    let refs: Vec<&Rule> = rules.iter().collect();
    let mut ctx = context(&refs);
    let denied = mock!(aws_sdk_ecr::Client::batch_get_image)
        .match_requests(|r| {
            r.repository_name() == Some("api")
                && r.registry_id() == Some("123456789012")
                && r.image_ids().iter().map(|i| i.image_tag()).collect::<Vec<_>>()
                    == [Some("latest")]
        })
        .then_error(|| {
            aws_sdk_ecr::operation::batch_get_image::BatchGetImageError::generic(
                ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("not authorized to perform: ecr:BatchGetImage")
                    .build(),
            )
        });
    ctx.aws.ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&denied]);
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    let svc = report
        .resources
        .iter()
        .find(|r| r.name == "api")
        .unwrap();
    let e = svc.error().expect("the service fails").message;
    assert!(
        e.contains(&format!("failed to resolve the digest of {image}"))
            && e.contains("ecr:BatchGetImage")
            && e.contains("the running revision is kept"),
        "{e}"
    );
    assert_eq!(denied.num_calls(), 1);
    assert_eq!(rules[2].num_calls(), 0, "no revision registered");
    assert_eq!(rules[3].num_calls(), 0, "no UpdateService");
}

// The pre-deploy task (predeploy.rs): RunTask from the new revision, then UpdateService
// only when every essential container exited 0.

const TASK: &str = "arn:aws:ecs:eu-west-1:123456789012:task/prd/0f1e2d3c";

fn pre_deploy_set() -> crate::manifest::ManifestSet {
    let manifests = format!(
        "{MANIFESTS}  deploy:\n    preDeploy: {{command: [npm, run, migration:run], timeoutSeconds: 1}}\n"
    )
    .replace(
        "container: {image: 'api:2', port: 3000}",
        "container:\n      image: 'api:2'\n      port: 3000\n      logs: {group: /ecs/api, createGroup: true}\n    executionRoleArn: arn:aws:iam::123456789012:role/exec",
    );
    load_with_stack(&[("m.yaml".into(), manifests)]).unwrap()
}

fn pre_deploy_task(status: &str, exit: Option<i32>) -> aws_sdk_ecs::types::Task {
    aws_sdk_ecs::types::Task::builder()
        .task_arn(TASK)
        .task_definition_arn(NEW_TD)
        .started_by("mooring/pre-deploy")
        .last_status(status)
        .set_stopped_reason(
            (status == "STOPPED").then(|| "Essential container in task exited".to_string()),
        )
        .containers(
            aws_sdk_ecs::types::Container::builder()
                .name("app")
                .set_exit_code(exit)
                .build(),
        )
        .build()
}

/// The new revision as ECS has it: with its awslogs configuration.
fn logged_task_definition() -> TaskDefinition {
    let mut td = task_definition(NEW_TD, "api:2");
    if let Some(c) = td.container_definitions.as_mut().and_then(|c| c.first_mut()) {
        c.log_configuration = aws_sdk_ecs::types::LogConfiguration::builder()
            .log_driver(aws_sdk_ecs::types::LogDriver::Awslogs)
            .options("awslogs-group", "/ecs/api")
            .options("awslogs-stream-prefix", "ecs")
            .build()
            .ok();
    }
    td
}

/// What the ECS mock saw, in order.
type Calls = std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>;

struct PreDeploy {
    rules: Vec<Rule>,
    calls: Calls,
    run: Rule,
    describe_tasks: Rule,
    tag: Rule,
    /// TagResource recording a failure (`failed-<key>`); NEW_TD carries it from then on.
    tag_failed: Rule,
    stop: Rule,
    update: Rule,
}

/// The image changes (api:1 -> api:2, registered as NEW_TD). `tagged`: NEW_TD already
/// carries the success tag. `polls`: what DescribeTasks answers in turn (the last one from
/// then on).
fn pre_deploy_rules(tagged: bool, polls: Vec<aws_sdk_ecs::types::Task>) -> PreDeploy {
    use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
    use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
    use aws_sdk_ecs::operation::run_task::RunTaskOutput;
    use aws_sdk_ecs::operation::stop_task::StopTaskOutput;
    use aws_sdk_ecs::operation::tag_resource::TagResourceOutput;
    let calls: Calls = Default::default();
    let mut rules = rollout_rules(vec![]);
    // Every pass sees the old revision.
    rules[0] = mock!(Client::describe_services).then_output(|| {
        DescribeServicesOutput::builder()
            .services(service(
                OLD_TD,
                &[("PRIMARY", DeploymentRolloutState::Completed, None)],
                2,
            ))
            .build()
    });
    let log = calls.clone();
    let update = mock!(Client::update_service)
        .match_requests(|r| r.task_definition() == Some(NEW_TD))
        .then_compute_output(move |_| {
            log.lock().unwrap().push("UpdateService");
            UpdateServiceOutput::builder()
                .service(service(
                    NEW_TD,
                    &[("PRIMARY", DeploymentRolloutState::InProgress, None)],
                    2,
                ))
                .build()
        });
    rules[3] = update.clone();
    rules[2] = mock!(Client::register_task_definition).then_output(|| {
        RegisterTaskDefinitionOutput::builder()
            .task_definition(logged_task_definition())
            .build()
    });
    // The new revision, with its awslogs configuration, and its tags read fresh: the
    // success tag when `tagged`, else the failure recorded since (if any).
    let recorded_failure: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let seen = recorded_failure.clone();
    let new_td = mock!(Client::describe_task_definition)
        .match_requests(|r| r.task_definition() == Some(NEW_TD))
        .then_output(move || {
            let mut out = DescribeTaskDefinitionOutput::builder()
                .task_definition(logged_task_definition());
            let value = if tagged {
                Some("succeeded".to_string())
            } else {
                seen.lock().unwrap().clone()
            };
            if let Some(value) = value {
                out = out.tags(
                    aws_sdk_ecs::types::Tag::builder()
                        .key("mooring.dev/pre-deploy")
                        .value(value)
                        .build(),
                );
            }
            out.build()
        });
    rules.insert(0, new_td);
    // ListTasks: running tasks by `startedBy` alone, stopped ones by family.
    let list = mock!(Client::list_tasks)
        .match_requests(|r| {
            (r.started_by() == Some("mooring/pre-deploy")
                && r.family().is_none()
                && r.desired_status().is_none())
                || (r.started_by().is_none()
                    && r.family() == Some("api")
                    && r.desired_status() == Some(&aws_sdk_ecs::types::DesiredStatus::Stopped))
        })
        .then_output(|| ListTasksOutput::builder().build());
    let log = calls.clone();
    let run = mock!(Client::run_task)
        .match_requests(|r| {
            let o = &r.overrides().unwrap().container_overrides()[0];
            r.task_definition() == Some(NEW_TD)
                && r.launch_type() == Some(&aws_sdk_ecs::types::LaunchType::Fargate)
                && r.network_configuration()
                    .and_then(|n| n.awsvpc_configuration())
                    .is_some_and(|v| v.subnets() == ["subnet-1"])
                && o.name() == Some("app")
                && o.command() == ["npm", "run", "migration:run"]
        })
        .then_compute_output(move |_| {
            log.lock().unwrap().push("RunTask");
            RunTaskOutput::builder()
                .tasks(pre_deploy_task("PROVISIONING", None))
                .build()
        });
    let mut seq = mock!(Client::describe_tasks).sequence();
    let last = polls.last().cloned();
    for t in polls {
        seq = seq.output(move || DescribeTasksOutput::builder().tasks(t.clone()).build());
    }
    let describe_tasks = match last {
        Some(t) => seq
            .output(move || DescribeTasksOutput::builder().tasks(t.clone()).build())
            .repeatedly()
            .build(),
        None => seq.build(),
    };
    let log = calls.clone();
    let tag = mock!(Client::tag_resource)
        .match_requests(|r| {
            r.resource_arn() == Some(NEW_TD)
                && r.tags().iter().any(|t| {
                    t.key() == Some("mooring.dev/pre-deploy") && t.value() == Some("succeeded")
                })
        })
        .then_compute_output(move |_| {
            log.lock().unwrap().push("TagResource");
            TagResourceOutput::builder().build()
        });
    let tag_failed = mock!(Client::tag_resource)
        .match_requests(|r| {
            r.resource_arn() == Some(NEW_TD)
                && r.tags().iter().any(|t| {
                    t.key() == Some("mooring.dev/pre-deploy")
                        && t.value().is_some_and(|v| v.starts_with("failed-"))
                })
        })
        .then_compute_output(move |r| {
            *recorded_failure.lock().unwrap() = r.tags()[0].value().map(str::to_string);
            TagResourceOutput::builder().build()
        });
    let log = calls.clone();
    let stop = mock!(Client::stop_task)
        .match_requests(|r| r.task() == Some(TASK))
        .then_compute_output(move |_| {
            log.lock().unwrap().push("StopTask");
            StopTaskOutput::builder().build()
        });
    rules.extend([
        list,
        run.clone(),
        describe_tasks.clone(),
        tag.clone(),
        tag_failed.clone(),
        stop.clone(),
    ]);
    PreDeploy {
        rules,
        calls,
        run,
        describe_tasks,
        tag,
        tag_failed,
        stop,
        update,
    }
}

fn pre_deploy_context(p: &PreDeploy) -> Context {
    let refs: Vec<&Rule> = p.rules.iter().collect();
    let mut ctx = context(&refs);
    ctx.rollout_wait = None;
    ctx
}

#[tokio::test]
async fn a_pre_deploy_task_that_exits_0_comes_before_the_service_update() {
    let p = pre_deploy_rules(
        false,
        vec![
            pre_deploy_task("RUNNING", None),
            pre_deploy_task("STOPPED", Some(0)),
        ],
    );
    let ctx = pre_deploy_context(&p);
    let set = pre_deploy_set();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    let svc = &report.resources[1];
    assert!(svc.error().is_none(), "{report:#?}");
    assert!(svc.applied);
    assert_eq!(
        *p.calls.lock().unwrap(),
        ["RunTask", "TagResource", "UpdateService"]
    );
    assert_eq!(p.describe_tasks.num_calls(), 2, "polled until it stopped");
    assert_eq!(p.stop.num_calls(), 0);
    let text = crate::cli::render_report(&report, true);
    assert!(
        text.contains("  preDeploy: will run \"npm run migration:run\" before rolling to the new revision"),
        "{text}"
    );
}

#[tokio::test]
async fn a_failed_pre_deploy_task_leaves_the_service_alone_until_the_manifest_changes() {
    let p = pre_deploy_rules(false, vec![pre_deploy_task("STOPPED", Some(1))]);
    let ctx = pre_deploy_context(&p);
    let set = pre_deploy_set();
    let recs = reconcilers(&set);
    let report = apply_all(&ctx, &set, &recs, true).await;
    let svc = &report.resources[1];
    let err = svc.error().expect("the pre-deploy failure fails the service");
    assert_eq!(err.category.as_str(), "rollout");
    assert!(err.category.needs_change(), "waits for a manifest change");
    for part in [
        "pre-deploy task 0f1e2d3c failed",
        "container `app` exited with code 1",
        "stopped reason: Essential container in task exited",
        "logs: group /ecs/api, stream ecs/app/0f1e2d3c",
        NEW_TD,
    ] {
        assert!(err.message.contains(part), "{part} not in {}", err.message);
    }
    assert!(!svc.applied);
    assert_eq!(p.update.num_calls(), 0, "the service stays on its revision");
    assert_eq!(p.tag.num_calls(), 0);
    assert_eq!(p.tag_failed.num_calls(), 1, "the failure recorded on the revision");

    // The next pass plans the same change but does not run the task again.
    let report = apply_all(&ctx, &set, &recs, true).await;
    let err = report.resources[1].error().expect("still failed");
    assert!(
        err.message.contains("not run again"),
        "{}",
        err.message
    );
    assert_eq!(p.run.num_calls(), 1, "no second RunTask");
    assert_eq!(p.update.num_calls(), 0);

    // A restarted daemon (nothing remembered in the process; ECS still lists the stopped
    // task) reads the record on the revision and does not run it again either.
    let restarted = pre_deploy_context(&p);
    let report = apply_all(&restarted, &set, &reconcilers(&set), true).await;
    let err = report.resources[1].error().expect("still failed after a restart");
    assert!(err.message.contains("failed before"), "{}", err.message);
    assert!(err.message.contains("aws ecs untag-resource"), "{}", err.message);
    assert!(err.category.needs_change());
    assert_eq!(p.run.num_calls(), 1, "no RunTask after the restart");
    assert_eq!(p.update.num_calls(), 0);

    // A changed pre-deploy (here its timeout) runs it again.
    let changed = load_with_stack(&[(
        "m.yaml".into(),
        format!(
            "{MANIFESTS}  deploy:\n    preDeploy: {{command: [npm, run, migration:run], timeoutSeconds: 2}}\n"
        ),
    )])
    .unwrap();
    let _ = apply_all(&ctx, &changed, &reconcilers(&changed), true).await;
    assert_eq!(p.run.num_calls(), 2, "run again after the manifest changed");
    assert_eq!(p.update.num_calls(), 0, "and failed again");
}

#[tokio::test]
async fn a_pre_deploy_task_that_does_not_stop_in_time_is_stopped_and_fails() {
    let p = pre_deploy_rules(false, vec![pre_deploy_task("RUNNING", None)]);
    let mut ctx = pre_deploy_context(&p);
    ctx.rollout_poll = Duration::from_millis(50);
    let set = pre_deploy_set();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    let err = report.resources[1].error().expect("timed out");
    assert_eq!(err.category.as_str(), "rollout");
    assert!(
        err.message
            .contains("pre-deploy task 0f1e2d3c did not stop within 1s and was stopped"),
        "{}",
        err.message
    );
    assert!(err.message.contains("stream ecs/app/0f1e2d3c"), "{}", err.message);
    assert_eq!(*p.calls.lock().unwrap(), ["RunTask", "StopTask"]);
}

#[tokio::test]
async fn a_revision_whose_pre_deploy_succeeded_before_is_rolled_out_without_running_it() {
    let p = pre_deploy_rules(true, vec![]);
    let ctx = pre_deploy_context(&p);
    let set = pre_deploy_set();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(report.resources[1].error().is_none(), "{report:#?}");
    assert_eq!(*p.calls.lock().unwrap(), ["UpdateService"]);
    assert_eq!(p.run.num_calls(), 0);
}

#[tokio::test]
async fn a_pre_deploy_task_an_earlier_leader_started_is_followed_not_started_again() {
    use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
    // The leader died while the task ran: ECS still lists it, started by mooring.
    let mut p = pre_deploy_rules(
        false,
        vec![
            pre_deploy_task("RUNNING", None),
            pre_deploy_task("RUNNING", None),
            pre_deploy_task("STOPPED", Some(0)),
        ],
    );
    let running = mock!(Client::list_tasks)
        .match_requests(|r| r.started_by() == Some("mooring/pre-deploy"))
        .then_output(|| ListTasksOutput::builder().task_arns(TASK).build());
    p.rules.insert(0, running);
    let ctx = pre_deploy_context(&p);
    let set = pre_deploy_set();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(report.resources[1].error().is_none(), "{report:#?}");
    assert_eq!(p.run.num_calls(), 0, "the running task is followed");
    assert_eq!(*p.calls.lock().unwrap(), ["TagResource", "UpdateService"]);
    assert_eq!(
        p.describe_tasks.num_calls(),
        3,
        "found, then polled until it stopped"
    );
}

#[tokio::test]
async fn pre_deploy_overrides_reach_run_task() {
    use aws_sdk_ecs::operation::run_task::RunTaskOutput;
    let p = pre_deploy_rules(false, vec![pre_deploy_task("STOPPED", Some(0))]);
    let overridden = mock!(Client::run_task)
        .match_requests(|r| {
            let o = r.overrides().unwrap();
            let c = &o.container_overrides()[0];
            let v = r
                .network_configuration()
                .and_then(|n| n.awsvpc_configuration())
                .unwrap();
            o.cpu() == Some("512")
                && o.memory() == Some("1024")
                && c.environment()
                    .iter()
                    .any(|kv| kv.name() == Some("DB_POOL") && kv.value() == Some("1"))
                && v.subnets() == ["subnet-db"]
                && v.security_groups() == ["sg-1"]
                && v.assign_public_ip() == Some(&aws_sdk_ecs::types::AssignPublicIp::Enabled)
        })
        .then_output(|| {
            RunTaskOutput::builder()
                .tasks(pre_deploy_task("PROVISIONING", None))
                .build()
        });
    let mut rules = p.rules.clone();
    rules.insert(0, overridden.clone());
    let refs: Vec<&Rule> = rules.iter().collect();
    let mut ctx = context(&refs);
    ctx.rollout_wait = None;
    let set = load_with_stack(&[(
        "m.yaml".into(),
        format!(
            "{MANIFESTS}  deploy:\n    preDeploy:\n      command: [npm, run, migration:run]\n      cpu: 512\n      memory: 1024\n      environment: {{DB_POOL: 1}}\n      network: {{subnets: {{ids: [subnet-db]}}, assignPublicIp: true}}\n"
        ),
    )])
    .unwrap();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(report.resources[1].error().is_none(), "{report:#?}");
    assert_eq!(overridden.num_calls(), 1, "RunTask with the overrides");
    assert_eq!(p.run.num_calls(), 0);
    assert_eq!(p.update.num_calls(), 1);
}

#[tokio::test]
async fn a_pre_deploy_task_that_succeeded_before_its_leader_recorded_it_is_not_run_again() {
    use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
    // The leader died after the task exited 0 and before TagResource.
    let mut p = pre_deploy_rules(false, vec![pre_deploy_task("STOPPED", Some(0))]);
    let stopped = mock!(Client::list_tasks)
        .match_requests(|r| {
            r.desired_status() == Some(&aws_sdk_ecs::types::DesiredStatus::Stopped)
        })
        .then_output(|| ListTasksOutput::builder().task_arns(TASK).build());
    p.rules.insert(0, stopped);
    let ctx = pre_deploy_context(&p);
    let set = pre_deploy_set();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(report.resources[1].error().is_none(), "{report:#?}");
    assert_eq!(p.run.num_calls(), 0);
    assert_eq!(*p.calls.lock().unwrap(), ["TagResource", "UpdateService"]);
}

/// A client whose DescribeServices answers `states` in turn, the last one repeatedly.
/// TagResource recording NEW_TD as a failed deploy (`mooring.dev/deploy: failed`).
fn failed_tag_rule() -> Rule {
    use aws_sdk_ecs::operation::tag_resource::TagResourceOutput;
    mock!(Client::tag_resource)
        .match_requests(|r| {
            r.resource_arn() == Some(NEW_TD)
                && r.tags().iter().any(|t| {
                    t.key() == Some("mooring.dev/deploy") && t.value() == Some("failed")
                })
        })
        .then_output(|| TagResourceOutput::builder().build())
}

fn describing(states: Vec<Service>) -> (Rule, Client) {
    let mut seq = mock!(Client::describe_services).sequence();
    let last = states.last().cloned();
    for s in states {
        seq = seq.output(move || DescribeServicesOutput::builder().services(s.clone()).build());
    }
    let rule = match last {
        Some(s) => seq
            .output(move || DescribeServicesOutput::builder().services(s.clone()).build())
            .repeatedly()
            .build(),
        None => seq.build(),
    };
    // A rollback the follower sees is recorded on the revision (TagResource).
    let tag = failed_tag_rule();
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &[&rule, &tag]);
    (rule, client)
}

fn begun_deploy() -> crate::deploys::Begun {
    crate::deploys::Begun {
        service: "api".into(),
        ecs_name: "api".into(),
        cluster: "prd".into(),
        from_task_definition: Some(OLD_TD.into()),
        to_task_definition: NEW_TD.into(),
        from_image: Some("api:1".into()),
        to_image: Some("api:2".into()),
        started: std::time::SystemTime::now(),
        changes: Vec::new(),
        created: false,
        failed: None,
        verify: None,
        rollback_on_failure: false,
    }
}

fn rolling_out() -> Service {
    let mut s = service(NEW_TD, &[], 1);
    s.deployments = Some(vec![
        Deployment::builder()
            .status("PRIMARY")
            .rollout_state(DeploymentRolloutState::InProgress)
            .task_definition(NEW_TD)
            .build(),
        Deployment::builder()
            .status("ACTIVE")
            .rollout_state(DeploymentRolloutState::Completed)
            .task_definition(OLD_TD)
            .build(),
    ]);
    s
}

#[tokio::test]
async fn the_daemon_reports_a_deploy_apply_began_and_follows_it_until_it_completes() {
    use crate::deploys::{DeployState, Follow, Reason, Reporter, Tracker};
    let set = set();
    let status = crate::status::StatusStore::new("dir", "enforce");
    status.set_manifests(&set, true);
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    // Followed apart from the pass: in progress, then completed.
    let (describe, ecs) = describing(vec![
        rolling_out(),
        service(
            NEW_TD,
            &[("PRIMARY", DeploymentRolloutState::Completed, None)],
            2,
        ),
    ]);
    let tracker = Tracker::new(
        Reporter {
            status: status.clone(),
            metrics: metrics.clone(),
            alerter: crate::alerts::Alerter::start(Default::default(), metrics.clone()),
        },
        Follow {
            ecs,
            poll: Duration::from_millis(1),
            timeout: Duration::from_secs(30),
        },
    );
    // The daemon does not wait in apply: the Service kind says what it begins.
    let rules = rollout_rules(vec![]);
    let refs: Vec<&Rule> = rules.iter().collect();
    let mut ctx = context(&refs);
    ctx.rollout_wait = None;
    let announce = tracker.clone();
    ctx.states
        .services
        .on_begin(std::sync::Arc::new(move |b| announce.begun(b)));
    tracker.before_pass(&set);
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(report.resources[1].applied, "{report:#?}");
    let deploys = || status.snapshot().deploys.get("api").cloned().unwrap_or_default();
    // Announced as started during the apply, before the pass ended.
    assert_eq!(deploys().len(), 1);
    assert_eq!(deploys()[0].state, DeployState::InProgress);
    assert_eq!(deploys()[0].reason, Reason::ManifestChange);
    let begun = ctx.states.services.take_deploys();
    assert_eq!(begun.len(), 1, "{begun:#?}");
    let b = &begun[0];
    assert_eq!(
        (b.from_task_definition.as_deref(), b.to_task_definition.as_str()),
        (Some(OLD_TD), NEW_TD)
    );
    assert_eq!(
        (b.from_image.as_deref(), b.to_image.as_deref()),
        (Some("api:1"), Some("api:2"))
    );
    assert_eq!(b.changes.len(), 1, "{:#?}", b.changes);
    assert_eq!(b.changes[0].field, "taskDefinition.container.image");
    assert_eq!((b.cluster.as_str(), b.failed.clone(), b.created), ("prd", None, false));
    assert!(ctx.states.services.take_deploys().is_empty(), "taken once");

    tracker.after_pass(begun, &report);
    for _ in 0..500 {
        if deploys()[0].state != DeployState::InProgress {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(deploys().len(), 1, "one deploy, updated in place");
    let d = &deploys()[0];
    assert_eq!(d.state, DeployState::Succeeded, "{d:#?}");
    assert!(d.duration_seconds.is_some() && d.finished_at.is_some());
    assert_eq!(describe.num_calls(), 2, "polled until it completed");
    let snapshot = status.snapshot();
    let api = snapshot.resources.iter().find(|r| r.name == "api").unwrap();
    assert_eq!(
        api.last_deploy.as_ref().map(|d| d.state),
        Some(DeployState::Succeeded)
    );
    let text = metrics.encode();
    assert!(
        text.contains("mooring_deploys_total{service=\"api\",outcome=\"succeeded\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("mooring_deploy_duration_seconds_count 1"),
        "{text}"
    );
    assert!(
        text.contains("mooring_last_successful_deploy_timestamp_seconds{service=\"api\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_followed_rollout_fails_on_a_circuit_breaker_rollback_and_on_its_timeout() {
    use crate::deploys::Cause;
    use crate::kinds::service::follow::follow;
    // What ECS shows during a rollback: the old revision PRIMARY again, the new one FAILED.
    let mut rollback = service(OLD_TD, &[], 1);
    rollback.deployments = Some(vec![
        Deployment::builder()
            .status("PRIMARY")
            .rollout_state(DeploymentRolloutState::InProgress)
            .task_definition(OLD_TD)
            .build(),
        Deployment::builder()
            .status("ACTIVE")
            .rollout_state(DeploymentRolloutState::Failed)
            .rollout_state_reason("ECS deployment circuit breaker: tasks failed to start.")
            .task_definition(NEW_TD)
            .build(),
    ]);
    let (describe, _) = describing(vec![rolling_out(), rollback]);
    let tag = failed_tag_rule();
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &[&describe, &tag]);
    let (cause, message) = follow(
        &ecs,
        &begun_deploy(),
        Duration::from_millis(1),
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    assert_eq!(cause, Cause::Rollback);
    assert!(message.contains("circuit breaker") && message.contains(NEW_TD), "{message}");
    assert_eq!(tag.num_calls(), 1, "what ECS rolled back is recorded on the revision");

    // The rollback already done: the service runs the old revision alone.
    let (_, ecs) = describing(vec![service(
        OLD_TD,
        &[("PRIMARY", DeploymentRolloutState::Completed, None)],
        2,
    )]);
    let (cause, message) = follow(&ecs, &begun_deploy(), Duration::from_millis(1), Duration::from_secs(30))
        .await
        .unwrap_err();
    assert_eq!(cause, Cause::Rollback);
    assert!(message.contains(OLD_TD), "{message}");

    // Never done: a timeout.
    let (describe, ecs) = describing(vec![rolling_out()]);
    let (cause, message) = follow(
        &ecs,
        &begun_deploy(),
        Duration::from_millis(1),
        Duration::from_millis(30),
    )
    .await
    .unwrap_err();
    assert_eq!(cause, Cause::Timeout);
    assert!(message.contains("did not finish within"), "{message}");
    assert!(describe.num_calls() >= 1);
}

#[tokio::test]
async fn a_failed_pre_deploy_task_is_a_failed_deploy() {
    let p = pre_deploy_rules(false, vec![pre_deploy_task("STOPPED", Some(1))]);
    let ctx = pre_deploy_context(&p);
    let set = pre_deploy_set();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(report.resources[1].error().is_some());
    let begun = ctx.states.services.take_deploys();
    assert_eq!(begun.len(), 1, "{begun:#?}");
    let (cause, message) = begun[0].failed.clone().expect("failed within the apply");
    assert_eq!(cause, crate::deploys::Cause::PreDeploy);
    assert!(message.contains("pre-deploy task 0f1e2d3c failed"), "{message}");
    assert_eq!(begun[0].to_task_definition, NEW_TD);
}

#[test]
fn a_service_that_runs_the_new_revision_steadily_has_completed_even_without_its_deployment() {
    use crate::kinds::service::follow::{Judgement, judge};
    // moto keeps the first deployment (old revision, COMPLETED) and only changes the
    // service's revision; ECS would show a deployment of the new one.
    let mut moto = service(NEW_TD, &[], 2);
    moto.deployments = Some(vec![
        Deployment::builder()
            .status("PRIMARY")
            .rollout_state(DeploymentRolloutState::Completed)
            .task_definition(OLD_TD)
            .build(),
    ]);
    assert_eq!(judge(&moto, NEW_TD, Some(OLD_TD)), Judgement::Completed);
    moto.running_count = 1;
    assert_eq!(judge(&moto, NEW_TD, Some(OLD_TD)), Judgement::InProgress, "not every task runs");
    assert_eq!(judge(&rolling_out(), NEW_TD, Some(OLD_TD)), Judgement::InProgress);
    let done = service(NEW_TD, &[("PRIMARY", DeploymentRolloutState::Completed, None)], 2);
    assert_eq!(judge(&done, NEW_TD, Some(OLD_TD)), Judgement::Completed);
    let mut failed = rolling_out();
    failed.deployments = Some(vec![
        Deployment::builder()
            .status("PRIMARY")
            .rollout_state(DeploymentRolloutState::Failed)
            .rollout_state_reason("tasks failed to start")
            .task_definition(NEW_TD)
            .build(),
    ]);
    assert!(matches!(judge(&failed, NEW_TD, Some(OLD_TD)), Judgement::Failed(m) if m.contains("tasks failed to start")));
}

#[tokio::test]
async fn a_newer_deploy_supersedes_one_still_rolling_out_but_not_one_that_ended() {
    use crate::deploys::{DeployState, Follow, Reporter, Tracker};
    let set = set();
    let status = crate::status::StatusStore::new("dir", "enforce");
    status.set_manifests(&set, true);
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let (_, ecs) = describing(vec![rolling_out()]);
    let tracker = Tracker::new(
        Reporter {
            status: status.clone(),
            metrics: metrics.clone(),
            alerter: crate::alerts::Alerter::start(Default::default(), metrics.clone()),
        },
        Follow {
            ecs,
            poll: Duration::from_millis(1),
            timeout: Duration::from_secs(60),
        },
    );
    tracker.before_pass(&set);
    let report = crate::reconcile::PassReport {
        revision: set.revision.clone(),
        resources: Vec::new(),
        aws_calls: Default::default(),
        target: None,
        aws_calls_by_kind: Default::default(),
        check_seconds_by_kind: Default::default(),
    };
    let first = begun_deploy();
    tracker.begun(&first);
    tracker.after_pass(vec![first], &report);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut second = begun_deploy();
    second.started += Duration::from_secs(1);
    tracker.begun(&second);
    let kept = status.snapshot().deploys["api"].clone();
    let states: Vec<DeployState> = kept.iter().map(|d| d.state).collect();
    assert_eq!(states, [DeployState::Superseded, DeployState::InProgress]);
    assert!(
        metrics
            .encode()
            .contains("mooring_deploys_total{service=\"api\",outcome=\"superseded\"} 1")
    );
    // One that failed within the apply ends at once; the next does not touch it.
    let mut third = begun_deploy();
    third.started += Duration::from_secs(2);
    third.failed = Some((crate::deploys::Cause::Apply, "refused".into()));
    tracker.after_pass(vec![second], &report);
    tracker.begun(&third);
    tracker.after_pass(vec![third], &report);
    let states: Vec<DeployState> = status.snapshot().deploys["api"]
        .iter()
        .map(|d| d.state)
        .collect();
    assert_eq!(
        states,
        [
            DeployState::Superseded,
            DeployState::Superseded,
            DeployState::Failed
        ]
    );
}

#[tokio::test]
async fn a_revision_ecs_rolled_back_while_followed_is_not_deployed_again() {
    use crate::deploys::{DeployState, Follow, Reporter, Tracker};
    let set = set();
    let status = crate::status::StatusStore::new("dir", "enforce");
    status.set_manifests(&set, true);
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    // By the first look the rollback is over: ECS lists the old revision alone.
    let (_, ecs) = describing(vec![service(
        OLD_TD,
        &[("PRIMARY", DeploymentRolloutState::Completed, None)],
        2,
    )]);
    let tracker = Tracker::new(
        Reporter {
            status: status.clone(),
            metrics: metrics.clone(),
            alerter: crate::alerts::Alerter::start(Default::default(), metrics.clone()),
        },
        Follow {
            ecs,
            poll: Duration::from_millis(1),
            timeout: Duration::from_secs(30),
        },
    );
    tracker.before_pass(&set);
    let report = crate::reconcile::PassReport {
        revision: set.revision.clone(),
        resources: Vec::new(),
        aws_calls: Default::default(),
        target: None,
        aws_calls_by_kind: Default::default(),
        check_seconds_by_kind: Default::default(),
    };
    let begun = begun_deploy();
    tracker.begun(&begun);
    tracker.after_pass(vec![begun], &report);
    assert_eq!(status.snapshot().deploys["api"].len(), 1);
    let state = || status.snapshot().deploys["api"][0].state;
    for _ in 0..500 {
        if state() != DeployState::InProgress {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(state(), DeployState::Failed);
    let rolled_back = tracker.take_rolled_back();
    assert_eq!(rolled_back, [NEW_TD]);
    assert!(tracker.take_rolled_back().is_empty(), "handed over once");

    // The next pass plans the same image again, but the Service kind refuses the revision.
    let rules = rollout_rules(vec![]);
    let refs: Vec<&Rule> = rules.iter().collect();
    let mut ctx = context(&refs);
    ctx.rollout_wait = None;
    for td in &rolled_back {
        ctx.states.services.mark_failed(td);
    }
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    let err = report.resources[1].error().expect("refused");
    assert!(err.message.contains("not deployed again"), "{}", err.message);
    assert_eq!(rules[3].num_calls(), 0, "no UpdateService");
}

/// A real HTTP server on 127.0.0.1 for the tests of `deploy.verify` and of deploy
/// notifications: it answers every request with `status` (or holds it unanswered when
/// `None`) and keeps the request bodies.
struct LocalHttp {
    url: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LocalHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LocalHttp {
    async fn start(status: Option<u16>) -> LocalHttp {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (seen, counted) = (bodies.clone(), hits.clone());
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then as much body as content-length says.
                let body = loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if rest.len() >= length {
                            break Some(rest.to_string());
                        }
                    }
                };
                if let Some(body) = body.filter(|b| !b.is_empty()) {
                    seen.lock().unwrap().push(body);
                }
                match status {
                    Some(code) => {
                        let answer = format!(
                            "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        );
                        let _ = stream.write_all(answer.as_bytes()).await;
                    }
                    None => held.push(stream),
                }
            }
        });
        LocalHttp {
            url,
            bodies,
            hits,
            task,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn json(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect()
    }
}

fn verify_spec(url: &str, timeout_seconds: u32) -> crate::kinds::service::verify::VerifySpec {
    crate::kinds::service::verify::VerifySpec {
        url: url.to_string(),
        expect_status: 200,
        timeout_seconds,
    }
}

/// ECS for a followed deploy: the rollout already completed; UpdateService back to the old
/// revision and TagResource of the new one as failed are recorded.
struct Rollback {
    describe: Rule,
    back: Rule,
    tag: Rule,
    ecs: Client,
}

fn rollback_ecs() -> Rollback {
    use aws_sdk_ecs::operation::tag_resource::TagResourceOutput;
    let describe = mock!(Client::describe_services)
        .then_output(|| {
            DescribeServicesOutput::builder()
                .services(service(
                    NEW_TD,
                    &[("PRIMARY", DeploymentRolloutState::Completed, None)],
                    2,
                ))
                .build()
        });
    let back = mock!(Client::update_service)
        .match_requests(|r| {
            r.task_definition() == Some(OLD_TD) && r.cluster() == Some("prd") && r.service() == Some("api")
        })
        .then_output(|| {
            UpdateServiceOutput::builder()
                .service(service(OLD_TD, &[], 2))
                .build()
        });
    let tag = mock!(Client::tag_resource)
        .match_requests(|r| {
            r.resource_arn() == Some(NEW_TD)
                && r.tags().iter().any(|t| {
                    t.key() == Some("mooring.dev/deploy") && t.value() == Some("failed")
                })
        })
        .then_output(|| TagResourceOutput::builder().build());
    let ecs = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        &[&describe, &back, &tag]
    );
    Rollback {
        describe,
        back,
        tag,
        ecs,
    }
}

/// A tracker as the daemon builds it, whose deploy notifications go to `hook`.
fn tracker_to(
    ecs: Client,
    hook: &LocalHttp,
) -> (
    crate::deploys::Tracker,
    crate::status::StatusStore,
    crate::alerts::Alerter,
) {
    use crate::deploys::{Follow, Reporter, Tracker};
    let set = set();
    let status = crate::status::StatusStore::new("dir", "enforce");
    status.set_manifests(&set, true);
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let config: crate::config::OperatorConfig = serde_json::from_value(serde_json::json!({
        "deploys": {"webhooks": [{"url": {"value": format!("{}/deploys", hook.url)}}]}
    }))
    .unwrap();
    let alerter = crate::alerts::Alerter::start(
        crate::alerts::Sinks::from_config(&config, None).unwrap(),
        metrics.clone(),
    );
    let tracker = Tracker::new(
        Reporter {
            status: status.clone(),
            metrics,
            alerter: alerter.clone(),
        },
        Follow {
            ecs,
            poll: Duration::from_millis(1),
            timeout: Duration::from_secs(30),
        },
    );
    tracker.before_pass(&set);
    (tracker, status, alerter)
}

fn empty_report() -> crate::reconcile::PassReport {
    crate::reconcile::PassReport {
        revision: set().revision.clone(),
        resources: Vec::new(),
        aws_calls: Default::default(),
        target: None,
        aws_calls_by_kind: Default::default(),
        check_seconds_by_kind: Default::default(),
    }
}

/// Follows `begun` as the daemon does, until it ends; returns the deploy as kept.
async fn follow_to_the_end(
    tracker: &crate::deploys::Tracker,
    status: &crate::status::StatusStore,
    begun: crate::deploys::Begun,
) -> crate::deploys::Deploy {
    use crate::deploys::DeployState;
    tracker.begun(&begun);
    tracker.after_pass(vec![begun], &empty_report());
    for _ in 0..1000 {
        let d = status.snapshot().deploys["api"][0].clone();
        if d.state != DeployState::InProgress {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the deploy did not end");
}

#[tokio::test]
async fn a_verified_deploy_succeeds_after_its_rollout_and_rolls_nothing_back() {
    use crate::deploys::DeployState;
    let (app, hook) = (LocalHttp::start(Some(200)).await, LocalHttp::start(Some(200)).await);
    let r = rollback_ecs();
    let (tracker, status, alerter) = tracker_to(r.ecs.clone(), &hook);
    let mut begun = begun_deploy();
    begun.verify = Some(verify_spec(&format!("{}/api/health", app.url), 5));
    begun.rollback_on_failure = true;
    let d = follow_to_the_end(&tracker, &status, begun).await;
    assert_eq!(d.state, DeployState::Succeeded, "{d:#?}");
    assert_eq!(app.hits(), 1, "one GET, after the rollout");
    assert!(r.describe.num_calls() >= 1, "the rollout was followed first");
    assert_eq!((r.back.num_calls(), r.tag.num_calls()), (0, 0));
    assert!(tracker.take_rolled_back().is_empty());
    alerter.flush(Duration::from_secs(10)).await;
    let outcomes: Vec<String> = hook.json().iter().map(|n| n["outcome"].to_string()).collect();
    assert_eq!(outcomes, ["\"started\"", "\"succeeded\""]);
}

#[tokio::test]
async fn a_failed_verify_fails_the_deploy_notifies_and_rolls_back_only_when_asked() {
    use crate::deploys::{Cause, DeployState};
    let app = LocalHttp::start(Some(503)).await;
    let url = format!("{}/api/health?token=s3cret", app.url);
    for rollback in [false, true] {
        let hook = LocalHttp::start(Some(200)).await;
        let r = rollback_ecs();
        let (tracker, status, alerter) = tracker_to(r.ecs.clone(), &hook);
        let mut begun = begun_deploy();
        begun.verify = Some(verify_spec(&url, 1));
        begun.rollback_on_failure = rollback;
        let d = follow_to_the_end(&tracker, &status, begun).await;
        assert_eq!(d.state, DeployState::Failed, "{d:#?}");
        let failure = d.failure.clone().unwrap();
        assert_eq!(failure.cause, Cause::Verify);
        assert!(failure.message.contains("answered 503"), "{}", failure.message);
        assert!(failure.message.contains("token=***"), "{}", failure.message);
        assert!(!failure.message.contains("s3cret"), "{}", failure.message);
        if rollback {
            assert_eq!(r.tag.num_calls(), 1, "the failed revision recorded");
            assert_eq!(r.back.num_calls(), 1, "UpdateService back to {OLD_TD}");
            assert!(failure.message.contains(&format!("rolled back to {OLD_TD}")), "{}", failure.message);
            assert_eq!(tracker.take_rolled_back(), [NEW_TD], "not deployed again");
        } else {
            assert_eq!((r.back.num_calls(), r.tag.num_calls()), (0, 0), "no rollback");
            assert!(failure.message.contains("the service stays on"), "{}", failure.message);
            assert!(tracker.take_rolled_back().is_empty());
        }
        alerter.flush(Duration::from_secs(10)).await;
        let notices = hook.json();
        assert_eq!(notices.len(), 2, "{notices:#?}");
        assert_eq!(notices[1]["outcome"], "failed");
        assert_eq!(notices[1]["failure"]["cause"], "verify");
        assert!(!hook.bodies.lock().unwrap().concat().contains("s3cret"));
    }
    assert!(app.hits() >= 2, "tried again within the timeout");
}

#[tokio::test]
async fn a_verify_that_gets_no_answer_or_no_connection_fails_when_its_time_is_up() {
    use crate::kinds::service::verify::probe;
    let silent = LocalHttp::start(None).await;
    let started = std::time::Instant::now();
    let err = probe(&verify_spec(&silent.url, 1)).await.unwrap_err();
    assert!(err.contains("no answer within"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // Nobody listens: the connection error is what was seen.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = probe(&verify_spec(&format!("http://{closed}/health"), 1)).await.unwrap_err();
    assert!(err.contains("verify failed: GET http://127.0.0.1"), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
}

/// The rules of a pass after a failed verify rolled api:2 back: the service runs api:1,
/// the family's newest revision is api:2 (tagged failed when `tagged`), and a manifest with
/// `api:3` registers api:3.
fn after_rollback_rules(tagged: bool) -> (Vec<Rule>, Rule, Rule) {
    use aws_sdk_ecs::types::Tag;
    const TD3: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:3";
    let old = || service(OLD_TD, &[("PRIMARY", DeploymentRolloutState::Completed, None)], 2);
    let mut rules = rollout_rules((0..8).map(|_| old()).collect());
    let new_td = mock!(Client::describe_task_definition)
        .match_requests(|r| r.task_definition() == Some(NEW_TD))
        .then_output(move || {
            let mut out = DescribeTaskDefinitionOutput::builder()
                .task_definition(task_definition(NEW_TD, "api:2"));
            if tagged {
                out = out.tags(Tag::builder().key("mooring.dev/deploy").value("failed").build());
            }
            out.build()
        });
    let register3 = mock!(Client::register_task_definition)
        .match_requests(|r| r.container_definitions()[0].image() == Some("api:3"))
        .then_output(|| {
            RegisterTaskDefinitionOutput::builder()
                .task_definition(task_definition(TD3, "api:3"))
                .build()
        });
    let update3 = mock!(Client::update_service)
        .match_requests(|r| r.task_definition() == Some(TD3))
        .then_output(|| {
            UpdateServiceOutput::builder()
                .service(service(TD3, &[], 2))
                .build()
        });
    rules[5] = family_rule(&[NEW_TD, OLD_TD]);
    rules.insert(0, new_td);
    rules.insert(0, register3.clone());
    rules.insert(0, update3.clone());
    (rules, register3, update3)
}

#[tokio::test]
async fn a_revision_a_failed_verify_rolled_back_is_not_deployed_again_until_the_manifest_changes() {
    // A restarted daemon (nothing remembered in the process): the tag on api:2 refuses it.
    let (rules, register3, update3) = after_rollback_rules(true);
    let refs: Vec<&Rule> = rules.iter().collect();
    let mut ctx = context(&refs);
    ctx.rollout_wait = None;
    let set = set();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    let err = report.resources[1].error().expect("refused");
    assert!(err.message.contains("not deployed again"), "{}", err.message);
    assert!(err.category.needs_change());
    // rules: update3, register3, new_td, describe, old_td, register, update(api:2), …
    assert_eq!(rules[6].num_calls(), 0, "no UpdateService to api:2");
    assert_eq!(rules[5].num_calls(), 0, "no copy of api:2 registered");
    // The same process a pass later: still refused, without reading the tag again.
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(report.resources[1].error().is_some());
    assert_eq!(rules[2].num_calls(), 1, "read once: the matching read saw the tag");

    // A new image in the manifest: a new revision, deployed.
    let changed = load_with_stack(&[("m.yaml".into(), MANIFESTS.replace("api:2", "api:3"))]).unwrap();
    let report = apply_all(&ctx, &changed, &reconcilers(&changed), true).await;
    assert!(report.resources[1].error().is_none(), "{report:#?}");
    assert_eq!((register3.num_calls(), update3.num_calls()), (1, 1));

    // Untagged (the process remembers it instead, as the daemon hands it over): the same.
    let (rules, _, _) = after_rollback_rules(false);
    let refs: Vec<&Rule> = rules.iter().collect();
    let mut ctx = context(&refs);
    ctx.rollout_wait = None;
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(report.resources[1].error().is_none(), "untagged and not remembered: deployed");
    assert_eq!(rules[6].num_calls(), 1);
    ctx.states.services.mark_failed(NEW_TD);
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(report.resources[1].error().expect("refused").message.contains("not deployed again"));
    assert_eq!(rules[6].num_calls(), 1);
}

/// A daemon restarted after a failed verify rolled api:2 back (the service runs api:1,
/// api:2 carries the failed tag, nothing is remembered in the process): no pass moves the
/// service to api:2 again, so nothing is verified, tagged or rolled back again, however
/// often it runs, even when it waits for rollouts and verifies (`apply --wait`).
#[tokio::test]
async fn a_restart_after_a_rollback_does_not_deploy_verify_or_roll_back_again() {
    use aws_sdk_ecs::operation::tag_resource::TagResourceOutput;
    let app = LocalHttp::start(Some(503)).await;
    let (mut rules, register3, update3) = after_rollback_rules(true);
    let back = mock!(Client::update_service)
        .match_requests(|r| r.task_definition() == Some(OLD_TD))
        .then_output(|| UpdateServiceOutput::builder().service(service(OLD_TD, &[], 2)).build());
    let tag = mock!(Client::tag_resource).then_output(|| TagResourceOutput::builder().build());
    rules.extend([back.clone(), tag.clone()]);
    let refs: Vec<&Rule> = rules.iter().collect();
    let ctx = context(&refs); // rollout_wait set: it would wait and verify
    let manifests = format!(
        "{MANIFESTS}  deploy:\n    verify: {{url: '{}/api/health', timeoutSeconds: 1}}\n    rollbackOnFailure: true\n",
        app.url
    );
    let set = load_with_stack(&[("m.yaml".into(), manifests)]).unwrap();
    for pass in 0..3 {
        let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
        let err = report.resources[1].error().expect("refused");
        assert!(err.message.contains("not deployed again"), "pass {pass}: {}", err.message);
    }
    // rules: update3, register3, new_td, describe, old_td, register, update(api:2), …
    assert_eq!(rules[6].num_calls(), 0, "no UpdateService to api:2");
    assert_eq!(rules[5].num_calls(), 0, "no copy of api:2 registered");
    assert_eq!((register3.num_calls(), update3.num_calls()), (0, 0));
    assert_eq!(app.hits(), 0, "nothing verified");
    assert_eq!((back.num_calls(), tag.num_calls()), (0, 0), "nothing rolled back or tagged");
    assert_eq!(rules[2].num_calls(), 1, "the tag seen by the one read of api:2");
}

/// A revision this process read before another process tagged it failed (kept without the
/// tag): its tag is read again before the service moves to it, and it is refused.
#[tokio::test]
async fn a_kept_revision_tagged_since_it_was_read_is_refused() {
    let (rules, _, _) = after_rollback_rules(true);
    let refs: Vec<&Rule> = rules.iter().collect();
    let mut ctx = context(&refs);
    ctx.rollout_wait = None;
    ctx.states
        .services
        .remember_task_definition(std::sync::Arc::new(task_definition(NEW_TD, "api:2")));
    let set = set();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    let err = report.resources[1].error().expect("refused");
    assert!(err.message.contains("not deployed again"), "{}", err.message);
    assert_eq!(rules[2].num_calls(), 1, "the kept revision's tags read again");
    assert_eq!(rules[6].num_calls(), 0, "no UpdateService to api:2");
}

#[tokio::test]
async fn apply_wait_verifies_after_the_rollout_and_fails_and_rolls_back_on_a_failed_verify() {
    use aws_sdk_ecs::operation::tag_resource::TagResourceOutput;
    let app = LocalHttp::start(Some(500)).await;
    let mut rules = rollout_rules(vec![service(
        NEW_TD,
        &[("PRIMARY", DeploymentRolloutState::Completed, None)],
        2,
    )]);
    let back = mock!(Client::update_service)
        .match_requests(|r| r.task_definition() == Some(OLD_TD))
        .then_output(|| UpdateServiceOutput::builder().service(service(OLD_TD, &[], 2)).build());
    let tag = mock!(Client::tag_resource)
        .match_requests(|r| r.resource_arn() == Some(NEW_TD))
        .then_output(|| TagResourceOutput::builder().build());
    rules.extend([back.clone(), tag.clone()]);
    let refs: Vec<&Rule> = rules.iter().collect();
    let ctx = context(&refs); // rollout_wait set: `apply --wait`
    let manifests = format!(
        "{MANIFESTS}  deploy:\n    verify: {{url: '{}/api/health', timeoutSeconds: 1}}\n    rollbackOnFailure: true\n",
        app.url
    );
    let set = load_with_stack(&[("m.yaml".into(), manifests)]).unwrap();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    let err = report.resources[1].error().expect("the failed verify fails the apply");
    assert_eq!(err.category.as_str(), "rollout");
    assert!(err.message.contains("answered 500"), "{}", err.message);
    assert!(app.hits() >= 1);
    assert_eq!(rules[3].num_calls(), 1, "rolled out to api:2");
    assert_eq!((back.num_calls(), tag.num_calls()), (1, 1), "then back to api:1");
    assert!(report.has_errors(), "exit code 1");
    let text = crate::cli::render_report(&report, false);
    assert!(
        text.contains(&format!("  verify: GET {}/api/health expects 200 after the rollout, else rolls back", app.url)),
        "{text}"
    );

    // The same with an app that answers 200: applied, nothing rolled back.
    let ok = LocalHttp::start(Some(200)).await;
    let rules = rollout_rules(vec![service(
        NEW_TD,
        &[("PRIMARY", DeploymentRolloutState::Completed, None)],
        2,
    )]);
    let refs: Vec<&Rule> = rules.iter().collect();
    let ctx = context(&refs);
    let set = load_with_stack(&[(
        "m.yaml".into(),
        format!("{MANIFESTS}  deploy:\n    verify: {{url: '{}/api/health'}}\n", ok.url),
    )])
    .unwrap();
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert!(report.resources[1].error().is_none(), "{report:#?}");
    assert_eq!(ok.hits(), 1);
}

/// ECS answers a strategy with no launch type; moto keeps the launch type (EC2 when the
/// service was created with a strategy, which its CreateService drops). So the move from
/// the launch type to FARGATE_SPOT is shown here with the shape ECS returns: one
/// UpdateService carrying the strategy and forceNewDeployment, and nothing left to do.
#[tokio::test]
async fn a_move_to_capacity_providers_is_one_update_with_a_forced_deployment() {
    let manifests = MANIFESTS.replace(
        "  desiredCount: 2\n",
        "  desiredCount: 2\n  capacityProviderStrategy:\n    - {capacityProvider: FARGATE_SPOT, weight: 3}\n    - {capacityProvider: FARGATE, weight: 1, base: 1}\n",
    );
    let set = load_with_stack(&[("m.yaml".into(), manifests)]).unwrap();
    let strategy = |s: Service| {
        let mut s = s;
        s.launch_type = None;
        s.capacity_provider_strategy = Some(
            [("FARGATE_SPOT", 3, 0), ("FARGATE", 1, 1)]
                .into_iter()
                .map(|(p, w, b)| {
                    aws_sdk_ecs::types::CapacityProviderStrategyItem::builder()
                        .capacity_provider(p)
                        .weight(w)
                        .base(b)
                        .build()
                        .unwrap()
                })
                .collect(),
        );
        s
    };
    let steady = service(
        NEW_TD,
        &[("PRIMARY", DeploymentRolloutState::Completed, None)],
        2,
    );
    let moved = strategy(steady.clone());
    let describe = mock!(Client::describe_services)
        .sequence()
        .output(move || DescribeServicesOutput::builder().services(steady.clone()).build())
        .output({
            let moved = moved.clone();
            move || DescribeServicesOutput::builder().services(moved.clone()).build()
        })
        .build();
    let td = mock!(Client::describe_task_definition).then_output(|| {
        DescribeTaskDefinitionOutput::builder()
            .task_definition(task_definition(NEW_TD, "api:2"))
            .build()
    });
    let update = mock!(Client::update_service)
        .match_requests(|r| {
            let sent: Vec<(&str, i32, i32)> = r
                .capacity_provider_strategy()
                .iter()
                .map(|i| (i.capacity_provider(), i.weight(), i.base()))
                .collect();
            r.force_new_deployment() == Some(true)
                && r.task_definition().is_none()
                && sent == [("FARGATE", 1, 1), ("FARGATE_SPOT", 3, 0)]
        })
        .then_output(move || UpdateServiceOutput::builder().service(moved.clone()).build());
    let cluster = cluster_rule();
    let mut ctx = context(&[&describe, &td, &update, &cluster]);
    ctx.rollout_wait = None;
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    let svc = &report.resources[1];
    assert!(svc.error().is_none(), "{svc:#?}");
    let mut fields: Vec<&str> = svc.changes.iter().map(|c| c.field.as_str()).collect();
    fields.sort();
    assert_eq!(fields, ["capacityProviderStrategy", "launchType"]);
    assert_eq!(update.num_calls(), 1, "one UpdateService with the strategy");
    // The next pass reads the service as ECS now reports it: nothing to do.
    let report = apply_all(&ctx, &set, &reconcilers(&set), true).await;
    assert_eq!(report.resources[1].action, Action::None, "{:#?}", report.resources[1]);
    assert_eq!(update.num_calls(), 1);
}

/// Review finding: a deploy another process superseded (a hand `mooring apply`, another
/// replica, `aws ecs update-service`) is not a rollback. The followed revision never
/// failed; recording it as `mooring.dev/deploy: failed` makes every later manifest that
/// renders it again (a `git revert` back to it) refused for good.
#[tokio::test]
async fn a_followed_deploy_superseded_by_a_third_revision_is_not_recorded_as_failed() {
    use crate::kinds::service::follow::follow;
    const THIRD_TD: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:3";
    // Someone deployed api:3 while api:2 rolled out; ECS drained api:2's deployment.
    let superseded = service(
        THIRD_TD,
        &[("PRIMARY", DeploymentRolloutState::Completed, None)],
        2,
    );
    let (describe, _) = describing(vec![rolling_out(), superseded]);
    let tag = failed_tag_rule();
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &[&describe, &tag]);
    let (cause, message) = follow(
        &ecs,
        &begun_deploy(),
        Duration::from_millis(1),
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    assert_eq!(cause, crate::deploys::Cause::Replaced, "{message}");
    assert!(message.contains("another deploy replaced it") && message.contains(THIRD_TD), "{message}");
    assert_eq!(
        tag.num_calls(),
        0,
        "api:2 did not fail: it was superseded by api:3, yet it is tagged failed for good"
    );
}
