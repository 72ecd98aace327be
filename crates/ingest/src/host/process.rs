//! Named process groups, the way ncabatoff/process-exporter does them: a `processes:` section
//! lists matchers (`comm` names, `exe` names or paths, `cmdline` regexes) with a group-name
//! template, every process on the host lands in the first group that matches (children of a
//! matched process join their parent's group), and each group reports process-exporter's
//! `namedprocess_namegroup_*` families plus Sextant's `sextant_process_group_up` and
//! `sextant_process_group_restarts_total`, so "is my agent runner alive, and how often did it
//! restart" needs no extra exporter.
//!
//! ```yaml
//! processes:
//!   process_names:
//!     - name: "{{.Comm}}"          # template: Comm, ExeBase, ExeFull, Username, PID, StartTime, Matches.<group>
//!       comm: [sleep]              # exact comm (the kernel's 15-character process name)
//!     - name: "runner"
//!       exe: [/usr/bin/agent-runner]   # argv[0]: a path must match fully, a bare name by base name
//!     - name: "worker:{{.Matches.queue}}"
//!       cmdline: ['--queue=(?P<queue>\S+)']  # every regex must match the space-joined cmdline
//! ```
//!
//! Counters (CPU, I/O, page faults, context switches) add up the growth of each process seen,
//! so they do not drop when a process exits. A group's "oldest process" is the one with the
//! earliest start; when it disappears and another process becomes the oldest, that counts as a
//! restart.

use std::collections::{BTreeMap, HashMap, HashSet};

use regex::Regex;
use serde::Deserialize;
use sextant_model::MetricType;

use super::parse::{self, Problems};
use super::{read_file, HostOptions, Out};

/// The `processes:` section of `sextant.yml` (process-exporter's config file format).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessesConfig {
    /// Group definitions; a process joins the first that matches.
    #[serde(default)]
    pub process_names: Vec<ProcessNameConfig>,
}

/// One group definition. All matchers given must match (AND); at least one is required.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessNameConfig {
    /// Group name template, e.g. `"{{.Comm}}"` or a fixed name.
    pub name: String,
    /// Exact process names (`/proc/<pid>/comm`).
    #[serde(default)]
    pub comm: Vec<String>,
    /// Executables: a value with a `/` must equal argv[0]; a bare name must equal its base name.
    #[serde(default)]
    pub exe: Vec<String>,
    /// Regexes that must all match the command line joined with spaces; named capture groups
    /// are available to the template as `{{.Matches.<name>}}`.
    #[serde(default)]
    pub cmdline: Vec<String>,
}

/// A process-group definition that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("processes.process_names[{index}]: needs at least one of comm, exe or cmdline")]
    NoMatcher { index: usize },
    #[error("processes.process_names[{index}].cmdline: invalid regex {regex:?}: {error}")]
    Regex {
        index: usize,
        regex: String,
        error: String,
    },
    #[error("processes.process_names[{index}].name: {msg} in template {template:?}")]
    Template {
        index: usize,
        template: String,
        msg: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Comm,
    ExeBase,
    ExeFull,
    Username,
    Pid,
    StartTime,
    Match(String),
}

fn parse_template(t: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        if i > 0 {
            out.push(Piece::Lit(rest[..i].to_string()));
        }
        let after = &rest[i + 2..];
        let j = after.find("}}").ok_or("unclosed {{")?;
        let field = after[..j].trim();
        out.push(match field {
            ".Comm" => Piece::Comm,
            ".ExeBase" => Piece::ExeBase,
            ".ExeFull" => Piece::ExeFull,
            ".Username" => Piece::Username,
            ".PID" => Piece::Pid,
            ".StartTime" => Piece::StartTime,
            f => match f.strip_prefix(".Matches.") {
                Some(m) if !m.is_empty() => Piece::Match(m.to_string()),
                _ => return Err(format!("unknown field {f:?}")),
            },
        });
        rest = &after[j + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Lit(rest.to_string()));
    }
    Ok(out)
}

struct Matcher {
    template: Vec<Piece>,
    comm: HashSet<String>,
    /// base name → full path ("" = any path).
    exe: HashMap<String, Vec<String>>,
    cmdline: Vec<Regex>,
}

/// What a process looks like to the matchers.
struct Attrs<'a> {
    pid: i64,
    comm: &'a str,
    cmdline: &'a [String],
    uid: Option<u32>,
    start_secs: f64,
}

impl Matcher {
    /// The group name if `a` matches.
    fn name(&self, a: &Attrs, users: &mut Users, opts: &HostOptions) -> Option<String> {
        if !self.comm.is_empty() && !self.comm.contains(a.comm) {
            return None;
        }
        let argv0 = a.cmdline.first().map(String::as_str).unwrap_or("");
        let base = argv0.rsplit('/').next().unwrap_or(argv0);
        if !self.exe.is_empty() {
            let ok = self
                .exe
                .get(base)
                .is_some_and(|fulls| fulls.iter().any(|f| f.is_empty() || f == argv0));
            if argv0.is_empty() || !ok {
                return None;
            }
        }
        let mut matches = BTreeMap::new();
        if !self.cmdline.is_empty() {
            let joined = a.cmdline.join(" ");
            for re in &self.cmdline {
                let caps = re.captures(&joined)?;
                for n in re.capture_names().flatten() {
                    if let Some(m) = caps.name(n) {
                        matches.insert(n.to_string(), m.as_str().to_string());
                    }
                }
            }
        }
        let mut s = String::new();
        for p in &self.template {
            match p {
                Piece::Lit(l) => s.push_str(l),
                Piece::Comm => s.push_str(a.comm),
                Piece::ExeBase => s.push_str(base),
                Piece::ExeFull => s.push_str(argv0),
                Piece::Pid => s.push_str(&a.pid.to_string()),
                Piece::StartTime => s.push_str(&format!("{}", a.start_secs as i64)),
                Piece::Username => s.push_str(&users.name(a.uid, opts)),
                Piece::Match(m) => s.push_str(matches.get(m).map(String::as_str).unwrap_or("")),
            }
        }
        // An empty name (say, a missing capture) would merge into an unlabelled series.
        (!s.is_empty()).then_some(s)
    }
}

/// uid → user name from /etc/passwd, loaded on first use.
#[derive(Default)]
struct Users(Option<HashMap<u32, String>>);

impl Users {
    fn name(&mut self, uid: Option<u32>, opts: &HostOptions) -> String {
        let Some(uid) = uid else { return String::new() };
        let map = self.0.get_or_insert_with(|| {
            let text = read_file(&opts.rootfs.join("etc/passwd")).unwrap_or_default();
            text.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
                })
                .collect()
        });
        map.get(&uid).cloned().unwrap_or_else(|| uid.to_string())
    }
}

/// Most process groups tracked at once.
pub const MAX_GROUPS: usize = 1000;

/// Identity of a process across collections (pids are reused; start times tell them apart).
type ProcId = (i64, u64);

#[derive(Default, Clone, Copy)]
struct ProcCounters {
    user: f64,
    system: f64,
    read: f64,
    write: f64,
    majflt: f64,
    minflt: f64,
    vol: f64,
    nonvol: f64,
}

#[derive(Default)]
struct GroupState {
    totals: ProcCounters,
    last_oldest: Option<ProcId>,
    restarts: f64,
}

#[derive(Default)]
struct GroupNow {
    procs: f64,
    threads: f64,
    resident: f64,
    virt: f64,
    swapped: f64,
    open_fds: f64,
    worst_fd_ratio: f64,
    oldest: Option<(f64, ProcId)>,
    states: [f64; 5],
    members: HashSet<ProcId>,
}

/// Tracks the configured groups across collections.
pub struct ProcessGroups {
    matchers: Vec<Matcher>,
    /// Group (or None) of every process seen, decided once per process, as process-exporter does.
    assigned: HashMap<ProcId, Option<String>>,
    last: HashMap<ProcId, ProcCounters>,
    groups: BTreeMap<String, GroupState>,
    users: Users,
    procread_errors: f64,
    partial_errors: f64,
}

impl ProcessGroups {
    /// Compiles `cfg`; errors name the entry and field.
    pub fn new(cfg: &ProcessesConfig) -> Result<Self, ConfigError> {
        let mut matchers = Vec::new();
        let mut static_names = Vec::new();
        for (index, c) in cfg.process_names.iter().enumerate() {
            if c.comm.is_empty() && c.exe.is_empty() && c.cmdline.is_empty() {
                return Err(ConfigError::NoMatcher { index });
            }
            let template = parse_template(&c.name).map_err(|msg| ConfigError::Template {
                index,
                template: c.name.clone(),
                msg,
            })?;
            if c.name.is_empty() {
                return Err(ConfigError::Template {
                    index,
                    template: c.name.clone(),
                    msg: "empty group name".into(),
                });
            }
            if let [Piece::Lit(l)] = template.as_slice() {
                static_names.push(l.clone());
            }
            let mut cmdline = Vec::new();
            for r in &c.cmdline {
                cmdline.push(Regex::new(r).map_err(|e| ConfigError::Regex {
                    index,
                    regex: r.clone(),
                    error: e.to_string(),
                })?);
            }
            let mut exe: HashMap<String, Vec<String>> = HashMap::new();
            for e in &c.exe {
                let base = e.rsplit('/').next().unwrap_or(e).to_string();
                let full = if e.contains('/') {
                    e.clone()
                } else {
                    String::new()
                };
                exe.entry(base).or_default().push(full);
            }
            matchers.push(Matcher {
                template,
                comm: c.comm.iter().cloned().collect(),
                exe,
                cmdline,
            });
        }
        let mut groups = BTreeMap::new();
        for n in &static_names {
            groups.insert(n.clone(), GroupState::default());
        }
        Ok(ProcessGroups {
            matchers,
            assigned: HashMap::new(),
            last: HashMap::new(),
            groups,
            users: Users::default(),
            procread_errors: 0.0,
            partial_errors: 0.0,
        })
    }

    /// Scans /proc once and writes every group's series to `out`.
    pub(crate) fn collect(
        &mut self,
        opts: &HostOptions,
        boot: Option<f64>,
        user_hz: f64,
        out: &mut Out,
        p: &mut Problems,
    ) {
        let boot = boot.unwrap_or(0.0);
        let page = super::sys::page_size();
        let Ok(rd) = std::fs::read_dir(&opts.proc_path) else {
            p.add(|| format!("cannot list {}", opts.proc_path.display()));
            return;
        };
        // Pass 1: stat of every process (identity, parent).
        let mut procs: Vec<(ProcId, parse::PidStat)> = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<i64>().ok()) else {
                continue;
            };
            let Ok(text) = read_file(&e.path().join("stat")) else {
                continue;
            }; // exited
            match parse::pid_stat(&text) {
                Some(st) => procs.push(((pid, st.starttime as u64), st)),
                None => {
                    self.procread_errors += 1.0;
                    p.add(|| format!("/proc/{pid}/stat: malformed"));
                }
            }
        }
        let by_pid: HashMap<i64, (ProcId, i64)> = procs
            .iter()
            .map(|(id, st)| (id.0, (*id, st.ppid)))
            .collect();
        // Pass 2: decide the group of processes not seen before.
        let mut users = std::mem::take(&mut self.users);
        for (id, st) in &procs {
            if self.assigned.contains_key(id) {
                continue;
            }
            let dir = opts.proc_path.join(id.0.to_string());
            let cmdline: Vec<String> = read_file(&dir.join("cmdline"))
                .map(|s| {
                    s.split('\0')
                        .filter(|a| !a.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let uid = read_file(&dir.join("status")).ok().and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            });
            let a = Attrs {
                pid: id.0,
                comm: &st.comm,
                cmdline: &cmdline,
                uid,
                start_secs: boot + st.starttime / user_hz,
            };
            let mut g = self
                .matchers
                .iter()
                .find_map(|m| m.name(&a, &mut users, opts));
            // Templates like {{.PID}} make a group per process; groups are kept for their
            // counters, so their number is capped.
            if let Some(name) = &g {
                if !self.groups.contains_key(name) && self.groups.len() >= MAX_GROUPS {
                    p.add(|| {
                        format!("more than {MAX_GROUPS} process groups; {name:?} not tracked")
                    });
                    g = None;
                } else {
                    self.groups.entry(name.clone()).or_default();
                }
            }
            self.assigned.insert(*id, g);
        }
        self.users = users;
        // Children of a matched process join its group (process-exporter's -children default).
        let mut group_of: HashMap<ProcId, String> = HashMap::new();
        for (id, _) in &procs {
            let mut cur = *id;
            for _ in 0..64 {
                if let Some(Some(g)) = self.assigned.get(&cur) {
                    group_of.insert(*id, g.clone());
                    break;
                }
                match by_pid.get(&cur.0) {
                    Some((_, ppid)) if *ppid > 0 => match by_pid.get(ppid) {
                        Some((pid_id, _)) => cur = *pid_id,
                        None => break,
                    },
                    _ => break,
                }
            }
        }
        // Pass 3: details of grouped processes.
        let mut now: BTreeMap<String, GroupNow> = BTreeMap::new();
        let mut seen_counters: HashMap<ProcId, ProcCounters> = HashMap::new();
        for (id, st) in &procs {
            let Some(g) = group_of.get(id) else { continue };
            let dir = opts.proc_path.join(id.0.to_string());
            let status = read_file(&dir.join("status")).unwrap_or_default();
            let status = parse::key_values(&status);
            let io = read_file(&dir.join("io")).ok();
            let io_kv = io.as_deref().map(parse::key_values).unwrap_or_default();
            if io.is_none() {
                self.partial_errors += 1.0;
            }
            let c = ProcCounters {
                user: st.utime / user_hz,
                system: st.stime / user_hz,
                read: io_kv.get("read_bytes").copied().unwrap_or(0.0),
                write: io_kv.get("write_bytes").copied().unwrap_or(0.0),
                majflt: st.majflt,
                minflt: st.minflt,
                vol: status
                    .get("voluntary_ctxt_switches")
                    .copied()
                    .unwrap_or(0.0),
                nonvol: status
                    .get("nonvoluntary_ctxt_switches")
                    .copied()
                    .unwrap_or(0.0),
            };
            let gs = self.groups.entry(g.clone()).or_default();
            let prev = self.last.get(id).copied().unwrap_or_default();
            let d = |new: f64, old: f64| (new - old).max(0.0);
            gs.totals.user += d(c.user, prev.user);
            gs.totals.system += d(c.system, prev.system);
            gs.totals.read += d(c.read, prev.read);
            gs.totals.write += d(c.write, prev.write);
            gs.totals.majflt += d(c.majflt, prev.majflt);
            gs.totals.minflt += d(c.minflt, prev.minflt);
            gs.totals.vol += d(c.vol, prev.vol);
            gs.totals.nonvol += d(c.nonvol, prev.nonvol);
            seen_counters.insert(*id, c);

            let gn = now.entry(g.clone()).or_default();
            gn.procs += 1.0;
            gn.members.insert(*id);
            gn.threads += st.num_threads;
            gn.resident += st.rss * page;
            gn.virt += st.vsize;
            gn.swapped += status.get("VmSwap").copied().unwrap_or(0.0) * 1024.0;
            match std::fs::read_dir(dir.join("fd")) {
                Ok(fds) => {
                    let n = fds.count() as f64;
                    gn.open_fds += n;
                    let limit = read_file(&dir.join("limits"))
                        .ok()
                        .and_then(|l| parse::max_open_files(&l));
                    if let Some(limit) = limit.filter(|l| *l > 0.0) {
                        gn.worst_fd_ratio = gn.worst_fd_ratio.max(n / limit);
                    }
                }
                Err(_) => self.partial_errors += 1.0,
            }
            let start = boot + st.starttime / user_hz;
            if gn.oldest.is_none_or(|(s, oid)| (start, *id) < (s, oid)) {
                gn.oldest = Some((start, *id));
            }
            let si = match st.state {
                'R' => 0,
                'S' => 1,
                'D' => 2,
                'Z' => 3,
                _ => 4,
            };
            gn.states[si] += 1.0;
        }
        self.last = seen_counters;
        let alive: HashSet<ProcId> = procs.iter().map(|(id, _)| *id).collect();
        self.assigned.retain(|id, _| alive.contains(id));

        // Restarts: the previous oldest process is gone and another one is the oldest now.
        for (name, gs) in self.groups.iter_mut() {
            let gn = now.get(name);
            let cur = gn.and_then(|g| g.oldest.map(|(_, id)| id));
            if let (Some(prev), Some(c)) = (gs.last_oldest, cur) {
                if prev != c && !gn.is_some_and(|g| g.members.contains(&prev)) {
                    gs.restarts += 1.0;
                }
            }
            if cur.is_some() {
                gs.last_oldest = cur;
            }
        }
        self.write(out, &now);
    }

    fn write(&self, out: &mut Out, now: &BTreeMap<String, GroupNow>) {
        const G: MetricType = MetricType::Gauge;
        const C: MetricType = MetricType::Counter;
        let empty = GroupNow::default();
        let fams: [(&str, MetricType, &str); 16] = [
            ("namedprocess_namegroup_num_procs", G, "number of processes in this group"),
            ("namedprocess_namegroup_cpu_seconds_total", C, "Cpu user usage in seconds"),
            ("namedprocess_namegroup_read_bytes_total", C, "number of bytes read by this group"),
            ("namedprocess_namegroup_write_bytes_total", C, "number of bytes written by this group"),
            ("namedprocess_namegroup_major_page_faults_total", C, "Major page faults"),
            ("namedprocess_namegroup_minor_page_faults_total", C, "Minor page faults"),
            ("namedprocess_namegroup_context_switches_total", C, "Context switches"),
            ("namedprocess_namegroup_memory_bytes", G, "number of bytes of memory in use"),
            ("namedprocess_namegroup_open_filedesc", G, "number of open file descriptors for this group"),
            ("namedprocess_namegroup_worst_fd_ratio", G, "the worst (closest to 1) ratio between open fds and max fds among all procs in this group"),
            ("namedprocess_namegroup_oldest_start_time_seconds", G, "start time in seconds since 1970/01/01 of oldest process in group"),
            ("namedprocess_namegroup_num_threads", G, "Number of threads"),
            ("namedprocess_namegroup_states", G, "Number of processes in states Running, Sleeping, Waiting, Zombie, or Other"),
            ("sextant_process_group_up", G, "1 when at least one process of the group is running, else 0."),
            ("sextant_process_group_restarts_total", C, "Times the oldest process of the group went away and another process took its place."),
            ("namedprocess_scrape_procread_errors", C, "incremented each time a proc's metrics collection fails"),
        ];
        for (n, k, h) in fams {
            out.family(n, k, h);
        }
        for (name, gs) in &self.groups {
            let gn = now.get(name).unwrap_or(&empty);
            let l = |extra: &[(&'static str, &'static str)]| {
                let mut v: Vec<(&str, &str)> = vec![("groupname", name.as_str())];
                v.extend_from_slice(extra);
                v
            };
            let t = &gs.totals;
            out.sample("namedprocess_namegroup_num_procs", &l(&[]), gn.procs);
            out.sample(
                "namedprocess_namegroup_cpu_seconds_total",
                &l(&[("mode", "user")]),
                t.user,
            );
            out.sample(
                "namedprocess_namegroup_cpu_seconds_total",
                &l(&[("mode", "system")]),
                t.system,
            );
            out.sample("namedprocess_namegroup_read_bytes_total", &l(&[]), t.read);
            out.sample("namedprocess_namegroup_write_bytes_total", &l(&[]), t.write);
            out.sample(
                "namedprocess_namegroup_major_page_faults_total",
                &l(&[]),
                t.majflt,
            );
            out.sample(
                "namedprocess_namegroup_minor_page_faults_total",
                &l(&[]),
                t.minflt,
            );
            out.sample(
                "namedprocess_namegroup_context_switches_total",
                &l(&[("ctxswitchtype", "voluntary")]),
                t.vol,
            );
            out.sample(
                "namedprocess_namegroup_context_switches_total",
                &l(&[("ctxswitchtype", "nonvoluntary")]),
                t.nonvol,
            );
            out.sample(
                "namedprocess_namegroup_memory_bytes",
                &l(&[("memtype", "resident")]),
                gn.resident,
            );
            out.sample(
                "namedprocess_namegroup_memory_bytes",
                &l(&[("memtype", "virtual")]),
                gn.virt,
            );
            out.sample(
                "namedprocess_namegroup_memory_bytes",
                &l(&[("memtype", "swapped")]),
                gn.swapped,
            );
            out.sample("namedprocess_namegroup_open_filedesc", &l(&[]), gn.open_fds);
            out.sample(
                "namedprocess_namegroup_worst_fd_ratio",
                &l(&[]),
                gn.worst_fd_ratio,
            );
            if let Some((start, _)) = gn.oldest {
                out.sample(
                    "namedprocess_namegroup_oldest_start_time_seconds",
                    &l(&[]),
                    start.floor(),
                );
            }
            out.sample("namedprocess_namegroup_num_threads", &l(&[]), gn.threads);
            for (i, s) in ["Running", "Sleeping", "Waiting", "Zombie", "Other"]
                .iter()
                .enumerate()
            {
                out.sample(
                    "namedprocess_namegroup_states",
                    &l(&[("state", s)]),
                    gn.states[i],
                );
            }
            out.sample(
                "sextant_process_group_up",
                &l(&[]),
                if gn.procs > 0.0 { 1.0 } else { 0.0 },
            );
            out.sample("sextant_process_group_restarts_total", &l(&[]), gs.restarts);
        }
        out.sample(
            "namedprocess_scrape_procread_errors",
            &[],
            self.procread_errors,
        );
        out.family("namedprocess_scrape_partial_errors", C, "incremented each time a tracked proc's metrics collection fails partially, e.g. unreadable I/O stats");
        out.sample(
            "namedprocess_scrape_partial_errors",
            &[],
            self.partial_errors,
        );
    }
}
