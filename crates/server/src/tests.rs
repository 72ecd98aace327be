//! Handler tests through the router (no network): write paths with good, partial and hostile
//! input, and the read API's JSON shapes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use sextant_ingest::remote_write::{compress_snappy, encode_v1, encode_v2};
use sextant_model::{Labels, Sample};
use sextant_tsdb::db::{Db, DbOptions};
use sextant_tsdb::head::HeadOptions;
use tower::ServiceExt;

use crate::{router, AppState, BuildInfo, WriteLimits};

struct T {
    _dir: tempfile::TempDir,
    state: Arc<AppState>,
}

fn setup_with(head: HeadOptions, limits: WriteLimits) -> T {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(
        Db::open(
            dir.path(),
            DbOptions {
                head,
                ..DbOptions::default()
            },
        )
        .expect("open db"),
    );
    let state = AppState::new(
        db,
        limits,
        BuildInfo {
            version: "0.1.0".into(),
            revision: "test".into(),
        },
    );
    T { _dir: dir, state }
}

fn setup() -> T {
    setup_with(HeadOptions::default(), WriteLimits::default())
}

async fn call(t: &T, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = router(t.state.clone())
        .oneshot(req)
        .await
        .expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).to_string())
}

fn rw(body: Vec<u8>, ct: &str) -> Request<Body> {
    Request::post("/api/v1/write")
        .header("Content-Type", ct)
        .header("Content-Encoding", "snappy")
        .body(Body::from(body))
        .expect("request")
}

fn ls(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())))
}

async fn get_json(t: &T, uri: &str) -> (StatusCode, serde_json::Value) {
    let (s, _, b) = call(t, Request::get(uri).body(Body::empty()).expect("req")).await;
    (
        s,
        serde_json::from_str(&b).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {b}")),
    )
}

const NOW: i64 = 1_700_000_000_000;

#[tokio::test]
async fn remote_write_v1_then_read_api() {
    let t = setup();
    let series = vec![
        (
            ls(&[
                ("__name__", "agent_tokens_total"),
                ("job", "a"),
                ("model", "m1"),
            ]),
            vec![Sample::new(NOW, 1.0), Sample::new(NOW + 15_000, 2.0)],
        ),
        (
            ls(&[
                ("__name__", "agent_tokens_total"),
                ("job", "a"),
                ("model", "m2"),
            ]),
            vec![Sample::new(NOW, 5.0)],
        ),
        (
            ls(&[("__name__", "up"), ("job", "b")]),
            vec![Sample::new(NOW, 1.0)],
        ),
    ];
    let (s, _, body) = call(
        &t,
        rw(
            compress_snappy(&encode_v1(&series)),
            "application/x-protobuf",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");

    let (s, j) = get_json(&t, "/api/v1/series?match[]=agent_tokens_total").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["status"], "success");
    assert_eq!(j["data"].as_array().map(|a| a.len()), Some(2));
    assert_eq!(j["data"][0]["model"], "m1");

    let (_, j) = get_json(&t, "/api/v1/series?match[]=agent_tokens_total&limit=1").await;
    assert_eq!(j["data"].as_array().map(|a| a.len()), Some(1));
    assert_eq!(j["warnings"][0], "results truncated due to limit");

    let (_, j) = get_json(&t, "/api/v1/labels").await;
    assert_eq!(j["data"], serde_json::json!(["__name__", "job", "model"]));
    let (_, j) = get_json(&t, "/api/v1/label/job/values").await;
    assert_eq!(j["data"], serde_json::json!(["a", "b"]));
    let (_, j) = get_json(&t, "/api/v1/label/model/values?match[]=up").await;
    assert_eq!(j["data"], serde_json::json!([]));
    let (_, j) = get_json(&t, "/api/v1/label/__name__/values?match[]={job=%22a%22}").await;
    assert_eq!(j["data"], serde_json::json!(["agent_tokens_total"]));

    let (s, j) = get_json(&t, "/api/v1/series").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(j["errorType"], "bad_data");
    let (s, j) = get_json(&t, "/api/v1/series?match[]=up{job").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(j["error"].as_str().unwrap_or("").contains("match[]"), "{j}");
    let (s, _) = get_json(&t, "/api/v1/label/bad-name/values").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (_, j) = get_json(&t, "/api/v1/status/tsdb").await;
    assert_eq!(j["data"]["headStats"]["numSeries"], 3);
    assert_eq!(
        j["data"]["seriesCountByMetricName"][0]["name"],
        "agent_tokens_total"
    );
    assert_eq!(j["data"]["seriesCountByMetricName"][0]["value"], 2);
    let (_, j) = get_json(&t, "/api/v1/status/buildinfo").await;
    assert_eq!(j["data"]["version"], "0.1.0");
}

#[tokio::test]
async fn remote_write_v2_reports_written_counts() {
    let t = setup();
    let series = vec![(
        ls(&[("__name__", "x_total"), ("job", "v2")]),
        vec![Sample::new(NOW, 1.0), Sample::new(NOW + 1, 2.0)],
    )];
    let (s, h, body) = call(
        &t,
        rw(
            compress_snappy(&encode_v2(&series)),
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(h["X-Prometheus-Remote-Write-Samples-Written"], "2");
    assert_eq!(h["X-Prometheus-Remote-Write-Histograms-Written"], "0");
    let (_, j) = get_json(&t, "/api/v1/series?match[]=x_total").await;
    assert_eq!(j["data"][0]["job"], "v2");
}

#[tokio::test]
async fn hostile_write_requests_get_clear_errors() {
    let t = setup_with(
        HeadOptions::default(),
        WriteLimits {
            max_body: 4096,
            ..WriteLimits::default()
        },
    );
    // Bad snappy.
    let (s, _, b) = call(
        &t,
        rw(b"definitely not snappy".to_vec(), "application/x-protobuf"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.to_lowercase().contains("snappy"), "{b}");
    // Valid snappy, malformed protobuf.
    let (s, _, b) = call(
        &t,
        rw(
            compress_snappy(&[0xff, 0xff, 0xff, 0x0f, 0x01]),
            "application/x-protobuf",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    // Unknown content type.
    let (s, _, _) = call(&t, rw(compress_snappy(&encode_v1(&[])), "application/json")).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Too large.
    let (s, _, b) = call(&t, rw(vec![0u8; 5000], "application/x-protobuf")).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    // Wrong content encoding.
    let req = Request::post("/api/v1/write")
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "gzip")
        .body(Body::from(compress_snappy(&encode_v1(&[]))))
        .expect("req");
    let (s, _, _) = call(&t, req).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Nothing was stored by any of them.
    let (_, j) = get_json(&t, "/api/v1/status/tsdb").await;
    assert_eq!(j["data"]["headStats"]["numSeries"], 0);
}

#[tokio::test]
async fn partly_bad_request_keeps_the_good_part() {
    let t = setup();
    let good = (
        ls(&[("__name__", "good"), ("job", "j")]),
        vec![Sample::new(NOW, 1.0)],
    );
    let bad_name = (
        ls(&[("__name__", "0bad"), ("job", "j")]),
        vec![Sample::new(NOW, 1.0)],
    );
    let (s, _, b) = call(
        &t,
        rw(
            compress_snappy(&encode_v1(&[good.clone(), bad_name])),
            "application/x-protobuf",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("0bad"), "message names the bad series: {b}");
    let (_, j) = get_json(&t, "/api/v1/series?match[]=good").await;
    assert_eq!(j["data"].as_array().map(|a| a.len()), Some(1));

    // Same timestamp, different value: duplicate; older than newest: out of order.
    let dup = (good.0.clone(), vec![Sample::new(NOW, 2.0)]);
    let (s, _, b) = call(
        &t,
        rw(
            compress_snappy(&encode_v1(&[dup])),
            "application/x-protobuf",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("duplicate"), "{b}");
    let same = (good.0.clone(), vec![Sample::new(NOW, 1.0)]);
    let (s, _, b) = call(
        &t,
        rw(
            compress_snappy(&encode_v1(&[same])),
            "application/x-protobuf",
        ),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::NO_CONTENT,
        "an identical resend is accepted: {b}"
    );
    let newer = (good.0.clone(), vec![Sample::new(NOW + 60_000, 3.0)]);
    let older = (good.0.clone(), vec![Sample::new(NOW + 30_000, 4.0)]);
    let (s, _, _) = call(
        &t,
        rw(
            compress_snappy(&encode_v1(&[newer])),
            "application/x-protobuf",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, b) = call(
        &t,
        rw(
            compress_snappy(&encode_v1(&[older])),
            "application/x-protobuf",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("out of order"), "{b}");

    let metrics = call(
        &t,
        Request::get("/metrics").body(Body::empty()).expect("req"),
    )
    .await
    .2;
    assert!(
        metrics.contains("sextant_tsdb_samples_rejected_total{reason=\"out_of_order\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sextant_tsdb_samples_rejected_total{reason=\"duplicate_sample\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sextant_ingest_rejected_series_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sextant_http_request_duration_seconds_count{handler=\"/api/v1/write\"}"),
        "{metrics}"
    );

    // The standard process_* families of Prometheus client libraries, with their types.
    let parsed = sextant_ingest::text::parse_text(&metrics, 0).expect("/metrics parses");
    let kind = |name: &str| {
        parsed
            .metadata
            .iter()
            .find(|m| m.metric_family == name)
            .map(|m| m.kind.as_str())
    };
    let value = |name: &str| {
        parsed
            .samples
            .iter()
            .find(|(l, _)| l.metric_name() == Some(name))
            .map(|(_, s)| s.v)
    };
    for (name, k) in [
        ("process_cpu_seconds_total", "counter"),
        ("process_max_fds", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_start_time_seconds", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_virtual_memory_max_bytes", "gauge"),
    ] {
        assert_eq!(kind(name), Some(k), "{name}");
        assert!(
            value(name).is_some_and(|v| v >= 0.0),
            "{name}: {:?}",
            value(name)
        );
    }
    assert!(value("process_open_fds") <= value("process_max_fds"));
    assert!(value("process_resident_memory_bytes") <= value("process_virtual_memory_bytes"));
    assert!(value("process_start_time_seconds").is_some_and(|t| t > 1.5e9));
}

#[tokio::test]
async fn ooo_window_and_series_limits() {
    let t = setup_with(
        HeadOptions {
            ooo_window: 600_000,
            max_series: 2,
            max_series_per_metric: 1,
            ..HeadOptions::default()
        },
        WriteLimits::default(),
    );
    let a = ls(&[("__name__", "a"), ("job", "j")]);
    let write = |s: Vec<(Labels, Vec<Sample>)>| {
        rw(compress_snappy(&encode_v1(&s)), "application/x-protobuf")
    };
    assert_eq!(
        call(&t, write(vec![(a.clone(), vec![Sample::new(NOW, 1.0)])]))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    // 5 minutes back: inside the 10-minute window.
    assert_eq!(
        call(
            &t,
            write(vec![(a.clone(), vec![Sample::new(NOW - 300_000, 0.5)])])
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    // 20 minutes back: outside.
    let (s, _, b) = call(
        &t,
        write(vec![(a.clone(), vec![Sample::new(NOW - 1_200_000, 0.1)])]),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    // Per-metric cap of 1.
    let a2 = ls(&[("__name__", "a"), ("job", "k")]);
    let (s, _, b) = call(&t, write(vec![(a2, vec![Sample::new(NOW, 1.0)])])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("series limit"), "{b}");
    let q = t.state.db.querier();
    use sextant_tsdb::querier::Querier;
    let got = q
        .select(
            &[sextant_model::Matcher::equal("__name__", "a")],
            i64::MIN,
            i64::MAX,
        )
        .expect("select");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].floats,
        vec![Sample::new(NOW - 300_000, 0.5), Sample::new(NOW, 1.0)]
    );
}

#[tokio::test]
async fn import_text_format() {
    let t = setup();
    let text = "# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total{job=\"ci\"} 3 1700000000000\njobs_total{job=\"cd\"} 4\n";
    let (s, _, b) = call(
        &t,
        Request::post("/api/v1/import/prometheus")
            .body(Body::from(text))
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (_, j) = get_json(&t, "/api/v1/series?match[]=jobs_total").await;
    assert_eq!(j["data"].as_array().map(|a| a.len()), Some(2));
    let (_, j) = get_json(&t, "/api/v1/metadata").await;
    assert_eq!(j["data"]["jobs_total"][0]["type"], "counter");
    assert_eq!(j["data"]["jobs_total"][0]["help"], "Jobs run.");
    let (s, _, b) = call(
        &t,
        Request::post("/api/v1/import/prometheus")
            .body(Body::from("ok 1\nbad{x=} 2\n"))
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("line 2"), "{b}");

    // OpenMetrics by Content-Type: seconds timestamps, _total counters, mandatory # EOF.
    let now_s = sextant_model::time::now_ms() / 1000;
    let om = format!(
        "# TYPE runs counter\nruns_total{{job=\"om\"}} 5 {now_s}.5 # {{trace_id=\"x\"}} 1\n# EOF\n"
    );
    let (s, _, b) = call(
        &t,
        Request::post("/api/v1/import/prometheus")
            .header(
                "Content-Type",
                "application/openmetrics-text; version=1.0.0",
            )
            .body(Body::from(om))
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (_, j) = get_json(
        &t,
        &format!("/api/v1/query?query=runs_total&time={now_s}.5"),
    )
    .await;
    assert_eq!(j["data"]["result"][0]["value"][1], "5", "{j}");
    let (s, _, b) = call(
        &t,
        Request::post("/api/v1/import/prometheus")
            .header("Content-Type", "application/openmetrics-text")
            .body(Body::from("runs_total 1\n"))
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("# EOF"), "{b}");
    let (s, _, b) = call(
        &t,
        Request::post("/api/v1/import/prometheus")
            .body(Body::from(&b"a 1\nb{x=\"\xff\"} 2\n"[..]))
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("line 2") && b.contains("UTF-8"), "{b}");
}

#[tokio::test]
async fn query_api_answers_like_prometheus() {
    let t = setup();
    let series: Vec<(Labels, Vec<Sample>)> = (0..2)
        .map(|i| {
            let job = format!("j{i}");
            (
                ls(&[("__name__", "req_total"), ("job", &job)]),
                (0..21)
                    .map(|k| Sample::new(NOW + k * 15_000, (k * (i + 1)) as f64))
                    .collect(),
            )
        })
        .collect();
    let (s, _, b) = call(
        &t,
        rw(
            compress_snappy(&encode_v1(&series)),
            "application/x-protobuf",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let at = (NOW + 300_000) as f64 / 1000.0;

    let (s, _, body) = call(
        &t,
        Request::get(format!(
            "/api/v1/query?query=sum(rate(req_total%5B5m%5D))&time={at}"
        ))
        .body(Body::empty())
        .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000300,"0.2"]}]}}"#
    );

    // POST form, range query, step as a duration, matrix values.
    let form = format!(
        "query=req_total%7Bjob%3D%22j1%22%7D&start={}&end={}&step=1m",
        NOW as f64 / 1000.0,
        at
    );
    let (s, _, body) = call(
        &t,
        Request::post("/api/v1/query_range")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["data"]["resultType"], "matrix");
    assert_eq!(j["data"]["result"][0]["metric"]["job"], "j1");
    assert_eq!(
        j["data"]["result"][0]["values"].as_array().unwrap().len(),
        6
    );
    assert_eq!(
        j["data"]["result"][0]["values"][5],
        serde_json::json!([1700000300, "40"])
    );

    // Scalars, errors with Prometheus' errorType.
    let (_, j) = get_json(&t, &format!("/api/v1/query?query=1%2B1&time={at}")).await;
    assert_eq!(j["data"]["result"], serde_json::json!([1700000300, "2"]));
    let (s, j) = get_json(&t, "/api/v1/query?query=sum(").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(j["errorType"], "bad_data");
    assert!(j["error"].as_str().unwrap().contains("1:5"), "{j}");
    let (s, j) = get_json(
        &t,
        &format!("/api/v1/query_range?query=up&start=0&end={at}&step=1"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(j["error"].as_str().unwrap().contains("11,000"), "{j}");
    let (s, j) = get_json(&t, "/api/v1/query_range?query=up&start=10&end=0&step=1").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");

    let (s, j) = get_json(
        &t,
        "/api/v1/format_query?query=sum%20by(job)(rate(x%5B5m%5D))",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["data"], "sum by (job) (rate(x[5m]))");
    let (_, j) = get_json(&t, "/api/v1/parse_query?query=up%7Bjob%3D%22a%22%7D").await;
    assert_eq!(j["data"]["type"], "vectorSelector");
}

#[tokio::test]
async fn influx_line_protocol_writes() {
    let t = setup();
    let post = |uri: &str, body: Vec<u8>, gzip: bool| {
        let mut r = Request::post(uri);
        if gzip {
            r = r.header("Content-Encoding", "gzip");
        }
        r.body(Body::from(body)).expect("req")
    };
    // v1 with db and precision.
    let (s, h, b) = call(
        &t,
        post(
            "/write?db=tg&precision=s",
            b"cpu,host=a usage=1.5,count=3i,up=true,note=\"x\" 1700000000\n".to_vec(),
            false,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(h["X-Influxdb-Version"], "1.8.0");
    let (_, j) = get_json(&t, "/api/v1/series?match[]=%7Bdb%3D%22tg%22%7D").await;
    let mut names: Vec<String> = j["data"]
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["__name__"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    assert_eq!(names, vec!["cpu_count", "cpu_up", "cpu_usage"]);

    // v2 gzip, nanosecond default.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"mem,host=b used=42 1700000000000000000\n").expect("gzip");
    let (s, _, b) = call(
        &t,
        post(
            "/api/v2/write?org=o&bucket=b",
            gz.finish().expect("gzip"),
            true,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (_, j) = get_json(&t, "/api/v1/query?query=mem_used&time=1700000000").await;
    assert_eq!(j["data"]["result"][0]["value"][1], "42", "{j}");

    // Partial failure: the good lines are stored, the answer names the bad line and field.
    let (s, _, b) = call(
        &t,
        post(
            "/write?precision=s",
            b"good v=1 1700000000\nbad v=oops 1700000000\ngood2 v=2 1700000000\n".to_vec(),
            false,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let j: serde_json::Value = serde_json::from_str(&b).expect("json");
    let msg = j["error"].as_str().expect("error");
    assert!(
        msg.contains("line 2") && msg.contains("field \"v\""),
        "{msg}"
    );
    assert!(msg.contains("other lines were stored"), "{msg}");
    let (_, j) = get_json(&t, "/api/v1/query?query=good2_v&time=1700000000").await;
    assert_eq!(j["data"]["result"][0]["value"][1], "2", "{j}");

    // v2 error shape, bad precision, bad gzip, unknown encoding.
    let (s, _, b) = call(
        &t,
        post("/api/v2/write?precision=x", b"m v=1".to_vec(), false),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let j: serde_json::Value = serde_json::from_str(&b).expect("json");
    assert_eq!(j["code"], "invalid");
    assert!(j["message"]
        .as_str()
        .unwrap_or_default()
        .contains("precision"));
    let (s, _, b) = call(&t, post("/write", b"not gzip".to_vec(), true)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("gzip"), "{b}");
    let (s, _, _) = call(
        &t,
        Request::post("/write")
            .header("Content-Encoding", "br")
            .body(Body::from("m v=1"))
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Ping.
    let (s, h, _) = call(&t, Request::get("/ping").body(Body::empty()).expect("req")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h["X-Influxdb-Version"], "1.8.0");
}

/// axum drops the handler future when the client goes away; the evaluation running on the
/// blocking pool must then see its cancel flag set (the engine polls it at every check, see
/// `sextant_promql`'s `cancel_flag_stops_the_evaluation_at_its_next_check`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_query_request_cancels_its_evaluation() {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let t = setup();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let handler = crate::query::run(t.state.clone(), move |st, cancel| {
        let _ = started_tx.send(());
        // Stands in for a long evaluation that polls the flag; gives up after a minute.
        let t0 = Instant::now();
        while !cancel.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let canceled = cancel.load(Ordering::Relaxed);
        // The engine the handlers build carries the same flag.
        let p = crate::params::Params::parse(
            &axum::http::Method::GET,
            None,
            &axum::http::HeaderMap::new(),
            &axum::body::Bytes::new(),
        );
        let engine = crate::query::engine_with_timeout(st, &p, cancel).expect("engine");
        let src = crate::query::TsdbSource(st.db.querier());
        let err = engine.instant(&src, "up", 0).expect_err("canceled");
        let _ = done_tx.send((canceled, err.kind()));
        Ok(axum::response::IntoResponse::into_response("unreachable"))
    });
    let task = tokio::spawn(handler);
    started_rx.await.expect("evaluation started");
    task.abort();
    let (canceled, kind) = tokio::task::spawn_blocking(move || {
        done_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("evaluation ended")
    })
    .await
    .expect("join");
    assert!(
        canceled,
        "the flag was not set when the request was dropped"
    );
    assert_eq!(kind, sextant_promql::ErrorKind::Canceled);
}

fn read_req(body: Vec<u8>) -> Request<Body> {
    Request::post("/api/v1/read")
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(Body::from(body))
        .expect("request")
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_read_answers_and_rejects_bad_requests() {
    use prost::Message;
    use sextant_ingest::remote_write::proto::v1;
    let t = setup();
    let now = sextant_model::time::now_ms();
    let series = vec![(
        Labels::from_pairs([("__name__", "m"), ("a", "b")]),
        vec![Sample::new(now - 2000, 1.0), Sample::new(now - 1000, 2.0)],
    )];
    let (s, _, b) = call(
        &t,
        rw(
            compress_snappy(&encode_v1(&series)),
            "application/x-protobuf",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let query = |types: Vec<i32>, mtype: i32| v1::ReadRequest {
        queries: vec![v1::Query {
            start_timestamp_ms: now - 10_000,
            end_timestamp_ms: now,
            matchers: vec![v1::LabelMatcher {
                r#type: mtype,
                name: "__name__".into(),
                value: "m".into(),
            }],
            hints: None,
        }],
        accepted_response_types: types,
    };
    // SAMPLES by default.
    let resp = router(t.state.clone())
        .oneshot(read_req(compress_snappy(&query(vec![], 0).encode_to_vec())))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-encoding"], "snappy");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let got =
        sextant_remote::read::decode_response("application/x-protobuf", &body, now - 10_000, now)
            .expect("decodes");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].floats, series[0].1);
    // Streamed when asked first.
    let resp = router(t.state.clone())
        .oneshot(read_req(compress_snappy(
            &query(vec![1, 0], 0).encode_to_vec(),
        )))
        .await
        .expect("response");
    let ct = resp.headers()["content-type"]
        .to_str()
        .expect("ct")
        .to_string();
    assert_eq!(ct, sextant_remote::wire::STREAMED);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let streamed =
        sextant_remote::read::decode_response(&ct, &body, now - 10_000, now).expect("decodes");
    assert_eq!(streamed, got);
    // Hostile input: not snappy, not protobuf, unknown response type, bad matcher type, bad regex.
    let (s, _, b) = call(&t, read_req(b"nope".to_vec())).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _, b) = call(&t, read_req(compress_snappy(b"\xff\xff\xff"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.contains("ReadRequest"), "{b}");
    let (s, _, b) = call(
        &t,
        read_req(compress_snappy(&query(vec![7], 0).encode_to_vec())),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.contains("response types"), "{b}");
    let (s, _, b) = call(
        &t,
        read_req(compress_snappy(&query(vec![], 9).encode_to_vec())),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.contains("query 0: invalid matcher type 9"), "{b}");
    let mut bad = query(vec![], 2);
    bad.queries[0].matchers[0].value = "(".into();
    let (s, _, b) = call(&t, read_req(compress_snappy(&bad.encode_to_vec()))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
}
