//! A runner for Prometheus' promqltest scripts (`load`, `clear`, `eval ...` blocks with
//! expectations). It runs each eval the way upstream's `test.go` does, including the extra
//! range-mode and `@`-modifier runs of instant evals, and reports per-file pass counts so the
//! conformance score can be tracked from `cargo test`.

use std::collections::BTreeMap;

use sextant_model::histogram::CUSTOM_BUCKETS_SCHEMA;
use sextant_model::{FloatHistogram, HistogramValue, Labels, Span, STALE_NAN};

use crate::ast::{AtModifier, Expr};
use crate::engine::{Engine, EngineOptions};
use crate::lexer::{lex_string, parse_duration_ms};
use crate::querier::MemQuerier;
use crate::value::{Series, Value};

/// The outcome of one eval command.
#[derive(Clone, Debug)]
pub struct EvalOutcome {
    /// 1-based line of the eval command.
    pub line: usize,
    pub expr: String,
    /// `None` when it passed, else why not.
    pub failure: Option<String>,
}

/// The outcomes of one script.
#[derive(Clone, Debug, Default)]
pub struct ScriptReport {
    pub evals: Vec<EvalOutcome>,
}

impl ScriptReport {
    pub fn passed(&self) -> usize {
        self.evals.iter().filter(|e| e.failure.is_none()).count()
    }

    pub fn failed(&self) -> usize {
        self.evals.len() - self.passed()
    }
}

/// One value of a series in the expanding notation of test scripts (`1+2x3`, `_`, `stale`,
/// `{{schema:0 sum:1 count:2}}`); shared with promtool-style rule tests.
#[derive(Clone, Debug)]
pub enum Item {
    None,
    Float(f64),
    Hist(FloatHistogram),
}

#[derive(Clone, Debug, Default)]
struct Expect {
    fail: Option<Option<Matcher>>,
    warn: Vec<Option<Matcher>>,
    info: Vec<Option<Matcher>>,
    no_warn: bool,
    no_info: bool,
    ordered: bool,
    range_vector: Option<(i64, i64, i64)>,
    string: Option<String>,
    scalar: Option<f64>,
    series: Vec<(Labels, Vec<Item>)>,
}

#[derive(Clone, Debug)]
enum Matcher {
    Exact(String),
    Regex(regex::Regex),
}

impl Matcher {
    fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Exact(e) => s == e,
            Matcher::Regex(r) => r.is_match(s),
        }
    }
}

/// Runs a whole script against a fresh in-memory storage.
pub fn run_script(text: &str) -> ScriptReport {
    let lines: Vec<&str> = text.lines().collect();
    let mut store = MemQuerier::new();
    let mut report = ScriptReport::default();
    let engine = Engine::new(EngineOptions {
        max_samples: 10_000,
        timeout: std::time::Duration::from_secs(100),
        ..Default::default()
    });
    let mut i = 0;
    let clean = |l: &str| -> String {
        let t = l.trim();
        if t.starts_with('#') {
            String::new()
        } else {
            t.to_string()
        }
    };
    while i < lines.len() {
        let line = clean(lines[i]);
        if line.is_empty() {
            i += 1;
            continue;
        }
        let start_line = i + 1;
        let mut block = Vec::new();
        i += 1;
        while i < lines.len() {
            let l = clean(lines[i]);
            if l.is_empty() {
                break;
            }
            block.push(l);
            i += 1;
        }
        let cmd = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if cmd == "clear" {
            store.clear();
            // `clear` takes no block: the following lines are commands.
            i -= block.len();
        } else if cmd.starts_with("load") {
            let interval = line
                .split_whitespace()
                .nth(1)
                .and_then(parse_duration_ms)
                .unwrap_or(0);
            load(&mut store, &block, interval, cmd == "load_with_nhcb");
        } else if cmd.starts_with("eval") {
            // A scalar expectation ends the block early; lines after it are new commands.
            let (outcome, consumed) = run_eval(&engine, &store, &line, &block, start_line);
            if consumed < block.len() {
                // Re-scan the leftover lines as commands.
                i -= block.len() - consumed;
            }
            report.evals.push(outcome);
        }
    }
    report
}

fn load(store: &mut MemQuerier, block: &[String], interval: i64, nhcb: bool) {
    let mut classic: BTreeMap<Labels, Vec<(Labels, f64, Vec<Item>)>> = BTreeMap::new();
    // `metric@st <offsets>`: start timestamps (sample time + offset) for the next sample line.
    let mut starts: Vec<(Labels, Vec<Item>)> = Vec::new();
    for l in block {
        let Some((labels, rest)) = split_series(l) else {
            continue;
        };
        if let Some(labels) = labels.strip_suffix("@st") {
            if let (Ok(labels), Ok(items)) =
                (parse_labels(labels), parse_items(&durations_to_ms(rest)))
            {
                starts.push((labels, items));
            }
            continue;
        }
        let Ok(labels) = parse_labels(labels) else {
            continue;
        };
        let Ok(items) = parse_items(rest) else {
            continue;
        };
        let mut prev_h: Option<FloatHistogram> = store.last_histogram(&labels);
        for (k, it) in items.iter().enumerate() {
            let t = k as i64 * interval;
            match it {
                Item::None => {}
                Item::Float(v) => store.add_float(&labels, t, *v),
                Item::Hist(h) => {
                    let mut h = h.clone();
                    h.counter_reset_hint = crate::hist::storage_hint(&h, prev_h.as_ref());
                    prev_h = Some(h.clone());
                    store.add_histogram(&labels, t, HistogramValue::Float(h))
                }
            }
        }
        if nhcb {
            if let Some(name) = labels.metric_name() {
                for suffix in ["_bucket", "_count", "_sum"] {
                    if let Some(base) = name.strip_suffix(suffix) {
                        let mut key = labels.clone();
                        key.set("__name__", base);
                        key.set("le", "");
                        let le = labels
                            .get("le")
                            .and_then(crate::funcs::parse_go_float)
                            .unwrap_or(f64::NAN);
                        let kind = match suffix {
                            "_bucket" => le,
                            "_count" => f64::INFINITY * 0.0 + 1e300 * 1e300, // +Inf marker
                            _ => -1e300 * 1e300,
                        };
                        let kind = if suffix == "_count" {
                            f64::MAX
                        } else if suffix == "_sum" {
                            f64::MIN
                        } else {
                            kind
                        };
                        if suffix == "_bucket" && le.is_nan() {
                            continue;
                        }
                        classic
                            .entry(key)
                            .or_default()
                            .push((labels.clone(), kind, items.clone()));
                    }
                }
            }
        }
    }
    for (labels, items) in starts {
        for (k, it) in items.iter().enumerate() {
            if let Item::Float(off) = it {
                let t = k as i64 * interval;
                store.set_start_timestamp(&labels, t, t + *off as i64);
            }
        }
    }
    for (key, parts) in classic {
        let n = parts.iter().map(|p| p.2.len()).max().unwrap_or(0);
        let mut bounds: Vec<f64> = parts
            .iter()
            .filter(|p| p.1 != f64::MAX && p.1 != f64::MIN)
            .map(|p| p.1)
            .collect();
        bounds.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        bounds.dedup();
        if bounds.is_empty() {
            continue;
        }
        for k in 0..n {
            let val = |p: &(Labels, f64, Vec<Item>)| match p.2.get(k) {
                Some(Item::Float(v)) => Some(*v),
                _ => None,
            };
            let mut cum: Vec<(f64, f64)> = Vec::new();
            let mut count = None;
            let mut sum = None;
            for p in &parts {
                let Some(v) = val(p) else { continue };
                if p.1 == f64::MAX {
                    count = Some(v);
                } else if p.1 == f64::MIN {
                    sum = Some(v);
                } else {
                    cum.push((p.1, v));
                }
            }
            if cum.is_empty() {
                continue;
            }
            cum.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
            let mut counts = Vec::new();
            let mut prev = 0.0;
            for (_, c) in &cum {
                counts.push(c - prev);
                prev = *c;
            }
            let custom: Vec<f64> = cum.iter().map(|c| c.0).filter(|b| b.is_finite()).collect();
            let total = count.unwrap_or(prev);
            let h = FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: total,
                sum: sum.unwrap_or(0.0),
                positive_spans: vec![Span {
                    offset: 0,
                    length: counts.len() as u32,
                }],
                positive_buckets: counts,
                custom_values: custom,
                ..Default::default()
            };
            store.add_histogram(
                &key,
                k as i64 * interval_or(interval),
                HistogramValue::Float(h),
            );
        }
    }
}

fn interval_or(i: i64) -> i64 {
    i
}

/// Splits `metric{a="b c"} 1 2 3` into the label part and the values.
fn split_series(l: &str) -> Option<(&str, &str)> {
    let b = l.as_bytes();
    let mut i = 0;
    let mut depth = 0;
    let mut in_str: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = in_str {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == q {
                in_str = None;
            }
        } else if c == b'"' || c == b'\'' || c == b'`' {
            in_str = Some(c);
        } else if c == b'{' {
            depth += 1;
        } else if c == b'}' {
            depth -= 1;
            if depth == 0 {
                let mut j = i + 1;
                // Allow `@st` suffix.
                while j < b.len() && !b[j].is_ascii_whitespace() {
                    j += 1;
                }
                return Some((&l[..j], l[j..].trim()));
            }
        } else if depth == 0 && c.is_ascii_whitespace() {
            return Some((&l[..i], l[i..].trim()));
        }
        i += 1;
    }
    Some((l, ""))
}

/// Parses `name{a="b", ...}`, `{__name__="x"}` or `{}` into labels.
pub fn parse_labels(s: &str) -> Result<Labels, String> {
    let s = s.trim();
    let (name, rest) = match s.find('{') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !name.is_empty() {
        pairs.push(("__name__".into(), name.to_string()));
    }
    if !rest.is_empty() {
        let b = rest.as_bytes();
        let mut i = 1;
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
                i += 1;
            }
            if i >= b.len() {
                return Err(format!("unterminated label set {s:?}"));
            }
            if b[i] == b'}' {
                break;
            }
            let lname = if b[i] == b'"' {
                let (v, end) = lex_string(rest, i).map_err(|e| e.1)?;
                i = end;
                v
            } else {
                let st = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b':'
                        || b[i] == b'.')
                {
                    i += 1;
                }
                rest[st..i].to_string()
            };
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b',' || b[i] == b'}') {
                // A bare quoted metric name.
                pairs.push(("__name__".into(), lname));
                continue;
            }
            if i >= b.len() || b[i] != b'=' {
                return Err(format!("expected = in {s:?}"));
            }
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let (v, end) = lex_string(rest, i).map_err(|e| e.1)?;
            i = end;
            pairs.push((lname, v));
        }
    }
    Ok(Labels::from_pairs(pairs))
}

/// A series value: decimal, `Inf`, `NaN`; no hex (that would clash with `0x5` repetitions).
fn parse_value(s: &str) -> Option<f64> {
    if s.len() > 1 && s[1..].starts_with(['x', 'X']) {
        return None;
    }
    parse_float(s)
}

fn parse_float(s: &str) -> Option<f64> {
    let l = s.to_ascii_lowercase();
    match l.as_str() {
        "inf" | "+inf" => return Some(f64::INFINITY),
        "-inf" => return Some(f64::NEG_INFINITY),
        "nan" | "+nan" | "-nan" => return Some(f64::NAN),
        _ => {}
    }
    if let Some(h) = l.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    if l.contains("inf") || l.contains("nan") || l.contains('_') {
        return None;
    }
    s.parse().ok()
}

/// Splits `a+b` / `a-b` at the operator that is not a sign or exponent sign.
fn split_add(s: &str) -> Option<(&str, char, &str)> {
    let b = s.as_bytes();
    for i in 1..b.len() {
        if (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E') {
            return Some((&s[..i], b[i] as char, &s[i + 1..]));
        }
    }
    None
}

/// Rewrites the duration items of an `@st` line (`-30s-1mx2`, `1ms`, `+1m`) as milliseconds so
/// that [`parse_items`] can expand them.
fn durations_to_ms(s: &str) -> String {
    let mut out = String::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let st = i;
            while i < b.len() && (b[i].is_ascii_digit() || "smhdwy".contains(b[i])) {
                i += 1;
            }
            let tok: String = b[st..i].iter().collect();
            match parse_duration_ms(&tok) {
                Some(ms) => out.push_str(&ms.to_string()),
                None => out.push_str(&tok),
            }
            // The repetition count after `x` is a plain number.
            if i < b.len() && b[i] == 'x' {
                out.push('x');
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    out.push(b[i]);
                    i += 1;
                }
            }
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Expands a series' values written in the test notation (`0+10x5 _ stale 3x2`).
pub fn parse_series_values(s: &str) -> Result<Vec<Item>, String> {
    parse_items(s)
}

fn parse_items(s: &str) -> Result<Vec<Item>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let st = i;
        // Read one token; `{{...}}` may contain spaces.
        while i < b.len() && !b[i].is_ascii_whitespace() {
            if b[i] == b'{' && i + 1 < b.len() && b[i + 1] == b'{' {
                match s[i..].find("}}") {
                    Some(e) => i += e + 2,
                    None => return Err("unterminated histogram".into()),
                }
                continue;
            }
            i += 1;
        }
        let tok = &s[st..i];
        parse_item(tok, &mut out)?;
    }
    Ok(out)
}

fn parse_item(tok: &str, out: &mut Vec<Item>) -> Result<(), String> {
    if tok == "_" {
        out.push(Item::None);
        return Ok(());
    }
    if tok == "stale" {
        out.push(Item::Float(STALE_NAN));
        return Ok(());
    }
    if let Some(n) = tok.strip_prefix("_x") {
        let n: usize = n.parse().map_err(|_| format!("bad item {tok}"))?;
        out.extend(std::iter::repeat_n(Item::None, n));
        return Ok(());
    }
    if tok.starts_with("{{") {
        // {{h}}, {{h}}xN, {{h}}+{{d}}xN
        let e = tok.find("}}").ok_or("bad histogram")? + 2;
        let h = parse_hist(&tok[2..e - 2])?;
        let rest = &tok[e..];
        if rest.is_empty() {
            out.push(Item::Hist(h));
            return Ok(());
        }
        if let Some(n) = rest.strip_prefix('x') {
            let n: usize = n.parse().map_err(|_| format!("bad item {tok}"))?;
            out.extend(std::iter::repeat_n(Item::Hist(h), n + 1));
            return Ok(());
        }
        let sub = rest.starts_with('-');
        let rest = &rest[1..];
        if !rest.starts_with("{{") {
            return Err(format!("bad item {tok}"));
        }
        let e2 = rest.find("}}").ok_or("bad histogram")? + 2;
        let d = parse_hist(&rest[2..e2 - 2])?;
        let n: usize = rest[e2..]
            .strip_prefix('x')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("bad item {tok}"))?;
        let mut cur = h;
        for k in 0..=n {
            out.push(Item::Hist(cur.clone()));
            if k < n {
                let mut next = crate::hist::add(&cur, &d, sub).ok_or("incompatible histograms")?;
                next.counter_reset_hint = cur.counter_reset_hint;
                cur = compact(next, &cur);
            }
        }
        return Ok(());
    }
    if let Some(v) = parse_value(tok) {
        out.push(Item::Float(v));
        return Ok(());
    }
    let (base, n) = tok
        .rsplit_once('x')
        .ok_or_else(|| format!("bad item {tok}"))?;
    let n: usize = n.parse().map_err(|_| format!("bad item {tok}"))?;
    if let Some(v) = parse_value(base) {
        out.extend(std::iter::repeat_n(Item::Float(v), n + 1));
        return Ok(());
    }
    let (a, op, d) = split_add(base).ok_or_else(|| format!("bad item {tok}"))?;
    let a = parse_value(a).ok_or_else(|| format!("bad item {tok}"))?;
    let d = parse_value(d).ok_or_else(|| format!("bad item {tok}"))?;
    let d = if op == '-' { -d } else { d };
    let mut cur = a;
    for _ in 0..=n {
        out.push(Item::Float(cur));
        cur += d;
    }
    Ok(())
}

fn compact(h: FloatHistogram, _like: &FloatHistogram) -> FloatHistogram {
    h
}

fn parse_hist(s: &str) -> Result<FloatHistogram, String> {
    let mut h = FloatHistogram::default();
    let mut pos: Vec<f64> = Vec::new();
    let mut neg: Vec<f64> = Vec::new();
    let (mut off, mut noff) = (0i32, 0i32);
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && b[i] != b':' {
            i += 1;
        }
        let key = s[ks..i].trim();
        i += 1;
        let vs = i;
        let val = if i < b.len() && b[i] == b'[' {
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
            i += 1;
            &s[vs + 1..i.saturating_sub(1).max(vs + 1)]
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            &s[vs..i]
        };
        let num = |v: &str| parse_float(v).ok_or_else(|| format!("bad histogram value {v}"));
        let list =
            |v: &str| -> Result<Vec<f64>, String> { v.split_whitespace().map(num).collect() };
        match key {
            "schema" => h.schema = val.parse().map_err(|_| "bad schema")?,
            "sum" => h.sum = num(val)?,
            "count" => h.count = num(val)?,
            "z_bucket" => h.zero_count = num(val)?,
            "z_bucket_w" => h.zero_threshold = num(val)?,
            "buckets" => pos = list(val)?,
            "n_buckets" => neg = list(val)?,
            "offset" => off = val.parse().map_err(|_| "bad offset")?,
            "n_offset" => noff = val.parse().map_err(|_| "bad offset")?,
            "custom_values" => h.custom_values = list(val)?,
            "counter_reset_hint" => {
                h.counter_reset_hint = match val {
                    "reset" => sextant_model::CounterResetHint::CounterReset,
                    "not_reset" => sextant_model::CounterResetHint::NotCounterReset,
                    "gauge" => sextant_model::CounterResetHint::Gauge,
                    _ => sextant_model::CounterResetHint::Unknown,
                }
            }
            _ => return Err(format!("unknown histogram key {key}")),
        }
    }
    if !pos.is_empty() {
        h.positive_spans = vec![Span {
            offset: off,
            length: pos.len() as u32,
        }];
        h.positive_buckets = pos;
    }
    if !neg.is_empty() {
        h.negative_spans = vec![Span {
            offset: noff,
            length: neg.len() as u32,
        }];
        h.negative_buckets = neg;
    }
    Ok(h)
}

fn parse_time(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    parse_duration_ms(s)
}

fn parse_matcher(rest: &str) -> Result<Option<Matcher>, String> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(None);
    }
    if let Some(m) = rest.strip_prefix("msg:") {
        return Ok(Some(Matcher::Exact(m.trim().to_string())));
    }
    if let Some(r) = rest.strip_prefix("regex:") {
        let re = regex::Regex::new(r.trim()).map_err(|e| e.to_string())?;
        return Ok(Some(Matcher::Regex(re)));
    }
    Err(format!("bad expectation {rest:?}"))
}

/// Parses the expectation lines; returns how many lines belong to this eval.
fn parse_expect(block: &[String], e: &mut Expect) -> Result<usize, String> {
    for (k, l) in block.iter().enumerate() {
        if let Some(rest) = l.strip_prefix("expect ") {
            let rest = rest.trim();
            let (word, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            match word {
                "fail" => e.fail = Some(parse_matcher(tail)?),
                "warn" => e.warn.push(parse_matcher(tail)?),
                "info" => e.info.push(parse_matcher(tail)?),
                "no_warn" => e.no_warn = true,
                "no_info" => e.no_info = true,
                "ordered" => e.ordered = true,
                "string" => {
                    let t = tail.trim();
                    let (v, _) = lex_string(t, 0).map_err(|e| e.1)?;
                    e.string = Some(v);
                }
                "range" => {
                    // expect range vector from <t> to <t> step <d>
                    let w: Vec<&str> = tail.split_whitespace().collect();
                    if w.len() == 7 {
                        let (a, b, c) = (parse_time(w[2]), parse_time(w[4]), parse_time(w[6]));
                        if let (Some(a), Some(b), Some(c)) = (a, b, c) {
                            e.range_vector = Some((a, b, c));
                            continue;
                        }
                    }
                    return Err(format!("bad range expectation {l:?}"));
                }
                _ => return Err(format!("unknown expectation {l:?}")),
            }
            continue;
        }
        if l.starts_with("expected_fail_message") || l.starts_with("expected_fail_regexp") {
            let (w, tail) = l.split_once(' ').unwrap_or((l, ""));
            e.fail = Some(Some(if w == "expected_fail_message" {
                Matcher::Exact(tail.trim().to_string())
            } else {
                Matcher::Regex(regex::Regex::new(tail.trim()).map_err(|e| e.to_string())?)
            }));
            return Ok(k + 1);
        }
        if let Some(v) = parse_float(l) {
            e.scalar = Some(v);
            return Ok(k + 1);
        }
        let (labels, values) = split_series(l).ok_or("bad series line")?;
        let labels = parse_labels(labels)?;
        let items = parse_items(values)?;
        e.series.push((labels, items));
    }
    Ok(block.len())
}

/// Float equality as the Go runner defines it.
fn float_eq(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return sextant_model::is_stale_nan(a) == sextant_model::is_stale_nan(b);
    }
    if a == b {
        return true;
    }
    let eps = 1e-6;
    if a == 0.0 || b == 0.0 {
        return (a - b).abs() < eps * 2.2e-308;
    }
    (a - b).abs() / (a.abs() + b.abs()) < eps
}

fn nonzero(spans: &[Span], c: &[f64]) -> Vec<(i32, f64)> {
    crate::hist::buckets(spans, c)
        .into_iter()
        .filter(|x| x.1 != 0.0)
        .collect()
}

fn hist_eq(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    let beq = |x: Vec<(i32, f64)>, y: Vec<(i32, f64)>| {
        x.len() == y.len()
            && x.iter()
                .zip(&y)
                .all(|(p, q)| p.0 == q.0 && float_eq(p.1, q.1))
    };
    a.schema == b.schema
        && a.zero_threshold == b.zero_threshold
        && a.custom_values == b.custom_values
        && float_eq(a.count, b.count)
        && float_eq(a.sum, b.sum)
        && float_eq(a.zero_count, b.zero_count)
        && beq(
            nonzero(&a.positive_spans, &a.positive_buckets),
            nonzero(&b.positive_spans, &b.positive_buckets),
        )
        && beq(
            nonzero(&a.negative_spans, &a.negative_buckets),
            nonzero(&b.negative_spans, &b.negative_buckets),
        )
        && (b.counter_reset_hint == sextant_model::CounterResetHint::Unknown
            || a.counter_reset_hint == b.counter_reset_hint)
}

/// An observed point: float or histogram.
#[derive(Clone, Debug)]
enum Got {
    F(f64),
    H(FloatHistogram),
}

fn item_matches(want: &Item, got: &Got) -> bool {
    match (want, got) {
        (Item::Float(a), Got::F(b)) => float_eq(*b, *a),
        (Item::Hist(a), Got::H(b)) => hist_eq(b, a),
        _ => false,
    }
}

fn compare_vector(e: &Expect, got: &[(Labels, Got)]) -> Result<(), String> {
    if e.scalar.is_some() {
        return Err("expected scalar, got vector".into());
    }
    if got.len() != e.series.len() {
        return Err(format!(
            "expected {} series, got {}: {:?}",
            e.series.len(),
            got.len(),
            got.iter().map(|g| g.0.to_string()).collect::<Vec<_>>()
        ));
    }
    for (k, (labels, items)) in e.series.iter().enumerate() {
        let Some(pos) = got.iter().position(|g| &g.0 == labels) else {
            return Err(format!("missing series {labels}"));
        };
        if e.ordered && pos != k {
            return Err(format!("series {labels} at position {pos}, expected {k}"));
        }
        let want = items.first().cloned().unwrap_or(Item::None);
        if items.len() > 1 {
            return Err("instant eval with more than one value".into());
        }
        if !item_matches(&want, &got[pos].1) {
            return Err(format!(
                "series {labels}: expected {want:?}, got {:?}",
                got[pos].1
            ));
        }
    }
    Ok(())
}

fn compare_matrix(e: &Expect, m: &[Series], start: i64, step: i64) -> Result<(), String> {
    let mut expected: Vec<&(Labels, Vec<Item>)> = e.series.iter().collect();
    expected.retain(|(_, items)| items.iter().any(|i| !matches!(i, Item::None)));
    if m.len() != expected.len() {
        return Err(format!(
            "expected {} series, got {}: {:?}",
            expected.len(),
            m.len(),
            m.iter().map(|g| g.labels.to_string()).collect::<Vec<_>>()
        ));
    }
    for (labels, items) in expected {
        let Some(s) = m.iter().find(|s| &s.labels == labels) else {
            return Err(format!("missing series {labels}"));
        };
        let mut want: Vec<(i64, &Item)> = Vec::new();
        for (k, it) in items.iter().enumerate() {
            if !matches!(it, Item::None) {
                want.push((start + k as i64 * step, it));
            }
        }
        let mut got: Vec<(i64, Got)> = s.floats.iter().map(|p| (p.t, Got::F(p.v))).collect();
        got.extend(s.histograms.iter().map(|(t, h)| (*t, Got::H(h.clone()))));
        got.sort_by_key(|g| g.0);
        if got.len() != want.len() {
            return Err(format!(
                "series {labels}: expected {} points, got {}: {:?}",
                want.len(),
                got.len(),
                got
            ));
        }
        for ((wt, wi), (gt, gv)) in want.iter().zip(&got) {
            if wt != gt || !item_matches(wi, gv) {
                return Err(format!(
                    "series {labels}: expected {wi:?} at {wt}, got {gv:?} at {gt}"
                ));
            }
        }
    }
    Ok(())
}

fn compare(e: &Expect, v: &Value) -> Result<(), String> {
    match v {
        Value::Scalar { v, .. } => match e.scalar {
            Some(want) if float_eq(*v, want) => Ok(()),
            Some(want) => Err(format!("expected scalar {want}, got {v}")),
            None => Err(format!("expected vector, got scalar {v}")),
        },
        Value::String { s, .. } => match &e.string {
            Some(want) if want == s => Ok(()),
            _ => Err(format!("unexpected string {s:?}")),
        },
        Value::Vector(vs) => {
            if e.range_vector.is_some() {
                return Err("expected range vector, got instant vector".into());
            }
            let got: Vec<(Labels, Got)> = vs
                .iter()
                .map(|s| {
                    (
                        s.labels.clone(),
                        match &s.h {
                            Some(h) => Got::H((**h).clone()),
                            None => Got::F(s.f),
                        },
                    )
                })
                .collect();
            compare_vector(e, &got)
        }
        Value::Matrix(m) => match e.range_vector {
            Some((a, _, step)) => compare_matrix(e, m, a, step),
            None => Err("unexpected range vector".into()),
        },
    }
}

fn check_annots(
    kind: &str,
    want: &[Option<Matcher>],
    none: bool,
    got: &[String],
) -> Result<(), String> {
    if none && !got.is_empty() {
        return Err(format!("unexpected {kind}: {got:?}"));
    }
    if want.is_empty() {
        return Ok(());
    }
    if got.is_empty() {
        return Err(format!("expected {kind}, got none"));
    }
    for w in want.iter().flatten() {
        if !got.iter().any(|g| w.matches(g)) {
            return Err(format!("no {kind} matches {w:?}: {got:?}"));
        }
    }
    if want.iter().all(|w| w.is_some()) {
        for g in got {
            if !want.iter().flatten().any(|w| w.matches(g)) {
                return Err(format!("unexpected {kind} {g:?}"));
            }
        }
    }
    Ok(())
}

fn uses(expr: &Expr, names: &[&str]) -> bool {
    let mut found = false;
    expr.walk(&mut |n| match n {
        Expr::Call { func, .. } if names.contains(&func.name) => found = true,
        Expr::Vector(vs)
            if matches!(vs.at, Some(AtModifier::Start | AtModifier::End))
                && names.contains(&"start") =>
        {
            found = true
        }
        Expr::Matrix(m)
            if matches!(m.vs.at, Some(AtModifier::Start | AtModifier::End))
                && names.contains(&"start") =>
        {
            found = true
        }
        Expr::Subquery(s)
            if matches!(s.at, Some(AtModifier::Start | AtModifier::End))
                && names.contains(&"start") =>
        {
            found = true
        }
        _ => {}
    });
    found || (names.contains(&"start") && uses_step_range(expr))
}

fn uses_step_range(expr: &Expr) -> bool {
    let s = expr.to_string();
    ["step()", "range()", "start()", "end()"]
        .iter()
        .any(|f| s.contains(f))
}

/// Sets `@ t` on every selector and outermost subquery without one.
fn set_at(e: &mut Expr, t: i64) {
    match e {
        Expr::Vector(vs) if vs.at.is_none() => {
            vs.at = Some(AtModifier::Time(t));
        }
        Expr::Matrix(m) if m.vs.at.is_none() => {
            m.vs.at = Some(AtModifier::Time(t));
        }
        Expr::Subquery(s) if s.at.is_none() => {
            s.at = Some(AtModifier::Time(t));
        }
        Expr::Paren(x) | Expr::Neg(x) => set_at(x, t),
        Expr::Binary { lhs, rhs, .. } => {
            set_at(lhs, t);
            set_at(rhs, t);
        }
        Expr::Aggregate { expr, param, .. } => {
            if let Some(p) = param {
                set_at(p, t);
            }
            set_at(expr, t);
        }
        Expr::Call { args, .. } => args.iter_mut().for_each(|a| set_at(a, t)),
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)]
fn run_instant(
    engine: &Engine,
    store: &MemQuerier,
    e: &Expect,
    expr: &Expr,
    t: i64,
    check_annotations: bool,
    range_mode: bool,
    source: Option<&str>,
) -> Result<(), String> {
    let src = expr.to_string();
    let res = engine.instant_expr(store, expr, Some(source.unwrap_or(&src)), t);
    let res = match (res, &e.fail) {
        (Err(err), Some(m)) => {
            let msg = err.to_string();
            return match m {
                Some(m) if !m.matches(&msg) => Err(format!("error {msg:?} does not match {m:?}")),
                _ => Ok(()),
            };
        }
        (Err(err), None) => return Err(format!("unexpected error: {err}")),
        (Ok(_), Some(_)) => return Err("expected failure, got none".into()),
        (Ok(r), None) => r,
    };
    if check_annotations {
        check_annots("warning", &e.warn, e.no_warn, &res.warnings)?;
        check_annots("info", &e.info, e.no_info, &res.infos)?;
    }
    compare(e, &res.value)?;
    if !range_mode {
        return Ok(());
    }
    let r = engine
        .range_expr(store, expr, None, t - 60_000, t + 60_000, 60_000)
        .map_err(|err| format!("range mode: {err}"))?;
    let Value::Matrix(m) = r.value else {
        return Err("range mode: no matrix".into());
    };
    let mut got: Vec<(Labels, Got)> = Vec::new();
    for s in &m {
        if let Some(p) = s.floats.iter().find(|p| p.t == t) {
            got.push((s.labels.clone(), Got::F(p.v)));
        } else if let Some(h) = s.histograms.iter().find(|h| h.0 == t) {
            got.push((s.labels.clone(), Got::H(h.1.clone())));
        }
    }
    if matches!(res.value, Value::Scalar { .. }) {
        return match got.first() {
            Some((_, Got::F(v))) => compare(e, &Value::Scalar { t, v: *v }),
            _ => Err("range mode: no scalar".into()),
        }
        .map_err(|m| format!("range mode: {m}"));
    }
    compare_vector(
        &Expect {
            ordered: false,
            ..e.clone()
        },
        &got,
    )
    .map_err(|m| format!("range mode: {m}"))
}

fn run_eval(
    engine: &Engine,
    store: &MemQuerier,
    line: &str,
    block: &[String],
    lineno: usize,
) -> (EvalOutcome, usize) {
    let mut out = EvalOutcome {
        line: lineno,
        expr: String::new(),
        failure: None,
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let cmd = words.first().copied().unwrap_or("");
    let mut e = Expect::default();
    let consumed = match parse_expect(block, &mut e) {
        Ok(n) => n,
        Err(m) => {
            out.failure = Some(format!("bad expectations: {m}"));
            return (out, block.len());
        }
    };
    match cmd {
        "eval_fail" if e.fail.is_none() => e.fail = Some(None),
        "eval_warn" => e.warn.push(None),
        "eval_info" => e.info.push(None),
        "eval_ordered" => e.ordered = true,
        _ => {}
    }
    let kind = words.get(1).copied().unwrap_or("");
    let result = if kind == "instant" {
        // eval instant at <t> <expr>
        let rest = line.splitn(5, char::is_whitespace).collect::<Vec<_>>();
        let (t, expr_s) = match (rest.get(3), rest.get(4)) {
            (Some(t), Some(x)) => (parse_time(t), x.trim()),
            _ => (None, ""),
        };
        out.expr = expr_s.to_string();
        match (t, crate::parse(expr_s)) {
            (None, _) => Err("bad eval time".to_string()),
            (_, Err(err)) => Err(format!("parse error: {err}")),
            (Some(t), Ok(expr)) => eval_instant_all(engine, store, &e, &expr, t, expr_s),
        }
    } else if kind == "range" {
        // eval range from <s> to <e> step <d> <expr>
        let rest = line.splitn(9, char::is_whitespace).collect::<Vec<_>>();
        let times = (
            rest.get(3).and_then(|s| parse_time(s)),
            rest.get(5).and_then(|s| parse_time(s)),
            rest.get(7).and_then(|s| parse_time(s)),
        );
        let expr_s = rest.get(8).map_or("", |s| s.trim());
        out.expr = expr_s.to_string();
        match (times, crate::parse(expr_s)) {
            (_, Err(err)) => Err(format!("parse error: {err}")),
            ((Some(a), Some(b), Some(st)), Ok(expr)) => {
                match (
                    engine.range_expr(store, &expr, Some(expr_s), a, b, st),
                    &e.fail,
                ) {
                    (Err(err), Some(m)) => match m {
                        Some(m) if !m.matches(&err.to_string()) => {
                            Err(format!("error {err} does not match {m:?}"))
                        }
                        _ => Ok(()),
                    },
                    (Err(err), None) => Err(format!("unexpected error: {err}")),
                    (Ok(_), Some(_)) => Err("expected failure, got none".into()),
                    (Ok(r), None) => check_annots("warning", &e.warn, e.no_warn, &r.warnings)
                        .and_then(|_| check_annots("info", &e.info, e.no_info, &r.infos))
                        .and_then(|_| match &r.value {
                            Value::Matrix(m) => compare_matrix(&e, m, a, st),
                            _ => Err("range query did not return a matrix".into()),
                        }),
                }
            }
            _ => Err("bad range times".into()),
        }
    } else {
        Err(format!("malformed eval {line:?}"))
    };
    out.failure = result.err();
    (out, consumed)
}

fn eval_instant_all(
    engine: &Engine,
    store: &MemQuerier,
    e: &Expect,
    expr: &Expr,
    t: i64,
    source: &str,
) -> Result<(), String> {
    let range_mode =
        !e.ordered && e.range_vector.is_none() && e.string.is_none() && !uses(expr, &["start"]);
    run_instant(engine, store, e, expr, t, true, range_mode, Some(source))?;
    const UNSAFE: [&str; 11] = [
        "days_in_month",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "hour",
        "minute",
        "month",
        "year",
        "predict_linear",
        "time",
        "timestamp",
    ];
    if uses(expr, &UNSAFE) || uses(expr, &["start"]) {
        return Ok(());
    }
    let mut at_expr = expr.clone();
    set_at(&mut at_expr, t);
    let times: Vec<i64> = if t == 0 {
        vec![-1000, 0, 1000]
    } else {
        vec![-10 * t, 0, t / 5, t, 10 * t]
    };
    for et in times {
        run_instant(engine, store, e, &at_expr, et, false, range_mode, None)
            .map_err(|m| format!("with @ at {et}: {m}"))?;
    }
    Ok(())
}
