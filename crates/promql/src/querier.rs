//! The storage seam the evaluator reads through, shaped like `sextant_tsdb::Querier`, plus an
//! in-memory implementation used by tests and the promqltest runner.

use std::collections::BTreeMap;

use sextant_model::matcher::matches_all;
use sextant_model::{HistogramValue, Labels, Matcher, Sample};

/// One series with its samples in a time range, floats and histograms each sorted by time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesData {
    pub labels: Labels,
    pub floats: Vec<Sample>,
    pub histograms: Vec<(i64, HistogramValue)>,
    /// Start (created) timestamps of `floats`, index for index; empty when unknown, 0 = unset.
    pub float_st: Vec<i64>,
    /// Start timestamps of `histograms`, like `float_st`.
    pub hist_st: Vec<i64>,
}

/// Why storage could not answer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// What the engine will do with a selection, like Prometheus' `storage.SelectHints`: a store
/// may answer from downsampled aggregates where that keeps the result correct.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SelectHints {
    /// The function the selector is a direct argument of (`rate`, `max_over_time`, ...);
    /// `None` for a plain instant-vector selector.
    pub func: Option<&'static str>,
    /// The range of a range-vector selector in ms, 0 for an instant-vector selector.
    pub range: i64,
    /// The query step in ms (0 for instant queries).
    pub step: i64,
}

/// Selects series by matchers over an inclusive millisecond range, sorted by labels.
pub trait Querier: Send + Sync {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError>;

    /// Like [`Querier::select`], but samples may be read later, series by series and window
    /// by window (Prometheus' `storage.SeriesSet`). A store that decodes on demand overrides
    /// this; the default reads everything now through `select`, so a remote engine only
    /// needs `select`.
    fn select_lazy(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Box<dyn SeriesSet + '_>, QueryError> {
        Ok(Box::new(LoadedSet(self.select(matchers, mint, maxt)?)))
    }

    /// Like [`Querier::select_lazy`] with [`SelectHints`]; the default ignores the hints.
    fn select_hinted(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        _hints: &SelectHints,
    ) -> Result<Box<dyn SeriesSet + '_>, QueryError> {
        self.select_lazy(matchers, mint, maxt)
    }
}

/// Series selected up front (labels and where their data is), sorted by labels, whose samples
/// are read per series on demand. Series may turn out to have no sample in the range.
pub trait SeriesSet: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn labels(&self, i: usize) -> &Labels;
    /// An upper bound of the samples series `i` holds in the selected range.
    fn max_samples(&self, i: usize) -> usize;
    /// False when series `i` surely has no histogram samples in the selected range.
    fn may_have_histograms(&self, i: usize) -> bool;
    /// False when series `i` surely carries no start timestamps.
    fn may_have_start_timestamps(&self, i: usize) -> bool;
    /// Replaces `out`'s samples and start timestamps (not its labels) with those of series `i`
    /// in `[mint, maxt]` (inclusive, within the selected range), reusing `out`'s buffers.
    fn read(&self, i: usize, mint: i64, maxt: i64, out: &mut SeriesData) -> Result<(), QueryError>;
}

/// A [`SeriesSet`] over series already read in full.
pub struct LoadedSet(pub Vec<SeriesData>);

impl SeriesSet for LoadedSet {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn labels(&self, i: usize) -> &Labels {
        &self.0[i].labels
    }
    fn max_samples(&self, i: usize) -> usize {
        self.0[i].floats.len() + self.0[i].histograms.len()
    }
    fn may_have_histograms(&self, i: usize) -> bool {
        !self.0[i].histograms.is_empty()
    }
    fn may_have_start_timestamps(&self, i: usize) -> bool {
        !self.0[i].float_st.is_empty() || !self.0[i].hist_st.is_empty()
    }
    fn read(&self, i: usize, mint: i64, maxt: i64, out: &mut SeriesData) -> Result<(), QueryError> {
        let s = &self.0[i];
        let (fa, fb) = (
            s.floats.partition_point(|p| p.t < mint),
            s.floats.partition_point(|p| p.t <= maxt),
        );
        let (ha, hb) = (
            s.histograms.partition_point(|p| p.0 < mint),
            s.histograms.partition_point(|p| p.0 <= maxt),
        );
        out.floats.clear();
        out.histograms.clear();
        out.float_st.clear();
        out.hist_st.clear();
        if fa < fb {
            out.floats.extend_from_slice(&s.floats[fa..fb]);
            if !s.float_st.is_empty() {
                out.float_st.extend_from_slice(&s.float_st[fa..fb]);
            }
        }
        if ha < hb {
            out.histograms.extend_from_slice(&s.histograms[ha..hb]);
            if !s.hist_st.is_empty() {
                out.hist_st.extend_from_slice(&s.hist_st[ha..hb]);
            }
        }
        Ok(())
    }
}

/// A `Querier` over series held in memory.
#[derive(Clone, Debug, Default)]
pub struct MemQuerier {
    series: BTreeMap<Labels, SeriesData>,
}

impl MemQuerier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a float sample; samples must arrive in time order per series.
    pub fn add_float(&mut self, labels: &Labels, t: i64, v: f64) {
        self.entry(labels).floats.push(Sample::new(t, v));
    }

    /// Sets the start timestamp of the sample at `t` (float or histogram), if there is one.
    pub fn set_start_timestamp(&mut self, labels: &Labels, t: i64, st: i64) {
        let e = self.entry(labels);
        if let Some(i) = e.floats.iter().position(|p| p.t == t) {
            e.float_st.resize(e.floats.len(), 0);
            e.float_st[i] = st;
        }
        if let Some(i) = e.histograms.iter().position(|p| p.0 == t) {
            e.hist_st.resize(e.histograms.len(), 0);
            e.hist_st[i] = st;
        }
    }

    /// Appends a histogram sample.
    pub fn add_histogram(&mut self, labels: &Labels, t: i64, h: HistogramValue) {
        self.entry(labels).histograms.push((t, h));
    }

    fn entry(&mut self, labels: &Labels) -> &mut SeriesData {
        self.series
            .entry(labels.clone())
            .or_insert_with(|| SeriesData {
                labels: labels.clone(),
                ..Default::default()
            })
    }

    /// The newest histogram of a series, if any (as a float histogram).
    pub fn last_histogram(&self, labels: &Labels) -> Option<sextant_model::FloatHistogram> {
        self.series
            .get(labels)
            .and_then(|s| s.histograms.last())
            .map(|h| h.1.to_float())
    }

    /// Removes all series.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    /// Iterates over all series.
    pub fn iter(&self) -> impl Iterator<Item = &SeriesData> {
        self.series.values()
    }
}

impl Querier for MemQuerier {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let mut out = Vec::new();
        for s in self.series.values() {
            if !matches_all(&s.labels, matchers) {
                continue;
            }
            let (fa, fb) = (
                s.floats.partition_point(|p| p.t < mint),
                s.floats.partition_point(|p| p.t <= maxt),
            );
            let (ha, hb) = (
                s.histograms.partition_point(|p| p.0 < mint),
                s.histograms.partition_point(|p| p.0 <= maxt),
            );
            if fa >= fb && ha >= hb {
                continue;
            }
            let st = |v: &[i64], n: usize, a: usize, b: usize| -> Vec<i64> {
                if v.is_empty() {
                    return Vec::new();
                }
                let mut v = v.to_vec();
                v.resize(n, 0);
                v[a..b].to_vec()
            };
            out.push(SeriesData {
                labels: s.labels.clone(),
                floats: s.floats[fa..fb].to_vec(),
                histograms: s.histograms[ha..hb].to_vec(),
                float_st: st(&s.float_st, s.floats.len(), fa, fb),
                hist_st: st(&s.hist_st, s.histograms.len(), ha, hb),
            });
        }
        Ok(out)
    }
}
