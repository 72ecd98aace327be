//! Protobuf → model conversion for remote write 1.0 and 2.0. The message is decoded with prost
//! in one pass, then each series is checked and moved (not copied, for 1.0) into model types;
//! the only allocations per series are its label and sample vectors.

use std::fmt::Write as _;

use prost::Message;
use sextant_model::{
    CounterResetHint, Exemplar, FloatHistogram, Histogram, HistogramValue, Label, Labels, Metadata,
    MetricType, Sample, Span, METRIC_NAME,
};

use super::fast_v1;
use super::proto::{v1, v2};
use super::{DecodeError, DecodeLimits, Rejected, SeriesSamples, WriteBatch};

/// Longest label value shown when rendering a rejected series; longer ones are shortened.
const RENDER_VALUE_MAX: usize = 120;

/// Decodes an uncompressed `prometheus.WriteRequest` (remote write 1.0).
///
/// Labels and samples are read in place by the zero-copy reader in `fast_v1` (one allocation per
/// label string); histograms, exemplars and metadata are decoded by prost. Behaviour, including
/// error text, is the same as decoding the whole message with prost first.
pub fn decode_v1(raw: &[u8], limits: &DecodeLimits) -> Result<WriteBatch, DecodeError> {
    let mut batch = WriteBatch::default();
    let metadata = fast_v1::read_write_request(raw, |parts| {
        push_series_v1(&mut batch, parts, limits);
    })
    .map_err(|e| DecodeError::Protobuf(format!("cannot decode prometheus.WriteRequest: {e}")))?;
    batch.metadata.reserve_exact(metadata.len());
    for m in metadata {
        batch.metadata.push(Metadata {
            metric_family: m.metric_family_name,
            kind: metric_type(m.r#type),
            help: m.help,
            unit: m.unit,
        });
    }
    Ok(batch)
}

/// Checks and converts one series handed over by the zero-copy reader.
fn push_series_v1(
    batch: &mut WriteBatch,
    parts: fast_v1::SeriesParts<'_, '_>,
    limits: &DecodeLimits,
) {
    let n_samples = parts.samples.len() + parts.rare.histograms.len();
    let labels = match labels_from_pairs(parts.labels, limits) {
        Ok(l) => l,
        Err((rendered, reason)) => {
            batch.rejected.push(Rejected {
                labels: rendered,
                reason,
                samples: n_samples,
            });
            return;
        }
    };
    let mut histograms = Vec::with_capacity(parts.rare.histograms.len());
    for h in parts.rare.histograms.drain(..) {
        match histogram_v1(h) {
            Ok(v) => histograms.push(v),
            Err(reason) => {
                batch.rejected.push(Rejected {
                    labels: labels.to_string(),
                    reason,
                    samples: n_samples,
                });
                return;
            }
        }
    }
    batch.series.push(SeriesSamples {
        labels,
        samples: parts.samples.to_vec(),
        histograms,
        exemplars: parts.rare.exemplars.drain(..).map(exemplar_v1).collect(),
    });
}

/// Checks and converts 1.0 labels borrowed from the request, allocating each string once. On
/// failure returns the rendered labels and the reason (same checks, in the same order, as the
/// prost-based path).
fn labels_from_pairs(
    pairs: &[(&str, &str)],
    limits: &DecodeLimits,
) -> Result<Labels, (String, String)> {
    if let Err(reason) = check_limits(pairs.len(), pairs.iter().copied(), limits) {
        return Err((render(pairs.iter().copied().map(Some)), reason));
    }
    let owned = || -> Vec<Label> {
        pairs
            .iter()
            .map(|(n, v)| Label {
                name: (*n).to_owned(),
                value: (*v).to_owned(),
            })
            .collect()
    };
    if !pairs_look_valid(pairs) {
        // Rare path: render what was sent before `from_wire` reports the problem.
        let rendered = render(pairs.iter().copied().map(Some));
        return Labels::from_wire(owned()).map_err(|e| (rendered, e.to_string()));
    }
    Labels::from_wire(owned()).map_err(|e| (String::from("{}"), e.to_string()))
}

/// [`looks_valid`] on borrowed pairs.
fn pairs_look_valid(pairs: &[(&str, &str)]) -> bool {
    use sextant_model::labels::{is_valid_label_name, is_valid_metric_name};
    !pairs.is_empty()
        && pairs.windows(2).all(|w| w[0].0 < w[1].0)
        && pairs.iter().all(|(n, v)| {
            if *n == METRIC_NAME {
                is_valid_metric_name(v)
            } else {
                is_valid_label_name(n)
            }
        })
        && pairs.iter().any(|(n, _)| *n == METRIC_NAME)
}

/// The original prost-based 1.0 decoder, kept as the reference the zero-copy reader is tested
/// (and benchmarked) against.
#[cfg(test)]
pub(super) fn decode_v1_prost(
    raw: &[u8],
    limits: &DecodeLimits,
) -> Result<WriteBatch, DecodeError> {
    let req = v1::WriteRequest::decode(raw).map_err(|e| {
        DecodeError::Protobuf(format!("cannot decode prometheus.WriteRequest: {e}"))
    })?;

    let mut batch = WriteBatch {
        series: Vec::with_capacity(req.timeseries.len()),
        metadata: Vec::with_capacity(req.metadata.len()),
        rejected: Vec::new(),
    };

    for ts in req.timeseries {
        let n_samples = ts.samples.len() + ts.histograms.len();
        let labels = match wire_labels_v1(ts.labels, limits) {
            Ok(l) => l,
            Err((rendered, reason)) => {
                batch.rejected.push(Rejected {
                    labels: rendered,
                    reason,
                    samples: n_samples,
                });
                continue;
            }
        };
        let mut histograms = Vec::with_capacity(ts.histograms.len());
        let mut bad_histogram = None;
        for h in ts.histograms {
            match histogram_v1(h) {
                Ok(v) => histograms.push(v),
                Err(reason) => {
                    bad_histogram = Some(reason);
                    break;
                }
            }
        }
        if let Some(reason) = bad_histogram {
            batch.rejected.push(Rejected {
                labels: labels.to_string(),
                reason,
                samples: n_samples,
            });
            continue;
        }
        batch.series.push(SeriesSamples {
            labels,
            samples: ts
                .samples
                .iter()
                .map(|s| Sample::new(s.timestamp, s.value))
                .collect(),
            histograms,
            exemplars: ts.exemplars.into_iter().map(exemplar_v1).collect(),
        });
    }

    for m in req.metadata {
        batch.metadata.push(Metadata {
            metric_family: m.metric_family_name,
            kind: metric_type(m.r#type),
            help: m.help,
            unit: m.unit,
        });
    }
    Ok(batch)
}

/// Decodes an uncompressed `io.prometheus.write.v2.Request` (remote write 2.0). Label, help and
/// unit strings are resolved through the request's symbol table; a reference outside it rejects
/// only the series that holds it.
pub fn decode_v2(raw: &[u8], limits: &DecodeLimits) -> Result<WriteBatch, DecodeError> {
    let req = v2::Request::decode(raw).map_err(|e| {
        DecodeError::Protobuf(format!("cannot decode io.prometheus.write.v2.Request: {e}"))
    })?;
    let symbols = &req.symbols;

    let mut batch = WriteBatch {
        series: Vec::with_capacity(req.timeseries.len()),
        metadata: Vec::new(),
        rejected: Vec::new(),
    };

    for ts in req.timeseries {
        let n_samples = ts.samples.len() + ts.histograms.len();
        let labels = match wire_labels_v2(&ts.labels_refs, symbols, limits) {
            Ok(l) => l,
            Err((rendered, reason)) => {
                batch.rejected.push(Rejected {
                    labels: rendered,
                    reason,
                    samples: n_samples,
                });
                continue;
            }
        };
        let reject = |reason: String| Rejected {
            labels: labels.to_string(),
            reason,
            samples: n_samples,
        };

        let metadata = match ts.metadata {
            Some(m) if m != v2::Metadata::default() => {
                match (symbol(symbols, m.help_ref), symbol(symbols, m.unit_ref)) {
                    (Ok(help), Ok(unit)) => Some((metric_type(m.r#type), help, unit)),
                    (Err(e), _) => {
                        batch
                            .rejected
                            .push(reject(format!("metadata help_ref: {e}")));
                        continue;
                    }
                    (_, Err(e)) => {
                        batch
                            .rejected
                            .push(reject(format!("metadata unit_ref: {e}")));
                        continue;
                    }
                }
            }
            _ => None,
        };

        let mut histograms = Vec::with_capacity(ts.histograms.len());
        let mut bad_histogram = None;
        for h in ts.histograms {
            match histogram_v2(h) {
                Ok(v) => histograms.push(v),
                Err(reason) => {
                    bad_histogram = Some(reason);
                    break;
                }
            }
        }
        if let Some(reason) = bad_histogram {
            batch.rejected.push(reject(reason));
            continue;
        }

        let mut exemplars = Vec::with_capacity(ts.exemplars.len());
        let mut bad_exemplar = None;
        for e in &ts.exemplars {
            match exemplar_v2(e, symbols) {
                Ok(x) => exemplars.push(x),
                Err(reason) => {
                    bad_exemplar = Some(reason);
                    break;
                }
            }
        }
        if let Some(reason) = bad_exemplar {
            batch.rejected.push(reject(reason));
            continue;
        }

        if let (Some((kind, help, unit)), Some(family)) = (metadata, labels.metric_name()) {
            let same_as_last = batch.metadata.last().is_some_and(|m| {
                m.metric_family == family && m.kind == kind && m.help == help && m.unit == unit
            });
            if !same_as_last {
                batch.metadata.push(Metadata {
                    metric_family: family.to_string(),
                    kind,
                    help: help.to_string(),
                    unit: unit.to_string(),
                });
            }
        }

        batch.series.push(SeriesSamples {
            labels,
            samples: ts
                .samples
                .iter()
                .map(|s| Sample::new(s.timestamp, s.value))
                .collect(),
            histograms,
            exemplars,
        });
    }
    Ok(batch)
}

/// A 1.0 exemplar as a model exemplar; its labels are checked when it is stored.
fn exemplar_v1(e: v1::Exemplar) -> Exemplar {
    Exemplar {
        labels: Labels::from_pairs(e.labels.into_iter().map(|l| (l.name, l.value))),
        value: e.value,
        ts: e.timestamp,
    }
}

/// A 2.0 exemplar with its label refs resolved through `symbols`.
fn exemplar_v2(e: &v2::Exemplar, symbols: &[String]) -> Result<Exemplar, String> {
    // Not `is_multiple_of`: the workspace MSRV is 1.85.
    if e.labels_refs.len() & 1 == 1 {
        return Err(format!(
            "exemplar labels_refs has an odd number of entries ({})",
            e.labels_refs.len()
        ));
    }
    let mut pairs = Vec::with_capacity(e.labels_refs.len() / 2);
    for p in e.labels_refs.chunks_exact(2) {
        let name = symbol(symbols, p[0]).map_err(|err| format!("exemplar label name: {err}"))?;
        let value = symbol(symbols, p[1]).map_err(|err| format!("exemplar label value: {err}"))?;
        pairs.push((name, value));
    }
    Ok(Exemplar {
        labels: Labels::from_pairs(pairs),
        value: e.value,
        ts: e.timestamp,
    })
}

/// Looks up one symbol, or says why it cannot be.
fn symbol(symbols: &[String], reference: u32) -> Result<&str, DecodeError> {
    symbols
        .get(reference as usize)
        .map(String::as_str)
        .ok_or(DecodeError::BadSymbolRef {
            reference,
            symbols: symbols.len(),
        })
}

/// Maps the wire metric type (same numbering in 1.0 and 2.0) to ours; unknown values → Unknown.
fn metric_type(t: i32) -> MetricType {
    u8::try_from(t).map(MetricType::from_u8).unwrap_or_default()
}

/// Maps the wire reset hint (same numbering in 1.0 and 2.0) to ours; unknown values → Unknown.
fn reset_hint(h: i32) -> CounterResetHint {
    u8::try_from(h)
        .map(CounterResetHint::from_u8)
        .unwrap_or_default()
}

/// Checks the per-series limits on label pairs as they arrived.
fn check_limits<'a>(
    n: usize,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    limits: &DecodeLimits,
) -> Result<(), String> {
    if limits.max_labels_per_series > 0 && n > limits.max_labels_per_series {
        return Err(format!(
            "series has {n} labels, over the limit of {} (limit labels_per_series)",
            limits.max_labels_per_series
        ));
    }
    if limits.max_label_name_len == 0 && limits.max_label_value_len == 0 {
        return Ok(());
    }
    for (name, value) in pairs {
        if limits.max_label_name_len > 0 && name.len() > limits.max_label_name_len {
            return Err(format!(
                "label name {:?} is {} bytes long, over the limit of {} (limit label_name_length)",
                shorten(name),
                name.len(),
                limits.max_label_name_len
            ));
        }
        if limits.max_label_value_len > 0 && value.len() > limits.max_label_value_len {
            return Err(format!(
                "value of label {:?} is {} bytes long, over the limit of {} (limit label_value_length)",
                shorten(name),
                value.len(),
                limits.max_label_value_len
            ));
        }
    }
    Ok(())
}

/// Checks and converts 1.0 labels, moving their strings (prost-based reference path). On
/// failure returns the rendered labels and the reason.
#[cfg(test)]
fn wire_labels_v1(wire: Vec<v1::Label>, limits: &DecodeLimits) -> Result<Labels, (String, String)> {
    let pairs = || wire.iter().map(|l| (l.name.as_str(), l.value.as_str()));
    if let Err(reason) = check_limits(wire.len(), pairs(), limits) {
        return Err((render(pairs().map(Some)), reason));
    }
    let labels: Vec<Label> = wire
        .into_iter()
        .map(|l| Label {
            name: l.name,
            value: l.value,
        })
        .collect();
    if !looks_valid(&labels) {
        // Rare path: render before `from_wire` consumes the labels, so the rejection can show
        // what was sent.
        let rendered = render(
            labels
                .iter()
                .map(|l| Some((l.name.as_str(), l.value.as_str()))),
        );
        return match Labels::from_wire(labels) {
            Ok(l) => Ok(l),
            Err(e) => Err((rendered, e.to_string())),
        };
    }
    Labels::from_wire(labels).map_err(|e| (String::from("{}"), e.to_string()))
}

/// A cheap pre-check mirroring `Labels::from_wire`, so the common valid case moves the labels
/// straight in and only invalid series pay for rendering.
#[cfg(test)]
fn looks_valid(labels: &[Label]) -> bool {
    use sextant_model::labels::{is_valid_label_name, is_valid_metric_name};
    !labels.is_empty()
        && labels.windows(2).all(|w| w[0].name < w[1].name)
        && labels.iter().all(|l| {
            if l.name == METRIC_NAME {
                is_valid_metric_name(&l.value)
            } else {
                is_valid_label_name(&l.name)
            }
        })
        && labels.iter().any(|l| l.name == METRIC_NAME)
}

/// Resolves and checks 2.0 label references. On failure returns the rendered labels (with
/// unresolvable references shown as `<bad ref>`) and the reason.
fn wire_labels_v2(
    refs: &[u32],
    symbols: &[String],
    limits: &DecodeLimits,
) -> Result<Labels, (String, String)> {
    let rendered = || {
        render(refs.chunks(2).map(|p| {
            let n = p.first().and_then(|r| symbols.get(*r as usize));
            let v = p.get(1).and_then(|r| symbols.get(*r as usize));
            n.zip(v).map(|(n, v)| (n.as_str(), v.as_str()))
        }))
    };
    // Not `is_multiple_of`: the workspace MSRV is 1.85.
    if refs.len() & 1 == 1 {
        return Err((
            rendered(),
            format!(
                "labels_refs has an odd number of entries ({}); it must hold name/value pairs",
                refs.len()
            ),
        ));
    }
    let mut labels = Vec::with_capacity(refs.len() / 2);
    for pair in refs.chunks_exact(2) {
        let name = symbol(symbols, pair[0]);
        let value = symbol(symbols, pair[1]);
        match (name, value) {
            (Ok(name), Ok(value)) => labels.push((name, value)),
            (Err(e), _) | (_, Err(e)) => return Err((rendered(), format!("label {e}"))),
        }
    }
    if let Err(reason) = check_limits(labels.len(), labels.iter().copied(), limits) {
        return Err((rendered(), reason));
    }
    let owned: Vec<Label> = labels.iter().map(|(n, v)| Label::new(*n, *v)).collect();
    Labels::from_wire(owned).map_err(|e| (rendered(), e.to_string()))
}

/// Renders wire labels in Prometheus notation, best effort: `name{a="1", b="2"}`; `None`
/// entries (unresolvable references) are shown as `<bad ref>`, long values are shortened.
fn render<'a>(pairs: impl Iterator<Item = Option<(&'a str, &'a str)>>) -> String {
    let pairs: Vec<Option<(&str, &str)>> = pairs.collect();
    let mut out = String::new();
    let name = pairs
        .iter()
        .flatten()
        .find(|(n, _)| *n == METRIC_NAME)
        .map(|(_, v)| *v);
    if let Some(n) = name {
        out.push_str(shorten(n));
    }
    out.push('{');
    let mut first = true;
    for p in &pairs {
        if matches!(p, Some((n, _)) if *n == METRIC_NAME) && name.is_some() {
            continue;
        }
        if !first {
            out.push_str(", ");
        }
        first = false;
        match p {
            Some((n, v)) => {
                let _ = write!(out, "{}={:?}", shorten(n), shorten(v));
            }
            None => out.push_str("<bad ref>"),
        }
    }
    out.push('}');
    out
}

/// Cuts a string at a char boundary near `RENDER_VALUE_MAX` bytes.
fn shorten(s: &str) -> &str {
    if s.len() <= RENDER_VALUE_MAX {
        return s;
    }
    let mut end = RENDER_VALUE_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Generates the histogram conversion for one generated proto module; 1.0 and 2.0 share the
/// message layout but not the Rust types.
macro_rules! histogram_conversion {
    ($fn_name:ident, $m:ident) => {
        fn $fn_name(h: $m::Histogram) -> Result<(i64, HistogramValue), String> {
            use $m::histogram::{Count, ZeroCount};
            let spans = |s: Vec<$m::BucketSpan>| -> Vec<Span> {
                s.into_iter()
                    .map(|s| Span {
                        offset: s.offset,
                        length: s.length,
                    })
                    .collect()
            };
            let t = h.timestamp;
            let hint = reset_hint(h.reset_hint);
            let value = match h.count {
                Some(Count::CountFloat(count)) => {
                    let zero_count = match h.zero_count {
                        Some(ZeroCount::ZeroCountFloat(z)) => z,
                        Some(ZeroCount::ZeroCountInt(z)) => z as f64,
                        None => 0.0,
                    };
                    if !h.positive_deltas.is_empty() || !h.negative_deltas.is_empty() {
                        return Err(format!(
                            "invalid float histogram at timestamp {t}: bucket deltas are only allowed in integer histograms"
                        ));
                    }
                    let fh = FloatHistogram {
                        counter_reset_hint: hint,
                        schema: h.schema,
                        zero_threshold: h.zero_threshold,
                        zero_count,
                        count,
                        sum: h.sum,
                        positive_spans: spans(h.positive_spans),
                        negative_spans: spans(h.negative_spans),
                        positive_buckets: h.positive_counts,
                        negative_buckets: h.negative_counts,
                        custom_values: h.custom_values,
                    };
                    fh.validate()
                        .map_err(|e| format!("invalid float histogram at timestamp {t}: {e}"))?;
                    HistogramValue::Float(fh)
                }
                count => {
                    let count = match count {
                        Some(Count::CountInt(c)) => c,
                        _ => 0,
                    };
                    let zero_count = match h.zero_count {
                        Some(ZeroCount::ZeroCountInt(z)) => z,
                        Some(ZeroCount::ZeroCountFloat(_)) => {
                            return Err(format!(
                                "invalid integer histogram at timestamp {t}: zero_count_float given with count_int"
                            ))
                        }
                        None => 0,
                    };
                    if !h.positive_counts.is_empty() || !h.negative_counts.is_empty() {
                        return Err(format!(
                            "invalid integer histogram at timestamp {t}: absolute bucket counts are only allowed in float histograms"
                        ));
                    }
                    let ih = Histogram {
                        counter_reset_hint: hint,
                        schema: h.schema,
                        zero_threshold: h.zero_threshold,
                        zero_count,
                        count,
                        sum: h.sum,
                        positive_spans: spans(h.positive_spans),
                        negative_spans: spans(h.negative_spans),
                        positive_buckets: h.positive_deltas,
                        negative_buckets: h.negative_deltas,
                        custom_values: h.custom_values,
                    };
                    ih.validate()
                        .map_err(|e| format!("invalid integer histogram at timestamp {t}: {e}"))?;
                    HistogramValue::Int(ih)
                }
            };
            Ok((t, value))
        }
    };
}

histogram_conversion!(histogram_v1, v1);
histogram_conversion!(histogram_v2, v2);

/// Converts and checks one remote-write 1.0 histogram (also the sample format of a remote-read
/// `SAMPLES` response): `(timestamp, value)` or why it is invalid.
pub fn histogram_from_v1(h: v1::Histogram) -> Result<(i64, HistogramValue), String> {
    histogram_v1(h)
}
