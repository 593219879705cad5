//! Fuzz target: see `pbp_bin::fuzzing::espn_play_by_play`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pbp_bin::fuzzing::espn_play_by_play(data));
