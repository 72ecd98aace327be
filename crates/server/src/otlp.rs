//! `POST /v1/metrics`: the OTLP/HTTP metrics receiver. Decoding and translation live in
//! `sextant_ingest::otlp`; this handler does what OTLP/HTTP asks of a server: answer in the
//! request's encoding (protobuf or JSON), `200` with `partial_success` when only some data
//! points were refused, `400` with a `google.rpc.Status` for an undecodable body (the client
//! must not retry), `413` when over the size limits, `415` for an unknown Content-Type or
//! Content-Encoding, `429`/`503` (retryable) when busy or when storage cannot take writes.
//! Samples reach the TSDB through the [`Sink`] seam, under the same write slots and limits as
//! remote write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sextant_ingest::otlp::{self, Encoding, OtlpError, Translator};
use sextant_ingest::remote_write::DecodeLimits;
use sextant_ingest::Sink;

use crate::write::{with_slot, DbSink};
use crate::AppState;

/// The OTLP receiver's state: delta running totals and counters for self-monitoring.
#[derive(Default)]
pub(crate) struct OtlpState {
    pub translator: Translator,
    pub requests: AtomicU64,
    pub data_points: AtomicU64,
    pub rejected_data_points: AtomicU64,
}

fn answer(status: StatusCode, enc: Encoding, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(enc.content_type()),
    );
    r
}

fn status(status: StatusCode, enc: Encoding, code: i32, msg: &str) -> Response {
    crate::limits::tag_response(
        answer(status, enc, otlp::encode_status(enc, code, msg)),
        msg,
    )
}

/// `POST /v1/metrics`.
pub async fn metrics(
    axum::extract::State(st): axum::extract::State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let enc = match otlp::parse_content_type(ct) {
        Ok(e) => e,
        Err(e) => {
            st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, e + "\n").into_response();
        }
    };
    if body.len() > st.limits.max_body {
        st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
        return status(
            StatusCode::PAYLOAD_TOO_LARGE,
            enc,
            otlp::CODE_INVALID_ARGUMENT,
            &{
                st.limit_hits.hit(crate::limits::Limit::BodySize);
                format!(
                    "request body of {} bytes exceeds the limit of {} bytes (limit body_size)",
                    body.len(),
                    st.limits.max_body
                )
            },
        );
    }
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let st2 = st.clone();
    with_slot(&st, move || {
        let st = st2;
        st.otlp.requests.fetch_add(1, Ordering::Relaxed);
        let req = match otlp::decode_body(
            &body,
            enc,
            content_encoding.as_deref(),
            st.limits.max_decoded,
        ) {
            Ok(r) => r,
            Err(e) => {
                st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
                let code = match e {
                    OtlpError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    OtlpError::TooLarge { .. } => {
                        st.limit_hits.hit(crate::limits::Limit::DecompressedSize);
                        StatusCode::PAYLOAD_TOO_LARGE
                    }
                    _ => StatusCode::BAD_REQUEST,
                };
                return status(code, enc, otlp::CODE_INVALID_ARGUMENT, &e.to_string());
            }
        };
        let limits = DecodeLimits {
            max_labels_per_series: st.limits.max_labels_per_series,
            max_label_name_len: st.limits.max_label_name_len,
            max_label_value_len: st.limits.max_label_value_len,
        };
        let sink = DbSink(st.db.clone());
        let tr =
            st.otlp
                .translator
                .translate(req, &limits, sextant_model::time::now_ms(), Some(&sink));
        st.otlp
            .data_points
            .fetch_add(tr.points as u64, Ordering::Relaxed);
        if let Some(e) = &tr.first_error {
            st.limit_hits.hit_tagged(&e.to_string());
        }
        if let Err((l, msg)) = crate::write::check_request(&st, &tr.batch) {
            st.limit_hits.hit(l);
            st.ingest.rejected_requests.fetch_add(1, Ordering::Relaxed);
            return status(
                StatusCode::BAD_REQUEST,
                enc,
                otlp::CODE_INVALID_ARGUMENT,
                &msg,
            );
        }
        st.ingest
            .exemplars_received
            .fetch_add(crate::write::exemplar_count(&tr.batch), Ordering::Relaxed);
        let stored = match sink.store(tr.batch) {
            Ok(s) => s,
            Err(e) => {
                return status(
                    StatusCode::SERVICE_UNAVAILABLE,
                    enc,
                    otlp::CODE_UNAVAILABLE,
                    &format!("storage cannot accept writes right now: {e}"),
                )
            }
        };
        // Storage refusals are counted per sample; a refused histogram point may account for
        // several, so this can overstate refused points but never hides one.
        let rejected = (tr.rejected_points + stored.problems).min(tr.points);
        st.otlp
            .rejected_data_points
            .fetch_add(rejected as u64, Ordering::Relaxed);
        let mut msgs: Vec<String> = Vec::new();
        if let Some(e) = tr.first_error {
            msgs.push(format!(
                "{} data points refused in translation; first: {e}",
                tr.rejected_points
            ));
        }
        if let Some(e) = stored.first_problem {
            msgs.push(format!(
                "{} samples refused by storage; first: {e}",
                stored.problems
            ));
        }
        let msg = msgs.join("; ");
        if !msg.is_empty() {
            tracing::debug!(rejected, "OTLP partial success: {msg}");
        }
        answer(
            StatusCode::OK,
            enc,
            otlp::encode_response(enc, rejected as i64, &msg),
        )
    })
    .await
}

/// Appends the receiver's self-metrics in the text format.
pub(crate) fn render(st: &AppState, o: &mut String) {
    use std::fmt::Write;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut fam = |name: &str, kind: &str, help: &str, v: u64| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    };
    fam(
        "sextant_otlp_requests_total",
        "counter",
        "OTLP/HTTP metrics export requests received.",
        load(&st.otlp.requests),
    );
    fam(
        "sextant_otlp_data_points_total",
        "counter",
        "OTLP data points received.",
        load(&st.otlp.data_points),
    );
    fam(
        "sextant_otlp_rejected_data_points_total",
        "counter",
        "OTLP data points refused (reported to senders as partial success).",
        load(&st.otlp.rejected_data_points),
    );
    fam(
        "sextant_otlp_delta_streams",
        "gauge",
        "Delta temporality streams whose running totals are kept in memory.",
        st.otlp.translator.delta_streams() as u64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use sextant_tsdb::db::{Db, DbOptions};
    use tower::ServiceExt;

    use crate::{router, BuildInfo, WriteLimits};

    fn state(dir: &std::path::Path) -> Arc<AppState> {
        let db = Arc::new(Db::open(dir, DbOptions::default()).expect("open db"));
        AppState::new(
            db,
            WriteLimits::default(),
            BuildInfo {
                version: "0.1.0".into(),
                revision: "test".into(),
            },
        )
    }

    async fn post(
        st: &Arc<AppState>,
        ct: &str,
        ce: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, String, String) {
        let mut req = Request::post("/v1/metrics").header("Content-Type", ct);
        if let Some(ce) = ce {
            req = req.header("Content-Encoding", ce);
        }
        let resp = router(st.clone())
            .oneshot(req.body(Body::from(body)).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, ct, String::from_utf8_lossy(&body).to_string())
    }

    fn json_request(now_ns: u128) -> String {
        format!(
            r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"api"}}}}]}},
              "scopeMetrics":[{{"metrics":[
                {{"name":"hits","sum":{{"aggregationTemporality":2,"isMonotonic":true,
                  "dataPoints":[{{"timeUnixNano":"{now_ns}","asInt":"5"}}]}}}},
                {{"name":"bad","exponentialHistogram":{{"aggregationTemporality":2,
                  "dataPoints":[{{"timeUnixNano":"{now_ns}","scale":-9,"count":"1","zeroCount":"1"}}]}}}}
              ]}}]}}]}}"#
        )
    }

    #[tokio::test]
    async fn json_partial_success_gzip_and_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = state(dir.path());
        let now_ns = sextant_model::time::now_ms() as u128 * 1_000_000;
        let body = json_request(now_ns);

        let (s, ct, b) = post(&st, "application/json", None, body.clone().into_bytes()).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_str(&b).expect("json answer");
        assert_eq!(v["partialSuccess"]["rejectedDataPoints"], "1");
        let msg = v["partialSuccess"]["errorMessage"].as_str().unwrap_or("");
        assert!(msg.contains("scale -9"), "{msg}");

        let uri = format!(
            "/api/v1/query?query=hits_total&time={}",
            sextant_model::time::now_ms() as f64 / 1000.0
        );
        let resp = router(st.clone())
            .oneshot(Request::get(uri).body(Body::empty()).expect("req"))
            .await
            .expect("response");
        let q = resp.into_body().collect().await.expect("body").to_bytes();
        let q: serde_json::Value = serde_json::from_slice(&q).expect("query json");
        let r = &q["data"]["result"][0];
        assert_eq!(r["metric"]["job"], "api", "{q}");
        assert_eq!(r["value"][1], "5", "{q}");

        // gzip: the same body compressed.
        let mut gz = flate2_encode(body.as_bytes());
        let (s, _, b) = post(
            &st,
            "application/json",
            Some("gzip"),
            std::mem::take(&mut gz),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");

        // Undecodable: 400 with a google.rpc.Status-shaped JSON body.
        let (s, ct, b) = post(
            &st,
            "application/json",
            None,
            b"{\"resourceMetrics\":7}".to_vec(),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_str(&b).expect("status json");
        assert_eq!(v["code"], 3);
        assert!(
            v["message"]
                .as_str()
                .unwrap_or("")
                .contains("malformed OTLP JSON"),
            "{b}"
        );

        // Unknown media type and encoding: 415.
        let (s, _, b) = post(&st, "text/plain", None, b"x".to_vec()).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(b.contains("text/plain"));
        let (s, _, _) = post(&st, "application/x-protobuf", Some("zstd"), vec![]).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);

        // An empty protobuf request is valid and answers an empty response.
        let (s, ct, b) = post(&st, "application/x-protobuf", None, vec![]).await;
        assert_eq!(
            (s, ct.as_str(), b.as_str()),
            (StatusCode::OK, "application/x-protobuf", "")
        );

        let m = crate::render_metrics(&st);
        assert!(m.contains("sextant_otlp_data_points_total 4"), "{m}");
        assert!(
            m.contains("sextant_otlp_rejected_data_points_total 2"),
            "{m}"
        );
    }

    async fn query(st: &Arc<AppState>, q: &str, t_ms: i64) -> serde_json::Value {
        let uri = format!(
            "/api/v1/query?query={}&time={}",
            q.replace(' ', "%20")
                .replace('(', "%28")
                .replace(')', "%29"),
            t_ms as f64 / 1000.0
        );
        let resp = router(st.clone())
            .oneshot(Request::get(uri).body(Body::empty()).expect("req"))
            .await
            .expect("response");
        let b = resp.into_body().collect().await.expect("body").to_bytes();
        serde_json::from_slice(&b).expect("query json")
    }

    /// `NO_RECORDED_VALUE` ends a float series and a native histogram series at once.
    #[tokio::test]
    async fn no_recorded_value_ends_series() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = state(dir.path());
        let now = sextant_model::time::now_ms();
        let body = |t_ms: i64, flags: u32| {
            let ns = t_ms as u128 * 1_000_000;
            format!(
                r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[
                  {{"name":"temp","gauge":{{"dataPoints":[{{"timeUnixNano":"{ns}","asDouble":20.5,"flags":{flags}}}]}}}},
                  {{"name":"lat","exponentialHistogram":{{"aggregationTemporality":2,"dataPoints":[
                    {{"timeUnixNano":"{ns}","count":"3","sum":6,"scale":1,"zeroCount":"1",
                      "positive":{{"offset":0,"bucketCounts":["2"]}},"flags":{flags}}}]}}}}
                ]}}]}}]}}"#
            )
            .into_bytes()
        };
        let (s, _, b) = post(&st, "application/json", None, body(now - 20_000, 0)).await;
        assert_eq!((s, b.as_str()), (StatusCode::OK, "{}"));
        let q = query(&st, "histogram_count(lat)", now - 10_000).await;
        assert_eq!(q["data"]["result"][0]["value"][1], "3", "{q}");
        let q = query(&st, "temp", now - 10_000).await;
        assert_eq!(q["data"]["result"][0]["value"][1], "20.5", "{q}");

        let (s, _, b) = post(&st, "application/json", None, body(now - 5_000, 1)).await;
        assert_eq!((s, b.as_str()), (StatusCode::OK, "{}"));
        for expr in ["histogram_count(lat)", "temp"] {
            let q = query(&st, expr, now).await;
            assert_eq!(q["data"]["result"], serde_json::json!([]), "{expr}: {q}");
        }
    }

    fn flate2_encode(b: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = e.write_all(b);
        e.finish().unwrap_or_default()
    }
}
