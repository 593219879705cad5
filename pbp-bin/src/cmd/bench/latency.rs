//! `pbp bench latency`: the time from a play entering ingest to its frame arriving at a WebSocket client,
//! through the whole path: ingest → raw.plays → enrich → enriched.plays → serve (store write) → hub → session.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use pbp_avro::registry::EmbeddedRegistry;
use pbp_dataflow::{PipelineConfig, Shutdown, TransportConfig};
use pbp_espn::collect::PlayBatch;
use pbp_espn::diff::{ChangeKind, PlayChange};
use pbp_espn::model;
use tokio_tungstenite::tungstenite::Message;

use super::serving::{BenchServer, quantile};
use crate::cmd::pipelines::run_all;
use crate::http::ws::WsSettings;
use crate::pipelines::ingest::{Ingest, ReplayCopy};
use crate::pipelines::{DynPipeline, enrich, serve};

/// Options of `pbp bench latency`.
#[derive(Debug, Args)]
pub(crate) struct LatencyArgs {
    /// The log the pipelines run on: `embedded`, or `kafka://HOST:PORT` (a broker whose `raw.plays`,
    /// `enriched.plays` and `game.state` hold no backlog for the pipelines' groups: a fresh one is best).
    #[arg(long, default_value = "embedded")]
    transport: TransportConfig,
    #[command(flatten)]
    fixtures: super::espn::Fixtures,
    /// Milliseconds between two plays.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Plays at the start that are not measured (the first batches prepare statements and warm caches).
    #[arg(long, default_value_t = 20)]
    warmup: usize,
}

pub(crate) async fn run(args: LatencyArgs) -> anyhow::Result<()> {
    let (path, bytes) = args.fixtures.largest_summary()?;
    let summary = model::parse_summary(&bytes)?;
    let server = BenchServer::start(1024, WsSettings::default()).await?;
    let transport = args.transport.connect().context("cannot connect the transport")?;
    let registry: Arc<dyn pbp_avro::SchemaRegistry> = Arc::new(EmbeddedRegistry::new());
    crate::topics::ensure_all(transport.as_ref()).await?;
    let dataflow = server.metrics.dataflow.clone();
    let config = PipelineConfig::default();
    let codecs = enrich::EnrichCodecs::register(registry.clone()).await?;
    let mut pipelines: Vec<Box<dyn DynPipeline>> =
        vec![Box::new(enrich::pipeline(transport.clone(), codecs, config.clone(), dataflow.clone()))];
    pipelines.extend(
        serve::pipelines(
            transport.clone(),
            registry.clone(),
            server.writer.clone(),
            config,
            dataflow,
            Duration::from_secs(30),
        )
        .await?,
    );
    for pipeline in &mut pipelines {
        pipeline.open().await?;
    }
    let shutdown = Shutdown::new();
    let running = tokio::spawn(run_all(pipelines, shutdown.clone()));

    // A game id of its own, so that a broker with earlier runs' records holds nothing of it.
    let copy = ReplayCopy { copy: (crate::pipelines::convert::now_millis() / 1000 % 1_000_000) as u32 + 1 };
    let mut ingest = Ingest::new(&transport, registry).await?;
    let game = ingest.summary_game(&summary, None, copy).await?.context("the summary names no league")?;
    ingest.flush().await?;
    let plays: Vec<_> = game.plays.iter().filter(|p| p.sequence.is_some()).cloned().collect();
    eprintln!(
        "bench latency: {} plays of {} ({}) every {} ms on {}",
        plays.len(),
        game.game_id,
        path.display(),
        args.interval_ms,
        transport_name(&args.transport)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.repository.game(&game.game_id).await?.is_none() {
        anyhow::ensure!(Instant::now() < deadline, "the game was not stored within 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let url = format!("ws://{}/ws/{}", server.addr, game.game_id);
    let (mut client, _) = tokio_tungstenite::connect_async(url).await?;
    let expected = plays.len();
    let (arrived_all, all_arrived) = tokio::sync::oneshot::channel::<()>();
    let arrivals = tokio::spawn(async move {
        let mut arrivals: HashMap<String, Instant> = HashMap::new();
        let mut arrived_all = Some(arrived_all);
        while let Some(Ok(message)) = client.next().await {
            let now = Instant::now();
            let Message::Text(text) = message else { continue };
            let frame: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if frame["type"] == "play"
                && frame["play"]["revision"] == 1
                && let Some(id) = frame["play"]["id"].as_str()
            {
                arrivals.entry(id.to_owned()).or_insert(now);
                if arrivals.len() == expected
                    && let Some(done) = arrived_all.take()
                {
                    let _ = done.send(());
                }
            }
        }
        arrivals
    });

    let mut sent: Vec<(String, Instant)> = Vec::with_capacity(plays.len());
    let mut ticks = tokio::time::interval(Duration::from_millis(args.interval_ms.max(1)));
    for (position, play) in plays.iter().enumerate() {
        ticks.tick().await;
        let batch = PlayBatch {
            league: game.league,
            game_id: game.game_id.clone(),
            changes: vec![PlayChange { kind: ChangeKind::New, position, late_insert: false, play: play.clone() }],
            vanished: Vec::new(),
        };
        sent.push((play.play_id.clone(), Instant::now()));
        ingest.plays(&batch).await?;
    }
    ingest.flush().await?;
    // Every frame arrives (or the wait ends), then the server stops: its sessions close, the client's loop ends.
    if tokio::time::timeout(Duration::from_secs(30), all_arrived).await.is_err() {
        eprintln!("bench latency: not every play reached the client within 30 s");
    }
    shutdown.trigger();
    running.await??;
    server.stop().await?;
    let arrivals = arrivals.await?;

    let mut micros: Vec<u64> = sent
        .iter()
        .skip(args.warmup)
        .filter_map(|(id, at)| arrivals.get(id).map(|arrived| arrived.duration_since(*at).as_micros() as u64))
        .collect();
    let missing = sent.len() - arrivals.len().min(sent.len());
    micros.sort_unstable();
    let ms = |q: f64| quantile(&micros, q).map_or(f64::NAN, |us| (us as f64 / 10.0).round() / 100.0);
    let result = serde_json::json!({
        "bench": "latency",
        "transport": transport_name(&args.transport),
        "plays": sent.len(),
        "measured": micros.len(),
        "missing": missing,
        "interval_ms": args.interval_ms,
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
        "max_ms": ms(1.0),
    });
    println!("{result}");
    anyhow::ensure!(missing == 0, "{missing} plays never reached the WebSocket client");
    Ok(())
}

fn transport_name(config: &TransportConfig) -> &'static str {
    match config {
        TransportConfig::Embedded { .. } => "embedded",
        TransportConfig::Kafka { .. } => "kafka",
    }
}
