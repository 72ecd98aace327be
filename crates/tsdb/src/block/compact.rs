//! Merging blocks ([`compact`]) and choosing which to merge ([`plan_compaction`]).
//!
//! Compaction streams series in label order from every input block (one series per block in
//! memory at a time) into a new block. Planning follows Prometheus' leveled strategy: overlapping
//! blocks are merged first; otherwise adjacent blocks that together fill an aligned window of a
//! larger range are merged once that window is complete.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sextant_model::Labels;

use super::{write_sorted, Block, BlockError, BlockMeta, BlockSeries};

/// Merges blocks (overlapping allowed: for equal timestamps the first block in the slice wins)
/// into one new block in `parent`; level = max(level)+1, sources = union of sources, time range =
/// the union of the inputs'.
pub fn compact(parent: &Path, blocks: &[&Block]) -> Result<BlockMeta, BlockError> {
    compact_without(parent, blocks, &crate::tombstones::TombstoneMap::new())
}

/// [`compact`], leaving out the samples inside `deleted`'s intervals (as Prometheus drops
/// tombstoned samples when it compacts): float samples one by one, histogram chunks when an
/// interval covers them wholly (a partly deleted chunk is kept; its tombstone still hides it).
pub fn compact_without(
    parent: &Path,
    blocks: &[&Block],
    deleted: &crate::tombstones::TombstoneMap,
) -> Result<BlockMeta, BlockError> {
    if blocks.is_empty() {
        return Err(BlockError::Invalid(
            "compact needs at least one block".into(),
        ));
    }
    let metas: Vec<&BlockMeta> = blocks.iter().map(|b| b.meta()).collect();
    let mint = metas.iter().map(|m| m.min_time).min().unwrap_or(0);
    let maxt = metas.iter().map(|m| m.max_time).max().unwrap_or(0);
    let level = metas.iter().map(|m| m.compaction.level).max().unwrap_or(0) + 1;
    let mut sources = BTreeSet::new();
    for m in &metas {
        if m.compaction.sources.is_empty() {
            sources.insert(m.ulid.clone());
        }
        sources.extend(m.compaction.sources.iter().cloned());
    }
    let mut symbols = BTreeSet::new();
    for b in blocks {
        symbols.extend(b.symbols().iter().cloned());
    }
    let merger = Merger::new(blocks)?.filter_map(|r| match r {
        Ok(mut s) => {
            if let Some(iv) = deleted.get(&s.labels) {
                drop_deleted(&mut s, iv);
            }
            (!s.floats.is_empty() || !s.hist_chunks.is_empty()).then_some(Ok(s))
        }
        Err(e) => Some(Err(e)),
    });
    write_sorted(
        parent,
        symbols,
        merger,
        mint,
        maxt,
        level,
        sources.into_iter().collect(),
    )
}

/// Yields merged series in label order across blocks.
struct Merger<'a> {
    blocks: &'a [&'a Block],
    /// Per block: its series references and the position of the next one.
    refs: Vec<(Vec<u64>, usize)>,
    /// Next unconsumed series of each block, keyed by labels, then block index.
    heads: BTreeMap<(Labels, usize), u64>,
    failed: bool,
}

impl<'a> Merger<'a> {
    fn new(blocks: &'a [&'a Block]) -> Result<Self, BlockError> {
        let mut m = Merger {
            blocks,
            refs: Vec::with_capacity(blocks.len()),
            heads: BTreeMap::new(),
            failed: false,
        };
        for b in blocks {
            m.refs.push((b.all_series_refs()?, 0));
        }
        for i in 0..blocks.len() {
            m.advance(i)?;
        }
        Ok(m)
    }

    /// Moves block `i`'s next series into `heads`.
    fn advance(&mut self, i: usize) -> Result<(), BlockError> {
        let (refs, pos) = &mut self.refs[i];
        if let Some(&r) = refs.get(*pos) {
            *pos += 1;
            let labels = self.blocks[i].series_labels(r)?;
            self.heads.insert((labels, i), r);
        }
        Ok(())
    }

    fn next_series(&mut self) -> Result<Option<BlockSeries>, BlockError> {
        loop {
            let Some(((labels, _), _)) = self.heads.first_key_value() else {
                return Ok(None);
            };
            let labels = labels.clone();
            let mut parts = Vec::new();
            while let Some(entry) = self.heads.first_entry() {
                if entry.key().0 != labels {
                    break;
                }
                let ((_, i), r) = entry.remove_entry();
                if let Some(s) = self.blocks[i].series_data(r)? {
                    parts.push(s);
                }
                self.advance(i)?;
            }
            if let Some(s) = merge_series(labels, parts) {
                return Ok(Some(s));
            }
        }
    }
}

impl Iterator for Merger<'_> {
    type Item = Result<BlockSeries, BlockError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self.next_series().transpose();
        if matches!(r, Some(Err(_))) {
            self.failed = true;
        }
        r
    }
}

/// Merges the parts of one series, given in block order: the earliest part wins on equal
/// timestamps; identical histogram chunks are kept once.
fn merge_series(labels: Labels, mut parts: Vec<BlockSeries>) -> Option<BlockSeries> {
    if parts.len() <= 1 {
        return parts.pop();
    }
    let mut floats = Vec::with_capacity(parts.iter().map(|p| p.floats.len()).sum());
    let mut hist_chunks = Vec::new();
    for p in parts {
        floats.extend(p.floats);
        hist_chunks.extend(p.hist_chunks);
    }
    // Stable sort keeps block order among equal timestamps; dedup keeps the first.
    floats.sort_by_key(|s| s.t);
    floats.dedup_by_key(|s| s.t);
    hist_chunks.sort_by_key(|c| (c.min_t, c.max_t));
    let mut uniq: Vec<super::RawChunk> = Vec::with_capacity(hist_chunks.len());
    for c in hist_chunks {
        if !uniq.contains(&c) {
            uniq.push(c);
        }
    }
    Some(BlockSeries {
        labels,
        floats,
        hist_chunks: uniq,
    })
}

/// Prometheus-style leveled planning over `ranges` (e.g. `[2h, 6h, 18h, …]` in ms). Returns the
/// ulids of blocks to merge: first any overlapping blocks; else the oldest group of at least two
/// adjacent blocks that fit inside one aligned window of `ranges[i]` (i ≥ 1) that is complete —
/// it spans the whole window or the newest block starts beyond it. `None` when nothing to do.
pub fn plan_compaction(metas: &[BlockMeta], ranges: &[i64]) -> Option<Vec<String>> {
    let mut sorted: Vec<&BlockMeta> = metas.iter().collect();
    sorted
        .sort_by(|a, b| (a.min_time, a.max_time, &a.ulid).cmp(&(b.min_time, b.max_time, &b.ulid)));

    // Overlapping blocks first: the first run of blocks each starting before the run's end.
    let mut i = 0;
    while i < sorted.len() {
        let mut end = sorted[i].max_time;
        let mut j = i + 1;
        while j < sorted.len() && sorted[j].min_time < end {
            end = end.max(sorted[j].max_time);
            j += 1;
        }
        if j - i > 1 {
            return Some(sorted[i..j].iter().map(|m| m.ulid.clone()).collect());
        }
        i = j;
    }

    // The newest block (likely just cut from the head) is not a candidate.
    let newest = sorted.pop()?;
    let high = newest.min_time;
    for &r in ranges.iter().skip(1).filter(|&&r| r > 0) {
        let mut k = 0;
        while k < sorted.len() {
            let start = sorted[k].min_time.div_euclid(r).saturating_mul(r);
            let end = start.saturating_add(r);
            let mut group = Vec::new();
            while k < sorted.len() && sorted[k].min_time < end {
                if sorted[k].max_time <= end {
                    group.push(sorted[k]);
                }
                k += 1;
            }
            let Some(first) = group.first() else {
                continue;
            };
            let last_max = group.last().map_or(first.max_time, |m| m.max_time);
            let complete = last_max - first.min_time == r || end <= high;
            if group.len() > 1 && complete {
                return Some(group.iter().map(|m| m.ulid.clone()).collect());
            }
        }
    }
    None
}

/// Outcome of [`rewrite_without`].
pub struct Rewritten {
    /// The new block, or `None` when no sample was deleted (no block written).
    pub meta: Option<BlockMeta>,
    /// Series with a histogram chunk only partly inside a deleted interval: the chunk is kept
    /// whole, so their tombstones must stay.
    pub partial: Vec<Labels>,
}

/// Writes a copy of `block` into `parent` without the samples inside `deleted`'s intervals
/// (same time range, level and sources). Float samples are removed one by one; a histogram
/// chunk is dropped when an interval covers it wholly and kept otherwise.
pub fn rewrite_without(
    parent: &Path,
    block: &Block,
    deleted: &crate::tombstones::TombstoneMap,
) -> Result<Rewritten, BlockError> {
    let m = block.meta();
    // First pass: does any tombstone remove a sample or chunk stored here?
    let mut changed = false;
    for (labels, iv) in deleted {
        if iv.iter().all(|&(a, b)| b < m.min_time || a >= m.max_time) {
            continue;
        }
        let exact: Vec<sextant_model::Matcher> = labels
            .iter()
            .map(|l| sextant_model::Matcher::equal(l.name.clone(), l.value.clone()))
            .collect();
        for &(a, b) in iv {
            if !block.select(&exact, a, b)?.is_empty() {
                changed = true;
                break;
            }
        }
        if changed {
            break;
        }
    }
    let mut partial = Vec::new();
    if !changed {
        return Ok(Rewritten {
            meta: None,
            partial,
        });
    }
    // Second pass: stream the series, one in memory at a time, without the deleted samples.
    let refs = block.all_series_refs()?;
    let series = refs.into_iter().filter_map(|r| {
        let mut s = match block.series_data(r) {
            Ok(Some(s)) => s,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        if let Some(iv) = deleted.get(&s.labels) {
            if drop_deleted(&mut s, iv) {
                partial.push(s.labels.clone());
            }
        }
        (!s.floats.is_empty() || !s.hist_chunks.is_empty()).then_some(Ok(s))
    });
    let sources = if m.compaction.sources.is_empty() {
        vec![m.ulid.clone()]
    } else {
        m.compaction.sources.clone()
    };
    let symbols: BTreeSet<String> = block.symbols().iter().cloned().collect();
    let meta = write_sorted(
        parent,
        symbols,
        series,
        m.min_time,
        m.max_time,
        m.compaction.level,
        sources,
    )?;
    Ok(Rewritten {
        meta: Some(meta),
        partial,
    })
}

/// Removes the float samples inside `iv` and the histogram chunks `iv` covers wholly; true when
/// a histogram chunk is left that is partly inside (its tombstone must stay).
pub(crate) fn drop_deleted(s: &mut BlockSeries, iv: &[(i64, i64)]) -> bool {
    s.floats.retain(|x| !crate::tombstones::is_deleted(iv, x.t));
    s.hist_chunks
        .retain(|c| !iv.iter().any(|&(a, b)| a <= c.min_t && c.max_t <= b));
    s.hist_chunks
        .iter()
        .any(|c| iv.iter().any(|&(a, b)| a <= c.max_t && c.min_t <= b))
}
