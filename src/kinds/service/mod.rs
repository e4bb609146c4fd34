//! ECS services on Fargate, with their task definitions.
//!
//! The baseline for comparing is the task definition the service *runs*, not the newest
//! revision of its family. A new revision is registered only when the manifest's content
//! differs from it, and then only if the family's newest revision does not already match
//! (which makes a re-run after an interrupted apply register nothing).

pub mod spec;

use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::manifest::ServiceSpec;

/// The `Service` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "ecs:DescribeServices",
            "ecs:ListServices",
            "ecs:DescribeTaskDefinition",
            "ecs:RegisterTaskDefinition",
            "ecs:CreateService",
            "ecs:UpdateService",
            "ecs:DeleteService",
            "ecs:TagResource",
            "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeVpcs",
            "elasticloadbalancing:DescribeTargetGroups",
            "ssm:DescribeParameters",
            "secretsmanager:DescribeSecret",
            "sts:GetCallerIdentity",
            "iam:PassRole",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, set: &ManifestSet) -> String {
        format!(
            "the ECS service `{}/{}`",
            cluster_name(set, &m.spec.cluster),
            m.spec.aws_name(&m.metadata)
        )
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        let mut out = vec![Reference::new("/spec/cluster", Kind::Cluster, &m.spec.cluster)];
        out.extend(
            m.spec
                .network
                .security_groups
                .references("/spec/network/securityGroups"),
        );
        for (i, lb) in m.spec.load_balancers.iter().enumerate() {
            if let Some(tg) = &lb.target_group {
                out.push(Reference::new(
                    format!("/spec/loadBalancers/{i}/targetGroup"),
                    Kind::TargetGroup,
                    tg,
                ));
            }
        }
        out
    }

    fn check_set(m: &Manifest<Self::Spec>, set: &ManifestSet, f: &mut Findings<'_>) {
        check_secret_references(set, m, f);
        check_health_check_paths(set, m, f);
    }

    /// Besides what it names: the parameter sets that declare its secrets (a missing
    /// required secret keeps tasks from starting), and the load balancers that forward to
    /// its target groups (ECS only attaches target groups a load balancer uses).
    fn dependencies(m: &Manifest<Self::Spec>, set: &ManifestSet) -> Vec<(Kind, String)> {
        let mut deps: Vec<(Kind, String)> = Self::references(m)
            .into_iter()
            .map(|r| (r.kind, r.name))
            .collect();
        for secret in m.spec.task_definition.container.secrets.values() {
            if let Some(ps) = secret
                .ssm_parameter
                .as_deref()
                .and_then(|name| set.parameter_set_declaring(name))
            {
                deps.push((Kind::ParameterSet, ps.name().to_string()));
            }
        }
        for tg in m.spec.load_balancers.iter().filter_map(|lb| lb.target_group.as_ref()) {
            for alb in &set.load_balancers {
                if alb
                    .spec
                    .listeners
                    .iter()
                    .any(|l| l.default_action.forward.as_ref() == Some(tg))
                {
                    deps.push((Kind::LoadBalancer, alb.name().to_string()));
                }
            }
        }
        deps.sort();
        deps.dedup();
        deps
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.services
            .iter()
            .flat_map(|s| {
                let cluster = cluster_name(set, &s.spec.cluster);
                [
                    crate::iam::arn(
                        "ecs",
                        &format!("service/{cluster}/{}", s.spec.aws_name(&s.metadata)),
                    ),
                    crate::iam::arn(
                        "ecs",
                        &format!("task-definition/{}:*", s.spec.family(&s.metadata)),
                    ),
                    crate::iam::arn("ecs", &format!("cluster/{cluster}")),
                ]
            })
            .collect()
    }

    fn reconciler(_set: &ManifestSet) -> Box<dyn crate::reconcile::Reconciler> {
        crate::kinds::unconverted(Kind::Service)
    }
}

/// The ECS name of the cluster manifest `name`.
pub(crate) fn cluster_name(set: &ManifestSet, name: &str) -> String {
    set.cluster(name)
        .map(|c| c.spec.aws_name(&c.metadata).to_string())
        .unwrap_or_else(|| name.to_string())
}

/// When both the container and a target group check an HTTP path, it must be the same
/// path: a mismatch (`/health` vs `/api/health`) keeps tasks failing load balancer checks
/// and restarting.
fn check_health_check_paths(set: &ManifestSet, svc: &Manifest<ServiceSpec>, f: &mut Findings<'_>) {
    let container_path = svc
        .spec
        .task_definition
        .container
        .health_check
        .as_ref()
        .and_then(|h| h.http_path.as_deref());
    for (i, lb) in svc.spec.load_balancers.iter().enumerate() {
        let Some(tg) = lb.target_group.as_deref().and_then(|n| set.target_group(n)) else {
            continue;
        };
        let tg_path = tg.spec.health_check_path();
        if let Some(path) = container_path.filter(|p| *p != tg_path) {
            f.at(
                &format!("/spec/loadBalancers/{i}/targetGroup"),
                format!(
                    "TargetGroup `{}` checks `{tg_path}` but the container's health check calls `{path}`; use the same path for both",
                    tg.name()
                ),
            );
        }
    }
}

/// A secret read from an SSM parameter under a path that a ParameterSet manages must be
/// declared there (managed or required): a typo would otherwise only show when tasks fail
/// to start. Parameters outside every managed path are the user's own business.
fn check_secret_references(set: &ManifestSet, svc: &Manifest<ServiceSpec>, f: &mut Findings<'_>) {
    for (env, secret) in &svc.spec.task_definition.container.secrets {
        let Some(name) = &secret.ssm_parameter else {
            continue;
        };
        if name.starts_with("arn:") || set.parameter_set_declaring(name).is_some() {
            continue;
        }
        if let Some(owner) = set
            .parameter_sets
            .iter()
            .find(|p| p.spec.relative(name).is_some())
        {
            f.at(
                &format!(
                    "/spec/taskDefinition/container/secrets/{}/ssmParameter",
                    crate::manifest::yaml::escape_segment(env)
                ),
                format!(
                    "`{name}` is under the path `{}` of ParameterSet `{}` but not declared there; add it to its `parameters` or `required`",
                    owner.spec.path,
                    owner.name()
                ),
            );
        }
    }
}

/// The secret ARN in a `valueFrom`, without ECS's `:json-key:stage:version` suffix.
pub(crate) fn secret_arn(value_from: &str) -> String {
    value_from
        .splitn(8, ':')
        .take(7)
        .collect::<Vec<_>>()
        .join(":")
}
