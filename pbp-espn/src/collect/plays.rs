//! One game's play-by-play collector.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{CollectorConfig, CollectorError, CollectorEvent, PlayBatch, PlaySource, UndecodableFilter};
use crate::League;
use crate::client::{ClientError, EspnClient, Fetched};
use crate::diff::GameSnapshotState;
use crate::model::Summary;
use crate::normalize::normalize_summary;

/// Polls one game's plays every `plays_interval`, emits the snapshot diff, and stops after the final whistle
/// plus one last fetch (to pick up the last corrections).
#[derive(Debug)]
pub struct PlayCollector {
    client: Arc<EspnClient>,
    league: League,
    game_id: String,
    interval: Duration,
    source: PlaySource,
    give_up_after: u32,
    delete_after: u32,
    state: GameSnapshotState,
    events: mpsc::Sender<CollectorEvent>,
    undecodable: UndecodableFilter,
}

impl PlayCollector {
    /// A collector for `game_id` with an empty state.
    pub fn new(
        client: Arc<EspnClient>,
        config: &CollectorConfig,
        game_id: String,
        events: mpsc::Sender<CollectorEvent>,
    ) -> PlayCollector {
        PlayCollector {
            client,
            league: config.league,
            game_id,
            interval: config.plays_interval,
            source: config.play_source,
            give_up_after: config.give_up_after_client_errors.max(1),
            delete_after: config.delete_after_absent_snapshots,
            state: GameSnapshotState::new().with_delete_after(config.delete_after_absent_snapshots),
            events,
            undecodable: UndecodableFilter::default(),
        }
    }

    /// Starts from a restored state (see [`GameSnapshotState::restore`]) so a restart re-emits nothing. The
    /// collector's deletion rule ([`CollectorConfig::delete_after_absent_snapshots`]) applies to it.
    pub fn with_state(mut self, state: GameSnapshotState) -> PlayCollector {
        self.state = state.with_delete_after(self.delete_after);
        self
    }

    /// Runs until the game is over (then returns its final state) or `cancel` fires (returns the state so far).
    ///
    /// Over means: a fetch after the one that showed the final whistle (for the last corrections), and no play
    /// missing from the feed that a few more fetches would delete; those are made, at most
    /// `delete_after_absent_snapshots` of them, so that a play ESPN removes at the end is deleted too.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<GameSnapshotState, CollectorError> {
        let mut final_seen = false;
        let mut fetches_after_final: u32 = 0;
        let mut client_errors = 0;
        loop {
            let fetched = tokio::select! {
                _ = cancel.cancelled() => return Ok(self.state),
                fetched = self.fetch() => fetched,
            };
            match fetched {
                Ok(fetched) => {
                    client_errors = 0;
                    self.undecodable.reset();
                    let is_final = game_is_final(&fetched.value);
                    // A 304 is the same snapshot again. After the final whistle it counts as one more snapshot
                    // without the plays missing from it, so that a play removed at the end is deleted. Before,
                    // it does not: a cache can serve an older copy that lacks the latest plays, and the 304 for
                    // that copy's ETag would make two snapshots of one stale document, deleting real plays.
                    if !fetched.not_modified || (final_seen && self.state.pending_deletions() > 0) {
                        self.emit(&fetched.value).await?;
                    }
                    if final_seen {
                        fetches_after_final += 1;
                    }
                    let deletions_pending =
                        self.state.pending_deletions() > 0 && fetches_after_final <= self.delete_after;
                    if final_seen && !deletions_pending {
                        tracing::info!(game_id = %self.game_id, league = %self.league, plays = self.state.len(), "Game collected.");
                        let finished =
                            CollectorEvent::GameFinished { league: self.league, game_id: self.game_id.clone() };
                        self.events.send(finished).await.map_err(|_| CollectorError::ChannelClosed)?;
                        return Ok(self.state);
                    }
                    final_seen |= is_final;
                }
                Err(ClientError::Status { status, .. }) if (400..500).contains(&status) && status != 429 => {
                    client_errors += 1;
                    tracing::warn!(game_id = %self.game_id, status, client_errors, "Play-by-play fetch refused.");
                    if client_errors >= self.give_up_after {
                        return Err(CollectorError::GaveUp {
                            game_id: self.game_id,
                            attempts: client_errors,
                            last: format!("HTTP {status}"),
                        });
                    }
                }
                Err(ClientError::Decode { url, source, body, .. }) => {
                    // The service answered 200: the run of refusals, if any, is over.
                    client_errors = 0;
                    self.deliver_undecodable(url, body, source.to_string()).await?;
                }
                Err(error) => tracing::warn!(%error, game_id = %self.game_id, "Play-by-play fetch failed."),
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(self.state),
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    async fn fetch(&self) -> Result<Fetched<Summary>, ClientError> {
        match self.source {
            PlaySource::Summary => self.client.summary(self.league, &self.game_id).await,
            PlaySource::CdnPlayByPlay => {
                let page = self.client.cdn_play_by_play(self.league, &self.game_id).await?;
                Ok(Fetched { value: page.value.game_package, not_modified: page.not_modified })
            }
        }
    }

    async fn deliver_undecodable(&mut self, url: String, body: Bytes, reason: String) -> Result<(), CollectorError> {
        if !self.undecodable.admit(&body) {
            tracing::debug!(game_id = %self.game_id, %url, bytes = body.len(), "Same undecodable body again.");
            return Ok(());
        }
        let bytes = body.len();
        tracing::warn!(error = %reason, game_id = %self.game_id, %url, bytes, "Undecodable play-by-play delivered.");
        let event =
            CollectorEvent::Undecodable { league: self.league, game_id: Some(self.game_id.clone()), url, body, reason };
        self.events.send(event).await.map_err(|_| CollectorError::ChannelClosed)
    }

    async fn emit(&mut self, summary: &Summary) -> Result<(), CollectorError> {
        let (_, plays) = normalize_summary(summary, Some(self.league));
        let diff = self.state.apply(plays);
        if !diff.duplicates.is_empty() {
            tracing::warn!(game_id = %self.game_id, duplicates = ?diff.duplicates, "Duplicate play ids in one snapshot.");
        }
        if !diff.vanished.is_empty() {
            tracing::warn!(game_id = %self.game_id, vanished = ?diff.vanished, "Plays vanished from the feed.");
        }
        let deleted: Vec<&str> = diff
            .changes
            .iter()
            .filter(|c| c.kind == crate::diff::ChangeKind::Deleted)
            .map(|c| c.play.play_id.as_str())
            .collect();
        if !deleted.is_empty() {
            tracing::info!(game_id = %self.game_id, ?deleted, "Plays deleted from the feed.");
        }
        if diff.changes.is_empty() && diff.vanished.is_empty() {
            return Ok(());
        }
        let late = diff.changes.iter().filter(|c| c.late_insert).count();
        tracing::debug!(game_id = %self.game_id, changes = diff.changes.len(), late, "Plays changed.");
        let batch = PlayBatch {
            league: self.league,
            game_id: self.game_id.clone(),
            changes: diff.changes,
            vanished: diff.vanished,
        };
        self.events.send(CollectorEvent::Plays(batch)).await.map_err(|_| CollectorError::ChannelClosed)
    }
}

fn game_is_final(summary: &Summary) -> bool {
    summary.header.competition().and_then(|c| c.status.as_ref()).is_some_and(|status| status.is_final())
}
