//! Errors of parsing and evaluating PromQL. Evaluation errors map one-to-one onto Prometheus'
//! API `errorType`s so the HTTP layer can answer with the same JSON.

use std::fmt;

/// A 1-based line and column in the query text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A query that does not parse or does not type-check; says where and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: parse error: {msg}")]
pub struct ParseError {
    pub pos: Pos,
    pub msg: String,
}

impl ParseError {
    pub fn new(pos: Pos, msg: impl Into<String>) -> Self {
        ParseError {
            pos,
            msg: msg.into(),
        }
    }
}

/// Why an evaluation failed, classified like Prometheus' API error types.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The query ran longer than the configured timeout (`errorType: timeout`).
    #[error("query timed out in {0}")]
    Timeout(String),
    /// The query was cancelled (`errorType: canceled`).
    #[error("query was canceled in {0}")]
    Canceled(String),
    /// A runtime failure such as too many samples or duplicate series (`errorType: execution`).
    #[error("{0}")]
    Execution(String),
    /// The request itself is invalid, e.g. too many points (`errorType: bad_data`).
    #[error("{0}")]
    BadData(String),
    /// The storage failed (`errorType: internal`).
    #[error("storage error: {0}")]
    Storage(String),
}

impl EvalError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EvalError::Timeout(_) => ErrorKind::Timeout,
            EvalError::Canceled(_) => ErrorKind::Canceled,
            EvalError::Execution(_) => ErrorKind::Execution,
            EvalError::BadData(_) => ErrorKind::BadData,
            EvalError::Storage(_) => ErrorKind::Internal,
        }
    }

    /// The Prometheus API `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// Prometheus' API error classes (`errorType` in the JSON error response).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is invalid: a parse error, a bad parameter, too many points (HTTP 400).
    BadData,
    /// Evaluation failed, e.g. too many samples or duplicate series (HTTP 422).
    Execution,
    /// The query ran out of time (HTTP 503).
    Timeout,
    /// The query was cancelled (HTTP 503).
    Canceled,
    /// Storage or another internal failure (HTTP 500).
    Internal,
}

impl ErrorKind {
    /// The `errorType` string Prometheus uses: `bad_data`, `execution`, `timeout`, `canceled`,
    /// `internal`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::BadData => "bad_data",
            ErrorKind::Execution => "execution",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Canceled => "canceled",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Any failure of the public API: a parse error or an evaluation error. `kind()` gives the
/// Prometheus `errorType`, `to_string()` the Prometheus `error` message.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Eval(#[from] EvalError),
}

impl Error {
    /// The class of this error; parse errors are `BadData`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Parse(_) => ErrorKind::BadData,
            Error::Eval(e) => e.kind(),
        }
    }

    /// Where in the query text a parse error is.
    pub fn pos(&self) -> Option<Pos> {
        match self {
            Error::Parse(e) => Some(e.pos),
            Error::Eval(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_prometheus_error_types() {
        let p: Error = ParseError::new(Pos { line: 1, col: 5 }, "unexpected <op:+>").into();
        assert_eq!(p.kind().as_str(), "bad_data");
        assert_eq!(p.to_string(), "1:5: parse error: unexpected <op:+>");
        assert_eq!(p.pos(), Some(Pos { line: 1, col: 5 }));
        for (e, want) in [
            (EvalError::Timeout("x".into()), "timeout"),
            (EvalError::Canceled("x".into()), "canceled"),
            (EvalError::Execution("x".into()), "execution"),
            (EvalError::BadData("x".into()), "bad_data"),
            (EvalError::Storage("x".into()), "internal"),
        ] {
            assert_eq!(Error::from(e).kind().as_str(), want);
        }
    }
}
