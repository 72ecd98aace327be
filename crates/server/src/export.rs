//! `GET/POST /api/v1/export`: bulk export of stored series in the formats other tools read —
//! VictoriaMetrics' JSON lines (the default, so `vmctl` and VM's `/api/v1/import` take it), one
//! JSON document, CSV, OpenMetrics text and InfluxDB line protocol.
//!
//! The export streams: matching series are selected lazily (labels and chunk references only),
//! then a blocking task decodes and encodes one series at a time into a small buffer that is
//! handed to the response body through a bounded channel. Memory is therefore bounded by one
//! series' samples plus a few buffers, however large the export. Every format is re-importable
//! through the matching import endpoint (see docs/export.md). With remote engines configured
//! (docs/scale-out.md) the export reads through them too: their series are fetched whole (that
//! is how remote engines answer) and merged with the local ones series by series.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use sextant_model::histogram::{FloatHistogram, Histogram, Span};
use sextant_model::{is_stale_nan, HistogramValue, Labels, Sample, METRIC_NAME};
use sextant_tsdb::querier::{LazySeries, SeriesData};

use crate::api::ApiError;
use crate::params::Params;
use crate::query::format_float;
use crate::AppState;

/// Bytes collected before a chunk is handed to the response body.
const CHUNK: usize = 64 * 1024;
/// Chunks that may wait in the channel for a slow client.
const CHANNEL_DEPTH: usize = 4;
/// At most this many steps per series with `step` (the same bound as Prometheus' range queries
/// times 100: exports are meant to be large, but a typo like `step=1ms` over a year is not).
const MAX_STEPS: i64 = 1_100_000;

/// An export format (`format=` parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Json,
    Csv,
    OpenMetrics,
    Influx,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" | "jsonl" => Format::Jsonl,
            "json" => Format::Json,
            "csv" => Format::Csv,
            "openmetrics" => Format::OpenMetrics,
            "influx" => Format::Influx,
            _ => return None,
        })
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/stream+json",
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Influx => "text/plain; charset=utf-8",
        }
    }
}

/// `GET/POST /api/v1/export`.
pub async fn export(State(st): State<Arc<AppState>>, p: Params) -> Response {
    match prepare(&st, &p).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

struct Plan {
    format: Format,
    start: i64,
    end: i64,
    step: Option<i64>,
    lookback: i64,
}

async fn prepare(st: &Arc<AppState>, p: &Params) -> Result<Response, ApiError> {
    let format = Format::parse(p.get("format").unwrap_or("")).ok_or_else(|| {
        ApiError::bad_data(format!(
            "invalid parameter \"format\": {:?} is not one of jsonl, json, csv, openmetrics, influx",
            p.get("format").unwrap_or_default()
        ))
    })?;
    let sets = p.required_matchers()?;
    let (start, end) = p.range()?;
    let step = crate::query::duration_param(p, "step")?;
    if let Some(step) = step {
        if step <= 0 {
            return Err(ApiError::bad_data(
                "invalid parameter \"step\": zero or negative step is not accepted",
            ));
        }
        if p.get("start").is_none() || p.get("end").is_none() {
            return Err(ApiError::bad_data(
                "\"step\" needs both \"start\" and \"end\"",
            ));
        }
        if (end - start) / step >= MAX_STEPS {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"step\": more than {MAX_STEPS} steps per series; use a larger step"
            )));
        }
    }
    let lookback = st.query_limits.lookback.as_millis() as i64;
    let plan = Plan {
        format,
        start,
        end,
        step,
        lookback,
    };
    let read_min = match step {
        Some(_) => start.saturating_sub(lookback),
        None => start,
    };
    let st2 = Arc::clone(st);
    let (series, warnings) =
        tokio::task::spawn_blocking(move || -> Result<(Vec<Source>, Vec<String>), ApiError> {
            let q = st2.db.querier();
            let fan = st2.remote().map(|engines| {
                sextant_remote::Fanout::new(
                    Box::new(crate::query::TsdbSource(st2.db.querier())),
                    engines,
                )
            });
            let read_local = fan.as_ref().is_none_or(|f| f.reads_local());
            let mut local = Vec::new();
            let mut remote = Vec::new();
            for ms in &sets {
                if read_local {
                    local.extend(
                        q.select_lazy(ms, read_min, end)
                            .map_err(|e| ApiError::internal(e.to_string()))?,
                    );
                }
                if let Some(f) = &fan {
                    remote = sextant_remote::merge(remote, f.select_remote(ms, read_min, end));
                }
            }
            local.sort_by(|a, b| a.labels.cmp(&b.labels));
            local.dedup_by(|a, b| a.labels == b.labels);
            let warnings = fan.map(|f| f.take_warnings()).unwrap_or_default();
            Ok((Source::join(local, remote), warnings))
        })
        .await
        .map_err(|e| ApiError::internal(format!("export failed: {e}")))??;

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || produce(plan, series, read_min, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = (
        [(CONTENT_TYPE, format.content_type())],
        Body::from_stream(stream),
    )
        .into_response();
    // A remote engine that failed leaves a partial export: say so in a header (the body is a
    // data format with no room for warnings), as the query API says so in `warnings`.
    for w in warnings {
        tracing::warn!(warning = %w, "export is partial");
        let w: String = w
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if let Ok(v) = axum::http::HeaderValue::from_str(&w) {
            resp.headers_mut().append(WARNING_HEADER, v);
        }
    }
    Ok(resp)
}

/// Response header carrying each remote engine's warning of a partial export.
pub const WARNING_HEADER: &str = "x-sextant-warning";

/// One exported series: local storage's (read lazily), a remote engine's (already fetched),
/// or both merged (local first on equal timestamps, as the query fanout merges).
struct Source {
    labels: Labels,
    local: Option<LazySeries>,
    remote: Option<sextant_promql::SeriesData>,
}

impl Source {
    /// Both lists sorted by labels, joined by labels.
    fn join(local: Vec<LazySeries>, remote: Vec<sextant_promql::SeriesData>) -> Vec<Source> {
        let mut out = Vec::with_capacity(local.len().max(remote.len()));
        let mut l = local.into_iter().peekable();
        let mut r = remote.into_iter().peekable();
        loop {
            let ord = match (l.peek(), r.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(a), Some(b)) => a.labels.cmp(&b.labels),
            };
            let (local, remote) = match ord {
                std::cmp::Ordering::Less => (l.next(), None),
                std::cmp::Ordering::Greater => (None, r.next()),
                std::cmp::Ordering::Equal => (l.next(), r.next()),
            };
            let labels = match (&local, &remote) {
                (Some(s), _) => s.labels.clone(),
                (None, Some(s)) => s.labels.clone(),
                (None, None) => break,
            };
            out.push(Source {
                labels,
                local,
                remote,
            });
        }
        out
    }

    /// Reads the samples in `[mint, maxt]` into `out`.
    fn read(&self, mint: i64, maxt: i64, out: &mut SeriesData) -> Result<(), String> {
        out.floats.clear();
        out.histograms.clear();
        if let Some(l) = &self.local {
            l.read(mint, maxt, out).map_err(|e| e.to_string())?;
        }
        let Some(r) = &self.remote else {
            return Ok(());
        };
        let had_local = !out.floats.is_empty() || !out.histograms.is_empty();
        out.floats.extend(
            r.floats
                .iter()
                .filter(|p| p.t >= mint && p.t <= maxt)
                .copied(),
        );
        out.histograms.extend(
            r.histograms
                .iter()
                .filter(|p| p.0 >= mint && p.0 <= maxt)
                .cloned(),
        );
        if had_local {
            // Stable sorts: local samples stay first on equal timestamps.
            out.floats.sort_by_key(|p| p.t);
            out.floats.dedup_by_key(|p| p.t);
            out.histograms.sort_by_key(|p| p.0);
            out.histograms.dedup_by_key(|p| p.0);
        }
        Ok(())
    }
}

/// Encodes series by series and sends full chunks; stops early when the client went away.
fn produce(
    plan: Plan,
    series: Vec<Source>,
    read_min: i64,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let mut enc = Encoder::new(plan.format);
    enc.begin(series.iter().map(|s| &s.labels));
    let mut data = SeriesData {
        labels: Labels::default(),
        floats: Vec::new(),
        histograms: Vec::new(),
    };
    let mut floats = Vec::new();
    let mut hists = Vec::new();
    for s in &series {
        if let Err(e) = s.read(read_min, plan.end, &mut data) {
            tracing::warn!(error = %e, "export aborted");
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
            return;
        }
        floats.clear();
        hists.clear();
        match plan.step {
            None => {
                floats.extend(data.floats.iter().filter(|s| !is_stale_nan(s.v)).copied());
                hists.append(&mut data.histograms);
            }
            Some(step) => sample_steps(&data, &plan, step, &mut floats, &mut hists),
        }
        enc.series(&s.labels, &floats, &hists);
        if enc.buf.len() >= CHUNK {
            let chunk = Bytes::from(std::mem::take(&mut enc.buf));
            if tx.blocking_send(Ok(chunk)).is_err() {
                return; // client disconnected
            }
            enc.buf.reserve(CHUNK * 2);
        }
    }
    enc.end();
    if !enc.buf.is_empty() {
        let _ = tx.blocking_send(Ok(Bytes::from(enc.buf)));
    }
}

/// Values at `start, start+step, …, end`: the latest sample in `(t - lookback, t]`, as PromQL
/// selects an instant vector; a staleness marker there means no value.
fn sample_steps(
    data: &SeriesData,
    plan: &Plan,
    step: i64,
    floats: &mut Vec<Sample>,
    hists: &mut Vec<(i64, HistogramValue)>,
) {
    let (mut fi, mut hi) = (0usize, 0usize);
    let mut t = plan.start;
    while t <= plan.end {
        while fi < data.floats.len() && data.floats[fi].t <= t {
            fi += 1;
        }
        while hi < data.histograms.len() && data.histograms[hi].0 <= t {
            hi += 1;
        }
        let f = fi.checked_sub(1).map(|i| data.floats[i]);
        let h = hi.checked_sub(1).map(|i| &data.histograms[i]);
        // The later of the two wins when a series switched between floats and histograms.
        let f_ok = f.filter(|s| s.t > t - plan.lookback);
        let h_ok = h.filter(|(ht, _)| *ht > t - plan.lookback);
        match (f_ok, h_ok) {
            (Some(s), Some((ht, hv))) if *ht > s.t => hists.push((t, hv.clone())),
            (Some(s), _) if !is_stale_nan(s.v) => floats.push(Sample { t, v: s.v }),
            (None, Some((_, hv))) => hists.push((t, hv.clone())),
            _ => {}
        }
        match t.checked_add(step) {
            Some(n) => t = n,
            None => break,
        }
    }
}

/// Formats series into `buf`; the caller drains `buf` in chunks.
struct Encoder {
    format: Format,
    buf: Vec<u8>,
    /// `json`: whether a series was written (for the separating comma).
    any: bool,
    /// `csv`: the label columns of the header, in order.
    columns: Vec<String>,
}

impl Encoder {
    fn new(format: Format) -> Self {
        Encoder {
            format,
            buf: Vec::with_capacity(CHUNK * 2),
            any: false,
            columns: Vec::new(),
        }
    }

    fn begin<'a>(&mut self, labels: impl Iterator<Item = &'a Labels>) {
        match self.format {
            Format::Json => self.buf.extend_from_slice(b"[\n"),
            Format::Csv => {
                let mut names = std::collections::BTreeSet::new();
                for ls in labels {
                    for l in ls.iter() {
                        if l.name != METRIC_NAME {
                            names.insert(l.name.clone());
                        }
                    }
                }
                self.columns = names.into_iter().collect();
                self.buf.extend_from_slice(METRIC_NAME.as_bytes());
                for c in &self.columns {
                    self.buf.push(b',');
                    csv_cell(&mut self.buf, c);
                }
                self.buf.extend_from_slice(b",__timestamp__,__value__\n");
            }
            _ => {}
        }
    }

    fn end(&mut self) {
        match self.format {
            Format::Json => self.buf.extend_from_slice(b"]\n"),
            Format::OpenMetrics => self.buf.extend_from_slice(b"# EOF\n"),
            _ => {}
        }
    }

    fn series(&mut self, labels: &Labels, floats: &[Sample], hists: &[(i64, HistogramValue)]) {
        match self.format {
            Format::Jsonl | Format::Json => {
                if !floats.is_empty() {
                    self.json_sep();
                    json_floats(&mut self.buf, labels, floats);
                }
                if !hists.is_empty() {
                    self.json_sep();
                    json_hists(&mut self.buf, labels, hists);
                }
            }
            Format::Csv => self.csv(labels, floats),
            Format::OpenMetrics => openmetrics(&mut self.buf, labels, floats),
            Format::Influx => influx(&mut self.buf, labels, floats),
        }
    }

    fn json_sep(&mut self) {
        if self.format == Format::Json && self.any {
            self.buf.push(b',');
        }
        self.any = true;
    }

    fn csv(&mut self, labels: &Labels, floats: &[Sample]) {
        if floats.is_empty() {
            return;
        }
        // The label part of the row is the same for every sample of the series.
        let mut prefix = Vec::new();
        csv_cell(&mut prefix, labels.get(METRIC_NAME).unwrap_or(""));
        for c in &self.columns {
            prefix.push(b',');
            csv_cell(&mut prefix, labels.get(c).unwrap_or(""));
        }
        for s in floats {
            self.buf.extend_from_slice(&prefix);
            self.buf.push(b',');
            push_i64(&mut self.buf, s.t);
            self.buf.push(b',');
            push_float(&mut self.buf, s.v);
            self.buf.push(b'\n');
        }
    }
}

fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn push_i64(buf: &mut Vec<u8>, n: i64) {
    if n < 0 {
        buf.push(b'-');
    }
    push_u64(buf, n.unsigned_abs());
}

/// Appends `format_float(v)`; integral values (counters, the common case) skip the float
/// formatter and its allocation.
fn push_float(buf: &mut Vec<u8>, v: f64) {
    let a = v.abs();
    if (1.0..1e15).contains(&a) && v.fract() == 0.0 {
        if v < 0.0 {
            buf.push(b'-');
        }
        push_u64(buf, a as u64);
    } else {
        buf.extend_from_slice(format_float(v).as_bytes());
    }
}

fn json_str(buf: &mut Vec<u8>, s: &str) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

fn json_metric(buf: &mut Vec<u8>, labels: &Labels) {
    buf.extend_from_slice(b"{\"metric\":{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        json_str(buf, &l.name);
        buf.push(b':');
        json_str(buf, &l.value);
    }
    buf.extend_from_slice(b"}");
}

/// A float as a JSON value: a number when finite, else the Prometheus strings.
fn json_f64(buf: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        push_float(buf, v);
    } else {
        buf.push(b'"');
        buf.extend_from_slice(format_float(v).as_bytes());
        buf.push(b'"');
    }
}

fn json_timestamps<I: Iterator<Item = i64>>(buf: &mut Vec<u8>, ts: I) {
    buf.extend_from_slice(b",\"timestamps\":[");
    for (i, t) in ts.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        push_i64(buf, t);
    }
    buf.extend_from_slice(b"]}");
}

/// `{"metric":{…},"values":[…],"timestamps":[…]}` — VictoriaMetrics' export line.
fn json_floats(buf: &mut Vec<u8>, labels: &Labels, floats: &[Sample]) {
    json_metric(buf, labels);
    buf.extend_from_slice(b",\"values\":[");
    for (i, s) in floats.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        json_f64(buf, s.v);
    }
    buf.push(b']');
    json_timestamps(buf, floats.iter().map(|s| s.t));
    buf.push(b'\n');
}

/// `{"metric":{…},"histograms":[…],"timestamps":[…]}` — Sextant's extension for native
/// histograms, with the fields of the remote-write `Histogram` message.
fn json_hists(buf: &mut Vec<u8>, labels: &Labels, hists: &[(i64, HistogramValue)]) {
    json_metric(buf, labels);
    buf.extend_from_slice(b",\"histograms\":[");
    for (i, (_, h)) in hists.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let v = match h {
            HistogramValue::Int(h) => int_hist_json(h),
            HistogramValue::Float(h) => float_hist_json(h),
        };
        let _ = serde_json::to_writer(&mut *buf, &v);
    }
    buf.push(b']');
    json_timestamps(buf, hists.iter().map(|(t, _)| *t));
    buf.push(b'\n');
}

fn f64_json(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::Number::from_f64(v)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    } else {
        serde_json::Value::String(format_float(v))
    }
}

fn spans_json(s: &[Span]) -> serde_json::Value {
    s.iter()
        .map(|s| serde_json::json!({"offset": s.offset, "length": s.length}))
        .collect()
}

fn int_hist_json(h: &Histogram) -> serde_json::Value {
    serde_json::json!({
        "count": h.count,
        "sum": f64_json(h.sum),
        "schema": h.schema,
        "zero_threshold": f64_json(h.zero_threshold),
        "zero_count": h.zero_count,
        "negative_spans": spans_json(&h.negative_spans),
        "negative_deltas": h.negative_buckets,
        "positive_spans": spans_json(&h.positive_spans),
        "positive_deltas": h.positive_buckets,
        "reset_hint": h.counter_reset_hint as u8,
        "custom_values": h.custom_values.iter().map(|v| f64_json(*v)).collect::<Vec<_>>(),
    })
}

fn float_hist_json(h: &FloatHistogram) -> serde_json::Value {
    let fl = |v: &[f64]| v.iter().map(|v| f64_json(*v)).collect::<Vec<_>>();
    serde_json::json!({
        "count": f64_json(h.count),
        "sum": f64_json(h.sum),
        "schema": h.schema,
        "zero_threshold": f64_json(h.zero_threshold),
        "zero_count": f64_json(h.zero_count),
        "negative_spans": spans_json(&h.negative_spans),
        "negative_counts": fl(&h.negative_buckets),
        "positive_spans": spans_json(&h.positive_spans),
        "positive_counts": fl(&h.positive_buckets),
        "reset_hint": h.counter_reset_hint as u8,
        "custom_values": fl(&h.custom_values),
    })
}

fn csv_cell(buf: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        buf.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                buf.push(b'"');
            }
            buf.push(b);
        }
        buf.push(b'"');
    } else {
        buf.extend_from_slice(s.as_bytes());
    }
}

/// `name{l="v"} value seconds.millis` lines; names are sorted, so each metric family is
/// contiguous as OpenMetrics requires. Series without a name cannot be expressed and are skipped.
fn openmetrics(buf: &mut Vec<u8>, labels: &Labels, floats: &[Sample]) {
    let Some(name) = labels.get(METRIC_NAME) else {
        return;
    };
    if floats.is_empty() || !sextant_model::labels::is_valid_metric_name(name) {
        return;
    }
    let mut prefix = Vec::from(name.as_bytes());
    let mut first = true;
    for l in labels.iter().filter(|l| l.name != METRIC_NAME) {
        prefix.push(if first { b'{' } else { b',' });
        first = false;
        prefix.extend_from_slice(l.name.as_bytes());
        prefix.extend_from_slice(b"=\"");
        for c in l.value.bytes() {
            match c {
                b'\\' => prefix.extend_from_slice(b"\\\\"),
                b'"' => prefix.extend_from_slice(b"\\\""),
                b'\n' => prefix.extend_from_slice(b"\\n"),
                c => prefix.push(c),
            }
        }
        prefix.push(b'"');
    }
    if !first {
        prefix.push(b'}');
    }
    for s in floats {
        buf.extend_from_slice(&prefix);
        buf.push(b' ');
        push_float(buf, s.v);
        buf.push(b' ');
        if s.t < 0 {
            buf.push(b'-');
        }
        let a = s.t.unsigned_abs();
        push_u64(buf, a / 1000);
        let ms = a % 1000;
        buf.extend_from_slice(&[
            b'.',
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
            b'\n',
        ]);
    }
}

/// Splits a metric name into an Influx measurement and field the way VictoriaMetrics joins them
/// on `/write` (`<measurement>_<field>`), so an exported line imports back as the same name.
pub fn influx_split(name: &str) -> (&str, &str) {
    match name.rsplit_once('_') {
        Some((m, f)) if !m.is_empty() && !f.is_empty() => (m, f),
        _ => (name, "value"),
    }
}

fn influx_escape(buf: &mut Vec<u8>, s: &str, extra: &[u8]) {
    for b in s.bytes() {
        if b == b' ' || b == b',' || b == b'\\' || extra.contains(&b) {
            buf.push(b'\\');
        }
        buf.push(b);
    }
}

/// Line protocol: `measurement,tag=v field=value ns`. NaN and ±Inf have no line-protocol
/// spelling and are left out, as are series without a name.
fn influx(buf: &mut Vec<u8>, labels: &Labels, floats: &[Sample]) {
    let Some(name) = labels.get(METRIC_NAME) else {
        return;
    };
    let (m, f) = influx_split(name);
    let mut prefix = Vec::new();
    influx_escape(&mut prefix, m, b"");
    for l in labels.iter().filter(|l| l.name != METRIC_NAME) {
        prefix.push(b',');
        influx_escape(&mut prefix, &l.name, b"=");
        prefix.push(b'=');
        influx_escape(&mut prefix, &l.value, b"=");
    }
    prefix.push(b' ');
    influx_escape(&mut prefix, f, b"=");
    prefix.push(b'=');
    for s in floats {
        let Some(ns) = s.t.checked_mul(1_000_000) else {
            continue;
        };
        if !s.v.is_finite() {
            continue;
        }
        buf.extend_from_slice(&prefix);
        push_float(buf, s.v);
        buf.push(b' ');
        push_i64(buf, ns);
        buf.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(p: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(p.iter().copied())
    }

    #[test]
    fn formats_one_series() {
        let l = ls(&[("__name__", "http_requests_total"), ("job", "a b,c")]);
        let s = [
            Sample { t: 1500, v: 2.5 },
            Sample {
                t: -1500,
                v: f64::NAN,
            },
        ];
        let mut b = Vec::new();
        openmetrics(&mut b, &l, &s);
        assert_eq!(
            String::from_utf8_lossy(&b),
            "http_requests_total{job=\"a b,c\"} 2.5 1.500\nhttp_requests_total{job=\"a b,c\"} NaN -1.500\n"
        );
        let mut b = Vec::new();
        influx(&mut b, &l, &s);
        assert_eq!(
            String::from_utf8_lossy(&b),
            "http_requests,job=a\\ b\\,c total=2.5 1500000000\n"
        );
        let mut b = Vec::new();
        json_floats(&mut b, &l, &s);
        assert_eq!(
            String::from_utf8_lossy(&b),
            "{\"metric\":{\"__name__\":\"http_requests_total\",\"job\":\"a b,c\"},\"values\":[2.5,\"NaN\"],\"timestamps\":[1500,-1500]}\n"
        );
        let mut e = Encoder::new(Format::Csv);
        e.begin([&l].into_iter());
        e.series(&l, &s[..1], &[]);
        assert_eq!(
            String::from_utf8_lossy(&e.buf),
            "__name__,job,__timestamp__,__value__\nhttp_requests_total,\"a b,c\",1500,2.5\n"
        );
    }

    #[test]
    fn fast_float_and_int_writers_match_the_formatter() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            3.0,
            0.5,
            -12.25,
            1e-7,
            1.5e21,
            1e15,
            999_999_999_999_999.0,
            -1e15,
            123456789.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            0.1 + 0.2,
        ] {
            let mut b = Vec::new();
            push_float(&mut b, v);
            assert_eq!(String::from_utf8_lossy(&b), format_float(v), "{v:?}");
        }
        for n in [0i64, 7, -7, 10, i64::MAX, i64::MIN, 1_700_000_000_123] {
            let mut b = Vec::new();
            push_i64(&mut b, n);
            assert_eq!(String::from_utf8_lossy(&b), n.to_string());
        }
    }

    #[test]
    fn influx_names_split_like_vm_joins_them() {
        assert_eq!(influx_split("cpu_usage_idle"), ("cpu_usage", "idle"));
        assert_eq!(influx_split("up"), ("up", "value"));
        assert_eq!(influx_split("_x"), ("_x", "value"));
    }

    #[test]
    fn steps_use_lookback_and_staleness() {
        let data = SeriesData {
            labels: Labels::default(),
            floats: vec![
                Sample { t: 0, v: 1.0 },
                Sample { t: 10_000, v: 2.0 },
                Sample {
                    t: 20_000,
                    v: sextant_model::STALE_NAN,
                },
            ],
            histograms: Vec::new(),
        };
        let plan = Plan {
            format: Format::Jsonl,
            start: 0,
            end: 400_000,
            step: Some(5_000),
            lookback: 300_000,
        };
        let (mut f, mut h) = (Vec::new(), Vec::new());
        sample_steps(&data, &plan, 5_000, &mut f, &mut h);
        let got: Vec<(i64, f64)> = f.iter().map(|s| (s.t, s.v)).collect();
        assert_eq!(
            got,
            vec![(0, 1.0), (5_000, 1.0), (10_000, 2.0), (15_000, 2.0)]
        );
    }
}
