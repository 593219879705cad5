//! A [`Repository`] that reads through a [`Cache`] and invalidates it on every write.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Cache, EntryKind};
use crate::error::{CacheError, Result};
use crate::model::{
    GameRow, GameStateRow, GameStatus, GamesQuery, PlayRow, PlaysPage, PlaysPageQuery, PlaysQuery, PlaysWritten,
    TeamRow, UpsertOutcome,
};
use crate::repo::Repository;

/// Wraps a repository with a cache.
///
/// Reads look in the cache first and fill it on a miss; writes go to the repository, then drop the cache groups
/// the batch touched (when it changed anything). The cache is an optimisation: a cache error is logged and the
/// call falls back to the repository.
///
/// Groups and TTL kinds: `game:{id}` and `state:{id}` are [`EntryKind::Finished`] once the game is `post`, else
/// [`EntryKind::Live`]; `plays:{game}` (every plays query of one game) follows its game's status; `games`
/// (every games query) is [`EntryKind::List`]; `teams` is [`EntryKind::Reference`].
///
/// A reader that loaded a value from the store just before a write may put it into the cache after the write's
/// invalidation. So every write drops its groups a second time, [`REINVALIDATE_AFTER`] later (see
/// [`reinvalidate_after`](Self::reinvalidate_after)): such a stale entry then lives that long at most, not until
/// its TTL, unless the racing read itself took longer.
pub struct CachedRepository<R, C> {
    repo: R,
    cache: Arc<C>,
    reinvalidate_after: Option<Duration>,
}

/// How long after a write its cache groups are dropped again, by default.
pub const REINVALIDATE_AFTER: Duration = Duration::from_millis(500);

impl<R, C> std::fmt::Debug for CachedRepository<R, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedRepository").finish_non_exhaustive()
    }
}

impl<R: Repository, C: Cache + 'static> CachedRepository<R, C> {
    /// Wraps `repo` with `cache`.
    pub fn new(repo: R, cache: C) -> Self {
        Self { repo, cache: Arc::new(cache), reinvalidate_after: Some(REINVALIDATE_AFTER) }
    }

    /// Sets the delay of each write's second invalidation (`None`: only the one at once). Outside a Tokio
    /// runtime there is no second invalidation.
    #[must_use]
    pub fn reinvalidate_after(mut self, delay: Option<Duration>) -> Self {
        self.reinvalidate_after = delay;
        self
    }

    /// The wrapped repository.
    pub fn inner(&self) -> &R {
        &self.repo
    }

    /// The cache.
    pub fn cache(&self) -> &C {
        &self.cache
    }

    async fn cached<T: DeserializeOwned>(&self, key: &str, field: &str) -> Option<T> {
        let bytes = match self.cache.get(key, field).await {
            Ok(hit) => hit?,
            Err(e) => {
                tracing::warn!(key, field, error = %e, "cache read failed; reading the store");
                return None;
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(value) => Some(value),
            Err(source) => {
                let e = CacheError::Codec { operation: "decode", key: format!("{key}/{field}"), source };
                tracing::warn!(key, field, error = %e, "undecodable cache entry; reading the store");
                None
            }
        }
    }

    async fn fill<T: Serialize>(&self, key: &str, field: &str, value: &T, kind: EntryKind) {
        let bytes = match serde_json::to_vec(value) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(key, field, error = %e, "cannot encode a cache entry");
                return;
            }
        };
        if let Err(e) = self.cache.put(key, field, &bytes, kind).await {
            tracing::warn!(key, field, error = %e, "cache write failed");
        }
    }

    async fn invalidate(&self, outcome: &UpsertOutcome, keys: BTreeSet<String>) {
        if outcome.inserted + outcome.updated == 0 || keys.is_empty() {
            return;
        }
        let keys: Vec<String> = keys.into_iter().collect();
        if let Err(e) = self.cache.invalidate(&keys).await {
            tracing::warn!(keys = keys.len(), error = %e, "Cache invalidation failed (Redis keeps it for its next use).");
        }
        if let (Some(delay), Ok(runtime)) = (self.reinvalidate_after, tokio::runtime::Handle::try_current()) {
            let cache = self.cache.clone();
            runtime.spawn(async move {
                tokio::time::sleep(delay).await;
                if let Err(e) = cache.invalidate(&keys).await {
                    tracing::debug!(keys = keys.len(), error = %e, "second cache invalidation failed");
                }
            });
        }
    }

    async fn game_kind(&self, game_id: &str) -> Result<EntryKind> {
        Ok(match self.game(game_id).await? {
            Some(g) if g.status == GameStatus::Post => EntryKind::Finished,
            _ => EntryKind::Live,
        })
    }
}

fn status_kind(status: GameStatus) -> EntryKind {
    if status == GameStatus::Post { EntryKind::Finished } else { EntryKind::Live }
}

fn games_field(q: &GamesQuery) -> String {
    format!(
        "date={};status={};league={};limit={}",
        q.date.as_deref().unwrap_or(""),
        q.status.map_or("", |s| s.as_str()),
        q.league.as_deref().unwrap_or(""),
        q.limit.map_or(String::new(), |l| l.to_string()),
    )
}

fn plays_field(q: &PlaysQuery) -> String {
    format!(
        "since={};limit={}{}",
        q.since.map_or(String::new(), |s| s.to_string()),
        q.limit.map_or(String::new(), |l| l.to_string()),
        if q.corrections { ";corrections" } else { "" }
    )
}

#[async_trait]
impl<R: Repository, C: Cache + 'static> Repository for CachedRepository<R, C> {
    async fn upsert_teams(&self, teams: &[TeamRow]) -> Result<UpsertOutcome> {
        let outcome = self.repo.upsert_teams(teams).await?;
        self.invalidate(&outcome, BTreeSet::from(["teams".to_owned()])).await;
        Ok(outcome)
    }

    async fn upsert_games(&self, games: &[GameRow]) -> Result<UpsertOutcome> {
        let outcome = self.repo.upsert_games(games).await?;
        let mut keys: BTreeSet<String> = games.iter().map(|g| format!("game:{}", g.id)).collect();
        // A game's status decides the TTL of its plays: drop them too when it changes.
        keys.extend(games.iter().map(|g| format!("plays:{}", g.id)));
        keys.insert("games".to_owned());
        self.invalidate(&outcome, keys).await;
        Ok(outcome)
    }

    async fn upsert_plays_with_changes(&self, plays: &[PlayRow]) -> Result<PlaysWritten> {
        let written = self.repo.upsert_plays_with_changes(plays).await?;
        self.invalidate(&written.outcome, written.changed.iter().map(|p| format!("plays:{}", p.game_id)).collect())
            .await;
        Ok(written)
    }

    async fn upsert_game_states(&self, states: &[GameStateRow]) -> Result<UpsertOutcome> {
        let outcome = self.repo.upsert_game_states(states).await?;
        self.invalidate(&outcome, states.iter().map(|s| format!("state:{}", s.game_id)).collect()).await;
        Ok(outcome)
    }

    async fn teams(&self, league: Option<&str>) -> Result<Vec<TeamRow>> {
        let field = league.unwrap_or("*");
        if let Some(hit) = self.cached("teams", field).await {
            return Ok(hit);
        }
        let teams = self.repo.teams(league).await?;
        self.fill("teams", field, &teams, EntryKind::Reference).await;
        Ok(teams)
    }

    async fn games(&self, query: &GamesQuery) -> Result<Vec<GameRow>> {
        let field = games_field(query);
        if let Some(hit) = self.cached("games", &field).await {
            return Ok(hit);
        }
        let games = self.repo.games(query).await?;
        self.fill("games", &field, &games, EntryKind::List).await;
        Ok(games)
    }

    async fn game(&self, game_id: &str) -> Result<Option<GameRow>> {
        let key = format!("game:{game_id}");
        if let Some(hit) = self.cached::<GameRow>(&key, "row").await {
            return Ok(Some(hit));
        }
        let game = self.repo.game(game_id).await?;
        if let Some(g) = &game {
            self.fill(&key, "row", g, status_kind(g.status)).await;
        }
        Ok(game)
    }

    async fn plays(&self, game_id: &str, query: &PlaysQuery) -> Result<Vec<PlayRow>> {
        let key = format!("plays:{game_id}");
        let field = plays_field(query);
        if let Some(hit) = self.cached(&key, &field).await {
            return Ok(hit);
        }
        let kind = self.game_kind(game_id).await?;
        let plays = self.repo.plays(game_id, query).await?;
        self.fill(&key, &field, &plays, kind).await;
        Ok(plays)
    }

    async fn last_plays(&self, game_id: &str, n: u32) -> Result<Vec<PlayRow>> {
        let key = format!("plays:{game_id}");
        let field = format!("last={n}");
        if let Some(hit) = self.cached(&key, &field).await {
            return Ok(hit);
        }
        let kind = self.game_kind(game_id).await?;
        let plays = self.repo.last_plays(game_id, n).await?;
        self.fill(&key, &field, &plays, kind).await;
        Ok(plays)
    }

    /// Not cached here: a page is read once per client and position (the REST API keeps whole answers in the
    /// `plays:{game}` group itself), and a stale page must never reach a reader of the change feed.
    async fn plays_page(&self, game_id: &str, query: &PlaysPageQuery) -> Result<PlaysPage> {
        self.repo.plays_page(game_id, query).await
    }

    /// Not cached: see [`plays_page`](Self::plays_page).
    async fn play_changes(&self, game_id: &str, after: i64, limit: Option<u32>) -> Result<Vec<PlayRow>> {
        self.repo.play_changes(game_id, after, limit).await
    }

    /// Not cached: it moves with every play written, and it says what a reader may take as committed.
    async fn change_number(&self, game_id: &str) -> Result<Option<i64>> {
        self.repo.change_number(game_id).await
    }

    async fn game_state(&self, game_id: &str) -> Result<Option<GameStateRow>> {
        let key = format!("state:{game_id}");
        if let Some(hit) = self.cached::<GameStateRow>(&key, "row").await {
            return Ok(Some(hit));
        }
        let state = self.repo.game_state(game_id).await?;
        if let Some(s) = &state {
            self.fill(&key, "row", s, status_kind(s.status)).await;
        }
        Ok(state)
    }

    async fn ping(&self) -> Result<()> {
        self.repo.ping().await
    }
}
