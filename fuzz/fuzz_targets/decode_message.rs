//! `bandpass::fuzzing::decode_message`: see host/src/fuzzing.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bandpass::fuzzing::decode_message(data));
