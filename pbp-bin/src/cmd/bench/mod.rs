//! `pbp bench ...`: benchmarks. Each prints progress on stderr and, as its last stdout line, one JSON object.

mod espn;

use clap::Subcommand;

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Parse, normalize and diff the largest recorded ESPN summary many times.
    Espn(espn::EspnBenchArgs),
}

pub(crate) async fn run(bench: BenchCommand) -> anyhow::Result<()> {
    match bench {
        BenchCommand::Espn(args) => espn::run(args),
    }
}
