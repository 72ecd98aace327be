//! The fuzz targets' bodies as a library, so each libFuzzer binary in `fuzz_targets/` is one line
//! and the same functions run on stable as the corpus regression test
//! (`crates/sextant/tests/fuzz_corpus.rs`).

/// The sextant.yml parser, from the `sextant` crate's library.
pub use sextant::config as sextant_config;

pub mod targets;
