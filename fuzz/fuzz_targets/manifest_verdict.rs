//! `bandpass::fuzzing::manifest_verdict`: see host/src/fuzzing.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bandpass::fuzzing::manifest_verdict(data));
