//! Fuzz target: see `pbp_bin::fuzzing::espn_summary`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pbp_bin::fuzzing::espn_summary(data));
