//! Compressed in-memory chunk encodings for the head.
//!
//! Every active series keeps its recent samples in a chunk of one of three encodings: XOR
//! (Gorilla) for floats, byte-compatible with Prometheus, and dedicated encodings for integer
//! and float native histograms modelled on Prometheus' histogram chunks. Chunks are appendable in
//! place, can be reloaded from their bytes (and appended to again), and decoding never panics on
//! corrupt or truncated input: errors are reported as [`ChunkError`].

pub mod bstream;
pub mod histogram;
pub mod xor;

pub use histogram::{
    AppendError, Counts, CutReason, FloatCounts, FloatHistogramChunk, FloatHistogramIter,
    GenericHistogramChunk, GenericHistogramIter, HistogramChunk, HistogramIter, IntCounts,
};
pub use xor::{XorChunk, XorIter};

/// Number of samples after which the head cuts a new chunk (Prometheus' target).
pub const MAX_SAMPLES_PER_CHUNK: usize = 120;

/// Why encoded chunk bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The data ended before all announced samples were decoded.
    #[error("chunk data truncated")]
    Truncated,
    /// The data decodes to something impossible.
    #[error("corrupt chunk: {0}")]
    Corrupt(&'static str),
    /// The encoding byte names no encoding we know.
    #[error("unknown chunk encoding {0}")]
    UnknownEncoding(u8),
}

/// On-disk identifier of a chunk encoding (same numbers as Prometheus).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Float samples, XOR encoded.
    Xor = 1,
    /// Integer native histograms.
    Histogram = 2,
    /// Float native histograms.
    FloatHistogram = 3,
}

impl Encoding {
    /// Parses an encoding byte.
    pub fn from_u8(b: u8) -> Option<Encoding> {
        match b {
            1 => Some(Encoding::Xor),
            2 => Some(Encoding::Histogram),
            3 => Some(Encoding::FloatHistogram),
            _ => None,
        }
    }
}

/// A chunk of any encoding.
#[derive(Clone, Debug, PartialEq)]
pub enum Chunk {
    /// Float samples.
    Xor(XorChunk),
    /// Integer native histograms (boxed: their state is large, and every head series keeps
    /// several chunks).
    Histogram(Box<HistogramChunk>),
    /// Float native histograms.
    FloatHistogram(Box<FloatHistogramChunk>),
}

impl Chunk {
    /// The chunk's encoding.
    pub fn encoding(&self) -> Encoding {
        match self {
            Chunk::Xor(_) => Encoding::Xor,
            Chunk::Histogram(_) => Encoding::Histogram,
            Chunk::FloatHistogram(_) => Encoding::FloatHistogram,
        }
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Xor(c) => c.bytes(),
            Chunk::Histogram(c) => c.bytes(),
            Chunk::FloatHistogram(c) => c.bytes(),
        }
    }

    /// Number of samples stored.
    pub fn num_samples(&self) -> u16 {
        match self {
            Chunk::Xor(c) => c.num_samples(),
            Chunk::Histogram(c) => c.num_samples(),
            Chunk::FloatHistogram(c) => c.num_samples(),
        }
    }

    /// Timestamp of the first sample, if any.
    pub fn first_time(&self) -> Option<i64> {
        match self {
            Chunk::Xor(c) => c.first_time(),
            Chunk::Histogram(c) => c.first_time(),
            Chunk::FloatHistogram(c) => c.first_time(),
        }
    }

    /// Timestamp of the last sample, if any.
    pub fn last_time(&self) -> Option<i64> {
        match self {
            Chunk::Xor(c) => c.last_time(),
            Chunk::Histogram(c) => c.last_time(),
            Chunk::FloatHistogram(c) => c.last_time(),
        }
    }

    /// Decodes and validates a chunk given its encoding byte and bytes.
    pub fn from_encoded(encoding: u8, bytes: Vec<u8>) -> Result<Chunk, ChunkError> {
        match Encoding::from_u8(encoding) {
            Some(Encoding::Xor) => XorChunk::from_bytes(bytes).map(Chunk::Xor),
            Some(Encoding::Histogram) => {
                HistogramChunk::from_bytes(bytes).map(|c| Chunk::Histogram(Box::new(c)))
            }
            Some(Encoding::FloatHistogram) => {
                FloatHistogramChunk::from_bytes(bytes).map(|c| Chunk::FloatHistogram(Box::new(c)))
            }
            None => Err(ChunkError::UnknownEncoding(encoding)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_roundtrip() {
        for e in [Encoding::Xor, Encoding::Histogram, Encoding::FloatHistogram] {
            assert_eq!(Encoding::from_u8(e as u8), Some(e));
        }
        assert_eq!(Encoding::from_u8(0), None);
        assert_eq!(
            Chunk::from_encoded(9, vec![]),
            Err(ChunkError::UnknownEncoding(9))
        );
    }

    #[test]
    fn chunk_dispatch() {
        let mut x = XorChunk::new();
        x.append(1, 2.0);
        let c = Chunk::from_encoded(1, x.bytes().to_vec()).unwrap();
        assert_eq!(c.encoding(), Encoding::Xor);
        assert_eq!(c.num_samples(), 1);
        assert_eq!(c.bytes(), x.bytes());
        assert_eq!((c.first_time(), c.last_time()), (Some(1), Some(1)));
        let h = HistogramChunk::new();
        let c = Chunk::from_encoded(2, h.bytes().to_vec()).unwrap();
        assert_eq!(c.encoding(), Encoding::Histogram);
        let f = FloatHistogramChunk::new();
        let c = Chunk::from_encoded(3, f.bytes().to_vec()).unwrap();
        assert_eq!(c.encoding(), Encoding::FloatHistogram);
        assert_eq!(c.num_samples(), 0);
    }
}
