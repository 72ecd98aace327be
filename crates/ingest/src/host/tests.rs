//! Host collector tests over captured /proc and /sys trees in testdata/host/.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sextant_model::MetricType;

use super::parse::{self, Problems};
use super::process::{ProcessGroups, ProcessesConfig};
use super::*;
use crate::remote_write::WriteBatch;

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/host")
        .join(rel)
}

fn opts(proc_rel: &str) -> HostOptions {
    HostOptions {
        proc_path: testdata(proc_rel),
        sys_path: testdata("sys"),
        rootfs: testdata("rootfs"),
        job: "node".into(),
        instance: "testhost".into(),
    }
}

/// Value of the one series named `name` whose labels include `want`.
fn value(b: &WriteBatch, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let hits: Vec<f64> = b
        .series
        .iter()
        .filter(|s| s.labels.metric_name() == Some(name))
        .filter(|s| want.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| s.samples[0].v)
        .collect();
    assert!(
        hits.len() <= 1,
        "{name}{want:?} matched {} series",
        hits.len()
    );
    hits.first().copied()
}

fn count(b: &WriteBatch, name: &str) -> usize {
    b.series
        .iter()
        .filter(|s| s.labels.metric_name() == Some(name))
        .count()
}

fn kind(b: &WriteBatch, name: &str) -> Option<MetricType> {
    b.metadata
        .iter()
        .find(|m| m.metric_family == name)
        .map(|m| m.kind)
}

#[test]
fn fixture_tree_yields_node_exporter_series() {
    let mut c = HostCollector::new(opts("proc"), None).expect("collector");
    let b = c.collect(1_700_000_000_000);
    let hz = sys::clock_ticks();

    // Every series carries job and instance, every family has metadata, no duplicates.
    let mut seen = std::collections::HashSet::new();
    for s in &b.series {
        assert_eq!(s.labels.get("job"), Some("node"));
        assert_eq!(s.labels.get("instance"), Some("testhost"));
        let name = s.labels.metric_name().expect("name");
        assert!(kind(&b, name).is_some(), "no metadata for {name}");
        assert!(
            seen.insert(s.labels.clone()),
            "duplicate series {}",
            s.labels
        );
        assert_eq!(s.samples[0].t, 1_700_000_000_000);
    }

    // cpu (values from the captured /proc/stat: cpu0 629948 19228 52133 1549631 ...)
    assert_eq!(
        value(
            &b,
            "node_cpu_seconds_total",
            &[("cpu", "0"), ("mode", "user")]
        ),
        Some(629948.0 / hz)
    );
    assert_eq!(
        value(
            &b,
            "node_cpu_seconds_total",
            &[("cpu", "1"), ("mode", "idle")]
        ),
        Some(1577365.0 / hz)
    );
    assert_eq!(count(&b, "node_cpu_seconds_total"), 16);
    assert_eq!(count(&b, "node_cpu_guest_seconds_total"), 4);
    assert_eq!(
        kind(&b, "node_cpu_seconds_total"),
        Some(MetricType::Counter)
    );
    assert_eq!(value(&b, "node_boot_time_seconds", &[]), Some(1795409777.0));
    assert!(value(&b, "node_context_switches_total", &[]).is_some());
    assert!(value(&b, "node_forks_total", &[]).is_some());
    assert!(value(&b, "node_procs_running", &[]).is_some());
    assert!(value(&b, "node_load15", &[]).is_some());

    // meminfo: kB → bytes, parentheses → underscores, unit-less fields keep their names.
    let meminfo = std::fs::read_to_string(testdata("proc/meminfo")).expect("fixture");
    let total_kb: f64 = meminfo
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("MemTotal");
    assert_eq!(
        value(&b, "node_memory_MemTotal_bytes", &[]),
        Some(total_kb * 1024.0)
    );
    assert!(value(&b, "node_memory_MemAvailable_bytes", &[]).is_some());
    assert!(value(&b, "node_memory_Active_anon_bytes", &[]).is_some());
    assert!(value(&b, "node_memory_HugePages_Total", &[]).is_some());
    assert_eq!(
        kind(&b, "node_memory_MemTotal_bytes"),
        Some(MetricType::Gauge)
    );

    // vmstat: only node_exporter's default fields, untyped.
    assert!(value(&b, "node_vmstat_pgfault", &[]).is_some());
    assert!(value(&b, "node_vmstat_oom_kill", &[]).is_some());
    assert!(value(&b, "node_vmstat_nr_free_pages", &[]).is_none());
    assert_eq!(kind(&b, "node_vmstat_pgfault"), Some(MetricType::Unknown));

    // filesystem: exclusions, dedup, escapes, read-only, statfs failure.
    let root = [
        ("device", "/dev/vda"),
        ("fstype", "ext4"),
        ("mountpoint", "/"),
    ];
    assert!(value(&b, "node_filesystem_size_bytes", &root).is_some_and(|v| v > 0.0));
    assert_eq!(value(&b, "node_filesystem_device_error", &root), Some(0.0));
    assert_eq!(value(&b, "node_filesystem_readonly", &root), Some(0.0));
    let ro = [("mountpoint", "/srv/read only")];
    assert_eq!(value(&b, "node_filesystem_readonly", &ro), Some(1.0));
    let missing = [("mountpoint", "/missing")];
    assert_eq!(
        value(&b, "node_filesystem_device_error", &missing),
        Some(1.0)
    );
    assert_eq!(value(&b, "node_filesystem_size_bytes", &missing), None);
    assert_eq!(
        count(&b, "node_filesystem_device_error"),
        3,
        "/, /srv/read only, /missing"
    );
    for excluded in [
        "/proc",
        "/dev/shm",
        "/run",
        "/sys/fs/cgroup",
        "/var/lib/docker/overlay2/abc/merged",
    ] {
        assert_eq!(
            value(
                &b,
                "node_filesystem_device_error",
                &[("mountpoint", excluded)]
            ),
            None,
            "{excluded}"
        );
    }

    // diskstats: loop devices excluded; sectors → bytes, ms → s.
    assert_eq!(
        value(
            &b,
            "node_disk_reads_completed_total",
            &[("device", "loop0")]
        ),
        None
    );
    let disk = std::fs::read_to_string(testdata("proc/diskstats")).expect("fixture");
    let vda: Vec<f64> = disk
        .lines()
        .find(|l| l.contains(" vda "))
        .expect("vda")
        .split_whitespace()
        .skip(3)
        .map(|v| v.parse().expect("num"))
        .collect();
    assert_eq!(
        value(&b, "node_disk_reads_completed_total", &[("device", "vda")]),
        Some(vda[0])
    );
    assert_eq!(
        value(&b, "node_disk_read_bytes_total", &[("device", "vda")]),
        Some(vda[2] * 512.0)
    );
    assert_eq!(
        value(&b, "node_disk_io_time_seconds_total", &[("device", "vda")]),
        Some(vda[9] / 1000.0)
    );
    assert_eq!(
        value(&b, "node_disk_flush_requests_total", &[("device", "vda")]),
        Some(vda[15])
    );
    assert_eq!(kind(&b, "node_disk_io_now"), Some(MetricType::Gauge));

    // netdev: lo excluded.
    assert!(value(
        &b,
        "node_network_receive_bytes_total",
        &[("device", "eth0")]
    )
    .is_some());
    assert!(value(
        &b,
        "node_network_transmit_colls_total",
        &[("device", "eth0")]
    )
    .is_some());
    assert_eq!(
        value(&b, "node_network_receive_bytes_total", &[("device", "lo")]),
        None
    );

    // netclass: every device in /sys/class/net (lo too), unreadable attributes skipped.
    assert_eq!(
        value(&b, "node_network_up", &[("device", "eth0")]),
        Some(1.0)
    );
    assert_eq!(value(&b, "node_network_up", &[("device", "lo")]), Some(0.0));
    assert_eq!(
        value(&b, "node_network_flags", &[("device", "eth0")]),
        Some(4099.0)
    );
    assert_eq!(
        value(&b, "node_network_speed_bytes", &[("device", "eth0")]),
        Some(-125000.0)
    );
    assert_eq!(
        value(&b, "node_network_carrier", &[("device", "ifb0")]),
        None
    );
    assert!(value(&b, "node_network_mtu_bytes", &[("device", "ifb0")]).is_some());
    assert_eq!(
        value(
            &b,
            "node_network_info",
            &[("device", "eth0"), ("operstate", "up")]
        ),
        Some(1.0)
    );
    assert_eq!(
        kind(&b, "node_network_carrier_changes_total"),
        Some(MetricType::Counter)
    );

    // netstat (default fields only, untyped) and sockstat.
    assert!(value(&b, "node_netstat_Tcp_CurrEstab", &[]).is_some());
    assert!(value(&b, "node_netstat_IpExt_InOctets", &[]).is_some());
    assert!(value(&b, "node_netstat_Ip6_InOctets", &[]).is_some());
    assert!(value(&b, "node_netstat_Udp_InErrors", &[]).is_some());
    assert_eq!(value(&b, "node_netstat_TcpExt_TW", &[]), None);
    assert_eq!(
        kind(&b, "node_netstat_Tcp_CurrEstab"),
        Some(MetricType::Unknown)
    );
    assert!(value(&b, "node_sockstat_sockets_used", &[]).is_some());
    assert!(value(&b, "node_sockstat_TCP6_inuse", &[]).is_some());
    let mem = value(&b, "node_sockstat_TCP_mem", &[]).expect("TCP mem");
    assert_eq!(
        value(&b, "node_sockstat_TCP_mem_bytes", &[]),
        Some(mem * sys::page_size())
    );
    for c in ["netclass", "netstat", "sockstat"] {
        assert_eq!(
            value(&b, "sextant_host_collect_errors_total", &[("collector", c)]),
            Some(0.0),
            "{c}"
        );
    }

    // softnet (hex), arp, timex (live kernel).
    let softnet = std::fs::read_to_string(testdata("proc/net/softnet_stat")).expect("fixture");
    let processed0 =
        u64::from_str_radix(softnet.split_whitespace().next().expect("field"), 16).expect("hex");
    assert_eq!(
        value(&b, "node_softnet_processed_total", &[("cpu", "0")]),
        Some(processed0 as f64)
    );
    assert_eq!(
        count(&b, "node_softnet_dropped_total"),
        softnet.lines().count()
    );
    let arp = std::fs::read_to_string(testdata("proc/net/arp")).expect("fixture");
    let eth0 = arp.lines().filter(|l| l.ends_with("eth0")).count() as f64;
    assert_eq!(
        value(&b, "node_arp_entries", &[("device", "eth0")]),
        Some(eth0)
    );
    assert!(value(&b, "node_timex_sync_status", &[]).is_some_and(|v| v == 0.0 || v == 1.0));
    assert!(value(&b, "node_timex_tick_seconds", &[]).is_some_and(|v| v > 0.0));

    // conntrack and UDP queues.
    assert!(value(&b, "node_nf_conntrack_entries_limit", &[]).is_some_and(|v| v > 0.0));
    assert!(value(&b, "node_nf_conntrack_stat_found", &[]).is_some());
    assert!(value(&b, "node_nf_conntrack_stat_search_restart", &[]).is_some());
    assert_eq!(
        value(&b, "node_udp_queues", &[("ip", "v4"), ("queue", "tx")]),
        Some(17.0)
    );
    assert_eq!(
        value(&b, "node_udp_queues", &[("ip", "v4"), ("queue", "rx")]),
        Some(513.0)
    );
    assert!(value(&b, "node_udp_queues", &[("ip", "v6"), ("queue", "rx")]).is_some());

    assert_eq!(value(&b, "node_selinux_enabled", &[]), Some(0.0));

    // misc, os, time.
    assert!(value(&b, "node_filefd_maximum", &[]).is_some());
    assert!(value(&b, "node_entropy_available_bits", &[]).is_some());
    assert!(value(&b, "node_pressure_cpu_waiting_seconds_total", &[]).is_some());
    assert!(value(&b, "node_pressure_io_stalled_seconds_total", &[]).is_some());
    assert_eq!(
        value(
            &b,
            "node_os_info",
            &[("id", "debian"), ("version_codename", "bookworm")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&b, "node_os_version", &[("id", "debian")]),
        Some(12.0)
    );
    assert_eq!(value(&b, "node_time_seconds", &[]), Some(1_700_000_000.0));
    assert_eq!(
        value(
            &b,
            "node_time_clocksource_available_info",
            &[("clocksource", "kvm-clock"), ("device", "0")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &b,
            "node_time_clocksource_current_info",
            &[("clocksource", "tsc")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&b, "node_uname_info", &[]), Some(1.0));

    // Sextant's own accounting.
    assert!(value(&b, "sextant_host_collect_duration_seconds", &[]).is_some());
    assert_eq!(
        value(
            &b,
            "sextant_host_collect_errors_total",
            &[("collector", "stat")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &b,
            "sextant_host_collect_errors_total",
            &[("collector", "meminfo")]
        ),
        Some(0.0)
    );
}

#[test]
fn malformed_and_truncated_files_are_skipped_and_counted() {
    let mut c = HostCollector::new(opts("malformed/proc"), None).expect("collector");
    let b = c.collect(1);
    let errs =
        |c: &str| value(&b, "sextant_host_collect_errors_total", &[("collector", c)]).expect(c);
    // stat: "cpu1 100 2" (short), "cpuX" (bad name), "ctxt abc", "procs_running" without value.
    assert_eq!(errs("stat"), 4.0);
    assert_eq!(errs("loadavg"), 1.0);
    // meminfo: "MemFree:", the garbage line, "Weird(x: 5 parsecs", the cut "MemTot".
    assert_eq!(errs("meminfo"), 4.0);
    assert_eq!(errs("vmstat"), 2.0);
    // diskstats: the 3-number vda line and the "x" in sda.
    assert_eq!(errs("diskstats"), 2.0);
    // netdev: eth1 short, garbage line.
    assert_eq!(errs("netdev"), 2.0);
    // netstat: IpExt short of values, Tcp header followed by Udp values, "x"; net/snmp missing.
    assert_eq!(errs("netstat"), 4.0);
    // sockstat: odd field count, "x", a line without colon.
    assert_eq!(errs("sockstat"), 3.0);
    // softnet: "zz" is not hex, a line with one field.
    assert_eq!(errs("softnet"), 2.0);
    assert_eq!(
        value(&b, "node_softnet_processed_total", &[("cpu", "0")]),
        Some(1112196.0)
    );
    // conntrack: the "zz" row and the short row; udp: "nothex" and the short line.
    assert_eq!(errs("conntrack"), 2.0);
    assert_eq!(
        value(&b, "node_nf_conntrack_stat_found", &[]),
        Some(0x22 as f64)
    );
    assert_eq!(
        value(&b, "node_nf_conntrack_stat_drop", &[]),
        Some(0x33 as f64)
    );
    assert_eq!(errs("udp_queues"), 2.0);
    assert_eq!(
        value(&b, "node_udp_queues", &[("ip", "v4"), ("queue", "tx")]),
        Some(10.0)
    );
    // The good parts still arrive.
    assert_eq!(value(&b, "node_netstat_TcpExt_ListenDrops", &[]), Some(2.0));
    assert_eq!(value(&b, "node_netstat_Tcp_CurrEstab", &[]), Some(4.0));
    assert_eq!(value(&b, "node_sockstat_sockets_used", &[]), Some(3.0));
    assert_eq!(value(&b, "node_sockstat_UDP_mem", &[]), Some(2.0));
    assert_eq!(
        value(
            &b,
            "node_cpu_seconds_total",
            &[("cpu", "0"), ("mode", "user")]
        ),
        Some(100.0 / sys::clock_ticks())
    );
    assert_eq!(count(&b, "node_cpu_seconds_total"), 8);
    assert_eq!(value(&b, "node_forks_total", &[]), Some(12.0));
    assert_eq!(value(&b, "node_context_switches_total", &[]), None);
    assert_eq!(
        value(&b, "node_memory_MemTotal_bytes", &[]),
        Some(1024000.0)
    );
    assert_eq!(
        value(&b, "node_memory_MemAvailable_bytes", &[]),
        Some(512000.0)
    );
    assert_eq!(value(&b, "node_memory_HugePages_Total", &[]), Some(0.0));
    assert_eq!(value(&b, "node_vmstat_pgfault", &[]), Some(10.0));
    assert_eq!(
        value(&b, "node_disk_reads_completed_total", &[("device", "vdb")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &b,
            "node_disk_discards_completed_total",
            &[("device", "vdb")]
        ),
        None,
        "old kernel: 11 fields"
    );
    assert_eq!(
        value(
            &b,
            "node_network_receive_bytes_total",
            &[("device", "eth0")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&b, "node_load1", &[]), None);
    // The counts accumulate over collections.
    let b2 = c.collect(2);
    assert_eq!(
        value(
            &b2,
            "sextant_host_collect_errors_total",
            &[("collector", "stat")]
        ),
        Some(8.0)
    );
}

#[test]
fn every_prefix_of_every_fixture_parses_without_panic() {
    let files = [
        "stat",
        "meminfo",
        "vmstat",
        "diskstats",
        "net/dev",
        "mounts",
        "loadavg",
        "4242/stat",
        "4242/status",
        "4242/limits",
        "pressure/io",
    ];
    for f in files {
        let text = std::fs::read_to_string(testdata("proc").join(f)).expect(f);
        // Every cut in the first lines, around every line end, and every 13th byte: truncation
        // mid-field, mid-line and at line ends, without quadratic run time on big files.
        let near_line_end = |i: usize| {
            text.as_bytes()
                .get(i.saturating_sub(1)..(i + 2).min(text.len()))
                .is_some_and(|w| w.contains(&b'\n'))
        };
        let cuts = (0..=text.len())
            .filter(|i| *i < 256 || i % 13 == 0 || near_line_end(*i))
            .filter(|i| text.is_char_boundary(*i));
        for cut in cuts {
            let t = &text[..cut];
            let mut p = Problems::default();
            let _ = parse::stat(t, 100.0, &mut p);
            let _ = parse::meminfo(t, &mut p);
            let _ = parse::vmstat(t, &mut p);
            let _ = parse::diskstats(t, &mut p);
            let _ = parse::netdev(t, &mut p);
            let _ = parse::mounts(t, &mut p);
            let _ = parse::loadavg(t);
            let _ = parse::pid_stat(t);
            let _ = parse::key_values(t);
            let _ = parse::max_open_files(t);
            let _ = parse::pressure(t);
            let _ = parse::os_release(t);
            let _ = parse::netstat(t, &mut p);
            let _ = parse::snmp6(t, &mut p);
            let _ = parse::sockstat(t, &mut p);
            let _ = parse::softnet(t, &mut p);
            let _ = parse::arp(t, &mut p);
            let _ = parse::conntrack_stat(t, &mut p);
            let _ = parse::udp_queues(t, &mut p);
        }
    }
    // Odd input that is not a prefix of anything real.
    for t in [
        "(",
        ")",
        ")(",
        "1 (a) ",
        "1 ((x)) R",
        "\\",
        "a\\04",
        "a\\0400",
        "x:\u{fffd}",
    ] {
        let mut p = Problems::default();
        let _ = parse::pid_stat(t);
        let _ = parse::mounts(&format!("{t} {t} {t} {t}"), &mut p);
        let _ = parse::meminfo(t, &mut p);
    }
}

#[test]
fn mount_escapes_and_pid_stat_comm_with_spaces() {
    let mut p = Problems::default();
    let m = parse::mounts(
        "/dev/sdb1 /srv/a\\040b\\134c ext4 ro,relatime 0 0\n",
        &mut p,
    );
    assert_eq!(m[0].mountpoint, "/srv/a b\\c");
    assert!(m[0].read_only());
    let st = parse::pid_stat(
        "12 (my (odd) proc) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22",
    )
    .expect("parses");
    assert_eq!(st.comm, "my (odd) proc");
    assert_eq!(st.state, 'R');
    assert_eq!(st.ppid, 1);
    assert_eq!(st.starttime, 19.0);
}

fn groups_config(yaml: &str) -> ProcessesConfig {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        processes: ProcessesConfig,
    }
    serde_saphyr::from_str::<File>(yaml)
        .expect("config parses")
        .processes
}

#[test]
fn process_groups_over_fixture_tree() {
    let cfg = groups_config(
        r#"
processes:
  process_names:
    - name: "runner-{{.Matches.queue}}-{{ .Username }}"
      exe: [/usr/bin/agent-runner]
      cmdline: ['--queue=(?P<queue>\S+)']
    - name: cron
      comm: [cron]
    - name: never
      comm: [no-such-process]
"#,
    );
    let mut c = HostCollector::new(opts("proc"), Some(&cfg)).expect("collector");
    let b = c.collect(1);
    let hz = sys::clock_ticks();
    let page = sys::page_size();
    let g = |n: &str| [("groupname", n.to_string())];
    let v = |name: &str, group: &str, extra: &[(&str, &str)]| {
        let gl = g(group);
        let mut l: Vec<(&str, &str)> = vec![(gl[0].0, gl[0].1.as_str())];
        l.extend_from_slice(extra);
        value(&b, name, &l)
    };
    // agent-runner (4242) and its child sh (4243) form one group.
    let r = "runner-gpu-agent";
    assert_eq!(v("namedprocess_namegroup_num_procs", r, &[]), Some(2.0));
    assert_eq!(
        v(
            "namedprocess_namegroup_cpu_seconds_total",
            r,
            &[("mode", "user")]
        ),
        Some(300.0 / hz)
    );
    assert_eq!(
        v(
            "namedprocess_namegroup_cpu_seconds_total",
            r,
            &[("mode", "system")]
        ),
        Some(150.0 / hz)
    );
    assert_eq!(
        v(
            "namedprocess_namegroup_memory_bytes",
            r,
            &[("memtype", "resident")]
        ),
        Some((2560.0 + 256.0) * page)
    );
    assert_eq!(
        v(
            "namedprocess_namegroup_memory_bytes",
            r,
            &[("memtype", "virtual")]
        ),
        Some(104857600.0 + 4096000.0)
    );
    assert_eq!(
        v(
            "namedprocess_namegroup_memory_bytes",
            r,
            &[("memtype", "swapped")]
        ),
        Some(128.0 * 1024.0)
    );
    assert_eq!(v("namedprocess_namegroup_open_filedesc", r, &[]), Some(4.0));
    assert_eq!(
        v("namedprocess_namegroup_worst_fd_ratio", r, &[]),
        Some(0.25)
    );
    assert_eq!(v("namedprocess_namegroup_num_threads", r, &[]), Some(5.0));
    assert_eq!(
        v("namedprocess_namegroup_oldest_start_time_seconds", r, &[]),
        Some((1795409777.0 + 1000.0 / hz).floor())
    );
    assert_eq!(
        v("namedprocess_namegroup_read_bytes_total", r, &[]),
        Some(8192.0)
    );
    assert_eq!(
        v("namedprocess_namegroup_write_bytes_total", r, &[]),
        Some(4096.0)
    );
    assert_eq!(
        v(
            "namedprocess_namegroup_context_switches_total",
            r,
            &[("ctxswitchtype", "voluntary")]
        ),
        Some(44.0)
    );
    assert_eq!(
        v("namedprocess_namegroup_states", r, &[("state", "Running")]),
        Some(1.0)
    );
    assert_eq!(
        v("namedprocess_namegroup_states", r, &[("state", "Sleeping")]),
        Some(1.0)
    );
    assert_eq!(v("sextant_process_group_up", r, &[]), Some(1.0));
    assert_eq!(
        v("namedprocess_namegroup_num_procs", "cron", &[]),
        Some(1.0)
    );
    // A fixed-name group with no process is reported down from the start.
    assert_eq!(v("sextant_process_group_up", "never", &[]), Some(0.0));
    assert_eq!(
        v("namedprocess_namegroup_num_procs", "never", &[]),
        Some(0.0)
    );
    assert_eq!(
        kind(&b, "namedprocess_namegroup_cpu_seconds_total"),
        Some(MetricType::Counter)
    );
    // Counters do not double on the next collection of unchanged processes.
    let b2 = c.collect(2);
    let user2 = value(
        &b2,
        "namedprocess_namegroup_cpu_seconds_total",
        &[("groupname", r), ("mode", "user")],
    );
    assert_eq!(user2, Some(300.0 / hz));
}

/// Writes a minimal /proc/<pid> for the restart test.
fn fake_proc(root: &Path, pid: u32, comm: &str, start: u64, utime: u64) {
    let d = root.join(pid.to_string());
    std::fs::create_dir_all(d.join("fd")).expect("mkdir");
    std::fs::write(
        d.join("stat"),
        format!("{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 {utime} 0 0 0 20 0 1 0 {start} 1000 10 0\n"),
    )
    .expect("write");
    std::fs::write(d.join("cmdline"), format!("{comm}\0")).expect("write");
}

#[test]
fn restarts_count_when_the_oldest_process_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let proc = dir.path().join("proc");
    std::fs::create_dir_all(&proc).expect("mkdir");
    std::fs::write(proc.join("stat"), "btime 1000\n").expect("write");
    fake_proc(&proc, 10, "worker", 100, 50);
    fake_proc(&proc, 11, "worker", 200, 50);
    let cfg = groups_config("processes:\n  process_names:\n    - name: w\n      comm: [worker]\n");
    let mut o = opts("proc");
    o.proc_path = proc.clone();
    let mut c = HostCollector::new(o, Some(&cfg)).expect("collector");
    let get = |b: &WriteBatch, n: &str| value(b, n, &[("groupname", "w")]);

    let b = c.collect(1);
    assert_eq!(get(&b, "namedprocess_namegroup_num_procs"), Some(2.0));
    assert_eq!(get(&b, "sextant_process_group_restarts_total"), Some(0.0));
    // A younger process goes away: not a restart.
    std::fs::remove_dir_all(proc.join("11")).expect("rm");
    let b = c.collect(2);
    assert_eq!(get(&b, "sextant_process_group_restarts_total"), Some(0.0));
    // The oldest goes away and a new one starts: a restart; the CPU counter keeps its total.
    std::fs::remove_dir_all(proc.join("10")).expect("rm");
    fake_proc(&proc, 12, "worker", 900, 7);
    let b = c.collect(3);
    assert_eq!(get(&b, "sextant_process_group_restarts_total"), Some(1.0));
    assert_eq!(get(&b, "sextant_process_group_up"), Some(1.0));
    let hz = sys::clock_ticks();
    assert_eq!(
        value(
            &b,
            "namedprocess_namegroup_cpu_seconds_total",
            &[("groupname", "w"), ("mode", "user")]
        ),
        Some(107.0 / hz)
    );
    // All gone: down, restarts kept; back again: another restart.
    std::fs::remove_dir_all(proc.join("12")).expect("rm");
    let b = c.collect(4);
    assert_eq!(get(&b, "sextant_process_group_up"), Some(0.0));
    assert_eq!(get(&b, "namedprocess_namegroup_num_procs"), Some(0.0));
    assert_eq!(get(&b, "sextant_process_group_restarts_total"), Some(1.0));
    fake_proc(&proc, 13, "worker", 1000, 1);
    let b = c.collect(5);
    assert_eq!(get(&b, "sextant_process_group_restarts_total"), Some(2.0));
}

#[test]
fn bad_process_configs_are_rejected_with_the_field_named() {
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        processes: ProcessesConfig,
    }
    let e = serde_saphyr::from_str::<File>(
        "processes:\n  process_names:\n    - name: x\n      comm: [a]\n      commm: [b]\n",
    )
    .expect_err("unknown field");
    assert!(e.to_string().contains("commm"), "{e}");
    let err = |y: &str| match ProcessGroups::new(&groups_config(y)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted {y}"),
    };
    let e = err("processes:\n  process_names:\n    - name: x\n");
    assert!(
        e.contains("process_names[0]") && e.contains("comm, exe or cmdline"),
        "{e}"
    );
    let e = err("processes:\n  process_names:\n    - name: x\n      comm: [a]\n    - name: y\n      cmdline: ['(']\n");
    assert!(
        e.contains("process_names[1].cmdline") && e.contains("invalid regex"),
        "{e}"
    );
    let e = err("processes:\n  process_names:\n    - name: '{{.Nope}}'\n      comm: [a]\n");
    assert!(
        e.contains("process_names[0].name") && e.contains(".Nope"),
        "{e}"
    );
    let e = err("processes:\n  process_names:\n    - name: '{{.Comm'\n      comm: [a]\n");
    assert!(e.contains("unclosed"), "{e}");
}

/// Prints what one collection of the live system costs. Run with
/// `cargo test -p sextant-ingest --release host::tests::live_collection_cost -- --ignored --nocapture`.
#[test]
#[ignore = "measurement on the live system, not a check"]
fn live_collection_cost() {
    let cfg = groups_config("processes:\n  process_names:\n    - name: '{{.Comm}}'\n      comm: [bash, sh, sleep, cargo]\n");
    for (label, groups) in [("host only", None), ("host + process groups", Some(&cfg))] {
        let mut c = HostCollector::new(HostOptions::default(), groups).expect("collector");
        let _ = c.collect(0); // warm-up: first process matching, file caches
        let n = 50;
        let (cpu0, t0) = (sys::thread_cpu_seconds(), Instant::now());
        let mut series = 0;
        for i in 0..n {
            series = c.collect(i).series.len();
        }
        let cpu = (sys::thread_cpu_seconds() - cpu0) / n as f64;
        let wall = t0.elapsed().as_secs_f64() / n as f64;
        println!(
            "{label}: {series} series, {:.2} ms CPU, {:.2} ms wall per collection",
            cpu * 1e3,
            wall * 1e3
        );
    }
}

#[test]
fn processes_whose_group_name_comes_out_empty_are_not_grouped() {
    let cfg = groups_config("processes:\n  process_names:\n    - name: '{{.Matches.x}}'\n      cmdline: ['(?P<x>zzz)?']\n");
    let mut c = HostCollector::new(opts("proc"), Some(&cfg)).expect("collector");
    let b = c.collect(1);
    assert_eq!(count(&b, "namedprocess_namegroup_num_procs"), 0);
    assert_eq!(
        value(&b, "namedprocess_scrape_procread_errors", &[]),
        Some(0.0)
    );
}

static HUNG_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// statfs that hangs for 1.5 s on the fixture's /missing mount, like a dead NFS server.
fn hanging_statfs(path: &str) -> std::io::Result<sys::FsStats> {
    if path.ends_with("missing") {
        HUNG_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1500));
        return Err(std::io::Error::other("gave up"));
    }
    sys::statfs(path)
}

#[test]
fn a_hung_mount_costs_a_timeout_not_the_collector() {
    use std::sync::atomic::Ordering::SeqCst;
    let mut c = HostCollector::new(opts("proc"), None).expect("collector");
    c.statfs.timeout = Duration::from_millis(200);
    c.statfs.call = hanging_statfs;
    let missing = [("mountpoint", "/missing")];
    let root = [("mountpoint", "/")];

    let b = c.collect(1);
    assert_eq!(
        value(&b, "node_filesystem_device_error", &missing),
        Some(1.0)
    );
    assert!(
        value(&b, "node_filesystem_size_bytes", &root).is_some(),
        "/ after the timeout"
    );
    assert_eq!(HUNG_CALLS.load(SeqCst), 1);
    // While the call hangs the mount is reported broken without a new call.
    let b = c.collect(2);
    assert_eq!(
        value(&b, "node_filesystem_device_error", &missing),
        Some(1.0)
    );
    assert_eq!(value(&b, "node_filesystem_device_error", &root), Some(0.0));
    assert_eq!(HUNG_CALLS.load(SeqCst), 1);
    // Once it returned, the mount is tried again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while c
        .statfs
        .pending
        .lock()
        .map(|p| !p.is_empty())
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "hung statfs never returned");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.collect(3);
    assert_eq!(HUNG_CALLS.load(SeqCst), 2);
}
