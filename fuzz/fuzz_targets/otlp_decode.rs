//! Feeds arbitrary bytes to the OTLP/HTTP receiving path: gzip inflation (with a limit, as the
//! server applies one), the protobuf and JSON decoders, and translation of whatever decodes
//! (including delta state carried across inputs). Any panic is a bug: input reaching these
//! functions comes from the network.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sextant_ingest::otlp::{decode_body, Encoding, Translator};
use sextant_ingest::remote_write::DecodeLimits;

fuzz_target!(|data: &[u8]| {
    static TRANSLATOR: OnceLock<Translator> = OnceLock::new();
    let tr = TRANSLATOR.get_or_init(Translator::default);
    let limits = DecodeLimits {
        max_labels_per_series: 30,
        max_label_name_len: 64,
        max_label_value_len: 256,
    };
    for enc in [Encoding::Protobuf, Encoding::Json] {
        for ce in [None, Some("gzip")] {
            if let Ok(req) = decode_body(data, enc, ce, 1 << 20) {
                let _ = tr.translate(req, &limits, 0, None);
            }
        }
    }
});
