//! Immutable on-disk blocks: the long-term home of samples once the head has cut them.
//!
//! A block covers a time range `[min_time, max_time)` and is written once, to
//! `<parent>/<ulid>.tmp`, fsynced and renamed to `<parent>/<ulid>`, so readers only ever see
//! complete blocks. Blocks are read through memory maps; nothing is loaded whole except the small
//! symbol and postings-offset tables, and series are decoded lazily when selected. Blocks are
//! merged by [`compact`], planned Prometheus-style by [`plan_compaction`].
//!
//! # Directory layout (Sextant's own format, shaped like Prometheus')
//!
//! ```text
//! <ulid>/meta.json       {"ulid", "minTime", "maxTime", "stats": {"numSamples", "numSeries",
//!                         "numChunks"}, "compaction": {"level", "sources"}, "version": 1}
//! <ulid>/index           symbols, series, postings (see below)
//! <ulid>/chunks/000001   chunk segments, each at most 512 MiB
//! ```
//!
//! **Chunk segments** start with `"SXCK" version(1) 0 0 0`, then chunks
//! `uvarint len | encoding u8 | data | CRC32C(encoding‖data) u32 BE`. A chunk reference is
//! `segment_index << 32 | offset`. Float samples use the block float encoding `0x81`
//! ([`floatenc`]: delta-of-delta timestamps, decimal-scaled delta values with a bit-exact XOR
//! fallback, zstd); histogram chunks are stored as given, with their Prometheus encoding byte.
//!
//! **Index** (all integers varints unless noted; `section` = `len u32 BE | payload | CRC32C u32 BE`):
//!
//! ```text
//! "SXIX" version(1) 0 0 0
//! section symbols:   count, then count × (len, UTF-8 bytes); sorted, each label string once
//! section series:    per series, in label order: len, nlabels, nlabels × (name sym, value sym),
//!                    nchunks, nchunks × (encoding u8, min_t − prev max_t (zig-zag),
//!                    max_t − min_t (zig-zag), chunk ref). A series reference is the entry's
//!                    offset in this section.
//! section postings:  lists of series references: count, then deltas. The first list holds
//!                    every series.
//! section table:     count, count × (name sym, value sym, offset of its postings list),
//!                    sorted by name then value
//! TOC (fixed):       offsets of the 4 sections u64 BE, offset of the all-series list u64 BE,
//!                    CRC32C of these 40 bytes u32 BE
//! ```
//!
//! `=` matchers read one postings list; `=~` with literal alternatives read a few; other regex
//! and negative matchers scan the label's value list in the table. Matchers that accept the empty
//! value (such as `!=`) subtract the postings of the values they reject, so series without the
//! label match, as in Prometheus.

mod chunks;
mod compact;
pub mod floatenc;
mod index;
pub(crate) use index::ChunkMeta;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sextant_model::{Labels, MatchOp, Matcher, Sample};

use crate::chunkenc::Chunk;
use crate::postings::{intersect, subtract};
use chunks::{ChunkReader, ChunkWriter};
use floatenc::{ENCODING_FLOAT_BLOCK, MAX_SAMPLES_PER_BLOCK_CHUNK};
use index::{IndexReader, IndexWriter};

pub(crate) use compact::drop_deleted;
pub use compact::{compact, compact_without, plan_compaction, rewrite_without, Rewritten};

/// Version written to `meta.json`.
pub const BLOCK_VERSION: u32 = 1;

/// A chunk as stored, with the time range it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct RawChunk {
    pub encoding: u8,
    pub min_t: i64,
    pub max_t: i64,
    pub data: Vec<u8>,
}

/// One series of a block: float samples decoded, histogram chunks raw.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSeries {
    pub labels: Labels,
    pub floats: Vec<Sample>,
    pub hist_chunks: Vec<RawChunk>,
}

/// The contents of `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub ulid: String,
    pub min_time: i64,
    /// Exclusive, like Prometheus.
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: BlockCompaction,
    pub version: u32,
}

/// Counts recorded in `meta.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    pub num_samples: u64,
    pub num_series: u64,
    pub num_chunks: u64,
}

/// How a block came to be: compaction level and the ulids of the head-cut blocks it contains.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockCompaction {
    pub level: u32,
    pub sources: Vec<String>,
}

/// Why a block could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A block file holds something impossible (damaged or truncated).
    #[error("corrupt block file {path}: {what}")]
    Corrupt { path: PathBuf, what: String },
    /// `meta.json` is not valid.
    #[error("invalid block meta {path}: {what}")]
    Meta { path: PathBuf, what: String },
    /// The caller asked for something that cannot be written.
    #[error("invalid block input: {0}")]
    Invalid(String),
}

impl BlockError {
    fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        BlockError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes a block dir `<parent>/<ulid>` (written as `<ulid>.tmp`, fsynced, renamed). `series`
/// may come in any order; floats are sorted samples in `[mint, maxt)`. Empty `sources` means
/// `[own ulid]`. Series without any sample are left out.
pub fn write_block(
    parent: &Path,
    mut series: Vec<BlockSeries>,
    mint: i64,
    maxt: i64,
    level: u32,
    sources: Vec<String>,
) -> Result<BlockMeta, BlockError> {
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut symbols = BTreeSet::new();
    for s in &series {
        for l in s.labels.iter() {
            if !symbols.contains(&l.name) {
                symbols.insert(l.name.clone());
            }
            if !symbols.contains(&l.value) {
                symbols.insert(l.value.clone());
            }
        }
    }
    write_sorted(
        parent,
        symbols,
        series.into_iter().map(Ok),
        mint,
        maxt,
        level,
        sources,
    )
}

/// Writes a block from series sorted by labels; `symbols` must hold every label string.
pub(crate) fn write_sorted(
    parent: &Path,
    symbols: BTreeSet<String>,
    series: impl Iterator<Item = Result<BlockSeries, BlockError>>,
    mint: i64,
    maxt: i64,
    level: u32,
    sources: Vec<String>,
) -> Result<BlockMeta, BlockError> {
    if mint > maxt {
        return Err(BlockError::Invalid(format!(
            "block min time {mint} after max time {maxt}"
        )));
    }
    let ulid = new_ulid();
    let tmp = parent.join(format!("{ulid}.tmp"));
    let dir = parent.join(&ulid);
    let res = write_tmp(&tmp, &ulid, symbols, series, mint, maxt, level, sources);
    let meta = match res {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    fs::rename(&tmp, &dir).map_err(|e| BlockError::io("rename", &tmp, e))?;
    sync_dir(parent)?;
    tracing::debug!(
        ulid = %meta.ulid,
        level = meta.compaction.level,
        series = meta.stats.num_series,
        samples = meta.stats.num_samples,
        "wrote block"
    );
    Ok(meta)
}

#[allow(clippy::too_many_arguments)]
fn write_tmp(
    tmp: &Path,
    ulid: &str,
    symbols: BTreeSet<String>,
    series: impl Iterator<Item = Result<BlockSeries, BlockError>>,
    mint: i64,
    maxt: i64,
    level: u32,
    sources: Vec<String>,
) -> Result<BlockMeta, BlockError> {
    let chunks_dir = tmp.join("chunks");
    fs::create_dir_all(&chunks_dir).map_err(|e| BlockError::io("create dir", &chunks_dir, e))?;
    let mut cw = ChunkWriter::new(&chunks_dir);
    let mut iw = IndexWriter::new(symbols);
    let mut stats = BlockStats::default();
    let mut metas = Vec::new();
    for s in series {
        let s = s?;
        metas.clear();
        for part in s.floats.chunks(MAX_SAMPLES_PER_BLOCK_CHUNK) {
            let data = floatenc::encode(part);
            let chunk_ref = cw.write(ENCODING_FLOAT_BLOCK, &data)?;
            let min_t = part.iter().map(|s| s.t).min().unwrap_or(0);
            let max_t = part.iter().map(|s| s.t).max().unwrap_or(0);
            metas.push(ChunkMeta {
                encoding: ENCODING_FLOAT_BLOCK,
                min_t,
                max_t,
                chunk_ref,
            });
        }
        stats.num_samples += s.floats.len() as u64;
        for h in &s.hist_chunks {
            if h.encoding == ENCODING_FLOAT_BLOCK {
                return Err(BlockError::Invalid(format!(
                    "series {}: histogram chunk with the block float encoding",
                    s.labels
                )));
            }
            let chunk = Chunk::from_encoded(h.encoding, h.data.clone()).map_err(|e| {
                BlockError::Invalid(format!("series {}: histogram chunk: {e}", s.labels))
            })?;
            stats.num_samples += u64::from(chunk.num_samples());
            let chunk_ref = cw.write(h.encoding, &h.data)?;
            metas.push(ChunkMeta {
                encoding: h.encoding,
                min_t: h.min_t,
                max_t: h.max_t,
                chunk_ref,
            });
        }
        if metas.is_empty() {
            continue;
        }
        metas.sort_by_key(|m| m.min_t);
        iw.add_series(&s.labels, &metas)?;
        stats.num_series += 1;
        stats.num_chunks += metas.len() as u64;
    }
    cw.finish()?;
    write_file(&tmp.join("index"), &iw.finish()?)?;
    let meta = BlockMeta {
        ulid: ulid.to_string(),
        min_time: mint,
        max_time: maxt,
        stats,
        compaction: BlockCompaction {
            level,
            sources: if sources.is_empty() {
                vec![ulid.to_string()]
            } else {
                sources
            },
        },
        version: BLOCK_VERSION,
    };
    let json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| BlockError::Invalid(format!("serializing meta: {e}")))?;
    write_file(&tmp.join("meta.json"), &json)?;
    sync_dir(&chunks_dir)?;
    sync_dir(tmp)?;
    Ok(meta)
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), BlockError> {
    let mut f = File::create(path).map_err(|e| BlockError::io("create", path, e))?;
    f.write_all(data)
        .map_err(|e| BlockError::io("write", path, e))?;
    f.sync_all().map_err(|e| BlockError::io("fsync", path, e))
}

fn sync_dir(dir: &Path) -> Result<(), BlockError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BlockError::io("fsync dir", dir, e))
}

/// A new ULID: 48 bits of milliseconds, 80 random bits, Crockford base32.
fn new_ulid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ms = (now.as_millis() as u64) & ((1 << 48) - 1);
    let rand = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(now.as_nanos());
        h.write_u32(std::process::id());
        h.write_u64(salt);
        h.finish()
    };
    let r = (u128::from(rand(1)) << 16) ^ u128::from(rand(2));
    let v = (u128::from(ms) << 80) | (r & ((1u128 << 80) - 1));
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..26)
        .map(|i| ALPHABET[((v >> (125 - 5 * i)) & 31) as usize] as char)
        .collect()
}

/// An opened, memory-mapped block.
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: IndexReader,
    chunks: ChunkReader,
    size: u64,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("dir", &self.dir)
            .field("meta", &self.meta)
            .finish()
    }
}

/// Sorted union of sorted lists.
fn union(mut lists: Vec<Vec<u64>>) -> Vec<u64> {
    if lists.len() == 1 {
        return lists.pop().unwrap_or_default();
    }
    let mut all: Vec<u64> = lists.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    all
}

impl Block {
    /// Opens the block in `dir`: reads `meta.json`, maps and verifies the index (CRC32C) and
    /// maps the chunk segments.
    pub fn open(dir: &Path) -> Result<Block, BlockError> {
        let meta_path = dir.join("meta.json");
        let raw = fs::read(&meta_path).map_err(|e| BlockError::io("read", &meta_path, e))?;
        let meta: BlockMeta = serde_json::from_slice(&raw).map_err(|e| BlockError::Meta {
            path: meta_path.clone(),
            what: e.to_string(),
        })?;
        if meta.version != BLOCK_VERSION {
            return Err(BlockError::Meta {
                path: meta_path,
                what: format!("unsupported version {}", meta.version),
            });
        }
        if meta.min_time > meta.max_time {
            return Err(BlockError::Meta {
                path: meta_path,
                what: format!("minTime {} after maxTime {}", meta.min_time, meta.max_time),
            });
        }
        let index_path = dir.join("index");
        let index = IndexReader::open(&index_path)?;
        let chunks = ChunkReader::open(&dir.join("chunks"))?;
        let index_len = fs::metadata(&index_path)
            .map_err(|e| BlockError::io("stat", &index_path, e))?
            .len();
        let size = raw.len() as u64 + index_len + chunks.size();
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            index,
            chunks,
            size,
        })
    }

    /// The block's `meta.json`.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// The block's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk (meta, index and chunks).
    pub fn size_bytes(&self) -> u64 {
        self.size
    }

    /// Sorted references of the series matching all matchers.
    fn postings_for(&self, matchers: &[Matcher]) -> Result<Vec<u64>, BlockError> {
        let mut result: Option<Vec<u64>> = None;
        let mut remove: Vec<Vec<u64>> = Vec::new();
        for m in matchers {
            if m.matches_empty() {
                // Series without the label match; drop those whose value is rejected.
                let mut lists = Vec::new();
                for (v, off) in self.index.values_of(&m.name)? {
                    if !m.matches(v) {
                        lists.push(self.index.postings_at(off)?);
                    }
                }
                if !lists.is_empty() {
                    remove.push(union(lists));
                }
                continue;
            }
            let lists = match (m.op, m.set_matches()) {
                (MatchOp::Equal, _) => vec![self.index.postings(&m.name, &m.value)?],
                (_, Some(set)) => set
                    .iter()
                    .filter(|v| m.matches(v))
                    .map(|v| self.index.postings(&m.name, v))
                    .collect::<Result<_, _>>()?,
                _ => {
                    let mut lists = Vec::new();
                    for (v, off) in self.index.values_of(&m.name)? {
                        if m.matches(v) {
                            lists.push(self.index.postings_at(off)?);
                        }
                    }
                    lists
                }
            };
            let u = union(lists);
            result = Some(match result {
                None => u,
                Some(r) => intersect(&r, &u),
            });
            if result.as_ref().is_some_and(Vec::is_empty) {
                return Ok(Vec::new());
            }
        }
        let mut refs = match result {
            Some(r) => r,
            None => self.index.all_postings()?,
        };
        for r in remove {
            refs = subtract(&refs, &r);
        }
        Ok(refs)
    }

    /// Reads one series, keeping chunks overlapping `[mint, maxt]` and floats inside it.
    /// `None` when nothing is left.
    fn read_series(
        &self,
        series_ref: u64,
        mint: i64,
        maxt: i64,
    ) -> Result<Option<BlockSeries>, BlockError> {
        let (labels, metas) = self.index.series(series_ref)?;
        let mut floats = Vec::new();
        let mut hist_chunks = Vec::new();
        for c in metas.iter().filter(|c| c.min_t <= maxt && c.max_t >= mint) {
            let (encoding, data) = self.chunks.chunk(c.chunk_ref)?;
            if encoding != c.encoding {
                return Err(BlockError::Corrupt {
                    path: self.dir.join("chunks"),
                    what: format!(
                        "series {labels}: chunk {:#x} has encoding {encoding}, index says {}",
                        c.chunk_ref, c.encoding
                    ),
                });
            }
            if encoding == ENCODING_FLOAT_BLOCK {
                let samples = floatenc::decode(data).map_err(|e| BlockError::Corrupt {
                    path: self.dir.join("chunks"),
                    what: format!("series {labels}: chunk {:#x}: {e}", c.chunk_ref),
                })?;
                floats.extend(samples.into_iter().filter(|s| s.t >= mint && s.t <= maxt));
            } else {
                hist_chunks.push(RawChunk {
                    encoding,
                    min_t: c.min_t,
                    max_t: c.max_t,
                    data: data.to_vec(),
                });
            }
        }
        if floats.is_empty() && hist_chunks.is_empty() {
            return Ok(None);
        }
        Ok(Some(BlockSeries {
            labels,
            floats,
            hist_chunks,
        }))
    }

    /// Series matching all matchers with data overlapping `[mint, maxt]` (inclusive); floats
    /// decoded and filtered to `[mint, maxt]`; overlapping histogram chunks returned raw (the
    /// caller filters). Sorted by labels.
    pub fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<BlockSeries>, BlockError> {
        if mint > maxt || maxt < self.meta.min_time || mint >= self.meta.max_time {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for r in self.postings_for(matchers)? {
            if let Some(s) = self.read_series(r, mint, maxt)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Like [`Block::select`] without reading any chunk: the labels of matching series and
    /// their chunks overlapping `[mint, maxt]`, for reading later with [`Block::read_chunks`].
    pub(crate) fn select_lazy(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<(Labels, Vec<index::ChunkMeta>)>, BlockError> {
        if mint > maxt || maxt < self.meta.min_time || mint >= self.meta.max_time {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for r in self.postings_for(matchers)? {
            let (labels, mut metas) = self.index.series(r)?;
            metas.retain(|c| c.min_t <= maxt && c.max_t >= mint);
            if !metas.is_empty() {
                out.push((labels, metas));
            }
        }
        Ok(out)
    }

    /// Decodes the samples in `[mint, maxt]` of chunks chosen by [`Block::select_lazy`],
    /// appending them to `out` (chunks are in time order and do not overlap).
    pub(crate) fn read_chunks(
        &self,
        labels: &Labels,
        metas: &[index::ChunkMeta],
        mint: i64,
        maxt: i64,
        out: &mut crate::querier::SeriesData,
    ) -> Result<(), BlockError> {
        for c in metas.iter().filter(|c| c.min_t <= maxt && c.max_t >= mint) {
            let (encoding, data) = self.chunks.chunk(c.chunk_ref)?;
            let corrupt = |what: String| BlockError::Corrupt {
                path: self.dir.join("chunks"),
                what: format!("series {labels}: chunk {:#x}: {what}", c.chunk_ref),
            };
            if encoding != c.encoding {
                return Err(corrupt(format!(
                    "has encoding {encoding}, index says {}",
                    c.encoding
                )));
            }
            if encoding == ENCODING_FLOAT_BLOCK {
                let samples = floatenc::decode(data).map_err(|e| corrupt(e.to_string()))?;
                out.floats
                    .extend(samples.into_iter().filter(|s| s.t >= mint && s.t <= maxt));
            } else {
                let chunk = Chunk::from_encoded(encoding, data.to_vec())
                    .map_err(|e| corrupt(e.to_string()))?;
                crate::head::read_chunk(&chunk, mint, maxt, out);
            }
        }
        Ok(())
    }

    /// Label sets of the series matching all matchers, sorted.
    pub fn series(&self, matchers: &[Matcher]) -> Result<Vec<Labels>, BlockError> {
        self.postings_for(matchers)?
            .into_iter()
            .map(|r| Ok(self.index.series(r)?.0))
            .collect()
    }

    /// Label names of the series matching all matchers (all names when empty), sorted, unique.
    pub fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, BlockError> {
        if matchers.is_empty() {
            return self.index.label_names();
        }
        let mut names = BTreeSet::new();
        for labels in self.series(matchers)? {
            for l in labels.iter() {
                if !names.contains(&l.name) {
                    names.insert(l.name.clone());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Values of label `name` among the series matching all matchers, sorted, unique.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, BlockError> {
        if matchers.is_empty() {
            return Ok(self
                .index
                .values_of(name)?
                .into_iter()
                .map(|(v, _)| v.to_string())
                .collect());
        }
        let mut values = BTreeSet::new();
        for labels in self.series(matchers)? {
            if let Some(v) = labels.get(name) {
                if !values.contains(v) {
                    values.insert(v.to_string());
                }
            }
        }
        Ok(values.into_iter().collect())
    }

    /// References of every series in label order (for compaction).
    pub(crate) fn all_series_refs(&self) -> Result<Vec<u64>, BlockError> {
        self.index.all_postings()
    }

    /// Labels of a series reference.
    pub(crate) fn series_labels(&self, r: u64) -> Result<Labels, BlockError> {
        Ok(self.index.series(r)?.0)
    }

    /// All data of a series reference.
    pub(crate) fn series_data(&self, r: u64) -> Result<Option<BlockSeries>, BlockError> {
        self.read_series(r, i64::MIN, i64::MAX)
    }

    /// The symbol table (every label name and value in the block).
    pub(crate) fn symbols(&self) -> &[String] {
        self.index.symbols()
    }
}

#[cfg(test)]
mod tests;
