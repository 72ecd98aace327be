//! InfluxDB line protocol end to end: `curl` posts lines to a running `sextant serve` on both
//! `/write` and `/api/v2/write`, and `/api/v1/export` must show the series and values the
//! lines mean. A second test posts the same lines to a real VictoriaMetrics and checks that both
//! map them to identical series (names, labels, values, timestamps).

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Posts `body` with curl; returns (HTTP status, response body).
fn curl_post(url: &str, body: &str, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"])
        .args(extra)
        .args(["--data-binary", body, url])
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (resp, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), resp.to_string())
}

/// Export as a map from the rendered label set to its samples.
fn export_map(base: &str, selector: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
    export(&client(), base, selector)
        .into_iter()
        .map(|(m, s)| {
            let labels: BTreeMap<String, String> = m
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            (format!("{labels:?}"), s)
        })
        .collect()
}

fn key(pairs: &[(&str, &str)]) -> String {
    let m: BTreeMap<String, String> = pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    format!("{m:?}")
}

#[test]
fn curl_writes_land_as_prometheus_series() {
    if !peer("curl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(&dir.path().join("data"), &[]);
    server.wait_ready(Duration::from_secs(60));
    let now_s = sextant_model::time::now_ms() / 1000;

    // v1: seconds precision, db label, escaping, every field type.
    let body = format!(
        "cpu,host=web\\ 1,region=eu\\,west usage_user=12.5,usage_idle=80i,online=true,note=\"busy, \\\"very\\\"\" {now_s}\n\
         # a comment\n\
         disk,path=/var,db=own used=42u,free=-1.5e3 {now_s}\n"
    );
    let (code, resp) = curl_post(&server.url("/write?db=telegraf&precision=s"), &body, &[]);
    assert_eq!(code, 204, "{resp}");

    // v2: nanosecond default.
    let ns = format!("{now_s}000000000");
    let (code, resp) = curl_post(
        &server.url("/api/v2/write?org=o&bucket=b"),
        &format!("mem,host=web\\ 1 used_percent=33.3 {ns}"),
        &["-H", "Content-Type: text/plain; charset=utf-8"],
    );
    assert_eq!(code, 204, "{resp}");

    let t = now_s * 1000;
    let got = export_map(&server.url(""), r#"{__name__=~"cpu_.*|disk_.*|mem_.*"}"#);
    let host = ("host", "web 1");
    let region = ("region", "eu,west");
    let want: BTreeMap<String, Vec<(i64, f64)>> = [
        (
            key(&[
                ("__name__", "cpu_usage_user"),
                ("db", "telegraf"),
                host,
                region,
            ]),
            12.5,
        ),
        (
            key(&[
                ("__name__", "cpu_usage_idle"),
                ("db", "telegraf"),
                host,
                region,
            ]),
            80.0,
        ),
        (
            key(&[("__name__", "cpu_online"), ("db", "telegraf"), host, region]),
            1.0,
        ),
        (
            key(&[("__name__", "disk_used"), ("db", "own"), ("path", "/var")]),
            42.0,
        ),
        (
            key(&[("__name__", "disk_free"), ("db", "own"), ("path", "/var")]),
            -1500.0,
        ),
        (key(&[("__name__", "mem_used_percent"), host]), 33.3),
    ]
    .into_iter()
    .map(|(k, v)| (k, vec![(t, v)]))
    .collect();
    assert_eq!(got, want);

    // A bad line: 400 naming line and field, the good lines around it are stored.
    let (code, resp) = curl_post(
        &server.url("/write?precision=ms"),
        &format!("ok_a v=1 {t}\nbroken v=notanumber {t}\nok_b v=2 {t}\n"),
        &[],
    );
    assert_eq!(code, 400, "{resp}");
    let j: serde_json::Value = serde_json::from_str(&resp).expect("JSON error body");
    let msg = j["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("line 2") && msg.contains("field \"v\"") && msg.contains("stored"),
        "{msg}"
    );
    let got = export_map(&server.url(""), r#"{__name__=~"ok_.*"}"#);
    assert_eq!(got.len(), 2, "{got:?}");

    // The query API sees the data too.
    let r: serde_json::Value = client()
        .get(server.url("/api/v1/query"))
        .query(&[
            ("query", "sum(cpu_usage_user)"),
            ("time", &now_s.to_string()),
        ])
        .send()
        .expect("query")
        .json()
        .expect("query JSON");
    assert_eq!(r["data"]["result"][0]["value"][1], "12.5", "{r}");

    // Ping.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(server.url("/ping"))
        .output()
        .expect("curl ping");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "204");
}

#[test]
fn victoriametrics_maps_lines_to_the_same_series() {
    if !peer("victoria-metrics") || !peer("curl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(&dir.path().join("sextant"), &[]);
    let vport = free_port();
    let _vm = Peer(
        Command::new("victoria-metrics")
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("vm").display()
            ))
            .arg(format!("-httpListenAddr=127.0.0.1:{vport}"))
            .arg("-search.latencyOffset=0s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start victoria-metrics"),
    );
    server.wait_ready(Duration::from_secs(60));
    let vm = format!("http://127.0.0.1:{vport}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while client()
        .get(format!("{vm}/health"))
        .send()
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "victoria-metrics did not start");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Numeric fields and Prometheus-compatible names: where the two are meant to agree (VM
    // stores string fields as 0 and keeps odd names as they are; Sextant skips the former and
    // sanitises the latter, see the unit tests).
    let t = sextant_model::time::now_ms() - 60_000;
    let lines = format!(
        "cpu,host=a,cpu=cpu0 usage_user=1.5,usage_system=2i,value=7 {t}\n\
         cpu,host=b,cpu=cpu0 usage_user=0.25 {t}\n\
         net,iface=eth\\ 0,dir=in\\,x bytes=123456789u,up=true,down=F {t}\n\
         mem value=3 {t}\n\
         disk,db=own,path=/ used=-1e3 {t}\n"
    );
    for base in [server.url(""), vm.clone()] {
        let (code, resp) = curl_post(&format!("{base}/write?db=diff&precision=ms"), &lines, &[]);
        assert_eq!(code, 204, "{base}: {resp}");
    }
    let selector = r#"{__name__=~"cpu_.*|net_.*|mem_.*|disk_.*"}"#;
    let ours = export_map(&server.url(""), selector);
    let deadline = Instant::now() + Duration::from_secs(60);
    let theirs = loop {
        let m = export_map(&vm, selector);
        if m.len() >= ours.len() {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "victoria-metrics shows {} series, we {}",
            m.len(),
            ours.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(ours.len(), 9, "{ours:#?}");
    assert_eq!(ours, theirs);
}
