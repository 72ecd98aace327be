//! The `sextant` binary: command-line interface and the wiring of storage, ingest and the HTTP
//! server into one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use sextant_model::time::{parse_duration, parse_size};
use sextant_server::{AppState, BuildInfo, DbSink, WriteLimits};
use sextant_tsdb::db::{Db, DbOptions};
use sextant_tsdb::head::HeadOptions;

#[derive(Parser)]
#[command(
    name = "sextant",
    version,
    about = "Monitoring for AI agent fleets: one binary, Prometheus-compatible."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start; boxing buys nothing
enum Command {
    /// Start the server with embedded defaults.
    Serve(ServeArgs),
    /// Run a PromQL query against a running Sextant (or any Prometheus-compatible server).
    Query(QueryArgs),
    /// Validate files (like `promtool check`).
    #[command(subcommand)]
    Check(CheckCommand),
    /// Run unit tests (like `promtool test`).
    #[command(subcommand)]
    Test(TestCommand),
    /// Service level objectives.
    #[command(subcommand)]
    Slo(SloCommand),
    /// Push metrics from stdin (text format) to a push group, like a Pushgateway client.
    Push(PushArgs),
    /// Dashboards as code.
    #[command(subcommand)]
    Dashboards(dashboards_cmd::DashboardsCommand),
    /// Run a command (a CI step, a cron job) and report its run, JUnit, coverage and
    /// benchmark results; its exit code is passed through.
    Run(run::RunArgs),
    /// Import data that tools wrote to local files.
    #[command(subcommand)]
    Import(import_cmd::ImportCommand),
    /// Fleet report of a period (availability, alerts, tests, LLM tokens and cost, latencies,
    /// SLOs) with trends against the previous period.
    Report(report::cli::ReportArgs),
    /// Export series as CSV, JSON, OpenMetrics or Influx line protocol, to a file or stdout,
    /// an InfluxDB-compatible write endpoint, or Datadog.
    Export(export::ExportArgs),
    /// Make credentials for `auth:` in sextant.yml (see docs/security.md).
    #[command(subcommand)]
    Auth(AuthCommand),
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Print a new random token (give it to the client) and its hash (put it in
    /// `auth.tokens[].hash`).
    NewToken,
    /// Print the hash of a token read from stdin (first line).
    HashToken,
    /// Print the bcrypt hash of a password read from stdin (first line), for
    /// `auth.users[].password_hash`.
    HashPassword,
}

#[derive(Subcommand)]
enum SloCommand {
    /// Print the recording and alerting rules an SLO file compiles to (a Prometheus rule file).
    Generate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Validate sextant.yml files: syntax, unknown fields, durations, URLs, relabel regexes.
    Config {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check Prometheus rule files.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TestCommand {
    /// Run promtool-format rule unit tests.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct PushArgs {
    /// Job name of the group (the `job` label).
    #[arg(long)]
    job: String,
    /// Further grouping label NAME=VALUE (repeatable).
    #[arg(long = "label", value_name = "NAME=VALUE")]
    labels: Vec<String>,
    /// Expire the group after this long without a new push (Prometheus duration, e.g. 1h).
    #[arg(long)]
    ttl: Option<String>,
    /// Server to push to.
    #[arg(long, default_value = "http://127.0.0.1:9595")]
    server: String,
    /// put replaces the group, post replaces only the pushed metric families, delete removes
    /// the group (stdin is not read).
    #[arg(long, value_enum, default_value_t = PushMethod::Put)]
    method: PushMethod,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PushMethod {
    Put,
    Post,
    Delete,
}

#[derive(Args)]
struct QueryArgs {
    /// The PromQL expression.
    expr: String,
    /// Evaluation time of an instant query (RFC 3339 or unix seconds; default now).
    #[arg(long)]
    time: Option<String>,
    /// Start of a range query (RFC 3339 or unix seconds); needs --end.
    #[arg(long, requires = "end")]
    start: Option<String>,
    /// End of a range query.
    #[arg(long, requires = "start")]
    end: Option<String>,
    /// Resolution of a range query (duration like 15s or float seconds); default: range / 250.
    #[arg(long)]
    step: Option<String>,
    /// Server to ask.
    #[arg(long, default_value = "http://127.0.0.1:9595")]
    server: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Args)]
struct ServeArgs {
    /// Configuration file (default: ./sextant.yml if it exists, else embedded defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9595")]
    listen: SocketAddr,
    /// Directory for the WAL and blocks.
    #[arg(long, default_value = "./sextant-data")]
    data_dir: PathBuf,
    /// How often the database cuts the head into blocks, compacts them and applies retention.
    #[arg(long, default_value = "1m", value_parser = duration_ms, hide = true)]
    maintenance_interval: i64,
    /// How long to keep data (Prometheus duration, e.g. 30d, 12h); 0 keeps everything.
    #[arg(long, default_value = "30d", value_parser = duration_ms)]
    retention: i64,
    /// Maximum bytes of blocks + WAL (e.g. 10GB); oldest blocks are deleted beyond it.
    #[arg(long, value_parser = size_bytes)]
    retention_size: Option<u64>,
    /// Accept out-of-order samples up to this far behind the newest one (e.g. 10m); 0 rejects them.
    #[arg(long, default_value = "0", value_parser = duration_ms)]
    ooo_window: i64,
    /// Exemplars kept in memory across all series, in one ring buffer (like Prometheus'
    /// `storage.exemplars.max_exemplars`); 0 disables exemplar storage.
    #[arg(
        long,
        alias = "storage.exemplars.max-exemplars",
        default_value_t = 100_000
    )]
    max_exemplars: usize,
    /// Cap on active series (0 = unlimited; default 0). Flags given win over `limits:` in
    /// the configuration file (see docs/limits.md).
    #[arg(long)]
    max_series: Option<usize>,
    /// Cap on active series per metric name (0 = unlimited; default 0).
    #[arg(long)]
    max_series_per_metric: Option<usize>,
    /// Largest accepted request body, compressed (e.g. 32MB; default 32MB).
    #[arg(long, value_parser = size_bytes)]
    max_request_size: Option<u64>,
    /// Largest accepted request body after decompression (default 128MB).
    #[arg(long, value_parser = size_bytes)]
    max_decoded_size: Option<u64>,
    /// Maximum labels per series in write requests (default 64).
    #[arg(long)]
    max_labels_per_series: Option<usize>,
    /// Maximum length of a label name in write requests (default 256).
    #[arg(long)]
    max_label_name_length: Option<usize>,
    /// Maximum length of a label value in write requests (default 4096).
    #[arg(long)]
    max_label_value_length: Option<usize>,
    /// Longest a query may run (default 2m), like Prometheus' `--query.timeout`.
    #[arg(long, alias = "query.timeout", value_parser = duration_ms)]
    query_timeout: Option<i64>,
    /// Most samples a query may load (default 50000000), like `--query.max-samples`.
    #[arg(long, alias = "query.max-samples")]
    query_max_samples: Option<usize>,
    /// Queries run at once (default 20), like `--query.max-concurrency`.
    #[arg(long, alias = "query.max-concurrency")]
    query_max_concurrency: Option<usize>,
    /// Interval of self-monitoring (Sextant's own metrics stored with job="sextant"); 0 disables it.
    #[arg(long, default_value = "15s", value_parser = duration_ms)]
    self_monitor_interval: i64,
    /// How often push groups' current values are re-written to storage (like a scrape of a
    /// Pushgateway), so the last pushed value stays visible to queries; agent event series too.
    #[arg(long, default_value = "15s", value_parser = duration_ms)]
    push_interval: i64,
    /// Do not collect host metrics (node_exporter's metrics about this machine, job="node").
    #[arg(long)]
    no_host_metrics: bool,
    /// Interval of the built-in host collector.
    #[arg(long, default_value = "15s", value_parser = duration_ms)]
    host_metrics_interval: i64,
    /// YAML file with a top-level `processes:` section (process-exporter's `process_names`
    /// format) defining named process groups to monitor; needs host metrics on.
    #[arg(long)]
    processes_config: Option<PathBuf>,
    /// Rule files to evaluate: a file, a directory (all *.yml/*.yaml in it) or a glob; repeatable.
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<String>,
    /// Do not load the built-in rule packs (rules/ in the source tree).
    #[arg(long)]
    no_default_rules: bool,
    /// SLO files (`slos:` list) compiled into recording rules and burn-rate alerts; repeatable.
    #[arg(long = "slos", value_name = "FILE")]
    slos: Vec<PathBuf>,
    /// Evaluation interval of rule groups that set none (default: the config file's
    /// `global.evaluation_interval`, 1m).
    #[arg(long, value_parser = duration_ms)]
    evaluation_interval: Option<i64>,
    /// How far back alert `for` state is restored after a restart.
    #[arg(long, default_value = "1h", value_parser = duration_ms)]
    rules_alert_for_outage_tolerance: i64,
    /// Minimum `for` time left to alerts restored after a restart (Prometheus' default 10m).
    #[arg(long, default_value = "10m", value_parser = duration_ms)]
    rules_alert_for_grace_period: i64,
    /// Minimum time between re-sends of a still-firing alert to the alert manager.
    #[arg(long, default_value = "1m", value_parser = duration_ms)]
    rules_alert_resend_delay: i64,
    /// Alertmanager configuration file (`route`, `receivers`, `inhibit_rules`, `templates`,
    /// `time_intervals`) for the built-in alert manager; without it, every alert goes to a
    /// receiver named "default" that delivers nowhere (the v2 API still works).
    #[arg(long, value_name = "FILE")]
    alertmanager_config: Option<PathBuf>,
    /// YAML file with Prometheus' `alerting:` section (`alertmanagers:`): rule alerts go to
    /// those external Alertmanagers as well as to the built-in one (like Prometheus, which
    /// sends to every configured Alertmanager).
    #[arg(long, value_name = "FILE")]
    alerting_config: Option<PathBuf>,
    /// Do not run the built-in alert manager: no `alerts.db`, the Alertmanager v2 API answers
    /// 503, and rule alerts go only to `--alerting-config`'s Alertmanagers.
    #[arg(long)]
    no_builtin_alertmanager: bool,
    /// Directory of user dashboard files (*.yml, *.yaml, *.json); overrides `dashboards.path`
    /// in the configuration file. Re-read when files change and on reload.
    #[arg(long, value_name = "DIR")]
    dashboards: Option<PathBuf>,
    /// The URL under which Sextant is reached (used in alert generator links and templates).
    #[arg(long)]
    external_url: Option<String>,
    /// Log level filter (error, warn, info, debug, trace or a tracing directive).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Allow listening on a non-loopback address without `auth:`: anyone who reaches the port
    /// can then read, write and delete.
    #[arg(long)]
    insecure_no_auth: bool,
    /// Agent mode (like `prometheus --agent`): scrape, ingest and forward to `remote_write`
    /// only; no blocks, no rules, and query endpoints answer with an error.
    #[arg(long)]
    agent: bool,
    /// Most WAL bytes kept for remote-write queues that are behind (receiver down); past it,
    /// the WAL is checkpointed anyway and the oldest unsent samples are lost to the remote.
    /// 0 = no limit.
    #[arg(long, default_value = "8GB", value_parser = size_bytes)]
    remote_write_max_wal_hold: u64,
}

/// `sextant auth …`.
fn auth_cmd(c: AuthCommand) -> Result<()> {
    let stdin_line = || -> Result<String> {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading stdin")?;
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        anyhow::ensure!(!line.is_empty(), "nothing on stdin");
        Ok(line)
    };
    match c {
        AuthCommand::NewToken => {
            let t = sextant_server::auth::new_token().map_err(anyhow::Error::msg)?;
            println!("token: {t}");
            println!("hash:  {}", sextant_server::auth::hash_token(&t));
        }
        AuthCommand::HashToken => {
            println!("{}", sextant_server::auth::hash_token(&stdin_line()?));
        }
        AuthCommand::HashPassword => {
            println!(
                "{}",
                sextant_server::auth::hash_password(&stdin_line()?).map_err(anyhow::Error::msg)?
            );
        }
    }
    Ok(())
}

/// Chains re-reading `auth:` and `cors:` into the reload hook: tokens and users change at
/// once (a removed token is refused right after the reload), login sessions of users that
/// still exist are kept. The TLS certificate is not re-read (restart to rotate it).
fn auth_reload(
    state: Arc<AppState>,
    (listen, insecure): (SocketAddr, bool),
    config_path: Option<PathBuf>,
    next: Option<rules_cmd::ExtraReload>,
) -> Option<rules_cmd::ExtraReload> {
    Some(Box::new(move || {
        let loaded = config::load(config_path.as_deref()).map_err(|e| e.to_string())?;
        let auth = build_auth(listen, insecure, &loaded).map_err(|e| format!("{e:#}"))?;
        state.set_auth(Arc::new(auth));
        match &next {
            Some(f) => f(),
            None => Ok(()),
        }
    }))
}

/// The credentials checker of `serve`: refuses a non-loopback address without `auth:` unless
/// `--insecure-no-auth` says so.
fn server_auth(a: &ServeArgs, loaded: &config::Loaded) -> Result<sextant_server::Auth> {
    build_auth(a.listen, a.insecure_no_auth, loaded)
}

/// [`server_auth`] from its inputs (also used by reload).
fn build_auth(
    listen: SocketAddr,
    insecure_no_auth: bool,
    loaded: &config::Loaded,
) -> Result<sextant_server::Auth> {
    let auth = match &loaded.auth {
        // Scheduled reports query the engine in-process (report::LocalSource), so they need
        // no credentials of their own.
        Some(c) => sextant_server::Auth::new(c, loaded.cors.clone())
            .map_err(|e| anyhow::anyhow!("auth.{e}"))?,
        None => {
            if !listen.ip().is_loopback() {
                if !insecure_no_auth {
                    anyhow::bail!(
                        "refusing to listen on {} without authentication: configure `auth:` in sextant.yml (see docs/security.md), or pass --insecure-no-auth to serve it open to anyone who can reach it",
                        listen
                    );
                }
                tracing::warn!(listen = %listen, "--insecure-no-auth: serving a non-loopback address without authentication");
            }
            sextant_server::Auth::disabled(loaded.cors.clone())
        }
    };
    Ok(match &loaded.tls_server {
        Some((t, _)) => auth.with_tls(t.client_cert_required_for.clone()),
        None => auth,
    })
}

use sextant::{archive, client, config, forward, report};

mod alerting;
mod dashboards_cmd;
mod export;
mod forges;

mod import_cmd;
mod push;
mod query;
mod remote;
mod rules_cmd;
mod run;

/// Ingest allocates many small, short-lived strings (labels of decoded requests); mimalloc
/// handles that pattern far better than glibc's allocator (measured in bench/).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn duration_ms(s: &str) -> Result<i64, String> {
    parse_duration(s)
        .map(|d| d.as_millis() as i64)
        .map_err(|e| e.to_string())
}

fn size_bytes(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Run(args) => return run::main(args),
        Command::Serve(args) => serve(args),
        Command::Query(args) => query::run(args),
        Command::Push(args) => push::run(args),
        Command::Check(CheckCommand::Rules { files }) => rules_cmd::check(&files),
        Command::Test(TestCommand::Rules { files }) => rules_cmd::test(&files),
        Command::Slo(SloCommand::Generate { files }) => rules_cmd::slo_generate(&files),
        Command::Dashboards(c) => dashboards_cmd::run(c),
        Command::Import(c) => import_cmd::run(c),
        Command::Auth(c) => auth_cmd(c),
        Command::Report(a) => report::cli::run(a),
        Command::Export(a) => export::run(a),
        Command::Check(CheckCommand::Config { files }) => {
            return if config::check(&files) {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            };
        }
    };
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The file `--processes-config` reads (the same section as `processes:` in sextant.yml).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessesFile {
    processes: sextant_ingest::host::ProcessesConfig,
}

fn load_processes(path: &std::path::Path) -> Result<sextant_ingest::host::ProcessesConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let f: ProcessesFile =
        serde_saphyr::from_str(&text).with_context(|| format!("in {}", path.display()))?;
    Ok(f.processes)
}

/// Builds the host collector (and process groups) unless switched off; done before the database
/// opens so a bad `--processes-config` fails start-up early.
fn host_collector(
    a: &ServeArgs,
    from_config: Option<&sextant_ingest::host::ProcessesConfig>,
) -> Result<Option<sextant_ingest::host::HostCollector>> {
    use sextant_ingest::host::{HostCollector, HostOptions};
    let processes = match a.processes_config.as_deref() {
        Some(p) => Some(load_processes(p)?),
        None => from_config.cloned(),
    };
    if a.no_host_metrics {
        if processes.is_some() {
            anyhow::bail!("--processes-config needs host metrics; drop --no-host-metrics");
        }
        return Ok(None);
    }
    if a.host_metrics_interval <= 0 {
        anyhow::bail!(
            "--host-metrics-interval must be positive (use --no-host-metrics to switch it off)"
        );
    }
    let collector =
        HostCollector::new(HostOptions::default(), processes.as_ref()).with_context(|| match &a
            .processes_config
        {
            Some(p) => format!("in {}", p.display()),
            None => "host collector".into(),
        })?;
    Ok(Some(collector))
}

fn serve(a: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&a.log_level).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config_path = a.config.clone().or_else(config::default_path);
    let loaded = config::load(config_path.as_deref())?;
    let auth = server_auth(&a, &loaded)?;
    let tls_server = match &loaded.tls_server {
        Some((t, line)) => Some(t.server_config().map_err(|e| {
            anyhow::anyhow!(
                "{}:{line}: tls_server_config.{e}",
                config_path
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )
        })?),
        None => None,
    };
    match &config_path {
        Some(p) => tracing::info!(
            file = %p.display(),
            scrape_configs = loaded.scrape_configs.len(),
            scrape_interval = %loaded.global.scrape_interval,
            evaluation_interval = %loaded.global.evaluation_interval,
            "loaded configuration"
        ),
        None => tracing::info!("no configuration file: using embedded defaults"),
    }
    let cli_limits = cli_limits(&a);
    let eff = sextant::limits::resolve(&cli_limits, &loaded.limits);
    let opts = DbOptions {
        head: HeadOptions {
            ooo_window: a.ooo_window,
            max_series: eff.max_series,
            max_series_per_metric: eff.max_series_per_metric,
            tenant_label: eff.tenant_label.clone(),
            max_series_per_tenant: eff.max_series_per_tenant,
            ..HeadOptions::default()
        },
        retention: a.retention,
        retention_size: a.retention_size.unwrap_or(0),
        max_exemplars: a.max_exemplars,
        agent: a.agent,
        wal_hold_max_bytes: a.remote_write_max_wal_hold,
        // Agent mode truncates the WAL as soon as it is sent, so cut it in smaller pieces.
        wal_segment_size: if a.agent { 8 << 20 } else { 128 << 20 },
        ..DbOptions::default()
    };
    if a.agent && loaded.remote_write.is_empty() {
        tracing::warn!("agent mode without remote_write: samples are received but sent nowhere");
    }
    let host_collector_built = host_collector(&a, loaded.processes.as_ref())?;
    let db = Arc::new(
        Db::open(&a.data_dir, opts)
            .with_context(|| format!("opening the database in {}", a.data_dir.display()))?,
    );
    // Agent mode checkpoints the WAL every 5 s once the remote-write queues have read it.
    let maintenance_ms = if a.agent {
        a.maintenance_interval.min(5_000)
    } else {
        a.maintenance_interval
    };
    let maintenance = db.start_maintenance(Duration::from_millis(maintenance_ms as u64));
    let archive = match &loaded.archive {
        Some(cfg) => {
            let ar = archive::Archive::new(
                cfg,
                loaded.path.as_deref().and_then(|p| p.parent()),
                db.clone(),
                &a.data_dir,
            )
            .context("archive")?;
            ar.start();
            Some(ar)
        }
        None => None,
    };
    let host = match host_collector_built {
        Some(c) => Some(
            c.spawn(
                Arc::new(sextant_server::DbSink(db.clone())),
                Duration::from_millis(a.host_metrics_interval as u64),
            )
            .context("starting the host metrics thread")?,
        ),
        None => None,
    };
    let limits: WriteLimits = eff.write_limits();
    let build = BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        revision: option_env!("SEXTANT_REVISION")
            .unwrap_or("unknown")
            .to_string(),
    };
    if a.push_interval <= 0 {
        anyhow::bail!("--push-interval must be greater than zero");
    }
    let push = Arc::new(
        sextant_ingest::push::PushGroups::open(
            Arc::new(DbSink(db.clone())),
            Some(a.data_dir.join("push_groups.json")),
            Duration::from_millis(a.push_interval as u64),
            sextant_ingest::push::PushGroups::system_clock(),
        )
        .with_limits(limits.push_limits()),
    );
    let state = AppState::with_push(db.clone(), limits, eff.query_limits(), build, push.clone());
    if let Some(ar) = &archive {
        let ar = ar.clone();
        state
            .metric_sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(move |o: &mut String| ar.render_metrics(o)));
    }
    state.set_auth(Arc::new(auth));
    let agent_events = Arc::new(sextant_ingest::events::AgentEvents::open(
        Arc::new(DbSink(db.clone())),
        sextant_ingest::events::EventsConfig {
            file: Some(a.data_dir.join("agent_events.json")),
            reappend_every: Duration::from_millis(a.push_interval as u64),
            ..Default::default()
        },
        sextant_ingest::events::AgentEvents::system_clock(),
    ));
    state.set_agent_events(agent_events.clone());
    // JUnit uploads: run history in junit.db, series re-appended like push groups.
    state.set_junit(Arc::new(
        sextant_ingest::junit::service::JunitRuns::open(
            Arc::new(DbSink(db.clone())),
            Some(&a.data_dir.join("junit.db")),
            Duration::from_millis(a.push_interval as u64),
            sextant_ingest::junit::service::JunitRuns::system_clock(),
        )
        .with_context(|| format!("opening {}", a.data_dir.join("junit.db").display()))?,
    ));
    let external_url = a.external_url.clone().unwrap_or_else(|| {
        let scheme = if tls_server.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", a.listen)
    });
    let external_labels = sextant_model::Labels::from_pairs(
        loaded
            .global
            .external_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let external_url_am = external_url.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Remote engines before the rule manager, which reads through them too.
    state.set_external_labels(external_labels.clone());
    if let Some(e) = remote::engines(&loaded, db.clone(), &external_labels, rt.handle().clone())? {
        state.set_remote(e);
    }
    let rw_configs = loaded.remote_write.clone();
    let rw_external_labels = external_labels.clone();
    let rules = rules_cmd::manager(
        &state,
        db.clone(),
        external_url,
        external_labels,
        sextant_rules::ManagerOptions {
            evaluation_interval: a
                .evaluation_interval
                .unwrap_or(loaded.global.evaluation_interval.0.as_millis() as i64),
            query_offset: 0,
            resend_delay: a.rules_alert_resend_delay,
            outage_tolerance: a.rules_alert_for_outage_tolerance,
            for_grace_period: a.rules_alert_for_grace_period,
        },
    );
    // Agent mode has no local queries, so no rules (as in Prometheus' agent mode).
    let rule_paths = rules_cmd::RuleSources {
        builtin: !a.no_default_rules && !a.agent,
        paths: if a.agent { Vec::new() } else { a.rules.clone() },
        slos: a.slos.clone(),
        inline_slos: Vec::new(),
    };
    let first_rules = rules_cmd::load(&rule_paths.with_config(&loaded))?;
    if let Err(e) = sextant::limits::check_rule_count(&first_rules.0, eff.max_rules) {
        state
            .limit_hits
            .hit(sextant_server::limits::Limit::RuleCount);
        anyhow::bail!("{e}");
    }
    let builtin_am = if a.no_builtin_alertmanager {
        None
    } else {
        Some(alerting::builtin(
            &a.data_dir,
            a.alertmanager_config.as_deref(),
            loaded
                .alertmanager
                .clone()
                .map(|c| (c, loaded.path.clone())),
            &external_url_am,
        )?)
    };
    if let Some((am, _)) = &builtin_am {
        am.set_max_silences(eff.max_silences);
        state.set_alertmanager(am.clone());
    }
    // Scheduled reports query this server's own API and go out through a receiver of sextant.yml.
    let scheduled_reports = match &loaded.alertmanager {
        Some(am_cfg) if !loaded.reports.is_empty() => Some((
            loaded.reports.clone(),
            am_cfg.receivers.clone(),
            alerting::report_receivers(
                am_cfg,
                loaded.path.as_deref(),
                builtin_am.as_ref().map(|(_, t)| t.clone()),
                &external_url_am,
            )?,
        )),
        _ => None,
    };
    let dashboards = dashboards_cmd::open(
        &a.data_dir,
        a.dashboards.clone().or_else(|| loaded.dashboards_dir()),
    )?;
    state.set_dashboards(dashboards.clone());
    state.set_prices(sextant_server::Prices::new(
        loaded.price_table().map_err(anyhow::Error::msg)?,
    ));
    dashboards.start_watch(Duration::from_secs(5));
    let external = match &a.alerting_config {
        Some(f) => Some(alerting::load_alerting(f)?),
        None => None,
    };
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("listening on {}", a.listen))?;
        tracing::info!(
            listen = %a.listen,
            data_dir = %a.data_dir.display(),
            tls = tls_server.is_some(),
            auth = state.auth().enabled(),
            "Sextant is serving"
        );
        // Like Prometheus, rule alerts go to every Alertmanager: the built-in one (unless
        // switched off) and each external one.
        let mut notifiers: Vec<Arc<dyn sextant_rules::Notifier>> = Vec::new();
        if let Some((am, _)) = &builtin_am {
            am.start();
            notifiers.push(am.clone());
        }
        if let Some(cfg) = external {
            notifiers.push(alerting::ExternalNotifier::start(cfg));
        }
        if notifiers.is_empty() {
            tracing::warn!(
                "--no-builtin-alertmanager without --alerting-config: rule alerts are sent nowhere"
            );
        }
        rules.set_notifier(alerting::fan_out(notifiers));
        let am_reload = builtin_am.and_then(|(am, am_templates)| {
            alerting::reload_hook(
                am,
                am_templates,
                a.alertmanager_config.clone(),
                config_path.clone(),
            )
        });
        let am_reload = dashboards_cmd::with_reload(dashboards.clone(), am_reload);
        // Forge pollers run until shutdown (their handles stop them when dropped).
        let forges = forges::Forges::start(
            loaded.forges.clone(),
            Arc::new(DbSink(db.clone())),
            a.data_dir.join("forges"),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let am_reload = forges::with_reload(forges.clone(), config_path.clone(), am_reload);
        let am_reload = auth_reload(
            state.clone(),
            (a.listen, a.insecure_no_auth),
            config_path.clone(),
            am_reload,
        );
        start_scraping(
            &state,
            config_path.clone(),
            loaded,
            rules,
            rule_paths,
            first_rules,
            am_reload,
            (cli_limits, eff),
        )?;
        if a.self_monitor_interval > 0 {
            sextant_server::start_self_monitoring(
                state.clone(),
                a.listen.to_string(),
                Duration::from_millis(a.self_monitor_interval as u64),
            );
        }
        sextant_server::start_push_maintenance(state.clone());
        sextant_server::start_price_series(state.clone(), Duration::from_secs(10));
        sextant_server::start_agent_events_maintenance(state.clone());
        sextant_server::start_junit_maintenance(state.clone());
        if let Some((reports, receivers, build)) = scheduled_reports {
            report::schedule::start(
                reports,
                receivers,
                Box::new(report::LocalSource(state.clone())),
                external_url_am.clone(),
                build,
                tokio::runtime::Handle::current(),
            )
            .context("starting the report scheduler")?;
        }
        // Remote-write queues read the WAL until shutdown (dropping `_fwd` stops them).
        let _fwd =
            forward::Forwarders::start(db.clone(), &a.data_dir, &rw_configs, rw_external_labels)
                .map_err(|e| anyhow::anyhow!("remote_write: {e}"))?;
        let fwd2 = _fwd.clone();
        state
            .metric_sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(move |o: &mut String| fwd2.render(o)));
        let mut app = sextant_server::router(state.clone());
        if a.agent {
            app = app.layer(axum::middleware::from_fn(forward::agent_guard));
        }
        let app = app.into_make_service_with_connect_info::<sextant_server::tls::ConnInfo>();
        match tls_server {
            Some(cfg) => {
                let listener =
                    sextant_server::tls::TlsListener::new(listener, cfg).context("starting TLS")?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown_signal())
                    .await?;
            }
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown_signal())
                    .await?;
            }
        }
        anyhow::Ok(())
    })?;
    let _ = push.flush(); // logs its own failure
    let _ = agent_events.flush(); // logs its own failure
    drop(host);
    if let Some(m) = state.rules() {
        m.stop();
    }
    // Stop scrape loops and other background tasks before the database closes; writes
    // already running on blocking threads get a few seconds to finish.
    rt.shutdown_timeout(Duration::from_secs(10));
    tracing::info!("shutting down: syncing the WAL");
    db.close().context("closing the database")?;
    drop(maintenance);
    tracing::info!("bye");
    Ok(())
}

/// Starts the scrape manager and the rule manager with the loaded configuration and installs
/// the reload hook that `/-/reload` and SIGHUP use: it re-reads the configuration file and the
/// rule files; when anything is invalid, nothing changes.
#[allow(clippy::too_many_arguments)] // each argument is one piece of start-up state, used once
fn start_scraping(
    state: &Arc<AppState>,
    config_path: Option<PathBuf>,
    loaded: config::Loaded,
    rules: Arc<sextant_rules::Manager>,
    rule_sources: rules_cmd::RuleSources,
    first_rules: (Vec<sextant_rules::GroupDef>, Vec<String>),
    also: Option<rules_cmd::ExtraReload>,
    (cli_limits, first_limits): (sextant::limits::CliLimits, sextant::limits::Effective),
) -> Result<()> {
    let sink: Arc<dyn sextant_ingest::Sink> = Arc::new(sextant_server::DbSink(state.db.clone()));
    let manager = sextant_ingest::scrape::ScrapeManager::new(sink);
    manager
        .apply(loaded.scrape_configs)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let _ = state.scrape.set(manager.clone());
    let probes = sextant_ingest::probe::ProbeManager::new(Arc::new(sextant_server::DbSink(
        state.db.clone(),
    )));
    probes.apply(loaded.probes);
    let _ = state.probes.set(probes.clone());
    rules_cmd::start(state, rules.clone(), first_rules);
    let handle = tokio::runtime::Handle::current();
    let st = state.clone();
    let started_limits = first_limits;
    let hook: sextant_server::ReloadHook = Arc::new(move || {
        let loaded = config::load(config_path.as_deref()).map_err(|e| e.to_string())?;
        let src = rule_sources.with_config(&loaded);
        let (defs, files) = rules_cmd::load(&src).map_err(|e| format!("{e:#}"))?;
        let lim = sextant::limits::resolve(&cli_limits, &loaded.limits);
        if let Err(e) = sextant::limits::check_rule_count(&defs, lim.max_rules) {
            st.limit_hits.hit(sextant_server::limits::Limit::RuleCount);
            return Err(e);
        }
        let prices = loaded.price_table()?;
        if let Some(f) = &also {
            f()?;
        }
        let n = loaded.scrape_configs.len();
        let n_probes = loaded.probes.len();
        manager.apply(loaded.scrape_configs)?;
        if let Some(p) = st.prices() {
            p.set_table(prices);
        }
        probes.apply(loaded.probes);
        apply_limits(&st, &lim, &started_limits);
        let groups = defs.len();
        {
            let _g = handle.enter();
            rules.update(defs, files);
        }
        tracing::info!(
            scrape_configs = n,
            probes = n_probes,
            rule_groups = groups,
            "configuration reloaded"
        );
        Ok(())
    });
    let _ = state.reload.set(hook.clone());
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            let hook = hook.clone();
            match tokio::task::spawn_blocking(move || hook()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "reloading the configuration failed"),
                Err(e) => tracing::error!(error = %e, "reloading the configuration failed"),
            }
        }
    });
    Ok(())
}

/// The limit flags given on the command line (they win over `limits:` in the file).
fn cli_limits(a: &ServeArgs) -> sextant::limits::CliLimits {
    sextant::limits::CliLimits {
        max_request_size: a.max_request_size,
        max_decompressed_size: a.max_decoded_size,
        max_labels_per_series: a.max_labels_per_series,
        max_label_name_length: a.max_label_name_length,
        max_label_value_length: a.max_label_value_length,
        max_series: a.max_series,
        max_series_per_metric: a.max_series_per_metric,
        query_timeout: a
            .query_timeout
            .map(|ms| Duration::from_millis(ms.max(0) as u64)),
        query_max_samples: a.query_max_samples,
        query_max_concurrency: a.query_max_concurrency,
    }
}

/// Applies the limits that can change while running (reload); logs the ones that need a
/// restart.
fn apply_limits(
    st: &AppState,
    lim: &sextant::limits::Effective,
    started: &sextant::limits::Effective,
) {
    st.db.head().set_series_limits(
        lim.max_series,
        lim.max_series_per_metric,
        lim.max_series_per_tenant,
    );
    st.runtime_limits
        .set(lim.max_series_per_request, lim.max_samples_per_request);
    let mut push = st.limits.push_limits();
    push.max_groups = lim.max_push_groups;
    push.max_series_per_request = lim.max_series_per_request;
    push.max_samples_per_request = lim.max_samples_per_request;
    st.push.set_limits(push);
    if let Some(am) = st.alertmanager() {
        am.set_max_silences(lim.max_silences);
    }
    let pending = lim.restart_only_changes(started);
    if !pending.is_empty() {
        tracing::warn!(
            limits = %pending.join(", "),
            "these limits changed in the configuration but take effect only after a restart"
        );
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
        _ = ctrl_c => tracing::info!("received SIGINT"),
        _ = term => tracing::info!("received SIGTERM"),
    }
}
