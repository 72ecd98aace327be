//! The block index: which series a block holds, where their chunks are, and postings lists to
//! find series by label quickly. The layout is described in the [block module](super) docs.
//!
//! The writer builds the whole file in memory (indexes are small next to chunks); the reader works
//! on a memory map, checks every section's CRC32C once at open, keeps the symbol table and the
//! postings offset table in memory, and decodes series entries and postings lists on demand with
//! bounds-checked reads, so a corrupt file yields [`BlockError::Corrupt`], never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use sextant_model::Labels;

use super::floatenc::{put_uvarint, put_varint, ByteReader};
use super::BlockError;

/// Magic number at the start of an index file ("SXIX").
const MAGIC: u32 = 0x5358_4958;
const VERSION: u8 = 1;
const HEADER_LEN: usize = 8;
/// Four section offsets, the all-series postings offset, and a CRC32C.
const TOC_LEN: usize = 5 * 8 + 4;

/// Where a chunk of a series lives and what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkMeta {
    pub encoding: u8,
    pub min_t: i64,
    pub max_t: i64,
    /// `segment_index << 32 | offset` in the chunks directory.
    pub chunk_ref: u64,
}

/// Builds an index file from series added in label order.
pub(crate) struct IndexWriter {
    symbols: Vec<String>,
    series: Vec<u8>,
    postings: BTreeMap<(u32, u32), Vec<u64>>,
    all: Vec<u64>,
    last: Option<Labels>,
}

impl IndexWriter {
    /// A writer whose symbol table holds `symbols` (a superset of every label name and value
    /// that will be added).
    pub fn new(symbols: BTreeSet<String>) -> Self {
        IndexWriter {
            symbols: symbols.into_iter().collect(),
            series: Vec::new(),
            postings: BTreeMap::new(),
            all: Vec::new(),
            last: None,
        }
    }

    fn sym(&self, s: &str) -> Result<u32, BlockError> {
        self.symbols
            .binary_search_by(|x| x.as_str().cmp(s))
            .map(|i| i as u32)
            .map_err(|_| BlockError::Invalid(format!("label string {s:?} missing from symbols")))
    }

    /// Adds a series; series must come sorted by labels, without duplicates.
    pub fn add_series(&mut self, labels: &Labels, chunks: &[ChunkMeta]) -> Result<(), BlockError> {
        if let Some(last) = &self.last {
            if last >= labels {
                return Err(BlockError::Invalid(format!(
                    "series {labels} is a duplicate or out of order (after {last})"
                )));
            }
        }
        let off = self.series.len() as u64;
        let mut entry = Vec::with_capacity(16 + labels.len() * 4 + chunks.len() * 12);
        put_uvarint(&mut entry, labels.len() as u64);
        for l in labels.iter() {
            let (n, v) = (self.sym(&l.name)?, self.sym(&l.value)?);
            put_uvarint(&mut entry, u64::from(n));
            put_uvarint(&mut entry, u64::from(v));
            self.postings.entry((n, v)).or_default().push(off);
        }
        put_uvarint(&mut entry, chunks.len() as u64);
        let mut prev_max = 0i64;
        for c in chunks {
            entry.push(c.encoding);
            put_varint(&mut entry, c.min_t.wrapping_sub(prev_max));
            put_varint(&mut entry, c.max_t.wrapping_sub(c.min_t));
            put_uvarint(&mut entry, c.chunk_ref);
            prev_max = c.max_t;
        }
        put_uvarint(&mut self.series, entry.len() as u64);
        self.series.extend_from_slice(&entry);
        self.all.push(off);
        self.last = Some(labels.clone());
        Ok(())
    }

    /// The complete index file; fails when a section outgrows its 32-bit length field.
    pub fn finish(self) -> Result<Vec<u8>, BlockError> {
        let mut out = Vec::with_capacity(self.series.len() * 2 + 1024);
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&[VERSION, 0, 0, 0]);

        let mut syms = Vec::new();
        put_uvarint(&mut syms, self.symbols.len() as u64);
        for s in &self.symbols {
            put_uvarint(&mut syms, s.len() as u64);
            syms.extend_from_slice(s.as_bytes());
        }

        let mut postings = Vec::new();
        let write_list = |buf: &mut Vec<u8>, list: &[u64]| -> u64 {
            let off = buf.len() as u64;
            put_uvarint(buf, list.len() as u64);
            let mut prev = 0;
            for &r in list {
                put_uvarint(buf, r - prev);
                prev = r;
            }
            off
        };
        let all_off = write_list(&mut postings, &self.all);
        let mut table = Vec::new();
        put_uvarint(&mut table, self.postings.len() as u64);
        for (&(n, v), list) in &self.postings {
            let off = write_list(&mut postings, list);
            put_uvarint(&mut table, u64::from(n));
            put_uvarint(&mut table, u64::from(v));
            put_uvarint(&mut table, off);
        }

        let mut toc = Vec::with_capacity(TOC_LEN);
        for section in [&syms, &self.series, &postings, &table] {
            if u32::try_from(section.len()).is_err() {
                return Err(BlockError::Invalid(format!(
                    "index section of {} bytes exceeds 4 GiB",
                    section.len()
                )));
            }
            toc.extend_from_slice(&(out.len() as u64).to_be_bytes());
            write_section(&mut out, section);
        }
        toc.extend_from_slice(&all_off.to_be_bytes());
        let crc = crc32c::crc32c(&toc);
        toc.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&toc);
        Ok(out)
    }
}

fn write_section(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
}

/// One entry of the postings offset table.
#[derive(Debug, Clone, Copy)]
struct PostingsEntry {
    name: u32,
    value: u32,
    offset: u64,
}

/// A memory-mapped, checksum-verified index file.
pub(crate) struct IndexReader {
    path: PathBuf,
    mmap: Mmap,
    symbols: Vec<String>,
    series: (usize, usize),
    postings: (usize, usize),
    table: Vec<PostingsEntry>,
    all_offset: u64,
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

impl IndexReader {
    /// Maps and verifies the index file at `path`.
    pub fn open(path: &Path) -> Result<IndexReader, BlockError> {
        let file = std::fs::File::open(path).map_err(|e| BlockError::io("open", path, e))?;
        // SAFETY: block files are immutable once written; nothing truncates them while mapped.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| BlockError::io("mmap", path, e))?;
        let mut r = IndexReader {
            path: path.to_path_buf(),
            mmap,
            symbols: Vec::new(),
            series: (0, 0),
            postings: (0, 0),
            table: Vec::new(),
            all_offset: 0,
        };
        r.parse()?;
        Ok(r)
    }

    fn corrupt(&self, what: impl Into<String>) -> BlockError {
        BlockError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    fn parse(&mut self) -> Result<(), BlockError> {
        let b: &[u8] = &self.mmap;
        if b.len() < HEADER_LEN + TOC_LEN {
            return Err(self.corrupt(format!("index too short ({} bytes)", b.len())));
        }
        if be_u32(b, 0) != Some(MAGIC) {
            return Err(self.corrupt("bad index magic"));
        }
        if b[4] != VERSION {
            return Err(self.corrupt(format!("unsupported index version {}", b[4])));
        }
        if b[5..HEADER_LEN] != [0, 0, 0] {
            return Err(self.corrupt("nonzero index header padding"));
        }
        let toc_at = b.len() - TOC_LEN;
        let toc = &b[toc_at..];
        if be_u32(toc, TOC_LEN - 4) != Some(crc32c::crc32c(&toc[..TOC_LEN - 4])) {
            return Err(self.corrupt("index table of contents checksum mismatch"));
        }
        let mut ranges = [(0usize, 0usize); 4];
        for (i, range) in ranges.iter_mut().enumerate() {
            let off = be_u64(toc, i * 8).unwrap_or(u64::MAX);
            *range = self.section(off, toc_at, i)?;
        }
        self.all_offset = be_u64(toc, 32).unwrap_or(u64::MAX);
        self.series = ranges[1];
        self.postings = ranges[2];

        let b: &[u8] = &self.mmap;
        let mut r = ByteReader::new(&b[ranges[0].0..ranges[0].1]);
        let n = r
            .uvarint()
            .map_err(|e| self.corrupt(format!("symbols: {e}")))?;
        if n > r.remaining() as u64 {
            return Err(self.corrupt("symbol count exceeds section"));
        }
        let mut symbols = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let s = r
                .uvarint()
                .and_then(|len| r.bytes(usize::try_from(len).unwrap_or(usize::MAX)))
                .map_err(|e| self.corrupt(format!("symbols: {e}")))?;
            let s = std::str::from_utf8(s).map_err(|_| self.corrupt("symbol is not UTF-8"))?;
            symbols.push(s.to_string());
        }

        let mut r = ByteReader::new(&b[ranges[3].0..ranges[3].1]);
        let mut table = Vec::new();
        let res: Result<(), crate::chunkenc::ChunkError> = (|| {
            let n = r.uvarint()?;
            for _ in 0..n.min(r.remaining() as u64) {
                let name = r.uvarint()?;
                let value = r.uvarint()?;
                let offset = r.uvarint()?;
                table.push((name, value, offset));
            }
            Ok(())
        })();
        res.map_err(|e| self.corrupt(format!("postings table: {e}")))?;
        let mut entries = Vec::with_capacity(table.len());
        for (name, value, offset) in table {
            if name >= symbols.len() as u64 || value >= symbols.len() as u64 {
                return Err(self.corrupt("postings table references unknown symbol"));
            }
            entries.push(PostingsEntry {
                name: name as u32,
                value: value as u32,
                offset,
            });
        }
        self.symbols = symbols;
        self.table = entries;
        Ok(())
    }

    /// Validates the section starting at `off` and returns its payload range.
    fn section(&self, off: u64, limit: usize, i: usize) -> Result<(usize, usize), BlockError> {
        let b: &[u8] = &self.mmap;
        let off = usize::try_from(off).unwrap_or(usize::MAX);
        let len = be_u32(b, off)
            .filter(|_| off >= HEADER_LEN)
            .ok_or_else(|| self.corrupt(format!("section {i} offset out of range")))?;
        let start = off + 4;
        let end = start
            .checked_add(len as usize)
            .filter(|&e| e.checked_add(4).is_some_and(|x| x <= limit))
            .ok_or_else(|| self.corrupt(format!("section {i} length out of range")))?;
        if be_u32(b, end) != Some(crc32c::crc32c(&b[start..end])) {
            return Err(self.corrupt(format!("section {i} checksum mismatch")));
        }
        Ok((start, end))
    }

    fn symbol(&self, id: u64) -> Result<&str, BlockError> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.symbols.get(i))
            .map(String::as_str)
            .ok_or_else(|| self.corrupt(format!("unknown symbol {id}")))
    }

    fn symbol_id(&self, s: &str) -> Option<u32> {
        self.symbols
            .binary_search_by(|x| x.as_str().cmp(s))
            .ok()
            .map(|i| i as u32)
    }

    /// Every symbol (label names and values), sorted.
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// Decodes the postings list at `offset` in the postings section.
    pub fn postings_at(&self, offset: u64) -> Result<Vec<u64>, BlockError> {
        let sec = &self.mmap[self.postings.0..self.postings.1];
        let start = usize::try_from(offset)
            .ok()
            .filter(|&o| o <= sec.len())
            .ok_or_else(|| self.corrupt("postings offset out of range"))?;
        let mut r = ByteReader::new(&sec[start..]);
        let res: Result<Vec<u64>, crate::chunkenc::ChunkError> = (|| {
            let n = r.uvarint()?;
            let mut out = Vec::with_capacity(n.min(r.remaining() as u64) as usize);
            let mut prev = 0u64;
            for _ in 0..n {
                prev = prev.wrapping_add(r.uvarint()?);
                out.push(prev);
            }
            Ok(out)
        })();
        res.map_err(|e| self.corrupt(format!("postings list: {e}")))
    }

    /// References of every series, in label order.
    pub fn all_postings(&self) -> Result<Vec<u64>, BlockError> {
        self.postings_at(self.all_offset)
    }

    /// The table entries for label `name`.
    fn entries_of(&self, name: &str) -> &[PostingsEntry] {
        let Some(id) = self.symbol_id(name) else {
            return &[];
        };
        let lo = self.table.partition_point(|e| e.name < id);
        let hi = self.table.partition_point(|e| e.name <= id);
        self.table.get(lo..hi).unwrap_or(&[])
    }

    /// The values of label `name` with their postings offsets.
    pub fn values_of(&self, name: &str) -> Result<Vec<(&str, u64)>, BlockError> {
        self.entries_of(name)
            .iter()
            .map(|e| Ok((self.symbol(u64::from(e.value))?, e.offset)))
            .collect()
    }

    /// Postings of `name="value"` (empty when absent).
    pub fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>, BlockError> {
        let Some(v) = self.symbol_id(value) else {
            return Ok(Vec::new());
        };
        let entries = self.entries_of(name);
        match entries.binary_search_by_key(&v, |e| e.value) {
            Ok(i) => self.postings_at(entries[i].offset),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// Every label name, sorted.
    pub fn label_names(&self) -> Result<Vec<String>, BlockError> {
        let mut out: Vec<String> = Vec::new();
        let mut last = None;
        for e in &self.table {
            if last != Some(e.name) {
                out.push(self.symbol(u64::from(e.name))?.to_string());
                last = Some(e.name);
            }
        }
        Ok(out)
    }

    /// Decodes the series entry at `offset`: its labels and chunk metas.
    pub fn series(&self, offset: u64) -> Result<(Labels, Vec<ChunkMeta>), BlockError> {
        let sec = &self.mmap[self.series.0..self.series.1];
        let start = usize::try_from(offset)
            .ok()
            .filter(|&o| o <= sec.len())
            .ok_or_else(|| self.corrupt(format!("series reference {offset} out of range")))?;
        let mut r = ByteReader::new(&sec[start..]);
        let res: Result<_, crate::chunkenc::ChunkError> = (|| {
            let len = r.uvarint()?;
            let entry = r.bytes(usize::try_from(len).unwrap_or(usize::MAX))?;
            let mut r = ByteReader::new(entry);
            let nl = r.uvarint()?;
            let mut pairs = Vec::with_capacity(nl.min(64) as usize);
            for _ in 0..nl {
                pairs.push((r.uvarint()?, r.uvarint()?));
            }
            let nc = r.uvarint()?;
            let mut chunks = Vec::with_capacity(nc.min(r.remaining() as u64) as usize);
            let mut prev_max = 0i64;
            for _ in 0..nc {
                let encoding = r.u8()?;
                let min_t = prev_max.wrapping_add(r.varint()?);
                let max_t = min_t.wrapping_add(r.varint()?);
                let chunk_ref = r.uvarint()?;
                chunks.push(ChunkMeta {
                    encoding,
                    min_t,
                    max_t,
                    chunk_ref,
                });
                prev_max = max_t;
            }
            Ok((pairs, chunks))
        })();
        let (pairs, chunks) = res.map_err(|e| self.corrupt(format!("series {offset}: {e}")))?;
        let mut labels = Vec::with_capacity(pairs.len());
        for (n, v) in pairs {
            labels.push((self.symbol(n)?, self.symbol(v)?));
        }
        Ok((Labels::from_pairs(labels), chunks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_roundtrip() {
        let a = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let b = Labels::from_pairs([("__name__", "up"), ("job", "b")]);
        let syms: BTreeSet<String> = ["__name__", "up", "job", "a", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut w = IndexWriter::new(syms);
        let c = ChunkMeta {
            encoding: 0x81,
            min_t: -5,
            max_t: 100,
            chunk_ref: 8,
        };
        w.add_series(&a, &[c]).unwrap();
        w.add_series(&b, &[c, c]).unwrap();
        assert!(w.add_series(&a, &[]).is_err());
        let bytes = w.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index");
        std::fs::write(&p, &bytes).unwrap();
        let r = IndexReader::open(&p).unwrap();
        let all = r.all_postings().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(r.series(all[0]).unwrap(), (a, vec![c]));
        assert_eq!(r.series(all[1]).unwrap().1, vec![c, c]);
        assert_eq!(r.postings("job", "b").unwrap(), vec![all[1]]);
        assert_eq!(r.postings("job", "zzz").unwrap(), Vec::<u64>::new());
        assert_eq!(r.label_names().unwrap(), vec!["__name__", "job"]);
        let vals: Vec<&str> = r.values_of("job").unwrap().iter().map(|v| v.0).collect();
        assert_eq!(vals, vec!["a", "b"]);
        assert!(r.series(u64::MAX).is_err());
    }
}
