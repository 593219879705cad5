//! `GameState`: the per-game state kept by the enrich stage.

use serde::{Deserialize, Serialize};

/// Running counters of one team in one game.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamCounters {
    /// The team's id once a play names it.
    pub team_id: Option<String>,
    /// Points scored.
    pub points: i32,
    /// Field goals made.
    pub field_goals_made: i32,
    /// Field goals attempted.
    pub field_goals_attempted: i32,
    /// 3-point field goals made.
    pub three_pointers_made: i32,
    /// 3-point field goals attempted.
    pub three_pointers_attempted: i32,
    /// Free throws made.
    pub free_throws_made: i32,
    /// Free throws attempted.
    pub free_throws_attempted: i32,
    /// Offensive rebounds.
    pub offensive_rebounds: i32,
    /// Defensive rebounds.
    pub defensive_rebounds: i32,
    /// Turnovers.
    pub turnovers: i32,
    /// Fouls in the game.
    pub fouls: i32,
    /// Fouls in the current period.
    pub period_fouls: i32,
    /// Timeouts called.
    pub timeouts: i32,
}

/// Per-game state (schema `com.playbyplay.GameState`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameState {
    /// The feed's event id of the game.
    pub game_id: String,
    /// League slug.
    pub league: String,
    /// `pre`, `in` or `post`.
    pub status: String,
    /// Period of the last applied play.
    pub period: i32,
    /// Clock of the last applied play.
    pub clock_display: String,
    /// Seconds left in the period at the last applied play.
    pub clock_seconds: f64,
    /// Home score.
    pub home_score: i32,
    /// Away score.
    pub away_score: i32,
    /// Home team counters.
    pub home: TeamCounters,
    /// Away team counters.
    pub away: TeamCounters,
    /// Highest play sequence applied.
    pub last_sequence: i64,
    /// `play_id` of the last applied play.
    pub last_play_id: Option<String>,
    /// `text` of the last applied play.
    pub last_play_text: Option<String>,
    /// Number of plays folded in.
    pub plays_applied: i64,
    /// When the state last changed, ms since the epoch.
    pub updated_at: i64,
}

impl GameState {
    /// The state of a game before its first play.
    pub fn new(game_id: impl Into<String>, league: impl Into<String>, updated_at: i64) -> Self {
        Self {
            game_id: game_id.into(),
            league: league.into(),
            status: "pre".to_owned(),
            period: 0,
            clock_display: String::new(),
            clock_seconds: 0.0,
            home_score: 0,
            away_score: 0,
            home: TeamCounters::default(),
            away: TeamCounters::default(),
            last_sequence: 0,
            last_play_id: None,
            last_play_text: None,
            plays_applied: 0,
            updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn game_state_matches_its_schema() {
        let mut live = GameState::new("401585607", "nba", 1_710_713_446_123);
        live.status = "in".to_owned();
        live.period = 2;
        live.clock_display = "4:12".to_owned();
        live.clock_seconds = 252.0;
        live.home_score = 51;
        live.away_score = 47;
        live.home = TeamCounters {
            team_id: Some("19".to_owned()),
            points: 51,
            field_goals_made: 19,
            field_goals_attempted: 40,
            three_pointers_made: 6,
            three_pointers_attempted: 15,
            free_throws_made: 7,
            free_throws_attempted: 9,
            offensive_rebounds: 4,
            defensive_rebounds: 15,
            turnovers: 6,
            fouls: 9,
            period_fouls: 3,
            timeouts: 2,
        };
        live.away = TeamCounters { team_id: Some("2".to_owned()), points: 47, ..TeamCounters::default() };
        live.last_sequence = 220;
        live.last_play_id = Some("401585607220".to_owned());
        live.last_play_text = Some("Jayson Tatum makes driving layup".to_owned());
        live.plays_applied = 210;
        crate::model::schema_check::check(&live, &GameState::new("401585607", "nba", 0));
    }
}
