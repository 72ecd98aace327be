//! Runs Prometheus' promqltest scripts from the shared conformance folder and fails only if
//! the number of passing evals drops below the floor recorded in `conformance-floor.txt`.

use std::path::PathBuf;

use sextant_promql::promqltest::run_script;

#[test]
fn promql_conformance() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = manifest.join("../../../shared/conformance/promql/testdata");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        println!(
            "conformance scripts not found at {}; skipped",
            dir.display()
        );
        return;
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let verbose = std::env::var("PROMQLTEST_VERBOSE").ok();
    let (mut passed, mut total) = (0, 0);
    println!(
        "{:<28} {:>6} {:>6} {:>6}",
        "file", "passed", "failed", "evals"
    );
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let r = run_script(&text);
        println!(
            "{:<28} {:>6} {:>6} {:>6}",
            name,
            r.passed(),
            r.failed(),
            r.evals.len()
        );
        if let Some(v) = &verbose {
            if v == "1" || name.contains(v.as_str()) {
                for e in r.evals.iter().filter(|e| e.failure.is_some()) {
                    println!(
                        "  {name}:{} {} -- {}",
                        e.line,
                        e.expr,
                        e.failure.as_deref().unwrap_or("")
                    );
                }
            }
        }
        passed += r.passed();
        total += r.evals.len();
    }
    println!("TOTAL: {passed}/{total} evals passed");
    let floor: usize = std::fs::read_to_string(manifest.join("conformance-floor.txt"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| !l.starts_with('#'))
                .and_then(|l| l.trim().parse().ok())
        })
        .unwrap_or(0);
    assert!(
        passed >= floor,
        "conformance regressed: {passed} evals pass, floor is {floor}"
    );
}
