//! `sextant check rules` and `sextant test rules`: promtool's rule checks and unit tests, with
//! promtool's output shape and exit codes (0 all good, 1 a check or test failed).

use std::path::PathBuf;

use anyhow::{bail, Result};

/// Validates rule files like `promtool check rules`.
pub fn check(files: &[PathBuf]) -> Result<()> {
    let mut failed = false;
    for f in files {
        println!("Checking {}", f.display());
        match sextant_rules::load_file(f) {
            Ok(groups) => {
                let n: usize = groups.iter().map(|g| g.rules.len()).sum();
                println!("  SUCCESS: {n} rules found\n");
            }
            Err(errs) => {
                failed = true;
                println!("  FAILED:");
                for e in errs {
                    println!("{e}");
                }
                println!();
            }
        }
    }
    if failed {
        bail!("some rule files are invalid");
    }
    Ok(())
}

/// Runs promtool-format rule unit tests.
pub fn test(files: &[PathBuf]) -> Result<()> {
    let ok = sextant_rules::unittest::run_files(files, &mut std::io::stdout());
    if !ok {
        bail!("rule unit tests failed");
    }
    Ok(())
}
