//! The PromQL lexer: turns query text into tokens that remember where they start, so parse errors
//! can name a line and column. Keywords are not reserved here; the parser decides from context
//! whether `by` is a keyword or a label name.

use crate::error::{ParseError, Pos};

/// What kind of token.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// An identifier or keyword (no colon).
    Ident(String),
    /// A metric identifier containing a colon.
    MetricIdent(String),
    Number(f64),
    /// A duration literal in milliseconds.
    Duration(i64),
    Str(String),
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Assign,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eql,
    Neq,
    Lss,
    Gtr,
    Lte,
    Gte,
    EqlRegex,
    NeqRegex,
    At,
    /// `</`: keep histogram observations below a value.
    TrimUpper,
    /// `>/`: keep histogram observations above a value.
    TrimLower,
    Eof,
}

/// Identifiers Prometheus' lexer turns into keyword tokens (described as `<by>`).
const KEYWORDS: [&str; 14] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "start",
    "end",
    "step",
    "range",
    "anchored",
    "smoothed",
];

const AGGREGATORS: [&str; 14] = [
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

impl Token {
    /// How Prometheus describes this token in "unexpected ..." errors: `<op:+>`, `<by>`,
    /// `<aggr:sum>`, `identifier "foo"`, `number "1"`, `"("`, `end of input`.
    pub fn describe(&self) -> String {
        match &self.tok {
            Tok::Eof => "end of input".into(),
            Tok::Ident(s) => {
                let l = s.to_ascii_lowercase();
                if KEYWORDS.contains(&l.as_str()) {
                    format!("<{s}>")
                } else if AGGREGATORS.contains(&l.as_str()) {
                    format!("<aggr:{s}>")
                } else if matches!(l.as_str(), "and" | "or" | "unless" | "atan2") {
                    format!("<op:{s}>")
                } else {
                    format!("identifier {s:?}")
                }
            }
            Tok::MetricIdent(s) => format!("metric identifier {s:?}"),
            Tok::Number(_) => format!("number {:?}", self.text),
            Tok::Duration(_) => format!("duration {:?}", self.text),
            Tok::Str(_) => format!("string {:?}", self.text),
            Tok::LBrace
            | Tok::RBrace
            | Tok::LParen
            | Tok::RParen
            | Tok::LBracket
            | Tok::RBracket
            | Tok::Comma
            | Tok::Colon => format!("\"{}\"", self.tok.symbol()),
            other => format!("<op:{}>", other.symbol()),
        }
    }
}

impl Tok {
    /// How the token is described in error messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) | Tok::MetricIdent(s) => format!("identifier {s:?}"),
            Tok::Number(n) => format!("number {n}"),
            Tok::Duration(_) => "duration".into(),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Eof => "end of input".into(),
            other => format!("\"{}\"", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Colon => ":",
            Tok::Assign => "=",
            Tok::Add => "+",
            Tok::Sub => "-",
            Tok::Mul => "*",
            Tok::Div => "/",
            Tok::Mod => "%",
            Tok::Pow => "^",
            Tok::Eql => "==",
            Tok::Neq => "!=",
            Tok::Lss => "<",
            Tok::Gtr => ">",
            Tok::Lte => "<=",
            Tok::Gte => ">=",
            Tok::EqlRegex => "=~",
            Tok::NeqRegex => "!~",
            Tok::At => "@",
            Tok::TrimUpper => "</",
            Tok::TrimLower => ">/",
            _ => "?",
        }
    }
}

/// A token with its byte offset in the input.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub pos: usize,
    /// The raw text of the token.
    pub text: String,
}

/// Converts a byte offset to a 1-based line and column.
pub fn line_col(input: &str, pos: usize) -> Pos {
    let pos = pos.min(input.len());
    let before = &input[..pos];
    let line = before.matches('\n').count() + 1;
    let col = match before.rfind('\n') {
        Some(i) => before[i + 1..].chars().count() + 1,
        None => before.chars().count() + 1,
    };
    Pos { line, col }
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

const UNITS: [(&str, i64); 7] = [
    ("ms", 1),
    ("s", 1000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
    ("y", 31_536_000_000),
];

/// Parses a duration like `1h30m` into milliseconds; units must decrease and appear once.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    let mut last = usize::MAX;
    if b.is_empty() {
        return None;
    }
    while i < b.len() {
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if st == i {
            return None;
        }
        let n: i64 = s[st..i].parse().ok()?;
        let us = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[us..i];
        let idx = UNITS.iter().position(|(u, _)| *u == unit)?;
        // Order in UNITS is ascending; in the text units must descend.
        let rank = UNITS.len() - idx;
        if last != usize::MAX && rank <= last {
            return None;
        }
        last = rank;
        total = total.checked_add(n.checked_mul(UNITS[idx].1)?)?;
    }
    Some(total)
}

/// Tokenizes a whole query.
pub fn lex(input: &str) -> Result<Vec<Token>, ParseError> {
    let b = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut bracket_depth = 0usize;
    let mut paren_depth = 0usize;
    let mut brace_depth = 0usize;
    let err = |pos: usize, msg: String| ParseError::new(line_col(input, pos), msg);
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        let two = if i + 1 < b.len() { b[i + 1] } else { 0 };
        let simple = match c {
            b'{' => Some((Tok::LBrace, 1)),
            b'}' => Some((Tok::RBrace, 1)),
            b'(' => Some((Tok::LParen, 1)),
            b')' => Some((Tok::RParen, 1)),
            b'[' => Some((Tok::LBracket, 1)),
            b']' => Some((Tok::RBracket, 1)),
            b',' => Some((Tok::Comma, 1)),
            b'+' => Some((Tok::Add, 1)),
            b'-' => Some((Tok::Sub, 1)),
            b'*' => Some((Tok::Mul, 1)),
            b'/' => Some((Tok::Div, 1)),
            b'%' => Some((Tok::Mod, 1)),
            b'^' => Some((Tok::Pow, 1)),
            b'@' => Some((Tok::At, 1)),
            b'=' if two == b'=' => Some((Tok::Eql, 2)),
            b'=' if two == b'~' => Some((Tok::EqlRegex, 2)),
            b'=' => Some((Tok::Assign, 1)),
            b'!' if two == b'=' => Some((Tok::Neq, 2)),
            b'!' if two == b'~' => Some((Tok::NeqRegex, 2)),
            b'<' if two == b'=' => Some((Tok::Lte, 2)),
            b'<' if two == b'/' => Some((Tok::TrimUpper, 2)),
            b'>' if two == b'/' => Some((Tok::TrimLower, 2)),
            b'<' => Some((Tok::Lss, 1)),
            b'>' if two == b'=' => Some((Tok::Gte, 2)),
            b'>' => Some((Tok::Gtr, 1)),
            b':' if bracket_depth > 0
                || !(two.is_ascii_alphabetic() || two == b'_' || two == b':') =>
            {
                Some((Tok::Colon, 1))
            }
            _ => None,
        };
        if let Some((tok, n)) = simple {
            i += n;
            match tok {
                Tok::LBracket => bracket_depth += 1,
                Tok::RBracket => bracket_depth = bracket_depth.saturating_sub(1),
                Tok::LParen => paren_depth += 1,
                // Prometheus' lexer reports this just after the parenthesis.
                Tok::RParen if paren_depth == 0 => {
                    return Err(err(i, "unexpected right parenthesis ')'".into()))
                }
                Tok::RParen => paren_depth -= 1,
                Tok::LBrace => brace_depth += 1,
                Tok::RBrace if brace_depth == 0 => {
                    return Err(err(start, "unexpected character: '}'".into()))
                }
                Tok::RBrace => brace_depth -= 1,
                _ => {}
            }
            out.push(Token {
                tok,
                pos: start,
                text: input[start..i].to_string(),
            });
            continue;
        }
        if c == b'"' || c == b'\'' || c == b'`' {
            let (s, end) = lex_string(input, i).map_err(|(p, m)| err(p, m))?;
            i = end;
            out.push(Token {
                tok: Tok::Str(s),
                pos: start,
                text: input[start..i].to_string(),
            });
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && two.is_ascii_digit()) {
            let (tok, end) = lex_number(input, i).map_err(|(p, m)| err(p, m))?;
            i = end;
            out.push(Token {
                tok,
                pos: start,
                text: input[start..i].to_string(),
            });
            continue;
        }
        if is_ident_start(c) {
            while i < b.len() && is_ident_char(b[i]) {
                i += 1;
            }
            let word = &input[start..i];
            let lw = word.to_ascii_lowercase();
            let tok = if lw == "inf" {
                Tok::Number(f64::INFINITY)
            } else if lw == "nan" {
                Tok::Number(f64::NAN)
            } else if word.contains(':') {
                Tok::MetricIdent(word.to_string())
            } else {
                Tok::Ident(word.to_string())
            };
            out.push(Token {
                tok,
                pos: start,
                text: word.to_string(),
            });
            continue;
        }
        let ch = input[i..].chars().next().unwrap_or('?');
        return Err(err(i, format!("unexpected character: {ch:?}")));
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: input.len(),
        text: String::new(),
    });
    Ok(out)
}

fn lex_number(input: &str, start: usize) -> Result<(Tok, usize), (usize, String)> {
    let b = input.as_bytes();
    let mut i = start;
    // Hex.
    if b[i] == b'0' && i + 1 < b.len() && (b[i + 1] == b'x' || b[i + 1] == b'X') {
        i += 2;
        let hs = i;
        while i < b.len() && b[i].is_ascii_hexdigit() {
            i += 1;
        }
        let v = i64::from_str_radix(&input[hs..i], 16)
            .map_err(|_| (start, format!("bad number: {:?}", &input[start..i])))?;
        return Ok((Tok::Number(v as f64), i));
    }
    // Duration: digits followed by a unit letter.
    let mut j = i;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    if j > i && j < b.len() && matches!(b[j], b's' | b'm' | b'h' | b'd' | b'w' | b'y') {
        let mut k = j;
        while k < b.len() && (b[k].is_ascii_alphanumeric()) {
            k += 1;
        }
        let text = &input[start..k];
        return match parse_duration_ms(text) {
            Some(ms) => Ok((Tok::Duration(ms), k)),
            None => Err((start, format!("bad number or duration syntax: {text:?}"))),
        };
    }
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut k = i + 1;
        if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
            k += 1;
        }
        if k < b.len() && b[k].is_ascii_digit() {
            while k < b.len() && b[k].is_ascii_digit() {
                k += 1;
            }
            i = k;
        }
    }
    if i < b.len() && is_ident_char(b[i]) && b[i] != b':' {
        let mut k = i;
        while k < b.len() && is_ident_char(b[k]) {
            k += 1;
        }
        return Err((
            start,
            format!("bad number or duration syntax: {:?}", &input[start..k]),
        ));
    }
    let text = &input[start..i];
    let v: f64 = text
        .parse()
        .map_err(|_| (start, format!("bad number: {text:?}")))?;
    Ok((Tok::Number(v), i))
}

/// Lexes a quoted string with Go escape rules; returns the value and the end offset.
pub fn lex_string(input: &str, start: usize) -> Result<(String, usize), (usize, String)> {
    let b = input.as_bytes();
    let q = b[start];
    let mut i = start + 1;
    let mut out = String::new();
    if q == b'`' {
        while i < b.len() && b[i] != b'`' {
            i += 1;
        }
        if i >= b.len() {
            return Err((start, "unterminated raw string".into()));
        }
        return Ok((input[start + 1..i].to_string(), i + 1));
    }
    loop {
        let Some(ch) = input[i..].chars().next() else {
            return Err((start, "unterminated quoted string".into()));
        };
        if ch as u32 == q as u32 {
            return Ok((out, i + 1));
        }
        if ch == '\n' {
            return Err((start, "unterminated quoted string".into()));
        }
        if ch != '\\' {
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        i += 1;
        let Some(e) = input[i..].chars().next() else {
            return Err((start, "unterminated quoted string".into()));
        };
        i += e.len_utf8();
        match e {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '"' if q == b'"' => out.push('"'),
            '\'' if q == b'\'' => out.push('\''),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex = input.get(i..i + n).ok_or((i, "bad escape".to_string()))?;
                let v = u32::from_str_radix(hex, 16).map_err(|_| (i, "bad escape".to_string()))?;
                i += n;
                if e == 'x' {
                    // Go allows arbitrary bytes; we only keep valid chars.
                    out.push(char::from_u32(v).ok_or((i, "bad escape".to_string()))?);
                } else {
                    out.push(char::from_u32(v).ok_or((i, "invalid unicode".to_string()))?);
                }
            }
            '0'..='7' => {
                let hex = input
                    .get(i - 1..i + 2)
                    .ok_or((i, "bad escape".to_string()))?;
                let v = u32::from_str_radix(hex, 8).map_err(|_| (i, "bad escape".to_string()))?;
                i += 2;
                out.push(char::from_u32(v).ok_or((i, "bad escape".to_string()))?);
            }
            other => return Err((i, format!("unknown escape sequence {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t: Vec<Tok> = lex("rate(foo{a=~\"x\"}[5m]) > bool 1e3 # c")
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect();
        assert_eq!(
            t,
            vec![
                Tok::Ident("rate".into()),
                Tok::LParen,
                Tok::Ident("foo".into()),
                Tok::LBrace,
                Tok::Ident("a".into()),
                Tok::EqlRegex,
                Tok::Str("x".into()),
                Tok::RBrace,
                Tok::LBracket,
                Tok::Duration(300_000),
                Tok::RBracket,
                Tok::RParen,
                Tok::Gtr,
                Tok::Ident("bool".into()),
                Tok::Number(1000.0),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn durations_and_errors() {
        assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("5s500ms"), Some(5_500));
        assert_eq!(parse_duration_ms("30m1h"), None);
        assert!(lex("1x").is_err());
        assert!(lex("\"abc").is_err());
        assert_eq!(line_col("a\nbc", 3), Pos { line: 2, col: 2 });
    }
}
