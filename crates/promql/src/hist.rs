//! Native-histogram arithmetic for the evaluator: scaling, adding (with schema reduction), and
//! bucket iteration. Histograms are handled as float histograms throughout evaluation.

use std::collections::BTreeMap;

use sextant_model::histogram::CUSTOM_BUCKETS_SCHEMA;
use sextant_model::{CounterResetHint, FloatHistogram, Span};

/// Multiplies every count and the sum by `f`.
pub fn scale(h: &mut FloatHistogram, f: f64) {
    h.count *= f;
    h.sum *= f;
    h.zero_count *= f;
    h.positive_buckets.iter_mut().for_each(|b| *b *= f);
    h.negative_buckets.iter_mut().for_each(|b| *b *= f);
}

/// Buckets as (absolute index, count).
pub fn buckets(spans: &[Span], counts: &[f64]) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(counts.len());
    let mut idx = 0i32;
    let mut k = 0usize;
    for (i, s) in spans.iter().enumerate() {
        idx += s.offset;
        if i > 0 {
            // Offsets after the first are relative to the end of the previous span.
        }
        for _ in 0..s.length {
            if let Some(c) = counts.get(k) {
                out.push((idx, *c));
            }
            k += 1;
            idx += 1;
        }
    }
    out
}

/// Builds spans and counts from sorted (index, count) pairs.
pub fn from_buckets(b: &[(i32, f64)]) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut counts = Vec::new();
    let mut next = 0i32;
    for (i, (idx, c)) in b.iter().enumerate() {
        if i > 0 && *idx == next {
            if let Some(s) = spans.last_mut() {
                s.length += 1;
            }
        } else {
            let off = if i == 0 { *idx } else { idx - next };
            spans.push(Span {
                offset: off,
                length: 1,
            });
        }
        counts.push(*c);
        next = idx + 1;
    }
    (spans, counts)
}

fn reduce(b: Vec<(i32, f64)>, from: i32, to: i32) -> BTreeMap<i32, f64> {
    let mut m = BTreeMap::new();
    let d = from - to;
    for (idx, c) in b {
        let ni = if d > 0 { ((idx - 1) >> d) + 1 } else { idx };
        *m.entry(ni).or_insert(0.0) += c;
    }
    m
}

/// What happened while adding two histograms, for annotations.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddNote {
    /// Custom bucket bounds differed and were reduced to the common ones.
    pub reconciled: bool,
    /// One side said "counter reset", the other "not a counter reset".
    pub conflict: bool,
}

/// `a + b` (or `a - b`); `None` when custom-bucket and exponential histograms are mixed.
pub fn add(a: &FloatHistogram, b: &FloatHistogram, sub: bool) -> Option<FloatHistogram> {
    add_ex(a, b, sub).map(|x| x.0)
}

/// Maps custom-bucket counts onto a coarser set of bounds (a subset of the original ones).
fn remap_custom(h_bounds: &[f64], b: Vec<(i32, f64)>, common: &[f64]) -> Vec<(i32, f64)> {
    b.into_iter()
        .map(|(i, c)| {
            let ub = h_bounds.get(i as usize).copied().unwrap_or(f64::INFINITY);
            let ni = common.partition_point(|x| *x < ub);
            (ni as i32, c)
        })
        .collect()
}

/// Like [`add`], also reporting reconciliation of custom buckets and hint conflicts.
pub fn add_ex(
    a: &FloatHistogram,
    b: &FloatHistogram,
    sub: bool,
) -> Option<(FloatHistogram, AddNote)> {
    let a_custom = a.schema == CUSTOM_BUCKETS_SCHEMA;
    let b_custom = b.schema == CUSTOM_BUCKETS_SCHEMA;
    if a_custom != b_custom {
        return None;
    }
    let mut note = AddNote::default();
    use CounterResetHint::{CounterReset, NotCounterReset};
    note.conflict = matches!(
        (a.counter_reset_hint, b.counter_reset_hint),
        (CounterReset, NotCounterReset) | (NotCounterReset, CounterReset)
    );
    let mut custom = a.custom_values.clone();
    if a_custom && a.custom_values != b.custom_values {
        note.reconciled = true;
        custom = a
            .custom_values
            .iter()
            .copied()
            .filter(|x| b.custom_values.contains(x))
            .collect();
    }
    let sign = if sub { -1.0 } else { 1.0 };
    let schema = a.schema.min(b.schema);
    let merge = |sa: &[Span], ca: &[f64], sb: &[Span], cb: &[f64]| {
        let (mut ba, mut bb) = (buckets(sa, ca), buckets(sb, cb));
        if note.reconciled {
            ba = remap_custom(&a.custom_values, ba, &custom);
            bb = remap_custom(&b.custom_values, bb, &custom);
        }
        let mut m = reduce(ba, a.schema, schema);
        for (i, c) in reduce(bb, b.schema, schema) {
            *m.entry(i).or_insert(0.0) += sign * c;
        }
        let v: Vec<(i32, f64)> = m.into_iter().collect();
        from_buckets(&v)
    };
    let (ps, pc) = merge(
        &a.positive_spans,
        &a.positive_buckets,
        &b.positive_spans,
        &b.positive_buckets,
    );
    let (ns, nc) = merge(
        &a.negative_spans,
        &a.negative_buckets,
        &b.negative_spans,
        &b.negative_buckets,
    );
    let hint = if sub {
        CounterResetHint::Gauge
    } else {
        merge_hint(a.counter_reset_hint, b.counter_reset_hint)
    };
    Some((
        FloatHistogram {
            counter_reset_hint: hint,
            schema,
            zero_threshold: a.zero_threshold.max(b.zero_threshold),
            zero_count: a.zero_count + sign * b.zero_count,
            count: a.count + sign * b.count,
            sum: a.sum + sign * b.sum,
            positive_spans: ps,
            negative_spans: ns,
            positive_buckets: pc,
            negative_buckets: nc,
            custom_values: custom,
        },
        note,
    ))
}

/// Recomputes every count of `acc`, the plain sum of `hs` that fixed the layout (schema,
/// custom bounds, buckets), field by field with `f` over the inputs' values: Kahan summation
/// or an overflow-safe mean, as Prometheus does for histograms in `sum`/`avg` and
/// `sum_over_time`/`avg_over_time`.
pub fn refold(acc: &mut FloatHistogram, hs: &[&FloatHistogram], f: impl Fn(&[f64]) -> f64) {
    let field =
        |g: &dyn Fn(&FloatHistogram) -> f64| f(&hs.iter().map(|h| g(h)).collect::<Vec<_>>());
    acc.count = field(&|h| h.count);
    acc.sum = field(&|h| h.sum);
    acc.zero_count = field(&|h| h.zero_count);
    let custom = acc.schema == CUSTOM_BUCKETS_SCHEMA;
    type Layout<'a> = dyn Fn(&FloatHistogram) -> (&[Span], &[f64]) + 'a;
    let aligned = |spans: &Layout| -> Vec<BTreeMap<i32, f64>> {
        hs.iter()
            .map(|h| {
                let (s, c) = spans(h);
                let b = buckets(s, c);
                if custom {
                    let b = if h.custom_values != acc.custom_values {
                        remap_custom(&h.custom_values, b, &acc.custom_values)
                    } else {
                        b
                    };
                    let mut m = BTreeMap::new();
                    for (i, c) in b {
                        *m.entry(i).or_insert(0.0) += c;
                    }
                    m
                } else {
                    reduce(b, h.schema, acc.schema)
                }
            })
            .collect()
    };
    let pos = aligned(&|h| (&h.positive_spans, &h.positive_buckets));
    let neg = aligned(&|h| (&h.negative_spans, &h.negative_buckets));
    let refill = |spans: &[Span], counts: &mut [f64], maps: &[BTreeMap<i32, f64>]| {
        for (k, (idx, _)) in buckets(spans, counts).into_iter().enumerate() {
            let vals: Vec<f64> = maps
                .iter()
                .map(|m| m.get(&idx).copied().unwrap_or(0.0))
                .collect();
            counts[k] = f(&vals);
        }
    };
    refill(&acc.positive_spans.clone(), &mut acc.positive_buckets, &pos);
    refill(&acc.negative_spans.clone(), &mut acc.negative_buckets, &neg);
}

/// Structural equality ignoring empty buckets and the counter-reset hint.
pub fn equal(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    let nz = |s: &[Span], c: &[f64]| -> Vec<(i32, f64)> {
        buckets(s, c).into_iter().filter(|x| x.1 != 0.0).collect()
    };
    a.schema == b.schema
        && a.zero_threshold == b.zero_threshold
        && a.zero_count == b.zero_count
        && a.count == b.count
        && (a.sum == b.sum || (a.sum.is_nan() && b.sum.is_nan()))
        && a.custom_values == b.custom_values
        && nz(&a.positive_spans, &a.positive_buckets) == nz(&b.positive_spans, &b.positive_buckets)
        && nz(&a.negative_spans, &a.negative_buckets) == nz(&b.negative_spans, &b.negative_buckets)
}

/// Lower and upper bound of a bucket index for a schema.
pub fn bucket_bounds(schema: i32, idx: i32, custom: &[f64]) -> (f64, f64) {
    if schema == CUSTOM_BUCKETS_SCHEMA {
        let i = idx as usize;
        let lo = if i == 0 {
            f64::NEG_INFINITY
        } else {
            custom.get(i - 1).copied().unwrap_or(f64::INFINITY)
        };
        let hi = custom.get(i).copied().unwrap_or(f64::INFINITY);
        return (lo, hi);
    }
    // 2^(i / 2^schema) as an exact power of two times a fraction from [1, 2), so bounds
    // that are powers of two come out exact (as Prometheus' table-based bounds do) instead
    // of accumulating `powi`'s rounding (0.4999999999999999 for 0.5).
    let up = |i: i32| -> f64 {
        if schema <= 0 {
            let e = (i as i64) << (-schema).min(62);
            return 2f64.powi(e.clamp(-1100, 1100) as i32);
        }
        let n = 1i64 << schema.min(30);
        let (e, f) = ((i as i64).div_euclid(n), (i as i64).rem_euclid(n));
        2f64.powf(f as f64 / n as f64) * 2f64.powi(e.clamp(-1100, 1100) as i32)
    };
    (up(idx - 1), up(idx))
}

/// Divides every count and the sum by `d` (IEEE semantics for zero).
pub fn div(h: &mut FloatHistogram, d: f64) {
    h.count /= d;
    h.sum /= d;
    h.zero_count /= d;
    if d == 0.0 {
        // As in Prometheus, division by zero removes all buckets.
        h.positive_spans.clear();
        h.negative_spans.clear();
        h.positive_buckets.clear();
        h.negative_buckets.clear();
        return;
    }
    h.positive_buckets.iter_mut().for_each(|b| *b /= d);
    h.negative_buckets.iter_mut().for_each(|b| *b /= d);
}

/// Merges counter-reset hints the way Prometheus' `FloatHistogram.Add` does.
pub fn merge_hint(a: CounterResetHint, b: CounterResetHint) -> CounterResetHint {
    use CounterResetHint::*;
    match (a, b) {
        (x, y) if x == y => x,
        (Gauge, _) | (_, Gauge) => Gauge,
        _ => Unknown,
    }
}

/// The hint storage attaches to a histogram appended after `prev` (Prometheus' TSDB marks
/// samples inside a chunk "not a reset" and starts a new chunk, marked "reset", on a reset).
pub fn storage_hint(cur: &FloatHistogram, prev: Option<&FloatHistogram>) -> CounterResetHint {
    match (cur.counter_reset_hint, prev) {
        (CounterResetHint::Unknown, Some(p)) if p.counter_reset_hint != CounterResetHint::Gauge => {
            if detect_reset(cur, p) {
                CounterResetHint::CounterReset
            } else {
                CounterResetHint::NotCounterReset
            }
        }
        (h, _) => h,
    }
}

/// Whether `cur` shows a counter reset relative to `prev` (Prometheus' `DetectReset`).
pub fn detect_reset(cur: &FloatHistogram, prev: &FloatHistogram) -> bool {
    match cur.counter_reset_hint {
        CounterResetHint::CounterReset => return true,
        CounterResetHint::NotCounterReset => return false,
        _ => {}
    }
    if cur.count < prev.count {
        return true;
    }
    let cc = cur.schema == CUSTOM_BUCKETS_SCHEMA;
    let pc = prev.schema == CUSTOM_BUCKETS_SCHEMA;
    if cc != pc {
        return true;
    }
    if cc && cur.custom_values != prev.custom_values {
        // Compare on the bounds both share, as Prometheus reconciles them.
        let common: Vec<f64> = cur
            .custom_values
            .iter()
            .copied()
            .filter(|x| prev.custom_values.contains(x))
            .collect();
        if cur.zero_count < prev.zero_count {
            return true;
        }
        let side = |h: &FloatHistogram| -> BTreeMap<i32, f64> {
            let mut m = BTreeMap::new();
            let b = buckets(&h.positive_spans, &h.positive_buckets);
            for (i, c) in remap_custom(&h.custom_values, b, &common) {
                *m.entry(i).or_insert(0.0) += c;
            }
            m
        };
        let (c, p) = (side(cur), side(prev));
        return p.iter().any(|(i, v)| *v > c.get(i).copied().unwrap_or(0.0));
    }
    if cur.schema > prev.schema {
        return true;
    }
    if cur.zero_threshold < prev.zero_threshold {
        return true;
    }
    if cur.zero_count < prev.zero_count {
        return true;
    }
    let side = |cs: &[Span], cb: &[f64], ps: &[Span], pb: &[f64]| {
        let c = reduce(buckets(cs, cb), cur.schema, cur.schema);
        let p = reduce(buckets(ps, pb), prev.schema, cur.schema);
        p.iter().any(|(i, v)| *v > c.get(i).copied().unwrap_or(0.0))
    };
    side(
        &cur.positive_spans,
        &cur.positive_buckets,
        &prev.positive_spans,
        &prev.positive_buckets,
    ) || side(
        &cur.negative_spans,
        &cur.negative_buckets,
        &prev.negative_spans,
        &prev.negative_buckets,
    )
}

/// The trim operators: keep the observations above (`keep_upper`, `>/`) or below (`</`) `cut`,
/// interpolating inside the bucket that contains it; the sum is re-estimated from the buckets.
pub fn trim(h: &FloatHistogram, cut: f64, keep_upper: bool) -> FloatHistogram {
    let custom = h.schema == CUSTOM_BUCKETS_SCHEMA;
    let has_pos = h.positive_buckets.iter().any(|c| *c != 0.0);
    let has_neg = h.negative_buckets.iter().any(|c| *c != 0.0);
    // (lower, upper) of the kept part of [lo, hi], or None when nothing of it is kept.
    let kept = |lo: f64, hi: f64| -> Option<(f64, f64)> {
        if keep_upper {
            if hi <= cut {
                None
            } else {
                Some((lo.max(cut), hi))
            }
        } else if lo >= cut {
            None
        } else {
            Some((lo, hi.min(cut)))
        }
    };
    let mut changed = false;
    let mut sum = 0.0;
    let mut count = 0.0;
    // Each bucket: returns the kept count and adds to the sum.
    let mut one = |lo: f64, hi: f64, c: f64, linear: bool| -> f64 {
        if c == 0.0 {
            return 0.0;
        }
        let Some((klo, khi)) = kept(lo, hi) else {
            changed = true;
            return 0.0;
        };
        let full = klo == lo && khi == hi;
        let (nc, rep);
        if lo.is_infinite() || hi.is_infinite() {
            if !full {
                changed = true;
            }
            // Only the side that reaches the infinite end can be kept, and only whole.
            let keeps_inf_end =
                (lo.is_infinite() && !keep_upper) || (hi.is_infinite() && keep_upper);
            if !full && (!keeps_inf_end || (lo.is_infinite() && hi.is_infinite())) {
                return 0.0;
            }
            nc = c;
            rep = if lo.is_infinite() && hi.is_infinite() {
                0.0
            } else if lo.is_infinite() {
                if khi > 0.0 {
                    khi / 2.0
                } else {
                    khi
                }
            } else {
                klo
            };
        } else if full {
            nc = c;
            rep = if linear {
                (lo + hi) / 2.0
            } else if lo >= 0.0 {
                (lo * hi).sqrt()
            } else {
                -(lo * hi).sqrt()
            };
        } else {
            changed = true;
            if linear {
                nc = c * (khi - klo) / (hi - lo);
                rep = (klo + khi) / 2.0;
            } else {
                let (a, b, ka, kb) = if lo >= 0.0 {
                    (lo, hi, klo, khi)
                } else {
                    (-hi, -lo, -khi, -klo)
                };
                nc = c * (kb / ka).ln() / (b / a).ln();
                let g = (ka * kb).sqrt();
                rep = if lo >= 0.0 { g } else { -g };
            }
        }
        count += nc;
        sum += nc * rep;
        nc
    };
    let mut dropped_whole = false;
    let mut out = h.clone();
    // Zero bucket, biased towards the side that has buckets.
    if h.zero_count != 0.0 {
        let zt = h.zero_threshold;
        let (lo, hi) = match (has_pos, has_neg) {
            (true, false) => (0.0, zt),
            (false, true) => (-zt, 0.0),
            _ => (-zt, zt),
        };
        out.zero_count = one(lo, hi, h.zero_count, true);
    }
    for (k, (idx, c)) in buckets(&h.positive_spans, &h.positive_buckets)
        .into_iter()
        .enumerate()
    {
        let (lo, hi) = bucket_bounds(h.schema, idx, &h.custom_values);
        let both_inf = lo.is_infinite() && hi.is_infinite();
        let lo = if custom && lo == f64::NEG_INFINITY && hi > 0.0 {
            0.0
        } else {
            lo
        };
        out.positive_buckets[k] = if both_inf {
            // The single (-Inf, +Inf] bucket cannot be split: any real cut drops it.
            match kept(lo, hi) {
                Some((a, b)) if a == lo && b == hi => c,
                _ => {
                    dropped_whole = true;
                    0.0
                }
            }
        } else {
            one(lo, hi, c, custom)
        };
    }
    for (k, (idx, c)) in buckets(&h.negative_spans, &h.negative_buckets)
        .into_iter()
        .enumerate()
    {
        let (lo, hi) = bucket_bounds(h.schema, idx, &h.custom_values);
        out.negative_buckets[k] = one(-hi, -lo, c, custom);
    }
    if !changed && !dropped_whole {
        return h.clone();
    }
    out.count = count;
    out.sum = sum;
    out
}

#[cfg(test)]
mod bound_tests {
    use super::bucket_bounds;

    #[test]
    fn powers_of_two_are_exact_bounds() {
        assert_eq!(
            bucket_bounds(1, 0, &[]),
            (std::f64::consts::FRAC_1_SQRT_2, 1.0)
        );
        assert_eq!(bucket_bounds(1, -1, &[]).1, std::f64::consts::FRAC_1_SQRT_2);
        assert_eq!(bucket_bounds(1, -2, &[]).1, 0.5);
        assert_eq!(bucket_bounds(1, 2, &[]).1, 2.0);
        assert_eq!(bucket_bounds(3, -8, &[]).1, 0.5);
        assert_eq!(bucket_bounds(8, 256 * 3, &[]).1, 8.0);
        assert_eq!(bucket_bounds(-2, 1, &[]), (1.0, 16.0));
        assert_eq!(bucket_bounds(0, -3, &[]), (0.0625, 0.125));
    }
}
