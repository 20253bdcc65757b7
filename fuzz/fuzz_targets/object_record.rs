//! `bandpass::fuzzing::object_record`: see host/src/fuzzing.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bandpass::fuzzing::object_record(data));
