//! Chunk encodings (being written).
