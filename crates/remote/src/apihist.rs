//! Native histograms back from Prometheus' JSON. The query API writes a native histogram as
//! `{"count", "sum", "buckets": [[boundary_rule, lower, upper, count], ...]}` — bucket bounds,
//! not the schema and bucket indexes the histogram is stored with. A remote engine queried
//! through that API (`remote_engines: api: query`) must still hand the PromQL engine real
//! histograms, so this module recovers them: the exponential schema is the one (-4..=8) on
//! whose bucket grid every bound lies with consecutive lower and upper bounds, the zero bucket
//! is the `[-t, t]` bucket, and a layout that fits no exponential schema is a custom-buckets
//! histogram (schema -53, Prometheus' NHCB) whose bounds are the finite bounds shown. Empty
//! buckets are not in the JSON; they come back as gaps between spans, which is the same
//! histogram.

use serde_json::Value;
use sextant_model::histogram::CUSTOM_BUCKETS_SCHEMA;
use sextant_model::{FloatHistogram, Span};

/// Schema used when no bucket pins the schema down (only a zero bucket, or none): the finest,
/// so merging with other samples never coarsens theirs.
const FALLBACK_SCHEMA: i32 = 8;

/// Upper bound of exponential bucket `idx` at `schema`, computed as PromQL's bucket bounds are.
fn upper(schema: i32, idx: i32) -> f64 {
    let base = 2f64.powf(2f64.powi(-schema));
    base.powi(idx)
}

fn close(a: f64, b: f64) -> bool {
    a == b || ((a - b).abs() <= 1e-9 * a.abs().max(b.abs()))
}

fn num(v: &Value, what: &str) -> Result<f64, String> {
    match v {
        Value::String(s) => s
            .parse::<f64>()
            .map_err(|_| format!("histogram {what}: invalid number {s:?}")),
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("histogram {what}: invalid number {n}")),
        other => Err(format!("histogram {what}: expected a number, got {other}")),
    }
}

/// The bucket index of magnitude bounds `(lo, hi]` at `schema`, if they lie on its grid.
/// `clamped` allows `lo` to be a zero threshold inside the bucket (the lowest bucket).
fn index_at(schema: i32, lo: f64, hi: f64, clamped: bool) -> Option<i32> {
    if hi.is_nan() || hi <= 0.0 || !hi.is_finite() {
        return None;
    }
    let x = hi.log2() * 2f64.powi(schema);
    let idx = x.round();
    if (x - idx).abs() > 1e-6 || idx.abs() > i32::MAX as f64 / 2.0 {
        return None;
    }
    let idx = idx as i32;
    if !close(upper(schema, idx), hi) {
        return None;
    }
    let want_lo = upper(schema, idx - 1);
    if close(want_lo, lo) || (clamped && lo > want_lo && lo < hi) {
        Some(idx)
    } else {
        None
    }
}

/// Spans and counts of `(index, count)` pairs.
fn spans(mut v: Vec<(i32, f64)>) -> (Vec<Span>, Vec<f64>) {
    v.sort_by_key(|p| p.0);
    let mut spans: Vec<Span> = Vec::new();
    let mut counts = Vec::with_capacity(v.len());
    let mut prev: Option<i32> = None;
    for (idx, c) in v {
        match prev {
            Some(p) if idx == p => {
                // The same bucket twice: add up (not produced by Prometheus).
                if let Some(last) = counts.last_mut() {
                    *last += c;
                }
                continue;
            }
            Some(p) if idx == p + 1 => {
                if let Some(s) = spans.last_mut() {
                    s.length += 1;
                }
            }
            Some(p) => spans.push(Span {
                offset: idx - p - 1,
                length: 1,
            }),
            None => spans.push(Span {
                offset: idx,
                length: 1,
            }),
        }
        counts.push(c);
        prev = Some(idx);
    }
    (spans, counts)
}

/// One native histogram of a query API reply (the object of a `histograms` pair or of a
/// vector's `histogram`).
pub fn from_api(v: &Value) -> Result<FloatHistogram, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("histogram: expected an object, got {v}"))?;
    let count = num(obj.get("count").unwrap_or(&Value::Null), "count")?;
    let sum = num(obj.get("sum").unwrap_or(&Value::Null), "sum")?;
    let empty = Vec::new();
    let buckets = match obj.get("buckets") {
        None | Some(Value::Null) => &empty,
        Some(Value::Array(a)) => a,
        Some(other) => return Err(format!("histogram buckets: expected an array, got {other}")),
    };
    // (rule, lower, upper, count)
    let mut bs: Vec<(u64, f64, f64, f64)> = Vec::with_capacity(buckets.len());
    for b in buckets {
        let a = match b.as_array() {
            Some(a) if a.len() == 4 => a,
            _ => {
                return Err(format!(
                    "histogram bucket: expected [rule, lower, upper, count], got {b}"
                ))
            }
        };
        let rule = a[0]
            .as_u64()
            .filter(|r| *r <= 3)
            .ok_or_else(|| format!("histogram bucket: invalid boundary rule {}", a[0]))?;
        let (lo, hi, c) = (
            num(&a[1], "bucket lower bound")?,
            num(&a[2], "bucket upper bound")?,
            num(&a[3], "bucket count")?,
        );
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(format!("histogram bucket: invalid bounds [{lo}, {hi}]"));
        }
        bs.push((rule, lo, hi, c));
    }

    let mut h = FloatHistogram {
        count,
        sum,
        ..Default::default()
    };
    // The zero bucket: [-t, t].
    let mut zero: Option<(f64, f64)> = None;
    let mut pos: Vec<(f64, f64, f64)> = Vec::new();
    let mut neg: Vec<(f64, f64, f64)> = Vec::new();
    for &(rule, lo, hi, c) in &bs {
        if rule == 3 && lo == -hi && zero.is_none() {
            zero = Some((hi, c));
        } else if hi <= 0.0 && rule == 1 {
            neg.push((-hi, -lo, c));
        } else {
            pos.push((lo, hi, c));
        }
    }
    if let Some((t, c)) = zero {
        h.zero_threshold = t;
        h.zero_count = c;
    }
    // The API starts the positive bucket holding the zero threshold at the threshold.
    let lowest_pos = pos.iter().map(|b| b.1).fold(f64::INFINITY, f64::min);
    let zt = zero.map(|z| z.0);
    type Indexed = Vec<(i32, f64)>;
    // Exact fits first; only if none fits may the lowest positive bucket start inside its
    // grid bucket (at the zero threshold), else a coarser schema would always "fit".
    let fit = |schema: i32, clamp: bool| -> Option<(Indexed, Indexed)> {
        let mut p = Vec::with_capacity(pos.len());
        for &(lo, hi, c) in &pos {
            let clamp_ok = clamp && (hi == lowest_pos || Some(lo) == zt);
            p.push((index_at(schema, lo, hi, clamp_ok)?, c));
        }
        let mut n = Vec::with_capacity(neg.len());
        for &(lo, hi, c) in &neg {
            n.push((index_at(schema, lo, hi, false)?, c));
        }
        Some((p, n))
    };
    // With clamping the finest schema whose grid bucket holds the threshold is taken (a lone
    // clamped bucket fits several; the finest never coarsens other samples when merged).
    let found = (-4..=8)
        .find_map(|s| fit(s, false).map(|f| (s, f)))
        .or_else(|| (-4..=8).rev().find_map(|s| fit(s, true).map(|f| (s, f))));
    if pos.is_empty() && neg.is_empty() {
        h.schema = FALLBACK_SCHEMA;
    } else if let Some((schema, (p, n))) = found {
        h.schema = schema;
        // A lowest bucket starting inside its grid bucket starts at the zero threshold.
        if zero.is_none() {
            for &(lo, hi, _) in pos.iter().filter(|b| b.1 == lowest_pos) {
                if index_at(schema, lo, hi, false).is_none() {
                    h.zero_threshold = lo;
                }
            }
        }
        (h.positive_spans, h.positive_buckets) = spans(p);
        (h.negative_spans, h.negative_buckets) = spans(n);
    } else if zero.is_none() && neg.is_empty() {
        // Custom buckets: the finite bounds shown are the bucket bounds.
        let mut bounds: Vec<f64> = pos
            .iter()
            .flat_map(|b| [b.0, b.1])
            .filter(|x| x.is_finite())
            .collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let mut p = Vec::with_capacity(pos.len());
        for &(_, hi, c) in &pos {
            let idx = if hi == f64::INFINITY {
                bounds.len()
            } else {
                bounds.partition_point(|b| *b < hi)
            };
            p.push((
                i32::try_from(idx).map_err(|_| "histogram: too many buckets")?,
                c,
            ));
        }
        h.schema = CUSTOM_BUCKETS_SCHEMA;
        h.custom_values = bounds;
        (h.positive_spans, h.positive_buckets) = spans(p);
    } else {
        return Err("histogram: bucket bounds fit no exponential schema".into());
    }
    h.validate().map_err(|e| format!("histogram: {e}"))?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders `h` the way the query API does and reads it back.
    fn round_trip(h: &FloatHistogram) -> FloatHistogram {
        let buckets: Vec<Value> = sextant_promql::api_buckets(h)
            .into_iter()
            .map(|(r, lo, hi, c)| {
                serde_json::json!([r, lo.to_string(), hi.to_string(), c.to_string()])
            })
            .collect();
        let v = serde_json::json!({
            "count": h.count.to_string(),
            "sum": h.sum.to_string(),
            "buckets": buckets,
        });
        from_api(&v).unwrap()
    }

    fn exp(
        schema: i32,
        zt: f64,
        zc: f64,
        pos: &[(i32, u32)],
        pc: &[f64],
        neg: &[(i32, u32)],
        nc: &[f64],
    ) -> FloatHistogram {
        let sp = |v: &[(i32, u32)]| {
            v.iter()
                .map(|&(offset, length)| Span { offset, length })
                .collect()
        };
        FloatHistogram {
            schema,
            zero_threshold: zt,
            zero_count: zc,
            count: zc + pc.iter().sum::<f64>() + nc.iter().sum::<f64>(),
            sum: 12.5,
            positive_spans: sp(pos),
            positive_buckets: pc.to_vec(),
            negative_spans: sp(neg),
            negative_buckets: nc.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn exponential_schemas_round_trip() {
        for schema in -4..=8 {
            let h = exp(
                schema,
                0.001,
                2.0,
                &[(-3, 2), (4, 3)],
                &[1.0, 2.0, 3.0, 4.0, 5.0],
                &[(1, 1), (2, 2)],
                &[6.0, 7.0, 8.0],
            );
            let back = round_trip(&h);
            assert_eq!(back, h, "schema {schema}");
        }
    }

    #[test]
    fn zero_threshold_without_zero_count_is_recovered_from_a_clamped_bucket() {
        // Schema 0: bucket 0 is (0.5, 1]; with threshold 0.7 the API shows (0.7, 1].
        let h = exp(0, 0.7, 0.0, &[(0, 2)], &[1.0, 2.0], &[], &[]);
        let back = round_trip(&h);
        assert_eq!(back, h);
    }

    #[test]
    fn custom_buckets_round_trip() {
        let h = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 6.0,
            sum: 3.0,
            custom_values: vec![0.1, 0.25, 1.0],
            positive_spans: vec![Span {
                offset: 0,
                length: 4,
            }],
            positive_buckets: vec![1.0, 2.0, 0.0, 3.0],
            ..Default::default()
        };
        let back = round_trip(&h);
        // The empty bucket (0.25, 1] is not shown; its bounds still are (as neighbours'), and
        // it comes back as a gap between spans.
        assert_eq!(back.schema, CUSTOM_BUCKETS_SCHEMA);
        assert_eq!(back.custom_values, vec![0.1, 0.25, 1.0]);
        assert_eq!(back.positive_buckets, vec![1.0, 2.0, 3.0]);
        assert_eq!(
            sextant_promql::api_buckets(&back),
            sextant_promql::api_buckets(&h)
        );
        assert_eq!((back.count, back.sum), (6.0, 3.0));
    }

    use proptest::prelude::*;

    proptest! {
        /// Any histogram the query API can write comes back with the same buckets, count and
        /// sum (and, rendered again, the same JSON).
        #[test]
        fn api_buckets_round_trip(
            schema in -4i32..=8,
            zt in prop::sample::select(vec![0.0, 1e-300]),
            zc in prop::sample::select(vec![0.0, 3.0]),
            pos in prop::collection::vec((-8i32..8, 1u32..4, 1.0f64..100.0), 0..4),
            neg in prop::collection::vec((-8i32..8, 1u32..4, 1.0f64..100.0), 0..3),
        ) {
            let spans = |v: &[(i32, u32, f64)]| -> (Vec<Span>, Vec<f64>) {
                let mut s = Vec::new();
                let mut c = Vec::new();
                for (i, &(off, len, n)) in v.iter().enumerate() {
                    // Offsets after the first are gaps (≥ 0).
                    let off = if i == 0 { off } else { off.abs() };
                    s.push(Span { offset: off, length: len });
                    c.extend((0..len).map(|k| n + k as f64));
                }
                (s, c)
            };
            let (ps, pc) = spans(&pos);
            let (ns, nc) = spans(&neg);
            let h = FloatHistogram {
                schema,
                zero_threshold: zt,
                zero_count: zc,
                count: zc + pc.iter().sum::<f64>() + nc.iter().sum::<f64>(),
                sum: 1.5,
                positive_spans: ps,
                positive_buckets: pc,
                negative_spans: ns,
                negative_buckets: nc,
                ..Default::default()
            };
            let want = sextant_promql::api_buckets(&h);
            let back = round_trip(&h);
            prop_assert_eq!(sextant_promql::api_buckets(&back), want);
            prop_assert_eq!((back.count, back.sum), (h.count, h.sum));
        }

        /// Arbitrary bucket lists never panic: they are read or refused with an error.
        #[test]
        fn arbitrary_buckets_never_panic(
            b in prop::collection::vec((0u64..5, any::<f64>(), any::<f64>(), any::<f64>()), 0..8),
        ) {
            let buckets: Vec<Value> = b
                .iter()
                .map(|(r, lo, hi, c)| serde_json::json!([r, lo.to_string(), hi.to_string(), c.to_string()]))
                .collect();
            let v = serde_json::json!({"count": "1", "sum": "0", "buckets": buckets});
            let _ = from_api(&v);
        }
    }

    #[test]
    fn only_a_zero_bucket_and_bad_input() {
        let v =
            serde_json::json!({"count": "3", "sum": "0", "buckets": [[3, "-0.001", "0.001", "3"]]});
        let h = from_api(&v).unwrap();
        assert_eq!(
            (h.zero_threshold, h.zero_count, h.schema),
            (0.001, 3.0, FALLBACK_SCHEMA)
        );
        for bad in [
            serde_json::json!({"count": "x", "sum": "0"}),
            serde_json::json!({"count": "1", "sum": "0", "buckets": [[0, "1"]]}),
            serde_json::json!({"count": "1", "sum": "0", "buckets": [[9, "1", "2", "1"]]}),
            serde_json::json!({"count": "1", "sum": "0", "buckets": [[0, "2", "1", "1"]]}),
            serde_json::json!([1]),
        ] {
            assert!(from_api(&bad).is_err(), "{bad}");
        }
    }
}
