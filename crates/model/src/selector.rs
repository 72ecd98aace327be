//! Series selectors (`metric{label="value", other=~"re"}`) as used by `match[]` parameters of
//! the Prometheus HTTP API. The full PromQL parser lives in the query crate; this small parser
//! covers exactly the selector syntax so the read API does not depend on the query engine.

use crate::matcher::{MatchOp, Matcher};

/// A selector that could not be parsed, with the byte position of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error at char {pos}: {msg}")]
pub struct SelectorError {
    pub pos: usize,
    pub msg: String,
}

fn err<T>(pos: usize, msg: impl Into<String>) -> Result<T, SelectorError> {
    Err(SelectorError {
        pos: pos + 1,
        msg: msg.into(),
    })
}

/// Parses a selector into matchers. At least one matcher must not match the empty string,
/// as Prometheus requires (`{job=~".*"}` alone is refused).
pub fn parse_selector(s: &str) -> Result<Vec<Matcher>, SelectorError> {
    let b = s.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let ident = |i: &mut usize, metric: bool| -> Option<String> {
        let st = *i;
        while *i < b.len() {
            let c = b[*i];
            let ok = c.is_ascii_alphabetic()
                || c == b'_'
                || (metric && c == b':')
                || (*i > st && c.is_ascii_digit());
            if !ok {
                break;
            }
            *i += 1;
        }
        (*i > st).then(|| s[st..*i].to_string())
    };
    let mut matchers = Vec::new();
    skip_ws(&mut i);
    if let Some(name) = ident(&mut i, true) {
        matchers.push(Matcher::equal(crate::METRIC_NAME, name));
    }
    skip_ws(&mut i);
    if i < b.len() && b[i] == b'{' {
        i += 1;
        loop {
            skip_ws(&mut i);
            if i < b.len() && b[i] == b'}' {
                i += 1;
                break;
            }
            let name =
                match (i < b.len() && (b[i] == b'"' || b[i] == b'\'')).then(|| quoted(s, &mut i)) {
                    Some(r) => r?,
                    None => match ident(&mut i, false) {
                        Some(n) => n,
                        None => return err(i, "expected label name"),
                    },
                };
            skip_ws(&mut i);
            let op = if s[i..].starts_with("=~") {
                i += 2;
                MatchOp::Regex
            } else if s[i..].starts_with("!~") {
                i += 2;
                MatchOp::NotRegex
            } else if s[i..].starts_with("!=") {
                i += 2;
                MatchOp::NotEqual
            } else if s[i..].starts_with('=') {
                i += 1;
                MatchOp::Equal
            } else {
                return err(
                    i,
                    format!("expected one of =, !=, =~, !~ after label name {name:?}"),
                );
            };
            skip_ws(&mut i);
            if i >= b.len() || !(b[i] == b'"' || b[i] == b'\'' || b[i] == b'`') {
                return err(i, format!("expected quoted label value for {name:?}"));
            }
            let at = i;
            let value = quoted(s, &mut i)?;
            let m = Matcher::new(op, name, value).map_err(|e| SelectorError {
                pos: at + 1,
                msg: e.to_string(),
            })?;
            matchers.push(m);
            skip_ws(&mut i);
            if i < b.len() && b[i] == b',' {
                i += 1;
                continue;
            }
            if i < b.len() && b[i] == b'}' {
                i += 1;
                break;
            }
            return err(i, "expected ',' or '}' in label matchers");
        }
    }
    skip_ws(&mut i);
    if i != b.len() {
        return err(i, format!("unexpected {:?} after selector", &s[i..]));
    }
    if matchers.is_empty() {
        return err(
            0,
            "empty selector: expected a metric name or label matchers",
        );
    }
    if matchers.iter().all(|m| m.matches_empty()) {
        return err(
            0,
            "vector selector must contain at least one non-empty matcher",
        );
    }
    Ok(matchers)
}

/// Reads a quoted string at `*i` (double, single or back quotes) with Go-style escapes.
fn quoted(s: &str, i: &mut usize) -> Result<String, SelectorError> {
    let b = s.as_bytes();
    let q = b[*i];
    let start = *i;
    *i += 1;
    let mut out = String::new();
    let mut chars = s[*i..].char_indices();
    while let Some((off, c)) = chars.next() {
        if c as u32 == q as u32 {
            *i += off + 1;
            return Ok(out);
        }
        if c == '\\' && q != b'`' {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\'')) => out.push('\''),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other)
                }
                None => break,
            }
            continue;
        }
        out.push(c);
    }
    err(start, "unterminated quoted string")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let m = parse_selector(r#"up{job="api", instance=~"h.*" }"#).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].to_string(), r#"job="api""#);
        assert_eq!(parse_selector(r#"{__name__="x"}"#).unwrap().len(), 1);
        assert!(parse_selector(r#"{job=~".*"}"#).is_err());
        assert!(parse_selector(r#"up{job="a""#).is_err());
        assert!(parse_selector(r#"up{job}"#)
            .unwrap_err()
            .msg
            .contains("expected one of"));
        assert_eq!(parse_selector(r#"x{a="q\"x"}"#).unwrap()[1].value, "q\"x");
    }
}
