//! Reading a live WAL from the outside, the way Prometheus' `tsdb/wlog/watcher.go` does for
//! remote write: list segments and the checkpoint, and read the complete frames of a segment
//! from a byte offset while the head is still appending to it. A frame that runs past the end of
//! the file is a write in progress (or a torn tail), so reading stops before it and the caller
//! retries later from the returned offset; nothing here modifies the WAL.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{
    checkpoint_files, decode, io_err, list_dir, record, segment_name, Record, WalError, HEADER_LEN,
};

/// The newest checkpoint: its index `N` (it stands in for segments `<= N`) and its files.
pub type CheckpointFiles = (u64, Vec<PathBuf>);

/// The segment indexes of a WAL directory, ascending, and the newest checkpoint.
pub fn listing(dir: &Path) -> Result<(Vec<u64>, Option<CheckpointFiles>), WalError> {
    let l = list_dir(dir)?;
    let segs = l.segments.keys().copied().collect();
    let cp = match l.checkpoints.last() {
        Some(&i) => {
            let files = checkpoint_files(&dir.join(super::checkpoint_name(i)))?
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            Some((i, files))
        }
        None => None,
    };
    Ok((segs, cp))
}

/// The path of segment `index` in `dir`.
pub fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(segment_name(index))
}

/// Why [`read_frames`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// At the end of the complete frames (more may be appended later).
    Tail,
    /// `max_bytes` reached; call again from the returned offset.
    Limit,
    /// A complete frame failed its checksum or kind check: the rest of this segment is
    /// unreadable.
    Corrupt,
}

/// Reads complete frames of `path` starting at byte `offset`, handing each decoded record and
/// the offset just after its frame to `on_record`, until about `max_bytes` were read. Returns
/// the offset after the last complete frame and why reading stopped. Records with a valid
/// checksum that do not decode are skipped (with a warning), like replay does.
pub fn read_frames(
    path: &Path,
    offset: u64,
    max_bytes: u64,
    on_record: &mut dyn FnMut(Record, u64),
) -> Result<(u64, ReadEnd), WalError> {
    let mut file = File::open(path).map_err(io_err("open", path))?;
    let file_len = file.metadata().map_err(io_err("stat", path))?.len();
    if offset >= file_len {
        return Ok((offset, ReadEnd::Tail));
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(io_err("seek", path))?;
    let mut rd = BufReader::with_capacity(1 << 20, file);
    let mut at = offset;
    let mut payload = Vec::new();
    while at < file_len {
        if at - offset >= max_bytes {
            return Ok((at, ReadEnd::Limit));
        }
        if file_len - at < HEADER_LEN as u64 {
            return Ok((at, ReadEnd::Tail));
        }
        let mut head = [0u8; HEADER_LEN];
        match rd.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok((at, ReadEnd::Tail)),
            Err(e) => return Err(io_err("read", path)(e)),
        }
        let kind = head[0];
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        let want = u32::from_le_bytes([head[5], head[6], head[7], head[8]]);
        if u64::from(len) > file_len - at - HEADER_LEN as u64 {
            // Being written right now (or a torn tail that replay will cut off).
            return Ok((at, ReadEnd::Tail));
        }
        if !record::is_known_type(kind) {
            return Ok((at, ReadEnd::Corrupt));
        }
        payload.resize(len as usize, 0);
        match rd.read_exact(&mut payload) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok((at, ReadEnd::Tail)),
            Err(e) => return Err(io_err("read", path)(e)),
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&head[..5]), &payload);
        if crc != want || payload.first() != Some(&kind) {
            return Ok((at, ReadEnd::Corrupt));
        }
        let next = at + HEADER_LEN as u64 + u64::from(len);
        match decode(&payload) {
            Ok(rec) => on_record(rec, next),
            Err(e) => tracing::warn!(
                file = %path.display(),
                offset = at,
                error = %e,
                "WAL reader: skipping a record that does not decode"
            ),
        }
        at = next;
    }
    Ok((at, ReadEnd::Tail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{encode, RefSample, RefSeries, Wal, WalOptions};
    use sextant_model::Labels;

    fn enc(r: &Record) -> Vec<u8> {
        let mut b = Vec::new();
        encode(r, &mut b);
        b
    }

    #[test]
    fn reads_complete_frames_and_resumes_from_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), WalOptions::default(), |_| {}).unwrap();
        let series = Record::Series(vec![RefSeries {
            r: 1,
            labels: Labels::from_pairs([("__name__", "m")]),
        }]);
        wal.log(&[enc(&series)]).unwrap();
        let s = |t| {
            Record::Samples(vec![RefSample {
                r: 1,
                t,
                v: t as f64,
            }])
        };
        wal.log(&[enc(&s(1)), enc(&s(2))]).unwrap();
        let (segs, cp) = listing(dir.path()).unwrap();
        assert_eq!(segs, vec![0]);
        assert!(cp.is_none());
        let p = segment_path(dir.path(), 0);
        let mut got = Vec::new();
        let (off, end) = read_frames(&p, 0, u64::MAX, &mut |r, _| got.push(r)).unwrap();
        assert_eq!(end, ReadEnd::Tail);
        assert_eq!(got.len(), 3);
        wal.log(&[enc(&s(3))]).unwrap();
        // A half-written frame at the end is not read.
        let full = std::fs::metadata(&p).unwrap().len();
        let mut got2 = Vec::new();
        let (off2, _) = read_frames(&p, off, u64::MAX, &mut |r, _| got2.push(r)).unwrap();
        assert_eq!(off2, full);
        assert_eq!(got2, vec![s(3)]);
        let f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        use std::io::Write;
        (&f).write_all(&enc(&s(4))[..3]).unwrap();
        let (off3, end3) =
            read_frames(&p, off2, u64::MAX, &mut |_, _| panic!("no record")).unwrap();
        assert_eq!((off3, end3), (off2, ReadEnd::Tail));
    }
}
