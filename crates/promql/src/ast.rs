//! The PromQL syntax tree. `Display` prints canonical PromQL, which `/api/v1/format_query`
//! returns, and which re-parses to the same tree.

use std::fmt;

use sextant_model::{Matcher, METRIC_NAME};

use crate::functions::FuncDef;

/// The type of value an expression produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Scalar,
    Vector,
    Matrix,
    String,
}

impl ValueType {
    /// Prometheus' name for the type, as used in errors and in the API's `resultType`.
    pub fn name(&self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "vector",
            ValueType::Matrix => "matrix",
            ValueType::String => "string",
        }
    }

    /// The long name used in type errors ("instant vector", "range vector").
    pub fn long_name(&self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
            ValueType::String => "string",
        }
    }
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eql,
    Neq,
    Gtr,
    Lss,
    Gte,
    Lte,
    And,
    Or,
    Unless,
    /// `</`
    TrimUpper,
    /// `>/`
    TrimLower,
}

impl BinOp {
    pub fn as_str(&self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Atan2 => "atan2",
            BinOp::Eql => "==",
            BinOp::Neq => "!=",
            BinOp::Gtr => ">",
            BinOp::Lss => "<",
            BinOp::Gte => ">=",
            BinOp::Lte => "<=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Unless => "unless",
            BinOp::TrimUpper => "</",
            BinOp::TrimLower => ">/",
        }
    }

    /// Binding strength; higher binds tighter.
    pub fn precedence(&self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eql | BinOp::Neq | BinOp::Gtr | BinOp::Lss | BinOp::Gte | BinOp::Lte => 3,
            BinOp::TrimUpper | BinOp::TrimLower => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Atan2 => 5,
            BinOp::Pow => 6,
        }
    }

    pub fn is_comparison(&self) -> bool {
        self.precedence() == 3 && !matches!(self, BinOp::TrimUpper | BinOp::TrimLower)
    }

    pub fn is_set(&self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }
}

/// Vector-matching cardinality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

/// How the two sides of a vector/vector operation are matched.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorMatching {
    pub card: Card,
    /// `on` (true) or `ignoring` (false).
    pub on: bool,
    /// Whether `on`/`ignoring` was written at all.
    pub explicit: bool,
    pub labels: Vec<String>,
    /// Labels of `group_left`/`group_right`.
    pub include: Vec<String>,
    /// `fill_left` value: used when the left side has no match.
    pub fill_left: Option<f64>,
    /// `fill_right` value: used when the right side has no match.
    pub fill_right: Option<f64>,
}

impl Default for VectorMatching {
    fn default() -> Self {
        VectorMatching {
            card: Card::OneToOne,
            on: false,
            explicit: false,
            labels: Vec::new(),
            include: Vec::new(),
            fill_left: None,
            fill_right: None,
        }
    }
}

/// Aggregation operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
    CountValues,
    Limitk,
    LimitRatio,
}

impl AggOp {
    pub fn from_name(s: &str) -> Option<AggOp> {
        Some(match s {
            "sum" => AggOp::Sum,
            "avg" => AggOp::Avg,
            "min" => AggOp::Min,
            "max" => AggOp::Max,
            "count" => AggOp::Count,
            "group" => AggOp::Group,
            "stddev" => AggOp::Stddev,
            "stdvar" => AggOp::Stdvar,
            "topk" => AggOp::Topk,
            "bottomk" => AggOp::Bottomk,
            "quantile" => AggOp::Quantile,
            "count_values" => AggOp::CountValues,
            "limitk" => AggOp::Limitk,
            "limit_ratio" => AggOp::LimitRatio,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Avg => "avg",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Count => "count",
            AggOp::Group => "group",
            AggOp::Stddev => "stddev",
            AggOp::Stdvar => "stdvar",
            AggOp::Topk => "topk",
            AggOp::Bottomk => "bottomk",
            AggOp::Quantile => "quantile",
            AggOp::CountValues => "count_values",
            AggOp::Limitk => "limitk",
            AggOp::LimitRatio => "limit_ratio",
        }
    }

    /// The type of the leading parameter, if the operator takes one.
    pub fn param_type(&self) -> Option<ValueType> {
        match self {
            AggOp::Topk | AggOp::Bottomk | AggOp::Quantile | AggOp::Limitk | AggOp::LimitRatio => {
                Some(ValueType::Scalar)
            }
            AggOp::CountValues => Some(ValueType::String),
            _ => None,
        }
    }
}

/// A duration-valued expression (Prometheus 3 duration arithmetic), in seconds.
#[derive(Clone, Debug, PartialEq)]
pub enum DurExpr {
    /// A plain number: seconds.
    Number(f64),
    /// A duration literal in milliseconds.
    Duration(i64),
    /// `step()`: the query's step.
    Step,
    /// `range()`: end - start of the query.
    Range,
    /// `start()`: the query's start time (as seconds since the epoch).
    Start,
    /// `end()`: the query's end time.
    End,
    Neg(Box<DurExpr>),
    Paren(Box<DurExpr>),
    Binary(BinOp, Box<DurExpr>, Box<DurExpr>),
    MinOf(Box<DurExpr>, Box<DurExpr>),
    MaxOf(Box<DurExpr>, Box<DurExpr>),
}

/// Values that duration expressions may depend on.
#[derive(Clone, Copy, Debug, Default)]
pub struct DurCtx {
    pub step_ms: i64,
    pub range_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl DurExpr {
    /// Evaluates to seconds.
    pub fn eval_secs(&self, ctx: DurCtx) -> f64 {
        match self {
            DurExpr::Number(n) => *n,
            DurExpr::Duration(ms) => *ms as f64 / 1000.0,
            DurExpr::Step => ctx.step_ms as f64 / 1000.0,
            DurExpr::Range => ctx.range_ms as f64 / 1000.0,
            DurExpr::Start => ctx.start_ms as f64 / 1000.0,
            DurExpr::End => ctx.end_ms as f64 / 1000.0,
            DurExpr::Neg(e) => -e.eval_secs(ctx),
            DurExpr::Paren(e) => e.eval_secs(ctx),
            DurExpr::Binary(op, a, b) => {
                let (a, b) = (a.eval_secs(ctx), b.eval_secs(ctx));
                match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                    BinOp::Mod => a % b,
                    BinOp::Pow => a.powf(b),
                    _ => f64::NAN,
                }
            }
            DurExpr::MinOf(a, b) => {
                let (a, b) = (a.eval_secs(ctx), b.eval_secs(ctx));
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    a.min(b)
                }
            }
            DurExpr::MaxOf(a, b) => {
                let (a, b) = (a.eval_secs(ctx), b.eval_secs(ctx));
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    a.max(b)
                }
            }
        }
    }

    /// Evaluates to milliseconds.
    pub fn eval_ms(&self, ctx: DurCtx) -> i64 {
        match self {
            DurExpr::Duration(ms) => *ms,
            _ => (self.eval_secs(ctx) * 1000.0).round() as i64,
        }
    }

    /// True when the value does not depend on the query (no `step()`/`range()`).
    pub fn is_const(&self) -> bool {
        match self {
            DurExpr::Number(_) | DurExpr::Duration(_) => true,
            DurExpr::Step | DurExpr::Range | DurExpr::Start | DurExpr::End => false,
            DurExpr::Neg(e) | DurExpr::Paren(e) => e.is_const(),
            DurExpr::Binary(_, a, b) | DurExpr::MinOf(a, b) | DurExpr::MaxOf(a, b) => {
                a.is_const() && b.is_const()
            }
        }
    }
}

impl fmt::Display for DurExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurExpr::Number(n) => write!(f, "{}", fmt_float(*n)),
            DurExpr::Duration(ms) => f.write_str(&fmt_duration(*ms)),
            DurExpr::Step => f.write_str("step()"),
            DurExpr::Range => f.write_str("range()"),
            DurExpr::Start => f.write_str("start()"),
            DurExpr::End => f.write_str("end()"),
            DurExpr::Neg(e) => write!(f, "-{e}"),
            DurExpr::Paren(e) => write!(f, "({e})"),
            DurExpr::Binary(op, a, b) => write!(f, "{a} {} {b}", op.as_str()),
            DurExpr::MinOf(a, b) => write!(f, "min_of({a}, {b})"),
            DurExpr::MaxOf(a, b) => write!(f, "max_of({a}, {b})"),
        }
    }
}

/// The `@` modifier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AtModifier {
    /// A fixed time in milliseconds.
    Time(i64),
    Start,
    End,
}

/// An instant-vector selector, with its modifiers.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorSelector {
    /// The metric name if written outside the braces (or as a bare quoted name).
    pub name: Option<String>,
    /// All matchers, including the one for `__name__` when a name was given.
    pub matchers: Vec<Matcher>,
    pub offset: Option<DurExpr>,
    pub at: Option<AtModifier>,
    /// `anchored` modifier on an instant selector.
    pub anchored: bool,
    /// `smoothed` modifier on an instant selector.
    pub smoothed: bool,
    /// Byte offset in the query.
    pub pos: usize,
}

/// A range-vector selector `sel[range]`.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixSelector {
    pub vs: VectorSelector,
    pub range: DurExpr,
    /// `anchored` modifier (extended range selectors).
    pub anchored: bool,
    /// `smoothed` modifier (extended range selectors).
    pub smoothed: bool,
}

/// A subquery `expr[range:step]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Subquery {
    pub expr: Box<Expr>,
    pub range: DurExpr,
    pub step: Option<DurExpr>,
    pub offset: Option<DurExpr>,
    pub at: Option<AtModifier>,
}

/// A PromQL expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Number(f64),
    Str(String),
    Vector(VectorSelector),
    Matrix(MatrixSelector),
    Subquery(Subquery),
    Paren(Box<Expr>),
    /// Unary minus (unary plus is dropped by the parser).
    Neg(Box<Expr>),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        return_bool: bool,
        /// Present when both sides are vectors (or modifiers were written).
        matching: Option<VectorMatching>,
        pos: usize,
    },
    Aggregate {
        op: AggOp,
        expr: Box<Expr>,
        param: Option<Box<Expr>>,
        grouping: Vec<String>,
        without: bool,
        pos: usize,
        /// Byte offset of the parameter (`k`, `q`, ...), 0 without one.
        param_pos: usize,
    },
    Call {
        func: &'static FuncDef,
        args: Vec<Expr>,
        pos: usize,
    },
    /// `step()`, `range()` etc. used as an expression outside durations.
    DurValue(DurExpr),
}

impl Expr {
    /// The type of value this expression produces.
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::Number(_) | Expr::DurValue(_) => ValueType::Scalar,
            Expr::Str(_) => ValueType::String,
            Expr::Vector(_) => ValueType::Vector,
            Expr::Matrix(_) | Expr::Subquery(_) => ValueType::Matrix,
            Expr::Paren(e) | Expr::Neg(e) => e.value_type(),
            Expr::Binary { lhs, rhs, .. } => {
                if lhs.value_type() == ValueType::Scalar && rhs.value_type() == ValueType::Scalar {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Aggregate { .. } => ValueType::Vector,
            Expr::Call { func, .. } => func.ret,
        }
    }

    /// Strips parentheses.
    pub fn unparen(&self) -> &Expr {
        match self {
            Expr::Paren(e) => e.unparen(),
            e => e,
        }
    }

    /// Calls `f` on this node and every descendant.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Subquery(s) => s.expr.walk(f),
            Expr::Paren(e) | Expr::Neg(e) => e.walk(f),
            Expr::Binary { lhs, rhs, .. } => {
                lhs.walk(f);
                rhs.walk(f);
            }
            Expr::Aggregate { expr, param, .. } => {
                if let Some(p) = param {
                    p.walk(f);
                }
                expr.walk(f);
            }
            Expr::Call { args, .. } => args.iter().for_each(|a| a.walk(f)),
            _ => {}
        }
    }
}

/// Formats a float like Go's `strconv.FormatFloat(v, 'g', -1, 64)` for common values.
pub fn fmt_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        let s = format!("{v}");
        if v != 0.0 && (v.abs() >= 1e21 || v.abs() < 1e-4) {
            let e = format!("{v:e}");
            // Go style exponent: e+21, e-05.
            if let Some((m, ex)) = e.split_once('e') {
                let (sign, digits) = match ex.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', ex),
                };
                let digits = if digits.len() < 2 {
                    format!("0{digits}")
                } else {
                    digits.to_string()
                };
                return format!("{m}e{sign}{digits}");
            }
        }
        s
    }
}

/// Formats milliseconds as a Prometheus duration (`1h30m`, `5s500ms`, `0s`).
pub fn fmt_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms.unsigned_abs();
    if ms < 0 {
        out.push('-');
    }
    for (unit, size) in [
        ("y", 31_536_000_000u64),
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

fn write_mods(
    f: &mut fmt::Formatter<'_>,
    offset: &Option<DurExpr>,
    at: &Option<AtModifier>,
) -> fmt::Result {
    write_at(f, at)?;
    write_offset(f, offset)
}

/// Writes ` @ <t>` the way Prometheus does (`%.3f` seconds, `start()`, `end()`).
fn write_at(f: &mut fmt::Formatter<'_>, at: &Option<AtModifier>) -> fmt::Result {
    match at {
        Some(AtModifier::Time(ms)) => {
            write!(f, " @ {}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))?
        }
        Some(AtModifier::Start) => f.write_str(" @ start()")?,
        Some(AtModifier::End) => f.write_str(" @ end()")?,
        None => {}
    }
    Ok(())
}

fn write_offset(f: &mut fmt::Formatter<'_>, offset: &Option<DurExpr>) -> fmt::Result {
    if let Some(o) = offset {
        match o {
            DurExpr::Duration(ms) if *ms < 0 => write!(f, " offset -{}", fmt_duration(-ms))?,
            DurExpr::Duration(_) | DurExpr::Number(_) | DurExpr::Paren(_) => {
                write!(f, " offset {o}")?
            }
            other => write!(f, " offset ({other})")?,
        }
    }
    Ok(())
}

impl fmt::Display for VectorSelector {
    /// Prometheus' order: selector, `@`, `anchored`/`smoothed`, `offset`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_plain(f)?;
        write_at(f, &self.at)?;
        if self.anchored {
            f.write_str(" anchored")?;
        }
        if self.smoothed {
            f.write_str(" smoothed")?;
        }
        write_offset(f, &self.offset)
    }
}

impl VectorSelector {
    /// The selector without modifiers, like Prometheus' `VectorSelector.String()`: the metric
    /// name if it is a valid identifier, then the other matchers sorted as text and joined by
    /// `,`.
    fn fmt_plain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self
            .name
            .as_deref()
            .filter(|n| sextant_model::labels::is_valid_metric_name(n));
        let mut ms: Vec<String> = Vec::new();
        let mut name_matcher_seen = false;
        for m in &self.matchers {
            if !name_matcher_seen
                && name.is_some()
                && m.name == METRIC_NAME
                && m.op == sextant_model::MatchOp::Equal
                && name == Some(m.value.as_str())
            {
                name_matcher_seen = true;
                continue;
            }
            let lname = if sextant_model::labels::is_valid_label_name(&m.name) {
                m.name.clone()
            } else {
                quote(&m.name)
            };
            ms.push(format!("{lname}{}{}", m.op.as_str(), quote(&m.value)));
        }
        ms.sort();
        if let Some(n) = name {
            f.write_str(n)?;
        }
        if !ms.is_empty() || name.is_none() {
            write!(f, "{{{}}}", ms.join(","))?;
        }
        Ok(())
    }
}

fn write_dur_in_brackets(f: &mut fmt::Formatter<'_>, d: &DurExpr) -> fmt::Result {
    write!(f, "{d}")
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number(n) => f.write_str(&fmt_float(*n)),
            Expr::Str(s) => f.write_str(&quote(s)),
            Expr::Vector(vs) => write!(f, "{vs}"),
            Expr::Matrix(m) => {
                m.vs.fmt_plain(f)?;
                f.write_str("[")?;
                write_dur_in_brackets(f, &m.range)?;
                f.write_str("]")?;
                if m.anchored {
                    f.write_str(" anchored")?;
                }
                if m.smoothed {
                    f.write_str(" smoothed")?;
                }
                write_mods(f, &m.vs.offset, &m.vs.at)
            }
            Expr::Subquery(s) => {
                write!(f, "{}[", s.expr)?;
                write_dur_in_brackets(f, &s.range)?;
                f.write_str(":")?;
                if let Some(st) = &s.step {
                    write_dur_in_brackets(f, st)?;
                }
                f.write_str("]")?;
                write_mods(f, &s.offset, &s.at)
            }
            Expr::Paren(e) => write!(f, "({e})"),
            Expr::Neg(e) => write!(f, "-{e}"),
            Expr::Binary {
                op,
                lhs,
                rhs,
                return_bool,
                matching,
                ..
            } => {
                write!(f, "{lhs} {}", op.as_str())?;
                if *return_bool {
                    f.write_str(" bool")?;
                }
                if let Some(m) = matching {
                    // Prometheus drops an empty `ignoring ()`.
                    let grouped = matches!(m.card, Card::ManyToOne | Card::OneToMany);
                    if m.on || !m.labels.is_empty() || grouped {
                        let kw = if m.on { "on" } else { "ignoring" };
                        write!(f, " {kw} ({})", m.labels.join(", "))?;
                    }
                    match m.card {
                        Card::ManyToOne => write!(f, " group_left ({})", m.include.join(", "))?,
                        Card::OneToMany => write!(f, " group_right ({})", m.include.join(", "))?,
                        _ => {}
                    }
                    match (m.fill_left, m.fill_right) {
                        (Some(a), Some(b)) if a.to_bits() == b.to_bits() => {
                            write!(f, " fill ({})", fmt_float(a))?
                        }
                        (l, r) => {
                            if let Some(a) = l {
                                write!(f, " fill_left ({})", fmt_float(a))?;
                            }
                            if let Some(b) = r {
                                write!(f, " fill_right ({})", fmt_float(b))?;
                            }
                        }
                    }
                }
                write!(f, " {rhs}")
            }
            Expr::Aggregate {
                op,
                expr,
                param,
                grouping,
                without,
                ..
            } => {
                f.write_str(op.as_str())?;
                if *without {
                    write!(f, " without ({}) ", grouping.join(", "))?;
                } else if !grouping.is_empty() {
                    write!(f, " by ({}) ", grouping.join(", "))?;
                }
                f.write_str("(")?;
                if let Some(p) = param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{expr})")
            }
            Expr::Call { func, args, .. } => {
                write!(f, "{}(", func.name)?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Expr::DurValue(d) => write!(f, "{d}"),
        }
    }
}
