//! Game-level objects shared by the summary header and the scoreboard: competitions, competitors, status, format.

use serde::Deserialize;

use super::de;

/// The summary's `header`: game id, league and the single competition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Header {
    /// ESPN event (game) id.
    #[serde(deserialize_with = "de::string_lenient")]
    pub id: String,
    /// League descriptor (`slug` is `nba`, `wnba`, …).
    #[serde(default)]
    pub league: Option<LeagueRef>,
    /// Competitions; ESPN basketball always has exactly one.
    #[serde(default)]
    pub competitions: Vec<Competition>,
    /// The season the game belongs to.
    #[serde(default)]
    pub season: Option<Season>,
}

/// A season reference: `{"year": 2025, "type": 2}` (type 1 preseason, 2 regular season, 3 postseason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Season {
    /// The season's year as ESPN names it (the year it ends in, for the NBA).
    #[serde(default, deserialize_with = "de::opt_u32_lenient")]
    pub year: Option<u32>,
    /// The season type.
    #[serde(default, rename = "type", deserialize_with = "de::opt_u32_lenient")]
    pub kind: Option<u32>,
}

impl Header {
    /// The first (only) competition.
    pub fn competition(&self) -> Option<&Competition> {
        self.competitions.first()
    }
}

/// A league descriptor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LeagueRef {
    /// League id.
    #[serde(default, deserialize_with = "de::opt_string_lenient")]
    pub id: Option<String>,
    /// URL slug, e.g. `mens-college-basketball`.
    #[serde(default)]
    pub slug: Option<String>,
    /// Abbreviation, e.g. `NBA`.
    #[serde(default)]
    pub abbreviation: Option<String>,
}

/// One competition (game) with its two competitors and status.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Competition {
    /// Competition id (equal to the event id for basketball).
    #[serde(default, deserialize_with = "de::opt_string_lenient")]
    pub id: Option<String>,
    /// Scheduled tip-off, UTC (`2024-03-17T22:00Z`).
    #[serde(default)]
    pub date: Option<String>,
    /// Home and away teams.
    #[serde(default)]
    pub competitors: Vec<Competitor>,
    /// Game status (absent in some summary headers).
    #[serde(default)]
    pub status: Option<Status>,
    /// Live scoreboards only: the current situation, with the last play.
    #[serde(default)]
    pub situation: Option<Situation>,
}

/// A live game's situation on the scoreboard.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Situation {
    /// The last play logged.
    #[serde(default)]
    pub last_play: Option<LastPlay>,
}

/// The scoreboard's short form of the last play.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastPlay {
    /// Play id.
    #[serde(default, deserialize_with = "de::opt_string_lenient")]
    pub id: Option<String>,
    /// Play type.
    #[serde(rename = "type", default)]
    pub play_type: Option<super::play::PlayType>,
    /// Human text.
    #[serde(default)]
    pub text: Option<String>,
    /// Points on the play.
    #[serde(default, deserialize_with = "de::opt_u32_lenient")]
    pub score_value: Option<u32>,
    /// Acting team.
    #[serde(default)]
    pub team: Option<super::play::TeamRef>,
}

impl Competition {
    /// The competitor whose `homeAway` is `side` (`"home"` or `"away"`).
    pub fn competitor(&self, side: &str) -> Option<&Competitor> {
        self.competitors.iter().find(|c| c.home_away.as_deref() == Some(side))
    }
}

/// A team in a competition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Competitor {
    /// Competitor id; equal to `team.id` in every observed file.
    #[serde(deserialize_with = "de::string_lenient")]
    pub id: String,
    /// `home` or `away`.
    #[serde(default)]
    pub home_away: Option<String>,
    /// The team.
    #[serde(default)]
    pub team: Option<Team>,
    /// Score: a string in scoreboards and headers (`"0"` before tip-off), absent before the game in summaries.
    #[serde(default, deserialize_with = "de::opt_u32_lenient")]
    pub score: Option<u32>,
    /// Present once the game is final.
    #[serde(default)]
    pub winner: Option<bool>,
    /// Points per period.
    #[serde(default)]
    pub linescores: Vec<LineScore>,
}

impl Competitor {
    /// The team id: `team.id`, or the competitor id.
    pub fn team_id(&self) -> &str {
        self.team.as_ref().map_or(self.id.as_str(), |team| team.id.as_str())
    }
}

/// A team as ESPN describes it (in competitors and in the teams list).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    /// Team id (`19` is Orlando in the NBA).
    #[serde(deserialize_with = "de::string_lenient")]
    pub id: String,
    /// Short code, e.g. `ORL`.
    #[serde(default)]
    pub abbreviation: Option<String>,
    /// Full name, e.g. `Orlando Magic`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Short name, e.g. `Magic`.
    #[serde(default)]
    pub short_display_name: Option<String>,
    /// City or school, e.g. `Orlando`.
    #[serde(default)]
    pub location: Option<String>,
    /// Nickname, e.g. `Magic`.
    #[serde(default)]
    pub name: Option<String>,
    /// Primary colour, hex without `#`.
    #[serde(default)]
    pub color: Option<String>,
    /// Secondary colour, hex without `#`.
    #[serde(default)]
    pub alternate_color: Option<String>,
}

/// Points in one period; ESPN sends `value` as a float and `displayValue` as a string.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineScore {
    /// Points, as a number.
    #[serde(default)]
    pub value: Option<f64>,
    /// Points, as text.
    #[serde(default)]
    pub display_value: Option<String>,
    /// Period number (scoreboards only).
    #[serde(default, deserialize_with = "de::opt_u32_lenient")]
    pub period: Option<u32>,
}

/// Game status. Summary headers of final or scheduled games carry only `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Seconds left in the period.
    #[serde(default)]
    pub clock: Option<f64>,
    /// Clock as displayed.
    #[serde(default)]
    pub display_clock: Option<String>,
    /// Current period; 0 before tip-off.
    #[serde(default, deserialize_with = "de::opt_u32_lenient")]
    pub period: Option<u32>,
    /// The status kind.
    #[serde(rename = "type", default)]
    pub kind: Option<StatusType>,
}

impl Status {
    /// `pre`, `in` or `post`, when known.
    pub fn state(&self) -> Option<&str> {
        self.kind.as_ref().and_then(|kind| kind.state.as_deref())
    }

    /// True while the game is being played (including breaks between periods).
    pub fn is_live(&self) -> bool {
        self.state() == Some("in")
    }

    /// True once the game is over (`completed`, or state `post`).
    pub fn is_final(&self) -> bool {
        self.kind.as_ref().is_some_and(|kind| kind.completed == Some(true) || kind.state.as_deref() == Some("post"))
    }
}

/// The status kind, e.g. `{"id":"2","name":"STATUS_IN_PROGRESS","state":"in","completed":false}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusType {
    /// Status id: `1` scheduled, `2` in progress, `3` final.
    #[serde(default, deserialize_with = "de::opt_string_lenient")]
    pub id: Option<String>,
    /// E.g. `STATUS_FINAL`.
    #[serde(default)]
    pub name: Option<String>,
    /// `pre`, `in` or `post`.
    #[serde(default)]
    pub state: Option<String>,
    /// True once final.
    #[serde(default)]
    pub completed: Option<bool>,
    /// E.g. `In Progress`.
    #[serde(default)]
    pub description: Option<String>,
    /// E.g. `8:41 - 4th Quarter`.
    #[serde(default)]
    pub detail: Option<String>,
    /// E.g. `8:41 - 4th`.
    #[serde(default)]
    pub short_detail: Option<String>,
}

/// The summary's `format` section: period count and lengths.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FormatSection {
    /// Regulation periods.
    #[serde(default)]
    pub regulation: Option<RegulationFormat>,
    /// Overtime periods.
    #[serde(default)]
    pub overtime: Option<OvertimeFormat>,
}

/// Regulation format: `{"periods":4,"clock":720.0}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RegulationFormat {
    /// Number of regulation periods.
    #[serde(default, deserialize_with = "de::opt_u32_lenient")]
    pub periods: Option<u32>,
    /// Period length in seconds (an integer or a float).
    #[serde(default)]
    pub clock: Option<f64>,
}

/// Overtime format: `{"clock":300.0}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OvertimeFormat {
    /// Overtime period length in seconds.
    #[serde(default)]
    pub clock: Option<f64>,
}
