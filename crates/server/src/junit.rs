//! JUnit uploads and the test-quality tables over [`sextant_ingest::junit::service::JunitRuns`]:
//! `POST /api/v1/junit?job=J&commit=SHA&run=ID&label=k=v…` takes one JUnit XML file (what
//! `sextant run --junit` sends, and what a CI step can `curl`; files with the same `run` are
//! one run), and
//! `GET /api/sextant/tests/{flaky,slowest,failures}?job=` answer the dashboard's tables.
//! Answers use Prometheus' JSON envelope; a bad report is a 400 naming the line and column,
//! and nothing of it is stored.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sextant_ingest::junit::history::StreamKey;
use sextant_ingest::junit::service::{JunitError, JunitRuns};
use sextant_model::labels::is_valid_label_name;

use crate::api::ApiError;
use crate::AppState;

/// Label names the series of an upload set themselves.
const RESERVED: &[&str] = &[
    "__name__",
    "job",
    "suite",
    "result",
    "category",
    "classname",
    "test",
];
/// Extra labels per upload.
const MAX_LABELS: usize = 16;

fn runs(st: &AppState) -> Result<Arc<JunitRuns>, ApiError> {
    st.junit().cloned().ok_or_else(|| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        kind: "unavailable",
        msg: "JUnit ingestion is not enabled on this server".to_string(),
    })
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// An upload's parameters.
struct UploadParams {
    key: StreamKey,
    run: String,
    commit: String,
}

/// The parameters of an upload from its query string.
fn upload_params(q: Option<&str>, max_value_len: usize) -> Result<UploadParams, ApiError> {
    let mut job = None;
    let mut commit = String::new();
    let mut run = String::new();
    let mut labels: Vec<(String, String)> = Vec::new();
    for (k, v) in query_pairs(q) {
        match k.as_str() {
            "job" => job = Some(v),
            "commit" => commit = v,
            "run" => run = v,
            "label" => {
                let Some((name, value)) = v.split_once('=') else {
                    return Err(ApiError::bad_data(format!(
                        "parameter label={v:?}: expected name=value"
                    )));
                };
                if !is_valid_label_name(name) || name.starts_with("__") {
                    return Err(ApiError::bad_data(format!(
                        "parameter label={v:?}: {name:?} is not a valid label name"
                    )));
                }
                if RESERVED.contains(&name) {
                    return Err(ApiError::bad_data(format!(
                        "parameter label={v:?}: the label {name:?} is set by Sextant (reserved: {})",
                        RESERVED.join(", ")
                    )));
                }
                if value.is_empty() || value.len() > max_value_len {
                    return Err(ApiError::bad_data(format!(
                        "parameter label={v:?}: the value must be 1 to {max_value_len} bytes"
                    )));
                }
                if labels.iter().any(|(n, _)| n == name) {
                    return Err(ApiError::bad_data(format!(
                        "parameter label: {name:?} is given twice"
                    )));
                }
                labels.push((name.to_string(), value.to_string()));
            }
            other => {
                return Err(ApiError::bad_data(format!(
                    "unknown parameter {other:?} (expected job, commit, run, label)"
                )))
            }
        }
    }
    let Some(job) = job.filter(|j| !j.is_empty()) else {
        return Err(ApiError::bad_data(
            "parameter job is required (POST /api/v1/junit?job=NAME)",
        ));
    };
    if job.len() > max_value_len {
        return Err(ApiError::bad_data(format!(
            "parameter job is longer than {max_value_len} bytes"
        )));
    }
    if commit.len() > 256 {
        return Err(ApiError::bad_data(
            "parameter commit is longer than 256 bytes",
        ));
    }
    if run.len() > 256 {
        return Err(ApiError::bad_data("parameter run is longer than 256 bytes"));
    }
    if labels.len() > MAX_LABELS {
        return Err(ApiError::bad_data(format!(
            "more than {MAX_LABELS} label parameters"
        )));
    }
    labels.sort();
    Ok(UploadParams {
        key: StreamKey { job, labels },
        run,
        commit,
    })
}

/// `POST /api/v1/junit`.
pub async fn upload(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let runs = match runs(&st) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let p = match upload_params(q.as_deref(), st.limits.max_label_value_len) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    // curl's --data-binary without -H sends application/x-www-form-urlencoded.
    if let Some(ct) = ct.as_deref() {
        if !matches!(
            ct,
            "" | "application/xml"
                | "text/xml"
                | "application/junit+xml"
                | "application/octet-stream"
                | "application/x-www-form-urlencoded"
        ) {
            return ApiError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                kind: "bad_data",
                msg: format!(
                    "Content-Type {ct:?} is not a JUnit XML report: send application/xml or text/xml"
                ),
            }
            .into_response();
        }
    }
    let mut enc = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // A gzipped file sent without Content-Encoding (curl --data-binary @report.xml.gz).
    if enc.is_none() && body.starts_with(&[0x1f, 0x8b]) {
        enc = Some("gzip".to_string());
    }
    if enc.as_deref().is_some_and(|e| {
        !matches!(
            e.trim().to_ascii_lowercase().as_str(),
            "gzip" | "identity" | ""
        )
    }) {
        return ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            kind: "bad_data",
            msg: format!(
                "unsupported Content-Encoding {:?}: use gzip or none",
                enc.unwrap_or_default()
            ),
        }
        .into_response();
    }
    let max_decoded = st.limits.max_decoded;
    let st2 = st.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let body =
            sextant_ingest::push::decode_content_encoding(enc.as_deref(), &body, max_decoded)
                .map_err(|e| {
                    let msg = e.to_string();
                    if st2.limit_hits.hit_tagged(&msg) {
                        ApiError {
                            status: StatusCode::PAYLOAD_TOO_LARGE,
                            kind: "bad_data",
                            msg,
                        }
                    } else {
                        ApiError::bad_data(msg)
                    }
                })?;
        let report =
            sextant_ingest::junit::parse(&body).map_err(|e| ApiError::bad_data(e.to_string()))?;
        if report.cases() == 0 {
            return Err(ApiError::bad_data(
                "the report has no <testcase> elements: nothing to record",
            ));
        }
        // Every test case becomes series of its own: the per-request series limit applies.
        if let Err((l, msg)) = st2.runtime_limits.check(report.cases(), 0) {
            st2.limit_hits.hit(l);
            return Err(ApiError::bad_data(msg));
        }
        let summary = runs
            .upload(p.key, &p.run, &p.commit, &report)
            .map_err(|e| match e {
                JunitError::BadRequest(m) => ApiError::bad_data(m),
                JunitError::Storage(m) => ApiError::internal(m),
            })?;
        serde_json::to_value(summary).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await;
    match res {
        Ok(Ok(data)) => axum::Json(json!({"status": "success", "data": data})).into_response(),
        Ok(Err(e)) => {
            tracing::debug!(error = %e.msg, "JUnit upload refused");
            e.into_response()
        }
        Err(e) => ApiError::internal(format!("JUnit upload failed: {e}")).into_response(),
    }
}

/// `job` and `limit` of the table endpoints.
fn table_params(q: Option<&str>) -> Result<(Option<String>, usize), ApiError> {
    let mut job = None;
    let mut limit = 50usize;
    for (k, v) in query_pairs(q) {
        match k.as_str() {
            "job" => job = Some(v).filter(|j| !j.is_empty()),
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_data(format!(
                            "parameter limit={v:?}: expected a number from 1 to 1000"
                        ))
                    })?
            }
            other => {
                return Err(ApiError::bad_data(format!(
                    "unknown parameter {other:?} (expected job, limit)"
                )))
            }
        }
    }
    Ok((job, limit))
}

fn stream_fields(key: &StreamKey, row: Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("job".into(), key.job.clone().into());
    m.insert(
        "labels".into(),
        Value::Object(
            key.labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
    );
    if let Value::Object(r) = row {
        m.extend(r);
    }
    Value::Object(m)
}

async fn table<F>(st: Arc<AppState>, q: Option<String>, f: F) -> Response
where
    F: FnOnce(&JunitRuns, Option<&str>, usize) -> Result<Vec<Value>, JunitError> + Send + 'static,
{
    let res = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let runs = runs(&st)?;
        let (job, limit) = table_params(q.as_deref())?;
        let mut rows =
            f(&runs, job.as_deref(), limit).map_err(|e| ApiError::internal(e.to_string()))?;
        rows.truncate(limit);
        Ok(Value::Array(rows))
    })
    .await;
    match res {
        Ok(Ok(data)) => axum::Json(json!({"status": "success", "data": data})).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

fn rows<T: serde::Serialize>(v: Vec<(StreamKey, T)>) -> Vec<Value> {
    v.into_iter()
        .map(|(k, r)| stream_fields(&k, serde_json::to_value(r).unwrap_or(Value::Null)))
        .collect()
}

/// `GET /api/sextant/tests/flaky?job=`: flaky tests in the recent runs.
pub async fn flaky(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    table(st, q, |r, job, _| Ok(rows(r.flaky(job)?))).await
}

/// `GET /api/sextant/tests/slowest?job=&limit=`: the slowest tests of the latest runs.
pub async fn slowest(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    table(st, q, |r, job, limit| Ok(rows(r.slowest(job, limit)?))).await
}

/// `GET /api/sextant/tests/failures?job=`: failing tests of the latest runs, new ones first.
pub async fn failures(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    table(st, q, |r, job, _| {
        let mut f = r.failures(job)?;
        f.sort_by_key(|(_, f)| !f.new);
        Ok(rows(f))
    })
    .await
}

/// Re-appends the current test series every second (each stream at its interval).
pub fn start_junit_maintenance(st: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(r) = st.junit().cloned() else {
                continue;
            };
            let _ = tokio::task::spawn_blocking(move || r.tick()).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(q: &str) -> String {
        match upload_params(Some(q), 4096) {
            Ok(_) => panic!("{q} was accepted"),
            Err(e) => e.msg,
        }
    }

    #[test]
    fn upload_parameters() {
        let p = upload_params(
            Some("job=ci&commit=abc&run=7&label=os%3Dlinux&label=branch=main"),
            4096,
        )
        .unwrap();
        assert_eq!(p.key.job, "ci");
        assert_eq!(
            p.key.labels,
            vec![
                ("branch".to_string(), "main".to_string()),
                ("os".to_string(), "linux".to_string())
            ]
        );
        assert_eq!((p.commit.as_str(), p.run.as_str()), ("abc", "7"));

        assert!(err("commit=abc").contains("parameter job is required"));
        assert!(err("job=").contains("parameter job is required"));
        assert!(err("job=a&label=x").contains("label=\"x\": expected name=value"));
        assert!(err("job=a&label=1x=y").contains("not a valid label name"));
        assert!(err("job=a&label=__x=y").contains("not a valid label name"));
        assert!(err("job=a&label=result=y").contains("reserved"));
        assert!(err("job=a&label=x=").contains("1 to 4096 bytes"));
        assert!(err("job=a&label=x=1&label=x=2").contains("given twice"));
        assert!(err("job=a&colour=red").contains("unknown parameter \"colour\""));
        assert!(err(&format!("job=a&run={}", "r".repeat(300))).contains("parameter run"));
        let many: String = (0..17).map(|i| format!("&label=l{i}=v")).collect();
        assert!(err(&format!("job=a{many}")).contains("more than 16"));
    }

    #[test]
    fn table_parameters() {
        assert_eq!(table_params(None).unwrap(), (None, 50));
        assert_eq!(
            table_params(Some("job=ci&limit=5")).unwrap(),
            (Some("ci".to_string()), 5)
        );
        assert!(table_params(Some("limit=0")).is_err());
        assert!(table_params(Some("limit=many")).is_err());
        assert!(table_params(Some("jobs=ci")).is_err());
    }
}
