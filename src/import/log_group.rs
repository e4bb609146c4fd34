//! The log group a service's awslogs driver writes to (in the service's file), so its
//! retention is in git; the service's `logs.group` then names the LogGroup manifest.

use serde_json::json;

use super::{Ctx, Imported, Names, read_failed, user_tags};

/// Reads the log group `group` of this region; `None` when it does not exist.
pub(crate) async fn read(
    cx: &Ctx<'_>,
    group: &str,
    names: &mut Names,
) -> Result<Option<Imported>, String> {
    let logs = &cx.aws.logs;
    let groups: Vec<_> = logs
        .describe_log_groups()
        .log_group_name_prefix(group)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| read_failed(format!("log group `{group}`"), "logs:DescribeLogGroups", e))?;
    let Some(g) = groups
        .into_iter()
        .find(|g| g.log_group_name() == Some(group))
    else {
        return Ok(None);
    };
    let arn = g
        .log_group_arn()
        .map(str::to_string)
        .or_else(|| g.arn().map(|a| a.trim_end_matches(":*").to_string()))
        .unwrap_or_else(|| group.to_string());
    let tags = logs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .map_err(|e| {
            read_failed(
                format!("the tags of `{group}`"),
                "logs:ListTagsForResource",
                e,
            )
        })?
        .tags
        .unwrap_or_default();
    let spec = json!({
        "logGroupName": group,
        "retentionInDays": g.retention_in_days(),
        "kmsKeyId": g.kms_key_id(),
        "tags": user_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    });
    if names.refuse(
        "log group",
        group,
        tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ) {
        return Ok(None);
    }
    let name = names.take_owned(
        "LogGroup",
        group,
        tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let mut doc = Imported::new("LogGroup", name, arn, spec);
    if g.retention_in_days().is_none() {
        doc.notes.push(
            "its events are kept forever (no retention); set `retentionInDays` to bound the cost"
                .into(),
        );
    }
    Ok(Some(doc))
}
