//! `pbp espn ...`: ESPN tools — normalize recorded files to NDJSON, serve recorded files as a fake ESPN.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use pbp_espn::League;
use pbp_espn::fake::{FakeEspn, FakeOptions};
use pbp_espn::model::{self, PlayDocument};
use pbp_espn::normalize;

/// ESPN tools.
#[derive(Debug, Subcommand)]
pub(crate) enum EspnCommand {
    /// Print every play of summary, cdn play-by-play or core plays files as NDJSON, in game order.
    Normalize(NormalizeArgs),
    /// Serve recorded ESPN files at ESPN's paths (optionally replaying finished games live).
    ServeFixtures(ServeFixturesArgs),
}

/// Options of `pbp espn normalize`.
#[derive(Debug, Args)]
pub(crate) struct NormalizeArgs {
    /// Files to normalize (site summary, cdn play-by-play or core plays page; recognised by content).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// League to assume when a file does not name one (nba, wnba, mens-college-basketball, …).
    #[arg(long)]
    league: Option<League>,
}

/// Options of `pbp espn serve-fixtures`.
#[derive(Debug, Args)]
pub(crate) struct ServeFixturesArgs {
    /// Folder of recorded ESPN JSON files.
    #[arg(long)]
    dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Replay finished games as if in progress.
    #[arg(long)]
    live: bool,
    /// Replay speed (1 = real time).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// With --live, serve every play as recorded from the start (no preliminary versions corrected later).
    #[arg(long)]
    no_corrections: bool,
    /// With --live, never take a play out of the feed (no phantom basket removed, no foul withdrawn and put back).
    #[arg(long)]
    no_deletions: bool,
}

pub(crate) async fn run(command: EspnCommand) -> anyhow::Result<()> {
    match command {
        EspnCommand::Normalize(args) => normalize_files(args),
        EspnCommand::ServeFixtures(args) => serve_fixtures(args).await,
    }
}

fn normalize_files(args: NormalizeArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = 0;
    for file in &args.files {
        match normalize_file(file, args.league, &mut out) {
            Ok(plays) => tracing::info!(file = %file.display(), plays, "Normalized."),
            Err(error) => {
                // Writing failed, not the file: stop here (main ends quietly on a closed stdout).
                if crate::is_broken_pipe(&error) {
                    return Err(error);
                }
                failed += 1;
                eprintln!("{}: {error:#}", file.display());
            }
        }
    }
    out.flush()?;
    if failed > 0 {
        anyhow::bail!("{failed} of {} file(s) could not be normalized", args.files.len());
    }
    Ok(())
}

fn normalize_file(file: &PathBuf, league: Option<League>, out: &mut impl Write) -> anyhow::Result<usize> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (_, plays) = match model::parse_play_document(&bytes)? {
        PlayDocument::Summary(summary) => normalize::normalize_summary(&summary, league),
        PlayDocument::CorePlays(page) => normalize::normalize_core_page(&page, league),
    };
    for play in &plays {
        serde_json::to_writer(&mut *out, play)?;
        out.write_all(b"\n")?;
    }
    Ok(plays.len())
}

async fn serve_fixtures(args: ServeFixturesArgs) -> anyhow::Result<()> {
    let options = FakeOptions {
        live: args.live,
        speed: args.speed,
        corrections: !args.no_corrections,
        deletions: !args.no_deletions,
    };
    let fake = FakeEspn::from_dir(&args.dir, options)?;
    let games = fake.games_with_plays();
    let running = fake.bind(args.listen).await?;
    tracing::info!(
        base_url = %running.base_url(),
        games = games.len(),
        live = args.live,
        speed = args.speed,
        corrections = fake.corrections().len(),
        replay_seconds = fake.replay_duration().as_secs_f64() / args.speed,
        "Fake ESPN serving; Ctrl-C stops it."
    );
    for (league, game_id) in &games {
        tracing::info!(%league, %game_id, "Game available.");
    }
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    running.shutdown().await;
    Ok(())
}
