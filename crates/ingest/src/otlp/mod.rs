//! OTLP/HTTP metrics receiving: OpenTelemetry SDKs and Collectors push
//! `ExportMetricsServiceRequest`s to `/v1/metrics`, protobuf or JSON, optionally gzipped. This
//! module decodes them ([`decode_body`]), translates them into Prometheus series the way
//! Prometheus' own OTLP receiver does ([`Translator`]; names in [`names`], exponential
//! histograms in [`exphist`], delta temporality in [`delta`], GenAI metrics normalised by
//! [`genai`]), and encodes the answers
//! ([`encode_response`], [`encode_status`]) in the request's encoding, as the OTLP/HTTP spec
//! asks.

mod delta;
pub mod exphist;
pub mod genai;
mod json;
pub mod names;
mod translate;

#[cfg(test)]
mod tests;

/// Rust types generated from `crates/ingest/proto/opentelemetry` by `cargo run -p protogen`
/// (committed, so builds never need `protoc`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    pub mod common {
        #[rustfmt::skip]
        pub mod v1;
    }
    pub mod resource {
        #[rustfmt::skip]
        pub mod v1;
    }
    pub mod metrics {
        #[rustfmt::skip]
        pub mod v1;
    }
    pub mod collector {
        pub mod metrics {
            #[rustfmt::skip]
            pub mod v1;
        }
    }
}

use std::borrow::Cow;
use std::io::Read;

use prost::Message;

pub use delta::{DeltaLimits, MAX_DELTA_BOUNDS, MAX_DELTA_EXP_BUCKETS};
pub use proto::collector::metrics::v1::ExportMetricsServiceRequest;
pub use translate::{Translated, Translator};

/// How a request body (and so its answer) is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`
    Protobuf,
    /// `application/json` (OTLP/JSON)
    Json,
}

impl Encoding {
    /// The Content-Type of answers in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Picks the encoding from a Content-Type header (parameters such as `charset` are ignored).
pub fn parse_content_type(ct: Option<&str>) -> Result<Encoding, String> {
    let ct = ct.unwrap_or("").trim();
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/x-protobuf") {
        Ok(Encoding::Protobuf)
    } else if media.eq_ignore_ascii_case("application/json") {
        Ok(Encoding::Json)
    } else {
        Err(format!(
            "unsupported Content-Type {ct:?}: OTLP/HTTP accepts \"application/x-protobuf\" or \"application/json\""
        ))
    }
}

/// Why an OTLP request body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("unsupported Content-Encoding {0:?}: OTLP/HTTP accepts \"gzip\" or none")]
    UnsupportedEncoding(String),
    #[error("body is not valid gzip: {0}")]
    Gzip(#[source] std::io::Error),
    #[error("decompressed body exceeds the limit of {limit} bytes (limit decompressed_size)")]
    TooLarge { limit: usize },
    #[error("malformed OTLP protobuf: {0}")]
    Protobuf(#[source] prost::DecodeError),
    #[error("malformed OTLP JSON: {0}")]
    Json(#[source] serde_json::Error),
}

/// Undoes `Content-Encoding` (`gzip` or identity) without ever holding more than
/// `max_decoded` bytes of output.
pub fn decompress<'a>(
    body: &'a [u8],
    content_encoding: Option<&str>,
    max_decoded: usize,
) -> Result<Cow<'a, [u8]>, OtlpError> {
    match content_encoding.map(str::trim) {
        None | Some("") => Ok(Cow::Borrowed(body)),
        Some(e) if e.eq_ignore_ascii_case("identity") => Ok(Cow::Borrowed(body)),
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max_decoded));
            let limit = u64::try_from(max_decoded)
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            flate2::read::MultiGzDecoder::new(body)
                .take(limit)
                .read_to_end(&mut out)
                .map_err(OtlpError::Gzip)?;
            if out.len() > max_decoded {
                return Err(OtlpError::TooLarge { limit: max_decoded });
            }
            Ok(Cow::Owned(out))
        }
        Some(e) => Err(OtlpError::UnsupportedEncoding(e.to_string())),
    }
}

/// Decodes a (decompressed) body in the given encoding.
pub fn decode(raw: &[u8], enc: Encoding) -> Result<ExportMetricsServiceRequest, OtlpError> {
    match enc {
        Encoding::Protobuf => ExportMetricsServiceRequest::decode(raw).map_err(OtlpError::Protobuf),
        Encoding::Json => json::decode(raw).map_err(OtlpError::Json),
    }
}

/// [`decompress`] then [`decode`].
pub fn decode_body(
    body: &[u8],
    enc: Encoding,
    content_encoding: Option<&str>,
    max_decoded: usize,
) -> Result<ExportMetricsServiceRequest, OtlpError> {
    let raw = decompress(body, content_encoding, max_decoded)?;
    decode(&raw, enc)
}

/// The body of a successful answer: an `ExportMetricsServiceResponse`, with `partial_success`
/// set when some data points were refused.
pub fn encode_response(enc: Encoding, rejected_data_points: i64, error_message: &str) -> Vec<u8> {
    use proto::collector::metrics::v1 as c;
    let partial = (rejected_data_points > 0 || !error_message.is_empty()).then(|| {
        c::ExportMetricsPartialSuccess {
            rejected_data_points,
            error_message: error_message.to_string(),
        }
    });
    match enc {
        Encoding::Protobuf => c::ExportMetricsServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        Encoding::Json => {
            let v = match partial {
                None => serde_json::json!({}),
                Some(p) => serde_json::json!({"partialSuccess": {
                    "rejectedDataPoints": p.rejected_data_points.to_string(),
                    "errorMessage": p.error_message,
                }}),
            };
            v.to_string().into_bytes()
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error answers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// gRPC status code `INVALID_ARGUMENT`, for bodies that cannot be decoded.
pub const CODE_INVALID_ARGUMENT: i32 = 3;
/// gRPC status code `UNAVAILABLE`, for "retry later".
pub const CODE_UNAVAILABLE: i32 = 14;

/// The body of an error answer: a `google.rpc.Status` in the request's encoding.
pub fn encode_status(enc: Encoding, code: i32, message: &str) -> Vec<u8> {
    match enc {
        Encoding::Protobuf => Status {
            code,
            message: message.to_string(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": code, "message": message})
            .to_string()
            .into_bytes(),
    }
}
