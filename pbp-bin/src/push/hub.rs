//! One broadcast channel per watched game.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use pbp_store::{GameStateRow, PlayRevision, PlayRow};
use tokio::sync::broadcast;

use super::frame::Frame;

/// The games that have sessions, each with its channel.
///
/// Backpressure: publishing never waits. Each game's channel holds the last `capacity` frames; a session reads
/// at its own pace and, when it falls more than `capacity` frames behind, learns how many it lost
/// (`broadcast::error::RecvError::Lagged`) instead of holding the others back or growing memory. What it does
/// then (a fresh snapshot, or closing) is the session's policy.
#[derive(Debug)]
pub(crate) struct Hub {
    games: Mutex<HashMap<String, Channel>>,
    capacity: usize,
}

#[derive(Debug)]
struct Channel {
    sender: broadcast::Sender<Frame>,
    /// The last state pushed, so that a state the store did not change is not pushed again.
    last_state: Option<GameStateRow>,
}

impl Hub {
    /// A hub whose channels hold `capacity` frames each (at least 1).
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self { games: Mutex::new(HashMap::new()), capacity: capacity.max(1) })
    }

    fn games(&self) -> std::sync::MutexGuard<'_, HashMap<String, Channel>> {
        self.games.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts receiving the frames of `game_id` published from now on.
    pub(crate) fn subscribe(self: &Arc<Self>, game_id: &str) -> Subscription {
        let mut games = self.games();
        let channel = games
            .entry(game_id.to_owned())
            .or_insert_with(|| Channel { sender: broadcast::channel(self.capacity).0, last_state: None });
        Subscription { receiver: channel.sender.subscribe(), hub: self.clone(), game_id: game_id.to_owned() }
    }

    /// Number of games with sessions.
    #[cfg(test)]
    pub(crate) fn watched_games(&self) -> usize {
        self.games().len()
    }

    /// Pushes the plays a write inserted, changed or deleted: `changed` names them (with their revisions and
    /// change numbers), `rows` is the batch written. A key written twice in the batch is pushed once, as its
    /// last version (the one stored); frames go out in change-number order, which is commit order: a session
    /// that has received change `N` has received every earlier one published after it subscribed.
    pub(crate) fn plays_written(&self, rows: &[PlayRow], changed: &[PlayRevision]) {
        if changed.is_empty() {
            return;
        }
        let games = self.games();
        let mut revisions: HashMap<(&str, &str), &PlayRevision> = changed
            .iter()
            .filter(|c| games.contains_key(&c.game_id))
            .map(|c| ((c.game_id.as_str(), c.play_id.as_str()), c))
            .collect();
        if revisions.is_empty() {
            return;
        }
        // The last version of each key is the one stored.
        let mut pushed: Vec<(&PlayRow, &PlayRevision)> = Vec::with_capacity(revisions.len());
        for row in rows.iter().rev() {
            if let Some(revision) = revisions.remove(&(row.game_id.as_str(), row.play_id.as_str())) {
                pushed.push((row, revision));
            }
        }
        pushed.sort_by_key(|(_, written)| written.change_number);
        for (row, written) in pushed {
            let Some(channel) = games.get(&row.game_id) else { continue };
            let frame = if written.deleted {
                Frame::delete(row, written.change_number)
            } else {
                Frame::play(row, written.revision, written.change_number)
            };
            match frame {
                // No receiver left is fine: the last session just went.
                Ok(frame) => drop(channel.sender.send(frame)),
                Err(error) => {
                    tracing::error!(%error, game_id = row.game_id, play_id = row.play_id, "Cannot encode a play frame.")
                }
            }
        }
    }

    /// Pushes the states a write stored: per game, the last state of the batch, unless it is the one pushed
    /// last or older than it.
    pub(crate) fn states_written(&self, states: &[GameStateRow]) {
        let mut games = self.games();
        if games.is_empty() {
            return;
        }
        let mut last: HashMap<&str, &GameStateRow> = HashMap::new();
        for state in states.iter().filter(|s| games.contains_key(&s.game_id)) {
            last.insert(&state.game_id, state);
        }
        for state in last.into_values() {
            let Some(channel) = games.get_mut(&state.game_id) else { continue };
            if !channel.last_state.as_ref().is_none_or(|previous| supersedes(state, previous)) {
                continue;
            }
            match Frame::state(state) {
                Ok(frame) => {
                    channel.last_state = Some(state.clone());
                    drop(channel.sender.send(frame));
                }
                Err(error) => tracing::error!(%error, game_id = state.game_id, "Cannot encode a state frame."),
            }
        }
    }

    fn unsubscribe(&self, game_id: &str) {
        let mut games = self.games();
        // The subscription being dropped still holds its receiver: one left means it was the last.
        if games.get(game_id).is_some_and(|c| c.sender.receiver_count() <= 1) {
            games.remove(game_id);
        }
    }
}

/// True when `next` is a newer version of a game's state than `previous`: later, or as late with other content
/// (two changes within one millisecond).
pub(crate) fn supersedes(next: &GameStateRow, previous: &GameStateRow) -> bool {
    next.updated_at > previous.updated_at || (next.updated_at == previous.updated_at && next != previous)
}

/// A session's place in its game's channel. Dropping it leaves the channel (and drops the channel with the
/// last session).
#[derive(Debug)]
pub(crate) struct Subscription {
    receiver: broadcast::Receiver<Frame>,
    hub: Arc<Hub>,
    game_id: String,
}

impl Subscription {
    /// The next frame; `Lagged(n)` when `n` frames were lost to falling behind (the next call continues with
    /// the oldest frame still held).
    pub(crate) async fn recv(&mut self) -> Result<Frame, broadcast::error::RecvError> {
        self.receiver.recv().await
    }

    /// The next queued frame, if one is queued now.
    pub(crate) fn try_recv(&mut self) -> Option<Frame> {
        self.receiver.try_recv().ok()
    }

    /// True when no frame is queued.
    #[cfg(test)]
    pub(crate) fn receiver_is_empty(&self) -> bool {
        self.receiver.is_empty()
    }

    /// Skips everything queued: the next frame is the next one published.
    pub(crate) fn skip_queued(&mut self) {
        self.receiver = self.receiver.resubscribe();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.game_id);
    }
}
