//! Dashboards as code. A dashboard comes from one of three places: the built-ins in
//! `dashboards/` (embedded in the binary), the user directory (`dashboards: {path: DIR}` in
//! sextant.yml or `--dashboards DIR`), and the SQLite store that the UI and the API save to.
//! [`Dashboards`] merges them with one rule — a database copy overrides a file copy with the
//! same uid, which overrides a built-in — keeps the files current (polling their mtimes and on
//! `/-/reload`) and versions every save. [`grafana`] converts Grafana dashboards into the model.

pub mod file;
pub mod grafana;
pub mod model;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

pub use file::{export, parse, Format, LoadError};
pub use model::Dashboard;
pub use store::{SaveOutcome, Store, StoreError, StoredVersion};

/// The built-in dashboards: (path in the source tree, text).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "dashboards/host.yml",
        include_str!("../../../dashboards/host.yml"),
    ),
    (
        "dashboards/sextant.yml",
        include_str!("../../../dashboards/sextant.yml"),
    ),
    (
        "dashboards/alerts.yml",
        include_str!("../../../dashboards/alerts.yml"),
    ),
    (
        "dashboards/targets.yml",
        include_str!("../../../dashboards/targets.yml"),
    ),
    (
        "dashboards/jobs.yml",
        include_str!("../../../dashboards/jobs.yml"),
    ),
    (
        "dashboards/llm.yml",
        include_str!("../../../dashboards/llm.yml"),
    ),
    (
        "dashboards/forge.yml",
        include_str!("../../../dashboards/forge.yml"),
    ),
    (
        "dashboards/fleet.yml",
        include_str!("../../../dashboards/fleet.yml"),
    ),
    (
        "dashboards/agents.yml",
        include_str!("../../../dashboards/agents.yml"),
    ),
    (
        "dashboards/tests.yml",
        include_str!("../../../dashboards/tests.yml"),
    ),
];

/// The `dashboards:` section of sextant.yml.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardsConfig {
    /// Directory of user dashboard files (*.yml, *.yaml, *.json), relative to sextant.yml.
    pub path: Option<PathBuf>,
}

/// Where the effective copy of a dashboard comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Builtin,
    File,
    Db,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Builtin => "builtin",
            Source::File => "file",
            Source::Db => "db",
        }
    }
}

/// A dashboard with where it comes from.
#[derive(Clone, Debug)]
pub struct Entry {
    pub dashboard: Dashboard,
    pub source: Source,
    /// The file (built-ins: their path in the source tree); empty for db-only dashboards.
    pub path: String,
    /// The database version; 0 when the copy is a file's.
    pub version: i64,
    /// Unix milliseconds of the last change (file mtime, or the save); 0 for built-ins.
    pub updated: i64,
    /// A file or built-in with this uid exists (a db copy overrides it until deleted).
    pub provisioned: bool,
}

/// Errors of dashboard operations, each mapping to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum DashError {
    /// Bad input (400).
    #[error("{0}")]
    Invalid(String),
    /// No such dashboard or version (404).
    #[error("{0}")]
    NotFound(String),
    /// The uid exists, or the version is not the current one (409).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
struct Provisioned {
    dashboard: Dashboard,
    source: Source,
    path: String,
    updated: i64,
}

/// Modification stamps of the user directory's files.
type Stamps = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// All dashboards: built-ins, files and the store.
pub struct Dashboards {
    builtin: Vec<Provisioned>,
    dir: Option<PathBuf>,
    files: RwLock<Vec<Provisioned>>,
    stamps: Mutex<Stamps>,
    store: Store,
}

/// Now in unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn mtime_ms(t: Option<SystemTime>) -> i64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The built-in dashboards, parsed.
pub fn builtin() -> Result<Vec<Dashboard>, LoadError> {
    BUILTIN
        .iter()
        .map(|(p, t)| parse(t, p, Format::Yaml))
        .collect()
}

/// Dashboard files of a directory (not recursive), sorted, with their stamps.
fn scan(dir: &Path) -> Result<Stamps, LoadError> {
    let rd = std::fs::read_dir(dir).map_err(|e| LoadError {
        file: dir.display().to_string(),
        line: 0,
        msg: format!("cannot read the dashboards directory: {e}"),
    })?;
    let mut out = Vec::new();
    for ent in rd.flatten() {
        let p = ent.path();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if !["yml", "yaml", "json"].contains(&ext) || !p.is_file() {
            continue;
        }
        let md = ent.metadata().ok();
        out.push((
            p,
            md.as_ref().and_then(|m| m.modified().ok()),
            md.map(|m| m.len()).unwrap_or(0),
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Reads every dashboard file of `dir`; duplicate uids are an error.
pub fn load_dir(dir: &Path) -> Result<Vec<(Dashboard, PathBuf, i64)>, LoadError> {
    load_stamped(&scan(dir)?)
}

fn load_stamped(stamps: &Stamps) -> Result<Vec<(Dashboard, PathBuf, i64)>, LoadError> {
    let mut out: Vec<(Dashboard, PathBuf, i64)> = Vec::new();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (p, mtime, len) in stamps {
        let file = p.display().to_string();
        if *len as usize > file::MAX_FILE_SIZE {
            return Err(LoadError {
                file,
                line: 0,
                msg: format!("larger than {} bytes", file::MAX_FILE_SIZE),
            });
        }
        let text = std::fs::read_to_string(p).map_err(|e| LoadError {
            file: file.clone(),
            line: 0,
            msg: format!("cannot read the file: {e}"),
        })?;
        let d = parse(&text, &file, Format::of_path(p))?;
        if let Some(first) = seen.insert(d.uid.clone(), p.clone()) {
            return Err(LoadError {
                file,
                line: 0,
                msg: format!("uid {:?} is also used by {}", d.uid, first.display()),
            });
        }
        out.push((d, p.clone(), mtime_ms(*mtime)));
    }
    Ok(out)
}

impl Dashboards {
    /// Loads the built-ins (unless `with_builtin` is false) and the user directory.
    pub fn new(store: Store, dir: Option<PathBuf>, with_builtin: bool) -> Result<Self, LoadError> {
        let mut builtin = Vec::new();
        if with_builtin {
            for (p, t) in BUILTIN {
                builtin.push(Provisioned {
                    dashboard: parse(t, p, Format::Yaml)?,
                    source: Source::Builtin,
                    path: p.to_string(),
                    updated: 0,
                });
            }
        }
        let d = Dashboards {
            builtin,
            dir,
            files: RwLock::new(Vec::new()),
            stamps: Mutex::new(Vec::new()),
            store,
        };
        d.reload()?;
        Ok(d)
    }

    /// Re-reads the user directory; on any error nothing changes.
    pub fn reload(&self) -> Result<(), LoadError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let stamps = scan(dir)?;
        let loaded = load_stamped(&stamps)?;
        let files = loaded
            .into_iter()
            .map(|(dashboard, p, updated)| Provisioned {
                dashboard,
                source: Source::File,
                path: p.display().to_string(),
                updated,
            })
            .collect::<Vec<_>>();
        tracing::debug!(dir = %dir.display(), dashboards = files.len(), "dashboards loaded");
        *self.files.write().unwrap_or_else(|e| e.into_inner()) = files;
        *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) = stamps;
        Ok(())
    }

    /// Reloads when a file of the user directory was added, removed or changed; true if it
    /// did. Errors are logged and leave the previous dashboards in place.
    pub fn poll(&self) -> bool {
        let Some(dir) = &self.dir else {
            return false;
        };
        let now = match scan(dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "dashboards directory");
                return false;
            }
        };
        if *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) == now {
            return false;
        }
        match self.reload() {
            Ok(()) => {
                tracing::info!(dir = %dir.display(), "dashboards reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "reloading dashboards failed; keeping the previous ones");
                // Do not retry the same broken state on every tick.
                *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) = now;
                false
            }
        }
    }

    /// Polls the user directory every `interval` on a background thread while `self` lives.
    pub fn start_watch(self: &Arc<Self>, interval: Duration) {
        if self.dir.is_none() {
            return;
        }
        let weak = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("dashboards-watch".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                match weak.upgrade() {
                    Some(d) => {
                        d.poll();
                    }
                    None => return,
                }
            });
    }

    /// The provisioned copy of `uid` (a file beats a built-in).
    fn provisioned(&self, uid: &str) -> Option<Provisioned> {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        files
            .iter()
            .find(|p| p.dashboard.uid == uid)
            .or_else(|| self.builtin.iter().find(|p| p.dashboard.uid == uid))
            .cloned()
    }

    /// Every dashboard's effective copy, sorted by title.
    pub fn list(&self) -> Result<Vec<Entry>, DashError> {
        let mut by_uid: BTreeMap<String, Entry> = BTreeMap::new();
        let files = self.files.read().unwrap_or_else(|e| e.into_inner()).clone();
        for p in self.builtin.iter().chain(files.iter()) {
            by_uid.insert(
                p.dashboard.uid.clone(),
                Entry {
                    dashboard: p.dashboard.clone(),
                    source: p.source,
                    path: p.path.clone(),
                    version: 0,
                    updated: p.updated,
                    provisioned: true,
                },
            );
        }
        for s in self.store.list()? {
            let prov = by_uid.get(&s.dashboard.uid);
            let path = prov.map(|e| e.path.clone()).unwrap_or_default();
            let provisioned = prov.is_some();
            by_uid.insert(
                s.dashboard.uid.clone(),
                Entry {
                    dashboard: s.dashboard,
                    source: Source::Db,
                    path,
                    version: s.version,
                    updated: s.updated,
                    provisioned,
                },
            );
        }
        let mut v: Vec<Entry> = by_uid.into_values().collect();
        v.sort_by(|a, b| {
            a.dashboard
                .title
                .to_lowercase()
                .cmp(&b.dashboard.title.to_lowercase())
                .then_with(|| a.dashboard.uid.cmp(&b.dashboard.uid))
        });
        Ok(v)
    }

    /// The effective copy of `uid`.
    pub fn get(&self, uid: &str) -> Result<Option<Entry>, DashError> {
        let prov = self.provisioned(uid);
        if let Some(s) = self.store.get(uid)? {
            return Ok(Some(Entry {
                dashboard: s.dashboard,
                source: Source::Db,
                path: prov.as_ref().map(|p| p.path.clone()).unwrap_or_default(),
                version: s.version,
                updated: s.updated,
                provisioned: prov.is_some(),
            }));
        }
        Ok(prov.map(|p| Entry {
            dashboard: p.dashboard,
            source: p.source,
            path: p.path,
            version: 0,
            updated: p.updated,
            provisioned: true,
        }))
    }

    fn check(d: &mut Dashboard) -> Result<(), DashError> {
        d.normalize();
        d.validate().map_err(|e| DashError::Invalid(e.to_string()))
    }

    /// Creates a new dashboard in the store; its uid must not exist anywhere. Returns its
    /// version (1 unless the uid has an older history).
    pub fn create(&self, mut d: Dashboard, message: &str) -> Result<i64, DashError> {
        if d.uid.is_empty() {
            d.uid = new_uid(&d.title);
        }
        Self::check(&mut d)?;
        if self.get(&d.uid)?.is_some() {
            return Err(DashError::Conflict(format!(
                "a dashboard with uid {:?} already exists",
                d.uid
            )));
        }
        match self.store.save(&d, 0, message, now_ms())? {
            SaveOutcome::Saved(v) => Ok(v),
            SaveOutcome::Conflict { .. } => Err(DashError::Conflict(format!(
                "a dashboard with uid {:?} already exists",
                d.uid
            ))),
        }
    }

    /// Creates or replaces `d` without a version check (imports with `save`).
    pub fn upsert(&self, mut d: Dashboard, message: &str) -> Result<(String, i64), DashError> {
        Self::check(&mut d)?;
        for _ in 0..5 {
            let current = self.store.get(&d.uid)?.map(|s| s.version).unwrap_or(0);
            if let SaveOutcome::Saved(v) = self.store.save(&d, current, message, now_ms())? {
                return Ok((d.uid, v));
            }
        }
        Err(DashError::Conflict("concurrent saves; try again".into()))
    }

    /// Saves a new version of `uid`; `expected` is the version the editor started from (0 for
    /// a provisioned dashboard without a db copy).
    pub fn save(
        &self,
        uid: &str,
        mut d: Dashboard,
        expected: i64,
        message: &str,
    ) -> Result<i64, DashError> {
        if d.uid.is_empty() {
            d.uid = uid.to_string();
        }
        if d.uid != uid {
            return Err(DashError::Invalid(format!(
                "uid {:?} in the body differs from {uid:?} in the path",
                d.uid
            )));
        }
        Self::check(&mut d)?;
        if self.get(uid)?.is_none() {
            return Err(DashError::NotFound(format!("dashboard {uid:?} not found")));
        }
        match self.store.save(&d, expected, message, now_ms())? {
            SaveOutcome::Saved(v) => Ok(v),
            SaveOutcome::Conflict { current } => Err(DashError::Conflict(format!(
                "dashboard {uid:?} is at version {current}, not {expected}: reload it and apply your changes again"
            ))),
        }
    }

    /// Deletes the db copy of `uid`; a provisioned dashboard then shows its file again.
    pub fn delete(&self, uid: &str) -> Result<(), DashError> {
        if self.store.delete(uid)? {
            return Ok(());
        }
        if self.provisioned(uid).is_some() {
            return Err(DashError::Invalid(format!(
                "dashboard {uid:?} is provisioned from a file; remove the file to delete it"
            )));
        }
        Err(DashError::NotFound(format!("dashboard {uid:?} not found")))
    }

    /// The saved versions of `uid`, newest first.
    pub fn versions(&self, uid: &str) -> Result<Vec<StoredVersion>, DashError> {
        let v = self.store.versions(uid)?;
        if v.is_empty() && self.get(uid)?.is_none() {
            return Err(DashError::NotFound(format!("dashboard {uid:?} not found")));
        }
        Ok(v)
    }

    /// One saved version of `uid`.
    pub fn version(&self, uid: &str, n: i64) -> Result<Dashboard, DashError> {
        self.store
            .version(uid, n)?
            .ok_or_else(|| DashError::NotFound(format!("dashboard {uid:?} has no version {n}")))
    }
}

/// A uid made from a title (`My board!` → `my-board`), plus a short suffix for uniqueness.
pub fn new_uid(title: &str) -> String {
    let mut s: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-');
    let mut s: String = s.chars().take(30).collect();
    let n = (now_ms() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    if s.is_empty() {
        s = "dashboard".into();
    }
    format!("{s}-{n:06x}").chars().take(40).collect()
}

#[cfg(test)]
mod tests;

/// An expression with its variables replaced by sample values, so it can be checked with a
/// PromQL parser: `$__rate_interval`, `$__interval`, `$__range` become `5m`, interval
/// variables their first option, constants and text boxes their value, others `x`.
pub fn expand_for_check(expr: &str, vars: &[model::Variable]) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"\$\{(\w+)\}|\$(\w+)|\[\[(\w+)\]\]").expect("static regex")
    });
    re.replace_all(expr, |c: &regex::Captures| {
        let name = c
            .get(1)
            .or_else(|| c.get(2))
            .or_else(|| c.get(3))
            .map(|m| m.as_str())
            .unwrap_or_default();
        if matches!(name, "__rate_interval" | "__interval" | "__range") {
            return "5m".to_string();
        }
        match vars.iter().find(|v| v.name == name) {
            Some(v) => match v.kind {
                model::VariableType::Interval => v.options.first().cloned().unwrap_or("5m".into()),
                model::VariableType::Constant | model::VariableType::Textbox
                    if !v.query.is_empty() =>
                {
                    v.query.clone()
                }
                _ => "x".to_string(),
            },
            None => c[0].to_string(),
        }
    })
    .into_owned()
}
