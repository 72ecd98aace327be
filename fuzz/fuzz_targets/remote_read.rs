//! libFuzzer entry for `remote_read`; the body and what it covers are in `src/targets.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sextant_fuzz::targets::remote_read(data));
