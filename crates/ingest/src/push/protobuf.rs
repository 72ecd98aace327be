//! Push bodies in the protobuf delimited format (`application/vnd.google.protobuf;
//! proto=io.prometheus.client.MetricFamily; encoding=delimited`), which Go's client library
//! pushes by default. Each `MetricFamily` becomes a [`Family`] with the same sample lines the
//! text format would have (`_bucket`/`_sum`/`_count` for histograms, `quantile` lines for
//! summaries), so both formats end up identical in a group and in storage.

use std::collections::BTreeMap;

use prost::Message;
use sextant_model::{Labels, MetricType, METRIC_NAME};

use super::store::{Family, ParsedBody};
use super::PushError;
use crate::client_model as pb;

/// Is this the Pushgateway's protobuf content type?
pub fn is_protobuf(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let mut parts = ct.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|m| m.eq_ignore_ascii_case("application/vnd.google.protobuf"))
    {
        return false;
    }
    let params: BTreeMap<String, String> = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            )
        })
        .collect();
    params.get("proto").map(String::as_str) == Some("io.prometheus.client.MetricFamily")
        && params.get("encoding").map(String::as_str) == Some("delimited")
}

/// Decodes length-delimited `MetricFamily` messages until the body ends.
pub fn parse_protobuf(mut body: &[u8]) -> Result<ParsedBody, PushError> {
    let mut out = ParsedBody::default();
    let mut n = 0;
    while !body.is_empty() {
        n += 1;
        let mf = pb::MetricFamily::decode_length_delimited(&mut body).map_err(|e| {
            PushError::Body(format!("invalid protobuf MetricFamily message #{n}: {e}"))
        })?;
        let name = mf.name().to_string();
        if name.is_empty() {
            return Err(PushError::Body(format!(
                "protobuf MetricFamily message #{n} has no name"
            )));
        }
        let kind = match mf.r#type() {
            pb::MetricType::Counter => MetricType::Counter,
            pb::MetricType::Gauge => MetricType::Gauge,
            pb::MetricType::Summary => MetricType::Summary,
            pb::MetricType::Untyped => MetricType::Unknown,
            pb::MetricType::Histogram => MetricType::Histogram,
            pb::MetricType::GaugeHistogram => MetricType::GaugeHistogram,
        };
        let mut fam = Family {
            kind,
            help: mf.help().to_string(),
            samples: Vec::new(),
            pushed_ms: 0,
        };
        for m in &mf.metric {
            if m.timestamp_ms.is_some() {
                out.has_timestamps = true;
            }
            let base: Vec<(String, String)> = m
                .label
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect();
            if let Err(e) = add_metric(&mut fam, &name, kind, &base, m) {
                out.invalid.get_or_insert(e);
            }
        }
        // A later family of the same name replaces an earlier one, like the Pushgateway's map.
        if !fam.samples.is_empty() {
            out.families.insert(name, fam);
        }
    }
    Ok(out)
}

fn labels(name: &str, base: &[(String, String)], extra: Option<(&str, String)>) -> Labels {
    Labels::from_pairs(
        base.iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(extra.map(|(k, v)| (k.to_string(), v)))
            .chain([(METRIC_NAME.to_string(), name.to_string())]),
    )
}

/// Adds one metric's sample lines; Err says why it does not fit its family's type.
fn add_metric(
    fam: &mut Family,
    name: &str,
    kind: MetricType,
    base: &[(String, String)],
    m: &pb::Metric,
) -> Result<(), String> {
    let wrong = || {
        format!(
            "metric of family {name:?} has no {} value",
            super::store::type_name(kind)
        )
    };
    match kind {
        MetricType::Counter => {
            let c = m.counter.as_ref().ok_or_else(wrong)?;
            fam.samples.push((labels(name, base, None), c.value()));
        }
        MetricType::Gauge => {
            let g = m.gauge.as_ref().ok_or_else(wrong)?;
            fam.samples.push((labels(name, base, None), g.value()));
        }
        MetricType::Unknown => {
            let u = m.untyped.as_ref().ok_or_else(wrong)?;
            fam.samples.push((labels(name, base, None), u.value()));
        }
        MetricType::Summary => {
            let s = m.summary.as_ref().ok_or_else(wrong)?;
            for q in &s.quantile {
                fam.samples.push((
                    labels(
                        name,
                        base,
                        Some(("quantile", format_go_float(q.quantile()))),
                    ),
                    q.value(),
                ));
            }
            fam.samples
                .push((labels(&format!("{name}_sum"), base, None), s.sample_sum()));
            fam.samples.push((
                labels(&format!("{name}_count"), base, None),
                s.sample_count() as f64,
            ));
        }
        _ => {
            let h = m.histogram.as_ref().ok_or_else(wrong)?;
            let native = h.schema.is_some()
                || !h.positive_span.is_empty()
                || !h.negative_span.is_empty()
                || h.zero_threshold.is_some();
            if native && h.bucket.is_empty() {
                return Err(format!(
                    "histogram {name:?} is a native histogram, which pushes do not support yet; push classic buckets"
                ));
            }
            let count = if h.sample_count_float() > 0.0 {
                h.sample_count_float()
            } else {
                h.sample_count() as f64
            };
            let bucket_name = format!("{name}_bucket");
            let mut has_inf = false;
            for b in &h.bucket {
                let c = if b.cumulative_count_float() > 0.0 {
                    b.cumulative_count_float()
                } else {
                    b.cumulative_count() as f64
                };
                has_inf |= b.upper_bound() == f64::INFINITY;
                fam.samples.push((
                    labels(
                        &bucket_name,
                        base,
                        Some(("le", format_go_float(b.upper_bound()))),
                    ),
                    c,
                ));
            }
            if !has_inf {
                fam.samples.push((
                    labels(&bucket_name, base, Some(("le", "+Inf".to_string()))),
                    count,
                ));
            }
            fam.samples
                .push((labels(&format!("{name}_sum"), base, None), h.sample_sum()));
            fam.samples
                .push((labels(&format!("{name}_count"), base, None), count));
        }
    }
    Ok(())
}

/// A float the way Go's `fmt.Sprint` (and `strconv.FormatFloat(v, 'g', -1, 64)`) prints it,
/// which is how Prometheus' libraries write `le` and `quantile` values and the Pushgateway's
/// JSON API writes values: shortest digits, exponent form when the decimal exponent is below
/// -4 or at least 6 (`0.0001`, `1e-05`, `123456`, `1e+06`).
pub fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let e = format!("{v:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    format!("{v}")
}
