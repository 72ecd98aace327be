//! Service probes: blackbox_exporter built in. Each `probes.targets` entry of `sextant.yml`
//! probes its targets with a blackbox module (`http`, `tcp`, `dns`) on an interval and writes
//! the series a Prometheus scrape of blackbox's `/probe` would store after the usual
//! relabelling (`instance` = target, `job` = job name): `probe_success`,
//! `probe_duration_seconds`, `probe_http_*`, `probe_ssl_earliest_cert_expiry`, `probe_dns_*`…
//! Series a probe stops producing, and all series of a probe removed on reload, get staleness
//! markers as a scrape would.

pub mod config;
pub mod dns;
pub mod http;
pub mod tcp;
pub mod tls;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sextant_model::{Labels, Sample, STALE_NAN};

use crate::remote_write::{SeriesSamples, WriteBatch};
use crate::Sink;
pub use config::{IpProtocol, Module, ProbeTargets, ProberKind, ProbesConfig};

/// The samples of one probe, before job/instance labels are added.
#[derive(Debug, Default, Clone)]
pub struct Samples(pub Vec<SampleRow>);

/// One sample: metric name, extra labels, value.
pub type SampleRow = (String, Vec<(String, String)>, f64);

impl Samples {
    /// Adds `name{labels} value`.
    pub fn push(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.0.push((
            name.to_string(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            v,
        ));
    }

    /// The value of `name` (first series of that name).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|s| s.0 == name).map(|s| s.2)
    }

    /// The value of `name{label=value}`.
    pub fn get_with(&self, name: &str, label: (&str, &str)) -> Option<f64> {
        self.0
            .iter()
            .find(|s| s.0 == name && s.1.iter().any(|(k, v)| k == label.0 && v == label.1))
            .map(|s| s.2)
    }
}

/// The outcome of one probe: success, the prober's samples and why it failed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub success: bool,
    pub samples: Samples,
    /// Why the probe failed (empty on success), as blackbox_exporter would log it.
    pub error: String,
}

impl Outcome {
    fn fail(samples: Samples, error: impl Into<String>) -> Outcome {
        Outcome {
            success: false,
            samples,
            error: error.into(),
        }
    }
}

/// Runs one probe of `target` with `module`, bounded by `timeout`. Adds `probe_success` and
/// `probe_duration_seconds`.
pub async fn run_probe(module: &Module, target: &str, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let fut = async {
        match module.prober {
            ProberKind::Http => http::probe(module, target).await,
            ProberKind::Tcp => tcp::probe(module, target).await,
            ProberKind::Dns => dns::probe(module, target).await,
        }
    };
    let mut out = match tokio::time::timeout(timeout, fut).await {
        Ok(o) => o,
        Err(_) => Outcome::fail(
            Samples::default(),
            format!("timeout: no result within {}ms", timeout.as_millis()),
        ),
    };
    out.samples
        .push("probe_duration_seconds", &[], start.elapsed().as_secs_f64());
    out.samples
        .push("probe_success", &[], if out.success { 1.0 } else { 0.0 });
    out
}

/// Resolves `host` as blackbox's `chooseProtocol` does: the preferred family first, the other
/// one if `fallback`. Adds `probe_dns_lookup_time_seconds`, `probe_ip_protocol` and
/// `probe_ip_addr_hash`.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    preferred: IpProtocol,
    fallback: bool,
    out: &mut Samples,
) -> Result<(SocketAddr, Duration), String> {
    let start = Instant::now();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::net::lookup_host((bare, port)).await {
            Ok(a) => a.collect(),
            Err(e) => {
                out.push(
                    "probe_dns_lookup_time_seconds",
                    &[],
                    start.elapsed().as_secs_f64(),
                );
                return Err(format!("resolving {bare}: {e}"));
            }
        },
    };
    let took = start.elapsed();
    out.push("probe_dns_lookup_time_seconds", &[], took.as_secs_f64());
    let want_v6 = preferred == IpProtocol::Ip6;
    let chosen = addrs
        .iter()
        .find(|a| a.is_ipv6() == want_v6)
        .or_else(|| fallback.then(|| addrs.first()).flatten())
        .copied();
    let Some(addr) = chosen else {
        return Err(format!(
            "resolving {bare}: no {} address (ip_protocol_fallback is off)",
            if want_v6 { "IPv6" } else { "IPv4" }
        ));
    };
    out.push(
        "probe_ip_protocol",
        &[],
        if addr.is_ipv6() { 6.0 } else { 4.0 },
    );
    let octets = match addr.ip() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    out.push("probe_ip_addr_hash", &[], fnv32a(&octets) as f64);
    Ok((addr, took))
}

/// FNV-1a 32-bit, which blackbox_exporter uses over the address bytes for `probe_ip_addr_hash`.
fn fnv32a(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &x in b {
        h ^= x as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Splits `host:port` (`[v6]:port`); `default_port` when there is none.
pub(crate) fn split_host_port(t: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    if let Some(rest) = t.strip_prefix('[') {
        let (h, p) = rest
            .split_once(']')
            .ok_or_else(|| format!("target {t:?}: missing ']'"))?;
        return match p.strip_prefix(':') {
            Some(p) => Ok((h.to_string(), parse_port(t, p)?)),
            None if p.is_empty() => default_port
                .map(|d| (h.to_string(), d))
                .ok_or_else(|| format!("target {t:?}: missing port")),
            None => Err(format!("target {t:?}: unexpected {p:?} after ']'")),
        };
    }
    match t.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Ok((h.to_string(), parse_port(t, p)?)),
        Some(_) => Err(format!(
            "target {t:?}: IPv6 addresses need brackets ([::1]:53)"
        )),
        None => default_port
            .map(|d| (t.to_string(), d))
            .ok_or_else(|| format!("target {t:?}: missing port (host:port)")),
    }
}

fn parse_port(t: &str, p: &str) -> Result<u16, String> {
    p.parse()
        .map_err(|_| format!("target {t:?}: invalid port {p:?}"))
}

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One probe as scheduled: a target of a `probes.targets` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSpec {
    pub job: String,
    pub module_name: String,
    pub module: Module,
    pub target: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub labels: BTreeMap<String, String>,
}

impl ProbeSpec {
    /// All probes of a checked configuration; `default_interval` is `global.scrape_interval`.
    pub fn all(cfg: &ProbesConfig, default_interval: Duration) -> Vec<ProbeSpec> {
        let mut out = Vec::new();
        for t in &cfg.targets {
            let t = &t.value;
            let Some(module) = cfg.modules.get(&t.module).map(|m| &m.value) else {
                continue; // refused by validate()
            };
            let (interval, timeout) = t.interval_timeout(module, default_interval);
            for target in &t.targets {
                out.push(ProbeSpec {
                    job: t.job_name.clone(),
                    module_name: t.module.clone(),
                    module: module.clone(),
                    target: target.clone(),
                    interval,
                    timeout,
                    labels: t.labels.clone(),
                });
            }
        }
        out
    }

    /// Reads the module's TLS files (CA, client certificate and key), as a probe would.
    pub fn check_files(&self) -> Result<(), String> {
        let m = &self.module;
        let t = match m.prober {
            ProberKind::Http => &m.http.tls_config,
            ProberKind::Tcp => &m.tcp.tls_config,
            ProberKind::Dns => return Ok(()),
        };
        if t.ca_file.is_some() || t.cert_file.is_some() {
            tls::client_config(t)?;
        }
        Ok(())
    }

    fn key(&self) -> (String, String, String) {
        (
            self.job.clone(),
            self.module_name.clone(),
            self.target.clone(),
        )
    }

    fn series_labels(&self, name: &str, extra: &[(String, String)]) -> Labels {
        let mut pairs: Vec<(String, String)> =
            Vec::with_capacity(3 + self.labels.len() + extra.len());
        pairs.push(("__name__".into(), name.into()));
        pairs.push(("job".into(), self.job.clone()));
        pairs.push(("instance".into(), self.target.clone()));
        pairs.extend(self.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        pairs.extend(extra.iter().cloned());
        Labels::from_pairs(pairs)
    }
}

/// The last result of a probe, for `/api/sextant/probes`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProbeStatus {
    pub job: String,
    pub instance: String,
    pub module: String,
    pub prober: &'static str,
    pub interval_seconds: f64,
    /// Labels added to the probe's series.
    pub labels: BTreeMap<String, String>,
    /// Unix ms of the last probe's start; absent before the first one finished.
    pub last_probe_ms: Option<i64>,
    pub success: Option<bool>,
    pub duration_seconds: Option<f64>,
    pub error: String,
    /// The last probe's samples (`name{labels}` → value).
    pub samples: BTreeMap<String, f64>,
}

struct Running {
    spec: ProbeSpec,
    task: tokio::task::JoinHandle<()>,
    status: Arc<Mutex<ProbeStatus>>,
    /// Series written by the last probe, for staleness markers.
    written: Arc<Mutex<HashSet<Labels>>>,
}

/// Schedules the configured probes and applies reloads: new probes start, changed ones
/// restart, removed ones stop and get staleness markers.
pub struct ProbeManager {
    sink: Arc<dyn Sink>,
    handle: tokio::runtime::Handle,
    running: Mutex<HashMap<(String, String, String), Running>>,
}

impl ProbeManager {
    /// Must be called inside a tokio runtime; probes run on it.
    pub fn new(sink: Arc<dyn Sink>) -> Arc<ProbeManager> {
        Arc::new(ProbeManager {
            sink,
            handle: tokio::runtime::Handle::current(),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the running probes with `specs`.
    pub fn apply(&self, specs: Vec<ProbeSpec>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let wanted: HashMap<_, _> = specs.into_iter().map(|s| (s.key(), s)).collect();
        let gone: Vec<_> = running
            .iter()
            .filter(|(k, r)| wanted.get(*k) != Some(&r.spec))
            .map(|(k, _)| k.clone())
            .collect();
        let mut stale = Vec::new();
        let mut carried = HashMap::new();
        for k in gone {
            if let Some(r) = running.remove(&k) {
                r.task.abort();
                if wanted.contains_key(&k) {
                    // A changed probe keeps its series set: its next run marks what it no
                    // longer writes, without a gap in what it still writes.
                    carried.insert(k, r.written);
                } else {
                    let written = r.written.lock().unwrap_or_else(|e| e.into_inner());
                    stale.extend(written.iter().cloned());
                }
            }
        }
        if !stale.is_empty() {
            let sink = self.sink.clone();
            let t = now_ms();
            self.handle
                .spawn_blocking(move || write_stale(&*sink, stale, t));
        }
        for (k, spec) in wanted {
            if running.contains_key(&k) {
                continue;
            }
            let status = Arc::new(Mutex::new(ProbeStatus {
                job: spec.job.clone(),
                instance: spec.target.clone(),
                module: spec.module_name.clone(),
                prober: spec.module.prober.as_str(),
                interval_seconds: spec.interval.as_secs_f64(),
                labels: spec.labels.clone(),
                last_probe_ms: None,
                success: None,
                duration_seconds: None,
                error: String::new(),
                samples: BTreeMap::new(),
            }));
            let written = carried
                .remove(&k)
                .unwrap_or_else(|| Arc::new(Mutex::new(HashSet::new())));
            let task = self.handle.spawn(probe_loop(
                spec.clone(),
                self.sink.clone(),
                status.clone(),
                written.clone(),
            ));
            running.insert(
                k,
                Running {
                    spec,
                    task,
                    status,
                    written,
                },
            );
        }
    }

    /// The probes and their last results, sorted by job and instance.
    pub fn statuses(&self) -> Vec<ProbeStatus> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<ProbeStatus> = running
            .values()
            .map(|r| r.status.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        v.sort_by(|a, b| (&a.job, &a.instance, &a.module).cmp(&(&b.job, &b.instance, &b.module)));
        v
    }

    /// Stops every probe (no staleness markers: used at shutdown).
    pub fn stop(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for (_, r) in running.drain() {
            r.task.abort();
        }
    }
}

impl Drop for ProbeManager {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_stale(sink: &dyn Sink, series: Vec<Labels>, t: i64) {
    let batch = WriteBatch {
        series: series
            .into_iter()
            .map(|labels| SeriesSamples {
                labels,
                samples: vec![Sample::new(t, STALE_NAN)],
                histograms: Vec::new(),
                exemplars: Vec::new(),
            })
            .collect(),
        ..WriteBatch::default()
    };
    if let Err(e) = sink.store(batch) {
        tracing::warn!(error = %e, "writing probe staleness markers failed");
    }
}

async fn probe_loop(
    spec: ProbeSpec,
    sink: Arc<dyn Sink>,
    status: Arc<Mutex<ProbeStatus>>,
    written: Arc<Mutex<HashSet<Labels>>>,
) {
    // Spread targets over the interval like Prometheus' scrape offsets.
    let offset = {
        let h = fnv32a(format!("{}/{}/{}", spec.job, spec.module_name, spec.target).as_bytes());
        let ms = spec.interval.as_millis().max(1) as u64;
        Duration::from_millis(h as u64 % ms.min(5_000))
    };
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, spec.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let t = now_ms();
        let out = run_probe(&spec.module, &spec.target, spec.timeout).await;
        if !out.success {
            tracing::debug!(job = %spec.job, target = %spec.target, error = %out.error, "probe failed");
        }
        let mut series = Vec::with_capacity(out.samples.0.len());
        let mut now_written = HashSet::with_capacity(out.samples.0.len());
        let mut shown = BTreeMap::new();
        for (name, extra, v) in &out.samples.0 {
            let labels = spec.series_labels(name, extra);
            if !now_written.insert(labels.clone()) {
                continue;
            }
            let key = if extra.is_empty() {
                name.clone()
            } else {
                let inner: Vec<String> = extra.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                format!("{name}{{{}}}", inner.join(","))
            };
            shown.insert(key, *v);
            series.push(SeriesSamples {
                labels,
                samples: vec![Sample::new(t, *v)],
                histograms: Vec::new(),
                exemplars: Vec::new(),
            });
        }
        let vanished: Vec<Labels> = {
            let mut w = written.lock().unwrap_or_else(|e| e.into_inner());
            let v = w.difference(&now_written).cloned().collect();
            *w = now_written;
            v
        };
        series.extend(vanished.into_iter().map(|labels| SeriesSamples {
            labels,
            samples: vec![Sample::new(t, STALE_NAN)],
            histograms: Vec::new(),
            exemplars: Vec::new(),
        }));
        {
            let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
            s.last_probe_ms = Some(t);
            s.success = Some(out.success);
            s.duration_seconds = out.samples.get("probe_duration_seconds");
            s.error = out.error.clone();
            s.samples = shown;
        }
        let sink = sink.clone();
        let batch = WriteBatch {
            series,
            ..WriteBatch::default()
        };
        match tokio::task::spawn_blocking(move || sink.store(batch)).await {
            Ok(Ok(stored)) if stored.problems > 0 => tracing::warn!(
                job = %spec.job,
                target = %spec.target,
                problem = stored.first_problem.as_deref().unwrap_or_default(),
                "some probe samples were refused"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(job = %spec.job, target = %spec.target, error = %e, "storing probe samples failed")
            }
            Err(e) => tracing::warn!(error = %e, "storing probe samples failed"),
        }
    }
}
