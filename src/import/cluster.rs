//! The cluster: `cluster.yaml`.

use aws_sdk_ecs::types::ClusterField;
use serde_json::json;

use super::{Ctx, Imported, Names, read_failed, user_tags};

/// The imported cluster.
pub(crate) struct Cluster {
    /// Its name in ECS.
    pub aws_name: String,
    /// Its manifest's name.
    pub name: String,
    /// Its manifest.
    pub doc: Imported,
    /// The stack its `mooring.dev/stack` tag names, when mooring made it.
    pub stack: Option<String>,
    /// Its live tags.
    pub tags: Vec<(String, String)>,
}

/// Reads the cluster `name_or_arn`.
pub(crate) async fn read(
    cx: &Ctx<'_>,
    name_or_arn: &str,
    names: &mut Names,
) -> Result<Cluster, String> {
    let out = cx
        .aws
        .ecs
        .describe_clusters()
        .clusters(name_or_arn)
        .include(ClusterField::Settings)
        .include(ClusterField::Tags)
        .send()
        .await
        .map_err(|e| {
            read_failed(
                format!("cluster `{name_or_arn}`"),
                "ecs:DescribeClusters",
                e,
            )
        })?;
    let c = out
        .clusters()
        .iter()
        .find(|c| c.status() != Some("INACTIVE"))
        .ok_or_else(|| format!("failed to find cluster `{name_or_arn}`"))?;
    let aws_name = c.cluster_name().unwrap_or(name_or_arn).to_string();
    let pairs: Vec<(&str, &str)> = c
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?, t.value()?)))
        .collect();
    let name = names.take_owned("Cluster", &aws_name, pairs.iter().copied());
    let stack = pairs
        .iter()
        .find(|(k, _)| *k == crate::manifest::TAG_STACK)
        .map(|(_, v)| v.to_string())
        .filter(|v| crate::manifest::stack::valid_name(v));
    // Left out when ECS does not report it ("left as AWS has it") or reports the default.
    let insights = c
        .settings()
        .iter()
        .find(|s| s.name().map(|n| n.as_str()) == Some("containerInsights"))
        .and_then(|s| s.value())
        .filter(|v| ["enabled", "enhanced"].contains(v));
    let tags = user_tags(c.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))));
    // Fargate's providers and a default strategy of them are written (and then managed);
    // with any other provider neither is: the cluster keeps what it has.
    let providers = c.capacity_providers();
    let fargate_only = providers
        .iter()
        .all(|p| ["FARGATE", "FARGATE_SPOT"].contains(&p.as_str()));
    let default_strategy = c.default_capacity_provider_strategy();
    let (capacity_providers, default_capacity_provider_strategy) = match fargate_only {
        true => (
            (!providers.is_empty()).then(|| json!(providers)),
            (!default_strategy.is_empty())
                .then(|| super::service::fargate_strategy(default_strategy))
                .flatten(),
        ),
        false => (None, None),
    };
    let mut doc = Imported::new(
        "Cluster",
        name.clone(),
        c.cluster_arn().unwrap_or(&aws_name).to_string(),
        json!({
            "clusterName": aws_name,
            "containerInsights": insights,
            "capacityProviders": capacity_providers,
            "defaultCapacityProviderStrategy": default_capacity_provider_strategy,
            "tags": tags,
        }),
    );
    if !fargate_only {
        doc.notes.push(format!(
            "capacity providers {providers:?} are not managed by mooring and are left as they are"
        ));
    }
    let tags = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(Cluster {
        aws_name,
        name,
        doc,
        stack,
        tags,
    })
}
