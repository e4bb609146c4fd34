//! mooring under injected faults, through a proxy in front of moto
//! (tests/common/fault_proxy.rs): apply converges without duplicates after each fault,
//! an unreachable AWS fails fast and clearly, and a leader that lost its lease (cut off
//! from DynamoDB, or stopped) sends no write after the standby's takeover.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::fault_proxy::{FaultProxy, Faults};
use common::{Emulator, KillOnDrop, emulator, fixture_copy, root, stderr, stdout};

fn moto_port(emu: &Emulator) -> u16 {
    emu.endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

/// `mooring ARGS` with AWS behind `proxy`, a shorter AWS timeout.
fn mooring(emu: &Emulator, proxy: &FaultProxy, args: &[&str]) -> Output {
    emu.mooring_command(args)
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .env("MOORING_AWS_TIMEOUT", "5s")
        .output()
        .expect("run mooring")
}

const SMALL_API: &str = "manifests/examples/small-api";

/// Applies the small-api example through `faults` until it exits 0 (at most 10 applies),
/// then, without faults, expects an empty plan and exactly one of everything.
async fn converges_without_duplicates(faults: Faults, fault: &str) {
    let (_guard, emu) = emulator().await;
    // The ACM certificate the HTTPS listener names (imported, so ISSUED).
    emu.seed_examples();
    let proxy = FaultProxy::start(moto_port(emu));
    proxy.set(faults);
    let dir = root().join(SMALL_API);
    let dir = dir.to_str().unwrap();
    let mut applies = 0;
    loop {
        applies += 1;
        let out = mooring(emu, &proxy, &["apply", dir]);
        if out.status.success() {
            break;
        }
        assert!(
            applies < 10,
            "apply did not converge under {fault}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    let injected = proxy.injected();
    assert!(
        injected.iter().any(|(f, _)| *f == fault),
        "no {fault} was injected: {injected:?}"
    );
    proxy.clear();
    let plan = mooring(emu, &proxy, &["plan", dir]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "after {applies} apply(s) under {fault}, a plan without faults shows no changes: {}{}",
        stdout(&plan),
        stderr(&plan)
    );
    // A write whose answer was lost is sent again by the SDK's retry. A task definition is
    // then registered twice (revisions are cheap and immutable); CreateListener and
    // CreateLoadBalancer are idempotent in AWS (the same settings return the same one), but
    // moto adds a second listener on the same port, and a second load balancer of the same
    // name.
    let lost = |op: &str| {
        injected
            .iter()
            .filter(|(f, o)| *f == "lost_response" && o.ends_with(op))
            .count()
    };
    assert_one_of_everything(
        emu,
        1 + lost("RegisterTaskDefinition"),
        2 + lost("CreateListener"),
        1 + lost("CreateLoadBalancer"),
    )
    .await;
}

async fn assert_one_of_everything(
    emu: &Emulator,
    max_revisions: usize,
    max_listeners: usize,
    max_load_balancers: usize,
) {
    let config = emu.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    for name in ["small-alb", "small-api"] {
        let groups = ec2
            .describe_security_groups()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("group-name")
                    .values(name)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(groups.security_groups().len(), 1, "security group {name}");
    }
    let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let tgs = elbv2.describe_target_groups().send().await.unwrap();
    let tgs: Vec<_> = tgs
        .target_groups()
        .iter()
        .filter(|t| t.target_group_name() == Some("small-api"))
        .collect();
    assert_eq!(tgs.len(), 1, "one target group");
    let lbs = elbv2.describe_load_balancers().send().await.unwrap();
    let lbs: Vec<_> = lbs
        .load_balancers()
        .iter()
        .filter(|l| l.load_balancer_name() == Some("small-api"))
        .collect();
    assert!(
        !lbs.is_empty() && lbs.len() <= max_load_balancers,
        "{} load balancers, at most {max_load_balancers} expected",
        lbs.len()
    );
    let listeners = elbv2
        .describe_listeners()
        .load_balancer_arn(lbs[0].load_balancer_arn().unwrap())
        .send()
        .await
        .unwrap();
    let mut ports: Vec<_> = listeners
        .listeners()
        .iter()
        .filter_map(|l| l.port())
        .collect();
    assert!(
        ports.len() <= max_listeners,
        "{ports:?}: at most {max_listeners} listeners expected"
    );
    ports.dedup();
    ports.sort();
    ports.dedup();
    assert_eq!(ports, [80, 443], "the two listeners");
    let ecs = emu.ecs().await;
    let services = ecs
        .list_services()
        .cluster("small-prd")
        .send()
        .await
        .unwrap();
    assert_eq!(services.service_arns().len(), 1, "one service");
    let clusters = ecs.list_clusters().send().await.unwrap();
    assert_eq!(
        clusters
            .cluster_arns()
            .iter()
            .filter(|a| a.ends_with("/small-prd"))
            .count(),
        1,
        "one cluster"
    );
    let revisions = ecs
        .list_task_definitions()
        .family_prefix("small-api")
        .send()
        .await
        .unwrap();
    let n = revisions.task_definition_arns().len();
    assert!(
        (1..=max_revisions).contains(&n),
        "{n} task definition revisions, at most {max_revisions} expected"
    );
    let targets = aws_sdk_applicationautoscaling::Client::new(&config)
        .describe_scalable_targets()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    assert_eq!(targets.scalable_targets().len(), 1, "one scalable target");
}

#[tokio::test]
async fn apply_converges_through_server_errors() {
    converges_without_duplicates(
        Faults {
            server_error: 0.4,
            ..Faults::default()
        },
        "server_error",
    )
    .await;
}

#[tokio::test]
async fn apply_converges_through_connection_resets() {
    converges_without_duplicates(
        Faults {
            reset: 0.25,
            ..Faults::default()
        },
        "reset",
    )
    .await;
}

#[tokio::test]
async fn apply_converges_through_lost_responses_without_duplicates() {
    converges_without_duplicates(
        Faults {
            lost_response: 0.3,
            ..Faults::default()
        },
        "lost_response",
    )
    .await;
}

#[tokio::test]
async fn apply_converges_through_latency() {
    converges_without_duplicates(
        Faults {
            latency: Duration::from_millis(300),
            ..Faults::default()
        },
        "latency",
    )
    .await;
}

/// EC2's 503 `RequestLimitExceeded`, ELBv2's `Throttling` and the JSON protocols'
/// `ThrottlingException`, each in its own run.
#[tokio::test]
async fn apply_converges_through_throttling_in_each_protocol() {
    for service in ["ec2", "elasticloadbalancing", "ecs"] {
        converges_without_duplicates(
            Faults {
                throttle: 0.5,
                only: Some(service),
                ..Faults::default()
            },
            "throttle",
        )
        .await;
    }
}

/// Finding 8, and the operator's view: with AWS not answering, a plan asks who and where
/// first and ends with one error naming the endpoint and what to check — not one raw SDK
/// error per resource, not minutes of retries.
#[tokio::test]
async fn an_unreachable_aws_fails_the_plan_with_one_error_naming_the_endpoint() {
    let (_guard, emu) = emulator().await;
    let proxy = FaultProxy::start(moto_port(emu));
    proxy.set(Faults {
        black_hole: true,
        ..Faults::default()
    });
    let dir = root().join("tests/fixtures/basic");
    let one_error = |out: &Output, endpoint: &str| {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
        let json: serde_json::Value = serde_json::from_str(&stdout(out)).unwrap();
        assert_eq!(json["error"]["category"], "transient", "{json}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("did not answer at {endpoint}")),
            "{message}"
        );
        assert!(message.contains("AWS_ENDPOINT_URL"), "{message}");
        assert!(json.get("resources").is_none(), "{json}");
        assert!(!stderr(out).contains("DispatchFailure"), "{}", stderr(out));
    };
    let out = emu
        .mooring_command(&["plan", dir.to_str().unwrap(), "--output", "json"])
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .env("MOORING_AWS_TIMEOUT", "1s")
        .output()
        .unwrap();
    one_error(&out, &proxy.endpoint);
    // The breaker: after two unanswered attempts STS's calls fail at once, so the black
    // hole saw a couple of requests, not every attempt.
    let held = proxy
        .injected()
        .iter()
        .filter(|(f, _)| *f == "black_hole")
        .count();
    assert!(
        held <= 3,
        "{held} requests went into the black hole: {:?}",
        proxy.injected()
    );
    proxy.clear();

    // Connection refused: the same, at once.
    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let out = emu
        .mooring_command(&["plan", dir.to_str().unwrap(), "--output", "json"])
        .env("AWS_ENDPOINT_URL", &closed)
        .output()
        .unwrap();
    one_error(&out, &closed);

    // Another account than the one expected: refused before any resource is read.
    let calls_before = proxy.forwarded().len();
    let out = emu
        .mooring_command(&[
            "plan",
            dir.to_str().unwrap(),
            "--expect-account",
            "999999999999",
        ])
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("belong to account 123456789012, not 999999999999"),
        "{}",
        stderr(&out)
    );
    let asked: Vec<String> = proxy.forwarded()[calls_before..]
        .iter()
        .map(|f| format!("{}:{}", f.service, f.operation))
        .collect();
    assert_eq!(
        asked,
        ["sts:GetCallerIdentity"],
        "nothing but who and where"
    );
    // The right one: the plan names where it looked.
    let out = emu
        .mooring_command(&[
            "plan",
            dir.to_str().unwrap(),
            "--expect-account",
            "123456789012",
        ])
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .output()
        .unwrap();
    assert!(
        stdout(&out).starts_with(&format!(
            "AWS: account 123456789012, region us-east-1, endpoint {}",
            proxy.endpoint
        )),
        "{}",
        stdout(&out)
    );
}

/// A daemon started with the flags of `extra`, its AWS behind `proxy`.
struct Daemon {
    port: u16,
    process: KillOnDrop,
}

impl Daemon {
    fn start(emu: &Emulator, proxy: &FaultProxy, dir: &Path, extra: &[&str]) -> Daemon {
        let port = common::free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "run",
            dir.to_str().unwrap(),
            "--interval",
            "2s",
            "--backoff",
            "1s",
            "--listen",
            &listen,
        ];
        args.extend_from_slice(extra);
        let process = KillOnDrop(
            emu.mooring_command(&args)
                .env("AWS_ENDPOINT_URL", &proxy.endpoint)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start the daemon"),
        );
        let d = Daemon { port, process };
        d.wait_for("the HTTP server", || {
            common::http(d.port, "GET", "/healthz").is_ok()
        });
        d
    }

    fn get(&self, path: &str) -> serde_json::Value {
        common::http(self.port, "GET", path)
            .ok()
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .unwrap_or_default()
    }

    fn leads(&self) -> bool {
        self.get("/status")["leadership"]["leader"] == true
    }

    fn state_of(&self, resource: &str) -> String {
        let status = self.get("/status");
        status["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| {
                format!(
                    "{}/{}",
                    r["kind"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or("")
                ) == resource
            })
            .and_then(|r| r["state"].as_str())
            .unwrap_or("absent")
            .to_string()
    }

    fn wait_for(&self, what: &str, cond: impl Fn() -> bool) {
        let started = Instant::now();
        while !cond() {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "timed out waiting for {what}; status: {}",
                self.get("/status")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.process.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// Finding 8: a daemon whose AWS does not answer shows its resources `failed` (not
/// `pending`) after its first pass.
#[tokio::test]
async fn a_daemon_without_aws_shows_failed_after_its_first_pass() {
    let (_guard, emu) = emulator().await;
    let proxy = FaultProxy::start(moto_port(emu));
    proxy.set(Faults {
        black_hole: true,
        ..Faults::default()
    });
    let dir = fixture_copy("basic");
    let d = Daemon::start(emu, &proxy, dir.path(), &["--aws-timeout", "1s"]);
    d.wait_for("the first pass", || {
        d.get("/status")["passes"].as_u64() >= Some(1)
    });
    let status = d.get("/status");
    let resources = status["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 3, "{status}");
    for r in resources {
        assert_eq!(r["state"], "failed", "{r}");
        assert!(r["lastError"]["message"].as_str().is_some(), "{r}");
    }
    assert_eq!(status["awsReachable"], false, "{status}");
    // AWS comes back: the next pass reaches it.
    proxy.clear();
    d.wait_for("the resources to be applied", || {
        d.state_of("Service/api") == "in_sync"
    });
}

fn election(id: &'static str) -> [&'static str; 7] {
    [
        "--leader-election",
        "--lease-table",
        "mooring-leases",
        "--lease-duration",
        "3s",
        "--replica-id",
        id,
    ]
}

/// A parameter set of `n` parameters: `n` writes to apply, one resource.
fn many_parameters(dir: &Path, n: usize) {
    let mut yaml = String::from(
        "apiVersion: mooring.dev/v1alpha1\nkind: ParameterSet\nmetadata:\n  name: many\nspec:\n  path: /many\n  parameters:\n",
    );
    for i in 0..n {
        yaml.push_str(&format!("    p{i}: value-{i}\n"));
    }
    std::fs::write(dir.join("many.yaml"), yaml).unwrap();
}

/// Two daemons, each behind its own proxy: `a` leads and has applied the fixture, `b`
/// stands by.
async fn leader_and_standby(
    emu: &Emulator,
    dir: &Path,
) -> (Daemon, FaultProxy, Daemon, FaultProxy) {
    emu.lease_table().await;
    let (pa, pb) = (
        FaultProxy::start(moto_port(emu)),
        FaultProxy::start(moto_port(emu)),
    );
    let a = Daemon::start(emu, &pa, dir, &election("a"));
    a.wait_for("a to lead", || a.leads());
    let b = Daemon::start(emu, &pb, dir, &election("b"));
    b.wait_for("b to stand by", || {
        b.get("/status")["leadership"]["holder"] == "a"
    });
    a.wait_for("the fixture applied", || {
        a.state_of("Service/api") == "in_sync"
    });
    (a, pa, b, pb)
}

/// When `b` won the lease: the first lease write its proxy forwarded after `since` (a
/// standby only reads the lease).
fn takeover_at(pb: &FaultProxy, since: Instant) -> Instant {
    pb.forwarded()
        .iter()
        .find(|f| f.at > since && f.service == "dynamodb" && f.operation == "PutItem")
        .map(|f| f.at)
        .expect("b wrote the lease")
}

fn never_both_lead(a: &Daemon, b: &Daemon) {
    for _ in 0..20 {
        assert!(!(a.leads() && b.leads()), "both replicas say they lead");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(b.leads() && !a.leads());
}

/// Finding 4: a leader cut off from DynamoDB stops writing when its renewal fails; after
/// the standby's takeover it sends no write at all, though it was in the middle of a
/// long apply.
#[tokio::test]
async fn a_leader_cut_off_from_dynamodb_sends_no_write_after_the_takeover() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let (a, pa, b, pb) = leader_and_standby(emu, dir.path()).await;
    // Slow answers keep a's apply of 20 parameters going well past the takeover; a is
    // cut off from DynamoDB once it has started writing them.
    let slow = Faults {
        latency: Duration::from_millis(400),
        ..Faults::default()
    };
    pa.set(slow.clone());
    let start = Instant::now();
    many_parameters(dir.path(), 20);
    a.wait_for("a to start writing parameters", || {
        pa.writes_since(start)
            .iter()
            .any(|w| w.ends_with("PutParameter"))
    });
    pa.set(Faults {
        cut_dynamodb: true,
        ..slow
    });
    let cut = Instant::now();
    b.wait_for("b to take over", || b.leads());
    let takeover = takeover_at(&pb, cut);
    b.wait_for("b to apply the parameters", || {
        b.state_of("ParameterSet/many") == "in_sync"
    });
    let late = pa.writes_since(takeover);
    assert!(
        late.is_empty(),
        "the old leader wrote after the takeover: {late:?} (it wrote {:?} after the cut)",
        pa.writes_since(cut)
    );
    never_both_lead(&a, &b);
    assert!(
        pb.writes_since(takeover)
            .iter()
            .any(|w| w.ends_with("PutParameter")),
        "the new leader did the work"
    );
}

/// Finding 4: a leader stopped (SIGSTOP) mid-apply until the standby took over sends no
/// write after it is continued (SIGCONT): its lease ran out by its own clock.
#[tokio::test]
async fn a_stopped_leader_sends_no_write_after_it_continues() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let (a, pa, b, pb) = leader_and_standby(emu, dir.path()).await;
    pa.set(Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    });
    let start = Instant::now();
    many_parameters(dir.path(), 20);
    a.wait_for("a to start writing parameters", || {
        pa.writes_since(start)
            .iter()
            .any(|w| w.ends_with("PutParameter"))
    });
    a.signal("-STOP");
    b.wait_for("b to take over", || b.leads());
    b.wait_for("b to apply the parameters", || {
        b.state_of("ParameterSet/many") == "in_sync"
    });
    let _ = takeover_at(&pb, start);
    let passes = b.get("/status")["passes"].as_u64().unwrap_or(0);
    a.signal("-CONT");
    let resumed = Instant::now();
    a.wait_for("a to answer again, as standby", || {
        let s = a.get("/status");
        s["leadership"]["leader"] == false && s["passes"].as_u64().is_some()
    });
    // Let a finish what it was doing and run another pass.
    let a_passes = a.get("/status")["passes"].as_u64().unwrap_or(0);
    a.wait_for("another pass of a", || {
        a.get("/status")["passes"].as_u64().unwrap_or(0) > a_passes
    });
    let late = pa.writes_since(resumed);
    assert!(
        late.is_empty(),
        "the stopped leader wrote after SIGCONT: {late:?}"
    );
    never_both_lead(&a, &b);
    assert!(b.get("/status")["passes"].as_u64().unwrap_or(0) >= passes);
}

/// Not a test: `scripts/bench.sh` runs it (`--ignored`) to print how much slower a steady
/// plan gets at 30 % throttling of every request, with the default rate limit.
/// `MOORING_BENCH_DIR` names the manifests (default: the small-api example).
#[tokio::test]
#[ignore]
async fn throttled_plan_benchmark() {
    let (_guard, emu) = emulator().await;
    emu.seed_examples();
    let proxy = FaultProxy::start(moto_port(emu));
    let dir = std::env::var("MOORING_BENCH_DIR")
        .unwrap_or_else(|_| root().join(SMALL_API).to_str().unwrap().to_string());
    let run = |args: &[&str]| {
        emu.mooring_command(args)
            .env("AWS_ENDPOINT_URL", &proxy.endpoint)
            .env("MOORING_AWS_RATE_LIMIT", "50")
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    };
    let out = run(&["apply", &dir]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let median_plan = |throttle: f64| {
        proxy.set(Faults {
            throttle,
            ..Faults::default()
        });
        let mut times: Vec<f64> = (0..3)
            .map(|_| {
                let started = Instant::now();
                let out = run(&["plan", &dir]);
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "a steady plan stays steady at {throttle} throttling: {}{}",
                    stdout(&out),
                    stderr(&out)
                );
                started.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[1]
    };
    let calm = median_plan(0.0);
    let throttled = median_plan(0.3);
    let injected = proxy
        .injected()
        .iter()
        .filter(|(f, _)| *f == "throttle")
        .count();
    println!(
        "throttled plan: {calm:.2} s at 0 %, {throttled:.2} s at 30 % (ratio {:.2}; {injected} throttled answers over 3 plans)",
        throttled / calm
    );
}
