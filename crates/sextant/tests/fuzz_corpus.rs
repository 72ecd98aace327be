//! Runs every committed fuzz seed (`fuzz/seeds/<target>/*`) through the same function the
//! libFuzzer binary for that target calls (`fuzz/src/targets.rs`), on the stable toolchain and
//! without libFuzzer: each seed, and each crash a fuzz run ever found (kept as a seed after its
//! fix), is a regression test that must not panic.

use sextant::config as sextant_config;

#[allow(dead_code)]
#[path = "../../../fuzz/src/targets.rs"]
mod targets;

use std::path::PathBuf;

fn seeds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds")
}

#[test]
fn every_target_has_seeds_and_no_seed_panics() {
    for (name, run) in targets::TARGETS {
        let dir = seeds_dir().join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds for fuzz target {name}");
        for f in files {
            let data = std::fs::read(&f).expect("seed readable");
            let res = std::panic::catch_unwind(|| run(&data));
            assert!(
                res.is_ok(),
                "fuzz target {name} panicked on {}",
                f.display()
            );
        }
    }
}

#[test]
fn every_fuzz_binary_is_listed() {
    // A target added to fuzz/Cargo.toml but not to TARGETS would have no stable regression run.
    let toml = std::fs::read_to_string(seeds_dir().join("../Cargo.toml")).expect("fuzz/Cargo.toml");
    let bins = toml.matches("[[bin]]").count();
    assert_eq!(
        bins,
        targets::TARGETS.len(),
        "fuzz/Cargo.toml bins vs TARGETS"
    );
    for (name, _) in targets::TARGETS {
        assert!(
            toml.contains(&format!("name = \"{name}\"")),
            "{name} missing in fuzz/Cargo.toml"
        );
    }
}

#[test]
fn file_seeds_are_valid_so_the_fuzzer_starts_from_real_files() {
    // The block seed must open and hold its 3 series, the WAL seed must replay records; otherwise
    // the fuzzer would only ever explore the "bad header" paths.
    let dir = tempfile::tempdir().expect("tempdir");
    let block = std::fs::read(seeds_dir().join("block_open/block3")).expect("block seed");
    let bdir = dir.path().join("b");
    assert!(targets::write_block_dir(&block, &bdir));
    let b = sextant_tsdb::block::Block::open(&bdir).expect("block seed opens");
    let series = b.select(&[], i64::MIN, i64::MAX).expect("select");
    assert_eq!(series.len(), 3);
    assert_eq!(series[0].floats.len(), 5);

    let wdir = dir.path().join("wal");
    std::fs::create_dir_all(&wdir).expect("mkdir");
    std::fs::copy(
        seeds_dir().join("wal_replay/seg00000000"),
        wdir.join("00000000"),
    )
    .expect("copy");
    let mut n = 0;
    let (_wal, stats) = sextant_tsdb::wal::Wal::open(&wdir, Default::default(), |_| n += 1)
        .expect("WAL seed replays");
    assert!(n >= 4, "records replayed: {n}");
    assert!(!stats.corrupt);
}
