//! `sextant check rules` / `sextant test rules` against Debian's `promtool` on the same files:
//! every rule file under crates/rules/testdata/check and rules/ must get the same verdict from
//! both, and every promtool-format unit test (crates/rules/testdata/promtool, rules/tests) must
//! pass or fail under both alike (files named `failing_*` are expected to fail).
//! Without promtool the sextant half still runs and the comparison is skipped with a note,
//! unless `SEXTANT_REQUIRE_PEERS=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn yml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn promtool() -> bool {
    let ok = Command::new("promtool").arg("--version").output().is_ok();
    if !ok {
        if std::env::var("SEXTANT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("promtool not on PATH and SEXTANT_REQUIRE_PEERS=1");
        }
        println!("SKIPPED (comparison): promtool not installed");
    }
    ok
}

fn run(tool: &str, args: &[&str], file: &Path) -> (bool, String) {
    let out = Command::new(tool)
        .args(args)
        .arg(file.file_name().unwrap())
        .current_dir(file.parent().unwrap())
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

const SEXTANT: &str = env!("CARGO_BIN_EXE_sextant");

#[test]
fn check_rules_agrees_with_promtool() {
    let have = promtool();
    let mut files = yml_files(&root().join("crates/rules/testdata/check"));
    files.extend(yml_files(&root().join("rules")));
    assert!(!files.is_empty());
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let (ours, out) = run(SEXTANT, &["check", "rules"], &f);
        assert_eq!(
            ours,
            !name.starts_with("bad_"),
            "sextant check rules {name}:\n{out}"
        );
        if have {
            let (theirs, pout) = run("promtool", &["check", "rules"], &f);
            assert_eq!(
                ours, theirs,
                "verdicts differ on {name}\nsextant:\n{out}\npromtool:\n{pout}"
            );
        }
    }
}

#[test]
fn rule_unit_tests_agree_with_promtool() {
    let have = promtool();
    let mut files: Vec<PathBuf> = yml_files(&root().join("crates/rules/testdata/promtool"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("_test.yml"))
        .collect();
    files.extend(yml_files(&root().join("rules/tests")));
    assert!(!files.is_empty());
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let (ours, out) = run(SEXTANT, &["test", "rules"], &f);
        assert_eq!(
            ours,
            !name.starts_with("failing_"),
            "sextant test rules {name}:\n{out}"
        );
        if have {
            let (theirs, pout) = run("promtool", &["test", "rules"], &f);
            assert_eq!(
                ours, theirs,
                "verdicts differ on {name}\nsextant:\n{out}\npromtool:\n{pout}"
            );
        }
    }
}

#[test]
fn slo_generate_output_is_the_tested_rule_file() {
    let out = Command::new(SEXTANT)
        .args(["slo", "generate"])
        .arg(root().join("crates/rules/testdata/slo/api.yml"))
        .output()
        .expect("run sextant slo generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read_to_string(root().join("crates/rules/testdata/promtool/slo_rules.yml"))
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        want,
        "slo_rules.yml is stale: regenerate it with `sextant slo generate crates/rules/testdata/slo/api.yml`"
    );
}
