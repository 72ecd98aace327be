//! The body of every fuzz target, one function per target, shared by the libFuzzer binaries in
//! `fuzz/fuzz_targets/` and by the stable corpus regression test
//! (`crates/sextant/tests/fuzz_corpus.rs`), which runs every committed seed in `fuzz/seeds/`
//! through the same function. Each function takes arbitrary bytes and must never panic: the
//! input reaches these decoders from the network, from files an operator edits, or from disk.
//!
//! A file that includes this one must also bring `sextant_config` (`sextant::config`, the
//! sextant.yml parser) into scope at its crate root.

use std::path::PathBuf;
use std::sync::OnceLock;

use sextant_ingest::remote_write::DecodeLimits;

fn limits() -> DecodeLimits {
    DecodeLimits {
        max_labels_per_series: 30,
        max_label_name_len: 64,
        max_label_value_len: 256,
    }
}

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus runner.
pub const TARGETS: &[(&str, Target)] = &[
    ("remote_write_decode", remote_write_decode),
    ("text_parse", text_parse),
    ("openmetrics_parse", openmetrics_parse),
    ("influx_parse", influx_parse),
    ("otlp_decode", otlp_decode),
    ("promql_parse", promql_parse),
    ("rule_file", rule_file),
    ("sextant_config", sextant_config),
    ("alertmanager_config", alertmanager_config),
    ("junit_parse", junit_parse),
    ("agent_events", agent_events),
    ("wal_replay", wal_replay),
    ("block_open", block_open),
    ("dashboard_import", dashboard_import),
    ("remote_read", remote_read),
];

/// Snappy decompression (with a limit, as the server applies one) and both remote-write
/// protobuf decoders, on the raw bytes and on the decompressed ones.
pub fn remote_write_decode(data: &[u8]) {
    use sextant_ingest::remote_write::{decode_v1, decode_v2, decompress_snappy};
    let limits = limits();
    let _ = decode_v1(data, &limits);
    let _ = decode_v2(data, &DecodeLimits::default());
    if let Ok(raw) = decompress_snappy(data, 1 << 20) {
        let _ = decode_v1(&raw, &DecodeLimits::default());
        let _ = decode_v2(&raw, &limits);
    }
}

/// The Prometheus text format, through content negotiation and directly.
pub fn text_parse(data: &[u8]) {
    use sextant_ingest::text::{parse_exposition, parse_text};
    let _ = parse_exposition(data, Some("text/plain; version=0.0.4"), 0);
    let s = String::from_utf8_lossy(data);
    if let Ok(b) = parse_text(&s, 1) {
        let _ = b.into_write_batch();
    }
}

/// OpenMetrics text, through content negotiation and directly (with a `# EOF` appended so the
/// parser gets past the terminator check).
pub fn openmetrics_parse(data: &[u8]) {
    use sextant_ingest::text::openmetrics::parse_openmetrics;
    use sextant_ingest::text::parse_exposition;
    let _ = parse_exposition(data, Some("application/openmetrics-text; version=1.0.0"), 0);
    let mut s = String::from_utf8_lossy(data).into_owned();
    s.push_str("\n# EOF\n");
    if let Ok(b) = parse_openmetrics(&s, 1) {
        let _ = b.into_write_batch();
    }
}

/// InfluxDB line protocol with the precision chosen by the first byte, limits on and off.
pub fn influx_parse(data: &[u8]) {
    use sextant_ingest::influx::{parse_influx, InfluxOptions, Precision};
    let precision = match data.first().map(|b| b % 6) {
        Some(0) => Precision::Seconds,
        Some(1) => Precision::Hours,
        Some(2) => Precision::Minutes,
        Some(3) => Precision::Milliseconds,
        Some(4) => Precision::Microseconds,
        _ => Precision::Nanoseconds,
    };
    let opts = InfluxOptions {
        precision,
        db: Some("fuzz".to_string()),
        now_ms: 0,
        limits: DecodeLimits {
            max_labels_per_series: 8,
            max_label_name_len: 16,
            max_label_value_len: 32,
        },
    };
    let b = parse_influx(data, &opts);
    let _ = b.batch.into_write_batch();
    let _ = parse_influx(data, &InfluxOptions::default());
}

/// OTLP/HTTP: gzip inflation with a limit, the protobuf and JSON decoders, and translation of
/// whatever decodes (delta state is carried across inputs).
pub fn otlp_decode(data: &[u8]) {
    use sextant_ingest::otlp::{decode_body, Encoding, Translator};
    static TRANSLATOR: OnceLock<Translator> = OnceLock::new();
    let tr = TRANSLATOR.get_or_init(Translator::default);
    let limits = limits();
    for enc in [Encoding::Protobuf, Encoding::Json] {
        for ce in [None, Some("gzip")] {
            if let Ok(req) = decode_body(data, enc, ce, 1 << 20) {
                let _ = tr.translate(req, &limits, 0, None);
            }
        }
    }
}

/// The PromQL parser (what `/api/v1/query` and rule files hand it) and the selector parser
/// (`match[]` parameters).
pub fn promql_parse(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    if let Ok(e) = sextant_promql::parse(&s) {
        // Printing the tree back must not panic either (rules and the API echo expressions).
        let _ = format!("{e}");
    }
    let _ = sextant_promql::parse_selector(&s);
}

/// A Prometheus rule file (YAML), including the PromQL and templates inside it.
pub fn rule_file(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let _ = sextant_rules::parse_rules("fuzz.yml", &s);
}

/// The sextant.yml configuration file (Prometheus-style sections plus an embedded
/// `alertmanager:` section).
pub fn sextant_config(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let _ = crate::sextant_config::parse(&s, "sextant.yml");
}

/// An Alertmanager configuration file.
pub fn alertmanager_config(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let _ = sextant_alert::parse_config(&s, "alertmanager.yml");
}

/// A JUnit XML report, with the default limits and with tight ones.
pub fn junit_parse(data: &[u8]) {
    use sextant_ingest::junit::{parse, parse_with, Limits};
    let _ = parse(data);
    let tight = Limits {
        max_cases: 4,
        max_name_len: 16,
        max_attr_len: 32,
        max_depth: 4,
        max_properties: 2,
        max_message_len: 8,
    };
    let _ = parse_with(data, &tight);
}

/// Agent events (`/api/v1/agent/events`): one JSON body and JSON Lines.
pub fn agent_events(data: &[u8]) {
    use sextant_ingest::events::parse_events;
    let now = 1_700_000_000_000;
    let _ = parse_events(data, false, now);
    let _ = parse_events(data, true, now);
}

/// A directory private to this process (and thread) for the file-based targets.
fn scratch(name: &str) -> PathBuf {
    let tid = format!("{:?}", std::thread::current().id());
    let tid: String = tid.chars().filter(char::is_ascii_digit).collect();
    // Memory-backed where there is one: WAL and block opening fsync, which on a disk limits the
    // fuzzer to a few dozen inputs a second.
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("sextant-fuzz-{}-{tid}-{name}", std::process::id()))
}

/// WAL replay of a segment holding the input: record decoding on the raw bytes, then
/// [`sextant_tsdb::wal::Wal::open`] on a WAL directory whose only segment is the input (torn
/// tails, bad CRCs, garbage payloads must all be recovered from, never panic).
pub fn wal_replay(data: &[u8]) {
    use sextant_tsdb::wal::{decode, Wal, WalOptions};
    let _ = decode(data);
    let dir = scratch("wal");
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::create_dir_all(&dir).is_err() || std::fs::write(dir.join("00000000"), data).is_err()
    {
        return;
    }
    let mut n = 0u64;
    let _ = Wal::open(&dir, WalOptions::default(), |_rec| n += 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A block directory whose `index` and chunk segment come from the input: the first 4 bytes
/// (little endian) give the index length, the index follows, the chunk segment is the rest. The
/// block is opened and every series read, as a query and compaction would.
pub fn block_open(data: &[u8]) {
    use sextant_tsdb::block::Block;
    let dir = scratch("block");
    if write_block_dir(data, &dir) {
        if let Ok(b) = Block::open(&dir) {
            let _ = b.label_names(&[]);
            let _ = b.series(&[]);
            let _ = b.select(&[], i64::MIN, i64::MAX);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Lays out the block directory [`block_open`] opens: a fixed valid `meta.json`, the `index` and
/// the chunk segment `chunks/000001` split from `data`. False on an I/O error.
pub fn write_block_dir(data: &[u8], dir: &std::path::Path) -> bool {
    let (index, chunks) = match data.get(..4) {
        Some(h) => {
            let n = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let rest = &data[4..];
            rest.split_at(n.min(rest.len()))
        }
        None => (data, &[][..]),
    };
    let _ = std::fs::remove_dir_all(dir);
    if std::fs::create_dir_all(dir.join("chunks")).is_err() {
        return false;
    }
    let meta = r#"{"ulid":"01HZZZZZZZZZZZZZZZZZZZZZZZ","minTime":0,"maxTime":10000000,"stats":{"numSamples":1,"numSeries":1,"numChunks":1},"compaction":{"level":1,"sources":["01HZZZZZZZZZZZZZZZZZZZZZZZ"]},"version":1}"#;
    std::fs::write(dir.join("meta.json"), meta).is_ok()
        && std::fs::write(dir.join("index"), index).is_ok()
        && std::fs::write(dir.join("chunks").join("000001"), chunks).is_ok()
}

/// Dashboard import: Grafana JSON (`sextant dashboards import`, the UI's import) and Sextant's
/// own dashboard files in YAML and JSON.
pub fn dashboard_import(data: &[u8]) {
    use sextant_dashboards::{grafana, parse, Format};
    let s = String::from_utf8_lossy(data);
    let _ = grafana::import_str(&s);
    let _ = parse(&s, "fuzz.json", Format::Json);
    let _ = parse(&s, "fuzz.yml", Format::Yaml);
}

/// Remote read both ways: the server's request decoding (snappy with a limit, `ReadRequest`,
/// label matchers) and the client's response decoding (`ReadResponse` samples, and the
/// length-delimited, CRC-checked frames of streamed XOR chunks into series).
pub fn remote_read(data: &[u8]) {
    use prost::Message;
    use sextant_ingest::remote_write::{decompress_snappy, proto::v1};
    use sextant_remote::wire;
    let raw = decompress_snappy(data, 1 << 20).ok();
    for body in [Some(data), raw.as_deref()].into_iter().flatten() {
        if let Ok(req) = v1::ReadRequest::decode(body) {
            for q in &req.queries {
                let _ = wire::matchers_from_proto(&q.matchers);
            }
        }
        if let Ok(resp) = v1::ReadResponse::decode(body) {
            for ts in resp.results.into_iter().flat_map(|r| r.timeseries) {
                let _ = wire::series_from_proto(ts);
            }
        }
    }
    if let Ok(frames) = wire::read_frames(data) {
        for cs in frames.into_iter().flat_map(|f| f.chunked_series) {
            let _ = wire::series_from_chunks(cs, i64::MIN, i64::MAX);
        }
    }
}
