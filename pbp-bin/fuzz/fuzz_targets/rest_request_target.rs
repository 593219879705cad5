//! Fuzz target: see `pbp_bin::fuzzing::rest_request_target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pbp_bin::fuzzing::rest_request_target(data));
