//! Compiled plans for the shapes dashboards query most: instant selectors, range functions
//! over a plain range selector (`rate(m[5m])`, `avg_over_time(m[5m])`, ...) and aggregations of
//! those (`sum by (job) (...)`, `topk(10, ...)`). The step-by-step evaluator in `engine` would
//! copy every series' window, clone label sets and rebuild aggregation group keys at every
//! step; a plan instead fixes the identity of its output series once per query (the loaded
//! series do not change between steps), reads windows as slices of the loaded samples through
//! per-series cursors, maps input series to groups once, and emits `(series index, value)`
//! pairs per step. The semantics are the evaluator's: the same range-function and
//! aggregation code computes the values, in the same input order, with the same sample-limit
//! accounting and annotations. Anything a plan cannot express exactly (histograms, extended
//! selectors, `smoothed`, `by (__name__)`, parameters that are not number literals, ...)
//! is left to the evaluator.

use std::collections::HashMap;

use sextant_model::{is_stale_nan, Labels, Sample};

use crate::aggr;
use crate::ast::{AggOp, AtModifier, Expr, MatrixSelector, VectorSelector};
use crate::engine::{key, too_many_samples, Ev};
use crate::error::EvalError;
use crate::value::{SeriesView, VSample};

/// One output element of a plan at one step: series index, sample time (what `timestamp()`
/// would see: the sample's time for selectors, the step for functions, 0 for aggregations),
/// and value.
pub(crate) type Point = (u32, i64, f64);

/// Range functions a plan evaluates: one range-vector argument, no other parameters, and a
/// float result for float input.
const RANGE_FNS: &[&str] = &[
    "rate",
    "increase",
    "delta",
    "irate",
    "idelta",
    "changes",
    "resets",
    "deriv",
    "sum_over_time",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "count_over_time",
    "last_over_time",
    "first_over_time",
    "present_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "mad_over_time",
    "ts_of_last_over_time",
    "ts_of_first_over_time",
    "ts_of_max_over_time",
    "ts_of_min_over_time",
];

/// A compiled sub-expression.
pub(crate) struct Node {
    /// The output series: labels, and whether `__name__` is dropped when the query finishes.
    pub(crate) series: Vec<(Labels, bool)>,
    kind: Kind,
}

/// Where a selector reads its samples: the loaded data of one selector, at `@`/`offset`.
struct Source {
    key: usize,
    at: Option<i64>,
    offset: i64,
}

impl Source {
    fn new(ev: &Ev, vs: &VectorSelector) -> Self {
        Source {
            key: key(vs),
            at: match vs.at {
                Some(AtModifier::Time(t)) => Some(t),
                Some(AtModifier::Start) => Some(ev.start),
                Some(AtModifier::End) => Some(ev.end),
                None => None,
            },
            offset: vs.offset.as_ref().map_or(0, |o| o.eval_ms(ev.dctx)),
        }
    }

    /// The time samples are read at for evaluation time `ts`.
    fn time(&self, ts: i64) -> i64 {
        self.at.unwrap_or(ts) - self.offset
    }
}

enum Kind {
    /// An instant-vector selector (not `smoothed`/`anchored`).
    Select {
        src: Source,
        /// Per series: index of the first sample after the last evaluation time.
        cur: Vec<usize>,
    },
    /// A range function over a plain range selector.
    RangeFn {
        src: Source,
        func: &'static str,
        range: i64,
        /// The argument's position, for annotations.
        apos: String,
        /// Per series: window start and end cursors (first sample after `t - range`, after `t`).
        lo: Vec<usize>,
        hi: Vec<usize>,
    },
    /// An aggregation of a compiled expression.
    Aggr {
        op: AggOp,
        param: f64,
        child: Box<Node>,
        /// Group of each child series (`topk`/`bottomk`: unused, output is the child's).
        group_of: Vec<u32>,
        /// Per-step buffers, reused: the child's output, group values/members, the order
        /// groups first appear in at this step, and a step stamp per group.
        child_out: Vec<Point>,
        floats: Vec<Vec<f64>>,
        members: Vec<Vec<Point>>,
        order: Vec<u32>,
        stamp: Vec<u64>,
        step_no: u64,
    },
}

/// Advances cursor `c` (index of the first sample with time > the previous `x`) to the first
/// sample with time > `x`; evaluation times mostly increase, so this is a short forward walk.
fn seek(f: &[Sample], c: &mut usize, x: i64) -> usize {
    if *c > f.len() || (*c > 0 && f[*c - 1].t > x) {
        *c = f.partition_point(|p| p.t <= x);
    } else {
        while *c < f.len() && f[*c].t <= x {
            *c += 1;
        }
    }
    *c
}

/// Compiles `e` into a plan, if the whole sub-expression can be one. Needs the data loaded.
pub(crate) fn compile(ev: &Ev, e: &Expr) -> Option<Node> {
    match e {
        Expr::Paren(x) => compile(ev, x),
        Expr::Vector(vs) if !vs.smoothed && !vs.anchored => {
            let data = ev.data.get(&key(vs))?;
            if data.iter().any(|s| !s.histograms.is_empty()) {
                return None;
            }
            Some(Node {
                series: data.iter().map(|s| (s.labels.clone(), false)).collect(),
                kind: Kind::Select {
                    src: Source::new(ev, vs),
                    cur: vec![0; data.len()],
                },
            })
        }
        Expr::Call { func, args, .. } if args.len() == 1 && RANGE_FNS.contains(&func.name) => {
            let Expr::Matrix(m) = args[0].unparen() else {
                return None;
            };
            let MatrixSelector {
                vs,
                range,
                anchored: false,
                smoothed: false,
            } = m
            else {
                return None;
            };
            let data = ev.data.get(&key(vs))?;
            if data
                .iter()
                .any(|s| !s.histograms.is_empty() || !s.hist_st.is_empty())
            {
                return None;
            }
            let keep_name = matches!(func.name, "last_over_time" | "first_over_time");
            Some(Node {
                series: data
                    .iter()
                    .map(|s| (s.labels.clone(), !keep_name || s.drop_name))
                    .collect(),
                kind: Kind::RangeFn {
                    src: Source::new(ev, vs),
                    func: func.name,
                    range: range.eval_ms(ev.dctx),
                    apos: ev.pos_of(&args[0]),
                    lo: vec![0; data.len()],
                    hi: vec![0; data.len()],
                },
            })
        }
        Expr::Aggregate {
            op,
            expr,
            param,
            grouping,
            without,
            ..
        } => {
            let param = match param.as_deref().map(Expr::unparen) {
                None => f64::NAN,
                Some(Expr::Number(n)) => *n,
                Some(_) => return None,
            };
            match op {
                AggOp::Sum
                | AggOp::Avg
                | AggOp::Count
                | AggOp::Group
                | AggOp::Min
                | AggOp::Max
                | AggOp::Stddev
                | AggOp::Stdvar => {}
                // Out-of-range quantiles and NaN counts annotate or fail: the evaluator's job.
                AggOp::Quantile if (0.0..=1.0).contains(&param) => {}
                AggOp::Topk | AggOp::Bottomk if !param.is_nan() => {}
                _ => return None,
            }
            if !*without && grouping.iter().any(|g| g == sextant_model::METRIC_NAME) {
                return None;
            }
            let child = compile(ev, expr)?;
            let mut group_of = Vec::with_capacity(child.series.len());
            let mut series = Vec::new();
            let topk = matches!(op, AggOp::Topk | AggOp::Bottomk);
            if topk {
                series = child.series.clone();
                group_of.extend(
                    child
                        .series
                        .iter()
                        .map(|(l, _)| aggr::group_key(l, grouping, *without).0)
                        .scan(HashMap::new(), |idx, k| {
                            let n = idx.len() as u32;
                            Some(*idx.entry(k).or_insert(n))
                        }),
                );
            } else {
                let mut idx: HashMap<String, u32> = HashMap::new();
                for (l, _) in &child.series {
                    let (k, gl) = aggr::group_key(l, grouping, *without);
                    let g = *idx.entry(k).or_insert_with(|| {
                        series.push((gl, false));
                        series.len() as u32 - 1
                    });
                    group_of.push(g);
                }
            }
            let ngroups = group_of.iter().map(|g| *g as usize + 1).max().unwrap_or(0);
            Some(Node {
                series,
                kind: Kind::Aggr {
                    op: *op,
                    param,
                    child: Box::new(child),
                    group_of,
                    child_out: Vec::new(),
                    floats: if topk {
                        Vec::new()
                    } else {
                        vec![Vec::new(); ngroups]
                    },
                    members: if topk {
                        vec![Vec::new(); ngroups]
                    } else {
                        Vec::new()
                    },
                    order: Vec::new(),
                    stamp: vec![0; ngroups],
                    step_no: 0,
                },
            })
        }
        _ => None,
    }
}

/// The ordering `topk`/`bottomk` sort a group's members by (NaN last).
fn topk_cmp(top: bool, a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => {
            let o = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
            if top {
                o.reverse()
            } else {
                o
            }
        }
    }
}

impl Node {
    /// True for an instant-vector selector (whose sample times a parent may read).
    pub(crate) fn is_select(&self) -> bool {
        matches!(self.kind, Kind::Select { .. })
    }

    /// Evaluates the plan at `ts`, appending its elements to `out` in the order the
    /// step-by-step evaluator would produce them.
    pub(crate) fn step(
        &mut self,
        ev: &mut Ev,
        ts: i64,
        out: &mut Vec<Point>,
    ) -> Result<(), EvalError> {
        match &mut self.kind {
            Kind::Select { src, cur } => {
                let t = src.time(ts);
                let from = t.saturating_sub(ev.opts.lookback_ms);
                let Some(data) = ev.data.get(&src.key) else {
                    return Ok(());
                };
                let before = out.len();
                for (i, s) in data.iter().enumerate() {
                    let fi = seek(&s.floats, &mut cur[i], t);
                    if fi > 0 {
                        let p = s.floats[fi - 1];
                        if p.t > from && !is_stale_nan(p.v) {
                            out.push((i as u32, p.t, p.v));
                        }
                    }
                }
                let n = out.len() - before;
                ev.add_selected(n)
            }
            Kind::RangeFn {
                src,
                func,
                range,
                apos,
                lo,
                hi,
            } => {
                let t = src.time(ts);
                let start = t - *range;
                // Range functions may annotate (`&mut Ev`) while reading the data: take it out
                // of the evaluator for the loop and put it back whatever happens.
                let Some(data) = ev.data.remove(&src.key) else {
                    return Ok(());
                };
                let mut n = 0usize;
                let mut res = Ok(());
                for (i, s) in data.iter().enumerate() {
                    if i % 4096 == 4095 {
                        if let Err(e) = ev.check_deadline() {
                            res = Err(e);
                            break;
                        }
                    }
                    let a = seek(&s.floats, &mut lo[i], start);
                    let b = seek(&s.floats, &mut hi[i], t);
                    if a >= b {
                        continue;
                    }
                    if ev.samples.saturating_add(n + (b - a)) > ev.opts.max_samples {
                        res = Err(too_many_samples());
                        break;
                    }
                    n += b - a;
                    let view = SeriesView {
                        labels: &s.labels,
                        floats: &s.floats[a..b],
                        histograms: &[],
                        float_st: if s.float_st.len() == s.floats.len() {
                            &s.float_st[a..b]
                        } else {
                            &[]
                        },
                        hist_st: &[],
                    };
                    match crate::funcs::range_fn(ev, func, &view, &[], start, t, ts, apos) {
                        Ok(Some((v, None))) => out.push((i as u32, ts, v)),
                        Ok(_) => {}
                        Err(e) => {
                            res = Err(e);
                            break;
                        }
                    }
                }
                ev.data.insert(src.key, data);
                res?;
                ev.add_selected(n)
            }
            Kind::Aggr {
                op,
                param,
                child,
                group_of,
                child_out,
                floats,
                members,
                order,
                stamp,
                step_no,
            } => {
                child_out.clear();
                child.step(ev, ts, child_out)?;
                *step_no += 1;
                order.clear();
                let topk = matches!(op, AggOp::Topk | AggOp::Bottomk);
                for p in child_out.iter() {
                    let g = group_of[p.0 as usize] as usize;
                    if stamp[g] != *step_no {
                        stamp[g] = *step_no;
                        order.push(g as u32);
                        if topk {
                            members[g].clear();
                        } else {
                            floats[g].clear();
                        }
                    }
                    if topk {
                        members[g].push(*p);
                    } else {
                        floats[g].push(p.2);
                    }
                }
                for &g in order.iter() {
                    if topk {
                        let k = if *param >= 1.0 {
                            param.min(1e9) as usize
                        } else {
                            0
                        };
                        let m = &mut members[g as usize];
                        let top = *op == AggOp::Topk;
                        m.sort_by(|a, b| topk_cmp(top, a.2, b.2));
                        m.truncate(k);
                        out.extend_from_slice(m);
                    } else if let Some(v) = aggr::agg_floats(*op, &floats[g as usize], *param) {
                        out.push((g, 0, v));
                    }
                }
                Ok(())
            }
        }
    }

    /// Evaluates the plan at `ts` as an instant vector, for a parent the evaluator handles.
    pub(crate) fn step_vector(&mut self, ev: &mut Ev, ts: i64) -> Result<Vec<VSample>, EvalError> {
        let mut pts = Vec::new();
        self.step(ev, ts, &mut pts)?;
        Ok(pts
            .into_iter()
            .map(|(i, t, f)| {
                let (labels, drop_name) = &self.series[i as usize];
                VSample {
                    labels: labels.clone(),
                    t,
                    f,
                    h: None,
                    drop_name: *drop_name,
                }
            })
            .collect())
    }
}

/// Finds the largest sub-expressions of `e` that compile to plans and registers them with the
/// evaluator, which then answers them from the plan. Not below subqueries (evaluated at other
/// times), and a bare selector only at the top (`timestamp()` reads its sample times).
pub(crate) fn install(ev: &mut Ev, e: &Expr, top: bool) {
    if let Some(n) = compile(ev, e) {
        if top || !n.is_select() {
            ev.plans.insert(e as *const Expr as usize, n);
            return;
        }
    }
    match e {
        Expr::Paren(x) | Expr::Neg(x) => install(ev, x, false),
        Expr::Binary { lhs, rhs, .. } => {
            install(ev, lhs, false);
            install(ev, rhs, false);
        }
        Expr::Aggregate { expr, param, .. } => {
            if let Some(p) = param {
                install(ev, p, false);
            }
            install(ev, expr, false);
        }
        Expr::Call { args, .. } => {
            for a in args {
                install(ev, a, false);
            }
        }
        _ => {}
    }
}
