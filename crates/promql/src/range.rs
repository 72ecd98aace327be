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
use crate::engine::{key, strip_stale, too_many_samples, Ev, LazySel};
use crate::error::EvalError;
use crate::querier::SeriesData;
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

/// Results of a leaf (selector or range function) for a block of consecutive steps, computed
/// series by series (each series' samples are read while in cache for all steps of the block,
/// like Prometheus' series-at-a-time range evaluation) and handed out step by step.
#[derive(Default)]
struct Block {
    /// First step's time, step width, steps in the block, the next step to hand out.
    t0: i64,
    step: i64,
    n: usize,
    next: usize,
    /// Per step: the elements, and the samples the selector read (for the sample limit).
    pts: Vec<Vec<Point>>,
    read: Vec<usize>,
}

/// Output elements a block may hold (all steps together); bounds its memory to a few tens of MB.
const BLOCK_POINTS: usize = 1 << 20;
/// The same for leaves reading series lazily, which decode each series' window once per block
/// (from the start of its first chunk): fewer, larger blocks (at most ~200 MB of elements)
/// decode each chunk fewer times; the series' samples themselves are not held.
const BLOCK_POINTS_LAZY: usize = 1 << 23;
/// At most this many steps per block.
const BLOCK_STEPS: usize = 64;

impl Block {
    /// Whether `ts` is the next step this block has computed.
    fn has(&self, ts: i64) -> bool {
        self.next < self.n && self.t0 + self.step * self.next as i64 == ts
    }

    /// Starts a block at `ts` for a node with `nseries` output series: as many grid steps
    /// (of the query's step, up to its end) as the memory budget allows.
    fn start(&mut self, ev: &Ev, ts: i64, nseries: usize, budget: usize) {
        let step = ev.dctx.step_ms;
        let left = if step > 0 && ts <= ev.end {
            ((ev.end - ts) / step) as usize + 1
        } else {
            1
        };
        let n = left.min(BLOCK_STEPS).min((budget / nseries.max(1)).max(1));
        self.t0 = ts;
        self.step = step;
        self.n = n;
        self.next = 0;
        self.pts.resize_with(n, Vec::new);
        self.read.clear();
        self.read.resize(n, 0);
        for p in &mut self.pts[..n] {
            p.clear();
        }
    }

    fn time(&self, k: usize) -> i64 {
        self.t0 + self.step * k as i64
    }
}

enum Kind {
    /// An instant-vector selector (not `smoothed`/`anchored`).
    Select {
        src: Source,
        /// Per series: index of the first sample after the last evaluation time.
        cur: Vec<usize>,
        block: Block,
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
        block: Block,
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

/// What compiling needs to know about a selector's series, read in full or not.
struct SelInfo {
    labels: Vec<Labels>,
    /// Some series may hold histograms, or start timestamps.
    hist: bool,
    st: bool,
}

fn sel_info(ev: &Ev, k: usize) -> Option<SelInfo> {
    if let Some(l) = ev.lazy.get(&k) {
        let set = &l.set;
        return Some(SelInfo {
            labels: (0..set.len()).map(|i| set.labels(i).clone()).collect(),
            hist: (0..set.len()).any(|i| set.may_have_histograms(i)),
            st: (0..set.len()).any(|i| set.may_have_start_timestamps(i)),
        });
    }
    let data = ev.data.get(&k)?;
    Some(SelInfo {
        labels: data.iter().map(|s| s.labels.clone()).collect(),
        hist: data.iter().any(|s| !s.histograms.is_empty()),
        st: data
            .iter()
            .any(|s| !s.hist_st.is_empty() || !s.float_st.is_empty()),
    })
}

/// Compiles `e` into a plan, if the whole sub-expression can be one. Needs the series selected.
pub(crate) fn compile(ev: &Ev, e: &Expr) -> Option<Node> {
    match e {
        Expr::Paren(x) => compile(ev, x),
        Expr::Vector(vs) if !vs.smoothed && !vs.anchored => {
            let info = sel_info(ev, key(vs))?;
            if info.hist {
                return None;
            }
            let n = info.labels.len();
            Some(Node {
                series: info.labels.into_iter().map(|l| (l, false)).collect(),
                kind: Kind::Select {
                    src: Source::new(ev, vs),
                    cur: vec![0; n],
                    block: Block::default(),
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
            let info = sel_info(ev, key(vs))?;
            // Float data without start timestamps: then range functions never annotate, so
            // computing several steps ahead cannot reorder annotations.
            if info.hist || info.st {
                return None;
            }
            let keep_name = matches!(func.name, "last_over_time" | "first_over_time");
            let n = info.labels.len();
            Some(Node {
                // Selected series never have `drop_name` set.
                series: info.labels.into_iter().map(|l| (l, !keep_name)).collect(),
                kind: Kind::RangeFn {
                    src: Source::new(ev, vs),
                    func: func.name,
                    range: range.eval_ms(ev.dctx),
                    apos: ev.pos_of(&args[0]),
                    lo: vec![0; n],
                    hi: vec![0; n],
                    block: Block::default(),
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
            let topk = matches!(op, AggOp::Topk | AggOp::Bottomk);
            let (group_of, group_labels) = group_ids(&child.series, grouping, *without);
            let series = if topk {
                child.series.clone()
            } else {
                group_labels.into_iter().map(|l| (l, false)).collect()
            };
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

/// The group of each series (numbered in order of first appearance) and each group's labels,
/// as [`aggr::group_key`] defines them. For `by`, series are keyed by their grouping labels'
/// values, looked up without building a key string and label set per series.
fn group_ids(
    series: &[(Labels, bool)],
    grouping: &[String],
    without: bool,
) -> (Vec<u32>, Vec<Labels>) {
    let mut group_of = Vec::with_capacity(series.len());
    let mut labels = Vec::new();
    if without {
        let mut idx: HashMap<String, u32> = HashMap::new();
        for (l, _) in series {
            let (k, gl) = aggr::group_key(l, grouping, true);
            let g = *idx.entry(k).or_insert_with(|| {
                labels.push(gl);
                labels.len() as u32 - 1
            });
            group_of.push(g);
        }
        return (group_of, labels);
    }
    // Absent and empty are the same value: label sets hold no empty values.
    let mut idx: HashMap<Vec<&str>, u32> = HashMap::new();
    let mut key: Vec<&str> = Vec::with_capacity(grouping.len());
    for (l, _) in series {
        key.clear();
        key.extend(grouping.iter().map(|g| l.get(g).unwrap_or("")));
        let g = match idx.get(&key) {
            Some(g) => *g,
            None => {
                labels.push(aggr::group_key(l, grouping, false).1);
                let g = labels.len() as u32 - 1;
                idx.insert(key.clone(), g);
                g
            }
        };
        group_of.push(g);
    }
    (group_of, labels)
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
    /// The selectors (by [`key`]) the plan reads.
    fn leaf_keys(&self, out: &mut Vec<usize>) {
        match &self.kind {
            Kind::Select { src, .. } | Kind::RangeFn { src, .. } => out.push(src.key),
            Kind::Aggr { child, .. } => child.leaf_keys(out),
        }
    }

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
            Kind::Select { src, cur, block } => {
                if !block.has(ts) && ev.lazy.contains_key(&src.key) {
                    if let Some(l) = ev.lazy.get(&src.key) {
                        block.start(ev, ts, l.set.len(), BLOCK_POINTS_LAZY);
                        select_block_lazy(ev, l, src, cur, block)?;
                    }
                } else if !block.has(ts) {
                    let Some(data) = ev.data.get(&src.key) else {
                        return Ok(());
                    };
                    block.start(ev, ts, data.len(), BLOCK_POINTS);
                    let lb = ev.opts.lookback_ms;
                    for (i, s) in data.iter().enumerate() {
                        for k in 0..block.n {
                            let t = src.time(block.time(k));
                            let fi = seek(&s.floats, &mut cur[i], t);
                            if fi > 0 {
                                let p = s.floats[fi - 1];
                                if p.t > t.saturating_sub(lb) && !is_stale_nan(p.v) {
                                    block.pts[k].push((i as u32, p.t, p.v));
                                }
                            }
                        }
                    }
                }
                let k = block.next;
                block.next += 1;
                let n = block.pts[k].len();
                out.append(&mut block.pts[k]);
                ev.add_selected(n)
            }
            Kind::RangeFn {
                src,
                func,
                range,
                apos,
                lo,
                hi,
                block,
            } => {
                if !block.has(ts) && ev.lazy.contains_key(&src.key) {
                    // Range functions take `&mut Ev`: take the series out of the evaluator
                    // for the loop and put them back whatever happens.
                    if let Some(l) = ev.lazy.remove(&src.key) {
                        block.start(ev, ts, l.set.len(), BLOCK_POINTS_LAZY);
                        let res = range_block_lazy(ev, &l, src, func, *range, apos, lo, hi, block);
                        ev.lazy.insert(src.key, l);
                        res?;
                    }
                } else if !block.has(ts) {
                    // Range functions take `&mut Ev`: take the data out of the evaluator for
                    // the loop and put it back whatever happens.
                    let Some(data) = ev.data.remove(&src.key) else {
                        return Ok(());
                    };
                    block.start(ev, ts, data.len(), BLOCK_POINTS);
                    let res = range_block(ev, &data, src, func, *range, apos, lo, hi, block);
                    ev.data.insert(src.key, data);
                    res?;
                }
                let k = block.next;
                block.next += 1;
                // The evaluator checks the limit before copying a window; nothing was copied.
                if ev.samples.saturating_add(block.read[k]) > ev.opts.max_samples {
                    return Err(too_many_samples());
                }
                out.append(&mut block.pts[k]);
                ev.add_selected(block.read[k])
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
                        if k == 0 {
                        } else if k < m.len() {
                            // Only the first k of the stable sort are kept: select them with
                            // ties broken by position (what a stable sort keeps), then order
                            // just those, instead of sorting the whole group.
                            let cmp = |a: &(usize, Point), b: &(usize, Point)| {
                                topk_cmp(top, a.1 .2, b.1 .2).then(a.0.cmp(&b.0))
                            };
                            let mut v: Vec<(usize, Point)> =
                                m.iter().copied().enumerate().collect();
                            v.select_nth_unstable_by(k - 1, cmp);
                            v.truncate(k);
                            v.sort_unstable_by(cmp);
                            out.extend(v.into_iter().map(|x| x.1));
                        } else {
                            m.sort_by(|a, b| topk_cmp(top, a.2, b.2));
                            out.extend_from_slice(m);
                        }
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

/// Computes a block of a range function, series by series.
#[allow(clippy::too_many_arguments)]
fn range_block(
    ev: &mut Ev,
    data: &[crate::value::Series],
    src: &Source,
    func: &str,
    range: i64,
    apos: &str,
    lo: &mut [usize],
    hi: &mut [usize],
    block: &mut Block,
) -> Result<(), EvalError> {
    for (i, s) in data.iter().enumerate() {
        if i % 4096 == 4095 {
            ev.check_deadline()?;
        }
        range_series(
            ev, i, &s.labels, &s.floats, src, func, range, apos, &mut lo[i], &mut hi[i], block,
        )?;
    }
    Ok(())
}

/// The time window `[lo, hi]` a block reads: from the first step's time minus `back` to the
/// last step's time, inside what was selected.
fn block_window(l: &LazySel, src: &Source, block: &Block, back: i64) -> (i64, i64) {
    let a = src.time(block.time(0));
    let b = src.time(block.time(block.n.saturating_sub(1)));
    ((a.min(b) - back).max(l.lo), a.max(b).min(l.hi))
}

/// Like [`range_block`] for series not read yet: each series' window for the block is read
/// into one reused buffer, evaluated for every step of the block, and dropped.
#[allow(clippy::too_many_arguments)]
fn range_block_lazy(
    ev: &mut Ev,
    l: &LazySel,
    src: &Source,
    func: &str,
    range: i64,
    apos: &str,
    lo: &mut [usize],
    hi: &mut [usize],
    block: &mut Block,
) -> Result<(), EvalError> {
    let (wlo, whi) = block_window(l, src, block, range);
    let mut buf = SeriesData::default();
    for i in 0..l.set.len() {
        if i % 1024 == 1023 {
            ev.check_deadline()?;
        }
        l.set
            .read(i, wlo, whi, &mut buf)
            .map_err(|e| EvalError::Storage(e.0))?;
        if buf.floats.iter().any(|p| is_stale_nan(p.v)) {
            strip_stale(&mut buf.floats, &mut buf.float_st);
        }
        lo[i] = 0;
        hi[i] = 0;
        range_series(
            ev,
            i,
            l.set.labels(i),
            &buf.floats,
            src,
            func,
            range,
            apos,
            &mut lo[i],
            &mut hi[i],
            block,
        )?;
    }
    Ok(())
}

/// Like the loaded-data loop of [`Kind::Select`] for series not read yet: each series'
/// window for the block (back to the lookback) is read into one reused buffer.
fn select_block_lazy(
    ev: &Ev,
    l: &LazySel,
    src: &Source,
    cur: &mut [usize],
    block: &mut Block,
) -> Result<(), EvalError> {
    let lb = ev.opts.lookback_ms;
    let (wlo, whi) = block_window(l, src, block, lb);
    let mut buf = SeriesData::default();
    for (i, c) in cur.iter_mut().enumerate().take(l.set.len()) {
        if i % 1024 == 1023 {
            ev.check_deadline()?;
        }
        l.set
            .read(i, wlo, whi, &mut buf)
            .map_err(|e| EvalError::Storage(e.0))?;
        *c = 0;
        for k in 0..block.n {
            let t = src.time(block.time(k));
            let fi = seek(&buf.floats, c, t);
            if fi > 0 {
                let p = buf.floats[fi - 1];
                if p.t > t.saturating_sub(lb) && !is_stale_nan(p.v) {
                    block.pts[k].push((i as u32, p.t, p.v));
                }
            }
        }
    }
    Ok(())
}

/// One series' values of a range function at every step of a block.
#[allow(clippy::too_many_arguments)]
fn range_series(
    ev: &mut Ev,
    i: usize,
    labels: &Labels,
    floats: &[Sample],
    src: &Source,
    func: &str,
    range: i64,
    apos: &str,
    lo: &mut usize,
    hi: &mut usize,
    block: &mut Block,
) -> Result<(), EvalError> {
    for k in 0..block.n {
        let ts = block.time(k);
        let t = src.time(ts);
        let start = t - range;
        let a = seek(floats, lo, start);
        let b = seek(floats, hi, t);
        if a >= b {
            continue;
        }
        block.read[k] += b - a;
        let view = SeriesView {
            labels,
            floats: &floats[a..b],
            histograms: &[],
            float_st: &[],
            hist_st: &[],
        };
        if let Some((v, None)) = crate::funcs::range_fn(ev, func, &view, &[], start, t, ts, apos)? {
            block.pts[k].push((i as u32, ts, v));
        }
    }
    Ok(())
}

/// Finds the largest sub-expressions of `e` that compile to plans and registers them with the
/// evaluator, which then answers them from the plan. Not below subqueries (evaluated at other
/// times), and a bare selector only at the top (`timestamp()` reads its sample times).
pub(crate) fn install(ev: &mut Ev, e: &Expr, top: bool) {
    if let Some(n) = compile(ev, e) {
        if top || !n.is_select() {
            let mut keys = Vec::new();
            n.leaf_keys(&mut keys);
            ev.plan_keys.extend(keys);
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
