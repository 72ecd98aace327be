//! Model → protobuf encoding of float series for remote write 1.0 and 2.0 (without snappy;
//! see [`super::compress_snappy`]). Used for forwarding and in tests.

use std::collections::HashMap;

use prost::Message;
use sextant_model::{Labels, Sample};

use super::proto::{v1, v2};

/// Encodes series as a `prometheus.WriteRequest` (remote write 1.0), uncompressed.
pub fn encode_v1(series: &[(Labels, Vec<Sample>)]) -> Vec<u8> {
    let req = v1::WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples)| v1::TimeSeries {
                labels: labels
                    .iter()
                    .map(|l| v1::Label {
                        name: l.name.clone(),
                        value: l.value.clone(),
                    })
                    .collect(),
                samples: samples
                    .iter()
                    .map(|s| v1::Sample {
                        value: s.v,
                        timestamp: s.t,
                    })
                    .collect(),
                exemplars: Vec::new(),
                histograms: Vec::new(),
            })
            .collect(),
        metadata: Vec::new(),
    };
    req.encode_to_vec()
}

/// Encodes series as an `io.prometheus.write.v2.Request` (remote write 2.0), uncompressed, with
/// a de-duplicated symbol table that starts with the empty string as the spec requires.
pub fn encode_v2(series: &[(Labels, Vec<Sample>)]) -> Vec<u8> {
    let mut symbols: Vec<String> = vec![String::new()];
    let mut index: HashMap<&str, u32> = HashMap::new();
    index.insert("", 0);
    let mut timeseries = Vec::with_capacity(series.len());
    for (labels, samples) in series {
        let mut labels_refs = Vec::with_capacity(labels.len() * 2);
        for l in labels.iter() {
            labels_refs.push(intern(&l.name, &mut index, &mut symbols));
            labels_refs.push(intern(&l.value, &mut index, &mut symbols));
        }
        timeseries.push(v2::TimeSeries {
            labels_refs,
            samples: samples
                .iter()
                .map(|s| v2::Sample {
                    value: s.v,
                    timestamp: s.t,
                    start_timestamp: 0,
                })
                .collect(),
            ..Default::default()
        });
    }
    v2::Request {
        symbols,
        timeseries,
    }
    .encode_to_vec()
}

/// Returns the symbol index of `s`, adding it on first use. `index` borrows from the input
/// series, so repeated strings cost one hash look-up and no allocation.
fn intern<'a>(s: &'a str, index: &mut HashMap<&'a str, u32>, symbols: &mut Vec<String>) -> u32 {
    if let Some(i) = index.get(s) {
        return *i;
    }
    let i = u32::try_from(symbols.len()).unwrap_or(u32::MAX);
    symbols.push(s.to_string());
    index.insert(s, i);
    i
}
