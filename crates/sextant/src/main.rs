//! The `sextant` binary: command-line interface and the wiring of storage, ingest and the HTTP
//! server into one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use sextant_model::time::{parse_duration, parse_size};
use sextant_server::{AppState, BuildInfo, WriteLimits};
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
}

#[derive(Subcommand)]
enum CheckCommand {
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
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9595")]
    listen: SocketAddr,
    /// Directory for the WAL and blocks.
    #[arg(long, default_value = "./sextant-data")]
    data_dir: PathBuf,
    /// How long to keep data (Prometheus duration, e.g. 30d, 12h); 0 keeps everything.
    #[arg(long, default_value = "30d", value_parser = duration_ms)]
    retention: i64,
    /// Maximum bytes of blocks + WAL (e.g. 10GB); oldest blocks are deleted beyond it.
    #[arg(long, value_parser = size_bytes)]
    retention_size: Option<u64>,
    /// Accept out-of-order samples up to this far behind the newest one (e.g. 10m); 0 rejects them.
    #[arg(long, default_value = "0", value_parser = duration_ms)]
    ooo_window: i64,
    /// Cap on active series (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    max_series: usize,
    /// Cap on active series per metric name (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    max_series_per_metric: usize,
    /// Largest accepted write request body, compressed (e.g. 32MB).
    #[arg(long, default_value = "32MB", value_parser = size_bytes)]
    max_request_size: u64,
    /// Largest accepted write request body after decompression.
    #[arg(long, default_value = "128MB", value_parser = size_bytes)]
    max_decoded_size: u64,
    /// Maximum labels per series in write requests.
    #[arg(long, default_value_t = 64)]
    max_labels_per_series: usize,
    /// Maximum length of a label name in write requests.
    #[arg(long, default_value_t = 256)]
    max_label_name_length: usize,
    /// Maximum length of a label value in write requests.
    #[arg(long, default_value_t = 4096)]
    max_label_value_length: usize,
    /// Interval of self-monitoring (Sextant's own metrics stored with job="sextant"); 0 disables it.
    #[arg(long, default_value = "15s", value_parser = duration_ms)]
    self_monitor_interval: i64,
    /// Rule files to evaluate: a file, a directory (all *.yml/*.yaml in it) or a glob; repeatable.
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<String>,
    /// Evaluation interval of rule groups that set none.
    #[arg(long, default_value = "1m", value_parser = duration_ms)]
    evaluation_interval: i64,
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
    /// those external Alertmanagers instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    alerting_config: Option<PathBuf>,
    /// The URL under which Sextant is reached (used in alert generator links and templates).
    #[arg(long)]
    external_url: Option<String>,
    /// Log level filter (error, warn, info, debug, trace or a tracing directive).
    #[arg(long, default_value = "info")]
    log_level: String,
}

mod alerting;
mod query;
mod rules_cmd;

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
        Command::Serve(args) => serve(args),
        Command::Query(args) => query::run(args),
        Command::Check(CheckCommand::Rules { files }) => rules_cmd::check(&files),
        Command::Test(TestCommand::Rules { files }) => rules_cmd::test(&files),
    };
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(a: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&a.log_level).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let opts = DbOptions {
        head: HeadOptions {
            ooo_window: a.ooo_window,
            max_series: a.max_series,
            max_series_per_metric: a.max_series_per_metric,
            ..HeadOptions::default()
        },
        retention: a.retention,
        retention_size: a.retention_size.unwrap_or(0),
        ..DbOptions::default()
    };
    let db = Arc::new(
        Db::open(&a.data_dir, opts)
            .with_context(|| format!("opening the database in {}", a.data_dir.display()))?,
    );
    let maintenance = db.start_maintenance(Duration::from_secs(60));
    let limits = WriteLimits {
        max_body: a.max_request_size as usize,
        max_decoded: a.max_decoded_size as usize,
        max_labels_per_series: a.max_labels_per_series,
        max_label_name_len: a.max_label_name_length,
        max_label_value_len: a.max_label_value_length,
        ..WriteLimits::default()
    };
    let build = BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        revision: option_env!("SEXTANT_REVISION")
            .unwrap_or("unknown")
            .to_string(),
    };
    let state = AppState::new(db.clone(), limits, build);
    let external_url = a
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", a.listen));
    let external_url_am = external_url.clone();
    let rules = rules_cmd::manager(
        &state,
        db.clone(),
        external_url,
        sextant_rules::ManagerOptions {
            evaluation_interval: a.evaluation_interval,
            query_offset: 0,
            resend_delay: a.rules_alert_resend_delay,
            outage_tolerance: a.rules_alert_for_outage_tolerance,
            for_grace_period: a.rules_alert_for_grace_period,
        },
    );
    let am = alerting::builtin(
        &a.data_dir,
        a.alertmanager_config.as_deref(),
        &external_url_am,
    )?;
    state.set_alertmanager(am.clone());
    let external = match &a.alerting_config {
        Some(f) => Some(alerting::load_alerting(f)?),
        None => None,
    };
    let rule_paths = a.rules.clone();
    let first_rules = rules_cmd::load(&rule_paths)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("listening on {}", a.listen))?;
        tracing::info!(listen = %a.listen, data_dir = %a.data_dir.display(), "Sextant is serving");
        am.start();
        let notifier: Arc<dyn sextant_rules::Notifier> = match external {
            Some(cfg) => alerting::ExternalNotifier::start(cfg),
            None => am.clone(),
        };
        rules.set_notifier(Some(notifier));
        let am_reload = alerting::reload_hook(am.clone(), a.alertmanager_config.clone());
        rules_cmd::start(&state, rules, rule_paths, first_rules, am_reload);
        reload_on_sighup(state.clone());
        if a.self_monitor_interval > 0 {
            sextant_server::start_self_monitoring(
                state.clone(),
                a.listen.to_string(),
                Duration::from_millis(a.self_monitor_interval as u64),
            );
        }
        axum::serve(listener, sextant_server::router(state.clone()))
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        anyhow::Ok(())
    })?;
    if let Some(m) = state.rules() {
        m.stop();
    }
    tracing::info!("shutting down: syncing the WAL");
    db.close().context("closing the database")?;
    drop(maintenance);
    tracing::info!("bye");
    Ok(())
}

/// SIGHUP re-reads rule files (and configuration), like Prometheus.
fn reload_on_sighup(state: Arc<AppState>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        while s.recv().await.is_some() {
            let st = state.clone();
            match tokio::task::spawn_blocking(move || st.reload()).await {
                Ok(Ok(())) => tracing::info!("reloaded after SIGHUP"),
                Ok(Err(e)) => tracing::error!(error = %e, "reload after SIGHUP failed; keeping the old configuration"),
                Err(e) => tracing::error!(error = %e, "reload after SIGHUP failed"),
            }
        }
    });
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
