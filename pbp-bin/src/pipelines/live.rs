//! Live ingest: the ESPN collectors (one scoreboard poller per league, which starts a play-by-play collector per
//! live game) feeding [`Ingest`] until shutdown. A restarted ingest first rebuilds its collectors' states from
//! what it already published to `raw.plays` ([`restore_states`]), so that it emits only what changed while it was
//! down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pbp_avro::{AvroCodec, ChangeKind, PlayEvent, SchemaRegistry};
use pbp_dataflow::transport::read_to_end;
use pbp_dataflow::{Codec, CodecError, Shutdown, Transport};
use pbp_espn::collect::{CollectorConfig, ScoreboardPoller};
use pbp_espn::diff::GameSnapshotState;
use pbp_espn::normalize::NormalizedPlay;
use pbp_espn::{ClientConfig, EspnClient, League};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::convert::{normalized_play, now_millis};
use super::ingest::{FINGERPRINT_HEADER, Ingest, IngestStats};
use crate::cmd::common::EspnArgs;
use crate::topics;

/// Polls ESPN and writes what it finds to the raw topics until `shutdown`; returns what was sent.
pub(crate) async fn run_ingest(
    transport: &Arc<dyn Transport>,
    registry: Arc<dyn SchemaRegistry>,
    espn: &EspnArgs,
    metrics: &std::sync::Mutex<prometheus_client::registry::Registry>,
    shutdown: Shutdown,
) -> anyhow::Result<IngestStats> {
    let mut ingest = Ingest::new(transport, registry).await?;
    let config = espn.espn_url.as_deref().map_or_else(ClientConfig::default, ClientConfig::with_base_url);
    let client = {
        let mut registry = metrics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::new(EspnClient::new(config, &mut registry)?)
    };
    for &league in &espn.leagues {
        // ESPN may be slow or unreachable (retries with backoff): a shutdown does not wait for the fetch.
        let fetched = tokio::select! {
            () = shutdown.wait() => {
                tracing::info!(stats = ?ingest.stats(), "Ingest stopped before polling.");
                return Ok(ingest.stats());
            }
            fetched = client.teams(league) => fetched,
        };
        match fetched {
            Ok(fetched) => ingest.teams(league, &fetched.value).await?,
            // Teams also arrive with every scoreboard; the list only fills in teams not playing today.
            Err(error) => tracing::warn!(%error, %league, "Teams fetch failed; teams come from the scoreboards."),
        }
    }
    // What an earlier run already published: its collectors resume from it instead of re-emitting every play.
    let mut restored = tokio::select! {
        () = shutdown.wait() => {
            tracing::info!(stats = ?ingest.stats(), "Ingest stopped before polling.");
            return Ok(ingest.stats());
        }
        restored = restore_states(transport.as_ref(), ingest.play_codec(), RESTORE_WINDOW) => restored?,
    };
    let (events, mut received) = mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let mut pollers = JoinSet::new();
    for &league in &espn.leagues {
        let mut config = CollectorConfig::new(league);
        config.date.clone_from(&espn.date);
        config.plays_interval = Duration::from_millis(espn.plays_interval_ms.max(10));
        config.scoreboard_live_interval = Duration::from_millis(espn.scoreboard_interval_ms.max(10));
        config.scoreboard_interval = config.scoreboard_live_interval * 3;
        config.delete_after_absent_snapshots = espn.delete_after_polls;
        let poller = ScoreboardPoller::new(client.clone(), config, events.clone())
            .with_restored_states(restored.remove(&league).unwrap_or_default());
        let token = cancel.clone();
        pollers.spawn(async move { (league, poller.run(token).await) });
    }
    drop(events);
    tracing::info!(leagues = ?espn.leagues, espn = espn.espn_url.as_deref().unwrap_or("ESPN"), "Ingest polling.");
    let result = loop {
        tokio::select! {
            () = shutdown.wait() => break Ok(()),
            event = received.recv() => match event {
                Some(event) => {
                    if let Err(error) = ingest.handle(event).await {
                        break Err(error);
                    }
                }
                None => break Ok(()),
            },
            Some(ended) = pollers.join_next() => match ended {
                Ok((league, Ok(()))) => tracing::info!(%league, "Scoreboard poller stopped."),
                Ok((league, Err(error))) => tracing::error!(%error, %league, "Scoreboard poller failed."),
                Err(error) => tracing::error!(%error, "Scoreboard poller panicked."),
            },
        }
    };
    cancel.cancel();
    while pollers.join_next().await.is_some() {}
    // What the collectors delivered before they stopped is written too.
    while let Ok(event) = received.try_recv() {
        ingest.handle(event).await?;
    }
    ingest.flush().await?;
    result?;
    tracing::info!(stats = ?ingest.stats(), "Ingest stopped.");
    Ok(ingest.stats())
}

/// How far back ingest looks in `raw.plays` for what it already published: games whose last record is older are
/// over and are not collected again.
const RESTORE_WINDOW: Duration = Duration::from_secs(36 * 3600);

/// Per league, per game: the snapshot state of every game with a play published to `raw.plays` within `window`, as
/// the last run of ingest left it (the restart rule of `pbp_espn::diff`). Each play's latest record wins; a play
/// whose latest record is a deletion is left out. On the embedded log, whose topics live in memory, there is
/// nothing to restore: everything downstream starts empty too, and needs the plays again.
pub(crate) async fn restore_states(
    transport: &dyn Transport,
    codec: &AvroCodec<PlayEvent>,
    window: Duration,
) -> anyhow::Result<HashMap<League, HashMap<String, GameSnapshotState>>> {
    let started = std::time::Instant::now();
    let cutoff = now_millis() - i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let partitions: Vec<u32> = (0..transport.partitions(topics::RAW_PLAYS).await?).collect();
    let mut recent = Vec::new();
    read_to_end(transport, topics::RAW_PLAYS, &partitions, |r| {
        if r.record.timestamp >= cutoff {
            recent.push(r);
        }
    })
    .await?;
    // Per game, per play: the latest record (a game's records are in one partition, in the order sent).
    let mut games: HashMap<String, PublishedGame> = HashMap::new();
    let mut undecodable = 0;
    for r in &recent {
        let event = match decode_when_ready(codec, r.record.value.as_ref()).await {
            Ok(event) => event,
            Err(error) => {
                undecodable += 1;
                tracing::debug!(%error, origin = %r.origin, "A raw.plays record that cannot be decoded is not restored.");
                continue;
            }
        };
        let Ok(league) = event.league.parse::<League>() else { continue };
        let fingerprint =
            r.record.headers.get_str(FINGERPRINT_HEADER).and_then(|hex| u64::from_str_radix(hex, 16).ok());
        let game =
            games.entry(event.game_id.clone()).or_insert_with(|| PublishedGame { league, plays: HashMap::new() });
        game.plays.insert(event.play_id.clone(), (event, fingerprint));
    }
    let mut states: HashMap<League, HashMap<String, GameSnapshotState>> = HashMap::new();
    let mut plays_restored = 0;
    for (game_id, PublishedGame { league, plays }) in games {
        let emitted: Vec<(NormalizedPlay, u64)> = plays
            .into_values()
            .filter(|(event, _)| event.change != ChangeKind::Delete)
            .map(|(event, fingerprint)| {
                let play = normalized_play(&event);
                // Records written before fingerprints travelled with them: the best guess, which at worst makes
                // the play look corrected once (the store finds it unchanged).
                let fingerprint = fingerprint.unwrap_or_else(|| pbp_espn::diff::fingerprint(&play));
                (play, fingerprint)
            })
            .collect();
        plays_restored += emitted.len();
        states.entry(league).or_default().insert(game_id, GameSnapshotState::restore_fingerprinted(emitted));
    }
    tracing::info!(
        games = states.values().map(HashMap::len).sum::<usize>(),
        plays = plays_restored,
        records = recent.len(),
        undecodable,
        took = ?started.elapsed(),
        "Collector states restored from raw.plays."
    );
    Ok(states)
}

/// What ingest published of one game: per play id, the latest record and the fingerprint it carried.
struct PublishedGame {
    league: League,
    plays: HashMap<String, (PlayEvent, Option<u64>)>,
}

/// Decodes a `raw.plays` value, fetching its writer schema first when the codec has not seen it (retrying while
/// the registry does not answer).
async fn decode_when_ready(codec: &AvroCodec<PlayEvent>, value: Option<&Bytes>) -> Result<PlayEvent, CodecError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match codec.decode(value) {
            Err(error) if error.is_transient() => match codec.prepare(value).await {
                Ok(()) => {}
                Err(error) if error.is_transient() => {
                    tracing::warn!(%error, "Waiting for the schema registry to restore the collectors.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(error) => return Err(error),
            },
            decoded => return decoded,
        }
    }
}
