//! Getting samples into Sextant: wire formats that other systems push or expose. Each module
//! turns one protocol into model types (`Labels`, `Sample`, histograms, `Metadata`) and reports
//! bad input with context; writing to storage happens elsewhere, through the `Appender` seam.
//!
//! - [`remote_write`]: Prometheus remote write 1.0 and 2.0 (protobuf + snappy).
//! - [`text`]: the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0, chosen by
//!   Content-Type in [`text::parse_exposition`].
//! - [`influx`]: InfluxDB line protocol, mapped to series like VictoriaMetrics does.
//! - [`scrape`]: Prometheus-style scraping (config, discovery, relabeling, scrape loops).
//! - [`otlp`]: OTLP/HTTP metrics (protobuf and JSON) translated to Prometheus series.
//! - [`push`]: Pushgateway-compatible push groups (PUT/POST/DELETE, TTL, persistence).
//! - [`forge`]: GitHub and Gitea activity (issues, pull requests, CI runs) polled from their APIs.
//! - [`prices`]: the LLM price table (prices/llm.yml plus `prices:` overrides) and model matching.
//! - [`coverage`], [`bench`]: coverage reports and benchmark results that `sextant run` reports.
//! - [`junit`]: JUnit XML test reports, their run history and test-quality series.
//! - [`host`]: the built-in host collector (node_exporter's metrics) and process groups.
//! - [`probe`]: blackbox_exporter-style HTTP, TCP and DNS probes on an interval.
//! - [`events`]: agent run events (JSON) turned into counters and histograms.
//! - [`sink`]: the seam to storage that every protocol writes through.

pub mod bench;
pub mod bulk;
/// `io.prometheus.client` types: the protobuf exposition format (`MetricFamily`), generated
/// from `proto/io/prometheus/client/metrics.proto` by `cargo run -p protogen`.
#[allow(clippy::all, missing_docs)]
#[rustfmt::skip]
pub mod client_model;
pub mod coverage;
pub mod events;
pub mod forge;
pub mod host;
pub mod influx;
pub mod junit;
pub mod otlp;
pub mod prices;
pub mod probe;
pub mod push;
pub mod remote_write;
pub mod scrape;
pub mod sink;
pub mod text;

pub use sink::{Sink, SinkError, Stored};
