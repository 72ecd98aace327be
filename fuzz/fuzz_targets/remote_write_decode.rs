//! Feeds arbitrary bytes to the remote-write receiving path: snappy decompression (with a
//! limit, as the server applies one) and both protobuf decoders, on the raw bytes and on the
//! decompressed ones. Any panic is a bug: input reaching these functions comes from the network.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_ingest::remote_write::{decode_v1, decode_v2, decompress_snappy, DecodeLimits};

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits {
        max_labels_per_series: 30,
        max_label_name_len: 64,
        max_label_value_len: 256,
    };
    let _ = decode_v1(data, &limits);
    let _ = decode_v2(data, &DecodeLimits::default());
    if let Ok(raw) = decompress_snappy(data, 1 << 20) {
        let _ = decode_v1(&raw, &DecodeLimits::default());
        let _ = decode_v2(&raw, &limits);
    }
});
