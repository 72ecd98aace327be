//! The head: the in-memory, writable part of the database.
//!
//! Every series lives here from its first sample until its data has been cut into a block. A
//! series keeps its label set as symbol ids (each distinct string is stored once in the symbol
//! table) and its samples in compressed chunks ([`crate::chunkenc`]); an inverted index (postings
//! per label pair) answers matchers. Samples arrive through a [`HeadAppender`] (see
//! [`crate::db::Db::appender`]), which logs them to the WAL before they become visible here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use sextant_model::{
    matcher::matches_all, CounterResetHint, HistogramValue, Label, Labels, Matcher, Sample,
    METRIC_NAME,
};

use crate::block::{BlockSeries, RawChunk};
use crate::chunkenc::{
    AppendError as ChunkAppendError, Chunk, CutReason, FloatHistogramChunk, HistogramChunk,
    XorChunk, MAX_SAMPLES_PER_CHUNK,
};
use crate::postings::{intersect, subtract};
use crate::querier::SeriesData;

/// Identifies a series in the head and in WAL records.
pub type SeriesRef = u64;

/// Why one sample was not accepted. The `reason()` strings are the label values of
/// `sextant_tsdb_samples_rejected_total`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("out of order sample")]
    OutOfOrder,
    #[error("out of bounds: sample is older than what the head accepts")]
    OutOfBounds,
    #[error("duplicate sample for timestamp")]
    Duplicate,
    #[error("series limit reached: {0}")]
    SeriesLimit(String),
    #[error("invalid native histogram: {0}")]
    InvalidHistogram(String),
}

impl AppendError {
    pub fn reason(&self) -> &'static str {
        match self {
            AppendError::OutOfOrder => "out_of_order",
            AppendError::OutOfBounds => "out_of_bounds",
            AppendError::Duplicate => "duplicate_sample",
            AppendError::SeriesLimit(_) => "series_limit",
            AppendError::InvalidHistogram(_) => "invalid_histogram",
        }
    }
}

/// Tunables of the head.
#[derive(Clone, Debug)]
pub struct HeadOptions {
    /// Width of a block and alignment of chunks, in ms (2h like Prometheus).
    pub chunk_range: i64,
    /// How far behind the newest sample an out-of-order float sample may be, in ms (0 = none).
    pub ooo_window: i64,
    /// Cap on active series (0 = unlimited).
    pub max_series: usize,
    /// Cap on active series per metric name (0 = unlimited).
    pub max_series_per_metric: usize,
    /// Label whose values are tenants for `max_series_per_tenant` (e.g. `team`).
    pub tenant_label: Option<String>,
    /// Cap on active series per value of `tenant_label` (0 = unlimited); series without the
    /// label are not counted.
    pub max_series_per_tenant: usize,
}

impl Default for HeadOptions {
    fn default() -> Self {
        HeadOptions {
            chunk_range: 2 * 3600 * 1000,
            ooo_window: 0,
            max_series: 0,
            max_series_per_metric: 0,
            tenant_label: None,
            max_series_per_tenant: 0,
        }
    }
}

/// The string table: every label name and value is stored once.
#[derive(Default)]
struct Symbols {
    by_str: HashMap<Arc<str>, u32>,
    strs: Vec<Arc<str>>,
}

impl Symbols {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.by_str.get(s) {
            return *id;
        }
        let a: Arc<str> = Arc::from(s);
        let id = self.strs.len() as u32;
        self.strs.push(a.clone());
        self.by_str.insert(a, id);
        id
    }

    fn get(&self, id: u32) -> &str {
        self.strs.get(id as usize).map(|s| &**s).unwrap_or("")
    }

    fn lookup(&self, s: &str) -> Option<u32> {
        self.by_str.get(s).copied()
    }
}

/// One head chunk with its time bounds.
pub(crate) struct HeadChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub chunk: Chunk,
}

/// The mutable part of a series.
pub(crate) struct SeriesData_ {
    pub chunks: Vec<HeadChunk>,
    pub last_t: i64,
    pub last_v: u64,
    pub last_hist: Option<Box<HistogramValue>>,
    /// Out-of-order float samples, sorted by time, not yet cut into a block.
    pub ooo: Vec<Sample>,
}

/// A series in the head.
pub(crate) struct MemSeries {
    pub r: SeriesRef,
    /// Symbol ids: name, value, name, value, … sorted by name.
    lset: Box<[u32]>,
    pub data: Mutex<SeriesData_>,
    /// Set once the series record is in the WAL.
    pub logged: AtomicBool,
}

impl MemSeries {
    pub fn lock(&self) -> MutexGuard<'_, SeriesData_> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What an append needs to know about the head beyond the series.
#[derive(Clone, Copy)]
pub(crate) struct AppendCtx {
    pub min_valid: i64,
    pub ooo_min: i64,
    pub chunk_range: i64,
}

fn chunk_end(min_t: i64, range: i64) -> i64 {
    (min_t.div_euclid(range) + 1) * range
}

impl SeriesData_ {
    fn new() -> Self {
        SeriesData_ {
            chunks: Vec::new(),
            last_t: i64::MIN,
            last_v: 0,
            last_hist: None,
            ooo: Vec::new(),
        }
    }

    /// Would a float sample be accepted? `Ok(false)` means an identical duplicate (no-op).
    pub fn check_float(&self, t: i64, v: f64, ctx: &AppendCtx) -> Result<bool, AppendError> {
        if t < ctx.min_valid {
            return Err(AppendError::OutOfBounds);
        }
        if t > self.last_t {
            return Ok(true);
        }
        if t == self.last_t {
            return if self.last_hist.is_none() && self.last_v == v.to_bits() {
                Ok(false)
            } else {
                Err(AppendError::Duplicate)
            };
        }
        if t >= ctx.ooo_min {
            if let Ok(i) = self.ooo.binary_search_by(|s| s.t.cmp(&t)) {
                return if self.ooo[i].v.to_bits() == v.to_bits() {
                    Ok(false)
                } else {
                    Err(AppendError::Duplicate)
                };
            }
            return Ok(true);
        }
        Err(AppendError::OutOfOrder)
    }

    /// Appends a float sample after checking it.
    pub fn append_float(&mut self, t: i64, v: f64, ctx: &AppendCtx) -> Result<bool, AppendError> {
        if !self.check_float(t, v, ctx)? {
            return Ok(false);
        }
        if t < self.last_t {
            // Out-of-order within the window: kept aside, merged at query and block cut.
            // Refuse when an in-order chunk already holds that timestamp.
            if self.in_order_has(t) {
                return Err(AppendError::Duplicate);
            }
            let i = self.ooo.partition_point(|s| s.t < t);
            self.ooo.insert(i, Sample::new(t, v));
            return Ok(true);
        }
        let need_new = match self.chunks.last() {
            Some(HeadChunk {
                chunk: Chunk::Xor(c),
                min_t,
                ..
            }) => {
                c.num_samples() as usize >= MAX_SAMPLES_PER_CHUNK
                    || t >= chunk_end(*min_t, ctx.chunk_range)
            }
            _ => true,
        };
        if need_new {
            if let Some(HeadChunk {
                chunk: Chunk::Xor(done),
                ..
            }) = self.chunks.last_mut()
            {
                done.shrink_to_fit();
            }
            self.chunks.push(HeadChunk {
                min_t: t,
                max_t: t,
                chunk: Chunk::Xor(XorChunk::new()),
            });
        }
        if let Some(hc) = self.chunks.last_mut() {
            if let Chunk::Xor(c) = &mut hc.chunk {
                c.append(t, v);
            }
            hc.max_t = t;
        }
        self.last_t = t;
        self.last_v = v.to_bits();
        self.last_hist = None;
        Ok(true)
    }

    fn in_order_has(&self, t: i64) -> bool {
        self.chunks
            .iter()
            .filter(|c| c.min_t <= t && t <= c.max_t)
            .any(|c| match &c.chunk {
                Chunk::Xor(x) => x.iter().any(|(ct, _)| ct == t),
                _ => true,
            })
    }

    /// Would a histogram sample be accepted? Out-of-order histograms are not supported.
    pub fn check_histogram(
        &self,
        t: i64,
        h: &HistogramValue,
        ctx: &AppendCtx,
    ) -> Result<bool, AppendError> {
        if t < ctx.min_valid {
            return Err(AppendError::OutOfBounds);
        }
        if t > self.last_t {
            return Ok(true);
        }
        if t == self.last_t {
            return match &self.last_hist {
                Some(last) if **last == *h => Ok(false),
                _ => Err(AppendError::Duplicate),
            };
        }
        Err(AppendError::OutOfOrder)
    }

    /// Appends a native histogram sample after checking it.
    pub fn append_histogram(
        &mut self,
        t: i64,
        h: &HistogramValue,
        ctx: &AppendCtx,
    ) -> Result<bool, AppendError> {
        if !self.check_histogram(t, h, ctx)? {
            return Ok(false);
        }
        let fits = |hc: &HeadChunk| {
            hc.chunk.num_samples() as usize >= MAX_SAMPLES_PER_CHUNK
                || t >= chunk_end(hc.min_t, ctx.chunk_range)
        };
        let cut = self.chunks.last().is_none_or(fits);
        match h {
            HistogramValue::Int(hist) => {
                let res = match self.chunks.last_mut() {
                    Some(HeadChunk {
                        chunk: Chunk::Histogram(c),
                        ..
                    }) if !cut => c.append(t, hist),
                    _ => Err(ChunkAppendError::NewChunkNeeded {
                        reason: CutReason::Full,
                    }),
                };
                if let Some(hint) = new_chunk_hint(res, hist.counter_reset_hint)? {
                    let mut first = hist.clone();
                    first.counter_reset_hint = hint;
                    let mut c = HistogramChunk::new();
                    c.append(t, &first)
                        .map_err(|e| AppendError::InvalidHistogram(e.to_string()))?;
                    self.chunks.push(HeadChunk {
                        min_t: t,
                        max_t: t,
                        chunk: Chunk::Histogram(Box::new(c)),
                    });
                }
            }
            HistogramValue::Float(fh) => {
                let res = match self.chunks.last_mut() {
                    Some(HeadChunk {
                        chunk: Chunk::FloatHistogram(c),
                        ..
                    }) if !cut => c.append(t, fh),
                    _ => Err(ChunkAppendError::NewChunkNeeded {
                        reason: CutReason::Full,
                    }),
                };
                if let Some(hint) = new_chunk_hint(res, fh.counter_reset_hint)? {
                    let mut first = fh.clone();
                    first.counter_reset_hint = hint;
                    let mut c = FloatHistogramChunk::new();
                    c.append(t, &first)
                        .map_err(|e| AppendError::InvalidHistogram(e.to_string()))?;
                    self.chunks.push(HeadChunk {
                        min_t: t,
                        max_t: t,
                        chunk: Chunk::FloatHistogram(Box::new(c)),
                    });
                }
            }
        }
        if let Some(hc) = self.chunks.last_mut() {
            hc.max_t = t;
        }
        self.last_t = t;
        self.last_hist = Some(Box::new(h.clone()));
        Ok(true)
    }

    /// Samples in [mint, maxt], in-order chunks merged with out-of-order ones.
    pub fn read(&self, mint: i64, maxt: i64, out: &mut SeriesData) {
        // Room for the chunks wholly inside the range (no regrowth while decoding them);
        // partly covered chunks grow the vector as needed (an instant query needs a few
        // samples of a 120-sample chunk).
        let inside: usize = self
            .chunks
            .iter()
            .filter(|c| c.min_t >= mint && c.max_t <= maxt)
            .map(|c| c.chunk.num_samples() as usize)
            .sum();
        out.floats.reserve(inside);
        for hc in self
            .chunks
            .iter()
            .filter(|c| c.max_t >= mint && c.min_t <= maxt)
        {
            read_chunk(&hc.chunk, mint, maxt, out);
        }
        if !self.ooo.is_empty() {
            let extra: Vec<Sample> = self
                .ooo
                .iter()
                .filter(|s| s.t >= mint && s.t <= maxt)
                .copied()
                .collect();
            if !extra.is_empty() {
                out.floats = merge_samples(std::mem::take(&mut out.floats), extra);
            }
        }
    }

    /// Drops everything before `t`; returns how many chunks went.
    fn truncate_before(&mut self, t: i64) -> usize {
        let before = self.chunks.len();
        self.chunks.retain(|c| c.max_t >= t);
        self.ooo.retain(|s| s.t >= t);
        before - self.chunks.len()
    }

    fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.ooo.is_empty()
    }
}

/// Decodes the samples of one chunk that fall in [mint, maxt] into `out`.
pub(crate) fn read_chunk(chunk: &Chunk, mint: i64, maxt: i64, out: &mut SeriesData) {
    match chunk {
        Chunk::Xor(c) => {
            // Samples are in time order: stop decoding past `maxt`.
            for (t, v) in c.iter() {
                if t > maxt {
                    break;
                }
                if t >= mint {
                    out.floats.push(Sample::new(t, v));
                }
            }
        }
        Chunk::Histogram(c) => out.histograms.extend(
            c.iter()
                .filter(|(t, _)| *t >= mint && *t <= maxt)
                .map(|(t, h)| (t, HistogramValue::Int(h))),
        ),
        Chunk::FloatHistogram(c) => out.histograms.extend(
            c.iter()
                .filter(|(t, _)| *t >= mint && *t <= maxt)
                .map(|(t, h)| (t, HistogramValue::Float(h))),
        ),
    }
}

/// Merges two time-sorted sample lists; on equal timestamps the first list wins.
pub(crate) fn merge_samples(a: Vec<Sample>, b: Vec<Sample>) -> Vec<Sample> {
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].t.cmp(&b[j].t) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The order (indices `0..n`) in which label sets given as symbol ids (`name, value, ...`,
/// sorted by name) sort as `Labels` do, comparing each symbol's rank among the symbols in use
/// instead of its string: the strings are compared once per distinct symbol.
fn sort_by_labels<'a>(syms: &Symbols, n: usize, lset: impl Fn(usize) -> &'a [u32]) -> Vec<usize> {
    const UNSET: u32 = u32::MAX;
    let total: usize = (0..n).map(|i| lset(i).len()).sum();
    // Symbol id -> rank: a dense table when the symbol table is not much larger than the
    // work already done here, else a hash map.
    let dense = syms.strs.len() <= total.saturating_mul(4).max(1024);
    let mut table: Vec<u32> = if dense {
        vec![UNSET; syms.strs.len()]
    } else {
        Vec::new()
    };
    let mut map: HashMap<u32, u32, IntHash> = HashMap::default();
    let mut used: Vec<u32> = Vec::new();
    for i in 0..n {
        for &sym in lset(i) {
            let slot = if dense {
                match table.get_mut(sym as usize) {
                    Some(x) => x,
                    None => continue,
                }
            } else {
                map.entry(sym).or_insert(UNSET)
            };
            if *slot == UNSET {
                *slot = 0;
                used.push(sym);
            }
        }
    }
    used.sort_unstable_by(|a, b| syms.get(*a).cmp(syms.get(*b)));
    for (r, sym) in used.iter().enumerate() {
        let r = r as u32;
        if dense {
            if let Some(x) = table.get_mut(*sym as usize) {
                *x = r;
            }
        } else {
            map.insert(*sym, r);
        }
    }
    let rank = |sym: u32| -> u32 {
        if dense {
            table.get(sym as usize).copied().unwrap_or(UNSET)
        } else {
            map.get(&sym).copied().unwrap_or(UNSET)
        }
    };
    let mut keys: Vec<u32> = Vec::with_capacity(total);
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(n);
    for i in 0..n {
        let start = keys.len();
        keys.extend(lset(i).iter().map(|s| rank(*s)));
        spans.push((start, keys.len()));
    }
    let mut order: Vec<usize> = (0..n).collect();
    // Label sets are unique: an unstable sort gives the one order there is.
    order.sort_unstable_by(|a, b| {
        let (a, b) = (spans[*a], spans[*b]);
        keys[a.0..a.1].cmp(&keys[b.0..b.1])
    });
    order
}

/// Hasher for integer keys that are ids or already hashes: one multiply instead of SipHash
/// (series lookup is on the path of every appended sample).
#[derive(Default, Clone, Copy)]
struct IntHasher(u64);

impl std::hash::Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0 ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IntHash = std::hash::BuildHasherDefault<IntHasher>;

#[derive(Default)]
struct SeriesMaps {
    by_hash: HashMap<u64, Vec<Arc<MemSeries>>, IntHash>,
    by_ref: HashMap<SeriesRef, Arc<MemSeries>, IntHash>,
    /// name symbol → value symbol → sorted series refs.
    postings: HashMap<u32, HashMap<u32, Vec<SeriesRef>, IntHash>, IntHash>,
    /// Active series per metric-name symbol, for the per-metric cap.
    per_metric: HashMap<u32, usize>,
    /// Active series per value symbol of the tenant label, for the per-tenant cap.
    per_tenant: HashMap<u32, usize>,
}

/// Which series cap refused a new series (index into [`Head::series_limit_hits`]).
pub const SERIES_LIMITS: [&str; 3] = ["series", "series_per_metric", "series_per_tenant"];

/// The series caps, changeable at runtime (reload).
#[derive(Default)]
struct SeriesCaps {
    max_series: std::sync::atomic::AtomicUsize,
    per_metric: std::sync::atomic::AtomicUsize,
    per_tenant: std::sync::atomic::AtomicUsize,
    /// New series refused by each cap, in [`SERIES_LIMITS`] order.
    hits: [AtomicU64; 3],
}

/// The in-memory head.
pub struct Head {
    opts: HeadOptions,
    caps: SeriesCaps,
    symbols: RwLock<Symbols>,
    maps: RwLock<SeriesMaps>,
    next_ref: AtomicU64,
    min_time: AtomicI64,
    max_time: AtomicI64,
    /// Samples older than this are in blocks; the head refuses them.
    min_valid_time: AtomicI64,
}

/// Numbers describing the head, for `/api/v1/status/tsdb` and self-metrics.
#[derive(Clone, Debug, Default)]
pub struct HeadStats {
    pub num_series: usize,
    pub num_chunks: usize,
    pub num_label_pairs: usize,
    pub min_time: i64,
    pub max_time: i64,
    pub series_count_by_metric: Vec<(String, usize)>,
    pub label_value_count_by_name: Vec<(String, usize)>,
    pub memory_by_label_name: Vec<(String, usize)>,
    pub series_count_by_label_pair: Vec<(String, usize)>,
}

impl Head {
    pub fn new(opts: HeadOptions) -> Self {
        let caps = SeriesCaps::default();
        caps.max_series.store(opts.max_series, Ordering::Relaxed);
        caps.per_metric
            .store(opts.max_series_per_metric, Ordering::Relaxed);
        caps.per_tenant
            .store(opts.max_series_per_tenant, Ordering::Relaxed);
        Head {
            opts,
            caps,
            symbols: RwLock::new(Symbols::default()),
            maps: RwLock::new(SeriesMaps::default()),
            next_ref: AtomicU64::new(1),
            min_time: AtomicI64::new(i64::MAX),
            max_time: AtomicI64::new(i64::MIN),
            min_valid_time: AtomicI64::new(i64::MIN),
        }
    }

    pub fn options(&self) -> &HeadOptions {
        &self.opts
    }

    /// Changes the series caps (0 = unlimited) at runtime; existing series are never dropped,
    /// only new ones beyond a cap are refused. The tenant label is fixed at start.
    pub fn set_series_limits(&self, max_series: usize, per_metric: usize, per_tenant: usize) {
        self.caps.max_series.store(max_series, Ordering::Relaxed);
        self.caps.per_metric.store(per_metric, Ordering::Relaxed);
        self.caps.per_tenant.store(per_tenant, Ordering::Relaxed);
    }

    /// New series refused so far by each cap, in [`SERIES_LIMITS`] order.
    pub fn series_limit_hits(&self) -> [u64; 3] {
        [0, 1, 2].map(|i| self.caps.hits[i].load(Ordering::Relaxed))
    }

    fn syms(&self) -> std::sync::RwLockReadGuard<'_, Symbols> {
        self.symbols.read().unwrap_or_else(|e| e.into_inner())
    }

    fn maps(&self) -> std::sync::RwLockReadGuard<'_, SeriesMaps> {
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }

    fn maps_mut(&self) -> std::sync::RwLockWriteGuard<'_, SeriesMaps> {
        self.maps.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Oldest sample time in the head (i64::MAX when empty).
    pub fn min_time(&self) -> i64 {
        self.min_time.load(Ordering::Acquire)
    }

    /// Newest sample time in the head (i64::MIN when empty).
    pub fn max_time(&self) -> i64 {
        self.max_time.load(Ordering::Acquire)
    }

    pub fn min_valid_time(&self) -> i64 {
        self.min_valid_time.load(Ordering::Acquire)
    }

    pub(crate) fn set_min_valid_time(&self, t: i64) {
        self.min_valid_time.fetch_max(t, Ordering::AcqRel);
    }

    pub fn num_series(&self) -> usize {
        self.maps().by_ref.len()
    }

    pub(crate) fn append_ctx(&self) -> AppendCtx {
        let max = self.max_time();
        let range = self.opts.chunk_range;
        // Like Prometheus: in-order samples may not be older than half a chunk range behind
        // the newest sample, nor older than what blocks already hold.
        let head_floor = if max == i64::MIN {
            i64::MIN
        } else {
            max.saturating_sub(range / 2)
        };
        let ooo_min = if self.opts.ooo_window > 0 && max != i64::MIN {
            max.saturating_sub(self.opts.ooo_window)
        } else {
            i64::MAX
        };
        let mv = self.min_valid_time();
        AppendCtx {
            min_valid: mv.max(if self.opts.ooo_window > 0 {
                head_floor.min(ooo_min)
            } else {
                head_floor
            }),
            ooo_min: ooo_min.max(mv),
            chunk_range: range,
        }
    }

    pub(crate) fn note_time(&self, t: i64) {
        self.min_time.fetch_min(t, Ordering::AcqRel);
        self.max_time.fetch_max(t, Ordering::AcqRel);
    }

    fn labels_of(&self, syms: &Symbols, s: &MemSeries) -> Labels {
        // `lset` comes from a `Labels`: sorted, unique names, no empty values.
        Labels::from_sorted(
            s.lset
                .chunks_exact(2)
                .map(|p| Label::new(syms.get(p[0]), syms.get(p[1])))
                .collect(),
        )
    }

    /// The labels of a series.
    pub(crate) fn series_labels(&self, s: &MemSeries) -> Labels {
        self.labels_of(&self.syms(), s)
    }

    fn same_labels(syms: &Symbols, s: &MemSeries, labels: &Labels) -> bool {
        s.lset.len() == labels.len() * 2
            && s.lset
                .chunks_exact(2)
                .zip(labels.iter())
                .all(|(p, l)| syms.get(p[0]) == l.name && syms.get(p[1]) == l.value)
    }

    /// Finds the series with exactly these labels.
    pub(crate) fn get(&self, labels: &Labels) -> Option<Arc<MemSeries>> {
        let h = labels.stable_hash();
        let maps = self.maps();
        let cands = maps.by_hash.get(&h)?;
        let syms = self.syms();
        cands
            .iter()
            .find(|s| Self::same_labels(&syms, s, labels))
            .cloned()
    }

    /// The newest in-order sample of the series with exactly these labels, while the series
    /// is in the head: `(t, Ok(float))` or `(t, Err(histogram))`. Lets ingest continue state
    /// derived from what it stored (OTLP delta running totals) after a restart.
    pub fn last_sample(&self, labels: &Labels) -> Option<(i64, Result<f64, HistogramValue>)> {
        let s = self.get(labels)?;
        let d = s.lock();
        if d.last_t == i64::MIN {
            return None;
        }
        Some(match &d.last_hist {
            Some(h) => (d.last_t, Err((**h).clone())),
            None => (d.last_t, Ok(f64::from_bits(d.last_v))),
        })
    }

    pub(crate) fn get_by_ref(&self, r: SeriesRef) -> Option<Arc<MemSeries>> {
        self.maps().by_ref.get(&r).cloned()
    }

    /// Finds or creates the series; `Ok((series, created))`.
    pub(crate) fn get_or_create(
        &self,
        labels: &Labels,
    ) -> Result<(Arc<MemSeries>, bool), AppendError> {
        if let Some(s) = self.get(labels) {
            return Ok((s, false));
        }
        let r = self.next_ref.fetch_add(1, Ordering::AcqRel);
        self.create_with_ref(labels, r, true)
    }

    /// Creates a series with a given ref (WAL replay) or returns the existing one.
    pub(crate) fn create_with_ref(
        &self,
        labels: &Labels,
        r: SeriesRef,
        enforce_limits: bool,
    ) -> Result<(Arc<MemSeries>, bool), AppendError> {
        let h = labels.stable_hash();
        let mut maps = self.maps_mut();
        {
            let syms = self.syms();
            if let Some(s) = maps
                .by_hash
                .get(&h)
                .and_then(|c| c.iter().find(|s| Self::same_labels(&syms, s, labels)))
            {
                return Ok((s.clone(), false));
            }
        }
        let mut syms = self.symbols.write().unwrap_or_else(|e| e.into_inner());
        let name_sym = labels.metric_name().map(|n| syms.intern(n));
        let tenant = self
            .opts
            .tenant_label
            .as_deref()
            .and_then(|n| labels.get(n))
            .filter(|v| !v.is_empty())
            .map(|v| (v, syms.intern(v)));
        if enforce_limits {
            let max_series = self.caps.max_series.load(Ordering::Relaxed);
            if max_series > 0 && maps.by_ref.len() >= max_series {
                self.caps.hits[0].fetch_add(1, Ordering::Relaxed);
                return Err(AppendError::SeriesLimit(format!(
                    "the head holds the maximum of {max_series} active series (limit series)"
                )));
            }
            let per_metric = self.caps.per_metric.load(Ordering::Relaxed);
            if let Some(ns) = name_sym {
                if per_metric > 0 && maps.per_metric.get(&ns).copied().unwrap_or(0) >= per_metric {
                    self.caps.hits[1].fetch_add(1, Ordering::Relaxed);
                    return Err(AppendError::SeriesLimit(format!(
                        "metric {:?} has the maximum of {per_metric} active series (limit series_per_metric)",
                        labels.metric_name().unwrap_or(""),
                    )));
                }
            }
            let per_tenant = self.caps.per_tenant.load(Ordering::Relaxed);
            if let Some((v, vs)) = tenant {
                if per_tenant > 0 && maps.per_tenant.get(&vs).copied().unwrap_or(0) >= per_tenant {
                    self.caps.hits[2].fetch_add(1, Ordering::Relaxed);
                    return Err(AppendError::SeriesLimit(format!(
                        "{}={v:?} has the maximum of {per_tenant} active series (limit series_per_tenant)",
                        self.opts.tenant_label.as_deref().unwrap_or(""),
                    )));
                }
            }
        }
        let mut lset = Vec::with_capacity(labels.len() * 2);
        for l in labels.iter() {
            lset.push(syms.intern(&l.name));
            lset.push(syms.intern(&l.value));
        }
        drop(syms);
        let s = Arc::new(MemSeries {
            r,
            lset: lset.into_boxed_slice(),
            data: Mutex::new(SeriesData_::new()),
            logged: AtomicBool::new(false),
        });
        for p in s.lset.chunks_exact(2) {
            let list = maps
                .postings
                .entry(p[0])
                .or_default()
                .entry(p[1])
                .or_default();
            let i = list.partition_point(|x| *x < r);
            list.insert(i, r);
        }
        if let Some(ns) = name_sym {
            *maps.per_metric.entry(ns).or_default() += 1;
        }
        if let Some((_, vs)) = tenant {
            *maps.per_tenant.entry(vs).or_default() += 1;
        }
        maps.by_hash.entry(h).or_default().push(s.clone());
        maps.by_ref.insert(r, s.clone());
        self.next_ref.fetch_max(r + 1, Ordering::AcqRel);
        Ok((s, true))
    }

    /// Refs of series matching all matchers, sorted.
    fn postings_for(&self, matchers: &[Matcher]) -> Vec<SeriesRef> {
        let maps = self.maps();
        let syms = self.syms();
        let mut result: Option<Vec<SeriesRef>> = None;
        let values_of = |name: &str| -> Option<&HashMap<u32, Vec<SeriesRef>, IntHash>> {
            syms.lookup(name).and_then(|n| maps.postings.get(&n))
        };
        // Positive matchers (do not match the empty string) intersect.
        for m in matchers.iter().filter(|m| !m.matches_empty()) {
            let mut set: Vec<SeriesRef> = Vec::new();
            if let Some(vals) = values_of(&m.name) {
                match m.op {
                    sextant_model::MatchOp::Equal => {
                        if let Some(p) = syms.lookup(&m.value).and_then(|v| vals.get(&v)) {
                            set.extend_from_slice(p);
                        }
                    }
                    _ => {
                        for (v, p) in vals {
                            if m.matches(syms.get(*v)) {
                                set.extend_from_slice(p);
                            }
                        }
                        set.sort_unstable();
                        set.dedup();
                    }
                }
            }
            result = Some(match result {
                None => set,
                Some(r) => intersect(&r, &set),
            });
        }
        let mut base = match result {
            Some(r) => r,
            None => {
                let mut all: Vec<SeriesRef> = maps.by_ref.keys().copied().collect();
                all.sort_unstable();
                all
            }
        };
        // Matchers that match "" exclude series whose value for the label does not match.
        for m in matchers.iter().filter(|m| m.matches_empty()) {
            if let Some(vals) = values_of(&m.name) {
                let mut excl: Vec<SeriesRef> = Vec::new();
                for (v, p) in vals {
                    if !m.matches(syms.get(*v)) {
                        excl.extend_from_slice(p);
                    }
                }
                if !excl.is_empty() {
                    excl.sort_unstable();
                    base = subtract(&base, &excl);
                }
            }
        }
        base
    }

    /// Series matching the matchers with their samples in [mint, maxt].
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesData> {
        let refs = self.postings_for(matchers);
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            let Some(s) = self.get_by_ref(r) else {
                continue;
            };
            let labels = self.series_labels(&s);
            let mut sd = SeriesData {
                labels,
                floats: Vec::new(),
                histograms: Vec::new(),
            };
            s.lock().read(mint, maxt, &mut sd);
            if !sd.floats.is_empty() || !sd.histograms.is_empty() {
                out.push(sd);
            }
        }
        out
    }

    /// Like [`Head::select`] without decoding: matching series with chunks (or out-of-order
    /// samples) overlapping [mint, maxt], read later through [`crate::querier::LazySeries`].
    pub(crate) fn select_lazy(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Vec<crate::querier::LazySeries> {
        let refs = self.postings_for(matchers);
        // One look-up of the maps and symbols for all series (like `Head::series`).
        let maps = self.maps();
        let syms = self.syms();
        let mut picked: Vec<(&Arc<MemSeries>, usize, bool)> = Vec::with_capacity(refs.len());
        for r in refs {
            let Some(s) = maps.by_ref.get(&r) else {
                continue;
            };
            let (bound, hist) = {
                let d = s.lock();
                let mut bound = 0usize;
                let mut hist = false;
                for c in d
                    .chunks
                    .iter()
                    .filter(|c| c.max_t >= mint && c.min_t <= maxt)
                {
                    bound += c.chunk.num_samples() as usize;
                    hist |= !matches!(c.chunk, Chunk::Xor(_));
                }
                bound += d.ooo.iter().filter(|x| x.t >= mint && x.t <= maxt).count();
                (bound, hist)
            };
            if bound == 0 {
                continue;
            }
            picked.push((s, bound, hist));
        }
        // Callers want the series sorted by labels: sort here on symbol ranks, which is much
        // cheaper than sorting the built label sets by their strings (and leaves the caller's
        // sort an already sorted list).
        let order = sort_by_labels(&syms, picked.len(), |i| &picked[i].0.lset);
        order
            .into_iter()
            .map(|i| {
                let (s, bound, hist) = picked[i];
                crate::querier::LazySeries::head(
                    self.labels_of(&syms, s),
                    Arc::clone(s),
                    bound,
                    hist,
                )
            })
            .collect()
    }

    /// Label sets of matching series that have data in [mint, maxt].
    pub fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Labels> {
        let refs = self.postings_for(matchers);
        let maps = self.maps();
        let syms = self.syms();
        refs.iter()
            .filter_map(|r| maps.by_ref.get(r))
            .filter(|s| {
                let d = s.lock();
                d.chunks.iter().any(|c| c.max_t >= mint && c.min_t <= maxt)
                    || d.ooo.iter().any(|x| x.t >= mint && x.t <= maxt)
            })
            .map(|s| self.labels_of(&syms, s))
            .collect()
    }

    /// All label names (sorted), or those of series matching the matchers.
    pub fn label_names(&self, matchers: &[Matcher]) -> Vec<String> {
        if matchers.is_empty() {
            let maps = self.maps();
            let syms = self.syms();
            let mut v: Vec<String> = maps
                .postings
                .keys()
                .map(|n| syms.get(*n).to_string())
                .collect();
            v.sort();
            return v;
        }
        let mut v: Vec<String> = Vec::new();
        for ls in self.series(matchers, i64::MIN, i64::MAX) {
            v.extend(ls.iter().map(|l| l.name.clone()));
        }
        v.sort();
        v.dedup();
        v
    }

    /// Values of one label (sorted), optionally only of series matching the matchers.
    pub fn label_values(&self, name: &str, matchers: &[Matcher]) -> Vec<String> {
        if matchers.is_empty() {
            let maps = self.maps();
            let syms = self.syms();
            let mut v: Vec<String> = syms
                .lookup(name)
                .and_then(|n| maps.postings.get(&n))
                .map(|vals| {
                    vals.iter()
                        .filter(|(_, p)| !p.is_empty())
                        .map(|(v, _)| syms.get(*v).to_string())
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            return v;
        }
        let mut v: Vec<String> = self
            .series(matchers, i64::MIN, i64::MAX)
            .iter()
            .filter_map(|ls| ls.get(name).map(str::to_string))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The data of [mint, maxt) as block input: floats decoded (the block re-encodes them),
    /// histogram chunks passed through as they are (head chunks never cross an aligned range).
    pub(crate) fn block_series(&self, mint: i64, maxt_excl: i64) -> Vec<BlockSeries> {
        let all: Vec<Arc<MemSeries>> = self.maps().by_ref.values().cloned().collect();
        let mut out = Vec::new();
        for s in all {
            let labels = self.series_labels(&s);
            let d = s.lock();
            let mut floats = Vec::new();
            let mut hist_chunks = Vec::new();
            for hc in d
                .chunks
                .iter()
                .filter(|c| c.max_t >= mint && c.min_t < maxt_excl)
            {
                match &hc.chunk {
                    Chunk::Xor(c) => floats.extend(
                        c.iter()
                            .filter(|(t, _)| *t >= mint && *t < maxt_excl)
                            .map(|(t, v)| Sample::new(t, v)),
                    ),
                    other => hist_chunks.push(RawChunk {
                        encoding: other.encoding() as u8,
                        min_t: hc.min_t,
                        max_t: hc.max_t,
                        data: other.bytes().to_vec(),
                    }),
                }
            }
            let extra: Vec<Sample> = d
                .ooo
                .iter()
                .filter(|x| x.t >= mint && x.t < maxt_excl)
                .copied()
                .collect();
            drop(d);
            let floats = merge_samples(floats, extra);
            if !floats.is_empty() || !hist_chunks.is_empty() {
                out.push(BlockSeries {
                    labels,
                    floats,
                    hist_chunks,
                });
            }
        }
        out
    }

    /// Drops data older than `t` and series left empty; returns (chunks removed, series removed).
    pub(crate) fn truncate(&self, t: i64) -> (usize, usize) {
        self.set_min_valid_time(t);
        let all: Vec<Arc<MemSeries>> = self.maps().by_ref.values().cloned().collect();
        let mut chunks = 0;
        let mut empty = Vec::new();
        let mut new_min = i64::MAX;
        for s in &all {
            let mut d = s.lock();
            chunks += d.truncate_before(t);
            if d.is_empty() && d.last_t < t {
                empty.push(s.clone());
            } else {
                if let Some(c) = d.chunks.first() {
                    new_min = new_min.min(c.min_t);
                }
                if let Some(o) = d.ooo.first() {
                    new_min = new_min.min(o.t);
                }
            }
        }
        let removed = empty.len();
        if !empty.is_empty() {
            let gone: std::collections::HashSet<SeriesRef> = empty.iter().map(|s| s.r).collect();
            let gone_labels: Vec<Labels> = {
                let syms = self.syms();
                empty.iter().map(|s| self.labels_of(&syms, s)).collect()
            };
            let mut maps = self.maps_mut();
            for r in &gone {
                maps.by_ref.remove(r);
            }
            for vals in maps.postings.values_mut() {
                for list in vals.values_mut() {
                    list.retain(|r| !gone.contains(r));
                }
                vals.retain(|_, l| !l.is_empty());
            }
            maps.postings.retain(|_, v| !v.is_empty());
            let syms = self.syms();
            for ls in &gone_labels {
                let h = ls.stable_hash();
                if let Some(c) = maps.by_hash.get_mut(&h) {
                    c.retain(|x| !gone.contains(&x.r));
                    if c.is_empty() {
                        maps.by_hash.remove(&h);
                    }
                }
                if let Some(ns) = ls.metric_name().and_then(|n| syms.lookup(n)) {
                    if let Some(c) = maps.per_metric.get_mut(&ns) {
                        *c = c.saturating_sub(1);
                    }
                }
                if let Some(vs) = self
                    .opts
                    .tenant_label
                    .as_deref()
                    .and_then(|n| ls.get(n))
                    .and_then(|v| syms.lookup(v))
                {
                    if let Some(c) = maps.per_tenant.get_mut(&vs) {
                        *c = c.saturating_sub(1);
                    }
                }
            }
        }
        self.min_time.store(
            if new_min == i64::MAX {
                t.max(self.min_time())
            } else {
                new_min
            },
            Ordering::Release,
        );
        (chunks, removed)
    }

    /// Every live series with its labels and samples, for a WAL checkpoint.
    pub(crate) fn snapshot_for_checkpoint(&self) -> Vec<(SeriesRef, Labels, SeriesData)> {
        let all: Vec<Arc<MemSeries>> = self.maps().by_ref.values().cloned().collect();
        let mut out = Vec::with_capacity(all.len());
        for s in all {
            let labels = self.series_labels(&s);
            let mut sd = SeriesData {
                labels: labels.clone(),
                floats: Vec::new(),
                histograms: Vec::new(),
            };
            s.lock().read(i64::MIN, i64::MAX, &mut sd);
            out.push((s.r, labels, sd));
        }
        out.sort_by_key(|x| x.0);
        out
    }

    /// Cardinality statistics, top `limit` entries of each list.
    pub fn stats(&self, limit: usize) -> HeadStats {
        let maps = self.maps();
        let syms = self.syms();
        let mut by_metric = Vec::new();
        let mut value_count = Vec::new();
        let mut mem = Vec::new();
        let mut pairs = Vec::new();
        let mut num_label_pairs = 0;
        for (n, vals) in &maps.postings {
            let name = syms.get(*n).to_string();
            num_label_pairs += vals.len();
            value_count.push((name.clone(), vals.len()));
            mem.push((
                name.clone(),
                vals.iter().map(|(v, p)| syms.get(*v).len() * p.len()).sum(),
            ));
            for (v, p) in vals {
                if name == METRIC_NAME {
                    by_metric.push((syms.get(*v).to_string(), p.len()));
                }
                pairs.push((format!("{}={}", name, syms.get(*v)), p.len()));
            }
        }
        let top = |mut v: Vec<(String, usize)>| {
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(limit);
            v
        };
        let num_chunks = maps.by_ref.values().map(|s| s.lock().chunks.len()).sum();
        HeadStats {
            num_series: maps.by_ref.len(),
            num_chunks,
            num_label_pairs,
            min_time: self.min_time(),
            max_time: self.max_time(),
            series_count_by_metric: top(by_metric),
            label_value_count_by_name: top(value_count),
            memory_by_label_name: top(mem),
            series_count_by_label_pair: top(pairs),
        }
    }

    /// Labels + matchers check used by tests and the querier.
    pub fn matches(labels: &Labels, matchers: &[Matcher]) -> bool {
        matches_all(labels, matchers)
    }
}

/// Decides whether a histogram append needs a new chunk and which counter-reset hint its first
/// sample carries: a detected reset is recorded as such, any other cut leaves the hint unknown
/// (readers compare across chunks), and gauge histograms stay gauges.
fn new_chunk_hint(
    res: Result<(), ChunkAppendError>,
    own: CounterResetHint,
) -> Result<Option<CounterResetHint>, AppendError> {
    match res {
        Ok(()) => Ok(None),
        Err(ChunkAppendError::Invalid(e)) => Err(AppendError::InvalidHistogram(e.to_string())),
        Err(ChunkAppendError::NewChunkNeeded { reason }) => Ok(Some(match own {
            CounterResetHint::Gauge | CounterResetHint::CounterReset => own,
            _ => reason.counter_reset_hint(),
        })),
    }
}
