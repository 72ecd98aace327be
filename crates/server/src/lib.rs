//! Sextant's HTTP surface on one port: the Prometheus write and read APIs, lifecycle endpoints
//! and Sextant's own metrics. Handlers are thin: they parse parameters, call ingest decoders or
//! the TSDB, and shape answers exactly like Prometheus (same JSON, same error types).

mod agent_events;
mod am_api;
mod api;
pub mod auth;
mod dashboards_api;
mod exemplars;
mod export;
mod junit;
pub mod limits;
mod otlp;
mod params;
mod prices;
mod probes_api;
mod push;
mod query;
pub mod redact;
mod remote_read;
mod rules_api;
mod selfmon;
mod targets;
pub mod tls;
mod ui;
mod write;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use sextant_tsdb::db::Db;

pub use agent_events::start_agent_events_maintenance;
pub use auth::{Auth, AuthConfig, CorsConfig};
pub use junit::start_junit_maintenance;
pub use prices::{start_price_series, Prices};
pub use push::{start_push_maintenance, TTL_HEADER};
pub use query::{format_float, instant_json, result_json, QueryLimits};
pub use rules_api::DbRuleStorage;
pub use selfmon::{render_metrics, start_self_monitoring, HttpMetrics};
pub use targets::ReloadHook;
pub use ui::embedded as ui_embedded;
pub use write::DbSink;

/// Limits applied to every write request.
#[derive(Clone, Debug)]
pub struct WriteLimits {
    /// Largest accepted request body, compressed (bytes).
    pub max_body: usize,
    /// Largest accepted body after decompression (bytes).
    pub max_decoded: usize,
    pub max_labels_per_series: usize,
    pub max_label_name_len: usize,
    pub max_label_value_len: usize,
    /// Write requests processed at once; more wait up to `queue_wait`, then get 429.
    pub max_concurrent: usize,
    pub queue_wait: Duration,
    /// Series in one write request (0 = unlimited); changeable by reload.
    pub max_series_per_request: usize,
    /// Samples (floats + histograms) in one write request (0 = unlimited); changeable by reload.
    pub max_samples_per_request: usize,
    /// Pushgateway groups kept at once (0 = unlimited); changeable by reload.
    pub max_push_groups: usize,
}

impl Default for WriteLimits {
    fn default() -> Self {
        WriteLimits {
            max_body: 32 << 20,
            max_decoded: 128 << 20,
            max_labels_per_series: 64,
            max_label_name_len: 256,
            max_label_value_len: 4096,
            max_concurrent: 16,
            queue_wait: Duration::from_secs(10),
            max_series_per_request: 1_000_000,
            max_samples_per_request: 10_000_000,
            max_push_groups: 10_000,
        }
    }
}

impl WriteLimits {
    /// The per-series limits that apply to pushed groups.
    pub fn push_limits(&self) -> sextant_ingest::push::PushLimits {
        sextant_ingest::push::PushLimits {
            max_labels_per_series: self.max_labels_per_series,
            max_label_name_len: self.max_label_name_len,
            max_label_value_len: self.max_label_value_len,
            max_groups: self.max_push_groups,
            max_series_per_request: self.max_series_per_request,
            max_samples_per_request: self.max_samples_per_request,
        }
    }
}

/// Version information reported by `/api/v1/status/buildinfo` and `sextant_build_info`.
#[derive(Clone, Debug)]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
}

/// Shared state of all handlers.
pub struct AppState {
    pub db: Arc<Db>,
    pub limits: WriteLimits,
    pub build: BuildInfo,
    pub http: HttpMetrics,
    pub started: Instant,
    pub start_unix: f64,
    write_slots: tokio::sync::Semaphore,
    pub(crate) ingest: write::IngestMetrics,
    pub(crate) otlp: otlp::OtlpState,
    pub query_limits: QueryLimits,
    query_slots: Arc<tokio::sync::Semaphore>,
    /// Pushgateway-compatible push groups.
    pub push: Arc<sextant_ingest::push::PushGroups>,
    rules: std::sync::OnceLock<Arc<sextant_rules::Manager>>,
    /// The scrape manager, once the binary has started it (for `/api/v1/targets`).
    pub scrape: std::sync::OnceLock<Arc<sextant_ingest::scrape::ScrapeManager>>,
    /// The service probes, once the binary has started them (for `/api/sextant/probes`).
    pub probes: std::sync::OnceLock<Arc<sextant_ingest::probe::ProbeManager>>,
    /// What `/-/reload` runs, installed by the binary.
    pub reload: std::sync::OnceLock<ReloadHook>,
    alertmanager: std::sync::OnceLock<Arc<sextant_alert::AlertManager>>,
    dashboards: std::sync::OnceLock<Arc<sextant_dashboards::Dashboards>>,
    prices: std::sync::OnceLock<Arc<Prices>>,
    agent_events: std::sync::OnceLock<Arc<sextant_ingest::events::AgentEvents>>,
    junit: std::sync::OnceLock<Arc<sextant_ingest::junit::service::JunitRuns>>,
    /// Extra `/metrics` renderers of components the binary starts (the archive, …).
    pub metric_sources: std::sync::Mutex<Vec<MetricSource>>,
    /// Remote engines queries read besides (or instead of) local storage.
    remote: std::sync::OnceLock<Arc<sextant_remote::Engines>>,
    /// `global.external_labels`, for `/api/v1/read`.
    external_labels: std::sync::OnceLock<sextant_model::Labels>,
    auth: std::sync::RwLock<Arc<Auth>>,
    /// `sextant_limit_hits_total`: refusals per limit.
    pub limit_hits: Arc<limits::LimitHits>,
    /// The write limits reload can change.
    pub runtime_limits: limits::RuntimeLimits,
}

/// Appends metric families in the text exposition format to `/metrics`.
pub type MetricSource = Arc<dyn Fn(&mut String) + Send + Sync>;

impl AppState {
    pub fn new(db: Arc<Db>, limits: WriteLimits, build: BuildInfo) -> Arc<Self> {
        Self::with_query_limits(db, limits, QueryLimits::default(), build)
    }

    pub fn with_query_limits(
        db: Arc<Db>,
        limits: WriteLimits,
        query_limits: QueryLimits,
        build: BuildInfo,
    ) -> Arc<Self> {
        let push = Arc::new(
            sextant_ingest::push::PushGroups::open(
                Arc::new(DbSink(db.clone())),
                None,
                Duration::from_secs(15),
                sextant_ingest::push::PushGroups::system_clock(),
            )
            .with_limits(limits.push_limits()),
        );
        Self::with_push(db, limits, query_limits, build, push)
    }

    /// Like [`AppState::with_query_limits`], with push groups set up by the caller
    /// (persistence file, re-append interval).
    pub fn with_push(
        db: Arc<Db>,
        limits: WriteLimits,
        query_limits: QueryLimits,
        build: BuildInfo,
        push: Arc<sextant_ingest::push::PushGroups>,
    ) -> Arc<Self> {
        let slots = limits.max_concurrent.max(1);
        let query_slots = Arc::new(tokio::sync::Semaphore::new(
            query_limits.max_concurrent.max(1),
        ));
        let limit_hits = Arc::new(limits::LimitHits::default());
        for (i, l) in [
            limits::Limit::Series,
            limits::Limit::SeriesPerMetric,
            limits::Limit::SeriesPerTenant,
        ]
        .into_iter()
        .enumerate()
        {
            let db = db.clone();
            limit_hits.add_external(l, Arc::new(move || db.head().series_limit_hits()[i]));
        }
        let runtime_limits = limits::RuntimeLimits::new(
            limits.max_series_per_request,
            limits.max_samples_per_request,
        );
        Arc::new(AppState {
            limit_hits,
            runtime_limits,
            db,
            limits,
            build,
            http: HttpMetrics::default(),
            started: Instant::now(),
            start_unix: sextant_model::time::now_ms() as f64 / 1000.0,
            write_slots: tokio::sync::Semaphore::new(slots),
            ingest: write::IngestMetrics::default(),
            otlp: otlp::OtlpState::default(),
            query_limits,
            query_slots,
            push,
            rules: std::sync::OnceLock::new(),
            scrape: std::sync::OnceLock::new(),
            probes: std::sync::OnceLock::new(),
            alertmanager: std::sync::OnceLock::new(),
            dashboards: std::sync::OnceLock::new(),
            junit: std::sync::OnceLock::new(),
            reload: std::sync::OnceLock::new(),
            prices: std::sync::OnceLock::new(),
            agent_events: std::sync::OnceLock::new(),
            metric_sources: std::sync::Mutex::new(Vec::new()),
            remote: std::sync::OnceLock::new(),
            external_labels: std::sync::OnceLock::new(),
            auth: std::sync::RwLock::new(Arc::new(Auth::disabled(CorsConfig::default()))),
        })
    }

    /// Attaches the remote engines queries read (once, at start).
    pub fn set_remote(&self, e: Arc<sextant_remote::Engines>) {
        let _ = self.remote.set(e);
    }

    /// The remote engines, if any are configured.
    pub fn remote(&self) -> Option<&Arc<sextant_remote::Engines>> {
        self.remote.get().filter(|e| !e.is_local_only())
    }

    /// Sets `global.external_labels` (once, at start).
    pub fn set_external_labels(&self, l: sextant_model::Labels) {
        let _ = self.external_labels.set(l);
    }

    /// `global.external_labels` (empty unless set).
    pub fn external_labels(&self) -> sextant_model::Labels {
        self.external_labels.get().cloned().unwrap_or_default()
    }

    /// Attaches the rule manager (once, at start).
    pub fn set_rules(&self, m: Arc<sextant_rules::Manager>) {
        let _ = self.rules.set(m);
    }

    /// The rule manager, if rules are enabled.
    pub fn rules(&self) -> Option<&Arc<sextant_rules::Manager>> {
        self.rules.get()
    }

    /// Attaches the built-in alert manager (once, at start).
    pub fn set_alertmanager(&self, m: Arc<sextant_alert::AlertManager>) {
        let _ = self.alertmanager.set(m);
    }

    /// The built-in alert manager, if running.
    pub fn alertmanager(&self) -> Option<&Arc<sextant_alert::AlertManager>> {
        self.alertmanager.get()
    }

    /// Attaches the dashboards (once, at start).
    pub fn set_dashboards(&self, d: Arc<sextant_dashboards::Dashboards>) {
        let _ = self.dashboards.set(d);
    }

    /// The dashboards, if enabled.
    pub fn dashboards(&self) -> Option<&Arc<sextant_dashboards::Dashboards>> {
        self.dashboards.get()
    }

    /// Attaches the LLM price table (once, at start).
    pub fn set_prices(&self, p: Arc<Prices>) {
        let _ = self.prices.set(p);
    }

    /// The LLM prices, if enabled.
    pub fn prices(&self) -> Option<&Arc<Prices>> {
        self.prices.get()
    }

    /// Installs the agent events service (once, at start; the binary gives it a state file).
    pub fn set_agent_events(&self, e: Arc<sextant_ingest::events::AgentEvents>) {
        let _ = self.agent_events.set(e);
    }

    /// The agent events service; a memory-only one over the database unless one was installed.
    pub fn agent_events(&self) -> &Arc<sextant_ingest::events::AgentEvents> {
        self.agent_events.get_or_init(|| {
            Arc::new(sextant_ingest::events::AgentEvents::open(
                Arc::new(DbSink(self.db.clone())),
                sextant_ingest::events::EventsConfig::default(),
                sextant_ingest::events::AgentEvents::system_clock(),
            ))
        })
    }

    /// Installs the credentials and CORS allow-list (before serving, and again on reload:
    /// login sessions of users that still exist are kept); without it everything is open.
    pub fn set_auth(&self, a: Arc<Auth>) {
        let mut w = self.auth.write().unwrap_or_else(|e| e.into_inner());
        a.adopt_sessions(&w);
        *w = a;
    }

    /// The credentials checked by [`auth::enforce`].
    pub fn auth(&self) -> Arc<Auth> {
        self.auth.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Attaches the JUnit run history (once, at start).
    pub fn set_junit(&self, j: Arc<sextant_ingest::junit::service::JunitRuns>) {
        let _ = self.junit.set(j);
    }

    /// The JUnit run history, if enabled.
    pub fn junit(&self) -> Option<&Arc<sextant_ingest::junit::service::JunitRuns>> {
        self.junit.get()
    }
}

/// Builds the router with every endpoint of this server.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.limits.max_body;
    ui::routes(Router::new())
        .route(
            "/-/healthy",
            get(|| async { "Sextant is Healthy.\n" }).head(|| async { "" }),
        )
        .route(
            "/-/ready",
            get(|| async { "Sextant is Ready.\n" }).head(|| async { "" }),
        )
        .route("/-/reload", post(targets::reload).put(targets::reload))
        .route("/api/v1/rules", get(rules_api::rules))
        .route("/api/v1/alerts", get(rules_api::alerts))
        .route(
            "/api/v2/alerts",
            get(am_api::get_alerts).post(am_api::post_alerts),
        )
        .route("/api/v2/alerts/groups", get(am_api::get_groups))
        .route(
            "/api/v2/silences",
            get(am_api::get_silences).post(am_api::post_silences),
        )
        .route(
            "/api/v2/silence/{id}",
            get(am_api::get_silence).delete(am_api::delete_silence),
        )
        .route("/api/v2/status", get(am_api::status))
        .route("/api/v2/receivers", get(am_api::receivers))
        .route(
            "/api/sextant/dashboards",
            get(dashboards_api::list).post(dashboards_api::create),
        )
        .route(
            "/api/sextant/dashboards/import",
            post(dashboards_api::import),
        )
        .route(
            "/api/sextant/dashboards/{uid}",
            get(dashboards_api::get)
                .put(dashboards_api::update)
                .delete(dashboards_api::delete),
        )
        .route(
            "/api/sextant/dashboards/{uid}/versions",
            get(dashboards_api::versions),
        )
        .route(
            "/api/sextant/dashboards/{uid}/versions/{n}",
            get(dashboards_api::version),
        )
        .route(
            "/api/sextant/dashboards/{uid}/export",
            get(dashboards_api::export),
        )
        .route(
            "/api/sextant/notifications",
            get(dashboards_api::notifications),
        )
        .route("/api/sextant/receivers", get(dashboards_api::receivers))
        .route("/api/sextant/prices", get(prices::get))
        .route("/api/sextant/probes", get(probes_api::list))
        .route("/api/v1/junit", post(junit::upload))
        .route("/api/sextant/tests/flaky", get(junit::flaky))
        .route("/api/sextant/tests/slowest", get(junit::slowest))
        .route("/api/sextant/tests/failures", get(junit::failures))
        .route("/api/v1/write", post(write::remote_write))
        .route("/api/v1/import/prometheus", post(write::import_prometheus))
        .route("/api/v1/import", post(write::import_json))
        .route("/api/v1/import/csv", post(write::import_csv))
        .route("/write", post(write::influx_write_v1))
        .route("/api/v2/write", post(write::influx_write_v2))
        .route("/ping", get(write::influx_ping).head(write::influx_ping))
        .route("/v1/metrics", post(otlp::metrics))
        .route("/api/v1/agent/events", post(agent_events::post))
        .route("/api/v1/agent/events/schema", get(agent_events::schema))
        .route("/api/v1/query", get(query::query).post(query::query))
        .route("/api/v1/read", post(remote_read::read))
        .route(
            "/api/v1/query_range",
            get(query::query_range).post(query::query_range),
        )
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route(
            "/api/v1/parse_query",
            get(query::parse_query).post(query::parse_query),
        )
        .route(
            "/api/v1/query_exemplars",
            get(exemplars::query_exemplars).post(exemplars::query_exemplars),
        )
        .route("/api/v1/series", get(api::series).post(api::series))
        .route("/api/v1/labels", get(api::labels).post(api::labels))
        .route("/api/v1/label/{name}/values", get(api::label_values))
        .route("/api/v1/metadata", get(api::metadata))
        .route("/api/v1/targets", get(targets::targets))
        .route("/api/v1/targets/metadata", get(targets::targets_metadata))
        .route("/api/v1/status/tsdb", get(api::status_tsdb))
        .route("/api/v1/status/buildinfo", get(api::buildinfo))
        .route("/api/v1/status/runtimeinfo", get(api::runtimeinfo))
        .route("/api/v1/export", get(export::export).post(export::export))
        .route(
            "/api/v1/admin/tsdb/snapshot",
            post(api::snapshot).put(api::snapshot),
        )
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(api::delete_series).put(api::delete_series),
        )
        .route(
            "/api/v1/admin/tsdb/clean_tombstones",
            post(api::clean_tombstones).put(api::clean_tombstones),
        )
        .route(
            "/metrics/job/{*rest}",
            put(push::put).post(push::post).delete(push::delete),
        )
        .route(
            "/metrics/job@base64/{*rest}",
            put(push::put).post(push::post).delete(push::delete),
        )
        .route("/api/v1/metrics", get(push::api_metrics))
        .route("/api/v1/status", get(push::api_status))
        .route("/api/v1/push/metrics", get(push::exposition))
        .route("/api/v1/{*rest}", get(api::not_found).post(api::not_found))
        .route("/metrics", get(metrics_handler))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", get(auth::logout).post(auth::logout))
        // Every route above passes the scope table (auth.rs); keep this the last route_layer.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::enforce,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

async fn metrics_handler(State(st): State<Arc<AppState>>) -> Response {
    let body = tokio::task::spawn_blocking(move || render_metrics(&st))
        .await
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Counts requests and their durations per route.
async fn track(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".to_string());
    let t0 = Instant::now();
    let mut resp = next.run(req).await;
    // axum's body limit refuses bodies over `max_body` before any handler sees them: count
    // that refusal and say which limit it was.
    if resp.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE
        && !resp.headers().contains_key(limits::LIMIT_HEADER)
    {
        resp = limits::refuse(
            &st.limit_hits,
            limits::Limit::BodySize,
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body exceeds the limit of {} bytes (limit body_size)",
                st.limits.max_body
            ),
        );
    }
    st.http
        .observe(&handler, resp.status().as_u16(), t0.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod downsample_tests;
