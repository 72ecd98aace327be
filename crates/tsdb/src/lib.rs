//! Sextant's embedded time-series database.
//!
//! Samples enter through an [`Appender`](head::Appender): they are checked against the head
//! (duplicates, out-of-order window), logged to the write-ahead log ([`wal`]) and only then
//! applied to in-memory series whose samples live in compressed chunks ([`chunkenc`]). The head
//! is periodically cut into immutable on-disk [`block`]s, which are compacted and dropped by
//! retention. Exemplars live in a bounded ring buffer ([`exemplar`]), logged to the same WAL.
//! Readers go through the [`Querier`](querier::Querier) seam, which merges head and
//! blocks.

pub mod block;
pub mod chunkenc;
pub mod db;
pub mod downsample;
pub mod exemplar;
pub mod head;
mod postings;
pub mod querier;
pub mod tombstones;
pub mod wal;

#[cfg(test)]
mod db_tests;
#[cfg(test)]
mod fault_tests;
