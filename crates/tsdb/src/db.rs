//! The database: head + WAL + blocks in one data directory, and the maintenance that moves data
//! between them (head cut into blocks, WAL checkpoints, block compaction, retention).
//!
//! Directory layout: `wal/` (segments and checkpoints), `blocks/<ULID>/` (immutable blocks),
//! `snapshots/` (admin snapshots). A block that fails to open is moved aside to
//! `blocks/<ULID>.corrupted` with a log line; the rest keeps serving.
//!
//! Durability: an append is acknowledged only after its WAL records have been written to the
//! segment file (`write(2)`), so a process crash loses nothing acknowledged; the WAL is fsynced
//! every second by the maintenance thread, on segment rotation and on close (see [`crate::wal`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sextant_model::{Exemplar, HistogramValue, Labels, Matcher, Metadata, Sample};

use crate::block::{self, Block, BlockMeta};
use crate::chunkenc::Chunk;
use crate::exemplar::{ExemplarAppendError, ExemplarStorage, SeriesExemplars};
use crate::head::{read_chunk, AppendError, Head, HeadOptions, MemSeries};
use crate::querier::{
    merge_lazy, merge_series, merge_strings, LazySeries, Querier, QueryError, SeriesData,
};
use crate::tombstones::is_deleted;
use crate::wal::{
    self, Record, RefExemplar, RefFloatHistogram, RefHistogram, RefSample, RefSeries, Wal,
    WalOptions,
};

/// Why the database could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("write-ahead log: {0}")]
    Wal(#[from] wal::WalError),
    #[error("block: {0}")]
    Block(#[from] block::BlockError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DbError {
    let context = context.into();
    move |source| DbError::Io { context, source }
}

/// Options of the database.
#[derive(Clone, Debug)]
pub struct DbOptions {
    pub head: HeadOptions,
    /// Drop blocks whose data is older than this many ms behind the newest sample (0 = keep).
    pub retention: i64,
    /// Drop the oldest blocks while blocks + WAL exceed this many bytes (0 = no limit).
    pub retention_size: u64,
    pub wal_segment_size: u64,
    /// fdatasync the WAL before acknowledging every append (power-loss durability, slower).
    pub wal_fsync: bool,
    /// Size of the exemplar ring buffer shared by all series (0 disables exemplar storage).
    pub max_exemplars: usize,
    /// Agent mode: no blocks, no compaction; the head keeps only its newest half chunk range
    /// and the WAL is checkpointed as soon as remote-write queues have read past a segment.
    pub agent: bool,
    /// The most WAL bytes kept for a remote-write queue that has not read them yet; beyond
    /// this, checkpoints go ahead and the queue loses the data (0 = no limit).
    pub wal_hold_max_bytes: u64,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            head: HeadOptions::default(),
            retention: 30 * 24 * 3600 * 1000,
            retention_size: 0,
            wal_segment_size: 128 << 20,
            wal_fsync: false,
            max_exemplars: 100_000,
            agent: false,
            wal_hold_max_bytes: 0,
        }
    }
}

/// Reasons a sample can be refused by the database, for the rejected-samples counter.
pub const REJECT_REASONS: [&str; 5] = [
    "out_of_order",
    "out_of_bounds",
    "duplicate_sample",
    "series_limit",
    "invalid_histogram",
];

/// Counters the database keeps about itself (exported on `/metrics`).
#[derive(Default)]
pub struct DbMetrics {
    pub samples_appended: AtomicU64,
    pub histograms_appended: AtomicU64,
    pub rejected: [AtomicU64; 5],
    pub series_created: AtomicU64,
    pub series_removed: AtomicU64,
    pub head_truncations: AtomicU64,
    pub compactions: AtomicU64,
    pub compactions_failed: AtomicU64,
    pub blocks_deleted_by_retention: AtomicU64,
    pub wal_replay_ms: AtomicU64,
    pub wal_corruptions: AtomicU64,
    pub wal_write_failures: AtomicU64,
    pub blocks_quarantined: AtomicU64,
    /// Exemplars stored (duplicates not counted), like `prometheus_tsdb_exemplar_exemplars_appended_total`.
    pub exemplars_appended: AtomicU64,
    pub exemplars_out_of_order: AtomicU64,
    /// Series given tombstones by `delete_series` (counted once per delete call).
    pub tombstoned_series: AtomicU64,
}

impl DbMetrics {
    fn reject(&self, e: &AppendError) {
        if let Some(i) = REJECT_REASONS.iter().position(|r| *r == e.reason()) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The embedded time-series database.
pub struct Db {
    dir: PathBuf,
    opts: DbOptions,
    head: Arc<Head>,
    wal: Mutex<Wal>,
    blocks: RwLock<Vec<Arc<Block>>>,
    metadata: Mutex<HashMap<String, Metadata>>,
    /// Locked after `wal` when both are needed.
    exemplars: Mutex<ExemplarStorage>,
    metrics: DbMetrics,
    closed: AtomicBool,
    /// Serialises maintenance (head cut, compaction, retention, snapshot).
    maintenance: Mutex<()>,
    /// Blocks outside the data directory (the object-storage archive), read with local ones.
    external: RwLock<Option<Arc<dyn ExternalBlocks>>>,
    /// Downsampled blocks `(resolution ms, block)`, kept apart from raw `blocks`.
    downsampled: RwLock<Vec<(i64, Arc<Block>)>>,
    /// Lowest WAL segment a remote-write queue has not finished reading (`u64::MAX`: none).
    wal_hold: AtomicU64,
    /// Deleted ranges (admin delete_series), applied by every querier.
    tombstones: crate::tombstones::Tombstones,
}

/// A raw block gets 5m aggregates once it is this old (behind the newest sample), or earlier
/// when time retention is shorter (it is downsampled before retention deletes it).
pub const DOWNSAMPLE_5M_AGE: i64 = 40 * 3600 * 1000;
/// A raw block gets 1h aggregates once it is this old (or before retention deletes it).
pub const DOWNSAMPLE_1H_AGE: i64 = 10 * 24 * 3600 * 1000;
/// Downsampled blocks are kept this many times the raw time retention.
pub const DOWNSAMPLE_RETENTION_FACTOR: i64 = 10;

/// A source of blocks kept outside the data directory, such as an object-storage archive:
/// queries read them alongside local blocks, so data stays queryable after retention.
pub trait ExternalBlocks: Send + Sync {
    /// Opened blocks overlapping `[mint, maxt]` whose data is not already in `local`.
    fn blocks(
        &self,
        mint: i64,
        maxt: i64,
        local: &[Arc<Block>],
    ) -> Result<Vec<Arc<Block>>, QueryError>;
    /// Whether the block's data is safely held there, so time-based retention may delete the
    /// local copy. Blocks not yet held are kept past retention (size retention still applies).
    fn holds(&self, _ulid: &str) -> bool {
        true
    }
    /// Opened downsampled blocks of resolution `res` (ms) overlapping `[mint, maxt]` whose
    /// data no block in `local` (the local downsampled blocks of that resolution) holds.
    fn downsampled(
        &self,
        _res: i64,
        _mint: i64,
        _maxt: i64,
        _local: &[Arc<Block>],
    ) -> Result<Vec<Arc<Block>>, QueryError> {
        Ok(Vec::new())
    }
}

/// Outcome of a commit.
#[derive(Debug, Default, Clone)]
pub struct CommitStats {
    pub samples: usize,
    pub histograms: usize,
    /// Samples refused at commit, with the first error per reason.
    pub rejected: usize,
    pub first_error: Option<String>,
    /// Exemplars stored (duplicates of the newest exemplar of a series are dropped silently).
    pub exemplars: usize,
    /// Exemplars refused (out of order), with the first reason.
    pub exemplars_rejected: usize,
    pub first_exemplar_error: Option<String>,
}

impl Db {
    /// Opens (or creates) the database in `dir`: loads blocks, replays the WAL.
    pub fn open(dir: &Path, opts: DbOptions) -> Result<Db, DbError> {
        let started = Instant::now();
        std::fs::create_dir_all(dir.join("blocks"))
            .map_err(io_err(format!("creating {}", dir.display())))?;
        let metrics = DbMetrics::default();
        let blocks = load_blocks(&dir.join("blocks"), &metrics)?;
        let mut downsampled = Vec::new();
        for res in [crate::downsample::RES_5M, crate::downsample::RES_1H] {
            let d = dir
                .join("downsampled")
                .join(crate::downsample::res_dir(res));
            std::fs::create_dir_all(&d).map_err(io_err(format!("creating {}", d.display())))?;
            downsampled.extend(load_blocks(&d, &metrics)?.into_iter().map(|b| (res, b)));
        }
        let tombstones = crate::tombstones::Tombstones::open(dir)?;
        let head = Arc::new(Head::new(opts.head.clone()));
        if let Some(maxt) = blocks.iter().map(|b| b.meta().max_time).max() {
            head.set_min_valid_time(maxt);
        }
        let mut metadata = HashMap::new();
        let mut exemplars = ExemplarStorage::new(opts.max_exemplars);
        let mut unknown_refs = 0u64;
        let replay_ctx = |head: &Head| {
            let mut c = head.append_ctx();
            c.min_valid = head.min_valid_time();
            c.ooo_min = head.min_valid_time();
            c
        };
        let (wal, stats) = Wal::open(
            &dir.join("wal"),
            WalOptions {
                segment_size: opts.wal_segment_size,
                fsync_on_log: opts.wal_fsync,
            },
            |rec| match rec {
                Record::Series(list) => {
                    for s in list {
                        let _ = head
                            .create_with_ref(&s.labels, s.r, false)
                            .map(|(ms, _)| ms.logged.store(true, Ordering::Relaxed));
                    }
                }
                Record::Samples(list) => {
                    let ctx = replay_ctx(&head);
                    for s in list {
                        match head.get_by_ref(s.r) {
                            Some(ms) => {
                                if let Ok(true) = ms.lock().append_float(s.t, s.v, &ctx) {
                                    head.note_time(s.t);
                                }
                            }
                            None => unknown_refs += 1,
                        }
                    }
                }
                Record::Histograms(list) => {
                    let ctx = replay_ctx(&head);
                    for s in list {
                        let hv = HistogramValue::Int(s.h);
                        replay_hist(&head, s.r, s.t, &hv, &ctx, &mut unknown_refs);
                    }
                }
                Record::FloatHistograms(list) => {
                    let ctx = replay_ctx(&head);
                    for s in list {
                        let hv = HistogramValue::Float(s.h);
                        replay_hist(&head, s.r, s.t, &hv, &ctx, &mut unknown_refs);
                    }
                }
                Record::Metadata(list) => {
                    for m in list {
                        metadata.insert(m.metric_family.clone(), m);
                    }
                }
                Record::Exemplars(list) => {
                    for x in list {
                        match head.get_by_ref(x.r) {
                            // Checkpoints and segments may both hold an exemplar; the copy
                            // is refused as a duplicate or out of order, which is fine here.
                            Some(ms) => {
                                let _ = exemplars.add(&head.series_labels(&ms), x.e);
                            }
                            None => unknown_refs += 1,
                        }
                    }
                }
            },
        )?;
        if stats.corrupt {
            metrics.wal_corruptions.fetch_add(1, Ordering::Relaxed);
        }
        if unknown_refs > 0 {
            tracing::warn!(
                samples = unknown_refs,
                "WAL replay: samples for unknown series were skipped"
            );
        }
        metrics
            .wal_replay_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        tracing::info!(
            series = head.num_series(),
            blocks = blocks.len(),
            replay_ms = started.elapsed().as_millis() as u64,
            "TSDB opened"
        );
        Ok(Db {
            dir: dir.to_path_buf(),
            opts,
            head,
            wal: Mutex::new(wal),
            blocks: RwLock::new(blocks),
            external: RwLock::new(None),
            downsampled: RwLock::new(downsampled),
            metadata: Mutex::new(metadata),
            exemplars: Mutex::new(exemplars),
            metrics,
            closed: AtomicBool::new(false),
            maintenance: Mutex::new(()),
            wal_hold: AtomicU64::new(u64::MAX),
            tombstones,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn metrics(&self) -> &DbMetrics {
        &self.metrics
    }

    pub fn options(&self) -> &DbOptions {
        &self.opts
    }

    /// A new appender; nothing is visible or durable until [`HeadAppender::commit`].
    pub fn appender(&self) -> HeadAppender<'_> {
        HeadAppender {
            db: self,
            floats: Vec::new(),
            hists: Vec::new(),
            exemplars: Vec::new(),
            metadata: Vec::new(),
        }
    }

    /// Exemplars in `[start, end]` (ms) of the series matching any of the matcher sets.
    pub fn select_exemplars(
        &self,
        start: i64,
        end: i64,
        matcher_sets: &[Vec<Matcher>],
    ) -> Vec<SeriesExemplars> {
        self.exemplars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .select(start, end, matcher_sets)
    }

    /// Exemplar storage gauges: (exemplars stored, series with exemplars, max exemplars,
    /// timestamp in ms of the newest exemplar appended).
    pub fn exemplar_stats(&self) -> (usize, usize, usize, i64) {
        let st = self.exemplars.lock().unwrap_or_else(|e| e.into_inner());
        (
            st.len(),
            st.num_series(),
            st.max_exemplars(),
            st.last_timestamp(),
        )
    }

    /// Metadata per metric family, as last received.
    pub fn metadata(&self) -> HashMap<String, Metadata> {
        self.metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.blocks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes queries also read `ext`'s blocks (see [`ExternalBlocks`]).
    pub fn set_external_blocks(&self, ext: Arc<dyn ExternalBlocks>) {
        *self.external.write().unwrap_or_else(|e| e.into_inner()) = Some(ext);
    }

    /// A querier over head and blocks for `[mint, maxt]`.
    pub fn querier(&self) -> DbQuerier {
        DbQuerier {
            head: self.head.clone(),
            blocks: self.blocks(),
            external: self
                .external
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            downsampled: self.downsampled_blocks(),
            tombstones: self.tombstones.snapshot(),
        }
    }

    /// Like [`Db::querier`] but over local head and blocks only, never the archive: for
    /// background bookkeeping that must not download archived blocks.
    pub fn local_querier(&self) -> DbQuerier {
        DbQuerier {
            external: None,
            ..self.querier()
        }
    }

    /// Size of the WAL in bytes.
    pub fn wal_size(&self) -> u64 {
        self.wal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .size_bytes()
    }

    /// Bytes of all blocks.
    pub fn blocks_size(&self) -> u64 {
        self.blocks().iter().map(|b| b.size_bytes()).sum()
    }

    /// Fsyncs the WAL (called every second by the maintenance loop).
    pub fn sync_wal(&self) -> Result<(), DbError> {
        self.wal.lock().unwrap_or_else(|e| e.into_inner()).sync()?;
        Ok(())
    }

    /// One round of maintenance: cut the head into blocks when it spans 1.5 block ranges,
    /// compact blocks, apply retention. Errors are logged and counted, never fatal.
    pub fn maintain(&self) {
        let _g = self.maintenance.lock().unwrap_or_else(|e| e.into_inner());
        if self.opts.agent {
            if let Err(e) = self.agent_truncate() {
                tracing::error!(error = %e, "agent-mode WAL truncation failed");
            }
            return;
        }
        loop {
            match self.cut_head_once() {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    self.metrics
                        .compactions_failed
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "cutting the head into a block failed");
                    break;
                }
            }
        }
        if let Err(e) = self.compact_blocks() {
            self.metrics
                .compactions_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "block compaction failed");
        }
        self.downsample_due();
        self.apply_retention();
    }

    /// Downsampled blocks `(resolution ms, block)`.
    pub fn downsampled_blocks(&self) -> Vec<(i64, Arc<Block>)> {
        self.downsampled
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Writes 5m / 1h aggregates of raw blocks old enough (see [`DOWNSAMPLE_5M_AGE`]) that
    /// have none yet, and drops aggregates past their own retention. Errors are logged.
    pub fn downsample_due(&self) {
        use crate::downsample::{res_dir, write_downsampled, RES_1H, RES_5M};
        let blocks = self.blocks();
        // Aggregates count too: with every raw block gone (and an empty head) their own
        // retention still runs.
        let newest = blocks
            .iter()
            .map(|b| b.meta().max_time)
            .chain(
                self.downsampled_blocks()
                    .iter()
                    .map(|(_, b)| b.meta().max_time),
            )
            .max()
            .unwrap_or(i64::MIN)
            .max(self.head.max_time());
        if newest == i64::MIN {
            return;
        }
        for (res, age) in [(RES_5M, DOWNSAMPLE_5M_AGE), (RES_1H, DOWNSAMPLE_1H_AGE)] {
            let age = if self.opts.retention > 0 {
                age.min(self.opts.retention)
            } else {
                age
            };
            let cutoff = newest.saturating_sub(age);
            let done: std::collections::HashSet<String> = self
                .downsampled_blocks()
                .iter()
                .filter(|(r, _)| *r == res)
                .flat_map(|(_, b)| b.meta().compaction.sources.clone())
                .collect();
            for b in &blocks {
                let m = b.meta();
                // Only whole raw data: a block compacted from sources already downsampled
                // one by one is skipped, its parts are covered.
                if m.max_time > cutoff
                    || done.contains(&m.ulid)
                    || m.compaction.sources.iter().all(|s| done.contains(s))
                {
                    continue;
                }
                let parent = self.dir.join("downsampled").join(res_dir(res));
                let t0 = Instant::now();
                match write_downsampled(&parent, b, res)
                    .and_then(|meta| Block::open(&parent.join(&meta.ulid)))
                {
                    Ok(nb) => {
                        tracing::info!(raw = %m.ulid, ulid = %nb.meta().ulid, resolution = res_dir(res), ms = t0.elapsed().as_millis() as u64, "block downsampled");
                        let mut w = self.downsampled.write().unwrap_or_else(|e| e.into_inner());
                        w.push((res, Arc::new(nb)));
                        w.sort_by_key(|(r, b)| (*r, b.meta().min_time));
                    }
                    Err(e) => {
                        self.metrics
                            .compactions_failed
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::error!(ulid = %m.ulid, error = %e, "downsampling a block failed");
                    }
                }
            }
        }
        if self.opts.retention > 0 {
            let cutoff = newest.saturating_sub(
                self.opts
                    .retention
                    .saturating_mul(DOWNSAMPLE_RETENTION_FACTOR),
            );
            let ext = self
                .external
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let mut w = self.downsampled.write().unwrap_or_else(|e| e.into_inner());
            // Not before the archive holds them (as for raw blocks).
            let (old, keep): (Vec<_>, Vec<_>) = w.drain(..).partition(|(_, b)| {
                b.meta().max_time <= cutoff && ext.as_ref().is_none_or(|x| x.holds(&b.meta().ulid))
            });
            *w = keep;
            drop(w);
            for (_, b) in old {
                tracing::info!(ulid = %b.meta().ulid, "downsampled block deleted by retention");
                remove_block_dir(b.dir());
            }
        }
    }

    pub(crate) fn cut_head_once(&self) -> Result<bool, DbError> {
        let (min, max) = (self.head.min_time(), self.head.max_time());
        if min == i64::MAX || max == i64::MIN {
            return Ok(false);
        }
        let range = self.opts.head.chunk_range;
        let start = min.div_euclid(range) * range;
        let end = start + range;
        let frozen_until = max.saturating_sub((range / 2).max(self.opts.head.ooo_window));
        if end > frozen_until {
            return Ok(false);
        }
        self.cut_range(start, end)?;
        Ok(true)
    }

    /// Writes head data in `[start, end)` to a block, then drops it from head and WAL.
    fn cut_range(&self, start: i64, end: i64) -> Result<(), DbError> {
        let t0 = Instant::now();
        let mut series = self.head.block_series(start, end);
        let deleted = self.tombstones.snapshot();
        if !deleted.is_empty() {
            // Deleted samples do not reach the block (their tombstones stay until
            // clean_tombstones, so partly deleted histogram chunks are still hidden).
            for s in &mut series {
                if let Some(iv) = deleted.get(&s.labels) {
                    block::drop_deleted(s, iv);
                }
            }
            series.retain(|s| !s.floats.is_empty() || !s.hist_chunks.is_empty());
        }
        if !series.is_empty() {
            let meta =
                block::write_block(&self.dir.join("blocks"), series, start, end, 1, Vec::new())?;
            let b = Block::open(&self.dir.join("blocks").join(&meta.ulid))?;
            let mut blocks = self.blocks.write().unwrap_or_else(|e| e.into_inner());
            blocks.push(Arc::new(b));
            blocks.sort_by_key(|b| b.meta().min_time);
            tracing::info!(ulid = %meta.ulid, mint = start, maxt = end, series = meta.stats.num_series, ms = t0.elapsed().as_millis() as u64, "head cut into block");
        }
        let mut wal = self.wal.lock().unwrap_or_else(|e| e.into_inner());
        let (_, removed) = self.head.truncate(end);
        self.metrics
            .series_removed
            .fetch_add(removed as u64, Ordering::Relaxed);
        self.metrics
            .head_truncations
            .fetch_add(1, Ordering::Relaxed);
        let upto = wal.cut_segment()?;
        let snap = self.head.snapshot_for_checkpoint();
        let md: Vec<Metadata> = self.metadata().into_values().collect();
        let refs: HashMap<&Labels, u64> = snap.iter().map(|(r, l, _)| (l, *r)).collect();
        let ex: Vec<RefExemplar> = {
            let st = self.exemplars.lock().unwrap_or_else(|e| e.into_inner());
            st.all_in_order()
                .filter_map(|(l, e)| {
                    refs.get(l).map(|r| RefExemplar {
                        r: *r,
                        e: e.clone(),
                    })
                })
                .collect()
        };
        drop(refs);
        let Some(upto) = self.checkpoint_bound(upto, wal.size_bytes()) else {
            return Ok(());
        };
        match wal.checkpoint(upto, checkpoint_records(snap, md, ex)) {
            // Held back behind an existing checkpoint: try again at the next cut.
            Err(wal::WalError::InvalidCheckpoint { .. }) => Ok(()),
            r => r.map_err(DbError::from),
        }
    }

    /// Tells the database the lowest WAL segment remote-write queues still need (`u64::MAX`:
    /// none); checkpoints then keep that segment and every later one (see
    /// [`DbOptions::wal_hold_max_bytes`] for the bound).
    pub fn hold_wal_from(&self, segment: u64) {
        self.wal_hold.store(segment, Ordering::Release);
    }

    /// The segment a checkpoint may cover instead of `upto`, given the remote-write hold, or
    /// `None` when the hold keeps every segment.
    fn checkpoint_bound(&self, upto: u64, wal_bytes: u64) -> Option<u64> {
        let hold = self.wal_hold.load(Ordering::Acquire);
        if hold > upto {
            return Some(upto);
        }
        let max = self.opts.wal_hold_max_bytes;
        if max > 0 && wal_bytes > max {
            tracing::warn!(
                hold_segment = hold,
                wal_bytes,
                limit = max,
                "remote write is behind by more WAL than the hold limit; checkpointing anyway, unsent samples are lost to the remote"
            );
            return Some(upto);
        }
        hold.checked_sub(1)
    }

    /// Agent-mode maintenance: trim the head to its newest half chunk range and checkpoint
    /// every closed segment the remote-write queues have read.
    fn agent_truncate(&self) -> Result<(), DbError> {
        let mut wal = self.wal.lock().unwrap_or_else(|e| e.into_inner());
        let max = self.head.max_time();
        if max != i64::MIN {
            let keep = max.saturating_sub(self.opts.head.chunk_range / 2);
            if self.head.min_time() < keep {
                let (_, removed) = self.head.truncate(keep);
                self.metrics
                    .series_removed
                    .fetch_add(removed as u64, Ordering::Relaxed);
                self.metrics
                    .head_truncations
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        let Some(oldest) = wal.oldest_closed_segment() else {
            return Ok(());
        };
        let Some(upto) = wal.current_segment().checked_sub(1) else {
            return Ok(());
        };
        let Some(upto) = self.checkpoint_bound(upto, wal.size_bytes()) else {
            return Ok(());
        };
        if upto < oldest {
            return Ok(());
        }
        let snap = self.head.snapshot_for_checkpoint();
        let md: Vec<Metadata> = self.metadata().into_values().collect();
        match wal.checkpoint(upto, checkpoint_records(snap, md, Vec::new())) {
            Err(wal::WalError::InvalidCheckpoint { .. }) => Ok(()),
            r => r.map_err(DbError::from),
        }
    }

    pub(crate) fn compact_blocks(&self) -> Result<(), DbError> {
        let ranges = self.compaction_ranges();
        loop {
            let blocks = self.blocks();
            let metas: Vec<BlockMeta> = blocks.iter().map(|b| b.meta().clone()).collect();
            let Some(plan) = block::plan_compaction(&metas, &ranges) else {
                return Ok(());
            };
            let chosen: Vec<&Arc<Block>> = blocks
                .iter()
                .filter(|b| plan.contains(&b.meta().ulid))
                .collect();
            if chosen.len() < 2 {
                return Ok(());
            }
            let refs: Vec<&Block> = chosen.iter().map(|b| b.as_ref()).collect();
            let deleted = self.tombstones.snapshot();
            let meta = block::compact_without(&self.dir.join("blocks"), &refs, &deleted)?;
            let nb = Arc::new(Block::open(&self.dir.join("blocks").join(&meta.ulid))?);
            {
                let mut w = self.blocks.write().unwrap_or_else(|e| e.into_inner());
                w.retain(|b| !plan.contains(&b.meta().ulid));
                w.push(nb);
                w.sort_by_key(|b| b.meta().min_time);
            }
            for b in chosen {
                remove_block_dir(b.dir());
            }
            self.metrics.compactions.fetch_add(1, Ordering::Relaxed);
            tracing::info!(ulid = %meta.ulid, level = meta.compaction.level, sources = plan.len(), "blocks compacted");
        }
    }

    /// Block ranges 2h, 6h, 18h, … up to a tenth of the retention (at most 31 days).
    fn compaction_ranges(&self) -> Vec<i64> {
        let base = self.opts.head.chunk_range;
        let cap = if self.opts.retention > 0 {
            (self.opts.retention / 10).min(31 * 86_400_000)
        } else {
            31 * 86_400_000
        };
        let mut v = vec![base];
        while let Some(&last) = v.last() {
            let next = last * 3;
            if next > cap {
                break;
            }
            v.push(next);
        }
        v
    }

    /// Deletes blocks beyond the time or size retention.
    pub fn apply_retention(&self) {
        let mut doomed: Vec<Arc<Block>> = Vec::new();
        {
            let mut blocks = self.blocks.write().unwrap_or_else(|e| e.into_inner());
            blocks.sort_by_key(|b| b.meta().min_time);
            if self.opts.retention > 0 {
                let newest = blocks
                    .iter()
                    .map(|b| b.meta().max_time)
                    .max()
                    .unwrap_or(i64::MIN)
                    .max(self.head.max_time());
                let cutoff = newest.saturating_sub(self.opts.retention);
                let ext = self
                    .external
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let (drop, keep): (Vec<_>, Vec<_>) = blocks.drain(..).partition(|b| {
                    b.meta().max_time <= cutoff
                        && ext.as_ref().is_none_or(|x| {
                            let held = x.holds(&b.meta().ulid);
                            if !held {
                                tracing::debug!(ulid = %b.meta().ulid, "block past retention kept until it is archived");
                            }
                            held
                        })
                });
                *blocks = keep;
                doomed.extend(drop);
            }
            if self.opts.retention_size > 0 {
                let wal = self
                    .wal
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .size_bytes();
                let mut total: u64 = blocks.iter().map(|b| b.size_bytes()).sum::<u64>() + wal;
                while total > self.opts.retention_size && !blocks.is_empty() {
                    let b = blocks.remove(0);
                    total = total.saturating_sub(b.size_bytes());
                    doomed.push(b);
                }
            }
        }
        for b in doomed {
            tracing::info!(ulid = %b.meta().ulid, "block deleted by retention");
            self.metrics
                .blocks_deleted_by_retention
                .fetch_add(1, Ordering::Relaxed);
            remove_block_dir(b.dir());
        }
    }

    /// Writes a snapshot of all blocks (hard links) and, unless `skip_head`, the head as a block
    /// into `snapshots/<name>`; returns the name. Like Prometheus' admin snapshot API.
    pub fn snapshot(&self, skip_head: bool) -> Result<String, DbError> {
        let _g = self.maintenance.lock().unwrap_or_else(|e| e.into_inner());
        let now = sextant_model::time::now_ms();
        let name = format!(
            "{}-{:016x}",
            sextant_model::time::format_rfc3339_ms(now).replace([':', '-', '.'], ""),
            Labels::from_pairs([("t", now.to_string())]).stable_hash()
        );
        let dst = self.dir.join("snapshots").join(&name);
        std::fs::create_dir_all(&dst).map_err(io_err(format!("creating {}", dst.display())))?;
        for b in self.blocks() {
            link_tree(b.dir(), &dst.join(&b.meta().ulid))?;
        }
        if !skip_head {
            let (min, max) = (self.head.min_time(), self.head.max_time());
            if min != i64::MAX && max != i64::MIN {
                let series = self.head.block_series(min, max + 1);
                if !series.is_empty() {
                    block::write_block(&dst, series, min, max + 1, 1, Vec::new())?;
                }
            }
        }
        Ok(name)
    }

    /// Deletes the samples in `[mint, maxt]` (inclusive) of every series matching `matchers`
    /// (Prometheus' admin `delete_series`): tombstones are recorded and persisted; queries
    /// hide the samples at once. Returns the number of series affected.
    pub fn delete_series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<usize, DbError> {
        if mint > maxt {
            return Ok(0);
        }
        let raw = DbQuerier {
            head: self.head.clone(),
            blocks: self.blocks(),
            external: None,
            downsampled: Vec::new(),
            tombstones: Arc::default(),
        };
        let series = raw.series(matchers, mint, maxt).map_err(|e| DbError::Io {
            context: "selecting series to delete".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        self.tombstones.add(&series, mint, maxt)?;
        self.metrics
            .tombstoned_series
            .fetch_add(series.len() as u64, Ordering::Relaxed);
        tracing::info!(
            series = series.len(),
            mint,
            maxt,
            "series deleted (tombstones recorded)"
        );
        Ok(series.len())
    }

    /// Rewrites every block holding deleted samples without them (Prometheus' admin
    /// `clean_tombstones`), then keeps only the tombstones still needed: those that reach into
    /// the head's time range (head data is not rewritten) and those over histogram chunks only
    /// partly deleted. Returns the number of blocks rewritten.
    pub fn clean_tombstones(&self) -> Result<usize, DbError> {
        let _g = self.maintenance.lock().unwrap_or_else(|e| e.into_inner());
        let ts = self.tombstones.snapshot();
        if ts.is_empty() {
            return Ok(0);
        }
        let parent = self.dir.join("blocks");
        let mut rewritten = 0;
        let mut partial: std::collections::HashSet<Labels> = std::collections::HashSet::new();
        for b in self.blocks() {
            let r = block::rewrite_without(&parent, &b, &ts)?;
            partial.extend(r.partial);
            let Some(meta) = r.meta else { continue };
            let nb = Arc::new(Block::open(&parent.join(&meta.ulid))?);
            {
                let mut w = self.blocks.write().unwrap_or_else(|e| e.into_inner());
                w.retain(|x| x.meta().ulid != b.meta().ulid);
                w.push(nb);
                w.sort_by_key(|x| x.meta().min_time);
            }
            remove_block_dir(b.dir());
            rewritten += 1;
            tracing::info!(old = %b.meta().ulid, new = %meta.ulid, "block rewritten without deleted samples");
        }
        // Head samples are not rewritten, and samples may still arrive down to the head's
        // lowest accepted time: keep intervals reaching there.
        let head_floor = self
            .head
            .min_time()
            .min(self.head.min_valid_time())
            .saturating_sub(self.opts.head.ooo_window);
        self.tombstones.update(|m| {
            for (l, iv) in m.iter_mut() {
                if !partial.contains(l) {
                    iv.retain(|&(_, b)| b >= head_floor);
                }
            }
        })?;
        Ok(rewritten)
    }

    /// Flushes and fsyncs the WAL; the database is then safe to drop.
    pub fn close(&self) -> Result<(), DbError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.sync_wal()
    }

    /// Starts the maintenance thread: WAL fsync every second, maintenance every `every`.
    pub fn start_maintenance(self: &Arc<Self>, every: Duration) -> std::thread::JoinHandle<()> {
        let db = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("tsdb-maintenance".into())
            .spawn(move || {
                let mut last = Instant::now();
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let Some(db) = db.upgrade() else { return };
                    if db.closed.load(Ordering::Acquire) {
                        return;
                    }
                    if let Err(e) = db.sync_wal() {
                        tracing::error!(error = %e, "WAL fsync failed");
                    }
                    if last.elapsed() >= every {
                        last = Instant::now();
                        db.maintain();
                    }
                }
            })
            .unwrap_or_else(|_| std::thread::spawn(|| {}))
    }
}

fn replay_hist(
    head: &Head,
    r: u64,
    t: i64,
    hv: &HistogramValue,
    ctx: &crate::head::AppendCtx,
    unknown: &mut u64,
) {
    match head.get_by_ref(r) {
        Some(ms) => {
            if let Ok(true) = ms.lock().append_histogram(t, hv, ctx) {
                head.note_time(t);
            }
        }
        None => *unknown += 1,
    }
}

/// Records of a checkpoint, produced lazily a few hundred series at a time.
fn checkpoint_records(
    snap: Vec<(u64, Labels, SeriesData)>,
    md: Vec<Metadata>,
    exemplars: Vec<RefExemplar>,
) -> impl Iterator<Item = Record> {
    let mut out: Vec<Record> = Vec::new();
    for group in snap.chunks(512) {
        out.push(Record::Series(
            group
                .iter()
                .map(|(r, l, _)| RefSeries {
                    r: *r,
                    labels: l.clone(),
                })
                .collect(),
        ));
        let mut samples = Vec::new();
        let mut hs = Vec::new();
        let mut fhs = Vec::new();
        for (r, _, sd) in group {
            samples.extend(sd.floats.iter().map(|s| RefSample {
                r: *r,
                t: s.t,
                v: s.v,
            }));
            for (t, h) in &sd.histograms {
                match h {
                    HistogramValue::Int(h) => hs.push(RefHistogram {
                        r: *r,
                        t: *t,
                        h: h.clone(),
                    }),
                    HistogramValue::Float(h) => fhs.push(RefFloatHistogram {
                        r: *r,
                        t: *t,
                        h: h.clone(),
                    }),
                }
            }
        }
        if !samples.is_empty() {
            out.push(Record::Samples(samples));
        }
        if !hs.is_empty() {
            out.push(Record::Histograms(hs));
        }
        if !fhs.is_empty() {
            out.push(Record::FloatHistograms(fhs));
        }
    }
    if !md.is_empty() {
        out.push(Record::Metadata(md));
    }
    // In append order, so the ring evicts the same exemplars first after a restart.
    for group in exemplars.chunks(1024) {
        out.push(Record::Exemplars(group.to_vec()));
    }
    out.into_iter()
}

fn load_blocks(dir: &Path, metrics: &DbMetrics) -> Result<Vec<Arc<Block>>, DbError> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))?;
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if !p.is_dir() || name.ends_with(".corrupted") {
            continue;
        }
        if name.ends_with(".tmp") {
            tracing::warn!(dir = %p.display(), "removing unfinished block from an interrupted write");
            let _ = std::fs::remove_dir_all(&p);
            continue;
        }
        match Block::open(&p) {
            Ok(b) => out.push(Arc::new(b)),
            Err(err) => {
                let q = dir.join(format!("{name}.corrupted"));
                tracing::error!(block = %p.display(), error = %err, quarantine = %q.display(), "block cannot be read; moved aside");
                metrics.blocks_quarantined.fetch_add(1, Ordering::Relaxed);
                let _ = std::fs::rename(&p, &q);
            }
        }
    }
    out.sort_by_key(|b| b.meta().min_time);
    Ok(out)
}

fn remove_block_dir(p: &Path) {
    if let Err(e) = std::fs::remove_dir_all(p) {
        tracing::warn!(dir = %p.display(), error = %e, "could not delete block directory");
    }
}

fn link_tree(src: &Path, dst: &Path) -> Result<(), DbError> {
    std::fs::create_dir_all(dst).map_err(io_err(format!("creating {}", dst.display())))?;
    let rd = std::fs::read_dir(src).map_err(io_err(format!("reading {}", src.display())))?;
    for e in rd.flatten() {
        let (s, d) = (e.path(), dst.join(e.file_name()));
        if s.is_dir() {
            link_tree(&s, &d)?;
        } else if std::fs::hard_link(&s, &d).is_err() {
            std::fs::copy(&s, &d).map_err(io_err(format!("copying {}", s.display())))?;
        }
    }
    Ok(())
}

/// Buffers samples for one commit. Everything written through ingest passes here.
pub struct HeadAppender<'a> {
    db: &'a Db,
    floats: Vec<(Arc<MemSeries>, i64, f64)>,
    hists: Vec<(Arc<MemSeries>, i64, HistogramValue)>,
    exemplars: Vec<(Arc<MemSeries>, Labels, Exemplar)>,
    metadata: Vec<Metadata>,
}

impl HeadAppender<'_> {
    fn series(&mut self, labels: &Labels) -> Result<Arc<MemSeries>, AppendError> {
        match self.db.head.get_or_create(labels) {
            Ok((s, created)) => {
                if created {
                    self.db
                        .metrics
                        .series_created
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(s)
            }
            Err(e) => {
                self.db.metrics.reject(&e);
                Err(e)
            }
        }
    }

    /// Queues a float sample; errors that are certain already (series limit, too old) come
    /// back now, the rest at commit.
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), AppendError> {
        let s = self.series(labels)?;
        self.floats.push((s, t, v));
        Ok(())
    }

    /// Queues a native histogram sample.
    pub fn append_histogram(
        &mut self,
        labels: &Labels,
        t: i64,
        h: HistogramValue,
    ) -> Result<(), AppendError> {
        let valid = match &h {
            HistogramValue::Int(x) => x.validate(),
            HistogramValue::Float(x) => x.validate(),
        };
        if let Err(e) = valid {
            let err = AppendError::InvalidHistogram(e.to_string());
            self.db.metrics.reject(&err);
            return Err(err);
        }
        let s = self.series(labels)?;
        self.hists.push((s, t, h));
        Ok(())
    }

    /// Queues an exemplar of the series `labels` (created if needed, like a sample would).
    /// An exemplar with bad labels is refused now; order and duplicates are checked at commit.
    /// With exemplar storage disabled the exemplar is dropped without error, as in Prometheus.
    pub fn append_exemplar(
        &mut self,
        labels: &Labels,
        e: Exemplar,
    ) -> Result<(), ExemplarAppendError> {
        if self.db.opts.max_exemplars == 0 {
            return Ok(());
        }
        e.validate()?;
        let s = self
            .series(labels)
            .map_err(|err| ExemplarAppendError::Series(err.to_string()))?;
        self.exemplars.push((s, labels.clone(), e));
        Ok(())
    }

    /// Queues metadata of a metric family; logged only when it changed.
    pub fn set_metadata(&mut self, md: Metadata) {
        self.metadata.push(md);
    }

    /// Applies the queued samples to the head (checking order and duplicates), writes the
    /// accepted ones to the WAL, and returns once they are written. On a WAL error nothing
    /// is acknowledged.
    pub fn commit(self) -> Result<CommitStats, DbError> {
        let db = self.db;
        let mut stats = CommitStats::default();
        let mut wal = db.wal.lock().unwrap_or_else(|e| e.into_inner());
        let ctx = db.head.append_ctx();
        let mut new_series: Vec<Arc<MemSeries>> = Vec::new();
        let mut samples: Vec<RefSample> = Vec::with_capacity(self.floats.len());
        let mut hs: Vec<RefHistogram> = Vec::new();
        let mut fhs: Vec<RefFloatHistogram> = Vec::new();
        let (mut tmin, mut tmax) = (i64::MAX, i64::MIN);
        let reject = |e: AppendError, stats: &mut CommitStats| {
            db.metrics.reject(&e);
            stats.rejected += 1;
            if stats.first_error.is_none() {
                stats.first_error = Some(e.to_string());
            }
        };
        for (s, t, v) in &self.floats {
            let res = s.lock().append_float(*t, *v, &ctx);
            match res {
                Ok(true) => {
                    if !s.logged.swap(true, Ordering::AcqRel) {
                        new_series.push(s.clone());
                    }
                    samples.push(RefSample {
                        r: s.r,
                        t: *t,
                        v: *v,
                    });
                    tmin = tmin.min(*t);
                    tmax = tmax.max(*t);
                }
                Ok(false) => {}
                Err(e) => reject(e, &mut stats),
            }
        }
        for (s, t, h) in &self.hists {
            let res = s.lock().append_histogram(*t, h, &ctx);
            match res {
                Ok(true) => {
                    if !s.logged.swap(true, Ordering::AcqRel) {
                        new_series.push(s.clone());
                    }
                    match h {
                        HistogramValue::Int(h) => hs.push(RefHistogram {
                            r: s.r,
                            t: *t,
                            h: h.clone(),
                        }),
                        HistogramValue::Float(h) => fhs.push(RefFloatHistogram {
                            r: s.r,
                            t: *t,
                            h: h.clone(),
                        }),
                    }
                    tmin = tmin.min(*t);
                    tmax = tmax.max(*t);
                }
                Ok(false) => {}
                Err(e) => reject(e, &mut stats),
            }
        }
        let mut ex_recs: Vec<RefExemplar> = Vec::new();
        if !self.exemplars.is_empty() {
            let mut st = db.exemplars.lock().unwrap_or_else(|e| e.into_inner());
            for (s, labels, e) in self.exemplars {
                match st.add(&labels, e.clone()) {
                    Ok(()) => {
                        if !s.logged.swap(true, Ordering::AcqRel) {
                            new_series.push(s.clone());
                        }
                        ex_recs.push(RefExemplar { r: s.r, e });
                    }
                    Err(ExemplarAppendError::Duplicate | ExemplarAppendError::Disabled) => {}
                    Err(err) => {
                        if err == ExemplarAppendError::OutOfOrder {
                            db.metrics
                                .exemplars_out_of_order
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        stats.exemplars_rejected += 1;
                        if stats.first_exemplar_error.is_none() {
                            stats.first_exemplar_error = Some(format!(
                                "{err}: series {labels}, exemplar {} {} at {}",
                                e.labels, e.value, e.ts
                            ));
                        }
                    }
                }
            }
        }
        let mut changed_md = Vec::new();
        if !self.metadata.is_empty() {
            let mut md = db.metadata.lock().unwrap_or_else(|e| e.into_inner());
            for m in self.metadata {
                if md.get(&m.metric_family) != Some(&m) {
                    md.insert(m.metric_family.clone(), m.clone());
                    changed_md.push(m);
                }
            }
        }
        let mut recs: Vec<Vec<u8>> = Vec::with_capacity(4);
        let mut push = |r: Record| {
            let mut b = Vec::new();
            wal::encode(&r, &mut b);
            recs.push(b);
        };
        if !new_series.is_empty() {
            let labels: Vec<RefSeries> = new_series
                .iter()
                .map(|s| RefSeries {
                    r: s.r,
                    labels: db.head.series_labels(s),
                })
                .collect();
            push(Record::Series(labels));
        }
        stats.samples = samples.len();
        stats.histograms = hs.len() + fhs.len();
        if !samples.is_empty() {
            push(Record::Samples(samples));
        }
        if !hs.is_empty() {
            push(Record::Histograms(hs));
        }
        if !fhs.is_empty() {
            push(Record::FloatHistograms(fhs));
        }
        stats.exemplars = ex_recs.len();
        if !ex_recs.is_empty() {
            push(Record::Exemplars(ex_recs));
        }
        if !changed_md.is_empty() {
            push(Record::Metadata(changed_md));
        }
        if !recs.is_empty() {
            if let Err(e) = wal.log(&recs) {
                db.metrics
                    .wal_write_failures
                    .fetch_add(1, Ordering::Relaxed);
                for s in &new_series {
                    s.logged.store(false, Ordering::Release);
                }
                return Err(e.into());
            }
        }
        drop(wal);
        if tmin != i64::MAX {
            db.head.note_time(tmin);
            db.head.note_time(tmax);
        }
        db.metrics
            .samples_appended
            .fetch_add(stats.samples as u64, Ordering::Relaxed);
        db.metrics
            .histograms_appended
            .fetch_add(stats.histograms as u64, Ordering::Relaxed);
        db.metrics
            .exemplars_appended
            .fetch_add(stats.exemplars as u64, Ordering::Relaxed);
        Ok(stats)
    }
}

/// Reads head and blocks, merged.
pub struct DbQuerier {
    head: Arc<Head>,
    blocks: Vec<Arc<Block>>,
    external: Option<Arc<dyn ExternalBlocks>>,
    downsampled: Vec<(i64, Arc<Block>)>,
    tombstones: Arc<crate::tombstones::TombstoneMap>,
}

impl DbQuerier {
    /// Local blocks overlapping `[mint, maxt]`, preceded by external (archived) ones that hold
    /// data no local block has.
    fn blocks_in(&self, mint: i64, maxt: i64) -> Result<Vec<Arc<Block>>, QueryError> {
        let mut out = match &self.external {
            Some(ext) => ext.blocks(mint, maxt, &self.blocks)?,
            None => Vec::new(),
        };
        out.extend(
            self.blocks
                .iter()
                .filter(move |b| b.meta().max_time > mint && b.meta().min_time <= maxt)
                .cloned(),
        );
        Ok(out)
    }

    fn head_in(&self, mint: i64, maxt: i64) -> bool {
        self.head.max_time() >= mint && self.head.min_time() <= maxt
    }
}

fn block_err(b: &Block, e: impl std::fmt::Display) -> QueryError {
    QueryError::Block {
        block: b.meta().ulid.clone(),
        msg: e.to_string(),
    }
}

impl DbQuerier {
    /// Like [`Querier::select`], but nothing is decoded yet: each series is read on demand
    /// with [`LazySeries::read`] for the window the caller needs.
    pub fn select_lazy(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<LazySeries>, QueryError> {
        let mut sources = Vec::new();
        for b in &self.blocks_in(mint, maxt)? {
            let list = b
                .select_lazy(matchers, mint, maxt)
                .map_err(|e| block_err(b, e))?;
            sources.push(
                list.into_iter()
                    .map(|(labels, metas)| LazySeries::block(labels, Arc::clone(b), metas))
                    .collect(),
            );
        }
        if self.head_in(mint, maxt) {
            sources.push(self.head.select_lazy(matchers, mint, maxt));
        }
        let mut out = merge_lazy(sources);
        if !self.tombstones.is_empty() {
            for ls in &mut out {
                if let Some(iv) = self.tombstones.get(&ls.labels) {
                    ls.deleted = iv.clone();
                }
            }
        }
        Ok(out)
    }
}

impl DbQuerier {
    /// Like [`DbQuerier::select_lazy`], but for the part of `[mint, maxt]` before the oldest
    /// raw data reads downsampled aggregates — local ones, and archived ones through
    /// [`ExternalBlocks::downsampled`] — where `hints` allow (see
    /// [`crate::downsample::aggr_for`]): 5m first, then 1h for what 5m does not cover. Raw
    /// data is local raw data, plus archived raw blocks when the step is below 25m (5 × 5m,
    /// Thanos' auto-downsampling rule); with larger steps archived raw blocks are read only for
    /// the time before the oldest aggregate. Raw and
    /// aggregated data never overlap in time (each raw part is cut to its range), so raw
    /// results are never mixed with aggregates. Counter aggregates of consecutive blocks are
    /// joined with [`crate::downsample::stitch_counter`].
    pub fn select_lazy_hinted(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        hints: &crate::querier::SelectHints,
    ) -> Result<Vec<LazySeries>, QueryError> {
        use crate::downsample::{
            aggr_for, read_aggregate, read_counter_pieces, stitch_counter, AggrKind, RES_1H, RES_5M,
        };
        if self.downsampled.is_empty() && self.external.is_none() {
            return self.select_lazy(matchers, mint, maxt);
        }
        if aggr_for(hints, RES_5M).is_none() {
            return self.select_lazy(matchers, mint, maxt);
        }
        // The oldest raw data: aggregates answer for the time before it. With a large step
        // (Thanos' auto-downsampling rule: resolution ≤ step / 5) archived raw blocks do not
        // count, so a long-range query reads archived aggregates instead of downloading raw
        // blocks; with a smaller step archived raw data is read where it exists.
        let mut raw_min = if self.head.min_time() == i64::MAX {
            maxt.saturating_add(1)
        } else {
            self.head.min_time().min(maxt.saturating_add(1))
        };
        let in_range = |b: &&Arc<Block>| b.meta().max_time > mint && b.meta().min_time <= maxt;
        let archived = if hints.step >= 5 * RES_5M {
            Vec::new()
        } else {
            match &self.external {
                Some(ext) => ext.blocks(mint, maxt, &self.blocks)?,
                None => Vec::new(),
            }
        };
        for b in self.blocks.iter().chain(&archived).filter(in_range) {
            raw_min = raw_min.min(b.meta().min_time);
        }
        let mut upto = raw_min; // exclusive end of what aggregates may fill
        let mut per: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        let mut pieces: BTreeMap<Labels, Vec<crate::downsample::CounterPiece>> = BTreeMap::new();
        for res in [RES_5M, RES_1H] {
            if upto <= mint {
                break;
            }
            let Some(kind) = aggr_for(hints, res) else {
                continue;
            };
            let local: Vec<Arc<Block>> = self
                .downsampled
                .iter()
                .filter(|(r, _)| *r == res)
                .map(|(_, b)| Arc::clone(b))
                .collect();
            let mut blocks: Vec<Arc<Block>> = match &self.external {
                Some(ext) => ext.downsampled(res, mint, upto - 1, &local)?,
                None => Vec::new(),
            };
            blocks.extend(local);
            blocks.retain(|b| b.meta().max_time > mint && b.meta().min_time < upto);
            let Some(lo) = blocks.iter().map(|b| b.meta().min_time).min() else {
                continue;
            };
            for b in &blocks {
                if kind == AggrKind::Counter {
                    for (l, p) in read_counter_pieces(b, matchers, mint, upto - 1)
                        .map_err(|e| block_err(b, e))?
                    {
                        pieces.entry(l).or_default().push(p);
                    }
                } else {
                    for (l, v) in read_aggregate(b, matchers, kind, mint, upto - 1)
                        .map_err(|e| block_err(b, e))?
                    {
                        per.entry(l).or_default().extend(v);
                    }
                }
            }
            upto = lo;
        }
        for (l, ps) in pieces {
            per.insert(l, stitch_counter(ps));
        }
        let mut extra: Vec<LazySeries> = Vec::new();
        for (l, mut v) in per {
            v.sort_by_key(|s| s.t);
            v.dedup_by_key(|s| s.t);
            if !v.is_empty() {
                extra.push(LazySeries::mem(l, v));
            }
        }
        if extra.is_empty() {
            return self.select_lazy(matchers, mint, maxt);
        }
        // Raw data where no aggregate answers: from the oldest local raw data on, and before
        // the oldest aggregate (archived raw blocks, if any); each cut to its part.
        let mut sources = vec![extra];
        if raw_min <= maxt {
            let mut raw = self.select_lazy(matchers, raw_min.max(mint), maxt)?;
            for ls in &mut raw {
                ls.clip(raw_min, maxt);
            }
            sources.push(raw);
        }
        if upto > mint {
            let mut raw = self.select_lazy(matchers, mint, upto - 1)?;
            for ls in &mut raw {
                ls.clip(mint, upto - 1);
            }
            sources.push(raw);
        }
        let mut out = merge_lazy(sources);
        // Deleted ranges (delete_series) hide aggregates of the deleted samples too.
        if !self.tombstones.is_empty() {
            for ls in &mut out {
                if let Some(iv) = self.tombstones.get(&ls.labels) {
                    ls.deleted = iv.clone();
                }
            }
        }
        Ok(out)
    }
}

impl Querier for DbQuerier {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let mut sources = Vec::new();
        for b in &self.blocks_in(mint, maxt)? {
            let list = b
                .select(matchers, mint, maxt)
                .map_err(|e| block_err(b, e))?;
            let mut conv = Vec::with_capacity(list.len());
            for bs in list {
                let mut sd = SeriesData {
                    labels: bs.labels,
                    floats: bs.floats,
                    histograms: Vec::new(),
                };
                for rc in bs.hist_chunks {
                    let c =
                        Chunk::from_encoded(rc.encoding, rc.data).map_err(|e| block_err(b, e))?;
                    read_chunk(&c, mint, maxt, &mut sd);
                }
                if !sd.floats.is_empty() || !sd.histograms.is_empty() {
                    conv.push(sd);
                }
            }
            sources.push(conv);
        }
        if self.head_in(mint, maxt) {
            sources.push(self.head.select(matchers, mint, maxt));
        }
        let mut out = merge_series(sources);
        if !self.tombstones.is_empty() {
            out.retain_mut(|sd| {
                let Some(iv) = self.tombstones.get(&sd.labels) else {
                    return true;
                };
                sd.floats.retain(|s| !is_deleted(iv, s.t));
                sd.histograms.retain(|(t, _)| !is_deleted(iv, *t));
                !sd.floats.is_empty() || !sd.histograms.is_empty()
            });
        }
        Ok(out)
    }

    fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, QueryError> {
        let mut all: Vec<Labels> = Vec::new();
        for b in &self.blocks_in(mint, maxt)? {
            all.extend(b.series(matchers).map_err(|e| block_err(b, e))?);
        }
        if self.head_in(mint, maxt) {
            all.extend(self.head.series(matchers, mint, maxt));
        }
        all.sort();
        all.dedup();
        if !self.tombstones.is_empty() {
            // Like Prometheus, a series whose samples in range are all deleted is not listed.
            let mut keep = Vec::with_capacity(all.len());
            for l in all {
                if self.tombstones.contains_key(&l) {
                    let exact: Vec<Matcher> = l
                        .iter()
                        .map(|x| Matcher::equal(x.name.clone(), x.value.clone()))
                        .collect();
                    if self.select(&exact, mint, maxt)?.is_empty() {
                        continue;
                    }
                }
                keep.push(l);
            }
            all = keep;
        }
        Ok(all)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let mut lists = Vec::new();
        for b in &self.blocks_in(mint, maxt)? {
            lists.push(b.label_names(matchers).map_err(|e| block_err(b, e))?);
        }
        if self.head_in(mint, maxt) {
            lists.push(self.head.label_names(matchers));
        }
        Ok(merge_strings(lists))
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let mut lists = Vec::new();
        for b in &self.blocks_in(mint, maxt)? {
            lists.push(
                b.label_values(name, matchers)
                    .map_err(|e| block_err(b, e))?,
            );
        }
        if self.head_in(mint, maxt) {
            lists.push(self.head.label_values(name, matchers));
        }
        Ok(merge_strings(lists))
    }
}
