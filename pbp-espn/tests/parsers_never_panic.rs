//! No input makes the parsers, the normalizer or the diff panic; derived fields keep their invariants.

mod common;

use pbp_espn::GameSnapshotState;
use pbp_espn::model::{self, PlayDocument};
use pbp_espn::normalize::{self, fallback};
use proptest::prelude::*;

fn parse_everything(bytes: &[u8]) {
    let _ = model::parse_summary(bytes);
    let _ = model::parse_scoreboard(bytes);
    let _ = model::parse_teams(bytes);
    let _ = model::parse_cdn_play_by_play(bytes);
    let _ = model::parse_core_plays_page(bytes);
    match model::parse_play_document(bytes) {
        Ok(PlayDocument::Summary(summary)) => {
            let (_, plays) = normalize::normalize_summary(&summary, None);
            GameSnapshotState::new().apply(plays);
        }
        Ok(PlayDocument::CorePlays(page)) => {
            let (_, plays) = normalize::normalize_core_page(&page, None);
            GameSnapshotState::new().apply(plays);
        }
        Err(error) => assert!(!error.path.is_empty()),
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = common::fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Any JSON scalar, as text; mostly small non-negative integers so that many generated plays parse and reach
/// the normalizer.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => (0u32..800).prop_map(|n| n.to_string()),
        2 => (0u32..800).prop_map(|n| format!("\"{n}\"")),
        2 => Just("-214748340".to_owned()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
        1 => ".{0,12}".prop_map(|s| serde_json::Value::from(s).to_string()),
        1 => Just("null".to_owned()),
        2 => any::<bool>().prop_map(|b| b.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse_everything(&bytes);
    }

    #[test]
    fn mutated_recorded_files(cut in 0.0f64..1.0, flip in 0.0f64..1.0, byte in any::<u8>(), which in 0usize..3) {
        let name = ["nba-core-plays-401584793-page1.json", "nba-scoreboard-20260502-live.json", "nba-teams.json"][which];
        let original = fixture(name);
        let cut_at = ((original.len() as f64) * cut) as usize;
        parse_everything(&original[..cut_at.min(original.len())]);
        let mut flipped = original.clone();
        let at = ((flipped.len() as f64) * flip) as usize;
        if let Some(slot) = flipped.get_mut(at) {
            *slot = byte;
        }
        parse_everything(&flipped);
    }

    #[test]
    fn generated_plays_normalize_with_invariants(
        clock in scalar(), display in ".{0,8}", type_id in scalar(), type_text in ".{0,24}",
        home in scalar(), away in scalar(), period in scalar(), value in scalar(),
        scoring in prop_oneof![4 => any::<bool>().prop_map(|b| b.to_string()), 1 => scalar()],
        attempted in scalar(), x in scalar(), y in scalar(), text in ".{0,40}",
    ) {
        let display = serde_json::Value::from(display).to_string();
        let type_text = serde_json::Value::from(type_text).to_string();
        let text = serde_json::Value::from(text).to_string();
        let play = format!(
            r#"{{"id":"1","sequenceNumber":{type_id},"type":{{"id":{type_id},"text":{type_text}}},"text":{text},
            "awayScore":{away},"homeScore":{home},"period":{{"number":{period}}},
            "clock":{{"displayValue":{display},"value":{clock}}},"scoringPlay":{scoring},"scoreValue":{value},
            "pointsAttempted":{attempted},"coordinate":{{"x":{x},"y":{y}}},"team":{{"id":{home}}}}}"#
        );
        let summary = format!(
            r#"{{"header":{{"id":"9","competitions":[{{"competitors":[{{"id":"1","homeAway":"home"}}]}}]}},"plays":[{play}]}}"#
        );
        if let Ok(summary) = model::parse_summary(summary.as_bytes()) {
            let (_, plays) = normalize::normalize_summary(&summary, None);
            for play in &plays {
                prop_assert!(play.scoring_play || play.score_value == 0);
                prop_assert!(play.shot_value.is_none_or(|v| (1..=3).contains(&v)));
                prop_assert!(play.clock_seconds.is_none_or(|c| c.is_finite() && c >= 0.0));
                prop_assert!(play.coordinate.is_none_or(|c| c.x > -1_000_000 && c.y > -1_000_000));
                prop_assert!(!play.espn_type_text.contains('\n'));
            }
            GameSnapshotState::new().apply(plays);
        }
    }

    #[test]
    fn text_helpers_take_any_string(text in "\\PC{0,40}") {
        let _ = fallback::classify(&text);
        let clock = normalize::parse_display_clock(&text);
        prop_assert!(clock.is_none_or(|c| c.is_finite() && c >= 0.0));
    }
}

#[test]
fn the_largest_summary_survives_every_truncation_point_class() {
    // A deterministic sweep over the big summary: cut inside strings, numbers, objects and arrays.
    let original = fixture("nba-summary-401810206.json");
    for step in 1..=64 {
        let cut = original.len() * step / 65;
        let truncated = &original[..cut];
        let error = model::parse_summary(truncated).err();
        assert!(error.is_some(), "a truncated summary cannot parse (cut at {cut})");
    }
}
