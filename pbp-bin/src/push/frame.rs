//! The messages sent to WebSocket clients, serialized once.
//!
//! Every message is a JSON text frame with a `type`:
//! * `snapshot`: `{"type":"snapshot","game_id":..,"reason":"connect"|"lagged","state":STATE|null,"plays":[PLAY..]}`,
//!   first on every connection, and again after the session fell behind;
//! * `play`: `{"type":"play","game_id":..,"play":PLAY}`, a new play (`revision` 1) or a correction (`revision`
//!   above 1, the same `id`);
//! * `delete`: `{"type":"delete","game_id":..,"play":{"id":..,"sequence":..,"change_number":..}}`, a play the
//!   feed deleted;
//! * `state`: `{"type":"state","game_id":..,"state":STATE}`, the game's state after a change.
//!
//! `PLAY` and `STATE` are the views of the REST API (`GET /v1/games/{id}/plays`, the `state` of
//! `GET /v1/games/{id}`). Play and delete frames of a game are published in change-number order.

use std::sync::Arc;

use pbp_store::{GameStateRow, PlayRow};
use serde::Serialize;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::http::views::{DeletedView, PlayView, StateView};

/// One message for the sessions of a game: its text, serialized once and shared (cloning is a reference
/// count), and what a session needs to skip what its snapshot already held.
#[derive(Debug, Clone)]
pub(crate) struct Frame(Arc<FrameData>);

#[derive(Debug)]
struct FrameData {
    kind: FrameKind,
    text: Utf8Bytes,
}

/// What a frame carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FrameKind {
    /// A play as stored after the write.
    Play { play_id: String, sequence: i64, revision: i64, change_number: i64 },
    /// A play deleted by the write.
    Delete { play_id: String, change_number: i64 },
    /// A game state as stored after the write.
    State(Box<GameStateRow>),
}

impl Frame {
    /// A `play` frame for `row`, which the store now holds at `revision` and `change_number`.
    pub(crate) fn play(row: &PlayRow, revision: i64, change_number: i64) -> Result<Self, serde_json::Error> {
        let mut view = PlayView::from(row.clone());
        view.revision = revision;
        view.change_number = change_number;
        let text = serde_json::to_string(&Message::Play { game_id: &row.game_id, play: view })?;
        let kind = FrameKind::Play { play_id: row.play_id.clone(), sequence: row.sequence, revision, change_number };
        Ok(Self(Arc::new(FrameData { kind, text: text.into() })))
    }

    /// A `delete` frame for `row`, which the store now holds as a tombstone numbered `change_number`.
    pub(crate) fn delete(row: &PlayRow, change_number: i64) -> Result<Self, serde_json::Error> {
        let play = DeletedView { id: row.play_id.clone(), sequence: row.sequence, change_number };
        let text = serde_json::to_string(&Message::Delete { game_id: &row.game_id, play })?;
        let kind = FrameKind::Delete { play_id: row.play_id.clone(), change_number };
        Ok(Self(Arc::new(FrameData { kind, text: text.into() })))
    }

    /// A `state` frame for `row`.
    pub(crate) fn state(row: &GameStateRow) -> Result<Self, serde_json::Error> {
        let text =
            serde_json::to_string(&Message::State { game_id: &row.game_id, state: StateView::from(row.clone()) })?;
        Ok(Self(Arc::new(FrameData { kind: FrameKind::State(Box::new(row.clone())), text: text.into() })))
    }

    pub(crate) fn kind(&self) -> &FrameKind {
        &self.0.kind
    }

    /// The frame's text (a shared buffer: every session sends the same bytes).
    pub(crate) fn text(&self) -> Utf8Bytes {
        self.0.text.clone()
    }
}

/// Why a snapshot is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SnapshotReason {
    /// The session just opened.
    Connect,
    /// The session fell behind its game's channel: what it missed is replaced by this snapshot.
    Lagged,
}

/// A `snapshot` message: the change number the client holds the game at once it has applied the snapshot, the
/// state, `plays` (in game order) and the plays `deleted` (tombstones; only in snapshots of changes).
pub(crate) fn snapshot_text(
    game_id: &str,
    reason: SnapshotReason,
    change_number: i64,
    state: Option<&GameStateRow>,
    plays: &[PlayRow],
    deleted: &[PlayRow],
) -> Result<Utf8Bytes, serde_json::Error> {
    let message = Message::Snapshot {
        game_id,
        reason,
        change_number,
        state: state.cloned().map(StateView::from),
        plays: plays.iter().cloned().map(PlayView::from).collect(),
        deleted: deleted.iter().map(DeletedView::from).collect(),
    };
    Ok(serde_json::to_string(&message)?.into())
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Message<'a> {
    Snapshot {
        game_id: &'a str,
        reason: SnapshotReason,
        change_number: i64,
        state: Option<StateView>,
        plays: Vec<PlayView>,
        deleted: Vec<DeletedView>,
    },
    Play {
        game_id: &'a str,
        play: PlayView,
    },
    Delete {
        game_id: &'a str,
        play: DeletedView,
    },
    State {
        game_id: &'a str,
        state: StateView,
    },
}
