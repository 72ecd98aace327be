//! The `probes:` section of `sextant.yml`: blackbox_exporter's module format (`modules:` can be
//! pasted from a `blackbox.yml`) plus the list of targets that Prometheus would otherwise scrape
//! through `/probe?module=…&target=…`. Field names and defaults follow blackbox_exporter's
//! `config/config.go`; unknown keys are refused so a typo does not silently probe the wrong thing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use crate::scrape::config::{PromDuration, TlsConfig};

/// `probes:`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesConfig {
    /// Named modules, as in blackbox_exporter's `modules:`.
    #[serde(default)]
    pub modules: BTreeMap<String, Spanned<Module>>,
    /// What to probe with which module, how often, under which job.
    #[serde(default)]
    pub targets: Vec<Spanned<ProbeTargets>>,
}

/// One entry of `probes.targets`: a job probing some targets with one module.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbeTargets {
    /// The `job` label of the written series.
    pub job_name: String,
    /// A key of `probes.modules`.
    pub module: String,
    /// How often each target is probed; unset: `global.scrape_interval`.
    pub interval: Option<PromDuration>,
    /// Unset: the module's `timeout`, else the interval (at most 10s).
    pub timeout: Option<PromDuration>,
    /// URLs (http), `host:port` (tcp) or DNS servers `host[:port]` (dns); each becomes `instance`.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Extra labels on every series of these targets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Which prober a module uses.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProberKind {
    Http,
    Tcp,
    Dns,
}

impl ProberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProberKind::Http => "http",
            ProberKind::Tcp => "tcp",
            ProberKind::Dns => "dns",
        }
    }
}

/// A blackbox_exporter module.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Module {
    pub prober: ProberKind,
    pub timeout: Option<PromDuration>,
    #[serde(default)]
    pub http: HttpModule,
    #[serde(default)]
    pub tcp: TcpModule,
    #[serde(default)]
    pub dns: DnsModule,
}

/// `ip4` or `ip6` (blackbox's default is `ip6`, falling back to the other family).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum IpProtocol {
    #[serde(rename = "ip4")]
    Ip4,
    #[default]
    #[serde(rename = "ip6")]
    Ip6,
}

/// A boolean that defaults to true (also when its whole section is absent).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DefaultTrue(pub bool);

impl Default for DefaultTrue {
    fn default() -> Self {
        DefaultTrue(true)
    }
}

/// A regular expression from the config (RE2 syntax, unanchored, as in blackbox_exporter).
#[derive(Clone, Debug)]
pub struct ConfigRegex(pub regex::Regex);

impl PartialEq for ConfigRegex {
    fn eq(&self, o: &Self) -> bool {
        self.0.as_str() == o.0.as_str()
    }
}

impl<'de> Deserialize<'de> for ConfigRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::RegexBuilder::new(&s)
            .size_limit(1 << 20)
            .build()
            .map(ConfigRegex)
            .map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))
    }
}

/// `http:` of a module.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpModule {
    /// Accepted status codes; empty: any 2xx.
    #[serde(default)]
    pub valid_status_codes: Vec<u16>,
    /// Accepted versions (`HTTP/1.1`, `HTTP/1.0`); empty: any.
    #[serde(default)]
    pub valid_http_versions: Vec<String>,
    /// Request method; default `GET`.
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// Do not follow redirects (blackbox's older spelling of `follow_redirects: false`).
    #[serde(default)]
    pub no_follow_redirects: bool,
    /// Follow up to 10 redirects (default true).
    pub follow_redirects: Option<bool>,
    #[serde(default)]
    pub fail_if_ssl: bool,
    #[serde(default)]
    pub fail_if_not_ssl: bool,
    #[serde(default)]
    pub fail_if_body_matches_regexp: Vec<ConfigRegex>,
    #[serde(default)]
    pub fail_if_body_not_matches_regexp: Vec<ConfigRegex>,
    #[serde(default)]
    pub fail_if_header_matches: Vec<HeaderMatch>,
    #[serde(default)]
    pub fail_if_header_not_matches: Vec<HeaderMatch>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default)]
    pub ip_protocol_fallback: DefaultTrue,
    /// Bodies larger than this fail the probe (blackbox's `body_size_limit`, bytes); Sextant
    /// caps it at 16 MiB so one target cannot exhaust memory.
    pub body_size_limit: Option<u64>,
    pub basic_auth: Option<ProbeBasicAuth>,
    pub bearer_token: Option<String>,
}

/// `basic_auth` of an HTTP module.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbeBasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: String,
}

/// `fail_if_header_matches` / `fail_if_header_not_matches` entry.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    pub header: String,
    pub regexp: ConfigRegex,
    #[serde(default)]
    pub allow_missing: bool,
}

/// `tcp:` of a module.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TcpModule {
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default)]
    pub ip_protocol_fallback: DefaultTrue,
    /// Expect/send steps after connecting.
    #[serde(default)]
    pub query_response: Vec<QueryResponse>,
    /// Start TLS right after connecting.
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub tls_config: TlsConfig,
}

/// One `query_response` step: wait for a line matching `expect`, then write `send` + "\n",
/// then optionally upgrade to TLS.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueryResponse {
    pub expect: Option<ConfigRegex>,
    pub send: Option<String>,
    #[serde(default)]
    pub starttls: bool,
}

/// `dns:` of a module.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DnsModule {
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default)]
    pub ip_protocol_fallback: DefaultTrue,
    /// `udp` (default) or `tcp`.
    #[serde(default)]
    pub transport_protocol: Transport,
    #[serde(default)]
    pub query_name: String,
    /// Default `ANY`, as in blackbox_exporter.
    pub query_type: Option<String>,
    /// Default `IN`.
    pub query_class: Option<String>,
    /// Default `[NOERROR]`.
    #[serde(default)]
    pub valid_rcodes: Vec<String>,
    /// Default true.
    #[serde(default)]
    pub recursion_desired: DefaultTrue,
    #[serde(default)]
    pub validate_answer_rrs: RrValidator,
    #[serde(default)]
    pub validate_authority_rrs: RrValidator,
    #[serde(default)]
    pub validate_additional_rrs: RrValidator,
}

/// DNS transport.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

/// Checks on one section's records, each record rendered like `dig` (`name. ttl IN A 1.2.3.4`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RrValidator {
    #[serde(default)]
    pub fail_if_matches_regexp: Vec<ConfigRegex>,
    #[serde(default)]
    pub fail_if_all_match_regexp: Vec<ConfigRegex>,
    #[serde(default)]
    pub fail_if_not_matches_regexp: Vec<ConfigRegex>,
    #[serde(default)]
    pub fail_if_none_matches_regexp: Vec<ConfigRegex>,
}

/// Hard cap on HTTP bodies read by a probe.
pub const MAX_BODY: u64 = 16 << 20;

impl Module {
    /// Checks what serde cannot: values with a fixed vocabulary. Errors name the field.
    pub fn validate(&self) -> Result<(), String> {
        let h = &self.http;
        if let Some(m) = &h.method {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("http.method: invalid method {m:?}"));
            }
        }
        for c in &h.valid_status_codes {
            if !(100..=999).contains(c) {
                return Err(format!("http.valid_status_codes: {c} is not a status code"));
            }
        }
        for v in &h.valid_http_versions {
            if !["HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/2", "HTTP/3.0"].contains(&v.as_str()) {
                return Err(format!("http.valid_http_versions: unknown version {v:?}"));
            }
        }
        for (k, v) in &h.headers {
            if k.is_empty() || k.bytes().any(|b| b <= b' ' || b == b':' || b >= 0x7f) {
                return Err(format!("http.headers: invalid header name {k:?}"));
            }
            if v.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(format!("http.headers.{k}: value contains a line break"));
            }
        }
        if h.fail_if_ssl && h.fail_if_not_ssl {
            return Err("http: fail_if_ssl and fail_if_not_ssl cannot both be true".into());
        }
        if h.basic_auth.is_some() && h.bearer_token.is_some() {
            return Err("http: at most one of basic_auth and bearer_token".into());
        }
        for (name, t) in [("http", &h.tls_config), ("tcp", &self.tcp.tls_config)] {
            if t.cert_file.is_some() != t.key_file.is_some() {
                return Err(format!(
                    "{name}.tls_config: cert_file and key_file must both be set"
                ));
            }
        }
        let d = &self.dns;
        if self.prober == ProberKind::Dns && d.query_name.is_empty() {
            return Err("dns.query_name: query name must be set for DNS module".into());
        }
        if let Some(t) = &d.query_type {
            if super::dns::qtype_code(t).is_none() {
                return Err(format!("dns.query_type: query type {t:?} is not valid"));
            }
        }
        if let Some(c) = &d.query_class {
            if super::dns::qclass_code(c).is_none() {
                return Err(format!("dns.query_class: query class {c:?} is not valid"));
            }
        }
        for r in &d.valid_rcodes {
            if super::dns::rcode_code(r).is_none() {
                return Err(format!("dns.valid_rcodes: unknown rcode {r:?}"));
            }
        }
        Ok(())
    }

    /// Follow redirects?
    pub fn follow_redirects(&self) -> bool {
        !self.http.no_follow_redirects && self.http.follow_redirects.unwrap_or(true)
    }
}

impl ProbeTargets {
    /// The effective interval and timeout: the timeout defaults to the module's, else the
    /// interval capped at 10s, and never exceeds the interval.
    pub fn interval_timeout(
        &self,
        module: &Module,
        default_interval: Duration,
    ) -> (Duration, Duration) {
        let interval = self.interval.map(|d| d.0).unwrap_or(default_interval);
        let timeout = self
            .timeout
            .or(module.timeout)
            .map(|d| d.0)
            .unwrap_or_else(|| Duration::from_secs(10))
            .min(interval);
        (interval, timeout)
    }
}

impl ProbesConfig {
    /// Checks modules, references and labels: `(line, message)`, the message naming the field
    /// (`probes.targets[1].module: …`).
    pub fn validate(&self) -> Result<(), (u64, String)> {
        for (name, m) in &self.modules {
            m.value
                .validate()
                .map_err(|e| (m.referenced.line(), format!("probes.modules.{name}.{e}")))?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, st) in self.targets.iter().enumerate() {
            let t = &st.value;
            let line = st.referenced.line();
            let err = |m: String| (line, format!("probes.targets[{i}].{m}"));
            if t.job_name.is_empty() {
                return Err(err("job_name: must not be empty".into()));
            }
            if !self.modules.contains_key(&t.module) {
                return Err(err(format!(
                    "module: unknown module {:?} (not in probes.modules)",
                    t.module
                )));
            }
            if t.interval.is_some_and(|d| d.0.is_zero()) {
                return Err(err("interval: must be greater than 0".into()));
            }
            if t.timeout.is_some_and(|d| d.0.is_zero()) {
                return Err(err("timeout: must be greater than 0".into()));
            }
            for k in t.labels.keys() {
                if !sextant_model::labels::is_valid_label_name(k) || k.starts_with("__") {
                    return Err(err(format!("labels: {k:?} is not a valid label name")));
                }
                if k == "job" || k == "instance" {
                    return Err(err(format!(
                        "labels: {k:?} is set by the probe (job_name, target)"
                    )));
                }
            }
            for (j, target) in t.targets.iter().enumerate() {
                if target.trim().is_empty() {
                    return Err(err(format!("targets[{j}]: empty target")));
                }
                if !seen.insert((t.job_name.clone(), t.module.clone(), target.clone())) {
                    return Err(err(format!(
                        "targets[{j}]: {target:?} is probed twice by job {:?} with module {:?}",
                        t.job_name, t.module
                    )));
                }
            }
        }
        Ok(())
    }
}
