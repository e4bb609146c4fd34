//! `kind: Cluster` — an ECS cluster.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kinds::service::spec::{CapacityProviderItem, FargateCapacityProvider, check_strategy};
use crate::manifest::Metadata;
use crate::manifest::common::{check_aws_name, check_tags};
use crate::manifest::error::Findings;

/// An ECS cluster that services run in.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Name of the cluster in ECS. Defaults to `metadata.name`.
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// CloudWatch Container Insights for the cluster. Left as AWS has it when unset.
    #[serde(default)]
    pub container_insights: Option<ContainerInsights>,
    /// The capacity providers associated with the cluster (`FARGATE`, `FARGATE_SPOT`):
    /// services and tasks may name only these in a strategy. Left out: not managed (the
    /// cluster keeps what it has); `[]`: none.
    #[serde(default)]
    pub capacity_providers: Option<Vec<FargateCapacityProvider>>,
    /// The strategy for tasks and services started without a launch type or a strategy of
    /// their own, e.g. `[{capacityProvider: FARGATE_SPOT, weight: 1}]`; each provider must be
    /// in `capacityProviders`. Left out: not managed; `[]`: none.
    #[serde(default)]
    pub default_capacity_provider_strategy: Option<Vec<CapacityProviderItem>>,
    /// Tags to put on the cluster (the ownership tags are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// The `containerInsights` cluster setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ContainerInsights {
    /// Container Insights on.
    Enabled,
    /// Container Insights off.
    Disabled,
    /// Container Insights with enhanced observability.
    Enhanced,
}

impl ContainerInsights {
    /// The value ECS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerInsights::Enabled => "enabled",
            ContainerInsights::Disabled => "disabled",
            ContainerInsights::Enhanced => "enhanced",
        }
    }
}

impl ClusterSpec {
    /// The cluster's name in ECS.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.cluster_name.as_deref().unwrap_or(&meta.name)
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        check_aws_name(self.aws_name(meta), "/spec/clusterName", f);
        check_tags(&self.tags, "/spec/tags", f);
        self.check_capacity_providers(f);
    }

    fn check_capacity_providers(&self, f: &mut Findings<'_>) {
        let providers = self.capacity_providers.as_deref();
        for (i, p) in providers.unwrap_or_default().iter().enumerate() {
            if providers.unwrap_or_default()[..i].contains(p) {
                f.at(
                    &format!("/spec/capacityProviders/{i}"),
                    format!("`{}` is listed twice", p.as_str()),
                );
            }
        }
        let Some(strategy) = &self.default_capacity_provider_strategy else {
            return;
        };
        let pointer = "/spec/defaultCapacityProviderStrategy";
        check_strategy(strategy, pointer, f);
        let Some(providers) = providers else {
            // PutClusterCapacityProviders sets both: the strategy alone cannot be managed.
            f.at(
                pointer,
                "needs `capacityProviders` (the providers the strategy may name)",
            );
            return;
        };
        for (i, item) in strategy.iter().enumerate() {
            if !providers.contains(&item.capacity_provider) {
                f.at(
                    &format!("{pointer}/{i}/capacityProvider"),
                    format!(
                        "`{}` is not in `capacityProviders`",
                        item.capacity_provider.as_str()
                    ),
                );
            }
        }
    }

    /// True when the cluster manifest manages its providers and `provider` is not one.
    pub fn lacks_provider(&self, provider: FargateCapacityProvider) -> bool {
        self.capacity_providers
            .as_ref()
            .is_some_and(|p| !p.contains(&provider))
    }
}


#[cfg(test)]
mod tests {
    /// The errors a cluster with `spec` (indented two spaces) and a service with
    /// `service` under its `spec:` load with, as `file:line:col: field: message`.
    fn errors(spec: &str, service: &str) -> Vec<String> {
        let doc = format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {{name: prd}}\nspec:\n  tags: {{}}\n{spec}---\napiVersion: mooring.dev/v1alpha1\nkind: Service\nmetadata: {{name: api}}\nspec:\n  cluster: prd\n  network: {{subnets: {{ids: [subnet-1]}}, securityGroups: {{ids: [sg-1]}}}}\n{service}  taskDefinition:\n    cpu: 256\n    memory: 512\n    container: {{image: 'api:1', port: 3000}}\n"
        );
        match crate::manifest::load::load_with_stack(&[("c.yaml".into(), doc)]) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    const SPOT: &str = "  capacityProviderStrategy: [{capacityProvider: FARGATE_SPOT, weight: 1}]\n";

    #[test]
    fn capacity_providers_and_the_default_strategy_are_checked() {
        let ok = "  capacityProviders: [FARGATE, FARGATE_SPOT]\n  defaultCapacityProviderStrategy:\n    - {capacityProvider: FARGATE_SPOT, weight: 3}\n    - {capacityProvider: FARGATE, weight: 1, base: 1}\n";
        assert_eq!(errors(ok, SPOT), Vec::<String>::new());
        let e = errors(
            "  capacityProviders: [FARGATE, FARGATE]\n  defaultCapacityProviderStrategy:\n    - {capacityProvider: FARGATE_SPOT, weight: 0}\n",
            "",
        );
        assert_eq!(
            e,
            [
                "c.yaml:6:32: spec.capacityProviders[1]: `FARGATE` is listed twice",
                "c.yaml:8:8: spec.defaultCapacityProviderStrategy[0].capacityProvider: `FARGATE_SPOT` is not in `capacityProviders`",
            ],
            "{e:#?}"
        );
        let e = errors(
            "  defaultCapacityProviderStrategy: [{capacityProvider: FARGATE, weight: 1}]\n",
            "",
        );
        assert!(
            e.iter().any(|e| e.starts_with("c.yaml:6:")
                && e.contains("spec.defaultCapacityProviderStrategy: needs `capacityProviders`")),
            "{e:#?}"
        );
        let e = errors("  capacityProviders: [FARGATE, EC2]\n", "");
        assert!(e.iter().any(|e| e.starts_with("c.yaml:6:") && e.contains("capacityProviders")), "{e:#?}");
        let e = errors("  capacityProvider: [FARGATE]\n", "");
        assert!(e.iter().any(|e| e.starts_with("c.yaml:6:") && e.contains("capacityProvider")), "{e:#?}");
    }

    #[test]
    fn a_service_may_name_only_the_clusters_providers_when_it_lists_them() {
        // Not managed by the cluster manifest: not checked.
        assert_eq!(errors("", SPOT), Vec::<String>::new());
        let e = errors("  capacityProviders: [FARGATE]\n", SPOT);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].starts_with("c.yaml:14:31:")
                && e[0].ends_with("spec.capacityProviderStrategy[0].capacityProvider: the Cluster `prd` does not list `FARGATE_SPOT` in its `capacityProviders`"),
            "{e:#?}"
        );
        let e = errors("  capacityProviders: []\n", SPOT);
        assert_eq!(e.len(), 1, "{e:#?}");
    }
}
