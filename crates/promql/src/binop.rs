//! Binary operators: scalar/scalar, vector/scalar and vector/vector with Prometheus' vector
//! matching (`on`, `ignoring`, `group_left`, `group_right`, `fill*`) and the set operators.

use std::collections::{HashMap, HashSet};

use sextant_model::{FloatHistogram, Labels, METRIC_NAME};

use crate::ast::{BinOp, Card, VectorMatching};
use crate::engine::{go_labels, Ev, Val};
use crate::error::EvalError;
use crate::hist;
use crate::value::VSample;

/// Applies `op` to two floats; the bool says whether a comparison holds (always true for
/// arithmetic).
pub(crate) fn float_op(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eql => (l, l == r),
        BinOp::Neq => (l, l != r),
        BinOp::Gtr => (l, l > r),
        BinOp::Lss => (l, l < r),
        BinOp::Gte => (l, l >= r),
        BinOp::Lte => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

fn drops_name(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow | BinOp::Atan2
    )
}

/// One operand of an element-wise operation.
#[derive(Clone, Copy)]
struct Operand<'a> {
    f: f64,
    h: Option<&'a FloatHistogram>,
}

/// Element operation including histograms. `None` means "no result" (dropped element).
fn elem_op(
    ev: &mut Ev,
    op: BinOp,
    l: Operand,
    r: Operand,
    pos: usize,
) -> Option<(f64, Option<FloatHistogram>, bool)> {
    match (l.h, r.h) {
        (None, None) => {
            let (v, keep) = float_op(op, l.f, r.f);
            Some((v, None, keep))
        }
        (Some(a), Some(b)) => match op {
            BinOp::Add | BinOp::Sub => match hist::add_ex(a, b, op == BinOp::Sub) {
                Some((h, note)) => {
                    if note.reconciled {
                        let what = if op == BinOp::Sub {
                            "subtraction"
                        } else {
                            "addition"
                        };
                        let p = ev.pos_at(ev.bin_start);
                        ev.info(format!(
                            "PromQL info: mismatched custom buckets were reconciled during {what} ({p})"
                        ));
                    }
                    Some((0.0, Some(h), true))
                }
                None => {
                    ev.warn(format!(
                        "PromQL warning: vector contains a mix of histograms with exponential and custom buckets schemas for metric name \"\" ({})",
                        ev_pos(ev, pos)
                    ));
                    None
                }
            },
            BinOp::Eql => Some((0.0, Some(a.clone()), hist::equal(a, b))),
            BinOp::Neq => Some((0.0, Some(a.clone()), !hist::equal(a, b))),
            _ => {
                ev.info(format!(
                    "PromQL info: incompatible sample types encountered for binary operator \"{}\": histogram {} histogram ({})",
                    op.as_str(),
                    op.as_str(),
                    ev_pos(ev, pos)
                ));
                None
            }
        },
        (Some(a), None) => match op {
            BinOp::TrimUpper | BinOp::TrimLower => {
                Some((0.0, Some(hist::trim(a, r.f, op == BinOp::TrimLower)), true))
            }
            BinOp::Mul => {
                let mut h = a.clone();
                hist::scale(&mut h, r.f);
                Some((0.0, Some(h), true))
            }
            BinOp::Div => {
                let mut h = a.clone();
                hist::div(&mut h, r.f);
                Some((0.0, Some(h), true))
            }
            _ => {
                ev.info(format!(
                    "PromQL info: incompatible sample types encountered for binary operator \"{}\": histogram {} float ({})",
                    op.as_str(),
                    op.as_str(),
                    ev_pos(ev, pos)
                ));
                None
            }
        },
        (None, Some(b)) => match op {
            BinOp::Mul => {
                let mut h = b.clone();
                hist::scale(&mut h, l.f);
                Some((0.0, Some(h), true))
            }
            _ => {
                ev.info(format!(
                    "PromQL info: incompatible sample types encountered for binary operator \"{}\": float {} histogram ({})",
                    op.as_str(),
                    op.as_str(),
                    ev_pos(ev, pos)
                ));
                None
            }
        },
    }
}

fn ev_pos(_ev: &Ev, _pos: usize) -> String {
    String::from("?")
}

pub(crate) fn eval_binary(
    ev: &mut Ev,
    op: BinOp,
    l: Val,
    r: Val,
    return_bool: bool,
    matching: Option<&VectorMatching>,
    pos: usize,
) -> Result<Val, EvalError> {
    match (l, r) {
        (Val::Scalar(a), Val::Scalar(b)) => {
            let (v, keep) = float_op(op, a, b);
            Ok(Val::Scalar(if op.is_comparison() {
                if keep {
                    1.0
                } else {
                    0.0
                }
            } else {
                v
            }))
        }
        (Val::Vector(v), Val::Scalar(s)) => vector_scalar(ev, op, v, s, false, return_bool, pos),
        (Val::Scalar(s), Val::Vector(v)) => vector_scalar(ev, op, v, s, true, return_bool, pos),
        (Val::Vector(a), Val::Vector(b)) => {
            let default = VectorMatching::default();
            let m = matching.unwrap_or(&default);
            match op {
                BinOp::And => Ok(Val::Vector(set_and(a, b, m, false))),
                BinOp::Unless => Ok(Val::Vector(set_and(a, b, m, true))),
                BinOp::Or => Ok(Val::Vector(set_or(a, b, m))),
                _ => vector_vector(ev, op, a, b, m, return_bool, pos).map(Val::Vector),
            }
        }
        _ => Ok(Val::Vector(Vec::new())),
    }
}

fn vector_scalar(
    ev: &mut Ev,
    op: BinOp,
    v: Vec<VSample>,
    s: f64,
    swap: bool,
    return_bool: bool,
    pos: usize,
) -> Result<Val, EvalError> {
    let mut out = Vec::with_capacity(v.len());
    for mut x in v {
        let xo = Operand {
            f: x.f,
            h: x.h.as_deref(),
        };
        let so = Operand { f: s, h: None };
        let (l, r) = if swap { (so, xo) } else { (xo, so) };
        let Some((mut val, h, mut keep)) = elem_op(ev, op, l, r, pos) else {
            continue;
        };
        let mut h = h;
        if op.is_comparison() && swap {
            val = x.f;
            h = x.h.as_deref().cloned();
        }
        if return_bool {
            if x.h.is_some() && op.is_comparison() {
                continue;
            }
            val = if keep { 1.0 } else { 0.0 };
            h = None;
            keep = true;
        } else if op.is_comparison() && x.h.is_some() {
            // Histograms cannot be compared with floats.
            continue;
        }
        if !keep {
            continue;
        }
        x.f = val;
        x.h = h.map(Box::new);
        x.drop_name = x.drop_name || return_bool || drops_name(op);
        out.push(x);
    }
    Ok(Val::Vector(out))
}

/// The matching signature of a label set.
fn signature(l: &Labels, m: &VectorMatching) -> String {
    let mut s = String::new();
    if m.on {
        for name in &m.labels {
            s.push_str(l.get(name).unwrap_or(""));
            s.push('\u{ff}');
        }
    } else {
        for lb in l.iter() {
            if lb.name == METRIC_NAME || m.labels.contains(&lb.name) {
                continue;
            }
            s.push_str(&lb.name);
            s.push('\u{fe}');
            s.push_str(&lb.value);
            s.push('\u{ff}');
        }
    }
    s
}

/// The labels a signature was made of, for error messages.
fn sig_labels(l: &Labels, m: &VectorMatching) -> Labels {
    if m.on {
        Labels::from_pairs(
            m.labels
                .iter()
                .filter_map(|n| l.get(n).map(|v| (n.clone(), v.to_string()))),
        )
    } else {
        Labels::from_pairs(
            l.iter()
                .filter(|lb| lb.name != METRIC_NAME && !m.labels.contains(&lb.name))
                .map(|lb| (lb.name.clone(), lb.value.clone())),
        )
    }
}

fn set_and(a: Vec<VSample>, b: Vec<VSample>, m: &VectorMatching, unless: bool) -> Vec<VSample> {
    let sigs: HashSet<String> = b.iter().map(|s| signature(&s.labels, m)).collect();
    a.into_iter()
        .filter(|s| sigs.contains(&signature(&s.labels, m)) != unless)
        .collect()
}

fn set_or(a: Vec<VSample>, b: Vec<VSample>, m: &VectorMatching) -> Vec<VSample> {
    let sigs: HashSet<String> = a.iter().map(|s| signature(&s.labels, m)).collect();
    let mut out = a;
    for s in b {
        if !sigs.contains(&signature(&s.labels, m)) {
            out.push(s);
        }
    }
    out
}

fn result_labels(ls: &Labels, rs: &Labels, m: &VectorMatching) -> Labels {
    let mut out = ls.clone();
    if m.card == Card::OneToOne {
        if m.on {
            out = Labels::from_pairs(
                ls.iter()
                    .filter(|l| m.labels.contains(&l.name))
                    .map(|l| (l.name.clone(), l.value.clone())),
            );
        } else {
            for n in &m.labels {
                out.set(n, "");
            }
        }
    }
    for n in &m.include {
        out.set(n, rs.get(n).unwrap_or(""));
    }
    out
}

fn vector_vector(
    ev: &mut Ev,
    op: BinOp,
    a: Vec<VSample>,
    b: Vec<VSample>,
    m: &VectorMatching,
    return_bool: bool,
    pos: usize,
) -> Result<Vec<VSample>, EvalError> {
    let swapped = m.card == Card::OneToMany;
    let (lhs, rhs) = if swapped { (b, a) } else { (a, b) };
    let one_side = if swapped { "left" } else { "right" };
    let mut right: HashMap<String, usize> = HashMap::with_capacity(rhs.len());
    for (i, s) in rhs.iter().enumerate() {
        let sig = signature(&s.labels, m);
        if let Some(j) = right.get(&sig) {
            let (x, y) = (go_labels(&rhs[*j].labels), go_labels(&s.labels));
            let (x, y) = if x <= y { (x, y) } else { (y, x) };
            return Err(EvalError::Execution(format!(
                "found duplicate series for the match group {} on the {one_side} hand-side of the operation: [{x}, {y}];many-to-many matching not allowed: matching labels must be unique on one side",
                go_labels(&sig_labels(&s.labels, m))
            )));
        }
        right.insert(sig, i);
    }
    let mut matched: HashMap<String, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    let mut used_right: HashSet<usize> = HashSet::new();
    // Prometheus swaps the operands for group_right so the "many" side is on the left, but not
    // the fill values: fill_right always fills the "one" side, fill_left the "many" side.
    let fill_one = m.fill_right;
    let fill_many = m.fill_left;
    let mut pairs: Vec<(VSample, VSample)> = Vec::new();
    for ls in lhs {
        let sig = signature(&ls.labels, m);
        let rs = match right.get(&sig) {
            Some(j) => {
                used_right.insert(*j);
                rhs[*j].clone()
            }
            None => match fill_one {
                Some(f) => VSample {
                    labels: sig_labels(&ls.labels, m),
                    t: ls.t,
                    f,
                    h: None,
                    drop_name: false,
                },
                None => continue,
            },
        };
        pairs.push((ls, rs));
    }
    if let Some(f) = fill_many {
        for (j, rs) in rhs.iter().enumerate() {
            if used_right.contains(&j) {
                continue;
            }
            let mut labels = sig_labels(&rs.labels, m);
            if m.card != Card::OneToOne {
                for n in &m.include {
                    labels.set(n, rs.labels.get(n).unwrap_or(""));
                }
            }
            pairs.push((
                VSample {
                    labels,
                    t: rs.t,
                    f,
                    h: None,
                    drop_name: false,
                },
                rs.clone(),
            ));
        }
    }
    for (ls, rs) in pairs {
        let sig = signature(&ls.labels, m);
        let lo = Operand {
            f: ls.f,
            h: ls.h.as_deref(),
        };
        let ro = Operand {
            f: rs.f,
            h: rs.h.as_deref(),
        };
        let (fl, fr) = if swapped { (ro, lo) } else { (lo, ro) };
        if m.card == Card::OneToOne {
            let set = matched.entry(sig.clone()).or_default();
            if !set.is_empty() {
                return Err(EvalError::Execution("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into()));
            }
            set.insert(Labels::empty());
        }
        let Some((mut val, mut h, keep)) = elem_op(ev, op, fl, fr, pos) else {
            continue;
        };
        if return_bool {
            val = if keep { 1.0 } else { 0.0 };
            h = None;
        } else if !keep {
            continue;
        }
        let metric = result_labels(&ls.labels, &rs.labels, m);
        let set = matched.entry(sig).or_default();
        if m.card == Card::OneToOne {
        } else if !set.insert(metric.clone()) {
            return Err(EvalError::Execution(
                "multiple matches for labels: grouping labels must ensure unique matches".into(),
            ));
        }
        out.push(VSample {
            labels: metric,
            t: ls.t,
            f: val,
            h: h.map(Box::new),
            drop_name: ls.drop_name || return_bool || drops_name(op),
        });
    }
    Ok(out)
}
