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

pub mod fence;
pub mod identity;
pub mod transport;

pub use fence::{Fence, Fenced, is_read_operation};
pub use transport::{Transport, TransportSettings};

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
    /// CloudWatch Logs: log groups.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// ECR: image repositories and their lifecycle policies.
    pub ecr: aws_sdk_ecr::Client,
    /// CloudWatch: metric alarms.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// CloudFormation: the resources of a stack `mooring import` reads.
    pub cloudformation: aws_sdk_cloudformation::Client,
    /// Resource Groups Tagging API: the resources of a tag `mooring import` reads.
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    /// SNS: alert topics.
    pub sns: aws_sdk_sns::Client,
    /// DynamoDB: the leader-election lease.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS: the change-event queue (`--events-queue`).
    pub sqs: aws_sdk_sqs::Client,
    /// The region every client talks to.
    pub region: String,
    /// Every call made through these clients, counted.
    pub calls: ApiCalls,
    /// Asked before every write of every client except the lease's DynamoDB and SNS.
    pub fence: Fence,
    account: Arc<OnceCell<String>>,
    endpoint: Option<String>,
}

/// The HTTPS client every AWS client shares: rustls with ring (no aws-lc build).
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// `(service, operation, outcome)` of an AWS call.
pub type CallKey = (String, String, &'static str);

/// The outcome recorded for an attempt AWS throttled (the SDK retries it, slower).
pub const THROTTLED: &str = "throttled";

/// Counts AWS calls by service, operation and outcome (an SDK interceptor on every client).
#[derive(Debug, Clone, Default)]
pub struct ApiCalls {
    counts: Arc<Mutex<BTreeMap<CallKey, u64>>>,
    /// Told about every answer, so its rate follows throttling.
    transport: Option<Arc<Transport>>,
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

    /// Every call so far, whatever its outcome (throttled attempts not counted).
    pub fn total(&self) -> u64 {
        self.by_operation().values().sum()
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
        // Error bodies are read into memory before this runs, so query protocols' codes
        // (EC2 `RequestLimitExceeded`, ELBv2 `Throttling`) are seen as well as headers.
        let throttled = context.response().is_some_and(|r| {
            let status = r.status().as_u16();
            if let Some(t) = &self.transport {
                t.feedback(status, r.headers(), r.body().bytes());
            }
            transport::is_throttling(status, r.headers(), r.body().bytes())
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

/// Tests: a configuration whose clients point at a closed loopback port, for the clients a
/// test does not replace with canned responses (a call that reaches one fails at once).
#[cfg(test)]
pub(crate) fn offline_config() -> SdkConfig {
    SdkConfig::builder()
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url("http://127.0.0.1:1")
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build()
}

impl Aws {
    /// Loads configuration from the standard chain. `calls_per_second` caps every AWS
    /// request (attempts included) of every client together.
    pub async fn from_env(calls_per_second: Option<f64>) -> Result<Aws, AwsError> {
        Aws::from_env_with(TransportSettings {
            calls_per_second,
            ..TransportSettings::default()
        })
        .await
    }

    /// Loads configuration from the standard chain, with these transport settings.
    ///
    /// Throttling slows mooring down instead of failing resources, without long sleeps:
    /// the standard retry mode (jittered exponential backoff from 100 ms, capped at 3 s,
    /// 8 attempts) plus the process-wide token bucket, which halves its rate when AWS
    /// throttles and adds back as calls succeed. An unreachable AWS fails fast: no
    /// answer within the response timeout, twice in a row, opens the service's breaker.
    pub async fn from_env_with(settings: TransportSettings) -> Result<Aws, AwsError> {
        let transport = Arc::new(Transport::new(settings));
        let attempt = settings.response_timeout * 2;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        // `app/mooring` in every request's user agent, which CloudTrail records: how the
        // change-event consumer tells mooring's own writes apart (src/events.rs).
        if let Ok(name) = aws_config::AppName::new(crate::events::APP_NAME) {
            loader = loader.app_name(name);
        }
        let config = loader
            .http_client(transport::client(http_client(), transport.clone()))
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(8)
                    .with_initial_backoff(Duration::from_millis(100))
                    .with_max_backoff(Duration::from_secs(3)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3).min(settings.response_timeout))
                    .operation_attempt_timeout(attempt)
                    .operation_timeout(attempt * 3)
                    .build(),
            )
            .load()
            .await;
        Aws::build(&config, Some(transport))
    }

    /// Builds the clients from an existing configuration (tests pass their own).
    pub fn from_config(config: &SdkConfig) -> Result<Aws, AwsError> {
        Aws::build(config, None)
    }

    fn build(config: &SdkConfig, transport: Option<Arc<Transport>>) -> Result<Aws, AwsError> {
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
        let calls = ApiCalls {
            transport,
            ..ApiCalls::default()
        };
        let fence = Fence::default();
        let fenced = fence::FenceInterceptor(fence.clone());
        Ok(Aws {
            ecs: aws_sdk_ecs::Client::from_conf(
                aws_sdk_ecs::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
                    .build(),
            ),
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
                    .build(),
            ),
            ssm: aws_sdk_ssm::Client::from_conf(
                aws_sdk_ssm::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
                    .build(),
            ),
            autoscaling: aws_sdk_applicationautoscaling::Client::from_conf(
                aws_sdk_applicationautoscaling::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
                    .build(),
            ),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::from_conf(
                aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
                    .build(),
            ),
            eventbridge: aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
                    .build(),
            ),
            secretsmanager: aws_sdk_secretsmanager::Client::from_conf(
                aws_sdk_secretsmanager::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
                    .build(),
            ),
            elasticache: aws_sdk_elasticache::Client::from_conf(
                aws_sdk_elasticache::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
                    .build(),
            ),
            acm: aws_sdk_acm::Client::from_conf(
                aws_sdk_acm::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
                    .build(),
            ),
            logs: aws_sdk_cloudwatchlogs::Client::from_conf(
                aws_sdk_cloudwatchlogs::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
                    .build(),
            ),
            ecr: aws_sdk_ecr::Client::from_conf(
                aws_sdk_ecr::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
                    .build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
                    .build(),
            ),
            cloudformation: aws_sdk_cloudformation::Client::from_conf(
                aws_sdk_cloudformation::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
                    .build(),
            ),
            tagging: aws_sdk_resourcegroupstagging::Client::from_conf(
                aws_sdk_resourcegroupstagging::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .interceptor(fenced.clone())
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
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            region,
            calls,
            fence,
            account: Default::default(),
            endpoint: config.endpoint_url().map(str::to_string),
        })
    }

    /// The account and region mooring works in: the account is asked first, so missing or
    /// refused credentials and an endpoint that does not answer are one clear error.
    pub async fn target(&self) -> Result<identity::Target, AwsError> {
        Ok(identity::Target {
            account: self.account_id().await?,
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
        })
    }

    /// The account the credentials belong to (asked once, then remembered).
    pub async fn account_id(&self) -> Result<String, AwsError> {
        self.account
            .get_or_try_init(|| async {
                let out =
                    self.sts.get_caller_identity().send().await.map_err(|e| {
                        identity::explain(e, &self.region, self.endpoint.as_deref())
                    })?;
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
    /// A write this replica did not send: it does not hold the lease.
    Fenced,
    /// Missing region, credentials and the like.
    Configuration,
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
            ErrorCategory::Fenced => "fenced",
            ErrorCategory::Configuration => "configuration",
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
        if let Some(f) = fence::find_fenced(&err) {
            return AwsError {
                operation,
                code: None,
                message: f.to_string(),
                category: ErrorCategory::Fenced,
            };
        }
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
        | "EC2ThrottledException"
        | "ProvisionedThroughputExceededException"
        | "TooManyRequests"
        | "BandwidthLimitExceeded"
        | "TransactionInProgressException" => ErrorCategory::Throttling,
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
        // Every service's throttling: EC2, ELBv2/ElastiCache/SNS/STS (query), DynamoDB,
        // SSM/ECS/EventBridge/Application Auto Scaling (JSON).
        for code in [
            "RequestLimitExceeded",
            "Throttling",
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "TooManyRequestsException",
        ] {
            assert_eq!(classify_code(code), ErrorCategory::Throttling, "{code}");
        }
        assert_eq!(classify_code("Weird"), ErrorCategory::Other);
    }

    #[test]
    fn partitions() {
        assert_eq!(partition_of("eu-west-1"), "aws");
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
    }

    /// A local HTTP server answering each request with the next of `answers`
    /// (`(status, extra headers, body)`, the last one repeated); returns its endpoint and
    /// the `X-Amz-Target`/`Action` of every request it received.
    fn fake_aws(
        answers: Vec<(u16, &'static str, &'static str)>,
    ) -> (String, Arc<Mutex<Vec<String>>>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = seen.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let request = loop {
                    let Ok(k) = stream.read(&mut chunk) else {
                        break None;
                    };
                    if k == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break Some(text);
                        }
                    }
                };
                let Some(request) = request else { continue };
                let op = request
                    .lines()
                    .find_map(|l| l.strip_prefix("x-amz-target: "))
                    .map(str::to_string)
                    .or_else(|| {
                        request
                            .split("Action=")
                            .nth(1)
                            .map(|a| a.split('&').next().unwrap_or(a).to_string())
                    })
                    .unwrap_or_default();
                keep.lock().unwrap().push(op);
                let (status, headers, body) = answers[n.min(answers.len() - 1)];
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (endpoint, seen)
    }

    async fn config(endpoint: &str) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .load()
            .await
    }

    #[tokio::test]
    async fn a_fenced_write_is_never_sent_nor_retried_and_reads_go_on() {
        let json = "Content-Type: application/x-amz-json-1.1\r\n";
        let (endpoint, seen) = fake_aws(vec![(200, json, "{}")]);
        let aws = Aws::from_config(&config(&endpoint).await).unwrap();
        let holds = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let h = holds.clone();
        aws.fence
            .guard_with(move || h.load(std::sync::atomic::Ordering::SeqCst));
        aws.ecs
            .update_service()
            .cluster("c")
            .service("s")
            .desired_count(2)
            .send()
            .await
            .expect("the leader writes");
        holds.store(false, std::sync::atomic::Ordering::SeqCst);
        let err = aws
            .ecs
            .update_service()
            .cluster("c")
            .service("s")
            .desired_count(3)
            .send()
            .await
            .unwrap_err();
        let err = AwsError::from_sdk("a fenced update", err);
        assert_eq!(err.category, ErrorCategory::Fenced, "{err}");
        assert!(err.to_string().contains("does not hold the lease"), "{err}");
        let err = aws
            .ssm
            .put_parameter()
            .name("/x")
            .value("v")
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            AwsError::from_sdk("a fenced put", err).category,
            ErrorCategory::Fenced
        );
        aws.ecs.list_clusters().send().await.expect("reads go on");
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "AmazonEC2ContainerServiceV20141113.UpdateService",
                "AmazonEC2ContainerServiceV20141113.ListClusters"
            ],
            "the fenced writes never reached AWS, and were not retried"
        );
    }

    #[tokio::test]
    async fn throttling_of_query_protocols_is_counted_and_slows_the_bucket() {
        let ok = "<DescribeTargetGroupsResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><DescribeTargetGroupsResult><TargetGroups/></DescribeTargetGroupsResult></DescribeTargetGroupsResponse>";
        let (endpoint, seen) = fake_aws(vec![
            (
                400,
                "Content-Type: text/xml\r\n",
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>",
            ),
            (200, "Content-Type: text/xml\r\n", ok),
        ]);
        let transport = Arc::new(Transport::new(TransportSettings {
            calls_per_second: Some(20.0),
            response_timeout: Duration::from_secs(5),
        }));
        let aws = Aws::build(&config(&endpoint).await, Some(transport.clone())).unwrap();
        aws.elbv2
            .describe_target_groups()
            .send()
            .await
            .expect("the retry succeeds");
        assert_eq!(seen.lock().unwrap().len(), 2);
        let calls = aws.calls.snapshot();
        let key = |outcome| {
            (
                "Elastic Load Balancing v2".to_string(),
                "DescribeTargetGroups".to_string(),
                outcome,
            )
        };
        assert_eq!(calls.get(&key(THROTTLED)), Some(&1), "{calls:?}");
        assert_eq!(calls.get(&key("ok")), Some(&1), "{calls:?}");
        assert_eq!(
            transport.bucket().unwrap().rate(),
            10.0 + transport::RATE_INCREASE,
            "halved by the throttle, one step back for the success"
        );
    }
}
