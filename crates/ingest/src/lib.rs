//! Getting samples into Sextant: wire formats that other systems push or expose. Each module
//! turns one protocol into model types (`Labels`, `Sample`, histograms, `Metadata`) and reports
//! bad input with context; writing to storage happens elsewhere, through the `Appender` seam.
//!
//! - [`remote_write`]: Prometheus remote write 1.0 and 2.0 (protobuf + snappy).
//! - [`text`]: the Prometheus text exposition format 0.0.4 (plus OpenMetrics' `# EOF`).
//! - [`host`]: the built-in host collector (node_exporter's metrics) and process groups.
//! - [`sink`]: the seam to storage that every protocol writes through.

pub mod host;
pub mod remote_write;
pub mod sink;
pub mod text;

pub use sink::{Sink, SinkError, Stored};
