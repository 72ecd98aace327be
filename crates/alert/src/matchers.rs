//! Alertmanager's matcher syntax (`a="b"`, `a=~"x|y"`, `a!=b`, `{a="b", c!~"d"}`), used by
//! route and inhibit-rule `matchers`, amtool's `filter` parameters and silences. Also the
//! label-set fingerprint Alertmanager shows for every alert (Prometheus' FNV-1a signature).

use std::collections::BTreeMap;

use sextant_model::matcher::{MatchOp, Matcher};

/// Why a matcher string was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("bad matcher {input:?}: {msg}")]
pub struct MatcherParseError {
    pub input: String,
    pub msg: String,
}

/// Parses one matcher list: a single matcher, or several separated by commas, optionally in
/// braces.
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, MatcherParseError> {
    let err = |msg: &str| MatcherParseError {
        input: input.to_string(),
        msg: msg.to_string(),
    };
    let mut s = input.trim();
    if let Some(inner) = s.strip_prefix('{') {
        s = inner
            .strip_suffix('}')
            .ok_or_else(|| err("missing closing '}'"))?;
    }
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        // Label name: quoted, or everything up to an operator.
        let name = if chars[i] == '"' {
            let (v, ni) = read_quoted(&chars, i).map_err(|m| err(&m))?;
            i = ni;
            v
        } else {
            let start = i;
            while i < chars.len() && !matches!(chars[i], '=' | '!' | '~' | ',') {
                i += 1;
            }
            chars[start..i]
                .iter()
                .collect::<String>()
                .trim()
                .to_string()
        };
        if name.is_empty() {
            return Err(err("missing label name"));
        }
        skip_ws(&mut i);
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let op = if rest.starts_with("=~") {
            i += 2;
            MatchOp::Regex
        } else if rest.starts_with("!=") {
            i += 2;
            MatchOp::NotEqual
        } else if rest.starts_with("!~") {
            i += 2;
            MatchOp::NotRegex
        } else if rest.starts_with('=') {
            i += 1;
            MatchOp::Equal
        } else {
            return Err(err(&format!(
                "expected an operator (=, !=, =~, !~) after {name:?}"
            )));
        };
        skip_ws(&mut i);
        let value = if i < chars.len() && chars[i] == '"' {
            let (v, ni) = read_quoted(&chars, i).map_err(|m| err(&m))?;
            i = ni;
            v
        } else {
            let start = i;
            while i < chars.len() && chars[i] != ',' {
                i += 1;
            }
            chars[start..i]
                .iter()
                .collect::<String>()
                .trim()
                .to_string()
        };
        let m = Matcher::new(op, name, value).map_err(|e| err(&e.to_string()))?;
        out.push(m);
        skip_ws(&mut i);
        if i < chars.len() {
            if chars[i] != ',' {
                return Err(err(&format!("unexpected {:?}", chars[i])));
            }
            i += 1;
        }
    }
    Ok(out)
}

fn read_quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut i = start + 1;
    let mut v = String::new();
    while i < chars.len() {
        match chars[i] {
            '"' => return Ok((v, i + 1)),
            '\\' if i + 1 < chars.len() => {
                i += 1;
                v.push(match chars[i] {
                    'n' => '\n',
                    't' => '\t',
                    c => c,
                });
            }
            c => v.push(c),
        }
        i += 1;
    }
    Err("unterminated quoted string".to_string())
}

/// Alertmanager's rendering of a matcher list: `{a="b",c=~"d"}`.
pub fn matchers_string(ms: &[Matcher]) -> String {
    let parts: Vec<String> = ms
        .iter()
        .map(|m| format!("{}{}{}", m.name, m.op.as_str(), go_quote(&m.value)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// Prometheus' rendering of a label set: `{a="b", c="d"}`.
pub fn labelset_string(ls: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = ls
        .iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Go's `strconv.Quote` for the characters that matter here.
pub fn go_quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Does the label set satisfy every matcher (absent labels match as "")?
pub fn matches_labels(ms: &[Matcher], ls: &BTreeMap<String, String>) -> bool {
    ms.iter()
        .all(|m| m.matches(ls.get(&m.name).map(String::as_str).unwrap_or("")))
}

/// Prometheus' label-set fingerprint (FNV-1a over sorted name, 0xff, value, 0xff), as shown by
/// Alertmanager in `fingerprint` fields.
pub fn fingerprint(ls: &BTreeMap<String, String>) -> u64 {
    const OFFSET: u64 = 14695981039346656037;
    const PRIME: u64 = 1099511628211;
    let mut h = OFFSET;
    let mut add = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(PRIME);
    };
    for (k, v) in ls {
        k.bytes().for_each(&mut add);
        add(0xff);
        v.bytes().for_each(&mut add);
        add(0xff);
    }
    h
}

/// A fingerprint as Alertmanager prints it (16 hex digits).
pub fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_new_syntax() {
        let m = parse_matchers(r#"{alertname="Foo", severity=~"crit|warn",env!=prod}"#).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].op, MatchOp::Equal);
        assert_eq!(m[1].op, MatchOp::Regex);
        assert!(m[1].matches("warn") && !m[1].matches("warning"));
        assert_eq!(m[2].op, MatchOp::NotEqual);
        assert_eq!(m[2].value, "prod");
        let m = parse_matchers(r#"foo!~"a\"b""#).unwrap();
        assert_eq!(m[0].value, "a\"b");
        assert_eq!(m[0].op, MatchOp::NotRegex);
    }

    #[test]
    fn rejects_bad_matchers() {
        assert!(parse_matchers("foo").is_err());
        assert!(parse_matchers("=bar").is_err());
        assert!(parse_matchers(r#"foo="bar"#).is_err());
        assert!(parse_matchers(r#"foo=~"(""#).is_err());
        assert!(parse_matchers(r#"{a="b""#).is_err());
    }

    #[test]
    fn renders_like_alertmanager() {
        let m = parse_matchers(r#"a="b", c=~"d""#).unwrap();
        assert_eq!(matchers_string(&m), r#"{a="b",c=~"d"}"#);
        let mut ls = BTreeMap::new();
        ls.insert("b".to_string(), "2".to_string());
        ls.insert("a".to_string(), "1".to_string());
        assert_eq!(labelset_string(&ls), r#"{a="1", b="2"}"#);
    }

    #[test]
    fn fingerprint_matches_prometheus() {
        // Empty label set: the FNV offset basis, as in prometheus/common's emptyLabelSignature.
        assert_eq!(fingerprint(&BTreeMap::new()), 14695981039346656037);
        let mut ls = BTreeMap::new();
        ls.insert("alertname".to_string(), "x".to_string());
        assert_ne!(fingerprint(&ls), fingerprint(&BTreeMap::new()));
        assert_eq!(fingerprint_hex(0xab), "00000000000000ab");
    }
}
