//! remote_write forwarding: ship every sample the head accepts to Prometheus-compatible
//! receivers (VictoriaMetrics, Mimir, Thanos, Prometheus), configured by `remote_write:` in
//! sextant.yml with Prometheus' keys.
//!
//! Each queue tails the WAL (not memory) like Prometheus' `wlog.Watcher`: it learns series from
//! series records (checkpoint included) and reads sample records as the head writes them. A
//! round of samples is split by series over shards that send concurrently, each shard in order,
//! retrying with exponential backoff on connection errors, 5xx and 429; other 4xx drop the batch
//! and count it as failed. Only when every shard has an answer is the queue's WAL position
//! (segment and byte offset) written to `<data-dir>/remote_write/<queue>.json`, so a restart
//! resumes exactly there, and the database is told not to checkpoint away segments a queue has
//! not read yet (bounded by `--remote-write-max-wal-hold`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sextant_ingest::remote_write::{compress_snappy, encode_v1, encode_v2};
use sextant_ingest::scrape::config::{Authorization, BasicAuth, HttpUrl, PromDuration, TlsConfig};
use sextant_ingest::scrape::http_client::HttpClientConfig;
use sextant_model::relabel::{self, RelabelConfig};
use sextant_model::{Labels, Sample};
use sextant_tsdb::db::Db;
use sextant_tsdb::wal::tail::{self, ReadEnd};
use sextant_tsdb::wal::Record;

/// One `remote_write:` entry (Prometheus' `RemoteWriteConfig`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    pub url: HttpUrl,
    /// Unique queue name; default: a hash of the URL and settings, as in Prometheus.
    pub name: Option<String>,
    #[serde(default = "thirty_seconds")]
    pub remote_timeout: PromDuration,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub write_relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub queue_config: QueueConfig,
    #[serde(default)]
    pub metadata_config: MetadataConfig,
    /// `prometheus.WriteRequest` (remote write 1.0, default) or
    /// `io.prometheus.write.v2.Request` (2.0).
    pub protobuf_message: Option<String>,
    /// Accepted for compatibility; exemplars are not forwarded yet.
    #[serde(default)]
    pub send_exemplars: bool,
    /// Accepted for compatibility; native histograms are not forwarded yet.
    #[serde(default)]
    pub send_native_histograms: bool,
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    pub proxy_url: Option<HttpUrl>,
}

/// `queue_config`, with Prometheus' defaults.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Samples buffered per shard.
    #[serde(default = "d_capacity")]
    pub capacity: usize,
    #[serde(default = "d_max_shards")]
    pub max_shards: usize,
    #[serde(default = "d_min_shards")]
    pub min_shards: usize,
    #[serde(default = "d_max_per_send")]
    pub max_samples_per_send: usize,
    #[serde(default = "five_seconds")]
    pub batch_send_deadline: PromDuration,
    #[serde(default = "thirty_ms")]
    pub min_backoff: PromDuration,
    #[serde(default = "five_seconds")]
    pub max_backoff: PromDuration,
    #[serde(default = "yes")]
    pub retry_on_http_429: bool,
    /// Accepted for compatibility (Prometheus drops samples older than this); Sextant never
    /// drops old samples, since the point of the WAL hold is to deliver them.
    pub sample_age_limit: Option<PromDuration>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: d_capacity(),
            max_shards: d_max_shards(),
            min_shards: d_min_shards(),
            max_samples_per_send: d_max_per_send(),
            batch_send_deadline: five_seconds(),
            min_backoff: thirty_ms(),
            max_backoff: five_seconds(),
            retry_on_http_429: true,
            sample_age_limit: None,
        }
    }
}

/// `metadata_config`: accepted and checked; metadata is not sent yet (see docs/remote-write.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataConfig {
    #[serde(default = "yes")]
    pub send: bool,
    #[serde(default = "one_minute")]
    #[allow(dead_code)] // checked, unused until metadata is sent
    pub send_interval: PromDuration,
    #[serde(default = "d_max_per_send")]
    #[allow(dead_code)] // checked, unused until metadata is sent
    pub max_samples_per_send: usize,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            send: true,
            send_interval: one_minute(),
            max_samples_per_send: d_max_per_send(),
        }
    }
}

fn yes() -> bool {
    true
}
fn d_capacity() -> usize {
    10_000
}
fn d_max_shards() -> usize {
    50
}
fn d_min_shards() -> usize {
    1
}
fn d_max_per_send() -> usize {
    2_000
}
fn thirty_seconds() -> PromDuration {
    PromDuration(Duration::from_secs(30))
}
fn one_minute() -> PromDuration {
    PromDuration(Duration::from_secs(60))
}
fn five_seconds() -> PromDuration {
    PromDuration(Duration::from_secs(5))
}
fn thirty_ms() -> PromDuration {
    PromDuration(Duration::from_millis(30))
}

/// Remote write protocol version of a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    V1,
    V2,
}

impl RemoteWriteConfig {
    fn http(&self) -> HttpClientConfig {
        HttpClientConfig {
            basic_auth: self.basic_auth.clone(),
            authorization: self.authorization.clone(),
            bearer_token: self.bearer_token.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            tls_config: self.tls_config.clone(),
            follow_redirects: self.follow_redirects,
            proxy_url: self.proxy_url.clone(),
        }
    }

    /// The protocol named by `protobuf_message`.
    pub fn protocol(&self) -> Result<Protocol, String> {
        match self.protobuf_message.as_deref() {
            None | Some("prometheus.WriteRequest") => Ok(Protocol::V1),
            Some("io.prometheus.write.v2.Request") => Ok(Protocol::V2),
            Some(o) => Err(format!(
                "protobuf_message: unknown remote write protobuf message {o:?} (want \"prometheus.WriteRequest\" or \"io.prometheus.write.v2.Request\")"
            )),
        }
    }

    /// Checks what serde cannot, with Prometheus' wording where it has one.
    pub fn validate(&self) -> Result<(), String> {
        self.protocol()?;
        self.http().validate()?;
        let q = &self.queue_config;
        if q.max_shards == 0 || q.min_shards == 0 || q.min_shards > q.max_shards {
            return Err(
                "queue_config: min_shards and max_shards must be at least 1 and min_shards <= max_shards"
                    .into(),
            );
        }
        if q.max_samples_per_send == 0 || q.capacity == 0 {
            return Err(
                "queue_config: capacity and max_samples_per_send must be at least 1".into(),
            );
        }
        if q.min_backoff.0 > q.max_backoff.0 {
            return Err("queue_config: min_backoff must not exceed max_backoff".into());
        }
        for k in self.headers.keys() {
            let lk = k.to_ascii_lowercase();
            if [
                "authorization",
                "host",
                "content-encoding",
                "content-length",
                "content-type",
                "user-agent",
                "connection",
                "keep-alive",
                "proxy-authenticate",
                "proxy-authorization",
                "www-authenticate",
                "retry-after",
                "x-prometheus-remote-write-version",
            ]
            .contains(&lk.as_str())
            {
                return Err(format!(
                    "headers: {k} is a reserved header. It must not be changed"
                ));
            }
        }
        Ok(())
    }

    /// The queue name: `name`, or a short hash of the URL (Prometheus uses a config hash).
    pub fn queue_name(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => {
                let d = relabel::md5(self.url.0.as_bytes());
                d[..3].iter().map(|b| format!("{b:02x}")).collect()
            }
        }
    }
}

/// Checks a list of queues (unique names) — used by config parsing.
pub fn validate_all(list: &[RemoteWriteConfig]) -> Result<(), (usize, String)> {
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, c) in list.iter().enumerate() {
        c.validate().map_err(|e| (i, e))?;
        if let Some(first) = names.insert(c.queue_name(), i) {
            return Err((
                i,
                format!(
                    "found multiple remote write configs with the same name {:?} (also entry {first})",
                    c.queue_name()
                ),
            ));
        }
    }
    Ok(())
}

/// Buckets of `prometheus_remote_storage_sent_batch_duration_seconds` (Prometheus' own).
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0,
];

/// Counters and gauges of one queue.
#[derive(Default)]
struct QueueMetrics {
    samples_total: AtomicU64,
    samples_failed: AtomicU64,
    samples_retried: AtomicU64,
    samples_dropped: AtomicU64,
    samples_pending: AtomicU64,
    highest_sent_ms: AtomicU64,
    shards: AtomicU64,
    bytes_total: AtomicU64,
    wal_segment: AtomicU64,
    /// Histogram: counts per bucket, then count, then sum in microseconds.
    durations: Mutex<([u64; 12], u64, f64)>,
}

/// One running queue as seen by the metrics page.
struct QueueHandle {
    name: String,
    url: String,
    m: Arc<QueueMetrics>,
    /// Segment this queue still needs (its position's segment).
    hold: Arc<AtomicU64>,
}

/// All queues of the server.
pub struct Forwarders {
    queues: Vec<QueueHandle>,
    db: Arc<Db>,
}

/// Position in the WAL: segment index and byte offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
struct Position {
    segment: u64,
    offset: u64,
}

impl Forwarders {
    /// Starts one task per queue on the current tokio runtime. Queue state goes to
    /// `<data_dir>/remote_write/`.
    pub fn start(
        db: Arc<Db>,
        data_dir: &Path,
        configs: &[RemoteWriteConfig],
        external_labels: Labels,
    ) -> Result<Arc<Forwarders>, String> {
        let state_dir = data_dir.join("remote_write");
        if !configs.is_empty() {
            std::fs::create_dir_all(&state_dir)
                .map_err(|e| format!("creating {}: {e}", state_dir.display()))?;
        }
        let mut queues = Vec::new();
        let mut tasks = Vec::new();
        for c in configs {
            if c.send_exemplars || c.send_native_histograms {
                tracing::warn!(url = %c.url.0, "remote_write: exemplars and native histograms are not forwarded yet; float samples only");
            }
            if c.metadata_config.send {
                tracing::debug!(url = %c.url.0, "remote_write: metadata is not forwarded yet");
            }
            if c.queue_config.sample_age_limit.is_some() {
                tracing::warn!(url = %c.url.0, "remote_write: queue_config.sample_age_limit is ignored; old samples are always delivered");
            }
            let http = c.http();
            let client = http
                .builder()?
                .timeout(c.remote_timeout.0)
                .build()
                .map_err(|e| format!("remote_write {}: building the HTTP client: {e}", c.url.0))?;
            let url = reqwest::Url::parse(&c.url.0).map_err(|e| format!("url: {e}"))?;
            let name = c.queue_name();
            let m = Arc::new(QueueMetrics::default());
            let hold = Arc::new(AtomicU64::new(u64::MAX));
            let q = Queue {
                cfg: c.clone(),
                protocol: c.protocol()?,
                http,
                client,
                url,
                m: m.clone(),
                hold: hold.clone(),
                wal_dir: db.dir().join("wal"),
                state_file: state_dir.join(format!("{}.json", sanitize(&name))),
                external_labels: external_labels.clone(),
                series: HashMap::new(),
            };
            queues.push(QueueHandle {
                name,
                url: c.url.0.clone(),
                m,
                hold,
            });
            tasks.push(q);
        }
        let f = Arc::new(Forwarders { queues, db });
        for q in tasks {
            let f2 = f.clone();
            tokio::spawn(async move { q.run(f2).await });
        }
        Ok(f)
    }

    /// Recomputes the WAL hold: the lowest segment any queue still needs.
    fn update_hold(&self) {
        let min = self
            .queues
            .iter()
            .map(|q| q.hold.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        self.db.hold_wal_from(min);
    }

    /// Appends the queues' metrics, in the text exposition format, with Prometheus' names.
    pub fn render(&self, o: &mut String) {
        if self.queues.is_empty() {
            return;
        }
        let highest = self.db.head().max_time();
        let highest_s = if highest == i64::MIN {
            0.0
        } else {
            highest as f64 / 1000.0
        };
        let fam = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        fam(
            o,
            "prometheus_remote_storage_highest_timestamp_in_seconds",
            "gauge",
            "Highest timestamp that has come into the remote storage via the WAL, in seconds since epoch.",
        );
        let _ = writeln!(
            o,
            "prometheus_remote_storage_highest_timestamp_in_seconds {highest_s}"
        );
        type Get = fn(&QueueMetrics) -> f64;
        let per_queue: [(&str, &str, &str, Get); 9] = [
            ("prometheus_remote_storage_samples_total", "counter", "Total number of samples sent to remote storage.", |m| m.samples_total.load(Ordering::Relaxed) as f64),
            ("prometheus_remote_storage_samples_failed_total", "counter", "Total number of samples which failed on send to remote storage, non-recoverable errors.", |m| m.samples_failed.load(Ordering::Relaxed) as f64),
            ("prometheus_remote_storage_samples_retried_total", "counter", "Total number of samples which failed on send to remote storage but were retried because the send error was recoverable.", |m| m.samples_retried.load(Ordering::Relaxed) as f64),
            ("prometheus_remote_storage_samples_dropped_total", "counter", "Total number of samples which were dropped after being read from the WAL before being sent via remote write, either via relabelling or unintentionally because of an unknown reference ID.", |m| m.samples_dropped.load(Ordering::Relaxed) as f64),
            ("prometheus_remote_storage_samples_pending", "gauge", "The number of samples pending in the queues shards to be sent to the remote storage.", |m| m.samples_pending.load(Ordering::Relaxed) as f64),
            ("prometheus_remote_storage_queue_highest_sent_timestamp_seconds", "gauge", "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue, in seconds since epoch.", |m| m.highest_sent_ms.load(Ordering::Relaxed) as f64 / 1000.0),
            ("prometheus_remote_storage_shards", "gauge", "The number of shards used for parallel sending to the remote storage.", |m| m.shards.load(Ordering::Relaxed) as f64),
            ("prometheus_remote_storage_bytes_total", "counter", "The total number of bytes of data (not metadata) sent by the queue after compression.", |m| m.bytes_total.load(Ordering::Relaxed) as f64),
            ("prometheus_wal_watcher_current_segment", "gauge", "Current segment the WAL watcher is reading records from.", |m| m.wal_segment.load(Ordering::Relaxed) as f64),
        ];
        for (name, kind, help, get) in per_queue {
            fam(o, name, kind, help);
            for q in &self.queues {
                let _ = writeln!(o, "{name}{{{}}} {}", labels(q), get(&q.m));
            }
        }
        fam(
            o,
            "sextant_remote_storage_lag_seconds",
            "gauge",
            "Newest sample in the WAL minus the newest sample this queue has sent, in seconds (0 when caught up).",
        );
        for q in &self.queues {
            let sent = q.m.highest_sent_ms.load(Ordering::Relaxed) as f64 / 1000.0;
            let lag = if sent == 0.0 || highest == i64::MIN {
                0.0
            } else {
                (highest_s - sent).max(0.0)
            };
            let _ = writeln!(
                o,
                "sextant_remote_storage_lag_seconds{{{}}} {lag}",
                labels(q)
            );
        }
        let name = "prometheus_remote_storage_sent_batch_duration_seconds";
        fam(
            o,
            name,
            "histogram",
            "Duration of send calls to the remote storage.",
        );
        for q in &self.queues {
            let l = labels(q);
            let d = q.m.durations.lock().unwrap_or_else(|e| e.into_inner());
            let mut cum = 0;
            for (i, b) in DURATION_BUCKETS.iter().enumerate() {
                cum += d.0[i];
                let _ = writeln!(o, "{name}_bucket{{{l},le=\"{b}\"}} {cum}");
            }
            let _ = writeln!(o, "{name}_bucket{{{l},le=\"+Inf\"}} {}", d.1);
            let _ = writeln!(o, "{name}_sum{{{l}}} {}", d.2);
            let _ = writeln!(o, "{name}_count{{{l}}} {}", d.1);
        }
    }
}

fn labels(q: &QueueHandle) -> String {
    format!("remote_name=\"{}\",url=\"{}\"", esc(&q.name), esc(&q.url))
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A sample read from the WAL for a kept series.
#[derive(Clone, Copy)]
struct Pending {
    r: u64,
    t: i64,
    v: f64,
}

/// The state of one queue's task.
struct Queue {
    cfg: RemoteWriteConfig,
    protocol: Protocol,
    http: HttpClientConfig,
    client: reqwest::Client,
    url: reqwest::Url,
    m: Arc<QueueMetrics>,
    hold: Arc<AtomicU64>,
    wal_dir: PathBuf,
    state_file: PathBuf,
    external_labels: Labels,
    /// WAL series ref → labels to send (`None`: dropped by relabeling).
    series: HashMap<u64, Option<Arc<Labels>>>,
}

/// Outcome of sending one request.
enum SendError {
    /// Retry after a backoff (connection error, 5xx, 429).
    Recoverable(String),
    /// Drop the batch (other 4xx, encoding limits).
    Fatal(String),
}

impl Queue {
    fn learn_series(&mut self, rec: &Record) {
        if let Record::Series(list) = rec {
            for s in list {
                let mut l = s.labels.clone();
                if !self.external_labels.is_empty() {
                    let mut b: Vec<(String, String)> = l
                        .iter()
                        .map(|x| (x.name.clone(), x.value.clone()))
                        .collect();
                    for e in self.external_labels.iter() {
                        if l.get(&e.name).is_none() {
                            b.push((e.name.clone(), e.value.clone()));
                        }
                    }
                    l = Labels::from_pairs(b);
                }
                let kept = if self.cfg.write_relabel_configs.is_empty() {
                    Some(l)
                } else {
                    relabel::process(&l, &self.cfg.write_relabel_configs)
                };
                self.series.insert(s.r, kept.map(Arc::new));
            }
        }
    }

    fn load_position(&self) -> Option<Position> {
        let text = std::fs::read_to_string(&self.state_file).ok()?;
        match serde_json::from_str(&text) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(file = %self.state_file.display(), error = %e, "remote write: unreadable queue position, starting from the end of the WAL");
                None
            }
        }
    }

    fn save_position(&self, p: Position) {
        let tmp = self.state_file.with_extension("json.tmp");
        let body = serde_json::to_string(&p).unwrap_or_default();
        let r = (|| -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(body.as_bytes())?;
            f.sync_data()?;
            std::fs::rename(&tmp, &self.state_file)
        })();
        if let Err(e) = r {
            tracing::error!(file = %self.state_file.display(), error = %e, "remote write: cannot save the queue position");
        }
    }

    /// Reads series records of the checkpoint and of the WAL before `pos`; returns the
    /// position to start sending from.
    fn recover(&mut self, saved: Option<Position>) -> Result<Position, String> {
        let (segs, cp) = tail::listing(&self.wal_dir).map_err(|e| e.to_string())?;
        if let Some((_, files)) = &cp {
            for f in files {
                let mut recs = Vec::new();
                tail::read_frames(f, 0, u64::MAX, &mut |r, _| {
                    if matches!(r, Record::Series(_)) {
                        recs.push(r)
                    }
                })
                .map_err(|e| e.to_string())?;
                for r in &recs {
                    self.learn_series(r);
                }
            }
        }
        let first = segs.first().copied().unwrap_or(0);
        let last = segs.last().copied().unwrap_or(0);
        let start = match saved {
            Some(p) if p.segment >= first => p,
            Some(p) => {
                tracing::warn!(
                    saved_segment = p.segment,
                    oldest_segment = first,
                    "remote write: the WAL was checkpointed past this queue's position (it fell behind more than --remote-write-max-wal-hold); samples in between are lost to the remote"
                );
                Position {
                    segment: first,
                    offset: 0,
                }
            }
            None => {
                let len = std::fs::metadata(tail::segment_path(&self.wal_dir, last))
                    .map(|m| m.len())
                    .unwrap_or(0);
                Position {
                    segment: last,
                    offset: len,
                }
            }
        };
        // Series defined before the start position.
        for &s in segs.iter().filter(|&&s| s <= start.segment) {
            let limit = if s == start.segment {
                start.offset
            } else {
                u64::MAX
            };
            let mut recs = Vec::new();
            tail::read_frames(
                &tail::segment_path(&self.wal_dir, s),
                0,
                limit,
                &mut |r, end| {
                    if end <= limit && matches!(r, Record::Series(_)) {
                        recs.push(r)
                    }
                },
            )
            .map_err(|e| e.to_string())?;
            for r in &recs {
                self.learn_series(r);
            }
        }
        Ok(start)
    }

    async fn run(mut self, all: Arc<Forwarders>) {
        let saved = self.load_position();
        let mut pos = loop {
            match self.recover(saved) {
                Ok(p) => break p,
                Err(e) => {
                    tracing::error!(error = %e, "remote write: reading the WAL failed; retrying");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        };
        self.hold.store(pos.segment, Ordering::Release);
        all.update_hold();
        tracing::info!(queue = %self.cfg.queue_name(), url = %self.url, segment = pos.segment, offset = pos.offset, resumed = saved.is_some(), "remote write queue started");
        let q = self.cfg.queue_config.clone();
        let round_cap = q
            .max_samples_per_send
            .saturating_mul(q.max_shards)
            .min(q.capacity.saturating_mul(q.max_shards))
            .max(1);
        let mut pending: Vec<Pending> = Vec::new();
        let mut first_pending: Option<Instant> = None;
        // `pos` is acknowledged (persisted); `read_pos` is how far records were read.
        let mut read_pos = pos;
        loop {
            // Read what is there, up to one round.
            let mut progressed = false;
            loop {
                let segs = match tail::listing(&self.wal_dir) {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "remote write: listing the WAL failed");
                        break;
                    }
                };
                if segs.first().is_some_and(|&f| f > read_pos.segment) {
                    let f = segs[0];
                    tracing::warn!(segment = read_pos.segment, oldest = f, "remote write: WAL segment gone before it was read; samples in it are lost to the remote");
                    read_pos = Position {
                        segment: f,
                        offset: 0,
                    };
                }
                let newer = segs.iter().any(|&s| s > read_pos.segment);
                let path = tail::segment_path(&self.wal_dir, read_pos.segment);
                let mut recs: Vec<(Record, u64)> = Vec::new();
                let budget = (round_cap.saturating_sub(pending.len()) as u64)
                    .saturating_mul(12)
                    .max(4096);
                let res = tail::read_frames(&path, read_pos.offset, budget, &mut |r, end| {
                    recs.push((r, end))
                });
                let (off, end) = match res {
                    Ok(x) => x,
                    Err(e) => {
                        if newer {
                            read_pos = Position {
                                segment: read_pos.segment + 1,
                                offset: 0,
                            };
                            progressed = true;
                            continue;
                        }
                        tracing::debug!(error = %e, "remote write: segment not readable yet");
                        break;
                    }
                };
                for (r, _) in &recs {
                    match r {
                        Record::Series(_) => self.learn_series(r),
                        Record::Samples(ss) => {
                            for s in ss {
                                match self.series.get(&s.r) {
                                    Some(Some(_)) => pending.push(Pending {
                                        r: s.r,
                                        t: s.t,
                                        v: s.v,
                                    }),
                                    _ => {
                                        self.m.samples_dropped.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                }
                if off != read_pos.offset {
                    progressed = true;
                }
                read_pos.offset = off;
                if !pending.is_empty() && first_pending.is_none() {
                    first_pending = Some(Instant::now());
                }
                match end {
                    ReadEnd::Limit => {
                        if pending.len() >= round_cap {
                            break;
                        }
                    }
                    ReadEnd::Corrupt => {
                        tracing::error!(
                            segment = read_pos.segment,
                            offset = off,
                            "remote write: corrupt WAL frame; skipping the rest of the segment"
                        );
                        if newer {
                            read_pos = Position {
                                segment: read_pos.segment + 1,
                                offset: 0,
                            };
                        } else {
                            break;
                        }
                    }
                    ReadEnd::Tail => {
                        if newer {
                            read_pos = Position {
                                segment: read_pos.segment + 1,
                                offset: 0,
                            };
                            progressed = true;
                        } else {
                            break;
                        }
                    }
                }
                if pending.len() >= round_cap {
                    break;
                }
            }
            self.m
                .wal_segment
                .store(read_pos.segment, Ordering::Relaxed);
            self.m
                .samples_pending
                .store(pending.len() as u64, Ordering::Relaxed);
            let due = first_pending.is_some_and(|f| f.elapsed() >= q.batch_send_deadline.0)
                || pending.len() >= q.max_samples_per_send;
            if pending.is_empty() {
                if read_pos != pos {
                    // Only series records or dropped samples: progress without a send.
                    pos = read_pos;
                    self.save_position(pos);
                    self.hold.store(pos.segment, Ordering::Release);
                    all.update_hold();
                }
                if !progressed {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
            if !due {
                // Keep reading into the same round; `pos` stays at the last acknowledged point.
                if !progressed {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
            let batch = std::mem::take(&mut pending);
            first_pending = None;
            self.send_round(batch).await;
            pos = read_pos;
            self.save_position(pos);
            self.m.samples_pending.store(0, Ordering::Relaxed);
            self.hold.store(pos.segment, Ordering::Release);
            all.update_hold();
        }
    }

    /// Sends one round: samples split by series over shards sending concurrently, each
    /// shard's requests in order. Returns when every request was accepted or dropped.
    async fn send_round(&self, batch: Vec<Pending>) {
        let q = &self.cfg.queue_config;
        let want = batch.len().div_ceil(q.max_samples_per_send);
        let n = want.clamp(q.min_shards, q.max_shards).max(1);
        self.m.shards.store(n as u64, Ordering::Relaxed);
        let mut shards: Vec<Vec<Pending>> = vec![Vec::new(); n];
        for p in batch {
            let i = (p.r.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % n;
            shards[i].push(p);
        }
        let mut set = tokio::task::JoinSet::new();
        for shard in shards.into_iter().filter(|s| !s.is_empty()) {
            let reqs = self.build_requests(shard);
            let ctx = SendCtx {
                client: self.client.clone(),
                http: self.http.clone(),
                url: self.url.clone(),
                headers: self.cfg.headers.clone(),
                protocol: self.protocol,
                q: q.clone(),
                m: self.m.clone(),
            };
            set.spawn(async move {
                for (body, samples, max_t) in reqs {
                    ctx.send_with_backoff(body, samples, max_t).await;
                }
            });
        }
        while set.join_next().await.is_some() {}
    }

    /// Encodes a shard's samples into requests of at most `max_samples_per_send` samples,
    /// keeping each series' samples in WAL order. Returns (snappy body, samples, max t).
    fn build_requests(&self, shard: Vec<Pending>) -> Vec<(Vec<u8>, usize, i64)> {
        let max = self.cfg.queue_config.max_samples_per_send;
        let mut out = Vec::new();
        for chunk in shard.chunks(max) {
            let mut idx: HashMap<u64, usize> = HashMap::new();
            let mut series: Vec<(Labels, Vec<Sample>)> = Vec::new();
            let mut max_t = i64::MIN;
            for p in chunk {
                let Some(Some(l)) = self.series.get(&p.r) else {
                    continue;
                };
                let i = *idx.entry(p.r).or_insert_with(|| {
                    series.push(((**l).clone(), Vec::new()));
                    series.len() - 1
                });
                series[i].1.push(Sample { t: p.t, v: p.v });
                max_t = max_t.max(p.t);
            }
            let raw = match self.protocol {
                Protocol::V1 => encode_v1(&series),
                Protocol::V2 => encode_v2(&series),
            };
            out.push((compress_snappy(&raw), chunk.len(), max_t));
        }
        out
    }
}

/// What a shard needs to send, owned so shards run as separate tasks.
struct SendCtx {
    client: reqwest::Client,
    http: HttpClientConfig,
    url: reqwest::Url,
    headers: BTreeMap<String, String>,
    protocol: Protocol,
    q: QueueConfig,
    m: Arc<QueueMetrics>,
}

impl SendCtx {
    async fn send_with_backoff(&self, body: Vec<u8>, samples: usize, max_t: i64) {
        let mut backoff = self.q.min_backoff.0;
        loop {
            let t0 = Instant::now();
            let r = self.send_once(&body).await;
            self.observe(t0.elapsed().as_secs_f64());
            match r {
                Ok(()) => {
                    self.m
                        .samples_total
                        .fetch_add(samples as u64, Ordering::Relaxed);
                    self.m
                        .bytes_total
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    if max_t >= 0 {
                        self.m
                            .highest_sent_ms
                            .fetch_max(max_t as u64, Ordering::Relaxed);
                    }
                    return;
                }
                Err(SendError::Fatal(e)) => {
                    tracing::error!(url = %self.url, samples, error = %e, "remote write: non-recoverable error, dropping the batch");
                    self.m
                        .samples_failed
                        .fetch_add(samples as u64, Ordering::Relaxed);
                    return;
                }
                Err(SendError::Recoverable(e)) => {
                    tracing::warn!(url = %self.url, samples, error = %e, backoff_ms = backoff.as_millis() as u64, "remote write: recoverable error, retrying");
                    self.m
                        .samples_retried
                        .fetch_add(samples as u64, Ordering::Relaxed);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.q.max_backoff.0);
                }
            }
        }
    }

    fn observe(&self, secs: f64) {
        let mut d = self.m.durations.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| secs <= *b) {
            d.0[i] += 1;
        }
        d.1 += 1;
        d.2 += secs;
    }

    async fn send_once(&self, body: &[u8]) -> Result<(), SendError> {
        let (client, url) = self
            .http
            .client_for(&self.client, &self.url)
            .await
            .map_err(SendError::Recoverable)?;
        let (ctype, version) = match self.protocol {
            Protocol::V1 => ("application/x-protobuf", "0.1.0"),
            Protocol::V2 => (
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                "2.0.0",
            ),
        };
        let mut req = client
            .post(url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", ctype)
            .header("X-Prometheus-Remote-Write-Version", version)
            .header(
                "User-Agent",
                format!("Sextant/{}", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        match self.http.auth_header() {
            Ok(Some(h)) => req = req.header(reqwest::header::AUTHORIZATION, h),
            Ok(None) => {}
            Err(e) => return Err(SendError::Recoverable(e)),
        }
        let resp = req
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| SendError::Recoverable(e.to_string()))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let msg = format!(
            "server returned HTTP status {status}: {}",
            text.chars().take(256).collect::<String>()
        );
        if status.is_server_error() || (status.as_u16() == 429 && self.q.retry_on_http_429) {
            Err(SendError::Recoverable(msg))
        } else {
            Err(SendError::Fatal(msg))
        }
    }
}

/// Paths that read stored data, refused in agent mode.
const AGENT_REFUSED: [&str; 10] = [
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/series",
    "/api/v1/labels",
    "/api/v1/label/",
    "/api/v1/query_exemplars",
    "/api/v1/read",
    "/api/v1/export",
    "/api/v1/rules",
    "/federate",
];

/// Agent mode middleware: query endpoints answer 422 with Prometheus' error JSON, as
/// Prometheus does in `--agent` mode ("unavailable with Prometheus Agent").
pub async fn agent_guard(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path();
    let refused = AGENT_REFUSED.iter().any(|p| {
        if p.ends_with('/') {
            path.starts_with(p)
        } else {
            path == *p
        }
    });
    if refused {
        let body = serde_json::json!({
            "status": "error",
            "errorType": "execution",
            "error": "unavailable with Sextant in agent mode (sextant serve --agent): it stores nothing to query; query the remote_write receiver instead",
        });
        return axum::response::IntoResponse::into_response((
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        ));
    }
    next.run(req).await
}
