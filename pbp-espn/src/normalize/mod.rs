//! The normalizer: ESPN plays → canonical [`NormalizedPlay`]s.
//!
//! The event type comes from [`table::TYPE_TABLE`] keyed by ESPN type id, or for ids not in the table from
//! [`fallback::classify`] on the type text. Made or missed comes from `scoringPlay`, points from `scoreValue`, the
//! shot value from `pointsAttempted` (or the text when absent). Period lengths come from the summary's `format`
//! section when present, else from the league's defaults ([`crate::League::default_format`]).

mod clock;
mod event_type;
pub mod fallback;
pub mod table;

pub use clock::parse_display_clock;
pub use event_type::{EventType, UnknownEventType};

use serde::Serialize;

use crate::league::{GameFormat, League};
use crate::model::{CorePlaysPage, Play, Summary};

/// Below this, a coordinate is ESPN's "no location" sentinel (`-214748340, -214748365`).
const COORDINATE_SENTINEL_FLOOR: i64 = -1_000_000;

/// Which side of the game a team is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The home team.
    Home,
    /// The away team.
    Away,
}

/// A court location in ESPN's half-court grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct CourtLocation {
    /// Horizontal position (0–50, basket at 25).
    pub x: i64,
    /// Distance from the baseline (−3–47).
    pub y: i64,
}

/// Everything a play needs from its game: id, teams by side, and the period structure.
#[derive(Debug, Clone, PartialEq)]
pub struct GameContext {
    /// ESPN event id.
    pub game_id: String,
    /// The league, when known.
    pub league: Option<League>,
    /// Home team id.
    pub home_team_id: Option<String>,
    /// Away team id.
    pub away_team_id: Option<String>,
    /// Period count and lengths.
    pub format: GameFormat,
}

impl GameContext {
    /// Builds the context of a summary (or cdn game package). The league is read from `header.league.slug`, else
    /// `league_hint`; the format from the `format` section, else the league's defaults (NBA's when unknown).
    pub fn from_summary(summary: &Summary, league_hint: Option<League>) -> GameContext {
        let header = &summary.header;
        let league = header.league.as_ref().and_then(|l| l.slug.as_deref()).and_then(League::from_slug).or(league_hint);
        let competition = header.competition();
        let team_of = |side: &str| competition.and_then(|c| c.competitor(side)).map(|c| c.team_id().to_owned());
        let defaults = league.unwrap_or(League::Nba).default_format();
        let mut format = defaults;
        if let Some(section) = &summary.format {
            if let Some(regulation) = &section.regulation {
                if let Some(periods) = regulation.periods.filter(|p| *p > 0) {
                    format.regulation_periods = periods;
                }
                if let Some(clock) = regulation.clock.filter(|c| c.is_finite() && *c > 0.0) {
                    format.period_seconds = clock;
                }
            }
            if let Some(clock) = section.overtime.as_ref().and_then(|o| o.clock).filter(|c| c.is_finite() && *c > 0.0) {
                format.overtime_seconds = clock;
            }
        }
        GameContext {
            game_id: header.id.clone(),
            league,
            home_team_id: team_of("home"),
            away_team_id: team_of("away"),
            format,
        }
    }

    /// Builds the context of a core-API plays page: the game id comes from the page URL; sides are unknown
    /// (the page does not name them) and the format is the league's default.
    pub fn from_core_page(page: &CorePlaysPage, league_hint: Option<League>) -> GameContext {
        let league = page
            .reference
            .as_deref()
            .and_then(|url| crate::model::id_after_marker(url, "/leagues/"))
            .and_then(League::from_slug)
            .or(league_hint);
        GameContext {
            game_id: page.event_id().unwrap_or_default().to_owned(),
            league,
            home_team_id: None,
            away_team_id: None,
            format: league.unwrap_or(League::Nba).default_format(),
        }
    }

    /// The side of `team_id`, if it is one of the two competitors.
    pub fn side_of(&self, team_id: &str) -> Option<Side> {
        if self.home_team_id.as_deref() == Some(team_id) {
            Some(Side::Home)
        } else if self.away_team_id.as_deref() == Some(team_id) {
            Some(Side::Away)
        } else {
            None
        }
    }

    /// Seconds left in the game (regulation) at `clock_seconds` left in `period`; in overtime, seconds left in
    /// the current overtime period.
    pub fn game_seconds_left(&self, period: u32, clock_seconds: f64) -> f64 {
        let format = &self.format;
        if period >= 1 && period <= format.regulation_periods {
            f64::from(format.regulation_periods - period) * format.period_seconds + clock_seconds
        } else {
            clock_seconds
        }
    }
}

/// One play in canonical form. Serializes to the NDJSON shape of `pbp espn normalize`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NormalizedPlay {
    /// ESPN event id.
    pub game_id: String,
    /// ESPN play id (unique per game).
    pub play_id: String,
    /// ESPN sequence number; `None` when it is not a number.
    pub sequence: Option<u64>,
    /// Period number (overtime continues after regulation).
    pub period: u32,
    /// Seconds left in the period.
    pub clock_seconds: Option<f64>,
    /// Seconds left in regulation (in overtime: in the current overtime period).
    pub game_seconds_left: Option<f64>,
    /// Canonical event type.
    pub event_type: EventType,
    /// ESPN type id.
    pub espn_type_id: String,
    /// ESPN type text with whitespace (including ESPN's embedded newlines) collapsed to single spaces.
    pub espn_type_text: String,
    /// Acting team id.
    pub team_id: Option<String>,
    /// Acting team's side.
    pub side: Option<Side>,
    /// Home running score after the play, as ESPN reports it.
    pub home_score: u32,
    /// Away running score after the play, as ESPN reports it.
    pub away_score: u32,
    /// Points scored on this play (0 when not a scoring play).
    pub score_value: u32,
    /// True iff points were scored (a made shot or free throw).
    pub scoring_play: bool,
    /// True for field-goal attempts and free throws.
    pub shooting_play: bool,
    /// 1, 2 or 3 for shots; `None` for non-shots.
    pub shot_value: Option<u32>,
    /// Shot or action location; `None` when ESPN sends its sentinel or nothing.
    pub coordinate: Option<CourtLocation>,
    /// When the play was logged (UTC ISO-8601).
    pub wallclock: Option<String>,
    /// Athlete ids in ESPN's positional order (shooter then assister/blocker, player then stealer, …).
    pub participants: Vec<String>,
    /// Human text, trimmed.
    pub text: String,
}

/// Normalizes every play of a summary (or cdn game package), in feed order.
pub fn normalize_summary(summary: &Summary, league_hint: Option<League>) -> (GameContext, Vec<NormalizedPlay>) {
    let context = GameContext::from_summary(summary, league_hint);
    let plays = summary.plays.iter().map(|play| normalize_play(&context, play)).collect();
    (context, plays)
}

/// Normalizes every play of a core-API page, in feed order.
pub fn normalize_core_page(page: &CorePlaysPage, league_hint: Option<League>) -> (GameContext, Vec<NormalizedPlay>) {
    let context = GameContext::from_core_page(page, league_hint);
    let plays = page.items.iter().map(|play| normalize_play(&context, play)).collect();
    (context, plays)
}

/// Normalizes one play.
pub fn normalize_play(context: &GameContext, play: &Play) -> NormalizedPlay {
    let event_type = classify(&play.play_type.id, &play.play_type.text);
    let text = play.text.as_deref().unwrap_or_default().trim();
    let scoring_play = play.scoring_play.unwrap_or_else(|| text.contains(" makes "));
    let is_shot = event_type.is_field_goal() || event_type == EventType::FreeThrow;
    let shooting_play = play.shooting_play.unwrap_or(is_shot);
    let shot_value = (is_shot || shooting_play).then(|| shot_value(event_type, play, scoring_play, text));
    let score_value = if scoring_play { play.score_value.or(shot_value).unwrap_or(0) } else { 0 };
    let clock_seconds = play
        .clock
        .value
        .filter(|v| v.is_finite() && *v >= 0.0)
        .or_else(|| play.clock.display_value.as_deref().and_then(parse_display_clock));
    let period = play.period.number;
    let team_id = play.team.as_ref().and_then(|team| team.team_id()).map(str::to_owned);
    let side = team_id.as_deref().and_then(|id| context.side_of(id));
    let coordinate = play.coordinate.and_then(|c| match (c.x, c.y) {
        (Some(x), Some(y)) if x > COORDINATE_SENTINEL_FLOOR && y > COORDINATE_SENTINEL_FLOOR => {
            Some(CourtLocation { x, y })
        }
        _ => None,
    });
    NormalizedPlay {
        game_id: context.game_id.clone(),
        play_id: play.id.clone(),
        sequence: play.sequence_number.trim().parse().ok(),
        period,
        clock_seconds,
        game_seconds_left: clock_seconds.map(|clock| context.game_seconds_left(period, clock)),
        event_type,
        espn_type_id: play.play_type.id.clone(),
        espn_type_text: collapse_whitespace(&play.play_type.text),
        team_id,
        side,
        home_score: play.home_score,
        away_score: play.away_score,
        score_value,
        scoring_play,
        shooting_play,
        shot_value,
        coordinate,
        wallclock: play.wallclock.clone(),
        participants: participants(play),
        text: text.to_owned(),
    }
}

/// The canonical type of an ESPN type: the table first, the text fallback for ids it does not know.
pub fn classify(type_id: &str, type_text: &str) -> EventType {
    table::lookup(type_id).unwrap_or_else(|| {
        let event_type = fallback::classify(type_text);
        tracing::debug!(type_id, type_text, %event_type, "ESPN type not in the table; classified by its text.");
        event_type
    })
}

fn shot_value(event_type: EventType, play: &Play, scoring_play: bool, text: &str) -> u32 {
    if event_type == EventType::FreeThrow {
        return 1;
    }
    if let Some(points) = play.points_attempted.filter(|p| (1..=3).contains(p)) {
        return points;
    }
    if scoring_play && let Some(points) = play.score_value.filter(|p| (2..=3).contains(p)) {
        return points;
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("three point") || lower.contains("3-pt") || lower.contains("3pt") { 3 } else { 2 }
}

fn participants(play: &Play) -> Vec<String> {
    let Some(list) = &play.participants else { return Vec::new() };
    let mut ordered: Vec<(Option<u32>, &str)> =
        list.iter().filter_map(|p| p.athlete.as_ref().and_then(|a| a.athlete_id()).map(|id| (p.order, id))).collect();
    // Core-API participants carry an explicit order; summary ones are already positional (stable sort keeps it).
    ordered.sort_by_key(|(order, _)| order.unwrap_or(u32::MAX));
    ordered.into_iter().map(|(_, id)| id.to_owned()).collect()
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_summary;

    fn summary(plays: &str) -> Summary {
        let json = format!(
            r#"{{"header":{{"id":"9","league":{{"slug":"wnba"}},"competitions":[{{"competitors":[
            {{"id":"18","homeAway":"home"}},{{"id":"9","homeAway":"away"}}]}}]}},"plays":[{plays}]}}"#
        );
        parse_summary(json.as_bytes()).unwrap_or_else(|e| panic!("test summary must parse: {e}"))
    }

    #[test]
    fn derived_fields_of_a_made_three() {
        let s = summary(
            r#"{"id":"91","sequenceNumber":"12","type":{"id":"92","text":"Jump Shot"},"text":"A makes 26-foot three point jumper (B assists)",
            "awayScore":3,"homeScore":0,"period":{"number":2},"clock":{"displayValue":"53.1"},"scoringPlay":true,
            "scoreValue":3,"team":{"id":"9"},"participants":[{"athlete":{"id":"1"}},{"athlete":{"id":"2"}}],
            "shootingPlay":true,"coordinate":{"x":3,"y":10}}"#,
        );
        let (context, plays) = normalize_summary(&s, None);
        assert_eq!(context.league, Some(League::Wnba));
        let play = &plays[0];
        assert_eq!(play.event_type, EventType::JumpShot);
        assert_eq!(play.shot_value, Some(3));
        assert_eq!(play.score_value, 3);
        assert_eq!(play.side, Some(Side::Away));
        assert_eq!(play.clock_seconds, Some(53.1));
        // WNBA: two 600 s quarters left after the 2nd.
        assert_eq!(play.game_seconds_left, Some(1253.1));
        assert_eq!(play.participants, ["1", "2"]);
        assert_eq!(play.coordinate, Some(CourtLocation { x: 3, y: 10 }));
        assert_eq!(play.sequence, Some(12));
    }

    #[test]
    fn misses_score_nothing_and_sentinels_are_no_location() {
        let s = summary(
            r#"{"id":"92","sequenceNumber":"13","type":{"id":"558","text":"JumpShot"},"text":"C misses 24-foot three point jumper",
            "awayScore":3,"homeScore":0,"period":{"number":5},"clock":{"displayValue":"4:00"},"scoringPlay":false,
            "scoreValue":3,"team":{"id":"18"},"shootingPlay":true,"coordinate":{"x":-214748340,"y":-214748365}}"#,
        );
        let (_, plays) = normalize_summary(&s, None);
        let play = &plays[0];
        assert_eq!(play.score_value, 0);
        assert!(!play.scoring_play);
        assert_eq!(play.shot_value, Some(3));
        assert_eq!(play.coordinate, None);
        assert_eq!(play.side, Some(Side::Home));
        // Overtime: seconds left in the overtime period.
        assert_eq!(play.game_seconds_left, Some(240.0));
    }

    #[test]
    fn unknown_types_use_the_text_and_newlines_are_collapsed() {
        let s = summary(
            r#"{"id":"93","sequenceNumber":"x","type":{"id":"9999","text":"Spinning\nReverse Layup"},"text":"D makes layup \n",
            "awayScore":5,"homeScore":0,"period":{"number":1},"clock":{"displayValue":"bogus"}}"#,
        );
        let (_, plays) = normalize_summary(&s, None);
        let play = &plays[0];
        assert_eq!(play.event_type, EventType::Layup);
        assert_eq!(play.espn_type_text, "Spinning Reverse Layup");
        assert_eq!(play.text, "D makes layup");
        assert!(play.scoring_play, "scoringPlay absent: read from the text");
        assert_eq!(play.score_value, 2);
        assert_eq!(play.sequence, None);
        assert_eq!(play.clock_seconds, None);
        assert_eq!(play.team_id, None);
        assert_eq!(play.side, None);
    }
}
