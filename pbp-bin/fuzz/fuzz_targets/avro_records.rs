//! Fuzz target: see `pbp_bin::fuzzing::avro_records`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pbp_bin::fuzzing::avro_records(data));
