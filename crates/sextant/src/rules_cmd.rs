//! `sextant check rules` and `sextant test rules`: promtool's rule checks and unit tests, with
//! promtool's output shape and exit codes (0 all good, 1 a check or test failed).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Result};
use sextant_rules::{EvalCtx, GroupDef, Manager, ManagerOptions};
use sextant_server::{AppState, DbRuleStorage};
use sextant_tsdb::db::Db;

/// Rule files named by `--rules` arguments: files as they are, directories as their
/// `*.yml`/`*.yaml` files, globs expanded.
pub fn resolve(paths: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        let path = Path::new(p);
        if path.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|e| e == "yml" || e == "yaml"))
                .collect();
            v.sort();
            out.extend(v);
        } else {
            out.extend(sextant_rules::expand_globs(std::slice::from_ref(p), Path::new(".")));
        }
    }
    out
}

/// Loads and validates the rule files of `paths`; every problem in one error.
pub fn load(paths: &[String]) -> Result<(Vec<GroupDef>, Vec<String>)> {
    let files = resolve(paths);
    let names = files.iter().map(|f| f.display().to_string()).collect();
    match sextant_rules::load_files(&files) {
        Ok(d) => Ok((d, names)),
        Err(errs) => {
            let msg: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            bail!("invalid rule files:\n{}", msg.join("\n"))
        }
    }
}

/// The rule manager of `serve`, reading and writing the local TSDB.
pub fn manager(
    state: &Arc<AppState>,
    db: Arc<Db>,
    external_url: String,
    opts: ManagerOptions,
) -> Arc<Manager> {
    let ctx = EvalCtx {
        engine: Arc::new(state.query_limits.engine()),
        storage: Arc::new(DbRuleStorage::new(db)),
        external_labels: sextant_model::Labels::empty(),
        external_url,
    };
    Manager::new(ctx, opts)
}

/// Starts evaluating (inside the runtime) and installs the reload hook; `also` runs first on
/// every reload (the alert manager's configuration), and a failure there keeps everything old.
pub fn start(
    state: &Arc<AppState>,
    m: Arc<Manager>,
    paths: Vec<String>,
    first: (Vec<GroupDef>, Vec<String>),
    also: Option<sextant_server::ReloadFn>,
) {
    m.update(first.0, first.1);
    state.set_rules(m.clone());
    let handle = tokio::runtime::Handle::current();
    state.set_reload(Box::new(move || {
        let (defs, files) = load(&paths).map_err(|e| format!("{e:#}"))?;
        if let Some(f) = &also {
            f()?;
        }
        let n = defs.len();
        let _g = handle.enter();
        m.update(defs, files);
        tracing::info!(groups = n, "rules reloaded");
        Ok(())
    }));
}

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
