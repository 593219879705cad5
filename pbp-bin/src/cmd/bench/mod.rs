//! `pbp bench ...`: benchmarks. Each prints progress on stderr and, as its last stdout line, one JSON object.

mod avro;
mod dataflow;
mod espn;
mod fanout;
mod kafka;
mod latency;
mod rest;
mod serving;

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
    /// From a play entering ingest to its frame at a WebSocket client, p50/p99.
    Latency(latency::LatencyArgs),
    /// Many WebSocket clients on one game: delivery time of every frame, and the server's memory.
    Fanout(fanout::FanoutArgs),
    /// The clients of `pbp bench fanout`, in their own process (started by it).
    #[command(hide = true)]
    FanoutClients(fanout::FanoutClientsArgs),
    /// Requests per second of the plays route against a trivial route of the same server (runs wrk).
    Rest(rest::RestArgs),
}

pub(crate) async fn run(bench: BenchCommand) -> anyhow::Result<()> {
    match bench {
        BenchCommand::Dataflow(args) => dataflow::run(args).await,
        BenchCommand::Avro(args) => avro::run(args).await,
        BenchCommand::Espn(args) => espn::run(args),
        BenchCommand::Kafka(args) => kafka::run(args).await,
        BenchCommand::Latency(args) => latency::run(args).await,
        BenchCommand::Fanout(args) => fanout::run(args).await,
        BenchCommand::FanoutClients(args) => fanout::run_clients(args).await,
        BenchCommand::Rest(args) => rest::run(args).await,
    }
}
