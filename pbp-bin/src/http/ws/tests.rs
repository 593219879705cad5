//! Sessions against a server on 127.0.0.1:0 over a seeded SQLite store, written through the publishing
//! repository as the serve pipelines do, read with a real WebSocket client.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pbp_store::cache::{CacheTtls, CachedRepository, MemoryCache};
use pbp_store::{GameStateRow, PlayRow, Repository, SqliteStore};
use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Push, WsSettings};
use crate::http::tests::{play, seed, state};
use crate::http::{Api, HealthChecks};
use crate::push::{Hub, PublishingRepository};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Server {
    addr: std::net::SocketAddr,
    /// What the serve pipelines write through.
    writer: PublishingRepository,
    registry: Arc<Mutex<Registry>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(capacity: usize, settings: WsSettings) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let cache = Arc::new(MemoryCache::new(CacheTtls::default()));
        let store = SqliteStore::open(dir.path(), 2).await?;
        let repository: Arc<dyn Repository> = Arc::new(CachedRepository::new(store, cache.clone()));
        seed(repository.as_ref()).await?;
        let hub = Hub::new(capacity);
        let writer = PublishingRepository::new(repository.clone(), hub.clone());
        let config: pbp_dataflow::TransportConfig = "embedded".parse()?;
        let checks = HealthChecks::new(cache, config.connect()?, &config);
        let metrics = crate::cmd::common::Metrics::new();
        let api = Api::new(repository, checks, metrics.registry.clone()).with_push(Push::new(hub, settings));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::http::serve(listener, api, async move {
            let _ = stopped.await;
        }));
        Ok(Self { addr, writer, registry: metrics.registry, stop: Some(stop), task, _dir: dir })
    }

    async fn connect(&self, path: &str) -> anyhow::Result<Client> {
        let (client, response) = tokio_tungstenite::connect_async(format!("ws://{}{path}", self.addr)).await?;
        assert_eq!(response.status(), 101);
        Ok(client)
    }

    fn metric(&self, name: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry.lock().unwrap()).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await?
    }
}

/// The next text message as JSON, within `wait`.
async fn next_json(client: &mut Client, wait: Duration) -> anyhow::Result<Value> {
    loop {
        let message = tokio::time::timeout(wait, client.next())
            .await
            .map_err(|_| anyhow::anyhow!("no message within {wait:?}"))?
            .ok_or_else(|| anyhow::anyhow!("the session ended"))??;
        match message {
            Message::Text(text) => return Ok(serde_json::from_str(&text)?),
            Message::Close(frame) => anyhow::bail!("closed: {frame:?}"),
            _ => {}
        }
    }
}

async fn nothing_more(client: &mut Client) {
    let more = tokio::time::timeout(Duration::from_millis(300), client.next()).await;
    assert!(more.is_err(), "unexpected message: {more:?}");
}

fn ids(plays: &Value) -> Vec<String> {
    plays.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect()
}

fn later_state(game_id: &str, applied: i64) -> GameStateRow {
    let mut s = state(game_id);
    s.plays_applied = applied;
    s.updated_at += applied;
    s
}

#[tokio::test]
async fn a_session_gets_a_snapshot_then_every_change_once() -> anyhow::Result<()> {
    let server = Server::start(1024, WsSettings::default()).await?;
    let mut client = server.connect("/ws/live").await?;
    let snapshot = next_json(&mut client, Duration::from_secs(5)).await?;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["reason"], "connect");
    assert_eq!(snapshot["game_id"], "live");
    assert_eq!(snapshot["state"]["plays_applied"], 4);
    // The last plays in game order (sequence 10 was logged late, third in game order).
    assert_eq!(ids(&snapshot["plays"]), ["live3", "live4", "live10", "live5"]);
    assert_eq!(server.metric("websocket_connections_active"), 1.0);

    // New plays, a re-delivery, a correction, and states: only what the store changed is pushed, once.
    server.writer.upsert_plays(&[play("live", 11, 5), play("live", 12, 6)]).await?;
    server.writer.upsert_plays(&[play("live", 11, 5), play("live", 5, 4)]).await?;
    let mut corrected = play("live", 4, 2);
    corrected.text = "Corrected".to_owned();
    corrected.fetched_at += 1;
    server.writer.upsert_plays(&[corrected]).await?;
    server.writer.upsert_game_states(&[later_state("live", 6)]).await?;
    server.writer.upsert_game_states(&[later_state("live", 6)]).await?;
    // Another game's writes reach nobody here.
    server.writer.upsert_game_states(&[later_state("final", 1)]).await?;

    for (id, revision) in [("live11", 1), ("live12", 1), ("live4", 2)] {
        let frame = next_json(&mut client, Duration::from_secs(5)).await?;
        assert_eq!(frame["type"], "play", "{frame}");
        assert_eq!((frame["play"]["id"].as_str(), frame["play"]["revision"].as_i64()), (Some(id), Some(revision)));
    }
    let frame = next_json(&mut client, Duration::from_secs(5)).await?;
    assert_eq!((frame["type"].as_str(), frame["state"]["plays_applied"].as_i64()), (Some("state"), Some(6)));
    nothing_more(&mut client).await;

    // A second session on the same game shares the channel; the first leaving does not end it.
    let mut second = server.connect("/ws/live").await?;
    assert_eq!(next_json(&mut second, Duration::from_secs(5)).await?["plays"].as_array().unwrap().len(), 6);
    client.close(None).await?;
    server.writer.upsert_plays(&[play("live", 13, 7)]).await?;
    assert_eq!(next_json(&mut second, Duration::from_secs(5)).await?["play"]["id"], "live13");
    drop(second);
    for _ in 0..50 {
        if server.metric("websocket_connections_active") == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.metric("websocket_connections_active"), 0.0);
    server.stop().await
}

#[tokio::test]
async fn since_resumes_after_a_sequence_and_the_snapshot_holds_what_it_can() -> anyhow::Result<()> {
    let server = Server::start(1024, WsSettings { snapshot_plays: 2, ..WsSettings::default() }).await?;
    // Without since: the last two plays in game order.
    let mut client = server.connect("/ws/live").await?;
    assert_eq!(ids(&next_json(&mut client, Duration::from_secs(5)).await?["plays"]), ["live10", "live5"]);
    // With since: every play logged after it, whatever its place in game order.
    let mut resumed = server.connect("/ws/live?since=4").await?;
    let snapshot = next_json(&mut resumed, Duration::from_secs(5)).await?;
    assert_eq!(ids(&snapshot["plays"]), ["live10", "live5"]);
    let mut all = server.connect("/ws/live?since=0").await?;
    assert_eq!(
        ids(&next_json(&mut all, Duration::from_secs(5)).await?["plays"]),
        ["live3", "live4", "live10", "live5"]
    );
    let mut none = server.connect("/ws/live?since=10").await?;
    assert_eq!(ids(&next_json(&mut none, Duration::from_secs(5)).await?["plays"]), Vec::<String>::new());
    server.writer.upsert_plays(&[play("live", 11, 5)]).await?;
    for session in [&mut client, &mut resumed, &mut all, &mut none] {
        assert_eq!(next_json(session, Duration::from_secs(5)).await?["play"]["id"], "live11");
    }
    server.stop().await
}

#[test]
fn a_snapshot_is_cut_into_frames_of_one_text_message() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let text = bytes::Bytes::from("é".repeat(5000));
    for size in [1, 7, 4096, 9999, 10_000, 20_000] {
        let frames: Vec<_> = super::session::fragments(&text, size).collect();
        assert_eq!(frames.len(), text.len().div_ceil(size), "size {size}");
        let mut joined = Vec::new();
        for (index, frame) in frames.iter().enumerate() {
            let expected = if index == 0 { Data::Text } else { Data::Continue };
            assert_eq!(frame.header().opcode, OpCode::Data(expected));
            assert_eq!(frame.header().is_final, index + 1 == frames.len());
            assert!(frame.payload().len() <= size);
            joined.extend_from_slice(frame.payload());
        }
        assert_eq!(joined, text, "size {size}");
    }
    let empty: Vec<_> = super::session::fragments(&bytes::Bytes::new(), 4096).collect();
    assert_eq!(empty.len(), 1, "an empty message is one final frame");
    assert!(empty[0].header().is_final && empty[0].payload().is_empty());
}

#[tokio::test]
async fn a_large_snapshot_arrives_whole_from_its_fragments() -> anyhow::Result<()> {
    let server = Server::start(1024, WsSettings::default()).await?;
    let plays: Vec<PlayRow> = (20..80).map(|n| play("live", n, n)).collect();
    server.writer.upsert_plays(&plays).await?;
    // Read at the frame level: the snapshot comes as a text frame and continuations, the last one final.
    let mut raw = TcpStream::connect(server.addr).await?;
    raw.write_all(
        b"GET /ws/live HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(raw.read_u8().await?);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    let mut opcodes = Vec::new();
    let mut message = Vec::new();
    loop {
        let (first, second) = (raw.read_u8().await?, raw.read_u8().await?);
        let length = match second & 0x7f {
            126 => u64::from(raw.read_u16().await?),
            127 => raw.read_u64().await?,
            n => u64::from(n),
        };
        assert_eq!(second & 0x80, 0, "server frames are not masked");
        assert!(length <= super::session::SNAPSHOT_FRAGMENT as u64, "a frame of {length} bytes");
        let mut payload = vec![0; usize::try_from(length)?];
        raw.read_exact(&mut payload).await?;
        opcodes.push(first & 0x0f);
        message.extend_from_slice(&payload);
        if first & 0x80 != 0 {
            break;
        }
    }
    assert!(opcodes.len() > 1, "a {} byte snapshot in {} frame(s)", message.len(), opcodes.len());
    assert_eq!(opcodes[0], 1, "a text message");
    assert!(opcodes[1..].iter().all(|&op| op == 0), "then continuations: {opcodes:?}");
    let snapshot: Value = serde_json::from_slice(&message)?;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["plays"].as_array().map(Vec::len), Some(50));
    // A WebSocket client reads the same snapshot as one message.
    let mut client = server.connect("/ws/live").await?;
    assert_eq!(next_json(&mut client, Duration::from_secs(5)).await?, snapshot);
    drop(raw);
    server.stop().await
}

#[tokio::test]
async fn a_session_that_falls_behind_gets_a_fresh_snapshot_then_is_closed() -> anyhow::Result<()> {
    let settings = WsSettings { resync_cooldown: Duration::from_secs(60), ..WsSettings::default() };
    let server = Server::start(4, settings).await?;
    let mut client = server.connect("/ws/live").await?;
    next_json(&mut client, Duration::from_secs(5)).await?;
    // Twenty plays published at once overflow a channel of four: the session lost some and says so with a
    // snapshot of every play after the last one it sent.
    let burst: Vec<PlayRow> = (11..31).map(|s| play("live", s, s)).collect();
    server.writer.upsert_plays(&burst).await?;
    let mut seen = Vec::new();
    let mut lagged = None;
    while seen.len() < 20 {
        let frame = next_json(&mut client, Duration::from_secs(5)).await?;
        match frame["type"].as_str() {
            Some("play") => seen.push(frame["play"]["sequence"].as_i64().unwrap()),
            Some("snapshot") => {
                assert_eq!(frame["reason"], "lagged");
                lagged = Some(seen.len());
                seen.extend(frame["plays"].as_array().unwrap().iter().map(|p| p["sequence"].as_i64().unwrap()));
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    assert!(lagged.is_some(), "the burst overflowed the channel");
    assert_eq!(seen, (11..31).collect::<Vec<_>>(), "nothing lost, nothing twice, in order");
    assert_eq!(server.metric("websocket_resyncs_total"), 1.0);
    // Behind again within the cooldown: closed with 4008.
    let burst: Vec<PlayRow> = (31..51).map(|s| play("live", s, s)).collect();
    server.writer.upsert_plays(&burst).await?;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), client.next()).await? {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(4008));
    assert_eq!(server.metric("websocket_slow_clients_closed_total"), 1.0);
    server.stop().await
}

#[tokio::test]
async fn a_correction_made_while_away_or_behind_is_not_lost() -> anyhow::Result<()> {
    let settings = WsSettings { resync_cooldown: Duration::from_secs(60), ..WsSettings::default() };
    let server = Server::start(4, settings).await?;
    // A client that saw every play up to sequence 10 and left; meanwhile live4 (sequence 4) was corrected.
    let mut corrected = play("live", 4, 2);
    corrected.text = "Play 4, corrected".to_owned();
    server.writer.upsert_plays(&[corrected, play("live", 11, 5)]).await?;
    let mut resumed = server.connect("/ws/live?since=10").await?;
    let snapshot = next_json(&mut resumed, Duration::from_secs(5)).await?;
    assert_eq!(ids(&snapshot["plays"]), ["live4", "live11"], "the correction, then what came after 10");
    assert_eq!(snapshot["plays"][0]["revision"], 2);
    assert_eq!(snapshot["plays"][0]["text"], "Play 4, corrected");

    // A session that falls behind while an early play is corrected: its fresh snapshot holds the correction.
    let mut client = server.connect("/ws/live").await?;
    let mut held: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    fn keep(held: &mut std::collections::HashMap<String, i64>, plays: &[Value]) {
        for play in plays {
            held.insert(play["id"].as_str().unwrap().to_owned(), play["revision"].as_i64().unwrap());
        }
    }
    keep(&mut held, next_json(&mut client, Duration::from_secs(5)).await?["plays"].as_array().unwrap());
    let mut corrected = play("live", 3, 1);
    corrected.text = "Play 3, corrected".to_owned();
    let mut burst = vec![corrected];
    burst.extend((12..32).map(|s| play("live", s, s)));
    server.writer.upsert_plays(&burst).await?;
    let mut lagged = false;
    while !held.contains_key("live31") {
        let frame = next_json(&mut client, Duration::from_secs(5)).await?;
        match frame["type"].as_str() {
            Some("play") => keep(&mut held, std::slice::from_ref(&frame["play"])),
            Some("snapshot") => {
                lagged = true;
                keep(&mut held, frame["plays"].as_array().unwrap());
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    assert!(lagged, "the burst overflowed the channel");
    assert_eq!(held.get("live3"), Some(&2), "the correction lost to falling behind came with the fresh snapshot");
    assert_eq!(held.get("live4"), Some(&2));
    assert_eq!(held.len(), 4 + 1 + 20, "every play of the game");
    server.stop().await
}

/// What a WebSocket client holds: every play by id (revision and text), from snapshots, `play` and `delete`
/// frames.
#[derive(Default)]
struct ClientPlays(std::collections::BTreeMap<String, (i64, String)>);

impl ClientPlays {
    fn apply(&mut self, message: &Value) {
        let keep = |held: &mut Self, play: &Value| {
            let entry = (play["revision"].as_i64().unwrap(), play["text"].as_str().unwrap().to_owned());
            held.0.insert(play["id"].as_str().unwrap().to_owned(), entry);
        };
        match message["type"].as_str() {
            Some("snapshot") => {
                for play in message["plays"].as_array().unwrap() {
                    keep(self, play);
                }
                for play in message["deleted"].as_array().unwrap() {
                    self.0.remove(play["id"].as_str().unwrap());
                }
            }
            Some("play") => keep(self, &message["play"]),
            Some("delete") => {
                self.0.remove(message["play"]["id"].as_str().unwrap());
            }
            _ => {}
        }
    }

    async fn equals_the_store(&self, repository: &dyn Repository) -> anyhow::Result<()> {
        let stored = repository.plays("live", &pbp_store::PlaysQuery::default()).await?;
        let stored: std::collections::BTreeMap<String, (i64, String)> =
            stored.into_iter().map(|p| (p.play_id, (p.revision, p.text))).collect();
        assert_eq!(self.0, stored, "the client holds what the store holds");
        Ok(())
    }
}

/// Item B: a session that falls behind resumes from the change number of the last change it was sent, not from
/// a sequence. Here the last play it got before falling behind is a late insert with a high sequence, and the
/// plays it lost (logged earlier, lower sequences) and a deletion must still reach it.
#[tokio::test]
async fn a_lagged_client_ends_equal_to_the_store_after_a_late_insert() -> anyhow::Result<()> {
    let settings = WsSettings { resync_cooldown: Duration::from_secs(60), ..WsSettings::default() };
    let server = Server::start(4, settings).await?;
    let mut client = server.connect("/ws/live").await?;
    let mut held = ClientPlays::default();
    held.apply(&next_json(&mut client, Duration::from_secs(5)).await?);
    // A late insert with a high sequence, early in the game: sent.
    server.writer.upsert_plays(&[play("live", 100, 0)]).await?;
    let frame = next_json(&mut client, Duration::from_secs(5)).await?;
    assert_eq!(frame["play"]["id"], "live100");
    held.apply(&frame);
    // Then a burst that overflows the channel: plays with lower sequences, a correction and a deletion.
    let mut burst: Vec<PlayRow> = (11..31).map(|s| play("live", s, s)).collect();
    let mut corrected = play("live", 4, 2);
    corrected.text = "Play 4, corrected".to_owned();
    corrected.fetched_at += 1;
    let mut deleted = play("live", 5, 4);
    deleted.change = pbp_store::PlayChange::Delete;
    deleted.fetched_at += 1;
    burst.insert(3, corrected);
    burst.push(deleted);
    server.writer.upsert_plays(&burst).await?;
    let mut lagged = false;
    let end = server.writer.change_number("live").await?.unwrap_or_default();
    loop {
        let message = next_json(&mut client, Duration::from_secs(5)).await?;
        lagged |= message["reason"] == "lagged";
        held.apply(&message);
        let reached = match message["type"].as_str() {
            Some("snapshot") => message["change_number"].as_i64(),
            Some("play" | "delete") => message["play"]["change_number"].as_i64(),
            _ => None,
        };
        if reached == Some(end) {
            break;
        }
    }
    assert!(lagged, "the burst overflowed the channel");
    held.equals_the_store(&server.writer).await?;
    assert!(!held.0.contains_key("live5"), "the deletion reached the client");
    nothing_more(&mut client).await;
    server.stop().await
}

/// `?since_change=N` resumes with every change after N: new and corrected plays, and deletions.
#[tokio::test]
async fn since_change_resumes_with_every_change_after_it() -> anyhow::Result<()> {
    let server = Server::start(1024, WsSettings::default()).await?;
    let mut client = server.connect("/ws/live").await?;
    let mut held = ClientPlays::default();
    let snapshot = next_json(&mut client, Duration::from_secs(5)).await?;
    let at = snapshot["change_number"].as_i64().unwrap();
    assert_eq!(at, 4, "four plays stored: the game is at change 4");
    held.apply(&snapshot);
    drop(client);
    // While the client is away: a late insert, a correction, a deletion.
    let mut corrected = play("live", 3, 1);
    corrected.text = "Play 3, corrected".to_owned();
    corrected.fetched_at += 1;
    let mut deleted = play("live", 10, 3);
    deleted.change = pbp_store::PlayChange::Delete;
    deleted.fetched_at += 1;
    server.writer.upsert_plays(&[play("live", 11, 0), corrected, deleted]).await?;
    let mut resumed = server.connect(&format!("/ws/live?since_change={at}")).await?;
    let snapshot = next_json(&mut resumed, Duration::from_secs(5)).await?;
    assert_eq!(ids(&snapshot["plays"]), ["live11", "live3"], "in game order");
    assert_eq!(ids(&snapshot["deleted"]), ["live10"]);
    assert_eq!(snapshot["change_number"], 7);
    held.apply(&snapshot);
    held.equals_the_store(&server.writer).await?;
    // Then frames, each with its change number.
    server.writer.upsert_plays(&[play("live", 12, 9)]).await?;
    let frame = next_json(&mut resumed, Duration::from_secs(5)).await?;
    assert_eq!((frame["play"]["id"].as_str(), frame["play"]["change_number"].as_i64()), (Some("live12"), Some(8)));
    let mut nothing = server.connect("/ws/live?since_change=8").await?;
    let snapshot = next_json(&mut nothing, Duration::from_secs(5)).await?;
    assert!(snapshot["plays"].as_array().unwrap().is_empty() && snapshot["deleted"].as_array().unwrap().is_empty());
    assert_eq!(snapshot["change_number"], 8);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_delay_the_others() -> anyhow::Result<()> {
    let settings = WsSettings { send_timeout: Duration::from_secs(1), ..WsSettings::default() };
    let server = Server::start(256, settings).await?;
    // The slow client: a handshake, then it never reads again.
    let mut slow = TcpStream::connect(server.addr).await?;
    slow.write_all(
        b"GET /ws/live HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await?;
    let mut head = [0u8; 12];
    slow.read_exact(&mut head).await?;
    assert_eq!(&head, b"HTTP/1.1 101");
    let mut fast = server.connect("/ws/live").await?;
    next_json(&mut fast, Duration::from_secs(5)).await?;

    // 16 MB of plays, in small batches: far more than the slow client's socket buffers hold.
    let text = "x".repeat(16 * 1024);
    let writer = &server.writer;
    let publish = async {
        for batch in 0..50 {
            let plays: Vec<PlayRow> = (0..20)
                .map(|i| {
                    let sequence = 100 + batch * 20 + i;
                    let mut p = play("live", sequence, sequence);
                    p.text = text.clone();
                    p
                })
                .collect();
            writer.upsert_plays(&plays).await?;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        anyhow::Ok(())
    };
    let receive = async {
        let mut sequences = Vec::new();
        while sequences.len() < 1000 {
            let frame = next_json(&mut fast, Duration::from_secs(10)).await?;
            assert_eq!(frame["type"], "play", "the fast client never falls behind");
            sequences.push(frame["play"]["sequence"].as_i64().unwrap());
        }
        anyhow::Ok(sequences)
    };
    let ((), sequences) = tokio::try_join!(publish, receive)?;
    assert_eq!(sequences, (100..1100).collect::<Vec<_>>());
    // The slow client is dropped once a frame waits on it longer than the send timeout.
    for _ in 0..100 {
        if server.metric("websocket_slow_clients_closed_total") >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.metric("websocket_slow_clients_closed_total"), 1.0);
    assert_eq!(server.metric("websocket_connections_active"), 1.0);
    drop(slow);
    server.stop().await
}

#[tokio::test]
async fn shutdown_closes_sessions_with_going_away() -> anyhow::Result<()> {
    let server = Server::start(16, WsSettings::default()).await?;
    let mut client = server.connect("/ws/live").await?;
    next_json(&mut client, Duration::from_secs(5)).await?;
    let stopped = tokio::spawn(server.stop());
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), client.next()).await? {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1001));
    stopped.await??;
    Ok(())
}

#[tokio::test]
async fn handshakes_are_checked_like_rest_requests() -> anyhow::Result<()> {
    let server = Server::start(16, WsSettings::default()).await?;
    let ask = |target: &str, extra: &str| {
        format!(
            "GET {target} HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{extra}\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    let status = |request: String| async move {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = vec![0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        String::from_utf8(head).unwrap()
    };
    let v13 = "Sec-WebSocket-Version: 13\r\n";
    assert_eq!(status(ask("/ws/ghost", v13)).await, "HTTP/1.1 404");
    assert_eq!(status(ask("/ws/live?since=-1", v13)).await, "HTTP/1.1 400");
    assert_eq!(status(ask("/ws/live?since_change=x", v13)).await, "HTTP/1.1 400");
    assert_eq!(status(ask("/ws/live?since=1&since_change=1", v13)).await, "HTTP/1.1 400");
    assert_eq!(status(ask("/ws/live?from=1", v13)).await, "HTTP/1.1 400");
    assert_eq!(status(ask("/ws/li%20ve", v13)).await, "HTTP/1.1 400");
    assert_eq!(status(ask("/ws/live", "Sec-WebSocket-Version: 8\r\n")).await, "HTTP/1.1 426");
    assert_eq!(
        status("GET /ws/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_owned()).await,
        "HTTP/1.1 426"
    );
    assert_eq!(status(ask("/ws/live", v13)).await, "HTTP/1.1 101");

    // A client message over the limit ends the session; the server keeps serving.
    let mut client = server.connect("/ws/live").await?;
    next_json(&mut client, Duration::from_secs(5)).await?;
    drop(client.send(Message::Text("x".repeat(100 * 1024).into())).await);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = client.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the session ended");
    let mut again = server.connect("/ws/live").await?;
    assert_eq!(next_json(&mut again, Duration::from_secs(5)).await?["type"], "snapshot");
    server.stop().await
}
