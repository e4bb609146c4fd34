//! Fenced writes: under leader election, every AWS write is checked against the lease
//! right before it is sent, not once per resource, so a replica that lost the lease (a
//! failed renewal, a lease run out by its own clock after a pause) sends nothing more.

use std::fmt;
use std::sync::{Arc, OnceLock};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// Whether this replica may write to AWS now. Open until [`Fence::guard_with`] installs
/// a check (a process without leader election always writes).
#[derive(Clone, Default)]
pub struct Fence {
    check: Arc<OnceLock<Check>>,
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fence")
            .field("guarded", &self.check.get().is_some())
            .finish()
    }
}

impl Fence {
    /// Makes every later write ask `may_write` first (e.g. "do I hold a valid lease?").
    /// The first check installed stays: false when one was already there.
    pub fn guard_with(&self, may_write: impl Fn() -> bool + Send + Sync + 'static) -> bool {
        self.check.set(Arc::new(may_write)).is_ok()
    }

    /// True when a write may be sent now.
    pub fn allows_writes(&self) -> bool {
        self.check.get().is_none_or(|check| check())
    }
}

/// True for operations that only read: `Describe*`, `List*`, `Get*`, `BatchGet*`,
/// `Query`, `Scan`, `Lookup*`. Everything else is a write.
pub fn is_read_operation(operation: &str) -> bool {
    ["Describe", "List", "Get", "BatchGet", "Lookup"]
        .iter()
        .any(|p| operation.starts_with(p))
        || matches!(operation, "Query" | "Scan")
}

/// The error of a write the fence stopped before it was sent.
#[derive(Debug, Clone, thiserror::Error)]
#[error("this replica does not hold the lease: {service}:{operation} was not sent")]
pub struct Fenced {
    /// The service, e.g. `ECS`.
    pub service: String,
    /// The operation, e.g. `UpdateService`.
    pub operation: String,
}

/// The interceptor that asks the fence before each attempt of a write is transmitted.
/// Its error is never retried (the SDK retries only transport, throttling and server
/// errors).
#[derive(Debug, Clone)]
pub struct FenceInterceptor(pub Fence);

impl Intercept for FenceInterceptor {
    fn name(&self) -> &'static str {
        "mooring::Fence"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(meta) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        if is_read_operation(meta.name()) || self.0.allows_writes() {
            return Ok(());
        }
        Err(Box::new(Fenced {
            service: meta.service().to_string(),
            operation: meta.name().to_string(),
        }))
    }
}

/// The [`Fenced`] error somewhere in `err`'s chain of sources.
pub fn find_fenced<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Fenced> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(f) = e.downcast_ref::<Fenced>() {
            return Some(f);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes() {
        for read in [
            "DescribeServices",
            "ListTagsForResource",
            "GetParametersByPath",
            "BatchGetItem",
            "Query",
            "Scan",
            "LookupEvents",
        ] {
            assert!(is_read_operation(read), "{read}");
        }
        for write in [
            "UpdateService",
            "PutParameter",
            "CreateTargetGroup",
            "RegisterTaskDefinition",
            "AuthorizeSecurityGroupIngress",
            "TagResource",
            "DeleteRule",
            "ModifyListener",
        ] {
            assert!(!is_read_operation(write), "{write}");
        }
    }

    #[test]
    fn an_unguarded_fence_is_open_and_a_guard_decides_each_time() {
        let fence = Fence::default();
        assert!(fence.allows_writes());
        let holds = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let h = holds.clone();
        assert!(fence.guard_with(move || h.load(std::sync::atomic::Ordering::SeqCst)));
        assert!(!fence.guard_with(|| true), "the first guard stays");
        let copy = fence.clone();
        assert!(copy.allows_writes());
        holds.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(!copy.allows_writes(), "clones share the guard");
    }
}
