//! Following a deploy's rollout after the pass that started it (the daemon does this in a
//! task of its own, so no other resource waits): DescribeServices every poll until the
//! deployment of the new revision completes, fails, or the deploy timeout passes.

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{DeploymentRolloutState, Service, ServiceField};

use crate::aws::AwsError;
use crate::deploys::{Begun, Cause};

/// What ECS shows of a rollout of one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Still rolling out.
    InProgress,
    /// Every wanted task runs the new revision and nothing else runs.
    Completed,
    /// ECS gave up on it (circuit breaker), or the service moved to another revision.
    Failed(String),
    /// The service moved to a third revision meanwhile: another deploy replaced this one.
    Replaced(String),
}

/// Judges `s` for the rollout of `td`, which replaced `from` (none for a new service).
pub fn judge(s: &Service, td: &str, from: Option<&str>) -> Judgement {
    let deployments = s.deployments();
    let active = deployments
        .iter()
        .filter(|d| matches!(d.status(), Some("PRIMARY" | "ACTIVE")))
        .count();
    let steady = active <= 1 && s.running_count() >= s.desired_count();
    if let Some(failed) = deployments
        .iter()
        .find(|d| d.task_definition() == Some(td) && d.rollout_state() == Some(&DeploymentRolloutState::Failed))
    {
        return Judgement::Failed(format!(
            "deployment of {td} failed: {}",
            failed.rollout_state_reason().unwrap_or("no reason given")
        ));
    }
    match deployments.iter().find(|d| d.task_definition() == Some(td)) {
        Some(d) if d.status() == Some("PRIMARY") => {
            if d.rollout_state() == Some(&DeploymentRolloutState::Completed) && steady {
                Judgement::Completed
            } else {
                Judgement::InProgress
            }
        }
        Some(_) => Judgement::InProgress,
        // ECS starts a deployment of the new revision with UpdateService; moto instead
        // keeps its first deployment and changes only the service's revision. A service
        // that runs the revision, steady, with its one deployment done, has completed.
        None if s.task_definition() == Some(td) => {
            let done = deployments
                .iter()
                .all(|d| d.rollout_state() != Some(&DeploymentRolloutState::InProgress));
            if steady && done {
                Judgement::Completed
            } else {
                Judgement::InProgress
            }
        }
        None if s.task_definition().is_some() && s.task_definition() == from => {
            Judgement::Failed(format!(
                "the service runs {} instead: ECS rolled it back",
                s.task_definition().unwrap_or("no revision")
            ))
        }
        None => Judgement::Replaced(format!(
            "the service moved to {} during the rollout of {td}: another deploy replaced it",
            s.task_definition().unwrap_or("no revision")
        )),
    }
}

/// Follows the rollout `begun` started until it ends: `Ok` when it completed, else why it
/// failed. A failed read is tried again at the next poll (the timeout still holds).
pub async fn follow(
    ecs: &aws_sdk_ecs::Client,
    begun: &Begun,
    poll: Duration,
    timeout: Duration,
) -> Result<(), (Cause, String)> {
    let started = Instant::now();
    loop {
        tokio::time::sleep(poll.min(timeout)).await;
        let read = ecs
            .describe_services()
            .cluster(&begun.cluster)
            .services(&begun.ecs_name)
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:DescribeServices", e));
        match read {
            Ok(out) => match out.services().first() {
                Some(s) => match judge(s, &begun.to_task_definition, begun.from_task_definition.as_deref()) {
                    Judgement::Completed => return Ok(()),
                    Judgement::Failed(why) => {
                        // ECS gave up on the revision: recorded durably, as a failed verify's
                        // rollback is, so a restarted daemon does not deploy it again.
                        if let Err(e) =
                            super::verify::record_failed(ecs, &begun.to_task_definition).await
                        {
                            tracing::warn!(service = %begun.service, error = %e, "cannot record the rolled-back revision as failed; this process still remembers it");
                        }
                        return Err((Cause::Rollback, why));
                    }
                    // Not a failure of this revision: nothing recorded.
                    Judgement::Replaced(why) => return Err((Cause::Replaced, why)),
                    Judgement::InProgress => {}
                },
                None => {
                    return Err((
                        Cause::Rollback,
                        format!("service {} disappeared during its rollout", begun.ecs_name),
                    ));
                }
            },
            Err(e) => {
                tracing::warn!(service = %begun.service, error = %e, "cannot read the rollout; trying again");
            }
        }
        if started.elapsed() >= timeout {
            return Err((
                Cause::Timeout,
                format!(
                    "the rollout of {} did not finish within {}s",
                    begun.to_task_definition,
                    timeout.as_secs()
                ),
            ));
        }
    }
}
