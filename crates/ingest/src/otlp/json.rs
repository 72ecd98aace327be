//! The OTLP/JSON encoding of `ExportMetricsServiceRequest`, decoded into the same prost types
//! the protobuf encoding produces, so translation has one input type. OTLP/JSON is proto3's
//! JSON mapping with OTLP's deviations: keys are lowerCamelCase only, 64-bit integers may be
//! strings or numbers, `traceId`/`spanId` are hex (not base64), enums are integers (names are
//! accepted too), and unknown fields are ignored. Doubles may be `"NaN"`, `"Infinity"` or
//! `"-Infinity"`.

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::proto::collector::metrics::v1 as coll;
use super::proto::common::v1 as common;
use super::proto::metrics::v1 as m;
use super::proto::resource::v1 as resource;

/// Decodes an OTLP/JSON request body.
pub fn decode(raw: &[u8]) -> Result<coll::ExportMetricsServiceRequest, serde_json::Error> {
    let req: Request = serde_json::from_slice(raw)?;
    Ok(req.into())
}

// ---- scalar helpers -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(serde_json::Number),
    Str(String),
}

fn u64_of<E: de::Error>(v: NumOrStr) -> Result<u64, E> {
    match v {
        NumOrStr::Num(n) => n
            .as_u64()
            .ok_or_else(|| E::custom(format!("{n} is not an unsigned 64-bit integer"))),
        NumOrStr::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| E::custom(format!("{s:?} is not an unsigned 64-bit integer"))),
    }
}

fn i64_of<E: de::Error>(v: NumOrStr) -> Result<i64, E> {
    match v {
        NumOrStr::Num(n) => n
            .as_i64()
            .ok_or_else(|| E::custom(format!("{n} is not a 64-bit integer"))),
        NumOrStr::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| E::custom(format!("{s:?} is not a 64-bit integer"))),
    }
}

fn f64_of<E: de::Error>(v: NumOrStr) -> Result<f64, E> {
    match v {
        NumOrStr::Num(n) => n
            .as_f64()
            .ok_or_else(|| E::custom(format!("{n} is not a number"))),
        NumOrStr::Str(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .trim()
                .parse()
                .map_err(|_| E::custom(format!("{s:?} is not a number"))),
        },
    }
}

fn u64_de<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Option::<NumOrStr>::deserialize(d)?.map_or(Ok(0), u64_of)
}

fn i64_opt_de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<NumOrStr>::deserialize(d)?.map(i64_of).transpose()
}

fn f64_de<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Option::<NumOrStr>::deserialize(d)?.map_or(Ok(0.0), f64_of)
}

fn f64_opt_de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Option::<NumOrStr>::deserialize(d)?.map(f64_of).transpose()
}

fn u64_vec_de<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    Option::<Vec<NumOrStr>>::deserialize(d)?
        .unwrap_or_default()
        .into_iter()
        .map(u64_of)
        .collect()
}

fn f64_vec_de<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Option::<Vec<NumOrStr>>::deserialize(d)?
        .unwrap_or_default()
        .into_iter()
        .map(f64_of)
        .collect()
}

fn i32_de<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let v = Option::<NumOrStr>::deserialize(d)?.map_or(Ok(0), i64_of)?;
    i32::try_from(v).map_err(|_| de::Error::custom(format!("{v} is not a 32-bit integer")))
}

fn u32_de<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = Option::<NumOrStr>::deserialize(d)?.map_or(Ok(0), u64_of)?;
    u32::try_from(v)
        .map_err(|_| de::Error::custom(format!("{v} is not an unsigned 32-bit integer")))
}

fn bool_de<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

fn string_de<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn vec_de<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn hex_de<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = Option::<String>::deserialize(d)?.unwrap_or_default();
    if s.len() % 2 != 0 {
        return Err(de::Error::custom(format!("{s:?} is not hex: odd length")));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| de::Error::custom(format!("{s:?} is not hex")))
        })
        .collect()
}

fn base64_de<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = String::deserialize(d)?;
    base64_decode(&s).ok_or_else(|| de::Error::custom(format!("{s:?} is not base64")))
}

/// Standard or URL-safe base64, padding optional (proto3 JSON accepts both alphabets).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Aggregation temporality as an integer or its enum name.
fn temporality_de<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    match Option::<NumOrStr>::deserialize(d)? {
        None => Ok(0),
        Some(NumOrStr::Str(s)) if s.starts_with("AGGREGATION_TEMPORALITY_") => {
            m::AggregationTemporality::from_str_name(&s)
                .map(|t| t as i32)
                .ok_or_else(|| de::Error::custom(format!("unknown aggregation temporality {s:?}")))
        }
        Some(v) => {
            let v = i64_of(v)?;
            i32::try_from(v).map_err(|_| de::Error::custom(format!("{v} is not a 32-bit integer")))
        }
    }
}

// ---- messages -------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[serde(default, deserialize_with = "vec_de")]
    resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceMetrics {
    #[serde(default)]
    resource: Option<Resource>,
    #[serde(default, deserialize_with = "vec_de")]
    scope_metrics: Vec<ScopeMetrics>,
    #[serde(default, deserialize_with = "string_de")]
    schema_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resource {
    #[serde(default, deserialize_with = "vec_de")]
    attributes: Vec<KeyValue>,
    #[serde(default, deserialize_with = "u32_de")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopeMetrics {
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(default, deserialize_with = "vec_de")]
    metrics: Vec<Metric>,
    #[serde(default, deserialize_with = "string_de")]
    schema_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Scope {
    #[serde(default, deserialize_with = "string_de")]
    name: String,
    #[serde(default, deserialize_with = "string_de")]
    version: String,
    #[serde(default, deserialize_with = "vec_de")]
    attributes: Vec<KeyValue>,
    #[serde(default, deserialize_with = "u32_de")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize)]
struct KeyValue {
    #[serde(default, deserialize_with = "string_de")]
    key: String,
    #[serde(default)]
    value: Option<AnyValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyValue {
    #[serde(default)]
    string_value: Option<String>,
    #[serde(default)]
    bool_value: Option<bool>,
    #[serde(default, deserialize_with = "i64_opt_de")]
    int_value: Option<i64>,
    #[serde(default, deserialize_with = "f64_opt_de")]
    double_value: Option<f64>,
    #[serde(default)]
    array_value: Option<ArrayValue>,
    #[serde(default)]
    kvlist_value: Option<KvList>,
    #[serde(default, deserialize_with = "opt_base64_de")]
    bytes_value: Option<Vec<u8>>,
}

fn opt_base64_de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "base64_de")] Vec<u8>);
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

#[derive(Deserialize)]
struct ArrayValue {
    #[serde(default, deserialize_with = "vec_de")]
    values: Vec<AnyValue>,
}

#[derive(Deserialize)]
struct KvList {
    #[serde(default, deserialize_with = "vec_de")]
    values: Vec<KeyValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metric {
    #[serde(default, deserialize_with = "string_de")]
    name: String,
    #[serde(default, deserialize_with = "string_de")]
    description: String,
    #[serde(default, deserialize_with = "string_de")]
    unit: String,
    #[serde(default)]
    gauge: Option<Gauge>,
    #[serde(default)]
    sum: Option<Sum>,
    #[serde(default)]
    histogram: Option<Histogram>,
    #[serde(default)]
    exponential_histogram: Option<ExpHistogram>,
    #[serde(default)]
    summary: Option<Summary>,
    #[serde(default, deserialize_with = "vec_de")]
    metadata: Vec<KeyValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Gauge {
    #[serde(default, deserialize_with = "vec_de")]
    data_points: Vec<NumberDataPoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sum {
    #[serde(default, deserialize_with = "vec_de")]
    data_points: Vec<NumberDataPoint>,
    #[serde(default, deserialize_with = "temporality_de")]
    aggregation_temporality: i32,
    #[serde(default, deserialize_with = "bool_de")]
    is_monotonic: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Histogram {
    #[serde(default, deserialize_with = "vec_de")]
    data_points: Vec<HistogramDataPoint>,
    #[serde(default, deserialize_with = "temporality_de")]
    aggregation_temporality: i32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExpHistogram {
    #[serde(default, deserialize_with = "vec_de")]
    data_points: Vec<ExpDataPoint>,
    #[serde(default, deserialize_with = "temporality_de")]
    aggregation_temporality: i32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    #[serde(default, deserialize_with = "vec_de")]
    data_points: Vec<SummaryDataPoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NumberDataPoint {
    #[serde(default, deserialize_with = "vec_de")]
    attributes: Vec<KeyValue>,
    #[serde(default, deserialize_with = "u64_de")]
    start_time_unix_nano: u64,
    #[serde(default, deserialize_with = "u64_de")]
    time_unix_nano: u64,
    #[serde(default, deserialize_with = "f64_opt_de")]
    as_double: Option<f64>,
    #[serde(default, deserialize_with = "i64_opt_de")]
    as_int: Option<i64>,
    #[serde(default, deserialize_with = "vec_de")]
    exemplars: Vec<Exemplar>,
    #[serde(default, deserialize_with = "u32_de")]
    flags: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistogramDataPoint {
    #[serde(default, deserialize_with = "vec_de")]
    attributes: Vec<KeyValue>,
    #[serde(default, deserialize_with = "u64_de")]
    start_time_unix_nano: u64,
    #[serde(default, deserialize_with = "u64_de")]
    time_unix_nano: u64,
    #[serde(default, deserialize_with = "u64_de")]
    count: u64,
    #[serde(default, deserialize_with = "f64_opt_de")]
    sum: Option<f64>,
    #[serde(default, deserialize_with = "u64_vec_de")]
    bucket_counts: Vec<u64>,
    #[serde(default, deserialize_with = "f64_vec_de")]
    explicit_bounds: Vec<f64>,
    #[serde(default, deserialize_with = "vec_de")]
    exemplars: Vec<Exemplar>,
    #[serde(default, deserialize_with = "u32_de")]
    flags: u32,
    #[serde(default, deserialize_with = "f64_opt_de")]
    min: Option<f64>,
    #[serde(default, deserialize_with = "f64_opt_de")]
    max: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Buckets {
    #[serde(default, deserialize_with = "i32_de")]
    offset: i32,
    #[serde(default, deserialize_with = "u64_vec_de")]
    bucket_counts: Vec<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExpDataPoint {
    #[serde(default, deserialize_with = "vec_de")]
    attributes: Vec<KeyValue>,
    #[serde(default, deserialize_with = "u64_de")]
    start_time_unix_nano: u64,
    #[serde(default, deserialize_with = "u64_de")]
    time_unix_nano: u64,
    #[serde(default, deserialize_with = "u64_de")]
    count: u64,
    #[serde(default, deserialize_with = "f64_opt_de")]
    sum: Option<f64>,
    #[serde(default, deserialize_with = "i32_de")]
    scale: i32,
    #[serde(default, deserialize_with = "u64_de")]
    zero_count: u64,
    #[serde(default)]
    positive: Option<Buckets>,
    #[serde(default)]
    negative: Option<Buckets>,
    #[serde(default, deserialize_with = "u32_de")]
    flags: u32,
    #[serde(default, deserialize_with = "vec_de")]
    exemplars: Vec<Exemplar>,
    #[serde(default, deserialize_with = "f64_opt_de")]
    min: Option<f64>,
    #[serde(default, deserialize_with = "f64_opt_de")]
    max: Option<f64>,
    #[serde(default, deserialize_with = "f64_de")]
    zero_threshold: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SummaryDataPoint {
    #[serde(default, deserialize_with = "vec_de")]
    attributes: Vec<KeyValue>,
    #[serde(default, deserialize_with = "u64_de")]
    start_time_unix_nano: u64,
    #[serde(default, deserialize_with = "u64_de")]
    time_unix_nano: u64,
    #[serde(default, deserialize_with = "u64_de")]
    count: u64,
    #[serde(default, deserialize_with = "f64_de")]
    sum: f64,
    #[serde(default, deserialize_with = "vec_de")]
    quantile_values: Vec<Quantile>,
    #[serde(default, deserialize_with = "u32_de")]
    flags: u32,
}

#[derive(Deserialize)]
struct Quantile {
    #[serde(default, deserialize_with = "f64_de")]
    quantile: f64,
    #[serde(default, deserialize_with = "f64_de")]
    value: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Exemplar {
    #[serde(default, deserialize_with = "vec_de")]
    filtered_attributes: Vec<KeyValue>,
    #[serde(default, deserialize_with = "u64_de")]
    time_unix_nano: u64,
    #[serde(default, deserialize_with = "f64_opt_de")]
    as_double: Option<f64>,
    #[serde(default, deserialize_with = "i64_opt_de")]
    as_int: Option<i64>,
    #[serde(default, deserialize_with = "hex_de")]
    span_id: Vec<u8>,
    #[serde(default, deserialize_with = "hex_de")]
    trace_id: Vec<u8>,
}

// ---- conversion to the prost types ------------------------------------------------------------

fn kvs(v: Vec<KeyValue>) -> Vec<common::KeyValue> {
    v.into_iter().map(Into::into).collect()
}

impl From<Request> for coll::ExportMetricsServiceRequest {
    fn from(r: Request) -> Self {
        coll::ExportMetricsServiceRequest {
            resource_metrics: r.resource_metrics.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<ResourceMetrics> for m::ResourceMetrics {
    fn from(r: ResourceMetrics) -> Self {
        m::ResourceMetrics {
            resource: r.resource.map(|r| resource::Resource {
                attributes: kvs(r.attributes),
                dropped_attributes_count: r.dropped_attributes_count,
                entity_refs: Vec::new(),
            }),
            scope_metrics: r.scope_metrics.into_iter().map(Into::into).collect(),
            schema_url: r.schema_url,
        }
    }
}

impl From<ScopeMetrics> for m::ScopeMetrics {
    fn from(s: ScopeMetrics) -> Self {
        m::ScopeMetrics {
            scope: s.scope.map(|s| common::InstrumentationScope {
                name: s.name,
                version: s.version,
                attributes: kvs(s.attributes),
                dropped_attributes_count: s.dropped_attributes_count,
            }),
            metrics: s.metrics.into_iter().map(Into::into).collect(),
            schema_url: s.schema_url,
        }
    }
}

impl From<KeyValue> for common::KeyValue {
    fn from(kv: KeyValue) -> Self {
        common::KeyValue {
            key: kv.key,
            value: kv.value.map(Into::into),
            key_strindex: 0,
        }
    }
}

impl From<AnyValue> for common::AnyValue {
    fn from(v: AnyValue) -> Self {
        use common::any_value::Value;
        let value = if let Some(s) = v.string_value {
            Some(Value::StringValue(s))
        } else if let Some(b) = v.bool_value {
            Some(Value::BoolValue(b))
        } else if let Some(i) = v.int_value {
            Some(Value::IntValue(i))
        } else if let Some(d) = v.double_value {
            Some(Value::DoubleValue(d))
        } else if let Some(a) = v.array_value {
            Some(Value::ArrayValue(common::ArrayValue {
                values: a.values.into_iter().map(Into::into).collect(),
            }))
        } else if let Some(kv) = v.kvlist_value {
            Some(Value::KvlistValue(common::KeyValueList {
                values: kvs(kv.values),
            }))
        } else {
            v.bytes_value.map(Value::BytesValue)
        };
        common::AnyValue { value }
    }
}

impl From<Metric> for m::Metric {
    fn from(x: Metric) -> Self {
        use m::metric::Data;
        let data = if let Some(g) = x.gauge {
            Some(Data::Gauge(m::Gauge {
                data_points: g.data_points.into_iter().map(Into::into).collect(),
            }))
        } else if let Some(s) = x.sum {
            Some(Data::Sum(m::Sum {
                data_points: s.data_points.into_iter().map(Into::into).collect(),
                aggregation_temporality: s.aggregation_temporality,
                is_monotonic: s.is_monotonic,
            }))
        } else if let Some(h) = x.histogram {
            Some(Data::Histogram(m::Histogram {
                data_points: h.data_points.into_iter().map(Into::into).collect(),
                aggregation_temporality: h.aggregation_temporality,
            }))
        } else if let Some(h) = x.exponential_histogram {
            Some(Data::ExponentialHistogram(m::ExponentialHistogram {
                data_points: h.data_points.into_iter().map(Into::into).collect(),
                aggregation_temporality: h.aggregation_temporality,
            }))
        } else {
            x.summary.map(|s| {
                Data::Summary(m::Summary {
                    data_points: s.data_points.into_iter().map(Into::into).collect(),
                })
            })
        };
        m::Metric {
            name: x.name,
            description: x.description,
            unit: x.unit,
            metadata: kvs(x.metadata),
            data,
        }
    }
}

fn exemplars(v: Vec<Exemplar>) -> Vec<m::Exemplar> {
    v.into_iter()
        .map(|e| m::Exemplar {
            filtered_attributes: kvs(e.filtered_attributes),
            time_unix_nano: e.time_unix_nano,
            span_id: e.span_id,
            trace_id: e.trace_id,
            value: match (e.as_double, e.as_int) {
                (Some(d), _) => Some(m::exemplar::Value::AsDouble(d)),
                (None, Some(i)) => Some(m::exemplar::Value::AsInt(i)),
                _ => None,
            },
        })
        .collect()
}

impl From<NumberDataPoint> for m::NumberDataPoint {
    fn from(p: NumberDataPoint) -> Self {
        m::NumberDataPoint {
            attributes: kvs(p.attributes),
            start_time_unix_nano: p.start_time_unix_nano,
            time_unix_nano: p.time_unix_nano,
            exemplars: exemplars(p.exemplars),
            flags: p.flags,
            value: match (p.as_double, p.as_int) {
                (Some(d), _) => Some(m::number_data_point::Value::AsDouble(d)),
                (None, Some(i)) => Some(m::number_data_point::Value::AsInt(i)),
                _ => None,
            },
        }
    }
}

impl From<HistogramDataPoint> for m::HistogramDataPoint {
    fn from(p: HistogramDataPoint) -> Self {
        m::HistogramDataPoint {
            attributes: kvs(p.attributes),
            start_time_unix_nano: p.start_time_unix_nano,
            time_unix_nano: p.time_unix_nano,
            count: p.count,
            sum: p.sum,
            bucket_counts: p.bucket_counts,
            explicit_bounds: p.explicit_bounds,
            exemplars: exemplars(p.exemplars),
            flags: p.flags,
            min: p.min,
            max: p.max,
        }
    }
}

fn buckets(b: Option<Buckets>) -> Option<m::exponential_histogram_data_point::Buckets> {
    b.map(|b| m::exponential_histogram_data_point::Buckets {
        offset: b.offset,
        bucket_counts: b.bucket_counts,
    })
}

impl From<ExpDataPoint> for m::ExponentialHistogramDataPoint {
    fn from(p: ExpDataPoint) -> Self {
        m::ExponentialHistogramDataPoint {
            attributes: kvs(p.attributes),
            start_time_unix_nano: p.start_time_unix_nano,
            time_unix_nano: p.time_unix_nano,
            count: p.count,
            sum: p.sum,
            scale: p.scale,
            zero_count: p.zero_count,
            positive: buckets(p.positive),
            negative: buckets(p.negative),
            flags: p.flags,
            exemplars: exemplars(p.exemplars),
            min: p.min,
            max: p.max,
            zero_threshold: p.zero_threshold,
        }
    }
}

impl From<SummaryDataPoint> for m::SummaryDataPoint {
    fn from(p: SummaryDataPoint) -> Self {
        m::SummaryDataPoint {
            attributes: kvs(p.attributes),
            start_time_unix_nano: p.start_time_unix_nano,
            time_unix_nano: p.time_unix_nano,
            count: p.count,
            sum: p.sum,
            quantile_values: p
                .quantile_values
                .into_iter()
                .map(|q| m::summary_data_point::ValueAtQuantile {
                    quantile: q.quantile,
                    value: q.value,
                })
                .collect(),
            flags: p.flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_both_alphabets() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn integers_as_strings_or_numbers() {
        let j = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","sum":{
            "aggregationTemporality":2,"isMonotonic":true,"dataPoints":[
              {"timeUnixNano":"1700000000000000000","asInt":"7"},
              {"timeUnixNano":1700000001000000000,"asInt":8,"flags":1},
              {"timeUnixNano":"1700000002000000000","asDouble":"NaN",
               "exemplars":[{"spanId":"00f067aa0ba902b7","traceId":"5b8efff798038103d269b633813fc60c","asDouble":1.5}]}
            ]}}]}]}]}"#;
        let r = decode(j).unwrap();
        let m = &r.resource_metrics[0].scope_metrics[0].metrics[0];
        let Some(m::metric::Data::Sum(s)) = &m.data else {
            panic!()
        };
        assert_eq!(s.aggregation_temporality, 2);
        assert!(s.is_monotonic);
        assert_eq!(s.data_points[0].time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(
            s.data_points[0].value,
            Some(m::number_data_point::Value::AsInt(7))
        );
        assert_eq!(s.data_points[1].flags, 1);
        let Some(m::number_data_point::Value::AsDouble(v)) = s.data_points[2].value else {
            panic!()
        };
        assert!(v.is_nan());
        assert_eq!(
            s.data_points[2].exemplars[0].span_id,
            vec![0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let e = decode(br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{"dataPoints":[{"asInt":"seven"}]}}]}]}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("seven") && e.contains("line 1"), "{e}");
        let e = decode(br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"exponentialHistogram":{"dataPoints":[{"positive":{"offset":4294967296}}]}}]}]}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("32-bit"), "{e}");
        assert!(decode(br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"dataPoints":[{"exemplars":[{"spanId":"zz"}]}]}}]}]}]}"#).is_err());
        assert!(decode(b"[1,2]").is_err());
    }

    #[test]
    fn unknown_fields_and_nulls_are_ignored() {
        let r = decode(
            br#"{"resourceMetrics":[{"resource":null,"futureField":{"a":1},"scopeMetrics":null}]}"#,
        )
        .unwrap();
        assert_eq!(r.resource_metrics.len(), 1);
    }
}
