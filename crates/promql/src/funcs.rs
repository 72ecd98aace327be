//! Implementations of PromQL functions: range functions (`rate`, `*_over_time`, ...), element
//! functions (math, time, clamping), label manipulation, sorting and `histogram_quantile`.

use std::collections::HashMap;

use sextant_model::{FloatHistogram, Labels, MatchOp, Matcher, Sample, METRIC_NAME};

use crate::ast::{Expr, ValueType};
use crate::engine::{Ev, Val};
use crate::error::EvalError;
use crate::functions::FuncDef;
use crate::hist;
use crate::value::{SeriesView, VSample};

/// One step of Kahan-Neumaier summation.
/// A Kahan-compensated sum.
pub(crate) fn kahan_sum(v: &[f64]) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for x in v {
        (s, c) = kahan_inc(*x, s, c);
    }
    s + c
}

pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus' quantile with linear interpolation; sorts `v`.
pub(crate) fn quantile(q: f64, v: &mut [f64]) -> f64 {
    if v.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    v.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = v.len() as f64;
    let rank = q * (n - 1.0);
    let lo = rank.floor().max(0.0);
    let hi = (lo + 1.0).min(n - 1.0);
    let w = rank - rank.floor();
    v[lo as usize] * (1.0 - w) + v[hi as usize] * w
}

pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a > b {
        a
    } else {
        b
    }
}

pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a < b {
        a
    } else {
        b
    }
}

fn scalar_arg(ev: &mut Ev, e: &Expr, ts: i64) -> Result<f64, EvalError> {
    Ok(match ev.eval(e, ts)? {
        Val::Scalar(v) => v,
        _ => f64::NAN,
    })
}

fn string_arg(ev: &mut Ev, e: &Expr, ts: i64) -> Result<String, EvalError> {
    Ok(match ev.eval(e, ts)? {
        Val::Str(s) => s,
        _ => String::new(),
    })
}

fn vector_arg(ev: &mut Ev, e: &Expr, ts: i64) -> Result<Vec<VSample>, EvalError> {
    Ok(match ev.eval(e, ts)? {
        Val::Vector(v) => v,
        _ => Vec::new(),
    })
}

fn absent_labels(e: &Expr) -> Labels {
    let ms: &[Matcher] = match e {
        Expr::Vector(vs) => &vs.matchers,
        Expr::Matrix(m) => &m.vs.matchers,
        _ => return Labels::empty(),
    };
    let mut l = Labels::empty();
    let mut has: Vec<&str> = Vec::new();
    for m in ms {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == MatchOp::Equal && !has.contains(&m.name.as_str()) {
            l.set(&m.name, &m.value);
            has.push(&m.name);
        } else {
            l.set(&m.name, "");
        }
    }
    l
}

fn sample(labels: Labels, f: f64, drop_name: bool) -> VSample {
    VSample {
        labels,
        t: 0,
        f,
        h: None,
        drop_name,
    }
}

pub(crate) fn call(
    ev: &mut Ev,
    f: &'static FuncDef,
    args: &[Expr],
    ts: i64,
    pos: usize,
) -> Result<Val, EvalError> {
    let name = f.name;
    match name {
        "time" => return Ok(Val::Scalar(ts as f64 / 1000.0)),
        "pi" => return Ok(Val::Scalar(std::f64::consts::PI)),
        "vector" => {
            let v = scalar_arg(ev, &args[0], ts)?;
            return Ok(Val::Vector(vec![sample(Labels::empty(), v, false)]));
        }
        "scalar" => {
            let v = vector_arg(ev, &args[0], ts)?;
            let floats: Vec<f64> = v.iter().filter(|s| s.h.is_none()).map(|s| s.f).collect();
            return Ok(Val::Scalar(match floats.as_slice() {
                [f] => *f,
                _ => f64::NAN,
            }));
        }
        "start_timestamp" => {
            // Start timestamps only exist for samples straight from a selector.
            let Expr::Vector(vs) = args[0].unparen() else {
                vector_arg(ev, &args[0], ts)?;
                return Ok(Val::Vector(Vec::new()));
            };
            let v = ev.select_vector(vs, ts)?;
            return Ok(Val::Vector(
                v.into_iter()
                    .map(|s| {
                        let st = ev.start_timestamp_of(vs, &s.labels, s.t, s.h.is_some());
                        sample(s.labels, st as f64 / 1000.0, true)
                    })
                    .collect(),
            ));
        }
        "timestamp" => {
            let v = vector_arg(ev, &args[0], ts)?;
            let keep_t = matches!(args[0].unparen(), Expr::Vector(_));
            return Ok(Val::Vector(
                v.into_iter()
                    .map(|s| {
                        let t = if keep_t { s.t } else { ts };
                        sample(s.labels, t as f64 / 1000.0, true)
                    })
                    .collect(),
            ));
        }
        "absent" => {
            let v = vector_arg(ev, &args[0], ts)?;
            return Ok(Val::Vector(if v.is_empty() {
                vec![sample(absent_labels(&args[0]), 1.0, false)]
            } else {
                Vec::new()
            }));
        }
        "absent_over_time" => {
            let m = match ev.eval(&args[0], ts)? {
                Val::Matrix(m) => m,
                _ => Vec::new(),
            };
            return Ok(Val::Vector(if m.is_empty() {
                vec![sample(absent_labels(args[0].unparen()), 1.0, false)]
            } else {
                Vec::new()
            }));
        }
        "label_replace" => return label_replace(ev, args, ts),
        "info" => return info(ev, args, ts),
        "label_join" => return label_join(ev, args, ts),
        "sort" | "sort_desc" => {
            sort_warning(ev, pos);
            let mut v = vector_arg(ev, &args[0], ts)?;
            v.retain(|s| s.h.is_none());
            let desc = name == "sort_desc";
            v.sort_by(|a, b| {
                use std::cmp::Ordering;
                match (a.f.is_nan(), b.f.is_nan()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    _ => {
                        let o = a.f.partial_cmp(&b.f).unwrap_or(Ordering::Equal);
                        if desc {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                }
            });
            return Ok(Val::Vector(v));
        }
        "sort_by_label" | "sort_by_label_desc" => {
            sort_warning(ev, pos);
            let mut v = vector_arg(ev, &args[0], ts)?;
            let mut names = Vec::new();
            for a in &args[1..] {
                names.push(string_arg(ev, a, ts)?);
            }
            let desc = name == "sort_by_label_desc";
            v.sort_by(|a, b| {
                for n in &names {
                    let (x, y) = (a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                    if x != y {
                        let o = natural_cmp(x, y);
                        return if desc { o.reverse() } else { o };
                    }
                }
                let o = a.labels.cmp(&b.labels);
                if desc {
                    o.reverse()
                } else {
                    o
                }
            });
            return Ok(Val::Vector(v));
        }
        "histogram_quantile" => {
            let q = scalar_arg(ev, &args[0], ts)?;
            let v = vector_arg(ev, &args[1], ts)?;
            check_quantile(ev, q, &args[0]);
            return Ok(Val::Vector(hist_fn(ev, HistFn::Quantile(q), v, &args[1])));
        }
        "histogram_quantiles" => {
            let v = vector_arg(ev, &args[0], ts)?;
            let label = string_arg(ev, &args[1], ts)?;
            let mut out = Vec::new();
            for a in &args[2..] {
                let q = scalar_arg(ev, a, ts)?;
                check_quantile(ev, q, a);
                let qs = if q.fract() == 0.0 && q.is_finite() {
                    format!("{q:.1}")
                } else {
                    crate::aggr::format_value(q)
                };
                for mut s in hist_fn(ev, HistFn::Quantile(q), v.clone(), &args[0]) {
                    s.labels.set(&label, &qs);
                    out.push(s);
                }
            }
            let mut probe = out.clone();
            for s in &mut probe {
                s.labels.set(METRIC_NAME, "");
            }
            crate::engine::check_unique(&probe)?;
            return Ok(Val::Vector(out));
        }
        "histogram_fraction" => {
            let lo = scalar_arg(ev, &args[0], ts)?;
            let hi = scalar_arg(ev, &args[1], ts)?;
            let v = vector_arg(ev, &args[2], ts)?;
            return Ok(Val::Vector(hist_fn(
                ev,
                HistFn::Fraction(lo, hi),
                v,
                &args[2],
            )));
        }
        _ => {}
    }
    if let Some(mi) = f.args.iter().position(|t| *t == ValueType::Matrix) {
        let mut params = Vec::new();
        for (i, a) in args.iter().enumerate() {
            if i != mi {
                params.push(scalar_arg(ev, a, ts)?);
            }
        }
        let (lo, hi) = ev.range_bounds(&args[mi], ts);
        let ext = match args[mi].unparen() {
            Expr::Matrix(ms) if ms.anchored || ms.smoothed => Some(ms),
            _ => None,
        };
        let m = match ext {
            Some(ms) if matches!(name, "rate" | "increase" | "delta") => {
                let raw = ev.select_matrix(ms, ts)?;
                let p = ev.pos_of(&args[mi]);
                let mut out = Vec::new();
                for s in raw {
                    if !s.histograms.is_empty() {
                        let mname = s.labels.metric_name().unwrap_or("").to_string();
                        if !s.floats.is_empty() {
                            ev.warn(format!("PromQL warning: encountered a mix of histograms and floats for metric name {mname:?} ({p})"));
                            continue;
                        }
                        let x = ExtCtx {
                            start: lo,
                            end: hi,
                            counter: name != "delta",
                            smoothed: ms.smoothed,
                            mname: &mname,
                            p: &p,
                        };
                        if let Some(mut h) = extended_histogram_rate(ev, &s.histograms, &x) {
                            if name == "rate" {
                                hist::div(&mut h, (hi - lo) as f64 / 1000.0);
                            }
                            out.push(VSample {
                                labels: s.labels,
                                t: ts,
                                f: 0.0,
                                h: Some(Box::new(h)),
                                drop_name: true,
                            });
                        }
                        continue;
                    }
                    if s.floats.is_empty() {
                        continue;
                    }
                    if let Some(v) = extended_rate(
                        &s.floats,
                        lo,
                        hi,
                        name != "delta",
                        name == "rate",
                        ms.smoothed,
                    ) {
                        out.push(VSample {
                            labels: s.labels,
                            t: ts,
                            f: v,
                            h: None,
                            drop_name: true,
                        });
                    }
                }
                check_extended(name, ms)?;
                return Ok(Val::Vector(out));
            }
            _ => match ev.eval(&args[mi], ts)? {
                Val::Matrix(m) => m,
                _ => Vec::new(),
            },
        };
        if let Expr::Matrix(ms) = args[mi].unparen() {
            check_extended(name, ms)?;
        }
        let apos = ev.pos_of(&args[mi]);
        if name == "quantile_over_time" {
            let q = params.first().copied().unwrap_or(f64::NAN);
            check_quantile(ev, q, &args[0]);
        }
        let mut out = Vec::with_capacity(m.len());
        for s in m {
            if let Some((v, h)) = range_fn(ev, name, &s.view(), &params, lo, hi, ts, &apos)? {
                let keep_name = matches!(name, "last_over_time" | "first_over_time");
                out.push(VSample {
                    labels: s.labels,
                    t: ts,
                    f: v,
                    h: h.map(Box::new),
                    drop_name: if keep_name { s.drop_name } else { true },
                });
            }
        }
        return Ok(Val::Vector(out));
    }
    // Element-wise functions over an instant vector (or time() when it is omitted).
    let v = if args.is_empty() {
        vec![sample(Labels::empty(), ts as f64 / 1000.0, false)]
    } else {
        vector_arg(ev, &args[0], ts)?
    };
    let mut params = Vec::new();
    for a in args.iter().skip(1) {
        params.push(scalar_arg(ev, a, ts)?);
    }
    let _ = pos;
    let p = |i: usize, d: f64| params.get(i).copied().unwrap_or(d);
    if name == "clamp" && p(1, 0.0) < p(0, 0.0) {
        return Ok(Val::Vector(Vec::new()));
    }
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        if let Some(h) = s.h.take() {
            let r = match name {
                "histogram_count" => Some(h.count),
                "histogram_sum" => Some(h.sum),
                "histogram_avg" => Some(h.sum / h.count),
                "histogram_stddev" => Some(hist_variance(&h).sqrt()),
                "histogram_stdvar" => Some(hist_variance(&h)),
                _ => None,
            };
            if let Some(r) = r {
                s.f = r;
                s.drop_name = true;
                out.push(s);
            }
            continue;
        }
        let x = s.f;
        let r = match name {
            "abs" => x.abs(),
            "ceil" => x.ceil(),
            "floor" => x.floor(),
            "exp" => x.exp(),
            "sqrt" => x.sqrt(),
            "ln" => x.ln(),
            "log2" => x.log2(),
            "log10" => x.log10(),
            "sin" => x.sin(),
            "cos" => x.cos(),
            "tan" => x.tan(),
            "asin" => x.asin(),
            "acos" => x.acos(),
            "atan" => x.atan(),
            "sinh" => x.sinh(),
            "cosh" => x.cosh(),
            "tanh" => x.tanh(),
            "asinh" => x.asinh(),
            "acosh" => x.acosh(),
            "atanh" => x.atanh(),
            "deg" => x * 180.0 / std::f64::consts::PI,
            "rad" => x * std::f64::consts::PI / 180.0,
            "sgn" => {
                if x < 0.0 {
                    -1.0
                } else if x > 0.0 {
                    1.0
                } else {
                    x
                }
            }
            "clamp" => go_max(p(0, 0.0), go_min(p(1, 0.0), x)),
            "clamp_max" => go_min(p(0, 0.0), x),
            "clamp_min" => go_max(p(0, 0.0), x),
            "round" => {
                let inv = 1.0 / p(0, 1.0);
                (x * inv + 0.5).floor() / inv
            }
            "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour"
            | "minute" | "month" | "year" => {
                if x.is_nan() || x.is_infinite() {
                    x
                } else {
                    time_part(name, x)
                }
            }
            "histogram_count"
            | "histogram_sum"
            | "histogram_avg"
            | "histogram_stddev"
            | "histogram_stdvar"
            | "histogram_fraction"
            | "histogram_quantiles"
            | "info"
            | "start_timestamp" => continue,
            _ => continue,
        };
        s.f = r;
        s.drop_name = true;
        out.push(s);
    }
    Ok(Val::Vector(out))
}

fn sort_warning(ev: &mut Ev, pos: usize) {
    if ev.range_query {
        let p = ev.pos_at(pos);
        ev.warn(format!("PromQL warning: sort is ineffective for range queries since results are always ordered by labels ({p})"));
    }
}

fn check_extended(name: &str, m: &crate::ast::MatrixSelector) -> Result<(), EvalError> {
    if m.smoothed && !matches!(name, "delta" | "increase" | "rate") {
        return Err(EvalError::Execution(format!(
            "smoothed modifier can only be used with: delta, increase, rate - not with {name}"
        )));
    }
    if m.anchored && !matches!(name, "changes" | "delta" | "increase" | "rate" | "resets") {
        return Err(EvalError::Execution(format!(
            "anchored modifier can only be used with: changes, delta, increase, rate, resets - not with {name}"
        )));
    }
    Ok(())
}

/// Natural ordering: digit runs compare numerically.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let x = a[si..i].trim_start_matches('0');
            let y = b[sj..j].trim_start_matches('0');
            let o = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            let o = ab[i].cmp(&bb[j]);
            if o != Ordering::Equal {
                return o;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

fn days_from_civil_inv(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's civil_from_days.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn time_part(name: &str, secs: f64) -> f64 {
    let s = secs.floor() as i64;
    let days = s.div_euclid(86400);
    let sod = s.rem_euclid(86400);
    let (y, m, d) = days_from_civil_inv(days);
    let dim = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    match name {
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            let mut n = d as i64;
            for (i, dm) in dim.iter().enumerate().take(m as usize - 1) {
                n += dm + if i == 1 && is_leap(y) { 1 } else { 0 };
            }
            n as f64
        }
        "days_in_month" => {
            if m == 2 && is_leap(y) {
                29.0
            } else {
                dim[m as usize - 1] as f64
            }
        }
        "hour" => (sod / 3600) as f64,
        "minute" => ((sod % 3600) / 60) as f64,
        "month" => m as f64,
        "year" => y as f64,
        _ => f64::NAN,
    }
}

fn label_replace(ev: &mut Ev, args: &[Expr], ts: i64) -> Result<Val, EvalError> {
    let v = vector_arg(ev, &args[0], ts)?;
    let dst = string_arg(ev, &args[1], ts)?;
    let repl = string_arg(ev, &args[2], ts)?;
    let src = string_arg(ev, &args[3], ts)?;
    let re_s = string_arg(ev, &args[4], ts)?;
    let re = regex::Regex::new(&format!("^(?s:{re_s})$")).map_err(|_| {
        EvalError::Execution(format!(
            "invalid regular expression in label_replace(): {re_s}"
        ))
    })?;
    if !sextant_model::labels::is_valid_label_name(&dst) {
        return Err(EvalError::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let sv = s.labels.get(&src).unwrap_or("").to_string();
        if let Some(c) = re.captures(&sv) {
            let mut res = String::new();
            c.expand(&repl, &mut res);
            s.labels.set(&dst, &res);
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
        out.push(s);
    }
    Ok(Val::Vector(out))
}

fn label_join(ev: &mut Ev, args: &[Expr], ts: i64) -> Result<Val, EvalError> {
    let v = vector_arg(ev, &args[0], ts)?;
    let dst = string_arg(ev, &args[1], ts)?;
    let sep = string_arg(ev, &args[2], ts)?;
    let mut srcs = Vec::new();
    for a in &args[3..] {
        let s = string_arg(ev, a, ts)?;
        if !sextant_model::labels::is_valid_label_name(&s) {
            return Err(EvalError::Execution(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
        srcs.push(s);
    }
    if !sextant_model::labels::is_valid_label_name(&dst) {
        return Err(EvalError::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
        let j = joined.join(&sep);
        s.labels.set(&dst, &j);
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
        out.push(s);
    }
    Ok(Val::Vector(out))
}

/// Linear regression of samples against time relative to `intercept_t`.
fn linear_regression(s: &[Sample], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init = s[0].v;
    let mut const_y = true;
    for (i, p) in s.iter().enumerate() {
        if const_y && i > 0 && p.v != init {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(p.v, sy, cy);
        (sxy, cxy) = kahan_inc(x * p.v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

type FnOut = Option<(f64, Option<FloatHistogram>)>;

#[allow(clippy::too_many_arguments)]
pub(crate) fn range_fn(
    ev: &mut Ev,
    name: &str,
    s: &SeriesView,
    params: &[f64],
    lo: i64,
    hi: i64,
    ts: i64,
    p: &str,
) -> Result<FnOut, EvalError> {
    let fl = s.floats;
    let hs = s.histograms;
    let fo = |v: f64| Some((v, None));
    // Only annotations need the metric name: look it up when one is made.
    let mname_of = || s.labels.metric_name().unwrap_or("");
    let mixed = !fl.is_empty() && !hs.is_empty();
    if mixed {
        let mname = mname_of();
        match name {
            "rate" | "increase" | "delta" | "sum_over_time" | "avg_over_time" => {
                ev.warn(format!("PromQL warning: encountered a mix of histograms and floats for metric name {mname:?} ({p})"));
                return Ok(None);
            }
            "min_over_time"
            | "max_over_time"
            | "stddev_over_time"
            | "stdvar_over_time"
            | "quantile_over_time"
            | "mad_over_time"
            | "deriv"
            | "predict_linear"
            | "double_exponential_smoothing"
            | "holt_winters"
            | "ts_of_min_over_time"
            | "ts_of_max_over_time" => {
                ev.info(format!("PromQL info: ignored histograms in a range containing both floats and histograms for metric name {mname:?} ({p})"));
            }
            _ => {}
        }
    }
    Ok(match name {
        "rate" | "increase" | "delta" => {
            if hs.len() > 1 || (hs.len() == 1 && !hist_sts(s).is_empty()) {
                histogram_rate(
                    ev,
                    s,
                    name != "delta",
                    name == "rate",
                    lo,
                    hi,
                    mname_of(),
                    p,
                )
            } else if fl.len() > 1 || (fl.len() == 1 && !float_sts(s).is_empty()) {
                extrapolated_rate(ev, s, name != "delta", name == "rate", lo, hi, p)
            } else {
                None
            }
        }
        "irate" | "idelta" => {
            // Only the last two samples matter, whatever came before them.
            let mname = mname_of();
            let mut tail: Vec<(i64, bool)> =
                fl.iter().rev().take(2).map(|x| (x.t, false)).collect();
            tail.extend(hs.iter().rev().take(2).map(|x| (x.0, true)));
            tail.sort_by_key(|x| x.0);
            if tail.len() < 2 {
                return Ok(None);
            }
            let (k1, k2) = (tail[tail.len() - 2].1, tail[tail.len() - 1].1);
            if k1 != k2 {
                ev.warn(format!("PromQL warning: encountered a mix of histograms and floats for metric name {mname:?} ({p})"));
                return Ok(None);
            }
            if k2 {
                let (a, b) = (&hs[hs.len() - 2], &hs[hs.len() - 1]);
                let rate = name == "irate";
                let gauge = sextant_model::CounterResetHint::Gauge;
                if rate && (a.1.counter_reset_hint == gauge || b.1.counter_reset_hint == gauge) {
                    ev.warn(format!("PromQL warning: this native histogram metric is not a counter: {mname:?} ({p})"));
                }
                if !rate && (a.1.counter_reset_hint != gauge || b.1.counter_reset_hint != gauge) {
                    ev.warn(format!("PromQL warning: this native histogram metric is not a gauge: {mname:?} ({p})"));
                }
                let hst = hist_sts(s);
                let st_reset =
                    hst.len() >= 2 && is_st_reset(hst[hst.len() - 2], a.0, hst[hst.len() - 1], b.0);
                let mut r = if rate && (st_reset || hist::detect_reset(&b.1, &a.1)) {
                    b.1.clone()
                } else {
                    match add_annotated(ev, &b.1, &a.1, true, mname, p) {
                        Some(h) => h,
                        None => return Ok(None),
                    }
                };
                r.counter_reset_hint = gauge;
                if rate {
                    let dt = (b.0 - a.0) as f64 / 1000.0;
                    hist::div(&mut r, dt);
                }
                return Ok(Some((0.0, Some(r))));
            }
            if fl.len() < 2 {
                return Ok(None);
            }
            let (a, b) = (fl[fl.len() - 2], fl[fl.len() - 1]);
            let sts = float_sts(s);
            let st_reset =
                sts.len() >= 2 && is_st_reset(sts[sts.len() - 2], a.t, sts[sts.len() - 1], b.t);
            let mut r = if name == "irate" && (b.v < a.v || st_reset) {
                b.v
            } else {
                b.v - a.v
            };
            if name == "irate" {
                let dt = b.t - a.t;
                if dt == 0 {
                    return Ok(None);
                }
                r /= dt as f64 / 1000.0;
            }
            fo(r)
        }
        "changes" | "resets" if !hs.is_empty() => {
            enum P<'a> {
                F(f64),
                H(&'a FloatHistogram),
            }
            let (fst, hst) = (float_sts(s), hist_sts(s));
            let st_at = |v: &[i64], i: usize| v.get(i).copied().unwrap_or(0);
            let mut pts: Vec<(i64, P, i64)> = fl
                .iter()
                .enumerate()
                .map(|(i, x)| (x.t, P::F(x.v), st_at(fst, i)))
                .collect();
            pts.extend(
                hs.iter()
                    .enumerate()
                    .map(|(i, (t, h))| (*t, P::H(h), st_at(hst, i))),
            );
            pts.sort_by_key(|x| x.0);
            let mut n = 0.0;
            for w in pts.windows(2) {
                let st_reset = name == "resets" && is_st_reset(w[0].2, w[0].0, w[1].2, w[1].0);
                let hit = st_reset
                    || match (&w[0].1, &w[1].1) {
                        (P::F(a), P::F(b)) => {
                            if name == "changes" {
                                a != b && !(a.is_nan() && b.is_nan())
                            } else {
                                b < a
                            }
                        }
                        (P::H(a), P::H(b)) => {
                            if name == "changes" {
                                !hist::equal(a, b)
                            } else {
                                hist::detect_reset(b, a)
                            }
                        }
                        // A switch between float and histogram is both a change and a reset.
                        _ => true,
                    };
                if hit {
                    n += 1.0;
                }
            }
            fo(n)
        }
        "changes" | "resets" => {
            if fl.is_empty() {
                return Ok(None);
            }
            let mut n = 0.0;
            let sts = float_sts(s);
            for (i, w) in fl.windows(2).enumerate() {
                let (p, c) = (w[0].v, w[1].v);
                let hit = if name == "changes" {
                    p != c && !(p.is_nan() && c.is_nan())
                } else {
                    c < p || (sts.len() > i + 1 && is_st_reset(sts[i], w[0].t, sts[i + 1], w[1].t))
                };
                if hit {
                    n += 1.0;
                }
            }
            fo(n)
        }
        "deriv" => {
            if fl.len() < 2 {
                return Ok(None);
            }
            fo(linear_regression(fl, fl[0].t).0)
        }
        "predict_linear" => {
            if fl.len() < 2 {
                return Ok(None);
            }
            let (slope, icpt) = linear_regression(fl, ts);
            fo(icpt + slope * params.first().copied().unwrap_or(0.0))
        }
        "double_exponential_smoothing" | "holt_winters" => {
            let (sf, tf) = (
                params.first().copied().unwrap_or(f64::NAN),
                params.get(1).copied().unwrap_or(f64::NAN),
            );
            if !(sf > 0.0 && sf < 1.0) {
                return Err(EvalError::Execution(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                )));
            }
            if !(tf > 0.0 && tf < 1.0) {
                return Err(EvalError::Execution(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                )));
            }
            if fl.len() < 2 {
                return Ok(None);
            }
            let (mut s0, mut s1) = (0.0, fl[0].v);
            let mut b = fl[1].v - fl[0].v;
            for (i, p) in fl.iter().enumerate().skip(1) {
                let x = sf * p.v;
                if i > 1 {
                    b = tf * (s1 - s0) + (1.0 - tf) * b;
                }
                let y = (1.0 - sf) * (s1 + b);
                s0 = s1;
                s1 = x + y;
            }
            fo(s1)
        }
        "count_over_time" => fo((fl.len() + hs.len()) as f64),
        "present_over_time" => fo(1.0),
        "last_over_time" => {
            let lf = fl.last();
            let lh = hs.last();
            match (lf, lh) {
                (Some(f), Some(h)) if h.0 > f.t => Some((0.0, Some(h.1.clone()))),
                (Some(f), _) => fo(f.v),
                (None, Some(h)) => Some((0.0, Some(h.1.clone()))),
                _ => None,
            }
        }
        "first_over_time" => {
            let ff = fl.first();
            let fh = hs.first();
            match (ff, fh) {
                (Some(f), Some(h)) if h.0 < f.t => Some((0.0, Some(h.1.clone()))),
                (Some(f), _) => fo(f.v),
                (None, Some(h)) => Some((0.0, Some(h.1.clone()))),
                _ => None,
            }
        }
        "ts_of_last_over_time" => {
            let t = fl.last().map(|p| p.t).max(hs.last().map(|h| h.0));
            t.map(|t| (t as f64 / 1000.0, None))
        }
        "ts_of_first_over_time" => {
            let a = fl.first().map(|p| p.t);
            let b = hs.first().map(|h| h.0);
            let t = match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            t.map(|t| (t as f64 / 1000.0, None))
        }
        "ts_of_max_over_time" | "ts_of_min_over_time" => {
            if fl.is_empty() {
                return Ok(None);
            }
            let max = name == "ts_of_max_over_time";
            let mut best = fl[0];
            for p in &fl[1..] {
                let better = if max { p.v >= best.v } else { p.v <= best.v };
                if better || best.v.is_nan() {
                    best = *p;
                }
            }
            fo(best.t as f64 / 1000.0)
        }
        "sum_over_time" | "avg_over_time" => {
            if !fl.is_empty() && !hs.is_empty() {
                return Ok(None);
            }
            if !hs.is_empty() {
                let refs: Vec<&FloatHistogram> = hs.iter().map(|h| &h.1).collect();
                let mname = s.labels.metric_name().unwrap_or("").to_string();
                let Some(mut acc) = sum_histograms_at(ev, &refs, &mname, p) else {
                    return Ok(None);
                };
                if name == "avg_over_time" {
                    hist::refold(&mut acc, &refs, crate::aggr::mean);
                } else {
                    hist::refold(&mut acc, &refs, kahan_sum);
                }
                return Ok(Some((0.0, Some(acc))));
            }
            if fl.is_empty() {
                return Ok(None);
            }
            if name == "sum_over_time" {
                let (mut sum, mut c) = (0.0, 0.0);
                for p in fl {
                    (sum, c) = kahan_inc(p.v, sum, c);
                }
                fo(sum + c)
            } else {
                fo(avg(fl))
            }
        }
        "min_over_time" | "max_over_time" => {
            if fl.is_empty() {
                return Ok(None);
            }
            let max = name == "max_over_time";
            let mut v = fl[0].v;
            for p in &fl[1..] {
                let better = if max { v < p.v } else { v > p.v };
                if better || v.is_nan() {
                    v = p.v;
                }
            }
            fo(v)
        }
        "stddev_over_time" | "stdvar_over_time" => {
            if fl.is_empty() {
                return Ok(None);
            }
            let (mut n, mut m, mut cm, mut aux, mut ca) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for p in fl {
                n += 1.0;
                let d = p.v - (m + cm);
                (m, cm) = kahan_inc(d / n, m, cm);
                (aux, ca) = kahan_inc(d * (p.v - (m + cm)), aux, ca);
            }
            let var = (aux + ca) / n;
            fo(if name == "stddev_over_time" {
                var.sqrt()
            } else {
                var
            })
        }
        "quantile_over_time" => {
            if fl.is_empty() {
                return Ok(None);
            }
            let mut v: Vec<f64> = fl.iter().map(|p| p.v).collect();
            fo(quantile(
                params.first().copied().unwrap_or(f64::NAN),
                &mut v,
            ))
        }
        "mad_over_time" => {
            if fl.is_empty() {
                return Ok(None);
            }
            let mut v: Vec<f64> = fl.iter().map(|p| p.v).collect();
            if v.iter().any(|x| x.is_nan()) {
                return Ok(Some((f64::NAN, None)));
            }
            let med = quantile(0.5, &mut v);
            let mut d: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
            fo(quantile(0.5, &mut d))
        }
        _ => {
            let _ = ev;
            None
        }
    })
}

fn avg(fl: &[Sample]) -> f64 {
    let (mut sum, mut c, mut mean) = (0.0, 0.0, 0.0);
    let mut n = 0.0;
    let mut incremental = false;
    for p in fl {
        let f = p.v;
        n += 1.0;
        if !incremental {
            let (ns, nc) = kahan_inc(f, sum, c);
            if n == 1.0 || !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (n - 1.0);
            c /= n - 1.0;
        }
        if mean.is_infinite() {
            if f.is_infinite() && (mean > 0.0) == (f > 0.0) {
                continue;
            }
            if !f.is_infinite() && !f.is_nan() {
                continue;
            }
        }
        let q = (n - 1.0) / n;
        (mean, c) = kahan_inc(f / n, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / n + c / n
    }
}

/// Prometheus' `extrapolatedRate` for floats.
/// Prometheus' `isStartTimestampReset`: whether the start timestamps of two consecutive
/// samples say the counter restarted between them.
fn is_st_reset(prev_st: i64, prev_t: i64, cur_st: i64, cur_t: i64) -> bool {
    if cur_st == 0 || cur_st >= cur_t || cur_st < prev_t {
        return false;
    }
    if cur_st > prev_t {
        return true;
    }
    // The start points at the previous sample: a reset for deltas (previous start known), not
    // for cumulative series with an unknown start.
    if prev_st > prev_t {
        return false;
    }
    prev_st != 0 && prev_st != prev_t
}

/// Prometheus' `checkStartTimeOverlap`.
fn st_overlap(prev_st: i64, prev_t: i64, cur_st: i64) -> bool {
    cur_st != 0 && cur_st < prev_t && cur_st != prev_st
}

/// Start timestamps of a series' floats, if known for every sample.
fn float_sts<'a>(s: &SeriesView<'a>) -> &'a [i64] {
    if s.float_st.len() == s.floats.len() {
        s.float_st
    } else {
        &[]
    }
}

/// Prometheus' `extrapolatedRate` for floats, including start-timestamp resets and the
/// zero point at the first sample's start timestamp.
#[allow(clippy::too_many_arguments)]
fn extrapolated_rate(
    ev: &mut Ev,
    s: &SeriesView,
    counter: bool,
    rate: bool,
    lo: i64,
    hi: i64,
    p: &str,
) -> FnOut {
    let fl = s.floats;
    let sts = float_sts(s);
    let n1 = fl.len() - 1;
    let (first, last) = (fl[0], fl[n1]);
    let mut result = last.v - first.v;
    if counter {
        let mut overlap = false;
        for i in 0..n1 {
            let (prev, cur) = (fl[i], fl[i + 1]);
            if !overlap && i + 1 < sts.len() && st_overlap(sts[i], prev.t, sts[i + 1]) {
                let mname = s.labels.metric_name().unwrap_or("");
                ev.warn(format!("PromQL warning: sample has start time that overlaps with previous sample timestamp for metric {mname:?} ({p})"));
                overlap = true;
            }
            if cur.v < prev.v
                || (i + 1 < sts.len() && is_st_reset(sts[i], prev.t, sts[i + 1], cur.t))
            {
                result += prev.v;
            }
        }
    }
    let mut to_start = (first.t - lo) as f64 / 1000.0;
    let mut to_end = (hi - last.t) as f64 / 1000.0;
    let mut sampled = (last.t - first.t) as f64 / 1000.0;
    let avg_dur = if n1 > 0 { sampled / n1 as f64 } else { 0.0 };
    let threshold = avg_dur * 1.1;
    if counter && !sts.is_empty() && sts[0] != 0 && sts[0] > lo && sts[0] < first.t {
        // Assume a zero sample at the start timestamp instead of extrapolating left.
        to_start = 0.0;
        sampled = (last.t - sts[0]) as f64 / 1000.0;
        result += first.v;
    } else if n1 == 0 {
        return None;
    } else {
        if to_start >= threshold {
            to_start = avg_dur / 2.0;
        }
        if counter && result > 0.0 && first.v >= 0.0 {
            let to_zero = sampled * (first.v / result);
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
    }
    if to_end >= threshold {
        to_end = avg_dur / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if rate {
        factor /= (hi - lo) as f64 / 1000.0;
    }
    Some((result * factor, None))
}

#[allow(clippy::too_many_arguments)]
/// Start timestamps of a series' histograms, if known for every sample.
fn hist_sts<'a>(s: &SeriesView<'a>) -> &'a [i64] {
    if s.hist_st.len() == s.histograms.len() {
        s.hist_st
    } else {
        &[]
    }
}

/// Prometheus' `histogramRate` plus the extrapolation of `extrapolatedRate`, for histograms.
#[allow(clippy::too_many_arguments)]
fn histogram_rate(
    ev: &mut Ev,
    s: &SeriesView,
    counter: bool,
    rate: bool,
    lo: i64,
    hi: i64,
    mname: &str,
    p: &str,
) -> FnOut {
    let hs = s.histograms;
    let sts = hist_sts(s);
    let n1 = hs.len() - 1;
    let first = &hs[0].1;
    let last = &hs[n1].1;
    let gauge = sextant_model::CounterResetHint::Gauge;
    let custom = |h: &FloatHistogram| h.schema == sextant_model::histogram::CUSTOM_BUCKETS_SCHEMA;
    // After a counter reset between the first two samples only the first one's count matters
    // (for the zero point); its bucket layout may differ from the rest.
    let reset_after_first = counter
        && n1 > 0
        && ((sts.len() > 1 && is_st_reset(sts[0], hs[0].0, sts[1], hs[1].0))
            || hist::detect_reset(&hs[1].1, first));
    let layout_from = if reset_after_first { 1 } else { 0 };
    if hs[layout_from..]
        .iter()
        .any(|h| custom(&h.1) != custom(&hs[layout_from].1))
    {
        ev.warn(format!("PromQL warning: vector contains a mix of histograms with exponential and custom buckets schemas for metric name {mname:?} ({p})"));
        return None;
    }
    if counter && hs.iter().any(|h| h.1.counter_reset_hint == gauge) {
        ev.warn(format!(
            "PromQL warning: this native histogram metric is not a counter: {mname:?} ({p})"
        ));
    }
    let mut acc = None;
    if n1 > 0 {
        let mut a = if reset_after_first {
            last.clone()
        } else {
            add_annotated(ev, last, first, true, mname, p)?
        };
        if counter {
            let mut overlap = false;
            for i in layout_from..n1 {
                let (prev, cur) = (&hs[i], &hs[i + 1]);
                if !overlap && i + 1 < sts.len() && st_overlap(sts[i], prev.0, sts[i + 1]) {
                    ev.warn(format!("PromQL warning: sample has start time that overlaps with previous sample timestamp for metric {mname:?} ({p})"));
                    overlap = true;
                }
                let st_reset = i + 1 < sts.len() && is_st_reset(sts[i], prev.0, sts[i + 1], cur.0);
                if st_reset || hist::detect_reset(&cur.1, &prev.1) {
                    a = add_annotated(ev, &a, &prev.1, false, mname, p)?;
                }
            }
        } else if first.counter_reset_hint != gauge || last.counter_reset_hint != gauge {
            ev.warn(format!(
                "PromQL warning: this native histogram metric is not a gauge: {mname:?} ({p})"
            ));
        }
        acc = Some(a);
    }
    let (first_t, last_t) = (hs[0].0, hs[n1].0);
    let mut to_start = (first_t - lo) as f64 / 1000.0;
    let mut to_end = (hi - last_t) as f64 / 1000.0;
    let mut sampled = (last_t - first_t) as f64 / 1000.0;
    let avg_dur = if n1 > 0 { sampled / n1 as f64 } else { 0.0 };
    let threshold = avg_dur * 1.1;
    let mut acc = if counter && !sts.is_empty() && sts[0] != 0 && sts[0] > lo && sts[0] < first_t {
        // Assume a zero histogram at the start timestamp instead of extrapolating left.
        to_start = 0.0;
        sampled = (last_t - sts[0]) as f64 / 1000.0;
        match acc {
            None => first.clone(),
            Some(a) => add_annotated(ev, &a, first, false, mname, p)?,
        }
    } else {
        let a = acc?;
        if to_start >= threshold {
            to_start = avg_dur / 2.0;
        }
        if counter && a.count > 0.0 && first.count >= 0.0 {
            let to_zero = sampled * (first.count / a.count);
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        a
    };
    if to_end >= threshold {
        to_end = avg_dur / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if rate {
        factor /= (hi - lo) as f64 / 1000.0;
    }
    hist::scale(&mut acc, factor);
    acc.counter_reset_hint = gauge;
    Some((0.0, Some(acc)))
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// Prometheus' `BucketQuantile` over classic `le` buckets.
fn bucket_quantile(q: f64, b: &mut [(f64, f64)]) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    if b.last().is_none_or(|x| x.0 != f64::INFINITY) {
        return (f64::NAN, false);
    }
    // Coalesce equal bounds.
    let mut c: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for x in b.iter() {
        match c.last_mut() {
            Some(l) if l.0 == x.0 => l.1 += x.1,
            _ => c.push(*x),
        }
    }
    let mut forced = false;
    let mut prev = c[0].1;
    for x in c.iter_mut().skip(1) {
        let cur = x.1;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) {
            x.1 = prev;
            continue;
        }
        if cur < prev {
            x.1 = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    if c.len() < 2 {
        return (f64::NAN, forced);
    }
    let obs = c[c.len() - 1].1;
    if obs == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * obs;
    let n = c.len() - 1;
    let bi = c[..n].partition_point(|x| x.1 < rank);
    if bi == n {
        return (c[n - 1].0, forced);
    }
    if bi == 0 && c[0].0 <= 0.0 {
        return (c[0].0, forced);
    }
    let mut start = 0.0;
    let end = c[bi].0;
    let mut count = c[bi].1;
    if bi > 0 {
        start = c[bi - 1].0;
        count -= c[bi - 1].1;
        rank -= c[bi - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

/// Quantile of a native histogram (Prometheus' `HistogramQuantile`).
fn native_quantile(q: f64, h: &FloatHistogram) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if h.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    let custom = h.schema == sextant_model::histogram::CUSTOM_BUCKETS_SCHEMA;
    let all = all_buckets(h);
    let reverse = !h.sum.is_nan() && q >= 0.5;
    let mut rank = if reverse {
        (1.0 - q) * h.count
    } else {
        q * h.count
    };
    let mut count = 0.0;
    let mut bucket = (0.0, 0.0, 0.0);
    let iter: Box<dyn Iterator<Item = &(f64, f64, f64)>> = if reverse {
        Box::new(all.iter().rev())
    } else {
        Box::new(all.iter())
    };
    for b in iter {
        if b.2 == 0.0 {
            continue;
        }
        bucket = *b;
        count += b.2;
        if count >= rank {
            break;
        }
    }
    if reverse {
        // Convert to the equivalent forward position: rank within the bucket from below.
        let n = bucket.2;
        let before_from_top = count - n;
        let within_from_top = rank - before_from_top;
        rank = n - within_from_top;
        count = n;
    }
    let (mut lo, mut hi, n) = bucket;
    if !custom && lo < 0.0 && hi > 0.0 {
        let has_neg = !h.negative_buckets.is_empty();
        let has_pos = !h.positive_buckets.is_empty();
        if !has_neg && has_pos {
            lo = 0.0;
        } else if !has_pos && has_neg {
            hi = 0.0;
        }
    } else if custom {
        if lo == f64::NEG_INFINITY {
            if hi <= 0.0 {
                return hi;
            }
            lo = 0.0;
        } else if hi == f64::INFINITY {
            return lo;
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        return hi;
    }
    let frac = (rank - (count - n)) / n;
    if custom || (lo <= 0.0 && hi >= 0.0) {
        return lo + (hi - lo) * frac;
    }
    let (ll, lu) = (lo.abs().log2(), hi.abs().log2());
    if lo > 0.0 {
        (ll + (lu - ll) * frac).exp2()
    } else {
        -(lu + (ll - lu) * (1.0 - frac)).exp2()
    }
}

#[derive(Clone, Copy)]
enum HistFn {
    Quantile(f64),
    Fraction(f64, f64),
}

fn check_quantile(ev: &mut Ev, q: f64, arg: &Expr) {
    if !(0.0..=1.0).contains(&q) {
        let p = ev.pos_of(arg);
        ev.warn(format!(
            "PromQL warning: quantile value should be between 0 and 1, got {} ({p})",
            crate::ast::fmt_float(q)
        ));
    }
}

/// Variance of a native histogram estimated from bucket midpoints.
fn hist_variance(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut var, mut c) = (0.0, 0.0);
    let custom = h.schema == sextant_model::histogram::CUSTOM_BUCKETS_SCHEMA;
    for (lo, hi, n) in all_buckets(h) {
        if n == 0.0 {
            continue;
        }
        let val = if custom {
            (hi + lo) / 2.0
        } else if lo <= 0.0 && hi >= 0.0 {
            0.0
        } else {
            let v = (hi * lo).sqrt();
            if hi < 0.0 {
                -v
            } else {
                v
            }
        };
        let d = val - mean;
        (var, c) = kahan_inc(n * d * d, var, c);
    }
    (var + c) / h.count
}

/// All buckets of a native histogram in ascending order as (lower, upper, count).
fn all_buckets(h: &FloatHistogram) -> Vec<(f64, f64, f64)> {
    let mut all = Vec::new();
    for (idx, c) in hist::buckets(&h.negative_spans, &h.negative_buckets)
        .into_iter()
        .rev()
    {
        let (lo, hi) = hist::bucket_bounds(h.schema, idx, &h.custom_values);
        all.push((-hi, -lo, c));
    }
    if h.zero_count > 0.0 {
        all.push((-h.zero_threshold, h.zero_threshold, h.zero_count));
    }
    for (idx, c) in hist::buckets(&h.positive_spans, &h.positive_buckets) {
        let (lo, hi) = hist::bucket_bounds(h.schema, idx, &h.custom_values);
        all.push((lo, hi, c));
    }
    all
}

/// Prometheus' `HistogramFraction` for native histograms.
fn native_fraction(lower: f64, upper: f64, h: &FloatHistogram) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let custom = h.schema == sextant_model::histogram::CUSTOM_BUCKETS_SCHEMA;
    let (mut rank, mut lr, mut ur) = (0.0, 0.0, 0.0);
    let (mut ls, mut us) = (false, false);
    let has_neg = h.negative_buckets.iter().any(|c| *c != 0.0);
    let has_pos = h.positive_buckets.iter().any(|c| *c != 0.0);
    for (mut blo, mut bhi, n) in all_buckets(h) {
        if !custom && blo < 0.0 && bhi > 0.0 {
            if has_pos && !has_neg {
                blo = 0.0;
            } else if has_neg && !has_pos {
                bhi = 0.0;
            }
        }
        // Like histogram_quantile, a first custom bucket with a positive upper bound starts at 0.
        if custom && blo == f64::NEG_INFINITY && bhi > 0.0 {
            blo = 0.0;
        }
        let zero = blo <= 0.0 && bhi >= 0.0;
        // No interpolation inside a bucket of infinite width: a lower bound in the first
        // (-Inf) bucket ranks at its end, any other bound at the bucket's start.
        let lin_lo = |v: f64| {
            if blo.is_infinite() {
                rank + n
            } else if bhi.is_infinite() {
                rank
            } else {
                rank + n * (v - blo) / (bhi - blo)
            }
        };
        let lin = |v: f64| {
            if blo.is_infinite() || bhi.is_infinite() {
                rank
            } else {
                rank + n * (v - blo) / (bhi - blo)
            }
        };
        let exp = |v: f64| {
            let (ll, lu, lv) = (blo.abs().log2(), bhi.abs().log2(), v.abs().log2());
            let frac = if v > 0.0 {
                (lv - ll) / (lu - ll)
            } else {
                1.0 - ((lv - lu) / (ll - lu))
            };
            rank + n * frac
        };
        if !ls && blo >= lower {
            lr = rank;
            ls = true;
        }
        if !us && blo >= upper {
            ur = rank;
            us = true;
        }
        if ls && us {
            break;
        }
        if !ls && blo < lower && bhi > lower {
            lr = if custom || zero {
                lin_lo(lower)
            } else {
                exp(lower)
            };
            ls = true;
        }
        if !us && blo < upper && bhi > upper {
            ur = if custom || zero {
                lin(upper)
            } else {
                exp(upper)
            };
            us = true;
        }
        if ls && us {
            break;
        }
        rank += n;
    }
    // NaN observations are in no bucket and so in no fraction.
    let max_rank = if has_nan_observations(h) {
        h.count - nan_observations(h)
    } else {
        h.count
    };
    if !ls || lr > max_rank {
        lr = max_rank;
    }
    if !us || ur > max_rank {
        ur = max_rank;
    }
    // Both bounds inside one infinite bucket.
    (ur - lr).max(0.0) / h.count
}

/// Prometheus' `BucketFraction` over classic buckets (upper bound, cumulative count).
fn bucket_fraction(lower: f64, upper: f64, b: &mut [(f64, f64)]) -> f64 {
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    if b.last().is_none_or(|x| x.0 != f64::INFINITY) {
        return f64::NAN;
    }
    let mut c: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for x in b.iter() {
        match c.last_mut() {
            Some(l) if l.0 == x.0 => l.1 += x.1,
            _ => c.push(*x),
        }
    }
    let count = c[c.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lr, mut ur) = (0.0, 0.0, 0.0);
    let (mut ls, mut us) = (false, false);
    for (i, (ub, cnt)) in c.iter().enumerate() {
        // The first bucket starts at 0 if its upper bound is positive (as in
        // histogram_quantile), else at -Inf.
        let lb = match i {
            0 if *ub > 0.0 => 0.0,
            0 => f64::NEG_INFINITY,
            _ => c[i - 1].0,
        };
        // No interpolation inside a bucket of infinite width: a lower bound in the first
        // (-Inf) bucket ranks at its end, any other bound at the bucket's start.
        let lin_lo = |v: f64| {
            if lb.is_infinite() {
                *cnt
            } else if ub.is_infinite() {
                rank
            } else {
                rank + (cnt - rank) * (v - lb) / (ub - lb)
            }
        };
        let lin = |v: f64| {
            if lb.is_infinite() || ub.is_infinite() {
                rank
            } else {
                rank + (cnt - rank) * (v - lb) / (ub - lb)
            }
        };
        if !ls && lb >= lower {
            lr = rank;
            ls = true;
        }
        if !us && lb >= upper {
            ur = rank;
            us = true;
        }
        if ls && us {
            break;
        }
        if !ls && lb < lower && *ub > lower {
            lr = lin_lo(lower);
            ls = true;
        }
        if !us && lb < upper && *ub > upper {
            ur = lin(upper);
            us = true;
        }
        if ls && us {
            break;
        }
        rank = *cnt;
    }
    if !ls || lr > count {
        lr = count;
    }
    if !us || ur > count {
        ur = count;
    }
    // Both bounds inside one infinite bucket.
    (ur - lr).max(0.0) / count
}

/// A histogram counts NaN observations when its sum is NaN and its count exceeds the counts
/// in all buckets (NaN falls in none of them).
fn has_nan_observations(h: &FloatHistogram) -> bool {
    nan_observations(h) > 0.0
}

/// How many observations are NaN: the count not in any bucket, if the sum is NaN.
fn nan_observations(h: &FloatHistogram) -> f64 {
    let in_buckets: f64 = h.zero_count
        + h.positive_buckets.iter().sum::<f64>()
        + h.negative_buckets.iter().sum::<f64>();
    if h.sum.is_nan() && h.count > in_buckets {
        h.count - in_buckets
    } else {
        0.0
    }
}

fn hist_fn(ev: &mut Ev, f: HistFn, v: Vec<VSample>, arg: &Expr) -> Vec<VSample> {
    let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut native_keys: Vec<Labels> = Vec::new();
    let p = ev.pos_of(arg);
    for s in v {
        if let Some(h) = &s.h {
            let mut key = s.labels.clone();
            key.set(METRIC_NAME, "");
            native_keys.push(key);
            let mut v = match f {
                HistFn::Quantile(q) => native_quantile(q, h),
                HistFn::Fraction(a, b) => native_fraction(a, b, h),
            };
            if let HistFn::Quantile(q) = f {
                // A rank among the NaN observations has no value.
                let in_buckets = h.count - nan_observations(h);
                if has_nan_observations(h) && q * h.count > in_buckets {
                    v = f64::NAN;
                }
            }
            if has_nan_observations(h) {
                let name = s.labels.metric_name().unwrap_or("").to_string();
                ev.info(match f {
                    HistFn::Quantile(_) => format!(
                        "PromQL info: input to histogram_quantile has NaN observations, result is {} for metric name {name:?} ({p})",
                        if v.is_nan() { "NaN" } else { "skewed higher" }
                    ),
                    HistFn::Fraction(..) => format!(
                        "PromQL info: input to histogram_fraction has NaN observations, which are excluded from all fractions for metric name {name:?} ({p})"
                    ),
                });
            }
            out.push(VSample {
                labels: s.labels,
                t: 0,
                f: v,
                h: None,
                drop_name: true,
            });
            continue;
        }
        let le = s.labels.get("le").unwrap_or("");
        let Some(ub) = parse_go_float(le) else {
            let name = s.labels.metric_name().unwrap_or("").to_string();
            ev.warn(format!(
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of {le:?} for metric name {name:?} ({p})"
            ));
            continue;
        };
        let mut key = s.labels.clone();
        key.set("le", "");
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push((ub, s.f));
    }
    for (labels, mut b) in groups {
        let mut k = labels.clone();
        k.set(METRIC_NAME, "");
        if native_keys.contains(&k) {
            let name = labels.metric_name().unwrap_or("").to_string();
            ev.warn(format!(
                "PromQL warning: vector contains a mix of classic and native histograms for metric name {name:?} ({p})"
            ));
            out.retain(|s| {
                let mut x = s.labels.clone();
                x.set(METRIC_NAME, "");
                x != k
            });
            continue;
        }
        let v = match f {
            HistFn::Quantile(q) => {
                let (v, forced) = bucket_quantile(q, &mut b);
                if forced {
                    let name = labels.metric_name().unwrap_or("").to_string();
                    ev.info(format!("PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {name:?} ({p})"));
                }
                v
            }
            HistFn::Fraction(a, c) => bucket_fraction(a, c, &mut b),
        };
        out.push(VSample {
            labels,
            t: 0,
            f: v,
            h: None,
            drop_name: true,
        });
    }
    out
}

/// Parses a float as Go's `strconv.ParseFloat` does for label values (`+Inf`, `1e3`).
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "+inf" | "inf" | "+infinity" | "infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return i64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    t.parse().ok()
}

/// `info(v, selector)`: adds data labels of info series (default `target_info`) that share
/// the identifying labels `instance` and `job`.
fn info(ev: &mut Ev, args: &[Expr], ts: i64) -> Result<Val, EvalError> {
    const IDENT: [&str; 2] = ["instance", "job"];
    let v = vector_arg(ev, &args[0], ts)?;
    let sel: Vec<Matcher> = match args.get(1).map(|a| a.unparen()) {
        Some(Expr::Vector(vs)) => vs.matchers.clone(),
        _ => Vec::new(),
    };
    let mut name_m: Vec<Matcher> = sel
        .iter()
        .filter(|m| m.name == METRIC_NAME)
        .cloned()
        .collect();
    if name_m.is_empty() {
        name_m.push(Matcher::equal(METRIC_NAME, "target_info"));
    }
    let data_m: Vec<Matcher> = sel
        .iter()
        .filter(|m| m.name != METRIC_NAME)
        .cloned()
        .collect();
    let t = ev.data_time(&args[0], ts);
    let lb = ev.opts.lookback_ms;
    let mut all_m = name_m.clone();
    all_m.extend(data_m.iter().filter(|m| !m.matches_empty()).cloned());
    let raw = ev.select_raw(&all_m, t.saturating_sub(lb) + 1, t)?;
    // Info series alive at t, with their labels.
    let mut infos: Vec<(Labels, i64)> = Vec::new();
    // With only negative name matchers, only info metrics (`*_info`) can contribute.
    let only_negative = name_m
        .iter()
        .all(|m| matches!(m.op, MatchOp::NotEqual | MatchOp::NotRegex));
    for s in raw {
        if only_negative
            && !s
                .labels
                .metric_name()
                .is_some_and(|n| n.len() > 5 && n.ends_with("_info"))
        {
            continue;
        }
        let f = s
            .floats
            .iter()
            .rev()
            .find(|p| p.t <= t && p.t > t.saturating_sub(lb));
        let h = s
            .histograms
            .iter()
            .rev()
            .find(|p| p.0 <= t && p.0 > t.saturating_sub(lb));
        let st = match (f, h) {
            (Some(f), h) if h.is_none_or(|h| h.0 < f.t) => {
                if sextant_model::is_stale_nan(f.v) {
                    continue;
                }
                f.t
            }
            (_, Some(_)) => {
                return Err(EvalError::Execution(
                    "this info metric has histogram samples, which is not supported".into(),
                ))
            }
            _ => continue,
        };
        if !data_m
            .iter()
            .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
        {
            continue;
        }
        infos.push((s.labels, st));
    }
    // Of several series of one info metric with the same identifying labels, the newest wins.
    let key = |l: &Labels| -> Vec<String> {
        std::iter::once(l.metric_name().unwrap_or("").to_string())
            .chain(IDENT.iter().map(|n| l.get(n).unwrap_or("").to_string()))
            .collect()
    };
    let newest: Vec<(Labels, i64)> = infos.clone();
    infos.retain(|(l, t)| !newest.iter().any(|(o, ot)| key(o) == key(l) && *ot > *t));
    let infos: Vec<Labels> = infos.into_iter().map(|x| x.0).collect();
    let empty_ok = data_m.iter().all(|m| m.matches_empty());
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let positive = name_m
            .iter()
            .any(|m| matches!(m.op, MatchOp::Equal | MatchOp::Regex));
        let is_info = positive
            && name_m
                .iter()
                .all(|m| m.matches(s.labels.metric_name().unwrap_or("")));
        if is_info && s.labels.metric_name().is_some() {
            out.push(s);
            continue;
        }
        let ident: Vec<&str> = IDENT
            .iter()
            .map(|n| s.labels.get(n).unwrap_or(""))
            .collect();
        let mut added: Vec<(String, String)> = Vec::new();
        let mut matched = false;
        for il in &infos {
            if IDENT
                .iter()
                .zip(&ident)
                .any(|(n, v)| il.get(n).unwrap_or("") != *v)
            {
                continue;
            }
            matched = true;
            for l in il.iter() {
                if l.name == METRIC_NAME || IDENT.contains(&l.name.as_str()) {
                    continue;
                }
                if s.labels.get(&l.name).is_some() {
                    continue;
                }
                if !data_m.is_empty() && !data_m.iter().any(|m| m.name == l.name) {
                    continue;
                }
                if let Some((_, v)) = added.iter().find(|(n, _)| *n == l.name) {
                    if *v != l.value {
                        return Err(EvalError::Execution(format!(
                            "conflicting label {:?} in info metrics",
                            l.name
                        )));
                    }
                    continue;
                }
                added.push((l.name.clone(), l.value.clone()));
            }
        }
        if !matched && !empty_ok {
            continue;
        }
        for (n, v) in added {
            s.labels.set(&n, &v);
        }
        out.push(s);
    }
    Ok(Val::Vector(out))
}

fn interpolate(p1: Sample, p2: Sample, t: i64, counter: bool, left: bool) -> f64 {
    let (mut y1, y2) = (p1.v, p2.v);
    // A reset between the two points: the counter restarted from zero.
    let _ = left;
    if counter && y2 < y1 {
        y1 = 0.0;
    }
    y1 + (y2 - y1) * (t - p1.t) as f64 / (p2.t - p1.t) as f64
}

fn pick_left(f: &[Sample], first: usize, start: i64, smoothed: bool, counter: bool) -> f64 {
    if smoothed && f[first].t < start && first + 1 < f.len() {
        return interpolate(f[first], f[first + 1], start, counter, true);
    }
    f[first].v
}

fn pick_right(f: &[Sample], last: usize, end: i64, smoothed: bool, counter: bool) -> f64 {
    if smoothed && last > 0 && f[last].t > end {
        return interpolate(f[last - 1], f[last], end, counter, false);
    }
    f[last].v
}

/// Go's `sort.Search(n, pred)`.
fn search(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut i, mut j) = (0, n);
    while i < j {
        let h = (i + j) / 2;
        if !pred(h) {
            i = h + 1;
        } else {
            j = h;
        }
    }
    i
}

/// `rate`/`increase`/`delta` over an `anchored` or `smoothed` range (Prometheus' `extendedRate`).
fn extended_rate(
    f: &[Sample],
    start: i64,
    end: i64,
    counter: bool,
    rate: bool,
    smoothed: bool,
) -> Option<f64> {
    let mut last = f.len() - 1;
    let mut first = search(last, |i| f[i].t > start).max(1) - 1;
    if smoothed {
        last = search(last, |i| f[i].t >= end);
    }
    if f[last].t <= start || f[first].t >= end {
        return None;
    }
    let left = pick_left(f, first, start, smoothed, counter);
    let right = pick_right(f, last, end, smoothed, counter);
    let mut result = right - left;
    if counter {
        if f[first].t <= start {
            first += 1;
        }
        if f[last].t >= end && last > 0 {
            last -= 1;
        }
        let mut corr = 0.0;
        let mut prev = left;
        if first <= last {
            for p in &f[first..=last] {
                if p.v < prev {
                    corr += prev;
                }
                prev = p.v;
            }
        }
        if right < prev {
            corr += prev;
        }
        result += corr;
    }
    if rate {
        result /= (end - start) as f64 / 1000.0;
    }
    Some(result)
}

/// Sums histograms for `sum`/`avg` and `sum_over_time`/`avg_over_time` with Prometheus'
/// annotations; `pos` is the byte offset of the aggregated expression.
pub(crate) fn sum_histograms(
    ev: &mut Ev,
    hs: &[&FloatHistogram],
    mname: &str,
    pos: usize,
) -> Option<FloatHistogram> {
    let p = ev.pos_at(pos);
    sum_histograms_at(ev, hs, mname, &p)
}

fn sum_histograms_at(
    ev: &mut Ev,
    hs: &[&FloatHistogram],
    mname: &str,
    p: &str,
) -> Option<FloatHistogram> {
    let mut acc = hs[0].clone();
    let mut reconciled = false;
    // A conflict is any mix of explicit "reset" and "not a reset" hints among the inputs.
    use sextant_model::CounterResetHint::{CounterReset, NotCounterReset};
    let conflict = hs.iter().any(|h| h.counter_reset_hint == CounterReset)
        && hs.iter().any(|h| h.counter_reset_hint == NotCounterReset);
    for h in &hs[1..] {
        match hist::add_ex(&acc, h, false) {
            Some((x, note)) => {
                acc = x;
                reconciled |= note.reconciled;
            }
            None => {
                mixed_schemas_warning(ev, mname, p);
                return None;
            }
        }
    }
    if reconciled {
        ev.info(format!(
            "PromQL info: mismatched custom buckets were reconciled during aggregation ({p})"
        ));
    }
    // Prometheus only sees explicit reset hints (and so conflicts) when it decodes just the
    // statistics of histograms, below histogram_count/sum/avg.
    if conflict && ev.stats_decoding > 0 {
        ev.warn(format!(
            "PromQL warning: conflicting counter resets during histogram aggregation ({p})"
        ));
    }
    Some(acc)
}

/// The window and annotation context of an anchored/smoothed histogram rate.
pub(crate) struct ExtCtx<'a> {
    pub start: i64,
    pub end: i64,
    pub counter: bool,
    pub smoothed: bool,
    pub mname: &'a str,
    pub p: &'a str,
}

fn mixed_schemas_warning(ev: &mut Ev, mname: &str, p: &str) {
    ev.warn(format!("PromQL warning: vector contains a mix of histograms with exponential and custom buckets schemas for metric name {mname:?} ({p})"));
}

/// `a + b` or `a - b` with Prometheus' annotations; `None` (after a warning) when exponential
/// and custom buckets mix.
fn add_annotated(
    ev: &mut Ev,
    a: &FloatHistogram,
    b: &FloatHistogram,
    sub: bool,
    mname: &str,
    p: &str,
) -> Option<FloatHistogram> {
    match hist::add_ex(a, b, sub) {
        Some((h, note)) => {
            if note.reconciled {
                let op = if sub { "subtraction" } else { "addition" };
                ev.info(format!(
                    "PromQL info: mismatched custom buckets were reconciled during {op} ({p})"
                ));
            }
            Some(h)
        }
        None => {
            mixed_schemas_warning(ev, mname, p);
            None
        }
    }
}

/// Prometheus' `interpolateHistograms`: the histogram at `t` between `a` and `b`; across a
/// counter reset the counter restarts from zero. The result keeps `b`'s counter-reset hint.
pub(crate) fn interpolate_histograms(
    ev: &mut Ev,
    a: &(i64, FloatHistogram),
    b: &(i64, FloatHistogram),
    t: i64,
    counter: bool,
    mname: &str,
    p: &str,
) -> Option<FloatHistogram> {
    if t == a.0 {
        return Some(a.1.clone());
    }
    if t == b.0 {
        return Some(b.1.clone());
    }
    let frac = (t - a.0) as f64 / (b.0 - a.0) as f64;
    if counter && hist::detect_reset(&b.1, &a.1) {
        let mut h = b.1.clone();
        hist::scale(&mut h, frac);
        return Some(h);
    }
    let mut d = add_annotated(ev, &b.1, &a.1, true, mname, p)?;
    hist::scale(&mut d, frac);
    let mut r = add_annotated(ev, &d, &a.1, false, mname, p)?;
    r.counter_reset_hint = b.1.counter_reset_hint;
    Some(r)
}

/// `rate`/`increase`/`delta` of native histograms over an `anchored` or `smoothed` range
/// (Prometheus' `extendedHistogramRate`), before the division by the range for `rate`.
fn extended_histogram_rate(
    ev: &mut Ev,
    h: &[(i64, FloatHistogram)],
    x: &ExtCtx,
) -> Option<FloatHistogram> {
    use sextant_model::CounterResetHint::Gauge;
    let (start, end, counter, smoothed, mname, p) =
        (x.start, x.end, x.counter, x.smoothed, x.mname, x.p);
    let mut last = h.len() - 1;
    let first = search(last, |i| h[i].0 > start).max(1) - 1;
    if smoothed {
        last = search(last, |i| h[i].0 >= end);
    }
    if h[last].0 <= start || (smoothed && h[first].0 > end) {
        return None;
    }
    let custom = |x: &FloatHistogram| x.schema == sextant_model::histogram::CUSTOM_BUCKETS_SCHEMA;
    let c0 = custom(&h[first].1);
    for (_, x) in &h[first..=last] {
        if custom(x) != c0 {
            mixed_schemas_warning(ev, mname, p);
            return None;
        }
        if counter && x.counter_reset_hint == Gauge {
            ev.warn(format!(
                "PromQL warning: this native histogram metric is not a counter: {mname:?} ({p})"
            ));
        }
    }
    let left = if smoothed && h[first].0 < start {
        interpolate_histograms(ev, &h[first], &h[first + 1], start, counter, mname, p)?
    } else {
        h[first].1.clone()
    };
    let right = if smoothed && last > 0 && h[last].0 > end {
        interpolate_histograms(ev, &h[last - 1], &h[last], end, counter, mname, p)?
    } else {
        h[last].1.clone()
    };
    if !counter && (left.counter_reset_hint != Gauge || right.counter_reset_hint != Gauge) {
        ev.warn(format!(
            "PromQL warning: this native histogram metric is not a gauge: {mname:?} ({p})"
        ));
    }
    let mut res = add_annotated(ev, &right, &left, true, mname, p)?;
    if counter {
        // `first` is represented by `left`; `last` by `right`.
        let mut f = first + 1;
        let mut prev = &left;
        if smoothed && h[first].0 < start && hist::detect_reset(&h[first + 1].1, &h[first].1) {
            // The left interpolation already spanned this reset.
            prev = &h[first + 1].1;
            f += 1;
        }
        if f <= last {
            let mut corr: Option<FloatHistogram> = None;
            let mut add_corr = |ev: &mut Ev, c: &FloatHistogram| -> Option<()> {
                corr = Some(match corr.take() {
                    None => c.clone(),
                    Some(acc) => add_annotated(ev, &acc, c, false, mname, p)?,
                });
                Some(())
            };
            for (_, cur) in &h[f..last] {
                if hist::detect_reset(cur, prev) {
                    add_corr(ev, prev)?;
                }
                prev = cur;
            }
            if hist::detect_reset(&right, prev) {
                add_corr(ev, prev)?;
            }
            if let Some(c) = corr {
                res = add_annotated(ev, &res, &c, false, mname, p)?;
            }
        }
    }
    res.counter_reset_hint = Gauge;
    Some(res)
}

/// Trims an anchored/smoothed selection back to `[start, end]` with synthetic boundary points.
pub(crate) fn extend_floats(f: &[Sample], start: i64, end: i64, smoothed: bool) -> Vec<Sample> {
    if f.is_empty() {
        return Vec::new();
    }
    let mut last = f.len() - 1;
    let mut first = search(last, |i| f[i].t > start).max(1) - 1;
    if smoothed {
        last = search(last, |i| f[i].t >= end);
    }
    if f[last].t <= start {
        return Vec::new();
    }
    let left = pick_left(f, first, start, smoothed, false);
    let right = pick_right(f, last, end, smoothed, false);
    if f[first].t <= start {
        first += 1;
    }
    let last_incl = if f[last].t >= end {
        last as isize - 1
    } else {
        last as isize
    };
    let mut out = vec![Sample::new(start, left)];
    if first as isize <= last_incl {
        out.extend_from_slice(&f[first..=last_incl as usize]);
    }
    out.push(Sample::new(end, right));
    out
}
