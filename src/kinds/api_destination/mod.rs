//! `kind: ApiDestination`: an EventBridge API destination (endpoint, method, rate limit)
//! calling through a `Connection`.
//!
//! moto cannot tag API destinations, so their ownership marker is the description
//! (`managed by mooring: stack/ApiDestination/name`); one marked before stacks is taken
//! over and its description rewritten on the next apply.
//!
//! Reads: one DescribeApiDestination per destination and pass (shared with the rules that
//! call it), and its connection's describe, shared with the `Connection` kind.

pub mod spec;

use std::sync::Arc;

use aws_sdk_eventbridge::operation::describe_api_destination::DescribeApiDestinationOutput;
use aws_sdk_eventbridge::types::ApiDestinationHttpMethod;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::ownership::{self, Ownership};
use super::{Change, Resource, eventbridge};
use crate::aws::AwsError;
use crate::kinds::Reference;
use crate::kinds::from::{Field, Value};
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::{Applied, Cx, ReconcileError};
use spec::ApiDestinationSpec;

/// Default and maximum invocation rate of an API destination.
const MAX_RATE: u32 = 300;

/// The `ApiDestination` kind.
pub struct Unit;

impl crate::kinds::Declared for Unit {
    const ACTIONS: &'static [&'static str] = &[
        "events:DescribeApiDestination",
            "events:DescribeConnection",
            "events:CreateApiDestination",
            "events:UpdateApiDestination",
            "events:ListTagsForResource",
            "events:TagResource",
    ];
    type State = ();

    fn check(m: &Manifest<Self::Spec>, f: &mut Findings<'_>) {
        m.spec.check(&m.metadata, f);
    }

    fn identity(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> String {
        format!("the API destination `{}`", m.spec.aws_name(&m.metadata))
    }

    const FIELDS: &'static [Field] = &[Field {
        name: "arn",
        doc: "the API destination's ARN",
    }];

    fn values(spec: &ApiDestinationSpec) -> Vec<(String, &Value)> {
        vec![("/spec/endpoint".to_string(), &spec.endpoint)]
    }

    fn references(m: &Manifest<Self::Spec>) -> Vec<Reference> {
        vec![Reference::new("/spec/connection", Kind::Connection, &m.spec.connection)]
    }

    fn iam_resources(set: &ManifestSet) -> Vec<String> {
        set.api_destinations
            .iter()
            .flat_map(|d| {
                let name = d.spec.aws_name(&d.metadata);
                [
                    crate::iam::arn("events", &format!("api-destination/{name}")),
                    crate::iam::arn("events", &format!("api-destination/{name}/*")),
                ]
            })
            .collect()
    }

}

/// An API destination in the shape plan compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    /// The connection's ARN (a placeholder while it is to be created).
    pub connection_arn: String,
    /// The HTTPS URL called.
    pub endpoint: String,
    /// The HTTP method.
    pub http_method: String,
    /// Most calls per second.
    pub invocation_rate_limit_per_second: u32,
    /// The ownership marker.
    pub description: Option<String>,
}

/// One API destination as observed.
pub struct Observed {
    /// The live destination; `None` when there is none.
    live: Option<Arc<DescribeApiDestinationOutput>>,
    /// Its connection's ARN, or the placeholder of one not created yet.
    connection_arn: String,
}

/// The EventBridge name of the connection `m` names.
fn connection_name<'a>(set: &'a ManifestSet, m: &'a Manifest<ApiDestinationSpec>) -> &'a str {
    set.connections
        .iter()
        .find(|c| c.name() == m.spec.connection)
        .map_or(m.spec.connection.as_str(), |c| c.spec.aws_name(&c.metadata))
}

/// The ARN of the connection `m` names; `None` when it does not exist (yet).
async fn connection_arn(
    cx: &Cx<'_>,
    m: &Manifest<ApiDestinationSpec>,
) -> Result<Option<String>, AwsError> {
    Ok(eventbridge::connection(cx, connection_name(cx.set, m))
        .await?
        .and_then(|c| c.connection_arn().map(str::to_string)))
}

#[async_trait::async_trait]
impl Resource for Unit {
    /// Nothing is read for all destinations at once: EventBridge describes them by name.
    type Live = ();
    type Observed = Observed;
    type Doc = Doc;

    async fn read(
        _cx: &Cx<'_>,
        _manifests: &[Manifest<ApiDestinationSpec>],
    ) -> Result<(), ReconcileError> {
        Ok(())
    }

    async fn observe(
        cx: &Cx<'_>,
        m: &Manifest<ApiDestinationSpec>,
        _live: &(),
    ) -> Result<Observed, ReconcileError> {
        let connection_arn = connection_arn(cx, m)
            .await?
            .unwrap_or_else(|| eventbridge::pending(Kind::Connection, &m.spec.connection));
        let live = eventbridge::api_destination(cx, m.spec.aws_name(&m.metadata)).await?;
        Ok(Observed {
            live,
            connection_arn,
        })
    }

    fn ownership(obs: &Observed) -> Option<Ownership> {
        obs.live
            .as_ref()
            .map(|d| ownership::from_marker(d.description()))
    }

    fn desired(set: &ManifestSet, m: &Manifest<ApiDestinationSpec>, obs: &Observed) -> Doc {
        Doc {
            connection_arn: obs.connection_arn.clone(),
            endpoint: m.spec.endpoint.as_str().to_string(),
            http_method: m.spec.http_method.as_str().to_string(),
            invocation_rate_limit_per_second: m
                .spec
                .invocation_rate_limit_per_second
                .unwrap_or(MAX_RATE),
            description: Some(ownership::marker(
                Kind::ApiDestination,
                set.owner(),
                m.name(),
            )),
        }
    }

    fn live(
        _set: &ManifestSet,
        _m: &Manifest<ApiDestinationSpec>,
        obs: &Observed,
    ) -> Option<Doc> {
        let d = obs.live.as_ref()?;
        Some(Doc {
            connection_arn: d.connection_arn().unwrap_or_default().to_string(),
            endpoint: d.invocation_endpoint().unwrap_or_default().to_string(),
            http_method: d
                .http_method()
                .map(|h| h.as_str().to_string())
                .unwrap_or_default(),
            invocation_rate_limit_per_second: d
                .invocation_rate_limit_per_second()
                .and_then(|r| u32::try_from(r).ok())
                .unwrap_or_default(),
            description: d.description().map(str::to_string),
        })
    }

    fn fields(obs: &Observed) -> Vec<(&'static str, String)> {
        obs.live
            .as_ref()
            .and_then(|d| d.api_destination_arn())
            .map(|arn| vec![("arn", arn.to_string())])
            .unwrap_or_default()
    }

    fn aws_id(_set: &ManifestSet, m: &Manifest<ApiDestinationSpec>, obs: &Observed) -> String {
        obs.live
            .as_ref()
            .and_then(|d| d.api_destination_arn())
            .unwrap_or(m.spec.aws_name(&m.metadata))
            .to_string()
    }

    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<ApiDestinationSpec>,
        _obs: &Observed,
        change: &Change<'_, Doc>,
    ) -> Result<Applied, ReconcileError> {
        // Create and update both take every field; update is all-or-nothing here anyway.
        let Doc {
            connection_arn: planned_connection,
            endpoint,
            http_method,
            invocation_rate_limit_per_second,
            description,
        } = change.desired;
        let name = m.spec.aws_name(&m.metadata);
        // A connection plan did not find was to be created earlier in this apply.
        let connection = if eventbridge::is_pending(planned_connection) {
            connection_arn(cx, m).await?.ok_or_else(|| {
                ReconcileError::Dependency(format!("Connection/{}", m.spec.connection))
            })?
        } else {
            planned_connection.clone()
        };
        let method = ApiDestinationHttpMethod::from(http_method.as_str());
        let rate = i32::try_from(*invocation_rate_limit_per_second).unwrap_or(MAX_RATE as i32);
        let eb = &cx.aws().eventbridge;
        let arn = if change.live.is_some() {
            eb.update_api_destination()
                .name(name)
                .set_description(description.clone())
                .connection_arn(connection)
                .invocation_endpoint(endpoint)
                .http_method(method)
                .invocation_rate_limit_per_second(rate)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:UpdateApiDestination", e))?
                .api_destination_arn()
                .unwrap_or_default()
                .to_string()
        } else {
            eb.create_api_destination()
                .name(name)
                .set_description(description.clone())
                .connection_arn(connection)
                .invocation_endpoint(endpoint)
                .http_method(method)
                .invocation_rate_limit_per_second(rate)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("events:CreateApiDestination", e))?
                .api_destination_arn()
                .unwrap_or_default()
                .to_string()
        };
        info!(api_destination = %arn, "API destination in place");
        Ok(Applied {
            aws_id: arn,
            rollout: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::load_with_stack;
    use crate::reconcile::diff::diff;

    const MANIFESTS: &str = "apiVersion: mooring.dev/v1alpha1
kind: Connection
metadata: {name: backend}
spec:
  connectionName: backend-prd
  apiKey: {headerName: x-api-key, secretId: prd/backend/api-key}
---
apiVersion: mooring.dev/v1alpha1
kind: ApiDestination
metadata: {name: jobs}
spec:
  connection: backend
  endpoint: https://api.example.com/jobs
  httpMethod: POST
";

    const CONNECTION: &str = "arn:aws:events:eu-west-1:123456789012:connection/backend-prd/1";

    fn set() -> ManifestSet {
        load_with_stack(&[("d.yaml".into(), MANIFESTS.into())]).unwrap()
    }

    fn observed(description: &str, rate: i32, connection_arn: &str) -> Observed {
        let live = DescribeApiDestinationOutput::builder()
            .api_destination_arn("arn:aws:events:eu-west-1:123456789012:api-destination/jobs/1")
            .name("jobs")
            .description(description)
            .connection_arn(CONNECTION)
            .invocation_endpoint("https://api.example.com/jobs")
            .http_method(ApiDestinationHttpMethod::Post)
            .invocation_rate_limit_per_second(rate)
            .build();
        Observed {
            live: Some(Arc::new(live)),
            connection_arn: connection_arn.into(),
        }
    }

    fn changes(set: &ManifestSet, obs: &Observed) -> Vec<String> {
        let m = &set.api_destinations[0];
        let d = serde_json::to_value(Unit::desired(set, m, obs)).unwrap();
        let l = Unit::live(set, m, obs).map(|l| serde_json::to_value(l).unwrap());
        diff(&d, l.as_ref()).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn in_sync_with_the_default_rate_and_the_connection_named_by_its_aws_name() {
        let set = set();
        assert_eq!(connection_name(&set, &set.api_destinations[0]), "backend-prd");
        let mine = "managed by mooring: test/ApiDestination/jobs";
        let obs = observed(mine, 300, CONNECTION);
        assert!(changes(&set, &obs).is_empty());
        assert_eq!(
            Unit::ownership(&obs).and_then(|o| o.name_in("test", Kind::ApiDestination)),
            Some("jobs".to_string())
        );
        assert_eq!(
            changes(&set, &observed(mine, 5, CONNECTION)),
            ["invocationRateLimitPerSecond"]
        );
    }

    #[test]
    fn a_legacy_marker_is_rewritten_and_a_missing_connection_is_pending() {
        let set = set();
        let obs = observed("managed by mooring: ApiDestination/jobs", 300, CONNECTION);
        assert_eq!(Unit::ownership(&obs).unwrap().stack, None);
        assert_eq!(changes(&set, &obs), ["description"]);
        let pending = eventbridge::pending(Kind::Connection, "backend");
        let obs = observed("managed by mooring: test/ApiDestination/jobs", 300, &pending);
        assert_eq!(changes(&set, &obs), ["connectionArn"]);
    }
}
