//! One WebSocket session: a snapshot, then its game's frames as they are published.
//!
//! Gap-free by construction: the session subscribes to its game *before* it reads the snapshot from the store,
//! so a row written while the snapshot is read is either in the snapshot or in a frame queued behind it (or
//! both; the session then skips the frame: a change the snapshot already holds, a state it already sent or an
//! older one).
//!
//! Every play change has a change number, and a game's play frames are published in change-number order (the
//! order the changes committed in). The session keeps its *position*: a change number up to which the client
//! has been sent every change it asked for. After a connect snapshot that is the game's change number read
//! right after subscribing (every later change comes as a frame); after each frame, that frame's number.
//!
//! Backpressure: a session sends one frame at a time and waits for the socket. A client that takes longer than
//! `send_timeout` to take a frame is dropped. A session that falls more than the channel's capacity behind gets
//! a fresh snapshot (`reason: "lagged"`: the state and every play changed, inserted or deleted after its
//! position: the frames it lost, whatever their sequences), unless it already fell behind within
//! `resync_cooldown`; it is then closed with code 4008 ("client too slow").

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::SplitStream;
use futures::{SinkExt, StreamExt};
use hashbrown::HashMap;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use pbp_store::{GameStateRow, PlayRow, PlaysQuery, Repository, StoreError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::WsSettings;
use crate::http::metrics::HttpMetrics;
use crate::http::routes::WsResume;
use crate::push::{Frame, FrameKind, Hub, SnapshotReason, snapshot_text};

/// Close code of a session closed for falling behind twice in a row (private-use range).
pub(crate) const CLOSE_TOO_SLOW: u16 = 4008;

/// Largest frame of a snapshot, in bytes. A session's write buffer keeps the capacity of the largest frame it
/// sent; a 50-play snapshot sent whole (about 30 KB) would hold that much per connection for the session's
/// life (450 MB at 15,000 clients), so snapshots go out as a fragmented message (RFC 6455, 5.4).
pub(crate) const SNAPSHOT_FRAGMENT: usize = 4096;

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// What a session starts from.
pub(super) struct Context {
    pub(super) game_id: String,
    pub(super) resume: WsResume,
    pub(super) repository: Arc<dyn Repository>,
    pub(super) hub: Arc<Hub>,
    pub(super) settings: WsSettings,
    pub(super) closing: CancellationToken,
    pub(super) metrics: HttpMetrics,
}

/// What the client holds, to skip frames its snapshot already covered and to know where to resume.
#[derive(Default)]
struct Held {
    /// Plays of the last snapshot when it holds only some of the game (the last plays, or plays after a
    /// sequence), with their change numbers.
    snapshot_plays: HashMap<String, i64>,
    /// The last snapshot holds every change up to this number (a snapshot of changes); 0 for a partial one.
    covered: i64,
    /// Every change up to this number that the client asked for has been sent: where a resync resumes.
    position: i64,
    /// The last state sent.
    state: Option<GameStateRow>,
}

impl Held {
    /// After a snapshot of some of the game's plays, read after the game's change number `read_at`: later
    /// changes come as frames (queued since the subscription); earlier ones are in the snapshot as far as the
    /// client asked for them.
    fn partial(state: Option<GameStateRow>, plays: &[PlayRow], read_at: i64) -> Self {
        Self {
            snapshot_plays: plays.iter().map(|p| (p.play_id.clone(), p.change_number)).collect(),
            covered: 0,
            position: read_at,
            state,
        }
    }

    /// After a snapshot of every change after `after`: `changes` (the change feed, read after subscribing) is
    /// complete up to its highest number.
    fn changes(state: Option<GameStateRow>, changes: &[PlayRow], after: i64) -> Self {
        let covered = changes.iter().map(|p| p.change_number).max().unwrap_or(after).max(after);
        Self { snapshot_plays: HashMap::new(), covered, position: covered, state }
    }

    /// True if a play change tells the client something new; records it.
    fn take_change(&mut self, play_id: &str, change_number: i64) -> bool {
        if change_number <= self.covered || self.snapshot_plays.get(play_id).is_some_and(|held| *held >= change_number)
        {
            return false;
        }
        self.position = self.position.max(change_number);
        true
    }

    /// True if the frame tells the client something new; records it.
    fn take(&mut self, frame: &Frame) -> bool {
        match frame.kind() {
            FrameKind::Play { play_id, change_number, .. } | FrameKind::Delete { play_id, change_number } => {
                self.take_change(play_id, *change_number)
            }
            FrameKind::State(state) => {
                if self.state.as_ref().is_some_and(|held| !crate::push::supersedes(state, held)) {
                    return false;
                }
                self.state = Some((**state).clone());
                true
            }
        }
    }
}

/// Why a session ended, for the log.
#[derive(Debug)]
pub(crate) enum End {
    ClientClosed,
    ServerClosing,
    TooSlow,
    SendTimedOut,
    Failed(String),
}

/// Runs a session until the client leaves, the server shuts down or the client cannot keep up.
pub(super) async fn run(socket: Socket, context: Context) {
    let metrics = context.metrics.clone();
    metrics.websocket_connections.inc();
    let end = serve(socket, &context).await;
    metrics.websocket_connections.dec();
    if matches!(end, End::TooSlow | End::SendTimedOut) {
        metrics.websocket_slow_closed.inc();
    }
    match &end {
        End::Failed(error) => tracing::warn!(game_id = context.game_id, error, "WebSocket session failed."),
        end => tracing::debug!(game_id = context.game_id, ?end, "WebSocket session ended."),
    }
}

async fn serve(socket: Socket, context: &Context) -> End {
    let (mut sink, incoming) = socket.split();
    let mut subscription = context.hub.subscribe(&context.game_id);
    // What the client sends is read by a task of its own, woken only when the client's side of the socket is
    // readable. Polled beside the frames, it would cost every frame a read attempt (and tungstenite zeroes
    // its read buffer, 4 KiB, on each one): at 15,000 sessions that is 15,000 wasted reads per play.
    let (client_left, mut client_gone) = oneshot::channel();
    let _reader = AbortOnDropHandle::new(tokio::spawn(read_client(incoming, client_left)));
    let start = match context.resume {
        WsResume { since_change: Some(after), .. } => Start::Changes { after },
        WsResume { since: Some(since), .. } => Start::AfterSequence(since),
        WsResume { .. } => Start::LastPlays,
    };
    let mut held = match send_snapshot(&mut sink, context, SnapshotReason::Connect, start).await {
        Ok(held) => held,
        Err(end) => return client_close_wins(end, &mut client_gone),
    };
    let mut last_resync: Option<Instant> = None;
    // One waiter on the shutdown token for the whole session: a new one per frame would take the token's lock,
    // which every session shares, once per frame.
    let closing = context.closing.cancelled();
    tokio::pin!(closing);
    let end = loop {
        tokio::select! {
            biased;
            () = &mut closing => {
                // What was published before the shutdown is still delivered, then the session closes.
                while let Some(frame) = subscription.try_recv() {
                    if held.take(&frame) && send(&mut sink, context, Message::Text(frame.text())).await.is_err() {
                        break;
                    }
                }
                let frame = CloseFrame { code: CloseCode::Away, reason: "server shutting down".into() };
                drop(send(&mut sink, context, Message::Close(Some(frame))).await);
                break End::ServerClosing;
            }
            end = &mut client_gone => break end.unwrap_or(End::ClientClosed),
            frame = subscription.recv() => match frame {
                Ok(frame) => {
                    if held.take(&frame)
                        && let Err(end) = send(&mut sink, context, Message::Text(frame.text())).await
                    {
                        break end;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let again = last_resync.is_some_and(|at| at.elapsed() < context.settings.resync_cooldown);
                    if again {
                        let frame = CloseFrame { code: CloseCode::from(CLOSE_TOO_SLOW), reason: "client too slow".into() };
                        drop(send(&mut sink, context, Message::Close(Some(frame))).await);
                        break End::TooSlow;
                    }
                    tracing::debug!(game_id = context.game_id, missed, "WebSocket session fell behind; sending a fresh snapshot.");
                    context.metrics.websocket_resyncs.inc();
                    last_resync = Some(Instant::now());
                    subscription.skip_queued();
                    let start = Start::Changes { after: held.position };
                    match send_snapshot(&mut sink, context, SnapshotReason::Lagged, start).await {
                        Ok(fresh) => held = fresh,
                        Err(end) => break end,
                    }
                }
                Err(RecvError::Closed) => break End::ServerClosing,
            },
        }
    };
    // Answers the client's close (tungstenite queued the reply) or completes ours; bounded like any send.
    drop(tokio::time::timeout(context.settings.send_timeout, sink.close()).await);
    client_close_wins(end, &mut client_gone)
}

/// A send that failed because the client had just closed ends the session as the client's close, not as a
/// failure.
fn client_close_wins(end: End, client_gone: &mut oneshot::Receiver<End>) -> End {
    match end {
        End::Failed(_) | End::SendTimedOut => client_gone.try_recv().unwrap_or(end),
        end => end,
    }
}

/// Reads what the client sends until it closes or the connection fails, and says which. Generic over the
/// connection so that the fuzz target can feed it bytes from memory (`crate::fuzzing::ws_client_bytes`).
pub(crate) async fn read_client<S>(mut incoming: SplitStream<WebSocketStream<S>>, left: oneshot::Sender<End>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let end = loop {
        if let Some(end) = client_message(incoming.next().await) {
            break end;
        }
    };
    drop(left.send(end));
}

/// What one read from the client's side means for the session: `None` to keep reading, else how it ended.
pub(crate) fn client_message(read: Option<Result<Message, WsError>>) -> Option<End> {
    match read {
        None | Some(Ok(Message::Close(_))) => Some(End::ClientClosed),
        Some(Err(error)) => Some(End::Failed(error.to_string())),
        // Pings are answered by tungstenite (the reply leaves with the next write or flush); clients have
        // nothing else to say.
        Some(Ok(_)) => None,
    }
}

/// What a snapshot holds.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// The last plays in game order (`--ws-snapshot-plays`).
    LastPlays,
    /// Deprecated (`?since=SEQ`): the plays logged after a sequence, and the corrected ones before it.
    AfterSequence(i64),
    /// Every change after a change number (`?since_change=N`, and every resync).
    Changes { after: i64 },
}

/// Reads the snapshot from the store (after the session subscribed) and sends it. The change feed and the
/// change number are read from the store itself, never from a cache: a stale one could lack a change whose
/// frame the session will skip.
async fn send_snapshot(
    sink: &mut futures::stream::SplitSink<Socket, Message>,
    context: &Context,
    reason: SnapshotReason,
    start: Start,
) -> Result<Held, End> {
    let repository = context.repository.as_ref();
    let game_id = context.game_id.as_str();
    let read = async {
        let (held, mut plays) = match start {
            Start::Changes { after } => {
                let changes = repository.play_changes(game_id, after, None).await?;
                (Held::changes(None, &changes, after), changes)
            }
            Start::LastPlays | Start::AfterSequence(_) => {
                // Read before the plays: every change after it is published after the subscription.
                let read_at = repository.change_number(game_id).await?.unwrap_or(0);
                let plays = match start {
                    Start::AfterSequence(since) => plays_to_resume(repository, game_id, since).await?,
                    _ => repository.last_plays(game_id, context.settings.snapshot_plays).await?,
                };
                (Held::partial(None, &plays, read_at), plays)
            }
        };
        let state = repository.game_state(game_id).await?;
        plays.sort_by_key(PlayRow::position);
        Ok::<_, StoreError>((Held { state, ..held }, plays))
    };
    let (held, plays) = match read.await {
        Ok(read) => read,
        Err(error) => {
            let frame = CloseFrame { code: CloseCode::Again, reason: "the store is unavailable; retry later".into() };
            drop(send(sink, context, Message::Close(Some(frame))).await);
            return Err(End::Failed(format!("snapshot read failed: {error}")));
        }
    };
    let (deleted, plays): (Vec<PlayRow>, Vec<PlayRow>) = plays.into_iter().partition(PlayRow::is_deleted);
    let text = snapshot_text(game_id, reason, held.position, held.state.as_ref(), &plays, &deleted)
        .map_err(|e| End::Failed(e.to_string()))?;
    for fragment in fragments(AsRef::<Bytes>::as_ref(&text), SNAPSHOT_FRAGMENT) {
        send(sink, context, Message::Frame(fragment)).await?;
    }
    Ok(held)
}

/// `text` as the frames of one text message, each with at most `size` bytes of payload (one frame when it
/// fits). The payloads share `text`'s buffer. A fragment may end inside a UTF-8 sequence: only the whole
/// message must be valid UTF-8.
pub(super) fn fragments(text: &Bytes, size: usize) -> impl Iterator<Item = WsFrame> + '_ {
    let size = size.max(1);
    let count = text.len().div_ceil(size).max(1);
    (0..count).map(move |index| {
        let payload = text.slice(index * size..((index + 1) * size).min(text.len()));
        let opcode = if index == 0 { Data::Text } else { Data::Continue };
        WsFrame::message(payload, OpCode::Data(opcode), index + 1 == count)
    })
}

/// What a client that holds every play up to sequence `since` may lack, in game order: the plays logged after
/// it, and every corrected play (revision above 1) logged at or before it, since a correction made while the
/// client was away (or behind) does not come after `since`. Corrections are a few per game; the client may
/// hold some of them already and keeps the higher revision of a play.
async fn plays_to_resume(
    repository: &dyn Repository,
    game_id: &str,
    since: i64,
) -> Result<Vec<PlayRow>, pbp_store::StoreError> {
    repository.plays(game_id, &PlaysQuery { since: Some(since), corrections: true, limit: None }).await
}

/// Sends one message, within the send timeout.
async fn send(
    sink: &mut futures::stream::SplitSink<Socket, Message>,
    context: &Context,
    message: Message,
) -> Result<(), End> {
    match tokio::time::timeout(context.settings.send_timeout, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(End::Failed(error.to_string())),
        Err(_) => Err(End::SendTimedOut),
    }
}
