//! The vocabulary every Sextant crate shares: label sets, float and histogram samples, label
//! matchers, Prometheus durations and timestamps. Pure data and parsing, no I/O, so ingest,
//! storage, query and alerting agree on one definition of each.

pub mod exemplar;
pub mod histogram;
pub mod labels;
pub mod matcher;
pub mod metadata;
pub mod relabel;
pub mod sample;
pub mod selector;
pub mod time;

pub use exemplar::{Exemplar, ExemplarError, EXEMPLAR_MAX_LABEL_SET_LENGTH};
pub use histogram::{CounterResetHint, FloatHistogram, Histogram, HistogramValue, Span};
pub use labels::{Label, Labels, LabelsError, METRIC_NAME};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use metadata::{Metadata, MetricType};
pub use sample::{is_stale_nan, Sample, Value, STALE_NAN, STALE_NAN_BITS};
