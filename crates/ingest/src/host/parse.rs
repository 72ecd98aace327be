//! Parsers for the /proc and /sys files the host collector reads. Each takes the file's text and
//! returns plain values; a malformed line is skipped and counted in [`Problems`], never a panic,
//! so one odd kernel or a truncated read costs a few series, not the whole collection.

use std::collections::BTreeMap;

/// Bad lines or fields seen while parsing; counted per collector and exposed as
/// `sextant_host_collect_errors_total`.
#[derive(Debug, Default)]
pub struct Problems {
    pub count: u64,
    pub first: Option<String>,
}

impl Problems {
    pub fn add(&mut self, msg: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(msg());
        }
    }
}

fn num(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Shortens a line for an error message (input can be anything).
fn clip(line: &str) -> String {
    line.chars().take(80).collect()
}

/// CPU mode names in /proc/stat column order.
pub const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// One `cpuN` line of /proc/stat, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuLine {
    /// The CPU number as text ("0", "1", ...).
    pub cpu: String,
    /// Seconds per mode, in [`CPU_MODES`] order.
    pub modes: [f64; 8],
    /// guest and guest_nice seconds (absent on old kernels: 0).
    pub guest: [f64; 2],
}

/// What /proc/stat says.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stat {
    pub cpus: Vec<CpuLine>,
    pub intr: Option<f64>,
    pub ctxt: Option<f64>,
    pub btime: Option<f64>,
    pub processes: Option<f64>,
    pub procs_running: Option<f64>,
    pub procs_blocked: Option<f64>,
}

/// Parses /proc/stat; jiffies are divided by `user_hz`.
pub fn stat(text: &str, user_hz: f64, p: &mut Problems) -> Stat {
    let mut st = Stat::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(key) = it.next() else { continue };
        if let Some(n) = key.strip_prefix("cpu") {
            if n.is_empty() {
                continue; // the aggregate line; node_exporter exposes per-CPU only
            }
            if !n.bytes().all(|b| b.is_ascii_digit()) {
                p.add(|| format!("/proc/stat: bad cpu line {:?}", clip(line)));
                continue;
            }
            let vals: Vec<Option<f64>> = it.map(num).collect();
            if vals.len() < 8 || vals.iter().any(|v| v.is_none()) {
                p.add(|| format!("/proc/stat: short or bad cpu line {:?}", clip(line)));
                continue;
            }
            let v: Vec<f64> = vals
                .into_iter()
                .map(|v| v.unwrap_or(0.0) / user_hz)
                .collect();
            let mut modes = [0.0; 8];
            modes.copy_from_slice(&v[..8]);
            let guest = [
                v.get(8).copied().unwrap_or(0.0),
                v.get(9).copied().unwrap_or(0.0),
            ];
            st.cpus.push(CpuLine {
                cpu: n.to_string(),
                modes,
                guest,
            });
            continue;
        }
        let slot = match key {
            "intr" => &mut st.intr,
            "ctxt" => &mut st.ctxt,
            "btime" => &mut st.btime,
            "processes" => &mut st.processes,
            "procs_running" => &mut st.procs_running,
            "procs_blocked" => &mut st.procs_blocked,
            _ => continue,
        };
        match it.next().and_then(num) {
            Some(v) => *slot = Some(v),
            None => p.add(|| format!("/proc/stat: bad value in {:?}", clip(line))),
        }
    }
    st
}

/// Parses /proc/loadavg into the 1, 5 and 15 minute averages.
pub fn loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(num);
    Some([it.next()??, it.next()??, it.next()??])
}

/// Parses /proc/meminfo into (node_exporter metric suffix, value) pairs: `Active(anon): 10 kB`
/// becomes `("Active_anon_bytes", 10240)`, a field without unit keeps its bare name.
pub fn meminfo(text: &str, p: &mut Problems) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, rest)) = line.split_once(':') else {
            p.add(|| format!("/proc/meminfo: no colon in {:?}", clip(line)));
            continue;
        };
        let mut f = rest.split_whitespace();
        let Some(v) = f.next().and_then(num) else {
            p.add(|| format!("/proc/meminfo: bad value in {:?}", clip(line)));
            continue;
        };
        let name: String = key.trim().replace('(', "_").replace(')', "");
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            p.add(|| format!("/proc/meminfo: bad field name in {:?}", clip(line)));
            continue;
        }
        match f.next() {
            Some("kB") => out.push((format!("{name}_bytes"), v * 1024.0)),
            None => out.push((name, v)),
            Some(_) => p.add(|| format!("/proc/meminfo: unknown unit in {:?}", clip(line))),
        }
    }
    out
}

/// Parses /proc/vmstat (`name value` lines).
pub fn vmstat(text: &str, p: &mut Problems) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(k), Some(v)) = (f.next(), f.next().and_then(num)) else {
            if !line.trim().is_empty() {
                p.add(|| format!("/proc/vmstat: bad line {:?}", clip(line)));
            }
            continue;
        };
        if k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            out.push((k.to_string(), v));
        }
    }
    out
}

/// The vmstat fields node_exporter exposes by default
/// (`--collector.vmstat.fields="^(oom_kill|pgpg|pswp|pg.*fault).*"`).
pub fn vmstat_default_field(name: &str) -> bool {
    name.starts_with("oom_kill")
        || name.starts_with("pgpg")
        || name.starts_with("pswp")
        || (name.starts_with("pg") && name[2..].contains("fault"))
}

/// One line of /proc/mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub options: String,
}

impl Mount {
    pub fn read_only(&self) -> bool {
        self.options.split(',').any(|o| o == "ro")
    }
}

/// Undoes the octal escapes of /proc/mounts (`\040` for a space, `\011` tab, `\012`, `\134`).
fn unescape_mount(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(c) = u8::try_from(v) {
                out.push(c);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses /proc/mounts (or /proc/1/mounts).
pub fn mounts(text: &str, p: &mut Problems) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            if !line.trim().is_empty() {
                p.add(|| format!("mounts: short line {:?}", clip(line)));
            }
            continue;
        }
        out.push(Mount {
            device: unescape_mount(f[0]),
            mountpoint: unescape_mount(f[1]),
            fstype: f[2].to_string(),
            options: f[3].to_string(),
        });
    }
    out
}

/// One device of /proc/diskstats; `stats` has 11, 15 or 17 numbers depending on the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskStats {
    pub device: String,
    pub stats: Vec<f64>,
}

/// Parses /proc/diskstats.
pub fn diskstats(text: &str, p: &mut Problems) -> Vec<DiskStats> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 14 {
            p.add(|| format!("/proc/diskstats: short line {:?}", clip(line)));
            continue;
        }
        let stats: Option<Vec<f64>> = f[3..].iter().take(17).map(|s| num(s)).collect();
        let Some(stats) = stats else {
            p.add(|| format!("/proc/diskstats: bad number in {:?}", clip(line)));
            continue;
        };
        out.push(DiskStats {
            device: f[2].to_string(),
            stats,
        });
    }
    out
}

/// /proc/net/dev column names, receive then transmit, as node_exporter names them.
pub const NETDEV_RECEIVE: [&str; 8] = [
    "bytes",
    "packets",
    "errs",
    "drop",
    "fifo",
    "frame",
    "compressed",
    "multicast",
];
pub const NETDEV_TRANSMIT: [&str; 8] = [
    "bytes",
    "packets",
    "errs",
    "drop",
    "fifo",
    "colls",
    "carrier",
    "compressed",
];

/// Parses /proc/net/dev into (device, 8 receive counters, 8 transmit counters).
pub fn netdev(text: &str, p: &mut Problems) -> Vec<(String, [f64; 16])> {
    let mut out = Vec::new();
    for line in text.lines().skip(2) {
        let Some((dev, rest)) = line.split_once(':') else {
            if !line.trim().is_empty() {
                p.add(|| format!("/proc/net/dev: no colon in {:?}", clip(line)));
            }
            continue;
        };
        let vals: Vec<Option<f64>> = rest.split_whitespace().map(num).collect();
        if vals.len() < 16 || vals.iter().take(16).any(|v| v.is_none()) {
            p.add(|| format!("/proc/net/dev: short or bad line {:?}", clip(line)));
            continue;
        }
        let mut a = [0.0; 16];
        for (i, v) in vals.into_iter().take(16).enumerate() {
            a[i] = v.unwrap_or(0.0);
        }
        out.push((dev.trim().to_string(), a));
    }
    out
}

/// Parses an os-release file (`KEY=value`, optionally quoted).
pub fn os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            &v[1..v.len() - 1]
        } else {
            v
        };
        out.insert(
            k.trim().to_string(),
            v.replace("\\\"", "\"").replace("\\\\", "\\"),
        );
    }
    out
}

/// node_os_version's value: the major.minor part of VERSION_ID as a number.
pub fn os_version(version_id: &str) -> Option<f64> {
    let mut parts = version_id.split('.');
    let major = parts.next()?;
    let s = match parts.next() {
        Some(minor) => format!("{major}.{minor}"),
        None => major.to_string(),
    };
    num(&s)
}

/// Parses one /proc/pressure file into (some total, full total) in seconds.
pub fn pressure(text: &str) -> (Option<f64>, Option<f64>) {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let slot = match f.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        for kv in f {
            if let Some(v) = kv.strip_prefix("total=").and_then(num) {
                *slot = Some(v / 1e6);
            }
        }
    }
    (some, full)
}

/// The numbers in a file like /proc/sys/fs/file-nr.
pub fn numbers(text: &str) -> Vec<f64> {
    text.split_whitespace().filter_map(num).collect()
}

/// One /proc/<pid>/stat line, the fields process groups need.
#[derive(Debug, Clone, PartialEq)]
pub struct PidStat {
    pub comm: String,
    pub state: char,
    pub ppid: i64,
    pub minflt: f64,
    pub majflt: f64,
    /// Clock ticks.
    pub utime: f64,
    pub stime: f64,
    pub num_threads: f64,
    /// Clock ticks after boot.
    pub starttime: f64,
    pub vsize: f64,
    /// Pages.
    pub rss: f64,
}

/// Parses /proc/<pid>/stat. `comm` may hold spaces and parentheses, so it is the text between
/// the first `(` and the last `)`.
pub fn pid_stat(text: &str) -> Option<PidStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); field n is rest[n - 3].
    let f = |n: usize| rest.get(n - 3).and_then(|s| num(s));
    Some(PidStat {
        comm,
        state: rest.first()?.chars().next()?,
        ppid: f(4)? as i64,
        minflt: f(10)?,
        majflt: f(12)?,
        utime: f(14)?,
        stime: f(15)?,
        num_threads: f(20)?,
        starttime: f(22)?,
        vsize: f(23)?,
        rss: f(24)?,
    })
}

/// `Key: value` lines of /proc/<pid>/status or /proc/<pid>/io, values as numbers (kB stays kB).
pub fn key_values(text: &str) -> BTreeMap<&str, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if let Some(n) = v.split_whitespace().next().and_then(num) {
                out.insert(k.trim(), n);
            }
        }
    }
    out
}

/// The soft "Max open files" limit from /proc/<pid>/limits (None when unlimited or unreadable).
pub fn max_open_files(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()
        .and_then(num)
}

/// Parses the header/value line pairs of /proc/net/netstat and /proc/net/snmp
/// (`TcpExt: A B` then `TcpExt: 1 2`) into (protocol, field, value).
pub fn netstat(text: &str, p: &mut Problems) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    while let Some(head) = lines.next() {
        let Some(vals) = lines.next() else {
            p.add(|| format!("netstat: header without values {:?}", clip(head)));
            break;
        };
        let (Some((proto, names)), Some((proto2, values))) =
            (head.split_once(':'), vals.split_once(':'))
        else {
            p.add(|| format!("netstat: no protocol in {:?}", clip(head)));
            continue;
        };
        if proto != proto2 {
            p.add(|| format!("netstat: {proto:?} header followed by {proto2:?} values"));
            continue;
        }
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        if names.len() != values.len() {
            p.add(|| {
                format!(
                    "netstat: {proto}: {} names but {} values",
                    names.len(),
                    values.len()
                )
            });
            continue;
        }
        for (n, v) in names.iter().zip(values) {
            match num(v) {
                Some(v) => out.push((proto.to_string(), n.to_string(), v)),
                None => p.add(|| format!("netstat: {proto}{n}: bad value {v:?}")),
            }
        }
    }
    out
}

/// Parses /proc/net/snmp6 (`Ip6InOctets  384`) into (protocol, field, value); the protocol is
/// the name up to its first `6`, as node_exporter splits it.
pub fn snmp6(text: &str, p: &mut Problems) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(k), Some(v)) = (f.next(), f.next()) else {
            if !line.trim().is_empty() {
                p.add(|| format!("snmp6: bad line {:?}", clip(line)));
            }
            continue;
        };
        let (Some(i), Some(v)) = (k.find('6'), num(v)) else {
            p.add(|| format!("snmp6: bad line {:?}", clip(line)));
            continue;
        };
        out.push((k[..=i].to_string(), k[i + 1..].to_string(), v));
    }
    out
}

/// Parses /proc/net/sockstat{,6} (`TCP: inuse 5 orphan 0`) into (protocol, state, value).
pub fn sockstat(text: &str, p: &mut Problems) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            if !line.trim().is_empty() {
                p.add(|| format!("sockstat: no colon in {:?}", clip(line)));
            }
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if !f.len().is_multiple_of(2) {
            p.add(|| format!("sockstat: odd field count in {:?}", clip(line)));
            continue;
        }
        for kv in f.chunks(2) {
            match num(kv[1]) {
                Some(v) => out.push((proto.to_string(), kv[0].to_string(), v)),
                None => p.add(|| format!("sockstat: bad value in {:?}", clip(line))),
            }
        }
    }
    out
}

/// node_exporter's default `--collector.netstat.fields`.
pub const NETSTAT_FIELDS: &str = r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

/// A /sys/class/net attribute as a number: decimal, or hex with `0x` (flags, dev_id).
pub fn sys_number(text: &str) -> Option<f64> {
    let t = text.trim();
    match t.strip_prefix("0x") {
        Some(h) => i64::from_str_radix(h, 16).ok().map(|v| v as f64),
        None => num(t),
    }
}

/// Parses /proc/net/softnet_stat (one line of hex counters per CPU) into
/// (processed, dropped, time_squeezed) per line.
pub fn softnet(text: &str, p: &mut Problems) -> Vec<[f64; 3]> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<Option<u64>> = line
            .split_whitespace()
            .take(3)
            .map(|h| u64::from_str_radix(h, 16).ok())
            .collect();
        match f.as_slice() {
            [Some(a), Some(b), Some(c)] => out.push([*a as f64, *b as f64, *c as f64]),
            [] => {}
            _ => p.add(|| format!("softnet_stat: bad line {:?}", clip(line))),
        }
    }
    out
}

/// Counts /proc/net/arp entries per device.
pub fn arp(text: &str, p: &mut Problems) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.get(5) {
            Some(dev) => *out.entry(dev.to_string()).or_insert(0.0) += 1.0,
            None if line.trim().is_empty() => {}
            None => p.add(|| format!("arp: short line {:?}", clip(line))),
        }
    }
    out
}

/// Sums the per-CPU rows of /proc/net/stat/nf_conntrack (a header, then hex counters) by
/// column name.
pub fn conntrack_stat(text: &str, p: &mut Problems) -> BTreeMap<String, f64> {
    let mut lines = text.lines();
    let mut out = BTreeMap::new();
    let Some(head) = lines.next() else { return out };
    let names: Vec<&str> = head.split_whitespace().collect();
    for line in lines {
        let vals: Vec<Option<u64>> = line
            .split_whitespace()
            .map(|h| u64::from_str_radix(h, 16).ok())
            .collect();
        if vals.is_empty() {
            continue;
        }
        if vals.len() != names.len() || vals.iter().any(Option::is_none) {
            p.add(|| format!("nf_conntrack: bad row {:?}", clip(line)));
            continue;
        }
        for (n, v) in names.iter().zip(vals) {
            *out.entry(n.to_string()).or_insert(0.0) += v.unwrap_or(0) as f64;
        }
    }
    out
}

/// Sums the transmit and receive queue columns (`tx_queue:rx_queue`, hex) of /proc/net/udp or
/// udp6.
pub fn udp_queues(text: &str, p: &mut Problems) -> (f64, f64) {
    let (mut tx, mut rx) = (0.0, 0.0);
    for line in text.lines().skip(1) {
        let Some(q) = line.split_whitespace().nth(4) else {
            if !line.trim().is_empty() {
                p.add(|| format!("udp: short line {:?}", clip(line)));
            }
            continue;
        };
        let parsed = q.split_once(':').and_then(|(t, r)| {
            Some((
                u64::from_str_radix(t, 16).ok()?,
                u64::from_str_radix(r, 16).ok()?,
            ))
        });
        match parsed {
            Some((t, r)) => {
                tx += t as f64;
                rx += r as f64;
            }
            None => p.add(|| format!("udp: bad queue column {q:?}")),
        }
    }
    (tx, rx)
}
