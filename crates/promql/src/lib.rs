//! PromQL for Sextant: a parser producing our own AST, an evaluator with Prometheus semantics
//! that reads through the [`Querier`] seam, and the promqltest runner that scores it against
//! Prometheus' own conformance scripts.

pub mod ast;
pub mod error;
pub mod functions;
pub mod lexer;
pub mod parser;

pub use ast::Expr;
pub use error::{EvalError, ParseError, Pos};
pub use parser::{parse, parse_selector};
pub mod engine;
pub mod querier;
pub mod value;

mod aggr;
mod binop;
mod funcs;
mod hist;

pub use engine::{Engine, EngineOptions};
pub use querier::{MemQuerier, Querier, QueryError, SeriesData};
pub use value::{QueryResult, Series, VSample, Value};
pub mod promqltest;
