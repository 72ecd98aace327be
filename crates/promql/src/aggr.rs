//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, `count_values`, `limitk`, ...)
//! with `by`/`without` grouping, following Prometheus' numeric details (Kahan summation,
//! incremental mean on overflow, NaN ordering in `topk`/`bottomk`).

use std::collections::HashMap;

use sextant_model::{FloatHistogram, Labels, METRIC_NAME};

use crate::ast::AggOp;
use crate::engine::{Ev, Val};
use crate::error::EvalError;
use crate::funcs::{kahan_inc, kahan_sum, quantile};
use crate::hist;
use crate::value::VSample;

/// The grouping key (a string) and the output labels of a series' group.
pub(crate) fn group_key(l: &Labels, grouping: &[String], without: bool) -> (String, Labels) {
    let labels = if without {
        Labels::from_pairs(
            l.iter()
                .filter(|x| x.name != METRIC_NAME && !grouping.contains(&x.name))
                .map(|x| (x.name.clone(), x.value.clone())),
        )
    } else {
        Labels::from_pairs(
            grouping
                .iter()
                .filter_map(|g| l.get(g).map(|v| (g.clone(), v.to_string()))),
        )
    };
    let mut k = String::new();
    for x in labels.iter() {
        k.push_str(&x.name);
        k.push('\u{fe}');
        k.push_str(&x.value);
        k.push('\u{ff}');
    }
    (k, labels)
}

struct Group {
    labels: Labels,
    members: Vec<VSample>,
}

pub(crate) fn aggregate(
    ev: &mut Ev,
    op: AggOp,
    param: Option<Val>,
    input: Vec<VSample>,
    grouping: &[String],
    without: bool,
    (_pos, param_pos): (usize, usize),
) -> Result<Vec<VSample>, EvalError> {
    let pf = match &param {
        Some(Val::Scalar(v)) => *v,
        _ => f64::NAN,
    };
    match op {
        AggOp::Topk | AggOp::Bottomk | AggOp::Limitk if pf.is_nan() => {
            return Err(EvalError::Execution("Parameter value is NaN".into()));
        }
        AggOp::LimitRatio => {
            if pf.is_nan() {
                return Err(EvalError::Execution("Ratio value is NaN".into()));
            }
            if !(-1.0..=1.0).contains(&pf) {
                let capped = pf.clamp(-1.0, 1.0);
                let p = ev.pos_at(param_pos);
                ev.warn(format!(
                    "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {} ({p})",
                    crate::ast::fmt_float(pf),
                    crate::ast::fmt_float(capped)
                ));
            }
        }
        AggOp::Quantile if !(0.0..=1.0).contains(&pf) => {
            let p = ev.pos_at(param_pos);
            ev.warn(format!(
                "PromQL warning: quantile value should be between 0 and 1, got {} ({p})",
                crate::ast::fmt_float(pf)
            ));
        }
        _ => {}
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let count_label = match (&param, op) {
        (Some(Val::Str(s)), AggOp::CountValues) => {
            if !sextant_model::labels::is_valid_label_name(s) {
                return Err(EvalError::Execution(format!("invalid label name {s:?}")));
            }
            Some(s.clone())
        }
        _ => None,
    };
    for s in input {
        let mut s = s;
        if let Some(cl) = &count_label {
            // count_values groups by the value as an extra label.
            let v = match &s.h {
                Some(h) => hist_string(h),
                None => format_value(s.f),
            };
            let (_, mut gl) = group_key(&s.labels, grouping, without);
            gl.set(cl, &v);
            let mut k = String::new();
            for x in gl.iter() {
                k.push_str(&x.name);
                k.push('\u{fe}');
                k.push_str(&x.value);
                k.push('\u{ff}');
            }
            s.labels = gl.clone();
            let i = *index.entry(k).or_insert_with(|| {
                groups.push(Group {
                    labels: gl,
                    members: Vec::new(),
                });
                groups.len() - 1
            });
            groups[i].members.push(s);
            continue;
        }
        let (k, gl) = group_key(&s.labels, grouping, without);
        let i = *index.entry(k).or_insert_with(|| {
            groups.push(Group {
                labels: gl,
                members: Vec::new(),
            });
            groups.len() - 1
        });
        groups[i].members.push(s);
    }
    let mut out = Vec::new();
    let by_name = !without && grouping.iter().any(|g| g == METRIC_NAME);
    for g in groups {
        let dn = by_name && g.members.iter().any(|s| s.drop_name);
        let mk = |f: f64, h: Option<FloatHistogram>| VSample {
            labels: g.labels.clone(),
            t: 0,
            f,
            h: h.map(Box::new),
            drop_name: dn,
        };
        let has_hist = g.members.iter().any(|s| s.h.is_some());
        if has_hist
            && matches!(
                op,
                AggOp::Min
                    | AggOp::Max
                    | AggOp::Stddev
                    | AggOp::Stdvar
                    | AggOp::Quantile
                    | AggOp::Topk
                    | AggOp::Bottomk
            )
        {
            let p = ev.pos_at(_pos);
            ev.info(format!(
                "PromQL info: ignored histogram in {} aggregation ({p})",
                op.as_str()
            ));
        }
        let floats: Vec<f64> = g
            .members
            .iter()
            .filter(|s| s.h.is_none())
            .map(|s| s.f)
            .collect();
        let hists: Vec<&FloatHistogram> = g.members.iter().filter_map(|s| s.h.as_deref()).collect();
        match op {
            AggOp::Sum | AggOp::Avg => {
                if !floats.is_empty() && !hists.is_empty() {
                    let name = g.members[0].labels.metric_name().unwrap_or("").to_string();
                    ev.warn(format!("PromQL warning: encountered a mix of histograms and floats for aggregation: {name:?}"));
                    continue;
                }
                if !hists.is_empty() {
                    let name = g.members[0].labels.metric_name().unwrap_or("").to_string();
                    let Some(mut acc) = crate::funcs::sum_histograms(ev, &hists, &name, _pos)
                    else {
                        continue;
                    };
                    if op == AggOp::Avg {
                        hist::refold(&mut acc, &hists, mean);
                    } else {
                        hist::refold(&mut acc, &hists, kahan_sum);
                    }
                    out.push(mk(0.0, Some(acc)));
                    continue;
                }
                if let Some(v) = agg_floats(op, &floats, pf) {
                    out.push(mk(v, None));
                }
            }
            AggOp::Count => out.push(mk(g.members.len() as f64, None)),
            AggOp::Group => out.push(mk(1.0, None)),
            AggOp::Min | AggOp::Max | AggOp::Stddev | AggOp::Stdvar | AggOp::Quantile => {
                if let Some(v) = agg_floats(op, &floats, pf) {
                    out.push(mk(v, None));
                }
            }
            AggOp::CountValues => out.push(mk(g.members.len() as f64, None)),
            AggOp::Topk | AggOp::Bottomk => {
                let k = if pf >= 1.0 { pf.min(1e9) as usize } else { 0 };
                let mut m: Vec<VSample> = g.members.into_iter().filter(|s| s.h.is_none()).collect();
                let top = op == AggOp::Topk;
                m.sort_by(|a, b| {
                    use std::cmp::Ordering;
                    match (a.f.is_nan(), b.f.is_nan()) {
                        (true, true) => Ordering::Equal,
                        (true, false) => Ordering::Greater,
                        (false, true) => Ordering::Less,
                        _ => {
                            let o = a.f.partial_cmp(&b.f).unwrap_or(Ordering::Equal);
                            if top {
                                o.reverse()
                            } else {
                                o
                            }
                        }
                    }
                });
                m.truncate(k);
                out.extend(m);
            }
            AggOp::Limitk => {
                let k = if pf >= 1.0 { pf.min(1e9) as usize } else { 0 };
                out.extend(g.members.into_iter().take(k));
            }
            AggOp::LimitRatio => {
                let r = pf.clamp(-1.0, 1.0);
                for s in g.members {
                    let h = hash_labels(&s.labels) as f64 / u64::MAX as f64;
                    let keep = if r >= 0.0 { h < r } else { h >= 1.0 + r };
                    if keep {
                        out.push(s);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The value of a group of float samples (in input order) for the operators that reduce a
/// group to one float: `sum`, `avg`, `count`, `group`, `min`, `max`, `stddev`, `stdvar` and
/// `quantile` (parameter `pf`). `None` for an empty group or another operator.
pub(crate) fn agg_floats(op: AggOp, floats: &[f64], pf: f64) -> Option<f64> {
    if floats.is_empty() {
        return None;
    }
    Some(match op {
        AggOp::Sum => {
            let (mut s, mut c) = (0.0, 0.0);
            for f in floats {
                (s, c) = kahan_inc(*f, s, c);
            }
            s + c
        }
        AggOp::Avg => mean(floats),
        AggOp::Count => floats.len() as f64,
        AggOp::Group => 1.0,
        AggOp::Min | AggOp::Max => {
            let mut v = floats[0];
            for f in &floats[1..] {
                let better = if op == AggOp::Max { v < *f } else { v > *f };
                if better || v.is_nan() {
                    v = *f;
                }
            }
            v
        }
        AggOp::Stddev | AggOp::Stdvar => {
            let (mut n, mut m, mut m2) = (0.0, 0.0, 0.0);
            for f in floats {
                n += 1.0;
                let d = f - m;
                m += d / n;
                m2 += d * (f - m);
            }
            let var = m2 / n;
            if op == AggOp::Stddev {
                var.sqrt()
            } else {
                var
            }
        }
        AggOp::Quantile => {
            let mut v = floats.to_vec();
            quantile(pf, &mut v)
        }
        _ => return None,
    })
}

pub(crate) fn mean(v: &[f64]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    let mut incremental = false;
    let mut m = 0.0;
    let mut n = 0.0;
    for f in v {
        n += 1.0;
        if !incremental {
            let (ns, nc) = kahan_inc(*f, sum, c);
            if n == 1.0 || !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            m = sum / (n - 1.0);
            c /= n - 1.0;
        }
        if m.is_infinite() {
            if f.is_infinite() && (m > 0.0) == (*f > 0.0) {
                continue;
            }
            if !f.is_infinite() && !f.is_nan() {
                continue;
            }
        }
        let q = (n - 1.0) / n;
        (m, c) = kahan_inc(f / n, q * m, q * c);
    }
    if incremental {
        m + c
    } else {
        sum / n + c / n
    }
}

/// Formats a float the way Go's `strconv.FormatFloat(f, 'f', -1, 64)` does.
pub(crate) fn format_value(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{f}")
    }
}

/// Prometheus' `FloatHistogram.String()`.
pub(crate) fn hist_string(h: &FloatHistogram) -> String {
    let mut parts = vec![
        format!("count:{}", format_g(h.count)),
        format!("sum:{}", format_g(h.sum)),
    ];
    let neg = hist::buckets(&h.negative_spans, &h.negative_buckets);
    for (idx, c) in neg.iter().rev() {
        if *c == 0.0 {
            continue;
        }
        let (lo, hi) = hist::bucket_bounds(h.schema, *idx, &h.custom_values);
        parts.push(format!(
            "[-{},-{}):{}",
            format_g(hi),
            format_g(lo),
            format_g(*c)
        ));
    }
    if h.zero_count != 0.0 {
        parts.push(format!(
            "[-{},{}]:{}",
            format_g(h.zero_threshold),
            format_g(h.zero_threshold),
            format_g(h.zero_count)
        ));
    }
    for (idx, c) in hist::buckets(&h.positive_spans, &h.positive_buckets) {
        if c == 0.0 {
            continue;
        }
        let (lo, hi) = hist::bucket_bounds(h.schema, idx, &h.custom_values);
        parts.push(format!(
            "({},{}]:{}",
            format_g(lo),
            format_g(hi),
            format_g(c)
        ));
    }
    format!("{{{}}}", parts.join(", "))
}

/// Go's `%g` for common values.
fn format_g(f: f64) -> String {
    crate::ast::fmt_float(f)
}

/// xxHash64 of the label set as Prometheus' `labels.Hash()` computes it.
fn hash_labels(l: &Labels) -> u64 {
    let mut b = Vec::new();
    for x in l.iter() {
        b.extend_from_slice(x.name.as_bytes());
        b.push(0xff);
        b.extend_from_slice(x.value.as_bytes());
        b.push(0xff);
    }
    xxh64(&b, 0)
}

const P1: u64 = 11400714785074694791;
const P2: u64 = 14029467366897019727;
const P3: u64 = 1609587929392839161;
const P4: u64 = 9650029242287828579;
const P5: u64 = 2870177450012600261;

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge_round(acc: u64, val: u64) -> u64 {
    let val = round(0, val);
    (acc ^ val).wrapping_mul(P1).wrapping_add(P4)
}

fn rd64(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

fn rd32(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[i..i + 4]);
    u32::from_le_bytes(a) as u64
}

/// xxHash64 (the algorithm of github.com/cespare/xxhash).
pub(crate) fn xxh64(b: &[u8], seed: u64) -> u64 {
    let n = b.len();
    let mut i = 0;
    let mut h: u64;
    if n >= 32 {
        let mut v1 = seed.wrapping_add(P1).wrapping_add(P2);
        let mut v2 = seed.wrapping_add(P2);
        let mut v3 = seed;
        let mut v4 = seed.wrapping_sub(P1);
        while i + 32 <= n {
            v1 = round(v1, rd64(b, i));
            v2 = round(v2, rd64(b, i + 8));
            v3 = round(v3, rd64(b, i + 16));
            v4 = round(v4, rd64(b, i + 24));
            i += 32;
        }
        h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        h = merge_round(h, v1);
        h = merge_round(h, v2);
        h = merge_round(h, v3);
        h = merge_round(h, v4);
    } else {
        h = seed.wrapping_add(P5);
    }
    h = h.wrapping_add(n as u64);
    while i + 8 <= n {
        let k1 = round(0, rd64(b, i));
        h ^= k1;
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        i += 8;
    }
    if i + 4 <= n {
        h ^= rd32(b, i).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        i += 4;
    }
    while i < n {
        h ^= (b[i] as u64).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
        i += 1;
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^= h >> 32;
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn xxhash_known_values() {
        assert_eq!(super::xxh64(b"", 0), 0xef46db3751d8e999);
        assert_eq!(super::xxh64(b"abc", 0), 0x44bc2cf5ad770999);
    }
}
