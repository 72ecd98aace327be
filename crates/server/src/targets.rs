//! Scrape-facing endpoints: `/api/v1/targets` in Prometheus' exact JSON shape (so Grafana and
//! scripts written for Prometheus read it unchanged) and `/-/reload`, which re-reads the
//! configuration file through a hook the binary installs.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use sextant_ingest::scrape::{ActiveTargetInfo, PoolInfo};
use sextant_model::time::{format_duration, format_rfc3339_ms};
use sextant_model::Labels;

use crate::api::ApiError;
use crate::params::Params;
use crate::AppState;

/// Re-reads the configuration and applies it; `Err` carries the reason.
pub type ReloadHook = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

fn labels_map(ls: &Labels) -> Value {
    Value::Object(
        ls.iter()
            .map(|l| (l.name.clone(), Value::String(l.value.clone())))
            .collect(),
    )
}

/// The machine's host name, for `globalUrl` (Prometheus replaces loopback hosts with it).
fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Prometheus' `globalUrl`: the scrape URL with a loopback host replaced by the host name.
fn global_url(url: &sextant_ingest::scrape::target::Url) -> String {
    let host = url.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        if let Some(h) = hostname() {
            let mut u = url.clone();
            if u.set_host(Some(&h)).is_ok() {
                return u.to_string();
            }
        }
    }
    url.to_string()
}

fn active_json(pool: &str, a: &ActiveTargetInfo) -> Value {
    let t = &a.target;
    let h = &a.health;
    let url = t.url.to_string();
    let global = global_url(&t.url);
    json!({
        "discoveredLabels": labels_map(&t.discovered),
        "labels": labels_map(&t.public),
        "scrapePool": pool,
        "scrapeUrl": url,
        "globalUrl": global,
        "lastError": h.last_error,
        "lastScrape": h.last_scrape_ms.map(format_rfc3339_ms).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        "lastScrapeDuration": h.last_duration,
        "health": h.health.as_str(),
        "scrapeInterval": format_duration(t.interval),
        "scrapeTimeout": format_duration(t.timeout),
    })
}

/// `GET /api/v1/targets[?state=active|dropped|any][&scrapePool=<job>]`.
pub async fn targets(State(st): State<Arc<AppState>>, p: Params) -> Response {
    let state = p.get("state").unwrap_or("").to_ascii_lowercase();
    let (want_active, want_dropped) = match state.as_str() {
        "" | "any" => (true, true),
        "active" => (true, false),
        "dropped" => (false, true),
        other => {
            return ApiError::bad_data(format!(
                "invalid state {other:?}: expected active, dropped or any"
            ))
            .into_response()
        }
    };
    let pool_filter = p.get("scrapePool").filter(|s| !s.is_empty());
    let pools: Vec<PoolInfo> = st.scrape.get().map(|m| m.snapshot()).unwrap_or_default();
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    for pool in pools
        .iter()
        .filter(|p| pool_filter.is_none_or(|f| f == p.job))
    {
        if want_active {
            active.extend(pool.active.iter().map(|a| active_json(&pool.job, a)));
        }
        if want_dropped {
            dropped.extend(
                pool.dropped
                    .iter()
                    .map(|l| json!({"discoveredLabels": labels_map(l)})),
            );
        }
    }
    let mut data = Map::new();
    data.insert("activeTargets".into(), Value::Array(active));
    data.insert("droppedTargets".into(), Value::Array(dropped));
    axum::Json(json!({"status": "success", "data": Value::Object(data)})).into_response()
}

/// `GET /api/v1/targets/metadata?match_target=<selector>&metric=<name>&limit=<n>`: metadata
/// of the last scrape of each matching target, as Prometheus serves it.
pub async fn targets_metadata(State(st): State<Arc<AppState>>, p: Params) -> Response {
    let matchers = match p.get("match_target").filter(|s| !s.is_empty()) {
        None => Vec::new(),
        Some(sel) => match sextant_model::selector::parse_selector(sel) {
            Ok(m) => m,
            Err(e) => {
                return ApiError::bad_data(format!("invalid match_target {sel:?}: {e}"))
                    .into_response()
            }
        },
    };
    let metric = p.get("metric").filter(|s| !s.is_empty());
    let limit: usize = match p.get("limit").filter(|s| !s.is_empty()) {
        None => usize::MAX,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n < 0 => usize::MAX,
            Ok(n) => n as usize,
            Err(_) => return ApiError::bad_data(format!("invalid limit {l:?}")).into_response(),
        },
    };
    let pools: Vec<PoolInfo> = st.scrape.get().map(|m| m.snapshot()).unwrap_or_default();
    let mut out = Vec::new();
    'outer: for pool in &pools {
        for a in &pool.active {
            if !sextant_model::matcher::matches_all(&a.target.public, &matchers) {
                continue;
            }
            for md in a.metadata.iter() {
                if out.len() >= limit {
                    break 'outer;
                }
                if metric.is_some_and(|m| m != md.metric_family) {
                    continue;
                }
                let mut o = Map::new();
                o.insert("target".into(), labels_map(&a.target.public));
                if metric.is_none() {
                    o.insert("metric".into(), Value::String(md.metric_family.clone()));
                }
                o.insert("type".into(), Value::String(md.kind.as_str().into()));
                o.insert("help".into(), Value::String(md.help.clone()));
                o.insert("unit".into(), Value::String(md.unit.clone()));
                out.push(Value::Object(o));
            }
        }
    }
    if out.is_empty() && limit > 0 {
        return ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "not_found",
            msg: "specified metadata not found".into(),
        }
        .into_response();
    }
    axum::Json(json!({"status": "success", "data": out})).into_response()
}

/// `POST|PUT /-/reload`: like Prometheus, 200 with an empty body, or 500 with the reason.
pub async fn reload(State(st): State<Arc<AppState>>) -> Response {
    let Some(hook) = st.reload.get().cloned() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to reload config: no configuration to reload\n",
        )
            .into_response();
    };
    match tokio::task::spawn_blocking(move || hook()).await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}
