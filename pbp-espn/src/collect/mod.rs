//! Collectors: a scoreboard poller that discovers games, and one play-by-play collector per game.
//!
//! They deliver [`CollectorEvent`]s through a [`tokio::sync::mpsc::Sender`] and stop on a
//! [`tokio_util::sync::CancellationToken`]; they know nothing of where the events go (the ingest pipeline writes them to topics).
//! Fetch failures are logged and retried at the next tick: the client already retried, and its circuit
//! breaker keeps a failing endpoint from being hammered. A `200` whose body does not parse is also retried at the
//! next tick, but its bytes are not lost: they are delivered as [`CollectorEvent::Undecodable`] (for a
//! dead-letter queue), once per run of identical bodies, and the game goes on with the next good fetch.

mod plays;
mod scoreboard;

use std::time::Duration;

use bytes::Bytes;

pub use plays::PlayCollector;
pub use scoreboard::ScoreboardPoller;

use crate::League;
use crate::diff::PlayChange;
use crate::model::Scoreboard;

/// Where a play-by-play collector reads a game's plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlaySource {
    /// The site summary (default).
    #[default]
    Summary,
    /// The cdn play-by-play page.
    CdnPlayByPlay,
}

/// Collector settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    /// The league polled.
    pub league: League,
    /// Scoreboard poll interval when no game is live (default 30 s).
    pub scoreboard_interval: Duration,
    /// Scoreboard poll interval while any game is live (default 10 s).
    pub scoreboard_live_interval: Duration,
    /// Play-by-play poll interval per game (default 5 s).
    pub plays_interval: Duration,
    /// Scoreboard date `YYYYMMDD`; `None` is ESPN's "today".
    pub date: Option<String>,
    /// Where plays are read.
    pub play_source: PlaySource,
    /// A game collector gives up after this many consecutive 4xx answers (an unknown game id; default 10).
    pub give_up_after_client_errors: u32,
    /// A play absent from this many consecutive snapshots of its game is delivered as deleted
    /// ([`ChangeKind::Deleted`](crate::ChangeKind::Deleted); default [`DEFAULT_DELETE_AFTER`](crate::DEFAULT_DELETE_AFTER),
    /// 2; 0 never deletes).
    pub delete_after_absent_snapshots: u32,
}

impl CollectorConfig {
    /// Default intervals for `league`.
    pub fn new(league: League) -> CollectorConfig {
        CollectorConfig {
            league,
            scoreboard_interval: Duration::from_secs(30),
            scoreboard_live_interval: Duration::from_secs(10),
            plays_interval: Duration::from_secs(5),
            date: None,
            play_source: PlaySource::Summary,
            give_up_after_client_errors: 10,
            delete_after_absent_snapshots: crate::diff::DEFAULT_DELETE_AFTER,
        }
    }
}

/// What the collectors deliver.
#[derive(Debug, Clone, PartialEq)]
pub enum CollectorEvent {
    /// A scoreboard that differs from the previous poll (a `304` is not delivered).
    Scoreboard {
        /// The league.
        league: League,
        /// The scoreboard.
        scoreboard: Box<Scoreboard>,
    },
    /// New, corrected and deleted plays of one game from one fetch.
    Plays(PlayBatch),
    /// A game collector stopped after the final whistle and one last fetch.
    GameFinished {
        /// The league.
        league: League,
        /// The game.
        game_id: String,
    },
    /// A fetch answered `200` with a body that does not parse (an HTML error page, a truncated or changed
    /// document). Delivered so the bytes reach a dead-letter queue with the reason instead of only a log line;
    /// the collector keeps polling, and the next good body continues the game as if nothing happened. The same
    /// bytes fetched again before a good body (an unchanged bad document, or a `304` pointing back to it) are
    /// logged but not delivered again; a bad body after a good one is delivered again.
    Undecodable {
        /// The league.
        league: League,
        /// The game, for a play-by-play fetch; `None` for the scoreboard.
        game_id: Option<String>,
        /// The URL fetched.
        url: String,
        /// The body as received (decompressed).
        body: Bytes,
        /// Why it could not be parsed (the parse error with its JSON path).
        reason: String,
    },
}

/// The changes of one play-by-play fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayBatch {
    /// The league.
    pub league: League,
    /// The game.
    pub game_id: String,
    /// New and updated plays in feed order, then deleted plays (each with its last emitted version).
    pub changes: Vec<PlayChange>,
    /// Play ids that disappeared from the feed in this fetch (deleted once absent long enough; see
    /// [`CollectorConfig::delete_after_absent_snapshots`]).
    pub vanished: Vec<String>,
}

/// Why a collector stopped other than by cancellation.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The receiver of the events was dropped.
    #[error("the collector event receiver is gone")]
    ChannelClosed,
    /// The game kept answering 4xx.
    #[error("game {game_id} gave up after {attempts} consecutive client errors: {last}")]
    GaveUp {
        /// The game.
        game_id: String,
        /// Consecutive client errors.
        attempts: u32,
        /// The last error.
        last: String,
    },
}

/// Remembers the last undecodable body delivered, so that polling an unchanged bad document does not deliver it
/// on every tick.
#[derive(Debug, Default)]
pub(crate) struct UndecodableFilter {
    last: Option<Bytes>,
}

impl UndecodableFilter {
    /// True when `body` should be delivered: it differs from the last undecodable body since the last good one.
    /// Bytes compare by content; only bad bodies are compared, and a bad run holds one of them.
    pub(crate) fn admit(&mut self, body: &Bytes) -> bool {
        if self.last.as_ref() == Some(body) {
            return false;
        }
        self.last = Some(body.clone());
        true
    }

    /// A good body arrived: the next bad one is a new incident.
    pub(crate) fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bad_body_is_admitted_once_per_incident() {
        let mut filter = UndecodableFilter::default();
        let html = Bytes::from_static(b"<html>");
        assert!(filter.admit(&html));
        assert!(!filter.admit(&html.clone()), "unchanged");
        assert!(!filter.admit(&Bytes::from_static(b"<html>")), "same content, other buffer");
        assert!(filter.admit(&Bytes::from_static(b"{\"head")), "other bytes");
        filter.reset();
        assert!(filter.admit(&Bytes::from_static(b"{\"head")), "after a good body: a new incident");
    }
}
