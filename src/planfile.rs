//! A plan you can apply exactly: `plan --out FILE` saves what plan found (the manifests'
//! revision, the account and region, and per resource its action, its changes and a
//! fingerprint of the live document it observed); `apply FILE` plans again and applies only
//! when nothing of that moved. `--target Kind/name` limits plan and apply to some resources
//! and what they depend on.
//!
//! A plan file holds no secret values: changes of secret-looking fields are redacted (as in
//! status and alerts), and live state is kept only as a SHA-256 of its normalised document.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::aws::identity::Target;
use crate::cli::Output;
use crate::manifest::{Kind, ManifestSet};
use crate::reconcile::diff::redact;
use crate::reconcile::engine::PlanOutcome;
use crate::reconcile::{Action, Hold, Reconciler};

/// What the `format` field of every plan file says.
pub const FORMAT: &str = "mooring-plan";
/// The plan file format this build writes and reads.
pub const VERSION: u32 = 1;

/// A saved plan (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format's version ([`VERSION`]).
    pub version: u32,
    /// The mooring that wrote it (for people).
    pub mooring: String,
    /// The manifest set's revision (`sha256:…`).
    pub revision: String,
    /// The manifest directory, as given to `plan`.
    pub manifests: String,
    /// The AWS account ID plan looked at.
    pub account: String,
    /// The region plan looked at.
    pub region: String,
    /// The `--target`s plan was limited to (empty: every resource).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Every resource in scope, in apply order.
    pub resources: Vec<PlannedResource>,
}

/// One resource of a saved plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedResource {
    /// The kind.
    pub kind: Kind,
    /// The manifest's name.
    pub name: String,
    /// `create`, `update`, `replace` or `none`.
    pub action: String,
    /// The fields that differ, live → desired (secret-looking values redacted).
    pub changes: Vec<PlannedChange>,
    /// [`fingerprint`] of the live document plan observed (of `null` when it did not
    /// exist).
    pub live: Option<String>,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedChange {
    /// Dotted path.
    pub field: String,
    /// What AWS had.
    pub live: Value,
    /// What the manifest wants.
    pub desired: Value,
}

impl PlannedResource {
    /// `Kind/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// `sha256:` and the hex SHA-256 of `doc` with every object's keys sorted, so the same
/// document always gives the same fingerprint.
pub fn fingerprint(doc: &Value) -> String {
    let text = serde_json::to_string(&canonical(doc)).unwrap_or_default();
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::None => "none",
    }
}

/// The resources a plan found, as a plan file keeps them, limited to `scope` when given;
/// and, separately, every resource that could not be planned (`Kind/name: why`).
pub fn entries(
    reconcilers: &[Box<dyn Reconciler>],
    planned: &[PlanOutcome],
    scope: Option<&Scope>,
) -> (Vec<PlannedResource>, Vec<String>) {
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for (i, p) in planned {
        let kind = reconcilers[*i].kind();
        match p {
            Ok(p) => {
                if scope.is_some_and(|s| !s.contains(&(kind, p.plan.name.clone()))) {
                    continue;
                }
                for problem in &p.plan.problems {
                    failed.push(format!("{kind}/{}: {}", p.plan.name, problem.message));
                }
                out.push(PlannedResource {
                    kind,
                    name: p.plan.name.clone(),
                    action: action_name(p.plan.action).to_string(),
                    changes: redact(&p.plan.changes)
                        .into_iter()
                        .map(|c| PlannedChange {
                            field: c.field,
                            live: c.live,
                            desired: c.desired,
                        })
                        .collect(),
                    live: reconcilers[*i].live_fingerprint(&p.plan.name),
                });
            }
            Err((name, e)) => {
                if scope.is_some_and(|s| !s.contains(&(kind, name.clone()))) {
                    continue;
                }
                failed.push(format!("{kind}/{name}: {e}"));
            }
        }
    }
    (out, failed)
}

/// What moved between a saved plan and the plan made now, one `Kind/name: what` line per
/// resource; empty when the plan can be applied exactly.
pub fn moved(saved: &[PlannedResource], now: &[PlannedResource]) -> Vec<String> {
    let before: HashMap<(Kind, &str), &PlannedResource> = saved
        .iter()
        .map(|r| ((r.kind, r.name.as_str()), r))
        .collect();
    let mut out = Vec::new();
    for r in now {
        let Some(b) = before.get(&(r.kind, r.name.as_str())) else {
            out.push(format!("{}: not in the plan", r.id()));
            continue;
        };
        let mut what = Vec::new();
        if b.live != r.live {
            what.push("its live state changed".to_string());
        }
        if b.action != r.action {
            what.push(format!("planned to {}, now {}", b.action, r.action));
        } else if b.changes != r.changes {
            let mut fields: Vec<&str> = b
                .changes
                .iter()
                .chain(&r.changes)
                .filter(|c| !(b.changes.contains(c) && r.changes.contains(c)))
                .map(|c| c.field.as_str())
                .collect();
            fields.dedup();
            what.push(format!("its changes differ ({})", fields.join(", ")));
        }
        if !what.is_empty() {
            out.push(format!("{}: {}", r.id(), what.join("; ")));
        }
    }
    let present: HashSet<(Kind, &str)> = now.iter().map(|r| (r.kind, r.name.as_str())).collect();
    for r in saved {
        if !present.contains(&(r.kind, r.name.as_str())) {
            out.push(format!("{}: in the plan but no longer planned", r.id()));
        }
    }
    out
}

/// Reads and checks a plan file.
pub fn read(path: &Path) -> Result<PlanFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("failed to read the plan file {}: {e}", path.display()))?;
    let head: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a plan file: {e}", path.display()))?;
    if head.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(format!(
            "{}: not a plan file (written by `mooring plan --out`)",
            path.display()
        ));
    }
    match head.get("version").and_then(Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        v => {
            return Err(format!(
                "{}: plan file version {} is not supported (this mooring reads version {VERSION}); plan again",
                path.display(),
                v.map(|v| v.to_string()).unwrap_or_else(|| "(none)".into())
            ));
        }
    }
    serde_json::from_value(head).map_err(|e| format!("{}: bad plan file: {e}", path.display()))
}

/// Writes a plan file (whole or not at all: written beside it, then renamed).
pub fn write(path: &Path, plan: &PlanFile) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("failed to write the plan file {}: {e}", path.display());
    let text = serde_json::to_string_pretty(plan).unwrap_or_default();
    let tmp = path.with_extension("mooring-tmp");
    std::fs::write(&tmp, text + "\n").map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// The resources `--target` limits a run to: the targets and, transitively, what they
/// depend on.
pub type Scope = HashSet<(Kind, String)>;

/// The [`Scope`] of `targets` (`Kind/name` each); `None` when there are none. An unknown
/// target is an error naming the nearest resource.
pub fn scope(
    set: &ManifestSet,
    reconcilers: &[Box<dyn Reconciler>],
    targets: &[String],
) -> Result<Option<Scope>, String> {
    if targets.is_empty() {
        return Ok(None);
    }
    let ids = set.ids();
    let mut todo = Vec::new();
    for t in targets {
        let found = t.split_once('/').and_then(|(k, n)| {
            let kind = Kind::ALL
                .iter()
                .find(|kind| kind.as_str().eq_ignore_ascii_case(k.trim()))?;
            ids.iter()
                .find(|(ik, iname)| ik == kind && iname == n.trim())
        });
        match found {
            Some(id) => todo.push(id.clone()),
            None => return Err(unknown_target(t, &ids)),
        }
    }
    let mut scope = Scope::new();
    while let Some((kind, name)) = todo.pop() {
        if scope.contains(&(kind, name.clone())) {
            continue;
        }
        if let Some(r) = reconcilers.iter().find(|r| r.kind() == kind) {
            todo.extend(r.dependencies(set, &name));
        }
        scope.insert((kind, name));
    }
    Ok(Some(scope))
}

fn unknown_target(target: &str, ids: &[(Kind, String)]) -> String {
    let names: Vec<String> = ids.iter().map(|(k, n)| format!("{k}/{n}")).collect();
    let best = crate::manifest::load::closest(target, names.iter().map(String::as_str), |n| {
        3.max(n.len() / 4)
    });
    let hint = match best {
        Some(n) => format!("did you mean `{n}`?"),
        None if names.is_empty() => "the manifests describe none".to_string(),
        None => format!("known: {}", names.join(", ")),
    };
    if !target.contains('/') {
        return format!("--target `{target}`: expected Kind/name ({hint})");
    }
    format!("--target `{target}`: no such resource in the manifests ({hint})")
}

/// What `plan --out` saves.
pub(crate) struct Save<'a> {
    pub path: &'a Path,
    pub dir: &'a Path,
    pub set: &'a ManifestSet,
    pub target: &'a Target,
    pub targets: &'a [String],
    pub recs: &'a [Box<dyn Reconciler>],
    pub planned: &'a [PlanOutcome],
    pub scope: Option<&'a Scope>,
    /// The plan has errors: no file is written.
    pub failed: bool,
}

/// Writes the plan file of `plan --out` and says so on stderr (stdout stays the plan).
pub(crate) fn save(s: Save<'_>) -> Result<(), ()> {
    let (resources, failed) = entries(s.recs, s.planned, s.scope);
    if s.failed || !failed.is_empty() {
        eprintln!(
            "error: the plan has errors: no plan file written to {}",
            s.path.display()
        );
        return Err(());
    }
    let plan = PlanFile {
        format: FORMAT.into(),
        version: VERSION,
        mooring: crate::cli::VERSION.into(),
        revision: s.set.revision.clone(),
        manifests: s.dir.display().to_string(),
        account: s.target.account.clone(),
        region: s.target.region.clone(),
        targets: s.targets.to_vec(),
        resources,
    };
    match write(s.path, &plan) {
        Ok(()) => {
            eprintln!(
                "Saved the plan to {p}: `mooring apply {p}` applies exactly this plan.",
                p = s.path.display()
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(())
        }
    }
}

/// Settings of `mooring apply`.
pub(crate) struct ApplyArgs<'a> {
    pub rate: crate::aws::TransportSettings,
    pub expect: Option<&'a str>,
    /// A manifest directory or a plan file.
    pub path: PathBuf,
    /// `--dir`: where a plan file's manifests are.
    pub manifests: Option<PathBuf>,
    pub targets: Vec<String>,
    pub auto_approve: bool,
    pub output: Output,
    pub wait: Option<std::time::Duration>,
}

/// `mooring apply DIR` or `mooring apply PLAN`; returns the exit code.
pub(crate) async fn apply(a: ApplyArgs<'_>) -> i32 {
    let output = a.output;
    let refuse = |message: String| {
        match output {
            Output::Text => eprintln!("error: {message}; nothing was changed"),
            Output::Json => println!(
                "{}",
                serde_json::json!({"error": {"category": "configuration", "message": message}})
            ),
        }
        1
    };
    let (dir, saved) = if a.path.is_file() {
        let plan = match read(&a.path) {
            Ok(plan) => plan,
            Err(e) => return refuse(e),
        };
        if !a.targets.is_empty() {
            return refuse(format!(
                "--target does not go with a plan file: {} carries its own ({})",
                a.path.display(),
                if plan.targets.is_empty() {
                    "every resource".to_string()
                } else {
                    plan.targets.join(", ")
                }
            ));
        }
        let dir = a
            .manifests
            .clone()
            .unwrap_or_else(|| PathBuf::from(&plan.manifests));
        (dir, Some(plan))
    } else {
        if a.manifests.is_some() {
            return refuse("--dir goes with a plan file only".into());
        }
        (a.path.clone(), None)
    };
    let Ok(set) = crate::cli::load(&dir, a.output) else {
        return 1;
    };
    if let Some(plan) = &saved
        && plan.revision != set.revision
    {
        return refuse(format!(
            "the manifests in {} changed since the plan in {} (revision {} then, {} now); plan again",
            dir.display(),
            a.path.display(),
            plan.revision,
            set.revision
        ));
    }
    let targets = saved.as_ref().map_or(&a.targets, |p| &p.targets);
    let recs = crate::kinds::reconcilers(&set);
    let scope = match scope(&set, &recs, targets) {
        Ok(scope) => scope,
        Err(e) => return refuse(e),
    };
    let Some((mut ctx, target)) = crate::cli::context(a.rate, a.expect, a.output).await else {
        return 1;
    };
    if let Some(plan) = &saved
        && (plan.account != target.account || plan.region != target.region)
    {
        return refuse(format!(
            "the plan in {} is for account {}, region {}, but the credentials work in {target}",
            a.path.display(),
            plan.account,
            plan.region
        ));
    }
    ctx.rollout_wait = a.wait;
    if a.wait.is_some() {
        // On stderr: stdout stays the report (one JSON document with `--output json`).
        ctx.on_rollout = Some(std::sync::Arc::new(|name, r, waited| {
            eprintln!("{}", rollout_line(name, r, waited));
        }));
    }
    let mut expected = saved.map(|p| p.resources);
    let interactive =
        !a.auto_approve && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if expected.is_none() && interactive {
        match confirm(&ctx, &set, &recs, scope.as_ref(), &target).await {
            Confirmed::Yes(shown) => expected = Some(shown),
            Confirmed::No(code) => return code,
        }
    }
    let in_scope = |kind: Kind, name: &str| {
        scope
            .as_ref()
            .is_none_or(|s| s.contains(&(kind, name.to_string())))
    };
    let policy = |kind: Kind, name: &str| (!in_scope(kind, name)).then_some(Hold::Plan);
    let check = |recs: &[Box<dyn Reconciler>], planned: &[PlanOutcome]| {
        let Some(expected) = &expected else {
            return Ok(());
        };
        let (now, failed) = entries(recs, planned, scope.as_ref());
        let mut lines = moved(expected, &now);
        lines.extend(failed);
        if lines.is_empty() {
            Ok(())
        } else {
            Err(lines.join("\n  "))
        }
    };
    let result = crate::reconcile::apply_checked(
        &ctx,
        &set,
        &recs,
        &policy,
        &mut crate::reconcile::Gates::default(),
        Some(&check),
    )
    .await;
    let mut report = match result {
        Ok(report) => report,
        Err(refused) => {
            let what = if a.path.is_file() {
                format!("the plan in {}", a.path.display())
            } else {
                "the plan shown".to_string()
            };
            match output {
                Output::Text => eprintln!(
                    "error: {what} no longer matches; nothing was changed:\n  {}\nplan again",
                    refused.reason
                ),
                Output::Json => println!(
                    "{}",
                    serde_json::json!({"error": {
                        "category": "stale_plan",
                        "message": format!("{what} no longer matches; nothing was changed"),
                        "moved": refused.reason.split("\n  ").collect::<Vec<_>>(),
                    }})
                ),
            }
            return 1;
        }
    };
    report.resources.retain(|r| in_scope(r.kind, &r.name));
    crate::reconcile::verify_converged(&ctx, &set, &recs, &mut report).await;
    report.aws_calls = ctx.aws.calls.by_operation();
    report.target = Some(target);
    crate::cli::print_report(&report, a.output, true);
    i32::from(report.has_errors())
}

/// One line of `apply --wait`'s progress.
fn rollout_line(name: &str, r: &crate::reconcile::Rollout, waited: std::time::Duration) -> String {
    format!(
        "Service/{name}: rollout {}, {}/{} running, {} pending, {} deployment(s) ({}s)",
        r.state,
        r.running,
        r.desired,
        r.pending,
        r.deployments,
        waited.as_secs()
    )
}

enum Confirmed {
    /// Go ahead with exactly these.
    Yes(Vec<PlannedResource>),
    /// Stop with this exit code (0: nothing to change).
    No(i32),
}

/// Shows the plan on a terminal and asks before applying it.
async fn confirm(
    ctx: &crate::reconcile::Context,
    set: &ManifestSet,
    recs: &[Box<dyn Reconciler>],
    scope: Option<&Scope>,
    target: &Target,
) -> Confirmed {
    let cache = crate::reconcile::PassCache::default();
    let cx = crate::reconcile::Cx {
        ctx,
        set,
        cache: &cache,
    };
    let planned = crate::reconcile::plan_all(&cx, recs).await;
    let mut report = crate::reconcile::report_plan(&set.revision, recs, &planned);
    if let Some(s) = scope {
        report
            .resources
            .retain(|r| s.contains(&(r.kind, r.name.clone())));
    }
    report.target = Some(target.clone());
    crate::cli::print_report(&report, crate::cli::Output::Text, false);
    if report.has_errors() {
        eprintln!("error: the plan has errors; nothing was changed");
        return Confirmed::No(1);
    }
    if !report.has_changes() {
        return Confirmed::No(0);
    }
    print!("\nApply these changes in {target}? Only `yes` goes ahead: ");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() || answer.trim() != "yes" {
        eprintln!("Apply cancelled; nothing was changed.");
        return Confirmed::No(1);
    }
    println!();
    Confirmed::Yes(entries(recs, &planned, scope).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(kind: Kind, name: &str, action: &str, live: Option<&str>) -> PlannedResource {
        PlannedResource {
            kind,
            name: name.into(),
            action: action.into(),
            changes: vec![PlannedChange {
                field: "desiredCount".into(),
                live: serde_json::json!(1),
                desired: serde_json::json!(2),
            }],
            live: live.map(str::to_string),
        }
    }

    fn plan(resources: Vec<PlannedResource>) -> PlanFile {
        PlanFile {
            format: FORMAT.into(),
            version: VERSION,
            mooring: "test".into(),
            revision: "sha256:0123456789ab".into(),
            manifests: "stack".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            targets: vec!["Service/api".into()],
            resources,
        }
    }

    #[test]
    fn rollout_progress_lines() {
        let r = crate::reconcile::Rollout {
            state: "IN_PROGRESS".into(),
            reason: None,
            running: 1,
            desired: 3,
            pending: 2,
            deployments: 2,
            task_definition: None,
        };
        assert_eq!(
            rollout_line("api", &r, std::time::Duration::from_millis(12_500)),
            "Service/api: rollout IN_PROGRESS, 1/3 running, 2 pending, 2 deployment(s) (12s)"
        );
    }

    #[test]
    fn fingerprints_ignore_key_order_and_see_any_value() {
        let a = serde_json::json!({"a": 1, "b": {"x": [1, 2], "y": "z"}});
        let b: Value = serde_json::from_str(r#"{"b": {"y": "z", "x": [1, 2]}, "a": 1}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert!(fingerprint(&a).starts_with("sha256:"));
        assert_eq!(fingerprint(&a).len(), "sha256:".len() + 64);
        let c = serde_json::json!({"a": 1, "b": {"x": [2, 1], "y": "z"}});
        assert_ne!(fingerprint(&a), fingerprint(&c));
        assert_ne!(
            fingerprint(&Value::Null),
            fingerprint(&serde_json::json!({}))
        );
    }

    #[test]
    fn plan_files_round_trip_and_unknown_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let p = plan(vec![resource(
            Kind::Service,
            "api",
            "update",
            Some("sha256:aa"),
        )]);
        write(&path, &p).unwrap();
        assert_eq!(read(&path).unwrap(), p);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"format\": \"mooring-plan\""), "{text}");
        assert!(text.contains("\"kind\": \"Service\""), "{text}");

        std::fs::write(&path, text.replace("\"version\": 1", "\"version\": 2")).unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.contains("plan file version 2 is not supported"), "{e}");
        std::fs::write(&path, "{\"kind\": \"Service\"}").unwrap();
        assert!(read(&path).unwrap_err().contains("not a plan file"));
        std::fs::write(&path, "not json").unwrap();
        assert!(read(&path).unwrap_err().contains("not a plan file"));
    }

    #[test]
    fn an_unchanged_plan_has_nothing_moved() {
        let saved = vec![
            resource(Kind::Cluster, "main", "none", Some("sha256:11")),
            resource(Kind::Service, "api", "update", Some("sha256:22")),
        ];
        assert!(moved(&saved, &saved.clone()).is_empty());
    }

    #[test]
    fn everything_that_moved_is_named() {
        let saved = vec![
            resource(Kind::Cluster, "main", "none", Some("sha256:11")),
            resource(Kind::Service, "api", "update", Some("sha256:22")),
            resource(Kind::Rule, "daily", "update", Some("sha256:33")),
            resource(Kind::LogGroup, "gone", "create", None),
        ];
        let mut now = saved.clone();
        now[0].live = Some("sha256:99".into());
        now[1].changes[0].desired = serde_json::json!(3);
        now[2].action = "replace".into();
        now.pop();
        now.push(resource(Kind::Alarm, "new", "create", None));
        let m = moved(&saved, &now);
        assert_eq!(
            m,
            vec![
                "Cluster/main: its live state changed",
                "Service/api: its changes differ (desiredCount)",
                "Rule/daily: planned to update, now replace",
                "Alarm/new: not in the plan",
                "LogGroup/gone: in the plan but no longer planned",
            ]
        );
    }

    #[test]
    fn secret_values_never_reach_a_plan_file() {
        use crate::reconcile::engine::PlanOutcome;
        use crate::reconcile::{FieldChange, Planned, ResourcePlan};
        const SECRET: &str = "hunter2-must-not-be-written";
        let planned: Vec<PlanOutcome> = vec![(
            0,
            Ok(Planned {
                unfollowed: None,
                plan: ResourcePlan {
                    kind: Kind::Connection,
                    name: "backend".into(),
                    aws_id: "backend".into(),
                    action: Action::Update,
                    changes: vec![
                        FieldChange {
                            field: "auth.apiKey.value".into(),
                            live: serde_json::json!("old-secret"),
                            desired: serde_json::json!(SECRET),
                            note: None,
                        },
                        FieldChange {
                            field: "environment.DB_PASSWORD".into(),
                            live: Value::Null,
                            desired: serde_json::json!(SECRET),
                            note: None,
                        },
                    ],
                    rollout: None,
                    problems: Vec::new(),
                },
            }),
        )];
        let recs = vec![Kind::Connection.reconciler()];
        let (resources, failed) = entries(&recs, &planned, None);
        assert!(failed.is_empty());
        let text = serde_json::to_string(&plan(resources)).unwrap();
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("old-secret"), "{text}");
        assert!(text.contains("(redacted)"), "{text}");
        assert!(text.contains("auth.apiKey.value"), "{text}");
    }

    #[test]
    fn targets_take_their_dependencies_and_unknown_ones_are_named() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/basic");
        let set = crate::manifest::load_dir(&dir).unwrap();
        let recs = crate::kinds::reconcilers(&set);
        let s = scope(&set, &recs, &["Service/api".into()])
            .unwrap()
            .unwrap();
        let mut got: Vec<String> = s.iter().map(|(k, n)| format!("{k}/{n}")).collect();
        got.sort();
        assert_eq!(
            got,
            vec!["Cluster/test", "ParameterSet/test-config", "Service/api"]
        );
        let s = scope(&set, &recs, &["cluster/test".into()])
            .unwrap()
            .unwrap();
        assert_eq!(s.len(), 1);
        assert!(scope(&set, &recs, &[]).unwrap().is_none());

        let e = scope(&set, &recs, &["Service/apj".into()]).unwrap_err();
        assert_eq!(
            e,
            "--target `Service/apj`: no such resource in the manifests (did you mean `Service/api`?)"
        );
        let e = scope(&set, &recs, &["Rule/nightly-cleanup-job".into()]).unwrap_err();
        assert!(
            e.contains("known: Cluster/test, ParameterSet/test-config, Service/api"),
            "{e}"
        );
        let e = scope(&set, &recs, &["api".into()]).unwrap_err();
        assert!(e.contains("expected Kind/name"), "{e}");
    }
}
