//! AWS clients and the one place that classifies AWS errors.
//!
//! Settings come from the standard AWS chain (environment, profile, web identity / IRSA,
//! ECS task role); `AWS_ENDPOINT_URL` points every client at an emulator such as moto.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tokio::sync::OnceCell;

/// The AWS clients mooring uses, built once from one configuration.
#[derive(Debug, Clone)]
pub struct Aws {
    /// ECS: clusters, services, task definitions.
    pub ecs: aws_sdk_ecs::Client,
    /// EC2: subnet and security group lookups.
    pub ec2: aws_sdk_ec2::Client,
    /// STS: the account ID, for ARNs mooring has to build.
    pub sts: aws_sdk_sts::Client,
    /// SSM Parameter Store.
    pub ssm: aws_sdk_ssm::Client,
    /// Application Auto Scaling.
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
    /// Elastic Load Balancing v2: load balancers, listeners, target groups.
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    /// EventBridge: connections, API destinations, rules.
    pub eventbridge: aws_sdk_eventbridge::Client,
    /// Secrets Manager: the API keys of EventBridge connections.
    pub secretsmanager: aws_sdk_secretsmanager::Client,
    /// ElastiCache: Redis replication groups.
    pub elasticache: aws_sdk_elasticache::Client,
    /// Certificate Manager: HTTPS listener certificates named by domain.
    pub acm: aws_sdk_acm::Client,
    /// SNS: alert topics.
    pub sns: aws_sdk_sns::Client,
    /// DynamoDB: the leader-election lease.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The region every client talks to.
    pub region: String,
    /// Every call made through these clients, counted.
    pub calls: ApiCalls,
    account: Arc<OnceCell<String>>,
}

/// The HTTPS client every AWS client shares: rustls with ring (no aws-lc build).
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// `inner`, but no more than `rate` requests per second over all clients (a token bucket
/// with a burst of one second's worth): a global limit that stays under AWS's API rate
/// limits however many resources a pass touches.
pub fn rate_limited(inner: SharedHttpClient, rate: f64) -> SharedHttpClient {
    SharedHttpClient::new(RateLimited {
        inner,
        bucket: Arc::new(TokenBucket::new(rate)),
    })
}

#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    state: Mutex<(f64, std::time::Instant)>,
}

impl TokenBucket {
    fn new(rate: f64) -> TokenBucket {
        let rate = rate.max(0.1);
        TokenBucket {
            rate,
            state: Mutex::new((rate.max(1.0), std::time::Instant::now())),
        }
    }

    /// Takes a token, or says how long to wait for one.
    fn take(&self) -> Option<Duration> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = &mut *state;
        let now = std::time::Instant::now();
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.rate.max(1.0));
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }

    async fn acquire(&self) {
        while let Some(wait) = self.take() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[derive(Debug, Clone)]
struct RateLimited {
    inner: SharedHttpClient,
    bucket: Arc<TokenBucket>,
}

impl aws_smithy_runtime_api::client::http::HttpClient for RateLimited {
    fn http_connector(
        &self,
        settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(LimitedConnector {
            inner: self.inner.http_connector(settings, components),
            bucket: self.bucket.clone(),
        })
    }
}

#[derive(Debug)]
struct LimitedConnector {
    inner: aws_smithy_runtime_api::client::http::SharedHttpConnector,
    bucket: Arc<TokenBucket>,
}

impl aws_smithy_runtime_api::client::http::HttpConnector for LimitedConnector {
    fn call(
        &self,
        request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        let inner = self.inner.clone();
        let bucket = self.bucket.clone();
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::new(async move {
            bucket.acquire().await;
            inner.call(request).await
        })
    }
}

/// `(service, operation, outcome)` of an AWS call.
pub type CallKey = (String, String, &'static str);

/// The outcome recorded for an attempt AWS throttled (the SDK retries it, slower).
pub const THROTTLED: &str = "throttled";

/// Counts AWS calls by service, operation and outcome (an SDK interceptor on every client).
#[derive(Debug, Clone, Default)]
pub struct ApiCalls {
    counts: Arc<Mutex<BTreeMap<CallKey, u64>>>,
}

impl ApiCalls {
    /// A copy of the counts: `(service, operation, outcome)` → calls, outcome `ok`/`error`.
    pub fn snapshot(&self) -> BTreeMap<CallKey, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Calls per `Service.Operation`, whatever their outcome (throttled attempts that
    /// were retried are not extra calls).
    pub fn by_operation(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((service, op, outcome), n) in self.snapshot() {
            if outcome == THROTTLED {
                continue;
            }
            *out.entry(format!("{service}.{op}")).or_default() += n;
        }
        out
    }

    /// Calls of one operation (`"ECS"`, `"UpdateService"`), whatever their outcome.
    pub fn count(&self, service: &str, operation: &str) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((s, o, outcome), _)| s == service && o == operation && *outcome != THROTTLED)
            .map(|(_, n)| n)
            .sum()
    }
}

impl Intercept for ApiCalls {
    fn name(&self) -> &'static str {
        "mooring::ApiCalls"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let throttled = context.response().is_some_and(|r| {
            let status = r.status().as_u16();
            let error_type = r
                .headers()
                .get("x-amzn-errortype")
                .unwrap_or_default()
                .to_ascii_lowercase();
            status == 429 || error_type.contains("throttl") || error_type.contains("limitexceeded")
        });
        if let (true, Some(meta)) = (throttled, cfg.load::<Metadata>())
            && let Ok(mut counts) = self.counts.lock()
        {
            *counts
                .entry((
                    meta.service().to_string(),
                    meta.name().to_string(),
                    THROTTLED,
                ))
                .or_default() += 1;
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>() {
            let outcome = match context.output_or_error() {
                Some(Ok(_)) => "ok",
                _ => "error",
            };
            if let Ok(mut counts) = self.counts.lock() {
                *counts
                    .entry((meta.service().to_string(), meta.name().to_string(), outcome))
                    .or_default() += 1;
            }
        }
        Ok(())
    }
}

impl Aws {
    /// Loads configuration from the standard chain. `calls_per_second` caps every AWS
    /// request (attempts included) of every client together.
    pub async fn from_env(calls_per_second: Option<f64>) -> Result<Aws, AwsError> {
        let http = match calls_per_second {
            Some(rate) => rate_limited(http_client(), rate),
            None => http_client(),
        };
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            // Throttling slows mooring down instead of failing resources: the adaptive
            // mode adds a client-side rate limiter that backs off when AWS throttles.
            .retry_config(aws_config::retry::RetryConfig::adaptive().with_max_attempts(5))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .operation_timeout(Duration::from_secs(90))
                    .build(),
            )
            .load()
            .await;
        Aws::from_config(&config)
    }

    /// Builds the clients from an existing configuration (tests pass their own).
    pub fn from_config(config: &SdkConfig) -> Result<Aws, AwsError> {
        let region = config
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| AwsError {
                operation: "configure AWS",
                code: None,
                message: "no AWS region configured: set AWS_REGION (or a profile with a region)"
                    .into(),
                category: ErrorCategory::Configuration,
            })?;
        let calls = ApiCalls::default();
        Ok(Aws {
            ecs: aws_sdk_ecs::Client::from_conf(
                aws_sdk_ecs::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            ssm: aws_sdk_ssm::Client::from_conf(
                aws_sdk_ssm::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            autoscaling: aws_sdk_applicationautoscaling::Client::from_conf(
                aws_sdk_applicationautoscaling::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::from_conf(
                aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            eventbridge: aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            secretsmanager: aws_sdk_secretsmanager::Client::from_conf(
                aws_sdk_secretsmanager::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            elasticache: aws_sdk_elasticache::Client::from_conf(
                aws_sdk_elasticache::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            acm: aws_sdk_acm::Client::from_conf(
                aws_sdk_acm::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            region,
            calls,
            account: Default::default(),
        })
    }

    /// The account the credentials belong to (asked once, then remembered).
    pub async fn account_id(&self) -> Result<String, AwsError> {
        self.account
            .get_or_try_init(|| async {
                let out = self
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("sts:GetCallerIdentity", e))?;
                out.account.ok_or_else(|| AwsError {
                    operation: "sts:GetCallerIdentity",
                    code: None,
                    message: "the response has no account".into(),
                    category: ErrorCategory::Other,
                })
            })
            .await
            .cloned()
    }

    /// The ARN partition of the region (`aws`, `aws-cn`, `aws-us-gov`).
    pub fn partition(&self) -> &'static str {
        partition_of(&self.region)
    }
}

/// The ARN partition a region belongs to.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// What kind of failure an AWS error is; a stable label for metrics and retry decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCategory {
    /// AWS asked us to slow down.
    Throttling,
    /// The thing does not exist.
    NotFound,
    /// The credentials may not do this.
    AccessDenied,
    /// AWS rejected the request's content.
    Validation,
    /// Network, timeout or a 5xx: worth retrying.
    Transient,
    /// Missing region, credentials and the like.
    Configuration,
    /// This replica does not hold the lease: the write was not sent.
    Fenced,
    /// Anything else.
    Other,
}

impl ErrorCategory {
    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCategory::Throttling => "throttling",
            ErrorCategory::NotFound => "not_found",
            ErrorCategory::AccessDenied => "access_denied",
            ErrorCategory::Validation => "validation",
            ErrorCategory::Transient => "transient",
            ErrorCategory::Configuration => "configuration",
            ErrorCategory::Fenced => "fenced",
            ErrorCategory::Other => "other",
        }
    }
}

/// A failed AWS call, with the operation it was and a category.
#[derive(Debug, Clone, thiserror::Error)]
pub struct AwsError {
    /// `service:Operation`, e.g. `ecs:DescribeServices`.
    pub operation: &'static str,
    /// AWS error code, when AWS sent one.
    pub code: Option<String>,
    /// The message AWS sent, or a description of the transport failure.
    pub message: String,
    /// What kind of failure this is.
    pub category: ErrorCategory,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to call {}: ", self.operation)?;
        if let Some(code) = &self.code {
            write!(f, "{code}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl AwsError {
    /// A request mooring could not even build (a missing required field).
    pub fn invalid_request(operation: &'static str, err: impl fmt::Display) -> AwsError {
        AwsError {
            operation,
            code: None,
            message: format!("failed to build the request: {err}"),
            category: ErrorCategory::Validation,
        }
    }

    /// Classifies an SDK error. This is the only place that decides what an AWS error
    /// means; callers match on [`AwsError::category`] or, for one operation's own error
    /// (e.g. `ClusterNotFoundException`), on the typed error before converting.
    pub fn from_sdk<E, R>(operation: &'static str, err: SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_string);
        let message = err
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| DisplayErrorContext(&err).to_string());
        let status = match &err {
            SdkError::ServiceError(_) => None,
            _ => Some(()),
        };
        let category = match (&err, code.as_deref()) {
            (SdkError::TimeoutError(_) | SdkError::DispatchFailure(_), _) => {
                ErrorCategory::Transient
            }
            (_, Some(c)) => classify_code(c),
            (SdkError::ResponseError(_), None) => ErrorCategory::Transient,
            _ if status.is_some() => ErrorCategory::Transient,
            _ => ErrorCategory::Other,
        };
        AwsError {
            operation,
            code,
            message,
            category,
        }
    }
}

/// Category of an AWS error code.
pub fn classify_code(code: &str) -> ErrorCategory {
    match code {
        "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "SlowDown"
        | "PriorRequestNotComplete"
        | "EC2ThrottledException" => ErrorCategory::Throttling,
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "AuthFailure"
        | "SignatureDoesNotMatch" => ErrorCategory::AccessDenied,
        "InternalFailure"
        | "InternalError"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "ServerException"
        | "RequestTimeout"
        | "RequestTimeoutException" => ErrorCategory::Transient,
        // ElastiCache says `…NotFoundFault`.
        c if c.ends_with("NotFoundException")
            || c.ends_with("NotFound")
            || c.ends_with("NotFoundFault") =>
        {
            ErrorCategory::NotFound
        }
        "ValidationException"
        | "ValidationError"
        | "InvalidParameterException"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "ClientException" => ErrorCategory::Validation,
        _ => ErrorCategory::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_bucket_allows_a_burst_then_paces() {
        let bucket = TokenBucket::new(10.0);
        for _ in 0..10 {
            assert_eq!(bucket.take(), None);
        }
        let wait = bucket.take().expect("the eleventh request waits");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(
            bucket.take(),
            None,
            "a token came back after 1/rate seconds"
        );
    }

    #[test]
    fn codes_are_classified() {
        assert_eq!(
            classify_code("ThrottlingException"),
            ErrorCategory::Throttling
        );
        assert_eq!(
            classify_code("ClusterNotFoundException"),
            ErrorCategory::NotFound
        );
        assert_eq!(
            classify_code("InvalidSubnetID.NotFound"),
            ErrorCategory::NotFound
        );
        assert_eq!(
            classify_code("CertificateNotFound"),
            ErrorCategory::NotFound
        );
        assert_eq!(
            classify_code("AccessDeniedException"),
            ErrorCategory::AccessDenied
        );
        assert_eq!(
            classify_code("InvalidParameterException"),
            ErrorCategory::Validation
        );
        assert_eq!(classify_code("ServerException"), ErrorCategory::Transient);
        assert_eq!(classify_code("Weird"), ErrorCategory::Other);
    }

    #[test]
    fn partitions() {
        assert_eq!(partition_of("eu-west-1"), "aws");
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
    }
}
