//! The repository trait both stores implement, and the plumbing they share.

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{
    GameRow, GameStateRow, GamesQuery, PlayRow, PlaysPage, PlaysPageQuery, PlaysQuery, PlaysWritten, TeamRow,
    UpsertOutcome,
};

pub(crate) mod diesel_impl;
pub(crate) mod records;
pub(crate) mod rows_statement;

/// Storage of teams, games, plays and game states.
///
/// Every write takes a batch and is idempotent: writing the same batch twice leaves the store as after the first
/// write. Rows are validated before any statement is sent (a bad row fails the whole batch with
/// [`StoreError::Invalid`](crate::StoreError::Invalid) naming it); a batch is written in one transaction, with one
/// multi-row statement per chunk of up to a thousand rows, so either all of it lands or none.
#[async_trait]
pub trait Repository: Send + Sync {
    /// Inserts or updates teams, keyed by `(league, id)`.
    async fn upsert_teams(&self, teams: &[TeamRow]) -> Result<UpsertOutcome>;

    /// Inserts or updates games (`ON CONFLICT (id) DO UPDATE`). A snapshot older (`fetched_at`) than the stored
    /// one is ignored. Both teams must be stored, else [`StoreError::UnknownTeam`](crate::StoreError::UnknownTeam).
    async fn upsert_games(&self, games: &[GameRow]) -> Result<UpsertOutcome>;

    /// Inserts or updates plays keyed by `(game_id, play_id)`: a re-delivered play with the same content changes
    /// nothing, a correction (same key, different content) replaces the row and bumps its `revision`, a delivery
    /// older (`fetched_at`) than the stored one is ignored, a row whose `change` is
    /// [`PlayChange::Delete`](crate::PlayChange::Delete) makes the play a tombstone. Each play the write changes
    /// gets the next change number of its game ([`PlayRow::change_number`]). The game must be stored, else
    /// [`StoreError::UnknownGame`](crate::StoreError::UnknownGame).
    async fn upsert_plays(&self, plays: &[PlayRow]) -> Result<UpsertOutcome> {
        Ok(self.upsert_plays_with_changes(plays).await?.outcome)
    }

    /// [`upsert_plays`](Self::upsert_plays), also naming each play the write inserted or changed, with the
    /// revision it now has: what a push to live clients needs, since a re-delivered or stale play changes
    /// nothing and is not named. The order of [`PlaysWritten::changed`] is unspecified.
    async fn upsert_plays_with_changes(&self, plays: &[PlayRow]) -> Result<PlaysWritten>;

    /// Inserts or updates game states keyed by `game_id`, with both sides' counters. A state older
    /// (`updated_at`) than the stored one is ignored. The game must be stored.
    async fn upsert_game_states(&self, states: &[GameStateRow]) -> Result<UpsertOutcome>;

    /// Teams, optionally of one league, ordered by league and id.
    async fn teams(&self, league: Option<&str>) -> Result<Vec<TeamRow>>;

    /// Games matching the query, ordered by start time then id.
    async fn games(&self, query: &GamesQuery) -> Result<Vec<GameRow>>;

    /// One game.
    async fn game(&self, game_id: &str) -> Result<Option<GameRow>>;

    /// The plays of a game in game order (`game_order`, then `sequence`), filtered by the query. Deleted plays are
    /// not returned.
    async fn plays(&self, game_id: &str, query: &PlaysQuery) -> Result<Vec<PlayRow>>;

    /// The last `n` plays of a game, in game order (the latest last). Deleted plays are not returned.
    async fn last_plays(&self, game_id: &str, n: u32) -> Result<Vec<PlayRow>>;

    /// A keyset page, in game order, of the game's plays as of a change number (see [`PlaysPageQuery`]).
    async fn plays_page(&self, game_id: &str, query: &PlaysPageQuery) -> Result<PlaysPage>;

    /// The change feed: every play of the game whose change number is above `after` (inserted, corrected or
    /// deleted since; a deleted one as its tombstone, [`PlayRow::is_deleted`]), each once in its latest version,
    /// in change order; at most `limit` of them (the first ones).
    async fn play_changes(&self, game_id: &str, after: i64, limit: Option<u32>) -> Result<Vec<PlayRow>>;

    /// The game's change number: the highest a play of it has (0 before the first), `None` for a game not
    /// stored. Every change numbered up to it is committed and visible.
    async fn change_number(&self, game_id: &str) -> Result<Option<i64>>;

    /// The state of a game.
    async fn game_state(&self, game_id: &str) -> Result<Option<GameStateRow>>;

    /// Checks that the database answers (for health checks).
    async fn ping(&self) -> Result<()>;
}

/// A shared repository is a repository: lets a process pick its store at run time (`Arc<dyn Repository>`) and
/// still wrap it, e.g. in a [`CachedRepository`](crate::cache::CachedRepository).
#[async_trait]
impl<T: Repository + ?Sized> Repository for std::sync::Arc<T> {
    async fn upsert_teams(&self, teams: &[TeamRow]) -> Result<UpsertOutcome> {
        (**self).upsert_teams(teams).await
    }
    async fn upsert_games(&self, games: &[GameRow]) -> Result<UpsertOutcome> {
        (**self).upsert_games(games).await
    }
    async fn upsert_plays(&self, plays: &[PlayRow]) -> Result<UpsertOutcome> {
        (**self).upsert_plays(plays).await
    }
    async fn upsert_plays_with_changes(&self, plays: &[PlayRow]) -> Result<PlaysWritten> {
        (**self).upsert_plays_with_changes(plays).await
    }
    async fn upsert_game_states(&self, states: &[GameStateRow]) -> Result<UpsertOutcome> {
        (**self).upsert_game_states(states).await
    }
    async fn teams(&self, league: Option<&str>) -> Result<Vec<TeamRow>> {
        (**self).teams(league).await
    }
    async fn games(&self, query: &GamesQuery) -> Result<Vec<GameRow>> {
        (**self).games(query).await
    }
    async fn game(&self, game_id: &str) -> Result<Option<GameRow>> {
        (**self).game(game_id).await
    }
    async fn plays(&self, game_id: &str, query: &PlaysQuery) -> Result<Vec<PlayRow>> {
        (**self).plays(game_id, query).await
    }
    async fn last_plays(&self, game_id: &str, n: u32) -> Result<Vec<PlayRow>> {
        (**self).last_plays(game_id, n).await
    }
    async fn plays_page(&self, game_id: &str, query: &PlaysPageQuery) -> Result<PlaysPage> {
        (**self).plays_page(game_id, query).await
    }
    async fn play_changes(&self, game_id: &str, after: i64, limit: Option<u32>) -> Result<Vec<PlayRow>> {
        (**self).play_changes(game_id, after, limit).await
    }
    async fn change_number(&self, game_id: &str) -> Result<Option<i64>> {
        (**self).change_number(game_id).await
    }
    async fn game_state(&self, game_id: &str) -> Result<Option<GameStateRow>> {
        (**self).game_state(game_id).await
    }
    async fn ping(&self) -> Result<()> {
        (**self).ping().await
    }
}

/// Keeps the last row of each key, in the order of first appearance, and counts the dropped duplicates.
pub(crate) fn dedup_last<'a, T, K: Eq + std::hash::Hash>(rows: &'a [T], key: impl Fn(&'a T) -> K) -> (Vec<&'a T>, u64) {
    let mut index = std::collections::HashMap::with_capacity(rows.len());
    let mut out: Vec<&T> = Vec::with_capacity(rows.len());
    for row in rows {
        match index.entry(key(row)) {
            std::collections::hash_map::Entry::Occupied(e) => out[*e.get()] = row,
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(row);
            }
        }
    }
    let dropped = (rows.len() - out.len()) as u64;
    (out, dropped)
}

#[cfg(test)]
mod tests {
    use super::dedup_last;

    #[test]
    fn dedup_keeps_the_last_version_at_the_first_position() {
        let rows = [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("b", 2)];
        let (out, dropped) = dedup_last(&rows, |r| r.0);
        assert_eq!(out, vec![&("a", 2), &("b", 2), &("c", 1)]);
        assert_eq!(dropped, 2);
    }
}
