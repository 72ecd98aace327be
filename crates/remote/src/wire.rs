//! Prometheus remote-read wire format, shared by the client (reading a remote engine) and the
//! server (`POST /api/v1/read`): matchers and series to and from `prompb`, and the framing of
//! `STREAMED_XOR_CHUNKS` responses (uvarint length, big-endian CRC32-Castagnoli of the message,
//! then the `ChunkedReadResponse` message), with chunks in Prometheus' XOR encoding.

use prost::Message;
use sextant_ingest::remote_write::proto::v1;
use sextant_model::{
    CounterResetHint, HistogramValue, Label, Labels, MatchOp, Matcher, Sample, Span,
};
use sextant_promql::SeriesData;
use sextant_tsdb::chunkenc::{
    Chunk, FloatHistogramChunk, HistogramChunk, XorChunk, MAX_SAMPLES_PER_CHUNK,
};

/// Content type of a `SAMPLES` response (and of every request).
pub const PROTOBUF: &str = "application/x-protobuf";
/// Content type of a `STREAMED_XOR_CHUNKS` response.
pub const STREAMED: &str = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";
/// Largest frame accepted from a stream (Prometheus' client default is 50 MB).
pub const MAX_FRAME: usize = 50 << 20;
/// Target size of one streamed frame (Prometheus packs about 1 MB of chunks per frame).
pub const FRAME_TARGET: usize = 1 << 20;

/// Why remote-read data could not be decoded.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

/// `prompb.LabelMatcher`s → matchers (regexes compiled, anchored like PromQL's).
pub fn matchers_from_proto(ms: &[v1::LabelMatcher]) -> Result<Vec<Matcher>, WireError> {
    use v1::label_matcher::Type;
    ms.iter()
        .map(|m| {
            let op = match Type::try_from(m.r#type) {
                Ok(Type::Eq) => MatchOp::Equal,
                Ok(Type::Neq) => MatchOp::NotEqual,
                Ok(Type::Re) => MatchOp::Regex,
                Ok(Type::Nre) => MatchOp::NotRegex,
                Err(_) => {
                    return Err(WireError(format!(
                        "invalid matcher type {} for label {:?}",
                        m.r#type, m.name
                    )))
                }
            };
            Matcher::new(op, m.name.clone(), m.value.clone())
                .map_err(|e| WireError(format!("invalid matcher for label {:?}: {e}", m.name)))
        })
        .collect()
}

/// Matchers → `prompb.LabelMatcher`s.
pub fn matchers_to_proto(ms: &[Matcher]) -> Vec<v1::LabelMatcher> {
    use v1::label_matcher::Type;
    ms.iter()
        .map(|m| v1::LabelMatcher {
            r#type: match m.op {
                MatchOp::Equal => Type::Eq,
                MatchOp::NotEqual => Type::Neq,
                MatchOp::Regex => Type::Re,
                MatchOp::NotRegex => Type::Nre,
            } as i32,
            name: m.name.clone(),
            value: m.value.clone(),
        })
        .collect()
}

/// Labels → `prompb.Label`s.
pub fn labels_to_proto(l: &Labels) -> Vec<v1::Label> {
    l.iter()
        .map(|l| v1::Label {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

/// `prompb.Label`s → labels (sorted, empty values dropped, as Prometheus does).
pub fn labels_from_proto(l: Vec<v1::Label>) -> Labels {
    let mut v: Vec<Label> = l
        .into_iter()
        .filter(|l| !l.value.is_empty())
        .map(|l| Label {
            name: l.name,
            value: l.value,
        })
        .collect();
    v.sort();
    v.dedup_by(|a, b| a.name == b.name);
    Labels::from_sorted(v)
}

fn hint_to_proto(h: CounterResetHint) -> i32 {
    use v1::histogram::ResetHint;
    (match h {
        CounterResetHint::Unknown => ResetHint::Unknown,
        CounterResetHint::CounterReset => ResetHint::Yes,
        CounterResetHint::NotCounterReset => ResetHint::No,
        CounterResetHint::Gauge => ResetHint::Gauge,
    }) as i32
}

fn spans_to_proto(s: &[Span]) -> Vec<v1::BucketSpan> {
    s.iter()
        .map(|s| v1::BucketSpan {
            offset: s.offset,
            length: s.length,
        })
        .collect()
}

/// A native histogram sample → `prompb.Histogram`.
pub fn histogram_to_proto(t: i64, h: &HistogramValue) -> v1::Histogram {
    use v1::histogram::{Count, ZeroCount};
    match h {
        HistogramValue::Int(h) => v1::Histogram {
            count: Some(Count::CountInt(h.count)),
            sum: h.sum,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count: Some(ZeroCount::ZeroCountInt(h.zero_count)),
            negative_spans: spans_to_proto(&h.negative_spans),
            negative_deltas: h.negative_buckets.clone(),
            positive_spans: spans_to_proto(&h.positive_spans),
            positive_deltas: h.positive_buckets.clone(),
            reset_hint: hint_to_proto(h.counter_reset_hint),
            timestamp: t,
            custom_values: h.custom_values.clone(),
            ..Default::default()
        },
        HistogramValue::Float(h) => v1::Histogram {
            count: Some(Count::CountFloat(h.count)),
            sum: h.sum,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count: Some(ZeroCount::ZeroCountFloat(h.zero_count)),
            negative_spans: spans_to_proto(&h.negative_spans),
            negative_counts: h.negative_buckets.clone(),
            positive_spans: spans_to_proto(&h.positive_spans),
            positive_counts: h.positive_buckets.clone(),
            reset_hint: hint_to_proto(h.counter_reset_hint),
            timestamp: t,
            custom_values: h.custom_values.clone(),
            ..Default::default()
        },
    }
}

/// A series → `prompb.TimeSeries` (a `SAMPLES` response entry).
pub fn series_to_proto(s: &SeriesData) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: labels_to_proto(&s.labels),
        samples: s
            .floats
            .iter()
            .map(|p| v1::Sample {
                value: p.v,
                timestamp: p.t,
            })
            .collect(),
        histograms: s
            .histograms
            .iter()
            .map(|(t, h)| histogram_to_proto(*t, h))
            .collect(),
        ..Default::default()
    }
}

/// A `prompb.TimeSeries` of a `SAMPLES` response → a series (samples sorted by time).
pub fn series_from_proto(ts: v1::TimeSeries) -> Result<SeriesData, WireError> {
    let labels = labels_from_proto(ts.labels);
    let mut floats: Vec<Sample> = ts
        .samples
        .into_iter()
        .map(|s| Sample::new(s.timestamp, s.value))
        .collect();
    floats.sort_by_key(|s| s.t);
    let mut histograms = Vec::with_capacity(ts.histograms.len());
    for h in ts.histograms {
        let h = sextant_ingest::remote_write::histogram_from_v1(h)
            .map_err(|e| WireError(format!("series {labels}: {e}")))?;
        histograms.push(h);
    }
    histograms.sort_by_key(|h| h.0);
    Ok(SeriesData {
        labels,
        floats,
        histograms,
        ..Default::default()
    })
}

/// Appends one frame (`uvarint len`, `crc32c` big-endian, message) to `out`.
pub fn write_frame(out: &mut Vec<u8>, msg: &[u8]) {
    let mut n = msg.len() as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(&crc32c::crc32c(msg).to_be_bytes());
    out.extend_from_slice(msg);
}

/// Splits a streamed body into its messages, checking each frame's checksum.
pub fn read_frames(mut body: &[u8]) -> Result<Vec<v1::ChunkedReadResponse>, WireError> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let mut len: u64 = 0;
        let mut shift = 0;
        loop {
            let Some((&b, rest)) = body.split_first() else {
                return Err(WireError(
                    "streamed response: truncated frame length".into(),
                ));
            };
            body = rest;
            if shift > 63 {
                return Err(WireError(
                    "streamed response: frame length overflows".into(),
                ));
            }
            len |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
        if len > MAX_FRAME as u64 {
            return Err(WireError(format!(
                "streamed response: frame of {len} bytes exceeds the limit of {MAX_FRAME}"
            )));
        }
        let len = len as usize;
        if body.len() < 4 + len {
            return Err(WireError("streamed response: truncated frame".into()));
        }
        let crc = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let msg = &body[4..4 + len];
        if crc32c::crc32c(msg) != crc {
            return Err(WireError(
                "streamed response: frame checksum mismatch".into(),
            ));
        }
        out.push(
            v1::ChunkedReadResponse::decode(msg)
                .map_err(|e| WireError(format!("streamed response: {e}")))?,
        );
        body = &body[4 + len..];
    }
    Ok(out)
}

/// Cuts a series' samples into chunks of at most 120 samples each, like Prometheus' head.
pub fn series_chunks(s: &SeriesData) -> Vec<v1::Chunk> {
    use v1::chunk::Encoding;
    let mut out = Vec::new();
    for part in s.floats.chunks(MAX_SAMPLES_PER_CHUNK) {
        let mut c = XorChunk::new();
        for p in part {
            c.append(p.t, p.v);
        }
        out.push(v1::Chunk {
            min_time_ms: part[0].t,
            max_time_ms: part[part.len() - 1].t,
            r#type: Encoding::Xor as i32,
            data: c.bytes().to_vec(),
        });
    }
    // Histograms: a new chunk on a layout change or counter reset, or every 120 samples.
    let mut int: Option<(HistogramChunk, i64, i64)> = None;
    let mut float: Option<(FloatHistogramChunk, i64, i64)> = None;
    let flush_int = |c: &mut Option<(HistogramChunk, i64, i64)>, out: &mut Vec<v1::Chunk>| {
        if let Some((c, a, b)) = c.take() {
            out.push(v1::Chunk {
                min_time_ms: a,
                max_time_ms: b,
                r#type: Encoding::Histogram as i32,
                data: c.bytes().to_vec(),
            });
        }
    };
    let flush_float = |c: &mut Option<(FloatHistogramChunk, i64, i64)>,
                       out: &mut Vec<v1::Chunk>| {
        if let Some((c, a, b)) = c.take() {
            out.push(v1::Chunk {
                min_time_ms: a,
                max_time_ms: b,
                r#type: Encoding::FloatHistogram as i32,
                data: c.bytes().to_vec(),
            });
        }
    };
    for (t, h) in &s.histograms {
        match h {
            HistogramValue::Int(h) => {
                flush_float(&mut float, &mut out);
                for _ in 0..2 {
                    let full = int
                        .as_ref()
                        .is_some_and(|c| c.0.num_samples() as usize >= MAX_SAMPLES_PER_CHUNK);
                    if full {
                        flush_int(&mut int, &mut out);
                    }
                    let c = int.get_or_insert_with(|| (HistogramChunk::new(), *t, *t));
                    match c.0.append(*t, h) {
                        Ok(()) => {
                            c.2 = *t;
                            break;
                        }
                        Err(_) => {
                            if c.0.num_samples() == 0 {
                                // Cannot be encoded even in a fresh chunk: leave it out.
                                int = None;
                                break;
                            }
                            flush_int(&mut int, &mut out);
                        }
                    }
                }
            }
            HistogramValue::Float(h) => {
                flush_int(&mut int, &mut out);
                for _ in 0..2 {
                    let full = float
                        .as_ref()
                        .is_some_and(|c| c.0.num_samples() as usize >= MAX_SAMPLES_PER_CHUNK);
                    if full {
                        flush_float(&mut float, &mut out);
                    }
                    let c = float.get_or_insert_with(|| (FloatHistogramChunk::new(), *t, *t));
                    match c.0.append(*t, h) {
                        Ok(()) => {
                            c.2 = *t;
                            break;
                        }
                        Err(_) => {
                            if c.0.num_samples() == 0 {
                                float = None;
                                break;
                            }
                            flush_float(&mut float, &mut out);
                        }
                    }
                }
            }
        }
    }
    flush_int(&mut int, &mut out);
    flush_float(&mut float, &mut out);
    out.sort_by_key(|c| c.min_time_ms);
    out
}

/// Decodes a streamed series' chunks into samples in `[mint, maxt]`, sorted and deduplicated.
pub fn series_from_chunks(
    cs: v1::ChunkedSeries,
    mint: i64,
    maxt: i64,
) -> Result<SeriesData, WireError> {
    let labels = labels_from_proto(cs.labels);
    let mut s = SeriesData {
        labels,
        ..Default::default()
    };
    for c in cs.chunks {
        let chunk = Chunk::from_encoded(c.r#type as u8, c.data)
            .map_err(|e| WireError(format!("series {}: {e}", s.labels)))?;
        match &chunk {
            Chunk::Xor(x) => {
                let mut it = x.iter();
                for (t, v) in it.by_ref() {
                    if t >= mint && t <= maxt {
                        s.floats.push(Sample::new(t, v));
                    }
                }
                if let Some(e) = it.err() {
                    return Err(WireError(format!("series {}: {e}", s.labels)));
                }
            }
            Chunk::Histogram(h) => {
                let mut it = h.iter();
                for (t, h) in it.by_ref() {
                    if t >= mint && t <= maxt {
                        s.histograms.push((t, HistogramValue::Int(h)));
                    }
                }
                if let Some(e) = it.err() {
                    return Err(WireError(format!("series {}: {e}", s.labels)));
                }
            }
            Chunk::FloatHistogram(h) => {
                let mut it = h.iter();
                for (t, h) in it.by_ref() {
                    if t >= mint && t <= maxt {
                        s.histograms.push((t, HistogramValue::Float(h)));
                    }
                }
                if let Some(e) = it.err() {
                    return Err(WireError(format!("series {}: {e}", s.labels)));
                }
            }
        }
    }
    // Chunks may overlap: sort and keep the first sample of each timestamp.
    s.floats.sort_by_key(|p| p.t);
    s.floats.dedup_by_key(|p| p.t);
    s.histograms.sort_by_key(|p| p.0);
    s.histograms.dedup_by_key(|p| p.0);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_roundtrip_and_reject_corruption() {
        let s = SeriesData {
            labels: Labels::from_pairs([("__name__", "m"), ("a", "b")]),
            floats: (0..300)
                .map(|i| Sample::new(i * 1000, i as f64 * 0.5))
                .collect(),
            ..Default::default()
        };
        let msg = v1::ChunkedReadResponse {
            chunked_series: vec![v1::ChunkedSeries {
                labels: labels_to_proto(&s.labels),
                chunks: series_chunks(&s),
            }],
            query_index: 0,
        };
        assert_eq!(msg.chunked_series[0].chunks.len(), 3);
        let mut body = Vec::new();
        write_frame(&mut body, &msg.encode_to_vec());
        write_frame(&mut body, &msg.encode_to_vec());
        let frames = read_frames(&body).unwrap();
        assert_eq!(frames.len(), 2);
        let got = series_from_chunks(frames[0].chunked_series[0].clone(), 10_000, 20_000).unwrap();
        assert_eq!(got.labels, s.labels);
        assert_eq!(got.floats, s.floats[10..=20].to_vec());
        let n = body.len();
        body[n - 1] ^= 1;
        assert!(read_frames(&body).unwrap_err().0.contains("checksum"));
        assert!(read_frames(&body[..n - 3])
            .unwrap_err()
            .0
            .contains("truncated"));
    }

    #[test]
    fn matchers_roundtrip() {
        let ms = vec![
            Matcher::new(MatchOp::Equal, "__name__", "up").unwrap(),
            Matcher::new(MatchOp::NotRegex, "job", "a|b").unwrap(),
        ];
        let back = matchers_from_proto(&matchers_to_proto(&ms)).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].to_string(), ms[1].to_string());
        let bad = v1::LabelMatcher {
            r#type: 9,
            name: "x".into(),
            value: "y".into(),
        };
        assert!(matchers_from_proto(&[bad]).is_err());
    }
}
