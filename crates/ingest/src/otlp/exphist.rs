//! OpenTelemetry exponential histogram buckets → Prometheus native histogram buckets. Both use
//! base `2^(2^-scale)`, but OTel bucket `j` covers `(base^j, base^(j+1)]` while Prometheus
//! bucket `i` covers `(base^(i-1), base^i]`, so `i = j + 1`. Prometheus only supports scales
//! -4..=8: finer OTel scales are merged down to 8 (`2^(scale-8)` buckets become one), coarser
//! ones are refused. Sparse buckets are written as spans, with runs of up to two empty buckets
//! kept inside a span (as client_golang and Prometheus' OTLP receiver do) and longer runs
//! starting a new span.

use std::collections::BTreeMap;

use sextant_model::Span;

/// Finest native histogram schema.
pub const MAX_SCHEMA: i32 = 8;
/// Coarsest native histogram schema.
pub const MIN_SCHEMA: i32 = -4;
/// Zero bucket width Prometheus' OTLP receiver uses when the data point does not carry one.
pub const DEFAULT_ZERO_THRESHOLD: f64 = 1e-128;

/// Native (Prometheus) bucket index → count, at one schema.
pub type SparseBuckets = BTreeMap<i64, u64>;

/// Merges dense OTel buckets starting at OTel index `offset` into native buckets at a scale
/// `down` steps coarser. Empty buckets are left out.
pub fn merge_dense(offset: i32, counts: &[u64], down: u32, into: &mut SparseBuckets) {
    for (i, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let otel = i64::from(offset) + i as i64;
        let native = (otel >> down) + 1;
        let e = into.entry(native).or_insert(0);
        *e = e.saturating_add(c);
    }
}

/// Re-buckets native buckets `down` schema steps coarser.
pub fn downscale(buckets: &SparseBuckets, down: u32) -> SparseBuckets {
    if down == 0 {
        return buckets.clone();
    }
    let mut out = SparseBuckets::new();
    for (&i, &c) in buckets {
        let e = out.entry(((i - 1) >> down) + 1).or_insert(0);
        *e = e.saturating_add(c);
    }
    out
}

/// The inverse of [`to_spans`]: native spans and delta-encoded counts back to sparse buckets
/// (empty ones left out); `None` if they do not fit together or a count goes negative.
pub fn from_spans(spans: &[Span], deltas: &[i64]) -> Option<SparseBuckets> {
    let mut out = SparseBuckets::new();
    let mut deltas = deltas.iter();
    let mut idx: i64 = 0;
    let mut count: i64 = 0;
    for s in spans {
        idx = idx.checked_add(i64::from(s.offset))?;
        for _ in 0..s.length {
            count = count.checked_add(*deltas.next()?)?;
            if count > 0 {
                out.insert(idx, u64::try_from(count).ok()?);
            } else if count < 0 {
                return None;
            }
            idx += 1;
        }
    }
    deltas.next().is_none().then_some(out)
}

/// Turns ascending non-empty native buckets into spans and delta-encoded counts.
pub fn to_spans(buckets: &SparseBuckets) -> Result<(Vec<Span>, Vec<i64>), String> {
    let mut spans: Vec<Span> = Vec::new();
    let mut deltas: Vec<i64> = Vec::with_capacity(buckets.len());
    let mut prev_count: i64 = 0;
    let mut next_idx: i64 = 0; // index right after the last bucket written
    for (&idx, &count) in buckets {
        let count = i64::try_from(count)
            .map_err(|_| format!("bucket count {count} exceeds the native histogram range"))?;
        let gap = idx - next_idx;
        if spans.is_empty() || gap > 2 {
            let offset = i32::try_from(if spans.is_empty() { idx } else { gap })
                .map_err(|_| format!("bucket index {idx} is out of the native histogram range"))?;
            spans.push(Span { offset, length: 0 });
        } else {
            for _ in 0..gap {
                deltas.push(-prev_count);
                prev_count = 0;
                if let Some(s) = spans.last_mut() {
                    s.length += 1;
                }
            }
        }
        deltas.push(count - prev_count);
        prev_count = count;
        if let Some(s) = spans.last_mut() {
            s.length += 1;
        }
        next_idx = idx + 1;
    }
    Ok((spans, deltas))
}

/// Scale and down-scaling steps for an OTel scale: `Err` for scales below -4.
pub fn target_schema(scale: i32) -> Result<(i32, u32), String> {
    if scale < MIN_SCHEMA {
        return Err(format!(
            "exponential histogram scale {scale} is below {MIN_SCHEMA}, the coarsest native histogram schema"
        ));
    }
    if scale > MAX_SCHEMA {
        Ok((MAX_SCHEMA, (scale - MAX_SCHEMA) as u32))
    } else {
        Ok((scale, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(offset: i32, length: u32) -> Span {
        Span { offset, length }
    }

    fn convert(offset: i32, counts: &[u64], down: u32) -> (Vec<Span>, Vec<i64>) {
        let mut b = SparseBuckets::new();
        merge_dense(offset, counts, down, &mut b);
        to_spans(&b).unwrap()
    }

    #[test]
    fn index_shift_by_one() {
        // OTel bucket 0 is (1, 2] at scale 0, Prometheus bucket 1.
        assert_eq!(convert(0, &[4], 0), (vec![sp(1, 1)], vec![4]));
        // Negative offsets: OTel -3 → native -2.
        assert_eq!(convert(-3, &[1, 2, 3], 0), (vec![sp(-2, 3)], vec![1, 1, 1]));
    }

    #[test]
    fn small_gaps_filled_large_gaps_split() {
        // Two empty buckets stay inside the span...
        assert_eq!(
            convert(0, &[1, 0, 0, 2], 0),
            (vec![sp(1, 4)], vec![1, -1, 0, 2])
        );
        // ...three start a new span.
        assert_eq!(
            convert(0, &[1, 0, 0, 0, 2], 0),
            (vec![sp(1, 1), sp(3, 1)], vec![1, 1])
        );
        // Leading and trailing empty buckets are dropped.
        assert_eq!(convert(5, &[0, 0, 7, 0], 0), (vec![sp(8, 1)], vec![7]));
        assert_eq!(convert(0, &[], 0), (vec![], vec![]));
    }

    #[test]
    fn down_scaling_merges_pairs() {
        // One step coarser: OTel indices 0,1 → 0 → native 1; 2,3 → native 2.
        assert_eq!(convert(0, &[1, 2, 3, 4], 1), (vec![sp(1, 2)], vec![3, 4]));
        // Odd negative offsets floor correctly: -1 >> 1 = -1 → native 0; 0,1 → native 1.
        assert_eq!(convert(-1, &[5, 1, 1], 1), (vec![sp(0, 2)], vec![5, -3]));
        // Two steps: four buckets merge into one; an empty first window is not misplaced.
        assert_eq!(
            convert(0, &[0, 0, 0, 0, 9, 0, 0, 1], 2),
            (vec![sp(2, 1)], vec![10])
        );
        assert_eq!(convert(0, &[0, 0, 7, 0], 1), (vec![sp(2, 1)], vec![7]));
    }

    #[test]
    fn schemas() {
        assert_eq!(target_schema(3), Ok((3, 0)));
        assert_eq!(target_schema(20), Ok((8, 12)));
        assert_eq!(target_schema(-4), Ok((-4, 0)));
        assert!(target_schema(-5).unwrap_err().contains("-5"));
    }

    #[test]
    fn native_downscale() {
        let mut b = SparseBuckets::new();
        b.insert(1, 1);
        b.insert(2, 2);
        b.insert(0, 4);
        b.insert(-1, 8);
        // native i → ((i-1)>>1)+1: 1→1, 2→1, 0→0, -1→0
        let d = downscale(&b, 1);
        assert_eq!(d.into_iter().collect::<Vec<_>>(), vec![(0, 12), (1, 3)]);
    }

    #[test]
    fn extreme_offsets_do_not_overflow() {
        let mut b = SparseBuckets::new();
        merge_dense(i32::MAX, &[1, 1], 0, &mut b);
        assert!(to_spans(&b).is_err());
        let mut b = SparseBuckets::new();
        merge_dense(i32::MIN, &[1], 0, &mut b);
        assert_eq!(to_spans(&b).unwrap().0, vec![sp(i32::MIN + 1, 1)]);
    }
}
