//! What the three EventBridge kinds (`Connection`, `ApiDestination`, `Rule`) share: the
//! describes of connections and API destinations by name, read once per pass through
//! [`crate::reconcile::cache::PassCache`] (a connection is asked for by itself and by every
//! API destination that uses it; an API destination by itself and by every rule calling it),
//! and the placeholder ARN plan shows for one that is not created yet.
//!
//! Connections and API destinations carry their owner in their description
//! ([`super::ownership::marker`]): moto cannot tag them.

use std::sync::Arc;

use aws_sdk_eventbridge::operation::describe_api_destination::DescribeApiDestinationOutput;
use aws_sdk_eventbridge::operation::describe_connection::DescribeConnectionOutput;

use crate::aws::{AwsError, ErrorCategory};
use crate::manifest::Kind;
use crate::reconcile::Cx;

/// The connection called `name` in EventBridge (`None`: there is none), read once per pass.
pub async fn connection(
    cx: &Cx<'_>,
    name: &str,
) -> Result<Option<Arc<DescribeConnectionOutput>>, AwsError> {
    cx.cache
        .connections
        .get(name.to_string(), || async {
            let out = cx
                .aws()
                .eventbridge
                .describe_connection()
                .name(name)
                .send()
                .await;
            found(out.map_err(|e| AwsError::from_sdk("events:DescribeConnection", e)))
        })
        .await
}

/// The API destination called `name` in EventBridge (`None`: there is none), read once per
/// pass.
pub async fn api_destination(
    cx: &Cx<'_>,
    name: &str,
) -> Result<Option<Arc<DescribeApiDestinationOutput>>, AwsError> {
    cx.cache
        .api_destinations
        .get(name.to_string(), || async {
            let out = cx
                .aws()
                .eventbridge
                .describe_api_destination()
                .name(name)
                .send()
                .await;
            found(out.map_err(|e| AwsError::from_sdk("events:DescribeApiDestination", e)))
        })
        .await
}

/// A describe's answer, with "not found" as `None`.
fn found<T>(out: Result<T, AwsError>) -> Result<Option<Arc<T>>, AwsError> {
    match out {
        Ok(v) => Ok(Some(Arc::new(v))),
        Err(e) if e.category == ErrorCategory::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What plan shows for the ARN of the `kind` manifest `name` that this apply has yet to
/// create.
pub fn pending(kind: Kind, name: &str) -> String {
    format!("(ARN of {kind}/{name}, once created)")
}

/// True when `arn` is a [`pending`] placeholder.
pub fn is_pending(arn: &str) -> bool {
    arn.starts_with('(')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_arns_are_told_from_real_ones() {
        let p = pending(Kind::Connection, "backend");
        assert_eq!(p, "(ARN of Connection/backend, once created)");
        assert!(is_pending(&p));
        assert!(!is_pending(
            "arn:aws:events:eu-west-1:1:connection/backend/x"
        ));
    }
}
