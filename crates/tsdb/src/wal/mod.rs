//! Write-ahead log: every batch the head accepts is appended here before it is applied in
//! memory, so a restart can rebuild the head by replaying the log.
//!
//! # Layout
//!
//! A WAL directory holds numbered segment files (`00000000`, `00000001`, … — eight-digit
//! zero-padded indexes as in Prometheus) and at most one checkpoint directory
//! `checkpoint.NNNNNNNN`, which holds the records still needed from segments `<= NNNNNNNN` (in
//! segment files of the same format) so those segments can be deleted. Replay reads the newest
//! checkpoint, then every segment after it, in order. Segments that replay found corrupt are
//! renamed to `NNNNNNNN.corrupt` and ignored from then on.
//!
//! # Frames
//!
//! A segment is a sequence of frames, one per record:
//!
//! ```text
//! [u8 record kind][u32 LE payload length][u32 LE CRC32C][payload]
//! ```
//!
//! The kind byte repeats the first payload byte (see [`record`] for the payload encoding) so a
//! zero-filled or garbled header is recognised before its length is trusted; the CRC32C covers
//! the kind byte, the length and the payload. A segment may grow past
//! [`WalOptions::segment_size`] by one batch: a batch goes to a fresh segment when it would not
//! fit, but a batch larger than a whole segment is still written as one.
//!
//! # Durability
//!
//! [`Wal::log`] frames a whole batch and hands it to the kernel with a single `write(2)`-style
//! call (no user-space buffering) before returning, so acknowledged data survives a crash of the
//! process (`kill -9`). Surviving power loss needs an `fdatasync`, which happens on every
//! [`Wal::log`] only with [`WalOptions::fsync_on_log`], and otherwise when a segment is cut, on
//! [`Wal::sync`], on [`Wal::checkpoint`] and (best effort) when the [`Wal`] is dropped. New
//! segment files and checkpoint renames are followed by an fsync of the directory.
//!
//! # Recovery
//!
//! Opening never refuses to start because of corrupt data, only on real I/O errors. A bad frame
//! (short, wrong kind byte, CRC mismatch) in the last segment is the torn tail of an interrupted
//! write: the segment is truncated at the last good frame. A bad frame followed by non-zero bytes
//! cannot be a torn write and is also reported as corruption. A bad frame in an earlier segment
//! means the log lost data it once had: the rest of that segment is truncated and all later
//! segments are renamed `*.corrupt`. A frame whose CRC is right but whose payload does not decode
//! (written by a newer version, or garbage handed to [`Wal::log`]) is skipped on its own, since
//! framing after it is intact. Every such event is logged with `tracing::warn!` naming the file,
//! offset and bytes dropped, and is counted in [`ReplayStats`].

pub mod record;
pub mod tail;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

pub use record::{
    decode, encode, Record, RefExemplar, RefFloatHistogram, RefHistogram, RefSample, RefSeries,
};

/// Bytes of a frame header: kind, length, CRC.
const HEADER_LEN: usize = 9;
const CHECKPOINT_PREFIX: &str = "checkpoint.";
const TMP_SUFFIX: &str = ".tmp";
const CORRUPT_SUFFIX: &str = ".corrupt";

/// How the WAL cuts segments and when it syncs.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Target size of a segment file in bytes; a segment exceeds it by at most one batch.
    pub segment_size: u64,
    /// `fdatasync` after every [`Wal::log`] (survives power loss, costs latency).
    pub fsync_on_log: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 128 << 20,
            fsync_on_log: false,
        }
    }
}

/// What [`Wal::open`] found while replaying.
#[derive(Debug, Default, Clone)]
pub struct ReplayStats {
    /// Records handed to the callback (checkpoint records included).
    pub records: u64,
    /// WAL segments read (checkpoint files not counted).
    pub segments: usize,
    /// Data that had once been written completely was lost or skipped.
    pub corrupt: bool,
    /// Bytes dropped: truncated tails plus segments set aside as corrupt.
    pub truncated_bytes: u64,
}

/// Why a WAL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file system operation failed.
    #[error("WAL: cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A record payload is malformed.
    #[error("cannot decode WAL record at byte {at}: {reason}")]
    Decode { at: usize, reason: &'static str },
    /// A record payload starts with a kind byte this version does not know.
    #[error("unknown WAL record type {0}")]
    UnknownRecordType(u8),
    /// [`Wal::log`] was given an empty payload, which no record encodes to.
    #[error("WAL: cannot log an empty record")]
    EmptyRecord,
    /// A record payload does not fit the frame's 32-bit length.
    #[error("WAL: record of {len} bytes exceeds the 4 GiB frame limit")]
    RecordTooLarge { len: usize },
    /// A checkpoint would cover the segment still being written, or go back before the
    /// existing checkpoint.
    #[error("WAL: cannot checkpoint up to segment {upto}: {reason} (current segment {current})")]
    InvalidCheckpoint {
        upto: u64,
        current: u64,
        reason: &'static str,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn segment_name(index: u64) -> String {
    format!("{index:08}")
}

fn checkpoint_name(index: u64) -> String {
    format!("{CHECKPOINT_PREFIX}{index:08}")
}

/// Parses a segment file name (all digits, at least eight).
fn parse_segment_name(name: &str) -> Option<u64> {
    if name.len() >= 8 && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

fn parse_checkpoint_name(name: &str) -> Option<u64> {
    name.strip_prefix(CHECKPOINT_PREFIX)
        .and_then(parse_segment_name)
}

/// Appends the frame of one payload to `out`.
fn frame(payload: &[u8], out: &mut Vec<u8>) -> Result<(), WalError> {
    let Some(&kind) = payload.first() else {
        return Err(WalError::EmptyRecord);
    };
    if !record::is_known_type(kind) {
        return Err(WalError::UnknownRecordType(kind));
    }
    let len = u32::try_from(payload.len())
        .map_err(|_| WalError::RecordTooLarge { len: payload.len() })?;
    let mut head = [0u8; 5];
    head[0] = kind;
    head[1..5].copy_from_slice(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head), payload);
    out.extend_from_slice(&head);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    // Directories cannot be opened for syncing on every platform; where they can, do it.
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync directory", dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The contents of a WAL directory.
#[derive(Default)]
struct Listing {
    /// Segment index → size in bytes.
    segments: BTreeMap<u64, u64>,
    checkpoints: Vec<u64>,
    tmp_dirs: Vec<PathBuf>,
}

fn list_dir(dir: &Path) -> Result<Listing, WalError> {
    let mut l = Listing::default();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        let meta = entry.metadata().map_err(io_err("stat", &path))?;
        if meta.is_file() {
            if let Some(i) = parse_segment_name(name) {
                l.segments.insert(i, meta.len());
            }
        } else if meta.is_dir() {
            if let Some(i) = parse_checkpoint_name(name) {
                l.checkpoints.push(i);
            } else if name.starts_with(CHECKPOINT_PREFIX) && name.ends_with(TMP_SUFFIX) {
                l.tmp_dirs.push(path);
            }
        }
    }
    l.checkpoints.sort_unstable();
    Ok(l)
}

/// Segment files of a checkpoint directory, in order, with their sizes.
fn checkpoint_files(dir: &Path) -> Result<Vec<(PathBuf, u64)>, WalError> {
    let mut v = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let Some(i) = name.to_str().and_then(parse_segment_name) else {
            continue;
        };
        let path = entry.path();
        let meta = entry.metadata().map_err(io_err("stat", &path))?;
        if meta.is_file() {
            v.push((i, path, meta.len()));
        }
    }
    v.sort_unstable_by_key(|(i, _, _)| *i);
    Ok(v.into_iter().map(|(_, p, n)| (p, n)).collect())
}

/// How reading a segment file ended.
enum SegmentEnd {
    /// Every frame was good.
    Clean,
    /// A bad frame starts at `offset`.
    Bad {
        offset: u64,
        file_len: u64,
        /// Looks like an interrupted write: the frame runs past the end of the file or
        /// everything from `offset` on is zero.
        torn: bool,
        reason: &'static str,
    },
}

/// Reads the frames of one file, handing decoded records to `on_record`.
fn replay_file(
    path: &Path,
    stats: &mut ReplayStats,
    on_record: &mut dyn FnMut(Record),
) -> Result<SegmentEnd, WalError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let file_len = file.metadata().map_err(io_err("stat", path))?.len();
    let mut rd = BufReader::with_capacity(1 << 20, file);
    let mut offset: u64 = 0;
    let mut payload = Vec::new();
    let bad = |offset: u64, short: bool, reason: &'static str| -> Result<SegmentEnd, WalError> {
        let torn = short || rest_is_zero(path, offset)?;
        Ok(SegmentEnd::Bad {
            offset,
            file_len,
            torn,
            reason,
        })
    };
    while offset < file_len {
        if file_len - offset < HEADER_LEN as u64 {
            return bad(offset, true, "incomplete frame header");
        }
        let mut head = [0u8; HEADER_LEN];
        rd.read_exact(&mut head).map_err(io_err("read", path))?;
        let kind = head[0];
        if !record::is_known_type(kind) {
            return bad(offset, false, "invalid frame header");
        }
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        let want = u32::from_le_bytes([head[5], head[6], head[7], head[8]]);
        if u64::from(len) > file_len - offset - HEADER_LEN as u64 {
            return bad(offset, true, "frame runs past the end of the file");
        }
        payload.resize(len as usize, 0);
        rd.read_exact(&mut payload).map_err(io_err("read", path))?;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&head[..5]), &payload);
        if crc != want || payload.first() != Some(&kind) {
            return bad(offset, false, "checksum mismatch");
        }
        match decode(&payload) {
            Ok(rec) => {
                stats.records += 1;
                on_record(rec);
            }
            Err(e) => {
                tracing::warn!(
                    file = %path.display(),
                    offset,
                    bytes = len,
                    error = %e,
                    "skipping WAL record that has a valid checksum but does not decode"
                );
                stats.corrupt = true;
            }
        }
        offset += HEADER_LEN as u64 + u64::from(len);
    }
    Ok(SegmentEnd::Clean)
}

/// Whether every byte of `path` from `offset` on is zero.
fn rest_is_zero(path: &Path, offset: u64) -> Result<bool, WalError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let mut rd = BufReader::new(file);
    io::copy(&mut (&mut rd).take(offset), &mut io::sink()).map_err(io_err("read", path))?;
    let mut buf = [0u8; 8192];
    loop {
        let n = rd.read(&mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
    }
}

/// Cuts `path` to `len` bytes and makes that durable.
fn truncate_file(path: &Path, len: u64) -> Result<(), WalError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("open for truncation", path))?;
    f.set_len(len).map_err(io_err("truncate", path))?;
    f.sync_all().map_err(io_err("sync", path))
}

/// Renames `path` to `path.corrupt` (or `path.corrupt.N` if that exists).
fn set_aside(path: &Path) -> Result<PathBuf, WalError> {
    let base = format!("{}{CORRUPT_SUFFIX}", path.display());
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while target.exists() {
        target = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    fs::rename(path, &target).map_err(io_err("rename corrupt segment", path))?;
    Ok(target)
}

fn create_segment(dir: &Path, index: u64) -> Result<(File, PathBuf), WalError> {
    let path = dir.join(segment_name(index));
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err("create segment", &path))?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// An open write-ahead log; see the [module docs](self).
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    /// Index, file and size of the segment being written.
    seg_index: u64,
    seg_file: File,
    seg_path: PathBuf,
    seg_size: u64,
    /// Whether the current segment has data not yet `fdatasync`ed.
    dirty: bool,
    /// Sizes of the other segments on disk, by index.
    closed: BTreeMap<u64, u64>,
    /// Index and total size of the current checkpoint.
    checkpoint: Option<(u64, u64)>,
    /// Reused frame buffer.
    buf: Vec<u8>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("segment", &self.seg_index)
            .field("segment_bytes", &self.seg_size)
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Creates dir if missing, replays the newest checkpoint (dir `checkpoint.NNNNNNNN`) then all
    /// segments after it, calling `on_record` for each record in order, recovers from torn or
    /// corrupt data as the [module docs](self) describe, and opens a fresh segment for new
    /// writes. Fails only on I/O errors, never because of what the files contain.
    pub fn open(
        dir: &Path,
        opts: WalOptions,
        mut on_record: impl FnMut(Record),
    ) -> Result<(Wal, ReplayStats), WalError> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let mut stats = ReplayStats::default();
        let listing = list_dir(dir)?;
        for tmp in &listing.tmp_dirs {
            fs::remove_dir_all(tmp).map_err(io_err("remove unfinished checkpoint", tmp))?;
        }

        // The newest checkpoint wins; older ones are leftovers of an interrupted cleanup.
        let mut checkpoint = None;
        if let Some((&newest, older)) = listing.checkpoints.split_last() {
            for &i in older {
                let p = dir.join(checkpoint_name(i));
                fs::remove_dir_all(&p).map_err(io_err("remove old checkpoint", &p))?;
            }
            let cp_dir = dir.join(checkpoint_name(newest));
            let mut bytes = 0;
            for (path, len) in checkpoint_files(&cp_dir)? {
                bytes += len;
                if let SegmentEnd::Bad { offset, reason, .. } =
                    replay_file(&path, &mut stats, &mut on_record)?
                {
                    // A checkpoint is renamed into place only once complete, so this is real
                    // corruption; keep what was readable and go on with the segments.
                    tracing::warn!(
                        file = %path.display(),
                        offset,
                        dropped = len - offset,
                        reason,
                        "corrupt WAL checkpoint; ignoring the rest of it"
                    );
                    stats.corrupt = true;
                    stats.truncated_bytes += len - offset;
                    break;
                }
            }
            checkpoint = Some((newest, bytes));
        }

        let mut segments = listing.segments;
        if let Some((cp, _)) = checkpoint {
            // Segments covered by the checkpoint: leftovers of an interrupted cleanup.
            let covered: Vec<u64> = segments.range(..=cp).map(|(i, _)| *i).collect();
            for i in covered {
                let p = dir.join(segment_name(i));
                fs::remove_file(&p).map_err(io_err("remove checkpointed segment", &p))?;
                segments.remove(&i);
            }
        }

        let indexes: Vec<u64> = segments.keys().copied().collect();
        let mut prev: Option<u64> = checkpoint.map(|(cp, _)| cp);
        for (pos, &index) in indexes.iter().enumerate() {
            if let Some(p) = prev {
                if index != p + 1 {
                    tracing::warn!(
                        dir = %dir.display(),
                        after = p,
                        next = index,
                        "WAL segments are not contiguous; records may be missing"
                    );
                }
            }
            prev = Some(index);
            let path = dir.join(segment_name(index));
            stats.segments += 1;
            let SegmentEnd::Bad {
                offset,
                file_len,
                torn,
                reason,
            } = replay_file(&path, &mut stats, &mut on_record)?
            else {
                continue;
            };
            let dropped = file_len - offset;
            let last = pos + 1 == indexes.len();
            if last {
                tracing::warn!(
                    file = %path.display(),
                    offset,
                    dropped,
                    reason,
                    torn,
                    "truncating WAL segment at the last good record"
                );
                stats.corrupt |= !torn;
            } else {
                tracing::warn!(
                    file = %path.display(),
                    offset,
                    dropped,
                    reason,
                    later_segments = indexes.len() - pos - 1,
                    "corrupt WAL segment; truncating it and setting aside all later segments"
                );
                stats.corrupt = true;
                for &later in &indexes[pos + 1..] {
                    let p = dir.join(segment_name(later));
                    let to = set_aside(&p)?;
                    tracing::warn!(from = %p.display(), to = %to.display(), "set aside WAL segment");
                    stats.truncated_bytes += segments.remove(&later).unwrap_or(0);
                }
            }
            truncate_file(&path, offset)?;
            segments.insert(index, offset);
            stats.truncated_bytes += dropped;
            break;
        }

        let next = segments
            .keys()
            .next_back()
            .copied()
            .or(checkpoint.map(|(cp, _)| cp))
            .map_or(0, |i| i + 1);
        let (seg_file, seg_path) = create_segment(dir, next)?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            opts,
            seg_index: next,
            seg_file,
            seg_path,
            seg_size: 0,
            dirty: false,
            closed: segments,
            checkpoint,
            buf: Vec::new(),
        };
        Ok((wal, stats))
    }

    /// Frames all given encoded records and writes them with one `write_all` (group commit),
    /// cutting a new segment first when the current one would exceed the segment size. When
    /// this returns the data is in the kernel (and on disk with `fsync_on_log`).
    pub fn log(&mut self, recs: &[Vec<u8>]) -> Result<(), WalError> {
        if recs.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        for r in recs {
            frame(r, &mut self.buf)?;
        }
        let n = self.buf.len() as u64;
        if self.seg_size > 0 && self.seg_size.saturating_add(n) > self.opts.segment_size {
            self.cut_segment()?;
        }
        self.dirty = true;
        if let Err(e) = self.seg_file.write_all(&self.buf) {
            // Drop a partial write so the next batch does not land behind a torn frame.
            if let Err(e2) = self.seg_file.set_len(self.seg_size) {
                tracing::warn!(
                    file = %self.seg_path.display(),
                    error = %e2,
                    "cannot undo partial WAL write; replay will truncate it"
                );
            }
            return Err(WalError::Io {
                op: "write",
                path: self.seg_path.clone(),
                source: e,
            });
        }
        self.seg_size += n;
        if self.opts.fsync_on_log {
            self.sync()?;
        }
        Ok(())
    }

    /// `fdatasync`s the current segment.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.seg_file
            .sync_data()
            .map_err(io_err("sync", &self.seg_path))?;
        self.dirty = false;
        Ok(())
    }

    /// Syncs and closes the current segment and starts a new one; returns the index of the
    /// segment just closed.
    pub fn cut_segment(&mut self) -> Result<u64, WalError> {
        self.sync()?;
        let closed = self.seg_index;
        let (file, path) = create_segment(&self.dir, closed + 1)?;
        self.closed.insert(closed, self.seg_size);
        self.seg_file = file;
        self.seg_path = path;
        self.seg_index = closed + 1;
        self.seg_size = 0;
        Ok(closed)
    }

    /// Writes `checkpoint.<upto>` holding `records` (via a `.tmp` directory, synced and renamed
    /// atomically), then deletes segments `<= upto` and older checkpoints. `upto` must be a
    /// segment before the current one.
    pub fn checkpoint(
        &mut self,
        upto: u64,
        records: impl Iterator<Item = Record>,
    ) -> Result<(), WalError> {
        let invalid = |reason| WalError::InvalidCheckpoint {
            upto,
            current: self.seg_index,
            reason,
        };
        if upto >= self.seg_index {
            return Err(invalid("it would cover the segment being written"));
        }
        if let Some((cp, _)) = self.checkpoint {
            if upto < cp {
                return Err(invalid("a newer checkpoint exists"));
            }
        }
        let final_dir = self.dir.join(checkpoint_name(upto));
        let tmp_dir = self
            .dir
            .join(format!("{}{TMP_SUFFIX}", checkpoint_name(upto)));
        if tmp_dir.exists() {
            fs::remove_dir_all(&tmp_dir).map_err(io_err("remove", &tmp_dir))?;
        }
        fs::create_dir(&tmp_dir).map_err(io_err("create directory", &tmp_dir))?;
        let bytes = write_checkpoint_files(&tmp_dir, self.opts.segment_size, records)?;
        sync_dir(&tmp_dir)?;
        if final_dir.exists() {
            // Re-checkpointing the same segment: replace the old one.
            fs::remove_dir_all(&final_dir).map_err(io_err("remove", &final_dir))?;
        }
        fs::rename(&tmp_dir, &final_dir).map_err(io_err("rename checkpoint", &tmp_dir))?;
        sync_dir(&self.dir)?;
        let old = self.checkpoint.replace((upto, bytes));

        let covered: Vec<u64> = self.closed.range(..=upto).map(|(i, _)| *i).collect();
        for i in covered {
            let p = self.dir.join(segment_name(i));
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove checkpointed segment", &p)(e)),
            }
            self.closed.remove(&i);
        }
        if let Some((cp, _)) = old {
            if cp != upto {
                let p = self.dir.join(checkpoint_name(cp));
                fs::remove_dir_all(&p).map_err(io_err("remove old checkpoint", &p))?;
            }
        }
        Ok(())
    }

    /// Index of the segment being written.
    pub fn current_segment(&self) -> u64 {
        self.seg_index
    }

    /// Index of the oldest closed segment still on disk.
    pub fn oldest_closed_segment(&self) -> Option<u64> {
        self.closed.keys().next().copied()
    }

    /// Total bytes of segments and checkpoint on disk.
    pub fn size_bytes(&self) -> u64 {
        self.closed.values().sum::<u64>() + self.seg_size + self.checkpoint.map_or(0, |c| c.1)
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes `records` as segment files into `dir`, cutting at `segment_size`; returns the bytes
/// written. Every file is synced.
fn write_checkpoint_files(
    dir: &Path,
    segment_size: u64,
    records: impl Iterator<Item = Record>,
) -> Result<u64, WalError> {
    let mut index = 0;
    let mut path = dir.join(segment_name(index));
    let new_file = |path: &Path| -> Result<BufWriter<File>, WalError> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_err("create checkpoint segment", path))?;
        Ok(BufWriter::with_capacity(1 << 20, f))
    };
    let finish = |w: BufWriter<File>, path: &Path| -> Result<(), WalError> {
        let f = w
            .into_inner()
            .map_err(|e| io_err("write", path)(e.into_error()))?;
        f.sync_all().map_err(io_err("sync", path))
    };
    let mut w = new_file(&path)?;
    let mut size: u64 = 0;
    let mut total: u64 = 0;
    let mut payload = Vec::new();
    let mut framed = Vec::new();
    for rec in records {
        payload.clear();
        framed.clear();
        encode(&rec, &mut payload);
        frame(&payload, &mut framed)?;
        let n = framed.len() as u64;
        if size > 0 && size + n > segment_size {
            finish(w, &path)?;
            index += 1;
            path = dir.join(segment_name(index));
            w = new_file(&path)?;
            size = 0;
        }
        w.write_all(&framed).map_err(io_err("write", &path))?;
        size += n;
        total += n;
    }
    finish(w, &path)?;
    Ok(total)
}

impl Drop for Wal {
    fn drop(&mut self) {
        if self.dirty {
            if let Err(e) = self.sync() {
                tracing::warn!(error = %e, "WAL sync on close failed");
            }
        }
    }
}
