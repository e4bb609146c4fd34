//! The daemon's HTTP surface. Everything is read-only except `POST /reconcile`, which only
//! wakes the loop, and only for a request signed with the webhook secret.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

use super::StatusStore;
use crate::metrics::Metrics;

/// Largest request body accepted (a git-push payload is well below).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Longest a request may take, body included.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the handlers share.
#[derive(Clone)]
pub struct App {
    /// The status the loop writes.
    pub status: StatusStore,
    /// The metrics the loop updates.
    pub metrics: Arc<Metrics>,
    /// Wakes the loop for a pass now.
    pub trigger: Arc<Notify>,
    /// The git-push webhook secret; without one, `POST /reconcile` is refused.
    pub webhook_secret: Option<Arc<Vec<u8>>>,
    /// What `/healthz` checks; without it, `/healthz` only says the server answers.
    pub liveness: Option<Liveness>,
}

/// The liveness rule: the reconcile loop must start a round at least every `stuck_after`.
#[derive(Clone)]
pub struct Liveness {
    /// When the loop last started a round (Unix seconds), stored by the loop.
    pub heartbeat: Arc<AtomicU64>,
    /// How long without a round means stuck: 3 intervals plus the shutdown grace, the rule
    /// the lease renewal uses.
    pub stuck_after: Duration,
}

impl Liveness {
    /// Why the loop counts as stuck at `now` (Unix seconds), if it does.
    pub fn stuck(&self, now: u64) -> Option<String> {
        let idle = now.saturating_sub(self.heartbeat.load(Ordering::SeqCst));
        (idle > self.stuck_after.as_secs()).then(|| {
            format!(
                "reconcile loop stuck: no round started for {idle}s (limit {}s)\n",
                self.stuck_after.as_secs()
            )
        })
    }
}

/// The router: the pages `/` and `/resources/{kind}/{name}`, `/status`,
/// `/status/{kind}/{name}`, `/healthz`, `/readyz`, `/metrics`, `POST /reconcile`.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(super::page::index))
        .route("/resources/{kind}/{name}", get(super::page::resource))
        .route("/status", get(status))
        .route("/status/{kind}/{name}", get(resource))
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/reconcile", post(reconcile))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(
                    |_: tower::BoxError| async { StatusCode::REQUEST_TIMEOUT },
                ))
                .layer(tower::timeout::TimeoutLayer::new(REQUEST_TIMEOUT)),
        )
        .with_state(app)
}

async fn status(State(app): State<App>) -> Response {
    Json(app.status.snapshot()).into_response()
}

async fn resource(State(app): State<App>, Path((kind, name)): Path<(String, String)>) -> Response {
    let snapshot = app.status.snapshot();
    let Some(r) = snapshot
        .resources
        .iter()
        .find(|r| r.kind.as_str().eq_ignore_ascii_case(&kind) && r.name == name)
    else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no {kind} named {name}")})),
        )
            .into_response();
    };
    let mut body = serde_json::to_value(r).unwrap_or_default();
    body["lastDiff"] = serde_json::to_value(&r.last_diff).unwrap_or_default();
    let events = snapshot
        .events
        .get(&format!("{}/{}", r.kind, r.name))
        .map(|e| e.iter().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    body["events"] = serde_json::to_value(events).unwrap_or_default();
    if r.kind == crate::manifest::Kind::Service {
        let deploys = snapshot
            .deploys
            .get(&r.name)
            .map(|d| d.iter().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        body["deploys"] = serde_json::to_value(deploys).unwrap_or_default();
    }
    Json(body).into_response()
}

async fn healthz(State(app): State<App>) -> Response {
    let now = crate::reconcile::daemon::unix_now();
    match app.liveness.as_ref().and_then(|l| l.stuck(now)) {
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
        None => (StatusCode::OK, "ok\n").into_response(),
    }
}

async fn ready(State(app): State<App>) -> Response {
    let s = app.status.snapshot();
    if s.passes == 0 {
        (StatusCode::SERVICE_UNAVAILABLE, "first pass not finished\n").into_response()
    } else if !s.aws_reachable {
        (StatusCode::SERVICE_UNAVAILABLE, "AWS not reachable\n").into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

async fn metrics(State(app): State<App>, headers: HeaderMap) -> Response {
    // Leadership as the lease says now, not as the last renewal left it.
    if let Some(l) = app.status.leadership() {
        app.metrics.set_leader(l.leader);
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, text) = app.metrics.encode_for(accept);
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// True when `signature` (`sha256=<hex>`, GitHub's `X-Hub-Signature-256`) is the
/// HMAC-SHA256 of `body` under `secret`. Compared in constant time.
pub fn signature_valid(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hex_digest) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

async fn reconcile(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &app.webhook_secret else {
        return (
            StatusCode::FORBIDDEN,
            "no webhook secret configured: POST /reconcile is off\n",
        )
            .into_response();
    };
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    match signature {
        None => (StatusCode::UNAUTHORIZED, "missing X-Hub-Signature-256\n").into_response(),
        Some(sig) if !signature_valid(secret, &body, sig) => {
            tracing::warn!("refused a webhook call with a bad signature");
            (StatusCode::UNAUTHORIZED, "bad signature\n").into_response()
        }
        Some(sig) => {
            app.trigger.notify_one();
            forward_to_leader(&app, &headers, body, sig).await
        }
    }
}

/// A standby passes a verified webhook on to the leader (see [`crate::webhook`]); the
/// leader, a replica without leader election, or a request already forwarded once, only
/// wakes its own loop.
async fn forward_to_leader(app: &App, headers: &HeaderMap, body: Bytes, sig: &str) -> Response {
    let standby = app.status.leadership().filter(|l| !l.leader);
    let forwarded = headers.contains_key(crate::webhook::FORWARDED_HEADER);
    let Some(leadership) = standby.filter(|_| !forwarded) else {
        return (StatusCode::ACCEPTED, "reconcile scheduled\n").into_response();
    };
    let holder = leadership.holder.unwrap_or_default();
    let Some(url) = leadership.leader_url else {
        return (
            StatusCode::ACCEPTED,
            format!(
                "reconcile scheduled on this standby; the leader `{holder}` advertises no URL (--advertise-url), so it picks the change up on its next interval\n"
            ),
        )
            .into_response();
    };
    match crate::webhook::forward_reconcile(&url, body.to_vec(), sig.to_string(), holder.clone())
        .await
    {
        Ok(code) if (200..300).contains(&code) => (
            StatusCode::ACCEPTED,
            format!("reconcile scheduled; forwarded to the leader `{holder}`\n"),
        )
            .into_response(),
        Ok(code) => {
            tracing::warn!(%url, code, "the leader refused a forwarded webhook");
            (
                StatusCode::BAD_GATEWAY,
                format!(
                    "the leader `{holder}` at {url} answered {code} to the forwarded webhook\n"
                ),
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "failed to forward a webhook to the leader");
            (StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_are_checked_like_github_does() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        assert!(signature_valid(b"s3cret", body, &sign(b"s3cret", body)));
        assert!(!signature_valid(b"s3cret", body, &sign(b"other", body)));
        assert!(!signature_valid(b"s3cret", b"{}", &sign(b"s3cret", body)));
        assert!(!signature_valid(b"s3cret", body, "sha1=abc"));
        assert!(!signature_valid(b"s3cret", body, "sha256=not-hex"));
    }

    #[tokio::test]
    async fn reconcile_needs_a_valid_signature_and_wakes_the_loop() {
        let trigger = Arc::new(Notify::new());
        let app = App {
            status: StatusStore::default(),
            metrics: Default::default(),
            trigger: trigger.clone(),
            webhook_secret: Some(Arc::new(b"s3cret".to_vec())),
            liveness: None,
        };
        let call = |sig: Option<String>| {
            let mut req = Request::post("/reconcile");
            if let Some(sig) = sig {
                req = req.header("X-Hub-Signature-256", sig);
            }
            router(app.clone()).oneshot(req.body(Body::from("payload")).unwrap())
        };
        assert_eq!(call(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
        let bad = call(Some(sign(b"wrong", b"payload"))).await.unwrap();
        assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
        // Nothing was triggered by the refused calls.
        let woken = tokio::time::timeout(std::time::Duration::from_millis(20), trigger.notified());
        assert!(woken.await.is_err());
        let ok = call(Some(sign(b"s3cret", b"payload"))).await.unwrap();
        assert_eq!(ok.status(), StatusCode::ACCEPTED);
        let woken = tokio::time::timeout(std::time::Duration::from_millis(200), trigger.notified());
        assert!(woken.await.is_ok());

        let off = App {
            webhook_secret: None,
            ..app.clone()
        };
        let resp = router(off)
            .oneshot(Request::post("/reconcile").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let big = vec![b'x'; BODY_LIMIT + 1];
        let resp = router(app.clone())
            .oneshot(
                Request::post("/reconcile")
                    .header("X-Hub-Signature-256", sign(b"s3cret", &big))
                    .body(Body::from(big))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn healthz_fails_when_the_loop_has_not_started_a_round_for_too_long() {
        let now = crate::reconcile::daemon::unix_now();
        let heartbeat = Arc::new(AtomicU64::new(now));
        let app = App {
            status: StatusStore::default(),
            metrics: Default::default(),
            trigger: Arc::new(Notify::new()),
            webhook_secret: None,
            liveness: Some(Liveness {
                heartbeat: heartbeat.clone(),
                stuck_after: Duration::from_secs(95),
            }),
        };
        let get = || async {
            let resp = router(app.clone())
                .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        };
        assert_eq!(get().await, (StatusCode::OK, "ok\n".to_string()));
        // Within the limit it is still alive; past it, it is not.
        heartbeat.store(now - 90, Ordering::SeqCst);
        assert_eq!(get().await.0, StatusCode::OK);
        heartbeat.store(now - 200, Ordering::SeqCst);
        let (status, body) = get().await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.starts_with("reconcile loop stuck: no round started for 2"),
            "{body}"
        );
        assert!(body.contains("(limit 95s)"), "{body}");
        // A new round makes it live again.
        heartbeat.store(crate::reconcile::daemon::unix_now(), Ordering::SeqCst);
        assert_eq!(get().await.0, StatusCode::OK);
    }
}
