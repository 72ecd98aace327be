//! Feeds arbitrary bytes to the OpenMetrics 1.0 parser, through `parse_exposition` and
//! directly on lossy UTF-8 (with `# EOF` appended, so inputs reach past the end-of-input
//! check). Any panic is a bug: scraped bodies come from the network.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_ingest::text::openmetrics::parse_openmetrics;
use sextant_ingest::text::parse_exposition;

fuzz_target!(|data: &[u8]| {
    let _ = parse_exposition(data, Some("application/openmetrics-text; version=1.0.0"), 0);
    let mut s = String::from_utf8_lossy(data).into_owned();
    s.push_str("\n# EOF\n");
    if let Ok(b) = parse_openmetrics(&s, 1) {
        let _ = b.into_write_batch();
    }
});
