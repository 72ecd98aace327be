//! `POST /api/v1/read`: Prometheus' remote-read endpoint, so a Prometheus (or anything speaking
//! remote read: Thanos sidecar-style readers, another Sextant) can use Sextant as a
//! `remote_read` source. Requests are snappy-compressed `prompb.ReadRequest`s; the answer is a
//! snappy `ReadResponse` (`SAMPLES`) or a stream of CRC-checked `ChunkedReadResponse` frames
//! with XOR chunks (`STREAMED_XOR_CHUNKS`), negotiated from `accepted_response_types` in order,
//! as Prometheus does. Like Prometheus, matchers equal to this server's external labels are
//! dropped from the selection and the external labels are added to every returned series. Only
//! local storage is read (never the configured remote engines), so two servers reading each
//! other cannot loop.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use sextant_ingest::remote_write::proto::v1;
use sextant_model::{Label, Labels, MatchOp, Matcher};
use sextant_promql::{Querier, SeriesData};
use sextant_remote::wire;

use crate::query::TsdbSource;
use crate::AppState;

/// Largest decoded request accepted (a request only carries matchers and hints).
const MAX_DECODED_REQUEST: usize = 32 << 20;

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into()).into_response()
}

/// Drops matchers that select exactly an external label's value (Prometheus'
/// `filterExtLabelsFromMatchers`).
fn filter_external(ms: Vec<Matcher>, external: &Labels) -> Vec<Matcher> {
    ms.into_iter()
        .filter(|m| !(m.op == MatchOp::Equal && external.get(&m.name) == Some(m.value.as_str())))
        .collect()
}

/// Adds the external labels a series does not carry itself.
fn with_external(l: &Labels, external: &Labels) -> Labels {
    if external.is_empty() {
        return l.clone();
    }
    let mut v: Vec<Label> = l.iter().cloned().collect();
    for e in external.iter() {
        if l.get(&e.name).is_none() {
            v.push(e.clone());
        }
    }
    v.sort();
    Labels::from_sorted(v)
}

pub async fn read(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(enc) = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        if !enc.eq_ignore_ascii_case("snappy") {
            return text(
                StatusCode::BAD_REQUEST,
                format!("unsupported Content-Encoding {enc:?}: remote read requests must be snappy-compressed"),
            );
        }
    }
    let raw = match sextant_ingest::remote_write::decompress_snappy(
        &body,
        st.limits.max_decoded.min(MAX_DECODED_REQUEST),
    ) {
        Ok(r) => r,
        Err(e) => return crate::write::decode_failure(&st, format!("remote read request: {e}")),
    };
    let req = match v1::ReadRequest::decode(raw.as_slice()) {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("remote read request: invalid protobuf ReadRequest: {e}"),
            )
        }
    };
    let mut queries = Vec::with_capacity(req.queries.len());
    for (i, q) in req.queries.iter().enumerate() {
        match wire::matchers_from_proto(&q.matchers) {
            Ok(ms) => queries.push((q.start_timestamp_ms, q.end_timestamp_ms, ms)),
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("query {i}: {e}")),
        }
    }
    // The first accepted response type we implement (both are), SAMPLES when none is given.
    use v1::read_request::ResponseType;
    let streamed = match req.accepted_response_types.first() {
        None => false,
        Some(t) => match ResponseType::try_from(*t) {
            Ok(ResponseType::Samples) => false,
            Ok(ResponseType::StreamedXorChunks) => true,
            Err(_) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("server does not support any of the requested response types: {:?}; supported: [SAMPLES STREAMED_XOR_CHUNKS]", req.accepted_response_types),
                )
            }
        },
    };
    let external = st.external_labels();
    let limit = st.query_limits.max_samples;
    crate::query::run(st, move |st, _cancel| {
        let src = TsdbSource(st.db.querier());
        let mut samples = 0usize;
        let mut select = |mint: i64,
                          maxt: i64,
                          ms: &[Matcher]|
         -> Result<Vec<SeriesData>, crate::api::ApiError> {
            let ms = filter_external(ms.to_vec(), &external);
            let mut out = src
                .select(&ms, mint, maxt)
                .map_err(|e| crate::api::ApiError::internal(e.to_string()))?;
            for s in &mut out {
                samples += s.floats.len() + s.histograms.len();
                if samples > limit {
                    return Err(crate::api::ApiError {
                        status: StatusCode::BAD_REQUEST,
                        kind: "bad_data",
                        msg: format!("exceeded sample limit ({limit})"),
                    });
                }
                s.labels = with_external(&s.labels, &external);
            }
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            Ok(out)
        };
        if streamed {
            let mut body = Vec::new();
            for (qi, (mint, maxt, ms)) in queries.iter().enumerate() {
                for s in select(*mint, *maxt, ms)? {
                    let labels = wire::labels_to_proto(&s.labels);
                    let chunks = wire::series_chunks(&s);
                    // One series per frame, split when its chunks exceed the frame target.
                    let mut part: Vec<v1::Chunk> = Vec::new();
                    let mut size = 0usize;
                    let flush = |part: &mut Vec<v1::Chunk>, body: &mut Vec<u8>| {
                        let msg = v1::ChunkedReadResponse {
                            chunked_series: vec![v1::ChunkedSeries {
                                labels: labels.clone(),
                                chunks: std::mem::take(part),
                            }],
                            query_index: qi as i64,
                        };
                        wire::write_frame(body, &msg.encode_to_vec());
                    };
                    for c in chunks {
                        size += c.data.len();
                        part.push(c);
                        if size >= wire::FRAME_TARGET {
                            flush(&mut part, &mut body);
                            size = 0;
                        }
                    }
                    if !part.is_empty() {
                        flush(&mut part, &mut body);
                    }
                }
            }
            Ok(([(header::CONTENT_TYPE, wire::STREAMED)], body).into_response())
        } else {
            let mut resp = v1::ReadResponse::default();
            for (mint, maxt, ms) in &queries {
                let series = select(*mint, *maxt, ms)?;
                resp.results.push(v1::QueryResult {
                    timeseries: series.iter().map(wire::series_to_proto).collect(),
                });
            }
            let body = sextant_ingest::remote_write::compress_snappy(&resp.encode_to_vec());
            Ok((
                [
                    (header::CONTENT_TYPE, wire::PROTOBUF),
                    (header::CONTENT_ENCODING, "snappy"),
                ],
                body,
            )
                .into_response())
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_labels_filtered_and_added() {
        let ext = Labels::from_pairs([("dc", "x")]);
        let ms = vec![
            Matcher::new(MatchOp::Equal, "dc", "x").unwrap(),
            Matcher::new(MatchOp::Equal, "job", "a").unwrap(),
        ];
        let f = filter_external(ms, &ext);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].name, "job");
        let l = with_external(&Labels::from_pairs([("__name__", "m")]), &ext);
        assert_eq!(l, Labels::from_pairs([("__name__", "m"), ("dc", "x")]));
        let own = Labels::from_pairs([("__name__", "m"), ("dc", "own")]);
        assert_eq!(with_external(&own, &ext), own);
    }
}
