//! `bandpass::fuzzing::upload_request`: see host/src/fuzzing.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bandpass::fuzzing::upload_request(data));
