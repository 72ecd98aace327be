//! Sextant's own metrics: rendered on `/metrics` in the Prometheus text format, and ingested
//! into the local TSDB every 15 s (job="sextant") so Sextant monitors itself with no setup.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sextant_model::Labels;
use sextant_tsdb::db::REJECT_REASONS;

use crate::AppState;

const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct HandlerStats {
    codes: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Request counts and durations per route.
#[derive(Default)]
pub struct HttpMetrics {
    by_handler: Mutex<BTreeMap<String, HandlerStats>>,
}

impl HttpMetrics {
    pub fn observe(&self, handler: &str, code: u16, secs: f64) {
        let mut m = self.by_handler.lock().unwrap_or_else(|e| e.into_inner());
        let h = m.entry(handler.to_string()).or_default();
        *h.codes.entry(code).or_default() += 1;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn fmt_f(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Reads a number from `/proc/self/status` (kB) or `/proc/self/stat`.
fn proc_status_kb(key: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()
        .map(|kb| kb * 1024.0)
}

fn proc_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The soft limit of `name` ("Max open files", "Max address space") from /proc/self/limits;
/// "unlimited" is reported as client_golang does, as 2^64-1.
fn proc_limit(name: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = s.lines().find(|l| l.starts_with(name))?;
    match line[name.len()..].split_whitespace().next()? {
        "unlimited" => Some(u64::MAX as f64),
        v => v.parse().ok(),
    }
}

/// The standard `process_*` families every Prometheus client library exposes (names, types and
/// help texts of client_golang's process collector), so dashboards and alerts written for any
/// exporter's process metrics work for Sextant.
fn process_metrics(o: &mut String, start_unix: f64) {
    if let Some(cpu) = proc_cpu_seconds() {
        family(
            o,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        let _ = writeln!(o, "process_cpu_seconds_total {cpu}");
    }
    if let Some(max) = proc_limit("Max open files") {
        family(
            o,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
        );
        let _ = writeln!(o, "process_max_fds {}", fmt_f(max));
    }
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        family(
            o,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
        );
        let _ = writeln!(o, "process_open_fds {}", rd.count());
    }
    if let Some(rss) = proc_status_kb("VmRSS:") {
        family(
            o,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        let _ = writeln!(o, "process_resident_memory_bytes {rss}");
    }
    family(
        o,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    );
    let _ = writeln!(o, "process_start_time_seconds {start_unix}");
    if let Some(vsz) = proc_status_kb("VmSize:") {
        family(
            o,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
        );
        let _ = writeln!(o, "process_virtual_memory_bytes {vsz}");
    }
    if let Some(max) = proc_limit("Max address space") {
        family(
            o,
            "process_virtual_memory_max_bytes",
            "gauge",
            "Maximum amount of virtual memory available in bytes.",
        );
        let _ = writeln!(o, "process_virtual_memory_max_bytes {}", fmt_f(max));
    }
}

/// Renders every self-metric in the text exposition format.
pub fn render_metrics(st: &AppState) -> String {
    let mut o = String::with_capacity(8192);
    let db = &st.db;
    let m = db.metrics();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);

    family(
        &mut o,
        "sextant_build_info",
        "gauge",
        "Build information of this Sextant binary.",
    );
    let _ = writeln!(
        o,
        "sextant_build_info{{version=\"{}\",revision=\"{}\"}} 1",
        escape(&st.build.version),
        escape(&st.build.revision)
    );

    family(
        &mut o,
        "sextant_tsdb_head_samples_appended_total",
        "counter",
        "Samples appended to the head, by type.",
    );
    let _ = writeln!(
        o,
        "sextant_tsdb_head_samples_appended_total{{type=\"float\"}} {}",
        load(&m.samples_appended)
    );
    let _ = writeln!(
        o,
        "sextant_tsdb_head_samples_appended_total{{type=\"histogram\"}} {}",
        load(&m.histograms_appended)
    );
    family(
        &mut o,
        "sextant_tsdb_samples_rejected_total",
        "counter",
        "Samples the database refused, by reason.",
    );
    for (i, r) in REJECT_REASONS.iter().enumerate() {
        let _ = writeln!(
            o,
            "sextant_tsdb_samples_rejected_total{{reason=\"{r}\"}} {}",
            load(&m.rejected[i])
        );
    }
    family(
        &mut o,
        "sextant_tsdb_head_series",
        "gauge",
        "Active series in the head.",
    );
    let _ = writeln!(o, "sextant_tsdb_head_series {}", db.head().num_series());
    family(
        &mut o,
        "sextant_tsdb_head_series_created_total",
        "counter",
        "Series created in the head.",
    );
    let _ = writeln!(
        o,
        "sextant_tsdb_head_series_created_total {}",
        load(&m.series_created)
    );
    family(
        &mut o,
        "sextant_tsdb_head_series_removed_total",
        "counter",
        "Series removed from the head after their data moved to blocks.",
    );
    let _ = writeln!(
        o,
        "sextant_tsdb_head_series_removed_total {}",
        load(&m.series_removed)
    );
    let (hmin, hmax) = (db.head().min_time(), db.head().max_time());
    family(
        &mut o,
        "sextant_tsdb_head_min_time_seconds",
        "gauge",
        "Oldest sample time in the head.",
    );
    let _ = writeln!(
        o,
        "sextant_tsdb_head_min_time_seconds {}",
        if hmin == i64::MAX {
            0.0
        } else {
            hmin as f64 / 1000.0
        }
    );
    family(
        &mut o,
        "sextant_tsdb_head_max_time_seconds",
        "gauge",
        "Newest sample time in the head.",
    );
    let _ = writeln!(
        o,
        "sextant_tsdb_head_max_time_seconds {}",
        if hmax == i64::MIN {
            0.0
        } else {
            hmax as f64 / 1000.0
        }
    );
    family(
        &mut o,
        "sextant_tsdb_head_truncations_total",
        "counter",
        "Times the head was cut into a block and truncated.",
    );
    let _ = writeln!(
        o,
        "sextant_tsdb_head_truncations_total {}",
        load(&m.head_truncations)
    );
    family(
        &mut o,
        "sextant_tsdb_wal_size_bytes",
        "gauge",
        "Size of the write-ahead log (segments and checkpoint).",
    );
    let _ = writeln!(o, "sextant_tsdb_wal_size_bytes {}", db.wal_size());
    family(
        &mut o,
        "sextant_tsdb_wal_corruptions_total",
        "counter",
        "Corrupt or torn WAL tails repaired at start-up.",
    );
    let _ = writeln!(
        o,
        "sextant_tsdb_wal_corruptions_total {}",
        load(&m.wal_corruptions)
    );
    family(
        &mut o,
        "sextant_tsdb_wal_write_failures_total",
        "counter",
        "Commits refused because the WAL could not be written.",
    );
    let _ = writeln!(
        o,
        "sextant_tsdb_wal_write_failures_total {}",
        load(&m.wal_write_failures)
    );
    family(
        &mut o,
        "sextant_tsdb_wal_replay_duration_seconds",
        "gauge",
        "Time the last start-up spent loading blocks and replaying the WAL.",
    );
    let _ = writeln!(
        o,
        "sextant_tsdb_wal_replay_duration_seconds {}",
        load(&m.wal_replay_ms) as f64 / 1000.0
    );
    let blocks = db.blocks();
    family(
        &mut o,
        "sextant_tsdb_blocks_loaded",
        "gauge",
        "On-disk blocks currently loaded.",
    );
    let _ = writeln!(o, "sextant_tsdb_blocks_loaded {}", blocks.len());
    family(
        &mut o,
        "sextant_tsdb_storage_blocks_bytes",
        "gauge",
        "Bytes of all loaded blocks.",
    );
    let _ = writeln!(
        o,
        "sextant_tsdb_storage_blocks_bytes {}",
        blocks.iter().map(|b| b.size_bytes()).sum::<u64>()
    );
    family(
        &mut o,
        "sextant_tsdb_compactions_total",
        "counter",
        "Block compactions done.",
    );
    let _ = writeln!(o, "sextant_tsdb_compactions_total {}", load(&m.compactions));
    family(
        &mut o,
        "sextant_tsdb_compactions_failed_total",
        "counter",
        "Head cuts or compactions that failed.",
    );
    let _ = writeln!(
        o,
        "sextant_tsdb_compactions_failed_total {}",
        load(&m.compactions_failed)
    );
    family(
        &mut o,
        "sextant_tsdb_retention_blocks_deleted_total",
        "counter",
        "Blocks deleted by time or size retention.",
    );
    let _ = writeln!(
        o,
        "sextant_tsdb_retention_blocks_deleted_total {}",
        load(&m.blocks_deleted_by_retention)
    );
    family(
        &mut o,
        "sextant_tsdb_blocks_quarantined_total",
        "counter",
        "Blocks moved aside because they could not be read.",
    );
    let _ = writeln!(
        o,
        "sextant_tsdb_blocks_quarantined_total {}",
        load(&m.blocks_quarantined)
    );

    // Exemplar storage, named like Prometheus' prometheus_tsdb_exemplar_* family.
    let (ex_stored, ex_series, ex_max, ex_last) = db.exemplar_stats();
    let ex_metrics: [(&str, &str, &str, String); 6] = [
        (
            "sextant_tsdb_exemplar_exemplars_appended_total",
            "counter",
            "Total number of appended exemplars.",
            load(&m.exemplars_appended).to_string(),
        ),
        (
            "sextant_tsdb_exemplar_exemplars_in_storage",
            "gauge",
            "Number of exemplars currently in circular storage.",
            ex_stored.to_string(),
        ),
        (
            "sextant_tsdb_exemplar_series_with_exemplars_in_storage",
            "gauge",
            "Number of series with exemplars currently in circular storage.",
            ex_series.to_string(),
        ),
        (
            "sextant_tsdb_exemplar_max_exemplars",
            "gauge",
            "Total number of exemplars the exemplar storage can store, resizeable.",
            ex_max.to_string(),
        ),
        (
            "sextant_tsdb_exemplar_last_exemplars_timestamp_seconds",
            "gauge",
            "The timestamp of the newest exemplar stored in circular storage.",
            fmt_f(ex_last as f64 / 1000.0),
        ),
        (
            "sextant_tsdb_exemplar_out_of_order_exemplars_total",
            "counter",
            "Total number of out of order exemplar ingestion failed attempts.",
            load(&m.exemplars_out_of_order).to_string(),
        ),
    ];
    for (name, kind, help, v) in ex_metrics {
        family(&mut o, name, kind, help);
        let _ = writeln!(o, "{name} {v}");
    }

    let ing = &st.ingest;
    family(
        &mut o,
        "sextant_remote_write_requests_total",
        "counter",
        "Remote-write requests received, by protocol version.",
    );
    let _ = writeln!(
        o,
        "sextant_remote_write_requests_total{{version=\"1.0\"}} {}",
        load(&ing.requests_v1)
    );
    let _ = writeln!(
        o,
        "sextant_remote_write_requests_total{{version=\"2.0\"}} {}",
        load(&ing.requests_v2)
    );
    family(
        &mut o,
        "sextant_import_requests_total",
        "counter",
        "Text-format import requests received.",
    );
    let _ = writeln!(
        o,
        "sextant_import_requests_total {}",
        load(&ing.import_requests)
    );
    family(
        &mut o,
        "sextant_influx_write_requests_total",
        "counter",
        "InfluxDB line protocol write requests received.",
    );
    let _ = writeln!(
        o,
        "sextant_influx_write_requests_total {}",
        load(&ing.influx_requests)
    );
    family(
        &mut o,
        "sextant_ingest_rejected_series_total",
        "counter",
        "Series dropped at decode (invalid labels, limits).",
    );
    let _ = writeln!(
        o,
        "sextant_ingest_rejected_series_total {}",
        load(&ing.rejected_series)
    );
    family(
        &mut o,
        "sextant_ingest_rejected_requests_total",
        "counter",
        "Write requests refused whole (too large, undecodable, bad content type).",
    );
    let _ = writeln!(
        o,
        "sextant_ingest_rejected_requests_total {}",
        load(&ing.rejected_requests)
    );
    family(
        &mut o,
        "sextant_ingest_throttled_requests_total",
        "counter",
        "Write requests answered 429 because too many were in flight.",
    );
    let _ = writeln!(
        o,
        "sextant_ingest_throttled_requests_total {}",
        load(&ing.throttled_requests)
    );
    family(
        &mut o,
        "sextant_ingest_exemplars_received_total",
        "counter",
        "Exemplars received by remote write, import and OTLP (before storage checks).",
    );
    let _ = writeln!(
        o,
        "sextant_ingest_exemplars_received_total {}",
        load(&ing.exemplars_received)
    );
    crate::otlp::render(st, &mut o);

    {
        let hm = st.http.by_handler.lock().unwrap_or_else(|e| e.into_inner());
        family(
            &mut o,
            "sextant_http_requests_total",
            "counter",
            "HTTP requests, by route and status code.",
        );
        for (h, s) in hm.iter() {
            for (code, n) in &s.codes {
                let _ = writeln!(
                    o,
                    "sextant_http_requests_total{{handler=\"{}\",code=\"{code}\"}} {n}",
                    escape(h)
                );
            }
        }
        family(
            &mut o,
            "sextant_http_request_duration_seconds",
            "histogram",
            "HTTP request durations, by route.",
        );
        for (h, s) in hm.iter() {
            let h = escape(h);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "sextant_http_request_duration_seconds_bucket{{handler=\"{h}\",le=\"{}\"}} {}",
                    fmt_f(*b),
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                o,
                "sextant_http_request_duration_seconds_bucket{{handler=\"{h}\",le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                o,
                "sextant_http_request_duration_seconds_sum{{handler=\"{h}\"}} {}",
                s.sum
            );
            let _ = writeln!(
                o,
                "sextant_http_request_duration_seconds_count{{handler=\"{h}\"}} {}",
                s.count
            );
        }
    }

    family(
        &mut o,
        "sextant_push_groups",
        "gauge",
        "Pushgateway-compatible push groups currently held.",
    );
    let _ = writeln!(o, "sextant_push_groups {}", st.push.len());
    family(
        &mut o,
        "sextant_push_group_expired_total",
        "counter",
        "Push groups removed because their TTL passed without a new push, by job.",
    );
    for (job, n) in st.push.expired_totals() {
        let _ = writeln!(
            o,
            "sextant_push_group_expired_total{{job=\"{}\"}} {n}",
            escape(&job)
        );
    }

    family(
        &mut o,
        "sextant_agent_event_series",
        "gauge",
        "Series kept from agent events (docs/agent-events.md).",
    );
    let events = st.agent_events();
    let _ = writeln!(o, "sextant_agent_event_series {}", events.series_count());
    family(
        &mut o,
        "sextant_agent_events_received_total",
        "counter",
        "Agent events received, by result: accepted, duplicate (event id seen before) or rejected (an invalid request counts 1, a request over the series limit counts its events).",
    );
    let t = events.totals();
    for (result, n) in [
        ("accepted", t.accepted),
        ("duplicate", t.duplicates),
        ("rejected", t.rejected),
    ] {
        let _ = writeln!(
            o,
            "sextant_agent_events_received_total{{result=\"{result}\"}} {n}"
        );
    }

    process_metrics(&mut o, st.start_unix);
    st.limit_hits.render(&mut o);
    st.auth().render_failures(&mut o);
    render_rule_metrics(st, &mut o);
    if let Some(am) = st.alertmanager() {
        o.push_str(&am.metrics_text(sextant_model::time::now_ms()));
    }
    for src in st
        .metric_sources
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        src(&mut o);
    }
    o
}

/// Rule manager metrics, named like Prometheus' `prometheus_rule_*` with a `sextant_` prefix.
fn render_rule_metrics(st: &AppState, o: &mut String) {
    let Some(m) = st.rules() else { return };
    let groups: Vec<(String, f64, f64, f64, usize, u64, u64)> = m
        .groups()
        .iter()
        .map(|g| {
            let g = g.lock().unwrap_or_else(|e| e.into_inner());
            (
                escape(&format!("{};{}", g.file, g.name)),
                g.eval_seconds,
                g.last_eval as f64 / 1000.0,
                g.interval as f64 / 1000.0,
                g.rules.len(),
                g.evaluations,
                g.failures,
            )
        })
        .collect();
    let series: [(&str, &str, &str); 6] = [
        (
            "sextant_rule_group_last_duration_seconds",
            "gauge",
            "Duration of the last evaluation of the rule group.",
        ),
        (
            "sextant_rule_group_last_evaluation_timestamp_seconds",
            "gauge",
            "Time of the last evaluation of the rule group (0 = never).",
        ),
        (
            "sextant_rule_group_interval_seconds",
            "gauge",
            "Evaluation interval of the rule group.",
        ),
        (
            "sextant_rule_group_rules",
            "gauge",
            "Rules in the rule group.",
        ),
        (
            "sextant_rule_evaluations_total",
            "counter",
            "Rule evaluations.",
        ),
        (
            "sextant_rule_evaluation_failures_total",
            "counter",
            "Rule evaluations that failed.",
        ),
    ];
    for (i, (name, kind, help)) in series.iter().enumerate() {
        family(o, name, kind, help);
        for g in &groups {
            let v = match i {
                0 => g.1,
                1 => g.2,
                2 => g.3,
                3 => g.4 as f64,
                4 => g.5 as f64,
                _ => g.6 as f64,
            };
            let _ = writeln!(o, "{name}{{rule_group=\"{}\"}} {v}", g.0);
        }
    }
}

/// Ingests `/metrics` into the local TSDB every `every`, labelled job="sextant",
/// instance=`instance`, the way a Prometheus scrape of itself would.
pub fn start_self_monitoring(
    st: Arc<AppState>,
    instance: String,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let st = st.clone();
            let instance = instance.clone();
            let res = tokio::task::spawn_blocking(move || {
                let now = sextant_model::time::now_ms();
                let text = render_metrics(&st);
                let batch =
                    sextant_ingest::text::parse_text(&text, now).map_err(|e| e.to_string())?;
                let mut app = st.db.appender();
                for md in &batch.metadata {
                    app.set_metadata(md.clone());
                }
                for (labels, s) in &batch.samples {
                    let mut ls: Labels = labels.clone();
                    // Like a scrape without honor_labels: a metric's own `job` (e.g. the
                    // push expiry counter's) is kept as `exported_job`.
                    if let Some(job) = labels.get("job") {
                        ls.set("exported_job", job);
                    }
                    ls.set("job", "sextant");
                    ls.set("instance", &instance);
                    let _ = app.append(&ls, s.t, s.v);
                }
                app.commit().map(|_| ()).map_err(|e| e.to_string())
            })
            .await;
            if let Ok(Err(e)) = res {
                tracing::warn!(error = %e, "self-monitoring ingest failed");
            }
        }
    })
}
