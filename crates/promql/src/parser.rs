//! A recursive-descent PromQL parser with precedence climbing for binary operators. It builds
//! our own AST, checks types the way Prometheus does, and reports errors with a line/column and
//! what was expected there.

use sextant_model::{MatchOp, Matcher, METRIC_NAME};

use crate::ast::*;
use crate::error::ParseError;
use crate::functions;
use crate::lexer::{lex, line_col, Tok, Token};

/// Parses a PromQL expression.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    let toks = lex(input)?;
    let mut p = Parser {
        allow_empty_selector: false,
        input,
        toks,
        i: 0,
    };
    let e = p.parse_expr(0)?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected(""));
    }
    Ok(e)
}

/// Parses a series selector (`foo{a="b"}`), as used by `match[]` API parameters.
pub fn parse_selector(input: &str) -> Result<VectorSelector, ParseError> {
    match parse(input)? {
        Expr::Vector(vs) if vs.offset.is_none() && vs.at.is_none() => Ok(vs),
        _ => Err(ParseError::new(
            line_col(input, 0),
            "expected a series selector",
        )),
    }
}

struct Parser<'a> {
    /// Set while parsing the second argument of `info()`, whose matchers may all match empty.
    allow_empty_selector: bool,
    input: &'a str,
    toks: Vec<Token>,
    i: usize,
}

type R<T> = Result<T, ParseError>;

const AGG_KEYWORDS: [&str; 14] = [
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "limitk",
    "limit_ratio",
];

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].tok
    }

    fn peek_at(&self, k: usize) -> &Tok {
        &self.toks[(self.i + k).min(self.toks.len() - 1)].tok
    }

    fn cur(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.cur().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn err_at(&self, pos: usize, msg: impl Into<String>) -> ParseError {
        ParseError::new(line_col(self.input, pos), msg)
    }

    /// "unexpected <token>, expected <what>", or at the end of the input the lexer-level
    /// message Prometheus gives for an unclosed `(`, `[` or `{`.
    fn unexpected(&self, expected: &str) -> ParseError {
        self.unexpected_in("", expected)
    }

    /// Like [`Parser::unexpected`] with Prometheus' " in <context>".
    fn unexpected_in(&self, context: &str, expected: &str) -> ParseError {
        let t = self.cur();
        if t.tok == Tok::Eof {
            if let Some(msg) = self.unclosed() {
                return self.err_at(t.pos, msg);
            }
        }
        let mut msg = format!("unexpected {}", t.describe());
        if !context.is_empty() {
            msg.push_str(" in ");
            msg.push_str(context);
        }
        if !expected.is_empty() {
            msg.push_str(", expected ");
            msg.push_str(expected);
        }
        self.err_at(t.pos, msg)
    }

    /// The innermost delimiter left open before the current token, as Prometheus' lexer
    /// reports it at the end of the input.
    fn unclosed(&self) -> Option<&'static str> {
        let mut stack = Vec::new();
        for t in &self.toks[..self.i.min(self.toks.len())] {
            match t.tok {
                Tok::LParen | Tok::LBracket | Tok::LBrace => stack.push(t.tok.clone()),
                Tok::RParen | Tok::RBracket | Tok::RBrace => {
                    stack.pop();
                }
                _ => {}
            }
        }
        Some(match stack.last()? {
            Tok::LParen => "unclosed left parenthesis",
            Tok::LBracket => "unclosed left bracket",
            _ => "unexpected end of input inside braces",
        })
    }

    fn expect(&mut self, tok: Tok, what: &str) -> R<Token> {
        if *self.peek() == tok {
            Ok(self.next())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn peek_binop(&self) -> Option<BinOp> {
        Some(match self.peek() {
            Tok::Add => BinOp::Add,
            Tok::Sub => BinOp::Sub,
            Tok::Mul => BinOp::Mul,
            Tok::Div => BinOp::Div,
            Tok::Mod => BinOp::Mod,
            Tok::Pow => BinOp::Pow,
            Tok::Eql => BinOp::Eql,
            Tok::Neq => BinOp::Neq,
            Tok::Gtr => BinOp::Gtr,
            Tok::Lss => BinOp::Lss,
            Tok::Gte => BinOp::Gte,
            Tok::Lte => BinOp::Lte,
            Tok::TrimUpper => BinOp::TrimUpper,
            Tok::TrimLower => BinOp::TrimLower,
            Tok::Ident(s) => match s.to_ascii_lowercase().as_str() {
                "and" => BinOp::And,
                "or" => BinOp::Or,
                "unless" => BinOp::Unless,
                "atan2" => BinOp::Atan2,
                _ => return None,
            },
            _ => return None,
        })
    }

    fn parse_expr(&mut self, min_prec: u8) -> R<Expr> {
        let start = self.cur().pos;
        let mut lhs = self.parse_unary()?;
        while let Some(op) = self.peek_binop() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let pos = self.next().pos;
            let mut return_bool = false;
            if self.is_kw("bool") {
                self.next();
                return_bool = true;
            }
            let matching = self.parse_matching(op)?;
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.parse_expr(next_min)?;
            lhs = self.make_binary(op, lhs, rhs, return_bool, matching, pos, start)?;
        }
        Ok(lhs)
    }

    fn parse_matching(&mut self, op: BinOp) -> R<Option<VectorMatching>> {
        let mut m = VectorMatching::default();
        let mut any = false;
        if self.is_kw("on") || self.is_kw("ignoring") {
            m.on = self.is_kw("on");
            m.explicit = true;
            self.next();
            m.labels = self.parse_label_list()?;
            any = true;
        }
        if self.is_kw("group_left") || self.is_kw("group_right") {
            let pos = self.cur().pos;
            if op.is_set() {
                return Err(self.err_at(
                    pos,
                    format!("no grouping allowed for \"{}\" operation", op.as_str()),
                ));
            }
            m.card = if self.is_kw("group_left") {
                Card::ManyToOne
            } else {
                Card::OneToMany
            };
            self.next();
            if *self.peek() == Tok::LParen {
                m.include = self.parse_label_list()?;
            }
            any = true;
            for l in &m.include {
                if m.on && m.labels.contains(l) {
                    return Err(self.err_at(
                        pos,
                        format!("label \"{l}\" must not occur in ON and GROUP clause at once"),
                    ));
                }
            }
        }
        loop {
            if *self.peek_at(1) != Tok::LParen {
                break;
            }
            let which = if self.is_kw("fill") {
                0
            } else if self.is_kw("fill_left") {
                1
            } else if self.is_kw("fill_right") {
                2
            } else {
                break;
            };
            self.next();
            self.expect(Tok::LParen, "\"(\" after fill modifier")?;
            let v = self.parse_signed_number()?;
            self.expect(Tok::RParen, "\")\" after fill value")?;
            if which != 2 {
                m.fill_left = Some(v);
            }
            if which != 1 {
                m.fill_right = Some(v);
            }
            any = true;
        }
        Ok(if any { Some(m) } else { None })
    }

    fn parse_signed_number(&mut self) -> R<f64> {
        let mut sign = 1.0;
        loop {
            match self.peek() {
                Tok::Sub => {
                    sign = -sign;
                    self.next();
                }
                Tok::Add => {
                    self.next();
                }
                _ => break,
            }
        }
        match self.peek().clone() {
            Tok::Number(n) => {
                self.next();
                Ok(sign * n)
            }
            Tok::Duration(ms) => {
                self.next();
                Ok(sign * ms as f64 / 1000.0)
            }
            _ => Err(self.unexpected("number")),
        }
    }

    fn parse_label_name(&mut self) -> R<String> {
        let t = self.cur().clone();
        let name = match t.tok {
            Tok::Ident(s) => s,
            Tok::Str(s) => s,
            Tok::Number(_) if t.text.chars().all(|c| c.is_ascii_alphabetic()) => t.text,
            _ => return Err(self.unexpected_in("grouping opts", "label")),
        };
        self.next();
        Ok(name)
    }

    fn parse_label_list(&mut self) -> R<Vec<String>> {
        if *self.peek() != Tok::LParen {
            return Err(self.unexpected_in("grouping opts", "\"(\""));
        }
        self.next();
        let mut out = Vec::new();
        loop {
            if *self.peek() == Tok::RParen {
                self.next();
                break;
            }
            out.push(self.parse_label_name()?);
            match self.peek() {
                Tok::Comma => {
                    self.next();
                }
                Tok::RParen => {}
                _ => return Err(self.unexpected_in("grouping opts", "\",\" or \")\"")),
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn make_binary(
        &self,
        op: BinOp,
        lhs: Expr,
        rhs: Expr,
        return_bool: bool,
        matching: Option<VectorMatching>,
        pos: usize,
        start: usize,
    ) -> R<Expr> {
        let (lt, rt) = (lhs.value_type(), rhs.value_type());
        for t in [lt, rt] {
            if t != ValueType::Scalar && t != ValueType::Vector {
                // Prometheus reports this at the start of the whole binary expression.
                return Err(self.err_at(
                    start,
                    "binary expression must contain only scalar and instant vector types",
                ));
            }
        }
        if return_bool && !op.is_comparison() {
            return Err(self.err_at(
                pos,
                "bool modifier can only be used on comparison operators",
            ));
        }
        let both_vec = lt == ValueType::Vector && rt == ValueType::Vector;
        if op.is_comparison() && !return_bool && lt == ValueType::Scalar && rt == ValueType::Scalar
        {
            return Err(self.err_at(pos, "comparisons between scalars must use BOOL modifier"));
        }
        if op.is_set() && !both_vec {
            return Err(self.err_at(
                pos,
                format!(
                    "set operator \"{}\" not allowed in binary scalar expression",
                    op.as_str()
                ),
            ));
        }
        let matching = match matching {
            Some(m) if !both_vec && (m.explicit || m.card != Card::OneToOne) => {
                return Err(self.err_at(pos, "vector matching only allowed between instant vectors"))
            }
            Some(mut m) => {
                if op.is_set() {
                    m.card = Card::ManyToMany;
                }
                Some(m)
            }
            None if both_vec => Some(VectorMatching {
                card: if op.is_set() {
                    Card::ManyToMany
                } else {
                    Card::OneToOne
                },
                ..Default::default()
            }),
            None => None,
        };
        Ok(Expr::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
            return_bool,
            matching,
            pos,
        })
    }

    fn parse_unary(&mut self) -> R<Expr> {
        match self.peek() {
            Tok::Sub | Tok::Add => {
                let neg = *self.peek() == Tok::Sub;
                let pos = self.next().pos;
                let e = self.parse_expr(BinOp::Pow.precedence())?;
                let t = e.value_type();
                if t != ValueType::Scalar && t != ValueType::Vector {
                    return Err(self.err_at(
                        pos,
                        format!(
                            "unary expression only allowed on expressions of type scalar or instant vector, got \"{}\"",
                            t.long_name()
                        ),
                    ));
                }
                if !neg {
                    return Ok(e);
                }
                Ok(match e {
                    Expr::Number(n) => Expr::Number(-n),
                    e => Expr::Neg(Box::new(e)),
                })
            }
            _ => self.parse_postfix(),
        }
    }

    fn parse_postfix(&mut self) -> R<Expr> {
        // Modifier errors are reported at the start of the modified expression.
        let start = self.cur().pos;
        let mut e = self.parse_primary()?;
        loop {
            match self.peek() {
                Tok::LBracket => {
                    e = self.parse_bracket(e)?;
                }
                Tok::Ident(s) if s.eq_ignore_ascii_case("offset") => {
                    self.next();
                    let d = self.parse_offset_value()?;
                    e = self.set_offset(e, d, start)?;
                }
                Tok::At => {
                    self.next();
                    let at = self.parse_at_value()?;
                    e = self.set_at(e, at, start)?;
                }
                Tok::Ident(s)
                    if (s.eq_ignore_ascii_case("anchored")
                        || s.eq_ignore_ascii_case("smoothed"))
                        && matches!(e, Expr::Matrix(_) | Expr::Vector(_)) =>
                {
                    let anchored = s.eq_ignore_ascii_case("anchored");
                    self.next();
                    match &mut e {
                        Expr::Matrix(m) => {
                            if anchored {
                                m.anchored = true;
                            } else {
                                m.smoothed = true;
                            }
                        }
                        Expr::Vector(vs) => {
                            if anchored {
                                vs.anchored = true;
                            } else {
                                vs.smoothed = true;
                            }
                        }
                        _ => {}
                    }
                }
                _ => break,
            }
        }
        Ok(e)
    }

    fn set_offset(&self, e: Expr, d: DurExpr, pos: usize) -> R<Expr> {
        let dup = || self.err_at(pos, "offset may not be set multiple times");
        match e {
            Expr::Vector(mut vs) => {
                if vs.offset.is_some() {
                    return Err(dup());
                }
                vs.offset = Some(d);
                Ok(Expr::Vector(vs))
            }
            Expr::Matrix(mut m) => {
                if m.vs.offset.is_some() {
                    return Err(dup());
                }
                m.vs.offset = Some(d);
                Ok(Expr::Matrix(m))
            }
            Expr::Subquery(mut s) => {
                if s.offset.is_some() {
                    return Err(dup());
                }
                s.offset = Some(d);
                Ok(Expr::Subquery(s))
            }
            _ => Err(self.err_at(
                pos,
                "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery",
            )),
        }
    }

    fn set_at(&self, e: Expr, at: AtModifier, pos: usize) -> R<Expr> {
        let dup = || self.err_at(pos, "@ <timestamp> may not be set multiple times");
        match e {
            Expr::Vector(mut vs) => {
                if vs.at.is_some() {
                    return Err(dup());
                }
                vs.at = Some(at);
                Ok(Expr::Vector(vs))
            }
            Expr::Matrix(mut m) => {
                if m.vs.at.is_some() {
                    return Err(dup());
                }
                m.vs.at = Some(at);
                Ok(Expr::Matrix(m))
            }
            Expr::Subquery(mut s) => {
                if s.at.is_some() {
                    return Err(dup());
                }
                s.at = Some(at);
                Ok(Expr::Subquery(s))
            }
            _ => Err(self.err_at(
                pos,
                "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery",
            )),
        }
    }

    fn parse_at_value(&mut self) -> R<AtModifier> {
        if self.is_kw("start") || self.is_kw("end") {
            let start = self.is_kw("start");
            self.next();
            self.expect(Tok::LParen, "\"(\"")?;
            self.expect(Tok::RParen, "\")\"")?;
            return Ok(if start {
                AtModifier::Start
            } else {
                AtModifier::End
            });
        }
        let pos = self.cur().pos;
        if !matches!(
            self.peek(),
            Tok::Number(_) | Tok::Duration(_) | Tok::Add | Tok::Sub
        ) {
            return Err(self.unexpected_in("@", "timestamp"));
        }
        let v = self.parse_signed_number()?;
        if !v.is_finite() || v.abs() > 9.2e15 {
            return Err(self.err_at(pos, format!("timestamp out of bounds for @ modifier: {v}")));
        }
        Ok(AtModifier::Time((v * 1000.0).round() as i64))
    }

    /// `offset` takes a sign and one duration atom; arithmetic needs parentheses.
    fn parse_offset_value(&mut self) -> R<DurExpr> {
        if *self.peek() == Tok::Eof {
            return Err(self.unexpected_in("offset", "duration"));
        }
        match self.peek() {
            Tok::Sub => {
                self.next();
                let a = self.parse_dur_atom()?;
                Ok(match a {
                    DurExpr::Duration(ms) => DurExpr::Duration(-ms),
                    DurExpr::Number(n) => DurExpr::Number(-n),
                    a => DurExpr::Neg(Box::new(a)),
                })
            }
            Tok::Add => {
                self.next();
                self.parse_dur_atom()
            }
            _ => self.parse_dur_atom(),
        }
    }

    fn parse_dur_atom(&mut self) -> R<DurExpr> {
        match self.peek().clone() {
            Tok::Number(n) => {
                self.next();
                Ok(DurExpr::Number(n))
            }
            Tok::Duration(ms) => {
                self.next();
                Ok(DurExpr::Duration(ms))
            }
            Tok::LParen => {
                self.next();
                let e = self.parse_dur_expr(0)?;
                self.expect(Tok::RParen, "\")\" in duration expression")?;
                Ok(DurExpr::Paren(Box::new(e)))
            }
            Tok::Sub => {
                self.next();
                let e = self.parse_dur_expr(BinOp::Pow.precedence())?;
                Ok(DurExpr::Neg(Box::new(e)))
            }
            Tok::Add => {
                self.next();
                self.parse_dur_expr(BinOp::Pow.precedence())
            }
            Tok::Ident(s) => {
                let l = s.to_ascii_lowercase();
                match l.as_str() {
                    "step" | "range" | "start" | "end" => {
                        self.next();
                        self.expect(Tok::LParen, "\"(\"")?;
                        self.expect(Tok::RParen, "\")\"")?;
                        Ok(match l.as_str() {
                            "step" => DurExpr::Step,
                            "range" => DurExpr::Range,
                            "start" => DurExpr::Start,
                            _ => DurExpr::End,
                        })
                    }
                    "min_of" | "max_of" => {
                        self.next();
                        self.expect(Tok::LParen, "\"(\"")?;
                        let a = self.parse_dur_expr(0)?;
                        self.expect(Tok::Comma, "\",\"")?;
                        let b = self.parse_dur_expr(0)?;
                        self.expect(Tok::RParen, "\")\"")?;
                        Ok(if l == "min_of" {
                            DurExpr::MinOf(Box::new(a), Box::new(b))
                        } else {
                            DurExpr::MaxOf(Box::new(a), Box::new(b))
                        })
                    }
                    _ => Err(self.unexpected("duration")),
                }
            }
            _ => Err(self.unexpected("duration")),
        }
    }

    fn parse_dur_expr(&mut self, min_prec: u8) -> R<DurExpr> {
        let mut lhs = self.parse_dur_atom()?;
        loop {
            let op = match self.peek() {
                Tok::Add => BinOp::Add,
                Tok::Sub => BinOp::Sub,
                Tok::Mul => BinOp::Mul,
                Tok::Div => BinOp::Div,
                Tok::Mod => BinOp::Mod,
                Tok::Pow => BinOp::Pow,
                _ => break,
            };
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            self.next();
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.parse_dur_expr(next_min)?;
            lhs = DurExpr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn check_positive(&self, d: &DurExpr, pos: usize, what: &str) -> R<()> {
        if d.is_const() {
            let ms = d.eval_ms(DurCtx::default());
            if ms <= 0 {
                return Err(self.err_at(
                    pos,
                    format!("{what} must be greater than 0, got {}", fmt_duration(ms)),
                ));
            }
        }
        Ok(())
    }

    fn parse_bracket(&mut self, e: Expr) -> R<Expr> {
        let lpos = self.next().pos;
        let range = self.parse_dur_expr(0)?;
        self.check_positive(&range, lpos, "duration")?;
        if *self.peek() == Tok::Colon {
            self.next();
            let step = if *self.peek() == Tok::RBracket {
                None
            } else {
                let s = self.parse_dur_expr(0)?;
                self.check_positive(&s, lpos, "step")?;
                Some(s)
            };
            self.expect(Tok::RBracket, "\"]\" to close the subquery")?;
            if e.value_type() != ValueType::Vector {
                return Err(self.err_at(
                    lpos,
                    format!(
                        "subquery is only allowed on instant vector, got {} instead",
                        e.value_type().long_name()
                    ),
                ));
            }
            return Ok(Expr::Subquery(Subquery {
                expr: Box::new(e),
                range,
                step,
                offset: None,
                at: None,
            }));
        }
        self.expect(Tok::RBracket, "\"]\" or \":\" in range")?;
        match e {
            Expr::Vector(vs) => {
                if vs.offset.is_some() || vs.at.is_some() {
                    return Err(self.err_at(lpos, "no offset or @ modifiers allowed before range"));
                }
                Ok(Expr::Matrix(MatrixSelector {
                    vs,
                    range,
                    anchored: false,
                    smoothed: false,
                }))
            }
            _ => Err(self.err_at(lpos, "ranges only allowed for vector selectors")),
        }
    }

    fn parse_primary(&mut self) -> R<Expr> {
        let t = self.cur().clone();
        match &t.tok {
            Tok::Number(n) => {
                self.next();
                Ok(Expr::Number(*n))
            }
            Tok::Duration(ms) => {
                self.next();
                Ok(Expr::Number(*ms as f64 / 1000.0))
            }
            Tok::Str(s) => {
                self.next();
                Ok(Expr::Str(s.clone()))
            }
            Tok::LParen => {
                self.next();
                let e = self.parse_expr(0)?;
                self.expect(Tok::RParen, "\")\"")?;
                Ok(Expr::Paren(Box::new(e)))
            }
            Tok::LBrace => self.parse_selector(None, t.pos),
            Tok::Ident(name) | Tok::MetricIdent(name) => {
                let name = name.clone();
                let lname = name.to_ascii_lowercase();
                let next = self.peek_at(1).clone();
                if AGG_KEYWORDS.contains(&lname.as_str()) {
                    let is_grouping = matches!(&next, Tok::Ident(s) if s.eq_ignore_ascii_case("by") || s.eq_ignore_ascii_case("without"));
                    if next == Tok::LParen || is_grouping {
                        return self.parse_aggregate(&lname, t.pos);
                    }
                }
                if next == Tok::LParen
                    && matches!(
                        lname.as_str(),
                        "step" | "range" | "start" | "end" | "min_of" | "max_of"
                    )
                {
                    let d = self.parse_dur_atom()?;
                    return Ok(Expr::DurValue(d));
                }
                if next == Tok::LParen {
                    return self.parse_call(&name, t.pos);
                }
                self.next();
                self.parse_selector(Some(name), t.pos)
            }
            _ => Err(self.unexpected("")),
        }
    }

    fn parse_call(&mut self, name: &str, pos: usize) -> R<Expr> {
        let Some(func) = functions::lookup(name) else {
            return Err(self.err_at(pos, format!("unknown function with name \"{name}\"")));
        };
        self.next();
        self.expect(Tok::LParen, "\"(\"")?;
        let mut args = Vec::new();
        let mut arg_pos = Vec::new();
        loop {
            if *self.peek() == Tok::RParen {
                self.next();
                break;
            }
            arg_pos.push(self.cur().pos);
            self.allow_empty_selector = func.name == "info" && args.len() == 1;
            let a = self.parse_expr(0);
            self.allow_empty_selector = false;
            args.push(a?);
            match self.peek() {
                Tok::Comma => {
                    self.next();
                }
                Tok::RParen => {}
                _ => return Err(self.unexpected_in("function call", "\",\" or \")\"")),
            }
        }
        let n = func.args.len();
        let (min, max) = match func.variadic {
            0 => (n, Some(n)),
            v if v > 0 => (n - v as usize, Some(n)),
            _ => (n.saturating_sub(1), None),
        };
        if args.len() < min || max.is_some_and(|m| args.len() > m) {
            let want = if func.variadic == 0 {
                format!("{n}")
            } else if let Some(m) = max {
                format!("{min} to {m}")
            } else {
                format!("at least {min}")
            };
            return Err(self.err_at(
                pos,
                format!(
                    "expected {want} argument(s) in call to \"{}\", got {}",
                    func.name,
                    args.len()
                ),
            ));
        }
        for (i, a) in args.iter().enumerate() {
            let want = func.args[i.min(n - 1)];
            let got = a.value_type();
            if got != want {
                return Err(self.err_at(
                    arg_pos[i],
                    format!(
                        "expected type {} in call to function \"{}\", got {}",
                        want.long_name(),
                        func.name,
                        got.long_name()
                    ),
                ));
            }
        }
        Ok(Expr::Call { func, args, pos })
    }

    fn parse_aggregate(&mut self, op_name: &str, pos: usize) -> R<Expr> {
        let Some(op) = AggOp::from_name(op_name) else {
            return Err(self.err_at(pos, format!("unknown aggregation {op_name}")));
        };
        self.next();
        let mut grouping = Vec::new();
        let mut without = false;
        let mut have_grouping = false;
        if self.is_kw("by") || self.is_kw("without") {
            without = self.is_kw("without");
            self.next();
            grouping = self.parse_label_list()?;
            have_grouping = true;
        }
        self.expect(Tok::LParen, "\"(\" after aggregation")?;
        let mut args = Vec::new();
        let mut arg_pos = Vec::new();
        loop {
            if *self.peek() == Tok::RParen {
                self.next();
                break;
            }
            arg_pos.push(self.cur().pos);
            args.push(self.parse_expr(0)?);
            match self.peek() {
                Tok::Comma => {
                    self.next();
                }
                Tok::RParen => {}
                _ => return Err(self.unexpected_in("aggregation", "\",\" or \")\"")),
            }
        }
        if !have_grouping && (self.is_kw("by") || self.is_kw("without")) {
            without = self.is_kw("without");
            self.next();
            grouping = self.parse_label_list()?;
        }
        let want = if op.param_type().is_some() { 2 } else { 1 };
        if args.len() != want {
            return Err(self.err_at(
                pos,
                format!(
                    "wrong number of arguments for aggregate expression provided, expected {want}, got {}",
                    args.len()
                ),
            ));
        }
        let expr = args.pop().unwrap_or(Expr::Number(0.0));
        let param = args.pop();
        let expr_pos = arg_pos.last().copied().unwrap_or(pos);
        if expr.value_type() != ValueType::Vector {
            return Err(self.err_at(
                expr_pos,
                format!(
                    "expected type instant vector in aggregation expression, got {}",
                    expr.value_type().long_name()
                ),
            ));
        }
        if let (Some(p), Some(t)) = (&param, op.param_type()) {
            if p.value_type() != t {
                return Err(self.err_at(
                    arg_pos[0],
                    format!(
                        "expected type {} in aggregation parameter, got {}",
                        t.long_name(),
                        p.value_type().long_name()
                    ),
                ));
            }
        }
        let param_pos = if param.is_some() { arg_pos[0] } else { 0 };
        Ok(Expr::Aggregate {
            param_pos,
            op,
            expr: Box::new(expr),
            param: param.map(Box::new),
            grouping,
            without,
            pos,
        })
    }

    fn parse_selector(&mut self, name: Option<String>, pos: usize) -> R<Expr> {
        let mut name = name;
        let mut matchers: Vec<Matcher> = Vec::new();
        if *self.peek() == Tok::LBrace {
            self.next();
            loop {
                if *self.peek() == Tok::RBrace {
                    self.next();
                    break;
                }
                let lt = self.cur().clone();
                // A bare quoted string is the metric name.
                if let Tok::Str(s) = &lt.tok {
                    if matches!(self.peek_at(1), Tok::Comma | Tok::RBrace) {
                        self.next();
                        if let Some(old) = &name {
                            return Err(self.err_at(
                                lt.pos,
                                format!("metric name must not be set twice: {old:?} or {s:?}"),
                            ));
                        }
                        name = Some(s.clone());
                        if *self.peek() == Tok::Comma {
                            self.next();
                        }
                        continue;
                    }
                }
                let lname = self.parse_label_name()?;
                let op = match self.peek() {
                    Tok::Assign => MatchOp::Equal,
                    Tok::Neq => MatchOp::NotEqual,
                    Tok::EqlRegex => MatchOp::Regex,
                    Tok::NeqRegex => MatchOp::NotRegex,
                    _ => {
                        return Err(self.unexpected_in("label matching", "label matching operator"))
                    }
                };
                self.next();
                let vt = self.cur().clone();
                let Tok::Str(value) = vt.tok else {
                    return Err(self.unexpected_in("label matching", "string"));
                };
                self.next();
                let m = Matcher::new(op, lname, value)
                    .map_err(|e| self.err_at(lt.pos, e.to_string()))?;
                matchers.push(m);
                match self.peek() {
                    Tok::Comma => {
                        self.next();
                    }
                    Tok::RBrace => {}
                    _ => return Err(self.unexpected_in("label matching", "\",\" or \"}\"")),
                }
            }
        }
        if let Some(n) = &name {
            if let Some(m) = matchers.iter().find(|m| m.name == METRIC_NAME) {
                return Err(self.err_at(
                    pos,
                    format!("metric name must not be set twice: {n:?} or {:?}", m.value),
                ));
            }
            matchers.insert(0, Matcher::equal(METRIC_NAME, n.clone()));
        } else if !self.allow_empty_selector && !matchers.iter().any(|m| !m.matches_empty()) {
            return Err(self.err_at(
                pos,
                "vector selector must contain at least one non-empty matcher",
            ));
        }
        Ok(Expr::Vector(VectorSelector {
            name,
            matchers,
            offset: None,
            at: None,
            anchored: false,
            smoothed: false,
            pos,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case: input, canonical output (or `ERR:` and a fragment of the error).
    const CASES: &[(&str, &str)] = &[
        ("1 + 2 * 3", "1 + 2 * 3"),
        ("2 ^ 3 ^ 2", "2 ^ 3 ^ 2"),
        ("-2 ^ 2", "-2 ^ 2"),
        ("foo", "foo"),
        (
            "{\"some.metric\", a=\"b\"}",
            "{__name__=\"some.metric\",a=\"b\"}",
        ),
        ("foo{b!=\"c\",a=~\"x|y\"}", "foo{a=~\"x|y\",b!=\"c\"}"),
        ("rate(foo[5m] offset -1m)", "rate(foo[5m] offset -1m)"),
        ("foo @ start()", "foo @ start()"),
        ("foo @ 100", "foo @ 100.000"),
        ("sum by (a) (foo)", "sum by (a) (foo)"),
        ("sum(foo) without (a)", "sum without (a) (foo)"),
        ("topk(3, foo)", "topk(3, foo)"),
        ("a + on(b) group_left(c) d", "a + on (b) group_left (c) d"),
        ("a > bool 1", "a > bool 1"),
        ("rate(foo[5m])[30m:1m]", "rate(foo[5m])[30m:1m]"),
        ("foo[5m:]", "foo[5m:]"),
        ("foo[2m*15]", "foo[2m * 15]"),
        ("foo offset 100 + 2", "foo offset 100 + 2"),
        ("a and b or c unless d", "a and b or c unless d"),
        (
            "1 > 2",
            "ERR:comparisons between scalars must use BOOL modifier",
        ),
        ("rate(foo)", "ERR:expected type range vector"),
        ("{}", "ERR:at least one non-empty matcher"),
        ("sum(foo", "ERR:1:8: parse error: unclosed left parenthesis"),
        ("nope(foo)", "ERR:unknown function"),
        ("foo[5m] + 1", "ERR:binary expression must contain only"),
        ("1 and 2", "ERR:set operator"),
        ("foo{a=\"b\"}\n  +", "ERR:2:4"),
    ];

    #[test]
    fn parse_and_print() {
        for (input, want) in CASES {
            match (parse(input), want.strip_prefix("ERR:")) {
                (Ok(e), None) => {
                    let s = e.to_string();
                    assert_eq!(&s, want, "input {input:?}");
                    let again = parse(&s).unwrap_or_else(|e| panic!("reparse {s:?}: {e}"));
                    assert_eq!(again.to_string(), s);
                }
                (Err(e), Some(frag)) => {
                    assert!(e.to_string().contains(frag), "input {input:?}: {e}")
                }
                (Ok(e), Some(_)) => panic!("{input:?} parsed as {e}, want error"),
                (Err(e), None) => panic!("{input:?}: {e}"),
            }
        }
    }

    /// Malformed queries and the exact error Prometheus gives (checked against Prometheus'
    /// own parser): 1-based line:column, then what was unexpected and what was expected.
    const ERRORS: &[(&str, &str)] = &[
        ("1 + + ", "1:7: parse error: unexpected end of input"),
        ("x ** 2", "1:4: parse error: unexpected <op:*>"),
        ("foo by", "1:5: parse error: unexpected <by>"),
        ("foo bar", "1:5: parse error: unexpected identifier \"bar\""),
        ("1 2", "1:3: parse error: unexpected number \"2\""),
        // Unclosed delimiters are reported where the input ends.
        ("foo{a=\"b\"", "1:10: parse error: unexpected end of input inside braces"),
        ("sum by (a", "1:10: parse error: unclosed left parenthesis"),
        ("sum by (a,", "1:11: parse error: unclosed left parenthesis"),
        ("sum(foo", "1:8: parse error: unclosed left parenthesis"),
        ("foo[5m", "1:7: parse error: unclosed left bracket"),
        ("rate(x[5m]))", "1:13: parse error: unexpected right parenthesis ')'"),
        ("foo{a=\"b\"}}", "1:11: parse error: unexpected character: '}'"),
        // Bad durations.
        ("x offset", "1:9: parse error: unexpected end of input in offset, expected duration"),
        ("x @", "1:4: parse error: unexpected end of input in @, expected timestamp"),
        ("foo[5x]", "1:5: parse error: bad number or duration syntax: \"5x\""),
        // Label matching and grouping.
        ("foo{a=b}", "1:7: parse error: unexpected identifier \"b\" in label matching, expected string"),
        ("foo{a}", "1:6: parse error: unexpected \"}\" in label matching, expected label matching operator"),
        ("sum by (1) (x)", "1:9: parse error: unexpected number \"1\" in grouping opts, expected label"),
        ("sum(x) by", "1:10: parse error: unexpected end of input in grouping opts, expected \"(\""),
        ("a + on(b c", "1:10: parse error: unexpected identifier \"c\" in grouping opts, expected \",\" or \")\""),
        // Unknown functions, argument counts and types, reported at the offending argument.
        ("nope(foo)", "1:1: parse error: unknown function with name \"nope\""),
        ("rate(foo[5m], 1)", "1:1: parse error: expected 1 argument(s) in call to \"rate\", got 2"),
        ("time(1)", "1:1: parse error: expected 0 argument(s) in call to \"time\", got 1"),
        ("rate(foo)", "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"),
        ("histogram_quantile(\"a\", foo)", "1:20: parse error: expected type scalar in call to function \"histogram_quantile\", got string"),
        ("topk(5)", "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 1"),
        ("topk(foo, bar)", "1:6: parse error: expected type scalar in aggregation parameter, got instant vector"),
        ("sum(1)", "1:5: parse error: expected type instant vector in aggregation expression, got scalar"),
        // Binary operators.
        ("foo[5m] + 1", "1:1: parse error: binary expression must contain only scalar and instant vector types"),
        ("1 > 2", "1:3: parse error: comparisons between scalars must use BOOL modifier"),
        ("a + bool b", "1:3: parse error: bool modifier can only be used on comparison operators"),
        ("x offset 5m offset 5m", "1:1: parse error: offset may not be set multiple times"),
        // Positions count lines and columns.
        ("sum(\n  foo +\n)", "3:1: parse error: unexpected \")\""),
    ];

    #[test]
    fn errors_match_prometheus() {
        for (input, want) in ERRORS {
            match parse(input) {
                Ok(e) => panic!("{input:?} parsed as {e}, want error {want}"),
                Err(e) => assert_eq!(&e.to_string(), want, "input {input:?}"),
            }
        }
    }

    #[test]
    fn formats_like_prometheus_string() {
        for (input, want) in [
            ("sum by(job)(rate(x[5m]))", "sum by (job) (rate(x[5m]))"),
            ("sum by() (x)", "sum(x)"),
            ("sum without() (x)", "sum without () (x)"),
            ("a - on(b) group_left c", "a - on (b) group_left () c"),
            ("a - ignoring() c", "a - c"),
            ("x{c=~\"d\", a!~\"b\"}", "x{a!~\"b\",c=~\"d\"}"),
            ("x offset 5m @ start()", "x @ start() offset 5m"),
            ("x[5m] offset 1m @ 10", "x[5m] @ 10.000 offset 1m"),
            ("x[1h:5m] offset 1m", "x[1h:5m] offset 1m"),
            ("1e3 + 0x10 + Inf", "1000 + 16 + +Inf"),
            ("{__name__=\"a\"}", "{__name__=\"a\"}"),
        ] {
            let e = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(e.to_string(), want, "input {input:?}");
        }
    }
}
