//! Write endpoints: Prometheus remote write 1.0 and 2.0 (`/api/v1/write`), text-format
//! import (`/api/v1/import/prometheus`) and InfluxDB line protocol (`/write`, `/api/v2/write`).
//!
//! Partial failures follow Prometheus' receiver: series with invalid labels and samples the
//! database refuses (out of order, duplicate, too old, over a limit) are skipped, everything
//! else in the request is committed, and the answer is `400 Bad Request` naming the first
//! problem and the counts, so the sender does not retry data that can never be accepted. A
//! request that cannot be decoded at all is refused whole (400, or 413 when too large, 415 for
//! an unknown content type). A WAL write failure answers 503 so the sender retries; nothing of
//! that request was acknowledged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sextant_ingest::remote_write::{self, DecodeLimits, RemoteWriteVersion, WriteBatch};
use sextant_ingest::{Sink, SinkError, Stored};
use sextant_tsdb::db::{CommitStats, Db};

use crate::limits::{refuse, Limit};
use crate::AppState;

/// Counters of the write path that the TSDB does not see.
#[derive(Default)]
pub(crate) struct IngestMetrics {
    pub requests_v1: AtomicU64,
    pub requests_v2: AtomicU64,
    pub import_requests: AtomicU64,
    pub influx_requests: AtomicU64,
    pub rejected_series: AtomicU64,
    pub rejected_requests: AtomicU64,
    pub throttled_requests: AtomicU64,
    pub exemplars_received: AtomicU64,
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into() + "\n").into_response()
}

fn add_commit(out: &mut Stored, c: CommitStats) {
    out.samples += c.samples;
    out.histograms += c.histograms;
    out.exemplars += c.exemplars;
    out.exemplars_out_of_order += c.exemplars_rejected;
    if c.rejected > 0 {
        let first = c.first_error.unwrap_or_default();
        out.problem(c.rejected, || first);
    }
    if let Some(e) = c.first_exemplar_error {
        // Not a problem of the request (Prometheus accepts it too), but worth a log line.
        tracing::debug!(refused = c.exemplars_rejected, first = %e, "exemplars refused");
    }
}

/// Exemplars in a decoded batch, for the received counter.
pub(crate) fn exemplar_count(batch: &WriteBatch) -> u64 {
    batch.series.iter().map(|s| s.exemplars.len() as u64).sum()
}

/// The TSDB as the [`Sink`] that ingest components (scrape, push, OTLP, ...) write through.
pub struct DbSink(pub Arc<Db>);

impl Sink for DbSink {
    fn store(&self, batch: WriteBatch) -> Result<Stored, SinkError> {
        store(&self.0, batch).map_err(|e| SinkError(e.to_string()))
    }

    fn last_sample(
        &self,
        labels: &sextant_model::Labels,
    ) -> Option<(i64, Result<f64, sextant_model::HistogramValue>)> {
        self.0.head().last_sample(labels)
    }
}

/// Appends a decoded batch through one appender and commits it.
fn store(db: &Db, batch: WriteBatch) -> Result<Stored, sextant_tsdb::db::DbError> {
    let mut out = Stored::default();
    for r in &batch.rejected {
        out.problem(r.samples.max(1), || {
            format!("series {}: {}", r.labels, r.reason)
        });
    }
    let mut app = db.appender();
    for md in batch.metadata {
        app.set_metadata(md);
    }
    for s in &batch.series {
        for smp in &s.samples {
            if let Err(e) = app.append(&s.labels, smp.t, smp.v) {
                out.problem(1, || format!("series {}: {e}", s.labels));
            }
        }
        for (t, h) in &s.histograms {
            if let Err(e) = app.append_histogram(&s.labels, *t, h.clone()) {
                out.problem(1, || format!("series {}: {e}", s.labels));
            }
        }
        for e in &s.exemplars {
            if let Err(err) = app.append_exemplar(&s.labels, e.clone()) {
                out.problem(1, || {
                    format!(
                        "series {}: exemplar {} {} at {}: {err}",
                        s.labels, e.labels, e.value, e.ts
                    )
                });
            }
        }
    }
    let c = app.commit()?;
    add_commit(&mut out, c);
    Ok(out)
}

pub(crate) async fn with_slot<F>(st: &Arc<AppState>, f: F) -> Response
where
    F: FnOnce() -> Response + Send + 'static,
{
    let permit = match tokio::time::timeout(st.limits.queue_wait, st.write_slots.acquire()).await {
        Ok(Ok(p)) => p,
        _ => {
            st.ingest.throttled_requests.fetch_add(1, Ordering::Relaxed);
            return write_busy(st);
        }
    };
    let r = tokio::task::spawn_blocking(f).await;
    drop(permit);
    r.unwrap_or_else(|e| {
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("write handler failed: {e}"),
        )
    })
}

/// 429 when every write slot stayed busy for `queue_wait`.
pub(crate) fn write_busy(st: &AppState) -> Response {
    refuse(
        &st.limit_hits,
        Limit::WriteConcurrency,
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "too many concurrent write requests (limit write_concurrency: {}); retry later",
            st.limits.max_concurrent
        ),
    )
}

fn too_large_msg(st: &AppState, len: usize) -> String {
    format!(
        "request body of {len} bytes exceeds the limit of {} bytes (limit body_size)",
        st.limits.max_body
    )
}

fn too_large(st: &AppState, body: &Bytes) -> Option<Response> {
    (body.len() > st.limits.max_body).then(|| {
        refuse(
            &st.limit_hits,
            Limit::BodySize,
            StatusCode::PAYLOAD_TOO_LARGE,
            too_large_msg(st, body.len()),
        )
    })
}

/// Counts the series a decoder refused for a per-series limit (tagged in their reason).
pub(crate) fn count_rejected(st: &AppState, batch: &WriteBatch) {
    for r in &batch.rejected {
        st.limit_hits.hit_tagged(&r.reason);
    }
}

/// Refuses a whole batch over the per-request series or samples limit (400: the sender must
/// split it, retrying the same request cannot succeed).
pub(crate) fn check_request(st: &AppState, batch: &WriteBatch) -> Result<(), (Limit, String)> {
    st.runtime_limits
        .check(batch.series.len(), batch.sample_count())
}

/// [`check_request`] as a plain-text 400 response (counted).
fn request_too_big(st: &AppState, batch: &WriteBatch) -> Option<Response> {
    check_request(st, batch)
        .err()
        .map(|(l, msg)| refuse(&st.limit_hits, l, StatusCode::BAD_REQUEST, msg))
}

/// A decompression failure: 413 when over the decompressed-size limit (counted), else 400.
pub(crate) fn decode_failure(st: &AppState, msg: String) -> Response {
    match crate::limits::limit_in(&msg) {
        Some(Limit::DecompressedSize) => refuse(
            &st.limit_hits,
            Limit::DecompressedSize,
            StatusCode::PAYLOAD_TOO_LARGE,
            msg,
        ),
        _ => text(StatusCode::BAD_REQUEST, msg),
    }
}

/// `POST /api/v1/write`.
pub async fn remote_write(
    axum::extract::State(st): axum::extract::State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = too_large(&st, &body) {
        st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
        return r;
    }
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let version = match remote_write::parse_content_type(ct) {
        Ok(v) => v,
        Err(e) => {
            st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
            return text(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string());
        }
    };
    let enc = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    if let Some(enc) = enc {
        if !enc.eq_ignore_ascii_case("snappy") {
            st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Encoding {enc:?}: remote write bodies must be snappy-compressed"),
            );
        }
    }
    let st2 = st.clone();
    with_slot(&st, move || {
        let st = st2;
        match version {
            RemoteWriteVersion::V1 => st.ingest.requests_v1.fetch_add(1, Ordering::Relaxed),
            RemoteWriteVersion::V2 => st.ingest.requests_v2.fetch_add(1, Ordering::Relaxed),
        };
        let raw = match remote_write::decompress_snappy(&body, st.limits.max_decoded) {
            Ok(r) => r,
            Err(e) => {
                st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
                return decode_failure(&st, e.to_string());
            }
        };
        let limits = DecodeLimits {
            max_labels_per_series: st.limits.max_labels_per_series,
            max_label_name_len: st.limits.max_label_name_len,
            max_label_value_len: st.limits.max_label_value_len,
        };
        let decoded = match version {
            RemoteWriteVersion::V1 => remote_write::decode_v1(&raw, &limits),
            RemoteWriteVersion::V2 => remote_write::decode_v2(&raw, &limits),
        };
        let batch = match decoded {
            Ok(b) => b,
            Err(e) => {
                st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
                return text(StatusCode::BAD_REQUEST, e.to_string());
            }
        };
        if let Some(r) = request_too_big(&st, &batch) {
            st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
            return r;
        }
        count_rejected(&st, &batch);
        st.ingest
            .rejected_series
            .fetch_add(batch.rejected.len() as u64, Ordering::Relaxed);
        st.ingest
            .exemplars_received
            .fetch_add(exemplar_count(&batch), Ordering::Relaxed);
        let stored = match store(&st.db, batch) {
            Ok(s) => s,
            Err(e) => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("storage cannot accept writes right now: {e}"),
                );
            }
        };
        let mut resp = match &stored.first_problem {
            None => StatusCode::NO_CONTENT.into_response(),
            Some(first) => text(
                StatusCode::BAD_REQUEST,
                format!(
                    "{} samples or exemplars rejected, {} samples accepted; first problem: {first}",
                    stored.problems,
                    stored.samples + stored.histograms
                ),
            ),
        };
        if matches!(version, RemoteWriteVersion::V2) {
            let h = resp.headers_mut();
            let mut set = |k: &'static str, v: usize| {
                if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
                    h.insert(k, v);
                }
            };
            set("X-Prometheus-Remote-Write-Samples-Written", stored.samples);
            set(
                "X-Prometheus-Remote-Write-Histograms-Written",
                stored.histograms,
            );
            set(
                "X-Prometheus-Remote-Write-Exemplars-Written",
                stored.exemplars,
            );
        }
        resp
    })
    .await
}

/// `POST /api/v1/import/prometheus`: text exposition format (or OpenMetrics, by Content-Type),
/// optional per-line timestamps;
/// lines without one get the request time (or `?timestamp=` in ms, like VictoriaMetrics).
pub async fn import_prometheus(
    axum::extract::State(st): axum::extract::State<Arc<AppState>>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // `application/openmetrics-text` bodies are read as OpenMetrics, anything else as text.
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(r) = too_large(&st, &body) {
        return r;
    }
    let default_ts = q
        .as_deref()
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "timestamp")
                .map(|(_, v)| v.to_string())
        })
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or_else(sextant_model::time::now_ms);
    let st2 = st.clone();
    with_slot(&st, move || {
        let st = st2;
        st.ingest.import_requests.fetch_add(1, Ordering::Relaxed);
        let parsed = match sextant_ingest::text::parse_exposition(
            &body,
            content_type.as_deref(),
            default_ts,
        ) {
            Ok(p) => p,
            Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let batch = parsed.into_write_batch();
        if let Some(r) = request_too_big(&st, &batch) {
            return r;
        }
        match store(&st.db, batch) {
            Err(e) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("storage cannot accept writes right now: {e}"),
            ),
            Ok(s) => match s.first_problem {
                None => StatusCode::NO_CONTENT.into_response(),
                Some(first) => text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{} samples or exemplars rejected, {} samples accepted; first problem: {first}",
                        s.problems, s.samples
                    ),
                ),
            },
        }
    })
    .await
}

/// `POST /api/v1/import`: VictoriaMetrics' JSON lines (what `/api/v1/export` writes by
/// default), or a JSON array of the same objects (`format=json`); plain or gzip.
pub async fn import_json(
    axum::extract::State(st): axum::extract::State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    import_bulk(st, &headers, body, sextant_ingest::bulk::parse_json).await
}

/// `POST /api/v1/import/csv`: the CSV `/api/v1/export?format=csv` writes (header row naming
/// label columns, `__timestamp__` in Unix ms and `__value__`); plain or gzip.
pub async fn import_csv(
    axum::extract::State(st): axum::extract::State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    import_bulk(st, &headers, body, sextant_ingest::bulk::parse_csv).await
}

async fn import_bulk(
    st: Arc<AppState>,
    headers: &HeaderMap,
    body: Bytes,
    parse: fn(&[u8]) -> Result<WriteBatch, sextant_ingest::bulk::BulkError>,
) -> Response {
    if let Some(r) = too_large(&st, &body) {
        return r;
    }
    let gzip = match headers
        .get(axum::http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
    {
        None => false,
        Some(e) if e == "gzip" => true,
        Some(e) if e == "identity" || e.is_empty() => false,
        Some(e) => {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Encoding {e:?}: send plain or gzip bodies"),
            )
        }
    };
    let st2 = st.clone();
    with_slot(&st, move || {
        let st = st2;
        st.ingest.import_requests.fetch_add(1, Ordering::Relaxed);
        let raw: std::borrow::Cow<'_, [u8]> = if gzip {
            match gunzip(&body, st.limits.max_decoded) {
                Ok(r) => r.into(),
                Err(e) => return decode_failure(&st, e),
            }
        } else {
            body.as_ref().into()
        };
        let batch = match parse(&raw) {
            Ok(b) => b,
            Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
        };
        if let Some(r) = request_too_big(&st, &batch) {
            return r;
        }
        match store(&st.db, batch) {
            Err(e) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("storage cannot accept writes right now: {e}"),
            ),
            Ok(s) => match s.first_problem {
                None => StatusCode::NO_CONTENT.into_response(),
                Some(first) => text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{} samples or exemplars rejected, {} samples accepted; first problem: {first}",
                        s.problems, s.samples
                    ),
                ),
            },
        }
    })
    .await
}

/// The InfluxDB version reported in `X-Influxdb-Version`, as VictoriaMetrics does; some clients
/// (the `influx` CLI, Telegraf's health checks) look for the header.
const INFLUX_VERSION: &str = "1.8.0";

/// Which InfluxDB API a write came in on; errors are shaped like that API's.
#[derive(Clone, Copy)]
enum InfluxApi {
    V1,
    V2,
}

/// An InfluxDB-style JSON error: v1 `{"error": ...}`, v2 `{"code": "invalid", "message": ...}`.
fn influx_error(api: InfluxApi, status: StatusCode, msg: String) -> Response {
    let body = match api {
        InfluxApi::V1 => serde_json::json!({ "error": msg }),
        InfluxApi::V2 => serde_json::json!({
            "code": if status == StatusCode::PAYLOAD_TOO_LARGE { "request too large" } else if status.is_server_error() { "unavailable" } else { "invalid" },
            "message": msg,
        }),
    };
    let mut resp = crate::limits::tag_response((status, axum::Json(body)).into_response(), &msg);
    resp.headers_mut().insert(
        "X-Influxdb-Version",
        HeaderValue::from_static(INFLUX_VERSION),
    );
    resp
}

/// `POST /write` (InfluxDB v1).
pub async fn influx_write_v1(
    st: axum::extract::State<Arc<AppState>>,
    q: axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    influx_write(st, q, headers, body, InfluxApi::V1).await
}

/// `POST /api/v2/write` (InfluxDB v2).
pub async fn influx_write_v2(
    st: axum::extract::State<Arc<AppState>>,
    q: axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    influx_write(st, q, headers, body, InfluxApi::V2).await
}

/// `GET`/`HEAD /ping`: InfluxDB's liveness check.
pub async fn influx_ping() -> Response {
    no_content_influx()
}

/// Line protocol writes: `precision` and `db` query parameters, optional gzip. Valid lines are
/// stored even when others are not; then the answer is 400 naming the first bad line and the
/// counts (InfluxDB's partial-write behaviour), otherwise 204.
async fn influx_write(
    axum::extract::State(st): axum::extract::State<Arc<AppState>>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
    api: InfluxApi,
) -> Response {
    if body.len() > st.limits.max_body {
        st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
        st.limit_hits.hit(Limit::BodySize);
        return influx_error(
            api,
            StatusCode::PAYLOAD_TOO_LARGE,
            too_large_msg(&st, body.len()),
        );
    }
    let mut precision = sextant_ingest::influx::Precision::Nanoseconds;
    let mut db = None;
    for (k, v) in form_urlencoded::parse(q.as_deref().unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "precision" => match sextant_ingest::influx::Precision::parse(&v) {
                Some(p) => precision = p,
                None => {
                    st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
                    return influx_error(
                        api,
                        StatusCode::BAD_REQUEST,
                        format!(
                            "invalid precision {v:?}: expected ns, us, ms or s (v1 also n, u, m, h)"
                        ),
                    );
                }
            },
            "db" => db = Some(v.into_owned()),
            _ => {}
        }
    }
    let gzip = match headers
        .get(axum::http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
    {
        None => false,
        Some(e) if e == "gzip" => true,
        Some(e) if e == "identity" || e.is_empty() => false,
        Some(e) => {
            st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
            return influx_error(
                api,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Encoding {e:?}: send plain or gzip bodies"),
            );
        }
    };
    let now_ms = sextant_model::time::now_ms();
    let st2 = st.clone();
    with_slot(&st, move || {
        let st = st2;
        st.ingest.influx_requests.fetch_add(1, Ordering::Relaxed);
        let raw: std::borrow::Cow<'_, [u8]> = if gzip {
            match gunzip(&body, st.limits.max_decoded) {
                Ok(r) => r.into(),
                Err(e) => {
                    st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
                    let status = if st.limit_hits.hit_tagged(&e) {
                        StatusCode::PAYLOAD_TOO_LARGE
                    } else {
                        StatusCode::BAD_REQUEST
                    };
                    return influx_error(api, status, e);
                }
            }
        } else {
            body.as_ref().into()
        };
        let opts = sextant_ingest::influx::InfluxOptions {
            precision,
            db,
            now_ms,
            limits: DecodeLimits {
                max_labels_per_series: st.limits.max_labels_per_series,
                max_label_name_len: st.limits.max_label_name_len,
                max_label_value_len: st.limits.max_label_value_len,
            },
        };
        let parsed = sextant_ingest::influx::parse_influx(&raw, &opts);
        let lines = parsed.lines;
        let invalid = parsed.invalid_lines;
        let first_error = parsed.first_error;
        for (name, n) in &parsed.limit_errors {
            if let Some(l) = crate::limits::Limit::from_name(name) {
                st.limit_hits.add(l, *n);
            }
        }
        let batch = parsed.batch.into_write_batch();
        if let Err((l, msg)) = check_request(&st, &batch) {
            st.limit_hits.hit(l);
            st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
            return influx_error(api, StatusCode::BAD_REQUEST, msg);
        }
        let stored = match store(&st.db, batch) {
            Ok(s) => s,
            Err(e) => {
                return influx_error(
                    api,
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("storage cannot accept writes right now: {e}"),
                )
            }
        };
        let mut problems = Vec::new();
        if let Some(e) = first_error {
            problems.push(format!(
                "{invalid} of {lines} lines invalid and skipped, first at {e}"
            ));
        }
        if let Some(p) = &stored.first_problem {
            problems.push(format!(
                "{} samples refused by storage, first: {p}",
                stored.problems
            ));
        }
        if problems.is_empty() {
            return no_content_influx();
        }
        influx_error(
            api,
            StatusCode::BAD_REQUEST,
            format!(
                "partial write: {}; the other lines were stored ({} samples)",
                problems.join("; "),
                stored.samples
            ),
        )
    })
    .await
}

fn no_content_influx() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        "X-Influxdb-Version",
        HeaderValue::from_static(INFLUX_VERSION),
    );
    resp
}

/// Decompresses a gzip body, refusing to produce more than `limit` bytes.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut dec = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| format!("body is not valid gzip: {e}"))?;
    if out.len() > limit {
        return Err(format!(
            "decompressed body exceeds the limit of {limit} bytes (limit decompressed_size)"
        ));
    }
    Ok(out)
}
