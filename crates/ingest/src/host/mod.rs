//! The built-in host collector: what `prometheus-node-exporter` would report about this machine,
//! read straight from /proc and /sys, so `sextant serve` monitors its host with no extra daemon.
//!
//! Metric names, types, help texts, label names and units follow Debian's node_exporter 1.5
//! (including its default device, mount-point and file-system exclusions), so dashboards built
//! for node_exporter (e.g. Grafana's "Node Exporter Full") work unchanged. Series carry
//! `job="node"` and `instance="<hostname>"`. Optional process groups (modelled on
//! process-exporter, see [`process`]) are collected in the same pass. Everything goes through the
//! [`Sink`] seam with TYPE/HELP metadata. A malformed file costs the series it would have fed and
//! counts in `sextant_host_collect_errors_total{collector}`; it never stops the loop.
//! docs/host-metrics.md lists the node_exporter families this does not implement.

pub mod parse;
pub mod process;
pub mod sys;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use sextant_model::{Labels, Metadata, MetricType, Sample};

use crate::remote_write::{SeriesSamples, WriteBatch};
use crate::sink::Sink;
use parse::Problems;
pub use process::{ProcessGroups, ProcessesConfig};

/// Largest /proc or /sys file read; anything longer is cut (and then likely fails to parse).
const MAX_FILE: u64 = 4 << 20;

/// Debian node_exporter's `--collector.diskstats.device-exclude` default.
pub const DISK_EXCLUDE: &str = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";
/// Debian node_exporter's `--collector.filesystem.mount-points-exclude` default.
pub const MOUNT_POINTS_EXCLUDE: &str =
    r"^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter's `--collector.filesystem.fs-types-exclude` default.
pub const FS_TYPES_EXCLUDE: &str = r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";
/// Debian node_exporter's `--collector.netdev.device-exclude` default.
pub const NETDEV_EXCLUDE: &str = r"^lo$";

/// Where to read from and how to label; the defaults read the live system.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// procfs mount (node_exporter's `--path.procfs`).
    pub proc_path: PathBuf,
    /// sysfs mount (`--path.sysfs`).
    pub sys_path: PathBuf,
    /// Root of the host file system; mount points and /etc/os-release are read under it
    /// (`--path.rootfs`).
    pub rootfs: PathBuf,
    /// The `job` label of every series.
    pub job: String,
    /// The `instance` label of every series.
    pub instance: String,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            proc_path: "/proc".into(),
            sys_path: "/sys".into(),
            rootfs: "/".into(),
            job: "node".into(),
            instance: hostname(),
        }
    }
}

/// This machine's host name (uname nodename), or "localhost" if it cannot be read.
pub fn hostname() -> String {
    sys::uname()
        .map(|u| u.nodename)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The collector could not be built (bad process-group configuration).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Processes(#[from] process::ConfigError),
}

/// Collects host metrics on demand; keeps the state that spans collections (error counts,
/// process-group counters).
pub struct HostCollector {
    opts: HostOptions,
    disk_exclude: Regex,
    mount_exclude: Regex,
    fs_type_exclude: Regex,
    netdev_exclude: Regex,
    netstat_fields: Regex,
    user_hz: f64,
    errors: BTreeMap<&'static str, u64>,
    processes: Option<ProcessGroups>,
    cpu_seconds_total: f64,
    statfs: Statfs,
}

/// Runs `statfs` on a helper thread so that a hung mount (a dead NFS server) costs a timeout
/// instead of the whole collector, like node_exporter's `--collector.filesystem.mount-timeout`.
/// A mount whose call timed out is reported with `device_error` 1, without new calls, until the
/// hung call returns.
pub(crate) struct Statfs {
    worker: Option<(
        mpsc::Sender<String>,
        mpsc::Receiver<std::io::Result<sys::FsStats>>,
    )>,
    /// Paths with a call in flight; a path still here after its timeout is stuck.
    pending: Arc<std::sync::Mutex<HashSet<String>>>,
    pub(crate) timeout: Duration,
    pub(crate) call: fn(&str) -> std::io::Result<sys::FsStats>,
}

impl Statfs {
    fn new() -> Self {
        Statfs {
            worker: None,
            pending: Arc::default(),
            timeout: Duration::from_secs(5),
            call: sys::statfs,
        }
    }

    fn stat(&mut self, path: &str) -> Result<sys::FsStats, String> {
        let in_flight = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(path);
        if in_flight {
            return Err("mount point is unresponsive (an earlier statfs has not returned)".into());
        }
        if self.worker.is_none() {
            let (req_tx, req_rx) = mpsc::channel::<String>();
            let (rep_tx, rep_rx) = mpsc::channel();
            let pending = self.pending.clone();
            let call = self.call;
            std::thread::Builder::new()
                .name("host-statfs".into())
                .spawn(move || {
                    for path in req_rx {
                        let r = call(&path);
                        pending
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&path);
                        let _ = rep_tx.send(r);
                    }
                })
                .map_err(|e| format!("cannot start the statfs thread: {e}"))?;
            self.worker = Some((req_tx, rep_rx));
        }
        let Some((tx, rx)) = &self.worker else {
            return Err("no statfs thread".into());
        };
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_string());
        if tx.send(path.to_string()).is_err() {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(path);
            self.worker = None;
            return Err("statfs thread gone".into());
        }
        match rx.recv_timeout(self.timeout) {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => {
                // Abandon the blocked thread (it exits once its call returns) and start afresh
                // next time.
                self.worker = None;
                tracing::warn!(path, timeout = ?self.timeout, "statfs timed out; mount point marked unresponsive");
                Err("statfs timed out".into())
            }
        }
    }
}

/// Builds one batch: families' metadata once, series with the job/instance labels.
pub(crate) struct Out {
    t: i64,
    job: String,
    instance: String,
    families: HashSet<String>,
    batch: WriteBatch,
}

impl Out {
    fn new(t: i64, job: &str, instance: &str) -> Self {
        Out {
            t,
            job: job.to_string(),
            instance: instance.to_string(),
            families: HashSet::new(),
            batch: WriteBatch::default(),
        }
    }

    /// Declares a family (TYPE/HELP) unless already declared.
    pub(crate) fn family(&mut self, name: &str, kind: MetricType, help: &str) {
        if self.families.insert(name.to_string()) {
            self.batch.metadata.push(Metadata {
                metric_family: name.to_string(),
                kind,
                help: help.to_string(),
                unit: String::new(),
            });
        }
    }

    /// Adds one sample of `name` with extra `labels`.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let pairs = [
            ("__name__", name),
            ("job", self.job.as_str()),
            ("instance", self.instance.as_str()),
        ];
        let ls = Labels::from_pairs(pairs.iter().chain(labels.iter()).map(|(k, v)| (*k, *v)));
        self.batch.series.push(SeriesSamples {
            labels: ls,
            samples: vec![Sample::new(self.t, v)],
            histograms: Vec::new(),
            exemplars: Vec::new(),
        });
    }

    /// A family with one unlabelled sample.
    pub(crate) fn single(&mut self, name: &str, kind: MetricType, help: &str, v: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], v);
    }
}

const GAUGE: MetricType = MetricType::Gauge;
const COUNTER: MetricType = MetricType::Counter;

/// Reads a whole (small) file, at most [`MAX_FILE`] bytes.
pub(crate) fn read_file(path: &Path) -> std::io::Result<String> {
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(MAX_FILE).read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

impl HostCollector {
    /// A collector over `opts`, with process groups when `processes` is given.
    pub fn new(opts: HostOptions, processes: Option<&ProcessesConfig>) -> Result<Self, HostError> {
        let re = |s: &str| Regex::new(s).expect("built-in exclusion regex compiles");
        let processes = match processes {
            Some(c) if !c.process_names.is_empty() => Some(ProcessGroups::new(c)?),
            _ => None,
        };
        Ok(HostCollector {
            disk_exclude: re(DISK_EXCLUDE),
            mount_exclude: re(MOUNT_POINTS_EXCLUDE),
            fs_type_exclude: re(FS_TYPES_EXCLUDE),
            netdev_exclude: re(NETDEV_EXCLUDE),
            netstat_fields: re(parse::NETSTAT_FIELDS),
            user_hz: sys::clock_ticks(),
            errors: BTreeMap::new(),
            processes,
            cpu_seconds_total: 0.0,
            statfs: Statfs::new(),
            opts,
        })
    }

    fn proc(&self, rel: &str) -> PathBuf {
        self.opts.proc_path.join(rel)
    }

    /// Reads a /proc file for `collector`; a failure is counted (missing optional files are
    /// not, when `optional`).
    fn read(&mut self, collector: &'static str, path: &Path, optional: bool) -> Option<String> {
        match read_file(path) {
            Ok(s) => Some(s),
            Err(e) => {
                if !(optional && e.kind() == std::io::ErrorKind::NotFound) {
                    tracing::debug!(collector, path = %path.display(), error = %e, "host collector cannot read");
                    *self.errors.entry(collector).or_default() += 1;
                }
                None
            }
        }
    }

    fn count(&mut self, collector: &'static str, p: Problems) {
        if p.count > 0 {
            if let Some(first) = &p.first {
                tracing::debug!(collector, problems = p.count, first = %first, "host collector skipped malformed input");
            }
            *self.errors.entry(collector).or_default() += p.count;
        }
    }

    /// Collects everything once, stamping samples with `now_ms`.
    pub fn collect(&mut self, now_ms: i64) -> WriteBatch {
        let started = Instant::now();
        let cpu0 = sys::thread_cpu_seconds();
        let mut out = Out::new(now_ms, &self.opts.job, &self.opts.instance);
        let boot = self.stat(&mut out);
        self.loadavg(&mut out);
        self.meminfo(&mut out);
        self.vmstat(&mut out);
        self.filesystem(&mut out);
        self.diskstats(&mut out);
        self.netdev(&mut out);
        self.netclass(&mut out);
        self.netstat(&mut out);
        self.sockstat(&mut out);
        self.softnet_arp(&mut out);
        self.timex(&mut out);
        self.conntrack_udp(&mut out);
        self.selinux(&mut out);
        self.misc(&mut out);
        self.uname_os_time(&mut out, now_ms);
        if let Some(pg) = self.processes.as_mut() {
            let mut p = Problems::default();
            pg.collect(&self.opts, boot, self.user_hz, &mut out, &mut p);
            self.count("processes", p);
        }
        let cpu = (sys::thread_cpu_seconds() - cpu0).max(0.0);
        self.cpu_seconds_total += cpu;
        out.family(
            "sextant_host_collect_errors_total",
            COUNTER,
            "Malformed or unreadable /proc and /sys inputs the host collector skipped, by collector.",
        );
        for c in [
            "stat",
            "loadavg",
            "meminfo",
            "vmstat",
            "filesystem",
            "diskstats",
            "netdev",
            "netclass",
            "netstat",
            "sockstat",
            "softnet",
            "arp",
            "timex",
            "conntrack",
            "udp_queues",
            "misc",
            "os",
            "processes",
        ] {
            let n = self.errors.get(c).copied().unwrap_or(0);
            out.sample(
                "sextant_host_collect_errors_total",
                &[("collector", c)],
                n as f64,
            );
        }
        out.single(
            "sextant_host_collect_cpu_seconds_total",
            COUNTER,
            "CPU time the host collector has used, in seconds.",
            self.cpu_seconds_total,
        );
        out.single(
            "sextant_host_collect_duration_seconds",
            GAUGE,
            "Wall-clock duration of the last host metrics collection, in seconds.",
            started.elapsed().as_secs_f64(),
        );
        tracing::trace!(
            cpu_seconds = cpu,
            series = out.batch.series.len(),
            "host metrics collected"
        );
        out.batch
    }

    /// /proc/stat: cpu, context switches, forks, interrupts, boot time, procs. Returns boot time.
    fn stat(&mut self, out: &mut Out) -> Option<f64> {
        let text = self.read("stat", &self.proc("stat"), false)?;
        let mut p = Problems::default();
        let st = parse::stat(&text, self.user_hz, &mut p);
        self.count("stat", p);
        if !st.cpus.is_empty() {
            out.family(
                "node_cpu_guest_seconds_total",
                COUNTER,
                "Seconds the CPUs spent in guests (VMs) for each mode.",
            );
            for c in &st.cpus {
                out.sample(
                    "node_cpu_guest_seconds_total",
                    &[("cpu", &c.cpu), ("mode", "nice")],
                    c.guest[1],
                );
                out.sample(
                    "node_cpu_guest_seconds_total",
                    &[("cpu", &c.cpu), ("mode", "user")],
                    c.guest[0],
                );
            }
            out.family(
                "node_cpu_seconds_total",
                COUNTER,
                "Seconds the CPUs spent in each mode.",
            );
            for c in &st.cpus {
                for (i, m) in parse::CPU_MODES.iter().enumerate() {
                    out.sample(
                        "node_cpu_seconds_total",
                        &[("cpu", &c.cpu), ("mode", m)],
                        c.modes[i],
                    );
                }
            }
        }
        let singles = [
            (
                st.btime,
                "node_boot_time_seconds",
                GAUGE,
                "Node boot time, in unixtime.",
            ),
            (
                st.ctxt,
                "node_context_switches_total",
                COUNTER,
                "Total number of context switches.",
            ),
            (
                st.processes,
                "node_forks_total",
                COUNTER,
                "Total number of forks.",
            ),
            (
                st.intr,
                "node_intr_total",
                COUNTER,
                "Total number of interrupts serviced.",
            ),
            (
                st.procs_blocked,
                "node_procs_blocked",
                GAUGE,
                "Number of processes blocked waiting for I/O to complete.",
            ),
            (
                st.procs_running,
                "node_procs_running",
                GAUGE,
                "Number of processes in runnable state.",
            ),
        ];
        for (v, name, kind, help) in singles {
            if let Some(v) = v {
                out.single(name, kind, help, v);
            }
        }
        st.btime
    }

    fn loadavg(&mut self, out: &mut Out) {
        let Some(text) = self.read("loadavg", &self.proc("loadavg"), false) else {
            return;
        };
        match parse::loadavg(&text) {
            Some([l1, l5, l15]) => {
                out.single("node_load1", GAUGE, "1m load average.", l1);
                out.single("node_load5", GAUGE, "5m load average.", l5);
                out.single("node_load15", GAUGE, "15m load average.", l15);
            }
            None => *self.errors.entry("loadavg").or_default() += 1,
        }
    }

    fn meminfo(&mut self, out: &mut Out) {
        let Some(text) = self.read("meminfo", &self.proc("meminfo"), false) else {
            return;
        };
        let mut p = Problems::default();
        let fields = parse::meminfo(&text, &mut p);
        self.count("meminfo", p);
        let mut seen = HashSet::new();
        for (field, v) in fields {
            if !seen.insert(field.clone()) {
                continue;
            }
            let name = format!("node_memory_{field}");
            out.family(&name, GAUGE, &format!("Memory information field {field}."));
            out.sample(&name, &[], v);
        }
    }

    fn vmstat(&mut self, out: &mut Out) {
        let Some(text) = self.read("vmstat", &self.proc("vmstat"), false) else {
            return;
        };
        let mut p = Problems::default();
        let fields = parse::vmstat(&text, &mut p);
        self.count("vmstat", p);
        let mut seen = HashSet::new();
        for (field, v) in fields {
            if !parse::vmstat_default_field(&field) || !seen.insert(field.clone()) {
                continue;
            }
            let name = format!("node_vmstat_{field}");
            out.family(
                &name,
                MetricType::Unknown,
                &format!("/proc/vmstat information field {field}."),
            );
            out.sample(&name, &[], v);
        }
    }

    fn filesystem(&mut self, out: &mut Out) {
        // node_exporter reads PID 1's mount table (the host's, when run in a container) and
        // falls back to its own.
        let text = match read_file(&self.proc("1/mounts")) {
            Ok(t) => Some(t),
            Err(_) => self.read("filesystem", &self.proc("mounts"), false),
        };
        let Some(text) = text else { return };
        let mut p = Problems::default();
        let mounts = parse::mounts(&text, &mut p);
        self.count("filesystem", p);
        let mut seen = HashSet::new();
        let mut stats = Vec::new();
        for m in mounts {
            if self.mount_exclude.is_match(&m.mountpoint)
                || self.fs_type_exclude.is_match(&m.fstype)
            {
                continue;
            }
            if !seen.insert((m.device.clone(), m.mountpoint.clone(), m.fstype.clone())) {
                continue;
            }
            let rel = m.mountpoint.trim_start_matches('/');
            let path = self.opts.rootfs.join(rel);
            let s = self.statfs.stat(&path.to_string_lossy());
            if let Err(e) = &s {
                tracing::debug!(mountpoint = %m.mountpoint, error = %e, "statfs failed");
            }
            stats.push((m, s.ok()));
        }
        type Get = fn(&sys::FsStats) -> f64;
        let fams: [(&str, &str, Get); 5] = [
            (
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
                |s| s.avail,
            ),
            (
                "node_filesystem_files",
                "Filesystem total file nodes.",
                |s| s.files,
            ),
            (
                "node_filesystem_files_free",
                "Filesystem total free file nodes.",
                |s| s.files_free,
            ),
            (
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
                |s| s.free,
            ),
            (
                "node_filesystem_size_bytes",
                "Filesystem size in bytes.",
                |s| s.size,
            ),
        ];
        if stats.is_empty() {
            return;
        }
        out.family(
            "node_filesystem_device_error",
            GAUGE,
            "Whether an error occurred while getting statistics for the given device.",
        );
        out.family(
            "node_filesystem_readonly",
            GAUGE,
            "Filesystem read-only status.",
        );
        for (m, s) in &stats {
            let l = [
                ("device", m.device.as_str()),
                ("fstype", m.fstype.as_str()),
                ("mountpoint", m.mountpoint.as_str()),
            ];
            out.sample(
                "node_filesystem_device_error",
                &l,
                if s.is_some() { 0.0 } else { 1.0 },
            );
            if let Some(s) = s {
                out.sample(
                    "node_filesystem_readonly",
                    &l,
                    if m.read_only() { 1.0 } else { 0.0 },
                );
                for (name, help, get) in &fams {
                    out.family(name, GAUGE, help);
                    out.sample(name, &l, get(s));
                }
            }
        }
    }

    fn diskstats(&mut self, out: &mut Out) {
        let Some(text) = self.read("diskstats", &self.proc("diskstats"), false) else {
            return;
        };
        let mut p = Problems::default();
        let disks = parse::diskstats(&text, &mut p);
        self.count("diskstats", p);
        // (index in /proc/diskstats after the name, metric, type, help, scale)
        const DISK: [(usize, &str, MetricType, &str, f64); 17] = [
            (
                0,
                "node_disk_reads_completed_total",
                COUNTER,
                "The total number of reads completed successfully.",
                1.0,
            ),
            (
                1,
                "node_disk_reads_merged_total",
                COUNTER,
                "The total number of reads merged.",
                1.0,
            ),
            (
                2,
                "node_disk_read_bytes_total",
                COUNTER,
                "The total number of bytes read successfully.",
                512.0,
            ),
            (
                3,
                "node_disk_read_time_seconds_total",
                COUNTER,
                "The total number of seconds spent by all reads.",
                0.001,
            ),
            (
                4,
                "node_disk_writes_completed_total",
                COUNTER,
                "The total number of writes completed successfully.",
                1.0,
            ),
            (
                5,
                "node_disk_writes_merged_total",
                COUNTER,
                "The number of writes merged.",
                1.0,
            ),
            (
                6,
                "node_disk_written_bytes_total",
                COUNTER,
                "The total number of bytes written successfully.",
                512.0,
            ),
            (
                7,
                "node_disk_write_time_seconds_total",
                COUNTER,
                "This is the total number of seconds spent by all writes.",
                0.001,
            ),
            (
                8,
                "node_disk_io_now",
                GAUGE,
                "The number of I/Os currently in progress.",
                1.0,
            ),
            (
                9,
                "node_disk_io_time_seconds_total",
                COUNTER,
                "Total seconds spent doing I/Os.",
                0.001,
            ),
            (
                10,
                "node_disk_io_time_weighted_seconds_total",
                COUNTER,
                "The weighted # of seconds spent doing I/Os.",
                0.001,
            ),
            (
                11,
                "node_disk_discards_completed_total",
                COUNTER,
                "The total number of discards completed successfully.",
                1.0,
            ),
            (
                12,
                "node_disk_discards_merged_total",
                COUNTER,
                "The total number of discards merged.",
                1.0,
            ),
            (
                13,
                "node_disk_discarded_sectors_total",
                COUNTER,
                "The total number of sectors discarded successfully.",
                1.0,
            ),
            (
                14,
                "node_disk_discard_time_seconds_total",
                COUNTER,
                "This is the total number of seconds spent by all discards.",
                0.001,
            ),
            (
                15,
                "node_disk_flush_requests_total",
                COUNTER,
                "The total number of flush requests completed successfully",
                1.0,
            ),
            (
                16,
                "node_disk_flush_requests_time_seconds_total",
                COUNTER,
                "This is the total number of seconds spent by all flush requests.",
                0.001,
            ),
        ];
        let disks: Vec<_> = disks
            .into_iter()
            .filter(|d| !self.disk_exclude.is_match(&d.device))
            .collect();
        for (i, name, kind, help, scale) in DISK {
            for d in &disks {
                if let Some(v) = d.stats.get(i) {
                    out.family(name, kind, help);
                    out.sample(name, &[("device", &d.device)], v * scale);
                }
            }
        }
    }

    fn netdev(&mut self, out: &mut Out) {
        let Some(text) = self.read("netdev", &self.proc("net/dev"), false) else {
            return;
        };
        let mut p = Problems::default();
        let devs = parse::netdev(&text, &mut p);
        self.count("netdev", p);
        let devs: Vec<_> = devs
            .into_iter()
            .filter(|(d, _)| !self.netdev_exclude.is_match(d))
            .collect();
        for (dir, names, off) in [
            ("receive", parse::NETDEV_RECEIVE, 0),
            ("transmit", parse::NETDEV_TRANSMIT, 8),
        ] {
            for (i, stat) in names.iter().enumerate() {
                let name = format!("node_network_{dir}_{stat}_total");
                out.family(
                    &name,
                    COUNTER,
                    &format!("Network device statistic {dir}_{stat}."),
                );
                for (dev, vals) in &devs {
                    out.sample(&name, &[("device", dev)], vals[off + i]);
                }
            }
        }
    }

    /// /sys/class/net: link state and properties (node_exporter's netclass collector).
    fn netclass(&mut self, out: &mut Out) {
        let dir = self.opts.sys_path.join("class/net");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            *self.errors.entry("netclass").or_default() += 1;
            return;
        };
        let mut devs: Vec<(String, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        devs.sort();
        // (attribute, metric, type, help, scale)
        const PROPS: [(&str, &str, MetricType, f64); 15] = [
            ("addr_assign_type", "address_assign_type", GAUGE, 1.0),
            ("carrier", "carrier", GAUGE, 1.0),
            ("carrier_changes", "carrier_changes_total", COUNTER, 1.0),
            ("carrier_up_count", "carrier_up_changes_total", COUNTER, 1.0),
            (
                "carrier_down_count",
                "carrier_down_changes_total",
                COUNTER,
                1.0,
            ),
            ("dev_id", "device_id", GAUGE, 1.0),
            ("dormant", "dormant", GAUGE, 1.0),
            ("flags", "flags", GAUGE, 1.0),
            ("ifindex", "iface_id", GAUGE, 1.0),
            ("iflink", "iface_link", GAUGE, 1.0),
            ("link_mode", "iface_link_mode", GAUGE, 1.0),
            ("mtu", "mtu_bytes", GAUGE, 1.0),
            ("name_assign_type", "name_assign_type", GAUGE, 1.0),
            ("netdev_group", "net_dev_group", GAUGE, 1.0),
            ("speed", "speed_bytes", GAUGE, 125_000.0),
        ];
        const MORE: [(&str, &str, MetricType, f64); 2] = [
            ("tx_queue_len", "transmit_queue_length", GAUGE, 1.0),
            ("type", "protocol_type", GAUGE, 1.0),
        ];
        for (dev, path) in &devs {
            // Attributes a device does not support fail to read (EINVAL); they are skipped, as
            // node_exporter does.
            let attr = |a: &str| read_file(&path.join(a)).ok().map(|s| s.trim().to_string());
            let Some(operstate) = attr("operstate") else {
                continue;
            };
            out.family(
                "node_network_info",
                GAUGE,
                "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
            );
            let (address, broadcast, duplex, ifalias) = (
                attr("address").unwrap_or_default(),
                attr("broadcast").unwrap_or_default(),
                attr("duplex").unwrap_or_default(),
                attr("ifalias").unwrap_or_default(),
            );
            out.sample(
                "node_network_info",
                &[
                    ("address", &address),
                    ("broadcast", &broadcast),
                    ("device", dev),
                    ("duplex", &duplex),
                    ("ifalias", &ifalias),
                    ("operstate", &operstate),
                ],
                1.0,
            );
            out.family(
                "node_network_up",
                GAUGE,
                "Value is 1 if operstate is 'up', 0 otherwise.",
            );
            out.sample(
                "node_network_up",
                &[("device", dev)],
                if operstate == "up" { 1.0 } else { 0.0 },
            );
            for (a, m, kind, scale) in PROPS.iter().chain(MORE.iter()) {
                let Some(v) = attr(a).and_then(|s| parse::sys_number(&s)) else {
                    continue;
                };
                let name = format!("node_network_{m}");
                out.family(&name, *kind, &format!("Network device property: {m}"));
                out.sample(&name, &[("device", dev)], v * scale);
            }
        }
    }

    /// /proc/net/{netstat,snmp,snmp6}: protocol counters, node_exporter's default field set.
    fn netstat(&mut self, out: &mut Out) {
        let mut p = Problems::default();
        let mut all = Vec::new();
        for f in ["net/netstat", "net/snmp"] {
            if let Some(t) = self.read("netstat", &self.proc(f), false) {
                all.extend(parse::netstat(&t, &mut p));
            }
        }
        if let Some(t) = self.read("netstat", &self.proc("net/snmp6"), true) {
            all.extend(parse::snmp6(&t, &mut p));
        }
        self.count("netstat", p);
        let mut seen = HashSet::new();
        for (proto, field, v) in all {
            let key = format!("{proto}_{field}");
            if !self.netstat_fields.is_match(&key) || !seen.insert(key.clone()) {
                continue;
            }
            let name = format!("node_netstat_{key}");
            out.family(
                &name,
                MetricType::Unknown,
                &format!("Statistic {proto}{field}."),
            );
            out.sample(&name, &[], v);
        }
    }

    /// /proc/net/sockstat{,6}: sockets in use per protocol.
    fn sockstat(&mut self, out: &mut Out) {
        let page = sys::page_size();
        let mut p = Problems::default();
        let mut all = Vec::new();
        if let Some(t) = self.read("sockstat", &self.proc("net/sockstat"), false) {
            all.extend(parse::sockstat(&t, &mut p));
        }
        if let Some(t) = self.read("sockstat", &self.proc("net/sockstat6"), true) {
            all.extend(parse::sockstat(&t, &mut p));
        }
        self.count("sockstat", p);
        let mut seen = HashSet::new();
        for (proto, state, v) in all {
            if !seen.insert((proto.clone(), state.clone())) {
                continue;
            }
            if proto == "sockets" && state == "used" {
                out.single(
                    "node_sockstat_sockets_used",
                    GAUGE,
                    "Number of IPv4 sockets in use.",
                    v,
                );
                continue;
            }
            let name = format!("node_sockstat_{proto}_{state}");
            out.family(
                &name,
                GAUGE,
                &format!("Number of {proto} sockets in state {state}."),
            );
            out.sample(&name, &[], v);
            if state == "mem" {
                let name = format!("node_sockstat_{proto}_mem_bytes");
                out.family(
                    &name,
                    GAUGE,
                    &format!("Number of {proto} sockets in state mem_bytes."),
                );
                out.sample(&name, &[], v * page);
            }
        }
    }

    /// /proc/net/softnet_stat (per-CPU packet processing) and /proc/net/arp (entries per device).
    fn softnet_arp(&mut self, out: &mut Out) {
        if let Some(t) = self.read("softnet", &self.proc("net/softnet_stat"), true) {
            let mut p = Problems::default();
            let rows = parse::softnet(&t, &mut p);
            self.count("softnet", p);
            let fams = [
                ("node_softnet_dropped_total", "Number of dropped packets", 1),
                (
                    "node_softnet_processed_total",
                    "Number of processed packets",
                    0,
                ),
                (
                    "node_softnet_times_squeezed_total",
                    "Number of times processing packets ran out of quota",
                    2,
                ),
            ];
            for (name, help, i) in fams {
                for (cpu, row) in rows.iter().enumerate() {
                    out.family(name, COUNTER, help);
                    out.sample(name, &[("cpu", &cpu.to_string())], row[i]);
                }
            }
        }
        if let Some(t) = self.read("arp", &self.proc("net/arp"), true) {
            let mut p = Problems::default();
            let devs = parse::arp(&t, &mut p);
            self.count("arp", p);
            for (dev, n) in devs {
                out.family("node_arp_entries", GAUGE, "ARP entries by device");
                out.sample("node_arp_entries", &[("device", &dev)], n);
            }
        }
    }

    /// Connection tracking (when the nf_conntrack module is loaded) and UDP socket queues.
    fn conntrack_udp(&mut self, out: &mut Out) {
        let count = self.read(
            "conntrack",
            &self.proc("sys/net/netfilter/nf_conntrack_count"),
            true,
        );
        let max = self.read(
            "conntrack",
            &self.proc("sys/net/netfilter/nf_conntrack_max"),
            true,
        );
        if let (Some(c), Some(m)) = (count, max) {
            match (parse::numbers(&c).first(), parse::numbers(&m).first()) {
                (Some(c), Some(m)) => {
                    out.single(
                        "node_nf_conntrack_entries",
                        GAUGE,
                        "Number of currently allocated flow entries for connection tracking.",
                        *c,
                    );
                    out.single(
                        "node_nf_conntrack_entries_limit",
                        GAUGE,
                        "Maximum size of connection tracking table.",
                        *m,
                    );
                }
                _ => *self.errors.entry("conntrack").or_default() += 1,
            }
        }
        if let Some(t) = self.read("conntrack", &self.proc("net/stat/nf_conntrack"), true) {
            let mut p = Problems::default();
            let sums = parse::conntrack_stat(&t, &mut p);
            self.count("conntrack", p);
            const STATS: [(&str, &str); 8] = [
                ("drop", "Number of packets dropped due to conntrack failure."),
                ("early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached."),
                ("found", "Number of searched entries which were successful."),
                ("ignore", "Number of packets seen which are already connected to a conntrack entry."),
                ("insert", "Number of entries inserted into the list."),
                ("insert_failed", "Number of entries for which list insertion was attempted but failed."),
                ("invalid", "Number of packets seen which can not be tracked."),
                ("search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes."),
            ];
            for (k, help) in STATS {
                if let Some(v) = sums.get(k) {
                    out.single(&format!("node_nf_conntrack_stat_{k}"), GAUGE, help, *v);
                }
            }
        }
        for (file, ip) in [("net/udp", "v4"), ("net/udp6", "v6")] {
            let Some(t) = self.read("udp_queues", &self.proc(file), true) else {
                continue;
            };
            let mut p = Problems::default();
            let (tx, rx) = parse::udp_queues(&t, &mut p);
            self.count("udp_queues", p);
            out.family(
                "node_udp_queues",
                GAUGE,
                "Number of allocated memory in the kernel for UDP datagrams in bytes.",
            );
            out.sample("node_udp_queues", &[("ip", ip), ("queue", "rx")], rx);
            out.sample("node_udp_queues", &[("ip", ip), ("queue", "tx")], tx);
        }
    }

    /// Whether SELinux is on (a selinuxfs is mounted), and its modes when it is.
    fn selinux(&mut self, out: &mut Out) {
        let Some(text) = self.read("misc", &self.proc("self/mounts"), true) else {
            return;
        };
        let mut p = Problems::default();
        let fs = parse::mounts(&text, &mut p)
            .into_iter()
            .find(|m| m.fstype == "selinuxfs");
        let Some(fs) = fs else {
            out.single(
                "node_selinux_enabled",
                GAUGE,
                "SELinux is enabled, 1 is true, 0 is false",
                0.0,
            );
            return;
        };
        out.single(
            "node_selinux_enabled",
            GAUGE,
            "SELinux is enabled, 1 is true, 0 is false",
            1.0,
        );
        let rel = fs.mountpoint.trim_start_matches('/');
        if let Some(v) = read_file(&self.opts.rootfs.join(rel).join("enforce"))
            .ok()
            .and_then(|t| parse::numbers(&t).first().copied())
        {
            out.single(
                "node_selinux_current_mode",
                GAUGE,
                "Current SELinux enforcement mode",
                v,
            );
        }
        let config = read_file(&self.opts.rootfs.join("etc/selinux/config")).unwrap_or_default();
        let mode = config
            .lines()
            .find_map(|l| l.trim().strip_prefix("SELINUX="))
            .map(|m| match m.trim() {
                "enforcing" => 1.0,
                "permissive" => 0.0,
                _ => -1.0,
            });
        if let Some(m) = mode {
            out.single(
                "node_selinux_config_mode",
                GAUGE,
                "Configured SELinux enforcement mode",
                m,
            );
        }
    }

    /// The kernel's clock discipline (adjtimex), node_exporter's timex collector. Reads the live
    /// kernel whatever `proc_path` says.
    fn timex(&mut self, out: &mut Out) {
        let Some(t) = sys::timex() else {
            *self.errors.entry("timex").or_default() += 1;
            return;
        };
        const STA_NANO: f64 = 8192.0;
        const TIME_ERROR: i32 = 5;
        const PPM16FRAC: f64 = 1_000_000.0 * 65536.0;
        let divisor = if (t.status as i64) & (STA_NANO as i64) != 0 {
            1e9
        } else {
            1e6
        };
        let sync = if t.state == TIME_ERROR { 0.0 } else { 1.0 };
        let rows: [(&str, MetricType, &str, f64); 17] = [
            (
                "node_timex_estimated_error_seconds",
                GAUGE,
                "Estimated error in seconds.",
                t.esterror / 1e6,
            ),
            (
                "node_timex_frequency_adjustment_ratio",
                GAUGE,
                "Local clock frequency adjustment.",
                1.0 + t.freq / PPM16FRAC,
            ),
            (
                "node_timex_loop_time_constant",
                GAUGE,
                "Phase-locked loop time constant.",
                t.constant,
            ),
            (
                "node_timex_maxerror_seconds",
                GAUGE,
                "Maximum error in seconds.",
                t.maxerror / 1e6,
            ),
            (
                "node_timex_offset_seconds",
                GAUGE,
                "Time offset in between local system and reference clock.",
                t.offset / divisor,
            ),
            (
                "node_timex_pps_calibration_total",
                COUNTER,
                "Pulse per second count of calibration intervals.",
                t.calcnt,
            ),
            (
                "node_timex_pps_error_total",
                COUNTER,
                "Pulse per second count of calibration errors.",
                t.errcnt,
            ),
            (
                "node_timex_pps_frequency_hertz",
                GAUGE,
                "Pulse per second frequency.",
                t.ppsfreq / PPM16FRAC,
            ),
            (
                "node_timex_pps_jitter_seconds",
                GAUGE,
                "Pulse per second jitter.",
                t.jitter / divisor,
            ),
            (
                "node_timex_pps_jitter_total",
                COUNTER,
                "Pulse per second count of jitter limit exceeded events.",
                t.jitcnt,
            ),
            (
                "node_timex_pps_shift_seconds",
                GAUGE,
                "Pulse per second interval duration.",
                t.shift,
            ),
            (
                "node_timex_pps_stability_exceeded_total",
                COUNTER,
                "Pulse per second count of stability limit exceeded events.",
                t.stbcnt,
            ),
            (
                "node_timex_pps_stability_hertz",
                GAUGE,
                "Pulse per second stability, average of recent frequency changes.",
                t.stabil / PPM16FRAC,
            ),
            (
                "node_timex_status",
                GAUGE,
                "Value of the status array bits.",
                t.status,
            ),
            (
                "node_timex_sync_status",
                GAUGE,
                "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
                sync,
            ),
            (
                "node_timex_tai_offset_seconds",
                GAUGE,
                "International Atomic Time (TAI) offset.",
                t.tai,
            ),
            (
                "node_timex_tick_seconds",
                GAUGE,
                "Seconds between clock ticks.",
                t.tick / 1e6,
            ),
        ];
        for (name, kind, help, v) in rows {
            out.single(name, kind, help, v);
        }
    }

    /// filefd, entropy, pressure: one small file each.
    fn misc(&mut self, out: &mut Out) {
        if let Some(t) = self.read("misc", &self.proc("sys/fs/file-nr"), true) {
            let n = parse::numbers(&t);
            if let (Some(a), Some(m)) = (n.first(), n.get(2)) {
                out.single(
                    "node_filefd_allocated",
                    GAUGE,
                    "File descriptor statistics: allocated.",
                    *a,
                );
                out.single(
                    "node_filefd_maximum",
                    GAUGE,
                    "File descriptor statistics: maximum.",
                    *m,
                );
            } else {
                *self.errors.entry("misc").or_default() += 1;
            }
        }
        for (file, name, help) in [
            (
                "sys/kernel/random/entropy_avail",
                "node_entropy_available_bits",
                "Bits of available entropy.",
            ),
            (
                "sys/kernel/random/poolsize",
                "node_entropy_pool_size_bits",
                "Bits of entropy pool.",
            ),
        ] {
            if let Some(t) = self.read("misc", &self.proc(file), true) {
                match parse::numbers(&t).first() {
                    Some(v) => out.single(name, GAUGE, help, *v),
                    None => *self.errors.entry("misc").or_default() += 1,
                }
            }
        }
        type P<'a> = [(Option<&'a str>, &'a str); 2];
        let psi: [(&str, P); 3] = [
            ("cpu", [(Some("node_pressure_cpu_waiting_seconds_total"), "Total time in seconds that processes have waited for CPU time"), (None, "")]),
            ("io", [
                (Some("node_pressure_io_waiting_seconds_total"), "Total time in seconds that processes have waited due to IO congestion"),
                (Some("node_pressure_io_stalled_seconds_total"), "Total time in seconds no process could make progress due to IO congestion"),
            ]),
            ("memory", [
                (Some("node_pressure_memory_waiting_seconds_total"), "Total time in seconds that processes have waited for memory"),
                (Some("node_pressure_memory_stalled_seconds_total"), "Total time in seconds no process could make progress due to memory congestion"),
            ]),
        ];
        for (res, [(some_name, some_help), (full_name, full_help)]) in psi {
            let Some(t) = self.read("misc", &self.proc(&format!("pressure/{res}")), true) else {
                continue;
            };
            let (some, full) = parse::pressure(&t);
            if let (Some(n), Some(v)) = (some_name, some) {
                out.single(n, COUNTER, some_help, v);
            }
            if let (Some(n), Some(v)) = (full_name, full) {
                out.single(n, COUNTER, full_help, v);
            }
        }
    }

    fn uname_os_time(&mut self, out: &mut Out, now_ms: i64) {
        if let Some(u) = sys::uname() {
            out.family(
                "node_uname_info",
                GAUGE,
                "Labeled system information as provided by the uname system call.",
            );
            out.sample(
                "node_uname_info",
                &[
                    ("domainname", &u.domainname),
                    ("machine", &u.machine),
                    ("nodename", &u.nodename),
                    ("release", &u.release),
                    ("sysname", &u.sysname),
                    ("version", &u.version),
                ],
                1.0,
            );
        }
        let os = ["etc/os-release", "usr/lib/os-release"]
            .iter()
            .find_map(|p| read_file(&self.opts.rootfs.join(p)).ok());
        if let Some(text) = os {
            let m = parse::os_release(&text);
            let g = |k: &str| m.get(k).map(String::as_str).unwrap_or("");
            out.family(
                "node_os_info",
                GAUGE,
                "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
            );
            out.sample(
                "node_os_info",
                &[
                    ("build_id", g("BUILD_ID")),
                    ("id", g("ID")),
                    ("id_like", g("ID_LIKE")),
                    ("image_id", g("IMAGE_ID")),
                    ("image_version", g("IMAGE_VERSION")),
                    ("name", g("NAME")),
                    ("pretty_name", g("PRETTY_NAME")),
                    ("variant", g("VARIANT")),
                    ("variant_id", g("VARIANT_ID")),
                    ("version", g("VERSION")),
                    ("version_codename", g("VERSION_CODENAME")),
                    ("version_id", g("VERSION_ID")),
                ],
                1.0,
            );
            if let Some(v) = parse::os_version(g("VERSION_ID")) {
                out.family(
                    "node_os_version",
                    GAUGE,
                    "Metric containing the major.minor part of the OS version.",
                );
                out.sample(
                    "node_os_version",
                    &[
                        ("id", g("ID")),
                        ("id_like", g("ID_LIKE")),
                        ("name", g("NAME")),
                    ],
                    v,
                );
            }
        } else {
            *self.errors.entry("os").or_default() += 1;
        }
        out.single(
            "node_time_seconds",
            GAUGE,
            "System time in seconds since epoch (1970).",
            now_ms as f64 / 1000.0,
        );
        if let Some((zone, off)) = sys::time_zone(now_ms.div_euclid(1000)) {
            out.family(
                "node_time_zone_offset_seconds",
                GAUGE,
                "System time zone offset in seconds.",
            );
            out.sample(
                "node_time_zone_offset_seconds",
                &[("time_zone", &zone)],
                off,
            );
        }
        let cs_dir = self.opts.sys_path.join("devices/system/clocksource");
        if let Ok(rd) = std::fs::read_dir(&cs_dir) {
            let mut devs: Vec<(String, PathBuf)> = rd
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_prefix("clocksource")
                        .map(|d| (d.to_string(), e.path()))
                })
                .filter(|(d, _)| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .collect();
            devs.sort();
            for (dev, path) in devs {
                for (file, name, help) in [
                    (
                        "available_clocksource",
                        "node_time_clocksource_available_info",
                        "Available clocksources read from '/sys/devices/system/clocksource'.",
                    ),
                    (
                        "current_clocksource",
                        "node_time_clocksource_current_info",
                        "Current clocksource read from '/sys/devices/system/clocksource'.",
                    ),
                ] {
                    if let Ok(t) = read_file(&path.join(file)) {
                        for cs in t.split_whitespace() {
                            out.family(name, GAUGE, help);
                            out.sample(name, &[("clocksource", cs), ("device", &dev)], 1.0);
                        }
                    }
                }
            }
        }
    }

    /// Collects every `every` on a thread of its own and stores through `sink` until the handle
    /// is dropped. The first collection happens at once.
    pub fn spawn(mut self, sink: Arc<dyn Sink>, every: Duration) -> std::io::Result<HostHandle> {
        let every = every.max(Duration::from_millis(100));
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("host-metrics".into())
            .spawn(move || {
                let mut next = Instant::now();
                loop {
                    let batch = self.collect(sextant_model::time::now_ms());
                    match sink.store(batch) {
                        Ok(s) if s.problems > 0 => tracing::warn!(
                            problems = s.problems,
                            first = s.first_problem.as_deref().unwrap_or(""),
                            "host metrics partly refused by storage"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "storing host metrics failed"),
                    }
                    // Fixed rate, like a scrape interval; skip ticks we are late for.
                    next += every;
                    let now = Instant::now();
                    while next <= now {
                        next += every;
                    }
                    match stopped.recv_timeout(next - now) {
                        Err(mpsc::RecvTimeoutError::Timeout) => continue,
                        _ => break,
                    }
                }
            })?;
        Ok(HostHandle {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Stops the collection thread when dropped (after its current collection).
pub struct HostHandle {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for HostHandle {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
