//! The evaluator. A query is evaluated step by step: every selector's series are selected once
//! for the whole query range (compiled plans then read them series by series, only for the
//! windows they need; everything else is read in full before evaluation), then the expression tree is evaluated at each step timestamp as an
//! instant query, the way Prometheus defines range queries. Limits (timeout, samples, points per
//! series) surface as typed [`EvalError`]s.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sextant_model::{is_stale_nan, Labels, Sample, METRIC_NAME};

use crate::ast::*;
use crate::error::{Error, EvalError};
use crate::querier::{Querier, SeriesData};
use crate::value::{QueryResult, QueryStats, Series, VSample, Value};

/// Engine settings; the defaults are Prometheus'.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (5m).
    pub lookback_ms: i64,
    /// Wall-clock limit of one query.
    pub timeout: Duration,
    /// Maximum samples held by one evaluation step (Prometheus' `query.max-samples`).
    pub max_samples: usize,
    /// Maximum points per series of a range query (11,000).
    pub max_points_per_series: i64,
    /// Step of subqueries written without one (`[5m:]`).
    pub default_subquery_step_ms: i64,
    /// Answer the common shapes (selectors, range functions, aggregations of them) with
    /// compiled whole-range plans; off, everything is evaluated step by step (same results).
    pub plans: bool,
    /// Set by the caller (e.g. when the HTTP client went away) to stop the evaluation at its
    /// next check with a `canceled` error.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_ms: 300_000,
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            max_points_per_series: 11_000,
            default_subquery_step_ms: 60_000,
            plans: true,
            cancel: None,
        }
    }
}

/// Evaluates parsed PromQL against a [`Querier`].
#[derive(Clone, Debug, Default)]
pub struct Engine {
    pub opts: EngineOptions,
}

/// An intermediate value during evaluation.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Scalar(f64),
    Str(String),
    Vector(Vec<VSample>),
    Matrix(Vec<Series>),
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    /// Parses and evaluates `expr` at one instant `t` (milliseconds since the epoch), like
    /// `/api/v1/query`.
    pub fn instant(&self, q: &dyn Querier, expr: &str, t: i64) -> Result<QueryResult, Error> {
        let e = crate::parser::parse(expr)?;
        Ok(self.instant_expr(q, &e, Some(expr), t)?)
    }

    /// Parses and evaluates `expr` from `start` to `end` (inclusive) every `step` milliseconds,
    /// like `/api/v1/query_range`. The result is always a matrix.
    pub fn range(
        &self,
        q: &dyn Querier,
        expr: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryResult, Error> {
        // Prometheus checks the parameters before parsing the query.
        check_range_params(&self.opts, start, end, step)?;
        let e = crate::parser::parse(expr)?;
        Ok(self.range_expr(q, &e, Some(expr), start, end, step)?)
    }

    /// Evaluates a parsed expression at one instant. `source` is the query text, used to give
    /// annotations a line and column.
    pub fn instant_expr(
        &self,
        q: &dyn Querier,
        expr: &Expr,
        source: Option<&str>,
        t: i64,
    ) -> Result<QueryResult, EvalError> {
        let mut ev = Ev::new(q, &self.opts, t, t, 0);
        ev.source = source.map(str::to_string);
        ev.load(expr)?;
        if self.opts.plans {
            crate::range::install(&mut ev, expr, true);
            ev.materialize_rest()?;
        }
        let v = ev.eval(expr, t)?;
        let value = match v {
            Val::Scalar(v) => Value::Scalar { t, v },
            Val::Str(s) => Value::String { t, s },
            Val::Vector(vs) => {
                let mut vs = finish_vector(vs)?;
                for s in &mut vs {
                    s.t = t;
                }
                Value::Vector(vs)
            }
            Val::Matrix(mut m) => {
                for s in &mut m {
                    if s.drop_name {
                        drop_name_labels(&mut s.labels);
                        s.drop_name = false;
                    }
                }
                m.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(m)
            }
        };
        Ok(QueryResult {
            value,
            stats: ev.stats(),
            warnings: ev.warnings,
            infos: ev.infos,
        })
    }

    /// Evaluates a parsed expression as a range query; see [`Engine::range`].
    pub fn range_expr(
        &self,
        q: &dyn Querier,
        expr: &Expr,
        source: Option<&str>,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryResult, EvalError> {
        check_range_params(&self.opts, start, end, step)?;
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            t => {
                return Err(EvalError::BadData(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                t.long_name()
            )))
            }
        }
        let mut ev = Ev::new(q, &self.opts, start, end, step);
        ev.source = source.map(str::to_string);
        ev.range_query = true;
        ev.load(expr)?;
        if self.opts.plans {
            if let Some(plan) = crate::range::compile(&ev, expr) {
                if let Some(r) = range_plan(&mut ev, plan, start, end, step)? {
                    return Ok(r);
                }
            }
            crate::range::install(&mut ev, expr, true);
            ev.materialize_rest()?;
        }
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut out: Vec<Series> = Vec::new();
        // Like Prometheus, the points of the result count towards the sample limit while the
        // samples of one step are released after it.
        let mut points = 0usize;
        let mut t = start;
        while t <= end {
            ev.check_deadline()?;
            ev.samples = points;
            match ev.eval(expr, t)? {
                Val::Scalar(v) => {
                    points += 1;
                    push_point(&mut index, &mut out, Labels::empty(), false, t, v, None)
                }
                Val::Vector(vs) => {
                    let vs = finish_vector(vs)?;
                    points += vs.len();
                    for s in vs {
                        push_point(
                            &mut index,
                            &mut out,
                            s.labels,
                            false,
                            t,
                            s.f,
                            s.h.map(|h| *h),
                        );
                    }
                }
                _ => {}
            }
            ev.samples = 0;
            ev.add_samples(points)?;
            t += step;
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(QueryResult {
            value: Value::Matrix(out),
            stats: ev.stats(),
            warnings: ev.warnings,
            infos: ev.infos,
        })
    }
}

/// Runs a range query whose whole expression compiled to a plan, collecting points by series
/// index. `None` (before evaluating anything) when the output series would not have distinct
/// label sets once names are dropped: then the evaluator's per-step checks decide.
fn range_plan(
    ev: &mut Ev,
    mut plan: crate::range::Node,
    start: i64,
    end: i64,
    step: i64,
) -> Result<Option<QueryResult>, EvalError> {
    let labels: Vec<Labels> = plan
        .series
        .iter()
        .map(|(l, dn)| {
            let mut l = l.clone();
            if *dn {
                drop_name_labels(&mut l);
            }
            l
        })
        .collect();
    let mut seen = std::collections::HashSet::with_capacity(labels.len());
    if !labels.iter().all(|l| seen.insert(l)) {
        return Ok(None);
    }
    drop(seen);
    let steps = ((end - start) / step + 1) as usize;
    let mut floats: Vec<Vec<Sample>> = vec![Vec::new(); labels.len()];
    let mut pts = Vec::new();
    // The same sample accounting as the step loop of `Engine::range_expr`.
    let mut points = 0usize;
    let mut t = start;
    while t <= end {
        ev.check_deadline()?;
        ev.samples = points;
        pts.clear();
        plan.step(ev, t, &mut pts)?;
        points += pts.len();
        for &(i, _, f) in &pts {
            let v = &mut floats[i as usize];
            if v.capacity() == 0 {
                v.reserve_exact(steps.min(64));
            }
            v.push(Sample::new(t, f));
        }
        ev.samples = 0;
        ev.add_samples(points)?;
        t += step;
    }
    let mut out: Vec<Series> = labels
        .into_iter()
        .zip(floats)
        .filter(|(_, f)| !f.is_empty())
        .map(|(labels, floats)| Series {
            labels,
            floats,
            ..Default::default()
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(Some(QueryResult {
        value: Value::Matrix(out),
        stats: ev.stats(),
        warnings: std::mem::take(&mut ev.warnings),
        infos: std::mem::take(&mut ev.infos),
    }))
}

/// Rejects range-query parameters the way Prometheus' API does.
fn check_range_params(
    opts: &EngineOptions,
    start: i64,
    end: i64,
    step: i64,
) -> Result<(), EvalError> {
    if end < start {
        return Err(EvalError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    if step <= 0 {
        return Err(EvalError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    // Prometheus allows `(end - start) / step` up to the limit (so one more point than that).
    if (end as i128 - start as i128) / step as i128 > opts.max_points_per_series as i128 {
        return Err(EvalError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    Ok(())
}

/// Removes staleness markers from `floats`, and the start timestamps that belong to them.
pub(crate) fn strip_stale(floats: &mut Vec<Sample>, st: &mut Vec<i64>) {
    if st.len() == floats.len() {
        let mut k = 0;
        st.retain(|_| {
            k += 1;
            !is_stale_nan(floats[k - 1].v)
        });
    } else {
        st.clear();
    }
    floats.retain(|p| !is_stale_nan(p.v));
}

fn push_point(
    index: &mut HashMap<Labels, usize>,
    out: &mut Vec<Series>,
    labels: Labels,
    drop_name: bool,
    t: i64,
    f: f64,
    h: Option<sextant_model::FloatHistogram>,
) {
    let i = match index.get(&labels) {
        Some(i) => *i,
        None => {
            out.push(Series {
                labels: labels.clone(),
                drop_name,
                ..Default::default()
            });
            index.insert(labels, out.len() - 1);
            out.len() - 1
        }
    };
    match h {
        Some(h) => out[i].histograms.push((t, h)),
        None => out[i].floats.push(Sample::new(t, f)),
    }
}

pub(crate) fn too_many_samples() -> EvalError {
    EvalError::Execution(
        "query processing would load too many samples into memory in query execution".into(),
    )
}

/// Applies delayed name removal and rejects duplicate label sets.
pub(crate) fn finish_vector(mut vs: Vec<VSample>) -> Result<Vec<VSample>, EvalError> {
    for s in &mut vs {
        if s.drop_name {
            drop_name_labels(&mut s.labels);
            s.drop_name = false;
        }
    }
    check_unique(&vs)?;
    Ok(vs)
}

/// Removes the metric name and the type/unit labels that belong to it.
pub(crate) fn drop_name_labels(l: &mut Labels) {
    l.set(METRIC_NAME, "");
    l.set("__type__", "");
    l.set("__unit__", "");
}

pub(crate) fn check_unique(vs: &[VSample]) -> Result<(), EvalError> {
    if vs.len() > 1 {
        let mut seen = std::collections::HashSet::with_capacity(vs.len());
        for s in vs {
            if !seen.insert(&s.labels) {
                return Err(EvalError::Execution(
                    "vector cannot contain metrics with the same labelset".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Formats labels the way Go's `labels.Labels.String()` does: `{a="b", c="d"}`.
pub(crate) fn go_labels(l: &Labels) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

pub(crate) struct Ev<'a> {
    q: &'a dyn Querier,
    pub(crate) opts: &'a EngineOptions,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) dctx: DurCtx,
    bounds: HashMap<usize, (i64, i64)>,
    /// Selectors' samples read in full for the whole query, by selector (see [`key`]).
    pub(crate) data: HashMap<usize, Vec<Series>>,
    /// Selectors selected but not read yet (labels only): plan leaves read them series by
    /// series for the window of each block of steps; the rest are read in full before
    /// evaluation (see [`Ev::materialize_rest`]).
    pub(crate) lazy: HashMap<usize, LazySel<'a>>,
    /// Selectors in walk order, for reading them in the same order.
    order: Vec<usize>,
    /// Selectors read by installed plans (left lazy).
    pub(crate) plan_keys: std::collections::HashSet<usize>,
    /// Compiled plans that answer sub-expressions, by the expression's address.
    pub(crate) plans: HashMap<usize, crate::range::Node>,
    deadline: Instant,
    pub(crate) warnings: Vec<String>,
    pub(crate) infos: Vec<String>,
    /// Samples held right now (Prometheus' `currentSamples`).
    pub(crate) samples: usize,
    /// The most samples held at once.
    peak_samples: usize,
    /// Samples read by selectors over the whole query (Prometheus' `totalQueryableSamples`).
    total_samples: u64,
    /// The query text, to turn byte offsets into line/column.
    source: Option<String>,
    /// True for range queries (some annotations only apply there).
    pub(crate) range_query: bool,
    /// Above zero while evaluating below histogram_count/sum/avg (and not below a subquery
    /// or histogram_quantile/fraction), where Prometheus decodes only histogram statistics.
    pub(crate) stats_decoding: u32,
    /// Byte offset where the binary expression being evaluated starts (for annotations).
    pub(crate) bin_start: usize,
}

/// The byte offset where an expression starts.
pub(crate) fn expr_pos(e: &Expr) -> usize {
    match e {
        Expr::Vector(vs) => vs.pos,
        Expr::Matrix(m) => m.vs.pos,
        Expr::Subquery(s) => expr_pos(&s.expr),
        Expr::Paren(x) => expr_pos(x).saturating_sub(1),
        Expr::Neg(x) => expr_pos(x).saturating_sub(1),
        Expr::Binary { lhs, .. } => expr_pos(lhs),
        Expr::Aggregate { pos, .. } | Expr::Call { pos, .. } => *pos,
        _ => 0,
    }
}

/// A selector's series, selected but not read (see [`Ev::load`]).
pub(crate) struct LazySel<'a> {
    pub(crate) set: Box<dyn crate::querier::SeriesSet + 'a>,
    pub(crate) matrix: bool,
    /// The range selected: every read stays inside it.
    pub(crate) lo: i64,
    pub(crate) hi: i64,
}

pub(crate) fn key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

impl<'a> Ev<'a> {
    fn new(q: &'a dyn Querier, opts: &'a EngineOptions, start: i64, end: i64, step: i64) -> Self {
        Ev {
            q,
            opts,
            start,
            end,
            dctx: DurCtx {
                step_ms: step,
                range_ms: end - start,
                start_ms: start,
                end_ms: end,
            },
            bounds: HashMap::new(),
            data: HashMap::new(),
            lazy: HashMap::new(),
            order: Vec::new(),
            plan_keys: std::collections::HashSet::new(),
            plans: HashMap::new(),
            deadline: Instant::now() + opts.timeout,
            warnings: Vec::new(),
            infos: Vec::new(),
            samples: 0,
            peak_samples: 0,
            total_samples: 0,
            source: None,
            range_query: false,
            stats_decoding: 0,
            bin_start: 0,
        }
    }

    /// The `line:col` of an expression, for annotations.
    pub(crate) fn pos_of(&self, e: &Expr) -> String {
        let off = expr_pos(e);
        match &self.source {
            Some(src) => crate::lexer::line_col(src, off).to_string(),
            None => format!("1:{}", off + 1),
        }
    }

    /// Selects straight from storage (used by `info()`, whose lookups depend on the data).
    pub(crate) fn select_raw(
        &self,
        matchers: &[sextant_model::Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<crate::querier::SeriesData>, EvalError> {
        self.q
            .select(matchers, mint, maxt)
            .map_err(|e| EvalError::Storage(e.0))
    }

    /// The time a sub-expression's samples come from, after `@` and `offset`.
    pub(crate) fn data_time(&self, e: &Expr, ts: i64) -> i64 {
        match e.unparen() {
            Expr::Vector(vs) => self.mod_time(&vs.at, &vs.offset, ts),
            Expr::Matrix(m) => self.mod_time(&m.vs.at, &m.vs.offset, ts),
            Expr::Subquery(s) => self.data_time(&s.expr, self.mod_time(&s.at, &s.offset, ts)),
            Expr::Call { args, .. } => match args
                .iter()
                .find(|a| matches!(a.value_type(), ValueType::Vector | ValueType::Matrix))
            {
                Some(a) => self.data_time(a, ts),
                None => ts,
            },
            Expr::Aggregate { expr, .. } => self.data_time(expr, ts),
            Expr::Binary { lhs, .. } => self.data_time(lhs, ts),
            Expr::Neg(x) => self.data_time(x, ts),
            _ => ts,
        }
    }

    /// The `line:col` of a byte offset.
    pub(crate) fn pos_at(&self, off: usize) -> String {
        match &self.source {
            Some(src) => crate::lexer::line_col(src, off).to_string(),
            None => format!("1:{}", off + 1),
        }
    }

    pub(crate) fn warn(&mut self, msg: String) {
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    pub(crate) fn info(&mut self, msg: String) {
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }

    /// The evaluation time of a selector or subquery after `@` and `offset`.
    fn mod_time(&self, at: &Option<AtModifier>, offset: &Option<DurExpr>, ts: i64) -> i64 {
        let t = match at {
            Some(AtModifier::Time(t)) => *t,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            None => ts,
        };
        t - offset.as_ref().map_or(0, |o| o.eval_ms(self.dctx))
    }

    fn add_bounds(&mut self, vs: &VectorSelector, lo: i64, hi: i64) {
        let e = self.bounds.entry(key(vs)).or_insert((lo, hi));
        e.0 = e.0.min(lo);
        e.1 = e.1.max(hi);
    }

    fn collect(&mut self, e: &Expr, lo: i64, hi: i64) {
        match e {
            Expr::Vector(vs) => {
                let (a, b) = (
                    self.mod_time(&vs.at, &vs.offset, lo),
                    self.mod_time(&vs.at, &vs.offset, hi),
                );
                let after = if vs.smoothed {
                    self.opts.lookback_ms
                } else {
                    0
                };
                self.add_bounds(vs, a - self.opts.lookback_ms, b + after);
            }
            Expr::Matrix(m) => {
                let (a, b) = (
                    self.mod_time(&m.vs.at, &m.vs.offset, lo),
                    self.mod_time(&m.vs.at, &m.vs.offset, hi),
                );
                let r = m.range.eval_ms(self.dctx);
                let extra = if m.anchored || m.smoothed {
                    self.opts.lookback_ms
                } else {
                    0
                };
                let after = if m.smoothed { self.opts.lookback_ms } else { 0 };
                self.add_bounds(&m.vs, a - r - extra, b + after);
            }
            Expr::Subquery(s) => {
                let (a, b) = (
                    self.mod_time(&s.at, &s.offset, lo),
                    self.mod_time(&s.at, &s.offset, hi),
                );
                let r = s.range.eval_ms(self.dctx);
                let step = self.sub_step(s);
                self.collect(&s.expr, a - r - step, b);
            }
            Expr::Paren(e) | Expr::Neg(e) => self.collect(e, lo, hi),
            Expr::Binary { lhs, rhs, .. } => {
                self.collect(lhs, lo, hi);
                self.collect(rhs, lo, hi);
            }
            Expr::Aggregate { expr, param, .. } => {
                if let Some(p) = param {
                    self.collect(p, lo, hi);
                }
                self.collect(expr, lo, hi);
            }
            Expr::Call { args, .. } => {
                for a in args {
                    self.collect(a, lo, hi);
                }
            }
            _ => {}
        }
    }

    fn sub_step(&self, s: &Subquery) -> i64 {
        s.step
            .as_ref()
            .map(|d| d.eval_ms(self.dctx))
            .filter(|s| *s > 0)
            .unwrap_or(self.opts.default_subquery_step_ms)
    }

    /// Selects every selector's series for the whole query. Nothing is read yet unless
    /// plans are off or the selected chunks could hold more samples than the limit: then
    /// everything is read now and the limit checked exactly, as when all data stays loaded.
    fn load(&mut self, e: &Expr) -> Result<(), EvalError> {
        self.collect(e, self.start, self.end);
        let mut sels: Vec<(&VectorSelector, bool)> = Vec::new();
        e.walk(&mut |n| match n {
            Expr::Vector(vs) => sels.push((vs, false)),
            Expr::Matrix(m) => sels.push((&m.vs, true)),
            _ => {}
        });
        // Hints for downsampled reads: the function each selector is a direct argument of.
        // Selectors under subqueries or with extended-range modifiers get none.
        let mut hinted: HashMap<usize, crate::querier::SelectHints> = HashMap::new();
        let mut unhinted: std::collections::HashSet<usize> = std::collections::HashSet::new();
        e.walk(&mut |n| match n {
            Expr::Subquery(sq) => sq.expr.walk(&mut |m| match m {
                Expr::Vector(vs) => {
                    unhinted.insert(key(vs));
                }
                Expr::Matrix(ms) => {
                    unhinted.insert(key(&ms.vs));
                }
                _ => {}
            }),
            Expr::Call { func, args, .. } => {
                for a in args {
                    match a.unparen() {
                        Expr::Matrix(m) if !m.anchored && !m.smoothed => {
                            hinted.insert(
                                key(&m.vs),
                                crate::querier::SelectHints {
                                    func: Some(func.name),
                                    range: m.range.eval_ms(self.dctx),
                                    step: self.dctx.step_ms,
                                },
                            );
                        }
                        Expr::Vector(vs) => {
                            hinted.insert(
                                key(vs),
                                crate::querier::SelectHints {
                                    func: Some(func.name),
                                    range: 0,
                                    step: self.dctx.step_ms,
                                },
                            );
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        });
        let mut bound = 0usize;
        for (vs, matrix) in sels {
            let Some((lo, hi)) = self.bounds.get(&key(vs)).copied() else {
                continue;
            };
            self.check_deadline_in("query preparation")?;
            let k = key(vs);
            let hints = if unhinted.contains(&k) || (vs.smoothed && !matrix) {
                None
            } else if let Some(h) = hinted.get(&k) {
                Some(h.clone())
            } else if !matrix {
                Some(crate::querier::SelectHints {
                    func: None,
                    range: 0,
                    step: self.dctx.step_ms,
                })
            } else {
                None
            };
            let set = match hints {
                Some(h) => self.q.select_hinted(&vs.matchers, lo, hi, &h),
                None => self.q.select_lazy(&vs.matchers, lo, hi),
            }
            .map_err(|e| EvalError::Storage(e.0))?;
            bound = (0..set.len()).fold(bound, |b, i| b.saturating_add(set.max_samples(i)));
            self.order.push(key(vs));
            self.lazy.insert(
                key(vs),
                LazySel {
                    set,
                    matrix,
                    lo,
                    hi,
                },
            );
        }
        if !self.opts.plans || bound > self.opts.max_samples {
            self.materialize_rest()?;
        }
        Ok(())
    }

    /// Reads in full every selector no installed plan reads lazily.
    pub(crate) fn materialize_rest(&mut self) -> Result<(), EvalError> {
        let mut loaded = 0usize;
        for k in std::mem::take(&mut self.order) {
            if self.plan_keys.contains(&k) {
                self.order.push(k);
                continue;
            }
            let Some(l) = self.lazy.remove(&k) else {
                continue;
            };
            self.check_deadline_in("query preparation")?;
            let mut series: Vec<Series> = Vec::new();
            for i in 0..l.set.len() {
                let mut sd = SeriesData::default();
                l.set
                    .read(i, l.lo, l.hi, &mut sd)
                    .map_err(|e| EvalError::Storage(e.0))?;
                if sd.floats.is_empty() && sd.histograms.is_empty() {
                    continue;
                }
                // Everything read here stays in memory for the whole query.
                loaded += sd.floats.len() + sd.histograms.len();
                if loaded > self.opts.max_samples {
                    return Err(too_many_samples());
                }
                // Range selectors never see staleness markers: drop them once here
                // instead of at every step (windows are then plain slices).
                if l.matrix && sd.floats.iter().any(|p| is_stale_nan(p.v)) {
                    strip_stale(&mut sd.floats, &mut sd.float_st);
                }
                series.push(Series {
                    labels: l.set.labels(i).clone(),
                    floats: sd.floats,
                    histograms: sd
                        .histograms
                        .into_iter()
                        .map(|(t, h)| (t, h.to_float()))
                        .collect(),
                    drop_name: false,
                    float_st: sd.float_st,
                    hist_st: sd.hist_st,
                });
            }
            self.data.insert(k, series);
        }
        Ok(())
    }

    /// Fails once the query's time is up; called at every node, step and long loop.
    pub(crate) fn check_deadline(&self) -> Result<(), EvalError> {
        self.check_deadline_in("expression evaluation")
    }

    fn check_deadline_in(&self, stage: &str) -> Result<(), EvalError> {
        if let Some(c) = &self.opts.cancel {
            if c.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(EvalError::Canceled(stage.into()));
            }
        }
        if Instant::now() >= self.deadline {
            return Err(EvalError::Timeout(stage.into()));
        }
        Ok(())
    }

    /// Accounts for `n` more samples held in memory; fails past `max_samples`.
    pub(crate) fn add_samples(&mut self, n: usize) -> Result<(), EvalError> {
        self.samples = self.samples.saturating_add(n);
        self.peak_samples = self.peak_samples.max(self.samples);
        if self.samples > self.opts.max_samples {
            return Err(too_many_samples());
        }
        Ok(())
    }

    /// Like [`Ev::add_samples`], for samples read from storage by a selector.
    pub(crate) fn add_selected(&mut self, n: usize) -> Result<(), EvalError> {
        self.total_samples += n as u64;
        self.add_samples(n)
    }

    fn stats(&self) -> QueryStats {
        QueryStats {
            total_samples: self.total_samples,
            peak_samples: self.peak_samples,
        }
    }

    /// Instant-vector selection: the newest sample within the lookback window, unless stale.
    pub(crate) fn select_vector(
        &mut self,
        vs: &VectorSelector,
        ts: i64,
    ) -> Result<Vec<VSample>, EvalError> {
        let t = self.mod_time(&vs.at, &vs.offset, ts);
        let lb = self.opts.lookback_ms;
        let mut out = Vec::new();
        // Smoothed selection of histograms needs `&mut self` for annotations; the series are
        // collected here and interpolated after the loop.
        let mut smoothed_hists = Vec::new();
        if let Some(data) = self.data.get(&key(vs)) {
            for (i, s) in data.iter().enumerate() {
                if i % 4096 == 4095 {
                    self.check_deadline()?;
                }
                let fi = s.floats.partition_point(|p| p.t <= t);
                if vs.smoothed {
                    let hi = s.histograms.partition_point(|p| p.0 <= t);
                    let fprev = (fi > 0 && s.floats[fi - 1].t > t.saturating_sub(lb))
                        .then(|| s.floats[fi - 1].t);
                    let hprev =
                        (hi > 0 && s.histograms[hi - 1].0 > t.saturating_sub(lb)).then(|| hi - 1);
                    let prev_is_hist = match (fprev, hprev) {
                        (Some(ft), Some(h)) => s.histograms[h].0 > ft,
                        (None, Some(_)) => true,
                        _ => false,
                    };
                    let fnext = s
                        .floats
                        .get(fi)
                        .filter(|p| p.t < t.saturating_add(lb))
                        .map(|p| p.t);
                    let hnext = s
                        .histograms
                        .get(hi)
                        .filter(|p| p.0 < t.saturating_add(lb))
                        .map(|p| p.0);
                    let next_is_hist = match (fnext, hnext) {
                        (Some(ft), Some(ht)) => ht < ft,
                        (None, Some(_)) => true,
                        _ => false,
                    };
                    let has_prev = fprev.is_some() || hprev.is_some();
                    let has_next = fnext.is_some() || hnext.is_some();
                    if prev_is_hist || (has_prev && has_next && next_is_hist) {
                        let mixed = has_next && prev_is_hist != next_is_hist;
                        let pair = if mixed {
                            None
                        } else {
                            let next = if has_next {
                                s.histograms.get(hi).cloned()
                            } else {
                                None
                            };
                            Some((s.histograms[hi - 1].clone(), next))
                        };
                        smoothed_hists.push((s.labels.clone(), pair));
                        continue;
                    }
                }
                if vs.smoothed && fi > 0 && s.floats[fi - 1].t > t.saturating_sub(lb) {
                    let a = s.floats[fi - 1];
                    if is_stale_nan(a.v) {
                        continue;
                    }
                    let v = match s.floats.get(fi) {
                        Some(b) if a.t < t && b.t < t.saturating_add(lb) && !is_stale_nan(b.v) => {
                            a.v + (b.v - a.v) * (t - a.t) as f64 / (b.t - a.t) as f64
                        }
                        _ => a.v,
                    };
                    out.push(VSample {
                        labels: s.labels.clone(),
                        t,
                        f: v,
                        h: None,
                        drop_name: false,
                    });
                    continue;
                }
                let fcand = if fi > 0 && s.floats[fi - 1].t > t.saturating_sub(lb) {
                    Some(s.floats[fi - 1])
                } else {
                    None
                };
                let hi = s.histograms.partition_point(|p| p.0 <= t);
                let hcand = if hi > 0 && s.histograms[hi - 1].0 > t.saturating_sub(lb) {
                    Some(&s.histograms[hi - 1])
                } else {
                    None
                };
                match (fcand, hcand) {
                    (Some(f), h) if h.is_none_or(|h| h.0 < f.t) => {
                        if is_stale_nan(f.v) {
                            continue;
                        }
                        out.push(VSample {
                            labels: s.labels.clone(),
                            t: f.t,
                            f: f.v,
                            h: None,
                            drop_name: false,
                        });
                    }
                    (_, Some(h)) => out.push(VSample {
                        labels: s.labels.clone(),
                        t: h.0,
                        f: 0.0,
                        h: Some(Box::new(h.1.clone())),
                        drop_name: false,
                    }),
                    _ => {}
                }
            }
        }
        if !smoothed_hists.is_empty() {
            let p = self.pos_at(vs.pos);
            let mut extra = Vec::new();
            for (labels, pair) in smoothed_hists {
                let mname = labels.metric_name().unwrap_or("").to_string();
                let Some((a, next)) = pair else {
                    self.warn(format!("PromQL warning: encountered a mix of histograms and floats for metric name {mname:?} ({p})"));
                    continue;
                };
                let h = match next {
                    Some(b) if a.0 < t => {
                        let custom = |h: &sextant_model::FloatHistogram| {
                            h.schema == sextant_model::histogram::CUSTOM_BUCKETS_SCHEMA
                        };
                        if custom(&a.1) != custom(&b.1) {
                            self.warn(format!("PromQL warning: vector contains a mix of histograms with exponential and custom buckets schemas for metric name {mname:?} ({p})"));
                            continue;
                        }
                        let counter =
                            b.1.counter_reset_hint != sextant_model::CounterResetHint::Gauge;
                        match crate::funcs::interpolate_histograms(
                            self, &a, &b, t, counter, &mname, &p,
                        ) {
                            Some(h) => h,
                            None => continue,
                        }
                    }
                    _ => a.1,
                };
                extra.push(VSample {
                    labels,
                    t,
                    f: 0.0,
                    h: Some(Box::new(h)),
                    drop_name: false,
                });
            }
            out.extend(extra);
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        self.add_selected(out.len())?;
        Ok(out)
    }

    /// The start timestamp of the sample at `t` of a selected series (0 when unknown).
    pub(crate) fn start_timestamp_of(
        &self,
        vs: &VectorSelector,
        labels: &Labels,
        t: i64,
        hist: bool,
    ) -> i64 {
        let Some(s) = self
            .data
            .get(&key(vs))
            .and_then(|d| d.iter().find(|s| &s.labels == labels))
        else {
            return 0;
        };
        let i = if hist {
            s.histograms.iter().position(|p| p.0 == t)
        } else {
            s.floats.iter().position(|p| p.t == t)
        };
        let sts = if hist { &s.hist_st } else { &s.float_st };
        i.and_then(|i| sts.get(i)).copied().unwrap_or(0)
    }

    /// Range-vector selection: samples in `(t - range, t]`, without staleness markers.
    pub(crate) fn select_matrix(
        &mut self,
        m: &MatrixSelector,
        ts: i64,
    ) -> Result<Vec<Series>, EvalError> {
        let t = self.mod_time(&m.vs.at, &m.vs.offset, ts);
        let mut r = m.range.eval_ms(self.dctx);
        let lb = self.opts.lookback_ms;
        let t = if m.smoothed {
            r += 2 * lb;
            t.saturating_add(lb)
        } else if m.anchored {
            r += lb;
            t
        } else {
            t
        };
        let mut out = Vec::new();
        let mut n = 0;
        if let Some(data) = self.data.get(&key(&m.vs)) {
            for (i, s) in data.iter().enumerate() {
                if i % 4096 == 4095 {
                    self.check_deadline()?;
                }
                let a = s.floats.partition_point(|p| p.t <= t - r);
                let b = s.floats.partition_point(|p| p.t <= t);
                let ha = s.histograms.partition_point(|p| p.0 <= t - r);
                let hb = s.histograms.partition_point(|p| p.0 <= t);
                // Check the limit before copying the window.
                if self.samples.saturating_add(n + (b - a) + (hb - ha)) > self.opts.max_samples {
                    return Err(too_many_samples());
                }
                let mut floats = Vec::with_capacity(b - a);
                let mut float_st = Vec::new();
                for (k, p) in s.floats[a..b].iter().enumerate() {
                    if is_stale_nan(p.v) {
                        continue;
                    }
                    floats.push(*p);
                    if !s.float_st.is_empty() {
                        float_st.push(s.float_st[a + k]);
                    }
                }
                let histograms = s.histograms[ha..hb].to_vec();
                let hist_st = if s.hist_st.is_empty() {
                    Vec::new()
                } else {
                    s.hist_st[ha..hb].to_vec()
                };
                if floats.is_empty() && histograms.is_empty() {
                    continue;
                }
                n += floats.len() + histograms.len();
                out.push(Series {
                    labels: s.labels.clone(),
                    floats,
                    histograms,
                    drop_name: false,
                    float_st,
                    hist_st,
                });
            }
        }
        self.add_selected(n)?;
        Ok(out)
    }

    /// Evaluates a subquery at `ts` into a range vector.
    pub(crate) fn eval_subquery(
        &mut self,
        s: &Subquery,
        ts: i64,
    ) -> Result<Vec<Series>, EvalError> {
        let t = self.mod_time(&s.at, &s.offset, ts);
        let r = s.range.eval_ms(self.dctx);
        let step = self.sub_step(s);
        let mut start = step * ((t - r) / step);
        if start <= t - r {
            start += step;
        }
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut out: Vec<Series> = Vec::new();
        let mut last_src: HashMap<Labels, i64> = HashMap::new();
        // The subquery's points so far count towards the sample limit, as in Prometheus.
        let saved = self.samples;
        let mut points = 0usize;
        let mut cur = start;
        while cur <= t {
            self.check_deadline()?;
            match self.eval(&s.expr, cur)? {
                Val::Scalar(v) => {
                    points += 1;
                    push_point(&mut index, &mut out, Labels::empty(), false, cur, v, None)
                }
                Val::Vector(vs) => {
                    points += vs.len();
                    for x in vs {
                        let dn = x.drop_name;
                        let h = x.h.map(|h| {
                            let mut h = *h;
                            // The subquery's points are not consecutive samples: a stored
                            // hint only holds for the first time a sample shows up.
                            use sextant_model::CounterResetHint as H;
                            let again = last_src.get(&x.labels) == Some(&x.t);
                            if again {
                                h.counter_reset_hint = H::NotCounterReset;
                            } else if h.counter_reset_hint == H::NotCounterReset {
                                h.counter_reset_hint = H::Unknown;
                            }
                            h
                        });
                        last_src.insert(x.labels.clone(), x.t);
                        push_point(&mut index, &mut out, x.labels, dn, cur, x.f, h);
                        if dn {
                            // Keep the flag if any point asked for it.
                            if let Some(last) = out.last_mut() {
                                last.drop_name |= dn;
                            }
                        }
                    }
                }
                _ => {}
            }
            self.samples = saved;
            self.add_samples(points)?;
            cur += step;
        }
        for s in &mut out {
            s.floats.retain(|p| !is_stale_nan(p.v));
        }
        Ok(out)
    }

    /// The start and end (exclusive start, inclusive end) of a range argument at `ts`.
    pub(crate) fn range_bounds(&self, e: &Expr, ts: i64) -> (i64, i64) {
        match e.unparen() {
            Expr::Matrix(m) => {
                let t = self.mod_time(&m.vs.at, &m.vs.offset, ts);
                (t - m.range.eval_ms(self.dctx), t)
            }
            Expr::Subquery(s) => {
                let t = self.mod_time(&s.at, &s.offset, ts);
                (t - s.range.eval_ms(self.dctx), t)
            }
            _ => (ts, ts),
        }
    }

    pub(crate) fn eval(&mut self, e: &Expr, ts: i64) -> Result<Val, EvalError> {
        self.check_deadline()?;
        if !self.plans.is_empty() {
            let k = e as *const Expr as usize;
            if let Some(mut plan) = self.plans.remove(&k) {
                let r = plan.step_vector(self, ts);
                self.plans.insert(k, plan);
                return Ok(Val::Vector(r?));
            }
        }
        Ok(match e {
            Expr::Number(n) => Val::Scalar(*n),
            Expr::Str(s) => Val::Str(s.clone()),
            Expr::DurValue(d) => Val::Scalar(d.eval_secs(self.dctx)),
            Expr::Paren(e) => self.eval(e, ts)?,
            Expr::Neg(e) => match self.eval(e, ts)? {
                Val::Scalar(v) => Val::Scalar(-v),
                Val::Vector(mut vs) => {
                    for s in &mut vs {
                        s.f = -s.f;
                        if let Some(h) = &mut s.h {
                            crate::hist::scale(h, -1.0);
                            h.counter_reset_hint = sextant_model::CounterResetHint::Gauge;
                        }
                        s.drop_name = true;
                    }
                    Val::Vector(vs)
                }
                other => other,
            },
            Expr::Vector(vs) => Val::Vector(self.select_vector(vs, ts)?),
            Expr::Matrix(m) => {
                let mut ms = self.select_matrix(m, ts)?;
                if m.anchored || m.smoothed {
                    let (lo, hi) = self.range_bounds(e, ts);
                    for s in &mut ms {
                        // Start timestamps do not survive the boundary rewriting.
                        s.float_st.clear();
                        s.hist_st.clear();
                        // The anchor is the newest sample at or before the range start, float
                        // or histogram; everything else before the start is dropped.
                        let fa = s.floats.iter().rev().find(|p| p.t <= lo).map(|p| p.t);
                        let ha = s.histograms.iter().rev().find(|p| p.0 <= lo).map(|p| p.0);
                        let hist_anchor = match (fa, ha) {
                            (Some(f), Some(h)) => h > f,
                            (None, Some(_)) => true,
                            _ => false,
                        };
                        if hist_anchor {
                            let k = s.histograms.partition_point(|p| p.0 <= lo);
                            s.histograms.drain(..k - 1);
                            s.floats.retain(|p| p.t > lo);
                        } else {
                            s.histograms.retain(|p| p.0 > lo);
                            if s.histograms.is_empty() {
                                s.floats =
                                    crate::funcs::extend_floats(&s.floats, lo, hi, m.smoothed);
                            } else if fa.is_some() {
                                // Mixed: keep the float anchor as it is.
                                let k = s.floats.partition_point(|p| p.t <= lo);
                                s.floats.drain(..k - 1);
                            }
                        }
                    }
                    ms.retain(|s| !s.floats.is_empty() || !s.histograms.is_empty());
                }
                Val::Matrix(ms)
            }
            Expr::Subquery(s) => {
                let saved = std::mem::take(&mut self.stats_decoding);
                let r = self.eval_subquery(s, ts);
                self.stats_decoding = saved;
                Val::Matrix(r?)
            }
            Expr::Binary {
                op,
                lhs,
                rhs,
                return_bool,
                matching,
                pos,
            } => {
                let l = self.eval(lhs, ts)?;
                let r = self.eval(rhs, ts)?;
                self.bin_start = expr_pos(lhs);
                crate::binop::eval_binary(self, *op, l, r, *return_bool, matching.as_ref(), *pos)?
            }
            Expr::Aggregate {
                op,
                expr,
                param,
                grouping,
                without,
                pos,
                param_pos,
            } => {
                let p = match param {
                    Some(p) => Some(self.eval(p, ts)?),
                    None => None,
                };
                let v = match self.eval(expr, ts)? {
                    Val::Vector(v) => v,
                    _ => Vec::new(),
                };
                // Aggregation annotations point at the aggregated expression.
                let _ = pos;
                Val::Vector(crate::aggr::aggregate(
                    self,
                    *op,
                    p,
                    v,
                    grouping,
                    *without,
                    (expr_pos(expr), *param_pos),
                )?)
            }
            Expr::Call { func, args, pos } => {
                let saved = self.stats_decoding;
                match func.name {
                    "histogram_count" | "histogram_sum" | "histogram_avg" => {
                        self.stats_decoding += 1
                    }
                    "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => {
                        self.stats_decoding = 0
                    }
                    _ => {}
                }
                let r = crate::funcs::call(self, func, args, ts, *pos);
                self.stats_decoding = saved;
                r?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::querier::MemQuerier;

    /// `n` series `foo{i="0".."n"}` with one sample every `every` ms in `[from, to]` (ms), value =
    /// the time in seconds.
    fn store(n: usize, from: i64, to: i64, every: usize) -> MemQuerier {
        let mut q = MemQuerier::new();
        for i in 0..n {
            let l = Labels::from_pairs([("__name__", "foo".to_string()), ("i", i.to_string())]);
            for t in (from..=to).step_by(every) {
                q.add_float(&l, t, t as f64 / 1000.0);
            }
        }
        q
    }

    fn engine(f: impl FnOnce(&mut EngineOptions)) -> Engine {
        let mut o = EngineOptions::default();
        f(&mut o);
        Engine::new(o)
    }

    const TOO_MANY: &str =
        "query processing would load too many samples into memory in query execution";

    #[test]
    fn instant_query_counts_selected_samples() {
        let q = store(3, 500_000, 500_000, 1);
        let ok = engine(|o| o.max_samples = 3)
            .instant(&q, "foo", 500_000)
            .unwrap();
        assert_eq!(ok.stats.total_samples, 3);
        let err = engine(|o| o.max_samples = 2)
            .instant(&q, "foo", 500_000)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Execution);
        assert_eq!(err.to_string(), TOO_MANY);
        // A range selector holds every sample of its window: 3 series x 6 samples in (440s, 500s].
        let q = store(3, 450_000, 500_000, 10_000);
        let ok = engine(|o| o.max_samples = 18)
            .instant(&q, "foo[1m]", 500_000)
            .unwrap();
        assert_eq!(ok.stats.total_samples, 18);
        let err = engine(|o| o.max_samples = 17)
            .instant(&q, "foo[1m]", 500_000)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Execution);
    }

    #[test]
    fn subquery_points_count_towards_the_limit() {
        // 12 loaded samples; the subquery has 11 steps with data (445s has none) x 2 series.
        let q = store(2, 450_000, 500_000, 10_000);
        let e = "max_over_time(foo[1m:5s])";
        assert!(engine(|o| o.max_samples = 22)
            .instant(&q, e, 500_000)
            .is_ok());
        let err = engine(|o| o.max_samples = 21)
            .instant(&q, e, 500_000)
            .unwrap_err();
        assert_eq!(err.to_string(), TOO_MANY);
    }

    #[test]
    fn range_query_output_counts_towards_the_limit() {
        // 22 loaded samples; the output has 21 steps x 2 series = 42 points.
        let q = store(2, 0, 1_000_000, 10_000);
        let e = engine(|o| o.max_samples = 42);
        let ok = e.range(&q, "foo", 0, 100_000, 5000).unwrap();
        assert_eq!(ok.stats.total_samples, 42);
        let e = engine(|o| o.max_samples = 41);
        let err = e.range(&q, "foo", 0, 100_000, 5000).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Execution);
        assert_eq!(err.to_string(), TOO_MANY);
    }

    #[test]
    fn loading_more_than_the_limit_fails_before_evaluation() {
        // Each step holds ~100 samples, but the query would load 100 x 101.
        let q = store(100, 0, 1_000_000, 10_000);
        let err = engine(|o| o.max_samples = 1000)
            .range(&q, "sum(foo)", 0, 1_000_000, 500_000)
            .unwrap_err();
        assert_eq!(err.to_string(), TOO_MANY);
    }

    #[test]
    fn cancel_flag_stops_the_evaluation_at_its_next_check() {
        use crate::querier::{QueryError, SeriesSet};
        use std::sync::atomic::{AtomicUsize, Ordering};
        // A store that "loses its client" after 10 series were read: it sets the flag the
        // server's drop guard would set, and counts how many series are read after that.
        struct Leaving<'a> {
            q: MemQuerier,
            cancel: &'a AtomicBool,
            reads: &'a AtomicUsize,
        }
        struct Set<'a>(Box<dyn SeriesSet + 'a>, &'a AtomicBool, &'a AtomicUsize);
        impl Querier for Leaving<'_> {
            fn select(
                &self,
                m: &[sextant_model::Matcher],
                a: i64,
                b: i64,
            ) -> Result<Vec<SeriesData>, QueryError> {
                self.q.select(m, a, b)
            }
            fn select_lazy(
                &self,
                m: &[sextant_model::Matcher],
                a: i64,
                b: i64,
            ) -> Result<Box<dyn SeriesSet + '_>, QueryError> {
                Ok(Box::new(Set(
                    self.q.select_lazy(m, a, b)?,
                    self.cancel,
                    self.reads,
                )))
            }
        }
        impl SeriesSet for Set<'_> {
            fn len(&self) -> usize {
                self.0.len()
            }
            fn labels(&self, i: usize) -> &Labels {
                self.0.labels(i)
            }
            fn max_samples(&self, i: usize) -> usize {
                self.0.max_samples(i)
            }
            fn may_have_histograms(&self, i: usize) -> bool {
                self.0.may_have_histograms(i)
            }
            fn may_have_start_timestamps(&self, i: usize) -> bool {
                self.0.may_have_start_timestamps(i)
            }
            fn read(
                &self,
                i: usize,
                a: i64,
                b: i64,
                out: &mut SeriesData,
            ) -> Result<(), QueryError> {
                if self.2.fetch_add(1, Ordering::Relaxed) == 10 {
                    self.1.store(true, Ordering::Relaxed);
                }
                self.0.read(i, a, b, out)
            }
        }
        for (query, range) in [
            ("sum(rate(foo[1m]))", false),
            ("foo", false),
            ("sum(foo)", true),
        ] {
            let cancel = Arc::new(AtomicBool::new(false));
            let reads = AtomicUsize::new(0);
            let q = Leaving {
                q: store(5000, 0, 600_000, 15_000),
                cancel: &cancel,
                reads: &reads,
            };
            let e = engine(|o| o.cancel = Some(cancel.clone()));
            let err = if range {
                e.range(&q, query, 0, 600_000, 60_000).unwrap_err()
            } else {
                e.instant(&q, query, 500_000).unwrap_err()
            };
            assert_eq!(err.kind(), ErrorKind::Canceled, "{query}");
            assert_eq!(err.kind().as_str(), "canceled");
            assert_eq!(
                err.to_string(),
                "query was canceled in expression evaluation"
            );
            // Stopped at the next check (every 1,024 series), not after all 5,000.
            let n = reads.load(Ordering::Relaxed);
            assert!(n <= 1024, "{query}: read {n} series after the flag was set");
        }
        // Set before the query starts: nothing is selected.
        let cancel = Arc::new(AtomicBool::new(true));
        let e = engine(|o| o.cancel = Some(cancel.clone()));
        let err = e.instant(&store(1, 0, 1000, 1000), "foo", 500).unwrap_err();
        assert_eq!(err.to_string(), "query was canceled in query preparation");
    }

    #[test]
    fn timeout_is_reported_with_its_stage() {
        let q = store(1, 0, 1_000_000, 10_000);
        let e = engine(|o| o.timeout = Duration::ZERO);
        let err = e.instant(&q, "foo", 500_000).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(err.kind().as_str(), "timeout");
        assert_eq!(err.to_string(), "query timed out in query preparation");
        let err = e.instant(&q, "1 + 1", 500_000).unwrap_err();
        assert_eq!(err.to_string(), "query timed out in expression evaluation");
        let err = e.range(&q, "foo", 0, 1_000_000, 1000).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
    }

    #[test]
    fn too_many_points_per_series_is_bad_data() {
        let q = MemQuerier::new();
        let e = Engine::default();
        // Prometheus allows (end - start) / step == 11000.
        assert!(e.range(&q, "1", 0, 11_000_000, 1000).is_ok());
        let err = e.range(&q, "1", 0, 11_001_000, 1000).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadData);
        assert_eq!(
            err.to_string(),
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
        );
        let err = e.range(&q, "1", 0, 1000, 0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadData);
        let err = e.range(&q, "1", 1000, 0, 10).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadData);
    }

    #[test]
    fn parse_errors_are_bad_data() {
        let err = Engine::default()
            .instant(&MemQuerier::new(), "sum(", 0)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadData);
        assert!(err.pos().is_some());
        assert!(err.to_string().starts_with("1:5: parse error:"), "{err}");
    }
}
