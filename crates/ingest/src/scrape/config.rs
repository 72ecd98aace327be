//! The `scrape_configs` entry of `sextant.yml`, field for field as in Prometheus' own
//! `scrape_config`, so a Prometheus user can paste theirs in. Values that can be checked alone
//! (durations, sizes, schemes, URLs, relabel rules) are checked while deserializing, so their
//! errors carry the YAML line; checks across fields live in [`ScrapeConfig::resolve`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use sextant_model::labels::is_valid_label_name;
use sextant_model::relabel::RelabelConfig;
use sextant_model::time::{format_duration, parse_duration, parse_size};

use super::http_client::HttpClientConfig;

/// A Prometheus duration in a config file (`15s`, `1m30s`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct PromDuration(pub Duration);

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(PromDuration)
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl fmt::Debug for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A byte size (`10MB`) in a config file; Prometheus' `body_size_limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like 10MB or a number of bytes")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ByteSize, E> {
                u64::try_from(n)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("invalid size {n}: must not be negative")))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ByteSize, E> {
                parse_size(s).map(ByteSize).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl<'de> Deserialize<'de> for Scheme {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "http" => Ok(Scheme::Http),
            "https" => Ok(Scheme::Https),
            other => Err(serde::de::Error::custom(format!(
                "scheme: invalid value {other:?}: expected \"http\" or \"https\""
            ))),
        }
    }
}

/// An absolute http(s) URL, checked when read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl(pub String);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match reqwest::Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                Ok(HttpUrl(s))
            }
            Ok(_) => Err(serde::de::Error::custom(format!(
                "url: {s:?} must be an http or https URL with a host"
            ))),
            Err(e) => Err(serde::de::Error::custom(format!(
                "url: invalid URL {s:?}: {e}"
            ))),
        }
    }
}

/// One `scrape_configs` entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// Default `job` label of the targets, and the name of the scrape pool.
    pub job_name: String,
    #[serde(default)]
    pub honor_labels: bool,
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    /// Defaults to `global.scrape_interval` (set by [`ScrapeConfig::resolve`]).
    pub scrape_interval: Option<PromDuration>,
    /// Defaults to `global.scrape_timeout`, capped at the interval.
    pub scrape_timeout: Option<PromDuration>,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    #[serde(default)]
    pub scheme: Scheme,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    pub proxy_url: Option<HttpUrl>,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    pub http_sd_configs: Vec<HttpSdConfig>,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Series per scrape after metric relabeling; more fails the scrape. 0 = no limit.
    #[serde(default)]
    pub sample_limit: u64,
    /// Labels per series; 0 = no limit.
    #[serde(default)]
    pub label_limit: u64,
    #[serde(default)]
    pub label_name_length_limit: u64,
    #[serde(default)]
    pub label_value_length_limit: u64,
    /// Largest accepted (uncompressed) body; 0 or unset = [`DEFAULT_BODY_SIZE_LIMIT`].
    #[serde(default)]
    pub body_size_limit: ByteSize,
}

/// Sextant caps scrape bodies even when `body_size_limit` is unset, so a runaway exporter
/// cannot exhaust memory (Prometheus has no cap by default).
pub const DEFAULT_BODY_SIZE_LIMIT: u64 = 256 << 20;

fn yes() -> bool {
    true
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

/// `basic_auth`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

/// `authorization` (the `Authorization` header as `<type> <credentials>`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<String>,
}

/// `tls_config`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    /// Name to verify the server certificate against (and to send as SNI).
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `static_configs` entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `file_sd_configs` entry: JSON or YAML files of target groups, re-read every
/// `refresh_interval` (default 5m).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    pub files: Vec<String>,
    pub refresh_interval: Option<PromDuration>,
}

/// `http_sd_configs` entry: Prometheus HTTP service discovery, polled every
/// `refresh_interval` (default 60s), with its own HTTP client settings (the job's are for
/// its targets, not for the discovery endpoint).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSdConfig {
    pub url: HttpUrl,
    pub refresh_interval: Option<PromDuration>,
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    pub proxy_url: Option<HttpUrl>,
}

impl HttpSdConfig {
    /// The discovery endpoint's client settings.
    pub fn http_client(&self) -> HttpClientConfig {
        HttpClientConfig {
            basic_auth: self.basic_auth.clone(),
            authorization: self.authorization.clone(),
            bearer_token: self.bearer_token.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            tls_config: self.tls_config.clone(),
            follow_redirects: self.follow_redirects,
            proxy_url: self.proxy_url.clone(),
        }
    }
}

/// Prometheus' rule for `file_sd_configs.files`: one `*` at most, in the last path element,
/// and a `.json`, `.yml` or `.yaml` extension.
pub fn is_valid_sd_file_pattern(p: &str) -> bool {
    let (dir, base) = match p.rfind('/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => ("", p),
    };
    if dir.contains('*') || base.matches('*').count() > 1 {
        return false;
    }
    let lower_ok = [".json", ".yml", ".yaml", ".JSON", ".YML", ".YAML"]
        .iter()
        .any(|ext| base.ends_with(ext));
    lower_ok
}

impl ScrapeConfig {
    /// Fills interval and timeout from the global section and checks what cannot be checked
    /// field by field. Errors name the field, in Prometheus' words where it has them.
    pub fn resolve(
        &mut self,
        global_interval: Duration,
        global_timeout: Duration,
    ) -> Result<(), String> {
        let job = &self.job_name;
        if job.is_empty() {
            return Err("job_name: must not be empty".into());
        }
        let interval = self.scrape_interval.map(|d| d.0).unwrap_or(global_interval);
        if interval.is_zero() {
            return Err(format!(
                "scrape_interval: must be greater than 0 for scrape config with job name {job:?}"
            ));
        }
        let timeout = match self.scrape_timeout {
            Some(t) if t.0 > interval => {
                return Err(format!(
                    "scrape_timeout: scrape timeout greater than scrape interval for scrape config with job name {job:?}"
                ))
            }
            Some(t) if t.0.is_zero() => {
                return Err(format!(
                    "scrape_timeout: must be greater than 0 for scrape config with job name {job:?}"
                ))
            }
            Some(t) => t.0,
            None => global_timeout.min(interval),
        };
        self.scrape_interval = Some(PromDuration(interval));
        self.scrape_timeout = Some(PromDuration(timeout));
        if !self.metrics_path.starts_with('/') {
            return Err(format!(
                "metrics_path: {:?} must start with '/'",
                self.metrics_path
            ));
        }
        self.http_client().validate()?;
        for (i, sc) in self.static_configs.iter().enumerate() {
            for name in sc.labels.keys() {
                if !is_valid_label_name(name) {
                    return Err(format!(
                        "static_configs[{i}].labels: {name:?} is not a valid label name"
                    ));
                }
            }
            for t in &sc.targets {
                if t.is_empty() || t.contains('/') {
                    return Err(format!(
                        "static_configs[{i}].targets: {t:?} is not a valid hostname (want host:port)"
                    ));
                }
            }
        }
        for (i, f) in self.file_sd_configs.iter().enumerate() {
            if f.files.is_empty() {
                return Err(format!("file_sd_configs[{i}].files: must not be empty"));
            }
            for p in &f.files {
                if !is_valid_sd_file_pattern(p) {
                    return Err(format!(
                        "file_sd_configs[{i}].files: path name {p:?} is not valid for file discovery"
                    ));
                }
            }
            if f.refresh_interval.is_some_and(|d| d.0.is_zero()) {
                return Err(format!(
                    "file_sd_configs[{i}].refresh_interval: must be greater than 0"
                ));
            }
        }
        for (i, h) in self.http_sd_configs.iter().enumerate() {
            if h.refresh_interval.is_some_and(|d| d.0.is_zero()) {
                return Err(format!(
                    "http_sd_configs[{i}].refresh_interval: must be greater than 0"
                ));
            }
            h.http_client()
                .validate()
                .map_err(|e| format!("http_sd_configs[{i}]: {e}"))?;
        }
        for name in self.params.keys() {
            if name.is_empty() {
                return Err("params: parameter names must not be empty".into());
            }
        }
        Ok(())
    }

    /// Checks that the files the job reads at scrape time exist and are readable, as
    /// `promtool check config` does (they are re-read at every scrape, so this is advice for
    /// `check config`, not a startup requirement).
    pub fn check_files(&self) -> Result<(), String> {
        self.http_client().check_files()?;
        for (i, h) in self.http_sd_configs.iter().enumerate() {
            h.http_client()
                .check_files()
                .map_err(|e| format!("http_sd_configs[{i}].{e}"))?;
        }
        Ok(())
    }

    /// The targets' client settings.
    pub fn http_client(&self) -> HttpClientConfig {
        HttpClientConfig {
            basic_auth: self.basic_auth.clone(),
            authorization: self.authorization.clone(),
            bearer_token: self.bearer_token.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            tls_config: self.tls_config.clone(),
            follow_redirects: self.follow_redirects,
            proxy_url: self.proxy_url.clone(),
        }
    }

    /// Interval after [`resolve`](Self::resolve) (the global default before).
    pub fn interval(&self) -> Duration {
        self.scrape_interval
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(60))
    }

    /// Timeout after [`resolve`](Self::resolve).
    pub fn timeout(&self) -> Duration {
        self.scrape_timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(10))
    }

    /// The effective body size limit in bytes.
    pub fn body_limit(&self) -> u64 {
        if self.body_size_limit.0 == 0 {
            DEFAULT_BODY_SIZE_LIMIT
        } else {
            self.body_size_limit.0
        }
    }
}
