//! End-to-end tests of the Pushgateway-compatible push API against the real binary: the
//! Python client library's push/pushadd/delete, a differential run against a real Debian
//! `prometheus-pushgateway`, restart persistence, TTL expiry, and `sextant push`.

mod common;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Is Python with `prometheus_client` available? Skips (or fails under
/// `SEXTANT_REQUIRE_PEERS=1`) like [`peer`].
fn python_client() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("SEXTANT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("python3 with prometheus_client is required (SEXTANT_REQUIRE_PEERS=1)");
        }
        eprintln!("SKIPPED: python3 with prometheus_client is not installed (pip install prometheus-client); this test did not run");
    }
    ok
}

fn python(script: &str) {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Instant query → [(metric labels JSON, value)].
fn query(c: &reqwest::blocking::Client, s: &Server, q: &str) -> Vec<(serde_json::Value, f64)> {
    let r: serde_json::Value = c
        .get(s.url("/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .expect("query")
        .json()
        .expect("query JSON");
    assert_eq!(r["status"], "success", "{q}: {r}");
    r["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|x| {
            let v = x["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN);
            (x["metric"].clone(), v)
        })
        .collect()
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn python_client_push_pushadd_delete() {
    if !python_client() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(&dir.path().join("sextant"), &[]);
    server.wait_ready(Duration::from_secs(60));
    let gw = format!("127.0.0.1:{}", server.port);
    let c = client();
    let t0 = now_s();

    python(&format!(
        r#"
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, push_to_gateway
r = CollectorRegistry()
Counter('batch_items', 'Items processed.', ['kind'], registry=r).labels('a').inc(42)
Gauge('batch_last_success_unixtime', 'Last success.', registry=r).set(1700000000)
h = Histogram('batch_duration_seconds', 'Duration.', buckets=[1, 10], registry=r)
h.observe(0.5); h.observe(5)
push_to_gateway('{gw}', job='pybatch', registry=r, grouping_key={{'instance': 'runner-1', 'path': '/var/tmp'}})
"#
    ));
    let items = query(&c, &server, "batch_items_total{job=\"pybatch\"}");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].1, 42.0);
    assert_eq!(items[0].0["instance"], "runner-1");
    assert_eq!(items[0].0["path"], "/var/tmp");
    assert_eq!(items[0].0["kind"], "a");
    let buckets = query(
        &c,
        &server,
        "batch_duration_seconds_bucket{job=\"pybatch\"}",
    );
    assert_eq!(buckets.len(), 3, "{buckets:?}");
    let pt = query(&c, &server, "push_time_seconds{job=\"pybatch\"}");
    assert_eq!(pt.len(), 1);
    assert!(
        pt[0].1 >= t0 - 1.0 && pt[0].1 <= now_s() + 1.0,
        "push_time_seconds {}",
        pt[0].1
    );
    let pf = query(&c, &server, "push_failure_time_seconds{job=\"pybatch\"}");
    assert_eq!(pf.len(), 1);
    assert_eq!(pf[0].1, 0.0);

    // pushadd (POST, gzip-compressed) replaces only the families it carries.
    python(&format!(
        r#"
from prometheus_client import CollectorRegistry, Counter, pushadd_to_gateway
r = CollectorRegistry()
Counter('batch_items', 'Items processed.', ['kind'], registry=r).labels('b').inc(7)
pushadd_to_gateway('{gw}', job='pybatch', registry=r, grouping_key={{'instance': 'runner-1', 'path': '/var/tmp'}}, compression='gzip')
"#
    ));
    let items = query(&c, &server, "batch_items_total{job=\"pybatch\"}");
    assert_eq!(items.len(), 1, "old kind=a series must be stale: {items:?}");
    assert_eq!(items[0].0["kind"], "b");
    assert_eq!(items[0].1, 7.0);
    let g = query(&c, &server, "batch_last_success_unixtime{job=\"pybatch\"}");
    assert_eq!(g.len(), 1, "gauge kept by pushadd");
    assert_eq!(g[0].1, 1_700_000_000.0);
    assert_eq!(
        query(
            &c,
            &server,
            "time() - push_time_seconds{job=\"pybatch\"} < 60"
        )
        .len(),
        1
    );

    // delete removes everything at once (staleness markers, not the 5-minute lookback).
    python(&format!(
        r#"
from prometheus_client import delete_from_gateway
delete_from_gateway('{gw}', job='pybatch', grouping_key={{'instance': 'runner-1', 'path': '/var/tmp'}})
"#
    ));
    for q in [
        "batch_items_total",
        "batch_last_success_unixtime",
        "batch_duration_seconds_bucket",
        "push_time_seconds{job=\"pybatch\"}",
        "push_failure_time_seconds{job=\"pybatch\"}",
    ] {
        assert!(
            query(&c, &server, q).is_empty(),
            "{q} still visible after delete"
        );
    }
    // The past is still there.
    let past = query(&c, &server, "max_over_time(batch_items_total[5m])");
    assert_eq!(past.len(), 2, "{past:?}");

    // The client's OpenMetrics output, pushed with its Content-Type (a Sextant extension).
    python(&format!(
        r#"
import urllib.request
from prometheus_client import CollectorRegistry, Counter, Info
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST, generate_latest
r = CollectorRegistry()
Counter('om_jobs', 'Jobs.', registry=r).inc(3)
Info('om_build', 'Build.', registry=r).info({{'version': '1.2'}})
req = urllib.request.Request('http://{gw}/metrics/job/pyom', data=generate_latest(r), method='PUT',
                             headers={{'Content-Type': CONTENT_TYPE_LATEST}})
assert urllib.request.urlopen(req).status == 200
"#
    ));
    let jobs = query(&c, &server, "om_jobs_total{job=\"pyom\"}");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].1, 3.0);
    let info = query(&c, &server, "om_build_info{job=\"pyom\"}");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].0["version"], "1.2");
    assert_eq!(query(&c, &server, "om_jobs_created{job=\"pyom\"}").len(), 1);
}

/// A parsed metric set: labels (empty values dropped) and value; for the two `push_*` gauges
/// only whether the time is set, as the clocks differ.
fn metric_set(text: &str, skip_own: bool) -> BTreeSet<(String, String)> {
    let parsed = sextant_ingest::text::parse_text(text, 0).expect("exposition parses");
    parsed
        .samples
        .iter()
        .filter(|(l, _)| {
            let n = l.metric_name().unwrap_or_default();
            !(skip_own
                && ["go_", "process_", "pushgateway_", "promhttp_"]
                    .iter()
                    .any(|p| n.starts_with(p)))
        })
        .map(|(l, s)| {
            let n = l.metric_name().unwrap_or_default();
            let v = if n == "push_time_seconds" || n == "push_failure_time_seconds" {
                if s.v == 0.0 { "zero" } else { "set" }.to_string()
            } else {
                format!("{:?}", s.v)
            };
            (l.to_string(), v)
        })
        .collect()
}

fn send(c: &reqwest::blocking::Client, method: &str, url: &str, body: &str) -> (u16, String) {
    send_raw(c, method, url, body.as_bytes(), TEXT_CT, None)
}

const TEXT_CT: &str = "text/plain; version=0.0.4";
const PROTO_CT: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

fn send_raw(
    c: &reqwest::blocking::Client,
    method: &str,
    url: &str,
    body: &[u8],
    content_type: &str,
    encoding: Option<&str>,
) -> (u16, String) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut r = c
        .request(m, url)
        .header("Content-Type", content_type)
        .body(body.to_vec());
    if let Some(e) = encoding {
        r = r.header("Content-Encoding", e);
    }
    let r = r.send().expect("request");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// Length-delimited `MetricFamily` messages, as Go's client library pushes them.
fn protobuf_body() -> Vec<u8> {
    use prost::Message;
    use sextant_ingest::client_model as pb;
    let fam = |name: &str, t: pb::MetricType, m: pb::Metric| pb::MetricFamily {
        name: Some(name.into()),
        help: Some(format!("{name} (protobuf).")),
        r#type: Some(t as i32),
        metric: vec![m],
        unit: None,
    };
    let fams = vec![
        fam(
            "proto_jobs_total",
            pb::MetricType::Counter,
            pb::Metric {
                label: vec![pb::LabelPair {
                    name: Some("result".into()),
                    value: Some("ok".into()),
                }],
                counter: Some(pb::Counter {
                    value: Some(3.0),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        fam(
            "proto_lat",
            pb::MetricType::Histogram,
            pb::Metric {
                histogram: Some(pb::Histogram {
                    sample_count: Some(4),
                    sample_sum: Some(2.5),
                    bucket: vec![
                        pb::Bucket {
                            cumulative_count: Some(1),
                            upper_bound: Some(0.25),
                            ..Default::default()
                        },
                        pb::Bucket {
                            cumulative_count: Some(3),
                            upper_bound: Some(2e6),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        fam(
            "proto_rpc",
            pb::MetricType::Summary,
            pb::Metric {
                summary: Some(pb::Summary {
                    sample_count: Some(10),
                    sample_sum: Some(1.5),
                    quantile: vec![pb::Quantile {
                        quantile: Some(0.99),
                        value: Some(0.3),
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        fam(
            "proto_gauge",
            pb::MetricType::Gauge,
            pb::Metric {
                gauge: Some(pb::Gauge { value: Some(-1.5) }),
                ..Default::default()
            },
        ),
    ];
    let mut out = Vec::new();
    for f in &fams {
        f.encode_length_delimited(&mut out).expect("encode");
    }
    out
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b).expect("gzip");
    gz.finish().expect("gzip")
}

#[test]
fn differential_against_pushgateway() {
    if !peer("prometheus-pushgateway") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(&dir.path().join("sextant"), &[]);
    let pg_port = free_port();
    let _pg = Peer(
        Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{pg_port}"))
            .arg(format!(
                "--persistence.file={}",
                dir.path().join("pushgateway.db").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pushgateway"),
    );
    server.wait_ready(Duration::from_secs(60));
    let c = client();
    let pg = format!("http://127.0.0.1:{pg_port}");
    wait_until("pushgateway ready", Duration::from_secs(60), || {
        c.get(format!("{pg}/-/ready"))
            .send()
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    });

    let full = "# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total{result=\"ok\"} 10\njobs_total{result=\"fail\"} 2\n\
# TYPE temp gauge\ntemp{room=\"a\"} 21.5\ntemp{room=\"b\"} -3e-07\n\
# HELP lat Latency.\n# TYPE lat histogram\nlat_bucket{le=\"0.5\"} 1\nlat_bucket{le=\"1\"} 3\nlat_bucket{le=\"+Inf\"} 4\nlat_sum 3.25\nlat_count 4\n\
# TYPE rpc summary\nrpc{quantile=\"0.5\"} 0.2\nrpc{quantile=\"0.99\"} 1.5\nrpc_sum 12\nrpc_count 40\n\
plain 1e+06\n";
    let b64 = sextant_ingest::push::path::encode_base64;
    let steps: Vec<(u16, &str, String, String)> = vec![
        (200, "PUT", "/metrics/job/batch".into(), full.into()),
        // POST replaces `temp` only (room b goes away), adds `extra`.
        (
            200,
            "POST",
            "/metrics/job/batch".into(),
            "# TYPE temp gauge\ntemp{room=\"a\"} 22\nextra 5\n".into(),
        ),
        // job/instance in the body are overwritten by the path (instance kept if not in path).
        (
            200,
            "PUT",
            "/metrics/job/batch/instance/x".into(),
            "body_labels{job=\"other\",instance=\"y\",k=\"v\"} 1\n".into(),
        ),
        (
            200,
            "PUT",
            "/metrics/job/other".into(),
            "body_labels{instance=\"y\"} 2\n".into(),
        ),
        // base64 job and values, an empty value, a percent-encoded value.
        (
            200,
            "PUT",
            format!(
                "/metrics/job@base64/{}/path@base64/{}/empty@base64/=/name/%CE%A0%CF%81%CE%BF",
                b64("a/b"),
                b64("/var/tmp")
            ),
            "b64_metric 3\n".into(),
        ),
        (
            200,
            "PUT",
            "/metrics/job/padded/v@base64/YQ==".into(),
            "padded 1\n".into(),
        ),
        // Go's base64 ignores unused low bits but not a dangling character.
        (
            200,
            "PUT",
            "/metrics/job/lenient/v@base64/YR".into(),
            "lenient 1\n".into(),
        ),
        (
            400,
            "PUT",
            "/metrics/job/dangling/v@base64/YQAAA".into(),
            "x 1\n".into(),
        ),
        // Type conflict with group job=batch: refused, failure time set.
        (
            400,
            "POST",
            "/metrics/job/conflict".into(),
            "# TYPE jobs_total gauge\njobs_total 1\n".into(),
        ),
        // Untyped vs counter is a conflict too; refused on an existing group.
        (
            400,
            "POST",
            "/metrics/job/other".into(),
            "jobs_total 1\n".into(),
        ),
        // Timestamps are refused.
        (
            400,
            "PUT",
            "/metrics/job/batch".into(),
            "jobs_total{result=\"ok\"} 11 1700000000000\n".into(),
        ),
        // The same series in two groups.
        (
            200,
            "PUT",
            "/metrics/job/dup".into(),
            "dupm{instance=\"x\"} 1\n".into(),
        ),
        (
            400,
            "PUT",
            "/metrics/job/dup/instance/x".into(),
            "dupm 2\n".into(),
        ),
        // Duplicate series within one push.
        (400, "PUT", "/metrics/job/dup2".into(), "d 1\nd 2\n".into()),
        // Reserved label name in the body.
        (
            400,
            "PUT",
            "/metrics/job/reserved".into(),
            "r{__x=\"1\"} 1\n".into(),
        ),
        // Malformed body, odd path, bad base64: 400 without touching anything.
        (
            400,
            "PUT",
            "/metrics/job/batch".into(),
            "jobs_total{ 1\n".into(),
        ),
        (400, "PUT", "/metrics/job/batch/odd".into(), "x 1\n".into()),
        (
            400,
            "PUT",
            "/metrics/job/batch/l@base64/%21%21".into(),
            "x 1\n".into(),
        ),
        (
            400,
            "PUT",
            "/metrics/job/batch/__l/v".into(),
            "x 1\n".into(),
        ),
        // Text-format strictness and incomplete histograms/summaries, each in its own group.
        (400, "PUT", "/metrics/job/strict1".into(), "# TYPE a1 counter\n# TYPE a1 counter\na1 1\n".into()),
        (400, "PUT", "/metrics/job/strict2".into(), "a2 1\n# TYPE a2 counter\n".into()),
        (400, "PUT", "/metrics/job/strict3".into(), "# HELP a3 x\n# HELP a3 y\na3 1\n".into()),
        (400, "PUT", "/metrics/job/strict4".into(), "# TYPE a4 info\na4 1\n".into()),
        (400, "PUT", "/metrics/job/strict5".into(), "a5{x=\"\\q\"} 1\n".into()),
        (400, "PUT", "/metrics/job/strict6".into(), "# HELP a6 bad \\q escape\na6 1\n".into()),
        (400, "PUT", "/metrics/job/strict7".into(), "a7 1\na7b 2".into()),
        (200, "PUT", "/metrics/job/strict8".into(), "a8{x=\"a\\nb\\\\c\\\"d\"} 1\n# HELP a8 multi\\nline \\\\ back\n".into()),
        (200, "PUT", "/metrics/job/incomplete1".into(), "# TYPE h1 histogram\nh1_bucket{le=\"1\",a=\"x\"} 1\nh1_count{a=\"x\"} 3.7\nh1 5\nh1_bucket{a=\"y\"} 2\n".into()),
        (200, "PUT", "/metrics/job/incomplete2".into(), "# TYPE s1 summary\ns1{quantile=\"0.5\"} 0.25\ns1 9\ns1_sum{b=\"1\"} 4\n".into()),
        (200, "PUT", "/metrics/job/incomplete3".into(), "# TYPE h2 histogram\nh2_bucket{le=\"0.10\"} 1\nh2_bucket{le=\"+Inf\"} 2\nh2_sum 0.3\n".into()),
        // Pushed push_time_seconds is overridden by the gateway's own.
        (
            200,
            "POST",
            "/metrics/job/other".into(),
            "push_time_seconds 5\n".into(),
        ),
        // An empty POST only bumps the push time; an empty PUT empties the group.
        (200, "POST", "/metrics/job/batch".into(), "".into()),
        (
            200,
            "PUT",
            "/metrics/job/padded/v@base64/YQ".into(),
            "".into(),
        ),
        // DELETE, also of a group that does not exist.
        (
            202,
            "DELETE",
            "/metrics/job/batch/instance/x".into(),
            "".into(),
        ),
        (202, "DELETE", "/metrics/job/nonexistent".into(), "".into()),
        (
            200,
            "PUT",
            "/metrics/job/batch/instance/x".into(),
            "back 1\n".into(),
        ),
    ];
    // Text bodies, then a protobuf body, a protobuf body with a timestamp, and gzip'd text.
    let mut ts_proto = protobuf_body();
    {
        use prost::Message;
        let mut mf =
            sextant_ingest::client_model::MetricFamily::decode_length_delimited(&mut &ts_proto[..])
                .expect("decode");
        mf.metric[0].timestamp_ms = Some(1_700_000_000_000);
        ts_proto.clear();
        mf.encode_length_delimited(&mut ts_proto).expect("encode");
    }
    type Step<'a> = (u16, &'a str, String, Vec<u8>, &'a str, Option<&'a str>);
    let mut all: Vec<Step> = steps
        .iter()
        .map(|(code, m, p, b)| (*code, *m, p.clone(), b.clone().into_bytes(), TEXT_CT, None))
        .collect();
    all.push((
        200,
        "PUT",
        "/metrics/job/proto/instance/p1".into(),
        protobuf_body(),
        PROTO_CT,
        None,
    ));
    all.push((
        400,
        "PUT",
        "/metrics/job/proto/instance/p2".into(),
        ts_proto,
        PROTO_CT,
        None,
    ));
    all.push((
        200,
        "POST",
        "/metrics/job/proto/instance/p1".into(),
        gzip(b"# TYPE proto_gauge gauge\nproto_gauge 7\n"),
        TEXT_CT,
        Some("gzip"),
    ));
    for (i, (code, method, path, body, ct, enc)) in all.iter().enumerate() {
        let (ps, pmsg) = send_raw(&c, method, &format!("{pg}{path}"), body, ct, *enc);
        let (ss, smsg) = send_raw(&c, method, &server.url(path), body, ct, *enc);
        assert_eq!(
            ps, *code,
            "step {i}: the pushgateway itself answered {ps} ({pmsg:?})"
        );
        assert_eq!(
            ps, ss,
            "step {i} {method} {path}: pushgateway answered {ps} ({pmsg:?}), sextant {ss} ({smsg:?})"
        );
        if ss == 400 {
            assert!(!smsg.trim().is_empty(), "step {i}: 400 without a message");
        }
        let s_text = c
            .get(server.url("/api/v1/push/metrics"))
            .send()
            .expect("sextant push metrics")
            .text()
            .expect("sextant text");
        let got = metric_set(&s_text, false);
        // The Pushgateway applies a DELETE asynchronously (it answers 202 first), so poll it
        // until it has caught up; a real difference still fails after the deadline.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pg_text = c
                .get(format!("{pg}/metrics"))
                .send()
                .expect("pg metrics")
                .text()
                .expect("pg text");
            let want = metric_set(&pg_text, true);
            if got == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "step {i} {method} {path}: metric sets differ\nonly in sextant: {:?}\nonly in pushgateway: {:?}",
                got.difference(&want).collect::<Vec<_>>(),
                want.difference(&got).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let last = metric_set(
        &c.get(server.url("/api/v1/push/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        false,
    );
    for want in [
        "back{instance=\"x\", job=\"batch\"}",
        "jobs_total{job=\"batch\", result=\"ok\"}",
        "lat_bucket{job=\"batch\", le=\"+Inf\"}",
        "b64_metric{job=\"a/b\", name=\"Προ\", path=\"/var/tmp\"}",
        "push_failure_time_seconds{job=\"conflict\"}",
        "proto_lat_bucket{instance=\"p1\", job=\"proto\", le=\"2e+06\"}",
        "proto_gauge{instance=\"p1\", job=\"proto\"}",
    ] {
        assert!(
            last.iter().any(|(l, _)| l == want),
            "{want} missing from {last:?}"
        );
    }
    // The JSON API shows the same groups, families, types, help and values (times aside).
    let groups = |url: String| -> Vec<String> {
        let v: serde_json::Value = c.get(url).send().expect("api").json().expect("json");
        assert_eq!(v["status"], "success");
        let mut out: Vec<String> = v["data"]
            .as_array()
            .expect("data array")
            .iter()
            .map(|g| {
                let mut g = g.clone();
                if let Some(obj) = g.as_object_mut() {
                    for (name, fam) in obj.iter_mut() {
                        if let Some(f) = fam.as_object_mut() {
                            f.remove("time_stamp");
                            // Known difference: for a protobuf histogram without an explicit
                            // +Inf bucket the Pushgateway's JSON lists no +Inf bucket, Sextant
                            // lists the one it derives from the count (both expose it in the
                            // text format). Compare the finite buckets.
                            for m in f
                                .get_mut("metrics")
                                .and_then(|m| m.as_array_mut())
                                .into_iter()
                                .flatten()
                            {
                                if let Some(b) =
                                    m.get_mut("buckets").and_then(|b| b.as_object_mut())
                                {
                                    b.remove("+Inf");
                                }
                            }
                            if name.starts_with("push_") {
                                for m in f["metrics"].as_array_mut().into_iter().flatten() {
                                    let zero = m["value"] == "0";
                                    m["value"] = if zero { "zero" } else { "set" }.into();
                                }
                            }
                        }
                    }
                }
                g.to_string()
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(
        groups(server.url("/api/v1/metrics")),
        groups(format!("{pg}/api/v1/metrics"))
    );
}

#[test]
fn groups_survive_restart_and_expire_after_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("sextant");
    let c = client();
    let mut server = Server::start(&data, &["--push-interval", "1s"]);
    server.wait_ready(Duration::from_secs(60));
    let (s, m) = send(
        &c,
        "PUT",
        &server.url("/metrics/job/persist/run/1"),
        "# TYPE kept counter\nkept 5\n",
    );
    assert_eq!((s, m.as_str()), (200, ""));
    let (s, _) = send(
        &c,
        "PUT",
        &server.url("/metrics/job/ttl1?ttl=2s"),
        "short 1\n",
    );
    assert_eq!(s, 200);
    let (s, m) = send(
        &c,
        "PUT",
        &server.url("/metrics/job/badttl?ttl=soon"),
        "x 1\n",
    );
    assert_eq!(s, 400);
    assert!(m.contains("invalid ttl \"soon\""), "{m}");
    let before = c
        .get(server.url("/api/v1/push/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        before.contains("kept{job=\"persist\",run=\"1\"} 5"),
        "{before}"
    );
    // A clean shutdown saves the groups.
    assert_eq!(server.terminate().code(), Some(0));

    let mut server = Server::start(&data, &["--push-interval", "1s"]);
    server.wait_ready(Duration::from_secs(60));
    // An acknowledged PUT, POST or DELETE is durable when the answer arrives: kill -9 right
    // after the last one loses none of them.
    let (s, _) = send(&c, "PUT", &server.url("/metrics/job/crashy"), "c 1\n");
    assert_eq!(s, 200);
    let (s, _) = send(&c, "POST", &server.url("/metrics/job/crashy"), "d 2\n");
    assert_eq!(s, 200);
    let (s, _) = send(&c, "PUT", &server.url("/metrics/job/gone"), "g 1\n");
    assert_eq!(s, 200);
    let (s, _) = send(&c, "DELETE", &server.url("/metrics/job/gone"), "");
    assert_eq!(s, 202);
    server.kill9();

    let mut server = Server::start(&data, &["--push-interval", "1s"]);
    server.wait_ready(Duration::from_secs(60));
    let after = c
        .get(server.url("/api/v1/push/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        after.contains("kept{job=\"persist\",run=\"1\"} 5"),
        "restored: {after}"
    );
    assert!(after.contains("c{job=\"crashy\"} 1"), "restored: {after}");
    assert!(after.contains("d{job=\"crashy\"} 2"), "restored: {after}");
    assert!(!after.contains("gone"), "deleted group restored: {after}");
    let json: serde_json::Value = c
        .get(server.url("/api/v1/metrics"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let jobs: BTreeSet<String> = json["data"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["labels"]["job"].as_str().map(str::to_string))
        .collect();
    assert!(
        jobs.contains("crashy") && jobs.contains("persist"),
        "{json}"
    );
    assert!(!jobs.contains("gone"), "{json}");
    assert_eq!(
        query(&c, &server, "c{job=\"crashy\"}").first().map(|v| v.1),
        Some(1.0)
    );
    assert_eq!(
        query(&c, &server, "d{job=\"crashy\"}").first().map(|v| v.1),
        Some(2.0)
    );
    assert!(
        query(&c, &server, "g").is_empty(),
        "deleted group's series must be stale"
    );
    assert_eq!(
        metric_set(&before, false)
            .iter()
            .filter(|(l, _)| l.contains("persist"))
            .count(),
        metric_set(&after, false)
            .iter()
            .filter(|(l, _)| l.contains("persist"))
            .count()
    );
    // Re-appended at the push interval after the restart.
    wait_until("re-appended samples", Duration::from_secs(30), || {
        query(&c, &server, "count_over_time(kept{job=\"persist\"}[5m])")
            .first()
            .is_some_and(|(_, n)| *n >= 4.0)
    });

    // TTL via the header; the group expires with staleness markers and is counted.
    let r = c
        .put(server.url("/metrics/job/ttl2/x/y"))
        .header("X-Sextant-TTL", "2s")
        .body("short 2\n")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    wait_until("TTL expiry", Duration::from_secs(30), || {
        !c.get(server.url("/api/v1/push/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap()
            .contains("ttl")
    });
    assert!(
        query(&c, &server, "short").is_empty(),
        "expired series must be stale"
    );
    // It was stored while it lived (range functions skip the staleness marker).
    let stored = query(&c, &server, "max_over_time(short{job=\"ttl2\"}[5m])");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].1, 2.0);
    assert!(query(&c, &server, "push_time_seconds{job=~\"ttl.*\"}").is_empty());
    let own = c
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        own.contains("sextant_push_group_expired_total{job=\"ttl2\"} 1"),
        "{own}"
    );
    // ttl1 (2s, pushed before the restart) is gone too (checked above); whether it expired
    // before the shutdown or at the first check after the restart depends on timing, so its
    // counter (kept in memory per process) is not asserted.
    assert!(own.contains("sextant_push_groups 2\n"), "{own}");
}

#[test]
fn sextant_push_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(&dir.path().join("sextant"), &[]);
    server.wait_ready(Duration::from_secs(60));
    let c = client();
    let url = server.url("");
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .arg("push")
            .args(args)
            .args(["--server", &url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sextant push");
        let mut input = child.stdin.take().expect("stdin");
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        child.wait_with_output().expect("sextant push output")
    };
    let out = run(
        &[
            "--job",
            "cli",
            "--label",
            "path=/var/tmp",
            "--label",
            "run=7",
            "--ttl",
            "1h",
        ],
        "# TYPE steps_total counter\nsteps_total 3\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = query(&c, &server, "steps_total");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0["path"], "/var/tmp");
    assert_eq!(got[0].0["run"], "7");
    assert_eq!(got[0].0["job"], "cli");
    let api: serde_json::Value = c
        .get(server.url("/api/v1/metrics"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(api["data"][0]["labels"]["path"], "/var/tmp");

    // POST adds a family; the server's refusal is shown and the exit code is non-zero.
    let out = run(
        &[
            "--job",
            "cli",
            "--label",
            "path=/var/tmp",
            "--label",
            "run=7",
            "--method",
            "post",
        ],
        "other 1\n",
    );
    assert!(out.status.success());
    assert_eq!(query(&c, &server, "steps_total").len(), 1);
    let out = run(
        &[
            "--job",
            "cli",
            "--label",
            "path=/var/tmp",
            "--label",
            "run=7",
        ],
        "steps_total 4 1700000000000\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("400") && err.contains("pushed metrics must not have timestamps"),
        "{err}"
    );

    let out = run(
        &[
            "--job",
            "cli",
            "--label",
            "path=/var/tmp",
            "--label",
            "run=7",
            "--method",
            "delete",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(query(&c, &server, "steps_total").is_empty());
    assert!(query(&c, &server, "other").is_empty());
}
