//! `sextant export`: streams series out of a server's `/api/v1/export` into a file, stdout, an
//! InfluxDB-compatible write endpoint (`--url`) or Datadog's series API (`--format datadog`).
//!
//! Nothing is held whole: the server streams series by series and this command passes the body
//! on chunk by chunk (files) or in bounded batches (HTTP destinations). Each destination is a
//! [`Destination`]; an S3 destination (`--destination s3://bucket/prefix/`) is meant to plug in
//! as one more implementation once the object-store client lands.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

/// `sextant export` options.
#[derive(Args)]
pub struct ExportArgs {
    /// Series selector; repeat for several (their union is exported).
    #[arg(long = "match", required = true)]
    matches: Vec<String>,
    /// Start: RFC 3339, Unix seconds, `now`, or relative like `-1h` (default: all data).
    #[arg(long, allow_hyphen_values = true)]
    start: Option<String>,
    /// End, same forms as --start (default: now when --start is relative, else all data).
    #[arg(long, allow_hyphen_values = true)]
    end: Option<String>,
    /// Sample values at this resolution (PromQL lookback) instead of exporting raw samples.
    #[arg(long)]
    step: Option<String>,
    /// Output format; `datadog` sends to Datadog's series API.
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    format: ExportFormat,
    /// Write to this file instead of stdout.
    #[arg(long, short = 'o', conflicts_with = "url")]
    output: Option<PathBuf>,
    /// Send to an InfluxDB-compatible write endpoint (full URL, e.g.
    /// `http://influx:8086/write?db=metrics`; the format is influx line protocol), or with
    /// `--format datadog` the Datadog API base URL (default `https://api.$DD_SITE`).
    #[arg(long)]
    url: Option<String>,
    /// Upload to S3-compatible object storage: `s3://bucket/prefix/` (a key ending in `/` gets
    /// `export-<unix ms>.<format>` appended). Credentials from `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`), region from `AWS_REGION` (default
    /// us-east-1), endpoint from `AWS_ENDPOINT_URL` (then path-style addressing; default AWS).
    #[arg(long, conflicts_with_all = ["url", "output"])]
    destination: Option<String>,
    /// Part size in bytes of the multipart upload to --destination (at least 5 MiB).
    #[arg(long, default_value_t = sextant_objstore::DEFAULT_PART_SIZE)]
    s3_part_size: u64,
    /// Server to export from.
    #[arg(long, default_value = "http://127.0.0.1:9595")]
    server: String,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    Jsonl,
    Json,
    Csv,
    Openmetrics,
    Influx,
    Datadog,
}

impl ExportFormat {
    /// The `format=` the server is asked for.
    fn server_format(self) -> &'static str {
        match self {
            ExportFormat::Jsonl | ExportFormat::Datadog => "jsonl",
            ExportFormat::Json => "json",
            ExportFormat::Csv => "csv",
            ExportFormat::Openmetrics => "openmetrics",
            ExportFormat::Influx => "influx",
        }
    }
}

/// Where exported bytes go, chunk by chunk, in the format the server was asked for.
pub trait Destination {
    fn write(&mut self, chunk: &[u8]) -> Result<()>;
    /// Flushes what is buffered and reports how it went.
    fn finish(self: Box<Self>) -> Result<()>;
}

pub fn run(a: ExportArgs) -> Result<()> {
    let now = sextant_model::time::now_ms();
    let start = a
        .start
        .as_deref()
        .map(|s| resolve_time(s, now))
        .transpose()?;
    let end = match a.end.as_deref() {
        Some(e) => Some(resolve_time(e, now)?),
        None if a.start.as_deref().is_some_and(|s| s.starts_with('-')) => Some(ms_param(now)),
        None => None,
    };
    let http = reqwest::blocking::Client::builder()
        .timeout(None)
        .connect_timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let mut dest: Box<dyn Destination> = match (a.format, &a.url, &a.output) {
        (ExportFormat::Datadog, _, _) if a.destination.is_some() => {
            bail!("--destination takes a file format, not --format datadog")
        }
        (_, _, _) if a.destination.is_some() => Box::new(S3::new(
            a.destination.as_deref().unwrap_or_default(),
            a.format.server_format(),
            now,
            a.s3_part_size,
        )?),
        (ExportFormat::Datadog, url, _) => Box::new(Datadog::new(http.clone(), url.clone())?),
        (ExportFormat::Influx, Some(url), _) => Box::new(Influx::new(http.clone(), url.clone())),
        (_, Some(_), _) => bail!("--url needs --format influx or --format datadog"),
        (_, None, Some(path)) => Box::new(Stream(Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )))),
        (_, None, None) => Box::new(Stream(Box::new(std::io::stdout().lock()))),
    };
    let mut form: Vec<(&str, String)> = a.matches.iter().map(|m| ("match[]", m.clone())).collect();
    form.push(("format", a.format.server_format().into()));
    if let Some(s) = start {
        form.push(("start", s));
    }
    if let Some(e) = end {
        form.push(("end", e));
    }
    if let Some(s) = &a.step {
        form.push(("step", s.clone()));
    }
    let url = format!("{}/api/v1/export", a.server.trim_end_matches('/'));
    let mut resp = http
        .post(&url)
        .form(&form)
        .send()
        .with_context(|| format!("exporting from {url}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().unwrap_or_default();
        bail!("{url} answered {status}: {body}");
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = resp.read(&mut buf).with_context(|| {
            format!("reading the export from {url} (the server may have aborted it)")
        })?;
        if n == 0 {
            break;
        }
        dest.write(&buf[..n])?;
    }
    dest.finish()
}

/// `-1h`, `-30m` (relative to now), `now`, or passed through (RFC 3339, Unix seconds).
fn resolve_time(s: &str, now: i64) -> Result<String> {
    if s == "now" {
        return Ok(ms_param(now));
    }
    if let Some(d) = s.strip_prefix('-') {
        if let Ok(d) = sextant_model::time::parse_duration(d) {
            return Ok(ms_param(now - d.as_millis() as i64));
        }
    }
    Ok(s.to_string())
}

fn ms_param(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// A file or stdout.
struct Stream(Box<dyn Write>);

impl Destination for Stream {
    fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.0.write_all(chunk).context("writing the export")
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        self.0.flush().context("writing the export")
    }
}

/// An object in S3-compatible storage, written part by part as the export streams in (memory
/// stays at one multipart part, 16 MiB).
struct S3 {
    rt: tokio::runtime::Runtime,
    upload: Option<sextant_objstore::Upload>,
    target: String,
}

impl S3 {
    fn new(destination: &str, ext: &str, now: i64, part_size: u64) -> Result<S3> {
        let (bucket, key) = parse_s3_url(destination)?;
        let key = if key.is_empty() || key.ends_with('/') {
            format!("{key}export-{now}.{ext}")
        } else {
            key
        };
        let credentials = sextant_objstore::Credentials::from_env().context(
            "--destination s3://… needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
        )?;
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .ok()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|e| !e.is_empty());
        let client = sextant_objstore::Client::new(sextant_objstore::S3Config {
            bucket: bucket.clone(),
            force_path_style: endpoint.is_some(),
            endpoint,
            region,
            credentials,
        })
        .with_context(|| format!("configuring S3 for {destination}"))?
        .with_part_size(part_size);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the S3 client")?;
        Ok(S3 {
            rt,
            upload: Some(client.upload(&key)),
            target: format!("s3://{bucket}/{key}"),
        })
    }
}

/// `s3://bucket/prefix` → (bucket, prefix).
fn parse_s3_url(u: &str) -> Result<(String, String)> {
    let rest = u
        .strip_prefix("s3://")
        .with_context(|| format!("--destination {u:?}: expected s3://bucket/prefix/"))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("--destination {u:?}: the bucket name is empty");
    }
    Ok((bucket.to_string(), key.to_string()))
}

impl Destination for S3 {
    fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let Some(up) = self.upload.as_mut() else {
            bail!("{}: upload already failed", self.target);
        };
        let res = self.rt.block_on(up.write(chunk));
        if res.is_err() {
            self.upload = None; // aborted by write
        }
        res.with_context(|| format!("uploading to {}", self.target))
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        let up = self
            .upload
            .take()
            .with_context(|| format!("{}: upload already failed", self.target))?;
        let size = self
            .rt
            .block_on(up.finish())
            .with_context(|| format!("uploading to {}", self.target))?;
        eprintln!("exported {size} bytes to {}", self.target);
        Ok(())
    }
}

/// Bytes per HTTP request to a remote destination (before compression).
const BATCH_BYTES: usize = 1 << 20;

/// Collects whole lines out of chunks.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    fn feed(&mut self, chunk: &[u8], mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            if self.partial.is_empty() {
                each(&rest[..i])?;
            } else {
                self.partial.extend_from_slice(&rest[..i]);
                let line = std::mem::take(&mut self.partial);
                each(&line)?;
            }
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }
}

/// InfluxDB line protocol POSTed (gzip) to a `/write` or `/api/v2/write` URL in ~1 MiB
/// batches; `INFLUX_TOKEN` in the environment is sent as `Authorization: Token …`.
struct Influx {
    http: reqwest::blocking::Client,
    url: String,
    batch: Vec<u8>,
    lines: Lines,
    sent: usize,
}

impl Influx {
    fn new(http: reqwest::blocking::Client, url: String) -> Self {
        Influx {
            http,
            url,
            batch: Vec::new(),
            lines: Lines::default(),
            sent: 0,
        }
    }

    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&self.batch)?;
        let body = gz.finish()?;
        let mut req = self
            .http
            .post(&self.url)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Content-Encoding", "gzip")
            .body(body);
        if let Ok(token) = std::env::var("INFLUX_TOKEN") {
            req = req.header("Authorization", format!("Token {token}"));
        }
        let resp = req
            .send()
            .with_context(|| format!("writing to {}", self.url))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().unwrap_or_default();
            bail!("{} answered {status}: {body}", self.url);
        }
        self.sent += 1;
        self.batch.clear();
        Ok(())
    }
}

impl Destination for Influx {
    fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let mut lines = std::mem::take(&mut self.lines);
        let r = lines.feed(chunk, |l| {
            self.batch.extend_from_slice(l);
            self.batch.push(b'\n');
            if self.batch.len() >= BATCH_BYTES {
                self.flush()?;
            }
            Ok(())
        });
        self.lines = lines;
        r
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        let rest = std::mem::take(&mut self.lines.partial);
        if !rest.is_empty() {
            self.batch.extend_from_slice(&rest);
            self.batch.push(b'\n');
        }
        self.flush()?;
        eprintln!("sent {} request(s) to {}", self.sent, self.url);
        Ok(())
    }
}

/// Datadog's metrics API v2 (`POST /api/v2/series`, header `DD-API-KEY`, gzip): every exported
/// series becomes a gauge series with tags `label:value`; timestamps are whole seconds.
/// NaN and ±Inf cannot be sent and are skipped, as are native histograms.
struct Datadog {
    http: reqwest::blocking::Client,
    url: String,
    key: String,
    series: Vec<Value>,
    bytes: usize,
    lines: Lines,
    sent: usize,
}

impl Datadog {
    fn new(http: reqwest::blocking::Client, base: Option<String>) -> Result<Self> {
        let key = std::env::var("DD_API_KEY")
            .context("--format datadog needs the API key in the environment variable DD_API_KEY")?;
        let base = match base {
            Some(b) => b,
            None => format!(
                "https://api.{}",
                std::env::var("DD_SITE").unwrap_or_else(|_| "datadoghq.com".into())
            ),
        };
        Ok(Datadog {
            http,
            url: format!("{}/api/v2/series", base.trim_end_matches('/')),
            key,
            series: Vec::new(),
            bytes: 0,
            lines: Lines::default(),
            sent: 0,
        })
    }

    fn line(&mut self, line: &[u8]) -> Result<()> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let v: Value =
            serde_json::from_slice(line).context("the server sent a malformed export line")?;
        let Some(vals) = v["values"].as_array() else {
            return Ok(()); // a native-histogram line
        };
        let metric = v["metric"].as_object().cloned().unwrap_or_default();
        let name = metric
            .get("__name__")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            return Ok(());
        }
        let tags: Vec<String> = metric
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or_default()))
            .collect();
        let ts = v["timestamps"].as_array().cloned().unwrap_or_default();
        let mut points = Vec::new();
        for (val, t) in vals.iter().zip(&ts) {
            let (Some(val), Some(t)) = (val.as_f64(), t.as_i64()) else {
                continue; // "NaN", "+Inf", "-Inf"
            };
            points.push(json!({"timestamp": t.div_euclid(1000), "value": val}));
            // Keep one request under Datadog's 5 MB payload limit.
            if points.len() >= 20_000 {
                self.push(&name, &tags, std::mem::take(&mut points))?;
            }
        }
        if !points.is_empty() {
            self.push(&name, &tags, points)?;
        }
        Ok(())
    }

    fn push(&mut self, name: &str, tags: &[String], points: Vec<Value>) -> Result<()> {
        self.bytes += points.len() * 40 + 100;
        self.series.push(json!({
            "metric": name,
            "type": 3,
            "points": points,
            "tags": tags,
        }));
        if self.bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.series.is_empty() {
            return Ok(());
        }
        let body = json!({ "series": std::mem::take(&mut self.series) });
        self.bytes = 0;
        // Datadog takes at most 500 kB on the wire and 5 MB decompressed: ~1 MB of JSON, gzipped.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(body.to_string().as_bytes())?;
        let resp = self
            .http
            .post(&self.url)
            .header("DD-API-KEY", &self.key)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .header("Accept", "application/json")
            .body(gz.finish()?)
            .send()
            .with_context(|| format!("sending to {}", self.url))?;
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        if !status.is_success() {
            bail!("{} answered {status}: {text}", self.url);
        }
        if let Ok(j) = serde_json::from_str::<Value>(&text) {
            if let Some(errs) = j["errors"].as_array().filter(|e| !e.is_empty()) {
                bail!(
                    "{} reported errors: {}",
                    self.url,
                    Value::Array(errs.clone())
                );
            }
        }
        self.sent += 1;
        Ok(())
    }
}

impl Destination for Datadog {
    fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let mut lines = std::mem::take(&mut self.lines);
        let r = lines.feed(chunk, |l| self.line(l));
        self.lines = lines;
        r
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        let rest = std::mem::take(&mut self.lines.partial);
        self.line(&rest)?;
        self.flush()?;
        eprintln!("sent {} request(s) to {}", self.sent, self.url);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        assert_eq!(resolve_time("-1h", 7_200_000).expect("ok"), "3600.000");
        assert_eq!(resolve_time("now", 1_500).expect("ok"), "1.500");
        assert_eq!(
            resolve_time("2024-01-01T00:00:00Z", 0).expect("ok"),
            "2024-01-01T00:00:00Z"
        );
    }

    #[test]
    fn lines_across_chunks() {
        let mut l = Lines::default();
        let mut got = Vec::new();
        for c in [&b"ab"[..], b"c\nd", b"\n\nef"] {
            l.feed(c, |x| {
                got.push(String::from_utf8_lossy(x).into_owned());
                Ok(())
            })
            .expect("feed");
        }
        assert_eq!(got, vec!["abc", "d", ""]);
        assert_eq!(l.partial, b"ef");
    }
}
