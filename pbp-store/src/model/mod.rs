//! The rows the store holds: its own types, independent of the Avro records and of the feed.
//!
//! Conversion from `pbp-avro`'s `EnrichedEvent`, `GameState` and `ScoreboardEvent` lives in `pbp-bin`; every field
//! of those records has a home here (the team objects of an `EnrichedEvent` are rows of [`TeamRow`], joined back
//! by `(league, team_id)`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

#[cfg(test)]
mod tests;

/// Where a game stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GameStatus {
    /// Before tip-off.
    Pre,
    /// Being played.
    In,
    /// Over.
    Post,
}

impl GameStatus {
    /// The stored spelling: `"pre"`, `"in"` or `"post"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pre => "pre",
            Self::In => "in",
            Self::Post => "post",
        }
    }
}

/// Which side of a game a team plays on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The home team.
    Home,
    /// The away team.
    Away,
}

impl Side {
    /// The stored spelling: `"home"` or `"away"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Home => "home",
            Self::Away => "away",
        }
    }
}

/// Whether a play was first seen, is a correction of a play already emitted, or was deleted from the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlayChange {
    /// Seen for the first time (or back after a deletion).
    New,
    /// A correction.
    Update,
    /// Deleted from the feed: written, the row becomes a tombstone (see [`PlayRow`]).
    Delete,
}

impl PlayChange {
    /// The stored spelling: `"new"`, `"update"` or `"delete"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// A string that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct ParseEnumError {
    /// Which enum, e.g. `"game status"`.
    pub kind: &'static str,
    /// The refused value.
    pub value: String,
}

macro_rules! enum_from_str {
    ($ty:ty, $kind:literal, $($text:literal => $variant:expr),+) => {
        impl FromStr for $ty {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($variant),)+
                    other => Err(ParseEnumError { kind: $kind, value: other.to_owned() }),
                }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

enum_from_str!(GameStatus, "game status", "pre" => GameStatus::Pre, "in" => GameStatus::In, "post" => GameStatus::Post);
enum_from_str!(Side, "side", "home" => Side::Home, "away" => Side::Away);
enum_from_str!(PlayChange, "play change", "new" => PlayChange::New, "update" => PlayChange::Update, "delete" => PlayChange::Delete);

/// Reference data of one team. Key: `(league, id)` (the feed's team ids are unique only within a league).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamRow {
    /// League slug, e.g. `"nba"`.
    pub league: String,
    /// The feed's team id, e.g. `"2"`.
    pub id: String,
    /// Short name, e.g. `"BOS"`.
    pub abbreviation: String,
    /// Full name, e.g. `"Boston Celtics"`.
    pub display_name: String,
    /// Primary colour, six hex digits without `#`.
    pub color: Option<String>,
    /// Alternate colour, six hex digits without `#`.
    pub alternate_color: Option<String>,
    /// When this version was produced, milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// One game as the scoreboard describes it. Key: `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameRow {
    /// The feed's event id.
    pub id: String,
    /// League slug.
    pub league: String,
    /// Season year (the year the season ends).
    pub season: i32,
    /// 1 preseason, 2 regular season, 3 postseason, 5 play-in.
    pub season_type: i32,
    /// Scoreboard date, `YYYY-MM-DD`.
    pub game_date: String,
    /// Scheduled tip-off, milliseconds since the Unix epoch.
    pub start_time: i64,
    /// Where the game stands.
    pub status: GameStatus,
    /// The feed's status text, e.g. `"Final"`.
    pub status_detail: String,
    /// Current period; 0 before tip-off.
    pub period: i32,
    /// Game clock as displayed.
    pub clock_display: String,
    /// Seconds left in the period.
    pub clock_seconds: f64,
    /// True once the game is final.
    pub completed: bool,
    /// Home team id (a team of the same league).
    pub home_team_id: String,
    /// Away team id.
    pub away_team_id: String,
    /// Home score.
    pub home_score: i32,
    /// Away score.
    pub away_score: i32,
    /// When the scoreboard was fetched, milliseconds since the Unix epoch. An older snapshot never overwrites a
    /// newer one.
    pub fetched_at: i64,
}

/// A location on the feed's half-court grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coordinate {
    /// Across the court.
    pub x: i32,
    /// From the baseline.
    pub y: i32,
}

/// One enriched play. Key: `(game_id, play_id)`.
///
/// *Content* is every field except the delivery metadata `change`, `fetched_at`, `enriched_at` and the
/// store-maintained `revision` and `change_number`: a re-delivered play with the same content changes nothing;
/// one with different content (a correction) replaces the stored row and bumps `revision`.
///
/// A row written with `change` [`PlayChange::Delete`] deletes the play: the stored row becomes a *tombstone*
/// (its last content, marked deleted, with a new revision and change number), which the reads of plays skip and
/// the change feed ([`Repository::play_changes`](crate::Repository::play_changes)) reports. Being deleted counts
/// as content: a re-delivered deletion changes nothing, and the play written again (ESPN restored it) replaces
/// the tombstone even with its old content. A deletion of a play never stored leaves a tombstone too, so that a
/// late, older delivery of the play does not bring it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayRow {
    /// The game's id (a stored game).
    pub game_id: String,
    /// The play's id, unique within the game.
    pub play_id: String,
    /// The feed's sequence number, unique within the game.
    pub sequence: i64,
    /// Position in game order (the feed's position of the play); plays are returned ordered by
    /// `(game_order, sequence)`.
    pub game_order: i64,
    /// League slug.
    pub league: String,
    /// Period, 1 and up.
    pub period: i32,
    /// Clock as displayed.
    pub clock_display: String,
    /// Seconds left in the period.
    pub clock_seconds: f64,
    /// Seconds left in regulation (0 in overtime).
    pub game_seconds_left: f64,
    /// Seconds played in the period.
    pub period_elapsed_seconds: f64,
    /// Seconds played in the game, overtimes included.
    pub game_elapsed_seconds: f64,
    /// True past regulation.
    pub overtime: bool,
    /// Canonical event type, e.g. `"jump_shot"`.
    pub event_type: String,
    /// The feed's type id.
    pub espn_type_id: String,
    /// The feed's type text.
    pub espn_type_text: String,
    /// Team the play is attributed to.
    pub team_id: Option<String>,
    /// Side of `team_id`.
    pub side: Option<Side>,
    /// Home score after the play.
    pub home_score: i32,
    /// Away score after the play.
    pub away_score: i32,
    /// `home_score - away_score`.
    pub score_differential: i32,
    /// Points scored on the play, 0 to 3.
    pub score_value: i32,
    /// True if points were scored.
    pub scoring_play: bool,
    /// True for field-goal attempts and free throws.
    pub shooting_play: bool,
    /// Points the shot was worth if made, 1 to 3.
    pub shot_value: Option<i32>,
    /// Where the play happened.
    pub coordinate: Option<Coordinate>,
    /// Real-world time of the play, milliseconds since the Unix epoch.
    pub wallclock: Option<i64>,
    /// Athlete ids involved, in the feed's order.
    pub participants: Vec<String>,
    /// The feed's description.
    pub text: String,
    /// First sighting or correction (delivery metadata).
    pub change: PlayChange,
    /// When the collector fetched the play (delivery metadata). A delivery older than the stored one is ignored.
    pub fetched_at: i64,
    /// When enrich produced the play (delivery metadata).
    pub enriched_at: i64,
    /// Number of content versions stored; set by the store (1 on insert, +1 per correction or deletion), ignored
    /// on write.
    pub revision: i64,
    /// The game's change number of the row's last change (insert, correction or deletion); set by the store,
    /// ignored on write. Every write that changes a game's plays gives each changed play the next numbers of
    /// the game's counter, in commit order, so a client that holds every change up to `N` asks for the plays
    /// whose change number is above `N`.
    pub change_number: i64,
}

/// Running counters of one team in one game.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamCounters {
    /// The team's id once a play names it.
    pub team_id: Option<String>,
    /// Points.
    pub points: i32,
    /// Field goals made.
    pub field_goals_made: i32,
    /// Field goals attempted.
    pub field_goals_attempted: i32,
    /// Three-pointers made.
    pub three_pointers_made: i32,
    /// Three-pointers attempted.
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

/// The latest state of one game. Key: `game_id`. A state with an older `updated_at` than the stored one is
/// ignored; one with the same content changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameStateRow {
    /// The game's id (a stored game).
    pub game_id: String,
    /// League slug.
    pub league: String,
    /// Where the game stands.
    pub status: GameStatus,
    /// Period of the last applied play; 0 before the first.
    pub period: i32,
    /// Clock of the last applied play.
    pub clock_display: String,
    /// Seconds left in the period at the last applied play.
    pub clock_seconds: f64,
    /// Home score.
    pub home_score: i32,
    /// Away score.
    pub away_score: i32,
    /// Home team's counters.
    pub home: TeamCounters,
    /// Away team's counters.
    pub away: TeamCounters,
    /// Highest play sequence applied.
    pub last_sequence: i64,
    /// Id of the last applied play.
    pub last_play_id: Option<String>,
    /// Text of the last applied play.
    pub last_play_text: Option<String>,
    /// Number of plays folded in.
    pub plays_applied: i64,
    /// When the state last changed, milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// Filter of [`Repository::games`](crate::Repository::games). Results are ordered by `(start_time, id)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GamesQuery {
    /// Only games of this scoreboard date (`YYYY-MM-DD`).
    pub date: Option<String>,
    /// Only games in this status.
    pub status: Option<GameStatus>,
    /// Only games of this league.
    pub league: Option<String>,
    /// At most this many games.
    pub limit: Option<u32>,
}

/// Filter of [`Repository::plays`](crate::Repository::plays). Results are in game order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlaysQuery {
    /// Only plays with a sequence above this one: what a client that has seen everything up to `since`
    /// is missing, late-logged plays included (they get higher sequences).
    pub since: Option<i64>,
    /// With `since`, also the corrected plays (revision above 1) at or below it. A correction keeps its play's
    /// sequence, so a client resuming after `since` would otherwise miss one made while it was away; it may
    /// hold some of them already, and keeps the higher revision.
    pub corrections: bool,
    /// At most this many plays (the first ones in game order).
    pub limit: Option<u32>,
}

/// A play a write inserted, changed or deleted, and the revision and change number it now has (revision 1 when
/// inserted).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlayRevision {
    /// The play's game.
    pub game_id: String,
    /// The play.
    pub play_id: String,
    /// Its revision after the write.
    pub revision: i64,
    /// Its change number after the write ([`PlayRow::change_number`]).
    pub change_number: i64,
    /// True when the write deleted it (it is a tombstone now).
    pub deleted: bool,
}

/// Where a play stands in game order: `(game_order, sequence)`, unique among a game's plays that are not deleted.
/// The key of [`PlaysPageQuery`]'s keyset pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PlayPosition {
    /// [`PlayRow::game_order`].
    pub game_order: i64,
    /// [`PlayRow::sequence`].
    pub sequence: i64,
}

/// A page of a game's plays in game order, of a snapshot as of a change number
/// ([`Repository::plays_page`](crate::Repository::plays_page)).
///
/// The snapshot as of `N` is every play not deleted whose change number is at most `N`. Writes after `N` only
/// take plays out of it (a play changed later has a higher number), never add or move one, so keyset pages on
/// [`PlayPosition`] visit each of its plays at most once and in game order, however long the paging takes. The
/// plays taken out, and the plays added after `N`, are the change feed after `N`
/// ([`Repository::play_changes`](crate::Repository::play_changes)): a reader that pages through the snapshot and
/// then follows the feed holds exactly what the store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlaysPageQuery {
    /// The snapshot's change number; `None`: the game's current one (the first page).
    pub as_of: Option<i64>,
    /// Only plays after this position (the last play of the previous page); `None`: from the start.
    pub after: Option<PlayPosition>,
    /// At most this many plays.
    pub limit: u32,
}

/// What [`Repository::plays_page`](crate::Repository::plays_page) answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlaysPage {
    /// The snapshot's change number (the query's, or the game's current one; 0 for a game without plays or not
    /// stored).
    pub as_of: i64,
    /// The plays, in game order.
    pub plays: Vec<PlayRow>,
}

/// What a batched play upsert did, with the plays it inserted or changed
/// ([`Repository::upsert_plays_with_changes`](crate::Repository::upsert_plays_with_changes)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaysWritten {
    /// The counts.
    pub outcome: UpsertOutcome,
    /// One entry per inserted or changed play (`outcome.inserted + outcome.updated` of them).
    pub changed: Vec<PlayRevision>,
}

/// What a batched upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertOutcome {
    /// Rows that were not stored before.
    pub inserted: u64,
    /// Stored rows whose content changed.
    pub updated: u64,
    /// Rows that changed nothing: identical re-deliveries, stale versions, and earlier duplicates of a key
    /// within the same batch (the last one wins).
    pub unchanged: u64,
}

impl UpsertOutcome {
    /// Adds another outcome to this one.
    pub fn add(&mut self, other: UpsertOutcome) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
    }
}

fn invalid(table: &'static str, key: String, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid { table, key, reason: reason.into() }
}

fn non_empty(table: &'static str, key: &str, field: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() { Err(invalid(table, key.to_owned(), format!("{field} is empty"))) } else { Ok(()) }
}

fn at_least<T: PartialOrd + fmt::Display>(
    table: &'static str,
    key: &str,
    field: &str,
    value: T,
    min: T,
) -> Result<(), StoreError> {
    // `!(value >= min)` also refuses NaN.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(value >= min) {
        return Err(invalid(table, key.to_owned(), format!("{field} is {value}, below {min}")));
    }
    Ok(())
}

fn colour(table: &'static str, key: &str, field: &str, value: Option<&str>) -> Result<(), StoreError> {
    match value {
        Some(v) if v.len() != 6 || !v.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Err(invalid(table, key.to_owned(), format!("{field} {v:?} is not six hex digits")))
        }
        _ => Ok(()),
    }
}

impl TeamRow {
    /// The key as text, `league/id`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.league, self.id)
    }

    /// Checks the schema's rules without touching the database.
    pub fn validate(&self) -> Result<(), StoreError> {
        let key = self.key();
        non_empty("teams", &key, "league", &self.league)?;
        non_empty("teams", &key, "id", &self.id)?;
        non_empty("teams", &key, "abbreviation", &self.abbreviation)?;
        non_empty("teams", &key, "display_name", &self.display_name)?;
        colour("teams", &key, "color", self.color.as_deref())?;
        colour("teams", &key, "alternate_color", self.alternate_color.as_deref())
    }
}

impl GameRow {
    /// Checks the schema's rules without touching the database.
    pub fn validate(&self) -> Result<(), StoreError> {
        let key = &self.id;
        non_empty("games", key, "id", &self.id)?;
        non_empty("games", key, "league", &self.league)?;
        at_least("games", key, "season", self.season, 1900)?;
        at_least("games", key, "season_type", self.season_type, 1)?;
        let d = self.game_date.as_bytes();
        let date_ok = d.len() == 10
            && d.iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() });
        if !date_ok {
            return Err(invalid("games", key.clone(), format!("game_date {:?} is not YYYY-MM-DD", self.game_date)));
        }
        at_least("games", key, "period", self.period, 0)?;
        at_least("games", key, "clock_seconds", self.clock_seconds, 0.0)?;
        at_least("games", key, "home_score", self.home_score, 0)?;
        at_least("games", key, "away_score", self.away_score, 0)?;
        non_empty("games", key, "home_team_id", &self.home_team_id)?;
        non_empty("games", key, "away_team_id", &self.away_team_id)?;
        if self.home_team_id == self.away_team_id {
            return Err(invalid("games", key.clone(), format!("home and away are both team {}", self.home_team_id)));
        }
        Ok(())
    }
}

impl PlayRow {
    /// The key as text, `game_id/play_id`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.game_id, self.play_id)
    }

    /// True for a deletion (written) or a tombstone (read from the change feed).
    pub fn is_deleted(&self) -> bool {
        self.change == PlayChange::Delete
    }

    /// Where the play stands in game order.
    pub fn position(&self) -> PlayPosition {
        PlayPosition { game_order: self.game_order, sequence: self.sequence }
    }

    /// Checks the schema's rules without touching the database.
    pub fn validate(&self) -> Result<(), StoreError> {
        let t = "plays";
        let key = self.key();
        let k = key.as_str();
        non_empty(t, k, "game_id", &self.game_id)?;
        non_empty(t, k, "play_id", &self.play_id)?;
        non_empty(t, k, "event_type", &self.event_type)?;
        at_least(t, k, "sequence", self.sequence, 0)?;
        at_least(t, k, "game_order", self.game_order, 0)?;
        at_least(t, k, "period", self.period, 1)?;
        at_least(t, k, "clock_seconds", self.clock_seconds, 0.0)?;
        at_least(t, k, "game_seconds_left", self.game_seconds_left, 0.0)?;
        at_least(t, k, "period_elapsed_seconds", self.period_elapsed_seconds, 0.0)?;
        at_least(t, k, "game_elapsed_seconds", self.game_elapsed_seconds, 0.0)?;
        at_least(t, k, "home_score", self.home_score, 0)?;
        at_least(t, k, "away_score", self.away_score, 0)?;
        if !(0..=3).contains(&self.score_value) {
            return Err(invalid(t, key, format!("score_value is {}, not 0 to 3", self.score_value)));
        }
        if let Some(v) = self.shot_value
            && !(1..=3).contains(&v)
        {
            return Err(invalid(t, key, format!("shot_value is {v}, not 1 to 3")));
        }
        if self.score_differential != self.home_score - self.away_score {
            return Err(invalid(
                t,
                key,
                format!(
                    "score_differential {} is not home_score {} - away_score {}",
                    self.score_differential, self.home_score, self.away_score
                ),
            ));
        }
        if self.side.is_some() && self.team_id.is_none() {
            return Err(invalid(t, key, "side is set but team_id is not"));
        }
        Ok(())
    }
}

impl TeamCounters {
    fn validate(&self, key: &str, side: Side) -> Result<(), StoreError> {
        let t = "game_state_teams";
        let k = format!("{key}/{side}");
        let all = [
            ("points", self.points),
            ("field_goals_made", self.field_goals_made),
            ("three_pointers_made", self.three_pointers_made),
            ("free_throws_made", self.free_throws_made),
            ("offensive_rebounds", self.offensive_rebounds),
            ("defensive_rebounds", self.defensive_rebounds),
            ("turnovers", self.turnovers),
            ("period_fouls", self.period_fouls),
            ("timeouts", self.timeouts),
        ];
        for (field, value) in all {
            at_least(t, &k, field, value, 0)?;
        }
        at_least(t, &k, "field_goals_attempted", self.field_goals_attempted, self.field_goals_made)?;
        at_least(t, &k, "three_pointers_attempted", self.three_pointers_attempted, self.three_pointers_made)?;
        at_least(t, &k, "free_throws_attempted", self.free_throws_attempted, self.free_throws_made)?;
        at_least(t, &k, "fouls", self.fouls, self.period_fouls)
    }
}

impl GameStateRow {
    /// Checks the schema's rules without touching the database.
    pub fn validate(&self) -> Result<(), StoreError> {
        let t = "game_states";
        let k = self.game_id.as_str();
        non_empty(t, k, "game_id", &self.game_id)?;
        at_least(t, k, "period", self.period, 0)?;
        at_least(t, k, "clock_seconds", self.clock_seconds, 0.0)?;
        at_least(t, k, "home_score", self.home_score, 0)?;
        at_least(t, k, "away_score", self.away_score, 0)?;
        at_least(t, k, "last_sequence", self.last_sequence, 0)?;
        at_least(t, k, "plays_applied", self.plays_applied, 0)?;
        if self.last_play_id.is_some() != self.last_play_text.is_some() {
            return Err(invalid(t, k.to_owned(), "last_play_id and last_play_text must be both set or both null"));
        }
        self.home.validate(k, Side::Home)?;
        self.away.validate(k, Side::Away)
    }
}
