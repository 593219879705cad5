//! A repository that pushes what it stores.

use std::sync::Arc;

use async_trait::async_trait;
use pbp_store::{
    GameRow, GameStateRow, GamesQuery, PlayRow, PlaysPage, PlaysPageQuery, PlaysQuery, PlaysWritten, Repository,
    TeamRow, UpsertOutcome,
};

use super::hub::Hub;

type Result<T> = std::result::Result<T, pbp_store::StoreError>;

/// Wraps the store the serve pipelines write into: after a play or state write returns (committed, the cache
/// invalidated), what it inserted or changed goes to the [`Hub`]. So a session that loads a snapshot after
/// seeing a frame finds that frame's row stored, and a write that fails pushes nothing.
pub(crate) struct PublishingRepository {
    inner: Arc<dyn Repository>,
    hub: Arc<Hub>,
}

impl PublishingRepository {
    pub(crate) fn new(inner: Arc<dyn Repository>, hub: Arc<Hub>) -> Self {
        Self { inner, hub }
    }
}

#[async_trait]
impl Repository for PublishingRepository {
    async fn upsert_teams(&self, teams: &[TeamRow]) -> Result<UpsertOutcome> {
        self.inner.upsert_teams(teams).await
    }

    async fn upsert_games(&self, games: &[GameRow]) -> Result<UpsertOutcome> {
        self.inner.upsert_games(games).await
    }

    async fn upsert_plays_with_changes(&self, plays: &[PlayRow]) -> Result<PlaysWritten> {
        let written = self.inner.upsert_plays_with_changes(plays).await?;
        self.hub.plays_written(plays, &written.changed);
        Ok(written)
    }

    async fn upsert_game_states(&self, states: &[GameStateRow]) -> Result<UpsertOutcome> {
        let outcome = self.inner.upsert_game_states(states).await?;
        if outcome.inserted + outcome.updated > 0 {
            self.hub.states_written(states);
        }
        Ok(outcome)
    }

    async fn teams(&self, league: Option<&str>) -> Result<Vec<TeamRow>> {
        self.inner.teams(league).await
    }

    async fn games(&self, query: &GamesQuery) -> Result<Vec<GameRow>> {
        self.inner.games(query).await
    }

    async fn game(&self, game_id: &str) -> Result<Option<GameRow>> {
        self.inner.game(game_id).await
    }

    async fn plays(&self, game_id: &str, query: &PlaysQuery) -> Result<Vec<PlayRow>> {
        self.inner.plays(game_id, query).await
    }

    async fn last_plays(&self, game_id: &str, n: u32) -> Result<Vec<PlayRow>> {
        self.inner.last_plays(game_id, n).await
    }

    async fn plays_page(&self, game_id: &str, query: &PlaysPageQuery) -> Result<PlaysPage> {
        self.inner.plays_page(game_id, query).await
    }

    async fn play_changes(&self, game_id: &str, after: i64, limit: Option<u32>) -> Result<Vec<PlayRow>> {
        self.inner.play_changes(game_id, after, limit).await
    }

    async fn change_number(&self, game_id: &str) -> Result<Option<i64>> {
        self.inner.change_number(game_id).await
    }

    async fn game_state(&self, game_id: &str) -> Result<Option<GameStateRow>> {
        self.inner.game_state(game_id).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}
