//! The scoreboard poller: discovers games and runs one [`PlayCollector`] per game.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{CollectorConfig, CollectorError, CollectorEvent, PlayCollector, UndecodableFilter};
use crate::client::{ClientError, EspnClient};
use crate::diff::GameSnapshotState;

/// Polls the scoreboard (every `scoreboard_interval`, or `scoreboard_live_interval` while a game is live),
/// delivers each changed scoreboard, and starts a play collector for every game that is live or final and not
/// yet collected in this run. Games not started yet are left alone until they tip off.
#[derive(Debug)]
pub struct ScoreboardPoller {
    client: Arc<EspnClient>,
    config: CollectorConfig,
    events: mpsc::Sender<CollectorEvent>,
    restored: HashMap<String, GameSnapshotState>,
}

impl ScoreboardPoller {
    /// A poller for `config.league`.
    pub fn new(client: Arc<EspnClient>, config: CollectorConfig, events: mpsc::Sender<CollectorEvent>) -> Self {
        ScoreboardPoller { client, config, events, restored: HashMap::new() }
    }

    /// Per-game states rebuilt after a restart (game id → state); a game collector starts from its state.
    pub fn with_restored_states(mut self, states: HashMap<String, GameSnapshotState>) -> Self {
        self.restored = states;
        self
    }

    /// Runs until `cancel` fires (then stops every game collector and waits for them) or the receiver is gone.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), CollectorError> {
        let league = self.config.league;
        let mut collectors: JoinSet<(String, Result<GameSnapshotState, CollectorError>)> = JoinSet::new();
        let mut running: HashSet<String> = HashSet::new();
        let mut collected: HashSet<String> = HashSet::new();
        let children = cancel.child_token();
        // Remembered across polls so that a failed poll keeps the live cadence.
        let mut any_live = false;
        let mut undecodable = UndecodableFilter::default();
        let result = loop {
            // A fetch can take long (retries with backoff, a slow server): cancellation does not wait for it.
            let polled = tokio::select! {
                _ = cancel.cancelled() => break Ok(()),
                polled = self.client.scoreboard(league, self.config.date.as_deref()) => polled,
            };
            match polled {
                Ok(fetched) => {
                    undecodable.reset();
                    let board = fetched.value;
                    any_live = board.events.iter().any(|event| event.is_live());
                    let starting: Vec<(String, bool)> = board
                        .events
                        .iter()
                        .filter(|event| event.is_live() || event.is_final())
                        .filter(|event| !running.contains(&event.id) && !collected.contains(&event.id))
                        .map(|event| (event.id.clone(), event.is_live()))
                        .collect();
                    // The scoreboard goes out before the plays of the games it starts: it names their teams.
                    if !fetched.not_modified {
                        let event = CollectorEvent::Scoreboard { league, scoreboard: Box::new(board) };
                        if self.events.send(event).await.is_err() {
                            break Err(CollectorError::ChannelClosed);
                        }
                    }
                    for (game_id, live) in starting {
                        tracing::info!(%game_id, %league, live, "Collecting game.");
                        let mut collector = PlayCollector::new(
                            Arc::clone(&self.client),
                            &self.config,
                            game_id.clone(),
                            self.events.clone(),
                        );
                        if let Some(state) = self.restored.remove(&game_id) {
                            collector = collector.with_state(state);
                        }
                        running.insert(game_id.clone());
                        let token = children.clone();
                        collectors.spawn(async move { (game_id, collector.run(token).await) });
                    }
                }
                Err(ClientError::Decode { url, source, body, .. }) => {
                    if undecodable.admit(&body) {
                        let bytes = body.len();
                        tracing::warn!(error = %source, %league, %url, bytes, "Undecodable scoreboard delivered.");
                        let reason = source.to_string();
                        let event = CollectorEvent::Undecodable { league, game_id: None, url, body, reason };
                        if self.events.send(event).await.is_err() {
                            break Err(CollectorError::ChannelClosed);
                        }
                    } else {
                        tracing::debug!(%league, %url, bytes = body.len(), "Same undecodable scoreboard again.");
                    }
                }
                Err(error) => tracing::warn!(%error, %league, "Scoreboard poll failed."),
            }
            let interval =
                if any_live { self.config.scoreboard_live_interval } else { self.config.scoreboard_interval };
            let wake = tokio::time::Instant::now() + interval;
            let stop = loop {
                tokio::select! {
                    _ = cancel.cancelled() => break Some(Ok(())),
                    _ = tokio::time::sleep_until(wake) => break None,
                    Some(joined) = collectors.join_next(), if !collectors.is_empty() => {
                        match joined {
                            Ok((game_id, outcome)) => {
                                running.remove(&game_id);
                                collected.insert(game_id.clone());
                                match outcome {
                                    Ok(_) => {}
                                    Err(CollectorError::ChannelClosed) => break Some(Err(CollectorError::ChannelClosed)),
                                    Err(error) => tracing::warn!(%error, %game_id, "Game collector gave up."),
                                }
                            }
                            Err(error) => tracing::error!(%error, "Game collector task failed."),
                        }
                    }
                }
            };
            if let Some(result) = stop {
                break result;
            }
        };
        children.cancel();
        while collectors.join_next().await.is_some() {}
        result
    }
}
