//! Live-mode corrections against the recorded files, without HTTP: the route is called directly.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde_json::Value;

use super::*;
use crate::normalize::normalize_summary;
use crate::{ChangeKind, GameSnapshotState, model};

/// `$PBP_ESPN_FIXTURES`, else the shared folder next to the repository (as the integration tests do).
fn fixture(name: &str) -> PathBuf {
    std::env::var_os("PBP_ESPN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/espn")))
        .join(name)
}

const SUMMARY: &str = "nba-summary-401810084.json";
const SUMMARY_GAME: &str = "401810084";
const CDN: &str = "nba-cdn-playbyplay-401859966.json";
const CDN_GAME: &str = "401859966";

fn live_fake(files: &[&str], corrections: bool) -> FakeEspn {
    let paths: Vec<PathBuf> = files.iter().map(|name| fixture(name)).collect();
    let options = FakeOptions { live: true, speed: 1.0, corrections, deletions: false };
    let fake = FakeEspn::from_files(&paths, options).unwrap_or_else(|e| panic!("fixtures must load: {e}"));
    fake.use_manual_clock();
    fake
}

/// Puts the manual replay clock at `at` (a few microseconds past it would be the same: times are whole seconds).
fn set_clock(fake: &FakeEspn, at: Duration) {
    *fake.state.clock.lock() = ReplayClock::Manual { elapsed: at.as_secs_f64() };
}

fn fetch(fake: &FakeEspn, game_id: &str) -> Body {
    let (path, query) = if game_id == CDN_GAME {
        ("/core/nba/playbyplay".to_owned(), format!("gameId={game_id}&xhr=1"))
    } else {
        ("/apis/site/v2/sports/basketball/nba/summary".to_owned(), format!("event={game_id}"))
    };
    route(&fake.state, &path, &query).unwrap_or_else(|(status, message)| panic!("{status}: {message}"))
}

fn plays_of(body: &Body) -> Vec<Value> {
    let root: Value = serde_json::from_slice(&body.bytes).unwrap_or_else(|e| panic!("served JSON: {e}"));
    let game = root.get("gamepackageJSON").unwrap_or(&root);
    game.get("plays").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn play<'a>(plays: &'a [Value], id: &str) -> Option<&'a Value> {
    plays.iter().find(|play| play.get("id").and_then(Value::as_str) == Some(id))
}

fn recorded_plays(name: &str) -> Vec<Value> {
    let bytes = std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    plays_of(&Body::new(Bytes::from(bytes)))
}

#[test]
fn every_game_gets_corrections_including_one_that_changes_a_counter() {
    let files = [
        SUMMARY,
        CDN,
        "nba-summary-401585607.json",
        "nba-summary-401810206.json",
        "mbb-summary-401828387.json",
        "wnba-summary-401736292.json",
    ];
    let fake = live_fake(&files, true);
    let corrections = fake.corrections();
    for (league, game_id) in fake.games_with_plays() {
        let of_game: Vec<&Correction> =
            corrections.iter().filter(|c| c.league == league && c.game_id == game_id).collect();
        let threes = of_game.iter().filter(|c| c.kind == CorrectionKind::ThreeLoggedAsTwo).count();
        assert_eq!(threes, 1, "{game_id}: one missed three first logged as a two");
        assert!(of_game.len() >= 5, "{game_id}: {} corrections", of_game.len());
        for correction in of_game {
            assert!(correction.shown_at < correction.corrected_at, "{correction:?}");
            assert!(correction.corrected_at - correction.shown_at <= CORRECTION_DELAY, "{correction:?}");
            assert!(correction.corrected_at <= fake.replay_duration(), "{correction:?}");
        }
    }
    assert!(live_fake(&files, false).corrections().is_empty(), "switched off");
    let recorded = FakeEspn::from_files(&[fixture(SUMMARY)], FakeOptions::default());
    assert!(recorded.is_ok_and(|fake| fake.corrections().is_empty()), "not live: recorded files only");
}

#[test]
fn a_corrected_play_is_served_preliminary_then_recorded() {
    for (file, game_id) in [(SUMMARY, SUMMARY_GAME), (CDN, CDN_GAME)] {
        let fake = live_fake(&[file], true);
        let recorded = recorded_plays(file);
        let corrections = fake.corrections();
        assert!(!corrections.is_empty());
        for correction in &corrections {
            let truth = play(&recorded, &correction.play_id).unwrap_or_else(|| panic!("{correction:?}"));
            set_clock(&fake, correction.shown_at);
            let served = plays_of(&fetch(&fake, game_id));
            let preliminary = play(&served, &correction.play_id).unwrap_or_else(|| panic!("shown: {correction:?}"));
            assert_ne!(preliminary, truth, "{correction:?}");
            assert_eq!(preliminary["id"], truth["id"], "same play id");
            assert_eq!(preliminary["homeScore"], truth["homeScore"], "scores are never corrected");
            assert_eq!(preliminary["awayScore"], truth["awayScore"]);
            if correction.kind == CorrectionKind::ThreeLoggedAsTwo {
                assert_eq!(preliminary["pointsAttempted"], 2, "{correction:?}");
                assert_eq!(truth["pointsAttempted"], 3, "{correction:?}");
            }
            set_clock(&fake, correction.corrected_at);
            let served = plays_of(&fetch(&fake, game_id));
            assert_eq!(play(&served, &correction.play_id), Some(truth), "corrected: {correction:?}");
        }
    }
}

#[test]
fn the_finished_replay_is_the_recorded_file() {
    for (file, game_id) in [(SUMMARY, SUMMARY_GAME), (CDN, CDN_GAME)] {
        let fake = live_fake(&[file], true);
        let recorded = std::fs::read(fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let last = fake.corrections().iter().map(|c| c.corrected_at).max().unwrap_or_default();
        set_clock(&fake, last.saturating_sub(Duration::from_secs(1)));
        assert_ne!(fetch(&fake, game_id).bytes, recorded, "{game_id}: a correction is still pending");
        set_clock(&fake, fake.replay_duration());
        assert_eq!(fetch(&fake, game_id).bytes, recorded, "{game_id}: byte for byte");
    }
}

/// Polls at every time a correction is shown or lands and at the end, diffing each snapshot as a collector does.
fn diff_replay(fake: &FakeEspn, game_id: &str) -> (HashMap<String, usize>, HashMap<String, usize>, GameSnapshotState) {
    let mut times: Vec<Duration> =
        fake.corrections().iter().flat_map(|c| [c.shown_at, c.corrected_at]).chain([fake.replay_duration()]).collect();
    times.sort();
    times.dedup();
    let mut state = GameSnapshotState::new();
    let (mut new, mut updated) = (HashMap::<String, usize>::new(), HashMap::<String, usize>::new());
    for at in times {
        set_clock(fake, at);
        let body = fetch(fake, game_id);
        let summary = if game_id == CDN_GAME {
            model::parse_cdn_play_by_play(&body.bytes).map(|page| page.game_package)
        } else {
            model::parse_summary(&body.bytes)
        }
        .unwrap_or_else(|e| panic!("{game_id} at {at:?}: {e}"));
        let (_, plays) = normalize_summary(&summary, Some(League::Nba));
        let diff = state.apply(plays);
        assert!(diff.vanished.is_empty() && diff.duplicates.is_empty(), "{diff:?}");
        for change in diff.changes {
            let counts = if change.kind == ChangeKind::New { &mut new } else { &mut updated };
            *counts.entry(change.play.play_id).or_default() += 1;
        }
    }
    (new, updated, state)
}

#[test]
fn the_snapshot_diff_updates_exactly_the_corrected_plays() {
    for (file, game_id) in [(SUMMARY, SUMMARY_GAME), (CDN, CDN_GAME)] {
        let fake = live_fake(&[file], true);
        let (new, updated, state) = diff_replay(&fake, game_id);
        let corrected: HashSet<String> = fake.corrections().into_iter().map(|c| c.play_id).collect();
        let recorded = recorded_plays(file);
        assert_eq!(new.len(), recorded.len(), "{game_id}: every play new once");
        assert!(new.values().all(|count| *count == 1));
        assert_eq!(updated.keys().cloned().collect::<HashSet<_>>(), corrected, "{game_id}: updates = corrections");
        assert!(updated.values().all(|count| *count == 1), "{game_id}: each corrected once");
        // The final state is the recorded file's: the recorded plays diff to nothing against it.
        let bytes = std::fs::read(fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let summary = model::parse_play_document(&bytes).ok().and_then(|doc| match doc {
            model::PlayDocument::Summary(summary) => Some(summary),
            model::PlayDocument::CorePlays(_) => None,
        });
        let (_, truth) = normalize_summary(&summary.unwrap_or_else(|| panic!("{file}")), Some(League::Nba));
        let mut state = state;
        assert!(state.apply(truth).is_empty(), "{game_id}: the last version of every play is the recorded one");
    }
}

#[test]
fn without_corrections_the_replay_never_updates() {
    let fake = live_fake(&[SUMMARY], false);
    assert!(fake.corrections().is_empty());
    // Poll where the corrections would have been.
    let with = live_fake(&[SUMMARY], true);
    let mut state = GameSnapshotState::new();
    let mut times: Vec<Duration> = with.corrections().iter().map(|c| c.shown_at).collect();
    times.push(fake.replay_duration());
    for at in times {
        set_clock(&fake, at);
        let summary = model::parse_summary(&fetch(&fake, SUMMARY_GAME).bytes).unwrap_or_else(|e| panic!("{e}"));
        let (_, plays) = normalize_summary(&summary, Some(League::Nba));
        assert!(state.apply(plays).changes.iter().all(|change| change.kind == ChangeKind::New));
    }
}

#[test]
fn deletions_take_plays_out_of_the_feed_and_the_end_is_still_the_recorded_file() {
    for (file, game_id) in [(SUMMARY, SUMMARY_GAME), (CDN, CDN_GAME)] {
        let paths = [fixture(file)];
        let fake =
            FakeEspn::from_files(&paths, FakeOptions { live: true, speed: 1.0, corrections: true, deletions: true })
                .unwrap_or_else(|e| panic!("{e}"));
        fake.use_manual_clock();
        let deletions = fake.deletions();
        let phantom = deletions.iter().find(|d| d.kind == DeletionKind::Phantom).unwrap_or_else(|| panic!("{game_id}"));
        let withdrawn =
            deletions.iter().find(|d| d.kind == DeletionKind::Withdrawn).unwrap_or_else(|| panic!("{game_id}"));
        let recorded = recorded_plays(file);
        assert!(play(&recorded, &phantom.play_id).is_none(), "a phantom is in no recorded file");
        assert!(play(&recorded, &withdrawn.play_id).is_some(), "a withdrawn play is a recorded one");
        assert_eq!(phantom.removed_at - phantom.shown_at, PHANTOM_SHOWN_FOR);
        assert_eq!(withdrawn.restored_at, Some(withdrawn.removed_at + WITHDRAWN_FOR));
        // While shown, the phantom sits right after its original, with its clock and running score.
        set_clock(&fake, phantom.shown_at);
        let plays = plays_of(&fetch(&fake, game_id));
        let at =
            plays.iter().position(|p| p["id"].as_str() == Some(&phantom.play_id)).unwrap_or_else(|| panic!("shown"));
        let (original, copy) = (&plays[at - 1], &plays[at]);
        for key in ["clock", "period", "homeScore", "awayScore", "text", "scoreValue"] {
            assert_eq!(original[key], copy[key], "{game_id}: {key}");
        }
        let sequence = |p: &Value| p["sequenceNumber"].as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or_default();
        assert!(recorded.iter().all(|p| sequence(p) < sequence(copy)), "a sequence no recorded play has");
        set_clock(&fake, phantom.removed_at);
        assert!(play(&plays_of(&fetch(&fake, game_id)), &phantom.play_id).is_none(), "{game_id}: removed");
        // The withdrawn play: there, gone, back.
        for (at, there) in [
            (withdrawn.removed_at - Duration::from_secs(1), true),
            (withdrawn.removed_at, false),
            (withdrawn.restored_at.unwrap_or_default() - Duration::from_secs(1), false),
            (withdrawn.restored_at.unwrap_or_default(), true),
        ] {
            set_clock(&fake, at);
            assert_eq!(
                play(&plays_of(&fetch(&fake, game_id)), &withdrawn.play_id).is_some(),
                there,
                "{game_id} {at:?}"
            );
        }
        set_clock(&fake, fake.replay_duration());
        let bytes = std::fs::read(fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(fetch(&fake, game_id).bytes, bytes, "{game_id}: byte for byte at the end");
    }
    // Off: nothing deleted.
    let off = live_fake(&[SUMMARY], true);
    assert!(off.deletions().is_empty());
}
