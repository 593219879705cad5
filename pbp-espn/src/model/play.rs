//! The play object shared by the site summary, the cdn play-by-play and the core-API plays pages.

use serde::Deserialize;

use super::de;

/// One play as ESPN publishes it. Only the keys FIELDS.md found on every play are required.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Play {
    /// Play id, unique per game (`eventId` + `sequenceNumber` in practice; never parsed apart).
    #[serde(deserialize_with = "de::string_lenient")]
    pub id: String,
    /// ESPN's sequence number: a numeric string, *not* in play order (late-logged plays get higher numbers).
    #[serde(deserialize_with = "de::string_lenient")]
    pub sequence_number: String,
    /// ESPN's play type.
    #[serde(rename = "type")]
    pub play_type: PlayType,
    /// Human text (assists, steals and blocks are only named here and in `participants` for NBA data).
    #[serde(default)]
    pub text: Option<String>,
    /// Away team's running score after the play.
    #[serde(deserialize_with = "de::u32_lenient")]
    pub away_score: u32,
    /// Home team's running score after the play.
    #[serde(deserialize_with = "de::u32_lenient")]
    pub home_score: u32,
    /// Period (quarter, half or overtime).
    pub period: Period,
    /// Game clock: time left in the period.
    pub clock: Clock,
    /// True iff points were scored on this play.
    #[serde(default)]
    pub scoring_play: Option<bool>,
    /// Points scored when `scoringPlay`; college data also puts the attempted value on misses.
    #[serde(default, deserialize_with = "de::opt_u32_lenient")]
    pub score_value: Option<u32>,
    /// The acting team (absent on period ends, game end and referee reviews).
    #[serde(default)]
    pub team: Option<TeamRef>,
    /// Players involved, in a type-dependent positional order (shooter then assister, …).
    #[serde(default)]
    pub participants: Option<Vec<Participant>>,
    /// When the play was logged, UTC ISO-8601 (not monotonic in array order).
    #[serde(default)]
    pub wallclock: Option<String>,
    /// True for field-goal attempts and free throws.
    #[serde(default)]
    pub shooting_play: Option<bool>,
    /// Shot location; `(-214748340, -214748365)` is ESPN's "no location".
    #[serde(default)]
    pub coordinate: Option<Coordinate>,
    /// 0 for non-shots, 1 for free throws, 2 or 3 for field goals (absent in WNBA data).
    #[serde(default, deserialize_with = "de::opt_u32_lenient")]
    pub points_attempted: Option<u32>,
    /// ESPN's short label (`+2 Points`, `Missed 3PT`, …); optional.
    #[serde(default)]
    pub short_description: Option<String>,
}

/// ESPN's play type: a numeric id and a display text (which can contain newlines).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PlayType {
    /// Type id, a string of digits.
    #[serde(deserialize_with = "de::string_lenient")]
    pub id: String,
    /// Display text, e.g. `Bad Pass\nTurnover`.
    #[serde(default)]
    pub text: String,
}

/// A period number with its display text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    /// 1-based period number; overtime continues after the regulation periods.
    #[serde(deserialize_with = "de::u32_lenient")]
    pub number: u32,
    /// `1st Quarter`, `2nd Half`, …
    #[serde(default)]
    pub display_value: Option<String>,
}

/// The game clock.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Clock {
    /// `M:SS`/`MM:SS` from one minute up, `S.s` below (`0:00` in college data).
    #[serde(default)]
    pub display_value: Option<String>,
    /// Seconds left in the period; only the core API sends it.
    #[serde(default)]
    pub value: Option<f64>,
}

/// A team reference: `{"id"}` in the summary and cdn, `{"$ref"}` (URL ending in the id) in the core API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TeamRef {
    /// Team id.
    #[serde(default, deserialize_with = "de::opt_string_lenient")]
    pub id: Option<String>,
    /// Core-API URL of the team.
    #[serde(rename = "$ref", default)]
    pub reference: Option<String>,
}

impl TeamRef {
    /// The team id, taken from `id` or else from the last path segment of `$ref`.
    pub fn team_id(&self) -> Option<&str> {
        self.id.as_deref().or_else(|| self.reference.as_deref().and_then(|url| id_after(url, "/teams/")))
    }
}

/// A participant of a play.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Participant {
    /// The athlete.
    #[serde(default)]
    pub athlete: Option<AthleteRef>,
    /// Core API only: 1-based order.
    #[serde(default, deserialize_with = "de::opt_u32_lenient")]
    pub order: Option<u32>,
    /// Core API only: `shooter`, `assister`, `blocker`, `rebounder`.
    #[serde(rename = "type", default)]
    pub role: Option<String>,
}

/// An athlete reference: `{"id"}` or core-API `{"$ref"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AthleteRef {
    /// Athlete id.
    #[serde(default, deserialize_with = "de::opt_string_lenient")]
    pub id: Option<String>,
    /// Core-API URL of the athlete.
    #[serde(rename = "$ref", default)]
    pub reference: Option<String>,
}

impl AthleteRef {
    /// The athlete id, from `id` or else from the `$ref` URL.
    pub fn athlete_id(&self) -> Option<&str> {
        self.id.as_deref().or_else(|| self.reference.as_deref().and_then(|url| id_after(url, "/athletes/")))
    }
}

/// A court location in ESPN's half-court grid (x 0–50, y −3–47, basket near (25, 0)).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Coordinate {
    /// Horizontal position.
    #[serde(default, deserialize_with = "de::opt_i64_lenient")]
    pub x: Option<i64>,
    /// Distance from the baseline.
    #[serde(default, deserialize_with = "de::opt_i64_lenient")]
    pub y: Option<i64>,
}

/// The id segment following `marker` in a core-API URL: `…/teams/8?lang=en` gives `8`.
pub(crate) fn id_after<'a>(url: &'a str, marker: &str) -> Option<&'a str> {
    let start = url.rfind(marker)? + marker.len();
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let id = &rest[..end];
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_out_of_core_refs() {
        let team = TeamRef {
            id: None,
            reference: Some("http://x/v2/sports/basketball/leagues/nba/seasons/2024/teams/8?lang=en".to_owned()),
        };
        assert_eq!(team.team_id(), Some("8"));
        assert_eq!(id_after("http://x/athletes/", "/athletes/"), None);
        assert_eq!(id_after("nothing", "/athletes/"), None);
    }

    #[test]
    fn only_core_keys_are_required() {
        let minimal = r#"{"id":"1","sequenceNumber":4,"type":{"id":"412","text":"End Period"},
            "period":{"number":1},"clock":{"displayValue":"0.0"},"awayScore":0,"homeScore":"0"}"#;
        let play: Result<Play, _> = serde_json::from_str(minimal);
        assert!(play.is_ok_and(|p| p.team.is_none() && p.participants.is_none() && p.sequence_number == "4"));
        let missing_clock = r#"{"id":"1","sequenceNumber":"4","type":{"id":"1"},"period":{"number":1},
            "awayScore":0,"homeScore":0}"#;
        assert!(serde_json::from_str::<Play>(missing_clock).is_err());
    }
}
