//! `pbp`: the Play-by-Play command as a library. A thin composition of the library crates; each subcommand
//! lives in its own module under `cmd/`. The `pbp` binary (`main.rs`) only calls [`run`]; being a library
//! lets the fuzz targets under `pbp-bin/fuzz/` reach the request parsers through [`fuzzing`].
#![forbid(unsafe_code)]

mod cmd;
mod http;
mod logging;
mod pipelines;
mod push;
#[cfg(test)]
mod testing;
mod topics;

#[doc(hidden)]
pub mod fuzzing;

use clap::{Parser, Subcommand};

/// Play-by-Play: real-time basketball data, from ESPN through a dataflow pipeline to clients.
#[derive(Debug, Parser)]
#[command(name = "pbp", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    log: logging::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system in one process: ingest, enrich and store. On the embedded default (no services)
    /// unless told otherwise.
    Run(cmd::pipelines::RunArgs),
    /// Poll ESPN and write teams, games and plays to the raw topics (needs a Kafka transport).
    Ingest(cmd::pipelines::IngestArgs),
    /// Join plays with their teams, derive fields and keep each game's state (needs a Kafka transport).
    Enrich(cmd::pipelines::EnrichArgs),
    /// Store teams, games, enriched plays and game states, refreshing the cache (needs a Kafka transport).
    Serve(cmd::pipelines::ServeArgs),
    /// Push recorded ESPN games through ingest, enrich and store as fast as possible.
    Replay(cmd::replay::ReplayArgs),
    /// Serve the Confluent Schema Registry REST API subset that pbp uses, with schemas kept in a compacted
    /// topic (`--transport kafka://...`) or a journal file (`--data-dir`).
    ///
    /// Schemas are kept in one place, read at start and written before each change is acknowledged: with a
    /// Kafka --transport in the compacted topic --schemas-topic (one partition; run one registry per topic,
    /// as its only writer), with --data-dir in the file schemas.journal there; giving both is an error.
    /// With neither, they live in memory and are lost at exit.
    SchemaRegistry(cmd::schema_registry::SchemaRegistryArgs),
    /// Kafka topics: create the project's topics with their partition counts and configs.
    #[command(subcommand)]
    Topics(cmd::topics::TopicsCommand),
    /// ESPN tools: normalize recorded files, serve them as a fake ESPN.
    #[command(subcommand)]
    Espn(cmd::espn::EspnCommand),
    /// Benchmarks whose last output line is one JSON object.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

/// Parses the command line and runs the command: the whole of `pbp`.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(&cli.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => cmd::pipelines::run(args).await,
            Command::Ingest(args) => cmd::pipelines::ingest(args).await,
            Command::Enrich(args) => cmd::pipelines::enrich(args).await,
            Command::Serve(args) => cmd::pipelines::serve(args).await,
            Command::Replay(args) => cmd::replay::run(args).await,
            Command::SchemaRegistry(args) => cmd::schema_registry::run(args).await,
            Command::Topics(topics) => cmd::topics::run(topics).await,
            Command::Espn(espn) => cmd::espn::run(espn).await,
            Command::Bench(bench) => cmd::bench::run(bench).await,
        }
    });
    match result {
        // The reader of our output went away (`pbp espn normalize ... | head`): nothing left to do.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

/// True when the error comes from writing to a closed pipe (directly or through serde_json).
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    error.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == BrokenPipe)
            || c.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind) == Some(BrokenPipe)
    })
}
