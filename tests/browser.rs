//! The status page in a real browser: Debian's Chromium, headless, renders the pages of a
//! `mooring run` daemon working against moto, and the test reads what a person would see.
//! Without Chromium the test says so and passes, unless MOORING_REQUIRE_BROWSER is set
//! (scripts/test.sh sets it, and installs Chromium).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{KillOnDrop, emulator, fixture_copy};

/// Chromium, from MOORING_CHROMIUM or the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOORING_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
}

/// The DOM of `url` after Chromium loaded it (a fresh profile each time).
fn dump_dom(chromium: &PathBuf, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    // Chromium stops by itself once the page has loaded; a hang fails the test instead of
    // blocking it.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(out) => out.expect("chromium output"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("chromium did not render {url} within 90 s");
        }
    };
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed on {url} ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// The text a person reads in a piece of DOM: tags dropped, entities decoded, whitespace
/// collapsed.
fn text(dom: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The rows of the resources table, as text.
fn resource_rows(dom: &str) -> Vec<String> {
    let Some(table) = dom
        .split("id=\"resources\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
    else {
        return Vec::new();
    };
    table
        .split("<tr")
        .skip(1)
        .filter(|row| row.contains("<td"))
        .map(|row| text(&format!("<tr{row}")))
        .collect()
}

#[tokio::test]
async fn a_person_sees_a_drifted_resource_in_the_browser() {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var_os("MOORING_REQUIRE_BROWSER").is_none(),
            "MOORING_REQUIRE_BROWSER is set but chromium is not installed (apt-get install chromium)"
        );
        eprintln!(
            "SKIPPED a_person_sees_a_drifted_resource_in_the_browser: chromium is not installed \
             (apt-get install chromium; scripts/test.sh does, and requires it)"
        );
        return;
    };
    let (_guard, emu) = emulator().await;
    let dir = fixture_copy("basic");
    let dir = dir.path().to_str().unwrap();
    let out = emu.mooring(&["apply", dir]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));

    // Observe mode: the drift stays for the browser to see.
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let _daemon = KillOnDrop(
        emu.mooring_command(&[
            "run",
            dir,
            "--interval",
            "2s",
            "--listen",
            &listen,
            "--mode",
            "observe",
        ])
        .spawn()
        .expect("start daemon"),
    );
    let status = |path: &str| -> serde_json::Value {
        common::http(port, "GET", path)
            .ok()
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .unwrap_or_default()
    };
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !cond() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}; status: {}",
                status("/status")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for("the first pass", &|| {
        status("/status")["summary"]["passes"].as_u64() > Some(0)
    });

    // Someone scales the service by hand.
    emu.ecs()
        .await
        .update_service()
        .cluster("test")
        .service("api")
        .desired_count(7)
        .send()
        .await
        .unwrap();
    wait_for("the drift to be seen", &|| {
        status("/status/Service/api")["state"] == "drifted"
    });

    let base = format!("http://127.0.0.1:{port}");
    let index = dump_dom(&chromium, &format!("{base}/"));
    // It reloads itself, and runs no script.
    assert!(
        index.contains(r#"<meta http-equiv="refresh" content="10">"#),
        "{index}"
    );
    assert!(!index.contains("<script"), "{index}");
    let page = text(&index);
    assert!(page.contains("Mode observe"), "{page}");
    assert!(
        page.contains("Target account 123456789012, region us-east-1"),
        "{page}"
    );
    assert!(page.contains("drifted (1)"), "{page}");
    let rows = resource_rows(&index);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let api = rows
        .iter()
        .find(|r| r.starts_with("Service api "))
        .unwrap_or_else(|| panic!("no Service/api row: {rows:#?}"));
    assert!(api.contains("Service api drifted desiredCount"), "{api}");
    assert!(
        rows.iter()
            .filter(|r| !r.starts_with("Service api "))
            .all(|r| r.contains(" in sync ")),
        "{rows:#?}"
    );

    // The state filter is a link: the drifted view holds the service alone, the in-sync
    // view everything else.
    let href = |dom: &str, label: &str| -> String {
        let at = dom
            .find(&format!(">{label}"))
            .unwrap_or_else(|| panic!("no link {label}"));
        let start = dom[..at].rfind("href=\"").unwrap() + 6;
        dom[start..]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&")
    };
    let drifted = dump_dom(&chromium, &format!("{base}{}", href(&index, "drifted (1)")));
    let rows = resource_rows(&drifted);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert!(
        rows[0].starts_with("Service api drifted desiredCount"),
        "{rows:#?}"
    );
    let in_sync = dump_dom(&chromium, &format!("{base}{}", href(&index, "in sync (2)")));
    let rows = resource_rows(&in_sync);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(
        rows.iter().all(|r| !r.starts_with("Service api")),
        "{rows:#?}"
    );

    // The service's own page, by its link: the diff, live 7 and desired 2, and the event.
    let resource = dump_dom(&chromium, &format!("{base}{}", href(&index, "api</a>")));
    let diff = resource
        .split("id=\"diff\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .map(text)
        .unwrap_or_else(|| panic!("no diff table: {resource}"));
    assert!(diff.contains("desiredCount 7 2"), "{diff}");
    let page = text(&resource);
    assert!(page.contains("Service/api drifted"), "{page}");
    assert!(
        page.contains("drifted desiredCount (observe mode)"),
        "{page}"
    );
    assert!(page.contains("Deploys"), "{page}");
}
