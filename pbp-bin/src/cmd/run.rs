//! `pbp run`: the main job on the embedded default.
//!
//! Until the ingest, enrich and store pipelines land, this runs the example dataflow pipeline
//! (`pbp_examples::team_points`: validate → filter → GlobalTable join → keyed aggregate → sink, with a
//! dead-letter queue) over the embedded log on built-in sample data, prints its result and exits.

use clap::Args;

/// Options of `pbp run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {}

pub(crate) async fn run(_args: RunArgs) -> anyhow::Result<()> {
    eprintln!(
        "pbp run: the ESPN pipelines are not built yet; running the example dataflow pipeline on the embedded log."
    );
    let summary = pbp_examples::team_points::run_demo().await.map_err(|e| anyhow::anyhow!(e))?;
    println!("Totals per team:");
    for (team, total) in &summary.totals {
        println!("  {team:>3} {:<4} {:>3} points in {} events", total.abbreviation, total.points, total.events);
    }
    println!("Dead letters:");
    for (key, stage, message) in &summary.dead_letters {
        println!("  key {key:<3} stage {stage:<13} {message}");
    }
    Ok(())
}
