//! Tests of the WAL: record round trips, replay, recovery from torn and corrupt data.
