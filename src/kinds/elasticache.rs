//! What the two ElastiCache kinds (`CacheSubnetGroup`, `ReplicationGroup`) share: tags in
//! ElastiCache's form, reading them, and adding the missing ones.

use std::collections::BTreeMap;

use aws_sdk_elasticache::types::Tag;

use crate::aws::AwsError;
use crate::reconcile::Cx;

/// Tags in ElastiCache's request form.
pub fn tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The tags of the resource `arn` (one ListTagsForResource).
pub async fn tags_of(cx: &Cx<'_>, arn: &str) -> Result<Vec<Tag>, AwsError> {
    Ok(cx
        .aws()
        .elasticache
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("elasticache:ListTagsForResource", e))?
        .tag_list()
        .to_vec())
}

/// Adds `missing` to the resource `arn`; nothing is sent when there is none.
pub async fn add_tags(
    cx: &Cx<'_>,
    arn: &str,
    missing: &BTreeMap<String, String>,
) -> Result<(), AwsError> {
    if missing.is_empty() {
        return Ok(());
    }
    cx.aws()
        .elasticache
        .add_tags_to_resource()
        .resource_name(arn)
        .set_tags(Some(tags(missing)))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("elasticache:AddTagsToResource", e))?;
    Ok(())
}
