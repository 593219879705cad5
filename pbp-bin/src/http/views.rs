//! The JSON views of stored rows that the REST API and the WebSocket frames share.

use pbp_store::{Coordinate, GameStateRow, GameStatus, PlayRow, Side, TeamCounters};
use serde::Serialize;

/// A game's live state, folded from its plays.
#[derive(Debug, Serialize)]
pub(crate) struct StateView {
    status: GameStatus,
    period: i32,
    clock: String,
    clock_seconds: f64,
    home_score: i32,
    away_score: i32,
    home: TeamCounters,
    away: TeamCounters,
    last_sequence: i64,
    last_play: Option<LastPlayView>,
    plays_applied: i64,
    /// RFC 3339.
    updated_at: String,
}

#[derive(Debug, Serialize)]
struct LastPlayView {
    id: String,
    text: String,
}

impl From<GameStateRow> for StateView {
    fn from(s: GameStateRow) -> Self {
        let last_play = match (s.last_play_id, s.last_play_text) {
            (Some(id), Some(text)) => Some(LastPlayView { id, text }),
            _ => None,
        };
        Self {
            status: s.status,
            period: s.period,
            clock: s.clock_display,
            clock_seconds: s.clock_seconds,
            home_score: s.home_score,
            away_score: s.away_score,
            home: s.home,
            away: s.away,
            last_sequence: s.last_sequence,
            last_play,
            plays_applied: s.plays_applied,
            updated_at: rfc3339(s.updated_at),
        }
    }
}

/// One play in game order.
#[derive(Debug, Serialize)]
pub(crate) struct PlayView {
    id: String,
    sequence: i64,
    period: i32,
    clock: String,
    clock_seconds: f64,
    period_elapsed_seconds: f64,
    game_elapsed_seconds: f64,
    overtime: bool,
    event_type: String,
    espn_type_id: String,
    espn_type_text: String,
    text: String,
    team_id: Option<String>,
    side: Option<Side>,
    home_score: i32,
    away_score: i32,
    score_differential: i32,
    score_value: i32,
    scoring_play: bool,
    shooting_play: bool,
    shot_value: Option<i32>,
    coordinate: Option<Coordinate>,
    /// RFC 3339, when the feed gives it.
    wallclock: Option<String>,
    participants: Vec<String>,
    /// 1, plus one per correction (or deletion and restore).
    pub(crate) revision: i64,
    /// The game's change number of the play's last change: a client holds the game up to the highest one it
    /// has received.
    pub(crate) change_number: i64,
}

/// A play the feed deleted: its id, sequence and the change number of its deletion.
#[derive(Debug, Serialize)]
pub(crate) struct DeletedView {
    pub(crate) id: String,
    pub(crate) sequence: i64,
    pub(crate) change_number: i64,
}

impl From<&PlayRow> for DeletedView {
    fn from(p: &PlayRow) -> Self {
        Self { id: p.play_id.clone(), sequence: p.sequence, change_number: p.change_number }
    }
}

impl From<PlayRow> for PlayView {
    fn from(p: PlayRow) -> Self {
        Self {
            id: p.play_id,
            sequence: p.sequence,
            period: p.period,
            clock: p.clock_display,
            clock_seconds: p.clock_seconds,
            period_elapsed_seconds: p.period_elapsed_seconds,
            game_elapsed_seconds: p.game_elapsed_seconds,
            overtime: p.overtime,
            event_type: p.event_type,
            espn_type_id: p.espn_type_id,
            espn_type_text: p.espn_type_text,
            text: p.text,
            team_id: p.team_id,
            side: p.side,
            home_score: p.home_score,
            away_score: p.away_score,
            score_differential: p.score_differential,
            score_value: p.score_value,
            scoring_play: p.scoring_play,
            shooting_play: p.shooting_play,
            shot_value: p.shot_value,
            coordinate: p.coordinate,
            wallclock: p.wallclock.map(rfc3339),
            participants: p.participants,
            revision: p.revision,
            change_number: p.change_number,
        }
    }
}

/// Milliseconds since the epoch as RFC 3339 (the epoch itself for an out-of-range value).
pub(crate) fn rfc3339(millis: i64) -> String {
    jiff::Timestamp::from_millisecond(millis).unwrap_or(jiff::Timestamp::UNIX_EPOCH).to_string()
}
