//! Live ingest: the ESPN collectors (one scoreboard poller per league, which starts a play-by-play collector per
//! live game) feeding [`Ingest`] until shutdown.

use std::sync::Arc;
use std::time::Duration;

use pbp_avro::SchemaRegistry;
use pbp_dataflow::{Shutdown, Transport};
use pbp_espn::collect::{CollectorConfig, ScoreboardPoller};
use pbp_espn::{ClientConfig, EspnClient};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ingest::{Ingest, IngestStats};
use crate::cmd::common::EspnArgs;

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
        let poller = ScoreboardPoller::new(client.clone(), config, events.clone());
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
