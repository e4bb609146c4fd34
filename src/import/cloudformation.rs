//! `--cloudformation-stack NAME [--recursive]`: the stack's resources (ListStackResources),
//! sorted into the ECS services the `--cluster` path follows and the resources imported on
//! their own; the rest is reported. Nested stacks are followed only with `--recursive`.
//! Generated names (`CdkBackendStack-ServiceD69D759B-1AB2C3`) are the live names: they are
//! kept, never renamed.

use std::collections::BTreeSet;

use super::Ctx;
use super::pick::Picked;
use crate::aws::AwsError;

/// How deep nested stacks are followed (CloudFormation allows far fewer in practice).
const MAX_DEPTH: usize = 8;

/// Adds the resources of stack `name` (a name or a stack ID) to `picked`.
pub(crate) async fn pick(
    cx: &Ctx<'_>,
    name: &str,
    recursive: bool,
    picked: &mut Picked,
) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    let mut queue = vec![(name.to_string(), 0usize)];
    while let Some((stack, depth)) = queue.pop() {
        if !seen.insert(stack.clone()) {
            continue;
        }
        let resources: Vec<_> = cx
            .aws
            .cloudformation
            .list_stack_resources()
            .stack_name(&stack)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| {
                format!(
                    "failed to read CloudFormation stack `{stack}`: {}",
                    AwsError::from_sdk("cloudformation:ListStackResources", e)
                )
            })?;
        for r in &resources {
            let status = r.resource_status().map(|s| s.as_str()).unwrap_or_default();
            let (Some(kind), Some(id)) = (r.resource_type(), r.physical_resource_id()) else {
                continue; // never created
            };
            if status.starts_with("DELETE_") || status == "CREATE_FAILED" || id.is_empty() {
                continue;
            }
            let logical = r.logical_resource_id().unwrap_or_default();
            let label = format!("{kind} {id} ({stack}/{logical})");
            if picked.resource(kind, id, &label) {
                continue;
            }
            // A nested stack: its physical ID is its stack ID (moto 5.2.5 gives its name;
            // ListStackResources takes either).
            if !recursive {
                picked.left_out.insert(
                    label,
                    "a nested stack: `--recursive` imports its resources too".into(),
                );
            } else if depth + 1 > MAX_DEPTH {
                picked
                    .left_out
                    .insert(label, format!("nested more than {MAX_DEPTH} stacks deep"));
            } else {
                queue.push((id.to_string(), depth + 1));
            }
        }
    }
    Ok(())
}
