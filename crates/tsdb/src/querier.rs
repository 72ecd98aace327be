//! The read seam: select series by matchers over `[mint, maxt]`.
//!
//! The PromQL engine and the HTTP read API depend only on [`Querier`], so the same engine can
//! read the local database (head and blocks merged), a remote engine, or both merged.

use std::collections::BTreeMap;

use sextant_model::{HistogramValue, Labels, Matcher, Sample};

/// One series and its samples in the selected range, floats and histograms each sorted by time.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesData {
    pub labels: Labels,
    pub floats: Vec<Sample>,
    pub histograms: Vec<(i64, HistogramValue)>,
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
