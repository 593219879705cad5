//! Every recorded ESPN file parses, and every game's plays are complete and consistent with its header.

mod common;

use std::collections::{HashMap, HashSet};

use pbp_espn::model::{self, PlayDocument};
use pbp_espn::normalize::{self, EventType, Side, table};
use pbp_espn::{GameContext, League, NormalizedPlay};
use serde_json::Value;

/// What a recorded file is, decided from the raw JSON (independently of the crate's own detection).
enum Kind {
    Summary,
    Cdn,
    CorePlays,
    Scoreboard,
    Teams,
}

fn kind_of(raw: &Value) -> Option<Kind> {
    if raw.get("gamepackageJSON").is_some() {
        Some(Kind::Cdn)
    } else if raw.get("header").is_some() {
        Some(Kind::Summary)
    } else if raw.get("items").is_some() {
        Some(Kind::CorePlays)
    } else if raw.get("events").is_some() {
        Some(Kind::Scoreboard)
    } else if raw.get("sports").is_some() {
        Some(Kind::Teams)
    } else {
        None
    }
}

fn load(path: &std::path::Path) -> (Vec<u8>, Value) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let raw: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (bytes, raw)
}

/// The raw game object (summary root, or the cdn `gamepackageJSON`).
fn raw_game(raw: &Value) -> &Value {
    raw.get("gamepackageJSON").unwrap_or(raw)
}

#[test]
fn every_file_is_recognised_and_parses() {
    let mut kinds = HashMap::new();
    for path in common::fixture_files() {
        let (bytes, raw) = load(&path);
        let name = common::name(&path);
        let kind = kind_of(&raw).unwrap_or_else(|| panic!("{name}: unrecognised ESPN document"));
        let label = match kind {
            Kind::Summary | Kind::Cdn | Kind::CorePlays => {
                model::parse_play_document(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
                "plays"
            }
            Kind::Scoreboard => {
                let board = model::parse_scoreboard(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
                let raw_events = raw["events"].as_array().map_or(0, Vec::len);
                assert_eq!(board.events.len(), raw_events, "{name}");
                "scoreboard"
            }
            Kind::Teams => {
                let teams = model::parse_teams(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(teams.teams().count(), 30, "{name}: the NBA has 30 teams");
                "teams"
            }
        };
        *kinds.entry(label).or_insert(0) += 1;
    }
    assert!(kinds.get("plays").copied().unwrap_or(0) >= 7, "{kinds:?}");
    assert!(kinds.get("scoreboard").copied().unwrap_or(0) >= 3, "{kinds:?}");
}

/// Summary and cdn games with plays: complete, unique, and adding up to the final score.
#[test]
fn every_game_is_complete_and_adds_up() {
    let mut games = 0;
    for path in common::fixture_files() {
        let (bytes, raw) = load(&path);
        let name = common::name(&path);
        if !matches!(kind_of(&raw), Some(Kind::Summary | Kind::Cdn)) {
            continue;
        }
        let Ok(PlayDocument::Summary(summary)) = model::parse_play_document(&bytes) else {
            panic!("{name}: must parse as a summary");
        };
        let raw_game = raw_game(&raw);
        let raw_plays = raw_game.get("plays").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        assert_eq!(summary.plays.len(), raw_plays.len(), "{name}: play count");
        if raw_plays.is_empty() {
            // The pre-game summary: no plays, not started.
            let status = summary.header.competition().and_then(|c| c.status.as_ref());
            assert_eq!(status.and_then(|s| s.state()), Some("pre"), "{name}");
            continue;
        }
        games += 1;
        let (context, plays) = normalize::normalize_summary(&summary, None);
        check_game(&name, raw_game, raw_plays, &context, &plays);
    }
    assert!(games >= 6, "expected the 6 recorded games with plays, found {games}");
}

fn check_game(name: &str, raw_game: &Value, raw_plays: &[Value], context: &GameContext, plays: &[NormalizedPlay]) {
    // Ids unique, every play carries the game id.
    let ids: HashSet<&str> = plays.iter().map(|p| p.play_id.as_str()).collect();
    assert_eq!(ids.len(), plays.len(), "{name}: play ids must be unique");
    assert!(plays.iter().all(|p| p.game_id == context.game_id), "{name}");

    // Field by field against the raw JSON.
    for (play, raw) in plays.iter().zip(raw_plays) {
        assert_eq!(Some(play.play_id.as_str()), raw["id"].as_str(), "{name}");
        assert_eq!(play.espn_type_id, raw["type"]["id"].as_str().unwrap_or_default(), "{name}");
        let raw_participants = raw.get("participants").and_then(Value::as_array).map_or(0, Vec::len);
        assert_eq!(play.participants.len(), raw_participants, "{name}: participants of {}", play.play_id);
        assert!(play.clock_seconds.is_some(), "{name}: clock of {} must parse", play.play_id);
        assert_ne!(play.event_type, EventType::Other, "{name}: {} is a basketball action", play.espn_type_text);
        assert!(
            table::lookup(&play.espn_type_id).is_some(),
            "{name}: type {} `{}` must be in the table",
            play.espn_type_id,
            play.espn_type_text
        );
        if play.shooting_play {
            let value = play.shot_value.unwrap_or_else(|| panic!("{name}: shot value of {}", play.play_id));
            assert!((1..=3).contains(&value), "{name}");
            if let Some(attempted) = raw.get("pointsAttempted").and_then(Value::as_u64).filter(|p| *p > 0) {
                assert_eq!(u64::from(value), attempted, "{name}: {}", play.play_id);
            }
        }
        if play.scoring_play {
            assert_eq!(Some(play.score_value), play.shot_value, "{name}: points of {}", play.play_id);
        }
        if play.team_id.is_some() {
            assert!(play.side.is_some(), "{name}: team {:?} must be one of the two competitors", play.team_id);
        }
    }

    // Game order: periods ascending and seconds left non-increasing in feed order.
    for pair in plays.windows(2) {
        assert!(pair[0].period <= pair[1].period, "{name}: period order at {}", pair[1].play_id);
        if pair[0].period == pair[1].period {
            assert!(
                pair[0].game_seconds_left >= pair[1].game_seconds_left,
                "{name}: clock order at {}",
                pair[1].play_id
            );
        }
    }

    // Final score: the header's, the last play's running score, and the sum of points per side.
    let competitors = raw_game["header"]["competitions"][0]["competitors"].as_array().cloned().unwrap_or_default();
    let final_of = |side: &str| -> u32 {
        let competitor = competitors.iter().find(|c| c["homeAway"] == side).unwrap_or_else(|| panic!("{name}: {side}"));
        competitor["score"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{name}: {side} score"))
    };
    let (home_final, away_final) = (final_of("home"), final_of("away"));
    let last = plays.last().unwrap_or_else(|| panic!("{name}: no plays"));
    assert_eq!((last.home_score, last.away_score), (home_final, away_final), "{name}: last running score");
    let mut points: HashMap<(Side, u32), u32> = HashMap::new();
    for play in plays.iter().filter(|p| p.scoring_play) {
        let side = play.side.unwrap_or_else(|| panic!("{name}: scoring play {} without a side", play.play_id));
        *points.entry((side, play.period)).or_default() += play.score_value;
    }
    let total = |side: Side| points.iter().filter(|((s, _), _)| *s == side).map(|(_, p)| p).sum::<u32>();
    assert_eq!(total(Side::Home), home_final, "{name}: home points from plays");
    assert_eq!(total(Side::Away), away_final, "{name}: away points from plays");

    // Per period against the linescores: this is what catches ESPN's running-score glitch (FIELDS.md §5), where
    // a late-inserted basket is missing from the next plays' running score but not from the linescore.
    for competitor in &competitors {
        let side = if competitor["homeAway"] == "home" { Side::Home } else { Side::Away };
        let linescores = competitor["linescores"].as_array().cloned().unwrap_or_default();
        for (index, line) in linescores.iter().enumerate() {
            let expected: u32 = line["displayValue"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
            let period = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let got = points.get(&(side, period)).copied().unwrap_or(0);
            assert_eq!(got, expected, "{name}: {side:?} points in period {period}");
        }
    }

    // The format: the first play is at or before the full game length, the last at 0.
    let full_game = f64::from(context.format.regulation_periods) * context.format.period_seconds;
    let first = plays[0].game_seconds_left.unwrap_or(-1.0);
    assert!(first <= full_game && first > full_game - 60.0, "{name}: first play at {first} of {full_game}");
    assert_eq!(last.game_seconds_left, Some(0.0), "{name}: the game ends at 0");
}

#[test]
fn leagues_and_formats_come_from_the_files() {
    let expectations = [("mbb-summary-", League::MensCollege, 2, 1200.0), ("wnba-summary-", League::Wnba, 4, 600.0)];
    for path in common::fixture_files() {
        let name = common::name(&path);
        let Some((_, league, periods, seconds)) = expectations.iter().find(|(prefix, ..)| name.starts_with(prefix))
        else {
            continue;
        };
        let (bytes, _) = load(&path);
        let summary = model::parse_summary(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let context = GameContext::from_summary(&summary, None);
        assert_eq!(context.league, Some(*league), "{name}");
        assert_eq!(context.format.regulation_periods, *periods, "{name}");
        assert_eq!(context.format.period_seconds, *seconds, "{name}");
    }
}

#[test]
fn core_plays_pages_resolve_refs() {
    for path in common::fixture_files() {
        let (bytes, raw) = load(&path);
        let name = common::name(&path);
        if !matches!(kind_of(&raw), Some(Kind::CorePlays)) {
            continue;
        }
        let page = model::parse_core_plays_page(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let raw_items = raw["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(page.items.len(), raw_items.len(), "{name}");
        let (context, plays) = normalize::normalize_core_page(&page, None);
        assert!(!context.game_id.is_empty(), "{name}: game id from the page URL");
        assert_eq!(context.league, Some(League::Nba), "{name}");
        for (play, raw) in plays.iter().zip(&raw_items) {
            assert_eq!(play.clock_seconds, raw["clock"]["value"].as_f64(), "{name}: clock.value is used");
            let team_ref = raw["team"]["$ref"].as_str().unwrap_or_default();
            if let Some(team) = &play.team_id {
                assert!(team_ref.contains(&format!("/teams/{team}")), "{name}: {team} from {team_ref}");
            }
            let raw_participants = raw.get("participants").and_then(Value::as_array).map_or(0, Vec::len);
            assert_eq!(play.participants.len(), raw_participants, "{name}");
            assert!(table::lookup(&play.espn_type_id).is_some(), "{name}: type {} in the table", play.espn_type_id);
        }
    }
}

#[test]
fn scoreboards_know_live_and_final_games() {
    for path in common::fixture_files() {
        let (bytes, raw) = load(&path);
        let name = common::name(&path);
        if !matches!(kind_of(&raw), Some(Kind::Scoreboard)) {
            continue;
        }
        let board = model::parse_scoreboard(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (event, raw_event) in board.events.iter().zip(raw["events"].as_array().into_iter().flatten()) {
            if let Some(last_play) =
                event.competitions.first().and_then(|c| c.situation.as_ref()).and_then(|s| s.last_play.as_ref())
            {
                let play_type = last_play.play_type.as_ref().unwrap_or_else(|| panic!("{name}: lastPlay type"));
                assert!(
                    table::lookup(&play_type.id).is_some(),
                    "{name}: type {} `{}` in the table",
                    play_type.id,
                    play_type.text
                );
            }
            let state = raw_event["status"]["type"]["state"].as_str().unwrap_or_default();
            assert_eq!(event.is_live(), state == "in", "{name}: {}", event.id);
            assert_eq!(event.is_final(), state == "post", "{name}: {}", event.id);
            let competition = event.competitions.first().unwrap_or_else(|| panic!("{name}: competition"));
            for (competitor, raw_competitor) in competition
                .competitors
                .iter()
                .zip(raw_event["competitions"][0]["competitors"].as_array().into_iter().flatten())
            {
                let raw_score = raw_competitor["score"].as_str().and_then(|s| s.parse::<u32>().ok());
                assert_eq!(competitor.score, raw_score, "{name}: scores are strings in scoreboards");
            }
        }
    }
}
