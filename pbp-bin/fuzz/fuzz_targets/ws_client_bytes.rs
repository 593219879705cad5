//! Fuzz target: see `pbp_bin::fuzzing::ws_client_bytes`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pbp_bin::fuzzing::ws_client_bytes(data));
