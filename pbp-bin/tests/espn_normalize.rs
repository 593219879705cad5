//! `pbp espn normalize` end to end: NDJSON on stdout for good files, a named file and JSON path for bad ones.

use std::path::PathBuf;
use std::process::Command;

fn fixtures_dir() -> PathBuf {
    std::env::var_os("PBP_ESPN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/espn")))
}

fn pbp() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pbp"));
    command.env("RUST_BACKTRACE", "0").env("PBP_LOG", "warn");
    command
}

#[test]
fn prints_one_object_per_play_in_game_order() -> anyhow::Result<()> {
    let output = pbp().args(["espn", "normalize"]).arg(fixtures_dir().join("wnba-summary-401736292.json")).output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(output.stdout)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 408);
    let fields = [
        "game_id",
        "play_id",
        "sequence",
        "period",
        "clock_seconds",
        "game_seconds_left",
        "event_type",
        "espn_type_id",
        "espn_type_text",
        "team_id",
        "side",
        "home_score",
        "away_score",
        "score_value",
        "scoring_play",
        "shooting_play",
        "shot_value",
        "coordinate",
        "wallclock",
        "participants",
        "text",
    ];
    for line in &lines {
        for field in fields {
            assert!(line.get(field).is_some(), "missing {field} in {line}");
        }
    }
    // WNBA quarters are 10 minutes: the first play, at 9:45 of Q1, has 39:45 left in the game.
    assert_eq!(lines[0]["game_seconds_left"], 2385.0);
    let last = &lines[lines.len() - 1];
    assert_eq!((last["home_score"].as_u64(), last["away_score"].as_u64()), (Some(78), Some(87)));
    assert_eq!(last["event_type"], "end_game");
    Ok(())
}

#[test]
fn a_malformed_file_fails_naming_the_file_and_the_json_path() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("pbp-normalize-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let bad = dir.join("bad-summary.json");
    std::fs::write(
        &bad,
        r#"{"header":{"id":"1","competitions":[]},"plays":[{"id":"1","sequenceNumber":"4","type":{"id":"92"},
        "period":{"number":"first"},"clock":{"displayValue":"1:00"},"awayScore":0,"homeScore":0}]}"#,
    )?;
    let output = pbp().args(["espn", "normalize"]).arg(&bad).output()?;
    std::fs::remove_dir_all(&dir)?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad-summary.json"), "{stderr}");
    assert!(stderr.contains("plays[0].period.number"), "{stderr}");
    Ok(())
}
