//! The configuration file `sextant.yml`. Its sections reuse Prometheus' names (`global`,
//! `scrape_configs`, `rule_files`) so a Prometheus user can paste theirs in; each section's
//! struct lives with the component it configures (Vector style) and this file only assembles
//! them. Unknown keys are rejected, and every error names the file, the line and the field.
//! Other sections are added here as fields of [`Config`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use sextant_ingest::scrape::config::PromDuration;
use sextant_ingest::scrape::ScrapeConfig;
use sextant_model::labels::is_valid_label_name;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub global: Option<Spanned<GlobalConfig>>,
    #[serde(default)]
    pub scrape_configs: Vec<Spanned<ScrapeConfig>>,
    /// Rule files (globs, relative to this file), evaluated by the rule manager.
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// Named process groups of the host collector (process-exporter's `process_names`).
    #[serde(default)]
    pub processes: Option<sextant_ingest::host::ProcessesConfig>,
    /// SLOs compiled into recording rules and burn-rate alerts (see docs/rules.md).
    #[serde(default)]
    pub slos: Vec<sextant_rules::slo::SloSpec>,
    /// User dashboards directory (`dashboards: {path: DIR}`, relative to this file).
    #[serde(default)]
    pub dashboards: Option<sextant_dashboards::DashboardsConfig>,
    /// LLM price overrides and the daily budget (see docs/genai.md).
    #[serde(default)]
    pub prices: Option<Spanned<sextant_ingest::prices::PricesConfig>>,
    /// GitHub / Gitea repositories whose activity is polled (see docs/forges.md).
    #[serde(default)]
    pub forges: Vec<Spanned<sextant_ingest::forge::ForgeConfig>>,
    /// Service probes: blackbox_exporter modules and targets (see docs/probes.md).
    #[serde(default)]
    pub probes: Option<sextant_ingest::probe::ProbesConfig>,
    /// Scheduled fleet reports delivered through a receiver (see docs/reports.md).
    #[serde(default)]
    pub reports: Vec<Spanned<crate::report::schedule::ReportConfig>>,
    /// Upload of completed blocks to S3-compatible object storage (see docs/archive.md).
    #[serde(default)]
    pub archive: Option<Spanned<crate::archive::ArchiveConfig>>,
    /// Prometheus remote-read endpoints queries also read (see docs/scale-out.md).
    #[serde(default)]
    pub remote_read: Vec<Spanned<sextant_remote::RemoteReadConfig>>,
    /// Prometheus-API engines queries also read (see docs/scale-out.md).
    #[serde(default)]
    pub remote_engines: Vec<Spanned<sextant_remote::RemoteEngineConfig>>,
    /// False: the query API, dashboards and rules read only `remote_read` / `remote_engines`.
    pub query_local_storage: Option<bool>,
    /// Tokens and users with scopes (see docs/security.md).
    #[serde(default)]
    pub auth: Option<Spanned<sextant_server::AuthConfig>>,
    /// Origins whose browser pages may call the API (CORS); none by default.
    #[serde(default)]
    pub cors: Option<sextant_server::CorsConfig>,
    /// HTTPS for the server (Prometheus web-config's section).
    #[serde(default)]
    pub tls_server_config: Option<Spanned<sextant_server::tls::TlsServerConfig>>,
    /// Queues forwarding every stored sample to remote storage (see docs/remote-write.md).
    #[serde(default)]
    pub remote_write: Vec<Spanned<crate::forward::RemoteWriteConfig>>,
    /// Every limit a client can drive (see docs/limits.md).
    #[serde(default)]
    pub limits: Option<Spanned<crate::limits::LimitsConfig>>,
}

/// `global`, with Prometheus' defaults.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    #[serde(default = "one_minute")]
    pub scrape_interval: PromDuration,
    /// Unset: 10s, capped at `scrape_interval` (as Prometheus does).
    pub scrape_timeout: Option<PromDuration>,
    #[serde(default = "one_minute")]
    pub evaluation_interval: PromDuration,
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: one_minute(),
            scrape_timeout: None,
            evaluation_interval: one_minute(),
            external_labels: BTreeMap::new(),
        }
    }
}

fn one_minute() -> PromDuration {
    PromDuration(Duration::from_secs(60))
}

impl GlobalConfig {
    /// The effective global scrape timeout.
    pub fn timeout(&self) -> Duration {
        self.scrape_timeout
            .map(|d| d.0)
            .unwrap_or_else(|| Duration::from_secs(10).min(self.scrape_interval.0))
    }
}

/// A checked configuration: the file as parsed plus the resolved scrape configs.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Where it came from; `None` for the embedded defaults.
    pub path: Option<PathBuf>,
    pub global: GlobalConfig,
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Line of each scrape config in the file, for messages.
    pub scrape_lines: Vec<u64>,
    pub rule_files: Vec<String>,
    pub processes: Option<sextant_ingest::host::ProcessesConfig>,
    pub slos: Vec<sextant_rules::slo::SloSpec>,
    /// Alertmanager's sections (`route`, `receivers`, `inhibit_rules`, `templates`,
    /// `time_intervals`, `mute_time_intervals`, its `global` settings), when the file has them.
    pub alertmanager: Option<sextant_alert::Config>,
    /// `dashboards.path` as written (resolve it with [`Loaded::dashboards_dir`]).
    pub dashboards: Option<sextant_dashboards::DashboardsConfig>,
    /// `prices:` as written (checked; see [`Loaded::price_table`]).
    pub prices: sextant_ingest::prices::PricesConfig,
    /// `forges:` entries, checked.
    pub forges: Vec<sextant_ingest::forge::ForgeConfig>,
    /// Line of each forge entry in the file, for messages.
    pub forge_lines: Vec<u64>,
    /// The probes of `probes:`, one per target, intervals resolved.
    pub probes: Vec<sextant_ingest::probe::ProbeSpec>,
    /// Scheduled reports, checked against `receivers:`.
    pub reports: Vec<crate::report::schedule::Scheduled>,
    /// `archive:`, checked.
    pub archive: Option<crate::archive::ArchiveConfig>,
    /// `remote_read:` entries, checked.
    pub remote_read: Vec<sextant_remote::RemoteReadConfig>,
    /// `remote_engines:` entries, checked.
    pub remote_engines: Vec<sextant_remote::RemoteEngineConfig>,
    /// `query_local_storage: false`: queries read the remote engines only.
    pub remote_only: bool,
    /// `auth:`, checked; `None` when the file has none.
    pub auth: Option<sextant_server::AuthConfig>,
    pub cors: sextant_server::CorsConfig,
    /// `tls_server_config:` with the line it starts on (its files are read at start).
    pub tls_server: Option<(sextant_server::tls::TlsServerConfig, u64)>,
    /// `remote_write:` queues, checked.
    pub remote_write: Vec<crate::forward::RemoteWriteConfig>,
    /// `limits:`, checked (all unset when the file has none).
    pub limits: crate::limits::LimitsConfig,
}

impl Loaded {
    /// The shipped LLM price table with `prices:` applied (checked by [`parse`]).
    pub fn price_table(&self) -> Result<sextant_ingest::prices::PriceTable, String> {
        sextant_ingest::prices::PriceTable::builtin()
            .and_then(|t| t.with_config(&self.prices))
            .map_err(|e| format!("prices.{e}"))
    }

    /// The user dashboards directory, relative paths taken from the config file's directory.
    pub fn dashboards_dir(&self) -> Option<PathBuf> {
        let p = self.dashboards.as_ref()?.path.as_ref()?;
        if p.is_absolute() {
            return Some(p.clone());
        }
        match self.path.as_ref().and_then(|c| c.parent()) {
            Some(dir) if !dir.as_os_str().is_empty() => Some(dir.join(p)),
            _ => Some(p.clone()),
        }
    }
}

/// A configuration error: `file:line: field: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when unknown.
    pub line: u64,
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.msg)
        } else {
            write!(f, "{}: {}", self.file, self.msg)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The file used when `--config` is not given: `sextant.yml` in the working directory if it
/// exists, else none (embedded defaults).
pub fn default_path() -> Option<PathBuf> {
    let p = PathBuf::from("sextant.yml");
    p.is_file().then_some(p)
}

/// Reads and checks a configuration file; `None` gives the embedded defaults.
pub fn load(path: Option<&Path>) -> Result<Loaded, ConfigError> {
    let Some(path) = path else {
        return Ok(Loaded::default());
    };
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        msg: format!("cannot read the file: {e}"),
    })?;
    let mut loaded = parse(&text, &file)?;
    loaded.path = Some(path.to_path_buf());
    Ok(loaded)
}

/// Parses and checks configuration text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Loaded, ConfigError> {
    let err = |line: u64, msg: String| ConfigError {
        file: file.to_string(),
        line,
        msg,
    };
    let (prom, am) = split_alertmanager(text);
    let alertmanager = match am {
        Some(am) => Some(
            sextant_alert::parse_config(&am, file).map_err(|e| ConfigError {
                file: file.to_string(),
                line: e.line,
                msg: e.msg,
            })?,
        ),
        None => None,
    };
    let text = prom.as_str();
    let cfg: Config = if text.trim().is_empty() {
        Config::default()
    } else {
        serde_saphyr::from_str::<Option<Config>>(text)
            .map_err(|e| {
                let line = e.location().map(|l| l.line()).unwrap_or(0);
                err(line, yaml_message(&e, text, line))
            })?
            .unwrap_or_default()
    };
    let (global, global_line) = match cfg.global {
        Some(g) => (g.value, g.referenced.line()),
        None => (GlobalConfig::default(), 0),
    };
    if global.timeout() > global.scrape_interval.0 {
        return Err(err(
            global_line,
            "global.scrape_timeout: global scrape timeout greater than scrape interval".into(),
        ));
    }
    if global.scrape_interval.0.is_zero() {
        return Err(err(
            global_line,
            "global.scrape_interval: must be greater than 0".into(),
        ));
    }
    for name in global.external_labels.keys() {
        if !is_valid_label_name(name) {
            return Err(err(
                global_line,
                format!("global.external_labels: {name:?} is not a valid label name"),
            ));
        }
    }
    let mut scrape_configs = Vec::with_capacity(cfg.scrape_configs.len());
    let mut scrape_lines = Vec::with_capacity(cfg.scrape_configs.len());
    let mut jobs: BTreeMap<String, u64> = BTreeMap::new();
    for (i, sc) in cfg.scrape_configs.into_iter().enumerate() {
        let line = sc.referenced.line();
        let mut c = sc.value;
        let job = c.job_name.clone();
        c.resolve(global.scrape_interval.0, global.timeout())
            .map_err(|e| err(line, format!("scrape_configs[{i}] (job {job:?}): {e}")))?;
        if let Some(first) = jobs.insert(job.clone(), line) {
            return Err(err(
                line,
                format!(
                    "scrape_configs[{i}].job_name: found multiple scrape configs with job name {job:?} (first on line {first})"
                ),
            ));
        }
        scrape_configs.push(c);
        scrape_lines.push(line);
    }
    let prices = match cfg.prices {
        Some(p) => {
            let line = p.referenced.line();
            let table = sextant_ingest::prices::PriceTable::builtin()
                .map_err(|e| err(e.line, format!("built-in prices/llm.yml: {e}")))?;
            table.with_config(&p.value).map_err(|e| {
                let at = if e.line > 0 { e.line } else { line };
                let field = if e.field == "budget_usd_per_day" {
                    e.to_string()
                } else {
                    format!("models[].{e}")
                };
                err(at, format!("prices.{field}"))
            })?;
            p.value
        }
        None => Default::default(),
    };
    let forge_lines: Vec<u64> = cfg.forges.iter().map(|f| f.referenced.line()).collect();
    let forges: Vec<sextant_ingest::forge::ForgeConfig> =
        cfg.forges.into_iter().map(|f| f.value).collect();
    sextant_ingest::forge::validate_all(&forges).map_err(|(i, e)| {
        err(
            forge_lines.get(i).copied().unwrap_or(0),
            format!("forges[{i}] (forge {:?}): {e}", forges[i].name()),
        )
    })?;
    let probes = match &cfg.probes {
        Some(p) => {
            p.validate().map_err(|(line, msg)| err(line, msg))?;
            sextant_ingest::probe::ProbeSpec::all(p, global.scrape_interval.0)
        }
        None => Vec::new(),
    };
    let auth = match cfg.auth {
        Some(a) => {
            let line = a.referenced.line();
            sextant_server::Auth::new(&a.value, Default::default())
                .map_err(|e| err(line, format!("auth.{e}")))?;
            Some(a.value)
        }
        None => None,
    };
    let tls_server = cfg
        .tls_server_config
        .map(|t| (t.value, t.referenced.line()));
    let receiver_names: Vec<&str> = alertmanager
        .as_ref()
        .map(|c| c.receivers.iter().map(|r| r.name.as_str()).collect())
        .unwrap_or_default();
    let mut reports = Vec::with_capacity(cfg.reports.len());
    for (i, r) in cfg.reports.iter().enumerate() {
        let line = r.referenced.line();
        let s = r.value.validate(&receiver_names).map_err(|e| {
            err(
                line,
                format!("reports[{i}] (report {:?}): {e}", r.value.name),
            )
        })?;
        if reports
            .iter()
            .any(|o: &crate::report::schedule::Scheduled| o.name == s.name)
        {
            return Err(err(
                line,
                format!("reports[{i}].name: duplicate report name {:?}", s.name),
            ));
        }
        reports.push(s);
    }
    let archive = match cfg.archive {
        Some(a) => {
            let line = a.referenced.line();
            a.value.validate().map_err(|m| err(line, m))?;
            Some(a.value)
        }
        None => None,
    };
    let mut names: BTreeMap<String, u64> = BTreeMap::new();
    let mut remote_read = Vec::with_capacity(cfg.remote_read.len());
    for (i, r) in cfg.remote_read.into_iter().enumerate() {
        let line = r.referenced.line();
        r.value
            .check()
            .map_err(|e| err(line, format!("remote_read[{i}].{e}")))?;
        let name = r.value.display_name();
        if let Some(first) = names.insert(name.clone(), line) {
            return Err(err(line, format!("remote_read[{i}]: duplicate remote read configs are not allowed, found duplicate for name {name:?} (first on line {first})")));
        }
        remote_read.push(r.value);
    }
    let mut remote_engines = Vec::with_capacity(cfg.remote_engines.len());
    for (i, r) in cfg.remote_engines.into_iter().enumerate() {
        let line = r.referenced.line();
        r.value
            .check()
            .map_err(|e| err(line, format!("remote_engines[{i}].{e}")))?;
        if let Some(first) = names.insert(r.value.name.clone(), line) {
            return Err(err(
                line,
                format!(
                    "remote_engines[{i}].name: {:?} is already used on line {first}",
                    r.value.name
                ),
            ));
        }
        remote_engines.push(r.value);
    }
    let remote_only = cfg.query_local_storage == Some(false);
    if remote_only && remote_read.is_empty() && remote_engines.is_empty() {
        return Err(err(
            0,
            "query_local_storage: false needs at least one remote_read or remote_engines entry"
                .into(),
        ));
    }
    let rw_lines: Vec<u64> = cfg
        .remote_write
        .iter()
        .map(|r| r.referenced.line())
        .collect();
    let remote_write: Vec<crate::forward::RemoteWriteConfig> =
        cfg.remote_write.into_iter().map(|r| r.value).collect();
    crate::forward::validate_all(&remote_write).map_err(|(i, e)| {
        err(
            rw_lines.get(i).copied().unwrap_or(0),
            format!("remote_write[{i}] (url {:?}): {e}", remote_write[i].url.0),
        )
    })?;
    let limits = match cfg.limits {
        Some(l) => {
            let line = l.referenced.line();
            l.value
                .validate()
                .map_err(|m| err(line, format!("limits.{m}")))?;
            l.value
        }
        None => Default::default(),
    };
    Ok(Loaded {
        limits,
        archive,
        path: None,
        remote_read,
        remote_engines,
        remote_only,
        auth,
        cors: cfg.cors.unwrap_or_default(),
        tls_server,
        global,
        scrape_configs,
        scrape_lines,
        rule_files: cfg.rule_files,
        processes: cfg.processes,
        slos: cfg.slos,
        alertmanager,
        dashboards: cfg.dashboards,
        prices,
        forges,
        forge_lines,
        probes,
        reports,
        remote_write,
    })
}

/// Top-level sections of sextant.yml that belong to Alertmanager's configuration.
const AM_SECTIONS: [&str; 6] = [
    "route",
    "receivers",
    "inhibit_rules",
    "templates",
    "time_intervals",
    "mute_time_intervals",
];

/// Keys of `global:` that are Alertmanager's (the rest are Prometheus').
const AM_GLOBAL_KEYS: [&str; 26] = [
    "resolve_timeout",
    "http_config",
    "smtp_from",
    "smtp_hello",
    "smtp_smarthost",
    "smtp_auth_username",
    "smtp_auth_password",
    "smtp_auth_password_file",
    "smtp_auth_secret",
    "smtp_auth_identity",
    "smtp_require_tls",
    "smtp_tls_config",
    "slack_api_url",
    "slack_api_url_file",
    "telegram_api_url",
    "webex_api_url",
    "pagerduty_url",
    "opsgenie_api_url",
    "opsgenie_api_key",
    "opsgenie_api_key_file",
    "wechat_api_url",
    "wechat_api_secret",
    "wechat_api_corp_id",
    "victorops_api_url",
    "victorops_api_key",
    "victorops_api_key_file",
];

/// The key a YAML line starts (`name:` after `indent` spaces), if any.
fn line_key(line: &str) -> Option<(usize, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[indent..];
    let end = rest.find(':')?;
    let key = rest[..end].trim_end();
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some((indent, key))
}

/// Splits sextant.yml into the text Prometheus' sections are read from and, when it has any,
/// the text of Alertmanager's sections (Alertmanager's `global` keys go with them). Lines that
/// belong to the other part are blanked, so both keep the file's line numbers.
pub fn split_alertmanager(text: &str) -> (String, Option<String>) {
    let mut prom = Vec::new();
    let mut am = Vec::new();
    let mut any = false;
    let mut section = String::new();
    let mut child_indent: Option<usize> = None;
    let mut child_am = false;
    for line in text.lines() {
        let top = !line.starts_with([' ', '\t', '#', '-']) && !line.trim().is_empty();
        if top {
            if let Some((_, k)) = line_key(line) {
                section = k.to_string();
                child_indent = None;
                child_am = false;
            }
        }
        let to_am = if top {
            if section == "global" {
                // The header goes to both; Alertmanager's parser sees it only when needed.
                am.push(line);
                prom.push(line);
                continue;
            }
            AM_SECTIONS.contains(&section.as_str())
        } else if AM_SECTIONS.contains(&section.as_str()) {
            true
        } else if section == "global"
            && !line.trim().is_empty()
            && !line.trim_start().starts_with('#')
        {
            let indent = line.len() - line.trim_start().len();
            let ci = *child_indent.get_or_insert(indent);
            if indent == ci {
                child_am = line_key(line).is_some_and(|(_, k)| AM_GLOBAL_KEYS.contains(&k));
            }
            child_am
        } else {
            false
        };
        if to_am {
            any = true;
            am.push(line);
            prom.push("");
        } else {
            prom.push(line);
            am.push("");
        }
    }
    let join = |v: Vec<&str>| v.join("\n") + "\n";
    (join(prom), any.then(|| join(am)))
}

/// serde-saphyr's message without its location prefix and snippet, prefixed by the key on the
/// error's line when the message does not name it already (e.g. `scrape_interval: invalid
/// duration "15x"`).
fn yaml_message(e: &serde_saphyr::Error, text: &str, line: u64) -> String {
    let column = e.location().map(|l| l.column()).unwrap_or(0) as usize;
    let rendered = e.to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let mut msg = first.strip_prefix("error: ").unwrap_or(first);
    if let Some(rest) = msg.strip_prefix("line ") {
        if let Some(i) = rest.find(": ") {
            msg = &rest[i + 2..];
        }
    }
    let key = line
        .checked_sub(1)
        .and_then(|i| text.lines().nth(i as usize))
        .and_then(|l| {
            // Only when the error points at the value after `key:` (not at a whole mapping).
            let colon = l.find(':')?;
            if column <= colon + 1 {
                return None;
            }
            let k = l[..colon].trim().trim_start_matches("- ").trim();
            (!k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .then(|| k.to_string())
        });
    match key {
        Some(k) if !msg.contains(&k) && !msg.starts_with("unknown field") => {
            format!("{k}: {msg}")
        }
        _ => msg.to_string(),
    }
}

/// `sextant check config FILE...`: promtool-style output; false if any file is invalid.
pub fn check(files: &[PathBuf]) -> bool {
    let mut ok = true;
    for f in files {
        println!("Checking {}", f.display());
        match load(Some(f)).and_then(|l| check_clients(&l).map(|()| l)) {
            Ok(l) => {
                println!(
                    "  SUCCESS: {} is valid Sextant config file syntax ({} scrape configs, {} rule files)",
                    f.display(),
                    l.scrape_configs.len(),
                    l.rule_files.len()
                );
            }
            Err(e) => {
                ok = false;
                eprintln!("  FAILED: {e}");
            }
        }
        println!();
    }
    ok
}

/// Builds each job's HTTP client, which reads and checks its TLS files; reads the dashboards
/// directory.
fn check_clients(l: &Loaded) -> Result<(), ConfigError> {
    if let Some(dir) = l.dashboards_dir() {
        sextant_dashboards::load_dir(&dir).map_err(|e| ConfigError {
            file: e.file,
            line: e.line,
            msg: format!("dashboards: {}", e.msg),
        })?;
    }
    let file = || {
        l.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    for (i, f) in l.forges.iter().enumerate() {
        f.check_files().map_err(|e| ConfigError {
            file: file(),
            line: l.forge_lines.get(i).copied().unwrap_or(0),
            msg: format!("forges[{i}] (forge {:?}): {e}", f.name()),
        })?;
    }
    if let Some((t, line)) = &l.tls_server {
        t.server_config().map_err(|e| ConfigError {
            file: file(),
            line: *line,
            msg: format!("tls_server_config.{e}"),
        })?;
    }
    for p in &l.probes {
        p.check_files().map_err(|e| ConfigError {
            file: file(),
            line: 0,
            msg: format!("probes.modules.{}: {e}", p.module_name),
        })?;
    }
    for (i, c) in l.scrape_configs.iter().enumerate() {
        c.check_files()
            .and_then(|()| sextant_ingest::scrape::scrape_loop::build_clients(c).map(drop))
            .map_err(|e| ConfigError {
                file: l
                    .path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                line: l.scrape_lines.get(i).copied().unwrap_or(0),
                msg: format!("scrape_configs[{i}] (job {:?}): {e}", c.job_name),
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(text: &str) -> String {
        parse(text, "s.yml").unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_inheritance() {
        let l = parse("", "s.yml").unwrap();
        assert!(l.scrape_configs.is_empty());
        assert_eq!(l.global.scrape_interval.0, Duration::from_secs(60));
        let l = parse(
            "global:\n  scrape_interval: 15s\n  scrape_timeout: 20s\n  external_labels:\n    dc: x\nscrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['h:1']\n  - job_name: b\n    scrape_interval: 5s\n    scrape_timeout: 2s\nrule_files: ['r/*.yml']\n",
            "s.yml",
        );
        // The global timeout is above the interval: Prometheus rejects that.
        assert_eq!(
            l.unwrap_err().to_string(),
            "s.yml:2: global.scrape_timeout: global scrape timeout greater than scrape interval"
        );
        let l = parse(
            "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_interval: 5s\nrule_files: ['r/*.yml']\n",
            "s.yml",
        )
        .unwrap();
        assert_eq!(l.scrape_configs[0].interval(), Duration::from_secs(15));
        assert_eq!(l.scrape_configs[0].timeout(), Duration::from_secs(10));
        // Global timeout above the job's interval is capped at the interval.
        assert_eq!(l.scrape_configs[1].timeout(), Duration::from_secs(5));
        assert_eq!(l.rule_files, vec!["r/*.yml"]);
    }

    #[test]
    fn prices_section() {
        let l = parse(
            "prices:\n  budget_usd_per_day: 25\n  models:\n    - {provider: acme, model: house-1, input: 1, output: 2}\n",
            "s.yml",
        )
        .unwrap();
        let t = l.price_table().unwrap();
        assert_eq!(t.budget_usd_per_day, Some(25.0));
        assert!(t.resolve("acme", "house-1", 0).is_some());
        assert!(t.resolve("openai", "gpt-4o", i64::MAX / 2).is_some());
        assert_eq!(
            e("prices:\n  models:\n    - {provider: acme, model: m, input: -1, output: 2}\n"),
            "s.yml:3: prices.models[].input: -1 is not a price: want a non-negative number of USD per million tokens"
        );
        assert_eq!(
            e("prices:\n  budget_usd_per_day: -3\n"),
            "s.yml:2: prices.budget_usd_per_day: -3 is not a budget: want a non-negative number of USD"
        );
        assert!(e(
            "prices:\n  models:\n    - {provider: a, model: m, input: 1, output: 2, per: 1}\n"
        )
        .starts_with("s.yml:3"));
    }

    #[test]
    fn processes_and_slos_sections() {
        let l = parse(
            "processes:\n  process_names:\n    - name: agents\n      comm: [claude]\nslos:\n  - name: api\n    objective: 99.9\n    sli:\n      bad: sum(rate(e[{{.window}}]))\n      total: sum(rate(t[{{.window}}]))\n",
            "s.yml",
        )
        .unwrap();
        assert_eq!(l.processes.unwrap().process_names.len(), 1);
        assert_eq!(l.slos.len(), 1);
        assert_eq!(l.slos[0].name, "api");
        let m = e("slos:\n  - name: api\n    objective: 99\n    sli: {total: x}\n    windw: 30d\n");
        assert!(m.starts_with("s.yml:5:"), "{m}");
        // Alertmanager's sections live in the same file; its global keys mix with Prometheus'.
        let l = parse(
            "global:\n  scrape_interval: 15s\n  resolve_timeout: 2m\n  smtp_from: a@b\nroute:\n  receiver: team\n  group_by: [alertname]\nreceivers:\n  - name: team\nscrape_configs: []\n",
            "s.yml",
        )
        .unwrap();
        assert_eq!(l.global.scrape_interval.0, Duration::from_secs(15));
        let am = l.alertmanager.unwrap();
        assert_eq!(am.receivers[0].name, "team");
        assert_eq!(am.global.smtp_from.as_deref(), Some("a@b"));
        let m2 = e("scrape_configs: []\nroute:\n  receiver: nobody\nreceivers:\n  - name: team\n");
        assert!(m2.starts_with("s.yml:3:"), "{m2}");
        assert!(m2.contains("nobody"), "{m2}");
        let mut l = parse("dashboards:\n  path: dash\n", "s.yml").unwrap();
        l.path = Some(PathBuf::from("/etc/sextant/sextant.yml"));
        assert_eq!(l.dashboards_dir(), Some(PathBuf::from("/etc/sextant/dash")));
        let m3 = e("dashboards:\n  path: dash\n  dir: x\n");
        assert!(m3.starts_with("s.yml:3: unknown field `dir`"), "{m3}");
        assert!(parse("global:\n  scrape_interval: 15s\n", "s.yml")
            .unwrap()
            .alertmanager
            .is_none());
        assert!(m.starts_with("s.yml:5:"), "{m}");
        assert!(m.contains("windw"), "{m}");
    }

    #[test]
    fn forges_section() {
        let l = parse(
            "forges:\n  - type: github\n    token_file: /run/gh\n    repos: [acme/widgets]\n    interval: 2m\n  - type: gitea\n    url: https://git.example/api/v1\n    repos: [org/app]\n",
            "s.yml",
        )
        .unwrap();
        assert_eq!(l.forges.len(), 2);
        assert_eq!(l.forges[0].name(), "github");
        assert_eq!(l.forges[0].interval.0, Duration::from_secs(120));
        assert_eq!(l.forge_lines, vec![2, 6]);
        let m = e("forges:\n  - type: github\n    repos: [acme/widgets]\n    tokn: x\n");
        assert!(m.starts_with("s.yml:4: unknown field `tokn`"), "{m}");
        let m = e("forges:\n  - type: github\n    repos: [acme/widgets]\n  - type: gitea\n    repos: [org/app]\n");
        assert_eq!(
            m,
            "s.yml:4: forges[1] (forge \"gitea\"): url: required for type gitea (e.g. https://gitea.example.com/api/v1)"
        );
        let m =
            e("forges:\n  - type: github\n    repos: [a/b]\n  - type: github\n    repos: [c/d]\n");
        assert!(
            m.starts_with("s.yml:4: forges[1] (forge \"github\"): name: two forges named"),
            "{m}"
        );
        let m = e("forges:\n  - type: gitlab\n    repos: [a/b]\n");
        assert!(m.starts_with("s.yml:2:") && m.contains("gitlab"), "{m}");
    }

    #[test]
    fn probes_section() {
        let l = parse(
            "global:\n  scrape_interval: 20s\nprobes:\n  modules:\n    tcp_connect:\n      prober: tcp\n      timeout: 3s\n  targets:\n    - job_name: gateway\n      module: tcp_connect\n      targets: ['127.0.0.1:8644', 'gw:9000']\n      labels: {team: platform}\n",
            "s.yml",
        )
        .unwrap();
        assert_eq!(l.probes.len(), 2);
        assert_eq!(l.probes[0].job, "gateway");
        assert_eq!(l.probes[1].target, "gw:9000");
        // The interval comes from global.scrape_interval, the timeout from the module.
        assert_eq!(l.probes[0].interval, Duration::from_secs(20));
        assert_eq!(l.probes[0].timeout, Duration::from_secs(3));
        assert_eq!(l.probes[0].labels["team"], "platform");
        let m = e("probes:\n  modules:\n    m:\n      prober: http\n      http:\n        no_follow_redirect: true\n");
        assert!(
            m.starts_with("s.yml:6: unknown field `no_follow_redirect`"),
            "{m}"
        );
        let m = e("probes:\n  modules:\n    m: {prober: tcp}\n  targets:\n    - job_name: gw\n      module: m\n      interval: 0s\n      targets: [a:1]\n");
        assert_eq!(
            m,
            "s.yml:5: probes.targets[0].interval: must be greater than 0"
        );
        let m = e("probes:\n  modules:\n    m:\n      prober: http\n      http:\n        method: 'GE T'\n");
        assert_eq!(
            m,
            "s.yml:4: probes.modules.m.http.method: invalid method \"GE T\""
        );
    }

    #[test]
    fn archive_section_is_checked() {
        let m = e("global:\n  scrape_interval: 15s\narchive:\n  bucket: b\n  buckett: c\n");
        assert!(m.starts_with("s.yml:5: unknown field `buckett`"), "{m}");
        let m = e("archive:\n  bucket: b\n  access_key_id: x\n");
        assert!(
            m.starts_with("s.yml:2: archive: access_key_id and secret_access_key"),
            "{m}"
        );
        let m = e("archive:\n  bucket: b\n  endpoint: minio:9000\n");
        assert!(m.contains("archive.endpoint"), "{m}");
        let ok = parse(
            "archive:\n  bucket: b\n  prefix: x/\n  endpoint: http://127.0.0.1:9000\n  force_path_style: true\n  upload_interval: 30s\n",
            "s.yml",
        )
        .unwrap();
        let a = ok.archive.unwrap();
        assert_eq!(
            (a.bucket.as_str(), a.upload_interval.0.as_secs()),
            ("b", 30)
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let m = e("global:\n  scrape_interval: 15s\nalerting: {}\n");
        assert!(
            m.starts_with("s.yml:3: unknown field `alerting`, expected one of"),
            "{m}"
        );
        let m = e("scrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n");
        assert!(
            m.starts_with("s.yml:3: unknown field `scrape_intervall`"),
            "{m}"
        );
        let m = e("scrape_configs:\n  - job_name: a\n    scrape_interval: 5x\n");
        assert!(
            m.starts_with("s.yml:3: scrape_interval: invalid duration \"5x\""),
            "{m}"
        );
        let m = e(
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
        );
        assert_eq!(
            m,
            "s.yml:2: scrape_configs[0] (job \"a\"): scrape_timeout: scrape timeout greater than scrape interval for scrape config with job name \"a\""
        );
        let m = e("scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: hashmod\n        target_label: x\n");
        assert!(m.starts_with("s.yml:4: "), "{m}");
        assert!(
            m.contains("relabel configuration for hashmod requires non-zero modulus"),
            "{m}"
        );
        let m = e("scrape_configs:\n  - job_name: a\n    metric_relabel_configs:\n      - source_labels: [a]\n        regex: '(unclosed'\n        target_label: b\n");
        assert!(m.contains("invalid regex \"(unclosed\""), "{m}");
        let m = e("scrape_configs:\n  - job_name: a\n  - job_name: a\n");
        assert!(m.starts_with("s.yml:3: scrape_configs[1].job_name: found multiple scrape configs with job name \"a\""), "{m}");
        let m = e("scrape_configs:\n  - job_name: a\n    scheme: ftp\n");
        assert!(
            m.starts_with("s.yml:3: scheme: invalid value \"ftp\""),
            "{m}"
        );
        let m =
            e("scrape_configs:\n  - job_name: a\n    http_sd_configs:\n      - url: not a url\n");
        assert!(m.starts_with("s.yml:4: url: invalid URL"), "{m}");
        let m = e("scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: ['/x/**/a.json']\n");
        assert!(m.contains("is not valid for file discovery"), "{m}");
        let m = e("scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [h:1]\n        labels: {0bad: x}\n");
        assert!(m.contains("\"0bad\" is not a valid label name"), "{m}");
        let m = e("scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: p}\n    bearer_token: t\n");
        assert!(m.contains("at most one of basic_auth"), "{m}");
        // An unset global timeout is capped at a short global interval, not an error.
        let l = parse("global:\n  scrape_interval: 2s\n", "s.yml").unwrap();
        assert_eq!(l.global.timeout(), Duration::from_secs(2));
        let m = e("scrape_configs: [\n");
        assert!(m.starts_with("s.yml:"), "{m}");
    }

    #[test]
    fn remote_read_and_remote_engines() {
        let l = parse(
            "remote_read:\n  - url: http://p:9090/api/v1/read\n    read_recent: true\n    required_matchers: {team: a}\n    remote_timeout: 30s\nremote_engines:\n  - name: vm\n    url: http://vm:8428\n    api: export\nquery_local_storage: false\n",
            "s.yml",
        )
        .unwrap();
        assert_eq!(l.remote_read.len(), 1);
        assert!(l.remote_read[0].read_recent);
        assert_eq!(
            l.remote_read[0].remote_timeout.map(|d| d.0),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            l.remote_engines[0].api,
            sextant_remote::promapi::Api::Export
        );
        assert!(l.remote_only);
        assert!(!parse("", "s.yml").unwrap().remote_only);
        let m = e("remote_read:\n  - url: http://p/api/v1/read\n    bogus: 1\n");
        assert!(m.starts_with("s.yml:3:") && m.contains("bogus"), "{m}");
        let m = e("remote_read:\n  - url: http://p/a\n  - url: http://p/a\n");
        assert!(
            m.starts_with("s.yml:3: remote_read[1]: duplicate remote read configs"),
            "{m}"
        );
        let m = e("remote_engines:\n  - name: vm\n    url: ftp://x\n");
        assert!(
            m.starts_with("s.yml:2: remote_engines[0].url: scheme \"ftp\""),
            "{m}"
        );
        let m = e("remote_engines:\n  - name: vm\n    url: http://x\n    api: graphql\n");
        assert!(m.contains("graphql"), "{m}");
        let m = e("query_local_storage: false\n");
        assert!(
            m.contains("needs at least one remote_read or remote_engines entry"),
            "{m}"
        );
    }

    #[test]
    fn remote_write_section() {
        let l = parse(
            "remote_write:\n  - url: http://vm:8428/api/v1/write\n    remote_timeout: 10s\n    headers: {X-Scope-OrgID: t1}\n    write_relabel_configs:\n      - source_labels: [__name__]\n        regex: go_.*\n        action: drop\n    queue_config: {capacity: 2500, max_shards: 4, min_shards: 2, max_samples_per_send: 500, batch_send_deadline: 1s, min_backoff: 10ms, max_backoff: 2s, retry_on_http_429: false}\n    metadata_config: {send: false, send_interval: 2m}\n    basic_auth: {username: u, password: p}\n    tls_config: {insecure_skip_verify: true, server_name: vm}\n    protobuf_message: io.prometheus.write.v2.Request\n",
            "s.yml",
        )
        .unwrap();
        let rw = &l.remote_write[0];
        assert_eq!(rw.queue_config.max_shards, 4);
        assert_eq!(
            rw.queue_config.batch_send_deadline.0,
            Duration::from_secs(1)
        );
        assert!(!rw.queue_config.retry_on_http_429);
        assert!(!rw.metadata_config.send);
        assert_eq!(rw.write_relabel_configs.len(), 1);
        assert_eq!(rw.protocol(), Ok(crate::forward::Protocol::V2));
        // Prometheus' defaults.
        let l = parse("remote_write:\n  - url: http://vm/api/v1/write\n", "s.yml").unwrap();
        let q = &l.remote_write[0].queue_config;
        assert_eq!(
            (
                q.capacity,
                q.max_shards,
                q.min_shards,
                q.max_samples_per_send
            ),
            (10_000, 50, 1, 2_000)
        );
        assert_eq!(l.remote_write[0].remote_timeout.0, Duration::from_secs(30));
        assert_eq!(
            l.remote_write[0].protocol(),
            Ok(crate::forward::Protocol::V1)
        );

        let m = e("remote_write:\n  - url: http://vm/api/v1/write\n    queue_config:\n      max_shard: 3\n");
        assert!(m.starts_with("s.yml:4: unknown field `max_shard`"), "{m}");
        let m = e("remote_write:\n  - url: http://vm/api/v1/write\n    protobuf_message: v3\n");
        assert!(m.starts_with("s.yml:2: remote_write[0]"), "{m}");
        assert!(m.contains("unknown remote write protobuf message"), "{m}");
        let m = e(
            "remote_write:\n  - url: http://a/w\n    name: x\n  - url: http://b/w\n    name: x\n",
        );
        assert!(m.starts_with("s.yml:4: remote_write[1]"), "{m}");
        let m = e("remote_write:\n  - url: http://a/w\n    headers: {Authorization: x}\n");
        assert!(m.contains("is a reserved header"), "{m}");
        let m = e("remote_write:\n  - url: http://a/w\n    basic_auth: {username: u}\n    bearer_token: t\n");
        assert!(m.contains("at most one of basic_auth"), "{m}");
    }
}
