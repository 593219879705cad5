//! `pbp replay FILE_OR_DIR...`: recorded ESPN games through the same ingest → enrich → store path as a live run,
//! as fast as the machine allows. Ends with one JSON line on stdout:
//! `{"games":G,"plays":P,"seconds":S,"plays_per_sec":R}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pbp_espn::League;
use pbp_espn::model::{self, DocumentKind, PlayDocument, Summary, TeamsResponse};
use tokio::task::JoinSet;

use super::common::{Metrics, ServiceArgs};
use super::pipelines::serve_pipelines_with;
use crate::pipelines::ingest::{Ingest, ReplayCopy};
use crate::pipelines::{DynPipeline, drain, enrich};

/// Options of `pbp replay`.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Recorded ESPN files, or folders of them (their `*.json` files). Site summaries and cdn play-by-play pages
    /// are replayed and teams lists loaded; scoreboards and core plays pages are skipped; a file that cannot be
    /// read as what it claims to be goes to `dlq.ingest` with the reason.
    #[arg(required = true, value_name = "FILE_OR_DIR")]
    inputs: Vec<PathBuf>,
    /// Replay every game N times; copy k > 0 gets the game id `<id>r<k>` and a tip-off k days later, so that a
    /// few recorded games make a season.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    #[command(flatten)]
    services: ServiceArgs,
}

/// What a recorded file turned out to be.
enum Recorded {
    Game { path: PathBuf, summary: Box<Summary> },
    Teams { league: League, teams: TeamsResponse },
    Skipped { path: PathBuf, what: &'static str },
    Unusable { path: PathBuf, bytes: Bytes, reason: String },
}

fn classify(path: PathBuf, bytes: Vec<u8>) -> Recorded {
    let unusable =
        |path, bytes: Vec<u8>, reason: String| Recorded::Unusable { path, bytes: Bytes::from(bytes), reason };
    let kind = match model::document_kind(&bytes) {
        Ok(kind) => kind,
        Err(error) => return unusable(path, bytes, error.to_string()),
    };
    match kind {
        DocumentKind::Summary | DocumentKind::CdnPlayByPlay => match model::parse_play_document(&bytes) {
            Ok(PlayDocument::Summary(summary)) => Recorded::Game { path, summary: Box::new(summary) },
            Ok(PlayDocument::CorePlays(_)) => Recorded::Skipped { path, what: "a core plays page" },
            Err(error) => unusable(path, bytes, error.to_string()),
        },
        DocumentKind::Teams => match model::parse_teams(&bytes) {
            Ok(teams) => {
                let slug = teams.sports.iter().flat_map(|s| &s.leagues).find_map(|l| l.slug.clone());
                match slug.as_deref().and_then(League::from_slug) {
                    Some(league) => Recorded::Teams { league, teams },
                    None => unusable(path, bytes, format!("teams list of an unknown league {slug:?}")),
                }
            }
            Err(error) => unusable(path, bytes, error.to_string()),
        },
        DocumentKind::CorePlays => {
            Recorded::Skipped { path, what: "a core plays page (one page of a game, without its teams)" }
        }
        DocumentKind::Scoreboard => Recorded::Skipped { path, what: "a scoreboard" },
        DocumentKind::Unknown => {
            unusable(path, bytes, "not an ESPN summary, cdn play-by-play page or teams list".to_owned())
        }
    }
}

/// The files named on the command line, folders expanded to their `*.json` files in name order.
fn input_files(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("cannot list {}", input.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

fn name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

pub(crate) async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let mut recorded = Vec::new();
    for path in input_files(&args.inputs)? {
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        recorded.push(classify(path, bytes));
    }
    let registry = args.services.registry()?;
    let transport = args.services.connect_transport()?;
    let metrics = Metrics::new();
    crate::topics::ensure_all(transport.as_ref()).await?;
    let codecs = enrich::EnrichCodecs::register(registry.clone()).await?;
    let enrich: Box<dyn DynPipeline> = Box::new(enrich::pipeline(
        transport.clone(),
        codecs,
        args.services.pipeline_config(),
        metrics.dataflow.clone(),
    ));
    let mut serve = serve_pipelines_with(&args.services, &transport, &metrics, registry.clone()).await?;
    let mut ingest = Ingest::new(&transport, registry).await?;

    let mut stages: Vec<(Box<dyn DynPipeline>, Stage)> = vec![(enrich, Stage::Enrich)];
    // serve_pipelines_with returns teams, games, plays, states.
    let states = serve.pop().context("serve pipelines")?;
    let plays = serve.pop().context("serve pipelines")?;
    let games = serve.pop().context("serve pipelines")?;
    let teams = serve.pop().context("serve pipelines")?;
    stages.extend([
        (teams, Stage::FromIngest),
        (games, Stage::FromIngest),
        (plays, Stage::FromEnrich),
        (states, Stage::FromEnrich),
    ]);
    // Groups are joined before anything is written, so that the embedded log keeps every record for them.
    for (pipeline, _) in &mut stages {
        pipeline.open().await?;
    }

    let started = Instant::now();
    let ingest_done = Arc::new(AtomicBool::new(false));
    let enrich_done = Arc::new(AtomicBool::new(false));
    let mut running = JoinSet::new();
    for (mut pipeline, stage) in stages {
        let (upstream, done) = match stage {
            Stage::Enrich => (vec![ingest_done.clone()], enrich_done.clone()),
            Stage::FromIngest => (vec![ingest_done.clone()], Arc::new(AtomicBool::new(false))),
            Stage::FromEnrich => (vec![enrich_done.clone()], Arc::new(AtomicBool::new(false))),
        };
        running.spawn(async move {
            let name = pipeline.name().to_owned();
            (name, drain(pipeline.as_mut(), &upstream, &done).await)
        });
    }

    let games: Vec<&Recorded> = recorded.iter().filter(|r| matches!(r, Recorded::Game { .. })).collect();
    let total = games.len() as u64 * u64::from(args.repeat);
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} games {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for record in &recorded {
        match record {
            Recorded::Teams { league, teams } => ingest.teams(*league, teams).await?,
            Recorded::Skipped { path, what } => tracing::info!(file = %name(path), what, "Skipped."),
            Recorded::Unusable { path, bytes, reason } => {
                ingest.dead_letter(Some(&name(path)), Some(bytes.clone()), "UnusableFile", reason);
            }
            Recorded::Game { .. } => {}
        }
    }
    let mut plays = 0;
    for copy in 0..args.repeat {
        for game in &games {
            if let Recorded::Game { path, summary } = game {
                let sent = ingest
                    .summary(summary, None, ReplayCopy { copy })
                    .await
                    .with_context(|| format!("replaying {}", name(path)))?;
                plays += sent;
                bar.inc(1);
                bar.set_message(format!("{plays} plays"));
            }
        }
    }
    ingest.flush().await?;
    ingest_done.store(true, std::sync::atomic::Ordering::Release);
    bar.set_message(format!("{plays} plays ingested; enriching and storing the rest"));
    let mut failed = None;
    while let Some(ended) = running.join_next().await {
        let (name, result) = ended?;
        match result {
            Ok(stats) => tracing::info!(pipeline = name, ?stats, "Stage drained."),
            Err(error) => {
                failed.get_or_insert(anyhow::Error::new(error).context(format!("pipeline {name} failed")));
            }
        }
    }
    bar.finish_and_clear();
    if let Some(error) = failed {
        return Err(error);
    }
    let seconds = started.elapsed().as_secs_f64();
    let stats = ingest.stats();
    if stats.dead_letters > 0 {
        tracing::warn!(
            dead_letters = stats.dead_letters,
            topic = crate::topics::DLQ_INGEST,
            "Some input was dead-lettered."
        );
    }
    let result = serde_json::json!({
        "games": total,
        "plays": plays,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "plays_per_sec": (plays as f64 / seconds.max(1e-9)).round(),
    });
    println!("{result}");
    Ok(())
}

/// Which stage a pipeline is, for the drain order.
#[derive(Clone, Copy)]
enum Stage {
    Enrich,
    FromIngest,
    FromEnrich,
}
