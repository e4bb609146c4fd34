//! `mooring run` against moto: drift corrected within an interval with one alert and one
//! resolved message, observe mode, rejected manifest sets, the signed webhook, /metrics,
//! SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Emulator, KillOnDrop, Receiver, describe_service, edit, emulator, fixture_copy};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "webhook-test-secret";

struct Daemon {
    port: u16,
    process: KillOnDrop,
    alerts: Receiver,
    _config: tempfile::TempDir,
}

impl Daemon {
    /// Starts `mooring run DIR` with a webhook alert sink and the webhook secret.
    fn start(emu: &Emulator, dir: &str, extra: &[&str]) -> Daemon {
        Daemon::start_with(emu, &[dir], extra)
    }

    /// Starts `mooring run SOURCE…` (a directory, or `--git URL …`).
    fn start_with(emu: &Emulator, source: &[&str], extra: &[&str]) -> Daemon {
        Daemon::start_at(emu, common::free_port(), source, extra)
    }

    /// Starts `mooring run SOURCE…` listening on `port`.
    fn start_at(emu: &Emulator, port: u16, source: &[&str], extra: &[&str]) -> Daemon {
        let alerts = Receiver::start();
        // An SNS topic in moto: Publish is real, what it received is not readable, so the
        // tests check the delivery counter.
        let topic = std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Runtime::new().unwrap().block_on(async {
                    aws_sdk_sns::Client::new(&emu.sdk_config().await)
                        .create_topic()
                        .name("mooring-alerts")
                        .send()
                        .await
                        .unwrap()
                        .topic_arn()
                        .unwrap()
                        .to_string()
                })
            })
            .join()
            .unwrap()
        });
        let config = tempfile::tempdir().unwrap();
        let file = config.path().join("mooring.yaml");
        std::fs::write(
            &file,
            format!(
                "alerts:\n  webhooks:\n    - url: {{value: '{}'}}\n  slack:\n    - webhookUrl: {{env: TEST_SLACK_URL}}\n  sns:\n    - topicArn: {topic}\nwebhook:\n  secret: {{env: TEST_WEBHOOK_SECRET}}\n",
                alerts.url
            ),
        )
        .unwrap();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["run"];
        args.extend_from_slice(source);
        // Two seconds unless the test says otherwise.
        if !extra.contains(&"--interval") {
            args.extend_from_slice(&["--interval", "2s"]);
        }
        args.extend_from_slice(&["--listen", &listen, "--config", file.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let process = KillOnDrop(
            emu.mooring_command(&args)
                .env("TEST_WEBHOOK_SECRET", SECRET)
                .env("TEST_SLACK_URL", &alerts.url)
                .spawn()
                .expect("start daemon"),
        );
        let d = Daemon {
            port,
            process,
            alerts,
            _config: config,
        };
        d.wait_for("readyz", || {
            common::http(port, "GET", "/readyz").is_ok_and(|(s, _)| s == 200)
        });
        d
    }

    fn wait_for(&self, what: &str, cond: impl Fn() -> bool) {
        let started = Instant::now();
        while !cond() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}; alerts so far: {:#?}; status: {}",
                self.alerts.json(),
                self.get("/status")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let (_, body) = common::http(self.port, "GET", path).unwrap();
        serde_json::from_str(&body).unwrap_or_default()
    }

    /// Alerts about `resource` received by the JSON webhook (Slack gets the same ones as
    /// text).
    fn alerts_for(&self, resource: &str) -> Vec<serde_json::Value> {
        self.alerts
            .json()
            .into_iter()
            .filter(|a| a["resource"] == resource && a.get("kind").is_some())
            .collect()
    }

    fn stop(mut self) {
        let pid = self.process.0.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.process.0.try_wait().unwrap() {
                assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(40),
                "daemon did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn sign(body: &str, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn desired_count(emu: &Emulator) -> i32 {
    emu.ecs()
        .await
        .describe_services()
        .cluster("test")
        .services("api")
        .send()
        .await
        .unwrap()
        .services()[0]
        .desired_count()
}

/// Waits until the fixture's service runs a task definition with `image`.
async fn wait_for_image(emu: &Emulator, image: &str) {
    let started = Instant::now();
    loop {
        let (_, td) = describe_service(emu, "test", "api").await;
        if td.container_definitions()[0].image() == Some(image) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the new image never rolled out"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn scale_out_of_band(emu: &Emulator, count: i32) {
    emu.ecs()
        .await
        .update_service()
        .cluster("test")
        .service("api")
        .desired_count(count)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn drift_is_corrected_with_one_alert_and_one_resolved_message() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let d = Daemon::start(emu, dir.path().to_str().unwrap(), &[]);
    assert!(
        d.alerts_for("Service/api").is_empty(),
        "creation is not drift"
    );

    scale_out_of_band(emu, 7).await;
    d.wait_for("the resolved message", || {
        d.alerts_for("Service/api")
            .iter()
            .any(|a| a["kind"] == "resolved")
    });
    assert_eq!(desired_count(emu).await, 2);
    // The account and region it works in, as STS said.
    let target = &d.get("/status")["target"];
    assert_eq!(target["account"], "123456789012", "{target}");
    assert_eq!(target["region"], "us-east-1", "{target}");
    let r = d.get("/status/Service/api");
    assert_eq!(r["state"], "in_sync");
    assert_eq!(r["mode"], "enforce");
    assert_eq!(r["lastDiff"][0]["field"], "desiredCount");
    let events: Vec<&str> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["what"].as_str())
        .collect();
    assert!(events.ends_with(&["applied", "in_sync"]), "{events:?}");

    // Two more intervals: still one alert and one resolved message for the episode.
    std::thread::sleep(Duration::from_secs(5));
    let alerts = d.alerts_for("Service/api");
    let kinds: Vec<&str> = alerts.iter().filter_map(|a| a["kind"].as_str()).collect();
    assert_eq!(kinds, ["drift", "resolved"], "{alerts:#?}");
    assert_eq!(alerts[0]["corrected"], true);
    assert_eq!(alerts[0]["changes"][0]["field"], "desiredCount");
    assert_eq!(alerts[0]["target"]["account"], "123456789012");
    assert!(
        alerts[0]["revision"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // Slack got readable text for both.
    let texts: Vec<String> = d
        .alerts
        .json()
        .iter()
        .filter_map(|a| a["text"].as_str().map(str::to_string))
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Service/api drifted from git (corrected)")
                && t.contains("in account 123456789012, us-east-1")
                && t.contains("• desiredCount: 7 → 2")),
        "{texts:#?}"
    );

    // /metrics is Prometheus text and counts the AWS calls.
    let (code, text) = common::http(d.port, "GET", "/metrics").unwrap();
    assert_eq!(code, 200);
    let mut samples = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line.rsplit_once(' ').expect("`name value`");
        assert!(value.parse::<f64>().is_ok(), "{line}");
        assert!(
            name.starts_with("mooring_") || name.starts_with("process_"),
            "{line}"
        );
        samples += 1;
    }
    assert!(samples > 10, "{text}");
    // A plain GET gets the classic format, which Prometheus' classic parser reads with
    // every counter typed as one; a scraper that asks gets OpenMetrics, which the strict
    // OpenMetrics parser accepts.
    let classic = common::prometheus_families(&text, false);
    let counter = |name: &str| classic.iter().any(|(n, t)| n == name && t == "counter");
    for name in [
        "mooring_aws_calls",
        "mooring_reconciles",
        "mooring_alert_deliveries",
        "process_cpu_seconds",
    ] {
        assert!(counter(name), "{name} not a counter: {classic:?}");
    }
    assert!(
        !classic
            .iter()
            .any(|(_, t)| t == "unknown" || t == "untyped"),
        "{classic:?}"
    );
    let (code, om) = common::get(
        d.port,
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )],
    )
    .unwrap();
    assert_eq!(code, 200);
    assert!(om.ends_with("# EOF\n"), "{om}");
    let families = common::prometheus_families(&om, true);
    for (name, kind) in [
        ("mooring_aws_calls", "counter"),
        ("mooring_resource_state", "gauge"),
        ("mooring_build", "info"),
        (
            "mooring_last_successful_full_pass_timestamp_seconds",
            "gauge",
        ),
        ("mooring_check_duration_seconds", "histogram"),
    ] {
        assert!(
            families.iter().any(|(n, t)| n == name && t == kind),
            "{name} {kind} not in {families:?}"
        );
    }
    assert!(
        text.contains("mooring_resource_state{kind=\"Service\",name=\"api\",state=\"in_sync\"} 1"),
        "{text}"
    );
    let describe = text
        .lines()
        .find(|l| {
            l.starts_with(
                "mooring_aws_calls_total{service=\"ECS\",operation=\"DescribeServices\",outcome=\"ok\"}",
            )
        })
        .expect("DescribeServices counted");
    assert!(describe.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap() >= 3.0);
    assert!(text.contains("mooring_resource_drifted{kind=\"Service\",name=\"api\"} 0"));
    assert!(text.contains("mooring_reconciles_total{kind=\"Service\"}"));
    let sns = text
        .lines()
        .find(|l| {
            l.starts_with("mooring_alert_deliveries_total{sink=\"sns\",outcome=\"delivered\"}")
        })
        .expect("SNS deliveries counted");
    assert!(
        sns.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap() >= 2.0,
        "{sns}"
    );

    // The git-push webhook: refused without or with a wrong signature, accepted signed.
    let body = r#"{"ref":"refs/heads/main"}"#;
    let (code, _) = common::post(d.port, "/reconcile", &[], body).unwrap();
    assert_eq!(code, 401);
    let wrong = sign(body, "not-the-secret");
    let (code, _) = common::post(
        d.port,
        "/reconcile",
        &[("X-Hub-Signature-256", &wrong)],
        body,
    )
    .unwrap();
    assert_eq!(code, 401);
    let passes = d.get("/status")["passes"].as_u64().unwrap();
    let good = sign(body, SECRET);
    let (code, _) = common::post(
        d.port,
        "/reconcile",
        &[("X-Hub-Signature-256", &good)],
        body,
    )
    .unwrap();
    assert_eq!(code, 202);
    d.wait_for("the triggered pass", || {
        d.get("/status")["passes"].as_u64().unwrap() > passes
    });

    d.stop();
}

#[tokio::test]
async fn observe_mode_reports_drift_and_changes_nothing() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    // Create the stack first; the daemon then only watches.
    let out = emu.mooring(&["apply", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let d = Daemon::start(emu, dir.path().to_str().unwrap(), &["--mode", "observe"]);
    scale_out_of_band(emu, 7).await;
    d.wait_for("the drift alert", || {
        !d.alerts_for("Service/api").is_empty()
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        desired_count(emu).await,
        7,
        "observe mode never changes AWS"
    );
    let r = d.get("/status/Service/api");
    assert_eq!(r["state"], "drifted");
    assert_eq!(r["mode"], "observe");
    let alerts = d.alerts_for("Service/api");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["kind"], "drift");
    assert_eq!(alerts[0]["corrected"], false);

    // Someone puts it back: the episode is resolved.
    scale_out_of_band(emu, 2).await;
    d.wait_for("the resolved message", || {
        d.alerts_for("Service/api").len() == 2
    });
    d.stop();
}

#[tokio::test]
async fn a_broken_manifest_set_is_rejected_and_the_last_good_one_keeps_running() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let d = Daemon::start(emu, dir.path().to_str().unwrap(), &[]);
    let revision = d.get("/status")["revision"].clone();

    // A new image together with a typo: the whole set is refused, AWS keeps the old image.
    let file = dir.path().join("service.yaml");
    edit(
        &file,
        "image: nginx:1.27",
        "image: nginx:1.28\n      imagePullPolicy: always",
    );
    d.wait_for("the manifest errors in /status", || {
        d.get("/status")["manifestErrors"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    });
    let s = d.get("/status");
    let e = &s["manifestErrors"][0];
    assert!(e["file"].as_str().unwrap().ends_with("service.yaml"));
    assert_eq!(e["line"], 23);
    assert_eq!(e["field"], "spec.taskDefinition.container.imagePullPolicy");
    assert_eq!(s["revision"], revision, "the last good set keeps running");
    d.wait_for("the rejected-set alert", || {
        d.alerts
            .json()
            .iter()
            .any(|a| a["kind"] == "manifest_rejected")
    });
    std::thread::sleep(Duration::from_secs(3));
    let (svc, _) = describe_service(emu, "test", "api").await;
    let td_arn = svc.task_definition().unwrap().to_string();
    assert!(
        td_arn.ends_with(":1"),
        "no new revision registered: {td_arn}"
    );
    let rejected = d
        .alerts
        .json()
        .iter()
        .filter(|a| a["kind"] == "manifest_rejected")
        .count();
    assert_eq!(rejected, 1, "one alert per rejected set, not one per pass");

    // Fixed: the file watch picks it up, the new image rolls out, the episode resolves.
    edit(&file, "\n      imagePullPolicy: always", "");
    d.wait_for("the fixed set", || {
        d.get("/status")["manifestErrors"]
            .as_array()
            .is_some_and(|e| e.is_empty())
            && d.get("/status")["revision"] != revision
    });
    // (Creation was an `applied` event too: ask AWS, not the event list.)
    wait_for_image(emu, "nginx:1.28").await;
    assert!(
        d.alerts
            .json()
            .iter()
            .any(|a| a["kind"] == "resolved" && a["resolves"] == "manifest_rejected")
    );
    d.stop();
}

#[tokio::test]
async fn hostile_manifest_files_are_refused_and_the_daemon_keeps_serving() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let d = Daemon::start(emu, dir.path().to_str().unwrap(), &[]);
    let revision = d.get("/status")["revision"].clone();

    // A "billion laughs" file and a FIFO that nobody ever writes to: the first used to
    // expand to gigabytes, the second to block the loop in open(2) forever.
    std::fs::copy(
        common::root().join("tests/fixtures/invalid/alias-bomb.yaml"),
        dir.path().join("bomb.yaml"),
    )
    .unwrap();
    let fifo = dir.path().join("pipe.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    d.wait_for("both files in the manifest errors", || {
        let errors = d.get("/status")["manifestErrors"].clone();
        let about = |file: &str, text: &str| {
            errors.as_array().is_some_and(|e| {
                e.iter().any(|e| {
                    e["file"].as_str().is_some_and(|f| f.ends_with(file))
                        && e["message"].as_str().is_some_and(|m| m.contains(text))
                })
            })
        };
        about("bomb.yaml", "aliases expand to more than")
            && about("pipe.yaml", "a FIFO is not a regular file")
    });
    let bomb = d.get("/status")["manifestErrors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"].as_str().unwrap().ends_with("bomb.yaml"))
        .cloned()
        .unwrap();
    assert_eq!(
        (bomb["line"].clone(), bomb["col"].clone()),
        (5.into(), 8.into())
    );
    assert_eq!(
        d.get("/status")["revision"],
        revision,
        "the last good set runs on"
    );
    // Passes go on (a FIFO read would have stopped them), and the probes answer.
    let passes = || {
        let (_, body) = common::http(d.port, "GET", "/metrics").unwrap();
        body.lines()
            .find(|l| l.starts_with("mooring_manifest_sets_rejected_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = passes();
    d.wait_for("another rejected pass", || passes() > before);
    assert_eq!(common::http(d.port, "GET", "/healthz").unwrap().0, 200);
    d.stop();
}

/// Runs git in `repo` with a fixed identity (tests only; mooring itself never shells out).
fn git(repo: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", repo)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn a_git_branch_is_followed_commit_by_commit() {
    let (_guard, emu) = emulator().await;
    let repo = tempfile::tempdir().unwrap();
    let manifests = repo.path().join("deploy/prd");
    std::fs::create_dir_all(&manifests).unwrap();
    let fixture = fixture_copy("basic");
    for f in std::fs::read_dir(fixture.path()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), manifests.join(f.file_name())).unwrap();
    }
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "first"]);
    let first = git(repo.path(), &["rev-parse", "HEAD"]);

    let work = tempfile::tempdir().unwrap();
    let url = format!("file://{}", repo.path().display());
    let d = Daemon::start_with(
        emu,
        &[
            "--git",
            &url,
            "--branch",
            "main",
            "--path",
            "deploy/prd",
            "--work-dir",
            work.path().to_str().unwrap(),
        ],
        &[],
    );
    let s = d.get("/status");
    assert_eq!(s["revision"], first.as_str());
    assert_eq!(s["source"], format!("{url}#main:deploy/prd").as_str());

    // A commit that changes the image: fetched, applied, its SHA in /status.
    edit(
        &manifests.join("service.yaml"),
        "image: nginx:1.27",
        "image: nginx:1.28",
    );
    git(repo.path(), &["commit", "-q", "-am", "new image"]);
    let second = git(repo.path(), &["rev-parse", "HEAD"]);
    d.wait_for("the new commit", || {
        d.get("/status")["revision"] == second.as_str()
    });
    // (Creation was an `applied` event too: ask AWS, not the event list.)
    wait_for_image(emu, "nginx:1.28").await;

    // A bad commit is rejected; the previous commit keeps being reconciled.
    edit(&manifests.join("service.yaml"), "cpu: 256", "cpu: 333");
    git(repo.path(), &["commit", "-q", "-am", "bad cpu"]);
    d.wait_for("the rejection", || {
        d.get("/status")["manifestErrors"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    });
    let s = d.get("/status");
    assert_eq!(s["revision"], second.as_str());
    assert!(
        s["manifestErrors"][0]["field"] == "spec.taskDefinition.cpu",
        "{}",
        s["manifestErrors"]
    );
    d.stop();
}

#[tokio::test]
async fn removed_resources_are_kept_as_orphans_and_pruned_only_when_asked() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let extra = dir.path().join("old.yaml");
    std::fs::write(
        &extra,
        "apiVersion: mooring.dev/v1alpha1
kind: SecurityGroup
metadata: {name: old}
spec:
  vpc: default
  ingress:
    - {port: 8080, cidrIp: 10.0.0.0/8}
---
apiVersion: mooring.dev/v1alpha1
kind: TargetGroup
metadata: {name: old}
spec:
  port: 8080
  vpc: default
",
    )
    .unwrap();
    let old_service = dir.path().join("old-service.yaml");
    let service = std::fs::read_to_string(dir.path().join("service.yaml")).unwrap();
    std::fs::write(
        &old_service,
        service.replace("name: api\n", "name: old-api\n"),
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stdout(&out));
    let service_active = |name: &'static str| async move {
        emu.ecs()
            .await
            .describe_services()
            .cluster("test")
            .services(name)
            .send()
            .await
            .unwrap()
            .services()
            .iter()
            .any(|s| s.status() == Some("ACTIVE"))
    };
    assert!(service_active("old-api").await);
    let ec2 = aws_sdk_ec2::Client::new(&emu.sdk_config().await);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&emu.sdk_config().await);
    let group_exists = || async {
        ec2.describe_security_groups()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("group-name")
                    .values("old")
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .security_groups()
            .len()
            == 1
    };
    let target_group_exists = || async {
        elb.describe_target_groups()
            .send()
            .await
            .unwrap()
            .target_groups()
            .iter()
            .any(|t| t.target_group_name() == Some("old"))
    };

    // Without --prune: removed from git, reported as orphaned, kept.
    let d = Daemon::start(emu, path, &[]);
    std::fs::remove_file(&extra).unwrap();
    std::fs::remove_file(&old_service).unwrap();
    d.wait_for("the orphans", || {
        d.get("/status/SecurityGroup/old")["state"] == "orphaned"
            && d.get("/status/TargetGroup/old")["state"] == "orphaned"
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(group_exists().await && target_group_exists().await);
    assert!(service_active("old-api").await);
    d.stop();

    // With --prune: what carries mooring's tags and is in no manifest goes; the rest stays.
    let d = Daemon::start(emu, path, &["--prune"]);
    d.wait_for("the prune events", || {
        ["SecurityGroup/old", "TargetGroup/old", "Service/old-api"]
            .iter()
            .all(|r| {
                d.get(&format!("/status/{r}"))["events"]
                    .as_array()
                    .is_some_and(|e| {
                        e.iter()
                            .any(|e| e["what"] == "prune" && e["detail"] == "pruned")
                    })
            })
    });
    assert!(
        !group_exists().await,
        "the orphaned security group is deleted"
    );
    assert!(
        !target_group_exists().await,
        "the orphaned target group is deleted"
    );
    assert!(
        !service_active("old-api").await,
        "the orphaned service is deleted"
    );
    assert_eq!(
        desired_count(emu).await,
        2,
        "the service in the manifests stays"
    );
    let default_group = ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values("default")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        !default_group.security_groups().is_empty(),
        "untagged groups are never touched"
    );
    d.stop();
}

/// Security groups named `name`.
async fn groups_named(emu: &Emulator, name: &str) -> usize {
    aws_sdk_ec2::Client::new(&emu.sdk_config().await)
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values(name)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .security_groups()
        .len()
}

#[tokio::test]
async fn prune_stays_inside_its_own_stack_and_never_empties_it() {
    let (_guard, emu) = emulator().await;
    let group = |stack: &str, name: &str| {
        format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroup\nmetadata: {{name: web}}\nspec:\n  groupName: {name}\n  vpc: default\n  ingress:\n    - {{port: 443, cidrIp: 10.0.0.0/8}}\n# {stack}\n"
        )
    };
    // Two stacks in one account, with the same manifest names (`SecurityGroup/web`).
    let a = fixture_copy("basic");
    std::fs::write(a.path().join("web.yaml"), group("a", "a-web")).unwrap();
    let b = tempfile::tempdir().unwrap();
    std::fs::write(
        b.path().join("stack.yaml"),
        "apiVersion: mooring.dev/v1alpha1\nkind: Stack\nmetadata: {name: other}\n",
    )
    .unwrap();
    std::fs::write(b.path().join("web.yaml"), group("b", "b-web")).unwrap();
    std::fs::write(
        b.path().join("db.yaml"),
        group("b", "b-db").replace("name: web}", "name: db}"),
    )
    .unwrap();
    for dir in [a.path(), b.path()] {
        let out = emu.mooring(&["apply", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", common::stdout(&out));
    }
    // A group made before stacks existed: tagged `SecurityGroup/web` with no stack.
    let ec2 = aws_sdk_ec2::Client::new(&emu.sdk_config().await);
    let vpc = ec2
        .describe_vpcs()
        .send()
        .await
        .unwrap()
        .vpcs()
        .iter()
        .find(|v| v.is_default() == Some(true))
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_string();
    ec2.create_security_group()
        .group_name("legacy-web")
        .description("made by an older mooring")
        .vpc_id(&vpc)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroup)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("mooring.dev/managed-by")
                        .value("mooring")
                        .build(),
                )
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("mooring.dev/resource")
                        .value("SecurityGroup/db")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();

    // Stack `other` drops `web`: only its own `web` goes.
    std::fs::remove_file(b.path().join("web.yaml")).unwrap();
    let d = Daemon::start(emu, b.path().to_str().unwrap(), &["--prune"]);
    d.wait_for("the prune of b-web", || {
        d.get("/status/SecurityGroup/web")["events"]
            .as_array()
            .is_some_and(|e| {
                e.iter()
                    .any(|e| e["what"] == "prune" && e["detail"] == "pruned")
            })
    });
    d.stop();
    assert_eq!(
        groups_named(emu, "b-web").await,
        0,
        "its own orphan is deleted"
    );
    assert_eq!(
        groups_named(emu, "a-web").await,
        1,
        "another stack's group of the same manifest name stays"
    );
    assert_eq!(
        groups_named(emu, "legacy-web").await,
        1,
        "a group without a stack tag is never pruned"
    );

    // Emptied to its stack document alone: prune refuses and deletes nothing.
    std::fs::remove_file(b.path().join("db.yaml")).unwrap();
    let d = Daemon::start(emu, b.path().to_str().unwrap(), &["--prune"]);
    d.wait_for("the refusal", || {
        d.get("/status/SecurityGroup/db")["events"]
            .as_array()
            .is_some_and(|e| {
                e.iter().any(|e| {
                    e["what"] == "prune"
                        && e["detail"].as_str().is_some_and(|t| {
                            t.contains("not pruned") && t.contains("--allow-empty-prune")
                        })
                })
            })
    });
    std::thread::sleep(Duration::from_secs(3));
    d.stop();
    assert_eq!(
        groups_named(emu, "b-db").await,
        1,
        "an emptied set prunes nothing"
    );
    assert_eq!(groups_named(emu, "a-web").await, 1);
    // Asked for explicitly, it goes.
    let d = Daemon::start(
        emu,
        b.path().to_str().unwrap(),
        &["--prune", "--allow-empty-prune"],
    );
    d.wait_for("the explicit prune", || {
        d.get("/status/SecurityGroup/db")["events"]
            .as_array()
            .is_some_and(|e| {
                e.iter()
                    .any(|e| e["what"] == "prune" && e["detail"] == "pruned")
            })
    });
    d.stop();
    assert_eq!(groups_named(emu, "b-db").await, 0);
    assert_eq!(groups_named(emu, "a-web").await, 1);
    assert_eq!(groups_named(emu, "legacy-web").await, 1);
}

/// The lease protocol against moto's DynamoDB, one request at a time (moto's conditional
/// writes are not atomic under concurrent requests).
#[tokio::test]
async fn the_lease_goes_to_one_replica_and_moves_when_it_expires() {
    use mooring::lease::{Lease, LeaseConfig};
    let (_guard, emu) = emulator().await;
    emu.lease_table().await;
    let client = aws_sdk_dynamodb::Client::new(&emu.sdk_config().await);
    let lease = |holder: &str| {
        Lease::new(
            LeaseConfig {
                table: "mooring-leases".into(),
                name: "salon".into(),
                holder: holder.into(),
                duration: Duration::from_millis(1500),
                url: None,
            },
            client.clone(),
        )
    };
    let (a, b) = (lease("a"), lease("b"));
    assert!(a.refresh().await.unwrap());
    assert!(!b.refresh().await.unwrap());
    assert_eq!(b.leadership().holder.as_deref(), Some("a"));
    assert_eq!(a.token(), Some(1));
    assert!(a.refresh().await.unwrap(), "renewal keeps it");
    assert_eq!(a.token(), Some(1), "renewal keeps the token");

    // a stops renewing (paused): after the lease time b takes over with a new token, and
    // a, waking up, is no longer leader by its own clock nor by the table.
    std::thread::sleep(Duration::from_millis(1700));
    assert!(!a.is_leader(), "a's own clock says its lease ran out");
    assert!(b.refresh().await.unwrap());
    assert_eq!(b.token(), Some(2), "the fencing token grows on takeover");
    assert!(!a.refresh().await.unwrap());
    assert_eq!(a.token(), None);

    // Released on shutdown: the next replica does not wait for expiry.
    b.release().await;
    assert!(!b.is_leader());
    assert!(a.refresh().await.unwrap());
    assert_eq!(a.token(), Some(3));

    // A missing table is a clear error.
    let lost = Lease::new(
        LeaseConfig {
            table: "no-such-table".into(),
            name: "salon".into(),
            holder: "c".into(),
            duration: Duration::from_secs(5),
            url: None,
        },
        client.clone(),
    );
    let e = lost.refresh().await.unwrap_err();
    assert!(e.to_string().contains("no-such-table"), "{e}");
}

#[tokio::test]
async fn of_two_daemons_one_applies_and_the_other_takes_over() {
    let (_guard, emu) = emulator().await;
    emu.lease_table().await;
    let dir = fixture_copy("basic");
    let path = dir.path().to_str().unwrap();
    let election = |id: &'static str| {
        [
            "--leader-election",
            "--lease-table",
            "mooring-leases",
            "--lease-duration",
            "3s",
            "--replica-id",
            id,
        ]
    };
    let a = Daemon::start(emu, path, &election("a"));
    let b = Daemon::start(emu, path, &election("b"));
    let leader_of = |d: &Daemon| d.get("/status")["leadership"]["leader"] == true;
    a.wait_for("one leader", || leader_of(&a) != leader_of(&b));
    let (leader, standby) = if leader_of(&a) { (a, b) } else { (b, a) };
    assert_eq!(standby.get("/status")["leadership"]["leader"], false);
    let (_, metrics) = common::http(standby.port, "GET", "/metrics").unwrap();
    assert!(metrics.contains("mooring_leader 0"), "{metrics}");

    scale_out_of_band(emu, 7).await;
    leader.wait_for("the correction", || {
        leader
            .alerts_for("Service/api")
            .iter()
            .any(|x| x["kind"] == "resolved")
    });
    let applied_by = |d: &Daemon| {
        d.get("/status/Service/api")["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["what"] == "applied"))
    };
    assert!(applied_by(&leader));
    assert!(!applied_by(&standby), "the standby never applies");
    assert!(
        standby.alerts_for("Service/api").is_empty(),
        "only the leader sends alerts: {:#?}",
        standby.alerts.json()
    );

    // The leader dies without releasing the lease: the standby takes over once it expires.
    let mut dead = leader;
    let _ = dead.process.0.kill();
    let _ = dead.process.0.wait();
    let killed_at = Instant::now();
    standby.wait_for("the takeover", || leader_of(&standby));
    assert!(
        killed_at.elapsed() < Duration::from_secs(3 + 3),
        "took {:?}",
        killed_at.elapsed()
    );
    assert_eq!(standby.get("/status")["leadership"]["token"], 2);
    let (_, metrics) = common::http(standby.port, "GET", "/metrics").unwrap();
    assert!(metrics.contains("mooring_leader 1"), "{metrics}");
    assert!(
        metrics.contains("mooring_leader_acquisitions_total 1"),
        "{metrics}"
    );
    scale_out_of_band(emu, 5).await;
    standby.wait_for("the new leader's correction", || applied_by(&standby));
    assert_eq!(desired_count(emu).await, 2);
    standby.stop();
}

/// Sockets the process `pid` holds open.
fn open_sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn healthz_stays_live_under_a_flood_of_idle_connections() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let d = Daemon::start(emu, dir.path().to_str().unwrap(), &[]);
    // The open-file limit the flood was reported with.
    let pid = d.process.0.id();
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=1024:1024"])
        .status()
        .unwrap();
    assert!(limited.success());
    let passes = |d: &Daemon| d.get("/status")["passes"].as_u64().unwrap();
    let before = passes(&d);

    let flood: Vec<std::net::TcpStream> = (0..1100)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap())
        .collect();
    for _ in 0..3 {
        let (status, body) = common::http(d.port, "GET", "/healthz").unwrap();
        assert_eq!((status, body.as_str()), (200, "ok\n"));
    }
    // The daemon holds at most its 256 HTTP connections, plus its listener and the pooled
    // connections of its 14 AWS clients: far below the flood of 1,100 and the limit of
    // 1,024 open files.
    let sockets = open_sockets(pid);
    assert!(sockets <= 256 + 128, "the daemon holds {sockets} sockets");
    // Reconciling goes on: passes complete, and none failed for want of file descriptors.
    d.wait_for("two passes during the flood", || passes(&d) >= before + 2);
    let status = d.get("/status").to_string();
    assert!(!status.contains("Too many open files"), "{status}");
    assert_eq!(flood.len(), 1100);
    drop(flood);
    d.stop();
}

#[test]
fn lease_table_and_leader_election_need_each_other() {
    let dir = common::root().join("tests/fixtures/basic");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mooring"))
            .arg("run")
            .arg(&dir)
            .args(args)
            .env_remove("MOORING_LEASE_TABLE")
            .env_remove("MOORING_LEADER_ELECTION")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("`mooring run {args:?}` with {env:?} started instead of refusing");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--lease-table", "locks"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--leader-election"), "{err}");
    let (code, err) = run(&["--leader-election"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--lease-table"), "{err}");
    // Through the environment, as the chart and the ECS task set them.
    let (code, err) = run(
        &[],
        &[
            ("MOORING_LEASE_TABLE", "locks"),
            ("MOORING_LEADER_ELECTION", "false"),
        ],
    );
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("leader-election"), "{err}");
}

/// The log groups of a stack, with the manifest their `mooring.dev/resource` tag names.
async fn log_groups(emu: &Emulator) -> Vec<(String, Option<String>)> {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&emu.sdk_config().await);
    let mut out = Vec::new();
    for g in logs
        .describe_log_groups()
        .send()
        .await
        .unwrap()
        .log_groups()
    {
        let name = g.log_group_name().unwrap().to_string();
        let arn = g.arn().unwrap().trim_end_matches(":*").to_string();
        let tags = logs
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .unwrap();
        let resource = tags
            .tags()
            .and_then(|t| t.get("mooring.dev/resource"))
            .cloned();
        out.push((name, resource));
    }
    out.sort();
    out
}

/// Found from outside (data loss): prune must not delete a log group a service still logs
/// to by name after its manifest went, nor a resource whose manifest was only renamed (it
/// used to be refused as another manifest's, pruned, and created again empty).
#[tokio::test]
async fn prune_spares_groups_in_use_and_renamed_manifests_keep_their_resource() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let logs = dir.path().join("logs.yaml");
    let group = |name: &str, group: &str| {
        format!(
            "apiVersion: mooring.dev/v1alpha1\nkind: LogGroup\nmetadata: {{name: {name}}}\nspec:\n  logGroupName: {group}\n  retentionInDays: 30\n"
        )
    };
    std::fs::write(
        &logs,
        format!(
            "{}---\n{}",
            group("api-logs", "/ecs/api"),
            group("audit", "/ecs/audit")
        ),
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stdout(&out));
    assert_eq!(
        log_groups(emu).await,
        [
            (
                "/ecs/api".to_string(),
                Some("LogGroup/api-logs".to_string())
            ),
            ("/ecs/audit".to_string(), Some("LogGroup/audit".to_string())),
        ]
    );

    // The service's group loses its manifest (the service still names it); the other
    // manifest is renamed. Several pruning passes later both groups are still there.
    std::fs::write(&logs, group("audit-trail", "/ecs/audit")).unwrap();
    let d = Daemon::start(emu, path, &["--prune"]);
    d.wait_for("the renamed manifest to take its group over", || {
        d.get("/status/LogGroup/audit-trail")["state"] == "in_sync"
    });
    let passes = d.get("/status")["passes"].as_u64().unwrap();
    d.wait_for("two more passes", || {
        d.get("/status")["passes"].as_u64().unwrap() >= passes + 2
    });
    assert_eq!(
        log_groups(emu).await,
        [
            (
                "/ecs/api".to_string(),
                Some("LogGroup/api-logs".to_string())
            ),
            (
                "/ecs/audit".to_string(),
                Some("LogGroup/audit-trail".to_string())
            ),
        ],
        "nothing pruned: one group in use, the other re-tagged for its new manifest"
    );
    for gone in ["LogGroup/api-logs", "LogGroup/audit"] {
        let events = d.get(&format!("/status/{gone}"))["events"].clone();
        assert!(
            !events
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["detail"] == "pruned"),
            "{gone}: {events}"
        );
    }
    d.stop();
}

#[tokio::test]
async fn mooring_status_prints_a_table_and_colour_only_where_asked() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let dir = dir.path().to_str().unwrap();
    let out = emu.mooring(&["apply", dir]);
    assert_eq!(out.status.code(), Some(0));
    let d = Daemon::start(emu, dir, &["--mode", "observe"]);
    scale_out_of_band(emu, 7).await;
    d.wait_for("the drift", || {
        d.get("/status/Service/api")["state"] == "drifted"
    });
    // The summary block of /status, and a diff only where changes are pending.
    let s = d.get("/status");
    assert_eq!(s["summary"]["resources"], 3, "{s}");
    assert_eq!(s["summary"]["byState"]["drifted"], 1, "{s}");
    assert_eq!(s["summary"]["byState"]["in_sync"], 2, "{s}");
    assert_eq!(s["summary"]["withChanges"], 1, "{s}");
    for r in s["resources"].as_array().unwrap() {
        assert_eq!(r.get("diff").is_some(), r["name"] == "api", "{r}");
    }

    let url = format!("http://127.0.0.1:{}", d.port);
    // Colour is forced on (as a terminal would get it) unless a test says otherwise.
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = emu.mooring_command(args);
        cmd.env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let piped = run(&["status", "--url", &url], &[]);
    assert_eq!(piped.status.code(), Some(0), "{}", common::stderr(&piped));
    let table = common::stdout(&piped);
    assert!(!table.contains('\u{1b}'), "{table:?}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("account 123456789012, region us-east-1 · revision sha256:"),
        "{table}"
    );
    assert!(lines[0].contains("single replica · last pass "), "{table}");
    assert!(lines[0].ends_with("observe mode"), "{table}");
    assert_eq!(lines[1], "3 resources: 2 in sync, 1 drifted", "{table}");
    let row = |kind: &str, name: &str| {
        lines
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .find(|l| l.starts_with(&format!("{kind} {name} ")))
            .unwrap_or_else(|| panic!("no {kind}/{name} row in\n{table}"))
    };
    assert_eq!(row("Service", "api"), "Service api drifted desiredCount");
    assert_eq!(row("Cluster", "test"), "Cluster test in sync");

    let forced = common::stdout(&run(&["status", "--url", &url], &[("CLICOLOR_FORCE", "1")]));
    assert!(forced.contains("\u{1b}[33mdrifted\u{1b}[0m"), "{forced:?}");
    for (args, env) in [
        (
            &["status", "--url", &url, "--no-color"][..],
            &[("CLICOLOR_FORCE", "1")][..],
        ),
        (
            &["status", "--url", &url],
            &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")][..],
        ),
    ] {
        let out = common::stdout(&run(args, env));
        assert_eq!(out, table, "{args:?} {env:?}");
    }

    // plan: the same text as before piped or with --no-color; coloured when forced.
    let plain = run(&["plan", dir], &[]);
    assert_eq!(plain.status.code(), Some(2));
    let plain = common::stdout(&plain);
    assert!(!plain.contains('\u{1b}'), "{plain:?}");
    assert!(plain.contains("\n  ~ desiredCount: 7 -> 2\n"), "{plain}");
    let coloured = common::stdout(&run(&["plan", dir], &[("CLICOLOR_FORCE", "1")]));
    assert!(
        coloured.contains("\u{1b}[33m  ~ desiredCount: 7 -> 2\u{1b}[0m"),
        "{coloured:?}"
    );
    let no_color = run(&["plan", dir, "--no-color"], &[("CLICOLOR_FORCE", "1")]);
    assert_eq!(common::stdout(&no_color), plain);

    d.stop();
    // Nobody listening: one error naming the address, exit 1.
    let down = run(&["status", "--url", &url], &[]);
    assert_eq!(down.status.code(), Some(1));
    let err = common::stderr(&down);
    assert!(
        err.starts_with(&format!("error: failed to read {url}/status: ")),
        "{err}"
    );
}

/// Requests a [`fake_leader`] received: (head, body).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A one-request-at-a-time HTTP endpoint standing in for a leader: answers 202 and keeps
/// each request's head (lower-cased header names) and body.
fn fake_leader() -> (String, Seen) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Seen::default();
    let keep = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stream.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
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
                        keep.lock()
                            .unwrap()
                            .push((head.to_ascii_lowercase(), body[..len].to_string()));
                        break;
                    }
                }
            }
            let _ = stream.write_all(
                b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (url, seen)
}

/// A standby forwards a signed `POST /reconcile` to the URL the leader wrote into the lease:
/// same body, same signature, marked as forwarded; a bad signature is refused before any
/// forwarding, and a forwarded request is never forwarded again.
#[tokio::test]
async fn a_standby_forwards_the_webhook_to_the_url_in_the_lease() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let (_guard, emu) = emulator().await;
    emu.lease_table().await;
    let (leader_url, seen) = fake_leader();
    // Another replica, `elsewhere`, holds the lease for a long time and advertises the fake.
    let far = (std::time::SystemTime::now() + Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    aws_sdk_dynamodb::Client::new(&emu.sdk_config().await)
        .put_item()
        .table_name("mooring-leases")
        .item("name", AttributeValue::S("mooring".into()))
        .item("holder", AttributeValue::S("elsewhere".into()))
        .item("token", AttributeValue::N("4".into()))
        .item("expiresAt", AttributeValue::N(far.to_string()))
        .item("url", AttributeValue::S(leader_url.clone()))
        .send()
        .await
        .unwrap();
    let dir = fixture_copy("basic");
    let port = common::free_port();
    let own = format!("http://127.0.0.1:{port}");
    let d = Daemon::start_at(
        emu,
        port,
        &[dir.path().to_str().unwrap()],
        &[
            "--leader-election",
            "--lease-table",
            "mooring-leases",
            "--replica-id",
            "standby",
            "--advertise-url",
            &own,
        ],
    );
    let leadership = d.get("/status")["leadership"].clone();
    assert_eq!(leadership["leader"], false, "{leadership}");
    assert_eq!(leadership["holder"], "elsewhere", "{leadership}");
    assert_eq!(leadership["leaderUrl"], leader_url.as_str(), "{leadership}");

    let body = r#"{"ref":"refs/heads/main","after":"0123abc"}"#;
    let (code, _) = common::post(
        d.port,
        "/reconcile",
        &[("X-Hub-Signature-256", &sign(body, "not-the-secret"))],
        body,
    )
    .unwrap();
    assert_eq!(code, 401);
    assert!(
        seen.lock().unwrap().is_empty(),
        "a bad signature is not forwarded"
    );

    let good = sign(body, SECRET);
    let (code, text) = common::post(
        d.port,
        "/reconcile",
        &[("X-Hub-Signature-256", &good)],
        body,
    )
    .unwrap();
    assert_eq!(code, 202, "{text}");
    assert!(
        text.contains("forwarded to the leader `elsewhere`"),
        "{text}"
    );
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let (head, forwarded_body) = &requests[0];
    assert!(head.starts_with("post /reconcile http/1.1"), "{head}");
    assert!(
        head.contains(&format!("x-hub-signature-256: {good}")),
        "the signature travels unchanged: {head}"
    );
    assert!(head.contains("x-mooring-forwarded: elsewhere"), "{head}");
    assert_eq!(forwarded_body, body);

    // Already forwarded once (say, by a replica with a stale lease): handled here only.
    let (code, text) = common::post(
        d.port,
        "/reconcile",
        &[("X-Hub-Signature-256", &good), ("X-Mooring-Forwarded", "x")],
        body,
    )
    .unwrap();
    assert_eq!((code, text.as_str()), (202, "reconcile scheduled\n"));
    assert_eq!(seen.lock().unwrap().len(), 1, "not forwarded twice");
    d.stop();
}

/// Two real daemons: the standby's webhook reaches the leader (which checks the signature
/// again and accepts it), and when the leader is gone the standby says so instead of
/// pretending the push was handled.
#[tokio::test]
async fn webhooks_sent_to_the_standby_reach_the_leader() {
    let (_guard, emu) = emulator().await;
    emu.lease_table().await;
    let dir = fixture_copy("basic");
    let path = dir.path().to_str().unwrap();
    let start = |id: &str| {
        let port = common::free_port();
        let url = format!("http://127.0.0.1:{port}");
        let args = [
            "--leader-election",
            "--lease-table",
            "mooring-leases",
            "--lease-duration",
            "30s",
            "--replica-id",
            id,
            "--advertise-url",
            &url,
        ];
        (Daemon::start_at(emu, port, &[path], &args), url)
    };
    let (a, a_url) = start("a");
    a.wait_for("a leads", || {
        a.get("/status")["leadership"]["leader"] == true
    });
    let (b, _) = start("b");
    b.wait_for("b reads the lease", || {
        b.get("/status")["leadership"]["leaderUrl"] == a_url.as_str()
    });
    assert!(
        a.get("/status")["leadership"].get("leaderUrl").is_none(),
        "the leader forwards to no one"
    );

    let body = r#"{"ref":"refs/heads/main"}"#;
    let good = sign(body, SECRET);
    let (code, text) = common::post(
        b.port,
        "/reconcile",
        &[("X-Hub-Signature-256", &good)],
        body,
    )
    .unwrap();
    assert_eq!(code, 202, "{text}");
    assert!(text.contains("forwarded to the leader `a`"), "{text}");
    // The leader takes it as any webhook.
    let (code, text) = common::post(
        a.port,
        "/reconcile",
        &[("X-Hub-Signature-256", &good)],
        body,
    )
    .unwrap();
    assert_eq!((code, text.as_str()), (202, "reconcile scheduled\n"));

    // The leader dies without releasing its 30 s lease: the push cannot reach it, and the
    // standby answers 502 naming where it tried.
    let mut dead = a;
    let _ = dead.process.0.kill();
    let _ = dead.process.0.wait();
    let (code, text) = common::post(
        b.port,
        "/reconcile",
        &[("X-Hub-Signature-256", &good)],
        body,
    )
    .unwrap();
    assert_eq!(code, 502, "{text}");
    assert!(
        text.contains(&format!(
            "failed to forward to the leader at {a_url}/reconcile"
        )),
        "{text}"
    );
    b.stop();
}

/// A leader that advertises no URL (an older replica, or `--advertise-url` not set): the
/// standby wakes only itself and says so, rather than claiming the leader got the push.
#[tokio::test]
async fn a_standby_without_the_leaders_url_says_the_push_waits_for_the_interval() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let (_guard, emu) = emulator().await;
    emu.lease_table().await;
    let far = (std::time::SystemTime::now() + Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    aws_sdk_dynamodb::Client::new(&emu.sdk_config().await)
        .put_item()
        .table_name("mooring-leases")
        .item("name", AttributeValue::S("mooring".into()))
        .item("holder", AttributeValue::S("old-replica".into()))
        .item("token", AttributeValue::N("9".into()))
        .item("expiresAt", AttributeValue::N(far.to_string()))
        .send()
        .await
        .unwrap();
    let dir = fixture_copy("basic");
    let d = Daemon::start(
        emu,
        dir.path().to_str().unwrap(),
        &[
            "--leader-election",
            "--lease-table",
            "mooring-leases",
            "--replica-id",
            "standby",
        ],
    );
    let leadership = d.get("/status")["leadership"].clone();
    assert_eq!(leadership["holder"], "old-replica", "{leadership}");
    assert!(leadership.get("leaderUrl").is_none(), "{leadership}");
    let body = r#"{"ref":"refs/heads/main"}"#;
    let (code, text) = common::post(
        d.port,
        "/reconcile",
        &[("X-Hub-Signature-256", &sign(body, SECRET))],
        body,
    )
    .unwrap();
    assert_eq!(code, 202, "{text}");
    assert!(
        text.contains("the leader `old-replica` advertises no URL"),
        "{text}"
    );
}

/// Deploys on moto: each deploy (the service's creation, then a new image in its
/// manifest) reaches the deploy webhook once when it starts and once when it ends, and
/// nothing else does; `/status/Service/api` keeps them; the deploy metrics parse.
#[tokio::test]
async fn each_deploy_is_announced_once_when_it_starts_and_once_when_it_ends() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let alerts = Receiver::start();
    let deploys = Receiver::start();
    // Failures only, to SNS in moto (Publish is real; the tests count deliveries).
    let topic = aws_sdk_sns::Client::new(&emu.sdk_config().await)
        .create_topic()
        .name("mooring-deploys")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let config = tempfile::tempdir().unwrap();
    let file = config.path().join("mooring.yaml");
    std::fs::write(
        &file,
        format!(
            "alerts:\n  webhooks:\n    - url: {{value: '{}'}}\ndeploys:\n  webhooks:\n    - url: {{value: '{}'}}\n  sns:\n    - topicArn: {topic}\n    - topicArn: {topic}\n      when: [{{outcomes: [failed]}}]\nexternalUrl: https://mooring.example/\n",
            alerts.url, deploys.url
        ),
    )
    .unwrap();
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let process = KillOnDrop(
        emu.mooring_command(&[
            "run",
            dir.path().to_str().unwrap(),
            "--interval",
            "2s",
            "--listen",
            &listen,
            "--config",
            file.to_str().unwrap(),
        ])
        .spawn()
        .expect("start daemon"),
    );
    let d = Daemon {
        port,
        process,
        alerts,
        _config: config,
    };
    let finished = |n: usize| {
        deploys
            .json()
            .iter()
            .filter(|m| m["outcome"] == "succeeded" || m["outcome"] == "failed")
            .count()
            >= n
    };
    d.wait_for("the creation's deploy to finish", || finished(1));
    edit(
        &dir.path().join("service.yaml"),
        "image: nginx:1.27",
        "image: nginx:1.28",
    );
    d.wait_for("the new image's deploy to finish", || finished(2));
    // A few more passes: nothing more is announced.
    std::thread::sleep(Duration::from_secs(5));
    let notices = deploys.json();
    let mut by_id: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for n in &notices {
        assert_eq!(n["event"], "deploy", "{n}");
        by_id
            .entry(n["id"].as_str().unwrap().to_string())
            .or_default()
            .push(n["outcome"].as_str().unwrap().to_string());
    }
    assert_eq!(by_id.len(), 2, "two deploys: {notices:#?}");
    for outcomes in by_id.values() {
        assert_eq!(outcomes, &["started", "succeeded"], "{notices:#?}");
    }
    let last = notices.last().unwrap();
    assert_eq!(last["service"], "api");
    assert_eq!(last["stack"], "basic");
    assert_eq!(last["fromImage"], "nginx:1.27");
    assert_eq!(last["toImage"], "nginx:1.28");
    assert_eq!(last["reason"], "manifest_change");
    assert_eq!(last["revision"], d.get("/status")["revision"]);
    assert!(last["durationSeconds"].is_number(), "{last}");
    assert_eq!(
        last["link"],
        "https://mooring.example/resources/Service/api"
    );
    assert!(
        last["toTaskDefinition"].as_str().unwrap().ends_with(":2"),
        "{last}"
    );
    assert_eq!(notices[0]["detail"], "new service");
    assert!(
        d.alerts.json().iter().all(|a| a["event"] != "deploy"),
        "alert sinks get no deploy notifications"
    );
    assert!(
        d.alerts_for("Service/api").is_empty(),
        "a change from git is a deploy, not drift: {:#?}",
        d.alerts.json()
    );

    let status = d.get("/status/Service/api");
    let kept = status["deploys"].as_array().unwrap();
    assert_eq!(kept.len(), 2, "{status}");
    assert!(kept.iter().all(|k| k["state"] == "succeeded"), "{status}");
    assert_eq!(kept[1]["toImage"], "nginx:1.28");
    assert_eq!(
        d.get("/status")["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "api")
            .unwrap()["lastDeploy"]["toImage"],
        "nginx:1.28"
    );

    let (_, text) = common::http(d.port, "GET", "/metrics").unwrap();
    assert!(
        text.contains("mooring_deploys_total{service=\"api\",outcome=\"succeeded\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("mooring_deploy_duration_seconds_count 2"),
        "{text}"
    );
    // Two SNS sinks: the one for every outcome publishes all four notices, the one for
    // failures none.
    d.wait_for("the SNS deliveries", || {
        common::http(d.port, "GET", "/metrics").is_ok_and(|(_, t)| {
            t.contains(
                "mooring_alert_deliveries_total{sink=\"deploy_sns\",outcome=\"delivered\"} 4\n",
            )
        })
    });
    let classic = common::prometheus_families(&text, false);
    for (name, kind) in [
        ("mooring_deploys", "counter"),
        ("mooring_deploy_duration_seconds", "histogram"),
        ("mooring_last_successful_deploy_timestamp_seconds", "gauge"),
    ] {
        assert!(
            classic.iter().any(|(n, t)| n == name && t == kind),
            "{name} not a {kind}: {classic:?}"
        );
    }
    d.stop();
}

#[tokio::test]
async fn a_protected_environment_prunes_nothing() {
    let (_guard, emu) = emulator().await;
    // The basic fixture as a base with one more security group, and an environment over
    // it with `protect: true`.
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    common::fixture_into("basic", &base);
    let extra = base.join("old.yaml");
    std::fs::write(
        &extra,
        "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroup\nmetadata: {name: old}\nspec:\n  vpc: default\n  ingress:\n    - {port: 8080, cidrIp: 10.0.0.0/8}\n",
    )
    .unwrap();
    let env = root.path().join("prd");
    std::fs::create_dir_all(&env).unwrap();
    std::fs::write(
        env.join("environment.yaml"),
        "apiVersion: mooring.dev/v1alpha1\nkind: Environment\nmetadata: {name: prd}\nspec:\n  bases: [../base]\n  protect: true\n",
    )
    .unwrap();
    let path = env.to_str().unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stdout(&out));
    assert_eq!(groups_named(emu, "old").await, 1);

    // The group leaves the base; even with --prune the protected environment keeps it and
    // says why.
    std::fs::remove_file(&extra).unwrap();
    let d = Daemon::start(emu, path, &["--prune"]);
    d.wait_for("the refused prune", || {
        d.get("/status/SecurityGroup/old")["events"]
            .as_array()
            .is_some_and(|e| {
                e.iter().any(|e| {
                    e["what"] == "prune"
                        && e["detail"]
                            == "not pruned: the environment `prd` is protected (`protect: true`)"
                })
            })
    });
    assert_eq!(groups_named(emu, "old").await, 1, "nothing is deleted");
    d.stop();
}

#[tokio::test]
async fn dev_prunes_only_its_own_resources_beside_prd_in_one_account() {
    let (_guard, emu) = emulator().await;
    // One base (the basic fixture) and two environments over it: dev with a name scheme
    // and its own SSM path, prd with the base's names. Each has its own `SecurityGroup/extra`.
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    common::fixture_into("basic", &base);
    let extra = "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroup\nmetadata: {name: extra}\nspec:\n  vpc: default\n  ingress:\n    - {port: 8080, cidrIp: 10.0.0.0/8}\n";
    let head = "apiVersion: mooring.dev/v1alpha1\nkind: Environment\nmetadata: {name: NAME}\nspec:\n  bases: [../base]\n";
    // (prd first: dev's service reads the base's secret parameter, which prd creates.)
    for (name, body) in [
        ("prd", "  tags: {env: prd}\n"),
        (
            "dev",
            "  names: {suffix: -dev}\n  patches:\n    ParameterSet/test-config:\n      spec: {path: /test/dev}\n",
        ),
    ] {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("environment.yaml"),
            format!("{}{body}", head.replace("NAME", name)),
        )
        .unwrap();
        std::fs::write(dir.join("extra.yaml"), extra).unwrap();
        let out = emu.mooring(&["apply", dir.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}{}",
            common::stdout(&out),
            common::stderr(&out)
        );
    }
    assert_eq!(groups_named(emu, "extra").await, 1);
    assert_eq!(groups_named(emu, "extra-dev").await, 1);

    // dev drops its `extra`; dev's daemon prunes dev's group, and prd's stays.
    let dev = root.path().join("dev");
    std::fs::remove_file(dev.join("extra.yaml")).unwrap();
    let d = Daemon::start(emu, dev.to_str().unwrap(), &["--prune"]);
    d.wait_for("the prune of extra-dev", || {
        d.get("/status/SecurityGroup/extra")["events"]
            .as_array()
            .is_some_and(|e| {
                e.iter()
                    .any(|e| e["what"] == "prune" && e["detail"] == "pruned")
            })
    });
    d.stop();
    assert_eq!(
        groups_named(emu, "extra-dev").await,
        0,
        "dev's own is pruned"
    );
    assert_eq!(groups_named(emu, "extra").await, 1, "prd's group stays");
    let out = emu.mooring(&["plan", root.path().join("prd").to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "prd still has nothing to do: {}",
        common::stdout(&out)
    );
}

/// Two environments of one base that both keep the base's names (no `names:`) resolve to
/// the same stack name. The environment ownership tag keeps them apart: prd takes over the
/// resources the base applied as a plain set made (no environment tag yet) and tags them;
/// qa then refuses prd's resources naming prd, and does not list prd's own resource as an
/// orphan of its own (its prune would delete it).
#[tokio::test]
async fn two_environments_without_a_name_scheme_do_not_share_resources() {
    let (_guard, emu) = emulator().await;
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    common::fixture_into("basic", &base);
    // Production as it ran before environments: the base applied as a plain set.
    let out = emu.mooring(&["apply", base.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stdout(&out));
    let head = "apiVersion: mooring.dev/v1alpha1\nkind: Environment\nmetadata: {name: NAME}\nspec:\n  bases: [../base]\n";
    for name in ["prd", "qa"] {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("environment.yaml"),
            format!("{}  tags: {{env: {name}}}\n", head.replace("NAME", name)),
        )
        .unwrap();
    }
    let prd = root.path().join("prd");
    std::fs::write(
        prd.join("extra.yaml"),
        "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroup\nmetadata: {name: extra}\nspec:\n  vpc: default\n",
    )
    .unwrap();
    let out = emu.mooring(&["apply", prd.to_str().unwrap()]);
    let text = common::stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", common::stderr(&out));
    assert!(
        text.contains("mooring.dev/environment"),
        "prd takes over the plain set's resources by adding its environment tag: {text}"
    );
    let out = emu.mooring(&["plan", prd.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stdout(&out));

    // qa must not take prd's cluster, parameters and service as its own...
    let qa = root.path().join("qa");
    let out = emu.mooring(&["plan", qa.to_str().unwrap()]);
    let text = common::stdout(&out);
    assert!(
        text.contains("environment `prd`"),
        "qa's plan names prd as the owner: {text}"
    );
    // ...nor prd's group as an orphan of its own.
    assert!(!text.contains("SecurityGroup/extra"), "{text}");
    let out = emu.mooring(&["apply", qa.to_str().unwrap(), "--prune"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "qa applied over prd's resources: {}",
        common::stdout(&out)
    );
    assert_eq!(groups_named(emu, "extra").await, 1, "prd's group stays");
    let out = emu.mooring(&["plan", prd.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "qa changed nothing of prd's: {}",
        common::stdout(&out)
    );
}

#[tokio::test]
async fn a_protected_environment_refuses_replacement_and_says_why() {
    let (_guard, emu) = emulator().await;
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    common::fixture_into("basic", &base);
    let web = base.join("web.yaml");
    let group = "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroup\nmetadata:\n  name: web\n  annotations: {mooring.dev/allow-replacement: \"true\"}\nspec:\n  vpc: default\n  description: first\n";
    std::fs::write(&web, group).unwrap();
    let env = root.path().join("prd");
    std::fs::create_dir_all(&env).unwrap();
    // The annotation in the base and again in a patch: protect drops both.
    std::fs::write(
        env.join("environment.yaml"),
        "apiVersion: mooring.dev/v1alpha1\nkind: Environment\nmetadata: {name: prd}\nspec:\n  bases: [../base]\n  protect: true\n  patches:\n    SecurityGroup/web:\n      metadata:\n        annotations: {mooring.dev/allow-replacement: \"true\"}\n",
    )
    .unwrap();
    let path = env.to_str().unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stdout(&out));
    // A description change replaces a security group: refused, naming the protection
    // (not asking for the annotation the environment drops).
    std::fs::write(&web, group.replace("first", "second")).unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stdout(&out));
    let text = common::stdout(&out);
    assert!(
        text.contains(
            "the environment `prd` is protected (`protect: true`): mooring replaces nothing in it"
        ),
        "{text}"
    );
    assert_eq!(groups_named(emu, "web").await, 1);
}

#[tokio::test]
async fn dev_cannot_take_prds_resources_by_an_explicit_name_or_a_shared_ssm_path() {
    let (_guard, emu) = emulator().await;
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    common::fixture_into("basic", &base);
    std::fs::write(
        base.join("extra.yaml"),
        "apiVersion: mooring.dev/v1alpha1\nkind: SecurityGroup\nmetadata: {name: extra}\nspec:\n  vpc: default\n  description: extra\n",
    )
    .unwrap();
    let head = "apiVersion: mooring.dev/v1alpha1\nkind: Environment\nmetadata: {name: NAME}\nspec:\n  bases: [../base]\n";
    let write = |name: &str, body: &str| {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("environment.yaml"),
            format!("{}{body}", head.replace("NAME", name)),
        )
        .unwrap();
        dir.to_str().unwrap().to_string()
    };
    let prd = write("prd", "  protect: true\n");
    let out = emu.mooring(&["apply", &prd]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stdout(&out));
    let dev_ssm = "  names: {suffix: -dev}\n  patches:\n    ParameterSet/test-config:\n      spec: {path: /test/dev}\n";
    // A patch naming prd's group outright: the group is prd's stack's, refused.
    let dev = write(
        "dev",
        &format!("{dev_ssm}    SecurityGroup/extra:\n      spec: {{groupName: extra}}\n"),
    );
    let out = emu.mooring(&["apply", &dev]);
    let text = common::stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "it belongs to SecurityGroup/extra of the environment `prd` of the stack `basic`"
        ),
        "{text}"
    );
    // A name scheme with the base's SSM path: prd's parameters are not dev's.
    let dev = write("dev", "  names: {suffix: -dev}\n");
    let out = emu.mooring(&["apply", &dev]);
    let text = common::stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("of the stack `basic`"), "{text}");
    // prd is as it was.
    let out = emu.mooring(&["plan", &prd]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stdout(&out));
}

/// Puts a CloudTrail-shaped event on the default bus, as the trail would for a call made
/// with `agent`.
async fn put_cloudtrail_event(emu: &Emulator, name: &str, agent: &str) {
    let detail = serde_json::json!({
        "eventSource": "ecs.amazonaws.com",
        "eventName": name,
        "userAgent": agent,
        "sourceIPAddress": "203.0.113.7",
        "userIdentity": {"type": "AssumedRole"},
        "requestParameters": {"cluster": "test", "service": "api", "desiredCount": 7},
    });
    let out = aws_sdk_eventbridge::Client::new(&emu.sdk_config().await)
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source("mooring.test.cloudtrail")
                .detail_type("AWS API Call via CloudTrail")
                .detail(detail.to_string())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_entry_count(), 0);
}

/// Issue 16: a change AWS reports as a CloudTrail event is corrected at once, long before
/// the polling interval (10 minutes here, for every kind), and mooring's own writes
/// trigger nothing.
#[tokio::test]
async fn a_change_event_corrects_drift_long_before_the_interval() {
    let (_guard, emu) = emulator().await;
    let config = emu.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = sqs
        .create_queue()
        .queue_name("mooring-events")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let eb = aws_sdk_eventbridge::Client::new(&config);
    eb.put_rule()
        .name("cloudtrail-to-mooring")
        .event_pattern(r#"{"detail-type": ["AWS API Call via CloudTrail"]}"#)
        .send()
        .await
        .unwrap();
    eb.put_targets()
        .rule("cloudtrail-to-mooring")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("mooring")
                .arn("arn:aws:sqs:us-east-1:123456789012:mooring-events")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let dir = fixture_copy("basic");
    let d = Daemon::start(
        emu,
        dir.path().to_str().unwrap(),
        &["--interval", "10m", "--events-queue", &queue],
    );
    d.wait_for("the first pass", || {
        d.get("/status")["resources"]
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r["state"] == "in_sync"))
    });
    let passes = |d: &Daemon| d.get("/status")["changeEvents"]["rechecks"].as_u64();

    // Someone scales the service by hand; CloudTrail reports it.
    scale_out_of_band(emu, 7).await;
    let changed = Instant::now();
    put_cloudtrail_event(emu, "UpdateService", "aws-cli/2.15 Python/3.11").await;
    let started = Instant::now();
    loop {
        if desired_count(emu).await == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the event did not lead to a correction; status: {}",
            d.get("/status")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "out-of-band change corrected {:?} after its event (polling interval: 10 minutes)",
        changed.elapsed()
    );
    let events = d.get("/status")["changeEvents"].clone();
    assert_eq!(events["mapped"], 1, "{events}");
    assert_eq!(events["rechecks"], 1, "{events}");
    assert!(events["lastEvent"].is_string(), "{events}");
    assert!(events.get("warning").is_none(), "{events}");

    // mooring's own write, as CloudTrail records it: counted, no re-check.
    put_cloudtrail_event(
        emu,
        "UpdateService",
        "aws-sdk-rust/1.3.9 ua/2.1 os/linux lang/rust/1.95.0 app/mooring",
    )
    .await;
    d.wait_for("the own event", || {
        d.get("/status")["changeEvents"]["own"].as_u64() == Some(1)
    });
    assert_eq!(passes(&d), Some(1), "no re-check for mooring's own write");
    let (_, metrics) = common::http(d.port, "GET", "/metrics").unwrap();
    for line in [
        "mooring_change_events_total{verdict=\"mapped\"} 1",
        "mooring_change_events_total{verdict=\"own\"} 1",
        "mooring_event_rechecks_total 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    d.stop();
}

/// Issue 16: a trail that went quiet is warned about in `/status` while the daemon waits
/// out a ten-minute interval: the consumer shows its counts after every long poll, not
/// only when a pass ends.
#[tokio::test]
async fn a_silent_trail_is_warned_about_between_passes() {
    let (_guard, emu) = emulator().await;
    let sqs = aws_sdk_sqs::Client::new(&emu.sdk_config().await);
    let queue = sqs
        .create_queue()
        .queue_name("mooring-quiet")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let dir = fixture_copy("basic");
    let d = Daemon::start(
        emu,
        dir.path().to_str().unwrap(),
        &[
            "--interval",
            "10m",
            "--events-queue",
            &queue,
            "--events-quiet",
            "1s",
        ],
    );
    d.wait_for("the warning", || {
        d.get("/status")["changeEvents"]["warning"]
            .as_str()
            .is_some_and(|w| w.starts_with("no change event for "))
    });
    let status = d.get("/status");
    assert_eq!(status["changeEvents"]["received"], 0, "{status}");
    assert!(status["changeEvents"]["lastEvent"].is_null(), "{status}");
    d.stop();
}

/// Issue 16 review finding: a standby that takes over counted the trail's silence from
/// when its process started, so a healthy trail (an event reached the old leader seconds
/// ago) was called broken at once after a failover. Silence counts from the takeover.
#[tokio::test]
async fn a_new_leader_counts_the_trail_s_silence_from_its_takeover() {
    let (_guard, emu) = emulator().await;
    emu.lease_table().await;
    let sqs = aws_sdk_sqs::Client::new(&emu.sdk_config().await);
    let queue = sqs
        .create_queue()
        .queue_name("mooring-failover")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let dir = fixture_copy("basic");
    let path = dir.path().to_str().unwrap();
    let args = |id: &'static str| {
        vec![
            "--leader-election",
            "--lease-table",
            "mooring-leases",
            "--lease-duration",
            "3s",
            "--replica-id",
            id,
            "--events-queue",
            queue.as_str(),
            "--events-quiet",
            "8s",
            "--aws-timeout",
            "3s",
        ]
    };
    let a = Daemon::start(emu, path, &args("a"));
    let b = Daemon::start(emu, path, &args("b"));
    let leader_of = |d: &Daemon| d.get("/status")["leadership"]["leader"] == true;
    a.wait_for("one leader", || leader_of(&a) != leader_of(&b));
    let (leader, standby) = if leader_of(&a) { (a, b) } else { (b, a) };
    // Both run well past --events-quiet; then an event reaches the leader.
    std::thread::sleep(Duration::from_secs(12));
    assert!(
        standby.get("/status")["changeEvents"]
            .get("warning")
            .is_none(),
        "a standby never warns: {}",
        standby.get("/status")["changeEvents"]
    );
    sqs.send_message()
        .queue_url(&queue)
        .message_body(r#"{"detail-type":"AWS API Call via CloudTrail","detail":{"eventSource":"ecs.amazonaws.com","eventName":"UpdateService","userAgent":"aws-cli/2"}}"#)
        .send()
        .await
        .unwrap();
    leader.wait_for("the event on the leader", || {
        leader.get("/status")["changeEvents"]["received"] == 1
            && leader.get("/status")["changeEvents"]
                .get("warning")
                .is_none()
    });
    let mut dead = leader;
    let _ = dead.process.0.kill();
    let _ = dead.process.0.wait();
    let killed = Instant::now();
    standby.wait_for("the takeover", || leader_of(&standby));
    let took_over = Instant::now();
    // Within --events-quiet of taking over, a new leader has not been silent for long
    // (and the trail delivered an event moments ago): no warning may show.
    while took_over.elapsed() < Duration::from_secs(7) {
        let events = standby.get("/status")["changeEvents"].clone();
        assert!(
            events.get("warning").is_none(),
            "{:?} after taking over ({:?} after the old leader got an event) the new leader warns: {events}",
            took_over.elapsed(),
            killed.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    standby.stop();
}

/// `mooring events-setup` makes the queue and the rule the daemon reads, idempotently;
/// `iam-policy --events-queue` grants reading exactly that queue.
#[tokio::test]
async fn events_setup_makes_a_queue_only_its_rule_may_send_to() {
    let (_guard, emu) = emulator().await;
    let run = || emu.mooring(&["events-setup", "--name", "mooring-change-events"]);
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let url = common::stdout(&out).trim().to_string();
    assert!(
        url.ends_with("/123456789012/mooring-change-events"),
        "{url}"
    );
    let again = run();
    assert_eq!(common::stdout(&again).trim(), url, "idempotent");

    let config = emu.sdk_config().await;
    let eb = aws_sdk_eventbridge::Client::new(&config);
    let rule = eb
        .describe_rule()
        .name("mooring-change-events")
        .send()
        .await
        .unwrap();
    let pattern: serde_json::Value = serde_json::from_str(rule.event_pattern().unwrap()).unwrap();
    assert_eq!(pattern["detail-type"][0], "AWS API Call via CloudTrail");
    assert!(
        pattern["source"]
            .as_array()
            .unwrap()
            .contains(&"aws.ecs".into())
    );
    let targets = eb
        .list_targets_by_rule()
        .rule("mooring-change-events")
        .send()
        .await
        .unwrap();
    assert_eq!(
        targets.targets()[0].arn(),
        "arn:aws:sqs:us-east-1:123456789012:mooring-change-events"
    );
    let attrs = aws_sdk_sqs::Client::new(&config)
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value = serde_json::from_str(
        attrs
            .attributes()
            .unwrap()
            .get(&aws_sdk_sqs::types::QueueAttributeName::Policy)
            .unwrap(),
    )
    .unwrap();
    let st = &policy["Statement"][0];
    assert_eq!(st["Principal"]["Service"], "events.amazonaws.com");
    assert_eq!(
        st["Condition"]["ArnEquals"]["aws:SourceArn"],
        rule.arn().unwrap()
    );

    let out = emu.mooring(&[
        "iam-policy",
        "tests/fixtures/basic",
        "--events-queue",
        "https://sqs.eu-west-1.amazonaws.com/123456789012/mooring-change-events",
    ]);
    let policy: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    let st = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "ChangeEvents")
        .unwrap();
    assert_eq!(
        st["Resource"][0],
        "arn:aws:sqs:eu-west-1:123456789012:mooring-change-events"
    );
}

/// The lease table is shared state: a `url` in it that is not what `--advertise-url`
/// accepts (scheme, host and port only) is not followed. Here it would send the signed
/// webhook to a path and query of someone's choosing (`/hook?/reconcile`).
#[tokio::test]
async fn a_standby_does_not_forward_to_a_lease_url_advertise_url_would_refuse() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let (_guard, emu) = emulator().await;
    emu.lease_table().await;
    let (elsewhere, seen) = fake_leader();
    let far = (std::time::SystemTime::now() + Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    aws_sdk_dynamodb::Client::new(&emu.sdk_config().await)
        .put_item()
        .table_name("mooring-leases")
        .item("name", AttributeValue::S("mooring".into()))
        .item("holder", AttributeValue::S("intruder".into()))
        .item("token", AttributeValue::N("7".into()))
        .item("expiresAt", AttributeValue::N(far.to_string()))
        .item("url", AttributeValue::S(format!("{elsewhere}/hook?")))
        .send()
        .await
        .unwrap();
    let dir = fixture_copy("basic");
    let d = Daemon::start(
        emu,
        dir.path().to_str().unwrap(),
        &[
            "--leader-election",
            "--lease-table",
            "mooring-leases",
            "--replica-id",
            "standby",
        ],
    );
    let leadership = d.get("/status")["leadership"].clone();
    assert_eq!(leadership["holder"], "intruder", "{leadership}");
    let body = r#"{"ref":"refs/heads/main"}"#;
    let (code, text) = common::post(
        d.port,
        "/reconcile",
        &[("X-Hub-Signature-256", &sign(body, SECRET))],
        body,
    )
    .unwrap();
    let requests = seen.lock().unwrap().clone();
    assert!(
        requests.is_empty(),
        "forwarded to the lease's path and query: {requests:?} ({code} {text})"
    );
    assert!(leadership.get("leaderUrl").is_none(), "{leadership}");
    assert_eq!(code, 202, "{text}");
    d.stop();
}

/// The other half of a followed plan: a ParameterSet whose value change the service's plan
/// follows is paused, so the pass holds the set; the service goes back to its own reads (in
/// sync) and is not rolled to a version of the secret that was never written.
#[tokio::test]
async fn a_reader_of_a_paused_parameter_set_is_not_rolled() {
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let path = dir.path().to_str().unwrap();
    let out = emu.mooring(&["apply", path]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stdout(&out));
    let (_, first) = describe_service(emu, "test", "api").await;
    let params = dir.path().join("parameters.yaml");
    edit(&params, "db/host: db.internal", "db/host: db2.internal");
    edit(
        &params,
        "  name: test-config\n",
        "  name: test-config\n  annotations: {mooring.dev/paused: \"true\"}\n",
    );
    let out = emu.mooring(&["plan", path]);
    let shown = common::stdout(&out);
    assert!(
        shown.contains("once ParameterSet/test-config is applied"),
        "the plan follows the set's change: {shown}"
    );
    let d = Daemon::start(emu, path, &[]);
    d.wait_for("a pass that holds the paused set", || {
        d.get("/status/ParameterSet/test-config")["state"] == "paused"
            && d.get("/status/Service/api")["state"] == "in_sync"
    });
    d.stop();
    let (_, after) = describe_service(emu, "test", "api").await;
    assert_eq!(after.task_definition_arn(), first.task_definition_arn());
    let value = aws_sdk_ssm::Client::new(&emu.sdk_config().await)
        .get_parameter()
        .name("/test/config/db/host")
        .send()
        .await
        .unwrap();
    let p = value.parameter().unwrap();
    assert_eq!(
        p.value(),
        Some("db.internal"),
        "the paused set wrote nothing"
    );
    assert_eq!(p.version(), 1);
}
