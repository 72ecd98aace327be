//! Hand-written encoders for the Prometheus remote_write 1.0 `WriteRequest` protobuf and (for
//! `--protocol otlp`) the OTLP `ExportMetricsServiceRequest` with gauge points.
//!
//! It is written independently of any generated code on purpose: the benchmark then also
//! cross-checks the server's decoder. Only the fields remote_write 1.0 needs are encoded:
//!
//! ```text
//! WriteRequest { repeated TimeSeries timeseries = 1; }
//! TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! Label        { string name = 1; string value = 2; }
//! Sample       { double value = 1; int64 timestamp = 2; }
//! ```

/// Appends `v` as a base-128 varint.
pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Appends a length-delimited field (wire type 2).
fn put_bytes(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    put_varint(buf, u64::from(field << 3 | 2));
    put_varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// Encodes the `labels` fields (field 1, repeated) of a TimeSeries once, so the hot path only
/// copies bytes. Labels must already be sorted by name, as Prometheus expects.
pub fn encode_labels(labels: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut label = Vec::new();
    for (name, value) in labels {
        label.clear();
        put_bytes(&mut label, 1, name.as_bytes());
        put_bytes(&mut label, 2, value.as_bytes());
        put_bytes(&mut out, 1, &label);
    }
    out
}

/// Appends one `timeseries` entry (WriteRequest field 1) holding pre-encoded labels and a
/// single sample. The value is always written, even when it is 0.0 (valid, if not minimal).
pub fn put_series_sample(buf: &mut Vec<u8>, encoded_labels: &[u8], value: f64, ts_ms: i64) {
    // Sample: tag(1, fixed64) + 8 bytes + tag(2, varint) + varint(ts).
    let sample_len = 1 + 8 + 1 + varint_len(ts_ms as u64);
    let series_len = encoded_labels.len() + 1 + varint_len(sample_len as u64) + sample_len;
    put_varint(buf, 1 << 3 | 2);
    put_varint(buf, series_len as u64);
    buf.extend_from_slice(encoded_labels);
    put_varint(buf, 2 << 3 | 2);
    put_varint(buf, sample_len as u64);
    buf.push(1 << 3 | 1);
    buf.extend_from_slice(&value.to_bits().to_le_bytes());
    buf.push(2 << 3);
    put_varint(buf, ts_ms as u64);
}

/// Pre-encodes an OTLP gauge series: `Metric.name` (field 1) followed by the
/// `NumberDataPoint.attributes` (field 7, `KeyValue { key = 1; AnyValue value = 2 { string_value
/// = 1 } }`), separated by a 4-byte little-endian length of the name part. `__name__` becomes
/// the metric name, every other label an attribute.
pub fn otlp_series(labels: &[(&str, &str)]) -> Vec<u8> {
    let mut name = Vec::new();
    let mut attrs = Vec::new();
    let (mut kv, mut any) = (Vec::new(), Vec::new());
    for (n, v) in labels {
        if *n == "__name__" {
            put_bytes(&mut name, 1, v.as_bytes());
            continue;
        }
        kv.clear();
        any.clear();
        put_bytes(&mut kv, 1, n.as_bytes());
        put_bytes(&mut any, 1, v.as_bytes());
        put_bytes(&mut kv, 2, &any);
        put_bytes(&mut attrs, 7, &kv);
    }
    let mut out = (name.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&name);
    out.extend_from_slice(&attrs);
    out
}

/// Appends one `ScopeMetrics.metrics` entry (field 2): a gauge `Metric` with one
/// `NumberDataPoint { time_unix_nano = 3 (fixed64); as_double = 4 (double) }`.
pub fn put_otlp_sample(buf: &mut Vec<u8>, series: &[u8], value: f64, ts_ms: i64) {
    let (len, rest) = series.split_at(4);
    let name_len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let (name, attrs) = rest.split_at(name_len);
    let dp_len = attrs.len() + 9 + 9;
    let gauge_len = 1 + varint_len(dp_len as u64) + dp_len;
    let metric_len = name.len() + 1 + varint_len(gauge_len as u64) + gauge_len;
    put_varint(buf, 2 << 3 | 2);
    put_varint(buf, metric_len as u64);
    buf.extend_from_slice(name);
    put_varint(buf, 5 << 3 | 2);
    put_varint(buf, gauge_len as u64);
    put_varint(buf, 1 << 3 | 2);
    put_varint(buf, dp_len as u64);
    buf.extend_from_slice(attrs);
    buf.push(3 << 3 | 1);
    buf.extend_from_slice(&((ts_ms as u64).wrapping_mul(1_000_000)).to_le_bytes());
    buf.push(4 << 3 | 1);
    buf.extend_from_slice(&value.to_bits().to_le_bytes());
}

/// Wraps `ScopeMetrics` content in `ResourceMetrics.scope_metrics` (field 2) and
/// `ExportMetricsServiceRequest.resource_metrics` (field 1), into `out` (cleared first).
pub fn wrap_otlp_request(scope_metrics: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let rm_len = 1 + varint_len(scope_metrics.len() as u64) + scope_metrics.len();
    put_varint(out, 1 << 3 | 2);
    put_varint(out, rm_len as u64);
    put_varint(out, 2 << 3 | 2);
    put_varint(out, scope_metrics.len() as u64);
    out.extend_from_slice(scope_metrics);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        for (v, want) in [
            (0u64, vec![0u8]),
            (1, vec![1]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b, want, "{v}");
            assert_eq!(varint_len(v), want.len());
        }
    }

    /// Bytes worked out by hand from the .proto above (and matching what protoc-generated
    /// code emits for the same message with a non-zero value).
    #[test]
    fn one_series_by_hand() {
        let labels = encode_labels(&[("__name__", "up"), ("job", "a")]);
        let mut got = Vec::new();
        put_series_sample(&mut got, &labels, 1.0, 1000);
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            0x0a, 0x28,                                   // WriteRequest.timeseries, len 40
              0x0a, 0x0e,                                 // TimeSeries.labels, len 14
                0x0a, 0x08, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_',
                0x12, 0x02, b'u', b'p',
              0x0a, 0x08,                                 // TimeSeries.labels, len 8
                0x0a, 0x03, b'j', b'o', b'b',
                0x12, 0x01, b'a',
              0x12, 0x0c,                                 // TimeSeries.samples, len 12
                0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,       // value 1.0
                0x10, 0xe8, 0x07,                         // timestamp 1000
        ];
        assert_eq!(got, want);
    }
}
