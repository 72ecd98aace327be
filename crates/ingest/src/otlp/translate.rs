//! OTLP metrics → Prometheus series, following Prometheus' OTLP receiver
//! (`storage/remote/otlptranslator`) with its default settings:
//!
//! - series labels are the data point's attributes (sanitised; keys that collide after
//!   sanitising have their values joined with `;` in key order) plus `job` (from
//!   `service.namespace/service.name`) and `instance` (from `service.instance.id`); other
//!   resource attributes go to one `target_info` series per resource (written from the
//!   resource's earliest to latest point time every 2.5 minutes, half the default lookback);
//!   scope name/version are not promoted to labels (Prometheus' `promote_scope_metadata`
//!   defaults to false);
//! - gauges and sums become float series, monotonic sums get `_total`, non-monotonic sums are
//!   gauges; explicit-bucket histograms become classic `_bucket{le}`/`_sum`/`_count` series;
//!   exponential histograms become native histograms; summaries become `{quantile}` series
//!   plus `_sum`/`_count`;
//! - delta sums and histograms are turned into running totals (see [`super::delta`]);
//!   Prometheus refuses deltas unless a feature flag converts them the same way;
//! - a point flagged `NO_RECORDED_VALUE` writes staleness markers;
//! - exemplars keep their value and time; `trace_id`/`span_id` become hex labels of the same
//!   names and filtered attributes are added while the label set stays within 128 characters;
//!   a histogram's exemplars go to the first `_bucket` series whose `le` is at least their
//!   value (`+Inf` last), as Prometheus' translator does.
//!
//! A data point that cannot be translated (unspecified temporality, scale below -4, labels over
//! the limits, an already counted delta, ...) is refused on its own and reported in the
//! answer's `partial_success`; the rest of the request is still written.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::sync::Mutex;

use sextant_model::{
    CounterResetHint, Exemplar, Histogram, HistogramValue, Labels, Metadata, MetricType, Sample,
    EXEMPLAR_MAX_LABEL_SET_LENGTH, METRIC_NAME, STALE_NAN,
};

use super::delta::{DeltaLimits, DeltaState, ExpTotal, Total, MAX_DELTA_BOUNDS};
use super::exphist::{self, SparseBuckets, DEFAULT_ZERO_THRESHOLD};
use super::names::{self, NameKind};
use super::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use super::proto::common::v1::{any_value, AnyValue, KeyValue};
use super::proto::metrics::v1 as m;
use crate::remote_write::{DecodeLimits, SeriesSamples, WriteBatch};
use crate::Sink;

const SERVICE_NAME: &str = "service.name";
const SERVICE_NAMESPACE: &str = "service.namespace";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";
const TARGET_INFO: &str = "target_info";
/// Step of `target_info` samples: half of Prometheus' default 5m lookback delta.
const TARGET_INFO_STEP_MS: i64 = 150_000;
/// Most `target_info` samples written per resource and request (the latest ones).
const TARGET_INFO_MAX_SAMPLES: i64 = 120;
/// `DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK`.
const FLAG_NO_RECORDED_VALUE: u32 = 1;

/// The result of translating one request.
#[derive(Debug, Default)]
pub struct Translated {
    /// Series, samples and metadata to store.
    pub batch: WriteBatch,
    /// Data points in the request.
    pub points: usize,
    /// Data points refused during translation (none of their samples are in `batch`).
    pub rejected_points: usize,
    /// Why the first refused point was refused.
    pub first_error: Option<String>,
}

/// Translates OTLP requests; holds the delta → cumulative running totals across requests.
pub struct Translator {
    delta: Mutex<DeltaState>,
}

impl Default for Translator {
    fn default() -> Self {
        Translator::new(DeltaLimits::default())
    }
}

impl Translator {
    pub fn new(limits: DeltaLimits) -> Self {
        Translator {
            delta: Mutex::new(DeltaState::new(limits)),
        }
    }

    /// Delta streams currently tracked (for self-monitoring).
    pub fn delta_streams(&self) -> usize {
        self.delta.lock().map(|d| d.streams()).unwrap_or(0)
    }

    /// Translates a decoded request. `now_ms` only ages delta state. `stored` (the sink the
    /// result goes to) lets a delta stream that is not in memory continue from its last
    /// stored total instead of starting over (see [`DeltaState::accumulate`]).
    pub fn translate(
        &self,
        req: ExportMetricsServiceRequest,
        limits: &DecodeLimits,
        now_ms: i64,
        stored: Option<&dyn Sink>,
    ) -> Translated {
        let mut out = Out {
            limits,
            delta: &self.delta,
            stored,
            now_ms,
            index: HashMap::new(),
            families: HashSet::new(),
            min_t: None,
            max_t: None,
            t: Translated::default(),
        };
        for rm in req.resource_metrics {
            out.resource(rm);
        }
        out.t
    }
}

/// What a resource contributes to every series of its metrics.
struct Resource {
    job: Option<String>,
    instance: Option<String>,
}

struct Out<'a> {
    limits: &'a DecodeLimits,
    /// Locked per delta point only, so cumulative requests translate in parallel.
    delta: &'a Mutex<DeltaState>,
    /// Where delta streams not in memory find their last stored total.
    stored: Option<&'a dyn Sink>,
    now_ms: i64,
    index: HashMap<Labels, usize>,
    families: HashSet<String>,
    /// Time range of the points of the current resource (for `target_info`).
    min_t: Option<i64>,
    max_t: Option<i64>,
    t: Translated,
}

fn ns_to_ms(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

fn is_stale(flags: u32) -> bool {
    flags & FLAG_NO_RECORDED_VALUE != 0
}

fn number(v: &Option<m::number_data_point::Value>) -> f64 {
    match v {
        Some(m::number_data_point::Value::AsDouble(d)) => *d,
        Some(m::number_data_point::Value::AsInt(i)) => *i as f64,
        None => 0.0,
    }
}

fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 15)] as char);
    }
    s
}

/// An OTLP exemplar as Prometheus' translator writes it: `trace_id` and `span_id` as lowercase
/// hex labels when present, then the filtered attributes, but only if all of them together keep
/// the label set within 128 characters. None when the exemplar has no value.
fn exemplar(e: &m::Exemplar) -> Option<Exemplar> {
    let value = match e.value? {
        m::exemplar::Value::AsDouble(d) => d,
        m::exemplar::Value::AsInt(i) => i as f64,
    };
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(2 + e.filtered_attributes.len());
    let mut runes = 0usize;
    for (name, id) in [("trace_id", &e.trace_id), ("span_id", &e.span_id)] {
        if !id.is_empty() {
            let v = hex(id);
            runes += name.len() + v.len();
            pairs.push((name.to_string(), v));
        }
    }
    let mut attrs = Vec::with_capacity(e.filtered_attributes.len());
    for kv in &e.filtered_attributes {
        let Some(name) = names::label_name(&kv.key) else {
            continue;
        };
        let v = any_to_string(kv.value.as_ref());
        runes += name.chars().count() + v.chars().count();
        attrs.push((name, v));
    }
    if runes <= EXEMPLAR_MAX_LABEL_SET_LENGTH {
        pairs.extend(attrs);
    }
    Some(Exemplar {
        labels: Labels::from_pairs(pairs),
        value,
        ts: ns_to_ms(e.time_unix_nano),
    })
}

fn get_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a KeyValue> {
    attrs.iter().find(|kv| kv.key == key)
}

/// An attribute value as Prometheus writes it into a label (pcommon's `AsString`).
pub fn any_to_string(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => float_string(*d),
        Some(any_value::Value::BytesValue(b)) => base64(b),
        Some(any_value::Value::StringValueStrindex(i)) => i.to_string(),
        Some(any_value::Value::ArrayValue(_)) | Some(any_value::Value::KvlistValue(_)) => {
            v.map(any_to_json).unwrap_or_default().to_string()
        }
    }
}

fn any_to_json(v: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.value {
        None => J::Null,
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::Bool(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(J::Null, J::Number)
        }
        Some(any_value::Value::BytesValue(b)) => J::String(base64(b)),
        Some(any_value::Value::StringValueStrindex(i)) => J::from(*i),
        Some(any_value::Value::ArrayValue(a)) => {
            J::Array(a.values.iter().map(any_to_json).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map_or(J::Null, any_to_json),
                    )
                })
                .collect(),
        ),
    }
}

/// ECMAScript number formatting, as Go's pcommon uses for doubles in labels.
fn float_string(f: f64) -> String {
    if f.is_nan() {
        return "json: unsupported value: NaN".into();
    }
    if f.is_infinite() {
        return format!(
            "json: unsupported value: {}",
            if f > 0.0 { "+Inf" } else { "-Inf" }
        );
    }
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Attributes → label pairs: sorted by original key, sanitised, colliding names joined by `;`.
fn attr_labels(attrs: &[KeyValue], ignore: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(&str, String)> = attrs
        .iter()
        .filter(|kv| !ignore.contains(&kv.key.as_str()))
        .map(|kv| (kv.key.as_str(), any_to_string(kv.value.as_ref())))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len() + 4);
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(pairs.len());
    for (key, value) in pairs {
        let name = names::label_name(key)
            .ok_or_else(|| format!("attribute {key:?} does not make a valid label name"))?;
        match seen.get(&name) {
            Some(&i) => {
                let v = &mut out[i].1;
                v.push(';');
                v.push_str(&value);
            }
            None => {
                seen.insert(name.clone(), out.len());
                out.push((name, value));
            }
        }
    }
    Ok(out)
}

fn set(pairs: &mut Vec<(String, String)>, name: &str, value: &str) {
    match pairs.iter_mut().find(|p| p.0 == name) {
        Some(p) => p.1 = value.to_string(),
        None => pairs.push((name.to_string(), value.to_string())),
    }
}

fn with(base: &[(String, String)], extra: &[(&str, &str)]) -> Labels {
    let mut v = base.to_vec();
    for (n, val) in extra {
        set(&mut v, n, val);
    }
    Labels::from_pairs(v)
}

/// The `le`/`quantile` value format: shortest round-trip decimal, never an exponent.
fn bound_string(f: f64) -> String {
    if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{f}")
    }
}

impl Out<'_> {
    fn delta(&self) -> std::sync::MutexGuard<'_, DeltaState> {
        self.delta.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn saw(&mut self, t: i64) {
        self.min_t = Some(self.min_t.map_or(t, |m| m.min(t)));
        self.max_t = Some(self.max_t.map_or(t, |m| m.max(t)));
    }

    fn reject(&mut self, n: usize, metric: &str, msg: impl Display) {
        self.t.rejected_points += n;
        if self.t.first_error.is_none() {
            self.t.first_error = Some(format!("metric {metric:?}: {msg}"));
        }
    }

    fn series(&mut self, labels: Labels) -> &mut SeriesSamples {
        let i = match self.index.get(&labels) {
            Some(&i) => i,
            None => {
                let i = self.t.batch.series.len();
                self.index.insert(labels.clone(), i);
                self.t.batch.series.push(SeriesSamples {
                    labels,
                    samples: Vec::new(),
                    histograms: Vec::new(),
                    exemplars: Vec::new(),
                });
                i
            }
        };
        &mut self.t.batch.series[i]
    }

    fn sample(&mut self, labels: Labels, t: i64, v: f64) {
        self.series(labels).samples.push(Sample::new(t, v));
    }

    fn metadata(&mut self, family: &str, kind: MetricType, metric: &m::Metric) {
        if !self.families.contains(family) {
            self.families.insert(family.to_string());
            self.t.batch.metadata.push(Metadata {
                metric_family: family.to_string(),
                kind,
                help: metric.description.clone(),
                unit: names::prometheus_unit(&metric.unit),
            });
        }
    }

    /// The labels every series of a point shares (without `__name__`), checked against limits.
    fn point_labels(
        &self,
        attrs: &[KeyValue],
        res: &Resource,
        family: &str,
        extra_labels: usize,
    ) -> Result<Vec<(String, String)>, String> {
        let mut v = attr_labels(attrs, &[])?;
        if let Some(job) = &res.job {
            set(&mut v, "job", job);
        }
        if let Some(inst) = &res.instance {
            set(&mut v, "instance", inst);
        }
        v.retain(|p| p.0 != METRIC_NAME);
        let l = self.limits;
        let n = v.iter().filter(|p| !p.1.is_empty()).count() + 1 + extra_labels;
        if l.max_labels_per_series > 0 && n > l.max_labels_per_series {
            return Err(format!(
                "{n} labels exceed the limit of {} per series (limit labels_per_series)",
                l.max_labels_per_series
            ));
        }
        if l.max_label_value_len > 0 && family.len() + 8 > l.max_label_value_len {
            return Err(format!(
                "metric name of {} bytes exceeds the label value limit of {} bytes (limit label_value_length)",
                family.len(),
                l.max_label_value_len
            ));
        }
        for (name, value) in &v {
            if l.max_label_name_len > 0 && name.len() > l.max_label_name_len {
                return Err(format!(
                    "label name {:?}... exceeds the limit of {} bytes (limit label_name_length)",
                    name.chars().take(32).collect::<String>(),
                    l.max_label_name_len
                ));
            }
            if l.max_label_value_len > 0 && value.len() > l.max_label_value_len {
                return Err(format!(
                    "value of label {name:?} ({} bytes) exceeds the limit of {} bytes (limit label_value_length)",
                    value.len(),
                    l.max_label_value_len
                ));
            }
        }
        Ok(v)
    }

    fn resource(&mut self, rm: m::ResourceMetrics) {
        let attrs = rm.resource.map(|r| r.attributes).unwrap_or_default();
        let job = get_attr(&attrs, SERVICE_NAME).map(|name| {
            let name = any_to_string(name.value.as_ref());
            match get_attr(&attrs, SERVICE_NAMESPACE) {
                Some(ns) => format!("{}/{name}", any_to_string(ns.value.as_ref())),
                None => name,
            }
        });
        let instance =
            get_attr(&attrs, SERVICE_INSTANCE_ID).map(|i| any_to_string(i.value.as_ref()));
        let res = Resource { job, instance };
        self.min_t = None;
        self.max_t = None;
        for sm in rm.scope_metrics {
            for metric in sm.metrics {
                self.metric(&res, metric);
            }
        }
        self.target_info(&attrs, &res);
    }

    fn target_info(&mut self, attrs: &[KeyValue], res: &Resource) {
        let identifying = [SERVICE_NAMESPACE, SERVICE_NAME, SERVICE_INSTANCE_ID];
        let (Some(min_t), Some(max_t)) = (self.min_t, self.max_t) else {
            return;
        };
        if res.job.is_none() && res.instance.is_none() {
            return;
        }
        if !attrs
            .iter()
            .any(|kv| !identifying.contains(&kv.key.as_str()))
        {
            return;
        }
        let base = match attr_labels(attrs, &identifying) {
            Ok(mut v) => {
                if let Some(job) = &res.job {
                    set(&mut v, "job", job);
                }
                if let Some(inst) = &res.instance {
                    set(&mut v, "instance", inst);
                }
                v
            }
            Err(e) => {
                self.reject(0, TARGET_INFO, e);
                return;
            }
        };
        let labels = with(&base, &[(METRIC_NAME, TARGET_INFO)]);
        let first = min_t.max(max_t - TARGET_INFO_STEP_MS * TARGET_INFO_MAX_SAMPLES);
        let mut t = first;
        while t < max_t {
            self.sample(labels.clone(), t, 1.0);
            t += TARGET_INFO_STEP_MS;
        }
        self.sample(labels, max_t, 1.0);
    }

    fn metric(&mut self, res: &Resource, mut metric: m::Metric) {
        use m::metric::Data;
        let genai_family = super::genai::normalise(&mut metric);
        let Some(data) = &metric.data else { return };
        let (kind, mtype, temporality) = match data {
            Data::Gauge(_) => (NameKind::Gauge, MetricType::Gauge, None),
            Data::Sum(s) if s.is_monotonic => (
                NameKind::MonotonicCounter,
                MetricType::Counter,
                Some(s.aggregation_temporality),
            ),
            Data::Sum(s) => (
                NameKind::NonMonotonicCounter,
                MetricType::Gauge,
                Some(s.aggregation_temporality),
            ),
            Data::Histogram(h) => (
                NameKind::Other,
                MetricType::Histogram,
                Some(h.aggregation_temporality),
            ),
            Data::ExponentialHistogram(h) => (
                NameKind::Other,
                MetricType::Histogram,
                Some(h.aggregation_temporality),
            ),
            Data::Summary(_) => (NameKind::Other, MetricType::Summary, None),
        };
        let npoints = match data {
            Data::Gauge(g) => g.data_points.len(),
            Data::Sum(s) => s.data_points.len(),
            Data::Histogram(h) => h.data_points.len(),
            Data::ExponentialHistogram(h) => h.data_points.len(),
            Data::Summary(s) => s.data_points.len(),
        };
        self.t.points += npoints;
        let family = match genai_family {
            Some(f) => f.to_string(),
            None => names::metric_name(&metric.name, &metric.unit, kind),
        };
        if family.is_empty() {
            self.reject(
                npoints,
                &metric.name,
                "metric name is empty after translation",
            );
            return;
        }
        let is_delta = match temporality {
            None => false,
            Some(t) if t == m::AggregationTemporality::Cumulative as i32 => false,
            Some(t) if t == m::AggregationTemporality::Delta as i32 => true,
            Some(t) => {
                self.reject(
                    npoints,
                    &metric.name,
                    format!("aggregation temporality {t} is neither cumulative (2) nor delta (1)"),
                );
                return;
            }
        };
        self.metadata(&family, mtype, &metric);
        match data {
            Data::Gauge(g) => {
                for p in &g.data_points {
                    self.number_point(res, &metric.name, &family, p, false);
                }
            }
            Data::Sum(s) => {
                for p in &s.data_points {
                    self.number_point(res, &metric.name, &family, p, is_delta);
                }
            }
            Data::Histogram(h) => {
                for p in &h.data_points {
                    self.histogram_point(res, &metric.name, &family, p, is_delta);
                }
            }
            Data::ExponentialHistogram(h) => {
                for p in &h.data_points {
                    self.exp_point(res, &metric.name, &family, p, is_delta);
                }
            }
            Data::Summary(s) => {
                for p in &s.data_points {
                    self.summary_point(res, &metric.name, &family, p);
                }
            }
        }
    }

    fn number_point(
        &mut self,
        res: &Resource,
        metric: &str,
        family: &str,
        p: &m::NumberDataPoint,
        is_delta: bool,
    ) {
        let base = match self.point_labels(&p.attributes, res, family, 0) {
            Ok(b) => b,
            Err(e) => return self.reject(1, metric, e),
        };
        let t = ns_to_ms(p.time_unix_nano);
        let labels = with(&base, &[(METRIC_NAME, family)]);
        let v = if is_stale(p.flags) {
            if is_delta {
                self.delta().forget(&labels);
            }
            STALE_NAN
        } else if is_delta {
            let stored = self.stored;
            let acc = self.delta().accumulate(
                &labels,
                p.start_time_unix_nano,
                p.time_unix_nano,
                Total::Number(number(&p.value)),
                self.now_ms,
                || stored_float(stored?, &labels).map(|(t, v)| (t, Total::Number(v))),
            );
            match acc {
                Ok(Total::Number(v)) => v,
                Ok(_) => number(&p.value),
                Err(e) => return self.reject(1, metric, e),
            }
        } else {
            number(&p.value)
        };
        self.saw(t);
        let ex = self.exemplars(metric, &p.exemplars);
        let s = self.series(labels);
        s.samples.push(Sample::new(t, v));
        s.exemplars.extend(ex);
    }

    /// Translates a point's exemplars; one without a value is skipped and named in the
    /// answer's message (its point is still written).
    fn exemplars(&mut self, metric: &str, exs: &[m::Exemplar]) -> Vec<Exemplar> {
        let mut out = Vec::with_capacity(exs.len());
        for e in exs {
            match exemplar(e) {
                Some(x) => out.push(x),
                None => {
                    if self.t.first_error.is_none() {
                        self.t.first_error = Some(format!(
                            "metric {metric:?}: exemplar without a value (asDouble or asInt) skipped"
                        ));
                    }
                }
            }
        }
        out
    }

    fn histogram_point(
        &mut self,
        res: &Resource,
        metric: &str,
        family: &str,
        p: &m::HistogramDataPoint,
        is_delta: bool,
    ) {
        if !p.bucket_counts.is_empty() && p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
            return self.reject(
                1,
                metric,
                format!(
                    "histogram point has {} bucket_counts for {} explicit_bounds; want {}",
                    p.bucket_counts.len(),
                    p.explicit_bounds.len(),
                    p.explicit_bounds.len() + 1
                ),
            );
        }
        if p.explicit_bounds.iter().any(|b| b.is_nan())
            || p.explicit_bounds.windows(2).any(|w| w[0] >= w[1])
        {
            return self.reject(1, metric, "explicit_bounds are not strictly increasing");
        }
        let base = match self.point_labels(&p.attributes, res, family, 1) {
            Ok(b) => b,
            Err(e) => return self.reject(1, metric, e),
        };
        let t = ns_to_ms(p.time_unix_nano);
        let bucket_name = format!("{family}_bucket");
        let sum_name = format!("{family}_sum");
        let count_name = format!("{family}_count");
        let key = with(&base, &[(METRIC_NAME, family)]);
        let stale = is_stale(p.flags);
        let (counts, count, sum) = if stale {
            if is_delta {
                self.delta().forget(&key);
            }
            (p.bucket_counts.clone(), 0, p.sum)
        } else if is_delta {
            if p.explicit_bounds.len() > MAX_DELTA_BOUNDS {
                return self.reject(
                    1,
                    metric,
                    format!(
                        "delta histogram with {} bounds; at most {MAX_DELTA_BOUNDS} are converted to cumulative",
                        p.explicit_bounds.len()
                    ),
                );
            }
            let d = Total::Histogram {
                bounds: p.explicit_bounds.clone(),
                counts: p.bucket_counts.clone(),
                count: p.count,
                sum: p.sum.unwrap_or(0.0),
            };
            let stored = self.stored;
            let names = [bucket_name.as_str(), sum_name.as_str(), count_name.as_str()];
            let acc = self.delta().accumulate(
                &key,
                p.start_time_unix_nano,
                p.time_unix_nano,
                d,
                self.now_ms,
                || stored_histogram(stored?, &base, names, &p.explicit_bounds),
            );
            match acc {
                Ok(Total::Histogram {
                    counts, count, sum, ..
                }) => (counts, count, p.sum.map(|_| sum)),
                Ok(_) => (p.bucket_counts.clone(), p.count, p.sum),
                Err(e) => return self.reject(1, metric, e),
            }
        } else {
            (p.bucket_counts.clone(), p.count, p.sum)
        };
        self.saw(t);
        let value = |v: f64| if stale { STALE_NAN } else { v };
        if let Some(sum) = sum {
            self.sample(with(&base, &[(METRIC_NAME, &sum_name)]), t, value(sum));
        }
        self.sample(
            with(&base, &[(METRIC_NAME, &count_name)]),
            t,
            value(count as f64),
        );
        // Each exemplar belongs to the first bucket that holds its value.
        let mut exs: Vec<(usize, Exemplar)> = self
            .exemplars(metric, &p.exemplars)
            .into_iter()
            .map(|e| {
                let b = p
                    .explicit_bounds
                    .iter()
                    .take(counts.len())
                    .position(|b| e.value <= *b)
                    .unwrap_or(usize::MAX);
                (b, e)
            })
            .collect();
        let mut take = |b: usize| -> Vec<Exemplar> {
            let (mine, rest): (Vec<_>, Vec<_>) = exs.drain(..).partition(|(i, _)| *i == b);
            exs = rest;
            mine.into_iter().map(|(_, e)| e).collect()
        };
        let mut cumulative: u64 = 0;
        // Like Prometheus, a point without bucket counts yields only the `+Inf` bucket.
        for (i, (bound, c)) in p.explicit_bounds.iter().zip(&counts).enumerate() {
            cumulative = cumulative.saturating_add(*c);
            let le = bound_string(*bound);
            let mine = take(i);
            let s = self.series(with(&base, &[(METRIC_NAME, &bucket_name), ("le", &le)]));
            s.samples.push(Sample::new(t, value(cumulative as f64)));
            s.exemplars.extend(mine);
        }
        let mine = take(usize::MAX);
        let inf = with(&base, &[(METRIC_NAME, &bucket_name), ("le", "+Inf")]);
        let s = self.series(inf);
        s.samples.push(Sample::new(t, value(count as f64)));
        s.exemplars.extend(mine);
    }

    fn exp_point(
        &mut self,
        res: &Resource,
        metric: &str,
        family: &str,
        p: &m::ExponentialHistogramDataPoint,
        is_delta: bool,
    ) {
        let (schema, down) = match exphist::target_schema(p.scale) {
            Ok(x) => x,
            Err(e) => return self.reject(1, metric, e),
        };
        let base = match self.point_labels(&p.attributes, res, family, 0) {
            Ok(b) => b,
            Err(e) => return self.reject(1, metric, e),
        };
        let t = ns_to_ms(p.time_unix_nano);
        let labels = with(&base, &[(METRIC_NAME, family)]);
        if is_stale(p.flags) {
            if is_delta {
                self.delta().forget(&labels);
            }
            self.saw(t);
            let s = self.series(labels);
            s.samples.push(Sample::new(t, STALE_NAN));
            return;
        }
        let mut total = ExpTotal {
            schema,
            zero_threshold: if p.zero_threshold > 0.0 {
                p.zero_threshold
            } else {
                DEFAULT_ZERO_THRESHOLD
            },
            zero_count: p.zero_count,
            count: p.count,
            sum: p.sum.unwrap_or(0.0),
            positive: SparseBuckets::new(),
            negative: SparseBuckets::new(),
        };
        if let Some(b) = &p.positive {
            exphist::merge_dense(b.offset, &b.bucket_counts, down, &mut total.positive);
        }
        if let Some(b) = &p.negative {
            exphist::merge_dense(b.offset, &b.bucket_counts, down, &mut total.negative);
        }
        if is_delta {
            total.shrink();
            let stored = self.stored;
            let acc = self.delta().accumulate(
                &labels,
                p.start_time_unix_nano,
                p.time_unix_nano,
                Total::Exponential(total),
                self.now_ms,
                || stored_exponential(stored?, &labels),
            );
            match acc {
                Ok(Total::Exponential(t)) => total = t,
                Ok(_) => return self.reject(1, metric, "delta state of another kind"),
                Err(e) => return self.reject(1, metric, e),
            }
        }
        let h = match native(&total) {
            Ok(h) => h,
            Err(e) => return self.reject(1, metric, e),
        };
        self.saw(t);
        let ex = self.exemplars(metric, &p.exemplars);
        let s = self.series(labels);
        s.histograms.push((t, HistogramValue::Int(h)));
        s.exemplars.extend(ex);
    }

    fn summary_point(
        &mut self,
        res: &Resource,
        metric: &str,
        family: &str,
        p: &m::SummaryDataPoint,
    ) {
        let base = match self.point_labels(&p.attributes, res, family, 1) {
            Ok(b) => b,
            Err(e) => return self.reject(1, metric, e),
        };
        let t = ns_to_ms(p.time_unix_nano);
        self.saw(t);
        let stale = is_stale(p.flags);
        let value = |v: f64| if stale { STALE_NAN } else { v };
        let sum_name = format!("{family}_sum");
        let count_name = format!("{family}_count");
        self.sample(with(&base, &[(METRIC_NAME, &sum_name)]), t, value(p.sum));
        self.sample(
            with(&base, &[(METRIC_NAME, &count_name)]),
            t,
            value(p.count as f64),
        );
        for q in &p.quantile_values {
            let qs = bound_string(q.quantile);
            self.sample(
                with(&base, &[(METRIC_NAME, family), ("quantile", &qs)]),
                t,
                value(q.value),
            );
        }
    }
}

/// The last stored float of a series, unless it is a staleness marker (the stream ended).
fn stored_float(stored: &dyn Sink, labels: &Labels) -> Option<(i64, f64)> {
    match stored.last_sample(labels) {
        Some((t, Ok(v))) if !sextant_model::sample::is_stale_nan(v) => Some((t, v)),
        _ => None,
    }
}

/// A stored count as an integer (counts were written from integers).
fn stored_count(v: f64) -> Option<u64> {
    (v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

/// The last stored total of a classic histogram with the given bounds: its `_count`, a
/// `_bucket` per bound (all written at the same time, as one point writes them) and `_sum` if
/// stored then. `names` are the bucket, sum and count metric names.
fn stored_histogram(
    stored: &dyn Sink,
    base: &[(String, String)],
    names: [&str; 3],
    bounds: &[f64],
) -> Option<(i64, Total)> {
    let [bucket_name, sum_name, count_name] = names;
    let (t, n) = stored_float(stored, &with(base, &[(METRIC_NAME, count_name)]))?;
    let count = stored_count(n)?;
    let mut counts = Vec::with_capacity(bounds.len() + 1);
    let mut below = 0u64;
    for b in bounds {
        let le = bound_string(*b);
        let labels = with(base, &[(METRIC_NAME, bucket_name), ("le", le.as_str())]);
        let (tb, c) = stored_float(stored, &labels)?;
        let c = stored_count(c)?;
        if tb != t {
            return None;
        }
        counts.push(c.checked_sub(below)?);
        below = c;
    }
    counts.push(count.checked_sub(below)?);
    let sum = match stored_float(stored, &with(base, &[(METRIC_NAME, sum_name)])) {
        Some((ts, v)) if ts == t => v,
        _ => 0.0,
    };
    let total = Total::Histogram {
        bounds: bounds.to_vec(),
        counts,
        count,
        sum,
    };
    Some((t, total))
}

/// The last stored native histogram of a series as an exponential running total.
fn stored_exponential(stored: &dyn Sink, labels: &Labels) -> Option<(i64, Total)> {
    let (t, Err(HistogramValue::Int(h))) = stored.last_sample(labels)? else {
        return None;
    };
    if !h.custom_values.is_empty() || h.schema < exphist::MIN_SCHEMA || h.schema > 8 {
        return None;
    }
    let total = ExpTotal {
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: h.zero_count,
        count: h.count,
        sum: h.sum,
        positive: exphist::from_spans(&h.positive_spans, &h.positive_buckets)?,
        negative: exphist::from_spans(&h.negative_spans, &h.negative_buckets)?,
    };
    Some((t, Total::Exponential(total)))
}

/// A running total of an exponential histogram as a native histogram.
fn native(t: &ExpTotal) -> Result<Histogram, String> {
    let (positive_spans, positive_buckets) = exphist::to_spans(&t.positive)?;
    let (negative_spans, negative_buckets) = exphist::to_spans(&t.negative)?;
    let h = Histogram {
        counter_reset_hint: CounterResetHint::Unknown,
        schema: t.schema,
        zero_threshold: t.zero_threshold,
        zero_count: t.zero_count,
        count: t.count,
        sum: t.sum,
        positive_spans,
        negative_spans,
        positive_buckets,
        negative_buckets,
        custom_values: Vec::new(),
    };
    h.validate().map_err(|e| e.to_string())?;
    Ok(h)
}
