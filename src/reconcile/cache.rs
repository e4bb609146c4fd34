//! Reads shared by every kind within one pass: a VPC, a subnet lookup, the target group
//! listing or a connection is read once per pass, however many kinds or resources ask.
//!
//! The cache lives for one round of a pass (plan, then apply). The engine empties it after
//! every successful apply, so a resource applied later in the round sees what an earlier
//! one created (a service finds the target group created a moment before).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::aws::AwsError;

/// One memoised read per key. Successful answers are kept; a failed read is tried again by
/// the next caller.
pub struct Memo<K, V> {
    cells: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Memo {
            cells: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    /// The value for `key`, read with `init` the first time it is asked for.
    pub async fn get<E, F, Fut>(&self, key: K, init: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            cells.entry(key).or_default().clone()
        };
        cell.get_or_try_init(init).await.cloned()
    }

    /// Forgets every answer.
    pub fn clear(&self) {
        self.cells.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// A read shared by the kinds: the AWS answer, or the error every asker gets.
pub type Shared<T> = Result<Arc<T>, AwsError>;

/// IDs with names, as a subnet or security group lookup found them.
pub type Found = Arc<Vec<(String, Option<String>)>>;

type ElbTag = aws_sdk_elasticloadbalancingv2::types::Tag;
type Connection = aws_sdk_eventbridge::operation::describe_connection::DescribeConnectionOutput;
type ApiDestination =
    aws_sdk_eventbridge::operation::describe_api_destination::DescribeApiDestinationOutput;

/// Everything read once per pass.
#[derive(Default)]
pub struct PassCache {
    /// The account's default VPC ID.
    pub default_vpc: Memo<(), Option<String>>,
    /// Subnet and security group lookups: `(target, lookup as JSON)` → IDs with names.
    pub lookups: Memo<(crate::kinds::network::Target, String, String), Found>,
    /// Every security group that carries mooring's `managed-by` tag.
    pub mooring_groups: Memo<(), Arc<Vec<aws_sdk_ec2::types::SecurityGroup>>>,
    /// Every ELBv2 load balancer of the region.
    pub load_balancers: Memo<(), Arc<Vec<aws_sdk_elasticloadbalancingv2::types::LoadBalancer>>>,
    /// The tags of the set's target groups and load balancers, by ARN.
    pub elb_tags: Memo<(), Arc<std::collections::HashMap<String, Vec<ElbTag>>>>,
    /// Every ELBv2 target group of the region.
    pub target_groups: Memo<(), Arc<Vec<aws_sdk_elasticloadbalancingv2::types::TargetGroup>>>,
    /// EventBridge connections by name (`None`: there is none).
    pub connections: Memo<String, Option<Arc<Connection>>>,
    /// EventBridge API destinations by name (`None`: there is none).
    pub api_destinations: Memo<String, Option<Arc<ApiDestination>>>,
    /// Every ECR repository of the registry (repositories, and the services that name one).
    pub ecr_repositories: Memo<(), Arc<Vec<aws_sdk_ecr::types::Repository>>>,
    /// Image digests by tag, per (registry, repository): every tag the services follow in
    /// a repository, read in one BatchGetImage.
    pub ecr_digests: Memo<(String, String), crate::kinds::service::image::Digests>,
    /// SSM parameter metadata under a path (a ParameterSet's listing; services read the
    /// versions of the parameters a set declares from it).
    pub ssm_paths: Memo<String, Arc<Vec<aws_sdk_ssm::types::ParameterMetadata>>>,
    /// What each kind's plan cost this round: AWS calls (a shared read counts for the
    /// first kind that asked for it) and seconds.
    plan_costs: Mutex<std::collections::BTreeMap<String, (u64, f64)>>,
    /// The readable fields of the resources observed, for `from:` values. Not emptied by
    /// [`PassCache::clear`]: a resource read from is read again when it is applied.
    pub fields: crate::kinds::from::Readings,
}

impl PassCache {
    /// Forgets every answer (after a write: what was read may have changed).
    pub fn clear(&self) {
        self.default_vpc.clear();
        self.lookups.clear();
        self.mooring_groups.clear();
        self.target_groups.clear();
        self.load_balancers.clear();
        self.elb_tags.clear();
        self.connections.clear();
        self.api_destinations.clear();
        self.ecr_repositories.clear();
        self.ecr_digests.clear();
        self.ssm_paths.clear();
    }

    /// Counts `calls` more AWS calls and `seconds` more time for the plan of `kind`.
    pub fn count_plan(&self, kind: crate::manifest::Kind, calls: u64, seconds: f64) {
        let mut costs = self.plan_costs.lock().unwrap_or_else(|p| p.into_inner());
        let cost = costs.entry(kind.to_string()).or_default();
        cost.0 += calls;
        cost.1 += seconds;
    }

    /// AWS calls per kind's plan, kind name → calls.
    pub fn plan_calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.plan_costs().map(|(calls, _)| calls)
    }

    /// Seconds per kind's plan (its check: reads and diff), kind name → seconds.
    pub fn plan_seconds(&self) -> std::collections::BTreeMap<String, f64> {
        self.plan_costs().map(|(_, seconds)| seconds)
    }

    fn plan_costs(&self) -> Costs {
        Costs(
            self.plan_costs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

struct Costs(std::collections::BTreeMap<String, (u64, f64)>);

impl Costs {
    fn map<T>(self, f: impl Fn((u64, f64)) -> T) -> std::collections::BTreeMap<String, T> {
        self.0.into_iter().map(|(k, v)| (k, f(v))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_key_is_read_once_until_cleared_and_errors_are_not_kept() {
        let memo: Memo<&str, u32> = Memo::default();
        let reads = AtomicUsize::new(0);
        let read = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(7)
        };
        assert_eq!(memo.get("a", read).await, Ok(7));
        assert_eq!(memo.get("a", read).await, Ok(7));
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        let failing = || async { Err::<u32, _>("down".to_string()) };
        assert!(memo.get("b", failing).await.is_err());
        assert_eq!(
            memo.get("b", read).await,
            Ok(7),
            "a failure is not remembered"
        );
        memo.clear();
        assert_eq!(memo.get("a", read).await, Ok(7));
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }
}
