//! The read seam: select series by matchers over `[mint, maxt]`.
//!
//! The PromQL engine and the HTTP read API depend only on [`Querier`], so the same engine can
//! read the local database (head and blocks merged), a remote engine, or both merged.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::block::{Block, ChunkMeta};
use crate::head::MemSeries;

use sextant_model::{HistogramValue, Labels, Matcher, Sample};

/// One series and its samples in the selected range, floats and histograms each sorted by time.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesData {
    pub labels: Labels,
    pub floats: Vec<Sample>,
    pub histograms: Vec<(i64, HistogramValue)>,
}

/// A selected series whose samples are decoded only when asked for, chunk by chunk, and only
/// for the chunks overlapping the asked window (Prometheus' `storage.Series` with its
/// `chunkenc.Iterator`): selecting costs labels and chunk references, not samples.
pub struct LazySeries {
    pub labels: Labels,
    /// Where the data lives, in source order (blocks by time, then the head); on equal
    /// timestamps the first source wins, like [`merge_series`].
    parts: Vec<Part>,
    /// At most this many samples lie in the selected range (chunk sample counts).
    pub max_samples: usize,
    /// Whether a chunk in the range holds histograms (if false, none is read).
    pub may_have_histograms: bool,
    /// Deleted intervals (tombstones) whose samples `read` leaves out.
    pub deleted: Vec<(i64, i64)>,
}

enum Part {
    Head(Arc<MemSeries>),
    Block(Arc<Block>, Vec<ChunkMeta>),
    /// Samples already computed (from downsampled aggregates), sorted by time.
    Mem(Arc<Vec<Sample>>),
    /// Another part read only within `[lo, hi]`.
    Window(Box<Part>, i64, i64),
}

impl std::fmt::Debug for LazySeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazySeries")
            .field("labels", &self.labels)
            .field("parts", &self.parts.len())
            .field("max_samples", &self.max_samples)
            .finish()
    }
}

impl LazySeries {
    pub(crate) fn head(labels: Labels, s: Arc<MemSeries>, bound: usize, hist: bool) -> Self {
        LazySeries {
            labels,
            parts: vec![Part::Head(s)],
            max_samples: bound,
            may_have_histograms: hist,
            deleted: Vec::new(),
        }
    }

    pub(crate) fn block(labels: Labels, b: Arc<Block>, metas: Vec<ChunkMeta>) -> Self {
        let hist = metas
            .iter()
            .any(|c| c.encoding != crate::block::floatenc::ENCODING_FLOAT_BLOCK);
        LazySeries {
            labels,
            max_samples: metas.len() * crate::block::floatenc::MAX_SAMPLES_PER_BLOCK_CHUNK,
            may_have_histograms: hist,
            parts: vec![Part::Block(b, metas)],
            deleted: Vec::new(),
        }
    }

    /// A series of samples computed in memory (sorted by time).
    pub(crate) fn mem(labels: Labels, samples: Vec<Sample>) -> Self {
        LazySeries {
            labels,
            max_samples: samples.len(),
            may_have_histograms: false,
            parts: vec![Part::Mem(Arc::new(samples))],
            deleted: Vec::new(),
        }
    }

    /// Replaces `out`'s samples with this series' samples in `[mint, maxt]` (inclusive),
    /// decoding only the chunks overlapping it. `out`'s buffers are reused.
    pub fn read(&self, mint: i64, maxt: i64, out: &mut SeriesData) -> Result<(), QueryError> {
        out.floats.clear();
        out.histograms.clear();
        let mut more = SeriesData {
            labels: Labels::default(),
            floats: Vec::new(),
            histograms: Vec::new(),
        };
        for (i, p) in self.parts.iter().enumerate() {
            let dst = if i == 0 { &mut *out } else { &mut more };
            read_part(&self.labels, p, mint, maxt, dst)?;
            if i > 0 {
                out.floats = crate::head::merge_samples(
                    std::mem::take(&mut out.floats),
                    std::mem::take(&mut more.floats),
                );
                out.histograms = merge_hist(
                    std::mem::take(&mut out.histograms),
                    std::mem::take(&mut more.histograms),
                );
            }
        }
        if !self.deleted.is_empty() {
            let iv = &self.deleted;
            out.floats
                .retain(|s| !crate::tombstones::is_deleted(iv, s.t));
            out.histograms
                .retain(|(t, _)| !crate::tombstones::is_deleted(iv, *t));
        }
        Ok(())
    }
}

impl LazySeries {
    /// Restricts every part read so far to `[lo, hi]` (parts merged in later are not).
    pub(crate) fn clip(&mut self, lo: i64, hi: i64) {
        for p in &mut self.parts {
            let inner = std::mem::replace(p, Part::Mem(Arc::new(Vec::new())));
            *p = Part::Window(Box::new(inner), lo, hi);
        }
    }
}

/// Replaces `dst`'s samples with part `p`'s in `[mint, maxt]`.
fn read_part(
    labels: &Labels,
    p: &Part,
    mint: i64,
    maxt: i64,
    dst: &mut SeriesData,
) -> Result<(), QueryError> {
    match p {
        Part::Head(s) => s.lock().read(mint, maxt, dst),
        Part::Mem(v) => {
            let (a, b) = (
                v.partition_point(|p| p.t < mint),
                v.partition_point(|p| p.t <= maxt),
            );
            dst.floats.clear();
            dst.histograms.clear();
            if a < b {
                dst.floats.extend_from_slice(&v[a..b]);
            }
        }
        Part::Block(b, metas) => {
            b.read_chunks(labels, metas, mint, maxt, dst)
                .map_err(|e| QueryError::Block {
                    block: b.meta().ulid.clone(),
                    msg: e.to_string(),
                })?
        }
        Part::Window(inner, lo, hi) => {
            let (a, b) = (mint.max(*lo), maxt.min(*hi));
            if a > b {
                dst.floats.clear();
                dst.histograms.clear();
            } else {
                read_part(labels, inner, a, b, dst)?;
                // Chunk reads may return whole chunks: cut to the window.
                dst.floats.retain(|s| s.t >= a && s.t <= b);
                dst.histograms.retain(|h| h.0 >= a && h.0 <= b);
            }
        }
    }
    Ok(())
}

/// Merges per-source lazy selections into one list sorted by labels (see [`merge_series`]).
pub(crate) fn merge_lazy(sources: Vec<Vec<LazySeries>>) -> Vec<LazySeries> {
    if sources.len() == 1 {
        let mut only = sources.into_iter().next().unwrap_or_default();
        only.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        return only;
    }
    let mut map: BTreeMap<Labels, LazySeries> = BTreeMap::new();
    for src in sources {
        for ls in src {
            match map.get_mut(&ls.labels) {
                None => {
                    map.insert(ls.labels.clone(), ls);
                }
                Some(cur) => {
                    cur.max_samples += ls.max_samples;
                    cur.may_have_histograms |= ls.may_have_histograms;
                    cur.parts.extend(ls.parts);
                }
            }
        }
    }
    map.into_values().collect()
}

/// What the query engine will do with a selection (Prometheus' `storage.SelectHints`), so
/// that [`crate::db::DbQuerier::select_lazy_hinted`] may read downsampled aggregates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SelectHints {
    /// The function the selector is a direct argument of; `None` for a plain instant selector.
    pub func: Option<String>,
    /// Range of a range-vector selector in ms (0 for instant-vector selectors).
    pub range: i64,
    /// Query step in ms (0 for instant queries).
    pub step: i64,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("reading block {block}: {msg}")]
    Block { block: String, msg: String },
    #[error("{0}")]
    Other(String),
}

/// Reads series from a store over a fixed time range.
pub trait Querier: Send + Sync {
    /// Series matching all matchers, with samples in `[mint, maxt]` (inclusive), sorted by labels.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError>;
    /// Label sets of matching series that have data in the range, sorted.
    fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64)
        -> Result<Vec<Labels>, QueryError>;
    /// Label names (sorted, unique) of matching series, or of all series with no matchers.
    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError>;
    /// Values (sorted, unique) of one label name.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError>;
}

/// Merges per-source results into one list sorted by labels; samples of the same series from
/// several sources are merged by time, the first source winning on equal timestamps.
pub fn merge_series(sources: Vec<Vec<SeriesData>>) -> Vec<SeriesData> {
    if sources.len() == 1 {
        let mut only = sources.into_iter().next().unwrap_or_default();
        // Label sets are unique: an unstable sort gives the same order, faster.
        only.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        return only;
    }
    let mut map: BTreeMap<Labels, SeriesData> = BTreeMap::new();
    for src in sources {
        for sd in src {
            match map.get_mut(&sd.labels) {
                None => {
                    map.insert(sd.labels.clone(), sd);
                }
                Some(cur) => {
                    cur.floats =
                        crate::head::merge_samples(std::mem::take(&mut cur.floats), sd.floats);
                    cur.histograms = merge_hist(std::mem::take(&mut cur.histograms), sd.histograms);
                }
            }
        }
    }
    map.into_values().collect()
}

fn merge_hist(
    a: Vec<(i64, HistogramValue)>,
    b: Vec<(i64, HistogramValue)>,
) -> Vec<(i64, HistogramValue)> {
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    let mut out: Vec<(i64, HistogramValue)> = Vec::with_capacity(a.len() + b.len());
    let mut bi = b.into_iter().peekable();
    for x in a {
        while let Some(y) = bi.next_if(|y| y.0 < x.0) {
            out.push(y);
        }
        bi.next_if(|y| y.0 == x.0);
        out.push(x);
    }
    out.extend(bi);
    out
}

/// Sorted union of string lists.
pub fn merge_strings(lists: Vec<Vec<String>>) -> Vec<String> {
    let mut all: Vec<String> = lists.into_iter().flatten().collect();
    all.sort();
    all.dedup();
    all
}
