//! The HTTP server under the router, with limits `axum::serve` does not have: a time limit
//! on reading request headers (which hyper also applies to a keep-alive connection waiting
//! for its next request), an idle limit on connections that move no bytes, a cap on open
//! connections, and an accept loop that survives `EMFILE` and friends. No peer can hold the
//! process's file descriptors or starve `/healthz`.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;
use tracing::{debug, warn};

/// The server's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait for a request's headers, from the moment the connection waits for a
    /// request (just opened, or kept alive after a response).
    pub header_read: Duration,
    /// A connection that moves no byte either way for this long is closed (e.g. a client
    /// that stopped reading a response).
    pub idle: Duration,
    /// Most connections open at once. A new connection beyond it closes the oldest one with
    /// no request in progress; when every one has a request in progress, the new one is
    /// closed at once.
    pub max_connections: usize,
    /// After shutdown, how long requests in progress may take to finish.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read: Duration::from_secs(5),
            idle: Duration::from_secs(30),
            max_connections: 256,
            drain: Duration::from_secs(10),
        }
    }
}

/// Pause after an accept error that is not about one connection (`EMFILE`, `ENFILE`,
/// `ENOMEM`…), so the loop neither spins nor gives up.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// One open connection, as the accept loop sees it.
struct Entry {
    /// Requests in progress on it.
    busy: Arc<AtomicUsize>,
    /// Closes it.
    evict: Arc<Notify>,
}

/// Open connections in the order they were accepted.
#[derive(Default)]
struct Registry {
    next_id: u64,
    open: BTreeMap<u64, Entry>,
}

impl Registry {
    /// Makes room for one more connection under `max`: evicts the oldest idle one. False
    /// when every open connection has a request in progress.
    fn make_room(&mut self, max: usize) -> bool {
        if self.open.len() < max {
            return true;
        }
        let idle = self
            .open
            .iter()
            .find(|(_, e)| e.busy.load(Ordering::SeqCst) == 0)
            .map(|(id, _)| *id);
        match idle {
            Some(id) => {
                if let Some(e) = self.open.remove(&id) {
                    e.evict.notify_one();
                }
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` completes; then stops
/// accepting, lets requests in progress finish (at most `limits.drain`) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let registry = Arc::new(Mutex::new(Registry::default()));
    let closed = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if per_connection(&e) => continue,
                Err(e) => {
                    warn!(error = %e, "failed to accept an HTTP connection; pausing");
                    tokio::select! {
                        _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            },
            _ = &mut shutdown => break,
        };
        let (id, busy, evict) = {
            let mut reg = registry.lock().unwrap_or_else(|e| e.into_inner());
            if !reg.make_room(limits.max_connections) {
                debug!(
                    "HTTP connection limit reached with every connection busy: closing a new one"
                );
                drop(stream);
                continue;
            }
            let id = reg.next_id;
            reg.next_id += 1;
            let entry = Entry {
                busy: Arc::new(AtomicUsize::new(0)),
                evict: Arc::new(Notify::new()),
            };
            let handles = (entry.busy.clone(), entry.evict.clone());
            reg.open.insert(id, entry);
            (id, handles.0, handles.1)
        };
        let _ = stream.set_nodelay(true);
        let (router, builder, registry, closed, stop) = (
            router.clone(),
            builder.clone(),
            registry.clone(),
            closed.clone(),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            connection(stream, router, &builder, limits.idle, busy, evict, stop).await;
            registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .open
                .remove(&id);
            closed.notify_waiters();
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + limits.drain;
    loop {
        let wait = closed.notified();
        if registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .open
            .is_empty()
        {
            return;
        }
        if tokio::time::timeout_at(deadline, wait).await.is_err() {
            warn!("HTTP requests still in progress at shutdown were cut off");
            return;
        }
    }
}

/// Errors about one connection (it went away before it was accepted): accept the next.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Serves one connection until it ends, is evicted, idles out or the server stops.
async fn connection(
    stream: TcpStream,
    router: Router,
    builder: &hyper::server::conn::http1::Builder,
    idle: Duration,
    busy: Arc<AtomicUsize>,
    evict: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let io = Tracked {
        inner: stream,
        started,
        activity: activity.clone(),
    };
    let service = hyper::service::service_fn(move |req| {
        let guard = Busy::enter(busy.clone());
        let router = router.clone();
        async move {
            let _guard = guard;
            router.oneshot(req).await
        }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let last = started + Duration::from_millis(activity.load(Ordering::SeqCst));
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    debug!(error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            _ = evict.notified() => {
                debug!("closing an idle HTTP connection to make room for a new one");
                return;
            }
            _ = tokio::time::sleep_until(last + idle) => {
                let last = started + Duration::from_millis(activity.load(Ordering::SeqCst));
                if Instant::now() >= last + idle {
                    debug!("closing an HTTP connection idle for too long");
                    return;
                }
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Counts a request in progress on a connection for as long as it lives.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(count: Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::SeqCst);
        Busy(count)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A TCP stream that notes when bytes last moved (milliseconds after `started`).
struct Tracked {
    inner: TcpStream,
    started: Instant,
    activity: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.store(ms, Ordering::SeqCst);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream as StdStream};

    struct Server {
        addr: SocketAddr,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        done: tokio::task::JoinHandle<()>,
    }

    /// `/healthz` answers at once; `/slow` says it started (`entered`) and waits for `gate`.
    async fn start(limits: Limits, entered: Arc<Notify>, gate: Arc<Notify>) -> Server {
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/slow",
                get(move || async move {
                    entered.notify_one();
                    gate.notified().await;
                    "done"
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(serve(listener, router, limits, async move {
            let _ = rx.await;
        }));
        Server {
            addr,
            stop: Some(tx),
            done,
        }
    }

    fn limits(header_read_ms: u64, idle_ms: u64, max_connections: usize) -> Limits {
        Limits {
            header_read: Duration::from_millis(header_read_ms),
            idle: Duration::from_millis(idle_ms),
            max_connections,
            drain: Duration::from_secs(30),
        }
    }

    fn connect(addr: SocketAddr) -> StdStream {
        let s = StdStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// Sends a GET and reads one response (the bodies here are short, without chunking).
    fn get_on(s: &mut StdStream, path: &str) -> String {
        write!(s, "GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").unwrap();
        let mut buf = [0u8; 4096];
        let mut out = String::new();
        while !(out.contains("\r\n\r\n") && (out.ends_with("ok") || out.ends_with("done"))) {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        out
    }

    /// True when the server closed `s` (end of file, or a reset), within `wait`.
    fn closed_within(mut s: &StdStream, wait: Duration) -> bool {
        s.set_read_timeout(Some(wait)).unwrap();
        let mut rest = Vec::new();
        match s.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    /// Runs `f` on a blocking thread now (not when awaited).
    fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = T> {
        let task = tokio::task::spawn_blocking(f);
        async move { task.await.unwrap() }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn silent_and_kept_alive_connections_are_closed_after_the_header_timeout() {
        let server = start(
            limits(300, 60_000, 16),
            Default::default(),
            Default::default(),
        )
        .await;
        let addr = server.addr;
        let (silent_closed, response, idle_closed) = blocking(move || {
            let silent = connect(addr);
            let silent_closed = closed_within(&silent, Duration::from_secs(20));
            let mut kept = connect(addr);
            let response = get_on(&mut kept, "/healthz");
            let idle_closed = closed_within(&kept, Duration::from_secs(20));
            (silent_closed, response, idle_closed)
        })
        .await;
        assert!(silent_closed, "a silent connection stayed open");
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(idle_closed, "a kept-alive connection stayed open");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_that_moves_no_bytes_is_closed_after_the_idle_limit() {
        let server = start(
            limits(60_000, 300, 16),
            Default::default(),
            Default::default(),
        )
        .await;
        let addr = server.addr;
        let closed = blocking(move || closed_within(&connect(addr), Duration::from_secs(20)));
        assert!(closed.await, "an idle connection stayed open");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_cap_the_oldest_idle_connections_make_room() {
        let server = start(
            limits(60_000, 60_000, 4),
            Default::default(),
            Default::default(),
        )
        .await;
        let addr = server.addr;
        let (response, closed) = blocking(move || {
            let idle: Vec<StdStream> = (0..10).map(|_| connect(addr)).collect();
            let mut probe = connect(addr);
            let response = get_on(&mut probe, "/healthz");
            let closed = idle
                .iter()
                .filter(|s| closed_within(s, Duration::from_millis(500)))
                .count();
            (response, closed)
        })
        .await;
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        // 11 connections, at most 4 open: the probe is served, 7 or more idle ones closed.
        assert!(
            closed >= 7,
            "only {closed} of 10 idle connections were closed"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_every_connection_is_busy_a_new_one_is_closed_and_shutdown_drains() {
        let (entered, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let mut server = start(limits(60_000, 60_000, 1), entered.clone(), gate.clone()).await;
        let addr = server.addr;
        let slow = blocking(move || get_on(&mut connect(addr), "/slow"));
        entered.notified().await;
        let refused = blocking(move || {
            let mut s = connect(addr);
            let _ = write!(s, "GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n");
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            out
        })
        .await;
        assert!(refused.is_empty(), "{}", String::from_utf8_lossy(&refused));
        // Shutdown waits for the request in progress, which still gets its answer.
        let _ = server.stop.take().unwrap().send(());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!server.done.is_finished());
        gate.notify_one();
        let answer = slow.await;
        assert!(
            answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("done"),
            "{answer}"
        );
        tokio::time::timeout(Duration::from_secs(20), server.done)
            .await
            .expect("serve did not return after draining")
            .unwrap();
        assert!(
            StdStream::connect(addr).is_err(),
            "still accepting after shutdown"
        );
    }
}
