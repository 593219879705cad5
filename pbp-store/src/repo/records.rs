//! Database records as diesel reads them, and their conversion to the public rows.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Double, Integer, Nullable, Text};

use crate::error::StoreError;
use crate::model::{Coordinate, GameRow, GameStateRow, PlayChange, PlayRow, Side, TeamCounters, TeamRow};

#[derive(QueryableByName)]
pub(crate) struct KeyRecord {
    #[diesel(sql_type = Text)]
    pub(crate) key: String,
}

#[derive(QueryableByName)]
pub(crate) struct CountRecord {
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

#[derive(QueryableByName)]
pub(crate) struct RevisionRecord {
    #[diesel(sql_type = Text)]
    pub(crate) game_id: String,
    #[diesel(sql_type = Text)]
    pub(crate) play_id: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) revision: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) last_change: i64,
    #[diesel(sql_type = Bool)]
    pub(crate) deleted: bool,
}

/// A game's id and change number.
#[derive(QueryableByName)]
pub(crate) struct ChangeNumberRecord {
    #[diesel(sql_type = Text)]
    pub(crate) key: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

#[derive(QueryableByName)]
pub(crate) struct TeamKeyRecord {
    #[diesel(sql_type = Text)]
    pub(crate) league: String,
    #[diesel(sql_type = Text)]
    pub(crate) key: String,
}

#[derive(QueryableByName)]
pub(crate) struct TeamRecord {
    #[diesel(sql_type = Text)]
    league: String,
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    abbreviation: String,
    #[diesel(sql_type = Text)]
    display_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    color: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    alternate_color: Option<String>,
    #[diesel(sql_type = BigInt)]
    updated_at: i64,
}

impl From<TeamRecord> for TeamRow {
    fn from(r: TeamRecord) -> Self {
        TeamRow {
            league: r.league,
            id: r.id,
            abbreviation: r.abbreviation,
            display_name: r.display_name,
            color: r.color,
            alternate_color: r.alternate_color,
            updated_at: r.updated_at,
        }
    }
}

fn parse<T: std::str::FromStr<Err = crate::model::ParseEnumError>>(
    table: &'static str,
    key: &str,
    value: &str,
) -> Result<T, StoreError> {
    value.parse().map_err(|e: crate::model::ParseEnumError| StoreError::Corrupt {
        table,
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

#[derive(QueryableByName)]
pub(crate) struct GameRecord {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    league: String,
    #[diesel(sql_type = Integer)]
    season: i32,
    #[diesel(sql_type = Integer)]
    season_type: i32,
    #[diesel(sql_type = Text)]
    game_date: String,
    #[diesel(sql_type = BigInt)]
    start_time: i64,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    status_detail: String,
    #[diesel(sql_type = Integer)]
    period: i32,
    #[diesel(sql_type = Text)]
    clock_display: String,
    #[diesel(sql_type = Double)]
    clock_seconds: f64,
    #[diesel(sql_type = Bool)]
    completed: bool,
    #[diesel(sql_type = Text)]
    home_team_id: String,
    #[diesel(sql_type = Text)]
    away_team_id: String,
    #[diesel(sql_type = Integer)]
    home_score: i32,
    #[diesel(sql_type = Integer)]
    away_score: i32,
    #[diesel(sql_type = BigInt)]
    fetched_at: i64,
}

impl TryFrom<GameRecord> for GameRow {
    type Error = StoreError;
    fn try_from(r: GameRecord) -> Result<Self, StoreError> {
        let status = parse("games", &r.id, &r.status)?;
        Ok(GameRow {
            id: r.id,
            league: r.league,
            season: r.season,
            season_type: r.season_type,
            game_date: r.game_date,
            start_time: r.start_time,
            status,
            status_detail: r.status_detail,
            period: r.period,
            clock_display: r.clock_display,
            clock_seconds: r.clock_seconds,
            completed: r.completed,
            home_team_id: r.home_team_id,
            away_team_id: r.away_team_id,
            home_score: r.home_score,
            away_score: r.away_score,
            fetched_at: r.fetched_at,
        })
    }
}

#[derive(QueryableByName)]
pub(crate) struct PlayRecord {
    #[diesel(sql_type = Text)]
    game_id: String,
    #[diesel(sql_type = Text)]
    play_id: String,
    #[diesel(sql_type = BigInt)]
    sequence: i64,
    #[diesel(sql_type = BigInt)]
    game_order: i64,
    #[diesel(sql_type = Text)]
    league: String,
    #[diesel(sql_type = Integer)]
    period: i32,
    #[diesel(sql_type = Text)]
    clock_display: String,
    #[diesel(sql_type = Double)]
    clock_seconds: f64,
    #[diesel(sql_type = Double)]
    game_seconds_left: f64,
    #[diesel(sql_type = Double)]
    period_elapsed_seconds: f64,
    #[diesel(sql_type = Double)]
    game_elapsed_seconds: f64,
    #[diesel(sql_type = Bool)]
    overtime: bool,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Text)]
    espn_type_id: String,
    #[diesel(sql_type = Text)]
    espn_type_text: String,
    #[diesel(sql_type = Nullable<Text>)]
    team_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    side: Option<String>,
    #[diesel(sql_type = Integer)]
    home_score: i32,
    #[diesel(sql_type = Integer)]
    away_score: i32,
    #[diesel(sql_type = Integer)]
    score_differential: i32,
    #[diesel(sql_type = Integer)]
    score_value: i32,
    #[diesel(sql_type = Bool)]
    scoring_play: bool,
    #[diesel(sql_type = Bool)]
    shooting_play: bool,
    #[diesel(sql_type = Nullable<Integer>)]
    shot_value: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    coord_x: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    coord_y: Option<i32>,
    #[diesel(sql_type = Nullable<BigInt>)]
    wallclock: Option<i64>,
    #[diesel(sql_type = Text)]
    participants: String,
    #[diesel(sql_type = Text)]
    text: String,
    #[diesel(sql_type = Text)]
    change: String,
    #[diesel(sql_type = BigInt)]
    fetched_at: i64,
    #[diesel(sql_type = BigInt)]
    enriched_at: i64,
    #[diesel(sql_type = BigInt)]
    revision: i64,
    #[diesel(sql_type = Bool)]
    deleted: bool,
    #[diesel(sql_type = BigInt)]
    last_change: i64,
}

impl TryFrom<PlayRecord> for PlayRow {
    type Error = StoreError;
    fn try_from(r: PlayRecord) -> Result<Self, StoreError> {
        let key = format!("{}/{}", r.game_id, r.play_id);
        let side: Option<Side> = r.side.as_deref().map(|s| parse("plays", &key, s)).transpose()?;
        // A tombstone says so in both columns (a check of the schema); `deleted` is the one reads filter on.
        let change = if r.deleted { PlayChange::Delete } else { parse("plays", &key, &r.change)? };
        let participants: Vec<String> = serde_json::from_str(&r.participants).map_err(|e| StoreError::Corrupt {
            table: "plays",
            key: key.clone(),
            reason: format!("participants are not a JSON array of strings: {e}"),
        })?;
        let coordinate = match (r.coord_x, r.coord_y) {
            (Some(x), Some(y)) => Some(Coordinate { x, y }),
            _ => None,
        };
        Ok(PlayRow {
            game_id: r.game_id,
            play_id: r.play_id,
            sequence: r.sequence,
            game_order: r.game_order,
            league: r.league,
            period: r.period,
            clock_display: r.clock_display,
            clock_seconds: r.clock_seconds,
            game_seconds_left: r.game_seconds_left,
            period_elapsed_seconds: r.period_elapsed_seconds,
            game_elapsed_seconds: r.game_elapsed_seconds,
            overtime: r.overtime,
            event_type: r.event_type,
            espn_type_id: r.espn_type_id,
            espn_type_text: r.espn_type_text,
            team_id: r.team_id,
            side,
            home_score: r.home_score,
            away_score: r.away_score,
            score_differential: r.score_differential,
            score_value: r.score_value,
            scoring_play: r.scoring_play,
            shooting_play: r.shooting_play,
            shot_value: r.shot_value,
            coordinate,
            wallclock: r.wallclock,
            participants,
            text: r.text,
            change,
            fetched_at: r.fetched_at,
            enriched_at: r.enriched_at,
            revision: r.revision,
            change_number: r.last_change,
        })
    }
}

#[derive(QueryableByName)]
pub(crate) struct StateRecord {
    #[diesel(sql_type = Text)]
    game_id: String,
    #[diesel(sql_type = Text)]
    league: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Integer)]
    period: i32,
    #[diesel(sql_type = Text)]
    clock_display: String,
    #[diesel(sql_type = Double)]
    clock_seconds: f64,
    #[diesel(sql_type = Integer)]
    home_score: i32,
    #[diesel(sql_type = Integer)]
    away_score: i32,
    #[diesel(sql_type = BigInt)]
    last_sequence: i64,
    #[diesel(sql_type = Nullable<Text>)]
    last_play_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_play_text: Option<String>,
    #[diesel(sql_type = BigInt)]
    plays_applied: i64,
    #[diesel(sql_type = BigInt)]
    updated_at: i64,
}

#[derive(QueryableByName)]
pub(crate) struct StateTeamRecord {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)]
    game_id: String,
    #[diesel(sql_type = Text)]
    side: String,
    #[diesel(sql_type = Nullable<Text>)]
    team_id: Option<String>,
    #[diesel(sql_type = Integer)]
    points: i32,
    #[diesel(sql_type = Integer)]
    field_goals_made: i32,
    #[diesel(sql_type = Integer)]
    field_goals_attempted: i32,
    #[diesel(sql_type = Integer)]
    three_pointers_made: i32,
    #[diesel(sql_type = Integer)]
    three_pointers_attempted: i32,
    #[diesel(sql_type = Integer)]
    free_throws_made: i32,
    #[diesel(sql_type = Integer)]
    free_throws_attempted: i32,
    #[diesel(sql_type = Integer)]
    offensive_rebounds: i32,
    #[diesel(sql_type = Integer)]
    defensive_rebounds: i32,
    #[diesel(sql_type = Integer)]
    turnovers: i32,
    #[diesel(sql_type = Integer)]
    fouls: i32,
    #[diesel(sql_type = Integer)]
    period_fouls: i32,
    #[diesel(sql_type = Integer)]
    timeouts: i32,
}

impl StateRecord {
    /// Joins the state with its two sides' counters.
    pub(crate) fn into_row(self, sides: Vec<StateTeamRecord>) -> Result<GameStateRow, StoreError> {
        let status = parse("game_states", &self.game_id, &self.status)?;
        let mut home = None;
        let mut away = None;
        for s in sides {
            let side: Side = parse("game_state_teams", &self.game_id, &s.side)?;
            let counters = TeamCounters {
                team_id: s.team_id,
                points: s.points,
                field_goals_made: s.field_goals_made,
                field_goals_attempted: s.field_goals_attempted,
                three_pointers_made: s.three_pointers_made,
                three_pointers_attempted: s.three_pointers_attempted,
                free_throws_made: s.free_throws_made,
                free_throws_attempted: s.free_throws_attempted,
                offensive_rebounds: s.offensive_rebounds,
                defensive_rebounds: s.defensive_rebounds,
                turnovers: s.turnovers,
                fouls: s.fouls,
                period_fouls: s.period_fouls,
                timeouts: s.timeouts,
            };
            match side {
                Side::Home => home = Some(counters),
                Side::Away => away = Some(counters),
            }
        }
        let missing = |side: &str| StoreError::Corrupt {
            table: "game_state_teams",
            key: self.game_id.clone(),
            reason: format!("no {side} counters"),
        };
        let home = home.ok_or_else(|| missing("home"))?;
        let away = away.ok_or_else(|| missing("away"))?;
        Ok(GameStateRow {
            game_id: self.game_id,
            league: self.league,
            status,
            period: self.period,
            clock_display: self.clock_display,
            clock_seconds: self.clock_seconds,
            home_score: self.home_score,
            away_score: self.away_score,
            home,
            away,
            last_sequence: self.last_sequence,
            last_play_id: self.last_play_id,
            last_play_text: self.last_play_text,
            plays_applied: self.plays_applied,
            updated_at: self.updated_at,
        })
    }
}
