//! `--cloudformation-stack NAME [--recursive]`: the stack's resources (ListStackResources),
//! sorted into the ECS services the `--cluster` path follows and the resources imported on
//! their own; the rest is reported. Nested stacks are followed only with `--recursive`.
//! Generated names (`CdkBackendStack-ServiceD69D759B-1AB2C3`) are the live names: they are
//! kept, never renamed.

use std::collections::BTreeSet;

use super::Ctx;
use super::pick::Picked;
use super::read_failed;

/// How deep nested stacks are followed (CloudFormation allows far fewer in practice).
const MAX_DEPTH: usize = 8;

/// What to do with a nested stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nested {
    /// Follow it (`--cloudformation-stack … --recursive`).
    Follow,
    /// Report it, with the hint that `--recursive` follows it.
    Report,
    /// Report it, for a stack `--tag` picked (which has no `--recursive`).
    ReportForTag,
}

/// Adds the resources of stack `name` (a name or a stack ID) to `picked`.
pub(crate) async fn pick(
    cx: &Ctx<'_>,
    name: &str,
    recursive: bool,
    picked: &mut Picked,
) -> Result<(), String> {
    let nested = if recursive {
        Nested::Follow
    } else {
        Nested::Report
    };
    pick_with(cx, name, nested, picked).await
}

/// Why a nested stack of `root` (the stack picked: a name, or a stack ID) was not followed,
/// and how to import it.
pub(crate) fn nested_hint(nested: Nested, root: &str) -> String {
    match nested {
        Nested::ReportForTag => {
            // `arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/ID` → NAME.
            let name = root
                .strip_prefix("arn:")
                .and_then(|_| root.rsplit(':').next())
                .and_then(|r| r.split('/').nth(1))
                .unwrap_or(root);
            format!(
                "a nested stack of the tagged stack `{name}`: `--tag` imports only the resources that carry the tag; `--cloudformation-stack {name} --recursive` imports the nested stacks' resources too"
            )
        }
        _ => "a nested stack: `--recursive` imports its resources too".into(),
    }
}

/// As [`pick`], with what to do with nested stacks.
pub(crate) async fn pick_with(
    cx: &Ctx<'_>,
    name: &str,
    nested: Nested,
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
                read_failed(
                    format!("CloudFormation stack `{stack}`"),
                    "cloudformation:ListStackResources",
                    e,
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
            if nested != Nested::Follow {
                picked.left_out.insert(label, nested_hint(nested, name));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nested_stack_hint_names_a_flag_the_selection_has() {
        assert!(nested_hint(Nested::Report, "shop").contains("`--recursive`"));
        let tag = nested_hint(
            Nested::ReportForTag,
            "arn:aws:cloudformation:us-east-1:123456789012:stack/CdkShop/0a1b-2c3d",
        );
        assert!(
            tag.contains("`--cloudformation-stack CdkShop --recursive`"),
            "{tag}"
        );
        assert!(tag.contains("`--tag` imports only"), "{tag}");
        assert!(!tag.starts_with("a nested stack: `--recursive`"), "{tag}");
        assert!(nested_hint(Nested::ReportForTag, "CdkShop").contains("stack CdkShop --recursive"));
    }
}
