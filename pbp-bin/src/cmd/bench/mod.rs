//! `pbp bench ...`: benchmarks. Each prints progress on stderr and, as its last stdout line, one JSON object.

mod avro;
mod dataflow;

use clap::Subcommand;

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// The dataflow pipeline against the same work written by hand on the embedded log.
    Dataflow(dataflow::DataflowArgs),
    /// Avro encode+decode of PlayEvent records: pbp-avro's codec against apache-avro's Value path.
    Avro(avro::AvroArgs),
}

pub(crate) async fn run(bench: BenchCommand) -> anyhow::Result<()> {
    match bench {
        BenchCommand::Dataflow(args) => dataflow::run(args).await,
        BenchCommand::Avro(args) => avro::run(args).await,
    }
}
