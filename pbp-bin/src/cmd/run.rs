//! `pbp run`: the main job on the embedded default.

use clap::Args;

/// Options of `pbp run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {}

pub(crate) async fn run(_args: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("pbp run is being built")
}
