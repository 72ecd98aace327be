//! Shapes the HTTP API needs from the engine: the bucket list of a native histogram as
//! Prometheus' JSON writes it.

use sextant_model::histogram::CUSTOM_BUCKETS_SCHEMA;
use sextant_model::FloatHistogram;

use crate::hist::{bucket_bounds, buckets};

/// Buckets of a histogram as `(boundary_rule, lower, upper, count)` in Prometheus' API order:
/// negative buckets from the most negative, the zero bucket, then positive buckets. Boundary
/// rules: 0 = (lower, upper], 1 = [lower, upper), 3 = [lower, upper]. Empty buckets are left out.
pub fn api_buckets(h: &FloatHistogram) -> Vec<(u8, f64, f64, f64)> {
    let mut out = Vec::new();
    let custom = h.schema == CUSTOM_BUCKETS_SCHEMA;
    for (idx, c) in buckets(&h.negative_spans, &h.negative_buckets)
        .into_iter()
        .rev()
    {
        if c != 0.0 {
            let (lo, hi) = bucket_bounds(h.schema, idx, &h.custom_values);
            out.push((1, -hi, -lo, c));
        }
    }
    if !custom && h.zero_count != 0.0 {
        out.push((3, -h.zero_threshold, h.zero_threshold, h.zero_count));
    }
    for (idx, c) in buckets(&h.positive_spans, &h.positive_buckets) {
        if c != 0.0 {
            let (lo, hi) = bucket_bounds(h.schema, idx, &h.custom_values);
            // The first positive bucket touching the zero bucket starts at its threshold.
            let lo = if !custom && lo < h.zero_threshold && hi > h.zero_threshold {
                h.zero_threshold
            } else {
                lo
            };
            out.push((0, lo, hi, c));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_of_an_exponential_histogram() {
        let h = FloatHistogram {
            schema: 0,
            zero_threshold: 0.001,
            zero_count: 2.0,
            count: 7.0,
            sum: 10.0,
            positive_spans: vec![sextant_model::Span {
                offset: 0,
                length: 2,
            }],
            positive_buckets: vec![1.0, 3.0],
            negative_spans: vec![sextant_model::Span {
                offset: 0,
                length: 1,
            }],
            negative_buckets: vec![1.0],
            ..Default::default()
        };
        let b = api_buckets(&h);
        assert_eq!(
            b,
            vec![
                (1, -1.0, -0.5, 1.0),
                (3, -0.001, 0.001, 2.0),
                (0, 0.5, 1.0, 1.0),
                (0, 1.0, 2.0, 3.0)
            ]
        );
    }
}
