//! The Prometheus read API (`/api/v1/series`, `labels`, `label/<name>/values`, `metadata`,
//! `status/*`) with Prometheus' JSON envelope and error types.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use sextant_model::labels::is_valid_label_name;
use sextant_model::Matcher;
use sextant_tsdb::querier::{merge_strings, Querier};

use crate::params::Params;
use crate::AppState;

/// An error in Prometheus' shape: `{"status":"error","errorType":…,"error":…}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub msg: String,
}

impl ApiError {
    pub fn bad_data(msg: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            msg: msg.into(),
        }
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            msg: msg.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let r = (
            self.status,
            axum::Json(json!({"status": "error", "errorType": self.kind, "error": self.msg})),
        )
            .into_response();
        crate::limits::tag_response(r, &self.msg)
    }
}

fn success(data: Value, warnings: Vec<String>) -> Response {
    let mut m = Map::new();
    m.insert("status".into(), "success".into());
    m.insert("data".into(), data);
    if !warnings.is_empty() {
        m.insert("warnings".into(), warnings.into());
    }
    axum::Json(Value::Object(m)).into_response()
}

/// Runs blocking TSDB work off the async threads.
async fn blocking<F>(f: F) -> Response
where
    F: FnOnce() -> Result<Response, ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::internal(format!("handler failed: {e}")).into_response(),
    }
}

fn truncate<T>(v: &mut Vec<T>, limit: usize, warnings: &mut Vec<String>) {
    if limit > 0 && v.len() > limit {
        v.truncate(limit);
        warnings.push("results truncated due to limit".to_string());
    }
}

fn labels_json(ls: &sextant_model::Labels) -> Value {
    Value::Object(
        ls.iter()
            .map(|l| (l.name.clone(), Value::String(l.value.clone())))
            .collect(),
    )
}

pub async fn series(State(st): State<Arc<AppState>>, p: Params) -> Response {
    blocking(move || {
        let sets = p.required_matchers()?;
        let (start, end) = p.range()?;
        let limit = p.limit()?;
        let querier = st.db.querier();
        let mut all = Vec::new();
        let mut warnings = Vec::new();
        let fanout = st.remote().map(|e| {
            sextant_remote::Fanout::new(Box::new(crate::query::TsdbSource(st.db.querier())), e)
        });
        for ms in &sets {
            let local = || {
                querier
                    .series(ms, start, end)
                    .map_err(|e| sextant_promql::QueryError(e.to_string()))
            };
            let got = match &fanout {
                None => local(),
                Some(f) => f.series(local, ms, start, end),
            };
            all.extend(got.map_err(|e| ApiError::internal(e.to_string()))?);
        }
        if let Some(f) = &fanout {
            warnings.extend(f.take_warnings());
        }
        all.sort();
        all.dedup();
        truncate(&mut all, limit, &mut warnings);
        Ok(success(
            Value::Array(all.iter().map(labels_json).collect()),
            warnings,
        ))
    })
    .await
}

fn per_matcher_sets<F>(sets: &[Vec<Matcher>], mut f: F) -> Result<Vec<String>, ApiError>
where
    F: FnMut(&[Matcher]) -> Result<Vec<String>, ApiError>,
{
    if sets.is_empty() {
        return f(&[]);
    }
    let mut lists = Vec::new();
    for ms in sets {
        lists.push(f(ms)?);
    }
    Ok(merge_strings(lists))
}

pub async fn labels(State(st): State<Arc<AppState>>, p: Params) -> Response {
    blocking(move || {
        string_list(
            &st,
            &p,
            |q, ms, start, end| q.label_names(ms, start, end),
            |e, ms, start, end| e.label_names(ms, start, end),
        )
    })
    .await
}

/// The answer of `/api/v1/labels` and `/api/v1/label/<name>/values`: the union of `list` over
/// every `match[]` (or over all series), local storage and remote engines (`remote`), limited
/// by `limit` with Prometheus' warning.
fn string_list<F, R>(st: &AppState, p: &Params, list: F, remote: R) -> Result<Response, ApiError>
where
    F: Fn(
        &sextant_tsdb::db::DbQuerier,
        &[Matcher],
        i64,
        i64,
    ) -> Result<Vec<String>, sextant_tsdb::querier::QueryError>,
    R: Fn(&dyn sextant_remote::RemoteEngine, &[Matcher], i64, i64) -> Result<Vec<String>, String>
        + Sync,
{
    let sets = p.matchers()?;
    let (start, end) = p.range()?;
    let limit = p.limit()?;
    let querier = st.db.querier();
    let mut warnings = Vec::new();
    let fan = st.remote().map(|engines| {
        sextant_remote::Fanout::new(Box::new(crate::query::TsdbSource(st.db.querier())), engines)
    });
    let mut values = per_matcher_sets(&sets, |ms| {
        let mut v = match &fan {
            Some(f) if !f.reads_local() => Vec::new(),
            _ => list(&querier, ms, start, end).map_err(|e| ApiError::internal(e.to_string()))?,
        };
        // Remote engines answer with their own label APIs (remote-read endpoints, which have
        // none, through the matching series; without `match[]` they warn as in Prometheus).
        if let Some(f) = &fan {
            v.extend(f.remote_strings(|e| remote(e, ms, start, end)));
            v.sort();
            v.dedup();
        }
        Ok(v)
    })?;
    if let Some(f) = &fan {
        warnings.extend(f.take_warnings());
    }
    values.dedup();
    truncate(&mut values, limit, &mut warnings);
    Ok(success(values.into(), warnings))
}

pub async fn label_values(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    p: Params,
) -> Response {
    blocking(move || {
        if !is_valid_label_name(&name) {
            return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
        }
        string_list(
            &st,
            &p,
            |q, ms, start, end| q.label_values(&name, ms, start, end),
            |e, ms, start, end| e.label_values(&name, ms, start, end),
        )
    })
    .await
}

pub async fn metadata(State(st): State<Arc<AppState>>, p: Params) -> Response {
    let limit = match p.limit() {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let metric = p.get("metric").map(str::to_string);
    let mut all: Vec<_> = st.db.metadata().into_values().collect();
    all.sort_by(|a, b| a.metric_family.cmp(&b.metric_family));
    let mut out = Map::new();
    for md in all {
        if metric.as_deref().is_some_and(|m| m != md.metric_family) {
            continue;
        }
        if limit > 0 && out.len() >= limit {
            break;
        }
        out.insert(
            md.metric_family.clone(),
            json!([{"type": md.kind.as_str(), "help": md.help, "unit": md.unit}]),
        );
    }
    success(Value::Object(out), Vec::new())
}

pub async fn status_tsdb(State(st): State<Arc<AppState>>, p: Params) -> Response {
    let limit = match p.limit() {
        Ok(0) => 10,
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    blocking(move || {
        let s = st.db.head().stats(limit);
        let list = |v: &[(String, usize)]| Value::Array(v.iter().map(|(n, c)| json!({"name": n, "value": c})).collect());
        let (min, max) = if s.num_series == 0 || s.min_time == i64::MAX { (i64::MAX, i64::MIN) } else { (s.min_time, s.max_time) };
        Ok(success(
            json!({
                "headStats": {"numSeries": s.num_series, "numLabelPairs": s.num_label_pairs, "chunkCount": s.num_chunks, "minTime": min, "maxTime": max},
                "seriesCountByMetricName": list(&s.series_count_by_metric),
                "labelValueCountByLabelName": list(&s.label_value_count_by_name),
                "memoryInBytesByLabelName": list(&s.memory_by_label_name),
                "seriesCountByLabelValuePair": list(&s.series_count_by_label_pair),
            }),
            Vec::new(),
        ))
    })
    .await
}

pub async fn buildinfo(State(st): State<Arc<AppState>>) -> Response {
    success(
        json!({
            "version": st.build.version,
            "revision": st.build.revision,
            "branch": "main",
            "buildUser": "sextant",
            "buildDate": "",
            "goVersion": "rust",
        }),
        Vec::new(),
    )
}

pub async fn runtimeinfo(State(st): State<Arc<AppState>>) -> Response {
    let db = st.db.clone();
    let start = sextant_model::time::format_rfc3339_ms((st.start_unix * 1000.0) as i64);
    blocking(move || {
        Ok(success(
            json!({
                "startTime": start,
                "CWD": std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default(),
                "reloadConfigSuccess": true,
                "lastConfigTime": start,
                "corruptionCount": db.metrics().wal_corruptions.load(std::sync::atomic::Ordering::Relaxed),
                "goroutineCount": 0,
                "GOMAXPROCS": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                "GOGC": "",
                "GODEBUG": "",
                "storageRetention": sextant_model::time::format_duration(std::time::Duration::from_millis(db.options().retention.max(0) as u64)),
            }),
            Vec::new(),
        ))
    })
    .await
}

pub async fn snapshot(State(st): State<Arc<AppState>>, p: Params) -> Response {
    let skip_head = matches!(p.get("skip_head"), Some("true") | Some("1"));
    blocking(move || {
        let name = st
            .db
            .snapshot(skip_head)
            .map_err(|e| ApiError::internal(format!("create snapshot: {e}")))?;
        Ok(success(json!({ "name": name }), Vec::new()))
    })
    .await
}

/// `/api/v1/admin/tsdb/delete_series`: tombstones the samples of every series matching a
/// `match[]` in `[start, end]` (default: all time); 204 like Prometheus.
pub async fn delete_series(State(st): State<Arc<AppState>>, p: Params) -> Response {
    blocking(move || {
        let sets = p.required_matchers()?;
        let start = p.time("start", i64::MIN)?;
        let end = p.time("end", i64::MAX)?;
        for ms in &sets {
            st.db
                .delete_series(ms, start, end)
                .map_err(|e| ApiError::internal(format!("delete series: {e}")))?;
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

/// `/api/v1/admin/tsdb/clean_tombstones`: rewrites blocks without deleted samples; 204.
pub async fn clean_tombstones(State(st): State<Arc<AppState>>) -> Response {
    blocking(move || {
        st.db
            .clean_tombstones()
            .map_err(|e| ApiError::internal(format!("clean tombstones: {e}")))?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

pub async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "not_found",
        msg: format!("unknown API endpoint {}", uri.path()),
    }
    .into_response()
}
