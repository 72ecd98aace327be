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
            out.extend(sextant_rules::expand_globs(
                std::slice::from_ref(p),
                Path::new("."),
            ));
        }
    }
    out
}

/// Where rules come from: the built-in packs, rule files (`--rules`) and SLO files (`--slos`).
#[derive(Clone, Debug, Default)]
pub struct RuleSources {
    pub builtin: bool,
    pub paths: Vec<String>,
    pub slos: Vec<PathBuf>,
    /// SLOs from the configuration file's `slos:` section.
    pub inline_slos: Vec<sextant_rules::slo::SloSpec>,
}

impl RuleSources {
    /// These sources plus the configuration file's `rule_files` (relative to its directory).
    pub fn with_config(&self, loaded: &crate::config::Loaded) -> RuleSources {
        let mut out = self.clone();
        let base = loaded
            .path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for f in &loaded.rule_files {
            let p = Path::new(f);
            let full = if p.is_absolute() || base.as_os_str().is_empty() {
                p.to_path_buf()
            } else {
                base.join(p)
            };
            out.paths.push(full.display().to_string());
        }
        out.inline_slos = loaded.slos.clone();
        out
    }
}

/// The rule packs shipped in rules/, embedded in the binary.
pub const BUILTIN_RULES: &[(&str, &str)] = &[
    (
        "builtin:rules/sextant-policy.yml",
        include_str!("../../../rules/sextant-policy.yml"),
    ),
    (
        "builtin:rules/node.yml",
        include_str!("../../../rules/node.yml"),
    ),
    (
        "builtin:rules/jobs.yml",
        include_str!("../../../rules/jobs.yml"),
    ),
    (
        "builtin:rules/llm-cost.yml",
        include_str!("../../../rules/llm-cost.yml"),
    ),
    (
        "builtin:rules/forge.yml",
        include_str!("../../../rules/forge.yml"),
    ),
    (
        "builtin:rules/probes.yml",
        include_str!("../../../rules/probes.yml"),
    ),
    (
        "builtin:rules/agents.yml",
        include_str!("../../../rules/agents.yml"),
    ),
    (
        "builtin:rules/tests-quality.yml",
        include_str!("../../../rules/tests-quality.yml"),
    ),
];

fn slo_specs(file: &Path) -> Result<Vec<sextant_rules::slo::SloSpec>> {
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    sextant_rules::slo::parse_slo_file(&file.display().to_string(), &text)
        .map_err(|e| anyhow::anyhow!(e))
}

fn slo_rules(file: &Path) -> Result<String> {
    sextant_rules::slo::generate(&slo_specs(file)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// Loads and validates rule files and compiled SLOs; every problem in one error.
pub fn load(src: &RuleSources) -> Result<(Vec<GroupDef>, Vec<String>)> {
    let files = resolve(&src.paths);
    let mut names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut defs = match sextant_rules::load_files(&files) {
        Ok(d) => d,
        Err(errs) => {
            let msg: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            bail!("invalid rule files:\n{}", msg.join("\n"))
        }
    };
    if src.builtin {
        for (name, text) in BUILTIN_RULES {
            match sextant_rules::parse_rules(name, text) {
                Ok(d) => defs.extend(d),
                Err(errs) => bail!("built-in rules {name}: {}", errs[0]),
            }
            names.push(name.to_string());
        }
    }
    for f in &src.slos {
        let text = slo_rules(f)?;
        let name = format!("{} (generated)", f.display());
        match sextant_rules::parse_rules(&name, &text) {
            Ok(d) => defs.extend(d),
            Err(errs) => {
                let msg: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                bail!(
                    "SLO rules of {} are invalid:\n{}",
                    f.display(),
                    msg.join("\n")
                )
            }
        }
        names.push(name);
    }
    if !src.inline_slos.is_empty() {
        let text =
            sextant_rules::slo::generate(&src.inline_slos).map_err(|e| anyhow::anyhow!(e))?;
        let name = "sextant.yml slos (generated)".to_string();
        match sextant_rules::parse_rules(&name, &text) {
            Ok(d) => defs.extend(d),
            Err(errs) => bail!("generated SLO rules are invalid: {}", errs[0]),
        }
        names.push(name);
    }
    Ok((defs, names))
}

/// `sextant slo generate`: prints the rule file SLOs compile to.
pub fn slo_generate(files: &[PathBuf]) -> Result<()> {
    let mut all = Vec::new();
    for f in files {
        all.extend(slo_specs(f)?);
    }
    print!(
        "{}",
        sextant_rules::slo::generate(&all).map_err(|e| anyhow::anyhow!(e))?
    );
    Ok(())
}

/// The rule manager of `serve`, reading and writing the local TSDB.
pub fn manager(
    state: &Arc<AppState>,
    db: Arc<Db>,
    external_url: String,
    external_labels: sextant_model::Labels,
    opts: ManagerOptions,
) -> Arc<Manager> {
    let ctx = EvalCtx {
        engine: Arc::new(state.query_limits.engine()),
        storage: Arc::new(DbRuleStorage::new(db).with_remote(state.remote().cloned())),
        external_labels,
        external_url,
    };
    Manager::new(ctx, opts)
}

/// A further reload step (the alert manager's configuration) run by `/-/reload` and SIGHUP.
pub type ExtraReload = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Starts evaluating (inside the runtime).
pub fn start(state: &Arc<AppState>, m: Arc<Manager>, first: (Vec<GroupDef>, Vec<String>)) {
    m.update(first.0, first.1);
    state.set_rules(m);
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
