//! The parts of the `sextant` binary that other code builds on: the sextant.yml parser (with the
//! sections it owns: scheduled reports, the archive, remote-write queues) and the HTTP client setup. A library so that
//! the fuzz targets (`fuzz/`) and tests exercise the real parser, not a copy; everything else
//! lives in the binary (`main.rs`).

pub mod archive;
pub mod client;
pub mod config;
pub mod forward;
pub mod limits;
pub mod report;
