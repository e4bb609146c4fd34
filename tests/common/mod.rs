//! Test harness: one moto server per test binary, on a free loopback port, shared by the
//! tests of that binary one at a time (each starts with `POST /moto-api/reset`).
#![allow(dead_code)]

pub mod fault_proxy;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ecs::config::Credentials;
use tokio::sync::{Mutex, MutexGuard};

/// A running moto server.
pub struct Emulator {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    port: u16,
    // Holding the child keeps its stdin open; the wrapper shell kills moto when the test
    // process exits and stdin closes, so no server outlives the tests.
    _child: Child,
}

static EMULATOR: OnceLock<Emulator> = OnceLock::new();
static LOCK: Mutex<()> = Mutex::const_new(());

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn moto_binary() -> PathBuf {
    if let Ok(p) = std::env::var("MOORING_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    assert!(
        root().join(".venv/bin/moto_server").exists(),
        "moto is not installed: run `scripts/moto.sh install` (or set MOORING_MOTO_SERVER)"
    );
    // moto plus the CloudWatch protocol the SDK speaks (see scripts/moto_server.py).
    root().join("scripts/moto-server")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn spawn() -> Emulator {
    let port = free_port();
    let child = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill $pid"#)
        .arg(moto_binary())
        .arg(port.to_string())
        // New services report 2 running tasks and a COMPLETED rollout (moto never
        // progresses deployments on its own).
        .env("MOTO_ECS_SERVICE_RUNNING", "2")
        .stdin(Stdio::piped())
        .spawn()
        .expect("start moto");
    let started = Instant::now();
    while http(port, "GET", "/moto-api/").is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "moto did not answer on port {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Emulator {
        endpoint: format!("http://127.0.0.1:{port}"),
        port,
        _child: child,
    }
}

/// A minimal HTTP/1.1 request on loopback; returns (status, body).
pub fn http(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    request(port, method, path, &[], "")
}

/// A JSON-protocol AWS call to moto without an SDK crate for the service (tests only:
/// moto routes by the credential scope and does not check signatures).
pub fn aws_json(port: u16, service: &str, target: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to moto");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: {target}\r\nContent-Type: application/x-amz-json-1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The shared emulator, reset, with exclusive use until the guard drops.
pub async fn emulator() -> (MutexGuard<'static, ()>, &'static Emulator) {
    let guard = LOCK.lock().await;
    let emu = EMULATOR.get_or_init(spawn);
    let (status, _) = http(emu.port, "POST", "/moto-api/reset").expect("reset moto");
    assert_eq!(status, 200, "moto reset");
    (guard, emu)
}

impl Emulator {
    /// Creates the leader-election lease table `mooring-leases` (partition key `name`).
    pub async fn lease_table(&self) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        aws_sdk_dynamodb::Client::new(&self.sdk_config().await)
            .create_table()
            .table_name("mooring-leases")
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("name")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("name")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    /// The loopback port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Puts an object into moto's S3 (path style, `/bucket` creates the bucket), e.g. a
    /// nested CloudFormation template. moto routes by the credential scope; a body sent
    /// without a content type other than a form's is stored empty.
    pub fn s3_put(&self, path: &str, body: &str) {
        let (status, text) = request(
            self.port,
            "PUT",
            path,
            &[
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
                ),
                ("Content-Type", "application/octet-stream"),
                ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ],
            body,
        )
        .expect("moto answers");
        assert_eq!(status, 200, "PUT {path}: {text}");
    }

    /// Requests an ACM certificate (moto issues it at once) and returns its ARN.
    pub fn certificate(&self, domain: &str) -> String {
        let (status, body) = aws_json(
            self.port,
            "acm",
            "CertificateManager.RequestCertificate",
            &format!(r#"{{"DomainName": "{domain}"}}"#),
        );
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        v["CertificateArn"].as_str().expect("arn").to_string()
    }

    /// SDK configuration for the emulator, with dummy credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(mooring::aws::http_client())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await
    }

    /// mooring's clients, with a fresh call counter.
    pub async fn aws(&self) -> mooring::aws::Aws {
        mooring::aws::Aws::from_config(&self.sdk_config().await).expect("aws config")
    }

    /// Sets what people set by hand for the example stacks (scripts/seed-emulator.py: the
    /// required SecureStrings, the schedules' API key, ACM certificates). Returns what the
    /// script printed.
    pub fn seed_examples(&self) -> String {
        let out = Command::new(root().join(".venv/bin/python"))
            .arg(root().join("scripts/seed-emulator.py"))
            .arg(&self.endpoint)
            .env("AWS_REGION", "us-east-1")
            .output()
            .expect("run scripts/seed-emulator.py");
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    }

    /// A plain ECS client: "another client" changing things out of band.
    pub async fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.sdk_config().await)
    }

    /// Runs the mooring binary against the emulator.
    pub fn mooring(&self, args: &[&str]) -> Output {
        self.mooring_command(args).output().expect("run mooring")
    }

    /// The mooring binary as a command, environment set for the emulator.
    pub fn mooring_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mooring"));
        cmd.args(args)
            .current_dir(root())
            .env_remove("AWS_PROFILE")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "warn");
        cmd
    }
}

/// A copy of a fixture directory in a temporary directory, to edit.
pub fn fixture_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&root().join("tests/fixtures").join(name), dir.path());
    dir
}

/// Copies the fixture `name` into `dir` (created), e.g. as the base of environments.
pub fn fixture_into(name: &str, dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    copy_dir(&root().join("tests/fixtures").join(name), dir);
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Replaces `from` with `to` in `file`, failing when `from` is not there.
pub fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).expect("read");
    assert!(text.contains(from), "{} has no {from:?}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).expect("write");
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A child process (the daemon) that is killed when the test ends, passed or failed: a
/// daemon left behind would keep reconciling the shared emulator under later tests.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A POST with a body and extra headers; returns (status, body).
pub fn post(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    request(port, "POST", path, headers, body)
}

/// A GET with extra headers; returns (status, body).
pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<(u16, String)> {
    request(port, "GET", path, headers, "")
}

/// Parses Prometheus text with Prometheus' own Python parsers (PyPI `prometheus-client`,
/// installed by scripts/test.sh): `openmetrics` strictly, else the classic parser; returns
/// each family's name and type as the parser read them.
pub fn prometheus_families(text: &str, openmetrics: bool) -> Vec<(String, String)> {
    let script = if openmetrics {
        "import sys; from prometheus_client.openmetrics.parser import text_string_to_metric_families as p"
    } else {
        "import sys; from prometheus_client.parser import text_string_to_metric_families as p"
    };
    let script = format!("{script}\nfor f in p(sys.stdin.read()): print(f.name, f.type)");
    let mut child = Command::new(root().join(".venv/bin/python"))
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python from .venv (scripts/test.sh installs prometheus-client)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the parser refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// One HTTP/1.1 request on a fresh connection; returns (status, body).
fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A local HTTP endpoint standing in for Slack and alert webhooks: answers 200 to every
/// request and keeps the bodies.
pub struct Receiver {
    /// Its URL.
    pub url: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Receiver {
    /// Starts listening on a free loopback port (a thread, for the rest of the test run).
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let Ok(n) = stream.read(&mut chunk) else {
                        break None;
                    };
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if rest.len() >= len {
                            break Some(rest[..len].to_string());
                        }
                    }
                };
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
                if let Some(b) = body {
                    keep.lock().unwrap().push(b);
                }
            }
        });
        Receiver { url, bodies }
    }

    /// The JSON bodies received so far.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect()
    }
}

/// A service and the task definition it runs, as another client sees them.
pub async fn describe_service(
    emu: &Emulator,
    cluster: &str,
    service: &str,
) -> (
    aws_sdk_ecs::types::Service,
    aws_sdk_ecs::types::TaskDefinition,
) {
    let ecs = emu.ecs().await;
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .expect("describe services");
    let svc = out.services().first().cloned().expect("service exists");
    let td = ecs
        .describe_task_definition()
        .task_definition(svc.task_definition().expect("task definition"))
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .expect("describe task definition")
        .task_definition
        .expect("task definition");
    (svc, td)
}
