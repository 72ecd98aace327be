//! Chunk segment files of a block (`chunks/000001`, `chunks/000002`, …).
//!
//! A segment starts with an 8-byte header (magic "SXCK", version, padding) followed by chunks,
//! each `uvarint len | encoding u8 | data (len bytes) | CRC32C(encoding, data) u32 BE`. A chunk is
//! addressed by `segment_index << 32 | byte offset`. Segments are cut before they would exceed
//! [`MAX_SEGMENT_SIZE`]. The reader maps segments and checks bounds and the CRC of every chunk it
//! hands out, so truncated or damaged files give [`BlockError::Corrupt`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::floatenc::{put_uvarint, ByteReader};
use super::BlockError;

/// Segment files are cut before growing past this size.
pub const MAX_SEGMENT_SIZE: u64 = 512 << 20;

const MAGIC: u32 = 0x5358_434b;
const VERSION: u8 = 1;
const HEADER_LEN: u64 = 8;

/// Name of the `i`-th (0-based) segment file.
fn segment_name(i: usize) -> String {
    format!("{:06}", i + 1)
}

/// Appends chunks to segment files in a directory.
pub(crate) struct ChunkWriter {
    dir: PathBuf,
    files: Vec<File>,
    cur: Option<(BufWriter<File>, PathBuf)>,
    size: u64,
}

impl ChunkWriter {
    /// A writer creating segments in `dir` (which must exist).
    pub fn new(dir: &Path) -> Self {
        ChunkWriter {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            cur: None,
            size: 0,
        }
    }

    fn cut(&mut self) -> Result<(), BlockError> {
        self.flush_current()?;
        let path = self.dir.join(segment_name(self.files.len()));
        let f = File::create(&path).map_err(|e| BlockError::io("create", &path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut header = MAGIC.to_be_bytes().to_vec();
        header.extend_from_slice(&[VERSION, 0, 0, 0]);
        w.write_all(&header)
            .map_err(|e| BlockError::io("write", &path, e))?;
        self.cur = Some((w, path));
        self.size = HEADER_LEN;
        Ok(())
    }

    fn flush_current(&mut self) -> Result<(), BlockError> {
        if let Some((w, path)) = self.cur.take() {
            let f = w
                .into_inner()
                .map_err(|e| BlockError::io("write", &path, e.into_error()))?;
            self.files.push(f);
        }
        Ok(())
    }

    /// Writes one chunk and returns its reference.
    pub fn write(&mut self, encoding: u8, data: &[u8]) -> Result<u64, BlockError> {
        let mut head = Vec::with_capacity(11);
        put_uvarint(&mut head, data.len() as u64);
        head.push(encoding);
        let total = head.len() as u64 + data.len() as u64 + 4;
        if HEADER_LEN + total > MAX_SEGMENT_SIZE {
            return Err(BlockError::Invalid(format!(
                "chunk of {} bytes does not fit a segment",
                data.len()
            )));
        }
        if self.cur.is_none() || self.size + total > MAX_SEGMENT_SIZE {
            self.cut()?;
        }
        let seg = self.files.len() as u64;
        let off = self.size;
        let mut crc = crc32c::crc32c(&[encoding]);
        crc = crc32c::crc32c_append(crc, data);
        if let Some((w, path)) = self.cur.as_mut() {
            w.write_all(&head)
                .and_then(|_| w.write_all(data))
                .and_then(|_| w.write_all(&crc.to_be_bytes()))
                .map_err(|e| BlockError::io("write", path, e))?;
        }
        self.size += total;
        Ok(seg << 32 | off)
    }

    /// Flushes and fsyncs every segment.
    pub fn finish(mut self) -> Result<(), BlockError> {
        self.flush_current()?;
        for (i, f) in self.files.iter().enumerate() {
            f.sync_all()
                .map_err(|e| BlockError::io("fsync", &self.dir.join(segment_name(i)), e))?;
        }
        Ok(())
    }
}

/// Memory-mapped segment files of a block.
pub(crate) struct ChunkReader {
    dir: PathBuf,
    segments: Vec<Mmap>,
    size: u64,
}

impl ChunkReader {
    /// Maps every segment in `dir`; segment names must be consecutive from `000001`.
    pub fn open(dir: &Path) -> Result<ChunkReader, BlockError> {
        let mut names = Vec::new();
        let rd = std::fs::read_dir(dir).map_err(|e| BlockError::io("read dir", dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| BlockError::io("read dir", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 6 && name.bytes().all(|b| b.is_ascii_digit()) {
                names.push(name);
            }
        }
        names.sort();
        let mut segments = Vec::with_capacity(names.len());
        let mut size = 0;
        for (i, name) in names.iter().enumerate() {
            let path = dir.join(name);
            if *name != segment_name(i) {
                return Err(BlockError::Corrupt {
                    path,
                    what: format!("expected segment {}", segment_name(i)),
                });
            }
            let f = File::open(&path).map_err(|e| BlockError::io("open", &path, e))?;
            // SAFETY: block files are immutable once written; nothing truncates them while mapped.
            let m = unsafe { Mmap::map(&f) }.map_err(|e| BlockError::io("mmap", &path, e))?;
            if m.len() < HEADER_LEN as usize || m[..4] != MAGIC.to_be_bytes() || m[4] != VERSION {
                return Err(BlockError::Corrupt {
                    path,
                    what: "bad chunk segment header".into(),
                });
            }
            size += m.len() as u64;
            segments.push(m);
        }
        Ok(ChunkReader {
            dir: dir.to_path_buf(),
            segments,
            size,
        })
    }

    /// Total bytes of all segments.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The encoding and data of the chunk at `chunk_ref`, after checking its CRC.
    pub fn chunk(&self, chunk_ref: u64) -> Result<(u8, &[u8]), BlockError> {
        let seg = (chunk_ref >> 32) as usize;
        let off = (chunk_ref & 0xffff_ffff) as usize;
        let path = || self.dir.join(segment_name(seg));
        let corrupt = |what: String| BlockError::Corrupt { path: path(), what };
        let m = self
            .segments
            .get(seg)
            .ok_or_else(|| corrupt(format!("chunk reference {chunk_ref:#x}: no such segment")))?;
        let data = m
            .get(off..)
            .filter(|_| off >= HEADER_LEN as usize)
            .ok_or_else(|| corrupt(format!("chunk offset {off} beyond end of segment")))?;
        let mut r = ByteReader::new(data);
        let res = (|| {
            let len = r.uvarint()?;
            let encoding = r.u8()?;
            let body = r.bytes(usize::try_from(len).unwrap_or(usize::MAX))?;
            let crc = r.bytes(4)?;
            Ok::<_, crate::chunkenc::ChunkError>((encoding, body, [crc[0], crc[1], crc[2], crc[3]]))
        })();
        let (encoding, body, crc) = res.map_err(|e| corrupt(format!("chunk at {off}: {e}")))?;
        let want = crc32c::crc32c_append(crc32c::crc32c(&[encoding]), body);
        if u32::from_be_bytes(crc) != want {
            return Err(corrupt(format!("chunk at {off}: checksum mismatch")));
        }
        Ok((encoding, body))
    }
}
