//! Where rule alerts go: the built-in alert manager (`--alertmanager-config`, state in
//! `<data-dir>/alerts.db`; off with `--no-builtin-alertmanager`) and external Alertmanagers
//! configured with Prometheus' own `alerting: alertmanagers:` section (`--alerting-config`);
//! like Prometheus, every alert goes to all of them ([`fan_out`]). The external path works like
//! Prometheus' notifier: a bounded queue (oldest alerts dropped when full), batches of up to
//! 256 alerts POSTed to every Alertmanager's `/api/v2/alerts`, retried with backoff.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sextant_alert::config::GlobalConfig;
use sextant_alert::receivers::{BuildContext, GlobalDefaults, Templates};
use sextant_alert::{AlertManager, Config, IntegrationBuilder, Options, Store};
use sextant_model::time::{format_rfc3339_ms, now_ms, parse_duration};
use sextant_rules::{Notifier, NotifyAlert};

/// Starts the built-in alert manager (not yet its timers; see [`AlertManager::start`]).
pub fn builtin(
    data_dir: &Path,
    config: Option<&Path>,
    from_sextant_yml: Option<(Config, Option<std::path::PathBuf>)>,
    external_url: &str,
) -> Result<(Arc<AlertManager>, SharedTemplates)> {
    // `--alertmanager-config` wins over the sections in sextant.yml.
    let (cfg, config) = match (config, from_sextant_yml) {
        (Some(p), _) => (sextant_alert::load_config(p)?, Some(p.to_path_buf())),
        (None, Some((c, path))) => (c, path),
        (None, None) => (Config::default_config(), None),
    };
    let config = config.as_deref();
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let db = data_dir.join("alerts.db");
    let store = Store::open(&db).with_context(|| format!("opening {}", db.display()))?;
    let templates = Arc::new(Mutex::new(load_templates(&cfg, config)?));
    let builder = integration_builder(templates.clone(), external_url.to_string());
    let opts = Options {
        external_url: external_url.to_string(),
        ..Options::default()
    };
    Ok((
        AlertManager::new(cfg, store, builder, opts, now_ms())?,
        templates,
    ))
}

/// Notification templates of the current configuration, swapped on reload.
pub type SharedTemplates = Arc<Mutex<Arc<Templates>>>;

/// Alertmanager's default templates plus the configuration's `templates:` files (relative to
/// the configuration file).
fn load_templates(cfg: &Config, path: Option<&Path>) -> Result<Arc<Templates>> {
    let base = path.and_then(Path::parent).unwrap_or(Path::new("."));
    Ok(Arc::new(
        Templates::load(&cfg.templates, base).map_err(|e| anyhow::anyhow!("templates: {e}"))?,
    ))
}

fn file_path(s: &Option<String>) -> Option<std::path::PathBuf> {
    s.as_ref().map(std::path::PathBuf::from)
}

/// `global:` defaults the integrations fall back to.
fn global_defaults(g: &GlobalConfig) -> std::result::Result<GlobalDefaults, String> {
    let http_config = match &g.http_config {
        Some(v) => Some(
            serde_json::from_value(v.clone()).map_err(|e| format!("global.http_config: {e}"))?,
        ),
        None => None,
    };
    Ok(GlobalDefaults {
        smtp_from: g.smtp_from.clone(),
        smtp_hello: g.smtp_hello.clone(),
        smtp_smarthost: g.smtp_smarthost.clone(),
        smtp_auth_username: g.smtp_auth_username.clone(),
        smtp_auth_password: g.smtp_auth_password.clone(),
        smtp_auth_password_file: file_path(&g.smtp_auth_password_file),
        smtp_auth_identity: g.smtp_auth_identity.clone(),
        smtp_require_tls: g.smtp_require_tls,
        slack_api_url: g.slack_api_url.clone(),
        slack_api_url_file: file_path(&g.slack_api_url_file),
        telegram_api_url: g.telegram_api_url.clone(),
        http_config,
    })
}

/// Builds a receiver's integrations (webhook, Slack, Telegram, email, Gitea, GitHub).
fn integration_builder(templates: SharedTemplates, external_url: String) -> IntegrationBuilder {
    Arc::new(move |r, g| {
        let ctx = BuildContext {
            global: global_defaults(g)?,
            external_url: external_url.trim_end_matches('/').to_string(),
            templates: templates.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        };
        let built = sextant_alert::receivers::build(r, &ctx).map_err(|e| e.to_string())?;
        Ok(built.into_iter().map(Arc::from).collect())
    })
}

/// How scheduled reports build the integrations of a receiver: the same templates and
/// `global:` defaults as the alert manager's. `templates` are the built-in alert manager's
/// (swapped on reload); without it they are loaded from `cfg` once.
pub fn report_receivers(
    cfg: &Config,
    path: Option<&Path>,
    templates: Option<SharedTemplates>,
    external_url: &str,
) -> Result<crate::report::schedule::BuildReceiver> {
    let templates = match templates {
        Some(t) => t,
        None => Arc::new(Mutex::new(load_templates(cfg, path)?)),
    };
    let global = cfg.global.clone();
    let external_url = external_url.trim_end_matches('/').to_string();
    Ok(Arc::new(move |r| {
        let ctx = BuildContext {
            global: global_defaults(&global)?,
            external_url: external_url.clone(),
            templates: templates.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        };
        sextant_alert::receivers::build(r, &ctx).map_err(|e| e.to_string())
    }))
}

/// Re-reads `--alertmanager-config` on `/-/reload` and SIGHUP; groups are rebuilt from the
/// stored alerts and the notification log prevents repeats.
pub fn reload_hook(
    am: Arc<AlertManager>,
    templates: SharedTemplates,
    path: Option<std::path::PathBuf>,
    sextant_yml: Option<std::path::PathBuf>,
) -> Option<crate::rules_cmd::ExtraReload> {
    Some(Box::new(move || {
        let (cfg, base) = match &path {
            Some(p) => (
                sextant_alert::load_config(p).map_err(|e| e.to_string())?,
                Some(p.clone()),
            ),
            None => {
                let loaded =
                    crate::config::load(sextant_yml.as_deref()).map_err(|e| e.to_string())?;
                (
                    loaded.alertmanager.unwrap_or_else(Config::default_config),
                    sextant_yml.clone(),
                )
            }
        };
        let shown = base
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "defaults".into());
        let t = load_templates(&cfg, base.as_deref()).map_err(|e| format!("{e:#}"))?;
        let old = std::mem::replace(&mut *templates.lock().unwrap_or_else(|e| e.into_inner()), t);
        if let Err(e) = am.update_config(cfg, now_ms()) {
            *templates.lock().unwrap_or_else(|e| e.into_inner()) = old;
            return Err(e.to_string());
        }
        tracing::info!(file = %shown, "alert manager configuration reloaded");
        Ok(())
    }))
}

#[derive(Debug, Deserialize)]
struct AlertingFile {
    #[serde(default)]
    alerting: Option<AlertingConfig>,
}

/// Prometheus' `alerting:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    #[serde(default)]
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

/// One `alertmanagers:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default = "default_scheme")]
    pub scheme: String,
    #[serde(default)]
    pub path_prefix: String,
    #[serde(default = "default_timeout")]
    pub timeout: String,
    #[serde(default = "default_api")]
    pub api_version: String,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub follow_redirects: Option<bool>,
    /// Accepted for compatibility; the HTTP version is negotiated by the client.
    #[serde(default)]
    #[allow(dead_code)]
    pub enable_http2: Option<bool>,
    /// Prometheus' `tls_config`: CA, client certificate, server name, skip verification.
    #[serde(default)]
    pub tls_config: sextant_alert::receivers::TlsConfig,
}

fn default_scheme() -> String {
    "http".into()
}
fn default_timeout() -> String {
    "10s".into()
}
fn default_api() -> String {
    "v2".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    /// Target labels matter only to Prometheus' relabelling, which Sextant does not do here.
    #[serde(default)]
    #[allow(dead_code)]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub credentials: Option<String>,
    #[serde(default)]
    pub credentials_file: Option<String>,
}

/// Reads the `alerting:` section of a Prometheus-style YAML file (other sections ignored).
pub fn load_alerting(path: &Path) -> Result<Vec<Target>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let f: AlertingFile = serde_saphyr::from_str(&text).map_err(|e| {
        let loc = e
            .location()
            .map(|l| format!("{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        anyhow::anyhow!(
            "{}:{loc}: {}",
            path.display(),
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
    let cfg = f.alerting.unwrap_or_default();
    let mut out = Vec::new();
    for am in cfg.alertmanagers {
        if am.api_version != "v2" {
            bail!(
                "{}: alertmanagers: api_version {:?} is not supported (only v2)",
                path.display(),
                am.api_version
            );
        }
        if am.scheme != "http" && am.scheme != "https" {
            bail!(
                "{}: alertmanagers: unknown scheme {:?}",
                path.display(),
                am.scheme
            );
        }
        let timeout = parse_duration(&am.timeout)
            .map_err(|e| anyhow::anyhow!("{}: alertmanagers: timeout: {e}", path.display()))?;
        let auth = if let Some(b) = &am.basic_auth {
            let pw = match (&b.password, &b.password_file) {
                (Some(p), _) => p.clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .with_context(|| format!("reading password_file {f}"))?
                    .trim_end()
                    .to_string(),
                (None, None) => String::new(),
            };
            Some(Auth::Basic(b.username.clone(), pw))
        } else if let Some(a) = &am.authorization {
            let c = match (&a.credentials, &a.credentials_file) {
                (Some(c), _) => c.clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .with_context(|| format!("reading credentials_file {f}"))?
                    .trim_end()
                    .to_string(),
                (None, None) => String::new(),
            };
            Some(Auth::Header(format!(
                "{} {c}",
                a.type_.as_deref().unwrap_or("Bearer")
            )))
        } else {
            None
        };
        let prefix = am.path_prefix.trim_end_matches('/');
        for sc in &am.static_configs {
            for t in &sc.targets {
                let mut target = Target {
                    url: format!("{}://{}{}/api/v2/alerts", am.scheme, t, prefix),
                    timeout,
                    auth: auth.clone(),
                    follow_redirects: am.follow_redirects.unwrap_or(true),
                    tls: am.tls_config.clone(),
                    resolve: None,
                };
                if let Some(sn) = &am.tls_config.server_name {
                    // Connect to the target's address but name `server_name` in SNI and
                    // the certificate check (the URL carries the name, resolve() the address).
                    let addr = std::net::ToSocketAddrs::to_socket_addrs(t.as_str())
                        .ok()
                        .and_then(|mut a| a.next())
                        .with_context(|| {
                            format!(
                                "{}: alertmanagers: cannot resolve target {t:?}",
                                path.display()
                            )
                        })?;
                    target.url = format!(
                        "{}://{}:{}{}/api/v2/alerts",
                        am.scheme,
                        sn,
                        addr.port(),
                        prefix
                    );
                    target.resolve = Some((sn.clone(), addr));
                }
                target
                    .client()
                    .map_err(|e| anyhow::anyhow!("{}: alertmanagers: {e}", path.display()))?;
                out.push(target);
            }
        }
    }
    if out.is_empty() {
        bail!(
            "{}: no alertmanagers configured under alerting.alertmanagers",
            path.display()
        );
    }
    Ok(out)
}

/// Credentials for an Alertmanager.
#[derive(Debug, Clone)]
pub enum Auth {
    Basic(String, String),
    /// A full `Authorization` header value.
    Header(String),
}

/// One Alertmanager endpoint.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub timeout: Duration,
    pub auth: Option<Auth>,
    pub follow_redirects: bool,
    pub tls: sextant_alert::receivers::TlsConfig,
    /// With `tls_config.server_name`: that name resolves to the target's address.
    pub resolve: Option<(String, std::net::SocketAddr)>,
}

impl Target {
    /// The HTTP client for this target (reads the TLS files).
    fn client(&self) -> Result<reqwest::blocking::Client, String> {
        let mut b = reqwest::blocking::Client::builder()
            .timeout(self.timeout)
            .redirect(if self.follow_redirects {
                reqwest::redirect::Policy::default()
            } else {
                reqwest::redirect::Policy::none()
            });
        let tls = &self.tls;
        let read = |p: &std::path::PathBuf, what: &str| {
            std::fs::read(p).map_err(|e| format!("tls_config.{what}: {}: {e}", p.display()))
        };
        if let Some(ca) = &tls.ca_file {
            let certs = reqwest::Certificate::from_pem_bundle(&read(ca, "ca_file")?)
                .map_err(|e| format!("tls_config.ca_file: {}: {e}", ca.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "tls_config.ca_file: {}: no PEM certificates found",
                    ca.display()
                ));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(c), Some(k)) => {
                let mut pem = read(c, "cert_file")?;
                pem.push(b'\n');
                pem.extend(read(k, "key_file")?);
                b = b.identity(
                    reqwest::Identity::from_pem(&pem)
                        .map_err(|e| format!("tls_config: client certificate: {e}"))?,
                );
            }
            (None, None) => {}
            _ => return Err("tls_config: cert_file and key_file must be set together".into()),
        }
        if tls.insecure_skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        match tls.min_version.as_deref() {
            None => {}
            Some("TLS12") => b = b.min_tls_version(reqwest::tls::Version::TLS_1_2),
            Some("TLS13") => b = b.min_tls_version(reqwest::tls::Version::TLS_1_3),
            Some(v) => {
                return Err(format!(
                    "tls_config.min_version: unsupported {v:?} (TLS12 or TLS13)"
                ))
            }
        }
        if let Some((name, addr)) = &self.resolve {
            b = b.resolve(name, *addr);
        }
        b.build()
            .map_err(|e| format!("building the HTTP client: {e}"))
    }
}

const QUEUE_CAPACITY: usize = 10_000;
const MAX_BATCH: usize = 256;
const ATTEMPTS: u32 = 3;

/// Sends rule alerts to external Alertmanagers.
pub struct ExternalNotifier {
    queue: Mutex<VecDeque<NotifyAlert>>,
    ready: Condvar,
}

impl ExternalNotifier {
    /// Starts the sender thread.
    pub fn start(targets: Vec<Target>) -> Arc<ExternalNotifier> {
        let n = Arc::new(ExternalNotifier {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
        });
        let me = n.clone();
        std::thread::Builder::new()
            .name("am-notifier".into())
            .spawn(move || me.run(targets))
            .map_err(|e| tracing::error!(error = %e, "cannot start the Alertmanager notifier"))
            .ok();
        n
    }

    fn run(&self, targets: Vec<Target>) {
        let clients: Vec<(Target, reqwest::blocking::Client)> = targets
            .into_iter()
            .filter_map(|t| match t.client() {
                Ok(c) => Some((t, c)),
                Err(e) => {
                    tracing::error!(url = %t.url, error = %e, "cannot build an HTTP client");
                    None
                }
            })
            .collect();
        loop {
            let batch: Vec<NotifyAlert> = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                while q.is_empty() {
                    q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
                }
                let n = q.len().min(MAX_BATCH);
                q.drain(..n).collect()
            };
            let body = serde_json::Value::Array(batch.iter().map(alert_json).collect()).to_string();
            std::thread::scope(|s| {
                for (t, c) in &clients {
                    let body = &body;
                    s.spawn(move || send(t, c, body));
                }
            });
        }
    }
}

fn send(t: &Target, c: &reqwest::blocking::Client, body: &str) {
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let mut req = c
            .post(&t.url)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        match &t.auth {
            Some(Auth::Basic(u, p)) => req = req.basic_auth(u, Some(p)),
            Some(Auth::Header(h)) => req = req.header("Authorization", h),
            None => {}
        }
        match req.send() {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                let code = r.status();
                tracing::warn!(url = %t.url, status = %code, attempt, "Alertmanager rejected alerts");
                if code.is_client_error() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(url = %t.url, error = %e, attempt, "cannot send alerts to Alertmanager")
            }
        }
        if attempt < ATTEMPTS {
            std::thread::sleep(delay);
            delay *= 2;
        }
    }
    tracing::error!(url = %t.url, "giving up sending a batch of alerts");
}

fn alert_json(a: &NotifyAlert) -> serde_json::Value {
    let labels: serde_json::Map<String, serde_json::Value> = a
        .labels
        .iter()
        .map(|l| {
            (
                l.name.to_string(),
                serde_json::Value::String(l.value.to_string()),
            )
        })
        .collect();
    let ann: serde_json::Map<String, serde_json::Value> = a
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let mut o = serde_json::json!({
        "labels": labels,
        "annotations": ann,
        "startsAt": format_rfc3339_ms(a.starts_at),
        "generatorURL": a.generator_url,
    });
    if a.ends_at > 0 {
        o["endsAt"] = serde_json::Value::String(format_rfc3339_ms(a.ends_at));
    }
    o
}

/// Sends every alert batch to each of several notifiers.
struct FanOut(Vec<Arc<dyn Notifier>>);

impl Notifier for FanOut {
    fn notify(&self, alerts: Vec<NotifyAlert>) {
        if let Some((last, rest)) = self.0.split_last() {
            for n in rest {
                n.notify(alerts.clone());
            }
            last.notify(alerts);
        }
    }
}

/// One notifier for all of `notifiers` (`None` when there are none).
pub fn fan_out(mut notifiers: Vec<Arc<dyn Notifier>>) -> Option<Arc<dyn Notifier>> {
    match notifiers.len() {
        0 => None,
        1 => notifiers.pop(),
        _ => Some(Arc::new(FanOut(notifiers))),
    }
}

impl Notifier for ExternalNotifier {
    fn notify(&self, alerts: Vec<NotifyAlert>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.extend(alerts);
        let over = q.len().saturating_sub(QUEUE_CAPACITY);
        if over > 0 {
            q.drain(..over);
            tracing::warn!(
                dropped = over,
                "alert queue full; dropped the oldest alerts"
            );
        }
        drop(q);
        self.ready.notify_one();
    }
}
