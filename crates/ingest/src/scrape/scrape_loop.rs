//! One scrape loop per target: fetch over HTTP with Prometheus' headers and limits, parse,
//! attach target labels, apply metric relabeling and limits, write staleness markers for
//! series that vanished, and store the samples plus the synthetic `up`,
//! `scrape_duration_seconds`, `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling`
//! and `scrape_series_added` series. Any failure (timeout, HTTP error, garbage, oversized body,
//! a limit) fails only this scrape of this target: `up` is 0 and the error is recorded.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sextant_model::{Exemplar, Labels, Metadata, Sample, STALE_NAN};
use tokio::sync::oneshot;

use super::config::ScrapeConfig;
use super::http_client::HttpClientConfig;
use super::target::{mutate_sample_labels, report_labels, Target};
use crate::remote_write::{SeriesSamples, WriteBatch};
use crate::text::TextBatch;
use crate::Sink;

/// Prometheus' Accept header: OpenMetrics first, then the text format.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Health of a target as `/api/v1/targets` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Health {
    #[default]
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// Outcome of the last scrape of a target.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetHealth {
    pub health: Health,
    pub last_error: String,
    /// Start of the last scrape (Unix ms); `None` before the first.
    pub last_scrape_ms: Option<i64>,
    /// Seconds the last scrape took.
    pub last_duration: f64,
}

/// What every loop of a pool shares.
pub(crate) struct PoolContext {
    pub cfg: Arc<ScrapeConfig>,
    /// The targets' client settings (from `cfg`).
    pub http: HttpClientConfig,
    pub client: reqwest::Client,
    pub sink: Arc<dyn Sink>,
}

/// Parses a scrape body, choosing the parser by Content-Type like Prometheus (see
/// [`crate::text::parse_exposition`]): OpenMetrics bodies go through the OpenMetrics parser
/// (seconds timestamps, exemplars), minus the `_created` series of counters, histograms and
/// summaries, which Prometheus does not store as samples either.
pub fn parse_exposition(
    body: &str,
    content_type: &str,
    default_ts: i64,
) -> Result<TextBatch, crate::text::ParseError> {
    let format = crate::text::exposition_format(Some(content_type))?;
    let mut batch = match format {
        crate::text::ExpositionFormat::Text => crate::text::parse_text(body, default_ts)?,
        crate::text::ExpositionFormat::OpenMetrics => {
            crate::text::openmetrics::parse_openmetrics(body, default_ts)?
        }
    };
    if format == crate::text::ExpositionFormat::OpenMetrics {
        use sextant_model::MetricType;
        let created_of: HashSet<String> = batch
            .metadata
            .iter()
            .filter(|m| {
                matches!(
                    m.kind,
                    MetricType::Counter | MetricType::Histogram | MetricType::Summary
                )
            })
            .map(|m| format!("{}_created", m.metric_family))
            .collect();
        if !created_of.is_empty() {
            batch
                .samples
                .retain(|(l, _)| !l.metric_name().is_some_and(|n| created_of.contains(n)));
        }
    }
    Ok(batch)
}

/// The clients of a scrape pool: one for its targets, one per `http_sd_configs` entry.
pub struct PoolClients {
    pub scrape: reqwest::Client,
    pub http_sd: Vec<reqwest::Client>,
}

/// Builds a scrape pool's HTTP clients from its settings (reads the TLS files).
pub fn build_clients(cfg: &ScrapeConfig) -> Result<PoolClients, String> {
    let http_sd = cfg
        .http_sd_configs
        .iter()
        .enumerate()
        .map(|(i, h)| {
            h.http_client()
                .build()
                .map_err(|e| format!("http_sd_configs[{i}]: {e}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(PoolClients {
        scrape: cfg.http_client().build()?,
        http_sd,
    })
}

/// Fetches the body (decompressed) and its Content-Type, within the target's timeout.
async fn fetch(ctx: &PoolContext, target: &Target) -> Result<(Vec<u8>, String), String> {
    let limit = ctx.cfg.body_limit();
    let url_text = target.url.to_string();
    let work = async {
        let req = ctx
            .http
            .get(&ctx.client, &target.url, None)
            .await?
            .header(reqwest::header::ACCEPT, ACCEPT_HEADER)
            .header(reqwest::header::ACCEPT_ENCODING, "gzip")
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                target.timeout.as_secs_f64().to_string(),
            );
        let mut resp = req
            .send()
            .await
            .map_err(|e| format!("Get {url_text:?}: {}", cause(&e)))?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(format!("server returned HTTP status {}", resp.status()));
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let gzip = header(reqwest::header::CONTENT_ENCODING).eq_ignore_ascii_case("gzip");
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("reading the body: {}", cause(&e)))?
        {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(format!("body size limit exceeded (limit {limit} bytes)"));
            }
            body.extend_from_slice(&chunk);
        }
        if gzip {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("decompressing the gzip body: {e}"))?;
            if out.len() as u64 > limit {
                return Err(format!("body size limit exceeded (limit {limit} bytes)"));
            }
            body = out;
        }
        Ok((body, content_type))
    };
    match tokio::time::timeout(target.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("Get {url_text:?}: context deadline exceeded")),
    }
}

/// The innermost cause of a client error ("Connection refused (os error 111)"), which is what
/// a reader of `lastError` needs; reqwest's outer layers repeat the URL.
fn cause(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        last = c.to_string();
        src = c.source();
    }
    last
}

const NO_TIMESTAMP: i64 = i64::MIN;

/// Hasher for maps keyed by [`Labels::stable_hash`]: the key is already a good hash.
#[derive(Default)]
pub struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Series of a scrape by label hash, like Prometheus' `seriesCur`/`seriesPrev`.
pub type SeriesSet = HashMap<u64, Labels, BuildHasherDefault<IdentityHasher>>;

/// The series of one scrape after labels, relabeling and limits.
#[derive(Debug, Default)]
pub struct Processed {
    pub samples: Vec<(Labels, Sample)>,
    /// OpenMetrics exemplars with the index in `samples` of the sample they came with.
    pub exemplars: Vec<(usize, Exemplar)>,
    pub metadata: Vec<Metadata>,
    /// Samples in the body.
    pub scraped: usize,
    /// Series tracked for staleness (those without explicit timestamps).
    pub seen: SeriesSet,
}

/// Turns a body into stored series for `target`. Errors fail the whole scrape.
pub fn process_body(
    body: &[u8],
    content_type: &str,
    ts: i64,
    target: &Target,
    cfg: &ScrapeConfig,
) -> Result<Processed, (String, usize)> {
    let text = std::str::from_utf8(body).map_err(|e| (format!("body is not UTF-8: {e}"), 0))?;
    // Parse with a sentinel default timestamp to tell explicit timestamps apart.
    let parsed =
        parse_exposition(text, content_type, NO_TIMESTAMP).map_err(|e| (e.to_string(), 0))?;
    let scraped = parsed.samples.len();
    let mut out = Processed {
        scraped,
        metadata: parsed.metadata,
        ..Default::default()
    };
    let mut exemplars = parsed.exemplars.into_iter().peekable();
    for (n, (labels, mut s)) in parsed.samples.into_iter().enumerate() {
        // This sample's exemplars; they are dropped with it if relabeling drops it.
        let mut own = Vec::new();
        while let Some(e) = exemplars.next_if(|e| e.sample <= n) {
            own.push(e);
        }
        let explicit_ts = s.t != NO_TIMESTAMP;
        if !explicit_ts || !cfg.honor_timestamps {
            s.t = ts;
        }
        let Some(l) = mutate_sample_labels(
            labels,
            &target.public,
            cfg.honor_labels,
            &cfg.metric_relabel_configs,
        ) else {
            continue;
        };
        check_label_limits(&l, cfg).map_err(|e| (e, scraped))?;
        if let Err(e) = l.validate() {
            return Err((format!("invalid metric name or label names: {e}"), scraped));
        }
        if cfg.sample_limit > 0 && out.samples.len() as u64 >= cfg.sample_limit {
            return Err((
                format!("sample limit exceeded (limit {})", cfg.sample_limit),
                scraped,
            ));
        }
        if !(explicit_ts && cfg.honor_timestamps) {
            out.seen.insert(l.stable_hash(), l.clone());
        }
        let i = out.samples.len();
        // Like Prometheus, an exemplar without a timestamp gets its sample's.
        out.exemplars.extend(own.into_iter().map(|e| {
            (
                i,
                Exemplar {
                    labels: e.labels,
                    value: e.value,
                    ts: e.timestamp.unwrap_or(s.t),
                },
            )
        }));
        out.samples.push((l, s));
    }
    Ok(out)
}

fn check_label_limits(l: &Labels, cfg: &ScrapeConfig) -> Result<(), String> {
    if cfg.label_limit == 0 && cfg.label_name_length_limit == 0 && cfg.label_value_length_limit == 0
    {
        return Ok(());
    }
    let metric: String = l.metric_name().unwrap_or("").chars().take(50).collect();
    if cfg.label_limit > 0 && l.len() as u64 > cfg.label_limit {
        return Err(format!(
            "label_limit exceeded (metric: {metric}, number of labels: {}, limit: {})",
            l.len(),
            cfg.label_limit
        ));
    }
    for lab in l.iter() {
        if cfg.label_name_length_limit > 0 && lab.name.len() as u64 > cfg.label_name_length_limit {
            let name: String = lab.name.chars().take(50).collect();
            return Err(format!(
                "label_name_length_limit exceeded (metric: {metric}, label name: {name}, length: {}, limit: {})",
                lab.name.len(),
                cfg.label_name_length_limit
            ));
        }
        if cfg.label_value_length_limit > 0 && lab.value.len() as u64 > cfg.label_value_length_limit
        {
            let name: String = lab.name.chars().take(50).collect();
            return Err(format!(
                "label_value_length_limit exceeded (metric: {metric}, label name: {name}, value: {:.50}, length: {}, limit: {})",
                lab.value,
                lab.value.len(),
                cfg.label_value_length_limit
            ));
        }
    }
    Ok(())
}

/// The names of the synthetic per-scrape series.
pub const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// State carried from one scrape of a target to the next.
#[derive(Default)]
pub struct LoopState {
    /// Series of the previous successful scrape (for staleness and `scrape_series_added`).
    pub prev: SeriesSet,
}

/// Runs one scrape at `ts` (ms) and builds the batch to store: samples, staleness markers and
/// report series. Returns the batch and the error if the scrape failed.
pub(crate) async fn scrape_once(
    ctx: &PoolContext,
    target: &Target,
    state: &mut LoopState,
    ts: i64,
) -> (WriteBatch, Option<String>, f64) {
    let t0 = Instant::now();
    let fetched = fetch(ctx, target).await;
    let result = match fetched {
        Ok((body, ct)) => process_body(&body, &ct, ts, target, &ctx.cfg),
        Err(e) => Err((e, 0)),
    };
    let duration = t0.elapsed().as_secs_f64();
    let (batch, err) = assemble(result, ts, duration, target, state);
    (batch, err, duration)
}

/// Staleness markers, report series and the new state for a scrape result.
pub fn assemble(
    result: Result<Processed, (String, usize)>,
    ts: i64,
    duration: f64,
    target: &Target,
    state: &mut LoopState,
) -> (WriteBatch, Option<String>) {
    let mut samples: Vec<(Labels, Sample)>;
    let mut exemplars = Vec::new();
    let mut metadata = Vec::new();
    let (up, scraped, post, added, err) = match result {
        Ok(p) => {
            let added = p
                .seen
                .keys()
                .filter(|h| !state.prev.contains_key(*h))
                .count();
            let post = p.samples.len();
            samples = p.samples;
            exemplars = p.exemplars;
            metadata = p.metadata;
            for (h, gone) in state.prev.iter() {
                if !p.seen.contains_key(h) {
                    samples.push((gone.clone(), Sample::new(ts, STALE_NAN)));
                }
            }
            state.prev = p.seen;
            (1.0, p.scraped, post, added, None)
        }
        Err((e, scraped)) => {
            samples = state
                .prev
                .drain()
                .map(|(_, gone)| (gone, Sample::new(ts, STALE_NAN)))
                .collect();
            (0.0, scraped, 0, 0, Some(e))
        }
    };
    let report = [up, duration, scraped as f64, post as f64, added as f64];
    for (name, v) in REPORT_SERIES.iter().zip(report) {
        samples.push((report_labels(name, &target.public), Sample::new(ts, v)));
    }
    let mut batch = batch_of(samples, metadata);
    for (i, e) in exemplars {
        if let Some(s) = batch.series.get_mut(i) {
            s.exemplars.push(e);
        }
    }
    (batch, err)
}

/// One series entry per sample, in order. A scrape has each series once (a duplicate is
/// refused by storage as a duplicate sample, as in Prometheus), so no grouping pass is needed.
fn batch_of(samples: Vec<(Labels, Sample)>, metadata: Vec<Metadata>) -> WriteBatch {
    WriteBatch {
        series: samples
            .into_iter()
            .map(|(labels, s)| SeriesSamples {
                labels,
                samples: vec![s],
                histograms: Vec::new(),
                exemplars: Vec::new(),
            })
            .collect(),
        metadata,
        rejected: Vec::new(),
    }
}

/// Staleness markers for everything a target wrote, when its loop ends.
pub fn end_of_run_batch(target: &Target, state: &mut LoopState, ts: i64) -> WriteBatch {
    let mut samples: Vec<(Labels, Sample)> = state
        .prev
        .drain()
        .map(|(_, gone)| (gone, Sample::new(ts, STALE_NAN)))
        .collect();
    for name in REPORT_SERIES {
        samples.push((
            report_labels(name, &target.public),
            Sample::new(ts, STALE_NAN),
        ));
    }
    batch_of(samples, Vec::new())
}

async fn store(sink: &Arc<dyn Sink>, batch: WriteBatch, target: &Target) {
    let sink = sink.clone();
    let url = target.url.to_string();
    match tokio::task::spawn_blocking(move || sink.store(batch)).await {
        Ok(Ok(stored)) => {
            if stored.problems > 0 {
                tracing::debug!(target = %url, problems = stored.problems, first = ?stored.first_problem, "some scraped samples were not stored");
            }
        }
        Ok(Err(e)) => tracing::warn!(target = %url, error = %e, "storing scraped samples failed"),
        Err(e) if e.is_cancelled() => {
            tracing::debug!(target = %url, "storing scraped samples cancelled (shutting down)")
        }
        Err(e) => tracing::warn!(target = %url, error = %e, "storing scraped samples panicked"),
    }
}

/// First scrape time: the next instant (Unix ms) whose offset within the interval matches the
/// target's hash, like Prometheus' per-target jitter.
pub fn first_scrape_ms(now_ms: i64, interval_ms: i64, hash: u64) -> i64 {
    let interval_ms = interval_ms.max(1);
    let offset = (hash % interval_ms as u64) as i64;
    let base = now_ms - now_ms.rem_euclid(interval_ms);
    let mut next = base + offset;
    if next < now_ms {
        next += interval_ms;
    }
    next
}

/// Runs the loop of one target until `stop` fires; then writes end-of-run staleness markers.
pub(crate) async fn run(
    ctx: Arc<PoolContext>,
    target: Target,
    status: Arc<Mutex<TargetHealth>>,
    metadata: Arc<Mutex<Arc<Vec<Metadata>>>>,
    mut stop: oneshot::Receiver<()>,
) {
    let interval_ms = target.interval.as_millis().max(1) as i64;
    let mut next = first_scrape_ms(
        sextant_model::time::now_ms(),
        interval_ms,
        target.offset_hash(),
    );
    let mut state = LoopState::default();
    loop {
        let wait = (next - sextant_model::time::now_ms()).max(0) as u64;
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
        let ts = sextant_model::time::now_ms();
        let (batch, err, duration) = tokio::select! {
            r = scrape_once(&ctx, &target, &mut state, ts) => r,
            _ = &mut stop => break,
        };
        if err.is_none() && !batch.metadata.is_empty() {
            let md = Arc::new(batch.metadata.clone());
            *metadata.lock().unwrap_or_else(|e| e.into_inner()) = md;
        }
        store(&ctx.sink, batch, &target).await;
        {
            let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
            st.last_scrape_ms = Some(ts);
            st.last_duration = duration;
            match err {
                None => {
                    st.health = Health::Up;
                    st.last_error.clear();
                }
                Some(e) => {
                    tracing::debug!(target = %target.url, error = %e, "scrape failed");
                    st.health = Health::Down;
                    st.last_error = e;
                }
            }
        }
        next += interval_ms;
        let now = sextant_model::time::now_ms();
        if next <= now {
            // Fell behind (slow storage, suspended process): skip to the next slot.
            next += ((now - next) / interval_ms + 1) * interval_ms;
        }
    }
    let batch = end_of_run_batch(&target, &mut state, sextant_model::time::now_ms());
    store(&ctx.sink, batch, &target).await;
}

#[cfg(test)]
mod tests;
