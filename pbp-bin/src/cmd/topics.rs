//! `pbp topics create`: makes the project's topics (see `crate::topics`) on a Kafka cluster, idempotently.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use pbp_dataflow::Transport;
use pbp_dataflow::transport::kafka::{KafkaConfig, KafkaTransport};
use pbp_dataflow::transport::{TopicSpec, TransportError};

/// `pbp topics ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TopicsCommand {
    /// Create the project's topics with their partition counts and cleanup policies; topics that already
    /// exist are left as they are (a partition count that differs from the expected one is an error).
    Create(CreateArgs),
}

/// Options of `pbp topics create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "PBP_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Replication factor of created topics.
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// Prefix for every topic name (to share a cluster between environments or test runs).
    #[arg(long, default_value = "")]
    prefix: String,
}

pub(crate) async fn run(command: TopicsCommand) -> anyhow::Result<()> {
    match command {
        TopicsCommand::Create(args) => create(args).await,
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let mut config = KafkaConfig::new(&args.brokers);
    config.replication_factor = args.replication_factor;
    let transport = KafkaTransport::connect(config)?;
    let mut mismatched = Vec::new();
    let (mut created, mut present) = (0, 0);
    for spec in crate::topics::all() {
        let spec = TopicSpec { name: format!("{}{}", args.prefix, spec.name), ..spec };
        let policy = if spec.compacted { "compact" } else { "delete" };
        match transport.partitions(&spec.name).await {
            Ok(partitions) => {
                present += 1;
                println!("present  {} ({partitions} partitions)", spec.name);
                if partitions != spec.partitions {
                    mismatched.push(format!("{} has {partitions} partitions, expected {}", spec.name, spec.partitions));
                }
            }
            Err(TransportError::UnknownTopic(_)) => {
                let partitions =
                    transport.ensure_topic(&spec).await.with_context(|| format!("creating {}", spec.name))?;
                created += 1;
                tracing::info!(topic = %spec.name, partitions, cleanup_policy = policy, "topic created");
                println!("created  {} ({partitions} partitions, cleanup.policy={policy})", spec.name);
            }
            Err(error) => return Err(error).with_context(|| format!("looking up {}", spec.name)),
        }
    }
    println!("{created} created, {present} already present");
    if !mismatched.is_empty() {
        bail!("topics exist with other partition counts: {}", mismatched.join("; "));
    }
    Ok(())
}
