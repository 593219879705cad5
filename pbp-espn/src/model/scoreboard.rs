//! The site scoreboard (`/apis/site/v2/sports/basketball/{league}/scoreboard?dates=YYYYMMDD`).

use serde::Deserialize;

use super::de;
use super::game::{Competition, LeagueRef, Status};

/// A scoreboard: the games of one day.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Scoreboard {
    /// The league (one entry).
    #[serde(default)]
    pub leagues: Vec<LeagueRef>,
    /// The day shown, when ESPN sends it.
    #[serde(default)]
    pub day: Option<ScoreboardDay>,
    /// Games.
    #[serde(default)]
    pub events: Vec<ScoreboardEvent>,
}

/// `{"date":"2026-05-02"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ScoreboardDay {
    /// Local date, `YYYY-MM-DD`.
    #[serde(default)]
    pub date: Option<String>,
}

/// One game on a scoreboard.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreboardEvent {
    /// Event (game) id.
    #[serde(deserialize_with = "de::string_lenient")]
    pub id: String,
    /// Tip-off, UTC.
    #[serde(default)]
    pub date: Option<String>,
    /// E.g. `Philadelphia 76ers at Boston Celtics`.
    #[serde(default)]
    pub name: Option<String>,
    /// E.g. `PHI @ BOS`.
    #[serde(default)]
    pub short_name: Option<String>,
    /// The competition, with competitors and scores (strings).
    #[serde(default)]
    pub competitions: Vec<Competition>,
    /// Game status.
    #[serde(default)]
    pub status: Option<Status>,
    /// The season the game belongs to.
    #[serde(default)]
    pub season: Option<super::game::Season>,
}

impl ScoreboardEvent {
    /// The event status, or the competition's when the event has none.
    pub fn status(&self) -> Option<&Status> {
        self.status.as_ref().or_else(|| self.competitions.first().and_then(|c| c.status.as_ref()))
    }

    /// True while the game is in progress.
    pub fn is_live(&self) -> bool {
        self.status().is_some_and(Status::is_live)
    }

    /// True once the game is over.
    pub fn is_final(&self) -> bool {
        self.status().is_some_and(Status::is_final)
    }
}
