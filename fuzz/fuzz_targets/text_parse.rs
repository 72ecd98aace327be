//! Feeds arbitrary bytes to the Prometheus text format 0.0.4 parser, both through
//! `parse_exposition` (UTF-8 check, Content-Type dispatch) and directly on lossy UTF-8. Any
//! panic is a bug: scraped and imported bodies come from the network.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_ingest::text::{parse_exposition, parse_text};

fuzz_target!(|data: &[u8]| {
    let _ = parse_exposition(data, Some("text/plain; version=0.0.4"), 0);
    let s = String::from_utf8_lossy(data);
    if let Ok(b) = parse_text(&s, 1) {
        let _ = b.into_write_batch();
    }
});
