//! The Prometheus query API: `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`
//! and `/api/v1/parse_query`. Results are written byte for byte the way Prometheus writes them
//! (timestamps as seconds with millisecond fraction, values as strings in Go's float format,
//! native histograms with their bucket boundary rules), so Grafana's Prometheus data source
//! works unchanged.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sextant_model::{FloatHistogram, Labels, Matcher};
use sextant_promql::{Engine, ErrorKind, QueryResult, Value};

use crate::api::ApiError;
use crate::limits::Limit;
use crate::params::Params;
use crate::AppState;

/// Query limits and defaults of the engine (Prometheus' `--query.*` flags).
#[derive(Clone, Debug)]
pub struct QueryLimits {
    pub timeout: Duration,
    pub max_samples: usize,
    pub lookback: Duration,
    /// Queries evaluated at once; more wait for a slot.
    pub max_concurrent: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            lookback: Duration::from_secs(300),
            max_concurrent: 20,
        }
    }
}

impl QueryLimits {
    pub fn engine(&self) -> Engine {
        let mut o = sextant_promql::EngineOptions::default();
        o.timeout = self.timeout;
        o.max_samples = self.max_samples;
        o.lookback_ms = self.lookback.as_millis() as i64;
        Engine::new(o)
    }
}

/// Reads the local TSDB for the PromQL engine.
pub struct TsdbSource(pub sextant_tsdb::db::DbQuerier);

impl sextant_promql::Querier for TsdbSource {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<sextant_promql::SeriesData>, sextant_promql::QueryError> {
        use sextant_tsdb::querier::Querier as _;
        self.0
            .select(matchers, mint, maxt)
            .map(|v| {
                v.into_iter()
                    .map(|s| sextant_promql::SeriesData {
                        labels: s.labels,
                        floats: s.floats,
                        histograms: s.histograms,
                        // Start (created) timestamps are not stored yet.
                        float_st: Vec::new(),
                        hist_st: Vec::new(),
                    })
                    .collect()
            })
            .map_err(|e| sextant_promql::QueryError(e.to_string()))
    }

    fn select_lazy(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Box<dyn sextant_promql::SeriesSet + '_>, sextant_promql::QueryError> {
        self.0
            .select_lazy(matchers, mint, maxt)
            .map(|v| Box::new(LazyTsdbSet(v)) as Box<dyn sextant_promql::SeriesSet>)
            .map_err(|e| sextant_promql::QueryError(e.to_string()))
    }

    fn select_hinted(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        hints: &sextant_promql::SelectHints,
    ) -> Result<Box<dyn sextant_promql::SeriesSet + '_>, sextant_promql::QueryError> {
        let h = sextant_tsdb::querier::SelectHints {
            func: hints.func.map(str::to_string),
            range: hints.range,
            step: hints.step,
        };
        self.0
            .select_lazy_hinted(matchers, mint, maxt, &h)
            .map(|v| Box::new(LazyTsdbSet(v)) as Box<dyn sextant_promql::SeriesSet>)
            .map_err(|e| sextant_promql::QueryError(e.to_string()))
    }
}

/// Series selected from the TSDB, decoded chunk by chunk when the engine reads them.
struct LazyTsdbSet(Vec<sextant_tsdb::querier::LazySeries>);

impl sextant_promql::SeriesSet for LazyTsdbSet {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn labels(&self, i: usize) -> &Labels {
        &self.0[i].labels
    }
    fn max_samples(&self, i: usize) -> usize {
        self.0[i].max_samples
    }
    fn may_have_histograms(&self, i: usize) -> bool {
        self.0[i].may_have_histograms
    }
    fn may_have_start_timestamps(&self, _: usize) -> bool {
        // Start (created) timestamps are not stored yet.
        false
    }
    fn read(
        &self,
        i: usize,
        mint: i64,
        maxt: i64,
        out: &mut sextant_promql::SeriesData,
    ) -> Result<(), sextant_promql::QueryError> {
        // Lend `out`'s buffers to the TSDB's read and take them back.
        let mut sd = sextant_tsdb::querier::SeriesData {
            labels: Labels::default(),
            floats: std::mem::take(&mut out.floats),
            histograms: std::mem::take(&mut out.histograms),
        };
        let r = self.0[i].read(mint, maxt, &mut sd);
        out.floats = sd.floats;
        out.histograms = sd.histograms;
        out.float_st.clear();
        out.hist_st.clear();
        r.map_err(|e| sextant_promql::QueryError(e.to_string()))
    }
}

/// Runs `f` against local storage, merged with the remote engines when any are configured;
/// their warnings (a failing engine included) are added to the result, as Prometheus reports
/// a partial answer.
pub(crate) fn with_source(
    st: &AppState,
    f: impl FnOnce(&dyn sextant_promql::Querier) -> Result<QueryResult, sextant_promql::Error>,
) -> Result<QueryResult, ApiError> {
    let local = TsdbSource(st.db.querier());
    match st.remote() {
        None => f(&local).map_err(engine_error),
        Some(engines) => {
            let fan = sextant_remote::Fanout::new(Box::new(local), engines);
            let mut res = f(&fan).map_err(engine_error)?;
            for w in fan.take_warnings() {
                if !res.warnings.contains(&w) {
                    res.warnings.push(w);
                }
            }
            Ok(res)
        }
    }
}

fn kind_status(k: ErrorKind) -> (StatusCode, &'static str) {
    match k {
        ErrorKind::BadData => (StatusCode::BAD_REQUEST, "bad_data"),
        ErrorKind::Execution => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
        ErrorKind::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
        ErrorKind::Canceled => (StatusCode::SERVICE_UNAVAILABLE, "canceled"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

fn engine_error(e: sextant_promql::Error) -> ApiError {
    let (status, kind) = kind_status(e.kind());
    ApiError {
        status,
        kind,
        msg: e.to_string(),
    }
}

/// A `step` or `timeout` parameter: a Prometheus duration or a float number of seconds.
pub(crate) fn duration_param(p: &Params, k: &str) -> Result<Option<i64>, ApiError> {
    let Some(s) = p.get(k).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Ok(f) = s.parse::<f64>() {
        let ms = (f * 1000.0).round();
        if !ms.is_finite() || ms.abs() > i64::MAX as f64 {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"{k}\": cannot parse {s:?} to a valid duration. It overflows int64"
            )));
        }
        return Ok(Some(ms as i64));
    }
    sextant_model::time::parse_duration(s)
        .map(|d| Some(d.as_millis() as i64))
        .map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"{k}\": cannot parse {s:?} to a valid duration"
            ))
        })
}

fn query_param(p: &Params) -> Result<String, ApiError> {
    match p.get("query") {
        Some(q) if !q.trim().is_empty() => Ok(q.to_string()),
        _ => Err(ApiError::bad_data(
            "invalid parameter \"query\": query must not be empty",
        )),
    }
}

/// Sets the query's cancel flag when dropped: axum drops the handler future when the client
/// goes away, and the evaluation on the blocking pool then stops at its next check.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs a query on the blocking pool within a concurrency slot. `f` gets the query's cancel
/// flag (set once the request is dropped) to hand to the engine.
pub(crate) async fn run<F>(st: Arc<AppState>, f: F) -> Response
where
    F: FnOnce(&AppState, Arc<AtomicBool>) -> Result<Response, ApiError> + Send + 'static,
{
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    // A query waits for a slot at most as long as it may run; then it is refused (429) so
    // the client can retry instead of piling up.
    let permit = match tokio::time::timeout(
        st.query_limits.timeout,
        st.query_slots.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(p)) => p,
        Ok(Err(_)) => return ApiError::internal("query slots closed").into_response(),
        Err(_) => {
            st.limit_hits.hit(Limit::QueryConcurrency);
            return ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "unavailable",
                msg: format!(
                    "too many concurrent queries (limit query_concurrency: {}); retry later",
                    st.query_limits.max_concurrent
                ),
            }
            .into_response();
        }
    };
    let st2 = st.clone();
    let r = tokio::task::spawn_blocking(move || f(&st2, cancel)).await;
    drop(permit);
    match r {
        Ok(Ok(r)) => r,
        Ok(Err(mut e)) => {
            if e.kind == "timeout" {
                st.limit_hits.hit(Limit::QueryTimeout);
                e.msg = format!(
                    "{} (limit query_timeout: {}s)",
                    e.msg,
                    st.query_limits.timeout.as_secs_f64()
                );
            } else if e.msg.contains("would load too many samples") {
                st.limit_hits.hit(Limit::QuerySamples);
                e.msg = format!(
                    "{} (limit query_samples: {})",
                    e.msg, st.query_limits.max_samples
                );
            }
            e.into_response()
        }
        Err(e) => ApiError::internal(format!("query failed: {e}")).into_response(),
    }
}

pub(crate) fn engine_with_timeout(
    st: &AppState,
    p: &Params,
    cancel: Arc<AtomicBool>,
) -> Result<Engine, ApiError> {
    let mut engine = st.query_limits.engine();
    engine.opts.cancel = Some(cancel);
    if let Some(t) = duration_param(p, "timeout")? {
        if t > 0 {
            let req = Duration::from_millis(t as u64);
            engine.opts.timeout = engine.opts.timeout.min(req);
        }
    }
    Ok(engine)
}

/// An instant query run in-process, answered with the `/api/v1/query` JSON body (`Ok`) or the
/// error message: for server-side consumers (scheduled reports) that must not depend on the
/// listener's TLS or auth.
pub fn instant_json(st: &AppState, expr: &str, t_ms: i64) -> Result<String, String> {
    let engine = st.query_limits.engine();
    with_source(st, |src| engine.instant(src, expr, t_ms))
        .map(|res| result_json(&res, false))
        .map_err(|e| format!("{}: {}", e.kind, e.msg))
}

pub async fn query(State(st): State<Arc<AppState>>, p: Params) -> Response {
    run(st, move |st, cancel| {
        let expr = query_param(&p)?;
        let t = p.time("time", sextant_model::time::now_ms())?;
        let engine = engine_with_timeout(st, &p, cancel)?;
        let res = with_source(st, |src| engine.instant(src, &expr, t))?;
        Ok(json_response(&res, p.get("stats").is_some()))
    })
    .await
}

pub async fn query_range(State(st): State<Arc<AppState>>, p: Params) -> Response {
    run(st, move |st, cancel| {
        let expr = query_param(&p)?;
        let missing = |k: &str| ApiError::bad_data(format!("invalid parameter \"{k}\": cannot parse \"\" to a valid timestamp"));
        if p.get("start").is_none_or(str::is_empty) {
            return Err(missing("start"));
        }
        if p.get("end").is_none_or(str::is_empty) {
            return Err(missing("end"));
        }
        let start = p.time("start", 0)?;
        let end = p.time("end", 0)?;
        if end < start {
            return Err(ApiError::bad_data("invalid parameter \"end\": end timestamp must not be before start time"));
        }
        let step = duration_param(&p, "step")?
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"step\": cannot parse \"\" to a valid duration"))?;
        if step <= 0 {
            return Err(ApiError::bad_data(
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        let engine = engine_with_timeout(st, &p, cancel)?;
        let res = with_source(st, |src| engine.range(src, &expr, start, end, step))?;
        Ok(json_response(&res, p.get("stats").is_some()))
    })
    .await
}

pub async fn format_query(p: Params) -> Response {
    parsed_data(&p, |e| {
        let mut s = String::new();
        push_str(&mut s, &e.to_string());
        s
    })
}

pub async fn parse_query(p: Params) -> Response {
    parsed_data(&p, |e| e.to_json())
}

/// Parses the `query` parameter and answers `{"status":"success","data":<render(expr)>}`.
fn parsed_data(p: &Params, render: impl FnOnce(&sextant_promql::Expr) -> String) -> Response {
    let parsed =
        query_param(p).and_then(|q| sextant_promql::parse(&q).map_err(|e| engine_error(e.into())));
    match parsed {
        Ok(e) => raw_json(format!(
            "{{\"status\":\"success\",\"data\":{}}}",
            render(&e)
        )),
        Err(e) => e.into_response(),
    }
}

fn raw_json(body: String) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The response body of a successful query, exactly as Prometheus writes it.
pub fn json_response(res: &QueryResult, with_stats: bool) -> Response {
    raw_json(result_json(res, with_stats))
}

/// `{"status":"success","data":{"resultType":…,"result":…},"warnings":…,"infos":…}`.
pub fn result_json(res: &QueryResult, with_stats: bool) -> String {
    let mut o = String::with_capacity(256);
    o.push_str("{\"status\":\"success\",\"data\":{\"resultType\":\"");
    o.push_str(res.value.type_name());
    o.push_str("\",\"result\":");
    match &res.value {
        Value::Scalar { t, v } => {
            o.push('[');
            push_ts(&mut o, *t);
            o.push(',');
            push_value(&mut o, *v);
            o.push(']');
        }
        Value::String { t, s } => {
            o.push('[');
            push_ts(&mut o, *t);
            o.push(',');
            push_str(&mut o, s);
            o.push(']');
        }
        Value::Vector(vs) => {
            o.push('[');
            for (i, s) in vs.iter().enumerate() {
                if i > 0 {
                    o.push(',');
                }
                o.push_str("{\"metric\":");
                push_labels(&mut o, &s.labels);
                match &s.h {
                    Some(h) => {
                        o.push_str(",\"histogram\":[");
                        push_ts(&mut o, s.t);
                        o.push(',');
                        push_histogram(&mut o, h);
                        o.push(']');
                    }
                    None => {
                        o.push_str(",\"value\":[");
                        push_ts(&mut o, s.t);
                        o.push(',');
                        push_value(&mut o, s.f);
                        o.push(']');
                    }
                }
                o.push('}');
            }
            o.push(']');
        }
        Value::Matrix(m) => {
            o.push('[');
            for (i, s) in m.iter().enumerate() {
                if i > 0 {
                    o.push(',');
                }
                o.push_str("{\"metric\":");
                push_labels(&mut o, &s.labels);
                if !s.floats.is_empty() {
                    o.push_str(",\"values\":[");
                    for (j, p) in s.floats.iter().enumerate() {
                        if j > 0 {
                            o.push(',');
                        }
                        o.push('[');
                        push_ts(&mut o, p.t);
                        o.push(',');
                        push_value(&mut o, p.v);
                        o.push(']');
                    }
                    o.push(']');
                }
                if !s.histograms.is_empty() {
                    o.push_str(",\"histograms\":[");
                    for (j, (t, h)) in s.histograms.iter().enumerate() {
                        if j > 0 {
                            o.push(',');
                        }
                        o.push('[');
                        push_ts(&mut o, *t);
                        o.push(',');
                        push_histogram(&mut o, h);
                        o.push(']');
                    }
                    o.push(']');
                }
                o.push('}');
            }
            o.push(']');
        }
    }
    if with_stats {
        let _ = write!(
            o,
            ",\"stats\":{{\"timings\":{{}},\"samples\":{{\"totalQueryableSamples\":{},\"peakSamples\":{}}}}}",
            res.stats.total_samples, res.stats.peak_samples
        );
    }
    o.push('}');
    if !res.warnings.is_empty() {
        o.push_str(",\"warnings\":");
        push_str_list(&mut o, &res.warnings);
    }
    if !res.infos.is_empty() {
        o.push_str(",\"infos\":");
        push_str_list(&mut o, &res.infos);
    }
    o.push('}');
    o
}

fn push_str_list(o: &mut String, l: &[String]) {
    o.push('[');
    for (i, s) in l.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        push_str(o, s);
    }
    o.push(']');
}

fn push_str(o: &mut String, s: &str) {
    // Most label names and values need no escaping: copy them as they are (what serde_json
    // writes for them too), and let serde_json escape the rest.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        o.reserve(s.len() + 2);
        o.push('"');
        o.push_str(s);
        o.push('"');
        return;
    }
    o.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// Appends the decimal digits of `n` (like `write!(o, "{n}")`, without the formatting
/// machinery: the API writes millions of timestamps and integral values).
fn push_u64(o: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    o.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

pub(crate) fn push_labels(o: &mut String, ls: &Labels) {
    o.push('{');
    for (i, l) in ls.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        push_str(o, &l.name);
        o.push(':');
        push_str(o, &l.value);
    }
    o.push('}');
}

/// A millisecond timestamp as Prometheus writes it: seconds, then `.` and three digits when the
/// milliseconds are not zero (`1435781451.781`, `1.500`, `-0.005`).
pub fn push_ts(o: &mut String, t: i64) {
    let (neg, a) = (t < 0, t.unsigned_abs());
    if neg {
        o.push('-');
    }
    push_u64(o, a / 1000);
    let frac = a % 1000;
    if frac != 0 {
        o.push('.');
        if frac < 100 {
            o.push('0');
        }
        if frac < 10 {
            o.push('0');
        }
        push_u64(o, frac);
    }
}

/// A float in quotes, formatted like Go's `strconv.FormatFloat(v, 'f' or 'e', -1, 64)` as
/// Prometheus does: `"1"`, `"0.1"`, `"1e-07"`, `"1e+21"`, `"NaN"`, `"+Inf"`, `"-Inf"`.
pub fn push_value(o: &mut String, v: f64) {
    o.push('"');
    let a = v.abs();
    if (1.0..1e15).contains(&a) && v.fract() == 0.0 {
        // Integral values (counters, bucket counts) print as their integer: what Go's
        // shortest 'f' formatting gives too, without a float formatter.
        if v < 0.0 {
            o.push('-');
        }
        push_u64(o, a as u64);
    } else {
        o.push_str(&format_float(v));
    }
    o.push('"');
}

/// Go's shortest float formatting as used by Prometheus' JSON.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        // Rust: "1.5e-7" → Go: "1.5e-07"; "1e21" → "1e+21".
        let s = format!("{v:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        let pad = if digits.len() < 2 { "0" } else { "" };
        return format!("{mant}e{sign}{pad}{digits}");
    }
    format!("{v}")
}

/// A native histogram as Prometheus' API writes it: count, sum and buckets as
/// `[boundary_rule, lower, upper, count]` (0: (lower, upper], 1: [lower, upper), 3: [lower, upper]).
fn push_histogram(o: &mut String, h: &FloatHistogram) {
    o.push_str("{\"count\":");
    push_value(o, h.count);
    o.push_str(",\"sum\":");
    push_value(o, h.sum);
    let buckets = sextant_promql::api_buckets(h);
    if !buckets.is_empty() {
        o.push_str(",\"buckets\":[");
        for (i, (rule, lo, hi, c)) in buckets.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "[{rule},");
            push_value(o, *lo);
            o.push(',');
            push_value(o, *hi);
            o.push(',');
            push_value(o, *c);
            o.push(']');
        }
        o.push(']');
    }
    o.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_format_like_go() {
        for (v, want) in [
            (1.0, "1"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e-7, "1e-07"),
            (1.5e-7, "1.5e-07"),
            (1e21, "1e+21"),
            (123456789012.0, "123456789012"),
            (0.000001, "0.000001"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ] {
            assert_eq!(format_float(v), want, "{v:?}");
        }
    }

    #[test]
    fn value_and_string_fast_paths_match_the_general_formatting() {
        let mut vals = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            9.0,
            10.0,
            99.5,
            1e15,
            -1e15,
            999999999999999.0,
            1e16,
            2.5e-7,
            4503599627370496.5,
            12345.0,
            -12345.0,
            0.5,
            f64::NAN,
            f64::INFINITY,
        ];
        let mut x = 0.37_f64;
        for _ in 0..2000 {
            x = (x * 7919.0 + 0.123).rem_euclid(1e7);
            vals.push(x.floor());
            vals.push(-x.floor());
            vals.push(x);
        }
        for v in vals {
            let mut s = String::new();
            push_value(&mut s, v);
            assert_eq!(s, format!("\"{}\"", format_float(v)), "{v:?}");
        }
        for t in [
            "",
            "a",
            "agents-0",
            "with \"quote\"",
            "back\\slash",
            "tab\there",
            "é✓",
            "\u{1}",
        ] {
            let mut s = String::new();
            push_str(&mut s, t);
            assert_eq!(s, serde_json::to_string(t).unwrap(), "{t:?}");
        }
    }

    #[test]
    fn timestamps_format_like_prometheus() {
        for (t, want) in [
            (1435781451781, "1435781451.781"),
            (1500, "1.500"),
            (1000, "1"),
            (-5, "-0.005"),
            (0, "0"),
            (1795449547050, "1795449547.050"),
            (1795449547007, "1795449547.007"),
            (-1500, "-1.500"),
        ] {
            let mut s = String::new();
            push_ts(&mut s, t);
            assert_eq!(s, want);
        }
    }
}
