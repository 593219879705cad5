//! `EnrichedEvent`: a play joined with team reference data and derived fields.

use serde::{Deserialize, Serialize};

use super::play::{ChangeKind, Coordinate, PlayEvent, Side};

/// Reference data of one team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamInfo {
    /// The feed's team id.
    pub team_id: String,
    /// Short name, e.g. `BOS`.
    pub abbreviation: String,
    /// Full name, e.g. `Boston Celtics`.
    pub display_name: String,
    /// Primary colour, six hex digits without `#`.
    pub color: Option<String>,
    /// Alternate colour, six hex digits without `#`.
    pub alternate_color: Option<String>,
}

/// How a league's games are divided into periods; used to derive elapsed-time fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeriodFormat {
    /// Periods in regulation (4 quarters, or 2 halves in men's college basketball).
    pub regulation_periods: i32,
    /// Length of a regulation period in seconds.
    pub period_seconds: f64,
    /// Length of an overtime period in seconds.
    pub overtime_seconds: f64,
}

impl PeriodFormat {
    /// NBA: four 12-minute quarters, 5-minute overtimes.
    pub const NBA: Self = Self { regulation_periods: 4, period_seconds: 720.0, overtime_seconds: 300.0 };
    /// WNBA and women's college: four 10-minute quarters, 5-minute overtimes.
    pub const TEN_MINUTE_QUARTERS: Self =
        Self { regulation_periods: 4, period_seconds: 600.0, overtime_seconds: 300.0 };
    /// Men's college: two 20-minute halves, 5-minute overtimes.
    pub const TWENTY_MINUTE_HALVES: Self =
        Self { regulation_periods: 2, period_seconds: 1200.0, overtime_seconds: 300.0 };

    /// The format of a league slug; unknown leagues get the NBA format.
    pub fn for_league(league: &str) -> Self {
        match league {
            "wnba" | "womens-college-basketball" => Self::TEN_MINUTE_QUARTERS,
            "mens-college-basketball" => Self::TWENTY_MINUTE_HALVES,
            _ => Self::NBA,
        }
    }

    /// Length of `period` (1-based) in seconds.
    pub fn period_length(&self, period: i32) -> f64 {
        if period > self.regulation_periods { self.overtime_seconds } else { self.period_seconds }
    }

    /// Seconds played before `period` starts.
    pub fn seconds_before(&self, period: i32) -> f64 {
        (1..period.max(1)).map(|p| self.period_length(p)).sum()
    }
}

/// A play joined with its teams, plus derived score and clock fields (schema `com.playbyplay.EnrichedEvent`).
///
/// The first 25 fields are those of [`PlayEvent`], in the same order; [`EnrichedEvent::new`] builds one from
/// a play and [`EnrichedEvent::play`] gives the play back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichedEvent {
    /// See [`PlayEvent::game_id`].
    pub game_id: String,
    /// See [`PlayEvent::play_id`].
    pub play_id: String,
    /// See [`PlayEvent::sequence`].
    pub sequence: i64,
    /// See [`PlayEvent::period`].
    pub period: i32,
    /// See [`PlayEvent::clock_display`].
    pub clock_display: String,
    /// See [`PlayEvent::clock_seconds`].
    pub clock_seconds: f64,
    /// See [`PlayEvent::game_seconds_left`].
    pub game_seconds_left: f64,
    /// See [`PlayEvent::event_type`].
    pub event_type: String,
    /// See [`PlayEvent::espn_type_id`].
    pub espn_type_id: String,
    /// See [`PlayEvent::espn_type_text`].
    pub espn_type_text: String,
    /// See [`PlayEvent::team_id`].
    pub team_id: Option<String>,
    /// See [`PlayEvent::side`].
    pub side: Option<Side>,
    /// See [`PlayEvent::home_score`].
    pub home_score: i32,
    /// See [`PlayEvent::away_score`].
    pub away_score: i32,
    /// See [`PlayEvent::score_value`].
    pub score_value: i32,
    /// See [`PlayEvent::scoring_play`].
    pub scoring_play: bool,
    /// See [`PlayEvent::shooting_play`].
    pub shooting_play: bool,
    /// See [`PlayEvent::shot_value`].
    pub shot_value: Option<i32>,
    /// See [`PlayEvent::coordinate`].
    pub coordinate: Option<Coordinate>,
    /// See [`PlayEvent::wallclock`].
    pub wallclock: Option<i64>,
    /// See [`PlayEvent::participants`].
    pub participants: Vec<String>,
    /// See [`PlayEvent::text`].
    pub text: String,
    /// See [`PlayEvent::league`].
    pub league: String,
    /// See [`PlayEvent::change`].
    pub change: ChangeKind,
    /// See [`PlayEvent::fetched_at`].
    pub fetched_at: i64,
    /// The team the play is attributed to, if known.
    pub acting_team: Option<TeamInfo>,
    /// The home team.
    pub home_team: TeamInfo,
    /// The away team.
    pub away_team: TeamInfo,
    /// `home_score - away_score`.
    pub score_differential: i32,
    /// Seconds played in the current period.
    pub period_elapsed_seconds: f64,
    /// Seconds played in the game, overtimes included.
    pub game_elapsed_seconds: f64,
    /// True past regulation.
    pub overtime: bool,
    /// When enrich produced this event, ms since the epoch.
    pub enriched_at: i64,
}

impl EnrichedEvent {
    /// Joins `play` with its teams and derives the score and clock fields. `acting_team` is the team whose id is
    /// `play.team_id`, if the caller found it.
    pub fn new(
        play: PlayEvent,
        acting_team: Option<TeamInfo>,
        home_team: TeamInfo,
        away_team: TeamInfo,
        enriched_at: i64,
    ) -> Self {
        let format = PeriodFormat::for_league(&play.league);
        let period_elapsed_seconds = (format.period_length(play.period) - play.clock_seconds).max(0.0);
        let game_elapsed_seconds = format.seconds_before(play.period) + period_elapsed_seconds;
        let overtime = play.period > format.regulation_periods;
        let PlayEvent {
            game_id,
            play_id,
            sequence,
            period,
            clock_display,
            clock_seconds,
            game_seconds_left,
            event_type,
            espn_type_id,
            espn_type_text,
            team_id,
            side,
            home_score,
            away_score,
            score_value,
            scoring_play,
            shooting_play,
            shot_value,
            coordinate,
            wallclock,
            participants,
            text,
            league,
            change,
            fetched_at,
            // The teams' ids are carried by `home_team` and `away_team`.
            home_team_id: _,
            away_team_id: _,
        } = play;
        Self {
            game_id,
            play_id,
            sequence,
            period,
            clock_display,
            clock_seconds,
            game_seconds_left,
            event_type,
            espn_type_id,
            espn_type_text,
            team_id,
            side,
            home_score,
            away_score,
            score_value,
            scoring_play,
            shooting_play,
            shot_value,
            coordinate,
            wallclock,
            participants,
            text,
            league,
            change,
            fetched_at,
            acting_team,
            home_team,
            away_team,
            score_differential: home_score - away_score,
            period_elapsed_seconds,
            game_elapsed_seconds,
            overtime,
            enriched_at,
        }
    }

    /// The play this event was built from.
    pub fn play(&self) -> PlayEvent {
        PlayEvent {
            game_id: self.game_id.clone(),
            play_id: self.play_id.clone(),
            sequence: self.sequence,
            period: self.period,
            clock_display: self.clock_display.clone(),
            clock_seconds: self.clock_seconds,
            game_seconds_left: self.game_seconds_left,
            event_type: self.event_type.clone(),
            espn_type_id: self.espn_type_id.clone(),
            espn_type_text: self.espn_type_text.clone(),
            team_id: self.team_id.clone(),
            side: self.side,
            home_score: self.home_score,
            away_score: self.away_score,
            score_value: self.score_value,
            scoring_play: self.scoring_play,
            shooting_play: self.shooting_play,
            shot_value: self.shot_value,
            coordinate: self.coordinate,
            wallclock: self.wallclock,
            participants: self.participants.clone(),
            text: self.text.clone(),
            league: self.league.clone(),
            change: self.change,
            fetched_at: self.fetched_at,
            home_team_id: Some(self.home_team.team_id.clone()),
            away_team_id: Some(self.away_team.team_id.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(id: &str, abbreviation: &str, name: &str, color: Option<&str>) -> TeamInfo {
        TeamInfo {
            team_id: id.to_owned(),
            abbreviation: abbreviation.to_owned(),
            display_name: name.to_owned(),
            color: color.map(str::to_owned),
            alternate_color: color.map(|_| "ffffff".to_owned()),
        }
    }

    fn enriched() -> EnrichedEvent {
        let orl = team("19", "ORL", "Orlando Magic", Some("0077c0"));
        let bos = team("2", "BOS", "Boston Celtics", Some("008348"));
        EnrichedEvent::new(PlayEvent::example(), Some(orl.clone()), orl, bos, 1_710_713_446_500)
    }

    #[test]
    fn enriched_event_matches_its_schema() {
        let sparse = EnrichedEvent::new(
            PlayEvent::example_sparse(),
            None,
            team("19", "ORL", "Orlando Magic", None),
            team("2", "BOS", "Boston Celtics", None),
            0,
        );
        crate::model::schema_check::check(&enriched(), &sparse);
    }

    #[test]
    fn derives_score_and_clock_fields() {
        let e = enriched();
        assert_eq!(e.score_differential, 3);
        assert_eq!(e.period_elapsed_seconds, 39.0);
        assert_eq!(e.game_elapsed_seconds, 39.0);
        assert!(!e.overtime);
        let teams = (Some(e.home_team.team_id.clone()), Some(e.away_team.team_id.clone()));
        assert_eq!(e.play(), PlayEvent { home_team_id: teams.0, away_team_id: teams.1, ..PlayEvent::example() });

        let ot = PlayEvent { period: 5, clock_seconds: 100.0, ..PlayEvent::example() };
        let e = EnrichedEvent::new(ot, None, e.home_team.clone(), e.away_team.clone(), 0);
        assert!(e.overtime);
        assert_eq!(e.period_elapsed_seconds, 200.0);
        assert_eq!(e.game_elapsed_seconds, 4.0 * 720.0 + 200.0);

        let college = PlayEvent {
            period: 2,
            clock_seconds: 1000.0,
            league: "mens-college-basketball".to_owned(),
            ..PlayEvent::example()
        };
        let e = EnrichedEvent::new(college, None, e.home_team.clone(), e.away_team.clone(), 0);
        assert_eq!(e.game_elapsed_seconds, 1400.0);
        assert!(!e.overtime);
    }

    #[test]
    fn play_fields_come_first_in_the_same_order() {
        let play: serde_json::Value = serde_json::from_str(<PlayEvent as crate::AvroRecord>::SCHEMA).unwrap();
        let enriched: serde_json::Value = serde_json::from_str(<EnrichedEvent as crate::AvroRecord>::SCHEMA).unwrap();
        // The team ids added to PlayEvent in version 2 are carried by `home_team` and `away_team` instead.
        let play_fields: Vec<_> = play["fields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| !["home_team_id", "away_team_id"].contains(&f["name"].as_str().unwrap()))
            .cloned()
            .collect();
        assert_eq!(&enriched["fields"].as_array().unwrap()[..play_fields.len()], &play_fields[..]);
    }
}
