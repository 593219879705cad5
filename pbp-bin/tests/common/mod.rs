//! Helpers shared by the end-to-end tests: processes, the recorded truth of a game, and store checks.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pbp_espn::fake::{Correction, Deletion, DeletionKind};
use pbp_espn::model;
use pbp_espn::normalize::normalize_summary;
use pbp_store::{GameStateRow, PlayRow, PlaysQuery, Repository};

pub(crate) fn fixtures_dir() -> PathBuf {
    std::env::var_os("PBP_ESPN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/espn")))
}

/// One reading of `PBP_REQUIRE_SERVICES` for the whole workspace.
#[allow(unused_imports)] // each test binary uses a different part
pub(crate) use pbp_dataflow::testing::services_required;

/// A `pbp` child process, killed when dropped (also when an assertion fails).
pub(crate) struct Pbp {
    pub(crate) name: String,
    pub(crate) child: Child,
}

impl Pbp {
    /// Starts `pbp ARGS...` with `envs`, logging to `log_dir/NAME.log`.
    pub(crate) fn start(name: &str, args: &[&str], envs: &[(&str, String)], log_dir: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log_dir.join(format!("{name}.log")))?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_pbp"));
        command.args(["--log", "info,pbp_dataflow=warn"]).args(args).stdout(Stdio::null()).stderr(log);
        for (key, value) in envs {
            command.env(key, value);
        }
        Ok(Self { name: name.to_owned(), child: command.spawn()? })
    }

    /// Asks the process to stop (SIGTERM) and waits for it; it must exit successfully.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -TERM {} failed", self.name);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "{} exited with {status}", self.name);
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "{} did not stop within 60 s of SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `kill -9`: no chance to finish anything.
    pub(crate) fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Fails if the process already exited.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!("{} exited early with {status}", self.name);
        }
        Ok(())
    }
}

impl Drop for Pbp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a recorded game must look like once stored.
pub(crate) struct Expected {
    pub(crate) game_id: String,
    /// `(play_id, text)` in ESPN's array order (game order).
    pub(crate) plays: Vec<(String, String)>,
    pub(crate) home_score: i32,
    pub(crate) away_score: i32,
}

impl Expected {
    pub(crate) fn from_file(path: &Path) -> anyhow::Result<Self> {
        let summary = model::parse_summary(&std::fs::read(path)?)?;
        let (context, plays) = normalize_summary(&summary, None);
        let competition = summary.header.competition().ok_or_else(|| anyhow::anyhow!("no competition"))?;
        let score = |side: &str| competition.competitor(side).and_then(|c| c.score).map_or(0, |s| s as i32);
        Ok(Self {
            game_id: context.game_id,
            plays: plays.into_iter().map(|p| (p.play_id, p.text)).collect(),
            home_score: score("home"),
            away_score: score("away"),
        })
    }
}

/// Waits until the store holds the whole finished game (or fails after `timeout`), while `alive` keeps
/// checking the processes.
pub(crate) async fn wait_for_game(
    repository: &dyn Repository,
    expected: &Expected,
    timeout: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        alive()?;
        let state = repository.game_state(&expected.game_id).await.ok().flatten();
        let plays = repository.plays(&expected.game_id, &PlaysQuery::default()).await.unwrap_or_default();
        let texts_final = plays.len() == expected.plays.len()
            && plays.iter().zip(&expected.plays).all(|(p, (id, text))| &p.play_id == id && &p.text == text);
        if state.as_ref().is_some_and(|s| s.status.as_str() == "post") && texts_final {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "game {} not complete after {timeout:?}: {} of {} plays stored, state {:?}",
            expected.game_id,
            plays.len(),
            expected.plays.len(),
            state.map(|s| (s.status, s.plays_applied))
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every play exactly once, in game order, with its final content; corrected plays updated in place; the
/// final score and state right.
pub(crate) async fn assert_game(
    repository: &dyn Repository,
    expected: &Expected,
    corrections: &[Correction],
) -> anyhow::Result<(Vec<PlayRow>, GameStateRow)> {
    let plays = repository.plays(&expected.game_id, &PlaysQuery::default()).await?;
    let stored: Vec<(&str, &str)> = plays.iter().map(|p| (p.play_id.as_str(), p.text.as_str())).collect();
    let wanted: Vec<(&str, &str)> = expected.plays.iter().map(|(id, text)| (id.as_str(), text.as_str())).collect();
    assert_eq!(stored, wanted, "every play once, in game order, in its final form");
    // A correction lands as an update in place when its preliminary form was stored first (both forms can also
    // meet in one batch, where the last one wins before the write).
    let corrected: Vec<&PlayRow> = corrections
        .iter()
        .filter(|c| c.game_id == expected.game_id)
        .map(|c| plays.iter().find(|p| p.play_id == c.play_id).expect("corrected play stored"))
        .collect();
    if !corrected.is_empty() {
        assert!(corrected.iter().any(|p| p.revision >= 2), "corrections were applied as updates: {corrected:?}");
    }
    let state = repository.game_state(&expected.game_id).await?.expect("game state stored");
    assert_eq!(state.status.as_str(), "post");
    assert_eq!((state.home_score, state.away_score), (expected.home_score, expected.away_score), "final score");
    assert_eq!(state.plays_applied, expected.plays.len() as i64);
    let last = plays.last().expect("plays");
    assert_eq!(state.last_play_id.as_deref(), Some(last.play_id.as_str()));
    let game = repository.game(&expected.game_id).await?.expect("game stored");
    assert_eq!((game.home_score, game.away_score), (expected.home_score, expected.away_score));
    Ok((plays, state))
}

/// Item C: every phantom play the fake ESPN showed and took out of `game_id`'s feed left the system: it is a
/// tombstone in the store's change feed, in no read of plays, and not counted by the game state (checked by
/// [`assert_game`]'s `plays_applied`).
pub(crate) async fn assert_deleted(
    repository: &dyn Repository,
    game_id: &str,
    deletions: &[Deletion],
) -> anyhow::Result<()> {
    let phantoms: Vec<&Deletion> =
        deletions.iter().filter(|d| d.game_id == game_id && d.kind == DeletionKind::Phantom).collect();
    anyhow::ensure!(!phantoms.is_empty(), "the live replay of {game_id} deletes a play");
    let feed = repository.play_changes(game_id, 0, None).await?;
    let live = repository.plays(game_id, &PlaysQuery::default()).await?;
    for phantom in phantoms {
        let tombstone = feed.iter().find(|p| p.play_id == phantom.play_id);
        anyhow::ensure!(
            tombstone.is_some_and(pbp_store::PlayRow::is_deleted),
            "phantom {} is a tombstone in the store: {tombstone:?}",
            phantom.play_id
        );
        anyhow::ensure!(live.iter().all(|p| p.play_id != phantom.play_id), "phantom {} is read", phantom.play_id);
    }
    Ok(())
}

/// A client of `GET /v1/games/{id}/plays` that follows `next` from the first page, as fast as it can, applying
/// each page, until told that the game is over and it has read an empty page of the change feed.
pub(crate) struct RestPager {
    task: tokio::task::JoinHandle<anyhow::Result<std::collections::BTreeMap<String, serde_json::Value>>>,
    over: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl RestPager {
    /// Starts paging game `game_id` on 127.0.0.1:`port`, `limit` plays a page.
    pub(crate) fn start(port: u16, game_id: &str, limit: u32) -> Self {
        use std::sync::atomic::Ordering;
        let over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = over.clone();
        let mut target = format!("/v1/games/{game_id}/plays?limit={limit}");
        let task = tokio::spawn(async move {
            let mut held = std::collections::BTreeMap::new();
            let mut in_snapshot = true;
            let mut last: Option<(i64, f64, i64)> = None;
            loop {
                // Read before the request: an empty feed page after the game is over means the end.
                let game_over = done.load(Ordering::Acquire);
                let (status, body) = http_get(port, &target).await?;
                anyhow::ensure!(status == 200, "{target}: {status} {body}");
                let page: serde_json::Value = serde_json::from_str(&body)?;
                let plays = page["plays"].as_array().cloned().unwrap_or_default();
                let deleted = page["deleted"].as_array().cloned().unwrap_or_default();
                let feed_page = !in_snapshot;
                if in_snapshot {
                    for play in &plays {
                        // Game order: period, time elapsed in it, sequence.
                        let at = (
                            play["period"].as_i64().unwrap_or_default(),
                            play["period_elapsed_seconds"].as_f64().unwrap_or_default(),
                            play["sequence"].as_i64().unwrap_or_default(),
                        );
                        anyhow::ensure!(last.is_none_or(|l| l < at), "limit {limit}: snapshot out of game order");
                        last = Some(at);
                        let id = play["id"].as_str().unwrap_or_default().to_owned();
                        anyhow::ensure!(held.insert(id.clone(), play.clone()).is_none(), "limit {limit}: {id} twice");
                    }
                    in_snapshot = plays.len() == limit as usize;
                } else {
                    for play in &plays {
                        held.insert(play["id"].as_str().unwrap_or_default().to_owned(), play.clone());
                    }
                    for play in &deleted {
                        held.remove(play["id"].as_str().unwrap_or_default());
                    }
                }
                target = page["next"].as_str().ok_or_else(|| anyhow::anyhow!("no next: {body}"))?.to_owned();
                if feed_page && plays.is_empty() && deleted.is_empty() {
                    if game_over {
                        return Ok(held);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Self { task, over }
    }

    /// Tells the pager the game is over (everything is stored), waits for it to catch up, and checks that it
    /// holds exactly what `store` holds: each play's id, revision and text.
    pub(crate) async fn assert_holds_the_store(self, store: &dyn Repository, game_id: &str) -> anyhow::Result<()> {
        self.over.store(true, std::sync::atomic::Ordering::Release);
        let held = tokio::time::timeout(Duration::from_secs(60), self.task).await???;
        let client: Vec<(String, i64, String)> = held
            .into_iter()
            .map(|(id, p)| {
                (id, p["revision"].as_i64().unwrap_or_default(), p["text"].as_str().unwrap_or_default().to_owned())
            })
            .collect();
        let mut stored: Vec<(String, i64, String)> = store
            .plays(game_id, &PlaysQuery::default())
            .await?
            .into_iter()
            .map(|p| (p.play_id, p.revision, p.text))
            .collect();
        stored.sort();
        anyhow::ensure!(client == stored, "the paging client does not hold the store: {client:?}\nstore: {stored:?}");
        Ok(())
    }
}

/// A play without the fields that say when and how often it was delivered, for comparing two runs.
pub(crate) fn content(play: &PlayRow) -> PlayRow {
    PlayRow {
        fetched_at: 0,
        enriched_at: 0,
        revision: 0,
        change_number: 0,
        change: pbp_store::PlayChange::New,
        ..play.clone()
    }
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub(crate) fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Waits up to 30 s for `what` to listen on 127.0.0.1:`port`.
pub(crate) fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !port_open(port) {
        anyhow::ensure!(Instant::now() < deadline, "{what} is not listening on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The program `name` on `PATH`, or under `~/.cache/pbp-tools/bin` (where `.ci/run` puts tansu).
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    on_path.or_else(|| {
        let cached = PathBuf::from(std::env::var_os("HOME")?).join(".cache/pbp-tools/bin").join(name);
        cached.is_file().then_some(cached)
    })
}

/// A free TCP port on 127.0.0.1 (free when this returns).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `GET path` on 127.0.0.1:`port` over HTTP/1.1: the status and the body.
pub(crate) async fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// The REST API on `port` against `store` once `game_id` is final: every stored play in game order, the final
/// state, a healthy store, cache and broker (whose detail contains `broker`), and the consumed-records metric.
pub(crate) async fn assert_api(port: u16, store: &dyn Repository, game_id: &str, broker: &str) -> anyhow::Result<()> {
    let (status, body) = http_get(port, &format!("/v1/games/{game_id}/plays?limit=1000")).await?;
    anyhow::ensure!(status == 200, "plays: {status} {body}");
    let plays: serde_json::Value = serde_json::from_str(&body)?;
    let api_ids: Vec<&str> = plays["plays"].as_array().into_iter().flatten().filter_map(|p| p["id"].as_str()).collect();
    let stored_ids: Vec<String> =
        store.plays(game_id, &PlaysQuery::default()).await?.into_iter().map(|p| p.play_id).collect();
    assert_eq!(api_ids, stored_ids, "the API lists the stored plays in game order");
    let (status, body) = http_get(port, &format!("/v1/games/{game_id}")).await?;
    anyhow::ensure!(status == 200, "game: {status} {body}");
    let game: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(game["game"]["state"]["status"], "post", "{body}");
    assert_eq!(game["game"]["status"], "post", "{body}");
    let (status, body) = http_get(port, "/health").await?;
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body)?;
    assert!(health["checks"]["broker"]["detail"].as_str().is_some_and(|d| d.contains(broker)), "{body}");
    let (status, body) = http_get(port, "/metrics").await?;
    assert_eq!(status, 200);
    assert!(body.contains("kafka_messages_consumed_total{"), "{body}");
    Ok(())
}

/// A WebSocket client of `/ws/{game}` that records every message until the server closes the session.
pub(crate) struct WsRecorder {
    task: tokio::task::JoinHandle<anyhow::Result<Vec<serde_json::Value>>>,
}

impl WsRecorder {
    /// Connects to `path` (`/ws/{game}[?since=N]`) on 127.0.0.1:`port` and records in the background.
    pub(crate) async fn connect(port: u16, path: &str) -> anyhow::Result<Self> {
        use futures::StreamExt;
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}{path}")).await?;
        let task = tokio::spawn(async move {
            let mut messages = Vec::new();
            while let Some(message) = socket.next().await {
                match message? {
                    tokio_tungstenite::tungstenite::Message::Text(text) => messages.push(serde_json::from_str(&text)?),
                    tokio_tungstenite::tungstenite::Message::Close(frame) => {
                        let code = frame.map(|f| u16::from(f.code));
                        anyhow::ensure!(code == Some(1001), "the session closed with {code:?}, not 1001 at shutdown");
                        break;
                    }
                    _ => {}
                }
            }
            Ok(messages)
        });
        Ok(Self { task })
    }

    /// The messages, once the session closed.
    pub(crate) async fn messages(self) -> anyhow::Result<Vec<serde_json::Value>> {
        tokio::time::timeout(Duration::from_secs(30), self.task).await??
    }
}

/// Checks what a WebSocket session received against the finished game in `store`: a snapshot first, then
/// each version of a play at most once (no duplicate), new plays in the order the feed showed them, and in
/// the end the client holds every stored play it should (all with a sequence above `complete_after`: `None` for a
/// client that saw the game from its first play) at its stored revision and content, and the final state.
pub(crate) fn assert_ws_session(
    messages: &[serde_json::Value],
    stored: &[PlayRow],
    state: &GameStateRow,
    complete_after: Option<i64>,
) -> anyhow::Result<()> {
    use std::collections::HashMap;
    let (snapshot, frames) = messages.split_first().ok_or_else(|| anyhow::anyhow!("no message"))?;
    anyhow::ensure!(snapshot["type"] == "snapshot" && snapshot["reason"] == "connect", "first comes the snapshot");
    let mut held: HashMap<String, serde_json::Value> = HashMap::new();
    for play in snapshot["plays"].as_array().into_iter().flatten() {
        held.insert(play["id"].as_str().unwrap_or_default().to_owned(), play.clone());
    }
    let mut last_state = snapshot["state"].clone();
    // (sequence, place in game order) of each play first seen in a frame, in arrival order.
    let place: HashMap<&str, usize> = stored.iter().enumerate().map(|(i, p)| (p.play_id.as_str(), i)).collect();
    let mut new_plays: Vec<(i64, usize, String)> = Vec::new();
    // Plays the feed deleted (a phantom, a withdrawn play that may come back): outside ESPN's logging order.
    let mut deleted: std::collections::HashSet<String> = std::collections::HashSet::new();
    // Frames come in change order (a frame may be older than the snapshot's change number: the snapshot holds
    // the last plays only).
    let mut last_change = 0;
    for frame in frames {
        match frame["type"].as_str() {
            Some("play") => {
                let play = &frame["play"];
                let id = play["id"].as_str().unwrap_or_default().to_owned();
                let revision = play["revision"].as_i64().unwrap_or_default();
                let change = play["change_number"].as_i64().unwrap_or_default();
                anyhow::ensure!(change > last_change, "play {id} change {change} after {last_change}: out of order");
                last_change = change;
                match held.get(&id) {
                    Some(before) => anyhow::ensure!(
                        before["revision"].as_i64().unwrap_or_default() < revision,
                        "play {id} revision {revision} arrived twice or out of order"
                    ),
                    None => {
                        let sequence = play["sequence"].as_i64().unwrap_or_default();
                        let at = place.get(id.as_str()).copied().unwrap_or(usize::MAX);
                        new_plays.push((sequence, at, id.clone()));
                    }
                }
                held.insert(id, play.clone());
            }
            Some("delete") => {
                let id = frame["play"]["id"].as_str().unwrap_or_default().to_owned();
                let change = frame["play"]["change_number"].as_i64().unwrap_or_default();
                anyhow::ensure!(change > last_change, "deletion of {id} change {change} after {last_change}");
                last_change = change;
                held.remove(&id);
                deleted.insert(id);
            }
            Some("state") => last_state = frame["state"].clone(),
            other => anyhow::bail!("unexpected message type {other:?}: {frame}"),
        }
    }
    new_plays.retain(|(_, _, id)| !deleted.contains(id));
    // ESPN shows plays in the order it logs them (sequence), and each poll's new plays in game order: a play
    // that arrived after another was logged after it, or came in the same poll later in game order.
    for (i, (sequence, at, id)) in new_plays.iter().enumerate() {
        for (later_sequence, later_at, later_id) in &new_plays[i + 1..] {
            anyhow::ensure!(
                later_sequence > sequence || later_at > at,
                "new play {later_id} (sequence {later_sequence}, place {later_at}) arrived after {id} \
                 (sequence {sequence}, place {at}), which was logged after it and comes later in game order"
            );
        }
    }
    for play in stored {
        let must_hold = complete_after.is_none_or(|after| play.sequence > after);
        match held.get(&play.play_id) {
            None => anyhow::ensure!(!must_hold, "play {} ({}) never reached the client", play.play_id, play.sequence),
            Some(got) => {
                anyhow::ensure!(
                    got["revision"] == play.revision && got["text"] == play.text.as_str(),
                    "play {} is at revision {} ({}) on the client, {} ({}) in the store",
                    play.play_id,
                    got["revision"],
                    got["text"],
                    play.revision,
                    play.text
                );
            }
        }
    }
    anyhow::ensure!(held.len() <= stored.len(), "the client holds plays the store does not");
    anyhow::ensure!(
        last_state["status"] == "post" && last_state["plays_applied"] == state.plays_applied,
        "the client's last state is not the final one: {last_state}"
    );
    anyhow::ensure!(
        last_state["home_score"] == state.home_score && last_state["away_score"] == state.away_score,
        "final score"
    );
    Ok(())
}
