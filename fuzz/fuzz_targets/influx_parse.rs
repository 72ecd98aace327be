//! Feeds arbitrary bytes to the InfluxDB line protocol parser with each precision and with
//! limits on and off. Any panic is a bug: write bodies come from the network.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_ingest::influx::{parse_influx, InfluxOptions, Precision};
use sextant_ingest::remote_write::DecodeLimits;

fuzz_target!(|data: &[u8]| {
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
});
