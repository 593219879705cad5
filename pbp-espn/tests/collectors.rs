//! Collectors against the fake server in live mode: discovery, delivery exactly once, corrections delivered as
//! updates, the stop after the final whistle (and a deletion made just before it), a restart from restored state
//! that re-emits nothing, and undecodable bodies delivered (once) while the game still lands.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use pbp_espn::client::RetryConfig;
use pbp_espn::collect::{CollectorConfig, CollectorEvent, PlayCollector, ScoreboardPoller};
use pbp_espn::fake::{FakeEspn, FakeOptions, Fault, FaultRule, RunningFake};
use pbp_espn::{ChangeKind, ClientConfig, EspnClient, GameSnapshotState, League, PlayChange};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Generous bound so a stuck collector fails the test instead of hanging it; not a speed check.
const PATIENCE: Duration = Duration::from_secs(300);

async fn live_fake(files: &[&str]) -> anyhow::Result<(FakeEspn, RunningFake, Arc<EspnClient>)> {
    let paths: Vec<_> = files.iter().map(|name| common::fixtures_dir().join(name)).collect();
    let fake =
        FakeEspn::from_files(&paths, FakeOptions { live: true, speed: 1.0, corrections: true, deletions: false })?;
    fake.use_manual_clock();
    let running = fake.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let config = ClientConfig {
        retry: RetryConfig {
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
            ..Default::default()
        },
        ..ClientConfig::with_base_url(&running.base_url())
    };
    let client = Arc::new(EspnClient::new(config, &mut Registry::default())?);
    Ok((fake, running, client))
}

fn fast(league: League) -> CollectorConfig {
    CollectorConfig {
        scoreboard_interval: Duration::from_millis(40),
        scoreboard_live_interval: Duration::from_millis(20),
        plays_interval: Duration::from_millis(10),
        ..CollectorConfig::new(league)
    }
}

/// Moves the replay clock `step` every `every` until cancelled.
fn drive_clock(fake: FakeEspn, step: Duration, every: Duration, cancel: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(every) => fake.advance(step),
            }
        }
    });
}

#[tokio::test]
async fn the_poller_stops_at_once_even_in_the_middle_of_a_fetch() -> anyhow::Result<()> {
    // A server that accepts and never answers: the poll's request is in flight (and then retried) when the
    // cancellation comes.
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let client =
        Arc::new(EspnClient::new(ClientConfig::with_base_url(&format!("http://{addr}")), &mut Registry::default())?);
    let (sender, _receiver) = mpsc::channel(4);
    let cancel = CancellationToken::new();
    let poller = tokio::spawn(ScoreboardPoller::new(client, fast(League::Nba), sender).run(cancel.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(2), poller).await;
    silent.abort();
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "the poller did not stop promptly: {stopped:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_discovers_live_games_and_delivers_every_play_once() -> anyhow::Result<()> {
    let files = ["nba-summary-401585607.json", "nba-summary-401810084.json"];
    let (fake, running, client) = live_fake(&files).await?;
    let cancel = CancellationToken::new();
    drive_clock(fake.clone(), Duration::from_secs(120), Duration::from_millis(40), cancel.clone());
    let (sender, mut receiver) = mpsc::channel(64);
    let poller = ScoreboardPoller::new(Arc::clone(&client), fast(League::Nba), sender);
    let poller = tokio::spawn(poller.run(cancel.clone()));

    let mut new: HashMap<String, usize> = HashMap::new();
    let mut updated: Vec<String> = Vec::new();
    let mut late = 0;
    let mut finished = Vec::new();
    let mut scoreboards = 0;
    let collect = async {
        while finished.len() < files.len() {
            let Some(event) = receiver.recv().await else { break };
            match event {
                CollectorEvent::Scoreboard { league, .. } => {
                    assert_eq!(league, League::Nba);
                    scoreboards += 1;
                }
                CollectorEvent::Plays(batch) => {
                    for change in batch.changes {
                        assert_eq!(change.play.game_id, batch.game_id);
                        late += usize::from(change.late_insert);
                        match change.kind {
                            ChangeKind::New => *new.entry(change.play.play_id).or_default() += 1,
                            ChangeKind::Updated => updated.push(change.play.play_id),
                            ChangeKind::Deleted => panic!("nothing is deleted: {}", change.play.play_id),
                        }
                    }
                }
                CollectorEvent::GameFinished { game_id, .. } => finished.push(game_id),
                CollectorEvent::Undecodable { url, reason, .. } => panic!("no fault injected, yet {url}: {reason}"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, collect).await?;
    cancel.cancel();
    poller.await??;

    finished.sort();
    assert_eq!(finished, ["401585607", "401810084"]);
    assert_eq!(new.len(), 450 + 437, "every play of both games");
    assert!(new.values().all(|count| *count == 1), "each exactly once");
    // Corrections arrive as updates of plays already delivered (how many were seen preliminary depends on
    // the poll timing; the fake-server unit tests pin that down).
    let corrected: HashSet<String> = fake.corrections().into_iter().map(|c| c.play_id).collect();
    assert!(!updated.is_empty(), "corrections are delivered as updates");
    assert!(updated.iter().all(|id| corrected.contains(id) && new.contains_key(id)), "{updated:?}");
    assert!(late > 0, "late-logged plays arrive as late inserts");
    assert!(scoreboards > 1);
    // Each game collector stopped: after the final whistle it fetched exactly once more, then no more polls.
    let polls_after = fake.request_count("summary?event=");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.request_count("summary?event="), polls_after);
    running.shutdown().await;
    Ok(())
}

async fn collect_until(
    receiver: &mut mpsc::Receiver<CollectorEvent>,
    mut stop: impl FnMut(&CollectorEvent) -> bool,
) -> Vec<PlayChange> {
    let mut plays = Vec::new();
    while let Some(event) = receiver.recv().await {
        let done = stop(&event);
        if let CollectorEvent::Plays(batch) = event {
            plays.extend(batch.changes);
        }
        if done {
            break;
        }
    }
    plays
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_restored_state_re_emits_nothing() -> anyhow::Result<()> {
    let (fake, running, client) = live_fake(&["mbb-summary-401828387.json"]).await?;
    let config = fast(League::MensCollege);
    let game = "401828387".to_owned();

    // First run: about half of the game, then the process "dies" while a correction is in flight.
    let half = fake.replay_duration() / 2;
    let crash_at = fake.corrections().iter().map(|c| c.shown_at).filter(|at| *at >= half).min().unwrap_or(half);
    fake.advance(crash_at);
    let (sender, mut receiver) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let first =
        tokio::spawn(PlayCollector::new(Arc::clone(&client), &config, game.clone(), sender).run(cancel.clone()));
    let before =
        tokio::time::timeout(PATIENCE, collect_until(&mut receiver, |e| matches!(e, CollectorEvent::Plays(_)))).await?;
    cancel.cancel();
    first.await??;
    assert!(!before.is_empty() && before.len() < 440, "a partial game: {}", before.len());
    assert!(before.iter().all(|change| change.kind == ChangeKind::New));
    let before: Vec<_> = before.into_iter().map(|change| change.play).collect();

    // Restart: the state is rebuilt from what was emitted (what the raw.plays topic holds), the game goes on.
    let restored = GameSnapshotState::restore(&before);
    fake.advance(fake.replay_duration());
    let (sender, mut receiver) = mpsc::channel(64);
    let second = PlayCollector::new(Arc::clone(&client), &config, game.clone(), sender).with_state(restored);
    let second = tokio::spawn(second.run(CancellationToken::new()));
    let after = tokio::time::timeout(
        PATIENCE,
        collect_until(&mut receiver, |e| matches!(e, CollectorEvent::GameFinished { .. })),
    )
    .await?;
    let final_state = second.await??;

    let (new_after, updated_after): (Vec<_>, Vec<_>) =
        after.into_iter().partition(|change| change.kind == ChangeKind::New);
    assert_eq!(before.len() + new_after.len(), 440, "every play, once, across the restart");
    assert!(new_after.iter().all(|c| !before.iter().any(|b| b.play_id == c.play.play_id)), "nothing re-emitted");
    // Only the plays that were still preliminary when the process died come again, corrected.
    let mut updated_after: Vec<String> = updated_after.into_iter().map(|change| change.play.play_id).collect();
    let mut pending_at_half: Vec<String> = fake
        .corrections()
        .into_iter()
        .filter(|c| c.shown_at <= crash_at && crash_at < c.corrected_at)
        .map(|c| c.play_id)
        .collect();
    updated_after.sort();
    pending_at_half.sort();
    assert!(!pending_at_half.is_empty(), "the crash catches a correction in flight");
    assert_eq!(updated_after, pending_at_half);
    assert_eq!(final_state.len(), 440);
    running.shutdown().await;
    Ok(())
}

/// Runs one game's collector to the end with `faults` injected, returning its events.
async fn collect_game_with_faults(
    file: &str,
    game: &str,
    faults: Vec<FaultRule>,
) -> anyhow::Result<Vec<CollectorEvent>> {
    let (fake, running, client) = live_fake(&[file]).await?;
    for rule in faults {
        fake.push_fault(rule);
    }
    let cancel = CancellationToken::new();
    drive_clock(fake.clone(), Duration::from_secs(300), Duration::from_millis(20), cancel.clone());
    let (sender, mut receiver) = mpsc::channel(64);
    let collector = PlayCollector::new(Arc::clone(&client), &fast(League::Nba), game.to_owned(), sender);
    let collector = tokio::spawn(collector.run(CancellationToken::new()));
    let mut events = Vec::new();
    let collect = async {
        while let Some(event) = receiver.recv().await {
            let done = matches!(event, CollectorEvent::GameFinished { .. });
            events.push(event);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(PATIENCE, collect).await?;
    collector.await??;
    cancel.cancel();
    running.shutdown().await;
    Ok(events)
}

fn undecodable(events: &[CollectorEvent]) -> Vec<&CollectorEvent> {
    events.iter().filter(|event| matches!(event, CollectorEvent::Undecodable { .. })).collect()
}

fn new_plays(events: &[CollectorEvent]) -> HashSet<String> {
    events
        .iter()
        .filter_map(|event| match event {
            CollectorEvent::Plays(batch) => Some(batch.changes.iter()),
            _ => None,
        })
        .flatten()
        .filter(|change| change.kind == ChangeKind::New)
        .map(|change| change.play.play_id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_summary_is_delivered_and_the_game_still_lands() -> anyhow::Result<()> {
    let game = "401810084";
    let fault = FaultRule::times(&format!("summary?event={game}"), Fault::Malformed, 1);
    let events = collect_game_with_faults("nba-summary-401810084.json", game, vec![fault]).await?;
    let bad = undecodable(&events);
    assert_eq!(bad.len(), 1, "{bad:?}");
    let CollectorEvent::Undecodable { league, game_id, url, body, reason } = bad[0] else { unreachable!() };
    assert_eq!(*league, League::Nba);
    assert_eq!(game_id.as_deref(), Some(game));
    assert!(url.ends_with(&format!("/apis/site/v2/sports/basketball/nba/summary?event={game}")), "{url}");
    assert!(body.starts_with(b"<!doctype html>"), "the bytes as served: {body:?}");
    assert!(reason.contains("summary"), "the parse error: {reason}");
    assert!(matches!(events.first(), Some(CollectorEvent::Undecodable { .. })), "the first fetch was the bad one");
    assert_eq!(new_plays(&events).len(), 437, "every play of the game still arrives");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bad_body_is_delivered_once_other_bytes_again() -> anyhow::Result<()> {
    let game = "401810084";
    let path = format!("summary?event={game}");
    // Three identical bad bodies in a row: one event. Then a truncated body (other bytes): a second one.
    let faults = vec![FaultRule::times(&path, Fault::Malformed, 3), FaultRule::times(&path, Fault::Truncate, 1)];
    let events = collect_game_with_faults("nba-summary-401810084.json", game, faults).await?;
    let bad = undecodable(&events);
    assert_eq!(bad.len(), 2, "one per distinct bad body: {bad:?}");
    assert!(matches!(bad[1], CollectorEvent::Undecodable { body, .. } if body.starts_with(b"{")), "{:?}", bad[1]);
    assert_eq!(new_plays(&events).len(), 437);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_scoreboard_is_delivered_without_a_game_id() -> anyhow::Result<()> {
    let (fake, running, client) = live_fake(&["nba-summary-401810084.json"]).await?;
    fake.push_fault(FaultRule::times("/scoreboard", Fault::Malformed, 1));
    let (sender, mut receiver) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let poller =
        tokio::spawn(ScoreboardPoller::new(Arc::clone(&client), fast(League::Nba), sender).run(cancel.clone()));
    let first = tokio::time::timeout(PATIENCE, receiver.recv()).await?;
    let Some(CollectorEvent::Undecodable { game_id: None, url, body, .. }) = first else {
        panic!("expected the bad scoreboard first, got {first:?}")
    };
    assert!(url.ends_with("/apis/site/v2/sports/basketball/nba/scoreboard"), "{url}");
    assert!(body.starts_with(b"<!doctype html>"));
    // Polling goes on: a good scoreboard follows (the game collector it starts may deliver plays first).
    let next_board = async {
        loop {
            match receiver.recv().await {
                Some(CollectorEvent::Scoreboard { .. }) => break true,
                Some(CollectorEvent::Undecodable { .. }) | None => break false,
                Some(_) => {}
            }
        }
    };
    assert!(tokio::time::timeout(PATIENCE, next_board).await?, "a good scoreboard after the bad one");
    cancel.cancel();
    poller.await??;
    running.shutdown().await;
    Ok(())
}

/// A play taken out of the feed just before the final whistle is still deleted: after the final snapshot the
/// collector keeps polling while a play is half-way to deletion (a 304 counting as the same snapshot again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_play_removed_at_the_end_is_deleted_before_the_collector_stops() -> anyhow::Result<()> {
    let paths = [common::fixtures_dir().join("nba-summary-401810084.json")];
    let fake =
        FakeEspn::from_files(&paths, FakeOptions { live: true, speed: 1.0, corrections: false, deletions: true })?;
    fake.use_manual_clock();
    let running = fake.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let client = Arc::new(EspnClient::new(ClientConfig::with_base_url(&running.base_url()), &mut Registry::default())?);
    let phantom = fake
        .deletions()
        .into_iter()
        .find(|d| d.kind == pbp_espn::fake::DeletionKind::Phantom)
        .ok_or_else(|| anyhow::anyhow!("the replay logs a phantom basket"))?;
    // The collector first sees the game with the phantom in it.
    fake.advance(phantom.shown_at);
    let (events, mut receiver) = mpsc::channel(64);
    let config = CollectorConfig { plays_interval: Duration::from_millis(20), ..CollectorConfig::new(League::Nba) };
    let collector = PlayCollector::new(client, &config, phantom.game_id.clone(), events);
    let cancel = CancellationToken::new();
    let run = tokio::spawn(collector.run(cancel.clone()));
    let seen = tokio::time::timeout(PATIENCE, async {
        collect_until(&mut receiver, |event| {
            matches!(event, CollectorEvent::Plays(batch) if batch.changes.iter().any(|c| c.play.play_id == phantom.play_id))
        })
        .await
    })
    .await?;
    assert!(seen.iter().any(|c| c.play.play_id == phantom.play_id && c.kind == ChangeKind::New));
    // Then straight to the final whistle: the phantom is gone from the final snapshot only.
    fake.advance(fake.replay_duration());
    let rest = tokio::time::timeout(PATIENCE, async {
        collect_until(&mut receiver, |event| matches!(event, CollectorEvent::GameFinished { .. })).await
    })
    .await?;
    let deleted: Vec<&str> =
        rest.iter().filter(|c| c.kind == ChangeKind::Deleted).map(|c| c.play.play_id.as_str()).collect();
    assert_eq!(deleted, [phantom.play_id.as_str()], "deleted once, before the collector stopped");
    let state = tokio::time::timeout(PATIENCE, run).await???;
    assert_eq!(state.pending_deletions(), 0);
    cancel.cancel();
    running.shutdown().await;
    Ok(())
}

/// A cache that serves an older copy of the live document (without the latest play), and then `304` for that
/// copy's ETag, shows one stale document twice: that must not delete the play. Only snapshots that ESPN really
/// sent again count before the final whistle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_copy_and_its_304_do_not_delete_a_live_play() -> anyhow::Result<()> {
    let paths = [common::fixtures_dir().join("nba-summary-401810084.json")];
    let fake =
        FakeEspn::from_files(&paths, FakeOptions { live: true, speed: 1.0, corrections: false, deletions: false })?;
    fake.use_manual_clock();
    fake.advance(fake.replay_duration() / 2);
    let running = fake.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let client = Arc::new(EspnClient::new(ClientConfig::with_base_url(&running.base_url()), &mut Registry::default())?);
    let game_id = "401810084";
    // The live document now, and a stale copy of it without its latest play.
    let url = format!("{}/apis/site/v2/sports/basketball/nba/summary?event={game_id}", running.base_url());
    let current: serde_json::Value = serde_json::from_slice(&reqwest::get(&url).await?.bytes().await?)?;
    let mut stale = current.clone();
    let plays = stale["plays"].as_array_mut().ok_or_else(|| anyhow::anyhow!("a plays array"))?;
    let latest = plays.pop().ok_or_else(|| anyhow::anyhow!("plays revealed"))?;
    let latest_id = latest["id"].as_str().unwrap_or_default().to_owned();

    let (events, mut receiver) = mpsc::channel(64);
    let config = CollectorConfig { plays_interval: Duration::from_millis(20), ..CollectorConfig::new(League::Nba) };
    let collector = PlayCollector::new(client, &config, game_id.to_owned(), events);
    let cancel = CancellationToken::new();
    let run = tokio::spawn(collector.run(cancel.clone()));
    let first = tokio::time::timeout(PATIENCE, async {
        collect_until(&mut receiver, |event| matches!(event, CollectorEvent::Plays(_))).await
    })
    .await?;
    assert!(first.iter().any(|c| c.play.play_id == latest_id), "the latest play was delivered");
    // The next two fetches: the stale copy, then (for its ETag) 304. Then the real document again.
    let requests_before = fake.request_count("/summary");
    fake.push_fault(FaultRule::times(
        "/summary",
        Fault::Serve { body: bytes::Bytes::from(serde_json::to_vec(&stale)?), etag: "\"stale\"".to_owned() },
        2,
    ));
    tokio::time::timeout(PATIENCE, async {
        while fake.request_count("/summary") < requests_before + 6 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await?;
    cancel.cancel();
    let state = tokio::time::timeout(PATIENCE, run).await???;
    let mut later = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        if let CollectorEvent::Plays(batch) = event {
            later.extend(batch.changes);
        }
    }
    let deleted: Vec<&str> =
        later.iter().filter(|c| c.kind == ChangeKind::Deleted).map(|c| c.play.play_id.as_str()).collect();
    assert!(deleted.is_empty(), "no play deleted by a stale copy: {deleted:?}");
    assert_eq!(state.pending_deletions(), 0, "the play is back in the feed");
    running.shutdown().await;
    Ok(())
}
