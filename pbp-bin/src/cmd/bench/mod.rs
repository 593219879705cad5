//! `pbp bench ...`: benchmarks. Each prints progress on stderr and, as its last stdout line, one JSON object.

mod avro;
mod dataflow;
mod espn;
mod kafka;

use clap::Subcommand;

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// The dataflow pipeline against the same work written by hand on the embedded log.
    Dataflow(dataflow::DataflowArgs),
    /// Avro encode+decode of PlayEvent records: pbp-avro's codec against apache-avro's Value path.
    Avro(avro::AvroArgs),
    /// Produce and consume through our Kafka transport and, in the same run, through bare rdkafka.
    Kafka(kafka::KafkaArgs),
    /// Parse, normalize and diff the largest recorded ESPN summary many times.
    Espn(espn::EspnBenchArgs),
}

pub(crate) async fn run(bench: BenchCommand) -> anyhow::Result<()> {
    match bench {
        BenchCommand::Dataflow(args) => dataflow::run(args).await,
        BenchCommand::Avro(args) => avro::run(args).await,
        BenchCommand::Espn(args) => espn::run(args),
        BenchCommand::Kafka(args) => kafka::run(args).await,
    }
}
