//! The storage seam of ingest: every protocol decodes into a [`WriteBatch`] and hands it to a
//! [`Sink`]. The server implements it over the TSDB; tests implement it over a `Vec`. Keeping
//! the seam here lets scrape loops, push groups and OTLP translation live in this crate without
//! knowing how storage works.

use sextant_model::{HistogramValue, Labels};

use crate::remote_write::WriteBatch;

/// Outcome of storing one batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// Float samples committed.
    pub samples: usize,
    /// Native histogram samples committed.
    pub histograms: usize,
    /// Exemplars stored (duplicates of a series' newest exemplar are dropped silently).
    pub exemplars: usize,
    /// Exemplars refused as out of order: counted and logged, not a problem of the request,
    /// as in Prometheus.
    pub exemplars_out_of_order: usize,
    /// Samples or series refused (invalid labels, out of order, over a limit, ...).
    pub problems: usize,
    /// The first of those problems, for the error message.
    pub first_problem: Option<String>,
}

impl Stored {
    /// Records `n` refused samples; keeps the first message.
    pub fn problem(&mut self, n: usize, msg: impl FnOnce() -> String) {
        self.problems += n;
        if self.first_problem.is_none() {
            self.first_problem = Some(msg());
        }
    }
}

/// Storage could not take the batch at all (nothing of it was acknowledged); the sender should
/// retry later.
#[derive(Debug, thiserror::Error)]
#[error("storage unavailable: {0}")]
pub struct SinkError(pub String);

/// Where decoded samples go. `store` returns once accepted samples are durable (written to
/// the WAL), so a caller may acknowledge them.
pub trait Sink: Send + Sync {
    fn store(&self, batch: WriteBatch) -> Result<Stored, SinkError>;

    /// The newest stored sample of the series with exactly `labels`, if storage still has it
    /// at hand: `(timestamp ms, Ok(float) or Err(native histogram))`. Ingest state derived
    /// from stored data (OTLP delta → cumulative totals) continues from it after a restart.
    /// The default knows nothing.
    fn last_sample(&self, labels: &Labels) -> Option<(i64, Result<f64, HistogramValue>)> {
        let _ = labels;
        None
    }
}
