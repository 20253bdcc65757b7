//! `bandpass::fuzzing::writer_schema`: see host/src/fuzzing.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bandpass::fuzzing::writer_schema(data));
