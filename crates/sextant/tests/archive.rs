//! End-to-end tests of the archive against a real S3-compatible server: moto (PyPI
//! `moto[server]`) with IAM authentication on, so every request's SigV4 signature is checked.
//! Blocks are written beforehand with the TSDB library, then the real binary uploads them,
//! drops them by retention and must answer the same queries from the bucket.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{client, free_port, have, remote_write_v1, Peer, Server};
use sextant_model::{Labels, Sample};
use sextant_objstore::{Client, Credentials, S3Config};
use sextant_tsdb::db::{Db, DbOptions};

const SETUP: &str = r#"
import sys, json, boto3
url, bucket = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="sextant")
iam.put_user_policy(UserName="sextant", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="sextant")["AccessKey"]
boto3.client("s3", **kw).create_bucket(Bucket=bucket)
print(k["AccessKeyId"], k["SecretAccessKey"])
"#;

struct Moto {
    _peer: Peer,
    url: String,
    key: String,
    secret: String,
}

/// Starts moto and returns an IAM user's keys. With `auth`, authentication (SigV4 signature
/// checks) is enforced after the 4 set-up calls (user, policy, key, bucket). moto's own
/// signature check mis-handles `/` in query values and spaces or `+` in keys (boto3's requests
/// fail the same way), so tests that list by `dir/` prefixes run with `auth` off.
fn moto(bucket: &str, auth: bool) -> Option<Moto> {
    if !have(
        "moto[server] and boto3 (pip install 'moto[server]')",
        Command::new("python3").args(["-c", "import moto.server, boto3"]),
    ) {
        return None;
    }
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "moto.server", "-p", &port.to_string()]);
    if auth {
        cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "4");
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto");
    let peer = Peer(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = Command::new("python3")
        .args(["-c", SETUP, &url, bucket])
        .output()
        .expect("run moto set-up");
    assert!(
        out.status.success(),
        "moto set-up failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut it = text.split_whitespace();
    let key = it.next().expect("access key").to_string();
    let secret = it.next().expect("secret").to_string();
    Some(Moto {
        _peer: peer,
        url,
        key,
        secret,
    })
}

fn s3(m: &Moto, bucket: &str, secret: &str) -> Client {
    Client::new(S3Config {
        bucket: bucket.into(),
        endpoint: Some(m.url.clone()),
        region: "us-east-1".into(),
        credentials: Credentials {
            access_key_id: m.key.clone(),
            secret_access_key: secret.into(),
            session_token: None,
        },
        force_path_style: true,
    })
    .expect("client")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn s3_client_against_moto() {
    let Some(m) = moto("objs", true) else { return };
    let c = s3(&m, "objs", &m.secret).with_part_size(5 << 20);
    rt().block_on(async {
        c.put("a/small.txt", b"hello world").await.expect("put");
        assert_eq!(c.get("a/small.txt", None).await.unwrap(), b"hello world");
        assert_eq!(c.get("a/small.txt", Some((6, 11))).await.unwrap(), b"world");
        // 11 MiB: three parts of a multipart upload. (Keys with spaces or `+` are not used
        // here: moto's signature check mis-encodes them, for boto3 too.)
        let big: Vec<u8> = (0..11u32 << 20).map(|i| (i % 251) as u8).collect();
        c.put("a/big.bin", &big).await.expect("multipart put");
        let info = c.head("a/big.bin").await.unwrap().expect("exists");
        assert_eq!(info.size, big.len() as u64);
        assert_eq!(
            c.get("a/big.bin", Some((6 << 20, (6 << 20) + 100)))
                .await
                .unwrap(),
            &big[6 << 20..(6 << 20) + 100]
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big");
        std::fs::write(&f, &big).unwrap();
        assert_eq!(c.put_file("b/file", &f).await.unwrap(), big.len() as u64);
        let back = dir.path().join("back");
        c.get_to_file("b/file", &back).await.unwrap();
        assert!(std::fs::read(&back).unwrap() == big);
        for i in 0..7 {
            c.put(&format!("p-{i}"), b"x").await.unwrap();
        }
        let paged = s3(&m, "objs", &m.secret).with_list_page_size(2);
        let keys: Vec<String> = paged
            .list("p-")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, (0..7).map(|i| format!("p-{i}")).collect::<Vec<_>>());
        c.delete("p-3").await.unwrap();
        c.delete("p-3")
            .await
            .expect("deleting a missing key is fine");
        assert!(c.head("p-3").await.unwrap().is_none());
        assert_eq!(c.list("p-").await.unwrap().len(), 6);
        let err = c.get("nope", None).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");

        let bad = s3(&m, "objs", "wrong-secret");
        let e = bad.put("x", b"y").await.unwrap_err().to_string();
        assert!(
            e.contains("403") && e.contains("SignatureDoesNotMatch"),
            "{e}"
        );
    });
}

const H: i64 = 3_600_000;

/// Writes 14 hours of two counters (one with a reset) and two gauges, 30 s apart, ending 6 h
/// ago, and cuts them into blocks. Returns the data's time range.
fn write_blocks(dir: &Path) -> (i64, i64) {
    write_blocks_ago(dir, 20)
}

/// [`write_blocks`] with the data starting about `hours` hours ago.
fn write_blocks_ago(dir: &Path, hours: i64) -> (i64, i64) {
    let now = sextant_model::time::now_ms();
    let start = (now - hours * H) / (2 * H) * (2 * H);
    let end = start + 14 * H;
    let db = Db::open(dir, DbOptions::default()).expect("open db");
    let mut t = start;
    let mut n = 0u64;
    while t < end {
        let mut app = db.appender();
        for inst in ["a", "b"] {
            let c = Labels::from_pairs([("__name__", "arch_requests_total"), ("inst", inst)]);
            let g = Labels::from_pairs([("__name__", "arch_temp"), ("inst", inst)]);
            let k = if inst == "a" { 3 } else { 5 };
            // Counter "a" resets half way.
            let v = if inst == "a" && n >= 840 { n - 840 } else { n } * k;
            app.append(&c, t, v as f64).unwrap();
            app.append(&g, t, ((n % 97) as f64) * 0.5 - 10.0 + k as f64)
                .unwrap();
        }
        app.commit().unwrap();
        t += 30_000;
        n += 1;
    }
    db.maintain();
    db.close().unwrap();
    (start, end)
}

fn block_dirs(data: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(data.join("blocks"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("meta.json").exists())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn metric(s: &Server, name: &str) -> f64 {
    let body = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    metric_in(&body, name)
}

fn metric_in(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("{name} not on /metrics"))
}

fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn query_range(s: &Server, q: &str, start: i64, end: i64) -> serde_json::Value {
    let r: serde_json::Value = client()
        .get(s.url("/api/v1/query_range"))
        .query(&[
            ("query", q.to_string()),
            ("start", (start / 1000).to_string()),
            ("end", (end / 1000).to_string()),
            ("step", "60".to_string()),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["status"], "success", "{q}: {r}");
    r["data"].clone()
}

fn config(dir: &Path, m: &Moto, secret: &str, cache: u64) -> std::path::PathBuf {
    let p = dir.join("sextant.yml");
    std::fs::write(
        &p,
        format!(
            "archive:\n  bucket: arch\n  prefix: node-1\n  endpoint: {}\n  region: us-east-1\n  access_key_id: {}\n  secret_access_key_file: secret.txt\n  force_path_style: true\n  upload_interval: 1s\n  cache_max_bytes: {}\n",
            m.url, m.key, cache
        ),
    )
    .unwrap();
    std::fs::write(dir.join("secret.txt"), format!("{secret}\n")).unwrap();
    p
}

const QUERIES: [&str; 4] = [
    "arch_temp",
    "rate(arch_requests_total[5m])",
    "increase(arch_requests_total[1h])",
    "max_over_time(arch_temp[30m]) - min_over_time(arch_temp[30m])",
];

#[test]
fn blocks_are_archived_and_queryable_after_retention() {
    let Some(m) = moto("arch", false) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (start, end) = write_blocks(&data);
    let local = block_dirs(&data);
    assert!(local.len() >= 3, "expected several blocks, got {local:?}");
    // A one-byte cache: every downloaded block evicts the others, so eviction is exercised.
    let cfg = config(tmp.path(), &m, &m.secret, 1);
    let cfg_arg = cfg.to_str().unwrap();
    let base = ["--config", cfg_arg, "--no-default-rules"];

    // Run 1: everything local; the blocks get uploaded.
    let mut s = Server::start(&data, &base);
    s.wait_ready(Duration::from_secs(60));
    wait("all blocks uploaded", 120, || {
        metric(&s, "sextant_archive_uploaded_blocks_total") >= local.len() as f64
    });
    assert!(metric(&s, "sextant_archive_uploaded_bytes_total") > 0.0);
    assert!(metric(&s, "sextant_archive_last_upload_success_timestamp_seconds") > 0.0);
    assert_eq!(metric(&s, "sextant_archive_upload_failures_total"), 0.0);
    let before: Vec<serde_json::Value> = QUERIES
        .iter()
        .map(|q| query_range(&s, q, start, end))
        .collect();
    for (q, r) in QUERIES.iter().zip(&before) {
        assert_eq!(r["result"].as_array().unwrap().len(), 2, "{q}: {r}");
    }
    s.terminate();

    // The bucket holds each block whole, under the prefix.
    let c = s3(&m, "arch", &m.secret);
    let listed = rt().block_on(c.list("node-1/")).unwrap();
    for u in &local {
        for f in ["meta.json", "index", "chunks/000001"] {
            let k = format!("node-1/{u}/{f}");
            assert!(listed.iter().any(|o| o.key == k), "{k} not in the bucket");
        }
    }

    // A block whose upload stopped before its meta.json must never be read.
    rt().block_on(c.put("node-1/01HALFUPLOADED0000000000000/index", b"garbage"))
        .unwrap();

    // Run 2: retention drops every local block; the same queries are answered from the bucket,
    // and nothing already archived is uploaded again.
    let mut s = Server::start(
        &data,
        &[
            &base[..],
            &["--retention", "1h", "--maintenance-interval", "1s"],
        ]
        .concat(),
    );
    s.wait_ready(Duration::from_secs(60));
    wait("retention to delete the blocks", 120, || {
        let now = block_dirs(&data);
        local.iter().all(|u| !now.contains(u))
    });
    assert!(metric(&s, "sextant_tsdb_retention_blocks_deleted_total") >= 1.0);
    let after: Vec<serde_json::Value> = QUERIES
        .iter()
        .map(|q| query_range(&s, q, start, end))
        .collect();
    for ((q, b), a) in QUERIES.iter().zip(&before).zip(&after) {
        assert_eq!(b, a, "{q} differs after the blocks moved to the archive");
    }
    let body = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    // Queries re-downloaded blocks the tiny cache had evicted.
    assert!(
        metric_in(&body, "sextant_archive_downloads_total") > local.len() as f64,
        "{body}"
    );
    assert!(
        metric_in(&body, "sextant_archive_cache_bytes")
            < metric_in(&body, "sextant_archive_download_bytes_total")
    );
    // The archive holds the run-1 blocks plus whatever run 2 cut and uploaded, and not the
    // half-uploaded one.
    assert_eq!(
        metric_in(&body, "sextant_archive_blocks"),
        local.len() as f64 + metric_in(&body, "sextant_archive_uploaded_blocks_total"),
        "{body}"
    );
    let relisted = rt().block_on(c.list("node-1/")).unwrap();
    for o in &listed {
        let again = relisted
            .iter()
            .find(|r| r.key == o.key)
            .expect("still there");
        assert_eq!(
            (&again.etag, &again.last_modified),
            (&o.etag, &o.last_modified),
            "{} was uploaded again after the restart",
            o.key
        );
    }
}

#[test]
fn bad_credentials_are_reported() {
    let Some(mut m) = moto("arch", true) else {
        return;
    };
    // An access key the server does not know (checked before the signature).
    m.key = "AKIAUNKNOWNKEY000000".into();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_blocks(&data);
    let cfg = config(tmp.path(), &m, &m.secret.clone(), 1 << 30);
    let log = tmp.path().join("stderr.log");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .args([
            "--self-monitor-interval",
            "0",
            "--no-host-metrics",
            "--no-default-rules",
        ])
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut s = Server { child, port };
    s.wait_ready(Duration::from_secs(60));
    wait("an upload failure", 60, || {
        metric(&s, "sextant_archive_upload_failures_total") >= 1.0
    });
    assert_eq!(metric(&s, "sextant_archive_uploaded_blocks_total"), 0.0);
    assert_eq!(
        metric(&s, "sextant_archive_last_upload_success_timestamp_seconds"),
        0.0
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("archive") && text.contains("HTTP 403: InvalidAccessKeyId"),
        "no clear error in the log:\n{text}"
    );
    // The server keeps serving local data.
    let r: serde_json::Value = client()
        .get(s.url("/api/v1/query"))
        .query(&[("query", "count(arch_temp)")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["status"], "success");
}

/// `sextant export --destination s3://…` streams the export into the bucket as a multipart
/// upload (two 5 MiB parts and a rest here), and the object equals the same export to a file.
#[test]
fn export_streams_to_s3_in_parts() {
    let Some(m) = moto("exports", true) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Server::start(dir.path(), &["--no-default-rules"]);
    s.wait_ready(Duration::from_secs(60));
    let c = client();
    let t0 = (sextant_model::time::now_ms() / 1000 - 3000) * 1000;
    let pad = "p".repeat(150);
    for batch in 0..4 {
        let series: Vec<(Labels, Vec<Sample>)> = (0..100)
            .map(|i| {
                let id = (batch * 100 + i).to_string();
                (
                    Labels::from_pairs([
                        ("__name__", "s3_export_total"),
                        ("id", id.as_str()),
                        ("pad", pad.as_str()),
                    ]),
                    (0..150)
                        .map(|k| Sample {
                            t: t0 + k * 15_000,
                            v: (k * 3 + i) as f64,
                        })
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            remote_write_v1(&c, &s.url("/api/v1/write"), &series).expect("write"),
            204
        );
    }
    let file = dir.path().join("export.om");
    let base = |cmd: &mut Command| {
        cmd.args([
            "export",
            "--server",
            &s.url(""),
            "--match",
            "s3_export_total",
            "--format",
            "openmetrics",
        ]);
    };
    let mut to_file = Command::new(env!("CARGO_BIN_EXE_sextant"));
    base(&mut to_file);
    let st = to_file
        .args(["--output", file.to_str().expect("path")])
        .status()
        .expect("export to file");
    assert!(st.success());
    let expected = std::fs::read(&file).expect("read export");
    assert!(
        expected.len() > 10 << 20,
        "the export must need more than two parts: {} bytes",
        expected.len()
    );
    let mut to_s3 = Command::new(env!("CARGO_BIN_EXE_sextant"));
    base(&mut to_s3);
    let out = to_s3
        .args([
            "--destination",
            "s3://exports/daily/fleet.om",
            "--s3-part-size",
            &(5u64 << 20).to_string(),
        ])
        .env("AWS_ACCESS_KEY_ID", &m.key)
        .env("AWS_SECRET_ACCESS_KEY", &m.secret)
        .env("AWS_ENDPOINT_URL", &m.url)
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("export to s3");
    assert!(
        out.status.success(),
        "export to s3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = rt()
        .block_on(s3(&m, "exports", &m.secret).get("daily/fleet.om", None))
        .expect("get the exported object");
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the object differs from the file export");

    // A wrong secret is refused with S3's own error, and the command fails.
    let mut bad = Command::new(env!("CARGO_BIN_EXE_sextant"));
    base(&mut bad);
    let out = bad
        .args(["--destination", "s3://exports/bad/"])
        .env("AWS_ACCESS_KEY_ID", &m.key)
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .env("AWS_ENDPOINT_URL", &m.url)
        .output()
        .expect("export with a bad secret");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SignatureDoesNotMatch"), "stderr: {err}");
}

fn dirs_in(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("meta.json").exists())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn query_step(s: &Server, q: &str, start: i64, end: i64, step: i64) -> serde_json::Value {
    let r: serde_json::Value = client()
        .get(s.url("/api/v1/query_range"))
        .query(&[
            ("query", q.to_string()),
            ("start", (start / 1000).to_string()),
            ("end", (end / 1000).to_string()),
            ("step", (step / 1000).to_string()),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["status"], "success", "{q}: {r}");
    r["data"].clone()
}

/// Downsampled 5m/1h blocks are uploaded too (under `<prefix>downsampled/<res>/`), and once
/// local retention deleted them, long-range queries with large steps read them from the bucket
/// — giving the same answers as the local aggregates did — without downloading raw blocks.
#[test]
fn downsampled_blocks_are_archived_and_queried_after_local_retention() {
    let Some(m) = moto("arch", false) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Older than a day, so no background reader (the LLM price table looks 25h back) touches
    // the archive: every download below is a query's.
    let (start, end) = write_blocks_ago(&data, 64);
    let cfg = config(tmp.path(), &m, &m.secret, 1 << 30);
    let cfg_arg = cfg.to_str().unwrap();
    let base = ["--config", cfg_arg, "--no-default-rules"];
    let (d5, d1) = (data.join("downsampled/5m"), data.join("downsampled/1h"));
    // Step 1h: aggregates answer for the time before the oldest local raw block (Thanos'
    // rule: resolution ≤ step / 5).
    const STEP: i64 = H;
    let queries = [
        "max_over_time(arch_temp[1h])",
        "avg_over_time(arch_temp[1h])",
        "increase(arch_requests_total[2h])",
        "arch_temp",
    ];

    // Run A, retention 2h: raw blocks older than 2h are downsampled, uploaded and deleted;
    // the aggregates stay local (their retention is 10 × 2h) and are uploaded too.
    let run = |ret: &str| {
        let mut s = Server::start(
            &data,
            &[
                &base[..],
                &["--retention", ret, "--maintenance-interval", "1s"],
            ]
            .concat(),
        );
        s.wait_ready(Duration::from_secs(60));
        s
    };
    let mut s = run("2h");
    let source = |dir: &Path, u: &str| -> String {
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join(u).join("meta.json")).unwrap_or_default(),
        )
        .unwrap_or_default();
        m["compaction"]["sources"][0]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    // Every raw block old enough is downsampled in the first maintenance round (before
    // retention), so once aggregates exist their set is complete; wait for their upload and
    // for retention to delete the raw blocks they came from.
    let c = s3(&m, "arch", &m.secret);
    wait(
        "aggregates written and archived, raw blocks deleted",
        120,
        || {
            let (ds5, ds1) = (dirs_in(&d5), dirs_in(&d1));
            let left = block_dirs(&data);
            if ds5.is_empty() || ds5.len() != ds1.len() {
                return false;
            }
            if ds5.iter().any(|u| left.contains(&source(&d5, u))) {
                return false;
            }
            let Ok(listed) = rt().block_on(c.list("node-1/downsampled/")) else {
                return false;
            };
            let has = |res: &str, u: &String| {
                let k = format!("node-1/downsampled/{res}/{u}/meta.json");
                listed.iter().any(|o| o.key == k)
            };
            ds5.iter().all(|u| has("5m", u)) && ds1.iter().all(|u| has("1h", u))
        },
    );
    let ds5_a = dirs_in(&d5);
    let listed = rt().block_on(c.list("node-1/downsampled/")).unwrap();
    for (res, list) in [("5m", &ds5_a), ("1h", &dirs_in(&d1))] {
        for u in list {
            let k = format!("node-1/downsampled/{res}/{u}/meta.json");
            assert!(listed.iter().any(|o| o.key == k), "{k} not in the bucket");
        }
    }
    let a: Vec<serde_json::Value> = queries
        .iter()
        .map(|q| query_step(&s, q, start, end, STEP))
        .collect();
    for (q, r) in queries.iter().zip(&a) {
        let first = r["result"][0]["values"][0][0].as_f64().unwrap_or(f64::MAX);
        assert!(
            first < (start + 3 * H) as f64 / 1000.0,
            "{q}: nothing for the old range: {r}"
        );
    }
    // Answered from local aggregates: nothing was downloaded from the bucket.
    assert_eq!(metric(&s, "sextant_archive_downloads_total"), 0.0);
    s.terminate();

    // Run B: the older half of the aggregate blocks is gone locally (as their own retention
    // or a lost disk would leave it; that their retention waits for the archive is tested in
    // crates/tsdb `downsampled_retention_waits_for_the_archive`); the same queries read them
    // from the bucket.
    let ds1_a = dirs_in(&d1);
    let min_time = |u: &str| -> i64 {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d5.join(u).join("meta.json")).unwrap()).unwrap();
        m["minTime"].as_i64().unwrap_or(0)
    };
    let mut by_age: Vec<&String> = ds5_a.iter().collect();
    by_age.sort_by_key(|u| min_time(u));
    let gone: Vec<String> = by_age[..ds5_a.len().div_ceil(2)]
        .iter()
        .map(|u| u.to_string())
        .collect();
    let gone_sources: Vec<String> = gone.iter().map(|u| source(&d5, u)).collect();
    for u in &gone {
        std::fs::remove_dir_all(d5.join(u)).unwrap();
    }
    for u in &ds1_a {
        if gone_sources.contains(&source(&d1, u)) {
            std::fs::remove_dir_all(d1.join(u)).unwrap();
        }
    }
    let mut s = run("2h");
    let b: Vec<serde_json::Value> = queries
        .iter()
        .map(|q| query_step(&s, q, start, end, STEP))
        .collect();
    for ((q, x), y) in queries.iter().zip(&a).zip(&b) {
        assert_eq!(x, y, "{q} differs once the aggregates moved to the archive");
    }
    assert!(metric(&s, "sextant_archive_downloads_total") >= 1.0);
    // Only aggregates were downloaded: no raw block is in the cache.
    let cached = dirs_in(&data.join("archive/cache"));
    assert!(!cached.is_empty());
    for u in &cached {
        assert!(
            ds5_a.contains(u) || ds1_a.contains(u),
            "{u}, not an aggregate block, downloaded for a large-step query"
        );
    }
    assert!(
        gone.iter().any(|u| cached.contains(u)),
        "{gone:?} vs {cached:?}"
    );
    s.terminate();
}
