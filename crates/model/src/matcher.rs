//! Label matchers (`=`, `!=`, `=~`, `!~`) with Prometheus semantics: regexes are fully anchored,
//! and a missing label matches as if its value were the empty string.
//!
//! Selectors are matched against every value of a label in the index, so the common regex
//! shapes skip the regex engine, like Prometheus' `FastRegexMatcher`: `.*`, `.+`, alternations
//! of literals (`a|b|c`), and a literal with `.*`/`.+` before or after it (`claude-.*`,
//! `.*_total`, `.*err.*`).

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    pub fn as_str(&self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MatcherError {
    #[error("invalid regular expression {0:?}: {1}")]
    Regex(String, String),
}

/// One label matcher.
#[derive(Clone)]
pub struct Matcher {
    pub op: MatchOp,
    pub name: String,
    pub value: String,
    re: Option<regex::Regex>,
    /// For regex matchers of a simple shape: the same test without the regex engine.
    fast: Option<Fast>,
}

/// Regex shapes answered with string operations (the regex is anchored and `.` matches any
/// character, newlines included).
#[derive(Clone, Debug, PartialEq)]
enum Fast {
    /// `.*`
    Any,
    /// `.+`
    NonEmpty,
    /// `a|b|c`: one of these literals.
    Set(Vec<String>),
    /// `lit.*` (`rest_nonempty`: `lit.+`).
    Prefix(String, bool),
    /// `.*lit` / `.+lit`.
    Suffix(String, bool),
    /// `.*lit.*`
    Contains(String),
}

/// A string with no regex syntax in it, which matches only itself.
fn is_literal(s: &str) -> bool {
    !s.chars().any(|c| "\\.+*?()|[]{}^$".contains(c))
}

impl Fast {
    fn of(re: &str) -> Option<Fast> {
        match re {
            ".*" => return Some(Fast::Any),
            ".+" => return Some(Fast::NonEmpty),
            _ => {}
        }
        if re.split('|').all(is_literal) {
            return Some(Fast::Set(re.split('|').map(str::to_string).collect()));
        }
        if let Some(mid) = re.strip_prefix(".*").and_then(|r| r.strip_suffix(".*")) {
            if is_literal(mid) {
                return Some(Fast::Contains(mid.to_string()));
            }
        }
        for (tail, nonempty) in [(".*", false), (".+", true)] {
            if let Some(p) = re.strip_suffix(tail) {
                if is_literal(p) {
                    return Some(Fast::Prefix(p.to_string(), nonempty));
                }
            }
            if let Some(p) = re.strip_prefix(tail) {
                if is_literal(p) {
                    return Some(Fast::Suffix(p.to_string(), nonempty));
                }
            }
        }
        None
    }

    fn matches(&self, v: &str) -> bool {
        match self {
            Fast::Any => true,
            Fast::NonEmpty => !v.is_empty(),
            Fast::Set(set) => set.iter().any(|x| x == v),
            Fast::Prefix(p, nonempty) => {
                v.starts_with(p.as_str()) && (!nonempty || v.len() > p.len())
            }
            Fast::Suffix(p, nonempty) => {
                v.ends_with(p.as_str()) && (!nonempty || v.len() > p.len())
            }
            Fast::Contains(p) => v.contains(p.as_str()),
        }
    }
}

impl Matcher {
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                regex::Regex::new(&format!("^(?s:{value})$"))
                    .map_err(|e| MatcherError::Regex(value.clone(), e.to_string()))?,
            ),
            _ => None,
        };
        let fast = re.as_ref().and_then(|_| Fast::of(&value));
        Ok(Matcher {
            op,
            name: name.into(),
            value,
            re,
            fast,
        })
    }

    /// Shorthand for an equality matcher, which cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            op: MatchOp::Equal,
            name: name.into(),
            value: value.into(),
            re: None,
            fast: None,
        }
    }

    /// Does the label value `v` (empty when the label is absent) match?
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::Regex => self.regex_match(v),
            MatchOp::NotRegex => !self.regex_match(v),
        }
    }

    fn regex_match(&self, v: &str) -> bool {
        match &self.fast {
            Some(f) => f.matches(v),
            None => self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// True when the matcher accepts the empty string, i.e. also series without the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// For `=~` matchers that are a plain alternation of literals (`a|b|c`), the literals;
    /// lets the index look up postings directly instead of scanning every value.
    pub fn set_matches(&self) -> Option<Vec<String>> {
        if self.op != MatchOp::Regex {
            return None;
        }
        match &self.fast {
            Some(Fast::Set(set)) => Some(set.clone()),
            _ => None,
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.op == o.op && self.name == o.name && self.value == o.value
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

/// Does a label set satisfy all matchers?
pub fn matches_all(labels: &crate::Labels, matchers: &[Matcher]) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchored_regex() {
        let m = Matcher::new(MatchOp::Regex, "job", "api|web").unwrap();
        assert!(m.matches("api"));
        assert!(!m.matches("apix"));
        assert_eq!(m.set_matches(), Some(vec!["api".into(), "web".into()]));
        let m = Matcher::new(MatchOp::NotRegex, "job", "a.*").unwrap();
        assert!(m.matches(""));
        assert!(!m.matches("abc"));
        assert!(Matcher::new(MatchOp::Regex, "x", "(").is_err());
    }

    #[test]
    fn fast_shapes_are_recognised() {
        let f = |re: &str| Matcher::new(MatchOp::Regex, "x", re).unwrap().fast;
        assert_eq!(f(".*"), Some(Fast::Any));
        assert_eq!(f(".+"), Some(Fast::NonEmpty));
        assert_eq!(f("claude-.*"), Some(Fast::Prefix("claude-".into(), false)));
        assert_eq!(f("agent_.+"), Some(Fast::Prefix("agent_".into(), true)));
        assert_eq!(f(".*_total"), Some(Fast::Suffix("_total".into(), false)));
        assert_eq!(f(".*err.*"), Some(Fast::Contains("err".into())));
        assert_eq!(f("a|b"), Some(Fast::Set(vec!["a".into(), "b".into()])));
        assert_eq!(f("a.*|b"), None);
        assert_eq!(f("a\\.b.*"), None);
        assert_eq!(f("[ab].*"), None);
        assert_eq!(Matcher::new(MatchOp::Equal, "x", ".*").unwrap().fast, None);
    }

    proptest::proptest! {
        /// Every regex, fast shape or not, matches exactly what the regex engine matches.
        #[test]
        fn fast_paths_agree_with_the_regex(
            parts in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b", "ab", ".*", ".+", "|", "\n", "é", ".", "a+", ""]),
                0..5,
            ),
            values in proptest::collection::vec("[ab\né.]{0,5}", 1..20),
        ) {
            let re = parts.concat();
            let Ok(m) = Matcher::new(MatchOp::Regex, "x", re.clone()) else { return Ok(()); };
            let slow = regex::Regex::new(&format!("^(?s:{re})$")).unwrap();
            for v in values.iter().map(String::as_str).chain(["", "a", "ab", "\n"]) {
                proptest::prop_assert_eq!(m.matches(v), slow.is_match(v), "{:?} on {:?}", re, v);
                let n = Matcher::new(MatchOp::NotRegex, "x", re.clone()).unwrap();
                proptest::prop_assert_eq!(n.matches(v), !slow.is_match(v));
            }
        }
    }
}
