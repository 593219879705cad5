//! The SQL text of the store, shared by both backends.
//!
//! The statements are portable: PostgreSQL and SQLite (3.39 or later, for `IS DISTINCT FROM`) run the same text;
//! only the bind placeholders differ (`$1` against `?1`).

use std::fmt::Write as _;

#[cfg(test)]
mod tests;

/// How bind parameters are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholder {
    /// `$1, $2, …` (PostgreSQL).
    Dollar,
    /// `?1, ?2, …` (SQLite).
    Question,
}

impl Placeholder {
    fn write(self, out: &mut String, n: usize) {
        let c = match self {
            Self::Dollar => '$',
            Self::Question => '?',
        };
        let _ = write!(out, "{c}{n}");
    }
}

/// Most bind parameters one statement carries (SQLite allows 32,766, PostgreSQL 65,535).
const MAX_BINDS: usize = 30_000;

/// Most rows one statement writes.
const MAX_ROWS: usize = 1_000;

/// Rows per statement for a table of `columns` bound columns.
pub(crate) fn chunk_rows(columns: usize) -> usize {
    (MAX_BINDS / columns).clamp(1, MAX_ROWS)
}

/// A table's written columns: its conflict key, the content compared to detect a change, and delivery metadata
/// written with the content but not compared.
pub(crate) struct Table {
    pub(crate) name: &'static str,
    pub(crate) key: &'static [&'static str],
    pub(crate) content: &'static [&'static str],
    pub(crate) metadata: &'static [&'static str],
    /// A column that orders versions: a row whose value is below the stored one is stale and ignored.
    pub(crate) version: Option<&'static str>,
    /// A counter bumped on every content change.
    pub(crate) revision: Option<&'static str>,
}

impl Table {
    /// Number of bound columns per row.
    pub(crate) fn width(&self) -> usize {
        self.key.len() + self.content.len() + self.metadata.len()
    }

    fn columns(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.key.iter().chain(self.content).chain(self.metadata).copied()
    }
}

pub(crate) const TEAMS: Table = Table {
    name: "teams",
    key: &["league", "id"],
    content: &["abbreviation", "display_name", "color", "alternate_color"],
    metadata: &["updated_at"],
    version: Some("updated_at"),
    revision: None,
};

pub(crate) const GAMES: Table = Table {
    name: "games",
    key: &["id"],
    content: &[
        "league",
        "season",
        "season_type",
        "game_date",
        "start_time",
        "status",
        "status_detail",
        "period",
        "clock_display",
        "clock_seconds",
        "completed",
        "home_team_id",
        "away_team_id",
        "home_score",
        "away_score",
    ],
    metadata: &["fetched_at"],
    version: Some("fetched_at"),
    revision: None,
};

pub(crate) const PLAYS: Table = Table {
    name: "plays",
    key: &["game_id", "play_id"],
    content: &[
        "sequence",
        "game_order",
        "league",
        "period",
        "clock_display",
        "clock_seconds",
        "game_seconds_left",
        "period_elapsed_seconds",
        "game_elapsed_seconds",
        "overtime",
        "event_type",
        "espn_type_id",
        "espn_type_text",
        "team_id",
        "side",
        "home_score",
        "away_score",
        "score_differential",
        "score_value",
        "scoring_play",
        "shooting_play",
        "shot_value",
        "coord_x",
        "coord_y",
        "wallclock",
        "participants",
        "text",
        // Being deleted is content: a deletion, and a restored play with its old content, are changes.
        "deleted",
    ],
    // `last_change` is bound per row with the next number of the game's counter; a row the `WHERE` filters
    // out keeps its number, and the counter skips the one it was offered.
    metadata: &["change", "fetched_at", "enriched_at", "last_change"],
    version: Some("fetched_at"),
    revision: Some("revision"),
};

pub(crate) const GAME_STATES: Table = Table {
    name: "game_states",
    key: &["game_id"],
    content: &[
        "league",
        "status",
        "period",
        "clock_display",
        "clock_seconds",
        "home_score",
        "away_score",
        "last_sequence",
        "last_play_id",
        "last_play_text",
        "plays_applied",
        "updated_at",
    ],
    metadata: &[],
    version: Some("updated_at"),
    revision: None,
};

pub(crate) const GAME_STATE_TEAMS: Table = Table {
    name: "game_state_teams",
    key: &["game_id", "side"],
    content: &[
        "team_id",
        "points",
        "field_goals_made",
        "field_goals_attempted",
        "three_pointers_made",
        "three_pointers_attempted",
        "free_throws_made",
        "free_throws_attempted",
        "offensive_rebounds",
        "defensive_rebounds",
        "turnovers",
        "fouls",
        "period_fouls",
        "timeouts",
    ],
    metadata: &[],
    version: None,
    revision: None,
};

fn values(out: &mut String, ph: Placeholder, width: usize, rows: usize) {
    let mut n = 1;
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                out.push_str(", ");
            }
            ph.write(out, n);
            n += 1;
        }
        out.push(')');
    }
}

/// `INSERT … ON CONFLICT (key) DO UPDATE … WHERE <newer and different> RETURNING <returning>` for `rows` rows.
///
/// A conflicting row is updated only when its content differs from the stored one (`IS DISTINCT FROM`, so NULLs
/// compare as values) and, for versioned tables, when it is not older than the stored one. Rows the `WHERE`
/// filters out are not returned.
pub(crate) fn upsert(table: &Table, ph: Placeholder, rows: usize, returning: &str) -> String {
    let name = table.name;
    let mut s = format!("INSERT INTO {name} (");
    s.push_str(&table.columns().collect::<Vec<_>>().join(", "));
    s.push_str(") VALUES ");
    values(&mut s, ph, table.width(), rows);
    let _ = write!(s, " ON CONFLICT ({}) DO UPDATE SET ", table.key.join(", "));
    let mut sets: Vec<String> =
        table.content.iter().chain(table.metadata).map(|c| format!("{c} = excluded.{c}")).collect();
    if let Some(rev) = table.revision {
        sets.push(format!("{rev} = {name}.{rev} + 1"));
    }
    s.push_str(&sets.join(", "));
    s.push_str(" WHERE ");
    if let Some(v) = table.version {
        let _ = write!(s, "excluded.{v} >= {name}.{v} AND ");
    }
    let changed: Vec<String> =
        table.content.iter().map(|c| format!("{name}.{c} IS DISTINCT FROM excluded.{c}")).collect();
    let _ = write!(s, "({}) RETURNING {returning}", changed.join(" OR "));
    s
}

/// Rows per chunk of a play upsert: statements of this size are prepared once per connection and reused.
pub(crate) const PLAY_CHUNK_ROWS: usize = 128;

/// [`upsert`] split around its rows: the text before the first row and after the last, for
/// [`RowsStatement`](crate::repo::rows_statement::RowsStatement), which renders the rows with diesel's own
/// placeholders.
pub(crate) fn upsert_parts(table: &Table, returning: &str) -> (String, String) {
    let whole = upsert(table, Placeholder::Question, 0, returning);
    let at = whole.find(" ON CONFLICT").unwrap_or(whole.len());
    (whole[..at].to_owned(), whole[at..].to_owned())
}

/// `SELECT COUNT(*) AS n FROM table WHERE (key) IN (VALUES …)`: how many of `rows` keys are stored.
pub(crate) fn count_existing(table: &Table, ph: Placeholder, rows: usize) -> String {
    let mut s = format!("SELECT COUNT(*) AS n FROM {} WHERE ({}) IN (VALUES ", table.name, table.key.join(", "));
    values(&mut s, ph, table.key.len(), rows);
    s.push(')');
    s
}

/// `SELECT id AS key FROM games WHERE id IN (…)`: which of `rows` game ids are stored.
pub(crate) fn existing_games(ph: Placeholder, rows: usize) -> String {
    let mut s = String::from("SELECT id AS key FROM games WHERE id IN (");
    for i in 1..=rows {
        if i > 1 {
            s.push_str(", ");
        }
        ph.write(&mut s, i);
    }
    s.push(')');
    s
}

/// `SELECT league, id AS key FROM teams WHERE (league, id) IN (VALUES …)`.
pub(crate) fn existing_teams(ph: Placeholder, rows: usize) -> String {
    let mut s = String::from("SELECT league, id AS key FROM teams WHERE (league, id) IN (VALUES ");
    values(&mut s, ph, 2, rows);
    s.push(')');
    s
}

/// Columns selected for a play, in the order of `PlayRecord`.
pub(crate) const PLAY_COLUMNS: &str = "game_id, play_id, sequence, game_order, league, period, clock_display, \
    clock_seconds, game_seconds_left, period_elapsed_seconds, game_elapsed_seconds, overtime, event_type, \
    espn_type_id, espn_type_text, team_id, side, home_score, away_score, score_differential, score_value, \
    scoring_play, shooting_play, shot_value, coord_x, coord_y, wallclock, participants, text, change, fetched_at, \
    enriched_at, revision, deleted, last_change";

/// Columns selected for a game.
pub(crate) const GAME_COLUMNS: &str = "id, league, season, season_type, game_date, start_time, status, \
    status_detail, period, clock_display, clock_seconds, completed, home_team_id, away_team_id, home_score, \
    away_score, fetched_at";

/// Columns selected for a team.
pub(crate) const TEAM_COLUMNS: &str = "league, id, abbreviation, display_name, color, alternate_color, updated_at";

/// Columns selected for a game state.
pub(crate) const STATE_COLUMNS: &str = "game_id, league, status, period, clock_display, clock_seconds, home_score, \
    away_score, last_sequence, last_play_id, last_play_text, plays_applied, updated_at";

/// Columns selected for a side's counters.
pub(crate) const STATE_TEAM_COLUMNS: &str = "game_id, side, team_id, points, field_goals_made, \
    field_goals_attempted, three_pointers_made, three_pointers_attempted, free_throws_made, free_throws_attempted, \
    offensive_rebounds, defensive_rebounds, turnovers, fouls, period_fouls, timeouts";

/// The plays of one game (tombstones skipped) in game order: `since` adds `sequence > ?` (with `corrections`,
/// `(sequence > ? OR revision > 1)`), `limit` adds `LIMIT ?`.
pub(crate) fn select_plays(ph: Placeholder, since: bool, corrections: bool, limit: bool) -> String {
    let mut s = format!("SELECT {PLAY_COLUMNS} FROM plays WHERE NOT deleted AND game_id = ");
    ph.write(&mut s, 1);
    let mut n = 2;
    if since {
        s.push_str(if corrections { " AND (sequence > " } else { " AND sequence > " });
        ph.write(&mut s, n);
        if corrections {
            s.push_str(" OR revision > 1)");
        }
        n += 1;
    }
    s.push_str(" ORDER BY game_order, sequence");
    if limit {
        s.push_str(" LIMIT ");
        ph.write(&mut s, n);
    }
    s
}

/// The last `?2` plays of game `?1` (tombstones skipped), latest first.
pub(crate) fn select_last_plays(ph: Placeholder) -> String {
    let mut s = format!("SELECT {PLAY_COLUMNS} FROM plays WHERE NOT deleted AND game_id = ");
    ph.write(&mut s, 1);
    s.push_str(" ORDER BY game_order DESC, sequence DESC LIMIT ");
    ph.write(&mut s, 2);
    s
}

/// A keyset page of the snapshot of game `?1` as of change number `?2`: plays not deleted whose change number is
/// at most `?2`, in game order; `after` adds `(game_order, sequence) > (?3, ?4)`; then `LIMIT` (the last
/// placeholder).
pub(crate) fn select_plays_page(ph: Placeholder, after: bool) -> String {
    let mut s = format!("SELECT {PLAY_COLUMNS} FROM plays WHERE NOT deleted AND game_id = ");
    ph.write(&mut s, 1);
    s.push_str(" AND last_change <= ");
    ph.write(&mut s, 2);
    let mut n = 3;
    if after {
        s.push_str(" AND (game_order, sequence) > (");
        ph.write(&mut s, 3);
        s.push_str(", ");
        ph.write(&mut s, 4);
        s.push(')');
        n = 5;
    }
    s.push_str(" ORDER BY game_order, sequence LIMIT ");
    ph.write(&mut s, n);
    s
}

/// The change feed of game `?1` after change number `?2`: every play (tombstones included) whose change number is
/// above it, in change order; `limit` adds `LIMIT ?3`.
pub(crate) fn select_play_changes(ph: Placeholder, limit: bool) -> String {
    let mut s = format!("SELECT {PLAY_COLUMNS} FROM plays WHERE game_id = ");
    ph.write(&mut s, 1);
    s.push_str(" AND last_change > ");
    ph.write(&mut s, 2);
    s.push_str(" ORDER BY last_change");
    if limit {
        s.push_str(" LIMIT ");
        ph.write(&mut s, 3);
    }
    s
}

/// The change number of game `?1`, as `n`.
pub(crate) fn select_change_number(ph: Placeholder) -> String {
    let mut s = String::from("SELECT last_change AS n FROM games WHERE id = ");
    ph.write(&mut s, 1);
    s
}

/// The change numbers of `rows` games, as `key` and `n`, in id order; `lock` is appended (PostgreSQL:
/// `FOR NO KEY UPDATE`, so that writers of the same game's plays take their change numbers one after the other;
/// SQLite has one writer at a time already).
pub(crate) fn lock_game_changes(ph: Placeholder, rows: usize, lock: &str) -> String {
    let mut s = String::from("SELECT id AS key, last_change AS n FROM games WHERE id IN (");
    for i in 1..=rows {
        if i > 1 {
            s.push_str(", ");
        }
        ph.write(&mut s, i);
    }
    s.push_str(") ORDER BY id");
    s.push_str(lock);
    s
}

/// Sets game `?2`'s change number to `?1`.
pub(crate) fn set_change_number(ph: Placeholder) -> String {
    let mut s = String::from("UPDATE games SET last_change = ");
    ph.write(&mut s, 1);
    s.push_str(" WHERE id = ");
    ph.write(&mut s, 2);
    s
}

/// Games filtered by the given optional predicates (in this order: date, status, league), then `LIMIT`.
pub(crate) fn select_games(ph: Placeholder, date: bool, status: bool, league: bool, limit: bool) -> String {
    let mut s = format!("SELECT {GAME_COLUMNS} FROM games");
    let mut n = 1;
    let mut first = true;
    for (on, column) in [(date, "game_date"), (status, "status"), (league, "league")] {
        if on {
            s.push_str(if first { " WHERE " } else { " AND " });
            first = false;
            let _ = write!(s, "{column} = ");
            ph.write(&mut s, n);
            n += 1;
        }
    }
    s.push_str(" ORDER BY start_time, id");
    if limit {
        s.push_str(" LIMIT ");
        ph.write(&mut s, n);
    }
    s
}

/// One game by id.
pub(crate) fn select_game(ph: Placeholder) -> String {
    let mut s = format!("SELECT {GAME_COLUMNS} FROM games WHERE id = ");
    ph.write(&mut s, 1);
    s
}

/// Teams, optionally of one league, ordered by league and id.
pub(crate) fn select_teams(ph: Placeholder, league: bool) -> String {
    let mut s = format!("SELECT {TEAM_COLUMNS} FROM teams");
    if league {
        s.push_str(" WHERE league = ");
        ph.write(&mut s, 1);
    }
    s.push_str(" ORDER BY league, id");
    s
}

/// One game state by game id.
pub(crate) fn select_state(ph: Placeholder) -> String {
    let mut s = format!("SELECT {STATE_COLUMNS} FROM game_states WHERE game_id = ");
    ph.write(&mut s, 1);
    s
}

/// The two sides' counters of one game.
pub(crate) fn select_state_teams(ph: Placeholder) -> String {
    let mut s = format!("SELECT {STATE_TEAM_COLUMNS} FROM game_state_teams WHERE game_id = ");
    ph.write(&mut s, 1);
    s
}
