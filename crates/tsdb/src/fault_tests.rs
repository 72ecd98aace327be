//! Fault tests at the storage level: corrupted blocks are quarantined and the rest keeps
//! serving; the clock the TSDB follows is the samples' own time (documented in
//! docs/robustness.md). Disk-full tests need a small tmpfs and live in
//! crates/sextant/tests/faults.rs.

use std::sync::atomic::Ordering;

use sextant_model::{Labels, Matcher};

use crate::db::{Db, DbOptions};
use crate::head::HeadOptions;
use crate::querier::Querier;

const RANGE: i64 = 60_000;

fn opts() -> DbOptions {
    DbOptions {
        head: HeadOptions {
            chunk_range: RANGE,
            ..HeadOptions::default()
        },
        retention: 0,
        retention_size: 0,
        wal_segment_size: 1 << 20,
        wal_fsync: false,
        max_exemplars: 0,
    }
}

fn lbl(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "f".to_string()), ("i", i.to_string())])
}

fn write(db: &Db, from: i64, to: i64) {
    let mut t = from;
    while t < to {
        let mut app = db.appender();
        for i in 0..2 {
            app.append(&lbl(i), t, t as f64).expect("append");
        }
        let st = app.commit().expect("commit");
        assert_eq!(st.rejected, 0, "{:?}", st.first_error);
        t += 1_000;
    }
}

fn samples(db: &Db) -> usize {
    db.querier()
        .select(&[Matcher::equal("__name__", "f")], i64::MIN, i64::MAX)
        .expect("select")
        .iter()
        .map(|s| s.floats.len())
        .sum()
}

/// Writes enough data to cut several blocks, returns the data dir and the block dirs on disk.
fn db_with_blocks() -> (tempfile::TempDir, Vec<std::path::PathBuf>) {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Db::open(dir.path(), opts()).expect("open");
        write(&db, 0, 4 * RANGE);
        db.maintain();
        assert!(db.blocks().len() >= 2, "blocks: {}", db.blocks().len());
        db.close().expect("close");
    }
    let mut blocks: Vec<_> = std::fs::read_dir(dir.path().join("blocks"))
        .expect("blocks dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    blocks.sort();
    (dir, blocks)
}

fn check_quarantine(corrupt: impl Fn(&std::path::Path)) {
    let (dir, blocks) = db_with_blocks();
    let before = {
        let db = Db::open(dir.path(), opts()).expect("reopen");
        samples(&db)
    };
    let victim = &blocks[0];
    let victim_samples = {
        let b = crate::block::Block::open(victim).expect("victim opens before corruption");
        b.meta().stats.num_samples as usize
    };
    corrupt(victim);
    // Startup does not fail; the block is moved aside and counted; the rest serves.
    let db = Db::open(dir.path(), opts()).expect("open with a corrupted block");
    assert_eq!(db.metrics().blocks_quarantined.load(Ordering::Relaxed), 1);
    let name = victim.file_name().expect("name").to_string_lossy().to_string();
    assert!(!victim.exists(), "corrupted block left in place");
    assert!(
        dir.path().join("blocks").join(format!("{name}.corrupted")).is_dir(),
        "corrupted block moved aside"
    );
    assert_eq!(db.blocks().len(), blocks.len() - 1);
    assert_eq!(samples(&db), before - victim_samples);
    // Ingest keeps working and the next start does not trip over the quarantined dir.
    write(&db, 4 * RANGE, 4 * RANGE + 5_000);
    db.close().expect("close");
    let db = Db::open(dir.path(), opts()).expect("third open");
    assert_eq!(db.metrics().blocks_quarantined.load(Ordering::Relaxed), 0);
    assert_eq!(samples(&db), before - victim_samples + 10);
}

#[test]
fn block_with_a_flipped_index_byte_is_quarantined_and_the_rest_serves() {
    check_quarantine(|b| {
        let p = b.join("index");
        let mut raw = std::fs::read(&p).expect("index");
        let mid = raw.len() / 2;
        raw[mid] ^= 0xff;
        std::fs::write(&p, raw).expect("write");
    });
}

#[test]
fn block_with_a_truncated_index_is_quarantined() {
    check_quarantine(|b| {
        let p = b.join("index");
        let raw = std::fs::read(&p).expect("index");
        std::fs::write(&p, &raw[..raw.len() / 3]).expect("write");
    });
}

#[test]
fn block_with_a_garbled_chunk_segment_header_or_meta_is_quarantined() {
    check_quarantine(|b| {
        std::fs::write(b.join("chunks").join("000001"), b"junk").expect("write");
    });
    check_quarantine(|b| {
        std::fs::write(b.join("meta.json"), b"{not json").expect("write");
    });
    check_quarantine(|b| {
        std::fs::remove_file(b.join("index")).expect("rm");
    });
}

#[test]
fn samples_from_the_past_are_refused_per_sample_and_the_rest_of_the_batch_lands() {
    // The TSDB's clock is the newest sample time, not the wall clock: a sample older than half
    // a block range behind it, or inside a range already cut into a block, is out of bounds.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), opts()).expect("open");
    write(&db, 10 * RANGE, 10 * RANGE + 5_000);
    let mut app = db.appender();
    app.append(&lbl(0), 10 * RANGE + 10_000, 1.0).expect("queue");
    app.append(&lbl(1), RANGE, 1.0).expect("queue"); // far in the past
    let st = app.commit().expect("commit");
    assert_eq!(st.rejected, 1);
    assert_eq!(samples(&db), 11);
}
