//! Query results: scalars, strings, instant vectors and range vectors (matrices), the four
//! value types of PromQL, as the evaluator hands them to the API.

use sextant_model::{FloatHistogram, Labels, Sample};

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct VSample {
    pub labels: Labels,
    /// Timestamp in milliseconds (the evaluation time, or the sample time for selectors).
    pub t: i64,
    /// The float value (ignored when `h` is set).
    pub f: f64,
    pub h: Option<Box<FloatHistogram>>,
    /// Delayed name removal: drop `__name__` when the query finishes.
    pub drop_name: bool,
}

/// One series of a range vector.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Series {
    pub labels: Labels,
    pub floats: Vec<Sample>,
    pub histograms: Vec<(i64, FloatHistogram)>,
    pub drop_name: bool,
    /// Start timestamps of `floats` (empty when unknown, 0 = unset); only selectors carry them.
    pub float_st: Vec<i64>,
    /// Start timestamps of `histograms`, like `float_st`.
    pub hist_st: Vec<i64>,
}

/// A borrowed series (or a window of one): what range functions read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeriesView<'a> {
    pub labels: &'a Labels,
    pub floats: &'a [Sample],
    pub histograms: &'a [(i64, FloatHistogram)],
    /// Start timestamps of `floats` (empty when unknown).
    pub float_st: &'a [i64],
    /// Start timestamps of `histograms` (empty when unknown).
    pub hist_st: &'a [i64],
}

impl Series {
    /// The whole series as a [`SeriesView`].
    pub(crate) fn view(&self) -> SeriesView<'_> {
        SeriesView {
            labels: &self.labels,
            floats: &self.floats,
            histograms: &self.histograms,
            float_st: &self.float_st,
            hist_st: &self.hist_st,
        }
    }
}

/// The result of evaluating an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, s: String },
    Vector(Vec<VSample>),
    Matrix(Vec<Series>),
}

impl Value {
    /// The API's `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// A query's value plus the warnings and infos Prometheus would attach.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    /// Annotations Prometheus returns as `warnings` (e.g. "PromQL warning: ...").
    pub warnings: Vec<String>,
    /// Annotations Prometheus returns as `infos` (e.g. "PromQL info: ...").
    pub infos: Vec<String>,
    pub stats: QueryStats,
}

/// Sample statistics of one query (the `stats` of Prometheus' API).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Samples read by selectors over all steps (`totalQueryableSamples`).
    pub total_samples: u64,
    /// The most samples held in memory at once (`peakSamples`).
    pub peak_samples: usize,
}
