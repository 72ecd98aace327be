//! Pushgateway-compatible HTTP endpoints over [`sextant_ingest::push::PushGroups`]:
//! `PUT`/`POST`/`DELETE /metrics/job/<job>{/<label>/<value>}` (also `job@base64`), the
//! Pushgateway's read API `GET /api/v1/metrics` and `GET /api/v1/status`, and
//! `GET /api/v1/push/metrics` with all groups in the text format (what a Pushgateway shows on
//! its `/metrics`; Sextant's `/metrics` is its own metrics). Status codes follow the
//! Pushgateway: 200 for an accepted PUT/POST, 202 for DELETE, 400 with a plain-text reason.
//! Sextant adds a TTL: `?ttl=<duration>` or the `X-Sextant-TTL` header on PUT/POST.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use sextant_ingest::push::store::type_name;
use sextant_ingest::push::{
    decode_content_encoding, format_go_float, parse_grouping_path, Family, Group, PushError,
};
use sextant_model::{MetricType, METRIC_NAME};

use crate::AppState;

/// Header that carries a push's TTL (same syntax as `?ttl=`).
pub const TTL_HEADER: &str = "x-sextant-ttl";

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into() + "\n").into_response()
}

fn error_response(e: PushError) -> Response {
    let status = match e {
        PushError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        PushError::Encoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::BAD_REQUEST,
    };
    text(status, e.to_string())
}

/// Like [`error_response`], counting a refusal by a limit (its message names it); the
/// decompressed-size limit answers 413.
fn limited_error_response(st: &AppState, e: PushError) -> Response {
    let msg = e.to_string();
    match crate::limits::limit_in(&msg) {
        Some(l) => {
            let status = if l == crate::limits::Limit::DecompressedSize {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            crate::limits::refuse(&st.limit_hits, l, status, msg)
        }
        None => error_response(e),
    }
}

/// The TTL of a push from `?ttl=` or `X-Sextant-TTL` (both given must agree).
fn ttl(query: Option<&str>, headers: &HeaderMap) -> Result<Option<Duration>, PushError> {
    let from_query = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "ttl")
            .map(|(_, v)| v.into_owned())
    });
    let from_header = match headers.get(TTL_HEADER) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| PushError::Ttl("X-Sextant-TTL header is not ASCII".to_string()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let raw = match (from_query, from_header) {
        (Some(q), Some(h)) if q != h => {
            return Err(PushError::Ttl(format!(
                "ttl={q:?} in the query and X-Sextant-TTL: {h:?} disagree; give one"
            )))
        }
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => return Ok(None),
    };
    let d = sextant_model::time::parse_duration(&raw).map_err(|e| {
        PushError::Ttl(format!(
            "invalid ttl {raw:?}: {e} (expected a Prometheus duration like 30s, 15m, 1h, 7d)"
        ))
    })?;
    if d.is_zero() {
        return Err(PushError::Ttl(format!(
            "invalid ttl {raw:?}: must be greater than zero (omit it for a group that never expires)"
        )));
    }
    Ok(Some(d))
}

async fn push(
    st: Arc<AppState>,
    uri: Uri,
    q: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    replace: bool,
) -> Response {
    let key = match parse_grouping_path(uri.path()) {
        Ok(k) => k,
        Err(e) => return error_response(e),
    };
    let ttl = match ttl(q.as_deref(), &headers) {
        Ok(t) => t,
        Err(e) => return error_response(e),
    };
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let enc = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Pushes share the write path's concurrency limit.
    let Ok(Ok(_permit)) =
        tokio::time::timeout(st.limits.queue_wait, st.write_slots.acquire()).await
    else {
        st.ingest
            .throttled_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return crate::write::write_busy(&st);
    };
    let st2 = st.clone();
    let res = tokio::task::spawn_blocking(move || {
        let body = decode_content_encoding(enc.as_deref(), &body, st2.limits.max_decoded)?;
        st2.push.push(key, &body, ct.as_deref(), replace, ttl)
    })
    .await;
    match res {
        Ok(Ok(_)) => StatusCode::OK.into_response(),
        Ok(Err(e)) => limited_error_response(&st, e),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("push failed: {e}"),
        ),
    }
}

/// `PUT /metrics/job/...`: replace the whole group.
pub async fn put(
    State(st): State<Arc<AppState>>,
    uri: Uri,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    push(st, uri, q, headers, body, true).await
}

/// `POST /metrics/job/...`: replace the pushed metric families in the group.
pub async fn post(
    State(st): State<Arc<AppState>>,
    uri: Uri,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    push(st, uri, q, headers, body, false).await
}

/// `DELETE /metrics/job/...`: remove the group.
pub async fn delete(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    let key = match parse_grouping_path(uri.path()) {
        Ok(k) => k,
        Err(e) => return error_response(e),
    };
    let res = tokio::task::spawn_blocking(move || st.push.delete(&key)).await;
    match res {
        Ok(Ok(())) => StatusCode::ACCEPTED.into_response(),
        Ok(Err(e)) => error_response(e),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("delete failed: {e}"),
        ),
    }
}

/// `GET /api/v1/push/metrics`: every group in the text exposition format.
pub async fn exposition(State(st): State<Arc<AppState>>) -> Response {
    let body = st.push.render_text();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `GET /api/v1/metrics`: the Pushgateway's JSON view of all groups.
pub async fn api_metrics(State(st): State<Arc<AppState>>) -> Response {
    let groups = st.push.groups();
    let data: Vec<Value> = groups.iter().map(group_json).collect();
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

/// `GET /api/v1/status`: the Pushgateway's status shape.
pub async fn api_status(State(st): State<Arc<AppState>>) -> Response {
    let start = sextant_model::time::format_rfc3339_ms((st.start_unix * 1000.0) as i64);
    axum::Json(json!({
        "status": "success",
        "data": {
            "build_information": {
                "version": st.build.version,
                "revision": st.build.revision,
            },
            "flags": {},
            "start_time": start,
        }
    }))
    .into_response()
}

fn group_json(g: &Group) -> Value {
    let mut m = Map::new();
    m.insert(
        "labels".into(),
        Value::Object(
            g.key
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
    );
    m.insert(
        "last_push_successful".into(),
        Value::Bool(g.last_push_successful()),
    );
    let gauges = g.push_gauges();
    let families = g
        .families
        .iter()
        .map(|(n, f)| (n.as_str(), f))
        .chain(gauges.iter().map(|(n, f)| (*n, f)));
    for (name, f) in families {
        let mut fam = Map::new();
        fam.insert(
            "time_stamp".into(),
            Value::String(sextant_model::time::format_rfc3339_ms(f.pushed_ms)),
        );
        fam.insert(
            "type".into(),
            Value::String(
                type_name(f.kind)
                    .to_ascii_uppercase()
                    .replace("GAUGEHISTOGRAM", "GAUGE_HISTOGRAM"),
            ),
        );
        if !f.help.is_empty() {
            fam.insert("help".into(), Value::String(f.help.clone()));
        }
        fam.insert("metrics".into(), Value::Array(metrics_json(name, f, g)));
        m.insert(name.to_string(), Value::Object(fam));
    }
    Value::Object(m)
}

/// The labels of a sample as the Pushgateway stores them: without the name, with empty
/// grouping labels and an empty `instance` spelled out.
fn labels_json(labels: &sextant_model::Labels, g: &Group, drop: &str) -> Map<String, Value> {
    let mut m: Map<String, Value> = labels
        .iter()
        .filter(|l| l.name != METRIC_NAME && l.name != drop)
        .map(|l| (l.name.clone(), Value::String(l.value.clone())))
        .collect();
    for k in g.key.keys().map(String::as_str).chain(["instance"]) {
        m.entry(k.to_string())
            .or_insert_with(|| Value::String(String::new()));
    }
    m
}

/// One histogram or summary: labels, buckets or quantiles, sum, count.
type Summarized = (Map<String, Value>, Map<String, Value>, Value, Value);

fn metrics_json(name: &str, f: &Family, g: &Group) -> Vec<Value> {
    match f.kind {
        MetricType::Histogram | MetricType::GaugeHistogram | MetricType::Summary => {
            let summary = f.kind == MetricType::Summary;
            let inner = if summary { "quantile" } else { "le" };
            // One entry per label set without le/quantile, in first-seen order.
            let mut order: Vec<String> = Vec::new();
            let mut by: BTreeMap<String, Summarized> = BTreeMap::new();
            for (labels, v) in &f.samples {
                let ls = labels_json(labels, g, inner);
                let id = Value::Object(ls.clone()).to_string();
                let e = by.entry(id.clone()).or_insert_with(|| {
                    order.push(id.clone());
                    (
                        ls,
                        Map::new(),
                        Value::String("0".into()),
                        Value::String("0".into()),
                    )
                });
                let sample_name = labels.metric_name().unwrap_or_default();
                if sample_name == format!("{name}_sum") {
                    e.2 = Value::String(format_go_float(*v));
                } else if sample_name == format!("{name}_count") {
                    e.3 = Value::String(format_go_float(*v));
                } else if let Some(bound) = labels.get(inner) {
                    let b = bound
                        .parse::<f64>()
                        .map(format_go_float)
                        .unwrap_or_else(|_| bound.to_string());
                    e.1.insert(b, Value::String(format_go_float(*v)));
                }
            }
            order
                .iter()
                .filter_map(|id| by.remove(id))
                .map(|(ls, inner_map, sum, count)| {
                    let key = if summary { "quantiles" } else { "buckets" };
                    json!({"labels": ls, key: inner_map, "sum": sum, "count": count})
                })
                .collect()
        }
        _ => f
            .samples
            .iter()
            .map(|(labels, v)| json!({"labels": labels_json(labels, g, ""), "value": format_go_float(*v)}))
            .collect(),
    }
}

/// Runs [`PushGroups::tick`](sextant_ingest::push::PushGroups::tick) every second: TTL expiry
/// and, at the push interval, re-appending the groups' current values.
pub fn start_push_maintenance(st: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let st = st.clone();
            let _ = tokio::task::spawn_blocking(move || st.push.tick()).await;
        }
    })
}
