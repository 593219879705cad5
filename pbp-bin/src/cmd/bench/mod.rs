//! `pbp bench ...`: benchmarks. Each prints progress on stderr and, as its last stdout line, one JSON object.

mod avro;

use clap::Subcommand;

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Avro encode+decode of PlayEvent records: pbp-avro's codec against apache-avro's Value path.
    Avro(avro::AvroArgs),
}

pub(crate) async fn run(bench: BenchCommand) -> anyhow::Result<()> {
    match bench {
        BenchCommand::Avro(args) => avro::run(args).await,
    }
}
