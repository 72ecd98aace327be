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
