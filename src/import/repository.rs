//! ECR repositories picked on their own (a CloudFormation stack's, a tag's):
//! `repositories.yaml`.

use serde_json::json;

use super::{Ctx, Imported, Names, read_failed, user_tags};
use crate::aws::{AwsError, ErrorCategory};

/// Reads the repositories `wanted` (names); one that does not exist is an error.
pub(crate) async fn read(
    cx: &Ctx<'_>,
    wanted: &[String],
    names: &mut Names,
) -> Result<Vec<Imported>, String> {
    let ecr = &cx.aws.ecr;
    let mut out = Vec::new();
    for chunk in wanted.chunks(100) {
        let page = ecr
            .describe_repositories()
            .set_repository_names(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| {
                read_failed(
                    format!("repositories {chunk:?}"),
                    "ecr:DescribeRepositories",
                    e,
                )
            })?;
        let mut repos = page.repositories().to_vec();
        repos.sort_by(|a, b| a.repository_name().cmp(&b.repository_name()));
        for r in repos {
            let name = r.repository_name().unwrap_or_default().to_string();
            let arn = r.repository_arn().unwrap_or(&name).to_string();
            let tags: Vec<(String, String)> = ecr
                .list_tags_for_resource()
                .resource_arn(&arn)
                .send()
                .await
                .map_err(|e| {
                    read_failed(
                        format!("the tags of repository `{name}`"),
                        "ecr:ListTagsForResource",
                        e,
                    )
                })?
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            let policy = match ecr
                .get_lifecycle_policy()
                .repository_name(&name)
                .send()
                .await
            {
                Ok(p) => p.lifecycle_policy_text().map(str::to_string),
                Err(e) => {
                    let e = AwsError::from_sdk("ecr:GetLifecyclePolicy", e);
                    if e.category != ErrorCategory::NotFound {
                        return Err(format!(
                            "failed to read the lifecycle policy of `{name}`: {e}"
                        ));
                    }
                    None
                }
            };
            let immutable = r
                .image_tag_mutability()
                .is_some_and(|m| m.as_str() == "IMMUTABLE");
            let scan = r
                .image_scanning_configuration()
                .is_some_and(|s| s.scan_on_push());
            let kms = r
                .encryption_configuration()
                .filter(|e| e.encryption_type().as_str() == "KMS");
            let spec = json!({
                "repositoryName": name,
                "imageTagMutability": immutable.then_some("IMMUTABLE"),
                "scanOnPush": scan.then_some(true),
                "encryption": kms.map(|e| json!({"type": "KMS", "kmsKey": e.kms_key()})),
                "tags": user_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            });
            if names.refuse(
                "ECR repository",
                &name,
                tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ) {
                continue;
            }
            let manifest = names.take_owned(
                "Repository",
                &name,
                tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            let mut doc = Imported::new("Repository", manifest, arn, spec);
            if policy.is_some() {
                doc.cannot_carry.push(
                    "lifecycle: its lifecycle policy is not read back into `lifecycle` rules yet"
                        .into(),
                );
            }
            doc.notes.push(
                "`deletionPolicy` is left at `retain`: mooring never deletes it or its images"
                    .into(),
            );
            out.push(doc);
        }
    }
    Ok(out)
}
