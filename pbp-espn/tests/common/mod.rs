//! Helpers shared by the black-box tests: where the recorded ESPN files are.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// The folder of recorded ESPN files: `$PBP_ESPN_FIXTURES`, else `<repo>/../shared/espn`.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("PBP_ESPN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/espn")))
}

/// Every `.json` file in the fixtures folder, sorted by name.
pub fn fixture_files() -> Vec<PathBuf> {
    let dir = fixtures_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fixtures folder {} must exist: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .json files in {}", dir.display());
    files
}

/// A fixture file's name, for messages.
pub fn name(path: &std::path::Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
