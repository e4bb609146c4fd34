//! The command line: `validate`, `plan`, `apply`, `run`, `status`, `schema`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::aws::identity::Target;
use crate::aws::{Aws, ErrorCategory};
use crate::kinds::reconcilers;
use crate::manifest::{Kind, ManifestErrors, ManifestSet, load_dir};
use crate::reconcile::diff::show;
use crate::reconcile::{self, Action, Context, Cx, PassCache, PassReport};
use crate::status::StatusStore;

/// mooring keeps AWS container stacks (ECS Fargate services and their neighbours) in the
/// state that YAML manifests in git describe.
#[derive(Debug, Parser)]
#[command(name = "mooring", version = VERSION, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "MOORING_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Most AWS requests per second, all services together (retries included); keeps a
    /// large stack under AWS's API rate limits. 0 turns the limit off.
    #[arg(
        long,
        default_value_t = 50.0,
        global = true,
        env = "MOORING_AWS_RATE_LIMIT"
    )]
    pub aws_rate_limit: f64,
    /// How long to wait for AWS to start answering a request; a service that does not
    /// answer twice in a row fails its calls at once for this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration, global = true, env = "MOORING_AWS_TIMEOUT")]
    pub aws_timeout: Duration,
    /// The AWS account ID the credentials must belong to: plan, apply and run refuse to
    /// read or change anything in any other account.
    #[arg(long, global = true, env = "MOORING_EXPECT_ACCOUNT")]
    pub expect_account: Option<String>,
    /// Never colour the output. Colour is only used on a terminal, and NO_COLOR in the
    /// environment turns it off too.
    #[arg(long, global = true)]
    pub no_color: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The version and the git revision it was built from, e.g. `0.1.0 (rev 39ee907a1b2c)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (rev ",
    env!("MOORING_REVISION"),
    ")"
);

/// Log formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Output formats of validate, plan and apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For machines.
    Json,
}

/// Daemon modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Correct drift.
    Enforce,
    /// Only report drift.
    Observe,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size of `Run` does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Check every manifest under DIR; no AWS calls. Exit 0 valid, 1 invalid.
    Validate {
        /// Manifest directory (read recursively).
        dir: PathBuf,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Print the manifests DIR resolves to (an environment: its bases with the overlay
    /// applied), each field the environment set marked `# file:line`. No AWS calls.
    Render {
        /// Manifest or environment directory.
        dir: PathBuf,
    },
    /// Copy the image (tag, digest or reference) of services from the environment FROM to
    /// the environment TO, by editing TO's environment file in place (comments and
    /// formatting kept). Prints the diff. Exit 0 done or nothing to do, 1 error; with
    /// `--check`, changes nothing and exits 2 when promotion would change something.
    Promote {
        /// The environment directory to copy from (e.g. `envs/dev`).
        from: PathBuf,
        /// The environment directory to write to (e.g. `envs/prd`).
        to: PathBuf,
        /// Only this service (`metadata.name`; repeatable). Default: every service.
        #[arg(long = "service", value_name = "NAME")]
        services: Vec<String>,
        /// Change nothing: exit 2 when TO is behind FROM, 0 when they match.
        #[arg(long)]
        check: bool,
    },
    /// Show what apply would change. Exit 0 nothing to do, 2 changes pending, 1 error.
    Plan {
        /// Manifest directory (read recursively).
        dir: PathBuf,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Save the plan to FILE, for `mooring apply FILE` to apply exactly (not written
        /// when the plan has errors).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Plan only this resource and what it depends on, e.g. `Service/api` (repeatable).
        #[arg(long = "target", value_name = "KIND/NAME")]
        targets: Vec<String>,
    },
    /// Make AWS match the manifests once, or apply a plan saved by `plan --out` exactly
    /// (refused when the manifests or live state moved since). Exit 0 converged, 1 error.
    Apply {
        /// Manifest directory (read recursively), or a plan file from `plan --out`.
        #[arg(value_name = "DIR|PLAN")]
        dir: PathBuf,
        /// With a plan file: read the manifests here instead of where plan read them.
        #[arg(long = "dir", value_name = "DIR")]
        manifests: Option<PathBuf>,
        /// Apply only this resource and what it depends on, e.g. `Service/api`
        /// (repeatable; a plan file carries its own).
        #[arg(long = "target", value_name = "KIND/NAME")]
        targets: Vec<String>,
        /// Do not ask for confirmation on a terminal.
        #[arg(long)]
        auto_approve: bool,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Wait for service deployments to finish (and fail if one fails).
        #[arg(long)]
        wait: bool,
        /// How long to wait for deployments, e.g. `10m`.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        wait_timeout: Duration,
    },
    /// Run as a daemon: reconcile every interval and serve /status, /metrics, /healthz,
    /// /readyz and POST /reconcile.
    Run {
        /// Manifest directory (re-read every pass, watched for changes). Not with `--git`.
        #[arg(required_unless_present = "git", conflicts_with = "git")]
        dir: Option<PathBuf>,
        /// Follow a git repository instead: its URL (https://, or a local path / file://
        /// for tests; credentials in the URL are never shown).
        #[arg(long, env = "MOORING_GIT_URL", hide_env_values = true)]
        git: Option<String>,
        /// The branch to follow.
        #[arg(
            long,
            default_value = "main",
            env = "MOORING_GIT_BRANCH",
            requires = "git"
        )]
        branch: String,
        /// The manifest directory inside the repository.
        #[arg(long, default_value = ".", env = "MOORING_GIT_PATH", requires = "git")]
        path: PathBuf,
        /// Where the clone and the checked-out manifests live.
        #[arg(long, env = "MOORING_WORK_DIR", requires = "git")]
        work_dir: Option<PathBuf>,
        /// Time between passes, e.g. `60s`, `5m`.
        #[arg(long, default_value = "60s", value_parser = parse_duration, env = "MOORING_INTERVAL")]
        interval: Duration,
        /// Address of the HTTP server.
        #[arg(long, default_value = "127.0.0.1:8080", env = "MOORING_LISTEN")]
        listen: SocketAddr,
        /// `enforce` corrects drift, `observe` only reports it (a resource's
        /// `mooring.dev/mode` annotation overrides this).
        #[arg(long, value_enum, default_value_t = Mode::Enforce, env = "MOORING_MODE")]
        mode: Mode,
        /// Operator configuration: alert sinks, the webhook secret (see README).
        #[arg(long, env = "MOORING_CONFIG")]
        config: Option<PathBuf>,
        /// After SIGTERM, how long the apply in flight may take to finish.
        #[arg(long, default_value = "30s", value_parser = parse_duration, env = "MOORING_SHUTDOWN_GRACE")]
        shutdown_grace: Duration,
        /// Delete resources that carry this stack's ownership tags but are in no manifest
        /// (enforce mode only; services, target groups, security groups and ingress rules,
        /// log groups, cache subnet groups, alarms, and ECR repositories whose deletion
        /// policy is `delete`).
        #[arg(long, env = "MOORING_PRUNE")]
        prune: bool,
        /// Let `--prune` delete more resources than the manifests still describe (refused
        /// otherwise, so a manifest set emptied by mistake does not wipe the stack).
        #[arg(long, env = "MOORING_ALLOW_EMPTY_PRUNE", requires = "prune")]
        allow_empty_prune: bool,
        /// Leader election: only the replica holding the lease (a DynamoDB item) applies;
        /// the others stand by and take over when it expires.
        #[arg(
            long,
            env = "MOORING_LEADER_ELECTION",
            requires_if("true", "lease_table")
        )]
        leader_election: bool,
        /// The lease table (partition key `name`, a string). Only with `--leader-election`.
        #[arg(long, env = "MOORING_LEASE_TABLE", requires = "leader_election")]
        lease_table: Option<String>,
        /// The lease's name: one per stack that replicas share.
        #[arg(long, default_value = "mooring", env = "MOORING_LEASE_NAME")]
        lease_name: String,
        /// How long a lease lasts without renewal (renewed every third of it): 3s to 1h.
        #[arg(long, default_value = "15s", value_parser = parse_lease_duration, env = "MOORING_LEASE_DURATION")]
        lease_duration: Duration,
        /// This replica's name in the lease (default: the host name).
        #[arg(long, env = "MOORING_REPLICA_ID")]
        replica_id: Option<String>,
        /// Where the other replicas reach this one's HTTP server, e.g.
        /// `http://10.0.1.7:8080`: written into the lease while leading, so a standby
        /// forwards `POST /reconcile` to the leader. Only with `--leader-election`.
        #[arg(long, env = "MOORING_ADVERTISE_URL", value_parser = crate::webhook::parse_advertise_url)]
        advertise_url: Option<String>,
        /// An SQS queue URL fed by an EventBridge rule with CloudTrail's management
        /// events: a change to a kind mooring manages is re-checked at once, not at the
        /// next interval (which stays as the safety net and can then be much longer).
        #[arg(long, env = "MOORING_EVENTS_QUEUE")]
        events_queue: Option<String>,
        /// With `--events-queue`: warn in `/status` when no change event arrived for this
        /// long (a broken trail, rule or queue policy).
        #[arg(long, default_value = "6h", value_parser = parse_duration, env = "MOORING_EVENTS_QUIET")]
        events_quiet: Duration,
        /// Check one kind on its own interval, e.g. `Service=30s` or `Rule=5m` (repeatable).
        #[arg(long = "kind-interval", value_parser = parse_kind_interval)]
        kind_intervals: Vec<(Kind, Duration)>,
        /// Shortest wait before a failed resource is applied again (doubles up to 10 minutes).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        backoff: Duration,
        /// Most HTTP connections open at once (beyond it the oldest idle one is closed).
        #[arg(long, default_value_t = 256, hide = true, env = "MOORING_HTTP_MAX_CONNECTIONS",
              value_parser = clap::value_parser!(u32).range(1..))]
        http_max_connections: u32,
        /// Longest wait for a request's headers, keep-alive waits included.
        #[arg(long, default_value = "5s", value_parser = parse_duration, hide = true, env = "MOORING_HTTP_HEADER_TIMEOUT")]
        http_header_timeout: Duration,
        /// An HTTP connection moving no bytes for this long is closed.
        #[arg(long, default_value = "30s", value_parser = parse_duration, hide = true, env = "MOORING_HTTP_IDLE_TIMEOUT")]
        http_idle_timeout: Duration,
    },
    /// Print the IAM policy (JSON) that exactly these manifests need.
    IamPolicy {
        /// Manifest directory (read recursively).
        dir: PathBuf,
        /// Operator config: adds `sns:Publish` on its alert and deploy topics.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Leader election's lease table: adds `dynamodb:GetItem`/`PutItem` on it.
        #[arg(long)]
        lease_table: Option<String>,
        /// The change-event queue URL: adds `sqs:ReceiveMessage`/`DeleteMessage` on it.
        #[arg(long)]
        events_queue: Option<String>,
    },
    /// Create (or bring up to date) what `run --events-queue` reads: an SQS queue whose
    /// policy lets only the rule send to it, and an EventBridge rule on the default bus
    /// that forwards CloudTrail's write calls to the services mooring manages. Prints the
    /// queue URL. Needs a CloudTrail trail with management events in the account.
    EventsSetup {
        /// The queue's name (and the rule's).
        #[arg(long, default_value = "mooring-change-events")]
        name: String,
    },
    /// Show a running daemon's status as a table: the summary, then every resource with its
    /// state, pending changes and last error. Exit 0 read, 1 not reachable.
    Status {
        /// The daemon's HTTP address.
        #[arg(
            long,
            default_value = "http://127.0.0.1:8080",
            env = "MOORING_URL",
            hide_env_values = true
        )]
        url: String,
    },
    /// Print the JSON Schema of the manifest format (for editors).
    Schema,
    /// Write manifests for what runs today: from each ECS service picked (by cluster,
    /// CloudFormation stack or tag), its task definition, network, target groups and their
    /// load balancer, scaling, log group and the SSM parameters it reads; with a stack or a
    /// tag, also its log groups, ECR repositories and SSM parameters. Reads only; never
    /// overwrites a file it did not write. Exit 0 written, 1 error (nothing written).
    #[command(group(clap::ArgGroup::new("pick").required(true).args(["cluster", "cloudformation_stack", "tag"])))]
    Import {
        /// The ECS cluster (name or ARN) whose services are imported.
        #[arg(long)]
        cluster: Option<String>,
        /// Only this service of the cluster (repeatable); all of the cluster's by default.
        #[arg(long = "service", requires = "cluster")]
        services: Vec<String>,
        /// A CloudFormation stack (name or ID, e.g. a CDK stack) whose resources are imported.
        #[arg(long)]
        cloudformation_stack: Option<String>,
        /// Follow the stack's nested stacks (`AWS::CloudFormation::Stack`) too.
        #[arg(long, requires = "cloudformation_stack")]
        recursive: bool,
        /// Import the resources carrying this tag, as KEY=VALUE (Resource Groups Tagging API).
        #[arg(long, value_name = "KEY=VALUE", value_parser = crate::import::parse_tag)]
        tag: Option<(String, String)>,
        /// Directory the manifests are written to.
        #[arg(long)]
        out: PathBuf,
        /// The stack's name (default: the clusters' `mooring.dev/stack` tag, else from the
        /// CloudFormation stack's name, the tag's value or the cluster's name).
        #[arg(long)]
        stack: Option<String>,
        /// Print the files that would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Parses `Kind=duration`, e.g. `Service=30s`.
pub fn parse_kind_interval(s: &str) -> Result<(Kind, Duration), String> {
    let (kind, every) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected KIND=DURATION, e.g. Service=30s"))?;
    let kind = Kind::parse(kind.trim()).ok_or_else(|| {
        format!(
            "unknown kind `{kind}` (known: {})",
            Kind::ALL
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    Ok((kind, parse_duration(every.trim())?))
}

/// Parses `90` (seconds), `90s`, `5m`, `1h`, `250ms`, and combinations such as `1m30s` or
/// `1h 15m` (humantime's format).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        // A bare number is seconds, as before humantime.
        s.parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("`{s}` is too long"))?
    } else {
        humantime::parse_duration(s).map_err(|e| match e {
            humantime::DurationError::NumberOverflow => format!("`{s}` is too long"),
            humantime::DurationError::UnknownUnit { unit, .. } => format!(
                "`{s}` has an unknown unit `{unit}` (use ms, s, m or h, e.g. 30s, 5m, 1m30s)"
            ),
            _ => format!("`{s}` is not a duration (e.g. 30s, 5m, 1m30s, 1h)"),
        })?
    };
    if d.is_zero() {
        return Err("the duration must be more than zero".into());
    }
    Ok(d)
}

/// The shortest and longest lease: renewal every third of it must leave room for a
/// DynamoDB round trip and clock skew between replicas (a 2 ns lease would expire before
/// its own write returned, and replicas would take it from each other on every renewal);
/// an hour-long lease would leave the stack without a writer that long after a crash.
const LEASE_RANGE: (Duration, Duration) = (Duration::from_secs(3), Duration::from_secs(3600));

/// A `--lease-duration`: a duration within [`LEASE_RANGE`].
pub fn parse_lease_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    let (min, max) = LEASE_RANGE;
    if d < min || d > max {
        return Err(format!(
            "`{s}` is out of range: a lease lasts {} to {} (renewed every third of it)",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// Turns colour off everywhere when `no_color` (`--no-color`); otherwise colour is used
/// only on a terminal and without NO_COLOR (anstream's rules). Call before [`init_logging`].
pub fn set_colour(no_color: bool) {
    if no_color {
        anstream::ColorChoice::Never.write_global();
    }
}

/// True when text written to `stream` keeps its colour.
fn colour_on<S: anstream::stream::RawStream>(stream: &S) -> bool {
    anstream::AutoStream::choice(stream) != anstream::ColorChoice::Never
}

/// Sets up logging on stderr (`RUST_LOG` filters, default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // The credential chain's own warnings repeat, per provider and per client, what
        // the one identity error (src/aws/identity.rs) already says.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,aws_config=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_on(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs a command; returns the process exit code.
pub async fn execute(cli: Cli) -> i32 {
    let rate = crate::aws::TransportSettings {
        calls_per_second: Some(cli.aws_rate_limit).filter(|r| *r > 0.0),
        response_timeout: cli.aws_timeout,
    };
    let expect = cli.expect_account.as_deref();
    set_colour(cli.no_color);
    match cli.command {
        Command::Render { dir } => match crate::manifest::render::render_dir(&dir) {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(e) => report_loaded(Err(e), Output::Text).err().unwrap_or(1),
        },
        Command::Promote {
            from,
            to,
            services,
            check,
        } => crate::promote::run(&from, &to, &services, check),
        Command::Validate { dir, output } => match load(&dir, output) {
            Ok(set) => {
                match output {
                    Output::Text => println!(
                        "{}: {} manifest(s) valid (revision {})",
                        dir.display(),
                        set.len(),
                        set.revision
                    ),
                    Output::Json => println!(
                        "{}",
                        serde_json::json!({"valid": true, "resources": set.len(), "revision": set.revision})
                    ),
                }
                0
            }
            Err(code) => code,
        },
        Command::Plan {
            dir,
            output,
            out,
            targets,
        } => {
            let Ok(set) = load(&dir, output) else {
                return 1;
            };
            let recs = reconcilers(&set);
            let scope = match crate::planfile::scope(&set, &recs, &targets) {
                Ok(scope) => scope,
                Err(e) => {
                    eprintln!("error: {e}; nothing was read");
                    return 1;
                }
            };
            let Some((ctx, target)) = context(rate, expect, output).await else {
                return 1;
            };
            let cache = PassCache::default();
            let cx = Cx {
                ctx: &ctx,
                set: &set,
                cache: &cache,
            };
            let planned = reconcile::plan_all(&cx, &recs).await;
            let mut report = reconcile::report_plan(&set.revision, &recs, &planned);
            if let Some(scope) = &scope {
                report
                    .resources
                    .retain(|r| scope.contains(&(r.kind, r.name.clone())));
            }
            report.aws_calls = ctx.aws.calls.by_operation();
            report.aws_calls_by_kind = cache.plan_calls();
            if let Some(path) = &out {
                let saved = crate::planfile::save(crate::planfile::Save {
                    path,
                    dir: &dir,
                    set: &set,
                    target: &target,
                    targets: &targets,
                    recs: &recs,
                    planned: &planned,
                    scope: scope.as_ref(),
                    failed: report.has_errors(),
                });
                if saved.is_err() {
                    return 1;
                }
            }
            report.target = Some(target);
            match (&set.environment, output) {
                // The environment beside the revision, for a pipeline to record.
                (Some(env), Output::Json) => {
                    let mut json = serde_json::to_value(&report).unwrap_or_default();
                    if let Some(obj) = json.as_object_mut() {
                        obj.insert("environment".into(), env.as_str().into());
                    }
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&json).unwrap_or_default()
                    );
                }
                (Some(env), Output::Text) => {
                    println!("Environment {env} (stack {}).", set.stack);
                    print_report(&report, output, false);
                }
                (None, _) => print_report(&report, output, false),
            }
            if report.has_errors() {
                1
            } else if report.has_changes() {
                2
            } else {
                0
            }
        }
        Command::Apply {
            dir,
            manifests,
            targets,
            auto_approve,
            output,
            wait,
            wait_timeout,
        } => {
            crate::planfile::apply(crate::planfile::ApplyArgs {
                rate,
                expect,
                path: dir,
                manifests,
                targets,
                auto_approve,
                output,
                wait: wait.then_some(wait_timeout),
            })
            .await
        }
        Command::Run {
            dir,
            git,
            branch,
            path,
            work_dir,
            interval,
            listen,
            mode,
            config,
            shutdown_grace,
            backoff,
            kind_intervals,
            prune,
            allow_empty_prune,
            leader_election,
            lease_table,
            lease_name,
            lease_duration,
            replica_id,
            advertise_url,
            events_queue,
            events_quiet,
            http_max_connections,
            http_header_timeout,
            http_idle_timeout,
        } => {
            if lease_table.is_some() && !leader_election {
                // clap catches the flag; this catches MOORING_LEADER_ELECTION=false.
                eprintln!(
                    "error: --lease-table is set but leader election is off (add --leader-election)"
                );
                return 1;
            }
            let source = match (dir, git) {
                (_, Some(url)) => {
                    let work_dir =
                        work_dir.unwrap_or_else(|| std::env::temp_dir().join("mooring-git"));
                    reconcile::daemon::Source::Git(std::sync::Arc::new(std::sync::Mutex::new(
                        crate::source::git::GitSource::new(&url, &branch, &path, &work_dir),
                    )))
                }
                (Some(dir), None) => reconcile::daemon::Source::Dir(dir),
                (None, None) => return 1, // clap requires one of them
            };
            run(RunArgs {
                rate,
                expect_account: expect.map(str::to_string),
                source,
                interval,
                listen,
                mode,
                config,
                shutdown_grace,
                backoff,
                kind_intervals,
                prune,
                allow_empty_prune,
                http: crate::status::server::Limits {
                    header_read: http_header_timeout,
                    idle: http_idle_timeout,
                    max_connections: usize::try_from(http_max_connections).unwrap_or(usize::MAX),
                    ..Default::default()
                },
                lease: lease_table.filter(|_| leader_election).map(|table| {
                    crate::lease::LeaseConfig {
                        table,
                        name: lease_name,
                        // The pod or task name; failing that a random name (a PID
                        // is 1 in every container, and two replicas with one name
                        // would both lead).
                        holder: replica_id
                            .or_else(|| std::env::var("HOSTNAME").ok())
                            .filter(|h| !h.is_empty())
                            .unwrap_or_else(|| format!("mooring-{:016x}", fastrand::u64(..))),
                        duration: lease_duration,
                        url: advertise_url,
                    }
                }),
                events: events_queue.map(|queue| (queue, events_quiet)),
            })
            .await
        }
        Command::IamPolicy {
            dir,
            config,
            lease_table,
            events_queue,
        } => {
            let Ok(set) = load(&dir, Output::Text) else {
                return 1;
            };
            let mut policy = crate::iam::policy(&set);
            if let Some(path) = config {
                match crate::config::load(&path) {
                    Ok(c) => {
                        let topics: Vec<String> = c.sns_topics();
                        if let (Some(st), Some(list)) = (
                            crate::iam::alert_statement(&topics),
                            policy["Statement"].as_array_mut(),
                        ) {
                            list.push(st);
                        }
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        return 1;
                    }
                }
            }
            if let (Some(table), Some(list)) = (lease_table, policy["Statement"].as_array_mut()) {
                list.push(crate::iam::lease_statement(&table));
            }
            if let (Some(queue), Some(list)) = (events_queue, policy["Statement"].as_array_mut()) {
                list.push(crate::iam::events_statement(&queue));
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&policy).unwrap_or_default()
            );
            0
        }
        Command::Status { url } => status(&url).await,
        Command::EventsSetup { name } => {
            let aws = match Aws::from_env_with(rate).await {
                Ok(aws) => aws,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 1;
                }
            };
            match crate::events::setup(&aws, &name).await {
                Ok(url) => {
                    println!("{url}");
                    eprintln!("run the daemon with --events-queue {url}");
                    0
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
        Command::Schema => {
            print!("{}", crate::manifest::schema::manifest_schema_text());
            0
        }
        Command::Import {
            cluster,
            services,
            cloudformation_stack,
            recursive,
            tag,
            out,
            stack,
            dry_run,
        } => {
            use crate::import::Selection;
            let selection = match (cluster, cloudformation_stack, tag) {
                (Some(cluster), _, _) => Selection::Cluster { cluster, services },
                (_, Some(name), _) => Selection::CloudFormationStack { name, recursive },
                (_, _, Some((key, value))) => Selection::Tag { key, value },
                // clap requires exactly one of them.
                (None, None, None) => return 2,
            };
            let Some((ctx, _)) = context(rate, expect, Output::Text).await else {
                return 1;
            };
            let opts = crate::import::Options {
                selection,
                out,
                stack,
                dry_run,
            };
            crate::import::run(&ctx.aws, &opts).await
        }
    }
}

/// Writes `text` to stdout, keeping its styles only where colour is on.
fn print_styled(text: &str) {
    use std::io::Write as _;
    let mut out = anstream::stdout();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

const GREEN: anstyle::Style = anstyle::AnsiColor::Green.on_default();
const YELLOW: anstyle::Style = anstyle::AnsiColor::Yellow.on_default();
const RED: anstyle::Style = anstyle::AnsiColor::Red.on_default();
const MAGENTA: anstyle::Style = anstyle::AnsiColor::Magenta.on_default();
const CYAN: anstyle::Style = anstyle::AnsiColor::Cyan.on_default();
const DIM: anstyle::Style = anstyle::Style::new().dimmed();
const BOLD: anstyle::Style = anstyle::Style::new().bold();

/// `text` in `style` (the codes are dropped on the way out when colour is off).
fn styled(style: anstyle::Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Colours a plan or apply report from [`render_report`] line by line: `+` set green, `~`
/// changed yellow, `-` removed red, a replacement (header and fields) magenta, errors red,
/// in sync dim. Only styles are added: without colour the text is [`render_report`]'s,
/// byte for byte.
pub fn paint_report(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut replacing = false;
    for line in text.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let style = if body.starts_with("  + ") {
            Some(if replacing { MAGENTA } else { GREEN })
        } else if body.starts_with("  ~ ") {
            Some(if replacing { MAGENTA } else { YELLOW })
        } else if body.starts_with("  - ") {
            Some(RED)
        } else if body.starts_with(' ') || body.is_empty() {
            None
        } else if body.starts_with("Plan: ") || body.starts_with("Apply: ") {
            Some(BOLD)
        } else if let Some((_, verb)) = body.split_once(": ") {
            let verb = verb.split(' ').next().unwrap_or_default();
            replacing = matches!(verb, "replace" | "replaced");
            match verb {
                "create" | "created" => Some(GREEN),
                "update" | "updated" => Some(YELLOW),
                "replace" | "replaced" => Some(MAGENTA),
                "error" => Some(RED),
                "in" => Some(DIM),
                _ => None,
            }
        } else {
            None
        };
        match style {
            Some(s) => out.push_str(&styled(s, body)),
            None => out.push_str(body),
        }
        out.push_str(newline);
    }
    out
}

/// `mooring status`: reads `URL/status` and prints it as a table.
async fn status(url: &str) -> i32 {
    let endpoint = format!("{}/status", url.trim_end_matches('/'));
    let shown = endpoint.clone();
    let fetched = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(true)
            .build()
            .into();
        agent
            .get(&endpoint)
            .call()
            .map_err(|e| e.to_string())?
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| e.to_string())
            .and_then(|text| {
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| format!("the answer is not /status JSON: {e}"))
            })
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match fetched {
        Ok(body) => {
            print_styled(&render_status(&body));
            0
        }
        Err(e) => {
            // The URL may carry credentials; they are never shown.
            let message = format!(
                "error: failed to read {shown}: {e} (is `mooring run` listening there? see --url)"
            );
            eprintln!("{}", crate::source::git::scrub(&message, &shown));
            1
        }
    }
}

/// A state as `mooring status` shows it: words, coloured.
fn state_style(state: &str) -> anstyle::Style {
    match state {
        "in_sync" => GREEN,
        "drifted" => YELLOW,
        "failed" | "blocked" => RED,
        "applying" => CYAN,
        _ => DIM,
    }
}

/// Removes control characters from every string in `v`.
fn drop_controls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(text) => text.retain(|c| !c.is_control()),
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_controls),
        serde_json::Value::Object(map) => map.values_mut().for_each(drop_controls),
        _ => {}
    }
}

/// The table `mooring status` prints for a `/status` document.
pub fn render_status(s: &serde_json::Value) -> String {
    // Whatever answered may not drive the terminal: its strings lose control characters
    // (escape sequences, carriage returns); only our own colours are added below.
    let mut s = s.clone();
    drop_controls(&mut s);
    let s = &s;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let mut out = String::new();
    let target = match (
        s["target"]["account"].as_str(),
        s["target"]["region"].as_str(),
    ) {
        (Some(a), Some(r)) => format!("account {a}, region {r}"),
        _ => "account and region not known yet".into(),
    };
    let role = match s.get("leadership") {
        None => "single replica".to_string(),
        Some(l) if l["leader"] == true => "leader".to_string(),
        Some(l) => match l["holder"].as_str() {
            Some(h) => format!("standby (leader: {h})"),
            None => "standby".to_string(),
        },
    };
    let revision = s["revision"].as_str().unwrap_or("none");
    let last_pass = match (s["lastPass"].as_str(), s["lastPassMs"].as_u64()) {
        (Some(at), Some(ms)) => format!("last pass {at} ({ms} ms)"),
        (Some(at), None) => format!("last pass {at}"),
        _ => "no pass yet".to_string(),
    };
    let _ = writeln!(
        out,
        "{}",
        styled(
            BOLD,
            &format!(
                "{target} · revision {revision} · {role} · {last_pass} · {} mode",
                text(&s["mode"])
            )
        )
    );
    let resources = s["resources"].as_array().cloned().unwrap_or_default();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for r in &resources {
        let state = text(&r["state"]);
        match counts.iter_mut().find(|(s, _)| *s == state) {
            Some((_, n)) => *n += 1,
            None => counts.push((state, 1)),
        }
    }
    let order = |s: &str| {
        crate::status::ResourceState::ALL
            .iter()
            .position(|k| k.as_str() == s)
            .unwrap_or(usize::MAX)
    };
    counts.sort_by_key(|(s, _)| order(s));
    let counts: Vec<String> = counts
        .iter()
        .map(|(state, n)| {
            styled(
                state_style(state),
                &format!("{n} {}", state.replace('_', " ")),
            )
        })
        .collect();
    let _ = writeln!(out, "{} resources: {}", resources.len(), counts.join(", "));
    if let Some(errors) = s["manifestErrors"].as_array().filter(|e| !e.is_empty()) {
        let _ = writeln!(
            out,
            "{}",
            styled(
                RED,
                &format!(
                    "the newest manifests were rejected ({} error(s)); the last good revision keeps running",
                    errors.len()
                )
            )
        );
    }
    if resources.is_empty() {
        return out;
    }
    let rows: Vec<[String; 5]> = resources
        .iter()
        .map(|r| {
            let fields: Vec<String> = r["diff"]
                .as_array()
                .map(|d| d.iter().map(|c| text(&c["field"])).collect())
                .unwrap_or_default();
            let error = match (
                r["lastError"]["message"].as_str(),
                r["lastError"]["category"].as_str(),
            ) {
                (Some(m), Some(c)) => format!("{m} ({c})"),
                (Some(m), None) => m.to_string(),
                _ => String::new(),
            };
            [
                text(&r["kind"]),
                text(&r["name"]),
                text(&r["state"]),
                fields.join(", "),
                error,
            ]
        })
        .collect();
    let header = ["KIND", "NAME", "STATE", "PENDING CHANGES", "LAST ERROR"];
    let mut width = header.map(str::len);
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.replace('_', " ").chars().count());
        }
    }
    let line = |cells: [String; 5], styles: [Option<anstyle::Style>; 5]| {
        let mut l = String::new();
        for (i, (cell, style)) in cells.iter().zip(styles).enumerate() {
            let last = i == cells.len() - 1;
            let padded = if last {
                cell.clone()
            } else {
                format!("{cell:<w$}  ", w = width[i])
            };
            match style {
                Some(s) if !cell.is_empty() => {
                    let pad = padded.len() - cell.len();
                    l.push_str(&styled(s, cell));
                    l.push_str(&" ".repeat(pad));
                }
                _ => l.push_str(&padded),
            }
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", line(header.map(str::to_string), [Some(BOLD); 5]));
    for [kind, name, state, fields, error] in rows {
        let style = state_style(&state);
        let _ = writeln!(
            out,
            "{}",
            line(
                [kind, name, state.replace('_', " "), fields, error],
                [None, None, Some(style), Some(YELLOW), Some(RED)]
            )
        );
    }
    out
}

/// Loads manifests, printing every error. Returns exit code 1 on errors.
pub(crate) fn load(dir: &std::path::Path, output: Output) -> Result<ManifestSet, i32> {
    report_loaded(load_dir(dir), output)
}

/// Prints a loaded set's warnings, or its errors; exit code 1 on errors.
fn report_loaded(
    loaded: Result<ManifestSet, ManifestErrors>,
    output: Output,
) -> Result<ManifestSet, i32> {
    if let Ok(set) = &loaded {
        // Warnings go to stderr in both formats: stdout stays one JSON document.
        for w in &set.warnings {
            eprintln!("warning: {w}");
        }
    }
    loaded.map_err(|ManifestErrors(errors)| {
        match output {
            Output::Text => {
                for e in &errors {
                    eprintln!("{e}");
                }
                eprintln!("{} error(s); nothing was sent to AWS", errors.len());
            }
            Output::Json => println!("{}", serde_json::json!({"valid": false, "errors": errors})),
        }
        1
    })
}

/// The AWS clients, after asking which account and region they work in: missing or
/// refused credentials, an endpoint that does not answer, or another account than
/// `expect` is one error (on stderr, or as JSON on stdout) before any resource is read.
pub(crate) async fn context(
    rate: crate::aws::TransportSettings,
    expect: Option<&str>,
    output: Output,
) -> Option<(Context, Target)> {
    let fail = |message: String, category: &str| {
        match output {
            Output::Text => eprintln!("error: {message}; nothing was read or changed"),
            Output::Json => println!(
                "{}",
                serde_json::json!({"error": {"category": category, "message": message}})
            ),
        }
        None
    };
    let aws = match Aws::from_env_with(rate).await {
        Ok(aws) => aws,
        Err(e) => return fail(e.to_string(), e.category.as_str()),
    };
    let target = match aws.target().await {
        Ok(t) => t,
        Err(e) => return fail(e.to_string(), e.category.as_str()),
    };
    if let Some(expected) = expect.filter(|e| *e != target.account) {
        return fail(
            format!(
                "the credentials belong to account {}, not {expected} (--expect-account)",
                target.account
            ),
            "configuration",
        );
    }
    info!(%target, "working in");
    Some((Context::new(aws), target))
}

/// Renders a plan or apply report for people.
pub fn render_report(report: &PassReport, applied: bool) -> String {
    let mut out = String::new();
    if let Some(t) = &report.target {
        let _ = writeln!(out, "AWS: {t}");
    }
    let (mut create, mut update, mut replace, mut same, mut failed) = (0, 0, 0, 0, 0);
    for r in &report.resources {
        let id = r.id();
        let error = r.error();
        if let Some(e) = &error {
            failed += 1;
            let _ = writeln!(out, "{id}: error ({}): {}", e.category, e.message);
            if r.changes.is_empty() {
                continue;
            }
        }
        let done = applied && r.applied;
        // An apply counts what it completed: a resource whose apply failed (even part way
        // through: some of its calls may have gone out) is in `failed`, and one held is in
        // neither; only what was done is among the created or updated.
        let count = usize::from(!applied || done);
        let verb = match r.action {
            Action::None => {
                same += 1;
                "in sync"
            }
            Action::Create => {
                create += count;
                if done { "created" } else { "create" }
            }
            Action::Update => {
                update += count;
                if done { "updated" } else { "update" }
            }
            Action::Replace => {
                replace += count;
                if done { "replaced" } else { "replace" }
            }
        };
        let rollout = r
            .rollout
            .as_ref()
            .map(|ro| {
                format!(
                    " (rollout {}, {}/{} running)",
                    ro.state, ro.running, ro.desired
                )
            })
            .unwrap_or_default();
        if error.is_none() {
            let _ = writeln!(out, "{id}: {verb}{rollout}");
        }
        if done && r.action == Action::Create {
            let _ = writeln!(out, "  ({} fields set)", r.changes.len());
            continue;
        }
        for c in &r.changes {
            if let Some(note) = crate::kinds::service::predeploy::shown_note(c) {
                let _ = writeln!(out, "  {note}");
            } else if r.action == Action::Create {
                let _ = writeln!(out, "  + {} = {}", c.field, show(&c.desired));
            } else {
                let note = c.note.as_ref().map(|n| format!(" ({n})"));
                let _ = writeln!(
                    out,
                    "  ~ {}: {} -> {}{}",
                    c.field,
                    show(&c.live),
                    show(&c.desired),
                    note.unwrap_or_default()
                );
            }
        }
    }
    let summary = if applied {
        format!("{create} created, {update} updated, {replace} replaced")
    } else {
        format!("{create} to create, {update} to update, {replace} to replace")
    };
    let _ = writeln!(
        out,
        "\n{}: {summary}, {same} in sync, {failed} failed (revision {}).",
        if applied { "Apply" } else { "Plan" },
        report.revision
    );
    out
}

pub(crate) fn print_report(report: &PassReport, output: Output, applied: bool) {
    match output {
        Output::Text => print_styled(&paint_report(&render_report(report, applied))),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        ),
    }
}

/// Settings of `mooring run`.
struct RunArgs {
    rate: crate::aws::TransportSettings,
    expect_account: Option<String>,
    source: reconcile::daemon::Source,
    interval: Duration,
    listen: SocketAddr,
    mode: Mode,
    config: Option<PathBuf>,
    shutdown_grace: Duration,
    backoff: Duration,
    kind_intervals: Vec<(Kind, Duration)>,
    prune: bool,
    allow_empty_prune: bool,
    http: crate::status::server::Limits,
    lease: Option<crate::lease::LeaseConfig>,
    /// The change-event queue and how long without an event is suspicious.
    events: Option<(String, Duration)>,
}

async fn run(args: RunArgs) -> i32 {
    // Load and validate before anything else: a daemon that starts on a broken set has
    // nothing to fall back to.
    if report_loaded(reconcile::daemon::load(&args.source).await, Output::Text).is_err() {
        return 1;
    }
    let source_label = match &args.source {
        reconcile::daemon::Source::Dir(dir) => dir.display().to_string(),
        reconcile::daemon::Source::Git(git) => git
            .lock()
            .map(|g| g.label())
            .unwrap_or_else(|_| "git".to_string()),
    };
    let config = match &args.config {
        Some(path) => match crate::config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        },
        None => crate::config::OperatorConfig::default(),
    };
    // The daemon asks who and where first too, but carries on when AWS does not answer
    // yet (every pass asks again), unless the account must be checked first.
    let aws = match Aws::from_env_with(args.rate).await {
        Ok(aws) => aws,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let target = match aws.target().await {
        Ok(t) => Some(t),
        Err(e) if e.category == ErrorCategory::Transient && args.expect_account.is_none() => {
            warn!(error = %e, "cannot tell the account yet; every pass asks again");
            None
        }
        Err(e) => {
            eprintln!("error: {e}; nothing was read or changed");
            return 1;
        }
    };
    if let (Some(expected), Some(t)) = (&args.expect_account, &target)
        && *expected != t.account
    {
        eprintln!(
            "error: the credentials belong to account {}, not {expected} (--expect-account); nothing was read or changed",
            t.account
        );
        return 1;
    }
    if let Some(t) = &target {
        info!(target = %t, "working in");
    }
    let ctx = Context::new(aws);
    let mode_name = match args.mode {
        Mode::Enforce => "enforce",
        Mode::Observe => "observe",
    };
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let sinks = match crate::alerts::Sinks::from_config(&config, Some(ctx.aws.sns.clone())) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: alert sinks: {e}");
            return 1;
        }
    };
    let webhook_secret = match config.webhook.as_ref().map(|w| w.secret.resolve()) {
        Some(Ok(secret)) => Some(std::sync::Arc::new(secret.into_bytes())),
        Some(Err(e)) => {
            eprintln!("error: webhook.secret: {e}");
            return 1;
        }
        None => None,
    };
    let status = StatusStore::new(&source_label, mode_name);
    if let Some(t) = target {
        status.set_target(t);
    }
    let trigger = std::sync::Arc::new(tokio::sync::Notify::new());
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            error!(listen = %args.listen, error = %e, "failed to bind the HTTP server");
            return 1;
        }
    };
    info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), mode = mode_name, "serving /status and /metrics");
    let _watcher = match &args.source {
        reconcile::daemon::Source::Dir(dir) => reconcile::watch::watch(dir, trigger.clone()),
        reconcile::daemon::Source::Git(_) => None,
    };
    let (tx, rx) = watch::channel(false);
    let signalled = std::sync::Arc::new(std::sync::OnceLock::new());
    let signalled_at = signalled.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = signalled_at.set(std::time::Instant::now());
        let _ = tx.send(true);
    });
    let heartbeat = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(
        reconcile::daemon::unix_now(),
    ));
    // The rule the lease uses too: no new round for 3 intervals plus the grace is stuck.
    let stuck_after = args.interval * 3 + args.shutdown_grace;
    let app = crate::status::http::App {
        status: status.clone(),
        metrics: metrics.clone(),
        trigger: trigger.clone(),
        webhook_secret,
        liveness: Some(crate::status::http::Liveness {
            heartbeat: heartbeat.clone(),
            stuck_after,
        }),
    };
    let mut server_rx = rx.clone();
    let server = tokio::spawn(crate::status::server::serve(
        listener,
        crate::status::http::router(app),
        args.http,
        async move {
            let _ = server_rx.wait_for(|v| *v).await;
        },
    ));
    let cfg = reconcile::daemon::DaemonConfig {
        source: args.source,
        interval: args.interval,
        kind_intervals: args.kind_intervals.into_iter().collect(),
        enforce: args.mode == Mode::Enforce,
        grace: args.shutdown_grace,
        backoff: (args.backoff, Duration::from_secs(600).max(args.backoff)),
        prune: args.prune,
        allow_empty_prune: args.allow_empty_prune,
        deploy_timeout: config
            .deploys
            .timeout_seconds
            .map_or(crate::deploys::DEFAULT_TIMEOUT, Duration::from_secs),
    };
    let lease = args
        .lease
        .map(|l| crate::lease::Lease::new(l, ctx.aws.dynamodb.clone()));
    if let Some(lease) = &lease {
        // Every AWS write asks the lease right before it is sent.
        ctx.aws.fence.guard_with(lease.may_write());
        status.follow_lease(lease.clone());
    }
    match lease.clone() {
        Some(lease) => reconcile::leadership::spawn_renewal(reconcile::leadership::Renewal {
            lease,
            trigger: trigger.clone(),
            metrics: metrics.clone(),
            status: status.clone(),
            stop: rx.clone(),
            heartbeat: heartbeat.clone(),
            stuck_after,
        }),
        None => metrics.set_leader(true),
    }
    let alerter = crate::alerts::Alerter::start(sinks, metrics.clone());
    if let Some(t) = status.target() {
        alerter.set_target(t);
    }
    let events = args.events.map(|(queue, quiet)| {
        let rechecks = std::sync::Arc::new(crate::events::Rechecks::default());
        tokio::spawn(crate::events::consume(
            ctx.aws.clone(),
            queue,
            // The long poll stays below the transport's response timeout.
            args.rate
                .response_timeout
                .saturating_sub(Duration::from_secs(1)),
            rechecks.clone(),
            crate::events::Shown {
                status: status.clone(),
                metrics: metrics.clone(),
                quiet,
            },
            lease.clone(),
            rx.clone(),
        ));
        rechecks
    });
    let shared = reconcile::daemon::Shared {
        alerter: alerter.clone(),
        status,
        metrics,
        trigger,
        lease: lease.clone(),
        heartbeat,
        events,
    };
    reconcile::daemon::run(cfg, ctx, shared, rx).await;
    if let Some(lease) = lease {
        // Hand over at once instead of making a standby wait for the lease to expire.
        lease.release().await;
    }
    // Alerts still queued go out within what is left of the grace (at least a few seconds:
    // the pod's termination grace period leaves 15 s beyond it).
    let spent = signalled.get().map(|t| t.elapsed()).unwrap_or_default();
    let left = args
        .shutdown_grace
        .saturating_sub(spent)
        .max(args.shutdown_grace.min(Duration::from_secs(5)));
    alerter.flush(left).await;
    match server.await {
        Ok(()) => 0,
        Err(e) => {
            error!(error = %e, "HTTP server task failed");
            1
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review finding: an apply counted resources that failed before any change went out
    /// among the created and updated (`3 created … 3 failed` when nothing was created).
    #[test]
    fn an_apply_summary_counts_only_what_was_done() {
        use crate::reconcile::{Action, Category, Failure, Outcome, PassReport, ResourceReport};
        let change = crate::reconcile::diff::FieldChange {
            field: "desiredCount".into(),
            live: serde_json::json!(1),
            desired: serde_json::json!(2),
            note: None,
        };
        let resource = |name: &str, action, applied, outcome| ResourceReport {
            kind: crate::manifest::Kind::Service,
            name: name.into(),
            aws_id: String::new(),
            action,
            changes: vec![change.clone()],
            applied,
            rollout: None,
            outcome,
        };
        let failed = Outcome::Failed {
            failure: Failure {
                category: Category::Requirement,
                message: "refused".into(),
            },
        };
        let report = PassReport {
            revision: "r".into(),
            target: None,
            resources: vec![
                resource("a", Action::Update, true, Outcome::Applied),
                resource("b", Action::Create, false, failed.clone()),
                resource("c", Action::Update, false, failed),
            ],
            aws_calls: Default::default(),
            aws_calls_by_kind: Default::default(),
            check_seconds_by_kind: Default::default(),
        };
        let applied = render_report(&report, true);
        assert!(
            applied.contains("Apply: 0 created, 1 updated, 0 replaced, 0 in sync, 2 failed"),
            "{applied}"
        );
        let planned = render_report(&report, false);
        assert!(
            planned.contains("Plan: 1 to create, 2 to update, 0 to replace, 0 in sync, 2 failed"),
            "{planned}"
        );
    }

    #[test]
    fn the_version_names_the_revision() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")));
        let rev = VERSION.split("(rev ").nth(1).unwrap().trim_end_matches(')');
        assert!(
            rev == "unknown" || (rev.len() == 12 && rev.bytes().all(|b| b.is_ascii_hexdigit())),
            "{VERSION}"
        );
    }

    #[test]
    fn kind_intervals() {
        assert_eq!(
            parse_kind_interval("Service=30s").unwrap(),
            (Kind::Service, Duration::from_secs(30))
        );
        assert!(
            parse_kind_interval("Servise=30s")
                .unwrap_err()
                .contains("unknown kind")
        );
        assert!(parse_kind_interval("Service").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999h").is_err());
    }

    #[test]
    fn plan_colours_are_styles_only() {
        let plain = "AWS: account 1, region r\nService/api: update\n  ~ desiredCount: 7 -> 2\nCluster/prd: create\n  + clusterName = \"prd\"\nRepository/img: replace\n  ~ encryption: \"AES256\" -> \"KMS\"\nLogGroup/x: in sync\nAlarm/a: error (validation): bad\n\nPlan: 1 to create, 1 to update, 1 to replace, 1 in sync, 1 failed (revision r1).\n";
        let painted = paint_report(plain);
        assert_eq!(anstream::adapter::strip_str(&painted).to_string(), plain);
        let line = |start: &str| painted.lines().find(|l| l.contains(start)).unwrap();
        let (green, yellow, red, magenta) = (
            GREEN.render().to_string(),
            YELLOW.render().to_string(),
            RED.render().to_string(),
            MAGENTA.render().to_string(),
        );
        assert!(line("~ desiredCount").starts_with(&yellow), "{painted:?}");
        assert!(line("+ clusterName").starts_with(&green), "{painted:?}");
        assert!(line("Repository/img").starts_with(&magenta), "{painted:?}");
        assert!(line("~ encryption").starts_with(&magenta), "{painted:?}");
        assert!(line("Alarm/a").starts_with(&red), "{painted:?}");
        assert!(line("AWS: ").starts_with("AWS: "), "{painted:?}");
    }

    #[test]
    fn the_status_table_names_resources_states_and_errors() {
        let status = serde_json::json!({
            "mode": "enforce",
            "revision": "sha256:abc",
            "lastPass": "2026-01-01T00:00:00Z",
            "lastPassMs": 120,
            "target": {"account": "123456789012", "region": "eu-west-1"},
            "leadership": {"leader": false, "holder": "pod-a"},
            "resources": [
                {"kind": "Cluster", "name": "prd", "state": "in_sync"},
                {"kind": "Service", "name": "api", "state": "drifted",
                 "diff": [{"field": "desiredCount", "live": 7, "desired": 2}]},
                {"kind": "Alarm", "name": "cpu", "state": "failed",
                 "lastError": {"category": "validation", "message": "bad threshold"}}
            ]
        });
        let painted = render_status(&status);
        assert!(painted.contains('\u{1b}'));
        let plain = anstream::adapter::strip_str(&painted).to_string();
        assert_eq!(
            plain,
            "account 123456789012, region eu-west-1 · revision sha256:abc · standby (leader: pod-a) · last pass 2026-01-01T00:00:00Z (120 ms) · enforce mode\n\
             3 resources: 1 in sync, 1 drifted, 1 failed\n\
             \n\
             KIND     NAME  STATE    PENDING CHANGES  LAST ERROR\n\
             Cluster  prd   in sync\n\
             Service  api   drifted  desiredCount\n\
             Alarm    cpu   failed                    bad threshold (validation)\n"
        );
    }

    /// A lease shorter than a renewal round trip, or hours long, is refused with the range.
    #[test]
    fn lease_durations_are_bounded() {
        assert_eq!(
            parse_lease_duration("15s").unwrap(),
            Duration::from_secs(15)
        );
        assert_eq!(parse_lease_duration("3s").unwrap(), Duration::from_secs(3));
        assert_eq!(
            parse_lease_duration("1h").unwrap(),
            Duration::from_secs(3600)
        );
        for bad in ["2ns", "2999ms", "1h1s", "1d"] {
            let e = parse_lease_duration(bad).unwrap_err();
            assert!(
                e.contains("out of range") && e.contains("3s to 1h"),
                "{bad}: {e}"
            );
        }
        assert!(
            parse_lease_duration("0s")
                .unwrap_err()
                .contains("more than zero")
        );
    }

    /// Issue 15: humantime's combined forms, with every old form still accepted.
    #[test]
    fn durations_combine_units() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h 15m").unwrap(), Duration::from_secs(4500));
        assert_eq!(
            parse_duration("2s500ms").unwrap(),
            Duration::from_millis(2500)
        );
        for (old, secs) in [("90", 90), ("90s", 90), ("5m", 300), ("1h", 3600)] {
            assert_eq!(parse_duration(old).unwrap(), Duration::from_secs(secs));
        }
        let e = parse_duration("5 parsecs").unwrap_err();
        assert!(e.contains("unknown unit `parsecs`"), "{e}");
        assert!(parse_duration("0m0s").is_err());
        assert!(
            parse_duration("1m30").is_err(),
            "a unit-less tail is ambiguous"
        );
        assert!(
            parse_duration("99999999999999999999")
                .unwrap_err()
                .contains("too long")
        );
    }

    /// A `/status` answer (someone else's server, or an error message AWS echoed) cannot
    /// drive the terminal: control characters in its strings are dropped, only mooring's
    /// own colours remain.
    #[test]
    fn the_status_table_drops_control_characters_from_the_answer() {
        let status = serde_json::json!({
            "mode": "enforce\u{1b}]0;pwned\u{7}",
            "leadership": {"leader": false, "holder": "pod\u{1b}[2J"},
            "resources": [
                {"kind": "Alarm", "name": "cpu\r", "state": "failed",
                 "lastError": {"category": "validation",
                               "message": "bad\u{1b}]52;c;aGVsbG8=\u{7} threshold"}}
            ]
        });
        let painted = render_status(&status);
        assert!(!painted.contains("\u{1b}]"), "{painted:?}");
        assert!(!painted.contains("\u{1b}[2J"), "{painted:?}");
        assert!(!painted.contains(['\u{7}', '\r']), "{painted:?}");
        let plain = anstream::adapter::strip_str(&painted).to_string();
        assert!(
            plain.contains("bad]52;c;aGVsbG8= threshold (validation)"),
            "{plain:?}"
        );
    }

    /// clap prints an argument's environment value in `--help` (`[env: NAME=value]`): the
    /// URLs that may carry credentials (a git token, a proxy's basic auth) keep theirs out.
    #[test]
    fn help_never_shows_urls_from_the_environment() {
        use clap::CommandFactory as _;
        let cli = Cli::command();
        for (command, arg) in [("run", "git"), ("status", "url")] {
            let sub = cli.find_subcommand(command).expect(command);
            let a = sub.get_arguments().find(|a| a.get_id() == arg).expect(arg);
            assert!(a.get_env().is_some(), "{command} --{arg}");
            assert!(
                a.is_hide_env_values_set(),
                "`mooring {command} --help` prints --{arg}'s value from the environment"
            );
        }
    }
}
