//! PromQL for Sextant: a parser producing our own AST, an evaluator with Prometheus semantics
//! that reads through the [`Querier`] seam, and the promqltest runner that scores it against
//! Prometheus' own conformance scripts.
//!
//! # The seam the server uses
//!
//! ```text
//! parse(&str) -> Result<Expr, Error>            // Expr: Display is /api/v1/format_query's
//!                                               // canonical text (Prometheus' String())
//! expr.to_json() -> String                      // /api/v1/parse_query's JSON tree
//! Engine::new(EngineOptions)                    // timeout, max_samples, lookback, 11k points
//! engine.instant(&dyn Querier, &str, t_ms)      // /api/v1/query
//! engine.range(&dyn Querier, &str, start_ms, end_ms, step_ms)   // /api/v1/query_range
//!     -> Result<QueryResult, Error>
//! QueryResult { value: Value::{Scalar, String, Vector, Matrix}, warnings, infos, stats }
//! Error::kind().as_str()                        // the API's errorType; to_string() its error
//! ```
//!
//! Storage is reached only through [`Querier::select`], so the same engine runs over the local
//! TSDB, a remote engine, or [`MemQuerier`] in tests.

pub mod api;
pub mod ast;
pub mod error;
pub mod functions;
pub mod lexer;
pub mod parser;

pub use ast::Expr;
pub use error::{Error, ErrorKind, EvalError, ParseError, Pos};
pub use parser::parse_selector;
pub mod engine;
pub mod querier;
pub mod value;

mod aggr;
mod binop;
mod funcs;
mod hist;
mod json;
mod range;

pub use api::api_buckets;
pub use engine::{Engine, EngineOptions};
pub use querier::{LoadedSet, MemQuerier, Querier, QueryError, SelectHints, SeriesData, SeriesSet};
pub use value::{QueryResult, QueryStats, Series, VSample, Value};
pub mod promqltest;

/// Parses a PromQL expression. Errors are [`ErrorKind::BadData`] and carry a 1-based line and
/// column, e.g. `1:5: parse error: unexpected <op:+>`.
pub fn parse(expr: &str) -> Result<Expr, Error> {
    Ok(parser::parse(expr)?)
}
