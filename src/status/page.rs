//! The status pages for people: `GET /` (the stack at a glance, resources filterable by
//! state with `/?state=drifted`) and `GET /resources/{kind}/{name}` (one resource: its
//! pending diff, its events, its deploys). Server-rendered HTML that refreshes itself;
//! no JavaScript. Every value is escaped by [`esc`] on its way into the page.

use std::fmt::Write as _;
use std::time::SystemTime;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::http::App;
use super::{Event, ResourceState, ResourceStatus, Status};
use crate::reconcile::FieldChange;
use crate::reconcile::diff::show;

/// How often the pages reload themselves, in seconds.
pub const REFRESH_SECONDS: u32 = 10;

/// `GET /` and `GET /?state=STATE`.
pub async fn index(State(app): State<App>, RawQuery(query): RawQuery) -> Response {
    let wanted = query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("state="))
        .filter(|s| !s.is_empty());
    let filter = match wanted {
        None => None,
        Some(s) => match ResourceState::parse(s) {
            Some(state) => Some(state),
            None => {
                let known: Vec<&str> = ResourceState::ALL.iter().map(|s| s.as_str()).collect();
                let body = format!(
                    "<p class=\"error\">unknown state <code>{}</code> (known: {})</p><p><a href=\"/\">all resources</a></p>",
                    esc(s),
                    esc(&known.join(", "))
                );
                return (
                    StatusCode::BAD_REQUEST,
                    Html(layout("mooring: unknown state", &body)),
                )
                    .into_response();
            }
        },
    };
    Html(render_index(&app.status.snapshot(), filter)).into_response()
}

/// `GET /resources/{kind}/{name}`.
pub async fn resource(
    State(app): State<App>,
    Path((kind, name)): Path<(String, String)>,
) -> Response {
    let status = app.status.snapshot();
    match status
        .resources
        .iter()
        .find(|r| r.kind.as_str().eq_ignore_ascii_case(&kind) && r.name == name)
    {
        Some(r) => Html(render_resource(&status, r)).into_response(),
        None => {
            let body = format!(
                "<p class=\"error\">no {} named <code>{}</code></p><p><a href=\"/\">all resources</a></p>",
                esc(&kind),
                esc(&name)
            );
            (
                StatusCode::NOT_FOUND,
                Html(layout("mooring: not found", &body)),
            )
                .into_response()
        }
    }
}

/// Escapes text for HTML content and double- or single-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes one path segment (everything but RFC 3986's unreserved characters).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The page of one resource.
pub fn resource_href(r: &ResourceStatus) -> String {
    format!(
        "/resources/{}/{}",
        segment(r.kind.as_str()),
        segment(&r.name)
    )
}

/// "12 s ago" for an RFC 3339 stamp, when it parses.
fn ago(stamp: &str) -> Option<String> {
    let then =
        aws_smithy_types::DateTime::from_str(stamp, aws_smithy_types::date_time::Format::DateTime)
            .ok()?;
    let now = aws_smithy_types::DateTime::from(SystemTime::now());
    let secs = now.secs().saturating_sub(then.secs()).max(0);
    Some(match secs {
        0..=119 => format!("{secs} s ago"),
        120..=7199 => format!("{} min ago", secs / 60),
        7200..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    })
}

/// A time cell: the stamp, and how long ago it was.
fn when(stamp: Option<&str>) -> String {
    match stamp {
        None => "<span class=\"dim\">never</span>".into(),
        Some(s) => match ago(s) {
            Some(a) => format!(
                "<time datetime=\"{0}\" title=\"{0}\">{1}</time>",
                esc(s),
                esc(&a)
            ),
            None => esc(s),
        },
    }
}

/// A state as a coloured badge.
fn badge(state: ResourceState) -> String {
    format!(
        "<span class=\"state {0}\">{1}</span>",
        state.as_str(),
        state.as_str().replace('_', " ")
    )
}

fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #1d2330; }}
h1 {{ font-size: 1.4rem; margin: 0 0 .8rem; }} h2 {{ font-size: 1.1rem; margin-top: 1.6rem; }}
dl.facts {{ display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; margin: 0; }}
dt {{ color: #5a6270; }} dd {{ margin: 0; }}
table {{ border-collapse: collapse; margin-top: .6rem; }}
th, td {{ text-align: left; padding: .3rem .7rem; border-bottom: 1px solid #dde1e7; vertical-align: top; }}
th {{ background: #f3f5f8; }}
code, .mono {{ font-family: ui-monospace, monospace; font-size: .9em; }}
.state {{ padding: .1rem .45rem; border-radius: .6rem; font-size: .85em; white-space: nowrap; background: #e8ebf0; }}
.in_sync {{ background: #d8f3dc; color: #1b5e20; }} .drifted {{ background: #fff0c2; color: #7a5200; }}
.failed {{ background: #fbd5d5; color: #8e1b1b; }} .blocked {{ background: #fde2c8; color: #8a3b00; }}
.applying {{ background: #d6e6ff; color: #0b3d91; }} .paused, .pending, .orphaned {{ background: #e8ebf0; color: #3d4452; }}
nav.filter a {{ margin-right: .8rem; }} nav.filter a.current {{ font-weight: bold; text-decoration: none; color: inherit; }}
.error {{ color: #8e1b1b; }} .dim {{ color: #8a909b; }}
.live {{ color: #8e1b1b; }} .desired {{ color: #1b5e20; }}
</style>
</head>
<body>
{body}
<p class="dim">Refreshes every {REFRESH_SECONDS} s. JSON: <a href="/status">/status</a> · <a href="/metrics">/metrics</a></p>
</body>
</html>
"#,
        title = esc(title),
    )
}

/// Leader, standby, or a single replica without leader election.
fn role(s: &Status) -> String {
    match &s.leadership {
        None => "single replica (no leader election)".into(),
        Some(l) if l.leader => "leader".into(),
        Some(l) => match &l.holder {
            Some(h) => format!("standby (leader: {h})"),
            None => "standby".into(),
        },
    }
}

/// The page at `/`.
pub fn render_index(s: &Status, filter: Option<ResourceState>) -> String {
    let summary = s.summarise();
    let mut b = String::new();
    b.push_str("<h1>mooring</h1>\n<dl class=\"facts\">\n");
    let mut fact = |name: &str, value: String| {
        let _ = writeln!(b, "<dt>{}</dt><dd>{value}</dd>", esc(name));
    };
    fact("Source", format!("<code>{}</code>", esc(&s.source)));
    fact(
        "Revision",
        s.revision.as_deref().map_or_else(
            || "<span class=\"dim\">none loaded yet</span>".into(),
            |r| format!("<code>{}</code>", esc(r)),
        ),
    );
    fact(
        "Target",
        s.target.as_ref().map_or_else(
            || "<span class=\"dim\">not known yet (AWS has not answered)</span>".into(),
            |t| esc(&t.to_string()),
        ),
    );
    fact("Mode", esc(&s.mode));
    fact("Role", esc(&role(s)));
    let last = match (&s.last_pass, s.last_pass_ms) {
        (Some(at), Some(ms)) => format!("{} in {ms} ms ({} passes)", when(Some(at)), s.passes),
        (at, _) => when(at.as_deref()),
    };
    fact("Last pass", last);
    if !s.aws_reachable && s.passes > 0 {
        fact(
            "AWS",
            "<span class=\"error\">not reachable in the last pass</span>".into(),
        );
    }
    fact("Version", esc(&s.version));
    b.push_str("</dl>\n");

    if !s.manifest_errors.is_empty() {
        b.push_str("<h2 class=\"error\">The newest manifests were rejected</h2>\n<p>The last good revision keeps being reconciled. Errors:</p>\n<ul>\n");
        for e in &s.manifest_errors {
            let _ = writeln!(b, "<li class=\"mono\">{}</li>", esc(&e.to_string()));
        }
        b.push_str("</ul>\n");
    }

    let _ = write!(
        b,
        "<h2>Resources</h2>\n<nav class=\"filter\">\n<a href=\"/\"{}>all ({})</a>\n",
        if filter.is_none() {
            " class=\"current\""
        } else {
            ""
        },
        summary.resources
    );
    for state in ResourceState::ALL {
        let n = summary.by_state.get(&state).copied().unwrap_or(0);
        if n == 0 && filter != Some(state) {
            continue;
        }
        let _ = writeln!(
            b,
            "<a href=\"/?state={0}\"{1}>{2} ({n})</a>",
            state.as_str(),
            if filter == Some(state) {
                " class=\"current\""
            } else {
                ""
            },
            state.as_str().replace('_', " ")
        );
    }
    b.push_str("</nav>\n");

    let shown: Vec<&ResourceStatus> = s
        .resources
        .iter()
        .filter(|r| filter.is_none_or(|f| r.state == f))
        .collect();
    if shown.is_empty() {
        let _ = writeln!(
            b,
            "<p class=\"dim\">No resources{}.</p>",
            filter.map_or_else(String::new, |f| format!(
                " in state {}",
                f.as_str().replace('_', " ")
            ))
        );
    } else {
        b.push_str("<table id=\"resources\">\n<thead><tr><th>Kind</th><th>Name</th><th>State</th><th>Pending changes</th><th>Last change</th><th>Last error</th></tr></thead>\n<tbody>\n");
        for r in shown {
            let fields: Vec<&str> = r.diff.iter().map(|c| c.field.as_str()).collect();
            let last_change = s
                .events
                .get(&format!("{}/{}", r.kind, r.name))
                .and_then(|e| e.back())
                .map(|e| e.at.as_str());
            let _ = writeln!(
                b,
                "<tr data-state=\"{state}\"><td>{kind}</td><td><a href=\"{href}\">{name}</a></td><td>{badge}</td><td class=\"mono\">{fields}</td><td>{change}</td><td class=\"error\">{error}</td></tr>",
                state = r.state.as_str(),
                kind = esc(r.kind.as_str()),
                href = esc(&resource_href(r)),
                name = esc(&r.name),
                badge = badge(r.state),
                fields = esc(&fields.join(", ")),
                change = when(last_change),
                error = r
                    .last_error
                    .as_ref()
                    .map(|e| esc(&format!("{} ({})", e.message, e.category)))
                    .unwrap_or_default(),
            );
        }
        b.push_str("</tbody>\n</table>\n");
    }
    layout("mooring status", &b)
}

/// A diff as a table.
fn diff_table(b: &mut String, id: &str, changes: &[FieldChange]) {
    let _ = writeln!(
        b,
        "<table id=\"{id}\">\n<thead><tr><th>Field</th><th>Live</th><th>Desired</th><th>Note</th></tr></thead>\n<tbody>"
    );
    for c in changes {
        let _ = writeln!(
            b,
            "<tr><td class=\"mono\">{}</td><td class=\"mono live\">{}</td><td class=\"mono desired\">{}</td><td>{}</td></tr>",
            esc(&c.field),
            esc(&show(&c.live)),
            esc(&show(&c.desired)),
            esc(c.note.as_deref().unwrap_or_default())
        );
    }
    b.push_str("</tbody>\n</table>\n");
}

/// The page of one resource.
pub fn render_resource(s: &Status, r: &ResourceStatus) -> String {
    let title = format!("{}/{}", r.kind, r.name);
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<p><a href=\"/\">← all resources</a></p>\n<h1>{} {}</h1>\n<dl class=\"facts\">",
        esc(&title),
        badge(r.state)
    );
    let mut fact = |name: &str, value: String| {
        let _ = writeln!(b, "<dt>{}</dt><dd>{value}</dd>", esc(name));
    };
    fact(
        "AWS ID",
        if r.aws_id.is_empty() {
            "<span class=\"dim\">not created yet</span>".into()
        } else {
            format!("<code>{}</code>", esc(&r.aws_id))
        },
    );
    fact("Mode", esc(&r.mode));
    fact("Last checked", when(r.last_checked.as_deref()));
    fact("Last applied", when(r.last_applied.as_deref()));
    fact("Last drifted", when(r.last_drifted.as_deref()));
    if let Some(h) = r.held {
        fact("Left in place because", esc(h.describe()));
    }
    if let Some(e) = &r.last_error {
        fact(
            "Last error",
            format!(
                "<span class=\"error\">{}</span>",
                esc(&format!("{} ({})", e.message, e.category))
            ),
        );
    }
    fact("Revision", esc(s.revision.as_deref().unwrap_or("none")));
    b.push_str("</dl>\n<h2>Current diff</h2>\n");
    if r.diff.is_empty() {
        b.push_str("<p id=\"no-diff\">No pending changes: live matches the manifest.</p>\n");
    } else {
        diff_table(&mut b, "diff", &r.diff);
    }
    if !r.last_diff.is_empty() && r.last_diff != r.diff {
        let _ = writeln!(
            b,
            "<h2>Last difference seen</h2>\n<p class=\"dim\">{}</p>",
            when(r.last_drifted.as_deref())
        );
        diff_table(&mut b, "last-diff", &r.last_diff);
    }

    b.push_str("<h2>Events</h2>\n");
    let events: Vec<&Event> = s
        .events
        .get(&title)
        .map(|e| e.iter().rev().collect())
        .unwrap_or_default();
    if events.is_empty() {
        b.push_str("<p class=\"dim\">No events yet.</p>\n");
    } else {
        b.push_str("<table id=\"events\">\n<thead><tr><th>When</th><th>What</th><th>Detail</th></tr></thead>\n<tbody>\n");
        for e in events {
            let _ = writeln!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                when(Some(&e.at)),
                esc(&e.what.replace('_', " ")),
                esc(&e.detail)
            );
        }
        b.push_str("</tbody>\n</table>\n");
    }

    // Deploys: what the status store knows of them, which today is the service rollout.
    b.push_str("<h2>Deploys</h2>\n");
    match &r.rollout {
        None => b.push_str("<p class=\"dim\">No deploys recorded.</p>\n"),
        Some(ro) => {
            let _ = writeln!(
                b,
                "<table id=\"deploys\">\n<thead><tr><th>Rollout</th><th>Running</th><th>Pending</th><th>Desired</th><th>Deployments</th><th>Task definition</th><th>Reason</th></tr></thead>\n<tbody>\n<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td></tr>\n</tbody>\n</table>",
                esc(&ro.state),
                ro.running,
                ro.pending,
                ro.desired,
                ro.deployments,
                esc(ro.task_definition.as_deref().unwrap_or_default()),
                esc(ro.reason.as_deref().unwrap_or_default())
            );
        }
    }
    layout(&format!("mooring: {title}"), &b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Kind;
    use crate::reconcile::{Action, Hold, Outcome, PassReport, ResourceReport};
    use crate::status::StatusStore;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// A store with two clusters: `prd` drifted (a tag, in observe mode), `a<b>` in sync.
    fn store() -> StatusStore {
        let set = crate::manifest::load::load_with_stack(&[(
            "c.yaml".into(),
            "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: prd}\nspec: {}\n---\napiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: stg}\nspec: {}\n"
                .into(),
        )])
        .unwrap();
        let store = StatusStore::new("manifests/<dir>", "observe");
        store.set_manifests(&set, false);
        let report = |name: &str, changes: Vec<FieldChange>, outcome| ResourceReport {
            kind: Kind::Cluster,
            name: name.into(),
            aws_id: format!("arn:aws:ecs:r:1:cluster/{name}"),
            action: if changes.is_empty() {
                Action::None
            } else {
                Action::Update
            },
            changes,
            applied: false,
            rollout: None,
            outcome,
        };
        let pass = PassReport {
            revision: "r1".into(),
            resources: vec![
                report(
                    "prd",
                    vec![FieldChange {
                        field: "tags.team".into(),
                        live: serde_json::json!("<script>alert(1)</script>"),
                        desired: serde_json::json!("payments"),
                        note: None,
                    }],
                    Outcome::Held { why: Hold::Observe },
                ),
                report("stg", vec![], Outcome::InSync),
            ],
            aws_calls: Default::default(),
            target: None,
            aws_calls_by_kind: Default::default(),
            check_seconds_by_kind: Default::default(),
        };
        store.record_pass(&pass, SystemTime::now(), true);
        store
    }

    async fn get(store: &StatusStore, uri: &str) -> (StatusCode, String) {
        let app = App {
            status: store.clone(),
            metrics: Default::default(),
            trigger: Default::default(),
            webhook_secret: None,
            liveness: None,
        };
        let resp = super::super::http::router(app)
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let code = resp.status();
        assert!(
            resp.headers()[axum::http::header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{uri}"
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (code, String::from_utf8(body.to_vec()).unwrap())
    }

    fn rows(page: &str) -> Vec<&str> {
        page.lines()
            .filter(|l| l.starts_with("<tr data-state"))
            .collect()
    }

    #[tokio::test]
    async fn the_index_lists_resources_with_their_state_and_filters_by_state() {
        let store = store();
        let (code, page) = get(&store, "/").await;
        assert_eq!(code, StatusCode::OK);
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
        assert!(
            !page.contains("<script"),
            "no JavaScript, and values escaped"
        );
        assert!(
            page.contains("<code>manifests/&lt;dir&gt;</code>"),
            "{page}"
        );
        assert!(page.contains("<dt>Mode</dt><dd>observe</dd>"), "{page}");
        assert!(page.contains("single replica (no leader election)"));
        assert!(page.contains(">all (2)</a>"), "{page}");
        assert!(
            page.contains("<a href=\"/?state=drifted\">drifted (1)</a>"),
            "{page}"
        );
        assert!(
            page.contains("<a href=\"/?state=in_sync\">in sync (1)</a>"),
            "{page}"
        );
        let all = rows(&page);
        assert_eq!(all.len(), 2, "{page}");
        assert!(
            all[0].contains("href=\"/resources/Cluster/prd\""),
            "{}",
            all[0]
        );
        assert!(all[0].contains("<span class=\"state drifted\">drifted</span>"));
        assert!(all[0].contains("tags.team"), "{}", all[0]);
        assert!(all[1].contains("<span class=\"state in_sync\">in sync</span>"));

        let (_, drifted) = get(&store, "/?state=drifted").await;
        let only = rows(&drifted);
        assert_eq!(only.len(), 1, "{drifted}");
        assert!(only[0].contains(">prd</a>"));
        assert!(drifted.contains("class=\"current\">drifted (1)</a>"));
        let (_, failed) = get(&store, "/?state=failed").await;
        assert!(rows(&failed).is_empty());
        assert!(failed.contains("No resources in state failed."), "{failed}");
        let (code, bad) = get(&store, "/?state=%3Cb%3E").await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(bad.contains("unknown state <code>%3Cb%3E</code>"), "{bad}");
    }

    #[tokio::test]
    async fn a_resource_page_shows_its_diff_and_events_escaped() {
        let store = store();
        let (code, page) = get(&store, "/resources/cluster/prd").await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            page.contains("<h1>Cluster/prd <span class=\"state drifted\">"),
            "{page}"
        );
        let diff = page
            .split("<table id=\"diff\">")
            .nth(1)
            .and_then(|t| t.split("</table>").next())
            .expect("a diff table");
        assert!(diff.contains("<td class=\"mono\">tags.team</td>"), "{diff}");
        assert!(
            diff.contains("&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;"),
            "{diff}"
        );
        assert!(diff.contains("&quot;payments&quot;"), "{diff}");
        assert!(!page.contains("<script"));
        assert!(page.contains("<table id=\"events\">"));
        assert!(
            page.contains("<td>drifted</td><td>tags.team (observe mode)</td>"),
            "{page}"
        );
        assert!(page.contains("No deploys recorded."));

        let (_, synced) = get(&store, "/resources/Cluster/stg").await;
        assert!(synced.contains("No pending changes"), "{synced}");
        let (code, missing) = get(&store, "/resources/Service/%3Cx%3E").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert!(
            missing.contains("no Service named <code>&lt;x&gt;</code>"),
            "{missing}"
        );
    }

    #[test]
    fn escaping_and_links() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(segment("a b/c-d_e.f~"), "a%20b%2Fc-d_e.f~");
    }
}
