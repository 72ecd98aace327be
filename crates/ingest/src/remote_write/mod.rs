//! Prometheus remote write 1.0 and 2.0 receiving: Content-Type negotiation, snappy block
//! decompression, and decoding of `prometheus.WriteRequest` / `io.prometheus.write.v2.Request`
//! into model types. Like Prometheus' write handler, a malformed request is an error as a whole,
//! while a series with bad labels or a bad histogram is set aside in [`WriteBatch::rejected`]
//! and the valid series of the same request are still returned.
//!
//! The encoders produce the same messages (without snappy) for forwarding and for tests.

mod decode;
mod encode;
mod fast_v1;

/// Rust types generated from `crates/ingest/proto` by `cargo run -p protogen` (committed, so
/// builds never need `protoc`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    /// `prometheus.*`: remote write 1.0.
    #[rustfmt::skip]
    pub mod v1; /// `io.prometheus.write.v2.*`: remote write 2.0.
    #[rustfmt::skip]
    pub mod v2;
}

pub use decode::{decode_v1, decode_v2, histogram_from_v1};
pub use encode::{encode_v1, encode_v2};

use sextant_model::{Exemplar, HistogramValue, Labels, Metadata, Sample};

/// Which protobuf message a remote-write request body carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemoteWriteVersion {
    /// `prometheus.WriteRequest` (remote write 1.0).
    V1,
    /// `io.prometheus.write.v2.Request` (remote write 2.0).
    V2,
}

impl RemoteWriteVersion {
    /// The Content-Type a sender uses for this version.
    pub fn content_type(self) -> &'static str {
        match self {
            RemoteWriteVersion::V1 => "application/x-protobuf",
            RemoteWriteVersion::V2 => "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        }
    }
}

const PROTOBUF_MEDIA_TYPE: &str = "application/x-protobuf";
const V1_PROTO: &str = "prometheus.WriteRequest";
const V2_PROTO: &str = "io.prometheus.write.v2.Request";

/// Content-Type negotiation like Prometheus: `application/x-protobuf` (or missing proto param)
/// → V1; `;proto=prometheus.WriteRequest` → V1; `;proto=io.prometheus.write.v2.Request` → V2;
/// other proto or other media type → Err(message naming it). A missing or empty header means V1,
/// as remote write 1.0 senders were not required to set it.
pub fn parse_content_type(ct: Option<&str>) -> Result<RemoteWriteVersion, String> {
    let ct = match ct.map(str::trim) {
        None | Some("") => return Ok(RemoteWriteVersion::V1),
        Some(ct) => ct,
    };
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case(PROTOBUF_MEDIA_TYPE) {
        return Err(format!(
            "unsupported Content-Type {ct:?}: expected {PROTOBUF_MEDIA_TYPE:?} as the media type, got {media:?}"
        ));
    }
    let mut proto: Option<&str> = None;
    for param in parts {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let Some((name, value)) = param.split_once('=') else {
            return Err(format!(
                "malformed Content-Type {ct:?}: parameter {param:?} has no '='"
            ));
        };
        if name.trim().eq_ignore_ascii_case("proto") {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            proto = Some(value);
        }
    }
    match proto {
        None | Some(V1_PROTO) => Ok(RemoteWriteVersion::V1),
        Some(V2_PROTO) => Ok(RemoteWriteVersion::V2),
        Some(other) => Err(format!(
            "unsupported remote write protobuf message {other:?} in Content-Type {ct:?}: expected {V1_PROTO:?} or {V2_PROTO:?}"
        )),
    }
}

/// Decompresses a snappy *block* (not framed) body, as remote write sends it. The decoded size
/// in the snappy header is checked against `max_decoded` (bytes) before anything is allocated.
pub fn decompress_snappy(body: &[u8], max_decoded: usize) -> Result<Vec<u8>, DecodeError> {
    let size = snap::raw::decompress_len(body).map_err(DecodeError::Snappy)?;
    if size > max_decoded {
        return Err(DecodeError::TooLarge {
            size,
            limit: max_decoded,
        });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(DecodeError::Snappy)
}

/// Compresses with the snappy block format, as remote write senders do.
pub fn compress_snappy(raw: &[u8]) -> Vec<u8> {
    // The only error snap reports for compression is an input over ~4 GiB, which a caller can
    // never have produced from a sensible request; fall back to an empty body in that case.
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .unwrap_or_default()
}

/// Per-series limits applied while decoding; 0 means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Maximum number of labels (including `__name__`) of one series.
    pub max_labels_per_series: usize,
    /// Maximum length of a label name, in bytes.
    pub max_label_name_len: usize,
    /// Maximum length of a label value, in bytes.
    pub max_label_value_len: usize,
}

/// Why a remote-write body could not be decoded at all.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("body is not valid snappy block-compressed data: {0}")]
    Snappy(#[source] snap::Error),
    #[error("decompressed body would be {size} bytes, over the limit of {limit} bytes (limit decompressed_size)")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed protobuf: {0}")]
    Protobuf(String),
    /// A remote write 2.0 reference into `symbols` that does not exist. Decoding reports this
    /// per series in [`WriteBatch::rejected`] (with this text) rather than failing the request.
    #[error("symbol reference {reference} is out of range: the request has {symbols} symbols")]
    BadSymbolRef { reference: u32, symbols: usize },
}

/// A decoded write request: accepted series, metadata, and the series that were rejected.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteBatch {
    pub series: Vec<SeriesSamples>,
    pub metadata: Vec<Metadata>,
    pub rejected: Vec<Rejected>,
}

impl WriteBatch {
    /// Number of float samples plus histogram samples in accepted series.
    pub fn sample_count(&self) -> usize {
        self.series
            .iter()
            .map(|s| s.samples.len() + s.histograms.len())
            .sum()
    }
}

/// The samples of one valid series.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<Sample>,
    /// Native histogram samples as (timestamp ms, value).
    pub histograms: Vec<(i64, HistogramValue)>,
    /// Exemplars of the series (OpenMetrics exemplars on a classic histogram bucket belong to
    /// that bucket's series).
    pub exemplars: Vec<Exemplar>,
}

/// A series that was not accepted, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Best-effort rendering of the labels as sent, like `up{job="x"}` (long values shortened).
    pub labels: String,
    /// What was wrong, in plain words.
    pub reason: String,
    /// Float plus histogram samples that were dropped with the series.
    pub samples: usize,
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fast_v1;
