//! `ScoreboardEvent`: one game on a scoreboard.

use serde::{Deserialize, Serialize};

/// Where a game stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameStatus {
    /// `pre`, `in` or `post`.
    pub state: String,
    /// The feed's status text, e.g. `Final`.
    pub detail: String,
    /// Current period; 0 before tip-off.
    pub period: i32,
    /// Game clock as displayed.
    pub clock_display: String,
    /// Seconds left in the period.
    pub clock_seconds: f64,
    /// True once the game is final.
    pub completed: bool,
}

/// One game as it appears on a scoreboard (schema `com.playbyplay.ScoreboardEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreboardEvent {
    /// The feed's event id of the game.
    pub game_id: String,
    /// League slug.
    pub league: String,
    /// Season year (the year the season ends).
    pub season: i32,
    /// 1 preseason, 2 regular season, 3 postseason, 5 play-in.
    pub season_type: i32,
    /// Scoreboard date, `YYYY-MM-DD`.
    pub date: String,
    /// Scheduled tip-off, ms since the epoch.
    pub start_time: i64,
    /// State, period and clock.
    pub status: GameStatus,
    /// Home team id.
    pub home_team_id: String,
    /// Away team id.
    pub away_team_id: String,
    /// Home team abbreviation.
    pub home_abbreviation: String,
    /// Away team abbreviation.
    pub away_abbreviation: String,
    /// Home score.
    pub home_score: i32,
    /// Away score.
    pub away_score: i32,
    /// When the scoreboard was fetched, ms since the epoch.
    pub fetched_at: i64,
}

impl ScoreboardEvent {
    /// A realistic final game, for examples and tests.
    pub fn example() -> Self {
        Self {
            game_id: "401585607".to_owned(),
            league: "nba".to_owned(),
            season: 2024,
            season_type: 2,
            date: "2024-03-17".to_owned(),
            start_time: 1_710_712_800_000,
            status: GameStatus {
                state: "post".to_owned(),
                detail: "Final".to_owned(),
                period: 4,
                clock_display: "0.0".to_owned(),
                clock_seconds: 0.0,
                completed: true,
            },
            home_team_id: "19".to_owned(),
            away_team_id: "2".to_owned(),
            home_abbreviation: "ORL".to_owned(),
            away_abbreviation: "BOS".to_owned(),
            home_score: 113,
            away_score: 96,
            fetched_at: 1_710_721_000_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoreboard_event_matches_its_schema() {
        let pre = ScoreboardEvent {
            status: GameStatus {
                state: "pre".to_owned(),
                detail: "7:00 PM ET".to_owned(),
                period: 0,
                clock_display: "0:00".to_owned(),
                clock_seconds: 0.0,
                completed: false,
            },
            home_score: 0,
            away_score: 0,
            ..ScoreboardEvent::example()
        };
        crate::model::schema_check::check(&ScoreboardEvent::example(), &pre);
    }
}
