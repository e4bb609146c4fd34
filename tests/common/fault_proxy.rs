//! A fault-injecting HTTP/1.1 proxy between mooring and moto, switched from the test at
//! run time: 5xx answers, connection resets, a black hole (accept, never answer), latency,
//! lost responses (forwarded to moto, then the connection dropped: the write happened),
//! throttling in each protocol's own words, and cutting DynamoDB only. Faults can be
//! routed to one service (the SigV4 credential scope of the request). Every request that
//! reaches moto is recorded, so tests count the writes a replica made.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to inject; probabilities are per request, 0.0 to 1.0.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// An HTTP 500 with the protocol's `InternalFailure` error, not forwarded.
    pub server_error: f64,
    /// The connection closed without an answer, not forwarded.
    pub reset: f64,
    /// Every request is read and never answered while this is set.
    pub black_hole: bool,
    /// Added before forwarding each request.
    pub latency: Duration,
    /// Forwarded to moto, then the connection closed without the answer.
    pub lost_response: f64,
    /// Throttled in the protocol's words, not forwarded.
    pub throttle: f64,
    /// DynamoDB requests (`X-Amz-Target: DynamoDB_…`) get a reset, whatever `only` says.
    pub cut_dynamodb: bool,
    /// Only requests signed for this service (e.g. `ec2`, `ecs`) get the faults above.
    pub only: Option<&'static str>,
}

/// A request that reached moto.
#[derive(Debug, Clone)]
pub struct Forwarded {
    /// The signing service, e.g. `ecs`, `elasticloadbalancing`.
    pub service: String,
    /// The operation, e.g. `UpdateService`.
    pub operation: String,
    /// Not a `Describe*`/`List*`/`Get*`/… read.
    pub write: bool,
    /// When it reached the proxy (the replica sent it).
    pub at: Instant,
}

#[derive(Default)]
struct State {
    faults: Faults,
    forwarded: Vec<Forwarded>,
    /// `(fault, operation)` of every fault injected.
    injected: Vec<(&'static str, String)>,
}

/// A running proxy; stops (and drops held connections) when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (moto's port), without faults.
    pub fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (s, st) = (s.clone(), st.clone());
                        let _ = client.set_nonblocking(false);
                        std::thread::spawn(move || serve(client, upstream, &s, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy {
            endpoint,
            state,
            stop,
        }
    }

    /// Switches to these faults (for requests that arrive from now on).
    pub fn set(&self, faults: Faults) {
        self.state.lock().unwrap().faults = faults;
    }

    /// No faults any more.
    pub fn clear(&self) {
        self.set(Faults::default());
    }

    /// Every request that reached moto so far.
    pub fn forwarded(&self) -> Vec<Forwarded> {
        self.state.lock().unwrap().forwarded.clone()
    }

    /// The writes (other than DynamoDB's) that reached moto after `since`.
    pub fn writes_since(&self, since: Instant) -> Vec<String> {
        self.forwarded()
            .into_iter()
            .filter(|f| f.write && f.at > since && f.service != "dynamodb")
            .map(|f| format!("{}:{}", f.service, f.operation))
            .collect()
    }

    /// `(fault, operation)` of every fault injected so far.
    pub fn injected(&self) -> Vec<(&'static str, String)> {
        self.state.lock().unwrap().injected.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct Request {
    head: Vec<String>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn service(&self) -> String {
        self.header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(3))
            .unwrap_or_default()
            .to_string()
    }

    fn operation(&self) -> String {
        if let Some(t) = self.header("x-amz-target") {
            return t.rsplit('.').next().unwrap_or(t).to_string();
        }
        let body = String::from_utf8_lossy(&self.body);
        body.split('&')
            .find_map(|p| p.strip_prefix("Action="))
            .unwrap_or_default()
            .to_string()
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let mut req = Request {
        head,
        body: Vec::new(),
    };
    let len = req
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    req.body = vec![0; len];
    reader.read_exact(&mut req.body).ok()?;
    Some(req)
}

/// The throttling answer of the request's protocol: JSON protocols (a target header) say
/// it in `x-amzn-errortype`, EC2 with a 503 `RequestLimitExceeded`, the other query
/// protocols with a 400 `Throttling`.
fn error_answer(req: &Request, throttle: bool) -> Vec<u8> {
    let (status, headers, body) = if req.header("x-amz-target").is_some() {
        let code = if throttle {
            "ThrottlingException"
        } else {
            "InternalFailure"
        };
        (
            if throttle {
                "400 Bad Request"
            } else {
                "500 Internal Server Error"
            },
            format!("x-amzn-errortype: {code}\r\nContent-Type: application/x-amz-json-1.1\r\n"),
            format!(r#"{{"__type":"{code}","message":"injected by the fault proxy"}}"#),
        )
    } else if req.service() == "ec2" {
        let code = if throttle {
            "RequestLimitExceeded"
        } else {
            "InternalError"
        };
        (
            if throttle {
                "503 Service Unavailable"
            } else {
                "500 Internal Server Error"
            },
            "Content-Type: text/xml\r\n".to_string(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code><Message>injected by the fault proxy</Message></Error></Errors><RequestID>fault</RequestID></Response>"
            ),
        )
    } else {
        let code = if throttle {
            "Throttling"
        } else {
            "InternalFailure"
        };
        (
            if throttle {
                "400 Bad Request"
            } else {
                "500 Internal Server Error"
            },
            "Content-Type: text/xml\r\n".to_string(),
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>injected by the fault proxy</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
            ),
        )
    };
    format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Forwards one request to moto on a fresh connection and returns moto's answer, with
/// `Connection: close` (one request per client connection keeps the proxy simple).
fn forward(req: &Request, upstream: u16) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut out = Vec::new();
    out.extend_from_slice(req.head[0].as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in req.head.iter().skip(1) {
        if !h.to_ascii_lowercase().starts_with("connection:") {
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&req.body);
    up.write_all(&out)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no response head from moto"))?;
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let mut rewritten: Vec<u8> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .flat_map(|l| [l.as_bytes(), b"\r\n"].concat())
        .collect();
    rewritten.extend_from_slice(b"Connection: close\r\n\r\n");
    rewritten.extend_from_slice(&answer[split + 4..]);
    Ok(rewritten)
}

fn serve(client: TcpStream, upstream: u16, state: &Mutex<State>, stop: &AtomicBool) {
    let Ok(reader) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader);
    let Some(req) = read_request(&mut reader) else {
        return;
    };
    let arrived = Instant::now();
    let mut client = client;
    let (service, operation) = (req.service(), req.operation());
    let faults = state.lock().unwrap().faults.clone();
    let note = |fault: &'static str| {
        state
            .lock()
            .unwrap()
            .injected
            .push((fault, format!("{service}:{operation}")));
    };
    let dynamodb = req
        .header("x-amz-target")
        .is_some_and(|t| t.starts_with("DynamoDB_"));
    if faults.cut_dynamodb && dynamodb {
        note("cut_dynamodb");
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let applies = faults.only.is_none_or(|s| s == service);
    if applies && faults.black_hole {
        note("black_hole");
        while !stop.load(Ordering::SeqCst) && state.lock().unwrap().faults.black_hole {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let roll = |p: f64| applies && p > 0.0 && fastrand::f64() < p;
    if roll(faults.reset) {
        note("reset");
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if roll(faults.throttle) {
        note("throttle");
        let _ = client.write_all(&error_answer(&req, true));
        return;
    }
    if roll(faults.server_error) {
        note("server_error");
        let _ = client.write_all(&error_answer(&req, false));
        return;
    }
    if applies && !faults.latency.is_zero() {
        note("latency");
        std::thread::sleep(faults.latency);
    }
    let lose = roll(faults.lost_response);
    state.lock().unwrap().forwarded.push(Forwarded {
        write: !mooring::aws::is_read_operation(&operation),
        service: service.clone(),
        operation: operation.clone(),
        at: arrived,
    });
    let answer = forward(&req, upstream);
    if lose {
        note("lost_response");
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    match answer {
        Ok(a) => {
            let _ = client.write_all(&a);
        }
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
        }
    }
}
