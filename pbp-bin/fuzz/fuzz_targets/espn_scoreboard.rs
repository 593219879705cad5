//! Fuzz target: see `pbp_bin::fuzzing::espn_scoreboard`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pbp_bin::fuzzing::espn_scoreboard(data));
