//! `pbp bench ...`: benchmarks. Each prints progress on stderr and, as its last stdout line, one JSON object.

use clap::Subcommand;

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {}

pub(crate) async fn run(bench: BenchCommand) -> anyhow::Result<()> {
    match bench {}
}
