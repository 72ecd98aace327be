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
        ..DbOptions::default()
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
    let name = victim
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    assert!(!victim.exists(), "corrupted block left in place");
    assert!(
        dir.path()
            .join("blocks")
            .join(format!("{name}.corrupted"))
            .is_dir(),
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
    app.append(&lbl(0), 10 * RANGE + 10_000, 1.0)
        .expect("queue");
    app.append(&lbl(1), RANGE, 1.0).expect("queue"); // far in the past
    let st = app.commit().expect("commit");
    assert_eq!(st.rejected, 1);
    assert_eq!(samples(&db), 11);
}

/// Mounts a tmpfs of `size` on `dir`; false with a plain message where mounting is not
/// permitted (CI runs as root; a developer's unprivileged shell skips).
fn mount_tmpfs(dir: &std::path::Path, size: &str) -> bool {
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); this test did not run");
    }
    ok
}

struct Unmount(std::path::PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system holding `path` by writing `path` until ENOSPC.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let block = vec![0xa5u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn disk_full_during_head_cut_and_compaction_loses_nothing_and_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    if !mount_tmpfs(tmp.path(), "16m") {
        return;
    }
    let _u = Unmount(tmp.path().to_path_buf());
    let data = tmp.path().join("data");
    let filler = tmp.path().join("filler");
    let db = Db::open(&data, opts()).expect("open");
    write(&db, 0, 10 * RANGE);
    let total = samples(&db);
    assert_eq!(total, 1200);
    // No space left: cutting blocks, checkpointing and compacting all fail. Maintenance logs
    // and counts the errors; nothing panics, nothing is lost, queries and the head keep working.
    fill(&filler);
    db.maintain();
    assert!(
        db.blocks().is_empty(),
        "the head cut cannot have succeeded on a full disk"
    );
    assert!(db.metrics().compactions_failed.load(Ordering::Relaxed) > 0);
    assert_eq!(
        samples(&db),
        total,
        "samples readable while the disk is full"
    );
    let st = db.appender().commit();
    assert!(st.is_ok());
    // Unfinished block directories are left as `.tmp` at most, never as a half block.
    for e in std::fs::read_dir(data.join("blocks"))
        .expect("blocks")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.ends_with(".tmp") {
            crate::block::Block::open(&e.path()).expect("every visible block is whole");
        }
    }
    // Space returns: the next maintenance cuts and compacts.
    std::fs::remove_file(&filler).expect("rm filler");
    db.maintain();
    assert!(!db.blocks().is_empty(), "head cut once space returned");
    assert_eq!(samples(&db), total);
    db.close().expect("close");
    let db = Db::open(&data, opts()).expect("reopen");
    assert_eq!(
        samples(&db),
        total,
        "nothing lost across the full disk and a restart"
    );
    assert_eq!(db.metrics().wal_corruptions.load(Ordering::Relaxed), 0);
}

#[test]
fn a_sample_from_the_future_moves_the_head_clock_like_prometheus() {
    // The TSDB never reads the wall clock on the append path: a wall clock that jumps backwards
    // changes nothing here, only the timestamps clients send. A sample far in the future is
    // accepted (Prometheus' TSDB has no upper bound either) and moves the head's newest time, so
    // later samples with the right time are then out of bounds - the reason docs/robustness.md
    // recommends bounding sender clocks.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), opts()).expect("open");
    write(&db, 10 * RANGE, 10 * RANGE + 5_000);
    let year = 365 * 24 * 3600 * 1000;
    let mut app = db.appender();
    app.append(&lbl(9), 10 * RANGE + year, 1.0).expect("queue");
    let st = app.commit().expect("commit");
    assert_eq!(st.rejected, 0, "future sample accepted");
    assert_eq!(db.head().max_time(), 10 * RANGE + year);
    let mut app = db.appender();
    app.append(&lbl(0), 10 * RANGE + 6_000, 1.0).expect("queue");
    let st = app.commit().expect("commit");
    assert_eq!(st.rejected, 1, "a current sample is now out of bounds");
    assert!(
        st.first_error
            .as_deref()
            .unwrap_or("")
            .contains("out of bounds"),
        "{:?}",
        st.first_error
    );
    let refused = &db.metrics().rejected[crate::db::REJECT_REASONS
        .iter()
        .position(|r| *r == "out_of_bounds")
        .expect("reason")];
    assert_eq!(refused.load(Ordering::Relaxed), 1);
}
