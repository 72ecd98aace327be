//! The fuzz targets' bodies as a library, so each libFuzzer binary in `fuzz_targets/` is one line
//! and the same functions run on stable as the corpus regression test
//! (`crates/sextant/tests/fuzz_corpus.rs`).

/// The sextant.yml parser lives in the binary crate; it is compiled in here from its source.
#[allow(dead_code, unused_imports)]
#[path = "../../crates/sextant/src/config.rs"]
mod sextant_config;

pub mod targets;
