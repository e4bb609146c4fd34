//! The HTTP layer under every AWS client: one process-wide request rate that slows down
//! when AWS throttles and speeds up again as calls succeed (AIMD), a time limit on each
//! answer, and a circuit breaker per service, so that an unreachable AWS fails calls in
//! seconds instead of after minutes of retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Headers;

use super::{ErrorCategory, classify_code};

/// The lowest rate throttling can push the limit to, requests per second.
pub const MIN_RATE: f64 = 1.0;
/// What each answered, unthrottled request adds back to the rate, requests per second.
pub const RATE_INCREASE: f64 = 1.0;
/// At most one halving per this long: throttled answers to requests sent at the old rate
/// say nothing about the new one (TCP's one decrease per window).
pub const DECREASE_WINDOW: Duration = Duration::from_secs(1);
/// How long mooring waits for AWS to start answering one request, by default.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts in a row that got no answer from one service before its breaker opens.
pub const BREAKER_THRESHOLD: u32 = 2;

/// How the transport behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransportSettings {
    /// Most requests per second over all clients (attempts included); `None`: no limit.
    pub calls_per_second: Option<f64>,
    /// How long to wait for the start of an answer; also how long an open breaker stays
    /// open before it lets one request try again.
    pub response_timeout: Duration,
}

impl Default for TransportSettings {
    fn default() -> TransportSettings {
        TransportSettings {
            calls_per_second: Some(50.0),
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        }
    }
}

/// A token bucket whose rate halves on throttling (at most once per
/// [`DECREASE_WINDOW`], never below [`MIN_RATE`]) and grows by [`RATE_INCREASE`] per
/// successful answer, up to the configured rate. The burst is one second's worth.
#[derive(Debug)]
pub struct TokenBucket {
    max_rate: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    rate: f64,
    tokens: f64,
    last: Instant,
    last_cut: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket at `rate` requests per second.
    pub fn new(rate: f64) -> TokenBucket {
        let rate = rate.max(0.1);
        TokenBucket {
            max_rate: rate,
            state: Mutex::new(BucketState {
                rate,
                tokens: rate.max(1.0),
                last: Instant::now(),
                last_cut: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, BucketState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current rate, requests per second.
    pub fn rate(&self) -> f64 {
        self.state().rate
    }

    /// Takes a token, or says how long to wait for one.
    pub fn take(&self) -> Option<Duration> {
        let mut s = self.state();
        let now = Instant::now();
        let refill = now.duration_since(s.last).as_secs_f64() * s.rate;
        s.tokens = (s.tokens + refill).min(s.rate.max(1.0));
        s.last = now;
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - s.tokens) / s.rate))
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        while let Some(wait) = self.take() {
            tokio::time::sleep(wait).await;
        }
    }

    /// AWS throttled a request: halve the rate, unless it was halved within the window.
    pub fn throttled(&self) {
        let mut s = self.state();
        let now = Instant::now();
        if s.last_cut
            .is_some_and(|t| now.duration_since(t) < DECREASE_WINDOW)
        {
            return;
        }
        s.last_cut = Some(now);
        s.rate = (s.rate / 2.0).max(MIN_RATE.min(self.max_rate));
        s.tokens = s.tokens.min(s.rate.max(1.0));
    }

    /// AWS answered without throttling: add a little back.
    pub fn answered(&self) {
        let mut s = self.state();
        s.rate = (s.rate + RATE_INCREASE).min(self.max_rate);
    }
}

/// Whether a service answers, per service: after [`BREAKER_THRESHOLD`] attempts in a row
/// that could not reach it (refused, timed out; a reset is not counted) the breaker opens and requests to that
/// service fail at once; after the response timeout one request may try again.
#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    opened: Option<Instant>,
}

/// The shared state of the transport: the bucket, the breakers and the time limit.
#[derive(Debug)]
pub struct Transport {
    bucket: Option<TokenBucket>,
    breakers: Mutex<HashMap<String, Breaker>>,
    response_timeout: Duration,
}

impl Transport {
    /// A transport with these settings.
    pub fn new(settings: TransportSettings) -> Transport {
        Transport {
            bucket: settings.calls_per_second.map(TokenBucket::new),
            breakers: Mutex::default(),
            response_timeout: settings.response_timeout,
        }
    }

    /// The rate limiter, when there is one.
    pub fn bucket(&self) -> Option<&TokenBucket> {
        self.bucket.as_ref()
    }

    fn breakers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Breaker>> {
        self.breakers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Err when the service's breaker is open; lets one request through once it has been
    /// open for the response timeout.
    fn admit(&self, service: &str) -> Result<(), String> {
        let mut breakers = self.breakers();
        let Some(b) = breakers.get_mut(service) else {
            return Ok(());
        };
        match b.opened {
            Some(t) if t.elapsed() < self.response_timeout => Err(format!(
                "AWS ({service}) did not answer the last {} attempts; not sending for {:?}",
                b.failures, self.response_timeout
            )),
            Some(_) => {
                // Half-open: this request probes; the others wait for its outcome.
                b.opened = Some(Instant::now());
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn outcome(&self, service: &str, answered: bool) {
        let mut breakers = self.breakers();
        if answered {
            breakers.remove(service);
            return;
        }
        let b = breakers.entry(service.to_string()).or_default();
        b.failures = b.failures.saturating_add(1);
        if b.failures >= BREAKER_THRESHOLD {
            if b.opened.is_none() {
                tracing::warn!(
                    service,
                    failures = b.failures,
                    "AWS does not answer: failing its calls at once for a while"
                );
            }
            b.opened = Some(Instant::now());
        }
    }

    /// What an answer says about the rate: throttled halves it, anything else AWS answered
    /// (except a 5xx) adds back.
    pub fn feedback(&self, status: u16, headers: &Headers, body: Option<&[u8]>) {
        let Some(bucket) = &self.bucket else {
            return;
        };
        if is_throttling(status, headers, body) {
            bucket.throttled();
        } else if status < 500 {
            bucket.answered();
        }
    }
}

/// `inner` under the transport's rate limit, time limit and breakers.
pub fn client(inner: SharedHttpClient, transport: Arc<Transport>) -> SharedHttpClient {
    SharedHttpClient::new(Client { inner, transport })
}

#[derive(Debug, Clone)]
struct Client {
    inner: SharedHttpClient,
    transport: Arc<Transport>,
}

impl HttpClient for Client {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Connector {
            inner: self.inner.http_connector(settings, components),
            transport: self.transport.clone(),
        })
    }
}

#[derive(Debug)]
struct Connector {
    inner: SharedHttpConnector,
    transport: Arc<Transport>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let transport = self.transport.clone();
        let service = request
            .headers()
            .get("authorization")
            .and_then(signed_service)
            .unwrap_or_default()
            .to_string();
        HttpConnectorFuture::new(async move {
            // Not an I/O error: the SDK does not retry it, so a call to a service that is
            // down fails at once with this message instead of after every attempt.
            transport
                .admit(&service)
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            if let Some(bucket) = &transport.bucket {
                bucket.acquire().await;
            }
            match tokio::time::timeout(transport.response_timeout, inner.call(request)).await {
                Ok(Ok(response)) => {
                    transport.outcome(&service, true);
                    Ok(response)
                }
                Ok(Err(e)) => {
                    // A reset or a connection closed early is a blip; a refused or timed
                    // out connection says the service cannot be reached.
                    if unreachable(&e) {
                        transport.outcome(&service, false);
                    }
                    Err(e)
                }
                Err(_) => {
                    transport.outcome(&service, false);
                    Err(ConnectorError::timeout(
                        format!(
                            "AWS ({service}) did not answer within {:?}",
                            transport.response_timeout
                        )
                        .into(),
                    ))
                }
            }
        })
    }
}

/// True for a connector error that says the service cannot be reached (a timeout, a
/// refused or unroutable connection), not for a reset or an early close.
fn unreachable(e: &ConnectorError) -> bool {
    use std::io::ErrorKind::*;
    if e.is_timeout() {
        return true;
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionRefused | HostUnreachable | NetworkUnreachable | TimedOut
            )
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// The service of a SigV4 `Authorization` header, from its credential scope
/// (`Credential=AKID/20260101/eu-west-1/ecs/aws4_request`).
pub fn signed_service(authorization: &str) -> Option<&str> {
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    scope.split('/').nth(3)
}

/// The error code of an AWS error answer, whatever the protocol: the
/// `x-amzn-errortype` header (JSON protocols), the JSON body's `__type`, or the first
/// `<Code>` of an XML body (EC2 and the other query protocols).
pub fn error_code(status: u16, headers: &Headers, body: Option<&[u8]>) -> Option<String> {
    if status < 400 {
        return None;
    }
    if let Some(t) = headers.get("x-amzn-errortype") {
        let code = t.split(':').next().unwrap_or(t).trim();
        if !code.is_empty() {
            return Some(code.to_string());
        }
    }
    let body = body?;
    let head = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    if let Some(rest) = head.split("<Code>").nth(1) {
        return rest
            .split("</Code>")
            .next()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty());
    }
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let t = json
        .get("__type")
        .or_else(|| json.get("code"))
        .and_then(|v| v.as_str())?;
    Some(t.rsplit('#').next().unwrap_or(t).to_string())
}

/// True when an answer says AWS throttled the request (HTTP 429 or a throttling code).
pub fn is_throttling(status: u16, headers: &Headers, body: Option<&[u8]>) -> bool {
    status == 429
        || error_code(status, headers, body)
            .is_some_and(|c| classify_code(&c) == ErrorCategory::Throttling)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> Headers {
        let mut h = Headers::new();
        for (k, v) in pairs {
            h.insert(*k, *v);
        }
        h
    }

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
    fn throttling_halves_the_rate_once_per_window_and_success_adds_back() {
        let bucket = TokenBucket::new(40.0);
        bucket.throttled();
        assert_eq!(bucket.rate(), 20.0);
        bucket.throttled();
        assert_eq!(bucket.rate(), 20.0, "one halving per window");
        for _ in 0..5 {
            bucket.answered();
        }
        assert_eq!(bucket.rate(), 25.0);
        for _ in 0..100 {
            bucket.answered();
        }
        assert_eq!(bucket.rate(), 40.0, "never above the configured rate");
        // Windows pass: the rate halves down to the floor and no further.
        for _ in 0..10 {
            bucket.state().last_cut = Some(Instant::now() - DECREASE_WINDOW);
            bucket.throttled();
        }
        assert_eq!(bucket.rate(), MIN_RATE);
        let wait = {
            while bucket.take().is_none() {}
            bucket.take().expect("empty")
        };
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
    }

    #[test]
    fn throttled_answers_are_recognised_in_every_protocol() {
        // JSON protocols (ECS, SSM, DynamoDB, EventBridge, …): a header.
        let json = headers(&[(
            "x-amzn-errortype",
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/",
        )]);
        assert_eq!(
            error_code(400, &json, None).as_deref(),
            Some("ThrottlingException")
        );
        assert!(is_throttling(400, &json, None));
        let dynamo = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#;
        assert!(is_throttling(400, &Headers::new(), Some(dynamo)));
        // EC2: 503 with an XML body.
        let ec2 = b"<?xml version=\"1.0\"?><Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r</RequestID></Response>";
        assert!(is_throttling(503, &Headers::new(), Some(ec2)));
        // ELBv2, ElastiCache, SNS, STS: the query protocol's ErrorResponse.
        let query = b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";
        assert!(is_throttling(400, &Headers::new(), Some(query)));
        assert!(is_throttling(429, &Headers::new(), None));
        // Not throttling: other errors, 5xx without a code, successes.
        let other =
            b"<ErrorResponse><Error><Code>TargetGroupNotFound</Code></Error></ErrorResponse>";
        assert!(!is_throttling(400, &Headers::new(), Some(other)));
        assert!(!is_throttling(
            503,
            &Headers::new(),
            Some(b"<html>oops</html>")
        ));
        assert!(!is_throttling(200, &json, None));
    }

    #[test]
    fn feedback_moves_the_rate() {
        let t = Transport::new(TransportSettings {
            calls_per_second: Some(8.0),
            response_timeout: Duration::from_secs(1),
        });
        let ec2 = b"<Response><Errors><Error><Code>RequestLimitExceeded</Code></Error></Errors></Response>";
        t.feedback(503, &Headers::new(), Some(ec2));
        assert_eq!(t.bucket().unwrap().rate(), 4.0);
        t.feedback(500, &Headers::new(), None);
        assert_eq!(t.bucket().unwrap().rate(), 4.0, "a 5xx is not a success");
        t.feedback(
            400,
            &Headers::new(),
            Some(b"{\"__type\":\"ValidationException\"}"),
        );
        assert_eq!(t.bucket().unwrap().rate(), 5.0);
    }

    #[test]
    fn the_breaker_opens_after_attempts_without_answer_and_probes_later() {
        let t = Transport::new(TransportSettings {
            calls_per_second: None,
            response_timeout: Duration::from_millis(50),
        });
        assert!(t.admit("ecs").is_ok());
        t.outcome("ecs", false);
        assert!(t.admit("ecs").is_ok(), "one failure is not an outage");
        t.outcome("ecs", false);
        let e = t.admit("ecs").unwrap_err();
        assert!(e.contains("did not answer"), "{e}");
        assert!(t.admit("ssm").is_ok(), "other services are not affected");
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.admit("ecs").is_ok(), "one probe after the timeout");
        assert!(t.admit("ecs").is_err(), "only one");
        t.outcome("ecs", true);
        assert!(t.admit("ecs").is_ok(), "an answer closes it");
    }

    #[test]
    fn refused_and_timed_out_connections_count_as_unreachable_resets_do_not() {
        let io = |kind| ConnectorError::io(Box::new(std::io::Error::from(kind)));
        assert!(unreachable(&io(std::io::ErrorKind::ConnectionRefused)));
        assert!(unreachable(&ConnectorError::timeout("slow".into())));
        assert!(!unreachable(&io(std::io::ErrorKind::ConnectionReset)));
        assert!(!unreachable(&io(std::io::ErrorKind::UnexpectedEof)));
    }

    #[test]
    fn the_service_comes_from_the_credential_scope() {
        assert_eq!(
            signed_service(
                "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/elasticloadbalancing/aws4_request, SignedHeaders=host, Signature=00"
            ),
            Some("elasticloadbalancing")
        );
        assert_eq!(signed_service("Bearer x"), None);
    }
}
