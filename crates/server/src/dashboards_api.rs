//! `/api/sextant/*`: the dashboards API the web UI uses (list, get, create, save a version,
//! delete, history, export, Grafana import) and the alert manager's notification log and
//! receiver health. Answers have the Prometheus API's envelope (`status`, `data`, and
//! `errorType`/`error` on failure) so the UI handles every endpoint the same way.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use sextant_dashboards::{DashError, Dashboard, Dashboards, Entry, Format};

use crate::api::ApiError;
use crate::params::Params;
use crate::AppState;

fn qp(q: Option<&str>) -> Params {
    Params::parse(
        &axum::http::Method::GET,
        q,
        &axum::http::HeaderMap::new(),
        &Bytes::new(),
    )
}

fn ok(data: Value) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

fn err(status: StatusCode, kind: &'static str, msg: impl Into<String>) -> Response {
    ApiError {
        status,
        kind,
        msg: msg.into(),
    }
    .into_response()
}

fn dash_error(e: DashError) -> Response {
    match e {
        DashError::Invalid(m) => err(StatusCode::BAD_REQUEST, "bad_data", m),
        DashError::NotFound(m) => err(StatusCode::NOT_FOUND, "not_found", m),
        DashError::Conflict(m) => err(StatusCode::CONFLICT, "conflict", m),
        DashError::Store(e) => {
            tracing::error!(error = %e, "dashboard store");
            err(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
    }
}

fn time_or_null(ms: i64) -> Value {
    if ms > 0 {
        Value::String(sextant_model::time::format_rfc3339_ms(ms))
    } else {
        Value::Null
    }
}

fn meta(e: &Entry) -> Value {
    json!({
        "source": e.source.as_str(),
        "path": e.path,
        "version": e.version,
        "updated": time_or_null(e.updated),
        "provisioned": e.provisioned,
    })
}

/// Runs a store operation off the async threads.
async fn with_dashboards<T: Send + 'static>(
    st: &Arc<AppState>,
    f: impl FnOnce(&Dashboards) -> Result<T, DashError> + Send + 'static,
) -> Result<T, Response> {
    let Some(d) = st.dashboards().cloned() else {
        return Err(err(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "dashboards are not enabled in this server",
        ));
    };
    match tokio::task::spawn_blocking(move || f(&d)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(dash_error(e)),
        Err(e) => Err(err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )),
    }
}

/// `GET /api/sextant/dashboards`
pub async fn list(State(st): State<Arc<AppState>>) -> Response {
    match with_dashboards(&st, |d| d.list()).await {
        Ok(list) => ok(Value::Array(
            list.iter()
                .map(|e| {
                    json!({
                        "uid": e.dashboard.uid,
                        "title": e.dashboard.title,
                        "tags": e.dashboard.tags,
                        "source": e.source.as_str(),
                        "path": e.path,
                        "version": e.version,
                        "updated": time_or_null(e.updated),
                        "provisioned": e.provisioned,
                    })
                })
                .collect(),
        )),
        Err(r) => r,
    }
}

/// `GET /api/sextant/dashboards/{uid}`
pub async fn get(State(st): State<Arc<AppState>>, Path(uid): Path<String>) -> Response {
    let u = uid.clone();
    match with_dashboards(&st, move |d| d.get(&u)).await {
        Ok(Some(e)) => ok(json!({"dashboard": e.dashboard, "meta": meta(&e)})),
        Ok(None) => err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("dashboard {uid:?} not found"),
        ),
        Err(r) => r,
    }
}

/// Body of create and save.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveBody {
    dashboard: Dashboard,
    #[serde(default)]
    message: String,
    /// The version the edit started from (save only).
    version: Option<i64>,
}

#[allow(clippy::result_large_err)]
fn parse_body(body: &[u8]) -> Result<SaveBody, Response> {
    serde_json::from_slice::<SaveBody>(body).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "bad_data",
            format!("invalid request body: {e}"),
        )
    })
}

const MAX_MESSAGE: usize = 1000;

/// `POST /api/sextant/dashboards`
pub async fn create(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let b = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if b.message.len() > MAX_MESSAGE {
        return err(StatusCode::BAD_REQUEST, "bad_data", "message too long");
    }
    let mut d = b.dashboard;
    if d.uid.is_empty() {
        d.uid = sextant_dashboards::new_uid(&d.title);
    }
    let uid = d.uid.clone();
    match with_dashboards(&st, move |ds| ds.create(d, &b.message)).await {
        Ok(version) => ok(json!({"uid": uid, "version": version})),
        Err(r) => r,
    }
}

/// `PUT /api/sextant/dashboards/{uid}`
pub async fn update(
    State(st): State<Arc<AppState>>,
    Path(uid): Path<String>,
    body: Bytes,
) -> Response {
    let b = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if b.message.len() > MAX_MESSAGE {
        return err(StatusCode::BAD_REQUEST, "bad_data", "message too long");
    }
    let Some(expected) = b.version else {
        return err(
            StatusCode::BAD_REQUEST,
            "bad_data",
            "version is required: the version the edit started from (meta.version; 0 for a provisioned dashboard never saved)",
        );
    };
    let u = uid.clone();
    match with_dashboards(&st, move |ds| {
        ds.save(&u, b.dashboard, expected, &b.message)
    })
    .await
    {
        Ok(version) => ok(json!({"uid": uid, "version": version})),
        Err(r) => r,
    }
}

/// `DELETE /api/sextant/dashboards/{uid}`
pub async fn delete(State(st): State<Arc<AppState>>, Path(uid): Path<String>) -> Response {
    let u = uid.clone();
    match with_dashboards(&st, move |ds| {
        ds.delete(&u)?;
        ds.get(&u)
    })
    .await
    {
        // A provisioned dashboard shows its file again.
        Ok(back) => ok(json!({"uid": uid, "reverted_to": back.map(|e| e.source.as_str())})),
        Err(r) => r,
    }
}

/// `GET /api/sextant/dashboards/{uid}/versions`
pub async fn versions(State(st): State<Arc<AppState>>, Path(uid): Path<String>) -> Response {
    match with_dashboards(&st, move |ds| ds.versions(&uid)).await {
        Ok(v) => ok(Value::Array(
            v.iter()
                .map(|v| {
                    json!({"version": v.version, "updated": time_or_null(v.updated), "message": v.message})
                })
                .collect(),
        )),
        Err(r) => r,
    }
}

/// `GET /api/sextant/dashboards/{uid}/versions/{n}`
pub async fn version(
    State(st): State<Arc<AppState>>,
    Path((uid, n)): Path<(String, String)>,
) -> Response {
    let Ok(n) = n.parse::<i64>() else {
        return err(
            StatusCode::BAD_REQUEST,
            "bad_data",
            format!("invalid version {n:?}"),
        );
    };
    match with_dashboards(&st, move |ds| ds.version(&uid, n)).await {
        Ok(d) => ok(json!({"dashboard": d, "version": n})),
        Err(r) => r,
    }
}

/// `GET /api/sextant/dashboards/{uid}/export?format=yaml|json`
pub async fn export(
    State(st): State<Arc<AppState>>,
    Path(uid): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = qp(q.as_deref());
    let f = p.get("format").unwrap_or("yaml");
    let Some(fmt) = Format::parse(f) else {
        return err(
            StatusCode::BAD_REQUEST,
            "bad_data",
            format!("invalid format {f:?} (yaml or json)"),
        );
    };
    let u = uid.clone();
    match with_dashboards(&st, move |ds| ds.get(&u)).await {
        Ok(Some(e)) => {
            let (ct, ext) = match fmt {
                Format::Yaml => ("application/yaml; charset=utf-8", "yml"),
                Format::Json => ("application/json", "json"),
            };
            (
                [
                    (header::CONTENT_TYPE, ct.to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{uid}.{ext}\""),
                    ),
                ],
                sextant_dashboards::export(&e.dashboard, fmt),
            )
                .into_response()
        }
        Ok(None) => err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("dashboard {uid:?} not found"),
        ),
        Err(r) => r,
    }
}

/// `POST /api/sextant/dashboards/import[?save=true]`: Grafana JSON in, converted dashboards
/// and per-panel reports out.
pub async fn import(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = qp(q.as_deref());
    let save = match p.get("save").unwrap_or("false") {
        "true" | "1" => true,
        "false" | "0" | "" => false,
        other => {
            return err(
                StatusCode::BAD_REQUEST,
                "bad_data",
                format!("invalid save {other:?} (true or false)"),
            )
        }
    };
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t.to_string(),
        Err(_) => return err(StatusCode::BAD_REQUEST, "bad_data", "body is not UTF-8"),
    };
    let imported =
        match tokio::task::spawn_blocking(move || sextant_dashboards::grafana::import_str(&text))
            .await
        {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return err(StatusCode::BAD_REQUEST, "bad_data", e.to_string()),
            Err(e) => return err(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        };
    let saved: Vec<Option<String>> = if save {
        let dashboards: Vec<Dashboard> = imported.iter().map(|i| i.dashboard.clone()).collect();
        match with_dashboards(&st, move |ds| {
            dashboards
                .into_iter()
                .map(|d| {
                    ds.upsert(d, "imported from Grafana")
                        .map(|(uid, _)| Some(uid))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        {
            Ok(v) => v,
            Err(r) => return r,
        }
    } else {
        vec![None; imported.len()]
    };
    ok(Value::Array(
        imported
            .into_iter()
            .zip(saved)
            .map(|(i, s)| json!({"dashboard": i.dashboard, "report": i.report, "saved_uid": s}))
            .collect(),
    ))
}

/// `GET /api/sextant/notifications?limit=N` (default 100, at most 1000)
pub async fn notifications(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    let p = qp(q.as_deref());
    let limit = match p.get("limit") {
        None | Some("") => 100,
        Some(l) => match l.parse::<usize>() {
            Ok(n) => n.min(sextant_alert::dispatch::NOTIFICATION_LOG_SIZE),
            Err(_) => {
                return err(
                    StatusCode::BAD_REQUEST,
                    "bad_data",
                    format!("invalid limit {l:?}"),
                )
            }
        },
    };
    let Some(am) = st.alertmanager() else {
        return ok(json!([]));
    };
    ok(Value::Array(
        am.notification_log(limit)
            .into_iter()
            .map(|r| {
                json!({
                    "time": sextant_model::time::format_rfc3339_ms(r.time),
                    "receiver": r.receiver,
                    "integration": r.integration,
                    "group_key": r.group_key,
                    "status": r.status,
                    "alerts": r.alerts,
                    "firing": r.firing,
                    "resolved": r.resolved,
                    "error": r.error,
                })
            })
            .collect(),
    ))
}

/// `GET /api/sextant/receivers`
pub async fn receivers(State(st): State<Arc<AppState>>) -> Response {
    let Some(am) = st.alertmanager() else {
        return ok(json!([]));
    };
    let t = |v: Option<i64>| v.map(sextant_model::time::format_rfc3339_ms);
    ok(Value::Array(
        am.receiver_stats()
            .into_iter()
            .map(|s| {
                let healthy = s
                    .last_error_time
                    .is_none_or(|e| s.last_success.is_some_and(|ok| ok >= e));
                json!({
                    "receiver": s.receiver,
                    "integration": s.integration,
                    "attempts": s.attempts,
                    "failures": s.failures,
                    "last_attempt": t(s.last_attempt),
                    "last_success": t(s.last_success),
                    "last_error_time": t(s.last_error_time),
                    "last_error": s.last_error.as_deref().map(crate::redact::redact_urls),
                    "healthy": healthy,
                })
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests;
