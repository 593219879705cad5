//! Replays every fuzz target's corpus (`pbp-bin/fuzz/corpus/<target>/`) through the target's entry point in
//! `pbp_bin::fuzzing`, so that an input that once crashed a target stays fixed. This runs on stable with the
//! other tests; the fuzzers themselves need nightly (see docs/reliability.md, "Fuzzing").

use std::path::{Path, PathBuf};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus")
}

/// Runs every file of `target`'s corpus through its entry point; a missing or empty corpus fails.
fn replay(target: &str) {
    let entry = pbp_bin::fuzzing::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, entry)| *entry)
        .unwrap_or_else(|| panic!("no fuzz target {target} in pbp_bin::fuzzing::TARGETS"));
    let dir = corpus_root().join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus of {target} must be at {}: {e}", dir.display()))
        .map(|entry| entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus of {target} at {} is empty", dir.display());
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if std::panic::catch_unwind(|| entry(&data)).is_err() {
            panic!("{target} panicked on {}", file.display());
        }
    }
}

#[test]
fn espn_summary_corpus() {
    replay("espn_summary");
}

#[test]
fn espn_scoreboard_corpus() {
    replay("espn_scoreboard");
}

#[test]
fn espn_play_by_play_corpus() {
    replay("espn_play_by_play");
}

#[test]
fn avro_records_corpus() {
    replay("avro_records");
}

#[test]
fn rest_request_target_corpus() {
    replay("rest_request_target");
}

#[test]
fn ws_client_bytes_corpus() {
    replay("ws_client_bytes");
}

#[test]
fn every_target_has_a_corpus_a_fuzz_target_and_a_replay() {
    let replayed = [
        "espn_summary",
        "espn_scoreboard",
        "espn_play_by_play",
        "avro_records",
        "rest_request_target",
        "ws_client_bytes",
    ];
    let mut targets: Vec<&str> = pbp_bin::fuzzing::TARGETS.iter().map(|(name, _)| *name).collect();
    targets.sort_unstable();
    let mut expected = replayed.to_vec();
    expected.sort_unstable();
    assert_eq!(targets, expected, "each target is replayed by a test above");
    let mut corpora: Vec<String> = std::fs::read_dir(corpus_root())
        .unwrap_or_else(|e| panic!("{}: {e}", corpus_root().display()))
        .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    corpora.sort_unstable();
    assert_eq!(corpora, expected, "one corpus folder per target, and no other");
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap_or_default();
    for target in targets {
        assert!(fuzz.join("fuzz_targets").join(format!("{target}.rs")).is_file(), "no fuzz target file for {target}");
        assert!(manifest.contains(&format!("name = \"{target}\"")), "{target} is not a [[bin]] of the fuzz crate");
    }
}
