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
    /// The Prometheus API `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            EvalError::Timeout(_) => "timeout",
            EvalError::Canceled(_) => "canceled",
            EvalError::Execution(_) => "execution",
            EvalError::BadData(_) => "bad_data",
            EvalError::Storage(_) => "internal",
        }
    }
}
